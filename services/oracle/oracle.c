#include "oracle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/authorize.h"
#include "pk/log.h"
#include "pk/pact.h"

#define HISTORY_MAX 200 /* tier changes a query may ask for */

void oracle_metrics_init(oracle *o)
{
    pk_metric *m = o->m;

    m[OM_QUERIES] =
        (pk_metric){"pactum_oracle_queries_total", NULL, "Trust queries answered", PK_COUNTER, 0};
    m[OM_UNKNOWN] = (pk_metric){"pactum_oracle_unknown_agent_total", NULL,
                                "Queries about agents that are not registered", PK_COUNTER, 0};
    m[OM_BAD] = (pk_metric){"pactum_oracle_bad_requests_total", NULL,
                            "Queries that did not decode or named no valid agent", PK_COUNTER, 0};
    m[OM_CHANGES] = (pk_metric){"pactum_oracle_trust_changes_total", NULL,
                                "Trust changes applied to the read model", PK_COUNTER, 0};
    m[OM_DUPLICATES] = (pk_metric){"pactum_oracle_duplicates_total", NULL,
                                   "Trust changes already applied and skipped", PK_COUNTER, 0};
    m[OM_LAG] = (pk_metric){"pactum_consumer_pending", "consumer=\"oracle\"",
                            "Messages waiting for this consumer", PK_GAUGE, 0};
    m[OM_LOG_SIZE] =
        (pk_metric){"pactum_oracle_log_leaves", NULL,
                    "Leaves in this instance's copy of the transparency log", PK_GAUGE, 0};
    m[OM_LOG_APPENDED] =
        (pk_metric){"pactum_oracle_log_appended_total", NULL,
                    "Source messages this instance appended to PACTUM_LOG", PK_COUNTER, 0};
    m[OM_HEADS] = (pk_metric){"pactum_oracle_tree_heads_total", NULL,
                              "Signed tree heads published on pactum.log.head", PK_COUNTER, 0};
    m[OM_ALLOW] = (pk_metric){"pactum_oracle_decisions_total", "permit=\"allow\"",
                              "Authorize decisions, by answer", PK_COUNTER, 0};
    m[OM_DENY] = (pk_metric){"pactum_oracle_decisions_total", "permit=\"deny\"",
                             "Authorize decisions, by answer", PK_COUNTER, 0};
    m[OM_APPROVAL] = (pk_metric){"pactum_oracle_decisions_total", "permit=\"needs_approval\"",
                                 "Authorize decisions, by answer", PK_COUNTER, 0};
    m[OM_HTTP] = (pk_metric){"pactum_oracle_http_requests_total", NULL, "HTTP requests answered",
                             PK_COUNTER, 0};
    m[OM_HTTP_4XX] = (pk_metric){"pactum_oracle_http_refused_total", NULL,
                                 "HTTP requests answered with a 4xx status", PK_COUNTER, 0};
    m[OM_LMDB_USED] =
        (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes", PK_GAUGE, 0};
    m[OM_LMDB_MAP] =
        (pk_metric){"pactum_lmdb_map_bytes", NULL, "LMDB map size, in bytes", PK_GAUGE, 0};
    m[OM_REUSED] =
        (pk_metric){"pactum_oracle_answers_reused_total", NULL,
                    "Trust queries answered with an answer already signed", PK_COUNTER, 0};
}

pk_status oracle_open_dbs(oracle *o)
{
    pk_status st;

    if ((st = pk_store_dbi(o->store, "reports", 0, &o->reports)) != PK_OK ||
        (st = pk_store_dbi(o->store, "tiers", 0, &o->tiers)) != PK_OK ||
        (st = pk_store_dbi(o->store, "governance", 0, &o->governance)) != PK_OK ||
        (st = pk_store_dbi(o->store, "meta", 0, &o->meta)) != PK_OK ||
        (st = pk_store_dbi(o->store, "violations", 0, &o->violations)) != PK_OK ||
        (st = pk_store_dbi(o->store, "log_nodes", 0, &o->log_nodes)) != PK_OK ||
        (st = pk_store_dbi(o->store, "log_leaves", 0, &o->log_leaves)) != PK_OK ||
        (st = pk_store_dbi(o->store, "log_refs", 0, &o->log_refs)) != PK_OK ||
        (st = pk_store_dbi(o->store, "log_agent", 0, &o->log_agent)) != PK_OK)
        return st;
    return PK_OK;
}

static size_t tier_key(uint8_t *buf, const char *agent, uint64_t seq)
{
    size_t n = strlen(agent);

    memcpy(buf, agent, n);
    buf[n] = 0;
    pk_be64_put(buf + n + 1, seq);
    return n + 9;
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
        st = pk_put_msg(txn, o->tiers, key, tier_key(key, agent, ch->change_seq),
                        &ch->tier_change->base);
    }
    if (st == PK_OK && ch->cause && ch->cause->violation) {
        /* agent \0 be64 time be64 vseq -> severity: counted by age in reports and figures */
        uint8_t vk[PK_ID_MAX + 17], sev = (uint8_t)ch->cause->severity;
        size_t al = strlen(agent);
        int64_t at = ch->cause->received_ms ? ch->cause->received_ms : ch->cause->evaluated_ms;
        memcpy(vk, agent, al);
        vk[al] = 0;
        pk_be64_put(vk + al + 1, (uint64_t)at);
        pk_be64_put(vk + al + 9, ch->cause->vseq);
        st = pk_put(txn, o->violations, vk, al + 17, &sev, 1, 0);
    }
    if (st == PK_OK && ch->governance) {
        Pactum__V1__GovernanceEntry e = PACTUM__V1__GOVERNANCE_ENTRY__INIT;
        e.record = ch->governance;
        e.effect = ch->ruling_effect;
        e.change_seq = ch->change_seq;
        st = pk_put_msg(txn, o->governance, key, tier_key(key, agent, ch->change_seq), &e.base);
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

pk_status oracle_apply(oracle *o, natsMsgList *list)
{
    MDB_txn *txn = NULL;
    uint64_t last = 0, pending = 0;
    uint8_t changed[ORACLE_REUSE_SLOTS / 8] = {0}; /* agents changed, by reuse slot */
    pk_status st;

    if ((st = pk_txn_begin(o->store, true, &txn)) != PK_OK)
        return st;
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        jsMsgMetaData *meta = NULL;
        uint64_t seq = 0;
        Pactum__V1__TrustChange *ch;

        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            seq = meta->Sequence.Stream;
            pending = meta->NumPending;
            jsMsgMetaData_Destroy(meta);
        }
        ch = pactum__v1__trust_change__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        if (!ch) {
            PK_WARN("trust change at #%llu does not decode; skipped", (unsigned long long)seq);
        } else {
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
    pk_metric_set(&o->m[OM_LAG], (long long)pending);
    if ((st = pk_txn_commit(txn)) == PK_OK)
        oracle_reuse_forget(o, changed); /* after the commit: see reuse.c */
    return st;
}

void oracle_pacts_free(Pactum__V1__PactRef **refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(refs[i]->pact_id);
        free(refs[i]->hash.data);
        free(refs[i]);
    }
}

size_t oracle_pacts_of(oracle *o, MDB_txn *txn, const char *agent, Pactum__V1__PactRef **refs,
                       size_t max)
{
    char **ids = NULL;
    size_t n_ids = 0, n = 0;

    if (pk_registry_agent_pacts(o->reg, txn, agent, &ids, &n_ids) != PK_OK)
        return 0;
    for (size_t i = 0; i < n_ids && n < max; i++) {
        Pactum__V1__PactRecord *rec = NULL;
        uint64_t seq = 0;
        Pactum__V1__PactRef *r;
        if (pk_registry_pact(o->reg, txn, ids[i], 0, 0, &rec, &seq) != PK_OK)
            continue;
        if ((r = malloc(sizeof(*r)))) {
            pactum__v1__pact_ref__init(r);
            r->pact_id = strdup(rec->pact_id);
            r->version = rec->version;
            r->registered_ms = rec->registered_ms;
            r->hash.data = malloc(rec->hash.len ? rec->hash.len : 1);
            if (r->pact_id && r->hash.data) {
                memcpy(r->hash.data, rec->hash.data, rec->hash.len);
                r->hash.len = rec->hash.len;
                refs[n++] = r;
            } else {
                free(r->pact_id);
                free(r->hash.data);
                free(r);
            }
        }
        pactum__v1__pact_record__free_unpacked(rec, NULL);
    }
    pk_registry_ids_free(ids, n_ids);
    return n;
}

typedef bool (*entry_fn)(void *ctx, const MDB_val *v); /* return false to stop */

/* Walk agent's entries of a history db (tiers, governance), newest first. */
static void walk_newest(MDB_txn *txn, MDB_dbi dbi, const char *agent, entry_fn fn, void *ctx)
{
    uint8_t key[PK_ID_MAX + 9];
    size_t alen = strlen(agent), kl = tier_key(key, agent, UINT64_MAX);
    MDB_cursor *cur = NULL;
    MDB_val k = {.mv_size = kl, .mv_data = key}, v;
    int rc;

    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (rc == 0 && k.mv_size == alen + 9 && memcmp(k.mv_data, agent, alen + 1) == 0) {
        if (!fn(ctx, &v))
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
}

#define LIST_MAX 50

typedef struct collected {
    Pactum__V1__TierChange *tiers[HISTORY_MAX]; /* tier history, newest first */
    size_t n_tiers, want_tiers;
    Pactum__V1__TierChange *cont[LIST_MAX]; /* containments */
    size_t n_cont;
    size_t scanned;                                 /* tier changes looked at */
    Pactum__V1__GovernanceEntry *gov[2 * LIST_MAX]; /* every governance entry read */
    size_t n_gov;
    Pactum__V1__Override *ov[LIST_MAX]; /* overrides, newest first */
    size_t n_ov;
    Pactum__V1__GovernanceEntry *disp[LIST_MAX]; /* disputes and rulings */
    size_t n_disp;
} collected;

static bool collect_tier(void *ctx, const MDB_val *v)
{
    collected *c = ctx;
    Pactum__V1__TierChange *tc = pactum__v1__tier_change__unpack(NULL, v->mv_size, v->mv_data);
    bool kept = false;

    if (!tc)
        return true;
    if (c->n_tiers < c->want_tiers) {
        c->tiers[c->n_tiers++] = tc;
        kept = true;
    }
    if (tc->to >= PACTUM__V1__TIER__TIER_CONTAINED && tc->from < tc->to && c->n_cont < LIST_MAX) {
        c->cont[c->n_cont++] = tc; /* shared with the history list, or owned here */
        kept = true;
    }
    if (!kept)
        pactum__v1__tier_change__free_unpacked(tc, NULL);
    return ++c->scanned < HISTORY_MAX;
}

static bool collect_gov(void *ctx, const MDB_val *v)
{
    collected *c = ctx;
    Pactum__V1__GovernanceEntry *e =
        pactum__v1__governance_entry__unpack(NULL, v->mv_size, v->mv_data);

    if (!e || !e->record)
        goto skip;
    switch (e->record->record_case) {
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE:
        if (c->n_ov >= LIST_MAX)
            goto skip;
        c->ov[c->n_ov++] = e->record->override;
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
        if (c->n_disp >= LIST_MAX)
            goto skip;
        c->disp[c->n_disp++] = e;
        break;
    default:
        goto skip;
    }
    c->gov[c->n_gov++] = e;
    return c->n_ov < LIST_MAX || c->n_disp < LIST_MAX;
skip:
    if (e)
        pactum__v1__governance_entry__free_unpacked(e, NULL);
    return c->n_ov < LIST_MAX || c->n_disp < LIST_MAX; /* both lists full: no need to read on */
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n_cont; i++) {
        bool shared = false;
        for (size_t k = 0; k < c->n_tiers; k++)
            shared |= c->tiers[k] == c->cont[i];
        if (!shared)
            pactum__v1__tier_change__free_unpacked(c->cont[i], NULL);
    }
    for (size_t i = 0; i < c->n_tiers; i++)
        pactum__v1__tier_change__free_unpacked(c->tiers[i], NULL);
    for (size_t i = 0; i < c->n_gov; i++)
        pactum__v1__governance_entry__free_unpacked(c->gov[i], NULL);
}

void oracle_governance_of(oracle *o, MDB_txn *txn, const Pactum__V1__TrustState *s,
                          pk_governance *g)
{
    Pactum__V1__PactRecord *rec = NULL;
    pk_pact *p = NULL;
    pk_lint lint = {0};

    pk_governance_defaults(g);
    if (!s || !s->governance_pact || !s->governance_pact[0] ||
        pk_registry_pact(o->reg, txn, s->governance_pact, s->governance_version, 0, &rec, NULL) !=
            PK_OK)
        return;
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &p, &lint) == PK_OK &&
        p->gov.present) {
        pk_governance_free(g);
        *g = p->gov;
        memset(&p->gov, 0, sizeof(p->gov));
    }
    pk_pact_free(p);
    pk_lint_free(&lint);
    pactum__v1__pact_record__free_unpacked(rec, NULL);
}

