/*
 * listsfilter.c - the built-in filter that matches the policy's allow and
 * deny lists: client address at CONNECT, HELO name at HELO, sender at
 * MAIL, each recipient at RCPT. A match is evidence (the list's symbol
 * and score, with the matching entry as detail); the policy's rules turn
 * it into an action. A list whose action is `accept` also ends filtering
 * (FILTER_ACCEPT), so an allow-listed client skips every other filter.
 *
 * The chain puts it first whenever lists are configured. Its context is
 * the policy itself (read-only, shared); no per-session state.
 */
#include <stdio.h>
#include <string.h>

#include "filter_api.h"
#include "lists.h"
#include "policy.h"

static enum filter_verdict
lf_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	const struct policy	 *p = ctx;
	const struct filter_env	 *env = call->env;
	const struct policy_list *pl;
	enum filter_verdict	  v = FILTER_CONTINUE;
	const struct sockaddr	 *sa = NULL;
	const char		 *name = NULL;
	char			  entry[600];
	int			  kind;
	size_t			  i;

	switch (call->stage) {
	case FILTER_STAGE_CONNECT:
		kind = LIST_CLIENT;
		sa = env->client_sa;
		break;
	case FILTER_STAGE_HELO:
		kind = LIST_HELO;
		name = env->helo;
		break;
	case FILTER_STAGE_MAIL:
		kind = LIST_SENDER;
		name = env->mail_from;
		break;
	case FILTER_STAGE_RCPT:
		kind = LIST_RECIPIENT;
		name = env->rcpt;
		break;
	default:
		return FILTER_CONTINUE;
	}
	if (kind == LIST_CLIENT ? sa == NULL : name == NULL)
		return FILTER_CONTINUE;
	for (i = 0; i < policy_nlists(p); i++) {
		pl = policy_list_at(p, i);
		if (pl->kind != kind)
			continue;
		if (!(kind == LIST_CLIENT ? list_match_addr(pl->list, sa)
					  : list_match_name(pl->list, name)))
			continue;
		if (!list_explain(pl->list, name, sa, entry, sizeof(entry)))
			snprintf(entry, sizeof(entry), "?");
		filter_evidence(&call->token, pl->symbol, pl->score,
		    "list %s: %s", pl->name, entry);
		if (pl->action == ACT_ACCEPT)
			v = FILTER_ACCEPT;
		if (pl->action == ACT_REJECT || pl->action == ACT_TEMPFAIL ||
		    pl->action == ACT_DISCARD || pl->action == ACT_ACCEPT)
			break; /* first deciding list wins, as in Postfix */
	}
	return v;
}

const struct filter_ops listsfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "lists",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_CONNECT) |
	    FILTER_STAGE_BIT(FILTER_STAGE_HELO) |
	    FILTER_STAGE_BIT(FILTER_STAGE_MAIL) |
	    FILTER_STAGE_BIT(FILTER_STAGE_RCPT),
	.stage = lf_stage,
};
