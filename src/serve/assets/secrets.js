// SPDX-License-Identifier: Apache-2.0
// The secrets page: names, sizes and times; never a value.

import { $, el, clear, show, fmtBytes, timeEl } from "./dom.js";
import { api } from "./api.js";

/* -------------------------------------------------------- secrets view */

export async function viewSecrets(scope) {
	const j = await api("/v1/secrets", { signal: scope.signal });
	if (!scope.alive) return;
	const body = clear($("secrets-body"));
	const list = j.secrets || [];
	for (const s of list) {
		body.append(el("tr", { testid: "secret-row", data: { name: s.name } },
			el("td", { class: "mono", text: s.name }),
			el("td", { class: "num", text: fmtBytes(s.size) }),
			el("td", {}, timeEl(s.updated))));
	}
	show($("secrets-empty"), list.length === 0);
}