pk_status oracle_seal(oracle *o, Pactum__V1__PayloadType type, const ProtobufCMessage *m,
                      uint8_t **out, size_t *len)
{
    return pk_answer_seal(type, m, &o->kp, out, len);
}

/* The verdicts a ruling took out of agent's score, from its stored report. */
static size_t overturned_of(oracle *o, MDB_txn *txn, const char *agent, uint64_t *out, size_t max)
{
    Pactum__V1__TrustReport *r = NULL;
    size_t n = 0;

    if (pk_get_msg(txn, o->reports, agent, strlen(agent), &pactum__v1__trust_report__descriptor,
                   (ProtobufCMessage **)&r) != PK_OK)
        return 0;
    for (size_t i = 0; r->state && i < r->state->n_overturned && n < max; i++)
        out[n++] = r->state->overturned[i];
    pactum__v1__trust_report__free_unpacked(r, NULL);
    return n;
}

void oracle_count_violations(oracle *o, MDB_txn *txn, const char *agent, const int64_t *since_ms,
                             int n_windows, uint64_t (*counts)[6])
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t start[PK_ID_MAX + 1];
    size_t al = agent ? strlen(agent) : 0;
    char current[PK_ID_MAX + 1] = "";
    uint64_t over[64];
    size_t n_over = 0;
    int rc;

    memset(counts, 0, (size_t)n_windows * sizeof(*counts));
    if (mdb_cursor_open(txn, o->violations, &cur) != 0)
        return;
    if (agent) {
        memcpy(start, agent, al);
        start[al] = 0;
        k.mv_size = al + 1;
        k.mv_data = start;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kb = k.mv_data;
        size_t kal = k.mv_size >= 17 ? k.mv_size - 17 : 0;
        int64_t at;
        uint64_t vseq;
        bool out = false;
        if (k.mv_size < 18 || kb[kal] != 0 || v.mv_size != 1)
            continue;
        if (agent && (kal != al || memcmp(kb, agent, al) != 0))
            break;
        if (kal != strlen(current) || memcmp(kb, current, kal) != 0) {
            snprintf(current, sizeof(current), "%.*s", (int)kal, (const char *)kb);
            n_over = overturned_of(o, txn, current, over, 64);
        }
        at = (int64_t)pk_be64_get(kb + kal + 1);
        vseq = pk_be64_get(kb + kal + 9);
        for (size_t i = 0; i < n_over; i++)
            out |= over[i] == vseq;
        for (int w = 0; w < n_windows && !out && *(const uint8_t *)v.mv_data < 6; w++) {
            if (at >= since_ms[w])
                counts[w][*(const uint8_t *)v.mv_data]++;
        }
    }
    mdb_cursor_close(cur);
}

