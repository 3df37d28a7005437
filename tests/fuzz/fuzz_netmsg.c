/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the channel between a run's supervisor and its
 * network part (src/run/netmsg.c), from the supervisor's side: the bytes
 * are what a compromised network part could write. They are cut into
 * frames as the supervisor cuts them, and each frame is checked as the
 * supervisor checks it.
 *
 * Invariants: a frame never claims more than it holds; a decoded message
 * of a JSON type is an object, an event's type is one of the listed ones
 * and its data an object, an artifact's name matches the documented
 * grammar and its bytes lie inside the frame, a call has an id of the
 * network part's form, a bounded callee and an input object.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/netmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                \
	do {                       \
		if (!(cond))       \
			abort();   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		enum netmsg_type t;
		const uint8_t *p;
		size_t n, used;
		struct cdn_err err = { 0 };
		int r = netmsg_take(data + off, size - off, NETMSG_MAX_UP, &t, &p, &n, &used, &err);
		if (r <= 0)
			break;
		CHECK(used == NETMSG_HEADER + n && used <= size - off);
		CHECK(p == data + off + NETMSG_HEADER);
		struct netmsg_up m;
		if (netmsg_decode_up(t, p, n, &m, &err) == 0) {
			if (t == NETMSG_ARTIFACT) {
				size_t nl = strlen(m.name);
				CHECK(nl >= 1 && nl <= 128 && m.name[0] != '.');
				for (size_t i = 0; i < nl; i++)
					CHECK(isalnum((unsigned char)m.name[i]) || strchr("._-", m.name[i]));
				CHECK(m.data >= p && m.data + m.data_len == p + n);
			} else {
				CHECK(json_is_object(m.json));
				CHECK(t >= NETMSG_READY && t <= NETMSG_CALL);
				if (t == NETMSG_CALL) {
					/* what the supervisor acts on: an id of the part's
					 * form, a bounded callee, an input object */
					size_t il = strlen(m.call_id);
					CHECK(il > 5 && il <= NETMSG_MAX_CALL_ID &&
					      strncmp(m.call_id, "call_", 5) == 0);
					for (size_t i = 5; i < il; i++)
						CHECK(isdigit((unsigned char)m.call_id[i]));
					CHECK(m.callee && m.callee[0] &&
					      strlen(m.callee) <= NETMSG_MAX_CALLEE);
					CHECK(json_is_object(json_object_get(m.json, "input")));
				}
				if (t == NETMSG_EVENT) {
					bool listed = false;
					for (size_t i = 0; netmsg_event_types[i]; i++)
						listed |= m.event == netmsg_event_types[i];
					CHECK(listed);
				}
			}
		}
		netmsg_up_clear(&m);
		off += used;
	}
	return 0;
}
