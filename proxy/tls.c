/*
 * tls.c - OpenSSL contexts for the client leg (server side: certificates
 * by SNI and key type, RFC 3207 / RFC 8314) and the upstream leg (client
 * side: verification by CA and name, or by pinned SHA-256 fingerprint),
 * and the facts of a handshake. See tls.h for ownership and threading.
 *
 * Every context: TLS 1.2 minimum unless configured, no renegotiation, no
 * compression, server cipher preference, and SSL_OP_IGNORE_UNEXPECTED_EOF
 * (libevent 2.1.12 with OpenSSL 3 turns a close without close_notify
 * into an error otherwise; SMTP detects truncation itself by QUIT and the
 * final dot).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "escape.h"
#include "tls.h"
#include "util.h"

#define NAMES_MAX 256 /* names per certificate considered for SNI */

struct srvctx {
	SSL_CTX *ctx;
	char   **names;
	size_t	 nnames;
	int	 keytypes; /* bit per EVP_PKEY id class: 1 RSA, 2 EC, 4 other */
};

struct tls_server {
	struct srvctx *ctxs;
	size_t	       nctxs;
};

struct tls_client {
	SSL_CTX *ctx;
	char	*name; /* expected name / SNI, or NULL */
	int	 verify_chain;
	unsigned char (*pins)[32];
	size_t npins;
};

void
tls_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t	      pos = 0;
	char	      one[256];

	if (len == 0)
		return;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, one, sizeof(one));
		if (pos < len)
			pos += (size_t)snprintf(
			    buf + pos, len - pos, "%s%s", pos ? "; " : "", one);
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "unknown TLS error");
}

struct bufferevent *
tls_bev_switch(struct bufferevent *old, SSL *ssl, int accepting)
{
	struct bufferevent *bev;

	bev = bufferevent_openssl_socket_new(bufferevent_get_base(old),
	    bufferevent_getfd(old), ssl,
	    accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* The old one must not close the descriptor the new one uses. */
	bufferevent_setfd(old, -1);
	bufferevent_free(old);
	return bev;
}

void
tls_bev_errors(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e;
	size_t	      n;

	if (len == 0)
		return;
	buf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		/* Library 0 is libevent's generic "SSL error": no news. */
		if (ERR_GET_LIB(e) == 0 || (n = strlen(buf)) + 3 >= len)
			continue;
		if (n > 0)
			strcat(buf, "; ");
		ERR_error_string_n(e, buf + strlen(buf), len - strlen(buf));
	}
	ERR_clear_error();
}

int
tls_list_ok(int kind, const char *s)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	int	 ok;

	if (ctx == NULL)
		return 1; /* cannot tell; the build will */
	ok = kind == 0	? SSL_CTX_set_cipher_list(ctx, s)
	    : kind == 1 ? SSL_CTX_set_ciphersuites(ctx, s)
			: SSL_CTX_set1_groups_list(ctx, s);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ok == 1;
}

/* ------------------------------------------------------------ server */

static int
keytype_bit(EVP_PKEY *k)
{
	if (k == NULL)
		return 4;
	if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS"))
		return 1;
	if (EVP_PKEY_is_a(k, "EC"))
		return 2;
	return 4;
}

/* The names a certificate serves: SAN dNSNames, else the subject CN. */
static char **
cert_names(X509 *x, size_t *n)
{
	GENERAL_NAMES *gens;
	char	     **v = NULL;
	int	       i, idx;

	*n = 0;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens) && *n < NAMES_MAX;
		     i++) {
			GENERAL_NAME	    *g = sk_GENERAL_NAME_value(gens, i);
			const unsigned char *d;
			int		     len;

			if (g->type != GEN_DNS)
				continue;
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			if (len <= 0 || memchr(d, '\0', (size_t)len) != NULL)
				continue;
			v = xrealloc(v, (*n + 1) * sizeof(*v));
			v[(*n)++] = xstrndup((const char *)d, (size_t)len);
		}
		GENERAL_NAMES_free(gens);
	}
	if (*n == 0) {
		X509_NAME *subj = X509_get_subject_name(x);

		idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
		if (idx >= 0) {
			ASN1_STRING *cn = X509_NAME_ENTRY_get_data(
			    X509_NAME_get_entry(subj, idx));
			unsigned char *u = NULL;
			int	       len = ASN1_STRING_to_UTF8(&u, cn);

			if (len > 0 && memchr(u, '\0', (size_t)len) == NULL) {
				v = xmalloc(sizeof(*v));
				v[(*n)++] = xstrndup((char *)u, (size_t)len);
			}
			OPENSSL_free(u);
		}
	}
	for (i = 0; i < (int)*n; i++) {
		char *p;

		for (p = v[i]; *p != '\0'; p++)
			*p = (char)ascii_lower((unsigned char)*p);
	}
	return v;
}

