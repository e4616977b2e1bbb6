/*
 * sa_eval.c - SpamAssassin's "eval:" rules that moat runs natively: one
 * table from the eval's name to a C function (sa_evalfn in sa_int.h)
 * with its arguments parsed at load. The authentication evals read
 * moat's own SPF, DKIM, DMARC and Bayes results (struct sa_facts); the
 * MIME and HTML ones read the message view; the header ones read header
 * values as header rules see them (sa_get_header()).
 *
 * To add one: write `static int eval_x(struct sa_ctx *, const struct
 * sa_rule *, const struct sa_evalargs *)` returning > 0 when the rule
 * fires, and add a row {name, fn, min args, max args} to evals[] below
 * (sorted by name is not required). Evals named in the table with a NULL
 * function are network tests left to the DNSBL module (sa_net.c).
 *
 * The semantics follow the Perl of Mail::SpamAssassin 4.0.1's plugins
 * (SPF.pm, DKIM.pm, DMARC.pm, Bayes.pm, HeaderEval.pm, MIMEEval.pm,
 * HTMLEval.pm, BodyEval.pm, FreeMail.pm) as far as moat's view of the
 * message carries the same facts; differences are noted per function.
 *
 * Thread-safe: functions only read the ruleset and the message, and
 * write to the caller's scratch.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sa_int.h"
#include "sa_scratch.h"
#include "util.h"

/* ------------------------------------------------------------ arguments */

void
sa_eval_args_free(struct sa_evalargs *a)
{
	unsigned i;

	for (i = 0; i < a->n; i++)
		free(a->s[i]);
	a->n = 0;
}

/* "(arg, 'arg', "arg")" -> unquoted strings; 0 or -1 */
int
sa_eval_parse_args(
    const char *s, struct sa_evalargs *a, char *why, size_t whylen)
{
	const char *p = s + 1, *st, *e;
	char	    q;

	a->n = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ')')
			break;
		if (*p == '\0') {
			strfmt(why, whylen, "eval: arguments not closed");
			goto bad;
		}
		if (a->n == SA_MAXARGS) {
			strfmt(why, whylen, "eval: too many arguments");
			goto bad;
		}
		if (*p == '\'' || *p == '"') {
			q = *p++;
			st = p;
			while (*p != '\0' && *p != q) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				p++;
			}
			if (*p != q) {
				strfmt(why, whylen, "eval: unclosed quote");
				goto bad;
			}
			e = p++;
		} else {
			st = p;
			while (*p != '\0' && *p != ',' && *p != ')')
				p++;
			e = p;
			while (e > st && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
		}
		a->s[a->n++] = xstrndup(st, (size_t)(e - st));
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
		else if (*p != ')') {
			strfmt(why, whylen, "eval: ',' or ')' expected");
			goto bad;
		}
	}
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0') {
		strfmt(why, whylen, "eval: text after the arguments");
		goto bad;
	}
	return 0;
bad:
	sa_eval_args_free(a);
	return -1;
}

/* -------------------------------------------------------------- helpers */

static double
argnum(const struct sa_evalargs *a, unsigned i, double def)
{
	char  *end;
	double v;

	if (i >= a->n)
		return def;
	v = strtod(a->s[i], &end);
	return end == a->s[i] ? def : v;
}

static const struct sa_facts *
facts(struct sa_ctx *c)
{
	static const struct sa_facts none;

	return c->facts ? c->facts : &none;
}

static const char *
header(struct sa_ctx *c, const char *name, unsigned mods)
{
	size_t len;

	return sa_get_header(c, name, mods, &len);
}

static size_t
header_count(struct sa_ctx *c, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < c->mv->nheaders; i++)
		if (ascii_strcasecmp(c->mv->headers[i].name, name) == 0)
			n++;
	return n;
}

