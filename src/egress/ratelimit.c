/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exact sliding-window rate limits (contract in ratelimit.h).
 *
 * Each key keeps the timestamps of the requests it admitted, oldest first,
 * in a ring that never holds more than the key's limit: to decide whether
 * "fewer than N in the last 60 s" holds, only the newest N admissions can
 * matter. A request first drops the timestamps that left the window (each
 * one is dropped once, so this is O(1) amortised), then compares the count
 * with the limit. When the key is full, the slot that frees up first is
 * the oldest timestamp that must leave for the count to drop below the
 * limit, and the wait until then is the Retry-After.
 *
 * An approximation (fixed windows, or the two-window weighted estimate)
 * would let a burst of 2N through around a window edge; an agent that is
 * told "60 a minute" should not be able to send 120 in two seconds.
 *
 * Memory: rings start small and double as a key's admissions grow, up to
 * its limit, and halve again when they empty out, so a key with a large
 * limit and little traffic costs little. Keys live in a fixed-size hash
 * table with a least-recently-used list; the RATELIMIT_MAX_KEYS+1-th key
 * evicts the least recently used one, which forgets its history (the only
 * place the limiter can be lenient, and only with thousands of live keys).
 *
 * Single-threaded: the egress engine is one event loop and calls this from
 * it only. There is no locking.
 */
#include "egress/ratelimit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Twice the key bound keeps hash chains short. A power of two. */
#define RL_BUCKETS (2 * RATELIMIT_MAX_KEYS)
/* Smallest ring allocated; rings never shrink below it. */
#define RL_MIN_CAP 8

struct rl_entry {
	struct rl_entry *hnext;	      /* hash chain */
	struct rl_entry *prev, *next; /* LRU list, most recent first */
	uint64_t *ring;		      /* admission times, ring[head] is the oldest */
	uint32_t cap, head, count;
	uint32_t hash;
	char key[];
};

struct ratelimit {
	struct rl_entry *buckets[RL_BUCKETS];
	struct rl_entry *lru_first, *lru_last;
	size_t n_keys;
};

/* FNV-1a. Keys are policy rule names, not chosen by the agent, so a keyed
 * hash against flooding is not needed. */
static uint32_t hash_key(const char *key, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 16777619u;
	}
	return h;
}

struct ratelimit *ratelimit_new(void)
{
	return calloc(1, sizeof(struct ratelimit));
}

static void entry_free(struct rl_entry *e)
{
	free(e->ring);
	free(e);
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	struct rl_entry *e = rl->lru_first;
	while (e) {
		struct rl_entry *next = e->next;
		entry_free(e);
		e = next;
	}
	free(rl);
}

static void lru_unlink(struct ratelimit *rl, struct rl_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		rl->lru_first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		rl->lru_last = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct ratelimit *rl, struct rl_entry *e)
{
	e->prev = NULL;
	e->next = rl->lru_first;
	if (rl->lru_first)
		rl->lru_first->prev = e;
	rl->lru_first = e;
	if (!rl->lru_last)
		rl->lru_last = e;
}

