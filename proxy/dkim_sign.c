/*
 * dkim_sign.c - DKIM signatures for authenticated (outbound) mail, on
 * libopendkim (LIBRARIES.md §3.4).
 *
 * What is implemented: RFC 6376 §5 (signer actions) with relaxed/relaxed
 * canonicalisation (§3.4.2, §3.4.4), a t= timestamp (§3.5), never l=
 * (§8.2: a body length limit lets anyone append text), the header fields
 * to sign chosen per section (§5.4) and some of them "oversigned" (§5.4.2:
 * the name is listed once more than it occurs, so that no instance can
 * be added without breaking the signature; From by default). The
 * algorithm follows the key: rsa-sha256 (§3.3.1; keys of at least 1024
 * bits, RFC 8301 §3.2) or ed25519-sha256 (RFC 8463 §3). The From domain
 * (RFC 5322 §3.6.2) chooses the signing domain; see from_field.c.
 *
 * Keys: read once at configuration time, parsed with OpenSSL (RSA or
 * Ed25519, PEM, PKCS#1 or PKCS#8) and handed to libopendkim as PKCS#8 PEM
 * re-written by OpenSSL: libopendkim 2.11 reads a key that starts with
 * "-----" with PEM_read_bio_PrivateKey() for both algorithms (dkim.c,
 * dkim_privkey_load), so an Ed25519 key needs no other conversion, and
 * the re-write drops anything around the key block (comments, EC
 * parameters) that its "-----" test would trip over. A trial signature at
 * load proves libopendkim takes the key.
 *
 * Ownership and threads: a signer (key, its own DKIM_LIB with the
 * section's header lists) is built with the configuration and read-only
 * afterwards; libopendkim allows one DKIM_LIB to be used by several
 * threads at once (docs/dkim_lib.html) and signing does no DNS. One
 * message is signed by dkim_sign_message() on a worker thread with
 * per-message DKIM handles; the caller hands it the spool and header
 * prefix exclusively.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <opendkim/dkim.h>

#include "dkim_sign.h"
#include "spool.h"
#include "util.h"

#define KEY_FILE_MAX   (64 * 1024)
#define RSA_BITS_MIN   1024
#define FIELD_MAX      (1024 * 1024 + 64 * 1024) /* max_header_size + edits */
#define FIELDS_MAX     (100000 + 64)		 /* max_header_count + edits */
#define BODY_CHUNK_MAX (64 * 1024)

struct dkim_signer {
	char	   *domain;
	char	   *selector;
	char	   *keyfile;
	char	   *key; /* PKCS#8 PEM, NUL-terminated; secret */
	size_t	    keylen;
	dkim_alg_t  alg;
	const char *algname;
	DKIM_LIB   *lib;
};

const char *const dkim_sign_default_headers[] = { "From", "Reply-To", "Subject",
	"Date", "To", "Cc", "Message-ID", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "In-Reply-To", "References", "Sender",
	NULL };

/* ------------------------------------------------------------ keys */

