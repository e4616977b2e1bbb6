/*
 * bayes_tok.c - tokens of a message for the Bayesian classifier, in the
 * spirit of SpamAssassin's Bayes tokenizer (Mail::SpamAssassin::Plugin::
 * Bayes, tokenize() and friends); our own code, not a translation.
 *
 * Regions and their tokens:
 *   - body: the Subject, then every text part's decoded text (HTML as
 *     rendered). Bytes outside [A-Za-z0-9,@*!_'"$. -] and outside whole
 *     UTF-8 sequences become spaces; "..." and "--" between words split;
 *     a Title-case word opening a line or a sentence is lower-cased; words
 *     are trimmed of -'". at both ends and kept from 3 bytes on. Mail
 *     addresses give U*local and D*domain for every parent domain;
 *     host-like words give UD:host for every parent. Words over 15 bytes
 *     become their 3- and 4-byte UTF-8 characters ("u8:") when they have
 *     any, else "sk:" and their first 7 characters. Mixed-case or
 *     punctuated words are also counted lower-cased and stripped.
 *   - invisible text (mv_part.invisible: hidden, faint or tiny HTML
 *     text, which the body region does not have), the same way but each
 *     token prefixed "I*:", as SpamAssassin's invisible-text tokens.
 *   - URIs found in the message (msgview.uris), the same way (long ones
 *     kept whole).
 *   - header fields, each word prefixed "H<name>:" (SpamAssassin's
 *     short names: *F From, *M Message-ID, *r Received ...): every field
 *     but the noise list below (site- and list-specific, spam-filter
 *     stamps, Date, Subject which is in the body) and the caller's
 *     ignore list; only the last two Received fields (the sender's end)
 *     that were not added by a local host; addresses in From/To/Cc/...
 *     become N*phrase-word, U*, D*; Message-ID split on punctuation;
 *     Received without dates, ids and with IPv4 addresses cut to /24
 *     (plus ip*full); Content-Type with the boundary's hex digits masked;
 *     signature-like fields (DKIM-Signature, X-Face ...) only as present
 *     (H<name>:present).
 *     Message-ID/References/In-Reply-To also as *MI, From/To/Cc as *Ad,
 *     X-Mailer/User-Agent as *UA.
 *   - non-text parts: MIME:type and MIME:ext:extension of the file name.
 *
 * Stop words (SpamAssassin's bayes_stopword_*) and MIME part digests are
 * not used. Bounded: per-region token caps (bayes_tok.h), tokens cut at
 * BAYES_TOKEN_MAX bytes, and the work is linear in the view's size (which
 * msgview bounds).
 *
 * Pure; thread-safe.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bayes_tok.h"
#include "msgview.h"
#include "util.h"

#define MAX_TOKEN_LENGTH 15 /* SpamAssassin's bayes_max_token_length */
#define REGION_HDR	 0
#define REGION_BODY	 1
#define REGION_URI	 2

struct tok {
	const struct bayes_tokopts *o;
	int (*cb)(void *, const char *, size_t);
	void  *arg;
	size_t left; /* tokens the current region may still emit */
	int    stop;
	char  *buf; /* scratch: a normalised line */
	size_t bufsz;
	char  *val; /* scratch: a pre-chewed header value */
	size_t valsz;
};

/* ------------------------------------------------------ emitting */

static void
emit2(struct tok *t, const char *pfx, const char *a, size_t alen)
{
	char   tok[BAYES_TOKEN_MAX];
	size_t pl = strlen(pfx);

	if (t->stop || alen == 0) /* "!!!" stripped leaves nothing */
		return;
	if (t->left == 0) {
		t->stop = 1;
		return;
	}
	t->left--;
	if (pl > sizeof(tok) / 2)
		pl = sizeof(tok) / 2;
	if (alen > sizeof(tok) - pl)
		alen = sizeof(tok) - pl;
	memcpy(tok, pfx, pl);
	memcpy(tok + pl, a, alen);
	if (t->cb(t->arg, tok, pl + alen) != 0)
		t->stop = 2;
}

