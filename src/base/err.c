/* SPDX-License-Identifier: Apache-2.0 */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum cdn_err_kind cdn_err_kind_of(int errnum)
{
	switch (errnum < 0 ? -errnum : errnum) {
	case ENOENT: return CDN_ERR_NOT_FOUND;
	case EEXIST: return CDN_ERR_CONFLICT;
	case EACCES:
	case EPERM: return CDN_ERR_FORBIDDEN;
	case EIO:
	case ENOMEM:
	case ENOSPC: return CDN_ERR_INTERNAL;
	default: return CDN_ERR_USER;
	}
}

int cdn_err_vset(struct cdn_err *err, enum cdn_err_kind kind, int errnum, const char *fmt,
		 va_list ap)
{
	if (errnum < 0)
		errnum = -errnum;
	if (errnum == 0)
		errnum = EINVAL;
	if (err) {
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		err->code = errnum;
		err->kind = kind;
	}
	return -errnum;
}

int cdn_err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
{
	int e = errnum < 0 ? -errnum : errnum;
	va_list ap;
	va_start(ap, fmt);
	int r = cdn_err_vset(err, cdn_err_kind_of(e ? e : EINVAL), e, fmt, ap);
	va_end(ap);
	if (err && e > 0) {
		size_t n = strlen(err->msg);
		if (n + 1 < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(e));
	}
	return r;
}

int cdn_err_msg(struct cdn_err *err, int errnum, const char *fmt, ...)
{
	int e = errnum < 0 ? -errnum : errnum;
	va_list ap;
	va_start(ap, fmt);
	int r = cdn_err_vset(err, cdn_err_kind_of(e ? e : EINVAL), e, fmt, ap);
	va_end(ap);
	return r;
}

int cdn_err_kind_msg(struct cdn_err *err, enum cdn_err_kind kind, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cdn_err_vset(err, kind, errnum, fmt, ap);
	va_end(ap);
	return r;
}

int cdn_err_wrap(struct cdn_err *err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL;
	char prefix[CDN_ERR_MSG_MAX];
	char old[CDN_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	size_t pl = strlen(prefix);
	size_t ol = strlen(old);
	size_t cap = sizeof(err->msg) - 1;
	size_t n = 0;
	/* prefix ": " old, truncated to the buffer */
	for (size_t i = 0; i < pl && n < cap; i++)
		err->msg[n++] = prefix[i];
	if (ol) {
		for (const char *s = ": "; *s && n < cap; s++)
			err->msg[n++] = *s;
		for (size_t i = 0; i < ol && n < cap; i++)
			err->msg[n++] = old[i];
	}
	err->msg[n] = '\0';
	if (!err->code) {
		err->code = EINVAL;
		err->kind = CDN_ERR_USER;
	}
	return -err->code;
}

void cdn_err_clear(struct cdn_err *err)
{
	if (err) {
		err->code = 0;
		err->kind = CDN_ERR_USER;
		err->msg[0] = '\0';
	}
}