static void
names_free(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

static int
names_equal(char **a, size_t na, char **b, size_t nb)
{
	size_t i, j;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++)
			if (strcmp(a[i], b[j]) == 0)
				break;
		if (j == nb)
			return 0;
	}
	return 1;
}

/* RFC 6125 §6.4.3, restricted: "*." only as the whole left label. */
static int
name_matches(const char *pattern, const char *host)
{
	const char *dot;

	if (ascii_strcasecmp(pattern, host) == 0)
		return 1;
	if (pattern[0] != '*' || pattern[1] != '.')
		return 0;
	if ((dot = strchr(host, '.')) == NULL || dot == host)
		return 0;
	return ascii_strcasecmp(pattern + 1, dot) == 0;
}

static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *ts = arg;
	const char		*host;
	size_t			 i, j;

	(void)alert;
	host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (host == NULL || ts->nctxs < 2)
		return SSL_TLSEXT_ERR_OK;
	/* Exact names first, then wildcards. */
	for (i = 0; i < ts->nctxs; i++)
		for (j = 0; j < ts->ctxs[i].nnames; j++)
			if (ascii_strcasecmp(ts->ctxs[i].names[j], host) == 0)
				goto found;
	for (i = 0; i < ts->nctxs; i++)
		for (j = 0; j < ts->ctxs[i].nnames; j++)
			if (name_matches(ts->ctxs[i].names[j], host))
				goto found;
	return SSL_TLSEXT_ERR_OK; /* the default certificate */
found:
	if (i != 0)
		SSL_set_SSL_CTX(ssl, ts->ctxs[i].ctx);
	return SSL_TLSEXT_ERR_OK;
}

/* Ask for a client certificate, never require or judge one. */
static int
accept_any_cert(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

static SSL_CTX *
server_ctx_new(const struct config *cf)
{
	const struct tls_conf *t = &cf->tls;
	long		       lifetime = LIMIT(cf, TLS_SESSION_LIFETIME);
	SSL_CTX		      *ctx;
	char		       err[512];

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, t->min_version);
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
		SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (t->ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
		config_report(cf->file, 0,
		    "tls_ciphers \"%s\": no usable cipher", t->ciphers);
		goto fail_quiet;
	}
	if (t->ciphersuites[0] != '\0' &&
	    SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
		config_report(cf->file, 0,
		    "tls_ciphersuites \"%s\": no usable cipher suite",
		    t->ciphersuites);
		goto fail_quiet;
	}
	if (t->groups[0] != '\0' &&
	    SSL_CTX_set1_groups_list(ctx, t->groups) != 1) {
		config_report(
		    cf->file, 0, "tls_groups \"%s\": unknown group", t->groups);
		goto fail_quiet;
	}
	/* Resumption: tickets (stateless, TLS 1.2 and 1.3) and the session
	 * cache for TLS 1.2 session IDs, both bounded by the lifetime. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"moat", 4);
	if (lifetime == 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_timeout(ctx, lifetime);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, 20000);
		if (!t->tickets) {
			SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
			SSL_CTX_set_num_tickets(ctx, 0);
		} else
			SSL_CTX_set_num_tickets(ctx, 1);
	}
	if (t->ask_ccert)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_cert);
	return ctx;
fail:
	tls_errors(err, sizeof(err));
	config_report(cf->file, 0, "TLS: %s", err);
fail_quiet:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Load one certificate + key into ctx; -1 reported. */
static int
load_pair(const struct config *cf, SSL_CTX *ctx, const struct tls_cert_conf *c)
{
	char err[512];

	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		tls_errors(err, sizeof(err));
		config_report(cf->file, c->line,
		    "tls_certificate \"%s\": %s: %s", c->name, c->cert, err);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		tls_errors(err, sizeof(err));
		config_report(cf->file, c->line,
		    "tls_certificate \"%s\": key %s: %s", c->name, c->key, err);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_errors(err, sizeof(err));
		config_report(cf->file, c->line,
		    "tls_certificate \"%s\": key %s does not match the "
		    "certificate %s",
		    c->name, c->key, c->cert);
		return -1;
	}
	return 0;
}

