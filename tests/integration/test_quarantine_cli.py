"""The moat tool's quarantine commands: list, show, release, delete.

Quarantined messages are made here by writing <id>.eml and <id>.meta in
the format documented in proxy/quarantine.h (what moatd writes), so this
also pins that format. Releases go to Postfix's smtp-sink (envelope and
content as smtp-sink dumps them), to the recording upstream where the exact
wire bytes matter (dot-stuffing, CRLF normalisation, MAIL parameters), and
to a throwaway Postfix for a recipient refused among accepted ones. Every
failed release must leave the message in the quarantine and exit 1; usage
errors exit 2.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Sink, Recorder, Postfix, MOATD,  # noqa: E402
                      free_port, postfix_usable, tmpdir)

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))

t = TAP()
if not os.access(MOAT, os.X_OK):
    print("1..0 # SKIP %s not built" % MOAT)
    sys.exit(0)

WORK = tmpdir()
QDIR = os.path.join(WORK, "quarantine")
CRLF = b"\r\n"


def config(upstream_port, name="moat.conf"):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write('hostname = "moat.test"\n')
        f.write('upstream = "127.0.0.1:%d"\n' % upstream_port)
        f.write('spool_directory = "%s"\n' % WORK)
        f.write('quarantine_directory = "%s"\n' % QDIR)
    return path


def moat(conf, *args):
    """(exit status, stdout bytes, stderr text) of one moat run."""
    p = subprocess.run([MOAT, "-c", conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


_seq = [0]


def make_id(when):
    _seq[0] += 1
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(when)) + "-%016x" % (0xabc000 + _seq[0])


def store(eml, when=1700000000, sender="alice@example.test",
          rcpts=("bob@example.test",), helo="client.example.test",
          client="192.0.2.7", auth=None, score=12.5, reason="score 12.50 >= 10",
          evidence=("BAYES_99 5.50 spam token list", "RBL 7.00 dnsbl")):
    """Write a quarantined message the way moatd does; returns its id."""
    os.makedirs(QDIR, mode=0o750, exist_ok=True)
    mid = make_id(when)
    with open(os.path.join(QDIR, mid + ".eml"), "wb") as f:
        f.write(eml)
    lines = ["id: " + mid,
             "time: %d" % when,
             "date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when)),
             "sid: 00000000000000a1",
             "client: " + client]
    if helo is not None:
        lines.append("helo: " + helo)
    lines.append("sender: <%s>" % sender)
    lines += ["rcpt: <%s>" % r for r in rcpts]
    if auth is not None:
        lines.append("auth: " + auth)
    lines += ["score: %.2f" % score, "action: quarantine", "reason: " + reason]
    lines += ["evidence: " + e for e in evidence]
    with open(os.path.join(QDIR, mid + ".meta"), "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    return mid


def present(mid):
    return (os.path.exists(os.path.join(QDIR, mid + ".eml")),
            os.path.exists(os.path.join(QDIR, mid + ".meta")))


def unstuff(wire):
    """Wire content (ending with .CRLF) back to the message."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n", wire[-10:]
    lines = wire[:-3].split(CRLF)
    return CRLF.join(l[1:] if l.startswith(b".") else l for l in lines)


def sink_message(dump):
    """The message part of an smtp-sink dump (LF line ends): what follows
    smtp-sink's three-line Received header, without the final empty line."""
    m = re.search(r"^Received: from [^\n]*\n\tby [^\n]*\(smtp-sink\)[^\n]*\n\t[^\n]*\n",
                  dump, re.M)
    if m is None or not dump.endswith("\n\n"):
        return None
    return dump[m.end():-1]


BODY = (b"From: Alice <alice@example.test>\r\n"
        b"To: Bob <bob@example.test>\r\n"
        b"Subject: quarantined \x1b[31mred\r\n"
        b"\r\n"
        b"first line\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b"\r\n"
        b".\r\n"
        b"middle\r\n"
        b".\r\n")      # the last line is "." itself

