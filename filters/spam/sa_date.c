/*
 * sa_date.c - dates as SpamAssassin reads them (RFC 5322 §3.3 and what
 * mailers really write): sa_date_parse() follows the steps of
 * Mail::SpamAssassin::Util::parse_rfc822_date (day-month-year anywhere,
 * then the first hh:mm[:ss], then a numeric or named zone; impossible
 * fields clamped rather than refused), and sa_received_date() finds the
 * date-like run HeaderEval picks out of a Received field. The date
 * evals (check_for_shifted_date, check_outlook_message_id) read dates
 * through these so that moat and SpamAssassin agree on odd dates too.
 *
 * Bounded: the text read is capped at SA_DATE_MAX bytes. Pure functions,
 * thread-safe.
 */
#include <string.h>
#include <time.h>

#include "sa_int.h"
#include "util.h"

#define SA_DATE_MAX  4096
#define SA_DATE_TOKS 512

static const struct {
	const char *name;
	int	    off; /* minutes east of UTC */
} zones[] = {
	{ "UT", 0 },
	{ "UTC", 0 },
	{ "NDT", -150 },
	{ "AST", -240 },
	{ "ADT", -180 },
	{ "NST", -210 },
	{ "EST", -300 },
	{ "EDT", -240 },
	{ "CST", -360 },
	{ "CDT", -300 },
	{ "MST", -420 },
	{ "MDT", -360 },
	{ "PST", -480 },
	{ "PDT", -420 },
	{ "HST", -600 },
	{ "AKST", -540 },
	{ "AKDT", -480 },
	{ "HADT", -540 },
	{ "HAST", -600 },
	{ "GMT", 0 },
	{ "BST", 60 },
	{ "IST", 60 },
	{ "WET", 0 },
	{ "WEST", 60 },
	{ "CET", 60 },
	{ "CEST", 120 },
	{ "EET", 120 },
	{ "EEST", 180 },
	{ "MSK", 180 },
	{ "MSD", 240 },
	{ "MET", 60 },
	{ "MEZ", 60 },
	{ "MEST", 120 },
	{ "MESZ", 120 },
	{ "BRST", -120 },
	{ "BRT", -180 },
	{ "AEST", 600 },
	{ "AEDT", 660 },
	{ "ACST", 570 },
	{ "ACDT", 630 },
	{ "AWST", 480 },
	{ "NZST", 720 },
	{ "NZDT", 780 },
	{ "JST", 540 },
	{ "KST", 540 },
	{ "HKT", 480 },
	{ "SGT", 480 },
	{ "PHT", 480 },
	{ "IDT", 180 },
};

struct tok {
	const char *s;
	size_t	    n;
};

static int
isws(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v' || ch == ',';
}

static int
alldigits(const struct tok *t, size_t min, size_t max)
{
	size_t i;

	if (t->n < min || t->n > max)
		return 0;
	for (i = 0; i < t->n; i++)
		if (t->s[i] < '0' || t->s[i] > '9')
			return 0;
	return 1;
}

