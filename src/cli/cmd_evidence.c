/* SPDX-License-Identifier: Apache-2.0 */
/* cordon evidence export RUN | verify FILE | key */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "evidence/evidence.h"
#include "store/store.h"

static void evidence_usage(FILE *out)
{
	fputs("Usage: cordon evidence export RUN [-o FILE] [--artifacts] [--force] [OPTIONS]\n"
	      "       cordon evidence verify FILE [--key HEX] [--any-key] [OPTIONS]\n"
	      "       cordon evidence key [OPTIONS]\n"
	      "\n"
	      "export writes a signed evidence pack of a finished run, a tar.gz holding its\n"
	      "record, result.json, events (approvals included), steps, stdout and stderr,\n"
	      "the egress audit log and the artifact manifest with hashes (with --artifacts,\n"
	      "the artifacts' bytes too), and an in-toto statement naming every file with its\n"
	      "sha256, signed (DSSE, Ed25519) by the deployment key: STATE/evidence.key, made\n"
	      "on first use, or $CORDON_EVIDENCE_KEY (the seed, hex or base64). The run\n"
	      "directory is checked against the run's record first; a run changed since it\n"
	      "ended is refused, not signed.\n"
	      "\n"
	      "verify checks a pack: every file against the signed statement (nothing\n"
	      "changed, added or removed), the signature, the audit chain up to the head\n"
	      "recorded when the run ended, and the artifacts against their manifest. It\n"
	      "trusts the key given with --key, else the state directory's deployment key.\n"
	      "Exit 0 when the pack is intact and signed by a trusted key, 1 when it is not\n"
	      "(the part and the reason are printed), 125 when it cannot be read.\n"
	      "\n"
	      "key prints the deployment key's public half and key id (the sha256 of the\n"
	      "public key), to give to whoever verifies packs elsewhere.\n"
	      "\n"
	      "With CORDON_URL set, export fetches the pack cordon serve signs (key in\n"
	      "CORDON_API_KEY, its workspace); verify needs --key (the server's public key)\n"
	      "or --any-key, since the server's key is not on this machine; key has no\n"
	      "API endpoint and says so.\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE     export: the pack to write (default RUN.evidence.tar.gz);\n"
	      "                        an existing file is not replaced without --force\n"
	      "      --artifacts       export: include the artifacts' bytes\n"
	      "      --force           export: replace an existing output file\n"
	      "      --key HEX         verify: trust this public key (64 hex digits), or the\n"
	      "                        key whose id this is, if it is the state directory's\n"
	      "      --any-key         verify: accept a pack signed by any key; this proves\n"
	      "                        the pack is whole, not who made it\n"
	      "  -w, --workspace NAME  export: workspace (default $CORDON_WORKSPACE, else\n"
	      "                        \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n",
	      out);
}

static void print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
}

static int state_dir(const char *opt, char *out, size_t cap, struct cdn_err *err)
{
	if (opt) {
		snprintf(out, cap, "%s", opt);
		return 0;
	}
	return store_default_dir(out, cap, err);
}

/* What export and verify both say about a pack's size, counted the same
 * way: every file in the pack, of which all but statement.json and
 * statement.sig are the statement's subjects. */
static void file_count(char *buf, size_t cap, size_t files, size_t signed_files, uint64_t bytes)
{
	snprintf(buf, cap,
		 "%zu files in the pack, %llu bytes (%zu signed by the statement, plus "
		 "statement.json and statement.sig)",
		 files, (unsigned long long)bytes, signed_files);
}

/* ------------------------------------------------------------------- key */

