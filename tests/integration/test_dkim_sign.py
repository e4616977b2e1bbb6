"""DKIM signing of authenticated mail (RFC 6376, RFC 8463) through moatd,
checked by an independent verifier: dkimpy (Debian's python3-dkim) run by
the system Python, the public keys served by a real dnsmasq on a loopback
port and fetched by dkimpy's dnsfunc through dnspython. Keys are made with
openssl: RSA 2048 (PKCS#1 PEM) and Ed25519 (PKCS#8 PEM). The upstream is
a recording SMTP server that offers AUTH, so the bytes verified are
exactly the bytes the upstream received (dot-unstuffed, as an MTA reads
them).

Checked: rsa-sha256 passes, ed25519-sha256 passes, both at once (two
sections for one domain) pass; a From in a subdomain is signed with the
configured parent domain; relaxed/relaxed, t=, no l=, From oversigned
(h= names From once more than the message has it); the signature sits
below moat's Received field; header edits by the policy (a forged
X-Spam-Status removed, moat's spam headers added, the Subject tagged)
are covered; dot-stuffed lines ("..", ".") verify, in DATA and in BDAT
(CHUNKING); a message spooled to a file (spool_memory_threshold = 0)
verifies; unauthenticated mail, a From of an unconfigured domain, two
From fields and no From are not signed; one log line per signature and
the transaction's dkim_signed=; moatd -t refuses a missing key file, a
512-bit RSA key and a file that is no key, with file:line, and warns
about a key readable by others; a client that leaves while its message
is being signed does not hurt moatd; with the worker pool full, a message
to be signed gets 451 4.3.0 and is not forwarded unsigned.
(test_auth.py verifies signatures with opendkim-testmsg after a real
Postfix delivered the message.)
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Client, Recorder, Dnsmasq,  # noqa: E402
                      SYSPY, dkimpy_usable, dns_txt as txt,
                      dnsmasq_usable, moatd_check, tmpdir, free_port)

t = TAP()
WORK = tmpdir()

VERIFY = r"""
import json, sys, dkim, dns.resolver
port = int(sys.argv[1])
msg = sys.stdin.buffer.read()
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = port
r.lifetime = 5

def dnsfunc(name, timeout=5):
    try:
        a = r.resolve(name.decode().rstrip("."), "TXT")
    except Exception:
        return None
    return b"".join(b"".join(x.strings) for x in a)

d = dkim.DKIM(msg)
n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
out = []
for i in range(n):
    try:
        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
    except Exception as e:
        sys.stderr.write("%s\n" % e)
        ok = False
    out.append(bool(ok))
print(json.dumps(out))
"""


def verify(raw, dns_port):
    """dkimpy's verdict for each DKIM-Signature of raw (bytes)."""
    p = subprocess.run([SYSPY, "-c", VERIFY, str(dns_port)], input=raw,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        return ["error: " + p.stderr.decode(errors="replace")[-300:]]
    res = json.loads(p.stdout)
    if not all(res):
        t.diag("dkimpy: " + p.stderr.decode(errors="replace")[-500:])
        t.diag("message: %r" % raw[:1500])
    return res


def run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          check=True).stdout


def rsa_key(name, bits=2048):
    key = os.path.join(WORK, name + ".pem")
    run(["openssl", "genrsa", "-traditional", "-out", key, str(bits)])
    os.chmod(key, 0o600)
    der = run(["openssl", "rsa", "-in", key, "-pubout", "-outform", "DER"])
    return key, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def ed_key(name):
    key = os.path.join(WORK, name + ".pem")
    run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key])
    os.chmod(key, 0o600)
    der = run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"])
    # RFC 8463 §4: the raw 32-octet public key, not the SPKI structure
    return key, "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()


