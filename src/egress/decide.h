/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/egress/: the egress decision, a pure function.
 *
 * What the policy says about one request, as smokescreen's ACL.Decide
 * does it: the engine gathers the facts (the parsed request, what the run
 * holds, the time) and carries out the decision (the answer, the audit
 * lines and events, the approval hold, the connection). egress_decide()
 * reads only its arguments: no socket, no event loop, no clock, no global,
 * and no allocation of its own. The one state it changes is the rate
 * limiter it is handed, and only when the rate stage admits the request,
 * which then counts in its windows.
 *
 * The stages, in the order of docs/egress.md:
 *
 *   host    the name as data: a canonical address or a name (a non-canonical
 *           number is refused in every mode), normalised, no credential in
 *           it, labels within the wildcard rule's limits (max_label_length,
 *           random_labels)
 *   domain  a rule matches (exact, else the longest "*." wildcard); the
 *           categories and service groups are rules like any other
 *   port    one of the rule's ports
 *   rate    the global window, the rule's window (its operator rule's in a
 *           narrowed policy) and the agent entry's window: all or none
 *   method  for CONNECT the tunnel's conditions (not to port 80, no raw
 *           secret that may not go there, inspection the rule needs, no
 *           method or approval rule it cannot see); otherwise the rule's
 *           methods, and a write method on an `approval: required` rule
 *           (not an LLM API) is held for a human
 *
 * With `enforce: true` the first stage that fails decides: one verdict,
 * EGRESS_BLOCK. With `enforce: false` (audit-only) every stage that fails
 * adds a verdict, each of which is one audit line, and the request goes on
 * (EGRESS_ALLOW or EGRESS_HOLD) unless a verdict is `always`.
 *
 * Two steps stay outside, because they need what only I/O provides:
 * content inspection (stage 5) streams with the head and body, and the
 * destination (stage 6) needs the resolver's answers; each address is then
 * decided by egress_decide_address(), which is pure as well. A DNS query
 * to the filter is decided by egress_decide_lookup().
 *
 * The reasons are the audit log's `blocked_reason` and the text of the
 * answer; tests and readers of the log depend on their wording.
 */
#ifndef CORDON_EGRESS_DECIDE_H
#define CORDON_EGRESS_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"
#include "egress/http.h"
#include "egress/inspect.h"
#include "egress/policy.h"

struct ratelimit;

#define EGRESS_REASON_MAX 400 /* bytes of a verdict's reason, with the NUL */
/* The most verdicts one request can collect in audit-only mode: host,
 * credential or labels, domain or port, rate, and the four of a CONNECT. */
#define EGRESS_MAX_VERDICTS 8

/* The window all destinations count in together. */
#define EGRESS_GLOBAL_RATE_KEY "\x01global"

/*
 * Where a run's granted secrets may go, and which of them the sandbox
 * holds as values (raw: not sealed). Fixed when the engine is made.
 */
struct egress_secrets {
	char **raw; /* names */
	size_t n_raw;
	char **scope_secret, **scope_domain; /* pairs: secret, "host" or "*.domain" */
	size_t n_scopes;
};

struct egress_secret_scope;
struct egress_sealed;

/*
 * Copies the names of the raw secrets (those of `secrets` not in `sealed`,
 * each once) and the scopes. On failure nothing is kept: s is empty again
 * and the error says why. A partial list would be worse than none: a
 * missing raw name would open a tunnel the secret may not go through.
 */
int egress_secrets_init(struct egress_secrets *s, const struct inspect_secret *secrets,
			size_t n_secrets, const struct egress_sealed *sealed, size_t n_sealed,
			const struct egress_secret_scope *scopes, size_t n_scopes,
			struct cdn_err *err);
void egress_secrets_free(struct egress_secrets *s);

/* True when `host` (normalised) is in the scope of secret `secret`. */
bool egress_secret_in_scope(const struct egress_secrets *s, const char *secret, const char *host);

/* A raw secret that may not go to host, or NULL when every one may. */
const char *egress_raw_secret_out_of_scope(const struct egress_secrets *s, const char *host);

/* What the run holds that a decision reads. */
struct egress_run_facts {
	const struct inspector *insp;	      /* scans host names (NULL: patterns only) */
	const struct egress_secrets *secrets; /* raw secrets and their scopes */
	bool can_inspect;		      /* the run has a CA for TLS inspection */
};

/* What the engine parsed. */
struct egress_request_facts {
	const char *method; /* as sent */
	const char *host;   /* as written in the request target */
	uint16_t port;
	bool connect;	    /* a CONNECT (an authority-form target) */
};

