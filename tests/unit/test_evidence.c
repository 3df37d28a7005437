/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs: a round trip through export and verify, then every kind
 * of tampering with a pack (a byte in each part, a file dropped or added, a
 * duplicate, a path escaping, a link, another signer, data hidden after the
 * end), each of which verify must refuse while naming the part.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "evidence/evidence.h"
#include "store/store.h"

#define RUN_ID "run_0123456789abcdef"
#define AGENT_SHA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ART_BYTES "# a report\nthe agent wrote this\n"

struct fx {
	char tmp[64];
	char state[128];
	char rundir[256];
	char pack[256];
	struct store *s;
	struct evidence_key *key, *other;
	unsigned char trusted[1][EVIDENCE_PK_BYTES];
	char audit_head[AUDIT_HASH_HEX + 1];
	unsigned char *buf; /* the exported pack */
	size_t len;
};

/* ------------------------------------------------------------- fixtures */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void sha_hex(const void *d, size_t n, char out[65])
{
	unsigned char h[32];
	crypto_hash_sha256(h, d, n);
	sodium_bin2hex(out, 65, h, 32);
}

/* A finished run as run_agent leaves it: a record with its result, and a
 * run directory with events (an approval among them), steps, output, an
 * audit log and one artifact. With network false, no audit log. */
static void make_run(struct fx *f, const char *id, bool network, enum store_run_status st)
{
	struct cdn_err err = { 0 };
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/runs", f->state);
	mkdir(dir, 0700);
	snprintf(f->rundir, sizeof(f->rundir), "%s/runs/%s", f->state, id);
	assert_int_equal(mkdir(f->rundir, 0700), 0);

	f->audit_head[0] = '\0';
	uint64_t records = 0;
	if (network) {
		char path[512];
		snprintf(path, sizeof(path), "%s/audit.jsonl", f->rundir);
		struct audit_log *log;
		assert_int_equal(audit_open(path, &log, &err), 0);
		const char *types[] = { "request", "approval", "blocked" };
		for (int i = 0; i < 3; i++) {
			json_t *e = json_pack("{s:s, s:s, s:s}", "event_type", types[i], "run_id",
					      id, "hostname", "api.example");
			assert_int_equal(audit_append(log, e, false, &err), 0);
			json_decref(e);
		}
		snprintf(f->audit_head, sizeof(f->audit_head), "%s", audit_last_hash(log));
		records = audit_last_seq(log);
		audit_close(log);
	}
	char adir[300];
	snprintf(adir, sizeof(adir), "%s/artifacts", f->rundir);
	assert_int_equal(mkdir(adir, 0755), 0);
	write_text(adir, "report.md", ART_BYTES);
	char art_sha[65];
	sha_hex(ART_BYTES, strlen(ART_BYTES), art_sha);

	json_t *res = json_pack("{s:s, s:s, s:s, s:i, s:{s:{s:s, s:i, s:s}}, s:[{s:s, s:s, s:s, "
				"s:i}], s:{s:i}}",
				"run_id", id, "workspace", "default", "status",
				store_run_status_name(st), "exit_code", 0, "resolved", "agent",
				"name", "bot", "version", 2, "sha256", AGENT_SHA, "artifacts",
				"name", "report.md", "original", "report.md", "sha256", art_sha,
				"size", (int)strlen(ART_BYTES), "output", "words", 4);
	if (network)
		json_object_set_new(res, "audit",
				    json_pack("{s:s, s:s, s:I}", "file", "audit.jsonl", "head",
					      f->audit_head, "records", (json_int_t)records));
	char *pretty = json_dumps(res, JSON_INDENT(2) | JSON_SORT_KEYS);
	char *compact = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	write_text(f->rundir, "result.json", pretty);
	write_text(f->rundir, "events.ndjson",
		   "{\"seq\":1,\"type\":\"run.created\"}\n"
		   "{\"seq\":2,\"type\":\"approval.requested\",\"approval_id\":\"ap_1\"}\n"
		   "{\"seq\":3,\"type\":\"approval.decided\",\"approval_id\":\"ap_1\","
		   "\"decision\":\"approved\"}\n"
		   "{\"seq\":4,\"type\":\"run.finished\"}\n");
	write_text(f->rundir, "steps.json", "[{\"name\":\"read\"}]\n");
	write_text(f->rundir, "stdout", "counted 4 words\n");
	write_text(f->rundir, "stderr", "");

	struct store_run r = { 0 };
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.workspace, sizeof(r.workspace), "default");
	snprintf(r.agent, sizeof(r.agent), "bot");
	r.agent_version = 2;
	snprintf(r.agent_hash, sizeof(r.agent_hash), "%s", AGENT_SHA);
	r.status = RUN_CREATED;
	r.exit_code = -1;
	snprintf(r.caller, sizeof(r.caller), "user:test");
	r.created_ms = 1700000000000;
	r.supervisor_pid = 1;
	snprintf(r.supervisor_boot, sizeof(r.supervisor_boot), "boot");
	r.input_json = "{\"text\":\"a b c d\"}";
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
	r.status = st;
	r.exit_code = 0;
	r.started_ms = 1700000000100;
	r.finished_ms = 1700000000900;
	r.result_json = compact;
	assert_int_equal(store_run_update(f->s, &r, &err), 0);
	free(pretty);
	free(compact);
	json_decref(res);
}

