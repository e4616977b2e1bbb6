"""moat's DNS resolver (proxy/resolver.c, libunbound) through `moat dns`,
against a real dnsmasq serving test records on a loopback port
(dns_forwarders = { "127.0.0.1@PORT" }): TXT (several character-strings
joined, several records, one longer than 512 octets so the answer comes
over TCP), MX with preferences, A, AAAA, PTR for IPv4 and IPv6 (-x),
NXDOMAIN and NODATA, the deadline (dns_timeout) against a server that
never answers, names refused before any query, an answer with more
records than DNS_MAX_RECORDS, JSON output, and the configuration checks of
moatd -t plus moatd's dns-start line.

The answer cache of the loop threads (dns_thread_cache_size), through
moatd and its spf filter against a dnsmasq authoritative for cache.test
(with an SOA): a second message's two questions (the sender domain's
TXT, and the HELO name's NXDOMAIN, kept for its SOA's TTL per RFC 2308)
are answered from the cache (event=dns-stop counts them), and the
Received-SPF and Authentication-Results fields of the cached and the
uncached message are the same; an NXDOMAIN without SOA is not kept; an
answer past dns_thread_cache_max_ttl is asked again; size 0 keeps
nothing; moatd -t checks the new limits.
"""

import json
import re
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, MOATD, Moatd, Sink, Client, Dnsmasq, SilentDns,  # noqa: E402
                      dnsmasq_usable, moatd_check, tmpdir, write_file as write)

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


CACHE_LINES = [
    "auth-zone=cache.test", "auth-server=ns.cache.test,127.0.0.1", "auth-ttl=600",
    "auth-soa=2026112401,hostmaster.cache.test,1200,120,604800",
    'txt-record=cache.test,"v=spf1 ip4:127.0.0.0/8 -all"',
    "local=/nosoa.test/",  # NXDOMAIN without SOA: not to be cached
]


def spf_mail(port, helo, tag):
    c = Client(port)
    c.cmd("EHLO " + helo)
    c.cmd("MAIL FROM:<a@cache.test>")
    c.cmd("RCPT TO:<b@dest.test>")
    c.cmd("DATA")
    c.send("Subject: cache %s\r\nFrom: <a@cache.test>\r\n\r\nhello\r\n.\r\n" % tag)
    r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r[0]


def field(msg, name):
    m = re.search(r"^%s: (.*(?:\r?\n[ \t].*)*)" % name, msg, re.M)
    return re.sub(r"\r?\n[ \t]+", " ", m.group(1)) if m else None


def cache_run(dm, extra, helo="nohelo.cache.test", pause=0.0):
    """Two messages through a fresh moatd; (codes, [Received-SPF, A-R] of
    each, the cache hits (thread's own + shared), the dns-stop line)."""
    sink = Sink()
    m = Moatd(sink.port, conf='dns_forwarders = { "%s" }\ndns_timeout = 2s\n%s'
              'filter "spf" { check_loopback = yes receiver = "mx.moat.test" }\n'
              % (dm.forwarder(), extra))
    codes = [spf_mail(m.port, helo, "1")]
    time.sleep(pause)
    codes.append(spf_mail(m.port, helo, "2"))
    msgs = sink.messages(count=2)
    m.stop()
    sink.stop()
    fields = [[field(x, "Received-SPF"), field(x, "Authentication-Results")] for x in msgs]
    stop = re.search(r"event=dns-stop .*", m.log())
    line = stop.group(0) if stop else ""
    hits = sum(int(x) for x in re.findall(r"(?:thread|shared)_cache_hits=(\d+)", line))
    return codes, fields, hits, line


def thread_cache():
    dm = Dnsmasq(CACHE_LINES)
    try:
        codes, fields, hits, line = cache_run(dm, "")
        t.eq(codes, [250, 250], "thread cache: two messages delivered")
        t.ok(line != "", "thread cache: event=dns-stop at shutdown", line)
        t.eq(hits, 2, "thread cache: the second message's TXT and its HELO's NXDOMAIN "
             "(with SOA, RFC 2308) answered from the cache")
        t.ok(len(fields) == 2 and fields[0] == fields[1] and None not in fields[0],
             "thread cache: Received-SPF and Authentication-Results the same, cached "
             "or not", fields)
        t.like((fields[0] or ["", ""])[0] or "", r"^pass .*identity=mailfrom",
               "thread cache: SPF pass")
        codes, fields, hits, line = cache_run(dm, "", helo="nohelo.nosoa.test")
        t.eq((codes, hits), ([250, 250], 1),
             "thread cache: an NXDOMAIN without SOA is not kept (only the TXT hits)")
        codes, fields, hits, line = cache_run(dm, "dns_thread_cache_max_ttl = 1s\n", pause=1.3)
        t.eq((codes, hits), ([250, 250], 0),
             "thread cache: past dns_thread_cache_max_ttl (1 s of the TTL 600) asked again")
        codes, fields2, hits, line = cache_run(dm, "dns_thread_cache_size = 0\n")
        t.eq((codes, hits), ([250, 250], 0), "thread cache: size 0 keeps nothing")
        t.eq(fields2, fields, "thread cache: ... and the fields are the same")
    finally:
        dm.stop()
    rc, out = moatd_check("dns_thread_cache_size = 2G\n")
    t.ok(rc != 0 and "dns_thread_cache_size" in out and "out of range" in out,
         "moatd -t refuses dns_thread_cache_size = 2G", out)
    rc, out = moatd_check("dns_thread_cache_max_ttl = 0\n")
    t.ok(rc != 0 and "dns_thread_cache_max_ttl" in out,
         "moatd -t refuses dns_thread_cache_max_ttl = 0", out)
    rc, out = moatd_check("dns_thread_cache_size = 0\ndns_thread_cache_min_ttl = 1m\n")
    t.eq(rc, 0, "moatd -t accepts dns_thread_cache_size = 0, dns_thread_cache_min_ttl = 1m")


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
    t.section(thread_cache)
    t.done()


main()
