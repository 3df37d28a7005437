/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs: everything about one run, in one signed archive
 * (docs/evidence.md).
 *
 * A pack is a gzip-compressed tar of regular files:
 *
 *   record.json      the run's record in the store (with its result)
 *   result.json      the run directory's files, as they are ...
 *   events.ndjson    ... (every event, approvals included)
 *   steps.json
 *   stdout, stderr
 *   audit.jsonl      the egress audit log (runs with a network)
 *   artifacts.json   the artifact manifest: name, original, size, sha256
 *   artifacts/NAME   the artifacts' bytes (optional)
 *   statement.json   an in-toto Statement v1 naming every file above with
 *                    its sha256, and a predicate about the run
 *   statement.sig    a DSSE envelope over statement.json, signed with
 *                    Ed25519 by the deployment key
 *
 * Verification trusts nothing in the archive until it is checked: the
 * archive is read in bounded memory, every file must be in the signed
 * statement with its digest and every subject must be in the archive, the
 * audit chain must verify up to the head the statement and result.json
 * name, and the artifacts must match their manifest.
 */
#ifndef CORDON_EVIDENCE_H
#define CORDON_EVIDENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"
#include "store/store.h"

#define EVIDENCE_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define EVIDENCE_PREDICATE_TYPE "https://cordon.dev/evidence/v1"
#define EVIDENCE_PAYLOAD_TYPE	"application/vnd.in-toto+json"
#define EVIDENCE_KEY_FILE	"evidence.key"
#define EVIDENCE_KEY_ENV	"CORDON_EVIDENCE_KEY"

#define EVIDENCE_PK_BYTES   32
#define EVIDENCE_SEED_BYTES 32
#define EVIDENCE_HEX	    64 /* a sha256 or a public key, in hex */

/* Bounds on a pack, checked when one is written and when one is read. */
#define EVIDENCE_MAX_ENTRIES 2048		/* files in a pack */
#define EVIDENCE_MAX_NAME    160		/* bytes of a path in a pack */
#define EVIDENCE_MAX_FILE    (256ull << 20)	/* bytes of one file */
#define EVIDENCE_MAX_TOTAL   (1024ull << 20)	/* bytes of all files together */
#define EVIDENCE_MAX_JSON    (16u << 20)	/* a JSON file read into memory */
#define EVIDENCE_MAX_PADDING (1u << 20)		/* zero bytes after the tar's end */
#define EVIDENCE_MAX_OVERHEAD (64ull << 20)	/* tar and pax headers, in all */
#define EVIDENCE_MAX_SIGS    8			/* signatures in the envelope */

/* ------------------------------------------------------------------- keys */

/* An Ed25519 key pair; the secret half lives in sodium memory. */
struct evidence_key;

/*
 * The deployment key: $CORDON_EVIDENCE_KEY (64 hex digits or the base64 of
 * the 32-byte seed) when set, else <state_dir>/evidence.key (the 32-byte
 * seed, mode 0600, owned by this user; a symlink, another owner or a wider
 * mode is refused). With create, a missing file is made atomically (temp
 * file + link, so concurrent first uses agree on one key); without it,
 * -ENOENT (err untouched) when there is none.
 */
int evidence_key_load(const char *state_dir, bool create, struct evidence_key **out,
		      struct cdn_err *err);
/* A key from a seed (tests, fuzzing, other producers). */
int evidence_key_from_seed(const unsigned char seed[EVIDENCE_SEED_BYTES],
			   struct evidence_key **out, struct cdn_err *err);
void evidence_key_free(struct evidence_key *k);
const unsigned char *evidence_key_public(const struct evidence_key *k);
/* keyid: the sha256 of the 32-byte public key, hex. */
const char *evidence_key_id(const struct evidence_key *k);
/* "env" or the key file's path. */
const char *evidence_key_source(const struct evidence_key *k);

/* Parses 64 hex digits into a public key. */
int evidence_public_parse(const char *hex, unsigned char pk[EVIDENCE_PK_BYTES],
			  struct cdn_err *err);
void evidence_keyid(const unsigned char pk[EVIDENCE_PK_BYTES], char out[EVIDENCE_HEX + 1]);

/* DSSE's pre-authentication encoding:
 *   "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
 * with LEN the decimal byte length. Caller frees; NULL when out of memory. */
unsigned char *evidence_pae(const char *type, const void *body, size_t len, size_t *out_len);

/* ----------------------------------------------------------------- export */

struct evidence_export_opts {
	const char *run_id;
	const char *workspace;	/* the run must be in it; NULL: any */
	const char *out_path;
	bool artifacts;		/* include the artifacts' bytes */
	bool force;		/* replace an existing out_path */
	const struct evidence_key *key;
};

