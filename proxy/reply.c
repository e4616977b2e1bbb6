/*
 * reply.c - SMTP reply accumulation and EHLO capability handling.
 *
 * Implements:
 *   RFC 5321 §4.2 (reply lines: three-digit code, then SP, "-" or end of
 *   line), §4.2.1 (multi-line replies: "NNN-" continuation lines, one
 *   "NNN " last line, the same code on every line), §4.1.1.1 (EHLO reply:
 *   line 0 is the greeting, then one ehlo-line per extension);
 *   RFC 1869 §4.3 (ehlo-keyword / ehlo-param syntax);
 *   RFC 3463 §2 and RFC 2034 §3 (enhanced status codes at the start of the
 *   reply text);
 *   RFC 1870 (SIZE), RFC 4954 §3 (AUTH, and the pre-standard "AUTH="
 *   form still sent by Postfix and Exim).
 *
 * Pure code: no I/O, no allocation, no global state except constant
 * tables; every function is safe from any thread. A struct smtp_reply and
 * a struct capa are owned by the caller and hold everything in fixed
 * buffers; pointers returned by reply_line_text() borrow from the reply
 * and are valid until the next reply_init()/reply_add_line() on it.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "reply.h"

/* ASCII-only character classes: never depend on the locale. */
static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
to_upper(int c)
{
	return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

/* Case-insensitive (ASCII) comparison of n bytes. */
static int
same_nocase(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (to_upper((unsigned char)a[i]) !=
		    to_upper((unsigned char)b[i]))
			return 0;
	}
	return 1;
}

/* Case-insensitive (ASCII) comparison of a counted string with a name. */
static int
eq_nocase(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && same_nocase(s, name, n);
}

void
reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->nlines = 0;
	r->len = 0;
	r->text[0] = '\0';
}

/*
 * A reply is complete once a line without '-' after the code was added;
 * every stored line has at least the three digits, so text[off + 3] is
 * either the separator or the terminating NUL.
 */
static int
reply_complete(const struct smtp_reply *r)
{
	if (r->nlines == 0)
		return 0;
	return r->text[r->off[r->nlines - 1] + 3] != '-';
}

/*
 * Accepts "NNN", "NNN text" (last line) and "NNN-text" (continuation) with
 * N a digit and the first digit 2-5. Refuses: a shorter line, anything
 * but SP or '-' after the code, a code different from the earlier lines',
 * a line after the last line, NUL/CR/LF inside the line (the caller's line
 * reader strips CRLF; anything left is smuggling material), and every
 * overflow of REPLY_LINE_MAX, REPLY_LINES_MAX or REPLY_TEXT_MAX. Other
 * bytes (including UTF-8, RFC 6531 §3.7.4.2) are kept as they are. On
 * REPLY_ERROR the reply is left unchanged.
 */
