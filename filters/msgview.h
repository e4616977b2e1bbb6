/*
 * msgview.h - the decoded view of one message: what every content rule,
 * the Bayesian classifier and any other filter that reads the message
 * needs, computed once per message (RFC 5322 header, RFC 2045-2049 MIME,
 * RFC 2047/2231 encoded words and parameters, HTML reduced to text).
 *
 * Built from the message as received (dot-unstuffed, CRLF or LF line
 * ends) by msgview_new() with GMime 3 for the MIME structure and
 * transfer decodings, iconv (through GMime) for charsets, and libxml2's
 * HTML parser (SAX, no network, recovering) for HTML. Every input is
 * hostile: a view is bounded by struct msgview_limits, and anything cut
 * short sets a flag in msgview.truncated instead of failing. msgview_new()
 * never fails on bad input; it returns NULL only when memory runs out.
 *
 * Ownership and threading: the view owns all its memory (one arena; the
 * strings below live until msgview_free()) and does not keep a pointer to
 * the input. It is built on one thread (a worker) and afterwards read-only,
 * so any number of threads may read it at once. GMime and libxml2 must be
 * initialised once per process with msgview_global_init() before the
 * first view is built (idempotent, thread-safe).
 */
#ifndef MOAT_MSGVIEW_H
#define MOAT_MSGVIEW_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on the work one message can cause; 0 in a field = the default. */
struct msgview_limits {
	size_t parts;	     /* MIME leaf and container parts (default 256) */
	size_t depth;	     /* multipart / message/rfc822 nesting (20) */
	size_t part_decoded; /* decoded bytes kept per text part (1 MiB) */
	size_t decoded;	     /* decoded text bytes kept in total (4 MiB) */
	size_t uris;	     /* URIs kept (1024) */
	size_t headers;	     /* header fields kept, per header (1000) */
};

/* Set in msgview.truncated when a bound was reached. */
#define MV_TRUNC_PARTS	 0x01u
#define MV_TRUNC_DEPTH	 0x02u
#define MV_TRUNC_DECODED 0x04u
#define MV_TRUNC_URIS	 0x08u
#define MV_TRUNC_HEADERS 0x10u

/* One header field, in message order. */
struct mv_header {
	const char *name;    /* as written (case kept), no colon */
	const char *raw;     /* value as received, folding kept, without the
				leading space after the colon and the final
				line end; may contain CR LF + WSP */
	const char *decoded; /* unfolded (line ends + WSP -> the WSP),
				RFC 2047 encoded words decoded to UTF-8,
				invalid UTF-8 replaced by U+FFFD */
};

/* Flags of a part. */
#define MV_PART_ATTACHMENT 0x01u /* Content-Disposition attachment, or a
				    file name on a non-text part */
#define MV_PART_TEXT	   0x02u /* text/(*): has text below */
#define MV_PART_HTML	   0x04u /* text/html: text is the rendering */
#define MV_PART_BAD_CTE	   0x08u /* unknown or broken transfer encoding */
#define MV_PART_BAD_CHARSET 0x10u /* unknown charset, decoded as Latin-1 */
#define MV_PART_MULTIPART  0x20u /* a container (no body of its own) */
#define MV_PART_MESSAGE	   0x40u /* message/rfc822 (its parts follow) */

/*
 * A MIME part, in depth-first order; parts[0] is the message itself
 * (its headers are msgview.headers). Leaf text parts carry their text.
 */
struct mv_part {
	unsigned	  depth;  /* 0 = the message */
	unsigned	  parent; /* index in parts; parts[0].parent = 0 */
	unsigned	  flags;  /* MV_PART_* */
	const char	 *type;	  /* "text/plain", lower case, never NULL */
	const char	 *charset;   /* as declared, lower case, or NULL */
	const char	 *encoding;  /* Content-Transfer-Encoding, lower
				      case, or NULL */
	const char	 *filename;  /* RFC 2231/2047 decoded, UTF-8, or NULL */
	const struct mv_header *headers; /* this part's MIME header */
	size_t		  nheaders;
	size_t		  rawsize; /* encoded body bytes in the message */
	size_t		  size;	   /* decoded body bytes (all of them, even
				      past part_decoded) */
	/*
	 * Text parts only (else NULL/0): the decoded body converted to
	 * UTF-8 (line ends LF), and for HTML the same text with the tags
	 * kept (`raw_text`) as SpamAssassin's rawbody wants it. For
	 * text/plain, text == raw_text.
	 */
	const char *text;
	size_t	    textlen;
	const char *raw_text;
	size_t	    raw_textlen;
	/*
	 * HTML parts only (else NULL/0): the text a reader does not see,
	 * left out of `text`, as SpamAssassin's HTML.pm judges it (its
	 * invisible_rendered): hidden by CSS (display:none,
	 * visibility:hidden) or the hidden attribute, in a colour equal or
	 * close to the background's or invalid, or in a font of size 1 or
	 * less. Runs in document order, white space collapsed, a space or
	 * line break between runs; "" when there is none.
	 */
	const char *invisible;
	size_t	    invisiblelen;
};

