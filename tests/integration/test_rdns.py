"""The client's reverse DNS (proxy/rdns.c, reverse_dns = yes): moatd looks
up the PTR records of the client address and confirms each name by its A
or AAAA records, through its own resolver asking a real dnsmasq on a
loopback port (dns_forwarders). The client address is given by a PROXY
protocol header (v1 for IPv4, v2 for IPv6 and IPv4-mapped IPv6), so the
test chooses what moatd sees.

Checked: a confirmed name in moat's Received field at the upstream
("from HELO (name [addr])"), in the event=rdns and transaction log lines,
and at the CONNECT stage of a filter (the test filter's echo_client_name,
added to the message at EOM), and as XCLIENT NAME; "unknown" with its reason for a PTR without
a matching address, no PTR, and a DNS server that never answers
(tempfail; the session is still served, the greeting held at most
dns_timeout when a CONNECT filter waits for the name, not at all without
one); an IPv6 client (ip6.arpa, AAAA); several PTR names where only one
leads back; reverse_dns = no and loopback clients send no query (dnsmasq's
query log); clients that leave during the lookup (moatd goes on).
"""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Client, Recorder, Dnsmasq, SilentDns,  # noqa: E402
                      dnsmasq_usable, free_port)

t = TAP()
TIMEOUT = 1.0  # dns_timeout, seconds

RECORDS = [
    "log-queries",
    "local=/example.test/",
    "local=/2.0.192.in-addr.arpa/",
    "local=/8.b.d.0.1.0.0.2.ip6.arpa/",
    # Confirmed: the PTR name has the address (host-record adds the PTR).
    "host-record=good.example.test,192.0.2.10",
    # A PTR whose name has another address.
    "ptr-record=11.2.0.192.in-addr.arpa,nomatch.example.test",
    "host-record=nomatch.example.test,192.0.2.99",
    # 192.0.2.12: no PTR at all (NXDOMAIN from local=).
    # Three PTR names, one leading back.
    "ptr-record=13.2.0.192.in-addr.arpa,a.multi.example.test",
    "ptr-record=13.2.0.192.in-addr.arpa,b.multi.example.test",
    "ptr-record=13.2.0.192.in-addr.arpa,c.multi.example.test",
    "host-record=a.multi.example.test,192.0.2.98",
    "host-record=b.multi.example.test,192.0.2.13",
    # IPv6.
    "host-record=v6.example.test,2001:db8::10",
    "host-record=v4only.example.test,192.0.2.14",
    "ptr-record=%s.ip6.arpa,v4only.example.test" % ".".join(
        reversed("20010db8000000000000000000000014")),
]


def v1(src, sport=40000):
    return ("PROXY TCP4 %s 127.0.0.1 %d 25\r\n" % (src, sport)).encode()


def v2(src, sport=40000):
    if ":" in src:
        addrs = (socket.inet_pton(socket.AF_INET6, src) +
                 socket.inet_pton(socket.AF_INET6, "::1"))
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1")
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, 25)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, fam]) +
            struct.pack("!H", len(body)) + body)


class Proxied(Client):
    """A client behind a PROXY header; times its greeting."""

    def __init__(self, port, header):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.buf = b""
        t0 = time.monotonic()
        self.s.sendall(header)
        self.greeting = self.reply()
        self.greet_s = time.monotonic() - t0


def deliver(c, tag, helo="client.example.test"):
    """EHLO .. QUIT; returns (reply codes, seconds EHLO took)."""
    t0 = time.monotonic()
    codes = [c.code("EHLO " + helo)]
    ehlo_s = time.monotonic() - t0
    codes += [c.code("MAIL FROM:<alice@example.test>"),
              c.code("RCPT TO:<bob@example.test>"), c.code("DATA")]
    c.send("Subject: %s\r\nMessage-ID: <%s@moat.test>\r\n\r\nhello\r\n.\r\n" % (tag, tag))
    codes.append(c.reply()[0])
    codes.append(c.code("QUIT"))
    c.close()
    return codes, ehlo_s


