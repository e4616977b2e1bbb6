/*
 * hdredit.h - header section rewriting at end of message: milter-style
 * add/change/delete of header fields, removal of forged
 * Authentication-Results (RFC 8601 §5), and formatting of new fields with
 * sanitised, folded values (RFC 5322 §2.2, §2.2.3, §2.1.1 line limits).
 *
 * Messages are in wire form: CRLF lines, dot-stuffed (RFC 5321 §4.5.2).
 * New content never starts a line with '.', so it needs no stuffing.
 *
 * Pure functions (no I/O, no global state), thread-safe; a struct
 * hdr_edits belongs to one transaction. Strings passed in are copied;
 * strings returned are malloc'd and owned by the caller.
 */
#ifndef MOAT_HDREDIT_H
#define MOAT_HDREDIT_H

#include <stddef.h>

struct evbuffer; /* libevent <event2/buffer.h> */

#define HDR_NAME_MAX  76   /* longest name we write: "Name: x" fits 78 */
#define HDR_FOLD_COL  78   /* RFC 5322 §2.1.1 SHOULD, in octets */
#define HDR_LINE_MAX  998  /* RFC 5322 §2.1.1 MUST, octets before CRLF */
#define HDR_VALUE_MAX 8192 /* maxlen used for added and changed fields */

/* 1 if name is a valid field name for us to write: 1..76 chars of
 * [A-Za-z0-9-], not starting with '-'. */
int hdr_name_ok(const char *name);

/*
 * Format one field "Name: value\r\n", malloc'd, with the value sanitised:
 * CR, LF, NUL and other C0 controls (except TAB) and DEL become a space;
 * a run of whitespace that holds such a space collapses to one space;
 * leading and trailing whitespace is trimmed; bytes >= 0x80 are kept only
 * where they form valid UTF-8 (shortest form, no surrogates, <= U+10FFFF),
 * every other such byte becomes '?'. The sanitised value is then cut to
 * maxlen bytes (at a UTF-8 boundary; maxlen 0 gives an empty value) and
 * folded (CRLF + TAB in place of the whitespace run) so that no line
 * exceeds 78 octets where possible: the first word stays on the "Name:"
 * line, a word longer than a line stays on its own line, unsplit, unless
 * its line would pass 998 octets; then it is split (at a UTF-8 boundary)
 * with CRLF TAB. An empty value gives "Name:\r\n". Every line but the
 * first starts with TAB followed by a non-whitespace byte.
 * Returns NULL if the name is not hdr_name_ok.
 */
char *hdr_format(const char *name, const char *value, size_t maxlen);
/* The same for vlen bytes of value, which may hold NUL. */
char *hdr_formatn(
    const char *name, const char *value, size_t vlen, size_t maxlen);

enum hdr_edit_op { HDR_ADD_TOP = 0, HDR_APPEND, HDR_CHANGE, HDR_DELETE_AR_ID };

struct hdr_edit {
	enum hdr_edit_op op;
	char		*name;	/* HDR_ADD_TOP, HDR_APPEND, HDR_CHANGE */
	unsigned	 index; /* HDR_CHANGE: 1-based occurrence of name;
				   0 = every occurrence */
	char *value; /* NULL with HDR_CHANGE = delete; for HDR_DELETE_AR_ID:
			the authserv-id */
};

struct hdr_edits {
	struct hdr_edit *v;
	size_t		 n, cap;
};

void hdr_edits_init(struct hdr_edits *);
/*
 * Record an edit. Copies its arguments (a NULL value of an add/append is
 * taken as ""). -1 if the name (or the authserv-id) is invalid: nothing
 * added.
 *
 * hdr_edit_add: new field at the very top, in the order added (first
 * added = topmost). hdr_edit_append: new field at the end of the header
 * section. hdr_edit_change: value NULL deletes; occurrences are counted
 * in the original header section (what every filter saw), names compared
 * case-insensitively; a change of a missing occurrence does nothing (it
 * does not add, unlike sendmail); added fields cannot be changed.
 * hdr_edit_delete_ar: delete every Authentication-Results field whose
 * authserv-id equals id (case-insensitive), RFC 8601 §5: a border MTA
 * removes results that claim its own id.
 */
int hdr_edit_add(struct hdr_edits *, const char *name, const char *value);
int hdr_edit_append(struct hdr_edits *, const char *name, const char *value);
int hdr_edit_change(
    struct hdr_edits *, const char *name, unsigned index, const char *value);
int  hdr_edit_delete_ar(struct hdr_edits *, const char *authserv_id);
void hdr_edits_free(struct hdr_edits *);

/*
 * Find the end of the header section in a wire-form message prefix: the
 * offset just past the empty line that ends it ("\r\n\r\n" -> offset after
 * it; a message starting with "\r\n" -> 2), or -1 if not found within len
 * (then the caller treats everything up to the end of message as header).
 * Only CRLF counts as a line end.
 */
long hdr_section_end(const char *msg, size_t len);

/*
 * Rewrite a header section. hdr/len is the wire-form header section as
 * received (fields ending CRLF, possibly folded, possibly followed by the
 * empty line "\r\n"). Appended to out: HDR_ADD_TOP fields (in order
 * added), the original fields with changes and deletes applied (a changed
 * field keeps its position and is hdr_format(edit name, value,
 * HDR_VALUE_MAX)), the HDR_APPEND fields, then the empty line and whatever
 * followed it, byte for byte. Edits touching the same field apply in the
 * order they were made; an Authentication-Results deletion tests the
 * field's value as it is at that point. Untouched fields, malformed lines
 * (no name and colon, a continuation line with nothing to continue) and
 * their continuation lines are copied exactly, dot-stuffing included. If
 * the last line lacks its CRLF and new fields follow it, a CRLF is added.
 * Returns 0, or -1 if the evbuffer could not grow (out then holds part
 * of the output).
 */
int hdr_edits_apply(const struct hdr_edits *, const char *hdr, size_t len,
    struct evbuffer *out);

/*
 * RFC 8601 §2.2: does this Authentication-Results field value (raw,
 * possibly folded, with CFWS before the id; comments nest) carry
 * authserv-id `id`? The authserv-id is the first token (RFC 2045 token,
 * 8-bit bytes allowed for RFC 8616, or quoted-string) of the value;
 * compared case-insensitively and whole (a prefix is no match). What
 * follows the token is not checked, so a malformed field that claims the
 * id still matches (deleting it is the safe side).
 */
int ar_has_authserv_id(const char *value, size_t len, const char *id);

/*
 * Build an Authentication-Results value: "authserv-id; res1; res2" or
 * "authserv-id; none" when no result is left (RFC 8601 §2.2). Each result
 * is a preformatted method clause like "spf=pass smtp.mailfrom=a.example".
 * Clauses are sanitised like hdr_format values; a clause is cut at its
 * first ';' outside comments and quoted-strings, an unterminated
 * quoted-string or comment is closed, and a clause left empty is skipped.
 * The id is sanitised the same way. malloc'd; NULL if the id is NULL or
 * empty after sanitising. To be passed to hdr_format / hdr_edit_add, which
 * fold.
 */
char *ar_build(const char *authserv_id, const char *const *results, size_t n);

#endif
