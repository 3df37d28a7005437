/* SPDX-License-Identifier: Apache-2.0 */
/* A run's control socket: directory, server and client (see control.h). */
#define _GNU_SOURCE
#include "run/control.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "store/store.h"

/* ---------------------------------------------------------------- directory */

static int dir_name(char *out, size_t cap, struct cdn_err *err)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (geteuid() == 0)
		n = snprintf(out, cap, "/run/cordon");
	else if (xdg && *xdg == '/')
		n = snprintf(out, cap, "%s/cordon", xdg);
	else
		n = snprintf(out, cap, "/tmp/cordon-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_msg(err, ENAMETOOLONG, "the control directory's name is too long");
	return 0;
}

int control_dir_open(bool create, char *path, size_t cap, struct cdn_err *err)
{
	int r = dir_name(path, cap, err);
	if (r < 0)
		return r;
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "create %s", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return cdn_err_set(err, errno, "stat %s", path);
	}
	/* Trust is checked on what was opened, not on the name: a directory
	 * someone else made (or may write to) would let them plant a socket
	 * that shows forged approvals and receives the decisions. */
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return cdn_err_msg(err, EPERM,
				   "refusing the control directory %s: it must be owned by uid %u "
				   "with no access for others (it is owned by uid %u, mode %03o); "
				   "another user may have made it",
				   path, (unsigned)geteuid(), (unsigned)st.st_uid,
				   (unsigned)(st.st_mode & 0777));
	}
	return fd;
}

/* The socket of run `id` under the checked directory fd, as a path that
 * resolves through that fd (so a later swap of the directory's name does
 * not redirect it). */
static int sock_addr(int dirfd, const char *id, struct sockaddr_un *sun, struct cdn_err *err)
{
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s.sock", dirfd, id);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return cdn_err_msg(err, ENAMETOOLONG, "control socket name too long");
	return 0;
}

static bool peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* ------------------------------------------------------------------ server */

/* What waits: a held egress request (method, host, port, path) or an
 * agent's request_approval call over MCP (source "mcp": the action and the
 * agent's reason). */
struct pending {
	char id[64];
	char method[16];
	char host[256];
	char path[512];
	char source[16];
	char action[1025];		     /* MCP: 256 code points at most */
	char reason[CONTROL_MAX_REASON + 1]; /* MCP: cut at a character boundary */
	bool reason_cut;
	int port;
	uint64_t created_ms, deadline_ms;
};

struct control_server {
	struct event_base *base;
	struct control_hooks hooks;
	char run_id[STORE_RUN_ID_MAX + 1];
	char path[512];
	struct evconnlistener *listener;
	/* Live connections, so that freeing the server ends them too: a
	 * client still connected when the run ends must not keep callbacks
	 * that point at a freed server. */
	struct bufferevent *clients[CONTROL_MAX_CLIENTS];
	unsigned n_clients;
	struct pending apprs[CONTROL_MAX_APPROVALS];
	size_t n_apprs;
};

/* Copies o[key] into dst, cut to cap - 1 bytes at a UTF-8 character
 * boundary: a cut inside a character would make the listing invalid JSON,
 * and jansson would then drop the field without a word. True when cut. */
static bool copy_field(char *dst, size_t cap, const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	size_t n = v ? strlen(v) : 0;
	bool cut = n >= cap;
	if (cut) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, v, n);
	dst[n] = '\0';
	return cut;
}

/* What a requested event says of what waits, copied, bounded. */
static void pending_from(struct pending *p, const json_t *req)
{
	memset(p, 0, sizeof(*p));
	copy_field(p->id, sizeof(p->id), req, "approval_id");
	copy_field(p->method, sizeof(p->method), req, "method");
	copy_field(p->host, sizeof(p->host), req, "hostname");
	copy_field(p->path, sizeof(p->path), req, "path");
	copy_field(p->source, sizeof(p->source), req, "source");
	copy_field(p->action, sizeof(p->action), req, "action");
	p->reason_cut = copy_field(p->reason, sizeof(p->reason), req, "reason");
	json_int_t port = json_integer_value(json_object_get(req, "port"));
	p->port = port >= 0 && port <= 65535 ? (int)port : 0;
	json_int_t t = json_integer_value(json_object_get(req, "timeout_s"));
	p->created_ms = cdn_mono_ms();
	p->deadline_ms = p->created_ms + (uint64_t)(t > 0 && t <= 86400 ? t : 0) * 1000;
}

