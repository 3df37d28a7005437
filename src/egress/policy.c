/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy: the YAML schema (docs/policy.md), the built-in seed
 * categories, host name normalisation and matching.
 *
 * Parsing runs in two steps. libyaml's event stream is turned into a small
 * tree, refusing anchors, aliases, tags and second documents as the events
 * arrive. The tree is then walked against the schema, so every error can
 * name the key, its path ("domains[2].ports[0]") and its line. Nothing is
 * coerced: YAML 1.1's "yes", "0x1f" and "010" are errors, not booleans and
 * numbers, because a policy that silently means something else than it
 * reads is a hole.
 *
 * Rules are kept sorted by name. A lookup is one binary search for the
 * exact name, then one per label for "*." wildcards, longest suffix first.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"

/* A U-label character takes at most 4 bytes of UTF-8; anything longer
 * than this cannot become a valid name, and refusing it early bounds the
 * work handed to libidn2. */
#define HOST_INPUT_MAX (4 * EGRESS_MAX_HOST + 2)
#define LABEL_MAX 63

/* --allow and --allow-private arguments; far above any valid one. */
#define ARG_MAX_LEN 512
#define SHOWN_MAX 64

/* ------------------------------------------------------ built-in categories */

static const uint16_t ports_https[] = { 443 };
static const uint16_t ports_web[] = { 80, 443 };

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
static const struct {
	const char *key;
	const char *host;
} services[] = {
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
#define N_SERVICES CDN_ARRAY_SIZE(services)

#define N_BUILTIN                                                                                  \
	(CDN_ARRAY_SIZE(llm_hosts) + CDN_ARRAY_SIZE(search_hosts) +                               \
	 CDN_ARRAY_SIZE(research_hosts) + N_SERVICES)

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
	static const char *const fixed[] = { "allow", "agent", "user", "llm", "search",
					     "research" };
	for (size_t i = 0; name && i < CDN_ARRAY_SIZE(fixed); i++)
		if (strcmp(name, fixed[i]) == 0)
			return fixed[i];
	for (size_t i = 0; name && i < N_SERVICES; i++)
		if (strcmp(name, services[i].key) == 0)
			return services[i].key;
	return NULL;
}

bool egress_rule_has_port(const struct egress_rule *r, uint16_t port)
{
	for (size_t i = 0; r && i < r->n_ports; i++)
		if (r->ports[i] == port)
			return true;
	return false;
}

/* ------------------------------------------------------------- host names */

static bool ipv4_canonical(const char *s)
{
	struct in_addr a;
	char back[INET_ADDRSTRLEN];
	/* inet_pton takes only dotted quads; the round trip also refuses
	 * leading zeros on any libc that would accept them. */
	return inet_pton(AF_INET, s, &a) == 1 && inet_ntop(AF_INET, &a, back, sizeof(back)) &&
	       strcmp(back, s) == 0;
}

static int name_check(const char *name, size_t len, struct cdn_err *err)
{
	if (len == 0)
		return cdn_err_msg(err, EINVAL, "empty host name");
	if (len > EGRESS_MAX_HOST)
		return cdn_err_msg(err, EINVAL, "host name is %zu bytes, more than %d", len,
				   EGRESS_MAX_HOST);
	/* Characters first, so the messages below can quote the name. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.')
			continue;
		char shown[8];
		if (ch > 0x20 && ch < 0x7f)
			snprintf(shown, sizeof(shown), "'%c'", ch);
		else
			snprintf(shown, sizeof(shown), "0x%02x", ch);
		return cdn_err_msg(err, EINVAL, "character %s is not allowed in a host name",
				   shown);
	}
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		char ch = i < len ? name[i] : '.';
		if (ch == '.') {
			if (label == 0)
				return cdn_err_msg(err, EINVAL, "'%s': empty label", name);
			if (label > LABEL_MAX)
				return cdn_err_msg(err, EINVAL,
						   "'%s': a label is longer than %d bytes", name,
						   LABEL_MAX);
			label = 0;
			continue;
		}
		label++;
	}
	/* "127.1", "0x7f.1" and "2130706433" are IPv4 addresses to the
	 * resolver. They would never match a rule (the engine refuses them
	 * outright), so a rule or a lookup naming them is a mistake. */
	struct in_addr a;
	if (inet_aton(name, &a) && !ipv4_canonical(name))
		return cdn_err_msg(err, EINVAL, "'%s' is not a canonical IPv4 address", name);
	return 0;
}

static int normalize(const char *in, char *out, size_t cap, bool allow_wild, bool *wildcard,
		     struct cdn_err *err)
{
	if (!in)
		return cdn_err_msg(err, EINVAL, "empty host name");
	size_t n = strnlen(in, HOST_INPUT_MAX + 1);
	if (n > HOST_INPUT_MAX)
		return cdn_err_msg(err, EINVAL, "host name is longer than %d bytes",
				   HOST_INPUT_MAX);
	bool wild = false;
	if (allow_wild && in[0] == '*' && in[1] == '.') {
		wild = true;
		in += 2;
		n -= 2;
	}
	if (memchr(in, '*', n))
		return cdn_err_msg(err, EINVAL, "%s",
				   allow_wild ? "'*' is only allowed as a leading '*.' label"
					      : "'*' is not allowed in a host name");
	char buf[HOST_INPUT_MAX + 1];
	memcpy(buf, in, n);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
	if (n == 0)
		return cdn_err_msg(err, EINVAL, "empty host name");

	bool ascii = true;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] >= 0x80)
			ascii = false;
	if (!ascii) {
		/* UTS #46 non-transitional processing, as browsers do: "ß"
		 * stays "ß" (xn--zca), it is not folded to "ss". No fallback to
		 * transitional: one name must have one encoding, or a rule and a
		 * request could disagree about what they name. */
		char *conv = NULL;
		int rc = idn2_to_ascii_8z(buf, &conv, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
		if (rc != IDN2_OK) {
			idn2_free(conv);
			return cdn_err_msg(err, EINVAL,
					   "not a valid internationalised host name: %s",
					   idn2_strerror(rc));
		}
		size_t cl = strlen(conv);
		if (cl > EGRESS_MAX_HOST) {
			idn2_free(conv);
			return cdn_err_msg(err, EINVAL,
					   "host name is longer than %d bytes in punycode",
					   EGRESS_MAX_HOST);
		}
		memcpy(buf, conv, cl + 1);
		n = cl;
		idn2_free(conv);
	}
	for (size_t i = 0; i < n; i++)
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] = (char)(buf[i] - 'A' + 'a');
	int r = name_check(buf, n, err);
	if (r < 0)
		return r;
	if (wild) {
		if (!strchr(buf, '.'))
			return cdn_err_msg(err, EINVAL,
					   "'*.%s': a wildcard needs at least two labels after "
					   "'*.' (e.g. *.example.com)",
					   buf);
		if (ipv4_canonical(buf))
			return cdn_err_msg(err, EINVAL,
					   "'*.%s': a wildcard cannot cover an IP address", buf);
		if (n + 2 > EGRESS_MAX_HOST)
			return cdn_err_msg(err, EINVAL,
					   "'*.%s': no host name below it fits in %d bytes", buf,
					   EGRESS_MAX_HOST);
	}
	if (n + (wild ? 2 : 0) + 1 > cap)
		return cdn_err_set(err, ERANGE, "host name '%s'", buf);
	snprintf(out, cap, "%s%s", wild ? "*." : "", buf);
	if (wildcard)
		*wildcard = wild;
	return 0;
}

