/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress decision (decide.h): the policy's stages as a pure function,
 * and the run's secret scopes it reads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/decide.h"
#include "egress/dns.h"
#include "egress/engine.h"
#include "egress/ratelimit.h"
#include "egress/ssrf.h"

/* ------------------------------------------------------------ secrets */

int egress_secrets_init(struct egress_secrets *s, const struct inspect_secret *secrets,
			size_t n_secrets, const struct egress_sealed *sealed, size_t n_sealed,
			const struct egress_secret_scope *scopes, size_t n_scopes,
			struct cdn_err *err)
{
	memset(s, 0, sizeof(*s));
	/* Raw: looked for, and not sealed (a long one comes in pieces, under
	 * one name). */
	s->raw = calloc(n_secrets + 1, sizeof(char *));
	bool ok = s->raw != NULL;
	for (size_t i = 0; ok && i < n_secrets; i++) {
		bool skip = false;
		for (size_t k = 0; k < n_sealed && !skip; k++)
			skip = strcmp(sealed[k].name, secrets[i].name) == 0;
		for (size_t k = 0; k < s->n_raw && !skip; k++)
			skip = strcmp(s->raw[k], secrets[i].name) == 0;
		if (!skip && (ok = (s->raw[s->n_raw] = strdup(secrets[i].name)) != NULL))
			s->n_raw++;
	}
	if (ok && n_scopes) {
		s->scope_secret = calloc(n_scopes, sizeof(char *));
		s->scope_domain = calloc(n_scopes, sizeof(char *));
		ok = s->scope_secret && s->scope_domain;
		for (size_t i = 0; ok && i < n_scopes; i++) {
			/* Counted first, so that a failure frees the one that
			 * was copied. */
			s->n_scopes++;
			s->scope_secret[i] = strdup(scopes[i].secret);
			s->scope_domain[i] = strdup(scopes[i].domain);
			ok = s->scope_secret[i] && s->scope_domain[i];
		}
	}
	if (!ok) {
		egress_secrets_free(s);
		return cdn_err_set(err, ENOMEM, "egress engine");
	}
	return 0;
}

void egress_secrets_free(struct egress_secrets *s)
{
	for (size_t i = 0; i < s->n_raw; i++)
		free(s->raw[i]);
	free(s->raw);
	for (size_t i = 0; i < s->n_scopes; i++) {
		free(s->scope_secret[i]);
		free(s->scope_domain[i]);
	}
	free(s->scope_secret);
	free(s->scope_domain);
	memset(s, 0, sizeof(*s));
}

bool egress_secret_in_scope(const struct egress_secrets *s, const char *secret, const char *host)
{
	size_t hl = strlen(host);
	for (size_t i = 0; i < s->n_scopes; i++) {
		if (strcmp(s->scope_secret[i], secret) != 0)
			continue;
		const char *d = s->scope_domain[i];
		if (d[0] == '*' && d[1] == '.') {
			size_t dl = strlen(d + 1); /* ".example.com" */
			if (hl > dl && strcasecmp(host + hl - dl, d + 1) == 0)
				return true;
		} else if (strcasecmp(host, d) == 0) {
			return true;
		}
	}
	return false;
}

const char *egress_raw_secret_out_of_scope(const struct egress_secrets *s, const char *host)
{
	for (size_t i = 0; i < s->n_raw; i++)
		if (!egress_secret_in_scope(s, s->raw[i], host))
			return s->raw[i];
	return NULL;
}

/* ----------------------------------------------------------- verdicts */