enum reply_status
reply_add_line(struct smtp_reply *r, const char *line, size_t len)
{
	size_t i;
	int    code, last;

	if (len < 3 || len > REPLY_LINE_MAX)
		return REPLY_ERROR;
	if (line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return REPLY_ERROR;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');

	if (len == 3 || line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else
		return REPLY_ERROR;

	for (i = 3; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return REPLY_ERROR;
	}

	if (reply_complete(r))
		return REPLY_ERROR;
	if (r->nlines > 0 && code != r->code)
		return REPLY_ERROR;
	if (r->nlines >= REPLY_LINES_MAX)
		return REPLY_ERROR;
	if (len + 1 > REPLY_TEXT_MAX - r->len)
		return REPLY_ERROR;

	r->code = code;
	r->off[r->nlines] = (uint16_t)r->len;
	memcpy(r->text + r->len, line, len);
	r->text[r->len + len] = '\0';
	r->len += len + 1;
	r->nlines++;

	return last ? REPLY_DONE : REPLY_MORE;
}

const char *
reply_line_text(const struct smtp_reply *r, size_t i)
{
	const char *l;

	if (i >= r->nlines)
		return "";
	l = r->text + r->off[i];
	/* "NNN" alone has no separator: its text is the NUL at l + 3. */
	return l[3] == '\0' ? l + 3 : l + 4;
}

/*
 * Wire form: every stored line followed by CRLF. out is NUL-terminated on
 * success (the NUL is not counted), so out must hold the reply plus one
 * byte; otherwise -1 and out is untouched beyond what was needed to find
 * out. An empty reply gives 0.
 */
int
reply_format(const struct smtp_reply *r, char *out, size_t outsz)
{
	size_t	    i, n, pos;
	const char *l;

	/* Stored bytes are lines + one NUL each; the wire has CRLF each. */
	if (r->len + r->nlines + 1 > outsz)
		return -1;
	pos = 0;
	for (i = 0; i < r->nlines; i++) {
		l = r->text + r->off[i];
		n = strlen(l);
		memcpy(out + pos, l, n);
		pos += n;
		out[pos++] = '\r';
		out[pos++] = '\n';
	}
	out[pos] = '\0';
	return (int)pos;
}

/*
 * RFC 3463 §2: status-code = class "." subject "." detail, with class
 * "2" / "4" / "5" (so a 3xx reply never has one), subject and detail
 * 1*3digit; RFC 2034 §3 puts it first in the text, followed by SP. The
 * class must also match the reply's first digit.
 */
int
reply_enhanced(const struct smtp_reply *r, char *enh, size_t enhsz)
{
	const char *t;
	size_t	    i, n;
	int	    part;

	if (r->nlines == 0)
		return -1;
	t = reply_line_text(r, 0);
	if (t[0] != '0' + r->code / 100 ||
	    (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return -1;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; is_digit((unsigned char)t[i]); n++, i++)
			if (n == 3)
				return -1;
		if (n == 0)
			return -1;
		if (part == 0 && t[i++] != '.')
			return -1;
	}
	if (t[i] != ' ' && t[i] != '\0')
		return -1;
	if (i + 1 > enhsz)
		return -1;
	memcpy(enh, t, i);
	enh[i] = '\0';
	return 0;
}

/*
 * Append the space-separated tokens of args to the list in dst (size
 * dstsz, always NUL-terminated), skipping tokens already present
 * (case-insensitive), tokens with characters outside [A-Za-z0-9_-] (SASL
 * mechanism names, RFC 4422 §3.1, and XCLIENT/XFORWARD attribute names
 * are all drawn from this set) and tokens that do not fit whole.
 */
static void
capa_add_tokens(char *dst, size_t dstsz, const char *args)
{
	const char *tok, *p, *q;
	size_t	    dlen, n, m;
	int	    valid;

	dlen = strlen(dst);
	p = args;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		tok = p;
		valid = 1;
		while (*p != ' ' && *p != '\0') {
			if (!is_alnum((unsigned char)*p) && *p != '-' &&
			    *p != '_')
				valid = 0;
			p++;
		}
		n = (size_t)(p - tok);
		if (!valid)
			continue;

		/* Already listed? */
		for (q = dst; *q != '\0'; q += m) {
			while (*q == ' ')
				q++;
			for (m = 0; q[m] != ' ' && q[m] != '\0'; m++)
				;
			if (m == n && same_nocase(q, tok, n))
				break;
		}
		if (*q != '\0')
			continue;

		if (dlen + (dlen > 0) + n + 1 > dstsz)
			continue;
		if (dlen > 0)
			dst[dlen++] = ' ';
		memcpy(dst + dlen, tok, n);
		dlen += n;
		dst[dlen] = '\0';
	}
}

/*
 * RFC 1870 §4: "SIZE" [SP 1*20DIGIT]; 0 or no value means no fixed limit.
 * A value that is not a number is treated as no value; one too large for
 * 64 bits saturates (it is no limit in practice).
 */
static void
capa_param_size(struct capa *c, const char *args)
{
	uint64_t    v;
	const char *p;

	c->size = 0;
	if (*args == '\0')
		return;
	v = 0;
	for (p = args; *p != '\0'; p++) {
		if (!is_digit((unsigned char)*p))
			return;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + (uint64_t)(*p - '0');
	}
	c->size = v;
}

static void
capa_param_auth(struct capa *c, const char *args)
{
	capa_add_tokens(c->auth, sizeof(c->auth), args);
}

static void
capa_param_xclient(struct capa *c, const char *args)
{
	capa_add_tokens(c->xclient, sizeof(c->xclient), args);
}

static void
capa_param_xforward(struct capa *c, const char *args)
{
	capa_add_tokens(c->xforward, sizeof(c->xforward), args);
}

/*
 * The EHLO keywords moat understands. VRFY is not an EHLO keyword (some
 * servers list it anyway); like every unknown keyword it is ignored.
 */
static const struct capa_keyword {
	const char *name;
	uint32_t    flag;
	void (*param)(struct capa *, const char *args);
} capa_table[] = {
	{ "PIPELINING", CAPA_PIPELINING, NULL },
	{ "SIZE", CAPA_SIZE, capa_param_size },
	{ "8BITMIME", CAPA_8BITMIME, NULL },
	{ "SMTPUTF8", CAPA_SMTPUTF8, NULL },
	{ "DSN", CAPA_DSN, NULL },
	{ "ENHANCEDSTATUSCODES", CAPA_ENHANCEDSTATUSCODES, NULL },
	{ "CHUNKING", CAPA_CHUNKING, NULL },
	{ "BINARYMIME", CAPA_BINARYMIME, NULL },
	{ "STARTTLS", CAPA_STARTTLS, NULL },
	{ "AUTH", CAPA_AUTH, capa_param_auth },
	{ "XCLIENT", CAPA_XCLIENT, capa_param_xclient },
	{ "XFORWARD", CAPA_XFORWARD, capa_param_xforward },
};

/*
 * Each line after the greeting is ehlo-keyword *(SP ehlo-param), with
 * ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") (RFC 5321
 * §4.1.1.1). A line whose keyword is not followed by SP or end of line is
 * ignored, except "AUTH=" (the old form). Several AUTH (or XCLIENT,
 * XFORWARD) lines merge their lists; for SIZE the last line wins.
 */
int
capa_parse(const struct smtp_reply *r, struct capa *c)
{
	const struct capa_keyword *kw;
	const char		  *t, *args;
	size_t			   i, k, n;

	memset(c, 0, sizeof(*c));
	if (r->nlines == 0 || r->code != 250)
		return -1;

	for (i = 1; i < r->nlines; i++) {
		t = reply_line_text(r, i);
		if (!is_alnum((unsigned char)t[0]))
			continue;
		for (n = 1; is_alnum((unsigned char)t[n]) || t[n] == '-'; n++)
			;
		for (k = 0; k < sizeof(capa_table) / sizeof(capa_table[0]);
		     k++) {
			if (eq_nocase(t, n, capa_table[k].name))
				break;
		}
		if (k == sizeof(capa_table) / sizeof(capa_table[0]))
			continue;
		kw = &capa_table[k];

		if (t[n] == '\0')
			args = t + n;
		else if (t[n] == ' ' || (t[n] == '=' && kw->flag == CAPA_AUTH))
			args = t + n + 1;
		else
			continue;

		c->flags |= kw->flag;
		if (kw->param != NULL)
			kw->param(c, args);
	}
	return 0;
}

/* Append n bytes at *pos if they fit (keeping one byte for the NUL). */
static int
put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
	if (n >= outsz - *pos)
		return -1;
	memcpy(out + *pos, s, n);
	*pos += n;
	return 0;
}