static int export_run(struct fx *f, const char *id, bool artifacts, bool force,
		      struct cdn_err *err)
{
	struct evidence_export_opts o = { .run_id = id, .workspace = "default",
					  .out_path = f->pack, .artifacts = artifacts,
					  .force = force, .key = f->key };
	struct evidence_export_info info;
	return evidence_export(f->s, &o, &info, err);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cordon-test-evidence-XXXXXX");
	if (!f || !mkdtemp(f->tmp))
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->tmp);
	snprintf(f->pack, sizeof(f->pack), "%s/pack.tar.gz", f->tmp);
	struct cdn_err err = { 0 };
	if (store_open(f->state, &f->s, &err) < 0)
		return -1;
	unsigned char seed[EVIDENCE_SEED_BYTES], seed2[EVIDENCE_SEED_BYTES];
	memset(seed, 7, sizeof(seed));
	memset(seed2, 9, sizeof(seed2));
	if (evidence_key_from_seed(seed, &f->key, &err) < 0 ||
	    evidence_key_from_seed(seed2, &f->other, &err) < 0)
		return -1;
	memcpy(f->trusted[0], evidence_key_public(f->key), EVIDENCE_PK_BYTES);
	*state = f;
	return 0;
}

/* The fixture plus one exported pack with a network run's files. */
static int setup_pack(void **state)
{
	if (setup(state) < 0)
		return -1;
	struct fx *f = *state;
	make_run(f, RUN_ID, true, RUN_SUCCEEDED);
	struct cdn_err err = { 0 };
	if (export_run(f, RUN_ID, true, false, &err) < 0) {
		fprintf(stderr, "export: %s\n", err.msg);
		return -1;
	}
	f->buf = (unsigned char *)read_all(f->pack, &f->len);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	evidence_key_free(f->key);
	evidence_key_free(f->other);
	nftw(f->tmp, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
	free(f->buf);
	free(f);
	return 0;
}

/* ------------------------------------------------ packs, taken apart */

struct ent {
	char name[256];
	unsigned char *data;
	size_t len;
	unsigned type;	 /* AE_IFREG, AE_IFLNK, AE_IFDIR */
	char link[64];	 /* symlink target */
	bool hard;	 /* a hard link to link */
	unsigned perm;
	time_t mtime;
};

#define MAX_ENTS 2100

struct pack {
	struct ent *e;
	size_t n;
};

static void pack_read(const unsigned char *buf, size_t len, struct pack *p)
{
	p->e = calloc(MAX_ENTS, sizeof(*p->e));
	p->n = 0;
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, buf, len), ARCHIVE_OK);
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		struct ent *x = &p->e[p->n++];
		snprintf(x->name, sizeof(x->name), "%s", archive_entry_pathname(e));
		x->len = (size_t)archive_entry_size(e);
		x->data = malloc(x->len + 1);
		assert_int_equal(archive_read_data(a, x->data, x->len), (la_ssize_t)x->len);
		x->type = AE_IFREG;
		x->perm = archive_entry_perm(e);
		x->mtime = archive_entry_mtime(e);
	}
	archive_read_free(a);
}

static void pack_free(struct pack *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->e[i].data);
	free(p->e);
}

struct growbuf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t grow_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	struct growbuf *g = ctx;
	if (g->len + n > g->cap) {
		g->cap = (g->len + n) * 2;
		g->p = realloc(g->p, g->cap);
	}
	memcpy(g->p + g->len, buf, n);
	g->len += n;
	return (la_ssize_t)n;
}

/* The pack written again (gzip, or plain tar with !gz), entries as given. */
static unsigned char *pack_write(const struct pack *p, bool gz, size_t *len)
{
	struct growbuf g = { 0 };
	struct archive *a = archive_write_new();
	if (gz)
		archive_write_add_filter_gzip(a);
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open(a, &g, NULL, grow_write, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < p->n; i++) {
		const struct ent *x = &p->e[i];
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, x->name);
		archive_entry_set_filetype(e, x->type);
		archive_entry_set_perm(e, x->perm);
		archive_entry_set_mtime(e, x->mtime, 0);
		if (x->type == AE_IFLNK)
			archive_entry_set_symlink(e, x->link);
		if (x->hard)
			archive_entry_set_hardlink(e, x->link);
		archive_entry_set_size(e, x->type == AE_IFREG && !x->hard ? (la_int64_t)x->len : 0);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (x->type == AE_IFREG && !x->hard && x->len)
			assert_int_equal(archive_write_data(a, x->data, x->len), (la_ssize_t)x->len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*len = g.len;
	return g.p;
}

static struct ent *ent_get(struct pack *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->e[i].name, name) == 0)
			return &p->e[i];
	fail_msg("no %s in the pack", name);
	return NULL;
}

