/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client (s3.h): one libcurl handle per client, behind a mutex,
 * each request signed by libcurl's SigV4 with the payload's sha256 sent
 * and signed too (x-amz-content-sha256), so a proxy or a middlebox
 * cannot change a body unnoticed even over plain http to a local
 * endpoint. A request that failed by the network or a 5xx is tried again
 * (S3_ATTEMPTS, with growing pauses); any other answer is final.
 */
#define _GNU_SOURCE
#include "store/s3.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/text.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_CRED_MAX  4096
#define S3_URL_MAX   2048

/* ----------------------------------------------------------------- libcurl */

/* Loaded on first use: a run or a command that names no S3 location does
 * not load libcurl and the thirty libraries behind it. */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*init)(void);
	CURLcode (*setopt)(CURL *, CURLoption, ...);
	CURLcode (*perform)(CURL *);
	CURLcode (*getinfo)(CURL *, CURLINFO, ...);
	void (*cleanup)(CURL *);
	void (*reset)(CURL *);
	const char *(*strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	bool ok;
} cu;
static pthread_once_t cu_once = PTHREAD_ONCE_INIT;

static void cu_load(void)
{
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	*(void **)&cu.global_init = dlsym(h, "curl_global_init");
	*(void **)&cu.init = dlsym(h, "curl_easy_init");
	*(void **)&cu.setopt = dlsym(h, "curl_easy_setopt");
	*(void **)&cu.perform = dlsym(h, "curl_easy_perform");
	*(void **)&cu.getinfo = dlsym(h, "curl_easy_getinfo");
	*(void **)&cu.cleanup = dlsym(h, "curl_easy_cleanup");
	*(void **)&cu.reset = dlsym(h, "curl_easy_reset");
	*(void **)&cu.strerror = dlsym(h, "curl_easy_strerror");
	*(void **)&cu.slist_append = dlsym(h, "curl_slist_append");
	*(void **)&cu.slist_free_all = dlsym(h, "curl_slist_free_all");
	cu.ok = cu.global_init && cu.init && cu.setopt && cu.perform && cu.getinfo && cu.cleanup &&
		cu.reset && cu.strerror && cu.slist_append && cu.slist_free_all &&
		cu.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ------------------------------------------------------------------ client */

struct s3 {
	struct s3_loc loc;
	char shown[S3_BUCKET_MAX + S3_PREFIX_MAX + 8];
	char endpoint[512]; /* scheme://host[:port], no trailing '/' */
	bool path_style;
	char sigv4[96];			   /* "aws:amz:REGION:s3" */
	char userpwd[S3_CRED_MAX * 2 + 2]; /* secret: never in a message */
	char token[S3_CRED_MAX + 1];	   /* secret: never in a message */
	char secret[S3_CRED_MAX + 1];	   /* kept to scrub answers of it */
	uint64_t part_size;
	pthread_mutex_t mu;
	CURL *h;
};

static int env_cred(const char *name, bool required, char *out, size_t cap, struct cdn_err *err)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		out[0] = '\0';
		return required ? cdn_err_msg(err, EINVAL, "s3: %s is not set", name) : 0;
	}
	size_t n = strlen(v);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return cdn_err_msg(err, EINVAL, "s3: %s holds a byte that is not printable",
					   name);
	if (n >= cap)
		return cdn_err_msg(err, EINVAL, "s3: %s is longer than %zu bytes", name, cap - 1);
	memcpy(out, v, n + 1);
	return 0;
}

