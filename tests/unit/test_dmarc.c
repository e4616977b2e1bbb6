/*
 * test_dmarc.c - proxy/from_field.c (the From field: one mailbox or
 * nothing) and filters/dmarc/dmarc_eval.c: the Organizational Domain and
 * alignment against the Public Suffix List, the choice and parsing of DMARC
 * records, the reading of Authentication-Results clauses, and the evaluation
 * (any aligned pass, p/sp, pct sampling).
 */
#include <stdio.h>
#include <string.h>

#include "dmarc_eval.h"
#include "from_field.h"
#include "tap.h"

/* The value for a test name: controls shown as '?', cut at 60. */
static const char *
shown(const char *v)
{
	static char buf[64];
	size_t	    i;

	for (i = 0; v[i] != '\0' && i + 1 < sizeof(buf); i++)
		buf[i] = (unsigned char)v[i] < 0x20 ? '?' : v[i];
	buf[i] = '\0';
	return buf;
}

static void
from_ok(const char *value, const char *want)
{
	char	    dom[DMARC_DOMAIN_MAX];
	const char *why = "";
	int	    rc =
	    from_field_domain(value, strlen(value), dom, sizeof(dom), &why);

	ok(rc == 0 && strcmp(dom, want) == 0, "From: %s -> %s (got %s%s)",
	    shown(value), want, rc == 0 ? dom : "error: ", rc == 0 ? "" : why);
}

static void
from_bad(const char *value, const char *want_why)
{
	char	    dom[DMARC_DOMAIN_MAX];
	const char *why = "";
	int	    rc =
	    from_field_domain(value, strlen(value), dom, sizeof(dom), &why);

	ok(rc == -1 && strstr(why, want_why) != NULL,
	    "From: [%s] refused: %s (got %s)", shown(value), want_why,
	    rc == -1 ? why : dom);
}

static void
test_from(void)
{
	from_ok("Joe <joe@example.com>", "example.com");
	from_ok("joe@Example.COM", "example.com");
	from_ok("\"victim@bank.com\" <a@evil.com>", "evil.com");
	from_ok("\"Doe, John\" <john@example.com>", "example.com");
	from_ok("joe@example.com (a comment (nested))", "example.com");
	from_ok("(c) Joe (x) <joe@example.com> (y)", "example.com");
	from_ok("John Q. Public <jqp@example.com>", "example.com");
	from_ok("=?utf-8?q?J=C3=B6?= <j@example.com>", "example.com");
	from_ok("\"a@b\"@c.example.com", "c.example.com");
	from_ok("Joe\r\n <joe@example.com>", "example.com");
	from_ok("j\xc3\xb6@b\xc3\xbc"
		"cher.example",
	    "xn--bcher-kva.example");
	from_bad("", "without an address");
	from_bad("  (only a comment) ", "without an address");
	from_bad("a@evil.com, b@bank.com", "several addresses");
	from_bad("a@b.com,", "several addresses");
	from_bad("<a@b.com> <c@d.com>", "several addresses");
	from_bad("undisclosed-recipients:;", "group");
	from_bad("g: a@x.com;", "group");
	from_bad("foo", "without a domain");
	from_bad("<>", "without a domain");
	from_bad("Joe <joe@[192.0.2.1]>", "address literal");
	from_bad("joe@localhost", "not a valid domain");
	from_bad("joe@exa_mple.com", "not a valid domain");
	from_bad("joe@-example.com", "not a valid domain");
	from_bad("Joe <joe@example.com", "cannot be parsed");
	from_bad("joe@example.com>", "cannot be parsed");
	from_bad("Joe >joe@example.com>", "cannot be parsed");
	from_bad("<joe@example.com>(c)@evil.com", "cannot be parsed");
	from_bad("Joe@x <joe@example.com>", "cannot be parsed");
	from_bad("joe@@example.com", "cannot be parsed");
	from_bad("joe@example..com", "cannot be parsed");
	from_bad("joe@example.com.", "cannot be parsed");
	from_bad(".joe@example.com", "cannot be parsed");
	from_bad("joe@example.com (unclosed", "cannot be parsed");
	from_bad("\"unclosed@example.com", "cannot be parsed");
	from_bad("joe@exa mple.com", "cannot be parsed");
	from_bad("joe\x01@example.com", "cannot be parsed");
	{
		char deep[200];

		memset(deep, '(', 100);
		strcpy(deep + 100, "a@example.com");
		from_bad(deep, "cannot be parsed");
	}
	{
		static char huge[FROM_FIELD_MAX + 10];

		memset(huge, 'a', sizeof(huge) - 1);
		from_bad(huge, "too long");
	}
}

