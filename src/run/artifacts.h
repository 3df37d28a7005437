/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Artifacts: the files an agent leaves in /workspace/out.
 *
 * They are read after the sandbox is gone, through a directory fd the
 * sandbox handed over (its /workspace tmpfs stays readable through that fd
 * after the mount namespace died), so nothing in the sandbox can swap a
 * file under the collector. Only regular files directly in out/ are taken;
 * symlinks, hard links (st_nlink > 1), directories, devices, fifos and
 * sockets are skipped, as is anything over the limits or with an extension
 * not on the allowlist. Names are sanitised to [A-Za-z0-9._-] (leading dots
 * dropped, at most ARTIFACT_NAME_MAX bytes) and duplicates suffixed "-1",
 * "-2"... before the extension. Each file is stored as a blob (by content
 * hash) and copied into the run's artifacts directory. Everything skipped is
 * reported with the reason; nothing is dropped silently.
 */
#ifndef CORDON_RUN_ARTIFACTS_H
#define CORDON_RUN_ARTIFACTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "store/store.h"

struct redactor;

#define ARTIFACT_NAME_MAX 128
#define ARTIFACT_SCAN_MAX 1000 /* directory entries looked at, at most */
#define ARTIFACT_DEFAULT_MAX_FILES 20
#define ARTIFACT_DEFAULT_MAX_FILE (25ull << 20)
#define ARTIFACT_DEFAULT_MAX_TOTAL (50ull << 20)

struct artifact_limits {
	uint32_t max_files;
	uint64_t max_file_bytes;
	uint64_t max_total_bytes;
	const char *const *extensions; /* lowercase, without the dot; NULL: the defaults */
	size_t n_extensions;
	/* When set, a file holding one of these secret values (or its base64
	 * forms) is skipped, never stored: artifacts leave the sandbox's
	 * boundary, and a secret must not leave with them. */
	const struct redactor *secrets;
};

/* The default extension allowlist (NULL-terminated). */
const char *const *artifact_default_extensions(void);
void artifact_limits_default(struct artifact_limits *lim);

struct artifact {
	char name[ARTIFACT_NAME_MAX + 1];	/* sanitised, as stored */
	char original[ARTIFACT_NAME_MAX + 1];	/* as found, printable only */
	char sha256[STORE_HASH_HEX + 1];
	uint64_t size;
};

struct artifact_skip {
	char name[ARTIFACT_NAME_MAX + 1]; /* as found, printable only */
	char reason[160];
};

struct artifact_result {
	struct artifact *saved;
	size_t n_saved;
	struct artifact_skip *skipped;
	size_t n_skipped;
};

/*
 * Collects from out_dirfd (a directory fd; -1: nothing to collect) into the
 * store's blobs and into dest_dir (created 0755 if missing).
 */
int artifacts_collect(int out_dirfd, struct store *s, const char *dest_dir,
		      const struct artifact_limits *lim, struct artifact_result *res,
		      struct cdn_err *err);
void artifacts_result_free(struct artifact_result *res);

/*
 * Writes one file into the sandbox's out/ while it runs (the MCP
 * save_artifact tool): `ws_fd` is the workspace directory, `name` must
 * match [A-Za-z0-9_-][A-Za-z0-9._-]{0,127}, an existing file is not
 * replaced (-EEXIST), and the file is created as the sandbox user (uid,
 * gid) without following any link. err's message is meant for the agent.
 */
int artifact_save(int ws_fd, const char *name, const uint8_t *data, size_t len, uid_t uid,
		  gid_t gid, struct cdn_err *err);

/* A stored artifact's name: what artifact_sanitize() produces and
 * artifact_save() takes, [A-Za-z0-9_-][A-Za-z0-9._-]{0,127}. An evidence
 * pack's artifacts/ holds only such names. */
bool artifact_name_ok(const char *name);

/* Sanitises one name (exported for tests). Returns 0, or -EINVAL when
 * nothing usable is left. */
int artifact_sanitize(const char *in, char *out, size_t cap);

#endif
