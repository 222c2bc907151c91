/*
 * lease - partitions that move between instances by lease (pk/lease.h).
 */
#include "pk/lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/log.h"

#define ROUND_MS  1000 /* how often leases are renewed and shares looked at */
#define VALUE_MAX 160

struct pk_leases {
    pk_lease_cfg cfg;
    char service[32], instance[64];
    pk_bus *bus;
    jsCtx *js; /* of its own: a lease call waits at most a round (the service's waits longer) */
    kvStore *kv;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    _Atomic uint64_t held;
    _Atomic uint64_t unowned; /* partitions nobody held at the last round */
    atomic_int members;
    int64_t soonest; /* wall-clock ms: the soonest another instance's member line or lease
                      * runs out (0: none seen), to look again right then, not a round later */
    uint64_t rev[PK_PARTITIONS_MAX];       /* revision of each lease we hold */
    int64_t renewed_ms[PK_PARTITIONS_MAX]; /* monotonic time of its last renewal */
};

static int popcount(uint64_t v)
{
    return __builtin_popcountll(v);
}

static void key_of(const pk_leases *l, uint32_t p, char *key, size_t len)
{
    snprintf(key, len, "%s.p%u", l->service, p);
}

pk_status pk_leases_bucket(pk_bus *bus)
{
    const char *r = getenv("PACTUM_STREAM_REPLICAS");
    int64_t give_up = pk_mono_ms() + 20000;
    kvStore *kv = NULL;
    natsStatus s;

    for (int attempt = 0;; attempt++) {
        kvConfig kc;
        if ((s = js_KeyValue(&kv, bus->js, PK_LEASE_BUCKET)) == NATS_OK)
            break;
        kvConfig_Init(&kc);
        kc.Bucket = PK_LEASE_BUCKET;
        kc.Description = "pactum partition leases";
        kc.History = 1;
        kc.MaxValueSize = 4096;
        kc.StorageType = js_FileStorage;
        kc.Replicas = r && atoi(r) >= 1 && atoi(r) <= 5 ? atoi(r) : 1;
        if ((s = js_CreateKeyValue(&kv, bus->js, &kc)) == NATS_OK)
            break;
        /* not ready, or made by another instance at this moment: look again */
        if (pk_mono_ms() > give_up)
            return pk_nats_err(s, 0, "the bucket " PK_LEASE_BUCKET);
        pk_sleep_ms(attempt < 10 ? 50 * (attempt + 1) : 500);
    }
    kvStore_Destroy(kv);
    return PK_OK;
}

/* "<instance> <expires_ms> <applied>" */
static bool parse(const char *v, char *who, size_t wlen, int64_t *expires, uint64_t *applied)
{
    char inst[64];
    long long e = 0;
    unsigned long long a = 0;

    if (!v || sscanf(v, "%63s %lld %llu", inst, &e, &a) < 2)
        return false;
    snprintf(who, wlen, "%s", inst);
    *expires = e;
    *applied = a;
    return true;
}

/* The bucket did not answer at all (a node lost, a leader being elected, the bucket gone). */
static bool unanswered(natsStatus s)
{
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS;
}

/* Refresh this instance's line in "<service>.members"; the live instances (at least 1). */
static int refresh_members(pk_leases *l)
{
    char key[64];
    int64_t now = pk_now_ms();

    snprintf(key, sizeof(key), "%s.members", l->service);
    for (int attempt = 0; attempt < 3; attempt++) {
        kvEntry *e = NULL;
        uint64_t rev = 0, nrev = 0;
        const char *old = "";
        size_t cap = 4096, off = 0;
        int live = 1;
        natsStatus s;
        char *buf = malloc(cap), *copy, *save = NULL;

        if (!buf)
            return atomic_load(&l->members);
        if (kvStore_Get(&e, l->kv, key) == NATS_OK) {
            rev = kvEntry_Revision(e);
            old = kvEntry_ValueString(e) ? kvEntry_ValueString(e) : "";
        }
        copy = strdup(old);
        off += (size_t)snprintf(buf + off, cap - off, "%s %lld\n", l->instance,
                                (long long)(now + l->cfg.ttl_ms));
        for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            char who[64];
            long long exp = 0;
            if (sscanf(line, "%63s %lld", who, &exp) != 2 || exp <= now ||
                strcmp(who, l->instance) == 0 || off + strlen(line) + 2 >= cap)
                continue;
            if (!l->soonest || exp < l->soonest)
                l->soonest = exp;
            off += (size_t)snprintf(buf + off, cap - off, "%s\n", line);
            live++;
        }
        free(copy);
        s = rev ? kvStore_UpdateString(&nrev, l->kv, key, buf, rev)
                : kvStore_CreateString(&nrev, l->kv, key, buf);
        kvEntry_Destroy(e);
        free(buf);
        if (s == NATS_OK) {
            atomic_store(&l->members, live);
            return live;
        }
        if (unanswered(s))
            break; /* the bucket does not answer: next round (only a lost race is retried) */
    }
    return atomic_load(&l->members) > 0 ? atomic_load(&l->members) : 1;
}

