/*
 * sa_meta.c - SpamAssassin meta rules: boolean and arithmetic expressions
 * over other rules' hit counts (Mail::SpamAssassin::Conf "meta": || && !
 * + - * / < <= > >= == != parentheses, numbers, rule names), compiled to
 * a small stack byte code at load, ordered so that a meta runs after the
 * metas it reads, with dependency cycles rejected.
 *
 * Values follow Perl, as SpamAssassin evaluates the expression in Perl:
 * a rule's value is its hit count (0 when it did not fire, was not run,
 * or is not defined at all); "a && b" is a ? b : a, "a || b" is a ? a : b,
 * "!a" is 1 or 0 (Perl's ""), comparisons 1 or 0, x / 0 = 0 (Perl dies,
 * SpamAssassin then counts the meta as not hit). A meta fires when its
 * value is not 0.
 *
 * Bounded: at most SA_META_MAXCODE operations and SA_META_MAXSTACK
 * nesting per meta. Load-time only writes; evaluation is read-only and
 * thread-safe.
 */
#include <stdlib.h>
#include <string.h>

#include "sa_int.h"
#include "util.h"

struct mparse {
	struct sa_ruleset *rs;
	const char	  *p;
	struct sa_mop	  *code;
	unsigned	   n;
	unsigned	   depth;
	char		  *why;
	size_t		   whylen;
	int		   err;
};

static void
emit(struct mparse *m, enum sa_mopcode op, uint32_t arg, double num)
{
	if (m->err)
		return;
	if (m->n >= SA_META_MAXCODE) {
		strfmt(m->why, m->whylen, "meta expression too long");
		m->err = 1;
		return;
	}
	m->code[m->n].op = op;
	m->code[m->n].arg = arg;
	m->code[m->n].num = num;
	m->n++;
}

static void
skipws(struct mparse *m)
{
	while (*m->p == ' ' || *m->p == '\t')
		m->p++;
}