static int
is_word(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

static int
is_upper(int c)
{
	return c >= 'A' && c <= 'Z';
}

/* Length of the UTF-8 sequence at p (1 for a lone byte); SA's classes. */
static size_t
u8len(const unsigned char *p, size_t n)
{
	if (p[0] >= 0xC0 && p[0] <= 0xDF && n >= 2 && (p[1] & 0xC0) == 0x80)
		return 2;
	if (p[0] >= 0xE0 && p[0] <= 0xEF && n >= 3 && (p[1] & 0xC0) == 0x80 &&
	    (p[2] & 0xC0) == 0x80)
		return 3;
	if (p[0] >= 0xF0 && p[0] <= 0xF4 && n >= 4 && (p[1] & 0xC0) == 0x80 &&
	    (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80)
		return 4;
	return 1;
}

/* U*local D*domain D*parent... of an address "local@domain". */
static void
mail_addr(struct tok *t, const char *pfx, const char *s, size_t n)
{
	const char *at = NULL, *d;
	char	    p2[64];
	size_t	    i;

	for (i = n; i > 0; i--)
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	if (at == NULL || at == s || at == s + n - 1)
		return;
	strfmt(p2, sizeof(p2), "%sU*", pfx);
	emit2(t, p2, s, (size_t)(at - s));
	strfmt(p2, sizeof(p2), "%sD*", pfx);
	for (d = at + 1; d < s + n;) {
		emit2(t, p2, d, (size_t)(s + n - d));
		while (d < s + n && *d != '.')
			d++;
		if (d < s + n - 1)
			d++;
		else
			break;
	}
}

static int
keep_char(int c)
{
	return is_word(c) || c == ':' || c == '*' || (c & 0x80);
}

/* One whitespace-free word of a line (SA's per-token loop). */
static void
word(struct tok *t, const char *pfx, char *w, size_t n, int region)
{
	static const char trim[] = "-'\".,";
	char		  low[BAYES_TOKEN_MAX], strip[BAYES_TOKEN_MAX];
	char		  sk[BAYES_TOKEN_MAX], p2[64];
	size_t		  i, j, l, nc;
	int		  at = 0, dot = 0, upper = 0, punct = 0;

	while (n > 0 && w[0] != '\0' && strchr(trim, w[0]) != NULL) {
		w++;
		n--;
	}
	while (n > 0 && w[n - 1] != '\0' && strchr(trim, w[n - 1]) != NULL)
		n--;
	if (n < 3)
		return;
	if (n > BAYES_TOKEN_MAX - 3)
		n = BAYES_TOKEN_MAX - 3;
	for (i = 0; i < n; i++) {
		if (w[i] == '@' && i > 0 && i + 1 < n)
			at = 1;
		if (w[i] == '.' && i > 0 && i + 1 < n &&
		    ((w[i + 1] | 0x20) >= 'a' && (w[i + 1] | 0x20) <= 'z'))
			dot = 1;
	}
	if (region != REGION_HDR) {
		if (at)
			mail_addr(t, "", w, n);
		else if (dot) {
			emit2(t, "UD:", w, n);
			for (i = 0; i < n; i++)
				if (w[i] == '.' && i + 1 < n)
					emit2(t, "UD:", w + i + 1, n - i - 1);
		}
	}
	if (n > MAX_TOKEN_LENGTH && memchr(w, '*', n) == NULL) {
		/* Long runs of multi-byte characters: the characters. */
		for (i = 0; i + 1 < n; i++)
			if (((unsigned char)w[i] & 0xC0) == 0x80 &&
			    ((unsigned char)w[i + 1] & 0xC0) == 0x80)
				break;
		if (i + 1 < n) {
			strfmt(p2, sizeof(p2), "%su8:", pfx);
			for (i = 0, j = 0; i < n; i += l) {
				l = u8len((const unsigned char *)w + i, n - i);
				if (l >= 3) {
					emit2(t, p2, w + i, l);
					j++;
				}
			}
			if (j > 0)
				return;
		}
		if (region != REGION_URI) {
			/* sk: and the first 7 characters, if 2+ bytes
			   follow them. */
			for (i = 0, nc = 0; i < n && nc < 7; nc++)
				i += u8len((const unsigned char *)w + i, n - i);
			if (n - i >= 2) {
				memcpy(sk, "sk:", 3);
				memcpy(sk + 3, w, i);
				w = sk;
				n = i + 3;
			}
		}
	}
	if (region != REGION_HDR) {
		for (i = 0; i < n; i++) {
			upper |= is_upper((unsigned char)w[i]);
			punct |= !keep_char((unsigned char)w[i]);
		}
		if (punct) {
			for (i = j = 0; i < n; i++)
				if (keep_char((unsigned char)w[i]))
					strip[j++] = w[i];
			emit2(t, pfx, strip, j);
		}
		if (upper) {
			for (i = 0; i < n; i++)
				low[i] = (char)ascii_lower((unsigned char)w[i]);
			emit2(t, pfx, low, n);
			if (punct) {
				for (i = j = 0; i < n; i++)
					if (keep_char((unsigned char)low[i]))
						strip[j++] = low[i];
				emit2(t, pfx, strip, j);
			}
		}
	}
	emit2(t, pfx, w, n);
}

static void
scratch(char **b, size_t *sz, size_t need)
{
	if (*sz < need) {
		*sz = need + need / 2 + 64;
		*b = xrealloc(*b, *sz);
	}
}

/*
 * One line (or value) of text: normalise the bytes, split, and hand each
 * word to word(). Line ends inside are spaces.
 */
static int
line_sol(struct tok *t, const char *pfx, const char *s, size_t n, int region,
    int sol)
{
	const unsigned char *p = (const unsigned char *)s;
	char		    *b;
	size_t		     i, o, l, st, k;

	scratch(&t->buf, &t->bufsz, 3 * n + 2);
	b = t->buf;
	for (i = o = 0; i < n;) {
		unsigned char c = p[i];

		if (c < 0x80) {
			if (is_word(c) || strchr(",@*!'\"$. -", c) != NULL)
				b[o++] = (char)c;
			else
				b[o++] = c == '\n' ? '\n' : ' ';
			i++;
			continue;
		}
		l = u8len(p + i, n - i);
		if (l > 1 || c >= 0xA1) {
			memcpy(b + o, p + i, l);
			o += l;
		} else
			b[o++] = ' ';
		i += l;
	}
	b[o] = '\0';
	/* Split "word...word" and "word--word", keeping the separator. */
	for (i = 1; i + 1 < o; i++) {
		if ((b[i] == '.' || b[i] == '-') &&
		    is_word((unsigned char)b[i - 1])) {
			for (k = i; k < o && b[k] == b[i] && k - i < 7; k++)
				;
			l = k - i;
			if (k < o && is_word((unsigned char)b[k]) &&
			    ((b[i] == '.' && l >= 3 && l <= 6) ||
				(b[i] == '-' && l >= 2 && l <= 6))) {
				memmove(b + k + 2, b + k, o - k + 1);
				memmove(b + i + 1, b + i, l);
				b[i] = ' ';
				b[i + l + 1] = ' ';
				o += 2;
				i = k + 1;
			}
		}
	}
	/* Words; Title case at the start of a paragraph or sentence
	   lowered. */
	for (i = 0; i < o && !t->stop;) {
		while (i < o && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t')) {
			if (b[i] == '\n')
				sol = 1;
			i++;
		}
		if (i >= o)
			break;
		st = i;
		while (i < o && b[i] != ' ' && b[i] != '\n' && b[i] != '\t')
			i++;
		if (region != REGION_HDR && sol && i - st >= 2 &&
		    is_upper((unsigned char)b[st])) {
			for (k = st + 1;
			     k < i && !is_upper((unsigned char)b[k]); k++)
				;
			if (k == i)
				b[st] = (char)ascii_lower((unsigned char)b[st]);
		}
		sol = b[i - 1] == '.';
		word(t, pfx, b + st, i - st, region);
	}
	return sol;
}

static void
line(struct tok *t, const char *pfx, const char *s, size_t n, int region)
{
	(void)line_sol(t, pfx, s, n, region, 1);
}

/*
 * Text with line ends, line by line. As SpamAssassin (which joins the
 * lines of a paragraph), a line continues its paragraph: the Title-case
 * rule applies at a paragraph's start (after an empty line) or a
 * sentence's, not at every line wrapped.
 */
static void
text(struct tok *t, const char *pfx, const char *s, size_t n, int region)
{
	const char *e, *q;
	int	    sol = 1, blank;

	while (n > 0 && !t->stop) {
		e = memchr(s, '\n', n);
		if (e == NULL)
			e = s + n;
		for (q = s, blank = 1; q < e && blank; q++)
			blank = *q == ' ' || *q == '\t' || *q == '\r';
		if (blank)
			sol = 1;
		else
			sol = line_sol(t, pfx, s, (size_t)(e - s), region, sol);
		if (e == s + n)
			break;
		n -= (size_t)(e - s) + 1;
		s = e + 1;
	}
}

/* ------------------------------------------------------ header fields */

/* Fields that say nothing about the sender, or that a list/site adds. */
static const char *const ignored_exact[] = {
	"Sender",
	"X-Sender",
	"Delivered-To",
	"Delivery-Date",
	"Envelope-To",
	"X-Envelope-To",
	"X-MIME-Autoconverted",
	"X-Converted-To-Plain-Text",
	"Subject",
	"Date",
	"X-List",
	"Mailing-List",
	"X-Mailing-List",
	"X-Unsub",
	"X-Unsubscribe",
	"X-Mailman-Version",
	"X-BeenThere",
	"X-Loop",
	"Mail-Followup-To",
	"X-eGroups-Return",
	"X-eGroups-From",
	"X-MDMailing-List",
	"X-XEmacs-List",
	"X-Sympa-To",
	"Resent-From",
	"Resent-To",
	"Resent-Date",
	"X-Resent-From",
	"X-Resent-To",
	"X-Resent-Date",
	"Original-From",
	"Original-To",
	"Original-Date",
	"X-Original-From",
	"X-Original-To",
	"X-Original-Date",
	"X-MailScanner",
	"X-MailScanner-SpamCheck",
	"X-Spam",
	"X-Spam-Status",
	"X-Spam-Level",
	"X-Spam-Flag",
	"X-Spam-Report",
	"X-Spam-Hits",
	"X-Spam-Score",
	"X-Spam-Checker-Version",
	"X-Antispam",
	"X-RBL-Warning",
	"X-MDaemon-Deliver-To",
	"X-Virus-Scanned",
	"X-Mass-Check-Id",
	"X-Pyzor",
	"X-Filtered-By",
	"X-Scanned-By",
	"X-Scanner",
	"X-AP-Spam-Score",
	"X-AP-Spam-Status",
	"X-RIPE-Spam-Status",
	"X-SMTPD",
	"Spam-Apparently-To",
	"X-Spam-Apparently-To",
	"SPAM",
	"X-Perlmx-Spam",
	"X-Bogosity",
	"Content-Class",
	"Thread-Index",
	"Thread-Topic",
	"X-OriginalArrivalTime",
	"Status",
	"X-Status",
	"X-Flags",
	"X-Keywords",
	"Replied",
	"Forwarded",
	"Lines",
	"Content-Length",
	"X-UID",
	"X-UIDL",
	"X-IMAPbase",
	"X-Gnus-Mail-Source",
	"Xref",
	"Authentication-Results",
};
static const char *const ignored_prefix[] = { "List-", "X-List-", "X-SpamCop-",
	"X-Bugzilla-", "X-VM-", "X-DCC-", "X-Moat-" };
static const char *const presence_only[] = { "X-Face", "X-PGP-Fingerprint",
	"X-PGP-Key-Fingerprint", "X-GPG-Fingerprint", "X-GnuPG-Fingerprint",
	"X-GnuPG-Key-Fingerprint", "X-GPG-Key-Fingerprint",
	"X-Gnu-PG-Fingerprint", "DKIM-Signature", "DomainKey-Signature",
	"X-Google-DKIM-Signature", "ARC-Message-Signature", "ARC-Seal",
	"Autocrypt" };
static const struct {
	const char *name, *short_name;
} compress[] = { { "Message-Id", "*m" }, { "Message-ID", "*M" },
	{ "Received", "*r" }, { "User-Agent", "*u" }, { "References", "*f" },
	{ "In-Reply-To", "*i" }, { "From", "*F" }, { "Reply-To", "*R" },
	{ "Return-Path", "*p" }, { "Return-path", "*rp" }, { "X-Mailer", "*x" },
	{ "X-Authentication-Warning", "*a" }, { "Organization", "*o" },
	{ "Organisation", "*o" }, { "Content-Type", "*ct" },
	{ "Content-Disposition", "*cd" },
	{ "Content-Transfer-Encoding", "*ce" } };

static int
in_list(const char *name, const char *const *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ascii_strcasecmp(name, l[i]) == 0)
			return 1;
	return 0;
}

static int
ignored(const struct tok *t, const char *name)
{
	size_t i;

	if (in_list(name, ignored_exact, nitems(ignored_exact)))
		return 1;
	for (i = 0; i < nitems(ignored_prefix); i++)
		if (ascii_strncasecmp(name, ignored_prefix[i],
			strlen(ignored_prefix[i])) == 0)
			return 1;
	return t->o != NULL &&
	    in_list(name, t->o->ignore_headers, t->o->nignore);
}

/* Append to the scratch value. */
static void
vput(struct tok *t, size_t *o, const char *s, size_t n)
{
	scratch(&t->val, &t->valsz, *o + n + 2);
	memcpy(t->val + *o, s, n);
	*o += n;
	t->val[*o] = '\0';
}

static void
addr_tokens(struct tok *t, size_t *o, const char *a, size_t n)
{
	const char *at = memchr(a, '@', n), *d;

	if (at == NULL || at == a || at == a + n - 1)
		return;
	vput(t, o, " U*", 3);
	vput(t, o, a, (size_t)(at - a));
	for (d = at + 1; d < a + n;) {
		vput(t, o, " D*", 3);
		vput(t, o, d, (size_t)(a + n - d));
		while (d < a + n && *d != '.')
			d++;
		if (d >= a + n - 1)
			break;
		d++;
	}
}

/*
 * An address list (From, To, Cc ...): N*word for the display names'
 * words, U* and D* for the addresses. Commas split outside quotes, angle
 * brackets and comments; an address is in <> or is the word with '@'.
 */
static void
chew_addrs(struct tok *t, const char *v)
{
	const char *s = v, *e, *lt, *gt, *w;
	size_t	    o = 0, n;
	int	    q, depth;

	vput(t, &o, "", 0);
	while (*s != '\0') {
		for (e = s, q = 0, depth = 0; *e != '\0'; e++) {
			if (*e == '"')
				q = !q;
			else if (!q && *e == '(')
				depth++;
			else if (!q && *e == ')' && depth > 0)
				depth--;
			else if (!q && depth == 0 && *e == ',')
				break;
		}
		n = (size_t)(e - s);
		lt = memchr(s, '<', n);
		gt = lt != NULL ? memchr(lt, '>', (size_t)(e - lt)) : NULL;
		if (lt != NULL && gt != NULL) {
			/* Display name words. */
			for (w = s; w < lt;) {
				while (w < lt &&
				    (*w == ' ' || *w == '\t' || *w == '"'))
					w++;
				if (w >= lt)
					break;
				vput(t, &o, " N*", 3);
				while (w < lt && *w != ' ' && *w != '\t' &&
				    *w != '"')
					vput(t, &o, w++, 1);
			}
			addr_tokens(t, &o, lt + 1, (size_t)(gt - lt - 1));
		} else {
			for (w = s; w < e;) {
				const char *ws;

				while (w < e && (*w == ' ' || *w == '\t'))
					w++;
				ws = w;
				while (w < e && *w != ' ' && *w != '\t')
					w++;
				if (memchr(ws, '@', (size_t)(w - ws)) != NULL)
					addr_tokens(
					    t, &o, ws, (size_t)(w - ws));
				else if (w > ws) {
					vput(t, &o, " N*", 3);
					vput(t, &o, ws, (size_t)(w - ws));
				}
			}
		}
		s = *e == ',' ? e + 1 : e;
	}
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/*
 * Received: the part before ';' (the date follows it), without "id X"
 * and noise words; a.b.c.d becomes a.b.c (a.b.c.d for 10/8 and
 * 192.168/16) plus ip*a.b.c.d.
 */
static void
chew_received(struct tok *t, const char *v)
{
	static const char *const noise[] = { "with", "from", "for", "SMTP",
		"ESMTP", "by" };
	const char		*semi = strrchr(v, ';'), *end, *w, *we;
	size_t			 o = 0, i;
	int			 skip_next = 0;

	end = semi != NULL ? semi : v + strlen(v);
	vput(t, &o, "", 0);
	for (w = v; w < end;) {
		while (w < end && (*w == ' ' || *w == '\t'))
			w++;
		for (we = w; we < end && *we != ' ' && *we != '\t'; we++)
			;
		if (we == w)
			break;
		if (skip_next) {
			skip_next = 0;
		} else if (we - w == 2 && memcmp(w, "id", 2) == 0) {
			skip_next = 1;
		} else {
			int drop = 0;

			for (i = 0; i < nitems(noise); i++)
				if (strlen(noise[i]) == (size_t)(we - w) &&
				    memcmp(noise[i], w, (size_t)(we - w)) == 0)
					drop = 1;
			if (!drop) {
				/* An IPv4 address anywhere in the word. */
				const char *p, *q, *ipend = we;
				unsigned    oct[4], k;

				vput(t, &o, " ", 1);
				for (p = w; p < we; p++) {
					if (!is_digit((unsigned char)*p) ||
					    (p > w &&
						is_digit((unsigned char)p[-1])))
						continue;
					for (q = p, k = 0; k < 4; k++) {
						const char *ds = q;

						oct[k] = 0;
						while (q < we &&
						    is_digit(
							(unsigned char)*q) &&
						    q - ds < 3)
							oct[k] = oct[k] * 10 +
							    (unsigned)(*q++ -
								'0');
						if (q == ds ||
						    (k < 3 &&
							(q >= we || *q != '.')))
							break;
						if (k < 3)
							q++;
					}
					if (k == 4 &&
					    (q >= we ||
						!is_digit((unsigned char)*q))) {
						ipend = q;
						break;
					}
				}
				if (p < we) {
					char ip[64];
					int  priv = oct[0] == 10 ||
					    (oct[0] == 192 && oct[1] == 168);

					vput(t, &o, w, (size_t)(p - w));
					if (priv)
						strfmt(ip, sizeof(ip),
						    "%u.%u.%u.%u "
						    "ip*%u.%u.%u.%u ",
						    oct[0], oct[1], oct[2],
						    oct[3], oct[0], oct[1],
						    oct[2], oct[3]);
					else
						strfmt(ip, sizeof(ip),
						    "%u.%u.%u ip*%u.%u.%u.%u ",
						    oct[0], oct[1], oct[2],
						    oct[0], oct[1], oct[2],
						    oct[3]);
					vput(t, &o, ip, strlen(ip));
					vput(
					    t, &o, ipend, (size_t)(we - ipend));
				} else
					vput(t, &o, w, (size_t)(we - w));
			}
		}
		w = we;
	}
}

static int
is_uhex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int
is_lhex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int
all_of(const char *s, size_t n, int (*f)(int))
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!f((unsigned char)s[i]))
			return 0;
	return 1;
}

