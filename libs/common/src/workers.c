#include "pk/workers.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/lease.h"
#include "pk/log.h"

pk_status pk_partitions_parse(const char *text, uint32_t n, uint64_t *mask)
{
    const char *p = text;

    *mask = 0;
    if (strcmp(text, "all") == 0) {
        *mask = n >= 64 ? ~0ull : ((1ull << n) - 1);
        return PK_OK;
    }
    while (*p) {
        char *end;
        unsigned long a = strtoul(p, &end, 10), b;
        if (end == p)
            return PK_ERR(PK_EINVAL, "partitions: expected 'all' or a list like 0,2-3, got '%s'",
                          text);
        b = a;
        p = end;
        if (*p == '-') {
            b = strtoul(p + 1, &end, 10);
            if (end == p + 1)
                return PK_ERR(PK_EINVAL, "partitions: bad range in '%s'", text);
            p = end;
        }
        if (a > b || b >= n)
            return PK_ERR(PK_EINVAL, "partitions: '%s' names partitions outside 0-%u", text, n - 1);
        for (unsigned long i = a; i <= b; i++)
            *mask |= 1ull << i;
        if (*p == ',')
            p++;
        else if (*p)
            return PK_ERR(PK_EINVAL, "partitions: unexpected '%c' in '%s'", *p, text);
    }
    return *mask ? PK_OK : PK_ERR(PK_EINVAL, "partitions: '%s' names none", text);
}

static pk_status call_process(void *ctx, natsMsgList *list)
{
    pk_pworker *w = ctx;

    return w->group->process(w, list);
}

static pk_status call_idle(void *ctx, bool caught_up)
{
    pk_pworker *w = ctx;

    return w->group->idle(w, caught_up);
}

/* The last stream sequence a worker's partition applied, from the service's own store. */
static pk_status position_of(void *ctx, uint64_t *applied)
{
    pk_pworker *w = ctx;
    const pk_pworkers *g = w->group;
    MDB_txn *txn = NULL;
    char key[64];
    pk_status st;

    *applied = 0;
    if (!g->store || !g->position_key)
        return PK_ENOTFOUND;
    snprintf(key, sizeof(key), "%s%u", g->position_key, w->partition);
    if ((st = pk_txn_begin(g->store, false, &txn)) != PK_OK)
        return st;
    st = pk_get_u64(txn, g->meta, key, applied);
    pk_txn_abort(txn);
    return st == PK_ENOTFOUND ? PK_OK : st; /* nothing applied yet: 0 */
}

pk_status pk_pworkers_init(pk_pworkers *g, uint32_t partitions)
{
    g->w = calloc(partitions, sizeof(*g->w));
    g->n = 0;
    if (!g->w)
        return PK_ERR(PK_ENOMEM, "cannot allocate workers");
    for (uint32_t p = 0; p < partitions; p++) {
        g->w[p].group = g;
        g->w[p].partition = p;
        atomic_store(&g->w[p].serve_until, INT64_MAX); /* no lease: no limit */
    }
    g->n = partitions;
    return PK_OK;
}

/* Connect partition p's worker and bind its consumer (not started yet). */
static pk_status prepare(pk_pworkers *g, uint32_t p)
{
    pk_pworker *w = &g->w[p];
    char name[96], durable[48], filter[96];
    pk_status st;

    snprintf(name, sizeof(name), "%s-p%u", g->svc->instance, p);
    snprintf(w->what, sizeof(w->what), "%s partition %u", g->prefix, p);
    snprintf(durable, sizeof(durable), "%s-p%u", g->prefix, p);
    snprintf(filter, sizeof(filter), "%s.%u.%s", g->subject, p, g->tail ? g->tail : "*");
    atomic_store(&w->stop, false);
    if ((st = pk_reader_bus_connect(g->common, name, &w->bus)) != PK_OK ||
        (st = pk_consumer_take_over(&w->consumer, w->bus, g->stream, durable, filter, g->batch,
                                    10000, position_of, w, w->quiet_until, &w->serve_until)) !=
            PK_OK) {
        pk_bus_close(w->bus);
        w->bus = NULL;
        return PK_WRAP(st, "partition %u", p);
    }
    w->runner = (pk_runner){.what = w->what,
                            .consumer = &w->consumer,
                            .svc = g->svc,
                            .batch = g->batch,
                            .wait_ms = 500,
                            .process = call_process,
                            .idle = g->idle ? call_idle : NULL,
                            .ctx = w,
                            .lag = &g->svc->common[PK_SM_LAG],
                            .stop = &w->stop};
    w->prepared = true;
    return PK_OK;
}

pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask)
{
    pk_status st;

    if ((st = pk_pworkers_init(g, partitions)) != PK_OK)
        return st;
    for (uint32_t p = 0; p < partitions; p++) {
        if ((mask & (1ull << p)) && (st = prepare(g, p)) != PK_OK)
            return st;
    }
    return PK_OK;
}

static void *worker_main(void *arg)
{
    pk_pworker *w = arg;

    pk_runner_loop(&w->runner);
    return NULL;
}

