#!/usr/bin/env bash
# moat sender-authentication benchmark: messages per second and added
# latency with the spf, dkim and dmarc filters on, against the same moatd
# with no filters (the proxy core), all DNS answered by a local dnsmasq on
# loopback. See bench/README.md ("Sender authentication").
#
#   bash bench/auth.sh           # from the repository root, after `make moatd`
#
# Every message is DKIM-signed (RSA-2048, relaxed/relaxed, by dkimpy) by its
# own domain, with that domain's SPF and DMARC (p=reject) records, so each
# message passes SPF, DKIM and DMARC. With AUTH_DOMAINS domains and as many
# messages, the first pass through a fresh moatd finds nothing cached (cold:
# every message costs its SPF, key and policy lookups) and the second finds
# everything cached (warm).
#
# All domains sign with the same key, so after its first use the key is
# one the dkim filter has parsed before (key_cache); AUTH_DKIM='key_cache
# = "0"' measures the other extreme, every key decoded anew.
#
# Environment: MOATD (default ./moatd), AUTH_DOMAINS (default 2000),
# AUTH_SESSIONS (concurrency, default 20), LATENCY_RUNS (default 300),
# BENCH_REPEAT (default 3), RESULTS_AUTH (default bench/RESULTS-auth.md),
# AUTH_DKIM (options of the dkim filter section, default none).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
MOATD=${MOATD:-$top/moatd}
NDOM=${AUTH_DOMAINS:-2000}
CONC=${AUTH_SESSIONS:-20}
LRUNS=${LATENCY_RUNS:-300}
REPEAT=${BENCH_REPEAT:-3}
RESULTS_AUTH=${RESULTS_AUTH:-$here/RESULTS-auth.md}
SYSPY=/usr/bin/python3 # Debian's python, with python3-dkim

BENCH_NAME=bench-auth
. "$here/lib.sh"

bench_want_ssl_headers
$SYSPY -c 'import dkim' 2>/dev/null || BENCH_EXTRA_PKGS="${BENCH_EXTRA_PKGS:-} python3-dkim"
bench_need "smtp-sink:postfix dnsmasq:dnsmasq-base openssl:openssl cc:gcc prlimit:util-linux"
$SYSPY -c 'import dkim' 2>/dev/null || die "python3-dkim missing"

bench_tmpdir moatauth
bench_take_moatd
bench_build_source

R=$T/results
: >"$R"
info() { echo "info $*" >>"$R"; }
info "nproc=$(nproc) kernel=$(uname -r) load_at_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
info "domains=$NDOM sessions=$CONC latency_runs=$LRUNS repeat=$REPEAT rev=$REV"
info "dkim_options=$(printf '%s' "${AUTH_DKIM:-}" | tr -d ' ')"

# ------------------------------------------------------------ zone, messages
openssl genrsa -out "$T/dkim.key" 2048 2>/dev/null || die "openssl genrsa"
mkdir "$T/msgs"
$SYSPY - "$T" "$NDOM" <<'PY' || die "generating the zone and messages"
import base64, subprocess, sys, dkim
t, n = sys.argv[1], int(sys.argv[2])
key = open(t + "/dkim.key", "rb").read()
der = subprocess.run(["openssl", "rsa", "-in", t + "/dkim.key", "-pubout", "-outform", "DER"],
                     capture_output=True, check=True).stdout
pub = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

def txt(name, value):
    parts = [value[i:i + 250] for i in range(0, len(value), 250)]
    return "txt-record=%s,%s\n" % (name, ",".join('"%s"' % p for p in parts))

body = "".join("line %03d of the benchmark message, some text to hash %s\r\n" % (i, "x" * 10)
               for i in range(14))  # about 1 KB
with open(t + "/zone.conf", "w") as z:
    # Authoritative for bench., with an SOA, as a real zone's server is:
    # its negative answers (the HELO name has no SPF record) carry the
    # SOA that lets a cache keep them (RFC 2308 section 5).
    z.write("auth-zone=bench\nauth-server=ns.bench,127.0.0.1\nauth-ttl=3600\n"
            "auth-soa=2026112401,hostmaster.bench,1200,120,604800\n")
    for i in range(n):
        d = "d%05d.bench" % i
        z.write(txt(d, "v=spf1 ip4:127.0.0.0/8 -all"))
        z.write(txt("sel._domainkey." + d, pub))
        z.write(txt("_dmarc." + d, "v=DMARC1; p=reject"))
        msg = ("From: Sender <news@%s>\r\nTo: <sink@example.test>\r\n"
               "Subject: benchmark %d\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
               "Message-ID: <%d@%s>\r\n\r\n%s" % (d, i, i, d, body)).encode()
        sig = dkim.sign(msg, b"sel", d.encode(), key,
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        with open("%s/msgs/bounce@%s.eml" % (t, d), "wb") as f:
            f.write(sig + msg)
PY

DNS_PORT=$(free_port)
dnsmasq --keep-in-foreground --port="$DNS_PORT" --listen-address=127.0.0.1 \
    --bind-interfaces --no-resolv --no-hosts --conf-file="$T/zone.conf" \
    --pid-file="$T/dnsmasq.pid" -u nobody >"$T/dnsmasq.log" 2>&1 &
PIDS+=($!)
sleep 0.5
kill -0 "${PIDS[-1]}" 2>/dev/null || die "dnsmasq did not start: $(cat "$T/dnsmasq.log")"

bench_start_sink

mkdir -m 1777 "$T/spool"
base_conf() { # port
	cat <<EOF
hostname = "moat.bench"
upstream = "127.0.0.1:$SINK_PORT"
spool_directory = "$T/spool"
threads = $(nproc)
dns_forwarders = { "127.0.0.1@$DNS_PORT" }
listen "127.0.0.1:$1" {}
EOF
}
CORE_PORT=$(free_port)
base_conf "$CORE_PORT" >"$T/core.conf"
bench_start_moatd "$T/core.conf" "$CORE_PORT" "$T/core.log"
CORE_PID=$BENCH_PID

AUTH_PORT=$(free_port)
{ base_conf "$AUTH_PORT"
  echo 'filter "spf"   { check_loopback = yes }'
  echo "filter \"dkim\"  { ${AUTH_DKIM:-} }"
  echo 'filter "dmarc" { check_loopback = yes }'; } >"$T/auth.conf"

# run NAME PORT SESSIONS MESSAGES [-L]: one tls_source run, its line kept.
run() {
	local name=$1 port=$2 s=$3 m=$4 out
	shift 4
	out=$("$SRC" -P -M "$T/msgs" -s "$s" -m "$m" "$@" -e client.bench \
	    -t sink@example.test "127.0.0.1:$port" 2>"$T/src.err")
	echo "run $name $out" >>"$R"
	case $out in *failed=0*) ;; *) die "$name: $out $(head -3 "$T/src.err")" ;; esac
}

