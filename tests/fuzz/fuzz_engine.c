/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the egress engine's connection lifecycles.
 *
 * The parsers have their own targets; this one drives the engine itself,
 * where a connection can end at any moment: while its head is half read,
 * while it waits for a lookup or a human, while it connects, while its
 * body streams (with inspected bytes held back), while the response
 * streams, or while it lingers after a block. A use-after-free there
 * (issue 9: conn_free freed the hold buffer, then drained it) is only
 * reachable through such sequences, so the input is a program:
 *
 *   open a client, write bytes (one of a set of request templates with
 *   fuzz bytes spliced in, or raw fuzz bytes), half-close, close; accept
 *   upstream connections and answer them (Content-Length, chunked,
 *   close-delimited, interim 100, malformed) or close them; run the loop;
 *   decide an approval.
 *
 * Everything runs on loopback inside this process: the proxy listener and
 * the upstream are 127.0.0.1 sockets, names come from a hosts file. At the
 * end of each input the engine is freed with whatever is still open,
 * which is one more lifecycle. ASan and UBSan do the checking.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/engine.h"
#include "egress/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CLIENTS 6
#define MAX_UP 8
#define MAX_OPS 96

static struct event_base *base;
static char hosts_path[64];
static int up_listener = -1;
static uint16_t up_port;

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take(struct input *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static size_t take_bytes(struct input *in, size_t want, const uint8_t **out)
{
	if (want > in->n)
		want = in->n;
	*out = in->p;
	in->p += want;
	in->n -= want;
	return want;
}

static int listen_loopback(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		abort();
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_loopback(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void init(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	up_listener = listen_loopback(&up_port);
	snprintf(hosts_path, sizeof(hosts_path), "/tmp/cordon-fuzz-engine-%d.hosts", (int)getpid());
	FILE *f = fopen(hosts_path, "w");
	if (!base || !f)
		abort();
	fprintf(f, "127.0.0.1 up.test\n127.0.0.1 ap.test\n127.0.0.1 ro.test\n10.9.9.9 priv.test\n"
		   "127.0.0.1 rl.test\n");
	fclose(f);
}

static struct egress_policy *make_policy(void)
{
	char yaml[1024];
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "limits:\n  requests_per_minute: 100000\n"
		 "domains:\n"
		 "  - name: up.test\n    ports: [%u]\n"
		 "  - name: ap.test\n    ports: [%u]\n    approval: required\n"
		 "  - name: ro.test\n    ports: [%u]\n    methods: [GET, HEAD]\n"
		 "  - name: priv.test\n    ports: [%u]\n"
		 "  - name: rl.test\n    ports: [%u]\n    requests_per_minute: 2\n"
		 "private:\n  - 127.0.0.1:%u\n",
		 up_port, up_port, up_port, up_port, up_port, up_port);
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_parse(yaml, strlen(yaml), "fuzz", &p, &err) < 0) {
		fprintf(stderr, "fuzz_engine: policy: %s\n", err.msg);
		abort();
	}
	return p;
}

static void on_event(void *ctx, const char *type, json_t *data)
{
	(void)ctx;
	(void)type;
	(void)data;
}

/* The request templates the fuzz bytes are spliced into. */
static const char *const templates[] = {
	"GET http://up.test:%u/a HTTP/1.1\r\nHost: up.test:%u\r\n\r\n",
	"POST http://up.test:%u/p HTTP/1.1\r\nHost: up.test:%u\r\nContent-Length: 600\r\n\r\n",
	"POST http://up.test:%u/c HTTP/1.1\r\nHost: up.test:%u\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST http://ap.test:%u/w HTTP/1.1\r\nHost: ap.test:%u\r\nContent-Length: 4\r\n\r\nabcd",
	"POST http://ro.test:%u/w HTTP/1.1\r\nHost: ro.test:%u\r\nContent-Length: 4\r\n\r\n",
	"CONNECT up.test:%u HTTP/1.1\r\nHost: up.test:%u\r\n\r\n",
	"GET http://priv.test:%u/ HTTP/1.1\r\nHost: priv.test:%u\r\n\r\n",
	("POST http://up.test:%u/e HTTP/1.1\r\nHost: up.test:%u\r\nExpect: 100-continue\r\n"
	 "Content-Length: 5\r\n\r\n"),
	"GET http://up.test:%u/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET http://rl.test:%u/r HTTP/1.1\r\nHost: rl.test:%u\r\n\r\n",
	"5\r\nhello\r\n",
	"0\r\n\r\n",
	"key=AKIAQWERTYUIOPASDFGH&",
	"token s3cr3t-value-of-the-run-42 ",
};

static const char *const responses[] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\nbody until close",
	"HTTP/1.1 100 Continue\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	"garbage\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
};

