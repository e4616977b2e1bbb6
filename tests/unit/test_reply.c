/*
 * test_reply.c - unit tests for proxy/reply.c: SMTP reply accumulation
 * (RFC 5321 §4.2, §4.2.1), enhanced status codes (RFC 3463), EHLO
 * capability parsing (RFC 1869) and moat's own EHLO reply.
 *
 * Hermetic, single-threaded.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "reply.h"

static const char postfix_ehlo[] =
    "250-mx.example\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-STARTTLS\r\n"
    "250-AUTH PLAIN LOGIN\r\n"
    "250-AUTH=PLAIN LOGIN\r\n"
    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME "
    "PORT LOGIN DESTADDR DESTPORT\r\n"
    "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT "
    "IDENT\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

/*
 * Feed a wire-form reply (CRLF-separated lines) line by line; returns the
 * status of the last line added, or REPLY_ERROR at the first error.
 */
static enum reply_status
feed(struct smtp_reply *r, const char *wire)
{
	enum reply_status st;
	const char	 *p, *e;

	reply_init(r);
	st = REPLY_ERROR;
	for (p = wire; *p != '\0'; p = e + 2) {
		e = strstr(p, "\r\n");
		if (e == NULL) /* a last line without CRLF */
			return reply_add_line(r, p, strlen(p));
		st = reply_add_line(r, p, (size_t)(e - p));
		if (st == REPLY_ERROR)
			return st;
	}
	return st;
}

static enum reply_status
add(struct smtp_reply *r, const char *line)
{
	return reply_add_line(r, line, strlen(line));
}

static void
test_basic(void)
{
	struct smtp_reply r;
	char		  buf[64];

	reply_init(&r);
	is_int(add(&r, "250 OK"), REPLY_DONE, "single line is DONE");
	is_int(r.code, 250, "code 250");
	is_int(r.nlines, 1, "one line");
	is_str(reply_line_text(&r, 0), "OK", "line text after code");
	is_str(reply_line_text(&r, 1), "", "out-of-range line text is empty");
	is_int(add(&r, "250 again"), REPLY_ERROR, "line after last is ERROR");
	is_int(r.nlines, 1, "rejected line not stored");

	reply_init(&r);
	is_int(add(&r, "354"), REPLY_DONE, "bare code is a last line");
	is_str(reply_line_text(&r, 0), "", "bare code has empty text");
	is_int(r.code, 354, "code 354");

	reply_init(&r);
	is_int(add(&r, "250-first"), REPLY_MORE, "continuation is MORE");
	is_int(add(&r, "250-"), REPLY_MORE, "empty continuation is MORE");
	is_int(add(&r, "250 last words"), REPLY_DONE, "last line is DONE");
	is_int(r.nlines, 3, "three lines");
	is_str(reply_line_text(&r, 0), "first", "line 0 text");
	is_str(reply_line_text(&r, 1), "", "line 1 text");
	is_str(reply_line_text(&r, 2), "last words", "line 2 text");
	is_str(r.text + r.off[2], "250 last words", "line keeps its code");

	is_int(reply_format(&r, buf, sizeof(buf)), 33, "format length");
	is_str(buf, "250-first\r\n250-\r\n250 last words\r\n", "format wire");
	is_int(reply_format(&r, buf, 34), 33, "format fits with NUL");
	is_int(reply_format(&r, buf, 33), -1, "format needs room for NUL");
	is_int(reply_format(&r, buf, 10), -1, "format too small");
	reply_init(&r);
	is_int(reply_format(&r, buf, sizeof(buf)), 0, "format empty reply");

	/* Not NUL-terminated input: only len bytes count. */
	reply_init(&r);
	is_int(reply_add_line(&r, "221 Bye\r\nXXX", 7), REPLY_DONE,
	    "length-bounded line");
	is_str(reply_line_text(&r, 0), "Bye", "length-bounded text");
}