struct evidence_export_info {
	/* Counted as verify counts them (evidence_report): every file in the
	 * pack, statement.json and statement.sig included, and their bytes;
	 * signed_files of them are the statement's subjects (all but those two). */
	size_t files;
	uint64_t bytes;
	size_t signed_files;
	char statement_sha256[EVIDENCE_HEX + 1];
	char audit_head[EVIDENCE_HEX + 1]; /* "" when the run has no audit log */
	/* The log ends where the run recorded it (result.json, or the head
	 * the run's record anchored as lines were written); false: nothing
	 * says where it ended, so lines cut off its end would go unseen. */
	bool audit_anchored;
};

/*
 * Writes the pack of a finished run to out_path: a temp file beside it,
 * then link(2) (or rename(2) with force), so a reader never sees half a
 * pack and an existing file is never replaced by accident (-EEXIST).
 * Before signing, the run directory is checked against the record: a
 * result.json that differs from the stored result, an audit log that does
 * not verify up to result.json's head, or an artifact whose bytes do not
 * match is refused (-EINVAL) rather than signed. A run still going is
 * -EBUSY, an unknown run (or one in another workspace) -ENOENT.
 */
int evidence_export(struct store *s, const struct evidence_export_opts *o,
		    struct evidence_export_info *info, struct cdn_err *err);

/*
 * The writer export uses, for tests, fuzzing and other producers: files
 * are added in order (names as in a pack, each once), then finish writes
 * statement.json (subjects: every file added, in order) with predicate
 * (borrowed; "signer" is set here) and statement.sig, and flushes the
 * archive to fd. The caller owns fd.
 */
struct evidence_writer;
int evidence_writer_open(int fd, time_t mtime, struct evidence_writer **out, struct cdn_err *err);
int evidence_writer_add(struct evidence_writer *w, const char *name, const void *data, size_t len,
			struct cdn_err *err);
/* Streams size bytes from fd; the sha256 computed on the way is returned
 * in hex (NULL: not wanted). */
int evidence_writer_add_fd(struct evidence_writer *w, const char *name, int fd, uint64_t size,
			   char hex[EVIDENCE_HEX + 1], struct cdn_err *err);
int evidence_writer_finish(struct evidence_writer *w, json_t *predicate,
			   const struct evidence_key *key, char stmt_hex[EVIDENCE_HEX + 1],
			   struct cdn_err *err);
void evidence_writer_free(struct evidence_writer *w);

/* ----------------------------------------------------------------- verify */

struct evidence_trust {
	const unsigned char (*keys)[EVIDENCE_PK_BYTES]; /* trusted public keys */
	size_t n_keys;
	bool any_key; /* a signature by any key proves integrity, not origin */
};

struct evidence_file {
	char name[EVIDENCE_MAX_NAME + 1];
	char sha256[EVIDENCE_HEX + 1];
	uint64_t size;
};

struct evidence_report {
	bool intact;	/* every check but the signer's trust passed */
	bool trusted;	/* signed by a key in the trust set */
	/* When not intact (or not trusted): the part found bad ("archive",
	 * a file's name, "statement.sig") and why. */
	char part[EVIDENCE_MAX_NAME + 1];
	char reason[512];
	/* From the signed statement, once its signature checked. */
	char run_id[STORE_RUN_ID_MAX + 1];
	char workspace[STORE_MAX_NAME + 1];
	char agent[STORE_MAX_NAME + 1];
	unsigned agent_version;
	char agent_sha256[EVIDENCE_HEX + 1];
	char status[16];
	int exit_code;
	char audit_head[EVIDENCE_HEX + 1]; /* "" without an audit log */
	uint64_t audit_records;
	bool audit_anchored; /* as the statement says (evidence_export_info) */
	bool artifacts_included;
	char deps_sha256[EVIDENCE_HEX + 1]; /* the dependency layer's; "" without one */
	char created[40];
	char cordon_version[32];
	char keyid[EVIDENCE_HEX + 1];	/* the signer's */
	struct evidence_file *files;	/* every file the archive held, in order */
	size_t n_files;
	uint64_t bytes;			/* of those files */
	size_t signed_files;		/* of those, the statement's subjects (once checked) */
};

/*
 * Verifies a pack. 0 when it is intact and trusted; 1 when it is not (the
 * report says which part and why); negative when it cannot be read at all
 * (err set). The report is filled in either case; free it with
 * evidence_report_clear.
 */
int evidence_verify_file(const char *path, const struct evidence_trust *t,
			 struct evidence_report *rep, struct cdn_err *err);
int evidence_verify_mem(const void *data, size_t len, const struct evidence_trust *t,
			struct evidence_report *rep, struct cdn_err *err);
void evidence_report_clear(struct evidence_report *rep);

#endif
