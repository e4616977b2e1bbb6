#!/usr/bin/env bash
# moat benchmark: smtp-source -> {smtp-sink directly, haproxy (mode tcp),
# moatd} -> smtp-sink, all on loopback. See bench/README.md.
#
#   bash bench/run.sh            # from the repository root, after `make moatd`
#
# Environment: MOATD (default ./moatd), BENCH_SCALE (message counts are
# multiplied by it; default 1), BENCH_REPEAT (runs per point, default 3),
# IDLE_SESSIONS (default 5000),
# LATENCY_RUNS (default 200), RESULTS (default bench/RESULTS.md),
# SKIP_TLS (1: do not run bench/tls.sh at the end; see that script for its
# own knobs).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
MOATD=${MOATD:-$top/moatd}
SCALE=${BENCH_SCALE:-1}
IDLE=${IDLE_SESSIONS:-5000}
LRUNS=${LATENCY_RUNS:-200}
REPEAT=${BENCH_REPEAT:-3}
RESULTS=${RESULTS:-$here/RESULTS.md}

BENCH_NAME=bench
. "$here/lib.sh"

# ------------------------------------------------------------ prerequisites
bench_need "smtp-sink:postfix smtp-source:postfix haproxy:haproxy python3:python3 prlimit:util-linux"

# Enough descriptors for 200 sessions x 2 sides and 5000 idle sessions.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((IDLE + 200)) ] || die "ulimit -n $(ulimit -n) is too low for $IDLE idle sessions"

bench_tmpdir moatbench
bench_take_moatd

NPROC=$(nproc)
R=$T/results
: >"$R"
echo "info nproc=$NPROC kernel=$(uname -r) load_at_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >>"$R"

# ------------------------------------------------------------ servers
bench_start_sink

MOAT_PORT=$(free_port)
mkdir -m 1777 "$T/spool"      # moatd drops privileges after binding
cat >"$T/moat.conf" <<EOF
hostname = "moat.bench"
upstream = "127.0.0.1:$SINK_PORT"
spool_directory = "$T/spool"
threads = $NPROC
max_connections = 20000
max_connections_per_ip = 20000
listen "127.0.0.1:$MOAT_PORT" {}
EOF
bench_start_moatd "$T/moat.conf" "$MOAT_PORT" "$T/moatd.log"
MOAT_PID=$BENCH_PID

# The same moatd with the filter chain on, cheap filters only: three
# 100,000-entry lists (client, sender domain, recipient; none matches the
# benchmark's traffic, so every lookup is a full miss) and moat's own
# headers on every message (spam status always), which makes it rewrite
# every header section.
CHAIN_PORT=$(free_port)
python3 - "$T" <<'PY'
import random, sys
t = sys.argv[1]
r = random.Random(7)
with open(t + "/clients.list", "w") as f:
    for _ in range(100000):
        f.write("10.%d.%d.%d\n" % (r.randrange(256), r.randrange(256), r.randrange(256)))
with open(t + "/senders.list", "w") as f:
    for i in range(100000):
        f.write("spammer%d.example\n" % i)
with open(t + "/rcpts.list", "w") as f:
    for i in range(100000):
        f.write("blocked%d@example.test\n" % i)
PY
sed -e "s/127.0.0.1:$MOAT_PORT/127.0.0.1:$CHAIN_PORT/" "$T/moat.conf" >"$T/moat-chain.conf"
cat >>"$T/moat-chain.conf" <<EOF
spam_headers_always = true
list "clients" { type = client
  file = {"$T/clients.list"}
  action = reject }
list "senders" { type = sender
  file = {"$T/senders.list"}
  action = reject }
list "rcpts" { type = recipient
  file = {"$T/rcpts.list"}
  action = reject }
EOF
bench_start_moatd "$T/moat-chain.conf" "$CHAIN_PORT" "$T/moatd-chain.log"
CHAIN_PID=$BENCH_PID

HA_PORT=$(free_port)
cat >"$T/haproxy.cfg" <<EOF
global
    maxconn 5000
    nbthread $NPROC
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp_in
    bind 127.0.0.1:$HA_PORT
    default_backend smtp_out
backend smtp_out
    server sink 127.0.0.1:$SINK_PORT
EOF
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
wait_port "$HA_PORT" || die "haproxy did not start: $(cat "$T/haproxy.log")"

echo "info moatd=$(grep -o 'version=[^ ]*' "$T/moatd.log" | head -1 | cut -d= -f2) rev=$REV haproxy=$(haproxy -v | head -1 | awk '{print $3}') moat_threads=$NPROC haproxy_threads=$NPROC" >>"$R"

# ------------------------------------------------------------ throughput
accepted() { grep -c 'event=tx .*verdict=accepted' "$T/moatd.log"; }
accepted_chain() { grep -c 'event=tx .*verdict=accepted' "$T/moatd-chain.log"; }

