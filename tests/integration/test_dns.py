"""moat's DNS resolver (proxy/resolver.c, libunbound) through `moat dns`,
against a real dnsmasq serving test records on a loopback port
(dns_forwarders = { "127.0.0.1@PORT" }): TXT (several character-strings
joined, several records, one longer than 512 octets so the answer comes
over TCP), MX with preferences, A, AAAA, PTR for IPv4 and IPv6 (-x),
NXDOMAIN and NODATA, the deadline (dns_timeout) against a server that
never answers, names refused before any query, an answer with more
records than DNS_MAX_RECORDS, JSON output, and the configuration checks of
moatd -t plus moatd's dns-start line.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, MOATD, Moatd, Sink, Dnsmasq, SilentDns,  # noqa: E402
                      dnsmasq_usable, tmpdir, write_file as write)

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))
t = TAP()
WORK = tmpdir()
os.chmod(WORK, 0o755)


DNS_LINES = [
    "local=/example.test/", "local=/2.0.192.in-addr.arpa/",
    "local=/8.b.d.0.1.0.0.2.ip6.arpa/",
    'txt-record=example.test,"v=spf1 ip4:192.0.2.0/24 -all"',
    'txt-record=multi.example.test,"v=spf1 ","include:a.example.test ","-all"',
    'txt-record=two.example.test,"first"',
    'txt-record=two.example.test,"second"',
    'txt-record=long.example.test,"%s","%s","%s"' % ("a" * 255, "b" * 255, "c" * 100),
    "mx-host=example.test,mx1.example.test,10",
    "mx-host=example.test,mx2.example.test,20",
    "host-record=mx1.example.test,192.0.2.25,2001:db8::25",
    "host-record=mx2.example.test,192.0.2.26",
] + ['txt-record=many.example.test,"record %d"' % i for i in range(300)]


def dns(conf, *args):
    p = subprocess.run([MOAT, "-c", conf, "dns"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode("latin-1")


def jdns(conf, *args):
    rc, out = dns(conf, "--json", *args)
    try:
        return rc, json.loads(out)
    except ValueError:
        return rc, {"unparsed": out}


def main():
    if not dnsmasq_usable():
        t.skip("moat dns against dnsmasq", "dnsmasq not installed (dnsmasq-base)")
        t.done()
    dm = Dnsmasq(DNS_LINES)
    port = dm.port
    conf = write(os.path.join(WORK, "moat.conf"),
                 'dns_forwarders = { "127.0.0.1@%d" }\ndns_timeout = 2s\n' % port)

    rc, a = jdns(conf, "example.test", "TXT")
    t.eq((rc, a.get("status"), a.get("records")), (0, "ok", ["v=spf1 ip4:192.0.2.0/24 -all"]),
         "TXT: one record")
    rc, a = jdns(conf, "multi.example.test", "txt")
    t.eq(a.get("records"), ["v=spf1 include:a.example.test -all"],
         "TXT: character-strings joined without spaces (RFC 7208 3.3); type case-insensitive")
    rc, a = jdns(conf, "two.example.test", "TXT")
    t.eq(sorted(a.get("records") or []), ["first", "second"], "TXT: two records")
    rc, a = jdns(conf, "long.example.test", "TXT")
    t.eq(a.get("records"), ["a" * 255 + "b" * 255 + "c" * 100],
         "TXT: 610 octets (a TCP answer), joined")
    rc, a = jdns(conf, "example.test", "MX")
    t.eq(sorted((r["preference"], r["name"]) for r in a.get("records") or []),
         [(10, "mx1.example.test"), (20, "mx2.example.test")], "MX: preferences and names")
    rc, a = jdns(conf, "mx1.example.test", "A")
    t.eq(a.get("records"), ["192.0.2.25"], "A")
    rc, a = jdns(conf, "mx1.example.test", "AAAA")
    t.eq(a.get("records"), ["2001:db8::25"], "AAAA")
    rc, a = jdns(conf, "-x", "192.0.2.25")
    t.eq((a.get("name"), a.get("records")), ("25.2.0.192.in-addr.arpa", ["mx1.example.test"]),
         "-x IPv4: the in-addr.arpa name and its PTR")
    rc, a = jdns(conf, "-x", "2001:db8::25")
    t.eq((a.get("name", "").endswith(".8.b.d.0.1.0.0.2.ip6.arpa"), a.get("records")),
         (True, ["mx1.example.test"]), "-x IPv6: the ip6.arpa name (RFC 3596) and its PTR")
    rc, a = jdns(conf, "nothing.example.test", "TXT")
    t.eq((rc, a.get("status"), a.get("rcode")), (1, "nxdomain", 3), "NXDOMAIN: exit 1")
    rc, a = jdns(conf, "mx2.example.test", "TXT")
    t.eq((rc, a.get("status")), (1, "nodata"), "a name without the type: nodata")
    rc, a = jdns(conf, "many.example.test", "TXT")
    t.eq((rc, a.get("status"), a.get("why")), (1, "error", "too many records"),
         "300 records: refused (DNS_MAX_RECORDS)")
    for bad in ("bad..name", "x" * 64 + ".example.test", "a b.example.test",
                ".".join(["abcdefghi"] * 30)):
        rc, a = jdns(conf, bad, "A")
        t.eq((rc, a.get("status"), a.get("why")), (1, "error", "bad name"),
             "refused before asking: %r" % bad[:30])
    rc, out = dns(conf, "example.test", "TXT")
    t.like(out, r'^example\.test TXT: ok ttl=\d+ rcode=0 secure=no\n  "v=spf1 ip4:192\.0\.2\.0/24 -all"\n$',
           "text output")
    rc, out = dns(conf, "example.test", "SRV")
    t.eq(rc, 2, "unknown type: usage error (2)")

    # A server that takes the question and never answers.
    mute = SilentDns()
    mconf = write(os.path.join(WORK, "mute.conf"),
                  'dns_forwarders = { "127.0.0.1@%d" }\ndns_timeout = 1500ms\n' % mute.port)
    t0 = time.monotonic()
    rc, a = jdns(mconf, "example.test", "TXT")
    el = time.monotonic() - t0
    t.eq((rc, a.get("status")), (1, "timeout"), "silent server: timeout")
    t.ok(el < 4.0, "... after dns_timeout (%.1fs for 1.5s)" % el)

    # Configuration checks.
    bad = write(os.path.join(WORK, "bad.conf"),
                'dns_forwarders = { "127.0.0.1@99999", "resolver.example", "::1@53" }\n'
                'dns_trust_anchor = "%s/missing.key"\n' % WORK)
    p = subprocess.run([MOATD, "-t", "-c", bad], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = p.stdout.decode()
    t.ok(p.returncode != 0, "moatd -t: bad DNS settings refused")
    t.like(out, r'dns_forwarders "127\.0\.0\.1@99999": not an address\[@port\]', "... bad port")
    t.like(out, r'dns_forwarders "resolver\.example": not an address', "... a name")
    t.ok("::1@53" not in out, "... ::1@53 accepted")
    t.like(out, r'dns_trust_anchor ".*missing\.key": No such file', "... missing trust anchor")
    p = subprocess.run([MOATD, "-t", "-c", conf], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    t.eq((p.returncode, p.stdout.decode().strip()), (0, "moatd: configuration %s OK" % conf),
         "moatd -t: good DNS settings, nothing else printed")
    sink = Sink()
    m = Moatd(sink.port, conf='dns_forwarders = { "127.0.0.1@%d" }\ndns_timeout = 2s\n' % port)
    t.like(m.log(), r"event=dns-start mode=forward forwarders=1 dnssec=no timeout_ms=2000",
           "moatd logs how it resolves")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()
    dm.stop()
    t.done()


main()