static struct rl_entry *lookup(struct ratelimit *rl, const char *key, uint32_t h)
{
	for (struct rl_entry *e = rl->buckets[h & (RL_BUCKETS - 1)]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void evict_lru(struct ratelimit *rl)
{
	struct rl_entry *victim = rl->lru_last;
	if (!victim)
		return;
	struct rl_entry **pp = &rl->buckets[victim->hash & (RL_BUCKETS - 1)];
	while (*pp != victim)
		pp = &(*pp)->hnext;
	*pp = victim->hnext;
	lru_unlink(rl, victim);
	entry_free(victim);
	rl->n_keys--;
}

static struct rl_entry *create(struct ratelimit *rl, const char *key, size_t len, uint32_t h)
{
	if (rl->n_keys >= RATELIMIT_MAX_KEYS)
		evict_lru(rl);
	struct rl_entry *e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->hnext = rl->buckets[h & (RL_BUCKETS - 1)];
	rl->buckets[h & (RL_BUCKETS - 1)] = e;
	lru_push_front(rl, e);
	rl->n_keys++;
	return e;
}

static uint64_t ring_at(const struct rl_entry *e, uint32_t i)
{
	uint32_t idx = e->head + i;
	if (idx >= e->cap)
		idx -= e->cap;
	return e->ring[idx];
}

/* Reallocates the ring to new_cap (>= count), oldest first at index 0. */
static bool ring_resize(struct rl_entry *e, uint32_t new_cap)
{
	uint64_t *r = malloc((size_t)new_cap * sizeof(*r));
	if (!r)
		return false;
	for (uint32_t i = 0; i < e->count; i++)
		r[i] = ring_at(e, i);
	free(e->ring);
	e->ring = r;
	e->cap = new_cap;
	e->head = 0;
	return true;
}

static void drop_oldest(struct rl_entry *e, uint32_t n)
{
	e->head += n;
	if (e->cap && e->head >= e->cap)
		e->head -= e->cap;
	e->count -= n;
	if (e->count == 0)
		e->head = 0;
}

/* t is in the window (now - 60 s, now]. Written without t + 60 s, which
 * could wrap. A t after now (a clock that stepped back) still counts. */
static bool in_window(uint64_t t, uint64_t now_ms)
{
	return t > now_ms || now_ms - t < RATELIMIT_WINDOW_MS;
}

/* Drops the admissions that left the window. */
static void expire(struct rl_entry *e, uint64_t now_ms)
{
	uint32_t n = 0;
	while (n < e->count && !in_window(ring_at(e, n), now_ms))
		n++;
	drop_oldest(e, n);
}

/*
 * Fits the ring to a (possibly changed) limit. Only the newest `limit`
 * admissions can decide anything, so a lowered limit keeps those and the
 * answer stays exact. Shrinking is best effort: on allocation failure the
 * larger ring is kept.
 */
static void fit_ring(struct rl_entry *e, uint32_t limit)
{
	if (e->count > limit)
		drop_oldest(e, e->count - limit);
	uint32_t want = e->cap;
	if (want > limit)
		want = limit;
	/* Halve a ring that is mostly empty (after a burst). */
	while (want > RL_MIN_CAP && e->count <= want / 4)
		want /= 2;
	if (want < e->cap && want >= e->count && want > 0)
		ring_resize(e, want);
}

/* The wait (ms, > 0) until fewer than limit admissions are in the window,
 * or 0 when that holds now. */
static int64_t wait_ms(const struct rl_entry *e, uint32_t limit, uint64_t now_ms)
{
	if (e->count < limit)
		return 0;
	/* The (count - limit)-th oldest must leave: after that, limit - 1
	 * remain. */
	uint64_t t = ring_at(e, e->count - limit);
	/* A clock that stepped back (t > now) waits at most one window; the
	 * engine's clock is monotonic, this is for safety. */
	if (t > now_ms)
		return RATELIMIT_WINDOW_MS;
	uint64_t age = now_ms - t; /* < RATELIMIT_WINDOW_MS after expire() */
	return age >= RATELIMIT_WINDOW_MS ? 1 : (int64_t)(RATELIMIT_WINDOW_MS - age);
}

static int64_t rate(struct ratelimit *rl, const char *key, uint32_t limit, uint64_t now_ms,
		    bool count)
{
	/* Without a limiter or a key there is nothing to check against:
	 * refuse for a window rather than admit unmetered. */
	if (!rl || !key)
		return RATELIMIT_WINDOW_MS;
	if (limit == 0)
		return 0;
	if (limit > RATELIMIT_MAX_PER_MINUTE)
		limit = RATELIMIT_MAX_PER_MINUTE;
	size_t len = strnlen(key, RATELIMIT_MAX_KEY_LEN + 1);
	if (len > RATELIMIT_MAX_KEY_LEN)
		return RATELIMIT_WINDOW_MS;
	uint32_t h = hash_key(key, len);
	struct rl_entry *e = lookup(rl, key, h);
	if (!e && !count)
		return 0; /* never admitted anything */
	if (!e && !(e = create(rl, key, len, h)))
		return RATELIMIT_WINDOW_MS; /* out of memory: fail closed */
	if (rl->lru_first != e) {
		lru_unlink(rl, e);
		lru_push_front(rl, e);
	}
	expire(e, now_ms);
	if (!count)
		return wait_ms(e, limit, now_ms);
	fit_ring(e, limit);
	int64_t w = wait_ms(e, limit, now_ms);
	if (w > 0)
		return w;
	if (e->count == e->cap) {
		uint32_t cap = e->cap ? e->cap * 2 : RL_MIN_CAP;
		if (cap > limit)
			cap = limit;
		if (!ring_resize(e, cap))
			return RATELIMIT_WINDOW_MS; /* cannot record it: fail closed */
	}
	uint32_t idx = e->head + e->count;
	if (idx >= e->cap)
		idx -= e->cap;
	e->ring[idx] = now_ms;
	e->count++;
	return 0;
}

int64_t ratelimit_take(struct ratelimit *rl, const char *key, uint32_t limit, uint64_t now_ms)
{
	return rate(rl, key, limit, now_ms, true);
}

int64_t ratelimit_check(struct ratelimit *rl, const char *key, uint32_t limit, uint64_t now_ms)
{
	return rate(rl, key, limit, now_ms, false);
}
