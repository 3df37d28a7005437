/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress decision (src/egress/decide.h), table by table and without a
 * socket: every stage with its status, X-Cordon-Block value, audit event
 * and reason; every category and service group; narrowed policies and
 * their rate windows; audit-only mode; label limits; approvals; the
 * destination check; DNS lookups; and the run's secret scopes, including
 * their construction when memory runs out (the copies of secret names
 * once left a NULL in the list: issue 11).
 *
 * This executable is linked with --wrap for strdup and calloc (see
 * tests/meson.build), so that a test can make the n-th allocation fail,
 * and for egress_host_normalize.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/decide.h"
#include "egress/dns.h"
#include "egress/engine.h"
#include "egress/ratelimit.h"
#include "egress/ssrf.h"

/* ------------------------------------------------- allocation failures */

void *__real_calloc(size_t n, size_t size);
char *__real_strdup(const char *s);
int __real_egress_host_normalize(const char *in, char *out, size_t cap, struct cdn_err *err);
void *__wrap_calloc(size_t n, size_t size);
char *__wrap_strdup(const char *s);
int __wrap_egress_host_normalize(const char *in, char *out, size_t cap, struct cdn_err *err);

/* 0: allocations succeed; n > 0: the n-th one from now fails. */
static int fail_in;

static bool fail_now(void)
{
	return fail_in > 0 && --fail_in == 0;
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

/* A host the normaliser refuses although ssrf_parse_host took it as a
 * name: the two parsers agree today, so only a test can show what the
 * decision does should they not. */
static const char *normalize_refuses;

int __wrap_egress_host_normalize(const char *in, char *out, size_t cap, struct cdn_err *err)
{
	if (normalize_refuses && strcmp(in, normalize_refuses) == 0)
		return cdn_err_msg(err, EINVAL, "refused by the test");
	return __real_egress_host_normalize(in, out, cap, err);
}

/* ------------------------------------------------------------- helpers */

static struct egress_policy *load(const char *yaml)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_parse(yaml, strlen(yaml), "policy.yaml", &p, &err) < 0)
		fail_msg("policy does not load: %s\n%s", err.msg, yaml);
	return p;
}

/* The run of most tests: built-in patterns plus one granted secret, one
 * raw secret scoped to api.example.com, and a CA. */
struct run {
	struct inspector *insp;
	struct egress_secrets secrets;
	struct egress_run_facts facts;
};

#define SECRET_VALUE "s3cr3tvalue-zz91"

static void run_init(struct run *r, bool can_inspect)
{
	static const struct inspect_secret secrets[] = {
		{ "API_TOKEN", SECRET_VALUE, sizeof(SECRET_VALUE) - 1 },
	};
	static const struct egress_secret_scope scopes[] = { { "API_TOKEN", "api.example.com" } };
	struct cdn_err err = { 0 };
	assert_int_equal(inspector_new(secrets, 1, &r->insp, &err), 0);
	assert_int_equal(egress_secrets_init(&r->secrets, secrets, 1, NULL, 0, scopes, 1, &err), 0);
	r->facts = (struct egress_run_facts){ .insp = r->insp,
					      .secrets = &r->secrets,
					      .can_inspect = can_inspect };
}

static void run_free(struct run *r)
{
	inspector_free(r->insp);
	egress_secrets_free(&r->secrets);
}

static enum egress_outcome decide(const struct egress_policy *p, const struct run *r,
				  struct ratelimit *rl, const char *method, const char *host,
				  uint16_t port, uint64_t now, struct egress_decision *d)
{
	const struct egress_request_facts req = { .method = method,
						  .host = host,
						  .port = port,
						  .connect = strcmp(method, "CONNECT") == 0 };
	enum egress_outcome o = egress_decide(p, &r->facts, &req, rl, now, d);
	assert_int_equal(o, d->outcome);
	return o;
}

/* One request and what the policy must say about it. A blocked request has
 * one verdict (the policy enforces); its status, X-Cordon-Block value,
 * audit event and reason are what the agent and the log see. */
struct row {
	const char *method, *host; /* "CONNECT" for a tunnel */
	uint16_t port;
	enum egress_outcome outcome;
	const char *rule; /* the matching rule, or NULL */
	enum egress_stage stage;
	int status;
	const char *block, *event, *reason;
};

#define ALLOW(m, h, port, rule) { m, h, port, EGRESS_ALLOW, rule, 0, 0, NULL, NULL, NULL }
#define HOLD(m, h, port, rule) { m, h, port, EGRESS_HOLD, rule, 0, 0, NULL, NULL, NULL }

static void check_rows(const struct egress_policy *p, const struct run *r, const struct row *rows,
		       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *w = &rows[i];
		/* A limiter of its own per row: rate is tested apart. */
		struct ratelimit *rl = ratelimit_new();
		struct egress_decision d;
		enum egress_outcome o = decide(p, r, rl, w->method, w->host, w->port, 1000, &d);
		if (o != w->outcome)
			fail_msg("%s %s:%u: outcome %d, want %d (%s)", w->method, w->host, w->port, o,
				 w->outcome, d.n_verdicts ? d.verdicts[0].reason : "no verdict");
		if (w->rule)
			assert_string_equal(d.rule ? d.rule->name : "(none)", w->rule);
		else
			assert_null(d.rule);
		assert_true(d.enforced);
		if (w->outcome != EGRESS_BLOCK) {
			assert_int_equal(d.n_verdicts, 0);
		} else {
			assert_int_equal(d.n_verdicts, 1);
			const struct egress_verdict *v = &d.verdicts[0];
			assert_int_equal(v->stage, w->stage);
			assert_int_equal(v->status, w->status);
			assert_string_equal(v->block, w->block);
			assert_string_equal(v->event_type, w->event);
			assert_string_equal(v->reason, w->reason);
			assert_non_null(v->status_text);
		}
		ratelimit_free(rl);
	}
}

#define CHECK(p, r, rows) check_rows(p, r, rows, sizeof(rows) / sizeof((rows)[0]))

static const char policy_yaml[] =
	"version: 1\n"
	"categories: {search: false, research: false}\n"
	"domains:\n"
	"  - name: api.example.com\n"
	"    ports: [443, 8443]\n"
	"    methods: [GET, POST]\n"
	"    inspect: true\n"
	"  - name: plain.example.com\n"
	"    ports: [80, 8080]\n"
	"    methods: [GET, HEAD]\n"
	"  - name: open.example.com\n"
	"  - name: \"*.cdn.example\"\n"
	"    max_label_length: 20\n"
	"  - name: \"*.hash.example\"\n"
	"    random_labels: true\n"
	"  - name: \"*.example.org\"\n"
	"  - name: www.example.org\n"
	"    ports: [8000]\n"
	"  - name: write.example.com\n"
	"    ports: [80]\n"
	"    approval: required\n"
	"  - name: held.example.com\n"
	"    approval: required\n"
	"    inspect: true\n"
	"  - name: hold8443.example.com\n"
	"    ports: [8443]\n"
	"    approval: required\n"
	"  - name: 10.0.0.5\n"
	"  - name: xn--bcher-kva.example\n";

/* ------------------------------------------------------ 1. host, domain */

