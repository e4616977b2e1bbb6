/*
 * fuzz_sa_freemail.c - libFuzzer target for the FreeMail evals
 * (filters/spam/sa_freemail.c) on hostile messages: the input is a whole
 * message, decoded by msgview_new() (its From, Reply-To, body text and
 * links are what the evals read), then scored by a fixed small ruleset of
 * check_freemail_from/replyto rules. Crashes, leaks (ASan) and undefined
 * behaviour are the findings; sa_eval() must succeed.
 *
 *	see tests/fuzz/run.sh (it adds filters/msgview*.c and the rule
 *	engine)
 *
 * Single-threaded; the ruleset and the scratch are built once and reused
 * as in moatd.
 */
#include <string.h>

#include "fuzz.h"
#include "msgview.h"
#include "sa_rules.h"

static const char rules[] =
    "freemail_domains gmail.com yahoo.com *.yahoo.co.uk mail.ru\n"
    "header FM_FROM eval:check_freemail_from()\n"
    "header FM_RT eval:check_freemail_replyto('replyto')\n"
    "header FM_R eval:check_freemail_replyto('reply')\n"
    "header FM_DEF eval:check_freemail_replyto()\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sa_ruleset *rs;
	static struct sa_scratch *sc;
	struct sa_load_opts	  o = { 0 };
	struct sa_result	  res;
	struct sa_facts		  f;
	struct msgview		 *mv;
	char			  err[256];

	if (rs == NULL) {
		msgview_global_init();
		o.scoreset = 2;
		o.no_prefilter = 1;
		rs = sa_ruleset_load_string(
		    rules, strlen(rules), "fuzz", &o, 1, err, sizeof(err));
		CHECK(rs != NULL);
		sc = sa_scratch_new();
	}
	mv = msgview_new((const char *)data, size, NULL);
	CHECK(mv != NULL);
	memset(&f, 0, sizeof(f));
	f.mail_from = "a@gmail.com";
	f.client_ip = "192.0.2.1";
	CHECK(sa_eval(rs, sc, mv, (const char *)data, size, &f, NULL, 0,
		  &res) == 0);
	msgview_free(mv);
	return 0;
}