/* The leaf certificate of a PEM file, to learn its names and key type. */
static X509 *
read_leaf(const struct config *cf, const struct tls_cert_conf *c)
{
	BIO  *b = BIO_new_file(c->cert, "r");
	X509 *x = NULL;
	char  err[512];

	if (b != NULL)
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (x == NULL) {
		tls_errors(err, sizeof(err));
		config_report(cf->file, c->line,
		    "tls_certificate \"%s\": %s: %s", c->name, c->cert, err);
	}
	return x;
}

int
tls_server_build(const struct config *cf, struct tls_server **out)
{
	struct tls_server *ts;
	size_t		   i, k, nnames;
	char		 **names;
	X509		  *x;
	int		   bit, bad = 0;

	*out = NULL;
	if (cf->tls.ncerts == 0)
		return 0;
	ts = xcalloc(1, sizeof(*ts));
	ts->ctxs = xcalloc(cf->tls.ncerts, sizeof(*ts->ctxs));
	for (i = 0; i < cf->tls.ncerts; i++) {
		const struct tls_cert_conf *c = &cf->tls.certs[i];
		struct srvctx		   *sc;

		if ((x = read_leaf(cf, c)) == NULL) {
			bad = 1;
			continue;
		}
		names = cert_names(x, &nnames);
		bit = keytype_bit(X509_get0_pubkey(x));
		X509_free(x);
		for (k = 0; k < ts->nctxs; k++)
			if (!(ts->ctxs[k].keytypes & bit) && bit != 4 &&
			    names_equal(ts->ctxs[k].names, ts->ctxs[k].nnames,
				names, nnames))
				break;
		if (k == ts->nctxs) {
			sc = &ts->ctxs[ts->nctxs];
			if ((sc->ctx = server_ctx_new(cf)) == NULL) {
				names_free(names, nnames);
				bad = 1;
				break;
			}
			ts->nctxs++;
			sc->names = names;
			sc->nnames = nnames;
		} else {
			sc = &ts->ctxs[k];
			names_free(names, nnames);
		}
		sc->keytypes |= bit;
		if (load_pair(cf, sc->ctx, c) == -1)
			bad = 1;
	}
	if (bad) {
		tls_server_free(ts);
		return -1;
	}
	for (i = 0; i < ts->nctxs; i++) {
		SSL_CTX_set_tlsext_servername_callback(ts->ctxs[i].ctx, sni_cb);
		SSL_CTX_set_tlsext_servername_arg(ts->ctxs[i].ctx, ts);
	}
	*out = ts;
	return 0;
}

void
tls_server_free(struct tls_server *ts)
{
	size_t i;

	if (ts == NULL)
		return;
	for (i = 0; i < ts->nctxs; i++) {
		SSL_CTX_free(ts->ctxs[i].ctx);
		names_free(ts->ctxs[i].names, ts->ctxs[i].nnames);
	}
	free(ts->ctxs);
	free(ts);
}

SSL *
tls_server_ssl(const struct tls_server *ts)
{
	SSL *ssl;

	if (ts == NULL || ts->nctxs == 0)
		return NULL;
	if ((ssl = SSL_new(ts->ctxs[0].ctx)) == NULL)
		ERR_clear_error();
	return ssl;
}

/* ------------------------------------------------------------ client */

/*
 * Client-side session resumption toward the upstream: each thread keeps
 * the last session (a TLS 1.3 ticket or a TLS 1.2 session) its upstream
 * connections were given and offers it on its next one, sparing both
 * sides the certificate signature. A resumed session carries the peer
 * certificate and verification result it was made with, so
 * tls_client_verify() judges it exactly as the first time.
 */
static __thread SSL_SESSION *thread_session;

static int
client_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	if (thread_session != NULL)
		SSL_SESSION_free(thread_session);
	thread_session = sess;
	return 1; /* the reference is ours */
}

void
tls_client_thread_done(void)
{
	if (thread_session != NULL)
		SSL_SESSION_free(thread_session);
	thread_session = NULL;
}

