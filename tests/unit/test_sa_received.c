/*
 * test_sa_received.c - unit tests for filters/spam/sa_received.c: the
 * Received parser against SpamAssassin 4.0.1's own outcome for the same
 * lines (the expected strings were produced by its
 * Message::Metadata::Received::parse_received_line), the trust walk
 * (inference without trusted_networks, configured networks, the session
 * relay, fetcher restarts), the pseudo-header text, hostile input.
 *
 * Single-threaded.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "sa_received.h"
#include "tap.h"

struct rcase {
	const char *line;
	const char *want; /* relay text, or SKIP / FETCHER / UNPARSEABLE */
	int	    no_rdns;
};

static const struct rcase cases[] = {
	{ "from localhost (localhost [127.0.0.1]) by cabbage.jmason.org "
	  "(Postfix) with ESMTP id A96E18BD97 for <jm@localhost>; Thu, 13 Mar "
	  "2003 15:23:15 -0500 (EST)",
	    "[ ip=127.0.0.1 rdns=localhost helo=localhost "
	    "by=cabbage.jmason.org ident= envfrom= intl=0 id=A96E18BD97 auth= "
	    "msa=0 ]",
	    0 },
	{ "from 200.161.16.132 (unknown [210.19.113.130]) by smtp.easydns.com "
	  "(Postfix) with SMTP id 694632EE5A for "
	  "<zzzz@spamassassin.taint.org>; Thu, 22 Aug 2002 11:12:57 -0400 "
	  "(EDT)",
	    "[ ip=210.19.113.130 rdns= helo=200.161.16.132 by=smtp.easydns.com "
	    "ident= envfrom= intl=0 id=694632EE5A auth= msa=0 ]",
	    1 },
	{ "from mail1.insuranceiq.com (host66.insuranceiq.com [65.217.159.66] "
	  "(may be forged)) by dogma.slashnull.org (8.11.6/8.11.6) with ESMTP "
	  "id h2F0c2x31856 for <jm@jmason.org>; Sat, 15 Mar 2003 00:38:03 GMT",
	    "[ ip=65.217.159.66 rdns=host66.insuranceiq.com "
	    "helo=mail1.insuranceiq.com by=dogma.slashnull.org ident= envfrom= "
	    "intl=0 id=h2F0c2x31856 auth= msa=0 ]",
	    0 },
	{ "from ran-out.mx.develooper.com (IDENT:qmailr@one.develooper.com "
	  "[64.81.84.115]) by dogma.slashnull.org (8.11.6/8.11.6) with SMTP id "
	  "h381Vvf19860 for <jm-cpan@jmason.org>; Tue, 8 Apr 2003 02:31:57 "
	  "+0100",
	    "[ ip=64.81.84.115 rdns=one.develooper.com "
	    "helo=ran-out.mx.develooper.com by=dogma.slashnull.org "
	    "ident=qmailr envfrom= intl=0 id=h381Vvf19860 auth= msa=0 ]",
	    0 },
	{ "from yahoo.com ([61.179.116.50]) by dogma.slashnull.org "
	  "(8.11.6/8.11.6) with SMTP id g7NJYBZ05419 for <webmaster@efi.ie>; "
	  "Fri, 23 Aug 2002 20:34:12 +0100",
	    "[ ip=61.179.116.50 rdns= helo=yahoo.com by=dogma.slashnull.org "
	    "ident= envfrom= intl=0 id=g7NJYBZ05419 auth= msa=0 ]",
	    1 },
	{ "from unknown (HELO anther.webhostingtotalk.com) (154.108.153.99) by "
	  "web.mail.halfeye.com with NNFMP; Sat, 24 Aug 2002 19:28:28 -0900",
	    "[ ip=154.108.153.99 rdns= helo=anther.webhostingtotalk.com "
	    "by=web.mail.halfeye.com ident= envfrom= intl=0 id= auth= msa=0 ]",
	    1 },
	{ "from unknown (52.127.142.42) by rly-xl04.mx.aol.com with smtp; Aug, "
	  "22 2002 8:02:13 AM +0400",
	    "[ ip=52.127.142.42 rdns= helo=unknown by=rly-xl04.mx.aol.com "
	    "ident= envfrom= intl=0 id= auth= msa=0 ]",
	    1 },
	{ "from rly-xw05.oxyeli.com ([169.93.50.3]) by n9.groups.huyahoo.com "
	  "with SMTP; 23 Aug 2002 12:53:32 -0300",
	    "[ ip=169.93.50.3 rdns=rly-xw05.oxyeli.com "
	    "helo=rly-xw05.oxyeli.com by=n9.groups.huyahoo.com ident= envfrom= "
	    "intl=0 id= auth= msa=0 ]",
	    0 },
	{ "from postfix3-2.free.fr (HELO machine.domain.com) "
	  "(foobar@213.228.0.169) by totor.bouissou.net with SMTP; 14 Nov 2003 "
	  "08:05:50 -0000",
	    "[ ip=213.228.0.169 rdns=postfix3-2.free.fr "
	    "helo=machine.domain.com by=totor.bouissou.net ident=foobar "
	    "envfrom= intl=0 id= auth= msa=0 ]",
	    0 },
	{ "from [61.174.163.26] (helo=host) by sc8-sf-list1.sourceforge.net "
	  "with smtp (Exim 3.31-VA-mm2 #1 (Debian)) id 18t2z0-0001NX-00 for "
	  "<razor-users@lists.sourceforge.net>; Wed, 12 Mar 2003 01:57:10 "
	  "-0800",
	    "[ ip=61.174.163.26 rdns= helo=host "
	    "by=sc8-sf-list1.sourceforge.net ident= envfrom= intl=0 "
	    "id=18t2z0-0001NX-00 auth= msa=0 ]",
	    0 },
	{ "from dsl092-072-213.bos1.dsl.speakeasy.net ([66.92.72.213] "
	  "helo=blazing.arsecandle.org) by sc8-sf-list1.sourceforge.net with "
	  "esmtp (Cipher TLSv1:DES-CBC3-SHA:168) (Exim 3.31-VA-mm2 #1 "
	  "(Debian)) id 18lyuU-0007TI-00 for "
	  "<SpamAssassin-talk@lists.sourceforge.net>; Thu, 20 Feb 2003 "
	  "14:11:18 -0800",
	    "[ ip=66.92.72.213 rdns=dsl092-072-213.bos1.dsl.speakeasy.net "
	    "helo=blazing.arsecandle.org by=sc8-sf-list1.sourceforge.net "
	    "ident= envfrom= intl=0 id=18lyuU-0007TI-00 auth= msa=0 ]",
	    0 },
	{ "from mail.ssccbelen.edu.pe ([216.244.149.154]) by yzordderrex with "
	  "esmtp (Exim 3.35 #1 (Debian)) id 18tqiz-000702-00 for "
	  "<jm@example.com>; Fri, 14 Mar 2003 15:03:57 +0000",
	    "[ ip=216.244.149.154 rdns=mail.ssccbelen.edu.pe "
	    "helo=mail.ssccbelen.edu.pe by=yzordderrex ident= envfrom= intl=0 "
	    "id=18tqiz-000702-00 auth= msa=0 ]",
	    0 },
	{ "from andrew by trinity.supernews.net with local (Exim 4.12) id "
	  "18xeL6-000Dn1-00; Tue, 25 Mar 2003 02:39:00 +0000",
	    "SKIP", 0 },
	{ "from inet-vrs-05.redmond.corp.microsoft.com ([157.54.6.157]) by "
	  "INET-IMC-05.redmond.corp.microsoft.com with Microsoft "
	  "SMTPSVC(5.0.2195.6624); Thu, 6 Mar 2003 12:02:35 -0800",
	    "[ ip=157.54.6.157 rdns= "
	    "helo=inet-vrs-05.redmond.corp.microsoft.com "
	    "by=INET-IMC-05.redmond.corp.microsoft.com ident= envfrom= intl=0 "
	    "id= auth= msa=0 ]",
	    0 },
	{ "from mail pickup service by mail1.insuranceiq.com with Microsoft "
	  "SMTPSVC; Thu, 13 Feb 2003 19:05:39 -0500",
	    "SKIP", 0 },
	{ "from EXC-DAG-02.global.net (10.45.252.152) by EXC-DAG-02.global.net "
	  "(10.45.252.152) with Microsoft SMTP Server (version=TLS1_2, "
	  "cipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) id 15.1.1261.35; Mon, "
	  "29 Oct 2018 11:17:19 +0100",
	    "[ ip=10.45.252.152 rdns=EXC-DAG-02.global.net "
	    "helo=EXC-DAG-02.global.net by=EXC-DAG-02.global.net ident= "
	    "envfrom= intl=0 id=15.1.1261.35 auth= msa=0 ]",
	    0 },
	{ "from x71-x56-x24-5.webspeed.dk (HELO niels) (69.96.3.15) by "
	  "la.mx.develooper.com (qpsmtpd/0.27-dev) with SMTP; Fri, 02 Jan 2004 "
	  "19:26:52 -0800",
	    "[ ip=69.96.3.15 rdns=x71-x56-x24-5.webspeed.dk helo=niels "
	    "by=la.mx.develooper.com ident= envfrom= intl=0 id= auth= msa=0 ]",
	    0 },
	{ "from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) "
	  "for zzzz@localhost (single-drop); Mon, 26 Aug 2002 15:41:39 +0100 "
	  "(IST)",
	    "FETCHER", 0 },
	{ "(from come@localhost) by carrey.adgrafix.com (8.9.3/8.9.3) id "
	  "VAA15757; Fri, 23 Aug 2002 21:24:39 -0400 (EDT)",
	    "SKIP", 0 },
	{ "from ([]) by mail.wuliaos.com (Merak 4.4.2) with SMTP id B6E55D55; "
	  "Sat, 31 Aug 2002 00:37:13 +0800",
	    "SKIP", 0 },
	{ "from p977.as2.cra.dublin.eircom.net (HELO mfrenchw2k) "
	  "(mfrench42@159.134.179.209 with login) by "
	  "smtp.mail.vip.sc5.yahoo.com with SMTP; 22 Aug 2002 22:02:25 -0000",
	    "[ ip=159.134.179.209 rdns=p977.as2.cra.dublin.eircom.net "
	    "helo=mfrenchw2k by=smtp.mail.vip.sc5.yahoo.com ident=mfrench42 "
	    "envfrom= intl=0 id= auth= msa=0 ]",
	    0 },
	{ "from submit.example.com (submit.example.com [192.0.2.7]) by "
	  "mx.example.net (Postfix) with ESMTPSA id 4F2A1; Mon, 1 Jan 2024 "
	  "10:00:00 +0000",
	    "[ ip=192.0.2.7 rdns=submit.example.com helo=submit.example.com "
	    "by=mx.example.net ident= envfrom= intl=0 id=4F2A1 auth=ESMTPSA "
	    "msa=0 ]",
	    0 },
	{ "from 213.123.174.21 by lw11fd.law11.hotmail.msn.com with HTTP; Wed, "
	  "24 Jul 2002 16:36:44 GMT",
	    "[ ip=213.123.174.21 rdns= helo= by=lw11fd.law11.hotmail.msn.com "
	    "ident= envfrom= intl=0 id= auth=HTTP msa=0 ]",
	    0 },
	{ "from mail.example.org (mail.example.org [198.51.100.4]) by "
	  "mx.example.net (8.12.11/8.12.11) with ESMTP id i1 (envelope-from "
	  "<bounce@example.org>); Mon, 1 Jan 2024 10:00:00 +0000",
	    "[ ip=198.51.100.4 rdns=mail.example.org helo=mail.example.org "
	    "by=mx.example.net ident= envfrom=bounce@example.org intl=0 id= "
	    "auth= msa=0 ]",
	    0 },
	{ "from foo.example (bar.example [203.0.113.9]) (Authenticated sender: "
	  "alice) by mx.example.net (Postfix) with ESMTP id ABC; Mon, 1 Jan "
	  "2024 10:00:00 +0000",
	    "[ ip=203.0.113.9 rdns=bar.example helo=foo.example "
	    "by=mx.example.net ident= envfrom= intl=0 id=ABC auth=Postfix "
	    "msa=0 ]",
	    0 },
	{ "from nowhere by nothing; Mon, 1 Jan 2024 10:00:00 +0000", "SKIP",
	    0 },
	{ "from helo.example (rdns.example [2001:db8::1]) by mx.example.net "
	  "(Postfix) with ESMTP id X1; Mon, 1 Jan 2024 10:00:00 +0000",
	    "[ ip=2001:db8::1 rdns=rdns.example helo=helo.example "
	    "by=mx.example.net ident= envfrom= intl=0 id= auth= msa=0 ]",
	    0 },
	{ "from X-Originating-IP: 208.164.180.11",
	    "[ ip=208.164.180.11 rdns= helo= by= ident= envfrom= intl=0 id= "
	    "auth= msa=0 ]",
	    0 },
	{ "by mx.example.net with SMTP; Mon, 1 Jan 2024 10:00:00 +0000", "SKIP",
	    0 },
	{ "from weird stuff here without any address", "UNPARSEABLE", 0 },
};

