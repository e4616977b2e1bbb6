/*
 * test_msgview.c - unit tests for the decoded message view
 * (filters/msgview*.c): headers (raw, unfolded, RFC 2047), MIME structure
 * (nesting, message/rfc822, malformed multiparts), transfer encodings,
 * charsets, the bounds, HTML rendering and counters, URI extraction and
 * normalisation. Every check is one TAP test point. Single-threaded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgview.h"
#include "tap.h"
#include "util.h"

static struct msgview *
mk(const char *s)
{
	return msgview_new(s, strlen(s), NULL);
}

/* The same message with CR LF line ends. */
static struct msgview *
mk_crlf(const char *s)
{
	size_t		n = strlen(s), i, o = 0;
	char	       *c = xmalloc(2 * n + 1);
	struct msgview *v;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			c[o++] = '\r';
		c[o++] = s[i];
	}
	v = msgview_new(c, o, NULL);
	/* The view must not keep pointers into the input. */
	memset(c, 'X', o);
	free(c);
	return v;
}

static const struct mv_part *
part_of_type(const struct msgview *v, const char *type, int nth)
{
	size_t i;

	for (i = 0; i < v->nparts; i++)
		if (strcmp(v->parts[i].type, type) == 0 && nth-- == 0)
			return &v->parts[i];
	return NULL;
}

static const struct mv_uri *
uri(const struct msgview *v, const char *u)
{
	size_t i;

	for (i = 0; i < v->nuris; i++)
		if (strcmp(v->uris[i].uri, u) == 0)
			return &v->uris[i];
	return NULL;
}