# ---------------------------------------------------------------- usage
dead = free_port()
conf = config(dead)
rc, out, err = moat(conf)
t.eq(rc, 2, "no command: exit 2")
rc, out, err = moat(conf, "frobnicate")
t.eq(rc, 2, "unknown command: exit 2")
rc, out, err = moat(conf, "quarantine")
t.eq(rc, 2, "quarantine without a subcommand: exit 2")
rc, out, err = moat(conf, "quarantine", "show")
t.eq(rc, 2, "show without an id: exit 2")
rc, out, err = moat(conf, "quarantine", "list", "--bogus")
t.eq(rc, 2, "unknown option: exit 2")
rc, out, err = moat(conf, "help")
t.ok(rc == 0 and b"quarantine release" in out, "help lists the commands", out)
rc, out, err = moat(os.path.join(WORK, "missing.conf"), "quarantine", "list")
t.eq(rc, 1, "unreadable configuration: exit 1")

# ---------------------------------------------------------------- list
rc, out, err = moat(conf, "quarantine", "list")
t.ok(rc == 0 and out == b"", "empty (missing) quarantine lists nothing", (rc, out, err))
rc, out, err = moat(conf, "quarantine", "list", "--json")
t.ok(rc == 0 and json.loads(out) == [], "empty --json is []", (rc, out, err))

c_id = store(BODY, when=1700000300, sender="", rcpts=("bob@example.test",),
             helo=None, evidence=())
a_id = store(BODY, when=1700000100,
             rcpts=("bob@example.test", "carol@example.test", "dave@example.test"),
             auth="alice", reason="score 12.50 >= 10, caf\u00e9")
b_id = store(BODY, when=1700000200, evidence=("EMPTY 0.00 f",))
with open(os.path.join(QDIR, "README"), "w") as f:
    f.write("not a message\n")
with open(os.path.join(QDIR, ".tmp.meta.tmp"), "w") as f:
    f.write("")

rc, out, err = moat(conf, "quarantine", "list")
lines = out.decode("utf-8").splitlines()
t.eq(rc, 0, "list: exit 0")
t.eq([l.split()[0] for l in lines], [a_id, b_id, c_id], "list: one line each, oldest first")
if len(lines) == 3:
    t.like(lines[0], r"^%s  2023-11-14T22:15:00Z  192\.0\.2\.7  <alice@example\.test>  "
           r"<bob@example\.test> \(\+2\)  12\.50  score 12\.50 >= 10, caf\u00e9$" % a_id,
           "list line: id, date, client, sender, first rcpt (+N), score, reason")
    t.like(lines[2], r"  <>  <bob@example\.test>  ", "list line: null sender as <>")

rc, out, err = moat(conf, "quarantine", "list", "--json")
try:
    js = json.loads(out.decode("utf-8"))
except ValueError as e:
    js = None
    t.diag("invalid JSON: %s\n%r" % (e, out))
t.ok(rc == 0 and isinstance(js, list) and len(js) == 3, "list --json: an array of 3")
if js and len(js) == 3:
    t.eq([e["id"] for e in js], [a_id, b_id, c_id], "json: oldest first")
    a = js[0]
    t.eq((a["time"], a["client"], a["helo"], a["sender"], a["rcpts"], a["auth"],
          a["score"], a["action"], a["reason"]),
         (1700000100, "192.0.2.7", "client.example.test", "alice@example.test",
          ["bob@example.test", "carol@example.test", "dave@example.test"], "alice",
          12.5, "quarantine", "score 12.50 >= 10, caf\u00e9"),
         "json: every field of the metadata")
    t.eq(a["evidence"], [{"symbol": "BAYES_99", "score": 5.5, "filter": "spam",
                          "detail": "token list"},
                         {"symbol": "RBL", "score": 7.0, "filter": "dnsbl", "detail": ""}],
         "json: evidence split into symbol, score, filter, detail")
    t.eq((js[2]["sender"], js[2]["helo"], js[2]["auth"], js[2]["evidence"]),
         ("", None, None, []), "json: null sender \"\", absent helo/auth null")