/* Make a prepared worker's data and start its thread. */
static pk_status launch(pk_pworkers *g, pk_pworker *w)
{
    pk_status st;

    if (g->ctx_size) {
        if (!(w->ctx = calloc(1, g->ctx_size)))
            return PK_ERR(PK_ENOMEM, "cannot allocate the data of partition %u", w->partition);
        if (g->ctx_init && (st = g->ctx_init(w)) != PK_OK)
            return st;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return PK_ERR(PK_ENOMEM, "cannot start the thread of partition %u", w->partition);
    w->started = true;
    atomic_store(&w->active, true);
    atomic_fetch_or(&g->serving, 1ull << w->partition);
    return PK_OK;
}

pk_status pk_pworkers_start(pk_pworkers *g)
{
    for (size_t i = 0; i < g->n; i++) {
        pk_status st;
        if (g->w[i].prepared && !g->w[i].started && (st = launch(g, &g->w[i])) != PK_OK)
            return st;
    }
    return PK_OK;
}

pk_status pk_pworker_start(pk_pworkers *g, uint32_t p, uint64_t quiet_until)
{
    pk_pworker *w;
    pk_status st;

    if (p >= g->n)
        return PK_ERR(PK_EINVAL, "no partition %u", p);
    w = &g->w[p];
    if (w->started)
        return PK_OK;
    w->quiet_until = quiet_until;
    if ((st = prepare(g, p)) != PK_OK || (st = launch(g, w)) != PK_OK) {
        pk_pworker_stop(g, p);
        return st;
    }
    return PK_OK;
}

void pk_pworker_stop(pk_pworkers *g, uint32_t p)
{
    pk_pworker *w;

    if (p >= g->n)
        return;
    w = &g->w[p];
    atomic_fetch_and(&g->serving, ~(1ull << p));
    atomic_store(&w->active, false);
    atomic_store(&w->stop, true);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
    if (g->ctx_size) { /* the group made it */
        if (w->ctx && g->ctx_free)
            g->ctx_free(w);
        free(w->ctx);
        w->ctx = NULL;
    }
    if (w->prepared)
        pk_consumer_close(&w->consumer);
    pk_bus_close(w->bus);
    w->bus = NULL;
    w->prepared = false;
    w->quiet_until = 0;
}

pk_status pk_pworker_still_held(const pk_pworker *w)
{
    /* the worker's consumer carries the same deadline (see prepare) */
    if (!pk_consumer_fenced(&w->consumer))
        return PK_OK;
    return PK_ERR(PK_ECONFLICT, "%s: its lease was not renewed in time", w->what);
}

uint64_t pk_pworker_position(pk_pworker *w)
{
    uint64_t applied = 0;

    return position_of(w, &applied) == PK_OK ? applied : 0;
}

static pk_status lease_start(void *ctx, uint32_t p, uint64_t applied)
{
    return pk_pworker_start(ctx, p, applied);
}

static void lease_stop(void *ctx, uint32_t p)
{
    pk_pworker_stop(ctx, p);
}

static void lease_fence(void *ctx, uint32_t p, int64_t until_mono_ms)
{
    pk_pworkers *g = ctx;

    if (p < g->n)
        atomic_store(&g->w[p].serve_until, until_mono_ms);
}

static uint64_t lease_position(void *ctx, uint32_t p)
{
    pk_pworkers *g = ctx;

    return p < g->n ? pk_pworker_position(&g->w[p]) : 0;
}

static json_t *bits(uint64_t mask, uint32_t n)
{
    json_t *a = json_array();

    for (uint32_t p = 0; p < n && a; p++) {
        if (mask & (1ull << p))
            json_array_append_new(a, json_integer(p));
    }
    return a;
}

/* Health: the partitions served here, those nobody serves, the live instances. */
static void serving_health(void *ctx, json_t *doc)
{
    pk_pworkers *g = ctx;

    json_object_set_new(doc, "partitions_served", bits(atomic_load(&g->serving), (uint32_t)g->n));
    json_object_set_new(doc, "partitions_unowned",
                        bits(pk_leases_unowned(g->leases), (uint32_t)g->n));
    json_object_set_new(doc, "instances", json_integer(pk_leases_members(g->leases)));
}

pk_status pk_pworkers_serve(pk_pworkers *g, pk_bus *bus, const char *owned, uint32_t partitions)
{
    char holder[64];
    uint64_t pinned = 0;
    pk_lease_cfg lc;
    pk_status st;

    if (strcmp(owned, "auto") != 0 &&
        (st = pk_partitions_parse(owned, partitions, &pinned)) != PK_OK)
        return st;
    if ((st = pk_pworkers_init(g, partitions)) != PK_OK)
        return st;
    pk_stable_name(g->common, g->prefix, holder, sizeof(holder));
    lc = (pk_lease_cfg){.service = g->prefix,
                        .instance = holder,
                        .partitions = partitions,
                        .pinned = pinned,
                        .ttl_ms = 8000,
                        .start = lease_start,
                        .stop = lease_stop,
                        .position = lease_position,
                        .fence = lease_fence,
                        .ctx = g};
    if ((st = pk_leases_start(&g->leases, bus, &lc)) != PK_OK)
        return st;
    g->svc->health_extra_ctx = g;
    g->svc->health_extra = serving_health;
    return PK_OK;
}

void pk_pworkers_close(pk_pworkers *g)
{
    if (g->svc)
        g->svc->health_extra = NULL;
    pk_leases_stop(g->leases); /* stops the partitions it started, and lets the leases go */
    g->leases = NULL;
    for (size_t i = 0; i < g->n; i++) {
        if (g->w[i].started)
            atomic_store(&g->w[i].stop, true); /* all at once, then wait for each */
    }
    for (size_t i = 0; i < g->n; i++)
        pk_pworker_stop(g, (uint32_t)i);
    free(g->w);
    g->w = NULL;
    g->n = 0;
}
