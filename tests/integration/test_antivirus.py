"""The antivirus filter through moatd, against both backends: moat's own
scanner process (moat-scand, libclamav) and a real clamd from Debian's
clamav-daemon, each with the same test signature database (a marker
pattern, EICAR, and MD5 signatures of clamav-testfiles' clam.exe).

Checked for each backend: clean mail delivered (with the scanned header);
EICAR inline, a base64 attachment, a zip (clamav-testfiles), a zip inside
a zip, a tar.gz, a marker split across two MIME parts (not detected: ClamAV
matches within one part; recorded as such), and a marker that only matches
once dot-stuffing is undone — each refused 554 5.7.1 naming the signature,
never delivered; a group's rule quarantining instead; a scan limit
(a compressed file over max_filesize, or clamd's StreamMaxLength) giving
AV_INCOMPLETE and 451 4.7.0, never delivered; the backend down giving the
failure policy's 451 and nothing delivered.

Scanner faults: SIGKILL while idle (restarted, next message scanned);
SIGKILL during a scan (451, restarted); a scanner that hangs past the
filter's timeout (killed by moatd, 451, restarted); a database that does
not load (451, the reason in the log); a signature added to the database
directory and picked up by a reload with scans never failing meanwhile;
the attachment policy by extension and by detected type, inside a zip;
an encrypted zip scored as AV_ENCRYPTED, not refused.
"""

import base64
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, AV_DOT_MARKER, AV_MARKER, CLAM_TESTFILES, EICAR,  # noqa: E402
                      Client, Clamd, Moatd, Sink, clamav_db, clamav_usable,
                      moatd_check, tmpdir)

t = TAP()
SCAND = os.environ.get("MOAT_SCAND",
                       os.path.join(os.path.dirname(os.environ.get("MOATD", "")) or ".",
                                    "moat-scand"))
if not os.path.isabs(SCAND):
    SCAND = os.path.abspath(SCAND)

N = [0]


def mime(parts, subject="av test"):
    """parts: list of (content-type, filename or None, bytes, encoding)."""
    N[0] += 1
    b = "b%d-moat" % N[0]
    out = ["From: alice@example.test", "To: bob@example.test",
           "Subject: %s %d" % (subject, N[0]),
           "Message-ID: <av%d.%d@example.test>" % (N[0], os.getpid()),
           "MIME-Version: 1.0",
           'Content-Type: multipart/mixed; boundary="%s"' % b, "", "preamble"]
    for ctype, name, data, enc in parts:
        out.append("--" + b)
        out.append("Content-Type: %s" % ctype)
        if name:
            out.append('Content-Disposition: attachment; filename="%s"' % name)
        if enc == "base64":
            out.append("Content-Transfer-Encoding: base64")
            out.append("")
            s = base64.b64encode(data).decode()
            out.extend(s[i:i + 76] for i in range(0, len(s), 76))
        else:
            out.append("")
            out.extend(data.decode("latin-1").split("\n"))
    out.append("--%s--" % b)
    out.append("")
    return "\r\n".join(out)


def text(body):
    return mime([("text/plain", None, body.encode(), "7bit")])


def attach(name, data, ctype="application/octet-stream"):
    return mime([("text/plain", None, b"see attachment", "7bit"),
                 (ctype, name, data, "base64")])


def readf(name):
    with open(os.path.join(CLAM_TESTFILES, name), "rb") as f:
        return f.read()


def zipped(files):
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            z.writestr(n, d)
    return bio.getvalue()


def targz(name, data):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def send(port, data, rcpt="bob@example.test", timeout=60):
    c = Client(port, timeout=timeout)
    c.cmd("EHLO client.example.test")
    c.cmd("MAIL FROM:<alice@example.test>")
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if r[0] != 250:
        c.close()
        return r
    r = c.cmd("DATA")
    if r[0] == 354:
        stuffed = re.sub(r"(?m)^\.", "..", data)
        c.send(stuffed + ("" if stuffed.endswith("\r\n") else "\r\n") + ".\r\n")
        r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r


def tx_line(m):
    lines = [ln for ln in m.log().splitlines() if "event=tx" in ln]
    return lines[-1] if lines else ""


def infected_cases():
    exe = readf("clam.exe")
    return [
        ("EICAR inline", text("Hello\n" + EICAR + "\n"), "Moat.Test.EICAR"),
        ("EICAR attached", attach("eicar.com", EICAR.encode()), "Moat.Test.EICAR"),
        ("clam.exe attached", attach("clam.exe", exe), "Moat.Test.ClamExe"),
        ("clam.zip (testfiles)", attach("clam.zip", readf("clam.zip"),
                                        "application/zip"), "Moat.Test.ClamExe"),
        ("zip in zip", attach("outer.zip", zipped([("inner.zip", zipped([("x.exe", exe)]))]),
                              "application/zip"), "Moat.Test.ClamExe"),
        ("tar.gz", attach("a.tar.gz", targz("clam.exe", exe), "application/gzip"),
         "Moat.Test.ClamExe"),
        ("marker in a text part", text("x\n" + AV_MARKER + "\n"), "Moat.Test.Marker"),
        ("dot line (after un-stuffing)", text("line" + AV_DOT_MARKER + " rest\n"),
         "Moat.Test.DotLine"),
    ]