static int
is_alnum(int c)
{
	return is_word(c) && c != '_';
}

/*
 * Message-ID and friends: the mailer's format where it is a known one,
 * then split on everything but [_A-Za-z0-9]. Outlook Express
 * <XXXXxxxxxxxx$YYYYxxxx$ZZZZZZZZ@host> keeps its stable pieces as
 * OEAxxxx OEBxxxx OECxxxxxxxx; Exim's <xxxxxxx-xxxxxx-0x@ and Sendmail's
 * <YYYYMMDDhhmmss.HEX@ unique parts are dropped (one-off tokens).
 */
static void
chew_msgid(struct tok *t, const char *v)
{
	size_t	    o = 0, i, n = strlen(v);
	const char *lt = strchr(v, '<'), *at;
	char	    oe[64];

	if (lt != NULL && (at = strchr(lt, '@')) != NULL) {
		const char *id = lt + 1;
		size_t	    len = (size_t)(at - id);

		if (len == 30 && id[12] == '$' && id[21] == '$' &&
		    all_of(id, 12, is_lhex) && all_of(id + 13, 8, is_lhex) &&
		    all_of(id + 22, 8, is_lhex)) {
			strfmt(oe, sizeof(oe), " OEA%.4s OEB%.4s OEC%.8s ", id,
			    id + 13, id + 22);
			vput(t, &o, v, (size_t)(lt - v));
			vput(t, &o, oe, strlen(oe));
			vput(t, &o, at + 1, strlen(at + 1));
			v = NULL;
		} else if (len == 17 && id[7] == '-' && id[14] == '-' &&
		    id[15] == '0' && all_of(id, 7, is_alnum) &&
		    all_of(id + 8, 6, is_alnum) &&
		    is_alnum((unsigned char)id[16])) {
			vput(t, &o, v, (size_t)(lt - v));
			vput(t, &o, at + 1, strlen(at + 1));
			v = NULL;
		} else if (len >= 25 && len <= 27 && id[0] == '2' &&
		    id[1] == '0' && id[14] == '.' && all_of(id, 14, is_digit) &&
		    all_of(id + 15, len - 15, is_uhex)) {
			vput(t, &o, v, (size_t)(lt - v));
			vput(t, &o, at + 1, strlen(at + 1));
			v = NULL;
		}
	}
	if (v != NULL)
		vput(t, &o, v, n);
	for (i = 0; i < o; i++)
		if (!is_word((unsigned char)t->val[i]))
			t->val[i] = ' ';
}