/* What each stage answers with, in one place. */
static const struct {
	int status;
	const char *status_text, *block, *event_type;
	bool always;
} stages[] = {
	/* Non-canonical numeric hosts are refused in every mode: there is no
	 * single address to check them against. Nor is a host forwarded that
	 * is no name at all. */
	[EGRESS_STAGE_HOST_FORM] = { 400, "Bad Request", "host", "blocked", true },
	[EGRESS_STAGE_HOST_NAME] = { 400, "Bad Request", "host", "blocked", false },
	[EGRESS_STAGE_HOST_CREDENTIAL] = { 403, "Forbidden", "credential", "credential_leak",
					   false },
	[EGRESS_STAGE_HOST_LABELS] = { 403, "Forbidden", "host", "blocked", false },
	[EGRESS_STAGE_DOMAIN] = { 403, "Forbidden", "domain", "blocked", false },
	[EGRESS_STAGE_PORT] = { 403, "Forbidden", "port", "blocked", false },
	[EGRESS_STAGE_RATE] = { 429, "Too Many Requests", "rate", "rate_limited", false },
	[EGRESS_STAGE_TUNNEL_PORT80] = { 403, "Forbidden", "port", "blocked", false },
	[EGRESS_STAGE_TUNNEL_SECRET] = { 403, "Forbidden", "credential", "blocked", false },
	[EGRESS_STAGE_TUNNEL_INSPECT] = { 403, "Forbidden", "inspect", "blocked", false },
	[EGRESS_STAGE_TUNNEL_METHOD] = { 403, "Forbidden", "method", "blocked", false },
	[EGRESS_STAGE_METHOD] = { 405, "Method Not Allowed", "method", "blocked", false },
	[EGRESS_STAGE_DESTINATION] = { 403, "Forbidden", "destination", "blocked", false },
	/* Lookups are answered, not refused: NXDOMAIN leaks nothing. */
	[EGRESS_STAGE_LOOKUP_CREDENTIAL] = { DNS_RCODE_NXDOMAIN, NULL, NULL, "credential_leak",
					     true },
	[EGRESS_STAGE_LOOKUP_LABELS] = { DNS_RCODE_NXDOMAIN, NULL, NULL, "blocked", true },
	[EGRESS_STAGE_LOOKUP_RATE] = { DNS_RCODE_REFUSED, NULL, NULL, "rate_limited", true },
	[EGRESS_STAGE_LOOKUP_DOMAIN] = { DNS_RCODE_NXDOMAIN, NULL, NULL, "blocked", true },
};

