/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: cordon's state on one machine.
 *
 *   <dir>/cordon.db        metadata, SQLite in WAL mode (or in Postgres: store_open_db)
 *   <dir>/blobs/ab/cd...   content-addressed files (sha256), immutable
 *   <dir>/trees/<hash>/    read-only checkouts of stored directory trees
 *   <dir>/runs/<id>/       one directory per run (the run module's)
 *   <dir>/policies/<ws>.yaml  a workspace's egress policy (PUT /v1/policy)
 *   <dir>/policy.yaml      the operator's egress policy, if kept here
 *   <dir>/tmp/             staging for atomic writes
 *
 * Every file is written atomically: temp file in <dir>/tmp, fsync, rename,
 * fsync of the directory. All SQL lives behind this header, in one of two
 * backends chosen at open (SQLite or Postgres), so callers never see which.
 *
 * Names (agents, capabilities, envs, secrets, workspaces) match
 * [a-z0-9][a-z0-9._-]{0,63} (STORE_MAX_NAME), except secret names, which
 * may also hold uppercase letters and start with one (they become
 * environment variables: OPENAI_API_KEY).
 */
#ifndef CORDON_STORE_H
#define CORDON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define STORE_MAX_NAME 64
#define STORE_HASH_HEX 64
#define STORE_RUN_ID_MAX 40
#define STORE_DEFAULT_WORKSPACE "default"
#define STORE_MAX_MANIFEST (64 * 1024) /* bytes of a stored manifest or env JSON */
#define STORE_MAX_SECRET_BLOB (128 * 1024) /* bytes of a ciphertext or wrapped key */
#define STORE_MAX_RUN_JSON (1024 * 1024)   /* bytes of a run's input_json */
/* bytes of a run's result_json: room for an output.json of its whole bound
 * (RUN_MAX_OUTPUT, 1 MiB) and the rest of the result beside it */
#define STORE_MAX_RUN_RESULT (2 * 1024 * 1024)
#define STORE_BOOT_ID_MAX 40 /* bytes of a boot id, with its NUL: CDN_BOOT_ID_MAX (base/proc.h) */
#define STORE_WORKER_ID_MAX 64	   /* bytes of a worker's id */
#define STORE_MAX_LABELS 16	   /* labels of a run or a worker */
#define STORE_LABEL_MAX 63	   /* bytes of a label's key or value */
#define STORE_LABELS_JSON_MAX 2304 /* their canonical JSON, at most */
#define STORE_RETRY_MAX 5	   /* retries of a lost run an agent may ask for */

struct store;

/* $CORDON_STATE (absolute; empty counts as unset), else /var/lib/cordon
 * for root, else $XDG_STATE_HOME/cordon (when absolute), else
 * $HOME/.local/state/cordon. */
int store_default_dir(char *out, size_t cap, struct cdn_err *err);

/* $CORDON_DATABASE_URL, or NULL when it is unset or empty: the database
 * store_open keeps the metadata in. */
const char *store_default_database(void);

/*
 * Opens (creating 0700 directories and the schema when new) the store.
 * Refuses a directory that is a symlink, is owned by another uid or is
 * writable by group or others. Several processes may open one store.
 * The metadata goes to `database`: NULL (or "") for SQLite in
 * <dir>/cordon.db, a postgresql:// (or postgres://) URL for Postgres
 * (docs/state.md); blobs, trees and run files stay in dir either way,
 * and are also on S3 when store_default_blobs() names a location
 * (store_blobs_attach). store_open takes store_default_database().
 */
int store_open_db(const char *dir, const char *database, struct store **out,
		  struct cdn_err *err);
int store_open(const char *dir, struct store **out, struct cdn_err *err);
/* "sqlite" or "postgres". */
const char *store_backend(const struct store *s);

/*
 * Blobs on S3 (docs/state.md, "Blobs and run files on S3"): with a
 * location s3://BUCKET/PREFIX, every blob stored is written through to
 * PREFIX/blobs/ab/cdef..., a blob missing here is fetched from there
 * (checked against its name) into blobs/, and a finished run's files go
 * to PREFIX/runs/<id>/ with their sha256, fetched back (checked) by a
 * reader on a host that does not have them. The state directory is then
 * a cache of blobs and runs. store_open attaches store_default_blobs().
 */
/* $CORDON_BLOBS, or NULL when it is unset or empty. */
const char *store_default_blobs(void);
/* Attaches url (NULL or "": none, the state directory only). Nothing is
 * sent: store_blobs_check reads the bucket. */
int store_blobs_attach(struct store *s, const char *url, struct cdn_err *err);
int store_blobs_check(struct store *s, struct cdn_err *err);
/* "s3://BUCKET/PREFIX", or NULL without one. */
const char *store_blobs_shown(const struct store *s);
/* Uploads the files of run id (runs/<id>/: events, stdout, stderr,
 * audit, steps, result, artifacts/) with an index of their sha256s,
 * index last; 0 at once without S3. */
int store_run_files_push(struct store *s, const char *id, struct cdn_err *err);
/* Removes this host's copy of run id's files, once pushed (a worker keeps
 * none: the bucket is where every host reads them); 0 at once without
 * S3. */
int store_run_files_drop(struct store *s, const char *id, struct cdn_err *err);
/* Makes runs/<id>/ local: nothing when it is here or there is no S3;
 * else its files fetched by the index, each checked against its sha256,
 * and the directory put in place whole. -ENOENT when S3 has none. */
int store_run_files_pull(struct store *s, const char *id, struct cdn_err *err);
/* Deletes from S3 the files of run id that names lists (NULL-terminated;
 * "artifacts" is all of artifacts/), its index rewritten without them
 * first; names NULL: every file and the index. 0 at once without S3, or
 * when S3 has no index of the run. Pruning's (docs/retention.md). */
int store_run_files_prune(struct store *s, const char *id, const char *const *names,
			  struct cdn_err *err);
/* A database URL as messages show it: the password (user:PASSWORD@ and
 * password=... in the query) replaced by "***". Returns out. */
const char *store_database_shown(const char *url, char *out, size_t cap);
void store_close(struct store *s);
const char *store_dir(const struct store *s);

/*
 * The grammars of the identifiers cordon keeps, defined here once: they
 * become paths and keys. Whatever takes such a name from a user checks it
 * with these (the manifest parser too, which may only add rules):
 *   store names: agents, capabilities, envs, workspaces, API key names:
 *     [a-z0-9][a-z0-9._-]{0,63}
 *   secret names:  [A-Za-z0-9][A-Za-z0-9._-]{0,63}
 *   run ids:       [A-Za-z0-9][A-Za-z0-9._-]{0,39}
 * NULL is none of them. The _check forms say what is wrong in err.
 */
bool store_name_ok(const char *name);
bool store_secret_name_ok(const char *name);
bool store_run_id_ok(const char *id);
/* what: "agent", "capability", ... for the message. */
int store_name_check(const char *what, const char *name, struct cdn_err *err);
int store_secret_name_check(const char *name, struct cdn_err *err);

/*
 * The state directory's layout (docs/state.md), named here and nowhere
 * else. Each writes the path of one place into out: under the state
 * directory, or, when s is NULL, relative to it (the way messages and the
 * API name a file: "policies/team.yaml"). 0; -EINVAL when a name is not a
 * run id or a workspace name, so no path is ever built from one that could
 * climb out; -ENAMETOOLONG when out is too small. err says which.
 */
#define STORE_RUNS_DIR	      "runs"	    /* runs/<id>/: one per run, the run module's */
#define STORE_POLICIES_DIR    "policies"    /* policies/<workspace>.yaml */
#define STORE_OPERATOR_POLICY "policy.yaml" /* the operator's egress policy */
#define STORE_TMP_DIR	      "tmp"	    /* staging; emptied of the dead's files */
/* runs/<id>, or runs/<id>/<file> when file is not NULL ("events.ndjson",
 * "artifacts/report.json": the run module names its files). */
int store_run_file(const struct store *s, const char *run_id, const char *file, char *out,
		   size_t cap, struct cdn_err *err);
/* policies/<ws>.yaml: a workspace's own egress policy. */
int store_policy_path(const struct store *s, const char *ws, char *out, size_t cap,
		      struct cdn_err *err);
/* policy.yaml: the operator's egress policy, when it is kept in the state. */
int store_operator_policy_path(const struct store *s, char *out, size_t cap, struct cdn_err *err);
/* tmp/<name>: staging for a file of another module (a mkstemp template,
 * "upload.XXXXXX"); name is one component of the caller's choosing. */
int store_tmp_path(const struct store *s, const char *name, char *out, size_t cap,
		   struct cdn_err *err);
/* Replaces policies/<ws>.yaml (as store_write_atomic, mode 0600), making
 * policies/ (0700) first when it is missing. */
int store_policy_put(struct store *s, const char *ws, const void *data, size_t len,
		     struct cdn_err *err);

/* Writes data to path atomically (temp + fsync + rename + dir fsync). A
 * relative path is taken from the store directory; the parent directory
 * must exist; a target on another filesystem gets its temp file beside it.
 * mode is applied exactly (no umask). */
int store_write_atomic(struct store *s, const char *path, const void *data, size_t len,
		       unsigned mode, struct cdn_err *err);

/* ------------------------------------------------------------------ blobs */

int store_blob_put(struct store *s, const void *data, size_t len, char hex[STORE_HASH_HEX + 1],
		   struct cdn_err *err);
/* Reads fd to EOF (at most max bytes: E2BIG beyond) into a blob. */
int store_blob_put_fd(struct store *s, int fd, uint64_t max, char hex[STORE_HASH_HEX + 1],
		      uint64_t *size, struct cdn_err *err);
/* The blob's file path; -ENOENT when it is not stored. */
int store_blob_path(struct store *s, const char *hex, char *out, size_t cap, struct cdn_err *err);
/* Copies a blob to path as store_write_atomic does, checking its hash on
 * the way (-EIO when the stored file does not match: disk corruption). */
int store_blob_export(struct store *s, const char *hex, const char *path, unsigned mode,
		      struct cdn_err *err);

/* ------------------------------------------------------------------ trees */

/* A zero field takes its default. */
struct tree_limits {
	uint64_t max_files;  /* entries, files and directories; default 10000 */
	uint64_t max_bytes;  /* default 256 MiB */
	unsigned max_depth;  /* default 32 */
};

/*
 * Snapshots a directory: walks it (never following symlinks; refusing
 * devices, fifos and sockets, names that are not UTF-8 or hold control
 * characters, and anything over the limits; dir itself may be a symlink,
 * as the caller named it), stores each file as a blob, and returns the
 * tree's hash: sha256 over the canonical listing, one line per entry
 * sorted by path bytes:
 *   "<mode> <sha256> <size> <path>\n"   files (mode 0644 or 0755)
 *   "dir <path>\n"                      directories
 *   "link <length> <target> <path>\n"   symlinks (length: the target's bytes)
 * A symlink is kept only when it is relative and resolves, following
 * links to links, to an entry inside the tree; absolute, escaping ("..",
 * directly or through other links), dangling and looping links are
 * refused, naming the link (docs/state.md).
 * The same bytes and layout give the same hash on any machine.
 */
int store_tree_import(struct store *s, const char *dir, const struct tree_limits *lim,
		      char hash[STORE_HASH_HEX + 1], struct cdn_err *err);

/* The hash store_tree_import would give dir, by the same walk and rules,
 * without a store: what the CLI sends with an upload, so that the server
 * registers exactly the tree the client packed. */
int store_tree_hash(const char *dir, const struct tree_limits *lim, char hash[STORE_HASH_HEX + 1],
		    struct cdn_err *err);

/*
 * A fresh private directory (0700) under <dir>/tmp for the caller to fill,
 * e.g. with an uploaded bundle before store_tree_import: its path (cap at
 * least PATH_MAX) and an O_DIRECTORY fd the caller closes.
 * store_scratch_remove deletes it with everything in it; a process that
 * dies leaves it to the next store_open's temp cleanup.
 */
int store_scratch_dir(struct store *s, char *path, size_t cap, int *fd, struct cdn_err *err);
void store_scratch_remove(struct store *s, const char *path);

/* The canonical listing of a stored tree (caller frees). */
int store_tree_listing(struct store *s, const char *hash, char **listing, size_t *len,
		       struct cdn_err *err);

/* The bytes of the regular file at path in a stored tree (caller frees
 * *out, NUL-terminated), read from its blob and checked against its hash,
 * without a checkout: ENOENT when path is not in the tree, EISDIR for a
 * directory, ELOOP for a symlink (never followed), EFBIG over max bytes,
 * EIO when the blob is damaged. */
int store_tree_file_read(struct store *s, const char *hash, const char *path, size_t max,
			 char **out, size_t *len, struct cdn_err *err);

/* A read-only directory with the tree's files, <dir>/trees/<hash>, made
 * once (atomically) and reused. */
int store_tree_checkout(struct store *s, const char *hash, char *path, size_t cap,
			struct cdn_err *err);

/* ------------------------------------------------------ dependency layers */

/*
 * <dir>/deps/<key>/: an agent's dependencies, built once in a sandbox and
 * bound read-only into its runs (docs/deps.md; the key and the build are
 * src/run/deps.h's). Not in the database: a layer is its directory.
 */
#define STORE_LAYER_META "layer.json" /* written by cordon into each layer */

struct store_layer_info {
	char key[STORE_HASH_HEX + 1];
	uint64_t files; /* entries: files, directories and links */
	uint64_t bytes; /* of the regular files */
	bool installed; /* false: another build of the key was there first */
};

/* <dir>/deps/<key> and whether it is there (a directory). */
int store_layer_path(struct store *s, const char *key, char *path, size_t cap, bool *exists,
		     struct cdn_err *err);
/* A flock on <dir>/deps/<key>.lock, how LOCK_SH (a run using the layer)
 * or LOCK_EX (its build; its removal), waited for; *fd is closed by the
 * caller to release it. The lock is on the file the name has once it is
 * held (gc unlinks the name under the exclusive lock). */
int store_layer_lock(struct store *s, const char *key, int how, int *fd, struct cdn_err *err);
/* Seals a scratch directory (store_scratch_dir) a build filled: writes
 * meta as its layer.json, makes every entry ours and read-only, removes
 * FIFOs, sockets and devices, never follows a symlink; then renames it to
 * <dir>/deps/<key> in one step. A layer of that key already there is kept
 * and the scratch removed (info->installed false). */
int store_layer_install(struct store *s, const char *scratch, const char *key, const char *meta,
			struct store_layer_info *info, struct cdn_err *err);
/* The keys of the layers there (caller frees *keys). */
int store_layer_list(struct store *s, char (**keys)[STORE_HASH_HEX + 1], size_t *n,
		     struct cdn_err *err);
/* Renames the layer out of deps/ in one step, then deletes it, under its
 * exclusive lock taken without waiting: -EBUSY (err set) when a run holds
 * it shared or a build holds it, and nothing is removed. With dry, only
 * says whether it could. */
int store_layer_remove(struct store *s, const char *key, bool dry, struct cdn_err *err);

/* --------------------------------------------------------------- registry */

enum store_kind {
	STORE_AGENT,
	STORE_CAPABILITY,
	STORE_ENV,
};

struct store_item {
	enum store_kind kind;
	char workspace[STORE_MAX_NAME + 1];
	char name[STORE_MAX_NAME + 1];
	unsigned version;		   /* 1, 2, ... per name */
	char hash[STORE_HASH_HEX + 1];	   /* content hash */
	char tree[STORE_HASH_HEX + 1];	   /* agents and capabilities: stored tree; envs: "" */
	char *doc;			   /* agents: agent.json; envs: {"K":"V",...}; caps: NULL */
	int64_t created;		   /* unix seconds */
};

/*
 * Registers a version. When the latest version of (kind, workspace, name)
 * has the same hash, nothing changes and *version is that one; otherwise a
 * new version (latest + 1) is created. *created tells which.
 */
int store_item_put(struct store *s, const struct store_item *item, unsigned *version, bool *created,
		   struct cdn_err *err);

/* version 0: the latest. -ENOENT when absent. Free with store_item_clear. */
int store_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		   unsigned version, struct store_item *out, struct cdn_err *err);
void store_item_clear(struct store_item *it);