# ---------------------------------------------------------------- show
rc, out, err = moat(conf, "quarantine", "show", a_id)
text = out.decode("utf-8", "replace")
t.eq(rc, 0, "show: exit 0")
t.like(text, r"\Aid: %s\n" % a_id, "show: metadata first")
t.like(text, r"\nsender: <alice@example\.test>\nrcpt: <bob@example\.test>\n"
       r"rcpt: <carol@example\.test>\nrcpt: <dave@example\.test>\nauth: alice\n",
       "show: envelope")
t.like(text, r"\nevidence: BAYES_99 5\.50 spam token list\n", "show: evidence")
t.like(text, r"\nsize: %d\n\nFrom: Alice <alice@example\.test>\nTo: Bob <bob@example\.test>\n"
       % len(BODY), "show: size, then the headers with LF line ends")
t.ok("\x1b" not in text and "Subject: quarantined \\x1b[31mred\n" in text,
     "show: control bytes in headers are escaped", text)
t.ok("first line" not in text, "show: the body is not shown", text)
rc2, out2, _ = moat(conf, "quarantine", "show", a_id, "--headers")
t.ok(rc2 == 0 and out2 == out, "show --headers is the default")
rc, out, err = moat(conf, "quarantine", "show", "--raw", a_id)
t.ok(rc == 0 and out == BODY, "show --raw: the .eml exactly", (rc, out[:80]))

# ---------------------------------------------------------------- bad ids
for bad in ("../x", "", "a/b", "..", "a.b"):
    rc, out, err = moat(conf, "quarantine", "show", bad)
    t.ok(rc == 1 and "invalid" in err, "show %r refused" % bad, (rc, err))
rc, out, err = moat(conf, "quarantine", "release", "../" + a_id)
t.ok(rc == 1 and "invalid" in err, "release of a path refused", (rc, err))
rc, out, err = moat(conf, "quarantine", "delete", "../x")
t.ok(rc == 1 and "invalid" in err, "delete of a path refused", (rc, err))
rc, out, err = moat(conf, "quarantine", "show", "20200101T000000-0000000000000000")
t.ok(rc == 1 and "no such message" in err, "show of an unknown id: exit 1", (rc, err))
t.eq(present(a_id), (True, True), "nothing deleted by bad ids")

# ---------------------------------------------------------------- release to smtp-sink
sink = Sink()
conf = config(sink.port)
rc, out, err = moat(conf, "quarantine", "release", a_id)
t.ok(rc == 0, "release to the configured upstream (smtp-sink): exit 0", (rc, out, err))
t.like(out.decode(), r"^released %s: 250 .*\n\Z" % a_id, "release prints the server's reply")
t.eq(present(a_id), (False, False), "released message deleted")
msgs = sink.messages()
t.eq(len(msgs), 1, "smtp-sink got one message")
if msgs:
    d = msgs[0]
    t.like(d, r"X-Helo-Args: moat\.test\n", "EHLO with the configured hostname")
    t.like(d, r"X-Mail-Args: <alice@example\.test>( [^\n]*)?\n", "original sender")
    t.eq(re.findall(r"X-Rcpt-Args: (.*)\n", d),
         ["<bob@example.test>", "<carol@example.test>", "<dave@example.test>"],
         "original recipients, in order")
    t.eq(sink_message(d), BODY.decode("latin-1").replace("\r\n", "\n"),
         "content identical (smtp-sink un-stuffs, dumps LF)")

# null sender, --keep
rc, out, err = moat(conf, "quarantine", "release", c_id, "--keep")
t.ok(rc == 0, "release --keep: exit 0", (rc, err))
t.eq(present(c_id), (True, True), "--keep: message still there")
msgs = sink.messages(count=2)
t.ok(len(msgs) == 2 and any(re.search(r"X-Mail-Args: <>", m) for m in msgs),
     "null sender released as MAIL FROM:<>", msgs)

# ---------------------------------------------------------------- exact wire bytes
rec = Recorder()
odd = (b"Subject: odd line ends\n"          # bare LF
       b"X-8bit: caf\xc3\xa9\r\n"
       b"\r\n"
       b".dot after bare LF\n"
       b"bare\rCR\r\n"
       b"no final line end")
