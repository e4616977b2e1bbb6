"""Every limit of moatd with small configured values (ARCHITECTURE.md
invariant 4: everything is bounded), through real moatd processes with the
recording upstream, plus `moatd -t` on a configuration with bad values."""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Moatd, Client, Recorder, tmpdir, MOATD  # noqa: E402

t = TAP()


def upstream_since(rec, n0, timeout=5):
    """Recorder sessions opened since index n0, once all have ended."""
    end = time.time() + timeout
    while time.time() < end and rec.ended < len(rec.sessions):
        time.sleep(0.02)
    return b"".join(bytes(x) for x in rec.sessions[n0:]), \
        [l for cl in rec.commands[n0:] for l in cl]


def body_of_size(n, head=b"Subject: size\r\n\r\n"):
    """Canonical content of exactly n bytes (no line starts with '.')."""
    out = bytearray(head)
    while len(out) + 78 <= n:
        out += b"x" * 76 + b"\r\n"
    rest = n - len(out)
    if rest >= 3:
        out += b"y" * (rest - 2) + b"\r\n"
    elif rest > 0:
        # make the last full line longer instead
        out[-2:-2] = b"z" * rest
    assert len(out) == n, (len(out), n)
    return bytes(out)


def tx(port, body, rcpts=("bob@example.test",), size=None):
    """EHLO MAIL RCPT DATA body . QUIT; returns the reply codes and the
    reply to the end of data (or None)."""
    c = Client(port, timeout=8)
    codes = [c.code("EHLO client.example.test")]
    codes.append(c.code("MAIL FROM:<alice@example.test>" + (" SIZE=%d" % size if size else "")))
    for r in rcpts:
        codes.append(c.code("RCPT TO:<%s>" % r))
    code, text = c.cmd("DATA")
    codes.append(code)
    final = None
    if code == 354:
        c.send(body + b".\r\n")
        final = c.reply()
        codes.append(final[0])
    codes.append(c.code("QUIT"))
    c.close()
    return codes, final


def expect_closed_with(c, code, name):
    try:
        got = c.reply()
    except Exception as e:  # noqa: BLE001
        got = ("exception", repr(e))
    t.eq(got[0], code, name + ": %d" % code)
    t.ok(c.closed(3), name + ": connection closed", got)
    return got


# ====================================================== limits on one moatd
rec = Recorder()
m = Moatd(rec.port, conf="""
max_line_length = 512
max_errors = 3
max_junk_commands = 3
max_recipients = 3
max_message_size = 10k
max_header_count = 16
max_header_size = 1k
max_received_headers = 10
max_messages_per_session = 2
""")

# ---- max_line_length (CRLF included)
try:
    c = Client(m.port, timeout=5)
    line = b"NOOP " + b"x" * 505 + b"\r\n"
    t.eq(len(line), 512, "max_line_length: test line is 512 bytes")
    t.eq(c.code(line[:-2].decode()), 250, "max_line_length: a 512-byte line is taken")
    code, text = c.cmd("NOOP " + "x" * 506)
    t.ok(code == 500 and text.startswith("5.5.6"), "max_line_length: 513 bytes -> 500 5.5.6",
         (code, text))
    t.eq(c.code("NOOP"), 250, "max_line_length: session continues")
    c.close()

    c = Client(m.port, timeout=5)
    code, text = c.cmd("NOOP " + "x" * 593)
    t.ok(code == 500 and text.startswith("5.5.6"), "max_line_length: 600 bytes -> 500 5.5.6",
         (code, text))
    t.eq(c.code("NOOP"), 250, "max_line_length: a following NOOP works")
    t.eq(c.pending(0.2), b"", "max_line_length: no stray reply")
    c.close()

    # A long line arriving in pieces: refused before its end arrives, its
    # tail is skipped (not executed), the next command is taken.
    c = Client(m.port, timeout=5)
    c.cmd("EHLO client.example.test")
    c.send(b"MAIL FROM:<" + b"x" * 700)
    code, text = c.reply()
    t.ok(code == 500 and text.startswith("5.5.6"),
         "max_line_length: refused before the line ends (bounded buffer)", (code, text))
    c.send(b"y" * 300)
    time.sleep(0.1)
    c.send(b"@example.test>\r\nNOOP\r\n")
    t.eq(c.reply()[0], 250, "max_line_length: tail of the long line skipped, NOOP taken")
    t.eq(c.pending(0.3), b"", "max_line_length: nothing else answered")
    t.eq(c.code("RCPT TO:<bob@example.test>"), 503,
         "max_line_length: the long MAIL was not executed")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_line_length: dialogue", repr(e))