/*
 * See reply.h for what is advertised. The reply is built whole or not at
 * all: on success out is NUL-terminated (the NUL is not counted), so out
 * needs one byte more than the reply. A hostname containing a control
 * character or a space is refused (-1) rather than put on the wire.
 */
int
capa_ehlo_reply(const struct capa *up, const char *hostname, uint64_t own_size,
    uint32_t own, const char *auth, uint32_t *advertised, char *out,
    size_t outsz)
{
	const char	    *lines[10];
	char		     sizebuf[32], authbuf[CAPA_AUTH_MAX + 8];
	uint32_t	     adv;
	uint64_t	     size;
	size_t		     i, n, pos;
	const unsigned char *h;

	if (advertised != NULL)
		*advertised = 0;
	if (outsz == 0)
		return -1;
	for (h = (const unsigned char *)hostname; *h != '\0'; h++)
		if (*h <= 0x20 || *h == 0x7f)
			return -1;

	n = 0;
	adv = 0;
	lines[n++] = hostname;

	lines[n++] = "PIPELINING";
	adv |= CAPA_PIPELINING;

	if (own_size != 0 && up->size != 0)
		size = own_size < up->size ? own_size : up->size;
	else
		size = own_size != 0 ? own_size : up->size;
	if (size != 0)
		snprintf(sizebuf, sizeof(sizebuf), "SIZE %" PRIu64, size);
	else
		snprintf(sizebuf, sizeof(sizebuf), "SIZE");
	lines[n++] = sizebuf;
	adv |= CAPA_SIZE;

	if (up->flags & CAPA_8BITMIME) {
		lines[n++] = "8BITMIME";
		adv |= CAPA_8BITMIME;
	}
	if (up->flags & CAPA_SMTPUTF8) {
		lines[n++] = "SMTPUTF8";
		adv |= CAPA_SMTPUTF8;
	}
	if (up->flags & CAPA_DSN) {
		lines[n++] = "DSN";
		adv |= CAPA_DSN;
	}
	if (up->flags & CAPA_ENHANCEDSTATUSCODES) {
		lines[n++] = "ENHANCEDSTATUSCODES";
		adv |= CAPA_ENHANCEDSTATUSCODES;
	}
	if (own & CAPA_CHUNKING) {
		lines[n++] = "CHUNKING";
		adv |= CAPA_CHUNKING;
	}
	if (own & CAPA_STARTTLS) {
		lines[n++] = "STARTTLS";
		adv |= CAPA_STARTTLS;
	}
	if ((own & CAPA_AUTH) && auth != NULL && auth[0] != '\0') {
		snprintf(authbuf, sizeof(authbuf), "AUTH %s", auth);
		lines[n++] = authbuf;
		adv |= CAPA_AUTH;
	}

	pos = 0;
	for (i = 0; i < n; i++) {
		if (put(out, outsz, &pos, i + 1 < n ? "250-" : "250 ", 4) ==
			-1 ||
		    put(out, outsz, &pos, lines[i], strlen(lines[i])) == -1 ||
		    put(out, outsz, &pos, "\r\n", 2) == -1)
			return -1;
	}
	out[pos] = '\0';
	if (advertised != NULL)
		*advertised = adv;
	return (int)pos;
}