/* Latest version of each name, sorted by name. Free with store_items_free. */
int store_item_list(struct store *s, enum store_kind kind, const char *ws, struct store_item **out,
		    size_t *n, struct cdn_err *err);
void store_items_free(struct store_item *items, size_t n);

int store_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		    struct cdn_err *err);
bool store_grant_has(struct store *s, const char *ws, const char *agent, const char *capability);

/* ---------------------------------------------------------------- secrets */

struct store_secret_info {
	char name[STORE_MAX_NAME + 1];
	int64_t created, updated;
	size_t size; /* plaintext length, as the vault recorded it */
};

/* Ciphertext only: the vault encrypts before and decrypts after. */
int store_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		     size_t len, size_t plain_len, struct cdn_err *err);
/* -ENOENT when absent; *blob is malloc'd. */
int store_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob,
		     size_t *len, struct cdn_err *err);
/* -ENOENT when absent. */
int store_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err);
int store_secret_list(struct store *s, const char *ws, struct store_secret_info **out, size_t *n,
		      struct cdn_err *err);

/* A workspace's wrapped data key; -ENOENT before the first secret. */
int store_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		    struct cdn_err *err);
/* Never replaces a key (that would orphan every secret sealed with it):
 * -EEXIST when the workspace has one, e.g. another process made it first;
 * get it again and use that one. */
