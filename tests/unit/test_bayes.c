/*
 * test_bayes.c - the state store (proxy/store_lmdb.c), SipHash, and the
 * Bayesian classifier (filters/spam/bayes*.c): the arithmetic against
 * values computed by hand (an independent Python transcription of
 * SpamAssassin's formulas), tokenizer cases, the minimum training size,
 * learn/relearn/forget counts, store batches and guards, concurrency
 * (threads and a forked process adding to the same counters while
 * readers check that every batch is seen whole), and map growth.
 *
 * Views are built by hand (struct msgview is a plain layout). Every store
 * lives in a fresh directory under $TMPDIR, removed at the end.
 */
#include <sys/wait.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bayes.h"
#include "bayes_tok.h"
#include "msgview.h"
#include "siphash.h"
#include "store.h"
#include "tap.h"
#include "util.h"

static char dir[256];

static void
path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void
rmtree(void)
{
	DIR	      *d = opendir(dir);
	struct dirent *e;
	char	       p[512];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static int
near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

/* ------------------------------------------------------ hand-made views */

struct view {
	struct mv_header h[32];
	struct mv_part	 p[4];
	struct mv_uri	 u[8];
	struct msgview	 mv;
};

/* hdrs: name, value pairs, NULL-terminated; uris NULL-terminated. */
static struct msgview *
mkview(struct view *v, const char *const *hdrs, const char *body,
    const char *const *uris)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	for (i = 0; hdrs != NULL && hdrs[2 * i] != NULL && i < 32; i++) {
		v->h[i].name = hdrs[2 * i];
		v->h[i].raw = v->h[i].decoded = hdrs[2 * i + 1];
	}
	v->mv.headers = v->h;
	v->mv.nheaders = i;
	v->p[0].type = "text/plain";
	v->p[0].flags = MV_PART_TEXT;
	v->p[0].headers = v->h;
	v->p[0].nheaders = i;
	v->p[0].text = v->p[0].raw_text = body;
	v->p[0].textlen = v->p[0].raw_textlen = body != NULL ? strlen(body) : 0;
	v->mv.parts = v->p;
	v->mv.nparts = 1;
	for (i = 0; uris != NULL && uris[i] != NULL && i < 8; i++)
		v->u[i].uri = uris[i];
	v->mv.uris = v->u;
	v->mv.nuris = i;
	return &v->mv;
}

/* ------------------------------------------------------ tokens */

struct toklist {
	char **t;
	size_t n;
};

static int
collect(void *arg, const char *tok, size_t len)
{
	struct toklist *l = arg;

	l->t = xrealloc(l->t, (l->n + 1) * sizeof(*l->t));
	l->t[l->n++] = xstrndup(tok, len);
	return 0;
}

static int
has(const struct toklist *l, const char *tok)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->t[i], tok) == 0)
			return 1;
	return 0;
}

static int
has_prefix(const struct toklist *l, const char *pfx)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strncmp(l->t[i], pfx, strlen(pfx)) == 0)
			return 1;
	return 0;
}

static void
toklist_free(struct toklist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->t[i]);
	free(l->t);
	memset(l, 0, sizeof(*l));
}

static void
tokenize(
    struct toklist *l, const struct msgview *mv, const struct bayes_tokopts *o)
{
	memset(l, 0, sizeof(*l));
	bayes_tokenize(mv, o, collect, l);
}

