#!/usr/bin/env bash
# moat antivirus benchmark: messages per second through moatd with the
# antivirus filter (moat-scand, libclamav) against ClamSMTP with clamd on
# the same signature database, in the same run; both ending at smtp-sink.
# See bench/README.md ("Antivirus").
#
#   bash bench/av.sh             # from the repository root, after `make`
#
# Messages: AV_MESSAGES distinct messages of about 100 KB, each a short text
# and a zip attachment (a text file and an incompressible blob), all clean,
# so every message is scanned to the end, archive included. Distinct, and
# a new set for every measured run, so neither ClamAV's clean-file cache
# nor anything else answers from memory.
# The database is the test one (no official database offline): a few ndb
# patterns and MD5 signatures, as tests/integration/test_antivirus.py.
#
# Reported: messages per second (median of BENCH_REPEAT runs) for both, the
# ratio, libclamav's own rate with no SMTP (clamscan, one process per
# core: the ceiling of any libclamav scanner), the CPU both cores spent
# (busy share of the run), and the memory of moat-scand and of clamd after
# the runs.
#
# Environment: MOATD (default ./moatd), MOAT_SCAND (default ./moat-scand),
# AV_MESSAGES (default 600), AV_SESSIONS (default 20), BENCH_REPEAT
# (default 3), RESULTS_AV (default bench/RESULTS-av.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
MOATD=${MOATD:-$top/moatd}
SCAND=${MOAT_SCAND:-$(dirname "$MOATD")/moat-scand}
NMSG=${AV_MESSAGES:-600}
CONC=${AV_SESSIONS:-20}
REPEAT=${BENCH_REPEAT:-3}
RESULTS_AV=${RESULTS_AV:-$here/RESULTS-av.md}

BENCH_NAME=bench-av
. "$here/lib.sh"

bench_want_ssl_headers
[ -f /usr/share/clamav-testfiles/clam.exe ] ||
	BENCH_EXTRA_PKGS="${BENCH_EXTRA_PKGS:-} clamav-testfiles"
bench_need "smtp-sink:postfix clamd:clamav-daemon clamscan:clamav clamsmtpd:clamsmtp sigtool:clamav cc:gcc prlimit:util-linux"
[ -x "$SCAND" ] || die "$SCAND not built (make)"

bench_tmpdir moatav
bench_take_moatd
cp "$SCAND" "$T/moat-scand" || die "cannot copy $SCAND"
SCAND=$T/moat-scand
bench_build_source
chmod 755 "$T"

R=$T/results
: >"$R"
info() { echo "info $*" >>"$R"; }
info "nproc=$(nproc) kernel=$(uname -r) load_at_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
info "messages=$NMSG sessions=$CONC repeat=$REPEAT rev=$REV"

# ------------------------------------------------------------ database, mail
mkdir -m 755 "$T/db"
# gen_msgs K: message set K in $T/msgs.K (set 0 also writes the database).
# Every measured run gets a set of its own: libclamav caches clean objects
# by hash (so does clamd), and a set scanned twice would measure the cache.
NSET=0
gen_msgs() {
	mkdir -m 755 "$T/msgs.$1" &&
	python3 - "$T" "$NMSG" "$1" <<'PY'
import base64, io, random, subprocess, sys, zipfile
t, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
eicar = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
if k == 0:
  with open(t + "/db/bench.ndb", "w") as f:
    f.write("Bench.Marker:0:*:%s\n" % b"MOAT-AV-BENCH-MARKER".hex())
    f.write("Bench.EICAR:0:*:%s\n" % eicar.encode().hex())
  out = subprocess.run(["sigtool", "--md5", "/usr/share/clamav-testfiles/clam.exe"],
                       capture_output=True, check=True).stdout.decode().strip()
  md5, size, _ = out.split(":", 2)
  with open(t + "/db/bench.hdb", "w") as f:
    f.write("%s:%s:Bench.ClamExe\n" % (md5, size))
rnd = random.Random(1 + k)
words = ("moat mail gateway scan clean report quarterly figures attached please "
         "find the document below regards team meeting notes").split()
for i in range(n):
    text = " ".join(rnd.choice(words) for _ in range(4500)).encode()
    blob = rnd.randbytes(66000)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes-%d.txt" % i, text)
        zf.writestr("data-%d.bin" % i, blob)
    b64 = base64.b64encode(z.getvalue()).decode()
    lines = "\r\n".join(b64[j:j + 76] for j in range(0, len(b64), 76))
    body = " ".join(rnd.choice(words) for _ in range(300))
    msg = ("From: <s%d@bench.test>\r\nTo: <sink@example.test>\r\n"
           "Subject: report %d\r\nMessage-ID: <av%d@bench.test>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n"
           "--b%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n"
           "--b%d\r\nContent-Type: application/zip\r\n"
           "Content-Disposition: attachment; filename=\"report-%d.zip\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b%d--\r\n"
           % (i, i, i, i, i, body, i, i, lines, i))
    with open("%s/msgs.%d/s%05d@bench.test.eml" % (t, k, i), "w") as f:
        f.write(msg)
PY
}
new_set() {
	[ "$NSET" -gt 0 ] && rm -rf "$T/msgs.$NSET"
	NSET=$((NSET + 1))
	gen_msgs "$NSET" || die "generating message set $NSET"
	# Written back before the run, not during it.
	sync
}
gen_msgs 0 || die "generating the database and messages"
info "message_bytes=$(( $(du -sb "$T/msgs.0" | cut -f1) / NMSG ))"

