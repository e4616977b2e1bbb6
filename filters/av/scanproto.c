/*
 * scanproto.c - encoding and strict parsing of the moatd <-> moat-scand
 * protocol (scanproto.h): fixed-size binary requests, text replies.
 *
 * The reply parser is the one place where moatd reads what the scanner
 * process (which runs libclamav's parsers on hostile mail) says, so it
 * trusts nothing: every byte is checked, every number is bounded, every
 * count has a limit, and anything not exactly as scanproto.h describes
 * makes the whole reply invalid. Its rules, beyond the header:
 *
 *  - The reply is 1..SCAN_REPLY_MAX bytes of printable ASCII (0x20..0x7e)
 *    and "\n"; every line, the last one too, ends with "\n"; no empty line,
 *    no CR, no NUL. Fields are separated by exactly one space; only the
 *    text of "error <text>" (1..255 bytes) may hold any spaces.
 *  - Numbers are decimal digits only, without sign or leading zeros, and
 *    fit in 64 bits (depth: 32 bits).
 *  - Signature names (virus, heuristic, limit) and file types are 1..MAX
 *    bytes of 0x21..0x7e. They are not unescaped: the formatter turns bytes
 *    outside that range into %XX, and what the parser returns is always
 *    safe to log or put in a header.
 *  - File names are %XX-escaped (space, "%", and bytes outside 0x21..0x7e;
 *    a name that is exactly "-" is sent as "%2D"), "-" means no name; the
 *    parser unescapes them (%00 is invalid), at most SCAN_FNAME_MAX bytes.
 *  - More than SCAN_NAMES_MAX names of one kind make the reply invalid (the
 *    formatter never sends more, so only a broken scanner does). File lines
 *    beyond SCAN_FILES_MAX are counted in files_dropped, as is the number
 *    on a "files_dropped <n>" line (the formatter's own count of entries it
 *    had to leave out), saturating.
 *  - time, engine, error and files_dropped lines appear at most once.
 *  - The status must agree with the names: infected iff at least one virus
 *    line; incomplete needs a limit line; clean has no limit line.
 *  - A line whose keyword is unknown is ignored (after the byte checks).
 *
 * Pure functions, no global state, no allocation: thread-safe.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "scanproto.h"

static const char *const status_names[] = {
	[SCAN_CLEAN] = "clean",
	[SCAN_INFECTED] = "infected",
	[SCAN_INCOMPLETE] = "incomplete",
	[SCAN_ERROR] = "error",
	[SCAN_BUSY] = "busy",
	[SCAN_NOTREADY] = "notready",
};

#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

const char *
scan_status_name(enum scan_status st)
{
	if ((unsigned)st >= NSTATUS)
		return "invalid";
	return status_names[st];
}

int
scan_request_init(struct scan_request *req, enum scan_op op, uint64_t id,
    uint64_t len, unsigned flags)
{
	memset(req, 0, sizeof(*req));
	if (op != SCAN_OP_SCAN && op != SCAN_OP_PING)
		return -1;
	if (flags & ~SCAN_F_DOTSTUFFED)
		return -1;
	req->magic = SCAN_MAGIC;
	req->version = SCAN_PROTO_VERSION;
	req->op = (uint16_t)op;
	req->id = id;
	req->length = len;
	req->flags = flags;
	return 0;
}

int
scan_request_check(const void *buf, size_t len, struct scan_request *req)
{
	if (len != sizeof(*req))
		return -1;
	memcpy(req, buf, sizeof(*req));
	if (req->magic != SCAN_MAGIC || req->version != SCAN_PROTO_VERSION)
		return -1;
	if (req->op != SCAN_OP_SCAN && req->op != SCAN_OP_PING)
		return -1;
	if ((req->flags & ~SCAN_F_DOTSTUFFED) || req->reserved != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------- format */

static const char hexdig[] = "0123456789ABCDEF";

/* A byte that goes on the wire as itself in names and file names. */
static int
plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/*
 * Escape at most max input bytes of s into out (outsz >= 1): bytes
 * outside 0x21..0x7e, and "%" when pct, become %XX. NUL-terminated; an
 * escape never straddles the end. Returns the output length.
 */
