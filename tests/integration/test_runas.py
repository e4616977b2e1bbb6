"""Running as moat.conf's `user` (proxy/runas.c): started as root, moatd -t,
moatd and `moat learn` make the directories moat writes in (quarantine,
the spam filter's rules cache and Bayes store, the DMARC report log) for
that user while still root, then write in them as the user; an existing
directory the user cannot write in is left as it is and logged; `moat
learn` still reads the root's messages it is given.

Needs root (skipped otherwise): the user is nobody.
"""

import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, MOATD, free_port, spawn, stop, tmpdir, wait_port,  # noqa: E402
                      write_file as write)

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))
SRC = os.environ.get("MOAT_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SPAM_CF = os.path.join(SRC, "filters", "spam", "spam.cf")

t = TAP()
if os.getuid() != 0:
    print("1..0 # SKIP needs root")
    sys.exit(0)
NOBODY = pwd.getpwnam("nobody")
W = tmpdir()
os.chmod(W, 0o755)
SPOOL = tmpdir()  # 0777: moatd's spool is written as nobody


def owner(p):
    return pwd.getpwuid(os.stat(p).st_uid).pw_name


def mode(p):
    return os.stat(p).st_mode & 0o7777


def conf(name, extra=""):
    return write(os.path.join(W, name),
                 'upstream = "127.0.0.1:25"\nspool_directory = "%s"\nuser = "nobody"\n'
                 'quarantine_directory = "%s/var/lib/q"\n'
                 'filter "spam" {\n default_rules = "%s"\n rules_cache = "%s/cache/rules"\n'
                 ' bayes_db = "%s/state/bayes.lmdb"\n bayes_min_spam = 1\n bayes_min_ham = 1\n}\n'
                 'filter "dmarc" { report_log = "%s/reports/dmarc.jsonl" }\n%s'
                 % (SPOOL, W, SPAM_CF, W, W, W, extra))


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace")


# ---- moatd -t as root: the directories, for nobody
c = conf("a.conf")
rc, out = run([MOATD, "-t", "-c", c])
t.ok(rc == 0, "moatd -t as root", out[-400:])
made = ["var", "var/lib", "var/lib/q", "cache", "cache/rules", "state", "reports"]
for d in made:
    p = os.path.join(W, d)
    t.ok(os.path.isdir(p) and owner(p) == "nobody" and mode(p) == 0o750,
         "%s: made, nobody's, 0750" % d,
         (owner(p), oct(mode(p))) if os.path.exists(p) else "missing")
t.like(out, r"event=state-dir path=%s/var/lib/q user=nobody created=3" % W,
       "logged: three directories made for the quarantine")
files = [os.path.join(W, "cache/rules", f) for f in os.listdir(os.path.join(W, "cache/rules"))]
t.ok(len(files) == 1 and owner(files[0]) == "nobody",
     "the rules cache was written as nobody", [(f, owner(f)) for f in files])
t.ok(os.path.exists(os.path.join(W, "state/bayes.lmdb")) and
     owner(os.path.join(W, "state/bayes.lmdb")) == "nobody",
     "the Bayes store was made as nobody")

# ---- again: nothing to make, nothing logged
rc, out = run([MOATD, "-t", "-c", c])
t.eq(rc, 0, "moatd -t again")
t.ok("event=state-dir" not in out, "existing directories: nothing logged", out[-400:])

# ---- moat learn as root: root's messages, the store written as nobody
msgs = os.path.join(W, "root-only")
os.mkdir(msgs, 0o700)
for i in range(3):
    write(os.path.join(msgs, "m%d" % i),
          "From: a%d@example.net\r\nSubject: offer %d\r\nMessage-ID: <%d@x>\r\n\r\n"
          "cheap pills offer number %d\r\n" % (i, i, i, i))
    os.chmod(os.path.join(msgs, "m%d" % i), 0o600)
rc, out = run([MOAT, "-c", c, "learn", "--spam", msgs])
t.ok(rc == 0, "moat learn as root reads root's 0600 messages", out[-300:])
t.like(out, r"learned 3", "all three learned")
t.eq(sorted({owner(os.path.join(W, "state", f)) for f in os.listdir(os.path.join(W, "state"))}),
     ["nobody"], "the store's files stay nobody's")
rc, out = run([MOAT, "-c", c, "learn", "--stats"])
t.like(out, r"nspam 3", "moat learn --stats")

# ---- a symlink planted by the user in its directory: root never writes
# through it (moat learn writes as nobody; /etc/shadow-like target stays)
secret = os.path.join(W, "secret")
write(secret, "root's secret\n")
os.chmod(secret, 0o600)
evil = os.path.join(W, "state", "evil.lmdb")
os.symlink(secret, evil)
rc, out = run([MOAT, "-c", c, "learn", "--db", evil, "--spam", msgs])
t.ok(rc == 1 and "MDB_INVALID" in out or "Permission denied" in out,
     "a store symlinked to root's file: refused, no crash", (rc, out[-300:]))
with open(secret) as f:
    t.eq(f.read(), "root's secret\n", "root's file unchanged")

# ---- an existing directory nobody cannot write in: logged, left alone
ro = os.path.join(W, "rootdir")
os.mkdir(ro, 0o755)
c2 = write(os.path.join(W, "b.conf"), open(c).read().replace(
    '%s/cache/rules' % W, ro))
rc, out = run([MOATD, "-t", "-c", c2])
t.eq(rc, 0, "moatd -t with a root-owned rules cache still passes (compiles)")
t.like(out, r"event=state-dir path=%s user=nobody owner=0 mode=0755 msg=\"the user cannot "
       r"write here" % ro, "logged: the user cannot write there")
t.ok(owner(ro) == "root" and mode(ro) == 0o755 and os.listdir(ro) == [],
     "the directory is left as it was, nothing written in it as root")

# ---- not a plain path: logged, nothing made
c3 = write(os.path.join(W, "c.conf"), open(c).read().replace(
    '%s/reports/dmarc.jsonl' % W, '%s/x/../y/dmarc.jsonl' % W))
rc, out = run([MOATD, "-t", "-c", c3])
t.like(out, r'event=state-dir path=%s/x/\.\./y .*error="not a plain absolute path"' % W,
       "a path with .. is not made")
t.ok(not os.path.exists(os.path.join(W, "x")), "nothing made for it")

# ---- a path that fails part way (too deep): what was made is still the user's
deep = "%s/deep/" % W + "/".join("d%d" % i for i in range(70))
c5 = write(os.path.join(W, "e.conf"), open(c).read().replace(
    '%s/reports/dmarc.jsonl' % W, '%s/dmarc.jsonl' % deep))
rc, out = run([MOATD, "-t", "-c", c5])
t.like(out, r'event=state-dir path=%s/deep/.* error="too deep"' % W, "too deep: logged")
t.ok(os.path.isdir(os.path.join(W, "deep")) and owner(os.path.join(W, "deep")) == "nobody",
     "the directories made before the failure are handed to nobody, not left root's")

# ---- moatd started as root: made before it drops to nobody
port = free_port()
c4 = write(os.path.join(W, "d.conf"), open(c).read().replace(
    '%s/var/lib/q' % W, '%s/started/q' % W).replace(
    'user = "nobody"\n', 'user = "nobody"\nlisten "127.0.0.1:%d" {}\n' % port))
p = spawn([MOATD, "-f", "-c", c4], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t.ok(wait_port(port), "moatd started as root listens")
q = os.path.join(W, "started/q")
t.ok(os.path.isdir(q) and owner(q) == "nobody", "moatd: the quarantine made for nobody")
t.eq(stop(p), 0, "moatd exits cleanly")
t.done()
