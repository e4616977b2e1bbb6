"""The spam filter through moatd, with a real dnsmasq serving blocklist
zones on a loopback port (dns_forwarders) and the classifier trained by
`moat learn`:

- GTUBE (moat's spam.cf) is rejected at the group's reject_score with the
  policy's 5xx; a clean message passes; a message whose score reaches
  add_header_score gets X-Spam-Status/X-Spam-Score naming the rules;
- rules from a site file in SpamAssassin's format: body, header, meta,
  uri, rawbody, full, with score and describe; the description is the
  evidence's detail (moat scan prints it);
- DNS lists from the same file: check_rbl for the client address (a
  session from 127.0.0.2, RFC 5782's test entry, and one from 127.0.0.4
  for check_rbl_sub), check_rbl_envfrom (RHSBL on the MAIL FROM domain),
  urirhssub with a bit mask (URIBL on the domains of the body's URIs); a
  list that never answers is given up after dns_budget and the message
  is still scored, in time;
- the classifier: `moat learn` of a few spam and ham messages (with low
  bayes_min_spam/ham), then BAYES_99 on spam-like and BAYES_00 on
  ham-like mail;
- moat scan over a directory (one JSON line each, the rules' scores and
  descriptions), moatd -t: an invalid regex refused with file:line, and
  the counts of the rules loaded (with Debian's SpamAssassin ruleset when
  installed: it loads unmodified, its unimplemented eval rules counted).
"""

import json
import os
import pwd
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, MOATD, Moatd, Sink, Dnsmasq, SilentDns,  # noqa: E402
                      dnsmasq_usable, moatd_check, tmpdir, write_file as write,
                      sink_headers, send_mail)

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))
SRC = os.environ.get("MOAT_SRCDIR", os.path.join(os.path.dirname(MOATD)))
SPAM_CF = os.path.join(SRC, "filters", "spam", "spam.cf")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
t = TAP()
WORK = tmpdir()
# Never the system's /var/cache/moat: each run its own rules cache.
CACHE = 'rules_cache = "%s"' % os.path.join(WORK, "rules-cache")
os.chmod(WORK, 0o755)

LOCAL_CF = r"""
# site rules for the test (SpamAssassin syntax)
body     LOCAL_PILLS     /\bcheap\s+pills\b/i
describe LOCAL_PILLS     Mentions cheap pills
score    LOCAL_PILLS     2.2
header   LOCAL_WIN       Subject =~ /\bwin big\b/i
describe LOCAL_WIN       Subject promises a win
score    LOCAL_WIN       1.1
meta     LOCAL_BOTH      LOCAL_PILLS && LOCAL_WIN
describe LOCAL_BOTH      Pills and a win together
score    LOCAL_BOTH      3.0
uri      LOCAL_URI       /\.casino\.example\b/i
describe LOCAL_URI       Links to a casino
score    LOCAL_URI       1.7
rawbody  LOCAL_RAW       /<blink>/i
describe LOCAL_RAW       Blinking HTML
score    LOCAL_RAW       0.9
full     LOCAL_FULL      /^X-Mailer: MassMailer/m
describe LOCAL_FULL      Sent by a mass mailer
score    LOCAL_FULL      1.3

header   RCVD_IN_TESTBL  eval:check_rbl('testbl', 'bl.test.')
describe RCVD_IN_TESTBL  Client address listed in bl.test
score    RCVD_IN_TESTBL  3.0
tflags   RCVD_IN_TESTBL  net
header   RCVD_IN_TESTBL4 eval:check_rbl_sub('testbl', '127.0.0.4')
describe RCVD_IN_TESTBL4 Client address listed in bl.test as 127.0.0.4
score    RCVD_IN_TESTBL4 2.0
tflags   RCVD_IN_TESTBL4 net
header   RHS_ENVFROM     eval:check_rbl_envfrom('rhs', 'rhs.test.')
describe RHS_ENVFROM     Envelope sender domain listed in rhs.test
score    RHS_ENVFROM     2.5
tflags   RHS_ENVFROM     net
urirhssub URIBL_TEST     uribl.test. A 2
describe URIBL_TEST      A URI's domain listed in uribl.test
score    URIBL_TEST      4.0
tflags   URIBL_TEST      net
urirhssub SLOW_LIST      slow.test. A 2
describe SLOW_LIST       A URI list that never answers
score    SLOW_LIST       9.0
tflags   SLOW_LIST       net
"""


