/*
 * msgview_stream.c - a read-only, seekable GMimeStream over a caller's
 * buffer, so GMime's parser (persistent mode) neither copies the message
 * nor the bodies of its parts: every part's content stays a substream
 * whose bounds are offsets into the buffer, and msgview.c reads the
 * bytes there directly.
 *
 * The buffer must outlive the stream and its substreams (msgview_new()
 * drops all GMime objects before it returns). Each stream is used by one
 * thread; the GType is registered once, thread-safely, by GLib.
 */
#include <string.h>

#include <gmime/gmime.h>

#include "msgview_stream.h"

typedef struct {
	GMimeStream parent;
	const char *buf;
	gint64	    buflen;
} MvStream;

typedef struct {
	GMimeStreamClass parent_class;
} MvStreamClass;

GType mv_stream_get_type(void);

G_DEFINE_TYPE(MvStream, mv_stream, GMIME_TYPE_STREAM)

static gint64
stream_end(GMimeStream *s)
{
	MvStream *m = (MvStream *)s;

	if (s->bound_end == -1 || s->bound_end > m->buflen)
		return m->buflen;
	return s->bound_end;
}

static ssize_t
mvs_read(GMimeStream *s, char *buf, size_t len)
{
	MvStream *m = (MvStream *)s;
	gint64	  end = stream_end(s), n;

	if (s->position < s->bound_start || s->position >= end)
		return 0;
	n = end - s->position;
	if ((gint64)len < n)
		n = (gint64)len;
	memcpy(buf, m->buf + s->position, (size_t)n);
	s->position += n;
	return (ssize_t)n;
}

static ssize_t
mvs_write(GMimeStream *s, const char *buf, size_t len)
{
	return -1;
}

static int
mvs_flush(GMimeStream *s)
{
	return 0;
}

static int
mvs_close(GMimeStream *s)
{
	return 0;
}

static gboolean
mvs_eos(GMimeStream *s)
{
	return s->position >= stream_end(s);
}

static int
mvs_reset(GMimeStream *s)
{
	s->position = s->bound_start;
	return 0;
}

static gint64
mvs_seek(GMimeStream *s, gint64 offset, GMimeSeekWhence whence)
{
	gint64 end = stream_end(s), real;

	switch (whence) {
	case GMIME_STREAM_SEEK_SET:
		real = s->bound_start + offset;
		break;
	case GMIME_STREAM_SEEK_CUR:
		real = s->position + offset;
		break;
	case GMIME_STREAM_SEEK_END:
		real = end + offset;
		break;
	default:
		return -1;
	}
	if (real < s->bound_start || real > end)
		return -1;
	s->position = real;
	return real;
}

static gint64
mvs_tell(GMimeStream *s)
{
	return s->position;
}

static gint64
mvs_length(GMimeStream *s)
{
	return stream_end(s) - s->bound_start;
}

static GMimeStream *
mvs_substream(GMimeStream *s, gint64 start, gint64 end)
{
	MvStream *m = (MvStream *)s, *sub;

	sub = g_object_new(mv_stream_get_type(), NULL);
	sub->buf = m->buf;
	sub->buflen = m->buflen;
	g_mime_stream_construct((GMimeStream *)sub, start, end);
	return (GMimeStream *)sub;
}

static void
mv_stream_class_init(MvStreamClass *klass)
{
	GMimeStreamClass *sc = GMIME_STREAM_CLASS(klass);

	sc->read = mvs_read;
	sc->write = mvs_write;
	sc->flush = mvs_flush;
	sc->close = mvs_close;
	sc->eos = mvs_eos;
	sc->reset = mvs_reset;
	sc->seek = mvs_seek;
	sc->tell = mvs_tell;
	sc->length = mvs_length;
	sc->substream = mvs_substream;
}

static void
mv_stream_init(MvStream *m)
{
}

GMimeStream *
mv_stream_new(const char *buf, size_t len)
{
	MvStream *m = g_object_new(mv_stream_get_type(), NULL);

	m->buf = buf;
	m->buflen = (gint64)len;
	g_mime_stream_construct((GMimeStream *)m, 0, (gint64)len);
	return (GMimeStream *)m;
}

int
mv_stream_span(GMimeStream *s, const char *buf, const char **p, size_t *n)
{
	MvStream *m;
	gint64	  end;

	if (s == NULL || !G_TYPE_CHECK_INSTANCE_TYPE(s, mv_stream_get_type()))
		return -1;
	m = (MvStream *)s;
	if (m->buf != buf)
		return -1;
	end = stream_end(s);
	if (s->bound_start < 0 || s->bound_start > end)
		return -1;
	*p = m->buf + s->bound_start;
	*n = (size_t)(end - s->bound_start);
	return 0;
}
