"""moat-scand, the isolated libclamav scanner (filters/av/scand.c), driven
the way moatd drives it: SOCK_SEQPACKET socketpairs as descriptors 3..,
requests of filters/av/scanproto.h with the message as an SCM_RIGHTS
descriptor (a memfd, or a read-only file), text replies.

The signature database is built here: an .ndb with a marker string, the
EICAR string and a pattern that only matches after dot-unstuffing; an .hdb
of MD5s (sigtool --md5) of files from clamav-testfiles, found through
ClamAV's unpacking. Every scanner runs as nobody with sandbox=yes (the
default) unless a check says otherwise; every process is stopped by PID.
"""

import base64
import io
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, spawn, stop, tmpdir, write_file  # noqa: E402

SCAND = os.environ.get("MOAT_SCAND") or os.path.join(
    os.path.dirname(os.environ.get("MOATD", "./moatd")), "moat-scand")
TESTFILES = "/usr/share/clamav-testfiles"
MAGIC = 0x4e43534d
OP_SCAN, OP_PING = 1, 2
F_DOTSTUFFED = 1
MARKER = b"MOAT-TEST-MARKER-7f3a9c"
MARKER2 = b"MOAT-SECOND-MARKER-41d0"
MARKER3 = b"MOAT-THIRD-MARKER-9be2"
DOTPAT = b"DOTTED-A\r\n.DOTTED-B"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
USER = "nobody"

t = TAP()
if not os.access(SCAND, os.X_OK):
    print("1..0 # SKIP %s not built" % SCAND)
    sys.exit(0)
for tool in ("sigtool", "zip"):
    if shutil.which(tool) is None:
        print("1..0 # SKIP %s not installed" % tool)
        sys.exit(0)
if not os.path.isdir(TESTFILES):
    print("1..0 # SKIP clamav-testfiles not installed")
    sys.exit(0)

WORK = tmpdir()


def ndb(name, pattern):
    return "%s:0:*:%s\n" % (name, pattern.hex())


def hdb_line(path, name):
    out = subprocess.run(["sigtool", "--md5", path], stdout=subprocess.PIPE,
                         check=True, timeout=60).stdout.decode().strip()
    md5, size, _ = out.split(":", 2)
    return "%s:%s:%s\n" % (md5, size, name)


def make_db(path, extra=""):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    write_file(os.path.join(path, "moat.ndb"),
               ndb("Moat.Test.Marker", MARKER) + ndb("Moat.Test.Eicar", EICAR)
               + ndb("Moat.Test.Dotted", DOTPAT) + extra)
    write_file(os.path.join(path, "moat.hdb"),
               hdb_line(os.path.join(TESTFILES, "clam.exe"), "Moat.Test.ClamExe")
               + hdb_line(os.path.join(TESTFILES, "clam.pdf"), "Moat.Test.ClamPdf"))
    return path


def filler(path, n=300000):
    """Many signatures, so that a load takes a noticeable time."""
    r = random.Random(n)
    with open(path, "w") as f:
        for i in range(n):
            f.write("Moat.Test.Filler%d:0:*:%s\n" % (i, r.randbytes(12).hex()))


DB = make_db(os.path.join(WORK, "db"))


# --------------------------------------------------------------- protocol

def request(op, rid, length=0, flags=0, magic=MAGIC, version=1):
    return struct.pack("=IHHQQII", magic, version, op, rid, length, flags, 0)


def parse_reply(data):
    """A reply as a dict; raises ValueError when it breaks scanproto.h."""
    text = data.decode("ascii")
    if not text.endswith("\n") or len(data) > 16384:
        raise ValueError("bad framing: %r" % text)
    lines = text[:-1].split("\n")
    m = re.fullmatch(r"MSCN1 (0|[1-9][0-9]*) (clean|infected|incomplete|error|busy|notready)",
                     lines[0])
    if not m:
        raise ValueError("bad first line: %r" % lines[0])
    r = {"id": int(m.group(1)), "status": m.group(2), "virus": [], "heuristic": [],
         "limit": [], "files": [], "engine": None, "error": None, "time": None,
         "files_dropped": 0, "raw": text}
    for line in lines[1:]:
        kw, _, rest = line.partition(" ")
        if kw in ("virus", "heuristic", "limit"):
            if not re.fullmatch(r"[\x21-\x7e]{1,127}", rest):
                raise ValueError("bad name line %r" % line)
            r[kw].append(rest)
        elif kw == "file":
            d, s, ty, name = rest.split(" ")
            r["files"].append((int(d), int(s), ty,
                               None if name == "-" else
                               re.sub(r"%([0-9A-Fa-f]{2})",
                                      lambda x: chr(int(x.group(1), 16)), name)))
        elif kw == "engine":
            a, b = rest.split(" ")
            r["engine"] = (int(a), int(b))
        elif kw == "time":
            r["time"] = int(rest)
        elif kw == "error":
            r["error"] = rest
        elif kw == "files_dropped":
            r["files_dropped"] = int(rest)
    return r


