/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon's YAML files (the egress policy, the service's config file) read
 * one way: libyaml's events become a small tree, refusing anchors, aliases,
 * tags and second documents as they arrive, and a schema walks the tree
 * with the helpers below, so every error names the file, the line and the
 * key's path ("policy.yaml:7: domains[2].ports[0]: ..."). Nothing is
 * coerced: YAML 1.1's "yes", "0x1f" and "010" are errors, not booleans and
 * numbers, because a file that silently means something other than it
 * reads is a hole.
 */
#ifndef CORDON_BASE_YAML_H
#define CORDON_BASE_YAML_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CDN_YAML_MAX_DEPTH 8  /* nested collections any cordon file may have */
#define CDN_YAML_MAX_KEYS  16 /* names one mapping of a schema may know */
#define CDN_YAML_PATH_MAX  96 /* a key's path, as errors name it */

enum cdn_ytype { CDN_Y_SCALAR, CDN_Y_SEQ, CDN_Y_MAP };

struct cdn_ynode {
	enum cdn_ytype type;
	bool plain;  /* a scalar written without quotes or block style */
	int line;    /* 1-based */
	char *value; /* scalar text, NUL-terminated */
	size_t len;
	struct cdn_ynode *kids; /* items; for a mapping key, value, key, value, ... */
	size_t n, cap;
};

/* Who reads: the file's name for errors ("policy.yaml"), what it is in a
 * sentence ("policy", "config"), and where errors go. */
struct cdn_yctx {
	const char *src;
	const char *what;
	struct cdn_err *err;
};

/* The one document of yaml[0..len) as a tree in *root, at most max_depth
 * (<= CDN_YAML_MAX_DEPTH) collections deep. 0; -ENODATA for an empty
 * document ("SRC:1: the WHAT is empty", for the caller to reword); another
 * negative errno with c->err set. */
int cdn_yaml_load(struct cdn_yctx *c, const char *yaml, size_t len, unsigned max_depth,
		  struct cdn_ynode *root);
void cdn_ynode_clear(struct cdn_ynode *y);

/* "SRC:LINE: PATH: message" into c->err (kind CDN_ERR_USER); returns a
 * negative errno. line <= 0 and an empty path are left out. */
int cdn_yaml_err(struct cdn_yctx *c, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cdn_yaml_verr(struct cdn_yctx *c, int line, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* ------------------------------------------------------------ schema walking */

/* "'yes'", "a list", "an empty value": what was found, for errors. */
const char *cdn_ynode_describe(const struct cdn_ynode *y, char *buf, size_t cap);
/* "a.b" and "a[3]": the path of a key or an item below path. */
void cdn_yaml_path_key(char *out, size_t cap, const char *path, const char *key);
void cdn_yaml_path_index(char *out, size_t cap, const char *path, size_t i);
/* The line to blame for a value: its own, unless it is empty or a
 * collection starting elsewhere; then the key's. */
int cdn_yaml_value_line(const struct cdn_ynode *v, int key_line);

/* The keys of a closed mapping, each known name at most once. */
struct cdn_ymap_iter {
	const struct cdn_ynode *map;
	size_t i;
	int seen[CDN_YAML_MAX_KEYS]; /* line of each known key once seen */
};
/* what: the mapping expected, for the error when y is not one. */
int cdn_ymap_begin(struct cdn_yctx *c, const struct cdn_ynode *y, const char *path, int key_line,
		   const char *what, struct cdn_ymap_iter *it);
/* The next key: 0 with *idx (into names), *val and *kline set, 1 at the end,
 * negative for an unknown, duplicate or non-string key (the error names it,
 * its line and the known names). At most CDN_YAML_MAX_KEYS names. */
int cdn_ymap_next(struct cdn_yctx *c, struct cdn_ymap_iter *it, const char *path,
		  const char *const *names, size_t n_names, size_t *idx,
		  const struct cdn_ynode **val, int *kline);

/* Scalars, each refusing every other spelling: true or false; plain decimal
 * digits from lo to hi (no sign, "0x", "1e3", "1_000" or leading zero, which
 * YAML 1.1 reads as octal); a non-empty string without NUL bytes. */
int cdn_yget_bool(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  bool *out);
int cdn_yget_uint(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  uint32_t lo, uint32_t hi, uint32_t *out);
int cdn_yget_string(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		    const char **out);
/* 0 when v is a list; else an error saying a list of `what` was expected. */
int cdn_yget_list(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  const char *what);

/* The top mapping's `version:` is checked before any other key, since it
 * decides how the rest reads: a version 2 file gets "unsupported version",
 * not a complaint about a key that version 2 added. */
int cdn_yaml_check_version(struct cdn_yctx *c, const struct cdn_ynode *root, uint32_t version);

#endif
