#include "pk/sketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Bin keys, in value order: a value of magnitude in log bin i (i >= I_MIN)
 * has key k = 1 + i - I_MIN if positive and -k if negative; zero is key 0.
 * So keys sort exactly as the values they stand for.
 */
static double gamma_value(void)
{
    return (1 + PK_SKETCH_ALPHA) / (1 - PK_SKETCH_ALPHA);
}

static double log_gamma(void)
{
    static double lg;

    if (lg == 0)
        lg = log(gamma_value());
    return lg;
}

static int32_t min_index(void)
{
    return (int32_t)ceil(log(PK_SKETCH_MIN) / log_gamma());
}

int32_t pk_sketch_bin(double value)
{
    double m = fabs(value);
    int32_t i, k, mi = min_index();

    if (!(m >= PK_SKETCH_MIN)) /* also catches NaN */
        return 0;
    if (m > PK_SKETCH_MAX)
        m = PK_SKETCH_MAX;
    i = (int32_t)ceil(log(m) / log_gamma());
    if (i < mi)
        i = mi;
    k = 1 + i - mi;
    return value > 0 ? k : -k;
}

double pk_sketch_value(int32_t key)
{
    int32_t i;
    double g = gamma_value(), v;

    if (key == 0)
        return 0;
    i = (key > 0 ? key : -key) - 1 + min_index();
    v = 2 * pow(g, i) / (g + 1);
    return key > 0 ? v : -v;
}

/* --- sparse maps -------------------------------------------------------------- */

static void bins_free(pk_bins *b)
{
    free(b->bin);
    free(b->count);
    memset(b, 0, sizeof(*b));
}