static int endpoint_set(struct s3 *c, struct cdn_err *err)
{
	const char *e = getenv("CORDON_S3_ENDPOINT");
	char region[64];
	const char *r = getenv("AWS_REGION");
	if (!r || !*r)
		r = getenv("AWS_DEFAULT_REGION");
	if (!r || !*r)
		r = "us-east-1";
	size_t rn = strlen(r);
	if (rn >= sizeof(region) || strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") != rn)
		return cdn_err_msg(err, EINVAL, "s3: the region (AWS_REGION) must be [a-z0-9-]");
	memcpy(region, r, rn + 1);
	snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:s3", region);
	if (!e || !*e) {
		c->path_style = false;
		snprintf(c->endpoint, sizeof(c->endpoint), "https://%s.s3.%s.amazonaws.com",
			 c->loc.bucket, region);
		return 0;
	}
	char shown[128];
	cdn_printable_str(shown, sizeof(shown), e, CDN_TEXT_ELLIPSIS);
	size_t en = strlen(e);
	while (en && e[en - 1] == '/')
		en--;
	const char *host = !strncmp(e, "https://", 8)  ? e + 8
			   : !strncmp(e, "http://", 7) ? e + 7
						       : NULL;
	/* scheme://host[:port] and nothing else: a path, a query or user info
	 * would change what is signed, or where the keys go. */
	if (!host || host >= e + en || en >= sizeof(c->endpoint) ||
	    strcspn(host, "/?#@ ") < (size_t)(e + en - host))
		return cdn_err_msg(err, EINVAL,
				   "s3: CORDON_S3_ENDPOINT '%s' must be http[s]://HOST[:PORT]",
				   shown);
	memcpy(c->endpoint, e, en);
	c->endpoint[en] = '\0';
	c->path_style = true;
	return 0;
}

int s3_open(const char *url, struct s3 **out, struct cdn_err *err)
{
	*out = NULL;
	struct s3 *c = calloc(1, sizeof(*c));
	if (!c)
		return cdn_err_set(err, ENOMEM, "s3");
	char key_id[S3_CRED_MAX + 1];
	int r = s3_url_parse(url, &c->loc, err);
	if (r == 0)
		r = endpoint_set(c, err);
	if (r == 0)
		r = env_cred("AWS_ACCESS_KEY_ID", true, key_id, sizeof(key_id), err);
	if (r == 0)
		r = env_cred("AWS_SECRET_ACCESS_KEY", true, c->secret, sizeof(c->secret), err);
	if (r == 0)
		r = env_cred("AWS_SESSION_TOKEN", false, c->token, sizeof(c->token), err);
	if (r == 0 && strchr(key_id, ':'))
		r = cdn_err_msg(err, EINVAL, "s3: AWS_ACCESS_KEY_ID holds a ':'");
	c->part_size = S3_PART_SIZE;
	const char *ps = getenv("CORDON_S3_PART_SIZE");
	if (r == 0 && ps && *ps) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(ps, &end, 10);
		if (errno || *end || v < S3_PART_MIN || v > (5ull << 30))
			r = cdn_err_msg(err, EINVAL,
					"s3: CORDON_S3_PART_SIZE must be bytes from %u to 5 GiB",
					S3_PART_MIN);
		c->part_size = v;
	}
	if (r == 0) {
		pthread_once(&cu_once, cu_load);
		if (!cu.ok)
			r = cdn_err_msg(err, ENOSYS, "s3: libcurl (libcurl.so.4) cannot be loaded");
	}
	if (r == 0 && !(c->h = cu.init()))
		r = cdn_err_set(err, ENOMEM, "s3: a libcurl handle");
	if (r < 0) {
		sodium_memzero(key_id, sizeof(key_id));
		s3_close(c);
		return r;
	}
	snprintf(c->userpwd, sizeof(c->userpwd), "%s:%s", key_id, c->secret);
	sodium_memzero(key_id, sizeof(key_id));
	snprintf(c->shown, sizeof(c->shown), "s3://%s%s%s", c->loc.bucket,
		 c->loc.prefix[0] ? "/" : "", c->loc.prefix);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void s3_close(struct s3 *c)
{
	if (!c)
		return;
	if (c->h) {
		cu.cleanup(c->h);
		pthread_mutex_destroy(&c->mu);
	}
	sodium_memzero(c, sizeof(*c));
	free(c);
}

const struct s3_loc *s3_loc(const struct s3 *c)
{
	return &c->loc;
}

const char *s3_shown(const struct s3 *c)
{
	return c->shown;
}

/* --------------------------------------------------------------- requests */

struct req {
	const char *method; /* GET, HEAD, PUT, POST, DELETE */
	const char *key;    /* NULL: the bucket */
	const char *query;  /* "uploads=", "partNumber=1&uploadId=...": sorted, encoded */
	const void *body;
	size_t body_len;
	const char *meta_sha256; /* x-amz-meta-sha256 to store, or NULL */
	/* A GET's body: into out_fd (when >= 0) at most out_max bytes,
	 * hashed into hs; else into mem, at most S3_BODY_MAX. */
	int out_fd;
	uint64_t out_max, out_len;
	crypto_hash_sha256_state hs;
	bool too_big, write_failed, headers_too_big;
	/* The answer. */
	long status;
	struct s3_head head;
	size_t header_bytes;
	char mem[S3_BODY_MAX + 1];
	size_t mem_len;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = size * n;
	q->header_bytes += len;
	if (q->header_bytes > S3_HEADERS_MAX) {
		q->headers_too_big = true;
		return 0;
	}
	/* A new status line (after a 100 Continue) starts a new set, and
	 * says whether the body that follows is the object or an error. */
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		q->head = (struct s3_head){0};
		const char *sp = memchr(p, ' ', len);
		q->status = 0;
		for (size_t i = sp ? (size_t)(sp - p) + 1 : len; i < len && i < 16; i++) {
			if (p[i] < '0' || p[i] > '9')
				break;
			q->status = q->status * 10 + (p[i] - '0');
		}
	} else
		s3_head_line(p, len, &q->head);
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = size * n;
	/* Only a 2xx body is the object; anything else is an error to read. */
	if (q->out_fd >= 0 && q->status >= 200 && q->status < 300) {
		if (q->out_len + len > q->out_max) {
			q->too_big = true;
			return 0;
		}
		if (cdn_write_all(q->out_fd, p, len) < 0) {
			q->write_failed = true;
			return 0;
		}
		crypto_hash_sha256_update(&q->hs, (const unsigned char *)p, len);
		q->out_len += len;
		return len;
	}
	size_t room = S3_BODY_MAX - q->mem_len;
	size_t take = len < room ? len : room;
	memcpy(q->mem + q->mem_len, p, take);
	q->mem_len += take;
	q->mem[q->mem_len] = '\0';
	return len; /* the rest of an oversized error is dropped, not an error */
}

