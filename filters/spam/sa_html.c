/*
 * sa_html.c - the HTML facts SpamAssassin's HTMLEval reads that the
 * message view does not carry, from a small tag scanner over each
 * text/html part's decoded HTML (the view's raw_text), the way
 * HTML::Parser reports events to Mail::SpamAssassin::HTML:
 *  - per part, per tag name, "inside": start tags +1, end tags -1, never
 *    below 0 (an extra end tag counts in closed_extra instead); a tag
 *    seen at all exists (html_tag_exists, html_tag_balance);
 *  - the comments ("<!--...-->", and "<!...>" that is no <!DOCTYPE>),
 *    the text of each <a> (an <img> inside adds "<img>\n"), the text of
 *    each <title> (html_text_match).
 * Script and style content is skipped up to its end tag; tags, comments
 * and names are read leniently (HTML 5 §13.2.5 tokenizer states, without
 * character references in tag names).
 *
 * Built once per message on first use, into the caller's scratch; all
 * sizes bounded by the parts (at most SA_HTML_TAGS tag entries).
 * Thread-safe as the scratch it lives in.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "msgview.h"
#include "sa_int.h"
#include "sa_scratch.h"
#include "util.h"

#define SA_HTML_TAGS 4096
#define SA_TAGNAME   32

/* a new string of a kind */
static void
str_open(struct sa_html *h, int kind)
{
	struct sa_hstrs *k = &h->strs[kind];

	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 16;
		k->v = xrealloc(k->v, k->cap * sizeof(*k->v));
	}
	k->v[k->n].off = k->b.len;
	k->v[k->n].len = 0;
	k->n++;
	sa_buf_add(&k->b, "", 0);
}

/* append to the last string of a kind */
static void
str_add(struct sa_html *h, int kind, const char *s, size_t n)
{
	struct sa_hstrs *k = &h->strs[kind];

	sa_buf_add(&k->b, s, n);
	k->v[k->n - 1].len += n;
}

static void
tag_count(struct sa_html *h, unsigned part, const char *name, int num)
{
	size_t i;

	h->events++;
	for (i = h->ntags; i > 0; i--) {
		struct sa_htag *t = &h->tags[i - 1];

		if (t->part != part)
			break;
		if (strcmp(t->name, name) == 0) {
			t->inside += num;
			if (t->inside < 0) {
				t->inside = 0;
				h->closed_extra++;
			}
			return;
		}
	}
	if (h->ntags == SA_HTML_TAGS)
		return;
	if (h->ntags == h->tagcap) {
		h->tagcap = h->tagcap ? h->tagcap * 2 : 64;
		h->tags = xrealloc(h->tags, h->tagcap * sizeof(*h->tags));
	}
	h->tags[h->ntags].part = part;
	strfmt(
	    h->tags[h->ntags].name, sizeof(h->tags[h->ntags].name), "%s", name);
	h->tags[h->ntags].inside = num > 0 ? 1 : 0;
	if (num < 0)
		h->closed_extra++;
	h->ntags++;
}

static const char *
find_ci(const char *p, const char *e, const char *w)
{
	size_t n = strlen(w);

	for (; p + n <= e; p++)
		if (ascii_strncasecmp(p, w, n) == 0)
			return p;
	return NULL;
}

/* text between tags: entities are left as written (the regexes that
   read anchors and titles look at shapes, not at characters) */
static void
text_run(struct sa_html *h, int anchor, int title, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (anchor)
		str_add(h, SA_HT_ANCHOR, s, n);
	if (title)
		str_add(h, SA_HT_TITLE, s, n);
}

static void
scan_part(struct sa_html *h, unsigned part, const char *s, size_t len)
{
	const char *p = s, *e = s + len, *lt, *q;
	int	    anchor = 0, title = 0;

	while (p < e) {
		char   name[SA_TAGNAME];
		size_t n = 0;
		int    end = 0;

		lt = memchr(p, '<', (size_t)(e - p));
		if (lt == NULL) {
			text_run(h, anchor, title, p, (size_t)(e - p));
			break;
		}
		text_run(h, anchor, title, p, (size_t)(lt - p));
		p = lt + 1;
		if (p < e && *p == '!') {
			/* comment or declaration */
			if (p + 2 < e && p[1] == '-' && p[2] == '-') {
				q = find_ci(p + 3, e, "-->");
				q = q != NULL ? q + 3 : e;
			} else {
				q = memchr(p, '>', (size_t)(e - p));
				q = q != NULL ? q + 1 : e;
				if (q - p >= 8 &&
				    ascii_strncasecmp(p, "!doctype", 8) == 0) {
					p = q;
					continue;
				}
			}
			str_open(h, SA_HT_COMMENT);
			str_add(h, SA_HT_COMMENT, lt, (size_t)(q - lt));
			p = q;
			continue;
		}
		if (p < e && *p == '/') {
			end = 1;
			p++;
		}
		if (p >= e || !isalpha((unsigned char)*p)) {
			/* not a tag: the '<' is text */
			text_run(h, anchor, title, lt, (size_t)(p - lt));
			continue;
		}
		while (p < e && !isspace((unsigned char)*p) && *p != '>' &&
		    *p != '/') {
			if (n + 1 < sizeof(name))
				name[n++] =
				    (char)ascii_lower((unsigned char)*p);
			p++;
		}
		name[n] = '\0';
		/* the attributes, quotes honoured, up to '>' */
		{
			char qc = 0;

			while (p < e && (qc || *p != '>')) {
				if (qc)
					qc = *p == qc ? 0 : qc;
				else if ((*p == '"' || *p == '\'') &&
				    isspace((unsigned char)p[-1]) == 0 &&
				    p[-1] == '=')
					qc = *p;
				p++;
			}
			if (p < e)
				p++;
		}
		tag_count(h, part, name, end ? -1 : 1);
		if (strcmp(name, "a") == 0) {
			anchor = !end;
			if (!end)
				str_open(h, SA_HT_ANCHOR);
		} else if (strcmp(name, "title") == 0) {
			title = !end;
			if (!end)
				str_open(h, SA_HT_TITLE);
		} else if (strcmp(name, "img") == 0 && !end && anchor)
			str_add(h, SA_HT_ANCHOR, "<img>\n", 6);
		else if (!end &&
		    (strcmp(name, "script") == 0 ||
			strcmp(name, "style") == 0)) {
			char close[SA_TAGNAME + 2];

			strfmt(close, sizeof(close), "</%s", name);
			q = find_ci(p, e, close);
			p = q != NULL ? q : e;
		}
	}
}

const struct sa_html *
sa_html_facts(struct sa_ctx *c)
{
	struct sa_scratch    *sc = c->sc;
	struct sa_html	     *h = &sc->html;
	const struct msgview *mv = c->mv;
	size_t		      i;

	if (h->gen == sc->gen)
		return h;
	h->gen = sc->gen;
	h->ntags = 0;
	for (i = 0; i < SA_HT_KINDS; i++) {
		h->strs[i].n = 0;
		h->strs[i].b.len = 0;
	}
	h->closed_extra = h->events = 0;
	h->nparts = 0;
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (!(p->flags & MV_PART_HTML) || p->raw_text == NULL)
			continue;
		scan_part(h, (unsigned)i, p->raw_text, p->raw_textlen);
		h->nparts++;
	}
	return h;
}

void
sa_html_free(struct sa_html *h)
{
	size_t i;

	free(h->tags);
	for (i = 0; i < SA_HT_KINDS; i++) {
		free(h->strs[i].v);
		free(h->strs[i].b.s);
	}
}
