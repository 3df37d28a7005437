/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon-net: a run's network part (see netpart.h). Started by the run's
 * supervisor with the channel on fd 3 and the sandbox's listeners after
 * it, and nothing else: no environment, stdin and stdout on /dev/null.
 *
 * The order is the point:
 *  1. read CONFIG from the supervisor (trusted) and build everything that
 *     needs a file: the resolver (resolv.conf, the hosts file), the roots
 *     for verifying upstreams, the run's CA, the MCP server;
 *  2. confine (sandbox_confine_helper): own uid, no capabilities,
 *     no_new_privs, Landlock with no filesystem, the helper's seccomp
 *     allowlist;
 *  3. only then serve the sandbox's sockets, and say READY.
 * It stops when the channel closes: the supervisor is done or gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <linux/capability.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "config.h"
#include "egress/engine.h"
#include "egress/tls.h"
#include "run/netchan.h"
#include "run/netmsg.h"
#include "run/netpart.h"
#include "run/run_mcp.h"
#include "sandbox/sandbox.h"

#define CHANNEL_FD 3

struct part {
	struct event_base *base;
	struct netchan *chan;
	struct egress_engine *engine;
	struct run_mcp *mcp;
	uint32_t artifact_seq;
	bool stop;
	bool all_events; /* else only approvals (the control socket's list) */
	char fault[64];
};

static void fatal(struct part *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Tells the supervisor why, then ends. */
static void fatal(struct part *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->chan) {
		json_t *j = json_pack("{s:s}", "error", msg);
		if (j)
			(void)netchan_send_json(p->chan, NETMSG_FATAL, j);
		json_decref(j);
		netchan_flush(p->chan, 1000);
	}
	fprintf(stderr, "cordon: network part: %s\n", msg);
	_exit(70);
}

/* ----------------------------------------------------------- to the supervisor */

static void send_event(void *ctx, const char *type, json_t *data)
{
	struct part *p = ctx;
#ifdef CORDON_TEST_FAULTS
	/* Test builds only: the agent asks for this name, and the part
	 * crashes, as a bug in a parser would make it. */
	const char *host = json_string_value(json_object_get(data, "hostname"));
	if (p->fault[0] && strcmp(p->fault, "crash") == 0 && host &&
	    strcmp(host, "crash.netpart.test") == 0)
		raise(SIGSEGV);
#endif
	if (!p->all_events && strncmp(type, "approval.", 9) != 0)
		return;
	json_t *j = json_pack("{s:s, s:O}", "type", type, "data", data);
	if (j && netchan_send_json(p->chan, NETMSG_EVENT, j) < 0)
		p->stop = true;
	json_decref(j);
}

static void send_audit(void *ctx, json_t *entry)
{
	struct part *p = ctx;
	if (netchan_send_json(p->chan, NETMSG_AUDIT, entry) < 0)
		p->stop = true;
}

static void send_step(void *ctx, json_t *step)
{
	struct part *p = ctx;
	if (netchan_send_json(p->chan, NETMSG_STEP, step) < 0)
		p->stop = true;
}

/* The supervisor writes artifacts (it owns the run's files); the tool's
 * answer waits for its word. */
static int send_artifact(void *ctx, const char *name, const uint8_t *data, size_t len,
			 struct cdn_err *err)
{
	struct part *p = ctx;
	size_t nl = strlen(name);
	if (nl > 128 || len > NETMSG_MAX_UP - 6 - nl)
		return cdn_err_msg(err, EFBIG, "the artifact is too large");
	_cleanup_free_ uint8_t *buf = malloc(6 + nl + len);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "artifact");
	uint32_t seq = ++p->artifact_seq;
	buf[0] = (uint8_t)seq;
	buf[1] = (uint8_t)(seq >> 8);
	buf[2] = (uint8_t)(seq >> 16);
	buf[3] = (uint8_t)(seq >> 24);
	buf[4] = (uint8_t)nl;
	buf[5] = (uint8_t)(nl >> 8);
	memcpy(buf + 6, name, nl);
	if (len)
		memcpy(buf + 6 + nl, data, len);
	if (netchan_send(p->chan, NETMSG_ARTIFACT, buf, 6 + nl + len) < 0)
		return cdn_err_msg(err, EPIPE, "the run is ending");
	_cleanup_free_ uint8_t *ans = NULL;
	size_t alen;
	if (netchan_wait(p->chan, NETMSG_ARTIFACT_DONE, NETPART_ARTIFACT_TIMEOUT_MS, &ans, &alen,
			 err) < 0)
		return -EIO;
	json_t *j = netmsg_json(ans, alen, err);
	if (!j)
		return -EPROTO;
	int r = 0;
	if ((uint32_t)json_integer_value(json_object_get(j, "seq")) != seq)
		r = cdn_err_msg(err, EPROTO, "the supervisor answered another artifact");
	else if (!json_is_true(json_object_get(j, "ok")))
		r = cdn_err_msg(err, EIO, "%s",
				json_string_value(json_object_get(j, "error"))
					? json_string_value(json_object_get(j, "error"))
					: "the artifact was not saved");
	json_decref(j);
	return r;
}

