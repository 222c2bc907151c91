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

pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask)
{
    g->w = calloc(partitions, sizeof(*g->w));
    g->n = 0;
    if (!g->w)
        return PK_ERR(PK_ENOMEM, "cannot allocate workers");
    for (uint32_t p = 0; p < partitions; p++) {
        pk_pworker *w;
        char name[96], durable[48], filter[96];
        pk_bus_opts bo = {.url = g->common->nats_url,
                          .name = name,
                          .user = g->common->nats_user,
                          .password = g->common->nats_password,
                          .send_asap = true,
                          .connect_wait_ms = 10000,
                          .stop = (volatile int *)&pk_shutdown};
        pk_status st;

        if (!(mask & (1ull << p)))
            continue;
        w = &g->w[g->n++];
        w->group = g;
        w->partition = p;
        snprintf(name, sizeof(name), "%s-p%u", g->svc->instance, p);
        snprintf(durable, sizeof(durable), "%s-p%u", g->prefix, p);
        snprintf(filter, sizeof(filter), "%s.%u.%s", g->subject, p, g->tail ? g->tail : "*");
        if ((st = pk_bus_connect(&w->bus, &bo)) != PK_OK ||
            (st = pk_consumer_open_ordered(&w->consumer, w->bus, g->stream, durable, filter,
                                           g->batch, 10000)) != PK_OK) {
            return PK_WRAP(st, "partition %u", p);
        }
    }
    return PK_OK;
}

/*
 * Process a batch until it succeeds. A failed batch is retried in place, in
 * the same order, never nak'ed: the per-partition state assumes order, and
 * the consumer (max ack pending = batch) delivers nothing newer meanwhile.
 * Returns PK_OK, PK_ESTORE_FULL, or PK_ESHUTDOWN (left unacknowledged).
 */
pk_status pk_batch_until_done(pk_status (*fn)(void *ctx, natsMsgList *list), void *ctx,
                              natsMsgList *list, const char *what)
{
    int64_t backoff = 100;
    pk_status st;

    while ((st = fn(ctx, list)) != PK_OK && st != PK_ESTORE_FULL) {
        PK_WARN("%s: batch of %d not applied, retrying: %s", what, list->Count, pk_error_msg());
        for (int64_t slept = 0; slept < backoff && !pk_shutdown; slept += 100)
            pk_sleep_ms(100);
        if (pk_shutdown)
            return PK_ESHUTDOWN;
        pk_msgs_in_progress(list);
        backoff = backoff < 3200 ? backoff * 2 : 5000;
    }
    return st;
}

static pk_status call_process(void *ctx, natsMsgList *list)
{
    pk_pworker *w = ctx;

    return w->group->process(w, list);
}

static void *worker_main(void *arg)
{
    pk_pworker *w = arg;
    pk_pworkers *g = w->group;
    char what[64];
    int64_t next_tick = 0;
    /*
     * The clock's work (a clause silent too long) waits until the consumer has
     * caught up: at start, or behind a backlog, the evidence it looks for may
     * be waiting in the stream, and judging by the wall clock then would report
     * silence that was not there. Under a backlog that never clears, the
     * check waits for it.
     */
    bool caught_up = false;

    snprintf(what, sizeof(what), "%s partition %u", g->prefix, w->partition);
    while (!pk_shutdown) {
        natsMsgList list;
        pk_status st;

        if (g->tick && caught_up && pk_mono_ms() >= next_tick) {
            if (g->tick(w, pk_now_ms()) != PK_OK)
                PK_WARN("%s: clock work failed, trying again later: %s", what, pk_error_msg());
            next_tick = pk_mono_ms() + g->tick_ms;
        }
        st = pk_consumer_fetch(&w->consumer, &list, g->batch, g->tick ? g->tick_ms / 2 : 500);

        if (st == PK_ETIMEOUT) {
            caught_up = true; /* nothing was waiting */
            continue;
        }
        if (st != PK_OK) {
            PK_WARN("%s: %s", what, pk_error_msg());
            pk_sleep_ms(200);
            continue;
        }
        if (list.Count > 0) {
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, list.Msgs[list.Count - 1]) == NATS_OK) {
                long long sum = 0;
                atomic_store(&w->pending, (long long)meta->NumPending);
                caught_up = meta->NumPending == 0;
                jsMsgMetaData_Destroy(meta);
                for (size_t i = 0; g->lag && i < g->n; i++)
                    sum += atomic_load(&g->w[i].pending);
                if (g->lag)
                    pk_metric_set(g->lag, sum);
            }
        }
        st = pk_batch_until_done(call_process, w, &list, what);
        natsMsgList_Destroy(&list);
        if (st == PK_ESTORE_FULL) {
            PK_ERROR("%s: %s; stopped consuming", what, pk_error_msg());
            pk_service_set_health(g->svc, false, pk_error_msg());
            while (!pk_shutdown)
                pk_sleep_ms(200);
        }
    }
    return NULL;
}

pk_status pk_pworkers_start(pk_pworkers *g)
{
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
        pk_consumer_close(&g->w[i].consumer);
        pk_bus_close(g->w[i].bus);
    }
    free(g->w);
    g->w = NULL;
    g->n = 0;
}