/* domain part of the first address in s (lower case) into out */
static int
addr_domain(const char *s, char *out, size_t outlen)
{
	const char *at, *e;
	size_t	    n, i;

	if (s == NULL || (at = strrchr(s, '@')) == NULL)
		return -1;
	/* the first line only (one address per line from :addr) */
	e = strchr(at, '\n');
	n = e ? (size_t)(e - at - 1) : strlen(at + 1);
	if (n == 0 || n >= outlen)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (char)ascii_lower((unsigned char)at[1 + i]);
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------ authentication */

static int
eval_spf(
    struct sa_ctx *c, const struct sa_rule *r, enum sa_authres want, int helo)
{
	(void)r;
	return (helo ? facts(c)->spf_helo : facts(c)->spf_mailfrom) == want;
}

#define SPF_EVAL(fn, res, helo)                                                \
	static int fn(struct sa_ctx *c, const struct sa_rule *r,               \
	    const struct sa_evalargs *a)                                       \
	{                                                                      \
		(void)a;                                                       \
		return eval_spf(c, r, res, helo);                              \
	}
SPF_EVAL(eval_spf_pass, SA_AUTH_PASS, 0)
SPF_EVAL(eval_spf_fail, SA_AUTH_FAIL, 0)
SPF_EVAL(eval_spf_softfail, SA_AUTH_SOFTFAIL, 0)
SPF_EVAL(eval_spf_neutral, SA_AUTH_NEUTRAL, 0)
SPF_EVAL(eval_spf_permerror, SA_AUTH_PERMERROR, 0)
SPF_EVAL(eval_spf_temperror, SA_AUTH_TEMPERROR, 0)
SPF_EVAL(eval_spf_helo_pass, SA_AUTH_PASS, 1)
SPF_EVAL(eval_spf_helo_fail, SA_AUTH_FAIL, 1)
SPF_EVAL(eval_spf_helo_softfail, SA_AUTH_SOFTFAIL, 1)
SPF_EVAL(eval_spf_helo_neutral, SA_AUTH_NEUTRAL, 1)
SPF_EVAL(eval_spf_helo_permerror, SA_AUTH_PERMERROR, 1)
SPF_EVAL(eval_spf_helo_temperror, SA_AUTH_TEMPERROR, 1)

static int
eval_spf_none(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return c->facts != NULL && c->facts->spf_checked &&
	    c->facts->spf_mailfrom == SA_AUTH_NONE &&
	    c->facts->mail_from != NULL;
}

static int
eval_spf_helo_none(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return c->facts != NULL && c->facts->spf_helo_checked &&
	    c->facts->spf_helo == SA_AUTH_NONE && c->facts->helo != NULL &&
	    !c->facts->client_trusted;
}

/* DKIM.pm check_dkim_signed/valid([domain...]): domains not supported:
   with arguments the rule does not fire (we know no signing domains). */
static int
eval_dkim_signed(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	return a->n == 0 && facts(c)->dkim_signed;
}

static int
eval_dkim_valid(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	return a->n == 0 && facts(c)->dkim_valid;
}

static int
eval_dkim_valid_author(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	return a->n == 0 && facts(c)->dkim_valid_author;
}

/* DKIM.pm check_dkim_dependable: the signatures were verified (no
   verifier, as SpamAssassin without its network tests: not dependable) */
static int
eval_dkim_dependable(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return c->facts != NULL && c->facts->dkim_checked;
}

/* DMARC.pm: check_dmarc_pass/reject/quarantine/none/missing */
static int
eval_dmarc_pass(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return facts(c)->dmarc == SA_AUTH_PASS;
}

static int
eval_dmarc_fail_policy(struct sa_ctx *c, enum sa_dmarc_policy p)
{
	return facts(c)->dmarc == SA_AUTH_FAIL && facts(c)->dmarc_policy == p;
}

static int
eval_dmarc_reject(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return eval_dmarc_fail_policy(c, SA_DMARC_POLICY_REJECT);
}

static int
eval_dmarc_quarantine(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return eval_dmarc_fail_policy(c, SA_DMARC_POLICY_QUARANTINE);
}

static int
eval_dmarc_none(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return eval_dmarc_fail_policy(c, SA_DMARC_POLICY_P_NONE);
}

static int
eval_dmarc_missing(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return c->facts != NULL &&
	    c->facts->dmarc_policy == SA_DMARC_POLICY_NONE;
}

/* Bayes.pm check_bayes(min, max): min <= p < max (max 1.00 inclusive) */
static int
eval_bayes(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	double p, lo = argnum(a, 0, 0), hi = argnum(a, 1, 1);

	(void)r;
	if (!facts(c)->has_bayes)
		return 0;
	p = facts(c)->bayes;
	return p >= lo && (p < hi || (hi >= 1 && p <= hi));
}

/* ------------------------------------------------------------- headers */

/* HeaderEval check_for_missing_to_header: no To and no Apparently-To */
static int
eval_missing_to(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *to = header(c, "To", 0);

	(void)r;
	(void)a;
	if (to != NULL && *to != '\0' && strcmp(to, "\n") != 0)
		return 0;
	to = header(c, "Apparently-To", 0);
	return to == NULL || *to == '\0' || strcmp(to, "\n") == 0;
}

/* HeaderEval check_header_count_range(header, min, max) */
static int
eval_header_count_range(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	size_t n = header_count(c, a->s[0]);

	(void)r;
	return (double)n >= argnum(a, 1, 0) && (double)n <= argnum(a, 2, 1e9);
}

/* strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) */
static int
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp, k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return 0;
		for (k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 &&
			(cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += need + 1;
	}
	return 1;
}

/*
 * HeaderEval check_illegal_chars(header, ratio, count) on the raw value:
 * control and 8-bit bytes, unless the value is valid UTF-8 without
 * controls; one of the Subject's cent/pound/(R) signs is exempt.
 */
static int
eval_illegal_chars(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const unsigned char *v;
	size_t		     len, i, bad = 0, high = 0, ctl = 0, exempt = 0;
	int		     subj = ascii_strcasecmp(a->s[0], "Subject") == 0;

	(void)r;
	v = (const unsigned char *)sa_get_header(c, a->s[0], SA_HM_RAW, &len);
	if (v == NULL || len == 0)
		return 0;
	for (i = 0; i < len &&
	     (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r');
	     i++)
		;
	if (i == len)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = v[i];

		if (ch >= 0x80)
			high++;
		if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') ||
		    ch == 0x7f)
			ctl++;
		if (ch <= 0x08 || ch == 0x0b || ch == 0x0c ||
		    (ch >= 0x0e && ch <= 0x1f) || ch >= 0x7f)
			bad++;
		if (ch == 0xa2 || ch == 0xa3 || ch == 0xae)
			exempt++;
	}
	if (high > 0 && ctl == 0 && valid_utf8(v, len))
		return 0;
	if (bad > 0 && subj && exempt == 1)
		bad--;
	return (double)bad / (double)len >= argnum(a, 1, 0) &&
	    (double)bad >= argnum(a, 2, 0);
}

/* HeaderEval check_for_unique_subject_id: not implemented (heuristic) */

/* HeaderEval check_equal_from_domains: From and EnvelopeFrom domains
   differ (by registrable domain: approximated as the last two labels) */
static const char *
last_labels(const char *d, int n)
{
	const char *p = d + strlen(d);
	int	    dots = 0;

	while (p > d) {
		p--;
		if (*p == '.' && ++dots == n)
			return p + 1;
	}
	return d;
}

static int
eval_equal_from_domains(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char fd[256], ed[256];

	(void)r;
	(void)a;
	if (addr_domain(header(c, "From", SA_HM_ADDR), fd, sizeof(fd)) < 0 ||
	    addr_domain(header(c, "EnvelopeFrom", SA_HM_ADDR), ed, sizeof(ed)) <
		0)
		return 0;
	return strcmp(last_labels(fd, 2), last_labels(ed, 2)) != 0;
}

/* FreeMail check_freemail_from([regex]): a From address is freemail
   (sa_freemail.c: freemail_domains with "*" wildcards, not a role or
   list address) and matches regex */
static int
eval_freemail_from(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	return sa_freemail_header(c, "From", a->n > 0 ? a->s[0] : NULL);
}

/* FreeMail check_freemail_replyto(['replyto'|'reply']): sa_freemail.c */
static int
eval_freemail_replyto(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	if (a->n > 0 && strcmp(a->s[0], "reply") != 0 &&
	    strcmp(a->s[0], "replyto") != 0)
		return 0;
	return sa_freemail_replyto(
	    c, a->n > 0 && strcmp(a->s[0], "reply") == 0);
}

/* ---------------------------------------------------------- MIME/HTML */

static int
has_part(const struct msgview *mv, const char *type)
{
	size_t i;

	for (i = 1; i < mv->nparts; i++)
		if (strcmp(mv->parts[i].type, type) == 0)
			return 1;
	return mv->nparts > 0 && strcmp(mv->parts[0].type, type) == 0;
}

/* MIMEEval check_for_mime_html: a text/html part */
static int
eval_mime_html(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return c->mv->html.parts > 0 || has_part(c->mv, "text/html");
}

/* check_for_mime_html_only: HTML and no text/plain alternative */
static int
eval_mime_html_only(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return eval_mime_html(c, r, a) && !has_part(c->mv, "text/plain");
}

/*
 * HTMLEval html_test(name): the HTML facts SpamAssassin's parser records
 * that the view carries; other names (form_action_mailto, font_face_bad,
 * font_invalid_color, ...) are not recorded by the view and never fire.
 */
static int
eval_html_test(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct mv_html *h = &c->mv->html;
	const char	     *t = a->s[0];

	(void)r;
	if (strcmp(t, "html") == 0)
		return h->parts > 0 && h->tags > 0;
	if (strcmp(t, "embeds") == 0)
		return h->embeds > 0;
	if (strcmp(t, "font_low_contrast") == 0)
		return h->font_low_contrast > 0;
	if (strcmp(t, "font_invalid_color") == 0)
		return h->font_invalid_color > 0;
	if (strcmp(t, "tiny_font") == 0)
		return h->font_tiny > 0;
	return 0;
}