bench_start_sink

# ------------------------------------------------------------ moatd
mkdir -m 1777 "$T/spool" "$T/scantmp"
MOAT_PORT=$(free_port)
cat >"$T/moat.conf" <<EOF
hostname = "moat.bench"
upstream = "127.0.0.1:$SINK_PORT"
spool_directory = "$T/spool"
threads = $(nproc)
listen "127.0.0.1:$MOAT_PORT" {}
filter "antivirus" { scanner = "$SCAND" database = "$T/db" tmpdir = "$T/scantmp" }
EOF

# ------------------------------------------------------------ clamd, ClamSMTP
mkdir -m 1777 "$T/clamsmtp"
cat >"$T/clamd.conf" <<EOF
LocalSocket $T/clamd.sock
DatabaseDirectory $T/db
Foreground yes
LogFile $T/clamd.log
TemporaryDirectory $T/clamsmtp
AlertExceedsMax yes
EOF
clamd -c "$T/clamd.conf" >/dev/null 2>&1 &
CLAMD_PID=$!
PIDS+=("$CLAMD_PID")
for _ in $(seq 300); do [ -S "$T/clamd.sock" ] && break; sleep 0.1; done
[ -S "$T/clamd.sock" ] || die "clamd did not start: $(tail -3 "$T/clamd.log")"
CS_PORT=$(free_port)
cat >"$T/clamsmtpd.conf" <<EOF
OutAddress: 127.0.0.1:$SINK_PORT
Listen: 127.0.0.1:$CS_PORT
ClamAddress: $T/clamd.sock
TempDirectory: $T/clamsmtp
MaxConnections: 256
User: nobody
EOF
clamsmtpd -d 0 -f "$T/clamsmtpd.conf" >"$T/clamsmtpd.log" 2>&1 &
CS_PID=$!
PIDS+=("$CS_PID")
wait_port "$CS_PORT" || die "clamsmtpd did not start: $(cat "$T/clamsmtpd.log")"