static long
num(const char *s, size_t n)
{
	long   v = 0;
	size_t i;

	for (i = 0; i < n && v < 100000000L; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* 1..12 for a month name token, else 0 */
static int
month(const struct tok *t)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	char		  m[3];
	int		  i;

	if (t->n != 3)
		return 0;
	for (i = 0; i < 3; i++)
		m[i] = (char)ascii_lower((unsigned char)t->s[i]);
	for (i = 0; i < 12; i++)
		if (memcmp(months + 3 * i, m, 3) == 0)
			return i + 1;
	return 0;
}

static void
drop(struct tok *t, size_t *n, size_t at, size_t k)
{
	memmove(t + at, t + at + k, (*n - at - k) * sizeof(*t));
	*n -= k;
}

/* hh:mm or hh:mm:ss, the hour of one or two digits */
static int
clock_tok(const struct tok *t, int *hh, int *mm, int *ss)
{
	const char *s = t->s;
	size_t	    h = 0;

	while (h < t->n && h < 3 && s[h] >= '0' && s[h] <= '9')
		h++;
	if (h < 1 || h > 2 || h >= t->n || s[h] != ':')
		return 0;
	if (t->n != h + 3 && t->n != h + 6)
		return 0;
	if (!(s[h + 1] >= '0' && s[h + 1] <= '9' && s[h + 2] >= '0' &&
		s[h + 2] <= '9'))
		return 0;
	*ss = 0;
	if (t->n == h + 6) {
		if (s[h + 3] != ':' || s[h + 4] < '0' || s[h + 4] > '9' ||
		    s[h + 5] < '0' || s[h + 5] > '9')
			return 0;
		*ss = (int)num(s + h + 4, 2);
	}
	*hh = (int)num(s, h);
	*mm = (int)num(s + h + 1, 2);
	return 1;
}

static int
wordch(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_';
}

/*
 * The first \b[A-Z]{2,4}(-DST)?\b of the remaining tokens (joined by
 * one space): its offset in minutes if it names a known zone; 0 when
 * there is none or it is unknown (SpamAssassin's "-0000").
 */
static int
named_zone(const struct tok *t, size_t n)
{
	size_t k, i, j, m;

	for (k = 0; k < n; k++) {
		const char *s = t[k].s;

		for (i = 0; i < t[k].n; i++) {
			if (i > 0 && wordch((unsigned char)s[i - 1]))
				continue;
			for (j = i; j < t[k].n && j - i < 4 && s[j] >= 'A' &&
			     s[j] <= 'Z';
			     j++)
				;
			/* longest first, as the greedy regex */
			for (m = j; m >= i + 2; m--) {
				size_t e = m, z;

				if (e + 4 <= t[k].n &&
				    memcmp(s + e, "-DST", 4) == 0 &&
				    (e + 4 == t[k].n ||
					!wordch((unsigned char)s[e + 4])))
					e += 4;
				else if (e < t[k].n &&
				    wordch((unsigned char)s[e]))
					continue;
				for (z = 0; z < nitems(zones); z++)
					if (strlen(zones[z].name) == e - i &&
					    memcmp(zones[z].name, s + i,
						e - i) == 0)
						return zones[z].off;
				return 0;
			}
		}
	}
	return 0;
}

static int
leap(long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

long long
sa_date_parse(const char *date, size_t len)
{
	struct tok t[SA_DATE_TOKS];
	size_t	   n = 0, i, k;
	long	   dd = 0, yyyy = 0, mon = 0, maxdd;
	int	   hh = 0, mm = 0, ss = 0, have_year = 0, off = 0, sign = 0;
	struct tm  tm;
	long long  tt;

	if (date == NULL)
		return -1;
	if (len > SA_DATE_MAX)
		len = SA_DATE_MAX;
	for (i = 0; i < len && n < SA_DATE_TOKS;) {
		while (i < len && isws((unsigned char)date[i]))
			i++;
		if (i == len)
			break;
		t[n].s = date + i;
		while (i < len && !isws((unsigned char)date[i]))
			i++;
		t[n].n = (size_t)(date + i - t[n].s);
		n++;
	}
	/* D Mon YYYY | Mon D hh:mm:ss YYYY | D Mon YY[Y] */
	for (k = 0; k + 2 < n; k++)
		if (alldigits(&t[k], 1, 20) && (mon = month(&t[k + 1])) &&
		    alldigits(&t[k + 2], 4, 4)) {
			dd = num(t[k].s, t[k].n);
			yyyy = num(t[k + 2].s, 4);
			drop(t, &n, k, 3);
			have_year = 1;
			break;
		}
	for (k = 0; !have_year && k + 3 < n; k++) {
		const struct tok *c = &t[k + 2];
		size_t		  j, colons = 0, digits = 0;
		int		  ok = 1;

		if (!(mon = month(&t[k])) || !alldigits(&t[k + 1], 1, 20) ||
		    !alldigits(&t[k + 3], 4, 4))
			continue;
		/* \d+:\d+:\d+ */
		for (j = 0; j < c->n && ok; j++) {
			if (c->s[j] == ':') {
				ok = digits > 0;
				colons++;
				digits = 0;
			} else if (c->s[j] >= '0' && c->s[j] <= '9')
				digits++;
			else
				ok = 0;
		}
		if (!ok || colons != 2 || digits == 0)
			continue;
		dd = num(t[k + 1].s, t[k + 1].n);
		yyyy = num(t[k + 3].s, 4);
		drop(t, &n, k, 4);
		have_year = 1;
	}
	for (k = 0; !have_year && k + 2 < n; k++)
		if (alldigits(&t[k], 1, 20) && (mon = month(&t[k + 1])) &&
		    alldigits(&t[k + 2], 2, 3)) {
			dd = num(t[k].s, t[k].n);
			yyyy = num(t[k + 2].s, t[k + 2].n);
			if (t[k + 2].n == 2 && yyyy < 50)
				yyyy += 2000;
			else
				yyyy += 1900;
			drop(t, &n, k, 3);
			have_year = 1;
		}
	if (!have_year)
		return -1;
	for (k = 0; k < n; k++)
		if (clock_tok(&t[k], &hh, &mm, &ss)) {
			drop(t, &n, k, 1);
			break;
		}
	for (k = 0; k < n; k++)
		if (t[k].n == 5 && (t[k].s[0] == '+' || t[k].s[0] == '-')) {
			struct tok z = { t[k].s + 1, 4 };

			if (!alldigits(&z, 4, 4))
				continue;
			off = (int)(num(z.s, 2) * 60 + num(z.s + 2, 2));
			sign = t[k].s[0] == '-' ? -1 : 1;
			break;
		}
	if (sign == 0) {
		off = named_zone(t, n);
		sign = off < 0 ? -1 : 1;
		off = off < 0 ? -off : off;
	}
	if (ss > 59)
		ss = 59;
	if (mm > 59)
		mm = 59;
	if (hh > 23)
		hh = 23;
	maxdd = 31;
	if (mon == 4 || mon == 6 || mon == 9 || mon == 11)
		maxdd = 30;
	else if (mon == 2)
		maxdd = leap(yyyy) ? 29 : 28;
	if (dd > maxdd) {
		dd = 1;
		if (++mon > 12) {
			mon = 1;
			yyyy++;
		}
	}
	if (dd < 1) /* Time::Local refuses day 0 */
		return -1;
	if (yyyy > 2037)
		yyyy = 2037;
	else if (yyyy < 1970)
		yyyy = 1970;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)yyyy - 1900;
	tm.tm_mon = (int)mon - 1;
	tm.tm_mday = (int)dd;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	tt = (long long)timegm(&tm);
	if (sign < 0)
		tt += (long long)off * 60;
	else if (tt < (long long)off * 60)
		tt = 0;
	else
		tt -= (long long)off * 60;
	return tt;
}

static size_t
digits_at(const char *s, size_t i, size_t len)
{
	size_t j = i;

	while (j < len && s[j] >= '0' && s[j] <= '9')
		j++;
	return j - i;
}

/* Perl's \s */
static int
respace(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v';
}

/* \d+ ' ' \S\S\S ' ' \d+ ' ' \d+:\d+:\d+ ' ' \S+ from j: its end or 0 */
static size_t
date_run(const char *s, size_t j, size_t len)
{
	size_t d, k;

	if ((d = digits_at(s, j, len)) == 0)
		return 0;
	j += d;
	if (j + 4 >= len || s[j] != ' ' || s[j + 4] != ' ')
		return 0;
	for (k = 1; k <= 3; k++)
		if (respace((unsigned char)s[j + k]))
			return 0;
	j += 5;
	if ((d = digits_at(s, j, len)) == 0)
		return 0;
	j += d;
	if (j >= len || s[j] != ' ')
		return 0;
	j++;
	for (k = 0; k < 3; k++) {
		if ((d = digits_at(s, j, len)) == 0)
			return 0;
		j += d;
		if (k < 2) {
			if (j >= len || s[j] != ':')
				return 0;
			j++;
		}
	}
	if (j >= len || s[j] != ' ')
		return 0;
	k = ++j;
	while (j < len && !respace((unsigned char)s[j]))
		j++;
	return j > k ? j : 0;
}

int
sa_received_date(const char *s, size_t len, size_t *start, size_t *end)
{
	size_t i, e;

	if (len > SA_DATE_MAX)
		len = SA_DATE_MAX;
	for (i = 0; i < len; i++) {
		if (!respace((unsigned char)s[i]))
			continue;
		/* \s .? \d+ ...: one skipped character first (greedy) */
		if (i + 1 < len && s[i + 1] != '\n' &&
		    (e = date_run(s, i + 2, len)) != 0) {
			*start = i;
			*end = e;
			return 1;
		}
		if ((e = date_run(s, i + 1, len)) != 0) {
			*start = i;
			*end = e;
			return 1;
		}
	}
	return 0;
}