static void
test_tokenizer(void)
{
	static const char *const hdrs[] = { "From",
		"John Smith <john@mail.example.com>", "To", "bob@example.org",
		"Subject", "Cheap Watches for you", "Delivered-To",
		"me@local.test", "Date", "Mon, 1 Jan 2024 10:00:00 +0000",
		"Message-ID", "<abc.123$xyz@host.example.com>", "X-Custom",
		"trackme", "Received",
		"from mx.local.test by mx.local.test; Mon, 1 Jan 2024",
		"Received",
		"from relay.example.net (relay.example.net [203.0.113.77]) "
		"by gw.example.net with ESMTP id 12345ABCDE; Mon, 1 Jan 2024",
		"Received",
		"from pc (unknown [192.168.1.20]) by relay.example.net; "
		"Sun, 31 Dec 2023",
		"Content-Type",
		"multipart/alternative; boundary=\"----=_NextPart_000_1A2B\"",
		"DKIM-Signature", "v=1; a=rsa-sha256; b=AAAAverylongsignature",
		NULL };
	static const char *const uris[] = { "http://spam.example.biz/buy?now=1",
		NULL };
	static const char *const ign[] = { "x-custom" };
	static const char *const local[] = { "mx.local.test" };
	struct bayes_tokopts	 o = { ign, 1, local, 1 };
	struct view		 v;
	struct toklist		 l;

	mkview(&v, hdrs,
	    "Hello there, this is IT calling.\n"
	    "Visit www.example.com or mail sales@shop.example.net now!\n"
	    "wait...what--really? FREE!!! $31,000,000 offer\n"
	    "supercalifragilisticexpialidocious\n"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86"
	    "\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\n"
	    "Caf\xc3\xa9 r\xc3\xa9sum\xc3\xa9 ok\n",
	    uris);
	tokenize(&l, &v.mv, &o);
	ok(l.n > 0, "tokens: some (%zu)", l.n);
	/* body words */
	ok(has(&l, "hello"), "Title case at line start lowered");
	ok(!has(&l, "Hello"), "... and not kept as written");
	ok(has(&l, "there"), "trailing comma trimmed");
	ok(has(&l, "this"), "plain word");
	ok(!has(&l, "is") && !has(&l, "IT"), "words under 3 bytes skipped");
	ok(has(&l, "calling"), "trailing dot trimmed");
	ok(has(&l, "UD:www.example.com") && has(&l, "UD:example.com") &&
		has(&l, "UD:com"),
	    "host-like words give UD: for every parent");
	ok(has(&l, "U*sales") && has(&l, "D*shop.example.net") &&
		has(&l, "D*example.net") && has(&l, "D*net"),
	    "mail addresses give U* and D* tokens");
	ok(has(&l, "wait") && has(&l, "what") && !has(&l, "wait...what"),
	    "word...word splits (the dots alone are trimmed away, as in SA)");
	ok(has(&l, "really") && !has(&l, "what--really"), "word--word splits");
	ok(has(&l, "FREE!!!") && has(&l, "FREE") && has(&l, "free!!!") &&
		has(&l, "free"),
	    "shouting decomposed: as is, stripped, lower, lower stripped");
	ok(has(&l, "$31,000,000"), "money amounts kept whole");
	ok(has(&l, "sk:superca"), "long word -> sk: + first 7 bytes");
	ok(!has(&l, "supercalifragilisticexpialidocious"),
	    "... not kept whole");
	ok(has(&l, "u8:\xe6\x97\xa5") && has(&l, "u8:\xe8\xaa\x9e"),
	    "long CJK run -> its characters (u8:)");
	ok(has(&l, "caf\xc3\xa9") && has(&l, "r\xc3\xa9sum\xc3\xa9"),
	    "UTF-8 letters stay inside words");
	/* Subject is body text */
	ok(has(&l, "cheap") && has(&l, "Watches") && has(&l, "watches"),
	    "the Subject is tokenized as body text");
	ok(!has_prefix(&l, "HSubject:"), "no HSubject: tokens");
	/* URIs */
	ok(has(&l, "UD:spam.example.biz") && has(&l, "UD:example.biz"),
	    "URI host tokens");
	ok(has(&l, "buy?now=1") == 0 && has(&l, "buy"), "URI path word");
	/* headers */
	ok(has(&l, "H*F:N*John") && has(&l, "H*F:N*Smith"),
	    "From display name words (N*)");
	ok(has(&l, "H*F:U*john") && has(&l, "H*F:D*mail.example.com") &&
		has(&l, "H*F:D*example.com"),
	    "From address (U*, D* per parent)");
	ok(has(&l, "H*Ad:U*john") && has(&l, "H*Ad:U*bob"),
	    "From/To/Cc also as *Ad");
	ok(has(&l, "HTo:D*example.org"), "To address");
	ok(!has_prefix(&l, "HDelivered-To:"), "Delivered-To ignored");
	ok(!has_prefix(&l, "HDate:"), "Date ignored");
	ok(!has_prefix(&l, "HX-Custom:"), "caller's ignore list honoured");
	ok(has(&l, "H*M:host") && has(&l, "H*M:xyz") && has(&l, "H*MI:abc"),
	    "Message-ID split on punctuation, also as *MI");
	ok(!has(&l, "H*r:mx.local.test"), "Received by a local host skipped");
	ok(has(&l, "H*r:gw.example.net") && has(&l, "H*r:unknown") &&
		has(&l, "H*r:sk:relay.e"),
	    "the two bottom Received fields used");
	ok(has(&l, "H*r:203.0.113") && has(&l, "H*r:ip*203.0.113.77"),
	    "Received IPv4 cut to /24 plus ip*full");
	ok(has(&l, "H*r:192.168.1.20") && has(&l, "H*r:ip*192.168.1.20"),
	    "private 192.168/16 kept whole");
	ok(!has(&l, "H*r:12345ABCDE") && !has(&l, "H*r:ESMTP") &&
		!has(&l, "H*r:2024"),
	    "Received ids, noise words and dates dropped");
	ok(has(&l, "H*ct:multipart") && has(&l, "H*ct:alternative"),
	    "Content-Type value");
	ok(has(&l, "H*ct:NHxtPHrt") && has(&l, "H*ct:HHHH"),
	    "boundary hex digits masked, separators split");
	ok(has(&l, "HDKIM-Signature:present") &&
		!has_prefix(&l, "HDKIM-Signature:v=1"),
	    "signature fields only as present");
	toklist_free(&l);

	/* Without options nothing extra is ignored. */
	tokenize(&l, &v.mv, NULL);
	ok(has(&l, "HX-Custom:trackme"), "X-Custom tokenized without options");
	ok(has(&l, "H*r:gw.example.net") || has(&l, "H*r:relay.example.net"),
	    "Received used without local hosts");
	toklist_free(&l);

	/* Relays, Return-Path, Message-ID formats, paragraphs. */
	{
		static const char *const h2[] = { "Return-Path",
			"<bounce@lists.example.org>", "Message-ID",
			"<000c84d37aae$7338a0a4$3ab55ec5@pc01>", "Received",
			"from mx.local.test by mx.local.test; Mon, 1 Jan 2024",
			"Received",
			"from lists.example.org (lists.example.org "
			"[198.51.100.9]) by mx.local.test; Mon, 1 Jan 2024",
			"Received",
			"from list-relay (hub.example.org [198.51.100.2]) "
			"by lists.example.org; Mon, 1 Jan 2024",
			"Received",
			"from pc01 ([203.0.113.5]) by hub.example.org with "
			"ESMTP id ABCDEFGH; Mon, 1 Jan 2024",
			NULL };

		mkview(&v, h2,
		    "first line of a paragraph\n"
		    "Wrapped continues it. Sentence starts\n"
		    "\n"
		    "Paragraph starts here\n",
		    NULL);
		tokenize(&l, &v.mv, &o);
		ok(has(&l, "H*p:U*bounce") && has(&l, "H*p:D*example.org"),
		    "Return-Path (the envelope sender) tokenized");
		ok(has(&l, "H*M:OEA000c") && has(&l, "H*M:OEB7338") &&
			has(&l, "H*M:OEC3ab55ec5") && has(&l, "H*M:pc01") &&
			!has(&l, "H*M:000c84d37aae"),
		    "Outlook Express Message-ID: its stable pieces");
		ok(has(&l, "H*RU:sk:lists.e") && has(&l, "H*RU:198.51.100.9") &&
			has(&l, "H*RU:list-relay") &&
			has(&l, "H*RU:hub.example.org") &&
			has(&l, "H*RU:198.51.100.2") && has(&l, "H*RU:pc01") &&
			has(&l, "H*RU:203.0.113.5"),
		    "every hop's HELO, reverse DNS, address as H*RU: (long "
		    "ones as sk:)");
		ok(!has(&l, "H*RU:ESMTP") && !has(&l, "H*RU:ABCDEFGH") &&
			!has(&l, "H*RU:2024"),
		    "relay tokens without protocol, id, date");
		ok(has(&l, "Wrapped"),
		    "a wrapped line's Title-case word is kept as written");
		ok(has(&l, "sentence") && has(&l, "paragraph"),
		    "Title case lowered after a full stop and at a "
		    "paragraph's start");
		toklist_free(&l);
	}

	mkview(&v, NULL, "!!! $$$ *** @@@ ,,, '''", NULL);
	tokenize(&l, &v.mv, NULL);
	ok(!has(&l, ""), "punctuation-only words give no empty token");
	toklist_free(&l);
}

