/*
 * test_spf.c - filters/spf/spf_eval.c beyond the RFC 7208 test suite
 * (tests/integration/test_spf_suite.py): the evaluation's API (clients,
 * identities, rounds of missing questions and answers), DNS errors, the
 * processing limits, explanations, and spf_record_check().
 *
 * Each test's zone is a table; its records are handed to the evaluation
 * as a resolver would hand them, one round at a time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_eval.h"
#include "tap.h"
#include "util.h"

#define T_TIMEOUT  (-1) /* the name times out */
#define MAX_ROUNDS 50

struct zrec {
	const char *name;
	int	    type; /* DNS_T_*, or T_TIMEOUT */
	const char *value;
};

/* Answer one question from a zone: records, timeout, NODATA, NXDOMAIN. */
static void
zone_answer(
    struct spf_eval *e, const struct zrec *z, const char *name, int type)
{
	struct spf_rr rr[16];
	size_t	      n = 0;
	int	      exists = 0, timeout = 0;

	for (; z != NULL && z->name != NULL; z++) {
		if (strcasecmp(z->name, name) != 0)
			continue;
		exists = 1;
		if (z->type == T_TIMEOUT)
			timeout = 1;
		else if (z->type == type && n < nitems(rr)) {
			rr[n].text = (char *)z->value;
			rr[n].len = strlen(z->value);
			n++;
		}
	}
	if (n > 0)
		spf_eval_answer(e, name, type, DNS_OK, rr, n);
	else if (timeout)
		spf_eval_answer(e, name, type, DNS_TIMEOUT, NULL, 0);
	else
		spf_eval_answer(
		    e, name, type, exists ? DNS_NODATA : DNS_NXDOMAIN, NULL, 0);
}

static void
answer_missing(struct spf_eval *e, const struct zrec *z)
{
	size_t i;

	for (i = 0; i < e->nmissing; i++)
		zone_answer(e, z, e->missing[i].name, e->missing[i].type);
}

static int
is_missing(const struct spf_eval *e, const char *name, int type)
{
	size_t i;

	for (i = 0; i < e->nmissing; i++)
		if (e->missing[i].type == type &&
		    strcmp(e->missing[i].name, name) == 0)
			return 1;
	return 0;
}

static struct spf_eval *
new_eval(
    const char *ip, enum spf_identity id, const char *helo, const char *sender)
{
	struct sockaddr_storage ss;
	struct sockaddr_in     *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6    *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		return NULL;
	return spf_eval_new(
	    (struct sockaddr *)&ss, id, helo, sender, "receiver.example");
}

/* Run to the end, answering from the zone; NULL if it does not end. */
static struct spf_eval *
evaluate(const struct zrec *z, const char *ip, enum spf_identity id,
    const char *helo, const char *sender)
{
	struct spf_eval *e;
	int		 round;

	if ((e = new_eval(ip, id, helo, sender)) == NULL)
		return NULL;
	for (round = 0; round < MAX_ROUNDS; round++) {
		if (spf_eval_run(e))
			return e;
		answer_missing(e, z);
	}
	spf_eval_free(e);
	return NULL;
}

/* The verdict of an evaluation from a zone, by name ("?" if none). */
static const char *
verdict(const struct zrec *z, const char *ip, const char *sender)
{
	static char	 out[32];
	struct spf_eval *e;

	if ((e = evaluate(z, ip, SPF_ID_MAILFROM, "helo.example", sender)) ==
	    NULL)
		return "?";
	snprintf(out, sizeof(out), "%s", spf_verdict_name(e->result));
	spf_eval_free(e);
	return out;
}

