/*
 * The audit trail of authorize decisions, pipelined: a decision's record is sent to
 * PACTUM_AUDIT before the decision is answered, on the connection that carries the answer,
 * and the oracle does not wait for the stream's acknowledgement. The server therefore has a
 * decision's record before anyone has its answer; the acknowledgements come back on their
 * own thread. A record the stream did not store (refused, or no acknowledgement in time) is
 * sent again, with the same de-duplication id, every AUDIT_RETRY_MS until it is stored;
 * while any such record waits, no decision is made. At most AUDIT_MAX records are on their
 * way at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"

#define AUDIT_MAX      4096 /* records sent and not yet acknowledged, or waiting to go again */
#define AUDIT_ACK_MS   5000 /* a record not acknowledged in this long is sent again */
#define AUDIT_RETRY_MS 250  /* how often records that were not stored go again */
#define AUDIT_ROOM_MS  1000 /* how long a decision waits for room among AUDIT_MAX */
#define AUDIT_DRAIN_MS 3000 /* how long stopping waits for the last acknowledgements */

struct oracle_audit {
    oracle *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* an acknowledgement came, or stop */
    size_t in_flight;          /* sent and not acknowledged */
    natsMsg *again[AUDIT_MAX]; /* not stored: to be sent again */
    size_t n_again;
    char (*failed)[PK_ID_MAX + 1]; /* ids of records not stored at their first attempt, and */
    size_t n_failed;               /* not stored since (decisions wait while there are any) */
    char last_error[256];
    bool stop;
    pthread_t thread;
};

/* Wait on cv for ms at most (cv on the monotonic clock). */
static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    int64_t until = pk_mono_ms() + ms;
    struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000L};

    pthread_cond_timedwait(cv, mu, &ts);
}

static void gauge(oracle_audit *a)
{
    pk_metric_set(&a->o->m[OM_AUDIT_PENDING], (long long)(a->in_flight + a->n_again));
}

/* The de-duplication id of a record (its decision id), into id. */
static void id_of(natsMsg *msg, char *id, size_t len)
{
    const char *v = NULL;

    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &v) != NATS_OK || !v)
        v = "";
    snprintf(id, len, "%s", v);
}

/* An acknowledgement (the bus's hook; a->mu is not held). */
static void on_ack(void *ctx, natsMsg *msg, const char *err)
{
    oracle_audit *a = ctx;
    char id[PK_ID_MAX + 1];

    pthread_mutex_lock(&a->mu);
    if (a->in_flight)
        a->in_flight--;
    if (!err) {
        if (a->n_failed) { /* stored at last: decisions go on once all such are */
            id_of(msg, id, sizeof(id));
            for (size_t i = 0; i < a->n_failed; i++) {
                if (strcmp(a->failed[i], id) == 0) {
                    memcpy(a->failed[i], a->failed[--a->n_failed], sizeof(a->failed[i]));
                    PK_INFO("decision %s is recorded in %s after all", id, PK_STREAM_AUDIT);
                    break;
                }
            }
        }
        natsMsg_Destroy(msg);
    } else {
        bool known = false;
        id_of(msg, id, sizeof(id));
        for (size_t i = 0; i < a->n_failed && !known; i++)
            known = strcmp(a->failed[i], id) == 0;
        if (!known && a->n_failed < AUDIT_MAX)
            snprintf(a->failed[a->n_failed++], PK_ID_MAX + 1, "%s", id);
        if (!known)
            PK_WARN("decision %s was answered and %s did not store its record (%s): sending "
                    "it again, and making no decision until it is stored",
                    id, PK_STREAM_AUDIT, err);
        snprintf(a->last_error, sizeof(a->last_error), "%s", err);
        if (a->n_again < AUDIT_MAX)
            a->again[a->n_again++] = msg;
        else
            natsMsg_Destroy(msg); /* cannot happen: in flight and again are AUDIT_MAX at most */
    }
    gauge(a);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Send the records that were not stored again (a->mu held; released while sending). */
static void send_again(oracle_audit *a)
{
    natsMsg *batch[AUDIT_MAX];
    size_t n = a->n_again;

    if (!n || !atomic_load(&a->o->bus->connected))
        return;
    memcpy(batch, a->again, n * sizeof(*batch));
    a->n_again = 0;
    a->in_flight += n;
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < n; i++) {
        pk_metric_add(&a->o->m[OM_AUDIT_RETRIES], 1);
        if (pk_bus_publish_again(a->o->bus, &batch[i], AUDIT_ACK_MS) == PK_OK)
            batch[i] = NULL;
    }
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < n; i++) {
        if (batch[i]) { /* not even sent: next round */
            a->in_flight--;
            a->again[a->n_again++] = batch[i];
        }
    }
    gauge(a);
}

