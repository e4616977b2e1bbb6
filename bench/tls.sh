#!/usr/bin/env bash
# moat TLS benchmark: TLS handshakes per second through moatd and through
# HAProxy terminating TLS with the same certificate, and messages per second
# over STARTTLS next to plaintext, all on loopback, all ending at smtp-sink.
# See bench/README.md ("TLS").
#
#   bash bench/tls.sh            # from the repository root, after `make moatd`
#
# Environment: MOATD (default ./moatd), TLS_SECONDS (length of one handshake
# run, default 3), TLS_CLIENTS (parallel handshake clients, default nproc),
# TLS_SESSIONS (concurrencies of the message runs, default "1 20"),
# BENCH_SCALE (message counts are multiplied by it; default 1), BENCH_REPEAT
# (runs per point, default 3), RESULTS_TLS (default bench/RESULTS-tls.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
MOATD=${MOATD:-$top/moatd}
SCALE=${BENCH_SCALE:-1}
REPEAT=${BENCH_REPEAT:-3}
SECS=${TLS_SECONDS:-3}
CLIENTS=${TLS_CLIENTS:-$(nproc)}
SESSIONS=${TLS_SESSIONS:-1 20}
RESULTS_TLS=${RESULTS_TLS:-$here/RESULTS-tls.md}

BENCH_NAME=bench-tls
. "$here/lib.sh"

case $SECS in ''|*[!0-9]*|0) die "TLS_SECONDS must be a whole number of seconds >= 1 (openssl s_time -time)" ;; esac
case $CLIENTS in ''|*[!0-9]*|0) die "TLS_CLIENTS must be a number >= 1" ;; esac
case $REPEAT in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a number >= 1" ;; esac

# ------------------------------------------------------------ prerequisites
bench_want_ssl_headers
bench_need "smtp-sink:postfix haproxy:haproxy python3:python3 prlimit:util-linux openssl:openssl cc:gcc"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bench_tmpdir moattls
bench_take_moatd

bench_build_source

NPROC=$(nproc)
R=$T/results
: >"$R"
info() { echo "info $*" >>"$R"; }
info "nproc=$NPROC kernel=$(uname -r) load_at_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
info "seconds=$SECS clients=$CLIENTS repeat=$REPEAT scale=$SCALE rev=$REV"
info "openssl=$(openssl version | awk '{print $2}' | tr ' ' _)"
info "haproxy=$(haproxy -v | head -1 | awk '{print $3}')"
info "haproxy_ssl=$(haproxy -vv 2>/dev/null | sed -n 's/^Running on OpenSSL version : OpenSSL \([^ ]*\).*/\1/p' | head -1)"
info "moatd_ssl=$(ldd "$MOATD" 2>/dev/null | awk '/libssl/ {print $1; exit}')"

# ------------------------------------------------------------ certificate
# One self-signed RSA-2048 certificate for both proxies; the temporary
# directory and the files are world-readable (a throw-away key) in case a
# daemon reads them after dropping privileges.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -keyout "$T/key.pem" -out "$T/cert.pem" -subj "/CN=mx.example.test" \
    -addext "subjectAltName=DNS:mx.example.test" >"$T/openssl.log" 2>&1 ||
	die "openssl req failed: $(cat "$T/openssl.log")"
cat "$T/cert.pem" "$T/key.pem" >"$T/combined.pem"
chmod 644 "$T/cert.pem" "$T/key.pem" "$T/combined.pem"

# ------------------------------------------------------------ servers
bench_start_sink

# moatd: one STARTTLS listener (also used for the plaintext runs: the
# client just does not say STARTTLS) and one implicit-TLS listener.
MOAT_PORT=$(free_port)
MOAT_TLS_PORT=$(free_port)
mkdir -m 1777 "$T/spool"      # moatd drops privileges after binding
cat >"$T/moat.conf" <<EOF
hostname = "moat.bench"
upstream = "127.0.0.1:$SINK_PORT"
spool_directory = "$T/spool"
threads = $NPROC
max_connections = 20000
max_connections_per_ip = 20000
tls_certificate "mx" {
  certificate = "$T/cert.pem"
  key = "$T/key.pem"
}
listen "127.0.0.1:$MOAT_PORT" { tls = "starttls" }
listen "127.0.0.1:$MOAT_TLS_PORT" { tls = "implicit" }
EOF
"$MOATD" -t -c "$T/moat.conf" >"$T/moatd-t.log" 2>&1 || die "moatd -t: $(cat "$T/moatd-t.log")"
bench_start_moatd "$T/moat.conf" "$MOAT_PORT" "$T/moatd.log"
MOAT_PID=$BENCH_PID
# (Not wait_port on the implicit-TLS port: a bare connect there is logged
# as a failed handshake.)
grep -q "event=listen address=127.0.0.1:$MOAT_TLS_PORT " "$T/moatd.log" ||
	die "moatd does not listen on $MOAT_TLS_PORT: $(cat "$T/moatd.log")"