static void ent_set(struct ent *x, const void *data, size_t len)
{
	free(x->data);
	x->data = malloc(len + 1);
	memcpy(x->data, data, len);
	x->len = len;
}

static struct ent *ent_add(struct pack *p, const char *name, const char *text)
{
	struct ent *x = &p->e[p->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->type = AE_IFREG;
	x->perm = 0644;
	x->mtime = p->e[0].mtime;
	ent_set(x, text, strlen(text));
	return x;
}

static void ent_drop(struct pack *p, const char *name)
{
	struct ent *x = ent_get(p, name);
	free(x->data);
	size_t i = (size_t)(x - p->e);
	memmove(&p->e[i], &p->e[i + 1], (p->n - i - 1) * sizeof(*x));
	p->n--;
}

/* Verifies buf against the fixture's key: 1 and the part named. */
static void expect_bad(struct fx *f, const unsigned char *buf, size_t len, const char *part,
		       const char *reason_has)
{
	struct evidence_trust t = { .keys = f->trusted, .n_keys = 1 };
	struct evidence_report rep;
	struct cdn_err err = { 0 };
	int r = evidence_verify_mem(buf, len, &t, &rep, &err);
	if (r != 1 || rep.intact || strcmp(rep.part, part) != 0 ||
	    (reason_has && !strstr(rep.reason, reason_has)))
		fail_msg("verify: %d, intact %d, part \"%s\" (want %s), reason \"%s\" (want %s) %s",
			 r, rep.intact, rep.part, part, rep.reason, reason_has ? reason_has : "-",
			 err.msg);
	evidence_report_clear(&rep);
}

typedef void (*mutate_fn)(struct pack *p);

/* Takes the fixture's pack apart, changes it, puts it together again, and
 * expects verify to refuse it naming part. */
static void tamper(struct fx *f, mutate_fn fn, const char *part, const char *reason_has)
{
	struct pack p;
	pack_read(f->buf, f->len, &p);
	fn(&p);
	size_t len;
	unsigned char *buf = pack_write(&p, true, &len);
	expect_bad(f, buf, len, part, reason_has);
	free(buf);
	pack_free(&p);
}

/* --------------------------------------------------------------- tests */

static void test_pae_vector(void **state)
{
	(void)state;
	/* The DSSE specification's test vector (protocol.md). */
	size_t n;
	unsigned char *p = evidence_pae("http://example.com/HelloWorld", "hello world", 11, &n);
	const char want[] = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(p, want, n);
	free(p);
	p = evidence_pae("t\xc3\xa9", "", 0, &n); /* lengths are bytes, not characters */
	assert_int_equal(n, strlen("DSSEv1 3 t\xc3\xa9 0 "));
	assert_memory_equal(p, "DSSEv1 3 t\xc3\xa9 0 ", n);
	free(p);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	struct evidence_trust t = { .keys = f->trusted, .n_keys = 1 };
	struct evidence_report rep;
	struct cdn_err err = { 0 };
	assert_int_equal(evidence_verify_file(f->pack, &t, &rep, &err), 0);
	assert_true(rep.intact);
	assert_true(rep.trusted);
	assert_string_equal(rep.run_id, RUN_ID);
	assert_string_equal(rep.agent, "bot");
	assert_int_equal(rep.agent_version, 2);
	assert_string_equal(rep.agent_sha256, AGENT_SHA);
	assert_string_equal(rep.status, "succeeded");
	assert_string_equal(rep.audit_head, f->audit_head);
	assert_int_equal(rep.audit_records, 3);
	assert_true(rep.artifacts_included);
	assert_string_equal(rep.keyid, evidence_key_id(f->key));
	const char *names[] = { "record.json",	  "result.json",	 "events.ndjson",
				"steps.json",	  "stdout",		 "stderr",
				"audit.jsonl",	  "artifacts.json",	 "artifacts/report.md",
				"statement.json", "statement.sig" };
	assert_int_equal(rep.n_files, sizeof(names) / sizeof(names[0]));
	for (size_t i = 0; i < rep.n_files; i++)
		assert_string_equal(rep.files[i].name, names[i]);
	evidence_report_clear(&rep);

	/* The same from memory; and with --any-key. */
	t.any_key = true;
	assert_int_equal(evidence_verify_mem(f->buf, f->len, &t, &rep, &err), 0);
	assert_true(rep.trusted);
	evidence_report_clear(&rep);

	/* The statement is the in-toto one, and statement.json is its payload. */
	struct pack p;
	pack_read(f->buf, f->len, &p);
	struct ent *st = ent_get(&p, "statement.json");
	json_t *j = json_loadb((const char *)st->data, st->len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "_type")),
			    "https://in-toto.io/Statement/v1");
	assert_int_equal(json_array_size(json_object_get(j, "subject")), 9);
	json_decref(j);
	/* The approvals are in the pack, in the events. */
	struct ent *ev = ent_get(&p, "events.ndjson");
	assert_non_null(memmem(ev->data, ev->len, "approval.decided", 16));
	pack_free(&p);

	/* The output is not replaced without force, and is with it. */
	assert_int_equal(export_run(f, RUN_ID, false, false, &err), -EEXIST);
	assert_int_equal(export_run(f, RUN_ID, false, true, &err), 0);
	t.any_key = false;
	assert_int_equal(evidence_verify_file(f->pack, &t, &rep, &err), 0);
	assert_false(rep.artifacts_included);
	assert_int_equal(rep.n_files, 10);
	evidence_report_clear(&rep);
}

