/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/audit?run=ID: a run's hash-chained audit log, a page of it,
 * and whether the chain verifies.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit/audit.h"

#define AUDIT_PAGE_MAX 1000

enum MHD_Result h_audit_get(struct call *c)
{
	const char *run = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "run");
	const char *lim = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *off = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "offset");
	struct store_run r;
	if (!run || api_run_in_ws(c, run, &r) < 0)
		return api_fail(c->conn, 404, "not_found",
				"give ?run=ID of a run in this workspace");
	store_run_clear(&r);
	unsigned long limit = lim ? strtoul(lim, NULL, 10) : 100,
		      offset = off ? strtoul(off, NULL, 10) : 0;
	if (limit == 0 || limit > AUDIT_PAGE_MAX)
		limit = AUDIT_PAGE_MAX;
	char path[PATH_MAX] = "";
	(void)store_run_files_pull(c->sv->s, run, NULL);
	(void)store_run_file(c->sv->s, run, "audit.jsonl", path, sizeof(path), NULL);
	json_t *entries = json_array();
	json_t *verify;
	FILE *f = fopen(path, "re");
	if (!f) {
		verify = json_pack("{s:b, s:I, s:s}", "ok", 1, "lines", (json_int_t)0, "note",
				   "this run had no network, so no audit log");
	} else {
		char *line = NULL;
		size_t cap = 0;
		unsigned long i = 0;
		while (getline(&line, &cap, f) > 0 && json_array_size(entries) < limit) {
			if (i++ < offset)
				continue;
			json_t *e = json_loads(line, 0, NULL);
			if (e)
				json_array_append_new(entries, e);
		}
		free(line);
		fclose(f);
		struct audit_verify v = { 0 };
		struct cdn_err err = { 0 };
		int vr = audit_verify_file(path, &v, &err);
		verify = vr < 0 ? json_pack("{s:b, s:s}", "ok", 0, "reason", err.msg)
				: json_pack("{s:b, s:I, s:s, s:I, s:s}", "ok", vr == 0, "lines",
					    (json_int_t)v.lines, "last_hash", v.last_hash, "bad_line",
					    (json_int_t)v.bad_line, "reason", v.reason);
	}
	return api_reply(
	    c->conn, 200,
	    json_pack("{s:s, s:o, s:o}", "run", run, "entries", entries, "verify", verify));
}