size_t oracle_severity_list(const uint64_t counts[6], Pactum__V1__SeverityCount store[6],
                            Pactum__V1__SeverityCount *ptrs[6])
{
    size_t n = 0;

    for (int sev = 5; sev >= 1; sev--) {
        if (!counts[sev])
            continue;
        pactum__v1__severity_count__init(&store[n]);
        store[n].severity = (Pactum__V1__Severity)sev;
        store[n].count = counts[sev];
        ptrs[n] = &store[n];
        n++;
    }
    return n;
}

pk_status oracle_answer_trust(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                              size_t *outlen)
{
    Pactum__V1__TrustQuery *q = pactum__v1__trust_query__unpack(NULL, len, req);
    Pactum__V1__TrustReport rep = PACTUM__V1__TRUST_REPORT__INIT, *stored = NULL;
    Pactum__V1__TrustState initial = PACTUM__V1__TRUST_STATE__INIT;
    Pactum__V1__AgentRecord *agent = NULL;
    Pactum__V1__PactRef *refs[16];
    static _Thread_local collected col;
    static _Thread_local pk_scope_view view;
    pk_governance gov;
    bool have_gov = false;
    size_t n_refs = 0, w_n[3] = {0};
    Pactum__V1__SeverityCount w_store[3][6], *w_ptrs[3][6];
    uint8_t *head = NULL;
    size_t head_len = 0;
    char msg[256];
    MDB_txn *txn = NULL;
    uint64_t version = 0, reg_seq = 0;
    int64_t made_mono_ms = pk_mono_ms();
    bool keep = false;
    pk_status st = PK_OK;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    memset(&col, 0, sizeof(col));
    rep.answered_ms = pk_now_ms();
    rep.message = msg;
    msg[0] = '\0';
    if (!q) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST;
        snprintf(msg, sizeof(msg), "request is not a TrustQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    rep.agent_id = q->agent_id;
    if (pk_id_check("agent id", q->agent_id) != PK_OK) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST;
        snprintf(msg, sizeof(msg), "%s", pk_error_msg());
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    /* the same query again, with nothing changed: the answer already signed */
    if (oracle_reuse_get(o, q->agent_id, req, len, &version, out, outlen)) {
        pactum__v1__trust_query__free_unpacked(q, NULL);
        return PK_OK;
    }
    reg_seq = pk_registry_seq(o->reg); /* read before the snapshot, as version was */
    if ((st = pk_txn_begin(o->store, false, &txn)) != PK_OK) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
        goto reply;
    }
    rep.registered = pk_registry_agent(o->reg, txn, q->agent_id, &agent, NULL) == PK_OK;
    if (!rep.registered) {
        /* Registered a moment ago? Look at the registry once more (throttled). */
        pk_txn_abort(txn);
        txn = NULL;
        if (pk_registry_refresh(o->reg, 50) != PK_OK ||
            pk_txn_begin(o->store, false, &txn) != PK_OK) {
            rep.status = PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "registry unavailable: %s", pk_error_msg());
            goto reply;
        }
        rep.registered = pk_registry_agent(o->reg, txn, q->agent_id, &agent, NULL) == PK_OK;
    }
    st = pk_get_msg(txn, o->reports, q->agent_id, strlen(q->agent_id),
                    &pactum__v1__trust_report__descriptor, (ProtobufCMessage **)&stored);
    if (st != PK_OK && !rep.registered) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT;
        snprintf(msg, sizeof(msg), "unknown agent: '%s' is not registered", q->agent_id);
        pk_metric_add(&o->m[OM_UNKNOWN], 1);
        goto reply;
    }
    rep.status = PACTUM__V1__QUERY_STATUS__QUERY_OK;
    keep = true;
    if (stored) {
        rep.state = stored->state;
        rep.last_violation = stored->last_violation;
        rep.trust_seq = stored->trust_seq;
    } else {
        /* Registered but no verdict yet: a new agent is watched, with no evidence. */
        initial.agent_id = q->agent_id;
        initial.tier = PACTUM__V1__TIER__TIER_WATCH;
        initial.tier_since_ms = agent ? agent->registered_ms : 0;
        rep.state = &initial;
        snprintf(msg, sizeof(msg), "no evidence yet: insufficient to score");
    }
    n_refs = oracle_pacts_of(o, txn, q->agent_id, refs, sizeof(refs) / sizeof(refs[0]));
    rep.pacts = refs;
    rep.n_pacts = n_refs;
    {
        uint32_t want = q->history ? q->history : (uint32_t)o->cfg->history;
        const Pactum__V1__Override *by = NULL;
        if (want > HISTORY_MAX)
            want = HISTORY_MAX;
        col.want_tiers = want;
        walk_newest(txn, o->tiers, q->agent_id, collect_tier, &col);
        walk_newest(txn, o->governance, q->agent_id, collect_gov, &col);
        rep.tier_history = col.tiers;
        rep.n_tier_history = col.n_tiers;
        rep.containments = col.cont;
        rep.n_containments = col.n_cont;
        rep.overrides = col.ov;
        rep.n_overrides = col.n_ov;
        rep.disputes = col.disp;
        rep.n_disputes = col.n_disp;
        /* what the agent may do now: the overrides in force, then the tier's scope */
        rep.effective_tier = pk_effective_tier(rep.state, rep.answered_ms, &by);
        rep.effective_by = (Pactum__V1__Override *)by;
        oracle_governance_of(o, txn, rep.state, &gov);
        have_gov = true;
        pk_scope_view_build(&view, &gov, rep.state, rep.effective_tier, rep.answered_ms);
        rep.scope = &view.scope;
    }
    {
        static const int64_t windows[3] = {86400000LL, 7 * 86400000LL, 30 * 86400000LL};
        Pactum__V1__SeverityCount **lists[3] = {w_ptrs[0], w_ptrs[1], w_ptrs[2]};
        int64_t since[3];
        uint64_t index = 0, counts[3][6];
        for (int w = 0; w < 3; w++)
            since[w] = rep.answered_ms - windows[w];
        oracle_count_violations(o, txn, q->agent_id, since, 3, counts);
        for (int w = 0; w < 3; w++)
            w_n[w] = oracle_severity_list(counts[w], w_store[w], lists[w]);
        rep.violations_24h = lists[0];
        rep.n_violations_24h = w_n[0];
        rep.violations_7d = lists[1];
        rep.n_violations_7d = w_n[1];
        rep.violations_30d = lists[2];
        rep.n_violations_30d = w_n[2];
        if (oracle_log_head(o, txn, oracle_log_size(o, txn), &head, &head_len) == PK_OK) {
            rep.log_head.data = head;
            rep.log_head.len = head_len;
        }
        if (rep.trust_seq &&
            oracle_log_find(o, txn, PK_STREAM_TRUST, rep.trust_seq, &index) == PK_OK) {
            rep.logged = true;
            rep.log_index = index;
        }
    }
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, &rep.base, out, outlen);
    if (st == PK_OK && keep)
        oracle_reuse_put(o, q->agent_id, req, len, version, reg_seq, made_mono_ms, *out, *outlen);
    free(head);
    pk_txn_abort(txn);
    collected_free(&col);
    if (have_gov)
        pk_governance_free(&gov);
    oracle_pacts_free(refs, n_refs);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (agent)
        pactum__v1__agent_record__free_unpacked(agent, NULL);
    if (q)
        pactum__v1__trust_query__free_unpacked(q, NULL);
    return st;
}