static void
test_domains(void)
{
	char o[DMARC_DOMAIN_MAX];

	dmarc_org_domain("mail.example.co.uk", o, sizeof(o));
	is_str(o, "example.co.uk", "org domain of mail.example.co.uk");
	dmarc_org_domain("a.b.example.com", o, sizeof(o));
	is_str(o, "example.com", "org domain of a.b.example.com");
	dmarc_org_domain("co.uk", o, sizeof(o));
	is_str(o, "co.uk", "a public suffix is its own org domain");
	ok(dmarc_aligned("mail.example.com", "example.com", 0),
	    "relaxed: subdomain aligns");
	ok(dmarc_aligned("example.com", "news.example.com", 0),
	    "relaxed: parent aligns");
	ok(dmarc_aligned("a.example.com", "b.example.com", 0),
	    "relaxed: siblings align");
	ok(!dmarc_aligned("mail.example.com", "example.com", 1),
	    "strict: subdomain does not align");
	ok(dmarc_aligned("EXAMPLE.com.", "example.com", 1),
	    "strict: case and final dot do not matter");
	ok(!dmarc_aligned("co.uk", "example.co.uk", 0),
	    "a public suffix never aligns (libopendmarc says it does)");
	ok(!dmarc_aligned("com", "example.com", 0), "com does not align");
	ok(!dmarc_aligned("example.co.uk", "other.co.uk", 0),
	    "two registrations under co.uk do not align");
	ok(!dmarc_aligned("ample.com", "example.com", 0),
	    "a suffix of the string is not a parent");
	ok(!dmarc_aligned("", "example.com", 0), "empty never aligns");
}

static void
test_records(void)
{
	const char	   *one[] = { "v=spf1 -all", "v=DMARC1; p=none" };
	const char	   *two[] = { "v=DMARC1; p=none", "v=DMARC1;p=reject" };
	const char	   *bad[] = { "v=DMARC10; p=none", "x v=DMARC1",
			"p=reject; v=DMARC1", "v=dmarc1; p=none" };
	struct dmarc_record r;
	const char	   *why = "";

	is_int(dmarc_record_pick(one, 2), 1, "pick: the DMARC one of two TXT");
	is_int(dmarc_record_pick(two, 2), -2, "pick: two DMARC records");
	is_int(dmarc_record_pick(bad, 4), -1,
	    "pick: v=DMARC1 must come first, exactly, case-sensitive");
	ok(dmarc_record_parse("example.com",
	       "v=DMARC1; p=reject; sp=quarantine; pct=30; adkim=s; "
	       "rua=mailto:a@example.com,mailto:b@example.com",
	       &r, &why) == 0 &&
		r.p == DMARC_POL_REJECT && r.sp == DMARC_POL_QUARANTINE &&
		r.pct == 30 && r.adkim_strict && !r.aspf_strict &&
		strcmp(r.rua, "mailto:a@example.com,mailto:b@example.com") == 0,
	    "parse: every tag");
	ok(dmarc_record_parse("example.com", "v=DMARC1; p=none", &r, &why) ==
		    0 &&
		r.pct == 100 && r.sp == DMARC_POL_UNSET && !r.adkim_strict,
	    "parse: defaults (pct 100, relaxed, sp as p)");
	ok(dmarc_record_parse("example.com",
	       "v=DMARC1; rua=mailto:a@example.com", &r, &why) == 0 &&
		r.p == DMARC_POL_NONE,
	    "parse: no p= but a rua= is p=none (RFC 7489 6.6.3)");
	ok(dmarc_record_parse("example.com", "v=DMARC1; sp=reject", &r, &why) ==
		-1,
	    "parse: no p= and no rua=: unusable (%s)", why);
	ok(dmarc_record_parse("example.com", "v=DMARC1; p=bogus", &r, &why) ==
		-1,
	    "parse: p=bogus unusable (%s)", why);
	ok(dmarc_record_parse(
	       "example.com", "v=DMARC1; p=none; x=y", &r, &why) == 0,
	    "parse: unknown tags ignored");
}

