"""moatd between real Postfix instances.

  client (127.0.0.2) ──▶ moatd ──XCLIENT──▶ Postfix "mx" ──▶ Maildir
  Postfix "sender" (relayhost = moatd) ──▶ moatd ──▶ Postfix "mx"
  smtp-source ──▶ moatd ──▶ smtp-sink

Every byte of every body must arrive in the Maildir exactly as sent, Postfix
must see (and log) the real client, its own replies must reach the client
verbatim, and a sending Postfix must keep a message queued while moat
answers 4xx and deliver it exactly once afterwards. Sessions whose
transaction ends before DATA must not disturb the sessions after them.
"""

import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Sink, Moatd, Client, Postfix,  # noqa: E402
                      postfix_usable, wait_port)

why = postfix_usable()
if why:
    print("1..0 # SKIP %s" % why)
    sys.exit(0)

t = TAP()
CRLF = b"\r\n"
SRC = "127.0.0.2"        # the client's address, distinct from moat's 127.0.0.1


def message(mid, subject, body, extra=()):
    """A complete message (CRLF lines) with every header Postfix could
    otherwise add, so that what arrives is Postfix's trace headers plus
    exactly these bytes."""
    hdr = [b"From: Alice <alice@example.org>",
           b"To: Bob <bob@example.test>",
           b"Date: Tue, 24 Nov 2026 10:00:00 +0000",
           b"Subject: " + subject.encode(),
           b"Message-ID: <" + mid.encode() + b">"] + list(extra)
    if isinstance(body, (list, tuple)):
        body = CRLF.join(body) + CRLF
    return CRLF.join(hdr) + CRLF + CRLF + body


def dot_stuff(msg):
    lines = msg.split(CRLF)
    assert lines[-1] == b""
    return CRLF.join((b"." + l) if l.startswith(b".") else l for l in lines)


# Postfix puts only these in front of the message it received.
TRACE = re.compile(rb"\A(?:(?:Return-Path|X-Original-To|Delivered-To|Received):"
                   rb"[^\n]*\n(?:[ \t][^\n]*\n)*)+\Z")


def intact(t, got, sent, name):
    """The delivered file is Postfix's trace headers followed by exactly the
    sent message (Maildir stores LF line ends)."""
    want = sent.replace(CRLF, b"\n")
    if got is None:
        return t.ok(False, name, "message not delivered")
    if got.endswith(want) and TRACE.match(got[:len(got) - len(want)]):
        return t.ok(True, name)
    start = got.find(want[:40])
    tail = got[start:] if start >= 0 else got
    i = next((k for k in range(min(len(tail), len(want))) if tail[k] != want[k]),
             min(len(tail), len(want)))
    return t.ok(False, name,
                "sent %d bytes, delivered message part %d bytes (start at %d)\n"
                "first difference at byte %d:\n  sent: %r\n  got:  %r"
                % (len(want), len(tail), start, i, want[max(0, i - 40):i + 40],
                   tail[max(0, i - 40):i + 40]))


def first(lst):
    return lst[0] if lst else None


def queued_id(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text or "")
    return m.group(1) if m else None


def transaction(port, msg, rcpts=("bob@example.test",), mail_args="",
                helo="client.example.org", source=SRC, verb="EHLO"):
    """One transaction through moat; returns (client, replies); the last
    reply is the one to the end of data (or the failing command)."""
    c = Client(port, source=source, timeout=30)
    out = [c.greeting, c.cmd(verb + " " + helo),
           c.cmd("MAIL FROM:<alice@example.org>" + mail_args)]
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    if out[-1][0] == 354:
        c.send(dot_stuff(msg) + b".\r\n")
        out.append(c.reply())
    return c, out


def codes(replies):
    return [c for c, _ in replies]


# ======================================================= the receiving MTA
mx = Postfix("mx.example.test", listen=True,
             mailboxes=("bob@example.test", "carol@example.test"),
             main={"message_size_limit": "20480000"})
rc, out = mx.check()
t.ok(rc == 0, "postfix check accepts the throwaway receiving instance", out)
rc, out = mx.start()
if not t.ok(rc == 0, "receiving Postfix started on 127.0.0.1:%d" % mx.port, out):
    t.done()

m = Moatd(mx.port)
up = m.wait_log(r"event=upstream-up .*xclient=1")
t.ok(up is not None, "moat probed Postfix: up, XCLIENT offered", m.log())