# ---- max_errors = 3: the third error is answered, then 421 and close
try:
    c = Client(m.port, timeout=5)
    t.eq(c.code("FOO"), 500, "max_errors: 1st error 500")
    t.eq(c.code("BAR"), 500, "max_errors: 2nd error 500")
    t.eq(c.code("NOOP"), 250, "max_errors: still open after 2 errors")
    t.eq(c.code("BAZ"), 500, "max_errors: 3rd error 500")
    got = expect_closed_with(c, 421, "max_errors: then")
    t.like(got[1], r"^4\.7\.0 ", "max_errors: 421 4.7.0")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_errors: dialogue", repr(e))

# ---- max_junk_commands = 3 (NOOP RSET HELP VRFY EXPN; EHLO is not junk)
try:
    c = Client(m.port, timeout=5)
    codes = [c.code("EHLO a.example.test"), c.code("NOOP"), c.code("EHLO b.example.test"),
             c.code("RSET"), c.code("HELP"), c.code("EHLO c.example.test")]
    t.eq(codes, [250, 250, 250, 250, 214, 250], "max_junk_commands: 3 junk commands taken")
    c.send("VRFY bob\r\n")
    got = expect_closed_with(c, 421, "max_junk_commands: 4th")
    t.like(got[1], r"^4\.7\.0 ", "max_junk_commands: 421 4.7.0")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_junk_commands: dialogue", repr(e))

# ---- max_recipients = 3
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=5)
    c.cmd("EHLO client.example.test")
    c.cmd("MAIL FROM:<alice@example.test>")
    codes = [c.code("RCPT TO:<r%d@example.test>" % i) for i in range(1, 4)]
    t.eq(codes, [250, 250, 250], "max_recipients: 3 recipients accepted")
    code, text = c.cmd("RCPT TO:<r4@example.test>")
    t.ok(code == 452 and text.startswith("4.5.3"), "max_recipients: 4th -> 452 4.5.3",
         (code, text))
    t.eq(c.code("DATA"), 354, "max_recipients: DATA still possible")
    c.send(b"Subject: rcpts\r\n\r\nhi\r\n.\r\n")
    t.eq(c.reply()[0], 250, "max_recipients: message accepted for 3")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_recipients: dialogue", repr(e))
wire, cmds = upstream_since(rec, n0)
t.eq([l for l in cmds if l.startswith(b"RCPT")],
     [b"RCPT TO:<r%d@example.test>\r\n" % i for i in range(1, 4)],
     "max_recipients: upstream got exactly the 3 recipients")

# ---- max_message_size = 10k
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=5)
    code, text = c.cmd("EHLO client.example.test")
    t.ok("SIZE 10240" in text.split("\n"), "max_message_size: EHLO advertises SIZE 10240", text)
    code, text = c.cmd("MAIL FROM:<alice@example.test> SIZE=20000")
    t.ok(code == 552 and text.startswith("5.3.4"), "max_message_size: SIZE=20000 -> 552 5.3.4",
         (code, text))
    t.eq(c.code("MAIL FROM:<alice@example.test> SIZE=10241"), 552,
         "max_message_size: SIZE=10241 -> 552")
    t.eq(c.code("MAIL FROM:<alice@example.test> SIZE=10240"), 250,
         "max_message_size: SIZE=10240 -> 250")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_message_size: SIZE dialogue", repr(e))
big = body_of_size(20 * 1024)
codes, final = tx(m.port, big)
t.eq(codes, [250, 250, 250, 354, 552, 221], "max_message_size: 20 KB in DATA -> 552")
t.like(final[1] if final else None, r"^5\.3\.4 ", "max_message_size: 552 5.3.4")
codes, final = tx(m.port, body_of_size(10241))
t.eq(codes[-2], 552, "max_message_size: 10241 bytes -> 552")
exact = body_of_size(10240)
codes, final = tx(m.port, exact)
t.eq(codes[-2], 250, "max_message_size: exactly 10240 bytes -> 250")
wire, cmds = upstream_since(rec, n0)
t.eq(rec.messages[m0:], [exact + b".\r\n"], "max_message_size: only the 10240-byte message upstream")

