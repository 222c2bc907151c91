/*
 * pk/clock.h - wall and monotonic time in milliseconds, and durations as text.
 */
#ifndef PK_CLOCK_H
#define PK_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "pk/status.h"

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t pk_now_ms(void);

/* Monotonic milliseconds, for timeouts and latency; not comparable across hosts. */
int64_t pk_mono_ms(void);

/* Monotonic nanoseconds, for benchmarks. */
int64_t pk_mono_ns(void);

/*
 * Parse a duration such as "500ms", "5s", "1m", "1h", "7d", "1h30m" into
 * milliseconds. A bare number is refused: the unit is required. Returns
 * PK_EINVAL for empty text, unknown units, zero-length numbers or overflow.
 */
pk_status pk_duration_parse(const char *text, int64_t *out_ms) PK_MUST_CHECK;

/* Write the shortest exact form of ms ("1h", "90s", "250ms") into buf. */
void pk_duration_format(int64_t ms, char *buf, size_t len);

/* Unix ms as "2026-11-26 08:23:15.438Z" (UTC) into buf; "-" for 0 or less. */
void pk_clock_format(int64_t ms, char *buf, size_t len);

/* Sleep for ms milliseconds (interrupted early by a signal). */
void pk_sleep_ms(int64_t ms);

#endif
