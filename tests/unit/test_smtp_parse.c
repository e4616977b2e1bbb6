/*
 * test_smtp_parse.c - unit tests for proxy/smtp_parse.c: command split
 * (RFC 5321 §4.1.1), paths (§4.1.2, §4.1.3, §4.5.3.1, RFC 6531), ESMTP
 * parameters and the SIZE/BODY/RET/NOTIFY/ORCPT/xtext checks (RFC 1870,
 * RFC 6152, RFC 3030, RFC 3461).
 *
 * Single-threaded, no I/O besides TAP output on stdout.
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"
#include "tap.h"

#define F_NULL SMTP_PATH_F_NULL_OK
#define F_PM   SMTP_PATH_F_POSTMASTER
#define F_BARE SMTP_PATH_F_NOBRACKETS

/* Fill buf with n copies of c (NUL-terminated); returns buf + n. */
static char *
fill(char *buf, int c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return (buf + n);
}

/*
 * Build "<" local "@" domain ">" where local is nl 'a's and the domain is
 * made of 63-octet labels and a final shorter one, nd octets in all.
 */
static void
make_path(char *buf, size_t nl, size_t nd)
{
	char  *p = buf;
	size_t left = nd, n;

	*p++ = '<';
	p = fill(p, 'a', nl);
	*p++ = '@';
	while (left > 0) {
		n = left > 63 ? 63 : left;
		if (left > 63 && left - 63 < 2)
			n = left - 2; /* keep the last label non-empty */
		p = fill(p, 'b', n);
		left -= n;
		if (left > 0) {
			*p++ = '.';
			left--;
		}
	}
	*p++ = '>';
	*p = '\0';
}