static int do_key(const char *state, bool json)
{
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	struct evidence_key *k;
	int r = evidence_key_load(store_dir(s), true, &k, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	char pk[2 * EVIDENCE_PK_BYTES + 1];
	sodium_bin2hex(pk, sizeof(pk), evidence_key_public(k), EVIDENCE_PK_BYTES);
	if (json)
		print_json(json_pack("{s:s, s:s, s:s}", "public_key", pk, "keyid",
				     evidence_key_id(k), "source", evidence_key_source(k)));
	else
		printf("public key  %s\nkey id      %s\nsource      %s\n", pk, evidence_key_id(k),
		       evidence_key_source(k));
	evidence_key_free(k);
	return 0;
}

/* ---------------------------------------------------------------- export */

static int do_export(const char *state, const char *ws, const char *run_id, const char *out,
		     bool artifacts, bool force, bool json)
{
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	/* A run whose supervisor died is still "running" until recovered;
	 * recovery makes it an error run, which can be exported. */
	(void)store_runs_recover(s, NULL);
	struct evidence_key *k;
	if (evidence_key_load(store_dir(s), true, &k, &err) < 0) {
		cli_error_err(&err);
		store_close(s);
		return cli_exit_status(&err);
	}
	struct evidence_export_opts o = { .run_id = run_id, .workspace = cli_workspace(ws),
					  .out_path = out, .artifacts = artifacts,
					  .force = force, .key = k };
	struct evidence_export_info info;
	int r = evidence_export(s, &o, &info, &err);
	store_close(s);
	if (r < 0) {
		cli_error_err(&err);
		evidence_key_free(k);
		return cli_exit_status(&err);
	}
	/* The public key, not only its id: a verifier elsewhere needs the key
	 * itself (--key), since an id is only the hash of whatever key a pack
	 * carries. */
	char pk[2 * EVIDENCE_PK_BYTES + 1];
	sodium_bin2hex(pk, sizeof(pk), evidence_key_public(k), EVIDENCE_PK_BYTES);
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:b}", "path", out,
				      "run_id", run_id, "files", (json_int_t)info.files,
				      "signed_files", (json_int_t)info.signed_files, "bytes",
				      (json_int_t)info.bytes, "statement_sha256",
				      info.statement_sha256, "keyid", evidence_key_id(k),
				      "public_key", pk, "artifacts_included", artifacts);
		json_object_set_new(j, "audit_head", info.audit_head[0]
							     ? json_string(info.audit_head)
							     : json_null());
		json_object_set_new(j, "audit_anchored",
				    info.audit_head[0] ? json_boolean(info.audit_anchored) : json_null());
		print_json(j);
	} else {
		char count[160];
		file_count(count, sizeof(count), info.files, info.signed_files, info.bytes);
		printf("wrote %s: run %s, %s%s\n", out, run_id, count,
		       artifacts ? ", the artifacts' bytes included" : "");
		printf("  signed by key %s\n  public key %s (to verify elsewhere: cordon evidence "
		       "verify --key %s FILE)\n",
		       evidence_key_id(k), pk, pk);
		if (info.audit_head[0] && !info.audit_anchored)
			printf("  audit log: unanchored: the run recorded no head to check its end "
			       "against, so lines cut off its end would not show\n");
	}
	evidence_key_free(k);
	return 0;
}

/* ---------------------------------------------------------------- verify */

static json_t *report_json(const struct evidence_report *rep, bool ok)
{
	json_t *j = json_pack("{s:b, s:b, s:b}", "ok", ok, "intact", rep->intact, "trusted",
			      rep->trusted);
	if (rep->reason[0]) {
		json_object_set_new(j, "part", json_string(rep->part));
		json_object_set_new(j, "reason", json_string(rep->reason));
	}
	if (rep->keyid[0])
		json_object_set_new(j, "keyid", json_string(rep->keyid));
	if (rep->run_id[0]) {
		json_object_set_new(j, "run_id", json_string(rep->run_id));
		json_object_set_new(j, "workspace", json_string(rep->workspace));
		json_object_set_new(j, "agent",
				    json_pack("{s:s, s:I, s:s}", "name", rep->agent, "version",
					      (json_int_t)rep->agent_version, "sha256",
					      rep->agent_sha256));
		json_object_set_new(j, "status", json_string(rep->status));
		json_object_set_new(j, "exit_code", json_integer(rep->exit_code));
		json_object_set_new(j, "audit",
				    rep->audit_head[0]
					    ? json_pack("{s:s, s:I, s:b}", "head", rep->audit_head,
							"records", (json_int_t)rep->audit_records,
							"anchored", rep->audit_anchored)
					    : json_null());
		json_object_set_new(j, "artifacts_included", json_boolean(rep->artifacts_included));
		json_object_set_new(j, "deps",
				    rep->deps_sha256[0]
					    ? json_pack("{s:s}", "sha256", rep->deps_sha256)
					    : json_null());
		json_object_set_new(j, "created", json_string(rep->created));
		json_object_set_new(j, "cordon_version", json_string(rep->cordon_version));
	}
	json_t *files = json_array();
	for (size_t i = 0; i < rep->n_files; i++)
		json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "name",
						       rep->files[i].name, "sha256",
						       rep->files[i].sha256, "size",
						       (json_int_t)rep->files[i].size));
	json_object_set_new(j, "files", files);
	json_object_set_new(j, "bytes", json_integer((json_int_t)rep->bytes));
	if (rep->intact)
		json_object_set_new(j, "signed_files", json_integer((json_int_t)rep->signed_files));
	return j;
}

