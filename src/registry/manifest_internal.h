/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/registry/: the readers of agent.json's values
 * (manifest_read.c) that its sections (manifest.c) are parsed with. */
#ifndef CORDON_REGISTRY_MANIFEST_INTERNAL_H
#define CORDON_REGISTRY_MANIFEST_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define PATH_LEN  96 /* "egress.rules[63].requests_per_minute" and then some */
#define SHOWN_MAX 64 /* bytes of a user's string quoted in an error */

struct mctx {
	const char *src;
	struct cdn_err *err;
};

int mf_merr(struct mctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int mf_wrong_type(struct mctx *c, const char *path, const json_t *v, const char *what);
void mf_path_key(char *out, size_t cap, const char *path, const char *key);
void mf_path_index(char *out, size_t cap, const char *path, size_t i);
int mf_check_object(struct mctx *c, const json_t *obj, const char *path, const char *what,
		    const char *const *keys, size_t n_keys);
int mf_get_string(struct mctx *c, const json_t *v, const char *path, const char *what,
		  const char **out);
int mf_get_uint(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		uint64_t *out);
int mf_get_size(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		uint64_t *out);
int mf_get_cpu(struct mctx *c, const json_t *v, const char *path, uint64_t *millicores);
bool mf_version_ok(const char *s);
void mf_strv_free(char **v);
long mf_strv_find(char *const *v, size_t n, const char *s);
/* An item check for mf_get_strv (see there). */
typedef int (*item_check_fn)(struct mctx *c, const char *path, const char *s, char *norm,
			     size_t norm_cap);

int mf_get_strv(struct mctx *c, const json_t *v, const char *path, const char *what, size_t min,
		size_t max, bool unique, item_check_fn check, size_t norm_cap, char ***out,
		size_t *n_out);
int mf_check_arg(struct mctx *c, const char *path, const char *s, char *norm, size_t cap);
int mf_check_store_name(struct mctx *c, const char *path, const char *s, char *norm, size_t cap);
int mf_check_secret_name(struct mctx *c, const char *path, const char *s, char *norm,
			 size_t cap);
int mf_check_extension(struct mctx *c, const char *path, const char *s, char *norm, size_t cap);
int mf_check_domain(struct mctx *c, const char *path, const char *s, char *norm, size_t cap);

/* "calls" (manifest_calls.c). */
struct agent_manifest;
int mf_parse_calls(struct mctx *c, const json_t *v, struct agent_manifest *m);
/* "dependencies" (manifest_deps.c). */
struct agent_manifest;
int mf_parse_dependencies(struct mctx *c, const json_t *v, struct agent_manifest *m);

#endif
