"""SIGHUP reloads on a thread of their own (proxy/reload.c): while a slow
reload builds the new configuration, the main loop, which runs the DNS
resolver every session uses, keeps answering.

The slow reload is the test filter's init_ms (its init sleeps, as a large
ruleset compile would), and, when Debian's SpamAssassin rules and
Hyperscan are there, the real thing: the spam filter compiling
/usr/share/spamassassin into a fresh rules cache. The sessions that must
not wait are SPF checks at MAIL through moat's resolver asking a real
dnsmasq (each from a new domain, so that no cache answers): their MAIL
replies come from the main loop's resolver.

Checked: sessions during a slow reload are served without its delay
(MAIL within a bound far below the reload's duration) and on the old
configuration, the new one after event=reloaded (with its ms=); SIGHUPs
during a reload: event=reload-queued (merged=no, then merged=yes), and
exactly one more reload, which reads the file as it is then; a failing
configuration (a parse error, and a filter whose slow init fails) keeps
the old one, with the errors in the log as event=config-error; a changed
DNS setting is warned about (event=reload-ignored setting=dns);
SIGTERM during a reload: event=reload-abandoned, no reload applied, exit
0 soon after the reload's work ends; a SIGHUP while draining is ignored.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Sink, Client, Dnsmasq,  # noqa: E402
                      dnsmasq_usable, tmpdir)

t = TAP()
SLOW_MS = 2500    # the slow reload's init
BOUND_S = 1.0     # a MAIL reply during it must come sooner than this
SRC = os.environ.get("MOAT_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SPAM_CF = os.path.join(SRC, "filters", "spam", "spam.cf")

RECORDS = ["local=/example.test/", "local=/dest.test/"]
seq = [0]


def base(dns):
    return ('dns_forwarders = { "%s" }\ndns_timeout = 3s\n'
            'filter "spf" { check_loopback = "yes" receiver = "mx.moat.test" }\n'
            % dns.forwarder())


def mark(gen):
    """Which configuration a session got: genN@dest.test is refused."""
    return 'filter "mark" { type = "test" reject_rcpt = "gen%d@dest.test" }\n' % gen


def slow(extra=""):
    return 'filter "slow" { type = "test" init_ms = "%d" %s }\n' % (SLOW_MS, extra)


def write_conf(m, text):
    """Replace the configuration after the harness's own lines."""
    head = open(m.conf).read().split("# --- test\n")[0]
    tmp = m.conf + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + "# --- test\n" + text)
    os.rename(tmp, m.conf)  # the reload thread never reads half a file


def session(port, rcpt=None):
    """EHLO, MAIL from a domain never asked before (an SPF lookup through
    the resolver), optionally RCPT; returns (MAIL seconds, MAIL code,
    RCPT code)."""
    seq[0] += 1
    c = Client(port)
    c.code("EHLO client.example.test")
    t0 = time.monotonic()
    mc = c.code("MAIL FROM:<a@u%d-%d.example.test>" % (os.getpid(), seq[0]))
    dt = time.monotonic() - t0
    rc = c.code("RCPT TO:<%s>" % rcpt) if rcpt and mc == 250 else None
    c.cmd("QUIT")
    c.close()
    return dt, mc, rc


def reloads(m):
    return len(re.findall(r"event=reloaded ", m.log()))


def start(dns, sink, first):
    m = Moatd(sink.port, base(dns) + "# --- test\n" + first)
    return m


