"""Client-side TLS in moatd, end to end: configuration checks (moatd -t),
STARTTLS (RFC 3207: the 220, syntax, state after the handshake, STARTTLS
inside TLS, in a transaction, when not offered), command injection after
STARTTLS (CVE-2011-0411: "close" and "refuse"), listeners with tls =
"off" / "starttls" / "required" / "implicit", the handshake timeout,
protocol floors (tls_min_version), cipher, suite and group settings, SNI and
RSA + ECDSA certificates served side by side, session resumption with and
without tickets, client certificates (asked for, never required), the TLS
facts in the log and in moat's Received field (the exact bytes checked on a
recording upstream), SIGHUP certificate reloads, a 2 MB message and 20
concurrent TLS sessions, the real tools: openssl s_client (STARTTLS and
implicit), swaks --tls / --tlsc and Postfix's posttls-finger, and a PROXY
protocol header (v1, v2, whole or split) in front of implicit TLS, sent in
the same segment as the ClientHello, and bad TLS input (a truncated
ClientHello or record, a record that does not decrypt, an oversized one):
bounded time, a log line, other clients served.

Every certificate is made in the test's temporary directory with the
openssl command: a test CA, RSA-2048 and ECDSA P-256 certificates for
mx.example.test, RSA ones for other.example.test and *.wild.example.test,
a second mx.example.test certificate for the reload, and client
certificates (one signed by the CA, one self-signed).

Python's ssl module does the precise checks (which certificate, which
protocol and cipher, session_reused); each session is found in moatd's log
by its client port (event=connect ... port=N) so that log checks name the
right sid.
"""

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Sink, Moatd, Client, Recorder, MOATD, tmpdir,  # noqa: E402
                      free_port)

warnings.simplefilter("ignore", DeprecationWarning)     # TLSv1_1 on purpose

from moattest import write_file as write, sink_headers as headers_of  # noqa: E402
t = TAP()
run_section = t.section
T_START = time.monotonic()
BASE = "drain_timeout = 1\n"
MX = "mx.example.test"
OTHER = "other.example.test"
WORK = tmpdir()


# ============================================================ helpers

def run(argv, input=None, timeout=30, env=None):
    """(exit status, stdout+stderr text) of a command."""
    try:
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("latin-1") + "\n[timed out]"
    return p.returncode, p.stdout.decode("latin-1")


def read(path):
    with open(path) as f:
        return f.read()


# ------------------------------------------------------- certificates