/* Where a URI was found. */
#define MV_URI_TEXT   0x01u /* plain text (also schemeless www.x.y) */
#define MV_URI_HTML   0x02u /* an HTML attribute (href, src, action...) */
#define MV_URI_MAILTO 0x04u /* mailto: or a bare address in text */
#define MV_URI_ANCHOR 0x08u /* <a href>: the anchor text is in `text` */

struct mv_uri {
	const char *uri;    /* as found, entities and %-escapes kept,
			       whitespace trimmed */
	const char *host;   /* lower case, trailing dot removed, IDNA
			       A-label form, or an address literal; NULL if
			       none could be parsed */
	const char *domain; /* registrable domain of host (Public Suffix
			       List), or the IP address; NULL like host */
	const char *text;   /* MV_URI_ANCHOR: the anchor's text, else NULL */
	unsigned    flags;  /* MV_URI_* (or'ed when found more than once) */
};

/*
 * What the HTML parts looked like, for the structural rules (the facts
 * SpamAssassin's HTML eval tests read). Summed over all text/html parts.
 */
struct mv_html {
	unsigned parts;	      /* text/html parts */
	unsigned tags;	      /* start tags */
	unsigned bad_tags;    /* names not in HTML 4/5 */
	unsigned images;      /* <img> */
	uint64_t image_area;  /* sum of width*height given on <img> */
	unsigned scripts;     /* <script> elements */
	unsigned iframes;     /* <iframe> */
	unsigned forms;	      /* <form> */
	unsigned embeds;      /* <embed>, <object>, <applet> */
	unsigned comments;    /* comment count */
	unsigned anchors;     /* <a href> */
	unsigned anchors_text_url; /* anchors whose text looks like a URL of
				      another host than the href (phishing) */
	unsigned font_low_contrast; /* text runs whose font color is close
				       to the background color (as
				       SpamAssassin's HTML.pm tracks them) */
	unsigned font_invalid_color; /* text runs in an unreadable colour */
	unsigned font_tiny;   /* text runs in a font size of 0/1 or tiny
				 CSS font-size */
	size_t	 text;	      /* rendered text bytes: the visible, and
				 the invisible but the hidden (CSS
				 display, visibility; attribute) */
	size_t	 raw;	      /* HTML bytes (decoded) */
	unsigned title;	      /* has a <title> */
	unsigned obfuscation; /* text with letters split by tags or
				 entities (s<b></b>ex, &#118;iagra) */
};

struct msgview {
	/* The message as given to msgview_new() is not kept. */
	size_t size;	/* bytes of the message */
	size_t hdrsize; /* bytes of the header, with the empty line */

	const struct mv_header *headers; /* the message header, in order */
	size_t			nheaders;

	const struct mv_part *parts; /* parts[0] = the message */
	size_t		      nparts;

	const struct mv_uri *uris; /* unique by uri string, first-found
				      order */
	size_t		     nuris;

	struct mv_html html;

	unsigned truncated; /* MV_TRUNC_* */
	unsigned mime_errors; /* structure problems: missing boundaries,
				 unterminated multiparts, bad headers */
};

/* Once per process, before the first msgview_new(); thread-safe. */
void msgview_global_init(void);

/*
 * Build the view of msg[0..len). NULL only on memory exhaustion; any
 * content gives a view. limits may be NULL (all defaults).
 */
struct msgview *msgview_new(
    const char *msg, size_t len, const struct msgview_limits *limits);
void msgview_free(struct msgview *);

/*
 * The idx-th (0-based) field named `name` (ASCII case-insensitive) of the
 * message header, or NULL.
 */
const struct mv_header *msgview_header(
    const struct msgview *, const char *name, size_t idx);

#endif