/* An encrypted key is refused, never prompted for. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static int
read_key_file(const char *path, char **out, size_t *outlen, int *group_other,
    char *err, size_t errlen)
{
	struct stat st;
	ssize_t	    r;
	size_t	    n = 0;
	char	   *buf;
	int	    fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		strfmt(err, errlen, "key \"%s\": %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	*group_other = (st.st_mode & 077) != 0;
	if (!S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
		strfmt(err, errlen,
		    "key \"%s\": not a regular file of at most "
		    "%d bytes",
		    path, KEY_FILE_MAX);
		close(fd);
		return -1;
	}
	buf = xmalloc(KEY_FILE_MAX + 1);
	while (n < KEY_FILE_MAX) {
		r = read(fd, buf + n, KEY_FILE_MAX - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			strfmt(err, errlen, "key \"%s\": %s", path,
			    strerror(errno));
			OPENSSL_cleanse(buf, n);
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

/* Parse the key, check type and size, re-write it as PKCS#8 PEM. */
static int
key_load(struct dkim_signer *sg, const char *path, int *group_other, char *err,
    size_t errlen)
{
	EVP_PKEY *pk = NULL;
	BIO	 *in = NULL, *out = NULL;
	char	 *raw = NULL, *pem;
	size_t	  rawlen = 0;
	long	  pemlen;
	int	  rc = -1, bits;

	if (read_key_file(path, &raw, &rawlen, group_other, err, errlen) == -1)
		return -1;
	if ((in = BIO_new_mem_buf(raw, (int)rawlen)) == NULL ||
	    (out = BIO_new(BIO_s_mem())) == NULL)
		fatal("BIO_new");
	pk = PEM_read_bio_PrivateKey(in, NULL, no_passphrase, NULL);
	if (pk == NULL) {
		strfmt(err, errlen,
		    "key \"%s\": not an unencrypted PEM private key", path);
		goto out;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pk);
		if (bits < RSA_BITS_MIN) {
			strfmt(err, errlen,
			    "key \"%s\": RSA key of %d bits, at least %d "
			    "needed (RFC 8301)",
			    path, bits, RSA_BITS_MIN);
			goto out;
		}
		sg->alg = DKIM_SIGN_RSASHA256;
		sg->algname = "rsa-sha256";
		break;
	case EVP_PKEY_ED25519:
		sg->alg = DKIM_SIGN_ED25519SHA256;
		sg->algname = "ed25519-sha256";
		break;
	default:
		strfmt(err, errlen,
		    "key \"%s\": neither an RSA nor an Ed25519 key", path);
		goto out;
	}
	if (!PEM_write_bio_PrivateKey(out, pk, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(out, &pem)) <= 0) {
		strfmt(err, errlen, "key \"%s\": cannot be re-encoded", path);
		goto out;
	}
	sg->key = xmalloc((size_t)pemlen + 1);
	memcpy(sg->key, pem, (size_t)pemlen);
	sg->key[pemlen] = '\0';
	sg->keylen = (size_t)pemlen;
	OPENSSL_cleanse(pem, (size_t)pemlen);
	rc = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(in);
	BIO_free(out);
	OPENSSL_cleanse(raw, rawlen);
	free(raw);
	return rc;
}

/* ---------------------------------------------------------- signers */

const char *
dkim_signer_domain(const struct dkim_signer *sg)
{
	return sg->domain;
}

const char *
dkim_signer_selector(const struct dkim_signer *sg)
{
	return sg->selector;
}

const char *
dkim_signer_algorithm(const struct dkim_signer *sg)
{
	return sg->algname;
}

const char *
dkim_signer_keyfile(const struct dkim_signer *sg)
{
	return sg->keyfile;
}

void
dkim_signer_free(struct dkim_signer *sg)
{
	if (sg == NULL)
		return;
	if (sg->lib != NULL)
		dkim_close(sg->lib);
	if (sg->key != NULL) {
		OPENSSL_cleanse(sg->key, sg->keylen);
		free(sg->key);
	}
	free(sg->domain);
	free(sg->selector);
	free(sg->keyfile);
	free(sg);
}

