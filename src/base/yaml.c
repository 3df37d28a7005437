/* SPDX-License-Identifier: Apache-2.0 */
/* cordon's YAML files, read strictly (see yaml.h). */
#include "base/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/text.h"

/* ------------------------------------------------------------------ the tree */

void cdn_ynode_clear(struct cdn_ynode *y)
{
	for (size_t i = 0; i < y->n; i++)
		cdn_ynode_clear(&y->kids[i]);
	free(y->kids);
	free(y->value);
	memset(y, 0, sizeof(*y));
}

static int ynode_append(struct cdn_ynode *parent, struct cdn_ynode *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct cdn_ynode *k = realloc(parent->kids, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = *child;
	memset(child, 0, sizeof(*child));
	return 0;
}

/* "policy.yaml:7: domains[0]: unknown key 'metods' (...)" */
int cdn_yaml_verr(struct cdn_yctx *c, int line, const char *path, const char *fmt, va_list ap)
{
	cdn_err_vset(c->err, CDN_ERR_USER, EINVAL, fmt, ap);
	char where[32] = "";
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	return cdn_err_wrap(c->err, "%s%s%s%s", c->src, where, path[0] ? ": " : "", path);
}

int cdn_yaml_err(struct cdn_yctx *c, int line, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cdn_yaml_verr(c, line, path, fmt, ap);
	va_end(ap);
	return r;
}

/* Why an anchor, alias or tag is refused, said once. */
#define NO_YAML_EXTRAS                                                                             \
	"the %s is plain YAML: one readable schema, and no alias expansion (alias bombs)"

static int event_extras(struct cdn_yctx *c, const yaml_event_t *ev, int line)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;
	if (ev->type == YAML_SCALAR_EVENT) {
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else if (ev->type == YAML_MAPPING_START_EVENT) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (anchor)
		return cdn_yaml_err(c, line, "", "anchor '&%.40s' is not allowed: " NO_YAML_EXTRAS,
				    (const char *)anchor, c->what);
	if (tag)
		return cdn_yaml_err(c, line, "", "tag '%.40s' is not allowed: " NO_YAML_EXTRAS,
				    (const char *)tag, c->what);
	return 0;
}

static int yaml_syntax_error(struct cdn_yctx *c, const yaml_parser_t *ps, const char *yaml,
			     size_t len)
{
	if (ps->error == YAML_READER_ERROR) {
		/* Bytes libyaml cannot read (bad UTF-8, control characters)
		 * have an offset, not a mark: count the lines up to it. */
		int line = 1;
		for (size_t i = 0; i < ps->problem_offset && i < len; i++)
			line += yaml[i] == '\n';
		return cdn_yaml_err(c, line, "", "not valid YAML: %s (byte %zu)",
				    ps->problem ? ps->problem : "unreadable input",
				    ps->problem_offset);
	}
	const yaml_mark_t *m =
	    ps->problem_mark.line || ps->problem_mark.column || ps->problem_mark.index
		? &ps->problem_mark
		: &ps->context_mark;
	if (ps->error == YAML_MEMORY_ERROR)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	return cdn_yaml_err(c, (int)m->line + 1, "", "not valid YAML: %s%s%s",
			    ps->problem ? ps->problem : "syntax error", ps->context ? " " : "",
			    ps->context ? ps->context : "");
}

int cdn_yaml_load(struct cdn_yctx *c, const char *yaml, size_t len, unsigned max_depth,
		  struct cdn_ynode *root)
{
	if (max_depth > CDN_YAML_MAX_DEPTH)
		max_depth = CDN_YAML_MAX_DEPTH;
	yaml_parser_t ps;
	if (!yaml_parser_initialize(&ps))
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	yaml_parser_set_input_string(&ps, (const unsigned char *)yaml, len);
	/* UTF-8 only: no guessing from a byte-order mark. */
	yaml_parser_set_encoding(&ps, YAML_UTF8_ENCODING);

	/* stack[0] collects the document's one node. */
	struct cdn_ynode stack[CDN_YAML_MAX_DEPTH + 1];
	memset(stack, 0, sizeof(stack));
	size_t depth = 0;
	int docs = 0;
	bool done = false;
	int r = 0;
	while (!done && r == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&ps, &ev)) {
			r = yaml_syntax_error(c, &ps, yaml, len);
			break;
		}
		int line = (int)ev.start_mark.line + 1;
		r = event_extras(c, &ev, line);
		struct cdn_ynode node = {0};
		switch (r ? YAML_NO_EVENT : ev.type) {
		case YAML_STREAM_END_EVENT: done = true; break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				r = cdn_yaml_err(
				    c, line, "",
				    "a second YAML document: a %s file holds exactly one", c->what);
			else if (ev.data.document_start.tag_directives.start !=
				 ev.data.document_start.tag_directives.end)
				r = cdn_yaml_err(
				    c, line, "",
				    "%%TAG directives are not allowed: " NO_YAML_EXTRAS, c->what);
			break;
		case YAML_ALIAS_EVENT:
			r = cdn_yaml_err(c, line, "",
					 "alias '*%.40s' is not allowed: " NO_YAML_EXTRAS,
					 (const char *)ev.data.alias.anchor, c->what);
			break;
		case YAML_SCALAR_EVENT:
			node.type = CDN_Y_SCALAR;
			node.line = line;
			node.plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			node.len = ev.data.scalar.length;
			node.value = malloc(node.len + 1);
			if (!node.value) {
				r = -ENOMEM;
				break;
			}
			memcpy(node.value, ev.data.scalar.value, node.len);
			node.value[node.len] = '\0';
			if (ynode_append(&stack[depth], &node) < 0) {
				free(node.value);
				r = -ENOMEM;
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == max_depth) {
				r = cdn_yaml_err(c, line, "", "nested deeper than %u levels",
						 max_depth);
				break;
			}
			depth++;
			stack[depth].type =
			    ev.type == YAML_SEQUENCE_START_EVENT ? CDN_Y_SEQ : CDN_Y_MAP;
			stack[depth].line = line;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			/* libyaml pairs start and end events, so depth > 0 */
			node = stack[depth];
			memset(&stack[depth], 0, sizeof(stack[depth]));
			depth--;
			if (ynode_append(&stack[depth], &node) < 0) {
				cdn_ynode_clear(&node);
				r = -ENOMEM;
			}
			break;
		case YAML_NO_EVENT: /* or a refused event, reported above */
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT: break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&ps);
	if (r == -ENOMEM && !c->err->msg[0])
		r = cdn_err_set(c->err, ENOMEM, "%s", c->src);
	if (r == 0 && (stack[0].n != 1 || (stack[0].kids[0].type == CDN_Y_SCALAR &&
					   stack[0].kids[0].plain && stack[0].kids[0].len == 0)))
		r = cdn_err_msg(c->err, ENODATA, "%s:1: the %s is empty", c->src, c->what);
	if (r == 0) {
		*root = stack[0].kids[0];
		stack[0].n = 0;
	}
	for (size_t i = 0; i <= depth; i++)
		cdn_ynode_clear(&stack[i]);
	return r;
}

