/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "registry/manifest.h"

/* ------------------------------------------------------------- helpers */

/* The three required keys, for documents that test something else. */
#define REQ	   "\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"x\"]"
#define DOC(extra) "{" REQ ", " extra "}"
#define NET(extra) DOC("\"profile\": \"deployment\", " extra)

static struct agent_manifest *parse_ok(const char *json)
{
	struct agent_manifest *m = NULL;
	struct cdn_err err = { 0 };
	if (manifest_parse(json, strlen(json), "agent.json", &m, &err) < 0)
		fail_msg("expected to parse, got: %s\n---\n%s", err.msg, json);
	assert_non_null(m);
	return m;
}

static void check_printable(const char *msg)
{
	for (const char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			fail_msg("error message has byte 0x%02x: %s", (unsigned char)*c, msg);
}

/* Fails unless json is refused with a message holding both substrings. */
static void parse_fails_len(const char *json, size_t len, const char *want1, const char *want2)
{
	struct agent_manifest *sentinel = (struct agent_manifest *)(uintptr_t)0x1;
	struct agent_manifest *m = sentinel;
	struct cdn_err err = { 0 };
	int r = manifest_parse(json, len, "agent.json", &m, &err);
	if (r >= 0) {
		manifest_free(m);
		fail_msg("expected an error for:\n%s", json);
	}
	/* on error, *out is untouched */
	assert_ptr_equal(m, sentinel);
	assert_true(err.code != 0);
	if (strncmp(err.msg, "agent.json", 10) != 0)
		fail_msg("error '%s' does not name the document", err.msg);
	check_printable(err.msg);
	if (want1 && !strstr(err.msg, want1))
		fail_msg("error '%s' lacks '%s'", err.msg, want1);
	if (want2 && !strstr(err.msg, want2))
		fail_msg("error '%s' lacks '%s'", err.msg, want2);
}

static void parse_fails(const char *json, const char *want1, const char *want2)
{
	parse_fails_len(json, strlen(json), want1, want2);
}

/* A document with `extra` spliced in, from a printf format. */
static char *docf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *docf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	assert_non_null(s);
	return s;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		abort();
	return p;
}

static char *repeat(char ch, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* --------------------------------------------------------- the example */

static const char example[] =
	"{\n"
	"  \"name\": \"summarizer\",\n"
	"  \"version\": \"1.2.0\",\n"
	"  \"description\": \"Summarises a document with an LLM\",\n"
	"  \"entrypoint\": [\"python3\", \"/agent/main.py\"],\n"
	"  \"setup\": [\"sh\", \"/agent/setup.sh\"],\n"
	"  \"limits\": { \"mem\": \"512m\", \"pids\": 128, \"cpu\": 1.5, \"timeout_seconds\": 60 "
	"},\n"
	"  \"profile\": \"deployment\",\n"
	"  \"egress\": {\n"
	"    \"domains\": [\"api.openai.com\", \"*.wikipedia.org\", \"api.github.com\"],\n"
	"    \"rules\": [\n"
	"      { \"domain\": \"api.github.com\", \"methods\": [\"GET\"], \"ports\": [443],\n"
	"        \"requests_per_minute\": 10, \"approval\": \"required\" }\n"
	"    ]\n"
	"  },\n"
	"  \"required_secrets\": [\"OPENAI_API_KEY\", \"GITHUB_TOKEN\"],\n"
	"  \"capabilities\": [\"datasets\"],\n"
	"  \"env\": \"prod-config\",\n"
	"  \"outputs\": { \"max_files\": 5, \"max_file_bytes\": \"5m\", \"max_total_bytes\": "
	"\"10m\",\n"
	"               \"extensions\": [\"json\", \"md\"] }\n"
	"}\n";

static void test_example(void **state)
{
	(void)state;
	struct agent_manifest *m = parse_ok(example);
	assert_string_equal(m->name, "summarizer");
	assert_string_equal(m->version, "1.2.0");
	assert_string_equal(m->description, "Summarises a document with an LLM");
	assert_int_equal(m->n_entrypoint, 2);
	assert_string_equal(m->entrypoint[0], "python3");
	assert_string_equal(m->entrypoint[1], "/agent/main.py");
	assert_null(m->entrypoint[2]);
	assert_int_equal(m->n_setup, 2);
	assert_string_equal(m->setup[0], "sh");
	assert_string_equal(m->setup[1], "/agent/setup.sh");
	assert_null(m->setup[2]);
	assert_int_equal(m->mem_bytes, 512ULL << 20);
	assert_int_equal(m->pids, 128);
	assert_int_equal(m->cpu_millicores, 1500);
	assert_int_equal(m->timeout_s, 60);
	assert_string_equal(m->profile, "deployment");
	assert_true(m->has_egress);
	assert_int_equal(m->n_egress_domains, 3);
	assert_string_equal(m->egress_domains[0], "api.openai.com");
	assert_string_equal(m->egress_domains[1], "*.wikipedia.org");
	assert_string_equal(m->egress_domains[2], "api.github.com");
	assert_null(m->egress_domains[3]);
	assert_int_equal(m->n_egress_rules, 1);
	const struct egress_rule *r = &m->egress_rules[0];
	assert_string_equal(r->name, "api.github.com");
	assert_false(r->wildcard);
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 443);
	assert_int_equal(r->methods, EGRESS_M_GET);
	assert_int_equal(r->rpm, 10);
	assert_true(r->approval);
	assert_false(r->inspect);
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(m->n_required_secrets, 2);
	assert_string_equal(m->required_secrets[0], "OPENAI_API_KEY");
	assert_string_equal(m->required_secrets[1], "GITHUB_TOKEN");
	assert_null(m->required_secrets[2]);
	assert_int_equal(m->n_capabilities, 1);
	assert_string_equal(m->capabilities[0], "datasets");
	assert_string_equal(m->env, "prod-config");
	assert_true(m->outputs.set);
	assert_int_equal(m->outputs.max_files, 5);
	assert_int_equal(m->outputs.max_file_bytes, 5ULL << 20);
	assert_int_equal(m->outputs.max_total_bytes, 10ULL << 20);
	assert_int_equal(m->outputs.n_extensions, 2);
	assert_string_equal(m->outputs.extensions[0], "json");
	assert_string_equal(m->outputs.extensions[1], "md");
	assert_null(m->outputs.extensions[2]);
	assert_true(manifest_wants_network(m));
	manifest_free(m);
}

static void test_defaults(void **state)
{
	(void)state;
	struct agent_manifest *m = parse_ok("{" REQ "}");
	assert_string_equal(m->name, "a");
	assert_string_equal(m->version, "1");
	assert_null(m->description);
	assert_int_equal(m->n_entrypoint, 1);
	assert_null(m->setup);
	assert_int_equal(m->n_setup, 0);
	assert_int_equal(m->mem_bytes, 0);
	assert_int_equal(m->pids, 0);
	assert_int_equal(m->cpu_millicores, 0);
	assert_int_equal(m->timeout_s, MANIFEST_DEFAULT_TIMEOUT_S);
	assert_string_equal(m->profile, "offline");
	assert_false(m->has_egress);
	assert_null(m->egress_domains);
	assert_null(m->egress_rules);
	assert_null(m->required_secrets);
	assert_null(m->capabilities);
	assert_string_equal(m->env, "");
	assert_false(m->outputs.set);
	assert_null(m->outputs.extensions);
	assert_false(manifest_wants_network(m));
	manifest_free(m);

	/* deployment without egress: the operator's whole policy */
	m = parse_ok(DOC("\"profile\": \"deployment\""));
	assert_true(manifest_wants_network(m));
	assert_false(m->has_egress);
	manifest_free(m);

	/* an empty outputs object is "set" with every field the operator's */
	m = parse_ok(DOC("\"outputs\": {}, \"limits\": {}"));
	assert_true(m->outputs.set);
	assert_int_equal(m->outputs.max_files, 0);
	assert_int_equal(m->timeout_s, MANIFEST_DEFAULT_TIMEOUT_S);
	manifest_free(m);

	manifest_free(NULL);
	assert_false(manifest_wants_network(NULL));
}