/* A per-message pattern (built from message data): no JIT, whose
   compiling would cost more than the one match it is used for. */
pcre2_code *
sa_compile_once(const char *pat, uint32_t opts)
{
	int	   err;
	PCRE2_SIZE off;

	return pcre2_compile(
	    (PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
}

/* HTMLEval html_tag_exists(tag): a start or end tag of that name */
static int
eval_html_tag_exists(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_html *h = sa_html_facts(c);
	size_t		      i;

	(void)r;
	for (i = 0; i < h->ntags; i++)
		if (ascii_strcasecmp(h->tags[i].name, a->s[0]) == 0)
			return 1;
	return 0;
}

/* "<op> <number>" as Perl would compare v with it */
static int
compare_expr(double v, const char *e)
{
	char   op[3] = { 0, 0, 0 };
	double x;
	size_t n = 0;

	while (*e == ' ')
		e++;
	while (n < 2 && strchr("<>=!", *e) != NULL && *e != '\0')
		op[n++] = *e++;
	x = strtod(e, NULL);
	if (strcmp(op, "==") == 0)
		return v == x;
	if (strcmp(op, "!=") == 0)
		return v != x;
	if (strcmp(op, "<") == 0)
		return v < x;
	if (strcmp(op, "<=") == 0)
		return v <= x;
	if (strcmp(op, ">") == 0)
		return v > x;
	if (strcmp(op, ">=") == 0)
		return v >= x;
	return 0;
}

/* HTMLEval html_tag_balance(tag, "!= 0"): a part where the tag's
   starts minus ends (never below 0) compares so */
static int
eval_html_tag_balance(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_html *h = sa_html_facts(c);
	size_t		      i;

	(void)r;
	for (i = 0; i < h->ntags; i++)
		if (ascii_strcasecmp(h->tags[i].name, a->s[0]) == 0 &&
		    compare_expr(h->tags[i].inside, a->s[1]))
			return 1;
	return 0;
}

/* HTMLEval html_text_match(comment|anchor|title, regex) */
static int
eval_html_text_match(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_html  *h;
	const struct sa_hstrs *k;
	pcre2_code	      *re;
	size_t		       i;
	int		       kind, hit = 0;

	(void)r;
	if (strcmp(a->s[0], "comment") == 0)
		kind = SA_HT_COMMENT;
	else if (strcmp(a->s[0], "anchor") == 0)
		kind = SA_HT_ANCHOR;
	else if (strcmp(a->s[0], "title") == 0)
		kind = SA_HT_TITLE;
	else
		return 0;
	h = sa_html_facts(c);
	k = &h->strs[kind];
	if (k->n == 0 || (re = sa_compile_once(a->s[1], 0)) == NULL)
		return 0;
	for (i = 0; i < k->n && !hit; i++)
		hit = pcre2_match(re, (PCRE2_SPTR)k->b.s + k->v[i].off,
			  k->v[i].len, 0, 0, c->md, c->sc->mc) >= 0;
	pcre2_code_free(re);
	return hit;
}

/*
 * HTMLEval html_title_subject_ratio(ratio): some <title> is more than
 * ratio times as long as the Subject (as PerMsgStatus get() gives it:
 * decoded, with its line end); no Subject, no hit. Lengths in bytes.
 */
static int
eval_html_title_subject_ratio(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview   *mv = c->mv;
	const struct mv_header *subj = NULL;
	const struct sa_hstrs  *k;
	double			ratio = argnum(a, 0, 0), slen;
	size_t			i;

	(void)r;
	for (i = 0; i < mv->nheaders && subj == NULL; i++)
		if (ascii_strcasecmp(mv->headers[i].name, "Subject") == 0)
			subj = &mv->headers[i];
	if (subj == NULL)
		return 0;
	slen = (double)strlen(subj->decoded) + 1;
	k = &sa_html_facts(c)->strs[SA_HT_TITLE];
	for (i = 0; i < k->n; i++)
		if ((double)k->v[i].len / slen > ratio)
			return 1;
	return 0;
}

/* HTMLEval html_image_only(min, max): <img> and HTML length in (min,max] */
static int
eval_html_image_only(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct mv_html *h = &c->mv->html;

	(void)r;
	return h->parts > 0 && h->images > 0 &&
	    (double)h->raw > argnum(a, 0, 0) &&
	    (double)h->raw <= argnum(a, 1, 0);
}

/* html_image_ratio(min, max): text bytes per pixel of image, (min,max] */
static int
eval_html_image_ratio(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct mv_html *h = &c->mv->html;
	double		      ratio;

	(void)r;
	if (h->image_area == 0)
		return 0;
	ratio = (double)h->text / (double)h->image_area;
	return ratio > argnum(a, 0, 0) && ratio <= argnum(a, 1, 0);
}

/* The HTML.pm result named t, from the view; -1 if the view lacks it. */
static double
html_value(struct sa_ctx *c, const char *t)
{
	const struct mv_html *h = &c->mv->html;

	if (h->parts == 0)
		return -1;
	if (strcmp(t, "length") == 0)
		return (double)h->raw;
	if (strcmp(t, "non_space_len") == 0)
		return (double)h->text;
	if (h->tags == 0)
		return -1;
	if (strcmp(t, "closed_extra_ratio") == 0) {
		const struct sa_html *sh = sa_html_facts(c);

		return sh->events ? (double)sh->closed_extra / sh->events : -1;
	}
	if (strcmp(t, "obfuscation_ratio") == 0)
		return (double)h->obfuscation / h->tags;
	if (strcmp(t, "bad_tag_ratio") == 0 ||
	    strcmp(t, "non_element_ratio") == 0)
		return (double)h->bad_tags / h->tags;
	return -1;
}

static double
bound(const struct sa_evalargs *a, unsigned i, double inf)
{
	if (i >= a->n || strcmp(a->s[i], "inf") == 0 ||
	    strcmp(a->s[i], "undef") == 0)
		return inf;
	if (strcmp(a->s[i], "-inf") == 0)
		return -inf;
	return argnum(a, i, inf);
}

/* HTMLEval html_range(test, min, max): min < value <= max */
static int
eval_html_range(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	double v = html_value(c, a->s[0]);

	(void)r;
	if (v < 0)
		return 0;
	return v > bound(a, 1, -1e300) && v <= bound(a, 2, 1e300);
}

/* HTMLEval html_eval(test, "< 384")-style comparisons */
static int
eval_html_eval(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	double	    v = html_value(c, a->s[0]), x;
	const char *e = a->s[1];
	char	   *end;

	(void)r;
	if (v < 0)
		return 0;
	while (*e == ' ')
		e++;
	if (strncmp(e, "<=", 2) == 0 || strncmp(e, ">=", 2) == 0 ||
	    strncmp(e, "==", 2) == 0 || strncmp(e, "!=", 2) == 0) {
		x = strtod(e + 2, &end);
		if (end == e + 2)
			return 0;
		switch (e[0]) {
		case '<':
			return v <= x;
		case '>':
			return v >= x;
		case '=':
			return v == x;
		default:
			return v != x;
		}
	}
	if (*e == '<' || *e == '>') {
		x = strtod(e + 1, &end);
		if (end == e + 1)
			return 0;
		return *e == '<' ? v < x : v > x;
	}
	return 0;
}

/* MIMEEval check_mime_multipart_ratio(min, max): text/plain bytes over
   text/html bytes of a multipart/alternative */
static int
eval_multipart_ratio(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview *mv = c->mv;
	size_t		      i, plain = 0, html = 0;
	double		      ratio;

	(void)r;
	if (!has_part(mv, "multipart/alternative"))
		return 0;
	for (i = 0; i < mv->nparts; i++) {
		if (strcmp(mv->parts[i].type, "text/plain") == 0)
			plain += mv->parts[i].textlen;
		else if (strcmp(mv->parts[i].type, "text/html") == 0)
			html += mv->parts[i].textlen;
	}
	if (html == 0)
		return 0;
	ratio = (double)plain / (double)html;
	return ratio >= argnum(a, 0, 0) && ratio < argnum(a, 1, 0);
}

/*
 * MIMEEval check_for_ascii_text_illegal: a text/plain part declared
 * US-ASCII (or with no charset) holding NUL or 8-bit bytes. SpamAssassin
 * reads the encoded lines; the view keeps the decoded text, the same
 * bytes when the part is not base64 or quoted-printable (a bare CR, the
 * third byte SpamAssassin looks for, does not survive the view's line
 * ends and is not checked).
 */
static int
eval_ascii_text_illegal(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview *mv = c->mv;
	size_t		      i, k;

	(void)r;
	(void)a;
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (strcmp(p->type, "text/plain") != 0 || p->text == NULL ||
		    (p->flags & MV_PART_MULTIPART) ||
		    (p->charset != NULL &&
			strcmp(p->charset, "us-ascii") != 0) ||
		    (p->encoding != NULL &&
			(strcmp(p->encoding, "base64") == 0 ||
			    strcmp(p->encoding, "quoted-printable") == 0)))
			continue;
		for (k = 0; k < p->textlen; k++)
			if ((unsigned char)p->text[k] >= 0x80 ||
			    p->text[k] == 0)
				return 1;
	}
	return 0;
}

/*
 * MIMEEval check_abundant_unicode_ratio(r): in text/plain parts sent
 * 7bit or 8bit, "&#xHHHH;" escapes (upper-case hex, as SpamAssassin
 * counts them) per other character is r or more.
 */
static int
eval_unicode_ratio(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview *mv = c->mv;
	size_t		      i, k, uni = 0, normal = 0;
	const char	     *q = a->s[0];

	(void)r;
	/* the ratio must read \d{0,3}\.\d{1,3} */
	for (k = 0; q[k] >= '0' && q[k] <= '9'; k++)
		;
	if (k > 3 || q[k] != '.' || strspn(q + k + 1, "0123456789") == 0 ||
	    strspn(q + k + 1, "0123456789") > 3 ||
	    q[k + 1 + strspn(q + k + 1, "0123456789")] != '\0')
		return 0;
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (strcmp(p->type, "text/plain") != 0 || p->text == NULL ||
		    (p->flags & MV_PART_MULTIPART) ||
		    (p->encoding != NULL && strcmp(p->encoding, "7bit") != 0 &&
			strcmp(p->encoding, "8bit") != 0))
			continue;
		for (k = 0; k < p->textlen; k++) {
			const char *t = p->text + k;

			if (k + 8 <= p->textlen && t[0] == '&' && t[1] == '#' &&
			    t[2] == 'x' &&
			    strspn(t + 3, "0123456789ABCDEF") >= 4 &&
			    t[7] == ';') {
				uni++;
				k += 7;
			} else
				normal++;
		}
	}
	return normal > 0 && (double)uni / (double)normal >= argnum(a, 0, 0);
}

