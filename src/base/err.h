/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors are values. Library functions take a `struct cdn_err *`, return a
 * negative errno on failure and leave a message that names the step and the
 * reason ("mount /proc: Operation not permitted"). Callers add context with
 * cdn_err_wrap() on the way up; only the command decides to exit.
 */
#ifndef CORDON_BASE_ERR_H
#define CORDON_BASE_ERR_H

#include <stddef.h>

#define CDN_ERR_MSG_MAX 512

struct cdn_err {
	int code; /* positive errno, 0 when unset */
	char msg[CDN_ERR_MSG_MAX];
};

/*
 * Record an error. When errnum > 0 its strerror text is appended after
 * ": ". Returns -errnum, or -EINVAL when errnum is 0, so callers can write
 * `return cdn_err_set(err, errno, "open %s", path);`. err may be NULL.
 */
int cdn_err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cdn_err_set, without the ": strerror" suffix: for messages that
 * already say everything. */
int cdn_err_msg(struct cdn_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the current message with context: "ctx: old message". */
int cdn_err_wrap(struct cdn_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reset to "no error". */
void cdn_err_clear(struct cdn_err *err);

#endif