def msg(subject, body, extra="", frm="alice@sender.example"):
    return ("From: <%s>\r\nTo: <bob@example.test>\r\nSubject: %s\r\n"
            "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@sender.example>\r\n%s\r\n%s\r\n"
            % (frm, subject, abs(hash(subject + body)), extra, body))


def send(port, data, source=None, sender="alice@sender.example"):
    """The reply to the end of DATA (or to DATA, if refused)."""
    return send_mail(port, sender, ("bob@example.test",), data, ehlo="client.example",
                     source=source, stuff=True)[-2]


def spam_lines(m):
    return re.findall(r"event=spam sid=.*", m.log())


def evidence_of(m):
    """Symbols of the last event=tx line."""
    tx = re.findall(r"event=tx .*", m.log())
    return tx[-1] if tx else ""


def main_section(dns):
    sink = Sink()
    write(os.path.join(WORK, "local.cf"), LOCAL_CF)
    conf = ('dns_forwarders = { "127.0.0.1@%d" }\ndns_timeout = 5s\n'
            'filter "spam" {\n default_rules = "no"\n %s\n rules = "%s %s"\n'
            ' bayes = "no"\n dns_lists = "yes"\n dns_budget = 1.5\n trusted_networks = "192.0.2.1"\n}\n'
            'group "default" { add_header_score = 5 reject_score = 15 }\n'
            % (dns.port, CACHE, SPAM_CF, os.path.join(WORK, "local.cf")))
    m = Moatd(sink.port, conf=conf)
    try:
        r = send(m.port, msg("test", "This is the GTUBE, the\r\n%s\r\n" % GTUBE))
        t.eq(r[0], 550, "GTUBE: rejected at reject_score: %s" % (r,))
        t.ok(m.wait_log(r"event=spam sid=\w+ score=1000"), "log: event=spam score=1000")

        r = send(m.port, msg("lunch", "See you at noon.\r\n"))
        t.eq(r[0], 250, "a clean message passes")
        hdr = sink_headers(sink.message_with("Subject: lunch"))
        t.ok("X-Spam-Status" not in hdr, "... without spam headers (score below 5)")

        r = send(m.port, msg("You win big", "Buy cheap  pills today at\r\n"
                             "http://www.casino.example/offer\r\n",
                             extra="X-Mailer: MassMailer 2.0\r\n"))
        t.eq(r[0], 250, "a message at add_header_score is accepted")
        hdr = sink_headers(sink.message_with("Subject: You win big"))
        t.like(hdr, r"(?m)^X-Spam-Status: Yes", "... with X-Spam-Status: Yes")
        for rule in ("LOCAL_PILLS", "LOCAL_WIN", "LOCAL_BOTH", "LOCAL_URI", "LOCAL_FULL"):
            t.ok(rule in hdr, "... naming %s (body/header/meta/uri/full)" % rule, hdr)
        t.ok("LOCAL_RAW" not in hdr, "rawbody rule not fired without <blink>")

        html = ("MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n")
        r = send(m.port, msg("html", "<html><body><blink>hello</blink></body></html>\r\n",
                             extra=html))
        t.eq(r[0], 250, "an HTML message passes")
        t.like(evidence_of(m), r"LOCAL_RAW", "rawbody sees the HTML tags")

        # DNS lists: the client address (RFC 5782 test entry 127.0.0.2).
        r = send(m.port, msg("hi", "plain text\r\n"), source="127.0.0.2")
        t.eq(r[0], 250, "a listed client: accepted (3.0 < 5)")
        t.like(evidence_of(m), r"RCVD_IN_TESTBL\b", "check_rbl: the client address listed")
        t.ok(m.wait_log(r"event=spam-list-hit sid=\w+ rule=RCVD_IN_TESTBL "
                        r"answer=2\.0\.0\.127\.bl\.test=127\.0\.0\.2"),
             "log: event=spam-list-hit with the query and the answer")
        r = send(m.port, msg("hi", "plain text 2\r\n"), source="127.0.0.4")
        t.like(evidence_of(m), r"RCVD_IN_TESTBL4", "check_rbl_sub: answer 127.0.0.4")
        r = send(m.port, msg("hi", "plain text 3\r\n"), sender="x@listed.example")
        t.like(evidence_of(m), r"RHS_ENVFROM", "check_rbl_envfrom: the MAIL FROM domain")
        r = send(m.port, msg("hi", "see https://shop.badsite.example/x?y=1\r\n"))
        t.like(evidence_of(m), r"URIBL_TEST", "urirhssub: the URI's registrable domain, "
               "bit 2 of the answer")
        r = send(m.port, msg("hi", "see https://shop.masked.example/\r\n"))
        t.ok("URIBL_TEST" not in evidence_of(m),
             "urirhssub: an answer without bit 2 does not fire")
        t.ok(not re.search(r"SLOW_LIST", m.log()), "the list that never answers never fires")
        t0 = time.time()
        r = send(m.port, msg("hi", "timing http://www.timing.example/\r\n"))
        took = time.time() - t0
        t.eq(r[0], 250, "with a silent list: accepted")
        t.ok(took < 4.5, "... within the DNS budget (1.5 s) and not the 5 s timeout: %.2fs"
             % took)
    finally:
        t.eq(m.stop(), 0, "moatd exits cleanly")
        sink.stop()


