/*
 * test_scanproto.c - filters/av/scanproto.c: requests, reply round trips,
 * escaping, limits, and every malformed reply the strict parser must
 * refuse.
 *
 * Single-threaded; the large structs are static.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanproto.h"
#include "tap.h"

static struct scan_reply in, out;
static char		 buf[SCAN_REPLY_MAX + 64];

/* Parse a C string; returns 0/-1 and leaves why in *why. */
static int
parse(const char *s, const char **why)
{
	return scan_reply_parse(s, strlen(s), &out, why);
}

static void
bad(const char *s, const char *what)
{
	const char *why = NULL;

	if (!ok(parse(s, &why) == -1 && why != NULL, "refused: %s", what))
		printf("#   accepted %s", s);
}

static void
good(const char *s, const char *what)
{
	const char *why = NULL;

	if (!ok(parse(s, &why) == 0, "accepted: %s", what))
		printf("#   why: %s\n", why ? why : "(null)");
}

static size_t
roundtrip(void)
{
	const char *why = NULL;
	size_t	    n;

	n = scan_reply_format(&in, buf, SCAN_REPLY_MAX);
	if (scan_reply_parse(buf, n, &out, &why) < 0) {
		printf("# round trip refused: %s\n%s", why, buf);
		return 0;
	}
	return n;
}

static void
test_requests(void)
{
	struct scan_request req, got;

	ok(sizeof(struct scan_request) == 32, "request is 32 bytes");
	is_int(
	    scan_request_init(&req, SCAN_OP_SCAN, 42, 1000, SCAN_F_DOTSTUFFED),
	    0, "init SCAN");
	ok(req.magic == SCAN_MAGIC && req.version == SCAN_PROTO_VERSION &&
		req.op == SCAN_OP_SCAN && req.id == 42 && req.length == 1000 &&
		req.flags == SCAN_F_DOTSTUFFED && req.reserved == 0,
	    "init fills every field");
	is_int(scan_request_check(&req, sizeof(req), &got), 0, "check SCAN");
	ok(memcmp(&req, &got, sizeof(req)) == 0, "check copies the request");
	is_int(scan_request_init(&req, SCAN_OP_PING, 7, 0, 0), 0, "init PING");
	is_int(scan_request_check(&req, sizeof(req), &got), 0, "check PING");
	is_int(scan_request_init(&req, (enum scan_op)3, 1, 0, 0), -1,
	    "init: unknown op");
	is_int(scan_request_init(&req, SCAN_OP_SCAN, 1, 0, 0x2), -1,
	    "init: unknown flag");

	scan_request_init(&req, SCAN_OP_SCAN, 1, 10, 0);
	is_int(scan_request_check(&req, sizeof(req) - 1, &got), -1,
	    "check: short");
	is_int(
	    scan_request_check(&req, sizeof(req) + 1, &got), -1, "check: long");
	req.magic ^= 1;
	is_int(scan_request_check(&req, sizeof(req), &got), -1,
	    "check: bad magic");
	req.magic ^= 1;
	req.version = 2;
	is_int(scan_request_check(&req, sizeof(req), &got), -1,
	    "check: other version");
	req.version = SCAN_PROTO_VERSION;
	req.op = 0;
	is_int(scan_request_check(&req, sizeof(req), &got), -1, "check: op 0");
	req.op = 3;
	is_int(scan_request_check(&req, sizeof(req), &got), -1, "check: op 3");
	req.op = SCAN_OP_SCAN;
	req.flags = 0x80000000u;
	is_int(scan_request_check(&req, sizeof(req), &got), -1,
	    "check: unknown flag");
	req.flags = 0;
	req.reserved = 1;
	is_int(scan_request_check(&req, sizeof(req), &got), -1,
	    "check: reserved not zero");
}

