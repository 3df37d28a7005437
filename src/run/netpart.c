/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's side of a run's network part (see netpart.h). */
#define _GNU_SOURCE
#include "run/netpart.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/exe.h"
#include "egress/engine.h"
#include "egress/tls.h"
#include "run/control.h"
#include "run/netchan.h"
#include "run/netmsg.h"
#include "sandbox/sandbox.h"
#include "config.h"

#define FIRST_FD 3 /* the channel; the listeners follow in the child */

struct netpart {
	struct event_base *base;
	struct netpart_hooks hooks;
	struct netchan *chan;
	struct control_server *ctl;
	pid_t pid;
	struct netpart_info info;
	char **inspected; /* the CA's names, for refusing policies it cannot serve */
	size_t n_inspected;
	bool gone;	    /* the channel ended */
	bool stopping;	    /* netpart_free asked it to stop: its end is no news */
	char fatal[256];    /* what the part said before it stopped */
	char why_gone[320];
};

/* ------------------------------------------------------------------ death */

static void describe_exit(int status, char *out, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, cap, "stopped");
}

/* Reaps the part, waiting up to ms, then SIGKILL. */
static void reap(struct netpart *np, int ms, char *how, size_t cap)
{
	snprintf(how, cap, "is gone");
	if (np->pid <= 0)
		return;
	int status = 0;
	pid_t r = 0;
	for (int waited = 0; (r = waitpid(np->pid, &status, WNOHANG)) == 0 && waited < ms;
	     waited += 5) {
		struct timespec ts = { 0, 5 * 1000000 };
		nanosleep(&ts, NULL);
	}
	if (r == 0) {
		kill(np->pid, SIGKILL);
		r = waitpid(np->pid, &status, 0);
	}
	if (r == np->pid)
		describe_exit(status, how, cap);
	np->pid = -1;
}

static void gone(struct netpart *np, const char *why)
{
	if (np->gone)
		return;
	np->gone = true;
	/* Whatever it was doing, it does no more: a part that broke the
	 * channel's rules is not trusted to stop by itself. */
	if (np->pid > 0)
		kill(np->pid, SIGKILL);
	char how[128];
	reap(np, 0, how, sizeof(how));
	/* A clean close of the channel says nothing more than how it ended. */
	bool say_why = why && strcmp(why, "the other side closed the channel") != 0;
	snprintf(np->why_gone, sizeof(np->why_gone), "the network part %s%s%s%s%s%s", how,
		 np->fatal[0] ? ": " : "", np->fatal, say_why ? " (" : "", say_why ? why : "",
		 say_why ? ")" : "");
	if (np->hooks.died)
		np->hooks.died(np->hooks.ctx, np->why_gone);
}

/* ---------------------------------------------------------------- frames */

