/*
 * msgview_text.c - a text part's bytes to UTF-8 text: transfer decodings
 * (RFC 2045 §6.7 quoted-printable, §6.8 base64, and uuencode) through
 * GMime's incremental decoders, then charset conversion (RFC 2046 §4.1.2)
 * to UTF-8: UTF-8/US-ASCII checked in place, Latin-1 and Windows-1252
 * mapped directly, anything else through iconv as GMime opens it
 * (g_mime_iconv_open knows the charset aliases mail uses). Invalid input
 * never fails: a bad sequence becomes U+FFFD, an unknown charset Latin-1.
 *
 * Bounded: decoding keeps at most the caller's byte budget and only
 * counts the rest; output sizes are at most 3 bytes per input byte.
 * Thread-safe (no globals; iconv descriptors are per call).
 */
#include <errno.h>
#include <string.h>

#include <gmime/gmime.h>

#include "msgview_int.h"
#include "util.h"

#define DECODE_CHUNK (32u * 1024)

/* ------------------------------------------------------------ decoding */

/* Skip to the line after "begin NNN name" (uuencode); NULL if none. */
static const char *
uu_begin(const char *p, const char *end)
{
	while (p < end) {
		if ((size_t)(end - p) > 6 && memcmp(p, "begin ", 6) == 0) {
			p = memchr(p, '\n', (size_t)(end - p));
			return p != NULL ? p + 1 : end;
		}
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			break;
		p++;
	}
	return NULL;
}

static int
needs_decoder(int encoding)
{
	return encoding == GMIME_CONTENT_ENCODING_BASE64 ||
	    encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    encoding == GMIME_CONTENT_ENCODING_UUENCODE;
}

size_t
mv_decode(int encoding, const char *raw, size_t rawlen, struct mv_buf *out,
    size_t keep, int *cut)
{
	GMimeEncoding st;
	const char   *p = raw, *end = raw + rawlen;
	size_t	      total = 0, n, chunk;

	out->len = 0;
	mv_buf_reserve(out, 0);
	out->p[0] = '\0';
	*cut = 0;
	if (!needs_decoder(encoding)) {
		n = rawlen < keep ? rawlen : keep;
		mv_buf_add(out, raw, n);
		*cut = n < rawlen;
		return rawlen;
	}
	g_mime_encoding_init_decode(&st, (GMimeContentEncoding)encoding);
	if (encoding == GMIME_CONTENT_ENCODING_UUENCODE) {
		p = uu_begin(raw, end);
		if (p == NULL)
			return 0;
		st.state |= GMIME_UUDECODE_STATE_BEGIN;
	}
	for (;;) {
		chunk = (size_t)(end - p) < DECODE_CHUNK ? (size_t)(end - p)
							 : DECODE_CHUNK;
		mv_buf_reserve(out, g_mime_encoding_outlen(&st, chunk) + 8);
		if (chunk == 0)
			n = g_mime_encoding_flush(&st, p, 0, out->p + out->len);
		else
			n = g_mime_encoding_step(
			    &st, p, chunk, out->p + out->len);
		total += n;
		/* Past the budget, decode over the same tail: count only. */
		if (out->len + n > keep) {
			if (out->len < keep)
				out->len = keep;
			*cut = 1;
		} else
			out->len += n;
		if (chunk == 0)
			break;
		p += chunk;
	}
	out->p[out->len] = '\0';
	return total;
}

