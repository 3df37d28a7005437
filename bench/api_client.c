/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/api_client: dispatches runs through cordon serve's HTTP API with
 * several clients at once, each on its own keep-alive HTTP/1.1 connection
 * (plain sockets, no library), and waits for each run to end.
 *
 *   api_client dispatch ADDR:PORT AGENT RUNS CLIENTS follow|poll POLL_MS IDS_FILE
 *
 * The key comes from $CORDON_API_KEY (never from the command line, where
 * ps would show it). Each client, until RUNS runs have been dispatched:
 *   POST /v1/runs {"agent": AGENT}                    -> 202 {"id": ...}
 *   follow: GET /v1/runs/ID/events?follow=1            (until the stream ends)
 *   then    GET /v1/runs/ID, every POLL_MS until the record is final
 *   (poll:  only the GETs of the record, every POLL_MS)
 * A run counts as failed when any of its requests fails (an HTTP error, a
 * broken connection) or its final status is not "succeeded"; the first few
 * failures are described on stderr. IDS_FILE gets "ID STATUS" per run.
 *
 * One line on stdout:
 *   runs ok failed http_errors wall_ms runs_per_s e2e_p50 e2e_p90 e2e_p99
 *   post_p50 post_p99 gets_per_run
 * (milliseconds; e2e is from sending the POST to seeing the final record).
 * The exit status is 0 when every run succeeded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define RUN_TIMEOUT_MS 120000.0

static struct sockaddr_in addr;
static const char *agent, *key, *hostport;
static int total, n_clients, poll_ms;
static bool follow;

static atomic_int next_run;
static atomic_int n_ok, n_failed, n_http_err, n_gets, n_reported;
static double *e2e, *post_ms; /* per run */
static char (*ids)[64];
static char (*statuses)[16];

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	if (atomic_fetch_add(&n_reported, 1) >= 5)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("api_client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ------------------------------------------------------------- HTTP/1.1 */

struct conn {
	int fd;
	char buf[65536]; /* bytes read but not consumed */
	size_t have, off;
	char *body; /* the last response's body, NUL-terminated */
	size_t body_len, body_cap;
};

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->have = c->off = 0;
}

static int conn_open(struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		conn_close(c);
		return -1;
	}
	return 0;
}

static int fill(struct conn *c)
{
	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->have - c->off);
		c->have -= c->off;
		c->off = 0;
	}
	if (c->have == sizeof(c->buf))
		return -1;
	ssize_t n;
	do
		n = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	c->have += (size_t)n;
	return 0;
}

/* One line (without CRLF) into line; -1 at EOF or when it is too long. */
static int read_line(struct conn *c, char *line, size_t cap)
{
	for (;;) {
		char *p = memmem(c->buf + c->off, c->have - c->off, "\r\n", 2);
		if (p) {
			size_t n = (size_t)(p - (c->buf + c->off));
			if (n >= cap)
				return -1;
			memcpy(line, c->buf + c->off, n);
			line[n] = '\0';
			c->off += n + 2;
			return 0;
		}
		if (fill(c) < 0)
			return -1;
	}
}

static int body_add(struct conn *c, const char *p, size_t n)
{
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = (c->body_len + n + 1) * 2;
		char *b = realloc(c->body, cap);
		if (!b)
			return -1;
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, p, n);
	c->body_len += n;
	c->body[c->body_len] = '\0';
	return 0;
}

