"""PROXY protocol (haproxy doc/proxy-protocol.txt) on moatd's listeners.

A listener with proxy_protocol = v1 | v2 | any takes the real client
address from the header sent by a trusted proxy; that address is what moatd
logs (event=proxy ... client=ADDR) and what the upstream gets in XCLIENT
(ADDR=..., ADDR=IPV6:... for IPv6). Anything else -- a malformed header, a
header from an untrusted peer, the wrong version for the listener, no header
in time -- closes the connection before any greeting.
"""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Moatd, Client, Recorder, free_port  # noqa: E402

t = TAP()
T_START = time.monotonic()


def mono():
    return time.monotonic()


# ------------------------------------------------------------- headers

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst, sport, dport, proto=None):
    if proto is None:
        proto = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(src=None, dst=None, sport=0, dport=0, cmd=0x1, fam=None, tlvs=b"",
       version=0x2, length=None, addr_bytes=None):
    """Binary header: signature, version/command, family, length, addresses
    (src, dst, sport, dport), then TLVs. Fields can be forced for tests."""
    if addr_bytes is None:
        if src is None:
            addr_bytes = b""
        elif ":" in src:
            addr_bytes = (socket.inet_pton(socket.AF_INET6, src) +
                          socket.inet_pton(socket.AF_INET6, dst) +
                          struct.pack("!HH", sport, dport))
        else:
            addr_bytes = (socket.inet_aton(src) + socket.inet_aton(dst) +
                          struct.pack("!HH", sport, dport))
    if fam is None:
        fam = 0x00 if src is None else (0x21 if ":" in src else 0x11)
    body = addr_bytes + tlvs
    if length is None:
        length = len(body)
    return SIG + bytes([(version << 4) | cmd, fam]) + struct.pack("!H", length) + body


def tlv(typ, value):
    return bytes([typ]) + struct.pack("!H", len(value)) + value


# --------------------------------------------------------------- setup

