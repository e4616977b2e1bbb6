/*
 * mbox.c - mbox splitting (RFC 4155 section 2 and appendix A: messages
 * start at "From " lines; mboxrd quotes every ">*From " body line with
 * one more '>', which mbox_unquote() removes).
 *
 * A separator is recognised only at the start of the buffer or after a
 * line end, and only when it looks like one (sender and an asctime date,
 * mbox_from_line()), so an unquoted "From here on..." in a body of an
 * mboxo file does not split a message. CRLF and LF line ends both work.
 * Linear in the buffer; pure; thread-safe.
 */
#include <string.h>

#include "mbox.h"

static int
digit(char c)
{
	return c >= '0' && c <= '9';
}

int
mbox_from_line(const char *s, size_t n)
{
	size_t i;
	int    time = 0, year = 0;

	if (n < 5 || memcmp(s, "From ", 5) != 0)
		return 0;
	/* A sender: at least one non-space byte after "From ". */
	if (n == 5 || s[5] == ' ' || s[5] == '\t')
		return 0;
	for (i = 5; i < n && s[i] != ' ' && s[i] != '\t'; i++)
		;
	for (; i < n; i++) {
		if (i + 5 <= n && digit(s[i]) && digit(s[i + 1]) &&
		    s[i + 2] == ':' && digit(s[i + 3]) && digit(s[i + 4]))
			time = 1;
		if (i + 4 <= n && (i == 0 || !digit(s[i - 1])) && digit(s[i]) &&
		    digit(s[i + 1]) && digit(s[i + 2]) && digit(s[i + 3]) &&
		    (i + 4 == n || !digit(s[i + 4])) &&
		    (s[i] == '1' || s[i] == '2'))
			year = 1;
	}
	return time && year;
}

/* Length of the line at p, without its LF or CR LF. */
static size_t
linelen(const char *p, const char *end, const char **next)
{
	const char *e = memchr(p, '\n', (size_t)(end - p));

	if (e == NULL) {
		*next = end;
		e = end;
	} else
		*next = e + 1;
	if (e > p && e[-1] == '\r')
		e--;
	return (size_t)(e - p);
}

int
mbox_is_mbox(const char *buf, size_t len)
{
	const char *next;

	return mbox_from_line(buf, linelen(buf, buf + len, &next));
}

void
mbox_init(struct mbox_iter *it, const char *buf, size_t len)
{
	it->p = buf;
	it->end = buf + len;
}

int
mbox_next(struct mbox_iter *it, const char **msg, size_t *len)
{
	const char *p, *next, *start, *last_end;
	size_t	    n;
	int	    blank;

	for (;;) {
		if (it->p >= it->end)
			return 0;
		p = it->p;
		n = linelen(p, it->end, &next);
		start = mbox_from_line(p, n) ? next : p;
		/* Find the next separator line. */
		last_end = start;
		blank = 1;
		for (p = start; p < it->end; p = next) {
			n = linelen(p, it->end, &next);
			if (mbox_from_line(p, n))
				break;
			if (n > 0)
				blank = 0;
			last_end = next;
		}
		it->p = p;
		*msg = start;
		*len = (size_t)(last_end - start);
		/* The empty line before a separator belongs to the mbox. */
		if (p<it->end && * len> 0 && start[*len - 1] == '\n') {
			size_t k = *len - 1;

			if (k > 0 && start[k - 1] == '\r')
				k--;
			if (k == 0 || start[k - 1] == '\n')
				*len = k;
		}
		if (!blank)
			return 1;
	}
}

size_t
mbox_unquote(const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len, *e;
	size_t	    o = 0, q, n;

	while (p < end) {
		e = memchr(p, '\n', (size_t)(end - p));
		e = e == NULL ? end : e + 1;
		n = (size_t)(e - p);
		for (q = 0; q < n && p[q] == '>'; q++)
			;
		if (q > 0 && n - q >= 5 && memcmp(p + q, "From ", 5) == 0) {
			p++;
			n--;
		}
		memcpy(out + o, p, n);
		o += n;
		p = e;
	}
	return o;
}
