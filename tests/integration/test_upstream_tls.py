"""TLS on moatd's leg toward the upstream MTA (upstream_tls = none |
opportunistic | required), end to end against a fake upstream.

The fake upstream is written here: a threaded SMTP server on 127.0.0.1 that
answers STARTTLS as each case needs (220 and a real handshake with Python's
ssl module; 454; 220 with an injected reply in the same write; 220 and then
garbage instead of a ServerHello) and records, per connection, every command
and whether it came in plaintext or under TLS, and every message with the
TLS version it travelled under.

Checked: delivery over TLS with the chain verified against a test CA and the
name (EHLO asked again after the handshake); the response-injection guard
(the bytes after the 220 discarded, the capabilities of the EHLO under TLS
used: SIZE); required with STARTTLS not offered, refused (454), a broken
handshake, the wrong name, the wrong CA, a wrong pin: a 4xx for the client,
nothing delivered, never a plaintext fallback, moatd alive and serving once
the upstream mends; opportunistic falling back to plaintext when STARTTLS is
absent or refused, but not after a broken handshake; certificate pinning
(the pin decides, with or without a CA file); encryption without
authentication; upstream_tls = none never sends STARTTLS;
upstream_tls_min_version against an upstream capped at TLS 1.2; and
moatd -t refusing bad fingerprints and a missing CA file.

Certificates are made with the openssl command in a temporary directory: a
test CA, mx.example.test signed by it, a self-signed evil.example.test.
"""

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Moatd, Client, MOATD, tmpdir, free_port  # noqa: E402

t = TAP()
run_section = t.section
T_START = time.monotonic()
WORK = tmpdir()
MX = "mx.example.test"
EVIL = "evil.example.test"
OTHER = "other.example.test"

# Short timeouts: every failure resolves in a few seconds.
BASE = ("drain_timeout = 1\n"
        "upstream_connect_timeout = 3s\n"
        "upstream_command_timeout = 5s\n"
        "tls_handshake_timeout = 3s\n")


def mono():
    return time.monotonic()


def run(argv, input=None, timeout=30):
    """(exit status, stdout+stderr text) of a command."""
    try:
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("latin-1") + "\n[timed out]"
    return p.returncode, p.stdout.decode("latin-1")


# ======================================================== certificates

def path(name):
    return os.path.join(WORK, name)