/* ------------------------------------------------------------ schema walking */

/* "'yes'", "a list", "an empty value": what was found, for errors. */
const char *cdn_ynode_describe(const struct cdn_ynode *y, char *buf, size_t cap)
{
	if (y->type == CDN_Y_SEQ)
		return "a list";
	if (y->type == CDN_Y_MAP)
		return "a mapping";
	if (y->plain && y->len == 0)
		return "an empty value";
	char text[48];
	cdn_printable(text, sizeof(text), y->value, y->len, CDN_TEXT_ELLIPSIS);
	snprintf(buf, cap, "%s'%s'", y->plain ? "" : "a quoted string ", text);
	return buf;
}

void cdn_yaml_path_key(char *out, size_t cap, const char *path, const char *key)
{
	snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

void cdn_yaml_path_index(char *out, size_t cap, const char *path, size_t i)
{
	snprintf(out, cap, "%s[%zu]", path, i);
}

int cdn_yaml_value_line(const struct cdn_ynode *v, int key_line)
{
	return v->type == CDN_Y_SCALAR && v->len > 0 ? v->line : key_line;
}

int cdn_ymap_begin(struct cdn_yctx *c, const struct cdn_ynode *y, const char *path, int key_line,
		   const char *what, struct cdn_ymap_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->map = y;
	if (y->type != CDN_Y_MAP) {
		char d[80];
		return cdn_yaml_err(c, cdn_yaml_value_line(y, key_line), path,
				    "expected %s, got %s", what,
				    cdn_ynode_describe(y, d, sizeof(d)));
	}
	return 0;
}

int cdn_ymap_next(struct cdn_yctx *c, struct cdn_ymap_iter *it, const char *path,
		  const char *const *names, size_t n_names, size_t *idx,
		  const struct cdn_ynode **val, int *kline)
{
	if (n_names > CDN_YAML_MAX_KEYS)
		return cdn_err_msg(c->err, EINVAL,
				   "%s: internal error: a schema mapping of %zu keys", c->src,
				   n_names);
	if (it->i >= it->map->n)
		return 1;
	const struct cdn_ynode *k = &it->map->kids[it->i];
	const struct cdn_ynode *v = &it->map->kids[it->i + 1];
	it->i += 2;
	if (k->type != CDN_Y_SCALAR || strlen(k->value) != k->len || k->len == 0) {
		char d[80];
		return cdn_yaml_err(c, k->line, path, "keys must be plain names, got %s",
				    cdn_ynode_describe(k, d, sizeof(d)));
	}
	for (size_t i = 0; i < n_names; i++) {
		if (strcmp(k->value, names[i]) != 0)
			continue;
		if (it->seen[i])
			return cdn_yaml_err(c, k->line, path,
					    "duplicate key '%s' (first at line %d)", names[i],
					    it->seen[i]);
		it->seen[i] = k->line;
		*idx = i;
		*val = v;
		*kline = k->line;
		return 0;
	}
	char list[256] = "";
	size_t off = 0;
	for (size_t i = 0; i < n_names && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
					names[i]);
	char d[80];
	/* cdn_ynode_describe() quotes and sanitises the key */
	return cdn_yaml_err(c, k->line, path, "unknown key %s (expected %s)",
			    cdn_ynode_describe(k, d, sizeof(d)), list);
}

int cdn_yget_bool(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  bool *out)
{
	if (v->type == CDN_Y_SCALAR && v->plain && strcmp(v->value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (v->type == CDN_Y_SCALAR && v->plain && strcmp(v->value, "false") == 0) {
		*out = false;
		return 0;
	}
	char d[80];
	return cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path,
			    "expected true or false, got %s (yes/no/on/off are not booleans here)",
			    cdn_ynode_describe(v, d, sizeof(d)));
}

/* Plain decimal digits only: no sign, no "0x", no "1e3", no "1_000", and
 * no leading zero, which YAML 1.1 reads as octal. */
int cdn_yget_uint(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  uint32_t lo, uint32_t hi, uint32_t *out)
{
	bool ok = v->type == CDN_Y_SCALAR && v->plain && v->len > 0 && v->len <= 10 &&
		  !(v->value[0] == '0' && v->len > 1);
	uint64_t n = 0;
	for (size_t i = 0; ok && i < v->len; i++) {
		ok = v->value[i] >= '0' && v->value[i] <= '9';
		n = n * 10 + (uint64_t)(v->value[i] - '0');
	}
	if (ok && n >= lo && n <= hi) {
		*out = (uint32_t)n;
		return 0;
	}
	char d[80];
	return cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path,
			    "expected a whole number from %u to %u, got %s", lo, hi,
			    cdn_ynode_describe(v, d, sizeof(d)));
}

int cdn_yget_string(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		    const char **out)
{
	if (v->type == CDN_Y_SCALAR && v->len > 0 && strlen(v->value) == v->len) {
		*out = v->value;
		return 0;
	}
	char d[80];
	return cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path, "expected a string, got %s",
			    cdn_ynode_describe(v, d, sizeof(d)));
}