/* Replaces each occurrence of a secret in s (cap bytes) by "***", so that
 * an answer that echoes a request (a SignatureDoesNotMatch's canonical
 * request holds the session token) cannot carry one into a message. The
 * text is rebuilt left to right, so a short secret, or one that "***"
 * would match again, neither grows it past cap nor loops. */
static void scrub(char *s, size_t cap, const char *secret)
{
	size_t n = strlen(secret);
	if (n == 0 || cap == 0)
		return;
	char out[1024];
	size_t o = 0, room = cap < sizeof(out) ? cap : sizeof(out);
	for (const char *p = s; *p && o + 1 < room;) {
		if (!strncmp(p, secret, n)) {
			for (int k = 0; k < 3 && o + 1 < room; k++)
				out[o++] = '*';
			p += n;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	memcpy(s, out, o + 1);
}

/* "HTTP 403 SignatureDoesNotMatch: The request signature ..." from an
 * error answer, printable and without a secret. */
static void answer_text(const struct s3 *c, const struct req *q, char *out, size_t cap)
{
	char code[128] = "", msg[512] = "";
	if (q->mem_len) {
		(void)s3_xml_text(q->mem, q->mem_len, "Error", "Code", code, sizeof(code));
		(void)s3_xml_text(q->mem, q->mem_len, "Error", "Message", msg, sizeof(msg));
	}
	scrub(code, sizeof(code), c->secret);
	scrub(msg, sizeof(msg), c->secret);
	scrub(code, sizeof(code), c->token);
	scrub(msg, sizeof(msg), c->token);
	char pc[128], pm[256];
	cdn_printable_str(pc, sizeof(pc), code, CDN_TEXT_ELLIPSIS);
	cdn_printable_str(pm, sizeof(pm), msg, CDN_TEXT_ELLIPSIS);
	const char *hint = "";
	if (q->status == 403)
		hint = " (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy)";
	snprintf(out, cap, "HTTP %ld%s%s%s%s%s", q->status, pc[0] ? " " : "", pc, pm[0] ? ": " : "",
		 pm, hint);
}

static bool retryable(CURLcode rc, long status)
{
	if (rc == CURLE_OK)
		return status >= 500 && status < 600;
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
	       rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE;
}

/*
 * Sends q, trying again after a network failure or a 5xx. 0 with
 * q->status set when an answer came (whatever its status); a negative
 * errno, with err saying what, when none did or the answer broke a bound.
 */
static int request(struct s3 *c, struct req *q, struct cdn_err *err)
{
	char url[S3_URL_MAX], obj[S3_KEY_MAX + S3_BUCKET_MAX + 8];
	const char *key = q->key ? q->key : "";
	int n = c->path_style
		    ? snprintf(url, sizeof(url), "%s/%s/%s%s%s", c->endpoint, c->loc.bucket, key,
			       q->query ? "?" : "", q->query ? q->query : "")
		    : snprintf(url, sizeof(url), "%s/%s%s%s", c->endpoint, key, q->query ? "?" : "",
			       q->query ? q->query : "");
	s3_key_shown(&c->loc, key, obj, sizeof(obj));
	if (n < 0 || (size_t)n >= sizeof(url))
		return cdn_err_msg(err, ENAMETOOLONG, "s3: %s %s: the URL is too long", q->method,
				   obj);
	char sha[S3_HEX + 1] = EMPTY_SHA256;
	if (q->body_len)
		cdn_sha256_hex(q->body, q->body_len, sha);
	char h_sha[100], h_meta[100], h_tok[S3_CRED_MAX + 32];
	snprintf(h_sha, sizeof(h_sha), "x-amz-content-sha256: %s", sha);
	struct curl_slist *hdr = NULL;
	/* No "Expect:" to turn 100-continue off: libcurl 7.88 signs such a
	 * removed header as if it were sent empty, and S3 then refuses the
	 * signature (test_s3.py's proxy checks each one as S3 does). */
	hdr = cu.slist_append(hdr, h_sha);
	if (q->body)
		hdr = cu.slist_append(hdr, "Content-Type: application/octet-stream");
	if (q->meta_sha256) {
		snprintf(h_meta, sizeof(h_meta), "x-amz-meta-sha256: %s", q->meta_sha256);
		hdr = cu.slist_append(hdr, h_meta);
	}
	if (c->token[0]) {
		snprintf(h_tok, sizeof(h_tok), "x-amz-security-token: %s", c->token);
		hdr = cu.slist_append(hdr, h_tok);
	}
	int r = 0;
	unsigned pause_ms = 100;
	pthread_mutex_lock(&c->mu);
	for (unsigned attempt = 1;; attempt++) {
		q->status = 0;
		q->head = (struct s3_head){0};
		q->header_bytes = q->mem_len = 0;
		q->out_len = 0;
		q->too_big = q->write_failed = q->headers_too_big = false;
		q->mem[0] = '\0';
		crypto_hash_sha256_init(&q->hs);
		if (q->out_fd >= 0 &&
		    (ftruncate(q->out_fd, 0) < 0 || lseek(q->out_fd, 0, SEEK_SET) < 0)) {
			r = cdn_err_set(err, errno, "s3: GET %s: truncate the file it goes to",
					obj);
			break;
		}
		CURL *h = c->h;
		cu.reset(h);
		cu.setopt(h, CURLOPT_URL, url);
		cu.setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		cu.setopt(h, CURLOPT_NOSIGNAL, 1L);
		cu.setopt(h, CURLOPT_CONNECTTIMEOUT, (long)S3_CONNECT_TIMEOUT_S);
		cu.setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		cu.setopt(h, CURLOPT_LOW_SPEED_TIME, (long)S3_LOW_SPEED_S);
		cu.setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
		cu.setopt(h, CURLOPT_USERPWD, c->userpwd);
		cu.setopt(h, CURLOPT_HTTPHEADER, hdr);
		cu.setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		cu.setopt(h, CURLOPT_HEADERDATA, q);
		cu.setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		cu.setopt(h, CURLOPT_WRITEDATA, q);
		if (strcmp(q->method, "HEAD") == 0) {
			cu.setopt(h, CURLOPT_NOBODY, 1L);
		} else if (strcmp(q->method, "GET") != 0) {
			cu.setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
			if (q->body || strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0) {
				cu.setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
				cu.setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
			}
		}
		CURLcode rc = cu.perform(h);
		cu.getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		if (q->headers_too_big) {
			r = cdn_err_msg(err, EPROTO,
					"s3: %s %s: the answer's headers are over %u bytes",
					q->method, obj, S3_HEADERS_MAX);
			break;
		}
		if (q->too_big) {
			r = cdn_err_msg(err, EFBIG,
					"s3: GET %s: the object is over %" PRIu64 " bytes", obj,
					q->out_max);
			break;
		}
		if (q->write_failed) {
			r = cdn_err_set(err, EIO, "s3: GET %s: write the file it goes to", obj);
			break;
		}
		if (!retryable(rc, q->status) || attempt >= S3_ATTEMPTS) {
			if (rc != CURLE_OK)
				r = cdn_err_msg(err,
						rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
						"s3: %s %s at %s: %s (%u tries)", q->method, obj,
						c->endpoint, cu.strerror(rc), attempt);
			break;
		}
		struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		pause_ms *= 4;
	}
	/* The handle keeps pointers to the headers and q: dropped now. */
	cu.reset(c->h);
	pthread_mutex_unlock(&c->mu);
	cu.slist_free_all(hdr);
	sodium_memzero(h_tok, sizeof(h_tok));
	return r;
}

/* An error for an answer that is not the success expected. */
static int answer_err(struct s3 *c, struct req *q, struct cdn_err *err)
{
	char obj[S3_KEY_MAX + S3_BUCKET_MAX + 8], text[768];
	s3_key_shown(&c->loc, q->key, obj, sizeof(obj));
	answer_text(c, q, text, sizeof(text));
	int e = q->status == 404 ? ENOENT : q->status == 403 ? EACCES : EIO;
	return cdn_err_msg(err, e, "s3: %s %s: %s", q->method, obj, text);
}

/* ------------------------------------------------------------- operations */

int s3_check(struct s3 *c, struct cdn_err *err)
{
	char key[S3_KEY_MAX + 1];
	int r = s3_key(&c->loc, ".cordon-check", key, sizeof(key), err);
	if (r < 0)
		return r;
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){.method = "GET", .key = key, .out_fd = -1};
	if ((r = request(c, q, err)) < 0)
		return cdn_err_wrap(err, "%s is not reachable", c->shown);
	char code[64] = "";
	if (q->mem_len)
		(void)s3_xml_text(q->mem, q->mem_len, "Error", "Code", code, sizeof(code));
	/* No such key is the answer expected; a body is read when it exists. */
	if ((q->status == 404 && strcmp(code, "NoSuchBucket") != 0) ||
	    (q->status >= 200 && q->status < 300))
		return 0;
	r = answer_err(c, q, err);
	return cdn_err_wrap(err, "%s cannot be used", c->shown);
}

int s3_head(struct s3 *c, const char *key, struct s3_head *out, struct cdn_err *err)
{
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){.method = "HEAD", .key = key, .out_fd = -1};
	int r = request(c, q, err);
	if (r < 0)
		return r;
	if (q->status == 404) {
		char obj[S3_KEY_MAX + S3_BUCKET_MAX + 8];
		s3_key_shown(&c->loc, key, obj, sizeof(obj));
		return cdn_err_msg(err, ENOENT, "s3: %s: no such object", obj);
	}
	if (q->status < 200 || q->status >= 300)
		return answer_err(c, q, err);
	*out = q->head;
	return 0;
}