/* call_agent: the supervisor decides and runs it; the part only passes
 * the request on, bounded (netmsg_decode_up checks it again there). */
static int send_call(void *ctx, const char *id, const char *agent, const char *input_json,
		     struct cdn_err *err)
{
	struct part *p = ctx;
	json_error_t je;
	json_t *in = json_loads(input_json, 0, &je);
	json_t *j = in ? json_pack("{s:s, s:s, s:o}", "id", id, "agent", agent, "input", in) : NULL;
	int r = j ? netchan_send_json(p->chan, NETMSG_CALL, j) : -ENOMEM;
	json_decref(j);
	if (r < 0)
		return cdn_err_msg(err, -r, "the run's supervisor cannot be reached");
	return 0;
}

/* -------------------------------------------------------- from the supervisor */

static void on_frame(void *ctx, enum netmsg_type type, const uint8_t *payload, size_t len)
{
	struct part *p = ctx;
	struct cdn_err err = { 0 };
	json_t *j = netmsg_json(payload, len, &err);
	if (!j)
		fatal(p, "%s", err.msg);
	switch (type) {
	case NETMSG_PHASE_END: {
		json_t *ph = json_object_get(j, "phase");
		if (!json_is_integer(ph) || json_integer_value(ph) < 0 || json_integer_value(ph) > 1)
			fatal(p, "PHASE_END: bad phase");
		if (p->mcp)
			run_mcp_phase_ended(p->mcp, (int)json_integer_value(ph));
		break;
	}
	case NETMSG_DECIDE: {
		const char *id = json_string_value(json_object_get(j, "id"));
		json_t *ap = json_object_get(j, "approve");
		const char *by = json_string_value(json_object_get(j, "by"));
		if (!id || !json_is_boolean(ap))
			fatal(p, "DECIDE: bad decision");
		/* The id says whose: MCP approvals are apr_mcp_..., the
		 * engine's apr_... */
		if (strncmp(id, "apr_mcp_", 8) == 0 && p->mcp)
			(void)run_mcp_decide(p->mcp, id, json_is_true(ap), by, &err);
		else if (p->engine)
			(void)egress_engine_decide(p->engine, id, json_is_true(ap), by, &err);
		break;
	}
	case NETMSG_CALL_DONE: {
		const char *id = json_string_value(json_object_get(j, "id"));
		json_t *res = json_object_get(j, "result");
		if (!id || !json_is_boolean(json_object_get(j, "is_error")) ||
		    (res && !json_is_object(res)))
			fatal(p, "CALL_DONE: a malformed answer");
		_cleanup_free_ char *rt = res ? json_dumps(res, JSON_COMPACT) : NULL;
		if (p->mcp)
			run_mcp_call_done(p->mcp, id, json_is_true(json_object_get(j, "is_error")),
					  json_string_value(json_object_get(j, "text")), rt);
		break;
	}
	case NETMSG_STOP:
#ifdef CORDON_TEST_FAULTS
		/* Test builds only: the part sends a call as the run ends, as
		 * a compromised part could ("call-on-stop:AGENT"). */
		if (strncmp(p->fault, "call-on-stop:", 13) == 0)
			(void)send_call(p, "call_999", p->fault + 13, "{}", &err);
#endif
		p->stop = true;
		event_base_loopbreak(p->base);
		break;
	case NETMSG_POLICY: {
		struct egress_policy *pol = NULL;
		if (!p->engine)
			fatal(p, "POLICY without an egress engine");
		if (egress_policy_from_json(json_object_get(j, "policy"), &pol, &err) < 0)
			fatal(p, "POLICY: %s", err.msg);
		egress_engine_set_policy(p->engine, pol);
		break;
	}
	case NETMSG_CONFIG: /* only once, before the loop */
	case NETMSG_ARTIFACT_DONE: /* read where an artifact waits for it */
	case NETMSG_READY:
	case NETMSG_EVENT:
	case NETMSG_AUDIT:
	case NETMSG_STEP:
	case NETMSG_ARTIFACT:
	case NETMSG_FATAL:
	case NETMSG_CALL:
	default:
		fatal(p, "unexpected message type %d", (int)type);
	}
	json_decref(j);
}