static void
test_status_names(void)
{
	is_str(scan_status_name(SCAN_CLEAN), "clean", "status clean");
	is_str(scan_status_name(SCAN_INFECTED), "infected", "status infected");
	is_str(scan_status_name(SCAN_INCOMPLETE), "incomplete",
	    "status incomplete");
	is_str(scan_status_name(SCAN_ERROR), "error", "status error");
	is_str(scan_status_name(SCAN_BUSY), "busy", "status busy");
	is_str(scan_status_name(SCAN_NOTREADY), "notready", "status notready");
	is_str(scan_status_name((enum scan_status)99), "invalid",
	    "status out of range");
}

static void
test_roundtrips(void)
{
	size_t n;

	memset(&in, 0, sizeof(in));
	in.id = 18446744073709551615ull;
	in.status = SCAN_CLEAN;
	in.usec = 1234;
	in.signatures = 3;
	in.generation = 1;
	n = roundtrip();
	ok(n > 0, "clean reply round trip");
	is_str(buf, "MSCN1 18446744073709551615 clean\ntime 1234\nengine 3 1\n",
	    "clean reply text");
	ok(out.id == in.id && out.status == SCAN_CLEAN && out.usec == 1234 &&
		out.signatures == 3 && out.generation == 1 &&
		out.nvirus + out.nheur + out.nlimit + out.nfiles == 0,
	    "clean reply fields");

	memset(&in, 0, sizeof(in));
	in.id = 5;
	in.status = SCAN_INFECTED;
	in.nvirus = 2;
	strcpy(in.virus[0], "Moat.Test.Marker.UNOFFICIAL");
	strcpy(in.virus[1], "Eicar-Test-Signature");
	in.nheur = 1;
	strcpy(in.heur[0], "Heuristics.Encrypted.Zip");
	in.nlimit = 1;
	strcpy(in.limit[0], "Heuristics.Limits.Exceeded.MaxFileSize");
	in.nfiles = 3;
	in.files[0] = (struct scan_file){ 0, 1000, "MAIL", "", 0 };
	in.files[1] = (struct scan_file){ 1, 300, "ZIP", "att ach%.zip", 1 };
	in.files[2] = (struct scan_file){ 2, 68, "TEXT_ASCII",
		"\xc3\xa9t\xc3\xa9\t.txt", 1 };
	n = roundtrip();
	ok(n > 0, "infected reply round trip");
	ok(strstr(buf, "file 1 300 ZIP att%20ach%25.zip\n") != NULL,
	    "space and %% escaped");
	ok(strstr(buf, "file 2 68 TEXT_ASCII %C3%A9t%C3%A9%09.txt\n") != NULL,
	    "8-bit and control bytes escaped");
	ok(strstr(buf, "file 0 1000 MAIL -\n") != NULL, "no name is -");
	is_int(out.status, SCAN_INFECTED, "status infected");
	is_int(out.nvirus, 2, "two virus names");
	is_str(out.virus[0], "Moat.Test.Marker.UNOFFICIAL", "virus 0");
	is_str(out.virus[1], "Eicar-Test-Signature", "virus 1");
	is_int(out.nheur, 1, "one heuristic");
	is_str(out.heur[0], "Heuristics.Encrypted.Zip", "heuristic name");
	is_int(out.nlimit, 1, "one limit");
	is_str(out.limit[0], "Heuristics.Limits.Exceeded.MaxFileSize",
	    "limit name");
	is_int(out.nfiles, 3, "three files");
	ok(!out.files[0].has_name && out.files[0].name[0] == '\0',
	    "file 0 without a name");
	is_str(out.files[1].name, "att ach%.zip", "file name unescaped");
	ok(out.files[1].has_name && out.files[1].depth == 1 &&
		out.files[1].size == 300,
	    "file 1 depth, size");
	is_str(out.files[1].type, "ZIP", "file 1 type");
	is_str(out.files[2].name, "\xc3\xa9t\xc3\xa9\t.txt",
	    "8-bit name unescaped");
	is_int(out.files_dropped, 0, "nothing dropped");

	/* A file literally called "-". */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_CLEAN;
	in.nfiles = 1;
	in.files[0] = (struct scan_file){ 1, 1, "TEXT_ASCII", "-", 1 };
	ok(roundtrip() > 0 && strstr(buf, " %2D\n") != NULL &&
		out.files[0].has_name && strcmp(out.files[0].name, "-") == 0,
	    "a file named - is sent as %%2D");

	/* Names with bad bytes are escaped, never unescaped. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_INFECTED;
	in.nvirus = 1;
	strcpy(in.virus[0], "Bad Name\n\x80");
	ok(roundtrip() > 0, "name with space/control round trip");
	is_str(out.virus[0], "Bad%20Name%0A%80", "name escaped, kept escaped");

	/* Error text with control bytes and spaces. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_ERROR;
	strcpy(in.error, "Can't  map\tfile ");
	ok(roundtrip() > 0, "error reply round trip");
	is_str(out.error, "Can't  map?file ", "error text: controls -> ?");
	is_int(out.status, SCAN_ERROR, "status error");

	memset(&in, 0, sizeof(in));
	in.status = SCAN_NOTREADY;
	strcpy(in.error, "engine loading");
	ok(roundtrip() > 0 && out.status == SCAN_NOTREADY &&
		strcmp(out.error, "engine loading") == 0,
	    "notready reply");
	in.status = SCAN_BUSY;
	strcpy(in.error, "queue full");
	ok(roundtrip() > 0 && out.status == SCAN_BUSY, "busy reply");
	memset(&in, 0, sizeof(in));
	in.status = SCAN_INCOMPLETE;
	in.nlimit = 1;
	strcpy(in.limit[0], "Heuristics.Limits.Exceeded.MaxRecursion");
	ok(roundtrip() > 0 && out.status == SCAN_INCOMPLETE,
	    "incomplete reply");
}

static void
test_limits(void)
{
	unsigned i;
	size_t	 n;

	/* Names at the limits. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_INFECTED;
	in.nvirus = SCAN_NAMES_MAX + 5;
	in.nheur = SCAN_NAMES_MAX;
	in.nlimit = SCAN_NAMES_MAX;
	for (i = 0; i < SCAN_NAMES_MAX; i++) {
		memset(in.virus[i], 'v', SCAN_NAME_MAX);
		memset(in.heur[i], 'h', SCAN_NAME_MAX);
		memset(in.limit[i], 'l', SCAN_NAME_MAX);
	}
	in.nfiles = SCAN_FILES_MAX;
	for (i = 0; i < SCAN_FILES_MAX; i++) {
		in.files[i].depth = i;
		in.files[i].size = 1;
		memset(in.files[i].type, 'T', SCAN_TYPE_MAX);
		memset(in.files[i].name, ' ', SCAN_FNAME_MAX);
		in.files[i].has_name = 1;
	}
	in.files_dropped = 10;
	n = roundtrip();
	ok(n > 0 && n <= SCAN_REPLY_MAX, "maximal reply fits (%zu bytes)", n);
	is_int(out.nvirus, SCAN_NAMES_MAX, "virus names cut at the limit");
	is_int(out.nheur, SCAN_NAMES_MAX, "heuristic names at the limit");
	is_int(out.nlimit, SCAN_NAMES_MAX, "limit names at the limit");
	ok(strlen(out.virus[0]) == SCAN_NAME_MAX, "name of SCAN_NAME_MAX");
	ok(out.nfiles > 0 && out.nfiles < SCAN_FILES_MAX,
	    "files that do not fit are left out (%u kept)", out.nfiles);
	is_int(out.files_dropped, 10 + SCAN_FILES_MAX - out.nfiles,
	    "files_dropped counts them");
	ok(strlen(out.files[0].name) == SCAN_FNAME_MAX,
	    "file name of SCAN_FNAME_MAX");
	ok(strlen(out.files[0].type) == SCAN_TYPE_MAX, "type of SCAN_TYPE_MAX");

	/* Long names are cut at whole escapes. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_INFECTED;
	in.nvirus = 1;
	memset(in.virus[0], '\x01', SCAN_NAME_MAX);
	ok(roundtrip() > 0 && strlen(out.virus[0]) == 126 &&
		strncmp(out.virus[0], "%01%01", 6) == 0,
	    "escaped name cut at a whole escape");

	/* Many small files: the ones past SCAN_FILES_MAX are counted. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_CLEAN;
	in.nfiles = SCAN_FILES_MAX + 3; /* caller's count beyond the array */
	for (i = 0; i < SCAN_FILES_MAX; i++)
		in.files[i] = (struct scan_file){ 1, 2, "ZIP", "a", 1 };
	ok(roundtrip() > 0 && out.nfiles == SCAN_FILES_MAX &&
		out.files_dropped == 3,
	    "nfiles beyond the array becomes files_dropped");

	/* A small buffer: whole lines only, still parseable. */
	memset(&in, 0, sizeof(in));
	in.status = SCAN_CLEAN;
	n = scan_reply_format(&in, buf, 20);
	ok(n > 0 && n < 20 && scan_reply_parse(buf, n, &out, NULL) == 0,
	    "small buffer: whole lines only (%zu)", n);
	is_int(scan_reply_format(&in, buf, 5), 0,
	    "buffer too small for the first line");
	is_int(scan_reply_format(&in, buf, 0), 0, "zero buffer");
}

