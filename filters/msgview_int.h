/*
 * msgview_int.h - what the pieces of the message view share (not a public
 * interface): the per-view arena, growable scratch buffers, the builder
 * state one msgview_new() call carries through the MIME walk
 * (msgview.c), text decoding (msgview_text.c), HTML rendering
 * (msgview_html.c) and URI extraction (msgview_uri.c).
 *
 * Ownership and threading: a builder and everything it points to belong
 * to the one thread running msgview_new(); the arena moves into the view
 * and is freed by msgview_free(). Scratch buffers are malloc'd and freed
 * when the build ends.
 */
#ifndef MOAT_MSGVIEW_INT_H
#define MOAT_MSGVIEW_INT_H

#include <stddef.h>
#include <stdint.h>

#include "msgview.h"

/* ------------------------------------------------------------ arena */

struct mv_chunk;

/* Bump allocator: many small allocations, one free. */
struct mv_arena {
	struct mv_chunk *head;
	char		*p; /* free space in head */
	size_t		 left;
	size_t		 total; /* bytes of all chunks */
};

void *mv_alloc(struct mv_arena *, size_t);
char *mv_strndup(struct mv_arena *, const char *, size_t);
void  mv_arena_free(struct mv_arena *);

/* ------------------------------------------------------------ buffers */

/* A growable byte buffer (malloc'd); len bytes used, always NUL-ended. */
struct mv_buf {
	char  *p;
	size_t len;
	size_t cap;
};

void mv_buf_reserve(struct mv_buf *, size_t more);
void mv_buf_add(struct mv_buf *, const void *, size_t);
void mv_buf_free(struct mv_buf *);

static inline void
mv_buf_addc(struct mv_buf *b, char c)
{
	if (b->len + 1 >= b->cap)
		mv_buf_reserve(b, 1);
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

/* ------------------------------------------------------------ builder */

struct mv_build {
	struct msgview	     *v;
	struct mv_arena	     *arena;
	struct msgview_limits lim;
	const char	     *msg;
	size_t		      len;

	/* Grown here, copied into the arena when the walk ends. */
	struct mv_part *parts;
	size_t		nparts, partscap;
	struct mv_uri  *uris;
	size_t		nuris, uriscap;
	uint32_t       *uhash; /* open addressing: uri index + 1, 0 empty */
	size_t		uhashcap;

	size_t decoded; /* decoded text bytes kept so far */

	/* Scratch for decoding, charset conversion and rendering. */
	struct mv_buf dec, utf, html, inv, tmp;

	void *gmime_opts; /* GMimeParserOptions * */
};

/* ------------------------------------------------------------ text */

/*
 * Transfer-decode raw[0..rawlen) (a GMimeContentEncoding value) into out,
 * keeping at most `keep` bytes; returns the decoded size of all of it.
 * *cut is set when bytes past `keep` were dropped.
 */
size_t mv_decode(int encoding, const char *raw, size_t rawlen,
    struct mv_buf *out, size_t keep, int *cut);

/* The decoded size of raw[0..rawlen) without keeping any of it. */
size_t mv_decoded_size(
    int encoding, const char *raw, size_t rawlen, struct mv_buf *scratch);

/*
 * Convert in[0..n) from `charset` (NULL: undeclared) to UTF-8 into out
 * (replacing its content; tmp is scratch): CR LF -> LF, NUL and invalid
 * sequences -> U+FFFD. Undeclared or US-ASCII text that is not valid UTF-8 is
 * read as Windows-1252. Returns MV_PART_BAD_CHARSET for an unknown charset
 * (then read as Latin-1), else 0.
 */
unsigned mv_to_utf8(const char *charset, const char *in, size_t n,
    struct mv_buf *out, struct mv_buf *tmp);

/*
 * Append in[0..n) to out as valid UTF-8 (invalid sequences -> U+FFFD);
 * with `lf`, CR LF becomes LF and NUL becomes U+FFFD too.
 */
void mv_utf8_clean(const char *in, size_t n, struct mv_buf *out, int lf);

/* 1 if s[0..n) is valid UTF-8 without NUL. */
int mv_utf8_valid(const char *s, size_t n);

/* ------------------------------------------------------------ HTML */

/*
 * Render the UTF-8 HTML in html[0..n) to visible text into out and its
 * invisible text into inv (replacing their content), add the URIs of its
 * attributes and anchors to the view and sum its counters into
 * b->v->html.
 */
void mv_html_render(struct mv_build *b, const char *html, size_t n,
    struct mv_buf *out, struct mv_buf *inv);
void mv_html_global_init(void);

/* ------------------------------------------------------------ URIs */

/*
 * Add one URI as found (trimmed here): kept if absolute (http, https,
 * ftp, mailto, protocol-relative //host) or schemeless "www."/"ftp.";
 * `text` (or NULL) is an anchor's text.
 */
void mv_uri_add(struct mv_build *, const char *uri, size_t len, unsigned flags,
    const char *text, size_t textlen);

/* Find URIs and e-mail addresses in UTF-8 text and add them. */
void mv_uri_scan_text(
    struct mv_build *, const char *text, size_t len, unsigned flags);

/*
 * The registrable domain of the first URI-like thing in text[0..len)
 * into out (NUL-terminated), or -1 if there is none.
 */
int mv_uri_text_domain(const char *text, size_t len, char *out, size_t outlen);

/*
 * The normalised host of a URI (lower case, A-labels, no final dot,
 * obfuscated IPv4 as a dotted quad, IPv6 without brackets) into host, and
 * its registrable domain into dom; 0, or -1 if no host could be parsed.
 */
int mv_uri_host(const char *uri, size_t len, char *host, size_t hostlen,
    char *dom, size_t domlen);

void mv_uri_global_init(void);

#endif