static void on_end(void *ctx, const char *why)
{
	(void)why;
	struct part *p = ctx;
	p->stop = true;
	event_base_loopbreak(p->base);
}

/* --------------------------------------------------------------- set up */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int fd_of(const json_t *fds, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(fds, k));
	struct stat st;
	/* Only what the supervisor placed, and only sockets. */
	if (v < CHANNEL_FD + 1 || v > CHANNEL_FD + 4 || fstat((int)v, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return -1;
	return (int)v;
}

struct secrets {
	struct inspect_secret insp[INSPECT_MAX_SECRETS];
	size_t n_insp;
	struct egress_sealed sealed[NETPART_MAX_SECRETS];
	size_t n_sealed;
	struct egress_secret_scope scopes[NETPART_MAX_SECRETS * 16];
	uint8_t *values[NETPART_MAX_SECRETS];
	size_t lens[NETPART_MAX_SECRETS];
	size_t n, n_scopes;
};

static void secrets_wipe(struct secrets *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->values[i]) {
			sodium_memzero(s->values[i], s->lens[i]);
			free(s->values[i]);
		}
	}
}

static int load_secrets(struct part *p, const json_t *arr, struct secrets *s, struct cdn_err *err)
{
	(void)p;
	size_t i;
	json_t *sec;
	if (json_array_size(arr) > NETPART_MAX_SECRETS)
		return cdn_err_msg(err, E2BIG, "too many secrets");
	json_array_foreach(arr, i, sec)
	{
		const char *name = jstr(sec, "name");
		const char *b64 = jstr(sec, "value");
		if (!name || !b64)
			return cdn_err_msg(err, EINVAL, "a secret without a name or value");
		size_t cap = strlen(b64);
		s->values[s->n] = malloc(cap + 1);
		if (!s->values[s->n])
			return cdn_err_set(err, ENOMEM, "secrets");
		size_t len = 0;
		if (sodium_base642bin(s->values[s->n], cap + 1, b64, strlen(b64), NULL, &len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) < 0) {
			free(s->values[s->n]);
			s->values[s->n] = NULL;
			return cdn_err_msg(err, EINVAL, "secret %s: bad encoding", name);
		}
		s->lens[s->n] = len;
		/* What content inspection looks for: the value of a raw secret,
		 * the placeholder of a sealed one (the sandbox never had the
		 * value, so that is what it could try to send). */
		const char *ph = jstr(sec, "placeholder");
		const char *look = ph ? ph : (const char *)s->values[s->n];
		size_t look_len = ph ? strlen(ph) : len;
		/* A placeholder too short to tell from ordinary bytes is not
		 * looked for: it is not the secret, so it may go anywhere. (A raw
		 * secret that short never gets here: the run is refused.) */
		if (ph && look_len < INSPECT_MIN_SECRET_LEN)
			look_len = 0;
		size_t chunk = look_len ? inspect_chunk_len(look_len) : 1;
		if (chunk == 0)
			return cdn_err_msg(err, E2BIG, "secret %s is too long to inspect", name);
		/* A long one is looked for by its chunks (inspect.h); the last
		 * takes what is left. */
		for (size_t off = 0; off < look_len;) {
			size_t n = look_len - off < 2 * chunk ? look_len - off : chunk;
			if (s->n_insp >= INSPECT_MAX_SECRETS)
				return cdn_err_msg(err, E2BIG, "too many secrets to inspect");
			s->insp[s->n_insp++] = (struct inspect_secret){ .name = name,
									.value = look + off,
									.len = n };
			off += n;
		}
		if (ph) {
			json_t *in = json_object_get(sec, "in");
			if (in && (!json_is_integer(in) || json_integer_value(in) < 0 ||
				   json_integer_value(in) > 7))
				return cdn_err_msg(err, EINVAL, "secret %s: bad \"in\"", name);
			s->sealed[s->n_sealed++] = (struct egress_sealed){
				.name = name, .placeholder = ph, .value = s->values[s->n], .len = len,
				.in = in ? (unsigned)json_integer_value(in) : 0
			};
		}
		size_t k;
		json_t *d;
		json_array_foreach(json_object_get(sec, "domains"), k, d)
		{
			if (!json_is_string(d) || s->n_scopes >= CDN_ARRAY_SIZE(s->scopes))
				return cdn_err_msg(err, EINVAL, "secret %s: bad scopes", name);
			s->scopes[s->n_scopes++] = (struct egress_secret_scope){
				.secret = name, .domain = json_string_value(d)
			};
		}
		s->n++;
	}
	return 0;
}