/* ------------------------------------------------------ document level */

static void test_document(void **state)
{
	(void)state;
	parse_fails("", "not valid JSON", NULL);
	parse_fails("{", "agent.json:1:", "not valid JSON");
	parse_fails("{\n  \"name\": \"a\",\n}", "agent.json:3:", NULL);
	parse_fails("[]", "expected an object at the top level", "got a list");
	parse_fails("42", "expected an object at the top level", "got the number 42");
	parse_fails("\"x\"", "expected an object at the top level", NULL);
	parse_fails("null", "null is not accepted", NULL);
	parse_fails("{" REQ "} {}", "not valid JSON", NULL);
	/* a NUL escape, a raw NUL, bad UTF-8 */
	parse_fails(DOC("\"description\": \"a\\u0000b\""), "not valid JSON", NULL);
	parse_fails_len("{" REQ ", \"description\": \"a\0b\"}",
			sizeof("{" REQ ", \"description\": \"a") + 2, "not valid JSON", NULL);
	parse_fails(DOC("\"description\": \"\xff\xfe\""), "not valid JSON", NULL);
	/* jansson's message quotes input; it stays printable */
	parse_fails("{\"\x01\": 1}", NULL, NULL);

	/* size: exactly the bound loads, one byte more does not */
	char *doc = xmalloc(MANIFEST_MAX_BYTES + 2);
	const char *min = "{" REQ "}";
	size_t ml = strlen(min);
	memset(doc, ' ', MANIFEST_MAX_BYTES + 1);
	memcpy(doc, min, ml);
	doc[MANIFEST_MAX_BYTES + 1] = '\0';
	struct agent_manifest *m = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(manifest_parse(doc, MANIFEST_MAX_BYTES, "agent.json", &m, &err), 0);
	manifest_free(m);
	m = NULL;
	assert_int_equal(manifest_parse(doc, MANIFEST_MAX_BYTES + 1, "agent.json", &m, &err),
			 -EFBIG);
	assert_null(m);
	assert_non_null(strstr(err.msg, "more than the limit of 65536"));
	free(doc);

	/* source names the document; NULL source and NULL err are tolerated */
	assert_true(manifest_parse("{}", 2, "x/agent.json", &m, &err) < 0);
	assert_non_null(strstr(err.msg, "x/agent.json: missing key \"name\""));
	assert_true(manifest_parse("{}", 2, NULL, &m, NULL) < 0);
	assert_true(manifest_parse(NULL, 0, NULL, &m, &err) < 0);
}

static void test_required(void **state)
{
	(void)state;
	parse_fails("{}", "missing key \"name\"", NULL);
	parse_fails("{\"name\": \"a\", \"entrypoint\": [\"x\"]}", "missing key \"version\"", NULL);
	parse_fails("{\"name\": \"a\", \"version\": \"1\"}", "missing key \"entrypoint\"", NULL);
	/* unknown keys are reported before missing ones: a typo is a typo */
	parse_fails("{\"nmae\": \"a\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "unknown key \"nmae\"", "expected name, version, description, entrypoint");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	parse_fails(DOC("\"egres\": {}"), "agent.json: unknown key \"egres\"",
		    "(expected name, version, description, entrypoint, setup, limits, profile, "
		    "egress, required_secrets, capabilities, env, outputs, retry, labels, health, "
		    "calls, dependencies)");
	parse_fails(DOC("\"limits\": {\"memory\": \"1g\"}"),
		    "agent.json: limits: unknown key \"memory\"",
		    "(expected mem, pids, cpu, timeout_seconds)");
	parse_fails(NET("\"egress\": {\"domains\": [], \"allow\": []}"),
		    "agent.json: egress: unknown key \"allow\"", "(expected domains, rules, secrets)");
	parse_fails(NET("\"egress\": {\"domains\": [\"a.example\"], \"rules\": [{\"domain\": "
			"\"a.example\", \"metods\": [\"GET\"]}]}"),
		    "agent.json: egress.rules[0]: unknown key \"metods\"",
		    "(expected domain, ports, methods, requests_per_minute, approval, inspect)");
	parse_fails(DOC("\"outputs\": {\"max_size\": 1}"),
		    "agent.json: outputs: unknown key \"max_size\"",
		    "(expected max_files, max_file_bytes, max_total_bytes, extensions)");
	/* key text is quoted printable */
	parse_fails(DOC("\"a\\nb\": 1"), "unknown key \"a?b\"", NULL);
}