info "moatd=$(grep -o 'version=[^ ]*' "$T/moatd.log" | head -1 | cut -d= -f2) moat_threads=$NPROC"

# HAProxy terminating TLS (same certificate and key) in front of smtp-sink.
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
frontend smtps_in
    bind 127.0.0.1:$HA_PORT ssl crt $T/combined.pem
    default_backend smtp_out
backend smtp_out
    server sink 127.0.0.1:$SINK_PORT
EOF
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
wait_port "$HA_PORT" || die "haproxy did not start: $(cat "$T/haproxy.log")"
info "haproxy_threads=$NPROC"

# What each side negotiates with OpenSSL's defaults (protocol, suite, group).
negotiated() {
	openssl s_client -connect 127.0.0.1:"$1" -servername mx.example.test -brief \
	    </dev/null 2>&1 | awk -F': ' '
		/^Protocol version/ {p=$2} /^Ciphersuite/ {c=$2}
		/^(Peer|Server) Temp Key/ {split($2, a, ","); k=a[1]}
		END {printf "%s/%s/%s", p, c, k}'
}
info "negotiated_moat=$(negotiated "$MOAT_TLS_PORT") negotiated_haproxy=$(negotiated "$HA_PORT")"

# Resumption sanity check with a stock client: s_client -reconnect makes one
# full handshake and five reconnections offering the session. (With TLS 1.3
# s_client does not wait for the session ticket, so it cannot resume there;
# TLS 1.3 resumption is checked with tls_source below.)
reconnect_check() {
	local out
	out=$(timeout 20 openssl s_client -connect 127.0.0.1:"$1" -servername mx.example.test \
	    -tls1_2 -reconnect "${@:2}" </dev/null 2>&1)
	echo "$(grep -c '^Reused,' <<<"$out")/$(grep -c -E '^(New|Reused),' <<<"$out")"
}
info "reconnect12_moat_starttls=$(reconnect_check "$MOAT_PORT" -starttls smtp)" \
    "reconnect12_moat_implicit=$(reconnect_check "$MOAT_TLS_PORT")" \
    "reconnect12_haproxy=$(reconnect_check "$HA_PORT")"
out=$("$SRC" -H -r -3 -s 1 -m 6 127.0.0.1:"$MOAT_TLS_PORT" 2>&1)
info "resume13_moat=$(sed -n 's/.* resumed=\([0-9]*\) .*/\1/p' <<<"$out")/6"
out=$("$SRC" -H -r -3 -s 1 -m 6 127.0.0.1:"$HA_PORT" 2>&1)
info "resume13_haproxy=$(sed -n 's/.* resumed=\([0-9]*\) .*/\1/p' <<<"$out")/6"

port_of() { case $1 in moat) echo "$MOAT_TLS_PORT" ;; haproxy) echo "$HA_PORT" ;; esac; }
pid_of() { case $1 in moat) echo "$MOAT_PID" ;; haproxy) echo "$HA_PID" ;; esac; }
log_count() { grep -c -- "$1" "$T/moatd.log"; }

