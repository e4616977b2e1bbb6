#!/usr/bin/env python3
"""Turn bench/run.sh's raw results into a table on stdout and RESULTS.md.

usage: report.py RAW_RESULTS RESULTS_MD
"""

import json
import os
import platform
import statistics
import sys
import time

TARGET_RATIO_DIRECT = 0.5     # moat msg/s >= 0.5 x direct at every point
TARGET_RATIO_CHAIN = 0.9      # moat with cheap filters >= 0.9 x moat alone
TARGET_LATENCY_MS = 1.0       # < 1 ms added per transaction at concurrency 1
TARGET_IDLE_KIB = 8.0         # <= 8 KiB resident per idle session


def parse(path):
    info, tput, mem, lat = {}, [], None, None
    with open(path) as f:
        for line in f:
            kind, *kv = line.split()
            d = dict(x.split("=", 1) for x in kv)
            if kind == "info":
                info.update(d)
            elif kind == "tput":
                tput.append(d)
            elif kind == "mem":
                mem = d
            elif kind == "latency":
                lat = d
    return info, tput, mem, lat


def read_runs(path):
    """The raw file of bench/auth.sh and bench/av.sh: "info k=v ..." lines
    merged into one dict, "run NAME k=v ..." lines grouped by NAME, and the
    last "sample TEXT" line. Returns (info, runs, sample)."""
    info, runs, sample = {}, {}, ""
    with open(path) as f:
        for line in f:
            if line.startswith("info "):
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    info[k] = v
            elif line.startswith("run "):
                name = line.split()[1]
                kv = dict(x.split("=", 1) for x in line.split()[2:] if "=" in x)
                runs.setdefault(name, []).append(kv)
            elif line.startswith("sample "):
                sample = line[7:].strip()
    return info, runs, sample


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(x, nd=0):
    if x is None:
        return "n/a"
    return ("%." + str(nd) + "f") % x