static void *retry_main(void *arg)
{
    oracle_audit *a = arg;

    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        wait_ms(&a->cv, &a->mu, AUDIT_RETRY_MS);
        send_again(a);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

pk_status oracle_audit_start(oracle *o)
{
    oracle_audit *a = calloc(1, sizeof(*a));
    pthread_condattr_t ca;

    if (!a || !(a->failed = calloc(AUDIT_MAX, sizeof(*a->failed)))) {
        free(a);
        return PK_ERR(PK_ENOMEM, "out of memory");
    }
    a->o = o;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&a->thread, NULL, retry_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a->failed);
        free(a);
        return PK_ERR(PK_ENOMEM, "cannot start the audit thread");
    }
    pk_bus_on_acks(o->bus, "pactum.audit.", on_ack, a);
    o->audit = a;
    return PK_OK;
}

pk_status oracle_audit_send(oracle *o, const char *subject, const uint8_t *rec, size_t len,
                            const char *decision_id)
{
    oracle_audit *a = o->audit;
    int64_t until = pk_mono_ms() + AUDIT_ROOM_MS;
    pk_status st;

    if (!a)
        return PK_ERR(PK_EBUS, "no bus to record the decision on");
    pthread_mutex_lock(&a->mu);
    while (!a->stop && !a->n_failed && a->in_flight + a->n_again >= AUDIT_MAX &&
           pk_mono_ms() < until)
        wait_ms(&a->cv, &a->mu, 50);
    if (a->stop)
        st = PK_ERR(PK_ESHUTDOWN, "the oracle is stopping");
    else if (a->n_failed)
        st = PK_ERR(PK_EBUS, "%zu earlier decision record%s not stored in %s yet (%s)", a->n_failed,
                    a->n_failed == 1 ? " is" : "s are", PK_STREAM_AUDIT, a->last_error);
    else if (a->in_flight + a->n_again >= AUDIT_MAX)
        st = PK_ERR(PK_EBUS, "%zu decision records are still waiting for %s to store them",
                    a->in_flight + a->n_again, PK_STREAM_AUDIT);
    else if (!atomic_load(&o->bus->connected))
        st = PK_ERR(PK_EBUS, "the oracle is not connected to the bus");
    else
        st = PK_OK;
    if (st == PK_OK)
        a->in_flight++;
    gauge(a);
    pthread_mutex_unlock(&a->mu);
    if (st != PK_OK)
        return st;
    /* sent now (the bus is opened send_asap), ahead of the answer on the same connection */
    if ((st = pk_bus_publish_tracked(o->bus, subject, rec, len, decision_id, AUDIT_ACK_MS)) !=
        PK_OK) {
        pthread_mutex_lock(&a->mu);
        a->in_flight--;
        gauge(a);
        pthread_mutex_unlock(&a->mu);
    }
    return st;
}

void oracle_audit_stop(oracle *o)
{
    oracle_audit *a = o->audit;
    int64_t until = pk_mono_ms() + AUDIT_DRAIN_MS;

    if (!a)
        return;
    /* no decision is being made now (the responders and HTTP have stopped): wait for the
     * last acknowledgements, sending again what was not stored, for a bounded time */
    pthread_mutex_lock(&a->mu);
    while ((a->in_flight || a->n_again) && pk_mono_ms() < until) {
        send_again(a);
        wait_ms(&a->cv, &a->mu, 50);
    }
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pk_bus_on_acks(o->bus, NULL, NULL, NULL);
    for (size_t i = 0; i < a->n_again; i++) {
        char id[PK_ID_MAX + 1];
        id_of(a->again[i], id, sizeof(id));
        PK_ERROR("decision %s was answered and its record is not in %s: %s", id, PK_STREAM_AUDIT,
                 a->last_error);
        natsMsg_Destroy(a->again[i]);
    }
    if (a->in_flight)
        PK_ERROR("%zu decision records were not acknowledged by %s before the oracle stopped",
                 a->in_flight, PK_STREAM_AUDIT);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->failed);
    free(a);
    o->audit = NULL;
}
