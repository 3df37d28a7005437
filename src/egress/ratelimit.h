/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sliding-window rate limits: at most N requests in any 60-second window,
 * per key (a domain rule) and globally. Exact, not approximated: each key
 * keeps the timestamps of its last N admitted requests in a ring.
 *
 * Bounded: at most RATELIMIT_MAX_KEYS keys (least recently used keys are
 * evicted) and RATELIMIT_MAX_PER_MINUTE per key (larger limits are clamped
 * to it). A key longer than RATELIMIT_MAX_KEY_LEN bytes is refused (the
 * call returns RATELIMIT_WINDOW_MS), and so is any request the limiter
 * cannot record for lack of memory: it fails closed.
 *
 * now_ms must come from a monotonic clock. Not thread-safe: the engine's
 * single event loop is the only caller.
 */
#ifndef CORDON_EGRESS_RATELIMIT_H
#define CORDON_EGRESS_RATELIMIT_H

#include <stdint.h>

#define RATELIMIT_WINDOW_MS 60000
#define RATELIMIT_MAX_KEYS 4096
#define RATELIMIT_MAX_PER_MINUTE 100000
#define RATELIMIT_MAX_KEY_LEN 1024 /* bytes, without the NUL */

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *rl);

/*
 * Admits one request for key at now_ms when fewer than limit requests were
 * admitted in (now_ms - 60 s, now_ms]. Returns 0 when admitted (and counts
 * it), otherwise the milliseconds until a slot frees up (> 0), for
 * Retry-After. limit 0 means unlimited.
 */
int64_t ratelimit_take(struct ratelimit *rl, const char *key, uint32_t limit, uint64_t now_ms);

/* Like ratelimit_take, but only checks, without counting. */
int64_t ratelimit_check(struct ratelimit *rl, const char *key, uint32_t limit, uint64_t now_ms);

#endif