static int read_exact(struct conn *c, size_t n)
{
	while (n > 0) {
		if (c->off == c->have && fill(c) < 0)
			return -1;
		size_t take = c->have - c->off;
		if (take > n)
			take = n;
		if (body_add(c, c->buf + c->off, take) < 0)
			return -1;
		c->off += take;
		n -= take;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends one request and reads the whole response; the status, or -1 when
 * the connection failed (it is then closed, and the next request opens a
 * new one). */
static int request(struct conn *c, const char *method, const char *path, const char *body)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
			 "Accept: application/json\r\n",
			 method, path, hostport, key);
	if (body)
		n += snprintf(req + n, sizeof(req) - (size_t)n,
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			      strlen(body), body);
	else
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (n >= (int)sizeof(req))
		return -1;
	if (c->fd < 0 && conn_open(c) < 0)
		return -1;
	if (write_all(c->fd, req, (size_t)n) < 0)
		goto broken;

	char line[8192];
	int status;
	if (read_line(c, line, sizeof(line)) < 0 || sscanf(line, "HTTP/1.%*d %d", &status) != 1)
		goto broken;
	long long length = -1;
	bool chunked = false, close_after = false;
	for (;;) {
		if (read_line(c, line, sizeof(line)) < 0)
			goto broken;
		if (!line[0])
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			length = atoll(line + 15);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked"))
			chunked = true;
		else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close"))
			close_after = true;
	}
	c->body_len = 0;
	if (body_add(c, "", 0) < 0)
		goto broken;
	if (chunked) {
		for (;;) {
			if (read_line(c, line, sizeof(line)) < 0)
				goto broken;
			size_t size = strtoul(line, NULL, 16);
			if (size == 0)
				break;
			if (read_exact(c, size) < 0 || read_line(c, line, sizeof(line)) < 0)
				goto broken;
		}
		do /* trailers, up to the empty line */
			if (read_line(c, line, sizeof(line)) < 0)
				goto broken;
		while (line[0]);
	} else if (length >= 0) {
		if (read_exact(c, (size_t)length) < 0)
			goto broken;
	} else {
		while (fill(c) == 0)
			;
		if (body_add(c, c->buf + c->off, c->have - c->off) < 0)
			goto broken;
		close_after = true;
	}
	if (close_after)
		conn_close(c);
	return status;
broken:
	conn_close(c);
	return -1;
}

/* The value of the first "name":"..." in the body (enough for these replies:
 * the record's own fields come before its result's). */
static bool json_field(const char *body, const char *name, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", name);
	const char *p = strstr(body, pat);
	if (!p)
		return false;
	p += strlen(pat);
	const char *e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return true;
}

static bool final_status(const char *s)
{
	return strcmp(s, "created") != 0 && strcmp(s, "running") != 0 && strcmp(s, "queued") != 0;
}

/* --------------------------------------------------------------- clients */

static int one_run(struct conn *c, int i)
{
	char path[256], body[256];
	double t0 = now_ms();
	snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"input\":{}}", agent);
	int st = request(c, "POST", "/v1/runs", body);
	post_ms[i] = now_ms() - t0;
	if (st != 202 || !json_field(c->body, "id", ids[i], sizeof(ids[i]))) {
		while (c->body_len > 0 && c->body[c->body_len - 1] == '\n')
			c->body[--c->body_len] = '\0';
		report("POST /v1/runs: %s %d: %.200s", st < 0 ? "connection failed" : "HTTP", st,
		       st < 0 ? "" : c->body);
		snprintf(statuses[i], sizeof(statuses[i]), "http-%d", st);
		atomic_fetch_add(&n_http_err, 1);
		if (st == 503)
			sleep_ms(10); /* the queue is full: let it drain a little */
		return -1;
	}
	if (follow) {
		snprintf(path, sizeof(path), "/v1/runs/%s/events?follow=1", ids[i]);
		st = request(c, "GET", path, NULL);
		if (st != 200) {
			report("GET %s: %s %d", path, st < 0 ? "connection failed" : "HTTP", st);
			atomic_fetch_add(&n_http_err, 1);
			snprintf(statuses[i], sizeof(statuses[i]), "http-%d", st);
			return -1;
		}
	}
	snprintf(path, sizeof(path), "/v1/runs/%s", ids[i]);
	for (;;) {
		st = request(c, "GET", path, NULL);
		atomic_fetch_add(&n_gets, 1);
		char status[16];
		if (st != 200 || !json_field(c->body, "status", status, sizeof(status))) {
			report("GET %s: %s %d", path, st < 0 ? "connection failed" : "HTTP", st);
			atomic_fetch_add(&n_http_err, 1);
			snprintf(statuses[i], sizeof(statuses[i]), "http-%d", st);
			return -1;
		}
		if (final_status(status)) {
			e2e[i] = now_ms() - t0;
			snprintf(statuses[i], sizeof(statuses[i]), "%s", status);
			if (strcmp(status, "succeeded") != 0) {
				char why[256] = "";
				json_field(c->body, "error", why, sizeof(why));
				report("run %s ended %s%s%s", ids[i], status, why[0] ? ": " : "", why);
				return -1;
			}
			return 0;
		}
		if (now_ms() - t0 > RUN_TIMEOUT_MS) {
			report("run %s still %s after %.0f s", ids[i], status, RUN_TIMEOUT_MS / 1e3);
			snprintf(statuses[i], sizeof(statuses[i]), "%s", status);
			return -1;
		}
		sleep_ms(poll_ms);
	}
}