static void report_text(const char *path, const struct evidence_report *rep, bool ok)
{
	if (!rep->intact) {
		printf("%s: BAD: %s: %s\n", path, rep->part, rep->reason);
		return;
	}
	if (!ok) {
		printf("%s: UNTRUSTED: %s: %s\n", path, rep->part, rep->reason);
		return;
	}
	if (rep->trusted)
		printf("%s: intact, signed by the trusted key %s\n", path, rep->keyid);
	else
		printf("%s: intact, but signed by key %s, which is not a trusted key (--any-key: "
		       "integrity only, not origin)\n",
		       path, rep->keyid);
	printf("  run %s in %s: %s@%u (sha256 %s), %s, exit %d\n", rep->run_id, rep->workspace,
	       rep->agent, rep->agent_version, rep->agent_sha256, rep->status, rep->exit_code);
	if (rep->audit_head[0] && rep->audit_anchored)
		printf("  audit log: %llu records, head %s, anchored where the run ended\n",
		       (unsigned long long)rep->audit_records, rep->audit_head);
	else if (rep->audit_head[0])
		printf("  audit log: %llu records, head %s, UNANCHORED: the run recorded no head to "
		       "check its end against, so lines cut off its end would not show\n",
		       (unsigned long long)rep->audit_records, rep->audit_head);
	else
		printf("  audit log: none (the run had no network)\n");
	if (rep->deps_sha256[0])
		printf("  dependency layer: sha256 %s\n", rep->deps_sha256);
	char count[160];
	file_count(count, sizeof(count), rep->n_files, rep->signed_files, rep->bytes);
	printf("  %s%s; packed %s by cordon %s\n", count,
	       rep->artifacts_included ? ", artifacts included" : "", rep->created,
	       rep->cordon_version);
}

/* The deployment key of the state directory, when this machine has one;
 * never made here: a fresh key would trust nothing anyway. 1 when found,
 * 0 when there is none, negative (err set) when it cannot be loaded. */