def trusted_section(dns):
    """Default trusted_networks (loopback): a local client is not asked
    about, an authenticated one neither."""
    sink = Sink()
    conf = ('dns_forwarders = { "127.0.0.1@%d" }\n'
            'filter "spam" {\n default_rules = "no"\n %s\n rules = "%s %s"\n'
            ' bayes = "no"\n dns_lists = "yes"\n dns_budget = 1.5\n}\n'
            % (dns.port, CACHE, SPAM_CF, os.path.join(WORK, "local.cf")))
    m = Moatd(sink.port, conf=conf)
    try:
        r = send(m.port, msg("hi", "from a trusted client\r\n"), source="127.0.0.2")
        t.eq(r[0], 250, "trusted client: accepted")
        t.ok("RCVD_IN_TESTBL" not in evidence_of(m) and
             not re.search(r"spam-list-hit .*RCVD_IN_TESTBL", m.log()),
             "a client in trusted_networks (loopback by default) is not looked up")
    finally:
        t.eq(m.stop(), 0, "moatd exits cleanly")
        sink.stop()


def bayes_section():
    d = tmpdir()
    os.chmod(d, 0o755)
    spam_dir, ham_dir = os.path.join(d, "spam"), os.path.join(d, "ham")
    os.mkdir(spam_dir)
    os.mkdir(ham_dir)
    for i in range(8):
        write(os.path.join(spam_dir, "s%d" % i), msg(
            "cheap viagra offer %d" % i,
            "Cheap viagra pharmacy discount offer, buy now, limited offer "
            "number %d, unsubscribe here\r\n" % i, frm="promo%d@bulk.example" % i))
        write(os.path.join(ham_dir, "h%d" % i), msg(
            "meeting notes %d" % i,
            "Hi Bob, attached are the meeting notes from the kernel review "
            "number %d; the patch series looks fine to me.\r\n" % i,
            frm="carol@work.example"))
    # The messages are root's alone; the store's directory does not exist:
    # run as root, moat learn makes it for moat.conf's user (nobody) and
    # writes the store as that user, reading root's files all the same.
    os.chmod(spam_dir, 0o700)
    os.chmod(ham_dir, 0o700)
    db = os.path.join(d, "state", "bayes.lmdb")
    # A rule scored per SpamAssassin score set (no Bayes, net, Bayes,
    # Bayes + net): until the classifier has learned enough to vote, the
    # set without Bayes applies, as in SpamAssassin.
    sets_cf = write(os.path.join(d, "sets.cf"),
                    "body SCORE_SETS /viagra/i\nscore SCORE_SETS 1.5 2.5 0.5 0.7\n")
    conf = write(os.path.join(d, "moat.conf"),
                 'upstream = "127.0.0.1:25"\nspool_directory = "%s"\n'
                 'filter "spam" {\n default_rules = "no"\n %s\n rules = "%s %s"\n'
                 ' bayes_db = "%s"\n bayes_min_spam = 5\n bayes_min_ham = 5\n}\n'
                 % (d, CACHE, SPAM_CF, sets_cf, db))
    untrained = os.path.join(d, "untrained")
    write(untrained, msg("cheap viagra", "Cheap viagra\r\n"))

    def sets_score():
        p = subprocess.run([MOAT, "-c", conf, "scan", "--json", "--rcpt", "bob@example.test",
                            untrained], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        for line in p.stdout.decode().splitlines():
            if line.startswith("{"):
                for e in json.loads(line).get("evidence", []):
                    if e["symbol"] == "SCORE_SETS":
                        return e["score"]
        return None
    t.eq(sets_score(), 1.5, "Bayes not trained yet: the score set without Bayes (0)")
    for cls, src in (("--spam", spam_dir), ("--ham", ham_dir)):
        p = subprocess.run([MOAT, "-c", conf, "learn", cls, src], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        t.eq(p.returncode, 0, "moat learn %s: %s" % (cls, " ".join(p.stdout.decode().split())[-120:]))
    if os.getuid() == 0:
        owners = sorted({pwd.getpwuid(os.stat(x).st_uid).pw_name
                         for x in (os.path.dirname(db), db, db + "-lock")})
        t.eq(owners, ["nobody"], "as root: the store and its directory are made "
             "for moat.conf's user")
    t.eq(sets_score(), 0.5, "Bayes trained: the score set with Bayes (2)")
    probe = os.path.join(d, "probe")
    os.mkdir(probe)
    write(os.path.join(probe, "1-spam"), msg(
        "cheap viagra offer today", "Cheap viagra discount, buy now, limited offer\r\n",
        frm="promo@bulk.example"))
    write(os.path.join(probe, "2-ham"), msg(
        "meeting notes again", "Hi Bob, the kernel review meeting notes; the patch series "
        "looks fine.\r\n", frm="carol@work.example"))
    p = subprocess.run([MOAT, "-c", conf, "scan", "--json", "--rcpt", "bob@example.test",
                        probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    t.eq(p.returncode, 0, "moat scan over a directory: exit 0 (all scanned)")
    lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.startswith("{")]
    t.eq(len(lines), 2, "one JSON line per message")
    syms = [{e["symbol"]: e for e in x.get("evidence", [])} for x in lines]
    t.ok(len(syms) == 2 and ("BAYES_99" in syms[0] or "BAYES_95" in syms[0]),
         "the spam-like message: BAYES_95/99", syms[0] if syms else None)
    t.ok(len(syms) == 2 and ("BAYES_00" in syms[1] or "BAYES_05" in syms[1]),
         "the ham-like message: BAYES_00/05", syms[1] if len(syms) > 1 else None)
    if syms and "BAYES_99" in syms[0]:
        t.eq(syms[0]["BAYES_99"]["detail"], "Bayes spam probability is 99 to 100%",
             "the rule's description is the evidence detail")
    p = subprocess.run([MOAT, "-c", conf, "scan", "--rcpt", "bob@example.test",
                        os.path.join(probe, "1-spam")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    t.like(p.stdout.decode(), r"BAYES_9\d+ +\d+\.\d+ +spam .*Bayes spam probability",
           "moat scan (text): each rule with its score and description")


def config_section():
    bad = write(os.path.join(WORK, "bad.cf"), "body GOOD /fine/\nbody BAD /(unclosed/\n")
    rc, out = moatd_check('filter "spam" { default_rules = "no" rules = "%s" bayes = "no" %s }\n'
                          % (bad, CACHE))
    t.ok(rc != 0 and re.search(r"bad\.cf:2: .*BAD", out),
         "moatd -t refuses an invalid regex with file:line", out)
    rc, out = moatd_check('filter "spam" { default_rules = "no" rules = "%s" bayes = "no" %s }\n'
                          % (SPAM_CF, CACHE))
    t.eq(rc, 0, "moatd -t accepts moat's spam.cf")
    t.like(out, r"spam-rules .*body=\d+", "moatd -t prints the rules loaded")
    if os.path.isdir("/usr/share/spamassassin"):
        cache = os.path.join(WORK, "debian-cache")
        conf = ('filter "spam" { sa_rules = "/usr/share/spamassassin" '
                'default_rules = "no" rules = "%s" bayes = "no" rules_cache = "%s" }\n'
                % (SPAM_CF, cache))
        rc, out = moatd_check(conf)
        t.eq(rc, 0, "moatd -t accepts Debian's SpamAssassin ruleset, unmodified")
        m = re.search(r"spam-rules .*evals_skipped=(\d+)", out)
        t.ok(m is not None, "... and says how many eval rules it skips",
             out[-400:])
        m = re.search(r"prefiltered=(\d+) prefilter_cache=(\w+)", out)
        t.ok(m is not None and m.group(2) == "miss",
             "first load: prefilter_cache=miss", out[-400:])
        if m is not None and int(m.group(1)) > 0:
            t.ok(any(f.startswith("sa-prefilter-") for f in os.listdir(cache)),
                 "the compiled databases are cached", os.listdir(cache))
            rc, out = moatd_check(conf)
            m2 = re.search(r"prefiltered=(\d+) prefilter_cache=(\w+)", out)
            t.ok(rc == 0 and m2 is not None and m2.group(2) == "hit" and
                 m2.group(1) == m.group(1),
                 "second load: prefilter_cache=hit, as many rules prefiltered",
                 out[-400:])
        else:
            t.skip("the rules cache", "built without Hyperscan")
    else:
        t.skip("Debian's SpamAssassin ruleset", "spamassassin not installed")
    rc, out = moatd_check('filter "spam" { default_rules = "no" rules = "%s" '
                          'bayes = "no" rules_cache = "relative/dir" }\n' % SPAM_CF)
    t.ok(rc != 0 and "rules_cache" in out,
         "a relative rules_cache is refused", out[-300:])
    rc, out = moatd_check('filter "spam" { default_rules = "no" rules = "%s" '
                          'bayes = "no" rules_cache = "no" }\n' % SPAM_CF)
    t.ok(rc == 0 and "prefilter_cache=off" in out, "rules_cache = no: off",
         out[-300:])


def main():
    if not dnsmasq_usable():
        t.skip("spam filter with DNS lists", "dnsmasq-base not installed")
    else:
        silent = SilentDns()
        dns = Dnsmasq([
            "local=/bl.test/", "local=/rhs.test/", "local=/uribl.test/",
            "host-record=2.0.0.127.bl.test,127.0.0.2",
            "host-record=4.0.0.127.bl.test,127.0.0.4",
            "host-record=listed.example.rhs.test,127.0.0.2",
            "host-record=badsite.example.uribl.test,127.0.0.2",
            "host-record=masked.example.uribl.test,127.0.0.4",
            "server=/slow.test/127.0.0.1#%d" % silent.port,
        ])
        try:
            t.section(lambda: main_section(dns))
            t.section(lambda: trusted_section(dns))
        finally:
            dns.stop()
    t.section(bayes_section)
    t.section(config_section)
    t.done()


main()
