/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy's built-in categories (docs/policy.md): the seed hosts
 * of each, the methods and category names, and the rules built from the
 * enabled categories and a policy file's domains.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/text.h"

/* ------------------------------------------------------ built-in categories */

static const uint16_t ports_https[] = { 443 };
const uint16_t policy_ports_web[2] = { 80, 443 };

/* Always allowed: agents need their model. */
static const char *const llm_hosts[] = {
	"api.anthropic.com",
	"api.openai.com",
	"generativelanguage.googleapis.com",
};

/* Search APIs. They take queries by POST, so every method is allowed. */
static const char *const search_hosts[] = {
	"api.bing.microsoft.com",
	"api.exa.ai",
	"api.perplexity.ai",
	"api.search.brave.com",
	"api.tavily.com",
	"customsearch.googleapis.com",
	"google.serper.dev",
	"serpapi.com",
};

/* Read-only research sources: papers, metadata, encyclopaedia, packages. */
static const char *const research_hosts[] = {
	"*.wikipedia.org",
	"api.crossref.org",
	"api.openalex.org",
	"api.semanticscholar.org",
	"arxiv.org",
	"doi.org",
	"eutils.ncbi.nlm.nih.gov",
	"export.arxiv.org",
	"files.pythonhosted.org",
	"pypi.org",
	"wikipedia.org",
};

/* Service groups: each reaches one user's data, so each is off until the
 * operator turns it on by name. */
static const struct policy_service services_table[] = {
	{ "google_drive", "drive.googleapis.com" },
	{ "gmail", "gmail.googleapis.com" },
	{ "google_calendar", "calendar-json.googleapis.com" },
	{ "youtube", "youtube.googleapis.com" },
	{ "google_photos", "photoslibrary.googleapis.com" },
	{ "google_docs", "docs.googleapis.com" },
	{ "google_sheets", "sheets.googleapis.com" },
	{ "google_slides", "slides.googleapis.com" },
	{ "google_people", "people.googleapis.com" },
};
_Static_assert(CDN_ARRAY_SIZE(services_table) == POLICY_N_SERVICES,
	       "policy_internal.h counts them");
const struct policy_service *const policy_services = services_table;

#define N_BUILTIN                                                                                  \
	(CDN_ARRAY_SIZE(llm_hosts) + CDN_ARRAY_SIZE(search_hosts) +                               \
	 CDN_ARRAY_SIZE(research_hosts) + POLICY_N_SERVICES)

static const struct {
	const char *name;
	unsigned bit;
} methods[] = {
	{ "GET", EGRESS_M_GET },     { "HEAD", EGRESS_M_HEAD },	    { "POST", EGRESS_M_POST },
	{ "PUT", EGRESS_M_PUT },     { "PATCH", EGRESS_M_PATCH },   { "DELETE", EGRESS_M_DELETE },
	{ "OPTIONS", EGRESS_M_OPTIONS },
};