/* Content-Type: no "text"/"charset" words; the boundary's shape only. */
static void
chew_ctype(struct tok *t, const char *v)
{
	const char *b = NULL, *p;
	size_t	    o = 0, i, bs = 0, be = 0;

	for (p = v; *p != '\0'; p++)
		if (ascii_strncasecmp(p, "boundary=", 9) == 0) {
			b = p;
			break;
		}
	if (b != NULL && (b[9] == '"' || b[9] == '\'') &&
	    (p = strchr(b + 10, b[9])) != NULL) {
		bs = (size_t)(b - v);
		be = (size_t)(p - v) + 1;
	} else
		b = NULL;
	if (b != NULL) {
		vput(t, &o, v, bs);
		vput(t, &o, " ", 1);
		vput(t, &o, v + be, strlen(v + be));
		for (p = v + bs + 10; p < v + be - 1; p++) {
			char c = *p;

			if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			    (c >= 'A' && c <= 'F'))
				c = 'H';
			if (c == '-' || c == '_' || c == '.' || c == '=') {
				vput(t, &o, " ", 1);
				vput(t, &o, &c, 1);
				vput(t, &o, " ", 1);
			} else
				vput(t, &o, &c, 1);
		}
	} else
		vput(t, &o, v, strlen(v));
	for (i = 0; i + 4 <= o; i++) {
		if ((i == 0 || !is_word((unsigned char)t->val[i - 1])) &&
		    memcmp(t->val + i, "text", 4) == 0 &&
		    !is_word((unsigned char)t->val[i + 4]))
			memset(t->val + i, ' ', 4);
		if (i + 7 <= o &&
		    (i == 0 || !is_word((unsigned char)t->val[i - 1])) &&
		    memcmp(t->val + i, "charset", 7) == 0 &&
		    !is_word((unsigned char)t->val[i + 7]))
			memset(t->val + i, ' ', 7);
	}
}

