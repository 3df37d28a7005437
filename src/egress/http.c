/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict HTTP/1.1 head parser (contract in http.h); the chunked decoder is
 * in http_chunked.c.
 *
 * How the head parser works: every call parses from the start of the
 * buffer. The head is cut into lines at CRLF; each line, complete or not,
 * is checked byte by byte as far as it goes, so a head that is already
 * invalid is refused at once instead of waiting for more bytes that may
 * never come (or that would let a slow client hold a connection open with
 * garbage). The checks that need a whole line (the request target, the
 * version) run once the line is complete; the checks that need the whole
 * head (framing, Host) run once the blank line is there.
 *
 * Re-parsing costs O(n) per call and the head is bounded by HTTP_MAX_HEAD,
 * so the worst case is bounded too, and the parser keeps no state between
 * calls that could get out of step with the buffer.
 *
 * Error messages name the problem and the byte offset, and quote only
 * framing data (method, authority, Host, Content-Length, ...). They never
 * quote a path, a query or a field value other than those: a query string
 * or an Authorization header can carry a credential, and these messages
 * end up in logs and in the answer to the agent.
 */
#include "egress/http.h"
#include "egress/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/text.h"

/* Bytes of untrusted text quoted in an error message. */
#define SNIP_MAX 64

/* ---------------------------------------------------------------------------
 * Small helpers
 */

static int fail(struct cdn_err *err, int hint, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the message (EINVAL: the peer's bytes are at fault) and returns
 * the status hint the caller answers with. */
static int fail(struct cdn_err *err, int hint, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cdn_err_vset(err, CDN_ERR_USER, EINVAL, fmt, ap);
	va_end(ap);
	return hint;
}

struct snip {
	char s[SNIP_MAX * 4 + 4];
};

/* Renders untrusted bytes for a message: printable ASCII as is, the rest as
 * \xNN, cut at SNIP_MAX bytes, so a log line stays one line of ASCII. */
static const char *snip(struct snip *sn, const char *p, size_t n)
{
	/* Room for SNIP_MAX escaped bytes, then "..." after. */
	cdn_printable(sn->s, sizeof(sn->s) - 3, p, n < SNIP_MAX ? n : SNIP_MAX, CDN_TEXT_ESCAPE);
	if (n > SNIP_MAX)
		strcat(sn->s, "...");
	return sn->s;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool ieq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/* p[0..n) equals the literal, ignoring ASCII case. */
static bool ieq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && ieq_n(p, lit, n);
}

static bool iprefix(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && ieq_n(p, lit, l);
}

/* ---------------------------------------------------------------------------
 * Lines of the head
 */

/*
 * Checks as much of an HTTP-version ("HTTP/" DIGIT "." DIGIT, RFC 9112 2.3;
 * HTTP-name is case-sensitive) as p holds. Sets *minor once all 8 bytes are
 * there. A well-formed version other than 1.0 or 1.1 is HTTP_ERR_VERSION;
 * that includes the HTTP/2 connection preface "PRI * HTTP/2.0".
 */
static int check_version(const char *p, size_t n, size_t off, int *minor, struct cdn_err *err)
{
	static const char name[] = "HTTP/";
	struct snip sn;
	for (size_t k = 0; k < n && k < 8; k++) {
		unsigned char c = (unsigned char)p[k];
		bool ok = k < 5 ? c == (unsigned char)name[k] : k == 6 ? c == '.' : is_digit(c);
		/* Not quoted: after a stray space in the target this is
		 * the rest of the URI, which may hold a credential. */
		if (!ok)
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "malformed HTTP version at byte %zu (expected HTTP/1.1)", off + k);
		if ((k == 5 && c != '1') || (k == 7 && c > '1'))
			return fail(err, HTTP_ERR_VERSION, "HTTP version '%s' is not supported",
				    snip(&sn, p, n < 8 ? n : 8));
	}
	if (n > 8)
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "unexpected bytes after the HTTP version at byte %zu", off + 8);
	if (n == 8)
		*minor = p[7] - '0';
	return 0;
}

/*
 * A field line: field-name ":" OWS field-value OWS (RFC 9112 5). CR, LF and
 * NUL never reach here (the line splitter handles them). A partial line is
 * checked as far as it goes; *f is filled only for a complete one.
 */