static void test_duplicates(void **state)
{
	(void)state;
	parse_fails(
		"{\"name\": \"a\", \"name\": \"b\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		"agent.json:1:", "a key appears twice");
	parse_fails(DOC("\"limits\": {\"mem\": \"1g\",\n \"mem\": \"2g\"}"),
		    "agent.json:2:", "appears twice");
	parse_fails(NET("\"egress\": {\"domains\": [\"a.example\"], \"rules\": [{\"domain\": "
			"\"a.example\", \"domain\": \"a.example\"}]}"),
		    "appears twice", NULL);
}

static void test_null(void **state)
{
	(void)state;
	parse_fails("{\"name\": null, \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "agent.json: name: null is not accepted; leave the key out instead", NULL);
	parse_fails(DOC("\"description\": null"), "description: null is not accepted", NULL);
	parse_fails(DOC("\"setup\": null"), "setup: null", NULL);
	parse_fails(DOC("\"limits\": null"), "limits: null", NULL);
	parse_fails(DOC("\"limits\": {\"mem\": null}"), "limits.mem: null", NULL);
	parse_fails(DOC("\"limits\": {\"cpu\": null}"), "limits.cpu: null", NULL);
	parse_fails(DOC("\"profile\": null"), "profile: null", NULL);
	parse_fails(DOC("\"egress\": null"), "egress", NULL);
	parse_fails(NET("\"egress\": {\"domains\": null}"), "egress.domains: null", NULL);
	parse_fails(NET("\"egress\": {\"domains\": [null]}"), "egress.domains[0]: null", NULL);
	parse_fails(NET("\"egress\": {\"domains\": [\"a.example\"], \"rules\": [{\"domain\": "
			"\"a.example\", \"ports\": null}]}"),
		    "egress.rules[0].ports: null", NULL);
	parse_fails(NET("\"egress\": {\"domains\": [\"a.example\"], \"rules\": [{\"domain\": "
			"\"a.example\", \"approval\": null}]}"),
		    "egress.rules[0].approval: null", NULL);
	parse_fails(DOC("\"required_secrets\": null"), "required_secrets: null", NULL);
	parse_fails(DOC("\"capabilities\": [null]"), "capabilities[0]: null", NULL);
	parse_fails(DOC("\"env\": null"), "env: null", NULL);
	parse_fails(DOC("\"outputs\": {\"extensions\": null}"), "outputs.extensions: null", NULL);
	parse_fails(DOC("\"outputs\": {\"max_files\": null}"), "outputs.max_files: null", NULL);
}

/* ----------------------------------------------------- identity fields */

static void test_name_version(void **state)
{
	(void)state;
	struct agent_manifest *m;
	parse_fails("{\"name\": \"Summarizer\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "agent.json: name: \"Summarizer\": expected a name of lowercase letters", NULL);
	parse_fails("{\"name\": \"-x\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "name:", NULL);
	parse_fails("{\"name\": \".x\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "name:", NULL);
	parse_fails("{\"name\": \"a/b\", \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "name:", NULL);
	parse_fails("{\"name\": \"\", \"version\": \"1\", \"entrypoint\": [\"x\"]}", "name:", NULL);
	parse_fails("{\"name\": 7, \"version\": \"1\", \"entrypoint\": [\"x\"]}",
		    "name: expected a name such as \"summarizer\", got the number 7", NULL);

	char *n64 = repeat('a', 64), *n65 = repeat('a', 65);
	char *d = docf("{\"name\": \"%s\", \"version\": \"1\", \"entrypoint\": [\"x\"]}", n64);
	m = parse_ok(d);
	assert_string_equal(m->name, n64);
	manifest_free(m);
	free(d);
	d = docf("{\"name\": \"%s\", \"version\": \"1\", \"entrypoint\": [\"x\"]}", n65);
	parse_fails(d, "name:", "at most 64 bytes");
	free(d);
	free(n64);
	free(n65);

	m = parse_ok("{\"name\": \"0a.b_c-d\", \"version\": \"1.2.0+build.5-rc_1\", "
		     "\"entrypoint\": [\"x\"]}");
	assert_string_equal(m->name, "0a.b_c-d");
	assert_string_equal(m->version, "1.2.0+build.5-rc_1");
	manifest_free(m);

	parse_fails("{\"name\": \"a\", \"version\": 1, \"entrypoint\": [\"x\"]}",
		    "version: expected a version label", "got the number 1");
	parse_fails("{\"name\": \"a\", \"version\": \"\", \"entrypoint\": [\"x\"]}",
		    "version:", NULL);
	parse_fails("{\"name\": \"a\", \"version\": \"1.0 beta\", \"entrypoint\": [\"x\"]}",
		    "version: \"1.0 beta\"", NULL);
	char *v32 = repeat('9', 32), *v33 = repeat('9', 33);
	d = docf("{\"name\": \"a\", \"version\": \"%s\", \"entrypoint\": [\"x\"]}", v32);
	m = parse_ok(d);
	assert_string_equal(m->version, v32);
	manifest_free(m);
	free(d);
	d = docf("{\"name\": \"a\", \"version\": \"%s\", \"entrypoint\": [\"x\"]}", v33);
	parse_fails(d, "version:", NULL);
	free(d);
	free(v32);
	free(v33);

	char *d1024 = repeat('x', MANIFEST_MAX_DESCRIPTION);
	d = docf(DOC("\"description\": \"%s\""), d1024);
	m = parse_ok(d);
	assert_int_equal(strlen(m->description), MANIFEST_MAX_DESCRIPTION);
	manifest_free(m);
	free(d);
	d = docf(DOC("\"description\": \"%sx\""), d1024);
	parse_fails(d, "description: 1025 bytes, more than 1024", NULL);
	free(d);
	free(d1024);
	parse_fails(DOC("\"description\": [\"x\"]"), "description: expected a string", NULL);
}

static void test_commands(void **state)
{
	(void)state;
	parse_fails("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": \"python3 main.py\"}",
		    "entrypoint: expected a command as a list of strings", NULL);
	parse_fails("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": []}",
		    "entrypoint: the list is empty", NULL);
	parse_fails("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"\"]}",
		    "entrypoint[0]: empty string", NULL);
	parse_fails("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"x\", 1]}",
		    "entrypoint[1]: expected a string, got the number 1", NULL);
	parse_fails(DOC("\"setup\": []"), "setup: the list is empty", NULL);
	parse_fails(DOC("\"setup\": [\"sh\", {}]"), "setup[1]: expected a string, got an object",
		    NULL);

	/* MANIFEST_MAX_ARGS arguments, each up to MANIFEST_MAX_ARG bytes */
	size_t cap = (MANIFEST_MAX_ARGS + 1) * 8 + 256;
	char *d = xmalloc(cap);
	for (int extra = 0; extra <= 1; extra++) {
		size_t off = (size_t)snprintf(d, cap,
					      "{\"name\": \"a\", \"version\": \"1\", "
					      "\"entrypoint\": [");
		for (int i = 0; i < MANIFEST_MAX_ARGS + extra; i++)
			off += (size_t)snprintf(d + off, cap - off, "%s\"a%d\"", i ? "," : "", i);
		snprintf(d + off, cap - off, "]}");
		if (!extra) {
			struct agent_manifest *m = parse_ok(d);
			assert_int_equal(m->n_entrypoint, MANIFEST_MAX_ARGS);
			assert_string_equal(m->entrypoint[MANIFEST_MAX_ARGS - 1], "a63");
			assert_null(m->entrypoint[MANIFEST_MAX_ARGS]);
			manifest_free(m);
		} else {
			parse_fails(d, "entrypoint: 65 elements, more than 64", NULL);
		}
	}
	free(d);

	char *arg = repeat('z', MANIFEST_MAX_ARG);
	d = docf("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"x\", \"%s\"]}", arg);
	struct agent_manifest *m = parse_ok(d);
	assert_int_equal(strlen(m->entrypoint[1]), MANIFEST_MAX_ARG);
	manifest_free(m);
	free(d);
	d = docf(DOC("\"setup\": [\"x\", \"%sz\"]"), arg);
	parse_fails(d, "setup[1]: 4097 bytes, more than 4096", NULL);
	free(d);
	free(arg);

	/* UTF-8 and escapes survive */
	m = parse_ok("{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"echo\", "
		     "\"gr\\u00fc\\u00dfe \\\"x\\\"\"]}");
	assert_string_equal(m->entrypoint[1], "gr\xc3\xbc\xc3\x9f"
					      "e \"x\"");
	manifest_free(m);
}

/* --------------------------------------------------------------- limits */

static void limit_ok(const char *limits, uint64_t mem, uint64_t pids, uint64_t cpu,
		     uint64_t timeout)
{
	char *d = docf(DOC("\"limits\": {%s}"), limits);
	struct agent_manifest *m = parse_ok(d);
	assert_int_equal(m->mem_bytes, mem);
	assert_int_equal(m->pids, pids);
	assert_int_equal(m->cpu_millicores, cpu);
	assert_int_equal(m->timeout_s, timeout);
	manifest_free(m);
	free(d);
}

static void limit_fails(const char *limits, const char *want1, const char *want2)
{
	char *d = docf(DOC("\"limits\": {%s}"), limits);
	parse_fails(d, want1, want2);
	free(d);
}

#define T30 MANIFEST_DEFAULT_TIMEOUT_S

static void test_mem(void **state)
{
	(void)state;
	limit_ok("\"mem\": \"512m\"", 512ULL << 20, 0, 0, T30);
	limit_ok("\"mem\": \"512M\"", 512ULL << 20, 0, 0, T30);
	limit_ok("\"mem\": \"2GiB\"", 2ULL << 30, 0, 0, T30);
	limit_ok("\"mem\": \"1m\"", 1ULL << 20, 0, 0, T30);
	limit_ok("\"mem\": \"1t\"", 1ULL << 40, 0, 0, T30);
	limit_ok("\"mem\": 1048576", 1ULL << 20, 0, 0, T30);
	limit_ok("\"mem\": \"1048576\"", 1ULL << 20, 0, 0, T30);
	limit_ok("\"mem\": 1099511627776", 1ULL << 40, 0, 0, T30);
	limit_fails("\"mem\": 512", "limits.mem: 512 bytes is less than 1m",
		    "a bare number is bytes");
	limit_fails("\"mem\": 1048575", "limits.mem: 1048575 bytes is less than 1m", NULL);
	limit_fails("\"mem\": \"1023k\"", "limits.mem: 1023k is less than 1m", NULL);
	limit_fails("\"mem\": 0", "limits.mem: 0 bytes is less than 1m", NULL);
	limit_fails("\"mem\": \"1025g\"", "limits.mem: 1025g is more than 1t", NULL);
	limit_fails("\"mem\": 1099511627777", "limits.mem:", "is more than 1t");
	limit_fails("\"mem\": \"512x\"",
		    "limits.mem: expected a size such as \"512m\" or a number of bytes",
		    "got the string \"512x\"");
	limit_fails("\"mem\": \"\"", "limits.mem: expected a size", NULL);
	limit_fails("\"mem\": \"-1m\"", "limits.mem: expected a size", NULL);
	limit_fails("\"mem\": \" 1m\"", "limits.mem: expected a size", NULL);
	limit_fails("\"mem\": -1", "limits.mem: expected a size", "-1");
	limit_fails("\"mem\": 1.5", "limits.mem: expected a size", NULL);
	limit_fails("\"mem\": 1e9", "limits.mem: expected a size", NULL);
	limit_fails("\"mem\": true", "limits.mem: expected a size", "got true");
	limit_fails("\"mem\": \"99999999999999999999t\"", "limits.mem: expected a size", NULL);
}

static void test_pids_timeout(void **state)
{
	(void)state;
	limit_ok("\"pids\": 1", 0, 1, 0, T30);
	limit_ok("\"pids\": 65536", 0, 65536, 0, T30);
	limit_fails("\"pids\": 0", "limits.pids: expected a whole number from 1 to 65536",
		    "got the number 0");
	limit_fails("\"pids\": 65537", "limits.pids: expected a whole number from 1 to 65536",
		    NULL);
	limit_fails("\"pids\": \"128\"", "limits.pids: expected a whole number",
		    "got the string \"128\"");
	limit_fails("\"pids\": 128.0", "limits.pids: expected a whole number", NULL);
	limit_fails("\"pids\": -5", "limits.pids", NULL);

	limit_ok("\"timeout_seconds\": 1", 0, 0, 0, 1);
	limit_ok("\"timeout_seconds\": 86400", 0, 0, 0, MANIFEST_MAX_TIMEOUT_S);
	limit_fails("\"timeout_seconds\": 0",
		    "limits.timeout_seconds: expected a whole number "
		    "from 1 to 86400",
		    NULL);
	limit_fails("\"timeout_seconds\": 86401", "limits.timeout_seconds", NULL);
	limit_fails("\"timeout_seconds\": \"60s\"", "limits.timeout_seconds", NULL);
	limit_fails("\"timeout_seconds\": 9223372036854775807", "limits.timeout_seconds", NULL);
	limit_ok("\"mem\": \"1g\", \"pids\": 10, \"cpu\": 2, \"timeout_seconds\": 5", 1ULL << 30,
		 10, 2000, 5);
}

static void test_cpu(void **state)
{
	(void)state;
	limit_ok("\"cpu\": 1.5", 0, 0, 1500, T30);
	limit_ok("\"cpu\": \"0.5\"", 0, 0, 500, T30);
	limit_ok("\"cpu\": 2", 0, 0, 2000, T30);
	limit_ok("\"cpu\": \"2\"", 0, 0, 2000, T30);
	limit_ok("\"cpu\": 0.01", 0, 0, 10, T30);
	limit_ok("\"cpu\": \"0.01\"", 0, 0, 10, T30);
	limit_ok("\"cpu\": 4096", 0, 0, 4096000, T30);
	limit_ok("\"cpu\": \"4096.0000\"", 0, 0, 4096000, T30);
	/* a fourth decimal rounds to the nearest millicore */
	limit_ok("\"cpu\": 1.2345", 0, 0, 1235, T30);
	limit_ok("\"cpu\": \"1.2344\"", 0, 0, 1234, T30);
	limit_ok("\"cpu\": 0.1", 0, 0, 100, T30);
	limit_ok("\"cpu\": 1.0", 0, 0, 1000, T30);
	limit_fails("\"cpu\": 0", "limits.cpu: 0 cores: leave cpu out for no quota", NULL);
	limit_fails("\"cpu\": \"0\"", "limits.cpu: 0 cores", NULL);
	limit_fails("\"cpu\": 0.0", "limits.cpu: 0 cores", NULL);
	limit_fails("\"cpu\": 0.0099", "limits.cpu: at least 0.01 cores", NULL);
	limit_fails("\"cpu\": \"0.0001\"", "limits.cpu: at least 0.01 cores", NULL);
	limit_fails("\"cpu\": 1.23456", "limits.cpu:", "at most 4 decimals");
	limit_fails("\"cpu\": \"1.23456\"", "limits.cpu: expected a number of cores", NULL);
	limit_fails("\"cpu\": 4096.0001", "limits.cpu: expected from 0.01 to 4096 cores",
		    "got 4096.0001");
	limit_fails("\"cpu\": \"4096.0001\"", "limits.cpu: expected a number of cores", NULL);
	limit_fails("\"cpu\": 4097", "limits.cpu: expected from 0.01 to 4096 cores", NULL);
	limit_fails("\"cpu\": \"10000\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": -1", "limits.cpu: expected from 0.01 to 4096 cores", NULL);
	limit_fails("\"cpu\": -0.5", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"-1\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"1.\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \".5\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"01.5\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"1e2\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"1.5 \"", "limits.cpu", NULL);
	limit_fails("\"cpu\": \"\"", "limits.cpu", NULL);
	limit_fails("\"cpu\": true", "limits.cpu: expected a number of cores", "got true");
	limit_fails("\"cpu\": [1]", "limits.cpu", "got a list");
}

/* ------------------------------------------------------------ profile */

static void test_profile(void **state)
{
	(void)state;
	struct agent_manifest *m = parse_ok(DOC("\"profile\": \"offline\""));
	assert_string_equal(m->profile, "offline");
	assert_false(manifest_wants_network(m));
	manifest_free(m);
	parse_fails(DOC("\"profile\": \"Deployment\""),
		    "profile: expected \"offline\" or \"deployment\", got \"Deployment\"", NULL);
	parse_fails(DOC("\"profile\": \"repo-read\""), "profile:", NULL);
	parse_fails(DOC("\"profile\": 1"), "profile: expected", NULL);

	/* egress without network: refused, and the message says why */
	parse_fails(DOC("\"egress\": {\"domains\": [\"a.example\"]}"),
		    "agent.json: egress: the profile is \"offline\" (the default), which has no "
		    "network",
		    "set \"profile\": \"deployment\" or remove egress");
	parse_fails(DOC("\"profile\": \"offline\", \"egress\": {\"domains\": []}"),
		    "egress: the profile is \"offline\", which has no network", NULL);
	/* key order does not matter */
	m = parse_ok("{\"egress\": {\"domains\": [\"a.example\"]}, " REQ
		     ", \"profile\": \"deployment\"}");
	assert_true(m->has_egress);
	manifest_free(m);
}

/* ------------------------------------------------------------- egress */

static void test_egress_domains(void **state)
{
	(void)state;
	struct agent_manifest *m =
		parse_ok(NET("\"egress\": {\"domains\": [\"API.GitHub.com.\", \"*.Example.COM\", "
			     "\"b\\u00fccher.example\", \"10.0.0.5\"]}"));
	assert_int_equal(m->n_egress_domains, 4);
	assert_string_equal(m->egress_domains[0], "api.github.com");
	assert_string_equal(m->egress_domains[1], "*.example.com");
	assert_string_equal(m->egress_domains[2], "xn--bcher-kva.example");
	assert_string_equal(m->egress_domains[3], "10.0.0.5");
	assert_null(m->egress_domains[4]);
	assert_int_equal(m->n_egress_rules, 0);
	assert_true(manifest_wants_network(m));
	manifest_free(m);

	m = parse_ok(NET("\"egress\": {\"domains\": []}"));
	assert_true(m->has_egress);
	assert_int_equal(m->n_egress_domains, 0);
	assert_non_null(m->egress_domains);
	assert_null(m->egress_domains[0]);
	manifest_free(m);

	parse_fails(NET("\"egress\": {\"domains\": [\"api.github.com\", \"API.GITHUB.COM.\"]}"),
		    "egress.domains[1]: \"API.GITHUB.COM.\" is \"api.github.com\", listed already "
		    "at [0]",
		    NULL);
	parse_fails(NET("\"egress\": {\"domains\": [\"a.example\", \"a.example\"]}"),
		    "egress.domains[1]: \"a.example\" is listed twice (also at [0])", NULL);
	parse_fails(NET("\"egress\": {\"domains\": [\"*.com\"]}"),
		    "egress.domains[0]:", "at least two labels");
	parse_fails(NET("\"egress\": {\"domains\": [\"a..b\"]}"),
		    "egress.domains[0]:", "empty label");
	parse_fails(NET("\"egress\": {\"domains\": [\"a.*.b\"]}"), "egress.domains[0]:", "'*'");
	parse_fails(NET("\"egress\": {\"domains\": [\"127.1\"]}"),
		    "egress.domains[0]:", "canonical IPv4");
	parse_fails(NET("\"egress\": {\"domains\": [\"a b.example\"]}"),
		    "egress.domains[0]:", "not allowed");
	parse_fails(NET("\"egress\": {\"domains\": [\"\"]}"), "egress.domains[0]: empty string",
		    NULL);
	parse_fails(NET("\"egress\": {\"domains\": [7]}"), "egress.domains[0]: expected a string",
		    NULL);
	parse_fails(NET("\"egress\": {\"domains\": \"a.example\"}"),
		    "egress.domains: expected a list of domain names", NULL);
	parse_fails(NET("\"egress\": {}"), "egress: missing key \"domains\"", NULL);
	parse_fails(NET("\"egress\": {\"rules\": []}"), "egress: missing key \"domains\"", NULL);
	parse_fails(NET("\"egress\": [\"a.example\"]"), "egress: expected an object", NULL);

	/* MANIFEST_MAX_LIST domains */
	size_t cap = MANIFEST_MAX_LIST * 16 + 256;
	char *d = xmalloc(cap);
	for (int extra = 0; extra <= 1; extra++) {
		size_t off = (size_t)snprintf(d, cap,
					      "{" REQ ", \"profile\": \"deployment\", "
					      "\"egress\": {\"domains\": [");
		for (int i = 0; i < MANIFEST_MAX_LIST + extra; i++)
			off += (size_t)snprintf(d + off, cap - off, "%s\"h%d.example\"",
						i ? "," : "", i);
		snprintf(d + off, cap - off, "]}}");
		if (!extra) {
			m = parse_ok(d);
			assert_int_equal(m->n_egress_domains, MANIFEST_MAX_LIST);
			manifest_free(m);
		} else {
			parse_fails(d, "egress.domains: 65 elements, more than 64", NULL);
		}
	}
	free(d);
}

#define RULE(body)                                                                                 \
	NET("\"egress\": {\"domains\": [\"api.github.com\", \"*.example.com\"], \"rules\": [" body \
	    "]}")

static void test_egress_rules(void **state)
{
	(void)state;
	struct agent_manifest *m =
		parse_ok(RULE("{\"domain\": \"*.example.com\"}, {\"domain\": \"API.GitHub.com\", "
			      "\"ports\": [443, 8443], \"methods\": [\"get\", \"Head\", "
			      "\"OPTIONS\"], \"requests_per_minute\": 0, \"approval\": \"none\", "
			      "\"inspect\": true}"));
	assert_int_equal(m->n_egress_rules, 2);
	/* nothing said: nothing narrowed */
	const struct egress_rule *r = &m->egress_rules[0];
	assert_string_equal(r->name, "*.example.com");
	assert_true(r->wildcard);
	assert_int_equal(r->n_ports, 0);
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_int_equal(r->rpm, 0);
	assert_false(r->approval);
	assert_false(r->inspect);
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(r->line, 0);
	r = &m->egress_rules[1];
	assert_string_equal(r->name, "api.github.com");
	assert_false(r->wildcard);
	assert_int_equal(r->n_ports, 2);
	assert_int_equal(r->ports[0], 443);
	assert_int_equal(r->ports[1], 8443);
	assert_int_equal(r->methods, EGRESS_M_GET | EGRESS_M_HEAD | EGRESS_M_OPTIONS);
	assert_int_equal(r->rpm, 0);
	assert_false(r->approval);
	assert_true(r->inspect);
	manifest_free(m);

	m = parse_ok(RULE("{\"domain\": \"api.github.com\", \"requests_per_minute\": 100000, "
			  "\"ports\": [1, 65535], \"approval\": \"required\"}"));
	assert_int_equal(m->egress_rules[0].rpm, 100000);
	assert_int_equal(m->egress_rules[0].ports[0], 1);
	assert_int_equal(m->egress_rules[0].ports[1], 65535);
	assert_true(m->egress_rules[0].approval);
	manifest_free(m);

	parse_fails(RULE("{\"domain\": \"api.gitlab.com\"}"),
		    "egress.rules[0].domain: \"api.gitlab.com\" is not in egress.domains",
		    "list it there too");
	/* a rule for a name under a listed wildcard is still not a listed domain */
	parse_fails(RULE("{\"domain\": \"a.example.com\"}"),
		    "egress.rules[0].domain:", "not in egress.domains");
	parse_fails(RULE("{\"domain\": \"api.github.com\"}, {\"domain\": \"API.GITHUB.COM.\"}"),
		    "egress.rules[1].domain: \"api.github.com\" already has a rule "
		    "(egress.rules[0])",
		    NULL);
	parse_fails(RULE("{\"ports\": [443]}"), "egress.rules[0]: missing key \"domain\"", NULL);
	parse_fails(RULE("{\"domain\": \"*.com\"}"), "egress.rules[0].domain:", "two labels");
	parse_fails(RULE("{\"domain\": 1}"), "egress.rules[0].domain: expected", NULL);
	parse_fails(RULE("\"api.github.com\""), "egress.rules[0]: expected an object", NULL);
	parse_fails(NET("\"egress\": {\"domains\": [], \"rules\": {}}"),
		    "egress.rules: expected a list of rules", NULL);

	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": [0]}"),
		    "egress.rules[0].ports[0]: expected a whole number from 1 to 65535", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": [65536]}"),
		    "egress.rules[0].ports[0]: expected a whole number from 1 to 65535", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": [443, \"80\"]}"),
		    "egress.rules[0].ports[1]: expected a whole number", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": [443, 443]}"),
		    "egress.rules[0].ports[1]: port 443 is listed twice", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": []}"),
		    "egress.rules[0].ports: the list is empty", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": 443}"),
		    "egress.rules[0].ports: expected a list of port numbers", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"ports\": "
			 "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}"),
		    "egress.rules[0].ports: 17 ports, more than 16", NULL);
	m = parse_ok(RULE("{\"domain\": \"api.github.com\", \"ports\": "
			  "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}"));
	assert_int_equal(m->egress_rules[0].n_ports, EGRESS_MAX_PORTS);
	manifest_free(m);

	parse_fails(RULE("{\"domain\": \"api.github.com\", \"methods\": [\"CONNECT\"]}"),
		    "egress.rules[0].methods[0]: unknown method \"CONNECT\"", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"methods\": [\"GET\", \"get\"]}"),
		    "egress.rules[0].methods[1]: method GET is listed twice", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"methods\": []}"),
		    "egress.rules[0].methods: the list is empty", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"methods\": \"GET\"}"),
		    "egress.rules[0].methods: expected a list of HTTP methods", NULL);
	parse_fails(
		RULE("{\"domain\": \"api.github.com\", \"methods\": [\"GETTTTTTTTTTTTTTTTT\"]}"),
		"unknown method", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"requests_per_minute\": 100001}"),
		    "egress.rules[0].requests_per_minute: expected a whole number from 0 to 100000",
		    NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"requests_per_minute\": -1}"),
		    "egress.rules[0].requests_per_minute", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"approval\": \"maybe\"}"),
		    "egress.rules[0].approval: expected \"required\" or \"none\", got \"maybe\"",
		    NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"approval\": true}"),
		    "egress.rules[0].approval: expected", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"inspect\": \"yes\"}"),
		    "egress.rules[0].inspect: expected true or false", NULL);
	parse_fails(RULE("{\"domain\": \"api.github.com\", \"inspect\": 1}"),
		    "egress.rules[0].inspect", NULL);
}