static int
count_cb(void *arg, const char *tok, size_t len)
{
	(*(size_t *)arg)++;
	return 0;
}

static int
stop_cb(void *arg, const char *tok, size_t len)
{
	return ++(*(size_t *)arg) >= 10;
}

/* SpamAssassin's invisible-text tokens: I*:word, apart from the body's */
static void
test_tokenizer_invisible(void)
{
	static const char *const hdrs[] = { "Subject", "hi", NULL };
	struct view		 v;
	struct toklist		 l;

	mkview(&v, hdrs, "Visible offer here", NULL);
	v.p[0].type = "text/html";
	v.p[0].flags |= MV_PART_HTML;
	v.p[0].invisible = "Mortgage refinance\nhttp://hidden.example/";
	v.p[0].invisiblelen = strlen(v.p[0].invisible);
	tokenize(&l, &v.mv, NULL);
	ok(has(&l, "offer"), "invisible: the visible words as they are");
	ok(has(&l, "I*:mortgage") && has(&l, "I*:refinance"),
	    "invisible: its words prefixed I*: (Title case lowered)");
	ok(!has(&l, "mortgage") && !has(&l, "refinance"),
	    "invisible: not as body words");
	ok(!has(&l, "I*:offer"), "invisible: visible words not prefixed");
	toklist_free(&l);
	v.p[0].invisible = "";
	v.p[0].invisiblelen = 0;
	tokenize(&l, &v.mv, NULL);
	ok(!has_prefix(&l, "I*:"), "invisible: none, no I*: tokens");
	toklist_free(&l);
}