def unstuff(wire):
    """What an MTA stores from DATA content: the final dot gone, one
    leading dot of each line removed."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    lines = wire[:-3].split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def msg(frm, tag, extra="", body=None):
    return ("From: %s\r\nTo: bob@dest.test\r\nSubject: sign %s\r\n"
            "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@moat.test>\r\n"
            "%s\r\n%s" % (frm, tag, tag, extra,
                          body if body is not None else "Hello Bob,\r\nmessage %s.\r\n" % tag))


def session(port, auth=True):
    c = Client(port)
    r = c.cmd("EHLO client.example.test")
    if auth:
        a = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
        if a[0] != 235:
            raise RuntimeError("AUTH failed: %r" % (a,))
    return c, r


def send(port, data, auth=True, sender="alice@example.test"):
    """DATA; the client dot-stuffs as RFC 5321 §4.5.2 says."""
    c, _ = session(port, auth)
    c.cmd("MAIL FROM:<%s>" % sender)
    c.cmd("RCPT TO:<bob@dest.test>")
    r = c.cmd("DATA")
    if r[0] == 354:
        stuffed = "\r\n".join("." + l if l.startswith(".") else l
                              for l in data.split("\r\n"))
        c.send(stuffed + ".\r\n")
        r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r


def send_bdat(port, data, chunks=3):
    """BDAT (RFC 3030): no dot-stuffing on the client's side."""
    c, ehlo = session(port)
    if "CHUNKING" not in "\n".join(str(x) for x in ehlo):
        c.close()
        return None
    c.cmd("MAIL FROM:<alice@example.test>")
    c.cmd("RCPT TO:<bob@dest.test>")
    raw = data.encode()
    step = len(raw) // chunks + 1
    parts = [raw[i:i + step] for i in range(0, len(raw), step)]
    r = None
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        c.send(("BDAT %d%s\r\n" % (len(p), " LAST" if last else "")).encode() + p)
        r = c.reply()
        if r[0] != 250:
            break
    c.cmd("QUIT")
    c.close()
    return r