static void drain_fd(int fd)
{
	char buf[65536];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void run_loop(int *up, size_t *n_up, unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		int fd;
		while (*n_up < MAX_UP &&
		       (fd = accept4(up_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			up[(*n_up)++] = fd;
		for (size_t k = 0; k < *n_up; k++)
			if (up[k] >= 0)
				drain_fd(up[k]);
	}
}

/* A template with every "%u" replaced by the port (the templates are not
 * format strings: a build with -Wformat-nonliteral refuses that). */
static size_t fill_port(char *buf, size_t cap, const char *t, unsigned port)
{
	size_t n = 0;
	while (*t && n + 6 < cap) {
		if (t[0] == '%' && t[1] == 'u') {
			n += (size_t)snprintf(buf + n, cap - n, "%u", port);
			t += 2;
		} else {
			buf[n++] = *t++;
		}
	}
	buf[n] = '\0';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base)
		init();
	struct input in = { data, size };
	const struct inspect_secret secret = { .name = "RUN_TOKEN",
					       .value = "s3cr3t-value-of-the-run-42",
					       .len = 26 };
	struct egress_engine_config cfg = {
		.run_id = "fuzz",
		.policy = make_policy(),
		.secrets = &secret,
		.n_secrets = 1,
		.hosts_file = hosts_path,
		.on_event = on_event,
	};
	struct egress_engine *e = NULL;
	struct cdn_err err = { 0 };
	if (egress_engine_new(base, &cfg, &e, &err) < 0) {
		fprintf(stderr, "fuzz_engine: %s\n", err.msg);
		abort();
	}
	uint16_t proxy_port;
	int lfd = listen_loopback(&proxy_port);
	if (egress_engine_attach(e, lfd, -1, -1, &err) < 0)
		abort();

	int cl[MAX_CLIENTS], up[MAX_UP];
	size_t n_up = 0;
	for (int i = 0; i < MAX_CLIENTS; i++)
		cl[i] = -1;
	for (int i = 0; i < MAX_UP; i++)
		up[i] = -1;

	for (int ops = 0; ops < MAX_OPS && in.n > 0; ops++) {
		uint8_t op = take(&in);
		int k = take(&in) % MAX_CLIENTS;
		switch (op % 9) {
		case 0: /* open */
			if (cl[k] >= 0)
				close(cl[k]);
			cl[k] = connect_loopback(proxy_port);
			break;
		case 1: { /* a template */
			if (cl[k] < 0)
				break;
			char buf[512];
			const char *t = templates[take(&in) % (sizeof(templates) / sizeof(*templates))];
			size_t n = fill_port(buf, sizeof(buf), t, up_port);
			(void)!write(cl[k], buf, n);
			break;
		}
		case 2: { /* raw bytes, or a run of filler that crosses the hold window */
			if (cl[k] < 0)
				break;
			uint8_t len = take(&in);
			if (len & 0x80) {
				static char filler[4096];
				memset(filler, 'x', sizeof(filler));
				(void)!write(cl[k], filler, (size_t)(len & 0x7f) * 32);
			} else {
				const uint8_t *p;
				size_t n = take_bytes(&in, len, &p);
				(void)!write(cl[k], p, n);
			}
			break;
		}
		case 3: /* half-close */
			if (cl[k] >= 0)
				shutdown(cl[k], SHUT_WR);
			break;
		case 4: /* close */
			if (cl[k] >= 0)
				close(cl[k]);
			cl[k] = -1;
			break;
		case 5: /* run the loop */
			run_loop(up, &n_up, 1 + take(&in) % 8);
			break;
		case 6: { /* an upstream answers */
			int u = k % MAX_UP;
			if (u < (int)n_up && up[u] >= 0) {
				const char *r = responses[take(&in) % (sizeof(responses) / sizeof(*responses))];
				(void)!write(up[u], r, strlen(r));
			}
			break;
		}
		case 7: { /* an upstream goes away */
			int u = k % MAX_UP;
			if (u < (int)n_up && up[u] >= 0) {
				close(up[u]);
				up[u] = -1;
			}
			break;
		}
		case 8: /* a client reads what it got */
			if (cl[k] >= 0)
				drain_fd(cl[k]);
			break;
		}
	}
	run_loop(up, &n_up, 2);
	egress_engine_free(e);
	/* What the engine scheduled on the way out (deferred callbacks). */
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (cl[i] >= 0)
			close(cl[i]);
	for (size_t i = 0; i < n_up; i++)
		if (up[i] >= 0)
			close(up[i]);
	return 0;
}