/* MIMEEval check_base64_length / check_for_faraway_charset: not here */

/* BodyEval check_stock_info(min): stock-spam words in the body */
static int
eval_stock_info(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	static const char *const words[] = { "symbol:", "company:", "price:",
		"target:", "recommendation:", "shares outstanding",
		"current price", "long-term target", "short-term target" };
	const char		*body;
	size_t			 len, i, n = 0;

	(void)r;
	body = sa_body_text(c, &len);
	for (i = 0; i < nitems(words); i++)
		if (memmem(body, len, words[i], strlen(words[i])) != NULL)
			n++;
	return (double)n >= argnum(a, 0, 3);
}

/*
 * BodyEval tvd_vertical_words(min, max): over the body lines rules see
 * (the Subject first) longer than 5 bytes, the highest share of spaces,
 * as int(100 * spaces / other bytes), 100 when spaces are the majority;
 * min <= it < max (max 100 or more: 101). No such line: -1, no hit.
 * Text with almost no spaces is words run together or set vertically.
 */
static int
eval_tvd_vertical_words(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_scratch *sc;
	double			 max = argnum(a, 1, 0);
	long			 best = -1, pct;
	size_t			 len, i, k, spaces;

	(void)r;
	(void)sa_body_text(c, &len);
	sc = c->sc;
	for (i = 0; i < sc->bodyl.n; i++) {
		const char *l = sc->body.s + sc->bodyl.v[i].off;
		size_t	    n = sc->bodyl.v[i].len;

		if (n <= 5)
			continue;
		for (k = 0, spaces = 0; k < n; k++)
			spaces += l[k] == ' ';
		if (spaces > n - spaces || n == spaces)
			pct = 100;
		else
			pct = (long)(100 * spaces / (n - spaces));
		if (pct > best)
			best = pct;
	}
	if (max >= 100)
		max = 101;
	return (double)best >= argnum(a, 0, 0) && (double)best < max;
}

/* BodyEval check_body_length(max): the message body (its bytes as
   received, after the header) is at most max bytes */
static int
eval_body_length(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview *mv = c->mv;
	size_t body = mv->size > mv->hdrsize ? mv->size - mv->hdrsize : 0;

	(void)r;
	return (double)body <= argnum(a, 0, 0);
}

/* ---------------------------------------------------------- more headers */

