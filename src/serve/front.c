/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's front door: every TCP connection, from accept to close, and
 * the limits that keep one client from holding the server (docs/api.md,
 * "Limits"). libmicrohttpd runs a thread per connection; these limits are
 * what bounds the threads.
 *
 * - Every request head has an absolute deadline (SERVE_HEAD_DEADLINE_S),
 *   counted from the accept or from the end of the previous response: a
 *   client that sends a byte now and then (slowloris) is cut off however
 *   it paces itself. libmicrohttpd's own timeout only counts silence.
 * - Connections that have not shown a valid key are capped server-wide
 *   (SERVE_MAX_ANONYMOUS); at the cap the oldest of them is closed to make
 *   room, so holding the cap costs an attacker a stream of new
 *   connections while a real client, which sends its head at once, gets
 *   through.
 * - A per-address cap applies only where an address is one client: not to
 *   loopback, where every local client shares 127.0.0.1, and not to a
 *   --trusted-proxy, behind which every client shares the proxy's. Behind
 *   a trusted proxy the client is the last X-Forwarded-For entry (the one
 *   the proxy added), and its requests in progress are capped instead;
 *   X-Forwarded-For from anyone else is ignored.
 * - Bundle uploads in progress are capped server-wide (their bodies go to
 *   temporary files, not memory).
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

struct conn {
	int fd;
	char peer[INET6_ADDRSTRLEN];
	bool local;   /* a loopback peer */
	bool proxied; /* the peer is a --trusted-proxy */
	bool per_ip;  /* counted in the peer's per-address count */
	bool authed;  /* a request on it showed a valid key */
	bool waiting; /* for a request head */
	bool shut;    /* shut down by us; closing */
	bool bad_uri; /* the current request's raw URI holds %00 */
	int64_t deadline_ms;
	char client[INET6_ADDRSTRLEN]; /* behind a proxy: whose request this is */
	struct conn *prev, *next;      /* all connections, oldest first */
};

/* Counts per address: connections of a direct peer, requests of a client
 * behind a trusted proxy. At most as many entries as connections. */
struct addr_count {
	char addr[INET6_ADDRSTRLEN];
	unsigned n;
	struct addr_count *next;
};

static bool addr_text(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN], bool *local)
{
	*local = false;
	out[0] = '\0';
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct in_addr *a = &((const struct sockaddr_in *)sa)->sin_addr;
		*local = (ntohl(a->s_addr) >> 24) == 127;
		return inet_ntop(AF_INET, a, out, INET6_ADDRSTRLEN) != NULL;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		*local = IN6_IS_ADDR_LOOPBACK(a);
		return inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN) != NULL;
	}
	return false;
}

static bool is_trusted_proxy(const struct server *sv, const char *addr)
{
	for (size_t i = 0; i < sv->cfg.n_trusted_proxies; i++)
		if (strcmp(sv->cfg.trusted_proxies[i], addr) == 0)
			return true;
	return false;
}

/* Called with lim_mu held. */
static struct addr_count **count_find(struct addr_count **head, const char *addr)
{
	struct addr_count **pp = head;
	while (*pp && strcmp((*pp)->addr, addr) != 0)
		pp = &(*pp)->next;
	return pp;
}

static unsigned count_of(struct addr_count **head, const char *addr)
{
	struct addr_count **pp = count_find(head, addr);
	return *pp ? (*pp)->n : 0;
}

static bool count_add(struct addr_count **head, const char *addr)
{
	struct addr_count **pp = count_find(head, addr);
	if (!*pp) {
		struct addr_count *a = calloc(1, sizeof(*a));
		if (!a)
			return false;
		snprintf(a->addr, sizeof(a->addr), "%s", addr);
		*pp = a;
	}
	(*pp)->n++;
	return true;
}

static void count_del(struct addr_count **head, const char *addr)
{
	struct addr_count **pp = count_find(head, addr);
	if (*pp && --(*pp)->n == 0) {
		struct addr_count *a = *pp;
		*pp = a->next;
		free(a);
	}
}

/* Called with lim_mu held: closes c's socket for reading and writing; its
 * thread then sees the end and libmicrohttpd closes it. The fd is still
 * open: it is closed only after the CLOSED notification, which takes the
 * lock. */