# ---- long lines (998 octets, the RFC 5321 maximum), blank and odd lines
rnd = random.Random(5321)
long_body = [
    b"A" * 998,
    bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?-=+/") for _ in range(998)),
    b"",
    b" ",
    b"\t indented, trailing blanks  \t ",
    b"x" * 997,
    b"=" * 76,
    b"last line",
]
msg_long = message("long-lines@moat.test", "long lines", long_body)
c, r = transaction(m.port, msg_long)
client_port = c.s.getsockname()[1]
c.cmd("QUIT")
c.close()
t.eq(codes(r), [220, 250, 250, 250, 354, 250], "long-line message accepted through moat")
qid = queued_id(r[-1][1])
t.like(r[-1][1], r"^2\.0\.0 Ok: queued as [0-9A-F]+$",
       "client sees Postfix's own 250 reply (queue id)")
got = first(mx.wait_maildir("bob", b"<long-lines@moat.test>"))
intact(t, got, msg_long, "long lines arrive byte for byte")

# ---- XCLIENT: Postfix sees and logs the real client, not moat
lm = mx.wait_log(r"^.*\b%s: client=(\S+)$" % re.escape(qid or "NONE"), timeout=5)
t.eq(lm.group(1) if lm else None, "unknown[127.0.0.2]:%d" % client_port,
     "Postfix logs the real client address and port (XCLIENT ADDR, PORT)")
t.ok(not re.search(r"\b%s: client=\S*\[127\.0\.0\.1\]" % re.escape(qid or "NONE"), mx.log()),
     "Postfix does not log moat's own address for the message")
rcv = re.search(rb"^Received: from ([^\n]*\n(?:[ \t][^\n]*\n)*)", got or b"", re.M)
rcv = rcv.group(1).decode("latin-1") if rcv else ""
t.like(rcv, r"\(unknown \[127\.0\.0\.2\]\)",
       "Postfix's Received header names the real client address")
t.like(rcv, r"^client\.example\.org \(",
       "Postfix's Received header names the client's HELO, not moat's")
t.like(rcv, r"with ESMTP id ", "Postfix's Received header: protocol ESMTP")

# ---- lines starting with dots
dot_body = [b".", b"..", b"...", b". leading dot and space", b".\tdot tab",
            b"..double", b"middle . dot", b"", b".", b" .", b"end", b"."]
msg_dots = message("dots@moat.test", "dots", dot_body)
c, r = transaction(m.port, msg_dots)
c.cmd("QUIT")
c.close()
t.eq(r[-1][0], 250, "dot-line message accepted")
intact(t, first(mx.wait_maildir("bob", b"<dots@moat.test>")), msg_dots,
       "lines starting with dots (and a last line '.') arrive intact")

# ---- a client that says HELO (not EHLO): Postfix should record SMTP
msg_helo = message("helo@moat.test", "helo", [b"plain SMTP client"])
c, r = transaction(m.port, msg_helo, verb="HELO", helo="old.example.org")
c.cmd("QUIT")
c.close()
t.eq(r[-1][0], 250, "HELO client's message accepted")
got = first(mx.wait_maildir("bob", b"<helo@moat.test>"))
intact(t, got, msg_helo, "HELO client's message arrives intact")
rcv = re.search(rb"^Received: from ([^\n]*\n(?:[ \t][^\n]*\n)*)", got or b"", re.M)
rcv = rcv.group(1).decode("latin-1") if rcv else ""
t.like(rcv, r"^old\.example\.org \(unknown \[127\.0\.0\.2\]\)",
       "Received header for a HELO client: its HELO name and address")
t.like(rcv, r"\(Postfix\) with SMTP id ",
       "Received header for a HELO client: protocol SMTP (XCLIENT PROTO=SMTP)")

# ---- 8-bit text with BODY=8BITMIME
eight_body = ["Grüße aus Köln — ½ € ✓ ﬁ 日本語 😀".encode("utf-8"),
              b"latin-1 bytes: \xe9\xe8\xe0\xff\xa0\x80\x9f",
              bytes(range(0x80, 0x100)),
              b"ascii tail"]
msg_8bit = message("eight-bit@moat.test", "8bit", eight_body,
                   extra=[b"MIME-Version: 1.0",
                          b"Content-Type: text/plain; charset=utf-8",
                          b"Content-Transfer-Encoding: 8bit"])