static void
test_tokenizer_bounds(void)
{
	struct view v;
	size_t	    n = 100000 * 6, i, count = 0;
	char	   *big = xmalloc(n + 1), *weird;

	for (i = 0; i < n; i += 6)
		memcpy(big + i, "word ", 5), big[i + 5] = '\n';
	big[n] = '\0';
	mkview(&v, NULL, big, NULL);
	bayes_tokenize(&v.mv, NULL, count_cb, &count);
	is_int(count, BAYES_BODY_TOKENS, "body tokens capped at %d",
	    BAYES_BODY_TOKENS);
	count = 0;
	bayes_tokenize(&v.mv, NULL, stop_cb, &count);
	is_int(count, 10, "the callback stops the tokenizer");
	free(big);

	/* Hostile bytes: NULs inside the text, lone continuation bytes,
	   truncated sequences, a huge word. */
	weird = xmalloc(70000);
	for (i = 0; i < 70000; i++)
		weird[i] = (char)(i * 7919 % 256);
	weird[69999] = '\0';
	mkview(&v, NULL, weird, NULL);
	v.p[0].textlen = 69999;
	count = 0;
	bayes_tokenize(&v.mv, NULL, count_cb, &count);
	ok(count > 0, "binary garbage tokenizes (%zu tokens)", count);
	memset(weird, 'a', 69999);
	count = 0;
	bayes_tokenize(&v.mv, NULL, count_cb, &count);
	is_int(count, 1, "one huge word -> one sk: token");
	free(weird);
}

/* ------------------------------------------------------ arithmetic */

static void
test_arithmetic(void)
{
	static const double p2[] = { 0.9, 0.9 };
	static const double p3[] = { 0.99, 0.2, 0.85 };
	static const double p4[] = { 0.1, 0.2, 0.05, 0.9 };
	static const double p5[] = { 0.95, 0.97, 0.99, 0.9, 0.2 };
	double		    p[200], q[200];
	struct sipkey k = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	unsigned char m[15];
	size_t	      i;

	for (i = 0; i < sizeof(m); i++)
		m[i] = (unsigned char)i;
	ok(siphash24(&k, m, 15) == 0xa129ca6149be45e5ULL,
	    "SipHash-2-4: the paper's test vector");
	ok(siphash24(&k, "", 0) == 0x726fdb47dd0e0e31ULL,
	    "SipHash-2-4: empty input (reference vectors[0])");

	ok(near(bayes_token_prob(5, 1, 10, 10), 0.831864013267),
	    "f(w): s=5 h=1 Ns=Nh=10 -> 0.831864013267");
	ok(near(bayes_token_prob(1, 0, 200, 400), 0.986543689320),
	    "f(w): a hapax in spam -> 0.986543689320");
	ok(near(bayes_token_prob(0, 3, 300, 300), 0.005326732673),
	    "f(w): three hams -> 0.005326732673");
	ok(bayes_token_prob(0, 0, 10, 10) < 0, "f(w): unseen token: none");
	ok(bayes_token_prob(1, 1, 0, 10) < 0, "f(w): no spam learned: none");
	ok(near(bayes_token_prob(7, 7, 50, 50), 7.01614 / 14.03),
	    "f(w): even counts -> 0.500081 (x pulls towards 0.538)");

	ok(near(bayes_chi2q(2.0, 1), 0.367879441171), "chi2q(2, 2 df)");
	ok(near(bayes_chi2q(4.0, 2), 0.406005849710), "chi2q(4, 4 df)");
	ok(near(bayes_chi2q(10.0, 5), 0.440493285065), "chi2q(10, 10 df)");
	ok(bayes_chi2q(0.0, 3) == 1.0, "chi2q(0) = 1");
	ok(bayes_chi2q(5000.0, 150) == 0.0, "chi2q underflows to 0, no NaN");

	ok(near(bayes_combine(100, 100, p2, 2), 0.869787519488),
	    "combine {0.9, 0.9}, Ns=Nh");
	ok(near(bayes_combine(200, 400, p3, 3), 0.805151048232),
	    "combine {0.99, 0.2, 0.85}, Ns=200 Nh=400");
	ok(near(bayes_combine(300, 500, p4, 4), 0.278973578677),
	    "combine {0.1, 0.2, 0.05, 0.9}");
	ok(near(bayes_combine(250, 250, p5, 5), 0.944896844785),
	    "combine {0.95, 0.97, 0.99, 0.9, 0.2}");
	for (i = 0; i < 150; i++) {
		p[i] = 0.01 + 0.98 * (double)(i % 17) / 16.0;
		q[i] = 1.0 - p[i];
	}
	ok(near(bayes_combine(300, 300, p, 150) +
		   bayes_combine(300, 300, q, 150),
	       1.0),
	    "combine is symmetric in spam/ham when Ns = Nh");
	for (i = 0; i < 150; i++)
		p[i] = 0.999;
	ok(bayes_combine(300, 300, p, 150) > 0.999, "150 strong spam tokens");
	for (i = 0; i < 150; i++)
		p[i] = 0.001;
	ok(bayes_combine(300, 300, p, 150) < 0.001, "150 strong ham tokens");
	ok(bayes_combine(300, 300, p, 0) == 0.5, "no tokens -> 0.5");
}

/* ------------------------------------------------------ the store */

static int
key_get(struct store_table *t, const char *k, struct store_rec *r)
{
	const void *kp = k;
	size_t	    kl = strlen(k);

	return store_get(t, &kp, &kl, 1, r, NULL, 0);
}

static void
op_init(struct store_op *op, struct store_table *t, const char *k,
    enum store_opkind kind)
{
	memset(op, 0, sizeof(*op));
	op->table = t;
	op->key = k;
	op->keylen = strlen(k);
	op->kind = kind;
}

