/*
 * scanproto.h - the protocol between moatd and its scanner process,
 * moat-scand (filters/av/scand.c): requests carry a message's descriptor,
 * replies carry the verdict. Encoding and parsing only; no I/O.
 *
 * Transport: a SOCK_SEQPACKET socketpair per moatd loop thread, made by
 * moatd when it starts the scanner (moat-scand gets the other ends as
 * descriptors 3, 4, ...). One packet per request, one per reply; replies
 * may come back in any order and are matched by id.
 *
 * Request (moatd -> scanner): struct scan_request, exactly
 * sizeof(struct scan_request) bytes, native byte order (same host). A SCAN
 * request carries exactly one descriptor in SCM_RIGHTS: the message,
 * readable from offset 0 for `length` bytes (a read-only reopened spool
 * file or a sealed memfd). With SCAN_F_DOTSTUFFED the content is SMTP wire
 * form (dot-stuffed, ending with ".\r\n") and the scanner undoes it before
 * scanning, so ClamAV sees the RFC 5322 message. A PING request carries no
 * descriptor and asks for the scanner's state.
 *
 * Reply (scanner -> moatd): text, at most SCAN_REPLY_MAX bytes, lines
 * ended by "\n":
 *
 *	MSCN1 <id> <status>
 *	time <microseconds spent scanning>
 *	virus <name>		0..SCAN_NAMES_MAX, signature names
 *	heuristic <name>	0..SCAN_NAMES_MAX, "Heuristics.*" other than
 *				the limit ones (encrypted, broken, macros)
 *	limit <name>		0..SCAN_NAMES_MAX, "Heuristics.Limits.*":
 *				a limit cut the scan short
 *	file <depth> <size> <type> <name>
 *				0..SCAN_FILES_MAX, every object ClamAV
 *				looked at (depth 0 = the message), type
 *				without "CL_TYPE_", name %-escaped or "-"
 *	files_dropped <n>	file entries left out (beyond SCAN_FILES_MAX
 *				or SCAN_REPLY_MAX); at most once
 *	engine <signatures> <generation>   (PING replies, and any reply)
 *	error <text>		status error/busy/notready: why
 *
 * status is one of clean, infected, incomplete, error, busy, notready.
 * infected: at least one virus line. incomplete: no virus, a limit line.
 * A heuristic alone gives status clean with heuristic lines (policy
 * decides). Unknown line keywords are ignored (forward compatibility);
 * anything else malformed makes the whole reply invalid, including: more
 * than SCAN_NAMES_MAX names of one kind, a status that disagrees with the
 * names (virus lines without infected, clean with a limit line), a
 * repeated time/engine/error/files_dropped line. Signature names and
 * types are 0x21..0x7e and stay as sent (the formatter %-escapes other
 * bytes, the parser does not unescape them); only file names are
 * unescaped. The full rules are at the top of scanproto.c.
 *
 * A request's flags may hold only SCAN_F_DOTSTUFFED and reserved must be
 * 0; scan_request_init refuses other flags and scan_request_check other
 * flags or reserved bits.
 *
 * The scanner parses libclamav's view of hostile data, so moatd treats a
 * reply as hostile too: scan_reply_parse() is strict, bounded and fuzzed.
 */
#ifndef MOAT_SCANPROTO_H
#define MOAT_SCANPROTO_H

#include <stddef.h>
#include <stdint.h>

#define SCAN_MAGIC	   0x4e43534du /* "MSCN" little-endian */
#define SCAN_PROTO_VERSION 1
#define SCAN_REPLY_MAX	   16384
#define SCAN_NAMES_MAX	   16
#define SCAN_FILES_MAX	   64
#define SCAN_NAME_MAX	   127 /* signature names */
#define SCAN_FNAME_MAX	   255 /* file names, unescaped */
#define SCAN_TYPE_MAX	   31

enum scan_op {
	SCAN_OP_SCAN = 1,
	SCAN_OP_PING = 2
};

#define SCAN_F_DOTSTUFFED 0x1u

struct scan_request {
	uint32_t magic;	  /* SCAN_MAGIC */
	uint16_t version; /* SCAN_PROTO_VERSION */
	uint16_t op;	  /* enum scan_op */
	uint64_t id;	  /* echoed in the reply */
	uint64_t length;  /* content bytes in the descriptor */
	uint32_t flags;	  /* SCAN_F_* */
	uint32_t reserved;
};

enum scan_status {
	SCAN_CLEAN = 0,
	SCAN_INFECTED,
	SCAN_INCOMPLETE,
	SCAN_ERROR,
	SCAN_BUSY,
	SCAN_NOTREADY
};

struct scan_file {
	unsigned depth;
	uint64_t size;
	char	 type[SCAN_TYPE_MAX + 1];
	char	 name[SCAN_FNAME_MAX + 1]; /* unescaped; "" if unknown */
	int	 has_name;
};

struct scan_reply {
	uint64_t	 id;
	enum scan_status status;
	uint64_t	 usec;
	unsigned	 nvirus, nheur, nlimit, nfiles;
	char		 virus[SCAN_NAMES_MAX][SCAN_NAME_MAX + 1];
	char		 heur[SCAN_NAMES_MAX][SCAN_NAME_MAX + 1];
	char		 limit[SCAN_NAMES_MAX][SCAN_NAME_MAX + 1];
	struct scan_file files[SCAN_FILES_MAX];
	unsigned	 files_dropped; /* beyond SCAN_FILES_MAX */
	uint64_t	 signatures, generation;
	char		 error[256];
};

const char *scan_status_name(enum scan_status);

/* Fill a request; 0, or -1 for an unknown op. */
int scan_request_init(
    struct scan_request *, enum scan_op, uint64_t id, uint64_t len, unsigned);
/* Check a received request: 0, or -1 (bad magic, version, op, size). */
int scan_request_check(const void *buf, size_t len, struct scan_request *);

/*
 * Build a reply into buf (SCAN_REPLY_MAX): names and file entries beyond
 * the limits are dropped, names with bytes outside printable ASCII are
 * escaped. Returns its length.
 */
size_t scan_reply_format(const struct scan_reply *, char *buf, size_t size);
/* Parse a reply: 0, or -1 with why set to a static string. */
int scan_reply_parse(
    const char *buf, size_t len, struct scan_reply *, const char **why);

#endif