static void test_host_and_domain(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run r;
	run_init(&r, true);
	const struct row rows[] = {
		ALLOW("GET", "open.example.com", 80, "open.example.com"),
		/* normalised before matching: case, one trailing dot */
		ALLOW("GET", "OPEN.Example.COM.", 443, "open.example.com"),
		ALLOW("GET", "XN--BCHER-KVA.example", 80, "xn--bcher-kva.example"),
		/* a canonical IPv4 literal matches its rule as written */
		ALLOW("GET", "10.0.0.5", 80, "10.0.0.5"),
		/* a wildcard covers every depth, never its apex; an exact rule
		 * wins over the wildcard above it */
		ALLOW("GET", "a.example.org", 80, "*.example.org"),
		ALLOW("GET", "a.b.c.example.org", 443, "*.example.org"),
		{ "GET", "example.org", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403, "domain",
		  "blocked", "domain example.org is not allowed by the egress policy" },
		{ "GET", "www.example.org", 80, EGRESS_BLOCK, "www.example.org", EGRESS_STAGE_PORT,
		  403, "port", "blocked", "port 80 is not allowed for www.example.org" },
		{ "GET", "evil.example", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403, "domain",
		  "blocked", "domain evil.example is not allowed by the egress policy" },
		{ "GET", "Evil.Example.", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403, "domain",
		  "blocked", "domain evil.example is not allowed by the egress policy" },
		{ "GET", "10.0.0.6", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403, "domain",
		  "blocked", "domain 10.0.0.6 is not allowed by the egress policy" },
		/* numeric forms a C library reads as an address are refused
		 * outright: there is no one address to check; so is what is no
		 * name (clients send IDNs in punycode) */
		{ "GET", "127.1", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400, "host",
		  "blocked", NULL },
		{ "GET", "2130706433", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400, "host",
		  "blocked", NULL },
		{ "GET", "0x7f.0.0.1", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400, "host",
		  "blocked", NULL },
		{ "GET", "10.0.0.5.", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400, "host",
		  "blocked", NULL },
		{ "GET", "bad!name.example.org", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400,
		  "host", "blocked", NULL },
		{ "GET", "BÜCHER.example", 80, EGRESS_BLOCK, NULL, EGRESS_STAGE_HOST_FORM, 400, "host",
		  "blocked", NULL },
	};
	/* The reasons of the host's form are ssrf.c's own words, which this
	 * stage passes on. */
	struct row want[sizeof(rows) / sizeof(rows[0])];
	memcpy(want, rows, sizeof(rows));
	char reasons[8][EGRESS_REASON_MAX];
	size_t k = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].outcome != EGRESS_BLOCK || rows[i].stage != EGRESS_STAGE_HOST_FORM)
			continue;
		struct cdn_err err = { 0 };
		struct sockaddr_storage ss;
		if (ssrf_parse_host(rows[i].host, &ss, &err) >= 0)
			fail_msg("%s is a host to ssrf_parse_host", rows[i].host);
		assert_true(strlen(err.msg) > 6);
		snprintf(reasons[k], sizeof(reasons[k]), "%s", err.msg);
		want[i].reason = reasons[k++];
	}
	assert_string_equal(reasons[0], "numeric host '127.1' is not a canonical IPv4 address "
					"(expected four decimal parts)");
	CHECK(p, &r, want);

	/* what the decision reports as the host */
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;
	decide(p, &r, rl, "GET", "XN--BCHER-KVA.example.", 80, 1, &d);
	assert_string_equal(d.host, "xn--bcher-kva.example");
	decide(p, &r, rl, "GET", "127.1", 80, 1, &d);
	assert_string_equal(d.host, ""); /* refused before it is a host */
	assert_true(d.verdicts[0].always);
	/* an IPv6 literal (brackets gone) is a host no rule can name */
	assert_int_equal(decide(p, &r, rl, "GET", "2001:db8::1", 80, 1, &d), EGRESS_BLOCK);
	assert_string_equal(d.host, "2001:db8::1");
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_DOMAIN);

	/* A name the normaliser refuses (none passes ssrf_parse_host today):
	 * 400, with its words after "host: ", matched as written. */
	normalize_refuses = "a.example.org";
	assert_int_equal(decide(p, &r, rl, "GET", "a.example.org", 80, 1, &d), EGRESS_BLOCK);
	normalize_refuses = NULL;
	assert_int_equal(d.n_verdicts, 1);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_HOST_NAME);
	assert_int_equal(d.verdicts[0].status, 400);
	assert_string_equal(d.verdicts[0].block, "host");
	assert_string_equal(d.verdicts[0].event_type, "blocked");
	assert_string_equal(d.verdicts[0].reason, "host: refused by the test");
	assert_false(d.verdicts[0].always);
	assert_string_equal(d.host, "a.example.org");
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
}

/* The name is data the agent chose: a credential or a granted secret in it
 * never leaves, even under a rule that allows it. */
static void test_host_credentials(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run r;
	run_init(&r, true);
	static const char token[] = "ghp_R8fK2mQ9xL4tV7bN1cZ6wY3pH5jD0sGaE2uT";
	assert_int_equal(strlen(token), 40);
	char host[128];
	snprintf(host, sizeof(host), "%s.example.org", token);
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;
	assert_int_equal(decide(p, &r, rl, "GET", host, 80, 1, &d), EGRESS_BLOCK);
	assert_int_equal(d.n_verdicts, 1);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_HOST_CREDENTIAL);
	assert_int_equal(d.verdicts[0].status, 403);
	assert_string_equal(d.verdicts[0].block, "credential");
	assert_string_equal(d.verdicts[0].event_type, "credential_leak");
	assert_string_equal(d.verdicts[0].reason, "the host name carries a credential");
	assert_int_equal(d.n_patterns, 1);
	assert_string_equal(d.patterns[0], "github_personal_access_token");
	assert_string_equal(d.rule->name, "*.example.org");

	/* a granted secret, in its own case, even under an exact rule and
	 * to the host it is scoped to: no secret belongs in a name */
	snprintf(host, sizeof(host), "%s.cdn.example", SECRET_VALUE);
	assert_int_equal(decide(p, &r, rl, "GET", host, 80, 1, &d), EGRESS_BLOCK);
	assert_int_equal(d.n_patterns, 1);
	assert_string_equal(d.patterns[0], "API_TOKEN");
	/* and on a host no rule allows, the credential is what is said */
	snprintf(host, sizeof(host), "%s.evil.example", token);
	assert_int_equal(decide(p, &r, rl, "GET", host, 80, 1, &d), EGRESS_BLOCK);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_HOST_CREDENTIAL);
	assert_null(d.rule);
	/* without an inspector only the built-in patterns are looked for */
	struct run none = r;
	none.facts.insp = NULL;
	snprintf(host, sizeof(host), "%s.hash.example", SECRET_VALUE);
	assert_int_equal(decide(p, &none, rl, "GET", host, 80, 1, &d), EGRESS_ALLOW);
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
}

/* Under a wildcard each label is a way out: max_label_length, and long
 * labels that look random unless random_labels. Exact rules ignore both. */
