/*
 * test_sarules.c - unit tests for the SpamAssassin-format rule loader
 * and engine (filters/spam/): every supported line type, regex errors
 * with file:line, conditionals, ReplaceTags, meta evaluation (arithmetic,
 * undefined rules, cycles), score sets, tflags multiple/maxhits, header
 * modifiers, the text each rule type sees, evals from facts, external
 * hits, DNS list data, lists, directory order, and Debian's full ruleset
 * when /usr/share/spamassassin exists (its stats as TAP diagnostics).
 *
 * Views are built by hand (tests/unit/sa_testview.h). Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sa_rules.h"
#include "sa_testview.h"
#include "tap.h"

#define GTUBE                                                                  \
	"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
#define GTUBE_RE                                                               \
	"^XJS\\*C4JDBQADN1\\.NSBN3\\*2IDNEN\\*GTUBE-STANDARD-ANTI-UBE-"        \
	"TEST-EMAIL\\*C\\.34X"

static char errbuf[1024];
static int  no_prefilter; /* second pass: lazy rules, PCRE2 only */

static struct sa_ruleset *
load(const char *text, int strict)
{
	struct sa_load_opts o = { .scoreset = 2 };

	o.no_prefilter = no_prefilter;
	return sa_ruleset_load_string(
	    text, strlen(text), "t.cf", &o, strict, errbuf, sizeof(errbuf));
}

static struct sa_ruleset *
load_set(const char *text, int set)
{
	struct sa_load_opts o = { .scoreset = set };

	return sa_ruleset_load_string(
	    text, strlen(text), "t.cf", &o, 1, errbuf, sizeof(errbuf));
}

static struct sa_scratch *sc;
static struct sa_result	  res;

static void
run(const struct sa_ruleset *rs, struct tv *t, const char *raw,
    const struct sa_facts *f, const char *const *ext, size_t next)
{
	sa_eval(rs, sc, &t->mv, raw, raw ? strlen(raw) : 0, f, ext, next, &res);
}

/* hit count of a rule in the last result, 0 if it did not fire */
static unsigned
hit(const char *name)
{
	size_t i;

	for (i = 0; i < res.nhits; i++)
		if (strcmp(res.hits[i].name, name) == 0)
			return res.hits[i].count;
	return 0;
}

static void
basic_view(struct tv *t)
{
	tv_init(t);
	tv_header(t, "From", "\"Jane Doe\" <jane@example.com>");
	tv_header(t, "To", "bob@example.org");
	tv_header(t, "Subject", "hello there");
	tv_part(t, "text/plain", "Some text.\nMore text here.\n", NULL, 1);
}