# 20 KB sent while the SIZE limit is hit: the session stays in step.
try:
    c = Client(m.port, timeout=5)
    c.send(b"EHLO x.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    [c.reply() for _ in range(4)]
    c.send(big + b".\r\nNOOP\r\n")
    t.eq([c.reply()[0], c.reply()[0]], [552, 250], "max_message_size: in step after 552")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_message_size: in step", repr(e))

# ---- max_header_count = 16
def fields(n):
    return b"".join(b"X-F%d: v\r\n" % i for i in range(n))


n0 = len(rec.sessions)
m0 = len(rec.messages)
ok16 = fields(16) + b"\r\nbody\r\n"
codes, final = tx(m.port, ok16)
t.eq(codes[-2], 250, "max_header_count: 16 fields -> 250")
codes, final = tx(m.port, fields(17) + b"\r\nbody\r\n")
t.eq(codes[-2], 552, "max_header_count: 17 fields -> 552")
t.like(final[1] if final else None, r"^5\.3\.4 ", "max_header_count: 552 5.3.4")
# Lines in the body that look like fields do not count.
codes, final = tx(m.port, fields(2) + b"\r\n" + fields(40))
t.eq(codes[-2], 250, "max_header_count: field-like body lines not counted")

# ---- max_header_size = 1k (name, colon, value, folding; not the final CRLF)
f1024 = b"X-Long:" + b" " + b"a" * 1016
t.eq(len(f1024), 1024, "max_header_size: test field is 1024 bytes")
codes, final = tx(m.port, f1024 + b"\r\nSubject: s\r\n\r\nbody\r\n")
t.eq(codes[-2], 250, "max_header_size: a 1024-byte field -> 250")
codes, final = tx(m.port, f1024 + b"a\r\nSubject: s\r\n\r\nbody\r\n")
t.eq(codes[-2], 552, "max_header_size: a 1025-byte field -> 552")
t.like(final[1] if final else None, r"^5\.3\.4 ", "max_header_size: 552 5.3.4")
folded = b"X-Fold: start" + b"".join(b"\r\n " + b"b" * 60 for _ in range(20))
codes, final = tx(m.port, folded + b"\r\nSubject: s\r\n\r\nbody\r\n")
t.eq(codes[-2], 552, "max_header_size: a folded field of %d bytes -> 552" % len(folded))
long_body_line = b"Subject: s\r\n\r\n" + b"c" * 3000 + b"\r\n"
codes, final = tx(m.port, long_body_line)
t.eq(codes[-2], 250, "max_header_size: long body lines not limited by it")

# ---- max_received_headers = 10
def received(n):
    return b"".join(b"Received: from h%d.example.test by mx.example.test;\r\n"
                    b"\tMon, 1 Jan 2024 00:00:%02d +0000\r\n" % (i, i) for i in range(n))


codes, final = tx(m.port, received(10) + b"Subject: r\r\n\r\nbody\r\n")
t.eq(codes[-2], 250, "max_received_headers: 10 Received: -> 250")
codes, final = tx(m.port, received(11) + b"Subject: r\r\n\r\nbody\r\n")
t.eq(codes[-2], 554, "max_received_headers: 11 Received: -> 554")
t.like(final[1] if final else None, r"^5\.4\.6 ", "max_received_headers: 554 5.4.6")
codes, final = tx(m.port, b"Subject: r\r\n\r\n" + received(20))
t.eq(codes[-2], 250, "max_received_headers: Received: lines in the body not counted")
wire, cmds = upstream_since(rec, n0)
t.eq(len(rec.messages[m0:]), 6, "header limits: exactly the 6 accepted messages upstream")

# ---- max_messages_per_session = 2
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=5)
    c.cmd("EHLO client.example.test")
    codes = []
    for i in range(2):
        codes += [c.code("MAIL FROM:<alice@example.test>"), c.code("RCPT TO:<bob@example.test>"),
                  c.code("DATA")]
        c.send(b"Subject: %d\r\n\r\nbody\r\n.\r\n" % i)
        codes.append(c.reply()[0])
    t.eq(codes, [250, 250, 354, 250] * 2, "max_messages_per_session: 2 messages accepted")
    c.send("MAIL FROM:<alice@example.test>\r\n")
    got = expect_closed_with(c, 421, "max_messages_per_session: 3rd MAIL")
    t.like(got[1], r"^4\.7\.0 ", "max_messages_per_session: 421 4.7.0")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "max_messages_per_session: dialogue", repr(e))
