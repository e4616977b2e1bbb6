/*
 * sa_eval_relay.c - SpamAssassin's relay "eval:" rules over the relay
 * trail (sa_received.h): RelayEval.pm (check_all_trusted,
 * check_no_relays, check_relays_unparseable, helo_ip_mismatch,
 * check_for_numeric_helo, check_for_sender_no_reverse,
 * check_for_no_rdns_dotcom_helo, check_for_forged_received_trail,
 * check_for_forged_received_ip_helo) and HeaderEval.pm's forged
 * webmail Received checks (check_for_forged_{yahoo,hotmail,gmail,juno,
 * eudoramail}_received_headers, check_for_no_hotmail_received_headers,
 * check_for_fake_aol_relay_in_rcvd), as SpamAssassin 4.0.1 computes
 * them. A table like sa_eval.c's; sa_eval_lookup() falls back to it.
 *
 * Thread-safe: reads the ruleset and the message, writes the scratch.
 */
#include <stdio.h>
#include <string.h>

#include "sa_int.h"
#include "sa_received.h"
#include "sa_scratch.h"
#include "util.h"

static int
ascii_isdigit(int c)
{
	return c >= '0' && c <= '9';
}

static int
ascii_isalpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
ascii_isalnum(int c)
{
	return ascii_isdigit(c) || ascii_isalpha(c);
}

static const char *
hdr(struct sa_ctx *c, const char *name, unsigned mods)
{
	size_t len;

	return sa_get_header(c, name, mods, &len);
}

static const char *
hdr0(struct sa_ctx *c, const char *name, unsigned mods)
{
	const char *v = hdr(c, name, mods);

	return v != NULL ? v : "";
}

/* the Received fields as SpamAssassin's get('Received'): every value,
   whitespace runs as one space */
static const char *
received_text(struct sa_ctx *c)
{
	const char *v = hdr0(c, "Received", 0);
	size_t	    n = strlen(v), i, k = 0;
	char	   *o = sa_scratch_alloc(c->sc, n + 1);
	int	    sp = 0;

	for (i = 0; i < n; i++) {
		char ch = v[i];

		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			if (!sp)
				o[k++] = ' ';
			sp = 1;
		} else {
			o[k++] = ch;
			sp = 0;
		}
	}
	o[k] = '\0';
	return o;
}

static int
ends_with_ci(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	return n >= m && ascii_strncasecmp(s + n - m, suf, m) == 0 &&
	    (n == m ||
		!(ascii_isalnum((unsigned char)s[n - m - 1]) ||
		    s[n - m - 1] == '_') ||
		suf[0] == '.');
}

/* From:addr ends in "\b<domain>" */
static int
from_in(struct sa_ctx *c, const char *domain)
{
	return ends_with_ci(hdr0(c, "From", SA_HM_ADDR), domain);
}

static int
is_ipv4(const char *s)
{
	unsigned a, b, d, e;
	char	 x;

	return sscanf(s, "%u.%u.%u.%u%c", &a, &b, &d, &e, &x) == 4 && a < 256 &&
	    b < 256 && d < 256 && e < 256 && s[0] >= '0' && s[0] <= '9';
}

/* ------------------------------------------------------------ RelayEval */

static int
ev_all_trusted(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs = sa_relays(c);

	(void)r;
	(void)a;
	return rs->ntrusted > 0 && rs->n == rs->ntrusted &&
	    rs->unparseable == 0;
}

static int
ev_no_relays(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs = sa_relays(c);

	(void)r;
	(void)a;
	return rs->n == 0 && rs->unparseable == 0;
}

static int
ev_unparseable(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return sa_relays(c)->unparseable > 0;
}

/* a.b.c. prefix of an IPv4 text */
static size_t
class_c_len(const char *ip)
{
	const char *p = ip;
	int	    dots = 0;

	while (*p != '\0' && dots < 3)
		if (*p++ == '.')
			dots++;
	return dots == 3 ? (size_t)(p - ip) : 0;
}