static void
test_store_basic(void)
{
	struct store	   *st, *st2;
	struct store_table *a, *b;
	struct store_op	    op[4];
	struct store_rec    r[3];
	const void	   *keys[3] = { "x", "y", "z" };
	size_t		    lens[3] = { 1, 1, 1 };
	char		    p[300], loc[320], err[256];

	path(p, sizeof(p), "basic.lmdb");
	snprintf(loc, sizeof(loc), "lmdb:%s", p);
	st = store_open(loc, NULL, err, sizeof(err));
	ok(st != NULL, "store_open lmdb:PATH");
	st2 = store_open(p, NULL, err, sizeof(err));
	ok(st2 != NULL, "store_open the same file again by bare path");
	ok(access(p, F_OK) == 0, "data file created");
	snprintf(loc, sizeof(loc), "%s-lock", p);
	ok(access(loc, F_OK) == 0, "lock file PATH-lock created");
	ok(store_open("redis://127.0.0.1", NULL, err, sizeof(err)) == NULL &&
		strstr(err, "redis") != NULL,
	    "redis: is refused for now (%s)", err);
	ok(store_open("lmdb:/nonexistent/dir/x.lmdb", NULL, err, sizeof(err)) ==
		NULL,
	    "unwritable location refused (%s)", err);

	a = store_table(st, "alpha", err, sizeof(err));
	b = store_table(st2, "beta", err, sizeof(err));
	ok(a != NULL && b != NULL, "tables");
	ok(store_table(st, "alpha", err, sizeof(err)) == a,
	    "a table is opened once");
	ok(store_table(st, "", err, sizeof(err)) == NULL, "empty name refused");

	op_init(&op[0], a, "x", STORE_ADD);
	op[0].v[0] = 5;
	op[0].v[1] = -2;
	op_init(&op[1], b, "x", STORE_SET);
	op[1].v[3] = 42;
	is_int(store_apply(st, op, 2, err, sizeof(err)), 0,
	    "batch over two tables (and two handles of one file)");
	is_int(
	    store_get(a, keys, lens, 3, r, err, sizeof(err)), 0, "batch get");
	ok(r[0].found && r[0].v[0] == 5 && r[0].v[1] == -2 && r[0].v[2] == 0,
	    "added counters read back");
	ok(!r[1].found && r[1].v[0] == 0 && !r[2].found,
	    "absent keys read as zeros");
	key_get(b, "x", &r[0]);
	ok(r[0].found && r[0].v[3] == 42 && r[0].v[0] == 0,
	    "tables are separate namespaces");

	/* Guards */
	op_init(&op[0], a, "x", STORE_CHECK);
	op[0].v[0] = 4;
	op[0].v[1] = -2;
	op_init(&op[1], a, "y", STORE_ADD);
	op[1].v[0] = 1;
	is_int(store_apply(st, op, 2, err, sizeof(err)), STORE_CONFLICT,
	    "failed guard -> STORE_CONFLICT");
	key_get(a, "y", &r[0]);
	ok(!r[0].found, "... and nothing applied");
	op[0].v[0] = 5;
	is_int(store_apply(st, op, 2, err, sizeof(err)), 0, "guard holds");
	op_init(&op[0], a, "y", STORE_CHECK);
	op[0].flags = STORE_F_ABSENT;
	is_int(store_apply(st, op, 1, err, sizeof(err)), STORE_CONFLICT,
	    "absent guard on a present record");
	op_init(&op[0], a, "nope", STORE_CHECK);
	op[0].flags = STORE_F_ABSENT;
	is_int(store_apply(st, op, 1, err, sizeof(err)), 0,
	    "absent guard on an absent record");

	/* Clamp, drop-zero, max */
	op_init(&op[0], a, "y", STORE_ADD);
	op[0].flags = STORE_F_CLAMP | STORE_F_DROP_ZERO;
	op[0].maxmask = 1u << 2;
	op[0].v[0] = -10;
	op[0].v[2] = 1000;
	store_apply(st, op, 1, err, sizeof(err));
	key_get(a, "y", &r[0]);
	ok(!r[0].found, "clamped to 0 and dropped (max fields don't count)");
	op_init(&op[0], a, "t", STORE_ADD);
	op[0].maxmask = 1u << 2;
	op[0].v[0] = 1;
	op[0].v[2] = 1000;
	op_init(&op[1], a, "t", STORE_ADD);
	op[1].maxmask = 1u << 2;
	op[1].v[0] = 1;
	op[1].v[2] = 900;
	store_apply(st, op, 2, err, sizeof(err));
	key_get(a, "t", &r[0]);
	ok(r[0].v[0] == 2 && r[0].v[2] == 1000,
	    "two ops on one key in a batch; max keeps the larger stamp");
	op_init(&op[0], a, "big", STORE_ADD);
	op[0].v[0] = INT64_MAX;
	op_init(&op[1], a, "big", STORE_ADD);
	op[1].v[0] = 5;
	store_apply(st, op, 2, err, sizeof(err));
	key_get(a, "big", &r[0]);
	ok(r[0].v[0] == INT64_MAX, "adds saturate");
	op_init(&op[0], a, "t", STORE_DEL);
	op_init(&op[1], a, "never", STORE_DEL);
	is_int(store_apply(st, op, 2, err, sizeof(err)), 0,
	    "delete (absent is fine)");
	key_get(a, "t", &r[0]);
	ok(!r[0].found, "deleted");
	op_init(&op[0], a, "", STORE_ADD);
	ok(store_apply(st, op, 1, err, sizeof(err)) == -1, "empty key refused");
	is_int(store_count(a), 2, "store_count");
	store_close(st2);
	ok(key_get(a, "x", &r[0]) == 0 && r[0].v[0] == 5,
	    "closing one handle keeps the shared environment");
	store_close(st);
	st = store_open(p, NULL, err, sizeof(err));
	a = store_table(st, "alpha", err, sizeof(err));
	key_get(a, "x", &r[0]);
	ok(r[0].found && r[0].v[0] == 5, "data persists across reopen");
	store_close(st);
}

