/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor <-> network part frames (see netmsg.h). */
#define _GNU_SOURCE
#include "run/netmsg.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/cleanup.h"

const char *const netmsg_event_types[] = {
	"egress.allowed",      "egress.blocked",      "approval.requested",
	"approval.decided",    "log",		      "mcp.artifact",
	"mcp.token_refused",   "mcp.session_refused", "mcp.session_opened",
	"egress.secret_sealed", NULL,
};

static bool type_known(uint16_t t)
{
	return (t >= NETMSG_CONFIG && t <= NETMSG_CALL_DONE) ||
	       (t >= NETMSG_READY && t <= NETMSG_CALL);
}

int netmsg_put(struct netmsg_buf *b, enum netmsg_type type, const void *payload, size_t len)
{
	if (len > NETMSG_MAX || !type_known((uint16_t)type))
		return -EINVAL;
	size_t need = b->len + NETMSG_HEADER + len;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	uint8_t *h = b->p + b->len;
	h[0] = (uint8_t)len;
	h[1] = (uint8_t)(len >> 8);
	h[2] = (uint8_t)(len >> 16);
	h[3] = (uint8_t)(len >> 24);
	h[4] = (uint8_t)type;
	h[5] = (uint8_t)((unsigned)type >> 8);
	h[6] = h[7] = 0;
	if (len)
		memcpy(h + NETMSG_HEADER, payload, len);
	b->len = need;
	return 0;
}

int netmsg_put_json(struct netmsg_buf *b, enum netmsg_type type, const json_t *j)
{
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	return netmsg_put(b, type, text, strlen(text));
}

void netmsg_buf_free(struct netmsg_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int netmsg_take(const uint8_t *data, size_t avail, size_t max, enum netmsg_type *type,
		const uint8_t **payload, size_t *len, size_t *used, struct cdn_err *err)
{
	if (avail < NETMSG_HEADER)
		return 0;
	uint32_t n = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
		     (uint32_t)data[3] << 24;
	uint16_t t = (uint16_t)(data[4] | data[5] << 8);
	if (data[6] || data[7] || !type_known(t))
		return cdn_err_msg(err, EPROTO, "channel: a malformed frame header");
	if (n > max)
		return cdn_err_msg(err, EMSGSIZE, "channel: a frame of %u bytes (at most %zu)", n, max);
	if (avail - NETMSG_HEADER < n)
		return 0;
	*type = (enum netmsg_type)t;
	*payload = data + NETMSG_HEADER;
	*len = n;
	*used = NETMSG_HEADER + n;
	return 1;
}

json_t *netmsg_json(const uint8_t *payload, size_t len, struct cdn_err *err)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		cdn_err_msg(err, EPROTO, "channel: a payload that is not a JSON object");
		return NULL;
	}
	return j;
}

/* ------------------------------------------------------ from the network part */

/* Every string in j (keys included) is at most max bytes, and nesting is at
 * most depth deep: what reaches the event stream and the audit log stays
 * within their line limits. */
static bool bounded(const json_t *j, size_t max, int depth)
{
	if (depth < 0)
		return false;
	if (json_is_string(j))
		return json_string_length(j) <= max;
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v)
		if (strlen(k) > 64 || !bounded(v, max, depth - 1))
			return false;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
		if (!bounded(v, max, depth - 1))
			return false;
	}
	return true;
}

static int decode_artifact(const uint8_t *p, size_t len, struct netmsg_up *out,
			   struct cdn_err *err)
{
	if (len < 6)
		return cdn_err_msg(err, EPROTO, "channel: a short artifact");
	out->seq = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		   (uint32_t)p[3] << 24;
	size_t nl = (size_t)p[4] | (size_t)p[5] << 8;
	if (nl == 0 || nl > 128 || nl > len - 6)
		return cdn_err_msg(err, EPROTO, "channel: an artifact name of a bad length");
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = p[6 + i];
		if (!(isalnum(c) || c == '_' || c == '-' || (c == '.' && i > 0)))
			return cdn_err_msg(err, EPROTO, "channel: a bad artifact name");
	}
	memcpy(out->name, p + 6, nl);
	out->name[nl] = '\0';
	out->data = p + 6 + nl;
	out->data_len = len - 6 - nl;
	return 0;
}

