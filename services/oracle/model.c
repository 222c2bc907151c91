/*
 * The read model: trust changes from PACTUM_TRUST applied to the reports,
 * tier histories, governance entries and violation index the answers read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/log.h"

void oracle_metrics_init(oracle *o)
{
#define PK_METRIC(id, type, name, labels, help) o->m[id] = (pk_metric){name, labels, help, type, 0};
#include "metrics.def"
#undef PK_METRIC
}

pk_status oracle_open_dbs(oracle *o)
{
    const pk_dbi_spec dbs[] = {{"reports", 0, &o->reports},        {"tiers", 0, &o->tiers},
                               {"governance", 0, &o->governance},  {"meta", 0, &o->meta},
                               {"violations", 0, &o->violations},  {"series", 0, &o->series},
                               {"settlements", 0, &o->settlements}};

    return pk_store_dbis(o->store, dbs, PK_NELEM(dbs));
}

static bool stops_agent(Pactum__V1__Tier t)
{
    return t == PACTUM__V1__TIER__TIER_CONTAINED || t == PACTUM__V1__TIER__TIER_SUSPENDED;
}

unsigned oracle_change_kinds(const Pactum__V1__TrustChange *ch)
{
    const Pactum__V1__TierChange *tc = ch->tier_change;
    Pactum__V1__GovernanceRecord__RecordCase gov =
        ch->governance ? ch->governance->record_case
                       : PACTUM__V1__GOVERNANCE_RECORD__RECORD__NOT_SET;
    unsigned k = 0;

    if (tc)
        k |= ORACLE_KIND_TIER;
    if (tc && stops_agent(tc->to) && !stops_agent(tc->from))
        k |= ORACLE_KIND_CONTAINED;
    if (tc && stops_agent(tc->from) && !stops_agent(tc->to))
        k |= ORACLE_KIND_REENTRY;
    if (ch->cause && ch->cause->violation)
        k |= ORACLE_KIND_VIOLATION;
    if (gov == PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE)
        k |= ORACLE_KIND_DISPUTE_OPENED;
    if (gov == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING)
        k |= ORACLE_KIND_DISPUTE_RULED;
    if (gov == PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE)
        k |= ORACLE_KIND_OVERRIDE;
    if (ch->n_settlements)
        k |= ORACLE_KIND_SETTLEMENT;
    return k;
}

/* The point of the agent's score series a change makes (oracle.h, ORACLE_POINT_*). */
static void series_point(const Pactum__V1__TrustChange *ch, uint8_t v[ORACLE_POINT_BYTES])
{
    int64_t at = ch->state->clock_ms ? ch->state->clock_ms : ch->published_ms;
    unsigned k = oracle_change_kinds(ch);
    uint8_t mark = 0;

    if (k & ORACLE_KIND_VIOLATION)
        mark |= ORACLE_MARK_VIOLATION;
    if (k & ORACLE_KIND_CONTAINED)
        mark |= ORACLE_MARK_CONTAINMENT;
    if (k & ORACLE_KIND_REENTRY)
        mark |= ORACLE_MARK_REENTRY;
    if (k & ORACLE_KIND_OVERRIDE)
        mark |= ORACLE_MARK_OVERRIDE;
    if (k & (ORACLE_KIND_DISPUTE_OPENED | ORACLE_KIND_DISPUTE_RULED))
        mark |= ORACLE_MARK_DISPUTE;
    pk_be64_put(v, (uint64_t)at);
    pk_be64_put(v + 8, ((uint64_t)ch->state->score_ppm << 32) | ch->state->lower_ppm);
    v[16] = (uint8_t)ch->state->tier;
    v[17] = mark;
}