static void
test_auth(void)
{
	const char *ar[] = { "spf=pass smtp.mailfrom=Bounce@Mail.Example.COM",
		"dkim=fail (body (nested) hash mismatch) header.d=example.com "
		"header.s=s1 header.b=abc",
		"dkim=pass header.d=other.org header.s=s2",
		"spf=fail smtp.mailfrom=later@x.org", "dmarc=pass" };
	const char *helo[] = { "spf=pass smtp.helo=mx.example.net" };
	struct dmarc_auth a;

	dmarc_auth_read(ar, 5, &a);
	ok(a.spf == 1 && strcmp(a.spf_domain, "mail.example.com") == 0 &&
		!a.spf_helo,
	    "A-R: the first spf= clause, its domain in lower case");
	ok(a.ndkim == 2 && !a.dkim[0].pass &&
		strcmp(a.dkim[0].domain, "example.com") == 0 &&
		strcmp(a.dkim[0].selector, "s1") == 0 && a.dkim[1].pass &&
		strcmp(a.dkim[1].domain, "other.org") == 0,
	    "A-R: dkim= clauses, comments skipped");
	dmarc_auth_read(helo, 1, &a);
	ok(a.spf == 1 && a.spf_helo &&
		strcmp(a.spf_domain, "mx.example.net") == 0,
	    "A-R: smtp.helo (null sender)");
	dmarc_auth_read(NULL, 0, &a);
	ok(a.spf == -1 && a.ndkim == 0, "A-R: nothing reported");
}

static void
test_evaluate(void)
{
	struct dmarc_record r = {
		.p = DMARC_POL_REJECT, .sp = DMARC_POL_NONE, .pct = 100
	};
	struct dmarc_auth    a;
	struct dmarc_outcome o;
	const char	    *ar[] = { "spf=pass smtp.mailfrom=x@other.org",
			 "dkim=fail header.d=example.com",
			 "dkim=pass header.d=unrelated.net",
			 "dkim=pass header.d=mail.example.com" };

	dmarc_auth_read(ar, 4, &a);
	dmarc_evaluate("example.com", &r, 0, &a, 0, &o);
	ok(o.res == DMARC_RES_PASS && o.dkim_aligned && !o.spf_aligned &&
		strcmp(o.dkim_domain, "mail.example.com") == 0,
	    "any aligned DKIM pass among several signatures passes");
	r.adkim_strict = 1;
	dmarc_evaluate("example.com", &r, 0, &a, 0, &o);
	ok(o.res == DMARC_RES_FAIL && o.disposition == DMARC_POL_REJECT,
	    "strict DKIM: fail, p=reject");
	dmarc_evaluate("example.com", &r, 1, &a, 0, &o);
	ok(o.res == DMARC_RES_FAIL && o.policy == DMARC_POL_NONE,
	    "the org domain's record: sp applies");
	r.pct = 50;
	dmarc_evaluate("example.com", &r, 0, &a, 49, &o);
	ok(o.disposition == DMARC_POL_REJECT, "pct=50, sample 49: reject");
	dmarc_evaluate("example.com", &r, 0, &a, 50, &o);
	ok(o.disposition == DMARC_POL_QUARANTINE,
	    "pct=50, sample 50: quarantine (6.6.4)");
	r.p = DMARC_POL_QUARANTINE;
	dmarc_evaluate("example.com", &r, 0, &a, 99, &o);
	ok(o.disposition == DMARC_POL_NONE,
	    "quarantine outside the sample: none");
	dmarc_evaluate("other.org", &r, 0, &a, 0, &o);
	ok(o.res == DMARC_RES_PASS && o.spf_aligned,
	    "SPF pass of the From domain passes");
	dmarc_evaluate("example.com", NULL, 0, &a, 0, &o);
	ok(o.res == DMARC_RES_NONE, "no record: none");
}

int
main(void)
{
	if (!ok(dmarc_eval_init() == 0, "the Public Suffix List loads"))
		return tap_done();
	test_from();
	test_domains();
	test_records();
	test_auth();
	test_evaluate();
	return tap_done();
}
