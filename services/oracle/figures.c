/*
 * Governance figures: violations by age, containment times, tier changes and
 * their causes, overrides, re-entries - system-wide or for one agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/tiers.h"

/* --- governance figures ------------------------------------------------------- */

#define RECENT_MAX 20

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Keep the RECENT_MAX newest (by t) of a stream of items: insertion into a sorted array. */
typedef struct recent {
    void *item[RECENT_MAX];
    int64_t t[RECENT_MAX];
    size_t n;
} recent;

/* Offer item at time t; returns the item pushed out (or item itself if not kept), to free. */
static void *recent_offer(recent *r, void *item, int64_t t)
{
    void *out = NULL;
    size_t pos;

    if (r->n == RECENT_MAX) {
        if (t <= r->t[RECENT_MAX - 1])
            return item;
        out = r->item[RECENT_MAX - 1];
        r->n--;
    }
    for (pos = r->n; pos > 0 && r->t[pos - 1] < t; pos--) {
        r->item[pos] = r->item[pos - 1];
        r->t[pos] = r->t[pos - 1];
    }
    r->item[pos] = item;
    r->t[pos] = t;
    r->n++;
    return out;
}

/* Position a cursor on the first key of agent (or of the db, agent NULL). */
static int first_of(MDB_cursor *cur, const char *agent, MDB_val *k, MDB_val *v, uint8_t *buf)
{
    size_t al;

    if (!agent)
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    al = strlen(agent);
    memcpy(buf, agent, al);
    buf[al] = 0;
    k->mv_size = al + 1;
    k->mv_data = buf;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

static bool key_of_agent(const MDB_val *k, const char *agent)
{
    return !agent || pk_key_has_id(k, agent);
}

/* What the figures point into, kept until they are signed. */
typedef struct fig_parts {
    Pactum__V1__Quantiles qt; /* containment times */
    Pactum__V1__SeverityCount store[4][PK_SEVERITIES],
        *ptrs[4][PK_SEVERITIES]; /* violations by window */
    recent reent, ovs;           /* newest re-entries and overrides */
    Pactum__V1__Override *ov_ptrs[RECENT_MAX];
    Pactum__V1__TierChange *re_ptrs[RECENT_MAX];
    int64_t *cont; /* containment times, for quantiles */
    size_t n_cont, cap;
    uint8_t *head; /* the log's head */
} fig_parts;

/* Violations that still count, ever and over the last day, week and month. */
static void add_violations(oracle *o, MDB_txn *txn, const char *agent,
                           Pactum__V1__GovernanceFigures *f, fig_parts *p)
{
    static const int64_t since[4] = {0, 86400000LL, 7 * 86400000LL, 30 * 86400000LL};
    Pactum__V1__SeverityCount ***lists[4] = {&f->violations, &f->violations_24h, &f->violations_7d,
                                             &f->violations_30d};
    size_t *counts_n[4] = {&f->n_violations, &f->n_violations_24h, &f->n_violations_7d,
                           &f->n_violations_30d};
    int64_t from[4];
    uint64_t c[4][PK_SEVERITIES];

    for (int w = 0; w < 4; w++)
        from[w] = w ? f->answered_ms - since[w] : INT64_MIN;
    oracle_count_violations(o, txn, agent, from, 4, c);
    for (int w = 0; w < 4; w++) {
        *counts_n[w] = oracle_severity_list(c[w], p->store[w], p->ptrs[w]);
        *lists[w] = p->ptrs[w];
    }
}

/* Keep a containment time for the quantiles; false if out of memory. */
static bool add_containment(fig_parts *p, int64_t ms)
{
    if (p->n_cont == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        int64_t *nc = realloc(p->cont, cap * sizeof(*nc));
        if (!nc)
            return false;
        p->cont = nc;
        p->cap = cap;
    }
    p->cont[p->n_cont++] = ms;
    return true;
}

/* Tier changes: containment times, causes, log entries, re-entries. */
static void add_tier_changes(oracle *o, MDB_txn *txn, const char *agent,
                             Pactum__V1__GovernanceFigures *f, fig_parts *p)
{
    uint8_t kbuf[PK_ID_MAX + 9];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    bool room = true;

    if (mdb_cursor_open(txn, o->tiers, &cur) != 0)
        return;
    for (int rc = first_of(cur, agent, &k, &v, kbuf); rc == 0 && key_of_agent(&k, agent) && room;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Pactum__V1__TierChange *tc = pactum__v1__tier_change__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t index;
        void *drop = tc;
        if (!tc)
            continue;
        f->tier_changes++;
        if (tc->rule[0] && tc->cause[0])
            f->tier_changes_with_cause++;
        if (tc->trust_seq &&
            tlog_find(&o->log, txn, PK_STREAM_TRUST, tc->trust_seq, &index) == PK_OK)
            f->tier_changes_logged++;
        if (tc->to >= PACTUM__V1__TIER__TIER_CONTAINED &&
            tc->from < PACTUM__V1__TIER__TIER_CONTAINED && tc->containment_ms >= 0 && tc->verdict)
            room = add_containment(p, tc->containment_ms);
        if (strcmp(tc->rule, PK_RULE_REENTRY) == 0) {
            f->reentries++;
            drop = recent_offer(&p->reent, tc, tc->at_ms);
        }
        if (drop)
            pactum__v1__tier_change__free_unpacked(drop, NULL);
    }
    mdb_cursor_close(cur);
    if (p->n_cont) {
        qsort(p->cont, p->n_cont, sizeof(*p->cont), cmp_i64);
        pactum__v1__quantiles__init(&p->qt);
        p->qt.count = p->n_cont;
        p->qt.p50 = p->cont[(p->n_cont - 1) / 2];
        p->qt.p99 = p->cont[(size_t)((double)(p->n_cont - 1) * 0.99)];
        p->qt.max = p->cont[p->n_cont - 1];
        f->containment_ms = &p->qt;
    }
    for (size_t i = 0; i < p->reent.n; i++)
        p->re_ptrs[i] = p->reent.item[i];
    f->reentries_recent = p->re_ptrs;
    f->n_reentries_recent = p->reent.n;
}

/* Overrides, from the governance records: in force, expired, the newest. */
static void add_overrides(oracle *o, MDB_txn *txn, const char *agent,
                          Pactum__V1__GovernanceFigures *f, fig_parts *p)
{
    uint8_t kbuf[PK_ID_MAX + 9];
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    if (mdb_cursor_open(txn, o->governance, &cur) != 0)
        return;
    for (int rc = first_of(cur, agent, &k, &v, kbuf); rc == 0 && key_of_agent(&k, agent);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Pactum__V1__GovernanceEntry *e =
            pactum__v1__governance_entry__unpack(NULL, v.mv_size, v.mv_data);
        void *drop = e;
        if (e && e->record &&
            e->record->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE) {
            const Pactum__V1__Override *ov = e->record->override;
            f->overrides_total++;
            if (ov->expires_ms <= f->answered_ms)
                f->overrides_expired++;
            else if (ov->created_ms <= f->answered_ms)
                f->overrides_active++;
            drop = recent_offer(&p->ovs, e, ov->created_ms);
        }
        if (drop)
            pactum__v1__governance_entry__free_unpacked(drop, NULL);
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < p->ovs.n; i++)
        p->ov_ptrs[i] = ((Pactum__V1__GovernanceEntry *)p->ovs.item[i])->record->override;
    f->overrides_recent = p->ov_ptrs;
    f->n_overrides_recent = p->ovs.n;
}

/* Every figure, for agent (NULL: the whole system). */
static void figures(oracle *o, MDB_txn *txn, const char *agent, Pactum__V1__GovernanceFigures *f,
                    fig_parts *p)
{
    size_t head_len = 0;
    MDB_stat ms;
    MDB_val v;

    /* agents with a trust state */
    if (agent)
        f->agents = pk_get(txn, o->reports, agent, strlen(agent), &v) == PK_OK;
    else if (mdb_stat(txn, o->reports, &ms) == 0)
        f->agents = ms.ms_entries;
    add_violations(o, txn, agent, f, p);
    add_tier_changes(o, txn, agent, f, p);
    add_overrides(o, txn, agent, f, p);
    if (tlog_head(&o->log, txn, tlog_size(&o->log, txn), &p->head, &head_len) == PK_OK) {
        f->log_head.data = p->head;
        f->log_head.len = head_len;
    }
}

pk_status oracle_answer_figures(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                                size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__FiguresQuery *q = pactum__v1__figures_query__unpack(NULL, len, req);
    Pactum__V1__GovernanceFigures f = PACTUM__V1__GOVERNANCE_FIGURES__INIT;
    fig_parts parts = {0};
    oracle_reply r = {.status = Q_OK};
    MDB_txn *txn = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    f.answered_ms = pk_now_ms();
    if (q && q->agent_id[0]) { /* one agent's figures */
        if (oracle_agent_txn(o, &r, NULL, q->agent_id, &txn))
            figures(o, txn, q->agent_id, &f, &parts);
        if (r.status != Q_BAD)
            f.agent_id = q->agent_id;
    } else if (!q) {
        oracle_refuse(o, &r, Q_BAD, "request is not a FiguresQuery");
    } else if (pk_txn_begin(o->store, false, &txn) != PK_OK) {
        oracle_refuse(o, &r, Q_UNAVAILABLE, "read model unavailable: %s", pk_error_msg());
    } else { /* the whole system's */
        figures(o, txn, NULL, &f, &parts);
    }
    f.status = r.status;
    f.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES, &f.base, out, outlen);
    pk_txn_abort(txn);
    for (size_t i = 0; i < parts.ovs.n; i++)
        pactum__v1__governance_entry__free_unpacked(parts.ovs.item[i], NULL);
    for (size_t i = 0; i < parts.reent.n; i++)
        pactum__v1__tier_change__free_unpacked(parts.reent.item[i], NULL);
    free(parts.cont);
    free(parts.head);
    if (q)
        pactum__v1__figures_query__free_unpacked(q, NULL);
    return st;
}