def message(rec, tag, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        for msg in list(rec.messages):
            if ("<%s@moat.test>" % tag).encode() in msg:
                return msg.decode("latin-1")
        time.sleep(0.05)
    return ""


def xclient(rec, tag):
    """The XCLIENT line of the upstream session that carried tag."""
    for w in rec.wire():
        if "<%s@moat.test>" % tag in w:
            m = re.search(r"^XCLIENT [^\r\n]*", w, re.M)
            return m.group(0) if m else None
    return None


def field(msg, name):
    m = re.search(r"^%s: ([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)" % re.escape(name), msg, re.M)
    return re.sub(r"\r?\n[ \t]+", " ", m.group(1)) if m else None


def tx_line(m, tag_addr):
    for line in m.log().splitlines():
        if "event=tx " in line and "client=%s " % tag_addr in line:
            return line
    return ""


def queries(dm, name):
    """How many times dnsmasq was asked about name (its query log)."""
    try:
        with open(os.path.join(dm.dir, "log"), errors="replace") as f:
            return len(re.findall(r"query\[\w+\] %s from" % re.escape(name), f.read()))
    except OSError:
        return 0


def main():
    if not dnsmasq_usable():
        t.skip("reverse DNS against dnsmasq", "dnsmasq not installed (dnsmasq-base)")
        t.done()
    mute = SilentDns()
    dm = Dnsmasq(RECORDS + ["server=/100.51.198.in-addr.arpa/127.0.0.1#%d" % mute.port])
    rec = Recorder(ehlo_caps=["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                              "XCLIENT NAME ADDR PORT PROTO HELO"])
    base = ('reverse_dns = yes\ndns_forwarders = { "%s" }\ndns_timeout = %dms\n'
            'received_header = "always"\n' % (dm.forwarder(), TIMEOUT * 1000))

    def listeners(proxy_port, plain_port):
        return ('listen "127.0.0.1:%d" {\n proxy_protocol = "any"\n'
                ' proxy_trusted = {"127.0.0.0/8"}\n}\n'
                'listen "127.0.0.1:%d" {}\n' % (proxy_port, plain_port))

    # m1: a filter at CONNECT (the test filter wants every stage), which
    # waits for the name; m2: no filter, the greeting goes out at once.
    p1, p1plain, p2, p2plain = (free_port() for _ in range(4))
    m1 = Moatd(rec.port, listen=p1, conf=base + listeners(p1, p1plain) +
               'filter "test" { echo_client_name = "yes" }\n')
    m2 = Moatd(rec.port, listen=p2, conf=base + listeners(p2, p2plain))

    # ---- confirmed name
    c = Proxied(p1, v1("192.0.2.10"))
    t.eq(c.greeting[0], 220, "confirmed: greeting")
    codes, _ = deliver(c, "good")
    t.eq(codes, [250, 250, 250, 354, 250, 221], "confirmed: message delivered")
    msg = message(rec, "good")
    t.like(field(msg, "Received") or "",
           r"^from client\.example\.test \(good\.example\.test \[192\.0\.2\.10\]\)",
           "confirmed: Received: from HELO (name [addr]) at the upstream")
    t.eq(field(msg, "X-Moat-Test-Client"),
         "status=verified name=good.example.test ptr=good.example.test",
         "confirmed: the filter saw the name at CONNECT")
    t.like(m1.log(), r"event=rdns sid=\S+ client=192\.0\.2\.10 status=verified "
           r"name=good\.example\.test ptr=good\.example\.test names=1 ms=\d+",
           "confirmed: event=rdns logged")
    t.like(tx_line(m1, "192.0.2.10"), r" client_name=good\.example\.test rdns=verified ",
           "confirmed: the transaction line has client_name=")
    t.like(xclient(rec, "good") or "", r" NAME=good\.example\.test ",
           "confirmed: the upstream gets XCLIENT NAME=name")

    # ---- PTR without a matching address
    c = Proxied(p1, v1("192.0.2.11"))
    codes, _ = deliver(c, "nomatch")
    t.eq(codes[-2:], [250, 221], "PTR without match: message delivered")
    msg = message(rec, "nomatch")
    t.like(field(msg, "Received") or "", r"^from client\.example\.test \(unknown \[192\.0\.2\.11\]\)",
           "PTR without match: Received says unknown")
    t.eq(field(msg, "X-Moat-Test-Client"), "status=mismatch name=- ptr=nomatch.example.test",
         "PTR without match: the filter sees status mismatch and the PTR name")
    t.like(tx_line(m1, "192.0.2.11"), r" client_name=unknown rdns=mismatch ",
           "PTR without match: client_name=unknown rdns=mismatch logged")
    t.like(xclient(rec, "nomatch") or "", r" NAME=\[UNAVAILABLE\] ",
           "PTR without match: XCLIENT NAME=[UNAVAILABLE]")

    # ---- no PTR
    c = Proxied(p1, v1("192.0.2.12"))
    codes, _ = deliver(c, "noptr")
    t.eq(codes[-2:], [250, 221], "no PTR: message delivered")
    msg = message(rec, "noptr")
    t.like(field(msg, "Received") or "", r"\(unknown \[192\.0\.2\.12\]\)",
           "no PTR: Received says unknown")
    t.eq(field(msg, "X-Moat-Test-Client"), "status=none name=- ptr=-",
         "no PTR: the filter sees status none")
    t.like(m1.log(), r"event=rdns sid=\S+ client=192\.0\.2\.12 status=none ",
           "no PTR: logged status=none")

    # ---- several PTR names, only one leads back
    c = Proxied(p1, v1("192.0.2.13"))
    codes, _ = deliver(c, "multi")
    t.eq(codes[-2:], [250, 221], "several PTRs: message delivered")
    msg = message(rec, "multi")
    t.like(field(msg, "Received") or "", r"\(b\.multi\.example\.test \[192\.0\.2\.13\]\)",
           "several PTRs: the one confirmed name in Received")
    t.like(field(msg, "X-Moat-Test-Client") or "", r"^status=verified name=b\.multi\.example\.test ",
           "several PTRs: the filter sees the confirmed one")
    t.like(m1.log(), r"event=rdns sid=\S+ client=192\.0\.2\.13 status=verified "
           r"name=b\.multi\.example\.test ptr=\S+ names=3 ",
           "several PTRs: three names checked")

    # ---- IPv6 (v2 header): ip6.arpa and AAAA
    c = Proxied(p1, v2("2001:db8::10"))
    codes, _ = deliver(c, "v6")
    t.eq(codes[-2:], [250, 221], "IPv6: message delivered")
    msg = message(rec, "v6")
    t.like(field(msg, "Received") or "", r"\(v6\.example\.test \[IPv6:2001:db8::10\]\)",
           "IPv6: confirmed name in Received")
    c = Proxied(p1, v2("2001:db8::14"))
    codes, _ = deliver(c, "v4only")
    msg = message(rec, "v4only")
    t.eq(field(msg, "X-Moat-Test-Client"), "status=mismatch name=- ptr=v4only.example.test",
         "IPv6: a PTR name with only an A record does not confirm (AAAA asked)")
    # IPv4-mapped IPv6 is IPv4.
    c = Proxied(p1, v2("::ffff:192.0.2.10"))
    codes, _ = deliver(c, "mapped")
    msg = message(rec, "mapped")
    t.like(field(msg, "Received") or "", r"\(good\.example\.test \[192\.0\.2\.10\]\)",
           "IPv4-mapped IPv6: looked up and confirmed as IPv4")

    # ---- DNS that never answers: tempfail, the session goes on
    c = Proxied(p2, v1("198.51.100.7"))
    t.ok(c.greeting[0] == 220 and c.greet_s < 0.5,
         "timeout, no CONNECT filter: greeting at once (%.2fs)" % c.greet_s)
    codes, ehlo_s = deliver(c, "mute1")
    t.eq(codes, [250, 250, 250, 354, 250, 221], "timeout: message still delivered")
    t.ok(ehlo_s < TIMEOUT + 1.0,
         "timeout: EHLO waits for the name at most dns_timeout (%.2fs)" % ehlo_s)
    msg = message(rec, "mute1")
    t.like(field(msg, "Received") or "", r"\(unknown \[198\.51\.100\.7\]\)",
           "timeout: Received says unknown")
    t.like(m2.log(), r"event=rdns sid=\S+ client=198\.51\.100\.7 status=tempfail name=unknown "
           r"ptr=- names=0 why=timeout ms=\d+", "timeout: logged status=tempfail why=timeout")
    t.like(tx_line(m2, "198.51.100.7"), r" client_name=unknown rdns=tempfail ",
           "timeout: rdns=tempfail on the transaction line")
    t.like(xclient(rec, "mute1") or "", r" NAME=\[TEMPUNAVAIL\] ",
           "timeout: XCLIENT NAME=[TEMPUNAVAIL] (the upstream answers 4xx, not 5xx)")

    c = Proxied(p1, v1("198.51.100.9"))
    t.ok(c.greeting[0] == 220 and TIMEOUT * 0.8 <= c.greet_s < TIMEOUT + 1.0,
         "timeout, CONNECT filter: the greeting waits for the name, at most "
         "dns_timeout (%.2fs)" % c.greet_s)
    codes, ehlo_s = deliver(c, "mute2")
    t.eq(codes[-2:], [250, 221], "timeout, CONNECT filter: message delivered")
    t.ok(ehlo_s < 0.5, "... and EHLO is not held again (%.2fs)" % ehlo_s)
    t.eq(field(message(rec, "mute2"), "X-Moat-Test-Client"), "status=tempfail name=- ptr=-",
         "timeout: the filter sees status tempfail")

    # Confirmed, no CONNECT filter: greeting at once, name in Received.
    c = Proxied(p2, v1("192.0.2.10", 40001))
    t.ok(c.greeting[0] == 220 and c.greet_s < 0.5,
         "no CONNECT filter: greeting at once (%.2fs)" % c.greet_s)
    deliver(c, "good2")
    t.like(field(message(rec, "good2"), "Received") or "", r"\(good\.example\.test \[192\.0\.2\.10\]\)",
           "no CONNECT filter: the name still reaches the Received field")

    # ---- loopback: no query, name localhost
    before = queries(dm, "1.0.0.127.in-addr.arpa")
    c = Client(p1plain)
    codes, _ = deliver(c, "loop")
    t.eq(field(message(rec, "loop"), "X-Moat-Test-Client"), "status=verified name=localhost ptr=-",
         "loopback: name localhost, not looked up")
    t.like(field(message(rec, "loop"), "Received") or "", r"\(localhost \[127\.0\.0\.1\]\)",
           "loopback: Received says localhost")
    t.eq(queries(dm, "1.0.0.127.in-addr.arpa") - before, 0, "loopback: no query sent")

    # ---- clients that leave during the lookup
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", p1), 5)
        s.sendall(v1("198.51.100.%d" % (20 + i)))
        if i % 2:
            s.sendall(b"EHLO gone.example.test\r\n")
        time.sleep(0.05)
        s.close()
    c = Proxied(p2, v1("198.51.100.30"))
    c.send("EHLO gone.example.test\r\n")  # parked waiting for the name
    time.sleep(0.1)
    c.s.close()
    time.sleep(TIMEOUT + 0.5)
    t.ok(m1.alive() and m2.alive(), "clients gone mid-lookup: moatd still running")
    c = Proxied(p1, v1("192.0.2.10", 40002))
    codes, _ = deliver(c, "after")
    t.eq(codes, [250, 250, 250, 354, 250, 221], "... and serves the next client")
    t.eq(len(re.findall(r"event=client-gone sid=\S+ client=198\.51\.100\.(?:2\d|30) ",
                        m1.log() + m2.log())), 6, "... the six departures logged")

    t.eq(m1.stop(), 0, "moatd (with filter) exits 0")
    t.eq(m2.stop(), 0, "moatd (without filter) exits 0")

    # ---- reverse_dns = no: no query, name unknown
    p3 = free_port()
    m3 = Moatd(rec.port, listen=p3, conf=base.replace("reverse_dns = yes", "reverse_dns = no") +
               'listen "127.0.0.1:%d" {\n proxy_protocol = "any"\n'
               ' proxy_trusted = {"127.0.0.0/8"}\n}\n'
               'filter "test" { echo_client_name = "yes" }\n' % p3)
    c = Proxied(p3, v1("192.0.2.20"))
    codes, _ = deliver(c, "off")
    t.eq(codes[-2:], [250, 221], "reverse_dns = no: message delivered")
    msg = message(rec, "off")
    t.like(field(msg, "Received") or "", r"\(unknown \[192\.0\.2\.20\]\)",
           "reverse_dns = no: Received says unknown")
    t.eq(field(msg, "X-Moat-Test-Client"), "status=unchecked name=- ptr=-",
         "reverse_dns = no: the filter sees status unchecked")
    t.like(tx_line(m3, "192.0.2.20"), r" client_name=unknown rdns=unchecked ",
           "reverse_dns = no: rdns=unchecked on the transaction line")
    t.eq(queries(dm, "20.2.0.192.in-addr.arpa"), 0, "reverse_dns = no: no query sent")
    t.ok("event=rdns" not in m3.log(), "reverse_dns = no: no event=rdns line")
    t.eq(m3.stop(), 0, "moatd (reverse_dns = no) exits 0")

    # The queries of the looked-up clients did reach dnsmasq.
    t.ok(queries(dm, "10.2.0.192.in-addr.arpa") >= 1 and
         queries(dm, "good.example.test") >= 1,
         "the looked-up clients' PTR and A questions reached dnsmasq")
    rec.stop()
    dm.stop()
    t.done()


main()
