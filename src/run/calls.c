/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent-to-agent calls, the supervisor's side (docs/mcp.md, "Calling
 * another agent").
 *
 * The agent asks through its MCP endpoint (call_agent), which its
 * network part, unprivileged, hands on as a bounded CALL message. Here,
 * in the supervisor, every decision is made on trusted facts only:
 *
 *  - the callee is declared in the caller's manifest ("calls") and the
 *    operator granted it (cordon grant AGENT --call CALLEE);
 *  - the chain of callers, read from the store by following the records'
 *    `caller: "run:ID"` links (never from anything the agent says), is
 *    shorter than the depth limit and does not hold the callee (a cycle);
 *  - the callee resolves to a registered version and hash;
 *  - the tree's call budget is not spent: --max-calls counts the calls
 *    of the first run and of every run below it together (calltree.c).
 *
 * The child is then a run of its own: a record made here (status
 * created, caller run:PARENT, its input), claimed by a `cordon run
 * --claim ID` process started from this very binary with the same state
 * and operator options, which builds its own sandbox with its own
 * manifest's secrets and egress. Its deadline is this run's: it can never
 * outlive its caller. When this run ends (or is cancelled), every child
 * still running is cancelled through its control socket, which cascades
 * to its own children.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/exe.h"
#include "base/proc.h"
#include "base/random.h"
#include "base/text.h"
#include "run/control.h"
#include "run/netmsg.h"
#include "run/run_internal.h"

#define CALLS_CANCEL_WAIT_MS 10000 /* a cancelled child's time to end, then SIGKILL */
#define CALLS_MIN_LEFT_MS    1000  /* a call needs at least this much of the caller's time */
#define CALLS_MAX_ARGV	     (32 + 2 * 16)

struct run_child {
	struct run_ctx *c;
	char call_id[NETMSG_MAX_CALL_ID + 1];
	char run_id[STORE_RUN_ID_MAX + 1];
	char agent[STORE_MAX_NAME + 1];
	unsigned version;
	char hash[STORE_HASH_HEX + 1];
	pid_t pid;
	int pidfd;
	struct event *ev;
	struct run_child *next;
};

unsigned run_calls_max_depth(const struct run_options *o)
{
	return o->max_call_depth ? o->max_call_depth : RUN_DEFAULT_CALL_DEPTH;
}

unsigned run_calls_max_per_tree(const struct run_options *o)
{
	return o->max_calls ? o->max_calls : RUN_DEFAULT_MAX_CALLS;
}

/* ------------------------------------------------------------ answers */

static void answer(struct run_ctx *c, const char *call_id, bool is_error, const char *text,
		   const json_t *result)
{
	(void)netpart_call_done(c->net, call_id, is_error, text, result);
}

/* A refusal: an event in the run's record with the reason, and the
 * reason to the agent. agent is what the agent wrote: shown safely.
 * detail, when not NULL, is for the record only: what the store or the
 * host said (paths, the database's words) is none of the agent's. */