int netmsg_decode_up(enum netmsg_type type, const uint8_t *payload, size_t len,
		     struct netmsg_up *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	out->type = type;
	if (len > NETMSG_MAX_UP)
		return cdn_err_msg(err, EMSGSIZE, "channel: a message of %zu bytes", len);
	if (type == NETMSG_ARTIFACT)
		return decode_artifact(payload, len, out, err);
	if (type < NETMSG_READY || type > NETMSG_CALL)
		return cdn_err_msg(err, EPROTO, "channel: type %d does not come from the network part",
				   (int)type);
	json_t *j = netmsg_json(payload, len, err);
	if (!j)
		return -EPROTO;
	out->json = j;
	switch (type) {
	case NETMSG_READY: {
		static const char *const ints[] = { "pid", "uid", "gid", "landlock_abi" };
		for (size_t i = 0; i < CDN_ARRAY_SIZE(ints); i++)
			if (!json_is_integer(json_object_get(j, ints[i])))
				return cdn_err_msg(err, EPROTO, "channel: READY without %s", ints[i]);
		if (!json_is_boolean(json_object_get(j, "no_new_privs")) ||
		    !json_is_boolean(json_object_get(j, "seccomp")) ||
		    !json_is_string(json_object_get(j, "caps")) || !bounded(j, 64, 1))
			return cdn_err_msg(err, EPROTO, "channel: a malformed READY");
		return 0;
	}
	case NETMSG_EVENT: {
		const char *t = json_string_value(json_object_get(j, "type"));
		json_t *data = json_object_get(j, "data");
		for (size_t i = 0; t && netmsg_event_types[i]; i++)
			if (strcmp(t, netmsg_event_types[i]) == 0)
				out->event = netmsg_event_types[i];
		if (!out->event || !json_is_object(data) || json_object_size(j) != 2 ||
		    !bounded(data, 8192, 8))
			return cdn_err_msg(err, EPROTO, "channel: a malformed or unknown event");
		out->json = json_incref(data);
		json_decref(j);
		return 0;
	}
	case NETMSG_AUDIT:
		/* The audit log refuses lines over AUDIT_MAX_LINE; leave room for
		 * the chain fields it adds. */
		if (!json_is_string(json_object_get(j, "event_type")) ||
		    len > AUDIT_MAX_LINE - 512 || !bounded(j, 8192, 4) ||
		    json_object_get(j, "seq") || json_object_get(j, "hash") ||
		    json_object_get(j, "prev_hash"))
			return cdn_err_msg(err, EPROTO, "channel: a malformed audit entry");
		return 0;
	case NETMSG_STEP:
		if (!bounded(j, 20000, 32))
			return cdn_err_msg(err, EPROTO, "channel: a malformed step");
		return 0;
	case NETMSG_FATAL:
		if (!json_is_string(json_object_get(j, "error")) || !bounded(j, 1024, 1))
			return cdn_err_msg(err, EPROTO, "channel: a malformed FATAL");
		return 0;
	case NETMSG_CALL: {
		/* What the agent asked for, from a part that may be
		 * compromised: an id of ours, a bounded name (checked for what
		 * it names by the supervisor) and an object, nothing else. */
		const char *id = json_string_value(json_object_get(j, "id"));
		out->callee = json_string_value(json_object_get(j, "agent"));
		size_t il = id ? strlen(id) : 0;
		bool ok = id && il > 5 && il <= NETMSG_MAX_CALL_ID && strncmp(id, "call_", 5) == 0 &&
			  out->callee && out->callee[0] &&
			  json_string_length(json_object_get(j, "agent")) <= NETMSG_MAX_CALLEE &&
			  strlen(out->callee) == json_string_length(json_object_get(j, "agent")) &&
			  json_is_object(json_object_get(j, "input")) && json_object_size(j) == 3;
		for (size_t i = 5; ok && i < il; i++)
			ok = id[i] >= '0' && id[i] <= '9';
		if (!ok)
			return cdn_err_msg(err, EPROTO, "channel: a malformed CALL");
		memcpy(out->call_id, id, il + 1);
		return 0;
	}
	case NETMSG_CONFIG:
	case NETMSG_PHASE_END:
	case NETMSG_DECIDE:
	case NETMSG_POLICY:
	case NETMSG_ARTIFACT_DONE:
	case NETMSG_STOP:
	case NETMSG_CALL_DONE:
	case NETMSG_ARTIFACT:
	default: /* handled or refused above */
		break;
	}
	return cdn_err_msg(err, EPROTO, "channel: unexpected type %d", (int)type);
}

void netmsg_up_clear(struct netmsg_up *m)
{
	json_decref(m->json);
	m->json = NULL;
}