#define VERSIONS_MAX 256 /* versions listed in one answer */

pk_status oracle_answer_pact(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                             size_t *outlen)
{
    Pactum__V1__PactQuery *q = pactum__v1__pact_query__unpack(NULL, len, req);
    Pactum__V1__PactReport rep = PACTUM__V1__PACT_REPORT__INIT;
    Pactum__V1__PactRecord *recs[VERSIONS_MAX];
    Pactum__V1__PactVersion vers[VERSIONS_MAX], *vp[VERSIONS_MAX];
    size_t n = 0;
    char msg[256] = "";
    MDB_txn *txn = NULL;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    rep.answered_ms = pk_now_ms();
    rep.message = msg;
    if (!q || pk_id_check("pact id", q->pact_id) != PK_OK) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST;
        snprintf(msg, sizeof(msg), "%s", q ? pk_error_msg() : "request is not a PactQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    rep.pact_id = q->pact_id;
    if (pk_registry_refresh(o->reg, 50) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if (pk_txn_begin(o->store, false, &txn) != PK_OK) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
        goto reply;
    }
    /* Versions are numbered 1, 2, 3 ... without gaps. */
    for (uint32_t v = q->version ? q->version : 1; n < VERSIONS_MAX; v++) {
        uint64_t seq = 0;
        Pactum__V1__PactVersion *pv = &vers[n];
        if (pk_registry_pact(o->reg, txn, q->pact_id, v, 0, &recs[n], &seq) != PK_OK)
            break;
        pactum__v1__pact_version__init(pv);
        pv->version = recs[n]->version;
        pv->hash = recs[n]->hash;
        pv->agent_id = recs[n]->agent_id;
        pv->registered_ms = recs[n]->registered_ms;
        pv->clauses = recs[n]->clauses;
        pv->registry_seq = seq;
        pv->owner_key = recs[n]->owner_key;
        if (q->document) {
            pv->document = recs[n]->document;
            pv->submission = recs[n]->submission;
        }
        vp[n] = pv;
        n++;
        if (q->version)
            break;
    }
    rep.versions = vp;
    rep.n_versions = n;
    if (q->document && !q->version && n > 1) {
        /* documents of every version would not fit one answer: the newest */
        rep.versions = &vp[n - 1];
        rep.n_versions = 1;
    }
    if (n == 0) {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT;
        snprintf(msg, sizeof(msg), "unknown pact: '%s'%s is not registered", q->pact_id,
                 q->version ? " at that version" : "");
    } else {
        rep.status = PACTUM__V1__QUERY_STATUS__QUERY_OK;
    }
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT, &rep.base, out, outlen);
    pk_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        pactum__v1__pact_record__free_unpacked(recs[i], NULL);
    if (q)
        pactum__v1__pact_query__free_unpacked(q, NULL);
    return st;
}