static size_t
escape(const char *s, size_t max, int pct, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (plain(c) && !(pct && c == '%')) {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outsz)
				break;
			out[o++] = '%';
			out[o++] = hexdig[c >> 4];
			out[o++] = hexdig[c & 0xf];
		}
	}
	out[o] = '\0';
	return o;
}

struct wbuf {
	char  *p;
	size_t size, len;
};

/* Append one whole line or nothing; 0 if it fit. */
static int wline(struct wbuf *w, size_t reserve, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
wline(struct wbuf *w, size_t reserve, const char *fmt, ...)
{
	va_list ap;
	int	n;
	size_t	room = w->size - w->len;

	if (room <= reserve)
		return -1;
	room -= reserve;
	va_start(ap, fmt);
	n = vsnprintf(w->p + w->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		w->p[w->len] = '\0';
		return -1;
	}
	w->len += (size_t)n;
	return 0;
}

/* Room kept for the lines after the file lines. */
#define TAIL_RESERVE 40

size_t
scan_reply_format(const struct scan_reply *r, char *buf, size_t size)
{
	static const char *const kinds[] = { "virus", "heuristic", "limit" };
	const char(
	    *names[3])[SCAN_NAME_MAX + 1] = { r->virus, r->heur, r->limit };
	unsigned    counts[3] = { r->nvirus, r->nheur, r->nlimit };
	struct wbuf w = { buf, size < SCAN_REPLY_MAX ? size : SCAN_REPLY_MAX,
		0 };
	char	    esc[3 * SCAN_FNAME_MAX + 1], type[3 * SCAN_TYPE_MAX + 1];
	char	    err[sizeof(r->error)];
	uint64_t    dropped = r->files_dropped;
	unsigned    k, i, n;

	if (w.size == 0)
		return 0;
	buf[0] = '\0';
	if (wline(&w, 0, "MSCN1 %llu %s\n", (unsigned long long)r->id,
		scan_status_name(r->status)) < 0)
		return 0;
	(void)wline(&w, 0, "time %llu\n", (unsigned long long)r->usec);
	for (k = 0; k < 3; k++) {
		n = counts[k] < SCAN_NAMES_MAX ? counts[k] : SCAN_NAMES_MAX;
		for (i = 0; i < n; i++) {
			if (escape(names[k][i], SCAN_NAME_MAX, 0, esc,
				SCAN_NAME_MAX + 1) == 0)
				strcpy(esc, "-");
			(void)wline(&w, 0, "%s %s\n", kinds[k], esc);
		}
	}
	(void)wline(&w, 0, "engine %llu %llu\n",
	    (unsigned long long)r->signatures,
	    (unsigned long long)r->generation);
	if (r->error[0] != '\0') {
		/* Printable ASCII with spaces; the rest becomes "?". */
		for (i = 0; i < sizeof(err) - 1 && r->error[i] != '\0'; i++)
			err[i] = (r->error[i] >= 0x20 && r->error[i] <= 0x7e)
			    ? r->error[i]
			    : '?';
		err[i] = '\0';
		(void)wline(&w, 0, "error %s\n", err);
	}
	n = r->nfiles < SCAN_FILES_MAX ? r->nfiles : SCAN_FILES_MAX;
	if (r->nfiles > n)
		dropped += r->nfiles - n;
	for (i = 0; i < n; i++) {
		const struct scan_file *f = &r->files[i];

		if (escape(f->type, SCAN_TYPE_MAX, 0, type,
			SCAN_TYPE_MAX + 1) == 0)
			strcpy(type, "-");
		if (!f->has_name || f->name[0] == '\0')
			strcpy(esc, "-");
		else if (strcmp(f->name, "-") == 0)
			strcpy(esc, "%2D");
		else
			escape(f->name, SCAN_FNAME_MAX, 1, esc, sizeof(esc));
		if (wline(&w, TAIL_RESERVE, "file %u %llu %s %s\n", f->depth,
			(unsigned long long)f->size, type, esc) < 0)
			dropped++;
	}
	if (dropped > 0)
		(void)wline(
		    &w, 0, "files_dropped %llu\n", (unsigned long long)dropped);
	return w.len;
}

/* -------------------------------------------------------------- parse */

/* A decimal number of [p, p+n): digits only, no leading zero, <= max. */
static int
parse_num(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t	 i;

	if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return -1;
		d = (unsigned)(p[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A token of 1..max bytes of 0x21..0x7e, copied NUL-terminated. */
static int
parse_token(const char *p, size_t n, size_t max, char *out)
{
	size_t i;

	if (n == 0 || n > max)
		return -1;
	for (i = 0; i < n; i++)
		if (!plain((unsigned char)p[i]))
			return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* An escaped file name (or "-") into f->name / f->has_name. */
static int
parse_fname(const char *p, size_t n, struct scan_file *f)
{
	size_t i, o = 0;

	if (n == 1 && p[0] == '-') {
		f->name[0] = '\0';
		f->has_name = 0;
		return 0;
	}
	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (!plain((unsigned char)c))
			return -1;
		if (c == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = hexval(p[i + 1])) < 0 ||
			    (lo = hexval(p[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			if (c == 0)
				return -1;
			i += 2;
		}
		if (o >= SCAN_FNAME_MAX)
			return -1;
		f->name[o++] = (char)c;
	}
	f->name[o] = '\0';
	f->has_name = 1;
	return 0;
}

#define MAXF 5 /* fields of a line, the keyword included */

/*
 * Split a line into at most MAXF fields at single spaces; the last field
 * takes the rest of the line when the line has more. Returns the number
 * of fields, or -1 for an empty field (double, leading or trailing space).
 */
static int
split(const char *p, size_t n, const char *f[MAXF], size_t fl[MAXF])
{
	int    nf = 0;
	size_t s = 0, i;

	for (i = 0; i <= n; i++) {
		if (i < n && (p[i] != ' ' || nf == MAXF - 1))
			continue;
		if (i == s)
			return -1;
		f[nf] = p + s;
		fl[nf] = i - s;
		nf++;
		s = i + 1;
	}
	return nf;
}

static int
field_is(const char *f, size_t fl, const char *word)
{
	return fl == strlen(word) && memcmp(f, word, fl) == 0;
}

#define FAIL(msg)                                                              \
	do {                                                                   \
		*why = (msg);                                                  \
		return -1;                                                     \
	} while (0)

/* The first line: "MSCN1 <id> <status>". */
static int
parse_first(const char *p, size_t n, struct scan_reply *r, const char **why)
{
	const char *f[MAXF];
	size_t	    fl[MAXF];
	unsigned    s;

	if (split(p, n, f, fl) != 3 || !field_is(f[0], fl[0], "MSCN1"))
		FAIL("bad first line");
	if (parse_num(f[1], fl[1], UINT64_MAX, &r->id) < 0)
		FAIL("bad id");
	for (s = 0; s < NSTATUS; s++)
		if (field_is(f[2], fl[2], status_names[s]))
			break;
	if (s == NSTATUS)
		FAIL("unknown status");
	r->status = (enum scan_status)s;
	return 0;
}

static int
add_name(char (*names)[SCAN_NAME_MAX + 1], unsigned *count, const char *p,
    size_t n, const char **why)
{
	if (*count >= SCAN_NAMES_MAX)
		FAIL("too many names");
	if (parse_token(p, n, SCAN_NAME_MAX, names[*count]) < 0)
		FAIL("bad name");
	(*count)++;
	return 0;
}

/* files_dropped is an unsigned: add, saturating at UINT_MAX. */
static unsigned
sat_add(unsigned a, uint64_t b)
{
	return b > UINT_MAX - a ? UINT_MAX : a + (unsigned)b;
}

/* One line after the first; seen tracks the lines allowed once. */
static int
parse_line(const char *p, size_t n, struct scan_reply *r, unsigned *seen,
    const char **why)
{
	const char	*f[MAXF];
	size_t		 fl[MAXF];
	int		 nf;
	uint64_t	 v;
	struct scan_file spare;

	if (n > 6 && memcmp(p, "error ", 6) == 0) {
		/* The text is the rest of the line, spaces and all. */
		if ((*seen & 8) || n - 6 >= sizeof(r->error))
			FAIL("bad error line");
		memcpy(r->error, p + 6, n - 6);
		r->error[n - 6] = '\0';
		*seen |= 8;
		return 0;
	}
	if ((nf = split(p, n, f, fl)) < 0)
		FAIL("empty field");
	if (field_is(f[0], fl[0], "time")) {
		if (nf != 2 || (*seen & 1) ||
		    parse_num(f[1], fl[1], UINT64_MAX, &r->usec) < 0)
			FAIL("bad time line");
		*seen |= 1;
	} else if (field_is(f[0], fl[0], "virus")) {
		if (nf != 2)
			FAIL("bad virus line");
		return add_name(r->virus, &r->nvirus, f[1], fl[1], why);
	} else if (field_is(f[0], fl[0], "heuristic")) {
		if (nf != 2)
			FAIL("bad heuristic line");
		return add_name(r->heur, &r->nheur, f[1], fl[1], why);
	} else if (field_is(f[0], fl[0], "limit")) {
		if (nf != 2)
			FAIL("bad limit line");
		return add_name(r->limit, &r->nlimit, f[1], fl[1], why);
	} else if (field_is(f[0], fl[0], "file")) {
		struct scan_file *sf;

		if (nf != 5)
			FAIL("bad file line");
		sf = r->nfiles < SCAN_FILES_MAX ? &r->files[r->nfiles] : &spare;
		if (parse_num(f[1], fl[1], UINT32_MAX, &v) < 0)
			FAIL("bad file depth");
		sf->depth = (unsigned)v;
		if (parse_num(f[2], fl[2], UINT64_MAX, &sf->size) < 0)
			FAIL("bad file size");
		if (parse_token(f[3], fl[3], SCAN_TYPE_MAX, sf->type) < 0)
			FAIL("bad file type");
		if (parse_fname(f[4], fl[4], sf) < 0)
			FAIL("bad file name");
		if (r->nfiles >= SCAN_FILES_MAX)
			r->files_dropped = sat_add(r->files_dropped, 1);
		else
			r->nfiles++;
	} else if (field_is(f[0], fl[0], "files_dropped")) {
		if (nf != 2 || (*seen & 2) ||
		    parse_num(f[1], fl[1], UINT64_MAX, &v) < 0)
			FAIL("bad files_dropped line");
		*seen |= 2;
		r->files_dropped = sat_add(r->files_dropped, v);
	} else if (field_is(f[0], fl[0], "engine")) {
		if (nf != 3 || (*seen & 4) ||
		    parse_num(f[1], fl[1], UINT64_MAX, &r->signatures) < 0 ||
		    parse_num(f[2], fl[2], UINT64_MAX, &r->generation) < 0)
			FAIL("bad engine line");
		*seen |= 4;
	} else if (field_is(f[0], fl[0], "error")) {
		FAIL("bad error line");
	} else if (field_is(f[0], fl[0], "MSCN1"))
		FAIL("second first line");
	return 0;
}

int
scan_reply_parse(
    const char *buf, size_t len, struct scan_reply *r, const char **why)
{
	const char *p, *end, *nl;
	unsigned    seen = 0;
	size_t	    i;
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	memset(r, 0, sizeof(*r));
	if (len == 0 || len > SCAN_REPLY_MAX)
		FAIL("bad length");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c != '\n' && (c < 0x20 || c > 0x7e))
			FAIL("bad byte");
	}
	if (buf[len - 1] != '\n')
		FAIL("no final newline");
	end = buf + len;
	for (p = buf; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == p)
			FAIL("empty line");
		if (p == buf) {
			if (parse_first(p, (size_t)(nl - p), r, why) < 0)
				return -1;
		} else if (parse_line(p, (size_t)(nl - p), r, &seen, why) < 0)
			return -1;
	}
	if ((r->status == SCAN_INFECTED) != (r->nvirus > 0))
		FAIL("status disagrees with virus lines");
	if (r->status == SCAN_INCOMPLETE && r->nlimit == 0)
		FAIL("incomplete without a limit line");
	if (r->status == SCAN_CLEAN && r->nlimit > 0)
		FAIL("clean with a limit line");
	return 0;
}