static void
test_line_types(void)
{
	struct sa_ruleset     *rs;
	const struct sa_stats *st;
	struct tv	       t;
	const char	      *d;
	double		       s;

	rs = load("# a comment\n"
		  "header   H_SUBJ  Subject =~ /hello/i\n"
		  "describe H_SUBJ  Subject says hello\n"
		  "score    H_SUBJ  1.5\n"
		  "lang fr describe H_SUBJ Bonjour\n"
		  "mimeheader M_CT Content-Type =~ /text\\/plain/\n"
		  "body     B_TEXT  /more text/i\n"
		  "rawbody  R_TEXT  m{Some\\s+text}\n"
		  "full     F_FULL  m!^From: .*Jane!m\n"
		  "uri      U_EX    /example\\.net/\n"
		  "meta     META_1  H_SUBJ && B_TEXT\n"
		  "score    META_1  0.5 1 2.5 3\n"
		  "tflags   META_1  publish nice\n"
		  "priority META_1  -10\n"
		  "some_unknown_setting 1\n"
		  "test H_SUBJ ok Subject: hello\n"
		  "body __SUB /text/\n",
	    1);
	ok(rs != NULL, "rule text with every line type loads (%s)", errbuf);
	if (rs == NULL)
		return;
	st = sa_ruleset_stats(rs);
	is_int(st->rules[SA_HEADER], 1, "one header rule");
	is_int(st->rules[SA_MIMEHEADER], 1, "one mimeheader rule");
	is_int(st->rules[SA_BODY], 2, "two body rules");
	is_int(st->rules[SA_RAWBODY], 1, "one rawbody rule");
	is_int(st->rules[SA_FULL], 1, "one full rule");
	is_int(st->rules[SA_URI], 1, "one uri rule");
	is_int(st->rules[SA_META], 1, "one meta rule");
	is_int(st->unknown_directives, 1, "unknown directive counted");
	is_int(st->errors, 0, "no errors");
	ok(sa_rule_info(rs, "H_SUBJ", &d, &s) == 0, "rule info");
	is_str(d, "Subject says hello", "English describe kept, lang ignored");
	ok(s == 1.5, "single score applies to set 2");
	ok(sa_rule_info(rs, "META_1", NULL, &s) == 0 && s == 2.5,
	    "four scores: set 2 chosen");

	basic_view(&t);
	tv_uri(&t, "http://www.example.net/x", "www.example.net", MV_URI_TEXT);
	run(rs, &t, "From: \"Jane Doe\" <jane@example.com>\n\nSome text.\n",
	    NULL, NULL, 0);
	ok(hit("H_SUBJ") == 1, "header rule fires");
	ok(hit("M_CT") == 0, "mimeheader: no Content-Type header, no hit");
	ok(hit("B_TEXT") == 1, "body rule fires");
	ok(hit("R_TEXT") == 1, "rawbody rule fires");
	ok(hit("F_FULL") == 1, "full rule fires (m!!m)");
	ok(hit("U_EX") == 1, "uri rule fires");
	ok(hit("META_1") == 1, "meta fires");
	ok(hit("__SUB") == 0, "__ rule never reported");
	ok(res.score == 1.5 + 1 + 1 + 1 + 1 + 2.5, "total score %g", res.score);
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_regex_errors(void)
{
	struct sa_ruleset *rs;

	rs = load("body OK1 /fine/\n\nbody BAD1 /unclosed(/\n", 1);
	ok(rs == NULL, "strict: a regex that does not compile refuses");
	ok(strncmp(errbuf, "t.cf:3: BAD1: regex", 19) == 0,
	    "error names file:line and rule: %s", errbuf);
	ok(strstr(errbuf, "offset") != NULL, "error has PCRE2's offset");

	rs = load("body OK1 /fine/\nbody BAD1 /a{2,1}/\n", 0);
	ok(rs != NULL, "not strict: the ruleset loads without the rule");
	if (rs != NULL) {
		is_int(sa_ruleset_stats(rs)->errors, 1, "one error counted");
		ok(sa_rule_info(rs, "BAD1", NULL, NULL) < 0, "BAD1 dropped");
		ok(sa_rule_info(rs, "OK1", NULL, NULL) == 0, "OK1 kept");
		sa_ruleset_free(rs);
	}
	rs = load("body X /abc/q\n", 1);
	ok(rs == NULL && strstr(errbuf, "modifier") != NULL,
	    "unknown modifier refused: %s", errbuf);
	rs = load("header X Subject ~= /abc/\n", 1);
	ok(rs == NULL && strstr(errbuf, "t.cf:1:") != NULL,
	    "bad header operator refused: %s", errbuf);
	rs = load("body X abc\n", 1);
	ok(rs == NULL, "regex without delimiters refused");
	rs = load("score X one\n", 1);
	ok(rs == NULL, "bad score refused");
	rs = load("body 9X /a/\n", 1);
	ok(rs == NULL, "invalid rule name refused");
	rs = load("meta M (A && \n", 1);
	ok(rs == NULL && strstr(errbuf, "meta") != NULL,
	    "unbalanced meta refused: %s", errbuf);
	rs =
	    load("ifplugin Mail::SpamAssassin::Plugin::Bayes\nbody A /a/\n", 1);
	ok(rs == NULL && strstr(errbuf, "endif") != NULL,
	    "missing endif refused");
	rs = load("endif\n", 1);
	ok(rs == NULL, "endif without if refused");
	rs = load("body A m{a{1,2}b}i\nbody B m(x(y)z)\nbody C m<a>\n"
		  "body D m!a\\!b!\nbody E /a\\#b/ # comment\n",
	    1);
	ok(rs != NULL, "bracket and other delimiters, nesting (%s)", errbuf);
	sa_ruleset_free(rs);
}

static void
test_conditionals(void)
{
	struct sa_ruleset     *rs;
	const struct sa_stats *st;

	rs = load("ifplugin Mail::SpamAssassin::Plugin::Bayes\n"
		  "body IN_BAYES /a/\n"
		  "endif\n"
		  "ifplugin Mail::SpamAssassin::Plugin::Razor2\n"
		  "body IN_RAZOR /a/\n"
		  "endif\n"
		  "if !plugin(Mail::SpamAssassin::Plugin::Razor2)\n"
		  "body NO_RAZOR /a/\n"
		  "else\n"
		  "body ELSE_RAZOR /a/\n"
		  "endif\n"
		  "if (version >= 3.004000)\n"
		  "body V34 /a/\n"
		  "if (version >= 5.000000)\n"
		  "body V5 /a/\n"
		  "endif\n"
		  "endif\n"
		  "if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\n"
		  "body CAN_YES /a/\n"
		  "endif\n"
		  "if can(Mail::SpamAssassin::Conf::feature_capture_rules)\n"
		  "body CAN_CAPTURE /a/\n"
		  "endif\n"
		  "if !((version >= 3.004000))\n"
		  "body OLD /a/\n"
		  "endif\n"
		  "if (version >= 3.004000) && can(Mail::SpamAssassin::Conf::"
		  "feature_dns_block_rule)\n"
		  "body AND_YES /a/\n"
		  "endif\n"
		  "ifplugin Mail::SpamAssassin::Plugin::Pyzor\n"
		  "if (version >= 3.0)\n"
		  "body NESTED_OFF /a/\n"
		  "else\n"
		  "body NESTED_ELSE_OFF /a/\n"
		  "endif\n"
		  "endif\n"
		  "require_version 4.000001\n",
	    1);
	ok(rs != NULL, "conditionals load (%s)", errbuf);
	if (rs == NULL)
		return;
	ok(sa_rule_info(rs, "IN_BAYES", NULL, NULL) == 0, "ifplugin Bayes on");
	ok(sa_rule_info(rs, "IN_RAZOR", NULL, NULL) < 0, "ifplugin Razor2 off");
	ok(sa_rule_info(rs, "NO_RAZOR", NULL, NULL) == 0, "if !plugin() on");
	ok(sa_rule_info(rs, "ELSE_RAZOR", NULL, NULL) < 0, "else branch off");
	ok(sa_rule_info(rs, "V34", NULL, NULL) == 0, "version >= 3.4 on");
	ok(sa_rule_info(rs, "V5", NULL, NULL) < 0, "version >= 5 off");
	ok(sa_rule_info(rs, "CAN_YES", NULL, NULL) == 0, "can(feature) on");
	ok(sa_rule_info(rs, "CAN_CAPTURE", NULL, NULL) < 0,
	    "can(feature_capture_rules) off (not implemented)");
	ok(sa_rule_info(rs, "OLD", NULL, NULL) < 0, "!((version)) off");
	ok(sa_rule_info(rs, "AND_YES", NULL, NULL) == 0, "&& in if");
	ok(sa_rule_info(rs, "NESTED_OFF", NULL, NULL) < 0 &&
		sa_rule_info(rs, "NESTED_ELSE_OFF", NULL, NULL) < 0,
	    "else inside a false block stays off");
	st = sa_ruleset_stats(rs);
	is_int(st->plugin_disabled, 7, "rules in false blocks counted");
	sa_ruleset_free(rs);
	rs = load("require_version 9.0\n", 1);
	ok(rs == NULL, "require_version newer than 4.0.1 refused");
}

static void
test_replace_tags(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	char		  *big, *p;
	size_t		   i;

	rs = load("replace_tag  A   [a4@]\n"
		  "replace_tag  V   (?:<A>|v)\n"
		  "replace_inter W1 \\W?\n"
		  "replace_post P2  {1,2}\n"
		  "replace_pre  PR  x?\n"
		  "body  TAG1  /<inter W1><V><A>/i\n"
		  "body  TAG2  /<post P2>b<A>c/\n"
		  "body  TAG3  /<pre PR>q<A>/\n"
		  "body  NOTAG /<A>/\n"
		  "replace_rules TAG1 TAG2 TAG3\n",
	    1);
	ok(rs != NULL, "replace_tag rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "");
	tv_part(
	    &t, "text/plain", "z 4-@ zz\nb44c\nxq@\nliteral <A>\n", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("TAG1") == 1, "tags replaced, nested tag, inter between");
	ok(hit("TAG2") == 1, "post appended to the tag");
	ok(hit("TAG3") == 1, "pre prepended to the tag");
	ok(hit("NOTAG") == 1, "rules not in replace_rules keep <A>");
	tv_free(&t);
	sa_ruleset_free(rs);

	/* a tag expansion larger than PCRE2's compiled-size limit */
	big = malloc(200000);
	p = big;
	p += sprintf(p, "replace_tag B (?:");
	for (i = 0; i < 3000; i++)
		p += sprintf(p, "%sw%03zu", i ? "|" : "", i);
	p += sprintf(p,
	    ")\nbody HUGE /<B>\\s<B>\\s<B>\\s<B>\\s<B>\\s<B>\\s<B>"
	    "\\s<B>\\s<B>\\s<B>/\nreplace_rules HUGE\n");
	rs = load(big, 1);
	ok(rs != NULL, "a huge tag expansion compiles (%s)", errbuf);
	if (rs != NULL) {
		ok(sa_ruleset_stats(rs)->regex_translated == 1,
		    "through DEFINE subroutines");
		tv_init(&t);
		tv_header(&t, "Subject", "");
		tv_part(&t, "text/plain",
		    "w001 w002 w003 w004 w005 w006 w007 w008 w009 w999\n", NULL,
		    1);
		run(rs, &t, NULL, NULL, NULL, 0);
		ok(hit("HUGE") == 1, "and still matches");
		tv_free(&t);
		sa_ruleset_free(rs);
	}
	free(big);
}

static void
test_meta(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;

	rs = load("body __A /alpha/\n"
		  "body __B /beta/\n"
		  "body __C /gamma/\n"
		  "body __M /many/\ntflags __M multiple\n"
		  "meta SUM2 (__A + __B + __C) >= 2\n"
		  "meta SUM3 (__A + __B + __C) >= 3\n"
		  "meta NOTU !__UNDEFINED_RULE\n"
		  "meta UND __UNDEFINED_RULE || __ALSO_UNDEFINED\n"
		  "meta ARITH __M * 2 - 1 == 5\n"
		  "meta DIV __M / 0\n"
		  "meta CMP __M > 2 && __M <= 3 && __M != 4 && !(__M < 3)\n"
		  "meta CHAIN SUM2 && !SUM3\n"
		  "meta PREC __A || __B && __C\n"
		  "meta NEG -__A + 2 == 1\n",
	    1);
	ok(rs != NULL, "metas load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "alpha");
	tv_part(&t, "text/plain", "beta many many many\n", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("SUM2") == 1, "arithmetic meta >= 2");
	ok(hit("SUM3") == 0, "arithmetic meta >= 3 not");
	ok(hit("NOTU") == 1, "undefined rule counts as 0");
	ok(hit("UND") == 0, "undefined || undefined is false");
	ok(hit("ARITH") == 1, "multiple hit count in arithmetic (3*2-1)");
	ok(hit("DIV") == 0, "division by zero is 0");
	ok(hit("CMP") == 1, "comparisons");
	ok(hit("CHAIN") == 1, "meta over metas in order");
	ok(hit("PREC") == 1, "&& binds tighter than ||");
	ok(hit("NEG") == 1, "unary minus");
	tv_free(&t);
	sa_ruleset_free(rs);

	rs = load("meta M1 M2 && 1\nmeta M2 M3\nmeta M3 M1 || M4\n"
		  "meta M4 1\n",
	    1);
	ok(rs == NULL && strstr(errbuf, "cycle") != NULL,
	    "strict: dependency cycle refused: %s", errbuf);
	rs = load("meta M1 M2\nmeta M2 M1\nmeta OKM M4\nmeta M4 1\n"
		  "meta DEP M1 || 1\n",
	    0);
	ok(rs != NULL, "not strict: loads without the cycle");
	if (rs != NULL) {
		ok(sa_rule_info(rs, "M1", NULL, NULL) < 0 &&
			sa_rule_info(rs, "M2", NULL, NULL) < 0,
		    "metas in the cycle dropped");
		tv_init(&t);
		run(rs, &t, NULL, NULL, NULL, 0);
		ok(hit("OKM") == 1 && hit("DEP") == 1, "other metas still run");
		tv_free(&t);
		sa_ruleset_free(rs);
	}
	rs = load("meta SELF SELF\n", 1);
	ok(rs == NULL, "self-reference is a cycle");
}

static void
test_scores(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	double		   s;
	const char	  *rules = "body R4 /x/\nscore R4 1 2 3 4\n"
				   "body R1 /x/\n"
				   "body T_TEST /x/\n"
				   "body NICE /x/\ntflags NICE nice\n"
				   "body ZERO /x/\nscore ZERO 0\n"
				   "body __Z /x/\nscore __Z 0\n"
				   "meta USESZ __Z\nscore USESZ 1\n"
				   "body __ZM /x/\nscore __ZM 0\n"
				   "body REL /x/\nscore REL 1\nscore REL (2)\n";

	rs = load_set(rules, 0);
	ok(rs != NULL && sa_rule_info(rs, "R4", NULL, &s) == 0 && s == 1,
	    "score set 0");
	sa_ruleset_free(rs);
	rs = load_set(rules, 3);
	ok(rs != NULL && sa_rule_info(rs, "R4", NULL, &s) == 0 && s == 4,
	    "score set 3");
	sa_ruleset_free(rs);
	rs = load_set(rules, -1);
	ok(rs != NULL && sa_rule_info(rs, "R4", NULL, &s) == 0 && s == 3,
	    "default score set is 2");
	if (rs == NULL)
		return;
	ok(sa_rule_info(rs, "R1", NULL, &s) == 0 && s == 1.0,
	    "no score line: 1.0");
	ok(sa_rule_info(rs, "T_TEST", NULL, &s) == 0 && s == 0.01,
	    "T_ rule: 0.01");
	ok(sa_rule_info(rs, "NICE", NULL, &s) == 0 && s == -1.0,
	    "nice rule: -1.0");
	ok(sa_rule_info(rs, "REL", NULL, &s) == 0 && s == 3.0,
	    "(n) adds to the score");
	tv_init(&t);
	tv_header(&t, "Subject", "x");
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("ZERO") == 0, "score 0: not reported");
	ok(hit("USESZ") == 1, "a meta still sees its zero-scored sub-rule");
	ok(res.score == 3 + 1 + 0.01 - 1 + 1 + 3, "total %g", res.score);
	ok(sa_ruleset_stats(rs)->zero_score == 1, "zero-scored counted");
	tv_free(&t);
	sa_ruleset_free(rs);
}

/*
 * SpamAssassin scores with set 2/3 only once Bayes can vote
 * (is_scan_available); before, with 0/1. A ruleset loaded for set 2
 * follows facts.bayes_unready per message; autolearn points always come
 * from the set without Bayes, less the rules flagged learn, noautolearn,
 * userconf.
 */
static void
test_scoreset_without_bayes(void)
{
	struct sa_ruleset *rs;
	struct sa_facts	   f;
	struct tv	   t;

	rs = load_set("body R /x/\nscore R 1 2 3 4\n"
		      "body ONLY_NB /x/\nscore ONLY_NB 2 0 0 0\n"
		      "body ONLY_B /x/\nscore ONLY_B 0 0 0.5 0\n"
		      "body LEARNT /x/\nscore LEARNT 1 1 7 7\n"
		      "tflags LEARNT learn\n"
		      "body NOAL /x/\nscore NOAL 4 4 4 4\n"
		      "tflags NOAL noautolearn\n",
	    2);
	ok(rs != NULL, "score sets load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "x");
	memset(&f, 0, sizeof(f));
	run(rs, &t, NULL, &f, NULL, 0);
	ok(hit("R") && !hit("ONLY_NB") && hit("ONLY_B") && hit("LEARNT"),
	    "Bayes ready: set 2's rules");
	ok(res.score == 3 + 0.5 + 7 + 4, "Bayes ready: set 2 (%g)", res.score);
	ok(res.learn_points == 1 + 2, "autolearn points from set 0 (%g)",
	    res.learn_points);
	f.bayes_unready = 1;
	run(rs, &t, NULL, &f, NULL, 0);
	ok(hit("R") && hit("ONLY_NB") && !hit("ONLY_B"),
	    "Bayes not ready: set 0's rules (a rule scored 0 in set 2 runs)");
	ok(res.score == 1 + 2 + 1 + 4, "Bayes not ready: set 0 (%g)",
	    res.score);
	ok(res.learn_points == 1 + 2, "same autolearn points (%g)",
	    res.learn_points);
	tv_free(&t);
	sa_ruleset_free(rs);
	/* loaded without Bayes: the flag changes nothing */
	rs = load_set("body R /x/\nscore R 1 2 3 4\n", 1);
	ok(rs != NULL, "set 1 loads");
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "x");
	run(rs, &t, NULL, &f, NULL, 0);
	ok(res.score == 2, "set 1 stays set 1 (%g)", res.score);
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_tflags_multiple(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;

	rs = load("body ONE /ab/\n"
		  "body MANY /ab/\ntflags MANY multiple\n"
		  "body MAX /ab/\ntflags MAX multiple maxhits=3\n"
		  "header HM Received =~ /by/\ntflags HM multiple\n"
		  "uri UM /example/\ntflags UM multiple\n"
		  "body NOSUBJ /ab/\ntflags NOSUBJ nosubject\n"
		  "tflags UNDEFINED_RULE net\n",
	    1);
	ok(rs != NULL, "tflags load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "ab");
	tv_header(&t, "Received", "from a by b");
	tv_header(&t, "Received", "from c by d");
	tv_part(&t, "text/plain", "ab ab\n\nab ab\n", NULL, 1);
	tv_uri(&t, "http://example.com/", "example.com", MV_URI_TEXT);
	tv_uri(&t, "www.example.org", "www.example.org", MV_URI_TEXT);
	run(rs, &t, NULL, NULL, NULL, 0);
	is_int(hit("ONE"), 1, "without multiple: one hit");
	is_int(hit("MANY"), 5, "multiple: every match, subject included");
	is_int(hit("MAX"), 3, "maxhits=3");
	is_int(hit("HM"), 2, "multiple over joined header instances");
	is_int(hit("UM"), 3, "uri: each URI and the http:// variant");
	is_int(hit("NOSUBJ"), 1, "nosubject: body without the subject");
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_headers(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	struct sa_facts	   f;

	rs =
	    load("header RAW Subject:raw =~ /=\\?utf-8\\?/\n"
		 "header DEC Subject =~ /^caf\\xc3\\xa9\\n$/\n"
		 "header DECRAW Subject =~ /=\\?/\n"
		 "header ADDR From:addr =~ /^jane\\@example\\.com$/\n"
		 "header NAME From:name =~ /^Jane Doe$/\n"
		 "header TOCC ToCc =~ /carol/\n"
		 "header TOCCADDR ToCc:addr =~ /^bob\\@example\\.org\\ncarol/\n"
		 "header MID MESSAGEID =~ /abc\\@host/\n"
		 "header ENVF EnvelopeFrom =~ /bounce\\@example\\.net/\n"
		 "header EXISTS exists:X-Mailer\n"
		 "header NOTEXISTS exists:X-Nope\n"
		 "header UNSET X-Nope =~ /^dflt$/ [if-unset: dflt]\n"
		 "header UNSET_NO X-Nope =~ /./\n"
		 "header NEG Subject !~ /nothing/\n"
		 "header NEG_ABSENT X-Nope !~ /x/\n"
		 "header ALLH ALL =~ /^X-Mailer: Foo/m\n"
		 "header JOIN Received =~ /one\\nfrom two/\n"
		 "header FIRST Received:first =~ /two/\n"
		 "header LAST Received:last =~ /two/\n"
		 "header CASE subject =~ /caf/\n"
		 "header RELAY X-Spam-Relays-External =~ /ip=192\\.0\\.2\\.1 "
		 "rdns=mx\\.example\\.net helo=mx /\n"
		 "mimeheader MIMECT Content-Type =~ /image\\/gif/\n"
		 "mimeheader MIMEID Content-ID:raw =~ /x/\n",
		1);
	ok(rs != NULL, "header rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header2(&t, "Subject", "=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9");
	tv_header(&t, "From", "\"Jane Doe\" <jane@example.com>");
	tv_header(&t, "To", "bob@example.org");
	tv_header(&t, "Cc", "Carol <carol@example.org>");
	tv_header(&t, "Message-Id", "<abc@host>");
	tv_header(&t, "X-Mailer", "Foo 1.0");
	tv_header(&t, "Received", "from one");
	tv_header(&t, "Received", "from two");
	tv_part(&t, "text/plain", "body\n", NULL, 1);
	{
		struct mv_part *p = tv_part(&t, "image/gif", NULL, NULL, 0);
		static struct mv_header ph[1] = { { "Content-Type",
		    "image/gif; name=x.gif", "image/gif; name=x.gif" } };

		p->flags = MV_PART_ATTACHMENT;
		p->headers = ph;
		p->nheaders = 1;
	}
	memset(&f, 0, sizeof(f));
	f.mail_from = "bounce@example.net";
	f.client_ip = "192.0.2.1";
	f.client_rdns = "mx.example.net";
	f.helo = "mx";
	run(rs, &t, NULL, &f, NULL, 0);
	ok(hit("RAW"), ":raw sees the encoded word");
	ok(hit("DEC"), "decoded value with a final newline");
	ok(!hit("DECRAW"), "decoded value has no encoded word");
	ok(hit("ADDR"), ":addr");
	ok(hit("NAME"), ":name");
	ok(hit("TOCC"), "ToCc");
	ok(hit("TOCCADDR"), "ToCc:addr, one address per line");
	ok(hit("MID"), "MESSAGEID");
	ok(hit("ENVF"), "EnvelopeFrom from the facts");
	ok(hit("EXISTS"), "exists:");
	ok(!hit("NOTEXISTS"), "exists: absent header");
	ok(hit("UNSET"), "[if-unset: ...]");
	ok(!hit("UNSET_NO"), "absent header is the empty string");
	ok(hit("NEG"), "!~");
	ok(hit("NEG_ABSENT"), "!~ on an absent header fires");
	ok(hit("ALLH"), "ALL");
	ok(hit("JOIN"), "instances joined, each with a newline");
	ok(!hit("FIRST"), ":first");
	ok(hit("LAST"), ":last");
	ok(hit("CASE"), "header names are case-insensitive");
	ok(hit("RELAY"), "X-Spam-Relays-External from the facts");
	ok(hit("MIMECT"), "mimeheader on a MIME part");
	ok(!hit("MIMEID"), "mimeheader: absent header");
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_texts(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	const char	  *raw = "Subject: hi\nX-A: b\n\n<b>bold</b> words\n";

	rs = load("body SUBJ_FIRST /^hi there\\n$/\n"
		  "body COLLAPSE /^one two three\\n$/\n"
		  "body PARA /^ ?four five/\n"
		  "body NOTAGS /<b>/\n"
		  "body HTMLTEXT /bold words/\n"
		  "rawbody RAWTAGS /<b>bold<\\/b>/\n"
		  "rawbody RAWNOSUBJ /hi there/\n"
		  "full FULLHDR /^X-A: b$/m\n"
		  "body GTUBE /" GTUBE_RE "/\nscore GTUBE 1000\n"
		  "uri SCHEMELESS /^http:\\/\\/www\\.example\\.com/\n"
		  "body SPLIT /^y{10}/\n",
	    1);
	ok(rs != NULL, "text rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "hi there");
	tv_part(&t, "text/plain",
	    "one  two\tthree\n \n\n four\nfive\n\n" GTUBE "\n", NULL, 0);
	tv_part(&t, "text/html", "bold words", "<b>bold</b> words", 0);
	tv_uri(&t, "www.example.com", "www.example.com", MV_URI_TEXT);
	run(rs, &t, raw, NULL, NULL, 0);
	ok(hit("SUBJ_FIRST"), "body: the subject is the first line");
	ok(hit("COLLAPSE"), "body: whitespace collapsed");
	ok(hit("PARA"), "body: blank lines end a paragraph");
	ok(!hit("NOTAGS"), "body: HTML rendered");
	ok(hit("HTMLTEXT"), "body: HTML part's text");
	ok(hit("RAWTAGS"), "rawbody: tags kept");
	ok(!hit("RAWNOSUBJ"), "rawbody: no subject");
	ok(hit("FULLHDR"), "full: the raw message");
	ok(hit("GTUBE") && res.score >= 1000, "GTUBE as a body rule");
	ok(hit("SCHEMELESS"), "uri: http:// variant of a schemeless URI");
	ok(!hit("SPLIT"), "no line starts with y");
	tv_free(&t);

	/* lines longer than 2048 bytes are split (at a space if any) */
	{
		char *long_text = malloc(5000);

		memset(long_text, 'y', 4999);
		long_text[4999] = '\0';
		tv_init(&t);
		tv_part(&t, "text/plain", long_text, NULL, 1);
		run(rs, &t, NULL, NULL, NULL, 0);
		ok(hit("SPLIT"), "a long line split into 2048-byte lines");
		tv_free(&t);
		free(long_text);
	}
	sa_ruleset_free(rs);
}

static void
test_evals(void)
{
	struct sa_ruleset	*rs;
	struct tv		 t;
	struct sa_facts		 f;
	const struct sa_stats	*st;
	const char *const	 ext[] = { "RCVD_IN_TEST", "NOT_A_RULE" };
	const struct sa_netrule *nr;
	size_t			 n, i;
	int			 seen = 0;

	rs = load(
	    "body BAYES_99 eval:check_bayes('0.99', '1.00')\n"
	    "body BAYES_00 eval:check_bayes('0.00', '0.01')\n"
	    "header SPF_FAIL eval:check_for_spf_fail()\n"
	    "header SPF_PASS eval:check_for_spf_pass()\n"
	    "header SPF_HELO_SOFTFAIL eval:check_for_spf_helo_softfail()\n"
	    "header DKIM_VALID eval:check_dkim_valid()\n"
	    "header DKIM_VALID_AU eval:check_dkim_valid_author_sig()\n"
	    "full DKIM_DEP eval:check_dkim_dependable()\n"
	    "header SPF_NONE eval:check_for_spf_none()\n"
	    "header DMARC_REJECT eval:check_dmarc_reject()\n"
	    "header MISSING_TO eval:check_for_missing_to_header()\n"
	    "freemail_domains gmail.com *.yahoo.com\n"
	    "header FREEMAIL_FROM eval:check_freemail_from()\n"
	    "header UNKNOWN_EVAL eval:check_something_moat_lacks('a')\n"
	    "header RCVD_IN_TEST eval:check_rbl('test', 'bl.example.')\n"
	    "tflags RCVD_IN_TEST net\nscore RCVD_IN_TEST 0 0 2 2\n"
	    "header RCVD_SUB eval:check_rbl_sub('test', '127.0.0.2')\n"
	    "urirhssub URIBL_X multi.uribl.example. A 2\n"
	    "meta NET_AND_BAYES RCVD_IN_TEST && BAYES_99\n"
	    "body HTML_MSG eval:html_test('html')\n"
	    "body HTML_IMG eval:html_image_only('0', '400')\n"
	    "header COUNT eval:check_header_count_range('Received','2','3')\n",
	    1);
	ok(rs != NULL, "eval rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	st = sa_ruleset_stats(rs);
	is_int(st->evals_skipped, 1, "unimplemented eval skipped and counted");
	is_int(st->net_rules, 3, "net rules counted");
	ok(st->evals_implemented >= 13, "implemented evals counted (%u)",
	    st->evals_implemented);
	nr = sa_ruleset_netrules(rs, &n);
	for (i = 0; i < n; i++) {
		if (strcmp(nr[i].rule, "RCVD_IN_TEST") == 0 &&
		    nr[i].kind == SA_NET_RBL &&
		    strcmp(nr[i].set, "test") == 0 &&
		    strcmp(nr[i].zone, "bl.example.") == 0)
			seen |= 1;
		if (strcmp(nr[i].rule, "RCVD_SUB") == 0 &&
		    nr[i].kind == SA_NET_RBL_SUB &&
		    strcmp(nr[i].subtest, "127.0.0.2") == 0)
			seen |= 2;
		if (strcmp(nr[i].rule, "URIBL_X") == 0 &&
		    nr[i].kind == SA_NET_URIRHSSUB &&
		    strcmp(nr[i].zone, "multi.uribl.example.") == 0 &&
		    strcmp(nr[i].subtest, "2") == 0)
			seen |= 4;
	}
	is_int(seen, 7, "DNS list definitions exposed");
	{
		size_t		   nl;
		const char *const *l =
		    sa_ruleset_list(rs, "freemail_domains", &nl);

		ok(nl == 2 && strcmp(l[1], "*.yahoo.com") == 0,
		    "freemail_domains list kept");
	}

	tv_init(&t);
	tv_header(&t, "From", "Someone <someone@mail.yahoo.com>");
	tv_header(&t, "Received", "a");
	tv_header(&t, "Received", "b");
	tv_part(&t, "text/html", "x", "<html><img src=a></html>", 1);
	t.mv.html.images = 1;
	t.mv.html.tags = 3;
	memset(&f, 0, sizeof(f));
	f.has_bayes = 1;
	f.bayes = 0.995;
	f.spf_mailfrom = SA_AUTH_FAIL;
	f.spf_helo = SA_AUTH_SOFTFAIL;
	f.dkim_signed = f.dkim_valid = 1;
	f.dmarc = SA_AUTH_FAIL;
	f.dmarc_policy = SA_DMARC_POLICY_REJECT;
	run(rs, &t, NULL, &f, ext, 2);
	ok(hit("BAYES_99") && !hit("BAYES_00"), "check_bayes from facts");
	ok(hit("SPF_FAIL") && !hit("SPF_PASS"), "SPF from facts");
	ok(hit("SPF_HELO_SOFTFAIL"), "SPF HELO from facts");
	ok(hit("DKIM_VALID") && !hit("DKIM_VALID_AU"), "DKIM from facts");
	ok(!hit("DKIM_DEP"), "no DKIM verifier ran: not dependable");
	ok(hit("DMARC_REJECT"), "DMARC from facts");
	ok(hit("MISSING_TO"), "check_for_missing_to_header");
	ok(hit("FREEMAIL_FROM"), "check_freemail_from with a wildcard");
	ok(!hit("UNKNOWN_EVAL"), "skipped eval never fires");
	ok(hit("RCVD_IN_TEST") && hit("NET_AND_BAYES"),
	    "external hit scored and seen by metas");
	ok(hit("HTML_MSG") && hit("HTML_IMG"), "HTML evals from the view");
	ok(hit("COUNT"), "check_header_count_range");
	f.dkim_checked = 1;
	run(rs, &t, NULL, &f, ext, 2);
	ok(hit("DKIM_DEP"), "a DKIM verifier ran: dependable");
	f.spf_mailfrom = SA_AUTH_NONE;
	f.mail_from = "someone@mail.yahoo.com";
	run(rs, &t, NULL, &f, ext, 2);
	ok(!hit("SPF_NONE"), "SPF not checked: no SPF_NONE");
	f.spf_checked = 1;
	run(rs, &t, NULL, &f, ext, 2);
	ok(hit("SPF_NONE"), "SPF checked, no record: SPF_NONE");
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("BAYES_99") && !hit("SPF_FAIL") && !hit("RCVD_IN_TEST"),
	    "no facts, no external hits: none of those fire");
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_more_evals(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	struct sa_facts	   f;
	char		   caps[400];
	size_t		   i;

	rs = load(
	    "header FUT_03_06 eval:check_for_shifted_date('3', '6')\n"
	    "header FUT_06_12 eval:check_for_shifted_date('6', '12')\n"
	    "header PAST_XX eval:check_for_shifted_date('undef', '-96')\n"
	    "header ALLCAPS eval:subject_is_all_caps()\n"
	    "header TOSUBJ eval:check_for_to_in_subject('user')\n"
	    "header TEMPLATE eval:check_unresolved_template()\n"
	    "enlist_addrlist (BANKS) *@*.bank.example\n"
	    "header FROMLIST eval:check_from_in_list('BANKS')\n"
	    "all_spam_to bob@example.org\n"
	    "header ALLSPAM eval:check_to_in_all_spam()\n"
	    "header TRUSTED eval:check_all_trusted()\n"
	    "header HELOIP eval:helo_ip_mismatch()\n"
	    "freemail_domains gmail.com\n"
	    "header FM_RT eval:check_freemail_header('Reply-To', '\\d@')\n"
	    "header FM_SUBJ eval:check_freemail_header('Subject')\n"
	    "body B64TEXT eval:check_for_mime('mime_base64_encoded_text')\n"
	    "body QPCOUNT eval:check_for_mime('mime_qp_count')\n"
	    "body ATTACH eval:check_for_mime('mime_attachment')\n"
	    "body UPPER eval:check_for_uppercase('75', '100')\n"
	    "header ENVHDR eval:check_for_matching_env_and_hdr_from()\n",
	    1);
	ok(rs != NULL, "more eval rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	is_int(sa_ruleset_stats(rs)->evals_skipped, 0, "all implemented");
	for (i = 0; i + 1 < sizeof(caps); i++)
		caps[i] = (i % 6 == 5) ? ' ' : 'A' + (char)(i % 26);
	caps[sizeof(caps) - 1] = '\0';
	tv_init(&t);
	tv_header(&t, "Date", "Tue, 24 Nov 2026 18:30:00 +0000");
	tv_header(&t, "Received",
	    "from a by b; Tue, 24 Nov 2026 13:00:00 "
	    "+0000");
	tv_header(&t, "Subject", "BOB: BUY NOW CHEAP, JOE@GMAIL.COM");
	tv_header(&t, "To", "BOB@example.org");
	tv_header(&t, "From", "Bank <info@my.bank.example>");
	tv_header(&t, "Reply-To", "joe77@gmail.com");
	tv_header(&t, "X-Campaign", "%%CUSTOMER_ID%%");
	tv_part(&t, "text/plain", caps, NULL, 0)->encoding = "base64";
	tv_part(&t, "text/html", "x", "<b>x</b>", 0)->encoding =
	    "quoted-printable";
	memset(&f, 0, sizeof(f));
	f.helo = "203.0.113.9"; /* "[...]" would read "!...!", no IP */
	f.client_ip = "192.0.2.1";
	run(rs, &t, NULL, &f, NULL, 0);
	ok(hit("FUT_03_06") && !hit("FUT_06_12"),
	    "Date 5.5 h after Received: check_for_shifted_date(3, 6)");
	ok(!hit("PAST_XX"), "not 96 h in the past");
	ok(hit("ALLCAPS"), "subject_is_all_caps");
	ok(hit("TOSUBJ"), "check_for_to_in_subject('user')");
	ok(hit("TEMPLATE"), "check_unresolved_template");
	ok(hit("FROMLIST"), "check_from_in_list with a glob");
	ok(hit("ALLSPAM"), "check_to_in_all_spam");
	ok(!hit("TRUSTED"), "not authenticated: not all trusted");
	ok(hit("HELOIP"), "helo_ip_mismatch");
	ok(hit("FM_RT"), "check_freemail_header with a regex");
	ok(hit("FM_SUBJ"), "check_freemail_header: address in Subject");
	ok(hit("B64TEXT"), "check_for_mime base64 text");
	ok(hit("QPCOUNT"), "check_for_mime qp count");
	ok(!hit("ATTACH"), "no attachment");
	ok(hit("UPPER"), "check_for_uppercase 75-100");
	ok(!hit("ENVHDR"), "envelope sender is not the From address");
	f.authenticated = 1;
	f.mail_from = "INFO@my.bank.example";
	run(rs, &t, NULL, &f, NULL, 0);
	ok(hit("TRUSTED"), "authenticated: all trusted");
	ok(hit("ENVHDR"), "envelope sender is the From address");
	tv_free(&t);
	sa_ruleset_free(rs);
}

static void
test_budget(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;
	char		  *text, rules[8192], *p = rules;
	size_t		   i;

	for (i = 0; i < 100; i++)
		p += sprintf(p, "body R%zu /(?:a|b)+c%zu/\n", i, i);
	sprintf(p, "meta M !R99\n");
	rs = load(rules, 1);
	ok(rs != NULL, "100 rules load");
	if (rs == NULL)
		return;
	text = malloc(200001);
	memset(text, 'a', 200000);
	text[200000] = '\0';
	tv_init(&t);
	tv_part(&t, "text/plain", text, NULL, 1);
	sa_scratch_set_budget(sc, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(res.timed_out == 1, "a 1 us budget runs out");
	ok(hit("M") == 1, "metas still run after the budget");
	sa_scratch_set_budget(sc, SA_EVAL_BUDGET_USEC);
	tv_part(&t, "text/plain", "ac5\n", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(res.timed_out == 0 && hit("R5") == 1, "default budget");
	tv_free(&t);
	free(text);
	sa_ruleset_free(rs);
}

static void
test_files(void)
{
	char		    dir[] = "/tmp/test_sarules.XXXXXX", path[256];
	const char	   *paths[2];
	struct sa_ruleset  *rs;
	struct sa_load_opts o = { .scoreset = 2, .strict_from = 1 };
	FILE		   *f;
	double		    s;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/20_b.cf", dir);
	f = fopen(path, "w");
	fputs("body ORDER /b/\nscore ORDER 2\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/10_a.cf", dir);
	f = fopen(path, "w");
	fputs("body ORDER /a/\nscore ORDER 1\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/30_c.pre", dir);
	f = fopen(path, "w");
	fputs("score ORDER 3\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/user.conf", dir);
	f = fopen(path, "w");
	fputs("body USER /(/\n", f);
	fclose(f);
	paths[0] = dir;
	paths[1] = path;
	o.strict_from = 2;
	rs = sa_ruleset_load(paths, 1, &o, errbuf, sizeof(errbuf));
	ok(rs != NULL && sa_rule_info(rs, "ORDER", NULL, &s) == 0 && s == 2,
	    "directory: *.cf in lexical order, other files ignored");
	ok(rs != NULL && sa_ruleset_stats(rs)->redefined == 1,
	    "redefinition counted");
	sa_ruleset_free(rs);
	rs = sa_ruleset_load(paths, 2, &o, errbuf, sizeof(errbuf));
	ok(rs != NULL, "a broken file outside strict_from is tolerated");
	sa_ruleset_free(rs);
	o.strict_from = 1;
	rs = sa_ruleset_load(paths, 2, &o, errbuf, sizeof(errbuf));
	ok(rs == NULL && strstr(errbuf, "user.conf:1: USER") != NULL,
	    "the user's own file with a bad regex refuses: %s", errbuf);
	paths[0] = "/nonexistent/rules.cf";
	o.strict_from = 0;
	rs = sa_ruleset_load(paths, 1, &o, errbuf, sizeof(errbuf));
	ok(rs == NULL && strstr(errbuf, "/nonexistent/rules.cf") != NULL,
	    "a missing file refuses: %s", errbuf);
	unlink(path);
	snprintf(path, sizeof(path), "%s/10_a.cf", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/20_b.cf", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/30_c.pre", dir);
	unlink(path);
	rmdir(dir);
}

static void
test_debian(void)
{
	const char	      *paths[] = { "/usr/share/spamassassin" };
	struct sa_load_opts    o = { .scoreset = 2, .strict_from = 1 };
	struct sa_ruleset     *rs;
	const struct sa_stats *st;
	const char *const     *errs;
	size_t		       nerr, i;
	struct tv	       t;
	struct stat	       sb;
	static const char *tn[] = { "header", "mimeheader", "body", "rawbody",
		"full", "uri", "meta" };

	if (stat(paths[0], &sb) != 0) {
		ok(1, "# SKIP /usr/share/spamassassin not installed");
		return;
	}
	rs = sa_ruleset_load(paths, 1, &o, errbuf, sizeof(errbuf));
	ok(rs != NULL, "Debian's ruleset loads unmodified (%s)", errbuf);
	if (rs == NULL)
		return;
	st = sa_ruleset_stats(rs);
	printf("# files %u, lines %u\n", st->files, st->lines);
	for (i = 0; i < SA_NTYPES; i++)
		printf("# %s rules: %u\n", tn[i], st->rules[i]);
	printf(
	    "# evals implemented %u, skipped %u; net rules %u; "
	    "plugin-disabled %u; unknown directives %u; redefined %u; "
	    "zero-scored %u; regexes translated %u; prefiltered %u; lazy %u; "
	    "errors %u\n",
	    st->evals_implemented, st->evals_skipped, st->net_rules,
	    st->plugin_disabled, st->unknown_directives, st->redefined,
	    st->zero_score, st->regex_translated, st->prefiltered, st->lazy,
	    st->errors);
	errs = sa_ruleset_errors(rs, &nerr);
	for (i = 0; i < nerr; i++)
		printf("# error: %s\n", errs[i]);
	is_int(st->errors, 0, "every rule in Debian's set compiles");
	ok(st->rules[SA_BODY] > 500 && st->rules[SA_HEADER] > 500 &&
		st->rules[SA_META] > 800,
	    "hundreds of rules of each main type");
	tv_init(&t);
	tv_header(&t, "Subject", "test");
	tv_header(&t, "From", "a@example.com");
	tv_part(
	    &t, "text/plain", "This is the GTUBE, the\n\n" GTUBE "\n", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("GTUBE") && res.score >= 1000,
	    "GTUBE fires with Debian's rules (score %.1f)", res.score);
	tv_free(&t);
	sa_ruleset_free(rs);
}

/* the evals and header semantics added to match SpamAssassin's hits */
static void
test_sa_parity(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;

	rs = load("header OUTLOOK eval:check_outlook_message_id()\n"
		  "header FUT_06_12 eval:check_for_shifted_date('6', '12')\n"
		  "header PAST_XX eval:check_for_shifted_date('undef', '-96')\n"
		  "header RECIPS eval:similar_recipients('0.65', 'undef')\n"
		  "header SORTED eval:sorted_recipients()\n"
		  "header RCVD_ONE Received =~ /07:26:26 \\+0900$/\n"
		  "header TO_ADDR ToCc:addr =~ /\\nc3\\@x3\\.example$/\n"
		  "body TAG_HTML eval:html_tag_exists('html')\n"
		  "body TAG_BGSOUND eval:html_tag_exists('bgsound')\n"
		  "body BAL_CENTER eval:html_tag_balance('center', '!= 0')\n"
		  "body BAL_BODY eval:html_tag_balance('body', '!= 0')\n"
		  "body LINK_IMG eval:html_text_match('anchor', '<img>')\n"
		  "body CMT_SHORT eval:html_text_match('comment', "
		  "'<!(?!-).{0,6}>')\n"
		  "body TITLE_LONG eval:html_text_match('title', '.{20}')\n"
		  "body EXTRA_CLOSE eval:html_range('closed_extra_ratio', "
		  "'0.09', 'inf')\n"
		  "body LOWC eval:html_test('font_low_contrast')\n"
		  "body INVC eval:html_test('font_invalid_color')\n",
	    1);
	ok(rs != NULL, "parity eval rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	is_int(sa_ruleset_stats(rs)->evals_skipped, 0, "all implemented");

	/* Outlook Message-ID: time token 0xc958bd is from 1970; a Date of
	   2002-08-25 is far from it, and so is the Received date */
	tv_init(&t);
	tv_header(
	    &t, "Message-Id", "<000000c958bd$000005d0$000008aa@x.example>");
	tv_header(&t, "Date", "Sun, 25 Aug 2002 10:36:36 -1000");
	tv_header2(&t, "Received",
	    "from a ([192.0.2.1]) by b with SMTP id 1 ; Fri, 23 Aug 2002 "
	    "07:26:26\r\n    +0900",
	    "from a ([192.0.2.1]) by b with SMTP id 1 ; Fri, 23 Aug 2002 "
	    "07:26:26    +0900");
	tv_header(&t, "To", "a1@x1.example, b2@x2.example");
	tv_header2(&t, "Cc", "zz@y.example, yy@y2.example,\r\n\tc3@x3.example",
	    "zz@y.example, yy@y2.example,\tc3@x3.example");
	tv_part(&t, "text/plain", "hello", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("OUTLOOK"), "check_outlook_message_id: token far from Date");
	ok(hit("RCVD_ONE"), "a fold in a header value is one space");
	ok(hit("TO_ADDR"), ":addr: a folded address is trimmed");
	ok(!hit("FUT_06_12") && hit("PAST_XX") == 0,
	    "shifted date: the Received date after the fold is read");
	ok(!hit("SORTED"), "sorted_recipients: not sorted");
	tv_free(&t);

	/* the same Message-ID with a matching Date: no hit */
	tv_init(&t);
	tv_header(
	    &t, "Message-Id", "<000001c238a0$00000000$00000000@x.example>");
	tv_header(&t, "Date", "Wed, 31 Jul 2002 16:41:57 +0200");
	tv_part(&t, "text/plain", "hello", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("OUTLOOK"), "check_outlook_message_id: token matches Date");
	tv_free(&t);

	/* fetchmail hops are left out of the shifted date */
	tv_init(&t);
	tv_header(&t, "Date", "Thu, 29 Aug 2002 08:45:22 -1600");
	tv_header(&t, "Received",
	    "from localhost (localhost [127.0.0.1]) by p (Postfix) for "
	    "<z@localhost>; Thu, 29 Aug 2002 08:52:33 -0400 (EDT)");
	tv_header(&t, "Received",
	    "from p [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) "
	    "for z@localhost (single-drop); Thu, 29 Aug 2002 13:52:33 +0100 "
	    "(IST)");
	tv_header(&t, "Received",
	    "from q ([192.0.2.9]) by d (8.11.6/8.11.6) with ESMTP id g7; "
	    "Thu, 29 Aug 2002 13:45:38 +0100");
	tv_header(&t, "To",
	    "aa1@ab.example, aa2@ab.example, aa3@ab.example, "
	    "aa4@ab.example, aa5@ab.example, aa6@ab.example, aa7@ab.example");
	tv_part(&t, "text/plain", "hello", NULL, 1);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("FUT_06_12"),
	    "shifted date: Date -1600 is 11 h after the MX's Received");
	ok(hit("RECIPS"), "similar_recipients: alike users");
	ok(hit("SORTED"), "sorted_recipients: seven in order");
	tv_free(&t);

	/* HTML facts from the tag scanner */
	tv_init(&t);
	tv_header(&t, "Subject", "x");
	tv_part(&t, "text/html", "x",
	    "junk <html><head><title>a title longer than twenty</title>"
	    "</head><body><center><a href=\"http://x.example/\"><img "
	    "src=\"http://x.example/i.gif\"></a><!x></center></center>"
	    "</center><script>if (a<b) x('</b>');</script></body>",
	    1);
	t.mv.html.tags = 10;
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("TAG_HTML") && !hit("TAG_BGSOUND"), "html_tag_exists");
	ok(!hit("BAL_CENTER"), "html_tag_balance: extra end tags stop at 0");
	ok(!hit("BAL_BODY"), "html_tag_balance: body closed");
	ok(hit("LINK_IMG"), "html_text_match: <img> in an anchor");
	ok(hit("CMT_SHORT"), "html_text_match: short comment");
	ok(hit("TITLE_LONG"), "html_text_match: title text");
	ok(hit("EXTRA_CLOSE"), "closed_extra_ratio: 2 extra of 13 tags");
	ok(!hit("LOWC") && !hit("INVC"), "no font facts in the view");
	t.mv.html.font_low_contrast = 1;
	t.mv.html.font_invalid_color = 2;
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("LOWC") && hit("INVC"), "html_test font facts from the view");
	tv_free(&t);

	sa_ruleset_free(rs);
}

/* body rules read the invisible text of HTML parts too, as SA's do */
static void
test_invisible_body(void)
{
	struct sa_ruleset *rs;
	struct mv_part	  *p;
	struct tv	   t;

	rs = load("body HIDDEN /\\bsecret words\\b/\n"
		  "body SHOWN /\\bshown text\\b/\n"
		  "rawbody RAW /display:none/\n",
	    1);
	ok(rs != NULL, "invisible body rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	tv_init(&t);
	tv_header(&t, "Subject", "x");
	p = tv_part(&t, "text/html", "shown text",
	    "<p>shown text</p><span style=\"display:none\">secret words</span>",
	    0);
	p->invisible = "secret words";
	p->invisiblelen = strlen(p->invisible);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("SHOWN") && hit("HIDDEN"), "body: visible and invisible text");
	ok(hit("RAW"), "rawbody: the HTML as it is");
	tv_free(&t);
	sa_ruleset_free(rs);
}

/* FreeMail.pm: check_freemail_replyto('replyto'|'reply'), the welcome
   list, the bulk sender skip, the body's addresses */
static struct sa_ruleset *fm_rs;

static void
fm_case(const char *from, const char *replyto, const char *body,
    const char *envfrom, int want_rt, int want_reply, const char *what)
{
	struct sa_facts f;
	struct tv	t;

	memset(&f, 0, sizeof(f));
	f.mail_from = envfrom;
	tv_init(&t);
	tv_header(&t, "From", from);
	if (replyto != NULL)
		tv_header(&t, "Reply-To", replyto);
	tv_header(&t, "Subject", "hello");
	tv_part(&t, "text/plain", body, NULL, 1);
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(!!hit("FM_RT") == want_rt && !!hit("FM_R") == want_reply,
	    "freemail: %s (replyto %u, reply %u)", what, hit("FM_RT"),
	    hit("FM_R"));
	tv_free(&t);
}

static void
test_freemail(void)
{
	struct sa_facts f;
	struct tv	t;

	fm_rs = load("freemail_domains gmail.com yahoo.com *.yahoo.co.uk\n"
		     "header FM_FROM eval:check_freemail_from()\n"
		     "header FM_RT eval:check_freemail_replyto('replyto')\n"
		     "header FM_R eval:check_freemail_replyto('reply')\n"
		     "header FM_HDR eval:check_freemail_header('Reply-To')\n"
		     "header FM_FROMD eval:check_freemail_from('\\d@')\n",
	    1);
	ok(fm_rs != NULL, "freemail rules load (%s)", errbuf);
	if (fm_rs == NULL)
		return;
	fm_case("a@gmail.com", "b@yahoo.com", "hi\n", "a@gmail.com", 1, 1,
	    "From and Reply-To different freemails");
	fm_case("a@gmail.com", "a@gmail.com", "hi\n", "a@gmail.com", 0, 0,
	    "the same address");
	fm_case("a@gmail.com", "b@gmail.com", "hi\n", "a@gmail.com", 1, 1,
	    "same domain, other address");
	fm_case("a@example.org", "b@gmail.com", "hi\n", "a@example.org", 0, 0,
	    "From not freemail, no address in the body");
	fm_case("a@example.org", "b@gmail.com",
	    "Write to c@mail.yahoo.co.uk today\n", "a@example.org", 1, 0,
	    "Reply-To freemail, another freemail in the body");
	fm_case("a@gmail.com", NULL, "Contact me at x@yahoo.com now\n",
	    "a@gmail.com", 0, 1, "no Reply-To, From and a body freemail");
	fm_case("a@gmail.com", NULL, "Contact <x@yahoo.com> now\n",
	    "a@gmail.com", 0, 0, "an address in <> is not taken");
	fm_case("a@gmail.com", NULL, "x@yahoo.com wrote:\n> hi\n",
	    "a@gmail.com", 0, 0, "a quoted author is not taken");
	fm_case("a@gmail.com", NULL, "see http://x.example/?u=x@yahoo.com\n",
	    "a@gmail.com", 0, 0, "an address in a URL is not taken");
	fm_case("a@gmail.com", NULL,
	    "p@gmail.com q@gmail.com r@yahoo.com and more\n", "a@gmail.com", 0,
	    0, "three body freemails: the body is not used");
	fm_case("a@gmail.com", "b@yahoo.com", "hi\n",
	    "owner-list@lists.example.org", 0, 0, "a bulk envelope sender");
	fm_case("a@gmail.com", "b@yahoo.com", "hi\n", "noreply@example.org", 0,
	    0, "a no-reply envelope sender");
	fm_case("info@gmail.com", "b@yahoo.com", "hi\n", "x@example.org", 0, 0,
	    "a role address is not freemail");

	memset(&f, 0, sizeof(f));
	tv_init(&t);
	tv_header(&t, "From", "Joe <joe@gmail.com>");
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(hit("FM_FROM"), "check_freemail_from");
	tv_free(&t);
	tv_init(&t);
	tv_header(&t, "From", "support@gmail.com");
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(!hit("FM_FROM"), "check_freemail_from: a role address is not");
	tv_free(&t);
	/* check_freemail_header: the same address test (FreeMail.pm's
	   _is_freemail), the field's addresses */
	tv_init(&t);
	tv_header(&t, "From", "Joe <joe7@gmail.com>");
	tv_header(&t, "Reply-To", "Help <support@yahoo.com>");
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(!hit("FM_HDR"), "check_freemail_header: a role address is not");
	ok(hit("FM_FROMD"), "check_freemail_from with a pattern");
	tv_free(&t);
	tv_init(&t);
	tv_header(&t, "From", "Joe <joe@gmail.com>");
	tv_header(&t, "Reply-To", "Bob <bob@yahoo.com>");
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(hit("FM_HDR"), "check_freemail_header: a freemail address");
	ok(!hit("FM_FROMD"), "check_freemail_from: the pattern does not match");
	tv_free(&t);
	/* a mailto: link's address counts, unless also in the text */
	tv_init(&t);
	tv_header(&t, "From", "a@gmail.com");
	tv_part(
	    &t, "text/html", "click", "<a href=mailto:z@yahoo.com>x</a>", 1);
	tv_uri(&t, "mailto:z@yahoo.com", "yahoo.com",
	    MV_URI_HTML | MV_URI_ANCHOR | MV_URI_MAILTO);
	f.mail_from = "a@gmail.com";
	run(fm_rs, &t, NULL, &f, NULL, 0);
	ok(hit("FM_R"), "a mailto: link to another freemail");
	tv_free(&t);
	sa_ruleset_free(fm_rs);
}

/* BodyEval tvd_vertical_words, HTMLEval html_title_subject_ratio */
static void
test_tvd_title(void)
{
	struct sa_ruleset *rs;
	struct tv	   t;

	rs = load("body TVD eval:tvd_vertical_words('0', '10')\n"
		  "body TVD_ANY eval:tvd_vertical_words('0', '100')\n"
		  "body TITLE eval:html_title_subject_ratio('3.5')\n",
	    1);
	ok(rs != NULL, "tvd/title rules load (%s)", errbuf);
	if (rs == NULL)
		return;
	is_int(sa_ruleset_stats(rs)->evals_skipped, 0, "both implemented");
	/* every paragraph (a line here) > 5 bytes under 10% spaces, the
	   Subject's line included; a single line end is a space */
	tv_init(&t);
	tv_header(&t, "Subject", "Offer");
	tv_part(&t, "text/plain",
	    "V\n\nI\n\nA\n\nwordswithoutanyspacesatall and\n\n"
	    "morewordsruntogether\n",
	    NULL, 0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("TVD"), "tvd_vertical_words: no line with 10%% spaces");
	ok(hit("TVD_ANY"), "tvd_vertical_words('0', '100'): max 101");
	tv_free(&t);
	/* one ordinary sentence: 7 spaces for 34 other bytes = 20% */
	tv_init(&t);
	tv_header(&t, "Subject", "Offer");
	tv_part(
	    &t, "text/plain", "This is a line of plain old text.\n", NULL, 0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("TVD"), "tvd_vertical_words: a sentence is 20%%");
	tv_free(&t);
	/* only short lines: no value (-1), no hit even from 0 */
	tv_init(&t);
	tv_header(&t, "Subject", "Hi");
	tv_part(&t, "text/plain", "a\nb\n", NULL, 0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("TVD") && !hit("TVD_ANY"), "tvd_vertical_words: no long line");
	tv_free(&t);
	/* title 21 bytes, Subject "Hi" + line end = 3: 7 > 3.5 */
	tv_init(&t);
	tv_header(&t, "Subject", "Hi");
	tv_part(&t, "text/html", "x",
	    "<html><head><title>A much longer title.</title></head>"
	    "<body>x</body></html>",
	    0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(hit("TITLE"), "html_title_subject_ratio: title 7 times the Subject");
	tv_free(&t);
	tv_init(&t);
	tv_header(&t, "Subject", "A subject of some length");
	tv_part(&t, "text/html", "x",
	    "<html><head><title>A much longer title.</title></head>"
	    "<body>x</body></html>",
	    0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("TITLE"), "html_title_subject_ratio: title shorter");
	tv_free(&t);
	tv_init(&t);
	tv_part(&t, "text/html", "x",
	    "<html><head><title>A much longer title.</title></head>"
	    "<body>x</body></html>",
	    0);
	run(rs, &t, NULL, NULL, NULL, 0);
	ok(!hit("TITLE"), "html_title_subject_ratio: no Subject, no hit");
	tv_free(&t);
	sa_ruleset_free(rs);
}

/* ------------------------------------------------ prefilter cache */

static const char pfc_rules[] = "body PB1 /cheap\\s+pills/i\nscore PB1 1\n"
				"body PB2 /click here/\nscore PB2 1\n"
				"uri PU1 /example\\.com/\nscore PU1 1\n"
				"full PF1 /^Subject: pills/m\nscore PF1 1\n";

static struct sa_ruleset *
load_cached(const char *text, const char *dir)
{
	struct sa_load_opts o = { .scoreset = 2 };

	o.cache_dir = dir;
	return sa_ruleset_load_string(
	    text, strlen(text), "t.cf", &o, 1, errbuf, sizeof(errbuf));
}

/* Load pfc_rules from dir: was the prefilter cached; do the rules still
   fire as they should (every rule once). */
static int
pfc_round(const char *dir, int *fired)
{
	static const char  raw[] = "Subject: pills\r\n\r\nCheap  pills\r\n";
	struct sa_ruleset *rs = load_cached(pfc_rules, dir);
	struct tv	   t;
	int		   cached;

	if (rs == NULL)
		return -1;
	tv_init(&t);
	tv_header(&t, "Subject", "pills");
	tv_part(&t, "text/plain", "Cheap  pills, click here\n", NULL, 1);
	tv_uri(&t, "http://example.com/", "example.com", MV_URI_TEXT);
	run(rs, &t, raw, NULL, NULL, 0);
	*fired = hit("PB1") && hit("PB2") && hit("PU1") && hit("PF1");
	cached = (int)sa_ruleset_stats(rs)->prefilter_cached;
	tv_free(&t);
	sa_ruleset_free(rs);
	return cached;
}

/* The one cache file in dir (name into out); its count. */
static int
pfc_file(const char *dir, char *out, size_t n)
{
	char  cmd[512];
	FILE *p;
	int   count = 0;
	char  line[512];

	snprintf(
	    cmd, sizeof(cmd), "ls %s | grep '^sa-prefilter-.*\\.hsdb$'", dir);
	if ((p = popen(cmd, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, n, "%s/%s", dir, line);
		count++;
	}
	pclose(p);
	return count;
}

static void
test_prefilter_cache(void)
{
	char		   dir[] = "/tmp/test_sarules.XXXXXX", f[1024];
	char		   cmd[4400];
	struct sa_ruleset *rs;
	int		   fired = 0, prefiltered;
	FILE		  *fp;
	struct stat	   st;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	rs = load_cached(pfc_rules, dir);
	prefiltered = rs != NULL ? (int)sa_ruleset_stats(rs)->prefiltered : 0;
	sa_ruleset_free(rs);
	if (prefiltered == 0) {
		/* built without Hyperscan, or a CPU it does not run on */
		ok(pfc_file(dir, f, sizeof(f)) == 0,
		    "no prefilter: nothing cached");
		rmdir(dir);
		return;
	}
	is_int(pfc_file(dir, f, sizeof(f)), 1, "cache: one file written");
	ok(stat(f, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "cache: file mode 0644");
	is_int(pfc_round(dir, &fired), 1, "cache: second load is a hit");
	ok(fired, "cache hit: every rule fires");

	/* a flipped byte in the middle: miss, compiled, rewritten */
	if ((fp = fopen(f, "r+b")) != NULL) {
		int c;

		fseek(fp, st.st_size / 2, SEEK_SET);
		c = fgetc(fp);
		fseek(fp, st.st_size / 2, SEEK_SET);
		fputc(c ^ 0x5a, fp);
		fclose(fp);
	}
	is_int(pfc_round(dir, &fired), 0, "cache: corrupt file is a miss");
	ok(fired, "corrupt cache: rules compiled, every rule fires");
	is_int(pfc_round(dir, &fired), 1, "cache: rewritten after corruption");

	ok(truncate(f, st.st_size - 100) == 0, "truncate");
	is_int(pfc_round(dir, &fired), 0, "cache: truncated file is a miss");
	ok(fired, "truncated cache: every rule fires");

	chmod(f, 0666);
	is_int(pfc_round(dir, &fired), 0,
	    "cache: a world-writable file is not trusted");
	ok(stat(f, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "cache: replaced by a file of mode 0644");

	snprintf(
	    cmd, sizeof(cmd), "mv %s %s.real && ln -s %s.real %s", f, f, f, f);
	ok(system(cmd) == 0, "symlink set up");
	is_int(pfc_round(dir, &fired), 0, "cache: a symbolic link is a miss");
	snprintf(cmd, sizeof(cmd), "rm -f %s.real", f);
	ok(system(cmd) == 0, "symlink target removed");

	chmod(dir, 0777);
	unlink(f);
	is_int(pfc_round(dir, &fired), 0, "writable directory: a miss");
	is_int(pfc_file(dir, f, sizeof(f)), 0,
	    "world-writable directory: nothing written");
	chmod(dir, 0755);
	is_int(pfc_round(dir, &fired), 0, "cache rebuilt");
	is_int(pfc_round(dir, &fired), 1, "and hit again");

	rs = load_cached("body OTHER /other rules/\n", dir);
	ok(rs != NULL && !sa_ruleset_stats(rs)->prefilter_cached,
	    "cache: other rules, another key: a miss");
	sa_ruleset_free(rs);
	is_int(pfc_file(dir, f, sizeof(f)), 2, "cache: one file per ruleset");
	is_int(pfc_round(dir, &fired), 1, "the first ruleset's file is kept");

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ok(system(cmd) == 0, "cache directory removed");
}

int
main(void)
{
	sc = sa_scratch_new();
	test_line_types();
	test_regex_errors();
	test_conditionals();
	test_replace_tags();
	test_meta();
	test_scores();
	test_tflags_multiple();
	/* again without Hyperscan: every "__" body rule is then lazy */
	no_prefilter = 1;
	printf("# without the prefilter (lazy sub-rules)\n");
	test_meta();
	test_tflags_multiple();
	no_prefilter = 0;
	test_headers();
	test_texts();
	test_evals();
	test_more_evals();
	test_tvd_title();
	test_invisible_body();
	test_freemail();
	test_sa_parity();
	test_scoreset_without_bayes();
	test_budget();
	test_prefilter_cache();
	test_files();
	test_debian();
	sa_scratch_free(sc);
	return tap_done();
}
