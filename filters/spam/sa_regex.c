/*
 * sa_regex.c - Perl regular expressions as SpamAssassin rule files write
 * them (perlop "m//" quoting: /re/flags, m{re}flags, m!re!flags ... with
 * the modifiers i s m x), taken apart and compiled with PCRE2 (JIT).
 *
 * Where Perl and PCRE2 differ for the patterns rule files use, the
 * pattern is rewritten before compiling (counted in regex_translated):
 *   - an unknown escape of a letter or digit (Perl: the literal character,
 *     with a warning) is left to PCRE2_EXTRA_BAD_ESCAPE_IS_LITERAL;
 *   - "{,n}" (Perl 5.34: {0,n}; older Perl and PCRE2: literal) is kept
 *     literal, as the Perl SpamAssassin 4.0 supports reads it;
 *   - "\z" "\Z" "\A" "\G" "\K" "(?<name>" "\Q..\E" are the same in both.
 * Patterns are compiled for bytes (no UTF mode), as SpamAssassin matches
 * octet strings; "\x{..}" above 0xff is rejected by PCRE2 and reported.
 *
 * Thread-safe; the compiled code is immutable and shared.
 */
#include <string.h>

#include "sa_int.h"
#include "util.h"

static int
closing(int open)
{
	switch (open) {
	case '{':
		return '}';
	case '(':
		return ')';
	case '[':
		return ']';
	case '<':
		return '>';
	default:
		return open;
	}
}

int
sa_regex_parse(const char **pp, char **pattern, uint32_t *opts,
    unsigned *translated, char *why, size_t whylen)
{
	const char *p = *pp, *start;
	int	    open, close, depth;
	size_t	    len;

	(void)translated;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == 'm' && p[1] != '\0' && p[1] != ' ' && p[1] != '\t' &&
	    !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z') ||
		(p[1] >= '0' && p[1] <= '9') || p[1] == '_'))
		p++;
	else if (*p != '/') {
		strfmt(why, whylen,
		    "a regular expression must start with / "
		    "or m and a delimiter");
		return -1;
	}
	open = (unsigned char)*p++;
	close = closing(open);
	start = p;
	depth = 1;
	for (; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (open != close && *p == open)
			depth++;
		else if (*p == close && --depth == 0)
			break;
	}
	if (*p == '\0') {
		strfmt(why, whylen, "regular expression not closed by '%c'",
		    close);
		return -1;
	}
	len = (size_t)(p - start);
	p++;
	*opts = 0;
	for (; *p != '\0' && *p != ' ' && *p != '\t'; p++) {
		switch (*p) {
		case 'i':
			*opts |= PCRE2_CASELESS;
			break;
		case 's':
			*opts |= PCRE2_DOTALL;
			break;
		case 'm':
			*opts |= PCRE2_MULTILINE;
			break;
		case 'x':
			*opts |= PCRE2_EXTENDED;
			break;
		case 'n':
			*opts |= PCRE2_NO_AUTO_CAPTURE;
			break;
		case 'g': /* the engine decides about repeated matching */
		case 'o':
		case 'a': /* ASCII \d\s\w: PCRE2's default without UCP */
		case 'l':
		case 'd':
		case 'u':
			break;
		default:
			strfmt(why, whylen,
			    "unknown regular expression "
			    "modifier '%c'",
			    *p);
			return -1;
		}
	}
	*pattern = xstrndup(start, len);
	*pp = p;
	return 0;
}

pcre2_code *
sa_regex_compile(
    const char *pattern, uint32_t opts, int *code, char *why, size_t whylen)
{
	pcre2_compile_context *cc;
	pcre2_code	      *re;
	PCRE2_UCHAR	       msg[256];
	PCRE2_SIZE	       off;
	int		       err;

	cc = pcre2_compile_context_create(NULL);
	if (cc == NULL)
		fatal("pcre2_compile_context_create: out of memory");
	pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_BAD_ESCAPE_IS_LITERAL);
	/* bounded: patterns in rule files are small, keep nesting sane */
	pcre2_set_parens_nest_limit(cc, 250);
	re = pcre2_compile(
	    (PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, cc);
	pcre2_compile_context_free(cc);
	*code = re == NULL ? err : 0;
	if (re == NULL) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		strfmt(why, whylen, "regex /%.80s/: %s at offset %zu", pattern,
		    (const char *)msg, (size_t)off);
		return NULL;
	}
	/* JIT is an optimisation: without it (no exec memory) still run */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}
