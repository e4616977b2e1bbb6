/*
 * msgview_arena.c - the message view's memory: a bump arena (every
 * string and array of one view, freed at once by msgview_free()) and the
 * growable scratch buffers the builder reuses between parts.
 *
 * Not thread-safe by itself: an arena and a buffer belong to one thread
 * while a view is built; a finished view is only read.
 * Allocation failure aborts (xmalloc), as everywhere in moat.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "msgview_int.h"
#include "util.h"

#define CHUNK_MIN (8u * 1024)
#define CHUNK_MAX (256u * 1024)
#define ALIGN	  (alignof(max_align_t))

struct mv_chunk {
	struct mv_chunk *next;
	size_t		 size;
	max_align_t	 data[];
};

static size_t
round_up(size_t n)
{
	return (n + ALIGN - 1) & ~(ALIGN - 1);
}

void *
mv_alloc(struct mv_arena *a, size_t n)
{
	struct mv_chunk *c;
	size_t		 size;
	void		*r;

	n = round_up(n != 0 ? n : 1);
	if (n > a->left) {
		/* Chunks double with the arena; a big object gets its own. */
		size = a->total < CHUNK_MIN ? CHUNK_MIN : a->total;
		if (size > CHUNK_MAX)
			size = CHUNK_MAX;
		if (n > size / 4) {
			c = xmalloc(sizeof(*c) + n);
			c->size = n;
			a->total += n;
			if (a->head != NULL) {
				/* Keep the current chunk's free space. */
				c->next = a->head->next;
				a->head->next = c;
			} else {
				c->next = NULL;
				a->head = c;
				a->p = NULL;
				a->left = 0;
			}
			return c->data;
		}
		c = xmalloc(sizeof(*c) + size);
		c->size = size;
		c->next = a->head;
		a->head = c;
		a->p = (char *)c->data;
		a->left = size;
		a->total += size;
	}
	r = a->p;
	a->p += n;
	a->left -= n;
	return r;
}

char *
mv_strndup(struct mv_arena *a, const char *s, size_t n)
{
	char *r = mv_alloc(a, n + 1);

	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

void
mv_arena_free(struct mv_arena *a)
{
	struct mv_chunk *c, *next;

	for (c = a->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	memset(a, 0, sizeof(*a));
}

void
mv_buf_reserve(struct mv_buf *b, size_t more)
{
	size_t cap;

	if (b->len + more + 1 <= b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void
mv_buf_add(struct mv_buf *b, const void *p, size_t n)
{
	mv_buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
mv_buf_free(struct mv_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
