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


def _cleanup():
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

    def done(self):
        print("1..%d" % self.n)
        sys.stdout.flush()
        _cleanup()
        sys.exit(1 if self.failed else 0)


# --------------------------------------------------------------- ports

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

    def messages(self, wait=2.0, count=1):
        """Dumped messages (text), oldest first; waits for `count`."""
        end = time.time() + wait
        while True:
            files = sorted((f for f in os.listdir(self.dir)),
                           key=lambda f: os.path.getmtime(os.path.join(self.dir, f)))
            if len(files) >= count or time.time() >= end:
                break
            time.sleep(0.05)
        out = []
        for f in files:
            with open(os.path.join(self.dir, f), "rb") as fh:
                out.append(fh.read().decode("latin-1"))
        return out

    def stop(self):
        stop(self.proc)


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

    def stop(self, sig=signal.SIGTERM, timeout=15):
        rc = stop(self.proc, sig, timeout)
        self.log_fh.close()
        return rc


# ---------------------------------------------------------------- client

class Client:
    """A raw SMTP client: every write is one send() on a TCP_NODELAY socket."""

    def __init__(self, port, host="127.0.0.1", timeout=10, greet=True):
        self.s = socket.create_connection((host, port), timeout)
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

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def send_mail(port, sender="alice@example.test", rcpts=("bob@example.test",),
              body="Subject: test\r\n\r\nhello\r\n", ehlo="client.example.test"):
    """A whole transaction; returns the list of (code, text) replies."""
    c = Client(port)
    out = [(c.greeting[0], c.greeting[1])]
    out.append(c.cmd("EHLO " + ehlo))
    out.append(c.cmd("MAIL FROM:<%s>" % sender))
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    if out[-1][0] == 354:
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
      stall_at: verb                          never reply
      greeting: "220 ..."                     greeting line
    """

    def __init__(self, **behaviour):
        self.b = behaviour
        self.port = free_port()
        self.sessions = []      # list of bytearrays, one per connection
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
        self.sessions.append(rec)
        f = s.makefile("rb")
        caps = self.b.get("ehlo_caps", ["PIPELINING", "SIZE 10240000", "8BITMIME",
                                        "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"])

        def say(line):
            try:
                s.sendall(line.encode() + b"\r\n")
            except OSError:
                pass

        try:
            say(self.b.get("greeting", "220 recorder ESMTP"))
            while True:
                line = f.readline(65536)
                if not line:
                    break
                rec += line
                verb = line.split(b" ")[0].strip().upper().decode("latin-1")
                if verb == "DATA":
                    if self.b.get("close_at") == "DATA":
                        break
                    if "DATA" in self.b.get("reply", {}):
                        say(self.b["reply"]["DATA"])
                        continue
                    say("354 go ahead")
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
                    if self.b.get("stall_at") == ".":
                        time.sleep(3600)
                    say(self.b.get("final", "250 2.0.0 Ok: queued as REC%d" % len(self.messages)))
                    continue
                if self.b.get("close_at") == verb:
                    break
                if self.b.get("stall_at") == verb:
                    time.sleep(3600)
                if verb in self.b.get("reply", {}):
                    say(self.b["reply"][verb])
                elif verb == "EHLO":
                    lines = ["recorder"] + caps
                    for i, c in enumerate(lines):
                        say("250%s%s" % ("-" if i < len(lines) - 1 else " ", c))
                elif verb == "QUIT":
                    say("221 2.0.0 bye")
                    break
                elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP", "XFORWARD"):
                    say("250 2.0.0 ok")
                elif verb == "XCLIENT":
                    say("220 recorder ESMTP")
                else:
                    say("502 5.5.2 unknown")
        finally:
            try:
                s.close()
            except OSError:
                pass

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
