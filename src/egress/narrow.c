/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Narrowing the operator's egress policy by an agent's egress section
 * (egress_policy_narrow in policy.h, docs/agent.md).
 *
 * Both sides are rule sets matched the same way: an exact name beats a
 * wildcard, a longer wildcard beats a shorter one. The result must give
 * every host h exactly narrow(base's rule for h, agent's entry for h), and
 * nothing where either side has none. Pairwise intersection of rules is
 * not enough: with base "*.github.com" (all methods) and "*.api.github.com"
 * (GET only), an agent's "x.api.github.com" meets both, and only the
 * second is what the base applies to it.
 *
 * So the result's names are the meets of an agent name and a base name
 * (the more specific of the two when one covers the other). Each meet is
 * one of the two names, so there are at most n + n_rules of them. For
 * each, the rule is built from the rule each side applies to every host
 * under that name ("cover" below). Why that is right for every host h:
 * let a and b be the agent's and the base's rules for h. meet(a, b) covers
 * h and is a result name. No result name covering h is more specific,
 * since any meet(a', b') covering h has a' no more specific than a and b'
 * no more specific than b. And cover(base, meet(a, b)) is b: either the
 * meet is b itself, or it is a, which b covers entirely, and a base rule
 * more specific than b that covered a would also be b's rival for h. The
 * same holds for the agent side.
 */
#include "egress/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

/* The same test as the policy's: IPv4 hosts match exact rules only. */
static bool ipv4_canonical(const char *s)
{
	struct in_addr a;
	char back[INET_ADDRSTRLEN];
	return inet_pton(AF_INET, s, &a) == 1 && inet_ntop(AF_INET, &a, back, sizeof(back)) &&
	       strcmp(back, s) == 0;
}

/* True when host h lies strictly below suffix s ("a.b.c" below "b.c"). */
static bool below(const char *h, const char *s)
{
	size_t hl = strlen(h), sl = strlen(s);
	return hl > sl + 1 && h[hl - sl - 1] == '.' && memcmp(h + hl - sl, s, sl) == 0;
}

/* Every host name that rule name x matches also matches y: x is y, or
 * x is an exact name or wildcard under y's "*.". */
static bool within(const char *x, const char *y)
{
	if (strcmp(x, y) == 0)
		return true;
	if (y[0] != '*')
		return false;
	if (x[0] == '*')
		return strcmp(x + 2, y + 2) == 0 || below(x + 2, y + 2);
	return below(x, y + 2) && !ipv4_canonical(x);
}

static int rule_name_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct egress_rule *)elem)->name);
}

static int rule_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct egress_rule *)a)->name, ((const struct egress_rule *)b)->name);
}

static const struct egress_rule *find(const struct egress_rule *r, size_t n, const char *name)
{
	return n ? bsearch(name, r, n, sizeof(r[0]), rule_name_cmp) : NULL;
}

/*
 * The rule of r (sorted by name) that applies to every host `name` stands
 * for: for an exact name, what egress_policy_match would answer; for
 * "*.s", the rule "*.s" itself, else the longest wildcard above s. With
 * self false, `name`'s own rule is skipped: what would apply without it.
 */
static const struct egress_rule *cover(const struct egress_rule *r, size_t n, const char *name,
				       bool self)
{
	const struct egress_rule *x = self ? find(r, n, name) : NULL;
	if (x)
		return x;
	const char *s = name;
	if (name[0] == '*')
		s = name + 2;
	else if (ipv4_canonical(name))
		return NULL;
	char cand[EGRESS_MAX_HOST + 3] = "*.";
	size_t len = strlen(s);
	if (len > EGRESS_MAX_HOST)
		return NULL;
	for (const char *dot = strchr(s, '.'); dot; dot = strchr(dot + 1, '.')) {
		memcpy(cand + 2, dot + 1, len - (size_t)(dot + 1 - s) + 1);
		if ((x = find(r, n, cand)))
			return x;
	}
	return NULL;
}

static bool allows_something(const struct egress_rule *r)
{
	return r->n_ports > 0 && r->methods != 0;
}

/* The stricter of the base's rule b and the lower level's entry a (an
 * agent's, or a workspace's: `side` names which), for name. The limits
 * are both kept, each counted in its own side's window: the base rule's
 * is shared by every result rule made from it, so an agent that lists
 * several names under one operator wildcard does not multiply the
 * operator's limit. */