class Scand:
    """One moat-scand with n request channels; stderr goes to a log file."""

    def __init__(self, db=DB, n=1, opts=(), extra=(), user=USER, wait=True):
        self.pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                      for _ in range(n)]
        ends = [b.fileno() for a, b in self.pairs]
        self.logpath = os.path.join(WORK, "scand.%d.log" % random.randrange(1 << 30))
        argv = [SCAND, "-f", "-d", db, "-n", str(n), "-T",
                os.path.join(WORK, "tmp")] + list(extra)
        if user:
            argv += ["-u", user]
        for o in opts:
            argv += ["-o", o]

        def child_fds():
            # Requests are descriptors 3 .. 3+n-1 in the child.
            import fcntl
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in ends]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)

        with open(self.logpath, "w") as log:
            self.p = spawn(argv, preexec_fn=child_fds, close_fds=False, stderr=log)
        self.socks = []
        for a, b in self.pairs:
            b.close()
            self.socks.append(a)
        if wait:
            self.wait_ready()

    @property
    def pid(self):
        return self.p.pid

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def send(self, data, fds=(), ch=0):
        if fds:
            socket.send_fds(self.socks[ch], [data], list(fds))
        else:
            self.socks[ch].send(data)

    def recv(self, ch=0, timeout=60):
        self.socks[ch].settimeout(timeout)
        data = self.socks[ch].recv(20000)
        if not data:
            raise EOFError("scanner closed the channel")
        return parse_reply(data)

    def ping(self, rid=1, ch=0):
        self.send(request(OP_PING, rid), ch=ch)
        return self.recv(ch)

    def send_scan(self, content, rid=1, flags=0, ch=0, length=None, fd=None):
        own = fd is None
        if own:
            fd = os.memfd_create("msg", os.MFD_CLOEXEC)
            os.write(fd, content)
        try:
            self.send(request(OP_SCAN, rid, len(content) if length is None else length,
                              flags), [fd], ch=ch)
        finally:
            if own:
                os.close(fd)

    def scan(self, content, rid=1, **kw):
        self.send_scan(content, rid, **kw)
        r = self.recv(kw.get("ch", 0))
        if r["id"] != rid:
            raise ValueError("reply for %d, wanted %d" % (r["id"], rid))
        return r

    def wait_ready(self, timeout=60):
        return self.wait_generation(1, timeout)

    def wait_generation(self, gen, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.ping(999)
            if r["status"] == "clean" and r["engine"] and r["engine"][1] >= gen:
                return r
            time.sleep(0.05)
        raise TimeoutError("generation %d not reached" % gen)

    def wait_log(self, pattern, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.05)
        return False

    def status_field(self, name):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                m = re.search(r"^%s:\s*(.*)$" % name, f.read(), re.M)
                return m.group(1) if m else None
        except OSError:
            return None

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def close(self, ch=None):
        for i, s in enumerate(self.socks):
            if ch is None or ch == i:
                s.close()

    def stop(self, sig=signal.SIGTERM):
        return stop(self.p, sig)


# --------------------------------------------------------------- messages

def message(body, headers=()):
    head = [b"From: alice@example.test", b"To: bob@example.test",
            b"Subject: test", b"Message-ID: <%d@example.test>" % random.randrange(1 << 40)]
    return b"\r\n".join(head + list(headers)) + b"\r\n\r\n" + body


def b64lines(data):
    e = base64.b64encode(data)
    return b"\r\n".join(e[i:i + 76] for i in range(0, len(e), 76))


def multipart(parts, text=b"See the attachment.\r\n"):
    """parts: (content type, file name or None, bytes, base64?)."""
    bnd = b"=_moat_boundary_1"
    out = [b"--" + bnd, b"Content-Type: text/plain", b"", text]
    for ctype, name, data, b64 in parts:
        out.append(b"--" + bnd)
        out.append(b"Content-Type: " + ctype + (b'; name="' + name + b'"' if name else b""))
        if name:
            out.append(b'Content-Disposition: attachment; filename="' + name + b'"')
        if b64:
            out.append(b"Content-Transfer-Encoding: base64")
        out += [b"", b64lines(data) if b64 else data]
    out += [b"--" + bnd + b"--", b""]
    return message(b"\r\n".join(out),
                   [b"MIME-Version: 1.0",
                    b'Content-Type: multipart/mixed; boundary="' + bnd + b'"'])


def attach(name, data, ctype=b"application/octet-stream"):
    return multipart([(ctype, name.encode(), data, True)])


def zipof(members, method=zipfile.ZIP_DEFLATED):
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return z.getvalue()


def targz(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()


def dotstuff(content):
    """SMTP wire form of CRLF content: dot-stuffed, ending with .CRLF."""
    lines = content.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines) + b".\r\n"


MARKER_TEXT = b"the marker: " + MARKER + b"\n"


def found(r, prefix):
    return any(v.startswith(prefix) for v in r["virus"])


# ----------------------------------------------------------------- checks

def start_and_ping():
    d = os.path.join(WORK, "slowdb")
    make_db(d)
    filler(os.path.join(d, "filler.ndb"))
    s = Scand(db=d, wait=False)
    r = s.ping(1)
    t.eq(r["status"], "notready", "PING while the engine loads: notready")
    t.like(r["error"] or "", "loading", "notready says the engine is loading")
    s.send_scan(message(b"hello\r\n"), 2)
    r = s.recv()
    t.eq((r["id"], r["status"]), (2, "notready"), "SCAN while loading: notready")
    r = s.wait_ready()
    t.ok(r["engine"][0] > 300000 and r["engine"][1] == 1,
         "PING after the load: clean, engine <signatures> 1", r["raw"])
    t.ok(s.wait_log(r"event=loaded signatures=\d+ generation=1 ms=(\d+)"),
         "load logged with its time", s.log())
    m = re.search(r"event=loaded signatures=(\d+) generation=1 ms=(\d+)", s.log())
    if m:
        t.diag("engine load: %s signatures in %s ms" % m.groups())
    t.eq(s.stop(), 0, "SIGTERM: exit 0")


S = None  # the main scanner: default options


def basics():
    global S
    S = Scand()
    r = S.ping(7)
    t.eq((r["id"], r["status"], r["engine"]), (7, "clean", (5, 1)),
         "PING: clean, engine 5 signatures, generation 1")
    t.eq(S.status_field("Seccomp"), "2", "seccomp filter mode (Seccomp: 2)")
    t.eq(S.status_field("NoNewPrivs"), "1", "no_new_privs set")
    uid = S.status_field("Uid") or ""
    t.eq(uid.split()[:1], [str(pwd.getpwnam(USER).pw_uid)], "runs as nobody after -u")

    r = S.scan(message(b"Hello Bob,\r\nnothing to see.\r\n"), 10)
    t.eq((r["id"], r["status"], r["virus"]), (10, "clean", []), "clean message")
    t.ok(r["time"] is not None and r["engine"] == (5, 1), "clean reply has time and engine",
         r["raw"])
    t.ok(r["files"][:1] and r["files"][0][0] == 0 and r["files"][0][2] == "MAIL",
         "file line for the message: depth 0, type MAIL", r["raw"])
    t.ok(all(f[3] is None for f in r["files"]),
         "parts without a name get none (not libclamav's temporary file name)", r["raw"])

    r = S.scan(message(b"inline: " + EICAR + b"\r\n"), 11)
    t.eq(r["status"], "infected", "EICAR inline: infected")
    t.ok(found(r, "Moat.Test.Eicar"), "EICAR inline: named", r["raw"])

    r = S.scan(attach("note.txt", MARKER_TEXT), 12)
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Marker"),
         "marker in a base64 attachment (only visible decoded)", r["raw"])
    t.ok(MARKER not in attach("note.txt", MARKER_TEXT), "(the marker is not in the raw mail)")

    r = S.scan(attach("a.zip", zipof([("inner name.txt", MARKER_TEXT)])), 13)
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Marker"),
         "marker inside a zip attachment", r["raw"])
    names = {(f[0], f[2], f[3]) for f in r["files"]}
    t.ok((1, "ZIP", "a.zip") in names, "file line: the zip at depth 1, type ZIP, its name",
         r["raw"])
    t.ok((2, "TEXT_ASCII", "inner name.txt") in names,
         "file line: the zip member, name unescaped (a space), type TEXT_ASCII", r["raw"])

    inner = zipof([("m.txt", MARKER_TEXT)])
    r = S.scan(attach("outer.zip", zipof([("inner.zip", inner)])), 14)
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Marker"),
         "marker in a zip inside a zip", r["raw"])
    t.ok(any(f[0] == 3 and f[3] == "m.txt" for f in r["files"]),
         "file line at depth 3 for the innermost member", r["raw"])
    r = S.scan(attach("x.tar.gz", targz([("dir/in.zip", inner)])), 15)
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Marker"),
         "marker in a zip inside a tar.gz", r["raw"])

    half = len(MARKER) // 2
    r = S.scan(multipart([(b"text/plain", None, b"a " + MARKER[:half] + b"\r\n", False),
                          (b"text/plain", None, MARKER[half:] + b" b\r\n", False)]), 16)
    # ClamAV scans each MIME part on its own (and the raw message, where
    # the boundary lines sit between the halves): a pattern split across
    # parts is not found. Recorded here so a change is noticed.
    t.eq(r["status"], "clean",
         "marker split across two MIME parts: not detected (ClamAV scans parts separately)")

    r = S.scan(message(b"one\r\n" + MARKER_TEXT.replace(b"\n", b"\r\n") + b"two\r\n"), 17)
    t.ok(found(r, "Moat.Test.Marker"), "marker in a plain body", r["raw"])

    r = S.scan(b"", 18)
    t.eq((r["id"], r["status"]), (18, "clean"), "length 0: clean")


