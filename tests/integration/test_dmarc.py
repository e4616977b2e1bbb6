"""The dmarc filter through moatd (RFC 7489), after the spf and dkim filters
of the same chain, with every record served by a real dnsmasq on a
loopback port. Messages are signed by the test with dkimpy (Debian's
python3-dkim).

Checked: SPF-aligned and DKIM-aligned passes; relaxed alignment of a
subdomain signature and strict alignment refusing it; a failing message
under p=reject refused 550 5.7.1, under p=quarantine given the spam
headers, under p=none let through; the Organizational Domain's record and
its sp= for a subdomain; pct=0 sampling a reject down to quarantine; no
record, several records, an invalid record; a policy lookup that times out
(temperror, and 451 with temperror = tempfail); zero, two, unparsable and
multi-address From fields never passing (550 5.7.1 by default); a group's
rule overriding the filter's default; the aggregate-report data file;
a client leaving while the policy is looked up; moatd -t refusing a dmarc
filter listed before spf and bad options.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Sink, Client, Dnsmasq, SilentDns,  # noqa: E402
                      SYSPY, dkim_rsa_key, dkimpy_usable, dns_txt as txt,
                      dnsmasq_usable, moatd_check, tmpdir)

t = TAP()
WORK = tmpdir()

SIGN = r"""
import sys, dkim
sel, dom, key = sys.argv[1:4]
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, sel.encode(), dom.encode(), open(key, "rb").read(),
                include_headers=[b"from", b"to", b"subject"])