/* ---------------------------------------------------- secrets, caps, env */

static void test_secrets(void **state)
{
	(void)state;
	struct agent_manifest *m =
		parse_ok(DOC("\"required_secrets\": [\"ANTHROPIC_API_KEY\", \"OPENAI_API_KEY\", "
			     "\"GEMINI_API_KEY\", \"_X\", \"A1\"]"));
	assert_int_equal(m->n_required_secrets, 5);
	assert_string_equal(m->required_secrets[0], "ANTHROPIC_API_KEY");
	assert_string_equal(m->required_secrets[4], "A1");
	assert_null(m->required_secrets[5]);
	manifest_free(m);
	m = parse_ok(DOC("\"required_secrets\": []"));
	assert_int_equal(m->n_required_secrets, 0);
	manifest_free(m);

	parse_fails(
		DOC("\"required_secrets\": [\"openai_api_key\"]"),
		"required_secrets[0]: \"openai_api_key\": expected an environment variable name",
		NULL);
	parse_fails(DOC("\"required_secrets\": [\"1KEY\"]"), "required_secrets[0]:", NULL);
	parse_fails(DOC("\"required_secrets\": [\"MY-KEY\"]"), "required_secrets[0]:", NULL);
	parse_fails(DOC("\"required_secrets\": [\"A\", \"B\", \"A\"]"),
		    "required_secrets[2]: \"A\" is listed twice (also at [0])", NULL);
	parse_fails(DOC("\"required_secrets\": \"A\""), "required_secrets: expected a list", NULL);
	parse_fails(DOC("\"required_secrets\": [\"HTTPS_PROXY\"]"),
		    "required_secrets[0]: \"HTTPS_PROXY\" cannot be a secret", "proxy");
	parse_fails(DOC("\"required_secrets\": [\"LD_PRELOAD\"]"), "cannot be a secret",
		    "dynamic loader");
	parse_fails(DOC("\"required_secrets\": [\"CORDON_RUN_ID\"]"), "cannot be a secret", NULL);
	parse_fails(DOC("\"required_secrets\": [\"PATH\"]"), "cannot be a secret", NULL);
	parse_fails(DOC("\"required_secrets\": [\"SSL_CERT_FILE\"]"), "cannot be a secret", NULL);

	/* egress.secrets: where each declared secret may be sent. */
#define SCOPED(sec, req)                                                                    \
	DOC("\"profile\": \"deployment\", \"egress\": {\"domains\": [\"api.x.com\"], "           \
	    "\"secrets\": " sec "}, \"required_secrets\": " req)
	m = parse_ok(SCOPED("{\"X_KEY\": [\"API.x.com\", \"*.y.com\"]}", "[\"X_KEY\"]"));
	assert_int_equal(m->n_secret_scopes, 1);
	assert_string_equal(m->secret_scope_names[0], "X_KEY");
	assert_string_equal(m->secret_scope_domains[0][0], "api.x.com");
	assert_string_equal(m->secret_scope_domains[0][1], "*.y.com");
	assert_null(m->secret_scope_domains[0][2]);
	manifest_free(m);
	parse_fails(SCOPED("{\"X_KEY\": [\"api.x.com\"]}", "[\"Y_KEY\"]"),
		    "egress.secrets.X_KEY: X_KEY is not in required_secrets", NULL);
	parse_fails(SCOPED("{\"X_KEY\": []}", "[\"X_KEY\"]"), "egress.secrets.X_KEY:",
		    "the list is empty");
	parse_fails(SCOPED("{\"X_KEY\": \"api.x.com\"}", "[\"X_KEY\"]"), "egress.secrets.X_KEY:",
		    "expected a list");
	parse_fails(SCOPED("[\"X_KEY\"]", "[\"X_KEY\"]"), "egress.secrets:", "expected an object");
	parse_fails(SCOPED("{\"x-key\": [\"api.x.com\"]}", "[\"X_KEY\"]"), "egress.secrets.x-key:",
		    NULL);
	parse_fails(SCOPED("{\"X_KEY\": [\"bad domain\"]}", "[\"X_KEY\"]"),
		    "egress.secrets.X_KEY[0]:", NULL);
	/* The long form: sealed unless raw. */
	m = parse_ok(SCOPED("{\"X_KEY\": [\"api.x.com\"], \"Y_KEY\": {\"domains\": "
			    "[\"api.x.com\"], \"raw\": true}, \"Z_KEY\": {\"domains\": [\"api.x.com\"]}}",
			    "[\"X_KEY\", \"Y_KEY\", \"Z_KEY\"]"));
	assert_int_equal(m->n_secret_scopes, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(m->secret_scope_domains[i][0], "api.x.com");
		assert_int_equal(m->secret_scope_raw[i],
				 strcmp(m->secret_scope_names[i], "Y_KEY") == 0);
	}
	manifest_free(m);
	parse_fails(SCOPED("{\"X_KEY\": {\"raw\": true}}", "[\"X_KEY\"]"), "egress.secrets.X_KEY:",
		    "missing key \"domains\"");
	parse_fails(SCOPED("{\"X_KEY\": {\"domains\": [\"api.x.com\"], \"raw\": 1}}", "[\"X_KEY\"]"),
		    "egress.secrets.X_KEY.raw:", "true or false");
	parse_fails(SCOPED("{\"X_KEY\": {\"domains\": [\"api.x.com\"], \"sealed\": 1}}",
			   "[\"X_KEY\"]"),
		    "egress.secrets.X_KEY:", "sealed");
	parse_fails(SCOPED("{\"X_KEY\": {\"domains\": []}}", "[\"X_KEY\"]"),
		    "egress.secrets.X_KEY.domains:", "the list is empty");
#undef SCOPED
	assert_string_equal(manifest_default_secret_domains("OPENAI_API_KEY")[0], "api.openai.com");
	assert_string_equal(manifest_default_secret_domains("ANTHROPIC_API_KEY")[0],
			    "api.anthropic.com");
	assert_null(manifest_default_secret_domains("GITHUB_TOKEN"));

	char *k64 = repeat('K', 64);
	char *d = docf(DOC("\"required_secrets\": [\"%s\"]"), k64);
	m = parse_ok(d);
	assert_string_equal(m->required_secrets[0], k64);
	manifest_free(m);
	free(d);
	d = docf(DOC("\"required_secrets\": [\"%sK\"]"), k64);
	parse_fails(d, "required_secrets[0]:", "at most 64 bytes");
	free(d);
	free(k64);
}