/* Write our lease on p (expiring at expires) at revision rev (0: create it). */
static natsStatus write_lease(pk_leases *l, uint32_t p, uint64_t rev, int64_t expires,
                              uint64_t applied, uint64_t *nrev)
{
    char key[64], value[VALUE_MAX];

    key_of(l, p, key, sizeof(key));
    snprintf(value, sizeof(value), "%s %lld %llu", l->instance, (long long)expires,
             (unsigned long long)applied);
    return rev ? kvStore_UpdateString(nrev, l->kv, key, value, rev)
               : kvStore_CreateString(nrev, l->kv, key, value);
}

/* p's lease was written at t0 (monotonic, taken before the write): it may be served until */
static void held_from(pk_leases *l, uint32_t p, uint64_t nrev, int64_t t0)
{
    l->rev[p] = nrev;
    l->renewed_ms[p] = t0;
    if (l->cfg.fence)
        l->cfg.fence(l->cfg.ctx, p, t0 + l->cfg.ttl_ms - PK_LEASE_MARGIN_MS);
}

/* Take p at revision rev (0: a new key); start serving it. */
static bool take(pk_leases *l, uint32_t p, uint64_t rev, uint64_t applied)
{
    uint64_t nrev = 0;
    int64_t t0 = pk_mono_ms();

    if (write_lease(l, p, rev, pk_now_ms() + l->cfg.ttl_ms, applied, &nrev) != NATS_OK)
        return false; /* someone else was quicker */
    held_from(l, p, nrev, t0);
    if (l->cfg.start(l->cfg.ctx, p, applied) != PK_OK) {
        PK_WARN("%s partition %u: cannot start serving it: %s", l->service, p, pk_error_msg());
        write_lease(l, p, nrev, 0, applied, &nrev); /* let it go at once */
        return false;
    }
    atomic_fetch_or(&l->held, 1ull << p);
    PK_INFO("%s partition %u: lease taken%s", l->service, p,
            applied ? " (its previous holder had applied up to there)" : "");
    return true;
}

/* Stop serving p (the batch at hand is left, not written) and let its lease go at once. */
static void let_go(pk_leases *l, uint32_t p, bool write)
{
    uint64_t nrev = 0;

    atomic_fetch_and(&l->held, ~(1ull << p));
    if (l->cfg.fence)
        l->cfg.fence(l->cfg.ctx, p, 0);
    l->cfg.stop(l->cfg.ctx, p);
    /* where it stopped, exactly: the next holder publishes from there */
    if (write)
        write_lease(l, p, l->rev[p], 0, l->cfg.position(l->cfg.ctx, p), &nrev);
}

/* Who holds p's lease now, read from the bucket; false if it cannot be read. */
static bool holder_of(pk_leases *l, uint32_t p, char *who, size_t len, uint64_t *rev)
{
    char key[64];
    kvEntry *e = NULL;
    int64_t expires = 0;
    uint64_t applied = 0;
    bool ok;

    key_of(l, p, key, sizeof(key));
    if (kvStore_Get(&e, l->kv, key) != NATS_OK)
        return false;
    *rev = kvEntry_Revision(e);
    ok = parse(kvEntry_ValueString(e), who, len, &expires, &applied);
    kvEntry_Destroy(e);
    return ok;
}

