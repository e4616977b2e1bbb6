/*
 * test_config.c - moat.conf parsing: units, bounds, defaults, keywords,
 * listeners, and that every error makes config_load() fail; loads and
 * builds from two threads at once (a reload thread beside start-up code)
 * each get their own result and their own error count.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "filter_api.h"
#include "runtime.h"
#include "tap.h"

/* Load and build everything moatd -t builds (lists, filters). */
static int
builds(const char *text)
{
	char		path[] = "/tmp/moat-test-conf.XXXXXX";
	struct config  *cf;
	struct runtime *rt;
	int		fd = mkstemp(path);
	FILE	       *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	cf = config_load(path, NULL);
	unlink(path);
	if (cf == NULL)
		return 0;
	if ((rt = runtime_build(cf)) == NULL) {
		config_free(cf);
		return 0;
	}
	runtime_release(rt);
	return 1;
}

static struct config *
load(const char *text)
{
	char	       path[] = "/tmp/moat-test-conf.XXXXXX";
	struct config *cf;
	int	       fd = mkstemp(path);
	FILE	      *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	cf = config_load(path, NULL);
	unlink(path);
	return cf;
}

/*
 * Two threads loading and building at once, one a good configuration,
 * the other a bad one (a parse error, and a list entry refused by
 * runtime_build()); each result must be its own.
 */
struct racer {
	const char *text;
	int	    want, rounds, wrong;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	int	      i;

	config_errors_to_log(1); /* this thread's errors: to the log */
	for (i = 0; i < r->rounds; i++)
		if (builds(r->text) != r->want)
			r->wrong++;
	return NULL;
}

static void
concurrent(void)
{
	struct racer good = { "hostname = \"a.example\"\nlist \"l\" { type = "
			      "client\n entries = {\"192.0.2.1\"} }\n",
		1, 200, 0 };
	struct racer bad = { "list \"l\" { type = client\n entries = "
			     "{\"300.0.0.1\"} }\nthis is { not\n",
		0, 200, 0 };
	struct racer late = { "list \"l\" { type = client\n entries = "
			      "{\"300.0.0.1\"} }\n",
		0, 200, 0 };
	pthread_t    a, b, c;

	pthread_create(&a, NULL, race, &good);
	pthread_create(&b, NULL, race, &bad);
	pthread_create(&c, NULL, race, &late);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_join(c, NULL);
	ok(good.wrong == 0,
	    "concurrent loads: the good one always builds (%d "
	    "wrong)",
	    good.wrong);
	ok(bad.wrong == 0,
	    "concurrent loads: the parse error always fails "
	    "(%d wrong)",
	    bad.wrong);
	ok(late.wrong == 0,
	    "concurrent loads: the build error always fails "
	    "(%d wrong)",
	    late.wrong);
	ok(builds("hostname = \"b.example\"\n"),
	    "the main thread's count is its own afterwards");
}

