/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client's pure parts (s3.h): locations and keys, the headers and
 * the XML of an answer. An answer comes from the operator's own endpoint,
 * but it is still read within bounds: a header line, the headers together
 * and an XML body each have one (s3.h), and the XML is read by libxml2
 * with entities left unexpanded and nothing fetched.
 */
#define _GNU_SOURCE
#include "store/s3.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/hash.h"
#include "base/text.h"

/* ----------------------------------------------------------------- names */

static bool bucket_ok(const char *b, size_t n)
{
	if (n < 3 || n > S3_BUCKET_MAX || !isalnum((unsigned char)b[0]) ||
	    !isalnum((unsigned char)b[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
		      b[i] == '-'))
			return false;
	return true;
}

/* [A-Za-z0-9._-] components joined by single '/', none "." or "..": a key
 * needs no encoding and cannot be read as another path by a proxy. */
static bool path_ok(const char *p, size_t n)
{
	if (n == 0 || p[0] == '/' || p[n - 1] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/') {
			unsigned char c = (unsigned char)p[i];
			if (!isalnum(c) && c != '.' && c != '_' && c != '-')
				return false;
			continue;
		}
		size_t len = i - start;
		if (len == 0 || (len == 1 && p[start] == '.') ||
		    (len == 2 && p[start] == '.' && p[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

int s3_url_parse(const char *url, struct s3_loc *loc, struct cdn_err *err)
{
	memset(loc, 0, sizeof(*loc));
	char shown[128];
	cdn_printable_str(shown, sizeof(shown), url, CDN_TEXT_ELLIPSIS);
	if (!url || strncmp(url, "s3://", 5) != 0)
		return cdn_err_msg(err, EINVAL, "'%s' is not an S3 location (s3://BUCKET/PREFIX)",
				   shown);
	const char *b = url + 5;
	size_t bn = strcspn(b, "/");
	if (!bucket_ok(b, bn))
		return cdn_err_msg(err, EINVAL,
				   "'%s': the bucket must be 3 to 63 of [a-z0-9.-], starting and "
				   "ending with a letter or digit",
				   shown);
	memcpy(loc->bucket, b, bn);
	const char *p = b + bn;
	while (*p == '/')
		p++;
	size_t pn = strlen(p);
	while (pn && p[pn - 1] == '/')
		pn--;
	if (pn == 0)
		return 0;
	if (pn > S3_PREFIX_MAX || !path_ok(p, pn))
		return cdn_err_msg(err, EINVAL,
				   "'%s': the prefix must be at most %d bytes of [A-Za-z0-9._-] "
				   "names joined by '/', none of them '.' or '..'",
				   shown, S3_PREFIX_MAX);
	memcpy(loc->prefix, p, pn);
	return 0;
}

int s3_key(const struct s3_loc *loc, const char *rel, char *out, size_t cap, struct cdn_err *err)
{
	char shown[128];
	cdn_printable_str(shown, sizeof(shown), rel, CDN_TEXT_ELLIPSIS);
	if (!rel || !path_ok(rel, strlen(rel)))
		return cdn_err_msg(err, EINVAL, "s3: '%s' is not a key cordon writes", shown);
	int n = snprintf(out, cap, "%s%s%s", loc->prefix, loc->prefix[0] ? "/" : "", rel);
	if (n < 0 || (size_t)n >= cap || (size_t)n > S3_KEY_MAX)
		return cdn_err_msg(err, ENAMETOOLONG, "s3: the key for '%s' is too long", shown);
	return 0;
}

void s3_key_shown(const struct s3_loc *loc, const char *key, char *out, size_t cap)
{
	snprintf(out, cap, "s3://%s/%s", loc->bucket, key ? key : "");
}

int s3_uri_encode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
		if (o + (plain ? 1 : 3) >= cap)
			return -ENAMETOOLONG;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (cap == 0)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return 0;
}

/* --------------------------------------------------------------- headers */

void s3_head_line(const char *line, size_t len, struct s3_head *h)
{
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return;
	size_t nlen = (size_t)(colon - line);
	const char *v = colon + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vlen = (size_t)(end - v);
	if (nlen == 14 && !strncasecmp(line, "content-length", 14)) {
		uint64_t x = 0;
		size_t i = 0;
		for (; i < vlen && i < 20 && isdigit((unsigned char)v[i]); i++)
			x = x * 10 + (uint64_t)(v[i] - '0');
		if (i == vlen && vlen > 0 && vlen < 20) {
			h->length = x;
			h->has_length = true;
		}
	} else if (nlen == 17 && !strncasecmp(line, "x-amz-meta-sha256", 17)) {
		/* Stored by cordon in lowercase; anything else is no sha256. */
		if (vlen == S3_HEX && cdn_sha256_hex_ok(v, vlen)) {
			memcpy(h->sha256, v, S3_HEX);
			h->sha256[S3_HEX] = '\0';
		}
	} else if (nlen == 4 && !strncasecmp(line, "etag", 4)) {
		bool ok = vlen > 0 && vlen < sizeof(h->etag);
		for (size_t i = 0; ok && i < vlen; i++)
			ok =
			    v[i] > 0x20 && v[i] < 0x7f && v[i] != '<' && v[i] != '>' && v[i] != '&';
		if (ok) {
			memcpy(h->etag, v, vlen);
			h->etag[vlen] = '\0';
		}
	}
}

/* ------------------------------------------------------------------- XML */

/* libxml2, loaded on first use (s3.h says why). */
static struct {
	xmlDocPtr (*read_memory)(const char *, int, const char *, const char *, int);
	xmlNodePtr (*root)(const xmlDoc *);
	void (*free_doc)(xmlDocPtr);
	bool ok;
} xml;
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_load(void)
{
	void *h = dlopen("libxml2.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	*(void **)&xml.read_memory = dlsym(h, "xmlReadMemory");
	*(void **)&xml.root = dlsym(h, "xmlDocGetRootElement");
	*(void **)&xml.free_doc = dlsym(h, "xmlFreeDoc");
	xml.ok = xml.read_memory && xml.root && xml.free_doc;
}

int s3_xml_text(const char *body, size_t len, const char *root, const char *elem, char *out,
		size_t cap)
{
	if (cap)
		out[0] = '\0';
	if (len == 0 || len > S3_BODY_MAX)
		return -EINVAL;
	pthread_once(&xml_once, xml_load);
	if (!xml.ok)
		return -ENOSYS;
	/* No XML_PARSE_NOENT (entities stay references: no "billion laughs"),
	 * XML_PARSE_NONET (no DTD or entity fetched), no DTD loaded. */
	xmlDocPtr doc = xml.read_memory(body, (int)len, NULL, NULL,
					XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return -EINVAL;
	int r = -ENOENT;
	xmlNodePtr top = xml.root(doc);
	if (top && (!root || strcmp((const char *)top->name, root) == 0)) {
		for (xmlNodePtr n = top->children; n && r == -ENOENT; n = n->next) {
			if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, elem) != 0)
				continue;
			size_t o = 0;
			r = 0;
			for (xmlNodePtr t = n->children; t; t = t->next) {
				if (t->type != XML_TEXT_NODE || !t->content)
					continue;
				size_t tl = strlen((const char *)t->content);
				if (o + tl >= cap) {
					r = -E2BIG;
					break;
				}
				memcpy(out + o, t->content, tl);
				o += tl;
			}
			if (cap)
				out[r == 0 ? o : 0] = '\0';
		}
	}
	xml.free_doc(doc);
	return r;
}