static int local_public_key(const char *state, unsigned char pk[EVIDENCE_PK_BYTES],
			    struct cdn_err *err)
{
	char dir[PATH_MAX];
	int r = state_dir(state, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	struct evidence_key *k;
	r = evidence_key_load(dir, false, &k, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	memcpy(pk, evidence_key_public(k), EVIDENCE_PK_BYTES);
	evidence_key_free(k);
	return 1;
}

/*
 * --key takes the public key, or the key id of a key this machine already
 * holds (its deployment key): export prints the id, and a verifier on the
 * same deployment may pass that. An id that names no key held here is
 * taken as written, as a public key; it then matches no signer, and verify
 * says that an id is not enough (verify.c, report_trust). The pack is
 * never consulted to resolve an id: its signer's id always matches the key
 * it carries, so trusting that would trust whoever made the pack. When the
 * state directory's key exists but cannot be loaded, lerr says why.
 */
static int trusted_key(const char *state, const char *key_hex, unsigned char pk[EVIDENCE_PK_BYTES],
		       struct cdn_err *lerr)
{
	struct cdn_err err = { 0 };
	if (evidence_public_parse(key_hex, pk, &err) < 0) {
		cli_error("--key: %s; or the key id of the state directory's key", err.msg);
		return -1;
	}
	/* A local key that cannot be loaded resolves no id; a public key
	 * given in full does not need one. */
	unsigned char local[EVIDENCE_PK_BYTES];
	if (local_public_key(state, local, lerr) != 1)
		return 0;
	char id[EVIDENCE_HEX + 1], given[EVIDENCE_HEX + 1];
	evidence_keyid(local, id);
	sodium_bin2hex(given, sizeof(given), pk, EVIDENCE_PK_BYTES); /* lower case, as ids are */
	if (strcmp(given, id) == 0)
		memcpy(pk, local, EVIDENCE_PK_BYTES);
	return 0;
}

static int do_verify(const char *state, const char *path, const char *key_hex, bool any_key,
		     bool json)
{
	struct cdn_err err = { 0 };
	unsigned char pk[1][EVIDENCE_PK_BYTES];
	struct evidence_trust t = { .keys = pk, .n_keys = 0, .any_key = any_key };
	struct cdn_err lerr = { 0 };
	if (key_hex) {
		if (trusted_key(state, key_hex, pk[0], &lerr) < 0)
			return EXIT_CORDON;
		t.n_keys = 1;
	} else {
		int r = local_public_key(state, pk[0], &err);
		if (r < 0)
			return cli_fail(&err);
		t.n_keys = (size_t)r;
	}
	struct evidence_report rep;
	int r = evidence_verify_file(path, &t, &rep, &err);
	if (r < 0) {
		cli_error_err(&err);
		evidence_report_clear(&rep);
		return cli_exit_status(&err);
	}
	/* An id that would have been looked up in a key that cannot be
	 * loaded: the trusted key cannot be loaded (125), not an untrusted
	 * pack. */
	char given[EVIDENCE_HEX + 1];
	sodium_bin2hex(given, sizeof(given), pk[0], EVIDENCE_PK_BYTES);
	if (key_hex && lerr.msg[0] && !rep.trusted && strcmp(given, rep.keyid) == 0) {
		cli_error("--key %s is the key id of the key that signed this pack, and the state "
			  "directory's key, which could resolve an id, cannot be loaded: %s",
			  rep.keyid, lerr.msg);
		evidence_report_clear(&rep);
		return cli_exit_status(&lerr);
	}
	if (json)
		print_json(report_json(&rep, r == 0));
	else
		report_text(path, &rep, r == 0);
	evidence_report_clear(&rep);
	return r == 0 ? 0 : 1;
}

/* evidence export through cordon serve: the pack the server signs, as
 * GET /v1/runs/ID/evidence gives it, written like a local export. */
static int remote_export(const char *run_id, const char *out, bool artifacts, bool force,
			 bool json)
{
	if (store_run_id_check(run_id, NULL) < 0) {
		cli_error("evidence export: '%s' is not a run id", run_id);
		return EXIT_CORDON;
	}
	char path[160];
	snprintf(path, sizeof(path), "/v1/runs/%s/evidence%s", run_id, artifacts ? "?artifacts=1" : "");
	struct cli_sink k;
	if (cli_sink_open(&k, out, force) < 0)
		return EXIT_CORDON;
	struct cli_api_req rq = { .method = "GET", .path = path, .on_data = cli_sink_data,
				  .ctx = &k, .stream_status = 200 };
	struct cli_api_resp rs;
	int r = cli_api_call(&rq, &rs);
	bool ok = r == 0 && rs.status == 200;
	if (r == 0 && !ok) {
		const char *msg = json_string_value(
			json_object_get(json_object_get(rs.json, "error"), "message"));
		cli_error("evidence export: %s (HTTP %d)", msg ? msg : "refused", rs.status);
	}
	if (r == 0)
		cli_api_resp_free(&rs);
	if (cli_sink_close(&k, ok) < 0)
		return EXIT_CORDON;
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:s}", "path", out, "run_id", run_id,
				      "artifacts_included", artifacts, "signed_by", "server");
		print_json(j);
	} else {
		printf("wrote %s: run %s, signed by the server's deployment key%s\n"
		       "  verify it with the server's public key: cordon evidence verify --key "
		       "PUBLIC_KEY %s (cordon evidence key, run on the server, prints it)\n",
		       out, run_id, artifacts ? ", the artifacts' bytes included" : "", out);
	}
	return 0;
}