def make_certs():
    """Test CA; mx.example.test and other.example.test signed by it;
    self-signed evil.example.test and mx.example.test (ECDSA P-256: quick
    to make)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509"] + ec + [
            "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "3",
            "-subj", "/CN=Moat Upstream Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new"] + ec + [
            "-keyout", path("mx.key"), "-out", path("mx.csr"),
            "-subj", "/CN=" + MX],
        ["openssl", "x509", "-req", "-in", path("mx.csr"), "-CA", path("ca.pem"),
         "-CAkey", path("ca.key"), "-CAcreateserial", "-out", path("mx.pem"),
         "-days", "3", "-extfile", path("mx.ext")],
        ["openssl", "req", "-x509"] + ec + [
            "-keyout", path("evil.key"), "-out", path("evil.pem"), "-days", "3",
            "-subj", "/CN=" + EVIL,
            "-addext", "subjectAltName=DNS:" + EVIL,
            "-addext", "basicConstraints=critical,CA:FALSE"],
    ]
    steps[3:3] = [
        ["openssl", "req", "-new"] + ec + [
            "-keyout", path("other.key"), "-out", path("other.csr"),
            "-subj", "/CN=" + OTHER],
        ["openssl", "x509", "-req", "-in", path("other.csr"), "-CA", path("ca.pem"),
         "-CAkey", path("ca.key"), "-CAcreateserial", "-out", path("other.pem"),
         "-days", "3", "-extfile", path("other.ext")],
        ["openssl", "req", "-x509"] + ec + [
            "-keyout", path("selfmx.key"), "-out", path("selfmx.pem"), "-days", "3",
            "-subj", "/CN=" + MX,
            "-addext", "subjectAltName=DNS:" + MX,
            "-addext", "basicConstraints=critical,CA:FALSE"],
    ]
    for name, host in (("mx", MX), ("other", OTHER)):
        with open(path(name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                    % host)
    for argv in steps:
        rc, out = run(argv)
        if rc != 0:
            return "%s: %s" % (" ".join(argv[:3]), out)
    return None


def fingerprint(pem):
    """'SHA256:AB:CD:...' of a certificate, by the openssl command."""
    rc, out = run(["openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"])
    m = re.search(r"=\s*([0-9A-Fa-f:]{95})", out)
    return "SHA256:" + m.group(1) if m else None


# ======================================================= fake upstream

class Conn:
    """One upstream connection as the fake saw it."""

    def __init__(self, n):
        self.n = n
        self.cmds = []          # (tls: bool, line without CRLF)
        self.tls = False
        self.version = None
        self.cipher = None
        self.sni = None
        self.tls_error = None
        self.early = b""        # bytes moat sent between STARTTLS and the handshake
        self.ended = False

    def verbs(self, tls=None):
        return [c.split(" ")[0].upper() for (x, c) in self.cmds if tls is None or x == tls]

    def ehlos(self):
        return [x for (x, c) in self.cmds if c.split(" ")[0].upper() == "EHLO"]


class FakeUpstream:
    """An SMTP server on 127.0.0.1 whose STARTTLS answer is chosen per case.

    starttls: None   - not offered (answered 502 if used anyway)
              "ok"   - 220, then the TLS handshake
              "454"  - 454 4.7.0 TLS not available
              "inject" - "220 Ready\\r\\n250 injected\\r\\n" in one write,
                         then the handshake
              "garbage" - 220, read the ClientHello, answer with garbage
    caps: EHLO keywords in plaintext (STARTTLS added when offered);
    tls_caps: EHLO keywords under TLS (default: caps);
    cert: (certfile, keyfile); max_version: ssl.TLSVersion cap.
    The settings (self.b) may be changed while it runs; each connection
    reads them as it goes.
    """

    def __init__(self, starttls="ok", caps=("PIPELINING", "8BITMIME"), tls_caps=None,
                 cert=None, max_version=None):
        self.b = dict(starttls=starttls, caps=list(caps),
                      tls_caps=list(tls_caps) if tls_caps is not None else None,
                      cert=cert or (path("mx.pem"), path("mx.key")),
                      max_version=max_version)
        self.port = free_port()
        self.conns = []
        self.messages = []      # dicts: data, tls, version, conn
        self._lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(32)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.b["cert"])
        if self.b.get("max_version") is not None:
            ctx.maximum_version = self.b["max_version"]
        conn_sni = []

        def sni_cb(sslobj, name, c):
            conn_sni.append(name)
        ctx.sni_callback = sni_cb
        return ctx, conn_sni

    def _accept(self):
        while self.running:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                conn = Conn(len(self.conns))
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(s, conn), daemon=True).start()

    def _serve(self, sock, conn):
        sock.settimeout(15)
        buf = [b""]

        def say(data):
            if isinstance(data, str):
                data = data.encode()
            sock.sendall(data)

        def readline():
            while b"\n" not in buf[0]:
                d = sock.recv(65536)
                if not d:
                    return None
                buf[0] += d
            line, buf[0] = buf[0].split(b"\n", 1)
            return line + b"\n"

        def ehlo_reply():
            b = self.b
            if conn.tls:
                caps = b["tls_caps"] if b["tls_caps"] is not None else b["caps"]
            else:
                caps = list(b["caps"]) + (["STARTTLS"] if b["starttls"] else [])
            lines = ["fake.upstream.test"] + list(caps)
            say("".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                        for i, l in enumerate(lines)))

        try:
            say("220 fake.upstream.test ESMTP\r\n")
            while True:
                raw = readline()
                if raw is None:
                    break
                line = raw.rstrip(b"\r\n").decode("latin-1")
                conn.cmds.append((conn.tls, line))
                verb = line.split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    ehlo_reply()
                elif verb == "STARTTLS":
                    mode = self.b["starttls"]
                    if conn.tls or not mode:
                        say("502 5.5.1 STARTTLS not offered\r\n")
                        continue
                    if mode == "454":
                        say("454 4.7.0 TLS not available\r\n")
                        continue
                    conn.early, buf[0] = buf[0], b""
                    if mode == "garbage":
                        say("220 2.0.0 Ready\r\n")
                        try:
                            sock.recv(65536)            # the ClientHello
                            say(b"\x00\x01garbage, not a TLS record\r\n" * 8)
                            time.sleep(0.5)
                        except OSError:
                            pass
                        break
                    say("220 2.0.0 Ready\r\n250 injected\r\n" if mode == "inject"
                        else "220 2.0.0 Ready\r\n")
                    ctx, sni = self._ctx()
                    try:
                        sock = ctx.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        conn.tls_error = str(e)
                        break
                    conn.tls = True
                    conn.version = sock.version()
                    conn.cipher = sock.cipher()[0] if sock.cipher() else None
                    conn.sni = sni[0] if sni else None
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    say("250 2.0.0 Ok\r\n")
                elif verb == "DATA":
                    say("354 End data with <CR><LF>.<CR><LF>\r\n")
                    data = bytearray()
                    while True:
                        l2 = readline()
                        if l2 is None:
                            return
                        if l2 == b".\r\n":
                            break
                        data += l2
                    with self._lock:
                        self.messages.append(dict(data=bytes(data), tls=conn.tls,
                                                  version=conn.version, conn=conn.n))
                        n = len(self.messages)
                    say("250 2.0.0 Ok: queued as FAKE%d\r\n" % n)
                elif verb == "QUIT":
                    say("221 2.0.0 Bye\r\n")
                    break
                else:
                    say("502 5.5.2 Command not recognized\r\n")
        except (OSError, ValueError):
            pass
        finally:
            conn.ended = True
            try:
                sock.close()
            except OSError:
                pass

    def mail_conns(self):
        """Connections on which moat sent MAIL (not the capability probe)."""
        return [c for c in list(self.conns) if "MAIL" in c.verbs()]

    def plaintext_mail(self):
        """Connections on which a MAIL came in plaintext."""
        return [c for c in list(self.conns) if "MAIL" in c.verbs(tls=False)]

    def wait_messages(self, n, timeout=3):
        end = mono() + timeout
        while len(self.messages) < n and mono() < end:
            time.sleep(0.02)
        return list(self.messages)

    def describe(self):
        out = []
        for c in list(self.conns):
            out.append("conn %d tls=%s version=%s sni=%s err=%s: %s" % (
                c.n, c.tls, c.version, c.sni, c.tls_error,
                " | ".join(("[tls] " if x else "") + l for x, l in c.cmds)))
        out.append("messages: %d" % len(self.messages))
        return "\n".join(out)

    def stop(self):
        self.running = False
        try:
            self.lsock.close()
        except OSError:
            pass


# ============================================================= client

BODY = "Subject: upstream tls %s\r\nFrom: alice@example.test\r\n\r\nhello\r\n"


def transact(port, body=None, tag="x"):
    """One whole client session against moatd. Returns
    (steps, ehlo_text): steps is [(step, code, text)] up to the first reply
    that ends the transaction; code None when the connection closed or
    nothing came."""
    body = body if body is not None else BODY % tag
    steps = []
    ehlo_text = ""
    try:
        c = Client(port, timeout=8, greet=False)
    except OSError as e:
        return [("connect", None, str(e))], ""
    try:
        code, text = c.reply_or(8)
        steps.append(("greeting", code, text))
        if code != 220:
            return steps, ""
        for name, line in (("EHLO", "EHLO client.example.test\r\n"),
                           ("MAIL", "MAIL FROM:<alice@example.test>\r\n"),
                           ("RCPT", "RCPT TO:<bob@example.test>\r\n"),
                           ("DATA", "DATA\r\n"),
                           (".", body + ".\r\n")):
            try:
                c.send(line)
            except OSError as e:
                steps.append((name, None, "send: %s" % e))
                return steps, ehlo_text
            code, text = c.reply_or(10)
            steps.append((name, code, text))
            if name == "EHLO":
                ehlo_text = text or ""
            want = 354 if name == "DATA" else 250
            if code != want:
                return steps, ehlo_text
        c.send("QUIT\r\n")
        c.reply_or(2)
        return steps, ehlo_text
    finally:
        c.close()


def delivered(steps):
    return bool(steps) and steps[-1][0] == "." and steps[-1][1] == 250


def tempfailed(steps):
    """A 4xx somewhere, and never a 250 for the message."""
    return (not delivered(steps)
            and any(code is not None and 400 <= code < 500 for _, code, _ in steps))


def show(steps):
    return "\n".join("%s -> %s %s" % (s, c, (x or "").replace("\n", " / "))
                     for s, c, x in steps)


def log_tail(m, pattern=r"upstream|tls|error", n=25):
    lines = [l for l in m.log().splitlines() if re.search(pattern, l)]
    return "\n".join(lines[-n:])


def tls_fail_reasons(m):
    return re.findall(r'event=upstream-tls-failed [^\n]*reason="([^"]*)"', m.log())


def case(conf, **fake):
    """A fresh fake upstream and a moatd in front of it."""
    f = FakeUpstream(**fake)
    m = Moatd(f.port, conf=BASE + conf)
    return f, m


def finish(f, m):
    m.stop()
    f.stop()


CA_CONF = ('upstream_tls = "required"\n'
           'upstream_tls_ca_file = "%s"\n'
           'upstream_tls_name = "%s"\n')


def refused_case(name, f, m, reason_re=None):
    """The client gets a 4xx, nothing reaches the fake, no MAIL ever in
    plaintext, the failure logged, moatd alive."""
    steps, _ = transact(m.port, tag=name)
    t.ok(tempfailed(steps), "%s: the client gets a 4xx" % name,
         show(steps) + "\n" + log_tail(m))
    time.sleep(0.2)
    t.eq(len(f.messages), 0, "%s: nothing delivered to the upstream" % name)
    t.eq([c.n for c in f.plaintext_mail()], [],
         "%s: no plaintext fallback (no MAIL before TLS)" % name)
    reasons = tls_fail_reasons(m)
    t.diag("%s: %s; logged reasons: %s" % (name, show(steps[-1:]), sorted(set(reasons))))
    if reason_re is not None:
        t.ok(any(re.search(reason_re, r) for r in reasons),
             "%s: logged event=upstream-tls-failed reason=~/%s/" % (name, reason_re),
             "reasons: %r\n%s" % (reasons, log_tail(m)))
    t.ok(m.alive(), "%s: moatd alive" % name, m.log()[-2000:])
    return steps


def refused_both(name, conf, bad, good=None, reason_re=r".", after=True):
    """A failure the two ways it can meet a client. From the start: the
    capability probe fails too, so a 421 at the greeting is a fine answer.
    After the probe said up (good upstream first, then changed to `bad`
    before the client comes): the session's own upstream connection
    fails, and the client, greeted 220, gets its 4xx later. `bad` and
    `good` are FakeUpstream settings (starttls, cert, max_version...)."""
    good = dict(dict(starttls="ok"), **(good or {}))
    f, m = case(conf, **dict(good, **bad))
    refused_case(name + " [from start]", f, m, reason_re)
    finish(f, m)
    if not after:
        return
    f, m = case(conf, **good)
    if t.like(m.log(), r"event=upstream-up",
              name + " [after probe]: the probe says up while the upstream is good"):
        f.b.update(bad)
        n_conns = len(f.conns)
        steps = refused_case(name + " [after probe]", f, m, reason_re)
        t.ok(bool(steps) and steps[0][1] == 220 and len(f.conns) > n_conns,
             name + " [after probe]: greeted 220, failed on the session's own upstream "
             "connection", show(steps))
    finish(f, m)


def delivered_case(name, f, m, over_tls, tag=None):
    """A message goes through; over_tls: how the fake must have got it."""
    tag = tag or name
    n0 = len(f.messages)
    steps, ehlo = transact(m.port, tag=tag)
    t.ok(delivered(steps), "%s: the client gets 250 for the message" % name,
         show(steps) + "\n" + log_tail(m) + "\n" + f.describe())
    msgs = f.wait_messages(n0 + 1)[n0:]
    mine = [x for x in msgs if ("upstream tls %s" % tag).encode() in x["data"]]
    t.eq(len(mine), 1, "%s: the fake upstream got the message once" % name)
    if mine:
        t.eq(mine[0]["tls"], over_tls, "%s: it arrived %s" % (
            name, "over TLS" if over_tls else "in plaintext"))
    return steps, ehlo, (mine[0] if mine else None)


# ============================================================== cases

# 1. required, chain verified against the CA and the name.
def sec_required_verified():
    f, m = case(CA_CONF % (path("ca.pem"), MX), starttls="ok")
    t.like(m.log(), r"event=upstream-up", "required + CA + name: the probe says up")
    steps, ehlo, msg = delivered_case("required + CA + name", f, m, True)
    if msg:
        t.like(msg["version"] or "", r"^TLSv1\.[23]$",
               "required + CA + name: TLS version recorded by the fake (%s)" % msg["version"])
    t.like(m.log(), r"event=upstream-tls sid=\S+ version=TLSv1\.[23] cipher=\S+",
           "required + CA + name: moatd logs event=upstream-tls with version and cipher")
    conns = f.mail_conns()
    c = conns[0] if conns else None
    t.ok(c is not None and c.ehlos() == [False, True],
         "required + CA + name: EHLO twice on the mail connection, before and after STARTTLS",
         f.describe())
    t.ok(c is not None and c.verbs(tls=False) == ["EHLO", "STARTTLS"],
         "required + CA + name: only EHLO and STARTTLS in plaintext", f.describe())
    t.ok(c is not None and c.sni == MX,
         "required + CA + name: SNI is upstream_tls_name (%s)" % (c.sni if c else None))
    t.ok(c is not None and c.early == b"",
         "required + CA + name: moat sent nothing between STARTTLS and the handshake")
    # The version moatd logs for the mail connection matches the fake's.
    if msg and msg["version"]:
        t.like(m.log(), r"event=upstream-tls [^\n]*version=%s " % re.escape(msg["version"]),
               "required + CA + name: logged version matches the fake's (%s)" % msg["version"])
    t.ok(not tls_fail_reasons(m), "required + CA + name: no upstream-tls-failed logged",
         tls_fail_reasons(m))
    finish(f, m)


# 2. Response injection: the 220 and "250 injected" in one write.
def sec_injection():
    f, m = case(CA_CONF % (path("ca.pem"), MX), starttls="inject",
                caps=("PIPELINING", "8BITMIME", "SIZE 99999"),
                tls_caps=("PIPELINING", "8BITMIME", "SIZE 1000"))
    t.like(m.log(), r"event=upstream-up", "injection: the probe says up")
    steps, ehlo, msg = delivered_case("injection", f, m, True)
    t.like(m.log(), r"event=upstream-tls-injection",
           "injection: moatd logs event=upstream-tls-injection")
    t.like(m.log(), r"event=upstream-tls sid=\S+ version=TLSv1",
           "injection: moatd logs event=upstream-tls after it")
    conns = f.mail_conns()
    t.ok(bool(conns) and conns[0].ehlos() == [False, True],
         "injection: EHLO again after the handshake", f.describe())
    # What moat advertises comes from the EHLO under TLS (SIZE 1000), not
    # from the plaintext one (SIZE 99999) nor from the injected "250".
    t.like(ehlo, r"(^|\n)SIZE 1000(\n|$)", "injection: moat advertises the SIZE of the EHLO under TLS")
    n0 = len(f.messages)
    big = "Subject: upstream tls big\r\n\r\n" + ("x" * 98 + "\r\n") * 50
    steps, _ = transact(m.port, body=big, tag="big")
    last = steps[-1] if steps else (None, None, None)
    t.ok(last[1] is not None and 400 <= last[1] < 600 and not delivered(steps),
         "injection: a 5000-byte message is refused (SIZE 1000 under TLS)", show(steps))
    time.sleep(0.2)
    t.eq(len(f.messages), n0, "injection: the big message never reached the upstream")
    t.ok(m.alive(), "injection: moatd alive")
    finish(f, m)


# 3. required, STARTTLS not offered.
def sec_required_not_offered():
    refused_both("required, STARTTLS not offered", CA_CONF % (path("ca.pem"), MX),
                 dict(starttls=None), reason_re=r"not offered")


# 4. required, STARTTLS answered 454.
def sec_required_454():
    refused_both("required, STARTTLS answered 454", CA_CONF % (path("ca.pem"), MX),
                 dict(starttls="454"))


# 5. opportunistic: no STARTTLS, or 454: plaintext.
def sec_opportunistic():
    f, m = case('upstream_tls = "opportunistic"\n', starttls=None)
    t.like(m.log(), r"event=upstream-up", "opportunistic, not offered: the probe says up")
    delivered_case("opportunistic, not offered", f, m, False)
    t.ok(all("STARTTLS" not in c.verbs() for c in f.conns),
         "opportunistic, not offered: no STARTTLS sent", f.describe())
    finish(f, m)

    f, m = case('upstream_tls = "opportunistic"\n', starttls="454")
    t.like(m.log(), r"event=upstream-up", "opportunistic, 454: the probe says up")
    delivered_case("opportunistic, 454", f, m, False)
    conns = f.mail_conns()
    t.ok(bool(conns) and conns[0].verbs()[:3] == ["EHLO", "STARTTLS", "MAIL"],
         "opportunistic, 454: STARTTLS tried, then MAIL in plaintext", f.describe())
    finish(f, m)

    # opportunistic with a working STARTTLS: TLS is used.
    f, m = case('upstream_tls = "opportunistic"\n', starttls="ok")
    delivered_case("opportunistic, offered", f, m, True)
    finish(f, m)

    # opportunistic, broken handshake: the connection is broken, 4xx.
    refused_both("opportunistic, broken handshake", 'upstream_tls = "opportunistic"\n',
                 dict(starttls="garbage"), reason_re=None)


# 6. required, broken handshake; then the upstream mends.
def sec_required_garbage():
    refused_both("required, broken handshake", CA_CONF % (path("ca.pem"), MX),
                 dict(starttls="garbage"), after=True)
    f, m = case(CA_CONF % (path("ca.pem"), MX) + "upstream_probe_interval = 1s\n",
                starttls="garbage")
    refused_case("required, broken handshake, probing every 1s", f, m, r".")
    n_up = len(re.findall(r"event=upstream-up", m.log()))
    f.b["starttls"] = "ok"
    end = mono() + 6
    while mono() < end and len(re.findall(r"event=upstream-up", m.log())) <= n_up:
        time.sleep(0.05)
    t.ok(len(re.findall(r"event=upstream-up", m.log())) > n_up,
         "required, broken handshake: once the upstream mends, the probe says up",
         log_tail(m))
    delivered_case("required, broken handshake, then mended", f, m, True)
    finish(f, m)


# 7. required, wrong name; wrong CA.
def sec_required_bad_cert():
    # The chain is good, the name is not the one asked for.
    refused_both("required, wrong name", CA_CONF % (path("ca.pem"), OTHER),
                 dict(cert=(path("mx.pem"), path("mx.key"))),
                 good=dict(cert=(path("other.pem"), path("other.key"))))
    # The name is right, nothing chains the certificate to the CA.
    refused_both("required, wrong CA (self-signed mx.example.test)",
                 CA_CONF % (path("ca.pem"), MX),
                 dict(cert=(path("selfmx.pem"), path("selfmx.key"))))
    # Neither.
    f, m = case(CA_CONF % (path("ca.pem"), MX), starttls="ok",
                cert=(path("evil.pem"), path("evil.key")))
    refused_case("required, self-signed evil.example.test", f, m, r".")
    finish(f, m)


# 8. Pinning.
def sec_pins():
    fp_mx = fingerprint(path("mx.pem"))
    fp_evil = fingerprint(path("evil.pem"))
    if not t.ok(fp_mx is not None and fp_evil is not None,
                "pins: fingerprints computed with openssl x509 -fingerprint -sha256"):
        return
    pin = 'upstream_tls = "required"\nupstream_tls_fingerprint = { "%s" }\n'

    f, m = case(pin % fp_mx, starttls="ok")
    delivered_case("pin matches (SHA256:AB:CD form)", f, m, True)
    finish(f, m)

    # Bare lowercase hex, no prefix, no colons; a second pin in the list.
    bare = fp_mx[7:].replace(":", "").lower()
    f, m = case('upstream_tls = "required"\n'
                'upstream_tls_fingerprint = { "%s", "%s" }\n' % (fp_evil, bare),
                starttls="ok")
    delivered_case("pin matches (bare hex, second of two pins)", f, m, True)
    finish(f, m)

    refused_both("wrong pin", pin % fp_evil, dict(cert=(path("mx.pem"), path("mx.key"))),
                 good=dict(cert=(path("evil.pem"), path("evil.key"))))

    # The pin decides: a pinned self-signed certificate is accepted even
    # with a CA file and a name it would fail...
    f, m = case(CA_CONF % (path("ca.pem"), MX) +
                'upstream_tls_fingerprint = { "%s" }\n' % fp_evil,
                starttls="ok", cert=(path("evil.pem"), path("evil.key")))
    delivered_case("pin decides: pinned self-signed cert accepted despite the CA file", f, m, True)
    finish(f, m)

    # ...and a CA-valid certificate with the right name is refused when
    # it is not the pinned one.
    refused_both("pin decides: CA-valid cert refused when not pinned",
                 CA_CONF % (path("ca.pem"), MX) +
                 'upstream_tls_fingerprint = { "%s" }\n' % fp_evil,
                 dict(cert=(path("mx.pem"), path("mx.key"))),
                 good=dict(cert=(path("evil.pem"), path("evil.key"))))


# 9. required, no CA and no pin: encryption only.
def sec_encryption_only():
    f, m = case('upstream_tls = "required"\n', starttls="ok",
                cert=(path("evil.pem"), path("evil.key")))
    delivered_case("required, no CA, no pin: self-signed accepted (encryption only)", f, m, True)
    t.like(m.log(), r"event=upstream-tls sid=",
           "required, no CA, no pin: event=upstream-tls logged")
    finish(f, m)


# 10. none: STARTTLS offered but never used.
def sec_none():
    f, m = case('upstream_tls = "none"\n', starttls="ok")
    delivered_case("upstream_tls none", f, m, False)
    t.ok(bool(f.conns) and all("STARTTLS" not in c.verbs() for c in f.conns),
         "upstream_tls none: moat never sent STARTTLS (probe included)", f.describe())
    t.ok("event=upstream-tls" not in m.log(), "upstream_tls none: no upstream-tls event logged")
    finish(f, m)

    # The default is none too.
    f, m = case("", starttls="ok")
    delivered_case("upstream_tls unset (default none)", f, m, False)
    finish(f, m)


# 12. upstream_tls_min_version against an upstream that stops at TLS 1.2.
def sec_min_version():
    refused_both("min_version TLSv1.3, upstream at most TLSv1.2",
                 CA_CONF % (path("ca.pem"), MX) + 'upstream_tls_min_version = "TLSv1.3"\n',
                 dict(max_version=ssl.TLSVersion.TLSv1_2))

    f, m = case(CA_CONF % (path("ca.pem"), MX) + 'upstream_tls_min_version = "TLSv1.2"\n',
                starttls="ok", max_version=ssl.TLSVersion.TLSv1_2)
    _, _, msg = delivered_case("min_version TLSv1.2, upstream at most TLSv1.2", f, m, True)
    t.eq(msg["version"] if msg else None, "TLSv1.2",
         "min_version TLSv1.2: the message travelled under TLSv1.2")
    t.like(m.log(), r"event=upstream-tls [^\n]*version=TLSv1\.2 ",
           "min_version TLSv1.2: logged version=TLSv1.2")
    finish(f, m)


# 11. moatd -t.
def sec_check_config():
    d = tmpdir()

    def check(name, extra):
        conf = os.path.join(d, "%s.conf" % name)
        with open(conf, "w") as fh:
            fh.write('hostname = "moat.test"\nupstream = "127.0.0.1:%d"\n'
                     'spool_directory = "%s"\nlisten "127.0.0.1:%d" {}\n'
                     % (free_port(), d, free_port()))
            fh.write(extra)
        return run([MOATD, "-t", "-c", conf], timeout=20)

    rc, out = check("good", CA_CONF % (path("ca.pem"), MX) +
                    'upstream_tls_fingerprint = { "%s" }\n' % fingerprint(path("mx.pem")))
    t.eq(rc, 0, "moatd -t: a good upstream TLS configuration passes")
    for name, value in (("nothex", "SHA256:zz:11"),
                        ("short", "ab" * 31),
                        ("long", "ab" * 33),
                        ("odd", "ab" * 31 + "abc")):
        rc, out = check("fp-" + name, 'upstream_tls = "required"\n'
                        'upstream_tls_fingerprint = { "%s" }\n' % value)
        t.ok(rc not in (0, None), "moatd -t refuses fingerprint %r (%s): exit %s"
             % (value, name, rc), out)
        t.like(out, r"upstream_tls_fingerprint", "moatd -t: fingerprint %s: message names the option"
               % name)
    rc, out = check("noca", CA_CONF % (os.path.join(d, "no-such-ca.pem"), MX))
    t.ok(rc not in (0, None), "moatd -t refuses a missing upstream_tls_ca_file: exit %s" % rc, out)
    t.like(out, r"upstream_tls_ca_file", "moatd -t: missing CA file: message names the option")
    rc, out = check("badmode", 'upstream_tls = "sometimes"\n')
    t.ok(rc not in (0, None), "moatd -t refuses upstream_tls = \"sometimes\": exit %s" % rc, out)
    t.like(out, r"upstream_tls\b", "moatd -t: bad upstream_tls: message names the option")


# ================================================================ main

err = make_certs()
if not t.ok(err is None, "test certificates made with openssl", err):
    t.done()

for _sec in (
        sec_required_verified,
        sec_injection,
        sec_required_not_offered,
        sec_required_454,
        sec_opportunistic,
        sec_required_garbage,
        sec_required_bad_cert,
        sec_pins,
        sec_encryption_only,
        sec_none,
        sec_min_version,
        sec_check_config,
):
    run_section(_sec)

t.diag("elapsed %.1fs" % (mono() - T_START))
t.done()