static void cut(struct conn *c)
{
	if (!c->shut) {
		c->shut = true;
		shutdown(c->fd, SHUT_RDWR);
	}
}

enum MHD_Result front_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
	(void)len;
	struct server *sv = cls;
	char ip[INET6_ADDRSTRLEN];
	bool local;
	addr_text(addr, ip, &local);
	bool ok = true;
	pthread_mutex_lock(&sv->lim_mu);
	if (!local && !is_trusted_proxy(sv, ip) &&
	    count_of(&sv->peer_counts, ip) >= SERVE_MAX_PER_CLIENT)
		ok = false;
	if (ok && sv->n_anonymous >= SERVE_MAX_ANONYMOUS) {
		/* Make room: the oldest connection without a key goes. */
		for (struct conn *c = sv->conns; c; c = c->next)
			if (!c->authed && !c->shut) {
				cut(c);
				break;
			}
	}
	pthread_mutex_unlock(&sv->lim_mu);
	return ok ? MHD_YES : MHD_NO;
}

void front_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
		  enum MHD_ConnectionNotificationCode toe)
{
	struct server *sv = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct conn *c = calloc(1, sizeof(*c));
		if (!c)
			return; /* untracked: front_conn() answers NULL, requests are refused */
		const union MHD_ConnectionInfo *fi =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		c->fd = fi ? fi->connect_fd : -1;
		addr_text(ai ? ai->client_addr : NULL, c->peer, &c->local);
		pthread_mutex_lock(&sv->lim_mu);
		c->proxied = is_trusted_proxy(sv, c->peer);
		c->per_ip = !c->local && !c->proxied && count_add(&sv->peer_counts, c->peer);
		c->waiting = true;
		c->deadline_ms = (int64_t)cdn_mono_ms() + SERVE_HEAD_DEADLINE_S * 1000;
		c->prev = sv->conns_tail;
		if (sv->conns_tail)
			sv->conns_tail->next = c;
		else
			sv->conns = c;
		sv->conns_tail = c;
		sv->n_anonymous++;
		pthread_mutex_unlock(&sv->lim_mu);
		*socket_context = c;
		return;
	}
	struct conn *c = *socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !c)
		return;
	pthread_mutex_lock(&sv->lim_mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		sv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		sv->conns_tail = c->prev;
	if (!c->authed)
		sv->n_anonymous--;
	if (c->per_ip)
		count_del(&sv->peer_counts, c->peer);
	if (c->client[0])
		count_del(&sv->client_counts, c->client);
	pthread_mutex_unlock(&sv->lim_mu);
	free(c);
	*socket_context = NULL;
}

struct conn *front_conn(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* The raw request target, before libmicrohttpd decodes it: a %00 would be
 * decoded into a NUL that ends the path early ("/v1/whoami%00/../keys"
 * served as "/v1/whoami"), and a NUL in an argument cuts its value. Such a
 * request is refused whole (front_request). */
void *front_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	(void)cls;
	struct conn *c = front_conn(mc);
	if (c)
		c->bad_uri = uri && strstr(uri, "%00") != NULL;
	return NULL;
}

/* The last X-Forwarded-For entry, the one the trusted proxy added. */
static bool forwarded_for(struct MHD_Connection *mc, char out[INET6_ADDRSTRLEN])
{
	const char *xff = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Forwarded-For");
	if (!xff)
		return false;
	const char *last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	while (*last == ' ' || *last == '\t')
		last++;
	size_t n = strcspn(last, " \t");
	char tmp[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, last, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, &a6) != 1 && inet_pton(AF_INET6, tmp, &a6) != 1)
		return false;
	snprintf(out, INET6_ADDRSTRLEN, "%s", tmp);
	return true;
}