static int refuse_detail(struct run_ctx *c, const char *call_id, const char *agent,
			 const char *detail, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int refuse_detail(struct run_ctx *c, const char *call_id, const char *agent,
			 const char *detail, const char *fmt, ...)
{
	char why[512], shown[128], text[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	cdn_printable_str(shown, sizeof(shown), agent, CDN_TEXT_ELLIPSIS);
	/* An agent may ask again and again: refusals share the bound of the
	 * run's other MCP events (RUN_MAX_MCP_EVENTS), and the agent still
	 * gets its answer past it. */
	if (c->mcp_events++ < RUN_MAX_MCP_EVENTS) {
		json_t *d =
		    json_pack("{s:s, s:s, s:s}", "call_id", call_id, "agent", shown, "reason", why);
		if (d && detail)
			json_object_set_new(d, "detail", json_string(detail));
		run_emit(c, "call.refused", d);
		json_decref(d);
	}
	snprintf(text, sizeof(text), "call_agent: refused: %s", why);
	answer(c, call_id, true, text, NULL);
	return 0;
}

#define refuse(c, call_id, agent, ...) refuse_detail(c, call_id, agent, NULL, __VA_ARGS__)

/* ---------------------------------------------------------- the chain */

/* The agents of this run and of its callers, this run's first, from the
 * records' caller links: at most max + 1 of them, which is all a check
 * against max needs. Returns how many, or negative with err. */
static int call_chain(struct run_ctx *c, char (*chain)[STORE_MAX_NAME + 1], size_t max,
		      struct cdn_err *err)
{
	size_t n = 0;
	snprintf(chain[n++], STORE_MAX_NAME + 1, "%s", c->rec.agent);
	char caller[sizeof(c->rec.caller)];
	snprintf(caller, sizeof(caller), "%s", c->rec.caller);
	while (n <= max && strncmp(caller, "run:", 4) == 0) {
		struct store_run p;
		int r = store_run_get(c->s, caller + 4, &p, err);
		if (r < 0)
			return r;
		snprintf(chain[n++], STORE_MAX_NAME + 1, "%s", p.agent);
		snprintf(caller, sizeof(caller), "%s", p.caller);
		store_run_clear(&p);
	}
	return (int)n;
}

/* ---------------------------------------------------------- the child */

static void child_free(struct run_child *ch)
{
	struct run_child **pp = &ch->c->children_live;
	while (*pp && *pp != ch)
		pp = &(*pp)->next;
	if (*pp)
		*pp = ch->next;
	if (ch->ev)
		event_free(ch->ev);
	if (ch->pidfd >= 0)
		close(ch->pidfd);
	free(ch);
}

/* The child's entry in result.json's "children": what ran, by hash, and
 * how it ended (from its record). */
static json_t *child_entry(const struct run_child *ch, const struct store_run *rec)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:I, s:s}", "call_id", ch->call_id, "run_id", ch->run_id,
		      "agent", ch->agent, "version", (json_int_t)ch->version, "sha256", ch->hash);
	if (!j)
		return NULL;
	json_object_set_new(j, "status",
			    json_string(rec ? store_run_status_name(rec->status) : "error"));
	json_object_set_new(j, "exit_code", json_integer(rec ? rec->exit_code : -1));
	json_error_t je;
	json_t *res = rec && rec->result_json ? json_loads(rec->result_json, 0, &je) : NULL;
	/* What the child resolved besides its agent (capabilities, env) and
	 * its input, so the caller's evidence names every hash that ran. */
	json_t *resolved = json_object_get(res, "resolved");
	if (resolved)
		json_object_set(j, "resolved", resolved);
	json_t *ih = json_object_get(res, "input_sha256");
	if (ih)
		json_object_set(j, "input_sha256", ih);
	json_decref(res);
	return j;
}

/* The child ended: its record says how; the agent gets its output. */
static void child_ended(struct run_child *ch)
{
	struct run_ctx *c = ch->c;
	int status = 0;
	(void)waitpid(ch->pid, &status, 0);
	struct store_run rec;
	struct cdn_err err = {0};
	bool have = store_run_get(c->s, ch->run_id, &rec, &err) == 0;
	if (have && !store_run_status_final(rec.status)) {
		/* Its process ended without ending the run (it could not start,
		 * or was killed): the record says so now, not when crash
		 * recovery finds it. */
		free(rec.input_json);
		rec.input_json = NULL;
		rec.status = RUN_ERROR;
		rec.exit_code = 125;
		rec.finished_ms = cdn_wall_ms();
		if (!rec.started_ms)
			rec.started_ms = rec.finished_ms;
		if (WIFSIGNALED(status))
			snprintf(rec.error, sizeof(rec.error),
				 "its run process was killed by signal %d before the run finished",
				 WTERMSIG(status));
		else
			snprintf(rec.error, sizeof(rec.error),
				 "its run process exited with status %d before the run finished",
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		(void)store_run_update(c->s, &rec, NULL);
	}
	json_t *entry = child_entry(ch, have ? &rec : NULL);
	if (entry)
		json_array_append(c->children, entry);
	bool ok = have && rec.status == RUN_SUCCEEDED;
	json_t *result = json_pack("{s:s, s:s, s:I, s:s, s:i}", "run_id", ch->run_id, "agent",
				   ch->agent, "version", (json_int_t)ch->version, "status",
				   have ? store_run_status_name(rec.status) : "error", "exit_code",
				   have ? rec.exit_code : -1);
	json_error_t je;
	json_t *res = have && rec.result_json ? json_loads(rec.result_json, 0, &je) : NULL;
	json_t *output = json_object_get(res, "output");
	if (result)
		json_object_set(result, "output", output ? output : json_null());
	if (result && have && rec.error[0])
		json_object_set_new(result, "error", json_string(rec.error));
	/* The model reads the output itself when the call succeeded, else
	 * what went wrong. */
	_cleanup_free_ char *out_text = output ? json_dumps(output, JSON_COMPACT) : NULL;
	char text[512];
	if (!ok)
		snprintf(text, sizeof(text), "call_agent: run %s of %s ended %s%s%s", ch->run_id,
			 ch->agent, have ? store_run_status_name(rec.status) : "with an error",
			 have && rec.error[0] ? ": " : "", have ? rec.error : "");
	answer(c, ch->call_id, !ok, ok ? (out_text ? out_text : "null") : text, result);
	if (entry)
		run_emit(c, "call.finished", entry);
	json_decref(entry);
	json_decref(result);
	json_decref(res);
	if (have)
		store_run_clear(&rec);
	run_call_tree_done(c->s, c->call_tree);
	child_free(ch);
}

static void on_child_exit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	child_ended(arg);
}