static void renew(pk_leases *l, uint32_t p)
{
    uint64_t nrev = 0, rev = 0;
    char who[64];
    int64_t t0 = pk_mono_ms();
    natsStatus s = write_lease(l, p, l->rev[p], pk_now_ms() + l->cfg.ttl_ms,
                               l->cfg.position(l->cfg.ctx, p), &nrev);

    if (s == NATS_OK) {
        held_from(l, p, nrev, t0);
        return;
    }
    if (!unanswered(s) && holder_of(l, p, who, sizeof(who), &rev)) {
        /* someone else holds it now (ours had expired): stop at once */
        if (strcmp(who, l->instance) != 0) {
            PK_WARN("%s partition %u: %s holds it now: stopped serving it", l->service, p, who);
            let_go(l, p, false);
            return;
        }
        /* still ours, at another revision (a write whose answer was lost): go on from it */
        t0 = pk_mono_ms();
        if (rev != l->rev[p] && write_lease(l, p, rev, pk_now_ms() + l->cfg.ttl_ms,
                                            l->cfg.position(l->cfg.ctx, p), &nrev) == NATS_OK) {
            held_from(l, p, nrev, t0);
            return;
        }
    }
    /* the bucket cannot be written now (a node lost, a leader being elected): keep serving,
     * but stop PK_LEASE_MARGIN_MS before the lease could expire and another instance start */
    if (pk_mono_ms() - l->renewed_ms[p] >= l->cfg.ttl_ms - PK_LEASE_MARGIN_MS) {
        PK_WARN("%s partition %u: lease not renewed for %lld ms (%s): stopped serving it",
                l->service, p, (long long)(pk_mono_ms() - l->renewed_ms[p]), natsStatus_GetText(s));
        let_go(l, p, false);
    }
}

/* One look at partition p: take it if it is free, expired, or ours from before a restart. */
static void try_take(pk_leases *l, uint32_t p, char *holder, size_t hlen, int64_t *until)
{
    char key[64], who[64] = "";
    kvEntry *e = NULL;
    int64_t expires = 0;
    uint64_t applied = 0, rev;
    natsStatus s;

    holder[0] = '\0';
    key_of(l, p, key, sizeof(key));
    s = kvStore_Get(&e, l->kv, key);
    if (s == NATS_NOT_FOUND) {
        take(l, p, 0, 0);
        return;
    }
    if (s != NATS_OK)
        return;
    rev = kvEntry_Revision(e);
    if (!parse(kvEntry_ValueString(e), who, sizeof(who), &expires, &applied))
        expires = 0; /* unreadable: treat as free */
    kvEntry_Destroy(e);
    if (expires <= pk_now_ms() || strcmp(who, l->instance) == 0) {
        /* where another holder got to; our own lease from before a restart: our folder knows */
        take(l, p, rev, strcmp(who, l->instance) == 0 ? 0 : applied);
        return;
    }
    snprintf(holder, hlen, "%s", who);
    *until = expires;
}

static void round_once(pk_leases *l)
{
    uint32_t P = l->cfg.partitions;
    int live, fair;

    /* renewals first: a round held up by a slow bucket must not keep them waiting */
    for (uint32_t p = 0; p < P; p++) {
        if (atomic_load(&l->held) & (1ull << p))
            renew(l, p);
    }
    l->soonest = 0;
    live = refresh_members(l);
    fair =
        l->cfg.pinned ? popcount(l->cfg.pinned) : (int)((P + (uint32_t)live - 1) / (uint32_t)live);
    /* more than our share: let the highest go, so newcomers get theirs */
    for (uint32_t p = P; p-- > 0 && !l->cfg.pinned && popcount(atomic_load(&l->held)) > fair;) {
        if (atomic_load(&l->held) & (1ull << p)) {
            PK_INFO("%s partition %u: let go (%d live instances, a share of %d)", l->service, p,
                    live, fair);
            let_go(l, p, true);
        }
    }
    for (uint32_t p = 0; p < P && popcount(atomic_load(&l->held)) < fair; p++) {
        char holder[64];
        int64_t until = 0;
        if ((atomic_load(&l->held) & (1ull << p)) ||
            (l->cfg.pinned && !(l->cfg.pinned & (1ull << p))))
            continue;
        try_take(l, p, holder, sizeof(holder), &until);
        if (until && (!l->soonest || until < l->soonest))
            l->soonest = until;
    }
    /* what nobody serves now (for health): no lease, or an expired one */
    {
        uint64_t none = 0;
        for (uint32_t p = 0; p < P; p++) {
            char key[64], who[64];
            kvEntry *e = NULL;
            int64_t expires = 0;
            uint64_t applied = 0;
            natsStatus s;
            if (atomic_load(&l->held) & (1ull << p))
                continue;
            key_of(l, p, key, sizeof(key));
            s = kvStore_Get(&e, l->kv, key);
            if (s == NATS_NOT_FOUND || (s == NATS_OK && (!parse(kvEntry_ValueString(e), who,
                                                                sizeof(who), &expires, &applied) ||
                                                         expires <= pk_now_ms())))
                none |= 1ull << p;
            kvEntry_Destroy(e);
        }
        atomic_store(&l->unowned, none);
    }
}