static void on_frame(void *ctx, enum netmsg_type type, const uint8_t *p, size_t len)
{
	struct netpart *np = ctx;
	struct netmsg_up m;
	struct cdn_err err = { 0 };
	if (netmsg_decode_up(type, p, len, &m, &err) < 0) {
		netmsg_up_clear(&m);
		netchan_free(np->chan);
		np->chan = NULL;
		gone(np, err.msg);
		return;
	}
	switch (m.type) {
	case NETMSG_READY:
		np->info.ready = true;
		np->info.uid = (uid_t)json_integer_value(json_object_get(m.json, "uid"));
		np->info.gid = (gid_t)json_integer_value(json_object_get(m.json, "gid"));
		np->info.no_new_privs = json_is_true(json_object_get(m.json, "no_new_privs"));
		np->info.seccomp = json_is_true(json_object_get(m.json, "seccomp"));
		np->info.landlock_abi = (int)json_integer_value(json_object_get(m.json, "landlock_abi"));
		snprintf(np->info.caps, sizeof(np->info.caps), "%s",
			 json_string_value(json_object_get(m.json, "caps")));
		break;
	case NETMSG_EVENT:
		/* The control socket lists what waits for a human. */
		if (strcmp(m.event, "approval.requested") == 0)
			control_approval_add(np->ctl, m.json);
		else if (strcmp(m.event, "approval.decided") == 0)
			control_approval_remove(np->ctl,
						json_string_value(json_object_get(m.json, "approval_id")));
		if (np->hooks.event)
			np->hooks.event(np->hooks.ctx, m.event, m.json);
		break;
	case NETMSG_AUDIT:
		if (np->hooks.audit)
			np->hooks.audit(np->hooks.ctx, m.json);
		break;
	case NETMSG_STEP:
		if (np->hooks.step)
			np->hooks.step(np->hooks.ctx, m.json);
		break;
	case NETMSG_ARTIFACT: {
		struct cdn_err aerr = { 0 };
		int r = np->hooks.artifact ? np->hooks.artifact(np->hooks.ctx, m.name, m.data,
							       m.data_len, &aerr)
					   : cdn_err_msg(&aerr, ENOTSUP, "artifacts are not kept here");
		json_t *done = json_pack("{s:I, s:b}", "seq", (json_int_t)m.seq, "ok", r == 0);
		if (done && r < 0)
			json_object_set_new(done, "error", json_string(aerr.msg));
		if (done && np->chan)
			(void)netchan_send_json(np->chan, NETMSG_ARTIFACT_DONE, done);
		json_decref(done);
		break;
	}
	case NETMSG_CALL:
		/* The run is ending (netpart_free drains the part's last
		 * frames): a call now would start a child after its caller's
		 * calls were cancelled, one nobody waits for. A part that sends
		 * one is broken or compromised; it gets a refusal. */
		if (np->stopping)
			(void)netpart_call_done(np, m.call_id, true,
						"call_agent: refused: this run is ending", NULL);
		else if (np->hooks.call)
			np->hooks.call(np->hooks.ctx, m.call_id, m.callee,
				       json_object_get(m.json, "input"));
		else
			(void)netpart_call_done(np, m.call_id, true,
						"call_agent: this run cannot call agents", NULL);
		break;
	case NETMSG_CONFIG:
	case NETMSG_PHASE_END:
	case NETMSG_DECIDE:
	case NETMSG_POLICY:
	case NETMSG_ARTIFACT_DONE:
	case NETMSG_STOP:
	case NETMSG_CALL_DONE:
		break; /* never decoded: netmsg_decode_up refuses them */
	case NETMSG_FATAL:
		snprintf(np->fatal, sizeof(np->fatal), "%s",
			 json_string_value(json_object_get(m.json, "error")));
		break;
	default:
		break;
	}
	netmsg_up_clear(&m);
}

static void on_end(void *ctx, const char *why)
{
	struct netpart *np = ctx;
	if (np->stopping) {
		np->gone = true;
		return;
	}
	gone(np, why);
}

static int on_decide(void *ctx, const char *id, bool approve, const char *by, struct cdn_err *err)
{
	struct netpart *np = ctx;
	if (!np->chan || np->gone)
		return cdn_err_msg(err, EPIPE, "the run's network part is gone");
	json_t *d = json_pack("{s:s, s:b, s:s}", "id", id, "approve", approve, "by",
			      by && *by ? by : "operator");
	int r = d ? netchan_send_json(np->chan, NETMSG_DECIDE, d) : -ENOMEM;
	json_decref(d);
	return r < 0 ? cdn_err_msg(err, -r, "the run's network part is gone") : 0;
}

int netpart_call_done(struct netpart *np, const char *id, bool is_error, const char *text,
		      const json_t *result)
{
	if (!np || !np->chan || np->gone)
		return -EPIPE;
	json_t *d = json_pack("{s:s, s:b, s:s}", "id", id, "is_error", is_error, "text",
			      text ? text : "");
	if (d && result)
		json_object_set_new(d, "result", json_deep_copy(result));
	int r = d ? netchan_send_json(np->chan, NETMSG_CALL_DONE, d) : -ENOMEM;
	json_decref(d);
	return r;
}

static int on_cancel(void *ctx, const char *by, struct cdn_err *err)
{
	struct netpart *np = ctx;
	if (!np->hooks.cancel)
		return cdn_err_msg(err, ENOTSUP, "this run cannot be cancelled");
	return np->hooks.cancel(np->hooks.ctx, by, err);
}

/* ---------------------------------------------------------------- config */

