"""The AUTH relay (RFC 4954) end to end, in front of a real Postfix that
checks credentials with a real Dovecot (passwd-file), over TLS on both
legs (moat's own certificate toward the client, Postfix's verified with
upstream_tls = required toward the upstream).

What is checked:
- advertising: AUTH with the upstream's mechanisms only inside TLS by
  default (auth = "tls"), also in plaintext with auth = "always", never
  with auth = "off"; never after HELO;
- refusals: 538 5.7.11 before STARTTLS, 503 after HELO / inside a
  transaction / once authenticated, 504 for a mechanism the upstream does
  not offer, 501 for bad syntax;
- every mechanism Dovecot offers, relayed verbatim and multi-step: PLAIN
  (with and without an initial response), LOGIN, CRAM-MD5, DIGEST-MD5,
  SCRAM-SHA-1 and SCRAM-SHA-256; each time the identity (and never the
  credentials) in moat's log, ESMTPSA in moat's Received field, Postfix's
  sasl_username, and relaying that Postfix grants only after AUTH;
- failures: 535 relayed and counted, "*" cancels, a bad line aborts the
  exchange, max_auth_failures closes with 421, auth_failures_per_ip
  answers 454 for the whole client (another address is unaffected);
- safety: an authenticated upstream connection is never reused by the
  next session (upstream_pool_size > 0), STARTTLS after AUTH forgets it,
  a lost authenticated upstream closes the session (421) instead of
  sending on an unauthenticated one, responses up to RFC 4954's 12288
  octets pass and longer ones are refused, the credentials appear in no
  log line, the policy sees the session as authenticated (group with
  authenticated = true);
- DKIM signing after the real upstream: an authenticated message signed
  by moat (RSA key from opendkim-genkey, Ed25519 from openssl) goes
  through Postfix into a Maildir, where opendkim-testmsg (libopendkim's
  own verifier, its DNS answered by a dnsmasq inside a private network
  namespace) verifies each signature; tampered copies fail.
Edge cases of the exchange itself (exact bytes relayed, an upstream that
closes mid-exchange, answers oddly) use a recording fake upstream.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Sink, Moatd, Client, Recorder, Postfix,  # noqa: E402
                      postfix_usable, tmpdir, free_port, spawn, stop, on_cleanup,
                      write_file as write, sink_headers, dns_txt)

t = TAP()
WORK = tmpdir()
os.chmod(WORK, 0o755)
MX = "mx.example.test"
UP = "upstream.example.test"
USERS = {"alice": "Secret-One-1", "bob@example.test": "pw two 2", "carol": "c4r0l!"}
MECHS = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def unb64(s):
    return base64.b64decode(s)


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), p.stdout.decode()))
    return p.stdout.decode()


# ---------------------------------------------------------- certificates

def make_certs():
    ca, cakey = os.path.join(WORK, "ca.pem"), os.path.join(WORK, "ca.key")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cakey,
         "-out", ca, "-days", "30", "-subj", "/CN=Moat Auth Test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    out = {"ca": ca}
    for name in (MX, UP):
        key = os.path.join(WORK, name + ".key")
        csr = os.path.join(WORK, name + ".csr")
        crt = os.path.join(WORK, name + ".pem")
        ext = write(os.path.join(WORK, name + ".ext"),
                    "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:%s\n"
                    "extendedKeyUsage=serverAuth\n" % name)
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", key])
        run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
             "-set_serial", str(abs(hash(name)) % 100000 + 2), "-days", "30",
             "-extfile", ext, "-out", crt])
        os.chmod(key, 0o644)    # read by moatd's user and Postfix's smtpd
        out[name] = (crt, key)
    return out


# ---------------------------------------------------------------- dovecot

class Dovecot:
    """A Dovecot that only authenticates: passwd-file with plaintext
    passwords (so every mechanism works), one auth socket for Postfix."""

    def __init__(self, users):
        self.dir = tmpdir()
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "auth")
        self.log = os.path.join(self.dir, "dovecot.log")
        passwd = write(os.path.join(self.dir, "passwd"),
                       "".join("%s:{PLAIN}%s\n" % kv for kv in users.items()))
        os.chmod(passwd, 0o644)
        for d in ("run", "state"):
            os.mkdir(os.path.join(self.dir, d))
        self.conf = write(os.path.join(self.dir, "dovecot.conf"), """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = none
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256
auth_realms =
auth_failure_delay = 0
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
service auth {{
  unix_listener {d}/auth {{
    mode = 0666
  }}
}}
""".format(d=self.dir))
        self.proc = spawn(["dovecot", "-F", "-c", self.conf],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        end = time.time() + 10
        while not os.path.exists(self.socket) and time.time() < end:
            time.sleep(0.05)
        on_cleanup(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            stop(self.proc)

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ------------------------------------------------------------ SASL clients

class TClient(Client):
    def starttls(self, ca):
        r = self.cmd("STARTTLS")
        if r[0] == 220:
            ctx = ssl.create_default_context(cafile=ca)
            self.s = ctx.wrap_socket(self.s, server_hostname=MX)
        return r


def text_of(r):
    """The text of a one-line reply (after "334 ")."""
    return r[1]


def full(r):
    """A reply as one line: "CODE text" (multi-line joined by \\n)."""
    return "%d %s" % r


def ehlo_auth(r):
    for line in r[1].split("\n"):
        m = re.match(r"AUTH (.*)", line.strip())
        if m:
            return m.group(1).strip()
    return None


def sasl_plain(c, user, pw, initial=True, authzid=""):
    msg = b64("%s\0%s\0%s" % (authzid, user, pw))
    if initial:
        return [c.cmd("AUTH PLAIN " + msg)]
    r1 = c.cmd("AUTH PLAIN")
    if r1[0] != 334:
        return [r1]
    return [r1, c.cmd(msg)]


def sasl_login(c, user, pw):
    rs = [c.cmd("AUTH LOGIN")]
    if rs[-1][0] == 334:
        rs.append(c.cmd(b64(user)))
    if rs[-1][0] == 334:
        rs.append(c.cmd(b64(pw)))
    return rs


def sasl_cram(c, user, pw):
    rs = [c.cmd("AUTH CRAM-MD5")]
    if rs[-1][0] == 334:
        chal = unb64(text_of(rs[-1]))
        d = hmac.new(pw.encode(), chal, hashlib.md5).hexdigest()
        rs.append(c.cmd(b64("%s %s" % (user, d))))
    return rs


def sasl_digest(c, user, pw):
    rs = [c.cmd("AUTH DIGEST-MD5")]
    if rs[-1][0] != 334:
        return rs
    chal = unb64(text_of(rs[-1])).decode()
    kv = dict((m.group(1), m.group(2) if m.group(2) is not None else m.group(3))
              for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^,]*))', chal))
    realm = kv.get("realm", "")
    nonce, cnonce, nc, qop = kv["nonce"], b64(os.urandom(12)), "00000001", "auth"
    uri = "smtp/" + UP
    a1 = hashlib.md5(("%s:%s:%s" % (user, realm, pw)).encode()).digest() + \
        (":%s:%s" % (nonce, cnonce)).encode()
    ha1 = hashlib.md5(a1).hexdigest()
    ha2 = hashlib.md5(("AUTHENTICATE:" + uri).encode()).hexdigest()
    resp = hashlib.md5(("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))
                       .encode()).hexdigest()
    answer = ('username="%s",realm="%s",nonce="%s",cnonce="%s",nc=%s,qop=%s,'
              'digest-uri="%s",response=%s,charset=utf-8'
              % (user, realm, nonce, cnonce, nc, qop, uri, resp))
    rs.append(c.cmd(b64(answer)))
    if rs[-1][0] == 334:                # rspauth=...: an empty answer
        rs.append(c.cmd(""))
    return rs


def sasl_scram(c, user, pw, h="sha256"):
    name = "SCRAM-SHA-256" if h == "sha256" else "SCRAM-SHA-1"
    nonce = b64(os.urandom(18))
    bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
    rs = [c.cmd("AUTH %s %s" % (name, b64("n,," + bare)))]
    if rs[-1][0] != 334:
        return rs
    first = unb64(text_of(rs[-1])).decode()
    kv = dict(x.split("=", 1) for x in first.split(","))
    salted = hashlib.pbkdf2_hmac(h, pw.encode(), unb64(kv["s"]), int(kv["i"]))
    ckey = hmac.new(salted, b"Client Key", h).digest()
    skey = hashlib.new(h, ckey).digest()
    final = "c=biws,r=" + kv["r"]
    msg = ",".join((bare, first, final)).encode()
    sig = hmac.new(skey, msg, h).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    rs.append(c.cmd(b64(final + ",p=" + b64(proof))))
    if rs[-1][0] == 334:                # v=server signature
        rs.append(c.cmd(""))
    return rs


MECH_FN = {
    "PLAIN": lambda c, u, p: sasl_plain(c, u, p),
    "PLAIN (no initial response)": lambda c, u, p: sasl_plain(c, u, p, initial=False),
    "LOGIN": sasl_login,
    "CRAM-MD5": sasl_cram,
    "DIGEST-MD5": sasl_digest,
    "SCRAM-SHA-1": lambda c, u, p: sasl_scram(c, u, p, "sha1"),
    "SCRAM-SHA-256": lambda c, u, p: sasl_scram(c, u, p, "sha256"),
}


# ------------------------------------------------------------- the setup

ENV = {}


def setup():
    why = postfix_usable()
    if why is None and shutil.which("dovecot") is None:
        why = "dovecot not installed (dovecot-core)"
    if why:
        return why
    certs = make_certs()
    ENV["certs"] = certs
    dv = Dovecot(USERS)
    if not os.path.exists(dv.socket):
        return "dovecot did not start: " + dv.text()
    sink = Sink()
    up_crt, up_key = certs[UP]
    pf = Postfix(hostname=UP, main={
        "mynetworks": "192.0.2.1/32",
        "smtpd_relay_restrictions":
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": up_crt,
        "smtpd_tls_key_file": up_key,
        "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": dv.socket,
        "smtpd_sasl_authenticated_header": "no",
        "smtpd_client_restrictions": "",
        "smtpd_helo_restrictions": "",
    })
    rc, out = pf.start()
    if rc != 0:
        return "postfix did not start: " + out
    ENV.update(dovecot=dv, sink=sink, postfix=pf)
    return None


def moat_conf(listeners, extra=""):
    crt, key = ENV["certs"][MX]
    conf = ('drain_timeout = 1\n'
            'upstream_tls = "required"\n'
            'upstream_tls_ca_file = "%s"\n'
            'upstream_tls_name = "%s"\n'
            'tls_certificate "mx" { certificate = "%s" key = "%s" }\n'
            % (ENV["certs"]["ca"], UP, crt, key))
    ports = {}
    for name, opts in listeners.items():
        ports[name] = free_port()
        conf += 'listen "127.0.0.1:%d" { %s }\n' % (ports[name], opts)
    return conf + extra, ports


def start_moat(listeners, extra=""):
    conf, ports = moat_conf(listeners, extra)
    m = Moatd(ENV["postfix"].port, conf=conf, listen=list(ports.values())[0])
    m.wait_log(r"event=upstream-up", 15)
    return m, ports


def tls_client(port, ehlo="client.example.test", source=None):
    c = TClient(port, source=source)
    c.cmd("EHLO " + ehlo)
    r = c.starttls(ENV["certs"]["ca"])
    if r[0] != 220:
        raise RuntimeError("STARTTLS: %r" % (r,))
    c.ehlo = c.cmd("EHLO " + ehlo)
    return c


def relay(c, tag, rcpt="carol@elsewhere.test"):
    """A message to a domain Postfix relays only for authenticated
    clients; returns (MAIL, RCPT, final) codes."""
    m = c.cmd("MAIL FROM:<alice@example.test>")[0]
    r = c.cmd("RCPT TO:<%s>" % rcpt)[0]
    f = None
    if m == 250 and r == 250:
        if c.cmd("DATA")[0] == 354:
            c.send("From: <alice@example.test>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                   "body of %s\r\n.\r\n" % (rcpt, tag, tag))
            f = c.reply()[0]
    elif m == 250:
        c.cmd("RSET")
    return m, r, f


def secrets_absent(text, name):
    bad = []
    for u, p in USERS.items():
        for s in (p, b64(p), b64("\0%s\0%s" % (u, p)), b64("%s\0%s\0%s" % (u, u, p))):
            if s in text:
                bad.append(s)
    t.ok(not bad, name, "found: %r" % bad)


# ------------------------------------------------------------ sections

def sec_advertising():
    m, ports = start_moat({"mx": "", "plain": 'tls = "off" auth = "always"',
                           "off": 'auth = "off"', "implicit": 'tls = "implicit"'})
    try:
        c = TClient(ports["mx"])
        r = c.cmd("EHLO client.example.test")
        t.eq(ehlo_auth(r), None, "no AUTH in plaintext by default (auth = tls)")
        t.ok("STARTTLS" in r[1], "STARTTLS offered")
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0alice\0x"))), r"^538 5\.7\.11 ",
               "AUTH before STARTTLS: 538 5.7.11 (RFC 4954 §6)")
        c.starttls(ENV["certs"]["ca"])
        r = c.cmd("EHLO client.example.test")
        t.eq(ehlo_auth(r), MECHS, "after STARTTLS: AUTH with Dovecot's mechanisms")
        t.ok(r[1].count("AUTH") == 1, "one AUTH line")
        c.close()

        c = TClient(ports["plain"])
        r = c.cmd("EHLO client.example.test")
        t.eq(ehlo_auth(r), MECHS, "auth = always: AUTH in plaintext")
        t.ok("STARTTLS" not in r[1], "tls = off: no STARTTLS")
        rs = sasl_plain(c, "alice", USERS["alice"])
        t.eq(rs[-1][0], 235, "auth = always: plaintext AUTH works")
        c.close()

        c = tls_client(ports["off"])
        t.eq(ehlo_auth(c.ehlo), None, "auth = off: no AUTH even inside TLS")
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0alice\0x"))), r"^503 5\.5\.1 ",
               "auth = off: AUTH gets 503 5.5.1")
        c.close()

        c = TClient(ports["implicit"], greet=False)
        ctx = ssl.create_default_context(cafile=ENV["certs"]["ca"])
        c.s = ctx.wrap_socket(c.s, server_hostname=MX)
        c.greeting = c.reply()
        r = c.cmd("EHLO client.example.test")
        t.eq(ehlo_auth(r), MECHS, "implicit TLS: AUTH offered")
        c.close()

        c = tls_client(ports["mx"])
        c.cmd("HELO client.example.test")
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0alice\0x"))), r"^503 5\.5\.1 ",
               "after HELO (not EHLO): 503 5.5.1")
        c.close()
    finally:
        m.stop()


def sec_mechanisms():
    m, ports = start_moat({"mx": ""}, 'group "outbound" { authenticated = true }\n')
    try:
        pf, sink = ENV["postfix"], ENV["sink"]
        # Relaying is Postfix's privilege of authenticated clients.
        c = tls_client(ports["mx"])
        code = relay(c, "unauthenticated")
        t.eq(code[:2], (250, 554), "without AUTH Postfix refuses to relay (554)")
        c.close()
        n = 0
        for mech, fn in MECH_FN.items():
            user = "bob@example.test" if mech == "LOGIN" else "alice"
            c = tls_client(ports["mx"])
            rs = fn(c, user, USERS[user])
            t.eq(rs[-1][0], 235, "%s: 235 after %d step(s)" % (mech, len(rs)))
            if mech.startswith(("LOGIN", "CRAM", "DIGEST", "SCRAM")):
                t.ok(len(rs) >= 2 and all(r[0] == 334 for r in rs[:-1]),
                     "%s: multi-step (334 challenges relayed)" % mech)
            tag = "auth-" + mech.replace(" ", "_")
            code = relay(c, tag)
            t.eq(code, (250, 250, 250), "%s: the authenticated client relays" % mech)
            c.cmd("QUIT")
            c.close()
            n += 1
            name = mech.split(" ")[0]
            line = m.wait_log(r'event=auth sid=\S+ client=127\.0\.0\.1 mechanism=%s '
                              r'result=ok code=235 user="%s"' % (re.escape(name), re.escape(user)))
            t.ok(line, "%s: log names mechanism and user" % mech)
            tx = m.wait_log(r'event=tx .*auth="%s".*group=outbound' % re.escape(user))
            t.ok(tx, "%s: tx line has auth= and the authenticated policy group" % mech)
            dump = None
            end = time.time() + 15
            while dump is None and time.time() < end:
                pf.flush()
                for d in sink.messages(wait=0.3, count=0):
                    if ("Subject: " + tag + "\n") in d:
                        dump = d
                time.sleep(0.2)
            t.ok(dump is not None, "%s: relayed message arrived" % mech)
            hdr = sink_headers(dump or "")
            t.like(hdr, r"by moat\.test[^;]*with ESMTPSA",
                   "%s: moat's Received says ESMTPSA" % mech)
            t.like(pf.log(), r"sasl_method=%s, sasl_username=%s" % (re.escape(name), re.escape(user)),
                   "%s: Postfix saw the SASL login" % mech)
        res = re.findall(r"event=upstream-tls sid=\S+ .*resumed=(yes|no)", m.log())
        t.ok("yes" in res, "upstream TLS sessions are resumed (%d of %d connections)"
             % (res.count("yes"), len(res)))
        secrets_absent(m.log(), "no password (plain or base64) in moat's log")
        secrets_absent(" ".join(sink.messages(wait=0, count=0)), "none in the messages either")
    finally:
        m.stop()


def sec_refusals():
    m, ports = start_moat({"mx": ""})
    try:
        c = tls_client(ports["mx"])
        t.like(full(c.cmd("AUTH")), r"^501 5\.5\.4 ", "AUTH without mechanism: 501")
        t.like(full(c.cmd("AUTH PL@IN")), r"^501 5\.5\.4 ", "invalid mechanism name: 501")
        t.like(full(c.cmd("AUTH GSSAPI")), r"^504 5\.5\.4 ",
               "mechanism the upstream does not offer: 504")
        t.like(full(c.cmd("AUTH PLAIN a b")), r"^501 5\.5\.2 ", "two arguments: 501")
        c.cmd("MAIL FROM:<alice@example.test>")
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))), r"^503 5\.5\.1 ",
               "AUTH inside a transaction: 503")
        c.cmd("RSET")
        t.eq(c.cmd("AUTH plain " + b64("\0alice\0" + USERS["alice"]))[0], 235,
             "mechanism name is case-insensitive")
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))), r"^503 5\.5\.1 ",
               "second AUTH: 503 already authenticated")
        t.eq(c.cmd("EHLO again.example.test")[0], 250, "EHLO after AUTH")
        t.eq(relay(c, "after-ehlo"), (250, 250, 250), "still authenticated after EHLO")
        c.close()
        # Pipelined: AUTH with an initial response, then MAIL, one write.
        c = tls_client(ports["mx"])
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n"
               % b64("\0alice\0" + USERS["alice"]))
        t.eq(c.reply()[0], 235, "pipelined AUTH: 235")
        t.eq(c.reply()[0], 250, "then the pipelined MAIL: 250")
        c.close()
    finally:
        m.stop()


def sec_failures():
    m, ports = start_moat({"mx": ""}, "max_auth_failures = 3\nauth_failures_per_ip = 5\n")
    try:
        c = tls_client(ports["mx"])
        r = sasl_plain(c, "alice", "wrong")[-1]
        t.like(full(r), r"^535 5\.7\.8 ", "wrong password: Postfix's 535 relayed")
        t.ok(m.wait_log(r'event=auth .*mechanism=PLAIN result=fail code=535 user="alice" '
                        r'failures=1'), "failure logged with the claimed user")
        r = c.cmd("AUTH LOGIN")
        t.eq(r[0], 334, "LOGIN: first challenge")
        t.like(full(c.cmd("*")), r"^501 ", "'*' cancels: the upstream's 501 relayed")
        t.eq(relay(c, "after-failures")[:2], (250, 554), "not authenticated after failures")
        r = sasl_plain(c, "carol", "nope")[-1]
        t.eq(r[0], 535, "third failure")
        r = c.cmd("AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        t.like(full(r), r"^421 4\.7\.0 ", "after max_auth_failures the next AUTH: 421")
        t.ok(c.closed(), "and the session is closed")
        t.ok(m.wait_log(r"event=auth-limit .*scope=session failures=3"), "session limit logged")
        # The client's address has 3 failures; two more reach 5.
        c = tls_client(ports["mx"])
        t.eq(sasl_plain(c, "alice", "wrong")[-1][0], 535, "4th failure from this address")
        t.eq(sasl_plain(c, "alice", "wrong")[-1][0], 535, "5th failure")
        t.ok(m.wait_log(r"event=auth-limit .*client=127\.0\.0\.1 failures=5"),
             "auth_failures_per_ip reached: logged")
        c.close()
        c = tls_client(ports["mx"])
        r = c.cmd("AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        t.like(full(r), r"^454 4\.7\.0 ", "the address is blocked: 454 even with the right password")
        c.close()
        c = tls_client(ports["mx"], source="127.0.0.2")
        r = c.cmd("AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        t.eq(r[0], 235, "another address is not blocked")
        c.close()
        # A response line moat cannot take aborts the exchange.
        c = tls_client(ports["mx"], source="127.0.0.3")
        t.eq(c.cmd("AUTH LOGIN")[0], 334, "LOGIN started")
        t.like(full(c.cmd("dXNlcg==\rX")), r"^500 5\.5\.2 ", "bare CR in a response: 500")
        t.eq(c.cmd("NOOP")[0], 250, "the exchange is over: next line is a command")
        t.eq(sasl_plain(c, "alice", USERS["alice"])[-1][0], 235,
             "and AUTH works afterwards on the same connection")
        c.close()
        # Long responses: up to 12288 octets pass, longer are refused.
        c = tls_client(ports["mx"], source="127.0.0.4")
        t.eq(c.cmd("AUTH LOGIN")[0], 334, "LOGIN started (long response)")
        r = c.cmd(b64("u" * 6000))
        t.eq(r[0], 334, "an 8000-octet response (above max_line_length) is relayed")
        t.like(full(c.cmd("*")), r"^501 ", "cancelled")
        t.eq(c.cmd("AUTH LOGIN")[0], 334, "LOGIN again")
        r = c.cmd("A" * 13000)
        t.like(full(r), r"^500 5\.5\.6 ", "a 13000-octet response: 500 5.5.6")
        t.eq(c.cmd("NOOP")[0], 250, "session goes on")
        c.close()
        secrets_absent(m.log(), "failed attempts: no password in the log")
    finally:
        m.stop()


def sec_isolation():
    m, ports = start_moat({"mx": "", "plain": 'auth = "always"'},
                          "upstream_pool_size = 4\n")
    try:
        c = tls_client(ports["mx"])
        t.eq(sasl_plain(c, "alice", USERS["alice"])[-1][0], 235, "authenticated")
        t.eq(relay(c, "pool-1"), (250, 250, 250), "relays")
        c.cmd("QUIT")
        c.close()
        time.sleep(0.3)
        for i in range(3):
            c = tls_client(ports["mx"])
            code = relay(c, "pool-next-%d" % i)
            t.eq(code[:2], (250, 554),
                 "next session %d: the authenticated connection was not reused" % i)
            c.cmd("QUIT")
            c.close()
        # STARTTLS after AUTH (a plaintext AUTH on auth = always) forgets it.
        c = TClient(ports["plain"])
        c.cmd("EHLO client.example.test")
        t.eq(sasl_plain(c, "alice", USERS["alice"])[-1][0], 235, "plaintext AUTH")
        t.eq(c.starttls(ENV["certs"]["ca"])[0], 220, "then STARTTLS")
        c.cmd("EHLO client.example.test")
        t.eq(relay(c, "after-starttls")[:2], (250, 554),
             "after STARTTLS the session is no longer authenticated")
        t.eq(sasl_plain(c, "alice", USERS["alice"])[-1][0], 235, "and may AUTH again")
        c.close()
    finally:
        m.stop()


def sec_fake_upstream():
    """The exchange's edges against a recording upstream (no TLS)."""
    caps = ["PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES",
            "AUTH PLAIN LOGIN x-odd bad/name", "AUTH=LOGIN"]
    rec = Recorder(ehlo_caps=caps, sasl=["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
                                         "235 2.7.0 Authentication successful"])
    port = free_port()
    m = Moatd(rec.port, conf='listen "127.0.0.1:%d" { tls = "off" auth = "always" }\n'
              % port, listen=port)
    try:
        c = Client(m.port)
        r = c.cmd("EHLO client.example.test")
        t.eq(ehlo_auth(r), "PLAIN LOGIN X-ODD",
             "advertised: valid names, upper-cased, deduplicated")
        t.eq(full(c.cmd("AUTH LOGIN")), "334 VXNlcm5hbWU6", "challenge relayed as is")
        t.eq(full(c.cmd("ZGF2ZQ==")), "334 UGFzc3dvcmQ6", "second challenge")
        t.eq(c.cmd("c2VjcmV0LXB3")[0], 235, "235")
        wire = [w for w in rec.wire() if "AUTH LOGIN" in w]
        t.ok(wire and "AUTH LOGIN\r\nZGF2ZQ==\r\nc2VjcmV0LXB3\r\n" in wire[0],
             "the exchange reached the upstream byte for byte")
        t.ok(m.wait_log(r'event=auth .*mechanism=LOGIN result=ok code=235 user="dave"'),
             "LOGIN identity taken from the first response")
        t.ok("c2VjcmV0LXB3" not in m.log() and "secret-pw" not in m.log(),
             "the password is not in the (debug) log")
        # The authenticated upstream connection dies: no new one for MAIL.
        rec.b["close_at"] = "MAIL"
        r = c.cmd("MAIL FROM:<dave@example.test>")
        if r[0] != 421:
            r = c.cmd("MAIL FROM:<dave@example.test>")
        t.like(full(r), r"^421 4\.4\.2 ", "authenticated connection lost: 421, not a fresh "
               "unauthenticated one")
        t.ok(c.closed(), "session closed")
        rec.b.pop("close_at")

        # The upstream hangs up in the middle of the exchange.
        rec.b["sasl"] = ["334 VXNlcm5hbWU6", "CLOSE"]
        c = Client(m.port)
        c.cmd("EHLO client.example.test")
        t.eq(c.cmd("AUTH LOGIN")[0], 334, "challenge")
        t.like(full(c.cmd("ZGF2ZQ==")), r"^454 4\.7\.0 ", "upstream closed mid-exchange: 454")
        t.eq(c.cmd("NOOP")[0], 250, "the session goes on")
        # An answer that is not SASL.
        rec.b["sasl"] = ["250 2.0.0 what"]
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0dave\0pw"))), r"^454 4\.7\.0 ",
               "a 250 to AUTH: 454, the connection dropped")
        rec.b["sasl"] = ["535 5.7.8 no"]
        t.like(full(c.cmd("AUTH PLAIN " + b64("\0dave\0pw"))), r"^535 5\.7\.8 ",
               "next AUTH on a fresh connection: the upstream's 535")
        # PLAIN with an authorization identity: that one is recorded.
        rec.b["sasl"] = ["235 2.7.0 ok"]
        t.eq(c.cmd("AUTH PLAIN " + b64("erin\0dave\0pw"))[0], 235, "PLAIN with authzid")
        t.ok(m.wait_log(r'event=auth .*mechanism=PLAIN result=ok code=235 user="erin"'),
             "authzid recorded")
        c.close()
    finally:
        m.stop()
        rec.stop()