static void
test_malformed(void)
{
	static const char *bad[] = { "", "2", "25", "099 x", "199 x", "600 x",
		"650 x", "2x0 x", "25a x", "a50 x", "250x", "250_x", "250\tx",
		" 250 x", "250=x", "-250 x" };
	struct smtp_reply  r;
	size_t		   i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reply_init(&r);
		is_int(
		    add(&r, bad[i]), REPLY_ERROR, "malformed \"%s\"", bad[i]);
	}
	reply_init(&r);
	is_int(add(&r, "200 ok"), REPLY_DONE, "200 accepted");
	reply_init(&r);
	is_int(add(&r, "599 ok"), REPLY_DONE, "599 accepted");

	reply_init(&r);
	is_int(add(&r, "250-a"), REPLY_MORE, "mismatch: first line");
	is_int(add(&r, "251 b"), REPLY_ERROR, "code mismatch is ERROR");
	is_int(add(&r, "550 b"), REPLY_ERROR, "class mismatch is ERROR");
	is_int(r.nlines, 1, "mismatching lines not stored");
	is_int(add(&r, "250 b"), REPLY_DONE, "reply still usable after error");

	reply_init(&r);
	is_int(reply_add_line(&r, "250 a\rb", 7), REPLY_ERROR, "embedded CR");
	is_int(reply_add_line(&r, "250 a\nb", 7), REPLY_ERROR, "embedded LF");
	is_int(reply_add_line(&r, "250 a\0b", 7), REPLY_ERROR, "embedded NUL");
	is_int(add(&r, "250 caf\xc3\xa9"), REPLY_DONE, "UTF-8 text kept");
}

static void
test_bounds(void)
{
	struct smtp_reply r;
	char		  line[REPLY_LINE_MAX + 2];
	enum reply_status st;
	size_t		  i;
	int		  allmore;

	/* Line length. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	reply_init(&r);
	is_int(reply_add_line(&r, line, REPLY_LINE_MAX), REPLY_DONE,
	    "line of REPLY_LINE_MAX bytes");
	is_int(strlen(reply_line_text(&r, 0)), REPLY_LINE_MAX - 4,
	    "long line stored whole");
	reply_init(&r);
	is_int(reply_add_line(&r, line, REPLY_LINE_MAX + 1), REPLY_ERROR,
	    "line of REPLY_LINE_MAX+1 bytes");

	/* Number of lines. */
	reply_init(&r);
	allmore = 1;
	for (i = 0; i < REPLY_LINES_MAX - 1; i++)
		if (add(&r, "250-x") != REPLY_MORE)
			allmore = 0;
	ok(allmore, "63 continuation lines");
	is_int(add(&r, "250 x"), REPLY_DONE, "64th line completes");
	is_int(r.nlines, REPLY_LINES_MAX, "64 lines stored");
	reply_init(&r);
	for (i = 0; i < REPLY_LINES_MAX; i++)
		(void)add(&r, "250-x");
	is_int(add(&r, "250 x"), REPLY_ERROR, "65th line is ERROR");

	/* Total text: 7 full lines use 7 * 1025 = 7175 bytes of 8192. */
	memcpy(line, "250-", 4);
	reply_init(&r);
	allmore = 1;
	for (i = 0; i < 7; i++)
		if (reply_add_line(&r, line, REPLY_LINE_MAX) != REPLY_MORE)
			allmore = 0;
	ok(allmore, "7 lines of 1024 bytes");
	line[3] = ' ';
	is_int(reply_add_line(&r, line, REPLY_TEXT_MAX - 7175), REPLY_ERROR,
	    "text overflow by one byte");
	st = reply_add_line(&r, line, REPLY_TEXT_MAX - 7175 - 1);
	is_int(st, REPLY_DONE, "text filled exactly");
	is_int(r.len, REPLY_TEXT_MAX, "len == REPLY_TEXT_MAX");
	is_int(reply_format(&r, NULL, 0), -1, "format into nothing");
}

static void
test_enhanced(void)
{
	static const struct {
		const char *line;
		const char *want; /* NULL: none */
	} cases[] = {
		{ "250 2.1.0 Ok", "2.1.0" },
		{ "550 5.7.1 <x@y>: Relay access denied", "5.7.1" },
		{ "451 4.7.1 Try again later", "4.7.1" },
		{ "250 2.0.0", "2.0.0" },
		{ "250 2.123.456 x", "2.123.456" },
		{ "250 2.000.000 x", "2.000.000" },
		{ "250 5.1.0 x", NULL },
		{ "550 4.1.0 x", NULL },
		{ "354 3.0.0 go ahead", NULL },
		{ "250 Ok", NULL },
		{ "250", NULL },
		{ "250 2.1.0x", NULL },
		{ "250 2.1.0.1 x", NULL },
		{ "250 2.1000.0 x", NULL },
		{ "250 2.1.1000 x", NULL },
		{ "250 2..0 x", NULL },
		{ "250 2.1. x", NULL },
		{ "250 2.1", NULL },
		{ "250 2 x", NULL },
		{ "250 2.1.0\tx", NULL },
		{ "250  2.1.0 x", NULL },
		{ "250 22.1.0 x", NULL },
	};
	struct smtp_reply r;
	char		  enh[16];
	size_t		  i;
	int		  rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reply_init(&r);
		(void)add(&r, cases[i].line);
		strcpy(enh, "unset");
		rc = reply_enhanced(&r, enh, sizeof(enh));
		if (cases[i].want != NULL)
			ok(rc == 0 && strcmp(enh, cases[i].want) == 0,
			    "enhanced code of \"%s\" is %s", cases[i].line,
			    cases[i].want);
		else
			is_int(rc, -1, "no enhanced code in \"%s\"",
			    cases[i].line);
	}

	reply_init(&r);
	(void)add(&r, "250 2.123.456 x");
	is_int(reply_enhanced(&r, enh, 9), -1, "enh buffer too small");
	is_int(reply_enhanced(&r, enh, 10), 0, "enh buffer just big enough");
	reply_init(&r);
	is_int(reply_enhanced(&r, enh, sizeof(enh)), -1, "empty reply");

	/* Only line 0 counts. */
	reply_init(&r);
	(void)add(&r, "550-5.1.1 first");
	(void)add(&r, "550 5.1.2 second");
	ok(reply_enhanced(&r, enh, sizeof(enh)) == 0 &&
		strcmp(enh, "5.1.1") == 0,
	    "multi-line: code from line 0");
}

