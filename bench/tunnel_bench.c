/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/tunnel_bench: bulk TCP throughput, direct or through an HTTP
 * CONNECT proxy.
 *
 *   tunnel_bench sink PORT             accept connections, read to EOF, reply
 *                                      with the byte count
 *   tunnel_bench send HOST PORT MIB [PROXY_HOST PROXY_PORT]
 *                                      send MIB mebibytes, print MB/s
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static __thread char buf[1 << 20];
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (uint64_t)n;
	char out[32];
	int l = snprintf(out, sizeof(out), "%llu\n", (unsigned long long)total);
	(void)!write(fd, out, (size_t)l);
	close(fd);
	return NULL;
}

static int sink(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0) {
		perror("sink");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		pthread_create(&t, NULL, serve, (void *)(intptr_t)c);
		pthread_detach(t);
	}
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	int s = socket(res->ai_family, SOCK_STREAM, 0);
	if (connect(s, res->ai_addr, res->ai_addrlen) < 0) {
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return s;
}

/* A minimal TLS 1.2 ClientHello with one server_name; its length, or 0. */
static size_t client_hello(const char *host, unsigned char *out, size_t cap)
{
	size_t hn = strlen(host);
	size_t ext = 2 + 2 + 2 + 1 + 2 + hn;			/* server_name extension */
	size_t body = 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + ext; /* the ClientHello */
	if (hn > 253 || 9 + body > cap)
		return 0;
	size_t o = 0;
	out[o++] = 22, out[o++] = 3, out[o++] = 1; /* handshake record */
	out[o++] = (unsigned char)((body + 4) >> 8), out[o++] = (unsigned char)(body + 4);
	out[o++] = 1, out[o++] = 0; /* ClientHello */
	out[o++] = (unsigned char)(body >> 8), out[o++] = (unsigned char)body;
	out[o++] = 3, out[o++] = 3;
	memset(out + o, 7, 32), o += 32;
	out[o++] = 0;					       /* session id */
	out[o++] = 0, out[o++] = 2, out[o++] = 0x13, out[o++] = 0x01; /* one suite */
	out[o++] = 1, out[o++] = 0;			       /* no compression */
	out[o++] = (unsigned char)(ext >> 8), out[o++] = (unsigned char)ext;
	out[o++] = 0, out[o++] = 0; /* server_name */
	out[o++] = (unsigned char)((hn + 5) >> 8), out[o++] = (unsigned char)(hn + 5);
	out[o++] = (unsigned char)((hn + 3) >> 8), out[o++] = (unsigned char)(hn + 3);
	out[o++] = 0;
	out[o++] = (unsigned char)(hn >> 8), out[o++] = (unsigned char)hn;
	memcpy(out + o, host, hn);
	return o + hn;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "sink") == 0)
		return sink(atoi(argv[2]));
	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: tunnel_bench sink PORT | send HOST PORT MIB [PROXY PORT]\n");
		return 2;
	}
	int s = argc == 7 ? dial(argv[5], argv[6]) : dial(argv[2], argv[3]);
	if (s < 0) {
		perror("connect");
		return 1;
	}
	if (argc == 7) {
		char req[512];
		int l = snprintf(req, sizeof(req), "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
				 argv[2], argv[3], argv[2], argv[3]);
		(void)!write(s, req, (size_t)l);
		char head[512];
		ssize_t n = read(s, head, sizeof(head) - 1);
		if (n <= 0 || strstr(head, " 200 ") == NULL) {
			fprintf(stderr, "CONNECT refused\n");
			return 1;
		}
	}
	/* A tunnel the proxy does not read must start with a TLS ClientHello
	 * naming its host (docs/egress.md): send a minimal one first, on both
	 * paths, and count it. */
	unsigned char hello[600];
	size_t hl = client_hello(argv[2], hello, sizeof(hello));
	if (hl == 0 || write(s, hello, hl) != (ssize_t)hl) {
		perror("hello");
		return 1;
	}
	uint64_t total = ((uint64_t)atoll(argv[4]) << 20) + hl;
	static char buf[1 << 20];
	memset(buf, 'x', sizeof(buf));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t sent = hl; sent < total;) {
		ssize_t n = write(s, buf, sizeof(buf));
		if (n <= 0) {
			perror("write");
			return 1;
		}
		sent += (uint64_t)n;
	}
	shutdown(s, SHUT_WR);
	char ack[64];
	ssize_t n = read(s, ack, sizeof(ack) - 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ack[n > 0 ? n : 0] = '\0';
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if ((uint64_t)atoll(ack) != total) {
		fprintf(stderr, "sink got %s bytes, sent %llu\n", ack, (unsigned long long)total);
		return 1;
	}
	printf("%.1f\n", (double)total / 1e6 / secs);
	return 0;
}
