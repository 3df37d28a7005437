/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/deps: the dependency layers the key's workspace's agents
 * declare (docs/deps.md), each with its hash and whether it is built on
 * this host. Owners and members alike; only the workspace's own agents,
 * so no workspace learns another's lockfiles. Layers are built by a run's
 * first use, or by `cordon deps build` on the host.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "run/deps.h"

enum MHD_Result h_deps(struct call *c)
{
	struct store_item *items = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int r = store_item_list(c->sv->s, STORE_AGENT, c->key.workspace, &items, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		struct deps_layer l;
		bool declares = false;
		struct cdn_err e = { 0 };
		int k = deps_tree_layer(c->sv->s, items[i].tree, &l, &declares, &e);
		if (!declares)
			continue;
		json_t *row = json_pack("{s:s, s:I}", "agent", items[i].name, "version",
					(json_int_t)items[i].version);
		if (k < 0) {
			/* The registered tree was checked when it was stored: this is
			 * the host's (no node here, a damaged blob), said as such. */
			json_object_set_new(row, "deps", json_null());
			json_object_set_new(row, "error", json_string(e.msg));
		} else {
			json_t *d = deps_layer_json(&l);
			json_object_del(d, "built");
			json_object_del(d, "build_ms");
			json_object_set_new(row, "deps", d);
			json_object_set_new(row, "built", json_boolean(l.path[0] != '\0'));
		}
		json_array_append_new(arr, row);
	}
	store_items_free(items, n);
	return api_reply(c->conn, 200, json_pack("{s:o}", "agents", arr));
}