/* the first value of the first of Resent-Date, Date that parses */
static long long
date_header_time(struct sa_ctx *c)
{
	static const char *const names[] = { "Resent-Date", "Date" };
	const struct msgview	*mv = c->mv;
	size_t			 i, j;
	long long		 t;

	for (j = 0; j < nitems(names); j++)
		for (i = 0; i < mv->nheaders; i++)
			if (ascii_strcasecmp(mv->headers[i].name, names[j]) ==
				0 &&
			    mv->headers[i].decoded[0] != '\0' &&
			    (t = sa_date_parse(mv->headers[i].decoded,
				 strlen(mv->headers[i].decoded))) >= 0)
				return t; /* (whitespace is all alike here) */
	return -1;
}

/* the time of one Received field's date-like run, -1 if none */
static long long
received_time(const char *v)
{
	size_t st, en;

	if (!sa_received_date(v, strlen(v), &st, &en))
		return -1;
	return sa_date_parse(v + st, en - st);
}

static int
wordc(unsigned char ch)
{
	return isalnum(ch) || ch == '_';
}

/* s has the word w (\bw) at p */
static int
word_at(const char *s, const char *p, const char *w)
{
	return (p == s || !wordc((unsigned char)p[-1])) &&
	    strncmp(p, w, strlen(w)) == 0;
}

/* "n digits" at *p: advances, 1 if any */
static int
skip_digits(const char **p)
{
	const char *q = *p;

	while (**p >= '0' && **p <= '9')
		(*p)++;
	return *p > q;
}

/* a fetchmail pass's first hop: \bfrom (localhost\s | (\S+ ){1,2}
   \S*\b127.0.0.1\b) or "qmail N invoked by uid N" */
static int
local_hop(const char *s)
{
	const char *p, *q;
	int	    k;

	for (p = s; (p = strstr(p, "from ")) != NULL; p++) {
		if (!word_at(s, p, "from "))
			continue;
		if (strncmp(p + 5, "localhost", 9) == 0 &&
		    isspace((unsigned char)p[14]))
			return 1;
		q = p + 5;
		for (k = 0; k < 2; k++) {
			const char *t = q, *h;

			while (*q != '\0' && !isspace((unsigned char)*q))
				q++;
			if (q == t || *q != ' ')
				break;
			q++;
			/* the next token holds 127.0.0.1 as a word */
			for (h = q; *h != '\0' && !isspace((unsigned char)*h);
			     h++)
				if (word_at(s, h, "127.0.0.1") &&
				    !wordc((unsigned char)h[9]))
					return 1;
		}
	}
	for (p = s; (p = strstr(p, "qmail ")) != NULL; p++) {
		q = p + 6;
		if (skip_digits(&q) &&
		    strncmp(q, " invoked by uid ", 16) == 0 && q[16] >= '0' &&
		    q[16] <= '9')
			return 1;
	}
	return 0;
}

/* \bby localhost with \w+ \(fetchmail-[\d.]+ */
static int
fetchmail_hop(const char *s)
{
	const char *p, *q;

	for (p = s; (p = strstr(p, "by localhost with ")) != NULL; p++) {
		if (!word_at(s, p, "by "))
			continue;
		q = p + 18;
		if (!wordc((unsigned char)*q))
			continue;
		while (wordc((unsigned char)*q))
			q++;
		if (strncmp(q, " (fetchmail-", 12) == 0 &&
		    ((q[12] >= '0' && q[12] <= '9') || q[12] == '.'))
			return 1;
	}
	return 0;
}

/*
 * HeaderEval's date_diff: Date minus each Received time, the Received
 * fields written by a local fetchmail pass (a "from localhost" or
 * "127.0.0.1" hop followed by "by localhost with ... (fetchmail-") left
 * out, the last (oldest) dropped if equal, the difference with the
 * smallest magnitude; 0 when either side is missing.
 */
static long long
date_diff(struct sa_ctx *c)
{
	const struct msgview *mv = c->mv;
	const char	     *rcvd[64];
	long long	      date, best = 0, dd[64], t;
	size_t		      i, n = 0, nr = 0, skip = 0;
	int		      found = 0;

	if ((date = date_header_time(c)) < 0)
		return 0;
	for (i = 0; i < mv->nheaders && nr < nitems(rcvd); i++)
		if (ascii_strcasecmp(mv->headers[i].name, "Received") == 0 &&
		    strspn(mv->headers[i].decoded, " \t\r\n") <
			strlen(mv->headers[i].decoded))
			rcvd[nr++] = sa_header_value(c, &mv->headers[i]);
	if (nr > 1 && local_hop(rcvd[0]) && fetchmail_hop(rcvd[1]))
		skip = 2;
	else if (nr > 0 && !local_hop(rcvd[0]) && fetchmail_hop(rcvd[0]))
		skip = 1;
	for (i = skip; i < nr; i++)
		if ((t = received_time(rcvd[i])) >= 0)
			dd[n++] = date - t;
	if (n > 1 && dd[n - 1] == 0)
		n--;
	for (i = 0; i < n; i++) {
		long long a = dd[i] < 0 ? -dd[i] : dd[i];

		if (!found || a < (best < 0 ? -best : best)) {
			best = dd[i];
			found = 1;
		}
	}
	return best;
}

/* HeaderEval check_for_shifted_date(min_hours|'undef', max|'undef') */
static int
eval_shifted_date(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	long long d;

	(void)r;
	/* the same for each of the rules: once per message */
	if (c->sc->date_diff_gen != c->sc->gen) {
		c->sc->date_diff = date_diff(c);
		c->sc->date_diff_gen = c->sc->gen;
	}
	d = c->sc->date_diff;
	return (strcmp(a->s[0], "undef") == 0 ||
		   (double)d >= 3600 * argnum(a, 0, 0)) &&
	    (strcmp(a->s[1], "undef") == 0 ||
		(double)d < 3600 * argnum(a, 1, 0));
}

/*
 * HeaderEval check_outlook_message_id: an Outlook Message-ID
 * <xxxxTTTTTTTT$xxxxxxxx$xxxxxxxx@...> carries its creation time; it
 * must agree (within 250 ticks) with the Date, or else with the topmost
 * Received date. As SpamAssassin, the Received time is read from all
 * the Received fields as one text (its first date), and a missing date
 * counts as time 0.
 */
static int
eval_outlook_msgid(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const double x = 0.0023283064365387, y = 27111902.8329849;
	const char  *id = header(c, "MESSAGEID", 0), *v;
	long long    tok = 0, t;
	size_t	     i, len;

	(void)r;
	(void)a;
	if (id == NULL || id[0] != '<')
		return 0;
	for (i = 1; i <= 22; i++) {
		int hex = isxdigit((unsigned char)id[i]) &&
		    !isupper((unsigned char)id[i]);

		if (i == 13 || i == 22) {
			if (id[i] != '$')
				return 0;
		} else if (!hex)
			return 0;
		if (i >= 5 && i <= 12)
			tok = tok * 16 +
			    (id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	}
	for (i = 23; i <= 30; i++)
		if (!isxdigit((unsigned char)id[i]) ||
		    isupper((unsigned char)id[i]))
			return 0;
	if (id[31] != '@')
		return 0;
	v = sa_get_header(c, "Date", 0, &len);
	t = v != NULL ? sa_date_parse(v, len) : -1;
	if (llabs(tok - (long long)((double)(t < 0 ? 0 : t) * x + y)) < 250)
		return 0;
	v = sa_get_header(c, "Received", 0, &len);
	t = v != NULL ? sa_date_parse(v, len) : -1;
	return llabs(tok - (long long)((double)(t < 0 ? 0 : t) * x + y)) >= 250;
}

#define TOCC_MAX 256

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * HeaderEval's recipient list: the ToCc addresses (and the Bcc ones when
 * there are fewer than 5), a repeat of the previous one dropped, at most
 * 256; split in place in buf. The count.
 */