def sec_responsive(dns, sink, what, slow_conf, reload_ms_min):
    """Sessions during a slow reload are served at once."""
    m = start(dns, sink, mark(1))
    try:
        dt, mc, _ = session(m.port)
        t.eq(mc, 250, "%s: MAIL with an SPF lookup before the reload" % what)
        write_conf(m, mark(2) + slow_conf)
        t0 = time.monotonic()
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reload file=", timeout=5) is not None,
             "%s: event=reload" % what)
        # Sessions for the first part of the reload: each that began
        # while it ran counts, however late it ends.
        times, codes, rcpts = [], [], []
        while time.monotonic() - t0 < 1.2 and len(times) < 200:
            if reloads(m) != 0:
                break
            dt, mc, rc = session(m.port, "gen1@dest.test")
            times.append(dt)
            codes.append(mc)
            rcpts.append(rc)
            time.sleep(0.02)
        t.ok(len(times) >= 3,
             "%s: %d sessions began while the reload was running (%.1f s)"
             % (what, len(times), time.monotonic() - t0), m.log()[-2000:])
        t.ok(all(c == 250 for c in codes), "%s: every MAIL answered 250 meanwhile" % what,
             codes)
        t.ok(times and max(times) < BOUND_S,
             "%s: MAIL (DNS through the main loop) never waited for the reload: "
             "slowest %.3f s, bound %.1f s" % (what, max(times or [0]), BOUND_S),
             ["%.3f" % x for x in times])
        t.ok(all(r == 550 for r in rcpts),
             "%s: sessions during the reload run on the old configuration" % what, rcpts)
        mm = m.wait_log(r"event=reloaded generation=2 ms=(\d+)", timeout=120)
        if mm is not None:
            t.diag("%s: the reload took %s ms" % (what, mm.group(1)))
        t.ok(mm is not None and int(mm.group(1)) >= reload_ms_min,
             "%s: event=reloaded generation=2 ms=N (N >= %d)" % (what, reload_ms_min),
             m.log()[-2000:])
        t.ok("setting=dns" not in m.log(),
             "%s: DNS settings unchanged: no reload-ignored warning" % what)
        _, mc, rc = session(m.port, "gen2@dest.test")
        t.eq((mc, rc), (250, 550), "%s: a new session gets the new configuration" % what)
        _, mc, rc = session(m.port, "gen1@dest.test")
        t.eq((mc, rc), (250, 250), "%s: ... the old one's rule is gone" % what)
        t.eq(m.stop(), 0, "%s: moatd exits 0" % what)
    finally:
        m.stop()


def sec_testfilter():
    sec_responsive(DNS, SINK, "slow init", slow(), SLOW_MS)


def sec_spam():
    if not os.path.isdir("/usr/share/spamassassin"):
        t.skip("a reload compiling Debian's SpamAssassin ruleset", "spamassassin not installed")
        return
    cache = os.path.join(tmpdir(), "rules-cache")  # fresh: it compiles
    conf = ('filter "spam" { sa_rules = "/usr/share/spamassassin" default_rules = "no" '
            'rules = "%s" bayes = "no" rules_cache = "%s" }\n' % (SPAM_CF, cache))
    sec_responsive(DNS, SINK, "ruleset compile", conf, 0)


def sec_queued():
    """SIGHUPs during a reload: exactly one more reload, of the file as it
    is then."""
    m = start(DNS, SINK, mark(1))
    try:
        write_conf(m, mark(2) + slow())
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reload file=", timeout=5) is not None, "queued: reload started")
        time.sleep(0.3)
        # The file changes again during the reload.
        write_conf(m, mark(3))
        for _ in range(3):
            m.send_signal(signal.SIGHUP)
            time.sleep(0.1)
        t.ok(m.wait_log(r"event=reload-queued merged=no", timeout=5) is not None,
             "queued: the first SIGHUP during the reload: event=reload-queued merged=no")
        t.ok(m.wait_log(r"(?s)merged=yes.*merged=yes", timeout=5) is not None,
             "queued: the two others: merged=yes")
        t.ok(m.wait_log(r"event=reloaded generation=3 ", timeout=SLOW_MS / 1000 + 20) is not None,
             "queued: the queued reload ran after the first (generation 3)", m.log()[-2000:])
        time.sleep(1.0)
        t.eq(reloads(m), 2, "queued: three SIGHUPs during a reload make exactly one more")
        t.eq(len(re.findall(r"event=reload file=", m.log())), 2,
             "queued: two reloads started in all")
        _, mc, rc = session(m.port, "gen3@dest.test")
        t.eq(rc, 550, "queued: the second reload read the file as it was then")
        # Nothing queued any more: one SIGHUP, one reload.
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reloaded generation=4 ", timeout=10) is not None,
             "queued: a later SIGHUP reloads once more (generation 4)")
        t.ok("event=reload-queued" not in m.log().split("generation=3")[-1],
             "queued: ... without being queued")
        t.eq(m.stop(), 0, "queued: moatd exits 0")
    finally:
        m.stop()