int store_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		    struct cdn_err *err);

/* ------------------------------------------------------------------- runs */

enum store_run_status {
	RUN_CREATED = 0,
	RUN_RUNNING,
	RUN_SUCCEEDED,
	RUN_FAILED,
	RUN_TIMEOUT,
	RUN_OOM,
	RUN_KILLED,
	RUN_ERROR,
	RUN_CANCELLED,
	/* Final: the worker that held its lease stopped renewing it (it died,
	 * or lost the database); never re-run silently (docs/deploy.md). */
	RUN_LOST,
};

struct store_run {
	char id[STORE_RUN_ID_MAX + 1];
	char workspace[STORE_MAX_NAME + 1];
	char agent[STORE_MAX_NAME + 1];
	unsigned agent_version;		 /* 0 for an unregistered directory */
	char agent_hash[STORE_HASH_HEX + 1];
	enum store_run_status status;
	int exit_code;			 /* -1 until known */
	char caller[128];
	int64_t created_ms, started_ms, finished_ms;
	int supervisor_pid;		 /* whose process runs it, for crash recovery */
	char supervisor_boot[STORE_BOOT_ID_MAX];	 /* /proc/sys/kernel/random/boot_id */
	/* When that process started (/proc/PID/stat field 22, clock ticks
	 * after boot), so a pid reused by a later process is told apart. Read
	 * back only: create and claim take it from supervisor_pid's process
	 * then. 0: unknown. */
	uint64_t supervisor_start;
	char *input_json;		 /* may be NULL */
	char *result_json;		 /* result.json, once finished; may be NULL */
	char error[256];		 /* why, for RUN_ERROR */
	/* The audit log's chain head and line count as last written
	 * (store_run_anchor); "" and 0 when the run has no log, or was
	 * recorded before schema 5. Read back only. */
	char audit_head[STORE_HASH_HEX + 1];
	uint64_t audit_records;
	/* sha256 of the run's stdout and stderr files as they were when it
	 * ended ("" before): written by store_run_update. */
	char stdout_sha256[STORE_HASH_HEX + 1];
	char stderr_sha256[STORE_HASH_HEX + 1];
	/* Workers (docs/deploy.md): the worker whose lease the run is under
	 * ("" for a run of a single host, judged by its supervisor) and until
	 * when (unix ms); the labels a worker must have to take it (a JSON
	 * object of strings, canonical: store_labels_parse; "" for none); its
	 * attempt (1, 2, ...), the run it retries ("" for a first attempt),
	 * and how many retries the agent allows when a run is lost. */
	char lease_owner[STORE_WORKER_ID_MAX + 1];
	int64_t lease_until_ms;
	char labels[STORE_LABELS_JSON_MAX + 1];
	unsigned attempt;
	char retry_of[STORE_RUN_ID_MAX + 1];
	unsigned retry_max;
};