def testfiles():
    """Every clamav-testfiles sample, as an attachment and raw."""
    files = sorted(os.listdir(TESTFILES))
    missed = []
    for i, name in enumerate(files):
        with open(os.path.join(TESTFILES, name), "rb") as f:
            data = f.read()
        r = S.scan(attach(name, data), 100 + i)
        if name == "clam_cache_emax.tgz":
            ok = r["status"] in ("infected", "incomplete")
        else:
            ok = r["status"] == "infected" and (found(r, "Moat.Test.ClamExe")
                                                or found(r, "Moat.Test.ClamPdf"))
        if not ok:
            missed.append((name, r["raw"]))
    t.ok(not missed, "all %d clamav-testfiles attachments detected with sandbox=yes "
         "(zip, 7z, tar.gz, cab, arj, cpio, ole2, pdf, rtf, packed PEs...)" % len(files),
         missed)
    for name in ("clam.zip", "clam.7z", "clam.tar.gz", "clam.exe.bz2", "clam.cab",
                 "clam.ole.doc", "clam-upx.exe"):
        with open(os.path.join(TESTFILES, name), "rb") as f:
            r = S.scan(f.read(), 200)
        t.ok(r["status"] == "infected" and found(r, "Moat.Test.ClamExe"),
             "%s (raw): clam.exe found through unpacking" % name, r["raw"])
    with open(os.path.join(TESTFILES, "clam.pdf"), "rb") as f:
        r = S.scan(f.read(), 201)
    t.ok(found(r, "Moat.Test.ClamPdf") and found(r, "Moat.Test.ClamExe"),
         "clam.pdf: every match reported (the pdf's MD5 and clam.exe inside)", r["raw"])
    with open(os.path.join(TESTFILES, "clam_cache_emax.tgz"), "rb") as f:
        r = S.scan(f.read(), 202)
    t.ok(r["status"] in ("incomplete", "infected") and r["status"] != "clean",
         "clam_cache_emax.tgz (a recursion bomb): never clean", r["raw"])
    t.ok(S.p.poll() is None, "the sandboxed scanner survived every sample")