class Certs:
    """Everything made with the openssl CLI under WORK/certs."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.ca = self.p("ca.pem")
        self.ca_key = self.p("ca.key")
        self._ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key,
                   "-out", self.ca, "-days", "30", "-subj", "/O=Moat Test/CN=Moat Test CA",
                   "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = 1000
        # name -> (certificate file, key file, sha256 of the leaf's DER)
        self.mx_rsa = self.leaf("mx-rsa", "rsa", MX, [MX])
        self.mx_ec = self.leaf("mx-ec", "ec", MX, [MX], combined=True)
        self.other = self.leaf("other", "rsa", OTHER, [OTHER])
        self.wild = self.leaf("wild", "ec", "wild", ["*.wild.example.test"])
        self.mx2 = self.leaf("mx2-rsa", "rsa", MX, [MX])
        self.cnonly = self.leaf("cnonly", "ec", "cn.example.test", None)   # no SAN
        self.client = self.leaf("client", "ec", "client.example.test", None,
                                usage="clientAuth")
        # A self-signed client certificate: moat asks, never verifies.
        k, c = self.p("selfclient.key"), self.p("selfclient.pem")
        self._ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-nodes", "-keyout", k, "-out", c, "-days", "30",
                   "-subj", "/CN=selfsigned.client.test")
        self.selfclient = (c, k, self.fp_file(c))
        # A client certificate whose subject would break a header field
        # (CR LF and a field after it, an unbalanced parenthesis, quote,
        # backslash, semicolon) and a log line.
        k, c = self.p("evilclient.key"), self.p("evilclient.pem")
        self._ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-nodes", "-keyout", k, "-out", c, "-days", "30",
                   "-subj", '/O=Evil (Corp/OU=semi;colon"q\\\\/CN=evil\r\nX-Injected: yes')
        self.evilclient = (c, k, self.fp_file(c))

    def p(self, name):
        return os.path.join(self.d, name)

    def _ossl(self, *args):
        rc, out = run(["openssl"] + list(args))
        if rc != 0:
            raise RuntimeError("openssl %s failed: %s" % (" ".join(args), out))
        return out

    def leaf(self, name, alg, cn, sans, usage="serverAuth", combined=False):
        key, csr, crt = self.p(name + ".key"), self.p(name + ".csr"), self.p(name + ".crt")
        ext = self.p(name + ".ext")
        if alg == "rsa":
            self._ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                       "-out", key)
            ku = "digitalSignature,keyEncipherment"
        else:
            self._ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                       "-out", key)
            ku = "digitalSignature"
        self._ossl("req", "-new", "-key", key, "-subj", "/O=Moat Test/CN=" + cn, "-out", csr)
        lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical," + ku,
                 "extendedKeyUsage=" + usage, "subjectKeyIdentifier=hash",
                 "authorityKeyIdentifier=keyid"]
        if sans:
            lines.append("subjectAltName=" + ",".join("DNS:" + s for s in sans))
        write(ext, "\n".join(lines) + "\n")
        self.serial += 1
        self._ossl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                   "-set_serial", str(self.serial), "-days", "30", "-extfile", ext,
                   "-out", crt)
        leaf_pem = read(crt)
        fp = self.fp_pem(leaf_pem)
        if usage == "serverAuth":
            # The file moat loads: leaf first, then the chain.
            chain = self.p(name + "-chain.pem")
            if combined:
                # No key = ...: the key is in the certificate file itself.
                write(chain, leaf_pem + read(self.ca) + read(key))
                return (chain, None, fp)
            write(chain, leaf_pem + read(self.ca))
            return (chain, key, fp)
        return (crt, key, fp)

    @staticmethod
    def fp_pem(pem):
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()

    def fp_file(self, path):
        return self.fp_pem(read(path))


def cert_section(name, cert):
    path, key, _ = cert
    s = 'tls_certificate "%s" {\n    certificate = "%s"\n' % (name, path)
    if key:
        s += '    key = "%s"\n' % key
    return s + "}\n"


def listen_line(port, mode):
    if mode is None:
        return 'listen "127.0.0.1:%d" {}\n' % port
    return 'listen "127.0.0.1:%d" { tls = "%s" }\n' % (port, mode)


def start(upstream_port, certs=("mx_rsa",), extra="", modes=("starttls",)):
    """A moatd with these certificate sections (names of Certs attributes,
    the first is the default) and one listener per mode; returns (moatd,
    {mode: port}) (the key of a listener without tls = is None)."""
    conf = BASE
    for name in certs:
        conf += cert_section(name.replace("_", "-"), getattr(C, name))
    conf += extra
    ports = {}
    for mode in modes:
        ports[mode] = free_port()
        conf += listen_line(ports[mode], mode)
    m = Moatd(upstream_port, conf=conf, listen=ports[modes[0]])
    return m, ports


# ------------------------------------------------------- TLS contexts

def cctx(maxv=None, minv=None, ciphers=None, cert=None, verify=True, hostname=False):
    """A client context trusting the test CA (chain verified unless
    verify=False; the name only with hostname=True)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if verify:
        ctx.load_verify_locations(C.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = hostname
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert is not None:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def peer_fp(sock):
    der = sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


class TClient(Client):
    """Client that can turn TLS on: after a 220 to STARTTLS (starttls())
    or right after connecting (implicit=True). lport: the local port (to
    find the session in moatd's log)."""

    def __init__(self, port, implicit=False, ctx=None, sni=MX, session=None,
                 greet=True, timeout=10):
        Client.__init__(self, port, timeout=timeout, greet=False)
        self.lport = self.s.getsockname()[1]
        self.tls = None
        if implicit:
            self.wrap(ctx or cctx(), sni, session)
        if greet:
            self.greeting = self.reply()

    def wrap(self, ctx, sni=MX, session=None):
        if self.buf:
            raise RuntimeError("bytes after the 220, before the handshake: %r" % self.buf)
        self.s = ctx.wrap_socket(self.s, server_hostname=sni, session=session)
        self.tls = self.s

    def starttls(self, ctx=None, sni=MX, session=None):
        """STARTTLS and, on 220, the handshake; returns the reply."""
        r = self.cmd("STARTTLS")
        if r[0] == 220:
            self.wrap(ctx or cctx(), sni, session)
        return r

    def fp(self):
        return peer_fp(self.tls) if self.tls else None

    def read_all(self, timeout=3.0):
        """Everything the server sends until it closes (or timeout):
        (bytes, closed)."""
        end = time.time() + timeout
        closed = False
        while time.time() < end:
            self.s.settimeout(max(0.05, end - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not d:
                closed = True
                break
            self.buf += d
        return self.buf, closed


def tls_session(port, mode="starttls", ctx=None, sni=MX, ehlo="client.example.test",
                mail=True, sender="alice@example.test", subject="tls test", body=None,
                session=None, quit=True):
    """One session (STARTTLS or implicit TLS) and, if mail, one message.
    Returns a dict: ok (message accepted), eom, cipher, version, fp,
    reused, session (for resumption), lport, error, ehlo (replies)."""
    r = {"ok": False, "eom": None, "cipher": None, "version": None, "fp": None,
         "reused": None, "session": None, "lport": None, "error": None}
    c = None
    try:
        c = TClient(port, implicit=(mode == "implicit"), ctx=ctx, sni=sni, session=session,
                    greet=(mode == "implicit"))
        r["lport"] = c.lport
        if mode != "implicit":
            c.greeting = c.reply()
            r["ehlo1"] = c.cmd("EHLO " + ehlo)
            r["starttls"] = c.starttls(ctx or cctx(), sni, session)
            if r["starttls"][0] != 220:
                return r
        r["greeting"] = c.greeting
        r["ehlo"] = c.cmd("EHLO " + ehlo)
        r["version"] = c.tls.version()
        r["cipher"] = c.tls.cipher()[0]
        r["fp"] = c.fp()
        r["reused"] = c.tls.session_reused
        r["session"] = c.tls.session
        if mail:
            c.cmd("MAIL FROM:<%s>" % sender)
            c.cmd("RCPT TO:<bob@example.test>")
            d = c.cmd("DATA")
            if d[0] == 354:
                c.send(body if body is not None else
                       "From: <%s>\r\nSubject: %s\r\n\r\nhello over TLS\r\n" % (sender, subject))
                c.send(".\r\n")
                r["eom"] = c.reply_or(30)
                r["ok"] = r["eom"][0] == 250
        if quit:
            c.send("QUIT\r\n")
            c.reply_or(3)
    except (OSError, EOFError, ssl.SSLError, RuntimeError) as e:
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if c is not None:
            c.close()
    return r


def handshake(port, mode="starttls", ctx=None, sni=MX):
    """Just the handshake and an EHLO (no mail); tls_session's dict."""
    r = tls_session(port, mode=mode, ctx=ctx, sni=sni, mail=False)
    return r


# ------------------------------------------------------------- logs

def sid_of(m, lport, timeout=5):
    """The sid of the newest session from this client port (ports are
    reused over a long test: the first match may be an older session)."""
    pat = r"event=connect sid=(\S+) client=127\.0\.0\.1 port=%d " % lport
    if not m.wait_log(pat, timeout):
        return None
    return re.findall(pat, m.log())[-1]


def log_line(m, event, sid, timeout=5, having=""):
    """The first 'event=EVENT sid=SID' line of moatd's log (waits) that
    also matches the pattern having."""
    if sid is None:
        return None
    mt = m.wait_log(r"(?m)^.*event=%s sid=%s\b.*%s.*$"
                    % (re.escape(event), re.escape(sid), having), timeout)
    return mt.group(0) if mt else None


def find_msg(sink, needle, timeout=5.0):
    """The complete smtp-sink dump containing needle, or None."""
    end = time.time() + timeout
    while True:
        for x in sink.messages(wait=0.1, count=0):
            if needle in x and x.endswith("\n\n"):
                return x
        if time.time() >= end:
            return None
        time.sleep(0.05)


def received_fields(headers):
    """The Received fields (unfolded) of a header section (LF ends).
    The test's messages carry none: every one is moat's."""
    out = []
    for fld in re.findall(r"(?m)^Received:.*(?:\n[ \t].*)*", headers):
        out.append(re.sub(r"\n(?=[ \t])", "", fld))
    return out


def cipher_in(text, cipher):
    return cipher is not None and text is not None and cipher in text


# ----------------------------------------------------------- tools

def s_client(args, lines=("EHLO x.example.test",), delay=0.5, timeout=20):
    """openssl s_client with args; sends each line (CRLF) after delay
    seconds, then QUIT; (exit status, output)."""
    p = subprocess.Popen(["openssl", "s_client"] + list(args) + ["-ign_eof"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        for ln in list(lines) + ["QUIT"]:
            time.sleep(delay)
            try:
                p.stdin.write((ln + "\r\n").encode())
                p.stdin.flush()
            except OSError:
                break
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, out.decode("latin-1") + "\n[timed out]"
    return p.returncode, out.decode("latin-1")


# =====================================================================
# 0. Certificates
# =====================================================================
t0 = time.monotonic()
C = Certs(os.path.join(WORK, "certs"))
t.ok(True, "test certificates made with openssl (%.1fs)" % (time.monotonic() - t0))


# =====================================================================
# 1. Configuration checks: moatd -t
# =====================================================================
def sec_config():
    sink_port = free_port()     # -t never connects

    def conf_file(name, lines):
        head = ['hostname = "moat.test"', 'upstream = "127.0.0.1:%d"' % sink_port,
                'spool_directory = "%s"' % WORK]
        path = os.path.join(WORK, name + ".conf")
        write(path, "\n".join(head + lines) + "\n")
        return path, len(head)

    def check_bad(name, lines, bad_from, bad_to, problem):
        """lines[bad_from..bad_to] (0-based, inclusive) hold the problem;
        the message must name FILE:LINE within them and match problem."""
        path, off = conf_file(name, lines)
        rc, out = run([MOATD, "-t", "-c", path], timeout=20)
        t.ok(rc not in (0, None), "moatd -t refuses %s (exit %s)" % (name, rc), out)
        mt = re.search(re.escape(path) + r":(\d+): (.*)", out)
        t.ok(mt is not None, "... the message is FILE:LINE: ... (%s)" % name, out)
        if mt:
            ln = int(mt.group(1))
            t.ok(off + bad_from + 1 <= ln <= off + bad_to + 1,
                 "... LINE %d is the offending line (%d..%d) (%s)"
                 % (ln, off + bad_from + 1, off + bad_to + 1, name), out)
            t.like(mt.group(2), problem, "... and names the problem (%s)" % name)
        return out

    good = [cert_section("mx-rsa", C.mx_rsa), cert_section("mx-ec", C.mx_ec),
            cert_section("other", C.other),
            'tls_min_version = "TLSv1.2"', 'tls_ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20"',
            'tls_ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"',
            'tls_groups = "X25519:P-256"', "tls_session_tickets = false",
            "tls_ask_client_certificate = true", 'starttls_injection = "refuse"',
            'received_header = "always"', "tls_handshake_timeout = 20s",
            listen_line(free_port(), "off"), listen_line(free_port(), "starttls"),
            listen_line(free_port(), "required"), listen_line(free_port(), "implicit")]
    path, _ = conf_file("good", "\n".join(good).splitlines())
    rc, out = run([MOATD, "-t", "-c", path], timeout=20)
    t.eq(rc, 0, "moatd -t accepts a configuration using every TLS option")
    if rc != 0:
        t.diag(out)

    missing = os.path.join(WORK, "no-such-cert.pem")
    check_bad("a missing certificate file",
              ['tls_certificate "mx" {', '    certificate = "%s"' % missing, "}"], 0, 2,
              r"(?i)" + re.escape(missing) + r"|no such file")
    check_bad("a key that does not match the certificate",
              ['tls_certificate "mx" {', '    certificate = "%s"' % C.mx_rsa[0],
               '    key = "%s"' % C.other[1], "}"], 0, 3, r"(?i)key")
    check_bad("a required listener without a certificate",
              [listen_line(free_port(), "required").strip()], 0, 0,
              r"(?i)tls|certificate")
    check_bad("an implicit listener without a certificate",
              [listen_line(free_port(), "implicit").strip()], 0, 0,
              r"(?i)tls|certificate")
    check_bad("a bad tls_min_version",
              [cert_section("mx", C.mx_rsa).strip(), 'tls_min_version = "TLSv9"'],
              4, 4, r"(?i)tls_min_version|TLSv9")
    check_bad("a bad tls_ciphers string",
              [cert_section("mx", C.mx_rsa).strip(), 'tls_ciphers = "NO-SUCH-CIPHER:ALSO-NOT"'],
              4, 4, r"(?i)tls_ciphers|cipher")
    check_bad("a listener with a bad tls mode",
              [cert_section("mx", C.mx_rsa).strip(),
               listen_line(free_port(), "sometimes").strip()], 4, 4, r"(?i)tls|sometimes")


# =====================================================================
# 2. STARTTLS basics, state reset, facts in the log and Received field
# =====================================================================
def sec_starttls():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa",))
    port = ports["starttls"]

    c = TClient(port)
    e1 = c.cmd("EHLO syntax.example.test")
    t.ok(e1[0] == 250 and "STARTTLS" in e1[1].split("\n"),
         "EHLO on a starttls listener with a certificate advertises STARTTLS", e1)
    t.eq(c.cmd("STARTTLS foo"), (501, "5.5.4 Syntax: STARTTLS"), "STARTTLS foo: 501 5.5.4")
    t.eq(c.code("MAIL FROM:<early@example.test>"), 250, "MAIL (to test STARTTLS in a transaction)")
    t.eq(c.cmd("STARTTLS"), (503, "5.5.1 Error: MAIL transaction in progress"),
         "STARTTLS after MAIL: 503 5.5.1 MAIL transaction in progress")
    t.eq(c.code("RSET"), 250, "RSET, the session goes on in plaintext")
    t.eq(c.code("QUIT"), 221, "QUIT")
    c.close()

    c = TClient(port)
    c.cmd("EHLO before-tls.example.test")
    r = c.cmd("STARTTLS")
    t.eq(r, (220, "2.0.0 Ready to start TLS"), "STARTTLS: 220 2.0.0 Ready to start TLS")
    hs_err = None
    try:
        c.wrap(cctx(hostname=True), MX)
    except (ssl.SSLError, OSError, RuntimeError) as e:
        hs_err = e
    t.ok(hs_err is None, "TLS handshake (chain and name mx.example.test verified)", hs_err)
    if hs_err is not None:
        c.close()
        m.stop()
        sink.stop()
        return
    t.eq(c.fp(), C.mx_rsa[2], "... the mx.example.test RSA certificate")
    t.eq(c.tls.version(), "TLSv1.3", "... TLSv1.3 negotiated by default")
    cipher = c.tls.cipher()[0]
    e2 = c.cmd("EHLO after-tls.example.test")
    t.eq(e2[0], 250, "EHLO again inside TLS: 250")
    t.ok("STARTTLS" not in e2[1].split("\n"), "... STARTTLS no longer advertised", e2)
    t.ok(e2[1].split("\n")[1:] and "PIPELINING" in e2[1],
         "... the other extensions still listed", e2)
    t.eq(c.cmd("STARTTLS"), (554, "5.5.1 Error: TLS already active"),
         "STARTTLS inside TLS: 554 5.5.1 Error: TLS already active")
    t.eq(c.code("MAIL FROM:<tls1@example.test>"), 250, "MAIL inside TLS")
    t.eq(c.code("RCPT TO:<bob@example.test>"), 250, "RCPT inside TLS")
    t.eq(c.code("DATA"), 354, "DATA inside TLS")
    c.send("From: <tls1@example.test>\r\nSubject: first over tls\r\n\r\nhello\r\n.\r\n")
    t.eq(c.reply_or(10)[0], 250, "message over STARTTLS accepted")
    t.eq(c.code("QUIT"), 221, "QUIT inside TLS: 221")
    c.close()

    sid = sid_of(m, c.lport)
    tx = log_line(m, "tx", sid, having=r'from="tls1@')
    t.like(tx, r' helo="after-tls\.example\.test"',
           "tx log: the HELO name is the one given after TLS")
    t.ok(tx is not None and "before-tls" not in tx, "tx log: the pre-TLS HELO is forgotten", tx)
    t.ok(not re.search(r"upstream-send sid=%s .*before-tls" % re.escape(sid or "?"), m.log()),
         "the pre-TLS HELO name is never sent upstream (XFORWARD/XCLIENT)")
    t.ok(re.search(r"upstream-send sid=%s line=\"(XFORWARD|XCLIENT) [^\"]*HELO=after-tls\.example"
                   r"\.test" % re.escape(sid or "?"), m.log()),
         "the upstream is told the HELO name given after TLS")
    t.like(tx, r"TLSv1\.3", "tx log names the TLS version (TLSv1.3)")
    t.ok(cipher_in(tx, cipher), "tx log names the cipher (%s)" % cipher, tx)
    tl = log_line(m, "tls", sid)
    t.like(tl, r"TLSv1\.3", "event=tls log line with the protocol version")
    t.ok(cipher_in(tl, cipher), "event=tls log line with the cipher (%s)" % cipher, tl)

    d = find_msg(sink, "Subject: first over tls")
    t.ok(d is not None, "the sink has the message sent over TLS")
    h = headers_of(d)
    t.ok(h.startswith("Received:"), "moat's Received field comes first in the message", h)
    rf = received_fields(h)
    t.eq(len(rf), 1, "exactly one Received field added by moat")
    rcv = rf[0] if rf else ""
    t.like(rcv, r"\bwith ESMTPS\b", "Received: with ESMTPS")
    t.like(rcv, r"using\s+TLSv1\.3\b", "Received: using TLSv1.3")
    t.ok(cipher in rcv, "Received: names the cipher %s" % cipher, rcv)
    t.like(rcv, r"\bby moat\.test\b", "Received: by moat.test (the hostname)")

    # After TLS without a new EHLO: nothing from before the handshake is kept.
    c = TClient(port)
    c.cmd("EHLO stale-helo.example.test")
    c.starttls()
    mr = c.cmd("MAIL FROM:<noehlo@example.test>")
    if mr[0] == 250:
        c.cmd("RCPT TO:<bob@example.test>")
        if c.code("DATA") == 354:
            c.send("Subject: no ehlo after tls\r\n\r\nx\r\n.\r\n")
            c.reply_or(5)
    c.cmd("QUIT")
    c.close()
    sid2 = sid_of(m, c.lport)
    time.sleep(0.3)
    lg = m.log()
    t.ok(not re.search(r"sid=%s .*stale-helo" % re.escape(sid2 or "?"), lg),
         "no EHLO after TLS: the HELO given before TLS is nowhere in the session's "
         "log lines or upstream commands (MAIL got %d)" % mr[0],
         "\n".join(l for l in lg.splitlines() if sid2 and sid2 in l))

    # Pipelined EHLO + STARTTLS (STARTTLS last in the group: legal).
    c = TClient(port)
    c.send("EHLO pipe.example.test\r\nSTARTTLS\r\n")
    r1 = c.reply()
    r2 = c.reply()
    t.eq((r1[0], r2[0]), (250, 220), "EHLO+STARTTLS in one write: 250 then 220 "
         "(bytes before STARTTLS are no injection)")
    ok = False
    if r2[0] == 220:
        try:
            c.wrap(cctx(), MX)
            ok = c.code("EHLO pipe.example.test") == 250
        except (ssl.SSLError, OSError, EOFError, RuntimeError) as e:
            t.diag("pipelined STARTTLS: %s" % e)
    t.ok(ok, "... and the handshake and EHLO inside TLS succeed")
    c.close()

    # TLS 1.2 session: the Received field says so.
    r = tls_session(port, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2), subject="tls12 message")
    t.ok(r["ok"] and r["version"] == "TLSv1.2", "TLS 1.2 client: message accepted over TLSv1.2",
         r)
    rcv = "".join(received_fields(headers_of(find_msg(sink, "Subject: tls12 message"))))
    t.like(rcv, r"using\s+TLSv1\.2\b", "Received: using TLSv1.2 for a TLS 1.2 session")
    t.ok(cipher_in(rcv, r["cipher"]), "Received: names the TLS 1.2 cipher %s" % r["cipher"], rcv)
    sid3 = sid_of(m, r["lport"]) if r["lport"] else None
    t.like(log_line(m, "tx", sid3), r"TLSv1\.2", "tx log of the TLS 1.2 session: TLSv1.2")

    # Plaintext: no Received field by default (received_header = "tls").
    c = TClient(port)
    c.cmd("EHLO plain.example.test")
    c.cmd("MAIL FROM:<plain@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send("Subject: plaintext default\r\n\r\nplain\r\n.\r\n")
    t.eq(c.reply_or(5)[0], 250, "plaintext message accepted")
    c.cmd("QUIT")
    c.close()
    h = headers_of(find_msg(sink, "Subject: plaintext default"))
    t.eq(received_fields(h), [], "plaintext session: no moat Received field by default")
    sidp = sid_of(m, c.lport)
    t.ok(log_line(m, "tls", sidp, timeout=0.2) is None, "plaintext session: no event=tls line")

    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# 3. STARTTLS not offered; required; implicit; handshake timeout
# =====================================================================
def sec_listeners():
    sink = Sink()
    # No certificate at all.
    m = Moatd(sink.port, conf=BASE)
    c = Client(m.port)
    e = c.cmd("EHLO x.example.test")
    t.ok(e[0] == 250 and "STARTTLS" not in e[1], "no certificate: STARTTLS not advertised", e)
    t.eq(c.cmd("STARTTLS"), (502, "5.5.1 Error: command not implemented"),
         "no certificate: STARTTLS gets 502 5.5.1")
    t.eq(c.code("NOOP"), 250, "... the session goes on")
    c.close()
    m.stop()

    m, ports = start(sink.port, certs=("mx_rsa",),
                     extra="tls_handshake_timeout = 2s\n",
                     modes=("starttls", "off", "required", "implicit"))
    # off
    c = Client(ports["off"])
    e = c.cmd("EHLO x.example.test")
    t.ok(e[0] == 250 and "STARTTLS" not in e[1], 'tls = "off": STARTTLS not advertised', e)
    t.eq(c.cmd("STARTTLS"), (502, "5.5.1 Error: command not implemented"),
         'tls = "off": STARTTLS gets 502 5.5.1')
    c.close()

    # required
    c = TClient(ports["required"])
    e = c.cmd("EHLO req.example.test")
    t.ok(e[0] == 250 and "STARTTLS" in e[1].split("\n"),
         'tls = "required": STARTTLS advertised', e)
    t.eq(c.cmd("MAIL FROM:<req@example.test>"), (530, "5.7.0 Must issue a STARTTLS command first"),
         'tls = "required": MAIL before STARTTLS gets 530 5.7.0')
    c.close()
    r = tls_session(ports["required"], subject="required listener")
    t.ok(r["ok"], 'tls = "required": after STARTTLS and EHLO the message is accepted', r)
    t.ok(find_msg(sink, "Subject: required listener") is not None,
         "... and delivered to the upstream")
    t.ok("STARTTLS" not in (r.get("ehlo") or (0, ""))[1], "... second EHLO without STARTTLS", r)

    # implicit
    r = tls_session(ports["implicit"], mode="implicit", subject="implicit listener")
    t.eq((r.get("greeting") or (None,))[0], 220, "implicit TLS: 220 greeting inside TLS")
    t.ok(r["ok"], "implicit TLS: message accepted", r)
    t.eq(r["fp"], C.mx_rsa[2], "implicit TLS: the mx.example.test certificate")
    t.ok("STARTTLS" not in (r.get("ehlo") or (0, "STARTTLS"))[1],
         "implicit TLS: EHLO does not advertise STARTTLS", r.get("ehlo"))
    d = find_msg(sink, "Subject: implicit listener")
    t.ok(d is not None, "implicit TLS: delivered to the upstream")
    rcv = "".join(received_fields(headers_of(d)))
    t.like(rcv, r"using\s+TLSv1\.3", "implicit TLS: Received says using TLSv1.3")
    c = TClient(ports["implicit"], implicit=True)
    c.cmd("EHLO x.example.test")
    t.eq(c.cmd("STARTTLS"), (554, "5.5.1 Error: TLS already active"),
         "implicit TLS: STARTTLS gets 554 5.5.1 TLS already active")
    c.close()

    # Plaintext on the implicit listener: closed, logged, others served.
    c = TClient(ports["implicit"], greet=False, timeout=5)
    c.send("EHLO plain.example.test\r\n")
    data, closed = c.read_all(5)
    t.ok(closed, "implicit TLS, plaintext EHLO instead of a ClientHello: connection closed",
         data)
    t.ok(b"220 " not in data and b"250" not in data,
         "... no SMTP greeting or reply in plaintext", data)
    c.close()
    sid = sid_of(m, c.lport)
    t.ok(log_line(m, "tls-error", sid) is not None,
         "... logged as event=tls-error (sid %s)" % sid,
         "\n".join(l for l in m.log().splitlines() if sid and sid in l))
    r = tls_session(ports["implicit"], mode="implicit", subject="implicit after garbage")
    t.ok(r["ok"], "implicit TLS: the next client is served", r)

    # Silence on the implicit listener: dropped after tls_handshake_timeout.
    c = TClient(ports["implicit"], greet=False, timeout=10)
    t1 = time.monotonic()
    data, closed = c.read_all(8)
    el = time.monotonic() - t1
    t.ok(closed and 1.0 <= el <= 6.0,
         "implicit TLS, no ClientHello: dropped after tls_handshake_timeout = 2s "
         "(closed=%s after %.1fs)" % (closed, el), data)
    c.close()
    sid = sid_of(m, c.lport)
    t.ok(log_line(m, "tls-timeout", sid) is not None, "... logged as event=tls-timeout",
         "\n".join(l for l in m.log().splitlines() if sid and sid in l))

    # Silence after the 220 to STARTTLS: the same limit.
    c = TClient(ports["starttls"], timeout=10)
    c.cmd("EHLO quiet.example.test")
    r = c.cmd("STARTTLS")
    t1 = time.monotonic()
    data, closed = c.read_all(8)
    el = time.monotonic() - t1
    t.ok(r[0] == 220 and closed and 1.0 <= el <= 6.0,
         "STARTTLS then no ClientHello: dropped after tls_handshake_timeout "
         "(closed=%s after %.1fs)" % (closed, el), data)
    c.close()
    sid = sid_of(m, c.lport)
    t.ok(log_line(m, "tls-timeout", sid) is not None,
         "... logged as event=tls-timeout")

    # The starttls listener on the same moatd still works.
    r = tls_session(ports["starttls"], subject="starttls listener next to others")
    t.ok(r["ok"], "starttls listener next to the others: message accepted", r)
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# 4. STARTTLS command injection (CVE-2011-0411)
# =====================================================================
def client_hello(sni=MX):
    """The bytes of a real ClientHello (Python's ssl on memory BIOs)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = cctx(verify=False).wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def sec_injection():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa",))
    port = ports["starttls"]

    def injected(payload, name):
        """EHLO, then payload in one send(); returns (first reply, client)."""
        c = TClient(port, timeout=5)
        c.cmd("EHLO inj.example.test")
        c.send(payload)
        return c.reply_or(5), c

    def no_upstream(marker, name):
        t.ok(not re.search(r"upstream-send sid=\S+ line=\"[^\"]*%s" % re.escape(marker),
                           m.log()),
             "%s: the injected command never reached the upstream" % name)

    for payload, name in ((b"STARTTLS\r\nRSET\r\n", "STARTTLS+RSET"),
                          (b"STARTTLS\r\nMAIL FROM:<inj1@example.test>\r\n",
                           "STARTTLS+MAIL")):
        name = "close mode, " + name + " in one write"
        r, c = injected(payload, name)
        t.eq(r[0], 421, "%s: 421 (no 220)" % name)
        t.like(r[1], r"^4\.7\.0\b", "%s: 4.7.0" % name)
        data, closed = c.read_all(3)
        t.ok(closed, "%s: connection closed" % name, data)
        t.eq(data, b"", "%s: no reply for the injected command" % name)
        c.close()
        sid = sid_of(m, c.lport)
        t.ok(log_line(m, "starttls-injection", sid) is not None,
             "%s: event=starttls-injection logged" % name)
    no_upstream("inj1@", "close mode")

    # The injected bytes in a separate segment, before the 220 is read
    # (right away, and 50 ms later: moatd may or may not have them yet).
    for delay in (0, 0.05):
        name = "injection in a second segment (%d ms later)" % (delay * 1000)
        c = TClient(port, timeout=5)
        c.cmd("EHLO seg.example.test")
        c.send("STARTTLS\r\n")
        if delay:
            time.sleep(delay)
        c.send("MAIL FROM:<inj2@example.test>\r\n")
        data, closed = c.read_all(4)
        lines = data.split(b"\r\n")
        t.ok(not any(l.startswith(b"250") for l in lines),
             "%s: no 250 for the injected MAIL" % name, data)
        t.ok(closed, "%s: handshake failed or 421: connection closed (first reply %r)"
             % (name, lines[0] if lines else b""), data)
        c.close()
    no_upstream("inj2@", "second segment")

    # A ClientHello sent together with STARTTLS.
    c = TClient(port, timeout=5)
    c.cmd("EHLO hello.example.test")
    c.send(b"STARTTLS\r\n" + client_hello())
    r = c.reply_or(5)
    t.eq(r[0], 421, "close mode, STARTTLS+ClientHello in one write: 421, no 220")
    data, closed = c.read_all(3)
    t.ok(closed and data == b"", "... closed, no TLS answer (ServerHello)", data)
    c.close()
    sid = sid_of(m, c.lport)
    t.ok(log_line(m, "starttls-injection", sid) is not None,
         "... event=starttls-injection logged")
    t.ok(m.alive(), "moatd alive (close mode)")
    m.stop()

    # refuse
    m, ports = start(sink.port, certs=("mx_rsa",), extra='starttls_injection = "refuse"\n')
    port = ports["starttls"]
    r, c = injected(b"STARTTLS\r\nHELP\r\n", "refuse")
    t.eq(r[0], 554, "refuse mode, STARTTLS+HELP in one write: 554")
    t.like(r[1], r"^5\.5\.1\b", "refuse mode: 5.5.1")
    n = c.cmd("NOOP")
    t.eq(n[0], 250, "refuse mode: session goes on in plaintext (NOOP 250, not the HELP's 214)")
    t.eq(c.pending(0.5), b"", "refuse mode: the injected HELP got no reply")
    c.close()
    sid = sid_of(m, c.lport)
    t.ok(log_line(m, "starttls-injection", sid) is not None,
         "refuse mode: event=starttls-injection logged")

    r, c = injected(b"STARTTLS\r\nMAIL FROM:<inj3@example.test>\r\n", "refuse")
    t.eq(r[0], 554, "refuse mode, STARTTLS+MAIL in one write: 554")
    t.eq(c.code("MAIL FROM:<real@example.test>"), 250,
         "refuse mode: the injected MAIL was dropped (a new MAIL gets 250, not 503)")
    t.eq(c.pending(0.3), b"", "refuse mode: no reply for the injected MAIL")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send("Subject: after refused injection\r\n\r\nx\r\n.\r\n")
    t.eq(c.reply_or(5)[0], 250, "refuse mode: plaintext message accepted afterwards")
    c.cmd("QUIT")
    c.close()
    sid = sid_of(m, c.lport)
    tx = log_line(m, "tx", sid)
    t.like(tx, r'from="real@example\.test"', "refuse mode: the tx is the real MAIL's")
    no_upstream("inj3@", "refuse mode")
    rcv = received_fields(headers_of(find_msg(sink, "Subject: after refused injection")))
    t.eq(rcv, [], "refuse mode: the message was plaintext (no TLS Received field)")

    c = TClient(port, timeout=5)
    c.cmd("EHLO hello.example.test")
    c.send(b"STARTTLS\r\n" + client_hello())
    r = c.reply_or(5)
    t.eq(r[0], 554, "refuse mode, STARTTLS+ClientHello in one write: 554")
    t.eq(c.code("NOOP"), 250, "... the ClientHello bytes dropped, plaintext NOOP 250")
    c.close()
    t.ok(m.alive(), "moatd alive (refuse mode)")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# 5. Versions, ciphers, suites, groups
# =====================================================================
def sec_versions():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa",))
    port = ports["starttls"]

    # TLS 1.1 client against the default floor (TLS 1.2).
    try:
        ctx11 = cctx(minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1_1,
                     ciphers="DEFAULT:@SECLEVEL=0")
        hello = b""
        try:
            hello = client_hello_ctx(ctx11)
        except ssl.SSLError:
            pass
    except (ssl.SSLError, ValueError) as e:
        ctx11, hello = None, b""
        t.diag("TLS 1.1 client context: %s" % e)
    if ctx11 is None or len(hello) < 10:
        t.skip("TLS 1.1 client refused by the default TLSv1.2 floor",
               "this Python/OpenSSL cannot make a TLS 1.1 client")
    else:
        r = handshake(port, ctx=ctx11)
        t.ok(r["version"] is None and r["error"] is not None
             and "NO_PROTOCOLS_AVAILABLE" not in r["error"],
             "TLS 1.1 client: handshake refused by moatd (tls_min_version TLSv1.2 default)", r)
    r = handshake(port, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2))
    t.eq(r["version"], "TLSv1.2", "TLS 1.2 client: accepted by default")
    m.stop()

    m, ports = start(sink.port, certs=("mx_rsa",), extra='tls_min_version = "TLSv1.3"\n')
    port = ports["starttls"]
    r = handshake(port, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2))
    t.ok(r["version"] is None and r["error"] is not None,
         'tls_min_version = "TLSv1.3": a TLS 1.2-only client fails', r)
    r = tls_session(port, subject="tls13 only")
    t.ok(r["ok"] and r["version"] == "TLSv1.3", 'tls_min_version = "TLSv1.3": TLS 1.3 works', r)
    t.ok(m.alive(), "moatd alive after failed handshakes")
    m.stop()

    m, ports = start(sink.port, certs=("mx_rsa",),
                     extra='tls_ciphers = "ECDHE-RSA-AES128-GCM-SHA256"\n'
                           'tls_ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"\n'
                           'tls_groups = "P-256"\n')
    port = ports["starttls"]
    r = handshake(port, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2,
                                 ciphers="ECDHE-RSA-AES256-GCM-SHA384"))
    t.ok(r["version"] is None, "tls_ciphers: a TLS 1.2 client without the cipher fails", r)
    r = handshake(port, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2,
                                 ciphers="ECDHE-RSA-AES256-GCM-SHA384:"
                                         "ECDHE-RSA-AES128-GCM-SHA256"))
    t.eq(r["cipher"], "ECDHE-RSA-AES128-GCM-SHA256",
         "tls_ciphers: a TLS 1.2 client offering it gets ECDHE-RSA-AES128-GCM-SHA256")
    r = handshake(port)
    t.eq(r["cipher"], "TLS_CHACHA20_POLY1305_SHA256",
         "tls_ciphersuites: TLS 1.3 gets TLS_CHACHA20_POLY1305_SHA256")
    rc, out = s_client(["-connect", "127.0.0.1:%d" % port, "-starttls", "smtp",
                        "-servername", MX, "-groups", "X25519"], lines=())
    t.ok("CONNECTED" in out and "Cipher is (NONE)" in out
         and not re.search(r"(?m)^\s*Protocol\s*:\s*TLSv", out),
         'tls_groups = "P-256": an X25519-only client fails', out[-1500:])
    rc, out = s_client(["-connect", "127.0.0.1:%d" % port, "-starttls", "smtp",
                        "-servername", MX, "-groups", "X25519:P-256"], lines=())
    t.like(out, r"(Server|Peer) Temp Key: ECDH, (prime256v1|P-256)",
           'tls_groups = "P-256": a client offering X25519:P-256 gets P-256')
    t.ok(m.alive(), "moatd alive")
    m.stop()
    sink.stop()


def client_hello_ctx(ctx):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=MX)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# =====================================================================
# 6. SNI, RSA and ECDSA side by side
# =====================================================================
def sec_sni():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa", "mx_ec", "other", "wild", "cnonly"),
                     modes=("starttls", "implicit"))
    port = ports["starttls"]
    mx_both = (C.mx_rsa[2], C.mx_ec[2])

    r = handshake(port, sni=None)
    t.ok(r["fp"] in mx_both, "no SNI: a mx.example.test certificate (the first section)", r)
    r = handshake(port, sni=MX, ctx=cctx(hostname=True))
    t.ok(r["fp"] in mx_both, "SNI mx.example.test: its certificate (name verified)", r)
    r = handshake(port, sni=OTHER, ctx=cctx(hostname=True))
    t.eq(r["fp"], C.other[2], "SNI other.example.test: the other.example.test certificate "
         "(name verified)")
    r = handshake(port, sni="unknown.example.test")
    t.ok(r["fp"] in mx_both, "SNI unknown.example.test: the default (mx) certificate", r)
    r = handshake(port, sni="a.wild.example.test", ctx=cctx(hostname=True))
    t.eq(r["fp"], C.wild[2], "SNI a.wild.example.test: the *.wild.example.test certificate")
    r = handshake(port, sni="a.b.wild.example.test")
    t.ok(r["fp"] in mx_both, "SNI a.b.wild.example.test (two labels): default certificate", r)
    r = handshake(port, sni="wild.example.test")
    t.ok(r["fp"] in mx_both, "SNI wild.example.test (no label): default certificate", r)
    r = handshake(port, sni="cn.example.test", ctx=cctx(hostname=True))
    t.eq(r["fp"], C.cnonly[2], "SNI cn.example.test: the certificate without SAN, by its CN")
    r = handshake(ports["implicit"], mode="implicit", sni=OTHER)
    t.eq(r["fp"], C.other[2], "implicit TLS, SNI other.example.test: the other certificate")

    ecdsa = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
            "ECDHE-ECDSA-CHACHA20-POLY1305"
    rsa = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
    for sni in (MX, None):
        r = handshake(port, sni=sni, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2, ciphers=ecdsa))
        t.eq(r["fp"], C.mx_ec[2], "TLS 1.2, ECDHE-ECDSA ciphers only (SNI %s): the ECDSA "
             "certificate (key in the certificate file)" % sni)
        r = handshake(port, sni=sni, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2, ciphers=rsa))
        t.eq(r["fp"], C.mx_rsa[2], "TLS 1.2, ECDHE-RSA ciphers only (SNI %s): the RSA "
             "certificate" % sni)
    r = handshake(port, sni=OTHER, ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2, ciphers=ecdsa))
    t.ok(r["version"] is None, "SNI other.example.test (RSA only), ECDSA ciphers only: "
         "no handshake", r)

    base = ["-connect", "127.0.0.1:%d" % port, "-starttls", "smtp", "-servername", MX,
            "-tls1_3", "-CAfile", C.ca]
    rc, out = s_client(base + ["-sigalgs", "ecdsa_secp256r1_sha256"], lines=())
    t.like(out, r"Server public key is 256 bit",
           "openssl s_client TLS 1.3, ECDSA signature algorithms: the ECDSA certificate")
    rc, out = s_client(base + ["-sigalgs", "rsa_pss_rsae_sha256"], lines=())
    t.like(out, r"Server public key is 2048 bit",
           "openssl s_client TLS 1.3, RSA-PSS signature algorithms: the RSA certificate")

    r = tls_session(port, sni=OTHER, ctx=cctx(hostname=True), subject="sni other message")
    t.ok(r["ok"], "a message over TLS with SNI other.example.test", r)
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")

    # The default is the first section, whichever it is.
    m, ports = start(sink.port, certs=("other", "mx_rsa"))
    port = ports["starttls"]
    r = handshake(port, sni=None)
    t.eq(r["fp"], C.other[2], "other.example.test section first: the default without SNI")
    r = handshake(port, sni="unknown.example.test")
    t.eq(r["fp"], C.other[2], "... and for an unknown name")
    r = handshake(port, sni=MX, ctx=cctx(hostname=True))
    t.eq(r["fp"], C.mx_rsa[2], "... SNI mx.example.test still gets the mx certificate")
    m.stop()
    sink.stop()


# =====================================================================
# 7. Session resumption
# =====================================================================
def sec_resumption():
    sink = Sink()
    for tickets in ("true", "false"):
        m, ports = start(sink.port, certs=("mx_rsa",),
                         extra="tls_session_tickets = %s\n" % tickets)
        port = ports["starttls"]
        for ver in ((ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2) if tickets == "true"
                    else (ssl.TLSVersion.TLSv1_3,)):
            ctx = cctx(maxv=ver)
            r1 = tls_session(port, ctx=ctx, subject="resume first %s %s" % (tickets, ver.name))
            r2 = tls_session(port, ctx=ctx, session=r1["session"],
                             subject="resume second %s %s" % (tickets, ver.name))
            t.ok(r1["ok"] and r2["ok"], "tickets=%s %s: both messages accepted"
                 % (tickets, ver.name), (r1, r2))
            t.eq(r1["reused"], False, "tickets=%s %s: first session is new" % (tickets, ver.name))
            t.eq(r2["reused"], tickets == "true",
                 "tickets=%s %s: second session %s" % (
                     tickets, ver.name, "resumed" if tickets == "true" else "not resumed"))
        sess = os.path.join(WORK, "sess-%s.pem" % tickets)
        base = ["-connect", "127.0.0.1:%d" % port, "-starttls", "smtp", "-servername", MX,
                "-CAfile", C.ca]
        rc, out1 = s_client(base + ["-sess_out", sess])
        rc, out2 = s_client(base + ["-sess_in", sess]) if os.path.exists(sess) else (None, "")
        if tickets == "true":
            t.like(out2, r"(?m)^Reused, TLSv1\.3",
                   "openssl s_client -sess_out/-sess_in: session reused")
        else:
            t.ok(re.search(r"(?m)^New, TLSv1\.3", out1) and (
                not os.path.exists(sess) or (re.search(r"(?m)^New, TLSv1\.3", out2)
                                             and not re.search(r"(?m)^Reused,", out2))),
                 "tickets=false: openssl s_client gets no ticket (-sess_out wrote %s) or "
                 "-sess_in is not resumed" % ("a session" if os.path.exists(sess) else "none"),
                 out1[-800:] + "\n----\n" + out2[-800:])
        t.ok(m.alive(), "moatd alive (tickets=%s)" % tickets)
        m.stop()
    sink.stop()


# =====================================================================
# 8. Client certificates
# =====================================================================
def sec_client_cert():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa",), extra="tls_ask_client_certificate = true\n")
    port = ports["starttls"]

    def fp_in(line, fp):
        return line is not None and fp in line.replace(":", "").lower()

    for cert, name, cn in ((C.client, "CA-signed", "client.example.test"),
                           (C.selfclient, "self-signed", "selfsigned.client.test")):
        r = tls_session(port, ctx=cctx(cert=cert), subject="client cert %s" % name)
        t.ok(r["ok"], "ask for a client certificate, %s one presented: message accepted" % name,
             r)
        sid = sid_of(m, r["lport"]) if r["lport"] else None
        tx = log_line(m, "tx", sid)
        t.ok(fp_in(tx, cert[2]), "%s client certificate: tx log has its SHA-256 fingerprint"
             % name, "%s\nwant %s" % (tx, cert[2]))
        t.like(tx, r"CN\s*=\s*%s" % re.escape(cn),
               "%s client certificate: tx log has its subject (CN=%s)" % (name, cn))
    r = tls_session(port, subject="no client cert")
    t.ok(r["ok"], "ask for a client certificate, none presented: message accepted (not required)",
         r)
    m.stop()

    m, ports = start(sink.port, certs=("mx_rsa",))
    r = tls_session(ports["starttls"], ctx=cctx(cert=C.client), subject="client cert not asked")
    sid = sid_of(m, r["lport"]) if r["lport"] else None
    tx = log_line(m, "tx", sid)
    t.ok(r["ok"] and tx is not None and not fp_in(tx, C.client[2]),
         "tls_ask_client_certificate = false: no client certificate in the tx log", (r, tx))
    m.stop()
    sink.stop()


# =====================================================================
# 9. received_header modes; the exact bytes of the field
# =====================================================================
RFC5322_DATE = (r";\s*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?\d{1,2}\s+"
                r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{4}\s+"
                r"\d\d:\d\d(?::\d\d)?\s+[+-]\d{4}")


def field_problems(raw):
    """Syntax problems of one raw header field (bytes, CRLF ends)."""
    bad = []
    if not raw.endswith(b"\r\n"):
        bad.append("does not end with CRLF")
    body = raw[:-2] if raw.endswith(b"\r\n") else raw
    lines = body.split(b"\r\n")
    for i, ln in enumerate(lines):
        if b"\r" in ln or b"\n" in ln:
            bad.append("bare CR or LF in line %d" % i)
        if b"\x00" in ln:
            bad.append("NUL in line %d" % i)
        if len(ln) > 998:
            bad.append("line %d longer than 998" % i)
        if i > 0 and not ln[:1] in (b" ", b"\t"):
            bad.append("folded line %d does not start with whitespace" % i)
        if i > 0 and not ln.strip():
            bad.append("whitespace-only folded line %d" % i)
        if any(ch > 126 or (ch < 32 and ch != 9) for ch in ln):
            bad.append("control or 8-bit byte in line %d" % i)
    if not re.match(rb"Received: \S", lines[0]):
        bad.append("first line is not 'Received: ...'")
    bad += comment_problems(re.sub(rb"\r\n(?=[ \t])", b"", raw).decode("latin-1"))
    return bad


def comment_problems(value):
    """RFC 5322 comments and quoted strings properly nested and closed."""
    depth, inq, i, bad = 0, False, 0, []
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if inq:
            if ch == '"':
                inq = False
        elif ch == '"' and depth == 0:
            inq = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                bad.append("unbalanced ')' at offset %d" % i)
                depth = 0
        i += 1
    if depth:
        bad.append("%d unclosed comment(s)" % depth)
    if inq:
        bad.append("unclosed quoted string")
    return bad


def first_field(msg):
    """The first header field of a message (raw bytes, CRLF included)."""
    m = re.match(rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", msg)
    return m.group(0) if m else b""


def sec_received():
    rec = Recorder()
    m, ports = start(rec.port, certs=("mx_rsa",))
    port = ports["starttls"]
    body = "From: <rec@example.test>\r\nSubject: exact bytes\r\n\r\nbody\r\n"
    for ver in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        n0 = len(rec.messages)
        r = tls_session(port, ctx=cctx(maxv=ver), body=body)
        msgs = rec.wait_messages(n0 + 1)
        t.ok(r["ok"] and len(msgs) > n0, "%s message through the recording upstream" % ver.name, r)
        if len(msgs) <= n0:
            continue
        raw = msgs[n0]
        fld = first_field(raw)
        t.ok(fld.startswith(b"Received:"), "%s: the first field is moat's Received" % ver.name,
             raw[:400])
        t.eq(field_problems(fld), [], "%s: the Received field is syntactically valid "
             "(CRLF ends, folded lines start with whitespace, no bare CR/LF)" % ver.name)
        unf = re.sub(rb"\r\n(?=[ \t])", b"", fld).decode("latin-1")
        t.like(unf, RFC5322_DATE, "%s: the Received field ends with '; date-time'" % ver.name)
        t.like(unf, r"with ESMTPS\b", "%s: Received with ESMTPS" % ver.name)
        t.like(unf, r"using\s+%s\b" % re.escape(r["version"] or "?"),
               "%s: Received using %s" % (ver.name, r["version"]))
        t.ok(cipher_in(unf, r["cipher"]), "%s: Received names the cipher %s"
             % (ver.name, r["cipher"]), unf)
        t.ok(raw[len(fld):].startswith(body.encode()),
             "%s: the message follows the Received field unchanged" % ver.name, raw[:600])
    m.stop()

    # A client certificate subject with CR LF, parentheses, quotes.
    m, ports = start(rec.port, certs=("mx_rsa",), extra="tls_ask_client_certificate = true\n")
    n0 = len(rec.messages)
    r = tls_session(ports["starttls"], ctx=cctx(cert=C.evilclient), body=body)
    msgs = rec.wait_messages(n0 + 1)
    t.ok(r["ok"] and len(msgs) > n0, "hostile client certificate subject: message accepted", r)
    raw = msgs[n0] if len(msgs) > n0 else b""
    fld = first_field(raw)
    t.ok(fld.startswith(b"Received:"), "hostile subject: the first field is moat's Received",
         raw[:600])
    t.eq(field_problems(fld), [], "hostile subject: the Received field is still valid "
         "(no bare CR/LF, comments balanced)")
    hdr = raw.split(b"\r\n\r\n", 1)[0]
    t.ok(not re.search(rb"(?mi)^X-Injected", hdr),
         "hostile subject: no header field injected by the certificate subject", hdr[:800])
    t.ok(C.evilclient[2].encode() in fld.replace(b":", b"").lower() or
         C.evilclient[2].encode() in fld.lower(),
         "hostile subject: the Received field still has the fingerprint", fld)
    sid = sid_of(m, r["lport"]) if r["lport"] else None
    log_line(m, "tx", sid)
    bad = [l for l in m.log().splitlines()
           if not re.match(r"\d{4}-\d\d-\d\dT", l)]
    t.eq(bad, [], "hostile subject: every moatd log line is whole (CR/LF escaped)")
    m.stop()

    # "always": a plaintext message gets one too.
    m, ports = start(rec.port, certs=("mx_rsa",), extra='received_header = "always"\n')
    n0 = len(rec.messages)
    c = Client(ports["starttls"])
    c.cmd("EHLO plain.example.test")
    c.cmd("MAIL FROM:<plain@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(body + ".\r\n")
    c.reply_or(5)
    c.cmd("QUIT")
    c.close()
    msgs = rec.wait_messages(n0 + 1)
    raw = msgs[n0] if len(msgs) > n0 else b""
    fld = first_field(raw)
    unf = re.sub(rb"\r\n(?=[ \t])", b"", fld).decode("latin-1")
    t.ok(fld.startswith(b"Received:"), 'received_header = "always": plaintext message gets '
         "a Received field", raw[:400])
    t.like(unf, r"with ESMTP(?!S)\b", '... with ESMTP (not ESMTPS)')
    t.ok("TLSv" not in unf, "... and no TLS facts", unf)
    t.eq(field_problems(fld) if fld else ["none"], [], "... syntactically valid")
    r = tls_session(ports["starttls"], body=body)
    msgs = rec.wait_messages(n0 + 2)
    raw = msgs[n0 + 1] if len(msgs) > n0 + 1 else b""
    t.like(raw[:2000].decode("latin-1"), r"^Received:[^\r\n]*(\r\n[ \t][^\r\n]*)*",
           '"always": TLS message gets a Received field too')
    m.stop()

    # "never": a TLS message gets none.
    m, ports = start(rec.port, certs=("mx_rsa",), extra='received_header = "never"\n')
    n0 = len(rec.messages)
    r = tls_session(ports["starttls"], body=body)
    msgs = rec.wait_messages(n0 + 1)
    t.ok(r["ok"] and len(msgs) > n0, '"never": TLS message accepted', r)
    raw = msgs[n0] if len(msgs) > n0 else b""
    t.eq(raw[:len(body)], body.encode(), 'received_header = "never": TLS message unchanged, '
         'no Received field')
    m.stop()
    rec.stop()


# =====================================================================
# 10. SIGHUP reloads the certificates
# =====================================================================
def sec_reload():
    sink = Sink()
    d = os.path.join(WORK, "reload")
    os.makedirs(d, exist_ok=True)
    cert = write(os.path.join(d, "cert.pem"), read(C.mx_rsa[0]))
    key = write(os.path.join(d, "key.pem"), read(C.mx_rsa[1]))
    port = free_port()
    conf = BASE + ('tls_certificate "mx" {\n    certificate = "%s"\n    key = "%s"\n}\n'
                   % (cert, key)) + listen_line(port, "starttls")
    m = Moatd(sink.port, conf=conf, listen=port)

    r = handshake(port)
    t.eq(r["fp"], C.mx_rsa[2], "before reload: the first certificate")
    old = TClient(port)
    old.cmd("EHLO old.example.test")
    old.starttls()
    t.eq(old.fp(), C.mx_rsa[2], "a TLS session opened before the reload")
    t.eq(old.code("EHLO old.example.test"), 250, "... EHLO inside TLS")
    t.eq(old.code("MAIL FROM:<old@example.test>"), 250, "... MAIL")

    write(cert, read(C.mx2[0]))
    write(key, read(C.mx2[1]))
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"event=reloaded generation=2") is not None, "SIGHUP: event=reloaded")
    r = handshake(port)
    t.eq(r["fp"], C.mx2[2], "after reload: new connections get the new certificate")
    t.ok(r["fp"] != C.mx_rsa[2], "... (not the old one)")

    t.eq(old.code("RCPT TO:<bob@example.test>"), 250, "old TLS session continues after reload")
    t.eq(old.code("DATA"), 354, "... DATA")
    old.send("Subject: old tls session\r\n\r\nx\r\n.\r\n")
    t.eq(old.reply_or(10)[0], 250, "... and its message is accepted")
    old.cmd("QUIT")
    old.close()
    t.ok(find_msg(sink, "Subject: old tls session") is not None, "... and delivered")

    write(cert, "this is not a certificate\n")
    os.kill(m.proc.pid, signal.SIGHUP)
    t.ok(m.wait_log(r"event=reload-failed") is not None,
         "garbage certificate file: event=reload-failed")
    errs = [l for l in m.log().splitlines()
            if "event=config-error" in l or "event=reload-failed" in l]
    t.ok(any(cert in l for l in errs),
         "... the log names the certificate problem (the file)", "\n".join(errs[-5:]))
    t.ok(m.alive(), "... moatd keeps running")
    r = tls_session(port, subject="after failed reload")
    t.eq(r["fp"], C.mx2[2], "... new connections still get the last good certificate")
    t.ok(r["ok"], "... and deliver")
    t.eq(m.stop(), 0, "moatd exits 0 after reloads")
    sink.stop()


# =====================================================================
# 11. A large message and concurrent sessions
# =====================================================================
def sec_load():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa", "mx_ec"), modes=("starttls", "implicit"))
    port = ports["starttls"]
    lines = []
    i = 0
    size = 0
    while size < 2 * 1024 * 1024:
        ln = "%08d %s" % (i, hashlib.sha256(str(i).encode()).hexdigest()[:60])
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    content = "\r\n".join(lines) + "\r\n"
    want = hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()
    body = "From: <big@example.test>\r\nSubject: big over tls\r\n\r\n" + content
    t1 = time.monotonic()
    r = tls_session(port, sender="big@example.test", body=body)
    t.ok(r["ok"], "2 MB message over TLS accepted (%.1fs)" % (time.monotonic() - t1), r)
    d = find_msg(sink, "Subject: big over tls", timeout=10)
    got = None
    if d:
        b = d.split("\n\n", 1)[1]
        got = hashlib.sha256(b[:-1].encode("latin-1")).hexdigest()
    t.eq(got, want, "... it arrives intact (SHA-256 of the body)")

    n0 = sink.count()
    results = [None] * 20

    def worker(k):
        mode = "implicit" if k % 4 == 3 else "starttls"
        results[k] = tls_session(ports[mode], mode=mode, sender="conc%d@example.test" % k,
                                 subject="concurrent %d" % k,
                                 ctx=cctx(maxv=ssl.TLSVersion.TLSv1_2) if k % 5 == 0 else None)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    t1 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    okn = sum(1 for r in results if r and r["ok"])
    t.eq(okn, 20, "20 concurrent TLS sessions (STARTTLS and implicit, 1.2 and 1.3) each "
         "deliver a message (%.1fs)" % (time.monotonic() - t1))
    if okn != 20:
        t.diag([r for r in results if not (r and r["ok"])][:3])
    t.eq(sink.wait_count(n0 + 20, 10) - n0, 20, "... the sink has all 20")
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# 12. The real tools
# =====================================================================
def sec_tools():
    sink = Sink()
    m, ports = start(sink.port, certs=("mx_rsa", "mx_ec", "other"),
                     modes=("starttls", "implicit"))
    sp, ip = ports["starttls"], ports["implicit"]

    rc, out = run(["swaks", "--server", "127.0.0.1", "--port", str(sp), "--tls",
                   "--tls-verify", "--tls-ca-path", C.ca, "--tls-sni", MX,
                   "--helo", "swaks.example.test", "--from", "swaks@example.test",
                   "--to", "bob@example.test", "--header", "Subject: swaks starttls"],
                  timeout=30)
    t.eq(rc, 0, "swaks --tls (STARTTLS, verified) delivers: exit 0")
    if rc != 0:
        t.diag(out[-1500:])
    t.like(out, r"TLS started with cipher TLSv1\.[23]", "swaks: TLS started")
    t.ok(find_msg(sink, "Subject: swaks starttls") is not None, "swaks STARTTLS message at the sink")

    rc, out = run(["swaks", "--server", "127.0.0.1", "--port", str(ip), "--tlsc",
                   "--tls-verify", "--tls-ca-path", C.ca, "--tls-sni", MX,
                   "--helo", "swaks.example.test", "--from", "swaks@example.test",
                   "--to", "bob@example.test", "--header", "Subject: swaks implicit"],
                  timeout=30)
    t.eq(rc, 0, "swaks --tlsc (implicit TLS) delivers: exit 0")
    if rc != 0:
        t.diag(out[-1500:])
    t.ok(find_msg(sink, "Subject: swaks implicit") is not None, "swaks implicit message at the sink")

    rc, out = s_client(["-connect", "127.0.0.1:%d" % sp, "-starttls", "smtp",
                        "-servername", MX, "-CAfile", C.ca, "-verify_hostname", MX])
    t.like(out, r"Verify return code: 0 \(ok\)",
           "openssl s_client -starttls smtp: handshake completes, verified")
    t.like(out, r"(?m)^\s*Protocol\s*:\s*TLSv1\.3", "openssl s_client -starttls smtp: TLSv1.3")
    t.like(out, r"(?m)^250[ -]", "openssl s_client -starttls smtp: EHLO inside TLS answered")
    t.like(out, r"(?m)^221 ", "openssl s_client -starttls smtp: QUIT answered")

    rc, out = s_client(["-connect", "127.0.0.1:%d" % ip, "-servername", OTHER,
                        "-CAfile", C.ca, "-verify_hostname", OTHER])
    t.like(out, r"Verify return code: 0 \(ok\)",
           "openssl s_client (implicit TLS, SNI other.example.test): verified")
    t.like(out, r"(?m)^220 ", "openssl s_client implicit: the 220 greeting inside TLS")
    t.like(out, r"subject=.*CN\s*=\s*other\.example\.test",
           "openssl s_client implicit: the other.example.test certificate")

    # posttls-finger reads main.cf: an empty one of our own.
    pfconf = os.path.join(WORK, "postfix-conf")
    os.makedirs(pfconf, exist_ok=True)
    write(os.path.join(pfconf, "main.cf"), "")
    env = dict(os.environ, MAIL_CONFIG=pfconf)
    rc, out = run(["posttls-finger", "-l", "secure", "-F", C.ca, "-s", MX,
                   "-t", "10", "-T", "10", "[127.0.0.1]:%d" % sp, MX], timeout=40, env=env)
    t.like(out, r"(?m)STARTTLS", "posttls-finger: STARTTLS offered in the EHLO reply")
    t.like(out, r"(Verified|Trusted|Untrusted|Anonymous) TLS connection established",
           "posttls-finger (STARTTLS): TLS connection established")
    t.like(out, r"Verified TLS connection established",
           "posttls-finger -l secure -F ca.pem: Verified (chain and name)")
    rc, out = run(["posttls-finger", "-c", "-w", "-l", "secure", "-F", C.ca, "-s", OTHER,
                   "-t", "10", "-T", "10", "[127.0.0.1]:%d" % ip, OTHER], timeout=40, env=env)
    t.like(out, r"Verified TLS connection established",
           "posttls-finger -w (implicit TLS, SNI other.example.test): Verified")
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# PROXY protocol in front of implicit TLS: moat reads exactly the header;
# the ClientHello right behind it (same segment) is OpenSSL's.

def pp_v2(src, sport, dst="127.0.0.1", dport=465):
    import struct
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


class PumpTLS:
    """TLS over memory BIOs on a raw socket, so that the first bytes on
    the wire (a PROXY header and the ClientHello) go in one send()."""

    def __init__(self, port, prefix, split=None):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lport = self.s.getsockname()[1]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = cctx().wrap_bio(self.inc, self.out, server_hostname=MX)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = self.out.read()
        if split is None:
            self.s.sendall(prefix + hello)
        else:       # the header in two pieces, then the ClientHello
            self.s.sendall(prefix[:split])
            time.sleep(0.2)
            self.s.sendall(prefix[split:])
            time.sleep(0.2)
            self.s.sendall(hello)
        self.buf = b""

    def _pump(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("closed")
        self.inc.write(d)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.s.sendall(self.out.read())
                return True
            except ssl.SSLWantReadError:
                self.s.sendall(self.out.read())
                self._pump()

    def line(self):
        while b"\r\n" not in self.buf:
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode()

    def cmd(self, text):
        self.obj.write(text.encode() + b"\r\n")
        self.s.sendall(self.out.read())
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def close(self):
        self.s.close()


def sec_proxy_implicit():
    sink = Sink()
    port = free_port()
    m, _ = start(sink.port, extra='listen "127.0.0.1:%d" { tls = "implicit" '
                 'proxy_protocol = "any" proxy_trusted = { "127.0.0.0/8" } }\n' % port,
                 modes=("starttls",))
    cases = (
        ("v1 header and ClientHello in one segment",
         b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 465\r\n", None, "192.0.2.7"),
        ("v2 header and ClientHello in one segment", pp_v2("192.0.2.8", 40002), None,
         "192.0.2.8"),
        ("v1 header split in two writes", b"PROXY TCP4 192.0.2.9 127.0.0.1 40003 465\r\n",
         9, "192.0.2.9"),
        ("v2 header split inside its address block", pp_v2("192.0.2.10", 40004), 20,
         "192.0.2.10"),
    )
    for name, prefix, split, client in cases:
        try:
            c = PumpTLS(port, prefix, split)
            c.handshake()
            g = c.line()
            t.like(g, r"^220 ", "%s: handshake, then the greeting" % name)
            e = c.cmd("EHLO client.example.test")
            t.like(e[-1], r"^250 ", "%s: EHLO inside TLS" % name)
            r = [c.cmd("MAIL FROM:<pp@example.test>")[-1], c.cmd("RCPT TO:<bob@example.test>")[-1],
                 c.cmd("DATA")[-1]]
            c.obj.write(("Subject: %s\r\n\r\nbody\r\n.\r\n" % name).encode())
            c.s.sendall(c.out.read())
            r.append(c.line())
            t.ok([x[:3] for x in r] == ["250", "250", "354", "250"], "%s: message accepted" % name, r)
            c.close()
        except (OSError, EOFError, ssl.SSLError) as ex:
            t.ok(False, "%s: %s" % (name, ex))
            continue
        t.ok(m.wait_log(r"event=proxy sid=\S+ via=127\.0\.0\.1 client=%s " % re.escape(client)),
             "%s: the real client from the header" % name)
        t.ok(m.wait_log(r"event=tx .*client=%s .*verdict=accept" % re.escape(client)),
             "%s: the transaction names it" % name)
    # A bad header in front of a ClientHello: closed, logged.
    try:
        c = PumpTLS(port, b"PROXY TCP4 nonsense\r\n")
        try:
            c.handshake()
            ok = False
        except (EOFError, OSError, ssl.SSLError):
            ok = True
        t.ok(ok, "bad PROXY header before the ClientHello: no handshake")
        c.close()
    except OSError as ex:
        t.ok(True, "bad PROXY header: refused (%s)" % ex)
    t.ok(m.wait_log(r"event=proxy-protocol-error"), "... logged as proxy-protocol-error")
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


# =====================================================================
# Bad TLS input costs bounded time, gets a log line, spares the others.

def sec_bad_records():
    sink = Sink()
    port = free_port()
    m, _ = start(sink.port, extra="tls_handshake_timeout = 2s\ncommand_timeout = 2s\n"
                 'listen "127.0.0.1:%d" { tls = "implicit" }\n' % port, modes=("starttls",))

    def established():
        c = PumpTLS(port, b"")
        c.handshake()
        g = c.line()
        return c, g

    def outcome(c, limit=8.0):
        """(closed, seconds) after the last send."""
        start_t = time.monotonic()
        c.s.settimeout(limit)
        try:
            while True:
                d = c.s.recv(65536)
                if not d:
                    return True, time.monotonic() - start_t
        except socket.timeout:
            return False, time.monotonic() - start_t
        except OSError:
            return True, time.monotonic() - start_t

    # A ClientHello cut short, then silence.
    s0 = socket.create_connection(("127.0.0.1", port), 10)
    lport = s0.getsockname()[1]
    s0.sendall(client_hello()[:20])

    class Raw:
        s = s0
    closed, el = outcome(Raw)
    t.ok(closed and el <= 6.0, "truncated ClientHello: closed after tls_handshake_timeout "
         "(%.1fs)" % el)
    t.ok(log_line(m, "tls-timeout", sid_of(m, lport)) is not None, "... event=tls-timeout")
    s0.close()

    # After the handshake: a record header promising 16 KiB, 100 bytes sent.
    c, g = established()
    t.like(g, r"^220 ", "handshake done, greeting read")
    c.s.sendall(b"\x17\x03\x03\x40\x00" + b"x" * 100)
    closed, el = outcome(c)
    t.ok(closed and el <= 6.0, "truncated record after the handshake: closed after "
         "command_timeout (%.1fs)" % el)
    c.close()

    # A record that does not decrypt.
    c, g = established()
    c.s.sendall(b"\x17\x03\x03\x00\x30" + os.urandom(48))
    closed, el = outcome(c)
    t.ok(closed and el < 1.5, "a record that fails to decrypt: closed at once (%.2fs)" % el)
    t.ok(log_line(m, "tls-error", sid_of(m, c.lport)) is not None or
         m.wait_log(r"event=client-gone sid=%s " % re.escape(sid_of(m, c.lport) or "x")),
         "... logged")
    c.close()

    # A record longer than TLS allows (2^14 + 256).
    c, g = established()
    c.s.sendall(b"\x17\x03\x03\xff\xff" + b"\0" * 64)
    closed, el = outcome(c)
    t.ok(closed and el < 1.5, "an oversized record length: closed at once (%.2fs)" % el)
    c.close()

    # Meanwhile others are served.
    r = tls_session(port, mode="implicit", subject="after bad records")
    t.ok(r["ok"], "a normal client is served after all that", r)
    t.ok(m.alive(), "moatd alive")
    t.eq(m.stop(), 0, "moatd exits 0")
    sink.stop()


for _sec in (sec_config, sec_starttls, sec_listeners, sec_injection, sec_versions, sec_sni,
             sec_resumption, sec_client_cert, sec_received, sec_reload, sec_load, sec_tools,
             sec_proxy_implicit, sec_bad_records):
    run_section(_sec)

t.diag("elapsed %.1fs" % (time.monotonic() - T_START))
t.done()