int cmd_evidence(int argc, char **argv)
{
	enum { O_STATE = 256, O_JSON, O_ARTIFACTS, O_FORCE, O_KEY, O_ANY_KEY };
	static const struct option opts[] = { { "state", required_argument, NULL, O_STATE },
					      { "workspace", required_argument, NULL, 'w' },
					      { "output", required_argument, NULL, 'o' },
					      { "json", no_argument, NULL, O_JSON },
					      { "artifacts", no_argument, NULL, O_ARTIFACTS },
					      { "force", no_argument, NULL, O_FORCE },
					      { "key", required_argument, NULL, O_KEY },
					      { "any-key", no_argument, NULL, O_ANY_KEY },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *state = NULL, *ws = NULL, *out = NULL, *key = NULL;
	bool json = false, artifacts = false, force = false, any_key = false;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "w:o:h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE:
			state = optarg;
			break;
		case 'w':
			ws = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case O_JSON:
			json = true;
			break;
		case O_ARTIFACTS:
			artifacts = true;
			break;
		case O_FORCE:
			force = true;
			break;
		case O_KEY:
			key = optarg;
			break;
		case O_ANY_KEY:
			any_key = true;
			break;
		case 'h':
			evidence_usage(stdout);
			return 0;
		default:
			evidence_usage(stderr);
			return EXIT_CORDON;
		}
	}
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	bool exp = strcmp(verb, "export") == 0, ver = strcmp(verb, "verify") == 0;
	bool keyv = strcmp(verb, "key") == 0;
	if (!(((exp || ver) && nargs == 2) || (keyv && nargs == 1))) {
		evidence_usage(stderr);
		return EXIT_CORDON;
	}
	/* An option another verb would use is a mistake, not a no-op. */
	const char *misplaced = !exp && out		   ? "-o/--output"
				: !exp && artifacts	   ? "--artifacts"
				: !exp && force		   ? "--force"
				: !exp && ws		   ? "-w/--workspace"
				: !ver && key		   ? "--key"
				: !ver && any_key	   ? "--any-key"
							   : NULL;
	if (misplaced) {
		cli_error("evidence %s: %s does not apply here (see cordon evidence --help)", verb,
			  misplaced);
		return EXIT_CORDON;
	}
	/* The pack's file, for either export. */
	char def[STORE_RUN_ID_MAX + 32];
	if (exp && !out) {
		snprintf(def, sizeof(def), "%.40s.evidence.tar.gz", argv[optind + 1]);
		out = def;
	}
	if (exp && strcmp(out, "-") == 0) {
		cli_error("-o -: a pack is written to a file (atomically), not to standard output");
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		/* With CORDON_URL set, nothing here reads a local state: the
		 * deployment key and the runs are the server's. */
		if (state || ws) {
			cli_error("evidence %s: %s is for local state; CORDON_URL is set, so the "
				  "server's state and the key's workspace are used",
				  verb, state ? "--state" : "-w/--workspace");
			return EXIT_CORDON;
		}
		if (exp)
			return remote_export(argv[optind + 1], out, artifacts, force, json);
		if (keyv) {
			cli_error("evidence key has no API endpoint: run it on the server (or unset "
				  "CORDON_URL to print this machine's key)");
			return EXIT_CORDON;
		}
		if (!key && !any_key) {
			cli_error("evidence verify: CORDON_URL is set, and the key that signs the "
				  "server's packs is not on this machine: pass --key with the server's "
				  "public key (cordon evidence key, run on the server)");
			return EXIT_CORDON;
		}
	}
	if (exp)
		return do_export(state, ws, argv[optind + 1], out, artifacts, force, json);
	if (ver)
		return do_verify(state, argv[optind + 1], key, any_key, json);
	return do_key(state, json);
}