static void test_labels(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run r;
	run_init(&r, true);
	const struct row rows[] = {
		/* *.cdn.example: at most 20 bytes a label */
		ALLOW("GET", "aaaaabbbbbcccccddddd.cdn.example", 80, "*.cdn.example"),
		ALLOW("GET", "a.b.c.cdn.example", 80, "*.cdn.example"),
		{ "GET", "aaaaabbbbbcccccdddddd.cdn.example", 80, EGRESS_BLOCK, "*.cdn.example",
		  EGRESS_STAGE_HOST_LABELS, 403, "host", "blocked",
		  "host aaaaabbbbbcccccdddddd.cdn.example: a label of 21 bytes under *.cdn.example "
		  "(at most 20)" },
		{ "GET", "ok.aaaaabbbbbcccccdddddd.cdn.example", 80, EGRESS_BLOCK, "*.cdn.example",
		  EGRESS_STAGE_HOST_LABELS, 403, "host", "blocked",
		  "host ok.aaaaabbbbbcccccdddddd.cdn.example: a label of 21 bytes under "
		  "*.cdn.example (at most 20)" },
		/* the default is 40 */
		ALLOW("GET", "abcdefghijabcdefghijabcdefghijabcdefghij.example.org", 80,
		      "*.example.org"),
		{ "GET", "abcdefghijabcdefghijabcdefghijabcdefghijk.example.org", 80, EGRESS_BLOCK,
		  "*.example.org", EGRESS_STAGE_HOST_LABELS, 403, "host", "blocked",
		  "host abcdefghijabcdefghijabcdefghijabcdefghijk.example.org: a label of 41 bytes "
		  "under *.example.org (at most 40)" },
		/* 16 bytes and more, random-looking: refused... */
		{ "GET", "q7x2m9klz4w8r1tv.cdn.example", 80, EGRESS_BLOCK, "*.cdn.example",
		  EGRESS_STAGE_HOST_LABELS, 403, "host", "blocked",
		  "host q7x2m9klz4w8r1tv.cdn.example: a label under *.cdn.example that looks random "
		  "(4.0 bits per character; data may be leaving in it)" },
		/* ...15 bytes are not checked, nor words... */
		ALLOW("GET", "q7x2m9klz4w8r1t.cdn.example", 80, "*.cdn.example"),
		ALLOW("GET", "documentationsite.cdn.example", 80, "*.cdn.example"),
		/* ...unless the rule allows random labels (a CDN's hashes) */
		ALLOW("GET", "q7x2m9klz4w8r1tv.hash.example", 80, "*.hash.example"),
		ALLOW("GET", "abcdefghijabcdefghijabcdefghijabcdefghij.hash.example", 80,
		      "*.hash.example"),
	};
	CHECK(p, &r, rows);

	/* an exact rule ignores the label limits */
	struct egress_policy *q = load("version: 1\n"
				       "domains:\n"
				       "  - name: q7x2m9klz4w8r1tvq7x2m9klz4w8r1tvq7x2m9klz4w8r1tv.example\n"
				       "    max_label_length: 4\n");
	const struct row exact[] = {
		ALLOW("GET", "q7x2m9klz4w8r1tvq7x2m9klz4w8r1tvq7x2m9klz4w8r1tv.example", 80,
		      "q7x2m9klz4w8r1tvq7x2m9klz4w8r1tvq7x2m9klz4w8r1tv.example"),
	};
	CHECK(q, &r, exact);
	egress_policy_free(q);
	run_free(&r);
	egress_policy_free(p);
}

/* ----------------------------------------------------- 2. port, 4. method */

static void test_ports_and_methods(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run r;
	run_init(&r, true);
	const struct row rows[] = {
		/* the default ports are 80 and 443 */
		ALLOW("GET", "open.example.com", 80, "open.example.com"),
		ALLOW("DELETE", "open.example.com", 443, "open.example.com"),
		{ "GET", "open.example.com", 8080, EGRESS_BLOCK, "open.example.com",
		  EGRESS_STAGE_PORT, 403, "port", "blocked",
		  "port 8080 is not allowed for open.example.com" },
		ALLOW("GET", "plain.example.com", 8080, "plain.example.com"),
		ALLOW("HEAD", "plain.example.com", 80, "plain.example.com"),
		{ "GET", "plain.example.com", 443, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_PORT, 403, "port", "blocked",
		  "port 443 is not allowed for plain.example.com" },
		{ "POST", "plain.example.com", 80, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_METHOD, 405, "method", "blocked",
		  "method POST is not allowed for plain.example.com" },
		{ "OPTIONS", "plain.example.com", 80, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_METHOD, 405, "method", "blocked",
		  "method OPTIONS is not allowed for plain.example.com" },
		/* methods are case-sensitive, and only the seven exist */
		{ "get", "open.example.com", 80, EGRESS_BLOCK, "open.example.com",
		  EGRESS_STAGE_METHOD, 405, "method", "blocked",
		  "method get is not allowed for open.example.com" },
		{ "TRACE", "open.example.com", 80, EGRESS_BLOCK, "open.example.com",
		  EGRESS_STAGE_METHOD, 405, "method", "blocked",
		  "method TRACE is not allowed for open.example.com" },
		/* the stage order: port before method */
		{ "PUT", "plain.example.com", 443, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_PORT, 403, "port", "blocked",
		  "port 443 is not allowed for plain.example.com" },
		ALLOW("POST", "api.example.com", 8443, "api.example.com"),
		{ "PATCH", "api.example.com", 443, EGRESS_BLOCK, "api.example.com",
		  EGRESS_STAGE_METHOD, 405, "method", "blocked",
		  "method PATCH is not allowed for api.example.com" },
	};
	CHECK(p, &r, rows);
	run_free(&r);
	egress_policy_free(p);
}

/* CONNECT: a tunnel carries what the proxy may not be able to read. */
static void test_tunnels(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run with_ca, no_ca, no_secrets;
	run_init(&with_ca, true);
	run_init(&no_ca, false);
	no_secrets = with_ca;
	struct egress_secrets empty = { 0 };
	no_secrets.facts.secrets = &empty;

	const struct row plain[] = {
		/* to port 80, never: plain HTTP comes as proxy requests */
		{ "CONNECT", "open.example.com", 80, EGRESS_BLOCK, "open.example.com",
		  EGRESS_STAGE_TUNNEL_PORT80, 403, "port", "blocked",
		  "CONNECT to port 80 is refused: send plain HTTP as proxy requests" },
		/* an unread tunnel to where a raw secret may not go */
		{ "CONNECT", "open.example.com", 443, EGRESS_BLOCK, "open.example.com",
		  EGRESS_STAGE_TUNNEL_SECRET, 403, "credential", "blocked",
		  "this run holds the raw secret API_TOKEN, which may not go to open.example.com, and "
		  "a tunnel there cannot be read: inspect open.example.com or seal API_TOKEN" },
		/* the secret's own scope is inspected: it is read, and may go */
		ALLOW("CONNECT", "api.example.com", 443, "api.example.com"),
		/* port before the tunnel's checks */
		{ "CONNECT", "plain.example.com", 443, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_PORT, 403, "port", "blocked",
		  "port 443 is not allowed for plain.example.com" },
	};
	CHECK(p, &with_ca, plain);

	const struct row open[] = {
		ALLOW("CONNECT", "open.example.com", 443, "open.example.com"),
		ALLOW("CONNECT", "a.example.org", 443, "*.example.org"),
		ALLOW("CONNECT", "api.example.com", 8443, "api.example.com"),
		/* methods or approval it cannot see on an uninspected rule */
		{ "CONNECT", "plain.example.com", 8080, EGRESS_BLOCK, "plain.example.com",
		  EGRESS_STAGE_TUNNEL_METHOD, 403, "method", "blocked",
		  "plain.example.com allows only some methods or needs approval, which cannot be "
		  "enforced inside an HTTPS tunnel; CONNECT refused" },
		{ "CONNECT", "hold8443.example.com", 8443, EGRESS_BLOCK, "hold8443.example.com",
		  EGRESS_STAGE_TUNNEL_METHOD, 403, "method", "blocked",
		  "hold8443.example.com allows only some methods or needs approval, which cannot be "
		  "enforced inside an HTTPS tunnel; CONNECT refused" },
		{ "CONNECT", "write.example.com", 80, EGRESS_BLOCK, "write.example.com",
		  EGRESS_STAGE_TUNNEL_PORT80, 403, "port", "blocked",
		  "CONNECT to port 80 is refused: send plain HTTP as proxy requests" },
		/* CONNECT to a host no rule allows: the domain decides first */
		{ "CONNECT", "evil.example", 443, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403,
		  "domain", "blocked", "domain evil.example is not allowed by the egress policy" },
	};
	CHECK(p, &no_secrets, open);

	/* the rule inspects and this run has no CA (a reload added it) */
	const struct row reloaded[] = {
		{ "CONNECT", "api.example.com", 443, EGRESS_BLOCK, "api.example.com",
		  EGRESS_STAGE_TUNNEL_INSPECT, 403, "inspect", "blocked",
		  "api.example.com needs TLS inspection, which this run does not have (the policy was "
		  "reloaded with new inspected domains)" },
	};
	const struct row uninspected[] = {
		ALLOW("CONNECT", "open.example.com", 443, "open.example.com"),
	};
	struct run no_ca_no_secrets = no_ca;
	no_ca_no_secrets.facts.secrets = &empty;
	CHECK(p, &no_ca_no_secrets, reloaded);
	CHECK(p, &no_ca_no_secrets, uninspected);
	/* with the raw secret, its own scope is then an unread tunnel: fine,
	 * the secret may go there; the inspection is what is missing */
	CHECK(p, &no_ca, reloaded);

	/* whether the proxy terminates the tunnel's TLS */
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;
	decide(p, &with_ca, rl, "CONNECT", "api.example.com", 443, 1, &d);
	assert_true(d.tls_inspect);
	decide(p, &no_secrets, rl, "CONNECT", "open.example.com", 443, 1, &d);
	assert_false(d.tls_inspect);
	decide(p, &no_ca, rl, "CONNECT", "api.example.com", 443, 1, &d);
	assert_false(d.tls_inspect);
	/* a plain request is never "inspected": it is read as it is */
	decide(p, &with_ca, rl, "GET", "api.example.com", 443, 1, &d);
	assert_false(d.tls_inspect);
	ratelimit_free(rl);
	run_free(&with_ca);
	run_free(&no_ca);
	egress_policy_free(p);
}