int s3_delete(struct s3 *c, const char *key, struct cdn_err *err)
{
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){.method = "DELETE", .key = key, .out_fd = -1};
	int r = request(c, q, err);
	if (r < 0)
		return r;
	if ((q->status < 200 || q->status >= 300) && q->status != 404)
		return answer_err(c, q, err);
	return 0;
}

int s3_get_fd(struct s3 *c, const char *key, int fd, uint64_t max, const char *hex,
	      char got[S3_HEX + 1], struct cdn_err *err)
{
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){.method = "GET", .key = key, .out_fd = fd, .out_max = max};
	int r = request(c, q, err);
	if (r < 0)
		return r;
	if (q->status < 200 || q->status >= 300)
		return answer_err(c, q, err);
	unsigned char d[crypto_hash_sha256_BYTES];
	char sum[S3_HEX + 1], obj[S3_KEY_MAX + S3_BUCKET_MAX + 8];
	crypto_hash_sha256_final(&q->hs, d);
	cdn_digest_hex(d, sum);
	s3_key_shown(&c->loc, key, obj, sizeof(obj));
	const char *want = hex ? hex : q->head.sha256;
	if (!want[0])
		return cdn_err_msg(err, EIO,
				   "s3: %s has no sha256 stored with it (x-amz-meta-sha256): "
				   "refusing an object cordon cannot check",
				   obj);
	/* A stored sha256 that differs from the name is a replaced object
	 * too, even when the bytes match the name. */
	if (strcmp(sum, want) != 0 || (q->head.sha256[0] && strcmp(q->head.sha256, want) != 0))
		return cdn_err_msg(err, EIO,
				   "s3: %s does not match its sha256 (damaged or replaced in the "
				   "bucket): expected %s, read %s",
				   obj, want, sum);
	if (got)
		memcpy(got, sum, S3_HEX + 1);
	return 0;
}