static int build_engine(struct part *p, const json_t *conf, const json_t *eg, struct cdn_err *err)
{
	struct egress_policy *pol = NULL;
	int r = egress_policy_from_json(json_object_get(eg, "policy"), &pol, err);
	if (r < 0)
		return r;
	struct egress_ca *ca = NULL;
	json_t *caj = json_object_get(eg, "ca");
	if (caj && !json_is_null(caj)) {
		r = egress_ca_load(jstr(caj, "cert"), jstr(caj, "key"), &ca, err);
		if (jstr(caj, "key"))
			sodium_memzero((char *)jstr(caj, "key"), strlen(jstr(caj, "key")));
		if (r < 0) {
			egress_policy_free(pol);
			return r;
		}
	}
	struct secrets *s = calloc(1, sizeof(*s));
	if (!s) {
		egress_policy_free(pol);
		egress_ca_free(ca);
		return cdn_err_set(err, ENOMEM, "secrets");
	}
	r = load_secrets(p, json_object_get(eg, "secrets"), s, err);
	if (r == 0) {
		struct egress_engine_config ec = {
			.run_id = jstr(conf, "run_id"),
			.policy = pol,
			.secrets = s->insp,
			.n_secrets = s->n_insp,
			.scopes = s->scopes,
			.n_scopes = s->n_scopes,
			.sealed = s->sealed,
			.n_sealed = s->n_sealed,
			.hosts_file = jstr(eg, "hosts_file"),
			.upstream_ca_file = jstr(eg, "upstream_ca"),
			.ca = ca,
			.on_event = send_event,
			.on_audit = json_is_true(json_object_get(conf, "audit")) ? send_audit : NULL,
			.ctx = p,
		};
		r = egress_engine_new(p->base, &ec, &p->engine, err); /* owns pol and ca */
	} else {
		egress_policy_free(pol);
		egress_ca_free(ca);
	}
	secrets_wipe(s);
	free(s);
	return r;
}

static int build_mcp(struct part *p, const json_t *conf, const json_t *m, struct cdn_err *err)
{
	json_t *toks = json_object_get(m, "tokens");
	struct run_mcp_config mc = {
		.run_id = jstr(conf, "run_id"),
		.input_json = jstr(m, "input"),
		.token_ttl_ms = (uint64_t)json_integer_value(json_object_get(m, "token_ttl_ms")),
		.approval_timeout_ms =
			(uint64_t)json_integer_value(json_object_get(m, "approval_timeout_ms")),
		.has_setup = json_is_true(json_object_get(m, "has_setup")),
		.calls = json_is_true(json_object_get(m, "calls")),
		.tokens = { json_string_value(json_array_get(toks, 0)),
			    json_string_value(json_array_get(toks, 1)) },
	};
	struct run_mcp_hooks mh = { .ctx = p,
				    .step = send_step,
				    .event = send_event,
				    .artifact = send_artifact,
				    .call = send_call };
	int r = run_mcp_new(p->base, &mc, &mh, &p->mcp, err);
	size_t i;
	json_t *t;
	json_array_foreach(toks, i, t)
		if (json_is_string(t))
			sodium_memzero((char *)json_string_value(t), json_string_length(t));
	return r;
}

/* CapEff of this process, as /proc/PID/status shows it. */
static void caps_hex(char *out, size_t cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &hdr, d) < 0) {
		snprintf(out, cap, "?");
		return;
	}
	snprintf(out, cap, "%08x%08x", d[1].effective, d[0].effective);
}

