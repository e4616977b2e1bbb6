/*
 * tls.h - TLS contexts for both legs (OpenSSL 3; the records themselves
 * go through libevent's bufferevent_openssl): the server side that clients
 * reach with STARTTLS (RFC 3207) or implicit TLS (RFC 8314), the client
 * side toward the upstream, and the facts of a finished handshake for the
 * log and the trace header.
 *
 * Server side: every `tls_certificate` section is loaded; certificates
 * with the same names (SAN dNSName, else the subject CN) share one
 * SSL_CTX, so an RSA and an ECDSA certificate for the same names are
 * served side by side and the client's signature algorithms choose
 * (OpenSSL keeps one certificate per key type). The SNI callback switches
 * to the context whose names match (exact, or "*.domain" for one label);
 * the first section's context is the default.
 *
 * Threading: a struct tls_server / tls_client is built on the configuration
 * thread (the main thread at start-up, the reload thread at a reload; no
 * process-wide state is touched) and then read-only: loop threads create SSL
 * objects from it concurrently (OpenSSL 3 contexts are thread-safe for that).
 * It belongs to one runtime generation (tls_server) or to the process
 * (tls_client) and is freed after the last session using it.
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct config;
struct tls_conf;

struct tls_server;
struct tls_client;

/*
 * Build the server contexts of cf (reports problems with config_report()
 * and returns -1). *out is NULL when no certificate is configured.
 * Blocking (file I/O): the configuration thread only.
 */
int  tls_server_build(const struct config *, struct tls_server **out);
void tls_server_free(struct tls_server *);
/* A new server-side SSL for one connection, or NULL. */
SSL *tls_server_ssl(const struct tls_server *);

/* The upstream side; *out is NULL when upstream_tls = none. */
int  tls_client_build(const struct config *, struct tls_client **out);
void tls_client_free(struct tls_client *);
/* A new client-side SSL with SNI and name checks set, or NULL; it offers
 * this thread's last upstream session for resumption. */
SSL *tls_client_ssl(const struct tls_client *);
/* Free this thread's kept session (before the thread ends). */
void tls_client_thread_done(void);
/*
 * After the handshake: does the upstream's certificate pass what the
 * configuration asks (chain, name, pinned fingerprint)? 0, or -1 with
 * the reason in why.
 */
int tls_client_verify(
    const struct tls_client *, SSL *, char *why, size_t whylen);

struct tls_facts {
	char version[16]; /* "TLSv1.3" */
	char cipher[64];
	int  bits, alg_bits;
	char sni[256]; /* "" if none (escaped) */
	int  resumed;
	int  ccert;		 /* the peer presented a certificate */
	char ccert_subject[256]; /* RFC 2253, escaped for logs/headers */
	char ccert_fp[65];	 /* SHA-256, lower-case hex */
};

void tls_facts_get(SSL *, struct tls_facts *);

/* Is s a usable cipher list (0), cipher-suite list (1) or group list (2)?
 * For the configuration's validation. */
int tls_list_ok(int kind, const char *s);

/* OpenSSL's error queue as one line (and cleared), for the log. */
void tls_errors(char *buf, size_t len);

/*
 * Continue the connection of the socket bufferevent `old` under TLS: an
 * OpenSSL bufferevent on the same descriptor, in the handshake
 * (accepting: server side). The caller guarantees that old's buffers are
 * empty (no plaintext crosses the handshake); old is freed without
 * closing the descriptor. Returns the new bufferevent, which owns ssl,
 * or NULL (ssl freed, old untouched).
 */
struct bufferevent;
struct bufferevent *tls_bev_switch(
    struct bufferevent *old, SSL *ssl, int accepting);
/* The OpenSSL errors a TLS bufferevent collected, as one line; "" if
 * none but the generic one. */
void tls_bev_errors(struct bufferevent *, char *buf, size_t len);

#endif
