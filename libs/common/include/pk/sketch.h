/*
 * sketch - percentiles over a sliding window with a guaranteed relative
 * error, in memory that does not grow with the number of samples.
 *
 * Values are mapped to logarithmic bins of ratio gamma = (1 + a) / (1 - a),
 * a = PK_SKETCH_ALPHA (1 %): bin i holds values in (gamma^(i-1), gamma^i] and
 * is represented by 2 gamma^i / (gamma + 1), which is within a of every value
 * in the bin. Negative values use the same bins on their magnitude; values
 * with magnitude below PK_SKETCH_MIN count as zero; magnitudes above
 * PK_SKETCH_MAX are clamped to it. So, for any q, the nearest-rank q-quantile
 * reported differs from the exact nearest-rank q-quantile of the same samples
 * by at most a times its magnitude (for values within [MIN, MAX]).
 *
 * Bins are counted per window bucket (the same buckets as pk_window) and in a
 * running total over the window; when a bucket leaves the window its counts
 * are subtracted. A sample and a query cost O(distinct bins), never O(samples)
 * or O(window length).
 */
#ifndef PK_SKETCH_H
#define PK_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#include "pk/window.h"

#define PK_SKETCH_ALPHA 0.01
#define PK_SKETCH_MIN   1e-9
#define PK_SKETCH_MAX   1e15

/* A sparse, sorted map of bin -> count. Bins: negatives as -(i+1)... see sketch.c. */
typedef struct pk_bins {
    int32_t *bin;    /* sorted keys */
    uint32_t *count; /* counts */
    uint32_t n;      /* entries */
    uint32_t cap;    /* allocated */
} pk_bins;

typedef struct pk_sketch {
    int64_t start[PK_WIN_BUCKETS];  /* start of the window bucket each map holds; -1 empty */
    pk_bins bucket[PK_WIN_BUCKETS]; /* per window bucket */
    pk_bins total;                  /* sum over the buckets in the window */
    uint64_t n;                     /* samples in total */
} pk_sketch;

void pk_sketch_init(pk_sketch *s);
void pk_sketch_free(pk_sketch *s);

/*
 * Add value at position pos of window w (the same window the samples' counts
 * live in, already advanced with pk_window_add). Buckets that left the window
 * at now are dropped first.
 */
int pk_sketch_add(pk_sketch *s, const pk_window *w, int64_t pos, int64_t now, double value);

/* Drop buckets that are no longer in w at now (before a query). */
void pk_sketch_expire(pk_sketch *s, const pk_window *w, int64_t now);

/* Nearest-rank quantile q in (0, 1] of the samples in the window; 0 if none. */
double pk_sketch_quantile(const pk_sketch *s, double q);

/* Serialized size, serialize into buf (size bytes), and parse back. */
size_t pk_sketch_size(const pk_sketch *s);
void pk_sketch_write(const pk_sketch *s, uint8_t *buf);
/* Returns bytes read, or 0 if buf is not a valid sketch. */
size_t pk_sketch_read(pk_sketch *s, const uint8_t *buf, size_t len);

/* The bin of a value and the value a bin stands for (exposed for tests). */
int32_t pk_sketch_bin(double value);
double pk_sketch_value(int32_t bin);

#endif