static int
has(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static const char *
hdr(const struct msgview *v, const char *name)
{
	const struct mv_header *h = msgview_header(v, name, 0);

	return h != NULL ? h->decoded : NULL;
}

/* ------------------------------------------------------------ headers */

static void
test_headers(void)
{
	struct msgview	       *v = mk_crlf("Received: from a\n"
						    "\tby b\n"
						    "From: Someone <a@example.com>\n"
						    "Subject: hello  world\n"
						    "X-Empty:\n"
						    "received: second\n"
						    "\n"
						    "Body line 1\n"
						    "Body line 2\n");
	const struct mv_header *h;

	is_int(v->nheaders, 5, "headers: five fields");
	is_str(v->headers[0].name, "Received", "headers: name as written");
	is_str(v->headers[0].raw, "from a\r\n\tby b",
	    "headers: raw keeps the folding");
	is_str(v->headers[0].decoded, "from a\tby b",
	    "headers: decoded is unfolded");
	is_str(hdr(v, "subject"), "hello  world",
	    "headers: lookup is case-insensitive");
	is_str(hdr(v, "x-empty"), "", "headers: empty value");
	h = msgview_header(v, "RECEIVED", 1);
	is_str(h != NULL ? h->raw : NULL, "second",
	    "headers: second field of a name");
	ok(msgview_header(v, "Received", 2) == NULL,
	    "headers: no third Received");
	ok(msgview_header(v, "X-Missing", 0) == NULL, "headers: missing");
	is_int(v->hdrsize,
	    strlen("Received: from a\r\n\tby b\r\n"
		   "From: Someone <a@example.com>\r\n"
		   "Subject: hello  world\r\nX-Empty:\r\n"
		   "received: second\r\n\r\n"),
	    "headers: hdrsize counts the empty line");
	is_int(v->nparts, 1, "headers: one part");
	is_str(v->parts[0].type, "text/plain", "headers: default type");
	is_str(v->parts[0].text, "Body line 1\nBody line 2\n",
	    "headers: body text with LF line ends");
	ok(v->parts[0].text == v->parts[0].raw_text,
	    "headers: plain text == raw_text");
	ok(v->parts[0].headers == v->headers, "headers: parts[0] headers");
	msgview_free(v);
}

static void
test_rfc2047(void)
{
	struct msgview *v =
	    mk("Subject: =?utf-8?q?h=C3=A9llo?= =?iso-8859-1?b?d/ZybGQ=?=\n"
	       "X-Broken: =?utf-8?q?unterminated and =?bogus?x?zz?= end\n"
	       "X-Unknown: =?x-no-such-charset?q?abc?=\n"
	       "X-Latin: caf\xe9\n"
	       "X-Bad-Utf8: =?utf-8?q?a=FFb?=\n"
	       "X-Folded: =?utf-8?q?one?=\n =?utf-8?q?two?=\n"
	       "\n"
	       "x\n");

	is_str(hdr(v, "Subject"), "h\xc3\xa9llow\xc3\xb6rld",
	    "2047: mixed charsets, space between words dropped");
	ok(has(hdr(v, "X-Broken"), "unterminated"),
	    "2047: broken words kept as text");
	ok(hdr(v, "X-Unknown") != NULL && has(hdr(v, "X-Unknown"), "abc"),
	    "2047: unknown charset still gives text");
	is_str(hdr(v, "X-Latin"), "caf\xc3\xa9",
	    "2047: raw 8-bit header read as Windows-1252");
	ok(hdr(v, "X-Bad-Utf8") != NULL &&
		strchr(hdr(v, "X-Bad-Utf8"), '\xff') == NULL &&
		has(hdr(v, "X-Bad-Utf8"), "a") &&
		has(hdr(v, "X-Bad-Utf8"), "b"),
	    "2047: invalid UTF-8 in a word replaced");
	is_str(hdr(v, "X-Folded"), "onetwo", "2047: folded encoded words");
	msgview_free(v);
}

/* ------------------------------------------------------------ bodies */

static void
test_encodings(void)
{
	struct msgview *v =
	    mk_crlf("Content-Type: multipart/mixed; boundary=\"b1\"\n"
		    "\n"
		    "--b1\n"
		    "Content-Type: text/plain; charset=utf-8\n"
		    "Content-Transfer-Encoding: base64\n"
		    "\n"
		    "SGVsbG8gd29ybGQhIOKCrA==\n"
		    "--b1\n"
		    "Content-Type: text/plain; charset=ISO-8859-1\n"
		    "Content-Transfer-Encoding: quoted-printable\n"
		    "\n"
		    "caf=E9 soft=\n"
		    "break\n"
		    "--b1\n"
		    "Content-Type: text/plain; charset=windows-1252\n"
		    "Content-Transfer-Encoding: 8bit\n"
		    "\n"
		    "\x80 euro \x93quoted\x94\n"
		    "--b1\n"
		    "Content-Type: text/plain\n"
		    "Content-Transfer-Encoding: x-uuencode\n"
		    "\n"
		    "begin 644 a.txt\n"
		    "%:&5L;&\\`\n"
		    "`\n"
		    "end\n"
		    "--b1\n"
		    "Content-Type: text/plain\n"
		    "Content-Transfer-Encoding: x-strange\n"
		    "\n"
		    "as is\n"
		    "--b1--\n");
	const struct mv_part *p;

	is_int(v->nparts, 6, "enc: container and five leaves");
	ok(v->parts[0].flags & MV_PART_MULTIPART, "enc: multipart flag");
	ok(v->parts[0].text == NULL, "enc: a container has no text");
	p = &v->parts[1];
	is_str(p->text, "Hello world! \xe2\x82\xac", "enc: base64 decoded");
	is_str(p->encoding, "base64", "enc: encoding lower case");
	is_int(p->size, 16, "enc: decoded size");
	is_int(p->rawsize, strlen("SGVsbG8gd29ybGQhIOKCrA=="), "enc: raw size");
	is_int(p->depth, 1, "enc: depth 1");
	is_int(p->parent, 0, "enc: parent 0");
	p = &v->parts[2];
	is_str(p->text, "caf\xc3\xa9 softbreak",
	    "enc: quoted-printable with a soft break");
	is_str(p->charset, "iso-8859-1", "enc: charset lower case");
	p = &v->parts[3];
	is_str(p->text, "\xe2\x82\xac euro \xe2\x80\x9cquoted\xe2\x80\x9d",
	    "enc: Windows-1252 8bit");
	p = &v->parts[4];
	ok(p->text != NULL && strncmp(p->text, "hello", 5) == 0,
	    "enc: uuencode decoded");
	p = &v->parts[5];
	ok(p->flags & MV_PART_BAD_CTE, "enc: unknown CTE flagged");
	is_str(p->text, "as is", "enc: unknown CTE read as 8bit");
	msgview_free(v);
}

static void
test_charsets(void)
{
	struct msgview *v =
	    mk("Content-Type: multipart/mixed; boundary=zz\n"
	       "\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=koi8-r\n"
	       "\n"
	       "\xf0\xd2\xc9\xd7\xc5\xd4\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=x-no-such-charset\n"
	       "\n"
	       "caf\xe9\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=utf-8\n"
	       "\n"
	       "ok \xff\xfe bad \xc3\xa9\n"
	       "--zz\n"
	       "Content-Type: text/plain\n"
	       "\n"
	       "undeclared \xe9t\xe9\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=us-ascii\n"
	       "\n"
	       "nul\x01 here\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=gb2312\n"
	       "\n"
	       "\xc4\xe3\xba\xc3\n"
	       "--zz\n"
	       "Content-Type: text/plain; charset=utf-16le\n"
	       "Content-Transfer-Encoding: base64\n"
	       "\n"
	       "aABpAA==\n"
	       "--zz--\n");

	is_str(v->parts[1].text,
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5"
	    "\xd1\x82",
	    "charset: KOI8-R through iconv");
	ok(!(v->parts[1].flags & MV_PART_BAD_CHARSET), "charset: KOI8-R known");
	ok(v->parts[2].flags & MV_PART_BAD_CHARSET,
	    "charset: unknown charset flagged");
	is_str(v->parts[2].text, "caf\xc3\xa9",
	    "charset: unknown charset read as Latin-1");
	is_str(v->parts[3].text, "ok \xef\xbf\xbd\xef\xbf\xbd bad \xc3\xa9",
	    "charset: invalid UTF-8 becomes U+FFFD");
	is_str(v->parts[4].text, "undeclared \xc3\xa9t\xc3\xa9",
	    "charset: undeclared 8-bit read as Windows-1252");
	is_str(v->parts[5].text, "nul\x01 here", "charset: controls kept");
	is_str(v->parts[6].text, "\xe4\xbd\xa0\xe5\xa5\xbd",
	    "charset: GB2312 (as GB18030)");
	is_str(v->parts[7].text, "hi", "charset: UTF-16LE");
	msgview_free(v);
}

static void
test_nul_in_text(void)
{
	static const char m[] = "Subject: n\n\nbefore\0after\n";
	struct msgview	 *v = msgview_new(m, sizeof(m) - 1, NULL);

	is_int(v->parts[0].textlen,
	    strlen("before\xef\xbf\xbd"
		   "after\n"),
	    "nul: NUL becomes U+FFFD");
	ok(v->parts[0].text != NULL &&
		memcmp(v->parts[0].text, "before\xef\xbf\xbd", 9) == 0,
	    "nul: text continues");
	msgview_free(v);
}

/* ------------------------------------------------------------ structure */

static void
test_nested(void)
{
	struct msgview *v =
	    mk_crlf("From: outer@example.com\n"
		    "Subject: outer\n"
		    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
		    "\n"
		    "preamble\n"
		    "--outer\n"
		    "Content-Type: multipart/alternative; boundary=\"inner\"\n"
		    "\n"
		    "--inner\n"
		    "Content-Type: text/plain\n"
		    "\n"
		    "plain version\n"
		    "--inner\n"
		    "Content-Type: text/html\n"
		    "\n"
		    "<p>html <b>version</b></p>\n"
		    "--inner--\n"
		    "--outer\n"
		    "Content-Type: application/pdf; name=\"x.pdf\"\n"
		    "Content-Disposition: attachment;\n"
		    " filename*=utf-8''%E2%82%AC%20report.pdf\n"
		    "Content-Transfer-Encoding: base64\n"
		    "\n"
		    "JVBERi0xLjQK\n"
		    "--outer\n"
		    "Content-Type: message/rfc822\n"
		    "\n"
		    "From: inner@example.org\n"
		    "Subject: =?utf-8?q?inn=C3=A9r?=\n"
		    "Content-Type: text/plain; charset=utf-8\n"
		    "\n"
		    "forwarded body http://inner.example.net/\n"
		    "--outer\n"
		    "Content-Type: application/octet-stream\n"
		    "Content-Disposition: attachment;\n"
		    " filename*0*=utf-8''long%20;\n"
		    " filename*1=\"name.bin\"\n"
		    "\n"
		    "data\n"
		    "--outer--\n"
		    "epilogue\n");
	const struct mv_part *p;

	is_int(v->nparts, 8, "nested: eight parts");
	is_int(v->mime_errors, 0, "nested: no MIME errors");
	is_str(v->parts[1].type, "multipart/alternative", "nested: alt");
	is_int(v->parts[1].parent, 0, "nested: alt parent");
	is_int(v->parts[2].depth, 2, "nested: plain at depth 2");
	is_int(v->parts[2].parent, 1, "nested: plain parent");
	is_str(v->parts[2].text, "plain version", "nested: plain text");
	p = part_of_type(v, "text/html", 0);
	ok(p != NULL &&
		(p->flags & (MV_PART_HTML | MV_PART_TEXT)) ==
		    (MV_PART_HTML | MV_PART_TEXT),
	    "nested: html flags");
	is_str(p != NULL ? p->text : NULL, "html version",
	    "nested: html rendered");
	is_str(p != NULL ? p->raw_text : NULL, "<p>html <b>version</b></p>",
	    "nested: html raw_text keeps the tags");
	p = part_of_type(v, "application/pdf", 0);
	ok(p != NULL && (p->flags & MV_PART_ATTACHMENT), "nested: attachment");
	is_str(p != NULL ? p->filename : NULL, "\xe2\x82\xac report.pdf",
	    "nested: RFC 2231 file name");
	is_int(p != NULL ? p->size : 0, 9, "nested: attachment decoded size");
	ok(p != NULL && p->text == NULL, "nested: attachment has no text");
	p = part_of_type(v, "message/rfc822", 0);
	ok(p != NULL && (p->flags & MV_PART_MESSAGE), "nested: message flag");
	p = &v->parts[6];
	is_int(p->parent, 5, "nested: inner message's part parent");
	is_int(p->depth, 2, "nested: inner message's part depth");
	is_int(p->nheaders, 3, "nested: inner message's header");
	ok(p->nheaders == 3 && strcmp(p->headers[0].name, "From") == 0 &&
		strcmp(p->headers[2].name, "Content-Type") == 0,
	    "nested: inner header in order");
	ok(p->nheaders == 3 &&
		strcmp(p->headers[1].decoded, "inn\xc3\xa9r") == 0,
	    "nested: inner Subject decoded");
	is_str(p->text, "forwarded body http://inner.example.net/",
	    "nested: inner body");
	ok(uri(v, "http://inner.example.net/") != NULL,
	    "nested: URI of the inner message");
	is_str(v->parts[7].filename, "long name.bin",
	    "nested: RFC 2231 continuations");
	is_str(hdr(v, "Subject"), "outer", "nested: outer header");
	msgview_free(v);
}

static void
test_malformed(void)
{
	struct msgview *v;

	/* The final boundary never comes. */
	v = mk("Content-Type: multipart/mixed; boundary=b\n\n"
	       "--b\nContent-Type: text/plain\n\nfirst\n"
	       "--b\nContent-Type: text/plain\n\nsecond, cut\n");
	is_int(v->nparts, 3, "malformed: unterminated multipart parts");
	ok(has(v->parts[2].text, "second, cut"),
	    "malformed: unterminated part's text");
	msgview_free(v);

	/* The boundary never appears at all. */
	v = mk("Content-Type: multipart/mixed; boundary=nothere\n\n"
	       "buy cheap stuff at http://spam.example/\n");
	ok(v->mime_errors > 0, "malformed: missing boundary counted");
	ok(v->nparts == 2 && has(v->parts[1].text, "buy cheap stuff"),
	    "malformed: missing boundary keeps the text");
	ok(uri(v, "http://spam.example/") != NULL,
	    "malformed: missing boundary keeps the URIs");
	msgview_free(v);

	/* A multipart without a boundary parameter. */
	v = mk("Content-Type: multipart/mixed\n\nhidden text\n");
	ok(has(v->parts[v->nparts - 1].text, "hidden text"),
	    "malformed: multipart without boundary keeps the text");
	ok(v->mime_errors > 0, "malformed: no boundary counted");
	msgview_free(v);

	/* Garbage Content-Type. */
	v = mk("Content-Type: ;;;garbage\n\nbody\n");
	ok(v->nparts == 1 && v->parts[0].type != NULL,
	    "malformed: bad Content-Type gives a type");
	msgview_free(v);

	/* No empty line between header and body. */
	v = mk("Subject: x\nFrom: y\nthis is body text\nmore\n");
	ok(msgview_header(v, "Subject", 0) != NULL,
	    "malformed: no separator, header kept");
	ok(v->nparts == 1, "malformed: no separator, one part");
	msgview_free(v);

	/* Bare LF and lone CR line ends. */
	v = mk("Subject: lf\n\nline\rone\nline two\n");
	is_str(hdr(v, "Subject"), "lf", "malformed: bare LF header");
	ok(has(v->parts[0].text, "line two"), "malformed: bare LF body");
	msgview_free(v);

	/* Empty and header-only messages. */
	v = msgview_new("", 0, NULL);
	ok(v != NULL && v->nparts == 1 && v->nheaders == 0,
	    "malformed: empty message");
	msgview_free(v);
	v = msgview_new(NULL, 0, NULL);
	ok(v != NULL && v->nparts == 1, "malformed: NULL message");
	msgview_free(v);
	v = mk("Subject: only\n");
	ok(v->nheaders == 1 && v->hdrsize == v->size, "malformed: header only");
	msgview_free(v);

	/* Headers but no body, body but no header. */
	v = mk("\nbody only\n");
	ok(v->nheaders == 0 && has(v->parts[0].text, "body only"),
	    "malformed: body without header");
	is_int(v->hdrsize, 1, "malformed: hdrsize of an empty header");
	msgview_free(v);

	/* Boundary that is a prefix of another. */
	v = mk("Content-Type: multipart/mixed; boundary=a\n\n"
	       "--a\nContent-Type: multipart/mixed; boundary=ab\n\n"
	       "--ab\n\nin ab\n--ab--\n--a\n\nin a\n--a--\n");
	ok(v->nparts >= 3, "malformed: prefix boundaries");
	msgview_free(v);

	/* Truncated base64 and a bad header line. */
	v = mk("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n"
	       "Bad header line\n\naGVsbG8gd29y!!!bGQ\n");
	ok(v->parts[0].text != NULL, "malformed: broken base64 decodes");
	msgview_free(v);
}

static void
test_structure_more(void)
{
	struct msgview *v;
	size_t		n = 3u << 20, o, i, l;
	char	       *m;
	uint64_t	t0;

	/* multipart/digest: parts default to message/rfc822. */
	v = mk("Content-Type: multipart/digest; boundary=d\n\n"
	       "--d\n\nFrom: a@example.com\nSubject: one\n\nfirst\n"
	       "--d\nContent-Type: message/global\n\nSubject: two\n\n"
	       "second\n--d--\n");
	is_int(v->nparts, 5, "structure: digest parts");
	is_str(v->parts[1].type, "message/rfc822", "structure: digest default");
	ok(v->parts[1].flags & MV_PART_MESSAGE, "structure: digest message");
	is_str(v->parts[2].text, "first", "structure: digest inner text");
	ok(v->parts[2].nheaders == 2 &&
		strcmp(v->parts[2].headers[1].raw, "one") == 0,
	    "structure: digest inner header");
	ok(v->parts[3].flags & MV_PART_MESSAGE, "structure: message/global");
	msgview_free(v);

	/* Delimiters with padding, a part without its empty line. */
	v = mk("Content-Type: multipart/mixed; boundary=\"a b\"\n\n"
	       "preamble http://preamble.example/\n"
	       "--a b  \t\nContent-Type: text/plain\n\npadded\n"
	       "--a bc\nnot a delimiter\n"
	       "--a b\nno header here\n"
	       "--a b-- trailing\nepilogue\n");
	is_int(v->nparts, 3, "structure: padded delimiters");
	is_str(v->parts[1].text, "padded\n--a bc\nnot a delimiter",
	    "structure: longer boundary is no delimiter");
	is_str(v->parts[2].text, "no header here",
	    "structure: part without an empty line");
	ok(uri(v, "http://preamble.example/") == NULL,
	    "structure: preamble not rendered");
	msgview_free(v);

	/* 250 nested multiparts, then 3 MiB of lines that look like
	   delimiters: each byte is scanned a bounded number of times. */
	l = 250 * 80 + n + 100;
	m = xmalloc(l);
	o = 0;
	for (i = 0; i < 250; i++)
		o += (size_t)snprintf(m + o, l - o,
		    "Content-Type: multipart/mixed; boundary=b%zu\n\n--b%zu\n",
		    i, i);
	while (o + 10 < l) {
		memcpy(m + o, "--zzzzzzz\n", 10);
		o += 10;
	}
	t0 = now_usec();
	v = msgview_new(m, o, NULL);
	t0 = now_usec() - t0;
	ok(t0 < 1000000, "structure: hostile nesting in %llu us",
	    (unsigned long long)t0);
	ok(v->truncated & MV_TRUNC_DEPTH, "structure: hostile nesting cut");
	msgview_free(v);
	free(m);
}

static char *
nested_multiparts(int n)
{
	size_t l = (size_t)n * 80 + 100, o = 0;
	char  *m = xmalloc(l);
	int    i;

	for (i = 0; i < n; i++)
		o += (size_t)snprintf(m + o, l - o,
		    "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i,
		    i);
	o += (size_t)snprintf(
	    m + o, l - o, "Content-Type: text/plain\n\ndeep\n");
	return m;
}

static void
test_limits(void)
{
	struct msgview_limits lim = { 0 };
	struct msgview	     *v;
	char		     *m;
	size_t		      i, o, maxdepth = 0, l;

	m = nested_multiparts(40);
	v = mk(m);
	ok(v->truncated & MV_TRUNC_DEPTH, "limits: depth 40 truncated");
	for (i = 0; i < v->nparts; i++)
		if (v->parts[i].depth > maxdepth)
			maxdepth = v->parts[i].depth;
	is_int(maxdepth, 20, "limits: default depth 20");
	msgview_free(v);
	lim.depth = 3;
	v = msgview_new(m, strlen(m), &lim);
	maxdepth = 0;
	for (i = 0; i < v->nparts; i++)
		if (v->parts[i].depth > maxdepth)
			maxdepth = v->parts[i].depth;
	is_int(maxdepth, 3, "limits: depth 3");
	msgview_free(v);
	free(m);

	/* 100 000 nested multiparts: no crash, bounded. */
	m = nested_multiparts(100000);
	v = mk(m);
	ok(v->nparts <= 21 && (v->truncated & MV_TRUNC_DEPTH),
	    "limits: 100000 levels");
	msgview_free(v);
	free(m);

	/* 300 parts. */
	l = 300 * 40 + 100;
	m = xmalloc(l);
	o = (size_t)snprintf(
	    m, l, "Content-Type: multipart/mixed; boundary=p\n\n");
	for (i = 0; i < 300; i++)
		o += (size_t)snprintf(m + o, l - o, "--p\n\npart %zu\n", i);
	snprintf(m + o, l - o, "--p--\n");
	v = mk(m);
	is_int(v->nparts, 256, "limits: default 256 parts");
	ok(v->truncated & MV_TRUNC_PARTS, "limits: parts truncated");
	msgview_free(v);
	memset(&lim, 0, sizeof(lim));
	lim.parts = 5;
	v = msgview_new(m, strlen(m), &lim);
	is_int(v->nparts, 5, "limits: 5 parts");
	msgview_free(v);
	free(m);
}

static void
test_huge_headers(void)
{
	size_t		      big = 1 << 20, i, o;
	char		     *m = xmalloc(big + 200);
	struct msgview	     *v;
	struct msgview_limits lim = { 0 };

	/* One 1 MiB field, folded every 70 bytes. */
	o = (size_t)sprintf(m, "X-Big: ");
	for (i = 0; i < big; i++)
		m[o++] = (i % 70 == 69)	     ? '\n'
		    : (i % 70 == 0 && i > 0) ? ' '
					     : 'a';
	o += (size_t)sprintf(m + o, "\nSubject: after\n\nbody\n");
	v = msgview_new(m, o, NULL);
	ok(msgview_header(v, "X-Big", 0) != NULL &&
		strlen(msgview_header(v, "X-Big", 0)->raw) > big - 100,
	    "huge: 1 MiB field kept");
	is_str(hdr(v, "Subject"), "after", "huge: field after it");
	is_str(v->parts[0].text, "body\n", "huge: body after it");
	msgview_free(v);
	free(m);

	/* 10 000 fields. */
	m = xmalloc(10000 * 20 + 100);
	o = 0;
	for (i = 0; i < 10000; i++)
		o += (size_t)sprintf(m + o, "X-F%zu: v%zu\n", i, i);
	o += (size_t)sprintf(m + o, "\nbody\n");
	v = msgview_new(m, o, NULL);
	is_int(v->nheaders, 1000, "huge: 1000 fields kept");
	ok(v->truncated & MV_TRUNC_HEADERS, "huge: headers truncated");
	is_str(v->headers[999].raw, "v999", "huge: the 1000th field");
	is_str(v->parts[0].text, "body\n", "huge: body after 10000 fields");
	msgview_free(v);
	lim.headers = 10;
	v = msgview_new(m, o, &lim);
	is_int(v->nheaders, 10, "huge: header limit 10");
	msgview_free(v);
	free(m);
}

static void
test_decoded_limits(void)
{
	struct msgview_limits lim = { 0 };
	struct msgview	     *v;
	size_t		      n = 10u << 20, i, o, l;
	char		     *m;
	uint64_t	      t0;

	/* 10 MiB of base64 attachment: only counted. */
	l = n / 3 * 4 + n / 57 + 1000;
	m = xmalloc(l);
	o = (size_t)sprintf(m,
	    "Content-Type: multipart/mixed; boundary=q\n\n--q\n\nhi\n--q\n"
	    "Content-Type: application/zip\n"
	    "Content-Transfer-Encoding: base64\n\n");
	for (i = 0; i < n / 3; i++) {
		memcpy(m + o, "QUJD", 4);
		o += 4;
		if (i % 19 == 18)
			m[o++] = '\n';
	}
	o += (size_t)sprintf(m + o, "\n--q--\n");
	t0 = now_usec();
	v = msgview_new(m, o, NULL);
	t0 = now_usec() - t0;
	is_int(v->parts[2].size, n / 3 * 3, "decoded: 10 MiB base64 size");
	ok(v->parts[2].text == NULL, "decoded: binary not kept");
	ok(t0 < 1000000, "decoded: 10 MiB attachment in %llu us",
	    (unsigned long long)t0);
	msgview_free(v);
	free(m);

	/* 3 MiB text part: 1 MiB kept per part. */
	n = 3u << 20;
	m = xmalloc(n + 200);
	o = (size_t)sprintf(m, "Content-Type: text/plain\n\n");
	memset(m + o, 'x', n);
	o += n;
	v = msgview_new(m, o, NULL);
	is_int(v->parts[0].textlen, 1u << 20, "decoded: 1 MiB kept");
	is_int(v->parts[0].size, n, "decoded: size counts all");
	ok(v->truncated & MV_TRUNC_DECODED, "decoded: truncated");
	msgview_free(v);
	lim.part_decoded = 100;
	v = msgview_new(m, o, &lim);
	is_int(v->parts[0].textlen, 100, "decoded: part limit 100");
	msgview_free(v);
	free(m);

	/* Total budget over several parts. */
	memset(&lim, 0, sizeof(lim));
	lim.decoded = 10;
	v = mk("Content-Type: multipart/mixed; boundary=t\n\n"
	       "--t\n\n123456\n--t\n\nabcdefgh\n--t\n\nzzz\n--t--\n");
	msgview_free(v);
	v = msgview_new("Content-Type: multipart/mixed; boundary=t\n\n"
			"--t\n\n123456\n--t\n\nabcdefgh\n--t\n\nzzz\n--t--\n",
	    strlen("Content-Type: multipart/mixed; boundary=t\n\n"
		   "--t\n\n123456\n--t\n\nabcdefgh\n--t\n\nzzz\n--t--\n"),
	    &lim);
	is_int(v->parts[1].textlen + v->parts[2].textlen + v->parts[3].textlen,
	    10, "decoded: total budget 10");
	ok(v->truncated & MV_TRUNC_DECODED, "decoded: total truncated");
	msgview_free(v);
}

/* ------------------------------------------------------------ HTML */

static struct msgview *
html(const char *body)
{
	size_t		l = strlen(body) + 100;
	char	       *m = xmalloc(l);
	struct msgview *v;

	snprintf(m, l, "Content-Type: text/html; charset=utf-8\n\n%s", body);
	v = mk(m);
	free(m);
	return v;
}

static void
test_html_render(void)
{
	struct msgview *v;

	v = html("<html><head><title>The  Title</title>"
		 "<style>p { color: red }</style>"
		 "<script>var x = 'hidden';</script></head>"
		 "<body><p>First   paragraph\n  here.</p>"
		 "<div>A &amp; B &eacute; &#8364; &lt;tag&gt;</div>"
		 "line<br>break<br><br><br><br>after"
		 "<ul><li>one</li><li>two</li></ul>"
		 "<table><tr><td>c1</td><td>c2</td></tr></table>"
		 "<span style=\"display:none\">invisible</span>"
		 "<div hidden>also hidden</div>"
		 "in<b>line</b> text"
		 "</body></html>");
	is_str(v->parts[0].text,
	    "The Title\n"
	    "First paragraph here.\n"
	    "A & B \xc3\xa9 \xe2\x82\xac <tag>\n"
	    "line\nbreak\n\nafter\n"
	    "one\ntwo\n"
	    "c1 c2\n"
	    "inline text",
	    "html: rendering");
	ok(!has(v->parts[0].text, "hidden"), "html: script skipped");
	ok(!has(v->parts[0].text, "color"), "html: style skipped");
	ok(v->parts[0].raw_text != NULL &&
		has(v->parts[0].raw_text, "<script>"),
	    "html: raw_text keeps everything");
	is_int(v->html.title, 1, "html: title");
	is_int(v->html.scripts, 1, "html: scripts");
	is_int(v->html.parts, 1, "html: parts");
	is_int(v->html.text, v->parts[0].textlen, "html: text bytes");
	is_int(v->html.raw, v->parts[0].raw_textlen, "html: raw bytes");
	msgview_free(v);

	/* Broken HTML still renders. */
	v = html("<p>unclosed <b>bold <i>italic<p>next</div></div><<<>>>"
		 "<!-- unterminated comment");
	ok(has(v->parts[0].text, "unclosed bold italic"),
	    "html: broken markup rendered");
	ok(has(v->parts[0].text, "next"), "html: after bad tags");
	msgview_free(v);

	v = html("<p>a&nbsp;&nbsp;b\xc2\xa0"
		 "c</p>");
	is_str(v->parts[0].text, "a b c", "html: NBSP collapses as a space");
	msgview_free(v);

	/* A meta charset must not re-decode our UTF-8. */
	v = html("<meta charset=\"iso-8859-1\"><p>caf\xc3\xa9</p>");
	is_str(v->parts[0].text, "caf\xc3\xa9", "html: meta charset ignored");
	msgview_free(v);
}

static void
test_html_counters(void)
{
	struct msgview *v = html(
	    "<html><body bgcolor=\"#ffffff\">"
	    "<img src=\"http://img.example.com/a.png\" width=\"100\" "
	    "height=\"20\">"
	    "<img src=\"cid:part1\" width=10 height=10>"
	    "<iframe src=\"http://frame.example.com/\"></iframe>"
	    "<form action=\"https://form.example.com/post\"></form>"
	    "<embed src=\"x.swf\"><object data=\"http://obj.example.com/o\">"
	    "</object><applet></applet>"
	    "<!-- one --><!-- two -->"
	    "<o:p>office</o:p><blah>x</blah>\n"
	    "<a href=\"http://evil.example.net/login\">"
	    "https://www.paypal.com/</a>\n"
	    "<a href=\"http://www.paypal.com/ok\">www.paypal.com</a>\n"
	    "<a href=\"http://shop.example.org/\">Click here</a>\n"
	    "<a href=\"#top\">top</a>\n"
	    "<a href=\"javascript:void(0)\">js</a>\n"
	    "<font color=\"#fefefe\">white on white</font>\n"
	    "<span style=\"color: white\">css white</span>\n"
	    "<font size=\"1\">tiny</font>\n"
	    "<span style=\"font-size: 1px\">tinier</span>\n"
	    "<p>v<b></b>iagra and c<!-- -->ialis and &#118;&#x69;agra</p>"
	    "<table background=\"http://bg.example.com/b.gif\"><tr><td>"
	    "cell</td></tr></table>"
	    "<meta http-equiv=\"refresh\" content=\"0; "
	    "url=http://refresh.example.com/\">"
	    "</body></html>");
	const struct mv_uri *u;

	is_int(v->html.images, 2, "counters: images");
	is_int(v->html.image_area, 2100, "counters: image area");
	is_int(v->html.iframes, 1, "counters: iframes");
	is_int(v->html.forms, 1, "counters: forms");
	is_int(v->html.embeds, 3, "counters: embeds");
	is_int(v->html.comments, 3, "counters: comments");
	is_int(v->html.bad_tags, 2, "counters: bad tags");
	ok(v->html.tags >= 25, "counters: tags (%u)", v->html.tags);
	is_int(v->html.anchors, 5, "counters: anchors");
	is_int(v->html.anchors_text_url, 1, "counters: anchor text URL");
	is_int(v->html.font_low_contrast, 2, "counters: low contrast");
	is_int(v->html.font_tiny, 2, "counters: tiny fonts");
	is_int(v->html.obfuscation, 4, "counters: obfuscation");
	is_int(v->html.title, 0, "counters: no title");
	ok(has(v->parts[0].text, "viagra and cialis and viagra"),
	    "counters: obfuscated text rendered whole");

	u = uri(v, "http://evil.example.net/login");
	ok(u != NULL && u->flags == (MV_URI_HTML | MV_URI_ANCHOR),
	    "html uris: anchor flags");
	is_str(u != NULL ? u->text : NULL, "https://www.paypal.com/",
	    "html uris: anchor text");
	is_str(u != NULL ? u->domain : NULL, "example.net",
	    "html uris: anchor domain");
	ok(uri(v, "http://img.example.com/a.png") != NULL, "html uris: img");
	ok(uri(v, "http://frame.example.com/") != NULL, "html uris: iframe");
	ok(uri(v, "https://form.example.com/post") != NULL,
	    "html uris: form action");
	ok(uri(v, "http://obj.example.com/o") != NULL, "html uris: object");
	ok(uri(v, "http://bg.example.com/b.gif") != NULL,
	    "html uris: background");
	ok(uri(v, "http://refresh.example.com/") != NULL,
	    "html uris: meta refresh");
	ok(uri(v, "cid:part1") == NULL, "html uris: cid skipped");
	ok(uri(v, "#top") == NULL, "html uris: fragment skipped");
	ok(uri(v, "javascript:void(0)") == NULL, "html uris: javascript");
	ok(uri(v, "x.swf") == NULL, "html uris: relative skipped");
	u = uri(v, "https://www.paypal.com/");
	ok(u != NULL && (u->flags & MV_URI_TEXT),
	    "html uris: URL in rendered text");
	msgview_free(v);
}

/* font colours as SpamAssassin's HTML.pm reads them */
static void
test_html_contrast(void)
{
	static const struct {
		const char *html;
		unsigned    low, invalid;
		const char *what;
	} cases[] = {
		{ "<font color=\"#ffffcc\">pale</font>", 1, 0,
		    "near white on the default white" },
		{ "<table bgcolor=\"#000080\"><tr><td><font color=white>w"
		  "</font></td></tr></table>",
		    1, 0, "bgcolor attributes are not applied (as HTML.pm)" },
		{ "<div style=\"background-color: #000080\"><font "
		  "color=white>w</font></div>",
		    0, 0, "CSS background is" },
		{ "<span style=\"background: url(x.gif) no-repeat #000\">"
		  "<font color=\"#fff\">w</font></span>",
		    0, 0, "CSS background shorthand: its colour" },
		{ "<font color=\"#777777\">grey</font>", 0, 0,
		    "grey on white is readable" },
		{ "<span style=\"display:none\"><font color=white>hid"
		  "</font></span>",
		    1, 0, "hidden text counts too" },
		{ "<font color=\"ffffff\">bare hex</font>", 0, 1,
		    "hex without # is invalid" },
		{ "<body text=\"#FFFFFF\">x</body>", 1, 0, "body text" },
		{ "<p style=\"color: rgb(250, 250, 250) !important\">x</p>", 1,
		    0, "rgb() and !important" },
		{ "<span style=\"color:transparent\">x</span>", 1, 0,
		    "transparent text is the background" },
		{ "<b style=\"color: white\">x</b>", 0, 0,
		    "style colours only on HTML.pm's elements" },
		{ "<font color=white> &nbsp; </font>", 0, 0,
		    "white space only" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msgview *v = html(cases[i].html);

		ok(v->html.font_low_contrast == cases[i].low &&
			v->html.font_invalid_color == cases[i].invalid,
		    "contrast: %s (%u, %u)", cases[i].what,
		    v->html.font_low_contrast, v->html.font_invalid_color);
		msgview_free(v);
	}
}

/* libxml2 must not lose a document behind content before its <head> */
static void
test_html_leading_content(void)
{
	struct msgview *v = html(
	    "junk text\n<html><head><title>T</title></head><body>"
	    "<p>visible <b>words</b></p><a href=\"http://a.example/\">a</a>"
	    "</body></html>");

	ok(has(v->parts[0].text, "visible words"),
	    "leading text: the body is still rendered");
	ok(uri(v, "http://a.example/") != NULL,
	    "leading text: the body's links are found");
	ok(v->html.tags >= 6, "leading text: tags counted (%u)", v->html.tags);
	msgview_free(v);
	v = html("<font size=1>notice</font><br><!DOCTYPE HTML PUBLIC "
		 "\"-//W3C//DTD HTML 4.0 Transitional//EN\">\n<HTML><HEAD>"
		 "<TITLE>t</TITLE></HEAD><BODY>after <i>it</i></BODY></HTML>");
	ok(has(v->parts[0].text, "after it"),
	    "a notice before the DOCTYPE: the body is still rendered");
	msgview_free(v);
	v = html("<p>plain</p>");
	is_int(v->html.tags, 1, "the wrapper element is not counted");
	msgview_free(v);
}

/*
 * Nor behind misplaced structure: a stray end tag that closes the first
 * top-level element, a <body> or <head> after content (libxml2 2.9
 * dropped all that followed; a mail reader and SpamAssassin show it).
 */
static void
test_html_misplaced_structure(void)
{
	static const struct {
		const char *html, *want, *what;
	} cases[] = {
		{ "<table><tr><td>one</td></tr></table></div>two <a "
		  "href=\"http://b.example/\">b</a>",
		    "two b", "a stray </div>" },
		{ "<html><table><tr><td>one</td></tr></table><head></head>"
		  "<body bgcolor=\"#ffffff\">two words</body></html>",
		    "two words", "a <head> after content" },
		{ "one<body>two</body>three words", "three words",
		    "a <body> after content" },
		{ "a</p>b</span>c</table>d</html>e</body>f words", "f words",
		    "stray end tags" },
		{ "<HTML><BODY>x</BODY></HTML><HTML><BODY>second one</BODY>"
		  "</HTML>",
		    "x\nsecond one", "two documents" },
		{ "<html><body>text</body></html>\n<p>list footer</p>",
		    "list footer", "a footer after </html>" },
		{ "a</moat-root>b</MOAT-ROOT >c</moat-html>d words", "d words",
		    "end tags named like the wrapper" },
	};
	struct msgview *v;
	size_t		i;

	for (i = 0; i < nitems(cases); i++) {
		v = html(cases[i].html);
		ok(has(v->parts[0].text, cases[i].want),
		    "misplaced structure: %s: text after it rendered",
		    cases[i].what);
		msgview_free(v);
	}
	v = html(cases[0].html);
	ok(uri(v, "http://b.example/") != NULL,
	    "misplaced structure: links after a stray </div> found");
	msgview_free(v);
	v = html("<html><head><title>t</title></head><body text=\"#fff\">"
		 "white</body></html>");
	is_int(v->html.tags, 4, "html, head, title, body counted");
	is_int(v->html.bad_tags, 0, "html, head, body are known tags");
	is_int(v->html.font_low_contrast, 1,
	    "body text colour applies (white on white)");
	msgview_free(v);
	v = html("<html><body>a</body></html><html><body text=\"#fff\">"
		 "white</body></html>");
	is_int(v->html.font_low_contrast, 1,
	    "a second body's text colour applies");
	msgview_free(v);
	v = html("<htmlx>a</htmlx><bodyguard>b</bodyguard><body/>c");
	ok(has(v->parts[0].text, "c"), "names that only start like html tags");
	is_int(v->html.bad_tags, 2, "htmlx and bodyguard are unknown tags");
	msgview_free(v);
}

/* The text a reader does not see: in `invisible`, not in `text` */
static void
test_html_invisible(void)
{
	struct msgview *v = html(
	    "<html><body>"
	    "<p>Shown words</p>"
	    "<span style=\"display:none\">none one</span>"
	    "<div hidden>attr two</div>"
	    "<font color=\"#ffffff\">white three</font>"
	    "<font color=\"#fefefe\">near four</font>"
	    "<font color=\"bogus\">invalid five</font>"
	    "<p><font size=\"1\">tiny six</font></p>"
	    "<span style=\"visibility:hidden\">http://hidden.example/x</span>"
	    "<p>more <font color=\"#ff0000\">red</font> shown</p>"
	    "</body></html>");

	is_str(v->parts[0].text, "Shown words\nmore red shown",
	    "invisible: only the visible is in text");
	is_str(v->parts[0].invisible,
	    "none one\nattr two\nwhite threenear fourinvalid five\n"
	    "tiny six\nhttp://hidden.example/x",
	    "invisible: hidden, faint, invalid and tiny runs, in order");
	is_int(v->parts[0].invisiblelen, strlen(v->parts[0].invisible),
	    "invisible: its length");
	ok(uri(v, "http://hidden.example/x") != NULL,
	    "invisible: its URLs are found");
	is_int(v->html.font_low_contrast, 2, "invisible: faint runs counted");
	is_int(v->html.font_invalid_color, 1, "invisible: invalid colour");
	is_int(v->html.font_tiny, 1, "invisible: tiny runs counted");
	msgview_free(v);
	v = html("<p>all visible</p>");
	is_str(v->parts[0].invisible, "", "invisible: none is \"\"");
	msgview_free(v);
	v = mk("Content-Type: text/plain\n\nplain\n");
	ok(v->parts[0].invisible == NULL && v->parts[0].invisiblelen == 0,
	    "invisible: NULL for text/plain");
	msgview_free(v);
}

/* ------------------------------------------------------------ URIs */

static void
test_uris_text(void)
{
	struct msgview *v =
	    mk("Subject: uris\n\n"
	       "Visit http://Example.COM./path?q=1, or (see "
	       "https://sub.example.co.uk/a_(b)).\n"
	       "Schemeless www.schemeless.org/page and WWW.CAPS.NET.\n"
	       "IDN http://b\xc3\xbc"
	       "cher.de/ and http://3232235777/x and "
	       "http://0xC0.0xA8.0x01.0x02/ and http://0300.0250.1.3/ "
	       "and http://192.168.1.4:8080/ and http://[2001:DB8::1]/.\n"
	       "Mail me: john.doe+tag@Example.ORG, or "
	       "mailto:sales@shop.example?subject=x\n"
	       "Twice http://example.com./path?q=1 and "
	       "http://Example.COM./path?q=1\n"
	       "Userinfo http://www.bank.com@evil.example/ and "
	       "percent http://%77%77%77.pct.example/\n"
	       "ftp://files.example.com/pub and not a url: http:/x nor "
	       "foo@bar nor user@localhost\n");
	const struct mv_uri *u;

	u = uri(v, "http://Example.COM./path?q=1");
	ok(u != NULL, "uris: scheme URL, comma trimmed");
	is_str(u ? u->host : NULL, "example.com", "uris: host lower, dot");
	is_str(u ? u->domain : NULL, "example.com", "uris: domain");
	is_int(u ? u->flags : 0, MV_URI_TEXT, "uris: text flag");
	u = uri(v, "https://sub.example.co.uk/a_(b)");
	ok(u != NULL, "uris: parentheses balanced");
	is_str(u ? u->domain : NULL, "example.co.uk", "uris: PSL domain");
	u = uri(v, "www.schemeless.org/page");
	is_str(u ? u->host : NULL, "www.schemeless.org", "uris: schemeless");
	u = uri(v, "WWW.CAPS.NET");
	is_str(u ? u->host : NULL, "www.caps.net", "uris: schemeless caps");
	u = uri(v,
	    "http://b\xc3\xbc"
	    "cher.de/");
	is_str(u ? u->host : NULL, "xn--bcher-kva.de", "uris: IDN A-label");
	is_str(u ? u->domain : NULL, "xn--bcher-kva.de", "uris: IDN domain");
	u = uri(v, "http://3232235777/x");
	is_str(u ? u->host : NULL, "192.168.1.1", "uris: decimal IP");
	is_str(u ? u->domain : NULL, "192.168.1.1", "uris: IP domain");
	u = uri(v, "http://0xC0.0xA8.0x01.0x02/");
	is_str(u ? u->host : NULL, "192.168.1.2", "uris: hex IP");
	u = uri(v, "http://0300.0250.1.3/");
	is_str(u ? u->host : NULL, "192.168.1.3", "uris: octal IP");
	u = uri(v, "http://192.168.1.4:8080/");
	is_str(u ? u->host : NULL, "192.168.1.4", "uris: port dropped");
	u = uri(v, "http://[2001:DB8::1]/");
	is_str(u ? u->host : NULL, "2001:db8::1", "uris: IPv6 literal");
	u = uri(v, "mailto:john.doe+tag@Example.ORG");
	ok(u != NULL && u->flags == (MV_URI_TEXT | MV_URI_MAILTO),
	    "uris: bare address as mailto");
	is_str(u ? u->host : NULL, "example.org", "uris: address host");
	u = uri(v, "mailto:sales@shop.example?subject=x");
	is_str(u ? u->host : NULL, "shop.example", "uris: mailto host");
	u = uri(v, "http://example.com./path?q=1");
	ok(u != NULL, "uris: different string, different entry");
	u = uri(v, "http://www.bank.com@evil.example/");
	is_str(u ? u->host : NULL, "evil.example", "uris: userinfo skipped");
	u = uri(v, "http://%77%77%77.pct.example/");
	is_str(u ? u->host : NULL, "www.pct.example", "uris: %-decoded host");
	u = uri(v, "ftp://files.example.com/pub");
	is_str(u ? u->host : NULL, "files.example.com", "uris: ftp");
	ok(uri(v, "mailto:foo@bar") == NULL, "uris: foo@bar is no address");
	ok(uri(v, "mailto:user@localhost") == NULL,
	    "uris: single-label address skipped");
	{
		size_t i, n = 0;

		for (i = 0; i < v->nuris; i++)
			n += strcmp(v->uris[i].uri,
				 "http://Example.COM./path?q=1") == 0;
		is_int(n, 1, "uris: unique by string");
	}
	msgview_free(v);
}

static void
test_uri_limit(void)
{
	size_t		      l = 2000 * 40 + 100, o, i;
	char		     *m = xmalloc(l);
	struct msgview	     *v;
	struct msgview_limits lim = { 0 };

	o = (size_t)snprintf(m, l, "Subject: many\n\n");
	for (i = 0; i < 2000; i++)
		o += (size_t)snprintf(m + o, l - o, "http://h%zu.example/ ", i);
	v = mk(m);
	is_int(v->nuris, 1024, "uri limit: 1024 kept");
	ok(v->truncated & MV_TRUNC_URIS, "uri limit: truncated");
	is_str(v->uris[0].uri, "http://h0.example/", "uri limit: first first");
	msgview_free(v);
	lim.uris = 3;
	v = msgview_new(m, o, &lim);
	is_int(v->nuris, 3, "uri limit: 3");
	msgview_free(v);
	free(m);
}

/* Views built on several threads at once agree with one thread's. */
static const char thread_msg[] =
    "Subject: =?koi8-r?b?8NLJ18XU?=\n"
    "Content-Type: multipart/alternative; boundary=x\n\n"
    "--x\nContent-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9 "
    "http://a.example.com/ www.b.example.org\n"
    "--x\nContent-Type: text/html; charset=iso-8859-2\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "<p>=B1 <a href=3D\"http://b\xc3\xbc"
    "cher.de/\">here</a></p>\n"
    "--x--\n";

static void *
thread_run(void *arg)
{
	size_t *sig = arg, i;

	for (i = 0; i < 300; i++) {
		struct msgview *v = mk(thread_msg);
		size_t		s = v->nuris * 1000 + v->parts[1].textlen * 10 +
		    v->parts[2].textlen;

		if (i == 0)
			*sig = s;
		else if (*sig != s)
			*sig = 0;
		msgview_free(v);
	}
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[4];
	size_t	  sig[4], one;
	int	  i, same = 1;

	thread_run(&one);
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_run, &sig[i]);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		same &= sig[i] == one;
	}
	ok(one != 0 && same, "threads: four threads agree with one");
}

static void
test_threads_free(void)
{
	/* msgview_free(NULL) is harmless; global init is idempotent. */
	msgview_global_init();
	msgview_global_init();
	msgview_free(NULL);
	ok(1, "free(NULL) and repeated init");
}

int
main(void)
{
	msgview_global_init();
	test_headers();
	test_rfc2047();
	test_encodings();
	test_charsets();
	test_nul_in_text();
	test_nested();
	test_malformed();
	test_structure_more();
	test_limits();
	test_huge_headers();
	test_decoded_limits();
	test_html_render();
	test_html_counters();
	test_html_contrast();
	test_html_leading_content();
	test_html_misplaced_structure();
	test_html_invisible();
	test_uris_text();
	test_uri_limit();
	test_threads();
	test_threads_free();
	return tap_done();
}