/* Concurrency: every batch adds 1 to each of NCTR counters. */
#define NCTR	 40
#define NTHREADS 4
#define NBATCH	 400

struct conc {
	const char  *loc;
	int	     id;
	int	     bad; /* reader: torn snapshots seen */
	int	     reads;
	volatile int stop;
};

static void
conc_keys(char keys[NCTR][16], const void **kp, size_t *kl)
{
	int i;

	for (i = 0; i < NCTR; i++) {
		snprintf(keys[i], 16, "ctr%02d", i);
		kp[i] = keys[i];
		kl[i] = strlen(keys[i]);
	}
}

/* Adds, and a distinct key per batch so the map has to grow. */
static int
conc_write(const char *loc, int id)
{
	struct store_opts   o = { .map_init = 128 * 1024, .map_max = 1 << 30 };
	struct store	   *st;
	struct store_table *t;
	struct store_op	    ops[NCTR + 1];
	char		    keys[NCTR][16], uniq[STORE_KEY_MAX], err[256];
	const void	   *kp[NCTR];
	size_t		    kl[NCTR];
	int		    b, i, fails = 0;

	if ((st = store_open(loc, &o, err, sizeof(err))) == NULL ||
	    (t = store_table(st, "conc", err, sizeof(err))) == NULL)
		return -1;
	conc_keys(keys, kp, kl);
	for (b = 0; b < NBATCH; b++) {
		memset(ops, 0, sizeof(ops));
		for (i = 0; i < NCTR; i++) {
			ops[i].table = t;
			ops[i].key = kp[i];
			ops[i].keylen = kl[i];
			ops[i].kind = STORE_ADD;
			ops[i].v[0] = 1;
			ops[i].v[1] = id;
		}
		memset(uniq, 'u', sizeof(uniq));
		snprintf(uniq, 32, "uniq-%d-%d", id, b);
		ops[NCTR].table = t;
		ops[NCTR].key = uniq;
		ops[NCTR].keylen = sizeof(uniq);
		ops[NCTR].kind = STORE_SET;
		ops[NCTR].v[0] = 1;
		if (store_apply(st, ops, NCTR + 1, err, sizeof(err)) != 0)
			fails++;
	}
	store_close(st);
	return fails;
}

static void *
writer_thread(void *arg)
{
	struct conc *c = arg;

	c->bad = conc_write(c->loc, c->id);
	return NULL;
}

static void *
reader_thread(void *arg)
{
	struct conc	   *c = arg;
	struct store	   *st;
	struct store_table *t;
	struct store_rec    r[NCTR];
	char		    keys[NCTR][16], err[256];
	const void	   *kp[NCTR];
	size_t		    kl[NCTR];
	int		    i;

	if ((st = store_open(c->loc, NULL, err, sizeof(err))) == NULL ||
	    (t = store_table(st, "conc", err, sizeof(err))) == NULL) {
		c->bad = -1;
		return NULL;
	}
	conc_keys(keys, kp, kl);
	while (!c->stop) {
		if (store_get(t, kp, kl, NCTR, r, err, sizeof(err)) != 0) {
			c->bad++;
			continue;
		}
		c->reads++;
		for (i = 1; i < NCTR; i++)
			if (r[i].v[0] != r[0].v[0] || r[i].v[1] != r[0].v[1])
				c->bad++;
	}
	store_close(st);
	return NULL;
}

