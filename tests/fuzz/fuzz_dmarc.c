/*
 * fuzz_dmarc.c - libFuzzer target for filters/dmarc/dmarc_eval.c and
 * proxy/from_field.c: the From field parser, the
 * Authentication-Results clause reader, the record choice and parsing
 * (libopendmarc) and alignment. The first byte picks the entry point.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_eval.h"
#include "from_field.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return dmarc_eval_init() == 0 ? 0 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		    *s, *lines[DMARC_DKIM_MAX * 2], *p, *half;
	char		     dom[FROM_DOMAIN_MAX];
	const char	    *why;
	size_t		     n = 0;
	struct dmarc_auth    a;
	struct dmarc_record  r;
	struct dmarc_outcome o;

	if (size < 1)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		if (from_field_domain(s, strlen(s), dom, sizeof(dom), &why) ==
			0 &&
		    (strlen(dom) == 0 || strchr(dom, '.') == NULL))
			abort(); /* a domain that passed must be a name */
		break;
	case 1:
		for (p = s; n < sizeof(lines) / sizeof(lines[0]);) {
			lines[n++] = p;
			if ((p = strchr(p, '\n')) == NULL)
				break;
			*p++ = '\0';
		}
		dmarc_auth_read((const char *const *)lines, n, &a);
		memset(&r, 0, sizeof(r));
		r.p = DMARC_POL_REJECT;
		r.pct = 50;
		dmarc_evaluate("example.com", &r, 0, &a, 10, &o);
		break;
	case 2:
		lines[0] = s;
		if (dmarc_record_pick((const char *const *)lines, 1) == 0)
			dmarc_record_parse("example.com", s, &r, &why);
		break;
	default:
		half = s + strlen(s) / 2;
		if (*half != '\0') {
			char first[DMARC_DOMAIN_MAX];

			snprintf(
			    first, sizeof(first), "%.*s", (int)(half - s), s);
			dmarc_aligned(first, half, 0);
			dmarc_aligned(first, half, 1);
		}
		break;
	}
	free(s);
	return 0;
}