static void test_capabilities_env(void **state)
{
	(void)state;
	struct agent_manifest *m =
		parse_ok(DOC("\"capabilities\": [\"datasets\", \"model-cache.v2\"], \"env\": "
			     "\"prod_1\""));
	assert_int_equal(m->n_capabilities, 2);
	assert_string_equal(m->capabilities[1], "model-cache.v2");
	assert_null(m->capabilities[2]);
	assert_string_equal(m->env, "prod_1");
	manifest_free(m);

	parse_fails(DOC("\"capabilities\": [\"Datasets\"]"),
		    "capabilities[0]: \"Datasets\": expected a name", NULL);
	parse_fails(DOC("\"capabilities\": [\"a\", \"a\"]"),
		    "capabilities[1]: \"a\" is listed twice", NULL);
	parse_fails(DOC("\"capabilities\": [\"../x\"]"), "capabilities[0]:", NULL);
	parse_fails(DOC("\"capabilities\": \"datasets\""), "capabilities: expected a list", NULL);
	parse_fails(DOC("\"env\": \"\""), "env:", NULL);
	parse_fails(DOC("\"env\": \"Prod\""), "env: \"Prod\": expected a name", NULL);
	parse_fails(DOC("\"env\": [\"prod\"]"), "env: expected a name", NULL);
	char *n65 = repeat('e', 65);
	char *d = docf(DOC("\"env\": \"%s\""), n65);
	parse_fails(d, "env:", NULL);
	free(d);
	free(n65);
}