void control_approval_add(struct control_server *s, const json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "approval_id"));
	if (!s || !id || !*id || s->n_apprs >= CONTROL_MAX_APPROVALS)
		return;
	pending_from(&s->apprs[s->n_apprs++], req);
}

void control_approval_remove(struct control_server *s, const char *id)
{
	for (size_t i = 0; s && id && i < s->n_apprs; i++)
		if (strcmp(s->apprs[i].id, id) == 0) {
			s->apprs[i] = s->apprs[--s->n_apprs];
			return;
		}
}

/* A listing's entry without its times: what waits, and where or why.
 * An agent's own request says what and why; a held request says where.
 * Neither is dressed up as the other. */
static json_t *pending_json(const struct pending *p)
{
	json_t *a = json_pack("{s:s, s:s}", "id", p->id, "method", p->method);
	if (!a)
		return NULL;
	if (strcmp(p->source, "mcp") == 0) {
		json_object_set_new(a, "action", json_string(p->action));
		json_object_set_new(a, "reason", json_string(p->reason));
		if (p->reason_cut)
			json_object_set_new(a, "reason_truncated", json_true());
	} else {
		json_object_set_new(a, "host", json_string(p->host));
		json_object_set_new(a, "port", json_integer(p->port));
		json_object_set_new(a, "path", json_string(p->path));
	}
	if (p->source[0])
		json_object_set_new(a, "source", json_string(p->source));
	return a;
}

json_t *control_approval_entry(const json_t *requested, int64_t *timeout_ms)
{
	struct pending *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	pending_from(p, requested);
	json_t *a = p->id[0] ? pending_json(p) : NULL;
	*timeout_ms = (int64_t)(p->deadline_ms - p->created_ms);
	free(p);
	return a;
}

static json_t *list_json(const struct control_server *s)
{
	json_t *arr = json_array();
	uint64_t now = cdn_mono_ms();
	for (size_t i = 0; arr && i < s->n_apprs; i++) {
		const struct pending *p = &s->apprs[i];
		json_t *a = pending_json(p);
		if (!a)
			continue;
		json_object_set_new(a, "waiting_s",
				    json_integer((json_int_t)((now - p->created_ms) / 1000)));
		if (p->deadline_ms)
			json_object_set_new(a, "expires_in_s",
					    json_integer((json_int_t)(p->deadline_ms > now
									 ? (p->deadline_ms - now) / 1000
									 : 0)));
		json_array_append_new(arr, a);
	}
	return arr;
}

static bool holds(const struct control_server *s, const char *id)
{
	for (size_t i = 0; i < s->n_apprs; i++)
		if (strcmp(s->apprs[i].id, id) == 0)
			return true;
	return false;
}

json_t *control_apply(struct control_server *s, const json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *res;
	if (!json_is_object(req)) {
		res = json_pack("{s:b, s:s}", "ok", 0, "error", "expected a JSON object");
	} else if (op && strcmp(op, "list") == 0) {
		res = json_pack("{s:b, s:s, s:o}", "ok", 1, "run_id", s->run_id, "approvals",
				list_json(s));
	} else if (op && strcmp(op, "decide") == 0) {
		const char *id = json_string_value(json_object_get(req, "id"));
		json_t *ap = json_object_get(req, "approve");
		const char *by = json_string_value(json_object_get(req, "by"));
		struct cdn_err err = { 0 };
		if (!id || !json_is_boolean(ap))
			res = json_pack("{s:b, s:s}", "ok", 0, "error",
					"decide needs \"id\" and a boolean \"approve\"");
		/* Only what this run holds: `cordon approvals approve ID` asks
		 * every run in turn and stops at the first that says yes, so a
		 * run that said yes to any id took other runs' decisions. */
		else if (!holds(s, id))
			res = json_pack("{s:b, s:s}", "ok", 0, "error",
					"no such pending request in this run");
		else if (s->hooks.decide(s->hooks.ctx, id, json_is_true(ap), by, &err) < 0)
			res = json_pack("{s:b, s:s}", "ok", 0, "error",
					err.msg[0] ? err.msg : "the decision was not taken");
		else
			res = json_pack("{s:b}", "ok", 1);
	} else if (op && strcmp(op, "cancel") == 0) {
		const char *by = json_string_value(json_object_get(req, "by"));
		struct cdn_err err = { 0 };
		if (!s->hooks.cancel)
			res = json_pack("{s:b, s:s}", "ok", 0, "error", "this run cannot be cancelled");
		else if (s->hooks.cancel(s->hooks.ctx, by, &err) < 0)
			res = json_pack("{s:b, s:s}", "ok", 0, "error",
					err.msg[0] ? err.msg : "the run was not cancelled");
		else
			res = json_pack("{s:b}", "ok", 1);
	} else {
		res = json_pack("{s:b, s:s}", "ok", 0, "error", "unknown op (list, decide, cancel)");
	}
	return res;
}