# size sessions messages (before BENCH_SCALE)
# Each point runs REPEAT times, the three targets taking turns, so that a
# burst of load from elsewhere hits all of them alike; the report takes the
# median rate and the CPU time summed over the repeats.
POINTS="1024:1:4000 1024:20:10000 1024:200:10000 102400:1:2000 102400:20:4000 102400:200:4000"
echo "bench: throughput (smtp-source -> target -> smtp-sink), $REPEAT runs per point"
for point in $POINTS; do
	IFS=: read -r size sess msgs <<<"$point"
	msgs=$(python3 -c "print(max(int($msgs * $SCALE), $sess))")
	for rep in $(seq "$REPEAT"); do
	for target in direct haproxy moat chain; do
		case $target in
		direct) port=$SINK_PORT pid="" ;;
		haproxy) port=$HA_PORT pid=$HA_PID ;;
		moat) port=$MOAT_PORT pid=$MOAT_PID ;;
		chain) port=$CHAIN_PORT pid=$CHAIN_PID ;;
		esac
		c0=NA c1=NA
		[ -n "$pid" ] && c0=$(cpu_ticks "$pid")
		a0=$(accepted)
		[ $target = chain ] && a0=$(accepted_chain)
		t0=$(now)
		timeout 120 smtp-source -s "$sess" -m "$msgs" -l "$size" \
		    -M bench.example.org -f bench@example.org -t sink@example.test \
		    127.0.0.1:"$port" >"$T/source.out" 2>&1
		rc=$?
		t1=$(now)
		[ -n "$pid" ] && c1=$(cpu_ticks "$pid")
		a1=$(accepted)
		[ $target = chain ] && a1=$(accepted_chain)
		secs=$(python3 -c "print('%.3f' % ($t1 - $t0))")
		cpu=NA
		[ -n "$pid" ] && cpu=$((c1 - c0))
		tx=NA
		case $target in moat|chain) tx=$((a1 - a0)) ;; esac
		echo "tput target=$target size=$size sessions=$sess rep=$rep msgs=$msgs secs=$secs rc=$rc cpu_ticks=$cpu moat_accepted=$tx" >>"$R"
		printf '  %-7s %6s B x %3s sessions: %6s msgs in %6ss rc=%s\n' "$target" "$size" "$sess" "$msgs" "$secs" "$rc"
		[ $rc = 0 ] || { echo "    smtp-source: $(tail -c 300 "$T/source.out")"; }
	done
	done
done
echo "info clk_tck=$(getconf CLK_TCK)" >>"$R"

# ------------------------------------------------------------ latency
echo "bench: latency of one transaction at concurrency 1 ($LRUNS runs each)"
if timeout 120 python3 "$here/latency.py" "$LRUNS" direct=127.0.0.1:"$SINK_PORT" \
    moat=127.0.0.1:"$MOAT_PORT" >"$T/latency.json" 2>"$T/latency.err"; then
	echo "latency file=$T/latency.json" >>"$R"
else
	echo "latency error=$(tr '\n' ' ' <"$T/latency.err" | tail -c 300 | tr ' ' _)" >>"$R"
fi

kill "$HA_PID" 2>/dev/null
kill "$MOAT_PID" 2>/dev/null

# ------------------------------------------------------------ idle sessions
echo "bench: resident memory of moatd with $IDLE idle sessions"
MEM_PORT=$(free_port)
sed -e "s/127.0.0.1:$MOAT_PORT/127.0.0.1:$MEM_PORT/" "$T/moat.conf" >"$T/moat-mem.conf"
bench_start_moatd "$T/moat-mem.conf" "$MEM_PORT" "$T/moatd-mem.log"
MEM_PID=$BENCH_PID
# Warm up: a few complete sessions, so that per-thread allocator arenas exist.
python3 "$here/latency.py" 5 warm=127.0.0.1:"$MEM_PORT" >/dev/null 2>&1
sleep 0.5
rss0=$(rss_kb "$MEM_PID")
rm -f "$T/idle.ready"
python3 "$here/idle.py" "$IDLE" 127.0.0.1:"$MEM_PORT" "$T/idle.ready" &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
for _ in $(seq 600); do [ -s "$T/idle.ready" ] && break; sleep 0.1; done
sleep 1
rss1=$(rss_kb "$MEM_PID")
state=$(cat "$T/idle.ready" 2>/dev/null | tr ' ' _)
echo "mem sessions=$IDLE rss_before_kb=$rss0 rss_after_kb=$rss1 state=${state:-timeout}" >>"$R"
kill "$IDLE_PID" 2>/dev/null
kill "$MEM_PID" 2>/dev/null

# ------------------------------------------------------------ report
python3 "$here/report.py" "$R" "$RESULTS"
rc=$?

# ------------------------------------------------------------ TLS
# bench/tls.sh starts its own servers and writes bench/RESULTS-tls.md.
if [ "${SKIP_TLS:-0}" != 1 ]; then
	MOATD="$MOATD" bash "$here/tls.sh" || rc=1
fi
exit $rc