static void
test_parse_edges(void)
{
	char	    big[SCAN_REPLY_MAX + 2];
	const char *why = NULL;
	size_t	    n, i;
	char	    line[600];

	good("MSCN1 0 clean\n", "minimal reply");
	good("MSCN1 1 clean\nfuture-keyword whatever it says\n",
	    "unknown keyword ignored");
	good("MSCN1 1 clean\nfuture\n", "unknown keyword alone");
	good("MSCN1 1 clean\nheuristic Heuristics.Encrypted.Zip\n",
	    "clean with a heuristic");
	good("MSCN1 1 error\nerror x\n", "error of one byte");
	good("MSCN1 1 clean\nfile 0 0 MAIL -\n", "file with no name");
	good("MSCN1 1 clean\nfile 0 0 MAIL %41%6a\n", "lowercase hex escape");
	ok(parse("MSCN1 1 clean\nfile 0 0 MAIL %41%6a\n", &why) == 0 &&
		strcmp(out.files[0].name, "Aj") == 0,
	    "escapes decoded");
	good("MSCN1 1 error\nlimit Heuristics.Limits.Exceeded.MaxScanTime\n"
	     "error scan failed\n",
	    "error with a limit line");
	good("MSCN1 1 infected\nvirus X\nlimit Heuristics.Limits.Exceeded\n",
	    "infected with a limit line");
	good("MSCN1 1 clean\nengine 18446744073709551615 0\n",
	    "engine: uint64 max");
	good("MSCN1 1 clean\ntime 0\n", "time 0");

	bad("", "empty reply");
	bad("\n", "empty line only");
	bad("MSCN1 1 clean", "no final newline");
	bad("MSCN1 1 clean\r\n", "CR line end");
	bad("MSCN2 1 clean\n", "wrong magic word");
	bad("mscn1 1 clean\n", "lowercase magic word");
	bad("MSCN1 1 clean extra\n", "first line with extra field");
	bad("MSCN1 1\n", "first line without status");
	bad("MSCN1  1 clean\n", "double space");
	bad(" MSCN1 1 clean\n", "leading space");
	bad("MSCN1 1 clean \n", "trailing space");
	bad("MSCN1 1 Clean\n", "status case");
	bad("MSCN1 1 dirty\n", "unknown status");
	bad("MSCN1 -1 clean\n", "negative id");
	bad("MSCN1 +1 clean\n", "plus sign");
	bad("MSCN1 01 clean\n", "leading zero");
	bad("MSCN1 0x1 clean\n", "hex id");
	bad("MSCN1 18446744073709551616 clean\n", "id overflow by one");
	bad("MSCN1 99999999999999999999 clean\n", "id overflow, 20 digits");
	bad("MSCN1 000000000000000000001 clean\n", "21 digits");
	bad("MSCN1 1 clean\n\n", "empty line");
	bad("MSCN1 1 clean\ntime\n", "time without value");
	bad("MSCN1 1 clean\ntime 1 2\n", "time with two values");
	bad("MSCN1 1 clean\ntime 1\ntime 2\n", "time twice");
	bad("MSCN1 1 clean\ntime 1a\n", "time not a number");
	bad("MSCN1 1 infected\nvirus\n", "virus without name");
	bad("MSCN1 1 infected\nvirus A B\n", "virus name with space");
	bad("MSCN1 1 clean\nvirus A\n", "clean with a virus line");
	bad("MSCN1 1 infected\n", "infected without a virus line");
	bad("MSCN1 1 error\nvirus A\n", "error with a virus line");
	bad("MSCN1 1 incomplete\n", "incomplete without a limit line");
	bad("MSCN1 1 incomplete\nvirus A\nlimit B\n",
	    "incomplete with a virus line");
	bad("MSCN1 1 clean\nlimit Heuristics.Limits.Exceeded\n",
	    "clean with a limit line");
	bad("MSCN1 1 clean\nheuristic\n", "heuristic without name");
	bad("MSCN1 1 clean\nfile 0 0 MAIL\n", "file with 3 fields");
	bad("MSCN1 1 clean\nfile 0 0 MAIL a b\n", "file name with space");
	bad("MSCN1 1 clean\nfile 4294967296 0 MAIL -\n", "depth over 32 bits");
	bad("MSCN1 1 clean\nfile 0 18446744073709551616 MAIL -\n",
	    "file size overflow");
	bad("MSCN1 1 clean\nfile 0 0 ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 -\n",
	    "type of 33 bytes");
	bad("MSCN1 1 clean\nfile 0 0 MAIL %\n", "lone %");
	bad("MSCN1 1 clean\nfile 0 0 MAIL a%4\n", "% with one digit");
	bad("MSCN1 1 clean\nfile 0 0 MAIL %G0\n", "% with non-hex");
	bad("MSCN1 1 clean\nfile 0 0 MAIL a%00b\n", "%00 in a file name");
	bad("MSCN1 1 clean\nfile -1 0 MAIL -\n", "negative depth");
	bad("MSCN1 1 clean\nengine 1\n", "engine with one number");
	bad("MSCN1 1 clean\nengine 1 2\nengine 1 2\n", "engine twice");
	bad("MSCN1 1 error\nerror\n", "error without text");
	bad("MSCN1 1 error\nerror \n", "error with empty text");
	bad("MSCN1 1 error\nerror a\nerror b\n", "error twice");
	bad("MSCN1 1 clean\nfiles_dropped 1\nfiles_dropped 1\n",
	    "files_dropped twice");
	bad("MSCN1 1 clean\nfiles_dropped x\n", "files_dropped not a number");
	bad("MSCN1 1 clean\nMSCN1 1 clean\n", "second first line");
	bad("MSCN1 1 clean\nfuture \x7f\n", "DEL in an unknown line");
	bad("MSCN1 1 clean\nfuture  x\n", "double space in an unknown line");
	bad("MSCN1 1 clean\n\xc3\xa9\n", "8-bit byte");
	bad("MSCN1 1 clean\ntime\t1\n", "tab separator");
	ok(scan_reply_parse("MSCN1 1 clean\n\0", 15, &out, &why) == -1,
	    "refused: NUL byte");
	ok(scan_reply_parse("MSCN1 1 clean\0\n", 15, &out, &why) == -1,
	    "refused: NUL inside the first line");
	ok(scan_reply_parse("MSCN1 1 clean\n", 0, &out, &why) == -1,
	    "refused: length 0");

	/* Error text of exactly 255 and 256 bytes. */
	strcpy(line, "MSCN1 1 error\nerror ");
	n = strlen(line);
	memset(line + n, 'e', 255);
	strcpy(line + n + 255, "\n");
	good(line, "error text of 255 bytes");
	memset(line + n, 'e', 256);
	strcpy(line + n + 256, "\n");
	bad(line, "error text of 256 bytes");

	/* Names: 127 ok, 128 refused. */
	strcpy(line, "MSCN1 1 infected\nvirus ");
	n = strlen(line);
	memset(line + n, 'v', 127);
	strcpy(line + n + 127, "\n");
	good(line, "name of 127 bytes");
	memset(line + n, 'v', 128);
	strcpy(line + n + 128, "\n");
	bad(line, "name of 128 bytes");

	/* File names: 255 unescaped ok, 256 refused; escaped length counts
	 * after unescaping. */
	strcpy(line, "MSCN1 1 clean\nfile 1 1 ZIP ");
	n = strlen(line);
	memset(line + n, 'f', 255);
	strcpy(line + n + 255, "\n");
	good(line, "file name of 255 bytes");
	memset(line + n, 'f', 256);
	strcpy(line + n + 256, "\n");
	bad(line, "file name of 256 bytes");
	{
		char esc[3 * 256 + 64];

		strcpy(esc, "MSCN1 1 clean\nfile 1 1 ZIP ");
		n = strlen(esc);
		for (i = 0; i < 255; i++)
			memcpy(esc + n + 3 * i, "%20", 3);
		strcpy(esc + n + 3 * 255, "\n");
		good(esc, "escaped file name of 255 bytes");
		memcpy(esc + n + 3 * 255, "%20\n", 5);
		bad(esc, "escaped file name of 256 bytes");
	}

	/* Too many names: invalid. */
	strcpy(big, "MSCN1 1 infected\n");
	for (i = 0; i < SCAN_NAMES_MAX; i++)
		strcat(big, "virus V\n");
	good(big, "SCAN_NAMES_MAX virus lines");
	strcat(big, "virus V\n");
	bad(big, "SCAN_NAMES_MAX + 1 virus lines");
	strcpy(big, "MSCN1 1 clean\n");
	for (i = 0; i <= SCAN_NAMES_MAX; i++)
		strcat(big, "heuristic H\n");
	bad(big, "SCAN_NAMES_MAX + 1 heuristic lines");

	/* Too many file lines: counted. */
	strcpy(big, "MSCN1 1 clean\n");
	for (i = 0; i < SCAN_FILES_MAX + 7; i++)
		strcat(big, "file 1 1 ZIP a\n");
	strcat(big, "files_dropped 18446744073709551615\n");
	ok(parse(big, &why) == 0 && out.nfiles == SCAN_FILES_MAX &&
		out.files_dropped == UINT_MAX,
	    "excess file lines counted, saturating");
	strcpy(big, "MSCN1 1 clean\n");
	for (i = 0; i < SCAN_FILES_MAX + 7; i++)
		strcat(big, "file 1 1 ZIP a\n");
	ok(parse(big, &why) == 0 && out.nfiles == SCAN_FILES_MAX &&
		out.files_dropped == 7,
	    "7 excess file lines counted");
	strcpy(big, "MSCN1 1 clean\n");
	for (i = 0; i < SCAN_FILES_MAX + 7; i++)
		strcat(big,
		    i == SCAN_FILES_MAX + 3 ? "file 1 1 ZIP a b\n"
					    : "file 1 1 ZIP a\n");
	bad(big, "a bad file line beyond the limit");

	/* Total length. */
	strcpy(big, "MSCN1 1 clean\n");
	n = strlen(big);
	while (n + 10 <= SCAN_REPLY_MAX) {
		memcpy(big + n, "future 1\n", 9);
		n += 9;
	}
	memset(big + n, 'x', SCAN_REPLY_MAX - n - 1);
	big[SCAN_REPLY_MAX - 1] = '\n';
	ok(scan_reply_parse(big, SCAN_REPLY_MAX, &out, &why) == 0,
	    "reply of SCAN_REPLY_MAX bytes");
	big[SCAN_REPLY_MAX - 1] = 'x';
	big[SCAN_REPLY_MAX] = '\n';
	ok(scan_reply_parse(big, SCAN_REPLY_MAX + 1, &out, &why) == -1,
	    "refused: SCAN_REPLY_MAX + 1 bytes");

	/* why may be NULL; out is cleared on failure. */
	ok(scan_reply_parse("x\n", 2, &out, NULL) == -1 && out.nvirus == 0,
	    "why may be NULL");
}

int
main(void)
{
	test_requests();
	test_status_names();
	test_roundtrips();
	test_limits();
	test_parse_edges();
	return tap_done();
}