static int
has_prefix_ci(const char *s, const char *p)
{
	return ascii_strncasecmp(s, p, strlen(p)) == 0;
}

static int
is_addr_header(const char *name)
{
	static const char *const names[] = { "Return-Path", "From", "To", "Cc",
		"Reply-To", "Errors-To", "Mail-Followup-To", "Sender" };
	const char		*n = name;

	if (has_prefix_ci(n, "X-"))
		n += 2;
	else if (has_prefix_ci(n, "Resent-"))
		n += 7;
	return in_list(n, names, nitems(names));
}

/* "by HOST" of a Received field is one of ours? */
static int
received_local(const struct tok *t, const char *v)
{
	const char *p, *h;
	size_t	    i, n;

	if (t->o == NULL || t->o->nlocal == 0)
		return 0;
	for (p = v; (p = strstr(p, "by")) != NULL; p += 2) {
		if ((p > v && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n' &&
			p[-1] != ')') ||
		    (p[2] != ' ' && p[2] != '\t'))
			continue;
		for (h = p + 2; *h == ' ' || *h == '\t'; h++)
			;
		for (n = 0; h[n] != '\0' && h[n] != ' ' && h[n] != '\t' &&
		     h[n] != ';' && h[n] != '(';
		     n++)
			;
		for (i = 0; i < t->o->nlocal; i++)
			if (strlen(t->o->local_hosts[i]) == n &&
			    ascii_strncasecmp(h, t->o->local_hosts[i], n) == 0)
				return 1;
		return 0;
	}
	return 0;
}

