#include "pk/window.h"

#include <string.h>

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void pk_window_init(pk_window *w, int64_t length)
{
    memset(w, 0, sizeof(*w));
    w->length = length > 0 ? length : 1;
    w->width = (w->length + PK_WIN_BUCKETS - 1) / PK_WIN_BUCKETS;
    if (w->width < 1)
        w->width = 1;
    w->newest = INT64_MIN;
    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        w->b[i].start = -1;
}

/* Is a bucket starting at start inside the window seen at now? */
static bool in_window(const pk_window *w, int64_t start, int64_t now)
{
    return start >= 0 && start <= now && start > now - w->length;
}

bool pk_window_add(pk_window *w, int64_t pos, double value)
{
    int64_t slot = floor_div(pos, w->width);
    int64_t start = slot * w->width;
    pk_win_bucket *b = &w->b[(uint64_t)slot % PK_WIN_BUCKETS];
    int64_t now = pos > w->newest ? pos : w->newest;

    if (pos < 0 || !in_window(w, start, now))
        return false; /* older than the window: it no longer counts */
    if (b->start != start) {
        if (b->start > start)
            return false; /* the slot already holds newer data: this sample is too old */
        b->start = start;
        b->count = 0;
        b->trues = 0;
        b->sum = 0;
        b->min = value;
        b->max = value;
    }
    b->count++;
    if (value != 0)
        b->trues++;
    b->sum += value;
    if (value < b->min)
        b->min = value;
    if (value > b->max)
        b->max = value;
    w->newest = now;
    w->events++;
    return true;
}

void pk_window_summary(const pk_window *w, int64_t now, pk_win_summary *out)
{
    memset(out, 0, sizeof(*out));
    /* Sum in bucket order, oldest first, so the result does not depend on
     * where the ring happens to start. */
    int64_t newest_slot = floor_div(now, w->width);
    for (int64_t k = PK_WIN_BUCKETS - 1; k >= 0; k--) {
        int64_t slot = newest_slot - k;
        const pk_win_bucket *b;
        if (slot < 0)
            continue;
        b = &w->b[(uint64_t)slot % PK_WIN_BUCKETS];
        if (b->start != slot * w->width || !in_window(w, b->start, now) || b->count == 0)
            continue;
        if (out->count == 0) {
            out->min = b->min;
            out->max = b->max;
        } else {
            if (b->min < out->min)
                out->min = b->min;
            if (b->max > out->max)
                out->max = b->max;
        }
        out->count += b->count;
        out->trues += b->trues;
        out->sum += b->sum;
    }
}

double pk_window_aggregate(const pk_win_summary *s, pk_aggregate agg)
{
    switch (agg) {
    case PK_AGG_COUNT:
        return (double)s->count;
    case PK_AGG_SUM:
        return s->sum;
    case PK_AGG_MEAN:
        return s->count ? s->sum / (double)s->count : 0;
    case PK_AGG_MIN:
        return s->min;
    case PK_AGG_MAX:
        return s->max;
    case PK_AGG_RATE:
        return s->count ? (double)s->trues / (double)s->count : 0;
    default:
        return 0; /* percentiles come from the sketch */
    }
}

/* header: length, width, events, newest (4 x 8 bytes), then the bucket bitmap (4 bytes) */
#define WIN_HEAD   36
#define WIN_BUCKET (8 + 4 + 4 + 3 * 8)

size_t pk_window_packed_size(const pk_window *w)
{
    size_t n = WIN_HEAD;

    for (int i = 0; i < PK_WIN_BUCKETS; i++)
        n += w->b[i].start >= 0 ? WIN_BUCKET : 0;
    return n;
}

void pk_window_pack(const pk_window *w, uint8_t *buf)
{
    uint32_t mask = 0;
    uint8_t *p = buf + WIN_HEAD;

    memcpy(buf, &w->length, 8);
    memcpy(buf + 8, &w->width, 8);
    memcpy(buf + 16, &w->events, 8);
    memcpy(buf + 24, &w->newest, 8);
    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        const pk_win_bucket *b = &w->b[i];
        if (b->start < 0)
            continue;
        mask |= 1u << i;
        memcpy(p, &b->start, 8);
        memcpy(p + 8, &b->count, 4);
        memcpy(p + 12, &b->trues, 4);
        memcpy(p + 16, &b->sum, 8);
        memcpy(p + 24, &b->min, 8);
        memcpy(p + 32, &b->max, 8);
        p += WIN_BUCKET;
    }
    memcpy(buf + 32, &mask, 4);
}

size_t pk_window_unpack(pk_window *w, const uint8_t *buf, size_t len)
{
    uint32_t mask;
    const uint8_t *p = buf + WIN_HEAD;

    if (len < WIN_HEAD)
        return 0;
    memset(w, 0, sizeof(*w));
    memcpy(&w->length, buf, 8);
    memcpy(&w->width, buf + 8, 8);
    memcpy(&w->events, buf + 16, 8);
    memcpy(&w->newest, buf + 24, 8);
    memcpy(&mask, buf + 32, 4);
    if (w->length < 1 || w->width < 1)
        return 0;
    for (int i = 0; i < PK_WIN_BUCKETS; i++) {
        pk_win_bucket *b = &w->b[i];
        if (!(mask & (1u << i))) {
            b->start = -1;
            continue;
        }
        if ((size_t)(p + WIN_BUCKET - buf) > len)
            return 0;
        memcpy(&b->start, p, 8);
        memcpy(&b->count, p + 8, 4);
        memcpy(&b->trues, p + 12, 4);
        memcpy(&b->sum, p + 16, 8);
        memcpy(&b->min, p + 24, 8);
        memcpy(&b->max, p + 32, 8);
        if (b->start < 0)
            return 0;
        p += WIN_BUCKET;
    }
    return (size_t)(p - buf);
}