unsigned egress_method_bit(const char *method)
{
	/* Case-sensitive on purpose: HTTP methods are (RFC 9110 9.1), and a
	 * request saying "get" is not a GET the policy allowed. */
	for (size_t i = 0; method && i < CDN_ARRAY_SIZE(methods); i++)
		if (strcmp(method, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

const char *egress_method_name(unsigned bit)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(methods); i++)
		if (methods[i].bit == bit)
			return methods[i].name;
	return NULL;
}

const char *egress_category_name(enum egress_category c)
{
	switch (c) {
	case EGRESS_CAT_USER: return "user";
	case EGRESS_CAT_LLM: return "llm";
	case EGRESS_CAT_SEARCH: return "search";
	case EGRESS_CAT_RESEARCH: return "research";
	case EGRESS_CAT_SERVICE: return "service";
	}
	return "unknown";
}

bool egress_rule_labels_ok(const struct egress_rule *r, const char *host, char *why, size_t cap)
{
	if (!r->wildcard)
		return true;
	/* The labels the agent chose: all of host but the rule's base. */
	size_t base = strlen(r->name) - 1; /* ".example.com" */
	size_t hl = strlen(host);
	if (hl <= base)
		return true;
	size_t max = r->max_label ? r->max_label : EGRESS_DEFAULT_MAX_LABEL;
	for (const char *p = host; p < host + hl - base;) {
		const char *dot = memchr(p, '.', (size_t)(host + hl - base - p));
		size_t len = dot ? (size_t)(dot - p) : (size_t)(host + hl - base - p);
		if (len > max) {
			snprintf(why, cap, "a label of %zu bytes under %s (at most %zu)", len, r->name, max);
			return false;
		}
		if (!r->random_labels && len >= EGRESS_RANDOM_LABEL_MIN) {
			unsigned counts[256] = { 0 };
			for (size_t i = 0; i < len; i++)
				counts[(unsigned char)p[i]]++;
			double bits = 0;
			for (int i = 0; i < 256; i++)
				if (counts[i]) {
					double f = (double)counts[i] / (double)len;
					bits -= f * log2(f);
				}
			if (bits >= EGRESS_RANDOM_LABEL_BITS) {
				snprintf(why, cap,
					 "a label under %s that looks random (%.1f bits per character; "
					 "data may be leaving in it)",
					 r->name, bits);
				return false;
			}
		}
		p += len + 1;
	}
	return true;
}

const char *egress_policy_group_intern(const char *name)
{
	static const char *const fixed[] = { "allow",	 "agent",    "user",	     "llm",
					     "search", "research", "registries" };
	for (size_t i = 0; name && i < CDN_ARRAY_SIZE(fixed); i++)
		if (strcmp(name, fixed[i]) == 0)
			return fixed[i];
	for (size_t i = 0; name && i < POLICY_N_SERVICES; i++)
		if (strcmp(name, policy_services[i].key) == 0)
			return policy_services[i].key;
	return NULL;
}

bool egress_rule_has_port(const struct egress_rule *r, uint16_t port)
{
	for (size_t i = 0; r && i < r->n_ports; i++)
		if (r->ports[i] == port)
			return true;
	return false;
}

/* ------------------------------------------------------------ building rules */

void policy_settings_free(struct settings *s)
{
	for (size_t i = 0; i < s->n_dom; i++)
		free(s->dom[i].r.name);
	free(s->dom);
	s->dom = NULL;
	s->n_dom = 0;
}

static int add_builtin(struct user_rule *all, size_t *n, const char *name,
		       enum egress_category cat, const char *group, uint32_t rpm)
{
	struct user_rule *u = &all[(*n)++];
	memset(u, 0, sizeof(*u));
	struct egress_rule *r = &u->r;
	r->name = strdup(name);
	if (!r->name)
		return -ENOMEM;
	r->wildcard = name[0] == '*';
	r->category = cat;
	r->group = group;
	r->rpm = rpm;
	r->max_label = EGRESS_DEFAULT_MAX_LABEL;
	r->methods = EGRESS_M_ALL;
	egress_rule_set_ports(r, ports_https, CDN_ARRAY_SIZE(ports_https));
	if (cat == EGRESS_CAT_RESEARCH) {
		/* GET and HEAD only, and inspected, or the method rule could
		 * not hold inside an HTTPS tunnel. */
		egress_rule_set_ports(r, policy_ports_web, CDN_ARRAY_SIZE(policy_ports_web));
		r->methods = EGRESS_M_GET | EGRESS_M_HEAD;
		r->inspect = true;
	}
	return 0;
}

/* Built-ins first (line 0), then the file's rules in order of lines. */
static int merge_cmp(const void *a, const void *b)
{
	const struct user_rule *x = a, *y = b;
	int c = strcmp(x->r.name, y->r.name);
	if (c)
		return c;
	if (x->r.line != y->r.line)
		return x->r.line < y->r.line ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Merges the enabled built-ins with the file's rules into p->rules, sorted
 * by name. The file's rules are moved out of s. A file rule with the name
 * of a built-in replaces it; two file rules with one name are an error.
 */
int policy_build_rules(struct egress_policy *p, struct settings *s, report_fn report, void *ctx,
		       struct cdn_err *err)
{
	size_t cap = N_BUILTIN + s->n_dom;
	_cleanup_free_ struct user_rule *all = calloc(cap, sizeof(*all));
	if (!all)
		return cdn_err_set(err, ENOMEM, "policy");
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; r == 0 && i < CDN_ARRAY_SIZE(llm_hosts); i++)
		r = add_builtin(all, &n, llm_hosts[i], EGRESS_CAT_LLM, "llm", p->default_rpm);
	for (size_t i = 0; r == 0 && s->search && i < CDN_ARRAY_SIZE(search_hosts); i++)
		r = add_builtin(all, &n, search_hosts[i], EGRESS_CAT_SEARCH, "search",
				p->default_rpm);
	for (size_t i = 0; r == 0 && s->research && i < CDN_ARRAY_SIZE(research_hosts); i++)
		r = add_builtin(all, &n, research_hosts[i], EGRESS_CAT_RESEARCH, "research",
				p->default_rpm);
	for (size_t i = 0; r == 0 && i < POLICY_N_SERVICES; i++)
		if (s->service_on[i])
			r = add_builtin(all, &n, policy_services[i].host, EGRESS_CAT_SERVICE,
					policy_services[i].key, p->default_rpm);
	for (size_t i = 0; r == 0 && i < s->n_dom; i++) {
		all[n] = s->dom[i];
		s->dom[i].r.name = NULL;
		if (!all[n].rpm_set)
			all[n].r.rpm = p->default_rpm;
		n++;
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(all[i].r.name);
		return cdn_err_set(err, ENOMEM, "policy");
	}
	qsort(all, n, sizeof(all[0]), merge_cmp);

	/* [0, out) holds the merged rules, [i, n) those not looked at yet;
	 * each name is owned by exactly one entry in those two ranges. */
	size_t out = 0, i = 0;
	for (; i < n; i++) {
		struct user_rule *cur = &all[i];
		struct user_rule *prev = out ? &all[out - 1] : NULL;
		if (!prev || strcmp(prev->r.name, cur->r.name) != 0) {
			all[out++] = *cur;
			continue;
		}
		if (prev->r.line > 0) {
			r = report(ctx, cur->r.line, "",
				   "domains[%zu]: duplicate domain '%s' (also at line %d)",
				   cur->index, cur->r.name, prev->r.line);
			break;
		}
		/* The operator's rule replaces the built-in one. An LLM API
		 * stays an LLM API: it is always allowed and never held. */
		if (prev->r.category == EGRESS_CAT_LLM) {
			if (cur->r.approval) {
				r = report(ctx, cur->approval_line, "",
					   "domains[%zu].approval: '%s' is an LLM API; LLM APIs "
					   "are never held for approval",
					   cur->index, cur->r.name);
				break;
			}
			cur->r.category = EGRESS_CAT_LLM;
			cur->r.group = "llm";
		}
		free(prev->r.name);
		*prev = *cur;
	}
	/* Inside an HTTPS tunnel the method is invisible: a method rule or an
	 * approval hold on port 443 could only ever refuse the CONNECT, so such
	 * a rule is an error when it loads rather than a surprise at run time.
	 * (On other ports the engine still refuses a CONNECT it cannot check.) */
	for (size_t j = 0; r == 0 && j < out; j++) {
		const struct egress_rule *x = &all[j].r;
		bool restricts = x->methods != EGRESS_M_ALL;
		if (x->line > 0 && !x->inspect && (restricts || x->approval) &&
		    egress_rule_has_port(x, 443))
			r = report(ctx, x->line, "",
				   "domains[%zu]: '%s' %s on port 443 (HTTPS) without 'inspect: "
				   "true'; cordon cannot see the method inside a TLS tunnel. Add "
				   "'inspect: true', or list only plain-HTTP ports",
				   all[j].index, x->name,
				   restricts ? "restricts methods" : "requires approval");
	}
	if (r == 0 && out > EGRESS_MAX_RULES)
		r = report(ctx, 0, "", "%zu rules with the built-in ones, more than %d", out,
			   EGRESS_MAX_RULES);
	if (r < 0) {
		for (size_t j = 0; j < out; j++)
			free(all[j].r.name);
		for (size_t j = i; j < n; j++)
			free(all[j].r.name);
		return r;
	}
	p->rules = calloc(out ? out : 1, sizeof(p->rules[0]));
	if (!p->rules) {
		for (size_t j = 0; j < out; j++)
			free(all[j].r.name);
		return cdn_err_set(err, ENOMEM, "policy");
	}
	for (size_t j = 0; j < out; j++)
		p->rules[j] = all[j].r;
	p->n_rules = out;
	return 0;
}

/* The built-in policy, written as the file an operator would write for
 * it: what GET /v1/policy shows when there is no STATE/policy.yaml, and
 * what egress_policy_default() parses, so the two cannot drift apart. */
static const char builtin_yaml[] =
	"# cordon's built-in egress policy: what runs use when the operator has\n"
	"# no policy file (docs/policy.md).\n"
	"version: 1\n"
	"enforce: true\n"
	"limits:\n"
	"  requests_per_minute: 60\n"
	"  global_requests_per_minute: 600\n"
	"approvals:\n"
	"  timeout_seconds: 120\n"
	"categories:\n"
	"  llm: true\n"
	"  search: true\n"
	"  research: true\n"
	"services: {}\n"
	"domains: []\n"
	"private: []\n";

const char *egress_policy_builtin_yaml(void)
{
	return builtin_yaml;
}