int front_request(struct server *sv, struct MHD_Connection *mc, char *why, size_t cap)
{
	struct conn *c = front_conn(mc);
	if (!c) {
		snprintf(why, cap, "the server could not track this connection");
		return 503;
	}
	int status = 0;
	char client[INET6_ADDRSTRLEN] = "";
	bool behind = c->proxied && forwarded_for(mc, client);
	pthread_mutex_lock(&sv->lim_mu);
	c->waiting = false;
	c->deadline_ms = 0;
	if (c->bad_uri) {
		snprintf(why, cap, "the URL holds an encoded NUL (%%00)");
		status = 400;
	} else if (behind) {
		if (count_of(&sv->client_counts, client) >= SERVE_MAX_PER_CLIENT) {
			snprintf(why, cap, "%s has %d requests in progress, the limit per client",
				 client, SERVE_MAX_PER_CLIENT);
			status = 429;
		} else if (count_add(&sv->client_counts, client)) {
			snprintf(c->client, sizeof(c->client), "%s", client);
		}
	}
	pthread_mutex_unlock(&sv->lim_mu);
	return status;
}

void front_request_done(struct server *sv, struct MHD_Connection *mc)
{
	struct conn *c = front_conn(mc);
	if (!c)
		return;
	pthread_mutex_lock(&sv->lim_mu);
	if (c->client[0]) {
		count_del(&sv->client_counts, c->client);
		c->client[0] = '\0';
	}
	/* The next request's head has its own deadline. */
	c->waiting = true;
	c->deadline_ms = (int64_t)cdn_mono_ms() + SERVE_HEAD_DEADLINE_S * 1000;
	pthread_mutex_unlock(&sv->lim_mu);
}

void front_authenticated(struct server *sv, struct MHD_Connection *mc)
{
	struct conn *c = front_conn(mc);
	if (!c)
		return;
	pthread_mutex_lock(&sv->lim_mu);
	if (!c->authed) {
		c->authed = true;
		sv->n_anonymous--;
	}
	pthread_mutex_unlock(&sv->lim_mu);
}

bool front_upload_take(struct server *sv)
{
	pthread_mutex_lock(&sv->lim_mu);
	bool ok = sv->n_uploads < sv->max_uploads;
	if (ok)
		sv->n_uploads++;
	pthread_mutex_unlock(&sv->lim_mu);
	return ok;
}

void front_upload_give(struct server *sv)
{
	pthread_mutex_lock(&sv->lim_mu);
	sv->n_uploads--;
	pthread_mutex_unlock(&sv->lim_mu);
}

void front_counts(struct server *sv, unsigned *open, unsigned *anonymous, unsigned *uploads)
{
	pthread_mutex_lock(&sv->lim_mu);
	unsigned n = 0;
	for (struct conn *c = sv->conns; c; c = c->next)
		n++;
	*open = n;
	*anonymous = sv->n_anonymous;
	*uploads = sv->n_uploads;
	pthread_mutex_unlock(&sv->lim_mu);
}

/* Cuts every connection whose request head is late; twice a second. */
static void *reaper(void *arg)
{
	struct server *sv = arg;
	pthread_mutex_lock(&sv->lim_mu);
	while (!sv->front_stop) {
		int64_t now = (int64_t)cdn_mono_ms();
		for (struct conn *c = sv->conns; c; c = c->next)
			if (c->waiting && c->deadline_ms && now >= c->deadline_ms)
				cut(c);
		struct timespec ts = cdn_wall_after(500);
		pthread_cond_timedwait(&sv->front_cv, &sv->lim_mu, &ts);
	}
	pthread_mutex_unlock(&sv->lim_mu);
	return NULL;
}

int front_start(struct server *sv)
{
	pthread_cond_init(&sv->front_cv, NULL);
	if (pthread_create(&sv->front_reaper, NULL, reaper, sv) != 0)
		return -EAGAIN;
	sv->front_started = true;
	return 0;
}

void front_stop(struct server *sv)
{
	if (!sv->front_started)
		return;
	pthread_mutex_lock(&sv->lim_mu);
	sv->front_stop = true;
	pthread_cond_signal(&sv->front_cv);
	pthread_mutex_unlock(&sv->lim_mu);
	pthread_join(sv->front_reaper, NULL);
	pthread_cond_destroy(&sv->front_cv);
	sv->front_started = false;
	/* The daemon is stopped first: every connection is closed, and the
	 * per-address lists are empty. */
}