const char *store_run_status_name(enum store_run_status st);
int store_run_status_parse(const char *name, enum store_run_status *st);
bool store_run_status_final(enum store_run_status st);

/* 0 when id is a run id (store_run_id_ok: it names files and sockets,
 * so nothing else). */
int store_run_id_check(const char *id, struct cdn_err *err);

/* -EEXIST when the id is taken. The id is [A-Za-z0-9][A-Za-z0-9._-]*, at
 * most STORE_RUN_ID_MAX bytes. */
int store_run_create(struct store *s, const struct store_run *r, struct cdn_err *err);
/* Updates status, exit code, timings, result, error and the output hashes;
 * -ENOENT when absent, -ESTALE when the run was marked lost (a lost
 * record stays lost: its worker's lease ran out and it may be retried). */
int store_run_update(struct store *s, const struct store_run *r, struct cdn_err *err);
/* Records the audit log's head after `records` lines: called as lines are
 * written, so that a log cut short later is found out. */
int store_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		     struct cdn_err *err);
/* -ENOENT when absent. Free with store_run_clear. */
int store_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err);
void store_run_clear(struct store_run *r);

struct store_run_query {
	const char *workspace;		 /* required */
	const char *agent;		 /* NULL: any */
	int status;			 /* -1: any, else enum store_run_status */
	int64_t before_ms;		 /* 0: none; runs created strictly before (paging) */
	const char *before_id;		 /* tie-break for equal created_ms */
	size_t limit;			 /* 1..1000 */
};

/* Newest first. Free with store_runs_free. */
int store_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		   size_t *n, struct cdn_err *err);
void store_runs_free(struct store_run *runs, size_t n);

/* A run created ahead of time (status created, e.g. queued by the server)
 * taken over by the process that runs it: agent, hash, supervisor and
 * input are set. -ENOENT unless it is still "created" in that workspace
 * and its lease is r->lease_owner's ("" for a run with no lease) and has
 * not run out: a run whose worker lost it is never started. */
int store_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err);
/* Why a claim of r is refused: not waiting, or not under r->lease_owner's
 * lease (any more). Returns buf. */
const char *store_claim_refused(const struct store_run *r, char *buf, size_t cap);

/*
 * Crash recovery: runs still "created" or "running" whose supervisor is no
 * longer alive (other boot, or no such pid, or a zombie, or a pid whose
 * comm is not "cordon", "cordon-full" or "cordon-api") are marked RUN_ERROR with "the
 * supervisor died (crash or kill) before the run finished" and finished_ms
 * set. Returns how many.
 */
int store_runs_recover(struct store *s, struct cdn_err *err);

/* ----------------------------------------------------- workers and leases */

/*
 * Labels: a JSON object of at most STORE_MAX_LABELS string values, each
 * key and value [A-Za-z0-9][A-Za-z0-9._-]{0,62}. A run asks for labels;
 * a worker has labels, and takes only runs whose labels are a subset of
 * its own. Parses json (NULL, "" or "{}" is none) into its canonical
 * text (keys sorted, compact; "" for none).
 */
int store_labels_parse(const char *json, char out[STORE_LABELS_JSON_MAX + 1],
		       struct cdn_err *err);
/* Adds one "KEY=VALUE" to canonical labels in place (a key given twice
 * takes the later value). */
int store_labels_add(char labels[STORE_LABELS_JSON_MAX + 1], const char *kv,
		     struct cdn_err *err);
/* A worker's id: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
bool store_worker_id_ok(const char *id);

/*
 * A queued run waiting for a worker is a record with status "created", no
 * supervisor yet (supervisor_pid 0) and no lease (cordon serve --dispatch
 * workers makes them). store_run_lease_claim gives the oldest such run
 * whose labels are a subset of `labels` to `worker`, with a lease until
 * now + lease_ms, atomically (Postgres: FOR UPDATE SKIP LOCKED; SQLite: a
 * BEGIN IMMEDIATE transaction): two workers never take one run. 1 with
 * *out filled (free with store_run_clear), 0 when none waits.
 */
int store_run_lease_claim(struct store *s, const char *worker, const char *labels,
			  int64_t lease_ms, struct store_run *out, struct cdn_err *err);