static void
test_mapped_client(void)
{
	static const struct zrec ip6only[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 ip6:::ffff:192.0.2.1 ip6:::ffff:0:0/96 -all" },
		{ NULL, 0, NULL }
	};
	static const struct zrec ip4[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 ip6:::ffff:192.0.2.1 ip4:192.0.2.1 -all" },
		{ NULL, 0, NULL }
	};
	static const struct zrec amech[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 exists:%{v}.%{i}.x.example -all" },
		{ "in-addr.192.0.2.1.x.example", DNS_T_A, "127.0.0.2" },
		{ NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = new_eval("::ffff:192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->client.ss_family == AF_INET,
	    "mapped: ::ffff:192.0.2.1 made AF_INET");
	spf_eval_free(e);
	is_str(verdict(ip6only, "::ffff:192.0.2.1", "user@example.com"), "fail",
	    "mapped: ip6: does not match an IPv4-mapped client");
	e = evaluate(ip4, "::ffff:192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_PASS,
	    "mapped: ip4: matches an IPv4-mapped client");
	is_str(e ? e->mechanism : NULL, "ip4:192.0.2.1", "mapped: mechanism");
	spf_eval_free(e);
	is_str(verdict(amech, "::ffff:192.0.2.1", "user@example.com"), "pass",
	    "mapped: %%{v} is in-addr, %%{i} dotted quad");
	is_str(verdict(ip4, "192.0.2.1", "user@example.com"), "pass",
	    "plain IPv4 client: ip4: matches");
	is_str(verdict(ip6only, "2001:db8::1", "user@example.com"), "fail",
	    "IPv6 client: neither matches");
}

static void
test_null_sender(void)
{
	static const struct zrec z[] = {
		{ "helo.example", DNS_T_TXT,
		    "v=spf1 exists:%{l}.%{o}.%{d}.chk.example -all" },
		{ "postmaster.helo.example.helo.example.chk.example", DNS_T_A,
		    "127.0.0.2" },
		{ "example.com", DNS_T_TXT, "v=spf1 -all" }, { NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = evaluate(z, "192.0.2.1", SPF_ID_MAILFROM, "helo.example", "");
	ok(e != NULL, "null sender: finishes");
	if (e == NULL)
		return;
	is_int(e->identity, SPF_ID_HELO, "null sender: identity HELO");
	is_str(e->sender, "postmaster@helo.example",
	    "null sender: postmaster@HELO");
	is_str(e->domain, "helo.example", "null sender: HELO domain checked");
	is_int(e->result, SPF_V_PASS, "null sender: %%{l}/%%{o} of HELO");
	spf_eval_free(e);

	e = evaluate(z, "192.0.2.1", SPF_ID_MAILFROM, "helo.example", NULL);
	ok(e != NULL && e->identity == SPF_ID_HELO &&
		strcmp(e->sender, "postmaster@helo.example") == 0 &&
		e->result == SPF_V_PASS,
	    "NULL sender: as the null sender");
	spf_eval_free(e);

	e = evaluate(
	    z, "192.0.2.1", SPF_ID_HELO, "helo.example", "user@example.com");
	ok(e != NULL && e->identity == SPF_ID_HELO &&
		strcmp(e->domain, "helo.example") == 0 &&
		e->result == SPF_V_PASS,
	    "HELO identity: the HELO name, not the sender, is checked");
	spf_eval_free(e);

	e = evaluate(z, "192.0.2.1", SPF_ID_MAILFROM, "helo", "");
	ok(e != NULL && e->result == SPF_V_NONE && e->runs == 1,
	    "null sender, single-label HELO: none without DNS");
	spf_eval_free(e);
}

static void
test_no_local_part(void)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 exists:%{l}.%{o}.chk.example -all" },
		{ "postmaster.example.com.chk.example", DNS_T_A, "127.0.0.2" },
		{ NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = evaluate(
	    z, "192.0.2.1", SPF_ID_MAILFROM, "helo.example", "example.com");
	ok(e != NULL, "no local part: finishes");
	if (e == NULL)
		return;
	is_int(e->identity, SPF_ID_MAILFROM, "no local part: MAIL FROM");
	is_str(e->sender, "postmaster@example.com",
	    "no local part: postmaster added");
	is_str(e->domain, "example.com", "no local part: domain");
	is_int(e->result, SPF_V_PASS, "no local part: %%{l} is postmaster");
	spf_eval_free(e);

	e = evaluate(
	    z, "192.0.2.1", SPF_ID_MAILFROM, "helo.example", "@example.com");
	ok(e != NULL && strcmp(e->sender, "postmaster@example.com") == 0 &&
		e->result == SPF_V_PASS,
	    "empty local part: postmaster@domain");
	spf_eval_free(e);
}

static void
test_rounds(void)
{
	static const struct zrec z[] = { { "example.com", DNS_T_TXT,
					     "v=spf1 include:a.example -all" },
		{ "a.example", DNS_T_TXT, "v=spf1 include:b.example -all" },
		{ "b.example", DNS_T_TXT, "v=spf1 ip4:192.0.2.0/24 -all" },
		{ NULL, 0, NULL } };
	static const char *const want[] = { "example.com", "a.example",
		"b.example" };
	struct spf_eval		*e;
	size_t			 i;

	e = new_eval(
	    "192.0.2.1", SPF_ID_MAILFROM, "helo.example", "user@example.com");
	for (i = 0; i < nitems(want); i++) {
		ok(spf_eval_run(e) == 0, "include chain: run %zu misses",
		    i + 1);
		is_int(e->nmissing, 1, "include chain: run %zu, one question",
		    i + 1);
		ok(is_missing(e, want[i], DNS_T_TXT),
		    "include chain: run %zu misses TXT %s", i + 1, want[i]);
		answer_missing(e, z);
	}
	ok(spf_eval_run(e) == 1, "include chain: finishes after answers");
	is_int(e->nmissing, 0, "include chain: nothing missing at the end");
	is_int(e->runs, 4, "include chain: four runs");
	is_int(e->result, SPF_V_PASS, "include chain: pass");
	is_str(e->mechanism, "include:a.example",
	    "include chain: the top-level mechanism");
	is_int(e->terms, 2, "include chain: two DNS-querying terms");
	ok(spf_eval_run(e) == 1 && e->result == SPF_V_PASS && e->runs == 5,
	    "include chain: running again replays the answers");
	spf_eval_free(e);
}

static void
test_mx_parallel(void)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 mx -all" },
		{ "example.com", DNS_T_MX, "mx1.example" },
		{ "example.com", DNS_T_MX, "mx2.example" },
		{ "example.com", DNS_T_MX, "mx3.example" },
		{ "mx1.example", DNS_T_A, "198.51.100.1" },
		{ "mx2.example", DNS_T_A, "198.51.100.2" },
		{ "mx3.example", DNS_T_A, "192.0.2.1" },
		{ "mx3.example", DNS_T_AAAA, "2001:db8::1" }, { NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = new_eval(
	    "192.0.2.1", SPF_ID_MAILFROM, "helo.example", "user@example.com");
	ok(spf_eval_run(e) == 0 && is_missing(e, "example.com", DNS_T_TXT),
	    "mx: run 1 misses the record");
	answer_missing(e, z);
	ok(spf_eval_run(e) == 0 && e->nmissing == 1 &&
		is_missing(e, "example.com", DNS_T_MX),
	    "mx: run 2 misses the MX");
	answer_missing(e, z);
	ok(spf_eval_run(e) == 0, "mx: run 3 misses the hosts");
	is_int(e->nmissing, 3, "mx: all three hosts in the same round");
	ok(is_missing(e, "mx1.example", DNS_T_A) &&
		is_missing(e, "mx2.example", DNS_T_A) &&
		is_missing(e, "mx3.example", DNS_T_A),
	    "mx: A of mx1, mx2, mx3 missing");
	answer_missing(e, z);
	ok(spf_eval_run(e) == 1 && e->result == SPF_V_PASS, "mx: run 4 passes");
	is_int(e->runs, 4, "mx: four runs");
	spf_eval_free(e);

	e = new_eval(
	    "2001:db8::1", SPF_ID_MAILFROM, "helo.example", "user@example.com");
	spf_eval_run(e);
	answer_missing(e, z);
	spf_eval_run(e);
	answer_missing(e, z);
	ok(spf_eval_run(e) == 0 && e->nmissing == 3 &&
		is_missing(e, "mx1.example", DNS_T_AAAA) &&
		is_missing(e, "mx3.example", DNS_T_AAAA),
	    "mx, IPv6 client: AAAA of all hosts in one round");
	answer_missing(e, z);
	ok(spf_eval_run(e) == 1 && e->result == SPF_V_PASS,
	    "mx, IPv6 client: pass");
	spf_eval_free(e);
}

static void
test_dns_errors(void)
{
	static const struct zrec timeout[] = {
		{ "example.com", T_TIMEOUT, NULL }, { NULL, 0, NULL }
	};
	static const struct zrec nodata[] = {
		{ "example.com", DNS_T_A, "192.0.2.1" }, { NULL, 0, NULL }
	};
	static const struct zrec notspf[] = {
		{ "example.com", DNS_T_TXT, "google-site-verification=x" },
		{ "example.com", DNS_T_TXT, "v=spf10 -all" }, { NULL, 0, NULL }
	};
	static const struct zrec two[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 -all" },
		{ "example.com", DNS_T_TXT, "v=spf1 +all" }, { NULL, 0, NULL }
	};
	static const struct zrec inctimeout[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 include:t.example -all" },
		{ "t.example", T_TIMEOUT, NULL }, { NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = evaluate(timeout, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_TEMPERROR,
	    "DNS_TIMEOUT on the record: temperror");
	ok(e != NULL && strstr(e->problem, "example.com") != NULL,
	    "temperror: the problem names the domain (%s)",
	    e ? e->problem : "");
	spf_eval_free(e);
	is_str(verdict(inctimeout, "192.0.2.1", "user@example.com"),
	    "temperror", "DNS_TIMEOUT on an included record: temperror");
	is_str(verdict(NULL, "192.0.2.1", "user@example.com"), "none",
	    "NXDOMAIN: none");
	is_str(verdict(nodata, "192.0.2.1", "user@example.com"), "none",
	    "no TXT record: none");
	is_str(verdict(notspf, "192.0.2.1", "user@example.com"), "none",
	    "TXT records that are not SPF: none");
	is_str(verdict(two, "192.0.2.1", "user@example.com"), "permerror",
	    "two SPF records: permerror");
}

static void
test_limits(void)
{
	static const struct zrec ten[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 a a a a a a a a a a -all" },
		{ "example.com", DNS_T_A, "198.51.100.1" }, { NULL, 0, NULL }
	};
	static const struct zrec eleven[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 a a a a a a a a a a a -all" },
		{ "example.com", DNS_T_A, "198.51.100.1" }, { NULL, 0, NULL }
	};
	/*
	 * include (counts 2: itself and its a:), mx, a, ptr, a, mx,
	 * include (2), then redirect: 10 terms; one a: more makes 11.
	 */
	static const struct zrec incl[] = {
		{ "ten.example", DNS_T_TXT,
		    "v=spf1 include:i.example mx a ptr:x.example a:a.example "
		    "mx:m.example include:i.example redirect=r.example" },
		{ "ten.example", DNS_T_A, "198.51.100.1" },
		{ "ten.example", DNS_T_MX, "m.example" },
		{ "eleven.example", DNS_T_TXT,
		    "v=spf1 include:i.example mx a ptr:x.example a:a.example "
		    "mx:m.example include:i.example a:a.example "
		    "redirect=r.example" },
		{ "eleven.example", DNS_T_A, "198.51.100.1" },
		{ "eleven.example", DNS_T_MX, "m.example" },
		{ "i.example", DNS_T_TXT, "v=spf1 a:a.example ?all" },
		{ "a.example", DNS_T_A, "198.51.100.3" },
		{ "m.example", DNS_T_MX, "m.example" },
		{ "m.example", DNS_T_A, "198.51.100.4" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "p.example" },
		{ "p.example", DNS_T_A, "198.51.100.5" },
		{ "r.example", DNS_T_TXT, "v=spf1 +all" }, { NULL, 0, NULL }
	};
	static const struct zrec voids2[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 a:v1.example a:v2.example -all" },
		{ NULL, 0, NULL }
	};
	static const struct zrec voids3[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 a:v1.example mx:v2.example exists:v3.example "
		    "+all" },
		{ NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = evaluate(ten, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_FAIL && e->terms == 10,
	    "10 DNS-querying terms: evaluated (fail)");
	spf_eval_free(e);
	e = evaluate(eleven, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_PERMERROR,
	    "11 DNS-querying terms: permerror");
	ok(e != NULL && strstr(e->problem, "DNS-querying") != NULL,
	    "11 terms: problem \"%s\"", e ? e->problem : "");
	spf_eval_free(e);
	e = evaluate(incl, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@ten.example");
	ok(e != NULL && e->result == SPF_V_PASS && e->terms == 10,
	    "10 terms across include and redirect: evaluated (pass)");
	spf_eval_free(e);
	is_str(verdict(incl, "192.0.2.1", "user@eleven.example"), "permerror",
	    "11 terms across include and redirect: permerror");

	is_str(verdict(voids2, "192.0.2.1", "user@example.com"), "fail",
	    "two void lookups: evaluated (fail)");
	e = evaluate(voids3, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_PERMERROR,
	    "third void lookup: permerror");
	ok(e != NULL && e->voids == 3 && strstr(e->problem, "void") != NULL,
	    "third void lookup: problem \"%s\"", e ? e->problem : "");
	spf_eval_free(e);
}

static void
test_explanation(void)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 ip4:198.51.100.0/24 -all exp=why.%{d}" },
		{ "why.example.com", DNS_T_TXT,
		    "%{s} may not send from %{i} (%{c}) to %{r}" },
		{ NULL, 0, NULL }
	};
	static const struct zrec soft[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 ~all exp=why.example.com" },
		{ "why.example.com", DNS_T_TXT, "not %{s}" }, { NULL, 0, NULL }
	};
	static const struct zrec badexp[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 -all exp=why.example.com" },
		{ "why.example.com", DNS_T_TXT, "bad %{x} macro" },
		{ NULL, 0, NULL }
	};
	struct spf_eval *e;

	e = evaluate(z, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_FAIL, "exp: fail");
	is_str(e ? e->explanation : NULL,
	    "user@example.com may not send from 192.0.2.1 (192.0.2.1) "
	    "to receiver.example",
	    "exp: %%{s}, %%{i}, %%{c}, %%{r} expanded (IPv4)");
	is_str(e ? e->mechanism : NULL, "-all", "exp: mechanism -all");
	spf_eval_free(e);

	e = evaluate(z, "2001:db8::1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	is_str(e ? e->explanation : NULL,
	    "user@example.com may not send from "
	    "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1 "
	    "(2001:db8::1) to receiver.example",
	    "exp: %%{i} dotted nibbles, %%{c} compressed (IPv6)");
	spf_eval_free(e);

	e = evaluate(soft, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_SOFTFAIL && e->explanation == NULL,
	    "exp: none for a softfail");
	spf_eval_free(e);

	e = evaluate(badexp, "192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	ok(e != NULL && e->result == SPF_V_FAIL && e->explanation == NULL,
	    "exp: a malformed explanation is ignored, still fail");
	spf_eval_free(e);
}

/* The record printable, for a test point's description. */
static const char *
shown(const char *s)
{
	static char out[256];
	size_t	    o = 0;

	for (; *s != '\0' && o + 5 < sizeof(out); s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(
			    out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

static int
check(const char *rec, size_t len)
{
	char why[160];

	why[0] = '\0';
	if (spf_record_check(rec, len, why, sizeof(why)) == 0)
		return 0;
	return why[0] != '\0' ? -1 : -2; /* -2: rejected without a reason */
}

static void
test_record_check(void)
{
	static const char *const valid[] = {
		"v=spf1",
		"v=spf1 -all",
		"V=SPF1 -ALL",
		"v=spf1  ip4:192.0.2.0/24   ip6:2001:db8::/32 ~all ",
		"v=spf1 a mx ptr a/24 mx/24//64 a//64 ?all",
		"v=spf1 a:example.com/0 mx:mx.example.com/30//112 -all",
		"v=spf1 include:_spf.example.com ~all",
		"v=spf1 exists:%{ir}.%{l1r-}.%{d} -all",
		"v=spf1 exists:%{i}._spf.%{d2} -all",
		"v=spf1 ptr:example.com. ip4:0.0.0.0/0 -all",
		"v=spf1 redirect=_spf.example.com",
		"v=spf1 -all exp=explain.%{d}",
		"v=spf1 foo=bar unknown-mod=%{h}%% -all",
		"v=spf1 a:%{d} -all",
	};
	static const char *const invalid[] = {
		"",
		"spf1 -all",
		"v=spf10 -all",
		"v=spf1 ip4:1.2.3.4/032",
		"v=spf1 ip4:1.2.3",
		"v=spf1 ip4:01.2.3.4",
		"v=spf1 ip4:1.2.3.4/33",
		"v=spf1 ip6:2001:db8::/129",
		"v=spf1 ip6:1.2.3.4",
		"v=spf1 a:foo.123",
		"v=spf1 a:foo",
		"v=spf1 a//",
		"v=spf1 a/24/",
		"v=spf1 exp=a exp=b",
		"v=spf1 exp=a.example exp=b.example",
		"v=spf1 redirect=a.example redirect=b.example",
		"v=spf1 redirect:x.example",
		"v=spf1 include",
		"v=spf1 include:",
		"v=spf1 all:foo.example",
		"v=spf1 exists:%{z}.example",
		"v=spf1 exists:%{d0}.example",
		"v=spf1 exists:%{d.example",
		"v=spf1 a:%.example",
		"v=spf1 a\t-all",
		"v=spf1 -all\tip4:1.2.3.4",
		"v=spf1 a:ex\x80mple.com -all",
		"v=spf1 -all \xc3\xa9",
		"v=spf1 *all",
	};
	static const char nul[] = "v=spf1 -all\0 +all";
	static const char unterminated[] = "v=spf1 exists:%{ir}:%{i2";
	char		 *exact;
	char		  why[160];
	size_t		  i;

	for (i = 0; i < nitems(valid); i++)
		is_int(check(valid[i], strlen(valid[i])), 0,
		    "record_check accepts \"%s\"", valid[i]);
	for (i = 0; i < nitems(invalid); i++)
		is_int(check(invalid[i], strlen(invalid[i])), -1,
		    "record_check rejects \"%s\"", shown(invalid[i]));
	is_int(check(nul, sizeof(nul) - 1), -1, "record_check rejects a NUL");
	is_int(check(nul, strlen(nul)), 0,
	    "record_check: the length, not the NUL, ends the record");
	ok(spf_record_check("v=spf1 a\t-all", 13, why, sizeof(why)) == -1 &&
		strstr(why, "0x09") != NULL,
	    "record_check: the tab is named (%s)", why);
	ok(spf_record_check("v=spf1 exp=a.example exp=b.example", 34, why,
	       sizeof(why)) == -1 &&
		strstr(why, "twice") != NULL,
	    "record_check: exp twice (%s)", why);
	/* Found by fuzz_spf: a macro's digits ending the buffer. */
	exact = xmalloc(sizeof(unterminated) - 1);
	memcpy(exact, unterminated, sizeof(unterminated) - 1);
	is_int(check(exact, sizeof(unterminated) - 1), -1,
	    "record_check: macro digits at the end of an unterminated buffer");
	free(exact);
	ok(spf_record_check("v=spf1 -all", 11, why, 8) == 0,
	    "record_check: a small why is fine when valid");
	ok(spf_record_check("v=spf1 bogus:x.example", 22, why, 8) == -1 &&
		strlen(why) < 8,
	    "record_check: why cut to its size");
}

static void
test_invalid_record_eval(void)
{
	static const struct zrec z[] = { { "example.com", DNS_T_TXT,
					     "v=spf1 ip4:192.0.2.1 a:foo.123" },
		{ NULL, 0, NULL } };

	is_str(verdict(z, "192.0.2.1", "user@example.com"), "permerror",
	    "a syntax error anywhere: permerror, even after a match");
}

/* Answers past SPF_EVAL_MAX_BYTES are not kept: permerror, bounded memory. */
static void
test_answer_bytes(void)
{
	static char	 big[60 * 1024];
	struct spf_eval *e;
	struct spf_rr	 rr = { big, 0 };
	int		 i, round;

	/* a valid record ("?all" after many spaces): each include goes on */
	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "v=spf1", 6);
	memcpy(big + sizeof(big) - 5, "?all", 4);
	rr.len = sizeof(big) - 1;
	e = new_eval("192.0.2.1", SPF_ID_MAILFROM, "helo.example",
	    "user@example.com");
	for (round = 0; round < MAX_ROUNDS && !spf_eval_run(e); round++)
		for (i = 0; i < (int)e->nmissing; i++) {
			if (e->missing[i].type == DNS_T_TXT &&
			    strcmp(e->missing[i].name, "example.com") == 0) {
				struct spf_rr rec = { "v=spf1 include:a.example "
						      "include:b.example "
						      "include:c.example "
						      "include:d.example "
						      "include:e.example -all",
					0 };

				rec.len = strlen(rec.text);
				spf_eval_answer(e, e->missing[i].name,
				    DNS_T_TXT, DNS_OK, &rec, 1);
			} else
				spf_eval_answer(e, e->missing[i].name,
				    e->missing[i].type, DNS_OK, &rr, 1);
		}
	is_str(spf_verdict_name(e->result), "permerror",
	    "answers over SPF_EVAL_MAX_BYTES: permerror");
	is_str(e->problem, "DNS answers too large", "... saying why");
	ok(e->bytes <= SPF_EVAL_MAX_BYTES, "record text kept is bounded (%zu)",
	    e->bytes);
	spf_eval_free(e);
}

int
main(void)
{
	test_mapped_client();
	test_null_sender();
	test_no_local_part();
	test_rounds();
	test_mx_parallel();
	test_dns_errors();
	test_limits();
	test_explanation();
	test_record_check();
	test_invalid_record_eval();
	test_answer_bytes();
	return tap_done();
}
