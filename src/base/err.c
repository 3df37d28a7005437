/* SPDX-License-Identifier: Apache-2.0 */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cdn_err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
{
	if (errnum < 0)
		errnum = -errnum;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		if (errnum > 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s",
				 strerror(errnum));
		err->code = errnum ? errnum : EINVAL;
	}
	return errnum ? -errnum : -EINVAL;
}

int cdn_err_msg(struct cdn_err *err, int errnum, const char *fmt, ...)
{
	if (errnum < 0)
		errnum = -errnum;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = errnum ? errnum : EINVAL;
	}
	return errnum ? -errnum : -EINVAL;
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
	if (!err->code)
		err->code = EINVAL;
	return -err->code;
}

void cdn_err_clear(struct cdn_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
