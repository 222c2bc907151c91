/* Percentile sketch: the documented relative error bound, against exact percentiles. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pk/sketch.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank quantile of v[0..n) (sorted in place). */
static double exact(double *v, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    qsort(v, n, sizeof(double), cmp_double);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

static double uniform(void)
{
    return (double)rand() / RAND_MAX;
}

static bool within_bound(double got, double want)
{
    if (fabs(want) < PK_SKETCH_MIN)
        return fabs(got) < PK_SKETCH_MIN;
    return fabs(got - want) <= PK_SKETCH_ALPHA * fabs(want) * (1 + 1e-9);
}

typedef double (*gen_fn)(void);

static double gen_latency(void)
{
    return exp(3 + 2.5 * uniform()) * (1 + uniform());
}
static double gen_wide(void)
{
    return pow(10, -6 + 14 * uniform());
}
static double gen_mixed(void)
{
    double u = uniform();
    return u < 0.1 ? 0 : (u < 0.4 ? -gen_latency() : gen_latency());
}
static double gen_integers(void)
{
    return (double)(rand() % 50);
}

static void check_distribution(gen_fn gen, unsigned seed)
{
    enum { N = 20000 };
    static double samples[N], copy[N];
    static const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    pk_window w;
    pk_sketch s;

    srand(seed);
    pk_window_init(&w, 1000000000); /* one window holding everything */
    pk_sketch_init(&s);
    for (size_t i = 0; i < N; i++) {
        samples[i] = gen();
        cr_assert(pk_window_add(&w, (int64_t)i, samples[i]));
        cr_assert_eq(pk_sketch_add(&s, &w, (int64_t)i, (int64_t)i, samples[i]), 0);
    }
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        double want, got;
        memcpy(copy, samples, sizeof(samples));
        want = exact(copy, N, qs[k]);
        got = pk_sketch_quantile(&s, qs[k]);
        cr_assert(within_bound(got, want), "seed %u q=%g: sketch %.9g, exact %.9g (error %.4f%%)",
                  seed, qs[k], got, want, 100 * fabs(got - want) / fabs(want));
    }
    pk_sketch_free(&s);
}

Test(sketch, quantiles_within_one_percent_on_latency_like_data)
{
    for (unsigned seed = 1; seed <= 5; seed++)
        check_distribution(gen_latency, seed);
}

Test(sketch, quantiles_within_one_percent_over_fourteen_orders_of_magnitude)
{
    check_distribution(gen_wide, 7);
}

Test(sketch, negative_zero_and_repeated_values)
{
    check_distribution(gen_mixed, 11);
    check_distribution(gen_integers, 12);
}

Test(sketch, bins_keep_value_order)
{
    enum { N = 4000 };
    static double v[N];
    size_t n = 0;

    /* magnitudes from 1e-11 to 1e16 (beyond both ends), both signs, and zero */
    for (double m = 1e-11; m < 1e16 && n < N - 2; m *= 1.03) {
        v[n++] = m;
        v[n++] = -m;
    }
    v[n++] = 0;
    qsort(v, n, sizeof(double), cmp_double);
    for (size_t i = 1; i < n; i++) {
        int32_t a = pk_sketch_bin(v[i - 1]), b = pk_sketch_bin(v[i]);
        cr_assert_leq(a, b, "bin of %g above bin of %g", v[i - 1], v[i]);
        if (fabs(v[i]) >= PK_SKETCH_MIN && fabs(v[i]) <= PK_SKETCH_MAX)
            cr_assert(within_bound(pk_sketch_value(b), v[i]), "%g stands for %g",
                      pk_sketch_value(b), v[i]);
    }
}

/* The sketch over a sliding window answers for exactly the window's samples. */
Test(sketch, sliding_window_matches_exact_percentiles_of_the_window)
{
    enum { N = 4000 };
    static int64_t pos[N];
    static double val[N], in[N];
    pk_window w;
    pk_sketch s;
    int64_t t = 0, length = 60000;

    srand(5);
    pk_window_init(&w, length);
    pk_sketch_init(&s);
    for (size_t i = 0; i < N; i++) {
        size_t n = 0;
        t += rand() % 400;
        pos[i] = t;
        val[i] = gen_latency();
        if (pk_window_add(&w, t, val[i]))
            pk_sketch_add(&s, &w, t, t, val[i]);
        pk_sketch_expire(&s, &w, t);
        for (size_t k = 0; k <= i; k++) {
            int64_t start = (pos[k] / w.width) * w.width;
            if (start > t - length && start <= t)
                in[n++] = val[k];
        }
        if (i % 97 == 0 && n > 0) {
            double want = exact(in, n, 0.95), got = pk_sketch_quantile(&s, 0.95);
            cr_assert(within_bound(got, want), "step %zu: %g vs %g over %zu samples", i, got, want,
                      n);
            cr_assert_eq(s.n, n, "the sketch holds the window's %zu samples, not %llu", n,
                         (unsigned long long)s.n);
        }
    }
    pk_sketch_free(&s);
}

