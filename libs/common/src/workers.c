#include "pk/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
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

pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask)
{
    g->w = calloc(partitions, sizeof(*g->w));
    g->n = 0;
    if (!g->w)
        return PK_ERR(PK_ENOMEM, "cannot allocate workers");
    for (uint32_t p = 0; p < partitions; p++) {
        pk_pworker *w;
        char name[96], durable[48], filter[96];
        pk_bus_opts bo;
        pk_status st;

        if (!(mask & (1ull << p)))
            continue;
        snprintf(name, sizeof(name), "%s-p%u", g->svc->instance, p);
        bo = pk_common_bus_opts(g->common, name);
        bo.send_asap = true;
        bo.connect_wait_ms = 10000;
        bo.stop = (volatile int *)&pk_shutdown;
        w = &g->w[g->n++];
        w->group = g;
        w->partition = p;
        snprintf(w->what, sizeof(w->what), "%s partition %u", g->prefix, p);
        snprintf(durable, sizeof(durable), "%s-p%u", g->prefix, p);
        snprintf(filter, sizeof(filter), "%s.%u.%s", g->subject, p, g->tail ? g->tail : "*");
        if ((st = pk_bus_connect(&w->bus, &bo)) != PK_OK ||
            (st = pk_consumer_open_ordered(&w->consumer, w->bus, g->stream, durable, filter,
                                           g->batch, 10000, position_of, w)) != PK_OK)
            return PK_WRAP(st, "partition %u", p);
        w->runner = (pk_runner){.what = w->what,
                                .consumer = &w->consumer,
                                .svc = g->svc,
                                .batch = g->batch,
                                .wait_ms = 500,
                                .process = call_process,
                                .idle = g->idle ? call_idle : NULL,
                                .ctx = w,
                                .lag = &g->svc->common[PK_SM_LAG]};
    }
    return PK_OK;
}

static void *worker_main(void *arg)
{
    pk_pworker *w = arg;

    pk_runner_loop(&w->runner);
    return NULL;
}

pk_status pk_pworkers_start(pk_pworkers *g)
{
    for (size_t i = 0; i < g->n && g->ctx_size; i++) {
        pk_status st;
        if (!(g->w[i].ctx = calloc(1, g->ctx_size)))
            return PK_ERR(PK_ENOMEM, "cannot allocate the data of partition %u", g->w[i].partition);
        if (g->ctx_init && (st = g->ctx_init(&g->w[i])) != PK_OK)
            return st;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (pthread_create(&g->w[i].thread, NULL, worker_main, &g->w[i]) != 0)
            return PK_ERR(PK_ENOMEM, "cannot start the thread of partition %u", g->w[i].partition);
        g->w[i].started = true;
    }
    return PK_OK;
}

void pk_pworkers_close(pk_pworkers *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->w[i].started)
            pthread_join(g->w[i].thread, NULL);
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->ctx_size) { /* the group made it */
            if (g->w[i].ctx && g->ctx_free)
                g->ctx_free(&g->w[i]);
            free(g->w[i].ctx);
            g->w[i].ctx = NULL;
        }
        pk_consumer_close(&g->w[i].consumer);
        pk_bus_close(g->w[i].bus);
    }
    free(g->w);
    g->w = NULL;
    g->n = 0;
}