int cdn_yget_list(struct cdn_yctx *c, const struct cdn_ynode *v, const char *path, int kline,
		  const char *what)
{
	if (v->type == CDN_Y_SEQ)
		return 0;
	char d[80];
	return cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path, "expected a list of %s, got %s",
			    what, cdn_ynode_describe(v, d, sizeof(d)));
}

int cdn_yaml_check_version(struct cdn_yctx *c, const struct cdn_ynode *root, uint32_t version)
{
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct cdn_ynode *k = &root->kids[i];
		if (k->type != CDN_Y_SCALAR || strcmp(k->value, "version") != 0)
			continue;
		const struct cdn_ynode *v = &root->kids[i + 1];
		char d[80];
		uint32_t ver = 0;
		struct cdn_yctx quiet = {
		    .src = c->src, .what = c->what, .err = &(struct cdn_err){0}};
		if (cdn_yget_uint(&quiet, v, "version", k->line, 0, UINT32_MAX, &ver) < 0)
			return cdn_yaml_err(c, cdn_yaml_value_line(v, k->line), "version",
					    "expected the number %u, got %s", version,
					    cdn_ynode_describe(v, d, sizeof(d)));
		if (ver != version)
			return cdn_yaml_err(
			    c, v->line, "version",
			    "unsupported version %u (this cordon reads version: %u)", ver, version);
		return 0;
	}
	return cdn_yaml_err(c, root->line, "", "missing key 'version' (write 'version: %u' first)",
			    version);
}