static void
header(struct tok *t, const char *name, const char *value)
{
	char	    pfx[80];
	const char *v = value, *pn = name;
	size_t	    i;

	if (in_list(name, presence_only, nitems(presence_only)))
		v = "present"; /* SA writes "1", which its 3-byte minimum
				  then drops */
	else if (ascii_strcasecmp(name, "Message-Id") == 0 ||
	    ascii_strcasecmp(name, "X-Message-Id") == 0 ||
	    ascii_strcasecmp(name, "Resent-Message-Id") == 0) {
		chew_msgid(t, value);
		v = t->val;
	} else if (is_addr_header(name)) {
		chew_addrs(t, value);
		v = t->val;
	} else if (strcmp(name, "Received") == 0) {
		chew_received(t, value);
		v = t->val;
	} else if (strcmp(name, "Content-Type") == 0) {
		chew_ctype(t, value);
		v = t->val;
	} else if (strcmp(name, "MIME-Version") == 0 &&
	    strstr(value, "1.0") != NULL)
		v = "";
	for (i = 0; i < nitems(compress); i++)
		if (strcmp(name, compress[i].name) == 0)
			pn = compress[i].short_name;
	strfmt(pfx, sizeof(pfx), "H%s:", pn);
	line(t, pfx, v, strlen(v), REGION_HDR);
	if (ascii_strcasecmp(name, "In-Reply-To") == 0 ||
	    ascii_strcasecmp(name, "References") == 0 ||
	    ascii_strcasecmp(name, "Message-ID") == 0)
		line(t, "H*MI:", v, strlen(v), REGION_HDR);
	if (ascii_strcasecmp(name, "From") == 0 ||
	    ascii_strcasecmp(name, "To") == 0 ||
	    ascii_strcasecmp(name, "Cc") == 0)
		line(t, "H*Ad:", v, strlen(v), REGION_HDR);
	if (ascii_strcasecmp(name, "X-Mailer") == 0 ||
	    ascii_strcasecmp(name, "User-Agent") == 0)
		line(t, "H*UA:", v, strlen(v), REGION_HDR);
}