/* ------------------------------------------------------------ outputs */

/* Workers (docs/deploy.md): retries of a lost run, opt-in and bounded;
 * labels a worker needs. */
static void test_retry_and_labels(void **state)
{
	(void)state;
	struct agent_manifest *m = parse_ok(DOC("\"description\": \"x\""));
	assert_int_equal(m->retry_on_lost, 0);
	assert_string_equal(m->labels, "");
	manifest_free(m);
	m = parse_ok(DOC("\"retry\": {\"on_lost\": true, \"max\": 2},"
			 " \"labels\": {\"zone\": \"b\", \"gpu\": \"a100\"}"));
	assert_int_equal(m->retry_on_lost, 2);
	assert_string_equal(m->labels, "{\"gpu\":\"a100\",\"zone\":\"b\"}");
	manifest_free(m);
	m = parse_ok(DOC("\"retry\": {\"on_lost\": true}"));
	assert_int_equal(m->retry_on_lost, 1);
	manifest_free(m);
	m = parse_ok(DOC("\"retry\": {\"on_lost\": false, \"max\": 3}"));
	assert_int_equal(m->retry_on_lost, 0);
	manifest_free(m);
	parse_fails(DOC("\"retry\": {\"max\": 2}"), "retry", "missing key \"on_lost\"");
	parse_fails(DOC("\"retry\": {\"on_lost\": 1}"), "retry.on_lost", "true or false");
	parse_fails(DOC("\"retry\": {\"on_lost\": true, \"max\": 6}"), "retry.max", NULL);
	parse_fails(DOC("\"retry\": {\"on_lost\": true, \"max\": 0}"), "retry.max", NULL);
	parse_fails(DOC("\"retry\": {\"on_lost\": true, \"always\": true}"), "retry",
		    "unknown key \"always\"");
	parse_fails(DOC("\"retry\": true"), "retry", NULL);
	parse_fails(DOC("\"labels\": [\"gpu\"]"), "labels", NULL);
	parse_fails(DOC("\"labels\": {\"gpu\": 1}"), "labels", NULL);
	parse_fails(DOC("\"labels\": {\"a b\": \"x\"}"), "labels", "key");
}

