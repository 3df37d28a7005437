/* SPDX-License-Identifier: Apache-2.0 */
/* The dashboard's files, compiled in (tools/embed.py makes assets_data.c). */
#ifndef CORDON_SERVE_ASSETS_H
#define CORDON_SERVE_ASSETS_H

#include <stddef.h>

struct serve_asset {
	const char *path; /* "/index.html" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* NULL when there is no such file. */
const struct serve_asset *serve_asset_find(const char *path);

#endif
