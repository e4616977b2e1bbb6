/*
 * fuzz_sarules.c - libFuzzer target for the SpamAssassin-format rule
 * loader (filters/spam/sa_conf.c and what it calls: regex parsing and
 * compiling, ReplaceTags, meta compiling and ordering, eval argument
 * parsing, DNS list data). The input is rule text; the first byte picks
 * strict or lenient loading and the score set. A ruleset that loads is
 * then run over a small fixed message so metas, evals and the texts are
 * exercised too. Crashes, leaks (ASan) and undefined behaviour are the
 * findings; a strict load that fails must leave a message.
 *
 * Built without Hyperscan (tests/fuzz/run.sh does not define
 * HAVE_HYPERSCAN), so PCRE2 runs every rule. Single-threaded; no state
 * survives between inputs except the scratch, which is reused as in
 * moatd.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sa_rules.h"
#include "fuzz.h"

static const struct mv_header hdrs[] = {
	{ "From", "\"A\" <a@example.com>", "\"A\" <a@example.com>" },
	{ "To", "b@example.org, c@example.net",
	    "b@example.org, c@example.net" },
	{ "Subject", "=?utf-8?q?hi?=", "hi" },
	{ "Received", "from x by y", "from x by y" },
	{ "Content-Type", "text/html", "text/html" },
};

static const struct mv_part parts[] = {
	{ 0, 0, MV_PART_TEXT | MV_PART_HTML, "text/html", "utf-8", NULL, NULL,
	    hdrs, 5, 40, 20, "hello world\n\nbuy now", 20,
	    "<p>hello world</p><p>buy now</p>", 32 },
};

static const struct mv_uri uris[] = {
	{ "http://example.com/a", "example.com", "example.com", NULL,
	    MV_URI_HTML },
	{ "www.example.net", "www.example.net", "example.net", NULL,
	    MV_URI_TEXT },
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sa_scratch *sc;
	struct sa_load_opts	  o = { 0 };
	struct sa_ruleset	 *rs;
	struct sa_result	  res;
	struct msgview		  mv;
	struct sa_facts		  f;
	char			  err[256];
	const char		 *ext[] = { "RCVD_IN_X", "A" };
	const char		 *raw = "Subject: hi\n\nhello world\n";
	int			  strict;

	if (size == 0)
		return 0;
	strict = data[0] & 1;
	o.scoreset = (data[0] >> 1) & 3;
	o.no_prefilter = 1;
	rs = sa_ruleset_load_string((const char *)data + 1, size - 1, "fuzz",
	    &o, strict, err, sizeof(err));
	if (rs == NULL) {
		CHECK(err[0] != '\0');
		return 0;
	}
	if (sc == NULL)
		sc = sa_scratch_new();
	memset(&mv, 0, sizeof(mv));
	mv.headers = hdrs;
	mv.nheaders = 5;
	mv.parts = parts;
	mv.nparts = 1;
	mv.uris = uris;
	mv.nuris = 2;
	mv.html.parts = 1;
	mv.html.tags = 4;
	mv.html.raw = 32;
	mv.html.text = 20;
	memset(&f, 0, sizeof(f));
	f.mail_from = "a@example.com";
	f.client_ip = "192.0.2.1";
	f.has_bayes = 1;
	f.bayes = 0.5;
	CHECK(sa_eval(rs, sc, &mv, raw, strlen(raw), &f, ext, 2, &res) == 0);
	CHECK(res.nhits == 0 || res.hits != NULL);
	sa_ruleset_free(rs);
	return 0;
}