static int
ev_helo_ip_mismatch(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs = sa_relays(c);
	size_t			i, n;

	(void)r;
	(void)a;
	for (i = rs->ntrusted; i < rs->n; i++) {
		const struct sa_relay *x = &rs->r[i];

		if (!is_ipv4(x->helo) || sa_ip_private(x->helo))
			continue;
		if (is_ipv4(x->ip) && !sa_ip_private(x->ip) &&
		    strcmp(x->helo, x->ip) != 0 &&
		    (n = class_c_len(x->helo)) > 0 &&
		    strncmp(x->ip, x->helo, n) != 0)
			return 1;
	}
	return 0;
}

static int
ev_numeric_helo(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs = sa_relays(c);
	size_t			i;

	(void)r;
	(void)a;
	/* the first "helo=IPv4" in the untrusted text */
	for (i = rs->ntrusted; i < rs->n; i++) {
		const char *h = rs->r[i].helo;

		if (h[0] >= '0' && h[0] <= '9') {
			unsigned o[4];
			int	 len = 0;

			if (sscanf(h, "%u.%u.%u.%u%n", &o[0], &o[1], &o[2],
				&o[3], &len) == 4 &&
			    o[0] < 256 && o[1] < 256 && o[2] < 256 &&
			    o[3] < 256 &&
			    (h[len] == '\0' || strchr(",;()<>", h[len]))) {
				char ip[20];

				strfmt(ip, sizeof(ip), "%.*s", len, h);
				return !sa_ip_private(ip);
			}
		}
	}
	return 0;
}

static int
ev_sender_no_reverse(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs = sa_relays(c);
	const struct sa_relay  *x;

	(void)r;
	(void)a;
	if (rs->n == rs->ntrusted)
		return 0;
	x = &rs->r[rs->n - 1];
	return strchr(x->rdns, '.') != NULL && !x->ip_private;
}

static int
ev_no_rdns_dotcom_helo(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	static const char *const doms[] = { "lycos.com", "lycos.co.uk",
		"hotmail.com", "localhost.com", "excite.com", "caramail.com",
		"cs.com", "aol.com", "msn.com", "yahoo.com", "drizzle.com" };
	const struct sa_relays	*rs = sa_relays(c);
	size_t			 i, j;

	(void)r;
	(void)a;
	int hit = 0;

	/* as the Perl: each public untrusted relay resets the verdict, so
	   the oldest one decides */
	for (i = rs->ntrusted; i < rs->n; i++) {
		const struct sa_relay *x = &rs->r[i];
		size_t		       hl = strlen(x->helo);

		if (x->ip_private)
			continue;
		hit = 0;
		for (j = 0; j < nitems(doms) && x->no_reverse_dns; j++) {
			size_t dl = strlen(doms[j]);

			if (hl >= dl &&
			    ascii_strcasecmp(x->helo + hl - dl, doms[j]) == 0 &&
			    (hl == dl || x->helo[hl - dl - 1] == '.'))
				hit = 1;
		}
	}
	return hit;
}

/* RelayEval's hostname_to_domain, lower-cased, into out */
static void
host_domain(const char *h, char *out, size_t cap)
{
	const char *p, *dots[3] = { NULL, NULL, NULL };
	size_t	    nparts = 1, i;
	int	    alpha = 0;

	for (p = h; *p != '\0'; p++) {
		if (ascii_isalpha((unsigned char)*p))
			alpha = 1;
		if (*p == '.') {
			nparts++;
			dots[2] = dots[1];
			dots[1] = dots[0];
			dots[0] = p;
		}
	}
	p = h;
	if (alpha && nparts > 1) {
		const char *last = dots[0] + 1;
		size_t	    ll = strlen(last);

		/* the Perl tests the last label for \S{3,}|ie|fr|de
		   anywhere in it */
		if (ll >= 3 || strstr(last, "ie") || strstr(last, "fr") ||
		    strstr(last, "de"))
			p = dots[1] ? dots[1] + 1 : h;
		else if (nparts > 2)
			p = dots[2] ? dots[2] + 1 : h;
	}
	for (i = 0; p[i] != '\0' && i + 1 < cap; i++)
		out[i] = (char)ascii_lower((unsigned char)p[i]);
	out[i] = '\0';
}