static int check_field_line(const char *p, size_t n, bool complete, size_t off,
			    struct http_field *f, struct cdn_err *err)
{
	struct snip sn;
	/* obs-fold (RFC 9112 5.2) lets one field span lines; implementations
	 * disagree on whether a leading space continues the previous field, so
	 * it is refused. The same check refuses whitespace between the start
	 * line and the first field (RFC 9112 2.2), which some parsers take as
	 * part of the start line. */
	if (n > 0 && is_ows(p[0]))
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "header line at byte %zu starts with whitespace (obs-fold line folding "
			    "is not accepted)",
			    off);
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == n) {
		if (complete)
			return fail(err, HTTP_ERR_BAD_REQUEST, "header line at byte %zu has no ':'",
				    off);
		return 0;
	}
	if (p[i] != ':') {
		/* "Content-Length : 5" is ignored by some and honoured by
		 * others: RFC 9112 5.1 says to reject it with 400. */
		if (is_ows(p[i]))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "whitespace between header field name '%s' and ':' at byte %zu",
				    snip(&sn, p, i), off + i);
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "invalid character 0x%02x in header field name at byte %zu",
			    (unsigned char)p[i], off + i);
	}
	if (i == 0)
		return fail(err, HTTP_ERR_BAD_REQUEST, "empty header field name at byte %zu", off);
	size_t name_len = i;
	for (size_t j = i + 1; j < n; j++) {
		unsigned char c = (unsigned char)p[j];
		if (is_ctl(c) && c != '\t')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "control character 0x%02x in the value of header field '%s' at "
				    "byte %zu",
				    c, snip(&sn, p, name_len), off + j);
	}
	if (!complete)
		return 0;
	size_t vs = name_len + 1, ve = n;
	while (vs < ve && is_ows(p[vs]))
		vs++;
	while (ve > vs && is_ows(p[ve - 1]))
		ve--;
	f->name = p;
	f->name_len = name_len;
	f->value = p + vs;
	f->value_len = ve - vs;
	return 0;
}

typedef int (*first_line_fn)(const char *line, size_t n, bool complete, size_t off, void *out,
			     struct cdn_err *err);

/*
 * Splits buf into lines, hands the first to `first` and the others to
 * check_field_line. Returns the head length, 0 for "need more", or an error.
 * Only the first HTTP_MAX_HEAD bytes are looked at.
 */
static int scan_head(const char *buf, size_t len, const char *first_name, first_line_fn first,
		     void *out, struct http_field *fields, size_t *n_fields, struct cdn_err *err)
{
	size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	size_t pos = 0;
	*n_fields = 0;
	for (unsigned line = 0;; line++) {
		const char *where = line == 0 ? first_name : "header section";
		size_t start = pos, i;
		bool complete = false;
		/* A lone CR or LF is a line end to some parsers and not to
		 * others: the classic way to hide a header from one of them.
		 * Only CRLF ends a line (RFC 9112 2.2 allows rejecting the
		 * rest). NUL truncates C strings in other implementations. */
		for (i = start; i < lim; i++) {
			char c = buf[i];
			if (c == '\n')
				return fail(err, HTTP_ERR_BAD_REQUEST, "bare LF in %s at byte %zu",
					    where, i);
			if (c == '\0')
				return fail(err, HTTP_ERR_BAD_REQUEST, "NUL byte in %s at byte %zu",
					    where, i);
			if (c == '\r') {
				if (i + 1 >= lim)
					break;
				if (buf[i + 1] != '\n')
					return fail(err, HTTP_ERR_BAD_REQUEST,
						    "bare CR in %s at byte %zu", where, i);
				complete = true;
				break;
			}
		}
		const char *p = buf + start;
		size_t n = i - start;
		int r;
		if (line == 0) {
			/* RFC 9112 2.2 lets a server skip empty lines before
			 * the request line; we do not, so head_len always
			 * starts at a request line. */
			if (complete && n == 0)
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "empty line before the %s at byte 0", first_name);
			r = first(p, n, complete, start, out, err);
		} else if (n == 0 && complete) {
			return (int)(i + 2);
		} else {
			if (n > 0 && *n_fields >= HTTP_MAX_HEADERS)
				return fail(err, HTTP_ERR_HEADERS_TOO_LARGE,
					    "more than %d header fields", HTTP_MAX_HEADERS);
			r = check_field_line(p, n, complete, start, &fields[*n_fields], err);
			if (r == 0 && complete)
				(*n_fields)++;
		}
		if (r < 0)
			return r;
		if (!complete) {
			if (len >= HTTP_MAX_HEAD)
				return fail(err, HTTP_ERR_HEADERS_TOO_LARGE,
					    "no complete head within %d bytes", HTTP_MAX_HEAD);
			return 0;
		}
		pos = i + 2;
	}
}