for r in $(seq "$REPEAT"); do
	run core "$CORE_PORT" "$CONC" "$NDOM"
	bench_start_moatd "$T/auth.conf" "$AUTH_PORT" "$T/auth-$r.log"
	run auth_cold "$AUTH_PORT" "$CONC" "$NDOM"
	run auth_warm "$AUTH_PORT" "$CONC" "$NDOM"
	if [ "$r" = 1 ]; then
		run lat_core "$CORE_PORT" 1 "$LRUNS" -L
		run lat_auth "$AUTH_PORT" 1 "$LRUNS" -L
		pass=$(grep -c 'DMARC_PASS' "$T/auth-$r.log")
		info "dmarc_pass=$pass of $((2 * NDOM + LRUNS))"
		grep -m1 'event=tx' "$T/auth-$r.log" | sed 's/^/sample /' >>"$R"
	fi
	kill "$BENCH_PID"
	wait "$BENCH_PID" 2>/dev/null
done

# ------------------------------------------------------------ report
python3 - "$R" "$RESULTS_AUTH" "$here" <<'PY'
import statistics, sys
res, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
from report import read_runs  # bench/report.py
info, runs, sample = read_runs(res)
med = lambda name: statistics.median(float(k["rate"]) for k in runs[name])
core, cold, warm = med("core"), med("auth_cold"), med("auth_warm")
lc, la = runs["lat_core"][0], runs["lat_auth"][0]
p50 = float(la["p50_ms"]) - float(lc["p50_ms"])
p99 = float(la["p99_ms"]) - float(lc["p99_ms"])
ok = lambda c: "met" if c else "**not met**"
with open(out, "w") as f:
    f.write("# Sender authentication benchmark (bench/auth.sh)\n\n")
    f.write("moatd with `filter \"spf\"`, `filter \"dkim\"` and `filter \"dmarc\"` against "
            "the same moatd without filters (the proxy core), both ending at smtp-sink, "
            "all DNS from dnsmasq on loopback. %s DKIM-signed 1 KB messages (RSA-2048), "
            "each from its own domain with SPF and DMARC p=reject records, so every message "
            "passes all three; cold = a fresh moatd, every message's lookups unanswered by "
            "the cache; warm = the same messages again. %s concurrent sessions, one message "
            "per connection; medians of %s runs.\n\n"
            % (info.get("domains"), info.get("sessions"), info.get("repeat")))
    f.write("Machine: %s cores, kernel %s, load at start %s; moat %s.\n\n"
            % (info.get("nproc"), info.get("kernel"), info.get("load_at_start"), info.get("rev")))
    if info.get("dkim_options"):
        f.write("dkim filter options: `%s`.\n\n" % info.get("dkim_options"))
    f.write("| path | msgs/s | vs core |\n|---|---|---|\n")
    f.write("| core (no filters) | %.0f | 1.00 |\n" % core)
    f.write("| spf+dkim+dmarc, cache cold | %.0f | %.2f |\n" % (cold, cold / core))
    f.write("| spf+dkim+dmarc, cache warm | %.0f | %.2f |\n\n" % (warm, warm / core))
    f.write("Latency of a whole transaction at concurrency 1 (%s runs):\n\n" % info.get("latency_runs"))
    f.write("| | median ms | p99 ms |\n|---|---|---|\n")
    f.write("| core | %s | %s |\n| spf+dkim+dmarc (warm) | %s | %s |\n"
            % (lc["p50_ms"], lc["p99_ms"], la["p50_ms"], la["p99_ms"]))
    f.write("| added | %.3f | %.3f |\n\n" % (p50, p99))
    f.write("DMARC passes counted in the log: %s.\n\n" % info.get("dmarc_pass"))
    f.write("Target (issue 5): warm throughput at least 0.80 of the core's: %s (%.2f).\n\n"
            % (ok(warm / core >= 0.8), warm / core))
    f.write("A sample transaction line:\n\n```\n%s\n```\n" % sample)
print(open(out).read())
PY
