/*
 * scand_scan.c - one scan in moat-scand: map the request's descriptor,
 * undo dot-stuffing when asked, run libclamav over the whole message from
 * memory, and turn its callbacks into a scan_reply.
 *
 * libclamav is given CL_SCAN_GENERAL_ALLMATCHES (every signature, not
 * just the first) and always CL_SCAN_HEURISTIC_EXCEEDS_MAX, so an object
 * cut short by a limit reports "Heuristics.Limits.Exceeded.*" instead of
 * passing as clean. Names are sorted by prefix: Heuristics.Limits.Exceeded*
 * is a limit, any other Heuristics.* a heuristic, the rest a virus. Status:
 * infected with any virus name, else incomplete with any limit name, else
 * clean (a heuristic alone is clean with heuristic lines: policy decides);
 * a libclamav error without a virus is error, with cl_strerror's text.
 *
 * One limit libclamav does not report: its unzip cuts a member larger
 * than max_filesize down to max_filesize bytes ("trimming output size")
 * and scans only that, silently. So an inner object whose size reaches
 * max_filesize is counted as Heuristics.Limits.Exceeded.MaxFileSize here
 * (a zip bomb is incomplete, never clean); an object of exactly
 * max_filesize bytes is the only false alarm.
 *
 * The descriptor is mapped MAP_PRIVATE with write access, so unstuffing in
 * place touches only our copy-on-write pages, never the spool. The
 * unstuffing is proxy/dataframe.c in DF_MODE_DATA under DF_REJECT: it
 * never emits more bytes than it has consumed, so writing its output over
 * its input, behind the read position, is safe.
 *
 * Threads: scan_message() runs on the scan threads, many at once against
 * one shared engine; all per-scan state is on the caller's stack and
 * reaches libclamav's callbacks through the scan context pointer.
 */
#include <clamav.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "dataframe.h"
#include "scand.h"

struct scan_ctx {
	struct scan_reply *r;
};

static int
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Add name to a list unless it is there already or the list is full. */
static void
add_name(char (*list)[SCAN_NAME_MAX + 1], unsigned *n, const char *name)
{
	unsigned i;

	for (i = 0; i < *n; i++)
		if (strncmp(list[i], name, SCAN_NAME_MAX) == 0)
			return;
	if (*n >= SCAN_NAMES_MAX)
		return;
	snprintf(list[*n], SCAN_NAME_MAX + 1, "%s", name);
	(*n)++;
}

static void
record_name(struct scan_reply *r, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return;
	if (has_prefix(name, "Heuristics.Limits.Exceeded"))
		add_name(r->limit, &r->nlimit, name);
	else if (has_prefix(name, "Heuristics."))
		add_name(r->heur, &r->nheur, name);
	else
		add_name(r->virus, &r->nvirus, name);
}

static void
cb_virus_found(int fd, const char *virname, void *context)
{
	struct scan_ctx *c = context;

	if (c != NULL)
		record_name(c->r, virname);
}

/*
 * libclamav names the parts it decodes itself (mail bodies, attachments
 * without a file name) after their temporary files, "clamav-<32 hex>.tmp"
 * (sometimes with the directory): that is no file name of the message.
 */
static int
is_tempname(const char *name)
{
	const char *b = strrchr(name, '/');
	size_t	    i;

	b = b != NULL ? b + 1 : name;
	if (strncmp(b, "clamav-", 7) != 0 || strlen(b) != 7 + 32 + 4 ||
	    strcmp(b + 39, ".tmp") != 0)
		return 0;
	for (i = 7; i < 39; i++)
		if (!((b[i] >= '0' && b[i] <= '9') ||
			(b[i] >= 'a' && b[i] <= 'f')))
			return 0;
	return 1;
}

