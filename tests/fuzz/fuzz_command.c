/*
 * fuzz_command.c - libFuzzer target for proxy/smtp_parse.c: one command
 * line through smtp_parse_command(), then (MAIL/RCPT) smtp_parse_path()
 * and smtp_parse_params() on its arguments, smtp_valid_helo() and
 * smtp_xtext_encode(); aborts when an output breaks the header contract.
 *
 * Single-threaded; the input is copied to a NUL-terminated heap buffer cut
 * at the first NUL, CR or LF, as the line reader would hand it over, so
 * ASan sees any read past the line.
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproxy \
 *	    tests/fuzz/fuzz_command.c proxy/smtp_parse.c -o fuzz_command
 *	./fuzz_command tests/fuzz/corpus/command
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"
#include "fuzz.h"

static int
in_line(const char *p, const char *line, size_t len)
{
	return (p >= line && p <= line + len);
}

static void
check_path(const char *args, unsigned flags)
{
	struct smtp_path  path;
	struct smtp_param params[SMTP_PARAMS_MAX];
	char		 *copy, xt[3 * (SMTP_PATH_MAX + 1) + 1];
	size_t		  alen = strlen(args), mlen, n, i;
	uint64_t	  size;
	int		  r;

	r = smtp_parse_path(args, flags, &path);
	assert(r >= SMTP_PARSE_OK && r < SMTP_PARSE_ECOUNT);
	if (r != SMTP_PARSE_OK) {
		assert(path.rest == NULL && path.mailbox[0] == '\0');
		return;
	}
	mlen = strlen(path.mailbox);
	assert(mlen <= SMTP_PATH_MAX - 2);
	assert(path.rest != NULL && in_line(path.rest, args, alen));
	assert(*path.rest != ' ');
	if (path.is_null) {
		assert(flags & SMTP_PATH_F_NULL_OK);
		assert(mlen == 0 && path.domain == NULL);
	} else if (path.domain == NULL) {
		assert(flags & SMTP_PATH_F_POSTMASTER);
		assert(strcasecmp(path.mailbox, "postmaster") == 0);
	} else {
		assert(path.domain > path.mailbox &&
		    path.domain <= path.mailbox + mlen);
		assert(path.domain[-1] == '@');
		assert(path.domain - path.mailbox - 1 <= SMTP_LOCALPART_MAX);
		assert(strlen(path.domain) <= SMTP_DOMAIN_MAX);
		assert(*path.domain != '\0');
		if (path.domain[0] != '[')
			assert(smtp_valid_helo(path.domain) == 0);
	}
	if (!path.utf8)
		for (i = 0; i < mlen; i++)
			assert((unsigned char)path.mailbox[i] < 0x80);

	r = smtp_xtext_encode(path.mailbox, xt, sizeof(xt));
	assert(r >= 0 && (size_t)r == strlen(xt));
	assert(smtp_valid_xtext(xt, mlen) == 0);

	if ((copy = strdup(path.rest)) == NULL)
		return;
	r = smtp_parse_params(copy, params, SMTP_PARAMS_MAX, &n);
	assert(r >= SMTP_PARSE_OK && r < SMTP_PARSE_ECOUNT);
	if (r == SMTP_PARSE_OK) {
		assert(n <= SMTP_PARAMS_MAX);
		for (i = 0; i < n; i++) {
			assert(params[i].key[0] != '\0');
			assert(strchr(params[i].key, ' ') == NULL);
			assert(params[i].value == NULL ||
			    (params[i].value[0] != '\0' &&
				strchr(params[i].value, ' ') == NULL));
			(void)smtp_param_size(params[i].value, &size);
			(void)smtp_param_body(params[i].value);
			(void)smtp_param_ret(params[i].value);
			(void)smtp_param_notify(params[i].value);
			(void)smtp_param_orcpt(params[i].value);
			(void)smtp_valid_xtext(params[i].value, 100);
		}
	} else
		assert(n == 0);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	char		   *line, *xt;
	size_t		    len, xtsz;
	int		    r;

	if ((line = malloc(size + 1)) == NULL)
		return (0);
	memcpy(line, data, size);
	line[size] = '\0';
	len = strcspn(line, "\r\n");
	line[len] = '\0';
	len = strlen(line);

	r = smtp_parse_command(line, &cmd);
	assert(r == SMTP_PARSE_OK || r == SMTP_PARSE_ESYNTAX);
	assert(cmd.verb >= SMTP_VERB_UNKNOWN && cmd.verb < SMTP_VERB_COUNT);
	assert(cmd.args != NULL && in_line(cmd.args, line, len));
	assert(smtp_verb_name(cmd.verb) != NULL);
	if (r == SMTP_PARSE_ESYNTAX)
		assert(
		    cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT);

	if (r == SMTP_PARSE_OK &&
	    (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)) {
		check_path(cmd.args, SMTP_PATH_F_NULL_OK);
		check_path(cmd.args, SMTP_PATH_F_POSTMASTER);
		check_path(cmd.args,
		    SMTP_PATH_F_NOBRACKETS | SMTP_PATH_F_NULL_OK |
			SMTP_PATH_F_POSTMASTER);
	}
	(void)smtp_valid_helo(cmd.args);
	(void)smtp_valid_helo(line);

	/* Worst case 3 octets per input octet; also try a short buffer. */
	xtsz = 3 * len + 1;
	if ((xt = malloc(xtsz)) != NULL) {
		r = smtp_xtext_encode(line, xt, xtsz);
		assert(r >= 0 && (size_t)r == strlen(xt));
		assert(smtp_valid_xtext(xt, len) == 0);
		r = smtp_xtext_encode(line, xt, len / 2 + 1);
		assert(r == -1 || (size_t)r == strlen(xt));
		free(xt);
	}
	free(line);
	return (0);
}