/* ------------------------------------------------------------------- puts */

/* len bytes of fd at off into buf. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

static int put_single(struct s3 *c, const char *key, const void *buf, size_t len, const char *sha,
		      struct cdn_err *err)
{
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){.method = "PUT",
			  .key = key,
			  .body = buf,
			  .body_len = len,
			  .meta_sha256 = sha,
			  .out_fd = -1};
	int r = request(c, q, err);
	if (r == 0 && (q->status < 200 || q->status >= 300))
		r = answer_err(c, q, err);
	return r;
}

static void put_abort(struct s3 *c, const char *key, const char *upload_enc)
{
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	char query[600];
	struct cdn_err e = {0};
	if (!q)
		return;
	snprintf(query, sizeof(query), "uploadId=%s", upload_enc);
	*q = (struct req){.method = "DELETE", .key = key, .query = query, .out_fd = -1};
	if (request(c, q, &e) < 0 || q->status < 200 || q->status >= 300)
		fprintf(stderr, "cordon: s3: abort the multipart upload of %s/%s: %s\n",
			c->loc.bucket, key, e.msg[0] ? e.msg : "refused");
}

/* CreateMultipartUpload, the parts from fd, CompleteMultipartUpload. */
static int put_multipart(struct s3 *c, const char *key, int fd, uint64_t size, const char *sha,
			 void *buf, struct cdn_err *err)
{
	char obj[S3_KEY_MAX + S3_BUCKET_MAX + 8], id[512], id_enc[600], query[700];
	s3_key_shown(&c->loc, key, obj, sizeof(obj));
	uint64_t nparts = (size + c->part_size - 1) / c->part_size;
	if (nparts > S3_PARTS_MAX)
		return cdn_err_msg(err, EFBIG, "s3: %s: %" PRIu64 " bytes need more than %d parts",
				   obj, size, S3_PARTS_MAX);
	_cleanup_free_ struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return cdn_err_set(err, ENOMEM, "s3");
	*q = (struct req){
	    .method = "POST", .key = key, .query = "uploads=", .meta_sha256 = sha, .out_fd = -1};
	int r = request(c, q, err);
	if (r < 0)
		return r;
	if (q->status < 200 || q->status >= 300)
		return answer_err(c, q, err);
	if (s3_xml_text(q->mem, q->mem_len, "InitiateMultipartUploadResult", "UploadId", id,
			sizeof(id)) < 0 ||
	    !id[0] || s3_uri_encode(id, id_enc, sizeof(id_enc)) < 0)
		return cdn_err_msg(err, EPROTO, "s3: POST %s?uploads: no UploadId in the answer",
				   obj);
	/* The completion lists each part's number and ETag. */
	size_t cap = 128 + (size_t)nparts * 200, len = 0;
	_cleanup_free_ char *done = malloc(cap);
	if (!done)
		r = cdn_err_set(err, ENOMEM, "s3: %s", obj);
	if (r == 0)
		len = (size_t)snprintf(done, cap, "<CompleteMultipartUpload>");
	/* The parts are hashed as they are sent, and the object completed only
	 * when they are the bytes whose sha256 it carries. */
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	for (uint64_t i = 0; r == 0 && i < nparts; i++) {
		uint64_t off = i * c->part_size;
		size_t n = (size_t)(size - off < c->part_size ? size - off : c->part_size);
		if ((r = read_at(fd, buf, n, off)) < 0) {
			r = cdn_err_set(err, -r, "s3: %s: read part %" PRIu64, obj, i + 1);
			break;
		}
		crypto_hash_sha256_update(&hs, buf, n);
		snprintf(query, sizeof(query), "partNumber=%" PRIu64 "&uploadId=%s", i + 1, id_enc);
		*q = (struct req){.method = "PUT",
				  .key = key,
				  .query = query,
				  .body = buf,
				  .body_len = n,
				  .out_fd = -1};
		if ((r = request(c, q, err)) < 0)
			break;
		if (q->status < 200 || q->status >= 300) {
			r = answer_err(c, q, err);
			break;
		}
		if (!q->head.etag[0]) {
			r = cdn_err_msg(err, EPROTO, "s3: %s: part %" PRIu64 " has no ETag", obj,
					i + 1);
			break;
		}
		len += (size_t)snprintf(done + len, cap - len,
					"<Part><PartNumber>%" PRIu64
					"</PartNumber><ETag>%s</ETag></Part>",
					i + 1, q->head.etag);
	}
	if (r == 0) {
		unsigned char d[crypto_hash_sha256_BYTES];
		char sent_sha[S3_HEX + 1];
		crypto_hash_sha256_final(&hs, d);
		cdn_digest_hex(d, sent_sha);
		if (strcmp(sent_sha, sha) != 0)
			r = cdn_err_msg(err, EAGAIN,
					"s3: PUT %s: the file changed while it was read", obj);
	}
	if (r == 0) {
		len += (size_t)snprintf(done + len, cap - len, "</CompleteMultipartUpload>");
		snprintf(query, sizeof(query), "uploadId=%s", id_enc);
		*q = (struct req){.method = "POST",
				  .key = key,
				  .query = query,
				  .body = done,
				  .body_len = len,
				  .out_fd = -1};
		r = request(c, q, err);
		char code[64];
		/* S3 may answer 200 and still fail: the error is in the body. */
		if (r == 0 &&
		    (q->status < 200 || q->status >= 300 ||
		     s3_xml_text(q->mem, q->mem_len, "Error", "Code", code, sizeof(code)) == 0)) {
			if (q->status < 300)
				q->status = 500;
			r = answer_err(c, q, err);
		}
	}
	if (r < 0)
		put_abort(c, key, id_enc);
	return r;
}