/* ---------------------------------------------------------------------------
 * Request target and Host
 */

struct authority {
	const char *host; /* without brackets */
	size_t host_len;
	bool ipv6;
	bool has_port;
	uint16_t port;
};

/* reg-name characters we accept: the DNS hostname alphabet plus '_' (seen
 * in real service names), and '.' which also covers IPv4 literals. */
static bool is_host_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
}

static int parse_port(const char *p, size_t n, const char *what, struct authority *a,
		      struct cdn_err *err)
{
	struct snip sn;
	if (n == 0)
		return fail(err, HTTP_ERR_BAD_REQUEST, "empty port in %s", what);
	/* strtoul-style parsers accept "+80" or " 80"; we do not, so the port
	 * we check is the port we connect to. */
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)p[i]))
			return fail(err, HTTP_ERR_BAD_REQUEST, "port '%s' in %s is not a number",
				    snip(&sn, p, n), what);
		v = v * 10 + (unsigned long)(p[i] - '0');
		if (v > 65535 || i >= 5)
			return fail(err, HTTP_ERR_BAD_REQUEST, "port '%s' in %s is out of range",
				    snip(&sn, p, n), what);
	}
	if (v == 0)
		return fail(err, HTTP_ERR_BAD_REQUEST, "port 0 in %s", what);
	a->has_port = true;
	a->port = (uint16_t)v;
	return 0;
}

/*
 * authority = host [ ":" port ] without userinfo (RFC 3986 3.2), where host
 * is a reg-name of is_host_char, an IPv4 literal, or "[" IPv6 "]".
 */
static int parse_authority(const char *p, size_t n, const char *what, struct authority *a,
			   struct cdn_err *err)
{
	struct snip sn;
	memset(a, 0, sizeof(*a));
	/* "http://allowed.example@evil.example/" names evil.example, but a
	 * careless policy check reads allowed.example. Proxies have no use
	 * for userinfo (credentials belong in Proxy-Authorization). */
	if (memchr(p, '@', n))
		return fail(err, HTTP_ERR_BAD_REQUEST, "userinfo ('user@') in %s is not allowed",
			    what);
	size_t i = 0;
	if (n > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', n);
		if (!close)
			return fail(err, HTTP_ERR_BAD_REQUEST, "unterminated '[' in %s", what);
		a->host = p + 1;
		a->host_len = (size_t)(close - p) - 1;
		a->ipv6 = true;
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr addr;
		for (size_t k = 0; k < a->host_len; k++) {
			unsigned char c = (unsigned char)a->host[k];
			/* A zone ("%25eth0") names a local interface: never
			 * a destination for a proxy. */
			if (c == '%')
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "percent-encoding (IPv6 zone) in the host of %s", what);
			if (hex_value(c) < 0 && c != ':' && c != '.')
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "invalid IPv6 address '[%s]' in %s",
					    snip(&sn, a->host, a->host_len), what);
		}
		if (a->host_len == 0 || a->host_len >= sizeof(tmp))
			return fail(err, HTTP_ERR_BAD_REQUEST, "invalid IPv6 address '[%s]' in %s",
				    snip(&sn, a->host, a->host_len), what);
		memcpy(tmp, a->host, a->host_len);
		tmp[a->host_len] = '\0';
		if (inet_pton(AF_INET6, tmp, &addr) != 1)
			return fail(err, HTTP_ERR_BAD_REQUEST, "invalid IPv6 address '[%s]' in %s",
				    tmp, what);
		i = a->host_len + 2;
		if (i < n && p[i] != ':')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "unexpected character 0x%02x after ']' in %s",
				    (unsigned char)p[i], what);
	} else {
		for (; i < n && p[i] != ':'; i++) {
			unsigned char c = (unsigned char)p[i];
			/* Percent-decoding a host is where "evil%2eexample"
			 * and "allowed%00.evil" tricks live; hosts are
			 * compared and resolved exactly as written. */
			if (c == '%')
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "percent-encoding in the host of %s", what);
			if (!is_host_char(c))
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "invalid character 0x%02x in the host of %s", c, what);
		}
		a->host = p;
		a->host_len = i;
		if (i == 0)
			return fail(err, HTTP_ERR_BAD_REQUEST, "empty host in %s", what);
	}
	if (a->host_len > HTTP_MAX_HOST)
		return fail(err, HTTP_ERR_BAD_REQUEST, "host in %s is longer than %d bytes", what,
			    HTTP_MAX_HOST);
	if (i >= n)
		return 0;
	return parse_port(p + i + 1, n - i - 1, what, a, err);
}

