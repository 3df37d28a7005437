/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the DNS wire format: parse the input as a query; if
 * it parses, check the result against the packet and build responses into
 * a small and a large buffer. Any invariant that fails aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egress/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* q->name re-encoded as labels equals the question name, case aside. */
static void check_name(const struct dns_query *q)
{
	size_t nl = strlen(q->name);
	CHECK(nl > 0 && nl <= DNS_MAX_NAME);
	CHECK(q->name[0] != '.' && q->name[nl - 1] != '.' && !strstr(q->name, ".."));
	uint8_t wire[DNS_MAX_NAME + 2];
	size_t w = 0;
	const char *s = q->name;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		CHECK(l >= 1 && l <= DNS_MAX_LABEL);
		wire[w++] = (uint8_t)l;
		for (size_t i = 0; i < l; i++) {
			char c = s[i];
			CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			      c == '_');
			wire[w++] = (uint8_t)c;
		}
		s += l + (dot ? 1 : 0);
	}
	wire[w++] = 0;
	CHECK(w + 4 == q->question_len);
	for (size_t i = 0; i < w; i++) {
		uint8_t c = q->question[i];
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		CHECK(c == wire[i]);
	}
}

static void check_response(const struct dns_query *q, const uint8_t *out, size_t n,
			   size_t n_answers, bool truncated, int rcode)
{
	CHECK(n >= DNS_HEADER_LEN + q->question_len);
	CHECK(get16(out) == q->id);
	uint16_t flags = get16(out + 2);
	CHECK((flags & 0x8000) && !(flags & 0x7800) && !(flags & 0x0400));
	CHECK(!!(flags & 0x0200) == truncated);
	CHECK(!!(flags & 0x0100) == q->rd);
	CHECK((flags & 0x0080) && (flags & 0x000f) == rcode);
	CHECK(get16(out + 4) == 1 && get16(out + 6) == n_answers && get16(out + 8) == 0);
	CHECK(get16(out + 10) == (q->edns ? 1 : 0));
	CHECK(memcmp(out + DNS_HEADER_LEN, q->question, q->question_len) == 0);
	size_t rr = q->qtype == DNS_TYPE_A ? 16 : 28;
	size_t want = DNS_HEADER_LEN + q->question_len + n_answers * rr + (q->edns ? 11 : 0);
	CHECK(n == want);
	size_t p = DNS_HEADER_LEN + q->question_len;
	for (size_t i = 0; i < n_answers; i++, p += rr) {
		CHECK(get16(out + p) == 0xc00c && get16(out + p + 2) == q->qtype);
		CHECK(get16(out + p + 4) == DNS_CLASS_IN && get16(out + p + 10) == rr - 12);
	}
	if (q->edns)
		CHECK(out[p] == 0 && get16(out + p + 1) == DNS_TYPE_OPT &&
		      get16(out + p + 3) == DNS_EDNS_UDP_SIZE && get16(out + p + 9) == 0);
	/* a response never parses as a query */
	struct dns_query again;
	CHECK(dns_parse_query(out, n, &again, NULL) < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query q;
	struct cdn_err err = { 0 };
	if (dns_parse_query(data, size, &q, &err) < 0) {
		CHECK(err.msg[0] != '\0');
		return 0;
	}
	CHECK(size >= DNS_HEADER_LEN && size <= DNS_MAX_PACKET);
	CHECK(q.question == data + DNS_HEADER_LEN);
	CHECK(q.question_len >= 7 && q.question_len <= size - DNS_HEADER_LEN);
	CHECK(get16(data + 4) == 1 && get16(data + 10) == (q.edns ? 1 : 0));
	check_name(&q);

	struct dns_answer ans[2];
	size_t n_ans = 0;
	memset(ans, 0, sizeof(ans));
	if (q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_AAAA) {
		n_ans = 2;
		for (size_t i = 0; i < n_ans; i++) {
			ans[i].family = q.qtype == DNS_TYPE_A ? AF_INET : AF_INET6;
			memset(&ans[i].addr, 0x11 * (int)(i + 1), sizeof(ans[i].addr));
			ans[i].ttl = 300;
		}
	}
	static uint8_t small[64], large[DNS_MAX_PACKET];
	size_t ns = dns_build_response(&q, DNS_RCODE_NOERROR, ans, n_ans, false, small,
				       sizeof(small));
	size_t nl = dns_build_response(&q, DNS_RCODE_NOERROR, ans, n_ans, false, large,
				       sizeof(large));
	CHECK(ns <= sizeof(small));
	CHECK(nl > 0 && nl <= sizeof(large));
	check_response(&q, large, nl, n_ans, false, DNS_RCODE_NOERROR);
	if (ns) {
		CHECK(ns == nl && memcmp(small, large, ns) == 0);
	} else {
		CHECK(nl > sizeof(small));
		/* the caller's fallback: an empty, truncated answer */
		ns = dns_build_response(&q, DNS_RCODE_NOERROR, NULL, 0, true, small,
					sizeof(small));
		if (ns)
			check_response(&q, small, ns, 0, true, DNS_RCODE_NOERROR);
		else
			CHECK(DNS_HEADER_LEN + q.question_len + (q.edns ? 11 : 0) > sizeof(small));
	}
	nl = dns_build_response(&q, DNS_RCODE_NXDOMAIN, NULL, 0, false, large, sizeof(large));
	check_response(&q, large, nl, 0, false, DNS_RCODE_NXDOMAIN);
	/* answers of the wrong family are refused */
	if (n_ans) {
		ans[0].family = ans[0].family == AF_INET ? AF_INET6 : AF_INET;
		CHECK(dns_build_response(&q, 0, ans, n_ans, false, large, sizeof(large)) == 0);
	}
	return 0;
}