odd_wire = (b"Subject: odd line ends\r\nX-8bit: caf\xc3\xa9\r\n\r\n"
            b"..dot after bare LF\r\nbare\r\nCR\r\nno final line end\r\n.\r\n")
o_id = store(odd, rcpts=("bob@example.test",))
rc, out, err = moat(conf, "quarantine", "release", o_id, "--to", "127.0.0.1:%d" % rec.port)
t.ok(rc == 0, "release --to the recorder: exit 0", (rc, out, err))
rec.wait_messages(1)
t.eq(rec.messages[:1], [odd_wire],
     "wire: dot-stuffed, bare LF and CR sent as CRLF, final line end added")
cmds = [c.decode("latin-1") for c in (rec.commands[0] if rec.commands else [])]
t.ok(len(cmds) >= 1 and cmds[0] == "EHLO moat.test\r\n", "EHLO first", cmds)
mail = [c for c in cmds if c.startswith("MAIL")]
t.ok(len(mail) == 1 and re.match(r"MAIL FROM:<alice@example\.test>( \S+)*\r\n\Z", mail[0])
     and " BODY=8BITMIME" in mail[0] and " SIZE=%d" % len(odd) in mail[0]
     and "SMTPUTF8" not in mail[0],
     "MAIL: BODY=8BITMIME for 8-bit content, SIZE, no SMTPUTF8 for ASCII addresses", mail)
t.eq(cmds[-1:], ["QUIT\r\n"], "QUIT last")

# the message moat stored is the one released: unstuff(wire) == .eml
b_rec = Recorder()
rc, out, err = moat(conf, "quarantine", "release", b_id, "--to", "127.0.0.1:%d" % b_rec.port)
b_rec.wait_messages(1)
t.ok(rc == 0 and len(b_rec.messages) == 1 and unstuff(b_rec.messages[0]) == BODY,
     "wire content un-stuffed equals the .eml byte for byte", (rc, err, b_rec.messages))

# SMTPUTF8
u_id = store(b"Subject: utf8\r\n\r\nhi\r\n", sender="j\u00f6rg@example.test",
             rcpts=("b\u00fccher@example.test",))
rc, out, err = moat(conf, "quarantine", "release", u_id, "--to", "127.0.0.1:%d" % rec.port)
t.ok(rc == 0, "non-ASCII addresses: released", (rc, err))
mail = [c for c in rec.commands[-1] if c.startswith(b"MAIL")] if rec.commands else []
t.ok(len(mail) == 1 and mail[0] == "MAIL FROM:<j\u00f6rg@example.test> SMTPUTF8 SIZE=21\r\n".encode(),
     "MAIL with SMTPUTF8 (offered by the server)", mail)
u_id = store(b"Subject: utf8\r\n\r\nhi\r\n", sender="j\u00f6rg@example.test")
rc, out, err = moat(conf, "quarantine", "release", u_id)
t.ok(rc == 1 and "SMTPUTF8" in err and present(u_id) == (True, True),
     "non-ASCII address, server without SMTPUTF8 (smtp-sink): exit 1, kept", (rc, err))

# ---------------------------------------------------------------- failures
f_id = store(BODY, rcpts=("bob@example.test", "carol@example.test"))
rc, out, err = moat(config(free_port(), "dead.conf"), "quarantine", "release", f_id)
t.ok(rc == 1 and "connect" in err and present(f_id) == (True, True),
     "upstream not running: exit 1, message kept", (rc, err))

for args, stage, name in ((("-f", "RCPT"), "RCPT", "every recipient refused (5xx)"),
                          (("-r", "RCPT"), "RCPT", "every recipient refused (4xx)"),
                          (("-f", "MAIL"), "MAIL", "sender refused"),
                          (("-f", "DATA"), "DATA", "DATA refused"),
                          (("-f", "."), "end of data", "content refused at the final dot"),
                          (("-q", "."), "end of data", "connection lost after the final dot")):
    s2 = Sink(args=args)
    rc, out, err = moat(config(s2.port, "refuse.conf"), "quarantine", "release", f_id)
    t.ok(rc == 1 and present(f_id) == (True, True), name + ": exit 1, message kept",
         (rc, out, err))
    t.ok(("failed at %s: " % stage) in err, name + ": stage and server reply reported", err)
    s2.stop()
