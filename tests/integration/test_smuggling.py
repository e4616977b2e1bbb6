"""SMTP smuggling through moatd (SEC Consult, December 2023, and later
variants), end to end, with the recording upstream: the exact bytes the
upstream receives are checked (ARCHITECTURE.md invariant 2: the only end of
data is CR LF "." CR LF; bare CR, bare LF and NUL are refused by default or
normalised; the upstream only gets canonical, re-dot-stuffed content).

Every payload is one send(): content, a fake end of data, a smuggled
transaction, the real CR LF "." CR LF, and a pipelined HELP whose 214 marks
where the replies to the payload end."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Moatd, Client, Recorder  # noqa: E402

t = TAP()

HEAD = b"From: <alice@example.test>\r\nSubject: smuggling test\r\n\r\nbody"
SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nsmuggled\r\n"

# (name, fake end of data, canonical wire the upstream must get for it
# under normalisation). Every payload is HEAD + fake + SMUGGLED + ".\r\n";
# normalised, the bytes of the fake become CR LF line ends and a content
# line "." (sent stuffed, ".."), never an end of data.
VARIANTS = [
    ("LF . LF", b"\n.\n", b"\r\n..\r\n"),
    ("LF . CRLF", b"\n.\r\n", b"\r\n..\r\n"),
    ("CRLF . LF", b"\r\n.\n", b"\r\n..\r\n"),
    ("CR . CR", b"\r.\r", b"\r\n..\r\n"),
    ("CRLF . CR", b"\r\n.\r", b"\r\n..\r\n"),
    ("CR . CRLF", b"\r.\r\n", b"\r\n..\r\n"),
    ("LF . CR", b"\n.\r", b"\r\n..\r\n"),
    ("CRLF NUL . CRLF", b"\r\n\x00.\r\n", b"\r\n..\r\n"),
    ("CRLF . NUL CRLF", b"\r\n.\x00\r\n", b"\r\n\r\n"),
    ("CRLF . CR CRLF", b"\r\n.\r\r\n", b"\r\n..\r\n\r\n"),
    ("CRLF . CR NUL LF", b"\r\n.\r\x00\n", b"\r\n..\r\n\r\n"),
    ("CRLF . LF CRLF", b"\r\n.\n\r\n", b"\r\n..\r\n\r\n"),
    ("LF .. LF", b"\n..\n", b"\r\n..\r\n"),
    ("CRLF CR . CRLF", b"\r\n\r.\r\n", b"\r\n\r\n..\r\n"),
    ("CR NUL LF . CRLF", b"\r\x00\n.\r\n", b"\r\n\r\n..\r\n"),
]

CLEAN = b"From: <alice@example.test>\r\nSubject: clean\r\n\r\nclean body\r\n"


def canonical_problems(wire):
    """Reasons why `wire` (one message as sent after DATA, final dot
    included) is not a single canonical message; [] when it is."""
    bad = []
    if not wire.endswith(b"\r\n.\r\n") and wire != b".\r\n":
        bad.append("does not end with CRLF.CRLF")
    if wire.count(b"\r\n.\r\n") != 1:
        bad.append("%d CRLF.CRLF sequences" % wire.count(b"\r\n.\r\n"))
    if b"\x00" in wire:
        bad.append("NUL on the wire")
    if wire.replace(b"\r\n", b"").count(b"\r") or wire.replace(b"\r\n", b"").count(b"\n"):
        bad.append("bare CR or LF on the wire")
    lines = wire[:-5].split(b"\r\n") if wire.endswith(b"\r\n.\r\n") else []
    if any(l == b"." for l in lines):
        bad.append("a lone '.' line before the end")
    if wire.startswith(b".\r\n") and wire != b".\r\n":
        bad.append("starts with a lone '.' line")
    return bad


def wire_canonical(b):
    """Every CR is followed by LF, every LF preceded by CR, no NUL."""
    stripped = b.replace(b"\r\n", b"")
    return b"\r" not in stripped and b"\n" not in stripped and b"\x00" not in b


def upstream_since(rec, n0, timeout=5):
    """Sessions of the recorder opened since index n0, once all ended."""
    end = time.time() + timeout
    while time.time() < end and rec.ended < len(rec.sessions):
        time.sleep(0.02)
    return ([bytes(x) for x in rec.sessions[n0:]],
            [list(c) for c in rec.commands[n0:]])


def verbs(cmds, prefix):
    return [c for c in cmds if c.upper().startswith(prefix)]


def open_tx(port, rcpt=b"bob@example.test"):
    c = Client(port, timeout=6)
    c.send(b"EHLO client.example.test\r\nMAIL FROM:<alice@example.test>\r\n"
           b"RCPT TO:<" + rcpt + b">\r\nDATA\r\n")
    codes = [c.reply()[0] for _ in range(4)]
    return c, codes


# ================================================= default: reject
rec = Recorder()
m = Moatd(rec.port)

for name, fake, _ in VARIANTS:
    n0 = len(rec.sessions)
    m0 = len(rec.messages)
    payload = HEAD + fake + SMUGGLED + b".\r\n"
    try:
        c, codes = open_tx(m.port)
        if codes != [250, 250, 250, 354]:
            t.ok(False, "reject %s: transaction opened" % name, codes)
            c.close()
            continue
        c.send(payload + b"HELP\r\n")
        r = c.replies_until(214)
        t.eq([x[0] for x in r], [550, 214],
             "reject %s: exactly one reply (550) for the whole payload" % name)
        t.like(r[0][1], r"^5\.6\.0 ", "reject %s: 550 5.6.0" % name)
        # The session is in step: a clean message still goes through.
        c.send(b"MAIL FROM:<good@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(3)]
        c.send(CLEAN + b".\r\nQUIT\r\n")
        codes += [c.reply()[0], c.reply()[0]]
        t.eq(codes, [250, 250, 354, 250, 221],
             "reject %s: session in step afterwards (clean message, QUIT)" % name)
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "reject %s: dialogue" % name, repr(e))
    sess, cmds = upstream_since(rec, n0)
    allbytes = b"".join(sess)
    msgs = rec.messages[m0:]
    t.eq(msgs, [CLEAN + b".\r\n"],
         "reject %s: upstream received only the later clean message" % name)
    t.ok(b"evil" not in allbytes and b"victim" not in allbytes and b"smuggled" not in allbytes,
         "reject %s: upstream never saw the smuggled transaction" % name, allbytes[-400:])
    t.ok(wire_canonical(allbytes), "reject %s: upstream session is canonical CRLF" % name,
         allbytes[-400:])

# ---- bare LF / CR / NUL inside command lines
# A command line runs to its CR LF; a bare LF, bare CR or NUL inside it
# gets one 500 for the whole line and nothing in it is executed.
CMD_CASES = [
    (False, "bare LF between MAIL and RCPT", b"MAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>\r\n"),
    (False, "bare CR between MAIL and RCPT", b"MAIL FROM:<a@b.test>\rRCPT TO:<c@d.test>\r\n"),
    (False, "NUL between MAIL and RCPT", b"MAIL FROM:<a@b.test>\x00RCPT TO:<c@d.test>\r\n"),
    (True, "bare LF between two RCPTs", b"RCPT TO:<ok@d.test>\nRCPT TO:<victim@y>\r\n"),
    (True, "bare CR between two RCPTs", b"RCPT TO:<ok@d.test>\rRCPT TO:<victim@y>\r\n"),
    (True, "NUL between two RCPTs", b"RCPT TO:<ok@d.test>\x00RCPT TO:<victim@y>\r\n"),
    (True, "NUL at the end of RCPT", b"RCPT TO:<victim@y>\x00\r\n"),
]
for in_tx, name, line in CMD_CASES:
    n0 = len(rec.sessions)
    name = "reject " + name
    try:
        c = Client(m.port, timeout=6)
        c.cmd("EHLO client.example.test")
        if in_tx:
            t.eq(c.code("MAIL FROM:<a@b.test>"), 250, "%s: MAIL" % name)
        c.send(line)
        code, text = c.reply()
        t.ok(code == 500 and text.startswith("5.5.2"), "%s: 500 5.5.2" % name, (code, text))
        extra = c.pending(0.5)
        t.eq(extra, b"", "%s: one reply for the line, nothing in it executed" % name)
        c.buf = b""
        t.eq(c.code("HELP"), 214, "%s: in step afterwards" % name)
        t.eq(c.code("QUIT"), 221, "%s: QUIT" % name)
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "%s: dialogue" % name, repr(e))
    sess, cmds = upstream_since(rec, n0)
    allcmds = [x for cl in cmds for x in cl]
    if in_tx:
        t.eq(verbs(allcmds, b"RCPT"), [], "%s: upstream got no RCPT" % name)
    else:
        t.eq(verbs(allcmds, b"MAIL") + verbs(allcmds, b"RCPT"), [],
             "%s: upstream got no MAIL/RCPT" % name)

# ---- pipelined commands after the end of data, in the same segment
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c, codes = open_tx(m.port)
    t.eq(codes, [250, 250, 250, 354], "pipelined after dot: transaction opened")
    c.send(CLEAN + b".\r\nMAIL FROM:<second@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
           b"DATA\r\n")
    r = [c.reply() for _ in range(4)]
    t.eq([x[0] for x in r], [250, 250, 250, 354],
         "pipelined after dot: end of data, then MAIL RCPT DATA taken as commands")
    t.like(r[0][1], r"queued as REC", "pipelined after dot: first reply is the upstream's")
    second = b"Subject: second\r\n\r\nsecond body\r\n"
    c.send(second + b".\r\nNOOP\r\nQUIT\r\n")
    t.eq([c.reply()[0] for _ in range(3)], [250, 250, 221],
         "pipelined after dot: second message, NOOP, QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "pipelined after dot: dialogue", repr(e))
sess, cmds = upstream_since(rec, n0)
allcmds = [x for cl in cmds for x in cl]
t.eq(rec.messages[m0:], [CLEAN + b".\r\n", second + b".\r\n"],
     "pipelined after dot: upstream got both messages, exactly")
t.eq(verbs(allcmds, b"MAIL FROM"),
     [b"MAIL FROM:<alice@example.test>\r\n", b"MAIL FROM:<second@example.test>\r\n"],
     "pipelined after dot: two MAIL commands upstream, in order")

# A refused message (bare LF) followed by pipelined commands in one segment.
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c, codes = open_tx(m.port)
    c.send(b"Subject: x\r\n\r\nbad\nline\r\n.\r\nMAIL FROM:<next@example.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
    t.eq([c.reply()[0] for _ in range(4)], [550, 250, 250, 354],
         "refused message, then pipelined MAIL RCPT DATA taken as commands")
    c.send(CLEAN + b".\r\nQUIT\r\n")
    t.eq([c.reply()[0] for _ in range(2)], [250, 221], "next message accepted")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "refused then pipelined: dialogue", repr(e))
sess, cmds = upstream_since(rec, n0)
t.eq(rec.messages[m0:], [CLEAN + b".\r\n"], "refused then pipelined: only the clean message upstream")

# A bare CR or LF right before a genuine CR LF "." CR LF: the message is
# refused, and that terminator still ends it (as for any strict reader).
for name, fake in [("CR", b"\r"), ("LF", b"\n")]:
    m0 = len(rec.messages)
    try:
        c, codes = open_tx(m.port)
        c.send(b"Subject: x\r\n\r\nbody" + fake + b"\r\n.\r\nHELP\r\n")
        t.eq([x[0] for x in c.replies_until(214)], [550, 214],
             "reject bare %s before a real CRLF.CRLF: 550, that ends the data" % name)
        c.cmd("QUIT")
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "reject bare %s before CRLF.CRLF: dialogue" % name, repr(e))
    t.eq(rec.messages[m0:], [], "reject bare %s before CRLF.CRLF: nothing upstream" % name)

# ---- BDAT under reject
def bdat_session(port):
    c = Client(port, timeout=6)
    code, text = c.cmd("EHLO client.example.test")
    c.cmd("MAIL FROM:<alice@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    return c, text


n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c, ehlo = bdat_session(m.port)
    t.ok("CHUNKING" in ehlo, "CHUNKING advertised", ehlo)
    chunk = b"Subject: b\r\n\r\nline one\nline two\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"HELP\r\n")
    r = c.replies_until(214)
    t.eq([x[0] for x in r], [550, 214], "reject BDAT LAST with bare LF: 550, in step")
    # Two chunks, the first with a bare LF; the LAST must not be accepted.
    c.cmd("MAIL FROM:<alice@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c1 = b"Subject: b2\r\n\r\nfoo\n.\nMAIL FROM:<evil@x>\r\n"
    c2 = b"RCPT TO:<victim@y>\r\nDATA\r\nsmuggled\r\n"
    c.send(b"BDAT %d\r\n" % len(c1) + c1 + b"BDAT %d LAST\r\n" % len(c2) + c2 + b"HELP\r\n")
    r = c.replies_until(214)
    codes = [x[0] for x in r]
    t.ok(550 in codes and codes[-1] == 214 and codes[-2] // 100 == 5 and 354 not in codes,
         "reject BDAT chunk with bare LF: 550, LAST refused, in step", r)
    # A CR LF split across two chunks is not a bare CR.
    c.cmd("RSET")
    c.cmd("MAIL FROM:<alice@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c1 = b"Subject: split\r\n\r\nsplit line\r"
    c2 = b"\nnext line\r\n"
    c.send(b"BDAT %d\r\n" % len(c1) + c1)
    t.eq(c.reply()[0], 250, "BDAT chunk ending in CR accepted")
    c.send(b"BDAT %d LAST\r\n" % len(c2) + c2)
    t.eq(c.reply()[0], 250, "BDAT LAST starting with LF: CRLF across chunks accepted")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "reject BDAT: dialogue", repr(e))
sess, cmds = upstream_since(rec, n0)
allbytes = b"".join(sess)
t.eq(rec.messages[m0:], [b"Subject: split\r\n\r\nsplit line\r\nnext line\r\n.\r\n"],
     "reject BDAT: only the CRLF-split message reached the upstream, intact")
t.ok(b"evil" not in allbytes and b"victim" not in allbytes,
     "reject BDAT: upstream never saw the smuggled commands", allbytes[-400:])

# BDAT content holding CRLF.CRLF and commands (no bare characters): one
# message, the "." line stuffed, nothing executed.
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c, _ = bdat_session(m.port)
    chunk = b"Subject: bdat smuggle\r\n\r\nbody\r\n.\r\n" + SMUGGLED
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"HELP\r\n")
    r = c.replies_until(214)
    t.eq([x[0] for x in r], [250, 214], "BDAT with CRLF.CRLF inside: one reply (250)")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "BDAT CRLF.CRLF: dialogue", repr(e))
sess, cmds = upstream_since(rec, n0)
allcmds = [x for cl in cmds for x in cl]
t.eq(rec.messages[m0:], [b"Subject: bdat smuggle\r\n\r\nbody\r\n..\r\n" + SMUGGLED + b".\r\n"],
     "BDAT with CRLF.CRLF inside: upstream got one message, '.' line stuffed")
t.eq(len(verbs(allcmds, b"MAIL")), 1, "BDAT with CRLF.CRLF inside: one MAIL upstream")
m.stop()
rec.stop()

# ================================================= normalize
rec = Recorder()
m = Moatd(rec.port, conf='bare_newline = "normalize"\nnul_byte = "normalize"\n')

for name, fake, want in VARIANTS:
    n0 = len(rec.sessions)
    m0 = len(rec.messages)
    payload = HEAD + fake + SMUGGLED + b".\r\n"
    try:
        c, codes = open_tx(m.port)
        if codes != [250, 250, 250, 354]:
            t.ok(False, "normalize %s: transaction opened" % name, codes)
            c.close()
            continue
        c.send(payload + b"HELP\r\nQUIT\r\n")
        r = c.replies_until(221)
        t.eq([x[0] for x in r], [250, 214, 221],
             "normalize %s: one 250 for the payload, then HELP and QUIT" % name)
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "normalize %s: dialogue" % name, repr(e))
    sess, cmds = upstream_since(rec, n0)
    msgs = rec.messages[m0:]
    t.eq(len(msgs), 1, "normalize %s: upstream received exactly one message" % name)
    wire = msgs[0] if msgs else b""
    t.eq(canonical_problems(wire), [], "normalize %s: one canonical message" % name)
    t.eq(wire, HEAD + want + SMUGGLED + b".\r\n",
         "normalize %s: exact wire bytes (fake end is content)" % name)
    # Recorder.commands holds command lines only, not DATA content.
    cmdstream = [l.rstrip(b"\r\n") for cl in cmds for l in cl]
    t.eq([l for l in cmdstream if l.upper().startswith(b"MAIL")],
         [b"MAIL FROM:<alice@example.test>"],
         "normalize %s: only one MAIL FROM in the upstream session" % name)
    t.eq(len([l for l in cmdstream if l.upper() == b"DATA"]), 1,
         "normalize %s: only one DATA in the upstream session" % name)
    t.ok(wire_canonical(b"".join(sess)),
         "normalize %s: whole upstream session canonical" % name)

# A bare CR or LF right before a genuine CR LF "." CR LF.
for name, fake in [("CR", b"\r"), ("LF", b"\n")]:
    m0 = len(rec.messages)
    try:
        c, codes = open_tx(m.port)
        c.send(b"Subject: x\r\n\r\nbody" + fake + b"\r\n.\r\nHELP\r\n")
        t.eq([x[0] for x in c.replies_until(214)], [250, 214],
             "normalize bare %s before a real CRLF.CRLF: that ends the data" % name)
        c.cmd("QUIT")
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "normalize bare %s before CRLF.CRLF: dialogue" % name, repr(e))
    t.eq(rec.wait_messages(m0 + 1)[m0:], [b"Subject: x\r\n\r\nbody\r\n\r\n.\r\n"],
         "normalize bare %s before CRLF.CRLF: an empty line added, one message" % name)

# ---- commands under normalize: whatever moat makes of them, the upstream
# gets canonical lines and no RCPT hidden behind a NUL or bare CR.
for name, line in [("NUL", b"MAIL FROM:<a@b.test>\x00RCPT TO:<c@d.test>\r\n"),
                   ("bare CR", b"MAIL FROM:<a@b.test>\rRCPT TO:<c@d.test>\r\n"),
                   ("bare LF", b"MAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>\r\n")]:
    n0 = len(rec.sessions)
    try:
        c = Client(m.port, timeout=6)
        c.cmd("EHLO client.example.test")
        c.send(line + b"HELP\r\n")
        r = c.replies_until(214)
        t.eq(r[-1][0], 214, "normalize command with %s: session in step" % name)
        c.cmd("QUIT")
        c.close()
    except Exception as e:  # noqa: BLE001
        t.ok(False, "normalize command with %s: dialogue" % name, repr(e))
    sess, cmds = upstream_since(rec, n0)
    allbytes = b"".join(sess)
    t.ok(wire_canonical(allbytes), "normalize command with %s: upstream canonical" % name,
         allbytes)
    if name != "bare LF":
        t.ok(b"RCPT TO:<c@d.test>" not in allbytes,
             "normalize command with %s: no RCPT smuggled upstream" % name, allbytes)

# ---- BDAT under normalize
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c, _ = bdat_session(m.port)
    chunk = b"Subject: n\r\n\r\none\ntwo\rthree\x00\r\nfour\n.\nMAIL FROM:<evil@x>\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"HELP\r\n")
    r = c.replies_until(214)
    t.eq([x[0] for x in r], [250, 214], "normalize BDAT with bare LF/CR/NUL: accepted")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "normalize BDAT: dialogue", repr(e))
sess, cmds = upstream_since(rec, n0)
t.eq(rec.messages[m0:],
     [b"Subject: n\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n..\r\nMAIL FROM:<evil@x>\r\n.\r\n"],
     "normalize BDAT: canonical lines, '.' line stuffed")
allcmds = [x for cl in cmds for x in cl]
t.eq(verbs(allcmds, b"MAIL"), [b"MAIL FROM:<alice@example.test>\r\n"],
     "normalize BDAT: one MAIL command upstream")
t.ok(wire_canonical(b"".join(sess)), "normalize BDAT: upstream session canonical")

t.ok(m.alive(), "moatd still running")
m.stop()
rec.stop()
t.done()
