#!/usr/bin/env python3
"""Turn bench/tls.sh's raw results into markdown on stdout and RESULTS_TLS.

usage: tls_report.py RAW_RESULTS RESULTS_MD [MOAT_WARNINGS [HAPROXY_WARNINGS]]
"""

import os
import platform
import statistics
import sys
import time

from report import cpu_model, fmt  # bench/report.py, beside this file

TARGET_HS_RATIO = 0.90        # moat full-handshake rate >= 0.9 x HAProxy's
TARGET_RESUME_RATIO = 3.0     # moat resumed handshakes >= 3 x full ones

HS_ROWS = [
    # kind, label, client, full handshake?
    ("tls13-full", "TLS 1.3 full", "`s_time -new`", True),
    ("tls12-full", "TLS 1.2 full", "`s_time -new -tls1_2`", True),
    ("tls12-resumed", "TLS 1.2 resumed", "`s_time -reuse -tls1_2`", False),
    ("tls13-full-greet", "TLS 1.3 full, to 220", "`tls_source -H -3`", True),
    ("tls13-resumed-greet", "TLS 1.3 resumed, to 220", "`tls_source -H -3 -r`", False),
]
RESUME_PAIRS = [
    ("TLS 1.2", "s_time", "tls12-full", "tls12-resumed"),
    ("TLS 1.3", "tls_source -H", "tls13-full-greet", "tls13-resumed-greet"),
]
MSG_COLS = [
    ("direct", "direct plain"),
    ("plain", "moat plain"),
    ("starttls", "moat STARTTLS"),
    ("resumed", "moat STARTTLS resumed"),
    ("implicit", "moat implicit TLS"),
    ("haproxy", "haproxy implicit TLS"),
]