/*
 * The relay a Received field describes, as SpamAssassin's parsed relays
 * (X-Spam-Relays-*): "from" name (HELO), the names and IPv4 addresses in
 * the comment after it (reverse DNS, address), "by" name; tokens
 * "H*RU:word". Every hop counts, not only the last two: the list servers
 * and gateways a message passed are good evidence. This site's own
 * hops are in every message, so they weigh nothing.
 */
static void
relay(struct tok *t, const char *v)
{
	const char *p = v, *w, *we, *semi = strrchr(v, ';');
	const char *end = semi != NULL ? semi : v + strlen(v);
	size_t	    o = 0;
	int	    want = 0; /* 1: the word after from/by */
	int	    depth = 0;

	vput(t, &o, "", 0);
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
			p++;
		w = p;
		while (p < end && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		we = p;
		if (we == w)
			break;
		if (*w == '(')
			depth++;
		if (depth == 0 && !want &&
		    ((we - w == 4 && memcmp(w, "from", 4) == 0) ||
			(we - w == 2 && memcmp(w, "by", 2) == 0))) {
			want = 1;
			continue;
		}
		if (want || depth > 0) {
			const char *a = w, *b = we, *q;
			int	    dot = 0;

			while (a < b && strchr("([<", *a) != NULL)
				a++;
			while (b > a && strchr(")]>,", b[-1]) != NULL)
				b--;
			for (q = a; q < b; q++)
				dot |= *q == '.';
			/* Host names and addresses, not "with ESMTP id X". */
			if (want || (dot && b > a && strchr(a, '@') != a)) {
				vput(t, &o, " ", 1);
				vput(t, &o, a, (size_t)(b - a));
			}
			want = 0;
		}
		if (we[-1] == ')' && depth > 0)
			depth--;
	}
	line(t, "H*RU:", t->val, o, REGION_HDR);
}