static cl_error_t
cb_file(int fd, const char *type, const char **ancestors, size_t parent_size,
    const char *file_name, size_t file_size, const char *file_buffer,
    uint32_t level, uint32_t attrs, void *context)
{
	struct scan_ctx	 *c = context;
	struct scan_file *f;

	if (c == NULL)
		return CL_CLEAN;
	/* libclamav (1.4) cuts a zip member larger than max_filesize to
	 * max_filesize bytes and scans that much, without an alert. */
	if (level > 0 && file_size >= scand_opts.max_filesize)
		record_name(c->r, "Heuristics.Limits.Exceeded.MaxFileSize");
	if (!scand_opts.files)
		return CL_CLEAN;
	if (c->r->nfiles >= SCAN_FILES_MAX) {
		c->r->files_dropped++;
		return CL_CLEAN;
	}
	f = &c->r->files[c->r->nfiles++];
	f->depth = level;
	f->size = file_size;
	if (type == NULL)
		type = "-";
	if (has_prefix(type, "CL_TYPE_"))
		type += 8;
	snprintf(f->type, sizeof(f->type), "%s", type);
	if (file_name != NULL && file_name[0] != '\0' &&
	    !is_tempname(file_name)) {
		snprintf(f->name, sizeof(f->name), "%s", file_name);
		f->has_name = 1;
	}
	return CL_CLEAN;
}

void
scan_setup_engine(struct cl_engine *e)
{
	cl_engine_set_clcb_virus_found(e, cb_virus_found);
	cl_engine_set_clcb_file_inspection(e, cb_file);
}

static uint64_t
usec_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000 +
	    (uint64_t)((t1.tv_nsec - t0->tv_nsec) / 1000);
}

static void
fail(struct scan_reply *r, enum scan_status st, const char *fmt, const char *a)
{
	r->status = st;
	snprintf(r->error, sizeof(r->error), fmt, a);
}

void
scan_message(int fd, const struct scan_request *req, struct scan_reply *r)
{
	struct cl_scan_options opts;
	struct scan_ctx	       ctx = { r };
	struct cl_engine      *e;
	struct timespec	       t0;
	struct stat	       st;
	const char	      *virname = NULL;
	cl_fmap_t	      *map;
	cl_error_t	       rc;
	void		      *p;
	long long	       n;

	memset(r, 0, sizeof(*r));
	r->id = req->id;
	if ((e = engine_get(&r->signatures, &r->generation, r->error,
		 sizeof(r->error))) == NULL) {
		r->status = SCAN_NOTREADY;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fstat(fd, &st) == -1) {
		fail(r, SCAN_ERROR, "fstat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(r, SCAN_ERROR, "%s", "descriptor is not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size < req->length || req->length > SIZE_MAX) {
		fail(r, SCAN_ERROR, "%s", "descriptor shorter than length");
		goto out;
	}
	if (req->length == 0) {
		r->status = SCAN_CLEAN;
		goto out;
	}
	p = mmap(NULL, req->length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		fail(r, SCAN_ERROR, "mmap: %s", strerror(errno));
		goto out;
	}
	n = (long long)req->length;
	if ((req->flags & SCAN_F_DOTSTUFFED) &&
	    (n = dataframe_unstuff(p, req->length)) < 0) {
		fail(r, SCAN_ERROR, "%s",
		    "dot-stuffed content without a proper end of data");
		munmap(p, req->length);
		goto out;
	}
	if (n == 0)
		rc = CL_CLEAN;
	else if ((map = cl_fmap_open_memory(p, (size_t)n)) == NULL)
		rc = CL_EMEM;
	else {
		memset(&opts, 0, sizeof(opts));
		opts.general = CL_SCAN_GENERAL_ALLMATCHES;
		/* Every parser libclamav has: mail is only the outer layer. */
		opts.parse = ~0u;
		opts.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
		if (scand_opts.heuristics) {
			opts.general |= CL_SCAN_GENERAL_HEURISTICS;
			opts.heuristic |= CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE |
			    CL_SCAN_HEURISTIC_ENCRYPTED_DOC |
			    CL_SCAN_HEURISTIC_BROKEN | CL_SCAN_HEURISTIC_MACROS;
		}
		rc = cl_scanmap_callback(
		    map, NULL, &virname, NULL, e, &opts, &ctx);
		cl_fmap_close(map);
	}
	munmap(p, req->length);
	if (rc == CL_VIRUS)
		record_name(r, virname);
	if (r->nvirus > 0)
		r->status = SCAN_INFECTED;
	else if (rc != CL_CLEAN && rc != CL_VIRUS)
		fail(r, SCAN_ERROR, "%s", cl_strerror(rc));
	else if (r->nlimit > 0)
		r->status = SCAN_INCOMPLETE;
	else
		r->status = SCAN_CLEAN;
out:
	r->usec = usec_since(&t0);
	engine_put(e);
}