static void test_health(void **state)
{
	(void)state;
	struct agent_manifest *m = parse_ok(DOC("\"health\": {\"port\": 8080}"));
	assert_int_equal(m->health.port, 8080);
	assert_string_equal(m->health.path, "/");
	assert_int_equal(m->health.interval_s, 10);
	assert_int_equal(m->health.timeout_s, 5);
	assert_int_equal(m->health.failures, 3);
	manifest_free(m);
	m = parse_ok(DOC("\"health\": {\"port\": 9000, \"path\": \"/healthz?full=1\","
			 " \"interval\": 2, \"failures\": 1}"));
	assert_string_equal(m->health.path, "/healthz?full=1");
	assert_int_equal(m->health.timeout_s, 2);
	manifest_free(m);
	parse_fails(DOC("\"health\": {\"path\": \"/\"}"), "health", "missing key \"port\"");
	parse_fails(DOC("\"health\": {\"port\": 0}"), "health.port", NULL);
	parse_fails(DOC("\"health\": {\"port\": 65536}"), "health.port", NULL);
	parse_fails(DOC("\"health\": {\"port\": 3128}"), "health.port", "cordon's own");
	parse_fails(DOC("\"health\": {\"port\": 3129}"), "health.port", "cordon's own");
	parse_fails(DOC("\"health\": {\"port\": 80}"), "health.port", NULL);
	parse_fails(DOC("\"health\": {\"port\": 8080, \"path\": \"x\"}"), "health.path", NULL);
	parse_fails(DOC("\"health\": {\"port\": 8080, \"path\": \"/a b\"}"), "health.path",
		    NULL);
	parse_fails(DOC("\"health\": {\"port\": 8080, \"path\": \"/a\\r\\nX: y\"}"),
		    "health.path", NULL);
	parse_fails(DOC("\"health\": {\"port\": 8080, \"interval\": 2, \"timeout\": 3}"),
		    "health.timeout", "at most");
	parse_fails(DOC("\"health\": {\"port\": 8080, \"retries\": 3}"), "health",
		    "unknown key \"retries\"");
	parse_fails(DOC("\"health\": 8080"), "health", NULL);
}