/* Strings in j that held secret bytes are wiped before j goes. */
static void wipe_string(json_t *s)
{
	if (json_is_string(s))
		sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

static json_t *secret_json(const struct netpart_secret *sec)
{
	size_t cap = sodium_base64_ENCODED_LEN(sec->len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(cap);
	if (!b64)
		return NULL;
	sodium_bin2base64(b64, cap, sec->value, sec->len, sodium_base64_VARIANT_ORIGINAL);
	json_t *doms = json_array();
	for (size_t i = 0; doms && i < sec->n_domains; i++)
		json_array_append_new(doms, json_string(sec->domains[i]));
	json_t *j = json_pack("{s:s, s:s, s:o}", "name", sec->name, "value", b64, "domains",
			      doms ? doms : json_null());
	sodium_memzero(b64, cap);
	free(b64);
	if (j && sec->placeholder) {
		json_object_set_new(j, "placeholder", json_string(sec->placeholder));
		json_object_set_new(j, "in", json_integer(sec->seal_in & 7u));
	}
	return j;
}

static json_t *config_nomem(struct cdn_err *err)
{
	cdn_err_set(err, ENOMEM, "network part: configuration");
	return NULL;
}

static json_t *config_json(const struct netpart_config *cfg, const int fds[4], uid_t uid,
			   gid_t gid, bool set_ids, struct cdn_err *err)
{
	json_t *fdj = json_pack("{s:i, s:i, s:i, s:i}", "proxy", fds[0], "dns_udp", fds[1], "dns_tcp",
				fds[2], "mcp", fds[3]);
	json_auto_t *j =
	    json_pack("{s:s, s:o, s:I, s:b, s:b}", "run_id", cfg->run_id, "fds",
		      fdj ? fdj : json_null(), "allow_degraded", (json_int_t)cfg->allow_degraded,
		      "audit", cfg->want_audit, "events", cfg->want_events);
	if (!j)
		return config_nomem(err);
	if (set_ids) {
		json_object_set_new(j, "uid", json_integer(uid));
		json_object_set_new(j, "gid", json_integer(gid));
	}
	if (cfg->policy) {
		json_t *eg = json_object();
		json_t *pol = egress_policy_to_json(cfg->policy);
		json_t *secs = json_array();
		if (!eg || !pol || !secs) {
			json_decref(eg);
			json_decref(pol);
			json_decref(secs);
			return config_nomem(err);
		}
		json_object_set_new(j, "egress", eg);
		json_object_set_new(eg, "policy", pol);
		json_object_set_new(eg, "secrets", secs);
		for (size_t i = 0; i < cfg->n_secrets; i++) {
			json_t *s = secret_json(&cfg->secrets[i]);
			if (!s || json_array_append_new(secs, s) < 0)
				return config_nomem(err);
		}
		if (cfg->hosts_file)
			json_object_set_new(eg, "hosts_file", json_string(cfg->hosts_file));
		if (cfg->upstream_ca_file)
			json_object_set_new(eg, "upstream_ca", json_string(cfg->upstream_ca_file));
		if (cfg->ca) {
			char *key = NULL;
			if (egress_ca_key_pem(cfg->ca, &key, err) < 0)
				return NULL;
			json_t *ca = json_pack("{s:s, s:s}", "cert", egress_ca_pem(cfg->ca), "key", key);
			sodium_memzero(key, strlen(key));
			free(key);
			if (!ca)
				return config_nomem(err);
			json_object_set_new(eg, "ca", ca);
		}
	}
	if (cfg->mcp_fd >= 0) {
		json_t *toks = json_array();
		for (int i = 0; toks && i < (cfg->has_setup ? 2 : 1); i++)
			json_array_append_new(toks, json_string(cfg->tokens[i] ? cfg->tokens[i] : ""));
		json_t *m = json_pack("{s:s, s:I, s:I, s:b, s:b, s:o}", "input",
				      cfg->input_json ? cfg->input_json : "{}", "token_ttl_ms",
				      (json_int_t)cfg->token_ttl_ms, "approval_timeout_ms",
				      (json_int_t)cfg->approval_timeout_ms, "has_setup", cfg->has_setup,
				      "calls", cfg->calls, "tokens", toks ? toks : json_null());
		if (!m)
			return config_nomem(err);
		json_object_set_new(j, "mcp", m);
	}
#ifdef CORDON_TEST_FAULTS
	/* Test builds only: a switch that makes the part crash on purpose,
	 * for the test that shows a crash fails closed. */
	const char *fault = getenv("CORDON_TEST_NETPART_FAULT");
	if (fault && *fault)
		json_object_set_new(j, "fault", json_string(fault));
#endif
	return cdn_steal(&j);
}

/* Wipes every secret value, key and token in the configuration. */
static void config_wipe(json_t *j)
{
	json_t *eg = json_object_get(j, "egress");
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(eg, "secrets"), i, s)
		wipe_string(json_object_get(s, "value"));
	wipe_string(json_object_get(json_object_get(eg, "ca"), "key"));
	json_array_foreach(json_object_get(json_object_get(j, "mcp"), "tokens"), i, s)
		wipe_string(s);
}

static void conf_freep(json_t **j)
{
	if (*j) {
		config_wipe(*j);
		json_decref(*j);
	}
}

static void text_wipe_freep(char **t)
{
	if (*t) {
		sodium_memzero(*t, strlen(*t));
		free(*t);
	}
}

/* A part that failed to start: its end is not a death to report. */
static void np_freep(struct netpart **np)
{
	if (*np) {
		(*np)->hooks.died = NULL;
		netpart_free(*np);
	}
}

/* ----------------------------------------------------------------- start */

static void close_fds(const struct netpart_config *cfg)
{
	int fds[4] = { cfg->proxy_fd, cfg->dns_udp_fd, cfg->dns_tcp_fd, cfg->mcp_fd };
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int netpart_start(struct event_base *base, const struct netpart_config *cfg,
		  const struct netpart_hooks *hooks, struct netpart **out, struct cdn_err *err)
{
	*out = NULL;
	int given[4] = { cfg->proxy_fd, cfg->dns_udp_fd, cfg->dns_tcp_fd, cfg->mcp_fd };
	int child_fd[4] = { -1, -1, -1, -1 };
	int next = FIRST_FD + 1;
	for (int i = 0; i < 4; i++)
		if (given[i] >= 0)
			child_fd[i] = next++;

	char exe[4096];
	if (cdn_sibling_exe("cordon-net", exe, sizeof(exe)) < 0) {
		close_fds(cfg);
		return cdn_err_msg(err, ENOENT,
				   "cannot find cordon-net, the run's network part (looked next "
				   "to this binary, in %s relative to it, and as %s)",
				   CORDON_LIBEXEC_FROM_BIN, exe);
	}
	uid_t uid = 0;
	gid_t gid = 0;
	bool root = geteuid() == 0;
	int r;
	if (root && (r = sandbox_helper_ids(getpid(), &uid, &gid, err)) < 0) {
		close_fds(cfg);
		return r;
	}
	_cleanup_(np_freep) struct netpart *np = calloc(1, sizeof(*np));
	if (!np) {
		close_fds(cfg);
		return cdn_err_set(err, ENOMEM, "network part");
	}
	np->base = base;
	np->hooks = *hooks;
	np->pid = -1;
	if (cfg->policy) {
		size_t n = 0;
		const char **names = egress_inspected_names(cfg->policy, &n);
		bool oom = !names && n > 0;
		np->inspected = calloc(n + 1, sizeof(char *));
		oom |= !np->inspected;
		/* Packed: the list is read up to n_inspected, so it has no holes. */
		for (size_t i = 0; !oom && i < n; i++)
			if (!(oom = !(np->inspected[np->n_inspected] = strdup(names[i]))))
				np->n_inspected++;
		free(names);
		if (oom) {
			close_fds(cfg);
			return cdn_err_set(err, ENOMEM, "network part"); /* np_freep frees it */
		}
	}

	_cleanup_(conf_freep) json_t *conf = config_json(cfg, child_fd, uid, gid, root, err);
	if (!conf) {
		close_fds(cfg);
		return -ENOMEM;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = cdn_err_set(err, errno, "network part: socketpair");
		close_fds(cfg);
		return r;
	}
	/* Everything the child keeps, above the numbers it will get, so that
	 * moving them into place cannot clobber one with another. */
	int high[5] = { -1, -1, -1, -1, -1 };
	high[0] = fcntl(sv[1], F_DUPFD_CLOEXEC, 64);
	for (int i = 0; i < 4; i++)
		if (given[i] >= 0)
			high[i + 1] = fcntl(given[i], F_DUPFD_CLOEXEC, 64);
	close(sv[1]);
	char *const argv[] = { exe, NULL };
	char *const envp[] = { NULL };
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		/* Async-signal-safe only, from here to execve. */
		if (dup2(high[0], FIRST_FD) < 0)
			_exit(127);
		for (int i = 0; i < 4; i++)
			if (high[i + 1] >= 0 && dup2(high[i + 1], child_fd[i]) < 0)
				_exit(127);
		syscall(SYS_close_range, (unsigned)next, ~0u, 0u);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			if (nul > 2)
				close(nul);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		execve(exe, argv, envp);
		_exit(127);
	}
	int fork_errno = errno;
	for (int i = 0; i < 5; i++)
		if (high[i] >= 0)
			close(high[i]);
	/* The part now holds the only copies of the sandbox's sockets. */
	close_fds(cfg);
	if (pid < 0) {
		close(sv[0]);
		return cdn_err_set(err, fork_errno, "network part: fork");
	}
	np->pid = pid;
	np->info.pid = pid;
	struct netchan_hooks ch = { .ctx = np, .on_frame = on_frame, .on_end = on_end };
	if ((r = netchan_new(base, sv[0], NETMSG_MAX_UP, &ch, &np->chan, err)) < 0)
		return r;
	{
		_cleanup_(text_wipe_freep) char *text = json_dumps(conf, JSON_COMPACT);
		if (!text)
			return cdn_err_set(err, ENOMEM, "network part: configuration");
		r = netchan_send(np->chan, NETMSG_CONFIG, text, strlen(text));
	}
	if (r < 0)
		return cdn_err_set(err, -r, "network part: configuration");
	struct control_hooks chk = { .ctx = np, .decide = on_decide, .cancel = on_cancel };
	if ((r = control_server_new(base, cfg->run_id, &chk, &np->ctl, err)) < 0)
		return r;
	*out = cdn_steal(&np);
	return 0;
}

const struct netpart_info *netpart_info(const struct netpart *np)
{
	return &np->info;
}

int netpart_wait_ready(struct netpart *np, struct cdn_err *err)
{
	uint64_t t0 = cdn_mono_ms();
	while (!np->info.ready && !np->gone) {
		if (cdn_mono_ms() - t0 > NETPART_READY_TIMEOUT_MS) {
			netchan_free(np->chan);
			np->chan = NULL;
			gone(np, "it did not get ready in time");
			break;
		}
		struct timeval tv = { 0, 50000 };
		event_base_loopexit(np->base, &tv);
		event_base_loop(np->base, EVLOOP_ONCE);
	}
	if (!np->info.ready)
		return cdn_err_msg(err, ECHILD, "%s",
				   np->why_gone[0] ? np->why_gone : "the network part did not start");
	return 0;
}

void netpart_phase_ended(struct netpart *np, int phase)
{
	if (!np || !np->chan)
		return;
	json_t *j = json_pack("{s:i}", "phase", phase);
	if (j)
		(void)netchan_send_json(np->chan, NETMSG_PHASE_END, j);
	json_decref(j);
}

json_t *netpart_control(struct netpart *np, const json_t *req)
{
	if (!np || !np->ctl)
		return json_pack("{s:b, s:s}", "ok", 0, "error", "the run is ending");
	return control_apply(np->ctl, req);
}

int netpart_set_policy(struct netpart *np, const struct egress_policy *p, struct cdn_err *err)
{
	if (!np->chan)
		return cdn_err_msg(err, EPIPE, "the run's network part is gone");
	size_t n = 0;
	const char **names = egress_inspected_names(p, &n);
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < np->n_inspected && !known; k++)
			known = strcmp(np->inspected[k], names[i]) == 0;
		if (!known) {
			int r = cdn_err_msg(err, EINVAL,
					    "the new policy inspects %s, which this run's CA was not "
					    "made for: restart to inspect new names",
					    names[i]);
			free(names);
			return r;
		}
	}
	free(names);
	json_t *pol = egress_policy_to_json(p);
	json_t *j = pol ? json_pack("{s:o}", "policy", pol) : NULL;
	int r = j ? netchan_send_json(np->chan, NETMSG_POLICY, j) : -ENOMEM;
	json_decref(j);
	return r < 0 ? cdn_err_set(err, -r, "policy reload") : 0;
}

void netpart_free(struct netpart *np)
{
	if (!np)
		return;
	if (np->chan && !np->gone) {
		/* Ask it to stop, and hear its last lines until it closes the
		 * channel (or the wait is over). */
		np->stopping = true;
		if (netchan_send(np->chan, NETMSG_STOP, "{}", 2) == 0) {
			uint64_t t0 = cdn_mono_ms();
			for (;;) {
				if (np->gone || cdn_mono_ms() - t0 >= NETPART_EXIT_WAIT_MS)
					break;
				struct timeval tv = { 0, 20000 };
				event_base_loopexit(np->base, &tv);
				event_base_loop(np->base, EVLOOP_ONCE);
			}
		}
	}
	netchan_free(np->chan);
	control_server_free(np->ctl);
	char how[128];
	reap(np, NETPART_EXIT_WAIT_MS, how, sizeof(how));
	for (size_t i = 0; i < np->n_inspected; i++)
		free(np->inspected[i]);
	free(np->inspected);
	free(np);
}