/*
 * This is a forward proxy: the target must say where to go. Only
 * absolute-form http:// URIs and, for CONNECT, authority-form host:port
 * (RFC 9112 3.2.2, 3.2.3) are accepted.
 */
static int parse_target(struct http_request *req, const char *t, size_t n, size_t off,
			struct cdn_err *err)
{
	struct snip sn;
	struct authority a;
	bool connect = strcmp(req->method, "CONNECT") == 0;
	int r;
	if (req->tunnel_host) {
		/* Inside a terminated tunnel: origin-form only, the tunnel is
		 * the destination (RFC 9112 3.2.1). */
		if (connect)
			return fail(err, HTTP_ERR_BAD_REQUEST, "CONNECT inside a tunnel");
		if (t[0] != '/')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "request inside a TLS tunnel must use an origin-form target "
				    "('/...')");
		if (memchr(t, '#', n))
			return fail(err, HTTP_ERR_BAD_REQUEST, "fragment ('#') in request target");
		req->form = HTTP_TARGET_ORIGIN;
		req->path = t;
		req->path_len = n;
		return 0;
	}
	/* A fragment is never sent on the wire (RFC 9110 4.2.4); one that is
	 * is either a client bug or a parser-differential probe. */
	const char *hash = memchr(t, '#', n);
	if (hash)
		return fail(err, HTTP_ERR_BAD_REQUEST, "fragment ('#') in request target at byte %zu",
			    off + (size_t)(hash - t));
	if (connect) {
		if (memchr(t, '/', n))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "CONNECT request target must be host:port (authority-form)");
		r = parse_authority(t, n, "the CONNECT target", &a, err);
		if (r < 0)
			return r;
		if (!a.has_port)
			return fail(err, HTTP_ERR_BAD_REQUEST, "CONNECT target '%s' has no port",
				    snip(&sn, t, n));
		req->form = HTTP_TARGET_AUTHORITY;
		req->path = NULL;
		req->path_len = 0;
	} else {
		if (t[0] == '/')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "origin-form request target ('/...') is not accepted by a "
				    "forward proxy: send an absolute http:// URI");
		if (n == 1 && t[0] == '*')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "asterisk-form request target '*' is not accepted by a forward "
				    "proxy");
		if (iprefix(t, n, "https://"))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "https:// request target is not accepted: use CONNECT for HTTPS");
		if (!iprefix(t, n, "http://")) {
			const char *colon = memchr(t, ':', n);
			if (colon && (size_t)(colon - t) + 2 < n && colon[1] == '/' &&
			    colon[2] == '/')
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "unsupported scheme '%s' in request target",
					    snip(&sn, t, (size_t)(colon - t)));
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "request target is not an absolute http:// URI (only CONNECT "
				    "may use host:port)");
		}
		const char *auth = t + 7;
		size_t rest = n - 7, alen = 0;
		while (alen < rest && auth[alen] != '/' && auth[alen] != '?')
			alen++;
		r = parse_authority(auth, alen, "the request target", &a, err);
		if (r < 0)
			return r;
		if (alen == rest) {
			/* RFC 9112 3.2.1: an empty path is sent as "/". */
			req->path = "/";
			req->path_len = 1;
		} else if (auth[alen] == '?') {
			/* "http://h?q" would need a '/' inserted to forward;
			 * the parser does not allocate, and clients send "/?q". */
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "request target has a query but no path (send 'http://host/?...')");
		} else {
			req->path = auth + alen;
			req->path_len = rest - alen;
		}
		req->form = HTTP_TARGET_ABSOLUTE;
		if (!a.has_port)
			a.port = HTTP_DEFAULT_PORT;
	}
	memcpy(req->host, a.host, a.host_len);
	req->host[a.host_len] = '\0';
	req->host_is_ipv6 = a.ipv6;
	req->port = a.port;
	return 0;
}

