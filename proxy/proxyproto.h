/*
 * proxyproto.h - HAProxy PROXY protocol header parser, versions 1 (text)
 * and 2 (binary), as specified in haproxy's doc/proxy-protocol.txt.
 *
 * Pure code: no I/O, no allocation; safe from any thread. The caller feeds
 * everything received so far (from the start of the connection) and calls
 * again when more arrives; the parser never reads past the header, so the
 * bytes after `consumed` are the client's first SMTP bytes (there should be
 * none: the SMTP client speaks only after moat's banner).
 */
#ifndef MOAT_PROXYPROTO_H
#define MOAT_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#define PP_V1	  0x01
#define PP_V2	  0x02
#define PP_V1_MAX 107	      /* v1 header including CRLF */
#define PP_V2_MAX (16 + 1024) /* we refuse longer TLV areas */

enum pp_result { PP_NEED_MORE = 0, PP_OK, PP_ERROR };

struct pp_info {
	/*
	 * 1 when the header carries no addresses (v1 "UNKNOWN", v2 LOCAL
	 * command or AF_UNSPEC/AF_UNIX): keep the socket's own addresses.
	 */
	int			local;
	struct sockaddr_storage src; /* the real client */
	struct sockaddr_storage dst; /* the address it connected to */
	socklen_t		srclen, dstlen;
};

/*
 * versions: PP_V1, PP_V2 or both. Returns PP_NEED_MORE while buf could
 * still become a valid header (len below the maximum), PP_OK with
 * *consumed = header length, or PP_ERROR (wrong signature, bad syntax,
 * bad address, a version not allowed, TCP-over-IPv4/6 only: UDP is an
 * error, too long). v1 addresses/ports are strictly checked (dotted quad,
 * inet_pton for v6, ports 0-65535 without leading zeros).
 */
enum pp_result proxyproto_parse(const unsigned char *buf, size_t len,
    int versions, struct pp_info *out, size_t *consumed);

#endif