/* ------------------------------------------------------------ approvals */

static void test_approvals(void **state)
{
	(void)state;
	struct egress_policy *p = load(policy_yaml);
	struct run r;
	run_init(&r, true);
	const struct row rows[] = {
		/* write methods wait for a human... */
		HOLD("POST", "write.example.com", 80, "write.example.com"),
		HOLD("PUT", "write.example.com", 80, "write.example.com"),
		HOLD("PATCH", "write.example.com", 80, "write.example.com"),
		HOLD("DELETE", "write.example.com", 80, "write.example.com"),
		/* ...reads do not */
		ALLOW("GET", "write.example.com", 80, "write.example.com"),
		ALLOW("HEAD", "write.example.com", 80, "write.example.com"),
		ALLOW("OPTIONS", "write.example.com", 80, "write.example.com"),
		/* inside an inspected tunnel, like plain HTTP */
		HOLD("POST", "held.example.com", 443, "held.example.com"),
		ALLOW("CONNECT", "held.example.com", 443, "held.example.com"),
		/* a request refused before the method stage is not held */
		{ "POST", "write.example.com", 443, EGRESS_BLOCK, "write.example.com",
		  EGRESS_STAGE_PORT, 403, "port", "blocked",
		  "port 443 is not allowed for write.example.com" },
		/* nor one no rule asks approval for */
		ALLOW("POST", "open.example.com", 80, "open.example.com"),
	};
	CHECK(p, &r, rows);

	/* An LLM API is never held, even were its rule to say so (narrowing
	 * and the loader already refuse that; the decision does not rely on
	 * them). */
	struct egress_policy *llm = load("version: 1\n");
	struct egress_rule *a = (struct egress_rule *)egress_policy_match(llm, "api.anthropic.com");
	assert_non_null(a);
	assert_int_equal(a->category, EGRESS_CAT_LLM);
	a->approval = true;
	const struct row never[] = {
		ALLOW("POST", "api.anthropic.com", 443, "api.anthropic.com"),
	};
	CHECK(llm, &r, never);
	/* the same rule in another category is held */
	a->category = EGRESS_CAT_USER;
	const struct row held[] = {
		HOLD("POST", "api.anthropic.com", 443, "api.anthropic.com"),
	};
	CHECK(llm, &r, held);
	egress_policy_free(llm);
	run_free(&r);
	egress_policy_free(p);
}

/* -------------------------------------------- categories and services */

#define SERVICES_ALL                                                                         \
	"services: {google_drive: true, gmail: true, google_calendar: true, youtube: true, "   \
	"google_photos: true, google_docs: true, google_sheets: true, google_slides: true, "     \
	"google_people: true}\n"

static void test_categories(void **state)
{
	(void)state;
	static const char *const llm[] = { "api.anthropic.com", "api.openai.com",
					   "generativelanguage.googleapis.com" };
	static const char *const search[] = { "api.bing.microsoft.com", "api.exa.ai",
					      "api.perplexity.ai",	"api.search.brave.com",
					      "api.tavily.com",		"customsearch.googleapis.com",
					      "google.serper.dev",	"serpapi.com" };
	static const char *const research[] = {
		"en.wikipedia.org", "api.crossref.org", "api.openalex.org",
		"api.semanticscholar.org", "arxiv.org", "doi.org", "eutils.ncbi.nlm.nih.gov",
		"export.arxiv.org", "files.pythonhosted.org", "pypi.org", "wikipedia.org",
	};
	static const char *const services[] = {
		"drive.googleapis.com",	  "gmail.googleapis.com",  "calendar-json.googleapis.com",
		"youtube.googleapis.com", "photoslibrary.googleapis.com", "docs.googleapis.com",
		"sheets.googleapis.com",  "slides.googleapis.com", "people.googleapis.com",
	};
	struct egress_policy *def = load(egress_policy_builtin_yaml());
	struct egress_policy *all = load("version: 1\n" SERVICES_ALL);
	struct egress_policy *off = load("version: 1\ncategories: {search: false, research: false}\n");
	struct run r;
	run_init(&r, true);
	struct egress_secrets empty = { 0 };
	r.facts.secrets = &empty; /* tunnels here are about the rules */
	char reason[EGRESS_REASON_MAX];

	/* LLM APIs: always on, port 443, every method, tunnelled unread */
	for (size_t i = 0; i < sizeof(llm) / sizeof(llm[0]); i++) {
		snprintf(reason, sizeof(reason), "port 80 is not allowed for %s", llm[i]);
		const struct row rows[] = {
			ALLOW("POST", llm[i], 443, llm[i]),
			ALLOW("DELETE", llm[i], 443, llm[i]),
			ALLOW("CONNECT", llm[i], 443, llm[i]),
			{ "GET", llm[i], 80, EGRESS_BLOCK, llm[i], EGRESS_STAGE_PORT, 403, "port",
			  "blocked", reason },
		};
		CHECK(def, &r, rows);
		CHECK(off, &r, rows);
		CHECK(all, &r, rows);
		assert_int_equal(egress_policy_match(def, llm[i])->category, EGRESS_CAT_LLM);
	}
	/* search: on by default, port 443, every method (queries are POSTs) */
	for (size_t i = 0; i < sizeof(search) / sizeof(search[0]); i++) {
		snprintf(reason, sizeof(reason), "domain %s is not allowed by the egress policy",
			 search[i]);
		const struct row on[] = {
			ALLOW("POST", search[i], 443, search[i]),
			ALLOW("CONNECT", search[i], 443, search[i]),
		};
		const struct row denied[] = {
			{ "POST", search[i], 443, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403, "domain",
			  "blocked", reason },
		};
		CHECK(def, &r, on);
		CHECK(off, &r, denied);
		assert_int_equal(egress_policy_match(def, search[i])->category, EGRESS_CAT_SEARCH);
	}
	/* research: on by default, ports 80 and 443, GET and HEAD only,
	 * inspected (so the method rule holds on HTTPS) */
	for (size_t i = 0; i < sizeof(research) / sizeof(research[0]); i++) {
		const char *rule = strcmp(research[i], "en.wikipedia.org") == 0 ? "*.wikipedia.org"
										 : research[i];
		char why[EGRESS_REASON_MAX], no_ca[EGRESS_REASON_MAX];
		snprintf(reason, sizeof(reason), "domain %s is not allowed by the egress policy",
			 research[i]);
		snprintf(why, sizeof(why), "method POST is not allowed for %s", research[i]);
		snprintf(no_ca, sizeof(no_ca),
			 "%s needs TLS inspection, which this run does not have (the policy was "
			 "reloaded with new inspected domains)",
			 research[i]);
		const struct row on[] = {
			ALLOW("GET", research[i], 80, rule),
			ALLOW("HEAD", research[i], 443, rule),
			ALLOW("CONNECT", research[i], 443, rule),
			{ "POST", research[i], 443, EGRESS_BLOCK, rule, EGRESS_STAGE_METHOD, 405,
			  "method", "blocked", why },
		};
		const struct row denied[] = {
			{ "GET", research[i], 443, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403,
			  "domain", "blocked", reason },
		};
		const struct row without_ca[] = {
			{ "CONNECT", research[i], 443, EGRESS_BLOCK, rule, EGRESS_STAGE_TUNNEL_INSPECT,
			  403, "inspect", "blocked", no_ca },
		};
		CHECK(def, &r, on);
		CHECK(off, &r, denied);
		struct run r2 = r;
		r2.facts.can_inspect = false;
		CHECK(def, &r2, without_ca);
		assert_int_equal(egress_policy_match(def, research[i])->category,
				 EGRESS_CAT_RESEARCH);
	}
	/* service groups: off until named, then port 443 and every method */
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		char port[EGRESS_REASON_MAX];
		snprintf(reason, sizeof(reason), "domain %s is not allowed by the egress policy",
			 services[i]);
		snprintf(port, sizeof(port), "port 80 is not allowed for %s", services[i]);
		const struct row on[] = {
			ALLOW("DELETE", services[i], 443, services[i]),
			ALLOW("CONNECT", services[i], 443, services[i]),
			{ "GET", services[i], 80, EGRESS_BLOCK, services[i], EGRESS_STAGE_PORT, 403,
			  "port", "blocked", port },
		};
		const struct row denied[] = {
			{ "GET", services[i], 443, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403,
			  "domain", "blocked", reason },
		};
		CHECK(all, &r, on);
		CHECK(def, &r, denied);
		assert_int_equal(egress_policy_match(all, services[i])->category, EGRESS_CAT_SERVICE);
	}
	/* one group does not open another */
	struct egress_policy *drive = load("version: 1\nservices: {google_drive: true}\n");
	const struct row one[] = {
		ALLOW("GET", "drive.googleapis.com", 443, "drive.googleapis.com"),
		{ "GET", "gmail.googleapis.com", 443, EGRESS_BLOCK, NULL, EGRESS_STAGE_DOMAIN, 403,
		  "domain", "blocked",
		  "domain gmail.googleapis.com is not allowed by the egress policy" },
	};
	CHECK(drive, &r, one);
	/* an operator's rule replaces a built-in one: pypi.org in full */
	struct egress_policy *pypi = load("version: 1\ndomains:\n  - name: pypi.org\n");
	const struct row replaced[] = {
		ALLOW("POST", "pypi.org", 443, "pypi.org"),
		ALLOW("CONNECT", "pypi.org", 443, "pypi.org"),
	};
	CHECK(pypi, &r, replaced);
	egress_policy_free(pypi);
	egress_policy_free(drive);
	egress_policy_free(def);
	egress_policy_free(all);
	egress_policy_free(off);
	inspector_free(r.insp);
	egress_secrets_free(&r.secrets);
}