static void
test_capa_parse(void)
{
	struct smtp_reply r;
	struct capa	  c;
	char		  xattr[600];
	size_t		  i;

	is_int(feed(&r, postfix_ehlo), REPLY_DONE, "postfix EHLO reply");
	is_int(capa_parse(&r, &c), 0, "capa_parse postfix");
	is_int(c.flags,
	    CAPA_PIPELINING | CAPA_SIZE | CAPA_STARTTLS | CAPA_AUTH |
		CAPA_XCLIENT | CAPA_XFORWARD | CAPA_ENHANCEDSTATUSCODES |
		CAPA_8BITMIME | CAPA_DSN | CAPA_SMTPUTF8 | CAPA_CHUNKING,
	    "postfix flags (no VRFY, ETRN)");
	is_int(c.size, 10240000, "postfix SIZE");
	is_str(c.auth, "PLAIN LOGIN", "AUTH and AUTH= merged, no duplicates");
	is_str(c.xclient,
	    "NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
	    "XCLIENT attributes");
	is_str(c.xforward, "NAME ADDR PROTO HELO SOURCE PORT IDENT",
	    "XFORWARD attributes");

	/* Case-insensitivity, old AUTH= alone, bare SIZE, unknown words. */
	is_int(feed(&r,
		   "250-mx\r\n250-pipelining\r\n250-Size\r\n250-auth=cram-md5 "
		   "Login\r\n250-8bitmimeX\r\n250-X-EXPS GSSAPI\r\n"
		   "250-BINARYMIME\r\n250 smtputf8\r\n"),
	    REPLY_DONE, "lower-case EHLO reply");
	is_int(capa_parse(&r, &c), 0, "capa_parse lower-case");
	is_int(c.flags,
	    CAPA_PIPELINING | CAPA_SIZE | CAPA_AUTH | CAPA_BINARYMIME |
		CAPA_SMTPUTF8,
	    "case-insensitive keywords, unknown ignored");
	is_int(c.size, 0, "bare SIZE has no limit");
	is_str(c.auth, "cram-md5 Login", "AUTH= mechanisms kept as sent");

	/* Malformed parameters. */
	feed(&r, "250-mx\r\n250-SIZE abc\r\n250-SIZE=100\r\n250 DSN\r\n");
	is_int(capa_parse(&r, &c), 0, "capa_parse SIZE garbage");
	is_int(c.flags, CAPA_SIZE | CAPA_DSN, "SIZE=100 ignored");
	is_int(c.size, 0, "non-numeric SIZE is no limit");
	feed(&r, "250-mx\r\n250 SIZE 99999999999999999999999\r\n");
	(void)capa_parse(&r, &c);
	ok(c.size == UINT64_MAX, "huge SIZE saturates");
	feed(&r, "250-mx\r\n250 SIZE 0\r\n");
	(void)capa_parse(&r, &c);
	ok(c.flags == CAPA_SIZE && c.size == 0, "SIZE 0");
	feed(&r, "250-mx\r\n250 AUTH PLAIN  bad/mech   LOGIN PLAIN\r\n");
	(void)capa_parse(&r, &c);
	is_str(c.auth, "PLAIN LOGIN", "AUTH: invalid tokens and dups skipped");
	feed(&r, "250-mx\r\n250 AUTH\r\n");
	(void)capa_parse(&r, &c);
	ok(c.flags == CAPA_AUTH && c.auth[0] == '\0', "AUTH without list");

	/* Only the greeting line is skipped, even if it looks like a kw. */
	feed(&r, "250 PIPELINING\r\n");
	is_int(capa_parse(&r, &c), 0, "single-line EHLO reply");
	is_int(c.flags, 0, "greeting is not a keyword");

	feed(&r, "550 5.7.1 go away\r\n");
	is_int(capa_parse(&r, &c), -1, "non-250 reply refused");
	reply_init(&r);
	is_int(capa_parse(&r, &c), -1, "empty reply refused");

	/* XCLIENT list longer than CAPA_XATTR_MAX: whole tokens only. */
	strcpy(xattr, "250-mx\r\n250 XCLIENT");
	for (i = 0; i < 40; i++)
		strcat(xattr, " ATTRIBUTE");
	strcat(xattr, "\r\n");
	/* Duplicates collapse; make them distinct. */
	for (i = 0; i < 40; i++)
		xattr[strlen("250-mx\r\n250 XCLIENT ") + i * 10 + 8] =
		    (char)('A' + i % 26);
	for (i = 0; i < 40; i++)
		xattr[strlen("250-mx\r\n250 XCLIENT ") + i * 10 + 7] =
		    (char)('A' + i / 26);
	is_int(feed(&r, xattr), REPLY_DONE, "long XCLIENT line");
	(void)capa_parse(&r, &c);
	ok(strlen(c.xclient) < CAPA_XATTR_MAX &&
		strlen(c.xclient) > CAPA_XATTR_MAX - 11,
	    "XCLIENT list bounded (%zu bytes)", strlen(c.xclient));
	ok(strlen(c.xclient) % 10 == 9, "XCLIENT list cut at whole tokens");
}