/* `cordon run --claim ID` of the child, from this binary, with this run's
 * state and operator options, and this run's deadline. It dies with us:
 * a supervisor that is gone leaves no run of its behind. */
static int child_spawn(struct run_child *ch, char *why, size_t cap)
{
	struct run_ctx *c = ch->c;
	const struct run_options *o = c->o;
	char exe[4096], deadline[32], depth[16], calls[16], ref[STORE_MAX_NAME + 16];
	if (cdn_self_exe(exe, sizeof(exe)) < 0) {
		snprintf(why, cap, "cordon's own binary cannot be found");
		return -1;
	}
	snprintf(deadline, sizeof(deadline), "%lld", (long long)c->deadline_ms);
	snprintf(depth, sizeof(depth), "%u", run_calls_max_depth(o));
	snprintf(calls, sizeof(calls), "%u", run_calls_max_per_tree(o));
	snprintf(ref, sizeof(ref), "%s@%u", ch->agent, ch->version);
	const char *argv[CALLS_MAX_ARGV];
	size_t n = 0;
	argv[n++] = exe;
	argv[n++] = "run";
	argv[n++] = "--state";
	argv[n++] = store_dir(c->s);
	argv[n++] = "-w";
	argv[n++] = c->ws;
	argv[n++] = "--claim";
	argv[n++] = ch->run_id;
	argv[n++] = "-q";
	argv[n++] = "--deadline";
	argv[n++] = deadline;
	argv[n++] = "--max-call-depth";
	argv[n++] = depth;
	argv[n++] = "--max-calls";
	argv[n++] = calls;
	argv[n++] = "--call-tree";
	argv[n++] = c->call_tree;
	if (o->policy_path) {
		argv[n++] = "--policy";
		argv[n++] = o->policy_path;
	}
	if (o->hosts_file) {
		argv[n++] = "--hosts";
		argv[n++] = o->hosts_file;
	}
	if (o->upstream_ca) {
		argv[n++] = "--upstream-ca";
		argv[n++] = o->upstream_ca;
	}
	for (size_t i = 0; i < o->n_allow_private && i < 16; i++) {
		argv[n++] = "--allow-private";
		argv[n++] = o->allow_private[i];
	}
	argv[n++] = "--";
	argv[n++] = ref;
	argv[n] = NULL;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, cap, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls until execv. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(125);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
			_exit(125);
		/* Nothing of this run's goes with it: not the network part's
		 * channel, the sandbox's pidfd, the workspace or the store. */
		if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			_exit(125);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	ch->pid = pid;
	ch->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (ch->pidfd < 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		snprintf(why, cap, "pidfd_open: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ----------------------------------------------------------- the call */

/* Counts the call in its tree (calltree.c), the last check before the
 * child's record: 0 when it may start, else -1 with the refusal given. */
static int call_take(struct run_ctx *c, const char *call_id, const char *agent, unsigned *made)
{
	bool first = !c->o->call_tree;
	if (!c->call_tree[0]) {
		if (first)
			snprintf(c->call_tree, sizeof(c->call_tree), "calls.%d.%s", (int)getpid(),
				 c->rec.id);
		else
			snprintf(c->call_tree, sizeof(c->call_tree), "%s", c->o->call_tree);
	}
	struct run_call_tree_count n;
	enum call_tree_verdict v;
	struct cdn_err err = { 0 };
	bool create = first && !c->call_tree_made;
	if (run_call_tree_take(c->s, c->call_tree, create, run_calls_max_per_tree(c->o), &n, &v,
			       &err) < 0) {
		refuse_detail(c, call_id, agent, err.msg, "the tree's count of calls cannot be read");
		return -1;
	}
	c->call_tree_made = c->call_tree_made || create;
	if (v == CALL_TREE_SPENT) {
		refuse(c, call_id, agent,
		       "the budget of %u calls for this whole tree of calls is spent", n.budget);
		return -1;
	}
	if (v == CALL_TREE_BUSY) {
		refuse(c, call_id, agent,
		       "%u runs of this tree of calls are running, the most at once; try again "
		       "when one has ended",
		       n.running);
		return -1;
	}
	*made = n.made;
	return 0;
}

static int call_start(struct run_ctx *c, const char *call_id, const char *agent, json_t *input)
{
	const struct agent_manifest *m = c->agent.manifest;
	/* A frame that comes while the run ends (a network part that sends a
	 * CALL after STOP) would start a child nobody waits for or cancels. */
	if (c->calls_closed)
		return refuse(c, call_id, agent, "this run is ending");
	char name[MANIFEST_MAX_NAME + 1];
	unsigned version = 0;
	int r = manifest_call_find(m, agent, name, &version);
	if (r == -EINVAL)
		return refuse(
		    c, call_id, agent,
		    "\"agent\" must be NAME or NAME@VERSION, as agent.json's calls lists it");
	/* agent is NAME or NAME@VERSION from here on: safe to quote. */
	if (r < 0)
		return refuse(c, call_id, agent,
			      "%s does not declare a call of %s (agent.json's \"calls\")",
			      c->rec.agent, agent);
	if (!registry_call_granted(c->s, c->ws, c->rec.agent, name))
		return refuse(
		    c, call_id, agent,
		    "the operator has not granted %s a call of %s (cordon grant %s --call "
		    "%s)",
		    c->rec.agent, name, c->rec.agent, name);
	/* Depth and cycles, from the records. This run is at depth n - 1;
	 * its child would be at n. */
	unsigned max_depth = run_calls_max_depth(c->o);
	char(*chain)[STORE_MAX_NAME + 1] = calloc(max_depth + 2, sizeof(*chain));
	if (!chain)
		return refuse(c, call_id, agent, "out of memory");
	struct cdn_err err = {0};
	int n = call_chain(c, chain, max_depth, &err);
	if (n < 0) {
		free(chain);
		return refuse_detail(c, call_id, agent, err.msg,
				     "the chain of callers cannot be read");
	}
	char path[1024] = "";
	for (int i = n - 1; i >= 0; i--) {
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "%s%s", chain[i], i ? " -> " : "");
	}
	bool cycle = false;
	for (int i = 0; i < n; i++)
		cycle = cycle || strcmp(chain[i], name) == 0;
	free(chain);
	if (cycle)
		return refuse(c, call_id, agent, "a cycle: %s -> %s", path, name);
	if ((unsigned)n > max_depth)
		return refuse(c, call_id, agent,
			      "the call depth limit is %u (%s -> %s would be %d deep)", max_depth,
			      path, name, n);

	/* What will run, by version and hash. */
	struct store_item it = {0};
	r = store_item_get(c->s, STORE_AGENT, c->ws, name, version, &it, &err);
	if (r < 0)
		return r == -ENOENT ? refuse(c, call_id, agent, "agent %s%s%.0u is not registered",
					     name, version ? "@" : "", version)
				    : refuse_detail(c, call_id, agent, err.msg,
						    "the registry cannot be read");
	int64_t left = c->deadline_ms - cdn_wall_ms();
	if (left < CALLS_MIN_LEFT_MS) {
		store_item_clear(&it);
		return refuse(c, call_id, agent, "this run has less than %d ms left",
			      CALLS_MIN_LEFT_MS);
	}
	struct run_child *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		store_item_clear(&it);
		return refuse(c, call_id, agent, "out of memory");
	}
	ch->c = c;
	ch->pidfd = -1;
	snprintf(ch->call_id, sizeof(ch->call_id), "%s", call_id);
	snprintf(ch->agent, sizeof(ch->agent), "%s", name);
	ch->version = it.version;
	snprintf(ch->hash, sizeof(ch->hash), "%s", it.hash);
	store_item_clear(&it);

	/* The child's record, made by us: its caller is this run, which no
	 * agent can forge. A record with our pid as its supervisor is no
	 * worker's to take, and crash recovery leaves it while we live. */
	struct store_run rec = {.status = RUN_CREATED, .exit_code = -1, .attempt = 1};
	_cleanup_free_ char *in = json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS);
	char why[256] = "";
	if (!in || strlen(in) > RUN_MAX_INPUT) {
		free(ch);
		return refuse(c, call_id, agent, "the input is over %d bytes", RUN_MAX_INPUT);
	}
	/* This run's secrets stay with it: the child has egress of its own,
	 * where they are not scoped and nothing looks for them. */
	const char *found = c->red ? redact_find(c->red, in, strlen(in)) : NULL;
	if (found) {
		free(ch);
		return refuse(c, call_id, agent,
			      "the input holds a secret of this run (%s), which a called run must "
			      "not get",
			      found);
	}
	unsigned made = 0;
	if (call_take(c, call_id, agent, &made) < 0) {
		free(ch);
		return 0;
	}
	cdn_random_id("run_", 12, rec.id, sizeof(rec.id));
	snprintf(rec.workspace, sizeof(rec.workspace), "%s", c->ws);
	snprintf(rec.agent, sizeof(rec.agent), "%s", ch->agent);
	rec.agent_version = ch->version;
	snprintf(rec.agent_hash, sizeof(rec.agent_hash), "%s", ch->hash);
	snprintf(rec.caller, sizeof(rec.caller), "run:%s", c->rec.id);
	rec.created_ms = cdn_wall_ms();
	rec.supervisor_pid = (int)getpid();
	cdn_boot_id(rec.supervisor_boot, sizeof(rec.supervisor_boot), NULL);
	rec.input_json = in;
	if (store_run_create(c->s, &rec, &err) < 0) {
		free(ch);
		run_call_tree_done(c->s, c->call_tree);
		return refuse_detail(c, call_id, agent, err.msg, "the child's record cannot be made");
	}
	snprintf(ch->run_id, sizeof(ch->run_id), "%s", rec.id);
	if (child_spawn(ch, why, sizeof(why)) < 0 ||
	    !(ch->ev = event_new(c->base, ch->pidfd, EV_READ, on_child_exit, ch)) ||
	    event_add(ch->ev, NULL) < 0) {
		rec.input_json = NULL;
		rec.status = RUN_ERROR;
		rec.finished_ms = cdn_wall_ms();
		snprintf(rec.error, sizeof(rec.error), "its caller could not start it: %s",
			 why[0] ? why : "out of memory");
		(void)store_run_update(c->s, &rec, NULL);
		if (ch->pid > 0) {
			kill(ch->pid, SIGKILL);
			(void)waitpid(ch->pid, NULL, 0);
		}
		if (ch->ev)
			event_free(ch->ev);
		if (ch->pidfd >= 0)
			close(ch->pidfd);
		free(ch);
		run_call_tree_done(c->s, c->call_tree);
		return refuse(c, call_id, agent, "%s", rec.error);
	}
	ch->next = c->children_live;
	c->children_live = ch;
	json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:i, s:i}", "call_id", call_id, "run_id",
			      ch->run_id, "agent", ch->agent, "version", (json_int_t)ch->version,
			      "sha256", ch->hash, "depth", n, "tree_calls", (int)made);
	run_emit(c, "call.started", d);
	json_decref(d);
	return 0;
}