static const char *
kind_name(enum sa_rcvd_kind k)
{
	switch (k) {
	case SA_RCVD_SKIP:
		return "SKIP";
	case SA_RCVD_FETCHER:
		return "FETCHER";
	case SA_RCVD_UNPARSEABLE:
		return "UNPARSEABLE";
	default:
		return "RELAY";
	}
}

static void
test_parse(void)
{
	static struct sa_relays rs;
	size_t			i;
	char			buf[2048];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sa_relay	  r;
		enum sa_rcvd_kind k =
		    sa_received_parse(cases[i].line, strlen(cases[i].line), &r);

		if (k != SA_RCVD_RELAY) {
			is_str(kind_name(k), cases[i].want, "kind of %.60s",
			    cases[i].line);
			continue;
		}
		rs.r[0] = r;
		rs.n = 1;
		sa_relays_text(&rs, 0, 1, buf, sizeof(buf));
		is_str(buf, cases[i].want, "relay of %.60s", cases[i].line);
		is_int(r.no_reverse_dns, cases[i].no_rdns, "no rDNS of %.60s",
		    cases[i].line);
	}
}

static const char *const trail[] = {
	"from localhost (localhost [127.0.0.1]) by mx.example.net (Postfix) "
	"with ESMTP id 1; Mon, 1 Jan 2024 10:00:00 +0000",
	"from inner.example.net (inner.example.net [10.1.2.3]) by "
	"mx.example.net (Postfix) with ESMTP id 2; Mon, 1 Jan 2024 10:00:00 "
	"+0000",
	"from evil.example (unknown [198.51.100.9]) by inner.example.net "
	"(Postfix) with SMTP id 3; Mon, 1 Jan 2024 10:00:00 +0000",
	"from laptop (dsl.example.org [203.0.113.5]) by evil.example "
	"(8.12.11/8.12.11) with ESMTP id abc; Mon, 1 Jan 2024 10:00:00 +0000",
};