def dotstuffing():
    content = message(b"first line\r\n" + DOTPAT + b" rest\r\n..two dots\r\n.\r\nlast\r\n")
    wire = dotstuff(content)
    t.ok(DOTPAT not in wire, "(the pattern is not in the wire form)")
    r = S.scan(wire, 20, flags=F_DOTSTUFFED)
    t.ok(found(r, "Moat.Test.Dotted"), "dot-stuffed: found after unstuffing", r["raw"])
    t.eq(r["files"][0][1] if r["files"] else None, len(content),
         "dot-stuffed: the scanned message is the unstuffed content (size)")
    r = S.scan(wire, 21)
    t.ok(not found(r, "Moat.Test.Dotted"), "same bytes without SCAN_F_DOTSTUFFED: not found",
         r["raw"])
    r = S.scan(wire[:-3], 22, flags=F_DOTSTUFFED)
    t.eq(r["status"], "error", "dot-stuffed without the final .CRLF: error")
    r = S.scan(wire + b"MAIL FROM:<x>\r\n", 23, flags=F_DOTSTUFFED)
    t.eq(r["status"], "error", "dot-stuffed with bytes after the end: error")
    r = S.scan(b".\r\n", 24, flags=F_DOTSTUFFED)
    t.eq(r["status"], "clean", "dot-stuffed empty message: clean")
    # A read-only file descriptor (a reopened spool): the private mapping
    # is written by the unstuffing, the file is not.
    path = os.path.join(WORK, "spool")
    with open(path, "wb") as f:
        f.write(wire)
    fd = os.open(path, os.O_RDONLY)
    try:
        S.send_scan(wire, 25, flags=F_DOTSTUFFED, fd=fd)
        r = S.recv()
    finally:
        os.close(fd)
    t.ok(found(r, "Moat.Test.Dotted"), "read-only spool file, dot-stuffed: found", r["raw"])
    with open(path, "rb") as f:
        t.ok(f.read() == wire, "the spool file is unchanged")


