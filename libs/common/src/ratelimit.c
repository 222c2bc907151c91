/*
 * Token buckets in an open-addressing table. Tokens are counted in millionths
 * so that a rate of a few per second refills smoothly; a bucket is refilled
 * lazily, when its key is next seen.
 */
#include "pk/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 128
#define MICRO   1000000ull

typedef struct bucket {
    char key[KEY_MAX]; /* "" when free */
    uint64_t micro;    /* tokens held, in millionths */
    int64_t at_ms;     /* when micro was last brought up to date */
} bucket;

struct pk_ratelimit {
    uint64_t rate, burst; /* tokens a second; bucket size */
    bucket *b;            /* the table */
    size_t n_slots;       /* a power of two, twice the keys tracked */
    size_t used;          /* slots in use */
    pthread_mutex_t lock; /* guards the table */
};

static uint32_t hash_of(const char *k)
{
    uint32_t h = 2166136261u;

    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 16777619u;
    }
    return h;
}

pk_status pk_ratelimit_create(pk_ratelimit **out, uint64_t rate, uint64_t burst, size_t keys)
{
    pk_ratelimit *rl = calloc(1, sizeof(*rl));
    size_t n = 16;

    while (n < 2 * keys && n < ((size_t)1 << 24))
        n *= 2;
    if (!rl || !(rl->b = calloc(n, sizeof(*rl->b)))) {
        free(rl);
        return PK_ERR(PK_ENOMEM, "cannot allocate rate limits for %zu keys", keys);
    }
    rl->rate = rate;
    rl->burst = burst ? burst : 1;
    rl->n_slots = n;
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return PK_OK;
}

void pk_ratelimit_destroy(pk_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->b);
    free(rl);
}

/* Bring a bucket's tokens up to now_ms. */
static void refill(const pk_ratelimit *rl, bucket *b, int64_t now_ms)
{
    uint64_t full = rl->burst * MICRO;

    if (now_ms > b->at_ms) {
        uint64_t dt = (uint64_t)(now_ms - b->at_ms);
        /* dt * rate * 1000 overflows only after years at absurd rates: cap dt first */
        if (dt > 86400000ull)
            dt = 86400000ull;
        b->micro += dt * rl->rate * (MICRO / 1000);
        if (b->micro > full)
            b->micro = full;
        b->at_ms = now_ms;
    }
}

/* Forget every key whose bucket is full at now_ms (re-inserting the others). */
static void forget_full(pk_ratelimit *rl, int64_t now_ms)
{
    size_t n = rl->n_slots, mask = n - 1;
    bucket *old = rl->b, *fresh = calloc(n, sizeof(*fresh));

    if (!fresh)
        return;
    rl->used = 0;
    for (size_t i = 0; i < n; i++) {
        if (!old[i].key[0])
            continue;
        refill(rl, &old[i], now_ms);
        if (old[i].micro >= rl->burst * MICRO)
            continue;
        for (size_t j = hash_of(old[i].key) & mask;; j = (j + 1) & mask) {
            if (!fresh[j].key[0]) {
                fresh[j] = old[i];
                rl->used++;
                break;
            }
        }
    }
    rl->b = fresh;
    free(old);
}

/* The bucket of key, made full if it is new; NULL when the table has no room. */
static bucket *find(pk_ratelimit *rl, const char *key, int64_t now_ms)
{
    size_t mask = rl->n_slots - 1;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = hash_of(key) & mask, probes = 0; probes < rl->n_slots;
             i = (i + 1) & mask, probes++) {
            bucket *b = &rl->b[i];
            if (!b->key[0]) {
                if (rl->used >= rl->n_slots / 2)
                    break; /* keep the table at most half full */
                snprintf(b->key, sizeof(b->key), "%s", key);
                b->micro = rl->burst * MICRO;
                b->at_ms = now_ms;
                rl->used++;
                return b;
            }
            if (strncmp(b->key, key, KEY_MAX - 1) == 0)
                return b;
        }
        forget_full(rl, now_ms);
    }
    return NULL;
}

bool pk_ratelimit_take(pk_ratelimit *rl, const char *key, uint64_t n, int64_t now_ms)
{
    bool ok = true;
    bucket *b;

    if (!rl || rl->rate == 0)
        return true;
    pthread_mutex_lock(&rl->lock);
    if ((b = find(rl, key, now_ms))) {
        refill(rl, b, now_ms);
        ok = n <= b->micro / MICRO;
        if (ok)
            b->micro -= n * MICRO;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}