static json_t *handle(struct control_server *s, const char *line, size_t len)
{
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *res = control_apply(s, req);
	json_decref(req);
	return res;
}

static void client_done(struct bufferevent *bev, struct control_server *s)
{
	for (unsigned i = 0; i < s->n_clients; i++)
		if (s->clients[i] == bev) {
			s->clients[i] = s->clients[--s->n_clients];
			break;
		}
	bufferevent_free(bev);
}

static void on_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_done(bev, arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what; /* EOF, error or timeout: the connection is over */
	client_done(bev, arg);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct control_server *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = 0;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (!line) {
		/* The watermark stops reading at CONTROL_MAX_LINE + 1 bytes: a
		 * line that long is refused, not buffered further. */
		if (evbuffer_get_length(in) > CONTROL_MAX_LINE)
			client_done(bev, s);
		return;
	}
	json_t *res = n <= CONTROL_MAX_LINE ? handle(s, line, n)
					    : json_pack("{s:b, s:s}", "ok", 0, "error", "too long");
	free(line);
	char *out = res ? json_dumps(res, JSON_COMPACT) : NULL;
	json_decref(res);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_written, on_event, s);
	if (!out) {
		client_done(bev, s);
		return;
	}
	evbuffer_add(bufferevent_get_output(bev), out, strlen(out));
	evbuffer_add(bufferevent_get_output(bev), "\n", 1);
	free(out);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct control_server *s = arg;
	/* The directory is 0700 and the socket 0600; check the peer anyway,
	 * and bound how many may hold a connection. */
	if (!peer_trusted(fd) || s->n_clients >= CONTROL_MAX_CLIENTS) {
		close(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	s->clients[s->n_clients++] = bev;
	bufferevent_setcb(bev, on_read, NULL, on_event, s);
	bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_MAX_LINE + 1);
	/* One whole request and reply within this, however slowly sent. */
	struct timeval tv = { CONTROL_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int control_server_new(struct event_base *base, const char *run_id,
		       const struct control_hooks *hooks, struct control_server **out,
		       struct cdn_err *err)
{
	*out = NULL;
	char dir[256];
	_cleanup_close_ int dfd = control_dir_open(true, dir, sizeof(dir), err);
	if (dfd < 0)
		return dfd;
	struct sockaddr_un sun;
	int r = sock_addr(dfd, run_id, &sun, err);
	if (r < 0)
		return r;
	struct control_server *s = calloc(1, sizeof(*s));
	if (!s)
		return cdn_err_set(err, ENOMEM, "control socket");
	s->base = base;
	s->hooks = *hooks;
	snprintf(s->run_id, sizeof(s->run_id), "%s", run_id);
	snprintf(s->path, sizeof(s->path), "%s/%s.sock", dir, run_id);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		free(s);
		return cdn_err_set(err, errno, "control socket");
	}
	(void)unlinkat(dfd, strrchr(s->path, '/') + 1, 0);
	mode_t old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, CONTROL_MAX_CLIENTS) < 0) {
		r = cdn_err_set(err, errno, "control socket %s", s->path);
		free(s);
		return r;
	}
	s->listener = evconnlistener_new(base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!s->listener) {
		(void)unlinkat(dfd, strrchr(s->path, '/') + 1, 0);
		free(s);
		return cdn_err_set(err, ENOMEM, "control socket");
	}
	fd = -1;
	*out = s;
	return 0;
}