def lengths():
    body = message(b"clean part\r\n")
    data = body + MARKER_TEXT
    r = S.scan(data, 30, length=len(body))
    t.eq(r["status"], "clean", "only `length` bytes are scanned (marker after them)")
    r = S.scan(body, 31, length=len(body) + 1)
    t.eq(r["status"], "error", "length beyond the descriptor's size: error")
    t.like(r["error"] or "", "shorter", "error says the descriptor is short")


def limits():
    s = Scand(opts=["max_filesize=1M", "max_scansize=4M", "max_recursion=5"])
    deep = MARKER_TEXT
    name = "m.txt"
    for i in range(8):
        deep = zipof([(name, deep)])
        name = "d%d.zip" % i
    cases = [
        ("zip bomb (2 MiB of zeros deflated, > max_filesize)",
         attach("bomb.zip", zipof([("zeros", b"\0" * (2 << 20))])), "MaxFileSize"),
        ("stored zip member > max_filesize",
         attach("s.zip", zipof([("zeros", b"\0" * (2 << 20))], zipfile.ZIP_STORED)),
         "MaxFileSize"),
        ("10 members of 1 MiB (> max_scansize)",
         attach("m.zip", zipof([("z%d" % i, b"\0" * ((1 << 20) - 1)) for i in range(10)])),
         "MaxScanSize"),
        ("attachment over max_filesize", attach("big.bin", os.urandom(1500000)),
         "MaxFileSize"),
        ("marker 9 zips deep (> max_recursion)", attach("deep.zip", deep), "MaxRecursion"),
    ]
    for i, (what, msg, lim) in enumerate(cases):
        r = s.scan(msg, 40 + i)
        t.ok(r["status"] == "incomplete" and
             any(x.startswith("Heuristics.Limits.Exceeded." + lim) for x in r["limit"]),
             "%s: incomplete, limit %s" % (what, lim), r["raw"])
    r = s.scan(attach("ok.zip", zipof([("m.txt", MARKER_TEXT)])), 49)
    t.ok(r["status"] == "infected" and not r["limit"], "under the limits: infected, no limit",
         r["raw"])
    s.stop()

    s = Scand(opts=["max_scantime=1", "max_scansize=100M", "max_filesize=100M"])
    big = attach("big.zip", zipof([("f%d" % i, os.urandom(200000)) for i in range(40)],
                                  zipfile.ZIP_STORED))
    r = s.scan(big, 50)
    t.ok(r["status"] in ("incomplete", "error") and r["status"] != "clean",
         "max_scantime=1 ms on an 8 MB zip: not clean (%s)" % r["status"], r["raw"])
    s.stop()


def heuristics():
    src = os.path.join(WORK, "secret.txt")
    write_file(src, MARKER_TEXT.decode())
    enc = os.path.join(WORK, "enc.zip")
    subprocess.run(["zip", "-q", "-j", "-P", "pw", enc, src], check=True, timeout=60)
    with open(enc, "rb") as f:
        encdata = f.read()
    r = S.scan(attach("enc.zip", encdata), 60)
    t.ok(r["status"] == "clean" and "Heuristics.Encrypted.Zip" in r["heuristic"],
         "encrypted zip: status clean with heuristic Heuristics.Encrypted.Zip", r["raw"])
    s = Scand(opts=["heuristics=no", "files=no"])
    r = s.scan(attach("enc.zip", encdata), 61)
    t.ok(r["status"] == "clean" and not r["heuristic"], "heuristics=no: no heuristic line",
         r["raw"])
    t.eq(r["files"], [], "files=no: no file lines")
    r = s.scan(attach("a.zip", zipof([("m.txt", MARKER_TEXT)])), 62)
    t.eq(r["status"], "infected", "heuristics=no still finds signatures")
    s.stop()


