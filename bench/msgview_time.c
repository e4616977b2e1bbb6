/*
 * msgview_time.c - how fast msgview_new() builds views (not part of make
 * check; build with `make bench/msgview_time`).
 *
 *	bench/msgview_time DIR|FILE...	time every message, print msgs/s
 *	bench/msgview_time -d FILE	print the view of one message
 *
 * Files are read whole (*.json skipped); a leading mbox "From " line is dropped
 *(the SpamAssassin corpus has one). Each message is built and freed repeatedly
 *for at least one second in all; the time is wall-clock on one thread.
 *Single-threaded.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "msgview.h"
#include "util.h"

struct msg {
	char  *p;
	size_t n;
};

static struct msg *msgs;
static size_t	   nmsgs, capmsgs;

static void
load(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	struct stat st;
	char	   *p, *nl;
	size_t	    n;

	if (f == NULL || fstat(fileno(f), &st) != 0) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return;
	}
	p = xmalloc((size_t)st.st_size + 1);
	n = fread(p, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n >= 5 && memcmp(p, "From ", 5) == 0 &&
	    (nl = memchr(p, '\n', n)) != NULL) {
		n -= (size_t)(nl + 1 - p);
		memmove(p, nl + 1, n);
	}
	if (nmsgs == capmsgs) {
		capmsgs = capmsgs ? capmsgs * 2 : 1024;
		msgs = xrealloc(msgs, capmsgs * sizeof(*msgs));
	}
	msgs[nmsgs].p = p;
	msgs[nmsgs++].n = n;
}

static void
load_path(const char *path)
{
	DIR	      *d = opendir(path);
	struct dirent *e;
	char	       buf[4096];

	if (d == NULL) {
		load(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		/* The corpus keeps a JSON copy of each message: skip it. */
		if (e->d_name[0] == '.' ||
		    (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0))
			continue;
		strfmt(buf, sizeof(buf), "%s/%s", path, e->d_name);
		load(buf);
	}
	closedir(d);
}

static void
dump(const struct msgview *v)
{
	size_t i;

	printf("size %zu hdrsize %zu truncated %#x mime_errors %u\n", v->size,
	    v->hdrsize, v->truncated, v->mime_errors);
	for (i = 0; i < v->nheaders; i++)
		printf(
		    "H %s: [%s]\n", v->headers[i].name, v->headers[i].decoded);
	for (i = 0; i < v->nparts; i++) {
		const struct mv_part *p = &v->parts[i];

		printf("P%zu depth %u parent %u flags %#x %s cs=%s cte=%s "
		       "name=%s raw %zu size %zu text %zu\n",
		    i, p->depth, p->parent, p->flags, p->type,
		    p->charset ? p->charset : "-",
		    p->encoding ? p->encoding : "-",
		    p->filename ? p->filename : "-", p->rawsize, p->size,
		    p->textlen);
		if (p->text != NULL)
			printf("---\n%.*s\n---\n", (int)p->textlen, p->text);
	}
	for (i = 0; i < v->nuris; i++)
		printf("U %#x %s host=%s dom=%s text=%s\n", v->uris[i].flags,
		    v->uris[i].uri, v->uris[i].host ? v->uris[i].host : "-",
		    v->uris[i].domain ? v->uris[i].domain : "-",
		    v->uris[i].text ? v->uris[i].text : "-");
	printf("html parts %u tags %u bad %u img %u area %llu scripts %u "
	       "iframes %u forms %u embeds %u comments %u anchors %u "
	       "text_url %u lowcontrast %u tiny %u text %zu raw %zu title %u "
	       "obfuscation %u\n",
	    v->html.parts, v->html.tags, v->html.bad_tags, v->html.images,
	    (unsigned long long)v->html.image_area, v->html.scripts,
	    v->html.iframes, v->html.forms, v->html.embeds, v->html.comments,
	    v->html.anchors, v->html.anchors_text_url,
	    v->html.font_low_contrast, v->html.font_tiny, v->html.text,
	    v->html.raw, v->html.title, v->html.obfuscation);
}

int
main(int argc, char **argv)
{
	struct msgview *v;
	uint64_t	t0, t;
	size_t i, rounds = 0, bytes = 0, uris = 0, parts = 0, trunc = 0;
	int    a;

	msgview_global_init();
	if (argc == 3 && strcmp(argv[1], "-d") == 0) {
		load(argv[2]);
		if (nmsgs != 1)
			return 1;
		v = msgview_new(msgs[0].p, msgs[0].n, NULL);
		dump(v);
		msgview_free(v);
		return 0;
	}
	for (a = 1; a < argc; a++)
		load_path(argv[a]);
	if (nmsgs == 0) {
		fprintf(stderr, "usage: msgview_time DIR|FILE... | -d FILE\n");
		return 2;
	}
	for (i = 0; i < nmsgs; i++)
		bytes += msgs[i].n;
	/* One pass for the statistics and to warm up. */
	for (i = 0; i < nmsgs; i++) {
		v = msgview_new(msgs[i].p, msgs[i].n, NULL);
		uris += v->nuris;
		parts += v->nparts;
		trunc += v->truncated != 0;
		msgview_free(v);
	}
	t0 = now_usec();
	do {
		for (i = 0; i < nmsgs; i++)
			msgview_free(msgview_new(msgs[i].p, msgs[i].n, NULL));
		rounds++;
		t = now_usec() - t0;
	} while (t < 1000000);
	printf("%zu messages, %.1f KiB average, %zu parts, %zu URIs, %zu "
	       "truncated\n",
	    nmsgs, bytes / 1024.0 / nmsgs, parts, uris, trunc);
	printf("%.0f msgs/s, %.1f us/msg, %.1f MB/s\n",
	    (double)rounds * nmsgs / (t / 1e6), t / ((double)rounds * nmsgs),
	    (double)rounds * bytes / t);
	for (i = 0; i < nmsgs; i++)
		free(msgs[i].p);
	free(msgs);
	return 0;
}