static void *lease_main(void *arg)
{
    pk_leases *l = arg;

    while (!atomic_load(&l->stop)) {
        int64_t next = pk_mono_ms() + ROUND_MS, left;
        round_once(l);
        /* a dead instance's line and leases run out between two rounds: look just after */
        left = l->soonest ? l->soonest + 50 - pk_now_ms() : ROUND_MS;
        if (left < ROUND_MS)
            next = pk_mono_ms() + (left > 50 ? left : 50);
        while (!atomic_load(&l->stop) && pk_mono_ms() < next)
            pk_sleep_ms(left < 50 ? 10 : 50);
    }
    return NULL;
}

pk_status pk_leases_start(pk_leases **out, pk_bus *bus, const pk_lease_cfg *cfg)
{
    pk_leases *l = calloc(1, sizeof(*l));
    jsOptions jo;
    natsStatus s;
    pk_status st;

    *out = NULL;
    if (!l)
        return PK_ERR(PK_ENOMEM, "cannot allocate leases");
    l->cfg = *cfg;
    snprintf(l->service, sizeof(l->service), "%s", cfg->service);
    snprintf(l->instance, sizeof(l->instance), "%s", cfg->instance);
    l->cfg.service = l->service;
    l->cfg.instance = l->instance;
    l->bus = bus;
    atomic_store(&l->members, 1);
    jsOptions_Init(&jo);
    jo.Wait = ROUND_MS;
    if ((st = pk_leases_bucket(bus)) != PK_OK ||
        (((s = natsConnection_JetStream(&l->js, bus->nc, &jo)) != NATS_OK ||
          (s = js_KeyValue(&l->kv, l->js, PK_LEASE_BUCKET)) != NATS_OK) &&
         (st = pk_nats_err(s, 0, "the bucket " PK_LEASE_BUCKET)) != PK_OK)) {
        jsCtx_Destroy(l->js);
        free(l);
        return st;
    }
    /* a pinned partition someone else holds is refused now, not fought over */
    for (uint32_t p = 0; p < cfg->partitions; p++) {
        char holder[64];
        int64_t until = 0;
        if (!(cfg->pinned & (1ull << p)))
            continue;
        try_take(l, p, holder, sizeof(holder), &until);
        if (!(atomic_load(&l->held) & (1ull << p))) {
            st = PK_ERR(PK_ECONFLICT, "partition %u is served by %s (its lease runs %lld ms more)",
                        p, holder[0] ? holder : "another instance",
                        (long long)(until - pk_now_ms()));
            pk_leases_stop(l);
            return st;
        }
    }
    round_once(l); /* an automatic instance starts with its share */
    if (pthread_create(&l->thread, NULL, lease_main, l) != 0) {
        pk_leases_stop(l);
        return PK_ERR(PK_ENOMEM, "cannot start the lease thread");
    }
    l->started = true;
    *out = l;
    return PK_OK;
}

uint64_t pk_leases_held(const pk_leases *l)
{
    return l ? atomic_load(&((pk_leases *)l)->held) : 0;
}

uint64_t pk_leases_unowned(const pk_leases *l)
{
    return l ? atomic_load(&((pk_leases *)l)->unowned) : 0;
}

int pk_leases_members(const pk_leases *l)
{
    return l ? atomic_load(&((pk_leases *)l)->members) : 0;
}

void pk_leases_stop(pk_leases *l)
{
    if (!l)
        return;
    atomic_store(&l->stop, true);
    if (l->started)
        pthread_join(l->thread, NULL);
    for (uint32_t p = 0; p < l->cfg.partitions; p++) {
        if (atomic_load(&l->held) & (1ull << p))
            let_go(l, p, true);
    }
    kvStore_Destroy(l->kv);
    jsCtx_Destroy(l->js);
    free(l);
}