sys.stdout.buffer.write(sig + msg)
"""


KEY = None


def sign(m, dom):
    p = subprocess.run([SYSPY, "-c", SIGN, "sel", dom, KEY], input=m.encode(),
                       stdout=subprocess.PIPE, check=True)
    return p.stdout.decode().replace("\r\n", "\n").replace("\n", "\r\n")


def msg(tag, frm="Alice <alice@example.test>", extra=""):
    head = "From: %s\r\n" % frm if frm is not None else ""
    return (head + extra + "To: bob@dest.test\r\nSubject: dmarc %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\nHello,\r\nmessage %s.\r\n" % (tag, tag, tag))


def send(port, data, sender, rcpt="bob@dest.test"):
    c = Client(port)
    c.cmd("EHLO client.example.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    c.cmd("RCPT TO:<%s>" % rcpt)
    r = c.cmd("DATA")
    if r[0] == 354:
        c.send(data.replace("\r\n.", "\r\n..") + ".\r\n")
        r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r


def ar_of(m):
    m2 = re.search(r"^Authentication-Results: (.*(?:\r?\n[ \t].*)*)", m, re.M)
    return re.sub(r"\r?\n[ \t]+", " ", m2.group(1)) if m2 else ""


def tx_line(m):
    lines = [line for line in m.log().splitlines() if "event=tx" in line]
    return lines[-1] if lines else ""


SPF = "v=spf1 ip4:127.0.0.0/8 -all"


def zone(pub, silent_port):
    lines = [
        txt("example.test", SPF), txt("other.test", SPF), txt("sub.example.test", SPF),
        txt("_dmarc.example.test",
            "v=DMARC1; p=reject; sp=quarantine; rua=mailto:agg@example.test"),
        txt("sel._domainkey.example.test", pub),
        txt("sel._domainkey.sub.example.test", pub),
        txt("sel._domainkey.other.test", pub),
        txt("sel._domainkey.sub.strict.test", pub),
        txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s"),
        txt("strict.test", SPF),
        txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt("_dmarc.mon.test", "v=DMARC1; p=none"),
        txt("_dmarc.pct.test", "v=DMARC1; p=reject; pct=0"),
        txt("_dmarc.two.test", "v=DMARC1; p=reject"),
        txt("_dmarc.bad.test", "v=DMARC1; p=bogus"),
        txt("_dmarc.notdmarc.test", "v=spf1 -all"),
        "local=/test/",
        "server=/slow.test/127.0.0.1#%d" % silent_port,
    ]
    # two records for one name: a second txt-record line adds one
    lines.append(txt("_dmarc.two.test", "v=DMARC1; p=none"))
    return lines


FILTERS = ('filter "spf" { check_loopback = yes }\n'
           'filter "dkim" {}\n'
           'filter "dmarc" { check_loopback = yes report_log = "%s" }\n')


def main_run(dns, report):
    sink = Sink()
    conf = ('dns_forwarders = { "%s" }\ndns_timeout = 1s\n' % dns.forwarder()
            + FILTERS % report
            + 'group "lenient" { recipients = {"soft@dest.test"}\n'
              '  rule "DMARC_REJECT" { action = none } }\n')
    m = Moatd(sink.port, conf)
    n = [0]

    def deliver(data, sender, name, rcpt="bob@dest.test"):
        r = send(m.port, data, sender, rcpt)
        if r[0] != 250:
            t.ok(False, "%s: delivered" % name, r)
            return ""
        n[0] += 1
        msgs = sink.messages(count=n[0])
        t.ok(len(msgs) >= n[0], "%s: delivered" % name)
        mid = re.search(r"Message-ID: <[^>]*>", data)
        if mid:
            return sink.message_with(mid.group(0))
        return msgs[-1] if len(msgs) >= n[0] else ""

    def refused(data, sender, name, code=550):
        r = send(m.port, data, sender)
        t.eq(r[0], code, "%s: refused %d" % (name, code))
        return r

    try:
        out = deliver(msg("1"), "alice@example.test", "SPF aligned")
        t.like(ar_of(out), r"dmarc=pass \(p=reject dis=none\) header\.from=example\.test",
               "SPF aligned: dmarc=pass with the policy in Authentication-Results")
        t.like(tx_line(m), r"DMARC_PASS\(dmarc:", "SPF aligned: evidence DMARC_PASS")

        r = refused(msg("2"), "bounce@other.test", "unaligned, p=reject")
        t.like(" ".join(str(x) for x in r), r"5\.7\.1 Rejected by the DMARC policy",
               "p=reject failure: 550 5.7.1 with the filter's default text")
        t.like(tx_line(m), r"DMARC_FAIL\(dmarc:1\.00\).*DMARC_REJECT",
               "p=reject failure: DMARC_FAIL and DMARC_REJECT evidence")

        out = deliver(sign(msg("3"), "example.test"), "bounce@other.test", "DKIM aligned")
        t.like(ar_of(out), r"dmarc=pass .*header\.from=example\.test",
               "DKIM d= equal to the From domain: pass although SPF is unaligned")

        out = deliver(sign(msg("4"), "sub.example.test"), "bounce@other.test",
                      "relaxed DKIM alignment")
        t.like(ar_of(out), r"dmarc=pass", "d=sub.example.test aligns with example.test (relaxed)")

        r = refused(sign(msg("5", frm="a@strict.test"), "sub.strict.test"),
                    "bounce@sub.strict.test", "strict alignment")
        t.like(tx_line(m), r"DMARC_FAIL", "adkim=s aspf=s: a subdomain does not align")

        out = deliver(sign(msg("6"), "other.test"), "bounce@other.test",
                      "unaligned signature", rcpt="soft@dest.test")
        t.like(ar_of(out), r"dmarc=fail \(p=reject dis=reject\)",
               "a group whose rule DMARC_REJECT is none: delivered, dmarc=fail recorded")

        out = deliver(msg("7", frm="x@sub.example.test"), "bounce@other.test",
                      "subdomain under the org record")
        t.like(ar_of(out), r"dmarc=fail \(p=quarantine dis=quarantine\) header\.from=sub\.example\.test",
               "no record at sub.example.test: the org domain's, with sp=quarantine")
        t.like(tx_line(m), r"action=add_header reason=\"rule DMARC_QUARANTINE\".*DMARC_QUARANTINE",
               "p=quarantine failure: the spam headers by default (add_header)")

        out = deliver(msg("8", frm="x@quar.test"), "bounce@other.test", "p=quarantine")
        t.like(ar_of(out), r"dmarc=fail \(p=quarantine dis=quarantine\)", "p=quarantine: fail")

        out = deliver(msg("9", frm="x@mon.test"), "bounce@other.test", "p=none")
        t.like(ar_of(out), r"dmarc=fail \(p=none dis=none\)", "p=none: fail, delivered")

        out = deliver(msg("10", frm="x@pct.test"), "bounce@other.test", "pct=0")
        t.like(ar_of(out), r"dmarc=fail \(p=reject dis=quarantine\)",
               "pct=0: a reject outside the sample is quarantined (RFC 7489 6.6.4)")

        out = deliver(msg("11", frm="x@none.test"), "bounce@other.test", "no record")
        t.like(ar_of(out), r"dmarc=none header\.from=none\.test", "no DMARC record: dmarc=none")
        out = deliver(msg("12", frm="x@notdmarc.test"), "bounce@other.test", "not a DMARC record")
        t.like(ar_of(out), r"dmarc=none", "a TXT record that is not DMARC's: none")
        out = deliver(msg("13", frm="x@two.test"), "bounce@other.test", "two records")
        t.like(ar_of(out), r"dmarc=none", "two DMARC records: no policy (6.6.3)")
        out = deliver(msg("14", frm="x@bad.test"), "bounce@other.test", "invalid record")
        t.like(ar_of(out), r"dmarc=permerror \(invalid tag value\) header\.from=bad\.test",
               "p=bogus: permerror")

        t0 = time.time()
        out = deliver(msg("15", frm="x@slow.test"), "bounce@other.test", "lookup timeout")
        t.like(ar_of(out), r"dmarc=temperror header\.from=slow\.test",
               "policy lookup timing out: temperror, delivered by default")
        t.ok(time.time() - t0 < 8, "... after dns_timeout, not longer")

        for tag, m_, why in (("16", msg("16", frm=None), "no From field"),
                             ("17", msg("17", extra="From: eve@evil.test\r\n"),
                              "several From fields"),
                             ("18", msg("18", frm="eve@evil.test, alice@example.test"),
                              "several addresses"),
                             ("19", msg("19", frm="alice"), "without a domain"),
                             ("20", msg("20", frm="Alice <alice@example.test"),
                              "cannot be parsed")):
            r = refused(m_, "alice@example.test", "From " + why)
            t.like(" ".join(str(x) for x in r), r"5\.7\.1 The From field must hold exactly one",
                   "From %s: 550 5.7.1, never a pass" % why)
        t.like(tx_line(m), r"DMARC_BAD_FROM", "bad From: evidence DMARC_BAD_FROM")

        # a client that leaves while the policy is looked up
        c = Client(m.port)
        c.cmd("EHLO client.example.test")
        c.cmd("MAIL FROM:<a@other.test>")
        c.cmd("RCPT TO:<bob@dest.test>")
        c.cmd("DATA")
        c.send(msg("21", frm="x@slow.test") + ".\r\n")
        time.sleep(0.2)
        c.close()
        time.sleep(1.5)
        deliver(msg("22"), "alice@example.test", "after a client left mid-lookup")
        t.ok(m.alive(), "moatd alive")
    finally:
        rc = m.stop()
        t.eq(rc, 0, "moatd exits cleanly (no sanitizer report)")
        sink.stop()

    lines = []
    try:
        with open(report) as f:
            lines = [json.loads(line) for line in f]
    except (OSError, ValueError) as e:
        t.diag("report: %s" % e)
    t.ok(len(lines) >= 10, "report_log: one JSON line per message with a policy", len(lines))
    first = lines[0] if lines else {}
    t.ok(first.get("source_ip") == "127.0.0.1" and first.get("header_from") == "example.test"
         and first.get("result") == "pass" and first.get("spf", {}).get("result") == "pass"
         and first.get("policy_domain") == "example.test" and first.get("p") == "reject"
         and first.get("rua") == "mailto:agg@example.test",
         "report line: source IP, header From, result, SPF result, policy, rua", first)
    rej = [x for x in lines if x.get("disposition") == "reject"]
    t.ok(rej and rej[0].get("envelope_from") == "other.test" and rej[0].get("result") == "fail",
         "report line of a rejected message: disposition reject, envelope domain")


def tempfail_run(dns):
    sink = Sink()
    m = Moatd(sink.port, 'dns_forwarders = { "%s" }\ndns_timeout = 1s\n'
              'filter "spf" { check_loopback = yes }\nfilter "dkim" {}\n'
              'filter "dmarc" { check_loopback = yes temperror = tempfail }\n'
              % dns.forwarder())
    try:
        r = send(m.port, msg("30", frm="x@slow.test"), "alice@example.test")
        t.eq(r[0], 451, "temperror = tempfail: 451")
        t.like(" ".join(str(x) for x in r), r"4\.7\.0 DMARC policy of slow\.test",
               "... 4.7.0 naming the domain")
        r = send(m.port, msg("31"), "alice@example.test")
        t.eq(r[0], 250, "... other mail unaffected")
    finally:
        m.stop()
        sink.stop()


def config_errors():
    rc, out = moatd_check('filter "dmarc" {}\nfilter "spf" {}\n')
    t.ok(rc != 0 and re.search(r'filter "dmarc" reads the results of filter "spf"', out),
         "moatd -t: dmarc listed before spf refused", out)
    for opt, pat in (('temperror = "x"', r'temperror: "x" is not tempfail or continue'),
                     ('report_log = "rel.log"', r"report_log: .* not an absolute path"),
                     ('score_fail = "x"', r'score_fail: "x" is not a number'),
                     ('nonsense = "1"', r"nonsense")):
        rc, out = moatd_check('filter "dmarc" { %s }\n' % opt)
        t.ok(rc != 0 and re.search(pat, out), "moatd -t refuses %s" % opt, out)
    rc, out = moatd_check(FILTERS % "/tmp/x.log")
    t.eq(rc, 0, "moatd -t accepts spf, dkim, dmarc in that order")


if not dnsmasq_usable() or not dkimpy_usable():
    t.skip("dmarc", "dnsmasq or python3-dkim missing")
else:
    KEY, pub = dkim_rsa_key(os.path.join(WORK, "rsa.key"))
    silent = SilentDns()
    dns = Dnsmasq(zone(pub, silent.port))
    try:
        t.section(lambda: main_run(dns, os.path.join(WORK, "dmarc-report.log")))
        t.section(lambda: tempfail_run(dns))
    finally:
        dns.stop()
    t.section(config_errors)
t.done()