/*
 * Heartbeat: every unfinished run whose lease `worker` holds and that has
 * not run out gets a lease until now + lease_ms. *ids (malloc'd, free()
 * it; NULL when none) lists the runs renewed: a run of the worker's that
 * is missing was lost, and the worker must stop it.
 */
int store_lease_renew(struct store *s, const char *worker, int64_t lease_ms,
		      char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err);
/*
 * Expiry: every unfinished run whose lease ran out before now_ms is marked
 * RUN_LOST with "worker W's lease expired at <RFC 3339>", never re-run;
 * when its agent opted in (retry_max) and attempts are left, a new record
 * is queued in the same transaction: attempt + 1, retry_of set. Safe from
 * any number of nodes at once: the statement that marks a run repeats
 * its owner and lease, so exactly one marks it. Returns how many it
 * marked; when lost is not NULL, *lost lists them as marked (without input
 * and result; free with store_runs_free).
 */
int store_leases_expire(struct store *s, int64_t now_ms, struct store_run **lost, size_t *n,
			struct cdn_err *err);
/* A run still waiting for a worker (no worker took it yet) is marked
 * cancelled with why, in one statement: 1, or 0 when it was not waiting
 * (taken, finished, not such a run). */
int store_run_cancel_queued(struct store *s, const char *id, const char *why,
			    struct cdn_err *err);

/*
 * Postgres: a connection of the store's own LISTENs for runs queued for a
 * worker (each such record, and each retry, is announced with NOTIFY when
 * its transaction commits); *fd becomes readable when one was. -ENOTSUP
 * with SQLite (poll instead). store_queue_notified consumes what arrived
 * (on this channel, or store_run_listen's):
 * true when a run was announced, or when the connection broke (then look,
 * and listen again; *fd is no longer valid).
 */
int store_queue_listen(struct store *s, int *fd, struct cdn_err *err);
bool store_queue_notified(struct store *s, bool *broken);
/*
 * Reaching a run on another host (Postgres; SQLite answers -ENOTSUP: on
 * one host the run's control socket, src/run/control.h, is the way). The
 * table carries what that socket carries:
 *  - the run publishes each request that waits for a human, as the entry
 *    its socket would list (JSON text), and closes it once it is decided,
 *    timed out or abandoned;
 *  - any node decides an open one of its workspace
 *    (store_control_decide) or asks a running run to stop
 *    (store_control_cancel); either NOTIFYs the run's channel in the
 *    statement's transaction;
 *  - the run LISTENs (store_run_listen) and also polls, takes what was
 *    asked (store_controls_take), applies it exactly as a request on its
 *    socket, and writes the outcome (store_control_done), which the
 *    asking node waits for (store_control_outcome);
 *  - the run's end removes its rows (store_run_live_clear), as does the
 *    node that marks it lost.
 * Live events likewise: a run whose files go to S3 at its end also writes
 * its events as it goes (store_run_events_put: a batch, a JSON array of
 * [seq, line] pairs, each line as its events.ndjson has it), which a
 * follower on another host reads (store_run_events_read) until the run
 * has ended and its events file is in the bucket.
 * Ids are the approval's (apr_...) or, for a cancel, made here.
 */
#define STORE_CONTROL_ID_MAX 63
#define STORE_CONTROL_BY_MAX 159
#define STORE_CONTROL_ENTRY_MAX 32768
struct store_control {
	char id[STORE_CONTROL_ID_MAX + 1];
	char run_id[STORE_RUN_ID_MAX + 1];
	bool cancel;  /* else an approval */
	bool approve; /* an approval's decision (store_controls_take) */
	char by[STORE_CONTROL_BY_MAX + 1];
	char *entry; /* the listing entry, JSON text (store_controls_list) */
	int64_t created_ms, deadline_ms; /* wall clock; deadline 0: none */
};
void store_controls_free(struct store_control *c, size_t n);
/* True when the store carries run controls and live events (Postgres). */
bool store_has_run_controls(const struct store *s);
int store_control_publish(struct store *s, const char *run_id, const char *ws, const char *id,
			  const char *entry, int64_t created_ms, int64_t deadline_ms,
			  struct cdn_err *err);
int store_control_close(struct store *s, const char *run_id, const char *id,
			struct cdn_err *err);
/* The open approvals of ws's running runs, oldest first. */
int store_controls_list(struct store *s, const char *ws, struct store_control **out, size_t *n,
			struct cdn_err *err);
/* 1 with run_id (STORE_RUN_ID_MAX + 1 bytes) set when ws had such an open
 * approval and this call decided it; 0 when not (no such id, another
 * workspace's, decided or closed already). */
int store_control_decide(struct store *s, const char *ws, const char *id, bool approve,
			 const char *by, char *run_id, struct cdn_err *err);
/* 1 with id (STORE_CONTROL_ID_MAX + 1 bytes) set when run_id is ws's and
 * running; 0 when not. */
int store_control_cancel(struct store *s, const char *ws, const char *run_id, const char *by,
			 char *id, struct cdn_err *err);
/* What was asked of run_id and not yet answered, in the order asked. */
int store_controls_take(struct store *s, const char *run_id, struct store_control **out,
			size_t *n, struct cdn_err *err);
/* outcome "" when it was done, else why not. */
int store_control_done(struct store *s, const char *id, const char *outcome,
		       struct cdn_err *err);
/* 1 with the outcome in out once the run answered, 0 while it has not,
 * -ENOENT when the row is gone (the run ended). */
int store_control_outcome(struct store *s, const char *id, char *out, size_t cap,
			  struct cdn_err *err);
/* The run's rows, controls and live events, gone (its end, its loss). */
int store_run_live_clear(struct store *s, const char *run_id, struct cdn_err *err);
struct store_event_line {
	uint64_t seq;
	char *line;
	size_t len;
};
void store_event_lines_free(struct store_event_line *v, size_t n);
#define STORE_EVENTS_BATCH_MAX (1u << 20) /* bytes of one batch */
int store_run_events_put(struct store *s, const char *run_id, const char *batch,
			 struct cdn_err *err);
