#include "scorer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/log.h"

void scorer_metrics_init(scorer *s)
{
    pk_metric *m = s->m;

    m[SM_VERDICTS] = (pk_metric){"pactum_scorer_verdicts_total", NULL,
                                 "Verdicts taken from PACTUM_VERDICTS", PK_COUNTER, 0};
    m[SM_DUPLICATES] = (pk_metric){"pactum_scorer_duplicates_total", NULL,
                                   "Verdicts already applied (redelivered) and skipped",
                                   PK_COUNTER, 0};
    m[SM_MALFORMED] = (pk_metric){"pactum_scorer_malformed_total", NULL,
                                  "Verdicts that did not decode (dead-lettered)", PK_COUNTER, 0};
    m[SM_CHANGES] = (pk_metric){"pactum_scorer_trust_changes_total", NULL,
                                "Trust changes published", PK_COUNTER, 0};
    m[SM_TIER_CHANGES] = (pk_metric){"pactum_scorer_tier_changes_total", NULL,
                                     "Tier changes published", PK_COUNTER, 0};
    m[SM_CONTAINMENTS] = (pk_metric){"pactum_scorer_containments_total", NULL,
                                     "Agents contained or suspended", PK_COUNTER, 0};
    m[SM_CONTAINMENT_MS] = (pk_metric){"pactum_scorer_last_containment_ms", NULL,
                                       "Milliseconds from ingest of the violating event to the "
                                       "last containment decision",
                                       PK_GAUGE, 0};
    m[SM_BATCH_RETRIES] = (pk_metric){"pactum_scorer_batch_retries_total", NULL,
                                      "Batch attempts that failed and were retried",
                                      PK_COUNTER, 0};
    m[SM_LMDB_USED] = (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes",
                                  PK_GAUGE, 0};
    m[SM_LMDB_MAP] =
        (pk_metric){"pactum_lmdb_map_bytes", NULL, "LMDB map size, in bytes", PK_GAUGE, 0};
}

/* Agents touched by one batch, written back once at the end. */
typedef struct touched {
    pk_trust **t;   /* states */
    size_t n, cap;  /* count and room */
} touched;

static pk_status trust_get(scorer *s, MDB_txn *txn, touched *tc, const char *agent,
                           pk_trust **out)
{
    Pactum__V1__TrustState *m = NULL;
    pk_trust *t;
    pk_status st;

    for (size_t i = 0; i < tc->n; i++) {
        if (strcmp(tc->t[i]->agent_id, agent) == 0) {
            *out = tc->t[i];
            return PK_OK;
        }
    }
    if (tc->n == tc->cap) {
        size_t cap = tc->cap ? tc->cap * 2 : 64;
        pk_trust **grown = realloc(tc->t, cap * sizeof(*grown));
        if (!grown)
            return PK_ERR(PK_ENOMEM, "cannot grow the batch");
        tc->t = grown;
        tc->cap = cap;
    }
    if (!(t = malloc(sizeof(*t))))
        return PK_ERR(PK_ENOMEM, "cannot allocate trust state");
    st = pk_get_msg(txn, s->agents, agent, strlen(agent), &pactum__v1__trust_state__descriptor,
                    (ProtobufCMessage **)&m);
    if (st == PK_OK) {
        pk_trust_from_msg(t, m);
        pactum__v1__trust_state__free_unpacked(m, NULL);
    } else if (st == PK_ENOTFOUND) {
        pk_trust_init(t, agent, pk_now_ms());
    } else {
        free(t);
        return st;
    }
    tc->t[tc->n++] = t;
    *out = t;
    return PK_OK;
}

static pk_status put_trust(scorer *s, MDB_txn *txn, const pk_trust *t)
{
    static _Thread_local pk_trust_msg_storage storage;
    Pactum__V1__TrustState m;

    pk_trust_to_msg(t, &m, &storage);
    return pk_put_msg(txn, s->agents, t->agent_id, strlen(t->agent_id), &m.base);
}