/*
 * The request-reply subjects, their answers, and how many subscriptions (so
 * threads: the client library delivers each subscription's messages on its
 * own thread) answer each at once. Authorize waits for its decision to be
 * stored before it answers, so it has more threads to wait on.
 */
static const struct {
    const char *subject;
    oracle_answer_fn fn;
    int threads;
} responders[] = {
    {PK_SUBJ_ORACLE_TRUST, oracle_answer_trust, 4},
    {PK_SUBJ_ORACLE_PACT, oracle_answer_pact, 2},
    {PK_SUBJ_ORACLE_AUTHORIZE, oracle_answer_authorize, 16},
    {PK_SUBJ_ORACLE_EVIDENCE, oracle_answer_evidence, 2},
    {PK_SUBJ_ORACLE_ATTEST, oracle_answer_attest, 2},
    {PK_SUBJ_ORACLE_FIGURES, oracle_answer_figures, 2},
    {PK_SUBJ_ORACLE_LOG, oracle_answer_log, 2},
};

#define N_RESPONDERS (sizeof(responders) / sizeof(responders[0]))

typedef struct responder_ctx {
    oracle *o;
    oracle_answer_fn fn;
} responder_ctx;

static responder_ctx rctx[N_RESPONDERS];

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    responder_ctx *r = closure;
    uint8_t *out = NULL;
    size_t len = 0;

    if (natsMsg_GetReply(msg)) {
        if (r->fn(r->o, (const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                  &out, &len) == PK_OK)
            natsConnection_Publish(nc, natsMsg_GetReply(msg), out, (int)len);
        else
            PK_WARN("no answer on %s: %s", natsMsg_GetSubject(msg), pk_error_msg());
    }
    free(out);
    natsMsg_Destroy(msg);
}

pk_status oracle_queries_start(oracle *o)
{
    size_t k = 0;

    for (size_t i = 0; i < N_RESPONDERS; i++) {
        rctx[i].o = o;
        rctx[i].fn = responders[i].fn;
        for (int t = 0; t < responders[i].threads; t++) {
            natsStatus s;
            if (k == sizeof(o->subs) / sizeof(o->subs[0]))
                return PK_ERR(PK_EINVAL, "too many responder subscriptions");
            s = natsConnection_QueueSubscribe(&o->subs[k++], o->bus->nc, responders[i].subject,
                                              "oracle", on_request, &rctx[i]);
            if (s != NATS_OK)
                return pk_nats_err(s, 0, responders[i].subject);
        }
    }
    return PK_OK;
}

void oracle_queries_stop(oracle *o)
{
    for (size_t i = 0; i < sizeof(o->subs) / sizeof(o->subs[0]); i++) {
        if (o->subs[i]) {
            natsSubscription_Unsubscribe(o->subs[i]);
            natsSubscription_Destroy(o->subs[i]);
        }
        o->subs[i] = NULL;
    }
}
