/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy's host names: normalisation (IDNA, case, trailing
 * dot, wildcards) and matching a host against the rules.
 *
 * Rules are kept sorted by name. A lookup is one binary search for the
 * exact name, then one per label for "*." wildcards, longest suffix first.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"

/* A U-label character takes at most 4 bytes of UTF-8; anything longer
 * than this cannot become a valid name, and refusing it early bounds the
 * work handed to libidn2. */
#define HOST_INPUT_MAX (4 * EGRESS_MAX_HOST + 2)
#define LABEL_MAX 63

/* ------------------------------------------------------------- host names */

bool policy_ipv4_canonical(const char *s)
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
	if (inet_aton(name, &a) && !policy_ipv4_canonical(name))
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
		if (policy_ipv4_canonical(buf))
			return cdn_err_msg(err, EINVAL,
					   "'*.%s': a wildcard cannot cover an IP address", buf);
		if (n + 2 > EGRESS_MAX_HOST)
			return cdn_err_msg(err, EINVAL,
					   "'*.%s': no host name below it fits in %d bytes", buf,
					   EGRESS_MAX_HOST);
	}
	if (n + (wild ? 2 : 0) + 1 > cap)
		return cdn_err_msg(err, ERANGE, "host name '%s'", buf);
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

int policy_rule_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct egress_rule *)a)->name, ((const struct egress_rule *)b)->name);
}

struct egress_rule *policy_find_rule(const struct egress_policy *p, const char *name)
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
	const struct egress_rule *r = policy_find_rule(p, host);
	if (r)
		return r;
	/* IP addresses are matched by exact rules only: "*.0.0.1" is no
	 * way to allow 127.0.0.1. */
	if (policy_ipv4_canonical(host))
		return NULL;
	char cand[EGRESS_MAX_HOST + 3] = "*.";
	for (const char *dot = strchr(host, '.'); dot; dot = strchr(dot + 1, '.')) {
		size_t rest = len - (size_t)(dot + 1 - host);
		memcpy(cand + 2, dot + 1, rest + 1);
		r = policy_find_rule(p, cand);
		if (r)
			return r;
	}
	return NULL;
}
