"""Shared-object filters: filters/example/example_filter.c built with the C
compiler the way filters/README.md tells a filter author to, then loaded by
moatd (`load = ...`) and by `moat scan`; and the load errors an
administrator can meet, each reported by `moatd -t` with file:line and
refused by a SIGHUP reload without harming the running configuration:
a missing file, an object without moat_filter(), one that refuses moatd's
ABI, one built for another ABI, incomplete filter_ops, unknown and missing
options.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP, Sink, Moatd, MOATD, send_mail, tmpdir  # noqa: E402

MOAT = os.environ.get("MOAT", os.path.join(os.path.dirname(MOATD), "moat"))
SRCDIR = os.environ.get("MOAT_SRCDIR",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CC = os.environ.get("CC") or "cc"

from moattest import write_file as write  # noqa: E402

with open(os.path.join(SRCDIR, "filters", "filter_api.h")) as _f:
    ABI = int(re.search(r"#define FILTER_ABI_VERSION (\d+)", _f.read()).group(1))
t = TAP()
if shutil.which(CC.split()[0]) is None:
    print("1..0 # SKIP no C compiler (%s)" % CC)
    sys.exit(0)

WORK = tmpdir()


def build(name, source):
    """Compile one shared object from C text (or a file); returns its path."""
    so = os.path.join(WORK, name + ".so")
    if os.path.exists(source):
        src = source
    else:
        src = os.path.join(WORK, name + ".c")
        with open(src, "w") as f:
            f.write(source)
    p = subprocess.run(CC.split() + ["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                                     "-I" + os.path.join(SRCDIR, "filters"), "-o", so, src],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    t.eq(p.returncode, 0, "%s.so builds warning-free" % name)
    if p.returncode != 0:
        t.diag(p.stdout.decode("utf-8", "replace"))
    return so


_n = [0]


def conf(body):
    _n[0] += 1
    return write(os.path.join(WORK, "moat-%d.conf" % _n[0]),
                 'hostname = "moat.test"\nupstream = "127.0.0.1:1"\n'
                 'spool_directory = "%s"\n' % WORK + body)


def check_conf(path):
    """(exit status, output) of moatd -t."""
    p = subprocess.run([MOATD, "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def msg(subject, body="hello\r\n"):
    return "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\n\r\n%s" % (
        subject, body)


EXAMPLE = build("example", os.path.join(SRCDIR, "filters", "example", "example_filter.c"))

HEAD = '#include "filter_api.h"\n#include <stddef.h>\n'
STAGE = ('static enum filter_verdict st(void *x, struct filter_call *c, struct filter_reply *r)\n'
         '{ (void)x; (void)c; (void)r; return FILTER_CONTINUE; }\n')
NOEXPORT = build("noexport", HEAD + STAGE +
                 'const struct filter_ops *other(unsigned abi);\n'
                 'static const struct filter_ops o = { .abi = FILTER_ABI_VERSION, .name = "x",'
                 ' .stages = FILTER_STAGE_BIT(FILTER_STAGE_EOM), .stage = st };\n'
                 'const struct filter_ops *other(unsigned abi) { (void)abi; return &o; }\n')
REFUSES = build("refuses", HEAD + 'const struct filter_ops *moat_filter(unsigned abi);\n'
                'const struct filter_ops *moat_filter(unsigned abi) { (void)abi; return NULL; }\n')
WRONGABI = build("wrongabi", HEAD + STAGE +
                 'const struct filter_ops *moat_filter(unsigned abi);\n'
                 'static const struct filter_ops o = { .abi = 99, .name = "x",'
                 ' .stages = FILTER_STAGE_BIT(FILTER_STAGE_EOM), .stage = st };\n'
                 'const struct filter_ops *moat_filter(unsigned abi) { (void)abi; return &o; }\n')
NOSTAGE = build("nostage", HEAD + 'const struct filter_ops *moat_filter(unsigned abi);\n'
                'static const struct filter_ops o = { .abi = FILTER_ABI_VERSION, .name = "x" };\n'
                'const struct filter_ops *moat_filter(unsigned abi) { (void)abi; return &o; }\n')

GOOD = ('filter "ex" {\n  load = "%s"\n  word = "viagra"\n  score = 7\n}\n'
        'rule "EXAMPLE_WORD" { action = "reject" reply = "550 5.7.1 No pills here" }\n' % EXAMPLE)


# =====================================================================
# 1. moatd -t: a good object passes, every broken one is reported
# =====================================================================
rc, out = check_conf(conf(GOOD))
t.eq(rc, 0, "moatd -t accepts the example filter")
t.ok("error" not in out.lower(), "moatd -t: no error for the example filter", out)

BROKEN = [
    ("missing file", 'filter "ex" { load = "%s" word = "x" }\n' % os.path.join(WORK, "none.so"),
     r'filter "ex": .*none\.so.*(No such file|cannot open)'),
    ("no moat_filter export", 'filter "ex" { load = "%s" }\n' % NOEXPORT,
     r'filter "ex": .*noexport\.so exports no moat_filter\(\)'),
    ("ABI refused", 'filter "ex" { load = "%s" }\n' % REFUSES,
     r'filter "ex": .*refuses\.so: moat_filter\(\) refused filter ABI %d' % ABI),
    ("other ABI", 'filter "ex" { load = "%s" }\n' % WRONGABI,
     r'filter "ex": .*wrongabi\.so was built for filter ABI 99, moatd has %d' % ABI),
    ("incomplete ops", 'filter "ex" { load = "%s" }\n' % NOSTAGE,
     r'filter "ex": incomplete filter_ops'),
    ("required option missing", 'filter "ex" { load = "%s" }\n' % EXAMPLE,
     r'option "word" is required'),
    ("unknown option", 'filter "ex" { load = "%s" word = "x" colour = "red" }\n' % EXAMPLE,
     r'colour'),
    ("bad option value", 'filter "ex" { load = "%s" word = "x" score = "lots" }\n' % EXAMPLE,
     r'score: "lots" is not a number'),
]
for name, body, pattern in BROKEN:
    path = conf(body)
    rc, out = check_conf(path)
    t.ok(rc != 0, "moatd -t refuses: %s" % name, out)
    t.like(out, re.escape(path) + r":\d+: .*" + pattern,
           "moatd -t names file:line and the cause: %s" % name)


# =====================================================================
# 2. moatd runs the example filter on real sessions
# =====================================================================
sink = Sink()
m = Moatd(sink.port, conf=GOOD)
r = send_mail(m.port, body=msg("cheap viagra"))
t.eq(r[-2][0], 550, "Subject with the word: rejected at end of data by the rule")
t.like(r[-2][1], r"5\.7\.1 No pills here", "the rule's reply text reaches the client")
r = send_mail(m.port, body=msg("hello there"))
t.eq(r[-2][0], 250, "clean message: accepted")
got = sink.messages(count=1)
t.eq(len(got), 1, "exactly the clean message reached the upstream")
if got:
    t.like(got[0], r"(?m)^X-Example-Filter: checked\r?$",
           "the filter's EOM header is in the delivered message")
    t.like(got[0], r"(?m)^Subject: hello there\r?$", "the delivered message is intact")
log = m.log()
t.like(log, r"EXAMPLE_WORD", "the transaction log line carries the filter's evidence")
t.ok(not re.search(r"event=filter-(error|timeout)", log), "no filter errors or timeouts")

# Several sessions in parallel exercise the per-session state and the
# worker-pool job of every EOM.
import threading  # noqa: E402
results = []


def one(i):
    results.append(send_mail(m.port, body=msg("parallel %d" % i))[-2][0])


threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.eq(sorted(results), [250] * 20, "20 parallel sessions through the filter: all accepted")
t.eq(sink.wait_count(21, timeout=10), 21, "and all delivered")

# =====================================================================
# 3. A reload to a broken object keeps the running configuration
# =====================================================================
with open(m.conf, "a") as f:
    f.write('filter "bad" { load = "%s" }\n' % WRONGABI)
m.send_signal(signal.SIGHUP)
t.ok(m.wait_log(r"was built for filter ABI 99") is not None,
     "reload with a wrong-ABI object: the reason is logged")
t.ok(m.wait_log(r"(?i)reload.*(fail|not applied|keep)") is not None,
     "and the reload is refused")
r = send_mail(m.port, body=msg("viagra again"))
t.eq(r[-2][0], 550, "after the refused reload the example filter still rejects")
t.ok(m.alive(), "moatd still running")
m.stop()
sink.stop()

# =====================================================================
# 4. moat scan loads the same object
# =====================================================================
c = conf(GOOD.replace('action = "reject" reply = "550 5.7.1 No pills here"',
                      'action = "add_header"'))
eml = write(os.path.join(WORK, "spam.eml"), msg("VIAGRA deals").replace("\r\n", "\n"))
p = subprocess.run([MOAT, "-c", c, "scan", "--from", "alice@example.test", "--rcpt",
                    "bob@example.test", "--json", eml], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=60)
t.eq(p.returncode, 7, "moat scan with the example filter: exit 7 (add_header)")
try:
    js = json.loads(p.stdout.decode())
except ValueError:
    js = {}
    t.diag("bad JSON: %r %r" % (p.stdout, p.stderr))
t.eq([(e.get("symbol"), e.get("score"), e.get("filter"), e.get("stage"))
      for e in js.get("evidence", [])], [("EXAMPLE_WORD", 7, "ex", "header")],
     "moat scan: the example filter's evidence (case-insensitive match)")
t.like(js.get("headers") or "", r"X-Example-Filter: checked",
       "moat scan: the filter's header edit is shown")
t.eq([f.get("name") for f in js.get("filters", [])], ["ex"], "moat scan: filter list")
p = subprocess.run([MOAT, "-c", conf('filter "ex" { load = "%s" }\n' % NOEXPORT), "scan",
                    "--rcpt", "bob@example.test", eml], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=60)
t.eq(p.returncode, 1, "moat scan with an object that exports nothing: exit 1")
t.like(p.stderr.decode("utf-8", "replace"), r"exports no moat_filter\(\)",
       "moat scan: says why")

t.done()