/* ----------------------------------------------------------------- rate */

/* Takes requests at `now` until one is refused; returns how many passed. */
static int admitted(const struct egress_policy *p, const struct run *r, struct ratelimit *rl,
		    const char *host, uint64_t now, int max)
{
	struct egress_decision d;
	for (int i = 0; i < max; i++)
		if (decide(p, r, rl, "GET", host, 80, now, &d) != EGRESS_ALLOW)
			return i;
	return max;
}

static void test_rate(void **state)
{
	(void)state;
	struct egress_policy *p = load("version: 1\n"
				       "limits: {requests_per_minute: 3, global_requests_per_minute: 5}\n"
				       "domains:\n"
				       "  - name: a.example\n"
				       "  - name: b.example\n"
				       "    requests_per_minute: 2\n"
				       "  - name: free.example\n"
				       "    requests_per_minute: 0\n"
				       "  - name: \"*.w.example\"\n"
				       "    requests_per_minute: 1\n"
				       "    max_label_length: 63\n");
	struct run r;
	run_init(&r, true);
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;
	const struct egress_verdict *v = &d.verdicts[0];
	/* Each phase starts more than a window after the last. */
	const uint64_t T1 = 1000, T2 = 200000, T3 = 400000, T4 = 600000, T5 = 800000,
		       T6 = 1000000;

	/* the rule's window: the default 3 */
	assert_int_equal(admitted(p, &r, rl, "a.example", T1, 10), 3);
	assert_int_equal(decide(p, &r, rl, "GET", "a.example", 80, T1 + 1000, &d), EGRESS_BLOCK);
	assert_int_equal(d.n_verdicts, 1);
	assert_int_equal(v->stage, EGRESS_STAGE_RATE);
	assert_int_equal(v->status, 429);
	assert_string_equal(v->status_text, "Too Many Requests");
	assert_string_equal(v->block, "rate");
	assert_string_equal(v->event_type, "rate_limited");
	/* a slot frees 60 s after the first: 59 s from then */
	assert_string_equal(v->reason, "rate limit reached for a.example; retry in 59 s");
	assert_int_equal(v->retry_after_s, 59);
	/* rounded up to whole seconds, so never 0 */
	assert_int_equal(decide(p, &r, rl, "GET", "a.example", 80, T1 + 59999, &d), EGRESS_BLOCK);
	assert_string_equal(v->reason, "rate limit reached for a.example; retry in 1 s");
	assert_int_equal(v->retry_after_s, 1);
	assert_int_equal(decide(p, &r, rl, "GET", "a.example", 80, T1 + 59001, &d), EGRESS_BLOCK);
	assert_int_equal(v->retry_after_s, 1);
	/* refused requests did not count: the window ends where it did */
	assert_int_equal(admitted(p, &r, rl, "a.example", T1 + 60000, 10), 3);

	/* a rule's own limit; then the global window of 5 over all
	 * destinations, which a rule without a limit meets alone */
	assert_int_equal(admitted(p, &r, rl, "b.example", T2, 10), 2);
	assert_int_equal(admitted(p, &r, rl, "free.example", T2, 10), 3);
	assert_int_equal(decide(p, &r, rl, "GET", "free.example", 80, T2, &d), EGRESS_BLOCK);
	assert_string_equal(v->reason, "rate limit reached for all destinations; retry in 60 s");
	assert_int_equal(v->retry_after_s, 60);
	/* a request the domain stage refuses is not counted */
	assert_int_equal(decide(p, &r, rl, "GET", "evil.example", 80, T3, &d), EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_DOMAIN);
	assert_int_equal(admitted(p, &r, rl, "free.example", T3, 10), 5);

	/* Both windows full: the global one is named, the longer wait given. */
	assert_int_equal(admitted(p, &r, rl, "a.example", T4, 2), 2);
	assert_int_equal(admitted(p, &r, rl, "b.example", T4 + 20000, 2), 2);
	assert_int_equal(admitted(p, &r, rl, "a.example", T4 + 21000, 10), 1);
	assert_int_equal(decide(p, &r, rl, "GET", "b.example", 80, T4 + 30000, &d), EGRESS_BLOCK);
	assert_string_equal(v->reason, "rate limit reached for all destinations; retry in 50 s");

	/* All or none. Over its rule's limit, a request takes nothing from
	 * the global window... */
	assert_int_equal(admitted(p, &r, rl, "a.example", T5, 3), 3);
	for (int i = 0; i < 10; i++)
		assert_int_equal(decide(p, &r, rl, "GET", "a.example", 80, T5, &d), EGRESS_BLOCK);
	assert_int_equal(admitted(p, &r, rl, "free.example", T5, 10), 2);
	/* ...and over the global limit, nothing from its rule's */
	assert_int_equal(decide(p, &r, rl, "GET", "b.example", 80, T5 + 30000, &d), EGRESS_BLOCK);
	assert_int_equal(admitted(p, &r, rl, "b.example", T5 + 60000, 10), 2);

	/* every name under a wildcard shares its window */
	assert_int_equal(admitted(p, &r, rl, "x.w.example", T6, 10), 1);
	assert_int_equal(decide(p, &r, rl, "GET", "y.w.example", 80, T6, &d), EGRESS_BLOCK);
	assert_string_equal(v->reason, "rate limit reached for y.w.example; retry in 60 s");
	/* the enforced reason keeps to 199 bytes, as the engine's always did */
	char host[254];
	memset(host, 'a', 60);
	host[60] = '.';
	memset(host + 61, 'b', 60);
	host[121] = '.';
	memset(host + 122, 'c', 60);
	snprintf(host + 182, sizeof(host) - 182, ".w.example");
	assert_int_equal(decide(p, &r, rl, "GET", host, 80, T6, &d), EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_RATE);
	assert_int_equal(strlen(v->reason), 199);
	assert_memory_equal(v->reason, "rate limit reached for aaaa", 27);
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
}