def timing():
    payload = os.urandom(75000) + MARKER_TEXT
    msg = attach("report.zip", zipof([("report.bin", payload)], zipfile.ZIP_STORED))
    times = []
    for i in range(10):
        r = S.scan(msg, 70 + i)
        times.append(r["time"])
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Marker"),
         "%d KB message with a zip: infected" % (len(msg) // 1000), r["raw"])
    times.sort()
    t.diag("scan of a %d KB message with a zip: median %d us, max %d us"
           % (len(msg) // 1000, times[len(times) // 2], times[-1]))


def busy():
    s = Scand(extra=["-t", "1"], opts=["queue_max=1"])
    msg = attach("big.bin", os.urandom(3 << 20))
    n = 20
    for i in range(n):
        s.send_scan(msg, 1000 + i)
    got = {}
    for _ in range(n):
        r = s.recv(timeout=120)
        got[r["id"]] = r["status"]
    t.eq(sorted(got), list(range(1000, 1000 + n)), "queue_max=1: every request answered once")
    nbusy = sum(1 for v in got.values() if v == "busy")
    t.ok(nbusy >= 1 and nbusy <= n - 2,
         "queue_max=1, 1 thread, %d at once: %d busy, the rest scanned" % (n, nbusy), got)
    t.ok(all(v in ("busy", "clean") for v in got.values()), "no other status", got)
    s.stop()


def bad_requests():
    base = S.nfds()
    S.send(request(OP_PING, 300)[:31])
    r = S.recv()
    t.eq(r["status"], "error", "request of 31 bytes: error")
    S.send(request(OP_PING, 301) + b"x" * 32)
    r = S.recv()
    t.eq(r["status"], "error", "packet longer than a request (truncated read): error")
    S.send(request(OP_PING, 302, magic=0x12345678))
    r = S.recv()
    t.eq((r["id"], r["status"]), (302, "error"), "bad magic: error, with the id")
    S.send(request(OP_PING, 303, version=2))
    t.eq(S.recv()["status"], "error", "other version: error")
    S.send(request(9, 304))
    t.eq(S.recv()["status"], "error", "unknown op: error")
    S.send(request(OP_SCAN, 305, 10, flags=4))
    t.eq(S.recv()["status"], "error", "unknown flag: error")
    S.send(request(OP_SCAN, 306, 10))
    r = S.recv()
    t.eq((r["status"], r["error"]), ("error", "SCAN without a descriptor"),
         "SCAN without a descriptor: error")
    fds = []
    for _ in range(3):
        fd = os.memfd_create("m", os.MFD_CLOEXEC)
        os.write(fd, MARKER_TEXT)
        fds.append(fd)
    S.send(request(OP_SCAN, 307, len(MARKER_TEXT)), fds)
    r = S.recv()
    t.ok(r["id"] == 307 and r["status"] == "infected",
         "SCAN with three descriptors: the first is scanned", r["raw"])
    many = [os.memfd_create("m", os.MFD_CLOEXEC) for _ in range(12)]
    S.send(request(OP_SCAN, 311, 1), many)
    for fd in many:
        os.close(fd)
    r = S.recv()
    t.eq((r["id"], r["status"]), (311, "error"),
         "SCAN with 12 descriptors (control data truncated): error")
    S.send(request(OP_PING, 308), fds[:1])
    t.eq(S.recv()["status"], "clean", "PING with a descriptor: answered")
    for fd in fds:
        os.close(fd)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    S.send(request(OP_SCAN, 309, 4), [sock.fileno()])
    sock.close()
    r = S.recv()
    t.eq((r["id"], r["status"]), (309, "error"), "a socket instead of a file: error")
    time.sleep(0.2)
    t.eq(S.nfds(), base, "no descriptor kept after bad requests")
    t.ok(S.p.poll() is None and S.ping(310)["status"] == "clean",
         "the scanner is still serving")


def channels():
    s = Scand(n=3, extra=["-t", "2"])
    for ch in range(3):
        r = s.scan(attach("a.zip", zipof([("m.txt", MARKER_TEXT)])), 400 + ch, ch=ch)
        t.ok(r["status"] == "infected", "channel %d (fd %d): scan answered on it" % (ch, 3 + ch))
    # Many concurrent requests on all channels, answers matched by id.
    msgs = {}
    for i in range(30):
        ch = i % 3
        clean = i % 2 == 0
        s.send_scan(message(b"x\r\n") if clean else message(MARKER_TEXT), 500 + i, ch=ch)
        msgs[500 + i] = (ch, "clean" if clean else "infected")
    got = {}
    for ch in range(3):
        for _ in range(10):
            r = s.recv(ch)
            got[r["id"]] = (ch, r["status"])
    t.eq(got, msgs, "30 requests over 3 channels: each answered on its channel, right verdict")
    s.close(0)
    time.sleep(0.3)
    t.ok(s.p.poll() is None and s.ping(600, ch=1)["status"] == "clean",
         "one channel closed: still serving the others")
    s.close()
    try:
        rc = s.p.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    t.eq(rc, 0, "every channel closed (moatd went away): exit 0")
    t.like(s.log(), "event=stopping reason=eof", "EOF logged")


def reloads():
    d = make_db(os.path.join(WORK, "reload"))
    filler(os.path.join(d, "filler.ndb"), 200000)
    outside = os.path.join(WORK, "outside")
    os.makedirs(outside)
    os.chmod(outside, 0o755)
    write_file(os.path.join(outside, "extra.ndb"), ndb("Moat.Test.Unused", b"never-0-matches"))
    os.symlink(os.path.join(outside, "extra.ndb"), os.path.join(d, "extra.ndb"))
    s = Scand(db=d, extra=["-t", "2"])
    m2 = message(b"second: " + MARKER2 + b"\r\n")
    m3 = message(b"third: " + MARKER3 + b"\r\n")
    t.eq(s.scan(m2, 1)["status"], "clean", "marker 2 not in the database yet: clean")
    gen = s.ping()["engine"][1]

    # Changed behind a symlink: no inotify event in the directory.
    tmp = os.path.join(outside, "extra.new")
    write_file(tmp, ndb("Moat.Test.Second", MARKER2))
    os.rename(tmp, os.path.join(outside, "extra.ndb"))
    time.sleep(1.6)
    t.eq(s.ping()["engine"][1], gen, "a change outside the directory: no reload")
    os.kill(s.pid, signal.SIGHUP)
    # Scans keep going during the reload: each answered, by either engine.
    before = after = 0
    wrong = []
    i = 0
    deadline = time.time() + 60
    while after == 0 and time.time() < deadline:
        infected = i % 2 == 1
        r = s.scan(message(MARKER_TEXT) if infected else message(b"x\r\n"), 700 + i)
        if r["status"] != ("infected" if infected else "clean"):
            wrong.append(r["raw"])
        if r["engine"][1] == gen:
            before += 1
        else:
            after += 1
        i += 1
    t.ok(before > 0 and after > 0 and not wrong,
         "scans during the SIGHUP reload: %d by the old engine, then the new one; "
         "all answered, right verdicts" % before, wrong)
    r = s.wait_generation(gen + 1, 60)
    t.eq(r["engine"][1], gen + 1, "SIGHUP: generation %d -> %d" % (gen, gen + 1))
    r = s.scan(m2, 2)
    t.ok(r["status"] == "infected" and found(r, "Moat.Test.Second"),
         "after SIGHUP: marker 2 found", r["raw"])
    t.ok(s.wait_log(r"event=reloaded signatures=\d+ generation=%d ms=\d+" % (gen + 1)),
         "reload logged: event=reloaded signatures=N generation=G", s.log())
    m = re.search(r"event=reloaded signatures=(\d+) generation=%d ms=(\d+)" % (gen + 1), s.log())
    if m:
        t.diag("reload: %s signatures in %s ms" % m.groups())

    # A new .ndb in the directory: inotify, debounced.
    gen += 1
    t.eq(s.scan(m3, 3)["status"], "clean", "marker 3 not in the database yet: clean")
    tmp = os.path.join(d, "third.tmp")
    write_file(tmp, ndb("Moat.Test.Third", MARKER3))
    os.rename(tmp, os.path.join(d, "third.ndb"))
    t0 = time.time()
    r = s.wait_generation(gen + 1, 30)
    t.ok(r["engine"][1] == gen + 1, "new .ndb in the directory: reloaded (%.1f s)"
         % (time.time() - t0), r["raw"])
    t.ok(found(s.scan(m3, 4), "Moat.Test.Third"), "after the inotify reload: marker 3 found")
    time.sleep(1.5)
    gen += 1
    t.eq(s.ping()["engine"][1], gen, "one reload for one change (debounced)")
    write_file(os.path.join(d, "next.tmp"), "x")
    write_file(os.path.join(d, ".hidden"), "x")
    os.makedirs(os.path.join(d, "tmp.freshclam"))
    time.sleep(1.6)
    t.eq(s.ping()["engine"][1], gen, "temporary and hidden names in the directory: no reload")
    os.unlink(os.path.join(d, "next.tmp"))
    os.unlink(os.path.join(d, ".hidden"))
    os.rmdir(os.path.join(d, "tmp.freshclam"))

    # A broken database: the old engine stays.
    write_file(os.path.join(d, "broken.ndb"), "this is not a signature\n")
    t.ok(s.wait_log(r"event=reload_failed .*engine=kept"),
         "broken .ndb: event=reload_failed ... engine=kept", s.log()[-2000:])
    r = s.ping()
    t.eq(r["engine"][1], gen, "broken .ndb: generation unchanged")
    t.ok(found(s.scan(m3, 5), "Moat.Test.Third") and found(s.scan(m2, 6), "Moat.Test.Second"),
         "broken .ndb: the old engine still detects")
    os.unlink(os.path.join(d, "broken.ndb"))
    r = s.wait_generation(gen + 1, 30)
    t.eq(r["engine"][1], gen + 1, "broken file removed: reloaded")
    t.eq(s.stop(), 0, "SIGTERM after reloads: exit 0")


def broken_start():
    d = os.path.join(WORK, "broken")
    os.makedirs(d)
    os.chmod(d, 0o755)
    write_file(os.path.join(d, "bad.ndb"), "garbage\n")
    s = Scand(db=d, wait=False)
    t.ok(s.wait_log("event=load_failed .*engine=none"), "broken database at start: "
         "event=load_failed logged", s.log())
    r = s.ping()
    t.ok(r["status"] == "notready" and "database failed to load" in (r["error"] or ""),
         "broken database at start: PING notready with the reason", r["raw"])
    r = s.scan(message(b"x\r\n"), 2)
    t.eq(r["status"], "notready", "broken database at start: SCAN notready")
    t.ok(s.p.poll() is None, "the scanner stays up, waiting for a good database")
    os.unlink(os.path.join(d, "bad.ndb"))
    make_db(d)
    r = s.wait_ready(30)
    t.eq(r["status"], "clean", "database repaired: loaded without a restart")
    s.stop()


def sandbox():
    s = Scand(opts=["selftest_forbidden=yes"], wait=False)
    try:
        rc = s.p.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    t.eq(rc, -signal.SIGSYS, "sandbox=yes: a socket() call after start-up kills the process "
         "(SIGSYS)")
    s = Scand(opts=["selftest_forbidden=yes", "sandbox=no"])
    t.eq(s.status_field("Seccomp"), "0", "sandbox=no: no seccomp filter")
    t.like(s.log(), r"event=selftest socket=\d+", "sandbox=no: socket() allowed")
    s.stop()
    s = Scand(opts=["sandbox=log"])
    t.eq(s.status_field("Seccomp"), "2", "sandbox=log: filter installed (log only)")
    t.eq(s.scan(attach("a.zip", zipof([("m.txt", MARKER_TEXT)])), 1)["status"], "infected",
         "sandbox=log: scans work")
    s.stop()


def startup_errors():
    p = subprocess.run([SCAND, "-d", DB, "-n", "1"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       pass_fds=())
    t.eq(p.returncode, 2, "no request descriptors (fd 3 not a socket): exit 2")
    if os.geteuid() == 0:
        s = Scand(user=None, wait=False)
        try:
            rc = s.p.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        t.eq(rc, 2, "started as root without -u: refused, exit 2")
        t.like(s.log(), "give -u USER", "the refusal says why")
    else:
        t.skip("started as root without -u: refused", "not root")
        t.skip("the refusal says why", "not root")
    for bad in (["-o", "sandbox=maybe"], ["-o", "max_files=0"], ["-o", "nosuch=1"],
                ["-t", "0"], ["-n", "0"]):
        p = subprocess.run([SCAND, "-d", DB, "-n", "1"] + bad, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.eq(p.returncode, 2, "bad option %s: exit 2" % " ".join(bad))


def sigterm():
    s = Scand(extra=["-t", "1"], opts=["queue_max=4"])
    msg = attach("big.bin", os.urandom(4 << 20))
    for i in range(4):
        s.send_scan(msg, 800 + i)
    time.sleep(0.05)
    os.kill(s.pid, signal.SIGTERM)
    got = {}
    try:
        for _ in range(4):
            r = s.recv(timeout=30)
            got[r["id"]] = (r["status"], r["error"])
    except (EOFError, socket.timeout, OSError):
        pass
    try:
        rc = s.p.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    t.eq(rc, 0, "SIGTERM with scans in flight: exit 0")
    t.ok(sorted(got) == [800, 801, 802, 803], "SIGTERM: every request answered", got)
    t.ok(all(st in ("clean", "error") for st, _ in got.values()) and
         all(e == "shutting down" for st, e in got.values() if st == "error"),
         "running scans finish, waiting ones get error 'shutting down'", got)
    t.like(s.log(), r"event=stopping reason=sigterm[\s\S]*event=exit status=0",
           "stop logged")


def tmp_clean():
    tmp = os.path.join(WORK, "tmp")
    left = []
    for root, dirs, files in os.walk(tmp):
        left += [os.path.join(root, f) for f in dirs + files]
    t.eq(left, [], "nothing left in -T TMPDIR")
    st = os.stat(tmp)
    t.eq((st.st_mode & 0o777, st.st_uid), (0o700, pwd.getpwnam(USER).pw_uid),
         "TMPDIR created 0700, owned by the scanner's user")


t.section(start_and_ping)
t.section(basics)
t.section(testfiles)
t.section(dotstuffing)
t.section(lengths)
t.section(limits)
t.section(heuristics)
t.section(timing)
t.section(busy)
t.section(bad_requests)
t.section(channels)
t.section(reloads)
t.section(broken_start)
t.section(sandbox)
t.section(startup_errors)
t.section(sigterm)
if S is not None:
    t.eq(S.stop(), 0, "main scanner: SIGTERM, exit 0")
t.section(tmp_clean)
t.done()