static void test_other_signer(void **state)
{
	struct fx *f = *state;
	struct evidence_report rep;
	struct cdn_err err = { 0 };
	unsigned char other[1][EVIDENCE_PK_BYTES];
	memcpy(other[0], evidence_key_public(f->other), EVIDENCE_PK_BYTES);
	struct evidence_trust t = { .keys = other, .n_keys = 1 };
	/* Whole, but not by a trusted key: refused, and said so. */
	assert_int_equal(evidence_verify_mem(f->buf, f->len, &t, &rep, &err), 1);
	assert_true(rep.intact);
	assert_false(rep.trusted);
	assert_string_equal(rep.part, "statement.sig");
	assert_non_null(strstr(rep.reason, "not the trusted key"));
	evidence_report_clear(&rep);
	/* No trusted key at all: the same. */
	struct evidence_trust none = { 0 };
	assert_int_equal(evidence_verify_mem(f->buf, f->len, &none, &rep, &err), 1);
	assert_true(rep.intact);
	evidence_report_clear(&rep);
	/* --any-key: integrity only. */
	t.any_key = true;
	assert_int_equal(evidence_verify_mem(f->buf, f->len, &t, &rep, &err), 0);
	assert_true(rep.intact);
	assert_false(rep.trusted);
	evidence_report_clear(&rep);
}

static void flip_events(struct pack *p)
{
	ent_get(p, "events.ndjson")->data[5] ^= 1;
}

static void flip_result(struct pack *p)
{
	struct ent *x = ent_get(p, "result.json");
	char *s = memmem(x->data, x->len, "succeeded", 9);
	memcpy(s, "SUCCEEDED", 9);
}

static void flip_artifact(struct pack *p)
{
	ent_get(p, "artifacts/report.md")->data[0] ^= 0x20;
}

static void flip_audit(struct pack *p)
{
	struct ent *x = ent_get(p, "audit.jsonl");
	char *s = memmem(x->data, x->len, "api.example", 11);
	s[0] = 'x';
}

static void flip_record(struct pack *p)
{
	ent_get(p, "record.json")->data[3] ^= 1;
}

static void flip_stdout(struct pack *p)
{
	ent_get(p, "stdout")->data[0] = 'C';
}

static void flip_manifest(struct pack *p)
{
	struct ent *x = ent_get(p, "artifacts.json");
	char *s = memmem(x->data, x->len, "report.md", 9);
	s[0] = 'R';
}

static void flip_statement(struct pack *p)
{
	struct ent *x = ent_get(p, "statement.json");
	char *s = memmem(x->data, x->len, "succeeded", 9);
	s[0] = 'S';
}