int egress_host_normalize(const char *in, char *out, size_t cap, struct cdn_err *err)
{
	return normalize(in, out, cap, false, NULL, err);
}

int egress_rule_name_normalize(const char *in, char *out, size_t cap, bool *wildcard,
			       struct cdn_err *err)
{
	return normalize(in, out, cap, true, wildcard, err);
}

/* ---------------------------------------------------------------- matching */

static int rule_name_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct egress_rule *)elem)->name);
}

static int rule_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct egress_rule *)a)->name, ((const struct egress_rule *)b)->name);
}

static struct egress_rule *find_rule(const struct egress_policy *p, const char *name)
{
	if (!p->n_rules)
		return NULL;
	return bsearch(name, p->rules, p->n_rules, sizeof(p->rules[0]), rule_name_cmp);
}

const struct egress_rule *egress_policy_match(const struct egress_policy *p, const char *host)
{
	/* A host never starts with "*": that would be a rule's name, and
	 * looking it up would match the wildcard rule itself. */
	if (!p || !host || !host[0] || host[0] == '*')
		return NULL;
	size_t len = strnlen(host, EGRESS_MAX_HOST + 1);
	if (len > EGRESS_MAX_HOST)
		return NULL;
	const struct egress_rule *r = find_rule(p, host);
	if (r)
		return r;
	/* IP addresses are matched by exact rules only: "*.0.0.1" is no
	 * way to allow 127.0.0.1. */
	if (ipv4_canonical(host))
		return NULL;
	char cand[EGRESS_MAX_HOST + 3] = "*.";
	for (const char *dot = strchr(host, '.'); dot; dot = strchr(dot + 1, '.')) {
		size_t rest = len - (size_t)(dot + 1 - host);
		memcpy(cand + 2, dot + 1, rest + 1);
		r = find_rule(p, cand);
		if (r)
			return r;
	}
	return NULL;
}

/* ------------------------------------------------------- private exceptions */

