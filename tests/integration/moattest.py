"""moattest - harness for moat's integration tests.

Every test file is a TAP producer (one "ok N" per check) run by automake's
TAP driver. The harness starts real processes (moatd, Postfix's smtp-sink,
a throwaway Postfix, haproxy) on loopback ports, and stops every one of them
by PID when the test ends, even when it fails.

A small recording upstream (Recorder) is the only hand-written server: it
records the exact bytes moat sends (smtp-sink rewrites line ends in its
dumps) and can misbehave in ways no real MTA can be told to.
"""

import atexit
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get("MOAT_SRCDIR",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MOATD = os.environ.get("MOATD", os.path.join(SRCDIR, "moatd"))

_procs = []
_tmpdirs = []
_hooks = []


def on_cleanup(fn):
    """Run fn() at cleanup, before processes are killed and temporary
    directories removed (for servers that stop themselves, like Postfix)."""
    _hooks.append(fn)


def _cleanup():
    while _hooks:
        fn = _hooks.pop()
        try:
            fn()
        except Exception:
            pass
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
            try:
                p.wait(5)
            except Exception:
                pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    _release_ports()


atexit.register(_cleanup)


def _sig(signum, frame):
    _cleanup()
    sys.exit(1)


signal.signal(signal.SIGTERM, _sig)


def tmpdir():
    d = tempfile.mkdtemp(prefix="moattest.")
    os.chmod(d, 0o777)
    _tmpdirs.append(d)
    return d


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    if p is None or p.poll() is not None:
        return p.returncode if p else None
    p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait(5)


# ------------------------------------------------------------------ TAP

class TAP:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        if not cond and diag is not None:
            for line in str(diag).splitlines()[:40]:
                print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def like(self, got, pattern, name):
        return self.ok(got is not None and re.search(pattern, got, re.S) is not None,
                       name, "got: %r\npattern: %r" % (got, pattern))

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)

    def section(self, fn):
        """Run one group of checks; an exception (say moatd stopped
        answering) becomes a failed check, and the next group starts
        afresh."""
        import traceback
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            self.ok(False, "%s: aborted by %s: %s" % (fn.__name__, type(e).__name__, e),
                    traceback.format_exc())

    def done(self):
        print("1..%d" % self.n)
        sys.stdout.flush()
        _cleanup()
        sys.exit(1 if self.failed else 0)


def write_file(path, text):
    """Write text to path; returns path."""
    with open(path, "w") as f:
        f.write(text)
    return path


def sink_headers(dump):
    """The message's header section from an smtp-sink dump (after the
    three-line Received field smtp-sink adds), LF line ends."""
    if dump is None:
        return ""
    m = re.search(r"\(smtp-sink\)[^\n]*\n\t[^\n]*\n", dump)
    rest = dump[m.end():] if m else dump
    return rest.split("\n\n", 1)[0] + "\n"


# --------------------------------------------------------------- ports

_PORT_DIR = os.path.join(tempfile.gettempdir(), "moattest-ports")
_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range (32768-60999)


def free_port():
    """A loopback port no other test process holds: drawn below the
    ephemeral range (so no outgoing connection takes it as its source port
    meanwhile) and claimed with an O_EXCL file, so that tests running in
    parallel never draw the same one. Claims go at cleanup; one left by a
    killed run expires after an hour."""
    os.makedirs(_PORT_DIR, exist_ok=True)
    while True:
        port = random.randrange(*_PORT_RANGE)
        claim = os.path.join(_PORT_DIR, str(port))
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(claim) > 3600:
                    os.unlink(claim)
            except OSError:
                pass
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            os.unlink(claim)
            continue
        finally:
            s.close()
        _claims.append(claim)
        return port


_claims = []


def _release_ports():
    for c in _claims:
        try:
            os.unlink(c)
        except OSError:
            pass
    del _claims[:]