/* 1 for the 64 base64 letters. */
static const unsigned char b64[256] = { ['A'] = 1,
	['B'] = 1,
	['C'] = 1,
	['D'] = 1,
	['E'] = 1,
	['F'] = 1,
	['G'] = 1,
	['H'] = 1,
	['I'] = 1,
	['J'] = 1,
	['K'] = 1,
	['L'] = 1,
	['M'] = 1,
	['N'] = 1,
	['O'] = 1,
	['P'] = 1,
	['Q'] = 1,
	['R'] = 1,
	['S'] = 1,
	['T'] = 1,
	['U'] = 1,
	['V'] = 1,
	['W'] = 1,
	['X'] = 1,
	['Y'] = 1,
	['Z'] = 1,
	['a'] = 1,
	['b'] = 1,
	['c'] = 1,
	['d'] = 1,
	['e'] = 1,
	['f'] = 1,
	['g'] = 1,
	['h'] = 1,
	['i'] = 1,
	['j'] = 1,
	['k'] = 1,
	['l'] = 1,
	['m'] = 1,
	['n'] = 1,
	['o'] = 1,
	['p'] = 1,
	['q'] = 1,
	['r'] = 1,
	['s'] = 1,
	['t'] = 1,
	['u'] = 1,
	['v'] = 1,
	['w'] = 1,
	['x'] = 1,
	['y'] = 1,
	['z'] = 1,
	['0'] = 1,
	['1'] = 1,
	['2'] = 1,
	['3'] = 1,
	['4'] = 1,
	['5'] = 1,
	['6'] = 1,
	['7'] = 1,
	['8'] = 1,
	['9'] = 1,
	['+'] = 1,
	['/'] = 1 };

size_t
mv_decoded_size(
    int encoding, const char *raw, size_t rawlen, struct mv_buf *scratch)
{
	const unsigned char *p = (const unsigned char *)raw;
	size_t		     i, n = 0;
	int		     cut;

	if (encoding == GMIME_CONTENT_ENCODING_BASE64) {
		/* Every 4 letters are 3 bytes; no need to decode. */
		for (i = 0; i < rawlen; i++)
			n += b64[p[i]];
		return n / 4 * 3 + (n % 4 == 3 ? 2 : n % 4 == 2 ? 1 : 0);
	}
	if (needs_decoder(encoding))
		return mv_decode(encoding, raw, rawlen, scratch, 0, &cut);
	return rawlen;
}

/* ------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0; /* overlong, surrogate */
		return 3;
	}
	if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
	    (s[3] & 0xc0) != 0x80)
		return 0;
	if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
		return 0; /* overlong, above U+10FFFF */
	return 4;
}

int
mv_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t		     l;

	while (p < end) {
		if (*p >= 0x80) {
			if ((l = utf8_seq(p, (size_t)(end - p))) == 0)
				return 0;
			p += l;
		} else if (*p == 0)
			return 0;
		else
			p++;
	}
	return 1;
}