/* At most max lines with seq > after, in order. */
int store_run_events_read(struct store *s, const char *run_id, uint64_t after, unsigned max,
			  struct store_event_line **out, size_t *n, struct cdn_err *err);
/* As store_queue_listen, on run_id's channel; store_queue_notified
 * consumes what arrived (a store LISTENs on one channel at a time). */
int store_run_listen(struct store *s, const char *run_id, int *fd, struct cdn_err *err);
/* Closes the connection that listens (either kind), if any. */
void store_unlisten(struct store *s);

/* Runs waiting for a worker: in all, and of workspace ws (the API's queue
 * bounds, cordon serve --queue and --workspace-queue). */
int store_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		      struct cdn_err *err);

/* -------------------------------------------------------------- schedules */

/*
 * A schedule starts runs of an agent on a cron schedule (docs/schedules.md):
 * cordon serve fires it. next_ms is when it fires next; a node fires a due
 * schedule only by moving next_ms on from the value it read
 * (store_schedule_claim), so of several nodes exactly one fires each time.
 */
#define STORE_SCHEDULE_EXPR_MAX 128
#define STORE_SCHEDULE_TZ_MAX 64
#define STORE_SCHEDULES_MAX 100 /* a workspace's */
enum store_overlap { OVERLAP_FORBID, OVERLAP_ALLOW, OVERLAP_REPLACE };
enum store_catchup { CATCHUP_SKIP, CATCHUP_ONCE };
struct store_schedule {
	char workspace[STORE_MAX_NAME + 1];
	char name[STORE_MAX_NAME + 1];
	char agent[STORE_MAX_NAME + 12]; /* NAME or NAME@VERSION */
	char cron[STORE_SCHEDULE_EXPR_MAX + 1];
	char tz[STORE_SCHEDULE_TZ_MAX + 1]; /* "" is UTC */
	char *input_json;		     /* malloc'd, or NULL for {} */
	enum store_overlap overlap;
	enum store_catchup catchup;
	bool paused;
	char created_by[128];
	int64_t created_ms, anchor_ms, next_ms; /* next_ms 0: never again */
	uint64_t fired, skipped;
	char last_run[STORE_RUN_ID_MAX + 1];
	int64_t last_fire_ms, last_skip_ms;
	char last_skip[256];
};
const char *store_overlap_name(enum store_overlap o);
int store_overlap_parse(const char *name, enum store_overlap *out);
const char *store_catchup_name(enum store_catchup c);
int store_catchup_parse(const char *name, enum store_catchup *out);
void store_schedule_clear(struct store_schedule *sc);
void store_schedules_free(struct store_schedule *v, size_t n);
/* -EEXIST when ws has one of that name. */
int store_schedule_create(struct store *s, const struct store_schedule *sc, struct cdn_err *err);
/* -ENOENT when none. */
int store_schedule_get(struct store *s, const char *ws, const char *name,
		       struct store_schedule *out, struct cdn_err *err);
/* ws's, by name; ws NULL: every workspace's. due_ms > 0: only those due
 * by then (not paused, next_ms in (0, due_ms]): the scheduler's. */
int store_schedule_list(struct store *s, const char *ws, int64_t due_ms,
			struct store_schedule **out, size_t *n, struct cdn_err *err);
int store_schedule_delete(struct store *s, const char *ws, const char *name,
			  struct cdn_err *err);
/* Paused, or running again from next_ms. -ENOENT when none. */
int store_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
			 int64_t next_ms, struct cdn_err *err);
/* 1 when next_ms was still due and is now next (this node fires), 0 when
 * another node moved it, or it was paused or removed. */
int store_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
			 int64_t next, struct cdn_err *err);
/* {"name", "agent", "cron", "tz", "input", "overlap", "catch_up", "paused",
 * "created", "created_by", "next", "fired", "skipped", "last_run",
 * "last_fired", "last_skip": {"at", "reason"} | null}. */
struct json_t *store_schedule_json(const struct store_schedule *sc);
/* A new schedule from what sc names (workspace, name, agent, cron, tz,
 * input, overlap, catch-up, created_by): the expression parsed
 * (base/cron.h), the agent registered, the first time computed; then
 * created. */
int store_schedule_new(struct store *s, struct store_schedule *sc, int64_t now_ms,
		       struct cdn_err *err);
/* Runs again, from the first time after now_ms. */
int store_schedule_resume(struct store *s, const char *ws, const char *name, int64_t now_ms,
			  struct cdn_err *err);
/* What a firing did: started run_id, or skipped for why (one of them). */
int store_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
			  const char *run_id, const char *skip_why, struct cdn_err *err);

/* --------------------------------------------------------------- services */

/*
 * A service keeps an agent running (docs/services.md): cordon serve starts
 * it, and starts it again when its run ends, after a backoff; so many ends
 * within a window pause it (a crash loop). Each start is a run of its own
 * whose caller is "service:NAME"; the run takes the service's env and
 * secrets when it starts.
 *
 * A node changes a service only from the state it read (store_service_update
 * repeats the row's generation, which every change moves on), so of several
 * nodes exactly one starts it, exactly one counts each end, and a pause is
 * never lost to a change made from what was read before it.
 */
#define STORE_SERVICES_MAX 100	   /* a workspace's */
#define STORE_SERVICE_ENV_MAX 64     /* --env entries */
#define STORE_SERVICE_SECRETS_MAX 32 /* --secret names */
#define STORE_SERVICE_EXITS_MAX 100  /* end times kept for the crash-loop window */
struct store_service {
	char workspace[STORE_MAX_NAME + 1];
	char name[STORE_MAX_NAME + 1];
	char agent[STORE_MAX_NAME + 12]; /* NAME or NAME@VERSION */
	char *input_json;		 /* malloc'd, or NULL for {} */
	char *env_json;			 /* malloc'd {"K": "V"}, or NULL */
	char *secrets_json;		 /* malloc'd ["NAME"], or NULL */
	bool paused;
	char pause_reason[256];
	char created_by[128];
	int64_t created_ms;
	char current_run[STORE_RUN_ID_MAX + 1]; /* "" when none */
	char last_run[STORE_RUN_ID_MAX + 1];	/* the one before, "" when none */
	/* When it may start next; < 0: a node is starting it (since -next_ms). */
	int64_t next_ms;
	uint64_t starts, exits;
	char exit_times[STORE_SERVICE_EXITS_MAX * 15]; /* "ms,ms,..." in the window */
	char last_exit[256];
	int64_t last_exit_ms;
	int64_t gen; /* the row's generation, as read */
};
void store_service_clear(struct store_service *sv);
void store_services_free(struct store_service *v, size_t n);
/* Checks the names, the JSON fields' shape and size, that the agent is
 * registered and the workspace's bound; then creates. -EEXIST when ws has
 * one of that name. What env and secrets hold is registry_service_check's
 * (registry.h) to judge first. */
