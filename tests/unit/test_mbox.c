/*
 * test_mbox.c - tools/mbox.c: separator lines, splitting (LF and CRLF,
 * the blank line before a separator, body lines that start with "From "
 * but are no separator), mboxrd unquoting.
 */
#include <string.h>

#include "mbox.h"
#include "tap.h"

static int
split(const char *buf, const char **msgs, size_t *lens, int max)
{
	struct mbox_iter it;
	int		 n = 0;

	mbox_init(&it, buf, strlen(buf));
	while (n < max && mbox_next(&it, &msgs[n], &lens[n]))
		n++;
	return n;
}

int
main(void)
{
	const char *m[8];
	size_t	    l[8], n;
	char	    out[256];
	const char *box;

	ok(mbox_from_line(
	       "From alice@example.com Mon Jan  1 10:00:00 2024", 47),
	    "asctime separator");
	ok(mbox_from_line("From MAILER-DAEMON Fri Jul  8 12:08:34 2011", 43),
	    "MAILER-DAEMON separator");
	ok(mbox_from_line("From 12345@xx Sat Sep 14 2002 09:01", 35),
	    "date parts in another order");
	ok(!mbox_from_line("From here on, we will talk about 2024", 37),
	    "prose without a time: no separator");
	ok(!mbox_from_line("From: alice@example.com", 23), "a From: field");
	ok(!mbox_from_line("From  x 10:00 2024", 18), "no sender");
	ok(!mbox_from_line("From", 4), "too short");

	box = "From a@b Mon Jan  1 10:00:00 2024\n"
	      "Subject: one\n"
	      "\n"
	      "body one\n"
	      ">From the start\n"
	      "From the desk of nobody\n"
	      "\n"
	      "From b@c Tue Jan  2 11:00:00 2024\n"
	      "Subject: two\n"
	      "\n"
	      ">>From quoted twice\n";
	ok(mbox_is_mbox(box, strlen(box)), "an mbox");
	ok(!mbox_is_mbox("Subject: x\n\nbody\n", 17), "a plain message");
	is_int(split(box, m, l, 8), 2, "two messages");
	is_mem(m[0], l[0],
	    "Subject: one\n\nbody one\n>From the start\nFrom the desk of "
	    "nobody\n",
	    strlen("Subject: one\n\nbody one\n>From the start\nFrom the "
		   "desk of nobody\n"),
	    "first: separator and the blank line before the next dropped");
	is_mem(m[1], l[1], "Subject: two\n\n>>From quoted twice\n",
	    strlen("Subject: two\n\n>>From quoted twice\n"),
	    "second: to the end");
	n = mbox_unquote(m[0], l[0], out);
	is_mem(out, n,
	    "Subject: one\n\nbody one\nFrom the start\nFrom the desk of "
	    "nobody\n",
	    strlen("Subject: one\n\nbody one\nFrom the start\nFrom the desk "
		   "of nobody\n"),
	    "unquote >From");
	n = mbox_unquote(m[1], l[1], out);
	is_mem(out, n, "Subject: two\n\n>From quoted twice\n",
	    strlen("Subject: two\n\n>From quoted twice\n"),
	    "unquote >>From by one level");
	n = mbox_unquote(">Fromage\n>From\n", 15, out);
	is_mem(
	    out, n, ">Fromage\n>From\n", 15, "no unquoting without \"From \"");

	box = "From a@b Mon Jan  1 10:00:00 2024\r\n"
	      "Subject: one\r\n\r\nx\r\n\r\n"
	      "From b@c Tue Jan  2 11:00:00 2024\r\n"
	      "Subject: two\r\n\r\ny";
	is_int(split(box, m, l, 8), 2, "CRLF mbox: two messages");
	is_mem(m[0], l[0], "Subject: one\r\n\r\nx\r\n", 19,
	    "CRLF: blank line before the separator dropped");
	is_mem(m[1], l[1], "Subject: two\r\n\r\ny", 17,
	    "CRLF: last message without a final line end");

	box = "From a@b Mon Jan  1 10:00:00 2024\n"
	      "From b@c Mon Jan  1 10:00:00 2024\n"
	      "\n\n"
	      "From c@d Mon Jan  1 10:00:00 2024\n"
	      "Subject: only\n";
	is_int(split(box, m, l, 8), 1, "empty messages skipped");
	is_mem(m[0], l[0], "Subject: only\n", 14, "... the real one kept");
	is_int(split("", m, l, 8), 0, "empty input: no message");
	is_int(split("Subject: x\n\nno separator\n", m, l, 8), 1,
	    "no separator: the whole buffer");
	return tap_done();
}