void control_server_free(struct control_server *s)
{
	if (!s)
		return;
	if (s->listener)
		evconnlistener_free(s->listener);
	while (s->n_clients > 0)
		client_done(s->clients[s->n_clients - 1], s);
	unlink(s->path);
	free(s);
}

/* ------------------------------------------------------------------ client */

/* Milliseconds left until deadline (a cdn_mono_ms() value), at least 0. */
static int left_ms(uint64_t deadline)
{
	uint64_t now = cdn_mono_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/*
 * A socket nobody listens on is a run that died without removing it
 * (SIGKILL, a crash). Remove it, so that listing every run stays quick, but
 * only once it is older than the window in which a starting run has bound
 * its socket and not yet called listen().
 */
#define CONTROL_STALE_S 30

static void prune_stale(int dfd, const char *run_id)
{
	char name[STORE_RUN_ID_MAX + 8];
	struct stat st;
	snprintf(name, sizeof(name), "%s.sock", run_id);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_uid == geteuid() && time(NULL) - st.st_mtime > CONTROL_STALE_S)
		(void)unlinkat(dfd, name, 0);
}

json_t *control_ask(const char *run_id, const json_t *req, struct cdn_err *err)
{
	char dir[256];
	_cleanup_close_ int dfd = control_dir_open(false, dir, sizeof(dir), err);
	if (dfd < 0)
		return NULL;
	struct sockaddr_un sun;
	if (sock_addr(dfd, run_id, &sun, err) < 0)
		return NULL;
	/* One deadline for the whole exchange, connect included: a run whose
	 * loop is stuck (its backlog full, or never answering) costs the
	 * caller at most this, never a hang. */
	uint64_t deadline = cdn_mono_ms() + CONTROL_TIMEOUT_S * 1000;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		cdn_err_set(err, errno, "run %s: control socket", run_id);
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		if (e == ECONNREFUSED)
			prune_stale(dfd, run_id);
		cdn_err_set(err, e, "run %s: control socket", run_id);
		return NULL;
	}
	if (!peer_trusted(fd)) {
		cdn_err_msg(err, EPERM, "run %s: the control socket is served by another user",
			    run_id);
		return NULL;
	}
	_cleanup_free_ char *line = json_dumps(req, JSON_COMPACT);
	if (!line) {
		cdn_err_set(err, ENOMEM, "control request");
		return NULL;
	}
	size_t len = strlen(line);
	line[len] = '\n'; /* json_dumps's NUL becomes the line's end */
	for (size_t off = 0; off < len + 1;) {
		ssize_t w = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, left_ms(deadline)) > 0)
				continue;
			errno = ETIMEDOUT;
		}
		if (w <= 0) {
			cdn_err_set(err, errno, "run %s: control socket", run_id);
			return NULL;
		}
		off += (size_t)w;
	}
	_cleanup_free_ char *buf = malloc(CONTROL_MAX_REPLY);
	size_t got = 0;
	while (buf && got < CONTROL_MAX_REPLY) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left_ms(deadline)) <= 0)
			break;
		ssize_t n = read(fd, buf + got, CONTROL_MAX_REPLY - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf + got - (size_t)n, '\n', (size_t)n))
			break;
	}
	json_t *res = buf && got ? json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	if (!json_is_object(res)) {
		json_decref(res);
		cdn_err_msg(err, EPROTO, "run %s: no answer on the control socket", run_id);
		return NULL;
	}
	return res;
}

int control_each(int (*fn)(const char *run_id, void *ctx), void *ctx, struct cdn_err *err)
{
	char dir[256];
	int dfd = control_dir_open(false, dir, sizeof(dir), err);
	if (dfd < 0)
		return err->code == ENOENT ? 0 : dfd;
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return cdn_err_set(err, errno, "open %s", dir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || l - 5 > STORE_RUN_ID_MAX || strcmp(de->d_name + l - 5, ".sock") != 0)
			continue;
		char id[STORE_RUN_ID_MAX + 1];
		memcpy(id, de->d_name, l - 5);
		id[l - 5] = '\0';
		struct cdn_err e2 = { 0 };
		if (store_run_id_check(id, &e2) < 0)
			continue;
		int r = fn(id, ctx);
		if (r > 0)
			return r;
	}
	return 0;
}
