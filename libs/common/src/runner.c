/*
 * runner - the one consumer loop (pk/runner.h).
 */
#include "pk/runner.h"

#include "pk/clock.h"
#include "pk/log.h"

void pk_pause_ms(int64_t ms)
{
    int64_t end = pk_mono_ms() + ms;

    for (int64_t now = pk_mono_ms(); now < end && !pk_shutdown; now = pk_mono_ms())
        pk_sleep_ms(end - now < 50 ? end - now : 50);
}

/*
 * A failed batch is retried in place, in the same order, never nak'ed: a
 * reader whose state depends on order (max ack pending = batch) is handed
 * nothing newer meanwhile, and the others lose nothing by waiting.
 */
/*
 * Retry fn on list until it is applied, the map is full, (stop or) shutdown,
 * or (consumer) its lease may have lapsed: PK_ECONFLICT, left unacknowledged.
 */
static pk_status until_done(pk_batch_fn fn, void *ctx, natsMsgList *list, const char *what,
                            pk_metric *retries, const atomic_bool *stop,
                            const pk_consumer *consumer, natsMsgList *ahead)
{
    int64_t backoff = 100;
    pk_status st;

    while ((st = fn(ctx, list)) != PK_OK && st != PK_ESTORE_FULL) {
        if (consumer && pk_consumer_fenced(consumer))
            return PK_ECONFLICT;
        if (retries)
            pk_metric_add(retries, 1);
        PK_WARN("%s: batch of %d not applied, retrying: %s", what, list->Count, pk_error_msg());
        pk_pause_ms(backoff);
        if (pk_shutdown || (stop && atomic_load(stop)))
            return PK_ESHUTDOWN;
        pk_msgs_in_progress(list);
        if (ahead) /* read ahead: it waits for this batch, and must not be delivered again */
            pk_msgs_in_progress(ahead);
        backoff = backoff < 3200 ? backoff * 2 : 5000;
    }
    return st;
}

pk_status pk_batch_until_done(pk_batch_fn fn, void *ctx, natsMsgList *list, const char *what,
                              pk_metric *retries)
{
    return until_done(fn, ctx, list, what, retries, NULL, NULL, NULL);
}

/* Messages still waiting after the last one of the batch. */
static long long pending_after(natsMsgList *list)
{
    jsMsgMetaData *meta = NULL;
    long long n = 0;

    if (list->Count > 0 && natsMsg_GetMetaData(&meta, list->Msgs[list->Count - 1]) == NATS_OK) {
        n = (long long)meta->NumPending;
        jsMsgMetaData_Destroy(meta);
    }
    return n;
}

/* The batch read ahead, if any, will not be applied here: undo its preparation and hand it
 * back, to be delivered again at once rather than after the ack wait. */
static void drop_ahead(pk_runner *r)
{
    if (r->ahead.Count <= 0)
        return;
    if (r->discard)
        r->discard(r->ctx, &r->ahead);
    for (int i = 0; i < r->ahead.Count; i++)
        natsMsg_Nak(r->ahead.Msgs[i], NULL);
    natsMsgList_Destroy(&r->ahead);
    r->ahead = (natsMsgList){0};
}

void pk_runner_read_ahead(pk_runner *r)
{
    if (!r->prepare || r->ahead.Count > 0 || r->pending <= 0 || pk_shutdown ||
        (r->stop && atomic_load(r->stop)))
        return;
    if (pk_consumer_fetch_ahead(r->consumer, &r->ahead, r->batch, PK_AHEAD_BYTES) == PK_OK)
        r->prepare(r->ctx, &r->ahead);
}

void pk_runner_loop(pk_runner *r)
{
    pk_metric *retries = r->svc ? &r->svc->common[PK_SM_RETRIES] : NULL;
    /*
     * Idle work that judges by the clock (a clause silent too long) waits
     * until the reader has caught up: at start, or behind a backlog, the
     * evidence it looks for may be waiting in the stream.
     */
    bool caught_up = false;

    /* a batch read ahead is applied before stopping, as the one before it was */
    while (r->ahead.Count > 0 || (!pk_shutdown && !(r->stop && atomic_load(r->stop)))) {
        natsMsgList list;
        long long pending;
        int count;
        pk_status st;

        /* a lease that may have lapsed: nothing is read, judged by the clock or written
         * until it is renewed (or the partition is let go) */
        if (pk_consumer_fenced(r->consumer)) {
            drop_ahead(r);
            pk_consumer_close(r->consumer);
            pk_pause_ms(100);
            continue;
        }
        if (r->idle && r->idle(r->ctx, caught_up) != PK_OK)
            PK_WARN("%s: %s; trying again later", r->what, pk_error_msg());
        if (r->ahead.Count > 0) { /* read ahead while the batch before was applied */
            list = r->ahead;
            r->ahead = (natsMsgList){0};
            st = PK_OK;
        } else {
            st = pk_consumer_fetch(r->consumer, &list, r->batch, r->wait_ms);
        }
        if (r->consumer->stalls != r->stalls) { /* found stalled, and bound again */
            if (r->svc)
                pk_metric_add(&r->svc->common[PK_SM_STALLS],
                              (long long)(r->consumer->stalls - r->stalls));
            pk_incident("%s: its consumer stalled (messages waiting, none delivered) and was "
                        "bound again",
                        r->what);
            r->stalls = r->consumer->stalls;
        }
        if (st == PK_ETIMEOUT) {
            caught_up = true; /* nothing was waiting */
            continue;
        }
        if (st != PK_OK) {
            PK_WARN("%s: %s", r->what, pk_error_msg());
            pk_pause_ms(200);
            continue;
        }
        pending = pending_after(&list);
        caught_up = pending == 0;
        if (r->lag)
            pk_metric_add(r->lag, pending - r->pending);
        r->pending = pending;
        if (r->gather_ms > 0 && list.Count < r->batch)
            pk_pause_ms(r->gather_ms);
        count = list.Count;
        st = until_done(r->process, r->ctx, &list, r->what, retries, r->stop, r->consumer,
                        &r->ahead);
        natsMsgList_Destroy(&list);
        if (st != PK_OK)
            drop_ahead(r);
        if (st == PK_ECONFLICT) {
            /* left unacknowledged: if the lease is renewed, read again from our position */
            PK_WARN("%s: lease not renewed in time; a batch of %d left for the next reader",
                    r->what, count);
            pk_consumer_close(r->consumer);
        }
        if (st == PK_ESTORE_FULL) {
            PK_ERROR("%s: %s; stopped consuming", r->what, pk_error_msg());
            if (r->svc)
                pk_service_set_health(r->svc, false, pk_error_msg());
            while (!pk_shutdown && !(r->stop && atomic_load(r->stop)))
                pk_pause_ms(200);
        }
    }
    drop_ahead(r);
}