static size_t
recipients(struct sa_ctx *c, char *buf, size_t buflen, char **addr)
{
	static const char *const names[] = { "ToCc", "Bcc" };
	size_t			 n = 0, inputs = 0, j, len, used = 0;
	const char		*prev = "";

	for (j = 0; j < nitems(names) && inputs < 5; j++) {
		const char *v = sa_get_header(c, names[j], SA_HM_ADDR, &len),
			   *p, *e;

		for (p = v; p != NULL && *p != '\0'; p = *e ? e + 1 : e) {
			size_t l;

			e = strchr(p, '\n');
			if (e == NULL)
				e = p + strlen(p);
			l = (size_t)(e - p);
			inputs++;
			/* Perl's "while (my $x = shift)" ends at "" or "0" */
			if (l == 0 || (l == 1 && *p == '0'))
				return n;
			if (n == TOCC_MAX || used + l + 1 > buflen)
				return n;
			if (strlen(prev) == l &&
			    ascii_strncasecmp(prev, p, l) == 0)
				continue;
			memcpy(buf + used, p, l);
			buf[used + l] = '\0';
			prev = addr[n++] = buf + used;
			used += l + 1;
		}
	}
	return n;
}

/* HeaderEval similar_recipients(min, max): how alike the recipients'
   first two letters of user and host are, over all pairs */
static int
eval_similar_recipients(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char	    buf[16384], *addr[TOCC_MAX];
	const char *fq[TOCC_MAX];
	size_t	    n = recipients(c, buf, sizeof(buf), addr), i, j;
	double	    hits = 0, comb = 0, sim = 0;

	(void)r;
	if (n >= 5) {
		for (i = 0; i < n; i++) {
			const char *at = strchr(addr[i], '@');

			fq[i] = at ? at + 1 : "";
		}
		for (i = 0; i < n; i++)
			for (j = i + 1; j < n; j++) {
				if (strncmp(addr[i], addr[j], 2) == 0 &&
				    (strlen(addr[i]) >= 2) ==
					(strlen(addr[j]) >= 2))
					hits++;
				if (strncmp(fq[i], fq[j], 2) == 0 &&
				    strcmp(fq[i], fq[j]) != 0)
					hits++;
				comb++;
			}
		sim = hits / comb;
	}
	return (strcmp(a->s[0], "undef") == 0 || sim >= argnum(a, 0, 0)) &&
	    (strcmp(a->s[1], "undef") == 0 || sim < argnum(a, 1, 0));
}

/* HeaderEval sorted_recipients: 7 or more recipients, in sorted order */
static int
eval_sorted_recipients(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char   buf[16384], *addr[TOCC_MAX], *sorted[TOCC_MAX];
	size_t n = recipients(c, buf, sizeof(buf), addr), i;

	(void)r;
	(void)a;
	if (n < 7)
		return 0;
	memcpy(sorted, addr, n * sizeof(*addr));
	qsort(sorted, n, sizeof(*sorted), strp_cmp);
	for (i = 0; i < n; i++)
		if (strcmp(sorted[i], addr[i]) != 0)
			return 0;
	return 1;
}

