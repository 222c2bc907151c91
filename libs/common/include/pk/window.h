/*
 * window - a sliding window of samples kept as a ring of buckets, so that
 * adding a sample and reading an aggregate cost the same whatever the window
 * length, and memory per window is fixed.
 *
 * A window of length L (milliseconds, or events for last-N windows) is split
 * into PK_WIN_BUCKETS buckets of width ceil(L / PK_WIN_BUCKETS). The window
 * at position t holds the buckets whose start lies in (t - L, t]: it slides a
 * bucket at a time, so it covers between L - width and L of history.
 * The struct is plain data: it is stored in LMDB as is.
 */
#ifndef PK_WINDOW_H
#define PK_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/pact.h"

#define PK_WIN_BUCKETS 32

typedef struct pk_win_bucket {
    int64_t start;  /* first position covered; -1 when empty */
    uint32_t count; /* samples */
    uint32_t trues; /* samples that were non-zero (for rates) */
    double sum;     /* sum of samples */
    double min;     /* smallest sample */
    double max;     /* largest sample */
} pk_win_bucket;

typedef struct pk_window {
    int64_t length;                  /* window length: ms, or events */
    int64_t width;                   /* bucket width in the same unit */
    int64_t events;                  /* events seen so far (position of last-N windows) */
    int64_t newest;                  /* position of the newest sample */
    pk_win_bucket b[PK_WIN_BUCKETS]; /* ring indexed by (start / width) % PK_WIN_BUCKETS */
} pk_window;

/* An empty window of the given length (ms, or events when by_events). */
void pk_window_init(pk_window *w, int64_t length);

/*
 * Add a sample at position pos (event time in ms for timed windows; pass
 * w->events for last-N windows, which pk_window_add then advances). Samples
 * older than the window are ignored (false); out-of-order samples within it
 * are kept (true).
 */
bool pk_window_add(pk_window *w, int64_t pos, double value);

/*
 * Compact form for storage: the four header fields, a bitmap of the buckets
 * in use, and those buckets only (a sparse window costs little; a full one
 * 1,316 bytes). pk_window_unpack returns the bytes read, or 0 if buf does not
 * hold a window.
 */
size_t pk_window_packed_size(const pk_window *w);
void pk_window_pack(const pk_window *w, uint8_t *buf);
size_t pk_window_unpack(pk_window *w, const uint8_t *buf, size_t len);

/* Summary of the window as seen at position now. */
typedef struct pk_win_summary {
    uint64_t count; /* samples in the window */
    uint64_t trues; /* non-zero samples */
    double sum;     /* their sum */
    double min;     /* smallest (0 if none) */
    double max;     /* largest (0 if none) */
} pk_win_summary;

void pk_window_summary(const pk_window *w, int64_t now, pk_win_summary *out);

/* Aggregate value of the summary (count, sum, mean, min, max, rate); 0 if empty. */
double pk_window_aggregate(const pk_win_summary *s, pk_aggregate agg);

#endif
