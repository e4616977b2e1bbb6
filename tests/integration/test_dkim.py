"""The dkim filter through moatd: DKIM verification (RFC 6376) with the
keys served by a real dnsmasq on a loopback port and fetched through
moat's resolver. Messages are signed by the test with dkimpy (Debian's
python3-dkim, an implementation independent of libopendkim), keys made
with its dknewkey and openssl.

Checked: rsa-sha256 and ed25519-sha256 (RFC 8463) pass; a changed body
and a changed signed header fail; two signatures on one message give two
results; a missing key is permerror, a revoked key permerror, a 512-bit
RSA key fails (RFC 8301); a key lookup that times out is temperror; l=
that leaves part of the body unsigned is reported; unsigned mail is
dkim=none; max_signatures bounds the work; a client leaving while keys
are fetched; Authentication-Results and evidence of each; the RFC 8463
example message (both its signatures); option errors. All of it twice:
with the per-thread cache of parsed keys (key_cache, the default; most
messages here share one RSA key, so they verify with the cached one,
the tampered ones too) and without it (key_cache = 0): the same results.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Sink, Client, Dnsmasq, SilentDns,  # noqa: E402
                      SYSPY, dkim_rsa_key, dkimpy_usable, dns_txt as txt,
                      dnsmasq_usable, moatd_check, tmpdir)

t = TAP()
WORK = tmpdir()

SIGN = r"""
import sys, dkim
sel, dom, key, alg, length = sys.argv[1:6]
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, sel.encode(), dom.encode(), open(key, "rb").read(),
                signature_algorithm=alg.encode(), length=length == "1",
                include_headers=[b"from", b"to", b"subject", b"date"])