static void
test_trust(void)
{
	static struct sa_relays rs;
	size_t			lens[4], i;
	struct sa_trust		t;
	struct cidr		nets[1];
	struct sa_relay		sess;
	char			buf[4096];

	for (i = 0; i < 4; i++)
		lens[i] = strlen(trail[i]);
	memset(&t, 0, sizeof(t));
	sa_relays_build(&rs, NULL, 1, trail, lens, 4, &t);
	is_int(rs.n, 4, "inference: four relays");
	is_int(rs.ntrusted, 2, "inference: loopback and private trusted");
	is_int(rs.ninternal, 2, "inference: internal = trusted");
	is_int(rs.untrusted_field, 2, "first untrusted is field 2");
	is_int(rs.last_trusted_field, 1, "last trusted field index");
	sa_relays_text(&rs, rs.ntrusted, rs.n, buf, sizeof(buf));
	is_str(buf,
	    "[ ip=198.51.100.9 rdns= helo=evil.example by=inner.example.net "
	    "ident= envfrom= intl=0 id= auth= msa=0 ] [ ip=203.0.113.5 "
	    "rdns=dsl.example.org helo=laptop by=evil.example ident= envfrom= "
	    "intl=0 id=abc auth= msa=0 ]",
	    "untrusted text");
	sa_relays_text(&rs, 0, rs.ntrusted, buf, sizeof(buf));
	ok(strstr(buf, "intl=1") != NULL, "trusted relays are intl=1");

	/* configured: only loopback and 198.51.100.0/24 */
	ok(cidr_parse("198.51.100.0/24", &nets[0]) == 0, "cidr");
	t.nets = nets;
	t.nnets = 1;
	t.configured = 1;
	sa_relays_build(&rs, NULL, 1, trail, lens, 4, &t);
	is_int(rs.ntrusted, 1, "configured: 10.1.2.3 not listed, not trusted");

	/* an untrusted session client: everything untrusted */
	memset(&sess, 0, sizeof(sess));
	strcpy(sess.ip, "192.0.2.1");
	strcpy(sess.helo, "client.example");
	memset(&t, 0, sizeof(t));
	sa_relays_build(&rs, &sess, 0, trail, lens, 4, &t);
	is_int(rs.n, 5, "session relay first");
	is_int(rs.ntrusted, 0, "untrusted session: nothing trusted");
	is_str(rs.r[0].ip, "192.0.2.1", "session relay ip");

	/* authenticated relays are trusted under inference */
	{
		const char *a[] = { "from laptop (dsl.example.org "
				    "[203.0.113.5]) by mx.example.net "
				    "(Postfix) with ESMTPSA id 9; Mon, 1 Jan "
				    "2024 10:00:00 +0000" };
		size_t	    l = strlen(a[0]);

		sa_relays_build(&rs, NULL, 1, a, &l, 1, &t);
		is_int(rs.ntrusted, 1, "ESMTPSA hop trusted");
	}
	/* a fetcher inside the trusted area restarts the trail */
	{
		const char *a[] = { trail[0],
			"from pop.example [192.0.2.5] by localhost with POP3 "
			"(fetchmail-6.4.0) for <u@localhost> (single-drop); "
			"Mon, 1 Jan 2024 10:00:00 +0000",
			trail[2] };
		size_t	    l[3] = { strlen(a[0]), strlen(a[1]), strlen(a[2]) };

		sa_relays_build(&rs, NULL, 1, a, l, 3, &t);
		is_int(rs.n, 1, "fetcher: the hops above it dropped");
		is_str(rs.r[0].ip, "198.51.100.9", "fetcher: the outer hop");
	}
}