/* A window of span ms and its sketch, given n mixed samples step ms apart from 0. */
static void filled(pk_window *w, pk_sketch *s, int64_t span, int64_t n, int64_t step)
{
    pk_window_init(w, span);
    pk_sketch_init(s);
    for (int64_t i = 0; i < n; i++) {
        double v = gen_mixed();
        if (pk_window_add(w, i * step, v))
            pk_sketch_add(s, w, i * step, i * step, v);
    }
}

/* s as pk_sketch_write writes it (*len bytes, the caller frees). */
static uint8_t *written(const pk_sketch *s, size_t *len)
{
    uint8_t *buf;

    *len = pk_sketch_size(s);
    cr_assert_not_null(buf = malloc(*len));
    pk_sketch_write(s, buf);
    return buf;
}

Test(sketch, serialization_round_trips_and_rejects_garbage)
{
    pk_window w;
    pk_sketch s, back;
    uint8_t *buf;
    size_t len;

    srand(3);
    filled(&w, &s, 32000, 5000, 10);
    buf = written(&s, &len);
    cr_assert_eq(pk_sketch_read(&back, buf, len), len);
    cr_assert_eq(back.n, s.n);
    cr_assert_float_eq(pk_sketch_quantile(&back, 0.9), pk_sketch_quantile(&s, 0.9), 0);
    pk_sketch_free(&back); /* a read starts from an empty sketch: what it held is freed first */
    cr_assert_eq(pk_sketch_read(&back, buf, len - 1), 0, "truncated");
    pk_sketch_free(&back);
    free(buf);
    pk_sketch_free(&s);
}

static void assert_same_bins(const pk_bins *a, const pk_bins *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %u bins against %u", what, a->n, b->n);
    for (uint32_t k = 0; k < a->n; k++) {
        cr_assert_eq(a->bin[k], b->bin[k], "%s: bin %u", what, k);
        cr_assert_eq(a->count[k], b->count[k], "%s: count of bin %u", what, k);
    }
}

/* A sketch read back has, bucket by bucket and in its sum, the very bins it was written
 * with, and buckets turning over afterwards leave the same sum in both. */
Test(sketch, read_back_sums_the_same_bins_and_turns_over_alike)
{
    pk_window w;
    pk_sketch s, back;
    uint8_t *buf;
    size_t len;

    srand(11);
    filled(&w, &s, 3200, 3000, 1);
    buf = written(&s, &len);
    cr_assert_eq(pk_sketch_read(&back, buf, len), len);
    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        assert_same_bins(&back.bucket[i], &s.bucket[i], "bucket");
    assert_same_bins(&back.total, &s.total, "sum");
    for (int64_t t = 3000; t < 6400; t += 50) {
        double v = gen_mixed();
        pk_sketch_expire(&s, &w, t);
        pk_sketch_expire(&back, &w, t);
        cr_assert_eq(pk_sketch_add(&s, &w, t, t, v), 0);
        cr_assert_eq(pk_sketch_add(&back, &w, t, t, v), 0);
        assert_same_bins(&back.total, &s.total, "sum after turning over");
        cr_assert_eq(back.n, s.n);
    }
    free(buf);
    pk_sketch_free(&back);
    pk_sketch_free(&s);
}

/* Entries out of key order (not what pk_sketch_write makes) are still summed, not refused
 * and not duplicated. */
Test(sketch, read_accepts_bins_out_of_order)
{
    pk_sketch back;
    uint8_t buf[PK_WIN_BUCKETS * 12 + 3 * 8];
    int64_t start = 0, none = -1;
    uint32_t three = 3, zero = 0;
    int32_t keys[3] = {40, 7, 40};
    uint32_t counts[3] = {2, 5, 1};
    size_t off = 0;

    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        memcpy(buf + off, i == 0 ? &start : &none, 8);
        memcpy(buf + off + 8, i == 0 ? &three : &zero, 4);
        off += 12;
        for (int k = 0; i == 0 && k < 3; k++, off += 8) {
            memcpy(buf + off, &keys[k], 4);
            memcpy(buf + off + 4, &counts[k], 4);
        }
    }
    cr_assert_eq(pk_sketch_read(&back, buf, off), off);
    cr_assert_eq(back.n, 8);
    cr_assert_eq(back.bucket[0].n, 2);
    cr_assert_eq(back.total.n, 2);
    cr_assert_eq(back.total.bin[0], 7);
    cr_assert_eq(back.total.count[0], 5);
    cr_assert_eq(back.total.bin[1], 40);
    cr_assert_eq(back.total.count[1], 3);
    pk_sketch_free(&back);
}
