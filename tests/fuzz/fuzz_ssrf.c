/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the SSRF guard.
 *
 * ssrf_parse_host on the input: a literal it accepts must be canonical (an
 * IPv4 literal prints back as itself, an IPv6 one re-parses to the same
 * address and class), and a host it calls a name must be nothing inet_aton
 * would read as an address; refusals never quote control bytes. The first 4
 * bytes, as an IPv4 address, must classify the same when wrapped in the
 * mapped, 6to4 and NAT64 forms; the first 16 as IPv6 must classify at all.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/ssrf.h"

#define HOST_MAX 512

static void check_class(enum ssrf_class c)
{
	if ((int)c < SSRF_PUBLIC || c > SSRF_ULA || strcmp(ssrf_class_name(c), "unknown") == 0)
		abort();
}

static enum ssrf_class classify6(const uint8_t a[16])
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	memcpy(in6.sin6_addr.s6_addr, a, 16);
	return ssrf_classify((const struct sockaddr *)&in6);
}

static void check_parse(const char *host)
{
	struct sockaddr_storage ss;
	struct cdn_err err = { 0 };
	int r = ssrf_parse_host(host, &ss, &err);
	if (r < 0) {
		if (err.msg[0] == '\0')
			abort(); /* a refusal always says why */
		for (const char *c = err.msg; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				abort(); /* and quotes no control bytes into logs */
		return;
	}
	if (r == 0) {
		struct in_addr a;
		if (strchr(host, ':') || inet_aton(host, &a) != 0)
			abort(); /* a "name" some resolver reads as an address */
		return;
	}
	if (r != 1)
		abort();
	enum ssrf_class c = ssrf_classify((const struct sockaddr *)&ss);
	check_class(c);
	char text[INET6_ADDRSTRLEN];
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		if (!inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) || strcmp(text, host) != 0)
			abort(); /* only the canonical spelling is accepted */
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		if (!inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)))
			abort();
		struct sockaddr_storage again;
		if (ssrf_parse_host(text, &again, NULL) != 1 ||
		    memcmp(&((struct sockaddr_in6 *)&again)->sin6_addr, &in6->sin6_addr, 16) != 0 ||
		    ssrf_classify((const struct sockaddr *)&again) != c)
			abort();
	} else {
		abort();
	}
}

static void check_raw(const uint8_t *data, size_t size)
{
	if (size >= 4) {
		struct sockaddr_in in = { .sin_family = AF_INET };
		memcpy(&in.sin_addr, data, 4);
		enum ssrf_class c4 = ssrf_classify((const struct sockaddr *)&in);
		check_class(c4);
		/* ::ffff:a.b.c.d is a.b.c.d. */
		uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff };
		memcpy(mapped + 12, data, 4);
		if (classify6(mapped) != c4)
			abort();
		/* 6to4 and NAT64 are never better than what they wrap. */
		uint8_t six[16] = { 0x20, 0x02 };
		memcpy(six + 2, data, 4);
		if (c4 != SSRF_PUBLIC && classify6(six) != c4)
			abort();
		uint8_t nat64[16] = { 0x00, 0x64, 0xff, 0x9b };
		memcpy(nat64 + 12, data, 4);
		if (classify6(nat64) != c4)
			abort();
	}
	if (size >= 16)
		check_class(classify6(data));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char host[HOST_MAX];
	size_t n = size < sizeof(host) - 1 ? size : sizeof(host) - 1;
	memcpy(host, data, n);
	host[n] = '\0';
	check_parse(host);
	check_raw(data, size);
	return 0;
}