def wait_port(port, host="127.0.0.1", timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            s = socket.create_connection((host, port), 0.5)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ------------------------------------------------------------ smtp-sink

class Sink:
    """Postfix's smtp-sink as the upstream MTA."""

    def __init__(self, args=(), port=None):
        self.port = port or free_port()
        self.dir = tmpdir()
        argv = ["smtp-sink", "-u", "nobody", "-d", self.dir + "/%M."]
        argv += list(args)
        argv += ["127.0.0.1:%d" % self.port, "100"]
        self.proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("smtp-sink did not start")

    def _order(self, f):
        """Oldest first: mtime, then the inode number (allocated in
        order), since two dumps within one tick of the file system's
        clock have the same mtime."""
        try:
            st = os.stat(os.path.join(self.dir, f))
        except OSError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_ino)

    def messages(self, wait=2.0, count=1):
        """Dumped messages (text), oldest first; waits for `count`."""
        end = time.time() + wait
        while True:
            files = sorted((f for f in os.listdir(self.dir)), key=self._order)
            if len(files) >= count or time.time() >= end:
                break
            time.sleep(0.05)
        out = []
        for f in files:
            with open(os.path.join(self.dir, f), "rb") as fh:
                out.append(fh.read().decode("latin-1"))
        return out

    def message_with(self, text, wait=2.0):
        """The newest dump containing text (a Message-ID, a tag), waiting
        for it; "" if none came. Safer than messages()[-1]: dumps written
        within one tick of the file system's clock have the same mtime."""
        end = time.time() + wait
        while True:
            mine = [m for m in self.messages(wait=0) if text in m]
            if mine or time.time() >= end:
                return mine[-1] if mine else ""
            time.sleep(0.05)

    def stop(self):
        stop(self.proc)

    def kill(self):
        """SIGKILL: the upstream dies without closing its sessions cleanly."""
        stop(self.proc, signal.SIGKILL)

    def count(self):
        """Messages dumped so far (no waiting). smtp-sink keeps an empty
        capture file open for every transaction in progress (and leaves it
        behind when killed): only non-empty files are messages."""
        n = 0
        for f in os.listdir(self.dir):
            try:
                if os.path.getsize(os.path.join(self.dir, f)) > 0:
                    n += 1
            except OSError:
                pass
        return n

    def wait_count(self, n, timeout=2.0):
        """Wait until at least n messages are dumped; returns count()."""
        end = time.time() + timeout
        while self.count() < n and time.time() < end:
            time.sleep(0.05)
        return self.count()


