/*
 * sa_freemail.c - SpamAssassin's FreeMail plugin (Mail::SpamAssassin::
 * Plugin::FreeMail, 4.0) as the eval rules read it: is an address
 * freemail (its domain in freemail_domains, not a role or list address
 * of the plugin's default welcome list), check_freemail_from and
 * check_freemail_header (an address of a field is freemail, and matches
 * the rule's pattern if it gives one), and check_freemail_replyto
 * ('replyto' | 'reply'): From and Reply-To are different freemail
 * addresses, or the body names a freemail address other than the one a
 * reply would go to. Our own code after the plugin's documented rules.
 *
 *  - Addresses: every address of From and Reply-To, lower-cased.
 *  - Skipped when the envelope sender looks like a list or bounce
 *    address (freemail_skip_bulk_envfrom, on by default).
 *  - 'replyto': Reply-To must be freemail; 'reply': From must be, and
 *    Reply-To too if there is one. Then the body's freemail addresses
 *    are compared with those of Reply-To (or From).
 *  - Body addresses: mailto: links of anchors whose address is not also
 *    in the text (20 at most), then the addresses in the body text that
 *    rules see (the Subject line first), line by line, leaving out those
 *    inside URLs, in <...>, or followed by a word and a colon ("bob@x.org
 *    wrote:"), 40 at most. With freemail_max_body_emails (5) addresses or
 *    freemail_max_body_freemails (3) freemail ones, the body is not used
 *    (freemail_skip_when_over_max).
 *
 * The three patterns are compiled once per process (pthread_once) and
 * only matched afterwards, which PCRE2 allows from any thread; matches use
 * the caller's match data and limits. Bounded: at most 8 addresses per
 * field, 60 body addresses, the body text once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sa_int.h"
#include "sa_scratch.h"
#include "util.h"

#define FM_ADDRS    8
#define FM_ADDR_MAX 256
#define FM_URI_MAX  20 /* mailto: addresses taken from links */
#define FM_BODY_MAX 40 /* addresses taken in all */
#define FM_MAX_ALL  5  /* freemail_max_body_emails */
#define FM_MAX_FM   3  /* freemail_max_body_freemails */

/* The plugin's email_regex (its TLD list approximated as 2+ letters). */
#define FM_EMAIL                                                               \
	"(?=.{0,64}@)(?<![a-z0-9!#$%&'*+/=?^_`{|}~-])"                         \
	"([a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"    \
	"@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\\.){1,4}[a-z]{2,63})"

static const char *const patterns[] = {
	/* 0: the default welcome list: role, list and forwarding addresses */
	"^(?:abuse|support|sales|info|helpdesk|contact|kontakt"
	"|(?:post|host|domain)master|undisclosed.*|request-[a-f0-9]{16}"
	"|bounced?-|[a-f0-9]{8}(?:\\.[a-f0-9]{8}"
	"|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})|.+=.+=.+)@",
	/* 1: a bulk envelope sender */
	"(?:^(?:post|host|domain)master|^double-bounce"
	"|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
	"|-(?:request|bounces?|admin|owner)"
	"|\\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@",
	/* 2: an address */
	FM_EMAIL,
	/* 3: a URL with an address in it, an address in <>, an address
	   followed by a word and a colon: not taken from the body */
	"<?https?://\\S{0,255}(?:@|%40)\\S{0,255}"
	"|<?(?<!mailto:)" FM_EMAIL
	"(?:>|\\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)",
};
#define P_WELCOME 0
#define P_BULK	  1
#define P_EMAIL	  2
#define P_STRIP	  3

static pcre2_code    *re[4];
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void
compile_all(void)
{
	size_t	   i;
	int	   err;
	PCRE2_SIZE off;

	for (i = 0; i < nitems(patterns); i++) {
		re[i] = pcre2_compile((PCRE2_SPTR)patterns[i],
		    PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err, &off, NULL);
		if (re[i] != NULL)
			(void)pcre2_jit_compile(re[i], PCRE2_JIT_COMPLETE);
	}
}

static int
match(struct sa_ctx *c, int which, const char *s, size_t n, size_t start)
{
	return re[which] != NULL &&
	    pcre2_match(
		re[which], (PCRE2_SPTR)s, n, start, 0, c->md, c->sc->mc) >= 0;
}

int
sa_freemail_is(struct sa_ctx *c, const char *addr)
{
	const char *at;

	pthread_once(&re_once, compile_all);
	if (addr == NULL || addr[0] == '\0' ||
	    (at = strrchr(addr, '@')) == NULL || at[1] == '\0')
		return 0;
	if (match(c, P_WELCOME, addr, strlen(addr), 0))
		return 0;
	return sa_list_has_domain(c->rs, "freemail_domains", at + 1);
}

struct addrs {
	char   a[FM_ADDRS][FM_ADDR_MAX];
	size_t n;
};

/* The lines of a header field's value read with mods (SA_HM_ADDR: its
   addresses, one a line), lower case. */
static void
field_lines(
    struct sa_ctx *c, const char *name, unsigned mods, struct addrs *out)
{
	size_t	    len, n, i;
	const char *s = sa_get_header(c, name, mods, &len), *e;

	out->n = 0;
	while (s != NULL && *s != '\0' && out->n < FM_ADDRS) {
		e = strchr(s, '\n');
		n = e != NULL ? (size_t)(e - s) : strlen(s);
		if (n > 0 && n < FM_ADDR_MAX) {
			for (i = 0; i < n; i++)
				out->a[out->n][i] =
				    (char)ascii_lower((unsigned char)s[i]);
			out->a[out->n++][n] = '\0';
		}
		if (e == NULL)
			break;
		s = e + 1;
	}
}

