/*
 * spool.c - message store: an evbuffer up to `threshold` bytes,
 * then an unlinked file in the spool directory (O_TMPFILE where the file
 * system supports it, else mkstemp + unlink).
 *
 * Blocking note: file writes go to the page cache and are done on the
 * loop thread, as Postfix's and OpenSMTPD's queue writes are; only
 * messages above the threshold touch the file system.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spool.h"
#include "util.h"

void
spool_init(struct spool *s, const char *dir, size_t threshold)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->dir = dir;
	s->threshold = threshold;
}

static int
spool_to_file(struct spool *s)
{
	char		      path[4096];
	struct evbuffer_iovec v[16];
	int		      fd, i, n;

	fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(path, sizeof(path), "%s/moat.XXXXXX", s->dir);
		if ((fd = mkostemp(path, O_CLOEXEC)) == -1)
			return -1;
		unlink(path);
	}
	while (s->mem != NULL && evbuffer_get_length(s->mem) > 0) {
		n = evbuffer_peek(s->mem, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n; i++)
			if (write_full(fd, v[i].iov_base, v[i].iov_len) == -1) {
				close(fd);
				return -1;
			}
		for (i = 0; i < n; i++)
			evbuffer_drain(s->mem, v[i].iov_len);
	}
	if (s->mem != NULL) {
		evbuffer_free(s->mem);
		s->mem = NULL;
	}
	s->fd = fd;
	return 0;
}

int
spool_write(struct spool *s, const char *p, size_t n)
{
	if (s->error)
		return -1;
	if (s->fd == -1 && s->len + n > s->threshold &&
	    spool_to_file(s) == -1) {
		s->error = errno ? errno : EIO;
		return -1;
	}
	if (s->fd != -1) {
		if (write_full(s->fd, p, n) == -1) {
			s->error = errno;
			return -1;
		}
	} else {
		if (s->mem == NULL && (s->mem = evbuffer_new()) == NULL)
			fatal("evbuffer_new");
		if (evbuffer_add(s->mem, p, n) == -1)
			fatal("evbuffer_add");
	}
	s->len += n;
	return 0;
}

ssize_t
spool_span(struct spool *s, size_t off, size_t max, const char **p)
{
	struct evbuffer_ptr   ptr;
	struct evbuffer_iovec v;
	ssize_t		      r;

	if (off >= s->len)
		return 0;
	if (max > s->len - off)
		max = s->len - off;
	if (s->fd == -1) {
		if (evbuffer_ptr_set(s->mem, &ptr, off, EVBUFFER_PTR_SET) == -1)
			return -1;
		if (evbuffer_peek(s->mem, -1, &ptr, &v, 1) < 1)
			return -1;
		*p = v.iov_base;
		return v.iov_len < max ? (ssize_t)v.iov_len : (ssize_t)max;
	}
	if (max > SPOOL_SPAN_MAX)
		max = SPOOL_SPAN_MAX;
	if (s->rbuf == NULL)
		s->rbuf = xmalloc(SPOOL_SPAN_MAX);
	do
		r = pread(s->fd, s->rbuf, max, (off_t)off);
	while (r == -1 && errno == EINTR);
	if (r <= 0)
		return -1;
	*p = s->rbuf;
	return r;
}

int
spool_move_to(struct spool *s, struct evbuffer *out, size_t off)
{
	struct evbuffer_file_segment *seg;
	int			      rc;

	if (s->error || off > s->len)
		return -1;
	if (s->fd == -1) {
		if (s->mem == NULL)
			return 0;
		if (off > 0 && evbuffer_drain(s->mem, off) == -1)
			return -1;
		return evbuffer_add_buffer(out, s->mem);
	}
	if (off == s->len)
		return 0;
	/* The segment does not own the fd (no EVBUF_FS_CLOSE_ON_FREE). */
	seg = evbuffer_file_segment_new(s->fd, (ev_off_t)off,
	    (ev_off_t)(s->len - off), EVBUF_FS_DISABLE_LOCKING);
	if (seg == NULL)
		return -1;
	rc = evbuffer_add_file_segment(out, seg, 0, (ev_off_t)(s->len - off));
	evbuffer_file_segment_free(seg);
	return rc;
}

int
spool_reader_fd(struct spool *s)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr   ptr;
	char		      path[64];
	size_t		      off = 0;
	int		      fd, i, n;

	if (s->error) {
		errno = s->error;
		return -1;
	}
	if (s->fd != -1) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	fd = memfd_create("moat-message", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1)
		return -1;
	while (s->mem != NULL && off < s->len) {
		if (evbuffer_ptr_set(s->mem, &ptr, off, EVBUFFER_PTR_SET) == -1)
			goto fail;
		n = evbuffer_peek(s->mem, -1, &ptr, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n; i++) {
			if (write_full(fd, v[i].iov_base, v[i].iov_len) == -1)
				goto fail;
			off += v[i].iov_len;
		}
	}
	if (fcntl(fd, F_ADD_SEALS,
		F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == -1)
		goto fail;
	return fd;
fail:
	i = errno;
	close(fd);
	errno = i;
	return -1;
}

void
spool_free(struct spool *s)
{
	if (s->mem != NULL)
		evbuffer_free(s->mem);
	if (s->fd != -1)
		close(s->fd);
	free(s->rbuf);
	s->mem = NULL;
	s->fd = -1;
	s->rbuf = NULL;
	s->len = 0;
}