int store_service_new(struct store *s, struct store_service *sv, int64_t now_ms,
		      struct cdn_err *err);
/* -ENOENT when none. */
int store_service_get(struct store *s, const char *ws, const char *name,
		      struct store_service *out, struct cdn_err *err);
/* ws's, by name; ws NULL: every workspace's. */
int store_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
		       struct cdn_err *err);
/* Removes it, from what was read (retried over other nodes' changes): the
 * run it had when it went, if any, in run (or ""), for the caller to stop. */
int store_service_delete(struct store *s, const char *ws, const char *name,
			 char run[STORE_RUN_ID_MAX + 1], struct cdn_err *err);
/* Writes sv's state (paused, pause_reason, current_run, last_run, next_ms,
 * starts, exits, exit_times, last_exit, last_exit_ms) if the row is still
 * at generation sv->gen: 1, and sv->gen is the new one; 0 when the row
 * changed since it was read (or is gone). */
int store_service_update(struct store *s, struct store_service *sv, struct cdn_err *err);
/* Paused (with why) or active again (the crash-loop count cleared); retried
 * against other nodes' changes. The run it had, if any, in run (or ""). */
int store_service_pause(struct store *s, const char *ws, const char *name, bool paused,
			const char *why, char run[STORE_RUN_ID_MAX + 1], struct cdn_err *err);
/* {"name", "agent", "input", "env", "secrets", "state" (running, starting,
 * waiting, paused), "paused_reason", "created", "created_by", "run",
 * "starts", "restarts", "exits", "last_exit": {"at", "reason"} | null,
 * "next_start"}. */
struct json_t *store_service_json(const struct store_service *sv, int64_t now_ms);

/* ------------------------------------------------------------------ usage */

/*
 * What a workspace's runs used (docs/usage.md), summed from their records
 * (result.json as the record keeps it): runs created in [from_ms, to_ms),
 * in groups by agent, by day of creation (UTC, "YYYY-MM-DD"), by caller,
 * or one group ("") for all.
 */
enum store_usage_by { USAGE_BY_NONE, USAGE_BY_AGENT, USAGE_BY_DAY, USAGE_BY_CALLER };
#define STORE_USAGE_STATUSES (RUN_LOST + 1)
#define STORE_USAGE_MAX_GROUPS 10000
struct store_usage {
	char key[256];
	uint64_t runs;				  /* in all */
	uint64_t by_status[STORE_USAGE_STATUSES]; /* enum store_run_status */
	int64_t wall_ms;			  /* started to finished */
	int64_t cpu_ms;				  /* resources.cpu_ms */
	int64_t mem_peak_bytes;			  /* the largest resources.mem_peak_bytes */
	int64_t egress_allowed, egress_blocked;	  /* requests */
	int64_t egress_allowed_bytes, egress_blocked_bytes;
	int64_t artifact_bytes;
};
int store_usage_by_parse(const char *name, enum store_usage_by *out);
const char *store_usage_by_name(enum store_usage_by by);
/* Groups in key order; *total sums them all. */
int store_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		    enum store_usage_by by, struct store_usage **groups, size_t *n,
		    struct store_usage *total, struct cdn_err *err);
/* {"workspace", "from", "to", "group_by", "groups": [...], "total": {...}}. */
struct json_t *store_usage_json(const char *ws, int64_t from_ms, int64_t to_ms,
				enum store_usage_by by, const struct store_usage *groups, size_t n,
				const struct store_usage *total);

/* -------------------------------------------------------------- retention */

/*
 * How long what a run leaves is kept, by kind, counted from the run's end
 * (docs/retention.md). Pruning a kind removes:
 *   RETAIN_FILES      stdout, stderr and steps.json;
 *   RETAIN_ARTIFACTS  artifacts/, and each artifact's blob that nothing
 *                     kept still names;
 *   RETAIN_EVIDENCE   events.ndjson and audit.jsonl: no evidence pack can
 *                     be exported after;
 *   RETAIN_RECORDS    the record itself and everything left of the run.
 */
struct json_t;
enum store_retain { RETAIN_RECORDS, RETAIN_FILES, RETAIN_ARTIFACTS, RETAIN_EVIDENCE, RETAIN_N };

#define STORE_AGE_MAX_S (100ll * 366 * 86400) /* an age over a century is a typo */

/* Ages in seconds; 0 means not set. For the operator (workspace ""),
 * age_s is the default and max_s the most a workspace may set (0: no
 * bound); a workspace's row has no max_s. */
struct store_retention {
	int64_t age_s[RETAIN_N];
	int64_t max_s[RETAIN_N];
};

const char *store_retain_name(enum store_retain k);
int store_retain_parse(const char *name, enum store_retain *k);

/* ws "" is the operator's. An absent row reads as all zeros. */
int store_retention_get(struct store *s, const char *ws, struct store_retention *out,
			struct cdn_err *err);
/* Which fields of a store_retention a put changes. */
#define STORE_RETAIN_AGE(k) (1u << (k))
#define STORE_RETAIN_MAX(k) (1u << (RETAIN_N + (k)))
#define STORE_RETAIN_ALL ((1u << (2 * RETAIN_N)) - 1)
/* Changes the fields of ws's row that set names to r's values, in one
 * statement, and keeps the others as they are in the database then, so
 * two writers of different kinds never undo each other; a row left all
 * zeros is deleted. */
int store_retention_put(struct store *s, const char *ws, const struct store_retention *r,
			unsigned set, struct cdn_err *err);

/* What applies to ws, by kind, in seconds (0: kept for ever): the
 * workspace's age if set, else the operator's default; never more than
 * the operator's bound, which a lowered bound can make the case. */