/*
 * request-line = method SP request-target SP HTTP-version (RFC 9112 3),
 * with exactly one SP between the parts.
 */
static int request_line(const char *p, size_t n, bool complete, size_t off, void *out,
			struct cdn_err *err)
{
	struct http_request *req = out;
	struct snip sn;
	size_t i = 0;
	for (; i < n && p[i] != ' '; i++) {
		if (!is_tchar((unsigned char)p[i]))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "invalid character 0x%02x in method at byte %zu",
				    (unsigned char)p[i], off + i);
		if (i >= HTTP_MAX_METHOD)
			return fail(err, HTTP_ERR_BAD_REQUEST, "method longer than %d bytes",
				    HTTP_MAX_METHOD);
	}
	if (i == n) {
		if (complete)
			return fail(err, HTTP_ERR_BAD_REQUEST, "request line '%s' has no target",
				    snip(&sn, p, n));
		return 0;
	}
	if (i == 0)
		return fail(err, HTTP_ERR_BAD_REQUEST, "request line starts with a space");
	memcpy(req->method, p, i);
	req->method[i] = '\0';

	size_t t0 = i + 1, j = t0;
	for (; j < n && p[j] != ' '; j++) {
		unsigned char c = (unsigned char)p[j];
		/* Only visible ASCII: raw non-ASCII and controls in a URI
		 * are read differently by different servers. */
		if (c < 0x21 || c >= 0x7f)
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "invalid byte 0x%02x in request target at byte %zu", c, off + j);
		if (j - t0 >= HTTP_MAX_TARGET)
			return fail(err, HTTP_ERR_URI_TOO_LONG,
				    "request target longer than %d bytes", HTTP_MAX_TARGET);
	}
	if (j == n) {
		if (complete)
			return fail(err, HTTP_ERR_BAD_REQUEST, "request line has no HTTP version");
		return 0;
	}
	if (j == t0)
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "empty request target (more than one space after the method)");

	int r = check_version(p + j + 1, n - j - 1, off + j + 1, &req->version_minor, err);
	if (r < 0 || !complete)
		return r;
	if (n - j - 1 < 8)
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "malformed HTTP version at byte %zu (expected HTTP/1.1)", off + n);
	return parse_target(req, p + t0, j - t0, off + t0, err);
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4). */
static int status_line(const char *p, size_t n, bool complete, size_t off, void *out,
		       struct cdn_err *err)
{
	struct http_response *res = out;
	int r = check_version(p, n < 8 ? n : 8, off, &res->version_minor, err);
	if (r < 0)
		return r;
	for (size_t k = 8; k < n && k < 13; k++) {
		unsigned char c = (unsigned char)p[k];
		bool ok = (k == 8 || k == 12) ? c == ' ' : k == 9 ? c >= '1' && c <= '5' : is_digit(c);
		if (!ok)
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "malformed status line at byte %zu (expected 'HTTP/1.1 NNN "
				    "reason')",
				    off + k);
	}
	for (size_t k = 13; k < n; k++) {
		unsigned char c = (unsigned char)p[k];
		if (is_ctl(c) && c != '\t')
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "control character 0x%02x in reason phrase at byte %zu", c,
				    off + k);
	}
	if (!complete)
		return 0;
	/* The SP before an empty reason is required by the grammar, but
	 * servers omit it and "HTTP/1.1 204" has only one reading. */
	if (n < 12)
		return fail(err, HTTP_ERR_BAD_REQUEST, "status line too short");
	res->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	res->reason = p + (n > 13 ? 13 : n);
	res->reason_len = n > 13 ? n - 13 : 0;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Whole-head rules
 */

