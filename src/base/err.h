/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors are values. Library functions take a `struct cdn_err *`, return a
 * negative errno on failure and leave a message that names the step and the
 * reason ("mount /proc: Operation not permitted"). Callers add context with
 * cdn_err_wrap() on the way up; only the command decides to exit.
 *
 * Every error also has a kind, which is what a caller tells its own caller
 * (serve maps it to an HTTP status, the CLI to an exit status, each in one
 * place). cdn_err_set and cdn_err_msg take it from the errno; cdn_err_vset
 * is told.
 */
#ifndef CORDON_BASE_ERR_H
#define CORDON_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define CDN_ERR_MSG_MAX 512

enum cdn_err_kind {
	CDN_ERR_USER,	   /* the request is wrong: bad input, a limit, a refusal of policy */
	CDN_ERR_NOT_FOUND, /* what it names does not exist */
	CDN_ERR_CONFLICT,  /* it exists already, or another change came first */
	CDN_ERR_FORBIDDEN, /* the caller may not */
	CDN_ERR_INTERNAL,  /* cordon or the machine failed: I/O, memory, disk space */
};

struct cdn_err {
	int code; /* positive errno, 0 when unset */
	enum cdn_err_kind kind;
	char msg[CDN_ERR_MSG_MAX];
};

/* The kind an errno stands for: ENOENT not found; EEXIST conflict; EACCES
 * and EPERM forbidden; EIO, ENOMEM and ENOSPC internal; the rest user. */
enum cdn_err_kind cdn_err_kind_of(int errnum);

/*
 * Record an error: errnum is a positive errno (or its negation), the
 * reason; its strerror text is appended after ": ". Returns -errnum, so
 * callers can write `return cdn_err_set(err, errno, "open %s", path);`.
 * err may be NULL. (An errnum of 0, a caller's bug, is recorded as EINVAL.)
 */
int cdn_err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cdn_err_set, without the ": strerror" suffix: for messages that
 * already say everything. */
int cdn_err_msg(struct cdn_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cdn_err_msg, with the kind given and the arguments in a va_list:
 * what a module's own error helper (one that adds a file name and line
 * to every message, or returns a status of its own) is built on. */
int cdn_err_vset(struct cdn_err *err, enum cdn_err_kind kind, int errnum, const char *fmt,
		 va_list ap) __attribute__((format(printf, 4, 0)));

/* cdn_err_vset's variadic form: a message that says everything, with a
 * kind the errno alone would not give ("cannot create a directory of the
 * state" is the server's failure whatever the errno). */
int cdn_err_kind_msg(struct cdn_err *err, enum cdn_err_kind kind, int errnum, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

/* Prefix the current message with context: "ctx: old message". The code
 * and kind stay. */
int cdn_err_wrap(struct cdn_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reset to "no error". */
void cdn_err_clear(struct cdn_err *err);

#endif