void store_retention_effective(const struct store_retention *op, const struct store_retention *ws,
			       int64_t out[RETAIN_N]);

/* A hold keeps a run past every age, until released; pruned_ms[k] says
 * when kind k was pruned (0: not). pruned_ms[RETAIN_RECORDS] stays 0: a
 * pruned record is gone. */
struct store_run_marks {
	char hold_reason[256];
	char hold_by[128];
	int64_t hold_ms; /* 0: no hold */
	int64_t pruned_ms[RETAIN_N];
};

/* "90d", "12h", "30m", "10s" into seconds (1 s to STORE_AGE_MAX_S);
 * "default" and "forever" into 0 (unset). */
int store_age_parse(const char *s, int64_t *out, struct cdn_err *err);
/* {"workspace", "effective", "workspace_ages", "operator": {"default",
 * "max"}}: ages in seconds by kind, null when unset. */
struct json_t *store_retention_json(const char *ws, const struct store_retention *op,
				    const struct store_retention *own);

/* All zeros when the run has none; -ENOENT when there is no such run. */
int store_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			struct cdn_err *err);
/* -ENOENT unless the run exists in ws. Holding a held run replaces the
 * reason; releasing a run with no hold is not an error. */
int store_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		   const char *by, struct cdn_err *err);
int store_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err);
/* Adds "hold" ({reason, by, since}) and "pruned" ({kind: when}) to obj,
 * each only when there is one (times in RFC 3339). */
void store_run_marks_json(const struct store_run_marks *m, struct json_t *obj);
/* Only for a run not held, decided by the statement that marks it:
 * -EBUSY when it is held. */
int store_run_mark_pruned(struct store *s, const char *id, enum store_retain k, int64_t when_ms,
			  struct cdn_err *err);

/* Finished, unheld runs of ws that ended before cutoff_ms and whose kind
 * k is not pruned yet (for RETAIN_RECORDS: every such run), oldest
 * first, at most max ids. Free with free(). */
int store_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		    size_t max, char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err);
/* The workspaces that have runs, or a retention row. Free with free(). */
int store_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			   struct cdn_err *err);
/* Deletes the record and its marks (not its files), in one statement that
 * checks it is finished and not held: -EBUSY when it is held (or not
 * finished). */
int store_run_delete(struct store *s, const char *id, struct cdn_err *err);
/* Whether a run other than skip_id whose artifacts are not pruned names
 * the blob hex in its result (conservative: any mention counts). */
int store_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
		       struct cdn_err *err);
/* The trees registered items use, each once. Free with free(). */
int store_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		     struct cdn_err *err);

/* One pass of pruning (prune.c): every workspace's runs by the ages that
 * apply to it (store_retention_effective), or ws's alone. */
struct prune_opts {
	const char *workspace; /* NULL: every workspace */
	int64_t now_ms;	       /* 0: now */
	bool dry_run;	       /* report what is due, change nothing */
	/* An artifact's blob used (stored again, or found stored) less than
	 * this long ago is kept even when nothing names it yet: a run or a
	 * registration in progress may be about to. -1: the default, 1 hour. */
	int64_t blob_grace_ms;
	/* Called for each thing pruned (or due, in a dry run). */
	void (*on_pruned)(void *ctx, const char *ws, const char *run_id, enum store_retain k);
	void *ctx;
};

struct prune_report {
	uint64_t runs[RETAIN_N]; /* by kind: records deleted, files, artifacts, evidence pruned */
	uint64_t blobs;		 /* artifact blobs removed */
	uint64_t bytes;		 /* bytes of files and blobs removed */
	uint64_t failed;	 /* runs that could not be pruned (the first error is returned) */
};

int store_prune(struct store *s, const struct prune_opts *o, struct prune_report *rep,
		struct cdn_err *err);

/* ---------------------------------------------------------------- migrate */

/*
 * Copies every row of src's database into dst's (cordon state migrate),
 * in one transaction on each: dst must be empty, and src must have no run
 * unfinished (EBUSY). Each table is read back from dst and compared with
 * what was read from src by row count and sha256, before and after the
 * commit; a difference fails (before: nothing is committed). Blobs,
 * trees and run files are not moved: both stores name one state
 * directory.
 */
#define STORE_MIGRATE_TABLES 10
struct store_migrate_report {
	struct {
		const char *name;
		uint64_t rows;
		char sha256[STORE_HASH_HEX + 1];
	} tables[STORE_MIGRATE_TABLES];
	size_t n;
	bool committed; /* on failure: whether dst may have been changed */
};
int store_migrate(struct store *src, struct store *dst, struct store_migrate_report *rep,
		  struct cdn_err *err);

/*
 * Copies the state directory's blobs and run files to url
 * (s3://BUCKET/PREFIX, as store_blobs_attach would use it) and reads every
 * object back whole, checked: a blob against its name, a run's files
 * against the index, and the index against the files here. Objects there
 * already with the right sha256 are not sent again, so a copy that failed
 * half-way is simply run again.
 */
struct store_blobs_report {
	uint64_t blobs, blob_bytes; /* blobs copied and checked */
	uint64_t sent;		    /* of them, sent now (the rest were there) */
	uint64_t runs, run_files;   /* run directories, and their files checked */
};
int store_migrate_blobs(struct store *s, const char *url, struct store_blobs_report *rep,
			struct cdn_err *err);

/* --------------------------------------------------------------- api keys */

struct store_key {
	char id[32];	    /* public: "cdn_live_" + the key's first 12 characters */
	char workspace[STORE_MAX_NAME + 1];
	char name[STORE_MAX_NAME + 1];
	char role[8];	    /* "owner" or "member" */
	char hash[STORE_HASH_HEX + 1]; /* sha256 of the whole key */
	int64_t created, last_used; /* unix seconds; 0: never used */
	bool revoked;
};

int store_key_put(struct store *s, const struct store_key *k, struct cdn_err *err);
/* -ENOENT when no key has that hash (revoked keys are returned, marked). */
int store_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		      struct cdn_err *err);
/* ws NULL: every workspace. Caller frees *out. */
int store_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		   struct cdn_err *err);
int store_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err);
int store_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err);

#endif