def parse(path):
    info, hs, msg = {}, [], []
    with open(path) as f:
        for line in f:
            kind, *kv = line.split()
            d = dict(x.split("=", 1) for x in kv if "=" in x)
            if kind == "info":
                info.update(d)
            elif kind == "hs":
                hs.append(d)
            elif kind == "msg":
                msg.append(d)
    return info, hs, msg


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def lines_of(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def main():
    raw, out_md = sys.argv[1], sys.argv[2]
    moat_warn = lines_of(sys.argv[3] if len(sys.argv) > 3 else None)
    ha_warn = lines_of(sys.argv[4] if len(sys.argv) > 4 else None)
    info, hs, msg = parse(raw)
    tck = float(os.sysconf("SC_CLK_TCK"))
    out = []
    misses, passes = [], []

    def p(s=""):
        out.append(s)

    p("## TLS benchmark")
    p()
    p("Produced by `bench/tls.sh` on %s." % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    p()
    p("- machine: %s CPU(s) (`nproc`), %s, Linux %s; load average at start %s "
      "(the machine may be shared: compare ratios from one run, not absolute numbers)" % (
          info.get("nproc", "?"), cpu_model(), info.get("kernel", platform.release()),
          info.get("load_at_start", "?").replace("/", " ")))
    p("- moatd %s, tree %s (%s threads, %s); HAProxy %s (%s threads, `mode tcp`, "
      "`bind ... ssl crt`, running on OpenSSL %s); `openssl` command %s; "
      "smtp-sink as the upstream; everything on 127.0.0.1" % (
          info.get("moatd", "?"), info.get("rev", "?"), info.get("moat_threads", "?"),
          info.get("moatd_ssl", "?"), info.get("haproxy", "?"),
          info.get("haproxy_threads", "?"), info.get("haproxy_ssl", "?"),
          info.get("openssl", "?")))
    p("- one self-signed RSA-2048 certificate (CN and SAN mx.example.test) for both; "
      "OpenSSL defaults on both sides; negotiated: moat %s, haproxy %s" % (
          info.get("negotiated_moat", "?"), info.get("negotiated_haproxy", "?")))
    p("- runs: %s per point; handshake runs %s s with %s parallel clients; "
      "BENCH_SCALE %s" % (info.get("repeat", "?"), info.get("seconds", "?"),
                          info.get("clients", "?"), info.get("scale", "?")))
    p()

    # ---------------------------------------------------------- handshakes
    runs = {}
    for d in hs:
        runs.setdefault((d["kind"], d["target"]), []).append(d)

    def hs_stats(kind, target):
        rs = runs.get((kind, target), [])
        ok = [float(d["rate"]) for d in rs
              if d.get("fails") == "0" and d.get("rc", "0") == "0" and int(d["conns"]) > 0]
        med = statistics.median(ok) if ok and len(ok) == len(rs) else None
        conns = sum(int(d["conns"]) for d in rs)
        reused = sum(int(d["reused"]) for d in rs)
        ticks = sum(int(d.get("cpu_ticks", 0)) for d in rs)
        cpu_us = ticks / tck / conns * 1e6 if conns else None
        bad = [d for d in rs if d.get("fails") != "0" or d.get("rc", "0") != "0"]
        return med, ok, conns, reused, cpu_us, bad

    p("### New TLS sessions per second")
    p()
    p("Median of the runs (each run in brackets). `s_time` rows: %s parallel "
      "`openssl s_time` processes, each timed with `date` around it; a run's rate "
      "is the sum over the clients of N / wall seconds, N from s_time's "
      "\"N connections in M real seconds\" line (s_time itself only counts whole "
      "seconds). s_time makes the handshake and closes. `tls_source -H` rows: "
      "one process with %s threads, implicit TLS, the handshake and the 220 "
      "greeting (so that TLS 1.3 tickets arrive: s_time never reads, so it "
      "cannot resume TLS 1.3), then close. CPU: server process user+system time "
      "per connection, from /proc/PID/stat." % (info.get("clients", "?"),
                                                info.get("clients", "?")))
    p()
    p("| handshake | client | moat /s | haproxy /s | moat/haproxy | CPU µs moat | CPU µs haproxy | target |")
    p("|-----------|--------|--------:|-----------:|-------------:|------------:|---------------:|--------|")
    rate = {}
    for kind, label, client, full in HS_ROWS:
        if not runs.get((kind, "moat")) and not runs.get((kind, "haproxy")):
            continue
        sm, sh = hs_stats(kind, "moat"), hs_stats(kind, "haproxy")
        rate[(kind, "moat")], rate[(kind, "haproxy")] = sm[0], sh[0]
        ratio = sm[0] / sh[0] if sm[0] and sh[0] else None
        if full:
            ok = ratio is not None and ratio >= TARGET_HS_RATIO
            tgt = ">= %.2f %s" % (TARGET_HS_RATIO, verdict(ok))
            (passes if ok else misses).append(
                "%s handshakes (%s): moat/haproxy = %s (target >= %.2f)" % (
                    label, client.strip("`"), fmt(ratio, 2), TARGET_HS_RATIO))
        else:
            tgt = "(see resumption)"
        cell = lambda s: "%s (%s)" % (fmt(s[0]), " ".join(fmt(x) for x in s[1]))
        note = []
        for name, s in (("moat", sm), ("haproxy", sh)):
            for d in s[5]:
                note.append("%s run %s: %s client(s) failed%s" % (
                    name, d.get("rep", "?"), d.get("fails"),
                    "" if d.get("rc", "0") == "0" else ", rc=" + d["rc"]))
        p("| %s | %s | %s | %s | %s | %s | %s | %s |%s" % (
            label, client, cell(sm), cell(sh), fmt(ratio, 2), fmt(sm[4]), fmt(sh[4]), tgt,
            (" " + "; ".join(note)) if note else ""))
        for name, s in (("moat", sm), ("haproxy", sh)):
            if s[5]:
                misses.append("%s %s: handshake failures (%s)" % (name, label, "; ".join(note)))
                break
    p()

    p("### Resumed vs. full handshakes (same client, same target)")
    p()
    p("Rates of the table above; CPU: the server's CPU time per full handshake "
      "/ per resumed one (less affected by the clients sharing the machine).")
    p()
    p("| protocol | client | moat resumed/full | haproxy resumed/full | "
      "moat CPU full/resumed | haproxy CPU full/resumed | "
      "moat connections resumed | haproxy connections resumed | target (moat) |")
    p("|----------|--------|------------------:|---------------------:|"
      "----------------------:|-------------------------:|"
      "-------------------------:|----------------------------:|---------------|")
    for proto, client, kfull, kres in RESUME_PAIRS:
        if not runs.get((kres, "moat")):
            continue
        rm = rate.get((kres, "moat")), rate.get((kfull, "moat"))
        rh = rate.get((kres, "haproxy")), rate.get((kfull, "haproxy"))
        qm = rm[0] / rm[1] if rm[0] and rm[1] else None
        qh = rh[0] / rh[1] if rh[0] and rh[1] else None
        _, _, cm, um, xm, _ = hs_stats(kres, "moat")
        _, _, ch, uh, xh, _ = hs_stats(kres, "haproxy")
        fm, fh = hs_stats(kfull, "moat")[4], hs_stats(kfull, "haproxy")[4]
        ok = qm is not None and qm >= TARGET_RESUME_RATIO
        p("| %s | %s | %s | %s | %s | %s | %d of %d | %d of %d | >= %.1f %s |" % (
            proto, client, fmt(qm, 2), fmt(qh, 2),
            fmt(fm / xm if fm and xm else None, 2), fmt(fh / xh if fh and xh else None, 2),
            um, cm, uh, ch, TARGET_RESUME_RATIO, verdict(ok)))
        (passes if ok else misses).append(
            "%s resumed/full handshake rate through moat = %s (target >= %.1f; "
            "haproxy %s)" % (proto, fmt(qm, 2), TARGET_RESUME_RATIO, fmt(qh, 2)))
        # Resumption must really happen: nearly every timed connection
        # (s_time -reuse makes one full handshake first, tls_source one per
        # client thread).
        if cm and um < 0.95 * cm:
            misses.append("%s: moat resumed only %d of %d connections offering a session"
                          % (proto, um, cm))
    p()
    p("Sanity checks: `openssl s_client -tls1_2 -reconnect` (5 reconnections "
      "offering the session; resumed/total): moat STARTTLS %s, moat implicit %s, "
      "haproxy %s; `tls_source -H -3 -r -m 6` (TLS 1.3 resumed/total): moat %s, "
      "haproxy %s. moatd's log: `resumed=yes` on %s sessions during the handshake "
      "runs." % (
          info.get("reconnect12_moat_starttls", "?"), info.get("reconnect12_moat_implicit", "?"),
          info.get("reconnect12_haproxy", "?"), info.get("resume13_moat", "?"),
          info.get("resume13_haproxy", "?"), info.get("moat_log_resumed_yes_handshakes", "?")))
    for key in ("reconnect12_moat_starttls", "reconnect12_moat_implicit", "resume13_moat"):
        v = info.get(key, "0/0")
        try:
            a, b = (int(x) for x in v.split("/"))
        except ValueError:
            a, b = 0, 1
        if b == 0 or a < b - 1:
            misses.append("resumption sanity check %s = %s (expected all but the first)"
                          % (key, v))
    p()

    # ---------------------------------------------------------- messages
    mruns, seen = {}, []
    for d in msg:
        key = (int(d["size"]), int(d["sessions"]))
        if key not in seen:
            seen.append(key)
        mruns.setdefault(key + (d["target"],), []).append(d)
    p("### Messages per second (one message per connection)")
    p()
    p("All columns from the same client, `bench/tls_source` (like "
      "`smtp-source -s S -m M -l SIZE`: connect, 220, EHLO, [STARTTLS, handshake, "
      "EHLO,] MAIL, RCPT, DATA, headers + SIZE bytes, \".\", QUIT; every reply "
      "checked), timed with `date`; median of the runs, each run in brackets. "
      "direct: plaintext to smtp-sink. moat plain / STARTTLS / STARTTLS resumed: "
      "the same moatd listener (`tls = \"starttls\"`), without STARTTLS, with a full "
      "handshake per message, and resuming each client thread's previous session. "
      "implicit TLS: the same transaction inside TLS from the first byte, through "
      "moatd (`tls = \"implicit\"`) and through HAProxy terminating TLS.")
    p()
    p("| size | sessions | " + " | ".join(c[1] for c in MSG_COLS) +
      " | STARTTLS/plain | resumed/STARTTLS | implicit moat/haproxy |")
    p("|-----:|---------:|" + "|".join("-" * (len(c[1]) + 1) + ":" for c in MSG_COLS) +
      "|---------------:|-----------------:|----------------------:|")
    for size, sess in seen:
        rate, cells, notes = {}, [], []
        for tg, _ in MSG_COLS:
            rs = mruns.get((size, sess, tg), [])
            ok = []
            for d in rs:
                if d["rc"] != "0" or d.get("failed", "0") != "0" or d.get("errors", "0") != "0":
                    notes.append("%s run %s: rc=%s accepted=%s failed=%s errors=%s" % (
                        tg, d.get("rep"), d["rc"], d.get("accepted", "?"),
                        d.get("failed", "?"), d.get("errors", "?")))
                    continue
                if d.get("moat_accepted", "NA") != "NA" and int(d["moat_accepted"]) != int(d["msgs"]):
                    notes.append("%s run %s: moatd logged %s accepted of %s" % (
                        tg, d.get("rep"), d["moat_accepted"], d["msgs"]))
                if tg == "resumed" and int(d.get("resumed", 0)) < int(d.get("tls", 0)) - sess:
                    notes.append("resumed run %s: only %s of %s handshakes resumed" % (
                        d.get("rep"), d.get("resumed"), d.get("tls")))
                ok.append(int(d["msgs"]) / float(d["secs"]))
            rate[tg] = statistics.median(ok) if ok and len(ok) == len(rs) else None
            cells.append("%s (%s)" % (fmt(rate[tg]), " ".join(fmt(x) for x in ok)) if rs else "-")
        r = lambda a, b: rate[a] / rate[b] if rate.get(a) and rate.get(b) else None
        label = "%d KB" % (size // 1024)
        p("| %s | %d | %s | %s | %s | %s |%s" % (
            label, sess, " | ".join(cells), fmt(r("starttls", "plain"), 2),
            fmt(r("resumed", "starttls"), 2), fmt(r("implicit", "haproxy"), 2),
            (" " + "; ".join(notes)) if notes else ""))
        if notes:
            misses.append("messages %s x %d sessions: %s" % (label, sess, "; ".join(notes)))
    p()

    # ---------------------------------------------------------- health
    p("### moatd health")
    p()
    p("moatd alive at the end: %s; `event=tls-error` log lines: %s (sanity checks "
      "%s, handshake runs %s, message runs %s); `event=tls-timeout`: %s; "
      "warning-or-worse lines: %s." % (
          info.get("moat_alive", "?"), info.get("moat_log_tls_errors", "?"),
          info.get("moat_log_tls_errors_setup", "?"),
          info.get("moat_log_tls_errors_handshakes", "?"),
          info.get("moat_log_tls_errors_messages", "?"),
          info.get("moat_log_tls_timeouts", "?"), info.get("moat_log_warnings", "?")))
    if moat_warn:
        p()
        p("First warnings and TLS errors in moatd's log:")
        p()
        p("```")
        out.extend(moat_warn)
        p("```")
    if ha_warn:
        p()
        p("HAProxy warnings:")
        p()
        p("```")
        out.extend(ha_warn)
        p("```")
    if info.get("moat_alive") != "yes":
        misses.append("moatd was not running at the end of the run")
    p()

    p("### Targets")
    p()
    for m in passes:
        p("- PASS: " + m)
    for m in misses:
        p("- FAIL: " + m)
    p()

    text = "\n".join(out)
    with open(out_md, "w") as f:
        f.write(text)
    print()
    print(text)
    print("written to %s" % out_md)


if __name__ == "__main__":
    main()
