/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An S3 client (docs/state.md, "S3"): objects in a bucket, under a prefix,
 * named by a URL s3://BUCKET/PREFIX. Requests are signed with libcurl's
 * own SigV4 (CURLOPT_AWS_SIGV4); libcurl (and libxml2, for the few XML
 * answers read) are loaded when the first client is opened, so a command
 * that never names an S3 location never loads them.
 *
 *   endpoint     $CORDON_S3_ENDPOINT (http[s]://HOST[:PORT], path-style
 *                requests), else https://BUCKET.s3.REGION.amazonaws.com
 *   region       $AWS_REGION, else $AWS_DEFAULT_REGION, else us-east-1
 *   credentials  $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY and, for
 *                temporary ones, $AWS_SESSION_TOKEN
 *
 * Every object cordon writes carries the sha256 of its bytes
 * (x-amz-meta-sha256), and every read checks it: a content-addressed key
 * (a blob) against its own name, every other object against that stored
 * sha256, so a damaged or replaced object is refused, never passed on.
 * The secret key and the session token appear in no message.
 */
#ifndef CORDON_STORE_S3_H
#define CORDON_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define S3_BUCKET_MAX 63
#define S3_PREFIX_MAX 256
#define S3_KEY_MAX    512
#define S3_HEX	      64
/* Objects larger than this go up in parts of this size (multipart
 * upload); $CORDON_S3_PART_SIZE (bytes, at least S3_PART_MIN) changes it,
 * for tests: S3 itself wants parts of at least 5 MiB. */
#define S3_PART_SIZE	     (8u << 20)
#define S3_PART_MIN	     1024u
#define S3_PARTS_MAX	     10000	  /* S3's own limit */
#define S3_BODY_MAX	     (256u << 10) /* bytes of an answer read into memory (XML, errors) */
#define S3_HEADERS_MAX	     (64u << 10)  /* bytes of an answer's headers */
#define S3_ATTEMPTS	     4 /* tries of a request that failed by a 5xx or the network */
#define S3_CONNECT_TIMEOUT_S 10
#define S3_LOW_SPEED_S	     30 /* a transfer below 1 byte/s this long is cut */

/* ---------------------------------------------------------------- names */

struct s3_loc {
	char bucket[S3_BUCKET_MAX + 1];
	char prefix[S3_PREFIX_MAX + 1]; /* no leading or trailing '/'; "" for none */
};

/* s3://BUCKET[/PREFIX[/]]: a bucket name as S3 allows ([a-z0-9.-], 3 to
 * 63, starting and ending with a letter or digit) and a prefix of
 * [A-Za-z0-9._-] components joined by '/' (no "." or ".."), so that keys
 * need no encoding and sign the same everywhere. */
int s3_url_parse(const char *url, struct s3_loc *loc, struct cdn_err *err);
/* "PREFIX/rel" (or "rel" without a prefix). -ENAMETOOLONG past cap or
 * S3_KEY_MAX; -EINVAL when rel is empty, starts or ends with '/', or holds
 * a byte outside [A-Za-z0-9._/-] or a "." or ".." component. */
int s3_key(const struct s3_loc *loc, const char *rel, char *out, size_t cap, struct cdn_err *err);
/* s3://BUCKET/KEY, as messages name an object. */
void s3_key_shown(const struct s3_loc *loc, const char *key, char *out, size_t cap);
/* s in out with every byte but [A-Za-z0-9-._~] as %XX (SigV4's rule). */
int s3_uri_encode(const char *s, char *out, size_t cap);

/* --------------------------------------------------------------- answers */

/* What the client keeps of an answer's headers. */
struct s3_head {
	uint64_t length;
	bool has_length;
	char sha256[S3_HEX + 1]; /* x-amz-meta-sha256, "" when absent or not a sha256 */
	char etag[128];		 /* as sent, quotes kept; "" when absent or too long */
};
/* One header line ("Name: value\r\n") into h: names compared without
 * case, values trimmed; other headers and malformed lines are ignored. */
void s3_head_line(const char *line, size_t len, struct s3_head *h);
/* The text of the first element named elem among the children of the
 * document's root element, when the root is named root (NULL: any), from
 * an XML answer of at most S3_BODY_MAX bytes; no entities are expanded and
 * nothing is fetched. 0, -ENOENT when absent, -EINVAL when it is not XML,
 * -ENOSYS when libxml2 cannot be loaded. */
int s3_xml_text(const char *xml, size_t len, const char *root, const char *elem, char *out,
		size_t cap);

/* --------------------------------------------------------------- client */

struct s3;

/* A client for url, with the endpoint, region and credentials of the
 * environment (above): EINVAL when one is missing or malformed, ENOSYS
 * when libcurl cannot be loaded. Nothing is sent yet. */
int s3_open(const char *url, struct s3 **out, struct cdn_err *err);
void s3_close(struct s3 *c);
const struct s3_loc *s3_loc(const struct s3 *c);
/* "s3://BUCKET/PREFIX" for messages. */
const char *s3_shown(const struct s3 *c);

/* Reads a key that does not exist under the prefix: the endpoint
 * answers, the bucket exists and the credentials are accepted, or an
 * error that says which is not so. */
int s3_check(struct s3 *c, struct cdn_err *err);

/* HEAD: -ENOENT when there is no such object. */
int s3_head(struct s3 *c, const char *key, struct s3_head *out, struct cdn_err *err);

enum s3_put_mode {
	/* An object already there with these bytes' sha256 and size is kept
	 * (nothing is sent); one with another is replaced. */
	S3_PUT_REPLACE,
	/* As REPLACE, but one with another sha256 is an error (EEXIST): an
	 * evidence pack is written once. */
	S3_PUT_ONCE,
};
/*
 * Uploads the regular file fd (from offset 0 to its end) as key, with its
 * sha256 stored beside it; one PUT up to the part size, a multipart upload
 * above it (aborted when a part fails). hex, when not NULL, is the sha256
 * the bytes must have (a content-addressed key): a file that does not hash
 * to it is refused. *sent (may be NULL) tells whether anything was sent.
 */
int s3_put_fd(struct s3 *c, const char *key, int fd, const char *hex, enum s3_put_mode mode,
	      bool *sent, struct cdn_err *err);
/*
 * Downloads key into the regular file fd (truncated first, and again
 * before a retry), at most max bytes (EFBIG past that), and checks its
 * sha256: against hex when it is not NULL (a content-addressed key),
 * else against the x-amz-meta-sha256 its writer stored (an object without
 * one is refused). EIO when the bytes do not match: the caller must not
 * use what fd holds then. -ENOENT when there is no such object.
 */
int s3_get_fd(struct s3 *c, const char *key, int fd, uint64_t max, const char *hex,
	      char got[S3_HEX + 1], struct cdn_err *err);
/* DELETE; an object that is not there is not an error. */
int s3_delete(struct s3 *c, const char *key, struct cdn_err *err);

#endif
