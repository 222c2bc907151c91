/* Bucketed windows against a straightforward computation of the same definition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pk/window.h"

typedef struct sample {
    int64_t pos;
    double v;
} sample;

/* The documented definition: a sample counts at `now` if its bucket starts in (now - L, now]. */
static void naive(const sample *s, size_t n, int64_t length, int64_t width, int64_t now,
                  pk_win_summary *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        int64_t start = (s[i].pos / width) * width;
        if (start > now - length && start <= now) {
            if (out->count == 0 || s[i].v < out->min)
                out->min = s[i].v;
            if (out->count == 0 || s[i].v > out->max)
                out->max = s[i].v;
            out->count++;
            out->trues += s[i].v != 0;
            out->sum += s[i].v;
        }
    }
}

static void check_random(int64_t length, int64_t max_gap, unsigned seed)
{
    enum { N = 3000 };
    static sample s[N];
    pk_window w;
    int64_t t = 1000000;

    srand(seed);
    pk_window_init(&w, length);
    for (size_t i = 0; i < N; i++) {
        pk_win_summary got, want;
        t += rand() % max_gap;
        s[i].pos = t;
        s[i].v = (rand() % 5 == 0) ? 0 : (double)(rand() % 10000) / 7.0;
        pk_window_add(&w, t, s[i].v);
        pk_window_summary(&w, t, &got);
        naive(s, i + 1, length, w.width, t, &want);
        cr_assert_eq(got.count, want.count, "sample %zu: count %llu vs %llu", i,
                     (unsigned long long)got.count, (unsigned long long)want.count);
        cr_assert_eq(got.trues, want.trues);
        cr_assert_float_eq(got.sum, want.sum, 1e-6 * (1 + fabs(want.sum)));
        cr_assert_float_eq(got.min, want.min, 1e-12);
        cr_assert_float_eq(got.max, want.max, 1e-12);
    }
}

Test(window, matches_the_definition_on_random_data_short_window)
{
    check_random(60000, 2500, 1);
}

Test(window, matches_the_definition_on_random_data_long_window)
{
    check_random(30LL * 86400000, 3600000, 2);
}

Test(window, matches_the_definition_with_bursts_and_gaps)
{
    check_random(10000, 40000, 3); /* gaps longer than the window empty it */
}

Test(window, oldest_bucket_expires_exactly_at_the_window_length)
{
    pk_window w;
    pk_win_summary s;

    pk_window_init(&w, 32000); /* 32 buckets of 1 s */
    cr_assert_eq(w.width, 1000);
    pk_window_add(&w, 0, 5);
    pk_window_add(&w, 31999, 7);
    pk_window_summary(&w, 31999, &s);
    cr_assert_eq(s.count, 2);
    pk_window_summary(&w, 32000, &s);
    cr_assert_eq(s.count, 1, "the bucket starting at 0 leaves at 32000");
    cr_assert_float_eq(s.sum, 7, 1e-12);
}

Test(window, late_samples_count_if_still_inside_and_are_dropped_otherwise)
{
    pk_window w;
    pk_win_summary s;

    pk_window_init(&w, 32000);
    pk_window_add(&w, 100000, 1);
    pk_window_add(&w, 90000, 2); /* late but inside */
    pk_window_add(&w, 50000, 4); /* older than the window: ignored */
    pk_window_summary(&w, 100000, &s);
    cr_assert_eq(s.count, 2);
    cr_assert_float_eq(s.sum, 3, 1e-12);
}

Test(window, last_n_events_window)
{
    pk_window w;
    pk_win_summary s;

    pk_window_init(&w, 64); /* last 64 events, buckets of 2 */
    for (int i = 0; i < 100; i++)
        pk_window_add(&w, w.events, i);
    pk_window_summary(&w, w.events - 1, &s);
    cr_assert_eq(s.count, 64);
    cr_assert_float_eq(s.min, 36, 1e-12);
    cr_assert_float_eq(s.max, 99, 1e-12);
}

Test(window, aggregates)
{
    pk_win_summary s = {.count = 4, .trues = 1, .sum = 10, .min = 1, .max = 4};
    pk_win_summary empty = {0};

    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_COUNT), 4, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_SUM), 10, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_MEAN), 2.5, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_MIN), 1, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_MAX), 4, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&s, PK_AGG_RATE), 0.25, 1e-12);
    cr_assert_float_eq(pk_window_aggregate(&empty, PK_AGG_MEAN), 0, 1e-12);
}

Test(window, packs_only_the_buckets_in_use_and_reads_back_the_same)
{
    pk_window w, back;
    uint8_t buf[sizeof(pk_window) + 64];
    size_t n;

    pk_window_init(&w, 3600000);
    n = pk_window_packed_size(&w);
    cr_assert_eq(n, 36, "an empty window is its header and bitmap");
    pk_window_pack(&w, buf);
    cr_assert_eq(pk_window_unpack(&back, buf, n), n);
    cr_assert(memcmp(&w, &back, sizeof(w)) == 0);
    /* a few samples: a few buckets */
    pk_window_add(&w, 1000, 5);
    pk_window_add(&w, 1500, 7);
    pk_window_add(&w, 900000, 1);
    n = pk_window_packed_size(&w);
    cr_assert_eq(n, 36 + 2 * 40);
    pk_window_pack(&w, buf);
    cr_assert_eq(pk_window_unpack(&back, buf, n), n);
    cr_assert(memcmp(&w, &back, sizeof(w)) == 0);
    /* every bucket */
    for (int i = 0; i < 64; i++)
        pk_window_add(&w, 900000 + i * 112500, i);
    n = pk_window_packed_size(&w);
    cr_assert_eq(n, 36 + 32 * 40);
    pk_window_pack(&w, buf);
    cr_assert_eq(pk_window_unpack(&back, buf, n), n);
    cr_assert(memcmp(&w, &back, sizeof(w)) == 0);
    /* short or damaged input is refused */
    cr_assert_eq(pk_window_unpack(&back, buf, n - 1), 0);
    cr_assert_eq(pk_window_unpack(&back, buf, 10), 0);
}