/* Library handle with the header lists, and a trial signature. */
static int
signer_finish(struct dkim_signer *sg, const char *const *headers,
    const char *const *oversign, char *err, size_t errlen)
{
	static const char *const  none[] = { NULL };
	const struct dkim_signer *one = sg;
	struct evbuffer		 *msg, *sigs;
	struct spool		  sp;
	char			  e2[256];
	int			  rc;

	if ((sg->lib = dkim_init(NULL, NULL)) == NULL)
		fatal("dkim_init");
	if (headers == NULL)
		headers = dkim_sign_default_headers;
	if (oversign == NULL)
		oversign = none;
	if (dkim_options(sg->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
		(void *)headers, sizeof(char **)) != DKIM_STAT_OK ||
	    (oversign[0] != NULL &&
		dkim_options(sg->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
		    (void *)oversign, sizeof(char **)) != DKIM_STAT_OK)) {
		strfmt(err, errlen, "headers: libopendkim refuses the list");
		return -1;
	}
	/* libopendkim must take key, selector and domain. */
	if ((msg = evbuffer_new()) == NULL || (sigs = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	evbuffer_add_printf(msg, "From: test@%s\r\n\r\ntest\r\n", sg->domain);
	spool_init(&sp, NULL, 0); /* empty: everything is in msg */
	e2[0] = '\0';
	rc = dkim_sign_message(
	    &one, 1, "config", msg, &sp, 0, sigs, e2, sizeof(e2));
	if (rc != 0)
		strfmt(err, errlen,
		    "key \"%s\": libopendkim cannot sign with it (%s)",
		    sg->keyfile, e2);
	evbuffer_free(msg);
	evbuffer_free(sigs);
	return rc == 0 ? 0 : -1;
}

static struct dkim_signer *
signer_alloc(const char *domain, const char *selector, const char *keyfile)
{
	struct dkim_signer *sg = xcalloc(1, sizeof(*sg));
	size_t		    i;

	sg->domain = xstrdup(domain);
	for (i = 0; sg->domain[i] != '\0'; i++)
		sg->domain[i] = (char)ascii_lower((unsigned char)sg->domain[i]);
	sg->selector = xstrdup(selector);
	sg->keyfile = xstrdup(keyfile);
	return sg;
}

struct dkim_signer *
dkim_signer_new(const char *domain, const char *selector, const char *keyfile,
    const char *const *headers, const char *const *oversign, int *group_other,
    char *err, size_t errlen)
{
	struct dkim_signer *sg = signer_alloc(domain, selector, keyfile);

	*group_other = 0;
	if (key_load(sg, keyfile, group_other, err, errlen) == -1 ||
	    signer_finish(sg, headers, oversign, err, errlen) == -1) {
		dkim_signer_free(sg);
		return NULL;
	}
	return sg;
}

struct dkim_signer *
dkim_signer_new_key_of(const struct dkim_signer *from, const char *domain,
    const char *selector, const char *const *headers,
    const char *const *oversign, char *err, size_t errlen)
{
	struct dkim_signer *sg = signer_alloc(domain, selector, from->keyfile);

	sg->key = xmalloc(from->keylen + 1);
	memcpy(sg->key, from->key, from->keylen + 1);
	sg->keylen = from->keylen;
	sg->alg = from->alg;
	sg->algname = from->algname;
	if (signer_finish(sg, headers, oversign, err, errlen) == -1) {
		dkim_signer_free(sg);
		return NULL;
	}
	return sg;
}

size_t
dkim_signers_match(struct dkim_signer *const *v, size_t n,
    const char *from_domain, const struct dkim_signer **out, size_t max)
{
	size_t fl = strlen(from_domain), best = 0, i, dl, k = 0;

	for (i = 0; i < n; i++) {
		dl = strlen(v[i]->domain);
		if (dl > fl || dl < best)
			continue;
		if (ascii_strcasecmp(from_domain + fl - dl, v[i]->domain) !=
			0 ||
		    (dl < fl && from_domain[fl - dl - 1] != '.'))
			continue;
		if (dl > best) {
			best = dl;
			k = 0;
		}
		if (k < max)
			out[k++] = v[i];
	}
	return k;
}

/* ------------------------------------------- a libopendkim leak */

/*
 * libopendkim 2.11.0~beta2 leaks an Ed25519 signing handle's crypto state
 * (the EVP_PKEY parsed from the key and the 64-byte signature buffer,
 * about 560 bytes per signature): dkim_free() releases that state only
 * when the signature's key type is RSA (dkim.c, dkim_free, "trash the
 * signature list"), and for RSA the same fields hold the same kinds of
 * objects (an ed25519 state has no RSA object, and its key BIO is
 * already freed by dkim_eom). So once the signature is made, the key
 * type is set to RSA and dkim_free() frees everything.
 *
 * This needs the beginning of the private struct dkim_siginfo
 * (libopendkim/dkim-types.h). The copy below is used only for the library
 * version it was read from, and only after the public accessors agree
 * with it on four fields (algorithm, key type, and the domain and
 * selector pointers, which come after the key type); otherwise nothing is
 * touched and the memory leaks as before (counted: dkim_sign_ed_leaks).
 */
#define ODK_KEYTYPE_RSA	    0 /* dkim-internal.h DKIM_KEYTYPE_RSA */
#define ODK_KEYTYPE_ED25519 1

struct odk_siginfo_head { /* struct dkim_siginfo, 2.11.0~beta2 */
	int	       sig_dnssec_key;
	unsigned int   sig_flags;
	unsigned int   sig_error;
	unsigned int   sig_bh;
	unsigned int   sig_version;
	unsigned int   sig_hashtype;
	unsigned int   sig_keytype;
	unsigned int   sig_keybits;
	size_t	       sig_siglen;
	size_t	       sig_keylen;
	size_t	       sig_b64keylen;
	dkim_query_t   sig_query;
	dkim_alg_t     sig_signalg;
	dkim_canon_t   sig_hdrcanonalg;
	dkim_canon_t   sig_bodycanonalg;
	uint64_t       sig_timestamp;
	unsigned char *sig_domain;
	unsigned char *sig_selector;
};

static _Atomic unsigned long ed_leaks;

unsigned long
dkim_sign_ed_leaks(void)
{
	return ed_leaks;
}

/* 0 when dkim_free(d) will free the Ed25519 state, -1 if not. */
static int
ed25519_free_fix(DKIM *d)
{
#if OPENDKIM_LIB_VERSION == 0x020B0000
	DKIM_SIGINFO		*sig = dkim_getsignature(d);
	struct odk_siginfo_head *h = (struct odk_siginfo_head *)sig;
	dkim_alg_t		 alg;

	if (sig != NULL && dkim_sig_getsignalg(sig, &alg) == DKIM_STAT_OK &&
	    alg == DKIM_SIGN_ED25519SHA256 && h->sig_signalg == alg &&
	    h->sig_keytype == ODK_KEYTYPE_ED25519 &&
	    h->sig_domain == dkim_sig_getdomain(sig) &&
	    h->sig_selector == dkim_sig_getselector(sig) &&
	    h->sig_domain != NULL) {
		h->sig_keytype = ODK_KEYTYPE_RSA;
		return 0;
	}
#endif
	ed_leaks++;
	return -1;
}

/* ------------------------------------------------------- signing */

struct signctx {
	DKIM  *d[DKIM_SIGN_MAX];
	size_t n;
	int    bol;	 /* un-stuffer at the beginning of a line */
	int    in_body;	 /* the empty line was seen */
	char  *hb;	 /* current field, its lines so far */
	size_t hlen, ls; /* ls: where its last line starts */
	size_t nfields;
	char  *body;
	size_t blen;
	int    rc; /* 0, 1 (cannot sign this message), -1 */
	char  *err;
	size_t errlen;
};

static void
sc_fail(struct signctx *c, int rc, const char *what, DKIM *d)
{
	const char *e = d != NULL ? dkim_geterror(d) : NULL;

	if (c->rc != 0)
		return;
	c->rc = rc;
	strfmt(c->err, c->errlen, "%s%s%s", what, e != NULL ? ": " : "",
	    e != NULL ? e : "");
}

/* A complete field (without its final CRLF) to every handle. */
static void
sc_field(struct signctx *c, const char *f, size_t n)
{
	DKIM_STAT st;
	size_t	  i;

	if (memchr(f, ':', n) == NULL) {
		sc_fail(c, 1, "a header line that is not a field", NULL);
		return;
	}
	if (++c->nfields > FIELDS_MAX) {
		sc_fail(c, 1, "too many header fields", NULL);
		return;
	}
	for (i = 0; i < c->n && c->rc == 0; i++)
		if ((st = dkim_header(c->d[i], (u_char *)f, n)) != DKIM_STAT_OK)
			sc_fail(c, st == DKIM_STAT_SYNTAX ? 1 : -1,
			    "dkim_header", c->d[i]);
}

static void
sc_eoh(struct signctx *c)
{
	size_t i;

	if (c->hlen > 0)
		sc_field(c, c->hb, c->hlen >= 2 ? c->hlen - 2 : c->hlen);
	c->hlen = c->ls = 0;
	c->in_body = 1;
	for (i = 0; i < c->n && c->rc == 0; i++)
		if (dkim_eoh(c->d[i]) != DKIM_STAT_OK)
			sc_fail(c, -1, "dkim_eoh", c->d[i]);
}

static void
sc_body_flush(struct signctx *c)
{
	size_t i;

	for (i = 0; i < c->n && c->rc == 0 && c->blen > 0; i++)
		if (dkim_body(c->d[i], (u_char *)c->body, c->blen) !=
		    DKIM_STAT_OK)
			sc_fail(c, -1, "dkim_body", c->d[i]);
	c->blen = 0;
}

/* Content (un-stuffed), at most one line, possibly part of one. */
static void
sc_content(struct signctx *c, const char *p, size_t n)
{
	const char *line;
	size_t	    ll;

	if (c->in_body) {
		while (n > 0) {
			size_t k = BODY_CHUNK_MAX - c->blen;

			if (k > n)
				k = n;
			memcpy(c->body + c->blen, p, k);
			c->blen += k;
			p += k;
			n -= k;
			if (c->blen == BODY_CHUNK_MAX)
				sc_body_flush(c);
		}
		return;
	}
	if (c->hlen + n > FIELD_MAX) {
		sc_fail(c, 1, "a header field too long", NULL);
		return;
	}
	memcpy(c->hb + c->hlen, p, n);
	c->hlen += n;
	if (c->hb[c->hlen - 1] != '\n')
		return;
	/* A line is complete: hb[ls, hlen). */
	line = c->hb + c->ls;
	ll = c->hlen - c->ls;
	if ((ll == 2 && line[0] == '\r') || ll == 1) {
		c->hlen = c->ls; /* the empty line ends the section */
		sc_eoh(c);
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		if (c->ls == 0)
			sc_fail(
			    c, 1, "a continuation line without a field", NULL);
		c->ls = c->hlen; /* folded: part of the field */
		return;
	}
	if (c->ls > 0) {
		/* A new field begins: the previous one is complete. */
		sc_field(c, c->hb, c->ls - 2);
		memmove(c->hb, line, ll);
		c->hlen = ll;
	}
	c->ls = c->hlen;
}

/* Wire form in, content out: one leading dot of each line goes. */
static void
sc_feed(struct signctx *c, const char *p, size_t n)
{
	const char *nl;
	size_t	    k;

	while (n > 0 && c->rc == 0) {
		if (c->bol && *p == '.') {
			p++;
			n--;
			c->bol = 0;
			continue;
		}
		nl = memchr(p, '\n', n);
		k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		sc_content(c, p, k);
		c->bol = nl != NULL;
		p += k;
		n -= k;
	}
}

/*
 * "DKIM-Signature: " + the library's field, its folds made CRLF whatever
 * it used (it writes CRLF; a lone CR or LF must never reach the wire).
 */
static void
sc_emit(struct signctx *c, DKIM *d, struct evbuffer *sigs)
{
	u_char *h = NULL;
	size_t	hl = 0, i, from;

	if (dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &h, &hl) !=
	    DKIM_STAT_OK) {
		sc_fail(c, -1, "dkim_getsighdr", d);
		return;
	}
	evbuffer_add_printf(sigs, "%s: ", DKIM_SIGNHEADER);
	for (i = from = 0; i < hl; i++) {
		if (h[i] != '\r' && h[i] != '\n')
			continue;
		evbuffer_add(sigs, h + from, i - from);
		if (h[i] == '\r' && i + 1 < hl && h[i + 1] == '\n')
			i++;
		evbuffer_add(sigs, "\r\n", 2);
		from = i + 1;
	}
	evbuffer_add(sigs, h + from, hl - from);
	evbuffer_add(sigs, "\r\n", 2);
}

int
dkim_sign_message(const struct dkim_signer *const *signers, size_t n,
    const char *id, struct evbuffer *prefix, struct spool *spool, size_t off,
    struct evbuffer *sigs, char *err, size_t errlen)
{
	struct signctx c;
	const char    *p;
	ssize_t	       r;
	size_t	       i, end, at;
	DKIM_STAT      st;

	memset(&c, 0, sizeof(c));
	c.bol = 1;
	c.err = err;
	c.errlen = errlen;
	if (n > DKIM_SIGN_MAX)
		n = DKIM_SIGN_MAX;
	for (i = 0; i < n; i++) {
		c.d[i] = dkim_sign(signers[i]->lib, (const u_char *)id, NULL,
		    (dkim_sigkey_t)signers[i]->key,
		    (const u_char *)signers[i]->selector,
		    (const u_char *)signers[i]->domain, DKIM_CANON_RELAXED,
		    DKIM_CANON_RELAXED, signers[i]->alg, -1, &st);
		if (c.d[i] == NULL) {
			strfmt(err, errlen, "dkim_sign: %s",
			    dkim_getresultstr(st));
			c.rc = -1;
			goto out;
		}
		c.n++;
	}
	c.hb = xmalloc(FIELD_MAX);
	c.body = xmalloc(BODY_CHUNK_MAX);
	if (prefix != NULL && evbuffer_get_length(prefix) > 0)
		sc_feed(&c, (const char *)evbuffer_pullup(prefix, -1),
		    evbuffer_get_length(prefix));
	/* The spool ends with the terminating ".\r\n": not content. */
	end = spool->len >= 3 ? spool->len - 3 : 0;
	for (at = off; at < end && c.rc == 0; at += (size_t)r) {
		if ((r = spool_span(spool, at, end - at, &p)) <= 0) {
			sc_fail(&c, -1, "reading the spool", NULL);
			break;
		}
		sc_feed(&c, p, (size_t)r);
	}
	if (c.rc == 0 && !c.in_body)
		sc_eoh(&c); /* header section only */
	sc_body_flush(&c);
	for (i = 0; i < c.n && c.rc == 0; i++) {
		if ((st = dkim_eom(c.d[i], NULL)) != DKIM_STAT_OK)
			sc_fail(&c, -1, "dkim_eom", c.d[i]);
		else if (signers[i]->alg == DKIM_SIGN_ED25519SHA256)
			(void)ed25519_free_fix(c.d[i]);
	}
	for (i = 0; i < c.n && c.rc == 0; i++)
		sc_emit(&c, c.d[i], sigs);
out:
	for (i = 0; i < c.n; i++)
		dkim_free(c.d[i]);
	free(c.hb);
	free(c.body);
	return c.rc;
}
