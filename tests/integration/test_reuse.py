"""The real-Postfix and failure suites again, with upstream connection reuse
on (upstream_pool_size = 16): every failure point must behave the same when
the upstream connection was parked and reused (XCLIENT re-sent to Postfix)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import TAP  # noqa: E402

t = TAP()
here = os.path.dirname(os.path.abspath(__file__))
env = dict(os.environ, MOATTEST_POOL="16")
for suite in ("test_postfix.py", "test_failures.py"):
    p = subprocess.run([sys.executable, "-u", os.path.join(here, suite)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    out = p.stdout.decode(errors="replace").splitlines()
    n = 0
    for i, line in enumerate(out):
        m = re.match(r"^(not ok|ok) \d+ - (.*)$", line)
        if not m:
            continue
        n += 1
        diag = []
        for nxt in out[i + 1:]:
            if not nxt.startswith("#"):
                break
            diag.append(nxt[2:])
        t.ok(m.group(1) == "ok", "[reuse] %s: %s" % (suite, m.group(2)),
             "\n".join(diag) if diag else None)
    t.ok(n > 0 and p.returncode == 0, "[reuse] %s ran %d checks, exit %d" % (suite, n, p.returncode))
t.done()
