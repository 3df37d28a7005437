/* SPDX-License-Identifier: Apache-2.0 */
/* The S3 client's pure parts (src/store/s3_names.c): locations, keys, the
 * headers and XML of an answer. The requests themselves are tested against
 * s3rver by tests/integration/test_s3.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/s3.h"

static void test_url(void **state)
{
	(void)state;
	struct s3_loc l;
	struct cdn_err err = {0};
	assert_int_equal(s3_url_parse("s3://my-bucket.eu/a/b_c/d-1.x/", &l, &err), 0);
	assert_string_equal(l.bucket, "my-bucket.eu");
	assert_string_equal(l.prefix, "a/b_c/d-1.x");
	assert_int_equal(s3_url_parse("s3://bkt", &l, &err), 0);
	assert_string_equal(l.prefix, "");
	assert_int_equal(s3_url_parse("s3://bkt//p//", &l, &err), 0); /* slashes around: trimmed */
	assert_string_equal(l.prefix, "p");
	assert_int_equal(s3_url_parse("s3://bkt/p//q", &l, &err), -EINVAL); /* an empty name */
	assert_int_equal(s3_url_parse("s3://bkt///", &l, &err), 0);
	assert_string_equal(l.prefix, "");
	const char *bad[] = {
	    "s3:/bkt",	    "http://bkt/p",   "s3://",	       "s3://ab",	  "s3://Bucket/p",
	    "s3://-bkt/p",  "s3://bkt-/p",    "s3://bk_t/p",   "s3://bkt/a/../b", "s3://bkt/./a",
	    "s3://bkt/a b", "s3://bkt/a?x=1", "s3://bkt/a%2f", "s3://bkt/é",	  NULL};
	for (int i = 0; bad[i]; i++) {
		cdn_err_clear(&err);
		assert_int_equal(s3_url_parse(bad[i], &l, &err), -EINVAL);
		assert_true(err.msg[0]);
	}
	assert_int_equal(s3_url_parse(NULL, &l, &err), -EINVAL);
	char longp[S3_PREFIX_MAX + 16] = "s3://bkt/";
	memset(longp + 9, 'a', S3_PREFIX_MAX + 1);
	assert_int_equal(s3_url_parse(longp, &l, &err), -EINVAL);
	char longb[80] = "s3://";
	memset(longb + 5, 'b', 64);
	assert_int_equal(s3_url_parse(longb, &l, &err), -EINVAL);
}