/* Apply one trust change; duplicates (change_seq not newer) are skipped. */
static pk_status apply_change(oracle *o, MDB_txn *txn, const Pactum__V1__TrustChange *ch,
                              uint64_t seq, uint8_t *changed)
{
    Pactum__V1__TrustReport *old = NULL, rep = PACTUM__V1__TRUST_REPORT__INIT;
    const char *agent = ch->agent_id;
    uint8_t key[PK_ID_MAX + 9];
    pk_status st;

    if (!ch->state || pk_id_check("agent id", agent) != PK_OK)
        return PK_OK; /* nothing usable: skip */
    st = pk_get_msg(txn, o->reports, agent, strlen(agent), &pactum__v1__trust_report__descriptor,
                    (ProtobufCMessage **)&old);
    if (st != PK_OK && st != PK_ENOTFOUND)
        return st;
    if (old && old->state && old->state->change_seq >= ch->change_seq) {
        pactum__v1__trust_report__free_unpacked(old, NULL);
        pk_metric_add(&o->m[OM_DUPLICATES], 1);
        return PK_OK;
    }
    rep.agent_id = (char *)agent;
    rep.state = ch->state;
    rep.trust_seq = seq;
    rep.last_violation = old ? old->last_violation : NULL;
    if (ch->cause && ch->cause->violation)
        rep.last_violation = ch->cause;
    st = pk_put_msg(txn, o->reports, agent, strlen(agent), &rep.base);
    if (st == PK_OK && ch->tier_change) {
        ch->tier_change->trust_seq = seq;
        st = pk_put_msg(txn, o->tiers, key, pk_key_id_u64(key, agent, ch->change_seq),
                        &ch->tier_change->base);
    }
    if (st == PK_OK && ch->cause && ch->cause->violation) {
        /* agent \0 be64 time be64 vseq -> severity: counted by age in reports and figures */
        uint8_t vk[PK_ID_MAX + 17], sev = (uint8_t)ch->cause->severity;
        int64_t at = ch->cause->received_ms ? ch->cause->received_ms : ch->cause->evaluated_ms;
        size_t vl = pk_key_id_u64(vk, agent, (uint64_t)at);
        pk_be64_put(vk + vl, ch->cause->vseq);
        st = pk_put(txn, o->violations, vk, vl + 8, &sev, 1, 0);
    }
    if (st == PK_OK) {
        uint8_t v[ORACLE_POINT_BYTES];
        series_point(ch, v);
        st =
            pk_put(txn, o->series, key, pk_key_id_u64(key, agent, ch->change_seq), v, sizeof(v), 0);
    }
    for (size_t i = 0; st == PK_OK && i < ch->n_settlements; i++) {
        /* agent \0 be64 trust_seq: the statements of one change share the key, so each goes
         * under trust_seq and its position */
        Pactum__V1__StatementRef ref = PACTUM__V1__STATEMENT_REF__INIT;
        uint8_t sk[PK_ID_MAX + 13];
        size_t sl = pk_key_id_u64(sk, agent, seq);
        pk_be32_put(sk + sl, (uint32_t)i);
        ref.settlement = ch->settlements[i];
        ref.trust_seq = seq;
        st = pk_put_msg(txn, o->settlements, sk, sl + 4, &ref.base);
    }
    if (st == PK_OK && ch->governance) {
        Pactum__V1__GovernanceEntry e = PACTUM__V1__GOVERNANCE_ENTRY__INIT;
        e.record = ch->governance;
        e.effect = ch->ruling_effect;
        e.change_seq = ch->change_seq;
        st =
            pk_put_msg(txn, o->governance, key, pk_key_id_u64(key, agent, ch->change_seq), &e.base);
    }
    if (old)
        pactum__v1__trust_report__free_unpacked(old, NULL);
    if (st == PK_OK) {
        unsigned slot = oracle_reuse_slot(agent);
        changed[slot / 8] |= (uint8_t)(1u << (slot % 8));
        pk_metric_add(&o->m[OM_CHANGES], 1);
    }
    return st;
}

void oracle_held_init(oracle *o)
{
    pthread_mutex_init(&o->held_mu, NULL);
    memset(o->held, 0, sizeof(o->held));
}

void oracle_held_free(oracle *o)
{
    for (size_t i = 0; i < ORACLE_HELD_SLOTS; i++)
        free(o->held[i].state);
    memset(o->held, 0, sizeof(o->held));
    pthread_mutex_destroy(&o->held_mu);
}