# ------------------------------------------------------------ handshakes
# openssl s_time is one single-threaded client that runs for -time whole
# seconds (it checks time(2), so a run lasts between SECS and SECS+1 s):
# CLIENTS of them run in parallel, each timed on its own with date(1); the
# rate of a run is the sum over the clients of "N connections" (from s_time's
# "N connections in M real seconds" line) / that client's wall time.
stime_run() {	# target kind s_time-options...
	local target=$1 kind=$2 port i n r rc rate=0 conns=0 reused=0 fails=0 c0 c1
	shift 2
	port=$(port_of "$target")
	c0=$(cpu_ticks "$(pid_of "$target")")
	rm -f "$T"/st.*
	# Each client in a small sh wrapper that times it; the wrapper stops its
	# own s_time (by PID) when it is stopped.
	for i in $(seq "$CLIENTS"); do
		sh -c 'f=$1 a=$2 s=$3; shift 3
		       date +%s.%N >"$f.t0"
		       openssl s_time -connect "$a" -time "$s" "$@" >"$f" 2>&1 &
		       c=$!
		       trap "kill $c 2>/dev/null; exit 1" TERM INT
		       wait $c; echo $? >"$f.rc"
		       date +%s.%N >"$f.t1"' _ "$T/st.$i" 127.0.0.1:"$port" "$SECS" "$@" &
		WPIDS+=($!)
	done
	for i in "${WPIDS[@]}"; do wait "$i"; done
	WPIDS=()
	c1=$(cpu_ticks "$(pid_of "$target")")
	for i in $(seq "$CLIENTS"); do
		n=$(sed -n 's/^\([0-9][0-9]*\) connections in [0-9]* real seconds.*/\1/p' "$T/st.$i" | tail -1)
		rc=$(cat "$T/st.$i.rc" 2>/dev/null || echo X)
		if [ -z "$n" ] || [ "$rc" != 0 ]; then
			fails=$((fails + 1))
			echo "    s_time client $i rc=$rc: $(grep -v -E '^[*rt3]*$' "$T/st.$i" | tr -s '\n' ' ' | tail -c 300)"
			continue
		fi
		# s_time prints one character per connection on a line of its
		# own, 'r' when the session was resumed.
		r=$(grep -E '^[*rt3]+$' "$T/st.$i" | tr -cd 'r' | wc -c)
		conns=$((conns + n))
		reused=$((reused + r))
		rate=$(python3 -c "print($rate + $n / ($(cat "$T/st.$i.t1") - $(cat "$T/st.$i.t0")))")
	done
	echo "hs target=$target kind=$kind tool=s_time rep=$rep clients=$CLIENTS conns=$conns reused=$reused rate=$rate fails=$fails cpu_ticks=$((c1 - c0))" >>"$R"
	printf '  %-7s %-13s %6d conns %6d resumed %8.0f/s%s\n' "$target" "$kind" "$conns" "$reused" "$rate" \
	    "$([ $fails = 0 ] || echo "  ($fails clients failed)")"
}
# tls_source -H: CLIENTS threads, each making implicit-TLS connections and
# reading the 220 greeting (which also brings TLS 1.3 session tickets),
# for SECS seconds; -r offers each thread's previous session.
src_run() {	# target kind tls_source-options...
	local target=$1 kind=$2 port out t0 t1 rc n r f c0 c1 rate
	shift 2
	port=$(port_of "$target")
	c0=$(cpu_ticks "$(pid_of "$target")")
	t0=$(now)
	out=$(timeout $((SECS + 60)) "$SRC" -H -s "$CLIENTS" -d "$SECS" "$@" 127.0.0.1:"$port" 2>"$T/src.err")
	rc=$?
	t1=$(now)
	c1=$(cpu_ticks "$(pid_of "$target")")
	n=$(sed -n 's/.*accepted=\([0-9]*\).*/\1/p' <<<"$out")
	r=$(sed -n 's/.*resumed=\([0-9]*\).*/\1/p' <<<"$out")
	f=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$out")
	rate=$(python3 -c "print(${n:-0} / ($t1 - $t0))")
	echo "hs target=$target kind=$kind tool=tls_source rep=$rep clients=$CLIENTS conns=${n:-0} reused=${r:-0} rate=$rate fails=${f:-?} rc=$rc cpu_ticks=$((c1 - c0))" >>"$R"
	printf '  %-7s %-13s %6d conns %6d resumed %8.0f/s%s\n' "$target" "$kind" "${n:-0}" "${r:-0}" "$rate" \
	    "$([ "$rc" = 0 ] || echo "  rc=$rc failed=${f:-?}: $(head -c 300 "$T/src.err" | tr '\n' ' ')")"
}

echo "bench-tls: handshakes, $CLIENTS parallel clients, ${SECS}s per run, $REPEAT runs each"
y0=$(log_count 'resumed=yes')
e0=$(log_count 'event=tls-error')
for rep in $(seq "$REPEAT"); do
	# Alternate which target goes first, so that a drift in background
	# load does not favour one of them.
	if [ $((rep % 2)) = 1 ]; then order="moat haproxy"; else order="haproxy moat"; fi
	for target in $order; do stime_run "$target" tls13-full -new; done
	for target in $order; do stime_run "$target" tls12-full -new -tls1_2; done
	for target in $order; do stime_run "$target" tls12-resumed -reuse -tls1_2; done
	for target in $order; do src_run "$target" tls13-full-greet -3; done
	for target in $order; do src_run "$target" tls13-resumed-greet -3 -r; done
