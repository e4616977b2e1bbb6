/*
 * test_clamd.c - unit tests for the antivirus filter's clamd backend
 * (filters/av/clamd.c): clamd's replies turned into scan results (clean,
 * a virus, a heuristic, a limit, errors, and replies that must be refused
 * because a clamd, or what answers in its place, sent something else), and
 * the clamd address forms.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "tap.h"
#include "clamd.h"
#include "scanproto.h"

static struct scan_reply r;

static int
parse(const char *s)
{
	return clamd_reply_parse(s, strlen(s) + 1, &r);
}

int
main(void)
{
	struct clamd_addr a;
	char		  err[256];

	ok(parse("stream: OK") == 0 && r.status == SCAN_CLEAN &&
		r.nvirus + r.nheur + r.nlimit == 0,
	    "clean");
	ok(clamd_reply_parse("stream: OK\n", 11, &r) == 0 &&
		r.status == SCAN_CLEAN,
	    "clean, newline-terminated (non-z mode)");
	ok(parse("stream: Eicar-Test-Signature FOUND") == 0 &&
		r.status == SCAN_INFECTED && r.nvirus == 1 &&
		strcmp(r.virus[0], "Eicar-Test-Signature") == 0,
	    "virus: name");
	ok(parse("stream: Heuristics.Encrypted.Zip FOUND") == 0 &&
		r.status == SCAN_CLEAN && r.nheur == 1 && r.nvirus == 0 &&
		strcmp(r.heur[0], "Heuristics.Encrypted.Zip") == 0,
	    "heuristic: not a virus, reported as a heuristic");
	ok(parse("stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND") == 0 &&
		r.status == SCAN_INCOMPLETE && r.nlimit == 1,
	    "limit heuristic: incomplete");
	ok(parse("INSTREAM size limit exceeded. ERROR") == 0 &&
		r.status == SCAN_INCOMPLETE && r.nlimit == 1 &&
		strcmp(r.limit[0], "clamd.StreamMaxLength") == 0,
	    "StreamMaxLength: incomplete, never clean");
	ok(parse("stream: Can't allocate memory ERROR") == 0 &&
		r.status == SCAN_ERROR && strstr(r.error, "allocate") != NULL,
	    "error with its text");
	ok(parse("UNKNOWN COMMAND") == -1, "unknown reply refused");
	ok(parse("") == -1, "empty reply refused");
	ok(parse("stream: ") == -1, "nothing after stream: refused");
	ok(parse("stream:  FOUND") == -1, "FOUND without a name refused");
	ok(parse("stream: a b FOUND") == -1, "name with a space refused");
	ok(clamd_reply_parse("stream: O\001K", 10, &r) == -1,
	    "control bytes refused");
	ok(clamd_reply_parse("stream: \xffOK", 11, &r) == -1,
	    "8-bit bytes refused");
	{
		char long_name[400];

		memset(long_name, 'A', sizeof(long_name));
		memcpy(long_name, "stream: ", 8);
		strcpy(long_name + 300, " FOUND");
		ok(parse(long_name) == 0 && r.nvirus == 1 &&
			strlen(r.virus[0]) == SCAN_NAME_MAX,
		    "an overlong name is cut at SCAN_NAME_MAX");
	}

	ok(clamd_addr_parse(
	       "unix:/run/clamav/clamd.ctl", &a, err, sizeof(err)) == 0 &&
		a.sa.ss_family == AF_UNIX &&
		strcmp(((struct sockaddr_un *)&a.sa)->sun_path,
		    "/run/clamav/clamd.ctl") == 0,
	    "address: unix:/path");
	ok(clamd_addr_parse("/tmp/c.sock", &a, err, sizeof(err)) == 0 &&
		a.sa.ss_family == AF_UNIX,
	    "address: /path");
	ok(clamd_addr_parse("127.0.0.1:3310", &a, err, sizeof(err)) == 0 &&
		a.sa.ss_family == AF_INET &&
		ntohs(((struct sockaddr_in *)&a.sa)->sin_port) == 3310,
	    "address: IPv4 and port");
	ok(clamd_addr_parse("[::1]:3310", &a, err, sizeof(err)) == 0 &&
		a.sa.ss_family == AF_INET6,
	    "address: [IPv6]:port");
	ok(clamd_addr_parse("127.0.0.1", &a, err, sizeof(err)) == -1 &&
		strstr(err, "host:port") != NULL,
	    "address: no port refused");
	ok(clamd_addr_parse("[::1]3310", &a, err, sizeof(err)) == -1,
	    "address: bad brackets refused");
	ok(clamd_addr_parse("127.0.0.1:", &a, err, sizeof(err)) == -1,
	    "address: empty port refused");
	{
		char p[200];

		memset(p, 'x', sizeof(p));
		memcpy(p, "unix:/", 6);
		p[sizeof(p) - 1] = '\0';
		ok(clamd_addr_parse(p, &a, err, sizeof(err)) == -1 &&
			strstr(err, "too long") != NULL,
		    "address: overlong socket path refused");
	}
	return tap_done();
}