# run NAME PORT PIDS...: one tls_source run; CPU ticks of the given
# processes and of the whole machine around it.
total_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }
run() {
	local name=$1 port=$2 conc=${3:-$CONC} out t0 b0 t1 b1
	new_set
	t0=$(total_ticks) b0=$(busy_ticks)
	out=$("$SRC" -P -M "$T/msgs.$NSET" -s "$conc" -m "$NMSG" -e client.bench \
	    -t sink@example.test "127.0.0.1:$port" 2>"$T/src.err")
	t1=$(total_ticks) b1=$(busy_ticks)
	echo "run $name $out busy=$(( (b1 - b0) * 1000 / (t1 - t0 + 1) ))" >>"$R"
	# moat must take every message; the reference's failures are reported.
	case $name/$out in moat/*failed=0* | clamsmtp*) ;;
	*) die "$name: $out $(head -3 "$T/src.err")" ;; esac
}

bench_start_moatd "$T/moat.conf" "$MOAT_PORT" "$T/moat.log"
MOAT_PID=$BENCH_PID
# The first engine loads in the background: wait for a scan to pass.
for _ in $(seq 100); do
	"$SRC" -P -M "$T/msgs.0" -s 1 -m 1 -e client.bench -t sink@example.test \
	    "127.0.0.1:$MOAT_PORT" >/dev/null 2>&1 && break
	sleep 0.2
done
SCAND_PID=$(grep -o 'event=scanner-start pid=[0-9]*' "$T/moat.log" | tail -1 | cut -d= -f3)
[ -n "$SCAND_PID" ] || die "moat-scand did not start: $(tail -5 "$T/moat.log")"
# clamd's first scans pay its own warm-up too.
"$SRC" -P -M "$T/msgs.0" -s 1 -m 1 -e client.bench -t sink@example.test \
    "127.0.0.1:$CS_PORT" >/dev/null 2>&1

for r in $(seq "$REPEAT"); do
	run moat "$MOAT_PORT"
	run clamsmtp "$CS_PORT"
	# ClamSMTP stalls with many sessions (see the results): its best
	# concurrency is the reference too.
	run clamsmtp_c4 "$CS_PORT" 4
	tail -2 "$R" >&2
done
# libclamav alone, no SMTP, no proxy: clamscan on the same database and
# messages, one process per core over its share, temporary files in the
# same kind of directory. No scanner built on libclamav goes faster; it
# bounds what the ratio to ClamSMTP can be.
clamscan_run() {
	local n t0 b0 t1 b1 w0 w1 pids=() i
	n=$(nproc)
	for r in $(seq "$REPEAT"); do
		new_set
		rm -f "$T"/share.*
		ls "$T/msgs.$NSET"/* >"$T/all.txt"
		split -n "l/$n" "$T/all.txt" "$T/share."
		t0=$(total_ticks) b0=$(busy_ticks) w0=$(date +%s%N)
		pids=()
		for i in "$T"/share.*; do
			clamscan --no-summary --quiet -d "$T/db" \
			    --tempdir="$T/clamsmtp" -f "$i" &
			pids+=($!)
		done
		for i in "${pids[@]}"; do wait "$i"; done
		w1=$(date +%s%N) t1=$(total_ticks) b1=$(busy_ticks)
		echo "run clamscan rate=$(( NMSG * 1000000000 / (w1 - w0) )) busy=$(( (b1 - b0) * 1000 / (t1 - t0 + 1) )) failed=0" >>"$R"
	done
}
clamscan_run
info "scand_rss_kb=$(rss_kb "$SCAND_PID") moatd_rss_kb=$(rss_kb "$MOAT_PID") clamd_rss_kb=$(rss_kb "$CLAMD_PID")"
info "scanned=$(grep -c 'event=tx.*antivirus:' "$T/moat.log") virus=$(grep -c 'VIRUS(' "$T/moat.log")"

# ------------------------------------------------------------ report
python3 - "$R" "$RESULTS_AV" "$here" <<'PY'
import statistics, sys
res, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
from report import read_runs  # bench/report.py
info, runs, _ = read_runs(res)
med = lambda name, k: statistics.median(float(r[k]) for r in runs[name])
moat = med("moat", "rate")
cs20, cs4 = med("clamsmtp", "rate"), med("clamsmtp_c4", "rate")
ref = "clamsmtp" if cs20 >= cs4 else "clamsmtp_c4"
cs = max(cs20, cs4)
mb, cb = med("moat", "busy") / 10, med(ref, "busy") / 10
ratio = moat / cs if cs else 0
ok = lambda c: "met" if c else "**not met**"
with open(out, "w") as f:
    f.write("# Antivirus benchmark (bench/av.sh)\n\n")
    f.write("%s distinct clean messages of about %s bytes, each with a zip attachment "
            "(a text file and an incompressible blob), %s concurrent sessions, one message "
            "per connection, through moatd with `filter \"antivirus\"` (moat-scand, "
            "libclamav) and through ClamSMTP with clamd, both on the same test signature "
            "database and ending at the same smtp-sink; medians of %s runs.\n\n"
            % (info.get("messages"), info.get("message_bytes"), info.get("sessions"),
               info.get("repeat")))
    f.write("Machine: %s cores, kernel %s, load at start %s; moat %s.\n\n"
            % (info.get("nproc"), info.get("kernel"), info.get("load_at_start"), info.get("rev")))
    fails = lambda name: sum(int(r["failed"]) for r in runs[name])
    f.write("| path | msgs/s | CPU busy (all cores) | failed |\n|---|---|---|---|\n")
    f.write("| moatd + moat-scand | %.0f | %.0f%% | %d |\n" % (moat, mb, fails("moat")))
    f.write("| ClamSMTP + clamd, %s sessions | %.0f | %.0f%% | %d |\n"
            % (info.get("sessions"), cs20, med("clamsmtp", "busy") / 10, fails("clamsmtp")))
    f.write("| ClamSMTP + clamd, 4 sessions | %.0f | %.0f%% | %d |\n"
            % (cs4, med("clamsmtp_c4", "busy") / 10, fails("clamsmtp_c4")))
    lib = med("clamscan", "rate")
    f.write("| libclamav alone: clamscan, one process per core, no SMTP | %.0f | %.0f%% | 0 |\n\n"
            % (lib, med("clamscan", "busy") / 10))
    f.write("The reference is ClamSMTP at its better concurrency (%.0f msgs/s).\n\n" % cs)
    f.write("libclamav alone scans %.0f msgs/s here, %.1f× ClamSMTP: no scanner built on "
            "libclamav can exceed that ratio on this machine, whatever surrounds the scan. "
            "10× ClamSMTP would be %.0f msgs/s, %.1f× what libclamav itself does with no "
            "SMTP at all.\n\n" % (lib, lib / cs if cs else 0, 10 * cs, 10 * cs / lib if lib else 0))
    f.write("moat / ClamSMTP: **%.1f×**.\n\n" % ratio)
    f.write("Memory after the runs (VmRSS): moat-scand %s KB, moatd %s KB, clamd %s KB "
            "(test database: a few signatures; the official one adds about 1.2 GB to "
            "either scanner).\n\n"
            % (info.get("scand_rss_kb"), info.get("moatd_rss_kb"), info.get("clamd_rss_kb")))
    f.write("Targets (issue 6): at least 10× ClamSMTP's throughput: %s (%.1f×); both cores "
            "busy: %s (%.0f%%).\n" % (ok(ratio >= 10), ratio, ok(mb >= 90), mb))
print(open(out).read())
PY