/* A narrowed rule counts in its operator rule's window (shared by every
 * name under it) and in the agent entry's window when that sets a limit. */
static void test_rate_narrowed(void **state)
{
	(void)state;
	struct egress_policy *op = load("version: 1\n"
					"limits: {global_requests_per_minute: 100}\n"
					"domains:\n"
					"  - name: \"*.example.com\"\n"
					"    requests_per_minute: 4\n");
	const char *const domains[] = { "a.example.com", "b.example.com", "c.example.com" };
	struct egress_rule rules[2] = { { .name = (char *)"a.example.com", .methods = EGRESS_M_ALL,
					  .rpm = 2 },
					{ .name = (char *)"b.example.com", .methods = EGRESS_M_GET } };
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_narrow(op, domains, 3, rules, 2, &p, NULL, NULL, &err), 0);
	const struct egress_rule *a = egress_policy_match(p, "a.example.com");
	assert_string_equal(a->rate_key, "*.example.com");
	assert_string_equal(a->agent_rate_key, "agent:a.example.com");
	struct run r;
	run_init(&r, true);
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;

	/* the agent's 2 for a, then the operator's 4 shared by all three */
	assert_int_equal(admitted(p, &r, rl, "a.example.com", 1000, 10), 2);
	assert_int_equal(decide(p, &r, rl, "GET", "a.example.com", 80, 1000, &d), EGRESS_BLOCK);
	assert_string_equal(d.verdicts[0].reason,
			    "rate limit reached for a.example.com; retry in 60 s");
	assert_int_equal(admitted(p, &r, rl, "b.example.com", 1000, 10), 2);
	assert_int_equal(admitted(p, &r, rl, "c.example.com", 1000, 10), 0);
	/* the operator's window frees at t = 61000, the agent's too */
	assert_int_equal(admitted(p, &r, rl, "c.example.com", 61000, 10), 4);
	/* an agent limit's wait is given when it is the longer one */
	assert_int_equal(admitted(p, &r, rl, "a.example.com", 130000, 2), 2);
	assert_int_equal(decide(p, &r, rl, "GET", "a.example.com", 80, 150000, &d), EGRESS_BLOCK);
	assert_string_equal(d.verdicts[0].reason,
			    "rate limit reached for a.example.com; retry in 40 s");
	/* the narrowing's other results hold too */
	assert_int_equal(decide(p, &r, rl, "POST", "b.example.com", 80, 400000, &d), EGRESS_BLOCK);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_METHOD);
	assert_int_equal(decide(p, &r, rl, "GET", "d.example.com", 80, 400000, &d), EGRESS_BLOCK);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_DOMAIN);
	assert_int_equal(decide(p, &r, rl, "GET", "example.com", 80, 400000, &d), EGRESS_BLOCK);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_DOMAIN);
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
	egress_policy_free(op);
}

/* ----------------------------------------------------------- audit-only */

static void test_audit_only(void **state)
{
	(void)state;
	struct egress_policy *p = load("version: 1\n"
				       "enforce: false\n"
				       "limits: {requests_per_minute: 1, global_requests_per_minute: 100}\n"
				       "domains:\n"
				       "  - name: plain.example.com\n"
				       "    ports: [80]\n"
				       "    methods: [GET]\n"
				       "  - name: write.example.com\n"
				       "    ports: [80]\n"
				       "    approval: required\n"
				       "  - name: \"*.max.example\"\n"
				       "    ports: [8080]\n"
				       "    methods: [GET]\n"
				       "    inspect: true\n"
				       "    max_label_length: 5\n");
	struct run r;
	run_init(&r, false);
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;

	/* nothing failed: allowed, no verdict, and it counted */
	assert_int_equal(decide(p, &r, rl, "GET", "plain.example.com", 80, 1000, &d), EGRESS_ALLOW);
	assert_false(d.enforced);
	assert_int_equal(d.n_verdicts, 0);
	/* what would have been refused is allowed anyway, with the verdict */
	assert_int_equal(decide(p, &r, rl, "GET", "evil.example", 80, 1000, &d), EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 1);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_DOMAIN);
	assert_string_equal(d.verdicts[0].reason,
			    "domain evil.example is not allowed by the egress policy");
	assert_false(d.verdicts[0].always);
	/* every stage that fails is a verdict, in order; over the limit the
	 * reason gives no wait, and the request does not count */
	assert_int_equal(decide(p, &r, rl, "POST", "plain.example.com", 443, 2000, &d),
			 EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 3);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_PORT);
	assert_int_equal(d.verdicts[1].stage, EGRESS_STAGE_RATE);
	assert_string_equal(d.verdicts[1].reason, "rate limit reached for plain.example.com");
	assert_int_equal(d.verdicts[1].retry_after_s, 0);
	assert_int_equal(d.verdicts[2].stage, EGRESS_STAGE_METHOD);
	assert_string_equal(d.verdicts[2].reason, "method POST is not allowed for plain.example.com");
	assert_int_equal(decide(p, &r, rl, "GET", "plain.example.com", 80, 61000, &d), EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 0);
	/* a hold is still a hold */
	assert_int_equal(decide(p, &r, rl, "POST", "write.example.com", 8080, 1000, &d), EGRESS_HOLD);
	assert_int_equal(d.n_verdicts, 1);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_PORT);
	/* the host credential goes on to the rest */
	char host[128];
	snprintf(host, sizeof(host), "%s.evil.example", SECRET_VALUE);
	assert_int_equal(decide(p, &r, rl, "GET", host, 80, 1000, &d), EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 2);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_HOST_CREDENTIAL);
	assert_int_equal(d.verdicts[1].stage, EGRESS_STAGE_DOMAIN);
	assert_int_equal(d.n_patterns, 1);

	/* The most one request can collect: a CONNECT to port 80 under a
	 * wildcard, to a name that does not normalise (see
	 * test_host_and_domain) and has a long label, over the rate limit,
	 * from a run holding a raw secret, to a rule that inspects (no CA
	 * here) and restricts methods. */
	assert_int_equal(decide(p, &r, rl, "GET", "a.max.example", 8080, 5000, &d), EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 0);
	normalize_refuses = "toolong.max.example";
	assert_int_equal(decide(p, &r, rl, "CONNECT", "toolong.max.example", 80, 5000, &d),
			 EGRESS_ALLOW);
	normalize_refuses = NULL;
	static const enum egress_stage all[] = {
		EGRESS_STAGE_HOST_NAME,	     EGRESS_STAGE_HOST_LABELS,	   EGRESS_STAGE_PORT,
		EGRESS_STAGE_RATE,	     EGRESS_STAGE_TUNNEL_PORT80,   EGRESS_STAGE_TUNNEL_SECRET,
		EGRESS_STAGE_TUNNEL_INSPECT, EGRESS_STAGE_TUNNEL_METHOD,
	};
	assert_int_equal(d.n_verdicts, EGRESS_MAX_VERDICTS);
	for (size_t i = 0; i < EGRESS_MAX_VERDICTS; i++) {
		assert_int_equal(d.verdicts[i].stage, all[i]);
		assert_false(d.verdicts[i].always);
	}
	assert_string_equal(d.host, "toolong.max.example");
	assert_string_equal(d.rule->name, "*.max.example");
	assert_string_equal(d.verdicts[1].reason,
			    "host toolong.max.example: a label of 7 bytes under *.max.example (at "
			    "most 5)");
	assert_string_equal(d.verdicts[3].reason, "rate limit reached for toolong.max.example");

	/* a tunnel to a host no rule allows: only what concerns the host */
	assert_int_equal(decide(p, &r, rl, "CONNECT", "evil.example", 443, 1000, &d), EGRESS_ALLOW);
	assert_int_equal(d.n_verdicts, 2);
	assert_int_equal(d.verdicts[0].stage, EGRESS_STAGE_DOMAIN);
	assert_int_equal(d.verdicts[1].stage, EGRESS_STAGE_TUNNEL_SECRET);
	assert_false(d.tls_inspect);

	/* a non-canonical number is refused in every mode, and ends it */
	assert_int_equal(decide(p, &r, rl, "GET", "127.1", 80, 1000, &d), EGRESS_BLOCK);
	assert_int_equal(d.n_verdicts, 1);
	assert_true(d.verdicts[0].always);
	assert_false(d.enforced);
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
}