static char *
put_cp(char *o, unsigned cp)
{
	if (cp < 0x80)
		*o++ = (char)cp;
	else if (cp < 0x800) {
		*o++ = (char)(0xc0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xe0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

#define FFFD(o) ((o) = put_cp((o), 0xfffd))

void
mv_utf8_clean(const char *in, size_t n, struct mv_buf *out, int lf)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + n;
	char		    *o;
	size_t		     l;

	mv_buf_reserve(out, n * 3);
	o = out->p + out->len;
	while (p < end) {
		if (*p >= 0x80) {
			l = utf8_seq(p, (size_t)(end - p));
			if (l == 0) {
				FFFD(o);
				p++;
				continue;
			}
			memcpy(o, p, l);
			o += l;
			p += l;
		} else if (lf && *p == '\r' && p + 1 < end && p[1] == '\n')
			p++;
		else if (lf && *p == '\0') {
			FFFD(o);
			p++;
		} else
			*o++ = (char)*p++;
	}
	out->len = (size_t)(o - out->p);
	out->p[out->len] = '\0';
}

/* Windows-1252 0x80-0x9f (WHATWG; the holes stay C1 controls). */
static const unsigned short cp1252[32] = { 0x20ac, 0x81, 0x201a, 0x192, 0x201e,
	0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d,
	0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013,
	0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178 };

static void
from_cp1252(const char *in, size_t n, struct mv_buf *out)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + n;
	char		    *o;

	mv_buf_reserve(out, n * 3);
	o = out->p + out->len;
	for (; p < end; p++) {
		if (*p >= 0xa0)
			o = put_cp(o, *p);
		else if (*p >= 0x80)
			o = put_cp(o, cp1252[*p - 0x80]);
		else if (*p == '\r' && p + 1 < end && p[1] == '\n')
			continue;
		else if (*p == '\0')
			FFFD(o);
		else
			*o++ = (char)*p;
	}
	out->len = (size_t)(o - out->p);
	out->p[out->len] = '\0';
}

static int
is_one_of(const char *cs, const char *const *names)
{
	for (; *names != NULL; names++)
		if (ascii_strcasecmp(cs, *names) == 0)
			return 1;
	return 0;
}

/* Labels mail mislabels: read as their supersets, as browsers do. */
static const char *
superset(const char *cs)
{
	static const char *const gb[] = { "gb2312", "gbk", "x-gbk", "euc-cn",
		"cp936", "gb_2312-80", NULL };
	static const char *const kr[] = { "ks_c_5601-1987", "euc-kr",
		"ks_c_5601-1989", "ksc5601", NULL };
	static const char *const jp[] = { "shift_jis", "shift-jis", "sjis",
		"x-sjis", "ms_kanji", NULL };
	static const char *const th[] = { "tis-620", "iso-8859-11", NULL };

	if (is_one_of(cs, gb))
		return "GB18030";
	if (is_one_of(cs, kr))
		return "CP949";
	if (is_one_of(cs, jp))
		return "CP932";
	if (is_one_of(cs, th))
		return "CP874";
	if (ascii_strcasecmp(cs, "iso-8859-8-i") == 0)
		return "ISO-8859-8";
	return cs;
}

static int
via_iconv(const char *cs, const char *in, size_t n, struct mv_buf *tmp)
{
	iconv_t cd;
	char   *ip = (char *)in, *op;
	size_t	il = n, ol, r;

	cd = g_mime_iconv_open("UTF-8", superset(cs));
	if (cd == (iconv_t)-1)
		return -1;
	tmp->len = 0;
	mv_buf_reserve(tmp, n * 2 + 16);
	while (il > 0) {
		op = tmp->p + tmp->len;
		ol = tmp->cap - tmp->len - 1;
		r = iconv(cd, &ip, &il, &op, &ol);
		tmp->len = (size_t)(op - tmp->p);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			mv_buf_reserve(tmp, il * 2 + 16);
		else if (errno == EILSEQ) {
			mv_buf_add(tmp, "\xef\xbf\xbd", 3);
			ip++;
			il--;
		} else {
			/* EINVAL: cut short at the end. */
			mv_buf_add(tmp, "\xef\xbf\xbd", 3);
			break;
		}
	}
	/* Stateful charsets (ISO-2022-JP) return to the initial state. */
	mv_buf_reserve(tmp, 16);
	op = tmp->p + tmp->len;
	ol = tmp->cap - tmp->len - 1;
	(void)iconv(cd, NULL, NULL, &op, &ol);
	tmp->len = (size_t)(op - tmp->p);
	tmp->p[tmp->len] = '\0';
	g_mime_iconv_close(cd);
	return 0;
}

unsigned
mv_to_utf8(const char *cs, const char *in, size_t n, struct mv_buf *out,
    struct mv_buf *tmp)
{
	static const char *const utf8[] = { "utf-8", "utf8",
		"unicode-1-1-utf-8", NULL };
	static const char *const ascii[] = { "us-ascii", "ascii",
		"ansi_x3.4-1968", "iso646-us", "us", "default", "", NULL };
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1",
		"iso_8859-1", "latin1", "l1", "windows-1252", "cp1252",
		"x-cp1252", "cp819", "ibm819", NULL };

	out->len = 0;
	mv_buf_reserve(out, 0);
	out->p[0] = '\0';
	if (cs == NULL || is_one_of(cs, ascii)) {
		if (mv_utf8_valid(in, n))
			mv_utf8_clean(in, n, out, 1);
		else
			from_cp1252(in, n, out);
		return 0;
	}
	if (is_one_of(cs, utf8)) {
		mv_utf8_clean(in, n, out, 1);
		return 0;
	}
	if (is_one_of(cs, latin1)) {
		from_cp1252(in, n, out);
		return 0;
	}
	if (via_iconv(cs, in, n, tmp) != 0) {
		from_cp1252(in, n, out);
		return MV_PART_BAD_CHARSET;
	}
	mv_utf8_clean(tmp->p, tmp->len, out, 1);
	return 0;
}