struct framing {
	const struct http_field *cl;
	const struct http_field *te;
	uint64_t content_length;
	bool conn_close;
	bool conn_keep_alive;
};

/* Connection = #connection-option (RFC 9110 7.6.1): a comma list of tokens;
 * empty elements are allowed by the list rule (5.6.1). */
static int parse_connection(const struct http_field *f, struct framing *fr, struct cdn_err *err)
{
	struct snip sn;
	size_t i = 0;
	while (i <= f->value_len) {
		size_t s = i, e;
		while (i < f->value_len && f->value[i] != ',')
			i++;
		e = i;
		while (s < e && is_ows(f->value[s]))
			s++;
		while (e > s && is_ows(f->value[e - 1]))
			e--;
		for (size_t k = s; k < e; k++)
			if (!is_tchar((unsigned char)f->value[k]))
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "Connection field '%s' is not a list of tokens",
					    snip(&sn, f->value, f->value_len));
		if (ieq(f->value + s, e - s, "close"))
			fr->conn_close = true;
		else if (ieq(f->value + s, e - s, "keep-alive"))
			fr->conn_keep_alive = true;
		i++;
	}
	return 0;
}

/*
 * The message framing rules both directions share. Anything two
 * implementations could frame differently is refused (RFC 9112 6.1, 6.3;
 * the request smuggling cases of Linhart et al. 2005 and Kettle 2019).
 */
static int check_framing(const struct http_field *fields, size_t n, int version_minor,
			 struct framing *fr, struct cdn_err *err)
{
	struct snip sn;
	memset(fr, 0, sizeof(*fr));
	for (size_t i = 0; i < n; i++) {
		const struct http_field *f = &fields[i];
		if (ieq(f->name, f->name_len, "Content-Length")) {
			/* RFC 9110 8.6 lets equal duplicates merge; one
			 * copy is all a client needs, so any second one is
			 * treated as an attack. */
			if (fr->cl)
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "header field 'Content-Length' appears twice");
			fr->cl = f;
		} else if (ieq(f->name, f->name_len, "Transfer-Encoding")) {
			/* Two TE fields combine into a list; that list is
			 * what "TE: chunked" + "TE: identity" smuggling uses. */
			if (fr->te)
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "header field 'Transfer-Encoding' appears twice");
			fr->te = f;
		} else if (ieq(f->name, f->name_len, "Connection")) {
			int r = parse_connection(f, fr, err);
			if (r < 0)
				return r;
		}
	}
	/* CL.TE / TE.CL desync: RFC 9112 6.3 says TE wins, but a peer that
	 * picks CL reads a different body. Refuse the combination. */
	if (fr->cl && fr->te)
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "both Content-Length and Transfer-Encoding are present");
	if (fr->te) {
		/* RFC 9112 6.1: TE in an HTTP/1.0 message means the framing
		 * is faulty (1.0 peers do not know chunked). */
		if (version_minor == 0)
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "Transfer-Encoding in an HTTP/1.0 message");
		/* Exactly "chunked": lists, other codings, "chunked, chunked"
		 * and look-alikes ("xchunked", "chunked\v") are where
		 * TE.TE obfuscation smuggling lives. */
		if (!ieq(fr->te->value, fr->te->value_len, "chunked"))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "Transfer-Encoding '%s' is not accepted (only 'chunked')",
				    snip(&sn, fr->te->value, fr->te->value_len));
	}
	if (fr->cl) {
		const struct http_field *f = fr->cl;
		/* 1*DIGIT (RFC 9110 8.6): no sign, no inner spaces, no
		 * comma lists, nothing a lenient parser would read as
		 * another number. */
		if (f->value_len == 0)
			return fail(err, HTTP_ERR_BAD_REQUEST, "empty Content-Length");
		for (size_t i = 0; i < f->value_len; i++)
			if (!is_digit((unsigned char)f->value[i]))
				return fail(err, HTTP_ERR_BAD_REQUEST,
					    "Content-Length '%s' is not a decimal number",
					    snip(&sn, f->value, f->value_len));
		if (f->value_len > HTTP_MAX_CONTENT_LENGTH_DIGITS)
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "Content-Length '%s' has more than %d digits",
				    snip(&sn, f->value, f->value_len),
				    HTTP_MAX_CONTENT_LENGTH_DIGITS);
		uint64_t v = 0;
		for (size_t i = 0; i < f->value_len; i++)
			v = v * 10 + (uint64_t)(f->value[i] - '0');
		fr->content_length = v;
	}
	return 0;
}

