/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The channel between a run's privileged supervisor and its network part
 * (src/run/netpart.h): one socketpair, one format, read strictly on both
 * sides because the network part is where a hostile agent's bytes are
 * parsed, and what it says may be a compromised process talking.
 *
 * A frame is an 8-byte header, then the payload:
 *
 *     u32 length of the payload (little endian), at most NETMSG_MAX
 *     u16 type (enum netmsg_type)
 *     u16 zero
 *
 * Payloads are JSON objects, except ARTIFACT (binary, below). What each
 * type may carry is checked by netmsg_decode_up() (what the supervisor
 * accepts from the network part; fuzzed by tests/fuzz/fuzz_netmsg.c) and by
 * the network part on what it receives. A frame that fails the check ends
 * the channel: the supervisor then treats the network part as dead (the
 * run has no network from then on and ends with an error).
 */
#ifndef CORDON_RUN_NETMSG_H
#define CORDON_RUN_NETMSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define NETMSG_HEADER 8
#define NETMSG_MAX (8u << 20)	     /* bytes of a payload (CONFIG carries policy and input) */
#define NETMSG_MAX_UP (2u << 20)     /* ... of one from the network part */
#define NETMSG_MAX_QUEUED (64u << 20) /* bytes queued for a slow reader: then the channel ends */
#define NETMSG_MAX_EVENT_TYPE 40
#define NETMSG_MAX_CALL_ID 24	     /* "call_" and up to 19 digits */
#define NETMSG_MAX_CALLEE 320	     /* bytes of a CALL's agent (MCP_MAX_CALLEE characters) */

enum netmsg_type {
	/* supervisor -> network part */
	NETMSG_CONFIG = 1,	  /* once, first: everything the part needs */
	NETMSG_PHASE_END = 2,	  /* {"phase": 0|1} */
	NETMSG_DECIDE = 3,	  /* {"id", "approve", "by"} */
	NETMSG_POLICY = 4,	  /* {"policy": ...} (a reload) */
	NETMSG_ARTIFACT_DONE = 5, /* {"seq", "ok", "error"?} */
	NETMSG_STOP = 6,	  /* {}: close everything, say the last lines, exit */
	NETMSG_CALL_DONE = 7,	  /* {"id", "is_error", "text", "result"?}: a call_agent answer */
	/* network part -> supervisor */
	NETMSG_READY = 64,    /* {"pid","uid","gid","no_new_privs","seccomp","landlock_abi","caps"} */
	NETMSG_EVENT = 65,    /* {"type": one of netmsg_event_types, "data": {...}} */
	NETMSG_AUDIT = 66,    /* an audit entry: an object with "event_type" */
	NETMSG_STEP = 67,     /* a step object */
	NETMSG_ARTIFACT = 68, /* u32 seq, u16 name length, name, then the bytes */
	NETMSG_FATAL = 69,    /* {"error": "..."}: why the part stops */
	NETMSG_CALL = 70,     /* {"id", "agent", "input"}: the agent's call_agent */
};

/* Event types the network part may report (egress and MCP). */
extern const char *const netmsg_event_types[];

/* Appends one frame to buf (a malloc'd growable buffer). */
struct netmsg_buf {
	uint8_t *p;
	size_t len, cap;
};
int netmsg_put(struct netmsg_buf *b, enum netmsg_type type, const void *payload, size_t len);
int netmsg_put_json(struct netmsg_buf *b, enum netmsg_type type, const json_t *j);
void netmsg_buf_free(struct netmsg_buf *b);

/*
 * One frame from the front of data: 1 with *type, *payload, *len and
 * *used (header + payload) set; 0 when the frame is not complete yet;
 * negative with err when the header is malformed (unknown type, a length
 * over max, a nonzero reserved field).
 */
int netmsg_take(const uint8_t *data, size_t avail, size_t max, enum netmsg_type *type,
		const uint8_t **payload, size_t *len, size_t *used, struct cdn_err *err);

/* A message from the network part, checked. */
struct netmsg_up {
	enum netmsg_type type;
	json_t *json;	       /* READY, EVENT (its "data"), AUDIT, STEP, FATAL */
	const char *event;     /* EVENT: the type, one of netmsg_event_types (static) */
	uint32_t seq;	       /* ARTIFACT */
	char name[129];	       /* ARTIFACT: [A-Za-z0-9_-][A-Za-z0-9._-]{0,127} */
	const uint8_t *data;   /* ARTIFACT: points into the payload */
	size_t data_len;
	/* CALL: id ("call_" and digits), the callee as the agent wrote it
	 * (checked by the supervisor), the input object (in json) */
	char call_id[NETMSG_MAX_CALL_ID + 1];
	const char *callee; /* points into json */
};

/* Checks a frame's payload as the supervisor must: only the types the
 * network part sends, JSON that is an object of the documented shape,
 * bounded strings. Frees nothing on error; call netmsg_up_clear after. */
int netmsg_decode_up(enum netmsg_type type, const uint8_t *payload, size_t len,
		     struct netmsg_up *out, struct cdn_err *err);
void netmsg_up_clear(struct netmsg_up *m);

/* A JSON payload of a frame to the network part: an object, or an error. */
json_t *netmsg_json(const uint8_t *payload, size_t len, struct cdn_err *err);

#endif