static void
test_store_concurrency(void)
{
	struct conc	    w[NTHREADS], rd;
	pthread_t	    tw[NTHREADS], tr;
	struct store	   *st;
	struct store_table *t;
	struct store_rec    r[NCTR];
	char		    keys[NCTR][16], p[300], err[256];
	const void	   *kp[NCTR];
	size_t		    kl[NCTR];
	pid_t		    pid;
	int		    i, status, badw = 0, torn = 0;
	long long	    sumid;

	path(p, sizeof(p), "conc.lmdb");
	/* Create the file (tables) before forking; the child opens its own
	   environment. */
	st = store_open(p, NULL, err, sizeof(err));
	t = store_table(st, "conc", err, sizeof(err));
	store_close(st);
	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(conc_write(p, 100) == 0 ? 0 : 1);
	memset(&rd, 0, sizeof(rd));
	rd.loc = p;
	pthread_create(&tr, NULL, reader_thread, &rd);
	for (i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].loc = p;
		w[i].id = i + 1;
		pthread_create(&tw[i], NULL, writer_thread, &w[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tw[i], NULL);
		badw += w[i].bad != 0;
	}
	waitpid(pid, &status, 0);
	rd.stop = 1;
	pthread_join(tr, NULL);
	is_int(badw, 0, "%d writer threads: every batch applied", NTHREADS);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "forked writer process: every batch applied");
	torn = rd.bad;
	ok(rd.reads > 0 && torn == 0,
	    "reader during writes: %d snapshots, every batch seen whole "
	    "(%d torn)",
	    rd.reads, torn);

	st = store_open(p, NULL, err, sizeof(err));
	t = store_table(st, "conc", err, sizeof(err));
	conc_keys(keys, kp, kl);
	store_get(t, kp, kl, NCTR, r, err, sizeof(err));
	sumid = 0;
	for (i = 1; i <= NTHREADS; i++)
		sumid += (long long)i * NBATCH;
	sumid += 100LL * NBATCH;
	for (i = 0, status = 0; i < NCTR; i++)
		if (r[i].v[0] != (NTHREADS + 1) * NBATCH || r[i].v[1] != sumid)
			status++;
	is_int(status, 0, "totals exact afterwards (%lld adds per counter)",
	    (long long)r[0].v[0]);
	is_int(store_count(t), NCTR + (NTHREADS + 1) * NBATCH,
	    "every distinct key stored (the map grew in both processes)");
	store_close(st);
}

static void
test_store_growth(void)
{
	struct store_opts   o = { .map_init = 64 * 1024, .map_max = 4 << 20 };
	struct store	   *st;
	struct store_table *t;
	struct store_op	    op;
	struct store_rec    r;
	char		    p[300], err[256], key[200];
	const void	   *kp = key;
	size_t		    kl = sizeof(key);
	int		    i, rc = 0, full = -1;

	path(p, sizeof(p), "grow.lmdb");
	st = store_open(p, &o, err, sizeof(err));
	t = store_table(st, "g", err, sizeof(err));
	memset(key, 'k', sizeof(key));
	for (i = 0; i < 100000; i++) {
		snprintf(key, 16, "%08d", i);
		memset(&op, 0, sizeof(op));
		op.table = t;
		op.key = key;
		op.keylen = sizeof(key);
		op.kind = STORE_SET;
		op.v[0] = i + 1;
		if ((rc = store_apply(st, &op, 1, err, sizeof(err))) != 0) {
			full = i;
			break;
		}
	}
	ok(full > 1000, "map grew from 64 KiB: %d records stored", full);
	ok(rc == -1 && strstr(err, "MDB_MAP_FULL") != NULL,
	    "at map_max the batch fails (%s)", err);
	snprintf(key, 16, "%08d", full - 1);
	ok(store_get(t, &kp, &kl, 1, &r, err, sizeof(err)) == 0 && r.found &&
		r.v[0] == full,
	    "a full store still reads");
	memset(&op, 0, sizeof(op));
	op.table = t;
	op.key = key;
	op.keylen = sizeof(key);
	op.kind = STORE_DEL;
	ok(store_apply(st, &op, 1, err, sizeof(err)) == 0,
	    "... and deletes (%s)", err);
	store_close(st);
}

/* ------------------------------------------------------ the classifier */

static const char *const spam_words[] = { "viagra", "cheap", "pills", "winner",
	"lottery", "unsubscribe", "offer", "limited", "click", "money",
	"casino", "mortgage", "discount", "guaranteed", "free" };
static const char *const ham_words[] = { "meeting", "agenda", "project",
	"patch", "review", "kernel", "lunch", "tomorrow", "report", "thanks",
	"budget", "schedule", "draft", "release", "build" };

static char *
gen_body(const char *const *words, size_t nw, unsigned seed, size_t n)
{
	char  *b = xmalloc(n * 16 + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		o += (size_t)sprintf(b + o, "%s ", words[(seed >> 16) % nw]);
	}
	b[o] = '\0';
	return b;
}

static int
learn_n(struct bayes *b, int cls, int n, int base)
{
	struct view v;
	char	    mid[64], *body;
	const char *hdrs[] = { "Message-ID", mid, NULL };
	int	    i, bad = 0;

	for (i = 0; i < n; i++) {
		snprintf(mid, sizeof(mid), "<%d.%d@test>", cls, base + i);
		body = gen_body(cls == BAYES_SPAM ? spam_words : ham_words, 15,
		    (unsigned)(base + i) * 7u + (unsigned)cls, 30);
		mkview(&v, hdrs, body, NULL);
		if (bayes_learn(b, &v.mv, cls, NULL, 0) != BAYES_LEARNED)
			bad++;
		free(body);
	}
	return bad;
}