wire, cmds = upstream_since(rec, n0)
t.eq(len(rec.messages[m0:]), 2, "max_messages_per_session: 2 messages upstream")
t.eq(len([l for l in cmds if l.startswith(b"MAIL")]), 2,
     "max_messages_per_session: no 3rd MAIL upstream")
t.ok(m.alive(), "moatd alive after the limit tests")
m.stop()

# ====================================================== connection limits
m = Moatd(rec.port, conf="max_connections_per_ip = 2\nmax_connections = 3\n")
m.wait_log(r"event=disconnect")     # wait_port's probe connection is gone
held = []
try:
    for i in range(2):
        c = Client(m.port, timeout=5)
        held.append(c)
        t.eq(c.greeting[0], 220, "max_connections_per_ip: connection %d from 127.0.0.1 -> 220" % (i + 1))
    c = Client(m.port, timeout=5, greet=False)
    got = expect_closed_with(c, 421, "max_connections_per_ip: 3rd from 127.0.0.1")
    t.like(got[1], r"^4\.7\.0 ", "max_connections_per_ip: 421 4.7.0")
    c.close()
    c = Client(m.port, timeout=5, source="127.0.0.2")
    held.append(c)
    t.eq(c.greeting[0], 220, "max_connections: another address is admitted (3 of 3)")
    c = Client(m.port, timeout=5, greet=False, source="127.0.0.3")
    got = expect_closed_with(c, 421, "max_connections: 4th in total")
    t.like(got[1], r"^4\.7\.0 ", "max_connections: 421 4.7.0")
    c.close()
    t.like(m.log(), r"limit=max_connections_per_ip", "log names max_connections_per_ip")
    t.like(m.log(), r"limit=max_connections\b(?!_)", "log names max_connections")
    # The sessions are still usable, and a slot frees when one leaves.
    t.eq(held[0].code("NOOP"), 250, "admitted sessions unaffected")
    held[0].cmd("QUIT")
    held[0].close()
    ok = False
    for _ in range(40):
        c = Client(m.port, timeout=5)
        if c.greeting[0] == 220:
            ok = True
            held.append(c)
            break
        c.close()
        time.sleep(0.05)
    t.ok(ok, "max_connections_per_ip: a slot is released when a client leaves")
except Exception as e:  # noqa: BLE001
    t.ok(False, "connection limits: dialogue", repr(e))
for c in held:
    c.close()
m.stop()

# ====================================================== timeouts
m = Moatd(rec.port, conf="command_timeout = 2\ndata_timeout = 2\n")
# data_total_timeout runs meanwhile on its own moatd and upstream.
rec_tot = Recorder()
m_tot = Moatd(rec_tot.port, conf="data_timeout = 2\ndata_total_timeout = 10\n")
bg = []


def total_timeout_check():
    """data_total_timeout = 10: a client dripping a line every second
    (never idle for data_timeout) is still cut off after about 10 s."""
    try:
        c = Client(m_tot.port, timeout=20)
        c.send(b"EHLO x.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(4)]
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < 16:
            try:
                c.send(b"drip line\r\n")
            except OSError:
                break
            if c.pending(1.0):
                break
        try:
            got = c.reply()
        except Exception as e:  # noqa: BLE001
            got = ("exception", repr(e))
        el = time.monotonic() - t0
        bg.append((codes == [250, 250, 250, 354], "data_total_timeout: DATA started", codes))
        bg.append((got[0] == 421 and str(got[1]).startswith("4.4.2"),
                   "data_total_timeout: 421 4.4.2 for a dripping client", got))
        bg.append((8.5 <= el <= 13, "data_total_timeout: after ~10 s (%.1f s)" % el, el))
        bg.append((c.closed(3), "data_total_timeout: closed", None))
        c.close()
    except Exception as e:  # noqa: BLE001
        bg.append((False, "data_total_timeout: dialogue", repr(e)))


bgt = threading.Thread(target=total_timeout_check, daemon=True)
bgt.start()

# command_timeout bounds the whole command: one byte every 0.5 s
try:
    c = Client(m.port, timeout=10)
    t0 = time.monotonic()
    got = None
    for b in b"NOOP and a slowly dripping line that never ends":
        try:
            c.send(bytes([b]))
        except OSError:
            break
        if c.pending(0.5):
            break
        if time.monotonic() - t0 > 8:
            break
    el = time.monotonic() - t0
    try:
        got = c.reply()
    except Exception as e:  # noqa: BLE001
        got = ("exception", repr(e))
    t.ok(got[0] == 421 and str(got[1]).startswith("4.4.2"),
         "command_timeout: slow-drip client gets 421 4.4.2", got)
    t.ok(1.5 <= el <= 3.8, "command_timeout: within the command's 2 s (%.1f s)" % el, el)
    t.ok(c.closed(3), "command_timeout: connection closed")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "command_timeout: drip dialogue", repr(e))

