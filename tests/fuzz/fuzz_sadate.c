/*
 * fuzz_sadate.c - libFuzzer target for filters/spam/sa_date.c: the
 * input, as a date, goes to sa_date_parse() (whose result must be -1 or
 * within the years it clamps to, 1970-2038 give or take a zone), and as
 * a Received field to sa_received_date() (a run it reports must lie in
 * the input and start with white space), whose run is then parsed too.
 * Reads past the input are ASan's findings; a broken invariant aborts.
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Iproxy -Ifilters -Ifilters/spam tests/fuzz/fuzz_sadate.c \
 *	    filters/spam/sa_date.c proxy/util.c proxy/log.c -levent_core \
 *	    -o fuzz_sadate
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sa_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	 *s = malloc(size + 1);
	long long t;
	size_t	  st, en;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	t = sa_date_parse(s, size);
	if (t != -1 && (t < 0 || t > 2209075200LL)) /* 2040 */
		abort();
	if (sa_received_date(s, size, &st, &en)) {
		if (st >= en || en > size ||
		    !(s[st] == ' ' || s[st] == '\t' || s[st] == '\n' ||
			s[st] == '\r' || s[st] == '\f' || s[st] == '\v'))
			abort();
		t = sa_date_parse(s + st, en - st);
		if (t != -1 && (t < 0 || t > 2209075200LL))
			abort();
	}
	free(s);
	return 0;
}