static int
isname(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

static void parse_or(struct mparse *);

static void
parse_primary(struct mparse *m)
{
	char	    name[256];
	const char *s;
	size_t	    len;
	int	    idx;

	skipws(m);
	if (m->err)
		return;
	if (*m->p == '(') {
		if (++m->depth > SA_META_MAXSTACK) {
			strfmt(m->why, m->whylen, "meta nested too deep");
			m->err = 1;
			return;
		}
		m->p++;
		parse_or(m);
		skipws(m);
		if (*m->p != ')') {
			if (!m->err)
				strfmt(m->why, m->whylen, "meta: missing ')'");
			m->err = 1;
			return;
		}
		m->p++;
		m->depth--;
		return;
	}
	if ((*m->p >= '0' && *m->p <= '9') || *m->p == '.') {
		char  *end;
		double v = strtod(m->p, &end);

		if (end == m->p) {
			strfmt(m->why, m->whylen, "meta: bad number");
			m->err = 1;
			return;
		}
		m->p = end;
		emit(m, MOP_NUM, 0, v);
		return;
	}
	if (isname((unsigned char)*m->p)) {
		s = m->p;
		while (isname((unsigned char)*m->p))
			m->p++;
		len = (size_t)(m->p - s);
		if (len >= sizeof(name)) {
			strfmt(m->why, m->whylen, "meta: rule name too long");
			m->err = 1;
			return;
		}
		memcpy(name, s, len);
		name[len] = '\0';
		idx = sa_rule_index(m->rs, name);
		if (idx < 0 || !m->rs->rules[idx]->defined)
			emit(m, MOP_ZERO, 0, 0);
		else
			emit(m, MOP_RULE, (uint32_t)idx, 0);
		return;
	}
	strfmt(m->why, m->whylen, "meta: unexpected '%.10s'",
	    *m->p ? m->p : "end");
	m->err = 1;
}

static void
parse_unary(struct mparse *m)
{
	skipws(m);
	if (*m->p == '!' && m->p[1] != '=') {
		m->p++;
		if (++m->depth > SA_META_MAXSTACK) {
			strfmt(m->why, m->whylen, "meta nested too deep");
			m->err = 1;
			return;
		}
		parse_unary(m);
		m->depth--;
		emit(m, MOP_NOT, 0, 0);
		return;
	}
	if (*m->p == '-') {
		m->p++;
		if (++m->depth > SA_META_MAXSTACK) {
			strfmt(m->why, m->whylen, "meta nested too deep");
			m->err = 1;
			return;
		}
		parse_unary(m);
		m->depth--;
		emit(m, MOP_NEG, 0, 0);
		return;
	}
	if (*m->p == '+') {
		m->p++;
		parse_unary(m);
		return;
	}
	parse_primary(m);
}

static void
parse_mul(struct mparse *m)
{
	char op;

	parse_unary(m);
	for (;;) {
		skipws(m);
		if (m->err || (*m->p != '*' && *m->p != '/'))
			return;
		op = *m->p++;
		parse_unary(m);
		emit(m, op == '*' ? MOP_MUL : MOP_DIV, 0, 0);
	}
}

static void
parse_add(struct mparse *m)
{
	char op;

	parse_mul(m);
	for (;;) {
		skipws(m);
		if (m->err || (*m->p != '+' && *m->p != '-'))
			return;
		op = *m->p++;
		parse_mul(m);
		emit(m, op == '+' ? MOP_ADD : MOP_SUB, 0, 0);
	}
}

static void
parse_rel(struct mparse *m)
{
	enum sa_mopcode op;

	parse_add(m);
	for (;;) {
		skipws(m);
		if (m->err)
			return;
		if (m->p[0] == '<' && m->p[1] == '=')
			op = MOP_LE, m->p += 2;
		else if (m->p[0] == '>' && m->p[1] == '=')
			op = MOP_GE, m->p += 2;
		else if (m->p[0] == '<')
			op = MOP_LT, m->p += 1;
		else if (m->p[0] == '>')
			op = MOP_GT, m->p += 1;
		else
			return;
		parse_add(m);
		emit(m, op, 0, 0);
	}
}

static void
parse_eq(struct mparse *m)
{
	enum sa_mopcode op;

	parse_rel(m);
	for (;;) {
		skipws(m);
		if (m->err)
			return;
		if (m->p[0] == '=' && m->p[1] == '=')
			op = MOP_EQ;
		else if (m->p[0] == '!' && m->p[1] == '=')
			op = MOP_NE;
		else
			return;
		m->p += 2;
		parse_rel(m);
		emit(m, op, 0, 0);
	}
}

static void
parse_and(struct mparse *m)
{
	parse_eq(m);
	for (;;) {
		skipws(m);
		if (m->err || m->p[0] != '&' || m->p[1] != '&')
			return;
		m->p += 2;
		parse_eq(m);
		emit(m, MOP_AND, 0, 0);
	}
}

static void
parse_or(struct mparse *m)
{
	parse_and(m);
	for (;;) {
		skipws(m);
		if (m->err || m->p[0] != '|' || m->p[1] != '|')
			return;
		m->p += 2;
		parse_and(m);
		emit(m, MOP_OR, 0, 0);
	}
}

/* The stack depth the code needs, or -1 if it is not well formed. */
static int
stack_need(const struct sa_mop *code, unsigned n)
{
	int	 sp = 0, max = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		switch (code[i].op) {
		case MOP_RULE:
		case MOP_ZERO:
		case MOP_NUM:
			sp++;
			break;
		case MOP_NOT:
		case MOP_NEG:
			if (sp < 1)
				return -1;
			break;
		default:
			if (sp < 2)
				return -1;
			sp--;
			break;
		}
		if (sp > max)
			max = sp;
	}
	return sp == 1 ? max : -1;
}

int
sa_meta_compile(
    struct sa_ruleset *rs, struct sa_rule *r, char *why, size_t whylen)
{
	struct mparse m;
	int	      need;

	memset(&m, 0, sizeof(m));
	m.rs = rs;
	m.p = r->metasrc;
	m.why = why;
	m.whylen = whylen;
	m.code = xcalloc(SA_META_MAXCODE, sizeof(*m.code));
	parse_or(&m);
	skipws(&m);
	if (!m.err && *m.p != '\0') {
		strfmt(why, whylen, "meta: unexpected '%.10s'", m.p);
		m.err = 1;
	}
	if (!m.err) {
		need = stack_need(m.code, m.n);
		if (need < 0 || need > SA_META_MAXSTACK) {
			strfmt(why, whylen, "meta: expression too complex");
			m.err = 1;
		}
	}
	if (m.err) {
		free(m.code);
		return -1;
	}
	free(r->code);
	r->code = xrealloc(m.code, (m.n ? m.n : 1) * sizeof(*m.code));
	r->ncode = m.n;
	return 0;
}