def common(name, port, sink, m, quarantine_rcpt=None):
    """The detection cases every backend must pass."""
    delivered = sink.count()
    r = send(port, text("A clean message.\n"))
    t.eq(r[0], 250, "%s: clean mail accepted" % name)
    t.ok(sink.wait_count(delivered + 1) == delivered + 1, "%s: clean mail delivered" % name)
    last = sink.messages(count=delivered + 1)[-1] if sink.count() else ""
    t.ok("X-Virus-Scanned: clean" in last, "%s: scanned header on clean mail" % name)
    delivered = sink.count()
    for what, msg, sig in infected_cases():
        r = send(port, msg)
        t.eq(r[0], 554, "%s: %s refused 554" % (name, what))
        t.ok("5.7.1" in r[1] and sig in r[1],
             "%s: %s reply names %s" % (name, what, sig), r)
    t.eq(sink.wait_count(delivered, 0.5), delivered,
         "%s: no infected message delivered" % name)
    t.like(tx_line(m), r"VIRUS\(", "%s: VIRUS evidence on the transaction log line" % name)
    # Split across two parts: ClamAV matches within an object, not across.
    half = len(AV_MARKER) // 2
    split = mime([("text/plain", None, AV_MARKER[:half].encode(), "7bit"),
                  ("text/plain", None, AV_MARKER[half:].encode(), "7bit")])
    r = send(port, split)
    t.ok(r[0] in (250, 554), "%s: marker split across MIME parts: answered (%d; "
         "ClamAV matches within a part)" % (name, r[0]))
    if quarantine_rcpt:
        r = send(port, text(EICAR + "\n"), rcpt=quarantine_rcpt)
        t.eq(r[0], 250, "%s: a group's rule quarantines instead of rejecting" % name)
        t.like(tx_line(m), r"action=quarantine", "%s: action quarantine logged" % name)


GROUP = ('group "q" { recipients = { "quarantine@example.test" }\n'
         '  rule "VIRUS" { action = quarantine } }\n'
         'quarantine_directory = "%s"\n')


def run_scanner():
    db = clamav_db(os.path.join(tmpdir(), "db"))
    sink = Sink()
    qdir = tmpdir()
    conf = ('filter "antivirus" { scanner = "%s" database = "%s" timeout = 8s\n'
            '  max_scantime = 5s max_filesize = 1M scanned_header = "X-Virus-Scanned"\n'
            '  block_extensions = "scr, .vbs" block_types = "MSEXE"\n'
            '  suspect_extensions = "js" }\n' % (SCAND, db)) + GROUP % qdir
    m = Moatd(sink.port, conf)
    try:
        t.ok(m.wait_log(r"event=scanner-start pid=\d+", 10),
             "scanner: moatd started moat-scand")
        # The first engine loads in the background; wait until it answers.
        ok = False
        for _ in range(100):
            if send(m.port, text("warm-up\n"))[0] == 250:
                ok = True
                break
            time.sleep(0.2)
        t.ok(ok, "scanner: ready (a clean message accepted)")
        sink_base = sink.count()
        common("scanner", m.port, sink, m, "quarantine@example.test")
        del sink_base

        # Attachment policy, through ClamAV's list of unpacked objects.
        r = send(m.port, attach("invoice.scr", b"MZ harmless bytes"))
        t.eq(r[0], 554, "scanner: blocked extension .scr refused")
        t.ok("invoice.scr" in r[1], "scanner: reply names the attachment", r)
        r = send(m.port, attach("docs.zip", zipped([("readme.txt", b"hi"),
                                                   ("run.vbs", b"msgbox 1")]),
                                "application/zip"))
        t.eq(r[0], 554, "scanner: blocked extension inside a zip refused")
        r = send(m.port, attach("x.bin", readf("clam.exe")[:0] + b"MZ" + b"\0" * 200))
        t.ok(r[0] in (250, 554), "scanner: a non-PE 'MZ' blob answered (%d)" % r[0])
        r = send(m.port, attach("script.js", b"var a = 1;\n", "text/javascript"))
        t.eq(r[0], 250, "scanner: suspect extension only scores")
        t.like(tx_line(m), r"ATTACHMENT_SUSPECT\(", "scanner: ATTACHMENT_SUSPECT evidence")

        # A heuristic: an encrypted zip (zip -P) is scored, not refused.
        zd = tmpdir()
        with open(os.path.join(zd, "secret.txt"), "w") as f:
            f.write("secret\n" * 50)
        if subprocess.run(["zip", "-q", "-j", "-P", "pw", os.path.join(zd, "e.zip"),
                           os.path.join(zd, "secret.txt")]).returncode == 0:
            with open(os.path.join(zd, "e.zip"), "rb") as f:
                r = send(m.port, attach("locked.zip", f.read(), "application/zip"))
            t.eq(r[0], 250, "scanner: an encrypted zip is accepted (scored only)")
            t.like(tx_line(m), r"AV_ENCRYPTED\(antivirus:1\.00\)",
                   "scanner: AV_ENCRYPTED evidence with its score")
        else:
            t.skip("scanner: encrypted zip", "zip not installed")
            t.skip("scanner: AV_ENCRYPTED evidence", "zip not installed")

        # A scan limit: 2 MB of zeros compress to a few KB (max_filesize 1M).
        bomb = zipped([("zeros.bin", b"\0" * (2 * 1024 * 1024))])
        before = sink.count()
        r = send(m.port, attach("bomb.zip", bomb, "application/zip"))
        t.eq(r[0], 451, "scanner: over max_filesize -> 451 (AV_INCOMPLETE)")
        t.ok("4.7.0" in r[1], "scanner: 4.7.0 for an incomplete scan", r)
        t.like(tx_line(m), r"AV_INCOMPLETE\(", "scanner: AV_INCOMPLETE evidence")
        t.eq(sink.wait_count(before, 0.3), before, "scanner: incomplete scan not delivered")

        scanner_faults(m, sink, db)
    finally:
        m.stop()
        sink.stop()
    t.ok(not re.search(r"scanner-exit pid=\d+ which=\S+ signal=(?!9)", m.log()),
         "scanner: no crash other than the test's own kills")


