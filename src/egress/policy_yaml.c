/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy's YAML, loaded: libyaml's event stream is turned into a
 * small tree, refusing anchors, aliases, tags and second documents as the
 * events arrive (policy_schema.c then walks the tree against the schema).
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/text.h"

/* --------------------------------------------------------------- YAML tree */

void policy_ynode_clear(struct ynode *y)
{
	for (size_t i = 0; i < y->n; i++)
		policy_ynode_clear(&y->kids[i]);
	free(y->kids);
	free(y->value);
	memset(y, 0, sizeof(*y));
}

static int ynode_append(struct ynode *parent, struct ynode *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct ynode *k = realloc(parent->kids, cap * sizeof(*k));
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
int policy_perr(void *ctx, int line, const char *path, const char *fmt, ...)
{
	struct pctx *c = ctx;
	va_list ap;
	va_start(ap, fmt);
	cdn_err_vset(c->err, CDN_ERR_USER, EINVAL, fmt, ap);
	va_end(ap);
	char where[32] = "";
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	return cdn_err_wrap(c->err, "%s%s%s%s", c->src, where, path[0] ? ": " : "", path);
}

/* Why an anchor, alias or tag is refused, said once. */
#define NO_YAML_EXTRAS                                                                             \
	"the policy is plain YAML: one readable schema, and no alias expansion (alias bombs)"

static int event_extras(struct pctx *c, const yaml_event_t *ev, int line)
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
		return policy_perr(c, line, "", "anchor '&%.40s' is not allowed: " NO_YAML_EXTRAS,
				   (const char *)anchor);
	if (tag)
		return policy_perr(c, line, "", "tag '%.40s' is not allowed: " NO_YAML_EXTRAS,
				   (const char *)tag);
	return 0;
}

static int yaml_syntax_error(struct pctx *c, const yaml_parser_t *ps, const char *yaml,
			     size_t len)
{
	if (ps->error == YAML_READER_ERROR) {
		/* Bytes libyaml cannot read (bad UTF-8, control characters)
		 * have an offset, not a mark: count the lines up to it. */
		int line = 1;
		for (size_t i = 0; i < ps->problem_offset && i < len; i++)
			line += yaml[i] == '\n';
		return policy_perr(c, line, "", "not valid YAML: %s (byte %zu)",
			    ps->problem ? ps->problem : "unreadable input", ps->problem_offset);
	}
	const yaml_mark_t *m = ps->problem_mark.line || ps->problem_mark.column ||
					       ps->problem_mark.index
				       ? &ps->problem_mark
				       : &ps->context_mark;
	if (ps->error == YAML_MEMORY_ERROR)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	return policy_perr(c, (int)m->line + 1, "", "not valid YAML: %s%s%s",
			   ps->problem ? ps->problem : "syntax error", ps->context ? " " : "",
			   ps->context ? ps->context : "");
}

/* Turns the event stream of one document into a tree in *root. */
int policy_tree_load(struct pctx *c, const char *yaml, size_t len, struct ynode *root)
{
	yaml_parser_t ps;
	if (!yaml_parser_initialize(&ps))
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	yaml_parser_set_input_string(&ps, (const unsigned char *)yaml, len);
	/* UTF-8 only: no guessing from a byte-order mark. */
	yaml_parser_set_encoding(&ps, YAML_UTF8_ENCODING);

	/* stack[0] collects the document's one node. */
	struct ynode stack[EGRESS_MAX_POLICY_DEPTH + 1];
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
		struct ynode node = { 0 };
		switch (r ? YAML_NO_EVENT : ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				r = policy_perr(c, line, "",
					 "a second YAML document: a policy file holds exactly one");
			else if (ev.data.document_start.tag_directives.start !=
				 ev.data.document_start.tag_directives.end)
				r = policy_perr(c, line, "",
					 "%%TAG directives are not allowed: " NO_YAML_EXTRAS);
			break;
		case YAML_ALIAS_EVENT:
			r = policy_perr(c, line, "",
					"alias '*%.40s' is not allowed: " NO_YAML_EXTRAS,
					(const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
			node.type = Y_SCALAR;
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
			if (depth == EGRESS_MAX_POLICY_DEPTH) {
				r = policy_perr(c, line, "", "nested deeper than %d levels",
						EGRESS_MAX_POLICY_DEPTH);
				break;
			}
			depth++;
			stack[depth].type = ev.type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP;
			stack[depth].line = line;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			/* libyaml pairs start and end events, so depth > 0 */
			node = stack[depth];
			memset(&stack[depth], 0, sizeof(stack[depth]));
			depth--;
			if (ynode_append(&stack[depth], &node) < 0) {
				policy_ynode_clear(&node);
				r = -ENOMEM;
			}
			break;
		case YAML_NO_EVENT: /* or a refused event, reported above */
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&ps);
	if (r == -ENOMEM && !c->err->msg[0])
		r = cdn_err_set(c->err, ENOMEM, "%s", c->src);
	if (r == 0 && (stack[0].n != 1 || (stack[0].kids[0].type == Y_SCALAR &&
					   stack[0].kids[0].plain && stack[0].kids[0].len == 0)))
		r = policy_perr(c, 1, "", "the policy is empty; it needs at least 'version: 1'");
	if (r == 0) {
		*root = stack[0].kids[0];
		stack[0].n = 0;
	}
	for (size_t i = 0; i <= depth; i++)
		policy_ynode_clear(&stack[i]);
	return r;
}
