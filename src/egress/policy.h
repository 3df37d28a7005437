/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy: which destinations a sandbox may reach, and how.
 *
 * Loaded from one YAML schema (docs/policy.md), validated strictly: an
 * unknown key, a wrong type or a bad value is an error that names the key
 * and its line. Built-in seed categories (LLM APIs, search APIs, research
 * domains, service groups) are merged with the operator's own rules.
 *
 * Host names are normalised before they are stored or matched: lowercase,
 * no trailing dot, IDN labels in punycode (libidn2, UTS #46). A wildcard
 * "*.example.com" matches any name below example.com but never
 * example.com itself. An exact rule beats a wildcard; a longer wildcard
 * beats a shorter one.
 */
#ifndef CORDON_EGRESS_POLICY_H
#define CORDON_EGRESS_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"

#define EGRESS_MAX_RULES 4096
#define EGRESS_MAX_PORTS 16
#define EGRESS_MAX_PRIVATE 64
#define EGRESS_MAX_POLICY_BYTES (1 << 20)
#define EGRESS_DEFAULT_RPM 60
#define EGRESS_DEFAULT_GLOBAL_RPM 600
#define EGRESS_DEFAULT_APPROVAL_TIMEOUT_S 120
#define EGRESS_MAX_HOST 253	    /* a normalised host name, without the trailing dot */
#define EGRESS_MAX_RPM 100000	    /* requests_per_minute values: 0 (unlimited) .. this */
#define EGRESS_MAX_APPROVAL_TIMEOUT_S 86400
#define EGRESS_MAX_POLICY_DEPTH 8   /* nested YAML collections; the schema needs 4 */
#define EGRESS_DEFAULT_MAX_LABEL 40 /* bytes of a label below a wildcard rule */
#define EGRESS_RANDOM_LABEL_MIN 16  /* labels this long are checked for randomness */
#define EGRESS_RANDOM_LABEL_BITS 3.6 /* Shannon entropy per character that reads as random */

enum egress_method {
	EGRESS_M_GET = 1u << 0,
	EGRESS_M_HEAD = 1u << 1,
	EGRESS_M_POST = 1u << 2,
	EGRESS_M_PUT = 1u << 3,
	EGRESS_M_PATCH = 1u << 4,
	EGRESS_M_DELETE = 1u << 5,
	EGRESS_M_OPTIONS = 1u << 6,
	EGRESS_M_ALL = (1u << 7) - 1,
	EGRESS_M_READ = EGRESS_M_GET | EGRESS_M_HEAD | EGRESS_M_OPTIONS,
	EGRESS_M_WRITE = EGRESS_M_POST | EGRESS_M_PUT | EGRESS_M_PATCH | EGRESS_M_DELETE,
};

enum egress_category {
	EGRESS_CAT_USER = 0, /* the operator's own "domains" list */
	EGRESS_CAT_LLM,	     /* LLM APIs: always allowed */
	EGRESS_CAT_SEARCH,   /* search APIs */
	EGRESS_CAT_RESEARCH, /* research sites: GET and HEAD only */
	EGRESS_CAT_SERVICE,  /* a service group, off unless enabled */
};

struct egress_rule {
	char *name;    /* normalised; "*.example.com" for a wildcard */
	bool wildcard;
	enum egress_category category;
	const char *group; /* service group or category name, for audit */
	uint16_t ports[EGRESS_MAX_PORTS];
	size_t n_ports;
	unsigned methods;   /* enum egress_method bits */
	uint32_t rpm;	    /* requests per minute for this rule; 0: unlimited */
	/*
	 * Whose window the limits count in. A loaded policy gives each rule
	 * its own (rate_key NULL: the rule's name). A narrowed policy's rule
	 * counts in the window of the operator rule it came from, so that
	 * several agent names under one operator wildcard share its limit,
	 * and, when the agent set a limit of its own, also in the window of
	 * that agent entry (agent_rate_key, "agent:" and its name).
	 */
	char *rate_key;
	char *agent_rate_key; /* NULL: no agent limit */
	uint32_t agent_rpm;
	bool approval;	    /* write methods wait for a human decision */
	bool inspect;	    /* terminate TLS so method, body and secret rules apply to HTTPS */
	/*
	 * A wildcard rule lets the agent choose the labels below its base, and
	 * each label is a way to carry data out (to the name's DNS servers, in
	 * the TLS SNI, in the Host field). So under a wildcard, a label is at
	 * most max_label bytes, and a long one (EGRESS_RANDOM_LABEL_MIN bytes or
	 * more) that looks random (EGRESS_RANDOM_LABEL_BITS of entropy per
	 * character or more) is refused unless random_labels. Exact rules
	 * ignore both.
	 */
	uint8_t max_label;  /* 1..63 */
	bool random_labels;
	int line;	    /* where the rule was written; 0 for built-in rules */
};

struct egress_private {
	struct sockaddr_storage addr; /* exact address */
	uint16_t port;
};

struct egress_policy {
	bool enforce; /* false: audit-only, would-block decisions pass */
	uint32_t default_rpm;
	uint32_t global_rpm;
	uint32_t approval_timeout_s;
	struct egress_rule *rules;
	size_t n_rules;
	struct egress_private private_ok[EGRESS_MAX_PRIVATE];
	size_t n_private;
};

/* The built-in policy: LLM, search and research categories on, service
 * groups off, nothing else allowed, enforce on. It is the policy file
 * egress_policy_builtin_yaml() returns, parsed. */
int egress_policy_default(struct egress_policy **out, struct cdn_err *err);
const char *egress_policy_builtin_yaml(void);

/* Loads a YAML policy file (at most EGRESS_MAX_POLICY_BYTES). Errors read
 * "policy.yaml:12: domains[0].ports: expected a list of port numbers". */
int egress_policy_load(const char *path, struct egress_policy **out, struct cdn_err *err);

/* Same from memory; `source` names it in errors. */
int egress_policy_parse(const char *yaml, size_t len, const char *source,
			struct egress_policy **out, struct cdn_err *err);

/*
 * A workspace's policy (cordon serve's PUT /v1/policy) is read against the
 * operator's `op`, which it may only narrow: `enforce`, `private` and
 * `approvals` are refused (they are the operator's settings, not rules),
 * and so is a limit above the operator's (limits.*, and a domain's
 * requests_per_minute above the operator's rule for it). Limits it leaves
 * out are the operator's. The result is still the workspace's own rule set;
 * egress_policy_narrow_by(op, ws) makes what runs get.
 */
int egress_policy_parse_workspace(const char *yaml, size_t len, const char *source,
				  const struct egress_policy *op, struct egress_policy **out,
				  struct cdn_err *err);
/* source names the file in errors (NULL: path). */
int egress_policy_load_workspace(const char *path, const char *source,
				 const struct egress_policy *op, struct egress_policy **out,
				 struct cdn_err *err);

void egress_policy_free(struct egress_policy *p);

/*
 * The `registries` category (docs/deps.md): the policy of a dependency
 * build sandbox and of nothing else. registry.npmjs.org, pypi.org and
 * files.pythonhosted.org on 443, and the operator's own registries
 * (`extra`: a mirror, a local stand-in), each GET and HEAD only,
 * inspected on TLS so the method rule holds, no rate limit, group
 * "registries"; no LLM API, search or research rule. private_ok are
 * --allow-private entries (a registry on a private address).
 */
#define EGRESS_MAX_REGISTRIES 8
struct egress_registry {
	const char *host; /* a name or an IPv4 address */
	uint16_t port;
	bool tls;
};
int egress_policy_registries(const struct egress_registry *extra, size_t n_extra,
			     const char *const *private_ok, size_t n_private,
			     struct egress_policy **out, struct cdn_err *err);

/* --allow HOST[:PORT]: full access to HOST (on PORT, or 80 and 443). An
 * existing rule for HOST is widened instead: the port added, every method,
 * no approval (docs/policy.md). Moves p->rules: rule pointers from earlier
 * egress_policy_match calls are invalid afterwards. */
int egress_policy_allow(struct egress_policy *p, const char *host_port, struct cdn_err *err);

/* --allow-private IP:PORT: an exception to the SSRF guard. */
int egress_policy_allow_private(struct egress_policy *p, const char *ip_port,
				struct cdn_err *err);

/* True when (addr, port) is one of the private exceptions. */
bool egress_policy_private_ok(const struct egress_policy *p, const struct sockaddr *addr,
			      uint16_t port);

/* Lowercase, strip one trailing dot, convert IDN to punycode, and check the
 * result is a valid host name. 0 or negative with err set. This is for
 * hosts from requests: a "*" anywhere is an error. cap must leave room for
 * EGRESS_MAX_HOST bytes and the NUL. */
int egress_host_normalize(const char *in, char *out, size_t cap, struct cdn_err *err);

/* The same for a rule name from a policy or --allow: a leading "*." (a
 * wildcard over at least two labels) is allowed and kept, and *wildcard
 * says whether it was there. A wildcard name is at most EGRESS_MAX_HOST
 * bytes too (it must leave room for a label below it), so the same cap
 * holds. */
int egress_rule_name_normalize(const char *in, char *out, size_t cap, bool *wildcard,
			       struct cdn_err *err);

/* The rule for a normalised host, or NULL. */
const struct egress_rule *egress_policy_match(const struct egress_policy *p, const char *host);

bool egress_rule_has_port(const struct egress_rule *r, uint16_t port);

/* Under a wildcard rule, whether the labels of `host` below the rule's base
 * are acceptable (max_label, random_labels); why not in `why`. Always true
 * for an exact rule. */
bool egress_rule_labels_ok(const struct egress_rule *r, const char *host, char *why, size_t cap);

/* "GET" -> EGRESS_M_GET; 0 for anything else. */
unsigned egress_method_bit(const char *method);
/* EGRESS_M_GET -> "GET"; NULL for anything but one method's bit. */
const char *egress_method_name(unsigned bit);

const char *egress_category_name(enum egress_category c);

/*
 * An agent's egress narrows the operator's policy, never widens it: the
 * result allows a request only when `base` allows it and the agent lists
 * its domain (exact names or "*." wildcards; a wildcard meets an exact
 * name it covers, two wildcards meet at the longer one). Where both sides
 * say something, the stricter wins: ports and methods are intersected,
 * both requests-per-minute limits apply, each in its own side's window
 * (rate_key, agent_rate_key above; 0 means unlimited), approval is
 * required if either requires it, inspection is on if either asks. `rules`
 * (each rule's name is a domain in `domains`) narrow single domains
 * further. Settings (enforce, limits, private exceptions, approval
 * timeout) are the base's; enforce can only stay on. A domain the base
 * does not allow is dropped, and reported through `dropped` when given.
 */
int egress_policy_narrow(const struct egress_policy *base, const char *const *domains, size_t n,
			 const struct egress_rule *rules, size_t n_rules,
			 struct egress_policy **out, void (*dropped)(void *ctx, const char *domain),
			 void *ctx, struct cdn_err *err);

/*
 * The compiled policy as JSON, field for field, and back: how the
 * supervisor hands the policy it resolved to its network part
 * (src/run/netpart.h). egress_policy_from_json(egress_policy_to_json(p))
 * equals p. The reader is strict (known keys, ranges, normalised names,
 * rules sorted and unique); to_json returns NULL when out of memory.
 */
json_t *egress_policy_to_json(const struct egress_policy *p);
int egress_policy_from_json(const json_t *j, struct egress_policy **out, struct cdn_err *err);

/*
 * `base` narrowed by a whole policy `by` (a workspace's), exactly as by an
 * agent's egress section whose domains are by's rule names and whose rules
 * are by's rules: ports and methods intersected, both limits applied,
 * approval and inspection if either asks. The global limit is the
 * stricter of the two; enforce, the approval timeout and the private
 * exceptions are base's. A rule keeps at most two rate windows (base's and
 * one more): narrowing a narrowed policy again keeps, of the two lower
 * levels' windows, the one with the lower limit.
 */
int egress_policy_narrow_by(const struct egress_policy *base, const struct egress_policy *by,
			    struct egress_policy **out,
			    void (*dropped)(void *ctx, const char *domain), void *ctx,
			    struct cdn_err *err);

/* The rule of p that applies to every host rule name `name` stands for:
 * for an exact name what egress_policy_match answers, for "*.s" the rule
 * "*.s" itself, else the longest wildcard above s. NULL when none. This
 * is how a narrowed rule finds the rules it came from. */
const struct egress_rule *egress_policy_cover(const struct egress_policy *p, const char *name);

#endif