def sec_failing():
    """A failing configuration read on the reload thread keeps the old one."""
    m = start(DNS, SINK, mark(1))
    try:
        write_conf(m, mark(2) + "this is not { a configuration\n")
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reload-failed", timeout=10) is not None,
             "failing: a parse error: event=reload-failed")
        t.like(m.log(), r"event=config-error file=\S+ line=\d+",
               "failing: the error is logged by the reload thread (event=config-error)")
        _, mc, rc = session(m.port, "gen1@dest.test")
        t.eq(rc, 550, "failing: the old configuration stays in force")
        # A slow init that fails at its end (an unknown stage).
        write_conf(m, mark(2) + slow('reject_stage = "nowhere"'))
        n = len(re.findall(r"event=reload-failed", m.log()))
        t0 = time.monotonic()
        m.send_signal(signal.SIGHUP)
        times = []
        while time.monotonic() - t0 < 1.2:
            dt, mc, _ = session(m.port)
            times.append(dt)
        t.ok(max(times) < BOUND_S, "failing: sessions served during the failing slow reload "
             "(slowest %.3f s)" % max(times))
        t.ok(m.wait_log(r"(?s)(event=reload-failed.*){%d}" % (n + 1), timeout=20) is not None,
             "failing: the slow init that fails: event=reload-failed")
        t.like(m.log(), r"event=config-error .*nowhere",
               "failing: ... and the log says why")
        _, mc, rc = session(m.port, "gen1@dest.test")
        t.eq(rc, 550, "failing: the old configuration still in force")
        # And a good one after the failures (a DNS setting changed: only
        # a restart applies it, the resolver being set up once).
        write_conf(m, mark(2) + "dns_timeout = 2s\n")
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reloaded generation=2 ", timeout=10) is not None,
             "failing: a good configuration after them is applied")
        t.like(m.log(), r"event=reload-ignored setting=dns ",
               "failing: ... with a warning that its DNS settings need a restart")
        t.eq(m.stop(), 0, "failing: moatd exits 0")
    finally:
        m.stop()


def sec_shutdown():
    """SIGTERM during a reload: nothing applied, a clean, prompt exit."""
    m = start(DNS, SINK, mark(1))
    try:
        write_conf(m, mark(2) + slow())
        m.send_signal(signal.SIGHUP)
        t.ok(m.wait_log(r"event=reload file=", timeout=5) is not None, "shutdown: reload started")
        time.sleep(0.3)
        t0 = time.monotonic()
        m.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        m.send_signal(signal.SIGHUP)  # during the drain: ignored
        rc = m.wait_exit(timeout=SLOW_MS / 1000 + 15)
        took = time.monotonic() - t0
        t.eq(rc, 0, "shutdown: moatd exits 0 (a SIGHUP while draining did not kill it)")
        t.ok(took < SLOW_MS / 1000 + 3,
             "shutdown: it exits once the reload's work ends (%.1f s after SIGTERM)" % took)
        log = m.log()
        t.like(log, r"event=reload-abandoned", "shutdown: event=reload-abandoned")
        t.ok("event=reloaded" not in log, "shutdown: the half-built configuration was not applied")
        t.like(log, r"event=stopped", "shutdown: event=stopped")
    finally:
        m.stop()


if not dnsmasq_usable():
    t.skip("reload tests", "dnsmasq not installed")
    t.done()
DNS = Dnsmasq(RECORDS)
SINK = Sink()
for sec in (sec_testfilter, sec_queued, sec_failing, sec_shutdown, sec_spam):
    t.section(sec)
SINK.stop()
DNS.stop()
t.done()