static void *client(void *arg)
{
	(void)arg;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->fd = -1;
	for (;;) {
		int i = atomic_fetch_add(&next_run, 1);
		if (i >= total)
			break;
		if (one_run(c, i) == 0)
			atomic_fetch_add(&n_ok, 1);
		else
			atomic_fetch_add(&n_failed, 1);
	}
	conn_close(c);
	free(c->body);
	free(c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, int p)
{
	if (n == 0)
		return 0;
	int i = n * p / 100;
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	if (argc != 9 || strcmp(argv[1], "dispatch") != 0) {
		fputs("usage: api_client dispatch ADDR:PORT AGENT RUNS CLIENTS follow|poll POLL_MS "
		      "IDS_FILE\n",
		      stderr);
		return 2;
	}
	hostport = argv[2];
	agent = argv[3];
	total = atoi(argv[4]);
	n_clients = atoi(argv[5]);
	follow = strcmp(argv[6], "follow") == 0;
	poll_ms = atoi(argv[7]);
	key = getenv("CORDON_API_KEY");
	char host[64];
	const char *colon = strrchr(hostport, ':');
	if (!key || !*key || !colon || (size_t)(colon - hostport) >= sizeof(host) || total < 1 ||
	    n_clients < 1 || n_clients > MAX_CLIENTS || poll_ms < 0 ||
	    (!follow && strcmp(argv[6], "poll") != 0)) {
		fputs("api_client: bad arguments (and $CORDON_API_KEY must be set)\n", stderr);
		return 2;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "api_client: %s: not an IPv4 address\n", host);
		return 2;
	}
	e2e = calloc((size_t)total, sizeof(double));
	post_ms = calloc((size_t)total, sizeof(double));
	ids = calloc((size_t)total, sizeof(*ids));
	statuses = calloc((size_t)total, sizeof(*statuses));
	if (!e2e || !post_ms || !ids || !statuses) {
		perror("api_client");
		return 2;
	}

	pthread_t th[MAX_CLIENTS];
	double t0 = now_ms();
	for (int i = 0; i < n_clients; i++)
		if (pthread_create(&th[i], NULL, client, NULL) != 0) {
			perror("api_client: pthread_create");
			return 2;
		}
	for (int i = 0; i < n_clients; i++)
		pthread_join(th[i], NULL);
	double wall = now_ms() - t0;

	FILE *f = fopen(argv[8], "w");
	if (!f) {
		perror(argv[8]);
		return 2;
	}
	for (int i = 0; i < total; i++)
		fprintf(f, "%s %s\n", ids[i][0] ? ids[i] : "-", statuses[i][0] ? statuses[i] : "-");
	fclose(f);

	/* Latencies of the runs that ended (e2e), of every POST. */
	int n_e2e = 0;
	for (int i = 0; i < total; i++)
		if (e2e[i] > 0)
			e2e[n_e2e++] = e2e[i];
	qsort(e2e, (size_t)n_e2e, sizeof(double), cmp);
	qsort(post_ms, (size_t)total, sizeof(double), cmp);
	int ok = atomic_load(&n_ok);
	printf("%d %d %d %d %.1f %.2f %.2f %.2f %.2f %.2f %.2f %.2f\n", total, ok,
	       atomic_load(&n_failed), atomic_load(&n_http_err), wall, ok / (wall / 1e3),
	       pct(e2e, n_e2e, 50), pct(e2e, n_e2e, 90), pct(e2e, n_e2e, 99),
	       pct(post_ms, total, 50), pct(post_ms, total, 99),
	       (double)atomic_load(&n_gets) / total);
	return ok == total ? 0 : 1;
}