def main():
    raw, out_md = sys.argv[1], sys.argv[2]
    info, tput, mem, lat = parse(raw)
    tck = float(info.get("clk_tck", 100))
    seen = []
    runs = {}
    for d in tput:
        key = (int(d["size"]), int(d["sessions"]))
        if key not in seen:
            seen.append(key)
        runs.setdefault(key + (d["target"],), []).append(d)
    lines = []
    misses = []

    def p(s=""):
        lines.append(s)

    p("## Throughput (messages per second; one message per connection)")
    p()
    p("Median of the runs at each point; the individual runs in brackets.")
    p()
    p("| size | sessions | direct | haproxy | moat | moat/direct | haproxy/direct | moat/haproxy |")
    p("|-----:|---------:|-------:|--------:|-----:|------------:|---------------:|-------------:|")
    cpu_rows = []
    chain_rows = []
    tot = {"moat": [0.0, 0], "haproxy": [0.0, 0], "chain": [0.0, 0]}
    for size, sess in seen:
        rate, rates, cpu, notes = {}, {}, {}, []
        for tg in ("direct", "haproxy", "moat", "chain"):
            rs = runs.get((size, sess, tg), [])
            ok_rates = []
            ticks = msgs = 0
            for d in rs:
                if d["rc"] != "0":
                    notes.append("%s run %s: smtp-source rc=%s" % (tg, d.get("rep", "?"), d["rc"]))
                    continue
                if tg in ("moat", "chain") and d.get("moat_accepted") not in (None, "NA") \
                        and int(d["moat_accepted"]) != int(d["msgs"]):
                    notes.append("moat accepted %s of %s" % (d["moat_accepted"], d["msgs"]))
                ok_rates.append(int(d["msgs"]) / float(d["secs"]))
                if d["cpu_ticks"] != "NA":
                    ticks += int(d["cpu_ticks"])
                    msgs += int(d["msgs"])
            rates[tg] = ok_rates
            # A point with a failed run has no rate: it is a miss, not a number.
            rate[tg] = statistics.median(ok_rates) if ok_rates and len(ok_rates) == len(rs) else None
            if msgs:
                cpu[tg] = ticks / tck / msgs * 1e6
                tot[tg][0] += ticks / tck
                tot[tg][1] += msgs
        r = lambda a, b: (rate[a] / rate[b]) if rate.get(a) and rate.get(b) else None
        md, hd, mh = r("moat", "direct"), r("haproxy", "direct"), r("moat", "haproxy")
        label = "%d KB" % (size // 1024)
        cell = lambda tg: "%s (%s)" % (fmt(rate[tg]), " ".join(fmt(x) for x in rates[tg]))
        p("| %s | %d | %s | %s | %s | %s | %s | %s |%s" % (
            label, sess, cell("direct"), cell("haproxy"), cell("moat"),
            fmt(md, 2), fmt(hd, 2), fmt(mh, 2),
            (" " + "; ".join(notes)) if notes else ""))
        if md is None or md < TARGET_RATIO_DIRECT:
            misses.append("throughput %s x %d sessions: moat/direct = %s (target >= %.1f)"
                          % (label, sess, fmt(md, 2), TARGET_RATIO_DIRECT))
        if mh is None or mh < 1.0:
            misses.append("throughput %s x %d sessions: moat/haproxy = %s (target >= 1.0)"
                          % (label, sess, fmt(mh, 2)))
        cpu_rows.append((label, sess, cpu.get("moat"), cpu.get("haproxy")))
        if runs.get((size, sess, "chain")):
            chain_rows.append((label, sess, cell("moat"), cell("chain"),
                               r("chain", "moat"), cpu.get("moat"), cpu.get("chain")))
    if chain_rows:
        p()
        p("## Filter chain cost (moat with cheap filters vs. moat alone, same run)")
        p()
        p("chain = three 100,000-entry lists (client, sender, recipient; every "
          "lookup a miss) and moat's own headers written into every message "
          "(header section rewritten). Target: chain/moat >= %.2f." % TARGET_RATIO_CHAIN)
        p()
        p("| size | sessions | moat | chain | chain/moat | CPU µs/msg moat | CPU µs/msg chain |")
        p("|-----:|---------:|-----:|------:|-----------:|----------------:|-----------------:|")
        for label, sess, cm, cc, ratio, um, uc in chain_rows:
            p("| %s | %d | %s | %s | %s | %s | %s |" % (label, sess, cm, cc, fmt(ratio, 2),
                                                      fmt(um), fmt(uc)))
            if ratio is None or ratio < TARGET_RATIO_CHAIN:
                misses.append("chain %s x %d sessions: chain/moat = %s (target >= %.2f)"
                              % (label, sess, fmt(ratio, 2), TARGET_RATIO_CHAIN))
    p()
    p("## CPU time per message (user+system, µs; whole process, all threads)")
    p()
    p("| size | sessions | moat | haproxy | moat/haproxy |")
    p("|-----:|---------:|-----:|--------:|-------------:|")
    for label, sess, cm, ch in cpu_rows:
        ratio = cm / ch if cm is not None and ch else None
        p("| %s | %d | %s | %s | %s |" % (label, sess, fmt(cm), fmt(ch), fmt(ratio, 2)))
        if ratio is None or ratio > 1.0:
            misses.append("CPU/message %s x %d sessions: moat %s µs vs haproxy %s µs (target <= haproxy)"
                          % (label, sess, fmt(cm), fmt(ch)))
    am = tot["moat"][0] / tot["moat"][1] * 1e6 if tot["moat"][1] else None
    ah = tot["haproxy"][0] / tot["haproxy"][1] * 1e6 if tot["haproxy"][1] else None
    p("| all | all | %s | %s | %s |" % (fmt(am), fmt(ah),
                                       fmt(am / ah if am is not None and ah else None, 2)))
    p()
    p("CPU is sampled from /proc/PID/stat in clock ticks (1/%d s) before and "
      "after each run and summed over the runs of a point." % int(tck))
    p()

    p("## Latency added to one transaction at concurrency 1 (median, ms)")
    p()
    lat_ms = None
    if lat and "file" in lat and os.path.exists(lat["file"]):
        with open(lat["file"]) as f:
            L = json.load(f)
        dr, mo = L["direct"], L["moat"]
        p("| step | direct | moat | added |")
        p("|------|-------:|-----:|------:|")
        for s in dr["steps_ms"]:
            a, b = dr["steps_ms"][s], mo["steps_ms"][s]
            p("| %s | %.3f | %.3f | %+.3f |" % (s, a, b, b - a))
        lat_ms = mo["total_ms"] - dr["total_ms"]
        p("| **whole transaction** | %.3f | %.3f | **%+.3f** |" % (dr["total_ms"], mo["total_ms"], lat_ms))
        p()
        p("%d transactions each, alternating direct and moat (1 KB body); "
          "p90 of the whole transaction: direct %.3f ms, moat %.3f ms." %
          (dr["runs"], dr["total_p90_ms"], mo["total_p90_ms"]))
        if lat_ms >= TARGET_LATENCY_MS:
            misses.append("latency: moat adds %.3f ms per transaction (target < %.1f ms)"
                          % (lat_ms, TARGET_LATENCY_MS))
    else:
        p("latency measurement failed: %s" % (lat or {}).get("error", "no data"))
        misses.append("latency: not measured")
    p()

    p("## Resident memory per idle session")
    p()
    kib = None
    if mem and mem.get("state", "").startswith("ok"):
        n = int(mem["sessions"])
        before, after = int(mem["rss_before_kb"]), int(mem["rss_after_kb"])
        kib = (after - before) / n
        p("moatd VmRSS %d KiB before, %d KiB with %d idle sessions (greeted, "
          "then silent): **%.2f KiB per session**." % (before, after, n, kib))
        if kib > TARGET_IDLE_KIB:
            misses.append("memory: %.2f KiB per idle session (target <= %.0f KiB)"
                          % (kib, TARGET_IDLE_KIB))
    else:
        p("idle-session measurement failed: %s" % ((mem or {}).get("state") or "no data"))
        misses.append("memory: not measured")
    p()

    p("## Targets")
    p()
    if misses:
        for m in misses:
            p("- MISSED: " + m)
    else:
        p("- all targets met")
    p()

    header = []
    header.append("# moat benchmark results")
    header.append("")
    header.append("Produced by `bench/run.sh` on %s." % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    header.append("")
    header.append("- machine: %s CPU(s) (`nproc`), %s, Linux %s" % (
        info.get("nproc", "?"), cpu_model(), info.get("kernel", platform.release())))
    header.append("- load average at start: %s (the machine is shared; numbers are noisy)"
                  % info.get("load_at_start", "?").replace("/", " "))
    header.append("- moatd %s, tree %s (%s threads), HAProxy %s (%s threads, `mode tcp`), "
                  "Postfix smtp-source/smtp-sink; everything on 127.0.0.1" % (
                      info.get("moatd", "?"), info.get("rev", "?"),
                      info.get("moat_threads", "?"),
                      info.get("haproxy", "?"), info.get("haproxy_threads", "?")))
    header.append("- direct = smtp-source -> smtp-sink; haproxy = smtp-source -> "
                  "haproxy -> smtp-sink; moat = smtp-source -> moatd -> smtp-sink "
                  "(moat relays with XFORWARD, logs every transaction at info level)")
    header.append("")
    text = "\n".join(header + lines)
    # Keep the sections other scripts own (bench/spam-accuracy's).
    try:
        with open(out_md) as f:
            old = f.read()
    except OSError:
        old = ""
    for begin, end in (("<!-- spam-accuracy -->", "<!-- /spam-accuracy -->"),):
        if begin in old and end in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    print()
    print("\n".join(lines))
    print("written to %s" % out_md)


if __name__ == "__main__":
    main()