/* HeaderEval subject_is_all_caps */
static int
eval_subject_all_caps(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	static const char *const prefixes[] = { "re:", "fwd:", "fw:", "aw:",
		"antwort:", "wg:", "sv:", "vb:", "vs:", "vl:" };
	const char		*s = header(c, "Subject", 0), *e, *raw;
	size_t			 i, len;
	int			 again = 1, space = 0, lower = 0;

	(void)r;
	(void)a;
	if (s == NULL)
		return 0;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	while (again) {
		again = 0;
		for (i = 0; i < nitems(prefixes); i++) {
			size_t pl = strlen(prefixes[i]);

			if (ascii_strncasecmp(s, prefixes[i], pl) == 0) {
				s += pl;
				while (*s == ' ' || *s == '\t')
					s++;
				again = 1;
			}
		}
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'))
		e--;
	len = (size_t)(e - s);
	for (i = 0; i < len; i++) {
		if (s[i] == ' ' || s[i] == '\t')
			space = 1;
		if (s[i] >= 'a' && s[i] <= 'z')
			lower = 1;
	}
	if (!space || len < 10 || lower)
		return 0;
	/* charsets whose text looks like capitals (SA's list, shortened) */
	raw = header(c, "Subject", SA_HM_RAW);
	if (raw != NULL && strstr(raw, "=?") != NULL) {
		static const char *const fp[] = { "koi", "jp", "jis", "euc",
			"gb", "big5", "isoir", "cp1251", "windows-1251",
			"georgianps", "pt154", "tis" };
		char			 lc[512];

		for (i = 0; raw[i] != '\0' && i < sizeof(lc) - 1; i++)
			lc[i] = (char)ascii_lower((unsigned char)raw[i]);
		lc[i] = '\0';
		for (i = 0; i < nitems(fp); i++)
			if (strstr(lc, fp[i]) != NULL)
				return 0;
	}
	return len > 0;
}

/* HeaderEval check_for_to_in_subject('user'|'address') */
static int
eval_to_in_subject(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *to = header(c, "To", SA_HM_ADDR), *subj, *at, *nl;
	char	    user[128], pat[600];
	size_t	    ul, i, k = 0;
	pcre2_code *re;
	int	    rc;

	(void)r;
	if (to == NULL || *to == '\0' ||
	    (subj = header(c, "Subject", 0)) == NULL)
		return 0;
	nl = strchr(to, '\n');
	ul = nl ? (size_t)(nl - to) : strlen(to);
	if (strcmp(a->s[0], "user") == 0 && (at = memchr(to, '@', ul)))
		ul = (size_t)(at - to);
	else if (strcmp(a->s[0], "address") != 0)
		return 0;
	if (ul == 0 || ul >= sizeof(user))
		return 0;
	memcpy(user, to, ul);
	user[ul] = '\0';
	/* the Perl pattern with \Q..\E; PCRE2 knows both */
	for (i = 0; i < ul; i++)
		if (user[i] == '\\' && user[i + 1] == 'E')
			return 0;
	if (strcmp(a->s[0], "address") == 0)
		k = (size_t)snprintf(pat, sizeof(pat), "\\b\\Q%s\\E\\b", user);
	else
		k = (size_t)snprintf(pat, sizeof(pat),
		    "^(?:(?:re|fw):\\s*(?:\\w+\\s+)?\\Q%s\\E$"
		    "|(?-i:\\Q%s\\E)\\s*[,:;!?-](?:$|\\s)|\\Q%s\\E$"
		    "|,\\s*\\Q%s\\E[,:;!?-]$)",
		    user, user, user, user);
	if (k >= sizeof(pat))
		return 0;
	if ((re = sa_compile_once(pat, PCRE2_CASELESS)) == NULL)
		return 0;
	rc = pcre2_match(re, (PCRE2_SPTR)subj, strlen(subj), 0, 0, c->md, NULL);
	pcre2_code_free(re);
	return rc >= 0;
}

/* HeaderEval check_unresolved_template: a %TEMPLATE tag left in a header */
static int
eval_unresolved_template(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	static const char *const skip[] = { "X-VMS-To", "X-UIDL", "X-Face",
		"To", "Cc", "From", "Subject", "References", "In-Reply-To",
		"Message-Id", "X-Message-Id", "Resent-Message-Id",
		"X-Original-Message-Id" };
	const struct msgview	*mv = c->mv;
	size_t			 i, j;

	(void)r;
	(void)a;
	for (i = 0; i < mv->nheaders; i++) {
		const char *v = mv->headers[i].decoded, *p;
		int	    skipped = 0;

		for (j = 0; j < nitems(skip); j++)
			if (ascii_strcasecmp(mv->headers[i].name, skip[j]) == 0)
				skipped = 1;
		if (skipped)
			continue;
		for (p = strchr(v, '%'); p != NULL; p = strchr(p + 1, '%'))
			if (p[1] >= 'A' && p[1] <= 'Z' &&
			    ((p[2] >= 'A' && p[2] <= 'Z') || p[2] == '_' ||
				p[2] == '-'))
				return 1;
	}
	return 0;
}

/* glob of enlist_addrlist / all_spam_to entries: '*' and '?' */
static int
glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *ss = NULL;

	while (*s != '\0') {
		if (*pat == '*') {
			star = pat++;
			ss = s;
		} else if (*pat == '?' ||
		    ascii_lower((unsigned char)*pat) ==
			ascii_lower((unsigned char)*s)) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++ss;
		} else
			return 0;
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

/* any address (one per line in v) matching an entry of list `name` */
static int
addrs_in_list(struct sa_ctx *c, const char *v, const char *name)
{
	struct sa_list *li = sa_list_get(c->rs, name);
	char		addr[320];
	size_t		i;

	if (li == NULL || v == NULL)
		return 0;
	while (*v != '\0') {
		const char *nl = strchr(v, '\n');
		size_t	    n = nl ? (size_t)(nl - v) : strlen(v);

		if (n > 0 && n < sizeof(addr)) {
			memcpy(addr, v, n);
			addr[n] = '\0';
			for (i = 0; i < li->n; i++)
				if (glob_match(li->v[i], addr))
					return 1;
		}
		v += n;
		if (*v == '\n')
			v++;
	}
	return 0;
}

/* WLBLEval check_from_in_list(LIST) / check_replyto_in_list(LIST) */
static int
eval_from_in_list(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char name[160];

	(void)r;
	strfmt(name, sizeof(name), "enlist_addrlist:%s", a->s[0]);
	return addrs_in_list(c, header(c, "From", SA_HM_ADDR), name);
}

static int
eval_replyto_in_list(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char name[160];

	(void)r;
	strfmt(name, sizeof(name), "enlist_addrlist:%s", a->s[0]);
	return addrs_in_list(c, header(c, "Reply-To", SA_HM_ADDR), name);
}

/* WLBLEval check_to_in_all_spam / check_to_in_more_spam */
static int
eval_to_in_all_spam(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return addrs_in_list(c, header(c, "ToCc", SA_HM_ADDR), "all_spam_to");
}

static int
eval_to_in_more_spam(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return addrs_in_list(c, header(c, "ToCc", SA_HM_ADDR), "more_spam_to");
}

/* first line of v (address from :addr), lower case, into out */
static void
first_addr_lc(const char *v, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != '\0' && v[i] != '\n' && i + 1 < outlen;
	     i++)
		out[i] = (char)ascii_lower((unsigned char)v[i]);
	out[i] = '\0';
}

/* HeaderEval check_for_matching_env_and_hdr_from: the envelope sender is
   the From address (two empty ones match, as in SpamAssassin) */
static int
eval_env_hdr_from(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	char e[320], f[320];

	(void)r;
	(void)a;
	first_addr_lc(header(c, "EnvelopeFrom", SA_HM_ADDR), e, sizeof(e));
	first_addr_lc(header(c, "From", SA_HM_ADDR), f, sizeof(f));
	return strcmp(e, f) == 0;
}

/* FreeMail check_freemail_header(header[, regex]): an address of the
   header (header:mod: its value read so) is freemail, and matches regex */
static int
eval_freemail_header(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	return sa_freemail_header(c, a->s[0], a->n > 1 ? a->s[1] : NULL);
}

/* ----------------------------------------------------------- MIME more */

/*
 * MIMEEval check_for_mime(test) for the facts the view has:
 * mime_attachment, mime_base64_encoded_text, mime_base64_count,
 * mime_qp_count, mime_bad_iso_charset, mimepart_limit_exceeded.
 */
static int
eval_check_for_mime(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct msgview *mv = c->mv;
	const char	     *t = a->s[0];
	size_t		      i;
	int		      n = 0;

	(void)r;
	if (strcmp(t, "mimepart_limit_exceeded") == 0)
		return (mv->truncated & MV_TRUNC_PARTS) != 0;
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];
		int		      b64 =
		    p->encoding != NULL && strcmp(p->encoding, "base64") == 0;

		if (p->flags & MV_PART_MULTIPART)
			continue;
		if (strcmp(t, "mime_attachment") == 0)
			n += (p->flags & MV_PART_ATTACHMENT) != 0;
		else if (strcmp(t, "mime_base64_encoded_text") == 0)
			n += b64 && strncmp(p->type, "text/", 5) == 0;
		else if (strcmp(t, "mime_base64_count") == 0)
			n += b64;
		else if (strcmp(t, "mime_qp_count") == 0)
			n += p->encoding != NULL &&
			    strcmp(p->encoding, "quoted-printable") == 0;
		else if (strcmp(t, "mime_bad_iso_charset") == 0 &&
		    p->charset != NULL && strncmp(p->charset, "iso-", 4) == 0 &&
		    strchr(p->charset + 4, '-') != NULL &&
		    strncmp(p->charset, "iso-8859-", 9) != 0 &&
		    strncmp(p->charset, "iso-2022-jp", 11) != 0 &&
		    strncmp(p->charset, "iso-2022-kr", 11) != 0)
			n++;
	}
	return n;
}