def moatd_check(conf):
    """moatd -t on a configuration text (upstream and spool added);
    returns (exit status, output)."""
    d = tmpdir()
    path = write_file(os.path.join(d, "moat.conf"),
                      'upstream = "127.0.0.1:25"\nspool_directory = "%s"\n%s' % (d, conf))
    p = subprocess.run([MOATD, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace")


# --------------------------------------------------------------- dnsmasq

def dnsmasq_usable():
    return subprocess.run(["sh", "-c", "command -v dnsmasq"],
                          stdout=subprocess.DEVNULL).returncode == 0


def free_udp_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    while True:
        p = free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", p))
            s.close()
            return p
        except OSError:
            s.close()


def dns_txt(name, value):
    """A dnsmasq txt-record= line; dnsmasq splits nothing itself, so the
    value goes as character-strings of at most 250 octets."""
    parts = [value[i:i + 250] for i in range(0, len(value), 250)]
    return "txt-record=%s,%s" % (name, ",".join('"%s"' % p for p in parts))


# ------------------------------------------------------------------ DKIM

SYSPY = "/usr/bin/python3"  # Debian's python, which has python3-dkim


def dkimpy_usable(modules="dkim"):
    """Can Debian's python import dkimpy (and the other modules)?"""
    return subprocess.run([SYSPY, "-c", "import " + modules],
                          stderr=subprocess.DEVNULL).returncode == 0


def dkim_rsa_key(path, bits=2048):
    """An RSA private key written to path (PEM) and its DKIM key record."""
    import base64
    subprocess.run(["openssl", "genrsa", "-out", path, str(bits)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    return path, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


class Dnsmasq:
    """dnsmasq as the test's DNS server on a loopback port, answering only
    from its configuration (no upstream, no /etc/hosts). `lines` are
    dnsmasq.conf lines (txt-record=, host-record=, mx-host=, ptr-record=,
    local=/zone/ for NXDOMAIN, server=/zone/127.0.0.1#PORT to forward)."""

    def __init__(self, lines):
        self.port = free_udp_port()
        self.dir = tmpdir()
        os.chmod(self.dir, 0o755)
        conf = os.path.join(self.dir, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write("\n".join(["port=%d" % self.port, "listen-address=127.0.0.1",
                               "bind-interfaces", "no-resolv", "no-hosts"] + list(lines)))
            f.write("\n")
        self.proc = spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=" + conf,
                           "-u", "nobody", "--log-facility=" + os.path.join(self.dir, "log")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            raise RuntimeError("dnsmasq did not start")

    def forwarder(self):
        return "127.0.0.1@%d" % self.port

    def stop(self):
        stop(self.proc)


class SilentDns:
    """A UDP socket that takes DNS questions and never answers (for
    timeouts; forward a zone to it with server=/zone/127.0.0.1#PORT)."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        on_cleanup(self.s.close)


# ----------------------------------------------------------------- moatd

class Moatd:
    def __init__(self, upstream_port, conf="", listen=None, wait_upstream=True,
                 extra_args=()):
        self.dir = tmpdir()
        self.port = listen or free_port()
        self.conf = os.path.join(self.dir, "moat.conf")
        self.logfile = os.path.join(self.dir, "moatd.log")
        with open(self.conf, "w") as f:
            f.write('hostname = "moat.test"\n')
            f.write('upstream = "127.0.0.1:%d"\n' % upstream_port)
            f.write('spool_directory = "%s"\n' % self.dir)
            f.write('threads = 2\n')
            # One upstream connection per client session unless a test
            # asks for connection reuse (upstream_pool_size in conf).
            if "upstream_pool_size" not in conf:
                f.write('upstream_pool_size = %s\n' % os.environ.get('MOATTEST_POOL', '0'))
            # No reverse DNS unless a test asks for it: a client address
            # from a PROXY header must not send moatd's resolver to the
            # Internet (test_rdns.py sets reverse_dns with its own DNS).
            if "reverse_dns" not in conf:
                f.write('reverse_dns = no\n')
            if "listen " not in conf:
                f.write('listen "127.0.0.1:%d" {}\n' % self.port)
            f.write(conf)
        self.log_fh = open(self.logfile, "w")
        self.proc = spawn([MOATD, "-f", "-d", "-c", self.conf] + list(extra_args),
                          stdout=self.log_fh, stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            raise RuntimeError("moatd did not start:\n" + self.log())
        if wait_upstream:
            self.wait_log(r"event=upstream-(up|down)")

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return None

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig=signal.SIGTERM):
        """Send a signal without waiting (e.g. SIGTERM to start draining)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        """moatd's exit status, or None if it is still running after timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        rc = stop(self.proc, sig, timeout)
        self.log_fh.close()
        if rc not in (0, None) and sig == signal.SIGTERM:
            # Sanitizer reports and crashes land in the log: show them.
            tail = [l for l in self.log().splitlines()
                    if " info: " not in l and " debug: " not in l][-60:]
            print("# moatd exited with %s; log (without info/debug):" % rc)
            for l in tail:
                print("#   " + l)
            sys.stdout.flush()
        return rc


# ---------------------------------------------------------------- client

class Client:
    """A raw SMTP client: every write is one send() on a TCP_NODELAY socket."""

    def __init__(self, port, host="127.0.0.1", timeout=10, greet=True, source=None):
        self.s = socket.create_connection((host, port), timeout,
                                          (source, 0) if source else None)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.greeting = None
        if greet:
            self.greeting = self.reply()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed; partial %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        """(code, text) of one reply; text joins multi-line replies with \\n."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        return int(lines[-1][:3]), "\n".join(l[4:] for l in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def reply_or(self, timeout=10):
        """Like reply(), but (None, "eof") when the server closed the
        connection and (None, "timeout") when nothing came in time."""
        old = self.s.gettimeout()
        self.s.settimeout(timeout)
        try:
            return self.reply()
        except EOFError:
            return None, "eof"
        except socket.timeout:
            return None, "timeout"
        except OSError as e:
            return None, "error: %s" % e
        finally:
            try:
                self.s.settimeout(old)
            except OSError:
                pass

    def code(self, line):
        return self.cmd(line)[0]

    def closed(self, timeout=5):
        """True when the server closed the connection (reads EOF)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, ConnectionResetError):
            return False
        except OSError:
            return True

    def pending(self, timeout=0.3):
        """Bytes the server sent that no reply() consumed yet, waiting up
        to `timeout` for more; they stay buffered. b"" when none."""
        old = self.s.gettimeout()
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    break
                self.buf += d
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            pass
        finally:
            try:
                self.s.settimeout(old)
            except OSError:
                pass
        return self.buf

    def replies_until(self, code, limit=50):
        """Read replies up to and including the first with `code`;
        returns the list of (code, text)."""
        out = []
        while len(out) < limit:
            out.append(self.reply())
            if out[-1][0] == code:
                break
        return out

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def send_mail(port, sender="alice@example.test", rcpts=("bob@example.test",),
              body="Subject: test\r\n\r\nhello\r\n", ehlo="client.example.test",
              source=None, stuff=False):
    """A whole transaction; returns the list of (code, text) replies.
    source: the client's address; stuff: dot-stuff the body (RFC 5321
    §4.5.2) as a client does (off: the body goes as given)."""
    c = Client(port, source=source)
    out = [(c.greeting[0], c.greeting[1])]
    out.append(c.cmd("EHLO " + ehlo))
    out.append(c.cmd("MAIL FROM:<%s>" % sender))
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    if out[-1][0] == 354:
        if stuff:
            body = ("." + body if body.startswith(".") else body).replace("\r\n.", "\r\n..")
        c.send(body + ".\r\n")
        out.append(c.reply())
    out.append(c.cmd("QUIT"))
    c.close()
    return out


# -------------------------------------------------------------- recorder

class Recorder:
    """A minimal SMTP server that records the raw bytes it receives.

    behaviour: dict of hooks, e.g.
      ehlo_caps: list of EHLO keywords (default PIPELINING SIZE 8BITMIME ...)
      reply: {"MAIL": "550 5.1.0 no", ...}   fixed replies per verb
      final: "250 2.0.0 Ok: queued as X"      reply to the final dot
      close_at: "DATA" | "." | ...            close without replying
      stall_at: verb                          never reply ("CONNECT": no greeting)
      greeting: "220 ..."                     greeting line
      delay: {"DATA": 2.0, ".": 1.5, ...}     wait before replying to a verb
                                              ("CONNECT": before the greeting)
      garbage: verb                           answer verb with a line that is
                                              not an SMTP reply
      raw: {"MAIL": b"..."}                   answer verb with these exact bytes
      unsolicited: {"MAIL": "250 extra"}      after the reply to verb, wait
                                              unsolicited_delay (0.3 s) and send
                                              one more, unrequested, reply line
      sasl: ["334 VXNlcm5hbWU6", "235 ok"]    AUTH: reply with the first, and
                                              while the last reply was 334,
                                              read one more line (recorded)
                                              and reply with the next; the
                                              string "CLOSE" hangs up instead
      early_final: True                       answer the content right after
                                              the 354, before reading it
                                              ("close": then hang up unread)
    The behaviour dict may be changed while the recorder runs; each
    connection reads it as it goes.
    """

    GARBAGE = b"this is not an SMTP reply\r\n"

    def __init__(self, **behaviour):
        self.b = behaviour
        self.port = free_port()
        self.sessions = []      # list of bytearrays, one per connection
        self.commands = []      # per connection: command lines (bytes), no content
        self.ended = 0          # connections finished
        self._lock = threading.Lock()
        self.messages = []      # wire bytes of each DATA content incl. final dot
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        self.running = True
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while self.running:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        rec = bytearray()
        cmds = []
        self.sessions.append(rec)
        self.commands.append(cmds)
        f = s.makefile("rb")
        caps = self.b.get("ehlo_caps", ["PIPELINING", "SIZE 10240000", "8BITMIME",
                                        "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"])

        def say(line):
            try:
                s.sendall(line.encode() + b"\r\n")
            except OSError:
                pass

        def answer(verb, default):
            """The reply to verb, after the configured delay/stall."""
            if verb in self.b.get("delay", {}):
                time.sleep(self.b["delay"][verb])
            if self.b.get("stall_at") == verb:
                time.sleep(3600)
            if self.b.get("garbage") == verb:
                try:
                    s.sendall(self.GARBAGE)
                except OSError:
                    pass
            elif verb in self.b.get("raw", {}):
                try:
                    s.sendall(self.b["raw"][verb])
                except OSError:
                    pass
            elif verb in self.b.get("reply", {}):
                say(self.b["reply"][verb])
            else:
                default()
            if verb in self.b.get("unsolicited", {}):
                time.sleep(self.b.get("unsolicited_delay", 0.3))
                say(self.b["unsolicited"][verb])

        try:
            if "CONNECT" in self.b.get("delay", {}):
                time.sleep(self.b["delay"]["CONNECT"])
            if self.b.get("stall_at") == "CONNECT":
                time.sleep(3600)
            say(self.b.get("greeting", "220 recorder ESMTP"))
            while True:
                line = f.readline(65536)
                if not line:
                    break
                rec += line
                cmds.append(bytes(line))
                verb = line.split(b" ")[0].strip().upper().decode("latin-1")
                if verb == "DATA":
                    if self.b.get("close_at") == "DATA":
                        break
                    if any(("DATA" in self.b.get(k, {})) for k in ("reply", "raw", "delay")) \
                            or self.b.get("garbage") == "DATA" \
                            or self.b.get("stall_at") == "DATA":
                        got = []
                        answer("DATA", lambda: got.append(say("354 go ahead")))
                        if not got:
                            continue        # DATA refused (or garbage)
                    elif self.b.get("early_final"):
                        # One segment: the reply is there before any content.
                        say("354 go ahead\r\n" + self.b.get("final", "250 2.0.0 Ok: queued early"))
                    else:
                        say("354 go ahead")
                    early = self.b.get("early_final")
                    if early:
                        if early == "close":
                            break       # and never read the content
                    msg = bytearray()
                    while True:
                        l2 = f.readline(1 << 20)
                        if not l2:
                            return
                        rec += l2
                        msg += l2
                        if l2 == b".\r\n":
                            break
                    self.messages.append(bytes(msg))
                    if self.b.get("close_at") == ".":
                        break
                    if early:
                        continue
                    n = len(self.messages)
                    answer(".", lambda: say(self.b.get("final",
                                                       "250 2.0.0 Ok: queued as REC%d" % n)))
                    continue
                if verb == "AUTH" and "sasl" in self.b:
                    closed = False
                    for i, r in enumerate(self.b["sasl"]):
                        if i > 0:
                            l2 = f.readline(65536)
                            if not l2:
                                closed = True
                                break
                            rec += l2
                            cmds.append(bytes(l2))
                        if r == "CLOSE":
                            closed = True
                            break
                        say(r)
                        if not r.startswith("334"):
                            break
                    if closed:
                        break
                    continue
                if self.b.get("close_at") == verb:
                    break
                if verb == "QUIT" and not any(
                        "QUIT" in self.b.get(k, {}) for k in ("reply", "raw")):
                    say("221 2.0.0 bye")
                    break

                def default(verb=verb):
                    if verb == "EHLO":
                        lines = ["recorder"] + caps
                        for i, c in enumerate(lines):
                            say("250%s%s" % ("-" if i < len(lines) - 1 else " ", c))
                    elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP", "XFORWARD"):
                        say("250 2.0.0 ok")
                    elif verb == "XCLIENT":
                        say("220 recorder ESMTP")
                    else:
                        say("502 5.5.2 unknown")
                answer(verb, default)
        except OSError:
            pass                # moat reset the connection: that is its right
        finally:
            try:
                s.close()
            except OSError:
                pass
            with self._lock:
                self.ended += 1

    def wait_ended(self, n, timeout=5):
        """Wait until `n` connections have finished; True if they did."""
        end = time.time() + timeout
        while self.ended < n and time.time() < end:
            time.sleep(0.02)
        return self.ended >= n

    def wire(self):
        """Every session's bytes as text (the probe's included)."""
        return [bytes(r).decode("latin-1") for r in list(self.sessions)]

    def mail_sessions(self):
        """Sessions that got as far as MAIL (i.e. not the capability probe)."""
        return [w for w in self.wire() if "\nMAIL FROM:" in "\n" + w]

    def wait_messages(self, n, timeout=5):
        end = time.time() + timeout
        while len(self.messages) < n and time.time() < end:
            time.sleep(0.02)
        return self.messages

    def stop(self):
        self.running = False
        try:
            self.lsock.close()
        except OSError:
            pass


# --------------------------------------------------------------- postfix

def postfix_usable():
    """None when a throwaway Postfix can run here, else the reason not."""
    if os.geteuid() != 0:
        return "Postfix instances need root"
    for prog in ("postfix", "postqueue", "sendmail"):
        if shutil.which(prog) is None and not os.path.exists("/usr/sbin/" + prog):
            return "%s not installed" % prog
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


class Postfix:
    """A throwaway Postfix instance: main.cf, master.cf, queue, data,
    mailboxes and log (maillog_file) all in one temporary directory.

    listen: give it an smtpd on 127.0.0.1:<self.port> (XCLIENT allowed
    from 127.0.0.0/8); mailboxes: addresses delivered by the virtual agent
    to Maildirs under self.dir/vmail/<local part>/Maildir/; main: extra
    main.cf settings (e.g. relayhost). Stopped with `postfix stop` (then
    its master by PID) at cleanup, even when the test fails.
    """

    SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"""

    def __init__(self, hostname="mx.example.test", listen=True,
                 mailboxes=("bob@example.test",), main=None):
        import pwd
        self.hostname = hostname
        self.dir = tmpdir()
        os.chmod(self.dir, 0o755)      # postfix and the mailbox owner traverse it
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.vmail = os.path.join(self.dir, "vmail")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = free_port() if listen else None
        self.running = False
        nobody = pwd.getpwnam("nobody")
        pf = pwd.getpwnam("postfix")
        for d in (self.conf, self.queue, self.vmail, os.path.join(self.dir, "data")):
            os.mkdir(d, 0o755)
        os.chown(os.path.join(self.dir, "data"), pf.pw_uid, pf.pw_gid)
        os.chown(self.vmail, nobody.pw_uid, nobody.pw_gid)
        domains = sorted({a.split("@", 1)[1] for a in mailboxes})
        with open(os.path.join(self.conf, "vmailbox"), "w") as f:
            for a in mailboxes:
                f.write("%s %s/Maildir/\n" % (a, a.split("@", 1)[0]))
        cf = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": os.path.join(self.dir, "data"),
            "mail_owner": "postfix",
            "myhostname": hostname,
            "mydomain": hostname.split(".", 1)[-1],
            "myorigin": "$mydomain",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_client_port_logging": "yes",
            "virtual_mailbox_domains": " ".join(domains) if domains else "",
            "virtual_mailbox_maps": "texthash:" + os.path.join(self.conf, "vmailbox"),
            "virtual_mailbox_base": self.vmail,
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "virtual_minimum_uid": "1",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "smtputf8_enable": "no",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
        }
        cf.update(main or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in cf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            if listen:
                f.write("127.0.0.1:%d inet n - n - - smtpd\n" % self.port)
            f.write(self.SERVICES)
        on_cleanup(self.stop)

    def run(self, *argv, input=None, timeout=60):
        """Run a Postfix command on this instance; (exit status, output)."""
        p = subprocess.run(list(argv), input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode("latin-1")

    def check(self):
        return self.run("postfix", "-c", self.conf, "check")

    def start(self):
        rc, out = self.run("postfix", "-c", self.conf, "start")
        if rc == 0:
            self.running = True
            if self.port and not wait_port(self.port, timeout=20):
                return 1, out + "\nsmtpd port %d not listening\n%s" % (self.port, self.log())
        return rc, out

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.running:
            return 0
        pid = self.master_pid()
        rc, _ = self.run("postfix", "-c", self.conf, "stop")
        # Belt and braces: the master by its PID.
        if pid is not None:
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.running = False
        return rc

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=15):
        end = time.time() + timeout
        while True:
            m = re.search(pattern, self.log(), re.M)
            if m or time.time() >= end:
                return m
            time.sleep(0.05)

    def sendmail(self, message, sender, rcpts, args=()):
        """Inject a message with this instance's sendmail (-i: a lone "."
        line is content)."""
        if isinstance(message, str):
            message = message.encode()
        return self.run("sendmail", "-C", self.conf, "-i", "-f", sender,
                        *args, *rcpts, input=message)

    def flush(self):
        return self.run("postqueue", "-c", self.conf, "-f")

    def mailq(self):
        return self.run("postqueue", "-c", self.conf, "-p")[1]

    def maildir(self, user):
        """Delivered messages (bytes) of one mailbox, oldest first."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.vmail, user, "Maildir", sub)
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    with open(p, "rb") as f:
                        out.append((os.path.getmtime(p), n, f.read()))
                except OSError:
                    pass
        return [m for _, _, m in sorted(out)]

    def wait_maildir(self, user, needle, count=1, timeout=10):
        """Messages of `user` containing `needle` (bytes); waits until there
        are `count` of them or the time is up."""
        end = time.time() + timeout
        while True:
            got = [m for m in self.maildir(user) if needle in m]
            if len(got) >= count or time.time() >= end:
                return got
            time.sleep(0.05)


# --------------------------------------------------------------- ClamAV

# Without the Internet there is no official signature database: tests make
# their own (TESTING.md). EICAR's signature lives in the official database,
# so the test database carries a pattern for it too.
EICAR = (r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
AV_MARKER = "MOAT-AV-TEST-MARKER-7f3a91"
# Matches only once dot-stuffing is undone: a line starting with one dot.
AV_DOT_MARKER = "\n.MOAT-DOT-LINE-c41e"
CLAM_TESTFILES = "/usr/share/clamav-testfiles"


def clamav_usable():
    return (os.path.exists(os.path.join(CLAM_TESTFILES, "clam.exe")) and
            shutil.which("sigtool") is not None)


def clamav_db(d, extra_ndb=""):
    """Write a test signature database into directory d: ndb patterns for
    the marker, the dot-line marker and EICAR, and MD5 signatures (sigtool)
    of clam.exe from clamav-testfiles, which ClamAV also finds inside the
    archives of that package. Returns d."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "moat.ndb"), "w") as f:
        f.write("Moat.Test.Marker:0:*:%s\n" % AV_MARKER.encode().hex())
        f.write("Moat.Test.DotLine:0:*:%s\n" % AV_DOT_MARKER.encode().hex())
        f.write("Moat.Test.EICAR:0:*:%s\n" % EICAR.encode().hex())
        f.write(extra_ndb)
    out = subprocess.run(["sigtool", "--md5", os.path.join(CLAM_TESTFILES, "clam.exe")],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    md5, size, _ = out.strip().split(":", 2)
    with open(os.path.join(d, "moat.hdb"), "w") as f:
        f.write("%s:%s:Moat.Test.ClamExe\n" % (md5, size))
    return d


class Clamd:
    """A real clamd (clamav-daemon) on its own Unix socket and database."""

    def __init__(self, db, extra=""):
        self.dir = tmpdir()
        self.sock = os.path.join(self.dir, "clamd.sock")
        self.logfile = os.path.join(self.dir, "clamd.log")
        conf = write_file(os.path.join(self.dir, "clamd.conf"),
                          "LocalSocket %s\nDatabaseDirectory %s\nForeground yes\n"
                          "LogFile %s\nTemporaryDirectory %s\nAlertExceedsMax yes\n%s"
                          % (self.sock, db, self.logfile, self.dir, extra))
        self.proc = spawn(["clamd", "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        end = time.time() + 60
        while time.time() < end:
            if os.path.exists(self.sock):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(self.sock)
                    s.sendall(b"zPING\0")
                    if s.recv(16).startswith(b"PONG"):
                        s.close()
                        return
                    s.close()
                except OSError:
                    pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("clamd did not start")

    def stop(self):
        stop(self.proc)