static void verdict_vset(struct egress_verdict *v, enum egress_stage stage, size_t cap,
			 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void verdict_vset(struct egress_verdict *v, enum egress_stage stage, size_t cap,
			 const char *fmt, va_list ap)
{
	v->stage = stage;
	v->status = stages[stage].status;
	v->status_text = stages[stage].status_text;
	v->block = stages[stage].block;
	v->event_type = stages[stage].event_type;
	v->always = stages[stage].always;
	v->retry_after_s = 0;
	vsnprintf(v->reason, cap, fmt, ap);
}

static void verdict_set(struct egress_verdict *v, enum egress_stage stage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void verdict_set(struct egress_verdict *v, enum egress_stage stage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verdict_vset(v, stage, EGRESS_REASON_MAX, fmt, ap);
	va_end(ap);
}

/*
 * A stage failed: one more verdict. Returns true when the decision is made
 * (blocked); false in audit-only mode, where the next stages still run.
 */
static bool fail_cap(struct egress_decision *d, enum egress_stage stage, size_t cap,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool fail_cap(struct egress_decision *d, enum egress_stage stage, size_t cap,
		     const char *fmt, ...)
{
	/* Never more than EGRESS_MAX_VERDICTS (decide.h counts them); the
	 * clamp only keeps a miscount inside the array. */
	size_t i = d->n_verdicts < EGRESS_MAX_VERDICTS ? d->n_verdicts++ : EGRESS_MAX_VERDICTS - 1;
	struct egress_verdict *v = &d->verdicts[i];
	va_list ap;
	va_start(ap, fmt);
	verdict_vset(v, stage, cap, fmt, ap);
	va_end(ap);
	if (d->enforced || v->always) {
		d->outcome = EGRESS_BLOCK;
		return true;
	}
	return false;
}

#define fail(d, stage, ...) fail_cap(d, stage, EGRESS_REASON_MAX, __VA_ARGS__)

/* The labels' reason is at most this long (what the engine always kept). */
#define LABELS_WHY_MAX 240
/* The enforced rate reason was written into 200 bytes; kept so the
 * audit line stays what it was for long names. */
#define RATE_REASON_MAX 200

enum host_check { HOST_OK, HOST_CREDENTIAL, HOST_LABELS };

/*
 * The host name as data the agent chose (raw: as written; host:
 * normalised): a credential or a secret in it, or, under a wildcard rule,
 * labels too long or random.
 */
static enum host_check host_check(const struct egress_run_facts *run,
				  const struct egress_rule *rule, const char *raw, const char *host,
				  struct egress_decision *d, char *why)
{
	/* As written: that is what leaves in a lookup or an SNI (DNS keeps
	 * case), and what case-sensitive formats are recognised in. */
	struct inspect_stream st;
	inspect_stream_init(&st, run->insp);
	inspect_feed(&st, raw, strlen(raw));
	if (st.n_findings) {
		/* Never in scope: no secret belongs in a host name. */
		for (size_t i = 0; i < st.n_findings; i++)
			d->patterns[i] = st.findings[i].name;
		d->n_patterns = st.n_findings;
		return HOST_CREDENTIAL;
	}
	if (rule && !egress_rule_labels_ok(rule, host, why, LABELS_WHY_MAX))
		return HOST_LABELS;
	return HOST_OK;
}

static void decision_init(struct egress_decision *d, bool enforced)
{
	d->outcome = EGRESS_ALLOW;
	d->enforced = enforced;
	d->host[0] = '\0';
	d->rule = NULL;
	d->tls_inspect = false;
	d->n_patterns = 0;
	d->n_verdicts = 0;
}

/* ----------------------------------------------------------- requests */

/* 1. The host, and the rule for it. */
static bool stage_host(const struct egress_policy *p, const struct egress_run_facts *run,
		       const struct egress_request_facts *req, struct egress_decision *d)
{
	struct cdn_err err = { 0 };
	struct sockaddr_storage lit;
	int kind = ssrf_parse_host(req->host, &lit, &err);
	if (kind < 0) {
		fail(d, EGRESS_STAGE_HOST_FORM, "%s", err.msg);
		return true;
	} else if (kind == 1) {
		snprintf(d->host, sizeof(d->host), "%s", req->host);
	} else if (egress_host_normalize(req->host, d->host, sizeof(d->host), &err) < 0) {
		snprintf(d->host, sizeof(d->host), "%s", req->host);
		if (fail(d, EGRESS_STAGE_HOST_NAME, "host: %s", err.msg))
			return true;
	}
	d->rule = egress_policy_match(p, d->host);
	/* The name itself is data the agent chose: it leaves in the lookup,
	 * the SNI and the Host field before any body is read. */
	char why[LABELS_WHY_MAX];
	enum host_check hk = host_check(run, d->rule, req->host, d->host, d, why);
	if (hk == HOST_CREDENTIAL &&
	    fail(d, EGRESS_STAGE_HOST_CREDENTIAL, "the host name carries a credential"))
		return true;
	if (hk == HOST_LABELS && fail(d, EGRESS_STAGE_HOST_LABELS, "host %s: %s", d->host, why))
		return true;
	return false;
}

/* 3. Rate: the global window, the rule's and the agent's, all or none. A
 * narrowed rule's window is its operator rule's (policy.h). */
static bool stage_rate(const struct egress_policy *p, struct ratelimit *rl, uint64_t now,
		       struct egress_decision *d)
{
	const struct egress_rule *r = d->rule;
	const char *rkey = r ? (r->rate_key ? r->rate_key : r->name) : NULL;
	const char *akey = r ? r->agent_rate_key : NULL;
	int64_t wait_g = ratelimit_check(rl, EGRESS_GLOBAL_RATE_KEY, p->global_rpm, now);
	int64_t wait_r = rkey ? ratelimit_check(rl, rkey, r->rpm, now) : 0;
	int64_t wait_a = akey ? ratelimit_check(rl, akey, r->agent_rpm, now) : 0;
	if (wait_a > wait_r)
		wait_r = wait_a;
	if (wait_g <= 0 && wait_r <= 0) {
		ratelimit_take(rl, EGRESS_GLOBAL_RATE_KEY, p->global_rpm, now);
		if (rkey)
			ratelimit_take(rl, rkey, r->rpm, now);
		if (akey)
			ratelimit_take(rl, akey, r->agent_rpm, now);
		return false;
	}
	/* Over a limit, nothing is counted: a request that waits does not
	 * make the wait longer. */
	const char *what = wait_g > 0 ? "all destinations" : d->host;
	if (!d->enforced)
		return fail(d, EGRESS_STAGE_RATE, "rate limit reached for %s", what);
	int64_t wait = wait_g > wait_r ? wait_g : wait_r;
	uint64_t secs = (uint64_t)(wait + 999) / 1000;
	fail_cap(d, EGRESS_STAGE_RATE, RATE_REASON_MAX,
		 "rate limit reached for %s; retry in %" PRIu64 " s", what, secs);
	d->verdicts[d->n_verdicts - 1].retry_after_s = secs ? secs : 1;
	return true;
}

/* 4. for CONNECT: what a tunnel can carry. */
static bool stage_tunnel(const struct egress_run_facts *run, const struct egress_request_facts *req,
			 struct egress_decision *d)
{
	const struct egress_rule *r = d->rule;
	const char *host = d->host;
	/* Inside a tunnel the method is invisible: rules about methods or
	 * approvals cannot hold there without TLS inspection. */
	d->tls_inspect = r && r->inspect && run->can_inspect;
	/* Plain HTTP comes as requests the proxy reads; a tunnel to the
	 * plain-HTTP port would carry it unread. */
	if (req->port == 80 &&
	    fail(d, EGRESS_STAGE_TUNNEL_PORT80,
		 "CONNECT to port 80 is refused: send plain HTTP as proxy requests"))
		return true;
	/* A tunnel the proxy cannot read would take any raw secret the run
	 * holds: only where every raw secret may go anyway. */
	const char *raw =
		d->tls_inspect ? NULL : egress_raw_secret_out_of_scope(run->secrets, host);
	if (raw && fail(d, EGRESS_STAGE_TUNNEL_SECRET,
			"this run holds the raw secret %s, which may not go to %s, and a tunnel "
			"there cannot be read: inspect %s or seal %s",
			raw, host, host, raw))
		return true;
	if (r && r->inspect && !run->can_inspect &&
	    fail(d, EGRESS_STAGE_TUNNEL_INSPECT,
		 "%s needs TLS inspection, which this run does not have (the policy was "
		 "reloaded with new inspected domains)",
		 host))
		return true;
	if (r && !d->tls_inspect && (r->methods != EGRESS_M_ALL || r->approval) &&
	    fail(d, EGRESS_STAGE_TUNNEL_METHOD,
		 "%s allows only some methods or needs approval, which cannot be enforced "
		 "inside an HTTPS tunnel; CONNECT refused",
		 host))
		return true;
	return false;
}

enum egress_outcome egress_decide(const struct egress_policy *p, const struct egress_run_facts *run,
				  const struct egress_request_facts *req, struct ratelimit *rl,
				  uint64_t now_ms, struct egress_decision *d)
{
	decision_init(d, p->enforce);
	/* 1. Host and domain. */
	if (stage_host(p, run, req, d))
		return d->outcome;
	const struct egress_rule *r = d->rule;
	if (!r && fail(d, EGRESS_STAGE_DOMAIN, "domain %s is not allowed by the egress policy",
		       d->host))
		return d->outcome;
	/* 2. Protocol and port. */
	if (r && !egress_rule_has_port(r, req->port) &&
	    fail(d, EGRESS_STAGE_PORT, "port %u is not allowed for %s", req->port, d->host))
		return d->outcome;
	/* 3. Rate. */
	if (stage_rate(p, rl, now_ms, d))
		return d->outcome;
	/* 4. Method. */
	if (req->connect) {
		stage_tunnel(run, req, d);
		return d->outcome;
	}
	unsigned bit = egress_method_bit(req->method);
	if ((!bit || (r && !(r->methods & bit))) &&
	    fail(d, EGRESS_STAGE_METHOD, "method %s is not allowed for %s", req->method, d->host))
		return d->outcome;
	/* Write methods wait for a human where the rule asks; an LLM API is
	 * never held (policy.md). */
	if (r && r->approval && (bit & EGRESS_M_WRITE) && r->category != EGRESS_CAT_LLM)
		d->outcome = EGRESS_HOLD;
	return d->outcome;
}

/* -------------------------------------------------------- destination */

bool egress_decide_address(const struct egress_policy *p, const char *host,
			   const struct sockaddr *sa, uint16_t port, struct egress_verdict *v)
{
	enum ssrf_class cls = ssrf_classify(sa);
	if (cls == SSRF_PUBLIC || egress_policy_private_ok(p, sa, port))
		return true;
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	verdict_set(v, EGRESS_STAGE_DESTINATION, "%s resolves to %s, a %s address", host, ip,
		    ssrf_class_name(cls));
	return false;
}

/* ------------------------------------------------------------ lookups */

enum egress_outcome egress_decide_lookup(const struct egress_policy *p,
					 const struct egress_run_facts *run, const char *name,
					 const char *raw_name, struct ratelimit *rl,
					 uint64_t now_ms, struct egress_decision *d)
{
	decision_init(d, true);
	struct cdn_err err = { 0 };
	if (egress_host_normalize(name, d->host, sizeof(d->host), &err) == 0)
		d->rule = egress_policy_match(p, d->host);
	const struct egress_rule *r = d->rule;
	if (!r) {
		/* NXDOMAIN without asking anyone: the name goes nowhere. */
		fail(d, EGRESS_STAGE_LOOKUP_DOMAIN, "name not allowed by the egress policy");
		return d->outcome;
	}
	/* The name is data the agent chose, and asking upstream for it would
	 * send it to that zone's servers: no credential in it, no long or
	 * random labels under a wildcard, and a lookup counts in its rule's
	 * rate window like a request. */
	char why[LABELS_WHY_MAX] = "";
	enum host_check hk = host_check(run, r, raw_name, d->host, d, why);
	if (hk == HOST_CREDENTIAL) {
		fail(d, EGRESS_STAGE_LOOKUP_CREDENTIAL, "the name carries a credential");
		return d->outcome;
	}
	if (hk == HOST_LABELS) {
		fail(d, EGRESS_STAGE_LOOKUP_LABELS, "%s", why);
		return d->outcome;
	}
	const char *rkey = r->rate_key ? r->rate_key : r->name;
	if (ratelimit_check(rl, rkey, r->rpm, now_ms) > 0 ||
	    (r->agent_rate_key &&
	     ratelimit_check(rl, r->agent_rate_key, r->agent_rpm, now_ms) > 0)) {
		fail(d, EGRESS_STAGE_LOOKUP_RATE, "rate limit reached for the name's rule");
		return d->outcome;
	}
	ratelimit_take(rl, rkey, r->rpm, now_ms);
	if (r->agent_rate_key)
		ratelimit_take(rl, r->agent_rate_key, r->agent_rpm, now_ms);
	return d->outcome;
}