static int narrow_rule(struct egress_rule *out, const char *name, const struct egress_rule *b,
		       const struct egress_rule *a, const char *side)
{
	memset(out, 0, sizeof(*out));
	out->wildcard = name[0] == '*';
	/* The base's category: an LLM API stays one (never held for
	 * approval), a research site stays read-only. */
	out->category = b->category;
	out->group = b->group;
	out->line = b->line;
	for (size_t i = 0; i < b->n_ports && i < EGRESS_MAX_PORTS; i++)
		if (a->n_ports == 0 || egress_rule_has_port(a, b->ports[i]))
			out->ports[out->n_ports++] = b->ports[i];
	out->methods = b->methods & a->methods & EGRESS_M_ALL;
	out->rpm = b->rpm;
	const char *bkey = b->rate_key ? b->rate_key : b->name;
	if (b->rpm && strcmp(bkey, name) != 0 && !(out->rate_key = strdup(bkey)))
		return -ENOMEM;
	/* The engine counts a rule in two windows besides the global one: the
	 * base's, and one more. When b was itself narrowed (a workspace's
	 * window) and a sets a limit too, the lower limit is the one kept, so
	 * no host gets more than either level gives it. */
	if (b->agent_rate_key && b->agent_rpm && (!a->rpm || b->agent_rpm <= a->rpm)) {
		out->agent_rpm = b->agent_rpm;
		if (!(out->agent_rate_key = strdup(b->agent_rate_key)))
			return -ENOMEM;
	} else if (a->rpm) {
		out->agent_rpm = a->rpm;
		size_t len = strlen(side) + strlen(a->name) + 2;
		if (!(out->agent_rate_key = malloc(len)))
			return -ENOMEM;
		snprintf(out->agent_rate_key, len, "%s:%s", side, a->name);
	}
	out->approval = (b->approval || a->approval) && b->category != EGRESS_CAT_LLM;
	out->inspect = b->inspect || a->inspect;
	/* The label controls: an agent's entries set none, a workspace's
	 * rules may only tighten them (egress_policy_parse_workspace fills in
	 * the operator's where they are left out). */
	out->max_label = b->max_label;
	out->random_labels = b->random_labels;
	if (strcmp(side, "workspace") == 0) {
		if (a->max_label && a->max_label < out->max_label)
			out->max_label = a->max_label;
		out->random_labels = b->random_labels && a->random_labels;
	}
	return 0;
}

static void rule_fields_free(struct egress_rule *r)
{
	free(r->name);
	free(r->rate_key);
	free(r->agent_rate_key);
}

struct agent_side {
	struct egress_rule *rules; /* sorted by name, unique */
	size_t n;
	char **names; /* the caller's order, normalised, for `dropped` */
	size_t n_names;
};

static void agent_side_free(struct agent_side *s)
{
	for (size_t i = 0; s->rules && i < s->n; i++)
		free(s->rules[i].name);
	free(s->rules);
	free(s->names);
	memset(s, 0, sizeof(*s));
}

/* The agent's domains as rules that narrow nothing, then its rules on
 * top. A domain given twice is one domain; a rule for a name that is not
 * a domain, or a second rule for one, is an error: either would make the
 * agent's intent ambiguous. */
static int agent_side_build(struct agent_side *s, const char *const *domains, size_t n,
			    const struct egress_rule *rules, size_t n_rules, struct cdn_err *err)
{
	s->rules = calloc(n ? n : 1, sizeof(*s->rules));
	s->names = calloc(n ? n : 1, sizeof(*s->names));
	if (!s->rules || !s->names)
		return cdn_err_set(err, ENOMEM, "egress narrowing");
	for (size_t i = 0; i < n; i++) {
		char name[EGRESS_MAX_HOST + 1];
		bool wild = false;
		if (egress_rule_name_normalize(domains[i], name, sizeof(name), &wild, err) < 0)
			return cdn_err_wrap(err, "egress narrowing: agent domain %zu", i);
		const struct egress_rule *seen = NULL;
		for (size_t k = 0; k < s->n && !seen; k++)
			if (strcmp(s->rules[k].name, name) == 0)
				seen = &s->rules[k];
		if (seen) {
			s->names[s->n_names++] = seen->name;
			continue;
		}
		struct egress_rule *r = &s->rules[s->n];
		r->name = strdup(name);
		if (!r->name)
			return cdn_err_set(err, ENOMEM, "egress narrowing");
		s->n++;
		r->wildcard = wild;
		r->category = EGRESS_CAT_USER;
		r->group = "agent";
		r->methods = EGRESS_M_ALL;
		s->names[s->n_names++] = r->name;
	}
	qsort(s->rules, s->n, sizeof(s->rules[0]), rule_sort_cmp);

	_cleanup_free_ bool *has_rule = calloc(s->n ? s->n : 1, sizeof(*has_rule));
	if (!has_rule)
		return cdn_err_set(err, ENOMEM, "egress narrowing");
	for (size_t i = 0; i < n_rules; i++) {
		const struct egress_rule *in = &rules[i];
		char name[EGRESS_MAX_HOST + 1];
		bool wild = false;
		if (egress_rule_name_normalize(in->name, name, sizeof(name), &wild, err) < 0)
			return cdn_err_wrap(err, "egress narrowing: agent rule %zu", i);
		struct egress_rule *r = (struct egress_rule *)find(s->rules, s->n, name);
		if (!r)
			return cdn_err_msg(err, EINVAL,
					   "egress narrowing: the rule for '%s' names no domain of "
					   "the agent's",
					   name);
		size_t k = (size_t)(r - s->rules);
		if (has_rule[k])
			return cdn_err_msg(err, EINVAL, "egress narrowing: '%s' has two rules",
					   name);
		if (in->n_ports > EGRESS_MAX_PORTS)
			return cdn_err_msg(err, EINVAL,
					   "egress narrowing: '%s': %zu ports, more than %d", name,
					   in->n_ports, EGRESS_MAX_PORTS);
		has_rule[k] = true;
		memcpy(r->ports, in->ports, in->n_ports * sizeof(in->ports[0]));
		r->n_ports = in->n_ports;
		r->methods = in->methods & EGRESS_M_ALL;
		r->rpm = in->rpm;
		r->approval = in->approval;
		r->max_label = in->max_label;
		r->random_labels = in->random_labels;
		r->inspect = in->inspect;
	}
	return 0;
}