int s3_put_fd(struct s3 *c, const char *key, int fd, const char *hex, enum s3_put_mode mode,
	      bool *sent, struct cdn_err *err)
{
	if (sent)
		*sent = false;
	char obj[S3_KEY_MAX + S3_BUCKET_MAX + 8], sha[S3_HEX + 1];
	s3_key_shown(&c->loc, key, obj, sizeof(obj));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "s3: PUT %s: not a regular file", obj);
	if (lseek(fd, 0, SEEK_SET) < 0 || cdn_sha256_fd(fd, sha) < 0)
		return cdn_err_set(err, errno, "s3: PUT %s: read the file", obj);
	if (hex && strcmp(hex, sha) != 0)
		return cdn_err_msg(err, EIO, "s3: PUT %s: the file does not hash to %s", obj, hex);
	uint64_t size = (uint64_t)st.st_size;
	/* Immutable once written: the same bytes there already are kept, so a
	 * retry, or a second writer of the same blob, never rewrites one. */
	struct s3_head h;
	struct cdn_err e = {0};
	int r = s3_head(c, key, &h, &e);
	if (r == 0 && !strcmp(h.sha256, sha) && (!h.has_length || h.length == size))
		return 0;
	if (r == 0 && mode == S3_PUT_ONCE)
		return cdn_err_msg(err, EEXIST, "s3: %s exists with other bytes: not replaced",
				   obj);
	if (r < 0 && r != -ENOENT) {
		*err = e;
		return r;
	}
	size_t bufsz = size <= c->part_size ? (size_t)size : (size_t)c->part_size;
	_cleanup_free_ void *buf = malloc(bufsz ? bufsz : 1);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "s3: PUT %s", obj);
	if (sent)
		*sent = true;
	if (size > c->part_size)
		return put_multipart(c, key, fd, size, sha, buf, err);
	if ((r = read_at(fd, buf, (size_t)size, 0)) < 0)
		return cdn_err_set(err, -r, "s3: PUT %s: read the file", obj);
	/* Hash again what is sent: the file could have changed since. */
	char again[S3_HEX + 1];
	cdn_sha256_hex(buf, (size_t)size, again);
	if (strcmp(again, sha) != 0)
		return cdn_err_msg(err, EAGAIN, "s3: PUT %s: the file changed while it was read",
				   obj);
	return put_single(c, key, buf, (size_t)size, sha, err);
}