int
tls_client_build(const struct config *cf, struct tls_client **out)
{
	const struct tls_conf *t = &cf->tls;
	struct tls_client     *tc;
	char		       err[512];

	*out = NULL;
	if (t->up_mode == UTLS_NONE)
		return 0;
	tc = xcalloc(1, sizeof(*tc));
	if ((tc->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(tc->ctx, t->up_min_version);
	SSL_CTX_set_options(tc->ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
		SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(tc->ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(
	    tc->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(tc->ctx, client_new_session);
	if (t->up_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(
			tc->ctx, t->up_ca_file, NULL) != 1) {
			tls_errors(err, sizeof(err));
			config_report(cf->file, 0,
			    "upstream_tls_ca_file \"%s\": %s", t->up_ca_file,
			    err);
			tls_client_free(tc);
			return -1;
		}
		tc->verify_chain = 1;
	}
	/* The handshake completes whatever the certificate; the verdict is
	 * tls_client_verify()'s, after it, so that the failure is logged
	 * with its reason and turned into a 4xx by the caller. */
	SSL_CTX_set_verify(tc->ctx, SSL_VERIFY_NONE, NULL);
	if (t->up_name != NULL)
		tc->name = xstrdup(t->up_name);
	if (t->up_npins > 0) {
		tc->pins = xcalloc(t->up_npins, sizeof(*tc->pins));
		memcpy(tc->pins, t->up_pins, t->up_npins * sizeof(*tc->pins));
		tc->npins = t->up_npins;
	}
	*out = tc;
	return 0;
fail:
	tls_errors(err, sizeof(err));
	config_report(cf->file, 0, "upstream TLS: %s", err);
	tls_client_free(tc);
	return -1;
}

void
tls_client_free(struct tls_client *tc)
{
	if (tc == NULL)
		return;
	SSL_CTX_free(tc->ctx);
	free(tc->name);
	free(tc->pins);
	free(tc);
}

SSL *
tls_client_ssl(const struct tls_client *tc)
{
	SSL *ssl;

	if (tc == NULL || (ssl = SSL_new(tc->ctx)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (tc->name != NULL) {
		SSL_set_tlsext_host_name(ssl, tc->name);
		if (tc->verify_chain) {
			SSL_set_hostflags(
			    ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			SSL_set1_host(ssl, tc->name);
		}
	}
	if (tc->verify_chain)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any_cert);
	if (thread_session != NULL && SSL_SESSION_is_resumable(thread_session))
		SSL_set_session(ssl, thread_session);
	return ssl;
}

int
tls_client_verify(
    const struct tls_client *tc, SSL *ssl, char *why, size_t whylen)
{
	X509	     *x = SSL_get0_peer_certificate(ssl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned      mdlen = 0;
	long	      vr;
	size_t	      i;

	if (tc->npins > 0) {
		if (x == NULL ||
		    X509_digest(x, EVP_sha256(), md, &mdlen) != 1 ||
		    mdlen != 32) {
			snprintf(
			    why, whylen, "no certificate to match the pin");
			return -1;
		}
		for (i = 0; i < tc->npins; i++)
			if (memcmp(tc->pins[i], md, 32) == 0)
				return 0;
		snprintf(why, whylen, "certificate fingerprint is not pinned");
		return -1;
	}
	if (!tc->verify_chain)
		return 0; /* encryption without authentication */
	if (x == NULL) {
		snprintf(why, whylen, "no certificate");
		return -1;
	}
	if ((vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(why, whylen, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- facts */

void
tls_facts_get(SSL *ssl, struct tls_facts *f)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	const char	 *sni;
	X509		 *x;

	memset(f, 0, sizeof(*f));
	snprintf(f->version, sizeof(f->version), "%s", SSL_get_version(ssl));
	if (c != NULL) {
		snprintf(
		    f->cipher, sizeof(f->cipher), "%s", SSL_CIPHER_get_name(c));
		f->bits = SSL_CIPHER_get_bits(c, &f->alg_bits);
	}
	if ((sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) != NULL)
		log_escape(sni, strlen(sni), f->sni, sizeof(f->sni));
	f->resumed = SSL_session_reused(ssl);
	if ((x = SSL_get0_peer_certificate(ssl)) != NULL) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned      mdlen = 0, i;
		BIO	     *b = BIO_new(BIO_s_mem());
		char	     *p;
		long	      n;

		f->ccert = 1;
		if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
			for (i = 0; i < mdlen && i < 32; i++)
				snprintf(f->ccert_fp + 2 * i, 3, "%02x", md[i]);
		if (b != NULL &&
		    X509_NAME_print_ex(
			b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
		    (n = BIO_get_mem_data(b, &p)) > 0)
			log_escape(p, (size_t)n, f->ccert_subject,
			    sizeof(f->ccert_subject));
		BIO_free(b);
	}
	ERR_clear_error();
}