def sig_fields(raw):
    """The DKIM-Signature fields of raw, unfolded, as text."""
    text = raw.decode(errors="replace")
    head = text.split("\r\n\r\n", 1)[0]
    return [re.sub(r"\r\n[ \t]+", " ", m.group(0))
            for m in re.finditer(r"^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.M | re.I)]


def tags(field):
    v = field.split(":", 1)[1]
    out = {}
    for part in v.split(";"):
        if "=" in part:
            k, val = part.split("=", 1)
            out[k.strip()] = re.sub(r"\s+", "", val)
    return out


def tx_lines(m):
    return [l for l in m.log().splitlines() if "event=tx " in l]


def main_section(keys, dns):
    rec = Recorder(ehlo_caps=["PIPELINING", "SIZE 10240000", "8BITMIME",
                              "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"],
                   sasl=["235 2.7.0 Authentication successful"])
    port = free_port()
    signing = (
        'dkim_sign "rsa.test" {\n selector = "r2026"\n key = "%s"\n}\n'
        'dkim_sign "ed.test" {\n selector = "e2026"\n key = "%s"\n}\n'
        'dkim_sign "example.test" {\n selector = "r2026"\n key = "%s"\n}\n'
        'dkim_sign "example.test ed25519" {\n domain = "example.test"\n'
        ' selector = "e2026"\n key = "%s"\n}\n'
        % (keys["rsa"], keys["ed"], keys["rsa"], keys["ed"]))
    m = Moatd(rec.port, conf='listen "127.0.0.1:%d" { tls = "off" auth = "always" }\n'
              'received_header = "always"\n%s' % (port, signing), listen=port)
    n = [0]

    def deliver(data, name, auth=True, bdat=False):
        r = send_bdat(m.port, data) if bdat else send(m.port, data, auth)
        if r is None:
            return None
        n[0] += 1
        t.eq(r[0], 250, "%s: accepted" % name)
        msgs = rec.wait_messages(n[0])
        return unstuff(msgs[n[0] - 1]) if len(msgs) >= n[0] else b""

    try:
        out = deliver(msg("Alice <alice@rsa.test>", "1"), "rsa-sha256")
        sigs = sig_fields(out)
        t.eq(len(sigs), 1, "rsa-sha256: one DKIM-Signature")
        t.eq(verify(out, dns.port), [True], "rsa-sha256: dkimpy verifies it")
        tg = tags(sigs[0]) if sigs else {}
        t.eq((tg.get("a"), tg.get("d"), tg.get("s"), tg.get("c")),
             ("rsa-sha256", "rsa.test", "r2026", "relaxed/relaxed"),
             "rsa-sha256: a=, d=, s=, c=relaxed/relaxed")
        t.ok("l" not in tg, "no l= (the whole body is signed)")
        t.ok(re.match(r"^\d+$", tg.get("t", "")) and abs(int(tg["t"]) - time.time()) < 600,
             "t= is now")
        h = [x.lower() for x in tg.get("h", "").split(":")]
        t.eq(h.count("from"), 2, "From oversigned: twice in h= for one From field")
        t.ok(all(x in h for x in ("subject", "date", "to", "message-id")),
             "h= covers Subject, Date, To, Message-ID", tg.get("h"))
        text = out.decode()
        t.ok(text.startswith("Received: ") and
             text.index("DKIM-Signature:") < text.index("From: "),
             "moat's Received on top, then the signature, then the message's fields")
        t.ok(m.wait_log(r"event=dkim-signed sid=\w+ domain=rsa\.test selector=r2026 "
                        r"algorithm=rsa-sha256"), "log: one line per signature")
        t.like(tx_lines(m)[-1] if tx_lines(m) else "", r"dkim_signed=rsa\.test/r2026",
               "log: the transaction line says dkim_signed=")

        out = deliver(msg("alice@ed.test", "2"), "ed25519-sha256")
        sigs = sig_fields(out)
        t.eq([tags(s).get("a") for s in sigs], ["ed25519-sha256"],
             "ed25519-sha256: one signature, a=ed25519-sha256 (RFC 8463)")
        t.eq(verify(out, dns.port), [True], "ed25519-sha256: dkimpy verifies it")

        out = deliver(msg('"Alice A." <alice@example.test>', "3"), "two sections, one domain")
        sigs = sig_fields(out)
        t.eq(sorted(tags(s).get("a") for s in sigs), ["ed25519-sha256", "rsa-sha256"],
             "both: an rsa-sha256 and an ed25519-sha256 signature")
        t.eq(verify(out, dns.port), [True, True], "both: dkimpy verifies both")

        out = deliver(msg("Alice <alice@Mail.RSA.test>", "4"), "subdomain")
        sigs = sig_fields(out)
        t.eq([tags(s).get("d") for s in sigs], ["rsa.test"],
             "From in a subdomain (any case): signed with d= the configured domain")
        t.eq(verify(out, dns.port), [True], "subdomain: verifies")

        body = ("..two dots\r\n.one dot\r\n.\r\n..\r\nmiddle\r\n. space\r\n"
                "trailing spaces   \r\n\r\n\r\n")
        out = deliver(msg("alice@rsa.test", "5", body=body), "dot-stuffed lines")
        t.ok(b"\r\n..two dots\r\n.one dot\r\n.\r\n..\r\n" in out,
             "dot lines arrive unchanged (after un-stuffing)")
        t.eq(verify(out, dns.port), [True], "dot-stuffed lines: verifies")

        out = deliver(msg("alice@example.test", "6", body=body), "BDAT", bdat=True)
        if out is None:
            t.skip("BDAT", "CHUNKING not offered")
        else:
            t.eq(len(sig_fields(out)), 2, "BDAT: two signatures")
            t.eq(verify(out, dns.port), [True, True], "BDAT with dot lines: verifies")

        out = deliver(msg("alice@rsa.test", "8"), "unauthenticated", auth=False)
        t.eq(sig_fields(out), [], "unauthenticated: not signed")
        out = deliver(msg("alice@other.test", "9"), "unconfigured domain")
        t.eq(sig_fields(out), [], "From of an unconfigured domain: not signed")
        out = deliver(msg("alice@notrsa.test", "9b"), "suffix that is not a subdomain")
        t.eq(sig_fields(out), [], "notrsa.test is not under rsa.test: not signed")
        out = deliver(msg("alice@rsa.test", "10", extra="From: mallory@rsa.test\r\n"),
                      "two From fields")
        t.eq(sig_fields(out), [], "two From fields: not signed")
        t.ok(m.wait_log(r'event=dkim-sign-skipped .*reason="several From fields"'),
             "two From fields: a log line says why")
        out = deliver(msg("alice@rsa.test, bob@rsa.test", "11"), "two mailboxes")
        t.eq(sig_fields(out), [], "two mailboxes in From: not signed")
        out = deliver("To: bob@dest.test\r\nSubject: no from\r\n\r\nx\r\n", "no From")
        t.eq(sig_fields(out), [], "no From: not signed")
        t.ok(m.wait_log(r'event=dkim-sign-skipped .*reason="no From field"'),
             "no From: a log line says why")

        # A client that leaves right after its final dot: a large message
        # keeps the worker busy long enough for the session to be gone.
        big = "x" * 998 + "\r\n"
        data = msg("alice@example.test", "12", body=big * 8000)
        before = len(rec.messages)
        c, _ = session(m.port)
        c.cmd("MAIL FROM:<alice@example.test>")
        c.cmd("RCPT TO:<bob@dest.test>")
        c.cmd("DATA")
        c.send(data + ".\r\n")
        c.s.shutdown(socket.SHUT_RDWR)
        c.close()
        left = m.wait_log(r"event=dkim-sign-abandoned|event=tx .*verdict=tempfail", 15)
        time.sleep(0.5)
        t.diag("client left: %s" % (left.group(0) if left else "no log line"))
        t.ok(m.alive(), "a client leaving during signing: moatd alive")
        t.ok(left is not None or len(rec.messages) == before,
             "... and the message was not forwarded for a client that is gone")
        out = deliver(msg("alice@rsa.test", "13"), "after a client left")
        t.eq(verify(out, dns.port), [True], "the next message is signed as usual")
    finally:
        rc = m.stop()
        t.eq(rc, 0, "moatd exits cleanly (no sanitizer report)")
        rec.stop()


def edits_section(keys, dns):
    """Header edits by the policy, and a file spool."""
    rec = Recorder(ehlo_caps=["PIPELINING", "SIZE 10240000", "8BITMIME",
                              "ENHANCEDSTATUSCODES", "AUTH PLAIN"],
                   sasl=["235 2.7.0 ok"])
    port = free_port()
    conf = ('listen "127.0.0.1:%d" { tls = "off" auth = "always" }\n'
            'spool_memory_threshold = 0\nspam_headers_always = true\n'
            'group "outbound" {\n authenticated = true\n add_header_score = -1000\n'
            ' subject_tag = "[moat]"\n}\n'
            'dkim_sign "rsa.test" {\n selector = "r2026"\n key = "%s"\n'
            ' headers = {"From", "Subject", "To", "X-Spam-Status"}\n}\n'
            % (port, keys["rsa"]))
    m = Moatd(rec.port, conf=conf, listen=port)
    try:
        data = msg("alice@rsa.test", "20", extra="X-Spam-Status: Yes, forged\r\n",
                   body="..dot\r\n" + "line of a message in a file spool\r\n" * 3000)
        r = send(m.port, data)
        t.eq(r[0], 250, "edits: accepted")
        msgs = rec.wait_messages(1)
        out = unstuff(msgs[0]) if msgs else b""
        text = out.decode(errors="replace")
        t.ok("forged" not in text and re.search(r"^X-Spam-Status: ", text, re.M),
             "the forged X-Spam-Status was replaced by moat's", text[:600])
        t.like(text, r"(?m)^Subject: \[moat\] sign 20", "the Subject was tagged")
        sigs = sig_fields(out)
        h = [x.lower() for x in tags(sigs[0]).get("h", "").split(":")] if sigs else []
        t.ok("x-spam-status" in h and "subject" in h,
             "the signature covers moat's X-Spam-Status and the tagged Subject", h)
        t.eq(verify(out, dns.port), [True],
             "header edits + file spool: dkimpy verifies the signature")
    finally:
        t.eq(m.stop(), 0, "moatd exits cleanly")
        rec.stop()


def pool_full_section(keys, dns):
    """The worker pool is full when a message is to be signed: 451, never
    forwarded unsigned. One worker, the smallest queue (16); seventeen
    messages to the "busy" group, whose test filter holds a worker for
    a while at EOM, fill it."""
    rec = Recorder(ehlo_caps=["PIPELINING", "SIZE 10240000", "8BITMIME",
                              "ENHANCEDSTATUSCODES", "AUTH PLAIN"],
                   sasl=["235 2.7.0 ok"])
    port = free_port()
    conf = ('listen "127.0.0.1:%d" { tls = "off" auth = "always" }\n'
            'worker_threads = 1\nworker_queue = 16\n'
            'filter "test" { delay_stage = "eom" work_ms = 20000 timeout = "60s" }\n'
            'group "busy" { recipients = {"busy.test"} }\n'
            'group "default" { filters = {} }\n'
            'dkim_sign "rsa.test" {\n selector = "r2026"\n key = "%s"\n}\n'
            % (port, keys["rsa"]))
    m = Moatd(rec.port, conf=conf, listen=port)
    busy = []
    try:
        for i in range(17):
            c, _ = session(m.port, auth=False)
            c.cmd("MAIL FROM:<x@other.test>")
            c.cmd("RCPT TO:<y@busy.test>")
            if c.cmd("DATA")[0] == 354:
                c.send("Subject: busy %d\r\n\r\nx\r\n.\r\n" % i)
            busy.append(c)
        time.sleep(1.0)
        before = len(rec.messages)
        r = send(m.port, msg("alice@rsa.test", "full"))
        t.like("%d %s" % r, r"^451 4\.3\.0 ", "signing with the worker pool full: 451 (the client retries)")
        t.ok(m.wait_log(r'event=dkim-sign-failed sid=\w+ error="worker queue full"', 5),
             "log: event=dkim-sign-failed error=\"worker queue full\"")
        time.sleep(0.3)
        t.eq(len(rec.messages), before, "nothing was forwarded unsigned")
        for c in busy:
            c.close()
        busy = []
    finally:
        for c in busy:
            c.close()
        t.eq(m.stop(), 0, "pool full: moatd exits cleanly")
        rec.stop()


def config_section(keys):
    small, _ = rsa_key("small", 512)
    notkey = os.path.join(WORK, "notkey.pem")
    with open(notkey, "w") as f:
        f.write("hello\n")
    os.chmod(notkey, 0o600)
    for key, pat, name in (
            (os.path.join(WORK, "missing.pem"), r"No such file or directory", "a missing key file"),
            (small, r"RSA key of 512 bits, at least 1024", "a 512-bit RSA key"),
            (notkey, r"not an unencrypted PEM private key", "a file that is no key")):
        rc, out = moatd_check('dkim_sign "rsa.test" {\n selector = "s"\n key = "%s"\n}\n' % key)
        t.ok(rc != 0 and re.search(r"moat\.conf:\d+: dkim_sign \"rsa\.test\": key \"%s\": %s"
                                   % (re.escape(key), pat), out),
             "moatd -t refuses %s, with file:line" % name, out)
    rc, out = moatd_check('dkim_sign "rsa.test" {\n key = "%s"\n}\n' % keys["rsa"])
    t.ok(rc != 0 and "selector is required" in out, "moatd -t: selector is required", out)
    rc, out = moatd_check('dkim_sign "rsa.test" {\n selector = "a"\n key = "%s"\n}\n'
                          'dkim_sign "rsa2" {\n domain = "RSA.test"\n selector = "a"\n'
                          ' key = "%s"\n}\n' % (keys["rsa"], keys["ed"]))
    t.ok(rc != 0 and "configured twice" in out, "moatd -t: one selector twice", out)
    many = "".join('dkim_sign "d%d" {\n domain = "rsa.test"\n selector = "s%d"\n key = "%s"\n}\n'
                   % (i, i, keys["rsa"]) for i in range(5))
    rc, out = moatd_check(many)
    t.ok(rc != 0 and "at most 4 sections" in out, "moatd -t: at most 4 signatures per domain",
         out)
    shared = os.path.join(WORK, "shared.pem")
    with open(keys["ed"]) as f, open(shared, "w") as g:
        g.write(f.read())
    os.chmod(shared, 0o644)
    rc, out = moatd_check('dkim_sign "ed.test" {\n selector = "e"\n key = "%s"\n}\n' % shared)
    t.ok(rc == 0 and re.search(r"moat\.conf:\d+: warning: .*can be read by group or others",
                               out), "a key readable by others: a warning, not an error", out)


def main():
    if not dnsmasq_usable() or not dkimpy_usable("dkim, dns.resolver"):
        t.skip("dkim signing", "needs dnsmasq-base and python3-dkim")
        t.done()
    rsa, rsa_txt = rsa_key("rsa")
    ed, ed_txt = ed_key("ed")
    keys = {"rsa": rsa, "ed": ed}
    lines = ["local=/test/"]
    for dom in ("rsa.test", "example.test"):
        lines.append(txt("r2026._domainkey." + dom, rsa_txt))
    for dom in ("ed.test", "example.test"):
        lines.append(txt("e2026._domainkey." + dom, ed_txt))
    dns = Dnsmasq(lines)
    try:
        t.section(lambda: main_section(keys, dns))
        t.section(lambda: edits_section(keys, dns))
        t.section(lambda: pool_full_section(keys, dns))
        t.section(lambda: config_section(keys))
    finally:
        dns.stop()
    t.done()


main()