sys.stdout.buffer.write(sig + msg)
"""


def sign(msg, sel, key, alg="rsa-sha256", dom="example.test", length=False):
    p = subprocess.run([SYSPY, "-c", SIGN, sel, dom, key, alg, "1" if length else "0"],
                       input=msg.encode(), stdout=subprocess.PIPE, check=True)
    return p.stdout.decode().replace("\r\n", "\n").replace("\n", "\r\n")


def rsa_key(name, bits):
    return dkim_rsa_key(os.path.join(WORK, name + ".key"), bits)


def ed_key(name):
    subprocess.run(["dknewkey", "--ktype", "ed25519", name], cwd=WORK, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(WORK, name + ".dns")) as f:
        return os.path.join(WORK, name + ".key"), f.read().strip()


MSG = ("From: Alice <alice@example.test>\r\nTo: bob@dest.test\r\n"
       "Subject: dkim %s\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
       "Message-ID: <%s@example.test>\r\n\r\nHello Bob,\r\nthis is message %s.\r\n")


def msg(tag):
    return MSG % (tag, tag, tag)


def send(port, data, sender="alice@example.test"):
    c = Client(port)
    c.cmd("EHLO client.example.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    c.cmd("RCPT TO:<bob@dest.test>")
    r = c.cmd("DATA")
    if r[0] == 354:
        body = data.replace("\r\n.", "\r\n..")
        c.send(body + ".\r\n")
        r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r


def ar_of(m):
    m2 = re.search(r"^Authentication-Results: (.*(?:\r?\n[ \t].*)*)", m, re.M)
    return re.sub(r"\r?\n[ \t]+", " ", m2.group(1)) if m2 else ""


def tx_line(m, tag):
    lines = [l for l in m.log().splitlines() if "event=tx" in l]
    return lines[-1] if lines else ""


def run(dns_lines, keys, key_cache=None):
    silent = SilentDns()
    dns = Dnsmasq(dns_lines + ["server=/slow.example.test/127.0.0.1#%d" % silent.port])
    sink = Sink()
    m = Moatd(sink.port, 'dns_forwarders = { "%s" }\ndns_timeout = 1s\n'
              'filter "dkim" { max_signatures = "5" %s }\n'
              % (dns.forwarder(), "" if key_cache is None else 'key_cache = "%s"' % key_cache))
    n = [0]
    cache = "key_cache %s: " % ("default" if key_cache is None else key_cache)

    def deliver(data, name):
        r = send(m.port, data)
        n[0] += 1
        t.eq(r[0], 250, "%s%s: delivered" % (cache, name))
        msgs = sink.messages(count=n[0])
        return msgs[-1] if len(msgs) >= n[0] else ""

    try:
        rsa, ed, small = keys["rsa"], keys["ed"], keys["small"]
        out = deliver(sign(msg("1"), "rsa", rsa), "rsa-sha256")
        t.like(ar_of(out), r"dkim=pass header\.d=example\.test header\.s=rsa header\.b=\S{8}",
               "rsa-sha256: dkim=pass in Authentication-Results")
        t.like(tx_line(m, "1"), r"DKIM_PASS\(dkim:-0\.10\)", "rsa-sha256: evidence DKIM_PASS")
        t.ok("DKIM-Signature:" in out and "Hello Bob" in out, "rsa-sha256: message unchanged")

        out = deliver(sign(msg("2"), "ed", ed, alg="ed25519-sha256"), "ed25519-sha256")
        t.like(ar_of(out), r"dkim=pass header\.d=example\.test header\.s=ed ",
               "ed25519-sha256 (RFC 8463): pass")

        both = sign(sign(msg("3"), "rsa", rsa), "ed", ed, alg="ed25519-sha256")
        ar = ar_of(deliver(both, "two signatures"))
        t.ok("header.s=rsa" in ar and "header.s=ed" in ar and ar.count("dkim=pass") == 2,
             "two signatures: two dkim=pass clauses", ar)

        tampered = sign(msg("4"), "rsa", rsa).replace("this is message 4", "this is message 5")
        ar = ar_of(deliver(tampered, "changed body"))
        t.like(ar, r"dkim=fail \(body hash mismatch\) header\.d=example\.test",
               "changed body: dkim=fail (body hash mismatch)")
        t.like(tx_line(m, "4"), r"DKIM_FAIL\(dkim:1\.00\)", "changed body: evidence DKIM_FAIL")

        tampered = sign(msg("6"), "rsa", rsa).replace("Subject: dkim 6", "Subject: dkim 7")
        t.like(ar_of(deliver(tampered, "changed Subject")), r"dkim=fail \(",
               "changed signed header: dkim=fail")

        ar = ar_of(deliver(sign(msg("8"), "nokey", rsa), "missing key"))
        t.like(ar, r"dkim=permerror \(.*\) header\.d=example\.test header\.s=nokey",
               "missing key (NXDOMAIN): permerror")
        ar = ar_of(deliver(sign(msg("9"), "revoked", rsa), "revoked key"))
        t.like(ar, r"dkim=permerror .*header\.s=revoked", "revoked key (p=): permerror")
        ar = ar_of(deliver(sign(msg("10"), "small", small), "512-bit key"))
        t.like(ar, r"dkim=fail \(.*\) .*header\.s=small", "RSA key under 1024 bits: fail (RFC 8301)")

        t0 = time.time()
        ar = ar_of(deliver(sign(msg("11"), "rsa", rsa, dom="slow.example.test"), "key timeout"))
        t.like(ar, r"dkim=temperror .*header\.d=slow\.example\.test",
               "key lookup timing out: temperror")
        t.ok(time.time() - t0 < 8, "... after dns_timeout, not longer")

        partial = sign(msg("12"), "rsa", rsa, length=True) + "Appended by someone else.\r\n"
        deliver(partial, "l= with text after")
        t.like(tx_line(m, "12"), r"DKIM_PASS\(.*DKIM_PARTIAL_BODY\(dkim:1\.00\)",
               "l= leaving part of the body unsigned: DKIM_PARTIAL_BODY beside the pass")

        ar = ar_of(deliver(msg("13"), "unsigned"))
        t.like(ar, r"dkim=none", "unsigned: dkim=none")

        many = msg("14")
        for i in range(7):
            many = sign(many, "rsa", rsa)
        ar = ar_of(deliver(many, "seven signatures"))
        t.eq(ar.count("dkim=pass"), 5, "seven signatures, max_signatures = 5: five verified")

        # a client that leaves while its keys are fetched
        c = Client(m.port)
        c.cmd("EHLO client.example.test")
        c.cmd("MAIL FROM:<a@example.test>")
        c.cmd("RCPT TO:<bob@dest.test>")
        c.cmd("DATA")
        c.send(sign(msg("15"), "rsa", rsa, dom="slow.example.test") + ".\r\n")
        time.sleep(0.2)
        c.close()
        time.sleep(1.5)
        deliver(sign(msg("16"), "rsa", rsa), "after a client left mid-lookup")
        t.ok(m.alive(), "moatd alive")
        t.ok("dkim-key-cache" not in m.log(),
             "%sno event=dkim-key-cache warning (moatd's d2i_PUBKEY_bio is the one "
             "libopendkim calls)" % cache)
    finally:
        rc = m.stop()
        t.eq(rc, 0, "moatd exits cleanly (no sanitizer report)")
        sink.stop()
        dns.stop()


def config_errors():
    for opt, pat in (('max_signatures = "0"', r"max_signatures: \"0\" is not a number"),
                     ('min_key_bits = "512"', r"min_key_bits: \"512\" is not a number"),
                     ('score_fail = "x"', r"score_fail: \"x\" is not a number"),
                     ('key_cache = "-1"', r"key_cache: \"-1\" is not a number"),
                     ('key_cache = "100001"', r"key_cache: \"100001\" is not a number"),
                     ('size = "1"', r'unknown option "size"')):
        rc, out = moatd_check('filter "dkim" { %s }\n' % opt)
        t.ok(rc != 0 and re.search(pat, out), "moatd -t refuses %s" % opt, out)


# RFC 8463 Appendix A: the RFC 6376 example message signed by
# football.example.com with Ed25519 (brisbane, the RFC 8032 7.1 test key)
# and RSA (test). Read where Debian's python3-dkim ships it, never copied.
RFC8463_DIR = "/usr/lib/python3/dist-packages/dkim/tests/data"
RFC8463_ED = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def rfc8463():
    path = os.path.join(RFC8463_DIR, "rfc6376.signed.msg")
    keyfile = os.path.join(RFC8463_DIR, "test.txt")
    if not os.path.exists(path) or not os.path.exists(keyfile):
        t.skip("RFC 8463 example", "python3-dkim's copy of it is missing")
        return
    with open(path, "rb") as f:
        data = f.read().decode().replace("\r\n", "\n").replace("\n", "\r\n")
    with open(keyfile) as f:
        rsa_txt = f.read().strip()
    dns = Dnsmasq(["local=/football.example.com/",
                   txt("brisbane._domainkey.football.example.com", RFC8463_ED),
                   txt("test._domainkey.football.example.com", rsa_txt)])
    sink = Sink()
    m = Moatd(sink.port, 'dns_forwarders = { "%s" }\nfilter "dkim" {}\n' % dns.forwarder())
    try:
        r = send(m.port, data, sender="joe@football.example.com")
        t.eq(r[0], 250, "RFC 8463 example: delivered")
        msgs = sink.messages()
        ar = ar_of(msgs[-1] if msgs else "")
        t.like(ar, r"dkim=pass header\.d=football\.example\.com header\.s=brisbane ",
               "RFC 8463 example: the ed25519-sha256 signature passes")
        t.like(ar, r"dkim=pass header\.d=football\.example\.com header\.s=test ",
               "RFC 8463 example: the rsa-sha256 signature passes")
    finally:
        m.stop()
        sink.stop()
        dns.stop()


def main():
    if not dnsmasq_usable() or not dkimpy_usable():
        t.skip("dkim filter", "needs dnsmasq-base and python3-dkim")
        t.done()
    rsa, rsa_txt = rsa_key("rsa", 2048)
    small, small_txt = rsa_key("small", 512)
    ed, ed_txt = ed_key("ed")
    lines = ["local=/example.test/", txt("rsa._domainkey.example.test", rsa_txt),
             txt("ed._domainkey.example.test", ed_txt),
             txt("small._domainkey.example.test", small_txt),
             txt("revoked._domainkey.example.test", "v=DKIM1; k=rsa; p=")]
    t.section(lambda: run(lines, {"rsa": rsa, "ed": ed, "small": small}))
    t.section(lambda: run(lines, {"rsa": rsa, "ed": ed, "small": small}, key_cache=0))
    t.section(rfc8463)
    t.section(config_errors)
    t.done()


main()