double
sa_meta_value(const struct sa_rule *r, const double *values)
{
	double	 st[SA_META_MAXSTACK + 1], a, b;
	int	 sp = 0;
	unsigned i;

	for (i = 0; i < r->ncode; i++) {
		const struct sa_mop *o = &r->code[i];

		switch (o->op) {
		case MOP_RULE:
			st[sp++] = values[o->arg];
			continue;
		case MOP_ZERO:
			st[sp++] = 0;
			continue;
		case MOP_NUM:
			st[sp++] = o->num;
			continue;
		case MOP_NOT:
			st[sp - 1] = st[sp - 1] != 0 ? 0 : 1;
			continue;
		case MOP_NEG:
			st[sp - 1] = -st[sp - 1];
			continue;
		default:
			break;
		}
		b = st[--sp];
		a = st[sp - 1];
		switch (o->op) {
		case MOP_MUL:
			a = a * b;
			break;
		case MOP_DIV:
			a = b != 0 ? a / b : 0;
			break;
		case MOP_ADD:
			a = a + b;
			break;
		case MOP_SUB:
			a = a - b;
			break;
		case MOP_LT:
			a = a < b;
			break;
		case MOP_LE:
			a = a <= b;
			break;
		case MOP_GT:
			a = a > b;
			break;
		case MOP_GE:
			a = a >= b;
			break;
		case MOP_EQ:
			a = a == b;
			break;
		case MOP_NE:
			a = a != b;
			break;
		case MOP_AND:
			a = a != 0 ? b : a;
			break;
		case MOP_OR:
			a = a != 0 ? a : b;
			break;
		default:
			break;
		}
		st[sp - 1] = a;
	}
	return sp == 1 ? st[0] : 0;
}

/*
 * Topological order of the runnable metas (depth-first, iterative so a
 * long chain cannot overflow the C stack). Metas in a cycle are marked
 * not runnable; the first one is returned in *bad with the reason.
 */
size_t
sa_meta_order(
    struct sa_ruleset *rs, char *why, size_t whylen, struct sa_rule **bad)
{
	unsigned char *color; /* 0 white, 1 grey, 2 black */
	uint32_t      *stack, *pos, *out;
	size_t	       nout = 0, nbad = 0, i, sp;

	color = xcalloc(rs->nrules ? rs->nrules : 1, 1);
	stack = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(*stack));
	pos = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(*pos));
	out = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(*out));
	*bad = NULL;
	for (i = 0; i < rs->nrules; i++) {
		struct sa_rule *r = rs->rules[i];

		if (!r->defined || r->type != SA_META || r->code == NULL ||
		    color[i] != 0)
			continue;
		sp = 0;
		stack[sp] = (uint32_t)i;
		pos[sp] = 0;
		sp++;
		color[i] = 1;
		while (sp > 0) {
			struct sa_rule *t = rs->rules[stack[sp - 1]];
			uint32_t	dep;

			if (pos[sp - 1] >= t->ncode) {
				color[stack[sp - 1]] = 2;
				out[nout++] = stack[sp - 1];
				sp--;
				continue;
			}
			if (t->code[pos[sp - 1]].op != MOP_RULE) {
				pos[sp - 1]++;
				continue;
			}
			dep = t->code[pos[sp - 1]++].arg;
			if (rs->rules[dep]->type != SA_META ||
			    rs->rules[dep]->code == NULL)
				continue;
			if (color[dep] == 1) {
				/* a cycle: every grey meta on the stack */
				size_t k;

				if (*bad == NULL) {
					*bad = rs->rules[dep];
					strfmt(why, whylen,
					    "meta %s: dependency cycle "
					    "through %s",
					    t->name, rs->rules[dep]->name);
				}
				for (k = 0; k < sp && stack[k] != dep; k++)
					;
				for (; k < sp; k++) {
					struct sa_rule *c = rs->rules[stack[k]];

					if (c->run) {
						c->run = 0;
						nbad++;
					}
				}
				continue;
			}
			if (color[dep] == 2)
				continue;
			color[dep] = 1;
			stack[sp] = dep;
			pos[sp] = 0;
			sp++;
		}
	}
	/* keep only runnable metas, in dependency order */
	free(rs->order[SA_META]);
	rs->order[SA_META] = xcalloc(nout ? nout : 1, sizeof(uint32_t));
	rs->norder[SA_META] = 0;
	for (i = 0; i < nout; i++)
		if (rs->rules[out[i]]->run)
			rs->order[SA_META][rs->norder[SA_META]++] = out[i];
	free(color);
	free(stack);
	free(pos);
	free(out);
	return nbad;
}

/* ------------------------------------------------------------ intervals */

#define IV_INF 1e300

static void
iv_hull(double *lo, double *hi, double alo, double ahi, double blo, double bhi)
{
	*lo = alo < blo ? alo : blo;
	*hi = ahi > bhi ? ahi : bhi;
}

/* does [lo, hi] hold 0 */
static int
iv_zero(double lo, double hi)
{
	return lo <= 0 && hi >= 0;
}