# --------------------------------------------- DKIM signing through Postfix

ODK_VERIFY = """\
ip link set lo up || exit 90
mount --bind "$1/resolv.conf" /etc/resolv.conf || exit 91
dnsmasq --keep-in-foreground --conf-file="$1/dnsmasq.conf" --pid-file= &
pid=$!
for i in $(seq 100); do grep -q ':0035 ' /proc/net/udp && break; sleep 0.05; done
opendkim-testmsg < "$2"
rc=$?
kill $pid
wait $pid
exit $rc
"""


def opendkim_verify(raw, records):
    """opendkim-testmsg (opendkim-tools: libopendkim with its own DNS
    code, through libresolv) on raw; the key records served by a dnsmasq
    on port 53 inside a network and mount namespace of its own, where
    /etc/resolv.conf points at it. (exit status, stderr); 0 = verified."""
    d = tmpdir()
    os.chmod(d, 0o755)
    write(os.path.join(d, "resolv.conf"), "nameserver 127.0.0.1\n")
    write(os.path.join(d, "dnsmasq.conf"), "\n".join(
        ["port=53", "listen-address=127.0.0.1", "bind-interfaces", "no-resolv",
         "no-hosts", "user=root"] + [dns_txt(n, v) for n, v in records.items()]) + "\n")
    path = os.path.join(d, "msg.eml")
    with open(path, "wb") as f:
        f.write(raw)
    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", ODK_VERIFY, "sh", d, path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode("latin-1").strip()