t.like(err, r"may have been delivered", "lost reply after the dot: the uncertainty is said")

r2 = Recorder(reply={"RCPT": "550 5.1.1 no such user"})
rc, out, err = moat(conf, "quarantine", "release", f_id, "--to", "127.0.0.1:%d" % r2.port)
t.ok(rc == 1 and err.count("refused: 550 5.1.1 no such user") == 2,
     "each refused recipient reported with the server's reply", err)

r3 = Recorder(reply={"EHLO": "502 5.5.2 no EHLO here"}, ehlo_caps=[])
rc, out, err = moat(conf, "quarantine", "release", f_id, "--to", "127.0.0.1:%d" % r3.port)
hcmds = [c for c in (r3.commands[0] if r3.commands else []) if c.startswith(b"HELO")]
t.ok(rc == 0 and hcmds == [b"HELO moat.test\r\n"], "EHLO refused: HELO fallback", (rc, err))
f_id = store(BODY, rcpts=("bob@example.test",))

r4 = Recorder(raw={"MAIL": b"250-first\r\n250-second\r\n250 third\r\n"},
              final="250-2.0.0 multi\r\n250 2.0.0 Ok: queued as MULTI")
rc, out, err = moat(conf, "quarantine", "release", f_id, "--to", "127.0.0.1:%d" % r4.port)
t.ok(rc == 0 and out.decode().strip() == "released %s: 250 2.0.0 Ok: queued as MULTI" % f_id,
     "multi-line replies parsed; the last line reported", (rc, out, err))

n_id = store(BODY, rcpts=())
rc, out, err = moat(conf, "quarantine", "release", n_id)
t.ok(rc == 1 and "no recipients" in err and present(n_id) == (True, True),
     "a message without recipients is not released", (rc, err))

rc, out, err = moat(conf, "quarantine", "release", b_id, "--to", "nonsense")
t.eq(rc, 2, "release --to without a port: exit 2")

# ---------------------------------------------------------------- delete
d1 = store(BODY)
d2 = store(BODY)
rc, out, err = moat(conf, "quarantine", "delete", d1, d2)
t.ok(rc == 0 and present(d1) == (False, False) and present(d2) == (False, False),
     "delete of two messages", (rc, err))
rc, out, err = moat(conf, "quarantine", "delete", d1)
t.ok(rc == 1 and "no such message" in err, "delete again: exit 1", (rc, err))
d3 = store(BODY)
rc, out, err = moat(conf, "quarantine", "delete", "../x", d3)
t.ok(rc == 1 and present(d3) == (False, False),
     "a bad id fails the command but the good one is deleted", (rc, err))
rc, out, err = moat(conf, "quarantine", "delete")
t.eq(rc, 2, "delete without an id: exit 2")

# ---------------------------------------------------------------- partial, real Postfix
why = postfix_usable()
if why:
    t.skip("one recipient refused by Postfix, one accepted", why)
else:
    pf = Postfix(mailboxes=("bob@example.test",))
    prc, pout = pf.start()
    if prc != 0:
        t.ok(False, "Postfix started", pout)
    else:
        p_id = store(b"Subject: partial\r\nMessage-ID: <partial@example.test>\r\n\r\nhello\r\n",
                     rcpts=("nosuchuser@example.test", "bob@example.test"))
        rc, out, err = moat(conf, "quarantine", "release", p_id,
                            "--to", "127.0.0.1:%d" % pf.port)
        t.ok(rc == 1 and re.search(r"<nosuchuser@example\.test> refused: 550", err),
             "Postfix refuses one recipient: reported, exit 1", (rc, out, err))
        t.like(out.decode(), r"released %s to 1 of 2 recipients: 250 " % p_id,
               "delivered to the accepted one")
        t.eq(present(p_id), (True, True), "kept: nothing lost for the refused recipient")
        got = pf.wait_maildir("bob", b"Message-ID: <partial@example.test>")
        t.ok(len(got) == 1 and got[0].endswith(b"\n\nhello\n"),
             "Postfix delivered it to bob", got)

t.done()
