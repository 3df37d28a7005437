/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CLI as a client of cordon serve. When CORDON_URL is set, the state
 * commands call the API with the key in CORDON_API_KEY (there is no flag
 * for the key: it stays out of shell history and the process list).
 */
#define _GNU_SOURCE
#ifdef CORDON_CURL
#include <curl/curl.h>
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/exe.h"
#include "cli/cli.h"

#define RESPONSE_MAX (64u << 20)

#ifdef CORDON_CURL
struct sink {
	char *buf;
	size_t len;
	bool too_big;
	void (*on_data)(void *ctx, const char *p, size_t n);
	void *ctx;
	CURL *h;
	int stream_status;
};

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	long code = 0;
	if (s->on_data && s->stream_status)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
	if (s->on_data && (!s->stream_status || code == s->stream_status)) {
		s->on_data(s->ctx, p, len);
		return len;
	}
	if (s->len + len > RESPONSE_MAX) {
		s->too_big = true;
		return 0;
	}
	char *nb = realloc(s->buf, s->len + len + 1);
	if (!nb)
		return 0;
	s->buf = nb;
	memcpy(s->buf + s->len, p, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return len;
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cli_api_call(const struct cli_api_req *rq, struct cli_api_resp *rs)
{
	memset(rs, 0, sizeof(*rs));
	const char *base = getenv("CORDON_URL");
	const char *key = getenv("CORDON_API_KEY");
	if (!base || !*base) {
		cli_error("CORDON_URL is not set");
		return -1;
	}
	if (!key || !*key) {
		cli_error("CORDON_API_KEY is not set: export the key cordon init or cordon keys "
			  "create printed (there is no flag for it, so it stays out of your shell "
			  "history)");
		return -1;
	}
	/* Once, whichever thread asks first (cordon run follows its output
	 * from threads of its own). */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, curl_init_once);
	CURL *h = curl_easy_init();
	if (!h) {
		cli_error("libcurl: cannot start");
		return -1;
	}
	char *url = NULL;
	size_t bl = strlen(base);
	if (asprintf(&url, "%.*s%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base,
		     rq->path) < 0) {
		curl_easy_cleanup(h);
		return -1;
	}
	char *auth = NULL, *ctype = NULL;
	if (asprintf(&auth, "Authorization: Bearer %s", key) < 0)
		auth = NULL;
	if (asprintf(&ctype, "Content-Type: %s", rq->content_type ? rq->content_type
								  : "application/json") < 0)
		ctype = NULL;
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, auth ? auth : "");
	if (rq->body)
		hdr = curl_slist_append(hdr, ctype ? ctype : "");
	if (rq->header)
		hdr = curl_slist_append(hdr, rq->header);
	if (rq->accept) {
		char acc[128];
		snprintf(acc, sizeof(acc), "Accept: %s", rq->accept);
		hdr = curl_slist_append(hdr, acc);
	}
	struct sink s = { .on_data = rq->on_data, .ctx = rq->ctx, .h = h,
			  .stream_status = rq->stream_status };
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	if (!rq->on_data)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	else /* a stream may last; a dead server must not hang it */
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (rq->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
	}
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(ctype);
	free(url);
	if (cc != CURLE_OK) {
		free(s.buf);
		cli_error("%s: %s", base, s.too_big ? "the response is too large"
						   : curl_easy_strerror(cc));
		return -1;
	}
	rs->status = (int)status;
	rs->raw = s.buf;
	rs->raw_len = s.len;
	if (s.buf)
		rs->json = json_loadb(s.buf, s.len, 0, NULL);
	return 0;
}

#else
int cli_api_call(const struct cli_api_req *rq, struct cli_api_resp *rs)
{
	(void)rq;
	memset(rs, 0, sizeof(*rs));
	/* Not reached: main() hands remote commands to cordon-api first. */
	cli_error("internal error: this binary has no HTTP client (cordon-api has)");
	return -1;
}
#endif

void cli_api_resp_free(struct cli_api_resp *rs)
{
	json_decref(rs->json);
	free(rs->raw);
	memset(rs, 0, sizeof(*rs));
}

int cli_api_json(const char *method, const char *path, json_t *body, int want,
		 struct cli_api_resp *rs)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct cli_api_req rq = { .method = method, .path = path, .body = text,
				  .body_len = text ? strlen(text) : 0 };
	int r = cli_api_expect(&rq, want, rs);
	if (text) {
		explicit_bzero(text, strlen(text)); /* may hold a secret's value */
		free(text);
	}
	return r;
}

int cli_api_expect(const struct cli_api_req *rq, int want, struct cli_api_resp *rs)
{
	if (cli_api_call(rq, rs) < 0)
		return -1;
	if (rs->status == want || (want == 200 && rs->status == 201))
		return 0;
	const char *msg = json_string_value(json_object_get(json_object_get(rs->json, "error"),
							   "message"));
	cli_error("%s (HTTP %d)", msg ? msg : "unexpected answer from the server", rs->status);
	cli_api_resp_free(rs);
	return -1;
}
