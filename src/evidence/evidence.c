/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs (contract in evidence.h, format in docs/evidence.md): what
 * the writer (export.c) and the reader (verify.c) share: the names a pack
 * may hold, and the checks both sides make of what a run recorded. The
 * signatures are in dsse.c.
 */
#define _GNU_SOURCE
#include "evidence/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/text.h"
#include "run/artifacts.h"

_Static_assert(ARTIFACTS_DIR_LEN + ARTIFACT_NAME_MAX <= EVIDENCE_MAX_NAME, "artifact paths fit");

/* Every fixed name a pack may hold; artifacts/NAME besides. */
static const char *const pack_files[] = { "record.json", "result.json",	"events.ndjson",
					  "steps.json",	 "stdout",	"stderr",
					  "audit.jsonl", "artifacts.json", "statement.json",
					  "statement.sig" };

int evidence_crypto_ready(struct cdn_err *err)
{
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "evidence: libsodium could not initialise");
	return 0;
}

_Static_assert(EVIDENCE_HEX == CDN_SHA256_HEX, "a digest in a pack is a sha256 in hex");

/* ---------------------------------------------------------------------------
 * Names in a pack
 */

/*
 * A path a pack may hold: one of the fixed names, or artifacts/NAME. The
 * specific refusals come first so that the report says what the attack
 * was (CVE-2007-4131 and every tar "extract outside" bug since: a path
 * that is absolute or climbs with ".." is how an archive writes where it
 * should not). verify never extracts, but whoever reads the pack next may.
 */
bool evidence_pack_name_ok(const char *n, char *why, size_t cap)
{
	size_t len = strlen(n);
	if (len == 0) {
		snprintf(why, cap, "an entry with an empty name");
		return false;
	}
	if (len > EVIDENCE_MAX_NAME) {
		snprintf(why, cap, "name longer than %d bytes", EVIDENCE_MAX_NAME);
		return false;
	}
	if (n[0] == '/') {
		snprintf(why, cap, "absolute path: an entry must not point outside the pack");
		return false;
	}
	for (const char *p = n; (p = strstr(p, "..")) != NULL; p += 2) {
		bool starts = p == n || p[-1] == '/';
		bool ends = p[2] == '\0' || p[2] == '/';
		if (starts && ends) {
			snprintf(why, cap, "path climbs out with \"..\"");
			return false;
		}
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(pack_files); i++)
		if (strcmp(n, pack_files[i]) == 0)
			return true;
	if (strncmp(n, ARTIFACTS_DIR, ARTIFACTS_DIR_LEN) == 0 &&
	    artifact_name_ok(n + ARTIFACTS_DIR_LEN))
		return true;
	snprintf(why, cap, "not a file an evidence pack holds");
	return false;
}

bool evidence_is_statement_name(const char *name)
{
	return strcmp(name, "statement.json") == 0 || strcmp(name, "statement.sig") == 0;
}

/* ---------------------------------------------------------------------------
 * What both sides read: JSON strings, the artifact manifest, the audit log
 */

const char *evidence_jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* The artifacts result.json lists: each with a name a pack can hold, a
 * sha256 and a size, no name twice. */
bool evidence_manifest_ok(json_t *arts, char *why, size_t cap)
{
	if (!json_is_array(arts)) {
		snprintf(why, cap, "the artifact list is not a JSON array");
		return false;
	}
	/* Bounded before the quadratic check below. */
	if (json_array_size(arts) > EVIDENCE_MAX_ENTRIES) {
		snprintf(why, cap, "more than %d artifacts", EVIDENCE_MAX_ENTRIES);
		return false;
	}
	size_t i, j;
	json_t *a, *b;
	json_array_foreach(arts, i, a)
	{
		const char *name = evidence_jstr(a, "name"), *sha = evidence_jstr(a, "sha256");
		json_t *size = json_object_get(a, "size");
		char safe[ARTIFACT_NAME_MAX + 1];
		if (!json_is_object(a) || !name || !artifact_name_ok(name)) {
			cdn_printable_str(safe, sizeof(safe), name ? name : "?", 0);
			snprintf(why, cap, "artifact %zu has no valid name (%s)", i + 1, safe);
			return false;
		}
		if (!sha || !cdn_sha256_hex_str_ok(sha) || !json_is_integer(size) ||
		    json_integer_value(size) < 0) {
			snprintf(why, cap, "artifact %s has no valid sha256 and size", name);
			return false;
		}
		json_array_foreach(arts, j, b)
		{
			if (j < i && strcmp(evidence_jstr(b, "name"), name) == 0) {
				snprintf(why, cap, "artifact %s is listed twice", name);
				return false;
			}
		}
	}
	return true;
}

/*
 * Runs audit_verify_file over the log in fd. The path is /proc/self/fd/N,
 * which reopens this very file (or memfd); when /proc is not mounted, a
 * copy goes to a private directory that is removed again.
 */
int evidence_audit_verify_fd(int fd, struct audit_verify *res, struct cdn_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (access(path, R_OK) == 0)
		return audit_verify_file(path, res, err);

	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX];
	if (!tmpdir || tmpdir[0] != '/')
		tmpdir = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/cordon-evidence-XXXXXX", tmpdir) >= sizeof(dir))
		return cdn_err_set(err, ENAMETOOLONG, "audit log copy");
	if (!mkdtemp(dir)) /* 0700: nobody else can swap the file */
		return cdn_err_set(err, errno, "audit log copy: mkdtemp %s", dir);
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	int r = 0;
	{
		_cleanup_close_ int out =
			open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		_cleanup_free_ char *buf = malloc(IO_CHUNK);
		if (out < 0 || !buf)
			r = out < 0 ? -errno : -ENOMEM;
		for (off_t off = 0; r == 0;) {
			ssize_t n = pread(fd, buf, IO_CHUNK, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = n < 0 ? -errno : 0;
				break;
			}
			r = cdn_write_all(out, buf, (size_t)n);
			off += n;
		}
	}
	if (r == 0)
		r = audit_verify_file(path, res, err);
	else
		cdn_err_set(err, -r, "audit log copy %s", path);
	unlink(path);
	rmdir(dir);
	return r;
}