void oracle_hold(oracle *o, const Pactum__V1__TrustChange *ch, uint64_t seq)
{
    oracle_held *slot = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (!ch->state ||
        (ch->state->tier != PACTUM__V1__TIER__TIER_CONTAINED &&
         ch->state->tier != PACTUM__V1__TIER__TIER_SUSPENDED) ||
        strlen(ch->agent_id) > PK_ID_MAX || pk_pack(&ch->state->base, &buf, &len) != PK_OK)
        return;
    pthread_mutex_lock(&o->held_mu);
    for (size_t i = 0; i < ORACLE_HELD_SLOTS; i++) {
        oracle_held *h = &o->held[i];
        if (strcmp(h->agent, ch->agent_id) == 0) {
            slot = h->change_seq < ch->change_seq ? h : NULL;
            if (!slot) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        if (!slot && !h->agent[0])
            slot = h;
    }
    if (slot && buf) {
        free(slot->state);
        snprintf(slot->agent, sizeof(slot->agent), "%s", ch->agent_id);
        slot->trust_seq = seq;
        slot->change_seq = ch->change_seq;
        slot->state = buf;
        slot->len = len;
        buf = NULL;
    }
    pthread_mutex_unlock(&o->held_mu);
    free(buf);
}

void oracle_release_held(oracle *o, uint64_t upto)
{
    pthread_mutex_lock(&o->held_mu);
    for (size_t i = 0; i < ORACLE_HELD_SLOTS; i++) {
        oracle_held *h = &o->held[i];
        if (h->agent[0] && h->trust_seq <= upto) {
            free(h->state);
            memset(h, 0, sizeof(*h));
        }
    }
    pthread_mutex_unlock(&o->held_mu);
}

Pactum__V1__TrustState *oracle_held_state(oracle *o, const char *agent, uint64_t change_seq,
                                          uint64_t *trust_seq)
{
    Pactum__V1__TrustState *s = NULL;

    pthread_mutex_lock(&o->held_mu);
    for (size_t i = 0; i < ORACLE_HELD_SLOTS; i++) {
        const oracle_held *h = &o->held[i];
        if (h->agent[0] && strcmp(h->agent, agent) == 0 && h->change_seq > change_seq) {
            s = pactum__v1__trust_state__unpack(NULL, h->len, h->state);
            *trust_seq = h->trust_seq;
            break;
        }
    }
    pthread_mutex_unlock(&o->held_mu);
    return s;
}

pk_status oracle_apply(void *ctx, natsMsgList *list)
{
    oracle *o = ctx;
    MDB_txn *txn = NULL;
    uint64_t last = 0;
    uint8_t changed[ORACLE_REUSE_SLOTS / 8] = {0}; /* agents changed, by reuse slot */
    pk_status st;

    if ((st = pk_txn_begin(o->store, true, &txn)) != PK_OK)
        return st;
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        uint64_t seq = 0;
        Pactum__V1__TrustChange *ch;

        seq = pk_msg_seq(m);
        ch = pactum__v1__trust_change__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        if (!ch) {
            PK_WARN("trust change at #%llu does not decode; skipped", (unsigned long long)seq);
        } else {
            oracle_hold(o, ch, seq); /* authorize denies from now, not from the commit */
            oracle_changes_add(o, seq, ch->agent_id, natsMsg_GetData(m),
                               (size_t)natsMsg_GetDataLength(m)); /* live streams: it is stored */
            st = apply_change(o, txn, ch, seq, changed);
            pactum__v1__trust_change__free_unpacked(ch, NULL);
            if (st != PK_OK)
                break;
        }
        if (seq > last)
            last = seq;
    }
    if (st == PK_OK && last)
        st = pk_put_u64(txn, o->meta, "trust_seq", last);
    if (st != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    if ((st = pk_txn_commit(txn)) == PK_OK) {
        oracle_release_held(o, last);
        oracle_reuse_forget(o, changed);  /* after the commit: see reuse.c */
        pk_consumer_ack(&o->trust, list); /* applied and stored: the durable moves on */
    }
    return st;
}

pk_status oracle_model_idle(void *ctx, bool caught_up)
{
    oracle *o = ctx;
    pk_status st = pk_registry_sync_if_dirty(o->reg);

    return st == PK_OK ? PK_OK : PK_WRAP(st, "registry sync");
}

pk_status oracle_model_position(void *ctx, uint64_t *applied)
{
    oracle *o = ctx;
    MDB_txn *txn = NULL;
    pk_status st;

    *applied = 0;
    if ((st = pk_txn_begin(o->store, false, &txn)) != PK_OK)
        return st;
    st = pk_get_u64(txn, o->meta, "trust_seq", applied);
    pk_txn_abort(txn);
    return st == PK_ENOTFOUND ? PK_OK : st;
}