void run_call_start(void *ctx, const char *call_id, const char *agent, json_t *input)
{
	(void)call_start(ctx, call_id, agent, input);
}

/* ------------------------------------------------------------ the end */

static void calls_cancel(struct run_ctx *c, const char *why)
{
	char by[160];
	snprintf(by, sizeof(by), "run:%s (%s)", c->rec.id, why);
	json_t *req = json_pack("{s:s, s:s}", "op", "cancel", "by", by);
	int64_t until = (int64_t)cdn_mono_ms() + CALLS_CANCEL_WAIT_MS;
	/* Each child is asked through its control socket, again until it
	 * answers (a child still setting up has none yet), and waited for;
	 * one that outlives the wait is killed, and its record is closed by
	 * crash recovery. */
	while (c->children_live) {
		struct run_child *ch = c->children_live;
		struct cdn_err err = {0};
		json_t *rep = control_ask(ch->run_id, req, &err);
		json_decref(rep);
		struct pollfd pf = {.fd = ch->pidfd, .events = POLLIN};
		int64_t now = (int64_t)cdn_mono_ms();
		int wait = rep ? (int)(until - now) : 50;
		if (wait < 0)
			wait = 0;
		if (poll(&pf, 1, wait) == 0 && (int64_t)cdn_mono_ms() >= until) {
			kill(ch->pid, SIGKILL);
			pf.revents = POLLIN;
		}
		if (pf.revents)
			child_ended(ch);
	}
	json_decref(req);
}

void run_calls_end(struct run_ctx *c, const char *why)
{
	c->calls_closed = true;
	if (c->children_live)
		calls_cancel(c, why);
	/* The first run's end is its tree's: no run of it is left. */
	if (c->call_tree_made)
		run_call_tree_remove(c->s, c->call_tree);
	c->call_tree_made = false;
}