static void test_key(void **state)
{
	(void)state;
	struct s3_loc l = {.bucket = "bkt", .prefix = "fleet/one"};
	char k[S3_KEY_MAX + 1], shown[600];
	struct cdn_err err = {0};
	assert_int_equal(s3_key(&l, "blobs/ab/cdef", k, sizeof(k), &err), 0);
	assert_string_equal(k, "fleet/one/blobs/ab/cdef");
	s3_key_shown(&l, k, shown, sizeof(shown));
	assert_string_equal(shown, "s3://bkt/fleet/one/blobs/ab/cdef");
	struct s3_loc bare = {.bucket = "bkt"};
	assert_int_equal(s3_key(&bare, "runs/r1/stdout", k, sizeof(k), &err), 0);
	assert_string_equal(k, "runs/r1/stdout");
	const char *bad[] = {"",      "/a",  "a/",  "a//b", "../a", "a/..",
			     "a/./b", "a b", "a\n", "a?b",  NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(s3_key(&l, bad[i], k, sizeof(k), &err), -EINVAL);
	assert_int_equal(s3_key(&l, NULL, k, sizeof(k), &err), -EINVAL);
	assert_int_equal(s3_key(&l, "abc", k, 8, &err), -ENAMETOOLONG);
	char longk[S3_KEY_MAX + 8];
	memset(longk, 'x', sizeof(longk) - 1);
	longk[sizeof(longk) - 1] = '\0';
	char big[2 * S3_KEY_MAX];
	assert_int_equal(s3_key(&l, longk, big, sizeof(big), &err), -ENAMETOOLONG);
}

static void test_encode(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(s3_uri_encode("aZ09-._~", out, sizeof(out)), 0);
	assert_string_equal(out, "aZ09-._~");
	assert_int_equal(s3_uri_encode("a+b/c=d e", out, sizeof(out)), 0);
	assert_string_equal(out, "a%2Bb%2Fc%3Dd%20e");
	assert_int_equal(s3_uri_encode("\xff", out, sizeof(out)), 0);
	assert_string_equal(out, "%FF");
	assert_int_equal(s3_uri_encode("abc", out, 3), -ENAMETOOLONG);
	assert_int_equal(s3_uri_encode("/", out, 3), -ENAMETOOLONG);
	assert_int_equal(s3_uri_encode("/", out, 4), 0);
}

#define LINE(h, s) s3_head_line(s, strlen(s), h)

static void test_head(void **state)
{
	(void)state;
	struct s3_head h = {0};
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	char line[128];
	LINE(&h, "Content-Length: 5000\r\n");
	snprintf(line, sizeof(line), "X-Amz-Meta-Sha256:   %s \r\n", sha);
	LINE(&h, line);
	LINE(&h, "ETag: \"fc8d796d2445cf6c\"\r\n");
	assert_true(h.has_length);
	assert_int_equal(h.length, 5000);
	assert_string_equal(h.sha256, sha);
	assert_string_equal(h.etag, "\"fc8d796d2445cf6c\"");
	/* What is not one of them, or not well formed, changes nothing. */
	struct s3_head g = {0};
	LINE(&g, "Content-Length: -1\r\n");
	LINE(&g, "Content-Length: 99999999999999999999\r\n");
	LINE(&g, "Content-Length: 12x\r\n");
	LINE(&g, "Content-Length:\r\n");
	LINE(&g, "x-amz-meta-sha256: "
		 "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\r\n");
	LINE(&g, "x-amz-meta-sha256: abc\r\n");
	LINE(&g, "ETag: \"<x>\"\r\n");
	LINE(&g, "no colon here\r\n");
	LINE(&g, "x-amz-meta-sha256x: 1\r\n");
	assert_false(g.has_length);
	assert_string_equal(g.sha256, "");
	assert_string_equal(g.etag, "");
	char longetag[300] = "ETag: ";
	memset(longetag + 6, 'a', 200);
	LINE(&g, longetag);
	assert_string_equal(g.etag, "");
}

static void test_xml(void **state)
{
	(void)state;
	const char *ok = "<?xml version=\"1.0\"?>\n<InitiateMultipartUploadResult xmlns=\"http://"
			 "s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>k</Key>"
			 "<UploadId>VXBsb2FkIElE+/=</UploadId></InitiateMultipartUploadResult>";
	char out[64];
	int r = s3_xml_text(ok, strlen(ok), "InitiateMultipartUploadResult", "UploadId", out,
			    sizeof(out));
	if (r == -ENOSYS)
		skip(); /* no libxml2 on this machine */
	assert_int_equal(r, 0);
	assert_string_equal(out, "VXBsb2FkIElE+/=");
	assert_int_equal(s3_xml_text(ok, strlen(ok), "Error", "UploadId", out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(s3_xml_text(ok, strlen(ok), NULL, "Nope", out, sizeof(out)), -ENOENT);
	assert_int_equal(s3_xml_text(ok, strlen(ok), NULL, "UploadId", out, 4), -E2BIG);
	const char *err = "<Error><Code>NoSuchBucket</Code><Message>a &amp; b</Message></Error>";
	assert_int_equal(s3_xml_text(err, strlen(err), "Error", "Code", out, sizeof(out)), 0);
	assert_string_equal(out, "NoSuchBucket");
	assert_int_equal(s3_xml_text(err, strlen(err), "Error", "Message", out, sizeof(out)), 0);
	assert_string_equal(out, "a & b");
	/* Entities are not expanded, nothing is fetched, broken XML is no XML. */
	const char *bomb = "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY a \"aaaaaaaaaa\">"
			   "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
			   "<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
			   "<Error><Code>&b;</Code><Message>&x;</Message></Error>";
	r = s3_xml_text(bomb, strlen(bomb), "Error", "Code", out, sizeof(out));
	assert_true(r == 0 || r == -ENOENT || r == -EINVAL);
	if (r == 0)
		assert_null(strstr(out, "aaaaaaaaaa"));
	r = s3_xml_text(bomb, strlen(bomb), "Error", "Message", out, sizeof(out));
	if (r == 0)
		assert_null(strstr(out, "root:"));
	assert_int_equal(s3_xml_text("<Error><Code>", 13, "Error", "Code", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(s3_xml_text("", 0, "Error", "Code", out, sizeof(out)), -EINVAL);
}

/* s3_open reads its settings from the environment, and says which is
 * wrong without showing a secret. */
static void test_open_env(void **state)
{
	(void)state;
	struct s3 *c = NULL;
	struct cdn_err err = {0};
	setenv("CORDON_S3_ENDPOINT", "http://127.0.0.1:9", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("CORDON_S3_PART_SIZE");
	int r = s3_open("s3://bkt/pre/fix", &c, &err);
	if (r == -ENOSYS)
		skip(); /* no libcurl on this machine */
	assert_int_equal(r, 0);
	assert_string_equal(s3_shown(c), "s3://bkt/pre/fix");
	assert_string_equal(s3_loc(c)->prefix, "pre/fix");
	s3_close(c);
	const char *bad_endpoints[] = {
	    "ftp://h", "http://", "http://h/path", "http://u@h", "http://h?x", "h:9000", NULL};
	for (int i = 0; bad_endpoints[i]; i++) {
		setenv("CORDON_S3_ENDPOINT", bad_endpoints[i], 1);
		assert_int_equal(s3_open("s3://bkt", &c, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "CORDON_S3_ENDPOINT"));
		assert_null(c);
	}
	setenv("CORDON_S3_ENDPOINT", "https://minio.internal:9000/", 1);
	setenv("AWS_REGION", "EU_WEST", 1);
	assert_int_equal(s3_open("s3://bkt", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "region"));
	unsetenv("AWS_REGION");
	setenv("CORDON_S3_PART_SIZE", "100", 1);
	assert_int_equal(s3_open("s3://bkt", &c, &err), -EINVAL);
	unsetenv("CORDON_S3_PART_SIZE");
	setenv("AWS_SECRET_ACCESS_KEY", "secret with\nnewline", 1);
	assert_int_equal(s3_open("s3://bkt", &c, &err), -EINVAL);
	assert_null(strstr(err.msg, "secret with"));
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(s3_open("s3://bkt", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "AWS_SECRET_ACCESS_KEY is not set"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),	   cmocka_unit_test(test_key),
	    cmocka_unit_test(test_encode), cmocka_unit_test(test_head),
	    cmocka_unit_test(test_xml),	   cmocka_unit_test(test_open_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
