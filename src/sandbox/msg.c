/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The setup channel's messages (struct sb_msg, internal.h): here, the one
 * every child-side setup step fills in when it fails. It lives on its own,
 * depending on nothing, so that caps.c, landlock.c and mount.c, which
 * child.c calls, do not in turn need child.c: each links (and is unit
 * tested) without the rest of the child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sandbox/internal.h"

int sb_fail(struct sb_msg *fail, int errnum, const char *fmt, ...)
{
	if (errnum <= 0)
		errnum = EINVAL;
	memset(fail, 0, sizeof(*fail));
	fail->type = SB_MSG_SETUP_FAILED;
	fail->a = errnum;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fail->text, sizeof(fail->text), fmt, ap);
	va_end(ap);
	return -errnum;
}
