#!/usr/bin/env bash
# Build every libFuzzer target (tests/fuzz/fuzz_*.c) with clang and run each
# for a bounded time on a scratch copy of its seed corpus. A crash is kept
# in tests/fuzz/out/ to become a unit test. Last line: "N passed, N failed".
#
#   bash tests/fuzz/run.sh [seconds-per-target]
set -u
secs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/fuzz/out"
mkdir -p "$out"
srcs="$top/proxy/smtp_parse.c $top/proxy/dataframe.c $top/proxy/headers.c
  $top/proxy/reply.c $top/proxy/proxyproto.c $top/proxy/escape.c
  $top/proxy/hdredit.c $top/proxy/sasl.c $top/proxy/dnsrr.c $top/policies/lists.c $top/proxy/siphash.c
  $top/proxy/util.c
  $top/proxy/log.c $top/filters/spf/spf_eval.c $top/filters/dmarc/dmarc_eval.c $top/proxy/from_field.c
  $top/filters/av/scanproto.c $top/tools/mbox.c $top/filters/spam/bayes_tok.c
  $top/filters/msgview.c $top/filters/msgview_arena.c $top/filters/msgview_text.c
  $top/filters/msgview_html.c $top/filters/msgview_uri.c
  $top/filters/spam/sa_conf.c $top/filters/spam/sa_regex.c
  $top/filters/spam/sa_meta.c $top/filters/spam/sa_net.c
  $top/filters/spam/sa_eval.c $top/filters/spam/sa_freemail.c
  $top/filters/spam/sa_date.c
  $top/filters/spam/sa_html.c $top/filters/spam/sa_engine.c
  $top/filters/spam/sa_eval_relay.c $top/filters/spam/sa_received.c
  $top/proxy/addr.c
  $top/filters/spam/sa_prefilter.c"
passed=0
failed=0
for f in "$top"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$f" .c)
	corpus_name=${name#fuzz_}
	bin="$out/$name"
	if ! clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -D_GNU_SOURCE -D_DEFAULT_SOURCE \
	    -I"$top/proxy" -I"$top/policies" -I"$top/filters/spf" \
	    -I"$top/filters/dmarc" -I"$top/filters/av" -I"$top/filters" \
	    -I"$top/filters/spam" -I"$top/tools" $(pkg-config --cflags libidn2 libpsl gmime-3.0 libxml-2.0 libpcre2-8) \
	    "$f" $srcs -levent_core -lopendmarc -lpcre2-8 \
	    $(pkg-config --libs libidn2 libpsl gmime-3.0 libxml-2.0) \
	    -o "$bin" 2>"$out/$name.build.log"; then
		echo "not ok - $name: build failed"
		cat "$out/$name.build.log" | head -20
		failed=$((failed + 1))
		continue
	fi
	work=$(mktemp -d)
	for d in "$top/tests/fuzz/corpus/$corpus_name" \
	    "$top/tests/fuzz/corpus/${corpus_name%%_*}"; do
		[ -d "$d" ] && cp -r "$d"/. "$work"/ 2>/dev/null
	done
	if (cd "$out" && "$bin" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=0 "$work" \
	    >"$out/$name.log" 2>&1); then
		echo "ok - $name: $(grep -o 'Done [0-9]* runs' "$out/$name.log" | tail -1)"
		passed=$((passed + 1))
	else
		echo "not ok - $name: see tests/fuzz/out/$name.log"
		tail -30 "$out/$name.log"
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
echo "$passed passed, $failed failed"