/* Publish the change a verdict made, and keep tier changes for history. */
static pk_status publish_change(pk_pworker *w, MDB_txn *txn, pk_trust *t,
                                const pk_verdict_msg *v, const pk_trust_effect *fx)
{
    static _Thread_local pk_trust_msg_storage storage;
    scorer *s = w->ctx;
    Pactum__V1__TrustChange ch = PACTUM__V1__TRUST_CHANGE__INIT;
    Pactum__V1__TrustState state;
    Pactum__V1__TierChange tc = PACTUM__V1__TIER_CHANGE__INIT;
    Pactum__V1__Factor factor = PACTUM__V1__FACTOR__INIT, *factors[1] = {&factor};
    char subject[128], msg_id[PK_ID_MAX + 24], fname[2 * PK_ID_MAX + 16], fdetail[400];
    uint8_t *buf = NULL, key[PK_ID_MAX + 9];
    size_t len = 0, alen = strlen(t->agent_id);
    int64_t now = pk_now_ms();
    pk_status st;

    /* One change per verdict, numbered by it: the same on every replay. */
    t->change_seq = v->vseq;
    pk_trust_to_msg(t, &state, &storage);
    ch.agent_id = t->agent_id;
    ch.change_seq = t->change_seq;
    ch.state = &state;
    ch.cause = (Pactum__V1__Verdict *)v;
    snprintf(fname, sizeof(fname), "clause %s/%s", v->pact_id, v->clause_id);
    snprintf(fdetail, sizeof(fdetail), "%s verdict #%llu: %s", pk_outcome_name(v->outcome),
             (unsigned long long)v->vseq, v->detail);
    factor.name = fname;
    factor.delta_ppm = fx->score_delta;
    factor.detail = fdetail;
    ch.n_factors = 1;
    ch.factors = factors;
    ch.published_ms = now;
    if (fx->from_tier != fx->to_tier) {
        tc.from = (Pactum__V1__Tier)fx->from_tier;
        tc.to = (Pactum__V1__Tier)fx->to_tier;
        tc.cause = (char *)fx->cause;
        tc.rule = (char *)fx->rule;
        tc.at_ms = now;
        tc.verdict = (Pactum__V1__Verdict *)v;
        if (fx->to_tier >= PACTUM__V1__TIER__TIER_CONTAINED &&
            fx->from_tier < PACTUM__V1__TIER__TIER_CONTAINED && v->ingest_ms > 0) {
            tc.containment_ms = now - v->ingest_ms;
            pk_metric_add(&s->m[SM_CONTAINMENTS], 1);
            pk_metric_set(&s->m[SM_CONTAINMENT_MS], tc.containment_ms);
        }
        ch.tier_change = &tc;
        memcpy(key, t->agent_id, alen);
        key[alen] = 0;
        pk_be64_put(key + alen + 1, t->change_seq);
        if ((st = pk_put_msg(txn, s->tiers, key, alen + 9, &tc.base)) != PK_OK)
            return st;
        pk_metric_add(&s->m[SM_TIER_CHANGES], 1);
        PK_INFO("%s: %s -> %s (%s)", t->agent_id, pk_tier_name(tc.from), pk_tier_name(tc.to),
                fx->cause);
    }
    if ((st = pk_pack(&ch.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_TRUST, t->agent_id);
    snprintf(msg_id, sizeof(msg_id), "%s:%llu", t->agent_id, (unsigned long long)t->change_seq);
    st = pk_bus_publish_async(w->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK)
        pk_metric_add(&s->m[SM_CHANGES], 1);
    return st;
}

pk_status scorer_process(pk_pworker *w, natsMsgList *list)
{
    scorer *s = w->ctx;
    MDB_txn *txn = NULL;
    touched tc = {0};
    pk_status st;

    if ((st = pk_txn_begin(s->store, true, &txn)) != PK_OK)
        goto retry;
    pk_bus_publish_reset(w->bus);
    for (int i = 0; i < list->Count; i++) {
        natsMsg *msg = list->Msgs[i];
        pk_verdict_msg *v = pactum__v1__verdict__unpack(NULL, (size_t)natsMsg_GetDataLength(msg),
                                                        (const uint8_t *)natsMsg_GetData(msg));
        pk_trust_effect fx;
        pk_trust *t = NULL;

        pk_metric_add(&s->m[SM_VERDICTS], 1);
        if (!v || pk_id_check("agent id", v->agent_id) != PK_OK) {
            uint64_t seq = 0;
            char id[48];
            pk_rejection r = {.reason = PACTUM__V1__REASON__REASON_MALFORMED,
                              .message = "verdict in PACTUM_VERDICTS does not decode",
                              .subject = natsMsg_GetSubject(msg),
                              .data = (const uint8_t *)natsMsg_GetData(msg),
                              .len = (size_t)natsMsg_GetDataLength(msg)};
            pk_msg_meta(msg, &seq, NULL, NULL);
            r.source_seq = seq;
            snprintf(id, sizeof(id), "scorer:%llu", (unsigned long long)seq);
            if (v)
                pactum__v1__verdict__free_unpacked(v, NULL);
            pk_metric_add(&s->m[SM_MALFORMED], 1);
            if ((st = pk_reject_publish(w->bus, "scorer", &r, id, false)) != PK_OK)
                goto retry;
            continue;
        }
        st = trust_get(s, txn, &tc, v->agent_id, &t);
        if (st == PK_OK) {
            pk_trust_apply(t, v, pk_now_ms(), &fx);
            if (!fx.applied)
                pk_metric_add(&s->m[SM_DUPLICATES], 1);
            else
                st = publish_change(w, txn, t, v, &fx);
        }
        pactum__v1__verdict__free_unpacked(v, NULL);
        if (st != PK_OK)
            goto retry;
    }
    for (size_t i = 0; i < tc.n; i++) {
        if ((st = put_trust(s, txn, tc.t[i])) != PK_OK)
            goto retry;
    }
    if ((st = pk_bus_publish_wait(w->bus, 10000)) != PK_OK)
        goto retry;
    st = pk_txn_commit(txn);
    txn = NULL;
    if (st != PK_OK)
        goto retry;
    for (int i = 0; i < list->Count; i++)
        natsMsg_Ack(list->Msgs[i], NULL);
    goto out;
retry:
    pk_txn_abort(txn);
    pk_metric_add(&s->m[SM_BATCH_RETRIES], 1);
out:
    for (size_t i = 0; i < tc.n; i++)
        free(tc.t[i]);
    free(tc.t);
    return st;
}