def scand_pid(m):
    pids = re.findall(r"event=scanner-start pid=(\d+)", m.log())
    return int(pids[-1]) if pids else 0


def wait_ready(m, sink, what):
    for _ in range(150):
        if send(m.port, text("ready?\n"))[0] == 250:
            return True
        time.sleep(0.2)
    t.ok(False, what)
    return False


def scanner_faults(m, sink, db):
    # SIGKILL while idle.
    pid = scand_pid(m)
    os.kill(pid, signal.SIGKILL)
    t.ok(m.wait_log(r"scanner-exit pid=%d which=current signal=9" % pid, 10),
         "scanner: SIGKILL while idle noticed")
    t.ok(m.wait_log(r"event=scanner-start pid=(?!%d)\d+" % pid, 10),
         "scanner: restarted after SIGKILL")
    if wait_ready(m, sink, "scanner: ready after an idle kill"):
        r = send(m.port, text(EICAR + "\n"))
        t.eq(r[0], 554, "scanner: detects again after the restart")

    # SIGKILL during a scan: stop it first so the scan is certainly in flight.
    pid = scand_pid(m)
    os.kill(pid, signal.SIGSTOP)
    before = sink.count()
    c = Client(m.port, timeout=30)
    c.cmd("EHLO c")
    c.cmd("MAIL FROM:<a@example.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send(text(EICAR + "\n") + ".\r\n")
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    r = c.reply()
    c.close()
    t.eq(r[0], 451, "scanner: SIGKILL during a scan -> 451, the client retries")
    t.eq(sink.wait_count(before, 0.3), before, "scanner: nothing accepted unscanned")
    wait_ready(m, sink, "scanner: ready after a kill during a scan")

    # A hung scanner: SIGSTOP and never resume; moatd kills it at the timeout.
    pid = scand_pid(m)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.time()
    r = send(m.port, text("hang\n"))
    took = time.time() - t0
    t.eq(r[0], 451, "scanner: a hung scanner -> 451")
    t.ok(took < 12, "scanner: answered within the filter timeout (%.1fs)" % took)
    t.ok(m.wait_log(r"event=scanner-kill pid=%d" % pid, 5), "scanner: moatd killed the hung scanner")
    t.ok(m.wait_log(r"scanner-exit pid=%d which=current signal=9" % pid, 5),
         "scanner: the hung scanner is gone")
    wait_ready(m, sink, "scanner: ready after a hang")

    # A new signature in the database directory, picked up by a reload,
    # with scans going on meanwhile.
    new = "MOAT-NEW-SIG-5d2b"
    r = send(m.port, text(new + "\n"))
    t.eq(r[0], 250, "scanner: a not yet known pattern passes")
    with open(os.path.join(db, "new.ndb"), "w") as f:
        f.write("Moat.Test.New:0:*:%s\n" % new.encode().hex())
    m.send_signal(signal.SIGHUP)
    codes = []
    end = time.time() + 15
    found = False
    while time.time() < end:
        r = send(m.port, text(new + "\n"))
        codes.append(r[0])
        if r[0] == 554:
            found = True
            break
        time.sleep(0.2)
    t.ok(found, "scanner: the new signature detected after the reload")
    t.ok(all(c in (250, 554) for c in codes),
         "scanner: no scan failed during the reload (%s)" % sorted(set(codes)))
    os.unlink(os.path.join(db, "new.ndb"))


def run_broken_db():
    d = tmpdir()
    db = os.path.join(d, "db")
    os.makedirs(db)
    with open(os.path.join(db, "broken.ndb"), "w") as f:
        f.write("this is not a signature\n")
    sink = Sink()
    m = Moatd(sink.port, 'filter "antivirus" { scanner = "%s" database = "%s" }\n'
              % (SCAND, db))
    try:
        r = (0, "")
        for _ in range(10):
            r = send(m.port, text("hello\n"))
            time.sleep(0.3)
        t.eq(r[0], 451, "broken database: mail tempfailed, not passed unscanned")
        t.eq(sink.count(), 0, "broken database: nothing delivered")
        t.like(m.log(), r"(?i)event=scanner-log .*(malformed|error|fail)",
               "broken database: the scanner's reason is in moatd's log")
    finally:
        m.stop()
        sink.stop()


def run_clamd():
    db = clamav_db(os.path.join(tmpdir(), "db"))
    cd = Clamd(db)
    sink = Sink()
    qdir = tmpdir()
    conf = ('filter "antivirus" { backend = clamd clamd = "unix:%s" timeout = 20s\n'
            '  scanned_header = "X-Virus-Scanned" }\n' % cd.sock) + GROUP % qdir
    m = Moatd(sink.port, conf)
    try:
        common("clamd", m.port, sink, m, "quarantine@example.test")
        # clamd down: the failure policy (tempfail), nothing delivered.
        cd.stop()
        before = sink.count()
        r = send(m.port, text("clamd is gone\n"))
        t.eq(r[0], 451, "clamd: down -> 451 (on_error tempfail)")
        t.eq(sink.wait_count(before, 0.3), before, "clamd: nothing delivered while down")
    finally:
        m.stop()
        sink.stop()
        cd.stop()
    # StreamMaxLength: a message over it is incomplete, never clean.
    cd = Clamd(db, "StreamMaxLength 1K\n")
    sink = Sink()
    m = Moatd(sink.port, 'filter "antivirus" { backend = clamd clamd = "%s" }\n' % cd.sock)
    try:
        r = send(m.port, text("x" * 60 + "\n" * 100 + "y" * 4000 + "\n"))
        t.eq(r[0], 451, "clamd: over StreamMaxLength -> 451 (AV_INCOMPLETE)")
        t.like(tx_line(m), r"AV_INCOMPLETE\(", "clamd: AV_INCOMPLETE evidence")
        t.eq(sink.count(), 0, "clamd: incomplete scan not delivered")
    finally:
        m.stop()
        sink.stop()
        cd.stop()


def run_config():
    rc, out = moatd_check('filter "antivirus" { backend = nope }\n')
    t.ok(rc != 0 and "backend" in out, "moatd -t: unknown backend refused", out)
    rc, out = moatd_check('filter "antivirus" { scanner = "/nonexistent/moat-scand" }\n')
    t.ok(rc != 0 and "scanner" in out, "moatd -t: missing scanner binary refused", out)
    rc, out = moatd_check('filter "antivirus" { backend = clamd clamd = "nohostport" }\n')
    t.ok(rc != 0 and "clamd" in out, "moatd -t: bad clamd address refused", out)
    rc, out = moatd_check('filter "antivirus" { backend = clamd clamd = "/x.sock"'
                          ' block_extensions = "exe" }\n')
    t.ok(rc != 0 and "backend = scanner" in out,
         "moatd -t: attachment policy without the scanner refused", out)
    rc, out = moatd_check('filter "antivirus" { scanner = "%s" database = "/" timeout = 5s'
                          ' max_scantime = 10s }\n' % SCAND)
    t.ok(rc != 0 and "max_scantime" in out,
         "moatd -t: max_scantime not below the timeout refused", out)


if not clamav_usable():
    t.skip("antivirus", "clamav or clamav-testfiles not installed")
else:
    t.section(run_config)
    if os.access(SCAND, os.X_OK):
        t.section(run_scanner)
        t.section(run_broken_db)
    else:
        t.skip("scanner backend", "%s not built" % SCAND)
    if os.path.exists("/usr/sbin/clamd"):
        t.section(run_clamd)
    else:
        t.skip("clamd backend", "clamav-daemon not installed")
t.done()