static void
headers(struct tok *t, const struct msgview *mv)
{
	size_t i, rc[2], nrc = 0;

	/* The two bottom-most Received fields not added here. */
	for (i = mv->nheaders; i > 0 && nrc < 2; i--) {
		const struct mv_header *h = &mv->headers[i - 1];

		if (ascii_strcasecmp(h->name, "Received") == 0 &&
		    !received_local(t, h->decoded))
			rc[nrc++] = i - 1;
	}
	for (i = 0; i < mv->nheaders && !t->stop; i++) {
		const struct mv_header *h = &mv->headers[i];

		if (ascii_strcasecmp(h->name, "Received") == 0) {
			/* All hops: the one into this site names the
			   client, the most trustworthy of them. */
			if (!ignored(t, "Received"))
				relay(t, h->decoded);
			continue;
		}
		if (ignored(t, h->name))
			continue;
		header(t, h->name, h->decoded);
	}
	while (nrc > 0 && !t->stop && !ignored(t, "Received")) {
		nrc--;
		header(t, "Received", mv->headers[rc[nrc]].decoded);
	}
}

/* The first field `name` of the message header (msgview_header()'s job,
   kept here so the tokenizer needs only the view's layout). */
static const struct mv_header *
first_header(const struct msgview *mv, const char *name)
{
	size_t i;

	for (i = 0; i < mv->nheaders; i++)
		if (ascii_strcasecmp(mv->headers[i].name, name) == 0)
			return &mv->headers[i];
	return NULL;
}

void
bayes_tokenize(const struct msgview *mv, const struct bayes_tokopts *o,
    int (*cb)(void *, const char *, size_t), void		    *arg)
{
	struct tok		t;
	const struct mv_header *subj;
	size_t			i;

	memset(&t, 0, sizeof(t));
	t.o = o;
	t.cb = cb;
	t.arg = arg;

	t.left = BAYES_BODY_TOKENS;
	if ((subj = first_header(mv, "Subject")) != NULL)
		text(&t, "", subj->decoded, strlen(subj->decoded), REGION_BODY);
	for (i = 0; i < mv->nparts && !t.stop; i++) {
		const struct mv_part *p = &mv->parts[i];

		if ((p->flags & MV_PART_TEXT) && p->text != NULL)
			text(&t, "", p->text, p->textlen, REGION_BODY);
	}
	if (t.stop == 1)
		t.stop = 0; /* the next region has its own budget */

	/* SpamAssassin's invisible-text tokens: I*:word */
	t.left = BAYES_BODY_TOKENS;
	for (i = 0; i < mv->nparts && !t.stop; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (p->invisiblelen > 0)
			text(&t, "I*:", p->invisible, p->invisiblelen,
			    REGION_BODY);
	}
	if (t.stop == 1)
		t.stop = 0;

	t.left = BAYES_URI_TOKENS;
	for (i = 0; i < mv->nuris && !t.stop; i++)
		line(&t, "", mv->uris[i].uri, strlen(mv->uris[i].uri),
		    REGION_URI);
	if (t.stop == 1)
		t.stop = 0;

	t.left = BAYES_HEADER_TOKENS;
	for (i = 1; i < mv->nparts && !t.stop; i++) {
		const struct mv_part *p = &mv->parts[i];
		const char	     *dot;

		if (p->flags & (MV_PART_TEXT | MV_PART_MULTIPART))
			continue;
		emit2(&t, "MIME:", p->type, strlen(p->type));
		if (p->filename != NULL &&
		    (dot = strrchr(p->filename, '.')) != NULL &&
		    dot[1] != '\0') {
			char   ext[16];
			size_t k;

			for (k = 0; k + 1 < sizeof(ext) && dot[1 + k] != '\0';
			     k++)
				ext[k] = (char)ascii_lower(
				    (unsigned char)dot[1 + k]);
			emit2(&t, "MIME:ext:", ext, k);
		}
	}
	headers(&t, mv);
	free(t.buf);
	free(t.val);
}