/* MIMEEval check_for_uppercase(min, max): % capitals in body lines with
   an inner space, if there are 200 such bytes */
static int
eval_uppercase(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_scratch *sc;
	size_t			 len, i, k, total = 0, upper = 0, lower = 0;
	double			 pct;

	(void)r;
	(void)sa_body_text(c, &len);
	sc = c->sc;
	for (i = sc->body_subject_lines; i < sc->bodyl.n; i++) {
		const char *l = sc->body.s + sc->bodyl.v[i].off;
		size_t	    n = sc->bodyl.v[i].len;
		int	    inner = 0;

		for (k = 1; k + 1 < n && !inner; k++)
			inner = l[k] == ' ' && l[k - 1] != ' ' &&
			    l[k + 1] != ' ' && l[k + 1] != '\n';
		if (!inner)
			continue;
		total += n;
		for (k = 0; k < n; k++) {
			if (l[k] >= 'A' && l[k] <= 'Z')
				upper++;
			else if ((l[k] >= 'a' && l[k] <= 'z') ||
			    (l[k] >= '0' && l[k] <= '9'))
				lower++;
		}
	}
	if (total < 200 || upper + lower == 0)
		return 0;
	pct = 100.0 * (double)upper / (double)(upper + lower);
	return pct > argnum(a, 0, 0) && pct <= argnum(a, 1, 0);
}

/* ---------------------------------------------------------------- table */

static const struct sa_evaldef evals[] = {
	{ "check_bayes", eval_bayes, 2, 2 },
	{ "check_for_spf_pass", eval_spf_pass, 0, 0 },
	{ "check_for_spf_fail", eval_spf_fail, 0, 0 },
	{ "check_for_spf_softfail", eval_spf_softfail, 0, 0 },
	{ "check_for_spf_neutral", eval_spf_neutral, 0, 0 },
	{ "check_for_spf_none", eval_spf_none, 0, 0 },
	{ "check_for_spf_permerror", eval_spf_permerror, 0, 0 },
	{ "check_for_spf_temperror", eval_spf_temperror, 0, 0 },
	{ "check_for_spf_helo_pass", eval_spf_helo_pass, 0, 0 },
	{ "check_for_spf_helo_fail", eval_spf_helo_fail, 0, 0 },
	{ "check_for_spf_helo_softfail", eval_spf_helo_softfail, 0, 0 },
	{ "check_for_spf_helo_neutral", eval_spf_helo_neutral, 0, 0 },
	{ "check_for_spf_helo_none", eval_spf_helo_none, 0, 0 },
	{ "check_for_spf_helo_permerror", eval_spf_helo_permerror, 0, 0 },
	{ "check_for_spf_helo_temperror", eval_spf_helo_temperror, 0, 0 },
	{ "check_dkim_signed", eval_dkim_signed, 0, SA_MAXARGS },
	{ "check_dkim_valid", eval_dkim_valid, 0, SA_MAXARGS },
	{ "check_dkim_valid_author_sig", eval_dkim_valid_author, 0,
	    SA_MAXARGS },
	{ "check_dkim_dependable", eval_dkim_dependable, 0, 0 },
	{ "check_dmarc_pass", eval_dmarc_pass, 0, 0 },
	{ "check_dmarc_reject", eval_dmarc_reject, 0, 0 },
	{ "check_dmarc_quarantine", eval_dmarc_quarantine, 0, 0 },
	{ "check_dmarc_none", eval_dmarc_none, 0, 0 },
	{ "check_dmarc_missing", eval_dmarc_missing, 0, 0 },
	{ "check_for_missing_to_header", eval_missing_to, 0, 0 },
	{ "check_header_count_range", eval_header_count_range, 3, 3 },
	{ "check_illegal_chars", eval_illegal_chars, 3, 3 },
	{ "check_equal_from_domains", eval_equal_from_domains, 0, 0 },
	{ "check_freemail_from", eval_freemail_from, 0, 1 },
	{ "check_freemail_replyto", eval_freemail_replyto, 0, 1 },
	{ "check_for_mime_html", eval_mime_html, 0, 0 },
	{ "check_for_mime_html_only", eval_mime_html_only, 0, 0 },
	{ "html_test", eval_html_test, 1, 1 },
	{ "html_image_only", eval_html_image_only, 2, 2 },
	{ "html_image_ratio", eval_html_image_ratio, 2, 2 },
	{ "html_range", eval_html_range, 3, 3 },
	{ "html_eval", eval_html_eval, 2, 2 },
	{ "html_tag_exists", eval_html_tag_exists, 1, 1 },
	{ "html_tag_balance", eval_html_tag_balance, 2, 2 },
	{ "html_text_match", eval_html_text_match, 2, 2 },
	{ "html_title_subject_ratio", eval_html_title_subject_ratio, 1, 1 },
	{ "check_mime_multipart_ratio", eval_multipart_ratio, 2, 2 },
	{ "check_stock_info", eval_stock_info, 1, 1 },
	{ "check_body_length", eval_body_length, 1, 1 },
	{ "tvd_vertical_words", eval_tvd_vertical_words, 2, 2 },
	{ "check_for_shifted_date", eval_shifted_date, 2, 2 },
	{ "subject_is_all_caps", eval_subject_all_caps, 0, 0 },
	{ "check_outlook_message_id", eval_outlook_msgid, 0, 0 },
	{ "similar_recipients", eval_similar_recipients, 2, 2 },
	{ "sorted_recipients", eval_sorted_recipients, 0, 0 },
	{ "check_for_to_in_subject", eval_to_in_subject, 1, 1 },
	{ "check_unresolved_template", eval_unresolved_template, 0, 0 },
	{ "check_from_in_list", eval_from_in_list, 1, 1 },
	{ "check_replyto_in_list", eval_replyto_in_list, 1, 1 },
	{ "check_to_in_all_spam", eval_to_in_all_spam, 0, 0 },
	{ "check_to_in_more_spam", eval_to_in_more_spam, 0, 0 },
	{ "check_for_matching_env_and_hdr_from", eval_env_hdr_from, 0, 0 },
	{ "check_freemail_header", eval_freemail_header, 1, 2 },
	{ "check_for_mime", eval_check_for_mime, 1, 1 },
	{ "check_for_ascii_text_illegal", eval_ascii_text_illegal, 0, 0 },
	{ "check_abundant_unicode_ratio", eval_unicode_ratio, 1, 1 },
	{ "check_for_uppercase", eval_uppercase, 2, 2 },
};

const struct sa_evaldef *
sa_eval_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(evals); i++)
		if (strcmp(evals[i].name, name) == 0)
			return &evals[i];
	return sa_eval_relay_lookup(name);
}