# each complete command gets a fresh command_timeout
try:
    c = Client(m.port, timeout=10)
    codes = []
    for i in range(4):
        time.sleep(1.2)
        codes.append(c.code("NOOP"))
    t.eq(codes, [250] * 4, "command_timeout: commands every 1.2 s keep the session (4.8 s)")
    t0 = time.monotonic()
    got = c.reply()
    el = time.monotonic() - t0
    t.ok(got[0] == 421 and 1.5 <= el <= 3.8,
         "command_timeout: idle client gets 421 after ~2 s (%.1f s)" % el, got)
    t.ok(c.closed(3), "command_timeout: idle connection closed")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "command_timeout: NOOP dialogue", repr(e))

# data_timeout: a client that stalls in the middle of DATA
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=10)
    c.send(b"EHLO x.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    t.eq([c.reply()[0] for _ in range(4)], [250, 250, 250, 354], "data_timeout: DATA started")
    c.send(b"Subject: stall\r\n\r\npartial line STALLED-CONTENT")
    t0 = time.monotonic()
    got = c.reply()
    el = time.monotonic() - t0
    t.ok(got[0] == 421 and got[1].startswith("4.4.2"), "data_timeout: 421 4.4.2", got)
    t.ok(1.5 <= el <= 3.8, "data_timeout: after ~2 s (%.1f s)" % el, el)
    t.ok(c.closed(3), "data_timeout: connection closed")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "data_timeout: dialogue", repr(e))
wire, cmds = upstream_since(rec, n0)
t.eq(rec.messages[m0:], [], "data_timeout: upstream got no message")
t.ok(b"STALLED" not in wire and b"DATA\r\n" not in wire,
     "data_timeout: upstream got neither DATA nor content", wire)

# data_timeout is per block: a slow but steady sender gets through
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=10)
    c.send(b"EHLO x.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    [c.reply() for _ in range(4)]
    c.send(b"Subject: slow\r\n\r\n")
    for i in range(4):
        time.sleep(1.0)
        c.send(b"line %d\r\n" % i)
    c.send(b".\r\n")
    t.eq(c.reply()[0], 250, "data_timeout: 4 s of DATA, 1 s gaps -> 250")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "data_timeout: steady sender", repr(e))
t.eq(rec.wait_messages(m0 + 1)[m0:],
     [b"Subject: slow\r\n\r\nline 0\r\nline 1\r\nline 2\r\nline 3\r\n.\r\n"],
     "data_timeout: steady sender's message intact upstream")

bgt.join(20)
for cond, name, diag in bg:
    t.ok(cond, name, diag)
if not bg:
    t.ok(False, "data_total_timeout: background check finished")
t.eq(rec_tot.messages, [], "data_total_timeout: upstream got no message")
t.ok(m.alive() and m_tot.alive(), "moatd alive after the timeout tests")
m.stop()
m_tot.stop()
rec_tot.stop()

# ====================================================== file spool
m = Moatd(rec.port, conf="spool_memory_threshold = 1k\n")


def spool_fds(pid, d):
    out = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith(d + "/") and target != m.logfile and not target.endswith("moat.conf"):
                out.append(target)
    except OSError:
        pass
    return out


