/*
 * fuzz_spf.c - libFuzzer target for filters/spf/spf_eval.c.
 *
 * The input is one SPF record. spf_record_check() judges its syntax, read
 * straight from the fuzzer's buffer (not NUL-terminated, so a read past
 * the length is caught); then a whole evaluation runs with every TXT
 * question answered by the input itself (so include: and redirect=
 * recurse into the same record, bounded by the evaluator's limits), A by
 * 192.0.2.1, AAAA by 2001:db8::1, MX by the host mx.example and PTR by
 * ptr.example. The last input byte picks the client: 192.0.2.1 or
 * 2001:db8::1. The evaluation must finish within 500 rounds of
 * run/answer with a known verdict; a record the syntax check rejects must
 * give permerror, and only a text that is not an SPF record at all may
 * give none. A broken invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Iproxy -Ifilters/spf tests/fuzz/fuzz_spf.c filters/spf/spf_eval.c \
 *	    proxy/dnsrr.c proxy/util.c proxy/log.c -levent_core -o fuzz_spf
 *	./fuzz_spf tests/fuzz/corpus/spf
 *
 * Single-threaded; no state survives between inputs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_eval.h"
#include "fuzz.h"

#define MAX_ROUNDS 500

/* Answer one missed question from the fixed zone. */
static void
answer(
    struct spf_eval *e, const struct spf_question *q, char *txt, size_t txtlen)
{
	struct spf_rr rr;

	switch (q->type) {
	case DNS_T_TXT:
		rr.text = txt;
		rr.len = txtlen;
		break;
	case DNS_T_A:
		rr.text = "192.0.2.1";
		rr.len = strlen(rr.text);
		break;
	case DNS_T_AAAA:
		rr.text = "2001:db8::1";
		rr.len = strlen(rr.text);
		break;
	case DNS_T_MX:
		rr.text = "mx.example";
		rr.len = strlen(rr.text);
		break;
	case DNS_T_PTR:
		rr.text = "ptr.example";
		rr.len = strlen(rr.text);
		break;
	default:
		abort(); /* the evaluator asks nothing else */
	}
	spf_eval_answer(e, q->name, q->type, DNS_OK, &rr, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	struct spf_eval	       *e;
	char		       *txt, why[160];
	size_t			i;
	int			valid, is_spf, done = 0, round;

	txt = malloc(size + 1);
	memcpy(txt, data, size);
	txt[size] = '\0';

	why[0] = '\0';
	valid =
	    spf_record_check((const char *)data, size, why, sizeof(why)) == 0;
	CHECK(valid || why[0] != '\0');
	CHECK(memchr(why, '\0', sizeof(why)) != NULL);
	/* What the evaluator selects as an SPF record (§4.5). */
	is_spf = size >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (size == 6 || txt[6] == ' ');
	CHECK(!valid || is_spf);

	memset(&ss, 0, sizeof(ss));
	if (size > 0 && (data[size - 1] & 1)) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		CHECK(inet_pton(AF_INET, "192.0.2.1", &s4->sin_addr) == 1);
	}
	e = spf_eval_new((struct sockaddr *)&ss, SPF_ID_MAILFROM,
	    "helo.example", "user@example.com", "receiver.example");
	for (round = 0; round < MAX_ROUNDS; round++) {
		if (spf_eval_run(e)) {
			done = 1;
			break;
		}
		CHECK(e->nmissing > 0);
		for (i = 0; i < e->nmissing; i++)
			answer(e, &e->missing[i], txt, size);
	}
	CHECK(done);
	CHECK(e->result >= SPF_V_NONE && e->result <= SPF_V_PERMERROR);
	CHECK(strcmp(spf_verdict_name(e->result), "?") != 0);
	CHECK(e->result == SPF_V_NONE || is_spf);
	CHECK(e->result != SPF_V_NONE || !is_spf);
	if (is_spf && !valid)
		CHECK(e->result == SPF_V_PERMERROR);
	CHECK(e->explanation == NULL || e->result == SPF_V_FAIL);
	CHECK(memchr(e->problem, '\0', sizeof(e->problem)) != NULL);
	CHECK(memchr(e->mechanism, '\0', sizeof(e->mechanism)) != NULL);
	spf_eval_free(e);
	free(txt);
	return 0;
}
