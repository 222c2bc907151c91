/*
 * receipts - the envelopes this gateway puts on the raw stream, and the
 * receipts ingest sends back for them on pactum.ingest.receipt.<signer>.
 *
 * A receipt can come before the publish acknowledgement that says which
 * sequence the envelope got, so receipts no one waits for yet are kept, a
 * bounded number of them, newest over oldest; one no one claims is dropped
 * when its slot is needed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "pk/clock.h"
#include "pk/log.h"

#define EARLY 1024 /* receipts kept for a waiter that has not come yet */

typedef struct waiter {
    uint64_t seq;
    Pactum__V1__EnvelopeReceipt *got;
    struct waiter *next;
} waiter;

struct gw_receipts {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a receipt arrived */
    waiter *waiting;
    Pactum__V1__EnvelopeReceipt *early[EARLY];
    size_t next; /* the slot the next early receipt takes */
    natsSubscription *sub;
};

static void on_receipt(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    gw_receipts *r = closure;
    Pactum__V1__EnvelopeReceipt *rc = pactum__v1__envelope_receipt__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    Pactum__V1__EnvelopeReceipt *dropped = NULL;

    (void)nc, (void)sub;
    natsMsg_Destroy(msg);
    if (!rc)
        return;
    pthread_mutex_lock(&r->mu);
    for (waiter *w = r->waiting; w; w = w->next) {
        if (w->seq == rc->raw_seq && !w->got) {
            w->got = rc;
            rc = NULL;
            break;
        }
    }
    if (rc) {
        dropped = r->early[r->next];
        r->early[r->next] = rc;
        r->next = (r->next + 1) % EARLY;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (dropped)
        pactum__v1__envelope_receipt__free_unpacked(dropped, NULL);
}

pk_status gw_receipts_start(gw_receipts **out, pk_bus *bus)
{
    gw_receipts *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;
    natsStatus s;

    *out = NULL;
    if (!r)
        return PK_ERR(PK_ENOMEM, "cannot allocate the receipts table");
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    s = natsConnection_Subscribe(&r->sub, bus->nc, "pactum.ingest.receipt.*", on_receipt, r);
    if (s == NATS_OK)
        s = natsConnection_Flush(bus->nc);
    if (s != NATS_OK) {
        pk_status st = pk_nats_err(s, 0, "pactum.ingest.receipt.*");
        gw_receipts_stop(r);
        return st;
    }
    *out = r;
    return PK_OK;
}

void gw_receipts_stop(gw_receipts *r)
{
    if (!r)
        return;
    if (r->sub) { /* drained, so that no callback still runs when r is freed (bounded: 2 s) */
        natsSubscription_DrainTimeout(r->sub, 2000);
        natsSubscription_WaitForDrainCompletion(r->sub, 2000);
        natsSubscription_Destroy(r->sub);
    }
    for (size_t i = 0; i < EARLY; i++) {
        if (r->early[i])
            pactum__v1__envelope_receipt__free_unpacked(r->early[i], NULL);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* The receipt for seq, waiting until deadline (monotonic ms); NULL if none came. */
static Pactum__V1__EnvelopeReceipt *await(gw_receipts *r, uint64_t seq, int64_t deadline)
{
    waiter w = {.seq = seq}, **pp;
    Pactum__V1__EnvelopeReceipt *got = NULL;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < EARLY; i++) {
        if (r->early[i] && r->early[i]->raw_seq == seq) {
            got = r->early[i];
            r->early[i] = NULL;
            break;
        }
    }
    if (!got) {
        w.next = r->waiting;
        r->waiting = &w;
        while (!w.got && pk_mono_ms() < deadline) {
            struct timespec ts = {.tv_sec = deadline / 1000,
                                  .tv_nsec = (long)(deadline % 1000) * 1000000L};
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        for (pp = &r->waiting; *pp; pp = &(*pp)->next) {
            if (*pp == &w) {
                *pp = w.next;
                break;
            }
        }
        got = w.got;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

pk_status gw_publish(gateway *g, const char *signer, const uint8_t *env, size_t len,
                     bool want_receipt, uint64_t *seq, Pactum__V1__EnvelopeReceipt **receipt)
{
    char subject[PK_ID_MAX + 32];
    pk_status st;

    *receipt = NULL;
    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, signer);
    if ((st = pk_bus_publish_sync(g->bus, subject, env, len, NULL, false, 0, seq, NULL)) != PK_OK)
        return st;
    pk_metric_add(&g->m[GM_ENVELOPES], 1);
    if (!want_receipt)
        return PK_OK;
    *receipt = await(g->receipts, *seq, pk_mono_ms() + g->cfg->wait_ms);
    pk_metric_add(&g->m[*receipt ? GM_RECEIPTS : GM_RECEIPT_LATE], 1);
    return PK_OK;
}

bool gw_authenticate(gateway *g, const pk_signed_msg *env, Pactum__V1__Reason *reason, char *why,
                     size_t wlen)
{
    Pactum__V1__AgentRecord *rec = NULL;
    MDB_txn *txn = NULL;
    pk_status st = PK_OK;

    if (pk_signer_id_check("signer_id", env->signer_id) != PK_OK) {
        *reason = PACTUM__V1__REASON__REASON_INVALID_FIELD;
        snprintf(why, wlen, "%s", pk_error_msg());
        return false;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((st = pk_txn_begin(g->store, false, &txn)) == PK_OK) {
            st = pk_registry_agent(g->reg, txn, env->signer_id, &rec, NULL);
            pk_txn_abort(txn);
        }
        /* registered a moment ago: read what is new, at most once a second */
        if (st != PK_ENOTFOUND || attempt > 0 || pk_registry_refresh(g->reg, 1000) != PK_OK)
            break;
    }
    if (st != PK_OK) {
        *reason = st == PK_ENOTFOUND ? PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER
                                     : PACTUM__V1__REASON__REASON_INTERNAL;
        snprintf(why, wlen,
                 st == PK_ENOTFOUND ? "%s is not registered"
                                    : "%s: cannot read the "
                                      "registry",
                 env->signer_id);
        return false;
    }
    if (rec->agent_key.len != PK_PUBKEY_BYTES || env->signer_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(rec->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        *reason = PACTUM__V1__REASON__REASON_BAD_SIGNATURE;
        snprintf(why, wlen, "signer_key is not the key registered for %s", env->signer_id);
    } else if (pk_envelope_verify(env, rec->agent_key.data) != PK_OK) {
        *reason = PACTUM__V1__REASON__REASON_BAD_SIGNATURE;
        snprintf(why, wlen, "the signature does not verify under the key registered for %s",
                 env->signer_id);
    } else {
        pactum__v1__agent_record__free_unpacked(rec, NULL);
        return true;
    }
    pactum__v1__agent_record__free_unpacked(rec, NULL);
    return false;
}