def big_message(n):
    """About n bytes of varied content, dot-stuffed for the wire: lines of
    many lengths, 8-bit bytes, lines starting with '.' and '..'."""
    out = bytearray(b"From: <a@example.test>\r\nSubject: spool\r\nMIME-Version: 1.0\r\n"
                    b"Content-Type: text/plain; charset=latin1\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    i = 0
    while len(out) < n:
        k = (i * 37) % 300
        if i % 7 == 0:
            out += b".." + b"d" * (k % 20)           # content line "." + text, stuffed
        elif i % 11 == 0:
            out += b".."                              # content line ".", stuffed
        else:
            line = bytes(33 + ((i + j) % 94) for j in range(k))
            if i % 5 == 0:
                line += bytes(range(0xa0, 0xff))
            out += (b"." if line.startswith(b".") else b"") + line
        out += b"\r\n"
        i += 1
    return bytes(out)


msg = big_message(200 * 1024)
n0 = len(rec.sessions)
m0 = len(rec.messages)
try:
    c = Client(m.port, timeout=10)
    c.send(b"EHLO x.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    t.eq([c.reply()[0] for _ in range(4)], [250, 250, 250, 354], "spool: DATA started")
    c.send(msg[:150 * 1024])
    fds = []
    for _ in range(40):
        fds = spool_fds(m.proc.pid, m.dir)
        if fds:
            break
        time.sleep(0.05)
    t.ok(any("(deleted)" in f for f in fds),
         "spool: message spooled to an unlinked file in spool_directory", fds)
    c.send(msg[150 * 1024:] + b".\r\n")
    t.eq(c.reply()[0], 250, "spool: 200 KB message accepted")
    # a second one on the same session
    c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    [c.reply() for _ in range(3)]
    c.send(msg + b".\r\n")
    t.eq(c.reply()[0], 250, "spool: second large message in the session accepted")
    c.cmd("QUIT")
    c.close()
except Exception as e:  # noqa: BLE001
    t.ok(False, "spool: dialogue", repr(e))
got = rec.wait_messages(m0 + 2)[m0:]
t.eq(len(got), 2, "spool: upstream received both messages")
t.ok(len(got) >= 1 and got[0] == msg + b".\r\n",
     "spool: 200 KB arrive byte for byte (%d bytes)" % len(msg),
     "lengths %s vs %d" % ([len(x) for x in got], len(msg) + 3))
t.ok(len(got) >= 2 and got[1] == msg + b".\r\n", "spool: second message byte for byte")
time.sleep(0.2)
t.eq(spool_fds(m.proc.pid, m.dir), [], "spool: no spool file left open")
t.eq(sorted(f for f in os.listdir(m.dir) if f not in ("moat.conf", "moatd.log")), [],
     "spool: nothing left in spool_directory")
m.stop()
rec.stop()

# ====================================================== moatd -t
d = tmpdir()


def check_conf(text):
    path = os.path.join(d, "c%d.conf" % len(os.listdir(d)))
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([MOATD, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    return path, p.returncode, p.stdout.decode(errors="replace")


path, rc, out = check_conf('hostname = "x.test"\nspool_directory = "%s"\nmax_message_size = 10k\n'
                           'command_timeout = 5m\n' % d)
t.ok(rc == 0 and "OK" in out, "moatd -t: a valid configuration passes", (rc, out))
path, rc, out = check_conf('hostname = "x.test"\nmax_recipients = 0\nspool_directory = "%s"\n' % d)
t.ok(rc != 0 and re.search(re.escape(path) + r":2: .*max_recipients.*range", out),
     "moatd -t: out-of-range limit -> file:2: and the reason", (rc, out))
path, rc, out = check_conf('hostname = "x.test"\nspool_directory = "%s"\nno_such_keyword = 1\n' % d)
t.ok(rc != 0 and re.search(re.escape(path) + r":3: .*no_such_keyword", out),
     "moatd -t: unknown keyword -> file:3: and the reason", (rc, out))
# Every bad value is reported, not just the first.
path, rc, out = check_conf('hostname = "x.test"\n'
                           'max_recipients = 0\n'
                           'spool_directory = "%s"\n'
                           'bare_newline = sometimes\n'
                           'max_message_size = 5G\n'
                           'command_timeout = soon\n' % d)
t.ok(rc != 0, "moatd -t: configuration with 4 errors fails", (rc, out))
for line, what in ((2, "max_recipients"), (4, "bare_newline"), (5, "max_message_size"),
                   (6, "command_timeout")):
    t.ok(re.search(re.escape(path) + r":%d: .*%s" % (line, what), out) is not None,
         "moatd -t: every error reported: %s:%d: (%s)" % (os.path.basename(path), line, what), out)
# libconfuse cannot resume after an unknown keyword: errors before it and the
# keyword itself are reported (documented in moat.conf(5)).
path, rc, out = check_conf('hostname = "x.test"\n'
                           'max_recipients = 0\n'
                           'spool_directory = "%s"\n'
                           'no_such_keyword = 1\n' % d)
for line, what in ((2, "max_recipients"), (4, "no_such_keyword")):
    t.ok(re.search(re.escape(path) + r":%d: .*%s" % (line, what), out) is not None,
         "moatd -t: reported before the parse stops: %s:%d: (%s)" % (os.path.basename(path), line, what), out)

t.done()