c, r = transaction(m.port, msg_8bit, mail_args=" BODY=8BITMIME")
c.cmd("QUIT")
c.close()
t.eq(codes(r)[2:], [250, 250, 354, 250], "MAIL ... BODY=8BITMIME accepted and relayed")
intact(t, first(mx.wait_maildir("bob", b"<eight-bit@moat.test>")), msg_8bit,
       "8-bit body arrives intact")

# ---- 1 MB, well over spool_memory_threshold (256 KiB): spooled to a file
lines = []
size = 0
k = 0
while size < 1100000:
    n = rnd.choice((0, 1, 2, 40, 76, 77, 200, 998))
    line = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 .-_") for _ in range(n))
    if k % 17 == 0:
        line = b"." + line[:997]
    lines.append(line)
    size += len(line) + 2
    k += 1
msg_big = message("one-megabyte@moat.test", "1 MB", lines)
c, r = transaction(m.port, msg_big, mail_args=" SIZE=%d" % len(msg_big))
c.cmd("QUIT")
c.close()
t.eq(r[-1][0], 250, "1 MB message (%d bytes) accepted" % len(msg_big))
intact(t, first(mx.wait_maildir("bob", b"<one-megabyte@moat.test>")), msg_big,
       "1 MB spooled message arrives byte for byte")
t.like(m.log(), r"event=tx .*size=%d\b.*verdict=accepted" % len(msg_big),
       "moat logs the 1 MB transaction with its size")

# ---- BDAT: chunks split inside a line and between CR and LF
msg_bdat = message("bdat@moat.test", "bdat", [b"first", b".", b"..two dots",
                                               b"crlf split here", b"last"])
cut1 = msg_bdat.index(b"first") + 3
cut2 = msg_bdat.index(b"split here\r") + len(b"split here\r")
c = Client(m.port, source=SRC)
c.cmd("EHLO client.example.org")
c.cmd("MAIL FROM:<alice@example.org>")
c.cmd("RCPT TO:<bob@example.test>")
rb = []
for i, chunk in enumerate((msg_bdat[:cut1], msg_bdat[cut1:cut2], msg_bdat[cut2:])):
    last = b" LAST" if i == 2 else b""
    c.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
    rb.append(c.reply())
c.cmd("QUIT")
c.close()
t.eq(codes(rb), [250, 250, 250], "three BDAT chunks accepted")
intact(t, first(mx.wait_maildir("bob", b"<bdat@moat.test>")), msg_bdat,
       "BDAT message (chunks split mid-line and inside CR LF) arrives intact")

# ---- Postfix's own rejection of an unknown recipient reaches the client verbatim
d = Client(mx.port)
d.cmd("EHLO direct.example.org")
d.cmd("MAIL FROM:<alice@example.org>")
direct = d.cmd("RCPT TO:<nobody@example.test>")
d.cmd("QUIT")
d.close()
msg_rej = message("partial@moat.test", "one good one bad", [b"to bob only"])
c, r = transaction(m.port, msg_rej, rcpts=("nobody@example.test", "bob@example.test"))
c.cmd("QUIT")
c.close()
t.eq(r[3][0], 550, "unknown recipient: 550 through moat")
t.like(r[3][1], r"^5\.1\.1 <nobody@example\.test>: Recipient address rejected: "
       r"User unknown in virtual mailbox table$", "with Postfix's 5.1.1 text")
t.eq(r[3], direct, "rejection identical to Postfix's reply to a direct client")
t.eq(codes(r)[4:], [250, 354, 250], "other recipient accepted, message relayed")
intact(t, first(mx.wait_maildir("bob", b"<partial@moat.test>")), msg_rej,
       "message delivered to the accepted recipient")

# ---- swaks through moat
def swaks(*args):
    p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % m.port,
                        "--local-interface", SRC, "--ehlo", "swaks.example.org",
                        "--from", "alice@example.org", "--timeout", "30"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("latin-1")


rc, out = swaks("--to", "bob@example.test",
                "--header", "Message-ID: <swaks-1@moat.test>")
t.eq(rc, 0, "swaks through moat: exit 0")
t.ok(mx.wait_maildir("bob", b"<swaks-1@moat.test>"), "swaks message delivered")
rc, out = swaks("--pipeline", "--to", "bob@example.test,carol@example.test",
                "--header", "Message-ID: <swaks-2@moat.test>")