static void
iv_minmax4(double *lo, double *hi, double a, double b, double c, double d)
{
	*lo = a;
	*hi = a;
	if (b < *lo)
		*lo = b;
	if (b > *hi)
		*hi = b;
	if (c < *lo)
		*lo = c;
	if (c > *hi)
		*hi = c;
	if (d < *lo)
		*lo = d;
	if (d > *hi)
		*hi = d;
}

/*
 * The meta's value when some rules are not known yet: each rule's value
 * lies in [lo[i], hi[i]]; the result is an interval holding every value
 * the meta can take (sound, not always tight). Same Perl semantics as
 * sa_meta_value(), and the same got_hit() mapping is left to the caller.
 */
void
sa_meta_interval(const struct sa_rule *r, const double *lo, const double *hi,
    double *rlo, double *rhi)
{
	double	 sl[SA_META_MAXSTACK + 1], sh[SA_META_MAXSTACK + 1];
	double	 al, ah, bl, bh, l, h;
	int	 sp = 0;
	unsigned i;

	for (i = 0; i < r->ncode; i++) {
		const struct sa_mop *o = &r->code[i];

		switch (o->op) {
		case MOP_RULE:
			sl[sp] = lo[o->arg];
			sh[sp++] = hi[o->arg];
			continue;
		case MOP_ZERO:
			sl[sp] = sh[sp] = 0;
			sp++;
			continue;
		case MOP_NUM:
			sl[sp] = sh[sp] = o->num;
			sp++;
			continue;
		case MOP_NOT:
			al = sl[sp - 1];
			ah = sh[sp - 1];
			if (al == 0 && ah == 0)
				sl[sp - 1] = sh[sp - 1] = 1;
			else if (!iv_zero(al, ah))
				sl[sp - 1] = sh[sp - 1] = 0;
			else {
				sl[sp - 1] = 0;
				sh[sp - 1] = 1;
			}
			continue;
		case MOP_NEG:
			al = sl[sp - 1];
			sl[sp - 1] = -sh[sp - 1];
			sh[sp - 1] = -al;
			continue;
		default:
			break;
		}
		sp--;
		bl = sl[sp];
		bh = sh[sp];
		al = sl[sp - 1];
		ah = sh[sp - 1];
		switch (o->op) {
		case MOP_ADD:
			l = al + bl;
			h = ah + bh;
			break;
		case MOP_SUB:
			l = al - bh;
			h = ah - bl;
			break;
		case MOP_MUL:
			iv_minmax4(&l, &h, al * bl, al * bh, ah * bl, ah * bh);
			break;
		case MOP_DIV:
			if (bl == 0 && bh == 0)
				l = h = 0;
			else if (!iv_zero(bl, bh))
				iv_minmax4(
				    &l, &h, al / bl, al / bh, ah / bl, ah / bh);
			else {
				l = -IV_INF;
				h = IV_INF;
			}
			break;
		case MOP_LT:
		case MOP_GE:
			/* a < b certainly, certainly not, or either */
			l = ah < bl ? 1 : al >= bh ? 0 : -1;
			if (o->op == MOP_GE && l >= 0)
				l = 1 - l;
			h = l < 0 ? 1 : l;
			if (l < 0)
				l = 0;
			break;
		case MOP_LE:
		case MOP_GT:
			l = ah <= bl ? 1 : al > bh ? 0 : -1;
			if (o->op == MOP_GT && l >= 0)
				l = 1 - l;
			h = l < 0 ? 1 : l;
			if (l < 0)
				l = 0;
			break;
		case MOP_EQ:
		case MOP_NE:
			if (al == ah && bl == bh && al == bl)
				l = 1;
			else if (ah < bl || bh < al)
				l = 0;
			else
				l = -1;
			if (o->op == MOP_NE && l >= 0)
				l = 1 - l;
			h = l < 0 ? 1 : l;
			if (l < 0)
				l = 0;
			break;
		case MOP_AND: /* a ? b : a, a falsy = 0 */
			if (al == 0 && ah == 0)
				l = h = 0;
			else if (!iv_zero(al, ah)) {
				l = bl;
				h = bh;
			} else
				iv_hull(&l, &h, bl, bh, 0, 0);
			break;
		case MOP_OR: /* a ? a : b */
			if (al == 0 && ah == 0) {
				l = bl;
				h = bh;
			} else if (!iv_zero(al, ah)) {
				l = al;
				h = ah;
			} else
				iv_hull(&l, &h, al, ah, bl, bh);
			break;
		default:
			l = -IV_INF;
			h = IV_INF;
			break;
		}
		sl[sp - 1] = l;
		sh[sp - 1] = h;
	}
	if (sp == 1) {
		*rlo = sl[0];
		*rhi = sh[0];
	} else
		*rlo = *rhi = 0;
}
