/*
 * The trust report (where an agent stands and why) and the pact report (a
 * pact's versions and documents).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/tiers.h"
#include "pk/answer.h"
#include "pk/authorize.h"
#include "pk/clock.h"
#include "pk/log.h"

#define HISTORY_MAX 200 /* tier changes a query may ask for */

typedef bool (*entry_fn)(void *ctx, const MDB_val *v); /* return false to stop */

/* Walk agent's entries of a history db (tiers, governance), newest first. */
static void walk_newest(MDB_txn *txn, MDB_dbi dbi, const char *agent, entry_fn fn, void *ctx)
{
    uint8_t key[PK_ID_MAX + 9];
    size_t kl = pk_key_id_u64(key, agent, UINT64_MAX);
    MDB_cursor *cur = NULL;
    MDB_val k = {.mv_size = kl, .mv_data = key}, v;
    int rc;

    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (rc == 0 && pk_key_has_id(&k, agent)) {
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

/* What a trust report points into, kept for the answer's lifetime. */
typedef struct report_parts {
    collected col;                 /* histories, overrides, disputes */
    pk_scope_view view;            /* what the agent may do now */
    Pactum__V1__PactRef *refs[16]; /* pacts in force */
    size_t n_refs;
    Pactum__V1__SeverityCount w_store[3][PK_SEVERITIES]; /* violations by window */
    Pactum__V1__SeverityCount *w_ptrs[3][PK_SEVERITIES];
    uint8_t *head;               /* the signed tree head */
    const pk_compiled *gov_held; /* the governance pact, held */
    const pk_compiled *held[16]; /* the pacts in force, held while the report is built */
    size_t n_held;
    pk_trust_effect crit; /* re-entry criteria, where they stand */
    Pactum__V1__Criterion c[PK_CRITERIA_MAX], *cp[PK_CRITERIA_MAX];
} report_parts;

static void parts_free(oracle *o, report_parts *p)
{
    collected_free(&p->col);
    oracle_pacts_free(p->refs, p->n_refs);
    free(p->head);
    pk_pact_cache_release(o->pacts, p->gov_held);
    for (size_t i = 0; i < p->n_held; i++)
        pk_pact_cache_release(o->pacts, p->held[i]);
    memset(p, 0, sizeof(*p));
}

/* Tier history, containments, overrides, disputes, and what the agent may do now. */
static void add_history(oracle *o, MDB_txn *txn, uint32_t history, Pactum__V1__TrustReport *rep,
                        report_parts *p)
{
    uint32_t want = history ? history : (uint32_t)o->cfg->history;
    const Pactum__V1__Override *by = NULL;
    const pk_governance *gov;

    p->col.want_tiers = want > HISTORY_MAX ? HISTORY_MAX : want;
    walk_newest(txn, o->tiers, rep->agent_id, collect_tier, &p->col);
    walk_newest(txn, o->governance, rep->agent_id, collect_gov, &p->col);
    rep->tier_history = p->col.tiers;
    rep->n_tier_history = p->col.n_tiers;
    rep->containments = p->col.cont;
    rep->n_containments = p->col.n_cont;
    rep->overrides = p->col.ov;
    rep->n_overrides = p->col.n_ov;
    rep->disputes = p->col.disp;
    rep->n_disputes = p->col.n_disp;
    /* the pacts in force: the governance section that applies from registration on, and a
     * pact overdue for review */
    for (size_t i = 0; i < p->n_refs && p->n_held < 16; i++) {
        if (pk_pact_cache_get(o->pacts, txn, p->refs[i]->pact_id, p->refs[i]->version,
                              &p->held[p->n_held]) == PK_OK)
            p->n_held++;
    }
    gov = oracle_governance_of(o, txn, rep->state, &p->gov_held);
    for (size_t i = 0; i < p->n_held; i++) {
        const pk_pact *pact = p->held[i]->pact;
        if (!p->gov_held && pact->gov.present)
            gov = &pact->gov;
        if (pact->review_by_ms && rep->answered_ms > pact->review_by_ms &&
            (!rep->review_pact[0] || pact->review_by_ms < rep->review_by_ms)) {
            rep->review_pact = pact->id;
            rep->review_by_ms = pact->review_by_ms;
        }
    }
    /* what the agent may do now: the overrides in force, capped while a pact is overdue,
     * then the tier's scope */
    rep->effective_tier = pk_effective_tier(rep->state, rep->answered_ms, &by);
    rep->effective_by = (Pactum__V1__Override *)by;
    for (size_t i = 0; i < p->n_held; i++) {
        const pk_pact *pact = p->held[i]->pact;
        if (pact->review_by_ms && rep->answered_ms > pact->review_by_ms &&
            (int)rep->effective_tier < pact->review_cap)
            rep->effective_tier = (Pactum__V1__Tier)pact->review_cap;
    }
    pk_scope_view_build(&p->view, gov, rep->state, rep->effective_tier, rep->answered_ms);
    rep->scope = &p->view.scope;
    /* a held agent: each re-entry criterion and where it stands now */
    if (rep->state && rep->state->held) {
        static _Thread_local pk_trust t;
        pk_trust_from_msg(&t, rep->state);
        if (rep->answered_ms > t.clock_ms)
            t.clock_ms = rep->answered_ms;
        pk_tiers_reentry(&t, gov, &p->crit);
        for (int i = 0; i < p->crit.n_crit; i++) {
            pactum__v1__criterion__init(&p->c[i]);
            p->c[i].name = p->crit.crit[i].name;
            p->c[i].required = p->crit.crit[i].required;
            p->c[i].actual = p->crit.crit[i].actual;
            p->c[i].met = p->crit.crit[i].met;
            p->cp[i] = &p->c[i];
        }
        rep->reentry = p->cp;
        rep->n_reentry = (size_t)p->crit.n_crit;
    }
}

/* Violations over the last day, week and month; the log's head and the report's leaf. */
static void add_violations_and_log(oracle *o, MDB_txn *txn, Pactum__V1__TrustReport *rep,
                                   report_parts *p)
{
    static const int64_t windows[3] = {86400000LL, 7 * 86400000LL, 30 * 86400000LL};
    Pactum__V1__SeverityCount ***lists[3] = {&rep->violations_24h, &rep->violations_7d,
                                             &rep->violations_30d};
    size_t *sizes[3] = {&rep->n_violations_24h, &rep->n_violations_7d, &rep->n_violations_30d};
    int64_t since[3];
    uint64_t index = 0, counts[3][PK_SEVERITIES];
    size_t head_len = 0;

    for (int w = 0; w < 3; w++)
        since[w] = rep->answered_ms - windows[w];
    oracle_count_violations(o, txn, rep->agent_id, since, 3, counts);
    for (int w = 0; w < 3; w++) {
        *sizes[w] = oracle_severity_list(counts[w], p->w_store[w], p->w_ptrs[w]);
        *lists[w] = p->w_ptrs[w];
    }
    if (tlog_head(&o->log, txn, tlog_size(&o->log, txn), &p->head, &head_len) == PK_OK) {
        rep->log_head.data = p->head;
        rep->log_head.len = head_len;
    }
    if (rep->trust_seq &&
        tlog_find(&o->log, txn, PK_STREAM_TRUST, rep->trust_seq, &index) == PK_OK) {
        rep->logged = true;
        rep->log_index = index;
    }
}

/* A read transaction and the agent's record, looking at the registry once more if needed. */
static pk_status find_agent(oracle *o, const char *agent_id, MDB_txn **txn,
                            Pactum__V1__AgentRecord **agent)
{
    pk_status st;

    if ((st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return PK_WRAP(st, "read model unavailable");
    if (pk_registry_agent(o->reg, *txn, agent_id, agent, NULL) == PK_OK)
        return PK_OK;
    /* Registered a moment ago? Look at the registry once more (throttled). */
    pk_txn_abort(*txn);
    *txn = NULL;
    if ((st = pk_registry_refresh(o->reg, 50)) != PK_OK ||
        (st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return PK_WRAP(st, "registry unavailable");
    if (pk_registry_agent(o->reg, *txn, agent_id, agent, NULL) != PK_OK)
        *agent = NULL; /* not registered: the report says so */
    return PK_OK;
}

pk_status oracle_answer_trust(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                              size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__TrustQuery *q = pactum__v1__trust_query__unpack(NULL, len, req);
    Pactum__V1__TrustReport rep = PACTUM__V1__TRUST_REPORT__INIT, *stored = NULL;
    Pactum__V1__TrustState initial = PACTUM__V1__TRUST_STATE__INIT;
    Pactum__V1__AgentRecord *agent = NULL;
    static _Thread_local report_parts parts;
    oracle_reply r = {.status = Q_OK};
    MDB_txn *txn = NULL;
    uint64_t version = 0, reg_seq = 0;
    int64_t made_mono_ms = pk_mono_ms();
    pk_status st = PK_OK;

    oracle_count(o, OM_QUERIES);
    rep.answered_ms = pk_now_ms();
    rep.agent_id = q ? q->agent_id : "";
    if (!q || pk_id_check("agent id", q->agent_id) != PK_OK) {
        oracle_refuse(o, &r, Q_BAD, "%s", q ? pk_error_msg() : "request is not a TrustQuery");
        goto reply;
    }
    /* the same query again, with nothing changed: the answer already signed */
    if (oracle_reuse_get(o, q->agent_id, req, len, &version, out, outlen)) {
        pactum__v1__trust_query__free_unpacked(q, NULL);
        return PK_OK;
    }
    reg_seq = pk_registry_seq(o->reg); /* read before the snapshot, as version was */
    if ((st = find_agent(o, q->agent_id, &txn, &agent)) != PK_OK) {
        oracle_refuse(o, &r, Q_UNAVAILABLE, "%s", pk_error_msg());
        goto reply;
    }
    rep.registered = agent != NULL;
    stored = oracle_stored_report(o, txn, q->agent_id);
    if (!stored && !rep.registered) {
        oracle_refuse(o, &r, Q_UNKNOWN, "unknown agent: '%s' is not registered", q->agent_id);
        goto reply;
    }
    if (stored) {
        rep.state = stored->state;
        rep.last_violation = stored->last_violation;
        rep.trust_seq = stored->trust_seq;
    } else {
        /* Registered but no verdict yet: a new agent is watched, with no evidence. */
        initial.agent_id = q->agent_id;
        initial.tier = PACTUM__V1__TIER__TIER_WATCH;
        initial.tier_since_ms = agent->registered_ms;
        rep.state = &initial;
        snprintf(r.msg, sizeof(r.msg), "no evidence yet: insufficient to score");
    }
    parts.n_refs = oracle_pacts_of(o, txn, q->agent_id, parts.refs, 16);
    rep.pacts = parts.refs;
    rep.n_pacts = parts.n_refs;
    add_history(o, txn, q->history, &rep, &parts);
    add_violations_and_log(o, txn, &rep, &parts);
reply:
    rep.status = r.status;
    rep.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, &rep.base, out, outlen);
    if (st == PK_OK && rep.status == Q_OK)
        oracle_reuse_put(o, q->agent_id, req, len, version, reg_seq, made_mono_ms, *out, *outlen);
    pk_txn_abort(txn);
    parts_free(o, &parts);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (agent)
        pactum__v1__agent_record__free_unpacked(agent, NULL);
    if (q)
        pactum__v1__trust_query__free_unpacked(q, NULL);
    return st;
}

#define VERSIONS_MAX 256 /* versions listed in one answer */

pk_status oracle_answer_pact(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                             size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__PactQuery *q = pactum__v1__pact_query__unpack(NULL, len, req);
    Pactum__V1__PactReport rep = PACTUM__V1__PACT_REPORT__INIT;
    Pactum__V1__PactRecord *recs[VERSIONS_MAX];
    Pactum__V1__PactVersion vers[VERSIONS_MAX], *vp[VERSIONS_MAX];
    size_t n = 0;
    oracle_reply r = {.status = Q_OK};
    MDB_txn *txn = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    rep.answered_ms = pk_now_ms();
    if (!q || pk_id_check("pact id", q->pact_id) != PK_OK) {
        oracle_refuse(o, &r, Q_BAD, "%s", q ? pk_error_msg() : "request is not a PactQuery");
        goto reply;
    }
    rep.pact_id = q->pact_id;
    if (pk_registry_refresh(o->reg, 50) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if (pk_txn_begin(o->store, false, &txn) != PK_OK) {
        oracle_refuse(o, &r, Q_UNAVAILABLE, "read model unavailable: %s", pk_error_msg());
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
        r.status = Q_NOT_FOUND;
        snprintf(r.msg, sizeof(r.msg), "unknown pact: '%s'%s is not registered", q->pact_id,
                 q->version ? " at that version" : "");
    }
reply:
    rep.status = r.status;
    rep.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT, &rep.base, out, outlen);
    pk_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        pactum__v1__pact_record__free_unpacked(recs[i], NULL);
    if (q)
        pactum__v1__pact_query__free_unpacked(q, NULL);
    return st;
}