static int netpart_main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct part p = { 0 };
	struct cdn_err err = { 0 };
	if (sodium_init() < 0) {
		fprintf(stderr, "cordon: network part: libsodium\n");
		return 70;
	}
	p.base = event_base_new();
	if (!p.base) {
		fprintf(stderr, "cordon: network part: event loop\n");
		return 70;
	}
	struct netchan_hooks ch = { .ctx = &p, .on_frame = on_frame, .on_end = on_end };
	if (netchan_new(p.base, CHANNEL_FD, NETMSG_MAX, &ch, &p.chan, &err) < 0) {
		fprintf(stderr, "cordon: network part: %s\n", err.msg);
		return 70;
	}
	_cleanup_free_ uint8_t *raw = NULL;
	size_t rlen = 0;
	if (netchan_wait(p.chan, NETMSG_CONFIG, NETPART_READY_TIMEOUT_MS, &raw, &rlen, &err) < 0)
		fatal(&p, "no configuration: %s", err.msg);
	json_t *conf = netmsg_json(raw, rlen, &err);
	sodium_memzero(raw, rlen);
	if (!conf)
		fatal(&p, "configuration: %s", err.msg);
	p.all_events = json_is_true(json_object_get(conf, "events"));
	if (jstr(conf, "fault"))
		snprintf(p.fault, sizeof(p.fault), "%s", jstr(conf, "fault"));
	json_t *fds = json_object_get(conf, "fds");
	json_t *eg = json_object_get(conf, "egress");
	json_t *m = json_object_get(conf, "mcp");
	if (!jstr(conf, "run_id"))
		fatal(&p, "configuration: no run id");

	/* 1. Everything that needs a file. */
	if (eg && !json_is_null(eg) && build_engine(&p, conf, eg, &err) < 0)
		fatal(&p, "egress: %s", err.msg);
	if (m && !json_is_null(m) && build_mcp(&p, conf, m, &err) < 0)
		fatal(&p, "MCP: %s", err.msg);

	/* 2. Confined, before reading a byte the sandbox sent. */
	json_t *uid = json_object_get(conf, "uid"), *gid = json_object_get(conf, "gid");
	if (geteuid() == 0 && (!json_is_integer(uid) || !json_is_integer(gid) ||
			       json_integer_value(uid) <= 0 || json_integer_value(gid) <= 0))
		fatal(&p, "configuration: no unprivileged ids to run as");
	struct sandbox_confinement conf_out;
	if (sandbox_confine_helper((uid_t)json_integer_value(uid), (gid_t)json_integer_value(gid),
				   (unsigned)json_integer_value(json_object_get(conf, "allow_degraded")),
				   &conf_out, &err) < 0)
		fatal(&p, "%s", err.msg);

	/* 3. Serve. */
	if (p.engine && egress_engine_attach(p.engine, fd_of(fds, "proxy"), fd_of(fds, "dns_udp"),
					     fd_of(fds, "dns_tcp"), &err) < 0)
		fatal(&p, "egress: %s", err.msg);
	int mfd = fd_of(fds, "mcp");
	if (p.mcp && mfd >= 0 && run_mcp_attach(p.mcp, mfd, &err) < 0)
		fatal(&p, "MCP: %s", err.msg);
	json_decref(conf);

	char caps[24];
	caps_hex(caps, sizeof(caps));
	json_t *ready = json_pack("{s:i, s:i, s:i, s:b, s:b, s:i, s:s}", "pid", (int)getpid(), "uid",
				  (int)conf_out.uid, "gid", (int)conf_out.gid, "no_new_privs",
				  conf_out.no_new_privs, "seccomp", conf_out.seccomp,
				  "landlock_abi", conf_out.landlock_abi, "caps", caps);
	if (!ready || netchan_send_json(p.chan, NETMSG_READY, ready) < 0)
		fatal(&p, "cannot report ready");
	json_decref(ready);

	while (!p.stop)
		if (event_base_loop(p.base, EVLOOP_ONCE) < 0)
			break;
	/* The run is over: close every connection (waiting approvals are
	 * denied and audited), say the last things, go. */
	run_mcp_free(p.mcp);
	egress_engine_free(p.engine);
	netchan_flush(p.chan, NETPART_EXIT_WAIT_MS / 2);
	/* _exit: no atexit work in a process that may no longer open files. */
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
#ifdef CORDON_TEST_FAULTS
		printf("cordon-net %s (test faults)\n", CORDON_VERSION);
#else
		printf("cordon-net %s\n", CORDON_VERSION);
#endif
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "cordon-net: the network part of a run; cordon starts it\n");
		return 2;
	}
	return netpart_main();
}