static int
any_freemail(struct sa_ctx *c, const struct addrs *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (sa_freemail_is(c, a->a[i]))
			return 1;
	return 0;
}

/* Body addresses, unique, in the order found. */
struct body {
	struct addrs list[(FM_BODY_MAX + FM_ADDRS - 1) / FM_ADDRS];
	size_t	     n;
};

static char *
body_at(struct body *b, size_t i)
{
	return b->list[i / FM_ADDRS].a[i % FM_ADDRS];
}

static void
body_add(struct body *b, const char *s, size_t n)
{
	size_t i;
	char  *d;

	if (n == 0 || n >= FM_ADDR_MAX || b->n >= FM_BODY_MAX)
		return;
	d = body_at(b, b->n);
	for (i = 0; i < n; i++)
		d[i] = (char)ascii_lower((unsigned char)s[i]);
	d[n] = '\0';
	for (i = 0; i < b->n; i++)
		if (strcmp(body_at(b, i), d) == 0)
			return;
	b->n++;
}

static void
body_addrs(struct sa_ctx *c, struct body *b)
{
	const struct msgview *mv = c->mv;
	PCRE2_SIZE	     *ov = pcre2_get_ovector_pointer(c->md);
	size_t		      i, len, from_uris = 0, ofs, n;
	const char	     *text;
	char		     *t, *line, *nl;

	b->n = 0;
	for (i = 0; i < mv->nuris && from_uris < FM_URI_MAX; i++) {
		const struct mv_uri *u = &mv->uris[i];

		if (!(u->flags & MV_URI_ANCHOR) || (u->flags & MV_URI_TEXT) ||
		    ascii_strncasecmp(u->uri, "mailto:", 7) != 0)
			continue;
		/* anchored just after "mailto:" */
		if (match(c, P_EMAIL, u->uri, strlen(u->uri), 7) &&
		    ov[2] == 7) {
			body_add(b, u->uri + ov[2], ov[3] - ov[2]);
			from_uris++;
		}
	}
	text = sa_body_text(c, &len);
	t = xmalloc(len + 1);
	memcpy(t, text, len);
	t[len] = '\0';
	for (line = t; line < t + len && b->n < FM_BODY_MAX; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(t + len - line));
		if (nl == NULL)
			nl = t + len;
		n = (size_t)(nl - line);
		/* what is not taken: blanked */
		for (ofs = 0; ofs < n && match(c, P_STRIP, line, n, ofs);) {
			memset(line + ov[0], ' ', ov[1] - ov[0]);
			ofs = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
		}
		for (ofs = 0; ofs < n && b->n < FM_BODY_MAX &&
		     match(c, P_EMAIL, line, n, ofs);) {
			body_add(b, line + ov[2], ov[3] - ov[2]);
			ofs = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
		}
	}
	free(t);
}

int
sa_freemail_header(struct sa_ctx *c, const char *field, const char *regex)
{
	struct addrs a;
	char	     name[128];
	unsigned     mods;
	pcre2_code  *user = NULL;
	size_t	     i;
	int	     hit = 0;

	strfmt(name, sizeof(name), "%s", field);
	if (sa_header_mods(name, &mods) != NULL)
		return 0; /* refused as a header rule would be */
	if (mods == 0)
		mods = SA_HM_ADDR; /* the plugin's default */
	field_lines(c, name, mods, &a);
	for (i = 0; i < a.n && !hit; i++) {
		if (!sa_freemail_is(c, a.a[i]))
			continue;
		if (regex == NULL)
			hit = 1;
		else if (user != NULL ||
		    (user = sa_compile_once(regex, 0)) != NULL)
			hit = pcre2_match(user, (PCRE2_SPTR)a.a[i],
				  strlen(a.a[i]), 0, 0, c->md, c->sc->mc) >= 0;
	}
	if (user != NULL)
		pcre2_code_free(user);
	return hit;
}

int
sa_freemail_replyto(struct sa_ctx *c, int reply)
{
	struct addrs from, rt, env, *cmp;
	struct body  body;
	size_t	     i, j, all = 0, fm = 0, nfm = 0;
	const char  *fms[FM_BODY_MAX];
	int	     from_fm, rt_fm, from_not_in_rt = 1;

	pthread_once(&re_once, compile_all);
	field_lines(c, "EnvelopeFrom", SA_HM_ADDR, &env);
	if (env.n > 0 && match(c, P_BULK, env.a[0], strlen(env.a[0]), 0))
		return 0;
	field_lines(c, "From", SA_HM_ADDR, &from);
	field_lines(c, "Reply-To", SA_HM_ADDR, &rt);
	from_fm = any_freemail(c, &from);
	rt_fm = any_freemail(c, &rt);
	for (i = 0; i < from.n; i++)
		for (j = 0; j < rt.n; j++)
			if (strcmp(from.a[i], rt.a[j]) == 0)
				from_not_in_rt = 0;
	if (from_fm && rt_fm && from_not_in_rt)
		return 1;
	if (!reply && !rt_fm)
		return 0;
	if (reply && ((rt.n > 0 && !rt_fm) || !from_fm))
		return 0;
	body_addrs(c, &body);
	for (i = 0; i < body.n; i++) {
		if (++all == FM_MAX_ALL)
			return 0;
		if (!sa_freemail_is(c, body_at(&body, i)))
			continue;
		if (++fm == FM_MAX_FM)
			return 0;
		fms[nfm++] = body_at(&body, i);
	}
	cmp = !reply || rt_fm ? &rt : &from;
	for (i = 0; i < nfm; i++)
		for (j = 0; j < cmp->n; j++)
			if (strcmp(fms[i], cmp->a[j]) != 0)
				return 1;
	return 0;
}
