/*
 * pk/ratelimit.h - token buckets by key: each key may take `rate` tokens a
 * second on average and at most `burst` at once. Integer arithmetic only; a
 * key whose bucket is full carries no state worth keeping, so keys are
 * forgotten when the table fills up and their buckets are full. Safe to call
 * from several threads.
 */
#ifndef PK_RATELIMIT_H
#define PK_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/status.h"

typedef struct pk_ratelimit pk_ratelimit;

/*
 * Buckets of `burst` tokens refilled at `rate` a second, for up to about
 * `keys` keys at once (more are let through rather than tracked). rate 0:
 * no limit.
 */
pk_status pk_ratelimit_create(pk_ratelimit **out, uint64_t rate, uint64_t burst,
                              size_t keys) PK_MUST_CHECK;
void pk_ratelimit_destroy(pk_ratelimit *rl);

/* Take n tokens from key's bucket at now_ms (monotonic): true if it held them (now taken),
 * false if not (nothing is taken). Keys longer than 127 bytes are cut. */
bool pk_ratelimit_take(pk_ratelimit *rl, const char *key, uint64_t n, int64_t now_ms);

#endif