/* ------------------------------------------------------ 6. destination */

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static void test_destination(void **state)
{
	(void)state;
	struct egress_policy *p = load("version: 1\n"
				       "domains:\n"
				       "  - name: svc.internal\n"
				       "private:\n"
				       "  - 10.0.0.5:8080\n"
				       "  - \"[fd00::5]:8443\"\n");
	static const struct {
		const char *ip;
		uint16_t port;
		const char *class; /* NULL: may go there */
	} rows[] = {
		{ "93.184.216.34", 80, NULL },
		{ "2606:2800:220:1:248:1893:25c8:1946", 443, NULL },
		{ "127.0.0.1", 80, "loopback" },
		{ "::1", 80, "loopback" },
		{ "10.1.2.3", 80, "private" },
		{ "192.168.1.1", 443, "private" },
		{ "169.254.169.254", 80, "metadata" },
		{ "169.254.1.1", 80, "link-local" },
		{ "100.64.0.1", 80, "cgnat" },
		{ "0.0.0.0", 80, "unspecified" },
		{ "224.0.0.1", 80, "multicast" },
		{ "fd12::1", 80, "unique-local" },
		{ "fe80::1", 80, "link-local" },
		{ "::ffff:127.0.0.1", 80, "loopback" },
		{ "192.0.2.1", 80, "documentation" },
		{ "198.18.0.1", 80, "reserved" },
		{ "240.0.0.1", 80, "reserved" },
		{ "255.255.255.255", 80, "broadcast" },
		{ "ff02::1", 80, "multicast" },
		{ "::", 80, "unspecified" },
		{ "64:ff9b::a9fe:a9fe", 80, "metadata" }, /* NAT64 of 169.254.169.254 */
		{ "2002:a00:1::", 80, "private" },	  /* 6to4 of 10.0.0.1 */
		/* the exceptions: exactly that address and port */
		{ "10.0.0.5", 8080, NULL },
		{ "10.0.0.5", 8081, "private" },
		{ "10.0.0.6", 8080, "private" },
		{ "fd00::5", 8443, NULL },
		{ "fd00::5", 443, "unique-local" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss = addr(rows[i].ip);
		struct egress_verdict v;
		bool ok = egress_decide_address(p, "svc.internal", (struct sockaddr *)&ss,
						rows[i].port, &v);
		if (ok != !rows[i].class)
			fail_msg("%s:%u: %s", rows[i].ip, rows[i].port, ok ? "allowed" : v.reason);
		if (ok)
			continue;
		char want[EGRESS_REASON_MAX];
		snprintf(want, sizeof(want), "svc.internal resolves to %s, a %s address", rows[i].ip,
			 rows[i].class);
		assert_string_equal(v.reason, want);
		assert_int_equal(v.stage, EGRESS_STAGE_DESTINATION);
		assert_int_equal(v.status, 403);
		assert_string_equal(v.block, "destination");
		assert_string_equal(v.event_type, "blocked");
		assert_false(v.always);
	}
	egress_policy_free(p);
}

/* ---------------------------------------------------------------- DNS */

static void test_lookups(void **state)
{
	(void)state;
	struct egress_policy *p = load("version: 1\n"
				       "enforce: false\n"
				       "domains:\n"
				       "  - name: upstream.test\n"
				       "    requests_per_minute: 2\n"
				       "  - name: \"*.cdn.example\"\n"
				       "    max_label_length: 20\n"
				       "    requests_per_minute: 0\n");
	struct run r;
	run_init(&r, true);
	struct ratelimit *rl = ratelimit_new();
	struct egress_decision d;
	const struct egress_verdict *v = &d.verdicts[0];

	assert_int_equal(egress_decide_lookup(p, &r.facts, "upstream.test", "UpStream.Test", rl,
					      1000, &d),
			 EGRESS_ALLOW);
	assert_string_equal(d.host, "upstream.test");
	assert_string_equal(d.rule->name, "upstream.test");
	assert_int_equal(d.n_verdicts, 0);
	/* a name no rule allows never leaves, audit-only or not */
	assert_int_equal(egress_decide_lookup(p, &r.facts, "exfil.attacker.example",
					      "exfil.attacker.example", rl, 1000, &d),
			 EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_DOMAIN);
	assert_int_equal(v->status, DNS_RCODE_NXDOMAIN);
	assert_string_equal(v->event_type, "blocked");
	assert_string_equal(v->reason, "name not allowed by the egress policy");
	assert_null(v->block);
	assert_null(d.rule);
	/* nor one that does not normalise */
	assert_int_equal(egress_decide_lookup(p, &r.facts, "a..cdn.example", "a..cdn.example", rl,
					      1000, &d),
			 EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_DOMAIN);
	/* a credential in the name, as sent */
	char name[128];
	snprintf(name, sizeof(name), "%s.cdn.example", SECRET_VALUE);
	assert_int_equal(egress_decide_lookup(p, &r.facts, name, name, rl, 1000, &d), EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_CREDENTIAL);
	assert_int_equal(v->status, DNS_RCODE_NXDOMAIN);
	assert_string_equal(v->event_type, "credential_leak");
	assert_string_equal(v->reason, "the name carries a credential");
	assert_int_equal(d.n_patterns, 1);
	assert_string_equal(d.patterns[0], "API_TOKEN");
	/* labels under a wildcard */
	assert_int_equal(egress_decide_lookup(p, &r.facts, "aaaaabbbbbcccccdddddd.cdn.example",
					      "aaaaabbbbbcccccdddddd.cdn.example", rl, 1000, &d),
			 EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_LABELS);
	assert_int_equal(v->status, DNS_RCODE_NXDOMAIN);
	assert_string_equal(v->event_type, "blocked");
	assert_string_equal(v->reason, "a label of 21 bytes under *.cdn.example (at most 20)");
	/* a lookup counts in its rule's window (not the global one) */
	assert_int_equal(egress_decide_lookup(p, &r.facts, "upstream.test", "upstream.test", rl,
					      2000, &d),
			 EGRESS_ALLOW);
	assert_int_equal(egress_decide_lookup(p, &r.facts, "upstream.test", "upstream.test", rl,
					      3000, &d),
			 EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_RATE);
	assert_int_equal(v->status, DNS_RCODE_REFUSED);
	assert_string_equal(v->event_type, "rate_limited");
	assert_string_equal(v->reason, "rate limit reached for the name's rule");
	/* and a request after it shares that window */
	struct egress_decision rd;
	assert_int_equal(decide(p, &r, rl, "GET", "upstream.test", 80, 3000, &rd), EGRESS_ALLOW);
	assert_int_equal(rd.n_verdicts, 1); /* audit-only: over the limit, let through */
	assert_int_equal(rd.verdicts[0].stage, EGRESS_STAGE_RATE);
	assert_int_equal(egress_decide_lookup(p, &r.facts, "upstream.test", "upstream.test", rl,
					      61000, &d),
			 EGRESS_ALLOW);
	/* an agent's window too */
	struct egress_policy *op = load("version: 1\n"
					"domains:\n"
					"  - name: \"*.example.com\"\n");
	const char *const domains[] = { "a.example.com" };
	struct egress_rule agent = { .name = (char *)"a.example.com", .methods = EGRESS_M_ALL,
				     .rpm = 1 };
	struct egress_policy *n = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_narrow(op, domains, 1, &agent, 1, &n, NULL, NULL, &err), 0);
	assert_int_equal(egress_decide_lookup(n, &r.facts, "a.example.com", "a.example.com", rl,
					      1000, &d),
			 EGRESS_ALLOW);
	assert_int_equal(egress_decide_lookup(n, &r.facts, "a.example.com", "a.example.com", rl,
					      1000, &d),
			 EGRESS_BLOCK);
	assert_int_equal(v->stage, EGRESS_STAGE_LOOKUP_RATE);
	egress_policy_free(n);
	egress_policy_free(op);
	ratelimit_free(rl);
	run_free(&r);
	egress_policy_free(p);
}