static uint32_t bins_find(const pk_bins *b, int32_t key, int *found)
{
    uint32_t lo = 0, hi = b->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (b->bin[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < b->n && b->bin[lo] == key;
    return lo;
}

/* Room for at least cap entries; 0, or -1 without memory. */
static int bins_reserve(pk_bins *b, uint32_t cap)
{
    int32_t *nb;
    uint32_t *nc;

    if (cap <= b->cap)
        return 0;
    if (cap < b->cap * 2)
        cap = b->cap * 2;
    if (cap < 8)
        cap = 8;
    if (!(nb = realloc(b->bin, cap * sizeof(*nb))))
        return -1;
    b->bin = nb;
    if (!(nc = realloc(b->count, cap * sizeof(*nc))))
        return -1;
    b->count = nc;
    b->cap = cap;
    return 0;
}

/*
 * dst += src in one pass over both (both sorted), instead of a search and a
 * move of the entries after it for each of src's keys: merged from the ends
 * towards the front, in place.
 */
static int bins_merge_add(pk_bins *dst, const pk_bins *src)
{
    uint32_t i = dst->n, j = src->n, k = dst->n + src->n;

    if (src->n == 0)
        return 0;
    if (bins_reserve(dst, dst->n + src->n) != 0)
        return -1;
    while (j > 0) {
        k--;
        if (i > 0 && dst->bin[i - 1] >= src->bin[j - 1]) {
            i--;
            dst->bin[k] = dst->bin[i];
            dst->count[k] = dst->count[i];
            if (dst->bin[i] == src->bin[j - 1]) /* a key both have: one entry, summed */
                dst->count[k] += src->count[--j];
        } else {
            j--;
            dst->bin[k] = src->bin[j];
            dst->count[k] = src->count[j];
        }
    }
    /* what is left of dst (i entries) is already in place, in front of k; close the gap the
     * shared keys left */
    if (k > i) {
        memmove(dst->bin + i, dst->bin + k, (dst->n + src->n - k) * sizeof(*dst->bin));
        memmove(dst->count + i, dst->count + k, (dst->n + src->n - k) * sizeof(*dst->count));
    }
    dst->n = i + (dst->n + src->n - k);
    return 0;
}

/* dst -= src in one pass (both sorted); entries reaching zero are removed, keys dst lacks
 * are ignored. */
static void bins_merge_sub(pk_bins *dst, const pk_bins *src)
{
    uint32_t i = 0, j = 0, k = 0;

    while (i < dst->n) {
        int64_t c = dst->count[i];
        while (j < src->n && src->bin[j] < dst->bin[i])
            j++;
        if (j < src->n && src->bin[j] == dst->bin[i])
            c -= src->count[j++];
        if (c > 0) {
            dst->bin[k] = dst->bin[i];
            dst->count[k] = (uint32_t)c;
            k++;
        }
        i++;
    }
    dst->n = k;
}

/* Add delta (may be negative) to key; entries reaching zero are removed. */
static int bins_add(pk_bins *b, int32_t key, int64_t delta)
{
    int found;
    uint32_t at = bins_find(b, key, &found);

    if (found) {
        int64_t c = (int64_t)b->count[at] + delta;
        if (c <= 0) {
            memmove(b->bin + at, b->bin + at + 1, (b->n - at - 1) * sizeof(*b->bin));
            memmove(b->count + at, b->count + at + 1, (b->n - at - 1) * sizeof(*b->count));
            b->n--;
        } else {
            b->count[at] = (uint32_t)c;
        }
        return 0;
    }
    if (delta <= 0)
        return 0;
    if (bins_reserve(b, b->n + 1) != 0)
        return -1;
    memmove(b->bin + at + 1, b->bin + at, (b->n - at) * sizeof(*b->bin));
    memmove(b->count + at + 1, b->count + at, (b->n - at) * sizeof(*b->count));
    b->bin[at] = key;
    b->count[at] = (uint32_t)delta;
    b->n++;
    return 0;
}

/* --- sketch ----------------------------------------------------------------------- */

void pk_sketch_init(pk_sketch *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        s->start[i] = -1;
}

void pk_sketch_free(pk_sketch *s)
{
    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        bins_free(&s->bucket[i]);
    bins_free(&s->total);
    pk_sketch_init(s);
}

static void drop_bucket(pk_sketch *s, int i)
{
    pk_bins *b = &s->bucket[i];

    bins_merge_sub(&s->total, b);
    for (uint32_t k = 0; k < b->n; k++)
        s->n -= b->count[k];
    b->n = 0;
    s->start[i] = -1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void pk_sketch_expire(pk_sketch *s, const pk_window *w, int64_t now)
{
    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        if (s->start[i] >= 0 && !(s->start[i] <= now && s->start[i] > now - w->length))
            drop_bucket(s, i);
    }
}

int pk_sketch_add(pk_sketch *s, const pk_window *w, int64_t pos, int64_t now, double value)
{
    int64_t slot = floor_div(pos, w->width), start = slot * w->width;
    int i = (int)((uint64_t)slot % PK_WIN_BUCKETS);
    int32_t key = pk_sketch_bin(value);

    pk_sketch_expire(s, w, now);
    if (s->start[i] != start) {
        if (s->start[i] >= 0)
            drop_bucket(s, i);
        s->start[i] = start;
    }
    if (bins_add(&s->bucket[i], key, 1) != 0 || bins_add(&s->total, key, 1) != 0)
        return -1;
    s->n++;
    return 0;
}

double pk_sketch_quantile(const pk_sketch *s, double q)
{
    uint64_t rank, seen = 0;

    if (s->n == 0)
        return 0;
    rank = (uint64_t)ceil(q * (double)s->n);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    for (uint32_t k = 0; k < s->total.n; k++) {
        seen += s->total.count[k];
        if (seen >= rank)
            return pk_sketch_value(s->total.bin[k]);
    }
    return pk_sketch_value(s->total.bin[s->total.n - 1]);
}

/* Layout: per bucket: i64 start, u32 n, then n x (i32 key, u32 count), little endian host order. */
size_t pk_sketch_size(const pk_sketch *s)
{
    size_t n = 0;

    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        n += 12 + (size_t)s->bucket[i].n * 8;
    return n;
}

void pk_sketch_write(const pk_sketch *s, uint8_t *buf)
{
    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        const pk_bins *b = &s->bucket[i];
        int64_t start = b->n ? s->start[i] : -1;
        memcpy(buf, &start, 8);
        memcpy(buf + 8, &b->n, 4);
        buf += 12;
        for (uint32_t k = 0; k < b->n; k++) {
            memcpy(buf, &b->bin[k], 4);
            memcpy(buf + 4, &b->count[k], 4);
            buf += 8;
        }
    }
}

size_t pk_sketch_read(pk_sketch *s, const uint8_t *buf, size_t len)
{
    size_t off = 0;

    pk_sketch_init(s);
    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        pk_bins *b;
        uint32_t n;
        if (len - off < 12)
            goto bad;
        memcpy(&s->start[i], buf + off, 8);
        memcpy(&n, buf + off + 8, 4);
        off += 12;
        b = &s->bucket[i];
        if (n > (len - off) / 8 || bins_reserve(b, n) != 0)
            goto bad;
        for (uint32_t k = 0; k < n; k++) {
            int32_t key;
            uint32_t count;
            memcpy(&key, buf + off, 4);
            memcpy(&count, buf + off + 4, 4);
            off += 8;
            if (count == 0)
                goto bad;
            if (b->n == 0 || b->bin[b->n - 1] < key) { /* as written: in key order */
                b->bin[b->n] = key;
                b->count[b->n++] = count;
            } else if (bins_add(b, key, count) != 0) {
                goto bad;
            }
            s->n += count;
        }
        if (bins_merge_add(&s->total, b) != 0)
            goto bad;
    }
    return off;
bad:
    pk_sketch_free(s);
    return 0;
}
