/*
 * dataframe.c - SMTP DATA/BDAT content framing and canonical re-dot-stuffing
 * (RFC 5321 §4.1.1.4 DATA, §4.5.2 transparency, §2.3.8 lines; RFC 3030
 * §2-3 BDAT). This file enforces invariant 2 of ARCHITECTURE.md: one
 * message in, one message out, no SMTP smuggling.
 *
 * Framing rule. The end of DATA is the first occurrence of the five bytes
 * CR LF "." CR LF in the client's stream, where the stream is taken to start
 * with a virtual CR LF (the DATA content starts at beginning of line, so
 * ".\r\n" as the very first line is an empty message). Nothing else ends
 * the data: not "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n\0.\r\n",
 * "x.\r\n" and the like. Conversely a real CR LF "." CR LF always ends it,
 * even when bare CR or LF came just before (e.g. "\r\r\n.\r\n": the first
 * CR is a bare CR and is flagged, but the last five bytes are a genuine
 * terminator that a strict upstream would see too). The framer therefore
 * agrees with any strict RFC 5321 reader about where the message ends.
 *
 * Content. The output is canonical: lines ended by CR LF only, no NUL, and
 * dot-unstuffed: when a line starts with "." and has other characters on
 * it, the first "." is removed (§4.5.2). Offending bytes:
 *
 *  - DF_REJECT: a bare LF, bare CR or NUL is recorded in flags and
 *    dropped, as if it were an invisible character of the current line: it
 *    does not end a line, and it does not start one (so "\r\n\n.\r\n" is
 *    neither an end nor an unstuffed line). The framer keeps going to the
 *    real terminator so the session stays in step with the client; the
 *    content is only meaningful as "what we would have had".
 *  - DF_NORMALIZE: a bare LF or bare CR ends the line and is emitted as
 *    CR LF; the next line is a new line for dot-unstuffing. NUL is dropped
 *    (and also recorded in flags), again as an invisible character of its
 *    line: "\r\n\0.\r\n" gives the content line "." (the line did not start
 *    with "."), ".\0x" gives "x".
 *
 * A "." alone on a line that did not both begin after a real CR LF and end
 * with a real CR LF (only possible under DF_NORMALIZE, e.g. "\n.\n",
 * "\r\n.\n", "\n.\r\n") is content: it is emitted as a line holding one
 * ".", not unstuffed, so that dotstuff re-sends it as ".." and the upstream
 * sees a content line "." rather than an end of data. This is the reading
 * of §4.5.2 in which "." CR LF is a terminator only between real CR LFs.
 *
 * BDAT mode: no dot handling and no end detection; the caller knows where
 * each chunk ends. Bare CR/LF/NUL are handled as above. dataframe_finish()
 * resolves a CR left pending at the end (a bare CR) and appends CR LF to
 * non-empty content that does not end with one.
 *
 * Output is emitted in spans: runs of ordinary bytes (including real CR LF
 * pairs and stuffed lines' text) are passed as one pointer into the
 * caller's input; only inserted CR LFs and the "." of a normalised dot line
 * come from constant strings. The scan for CR, LF and NUL uses memchr(),
 * remembering the next hit of each so a chunk is scanned at most once per
 * byte value (no quadratic behaviour on a chunk full of bare LFs).
 *
 * Threading and ownership: pure state machines, no I/O, no allocation, no
 * global state. One struct dataframe / struct dotstuff per transaction,
 * owned and serialised by the caller. Emitted spans are borrowed: valid only
 * during the emit call. The input is borrowed for the duration of the feed.
 */
#include <string.h>

#include "dataframe.h"

/*
 * Private states (low byte of df->state). "Soft" beginnings of line follow
 * a normalised bare CR or LF: dot-unstuffing applies there, end of data
 * does not.
 */
enum df_state {
	ST_BOL = 0,	/* beginning of line after a real CR LF (or start) */
	ST_BOL_SOFT,	/* beginning of line after a normalised bare CR/LF */
	ST_MID,		/* inside a line */
	ST_CR,		/* CR consumed (not emitted), is it followed by LF? */
	ST_DOT,		/* ST_BOL + "." consumed, not emitted */
	ST_DOT_SOFT,	/* ST_BOL_SOFT + "." consumed, not emitted */
	ST_DOT_CR,	/* ST_DOT + CR: LF ends the data */
	ST_DOT_CR_SOFT, /* ST_DOT_SOFT + CR: LF ends a content line "." */
	ST_DONE		/* terminator consumed, or finished */
			/* ST_COUNT */
};

#define ST_MASK 0xff
#define ST_EOL	0x100 /* last emitted byte was the LF of a CR LF */

static const char crlf[] = "\r\n";
static const char dotcrlf[] = ".\r\n";

static int
st_get(const struct dataframe *df)
{
	return df->state & ST_MASK;
}

static void
st_set(struct dataframe *df, int st)
{
	df->state = (df->state & ~ST_MASK) | st;
}

