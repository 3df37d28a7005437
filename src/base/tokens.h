/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shapes of cordon's own bearer credentials: a prefix and 64 hex
 * digits (32 random bytes). The prefixes make a leaked credential
 * recognisable: every run's redactor replaces them in what the run prints
 * (src/vault/redact.c), and the egress inspector refuses to send them
 * (src/egress/inspect.c).
 */
#ifndef CORDON_BASE_TOKENS_H
#define CORDON_BASE_TOKENS_H

#define CDN_TOKEN_MCP_PREFIX	 "cdn_mcp_"  /* a run's MCP phase token */
#define CDN_TOKEN_SESSION_PREFIX "cdn_mcps_" /* an MCP session id */
#define CDN_TOKEN_API_KEY_PREFIX "cdn_live_" /* a `cordon serve` API key */
#define CDN_TOKEN_HEX		 64	     /* hex digits after the prefix */

#endif