def genkey_record(txt):
    """The TXT value of an opendkim-genkey zone-file stub."""
    return "".join(re.findall(r'"([^"]*)"', txt))


def only_signature(raw, keep):
    """raw with every DKIM-Signature field but the keep-th removed (each
    signature is verified on its own; opendkim-testmsg reports one)."""
    head, sep, body = raw.partition(b"\n\n")
    fields = re.split(rb"\n(?=[^ \t])", head)
    n, out = 0, []
    for f in fields:
        if f.lower().startswith(b"dkim-signature:"):
            n += 1
            if n - 1 != keep:
                continue
        out.append(f)
    return b"\n".join(out) + sep + body


def sec_dkim_sign_postfix():
    """moat signs authenticated mail; the message goes through the real
    Postfix to a Maildir and is verified there by opendkim-testmsg."""
    why = None
    if shutil.which("opendkim-genkey") is None or shutil.which("opendkim-testmsg") is None:
        why = "opendkim-tools not installed"
    elif shutil.which("unshare") is None or shutil.which("dnsmasq") is None:
        why = "unshare or dnsmasq missing"
    elif subprocess.run(["unshare", "-n", "-m", "true"]).returncode != 0:
        why = "no network namespaces here"
    if why:
        t.skip("DKIM signing verified after Postfix", why)
        return
    kd = tmpdir()
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "example.test", "-s", "pf2026",
                    "-D", kd], check=True)
    rsa = os.path.join(kd, "pf2026.private")
    os.chmod(rsa, 0o600)
    with open(os.path.join(kd, "pf2026.txt")) as f:
        rsa_rec = genkey_record(f.read())
    ed = os.path.join(kd, "ed.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", ed], check=True)
    os.chmod(ed, 0o600)
    der = subprocess.run(["openssl", "pkey", "-in", ed, "-pubout", "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True).stdout
    ed_rec = "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    records = {"pf2026._domainkey.example.test": rsa_rec,
               "ed2026._domainkey.example.test": ed_rec}
    m, ports = start_moat({"mx": ""}, (
        'dkim_sign "example.test" { selector = "pf2026" key = "%s" }\n'
        'dkim_sign "example.test ed" { domain = "example.test" selector = "ed2026"'
        ' key = "%s" }\n' % (rsa, ed)))
    pf = ENV["postfix"]
    maildir = os.path.join(pf.vmail, "bob", "Maildir", "new")
    try:
        c = tls_client(ports["mx"])
        t.eq(sasl_plain(c, "alice", USERS["alice"])[-1][0], 235, "dkim: authenticated")
        body = ("Hello Bob,\r\n"
                "..a line that began with a dot (dot-stuffed on the wire)\r\n"
                "trailing spaces   \r\n"
                "\t tab and spaces\r\n"
                + "x" * 990 + "\r\n"
                "\r\n\r\n")
        data = ("From: Alice <alice@example.test>\r\n"
                "To: Bob <bob@example.test>\r\n"
                "Subject: signed by moat,\r\n folded\r\n"
                "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
                "Message-ID: <dkim-postfix@example.test>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n"
                "\r\n" + body + ".\r\n")
        t.eq(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "dkim: MAIL")
        t.eq(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "dkim: RCPT")
        t.eq(c.cmd("DATA")[0], 354, "dkim: DATA")
        c.send(data)
        t.eq(c.reply()[0], 250, "dkim: accepted through moat and Postfix")
        c.cmd("QUIT")
        c.close()
        files = []
        end = time.time() + 20
        while time.time() < end:
            files = os.listdir(maildir) if os.path.isdir(maildir) else []
            if files:
                break
            time.sleep(0.1)
        t.eq(len(files), 1, "dkim: Postfix delivered it to the Maildir")
        if not files:
            t.diag(pf.log())
            return
        with open(os.path.join(maildir, files[0]), "rb") as f:
            raw = f.read()
        t.ok(raw.startswith(b"Return-Path: ") and b"\nReceived: from " in raw,
             "dkim: Postfix added its own fields (Return-Path, Received)")
        t.ok(b"\n.a line that began" in raw, "dkim: the dot-stuffing was undone by Postfix")
        sigs = [s for s in re.split(rb"\n(?=[^ \t])", raw.partition(b"\n\n")[0])
                if s.lower().startswith(b"dkim-signature:")]
        algs = sorted(re.search(rb"a=([\w-]+)", s).group(1).decode() for s in sigs)
        t.eq(algs, ["ed25519-sha256", "rsa-sha256"], "dkim: two signatures (RSA, Ed25519)")
        for i in range(len(sigs)):
            one = only_signature(raw, i)
            alg = re.search(rb"DKIM-Signature:[^\n]*(?:\n[ \t][^\n]*)*", one)
            alg = re.search(rb"a=([\w-]+)", alg.group(0)).group(1).decode()
            rc, err = opendkim_verify(one, records)
            t.eq(rc, 0, "dkim: opendkim-testmsg verifies the %s signature after Postfix"
                 % alg)
            if rc:
                t.diag(err)
            bad = one.replace(b"Hello Bob", b"Hello Bib")
            rc, err = opendkim_verify(bad, records)
            t.ok(rc != 0 and "signature" in err.lower(),
                 "dkim: a tampered body fails opendkim-testmsg (%s): %s" % (alg, err))
        bad = only_signature(raw, 0).replace(b"Subject: signed by moat", b"Subject: signed by mole")
        rc, err = opendkim_verify(bad, records)
        t.ok(rc != 0, "dkim: a tampered Subject fails too: %s" % err)
    finally:
        m.stop()


def main():
    why = setup()
    if why:
        t.skip("AUTH relay against Postfix + Dovecot", why)
    else:
        for sec in (sec_advertising, sec_mechanisms, sec_refusals, sec_failures,
                    sec_isolation, sec_dkim_sign_postfix):
            t.section(sec)
    t.section(sec_fake_upstream)
    t.done()


if __name__ == "__main__":
    main()