/* The meet of two rule names, or NULL when no host matches both. */
static const char *meet(const char *a, const char *b)
{
	if (within(a, b))
		return a;
	if (within(b, a))
		return b;
	return NULL;
}

static void rules_free(struct egress_rule *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		rule_fields_free(&r[i]);
	free(r);
}

/* Both narrowings: by an agent's section and by a workspace's policy. */
static int narrow(const struct egress_policy *base, const char *const *domains, size_t n,
		  const struct egress_rule *rules, size_t n_rules, const char *side,
		  struct egress_policy **out, void (*dropped)(void *ctx, const char *domain),
		  void *ctx, struct cdn_err *err)
{
	if (!base || !out || (n && !domains) || (n_rules && !rules))
		return cdn_err_msg(err, EINVAL, "egress narrowing: missing argument");
	if (n > EGRESS_MAX_RULES || n_rules > EGRESS_MAX_RULES)
		return cdn_err_msg(err, E2BIG,
				   "egress narrowing: more than %d agent domains or rules",
				   EGRESS_MAX_RULES);
	for (size_t i = 0; i < n; i++)
		if (!domains[i])
			return cdn_err_msg(err, EINVAL,
					   "egress narrowing: agent domain %zu is NULL", i);
	for (size_t i = 0; i < n_rules; i++)
		if (!rules[i].name)
			return cdn_err_msg(err, EINVAL,
					   "egress narrowing: agent rule %zu has no name", i);

	struct agent_side ag = { 0 };
	int r = agent_side_build(&ag, domains, n, rules, n_rules, err);
	if (r < 0) {
		agent_side_free(&ag);
		return r;
	}

	/* Which names are meets. Both sides are sorted, so one merge of the
	 * marked names gives the result's names sorted and unique. */
	const struct egress_rule *br = base->rules;
	size_t bn = base->n_rules;
	_cleanup_free_ bool *a_hit = calloc(ag.n ? ag.n : 1, sizeof(bool));
	_cleanup_free_ bool *b_hit = calloc(bn ? bn : 1, sizeof(bool));
	struct egress_rule *res = calloc(ag.n + bn > 0 ? ag.n + bn : 1, sizeof(*res));
	struct egress_policy *p = calloc(1, sizeof(*p));
	if (!a_hit || !b_hit || !res || !p) {
		free(res);
		free(p);
		agent_side_free(&ag);
		return cdn_err_set(err, ENOMEM, "egress narrowing");
	}
	for (size_t i = 0; i < ag.n; i++)
		for (size_t j = 0; j < bn; j++) {
			const char *m = meet(ag.rules[i].name, br[j].name);
			if (m == ag.rules[i].name)
				a_hit[i] = true;
			else if (m)
				b_hit[j] = true;
		}

	size_t nr = 0, i = 0, j = 0;
	while (r == 0 && (i < ag.n || j < bn)) {
		if (i < ag.n && !a_hit[i]) {
			i++;
			continue;
		}
		if (j < bn && !b_hit[j]) {
			j++;
			continue;
		}
		const char *name;
		if (i < ag.n && j < bn) {
			int c = strcmp(ag.rules[i].name, br[j].name);
			name = c <= 0 ? ag.rules[i].name : br[j].name;
			i += c <= 0;
			j += c >= 0;
		} else if (i < ag.n) {
			name = ag.rules[i++].name;
		} else {
			name = br[j++].name;
		}
		const struct egress_rule *b = cover(br, bn, name, true);
		const struct egress_rule *a = cover(ag.rules, ag.n, name, true);
		if (!a || !b) /* cannot happen for a meet; fail closed if it does */
			continue;
		if (narrow_rule(&res[nr], name, b, a, side) < 0 || !(res[nr].name = strdup(name))) {
			rule_fields_free(&res[nr]);
			r = cdn_err_set(err, ENOMEM, "egress narrowing");
		} else {
			nr++;
		}
	}

	/*
	 * A rule that allows nothing (the agent's ports or methods missed all
	 * of the base's) stays only where it shadows a wider rule that does
	 * allow something: dropping it there would let the wider rule apply,
	 * which widens. Elsewhere it goes, so the result's rules all allow
	 * something, like a loaded policy's, and the DNS filter does not
	 * answer for such names.
	 */
	_cleanup_free_ bool *keep = calloc(nr ? nr : 1, sizeof(bool));
	if (r == 0 && !keep)
		r = cdn_err_set(err, ENOMEM, "egress narrowing");
	for (size_t k = 0; r == 0 && k < nr; k++) {
		const struct egress_rule *up = cover(res, nr, res[k].name, false);
		keep[k] = allows_something(&res[k]) || (up && allows_something(up));
	}
	size_t kept = 0;
	for (size_t k = 0; r == 0 && k < nr; k++) {
		if (keep[k])
			res[kept++] = res[k];
		else
			rule_fields_free(&res[k]);
	}
	if (r == 0)
		nr = kept;

	if (r == 0 && nr > EGRESS_MAX_RULES)
		r = cdn_err_msg(err, E2BIG, "egress narrowing: %zu rules, more than %d", nr,
				EGRESS_MAX_RULES);
	if (r < 0) {
		rules_free(res, nr);
		free(p);
		agent_side_free(&ag);
		return r;
	}

	/* An agent domain is dropped when nothing at or below it is reachable. */
	for (size_t k = 0; dropped && k < ag.n_names; k++) {
		bool dup = false;
		for (size_t q = 0; q < k && !dup; q++)
			dup = ag.names[q] == ag.names[k];
		bool reach = false;
		for (size_t q = 0; q < nr && !reach && !dup; q++)
			reach = allows_something(&res[q]) && within(res[q].name, ag.names[k]);
		if (!dup && !reach)
			dropped(ctx, ag.names[k]);
	}

	/* The base's settings: the agent has no say in enforce, the limits,
	 * the approval timeout or the SSRF exceptions. */
	p->enforce = base->enforce;
	p->default_rpm = base->default_rpm;
	p->global_rpm = base->global_rpm;
	p->approval_timeout_s = base->approval_timeout_s;
	p->n_private = base->n_private <= EGRESS_MAX_PRIVATE ? base->n_private : EGRESS_MAX_PRIVATE;
	memcpy(p->private_ok, base->private_ok, p->n_private * sizeof(p->private_ok[0]));
	p->rules = res;
	p->n_rules = nr;
	agent_side_free(&ag);
	*out = p;
	return 0;
}