static void
test_hostile(void)
{
	static struct sa_relays rs;
	char		       *big = malloc(100000);
	const char	       *f[SA_RELAYS_MAX + 10];
	size_t			l[SA_RELAYS_MAX + 10], i;
	struct sa_relay		r;
	struct sa_trust		t;
	char			line[64];

	memset(big, '(', 50000);
	memset(big + 50000, '[', 49999);
	big[99999] = '\0';
	memcpy(big, "from ", 5);
	ok(sa_received_parse(big, strlen(big), &r) != SA_RCVD_RELAY,
	    "100 KB of brackets: no relay, no crash");
	for (i = 0; i < 99999; i++)
		big[i] = "1.2 [(]):@;"[i % 11];
	memcpy(big, "from ", 5);
	sa_received_parse(big, 99999, &r);
	ok(strlen(r.ip) < sizeof(r.ip) && strlen(r.helo) < sizeof(r.helo),
	    "junk: fields bounded");
	ok(sa_received_parse("", 0, &r) == SA_RCVD_SKIP, "empty: skipped");
	ok(sa_received_parse("from \0x", 7, &r) != SA_RCVD_RELAY,
	    "NUL inside: no relay");
	for (i = 0; i < SA_RELAYS_MAX + 10; i++) {
		f[i] = trail[3];
		l[i] = strlen(trail[3]);
	}
	memset(&t, 0, sizeof(t));
	sa_relays_build(&rs, NULL, 1, f, l, SA_RELAYS_MAX + 10, &t);
	is_int(rs.n, SA_RELAYS_MAX, "relays capped");
	is_int(sa_relays_text(&rs, 0, rs.n, line, sizeof(line)), 0,
	    "text that does not fit: empty, terminated");
	free(big);
}

int
main(void)
{
	test_parse();
	test_trust();
	test_hostile();
	ok(sa_ip_private("10.0.0.1") && sa_ip_private("172.20.1.1") &&
		sa_ip_private("::1") && sa_ip_private("fe80::1") &&
		!sa_ip_private("8.8.8.8") && !sa_ip_private("172.32.0.1") &&
		sa_ip_private("100.64.0.1") && !sa_ip_private("2001:db8::1"),
	    "private ranges");
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}