int
main(void)
{
	struct config	       *cf;
	struct config_overrides ov;
	long			v;
	size_t			i;

	/* Units. */
	ok(limit_parse_value(UNIT_BYTES, "10k", &v) == 0 && v == 10240, "10k");
	ok(limit_parse_value(UNIT_BYTES, "50M", &v) == 0 && v == 52428800,
	    "50M");
	ok(limit_parse_value(UNIT_BYTES, "1G", &v) == 0 && v == 1073741824L,
	    "1G");
	ok(limit_parse_value(UNIT_SECONDS, "5m", &v) == 0 && v == 300, "5m");
	ok(limit_parse_value(UNIT_SECONDS, "2h", &v) == 0 && v == 7200, "2h");
	ok(limit_parse_value(UNIT_SECONDS, "30s", &v) == 0 && v == 30, "30s");
	ok(limit_parse_value(UNIT_MSEC, "250ms", &v) == 0 && v == 250, "250ms");
	ok(limit_parse_value(UNIT_MSEC, "2s", &v) == 0 && v == 2000, "2s ms");
	ok(limit_parse_value(UNIT_COUNT, "12", &v) == 0 && v == 12, "count");
	ok(limit_parse_value(UNIT_COUNT, "12k", &v) == -1, "count no suffix");
	ok(limit_parse_value(UNIT_BYTES, "-1", &v) == -1, "negative");
	ok(limit_parse_value(UNIT_BYTES, "", &v) == -1, "empty");
	ok(limit_parse_value(UNIT_BYTES, "10x", &v) == -1, "bad suffix");
	ok(limit_parse_value(UNIT_BYTES, "99999999999999999999", &v) == -1,
	    "overflow");

	/* Every default lies within its own bounds. */
	for (i = 0; i < LIM_COUNT; i++)
		ok(limit_defs[i].def >= limit_defs[i].min &&
			limit_defs[i].def <= limit_defs[i].max &&
			limit_defs[i].doc != NULL,
		    "default of %s within bounds", limit_defs[i].name);

	/* Defaults without a file. */
	memset(&ov, 0, sizeof(ov));
	cf = config_load(NULL, &ov);
	ok(cf != NULL, "built-in defaults load");
	if (cf != NULL) {
		is_int(cf->nlisteners, 1, "one default listener");
		is_str(
		    cf->listeners[0].spec, "127.0.0.1:10025", "default listen");
		is_str(cf->upstream_spec, "127.0.0.1:25", "default upstream");
		is_int(LIMIT(cf, MAX_MESSAGE_SIZE), 50L * 1024 * 1024,
		    "default max_message_size");
		is_int(cf->bare_newline, BARE_REJECT, "bare LF refused");
		is_int(cf->reverse_dns, 1, "reverse_dns on by default");
		config_free(cf);
	}

	/* Overrides. */
	ov.listen[0] = "127.0.0.1:2600";
	ov.listen[1] = "[::1]:2601";
	ov.nlisten = 2;
	ov.upstream = "127.0.0.1:2525";
	cf = config_load(NULL, &ov);
	ok(cf != NULL && cf->nlisteners == 2 &&
		strcmp(cf->upstream_spec, "127.0.0.1:2525") == 0,
	    "command line overrides");
	config_free(cf);

	/* A complete file. */
	cf = load("hostname = \"mx.example.test\"\n"
		  "upstream = \"127.0.0.1:2525\"\n"
		  "max_message_size = 10M\n"
		  "command_timeout = 2m\n"
		  "bare_newline = normalize\n"
		  "reverse_dns = no\n"
		  "listen \"127.0.0.1:2526\" {\n"
		  "  proxy_protocol = v2\n"
		  "  proxy_trusted = {\"127.0.0.0/8\", \"::1\"}\n"
		  "}\n"
		  "filter \"test\" { delay_stage = \"rcpt\" delay_ms = 5 }\n");
	ok(cf != NULL, "full file loads");
	if (cf != NULL) {
		is_str(cf->hostname, "mx.example.test", "hostname");
		is_int(LIMIT(cf, MAX_MESSAGE_SIZE), 10L * 1024 * 1024, "10M");
		is_int(LIMIT(cf, COMMAND_TIMEOUT), 120, "2m");
		is_int(cf->bare_newline, BARE_NORMALIZE, "normalize");
		is_int(cf->reverse_dns, 0, "reverse_dns = no");
		is_int(cf->listeners[0].proxy_protocol, PROXY_PROTO_V2, "v2");
		is_int(cf->listeners[0].ntrusted, 2, "two trusted networks");
		is_int(cf->nfilters, 1, "one filter");
		is_str(filter_conf_get(&cf->filters[0], "delay_ms"), "5",
		    "filter option, free-form");
		is_str(cf->filters[0].type, "test", "filter type = its name");
		config_free(cf);
	}

	/* Errors (each prints file:line: reason on stderr). */
	ok(load("max_recipients = 0\n") == NULL, "below minimum refused");
	ok(load("max_recipients = 1000001\n") == NULL, "above maximum refused");
	ok(load("max_message_size = lots\n") == NULL, "garbage value refused");
	ok(load("no_such_option = 1\n") == NULL, "unknown option refused");
	ok(load("bare_newline = maybe\n") == NULL, "bad keyword refused");
	ok(load("upstream = \"nowhere\"\n") == NULL, "upstream without port");
	ok(load("listen \"127.0.0.1:1\" { proxy_protocol = v1 }\n") == NULL,
	    "PROXY protocol without trusted sources refused");
	ok(load("listen \"127.0.0.1:1\" { proxy_trusted = {\"300.1.1.1\"} "
		"}\n") == NULL,
	    "bad trusted network refused");
	ok(!builds("filter \"nope\" {}\n"), "unknown filter refused");
	ok(!builds("filter \"test\" { delay_stage = \"later\" }\n"),
	    "bad stage refused");
	ok(!builds("filter \"test\" { no_such_thing = 1 }\n"),
	    "unknown filter option refused");
	ok(!builds("filter \"x\" { type = test\n timeout = \"forever\" }\n"),
	    "bad filter timeout refused");
	ok(!builds("filter \"x\" { load = \"/nonexistent/f.so\" }\n"),
	    "missing shared object refused");
	ok(builds("filter \"a\" { type = test }\nfilter \"b\" { type = "
		  "test\n on_error = continue\n timeout = 2s }\n"),
	    "two instances of one filter");
	ok(!builds("filter \"a\" { on_error = sometimes }\n"),
	    "bad on_error refused");

	/* Policy sections. */
	cf = load("authserv_id = \"mx.test\"\n"
		  "rule \"VIRUS\" { action = reject\n reply = \"554 5.7.1 "
		  "Virus\" }\n"
		  "list \"bad-hosts\" { type = client\n entries = "
		  "{\"192.0.2.0/24\"}\n action = reject }\n"
		  "group \"vip\" { recipients = {\"vip.example\"}\n "
		  "reject_score = 30\n filters = {}\n"
		  "  rule \"VIRUS\" { action = quarantine } }\n");
	ok(cf != NULL, "policy sections load");
	if (cf != NULL) {
		is_str(cf->authserv_id, "mx.test", "authserv_id");
		is_int(cf->nrules, 1, "one global rule");
		is_int(cf->rules[0].action, ACT_REJECT, "rule action");
		is_int(cf->nlists, 1, "one list");
		is_str(cf->lists[0].symbol, "LIST_BAD_HOSTS",
		    "list symbol derived from its name");
		is_int(cf->ngroups, 1, "one group");
		ok(cf->groups[0].threshold[ACT_REJECT] == 30,
		    "group threshold");
		ok(cf->groups[0].threshold[ACT_ADD_HEADER] == SCORE_OFF,
		    "unset threshold");
		ok(cf->groups[0].filters != NULL && cf->groups[0].nfilters == 0,
		    "filters = {} means none");
		is_int(cf->groups[0].nrules, 1, "group rule");
		config_free(cf);
	}
	ok(load("rule \"X\" { action = maybe }\n") == NULL,
	    "bad action refused");
	ok(load("rule \"X\" { action = reject\n reply = \"250 ok\" }\n") ==
		NULL,
	    "a 2xx reply for a rule refused");
	ok(load("rule \"X\" { reply = \"550 4.7.1 mismatch\" }\n") == NULL,
	    "enhanced code of another class refused");
	ok(load("list \"l\" { type = planet\n entries = {\"x\"} }\n") == NULL,
	    "bad list type refused");
	ok(load("list \"l\" { type = client }\n") == NULL,
	    "list without entries refused");
	ok(!builds("list \"l\" { type = client\n entries = {\"300.0.0.1\"} "
		   "}\n"),
	    "bad list entry refused");
	ok(!builds("list \"l\" { type = sender\n file = "
		   "\"/nonexistent/list\" }\n"),
	    "missing list file refused");
	ok(load("group \"g\" { recipients = {\"x.example\"}\n filters = "
		"{\"nope\"} }\n") == NULL,
	    "group naming an unknown filter refused");
	ok(!builds("group \"g\" { reject_score = 3 }\n"),
	    "group without recipients refused");
	ok(builds("group \"out\" { authenticated = true }\n"),
	    "authenticated group may match everything");
	ok(builds("group \"default\" { reject_score = 10 }\n"),
	    "default group without recipients");
	ok(load("spool_directory = \"/nonexistent/dir\"\n") == NULL,
	    "unusable spool directory refused");
	ok(config_load("/nonexistent/moat.conf", NULL) == NULL,
	    "missing file refused");
	concurrent();
	return tap_done();
}