static void test_outputs(void **state)
{
	(void)state;
	struct agent_manifest *m =
		parse_ok(DOC("\"outputs\": {\"max_files\": 1000, \"max_file_bytes\": 1, "
			     "\"max_total_bytes\": \"4g\", \"extensions\": [\"json\", \"tar2\", "
			     "\"abcdefghijklmnop\"]}"));
	assert_int_equal(m->outputs.max_files, MANIFEST_MAX_OUTPUT_FILES);
	assert_int_equal(m->outputs.max_file_bytes, 1);
	assert_int_equal(m->outputs.max_total_bytes, MANIFEST_MAX_OUTPUT_BYTES);
	assert_int_equal(m->outputs.n_extensions, 3);
	assert_string_equal(m->outputs.extensions[2], "abcdefghijklmnop");
	manifest_free(m);
	m = parse_ok(DOC("\"outputs\": {\"max_files\": 1, \"max_total_bytes\": 4294967296}"));
	assert_int_equal(m->outputs.max_files, 1);
	assert_int_equal(m->outputs.max_file_bytes, 0);
	assert_int_equal(m->outputs.max_total_bytes, 4ULL << 30);
	manifest_free(m);

	parse_fails(DOC("\"outputs\": {\"max_files\": 0}"),
		    "outputs.max_files: expected a whole number from 1 to 1000", NULL);
	parse_fails(DOC("\"outputs\": {\"max_files\": 1001}"), "outputs.max_files", NULL);
	parse_fails(DOC("\"outputs\": {\"max_files\": \"5\"}"), "outputs.max_files", NULL);
	parse_fails(DOC("\"outputs\": {\"max_file_bytes\": 0}"),
		    "outputs.max_file_bytes: 0 bytes is less than 1 byte", NULL);
	parse_fails(DOC("\"outputs\": {\"max_total_bytes\": 4294967297}"),
		    "outputs.max_total_bytes: 4294967297 bytes is more than 4g", NULL);
	parse_fails(DOC("\"outputs\": {\"max_total_bytes\": \"5g\"}"),
		    "outputs.max_total_bytes: 5g is more than 4g", NULL);
	parse_fails(DOC("\"outputs\": {\"max_file_bytes\": \"5m\", \"max_total_bytes\": \"1m\"}"),
		    "outputs.max_file_bytes: larger than outputs.max_total_bytes", NULL);
	parse_fails(DOC("\"outputs\": {\"max_file_bytes\": \"5q\"}"),
		    "outputs.max_file_bytes: expected a size", NULL);
	parse_fails(DOC("\"outputs\": {\"extensions\": [\".json\"]}"),
		    "outputs.extensions[0]: \".json\": expected an extension", "without the dot");
	parse_fails(DOC("\"outputs\": {\"extensions\": [\"JSON\"]}"),
		    "outputs.extensions[0]:", NULL);
	parse_fails(DOC("\"outputs\": {\"extensions\": [\"abcdefghijklmnopq\"]}"),
		    "outputs.extensions[0]:", "at most 16 bytes");
	parse_fails(DOC("\"outputs\": {\"extensions\": [\"md\", \"md\"]}"),
		    "outputs.extensions[1]: \"md\" is listed twice", NULL);
	parse_fails(DOC("\"outputs\": {\"extensions\": []}"),
		    "outputs.extensions: the list is empty", NULL);
	parse_fails(DOC("\"outputs\": 5"), "outputs: expected an object", NULL);
}

/* ------------------------------------------------------- loading a dir */

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_load_dir(void **state)
{
	(void)state;
	char dir[] = "/tmp/cordon-manifest-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], other[256];
	snprintf(path, sizeof(path), "%s/agent.json", dir);
	snprintf(other, sizeof(other), "%s/elsewhere.json", dir);
	struct agent_manifest *m = NULL;
	struct cdn_err err = { 0 };

	/* missing */
	assert_int_equal(manifest_load_dir(dir, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "needs an agent.json"));
	assert_true(manifest_load_dir("/nonexistent/agent", &m, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/agent"));
	assert_true(manifest_load_dir("", &m, &err) < 0);
	assert_null(m);

	/* fine */
	write_file(path, example, strlen(example));
	assert_int_equal(manifest_load_dir(dir, &m, &err), 0);
	assert_string_equal(m->name, "summarizer");
	manifest_free(m);
	m = NULL;

	/* an error names the file's path */
	const char *bad = "{" REQ ", \"limits\": {\"mem\": 5}}";
	write_file(path, bad, strlen(bad));
	assert_true(manifest_load_dir(dir, &m, &err) < 0);
	char want[320];
	snprintf(want, sizeof(want), "%s: limits.mem:", path);
	assert_non_null(strstr(err.msg, want));

	/* too large, judged by the file's size */
	char *big = repeat(' ', MANIFEST_MAX_BYTES + 1);
	memcpy(big, "{" REQ "}", strlen("{" REQ "}"));
	write_file(path, big, MANIFEST_MAX_BYTES + 1);
	assert_int_equal(manifest_load_dir(dir, &m, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "more than the limit of 65536"));
	/* exactly the bound is fine */
	write_file(path, big, MANIFEST_MAX_BYTES);
	assert_int_equal(manifest_load_dir(dir, &m, &err), 0);
	manifest_free(m);
	m = NULL;
	free(big);

	/* a symlink is refused, even to a valid manifest beside it */
	unlink(path);
	write_file(other, example, strlen(example));
	assert_int_equal(symlink(other, path), 0);
	assert_true(manifest_load_dir(dir, &m, &err) < 0);
	assert_null(m);
	assert_non_null(strstr(err.msg, "a symbolic link"));
	unlink(path);

	/* a directory, a FIFO (must not hang) */
	assert_int_equal(mkdir(path, 0755), 0);
	assert_true(manifest_load_dir(dir, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "not a regular file"));
	rmdir(path);
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_true(manifest_load_dir(dir, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "not a regular file"));
	unlink(path);

	/* the directory itself may not be a file */
	assert_true(manifest_load_dir(other, &m, &err) < 0);
	assert_null(m);
	unlink(other);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_name_version),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_mem),
		cmocka_unit_test(test_pids_timeout),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_egress_domains),
		cmocka_unit_test(test_egress_rules),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_capabilities_env),
		cmocka_unit_test(test_outputs),
		cmocka_unit_test(test_retry_and_labels),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_load_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