/* Writes env as cordon does, so that only what it holds is different. */
static void set_envelope(struct ent *x, json_t *env)
{
	char *text = json_dumps(env, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	size_t n = strlen(text);
	text = realloc(text, n + 2);
	memcpy(text + n, "\n", 2);
	ent_set(x, text, n + 1);
	free(text);
	json_decref(env);
}

/* A byte of the signature itself changed (the base64 stays valid). */
static void flip_signature(struct pack *p)
{
	struct ent *x = ent_get(p, "statement.sig");
	json_t *env = json_loadb((const char *)x->data, x->len, 0, NULL);
	json_t *sig = json_array_get(json_object_get(env, "signatures"), 0);
	const char *b64 = json_string_value(json_object_get(sig, "sig"));
	unsigned char raw[64];
	size_t n;
	assert_int_equal(sodium_base642bin(raw, sizeof(raw), b64, strlen(b64), NULL, &n, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	raw[10] ^= 1;
	char out[128];
	sodium_bin2base64(out, sizeof(out), raw, n, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(sig, "sig", json_string(out));
	set_envelope(x, env);
}

/* The statement and its signed payload changed together. */
static void flip_payload(struct pack *p)
{
	flip_statement(p);
	struct ent *x = ent_get(p, "statement.json"), *s = ent_get(p, "statement.sig");
	json_t *env = json_loadb((const char *)s->data, s->len, 0, NULL);
	char b64[8192];
	sodium_bin2base64(b64, sizeof(b64), x->data, x->len, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(env, "payload", json_string(b64));
	set_envelope(s, env);
}

/* The envelope unchanged, but formatted otherwise. */
static void reformat_sig(struct pack *p)
{
	struct ent *x = ent_get(p, "statement.sig");
	json_t *env = json_loadb((const char *)x->data, x->len, 0, NULL);
	char *text = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
	ent_set(x, text, strlen(text));
	free(text);
	json_decref(env);
}

static void drop_stdout(struct pack *p)
{
	ent_drop(p, "stdout");
}

static void drop_audit(struct pack *p)
{
	ent_drop(p, "audit.jsonl");
}

static void drop_sig(struct pack *p)
{
	ent_drop(p, "statement.sig");
}

static void add_artifact(struct pack *p)
{
	ent_add(p, "artifacts/extra.txt", "more\n");
}

static void add_other(struct pack *p)
{
	ent_add(p, "notes.txt", "hello\n");
}

static void dup_events(struct pack *p)
{
	struct ent *x = ent_get(p, "events.ndjson");
	struct ent *y = ent_add(p, "events.ndjson", "");
	ent_set(y, x->data, x->len);
}

static void add_dotdot(struct pack *p)
{
	ent_add(p, "../evil.sh", "rm -rf /\n");
}

static void add_dotdot_inside(struct pack *p)
{
	ent_add(p, "artifacts/../../etc/cron.d/x", "* * * * * root sh\n");
}

static void add_absolute(struct pack *p)
{
	ent_add(p, "/etc/passwd", "root::0:0::/:/bin/sh\n");
}

static void symlink_stdout(struct pack *p)
{
	struct ent *x = ent_get(p, "stdout");
	x->type = AE_IFLNK;
	snprintf(x->link, sizeof(x->link), "/etc/shadow");
}

static void hardlink_stderr(struct pack *p)
{
	struct ent *x = ent_get(p, "stderr");
	x->hard = true;
	snprintf(x->link, sizeof(x->link), "stdout");
}

static void dir_entry(struct pack *p)
{
	struct ent *x = ent_add(p, "artifacts/d", "");
	x->type = AE_IFDIR;
	x->perm = 0755;
}

static void mode_change(struct pack *p)
{
	ent_get(p, "steps.json")->perm = 0755;
}

static void mtime_change(struct pack *p)
{
	ent_get(p, "steps.json")->mtime += 1;
}

static void truncate_audit_end(struct pack *p)
{
	/* The last line dropped: a valid, shorter chain. */
	struct ent *x = ent_get(p, "audit.jsonl");
	size_t n = x->len - 1;
	while (n > 0 && x->data[n - 1] != '\n')
		n--;
	x->len = n;
}

static void test_tamper_parts(void **state)
{
	struct fx *f = *state;
	tamper(f, flip_events, "events.ndjson", "the file was changed");
	tamper(f, flip_result, "result.json", "the file was changed");
	tamper(f, flip_artifact, "artifacts/report.md", "the file was changed");
	tamper(f, flip_audit, "audit.jsonl", "the file was changed");
	tamper(f, flip_record, "record.json", "the file was changed");
	tamper(f, flip_stdout, "stdout", "the file was changed");
	tamper(f, flip_manifest, "artifacts.json", "the file was changed");
	tamper(f, truncate_audit_end, "audit.jsonl", "the file was changed");
	tamper(f, flip_statement, "statement.json", "differs from the payload");
	tamper(f, flip_signature, "statement.sig", "does not verify");
	tamper(f, flip_payload, "statement.sig", "does not verify");
	tamper(f, reformat_sig, "statement.sig", "not in the form");
}

static void test_tamper_files(void **state)
{
	struct fx *f = *state;
	tamper(f, drop_stdout, "stdout", "missing from the pack");
	tamper(f, drop_audit, "audit.jsonl", "missing from the pack");
	tamper(f, drop_sig, "statement.sig", "not signed");
	tamper(f, add_artifact, "artifacts/extra.txt", "not in the signed statement");
	tamper(f, add_other, "notes.txt", "not a file an evidence pack holds");
	tamper(f, dup_events, "events.ndjson", "two entries");
}

static void test_tamper_entries(void **state)
{
	struct fx *f = *state;
	tamper(f, add_dotdot, "../evil.sh", "\"..\"");
	tamper(f, add_dotdot_inside, "artifacts/../../etc/cron.d/x", "\"..\"");
	tamper(f, add_absolute, "/etc/passwd", "absolute");
	tamper(f, symlink_stdout, "stdout", "symbolic link");
	tamper(f, hardlink_stderr, "stderr", "hard link");
	tamper(f, dir_entry, "artifacts/d/", "directory");
	tamper(f, mode_change, "steps.json", "tar header");
	tamper(f, mtime_change, "steps.json", "tar header");
}

static void test_tamper_container(void **state)
{
	struct fx *f = *state;
	/* Bytes after the gzip stream. */
	unsigned char *buf = malloc(f->len + 16);
	memcpy(buf, f->buf, f->len);
	memcpy(buf + f->len, "trailing garbage", 16);
	expect_bad(f, buf, f->len + 16, "archive", "after the end of the gzip");
	/* A byte of the compressed data: the CRC or the inflate fails, or a
	 * file changes; any of them, never "intact". */
	for (size_t off = 20; off < f->len; off += f->len / 7) {
		memcpy(buf, f->buf, f->len);
		buf[off] ^= 0x55;
		struct evidence_trust t = { .keys = f->trusted, .n_keys = 1 };
		struct evidence_report rep;
		struct cdn_err err = { 0 };
		assert_int_equal(evidence_verify_mem(buf, f->len, &t, &rep, &err), 1);
		assert_false(rep.intact);
		evidence_report_clear(&rep);
	}
	/* Cut short. */
	expect_bad(f, f->buf, f->len / 2, "archive", NULL);
	free(buf);

	/* Not gzip: the same tar, uncompressed. */
	struct pack p;
	pack_read(f->buf, f->len, &p);
	size_t len;
	buf = pack_write(&p, false, &len);
	expect_bad(f, buf, len, "archive", "gzip");
	free(buf);

	/* A second archive hidden after the first one's end (tar -i reads it). */
	unsigned char *one = pack_write(&p, false, &len);
	struct pack q = { calloc(MAX_ENTS, sizeof(struct ent)), 0 };
	q.e[0] = (struct ent){ .name = "stdout", .type = AE_IFREG, .perm = 0644 };
	ent_set(&q.e[0], "forged\n", 7);
	q.n = 1;
	size_t len2;
	unsigned char *two = pack_write(&q, false, &len2);
	one = realloc(one, len + len2);
	memcpy(one + len, two, len2);
	/* gzip the concatenation as one raw stream. */
	struct growbuf g = { 0 };
	struct archive *a = archive_write_new();
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	archive_write_open(a, &g, NULL, grow_write, NULL);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_pathname(e, "raw");
	archive_write_header(a, e);
	archive_write_data(a, one, len + len2);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	expect_bad(f, g.p, g.len, "archive", "after the end of the tar");
	free(g.p);
	free(one);
	free(two);
	pack_free(&q);

	/* Too many entries. */
	for (int i = 0; p.n < EVIDENCE_MAX_ENTRIES + 1; i++) {
		char name[64];
		snprintf(name, sizeof(name), "artifacts/f%d.txt", i);
		ent_add(&p, name, "");
	}
	buf = pack_write(&p, true, &len);
	expect_bad(f, buf, len, "archive", "more than");
	free(buf);
	pack_free(&p);
}

/* A tar header claiming a file larger than any pack may hold. */
static void test_oversized_entry(void **state)
{
	struct fx *f = *state;
	unsigned char tar[1536] = { 0 };
	strcpy((char *)tar, "events.ndjson");
	memcpy(tar + 100, "0000644", 8);
	memcpy(tar + 108, "0000000", 8);
	memcpy(tar + 116, "0000000", 8);
	snprintf((char *)tar + 124, 12, "%011llo", (unsigned long long)EVIDENCE_MAX_FILE + 1);
	memcpy(tar + 136, "00000000000", 12);
	tar[156] = '0';
	memcpy(tar + 257, "ustar", 6);
	memcpy(tar + 263, "00", 2);
	memset(tar + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += tar[i];
	snprintf((char *)tar + 148, 8, "%06o", sum);
	struct growbuf g = { 0 };
	struct archive *a = archive_write_new();
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	archive_write_open(a, &g, NULL, grow_write, NULL);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_pathname(e, "raw");
	archive_write_header(a, e);
	archive_write_data(a, tar, sizeof(tar));
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	expect_bad(f, g.p, g.len, "events.ndjson", "over the");
	free(g.p);
}

/* --- a pack re-signed by someone else, checked with --any-key: the
 * signature proves nothing about them, but the contents must still agree. */

static unsigned char *resign(struct fx *f, struct pack *p, size_t *len)
{
	struct cdn_err err = { 0 };
	int fd = memfd_create("pack", MFD_CLOEXEC);
	struct evidence_writer *w;
	struct ent *st = ent_get(p, "statement.json");
	json_t *stmt = json_loadb((const char *)st->data, st->len, 0, NULL);
	json_t *pred = json_deep_copy(json_object_get(stmt, "predicate"));
	json_object_del(pred, "signer");
	json_decref(stmt);
	assert_int_equal(evidence_writer_open(fd, p->e[0].mtime, &w, &err), 0);
	for (size_t i = 0; i < p->n; i++) {
		if (strncmp(p->e[i].name, "statement.", 10) == 0)
			continue;
		assert_int_equal(evidence_writer_add(w, p->e[i].name, p->e[i].data, p->e[i].len,
						     &err),
				 0);
	}
	assert_int_equal(evidence_writer_finish(w, pred, f->other, NULL, &err), 0);
	evidence_writer_free(w);
	json_decref(pred);
	struct stat sb;
	fstat(fd, &sb);
	unsigned char *buf = malloc((size_t)sb.st_size);
	assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static void expect_any_key(struct fx *f, mutate_fn fn, int want, const char *part,
			   const char *reason_has)
{
	struct pack p;
	pack_read(f->buf, f->len, &p);
	if (fn)
		fn(&p);
	size_t len;
	unsigned char *buf = resign(f, &p, &len);
	struct evidence_trust t = { .keys = f->trusted, .n_keys = 1, .any_key = true };
	struct evidence_report rep;
	struct cdn_err err = { 0 };
	int r = evidence_verify_mem(buf, len, &t, &rep, &err);
	if (r != want || (part && (strcmp(rep.part, part) != 0 ||
				   !strstr(rep.reason, reason_has))))
		fail_msg("verify: %d (want %d), part \"%s\" (want %s), reason \"%s\"", r, want,
			 rep.part, part ? part : "-", rep.reason);
	if (want == 0)
		assert_false(rep.trusted);
	evidence_report_clear(&rep);
	free(buf);
	pack_free(&p);
}

static void result_other_status(struct pack *p)
{
	flip_result(p);
}

static void manifest_other(struct pack *p)
{
	ent_set(ent_get(p, "artifacts.json"), "[]\n", 3);
}

static void record_other_result(struct pack *p)
{
	struct ent *x = ent_get(p, "record.json");
	char *s = memmem(x->data, x->len, "\"words\": 4", 10);
	s[9] = '5';
}

static void audit_chain_broken(struct pack *p)
{
	flip_audit(p);
}

static void artifact_bytes_other(struct pack *p)
{
	flip_artifact(p);
}

static void artifact_bytes_dropped(struct pack *p)
{
	ent_drop(p, "artifacts/report.md");
}

static void test_any_key_contents(void **state)
{
	struct fx *f = *state;
	expect_any_key(f, NULL, 0, NULL, NULL);
	expect_any_key(f, truncate_audit_end, 1, "audit.jsonl", "removed from the end");
	expect_any_key(f, audit_chain_broken, 1, "audit.jsonl", "chain is broken");
	expect_any_key(f, drop_audit, 1, "audit.jsonl", "missing");
	expect_any_key(f, result_other_status, 1, "result.json", "differs from the result");
	expect_any_key(f, record_other_result, 1, "result.json", "differs from the result");
	expect_any_key(f, manifest_other, 1, "artifacts.json", "differs");
	expect_any_key(f, artifact_bytes_other, 1, "artifacts/report.md", "do not match");
	expect_any_key(f, artifact_bytes_dropped, 1, "artifacts/report.md", "missing");
}

/* --- export */

static void test_export_refuses(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	assert_int_equal(export_run(f, "run_nope", false, false, &err), -ENOENT);
	assert_int_equal(export_run(f, "../../etc", false, false, &err), -ENOENT);
	make_run(f, "run_a", true, RUN_SUCCEEDED);
	struct evidence_export_opts o = { .run_id = "run_a", .workspace = "other",
					  .out_path = f->pack, .key = f->key };
	struct evidence_export_info info;
	assert_int_equal(evidence_export(f->s, &o, &info, &err), -ENOENT);

	/* result.json edited after the run: refused, not signed. */
	char path[512];
	snprintf(path, sizeof(path), "%s/result.json", f->rundir);
	size_t n;
	char *res = read_all(path, &n);
	char *s = strstr(res, "succeeded");
	memcpy(s, "SUCCEEDED", 9);
	write_text(f->rundir, "result.json", res);
	assert_int_equal(export_run(f, "run_a", false, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "result.json"));
	memcpy(s, "succeeded", 9);
	write_text(f->rundir, "result.json", res);
	free(res);

	/* The audit log's last line removed: refused. */
	snprintf(path, sizeof(path), "%s/audit.jsonl", f->rundir);
	char *log = read_all(path, &n);
	size_t cut = n - 1;
	while (cut > 0 && log[cut - 1] != '\n')
		cut--;
	assert_int_equal(truncate(path, (off_t)cut), 0);
	assert_int_equal(export_run(f, "run_a", false, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "audit.jsonl"));
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, log, n), (ssize_t)n);
	close(fd);
	free(log);

	/* An artifact changed: refused when its bytes are to be included. */
	char adir[300];
	snprintf(adir, sizeof(adir), "%s/artifacts", f->rundir);
	write_text(adir, "report.md", "# A report\nthe agent wrote this\n");
	assert_int_equal(export_run(f, "run_a", true, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "report.md"));
	assert_int_equal(access(f->pack, F_OK), -1); /* nothing left behind */
	write_text(adir, "report.md", ART_BYTES);
	assert_int_equal(export_run(f, "run_a", true, false, &err), 0);

	/* A run still going. */
	make_run(f, "run_b", false, RUN_RUNNING);
	assert_int_equal(export_run(f, "run_b", false, true, &err), -EBUSY);

	/* No temp files left beside the output. */
	int count = 0;
	DIR *d = opendir(f->tmp);
	struct dirent *de;
	while ((de = readdir(d)))
		count += de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	assert_int_equal(count, 0);
}

static void test_offline_and_error_runs(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct evidence_trust t = { .keys = f->trusted, .n_keys = 1 };
	struct evidence_report rep;
	make_run(f, "run_off", false, RUN_FAILED);
	assert_int_equal(export_run(f, "run_off", true, false, &err), 0);
	assert_int_equal(evidence_verify_file(f->pack, &t, &rep, &err), 0);
	assert_string_equal(rep.audit_head, "");
	assert_string_equal(rep.status, "failed");
	evidence_report_clear(&rep);

	/* A run that ended before it had a result: no result.json. */
	struct store_run r = { 0 };
	snprintf(r.id, sizeof(r.id), "run_err");
	snprintf(r.workspace, sizeof(r.workspace), "default");
	snprintf(r.agent, sizeof(r.agent), "bot");
	r.status = RUN_ERROR;
	r.exit_code = 125;
	snprintf(r.error, sizeof(r.error), "the supervisor died");
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/runs/run_err", f->state);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_text(dir, "events.ndjson", "{\"seq\":1,\"type\":\"run.created\"}\n");
	assert_int_equal(export_run(f, "run_err", false, true, &err), 0);
	if (evidence_verify_file(f->pack, &t, &rep, &err) != 0)
		fail_msg("%s: %s", rep.part, rep.reason);
	assert_string_equal(rep.status, "error");
	assert_int_equal(rep.n_files, 5); /* record, events, manifest, statement, sig */
	evidence_report_clear(&rep);
}

/* --- the key file */

static void test_key_file(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct evidence_key *k, *k2;
	unsetenv(EVIDENCE_KEY_ENV);
	assert_int_equal(evidence_key_load(f->state, false, &k, &err), -ENOENT);
	assert_int_equal(evidence_key_load(f->state, true, &k, &err), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/evidence.key", f->state);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 32);
	assert_int_equal(evidence_key_load(f->state, false, &k2, &err), 0);
	assert_memory_equal(evidence_key_public(k), evidence_key_public(k2), EVIDENCE_PK_BYTES);
	char id[65];
	evidence_keyid(evidence_key_public(k), id);
	assert_string_equal(id, evidence_key_id(k));
	evidence_key_free(k2);

	/* Wider than 0600: refused. */
	chmod(path, 0640);
	assert_int_equal(evidence_key_load(f->state, false, &k2, &err), -EPERM);
	assert_non_null(strstr(err.msg, "wider than 0600"));
	chmod(path, 0600);
	/* Another owner: refused (when we can make one). */
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 4242, 4242), 0);
		assert_int_equal(evidence_key_load(f->state, false, &k2, &err), -EPERM);
		assert_non_null(strstr(err.msg, "owned by uid 4242"));
		assert_int_equal(chown(path, 0, 0), 0);
	}
	/* A symlink: refused, even to a good key. */
	char real[256];
	snprintf(real, sizeof(real), "%s/real.key", f->tmp);
	assert_int_equal(rename(path, real), 0);
	assert_int_equal(symlink(real, path), 0);
	assert_int_equal(evidence_key_load(f->state, true, &k2, &err), -EPERM);
	assert_non_null(strstr(err.msg, "symbolic link"));
	unlink(path);
	assert_int_equal(rename(real, path), 0);

	/* The environment wins, as hex or base64 of the seed. */
	unsigned char seed[32];
	memset(seed, 7, sizeof(seed));
	char hex[65], b64[64];
	sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	setenv(EVIDENCE_KEY_ENV, hex, 1);
	assert_int_equal(evidence_key_load(f->state, false, &k2, &err), 0);
	assert_memory_equal(evidence_key_public(k2), evidence_key_public(f->key), 32);
	assert_string_equal(evidence_key_source(k2), "env");
	evidence_key_free(k2);
	setenv(EVIDENCE_KEY_ENV, b64, 1);
	assert_int_equal(evidence_key_load(f->state, false, &k2, &err), 0);
	assert_memory_equal(evidence_key_public(k2), evidence_key_public(f->key), 32);
	evidence_key_free(k2);
	setenv(EVIDENCE_KEY_ENV, "not a key", 1);
	assert_int_equal(evidence_key_load(f->state, true, &k2, &err), -EINVAL);
	assert_null(strstr(err.msg, "not a key")); /* never echoed */
	setenv(EVIDENCE_KEY_ENV, "", 1);
	assert_int_equal(evidence_key_load(f->state, true, &k2, &err), -EINVAL);
	unsetenv(EVIDENCE_KEY_ENV);
	evidence_key_free(k);

	unsigned char pk[32];
	assert_int_equal(evidence_public_parse(hex, pk, &err), 0);
	assert_int_equal(evidence_public_parse("abc", pk, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pae_vector),
		cmocka_unit_test_setup_teardown(test_round_trip, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_other_signer, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_tamper_parts, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_tamper_files, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_tamper_entries, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_tamper_container, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_entry, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_any_key_contents, setup_pack, teardown),
		cmocka_unit_test_setup_teardown(test_export_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_and_error_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