t.eq(rc, 0, "swaks --pipeline, two recipients: exit 0")
t.ok(mx.wait_maildir("bob", b"<swaks-2@moat.test>") and
     mx.wait_maildir("carol", b"<swaks-2@moat.test>"),
     "pipelined message delivered to both mailboxes")
rc, out = swaks("--to", "nobody@example.test")
t.eq(rc, 24, "swaks to an unknown recipient: exit 24 (no RCPT accepted)")
t.like(out, r"<\*\* +550 5\.1\.1 <nobody@example\.test>: Recipient address rejected",
       "swaks shows Postfix's 550 5.1.1")

# ---- smtp-source through moat into the Maildir
before = len(mx.maildir("carol"))
p = subprocess.run(["smtp-source", "-s", "4", "-m", "20", "-l", "3000",
                    "-f", "alice@example.org", "-t", "carol@example.test",
                    "-M", "source.example.org", "127.0.0.1:%d" % m.port],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
t.eq(p.returncode, 0, "smtp-source -s 4 -m 20 through moat to Postfix: exit 0")
end = time.time() + 20
while len(mx.maildir("carol")) < before + 20 and time.time() < end:
    time.sleep(0.1)
t.eq(len(mx.maildir("carol")) - before, 20, "all 20 smtp-source messages in the Maildir")

# ======================================================= smtp-source to smtp-sink
sink = Sink()
ms = Moatd(sink.port)
p = subprocess.run(["smtp-source", "-s", "5", "-m", "50", "-l", "2000",
                    "127.0.0.1:%d" % ms.port],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
t.eq(p.returncode, 0, "smtp-source -s 5 -m 50 -l 2000 through moat to smtp-sink: exit 0")
t.eq(len(sink.messages(wait=10, count=50)), 50, "smtp-sink received all 50 messages")
t.eq(len(re.findall(r"event=tx .*verdict=accepted", ms.log())), 50,
     "moat logged 50 accepted transactions")
ms.stop()
sink.stop()

# ======================================================= a sending Postfix
snd = Postfix("sender.example.org", listen=False, mailboxes=(),
              main={"relayhost": "[127.0.0.1]:%d" % m.port,
                    "smtp_bind_address": "127.0.0.3"})
rc, out = snd.check()
t.ok(rc == 0, "postfix check accepts the sending instance", out)
rc, out = snd.start()
if not t.ok(rc == 0, "sending Postfix started (relayhost = moat)", out):
    t.done()


def sender_message(mid, text):
    return message(mid, text, [b"Sent by a Postfix relaying through moat.", b".",
                               b"..two", b".leading", b"Gr\xc3\xbc\xc3\x9fe", b"y" * 990,
                               b"end"],
                   extra=[b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8",
                          b"Content-Transfer-Encoding: 8bit"])


def sender_qid(mid, timeout=15):
    lm = snd.wait_log(r"cleanup\[\d+\]: ([0-9A-F]+): message-id=<%s>" % re.escape(mid),
                      timeout)
    return lm.group(1) if lm else None


msg_relay = sender_message("relayed@moat.test", "relayed")
rc, out = snd.sendmail(msg_relay.replace(CRLF, b"\n"), "alice@example.org",
                       ["bob@example.test"])
t.eq(rc, 0, "sendmail -C (sending instance) accepts the message")
sq = sender_qid("relayed@moat.test")
snd.flush()
lm = snd.wait_log(r"%s: to=<bob@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d,"
                  r".* status=(\w+) \((.*)\)$" % (sq or "NONE", m.port), timeout=20)
t.eq(lm.group(1) if lm else None, "sent", "sending Postfix delivered to moat",
     ) or t.diag(snd.log()[-3000:])
t.like(lm.group(2) if lm else "", r"^250 2\.0\.0 Ok: queued as [0-9A-F]+$",
       "sending Postfix got the receiving Postfix's 250 through moat")
got = first(mx.wait_maildir("bob", b"<relayed@moat.test>"))
intact(t, got, msg_relay, "relayed message arrives intact in the Maildir")
t.like((got or b"").decode("latin-1"),
       r"Received: from [^\n]*\(unknown \[127\.0\.0\.3\]\)\n\tby mx\.example\.test",
       "receiving Postfix sees the sending Postfix's address (127.0.0.3)")

# ---- retry: the receiving Postfix goes down, moat answers 4xx, the sender
# keeps the message, and delivers it exactly once when it is back
mx.stop()
t.ok(not wait_port(mx.port, timeout=0.5), "receiving Postfix stopped (port closed)")
ups = len(re.findall(r"event=upstream-up", m.log()))
msg_retry = sender_message("retry@moat.test", "retry")
rc, out = snd.sendmail(msg_retry.replace(CRLF, b"\n"), "alice@example.org",
                       ["bob@example.test"])
t.eq(rc, 0, "sendmail accepts the message while the downstream is down")
rq = sender_qid("retry@moat.test")
snd.flush()
lm = snd.wait_log(r"%s: to=<bob@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d,"
                  r".* status=deferred \((.*)\)$" % (rq or "NONE", m.port), timeout=20)
t.ok(lm is not None, "sending Postfix deferred the message", snd.log()[-3000:])
if not t.like(lm.group(1) if lm else "", r"(said|refused to talk to me): 4\d\d 4\.\d+\.\d+ ",
              "because moat answered 4xx"):
    t.diag("moatd log:\n" + "\n".join(m.log().splitlines()[-25:]))
q = snd.mailq()
# the ID carries '*' while the queue manager holds it in the active queue
t.like(q, r"(?m)^%s[*!]?\s+\d+ .*alice@example\.org\n\s*\((.*)\)\n\s+bob@example\.test"
       % (rq or "NONE"), "postqueue -p shows it deferred, with moat's reason")
snd.flush()   # a retry while still down: still deferred, still queued
lm = snd.wait_log(r"(?s)%s: to=<bob@example\.test>.*status=deferred.*"
                  r"%s: to=<bob@example\.test>.*status=deferred" % (rq, rq), timeout=20) \
    if rq else None
t.ok(lm is not None, "a second attempt while down is deferred again", snd.log()[-2000:])
t.like(snd.mailq(), r"(?m)^%s[*!]?\s" % (rq or "NONE"), "message still in the sending queue")
t.eq(mx.wait_maildir("bob", b"<retry@moat.test>", timeout=0), [],
     "nothing delivered while the downstream is down")

rc, out = mx.start()
t.ok(rc == 0, "receiving Postfix restarted", out)
if re.search(r"event=upstream-down", m.log()):
    t.ok(m.wait_log(r"(?s)(event=upstream-up.*){%d}" % (ups + 1), timeout=15),
         "moat sees the upstream come back", m.log()[-2000:])
else:
    t.ok(True, "moat sees the upstream come back (never marked it down)")
snd.flush()
lm = snd.wait_log(r"%s: to=<bob@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d,"
                  r".* status=sent \((.*)\)$" % (rq or "NONE", m.port), timeout=20)
t.ok(lm is not None, "after the flush the sending Postfix delivered it",
     snd.log()[-3000:] + "\n" + m.log()[-2000:])
got = mx.wait_maildir("bob", b"<retry@moat.test>")
time.sleep(1.5)
got = mx.wait_maildir("bob", b"<retry@moat.test>", timeout=0)
t.eq(len(got), 1, "the deferred message arrived exactly once")
intact(t, first(got), msg_retry, "and intact")
t.eq(len(re.findall(r"%s: to=<bob@example\.test>.* status=sent" % (rq or "NONE"),
                    snd.log())), 1, "sender logged exactly one successful delivery")
t.like(snd.mailq(), r"Mail queue is empty", "sending queue is empty")

t.ok(m.alive(), "moatd still running")
t.eq(m.stop(), 0, "moatd exits 0 on SIGTERM")
snd.stop()

# ---- transactions that end before DATA (RSET, a refused MAIL or RCPT, an
# unreachable upstream) must not disturb the next sessions
m1 = Moatd(mx.port, conf="threads = 1\ndrain_timeout = 5\n")
seen = []
for i in range(3):
    c = Client(m1.port, source=SRC, timeout=5, greet=False)
    got = [c.reply_or(5)[0]]
    for line in ("EHLO rset%d.example.org" % i, "MAIL FROM:<alice@example.org>",
                 "RSET", "NOOP", "QUIT"):
        try:
            c.send(line + "\r\n")
        except OSError as e:
            got.append("send: %s" % e.strerror)
            break
        got.append(c.reply_or(5)[0])
    c.close()
    seen.append(got)
t.eq(seen, [[220, 250, 250, 250, 250, 221]] * 3,
     "three sessions in a row, MAIL then RSET: every command answered")
t.eq(m1.stop(timeout=15), 0, "that moatd exits 0 on SIGTERM")
mx.stop()
t.done()
