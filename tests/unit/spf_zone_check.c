/*
 * spf_zone_check.c - runs SPF evaluations (filters/spf/spf_eval.c, the
 * code moatd uses) against a zone given on standard input, for the RFC
 * 7208 test suite (tests/integration/test_spf_suite.py) and for unit
 * tests. The zone stands in for the resolver: each record the evaluation
 * misses is looked up here and handed back, exactly as the filter hands
 * back the resolver's answers.
 *
 * Input, one item per line, fields separated by tabs (\t, \n and \\
 * escaped inside a field):
 *	zone	NAME	TYPE	VALUE	(TYPE: A AAAA MX PTR TXT CNAME TIMEOUT;
 *					 MX value "PREF NAME")
 *	case	ID	IP	HELO	MAILFROM	[helo]
 *	reset				(forget the zone)
 * Output for each case: "ID<TAB>result<TAB>explanation<TAB>reason".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_eval.h"
#include "util.h"

struct zrec {
	char  *name;
	int    type; /* DNS_T_*, 0 for TIMEOUT */
	char  *value;
	size_t vlen;
};

static struct zrec *zone;
static size_t	    nzone;

/* Undo the escapes in place; the length (a value may hold NULs). */
static size_t
unescape(char *s)
{
	char *o = s, *start = s;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			s++;
			*o++ = *s == 't' ? '\t'
			    : *s == 'n'	 ? '\n'
			    : *s == '0'	 ? '\0'
					 : *s;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return (size_t)(o - start);
}

static int
split(char *line, char **f, size_t *flen, int max)
{
	int n = 0;

	while (n < max) {
		f[n++] = line;
		if ((line = strchr(line, '\t')) == NULL)
			break;
		*line++ = '\0';
	}
	for (int i = 0; i < n; i++)
		flen[i] = unescape(f[i]);
	return n;
}

static void
zone_reset(void)
{
	for (size_t i = 0; i < nzone; i++) {
		free(zone[i].name);
		free(zone[i].value);
	}
	free(zone);
	zone = NULL;
	nzone = 0;
}

static int
norm_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 0 && a[la - 1] == '.')
		la--;
	while (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/* Answer name/type from the zone, following CNAMEs. */
static void
zone_answer(struct spf_eval *e, const char *qname, int type)
{
	struct spf_rr rr[64];
	const char   *name = qname;
	char	      mx[64][300];
	size_t	      n = 0, i;
	int	      exists = 0, timeout = 0, hops;

	for (hops = 0; hops < 8; hops++) {
		const char *cname = NULL;

		exists = 0;
		for (i = 0; i < nzone; i++) {
			if (!norm_eq(zone[i].name, name))
				continue;
			exists = 1;
			if (zone[i].type == 0)
				timeout = 1; /* unless records of the type */
			if (zone[i].type == DNS_T_CNAME)
				cname = zone[i].value;
			if (zone[i].type != type || n >= nitems(rr))
				continue;
			if (type == DNS_T_MX) {
				/* "PREF NAME": the name is what SPF uses */
				const char *sp = strchr(zone[i].value, ' ');

				snprintf(mx[n], sizeof(mx[n]), "%s",
				    sp ? sp + 1 : zone[i].value);
				size_t l = strlen(mx[n]);
				while (l > 0 && mx[n][l - 1] == '.')
					mx[n][--l] = '\0';
				rr[n].text = mx[n];
				rr[n].len = l;
			} else {
				rr[n].text = zone[i].value;
				rr[n].len = zone[i].vlen;
			}
			n++;
		}
		if (n > 0 || timeout || cname == NULL || type == DNS_T_CNAME)
			break;
		name = cname;
	}
	if (n > 0)
		spf_eval_answer(e, qname, type, DNS_OK, rr, n);
	else if (timeout)
		spf_eval_answer(e, qname, type, DNS_TIMEOUT, NULL, 0);
	else
		spf_eval_answer(e, qname, type,
		    exists ? DNS_NODATA : DNS_NXDOMAIN, NULL, 0);
}

static void
out_field(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\t' || *s == '\n')
			putchar(' ');
		else
			putchar(*s);
	}
}

static void
run_case(char **f, int nf)
{
	struct sockaddr_storage ss;
	struct spf_eval	       *e;
	int			i;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, f[2], &((struct sockaddr_in *)&ss)->sin_addr))
		ss.ss_family = AF_INET;
	else if (inet_pton(
		     AF_INET6, f[2], &((struct sockaddr_in6 *)&ss)->sin6_addr))
		ss.ss_family = AF_INET6;
	else {
		printf("%s\tbad-ip\t\t\n", f[1]);
		return;
	}
	e = spf_eval_new((struct sockaddr *)&ss,
	    nf > 5 && strcmp(f[5], "helo") == 0 ? SPF_ID_HELO : SPF_ID_MAILFROM,
	    f[3], f[4], "receiver.test");
	for (i = 0; i < 1000 && !spf_eval_run(e); i++)
		for (size_t j = 0; j < e->nmissing; j++)
			zone_answer(e, e->missing[j].name, e->missing[j].type);
	printf("%s\t%s\t", f[1], spf_verdict_name(e->result));
	out_field(e->explanation);
	putchar('\t');
	out_field(e->problem);
	printf("\t%u\n", e->runs);
	fflush(stdout);
	spf_eval_free(e);
}

int
main(void)
{
	char   *line = NULL, *f[8];
	size_t	flen[8];
	size_t	cap = 0;
	ssize_t len;
	int	nf;

	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		nf = split(line, f, flen, 8);
		if (strcmp(f[0], "reset") == 0)
			zone_reset();
		else if (strcmp(f[0], "zone") == 0 && nf >= 3) {
			zone = xrealloc(zone, (nzone + 1) * sizeof(*zone));
			zone[nzone].name = xstrdup(f[1]);
			zone[nzone].type = strcmp(f[2], "TIMEOUT") == 0
			    ? 0
			    : dns_type_parse(f[2]);
			zone[nzone].vlen = nf > 3 ? flen[3] : 0;
			zone[nzone].value = xmalloc(zone[nzone].vlen + 1);
			memcpy(zone[nzone].value, nf > 3 ? f[3] : "",
			    zone[nzone].vlen);
			zone[nzone].value[zone[nzone].vlen] = '\0';
			nzone++;
		} else if (strcmp(f[0], "case") == 0 && nf >= 5)
			run_case(f, nf);
	}
	zone_reset();
	free(line);
	return 0;
}