static int parse_port(const char *s, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5 || (s[0] == '0'))
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int parse_ip_port(const char *s, struct egress_private *out, struct cdn_err *err)
{
	static const char usage[] = "(expected IPv4:PORT or [IPv6]:PORT, e.g. 10.0.0.5:8080)";
	size_t n = strnlen(s, ARG_MAX_LEN + 1);
	if (n == 0 || n > ARG_MAX_LEN)
		return cdn_err_msg(err, EINVAL, "private destination: bad length %s", usage);
	memset(out, 0, sizeof(*out));
	char show[SHOWN_MAX + 4];
	const char *as = cdn_printable_str(show, sizeof(show), s, CDN_TEXT_ELLIPSIS);
	char ip[INET6_ADDRSTRLEN + 1];
	const char *port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return cdn_err_msg(err, EINVAL, "'%s': missing ']:PORT' %s", as, usage);
		size_t il = (size_t)(close - s - 1);
		if (il == 0 || il >= sizeof(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv6 address %s", as, usage);
		memcpy(ip, s + 1, il);
		ip[il] = '\0';
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
		if (strchr(ip, '%'))
			return cdn_err_msg(err, EINVAL, "'%s': zone indexes are not supported", as);
		if (inet_pton(AF_INET6, ip, &a6->sin6_addr) != 1)
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv6 address %s", as, usage);
		/* The exception is matched against exact resolved addresses;
		 * a mapped form would silently never match an A record. */
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			return cdn_err_msg(err, EINVAL,
					   "'%s': an IPv4-mapped address; write the IPv4 address "
					   "instead",
					   s);
		a6->sin6_family = AF_INET6;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			return cdn_err_msg(err, EINVAL, "'%s': missing ':PORT' %s", as, usage);
		size_t il = (size_t)(colon - s);
		if (memchr(s, ':', il))
			return cdn_err_msg(err, EINVAL,
					   "'%s': write an IPv6 address as [ADDR]:PORT", as);
		if (il == 0 || il >= sizeof(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv4 address %s", as, usage);
		memcpy(ip, s, il);
		ip[il] = '\0';
		/* Canonical dotted quads only: "10.1" or "012.0.0.1" mean
		 * different addresses to different parsers. */
		if (!ipv4_canonical(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not a canonical IPv4 address %s", as,
					   usage);
		struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
		inet_pton(AF_INET, ip, &a4->sin_addr);
		a4->sin_family = AF_INET;
		port = colon + 1;
	}
	if (parse_port(port, strlen(port), &out->port) < 0)
		return cdn_err_msg(err, EINVAL, "'%s': the port must be a number from 1 to 65535",
				   as);
	return 0;
}

static bool private_equal(const struct egress_private *e, const struct sockaddr *addr,
			  uint16_t port)
{
	if (e->port != port || e->addr.ss_family != addr->sa_family)
		return false;
	if (addr->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)&e->addr)->sin_addr,
			      &((const struct sockaddr_in *)addr)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	if (addr->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)&e->addr)->sin6_addr,
			      &((const struct sockaddr_in6 *)addr)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return false;
}

bool egress_policy_private_ok(const struct egress_policy *p, const struct sockaddr *addr,
			      uint16_t port)
{
	for (size_t i = 0; p && addr && i < p->n_private; i++)
		if (private_equal(&p->private_ok[i], addr, port))
			return true;
	return false;
}

/* Adds e unless it is there already: 1 when added, 0 when a duplicate. */
static int private_add(struct egress_policy *p, const struct egress_private *e,
		       struct cdn_err *err)
{
	if (egress_policy_private_ok(p, (const struct sockaddr *)&e->addr, e->port))
		return 0;
	if (p->n_private >= EGRESS_MAX_PRIVATE)
		return cdn_err_msg(err, EINVAL, "more than %d private destinations",
				   EGRESS_MAX_PRIVATE);
	p->private_ok[p->n_private++] = *e;
	return 1;
}

int egress_policy_allow_private(struct egress_policy *p, const char *ip_port,
				struct cdn_err *err)
{
	struct egress_private e;
	int r = parse_ip_port(ip_port ? ip_port : "", &e, err);
	if (r < 0)
		return cdn_err_wrap(err, "--allow-private");
	r = private_add(p, &e, err);
	char show[SHOWN_MAX + 4];
	return r < 0
		   ? cdn_err_wrap(err, "--allow-private %s",
				  cdn_printable_str(show, sizeof(show), ip_port, CDN_TEXT_ELLIPSIS))
		   : 0;
}

/* ------------------------------------------------------------ policy object */

void egress_policy_free(struct egress_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_rules; i++) {
		free(p->rules[i].name);
		free(p->rules[i].rate_key);
		free(p->rules[i].agent_rate_key);
	}
	free(p->rules);
	free(p);
}

static struct egress_policy *policy_new(void)
{
	struct egress_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->enforce = true;
	p->default_rpm = EGRESS_DEFAULT_RPM;
	p->global_rpm = EGRESS_DEFAULT_GLOBAL_RPM;
	p->approval_timeout_s = EGRESS_DEFAULT_APPROVAL_TIMEOUT_S;
	return p;
}

static void rule_set_ports(struct egress_rule *r, const uint16_t *ports, size_t n)
{
	memcpy(r->ports, ports, n * sizeof(ports[0]));
	r->n_ports = n;
}

int egress_policy_allow(struct egress_policy *p, const char *host_port, struct cdn_err *err)
{
	char show[SHOWN_MAX + 4];
	const char *arg =
	    cdn_printable_str(show, sizeof(show), host_port ? host_port : "", CDN_TEXT_ELLIPSIS);
	const char *raw = host_port ? host_port : "";
	size_t n = strnlen(raw, ARG_MAX_LEN + 1);
	if (n == 0 || n > ARG_MAX_LEN)
		return cdn_err_msg(err, EINVAL, "--allow: expected HOST or HOST:PORT");
	if (raw[0] == '[' || (strchr(raw, ':') && strchr(raw, ':') != strrchr(raw, ':')))
		return cdn_err_msg(err, EINVAL,
				   "--allow %s: expected HOST or HOST:PORT; IPv6 literals cannot "
				   "be allowed by name",
				   arg);
	char host[ARG_MAX_LEN + 1];
	memcpy(host, raw, n + 1);
	uint16_t port = 0;
	char *colon = strchr(host, ':');
	if (colon) {
		*colon = '\0';
		if (parse_port(colon + 1, strlen(colon + 1), &port) < 0)
			return cdn_err_msg(err, EINVAL,
					   "--allow %s: the port must be a number from 1 to 65535",
					   arg);
	}
	char name[EGRESS_MAX_HOST + 1];
	bool wild = false;
	if (egress_rule_name_normalize(host, name, sizeof(name), &wild, err) < 0)
		return cdn_err_wrap(err, "--allow %s", arg);

	struct egress_rule *r = find_rule(p, name);
	if (r) {
		/* --allow only ever adds access: the existing rule (kept with
		 * its category, so an LLM API stays one) gains the port, every
		 * method and no approval hold. */
		if (port && !egress_rule_has_port(r, port)) {
			if (r->n_ports >= EGRESS_MAX_PORTS)
				return cdn_err_msg(err, EINVAL,
						   "--allow %s: %s already has %d ports", arg, name,
						   EGRESS_MAX_PORTS);
			r->ports[r->n_ports++] = port;
		} else if (!port) {
			for (size_t i = 0; i < CDN_ARRAY_SIZE(ports_web); i++)
				if (!egress_rule_has_port(r, ports_web[i])) {
					if (r->n_ports >= EGRESS_MAX_PORTS)
						return cdn_err_msg(err, EINVAL,
								   "--allow %s: %s already has %d "
								   "ports",
								   arg, name, EGRESS_MAX_PORTS);
					r->ports[r->n_ports++] = ports_web[i];
				}
		}
		r->methods = EGRESS_M_ALL;
		r->approval = false;
		return 0;
	}
	if (p->n_rules >= EGRESS_MAX_RULES)
		return cdn_err_msg(err, EINVAL, "--allow %s: more than %d rules", arg,
				   EGRESS_MAX_RULES);
	char *dup = strdup(name);
	struct egress_rule *grown = dup ? realloc(p->rules, (p->n_rules + 1) * sizeof(*grown))
					: NULL;
	if (!grown) {
		free(dup);
		return cdn_err_set(err, ENOMEM, "--allow %s", arg);
	}
	p->rules = grown;
	r = &p->rules[p->n_rules++];
	memset(r, 0, sizeof(*r));
	r->name = dup;
	r->wildcard = wild;
	r->category = EGRESS_CAT_USER;
	r->group = "allow";
	r->max_label = EGRESS_DEFAULT_MAX_LABEL;
	if (port)
		rule_set_ports(r, &port, 1);
	else
		rule_set_ports(r, ports_web, CDN_ARRAY_SIZE(ports_web));
	r->methods = EGRESS_M_ALL;
	r->rpm = p->default_rpm;
	qsort(p->rules, p->n_rules, sizeof(p->rules[0]), rule_sort_cmp);
	return 0;
}

/* ------------------------------------------------------------ building rules */

/* What the file asked for, before it is merged with the built-ins. */
struct user_rule {
	struct egress_rule r;
	bool rpm_set;
	int rpm_line;
	int approval_line;
	int max_label_line, random_labels_line; /* 0: not set */
	size_t index; /* in the domains list, for errors */
};

struct settings {
	bool search;
	bool research;
	bool service_on[N_SERVICES];
	struct user_rule *dom;
	size_t n_dom;
};

static void settings_free(struct settings *s)
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
	rule_set_ports(r, ports_https, CDN_ARRAY_SIZE(ports_https));
	if (cat == EGRESS_CAT_RESEARCH) {
		/* GET and HEAD only, and inspected, or the method rule could
		 * not hold inside an HTTPS tunnel. */
		rule_set_ports(r, ports_web, CDN_ARRAY_SIZE(ports_web));
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

typedef int (*report_fn)(void *ctx, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Merges the enabled built-ins with the file's rules into p->rules, sorted
 * by name. The file's rules are moved out of s. A file rule with the name
 * of a built-in replaces it; two file rules with one name are an error.
 */
static int build_rules(struct egress_policy *p, struct settings *s, report_fn report, void *ctx,
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
	for (size_t i = 0; r == 0 && i < N_SERVICES; i++)
		if (s->service_on[i])
			r = add_builtin(all, &n, services[i].host, EGRESS_CAT_SERVICE,
					services[i].key, p->default_rpm);
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

int egress_policy_default(struct egress_policy **out, struct cdn_err *err)
{
	return egress_policy_parse(builtin_yaml, sizeof(builtin_yaml) - 1, "built-in policy", out,
				   err);
}

/* --------------------------------------------------------------- YAML tree */

enum ynode_type { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ynode_type type;
	bool plain; /* a scalar written without quotes or block style */
	int line;   /* 1-based */
	char *value; /* scalar text, NUL-terminated */
	size_t len;
	struct ynode *kids; /* items; for a mapping key, value, key, value, ... */
	size_t n, cap;
};

static void ynode_clear(struct ynode *y)
{
	for (size_t i = 0; i < y->n; i++)
		ynode_clear(&y->kids[i]);
	free(y->kids);
	free(y->value);
	memset(y, 0, sizeof(*y));
}

static int ynode_append(struct ynode *parent, struct ynode *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct ynode *k = realloc(parent->kids, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = *child;
	memset(child, 0, sizeof(*child));
	return 0;
}

struct pctx {
	const char *src;
	struct cdn_err *err;
	/* Set when the file is a workspace's policy: the operator's, which it
	 * may only narrow (egress_policy_parse_workspace). */
	const struct egress_policy *op;
};

static int perr(void *ctx, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "policy.yaml:7: domains[0]: unknown key 'metods' (...)" */
static int perr(void *ctx, int line, const char *path, const char *fmt, ...)
{
	struct pctx *c = ctx;
	va_list ap;
	va_start(ap, fmt);
	cdn_err_vset(c->err, CDN_ERR_USER, EINVAL, fmt, ap);
	va_end(ap);
	char where[32] = "";
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	return cdn_err_wrap(c->err, "%s%s%s%s", c->src, where, path[0] ? ": " : "", path);
}

/* Why an anchor, alias or tag is refused, said once. */
#define NO_YAML_EXTRAS                                                                             \
	"the policy is plain YAML: one readable schema, and no alias expansion (alias bombs)"

static int event_extras(struct pctx *c, const yaml_event_t *ev, int line)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;
	if (ev->type == YAML_SCALAR_EVENT) {
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else if (ev->type == YAML_MAPPING_START_EVENT) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (anchor)
		return perr(c, line, "", "anchor '&%.40s' is not allowed: " NO_YAML_EXTRAS,
			    (const char *)anchor);
	if (tag)
		return perr(c, line, "", "tag '%.40s' is not allowed: " NO_YAML_EXTRAS,
			    (const char *)tag);
	return 0;
}

static int yaml_syntax_error(struct pctx *c, const yaml_parser_t *ps, const char *yaml,
			     size_t len)
{
	if (ps->error == YAML_READER_ERROR) {
		/* Bytes libyaml cannot read (bad UTF-8, control characters)
		 * have an offset, not a mark: count the lines up to it. */
		int line = 1;
		for (size_t i = 0; i < ps->problem_offset && i < len; i++)
			line += yaml[i] == '\n';
		return perr(c, line, "", "not valid YAML: %s (byte %zu)",
			    ps->problem ? ps->problem : "unreadable input", ps->problem_offset);
	}
	const yaml_mark_t *m = ps->problem_mark.line || ps->problem_mark.column ||
					       ps->problem_mark.index
				       ? &ps->problem_mark
				       : &ps->context_mark;
	if (ps->error == YAML_MEMORY_ERROR)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	return perr(c, (int)m->line + 1, "", "not valid YAML: %s%s%s",
		    ps->problem ? ps->problem : "syntax error", ps->context ? " " : "",
		    ps->context ? ps->context : "");
}

/* Turns the event stream of one document into a tree in *root. */
static int tree_load(struct pctx *c, const char *yaml, size_t len, struct ynode *root)
{
	yaml_parser_t ps;
	if (!yaml_parser_initialize(&ps))
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	yaml_parser_set_input_string(&ps, (const unsigned char *)yaml, len);
	/* UTF-8 only: no guessing from a byte-order mark. */
	yaml_parser_set_encoding(&ps, YAML_UTF8_ENCODING);

	/* stack[0] collects the document's one node. */
	struct ynode stack[EGRESS_MAX_POLICY_DEPTH + 1];
	memset(stack, 0, sizeof(stack));
	size_t depth = 0;
	int docs = 0;
	bool done = false;
	int r = 0;
	while (!done && r == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&ps, &ev)) {
			r = yaml_syntax_error(c, &ps, yaml, len);
			break;
		}
		int line = (int)ev.start_mark.line + 1;
		r = event_extras(c, &ev, line);
		struct ynode node = { 0 };
		switch (r ? YAML_NO_EVENT : ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				r = perr(c, line, "",
					 "a second YAML document: a policy file holds exactly one");
			else if (ev.data.document_start.tag_directives.start !=
				 ev.data.document_start.tag_directives.end)
				r = perr(c, line, "",
					 "%%TAG directives are not allowed: " NO_YAML_EXTRAS);
			break;
		case YAML_ALIAS_EVENT:
			r = perr(c, line, "", "alias '*%.40s' is not allowed: " NO_YAML_EXTRAS,
				 (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
			node.type = Y_SCALAR;
			node.line = line;
			node.plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			node.len = ev.data.scalar.length;
			node.value = malloc(node.len + 1);
			if (!node.value) {
				r = -ENOMEM;
				break;
			}
			memcpy(node.value, ev.data.scalar.value, node.len);
			node.value[node.len] = '\0';
			if (ynode_append(&stack[depth], &node) < 0) {
				free(node.value);
				r = -ENOMEM;
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == EGRESS_MAX_POLICY_DEPTH) {
				r = perr(c, line, "", "nested deeper than %d levels",
					 EGRESS_MAX_POLICY_DEPTH);
				break;
			}
			depth++;
			stack[depth].type = ev.type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP;
			stack[depth].line = line;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			/* libyaml pairs start and end events, so depth > 0 */
			node = stack[depth];
			memset(&stack[depth], 0, sizeof(stack[depth]));
			depth--;
			if (ynode_append(&stack[depth], &node) < 0) {
				ynode_clear(&node);
				r = -ENOMEM;
			}
			break;
		case YAML_NO_EVENT: /* or a refused event, reported above */
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&ps);
	if (r == -ENOMEM && !c->err->msg[0])
		r = cdn_err_set(c->err, ENOMEM, "%s", c->src);
	if (r == 0 && (stack[0].n != 1 || (stack[0].kids[0].type == Y_SCALAR &&
					   stack[0].kids[0].plain && stack[0].kids[0].len == 0)))
		r = perr(c, 1, "", "the policy is empty; it needs at least 'version: 1'");
	if (r == 0) {
		*root = stack[0].kids[0];
		stack[0].n = 0;
	}
	for (size_t i = 0; i <= depth; i++)
		ynode_clear(&stack[i]);
	return r;
}

/* ----------------------------------------------------------- schema walking */

/* "'yes'", "a list", "an empty value": what was found, for errors. */
static const char *describe(const struct ynode *y, char *buf, size_t cap)
{
	if (y->type == Y_SEQ)
		return "a list";
	if (y->type == Y_MAP)
		return "a mapping";
	if (y->plain && y->len == 0)
		return "an empty value";
	char text[48];
	cdn_printable(text, sizeof(text), y->value, y->len, CDN_TEXT_ELLIPSIS);
	snprintf(buf, cap, "%s'%s'", y->plain ? "" : "a quoted string ", text);
	return buf;
}

static void path_key(char *out, size_t cap, const char *path, const char *key)
{
	snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

static void path_index(char *out, size_t cap, const char *path, size_t i)
{
	snprintf(out, cap, "%s[%zu]", path, i);
}

/* The line to blame for a value: its own, unless it is empty or a
 * collection starting elsewhere; then the key's. */
static int value_line(const struct ynode *v, int key_line)
{
	return v->type == Y_SCALAR && v->len > 0 ? v->line : key_line;
}

#define PATH_MAX_LEN 96

struct map_iter {
	const struct ynode *map;
	size_t i;
	int seen[16]; /* line of each known key once seen */
};

static int map_begin(struct pctx *c, const struct ynode *y, const char *path, int key_line,
		     const char *what, struct map_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->map = y;
	if (y->type != Y_MAP) {
		char d[80];
		return perr(c, value_line(y, key_line), path, "expected %s, got %s", what,
			    describe(y, d, sizeof(d)));
	}
	return 0;
}

/* The next key of a closed mapping: 0 with *idx, *val and *kline set, 1 at
 * the end, negative for an unknown, duplicate or non-string key. */
static int map_next(struct pctx *c, struct map_iter *it, const char *path,
		    const char *const *names, size_t n_names, size_t *idx,
		    const struct ynode **val, int *kline)
{
	if (it->i >= it->map->n)
		return 1;
	const struct ynode *k = &it->map->kids[it->i];
	const struct ynode *v = &it->map->kids[it->i + 1];
	it->i += 2;
	if (k->type != Y_SCALAR || strlen(k->value) != k->len || k->len == 0) {
		char d[80];
		return perr(c, k->line, path, "keys must be plain names, got %s",
			    describe(k, d, sizeof(d)));
	}
	for (size_t i = 0; i < n_names; i++) {
		if (strcmp(k->value, names[i]) != 0)
			continue;
		if (it->seen[i])
			return perr(c, k->line, path, "duplicate key '%s' (first at line %d)",
				    names[i], it->seen[i]);
		it->seen[i] = k->line;
		*idx = i;
		*val = v;
		*kline = k->line;
		return 0;
	}
	char list[256] = "";
	size_t off = 0;
	for (size_t i = 0; i < n_names && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
					names[i]);
	char d[80];
	/* describe() quotes and sanitises the key */
	return perr(c, k->line, path, "unknown key %s (expected %s)", describe(k, d, sizeof(d)),
		    list);
}

static int get_bool(struct pctx *c, const struct ynode *v, const char *path, int kline,
		    bool *out)
{
	if (v->type == Y_SCALAR && v->plain && strcmp(v->value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (v->type == Y_SCALAR && v->plain && strcmp(v->value, "false") == 0) {
		*out = false;
		return 0;
	}
	char d[80];
	return perr(c, value_line(v, kline), path,
		    "expected true or false, got %s (yes/no/on/off are not booleans here)",
		    describe(v, d, sizeof(d)));
}

/* Plain decimal digits only: no sign, no "0x", no "1e3", no "1_000", and
 * no leading zero, which YAML 1.1 reads as octal. */
static int get_uint(struct pctx *c, const struct ynode *v, const char *path, int kline,
		    uint32_t lo, uint32_t hi, uint32_t *out)
{
	bool ok = v->type == Y_SCALAR && v->plain && v->len > 0 && v->len <= 10 &&
		  !(v->value[0] == '0' && v->len > 1);
	uint64_t n = 0;
	for (size_t i = 0; ok && i < v->len; i++) {
		ok = v->value[i] >= '0' && v->value[i] <= '9';
		n = n * 10 + (uint64_t)(v->value[i] - '0');
	}
	if (ok && n >= lo && n <= hi) {
		*out = (uint32_t)n;
		return 0;
	}
	char d[80];
	return perr(c, value_line(v, kline), path, "expected a whole number from %u to %u, got %s",
		    lo, hi, describe(v, d, sizeof(d)));
}

static int get_string(struct pctx *c, const struct ynode *v, const char *path, int kline,
		      const char **out)
{
	if (v->type == Y_SCALAR && v->len > 0 && strlen(v->value) == v->len) {
		*out = v->value;
		return 0;
	}
	char d[80];
	return perr(c, value_line(v, kline), path, "expected a string, got %s",
		    describe(v, d, sizeof(d)));
}

static int get_list(struct pctx *c, const struct ynode *v, const char *path, int kline,
		    const char *what)
{
	if (v->type == Y_SEQ)
		return 0;
	char d[80];
	return perr(c, value_line(v, kline), path, "expected a list of %s, got %s", what,
		    describe(v, d, sizeof(d)));
}

static int parse_ports(struct pctx *c, const struct ynode *v, const char *path, int kline,
		       struct egress_rule *r)
{
	int rc = get_list(c, v, path, kline, "port numbers");
	if (rc < 0)
		return rc;
	if (v->n == 0)
		return perr(c, kline, path, "the list is empty; give at least one port");
	if (v->n > EGRESS_MAX_PORTS)
		return perr(c, kline, path, "%zu ports, more than %d", v->n, EGRESS_MAX_PORTS);
	r->n_ports = 0;
	for (size_t i = 0; i < v->n; i++) {
		char ip[PATH_MAX_LEN];
		path_index(ip, sizeof(ip), path, i);
		uint32_t port;
		rc = get_uint(c, &v->kids[i], ip, v->kids[i].line, 1, 65535, &port);
		if (rc < 0)
			return rc;
		if (egress_rule_has_port(r, (uint16_t)port))
			return perr(c, v->kids[i].line, ip, "port %u is listed twice", port);
		r->ports[r->n_ports++] = (uint16_t)port;
	}
	return 0;
}

static int parse_methods(struct pctx *c, const struct ynode *v, const char *path, int kline,
			 struct egress_rule *r)
{
	int rc = get_list(c, v, path, kline, "HTTP methods");
	if (rc < 0)
		return rc;
	if (v->n == 0)
		return perr(c, kline, path,
			    "the list is empty; give at least one method, or leave 'methods' out "
			    "for all");
	r->methods = 0;
	for (size_t i = 0; i < v->n; i++) {
		char ip[PATH_MAX_LEN];
		path_index(ip, sizeof(ip), path, i);
		const char *s;
		rc = get_string(c, &v->kids[i], ip, v->kids[i].line, &s);
		if (rc < 0)
			return rc;
		char up[16];
		size_t n = strlen(s);
		unsigned bit = 0;
		if (n < sizeof(up)) {
			for (size_t j = 0; j <= n; j++)
				up[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 32 : s[j]);
			bit = egress_method_bit(up);
		}
		char d[80];
		if (!bit)
			return perr(c, v->kids[i].line, ip,
				    "unknown method %s (expected GET, HEAD, POST, PUT, PATCH, "
				    "DELETE, OPTIONS)",
				    describe(&v->kids[i], d, sizeof(d)));
		if (r->methods & bit)
			return perr(c, v->kids[i].line, ip, "method %s is listed twice", up);
		r->methods |= bit;
	}
	return 0;
}

static const char *const domain_keys[] = {
	"name",	   "ports",   "methods",	  "requests_per_minute",
	"approval", "inspect", "max_label_length", "random_labels",
};
enum { D_NAME, D_PORTS, D_METHODS, D_RPM, D_APPROVAL, D_INSPECT, D_MAX_LABEL, D_RANDOM_LABELS };

static int parse_domain(struct pctx *c, const struct ynode *y, size_t index, struct user_rule *u)
{
	char path[PATH_MAX_LEN];
	path_index(path, sizeof(path), "domains", index);
	memset(u, 0, sizeof(*u));
	struct egress_rule *r = &u->r;
	u->index = index;
	r->category = EGRESS_CAT_USER;
	r->group = "user";
	r->line = y->line;
	r->methods = EGRESS_M_ALL;
	r->max_label = EGRESS_DEFAULT_MAX_LABEL;
	rule_set_ports(r, ports_web, CDN_ARRAY_SIZE(ports_web));

	struct map_iter it;
	int rc = map_begin(c, y, path, y->line, "a mapping with 'name' (- name: api.example.com)",
			   &it);
	size_t idx;
	const struct ynode *v;
	int kline;
	while (rc == 0 && (rc = map_next(c, &it, path, domain_keys, CDN_ARRAY_SIZE(domain_keys),
					 &idx, &v, &kline)) == 0) {
		char kp[PATH_MAX_LEN];
		path_key(kp, sizeof(kp), path, domain_keys[idx]);
		const char *s;
		switch (idx) {
		case D_NAME: {
			rc = get_string(c, v, kp, kline, &s);
			if (rc < 0)
				break;
			char name[EGRESS_MAX_HOST + 1];
			struct cdn_err e = { 0 };
			if (egress_rule_name_normalize(s, name, sizeof(name), &r->wildcard, &e) <
			    0) {
				rc = perr(c, v->line, kp, "%s", e.msg);
				break;
			}
			r->name = strdup(name);
			if (!r->name)
				rc = cdn_err_set(c->err, ENOMEM, "%s", c->src);
			/* blame the name's line for duplicates */
			r->line = v->line;
			break;
		}
		case D_PORTS:
			rc = parse_ports(c, v, kp, kline, r);
			break;
		case D_METHODS:
			rc = parse_methods(c, v, kp, kline, r);
			break;
		case D_RPM:
			rc = get_uint(c, v, kp, kline, 0, EGRESS_MAX_RPM, &r->rpm);
			u->rpm_set = true;
			u->rpm_line = value_line(v, kline);
			break;
		case D_APPROVAL:
			rc = get_string(c, v, kp, kline, &s);
			u->approval_line = kline;
			if (rc == 0 && strcmp(s, "required") == 0)
				r->approval = true;
			else if (rc == 0 && strcmp(s, "none") == 0)
				r->approval = false;
			else if (rc == 0) {
				char d[80];
				rc = perr(c, v->line, kp, "expected 'required' or 'none', got %s",
					  describe(v, d, sizeof(d)));
			}
			break;
		case D_INSPECT:
			rc = get_bool(c, v, kp, kline, &r->inspect);
			break;
		case D_MAX_LABEL: {
			uint32_t n = 0;
			rc = get_uint(c, v, kp, kline, 1, 63, &n);
			r->max_label = (uint8_t)n;
			u->max_label_line = value_line(v, kline);
			break;
		}
		case D_RANDOM_LABELS:
			rc = get_bool(c, v, kp, kline, &r->random_labels);
			u->random_labels_line = value_line(v, kline);
			break;
		}
	}
	if (rc < 0)
		return rc;
	if (!r->name)
		return perr(c, y->line, path, "missing key 'name'");
	return 0;
}

/* A limit above the operator's: 0 is unlimited, above any other. */
static bool rpm_above(uint32_t v, uint32_t op)
{
	return op != 0 && (v == 0 || v > op);
}

/* A workspace's rule may not set a limit above the operator's rule for
 * the same hosts. Narrowing would keep the operator's limit anyway (both
 * windows apply); refusing says so where the owner can see it. A name the
 * operator does not allow at all is not an error here: it is narrowed
 * away, and the API lists it as dropped. */
static int check_domain_rpm(struct pctx *c, const struct user_rule *u)
{
	if (!c->op || !u->rpm_set || !u->r.name)
		return 0;
	const struct egress_rule *o = egress_policy_cover(c->op, u->r.name);
	if (!o || !rpm_above(u->r.rpm, o->rpm))
		return 0;
	char kp[PATH_MAX_LEN];
	snprintf(kp, sizeof(kp), "domains[%zu].requests_per_minute", u->index);
	return perr(c, u->rpm_line, kp,
		    "%u%s is above the operator's limit of %u for '%s'; a workspace policy can "
		    "only lower limits",
		    u->r.rpm, u->r.rpm ? "" : " (unlimited)", o->rpm, u->r.name);
}

/* The same for the host-name label controls: a workspace may lower
 * max_label_length and turn random_labels off, not the reverse. What it
 * leaves out is the operator's, so narrowing by it changes nothing there. */
static int check_domain_labels(struct pctx *c, struct user_rule *u)
{
	if (!c->op || !u->r.name)
		return 0;
	const struct egress_rule *o = egress_policy_cover(c->op, u->r.name);
	if (!o)
		return 0; /* narrowed away, and listed as dropped */
	char kp[PATH_MAX_LEN];
	if (!u->max_label_line) {
		u->r.max_label = o->max_label;
	} else if (u->r.max_label > o->max_label) {
		snprintf(kp, sizeof(kp), "domains[%zu].max_label_length", u->index);
		return perr(c, u->max_label_line, kp,
			    "%u is above the operator's limit of %u for '%s'; a workspace policy "
			    "can only lower limits",
			    (unsigned)u->r.max_label, (unsigned)o->max_label, u->r.name);
	}
	if (!u->random_labels_line) {
		u->r.random_labels = o->random_labels;
	} else if (u->r.random_labels && !o->random_labels) {
		snprintf(kp, sizeof(kp), "domains[%zu].random_labels", u->index);
		return perr(c, u->random_labels_line, kp,
			    "the operator refuses random-looking labels under '%s'; a workspace "
			    "policy cannot allow them",
			    u->r.name);
	}
	return 0;
}

static int parse_domains(struct pctx *c, const struct ynode *v, int kline, struct settings *s)
{
	int rc = get_list(c, v, "domains", kline, "domain rules");
	if (rc < 0)
		return rc;
	if (v->n > EGRESS_MAX_RULES)
		return perr(c, kline, "domains", "%zu rules, more than %d", v->n, EGRESS_MAX_RULES);
	s->dom = calloc(v->n ? v->n : 1, sizeof(s->dom[0]));
	if (!s->dom)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	for (size_t i = 0; i < v->n; i++) {
		rc = parse_domain(c, &v->kids[i], i, &s->dom[s->n_dom]);
		/* counted even on failure, so its name is freed */
		s->n_dom++;
		if (rc == 0)
			rc = check_domain_rpm(c, &s->dom[s->n_dom - 1]);
		if (rc == 0)
			rc = check_domain_labels(c, &s->dom[s->n_dom - 1]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int parse_private(struct pctx *c, const struct ynode *v, int kline,
			 struct egress_policy *p)
{
	int rc = get_list(c, v, "private", kline, "IP:PORT destinations");
	if (rc < 0)
		return rc;
	if (v->n > EGRESS_MAX_PRIVATE)
		return perr(c, kline, "private", "%zu destinations, more than %d", v->n,
			    EGRESS_MAX_PRIVATE);
	for (size_t i = 0; i < v->n; i++) {
		char ip[PATH_MAX_LEN];
		path_index(ip, sizeof(ip), "private", i);
		const char *s;
		rc = get_string(c, &v->kids[i], ip, v->kids[i].line, &s);
		if (rc < 0)
			return rc;
		struct egress_private e;
		struct cdn_err pe = { 0 };
		if (parse_ip_port(s, &e, &pe) < 0)
			return perr(c, v->kids[i].line, ip, "%s", pe.msg);
		rc = private_add(p, &e, &pe);
		if (rc == 0)
			return perr(c, v->kids[i].line, ip, "'%s' is listed twice", s);
		if (rc < 0)
			return perr(c, v->kids[i].line, ip, "%s", pe.msg);
	}
	return 0;
}

static const char *const limit_keys[] = { "requests_per_minute", "global_requests_per_minute" };
static const char *const approval_keys[] = { "timeout_seconds" };
static const char *const category_keys[] = { "llm", "search", "research" };

static int parse_limits(struct pctx *c, const struct ynode *v, int kline, struct egress_policy *p)
{
	struct map_iter it;
	int rc = map_begin(c, v, "limits", kline, "a mapping", &it);
	size_t idx;
	const struct ynode *val;
	int kl;
	while (rc == 0 && (rc = map_next(c, &it, "limits", limit_keys, CDN_ARRAY_SIZE(limit_keys),
					 &idx, &val, &kl)) == 0) {
		char kp[PATH_MAX_LEN];
		path_key(kp, sizeof(kp), "limits", limit_keys[idx]);
		uint32_t *dst = idx == 0 ? &p->default_rpm : &p->global_rpm;
		rc = get_uint(c, val, kp, kl, 0, EGRESS_MAX_RPM, dst);
		uint32_t op = !c->op ? 0 : idx == 0 ? c->op->default_rpm : c->op->global_rpm;
		if (rc == 0 && c->op && rpm_above(*dst, op))
			rc = perr(c, value_line(val, kl), kp,
				  "%u%s is above the operator's limit of %u; a workspace policy can "
				  "only lower limits",
				  *dst, *dst ? "" : " (unlimited)", op);
	}
	return rc < 0 ? rc : 0;
}

static int parse_approvals(struct pctx *c, const struct ynode *v, int kline,
			   struct egress_policy *p)
{
	struct map_iter it;
	int rc = map_begin(c, v, "approvals", kline, "a mapping", &it);
	size_t idx;
	const struct ynode *val;
	int kl;
	while (rc == 0 && (rc = map_next(c, &it, "approvals", approval_keys,
					 CDN_ARRAY_SIZE(approval_keys), &idx, &val, &kl)) == 0)
		rc = get_uint(c, val, "approvals.timeout_seconds", kl, 1,
			      EGRESS_MAX_APPROVAL_TIMEOUT_S, &p->approval_timeout_s);
	return rc < 0 ? rc : 0;
}

static int parse_categories(struct pctx *c, const struct ynode *v, int kline, struct settings *s)
{
	struct map_iter it;
	int rc = map_begin(c, v, "categories", kline, "a mapping", &it);
	size_t idx;
	const struct ynode *val;
	int kl;
	while (rc == 0 && (rc = map_next(c, &it, "categories", category_keys,
					 CDN_ARRAY_SIZE(category_keys), &idx, &val, &kl)) == 0) {
		char kp[PATH_MAX_LEN];
		path_key(kp, sizeof(kp), "categories", category_keys[idx]);
		bool on = false;
		rc = get_bool(c, val, kp, kl, &on);
		if (rc < 0)
			break;
		if (idx == 0 && !on)
			rc = perr(c, val->line, kp,
				  "LLM APIs are always allowed and cannot be turned off (remove "
				  "the key or set it to true)");
		else if (idx == 1)
			s->search = on;
		else if (idx == 2)
			s->research = on;
	}
	return rc < 0 ? rc : 0;
}

static int parse_services(struct pctx *c, const struct ynode *v, int kline, struct settings *s)
{
	const char *names[N_SERVICES];
	for (size_t i = 0; i < N_SERVICES; i++)
		names[i] = services[i].key;
	struct map_iter it;
	int rc = map_begin(c, v, "services", kline, "a mapping", &it);
	size_t idx;
	const struct ynode *val;
	int kl;
	while (rc == 0 &&
	       (rc = map_next(c, &it, "services", names, N_SERVICES, &idx, &val, &kl)) == 0) {
		char kp[PATH_MAX_LEN];
		path_key(kp, sizeof(kp), "services", names[idx]);
		rc = get_bool(c, val, kp, kl, &s->service_on[idx]);
	}
	return rc < 0 ? rc : 0;
}

static const char *const top_keys[] = {
	"version", "enforce", "limits", "approvals", "categories", "services", "domains", "private",
};
enum { T_VERSION, T_ENFORCE, T_LIMITS, T_APPROVALS, T_CATEGORIES, T_SERVICES, T_DOMAINS,
       T_PRIVATE };

/* The version decides how everything else reads, so it is checked before
 * any other key: a version 2 file gets "unsupported version", not a
 * complaint about a key that version 2 added. */
static int check_version(struct pctx *c, const struct ynode *root)
{
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct ynode *k = &root->kids[i];
		if (k->type != Y_SCALAR || strcmp(k->value, "version") != 0)
			continue;
		const struct ynode *v = &root->kids[i + 1];
		char d[80];
		uint32_t ver;
		struct pctx quiet = { .src = c->src, .err = &(struct cdn_err){ 0 } };
		if (get_uint(&quiet, v, "version", k->line, 0, UINT32_MAX, &ver) < 0)
			return perr(c, value_line(v, k->line), "version",
				    "expected the number 1, got %s", describe(v, d, sizeof(d)));
		if (ver != 1)
			return perr(c, v->line, "version",
				    "unsupported version %u (this cordon reads version: 1)", ver);
		return 0;
	}
	return perr(c, root->line, "", "missing key 'version' (write 'version: 1' first)");
}

/*
 * Keys a workspace's policy may not hold: they are not rules that can be
 * narrowed but the operator's settings, and each would let a workspace
 * owner step over the operator's boundary. Audit-only mode (enforce:
 * false) let every request through, and a private exception (private:
 * [127.0.0.1:PORT]) opened the SSRF guard, so an agent read a service on
 * the host's loopback, cordon serve's own API included. The approval
 * timeout decides how long a held request waits, which is the operator's
 * to set.
 */
static int operator_only(struct pctx *c, size_t idx, int kline)
{
	const char *why = NULL;
	if (idx == T_ENFORCE)
		why = "whether the policy is enforced is the operator's to decide";
	else if (idx == T_PRIVATE)
		why = "exceptions to the SSRF guard are the operator's alone (they open the "
		      "server's own network to runs)";
	else if (idx == T_APPROVALS)
		why = "the approval settings are the operator's";
	if (!why)
		return 0;
	return perr(c, kline, top_keys[idx],
		    "not allowed in a workspace's policy: %s; a workspace policy can only narrow "
		    "the operator's (remove the key)",
		    why);
}

static int walk(struct pctx *c, const struct ynode *root, struct egress_policy *p,
		struct settings *s)
{
	struct map_iter it;
	int rc = map_begin(c, root, "", root->line, "a mapping at the top level (version: 1, ...)",
			   &it);
	if (rc == 0)
		rc = check_version(c, root);
	size_t idx;
	const struct ynode *v;
	int kline;
	while (rc == 0 && (rc = map_next(c, &it, "", top_keys, CDN_ARRAY_SIZE(top_keys), &idx, &v,
					 &kline)) == 0) {
		if (c->op && (rc = operator_only(c, idx, kline)) < 0)
			break;
		switch (idx) {
		case T_VERSION: break; /* checked above */
		case T_ENFORCE: rc = get_bool(c, v, "enforce", kline, &p->enforce); break;
		case T_LIMITS: rc = parse_limits(c, v, kline, p); break;
		case T_APPROVALS: rc = parse_approvals(c, v, kline, p); break;
		case T_CATEGORIES: rc = parse_categories(c, v, kline, s); break;
		case T_SERVICES: rc = parse_services(c, v, kline, s); break;
		case T_DOMAINS: rc = parse_domains(c, v, kline, s); break;
		case T_PRIVATE: rc = parse_private(c, v, kline, p); break;
		}
	}
	return rc < 0 ? rc : 0;
}

static int parse_level(const char *yaml, size_t len, const char *source,
		       const struct egress_policy *op, struct egress_policy **out,
		       struct cdn_err *err)
{
	struct cdn_err local = { 0 };
	struct pctx c = { .src = source ? source : "policy", .err = err ? err : &local, .op = op };
	c.err->msg[0] = '\0';
	if (len > EGRESS_MAX_POLICY_BYTES)
		return cdn_err_set(err, EFBIG, "%s: %zu bytes, more than the limit of %d", c.src,
				   len, EGRESS_MAX_POLICY_BYTES);
	struct ynode root = { 0 };
	int rc = tree_load(&c, yaml ? yaml : "", yaml ? len : 0, &root);
	if (rc < 0)
		return rc;
	struct egress_policy *p = policy_new();
	struct settings s = { .search = true, .research = true };
	if (!p) {
		rc = cdn_err_set(c.err, ENOMEM, "%s", c.src);
	} else if (op) {
		/* Limits a workspace leaves out are the operator's, not the
		 * defaults: a policy that only lists domains lowers nothing. */
		p->default_rpm = op->default_rpm;
		p->global_rpm = op->global_rpm;
		p->approval_timeout_s = op->approval_timeout_s;
		p->enforce = op->enforce;
	}
	if (rc == 0)
		rc = walk(&c, &root, p, &s);
	if (rc == 0)
		rc = build_rules(p, &s, perr, &c, c.err);
	settings_free(&s);
	ynode_clear(&root);
	if (rc < 0) {
		egress_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int egress_policy_parse(const char *yaml, size_t len, const char *source,
			struct egress_policy **out, struct cdn_err *err)
{
	return parse_level(yaml, len, source, NULL, out, err);
}

int egress_policy_parse_workspace(const char *yaml, size_t len, const char *source,
				  const struct egress_policy *op, struct egress_policy **out,
				  struct cdn_err *err)
{
	if (!op)
		return cdn_err_set(err, EINVAL, "%s: a workspace policy needs the operator's",
				   source ? source : "policy");
	return parse_level(yaml, len, source, op, out, err);
}

/* The file at path, read whole, into *buf. */
static int read_policy_file(const char *path, char **buf, size_t *len, struct cdn_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cdn_err_set(err, errno, "policy %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "policy %s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "policy %s: not a regular file", path);
	if (st.st_size > EGRESS_MAX_POLICY_BYTES)
		return cdn_err_set(err, EFBIG, "%s: %lld bytes, more than the limit of %d", path,
				   (long long)st.st_size, EGRESS_MAX_POLICY_BYTES);
	int r = cdn_read_fd(fd, EGRESS_MAX_POLICY_BYTES, buf, len);
	if (r == -EFBIG)
		return cdn_err_set(err, EFBIG, "%s: more than the limit of %d bytes", path,
				   EGRESS_MAX_POLICY_BYTES);
	if (r < 0)
		return cdn_err_set(err, -r, "read %s", path);
	return 0;
}

int egress_policy_load(const char *path, struct egress_policy **out, struct cdn_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_policy_file(path, &buf, &len, err);
	return r < 0 ? r : egress_policy_parse(buf, len, path, out, err);
}

int egress_policy_load_workspace(const char *path, const char *source,
				 const struct egress_policy *op, struct egress_policy **out,
				 struct cdn_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_policy_file(path, &buf, &len, err);
	return r < 0 ? r
		     : egress_policy_parse_workspace(buf, len, source ? source : path, op, out,
						     err);
}