static bool keep_alive(int version_minor, const struct framing *fr)
{
	if (fr->conn_close)
		return false;
	return version_minor == 1 || fr->conn_keep_alive;
}

/* "host[:port]" of an authority, for messages. */
static const char *authority_text(struct snip *sn, const char *host, bool ipv6, int port)
{
	char tmp[HTTP_MAX_HOST + 16];
	int n = snprintf(tmp, sizeof(tmp), "%s%s%s", ipv6 ? "[" : "", host, ipv6 ? "]" : "");
	if (port > 0)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ":%d", port);
	return snip(sn, tmp, (size_t)n);
}

/*
 * Absolute-form requests: Host must be present exactly once in both
 * versions, stricter than RFC 9112 3.2 (which does not require it in 1.0):
 * the policy decides on the target, and the origin server routes on Host,
 * so both must be there and name the same place or the request could reach
 * a host the policy never saw (Host/target confusion, as in routing-based
 * SSRF).
 *
 * CONNECT: the authority-form target is the only destination (nothing is
 * routed on Host inside the tunnel's setup), so Host is optional. Python's
 * http.client before 3.12 sends none (CPython gh-66897) and Java sends it
 * without the port. When present it must name the same host, and the same
 * port if it gives one.
 */
static int check_host(struct http_request *req, struct cdn_err *err)
{
	const struct http_field *host = NULL;
	struct snip sa, sb;
	bool connect = req->form == HTTP_TARGET_AUTHORITY;
	for (size_t i = 0; i < req->n_fields; i++) {
		const struct http_field *f = &req->fields[i];
		if (!ieq(f->name, f->name_len, "Host"))
			continue;
		if (host)
			return fail(err, HTTP_ERR_BAD_REQUEST, "header field 'Host' appears twice");
		host = f;
	}
	if (!host)
		return connect ? 0 : fail(err, HTTP_ERR_BAD_REQUEST, "header field 'Host' is missing");
	struct authority a;
	int r = parse_authority(host->value, host->value_len, "the Host field", &a, err);
	if (r < 0)
		return r;
	/* http:// defaults to 80 on either side (RFC 9110 4.2.1), https:// to
	 * 443; a CONNECT Host without a port is compared by name only. */
	int host_port = a.has_port ? a.port
				   : connect ? (int)req->port
					     : req->form == HTTP_TARGET_ORIGIN ? 443 : HTTP_DEFAULT_PORT;
	bool same = a.ipv6 == req->host_is_ipv6 && ieq(a.host, a.host_len, req->host) &&
		    host_port == req->port;
	if (!same)
		return fail(err, HTTP_ERR_BAD_REQUEST,
			    "Host field '%s' disagrees with the request target '%s'",
			    snip(&sa, host->value, host->value_len),
			    authority_text(&sb, req->host, req->host_is_ipv6, req->port));
	return 0;
}

/* Expect: only 100-continue is defined (RFC 9110 10.1.1). Other values
 * deserve 417, but the proxy answers every refused request the same way,
 * so they are HTTP_ERR_BAD_REQUEST. */