static void
test_classifier(void)
{
	struct bayes_opts   o = { .min_spam = 20, .min_ham = 20 };
	struct store	   *st;
	struct bayes	   *b;
	struct bayes_result res;
	struct view	    v;
	char		    p[300], err[256], *body;
	uint64_t	    ns, nh, nt, nt0;
	const char	   *h1[] = { "Message-ID", "<one@test>", NULL };
	const char	   *h2[] = { "From", "x@y.example", NULL };

	path(p, sizeof(p), "bayes.lmdb");
	st = store_open(p, NULL, err, sizeof(err));
	b = bayes_open(st, &o, err, sizeof(err));
	ok(b != NULL, "bayes_open (%s)", b ? "" : err);

	mkview(&v, h1, "buy cheap pills now", NULL);
	is_int(bayes_learn(b, &v.mv, BAYES_SPAM, err, sizeof(err)),
	    BAYES_LEARNED, "learn spam");
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 1 && nh == 0 && nt > 0, "1 spam, 0 ham, %llu tokens",
	    (unsigned long long)nt);
	nt0 = nt;
	is_int(bayes_learn(b, &v.mv, BAYES_SPAM, err, sizeof(err)), BAYES_KNOWN,
	    "learning it again: already known");
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 1 && nh == 0 && nt == nt0, "... counts unchanged");
	is_int(bayes_learn(b, &v.mv, BAYES_HAM, err, sizeof(err)),
	    BAYES_RELEARNED, "learning it as ham: relearned");
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 0 && nh == 1 && nt == nt0, "... moved to ham (0/1)");
	is_int(bayes_forget(b, &v.mv, err, sizeof(err)), BAYES_FORGOTTEN,
	    "forget");
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 0 && nh == 0 && nt == 0, "... all counts and tokens gone");
	is_int(bayes_forget(b, &v.mv, err, sizeof(err)), BAYES_UNKNOWN,
	    "forgetting again: unknown");

	/* No Message-ID: identity from the content. */
	mkview(&v, h2, "some text here", NULL);
	is_int(bayes_learn(b, &v.mv, BAYES_HAM, err, sizeof(err)),
	    BAYES_LEARNED, "learn without Message-ID");
	is_int(bayes_learn(b, &v.mv, BAYES_HAM, err, sizeof(err)), BAYES_KNOWN,
	    "... same content: known");
	mkview(&v, h2, "other text here", NULL);
	is_int(bayes_learn(b, &v.mv, BAYES_HAM, err, sizeof(err)),
	    BAYES_LEARNED, "... other content: a new message");
	bayes_forget(b, &v.mv, err, sizeof(err));
	mkview(&v, h2, "some text here", NULL);
	bayes_forget(b, &v.mv, err, sizeof(err));

	/* Minimum training size. */
	is_int(learn_n(b, BAYES_SPAM, 19, 0), 0, "learn 19 spam");
	is_int(learn_n(b, BAYES_HAM, 25, 0), 0, "learn 25 ham");
	body = gen_body(spam_words, 15, 999, 30);
	mkview(&v, NULL, body, NULL);
	bayes_classify(b, &v.mv, &res, err, sizeof(err));
	ok(!res.voted && res.prob == 0.5 && res.nspam == 19,
	    "19 < 20 spam learned: no vote");
	is_int(learn_n(b, BAYES_SPAM, 10, 100), 0, "learn 10 more spam");
	is_int(bayes_classify(b, &v.mv, &res, err, sizeof(err)), 0, "classify");
	ok(res.voted && res.prob > 0.99,
	    "spam-like text: P(spam) = %.4f (%u tokens, %u used)", res.prob,
	    res.ntokens, res.nused);
	free(body);
	body = gen_body(ham_words, 15, 4242, 30);
	mkview(&v, NULL, body, NULL);
	bayes_classify(b, &v.mv, &res, err, sizeof(err));
	ok(res.voted && res.prob < 0.01, "ham-like text: P(spam) = %.4f",
	    res.prob);
	free(body);
	mkview(&v, NULL, "zzqx unrelated wording", NULL);
	bayes_classify(b, &v.mv, &res, err, sizeof(err));
	ok(!res.voted && res.prob == 0.5 && res.nknown == 0,
	    "no known token: no vote");
	bayes_free(b);

	/* A second classifier in the same store is independent. */
	o.prefix = "bob";
	b = bayes_open(st, &o, err, sizeof(err));
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 0 && nh == 0 && nt == 0, "another prefix: its own tables");
	bayes_free(b);
	o.prefix = NULL;
	b = bayes_open(st, &o, err, sizeof(err));
	bayes_stats(b, &ns, &nh, &nt, err, sizeof(err));
	ok(ns == 29 && nh == 25, "reopened: 29 spam, 25 ham");
	bayes_free(b);
	store_close(st);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_bayes.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_arithmetic();
	test_tokenizer();
	test_tokenizer_invisible();
	test_tokenizer_bounds();
	test_store_basic();
	test_store_growth();
	test_store_concurrency();
	test_classifier();
	rmtree();
	return tap_done();
}