static void
test_ehlo_reply(void)
{
	static const char full[] = "250-mx.moat\r\n"
				   "250-PIPELINING\r\n"
				   "250-SIZE 10240000\r\n"
				   "250-8BITMIME\r\n"
				   "250-SMTPUTF8\r\n"
				   "250-DSN\r\n"
				   "250-ENHANCEDSTATUSCODES\r\n"
				   "250 CHUNKING\r\n";
	struct smtp_reply r;
	struct capa	  up;
	char		  out[512], *tight;
	uint32_t	  adv;
	size_t		  sz, need;
	int		  n, allfail;

	feed(&r, postfix_ehlo);
	(void)capa_parse(&r, &up);
	n = capa_ehlo_reply(&up, "mx.moat", 50000000, CAPA_CHUNKING, NULL, &adv, out, sizeof(out));
	is_int(n, (int)strlen(full), "full reply length");
	is_str(out, full, "full reply, upstream SIZE smaller");
	is_int(adv,
	    CAPA_PIPELINING | CAPA_SIZE | CAPA_8BITMIME | CAPA_SMTPUTF8 |
		CAPA_DSN | CAPA_ENHANCEDSTATUSCODES | CAPA_CHUNKING,
	    "advertised set: no STARTTLS/AUTH/XCLIENT/XFORWARD");

	/* The result must itself parse as the same capabilities. */
	is_int(feed(&r, out), REPLY_DONE, "own reply re-parses");
	{
		struct capa again;

		(void)capa_parse(&r, &again);
		is_int(again.flags, adv, "re-parsed flags == advertised");
		is_int(again.size, 10240000, "re-parsed size");
	}

	/* Upstream without 8BITMIME, SMTPUTF8, DSN; chunking off. */
	memset(&up, 0, sizeof(up));
	up.flags = CAPA_PIPELINING | CAPA_ENHANCEDSTATUSCODES | CAPA_STARTTLS |
	    CAPA_AUTH | CAPA_XCLIENT | CAPA_BINARYMIME | CAPA_CHUNKING;
	n = capa_ehlo_reply(&up, "mx.moat", 20000000, 0, NULL, &adv, out, sizeof(out));
	is_str(out,
	    "250-mx.moat\r\n250-PIPELINING\r\n250-SIZE 20000000\r\n"
	    "250 ENHANCEDSTATUSCODES\r\n",
	    "minimal upstream, own SIZE, no chunking");
	is_int(n, (int)strlen(out), "return value is strlen");
	is_int(adv, CAPA_PIPELINING | CAPA_SIZE | CAPA_ENHANCEDSTATUSCODES,
	    "upstream CHUNKING/BINARYMIME not passed through");

	/* Nothing from upstream; chunking on. */
	memset(&up, 0, sizeof(up));
	(void)capa_ehlo_reply(&up, "h", 1000, CAPA_CHUNKING, NULL, &adv, out, sizeof(out));
	is_str(out,
	    "250-h\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n",
	    "chunking offered by moat itself");
	is_int(adv, CAPA_PIPELINING | CAPA_SIZE | CAPA_CHUNKING,
	    "advertised with chunking");

	/* SIZE rules. */
	up.flags = CAPA_SIZE;
	up.size = 5000;
	(void)capa_ehlo_reply(&up, "h", 9000, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE 5000\r\n") != NULL, "SIZE: upstream smaller");
	(void)capa_ehlo_reply(&up, "h", 4000, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE 4000\r\n") != NULL, "SIZE: own smaller");
	(void)capa_ehlo_reply(&up, "h", 0, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE 5000\r\n") != NULL, "SIZE: own 0 -> upstream");
	up.size = 0;
	(void)capa_ehlo_reply(&up, "h", 7000, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE 7000\r\n") != NULL, "SIZE: upstream 0 -> own");
	(void)capa_ehlo_reply(&up, "h", 0, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE\r\n") != NULL, "SIZE: both 0 -> bare SIZE");
	up.size = UINT64_MAX;
	(void)capa_ehlo_reply(&up, "h", 0, 0, NULL, NULL, out, sizeof(out));
	ok(strstr(out, "250 SIZE 18446744073709551615\r\n") != NULL,
	    "SIZE: 64-bit value");

	/* Buffer too small: every size below need+1 fails, need+1 works. */
	feed(&r, postfix_ehlo);
	(void)capa_parse(&r, &up);
	need = strlen(full);
	allfail = 1;
	for (sz = 0; sz <= need; sz++) {
		tight = malloc(sz + 1); /* ASan catches any overrun */
		adv = 12345;
		if (capa_ehlo_reply(&up, "mx.moat", 50000000, CAPA_CHUNKING, NULL, &adv, tight, sz) != -1 ||
		    adv != 0)
			allfail = 0;
		free(tight);
	}
	ok(allfail, "buffers of 0..%zu bytes refused", need);
	tight = malloc(need + 1);
	is_int(
	    capa_ehlo_reply(&up, "mx.moat", 50000000, CAPA_CHUNKING, NULL, &adv, tight, need + 1),
	    (int)need, "buffer of exactly reply + NUL");
	ok(memcmp(tight, full, need + 1) == 0, "tight buffer content");
	free(tight);

	/* Header injection through the hostname is refused. */
	is_int(capa_ehlo_reply(&up, "mx\r\n250 AUTH", 1, 0, NULL, &adv, out, sizeof(out)),
	    -1, "hostname with CRLF refused");
	is_int(capa_ehlo_reply(&up, "mx moat", 1, 0, NULL, &adv, out, sizeof(out)),
	    -1, "hostname with space refused");

	/* moat's own STARTTLS and AUTH, after the upstream's extensions. */
	memset(&up, 0, sizeof(up));
	up.flags = CAPA_STARTTLS | CAPA_AUTH; /* the upstream's: never relayed */
	(void)capa_ehlo_reply(&up, "h", 1000, 0, NULL, &adv, out, sizeof(out));
	ok(strstr(out, "STARTTLS") == NULL && strstr(out, "AUTH") == NULL,
	    "the upstream's STARTTLS/AUTH are not advertised");
	(void)capa_ehlo_reply(&up, "h", 1000, CAPA_CHUNKING | CAPA_STARTTLS,
	    NULL, &adv, out, sizeof(out));
	is_str(out,
	    "250-h\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-CHUNKING\r\n"
	    "250 STARTTLS\r\n",
	    "STARTTLS offered last");
	is_int(adv, CAPA_PIPELINING | CAPA_SIZE | CAPA_CHUNKING | CAPA_STARTTLS,
	    "STARTTLS in advertised");
	(void)capa_ehlo_reply(&up, "h", 1000, CAPA_AUTH, "PLAIN LOGIN", &adv,
	    out, sizeof(out));
	ok(strstr(out, "250 AUTH PLAIN LOGIN\r\n") != NULL &&
		(adv & CAPA_AUTH),
	    "AUTH with the given mechanisms");
	(void)capa_ehlo_reply(
	    &up, "h", 1000, CAPA_AUTH, "", &adv, out, sizeof(out));
	ok(strstr(out, "AUTH") == NULL && !(adv & CAPA_AUTH),
	    "AUTH without mechanisms is not offered");
}

int
main(void)
{
	test_basic();
	test_malformed();
	test_bounds();
	test_enhanced();
	test_capa_parse();
	test_ehlo_reply();
	return tap_done();
}