/* Emit n content bytes (n may be 0); keep bytes_out and ST_EOL current. */
static void
df_out(struct dataframe *df, const char *p, size_t n)
{
	if (n == 0)
		return;
	df->bytes_out += n;
	if (p[n - 1] == '\n')
		df->state |= ST_EOL;
	else
		df->state &= ~ST_EOL;
	df->emit(df->arg, p, n);
}

void
dataframe_init(struct dataframe *df, enum df_mode mode, enum df_policy bare,
    enum df_policy nul, df_emit_fn emit, void *arg)
{
	memset(df, 0, sizeof(*df));
	df->mode = mode;
	df->bare_policy = bare;
	df->nul_policy = nul;
	df->emit = emit;
	df->arg = arg;
	/* The content starts at beginning of line (RFC 5321 §4.1.1.4). */
	df->state = ST_BOL;
}

/*
 * A bare CR or LF (already consumed) inside a line or at its start.
 * Reject: flag it, emit nothing, stay inside the line. Normalise: end the
 * line with CR LF; the next line begins "softly".
 */
static void
df_bare(struct dataframe *df, unsigned flag)
{
	df->flags |= flag;
	if (df->bare_policy == DF_NORMALIZE) {
		df_out(df, crlf, 2);
		st_set(df, df->mode == DF_MODE_DATA ? ST_BOL_SOFT : ST_BOL);
	} else
		st_set(df, ST_MID);
}

/*
 * A bare CR or LF right after a pending "." at beginning of line. Reject:
 * the line has another (invisible) character, so the dot was stuffing and
 * is dropped. Normalise: the line is "." alone but not between real CR LFs,
 * hence a content line holding a single ".".
 */
static void
df_bare_dot(struct dataframe *df, unsigned flag)
{
	df->flags |= flag;
	if (df->bare_policy == DF_NORMALIZE) {
		df_out(df, dotcrlf, 3);
		st_set(df, ST_BOL_SOFT);
	} else
		st_set(df, ST_MID);
}

/*
 * Index of the first CR, LF or NUL in [p, end), or end. The last hit of
 * each byte value is cached in nx[] (NULL: not searched yet) so that every
 * byte of a chunk is looked at at most once per value.
 */
static const char *
df_special(const char *p, const char *end, const char *nx[3])
{
	static const char want[3] = { '\r', '\n', '\0' };
	const char	 *best = end;
	int		  i;

	for (i = 0; i < 3; i++) {
		if (nx[i] == NULL || (nx[i] < p && nx[i] != end)) {
			nx[i] = memchr(p, want[i], (size_t)(end - p));
			if (nx[i] == NULL)
				nx[i] = end;
		}
		if (nx[i] < best)
			best = nx[i];
	}
	return best;
}

/*
 * Consume in[0..len). DATA mode stops right after the terminator and
 * returns the bytes consumed; BDAT mode consumes all. `run` is the start of
 * the pending verbatim span: bytes in [run, p) are still to be emitted as
 * they are. Before any byte is dropped or replaced, the run is flushed.
 */
size_t
dataframe_feed(struct dataframe *df, const char *in, size_t len)
{
	const char *p = in, *end = in + len, *run = in, *s;
	const char *nx[3] = { NULL, NULL, NULL };
	int	    data = df->mode == DF_MODE_DATA;

	if (st_get(df) == ST_DONE)
		return 0;

	while (p < end) {
		switch (st_get(df)) {
		case ST_BOL:
		case ST_BOL_SOFT:
			if (data && *p == '.') {
				df_out(df, run, (size_t)(p - run));
				st_set(df,
				    st_get(df) == ST_BOL ? ST_DOT
							 : ST_DOT_SOFT);
				run = ++p;
				break;
			}
			st_set(df, ST_MID);
			break;
		case ST_MID:
			/* The common case: a long run of ordinary bytes. */
			s = df_special(p, end, nx);
			p = s;
			if (p == end)
				break;
			if (*p == '\r') {
				if (p + 1 < end && p[1] == '\n') {
					/* Real CR LF: stays in the run. */
					p += 2;
					st_set(df, ST_BOL);
					break;
				}
				df_out(df, run, (size_t)(p - run));
				st_set(df, ST_CR);
				run = ++p;
			} else if (*p == '\n') {
				df_out(df, run, (size_t)(p - run));
				run = ++p;
				df_bare(df, DF_F_BARE_LF);
			} else {
				/* NUL: dropped under both policies. */
				df_out(df, run, (size_t)(p - run));
				run = ++p;
				df->flags |= DF_F_NUL;
			}
			break;
		case ST_CR:
			/* run == p: the CR was not emitted. */
			if (*p == '\n') {
				df_out(df, crlf, 2);
				st_set(df, ST_BOL);
				run = ++p;
			} else
				df_bare(df, DF_F_BARE_CR); /* p is reread */
			break;
		case ST_DOT:
		case ST_DOT_SOFT:
			/* run == p: the "." was not emitted. */
			if (*p == '\r') {
				st_set(df,
				    st_get(df) == ST_DOT ? ST_DOT_CR
							 : ST_DOT_CR_SOFT);
				run = ++p;
			} else if (*p == '\n') {
				run = ++p;
				df_bare_dot(df, DF_F_BARE_LF);
			} else {
				/*
				 * Another character follows: the dot was
				 * stuffing (§4.5.2) and is dropped. A NUL
				 * counts as a character here; the ST_MID
				 * code drops and flags it.
				 */
				st_set(df, ST_MID);
			}
			break;
		case ST_DOT_CR:
		case ST_DOT_CR_SOFT:
			/* run == p: neither "." nor CR emitted. */
			if (*p == '\n') {
				run = ++p;
				if (st_get(df) == ST_DOT_CR) {
					/* CR LF "." CR LF: end of data. */
					st_set(df, ST_DONE);
					df->done = 1;
					return (size_t)(p - in);
				}
				/* "." line after a normalised bare CR/LF. */
				df_out(df, dotcrlf, 3);
				st_set(df, ST_BOL);
			} else
				df_bare_dot(df, DF_F_BARE_CR); /* p is reread */
			break;
		default:
			/* ST_DONE is handled above; nothing else exists. */
			return (size_t)(p - in);
		}
	}
	df_out(df, run, (size_t)(p - run));
	return (size_t)(p - in);
}

