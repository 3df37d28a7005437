/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The progress view: one event line of events.ndjson (run/events.h), as a
 * person reads it. `cordon run` shows a run with it as it happens, and
 * `cordon logs` a run's record. Presentation only: what an event is, is
 * the run module's.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/text.h"
#include "cli/cli.h"

static const char *C(bool color, const char *code)
{
	return color ? code : "";
}

static const char *jstr(json_t *d, const char *key)
{
	const char *s = json_string_value(json_object_get(d, key));
	return s ? s : "";
}

/* Control characters from the agent (escape sequences that retitle or
 * rewrite a terminal; C1 ones too) become '?' before anything is printed. */
static void tty_safe(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j)) {
		json_object_foreach(j, k, v)
		{
			if (json_is_string(v)) {
				char *t = strdup(json_string_value(v));
				if (!t)
					continue;
				size_t n = strlen(t);
				cdn_printable(t, n + 1, t, n, CDN_TEXT_UTF8);
				json_object_set_new(j, k, json_string(t) ?: json_string("?"));
				free(t);
			} else {
				tty_safe(v);
			}
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) tty_safe(v);
	}
}

/* d must have been through tty_safe(). */
static void progress(bool c, const char *type, json_t *d)
{
	const char *dim = C(c, "\033[2m"), *bold = C(c, "\033[1m"), *red = C(c, "\033[31m"),
		   *green = C(c, "\033[32m"), *yellow = C(c, "\033[33m"), *off = C(c, "\033[0m");
#define S(key) jstr(d, key)
#define I(key) ((long long)json_integer_value(json_object_get(d, key)))
	if (strcmp(type, "run.created") == 0) {
		char ver[32] = " (directory)";
		if (I("version"))
			snprintf(ver, sizeof(ver), "@%lld", I("version"));
		printf("%s● run %s%s  agent %s%s  sha256:%.12s\n", bold, S("run_id"), off,
		       S("agent"), ver, S("sha256"));
	} else if (strcmp(type, "sandbox.ready") == 0) {
		json_t *p = json_object_get(d, "protections");
		/* A partial Landlock (an older kernel) names the parts it has;
		 * the part names are short and fixed, so they fit. */
		json_t *ll = json_object_get(p, "landlock");
		char parts[160] = "";
		if (json_object_size(json_object_get(ll, "missing")) > 0) {
			size_t i;
			json_t *v;
			strcat(parts, " (");
			json_array_foreach(json_object_get(ll, "applied"), i, v) {
				strncat(parts, i ? ", " : "", sizeof(parts) - strlen(parts) - 1);
				strncat(parts, json_string_value(v) ? json_string_value(v) : "?",
					sizeof(parts) - strlen(parts) - 1);
			}
			strncat(parts, " only)", sizeof(parts) - strlen(parts) - 1);
		}
		printf("%s  sandbox ready: userns, seccomp, landlock v%lld%s, cgroup %s, network %s%s\n",
		       dim, (long long)json_integer_value(json_object_get(p, "landlock_abi")), parts,
		       json_string_value(json_object_get(p, "cgroup"))
			       ? json_string_value(json_object_get(p, "cgroup"))
			       : "none",
		       S("network"), off);
	} else if (strcmp(type, "deps.built") == 0) {
		printf("%s  dependencies: %s layer sha256:%.12s built in %lld ms%s\n", dim,
		       S("runtime"), S("sha256"), I("build_ms"), off);
	} else if (strcmp(type, "deps.cached") == 0) {
		printf("%s  dependencies: %s layer sha256:%.12s (cached)%s\n", dim, S("runtime"),
		       S("sha256"), off);
	} else if (strcmp(type, "setup.finished") == 0) {
		printf("%s  setup finished (exit %lld, %lld ms)%s\n", I("exit_code") ? red : dim,
		       I("exit_code"), I("duration_ms"), off);
	} else if (strcmp(type, "step") == 0) {
		json_t *st = json_object_get(d, "step");
		const char *text = json_string_value(json_object_get(st, "name"));
		if (!text)
			text = json_string_value(json_object_get(st, "text"));
		char *dump = NULL;
		if (!text)
			text = dump = json_dumps(st, JSON_COMPACT);
		printf("  %s•%s %s\n", bold, off, text ? text : "");
		free(dump);
	} else if (strcmp(type, "egress.allowed") == 0) {
		printf("%s  ↗ %s %s:%lld → %lld%s\n", dim, S("method"), S("hostname"), I("port"),
		       I("status_code"), off);
	} else if (strcmp(type, "egress.blocked") == 0) {
		printf("  %s✗ blocked %s %s:%lld: %s%s\n", red, S("method"), S("hostname"),
		       I("port"), S("blocked_reason"), off);
	} else if (strcmp(type, "approval.requested") == 0 && strcmp(S("source"), "mcp") == 0) {
		printf("  %s⏸ approval %s: the agent asks to %s (%s); waits (cordon approvals "
		       "approve|reject %s)%s\n",
		       yellow, S("approval_id"), S("action"), S("reason"), S("approval_id"), off);
	} else if (strcmp(type, "approval.requested") == 0) {
		printf("  %s⏸ approval %s: %s %s:%lld%s waits (cordon approvals approve|reject "
		       "%s)%s\n",
		       yellow, S("approval_id"), S("method"), S("hostname"), I("port"), S("path"),
		       S("approval_id"), off);
	} else if (strcmp(type, "approval.decided") == 0) {
		printf("  %s  approval %s: %s%s\n", yellow, S("approval_id"), S("decision"), off);
	} else if (strcmp(type, "call.started") == 0) {
		printf("  %s→ call %s@%lld: run %s%s\n", dim, S("agent"), I("version"), S("run_id"), off);
	} else if (strcmp(type, "call.finished") == 0) {
		bool ok = strcmp(S("status"), "succeeded") == 0;
		printf("  %s← call %s@%lld: run %s %s%s\n", ok ? dim : red, S("agent"), I("version"),
		       S("run_id"), S("status"), off);
	} else if (strcmp(type, "call.refused") == 0) {
		printf("  %s✗ call %s refused: %s%s\n", red, S("agent"), S("reason"), off);
	} else if (strcmp(type, "artifact.saved") == 0) {
		printf("  %s▪ artifact %s (%lld bytes)%s\n", green, S("name"), I("size"), off);
	} else if (strcmp(type, "artifact.skipped") == 0) {
		printf("  %s▪ artifact %s skipped: %s%s\n", yellow, S("name"), S("reason"), off);
	} else if (strcmp(type, "run.finished") == 0) {
		const char *status = S("status");
		bool ok = strcmp(status, "succeeded") == 0;
		printf("%s%s%s %s%s in %lld ms, exit %lld", bold, ok ? green : red, ok ? "✔" : "✘",
		       status, off, I("duration_ms"), I("exit_code"));
		if (json_string_value(json_object_get(d, "error")))
			printf(": %s", S("error"));
		printf("\n");
		/* Local runs say where the record is; the API leaves server paths
		 * out, and `cordon runs show ID` has the record there. */
		if (*S("run_dir"))
			printf("%s  result: %s/result.json%s\n", dim, S("run_dir"), off);
		else
			printf("%s  result: cordon runs show %s%s\n", dim, S("run_id"), off);
	}
#undef S
#undef I
	(void)fflush(stdout);
}