enum egress_outcome {
	EGRESS_ALLOW, /* go on: content inspection (not for CONNECT), then the destination */
	EGRESS_HOLD,  /* wait for a human's approval, then go on as EGRESS_ALLOW */
	EGRESS_BLOCK, /* refuse, as the first verdict says */
};

enum egress_stage {
	/* Neither a canonical address nor a name (ssrf_parse_host): a
	 * non-canonical number such as 127.1, a byte no name holds. */
	EGRESS_STAGE_HOST_FORM,
	/* A name that does not normalise; ssrf_parse_host refuses all such
	 * today, this is the second parser's word should they disagree. */
	EGRESS_STAGE_HOST_NAME,
	EGRESS_STAGE_HOST_CREDENTIAL, /* the name carries a credential or a secret */
	EGRESS_STAGE_HOST_LABELS,     /* a label too long or random under a wildcard */
	EGRESS_STAGE_DOMAIN,
	EGRESS_STAGE_PORT,
	EGRESS_STAGE_RATE,
	EGRESS_STAGE_TUNNEL_PORT80, /* CONNECT to the plain-HTTP port */
	EGRESS_STAGE_TUNNEL_SECRET, /* a raw secret may not go where the tunnel does */
	EGRESS_STAGE_TUNNEL_INSPECT, /* the rule inspects and the run has no CA */
	EGRESS_STAGE_TUNNEL_METHOD, /* method or approval rules a tunnel hides */
	EGRESS_STAGE_METHOD,
	EGRESS_STAGE_DESTINATION, /* egress_decide_address() */
	/* egress_decide_lookup() */
	EGRESS_STAGE_LOOKUP_CREDENTIAL,
	EGRESS_STAGE_LOOKUP_LABELS,
	EGRESS_STAGE_LOOKUP_RATE,
	EGRESS_STAGE_LOOKUP_DOMAIN,
};

/* One stage that failed. */
struct egress_verdict {
	enum egress_stage stage;
	int status;		 /* the answer's HTTP status; for a lookup, the DNS rcode */
	const char *status_text; /* its reason phrase ("Forbidden"); NULL for a lookup */
	const char *block;	 /* the X-Cordon-Block value ("domain"); NULL for a lookup */
	const char *event_type;	 /* the audit line's ("blocked", "credential_leak", ...) */
	bool always;		 /* refused in audit-only mode too */
	uint64_t retry_after_s;	 /* the rate stage when enforced: Retry-After (at least 1) */
	char reason[EGRESS_REASON_MAX];
};

struct egress_decision {
	enum egress_outcome outcome;
	bool enforced; /* false: audit-only, the verdicts are what would have happened */
	/* The host as normalised (as written when it does not normalise;
	 * empty when it was refused outright). */
	char host[HTTP_MAX_HOST + 1];
	const struct egress_rule *rule; /* NULL: no rule allows the host */
	bool tls_inspect;		/* a CONNECT the proxy terminates */
	/* What the host-name check found (EGRESS_STAGE_*_CREDENTIAL), for the
	 * audit line's credential_patterns; names borrowed from the run's
	 * inspector. */
	const char *patterns[INSPECT_MAX_FINDINGS];
	size_t n_patterns;
	size_t n_verdicts;
	struct egress_verdict verdicts[EGRESS_MAX_VERDICTS]; /* in stage order */
};

/* Stages 1 to 4 for one request at now_ms (monotonic). */
enum egress_outcome egress_decide(const struct egress_policy *p, const struct egress_run_facts *run,
				  const struct egress_request_facts *req, struct ratelimit *rl,
				  uint64_t now_ms, struct egress_decision *d);

/*
 * Stage 6 for one address the host resolved to (or its literal): true when
 * the request may go there, which a public address may and a private one
 * only when the policy lists it with this port (`private`, --allow-private).
 * Otherwise *v says why (the caller refuses, or in audit-only mode records
 * it and goes on to the next address).
 */
bool egress_decide_address(const struct egress_policy *p, const char *host,
			   const struct sockaddr *sa, uint16_t port, struct egress_verdict *v);

/*
 * A DNS query for an A or AAAA record at now_ms: `name` as the filter
 * matches it (lowercase), `raw_name` in the case it was sent in (what is
 * scanned for credentials). EGRESS_ALLOW: resolve d->host
 * and answer; it counted in its rule's windows. EGRESS_BLOCK: answer with
 * the verdict's rcode (NXDOMAIN, or REFUSED when over a rate limit)
 * without asking anyone. Audit-only mode does not apply: a name the policy
 * does not allow never leaves.
 */
enum egress_outcome egress_decide_lookup(const struct egress_policy *p,
					 const struct egress_run_facts *run, const char *name,
					 const char *raw_name, struct ratelimit *rl,
					 uint64_t now_ms, struct egress_decision *d);

#endif