/* ------------------------------------------------------------- secrets */

static void test_secret_scopes(void **state)
{
	(void)state;
	static const struct inspect_secret secrets[] = {
		{ "RAW", "raw-value-1234", 14 },
		{ "SEALED", "sealed-value-1234", 17 },
		{ "RAW", "raw-value-1234-part2", 20 }, /* a long one comes in pieces */
		{ "OTHER", "other-value-1234", 16 },
	};
	static const struct egress_sealed sealed[] = { { .name = "SEALED" } };
	static const struct egress_secret_scope scopes[] = {
		{ "RAW", "api.example.com" },
		{ "RAW", "*.files.example" },
		{ "SEALED", "sealed.example" },
		{ "OTHER", "*other.example" }, /* no "*." : a name like any */
	};
	struct egress_secrets s;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_secrets_init(&s, secrets, 4, sealed, 1, scopes, 4, &err), 0);
	/* raw: not sealed, each name once */
	assert_int_equal(s.n_raw, 2);
	assert_string_equal(s.raw[0], "RAW");
	assert_string_equal(s.raw[1], "OTHER");
	assert_int_equal(s.n_scopes, 4);

	assert_true(egress_secret_in_scope(&s, "RAW", "api.example.com"));
	assert_true(egress_secret_in_scope(&s, "RAW", "API.Example.com"));
	assert_false(egress_secret_in_scope(&s, "RAW", "x.api.example.com"));
	assert_true(egress_secret_in_scope(&s, "RAW", "a.files.example"));
	assert_true(egress_secret_in_scope(&s, "RAW", "a.b.files.example"));
	assert_false(egress_secret_in_scope(&s, "RAW", "files.example")); /* not the apex */
	assert_false(egress_secret_in_scope(&s, "RAW", "xfiles.example"));
	assert_false(egress_secret_in_scope(&s, "RAW", "sealed.example"));
	assert_true(egress_secret_in_scope(&s, "SEALED", "sealed.example"));
	assert_false(egress_secret_in_scope(&s, "OTHER", "api.example.com"));
	assert_true(egress_secret_in_scope(&s, "OTHER", "*other.example"));
	assert_false(egress_secret_in_scope(&s, "OTHER", "a.other.example"));
	assert_false(egress_secret_in_scope(&s, "NONE", "api.example.com"));

	/* OTHER may go nowhere: every host is out of some raw secret's scope */
	assert_string_equal(egress_raw_secret_out_of_scope(&s, "evil.example"), "RAW");
	assert_string_equal(egress_raw_secret_out_of_scope(&s, "api.example.com"), "OTHER");
	egress_secrets_free(&s);
	assert_int_equal(s.n_raw, 0);
	assert_null(s.raw);

	assert_int_equal(egress_secrets_init(&s, secrets, 1, NULL, 0, scopes, 2, &err), 0);
	assert_null(egress_raw_secret_out_of_scope(&s, "api.example.com"));
	assert_string_equal(egress_raw_secret_out_of_scope(&s, "evil.example"), "RAW");
	egress_secrets_free(&s);
	/* nothing held, nothing scoped */
	assert_int_equal(egress_secrets_init(&s, NULL, 0, NULL, 0, NULL, 0, &err), 0);
	assert_null(egress_raw_secret_out_of_scope(&s, "evil.example"));
	assert_false(egress_secret_in_scope(&s, "RAW", "api.example.com"));
	egress_secrets_free(&s);
}

/*
 * Every allocation of the copy fails in turn. The copy must then fail as a
 * whole and keep nothing: a list with a hole (a NULL name counted in n_raw)
 * would crash the scope check, and a list cut short would let a tunnel
 * carry a raw secret it no longer knows of. ASan and LSan check that
 * nothing leaks on the way.
 */
static void test_secrets_out_of_memory(void **state)
{
	(void)state;
	static const struct inspect_secret secrets[] = {
		{ "A", "a-value-12345678", 16 },
		{ "B", "b-value-12345678", 16 },
		{ "C", "c-value-12345678", 16 },
	};
	static const struct egress_secret_scope scopes[] = {
		{ "A", "a.example" },
		{ "B", "b.example" },
	};
	struct cdn_err err = { 0 };
	int failures = 0;
	for (int n = 1;; n++) {
		struct egress_secrets s;
		memset(&s, 0xa5, sizeof(s)); /* init must not read what was there */
		fail_in = n;
		int r = egress_secrets_init(&s, secrets, 3, NULL, 0, scopes, 2, &err);
		bool failed = fail_in == 0;
		fail_in = 0;
		if (!failed) {
			/* past the last allocation: a whole copy */
			assert_int_equal(r, 0);
			assert_int_equal(s.n_raw, 3);
			assert_int_equal(s.n_scopes, 2);
			for (size_t i = 0; i < s.n_raw; i++)
				assert_non_null(s.raw[i]);
			egress_secrets_free(&s);
			break;
		}
		failures++;
		assert_int_equal(r, -ENOMEM);
		assert_non_null(strstr(err.msg, "egress engine"));
		assert_int_equal(s.n_raw, 0);
		assert_null(s.raw);
		assert_int_equal(s.n_scopes, 0);
		assert_null(s.scope_secret);
		assert_null(s.scope_domain);
		egress_secrets_free(&s); /* harmless on what is left */
	}
	/* the list, three names, two arrays, two pairs of names */
	assert_int_equal(failures, 1 + 3 + 2 + 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_and_domain),
		cmocka_unit_test(test_host_credentials),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_ports_and_methods),
		cmocka_unit_test(test_tunnels),
		cmocka_unit_test(test_approvals),
		cmocka_unit_test(test_categories),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_rate_narrowed),
		cmocka_unit_test(test_audit_only),
		cmocka_unit_test(test_destination),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_secret_scopes),
		cmocka_unit_test(test_secrets_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