static void
test_command(void)
{
	struct smtp_command c;

	is_int(smtp_parse_command("EHLO mx.example.org", &c), SMTP_PARSE_OK,
	    "EHLO parses");
	is_int(c.verb, SMTP_VERB_EHLO, "EHLO verb");
	is_str(c.args, "mx.example.org", "EHLO args");
	is_int(c.has_args, 1, "EHLO has_args");

	is_int(smtp_parse_command("quit", &c), SMTP_PARSE_OK, "quit parses");
	is_int(c.verb, SMTP_VERB_QUIT, "lower-case verb matched");
	is_str(c.args, "", "no args");
	is_int(c.has_args, 0, "has_args 0 without space");

	smtp_parse_command("NoOp   hello there", &c);
	is_int(c.verb, SMTP_VERB_NOOP, "mixed-case NOOP");
	is_str(c.args, "hello there", "extra spaces before args skipped");

	smtp_parse_command("DATA ", &c);
	ok(c.verb == SMTP_VERB_DATA && c.has_args == 1 && *c.args == '\0',
	    "DATA with trailing space: has_args, empty args");

	is_int(smtp_parse_command("MAIL FROM:<a@b.example>", &c), SMTP_PARSE_OK,
	    "MAIL FROM parses");
	is_int(c.verb, SMTP_VERB_MAIL, "MAIL verb");
	is_str(c.args, "<a@b.example>", "MAIL args after FROM:");
	smtp_parse_command("mail from: <a@b.example> SIZE=1", &c);
	is_str(c.args, " <a@b.example> SIZE=1", "space after colon kept");
	is_int(smtp_parse_command("RCPT To:<x@y.example>", &c), SMTP_PARSE_OK,
	    "RCPT To: parses");
	is_str(c.args, "<x@y.example>", "RCPT args");
	is_int(smtp_parse_command("MAIL FROM :<a@b>", &c), SMTP_PARSE_ESYNTAX,
	    "space before colon refused");
	is_int(c.verb, SMTP_VERB_MAIL, "verb kept on ESYNTAX");
	is_int(smtp_parse_command("MAIL <a@b>", &c), SMTP_PARSE_ESYNTAX,
	    "MAIL without FROM: refused");
	is_int(smtp_parse_command("MAIL", &c), SMTP_PARSE_ESYNTAX,
	    "bare MAIL refused");
	is_int(smtp_parse_command("RCPT FROM:<a@b>", &c), SMTP_PARSE_ESYNTAX,
	    "RCPT FROM: refused");
	is_int(smtp_parse_command("MAIL  FROM:<a@b>", &c), SMTP_PARSE_OK,
	    "MAIL  FROM: with two spaces tolerated");

	is_int(smtp_parse_command("MAILX FROM:<a@b>", &c), SMTP_PARSE_OK,
	    "MAILX is OK");
	is_int(c.verb, SMTP_VERB_UNKNOWN, "MAILX is UNKNOWN");
	smtp_parse_command("NOOP\tx", &c);
	is_int(c.verb, SMTP_VERB_UNKNOWN, "verb followed by tab is UNKNOWN");
	smtp_parse_command("", &c);
	is_int(c.verb, SMTP_VERB_UNKNOWN, "empty line is UNKNOWN");
	smtp_parse_command("STARTTLS", &c);
	is_int(c.verb, SMTP_VERB_STARTTLS, "STARTTLS");
	smtp_parse_command("xforward NAME=spike", &c);
	is_int(c.verb, SMTP_VERB_XFORWARD, "XFORWARD");
	smtp_parse_command("BDAT 100 LAST", &c);
	ok(c.verb == SMTP_VERB_BDAT && strcmp(c.args, "100 LAST") == 0,
	    "BDAT args");
	smtp_parse_command("STARTTLSX", &c);
	is_int(c.verb, SMTP_VERB_UNKNOWN, "STARTTLSX is UNKNOWN");
	smtp_parse_command("AUT", &c);
	is_int(c.verb, SMTP_VERB_UNKNOWN, "prefix of a verb is UNKNOWN");

	is_str(smtp_verb_name(SMTP_VERB_XCLIENT), "XCLIENT", "verb name");
	is_str(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN", "unknown name");
	is_str(smtp_verb_name(SMTP_VERB_COUNT), "UNKNOWN", "out of range");
}

static void
test_path_valid(void)
{
	struct smtp_path p;

	is_int(smtp_parse_path("<user@example.org>", 0, &p), SMTP_PARSE_OK,
	    "simple path");
	is_str(p.mailbox, "user@example.org", "mailbox");
	is_str(p.domain, "example.org", "domain");
	ok(p.is_null == 0 && p.utf8 == 0, "not null, not utf8");
	is_str(p.rest, "", "rest empty");

	is_int(smtp_parse_path(
		   " <a.b+c@x-y.example>  SIZE=10 BODY=8BITMIME", 0, &p),
	    SMTP_PARSE_OK, "one leading space, params");
	is_str(p.mailbox, "a.b+c@x-y.example", "dot-string with +");
	is_str(p.rest, "SIZE=10 BODY=8BITMIME", "rest after spaces");

	is_int(smtp_parse_path("<!#$%&'*+-/=?^_`{|}~@ex.org>", 0, &p),
	    SMTP_PARSE_OK, "all atext specials");

	is_int(smtp_parse_path("<\"john doe\"@ex.org>", 0, &p), SMTP_PARSE_OK,
	    "quoted local part");
	is_str(p.mailbox, "\"john doe\"@ex.org", "quotes kept");
	is_str(p.domain, "ex.org", "domain after quoted part");
	is_int(smtp_parse_path("<\"a\\\"b\\\\c@d>\"@ex.org>", 0, &p),
	    SMTP_PARSE_OK, "quoted-pairs, @ and > inside quotes");
	is_str(p.mailbox, "\"a\\\"b\\\\c@d>\"@ex.org", "escapes kept");
	is_str(p.domain, "ex.org", "domain after the real @");
	is_int(smtp_parse_path("<\"\"@ex.org>", 0, &p), SMTP_PARSE_OK,
	    "empty quoted string");

	is_int(smtp_parse_path("<>", SMTP_PATH_F_NULL_OK, &p), SMTP_PARSE_OK,
	    "null path with flag");
	ok(p.is_null && p.mailbox[0] == '\0' && p.domain == NULL,
	    "null path fields");
	is_int(smtp_parse_path("<> BODY=7BIT", F_NULL, &p), SMTP_PARSE_OK,
	    "null path + params");
	is_str(p.rest, "BODY=7BIT", "null path rest");

	is_int(smtp_parse_path("<PostMaster>", F_PM, &p), SMTP_PARSE_OK,
	    "<PostMaster> with flag");
	ok(strcmp(p.mailbox, "PostMaster") == 0 && p.domain == NULL,
	    "postmaster mailbox, no domain");
	is_int(smtp_parse_path("<postmaster@ex.org>", 0, &p), SMTP_PARSE_OK,
	    "postmaster@domain is a normal mailbox");

	is_int(smtp_parse_path("<@a.example,@b.example:user@c.example>", 0, &p),
	    SMTP_PARSE_OK, "source route accepted");
	is_str(p.mailbox, "user@c.example", "source route dropped");
	is_str(p.domain, "c.example", "domain after source route");

	is_int(smtp_parse_path("<u@[192.0.2.1]>", 0, &p), SMTP_PARSE_OK,
	    "IPv4 literal");
	is_str(p.domain, "[192.0.2.1]", "literal kept as domain");
	is_int(smtp_parse_path("<u@[IPv6:2001:db8::1]>", 0, &p), SMTP_PARSE_OK,
	    "IPv6 literal");
	is_int(smtp_parse_path("<u@[ipv6:::ffff:192.0.2.1]>", 0, &p),
	    SMTP_PARSE_OK, "IPv6v4 literal, lower-case tag");
	is_int(smtp_parse_path("<u@[x-tag:some>content]>", 0, &p),
	    SMTP_PARSE_OK, "general address literal (with >)");
	is_str(p.domain, "[x-tag:some>content]", "general literal domain");

	is_int(smtp_parse_path("<j\xc3\xb6rg@b\xc3\xbc"
			       "cher.example>",
		   0, &p),
	    SMTP_PARSE_OK, "UTF-8 local part and U-label");
	is_int(p.utf8, 1, "utf8 set");
	is_int(smtp_parse_path("<\"\xe2\x82\xac uro\"@ex.org>", 0, &p),
	    SMTP_PARSE_OK, "UTF-8 in quoted string");
	is_int(p.utf8, 1, "utf8 set for quoted");
	is_int(smtp_parse_path("<\xf0\x9f\x93\xa7@ex.org>", 0, &p),
	    SMTP_PARSE_OK, "4-octet UTF-8");
	is_int(smtp_parse_path("<\xf4\x8f\xbf\xbf@ex.org>", 0, &p),
	    SMTP_PARSE_OK, "U+10FFFF accepted");

	is_int(smtp_parse_path("a@b.example", F_BARE, &p), SMTP_PARSE_OK,
	    "bare address with NOBRACKETS");
	is_str(p.mailbox, "a@b.example", "bare mailbox");
	is_int(smtp_parse_path("a@b.example SIZE=1", F_BARE, &p), SMTP_PARSE_OK,
	    "bare address + params");
	is_str(p.rest, "SIZE=1", "bare rest");
	is_int(smtp_parse_path("<a@b.example>", F_BARE, &p), SMTP_PARSE_OK,
	    "brackets still fine with NOBRACKETS");
	is_int(smtp_parse_path("postmaster", F_BARE | F_PM, &p), SMTP_PARSE_OK,
	    "bare postmaster");
	is_int(smtp_parse_path("<a@1st.example>", 0, &p), SMTP_PARSE_OK,
	    "label starting with a digit");
	is_int(smtp_parse_path("<a@localhost>", 0, &p), SMTP_PARSE_OK,
	    "single-label domain");
}

static void
test_path_invalid(void)
{
	struct smtp_path p;

	is_int(smtp_parse_path("<>", 0, &p), SMTP_PARSE_EADDR,
	    "<> without NULL_OK");
	is_int(smtp_parse_path("<postmaster>", 0, &p), SMTP_PARSE_EADDR,
	    "<postmaster> without flag");
	is_int(smtp_parse_path("", 0, &p), SMTP_PARSE_ESYNTAX, "empty arg");
	is_int(smtp_parse_path("a@b.example", 0, &p), SMTP_PARSE_ESYNTAX,
	    "bare address without flag");
	is_int(smtp_parse_path("a@b.example>", F_BARE, &p), SMTP_PARSE_EADDR,
	    "bare address glued to >");
	is_int(smtp_parse_path("  <a@b.example>", 0, &p), SMTP_PARSE_ESYNTAX,
	    "two leading spaces");
	is_int(smtp_parse_path("<a@b.example>x", 0, &p), SMTP_PARSE_ESYNTAX,
	    "junk glued to >");
	ok(p.rest == NULL && p.mailbox[0] == '\0', "outputs cleared on error");
	is_int(smtp_parse_path("<a@b.example", 0, &p), SMTP_PARSE_EADDR,
	    "missing >");
	is_int(smtp_parse_path("<a>", 0, &p), SMTP_PARSE_EADDR, "no domain");
	is_int(smtp_parse_path("<@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "empty local part");
	is_int(
	    smtp_parse_path("<a@>", 0, &p), SMTP_PARSE_EADDR, "empty domain");
	is_int(smtp_parse_path("<.a@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "leading dot");
	is_int(smtp_parse_path("<a.@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "trailing dot in local part");
	is_int(smtp_parse_path("<a..b@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "double dot");
	is_int(smtp_parse_path("<a b@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "space in dot-string");
	is_int(smtp_parse_path("<a(b)@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "specials in dot-string");
	is_int(smtp_parse_path("<\"ab@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "unterminated quote");
	is_int(smtp_parse_path("<\"a\\\x01\"@b.example>", 0, &p),
	    SMTP_PARSE_EADDR, "quoted-pair of a control");
	is_int(smtp_parse_path("<\"a\tb\"@b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "tab in quoted string");
	is_int(smtp_parse_path("<a@-b.example>", 0, &p), SMTP_PARSE_EADDR,
	    "label starts with hyphen");
	is_int(smtp_parse_path("<a@b-.example>", 0, &p), SMTP_PARSE_EADDR,
	    "label ends with hyphen");
	is_int(smtp_parse_path("<a@b..example>", 0, &p), SMTP_PARSE_EADDR,
	    "empty label");
	is_int(smtp_parse_path("<a@b.example.>", 0, &p), SMTP_PARSE_EADDR,
	    "trailing dot in path domain");
	is_int(smtp_parse_path("<a@b_c.example>", 0, &p), SMTP_PARSE_EADDR,
	    "underscore in domain");
	is_int(smtp_parse_path("<a@b@c.example>", 0, &p), SMTP_PARSE_EADDR,
	    "two @");
	is_int(smtp_parse_path("<a@[192.0.2.256]>", 0, &p), SMTP_PARSE_EADDR,
	    "IPv4 octet > 255");
	is_int(smtp_parse_path("<a@[192.0.2]>", 0, &p), SMTP_PARSE_EADDR,
	    "IPv4 with 3 parts");
	is_int(smtp_parse_path("<a@[1.2.3.4.5]>", 0, &p), SMTP_PARSE_EADDR,
	    "IPv4 with 5 parts");
	is_int(smtp_parse_path("<a@[IPv6:2001:db8::g]>", 0, &p),
	    SMTP_PARSE_EADDR, "bad IPv6");
	is_int(smtp_parse_path("<a@[IPv6:1.2.3.4]>", 0, &p), SMTP_PARSE_EADDR,
	    "IPv4 under IPv6 tag");
	is_int(smtp_parse_path("<a@[IPv6:]>", 0, &p), SMTP_PARSE_EADDR,
	    "empty IPv6");
	is_int(smtp_parse_path("<a@[]>", 0, &p), SMTP_PARSE_EADDR,
	    "empty literal");
	is_int(smtp_parse_path("<a@[tag-:x]>", 0, &p), SMTP_PARSE_EADDR,
	    "tag ending in hyphen");
	is_int(smtp_parse_path("<a@[t_g:x]>", 0, &p), SMTP_PARSE_EADDR,
	    "underscore in literal tag");
	is_int(smtp_parse_path("<a@[tag:]>", 0, &p), SMTP_PARSE_EADDR,
	    "general literal without content");
	is_int(smtp_parse_path("<a@[tag:a\\b]>", 0, &p), SMTP_PARSE_EADDR,
	    "backslash in dcontent");
	is_int(smtp_parse_path("<a@[1.2.3.4>", 0, &p), SMTP_PARSE_EADDR,
	    "unterminated literal");
	is_int(smtp_parse_path("<@a.example:>", 0, &p), SMTP_PARSE_EADDR,
	    "route without mailbox");
	is_int(smtp_parse_path("<@a.example,b.example:u@c.example>", 0, &p),
	    SMTP_PARSE_EADDR, "route element without @");
	is_int(smtp_parse_path("<@[1.2.3.4]:u@c.example>", 0, &p),
	    SMTP_PARSE_EADDR, "route with literal");
	is_int(smtp_parse_path("<@a.example:postmaster>", F_PM, &p),
	    SMTP_PARSE_EADDR, "postmaster after route");

	/* RFC 3629 / RFC 6531: only well-formed, shortest-form UTF-8. */
	is_int(smtp_parse_path("<\xc0\xaf@ex.org>", 0, &p), SMTP_PARSE_EADDR,
	    "overlong 2-octet");
	is_int(smtp_parse_path("<\xe0\x80\xaf@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "overlong 3-octet");
	is_int(smtp_parse_path("<\xf0\x80\x80\xaf@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "overlong 4-octet");
	is_int(smtp_parse_path("<\xed\xa0\x80@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "surrogate");
	is_int(smtp_parse_path("<\xf4\x90\x80\x80@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "above U+10FFFF");
	is_int(smtp_parse_path("<\xf5\x80\x80\x80@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "F5 lead");
	is_int(smtp_parse_path("<\xc3@ex.org>", 0, &p), SMTP_PARSE_EADDR,
	    "truncated sequence");
	is_int(smtp_parse_path("<\xe2\x82", 0, &p), SMTP_PARSE_EADDR,
	    "truncated at end of line");
	is_int(smtp_parse_path("<\x80@ex.org>", 0, &p), SMTP_PARSE_EADDR,
	    "stray continuation");
	is_int(smtp_parse_path("<a@ex\xff.org>", 0, &p), SMTP_PARSE_EADDR,
	    "0xff in domain");
	is_int(smtp_parse_path("<\"\xc0\x80\"@ex.org>", 0, &p),
	    SMTP_PARSE_EADDR, "overlong NUL in quoted string");
}

static void
test_path_limits(void)
{
	struct smtp_path p;
	char		 buf[1024], *q;

	/* Local part 64 / 65 (RFC 5321 §4.5.3.1.1). */
	make_path(buf, 64, 11);
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_OK, "local part 64");
	is_int(strlen(p.mailbox), 64 + 1 + 11, "local part 64 mailbox length");
	make_path(buf, 65, 11);
	is_int(
	    smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG, "local part 65");
	/* Quoted: 62 octets inside the quotes make 64. */
	q = buf;
	*q++ = '<';
	*q++ = '"';
	q = fill(q, 'x', 62);
	strcpy(q, "\"@ex.org>");
	is_int(
	    smtp_parse_path(buf, 0, &p), SMTP_PARSE_OK, "quoted local part 64");
	q = buf + 2;
	q = fill(q, 'x', 63);
	strcpy(q, "\"@ex.org>");
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG,
	    "quoted local part 65");

	/* Whole path 256 / 257 incl. brackets (§4.5.3.1.3). */
	make_path(buf, 64, 256 - 2 - 65);
	is_int(strlen(buf), 256, "built a 256-octet path");
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_OK, "path 256");
	is_int(strlen(p.mailbox), 254, "mailbox 254");
	make_path(buf, 64, 257 - 2 - 65);
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG, "path 257");
	make_path(buf, 1, 255);
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG,
	    "domain 255 makes the path too long");
	make_path(buf, 1, 256);
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG, "domain 256");
	make_path(buf, 1, 700);
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG, "domain 700");
	/* Bare form counts as if bracketed. */
	make_path(buf, 64, 256 - 2 - 65);
	buf[strlen(buf) - 1] = '\0';
	is_int(smtp_parse_path(buf + 1, F_BARE, &p), SMTP_PARSE_OK,
	    "bare 254 mailbox");
	make_path(buf, 64, 257 - 2 - 65);
	buf[strlen(buf) - 1] = '\0';
	is_int(smtp_parse_path(buf + 1, F_BARE, &p), SMTP_PARSE_ETOOLONG,
	    "bare 255 mailbox");
	/* A long source route counts towards the path. */
	q = buf;
	*q++ = '<';
	while (q - buf < 300) {
		strcpy(q, "@r.example,");
		q += strlen(q);
	}
	strcpy(q - 1, ":u@ex.org>");
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_ETOOLONG,
	    "long source route");

	/* Labels 63 / 64. */
	q = buf;
	*q++ = '<';
	*q++ = 'u';
	*q++ = '@';
	q = fill(q, 'l', 63);
	strcpy(q, ".example>");
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_OK, "label 63");
	q = buf + 3;
	q = fill(q, 'l', 64);
	strcpy(q, ".example>");
	is_int(smtp_parse_path(buf, 0, &p), SMTP_PARSE_EADDR, "label 64");
}

static void
test_params(void)
{
	struct smtp_param pa[SMTP_PARAMS_MAX];
	char		  buf[512];
	size_t		  n;
	int		  i;

	strcpy(buf, "SIZE=1000 BODY=8BITMIME SMTPUTF8");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "three params");
	is_int(n, 3, "count 3");
	ok(strcmp(pa[0].key, "SIZE") == 0 && strcmp(pa[0].value, "1000") == 0,
	    "SIZE=1000");
	ok(strcmp(pa[1].key, "BODY") == 0 &&
		strcmp(pa[1].value, "8BITMIME") == 0,
	    "BODY=8BITMIME");
	ok(strcmp(pa[2].key, "SMTPUTF8") == 0 && pa[2].value == NULL,
	    "keyword without value");

	buf[0] = '\0';
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "empty params");
	is_int(n, 0, "count 0");
	strcpy(buf, "  A=1   B-2=x  ");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "multiple spaces tolerated");
	ok(n == 2 && strcmp(pa[1].key, "B-2") == 0 &&
		strcmp(pa[1].value, "x") == 0,
	    "second param after spaces");
	strcpy(buf, "AUTH=<> ORCPT=rfc822;a+2Bb@ex.org");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "AUTH=<> and ORCPT");
	strcpy(buf, "X=\xc3\xa9t\xc3\xa9");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "UTF-8 value");

	strcpy(buf, "SIZE=1 size=2");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "duplicate (case-insensitive)");
	is_int(n, 0, "n 0 on error");
	strcpy(buf, "SIZE=");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "empty value");
	strcpy(buf, "-X=1");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "key starting with hyphen");
	strcpy(buf, "K_Y=1");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "underscore in key");
	strcpy(buf, "K=a=b");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "= in value");
	strcpy(buf, "K=a\tb");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "tab in value");
	strcpy(buf, "K=a\x7f");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "DEL in value");
	strcpy(buf, "K=\xc0\xaf");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "overlong UTF-8 in value");
	strcpy(buf, "K\xc3\xa9=1");
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_EPARAM, "non-ASCII key");

	buf[0] = '\0';
	for (i = 0; i < SMTP_PARAMS_MAX; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
		    "P%d=%d ", i, i);
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n), SMTP_PARSE_OK,
	    "exactly max params");
	is_int(n, SMTP_PARAMS_MAX, "count max");
	buf[0] = '\0';
	for (i = 0; i <= SMTP_PARAMS_MAX; i++)
		snprintf(
		    buf + strlen(buf), sizeof(buf) - strlen(buf), "P%d ", i);
	is_int(smtp_parse_params(buf, pa, SMTP_PARAMS_MAX, &n),
	    SMTP_PARSE_ETOOMANY, "max + 1 params");
	strcpy(buf, "A");
	is_int(
	    smtp_parse_params(buf, NULL, 0, &n), SMTP_PARSE_ETOOMANY, "max 0");
}

static void
test_param_values(void)
{
	uint64_t sz = 7;

	ok(smtp_param_size("0", &sz) == 0 && sz == 0, "SIZE=0");
	ok(smtp_param_size("10485760", &sz) == 0 && sz == 10485760,
	    "SIZE=10485760");
	ok(smtp_param_size("18446744073709551615", &sz) == 0 &&
		sz == UINT64_MAX,
	    "SIZE=UINT64_MAX");
	is_int(
	    smtp_param_size("18446744073709551616", &sz), -1, "SIZE overflow");
	is_int(smtp_param_size("99999999999999999999", &sz), -1,
	    "SIZE 20 nines overflow");
	ok(smtp_param_size("00000000000000000001", &sz) == 0 && sz == 1,
	    "SIZE 20 digits with zeros");
	is_int(smtp_param_size("000000000000000000001", &sz), -1,
	    "SIZE 21 digits");
	is_int(smtp_param_size("", &sz), -1, "SIZE empty");
	is_int(smtp_param_size("12k", &sz), -1, "SIZE non-digit");
	is_int(smtp_param_size("-1", &sz), -1, "SIZE negative");
	is_int(smtp_param_size(NULL, &sz), -1, "SIZE without value");

	is_int(smtp_param_body("7bit"), 0, "BODY=7bit");
	is_int(smtp_param_body("8BITMIME"), 0, "BODY=8BITMIME");
	is_int(smtp_param_body("BinaryMIME"), 0, "BODY=BinaryMIME");
	is_int(smtp_param_body("8BIT"), -1, "BODY=8BIT refused");
	is_int(smtp_param_body("8BITMIMEX"), -1, "BODY=8BITMIMEX refused");
	is_int(smtp_param_body(NULL), -1, "BODY without value");

	is_int(smtp_param_ret("FULL"), 0, "RET=FULL");
	is_int(smtp_param_ret("hdrs"), 0, "RET=hdrs");
	is_int(smtp_param_ret("HDR"), -1, "RET=HDR refused");
	is_int(smtp_param_ret(NULL), -1, "RET without value");

	is_int(smtp_param_notify("NEVER"), 0, "NOTIFY=NEVER");
	is_int(
	    smtp_param_notify("success,failure,delay"), 0, "NOTIFY=all three");
	is_int(smtp_param_notify("DELAY"), 0, "NOTIFY=DELAY");
	is_int(smtp_param_notify("NEVER,SUCCESS"), -1, "NEVER not alone");
	is_int(smtp_param_notify("SUCCESS,SUCCESS"), -1, "NOTIFY duplicate");
	is_int(smtp_param_notify("SUCCESS,"), -1, "NOTIFY trailing comma");
	is_int(smtp_param_notify(",DELAY"), -1, "NOTIFY leading comma");
	is_int(smtp_param_notify(""), -1, "NOTIFY empty");
	is_int(smtp_param_notify("FAILURE,NEVER"), -1, "NEVER in a list");

	is_int(smtp_param_orcpt("rfc822;user@example.org"), 0, "ORCPT simple");
	is_int(smtp_param_orcpt("rfc822;a+2Bb+3Dc@ex.org"), 0,
	    "ORCPT with hexchars");
	is_int(smtp_param_orcpt("rfc822;a+2bb@ex.org"), -1,
	    "ORCPT lower-case hex");
	is_int(smtp_param_orcpt("rfc822;a+2"), -1, "ORCPT truncated hexchar");
	is_int(smtp_param_orcpt("rfc822;a+b"), -1, "ORCPT bare +");
	is_int(smtp_param_orcpt("rfc822"), -1, "ORCPT without ;");
	is_int(smtp_param_orcpt(";a@b"), -1, "ORCPT without addr-type");
	is_int(smtp_param_orcpt("rfc822;"), -1, "ORCPT empty address");
	is_int(smtp_param_orcpt("rfc 822;a@b"), -1, "ORCPT space in type");
	is_int(smtp_param_orcpt(NULL), -1, "ORCPT without value");

	is_int(smtp_valid_xtext("", 10), 0, "empty xtext");
	is_int(smtp_valid_xtext("abc+20", 4), 0, "xtext decoded 4 <= 4");
	is_int(smtp_valid_xtext("abc+20d", 4), -1, "xtext decoded 5 > 4");
	is_int(smtp_valid_xtext("a=b", 10), -1, "= in xtext");
	is_int(smtp_valid_xtext("a b", 10), -1, "space in xtext");
	is_int(smtp_valid_xtext("\xc3\xa9", 10), -1, "non-ASCII in xtext");
	is_int(smtp_valid_xtext(NULL, 10), -1, "NULL xtext");
}

/* Decode RFC 3461 xtext for the round trip; assumes valid input. */
static void
xtext_decode(const char *s, char *out)
{
	unsigned v;

	while (*s != '\0') {
		if (*s == '+') {
			sscanf(s + 1, "%2x", &v);
			*out++ = (char)v;
			s += 3;
		} else
			*out++ = *s++;
	}
	*out = '\0';
}

static void
test_xtext_encode(void)
{
	const char *in = "a+b=c d\x01\xc3\xa9~!";
	char	    out[64], dec[64];
	int	    i, n;

	n = smtp_xtext_encode(in, out, sizeof(out));
	is_str(out, "a+2Bb+3Dc+20d+01+C3+A9~!", "xtext encode");
	is_int(n, (int)strlen(out), "returns length");
	is_int(smtp_valid_xtext(out, 100), 0, "encoded is valid xtext");
	xtext_decode(out, dec);
	is_str(dec, in, "round trip");
	is_int(smtp_xtext_encode("", out, 1), 0, "empty into 1 octet");
	is_int(smtp_xtext_encode("abc", out, 3), -1, "no room for NUL");
	is_int(smtp_xtext_encode("abc", out, 4), 3, "exact fit");
	is_int(smtp_xtext_encode("ab+", out, 5), -1, "hexchar does not fit");
	is_int(smtp_xtext_encode("ab+", out, 6), 5, "hexchar fits exactly");
	is_int(smtp_xtext_encode("x", out, 0), -1, "outsz 0");

	/* Every octet 1-255 survives a round trip. */
	for (i = 1, n = 0; i < 256; i++) {
		char one[2] = { (char)i, '\0' };

		if (smtp_xtext_encode(one, out, sizeof(out)) < 0 ||
		    smtp_valid_xtext(out, 1) != 0)
			break;
		xtext_decode(out, dec);
		if (strcmp(dec, one) != 0)
			break;
		n++;
	}
	is_int(n, 255, "all octets round trip");
}

static void
test_helo(void)
{
	char buf[600], *q;
	int  i;

	is_int(smtp_valid_helo("mx.example.org"), 0, "HELO domain");
	is_int(smtp_valid_helo("mx.example.org."), 0, "HELO trailing dot");
	is_int(smtp_valid_helo("mx.example.org.."), -1, "HELO two dots");
	is_int(smtp_valid_helo("localhost"), 0, "HELO single label");
	is_int(smtp_valid_helo("[192.0.2.1]"), 0, "HELO IPv4 literal");
	is_int(smtp_valid_helo("[IPv6:::1]"), 0, "HELO IPv6 literal");
	is_int(smtp_valid_helo("b\xc3\xbc"
			       "cher.example"),
	    0, "HELO U-label");
	is_int(smtp_valid_helo(""), -1, "HELO empty");
	is_int(smtp_valid_helo("."), -1, "HELO lone dot");
	is_int(smtp_valid_helo("mx example"), -1, "HELO with space");
	is_int(smtp_valid_helo("[192.0.2.1]x"), -1, "HELO junk after literal");
	is_int(smtp_valid_helo("192.0.2.1]"), -1, "HELO half literal");
	is_int(smtp_valid_helo("-mx.example"), -1, "HELO leading hyphen");
	is_int(smtp_valid_helo("mx_1.example"), -1, "HELO underscore");
	is_int(smtp_valid_helo(NULL), -1, "HELO NULL");

	/* Domain 255 / 256 (§4.5.3.1.2): 4 x 63 + 3 dots = 255. */
	q = buf;
	for (i = 0; i < 4; i++) {
		if (i > 0)
			*q++ = '.';
		q = fill(q, 'd', 63);
	}
	is_int(strlen(buf), 255, "built a 255-octet domain");
	is_int(smtp_valid_helo(buf), 0, "HELO domain 255");
	strcpy(q, ".");
	is_int(smtp_valid_helo(buf), 0, "HELO domain 255 + trailing dot");
	strcpy(q, "d");
	is_int(smtp_valid_helo(buf), -1, "HELO domain 256");
	q = buf;
	*q++ = '[';
	q = fill(q, 't', 200);
	strcpy(q, ":x]");
	is_int(smtp_valid_helo(buf), 0, "HELO 205-octet general literal");
	q = fill(buf + 1, 't', 300);
	strcpy(q, ":x]");
	is_int(smtp_valid_helo(buf), -1, "HELO literal over 255");
}

int
main(void)
{
	test_command();
	test_path_valid();
	test_path_invalid();
	test_path_limits();
	test_params();
	test_param_values();
	test_xtext_encode();
	test_helo();
	return (tap_done());
}
