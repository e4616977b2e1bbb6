/*
 * moat_dns.c - "moat dns": one lookup through moat's own resolver
 * (resolver.h), with the configuration's forwarders, trust anchor and
 * limits, so an operator sees exactly what the filters will see.
 *
 *	moat [-c file] dns [--json] name [type]	(type: A by default)
 *	moat [-c file] dns [--json] -x address	(the reverse name, PTR)
 *
 * Exit 0 when the answer has records, 1 otherwise (nodata, nxdomain, a
 * failure), 2 on usage errors. Single-threaded apart from libunbound's
 * worker; one event loop plays both the main loop and the asking loop.
 */
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loop.h"
#include "moat.h"
#include "resolver.h"

struct dns_cmd {
	struct loop *loop;
	const char  *name;
	int	     type;
	int	     json;
	int	     rc;
};

static void
print_text(FILE *f, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\%03o", c);
		else
			fputc(c, f);
	}
}

static void
answered(void *arg, const struct dns_answer *a)
{
	struct dns_cmd *d = arg;
	size_t		i;

	d->rc = a->status == DNS_OK ? MOAT_EXIT_OK : MOAT_EXIT_FAIL;
	if (d->json) {
		printf("{\"name\":");
		json_str(stdout, d->name);
		printf(",\"type\":\"%s\",\"status\":\"%s\",\"rcode\":%d,"
		       "\"ttl\":%u,\"secure\":%s,\"why\":",
		    dns_type_name(d->type), dns_status_name(a->status),
		    a->rcode, a->ttl, a->secure ? "true" : "false");
		json_str(stdout, a->why);
		printf(",\"records\":[");
		for (i = 0; i < a->n; i++) {
			if (i > 0)
				printf(",");
			if (d->type == DNS_T_MX)
				printf("{\"preference\":%u,\"name\":",
				    a->rr[i].pref);
			if (a->rr[i].text == NULL)
				printf("null");
			else {
				printf("\"");
				print_text(
				    stdout, a->rr[i].text, a->rr[i].textlen);
				printf("\"");
			}
			if (d->type == DNS_T_MX)
				printf("}");
		}
		printf("]}\n");
	} else {
		printf("%s %s: %s", d->name, dns_type_name(d->type),
		    dns_status_name(a->status));
		if (a->status == DNS_OK)
			printf(" ttl=%u", a->ttl);
		printf(
		    " rcode=%d secure=%s", a->rcode, a->secure ? "yes" : "no");
		if (a->why != NULL)
			printf(" (%s)", a->why);
		printf("\n");
		for (i = 0; i < a->n; i++) {
			printf("  ");
			if (d->type == DNS_T_MX)
				printf("%u ", a->rr[i].pref);
			if (a->rr[i].text == NULL)
				printf(
				    "(undecodable, %zu bytes)", a->rr[i].rdlen);
			else if (d->type == DNS_T_TXT) {
				printf("\"");
				print_text(
				    stdout, a->rr[i].text, a->rr[i].textlen);
				printf("\"");
			} else
				print_text(
				    stdout, a->rr[i].text, a->rr[i].textlen);
			printf("\n");
		}
	}
	event_base_loopbreak(loop_base(d->loop));
}

int
cmd_dns(const char *conffile, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 }
	};
	struct dns_cmd d;
	struct config *cf;
	char	       rev[128], err[512];
	const char    *addr = NULL;
	int	       ch;

	memset(&d, 0, sizeof(d));
	d.type = DNS_T_A;
	d.rc = MOAT_EXIT_FAIL;
	while ((ch = getopt_long(argc, argv, "jx:", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			d.json = 1;
			break;
		case 'x':
			addr = optarg;
			break;
		default:
			return MOAT_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (addr != NULL) {
		if (argc != 0 ||
		    dns_reverse_name(addr, rev, sizeof(rev)) == -1) {
			fprintf(stderr,
			    "moat dns: -x needs one numeric "
			    "address\n");
			return MOAT_EXIT_USAGE;
		}
		d.name = rev;
		d.type = DNS_T_PTR;
	} else {
		if (argc < 1 || argc > 2) {
			fprintf(stderr,
			    "usage: moat dns [--json] name [type] "
			    "| -x address\n");
			return MOAT_EXIT_USAGE;
		}
		d.name = argv[0];
		if (argc == 2 && (d.type = dns_type_parse(argv[1])) == -1) {
			fprintf(
			    stderr, "moat dns: unknown type \"%s\"\n", argv[1]);
			return MOAT_EXIT_USAGE;
		}
	}
	if ((cf = moat_config(conffile)) == NULL)
		return MOAT_EXIT_FAIL;
	d.loop = loop_new(0, cf);
	if (resolver_init(cf, d.loop, err, sizeof(err)) == -1) {
		fprintf(stderr, "moat dns: %s\n", err);
		loop_free(d.loop);
		config_free(cf);
		return MOAT_EXIT_FAIL;
	}
	if (resolver_query(d.loop, d.name, d.type, answered, &d) != NULL)
		event_base_loop(loop_base(d.loop), 0);
	resolver_shutdown();
	loop_free(d.loop);
	config_free(cf);
	return d.rc;
}
