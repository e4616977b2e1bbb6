"""Scripted SMTP dialogues through moatd with smtp-sink (and, where the
exact bytes matter, the recording upstream) behind it."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Sink, Moatd, Client, Recorder, send_mail  # noqa: E402

t = TAP()


def find_msg(sink, needle, count, timeout=5.0):
    """The dumped message containing needle (smtp-sink dump files have no
    order and may still be being written): poll until it is complete."""
    import time
    end = time.time() + timeout
    while True:
        for x in sink.messages(wait=0.2, count=count):
            if needle in x and x.endswith("\n\n"):
                return x
        if time.time() >= end:
            return None
        time.sleep(0.05)


# ---- a plain transaction, relayed to smtp-sink
sink = Sink()
m = Moatd(sink.port)
r = send_mail(m.port, body="Subject: hi\r\n\r\nline one\r\n..leading dot\r\n")
t.eq([c for c, _ in r], [220, 250, 250, 250, 354, 250, 221], "plain transaction codes")
t.like(r[0][1], r"^moat\.test ", "greeting names moat's hostname")
msgs = sink.messages()
t.eq(len(msgs), 1, "upstream received one message")
if msgs:
    t.like(msgs[0], r"X-Mail-Args: <alice@example\.test>", "sender relayed")
    t.like(msgs[0], r"X-Rcpt-Args: <bob@example\.test>", "recipient relayed")
    t.like(msgs[0], r"\nline one\n\.leading dot\n", "dot-stuffing round trip")
t.like(m.log(), r"event=tx .*verdict=accepted", "transaction summary logged")

# ---- EHLO is the intersection of moat and the upstream
c = Client(m.port)
code, text = c.cmd("EHLO client.example.test")
t.eq(code, 250, "EHLO accepted")
kw = [l.split(" ")[0] for l in text.split("\n")[1:]]
t.ok("PIPELINING" in kw and "CHUNKING" in kw, "PIPELINING and CHUNKING offered", kw)
t.ok("8BITMIME" in kw and "DSN" in kw and "ENHANCEDSTATUSCODES" in kw,
     "upstream's 8BITMIME, DSN, ENHANCEDSTATUSCODES offered", kw)
t.ok("SMTPUTF8" not in kw, "SMTPUTF8 not offered (smtp-sink lacks it)", kw)
t.ok(not any(k in kw for k in ("XCLIENT", "XFORWARD", "AUTH", "STARTTLS")),
     "XCLIENT/XFORWARD/AUTH/STARTTLS never offered", kw)
t.ok(any(l.startswith("SIZE ") for l in text.split("\n")), "SIZE with a value", text)

# ---- commands
t.eq(c.code("NOOP"), 250, "NOOP")
t.eq(c.code("HELP"), 214, "HELP")
t.eq(c.code("VRFY bob"), 252, "VRFY answers 252 locally")
t.eq(c.code("EXPN list"), 502, "EXPN not implemented")
t.eq(c.code("FOO bar"), 500, "unknown command 500")
t.eq(c.code("RCPT TO:<x@example.test>"), 503, "RCPT before MAIL: 503")
t.eq(c.code("DATA"), 503, "DATA before MAIL: 503")
t.eq(c.code("MAIL FROM:<a@example.test> FOO=bar"), 555, "unknown parameter: 555")
t.eq(c.code("MAIL FROM:<a@example.test> AUTH=a+ZZ"), 555, "malformed AUTH= xtext: 555")
t.eq(c.code("MAIL FROM:<a@example.test> SIZE=999999999999"), 552, "SIZE over limit: 552")
t.eq(c.code("MAIL FROM:<a@@example.test>"), 553, "bad sender syntax: 553")
t.eq(c.code("MAIL FROM:<a\xe9@example.test>"), 553, "UTF-8 sender without SMTPUTF8: 553")
t.eq(c.code("MAIL FROM:<> BODY=8BITMIME SIZE=100 AUTH=<>"), 250,
     "null sender with BODY, SIZE and AUTH=<> (smtp-sink offers AUTH)")
t.eq(c.code("MAIL FROM:<a@example.test>"), 503, "nested MAIL: 503")
t.eq(c.code("RCPT TO:<Postmaster>"), 250, "RCPT TO:<Postmaster>")
t.eq(c.code("RCPT TO:<carol@example.test> NOTIFY=SUCCESS,FAILURE"), 250, "DSN NOTIFY relayed")
t.eq(c.code("RSET"), 250, "RSET")
t.eq(c.code("DATA"), 503, "DATA after RSET: 503")
t.eq(c.code("QUIT"), 221, "QUIT")
t.ok(c.closed(), "closed after QUIT")

# ---- pipelining: a whole transaction in one write, replies in order
c = Client(m.port)
c.send("EHLO p.example.test\r\nMAIL FROM:<p@example.test>\r\nRCPT TO:<q@example.test>\r\n"
       "RCPT TO:<r@example.test>\r\nDATA\r\n")
codes = [c.reply()[0] for _ in range(5)]
t.eq(codes, [250, 250, 250, 250, 354], "pipelined group answered in order")
c.send("Subject: piped\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
codes = [c.reply()[0] for _ in range(3)]
t.eq(codes, [250, 250, 221], "end of data, NOOP and QUIT pipelined")
c.close()
msgs = sink.messages(count=2)
t.eq(len(msgs), 2, "pipelined message delivered")
if len(msgs) == 2:
    t.like(find_msg(sink, "Subject: piped", 2),
           r"X-Rcpt-Args: <q@example\.test>.*X-Rcpt-Args: <r@example\.test>",
           "both recipients relayed")

# ---- BDAT toward an upstream without CHUNKING: relayed as DATA
c = Client(m.port)
c.cmd("EHLO b.example.test")
c.cmd("MAIL FROM:<b@example.test>")
c.cmd("RCPT TO:<c@example.test>")
chunk1 = b"Subject: bdat\r\n\r\nfirst"
chunk2 = b" part\r\n.not the end\r\nlast line"
c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
t.eq(c.reply()[0], 250, "BDAT chunk accepted")
c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
t.eq(c.reply()[0], 250, "BDAT LAST relayed and accepted")
t.eq(c.code("QUIT"), 221, "QUIT after BDAT")
msgs = sink.messages(count=3)
t.eq(len(msgs), 3, "BDAT message delivered")
if len(msgs) == 3:
    t.like(find_msg(sink, "Subject: bdat", 3), r"\nfirst part\n\.not the end\nlast line\n",
           "BDAT content intact")
m.stop()
sink.stop()

# ---- exact bytes on the wire: canonical CRLF and re-dot-stuffing
rec = Recorder()
m = Moatd(rec.port)
r = send_mail(m.port, body="Subject: x\r\n\r\n..\r\n...\r\n..a\r\nend\r\n")
t.eq(r[-2][0], 250, "message accepted by recorder")
msgs = rec.wait_messages(1)
t.eq(msgs[0] if msgs else None, b"Subject: x\r\n\r\n..\r\n...\r\n..a\r\nend\r\n.\r\n",
     "upstream receives re-dot-stuffed canonical content")
m.stop()
rec.stop()

# ---- XCLIENT toward an upstream that offers it with ADDR
rec = Recorder(ehlo_caps=["PIPELINING", "8BITMIME", "XCLIENT NAME ADDR PORT PROTO HELO"])
m = Moatd(rec.port)
r = send_mail(m.port)
wire = bytes(rec.sessions[-1]).decode("latin-1") if rec.sessions else ""
t.like(wire, r"XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ NAME=\[UNAVAILABLE\] PROTO=ESMTP "
       r"HELO=client\.example\.test\r\nEHLO client\.example\.test\r\nMAIL FROM:<alice@example\.test>",
       "XCLIENT carries the client, then EHLO with the client's name, then MAIL")
m.stop()
rec.stop()

# ---- upstream replies are relayed (recipient validation stays upstream)
rec = Recorder(reply={"RCPT": "550 5.1.1 <nobody@example.test>: Recipient address rejected"})
m = Moatd(rec.port)
c = Client(m.port)
c.cmd("EHLO x.example.test")
c.cmd("MAIL FROM:<a@example.test>")
code, text = c.cmd("RCPT TO:<nobody@example.test>")
t.eq(code, 550, "upstream's RCPT rejection relayed")
t.like(text, r"Recipient address rejected", "with the upstream's own text")
t.eq(c.code("DATA"), 554, "DATA without accepted recipients: 554")
c.close()
m.stop()
rec.stop()

# ---- pipelined RCPTs go to the upstream without waiting (RFC 2920)
import re as _re
from datetime import datetime as _dt
rec = Recorder(delay={"RCPT": 0.3})
m = Moatd(rec.port)
c = Client(m.port)
c.cmd("EHLO p.example.test")
c.cmd("MAIL FROM:<a@example.test>")
c.send("RCPT TO:<r1@example.test>\r\nRCPT TO:<r2@example.test>\r\n"
       "RCPT TO:<r3@example.test>\r\nDATA\r\n")
codes = [c.reply()[0] for _ in range(4)]
t.eq(codes, [250, 250, 250, 354], "pipelined RCPTs answered in order, then DATA")
c.send("Subject: p\r\n\r\nx\r\n.\r\n")
t.eq(c.reply()[0], 250, "message with pipelined recipients accepted")
stamps = [_dt.strptime(x, "%Y-%m-%dT%H:%M:%S.%f") for x in _re.findall(
    r"(\S+)Z moatd\[\d+\] debug: event=upstream-send \S+ line=\"RCPT TO", m.log())]
t.ok(len(stamps) == 3 and (stamps[-1] - stamps[0]).total_seconds() < 0.2,
     "the three RCPTs left together, not one per 0.3 s reply", stamps)
# A local refusal between upstream-bound RCPTs keeps its place in the order.
c.cmd("MAIL FROM:<a@example.test>")
c.send("RCPT TO:<r4@example.test>\r\nRCPT TO:<bad@@example.test>\r\n"
       "RCPT TO:<r5@example.test>\r\nNOOP\r\n")
codes = [c.reply()[0] for _ in range(4)]
t.eq(codes, [250, 553, 250, 250], "local 553 between pipelined RCPTs stays in order")
c.cmd("RSET")
c.close()
m.stop()
rec.stop()
# The upstream dies with RCPTs in flight: each still gets its 4xx.
rec = Recorder(close_at="RCPT")
m = Moatd(rec.port)
c = Client(m.port)
c.cmd("EHLO p.example.test")
c.cmd("MAIL FROM:<a@example.test>")
c.send("RCPT TO:<r1@example.test>\r\nRCPT TO:<r2@example.test>\r\n"
       "RCPT TO:<r3@example.test>\r\nNOOP\r\n")
codes = [c.reply()[0] for _ in range(4)]
t.eq(codes, [451, 451, 451, 250], "upstream lost mid-group: every RCPT answered 451")
t.eq(c.code("QUIT"), 221, "session goes on")
c.close()
t.ok(m.alive(), "moatd alive")
m.stop()
rec.stop()

# ---- upstream connection reuse across client sessions (XCLIENT upstream)
rec = Recorder(ehlo_caps=["PIPELINING", "8BITMIME", "XCLIENT NAME ADDR PORT PROTO HELO"])
m = Moatd(rec.port, conf="upstream_pool_size = 4\nupstream_pool_idle = 2\nthreads = 1\n")
base = len(rec.sessions)
r1 = send_mail(m.port, ehlo="first.example.test")
r2 = send_mail(m.port, ehlo="second.example.test", sender="carol@example.test")
t.eq([r1[-2][0], r2[-2][0]], [250, 250], "two sessions delivered over a reused connection")
rec.wait_messages(2)
conns = rec.sessions[base:]
t.eq(len(conns), 1, "one upstream connection served both sessions")
wire = bytes(conns[0]).decode("latin-1") if conns else ""
t.like(wire, r"XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ NAME=\[UNAVAILABLE\] PROTO=ESMTP "
       r"HELO=first\.example\.test\r\nEHLO first\.example\.test\r\nMAIL FROM:<alice@",
       "first client introduced with XCLIENT")
t.like(wire, r"\.\r\nXCLIENT ADDR=127\.0\.0\.1 PORT=\d+ NAME=\[UNAVAILABLE\] PROTO=ESMTP "
       r"HELO=second\.example\.test\r\nEHLO second\.example\.test\r\nMAIL FROM:<carol@",
       "second client introduced with a new XCLIENT on the same connection")
t.ok("QUIT" not in wire, "no QUIT while the connection is parked", wire[-200:])
# A HELO client leaves a connection whose capabilities are unknown: not reused.
c = Client(m.port)
c.cmd("HELO old.example.test")
c.cmd("MAIL FROM:<h@example.test>")
c.cmd("RCPT TO:<i@example.test>")
c.cmd("DATA")
c.send("Subject: helo\r\n\r\nx\r\n.\r\n")
t.eq(c.reply()[0], 250, "HELO client delivered")
c.cmd("QUIT")
c.close()
r3 = send_mail(m.port, ehlo="third.example.test")
t.eq(r3[-2][0], 250, "EHLO client after a HELO client delivered")
rec.wait_messages(4)
wire = bytes(rec.sessions[-1]).decode("latin-1") if rec.sessions else ""
t.like(wire, r"EHLO third\.example\.test\r\nMAIL FROM:", "EHLO client got an upstream EHLO")
# A session that ends inside a transaction does not leave it for the next.
n_before = len(rec.sessions)
c = Client(m.port)
c.cmd("EHLO x.example.test")
c.cmd("MAIL FROM:<a@example.test>")
c.cmd("QUIT")
c.close()
r4 = send_mail(m.port, ehlo="fourth.example.test")
t.eq(r4[-2][0], 250, "delivery after a session that quit mid-transaction")
t.ok(len(rec.sessions) > n_before, "the mid-transaction connection was not reused")
# Parked connections expire after upstream_pool_idle.
import time as _time
n_before = len(rec.sessions)
_time.sleep(3)
r5 = send_mail(m.port, ehlo="fifth.example.test")
t.eq(r5[-2][0], 250, "delivery after the parked connection expired")
t.eq(len(rec.sessions), n_before + 1, "an expired parked connection is not reused")
t.ok(m.alive(), "moatd alive")
m.stop()
rec.stop()

t.done()