int egress_policy_narrow(const struct egress_policy *base, const char *const *domains, size_t n,
			 const struct egress_rule *rules, size_t n_rules,
			 struct egress_policy **out, void (*dropped)(void *ctx, const char *domain),
			 void *ctx, struct cdn_err *err)
{
	return narrow(base, domains, n, rules, n_rules, "agent", out, dropped, ctx, err);
}

int egress_policy_narrow_by(const struct egress_policy *base, const struct egress_policy *by,
			    struct egress_policy **out,
			    void (*dropped)(void *ctx, const char *domain), void *ctx,
			    struct cdn_err *err)
{
	if (!base || !by || !out)
		return cdn_err_msg(err, EINVAL, "egress narrowing: missing argument");
	_cleanup_free_ const char **names = calloc(by->n_rules ? by->n_rules : 1, sizeof(*names));
	if (!names)
		return cdn_err_set(err, ENOMEM, "egress narrowing");
	for (size_t i = 0; i < by->n_rules; i++)
		names[i] = by->rules[i].name;
	struct egress_policy *p = NULL;
	int r = narrow(base, names, by->n_rules, by->rules, by->n_rules, "workspace", &p, dropped,
		       ctx, err);
	if (r < 0)
		return r;
	/* One global window: the stricter of the two limits (0 is none). */
	if (by->global_rpm && (!p->global_rpm || by->global_rpm < p->global_rpm))
		p->global_rpm = by->global_rpm;
	*out = p;
	return 0;
}

const struct egress_rule *egress_policy_cover(const struct egress_policy *p, const char *name)
{
	return p && name ? cover(p->rules, p->n_rules, name, true) : NULL;
}