static int check_expect(struct http_request *req, struct cdn_err *err)
{
	struct snip sn;
	for (size_t i = 0; i < req->n_fields; i++) {
		const struct http_field *f = &req->fields[i];
		if (!ieq(f->name, f->name_len, "Expect"))
			continue;
		if (!ieq(f->value, f->value_len, "100-continue"))
			return fail(err, HTTP_ERR_BAD_REQUEST,
				    "Expect '%s' is not supported (only '100-continue')",
				    snip(&sn, f->value, f->value_len));
		/* An HTTP/1.0 client cannot know 100 Continue: the RFC
		 * says to ignore the expectation. */
		req->expect_continue = req->version_minor == 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Public API
 */

static int parse_request(const char *buf, size_t len, struct http_request *req,
			 struct cdn_err *err)
{
	int head = scan_head(buf, len, "request line", request_line, req, req->fields,
			     &req->n_fields, err);
	if (head <= 0)
		return head;
	struct framing fr;
	int r = check_framing(req->fields, req->n_fields, req->version_minor, &fr, err);
	if (r < 0)
		return r;
	r = check_host(req, err);
	if (r < 0)
		return r;
	r = check_expect(req, err);
	if (r < 0)
		return r;
	if (req->form == HTTP_TARGET_AUTHORITY && (fr.te || fr.content_length > 0))
		/* After CONNECT the bytes are tunnel data; a body would be
		 * read as tunnel by one side and as content by another
		 * (RFC 9110 9.3.6: CONNECT content has no meaning). */
		return fail(err, HTTP_ERR_BAD_REQUEST, "CONNECT request with a body");
	if (fr.te)
		req->body = HTTP_BODY_CHUNKED;
	else if (fr.cl && req->form != HTTP_TARGET_AUTHORITY)
		req->body = HTTP_BODY_LENGTH;
	else
		req->body = HTTP_BODY_NONE;
	req->content_length = fr.content_length;
	req->keep_alive = keep_alive(req->version_minor, &fr);
	req->head_len = (size_t)head;
	return head;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req,
		       struct cdn_err *err)
{
	memset(req, 0, sizeof(*req));
	return parse_request(buf, len, req, err);
}

int http_parse_request_tunneled(const char *buf, size_t len, const char *host, uint16_t port,
				struct http_request *req, struct cdn_err *err)
{
	memset(req, 0, sizeof(*req));
	size_t hl = strlen(host);
	if (hl == 0 || hl > HTTP_MAX_HOST)
		return fail(err, HTTP_ERR_BAD_REQUEST, "bad tunnel host");
	req->tunnel_host = host;
	req->tunnel_port = port;
	/* check_host compares the Host field with these. */
	memcpy(req->host, host, hl + 1);
	req->host_is_ipv6 = strchr(host, ':') != NULL;
	req->port = port;
	return parse_request(buf, len, req, err);
}

int http_parse_response(const char *buf, size_t len, const char *request_method,
			struct http_response *res, struct cdn_err *err)
{
	memset(res, 0, sizeof(*res));
	int head = scan_head(buf, len, "status line", status_line, res, res->fields,
			     &res->n_fields, err);
	if (head <= 0)
		return head;
	struct framing fr;
	int r = check_framing(res->fields, res->n_fields, res->version_minor, &fr, err);
	if (r < 0)
		return r;
	bool is_head = request_method && strcmp(request_method, "HEAD") == 0;
	bool is_connect = request_method && strcmp(request_method, "CONNECT") == 0;
	int s = res->status;
	/* RFC 9112 6.3, in its order. */
	if (is_head || (s >= 100 && s < 200) || s == 204 || s == 304)
		res->body = HTTP_BODY_NONE;
	else if (is_connect && s >= 200 && s < 300)
		res->body = HTTP_BODY_NONE; /* the tunnel starts */
	else if (fr.te)
		res->body = HTTP_BODY_CHUNKED;
	else if (fr.cl)
		res->body = HTTP_BODY_LENGTH;
	else
		res->body = HTTP_BODY_CLOSE;
	res->content_length = res->body == HTTP_BODY_LENGTH ? fr.content_length : 0;
	res->keep_alive = res->body != HTTP_BODY_CLOSE && keep_alive(res->version_minor, &fr);
	res->head_len = (size_t)head;
	return head;
}

const struct http_field *http_find_field(const struct http_field *fields, size_t n,
					 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (ieq(fields[i].name, fields[i].name_len, name))
			return &fields[i];
	return NULL;
}

bool http_is_hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = {
		"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
	};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (ieq(name, len, hop[i]))
			return true;
	/* Every Proxy-* field (Proxy-Connection, Proxy-Authenticate,
	 * Proxy-Authorization, ...) is meant for this hop only; forwarding
	 * one would leak the agent's proxy credentials upstream. */
	return iprefix(name, len, "Proxy-");
}
