"""The policy engine end to end: allow/deny lists (client, HELO, sender,
recipient, from the configuration and from a 100,000-line file), score
thresholds and the spam headers, quarantine and the moat quarantine
commands on what moatd stored, rules on filter evidence (early decisions at
MAIL, at the header stage, discard, tempfail, allow), Authentication-Results
clean-up, the subject tag, policy groups (the 452 split, per-group
thresholds and filter sets), filter failure policies, the summary log line,
`moat scan` on the same configurations, and SIGHUP reloads (new sessions
get the new configuration, sessions in flight keep theirs, a broken
configuration is not applied).

Everything goes through a real moatd with Postfix's smtp-sink behind it
(the recording upstream where exact bytes matter); evidence comes from the
test filter (filters/testfilter.c), mostly from an "X-Moat-Test: SYM=score"
field of the message (header_evidence = yes).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Sink, Moatd, Client, Recorder, MOATD, tmpdir  # noqa: E402

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))

from moattest import write_file as write, sink_headers as headers_of  # noqa: E402
t = TAP()
run_section = t.section
T_START = time.monotonic()
BASE = "drain_timeout = 1\n"


# ------------------------------------------------------------ helpers

def moat(conf, *args, stdin=None):
    """(exit status, stdout text, stderr text) of one `moat -c conf ...`."""
    p = subprocess.run([MOAT, "-c", conf] + list(args), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def moat_json(conf, *args):
    """(exit status, parsed JSON or None, raw stdout) of a --json command."""
    rc, out, err = moat(conf, *args)
    try:
        js = json.loads(out)
    except ValueError:
        js = None
        t.diag("invalid JSON from moat %s: %r %r" % (" ".join(args), out, err))
    return rc, js, out


def mail(port, sender="alice@example.test", rcpts=("bob@example.test",),
         body="Subject: test\r\n\r\nhello\r\n", ehlo="client.example.test",
         source=None):
    """One transaction. Returns a dict of replies by step: greeting, ehlo,
    mail, rcpt (list), data, eom (code, text), or None for steps not reached
    (a refusal ends the transaction there)."""
    r = {"greeting": None, "ehlo": None, "mail": None, "rcpt": [], "data": None,
         "eom": None}
    c = Client(port, greet=False, source=source)
    try:
        r["greeting"] = c.reply_or(5)
        if r["greeting"][0] != 220:
            return r
        r["ehlo"] = c.cmd("EHLO " + ehlo)
        if r["ehlo"][0] != 250:
            return r
        r["mail"] = c.cmd("MAIL FROM:<%s>" % sender)
        if r["mail"][0] != 250:
            return r
        for x in rcpts:
            r["rcpt"].append(c.cmd("RCPT TO:<%s>" % x))
        if not any(code == 250 for code, _ in r["rcpt"]):
            return r
        r["data"] = c.cmd("DATA")
        if r["data"][0] != 354:
            return r
        c.send(body + ".\r\n")
        r["eom"] = c.reply_or(10)
        c.send("QUIT\r\n")
        c.reply_or(2)
    except (OSError, EOFError) as e:
        r["error"] = str(e)
    finally:
        c.close()
    return r


def msg(sym=None, subject="test", extra="", body="hello\r\n"):
    """A message; sym is the X-Moat-Test value ("SYM=6"), if any."""
    h = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\n" % subject
    if sym is not None:
        h += "X-Moat-Test: %s\r\n" % sym
    return h + extra + "\r\n" + body


def find_msg(sink, needle, timeout=3.0):
    """The complete smtp-sink dump containing needle, or None."""
    end = time.time() + timeout
    while True:
        for x in sink.messages(wait=0.1, count=0):
            if needle in x and x.endswith("\n\n"):
                return x
        if time.time() >= end:
            return None
        time.sleep(0.05)


def settle(sink, n, timeout=0.5):
    """Wait a little for stray deliveries, then the number of messages."""
    return sink.wait_count(n + 1, timeout)


def tx_line(m, pattern, timeout=5):
    """The first event=tx log line matching pattern (waits for it)."""
    mt = m.wait_log(r"(?m)^.*event=tx .*%s.*$" % pattern, timeout)
    return mt.group(0) if mt else None


WORK = tmpdir()
QDIR = os.path.join(tmpdir(), "quarantine")     # made by moatd (as nobody)

# The threshold configuration: checked most severe first.
THRESHOLDS = BASE + '''quarantine_directory = "%s"
filter "test" { header_evidence = "yes" }
group "default" {
    add_header_score = 5
    quarantine_score = 8
    reject_score = 10
    subject_tag = "[SPAM]"
}
''' % QDIR


# =====================================================================
# 1. Lists
# =====================================================================
def sec_client_lists():
    sink = Sink()
    m = Moatd(sink.port, conf=BASE + 'list "loopback" { type = "client" entries = {"127.0.0.0/8"} '
              'action = "reject" }\n')
    c = Client(m.port)
    t.eq(c.greeting[0], 554, "client deny list 127.0.0.0/8: 554 instead of the greeting")
    t.like(c.greeting[1], r"^5\.7\.1 Access denied$", "... 5.7.1 Access denied")
    t.ok(c.closed(), "... and moatd closes the connection")
    c.close()
    t.like(m.log(), r"event=policy sid=\S+ stage=connect group=default action=reject "
           r"reason=\"rule LIST_LOOPBACK\"", "... logged as a connect-stage policy decision")
    t.eq(settle(sink, 0), 0, "... nothing reaches the upstream")
    t.ok(m.alive(), "moatd alive after refusing at connect")
    m.stop()

    # Several client lists, told apart by the client's loopback address.
    listfile = os.path.join(WORK, "clients.txt")
    with open(listfile, "w") as f:
        f.write("# 100,000 networks and hosts\n\n")
        for i in range(99999):
            f.write("10.%d.%d.%d\n" % (i >> 16, (i >> 8) & 255, i & 255))
        f.write("127.0.0.5   # the one that matters\n")
    conf = BASE + '''
list "blocked" { type = "client" entries = {"127.0.0.2"} action = "reject" }
list "deferred" { type = "client" entries = {"127.0.0.3/32"} action = "tempfail" }
list "custom" { type = "client" entries = {"127.0.0.4"} action = "reject"
                reply = "554 5.7.1 Your network is not welcome here" }
list "big" { type = "client" file = {"%s"} action = "reject" }
''' % listfile
    t0 = time.monotonic()
    m = Moatd(sink.port, conf=conf)
    t.ok(time.monotonic() - t0 < 10, "moatd starts with a 100,000-entry client list file "
         "(%.2fs)" % (time.monotonic() - t0))
    r = mail(m.port, source="127.0.0.2")
    t.eq(r["greeting"], (554, "5.7.1 Access denied"), "127.0.0.2 in a deny list: 554 greeting")
    r = mail(m.port, source="127.0.0.3")
    t.eq(r["greeting"], (421, "4.7.1 Try again later"),
         "127.0.0.3 in a tempfail list: 421 4.7.1 greeting")
    r = mail(m.port, source="127.0.0.4")
    t.eq(r["greeting"], (554, "5.7.1 Your network is not welcome here"),
         "list with a reply: the configured reply verbatim")
    r = mail(m.port, source="127.0.0.5")
    t.eq(r["greeting"], (554, "5.7.1 Access denied"),
         "127.0.0.5, last line of the 100,000-line file: refused")
    r = mail(m.port, source="127.0.0.6", sender="ok6@example.test")
    t.eq((r["greeting"][0], r["eom"] and r["eom"][0]), (220, 250),
         "127.0.0.6 in no list: greeted and delivered")
    t.ok(find_msg(sink, "<ok6@example.test>") is not None, "... the upstream has it")
    t.eq(sink.count(), 1, "only the unlisted client's message reached the upstream")
    lg = m.log()
    t.like(lg, r"stage=connect group=default action=tempfail reason=\"rule LIST_DEFERRED\"",
           "tempfail decision logged with the list's symbol")
    t.like(lg, r"reason=\"rule LIST_BIG\"", "the file list's symbol (LIST_BIG) decided")
    t.ok(m.alive(), "moatd alive")
    m.stop()
    sink.stop()


def sec_name_lists():
    sink = Sink()
    rfile = os.path.join(WORK, "senders.txt")
    with open(rfile, "w") as f:
        for i in range(100000):
            f.write("user%06d@bulk.test\n" % i)
    conf = BASE + '''
list "badhelo" { type = "helo" entries = {"bad.helo.test", ".spammy.test"} action = "reject"
                 reply = "550 5.7.1 Go away, bad HELO" }
list "badsenders" { type = "sender"
                    entries = {"spammer@evil.test", "evil2.test", ".evil3.test", "baduser@"}
                    action = "reject" }
list "bulk" { type = "sender" file = {"%s"} action = "reject"
              reply = "550 5.7.1 Bulk sender refused" }
list "badrcpts" { type = "recipient" entries = {"nobody@example.test", "closed.test"}
                  action = "reject" }
''' % rfile
    m = Moatd(sink.port, conf=conf)

    # HELO
    c = Client(m.port)
    t.eq(c.cmd("EHLO bad.helo.test"), (550, "5.7.1 Go away, bad HELO"),
         "HELO deny list: EHLO refused with the list's reply verbatim")
    t.eq(c.cmd("HELO x.spammy.test")[0], 550, "HELO deny list: subdomain entry matches HELO")
    t.eq(c.cmd("EHLO BAD.HELO.TEST.")[0], 550, "HELO deny list: case and trailing dot ignored")
    t.eq(c.cmd("EHLO spammy.test")[0], 250, "HELO deny list: .spammy.test does not match "
         "spammy.test itself")
    c.cmd("QUIT")
    c.close()

    # Sender
    for addr, name in (("spammer@evil.test", "exact address"),
                       ("SPAMMER@Evil.Test", "exact address, other case"),
                       ("anyone@evil2.test", "domain entry"),
                       ("x@deep.sub.evil3.test", "subdomain entry"),
                       ("baduser@example.test", "local-part entry")):
        r = mail(m.port, sender=addr)
        t.eq(r["mail"], (550, "5.7.1 Sender address rejected"),
             "sender deny list (%s): 550 5.7.1 at MAIL" % name)
    r = mail(m.port, sender="x@evil3.test", body=msg(subject="evil3 parent"))
    t.eq(r["eom"] and r["eom"][0], 250, "sender deny list: .evil3.test does not match evil3.test")
    r = mail(m.port, sender="user077777@bulk.test")
    t.eq(r["mail"], (550, "5.7.1 Bulk sender refused"),
         "sender in the 100,000-line file: refused with the list's reply")
    r = mail(m.port, sender="user100000@bulk.test", body=msg(subject="bulk not listed"))
    t.eq(r["eom"] and r["eom"][0], 250, "sender not in the file: delivered")
    t.ok(not re.search(r'upstream-send sid=\S+ line="MAIL FROM:<spammer@', m.log(), re.I),
         "a refused sender never reaches the upstream (no MAIL sent)")

    # Recipients
    r = mail(m.port, sender="rc@example.test",
             rcpts=("bob@example.test", "nobody@example.test", "carol@example.test",
                    "x@closed.test"),
             body=msg(subject="recipient list"))
    t.eq([c for c, _ in r["rcpt"]], [250, 550, 250, 550],
         "recipient deny list: only the listed recipients refused")
    t.eq(r["rcpt"][1], (550, "5.7.1 Recipient address rejected"),
         "... with 550 5.7.1 Recipient address rejected")
    t.eq(r["eom"] and r["eom"][0], 250, "... the message is accepted for the others")
    d = find_msg(sink, "Subject: recipient list")
    t.eq(re.findall(r"X-Rcpt-Args: (.*)\n", d or ""),
         ["<bob@example.test>", "<carol@example.test>"],
         "... and delivered to exactly the accepted recipients")
    t.like(tx_line(m, r'from="rc@example\.test"'), r"rcpts=2 .*refused=2 ",
           "tx log: 2 recipients, 2 refused")
    r = mail(m.port, rcpts=("nobody@example.test",))
    t.eq(r["data"], None, "only a denied recipient: no DATA")
    t.eq(sink.count(), 3, "upstream has exactly the three accepted messages")

    # The bug check: a refused HELO must not follow the client around.
    r = mail(m.port, sender="rehelo@example.test", ehlo="good.helo.test",
             body=msg(subject="after refused helo"))
    t.eq(r["eom"] and r["eom"][0], 250, "good HELO: delivered (control)")
    c = Client(m.port)
    c.cmd("EHLO bad.helo.test")
    t.eq(c.code("EHLO good.helo.test"), 250, "refused EHLO, then a good one: 250")
    c.cmd("MAIL FROM:<rehelo2@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(msg(subject="second helo") + ".\r\n")
    code, text = c.reply_or(5)
    t.eq(code, 250, "refused EHLO then good EHLO: the message is accepted "
         "(the refused HELO's evidence is not kept)")
    c.cmd("QUIT")
    c.close()
    t.ok(m.alive(), "moatd alive")
    m.stop()
    sink.stop()


def sec_allow_list():
    sink = Sink()
    conf = BASE + '''
filter "test" { reject_stage = "eom" }
list "friends" { type = "sender" entries = {"friend@example.test"} action = "accept" }
list "trusted" { type = "client" entries = {"127.0.0.9"} action = "accept" }
list "meh" { type = "helo" entries = {"meh.example.test"} score = 3 }
'''
    m = Moatd(sink.port, conf=conf)
    r = mail(m.port, sender="alice@example.test")
    t.eq(r["eom"], (550, "5.7.1 Rejected by test filter at eom"),
         "control: the test filter rejects at end of data")
    r = mail(m.port, sender="friend@example.test", body=msg(subject="from a friend"))
    t.eq(r["eom"] and r["eom"][0], 250, "sender allow list: the rejecting filter is skipped")
    t.ok(find_msg(sink, "Subject: from a friend") is not None, "... and the message delivered")
    t.like(tx_line(m, r'from="friend@example\.test"'),
           r'action=accept reason="rule LIST_FRIENDS" evidence="LIST_FRIENDS\(lists:0\.00\)"',
           "... tx log: action=accept by the list's rule")
    r = mail(m.port, sender="carol@example.test", source="127.0.0.9",
             body=msg(subject="from a trusted client"))
    t.eq(r["eom"] and r["eom"][0], 250, "client allow list: the rejecting filter is skipped")
    t.ok(find_msg(sink, "Subject: from a trusted client") is not None,
         "... and the message delivered")
    c = Client(m.port, source="127.0.0.9")
    c.cmd("EHLO trusted.example.test")
    for i in range(2):
        c.cmd("MAIL FROM:<again%d@example.test>" % i)
        c.cmd("RCPT TO:<bob@example.test>")
        c.cmd("DATA")
        c.send(msg(subject="trusted %d" % i) + ".\r\n")
        t.eq(c.reply_or(5)[0], 250, "client allow list holds for message %d of the session" % (i + 1))
    c.cmd("QUIT")
    c.close()
    c = Client(m.port)
    c.cmd("EHLO meh.example.test")
    c.cmd("EHLO meh.example.test")
    c.cmd("MAIL FROM:<friend@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(msg(subject="friend twice") + ".\r\n")
    t.eq(c.reply_or(5)[0], 250, "allowed sender in a session: delivered")
    c.cmd("MAIL FROM:<stranger@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(msg(subject="stranger after friend") + ".\r\n")
    t.eq(c.reply_or(5), (550, "5.7.1 Rejected by test filter at eom"),
         "the next transaction of the session is not allowed by the previous sender")
    c.cmd("QUIT")
    c.close()
    line = tx_line(m, r'from="friend@example\.test".*LIST_MEH')
    t.like(line, r" score=3\.00 ", "the same EHLO twice: the HELO list's score counts once")
    t.eq(sink.count(), 5, "exactly the allowed messages were delivered")
    m.stop()
    sink.stop()


# =====================================================================
# 2. Thresholds, spam headers, quarantine
# =====================================================================
def sec_thresholds():
    sink = Sink()
    m = Moatd(sink.port, conf=THRESHOLDS)
    conf = m.conf

    # score 3: clean
    r = mail(m.port, sender="s3@example.test",
             body=msg("SYM=3", subject="score three",
                      extra="Authentication-Results: moat.test; spf=pass\r\n"))
    t.eq(r["eom"] and r["eom"][0], 250, "score 3: accepted")
    d = find_msg(sink, "Subject: score three")
    h = headers_of(d)
    t.ok(d is not None, "score 3: delivered")
    t.ok("X-Spam-Status" not in h and "X-Spam-Score" not in h,
         "score 3: no spam headers (spam_headers_always is off)", h)
    t.ok("Authentication-Results: moat.test" not in h,
         "A-R claiming the default authserv-id (the hostname) removed", h)
    line = tx_line(m, r'from="s3@example\.test"')
    t.like(line, r" group=default score=3\.00 action=none ", "tx log: group, score, action=none")
    t.like(line, r' evidence="SYM\(test:3\.00\)"', "tx log: evidence with filter and score")
    t.like(line, r' filter_ms="test:\d+\.\d"', "tx log: filter_ms per filter")
    t.like(line, r"verdict=accepted", "tx log: verdict accepted")

    # score 6: add_header
    r = mail(m.port, sender="s6@example.test",
             body=msg("SYM=6", subject="score six",
                      extra="X-Spam-Status: No, forged by the sender\r\n"
                            "X-Spam-Score: -100\r\n"))
    t.eq(r["eom"] and r["eom"][0], 250, "score 6: accepted")
    d = find_msg(sink, "Subject: [SPAM] score six")
    h = headers_of(d)
    t.ok(d is not None, "score 6: delivered with the subject tagged", sink.messages(count=0))
    t.eq(re.findall(r"(?m)^X-Spam-Status: .*$", h),
         ["X-Spam-Status: Yes, score=6.00 required=5.00 tests=SYM"],
         "score 6: one X-Spam-Status (ours), Yes, score, required, tests")
    t.eq(re.findall(r"(?m)^X-Spam-Score: .*$", h), ["X-Spam-Score: 6.00"],
         "score 6: one X-Spam-Score (ours)")
    t.ok("forged" not in h and "-100" not in h, "score 6: the forged spam headers removed", h)
    t.eq(len(re.findall(r"(?m)^Subject:", h)), 1, "score 6: still one Subject field")
    line = tx_line(m, r'from="s6@example\.test"')
    t.like(line, r' score=6\.00 action=add_header reason="score 6\.00 >= 5\.00"',
           "tx log: action=add_header with the threshold as reason")

    # several symbols, negative scores
    r = mail(m.port, sender="s55@example.test",
             body=msg("A=2.5 B=3", subject="two symbols"))
    h = headers_of(find_msg(sink, "two symbols"))
    t.like(h, r"X-Spam-Status: Yes, score=5\.50 required=5\.00 tests=A,B\n",
           "two symbols: scores add up, tests list both")
    r = mail(m.port, sender="sneg@example.test",
             body=msg("BIG=15 HAM=-11", subject="negative"))
    t.eq(r["eom"] and r["eom"][0], 250, "15 - 11 = 4: accepted")
    h = headers_of(find_msg(sink, "Subject: negative"))
    t.ok("X-Spam-Status" not in h, "negative score brings it under add_header_score", h)

    # score 9: quarantine
    before = sink.count()
    r = mail(m.port, sender="s9@example.test", rcpts=("bob@example.test", "carol@example.test"),
             body=msg("SYM=9", subject="score nine"))
    t.eq(r["eom"] and r["eom"][0], 250, "score 9: the client gets 250 (quarantined)")
    t.like(r["eom"] and r["eom"][1], r"^2\.0\.0 Ok: queued as \d{8}T\d{6}-[0-9a-f]{16}$",
           "... queued as the quarantine id")
    qid = r["eom"][1].split()[-1] if r["eom"] else None
    t.eq(settle(sink, before), before, "score 9: nothing delivered")
    line = tx_line(m, r'from="s9@example\.test"')
    t.like(line, r"verdict=quarantined .* action=quarantine reason=\"score 9\.00 >= 8\.00\" "
           r"quarantine=%s " % re.escape(qid or "?"), "tx log: quarantined with its id")
    t.ok(os.path.isdir(QDIR) and os.path.exists(os.path.join(QDIR, "%s.eml" % qid))
         and os.path.exists(os.path.join(QDIR, "%s.meta" % qid)),
         "quarantine_directory holds <id>.eml and <id>.meta")

    rc, out, err = moat(conf, "quarantine", "list")
    t.eq(rc, 0, "moat quarantine list: exit 0")
    lines = out.splitlines()
    t.eq([l.split()[0] for l in lines], [qid], "list: the quarantined message, only it")
    t.like(out, r"  127\.0\.0\.1  <s9@example\.test>  <bob@example\.test> \(\+1\)  9\.00  "
           r"score 9\.00 >= 8\.00\n", "list line: client, sender, rcpt (+1), score, reason")
    rc, js, raw = moat_json(conf, "quarantine", "list", "--json")
    t.ok(rc == 0 and isinstance(js, list) and len(js) == 1, "list --json: one entry", raw)
    if js:
        e = js[0]
        t.eq((e.get("id"), e.get("sender"), e.get("rcpts"), e.get("score"), e.get("action"),
              e.get("client"), e.get("helo")),
             (qid, "s9@example.test", ["bob@example.test", "carol@example.test"], 9.0,
              "quarantine", "127.0.0.1", "client.example.test"),
             "list --json: id, envelope, score, action, client, helo")
        t.eq([(x.get("symbol"), x.get("score"), x.get("filter")) for x in e.get("evidence", [])],
             [("SYM", 9.0, "test")], "list --json: evidence symbol, score, filter")
    rc, out, err = moat(conf, "quarantine", "show", qid)
    t.eq(rc, 0, "show: exit 0")
    t.like(out, r"\nsender: <s9@example\.test>\nrcpt: <bob@example\.test>\n"
           r"rcpt: <carol@example\.test>\n", "show: the envelope")
    t.like(out, r"\nevidence: SYM 9\.00 test ", "show: the evidence")
    t.like(out, r"\nX-Spam-Status: Yes, score=9\.00 required=5\.00 tests=SYM\n",
           "show: the stored message carries the spam headers")
    t.ok("[SPAM]" not in out, "show: the subject tag is only for add_header", out)
    rc, out, err = moat(conf, "quarantine", "release", qid)
    t.ok(rc == 0 and re.match(r"released %s: 250 " % re.escape(qid), out),
         "release: exit 0, the upstream's 250", (rc, out, err))
    d = find_msg(sink, "Subject: score nine")
    t.ok(d is not None, "release: smtp-sink got the message")
    t.like(d, r"X-Mail-Args: <s9@example\.test>", "release: the original sender")
    t.eq(re.findall(r"X-Rcpt-Args: (.*)\n", d or ""),
         ["<bob@example.test>", "<carol@example.test>"], "release: the original recipients")
    t.like(headers_of(d), r"X-Spam-Status: Yes, score=9\.00 required=5\.00 tests=SYM\n"
           r"X-Spam-Score: 9\.00\n", "release: with the spam headers moatd added")
    t.like(d, r"\n\nhello\n", "release: the body")
    rc, out, err = moat(conf, "quarantine", "list")
    t.ok(rc == 0 and out == "", "after release the quarantine is empty", (rc, out))

    # quarantine, then delete
    r = mail(m.port, sender="s9b@example.test", body=msg("SYM=8", subject="exactly eight"))
    t.like(r["eom"] and r["eom"][1], r"queued as ", "score exactly at quarantine_score: quarantined")
    qid2 = r["eom"][1].split()[-1] if r["eom"] else "none"
    rc, out, err = moat(conf, "quarantine", "delete", qid2)
    rc2, out2, _ = moat(conf, "quarantine", "list")
    t.ok(rc == 0 and out2 == "", "delete: gone from the list", (rc, err, out2))

    # score 12: reject
    before = sink.count()
    r = mail(m.port, sender="s12@example.test", body=msg("SYM=12", subject="score twelve"))
    t.eq(r["eom"], (550, "5.7.1 Message rejected as spam"), "score 12: 550 5.7.1 at end of data")
    t.eq(settle(sink, before), before, "score 12: nothing delivered")
    t.like(tx_line(m, r'from="s12@example\.test"'),
           r'verdict=rejected .* action=reject reason="score 12\.00 >= 10\.00"',
           "tx log: rejected by score")
    r = mail(m.port, sender="s10@example.test", body=msg("SYM=10", subject="exactly ten"))
    t.eq(r["eom"] and r["eom"][0], 550, "score exactly reject_score: rejected")
    rc, out, err = moat(conf, "quarantine", "list")
    t.eq(out, "", "rejected messages are not quarantined")

    # Subject tag: odd and non-ASCII subjects stay one well-formed field.
    r = mail(m.port, sender="tag@example.test",
             body=msg("SYM=7", subject="caf\u00e9 \x01ctl =?utf-8?q?x?=\r\n\tfolded part"))
    d = find_msg(sink, "folded part")
    h = headers_of(d)
    subj = re.findall(r"(?m)^Subject:.*(?:\n[ \t].*)*", h)
    t.ok(len(subj) == 1, "tagged subject: exactly one Subject field", h)
    # smtp-sink's dump is read as Latin-1: the UTF-8 bytes of "caf\u00e9".
    t.like(subj[0] if subj else "", r"^Subject: \[SPAM\] caf\xc3\xa9 ",
           "tagged subject: tag first, then the original (8-bit kept)")
    t.like(subj[0] if subj else "", r"folded part$", "tagged subject: the folded part kept")
    r = mail(m.port, sender="nosubj@example.test",
             body="From: a@example.test\r\nX-Moat-Test: SYM=6\r\n\r\nno subject\r\n")
    h = headers_of(find_msg(sink, "no subject"))
    t.like(h, r"(?m)^Subject: \[SPAM\]$", "no Subject: the tag becomes the Subject")
    t.ok(m.alive(), "moatd alive")
    m.stop()
    sink.stop()


def sec_every_threshold():
    """Every threshold at once: the most severe one reached decides."""
    sink = Sink()
    q2 = os.path.join(tmpdir(), "q")
    m = Moatd(sink.port, conf=BASE + '''quarantine_directory = "%s"
filter "test" { header_evidence = "yes" }
rule "QRULE" { action = "quarantine" }
list "dropall" { type = "client" entries = {"127.0.0.7"} action = "discard" }
group "default" { add_header_score = 5 quarantine_score = 6 discard_score = 7
                  tempfail_score = 8 reject_score = 9 tempfail_reply = "452 4.7.9 Not now" }
''' % q2)
    want = {5.5: (250, r"^2\.0\.0 Ok$", "add_header"),
            6.5: (250, r"^2\.0\.0 Ok: queued as \S+$", "quarantine"),
            7.5: (250, r"^2\.0\.0 Ok: discarded$", "discard"),
            8.5: (452, r"^4\.7\.9 Not now$", "tempfail"),
            9.5: (550, r"^5\.7\.1 Message rejected as spam$", "reject")}
    for score, (code, text, action) in sorted(want.items()):
        r = mail(m.port, sender="t%s@example.test" % score,
                 body=msg("SYM=%s" % score, subject="every %s" % score))
        t.eq(r["eom"] and r["eom"][0], code, "score %s: %d (%s)" % (score, code, action))
        t.like(r["eom"] and r["eom"][1], text, "score %s: reply text" % score)
        t.like(tx_line(m, r'from="t%s@example\.test"' % re.escape(str(score))),
               r" action=%s reason=\"score " % action, "score %s: tx log action=%s" % (score, action))
    time.sleep(0.2)
    t.eq(sink.count(), 1, "only the add_header message reached the upstream")
    r = mail(m.port, sender="qrule@example.test", body=msg("QRULE=0", subject="quarantine rule"))
    t.like(r["eom"] and r["eom"][1], r"queued as ", "rule quarantine at score 0: quarantined")
    rc, out, err = moat(m.conf, "quarantine", "list")
    t.like(out, r"<qrule@example\.test>  <bob@example\.test>  0\.00  rule QRULE\n",
           "quarantine list: reason \"rule QRULE\"")
    t.eq(len(out.splitlines()), 2, "two messages in this quarantine")
    # BDAT: headers edited the same way
    c = Client(m.port)
    c.cmd("EHLO b.example.test")
    c.cmd("MAIL FROM:<bdat@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    chunk = msg("SYM=5.5", subject="bdat five").encode()
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    t.eq(c.reply_or(5)[0], 250, "BDAT message with score 5.5 accepted")
    c.cmd("QUIT")
    c.close()
    t.like(headers_of(find_msg(sink, "Subject: bdat five")),
           r"^X-Spam-Status: Yes, score=5\.50 required=5\.00 tests=SYM\nX-Spam-Score: 5\.50\n",
           "BDAT: spam headers added on top")
    # a client discard list: every message of the session discarded
    r = mail(m.port, source="127.0.0.7", sender="dropall@example.test",
             body=msg(subject="client discard"))
    t.eq((r["greeting"][0], r["eom"]), (220, (250, "2.0.0 Ok: discarded")),
         "client list with action discard: greeted, then the message discarded")
    time.sleep(0.2)
    t.ok(find_msg(sink, "client discard", timeout=0) is None, "... and not delivered")
    m.stop()
    sink.stop()


def sec_headers_always():
    sink = Sink()
    conf = BASE + '''authserv_id = "mx.moat.test"
spam_headers_always = true
spam_score_header = ""
filter "test" { header_evidence = "yes" add_header = "X-Test: a" }
group "default" { add_header_score = 5 reject_score = 10
                  reject_reply = "550 5.7.350 Spam is not welcome here" }
'''
    m = Moatd(sink.port, conf=conf)
    ars = ("Authentication-Results: mx.moat.test; spf=pass smtp.mailfrom=example.test\r\n"
           "Authentication-Results: other.example; spf=pass\r\n"
           "Authentication-Results: MX.Moat.Test 1;\r\n\tdkim=pass header.d=example.test\r\n"
           "Authentication-Results: (comment) \"mx.moat.test\"; dmarc=pass\r\n"
           "Authentication-Results: mx.moat.test.evil; spf=pass\r\n")
    r = mail(m.port, sender="always@example.test",
             body=msg("SYM=2", subject="always", extra=ars +
                      "X-Spam-Status: Yes, forged\r\n"))
    t.eq(r["eom"] and r["eom"][0], 250, "clean message accepted")
    h = headers_of(find_msg(sink, "Subject: always"))
    t.eq(re.findall(r"(?m)^X-Spam-Status: .*$", h),
         ["X-Spam-Status: No, score=2.00 required=5.00 tests=SYM"],
         "spam_headers_always: \"No, score=...\" on clean mail, the forged one gone")
    t.ok("X-Spam-Score" not in h, "spam_score_header = \"\": no score header", h)
    t.ok("X-Test: a" in h, "the test filter's add_header is in the message", h)
    t.eq(re.findall(r"(?m)^Authentication-Results: (\S+)", h),
         ["other.example;", "mx.moat.test.evil;"],
         "A-R: our authserv-id removed (any case, with version, quoted, after a comment); "
         "others kept")
    t.ok("dkim=pass" not in h and "dmarc=pass" not in h, "A-R: the folded one removed whole", h)
    r = mail(m.port, sender="always2@example.test", body=msg("SYM=11", subject="custom reply"))
    t.eq(r["eom"], (550, "5.7.350 Spam is not welcome here"),
         "group reject_reply used for score rejections")
    m.stop()

    # authentication_results = false: A-R fields are left alone.
    m = Moatd(sink.port, conf=BASE + 'authserv_id = "mx.moat.test"\n'
              'authentication_results = false\n')
    r = mail(m.port, sender="noar@example.test",
             body=msg(subject="no ar", extra="Authentication-Results: mx.moat.test; spf=pass\r\n"))
    h = headers_of(find_msg(sink, "Subject: no ar"))
    t.ok("Authentication-Results: mx.moat.test; spf=pass" in h,
         "authentication_results = false: incoming A-R kept", h)
    m.stop()
    sink.stop()


def sec_header_bytes():
    """The exact bytes of a rewritten header section (recording upstream)."""
    rec = Recorder()
    m = Moatd(rec.port, conf=BASE + '''filter "test" { header_evidence = "yes" }
group "default" { add_header_score = 5 subject_tag = "[SPAM]" }
''')
    long_subject = "word " * 250
    body = ("Subject: " + long_subject.strip() + "\r\n"
            "X-Moat-Test: SYM=6\r\nX-Spam-Status: forged\r\n\r\nbody\r\n")
    r = mail(m.port, body=body)
    t.eq(r["eom"] and r["eom"][0], 250, "long subject: accepted")
    got = rec.wait_messages(1)
    wire = got[0].decode("latin-1") if got else ""
    hdr = wire.split("\r\n\r\n", 1)[0] + "\r\n"
    t.ok(all(len(l) <= 998 for l in hdr.split("\r\n")), "rewritten header: no line over 998")
    t.ok("\n" not in hdr.replace("\r\n", "") and "\r" not in hdr.replace("\r\n", ""),
         "rewritten header: no bare CR or LF", repr(hdr[:300]))
    fields = re.findall(r"(?m)^[^ \t\r\n][^:\r\n]*:", hdr)
    t.eq([f for f in fields if f.lower() == "subject:"], ["Subject:"],
         "rewritten header: one Subject field")
    subj = re.search(r"Subject: ((?:.*\r\n)(?:[ \t].*\r\n)*)", hdr)
    unfolded = re.sub(r"\r\n[ \t]", " ", subj.group(1)).rstrip("\r\n") if subj else ""
    want = "[SPAM] " + long_subject.strip()
    got = re.sub(r"\s+", " ", unfolded)
    t.ok(got == want, "rewritten header: the long subject (%d bytes), tagged, unfolds to the "
         "original (not truncated)" % len(long_subject.strip()),
         "got %d bytes, want %d; got ends %r" % (len(got), len(want), got[-30:]))
    t.ok(wire.endswith("\r\n\r\nbody\r\n.\r\n"), "rewritten message: body intact", wire[-40:])
    short = "caf\u00e9 " * 100
    r = mail(m.port, body="Subject: %s\r\nX-Moat-Test: SYM=6\r\n\r\nshort\r\n" % short.strip())
    got = rec.wait_messages(2)
    wire = got[1].decode("utf-8", "replace") if len(got) > 1 else ""
    subj = re.search(r"Subject: ((?:.*\r\n)(?:[ \t].*\r\n)*)", wire)
    unfolded = re.sub(r"\s+", " ", subj.group(1)).strip() if subj else ""
    t.eq(unfolded, "[SPAM] " + short.strip(), "a 600-byte UTF-8 subject: tagged, intact")
    m.stop()
    rec.stop()


# =====================================================================
# 3. Rules
# =====================================================================
def sec_rules():
    sink = Sink()
    m = Moatd(sink.port, conf=BASE + '''filter "test" { evidence = "mail:BAD:0" }
rule "BAD" { action = "reject" reply = "554 5.7.1 Go away" }
''')
    r = mail(m.port)
    t.eq(r["mail"], (554, "5.7.1 Go away"), "rule reject on MAIL evidence: refused at MAIL, "
         "the rule's reply verbatim")
    t.eq((r["rcpt"], r["data"]), ([], None), "... the transaction ends there")
    t.ok(m.wait_log(r'event=policy sid=\S+ stage=mail group=default action=reject '
                    r'reason="rule BAD"') is not None, "... an early decision at the mail stage")
    lg = m.log()
    t.ok(not re.search(r'line="MAIL FROM', lg), "... and MAIL never went upstream")
    c = Client(m.port)
    c.cmd("EHLO x.example.test")
    t.eq(c.code("MAIL FROM:<a@example.test>"), 554, "rule reject: again in the same session")
    t.eq(c.code("RCPT TO:<b@example.test>"), 503, "... no transaction open: RCPT 503")
    t.eq(c.code("NOOP"), 250, "... the session goes on")
    c.close()
    t.eq(settle(sink, 0), 0, "nothing delivered")
    m.stop()

    # Rules on list symbols and header evidence: discard, tempfail, reject, accept.
    conf = BASE + '''filter "test" { header_evidence = "yes" }
list "later" { type = "sender" entries = {"later@example.test"} symbol = "LATER_SENDER" }
list "drop" { type = "sender" entries = {"drop@example.test"} symbol = "DROP_SENDER" score = 1.5 }
rule "LATER_SENDER" { action = "tempfail" }
rule "DROP_SENDER" { action = "discard" }
rule "BAD" { action = "reject" reply = "554 5.7.1 Go away" }
rule "SOFT" { action = "tempfail" reply = "450 4.7.2 Come back later" }
rule "DROPME" { action = "discard" }
rule "OK" { action = "accept" }
rule "TAG" { action = "add_header" }
group "default" { reject_score = 10 add_header_score = 5 }
'''
    m = Moatd(sink.port, conf=conf)
    r = mail(m.port, sender="later@example.test")
    t.eq(r["mail"], (451, "4.7.1 Try again later"), "rule tempfail on a list symbol: 451 at MAIL")
    r = mail(m.port, sender="drop@example.test", body=msg(subject="dropped at mail"))
    t.eq((r["mail"][0], r["rcpt"][0][0] if r["rcpt"] else None, r["eom"]),
         (250, 250, (250, "2.0.0 Ok: discarded")),
         "rule discard at MAIL: every step 250, the end of data says discarded")
    t.like(tx_line(m, r'from="drop@example\.test"'), r'verdict=discarded .*action=discard '
           r'.*evidence="DROP_SENDER\(lists:1\.50\)"', "tx log: discarded, with the evidence")
    r = mail(m.port, sender="h1@example.test", body=msg("BAD=1", subject="bad header"))
    t.eq(r["eom"], (554, "5.7.1 Go away"), "rule reject on header evidence: refused at end of data")
    r = mail(m.port, sender="h2@example.test", body=msg("SOFT=0", subject="soft header"))
    t.eq(r["eom"], (450, "4.7.2 Come back later"), "rule tempfail with a reply: that reply")
    r = mail(m.port, sender="h3@example.test", body=msg("DROPME=0", subject="drop header"))
    t.eq(r["eom"], (250, "2.0.0 Ok: discarded"), "rule discard on header evidence: 250 discarded")
    r = mail(m.port, sender="h4@example.test", body=msg("OK=0 SPAM=30", subject="allowed"))
    t.eq(r["eom"] and r["eom"][0], 250, "rule accept: a score of 30 is accepted")
    h = headers_of(find_msg(sink, "Subject: allowed"))
    t.ok(h != "\n" and "X-Spam-Status" not in h, "rule accept: forwarded without spam headers", h)
    r = mail(m.port, sender="h5@example.test", body=msg("TAG=0", subject="tagged by rule"))
    h = headers_of(find_msg(sink, "Subject: tagged by rule"))
    t.like(h, r"X-Spam-Status: Yes, score=0\.00", "rule add_header: spam headers at score 0")
    r = mail(m.port, sender="h6@example.test", body=msg("SPAM=30 DROPME=0", subject="both"))
    t.eq(r["eom"] and r["eom"][0], 250, "discard rule before a reject score: the first final "
         "rule decides at the header stage (discarded)")
    t.eq(sink.count(), 2, "only the allowed and the tagged messages were delivered")
    c = Client(m.port)
    c.cmd("EHLO same.example.test")
    c.cmd("MAIL FROM:<drop@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(msg(subject="discarded in session") + ".\r\n")
    t.eq(c.reply_or(5), (250, "2.0.0 Ok: discarded"), "discard in a session")
    c.cmd("MAIL FROM:<next@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(msg(subject="after a discard") + ".\r\n")
    t.eq(c.reply_or(5)[0], 250, "the next transaction of that session")
    c.cmd("QUIT")
    c.close()
    t.ok(find_msg(sink, "Subject: after a discard") is not None,
         "... is delivered (the discard was for one message only)")
    t.eq(sink.count(), 3, "... and the discarded one was not")
    m.stop()

    # early_reject: a score over reject_score at MAIL refuses MAIL.
    m = Moatd(sink.port, conf=BASE + '''filter "test" { evidence = "mail:BIG:20" }
group "default" { early_reject = true reject_score = 10 }
''')
    r = mail(m.port)
    t.eq(r["mail"], (550, "5.7.1 Sender address rejected"),
         "early_reject: score 20 at MAIL is refused at MAIL")
    m.stop()
    m = Moatd(sink.port, conf=BASE + '''filter "test" { evidence = "mail:BIG:20" }
group "default" { reject_score = 10 }
''')
    r = mail(m.port)
    t.eq((r["mail"][0], r["eom"]), (250, (550, "5.7.1 Message rejected as spam")),
         "without early_reject the same score is refused at end of data")
    m.stop()
    sink.stop()


# =====================================================================
# 6. Groups
# =====================================================================
GROUPS = BASE + '''quarantine_directory = "%s"
filter "test" { header_evidence = "yes" }
rule "BAD" { action = "reject" }
group "vip" { recipients = {"vip.example"} reject_score = 100
              rule "BAD" { action = "add_header" } }
group "raw" { recipients = {"raw.example"} filters = {} }
group "default" { add_header_score = 5 reject_score = 10 }
''' % QDIR


def sec_groups():
    sink = Sink()
    m = Moatd(sink.port, conf=GROUPS)
    c = Client(m.port)
    c.cmd("EHLO g.example.test")
    c.cmd("MAIL FROM:<split@example.test>")
    t.eq(c.code("RCPT TO:<a@vip.example>"), 250, "first recipient (vip) accepted")
    code, text = c.cmd("RCPT TO:<b@other.example>")
    t.eq((code, text[:5]), (452, "4.5.3"), "recipient of another group: 452 4.5.3")
    t.like(text, r"another policy", "... saying why")
    t.eq(c.code("RCPT TO:<A2@VIP.EXAMPLE>"), 250, "another vip recipient (other case) accepted")
    c.cmd("DATA")
    c.send(msg("SYM=12", subject="vip twelve") + ".\r\n")
    t.eq(c.reply_or(5)[0], 250, "score 12 for vip (reject_score 100): accepted")
    c.cmd("MAIL FROM:<split2@example.test>")
    t.eq(c.code("RCPT TO:<b@other.example>"), 250, "the deferred recipient in its own transaction")
    c.cmd("DATA")
    c.send(msg("SYM=12", subject="other twelve") + ".\r\n")
    code, text = c.reply_or(5)
    t.eq((code, text), (550, "5.7.1 Message rejected as spam"),
         "the same message for the default group: rejected")
    c.cmd("QUIT")
    c.close()
    d = find_msg(sink, "Subject: vip twelve")
    t.eq(re.findall(r"X-Rcpt-Args: (.*)\n", d or ""), ["<a@vip.example>", "<A2@VIP.EXAMPLE>"],
         "vip message delivered to the vip recipients only")
    t.like(headers_of(d), r"X-Spam-Status: Yes, score=12\.00 required=5\.00",
           "vip inherits add_header_score 5 from the default group")
    t.like(m.log(), r"event=group-split sid=\S+ rcpt_group=default tx_group=vip",
           "group split logged")
    t.like(tx_line(m, r'from="split@example\.test"'), r" group=vip score=12\.00 action=add_header ",
           "tx log: group=vip")
    t.like(tx_line(m, r'from="split2@example\.test"'), r" group=default score=12\.00 action=reject ",
           "tx log: group=default")

    r = mail(m.port, sender="rev@example.test", rcpts=("b@other.example", "a@vip.example"),
             body=msg("SYM=3", subject="reverse order"))
    t.eq([x[0] for x in r["rcpt"]], [250, 452], "default first, then vip: the vip one gets 452")

    r = mail(m.port, sender="raw@example.test", rcpts=("r@raw.example",),
             body=msg("SYM=12", subject="raw twelve"))
    t.eq(r["eom"] and r["eom"][0], 250, "group with filters = {}: SYM=12 accepted")
    line = tx_line(m, r'from="raw@example\.test"')
    t.like(line, r' group=raw score=0\.00 action=none evidence=""',
           "filters = {}: the test filter did not run (no evidence)")
    h = headers_of(find_msg(sink, "Subject: raw twelve"))
    t.ok("X-Spam-Status" not in h, "filters = {}: no spam headers", h)
    r = mail(m.port, sender="badvip@example.test", rcpts=("v@vip.example",),
             body=msg("BAD=0", subject="bad for vip"))
    t.eq(r["eom"] and r["eom"][0], 250, "group rule overrides the global rule (vip: add_header)")
    t.like(headers_of(find_msg(sink, "Subject: bad for vip")), r"X-Spam-Status: Yes",
           "... tagged as the group's rule says")
    r = mail(m.port, sender="badother@example.test", rcpts=("o@other.example",),
             body=msg("BAD=0", subject="bad for other"))
    t.eq(r["eom"], (550, "5.7.1 Message rejected"), "global rule reject for the default group")
    t.ok(m.alive(), "moatd alive")
    m.stop()
    sink.stop()


# =====================================================================
# 7. Filter failure policies
# =====================================================================
def sec_failure_policy():
    sink = Sink()
    for on_error, want in (("tempfail", (451, "4.3.0 Filter test failed, try again later")),
                           ("reject", (550, "5.7.1 Message refused (filter test failed)"))):
        m = Moatd(sink.port, conf=BASE + 'filter "test" { error_stage = "rcpt" on_error = "%s" }\n'
                  % on_error)
        r = mail(m.port, sender="err-%s@example.test" % on_error)
        t.eq(r["rcpt"][:1], [want], "filter error at RCPT, on_error=%s: %d" % (on_error, want[0]))
        t.like(m.log(), r"event=filter-error sid=\S+ filter=test stage=rcpt on_error=%s" % on_error,
               "... event=filter-error logged")
        t.eq(r["data"], None, "... no DATA")
        m.stop()
    t.eq(settle(sink, 0), 0, "nothing delivered under tempfail/reject")

    m = Moatd(sink.port, conf=BASE + 'filter "test" { error_stage = "rcpt" on_error = "continue" '
              'evidence = "mail:SEEN:1" }\n')
    r = mail(m.port, sender="err-continue@example.test", body=msg(subject="error continue"))
    t.eq((r["rcpt"][0][0], r["eom"] and r["eom"][0]), (250, 250),
         "filter error, on_error=continue: delivered")
    t.ok(find_msg(sink, "Subject: error continue") is not None, "... the upstream has it")
    t.like(m.log(), r"event=filter-error sid=\S+ filter=test stage=rcpt on_error=continue",
           "... event=filter-error logged")
    t.like(tx_line(m, r'from="err-continue@example\.test"'),
           r'evidence="SEEN\(test:1\.00\) FILTER_ERROR\(test:0\.00\)"',
           "... tx log has FILTER_ERROR evidence from the filter")
    m.stop()

    m = Moatd(sink.port, conf=BASE + 'filter "test" { error_stage = "eom" }\n')
    r = mail(m.port, sender="err-eom@example.test")
    t.eq(r["eom"], (451, "4.3.0 Filter test failed, try again later"),
         "filter error at EOM (default on_error=tempfail): 451 at end of data")
    m.stop()

    # Evidence a refused recipient brought goes with it.
    m = Moatd(sink.port, conf=BASE + 'filter "test" { evidence = "rcpt:PER_RCPT:2" '
              'reject_rcpt = "carol@example.test" }\n')
    r = mail(m.port, sender="perrcpt@example.test",
             rcpts=("bob@example.test", "carol@example.test", "dave@example.test"),
             body=msg(subject="per rcpt"))
    t.eq([x[0] for x in r["rcpt"]], [250, 550, 250], "test filter refuses carol")
    t.like(tx_line(m, r'from="perrcpt@example\.test"'), r" score=4\.00 ",
           "score counts the accepted recipients' evidence only (2 + 2)")
    m.stop()
    sink.stop()


# =====================================================================
# 9. moat scan
# =====================================================================
_nconf = [0]


def scan_conf(body):
    """A configuration file for moat scan (no moatd reads it)."""
    _nconf[0] += 1
    path = os.path.join(WORK, "scan-%d.conf" % _nconf[0])
    return write(path, 'hostname = "moat.test"\nupstream = "127.0.0.1:1"\n'
                 'spool_directory = "%s"\n' % WORK + body)


def sec_scan():
    conf = scan_conf(THRESHOLDS)
    files = {}
    for s in (3, 6, 9, 12):
        files[s] = write(os.path.join(WORK, "msg%d.eml" % s),
                         msg("SYM=%d" % s, subject="scan %d" % s).replace("\r\n", "\n"))
    base = ["scan", "--from", "alice@example.test", "--rcpt", "bob@example.test"]
    for s, rc_want, action in ((3, 0, "none"), (6, 7, "add_header"), (9, 6, "quarantine"),
                               (12, 4, "reject")):
        rc, out, err = moat(conf, *base, files[s])
        t.eq(rc, rc_want, "scan SYM=%d: exit %d (%s)" % (s, rc_want, action))
        t.like(out, r"(?m)^action: %s$" % action, "scan SYM=%d: text says action: %s" % (s, action))
    rc, js, raw = moat_json(conf, *(base + ["--json", files[12]]))
    t.eq(rc, 4, "scan --json SYM=12: exit 4")
    if js:
        t.eq((js.get("action"), js.get("score"), js.get("group"), js.get("stage"), js.get("exit")),
             ("reject", 12, "default", "eom", 4), "scan --json: action, score, group, stage, exit")
        t.eq(js.get("reply"), "550 5.7.1 Message rejected as spam", "scan --json: the reply")
        t.eq(js.get("reason"), "score 12.00 >= 10.00", "scan --json: the reason")
        t.eq([(e.get("symbol"), e.get("score"), e.get("filter"), e.get("stage"))
              for e in js.get("evidence", [])], [("SYM", 12, "test", "header")],
             "scan --json: the evidence list")
        t.eq(js.get("envelope", {}).get("from"), "alice@example.test", "scan --json: envelope")
        t.eq([(x.get("address"), x.get("accepted")) for x in js.get("recipients", [])],
             [("bob@example.test", True)], "scan --json: recipients")
        t.eq([f.get("name") for f in js.get("filters", [])], ["test"], "scan --json: filters run")
    rc, js, raw = moat_json(conf, *(base + ["--json", files[6]]))
    if js:
        t.like(js.get("headers"), r"X-Spam-Status: Yes, score=6\.00 required=5\.00 tests=SYM\n",
               "scan --json add_header: the headers moatd would add")
        t.like(js.get("headers"), r"Subject: \[SPAM\] scan 6", "scan --json: the tagged subject")
        t.eq(js.get("reply"), None, "scan --json add_header: reply null")
    with open(files[9], "rb") as f:
        rc, out, err = moat(conf, *base, stdin=f.read())
    t.eq(rc, 6, "scan from standard input: exit 6 (quarantine)")
    rc, out, err = moat(conf, "quarantine", "list")
    t.eq(out, "", "scan stores nothing in the quarantine")

    # rules: discard, tempfail, early reject at MAIL
    rconf = scan_conf(BASE + '''filter "test" { header_evidence = "yes" }
list "later" { type = "sender" entries = {"later@example.test"} symbol = "LATER_SENDER" }
rule "LATER_SENDER" { action = "tempfail" }
rule "DROPME" { action = "discard" }
rule "BAD" { action = "reject" reply = "554 5.7.1 Go away" }
''')
    f = write(os.path.join(WORK, "drop.eml"), msg("DROPME=0"))
    rc, out, err = moat(rconf, "scan", "--rcpt", "bob@example.test", f)
    t.eq(rc, 5, "scan: discard rule, exit 5")
    rc, js, raw = moat_json(rconf, "scan", "--from", "later@example.test", "--rcpt",
                            "bob@example.test", "--json", f)
    t.eq(rc, 3, "scan: tempfail rule at MAIL, exit 3")
    if js:
        t.eq((js.get("action"), js.get("stage"), js.get("reply")),
             ("tempfail", "mail", "451 4.7.1 Try again later"),
             "scan --json: tempfail decided at the mail stage")
    f = write(os.path.join(WORK, "bad.eml"), msg("BAD=0"))
    rc, js, raw = moat_json(rconf, "scan", "--rcpt", "bob@example.test", "--json", f)
    if js:
        t.eq((rc, js.get("action"), js.get("reply")), (4, "reject", "554 5.7.1 Go away"),
             "scan --json: header rule reject with the rule's reply")

    # lists: refused at connect
    lconf = scan_conf(BASE + 'list "blocked" { type = "client" entries = {"192.0.2.0/24"} '
                      'action = "reject" }\n')
    rc, js, raw = moat_json(lconf, "scan", "--ip", "192.0.2.7", "--rcpt", "bob@example.test",
                            "--json", files[3])
    t.eq(rc, 4, "scan --ip in a client deny list: exit 4")
    if js:
        t.eq((js.get("action"), js.get("stage"), js.get("reply")),
             ("reject", "connect", "554 5.7.1 Access denied"),
             "scan --json: rejected at connect with 554")
        t.eq([e.get("symbol") for e in js.get("evidence", [])], ["LIST_BLOCKED"],
             "scan --json: the list's evidence")
    rc, out, err = moat(lconf, "scan", "--ip", "192.0.2.7", "--rcpt", "bob@example.test", files[3])
    t.like(out, r"(?m)^action: reject at connect$", "scan text: action: reject at connect")
    rc, out, err = moat(lconf, "scan", "--ip", "198.51.100.1", "--rcpt", "bob@example.test",
                        files[3])
    t.eq(rc, 0, "scan --ip not listed: exit 0")

    # groups: the second recipient of another group is deferred
    gconf = scan_conf(GROUPS)
    rc, js, raw = moat_json(gconf, "scan", "--rcpt", "a@vip.example", "--rcpt", "b@other.example",
                            "--json", files[12])
    if js:
        rr = js.get("recipients", [])
        t.eq([(x.get("address"), x.get("group"), x.get("accepted")) for x in rr],
             [("a@vip.example", "vip", True), ("b@other.example", "default", False)],
             "scan --json two groups: the first accepted, the second not")
        t.like(rr[1].get("reply") if len(rr) > 1 else None, r"^452 4\.5\.3 ",
               "scan --json: the second recipient's reply is 452 4.5.3")
        t.eq((js.get("group"), js.get("action")), ("vip", "add_header"),
             "scan --json: vip's thresholds applied (12 < 100)")
    t.eq(rc, 7, "scan two groups: exit 7 (add_header for vip)")
    rc, js, raw = moat_json(gconf, "scan", "--rcpt", "r@raw.example", "--json", files[12])
    if js:
        t.eq((rc, js.get("evidence"), js.get("group")), (0, [], "raw"),
             "scan: group with filters = {} gets no evidence")

    # usage
    rc, out, err = moat(conf, "scan", files[3])
    t.eq(rc, 2, "scan without --rcpt: exit 2")
    rc, out, err = moat(conf, "scan", "--ip", "not-an-ip", "--rcpt", "b@example.test", files[3])
    t.eq(rc, 2, "scan --ip not an address: exit 2")
    rc, out, err = moat(conf, "scan", "--rcpt", "b@example.test", os.path.join(WORK, "missing"))
    t.eq(rc, 1, "scan of a missing file: exit 1")


# =====================================================================
# 10. Reload
# =====================================================================
def sec_reload():
    sink = Sink()
    lf = write(os.path.join(WORK, "reload-senders.txt"), "nobody2@nowhere.test\n")
    deny = ('list "deny" { type = "sender" entries = {"%s"} action = "reject" }\n'
            'list "fromfile" { type = "sender" file = {"' + lf + '"} action = "reject" }\n')
    m = Moatd(sink.port, conf=BASE + deny % "nobody@nowhere.test")
    original = open(m.conf).read()
    r = mail(m.port, sender="alice@example.test", body=msg(subject="before reload"))
    t.eq(r["eom"] and r["eom"][0], 250, "before reload: alice delivered")

    old = Client(m.port)
    t.eq(old.code("EHLO old.example.test"), 250, "a session opened before the reload")

    write(m.conf, original.replace("nobody@nowhere.test", "alice@example.test"))
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"event=reloaded generation=2") is not None, "SIGHUP: event=reloaded")
    r = mail(m.port, sender="alice@example.test")
    t.eq(r["mail"], (550, "5.7.1 Sender address rejected"), "after reload: alice refused at MAIL")
    r = mail(m.port, sender="carol@example.test", body=msg(subject="carol after reload"))
    t.eq(r["eom"] and r["eom"][0], 250, "after reload: others still delivered")

    t.eq(old.code("MAIL FROM:<alice@example.test>"), 250,
         "the session opened before the reload keeps the old configuration")
    old.cmd("RCPT TO:<bob@example.test>")
    old.cmd("DATA")
    old.send(msg(subject="old session") + ".\r\n")
    t.eq(old.reply_or(5)[0], 250, "... and its message is delivered")
    t.ok(find_msg(sink, "Subject: old session") is not None, "... the upstream has it")
    old.cmd("QUIT")
    old.close()
    t.ok(m.wait_log(r"event=config-retired generation=1") is not None,
         "the old generation is retired when its last session ends")

    # A broken configuration is not applied.
    write(m.conf, original.replace("nobody@nowhere.test", "bad..domain.test"))
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"event=reload-failed") is not None, "broken config: event=reload-failed")
    t.like(m.log(), r"event=config-error file=\S+ line=\d+ msg=\"list \\?\"deny\\?\": [^\n]*bad\.\.domain",
           "... the error is logged with file and line")
    t.ok(m.alive(), "... moatd keeps running")
    r = mail(m.port, sender="alice@example.test")
    t.eq(r["mail"] and r["mail"][0], 550, "... and the previous configuration stays in force")
    r = mail(m.port, sender="dave@example.test", body=msg(subject="dave after failed reload"))
    t.eq(r["eom"] and r["eom"][0], 250, "... delivering as before")

    # A missing list file is an error too.
    write(m.conf, original.replace(lf, lf + ".missing"))
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"(?s)event=reload-failed.*event=reload-failed") is not None,
         "missing list file: reload-failed")
    r = mail(m.port, sender="alice@example.test")
    t.eq(r["mail"] and r["mail"][0], 550, "... the previous configuration stays in force")

    # A reload that fixes it again, and re-reads the list file.
    write(lf, "erin@example.test\n")
    write(m.conf, original)
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"event=reloaded generation=3") is not None, "fixed config: reloaded")
    r = mail(m.port, sender="alice@example.test", body=msg(subject="alice again"))
    t.eq(r["eom"] and r["eom"][0], 250, "... alice delivered again")
    r = mail(m.port, sender="erin@example.test")
    t.eq(r["mail"] and r["mail"][0], 550, "... the list file is read again on reload")
    t.eq(m.stop(), 0, "moatd exits 0 after reloads")
    sink.stop()


def sec_helo_decisions():
    """An accept or discard decided at HELO goes with that HELO: a new
    EHLO (or STARTTLS) starts over; one decided at CONNECT stays."""
    lists = '''
list "dischelo" { type = "helo" entries = {"discard.helo.test"} action = "discard" }
list "okhelo" { type = "helo" entries = {"friend.helo.test"} action = "accept" }
list "disclient" { type = "client" entries = {"127.0.0.7"} action = "discard" }
'''

    def one(c, subject):
        c.cmd("MAIL FROM:<h@example.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        c.cmd("DATA")
        c.send(msg(subject=subject) + ".\r\n")
        return c.reply_or(5)

    # Discard, without other filters.
    sink = Sink()
    m = Moatd(sink.port, conf=BASE + lists)
    c = Client(m.port)
    c.cmd("EHLO discard.helo.test")
    t.eq(one(c, "disc helo")[0], 250, "HELO discard list: 250 to the client")
    c.cmd("EHLO other.helo.test")
    t.eq(one(c, "after disc")[0], 250, "then another EHLO: 250")
    c.cmd("QUIT")
    c.close()
    t.ok(find_msg(sink, "Subject: after disc") is not None,
         "the message after the discarding HELO was delivered (the discard went with it)")
    t.ok(find_msg(sink, "Subject: disc helo", timeout=0.5) is None,
         "the one under the discarding HELO was not")
    c = Client(m.port, source="127.0.0.7")
    c.cmd("EHLO friend.helo.test")
    t.eq(one(c, "client discard")[0], 250, "client discard list: 250")
    c.cmd("EHLO other.helo.test")
    t.eq(one(c, "client discard 2")[0], 250, "after a new EHLO: still 250 ...")
    c.cmd("QUIT")
    c.close()
    t.ok(find_msg(sink, "Subject: client discard", timeout=0.5) is None,
         "... and still discarded: a CONNECT decision survives EHLO")
    t.eq(sink.count(), 1, "exactly one message delivered")
    m.stop()
    sink.stop()

    # Accept, in front of a filter that rejects everything at the end.
    sink = Sink()
    m = Moatd(sink.port, conf=BASE + 'filter "test" { reject_stage = "eom" }\n' + lists)
    c = Client(m.port)
    c.cmd("EHLO friend.helo.test")
    t.eq(one(c, "friend")[0], 250, "HELO accept list: the rejecting filter is skipped")
    c.cmd("EHLO other.helo.test")
    t.eq(one(c, "other after friend"), (550, "5.7.1 Rejected by test filter at eom"),
         "then another EHLO: the HELO's accept is gone, the filter rejects")
    c.cmd("QUIT")
    c.close()
    m.stop()
    sink.stop()

for _sec in (sec_client_lists, sec_name_lists, sec_allow_list, sec_helo_decisions, sec_thresholds,
             sec_every_threshold, sec_headers_always, sec_header_bytes, sec_rules, sec_groups,
             sec_failure_policy, sec_scan, sec_reload):
    run_section(_sec)

t.diag("elapsed %.1fs" % (time.monotonic() - T_START))
t.done()