void cli_progress_event(const char *line, size_t len, bool color)
{
	json_t *ev = json_loadb(line, len, 0, NULL);
	tty_safe(ev);
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (type)
		progress(color, type, ev);
	json_decref(ev);
}

/* ------------------------------------------------------ the agent's output */

static void output_line(struct cli_output *o, int fd, const char *p, size_t n, bool nl)
{
	FILE *f = fd == 2 ? stderr : stdout;
	char buf[CLI_OUTPUT_LINE * 4 + 8];
	/* Tabs read as spaces; every other control (escape sequences that
	 * would rewrite the terminal or fake this view's lines) as '?'. */
	char tmp[CLI_OUTPUT_LINE];
	size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
	for (size_t i = 0; i < k; i++)
		tmp[i] = p[i] == '\t' ? ' ' : p[i];
	cdn_printable(buf, sizeof(buf), tmp, k, CDN_TEXT_UTF8);
	fprintf(f, "  %s│%s %s%s", C(o->color, fd == 2 ? "\033[31m" : "\033[2m"),
		C(o->color, "\033[0m"), buf, nl ? "\n" : "");
	(void)fflush(f);
}

void cli_output_init(struct cli_output *o, bool color)
{
	memset(o, 0, sizeof(*o));
	o->color = color;
	o->tty[1] = isatty(STDOUT_FILENO);
	o->tty[2] = isatty(STDERR_FILENO);
}

void cli_output_write(struct cli_output *o, int fd, const char *p, size_t n)
{
	if (fd != 1 && fd != 2)
		return;
	if (!o->tty[fd]) {
		/* A pipe or a file gets the bytes as they are, like docker run. */
		FILE *f = fd == 2 ? stderr : stdout;
		(void)fwrite(p, 1, n, f);
		(void)fflush(f);
		return;
	}
	/* A terminal gets whole lines, each made safe as a whole (a UTF-8
	 * sequence split across two reads is judged once). */
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			output_line(o, fd, o->line[fd], o->len[fd], true);
			o->len[fd] = 0;
			continue;
		}
		if (o->len[fd] == CLI_OUTPUT_LINE) {
			output_line(o, fd, o->line[fd], o->len[fd], true);
			o->len[fd] = 0;
		}
		o->line[fd][o->len[fd]++] = p[i];
	}
}

void cli_output_flush(struct cli_output *o)
{
	for (int fd = 1; fd <= 2; fd++)
		if (o->len[fd]) {
			output_line(o, fd, o->line[fd], o->len[fd], true);
			o->len[fd] = 0;
		}
}

void cli_progress_stderr_tail(const char *buf, size_t len, bool cut, bool color)
{
	/* The last CLI_TAIL_LINES lines, at most CLI_TAIL_BYTES of them. */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (!len)
		return;
	size_t start = len > CLI_TAIL_BYTES ? len - CLI_TAIL_BYTES : 0;
	size_t lines = 0, i = len;
	while (i > start) {
		if (buf[i - 1] == '\n' && ++lines == CLI_TAIL_LINES)
			break;
		i--;
	}
	/* A cut inside a line starts at the next line. */
	if (i == start && (start > 0 || cut)) {
		const char *nl = memchr(buf + start, '\n', len - start);
		i = nl ? (size_t)(nl - buf) + 1 : start;
	}
	struct cli_output o = { .color = color };
	printf("  %slast lines of stderr:%s\n", C(color, "\033[2m"), C(color, "\033[0m"));
	(void)fflush(stdout);
	const char *p = buf + i, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		output_line(&o, 1, p, n, true);
		p += n + (nl ? 1 : 0);
	}
}