rec = Recorder(ehlo_caps=["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                          "XCLIENT NAME ADDR PORT PROTO HELO"])
P_ANY, P_V1, P_V2, P_UNTRUSTED, P_OFF = (free_port() for _ in range(5))
conf = """drain_timeout = 1
proxy_protocol_timeout = 2s
listen "127.0.0.1:%d" {
    proxy_protocol = "any"
    proxy_trusted = {"127.0.0.0/8"}
}
listen "127.0.0.1:%d" {
    proxy_protocol = "v1"
    proxy_trusted = {"127.0.0.0/8"}
}
listen "127.0.0.1:%d" {
    proxy_protocol = "v2"
    proxy_trusted = {"127.0.0.0/8"}
}
listen "127.0.0.1:%d" {
    proxy_protocol = "any"
    proxy_trusted = {"10.0.0.0/8"}
}
listen "127.0.0.1:%d" {
    proxy_protocol = "off"
}
""" % (P_ANY, P_V1, P_V2, P_UNTRUSTED, P_OFF)
m = Moatd(rec.port, conf=conf, listen=P_ANY)
t.like(m.log(), r"event=upstream-up .*xclient=1", "upstream offers XCLIENT")


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_pieces(s, pieces, gap=0.0):
    """Each piece in its own send(); False if the server already closed."""
    try:
        for i, p in enumerate(pieces):
            if i and gap:
                time.sleep(gap)
            s.sendall(p)
        return True
    except OSError:
        return False


def outcome(s, wait):
    """('closed', bytes) when the server closed (EOF or RST) within `wait`
    seconds, else ('open', bytes); bytes is whatever it sent before."""
    got = b""
    end = mono() + wait
    while True:
        left = end - mono()
        if left <= 0:
            return "open", got
        s.settimeout(left)
        try:
            d = s.recv(4096)
        except socket.timeout:
            return "open", got
        except (ConnectionResetError, BrokenPipeError):
            return "closed", got
        if not d:
            return "closed", got
        got += d


class ProxiedClient(Client):
    """A Client whose connection starts with the given header bytes."""

    def __init__(self, port, pieces, gap=0.0):
        self.s = raw(port)
        self.buf = b""
        send_pieces(self.s, pieces, gap)
        self.greeting = self.reply()


def xclient_of_last_mail():
    """The XCLIENT line of the newest upstream session that sent MAIL."""
    end = mono() + 2
    while mono() < end:
        sess = rec.mail_sessions()
        if sess:
            m_ = re.search(r"^XCLIENT [^\r\n]*", sess[-1], re.M)
            if m_:
                return m_.group(0)
        time.sleep(0.05)
    return None


def deliver(c, ehlo="proxied.example.test"):
    codes = [c.code("EHLO " + ehlo), c.code("MAIL FROM:<alice@example.test>"),
             c.code("RCPT TO:<bob@example.test>"), c.code("DATA")]
    c.send("Subject: proxied\r\n\r\nhello\r\n.\r\n")
    codes.append(c.reply()[0])
    codes.append(c.code("QUIT"))
    c.close()
    return codes


def proxied_ok(name, port, pieces, addr, sport, xaddr=None, gap=0.0, logged=True):
    """A proxied session: greeting, a delivered message, moatd's log and
    the upstream's XCLIENT carry the client address from the header."""
    n_before = len(rec.mail_sessions())
    try:
        c = ProxiedClient(port, pieces, gap)
    except (OSError, EOFError) as e:
        t.ok(False, "%s: greeting after the header" % name, e)
        return
    t.eq(c.greeting[0], 220, "%s: greeting after the header" % name)
    codes = deliver(c)
    t.eq(codes, [250, 250, 250, 354, 250, 221], "%s: message delivered" % name)
    if logged:
        t.like(m.log(), r"event=proxy sid=\S+ via=127\.0\.0\.1 client=%s port=%d\n"
               % (re.escape(addr), sport), "%s: moatd logs client=%s" % (name, addr))
    else:
        t.ok(True, "%s: (no address in the header)" % name)
    t.like(m.log(), r"event=tx .*client=%s " % re.escape(addr),
           "%s: the transaction is logged for %s" % (name, addr))
    x = xclient_of_last_mail() if len(rec.mail_sessions()) > n_before else None
    want = "XCLIENT ADDR=%s PORT=%d " % (xaddr or addr, sport)
    t.ok(x is not None and x.startswith(want), "%s: upstream gets %s" % (name, want.strip()), x)


def closed_without_greeting(name, port, pieces, within=1.5, event="proxy-protocol-error",
                            gap=0.0):
    """The connection is closed (within `within` s) without a byte sent."""
    s = raw(port)
    t0 = mono()
    send_pieces(s, pieces, gap)
    state, got = outcome(s, within + 1.0)
    el = mono() - t0
    s.close()
    t.ok(state == "closed" and got == b"" and el <= within,
         "%s: closed without a greeting (%s after %.2fs, got %r)" % (name, state, el, got[:60]))
    if event:
        t.ok(wait_log_count(event) > 0, "%s: event=%s logged" % (name, event))


def wait_log_count(event, timeout=1.0):
    end = mono() + timeout
    while True:
        n = len(re.findall(r"event=%s " % re.escape(event), m.log()))
        if n or mono() > end:
            return n
        time.sleep(0.05)


# ----------------------------------------------------- accepted headers

# Nothing is said before the header arrives.
s = raw(P_ANY)
state, got = outcome(s, 0.4)
t.ok(state == "open" and got == b"", "no greeting before the PROXY header", (state, got))
send_pieces(s, [v1("192.0.2.99", "198.51.100.1", 1234, 25)])
state, got = outcome(s, 0.5)
t.ok(got.startswith(b"220 "), "greeting once the header arrived", got)
s.close()

proxied_ok("v1 TCP4", P_ANY, [v1("192.0.2.10", "198.51.100.1", 40000, 25)],
           "192.0.2.10", 40000)
proxied_ok("v1 TCP6", P_ANY, [v1("2001:db8::7", "2001:db8::1", 40001, 25)],
           "2001:db8::7", 40001, xaddr="IPV6:2001:db8::7")
proxied_ok("v2 TCP4", P_ANY, [v2("198.51.100.23", "203.0.113.1", 5555, 25)],
           "198.51.100.23", 5555)
proxied_ok("v2 TCP6", P_ANY, [v2("2001:db8:1::42", "2001:db8::1", 6666, 25)],
           "2001:db8:1::42", 6666, xaddr="IPV6:2001:db8:1::42")
proxied_ok("v2 TCP6 with an IPv4-mapped source", P_ANY,
           [v2("::ffff:203.0.113.9", "::ffff:203.0.113.1", 7777, 25)],
           "203.0.113.9", 7777)
proxied_ok("v2 TCP4 with TLVs (ALPN, AUTHORITY, NOOP)", P_ANY,
           [v2("192.0.2.77", "198.51.100.1", 8888, 25,
               tlvs=tlv(0x01, b"smtp") + tlv(0x02, b"mx.example.test") + tlv(0x04, b""))],
           "192.0.2.77", 8888)
proxied_ok("v1 only listener, v1 header", P_V1, [v1("192.0.2.11", "198.51.100.1", 40011, 25)],
           "192.0.2.11", 40011)
proxied_ok("v2 only listener, v2 header", P_V2, [v2("192.0.2.12", "198.51.100.1", 40012, 25)],
           "192.0.2.12", 40012)

# Headers without an address: the connection's own address is used.
c = ProxiedClient(P_ANY, [v2(cmd=0x0, fam=0x00)])
t.eq(c.greeting[0], 220, "v2 LOCAL: greeting")
t.eq(deliver(c)[-2:], [250, 221], "v2 LOCAL: message delivered")
t.ok((xclient_of_last_mail() or "").startswith("XCLIENT ADDR=127.0.0.1 "),
     "v2 LOCAL: upstream gets the proxy's own address", xclient_of_last_mail())
c = ProxiedClient(P_ANY, [v2(cmd=0x0, fam=0x11, addr_bytes=b"\x01" * 12)])
t.eq(c.greeting[0], 220, "v2 LOCAL with an address block: greeting (block ignored)")
t.eq(deliver(c)[-2:], [250, 221], "v2 LOCAL with an address block: message delivered")
t.ok((xclient_of_last_mail() or "").startswith("XCLIENT ADDR=127.0.0.1 "),
     "v2 LOCAL with an address block: addresses ignored", xclient_of_last_mail())
c = ProxiedClient(P_ANY, [b"PROXY UNKNOWN\r\n"])
t.eq(c.greeting[0], 220, "v1 UNKNOWN: greeting")
t.eq(deliver(c)[-2:], [250, 221], "v1 UNKNOWN: message delivered")
t.ok((xclient_of_last_mail() or "").startswith("XCLIENT ADDR=127.0.0.1 "),
     "v1 UNKNOWN: upstream gets the proxy's own address", xclient_of_last_mail())
c = ProxiedClient(P_ANY, [v2(cmd=0x1, fam=0x00)])
t.eq(c.greeting[0], 220, "v2 PROXY over AF_UNSPEC: greeting (treated as LOCAL)")
c.close()

# The header split across several writes.
h = v1("192.0.2.31", "198.51.100.1", 31000, 25)
proxied_ok("v1 header sent one byte at a time", P_ANY, [h[i:i + 1] for i in range(len(h))],
           "192.0.2.31", 31000, gap=0.01)
h = v2("2001:db8::31", "2001:db8::1", 31001, 25, tlvs=tlv(0x04, b"xx"))
proxied_ok("v2 header in four writes", P_ANY, [h[:5], h[5:13], h[13:20], h[20:]],
           "2001:db8::31", 31001, xaddr="IPV6:2001:db8::31", gap=0.05)
proxied_ok("v2 header one byte at a time", P_ANY, [h[i:i + 1] for i in range(len(h))],
           "2001:db8::31", 31001, xaddr="IPV6:2001:db8::31", gap=0.005)

# The client's first command in the same segment as the header (a client
# that does not wait for the greeting): it must not be lost.
s = raw(P_ANY)
send_pieces(s, [v1("192.0.2.41", "198.51.100.1", 41000, 25) + b"EHLO early.example.test\r\n"])
state, got = outcome(s, 2.0)
diag = "after 2 s: %s %r" % (state, got[:200])
if b"\r\n250" not in got:
    # Show whether the EHLO was lost or only left waiting for more input.
    send_pieces(s, [b"NOOP\r\n"])
    diag += "\nafter a further NOOP: %r" % (outcome(s, 1.0)[1][:300],)
s.close()
t.ok(got.startswith(b"220 ") and b"\r\n250" in got,
     "a command in the same segment as the header is answered without waiting "
     "for more input", diag)

# A plain listener does not honour a PROXY line: it is an unknown command.
c = Client(P_OFF)
t.eq(c.greeting[0], 220, "plain listener: greeting at once")
t.eq(c.code(v1("192.0.2.66", "198.51.100.1", 1, 25).decode().strip()), 500,
     "plain listener: a PROXY line is an unknown command (500)")
codes = deliver(c)
t.eq(codes[-2:], [250, 221], "plain listener: message delivered")
t.ok((xclient_of_last_mail() or "").startswith("XCLIENT ADDR=127.0.0.1 "),
     "plain listener: the PROXY line did not change the client address", xclient_of_last_mail())

# ------------------------------------------------------ refused headers

BAD = [
    ("v1 with an invalid IPv4 address", v1("256.1.1.1", "198.51.100.1", 1, 25)),
    ("v1 with a port above 65535", v1("192.0.2.1", "198.51.100.1", 65536, 25)),
    ("v1 with a leading zero in an address", b"PROXY TCP4 192.0.2.01 198.51.100.1 1 25\r\n"),
    ("v1 with two spaces", b"PROXY TCP4  192.0.2.1 198.51.100.1 1 25\r\n"),
    ("v1 with an unknown protocol", b"PROXY TCP5 192.0.2.1 198.51.100.1 1 25\r\n"),
    ("v1 TCP4 with IPv6 addresses", v1("2001:db8::1", "2001:db8::2", 1, 25, proto="TCP4")),
    ("v1 ending in a bare LF", b"PROXY TCP4 192.0.2.1 198.51.100.1 1 25\n"),
    ("v1 lower case", b"proxy TCP4 192.0.2.1 198.51.100.1 1 25\r\n"),
    ("v1 longer than 107 bytes", b"PROXY UNKNOWN " + b"x" * 120),
    ("SMTP instead of a header", b"EHLO client.example.test\r\n"),
    ("v2 with a corrupted signature", b"\r\n\r\n\x00\r\nQUIX\n" + v2("192.0.2.1", "1.2.3.4", 1, 2)[12:]),
    ("v2 with version 1", v2("192.0.2.1", "198.51.100.1", 1, 25, version=0x1)),
    ("v2 with an unknown command", v2("192.0.2.1", "198.51.100.1", 1, 25, cmd=0x2)),
    ("v2 over UDP", v2("192.0.2.1", "198.51.100.1", 1, 25, fam=0x12)),
    ("v2 with an unknown family", v2("192.0.2.1", "198.51.100.1", 1, 25, fam=0x41)),
    ("v2 TCP4 with a block too short for the addresses",
     v2("192.0.2.1", "198.51.100.1", 1, 25, length=8)[:16 + 8]),
    ("v2 with a broken TLV", v2("192.0.2.1", "198.51.100.1", 1, 25, tlvs=b"\x04\x00\x09ab")),
    ("v2 with a TLV area over 1024 bytes",
     v2("192.0.2.1", "198.51.100.1", 1, 25, tlvs=tlv(0x04, b"z" * 1100))),
]
for name, header in BAD:
    closed_without_greeting(name, P_ANY, [header])
t.ok(m.alive(), "moatd alive after the malformed headers")

# The wrong version for the listener.
closed_without_greeting("v1 only listener, v2 header", P_V1,
                        [v2("192.0.2.13", "198.51.100.1", 1, 25)])
closed_without_greeting("v2 only listener, v1 header", P_V2,
                        [v1("192.0.2.14", "198.51.100.1", 1, 25)])

# A peer outside proxy_trusted: closed whatever it sends.
closed_without_greeting("header from an untrusted peer (v1)", P_UNTRUSTED,
                        [v1("192.0.2.15", "198.51.100.1", 1, 25)], event="proxy-untrusted")
closed_without_greeting("header from an untrusted peer (v2)", P_UNTRUSTED,
                        [v2("192.0.2.16", "198.51.100.1", 1, 25)], event="proxy-untrusted")
t.ok(not re.search(r"client=192\.0\.2\.1[56] ", m.log()),
     "an untrusted peer's header is never used", m.log()[-1500:])

# No header (or half of one) within proxy_protocol_timeout = 2 s.
for name, pieces in (("no header", []),
                     ("half a v1 header", [b"PROXY TCP4 192.0.2.1"]),
                     ("half a v2 header", [v2("192.0.2.1", "198.51.100.1", 1, 25)[:20]])):
    s = raw(P_ANY)
    t0 = mono()
    send_pieces(s, pieces)
    state, got = outcome(s, 4.0)
    el = mono() - t0
    s.close()
    t.ok(state == "closed" and got == b"" and 1.7 <= el <= 3.5,
         "%s within proxy_protocol_timeout: closed without a greeting after %.2fs (%s, %r)"
         % (name, el, state, got[:60]))
t.ok(wait_log_count("proxy-protocol-timeout") >= 3, "the timeouts are logged")

# Still serving after all that.
proxied_ok("after the refusals, v2 TCP4", P_ANY, [v2("192.0.2.99", "203.0.113.1", 9999, 25)],
           "192.0.2.99", 9999)
t.ok(m.alive(), "moatd alive at the end")
t.eq(m.stop(), 0, "moatd exits 0")
rec.stop()

t.diag("elapsed %.1fs" % (mono() - T_START))
t.done()