done
e1=$(log_count 'event=tls-error')
info "moat_log_resumed_yes_handshakes=$(( $(log_count 'resumed=yes') - y0 ))" \
    "moat_log_tls_errors_setup=$e0 moat_log_tls_errors_handshakes=$((e1 - e0))"

# ------------------------------------------------------------ messages
# tls_source sends one message per connection (like smtp-source -s S -m M
# -l SIZE), in every mode:
#   direct    plaintext straight to smtp-sink
#   plain     plaintext through moatd (its STARTTLS listener, no STARTTLS)
#   starttls  STARTTLS through moatd, a full handshake per message
#   resumed   STARTTLS through moatd, each connection resuming its thread's
#             previous session
#   implicit  implicit TLS through moatd (full handshakes)
#   haproxy   implicit TLS through HAProxy (full handshakes), the same
#             transaction as "implicit" with HAProxy terminating TLS
# moatd's accepted transactions logged since byte offset $1 of its log.
log_size() { stat -c %s "$T/moatd.log"; }
accepted_since() { tail -c +$(($1 + 1)) "$T/moatd.log" | grep -c 'event=tx .*verdict=accepted'; }
# size:messages at concurrency 1:messages at higher concurrency (before
# BENCH_SCALE; never fewer than the concurrency)
POINTS="1024:400:1000 102400:200:400"
echo "bench-tls: messages (tls_source -> target -> smtp-sink), $REPEAT runs per point"
for point in $POINTS; do
	IFS=: read -r size m1 mn <<<"$point"
	for sess in $SESSIONS; do
		base=$mn
		[ "$sess" = 1 ] && base=$m1
		msgs=$(python3 -c "print(max(int($base * $SCALE), $sess))")
		for rep in $(seq "$REPEAT"); do
		for target in direct plain starttls resumed implicit haproxy; do
			case $target in
			direct) port=$SINK_PORT opts="-P" ;;
			plain) port=$MOAT_PORT opts="-P" ;;
			starttls) port=$MOAT_PORT opts="" ;;
			resumed) port=$MOAT_PORT opts="-r" ;;
			implicit) port=$MOAT_TLS_PORT opts="-I" ;;
			haproxy) port=$HA_PORT opts="-I" ;;
			esac
			o0=$(log_size)
			t0=$(now)
			out=$(timeout 300 "$SRC" $opts -s "$sess" -m "$msgs" -l "$size" \
			    127.0.0.1:"$port" 2>"$T/src.err")
			rc=$?
			t1=$(now)
			secs=$(python3 -c "print('%.3f' % ($t1 - $t0))")
			tx=NA
			case $target in plain|starttls|resumed|implicit) tx=$(accepted_since "$o0") ;; esac
			kv=$(tr ' ' '\n' <<<"$out" | grep -E '^(accepted|failed|errors|tls|resumed)=' | tr '\n' ' ')
			echo "msg target=$target size=$size sessions=$sess rep=$rep msgs=$msgs secs=$secs rc=$rc moat_accepted=$tx $kv" >>"$R"
			printf '  %-8s %6s B x %3s sessions: %5s msgs in %6ss rc=%s %s\n' \
			    "$target" "$size" "$sess" "$msgs" "$secs" "$rc" "$out"
			[ $rc = 0 ] || echo "    tls_source: $(head -c 400 "$T/src.err" | tr '\n' ' ')"
		done
		done
	done
done

# ------------------------------------------------------------ health
if kill -0 "$MOAT_PID" 2>/dev/null; then alive=yes; else alive=no; fi
info "moat_alive=$alive moat_log_tls_errors=$(log_count 'event=tls-error')" \
    "moat_log_tls_errors_messages=$(( $(log_count 'event=tls-error') - e1 ))" \
    "moat_log_tls_timeouts=$(log_count 'event=tls-timeout')" \
    "moat_log_warnings=$(grep -c -E ' (warning|error|crit|alert|emerg):' "$T/moatd.log")"
{
	grep -E ' (warning|error|crit|alert|emerg):' "$T/moatd.log" | grep -v 'upstream-probe-failed' | head -5
	grep -E 'event=tls-(error|timeout)' "$T/moatd.log" | head -5
} >"$T/moat-warnings.txt"
grep -E '\[(ALERT|WARNING)\]' "$T/haproxy.log" | head -5 >"$T/haproxy-warnings.txt"

# ------------------------------------------------------------ report
python3 "$here/tls_report.py" "$R" "$RESULTS_TLS" "$T/moat-warnings.txt" "$T/haproxy-warnings.txt"