static int
hostlike(const char *s)
{
	/* ^\w+(?:[\w.-]+\.)+\w+$ */
	const char *p = s, *lastdot;
	size_t	    n = strlen(s);

	if (n < 3 || !(ascii_isalnum((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (; *p != '\0'; p++)
		if (!(ascii_isalnum((unsigned char)*p) || *p == '_' ||
			*p == '.' || *p == '-'))
			return 0;
	lastdot = strrchr(s, '.');
	if (lastdot == NULL || lastdot == s || lastdot[1] == '\0')
		return 0;
	for (p = lastdot + 1; *p != '\0'; p++)
		if (!(ascii_isalnum((unsigned char)*p) || *p == '_'))
			return 0;
	/* \w+ then at least one [\w.-]+\. : the first dot not at 1 */
	return strchr(s, '.') > s;
}

static void
forged_received(struct sa_ctx *c, int *mismatch_from, int *mismatch_ip_helo)
{
	const struct sa_relays *rs = sa_relays(c);
	size_t			i, n;
	char			prev[128] = "";
	int			have_prev = 0;

	*mismatch_from = *mismatch_ip_helo = 0;
	n = rs->n - rs->ntrusted;
	for (i = 0; i < n; i++) {
		const struct sa_relay *x = &rs->r[rs->ntrusted + i];
		char		       by[128], frm[128], hlo[128];
		int		       have_frm = 1;

		host_domain(x->by, by, sizeof(by));
		host_domain(x->rdns, frm, sizeof(frm));
		host_domain(x->helo, hlo, sizeof(hlo));
		if ((strcmp(frm, "localhost") == 0 ||
			strcmp(frm, "localhost.localdomain") == 0) &&
		    strcmp(x->ip, "127.0.0.1") == 0)
			have_frm = 0;
		if (hostlike(by)) {
			if (is_ipv4(hlo) && is_ipv4(x->ip) &&
			    strcmp(x->ip, hlo) != 0) {
				const char *hd = strchr(hlo, '.');
				const char *fd = strchr(x->ip, '.');

				hd = strchr(hd + 1, '.');
				fd = strchr(fd + 1, '.');
				if ((hd - hlo != fd - x->ip ||
					strncmp(hlo, x->ip,
					    (size_t)(hd - hlo)) != 0) &&
				    !sa_ip_private(hlo))
					(*mismatch_ip_helo)++;
			}
			if (i > 0 && have_prev && hostlike(prev) &&
			    strcmp(by, prev) != 0 &&
			    !(strcmp(by, "msn.com") == 0 &&
				strcmp(prev, "hotmail.com") == 0))
				(*mismatch_from)++;
		}
		if (have_frm)
			strfmt(prev, sizeof(prev), "%s", frm);
		have_prev = have_frm;
	}
}

static int
ev_forged_trail(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	int mf, mi;

	(void)r;
	(void)a;
	forged_received(c, &mf, &mi);
	return mf > 1;
}

static int
ev_forged_ip_helo(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	int mf, mi;

	(void)r;
	(void)a;
	forged_received(c, &mf, &mi);
	return mi > 0;
}

/* ----------------------------------------------------------- HeaderEval */

static int
has_ip(const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		char ip[64];
		int  k = 0;

		while (
		    k < 63 && ((p[k] >= '0' && p[k] <= '9') || p[k] == '.')) {
			ip[k] = p[k];
			k++;
		}
		ip[k] = '\0';
		if (k >= 7 && is_ipv4(ip))
			return 1;
		if (strchr(p, ':') != NULL && strstr(p, "::") != NULL)
			return 1;
	}
	return 0;
}

static int
gated_through_received_hdr_remover(struct sa_ctx *c)
{
	const char *ml = hdr(c, "Mailing-List", 0);
	const char *rc = hdr(c, "Received", 0);

	if (ml != NULL && strstr(ml, "; run by ezmlm") != NULL &&
	    strncmp(ml, "contact ", 8) == 0) {
		const char *dl = hdr0(c, "Delivered-To", 0);

		if (strstr(dl, "mailing list ") != NULL && rc != NULL &&
		    strstr(rc, "qmail ") != NULL &&
		    strstr(rc, " invoked ") != NULL)
			return 1;
	}
	if (rc == NULL)
		return 1;
	if (strstr(received_text(c), "from groups.msn.com (") != NULL)
		return 1;
	return 0;
}

/* 0 = not forged, 1 = forged HELO/from hotmail, 2 = From hotmail but no
   hotmail relay */
static int
hotmail_state(struct sa_ctx *c)
{
	const char *rcvd = received_text(c), *p;
	const char *ipv = hdr(c, "X-Originating-Ip", 0);
	const char *orig = hdr(c, "X-OriginatorOrg", 0);
	int	    ip = ipv != NULL && has_ip(ipv);
	int	    org = orig != NULL &&
	    (strstr(orig, "hotmail.com") || strstr(orig, "msonline-outlook"));

	if (strstr(rcvd,
		"from mail pickup service by hotmail.com with "
		"Microsoft SMTPSVC;"))
		return 0;
	if (strstr(rcvd, "from groups.msn.com (") != NULL)
		return 0;
	if (gated_through_received_hdr_remover(c))
		return 0;
	if (ip) {
		for (p = rcvd; (p = strstr(p, "hotmail.com (")) != NULL; p++) {
			const char *q = p + 13;

			while (*q != '\0' && *q != ' ' && *q != ')')
				q++;
			if ((size_t)(q - p - 13) > 12 &&
			    (strncmp(q - 12, ".hotmail.com", 12) == 0 ||
				strncmp(q - 16, ".hotmail.msn.com", 16) == 0))
				return 0;
		}
		for (p = rcvd; (p = strstr(p, " by ")) != NULL; p++) {
			const char *q = p + 4;

			while (*q != '\0' && *q != ' ')
				q++;
			if (strncmp(q, " with HTTP;", 11) == 0 && q - p > 16 &&
			    (strncmp(q - 12, ".hotmail.com", 12) == 0 ||
				strncmp(q - 16, ".hotmail.msn.com", 16) == 0))
				return 0;
		}
	}
	if (ip) {
		/* Yahoo Groups' web front ends */
		for (p = rcvd; (p = strstr(p, "from [66.218.")) != NULL; p++) {
			const char *q = strchr(p + 13, ']'), *h, *he;

			if (q == NULL || strncmp(q, "] by ", 5) != 0)
				continue;
			h = q + 5;
			he = h;
			while (*he != '\0' && *he != ' ')
				he++;
			if (he - h > 10 &&
			    strncmp(he - 10, ".yahoo.com", 10) == 0)
				return 0;
		}
	}
	if (org && strstr(rcvd, ".outbound.protection.outlook.com (") != NULL)
		return 0;
	for (p = rcvd; *p != '\0'; p++) {
		const char *q = NULL;

		if (strncmp(p, "from ", 5) == 0)
			q = p + 5;
		else if (strncmp(p, "HELO ", 5) == 0)
			q = p + 5;
		else if (strncmp(p, "helo=", 5) == 0)
			q = p + 5;
		if (q != NULL) {
			const char *e = q;

			while (*e != '\0' && *e != ' ')
				e++;
			{
				const char *h = q;

				while (h + 11 <= e) {
					if (strncmp(h, "hotmail.com", 11) ==
						0 &&
					    (h + 11 == e ||
						!(ascii_isalnum(
						      (unsigned char)h[11]) ||
						    h[11] == '_')))
						return 1;
					h++;
				}
			}
		}
	}
	return from_in(c, "hotmail.com") ? 2 : 0;
}

static int
ev_forged_hotmail(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return hotmail_state(c) == 1;
}

static int
ev_no_hotmail(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	(void)r;
	(void)a;
	return hotmail_state(c) == 2;
}

static int
ev_forged_yahoo(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const struct sa_relays *rs;
	const char	       *rcvd, *p;
	size_t			i;

	(void)r;
	(void)a;
	if (!from_in(c, "yahoo.com"))
		return 0;
	rcvd = received_text(c);
	if (*hdr0(c, "Resent-From", 0) != '\0' &&
	    *hdr0(c, "Resent-To", 0) != '\0' &&
	    *hdr0(c, "X-Received", 0) != '\0')
		rcvd = hdr0(c, "X-Received", 0);
	if (gated_through_received_hdr_remover(c))
		return 0;
	rs = sa_relays(c);
	for (i = 0; i < rs->n; i++) {
		size_t n = strlen(rs->r[i].rdns);

		if (i > rs->ntrusted)
			break;
		if (n > 10 && strcmp(rs->r[i].rdns + n - 10, ".yahoo.com") == 0)
			return 0;
	}
	for (p = rcvd; (p = strstr(p, "by ")) != NULL; p++) {
		const char *h = p + 3, *e = h;

		while (*e != '\0' && *e != ' ')
			e++;
		if (strncmp(h, "web", 3) == 0 && strstr(h, ".mail") &&
		    strstr(h, ".mail") < e && e - h > 10 &&
		    strncmp(e - 10, ".yahoo.com", 10) == 0 &&
		    strncmp(e, " via HTTP", 9) == 0)
			return 0;
		if (strncmp(h, "sonic", 5) == 0 && e - h > 10 &&
		    strncmp(e - 10, ".yahoo.com", 10) == 0 &&
		    strstr(h, ".consmr.mail") &&
		    strstr(h, ".consmr.mail") < e &&
		    strncmp(e, " with HTTP", 10) == 0)
			return 0;
		if (strncmp(h, "smtp", 4) == 0 && e - h > 14 &&
		    strncmp(e - 10, ".yahoo.com", 10) == 0 &&
		    strncmp(e, " with SMTP", 10) == 0)
			return 0;
		if (e - h > 10 && strncmp(e - 10, ".yahoo.com", 10) == 0 &&
		    (strncmp(e, " (", 2) == 0) &&
		    strstr(e, ") with ESMTP id ") && e[2] >= '0' &&
		    e[2] <= '9') {
			/* "by x.y.yahoo.com (8.8.8/8.8.8) [with ESMTP] id" */
			const char *q = strchr(e, ')');

			if (q != NULL &&
			    (strncmp(q, ") id ", 5) == 0 ||
				strncmp(q, ") with ESMTP id ", 16) == 0) &&
			    memchr(e, '/', (size_t)(q - e)) != NULL)
				return 0;
		}
	}
	if (strstr(rcvd, ".groups.yahoo.com with NNFMP") ||
	    strstr(rcvd, ".scd.yahoo.com with NNFMP") ||
	    strstr(rcvd, ".dcn.yahoo.com with NNFMP"))
		return 0;
	if (strstr(rcvd, ".bulk.scd.yahoo.com") && strstr(rcvd, "mailer") &&
	    ends_with_ci(hdr0(c, "From", SA_HM_ADDR), "@reply.yahoo.com"))
		return 0;
	return 1;
}

static int
ev_forged_gmail(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *xr, *rc;

	(void)r;
	(void)a;
	if (!from_in(c, "gmail.com"))
		return 0;
	xr = hdr0(c, "X-Received", 0);
	rc = hdr0(c, "Received", 0);
	if ((strstr(xr, "by 10.") || strstr(xr, "by 2002:a")) &&
	    strstr(xr, " with SMTP id "))
		return 0;
	if (strstr(rc, "by smtp.googlemail.com with ESMTPSA id "))
		return 0;
	if (strlen(hdr0(c, "X-Gm-Message-State", 0)) >= 61 &&
	    strlen(hdr0(c, "X-Google-Smtp-Source", 0)) >= 61)
		return 0;
	return 1;
}

static int
ev_forged_eudoramail(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *ip;

	(void)r;
	(void)a;
	if (!from_in(c, "eudoramail.com"))
		return 0;
	if (gated_through_received_hdr_remover(c))
		return 0;
	ip = hdr(c, "X-Sender-Ip", 0);
	if (ip != NULL && has_ip(ip) &&
	    strstr(received_text(c), "whowhere.com;"))
		return 0;
	return 1;
}

static int
ev_forged_juno(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *xo, *xm, *rc;

	(void)r;
	(void)a;
	if (!from_in(c, "juno.com"))
		return 0;
	if (gated_through_received_hdr_remover(c))
		return 0;
	xo = hdr0(c, "X-Originating-IP", 0);
	xm = hdr0(c, "X-Mailer", 0);
	rc = hdr0(c, "Received", 0);
	if (*xo != '\0') {
		if (!strstr(rc, "juno.com") && !strstr(rc, "untd.com"))
			return 1;
		if (strstr(xm, "Juno ") == NULL)
			return 1;
	} else {
		if (strstr(rc, "mail.com") && strstr(rc, "[")) {
			if (!strstr(xm, "mail.com"))
				return 1;
		} else if (strstr(rc, "from webmail") &&
		    strstr(rc, ".untd.com")) {
			if (strncmp(xm, "Webmail Version ", 16) != 0)
				return 1;
		} else
			return 1;
		if (!has_ip(xo))
			return 1;
	}
	return 0;
}

static int
ev_fake_aol_relay(
    struct sa_ctx *c, const struct sa_rule *r, const struct sa_evalargs *a)
{
	const char *rc = received_text(c), *p;

	(void)r;
	(void)a;
	for (p = rc; (p = strstr(p, " rly-")) != NULL; p++) {
		const char *q = p + 5;

		if (ascii_isalpha((unsigned char)q[0]) &&
		    ascii_isalpha((unsigned char)q[1]) &&
		    ascii_isdigit((unsigned char)q[2]) &&
		    ascii_isdigit((unsigned char)q[3]) && q[4] == '.') {
			const char *s;

			for (s = rc; (s = strstr(s, "/AOL-")) != NULL; s++)
				if (ascii_isdigit((unsigned char)s[5]))
					return 0;
			if (strstr(rc, "ESMTP id RELAY") ||
			    strstr(rc, "ESMTP id MAILRELAY") ||
			    strstr(rc, "ESMTP id MAILIN"))
				return 0;
			return 1;
		}
	}
	return 0;
}

static const struct sa_evaldef relay_evals[] = {
	{ "check_all_trusted", ev_all_trusted, 0, 0 },
	{ "check_no_relays", ev_no_relays, 0, 0 },
	{ "check_relays_unparseable", ev_unparseable, 0, 0 },
	{ "helo_ip_mismatch", ev_helo_ip_mismatch, 0, 0 },
	{ "check_for_numeric_helo", ev_numeric_helo, 0, 0 },
	{ "check_for_sender_no_reverse", ev_sender_no_reverse, 0, 0 },
	{ "check_for_no_rdns_dotcom_helo", ev_no_rdns_dotcom_helo, 0, 0 },
	{ "check_for_forged_received_trail", ev_forged_trail, 0, 0 },
	{ "check_for_forged_received_ip_helo", ev_forged_ip_helo, 0, 0 },
	{ "check_for_forged_hotmail_received_headers", ev_forged_hotmail, 0,
	    0 },
	{ "check_for_no_hotmail_received_headers", ev_no_hotmail, 0, 0 },
	{ "check_for_forged_yahoo_received_headers", ev_forged_yahoo, 0, 0 },
	{ "check_for_forged_gmail_received_headers", ev_forged_gmail, 0, 0 },
	{ "check_for_forged_juno_received_headers", ev_forged_juno, 0, 0 },
	{ "check_for_forged_eudoramail_received_headers", ev_forged_eudoramail,
	    0, 0 },
	{ "check_for_fake_aol_relay_in_rcvd", ev_fake_aol_relay, 0, 0 },
};

const struct sa_evaldef *
sa_eval_relay_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(relay_evals); i++)
		if (strcmp(relay_evals[i].name, name) == 0)
			return &relay_evals[i];
	return NULL;
}