/*
 * End of content (BDAT LAST, or the caller gives up on DATA). A pending CR
 * is a bare CR; a pending "." (DATA mode only) is a line holding "." that
 * never got its end; then non-empty content that does not end in CR LF
 * gets one, so that it can be relayed with DATA.
 */
void
dataframe_finish(struct dataframe *df)
{
	switch (st_get(df)) {
	case ST_DONE:
		return;
	case ST_CR:
		df_bare(df, DF_F_BARE_CR);
		break;
	case ST_DOT:
	case ST_DOT_SOFT:
		df_out(df, dotcrlf, 1);
		break;
	case ST_DOT_CR:
	case ST_DOT_CR_SOFT:
		df_bare_dot(df, DF_F_BARE_CR);
		break;
	default:
		break;
	}
	if (df->bytes_out > 0 && !(df->state & ST_EOL))
		df_out(df, crlf, 2);
	st_set(df, ST_DONE);
	df->done = 1;
}

void
dotstuff_init(struct dotstuff *ds, df_emit_fn emit, void *arg)
{
	memset(ds, 0, sizeof(*ds));
	ds->bol = 1;
	ds->emit = emit;
	ds->arg = arg;
}

/*
 * Content in, wire out: every line that starts with "." gets one more
 * (RFC 5321 §4.5.2). Lines are CR LF terminated; as a safety margin a "."
 * after any LF is doubled, so even non-canonical input can never put
 * "\n.\r\n" on the wire. ds->bol is 1 after CR LF (or at start), 2 after
 * a bare LF, 0 inside a line. The extra dot is a constant string; the
 * input is passed through in spans.
 */
void
dotstuff_feed(struct dotstuff *ds, const char *p, size_t n)
{
	const char *start = p, *end = p + n, *run = p, *lf;

	if (n == 0)
		return;
	while (p < end) {
		if (ds->bol && *p == '.') {
			if (p > run)
				ds->emit(ds->arg, run, (size_t)(p - run));
			ds->emit(ds->arg, ".", 1);
			run = p; /* the original "." follows in the run */
		}
		lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL) {
			ds->bol = 0;
			break;
		}
		if (lf > start ? lf[-1] == '\r' : ds->cr)
			ds->bol = 1;
		else
			ds->bol = 2;
		p = lf + 1;
	}
	ds->cr = end[-1] == '\r';
	if (end > run)
		ds->emit(ds->arg, run, (size_t)(end - run));
}

/*
 * The terminator. Content that does not end with CR LF (never the case for
 * framer output) is first completed: with LF when it ends in CR, else with
 * CR LF, so that the terminator is always preceded by a real CR LF.
 */
void
dotstuff_end(struct dotstuff *ds)
{
	if (ds->bol != 1) {
		if (ds->cr)
			ds->emit(ds->arg, "\n", 1);
		else
			ds->emit(ds->arg, "\r\n", 2);
	}
	ds->emit(ds->arg, ".\r\n", 3);
	ds->bol = 1;
	ds->cr = 0;
}

/* In-place unstuffing: the framer's output is written at w. */
struct unstuff {
	char  *base;
	size_t w;
};

static void
unstuff_emit(void *arg, const char *p, size_t n)
{
	struct unstuff *u = arg;

	/* Until the first stuffed dot the output is the input: writing it
	 * back would only dirty every page (copy-on-write in moat-scand). */
	if (p != u->base + u->w)
		memmove(u->base + u->w, p, n);
	u->w += n;
}

/*
 * Undo SMTP dot-stuffing of [p, p+len) in place and drop the final
 * ".\r\n". Returns the content length, or -1 when the content does not end
 * with exactly one end-of-data line.
 */
long long
dataframe_unstuff(char *p, size_t len)
{
	struct dataframe df;
	struct unstuff	 u = { p, 0 };
	size_t		 used;

	dataframe_init(
	    &df, DF_MODE_DATA, DF_REJECT, DF_REJECT, unstuff_emit, &u);
	used = dataframe_feed(&df, p, len);
	if (!df.done || used != len)
		return -1;
	return (long long)u.w;
}
