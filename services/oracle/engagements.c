/*
 * engagements - an agent's engagements and their settlement statements, as
 * the read model keeps them (pactum.oracle.engagements, GET
 * /v1/agents/<id>/engagements). Asked about one engagement, the answer also
 * proves each statement's trust change, each verdict a statement cites and
 * the acceptance that both parties signed, in one signed tree head.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"

#define ENG_VIEWS_MAX      100  /* engagements in one answer (the newest) */
#define ENG_STATEMENTS_MAX 5000 /* statements read for one answer, at most */
#define ENG_PROOFS_MAX     64   /* leaves proven in one answer */
#define ENG_CURRENCIES_MAX 16

typedef struct group {
    char id[PK_ID_MAX + 1];
    Pactum__V1__StatementRef **refs; /* owned, oldest first */
    size_t n, cap;
    Pactum__V1__EngagementView view;
    Pactum__V1__EngagementState own; /* when the state no longer holds it */
    Pactum__V1__Engagement terms;
} group;

typedef struct eng_answer {
    group *g;
    size_t n, cap;
    size_t read; /* statements read */
    Pactum__V1__EngagementView *viewp[ENG_VIEWS_MAX];
    Pactum__V1__CurrencyTotal cur[ENG_CURRENCIES_MAX], *curp[ENG_CURRENCIES_MAX];
    size_t n_cur;
    Pactum__V1__EngagementTotals totals;
    oracle_entry proofs[ENG_PROOFS_MAX];
    Pactum__V1__EvidenceEntry *proofp[ENG_PROOFS_MAX];
    size_t n_proofs;
    uint64_t proven[ENG_PROOFS_MAX]; /* leaf indexes already in proofs */
    uint8_t *head;
} eng_answer;

static group *group_of(eng_answer *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->g[i].id, id) == 0)
            return &a->g[i];
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        group *more = realloc(a->g, cap * sizeof(*more));
        if (!more)
            return NULL;
        a->g = more;
        a->cap = cap;
    }
    memset(&a->g[a->n], 0, sizeof(a->g[0]));
    snprintf(a->g[a->n].id, sizeof(a->g[0].id), "%s", id);
    return &a->g[a->n++];
}

static bool group_add(group *g, Pactum__V1__StatementRef *ref)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        Pactum__V1__StatementRef **more = realloc(g->refs, cap * sizeof(*more));
        if (!more)
            return false;
        g->refs = more;
        g->cap = cap;
    }
    g->refs[g->n++] = ref;
    return true;
}

static void answer_free(eng_answer *a)
{
    for (size_t i = 0; i < a->n; i++) {
        for (size_t k = 0; k < a->g[i].n; k++)
            pactum__v1__statement_ref__free_unpacked(a->g[i].refs[k], NULL);
        free(a->g[i].refs);
    }
    free(a->g);
    for (size_t i = 0; i < a->n_proofs; i++) {
        free(a->proofs[i].leaf);
        free(a->proofs[i].record);
    }
    free(a->head);
}

/* Every statement of the agent (of one engagement if id), grouped by engagement. */
static pk_status read_statements(oracle *o, MDB_txn *txn, const char *agent, const char *id,
                                 eng_answer *a)
{
    uint8_t key[PK_ID_MAX + 9];
    MDB_cursor *cur = NULL;
    MDB_val k = {.mv_size = pk_key_id_u64(key, agent, 0), .mv_data = key}, v;
    size_t al = strlen(agent);
    pk_status st = PK_OK;
    int rc;

    if ((rc = mdb_cursor_open(txn, o->settlements, &cur)) != 0)
        return pk_store_err(rc, "the statements");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && st == PK_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Pactum__V1__StatementRef *ref;
        group *g;
        if (k.mv_size != al + 13 || memcmp(k.mv_data, agent, al) != 0 ||
            ((const uint8_t *)k.mv_data)[al] != 0 || a->read == ENG_STATEMENTS_MAX)
            break;
        a->read++;
        ref = pactum__v1__statement_ref__unpack(NULL, v.mv_size, v.mv_data);
        if (!ref || !ref->settlement || (id && strcmp(ref->settlement->engagement_id, id) != 0)) {
            if (ref)
                pactum__v1__statement_ref__free_unpacked(ref, NULL);
            continue;
        }
        if (!(g = group_of(a, ref->settlement->engagement_id)) || !group_add(g, ref)) {
            pactum__v1__statement_ref__free_unpacked(ref, NULL);
            st = PK_ERR(PK_ENOMEM, "out of memory");
        }
    }
    mdb_cursor_close(cur);
    return st;
}

/* The view of each engagement: the state's when it still holds it, else the terms stated. */
static void make_views(eng_answer *a, const Pactum__V1__TrustState *s, const char *id)
{
    size_t first;

    for (size_t i = 0; s && i < s->n_engagements; i++) {
        const Pactum__V1__EngagementState *es = s->engagements[i];
        if (es->terms && (!id || strcmp(es->terms->engagement_id, id) == 0))
            (void)group_of(a, es->terms->engagement_id);
    }
    first = a->n > ENG_VIEWS_MAX ? a->n - ENG_VIEWS_MAX : 0;
    for (size_t i = first; i < a->n; i++) {
        group *g = &a->g[i];
        const Pactum__V1__EngagementState *held = NULL;
        for (size_t k = 0; s && k < s->n_engagements; k++) {
            if (s->engagements[k]->terms &&
                strcmp(s->engagements[k]->terms->engagement_id, g->id) == 0)
                held = s->engagements[k];
        }
        pactum__v1__engagement_view__init(&g->view);
        if (!held && g->n) {
            const Pactum__V1__Settlement *st = g->refs[g->n - 1]->settlement;
            pactum__v1__engagement_state__init(&g->own);
            pactum__v1__engagement__init(&g->terms);
            g->terms.engagement_id = st->engagement_id;
            g->terms.buyer_id = st->buyer_id;
            g->terms.agent_id = st->agent_id;
            g->terms.pact_id = st->pact_id;
            g->terms.pact_version = st->pact_version;
            g->terms.pact_hash = st->pact_hash;
            g->terms.price = st->price;
            g->terms.currency = st->currency;
            g->own.terms = &g->terms;
            g->own.last = (Pactum__V1__Settlement *)st;
            g->own.accepted_seq = st->accepted_seq;
            g->own.ended = st->trigger;
            held = &g->own;
        }
        g->view.state = (Pactum__V1__EngagementState *)held;
        g->view.statements = g->refs;
        g->view.n_statements = g->n;
        a->viewp[i - first] = &g->view;
    }
}

/* What the newest statement of each engagement moved, by currency (withheld: nothing). */
static void settled_totals(eng_answer *a)
{
    for (size_t i = 0; i < a->n; i++) {
        const Pactum__V1__Settlement *st;
        size_t c = 0;
        if (!a->g[i].n)
            continue;
        st = a->g[i].refs[a->g[i].n - 1]->settlement;
        if (st->outcome == PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD)
            continue;
        while (c < a->n_cur && strcmp(a->cur[c].currency, st->currency) != 0)
            c++;
        if (c == a->n_cur) {
            if (a->n_cur == ENG_CURRENCIES_MAX)
                continue;
            pactum__v1__currency_total__init(&a->cur[c]);
            a->cur[c].currency = st->currency;
            a->curp[c] = &a->cur[c];
            a->n_cur++;
        }
        a->cur[c].released += st->release;
        a->cur[c].refunded += st->refund;
    }
}

/* Prove the record at (stream, seq) in the tree of size; false if it is not in the log yet. */
static bool prove(oracle *o, MDB_txn *txn, eng_answer *a, const char *stream, uint64_t seq,
                  uint64_t size)
{
    uint64_t index;
    MDB_val leaf;
    Pactum__V1__LogLeaf *l;
    pk_status st;

    if (!seq)
        return true;
    if (tlog_find(&o->log, txn, stream, seq, &index) != PK_OK || index >= size)
        return false;
    for (size_t i = 0; i < a->n_proofs; i++) {
        if (a->proven[i] == index)
            return true;
    }
    if (a->n_proofs == ENG_PROOFS_MAX)
        return true; /* the answer says so: not every leaf is proven */
    if (tlog_leaf(&o->log, txn, index, &leaf) != PK_OK ||
        !(l = pactum__v1__log_leaf__unpack(NULL, leaf.mv_size, leaf.mv_data)))
        return false;
    st = oracle_entry_of(o, txn, index, size, &leaf, l, &a->proofs[a->n_proofs]);
    pactum__v1__log_leaf__free_unpacked(l, NULL);
    a->proofp[a->n_proofs] = &a->proofs[a->n_proofs].e;
    a->proven[a->n_proofs++] = index;
    return st == PK_OK;
}

/* The leaves behind one engagement: acceptance, each statement's change, each verdict cited. */
static bool prove_engagement(oracle *o, MDB_txn *txn, eng_answer *a, const group *g,
                             const Pactum__V1__EngagementState *es)
{
    uint64_t size = tlog_size(&o->log, txn);
    bool ok = es ? prove(o, txn, a, PK_STREAM_VERDICTS, es->accepted_seq, size) : true;

    for (size_t i = 0; ok && i < g->n; i++) {
        const Pactum__V1__Settlement *st = g->refs[i]->settlement;
        ok = prove(o, txn, a, PK_STREAM_VERDICTS, st->accepted_seq, size) &&
             prove(o, txn, a, PK_STREAM_TRUST, g->refs[i]->trust_seq, size);
        for (size_t k = 0; ok && k < st->n_lines; k++)
            ok = prove(o, txn, a, PK_STREAM_VERDICTS, st->lines[k]->verdict_seq, size);
    }
    return ok;
}

pk_status oracle_answer_engagements(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                                    size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__EngagementQuery *q = pactum__v1__engagement_query__unpack(NULL, len, req);
    Pactum__V1__EngagementReport rep = PACTUM__V1__ENGAGEMENT_REPORT__INIT;
    Pactum__V1__TrustReport *stored = NULL;
    oracle_reply r = {.status = Q_OK};
    eng_answer a = {0};
    MDB_txn *txn = NULL;
    const char *id = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    rep.answered_ms = pk_now_ms();
    if (q && pk_id_check("agent id", q->agent_id) == PK_OK)
        rep.agent_id = q->agent_id;
    if (!oracle_agent_txn(o, &r, "request is not an EngagementQuery", q ? q->agent_id : NULL, &txn))
        goto reply;
    if (q->engagement_id[0]) {
        if (pk_id_check("engagement id", q->engagement_id) != PK_OK) {
            oracle_refuse(o, &r, Q_BAD, "%s", pk_error_msg());
            goto reply;
        }
        id = q->engagement_id;
    }
    /* one engagement's proofs may wait a moment for the log to follow the read model */
    for (int tries = 0; tries < 30; tries++) {
        const Pactum__V1__TrustState *s;
        size_t head_len = 0;
        if (tries) {
            answer_free(&a);
            memset(&a, 0, sizeof(a));
            if (stored)
                pactum__v1__trust_report__free_unpacked(stored, NULL);
            stored = NULL;
            pk_txn_abort(txn);
            txn = NULL;
            pk_sleep_ms(100);
            if (pk_txn_begin(o->store, false, &txn) != PK_OK) {
                oracle_refuse(o, &r, Q_UNAVAILABLE, "read model unavailable: %s", pk_error_msg());
                break;
            }
        }
        stored = oracle_stored_report(o, txn, q->agent_id);
        s = stored ? stored->state : NULL;
        if (read_statements(o, txn, q->agent_id, id, &a) != PK_OK) {
            oracle_refuse(o, &r, Q_UNAVAILABLE, "%s", pk_error_msg());
            break;
        }
        make_views(&a, s, id);
        if (id && !a.n) {
            oracle_refuse(o, &r, Q_NOT_FOUND, "%s has no engagement %s", q->agent_id, id);
            break;
        }
        if (!id)
            break;
        if (prove_engagement(o, txn, &a, &a.g[0], a.g[0].view.state) &&
            tlog_head(&o->log, txn, tlog_size(&o->log, txn), &a.head, &head_len) == PK_OK) {
            rep.head.data = a.head;
            rep.head.len = head_len;
            break;
        }
        if (tries == 29)
            oracle_refuse(o, &r, Q_UNAVAILABLE,
                          "engagement %s: its records are not all in the log yet; ask again", id);
    }
    if (r.status == Q_OK) {
        const Pactum__V1__TrustState *s = stored ? stored->state : NULL;
        pactum__v1__engagement_totals__init(&a.totals);
        if (s && s->engagement_totals)
            a.totals = *s->engagement_totals;
        settled_totals(&a);
        rep.totals = &a.totals;
        rep.settled = a.curp;
        rep.n_settled = a.n_cur;
        rep.engagements = a.viewp;
        rep.n_engagements = a.n > ENG_VIEWS_MAX ? ENG_VIEWS_MAX : a.n;
        rep.proofs = a.proofp;
        rep.n_proofs = a.n_proofs;
        if (a.read == ENG_STATEMENTS_MAX)
            snprintf(r.msg, sizeof(r.msg), "the first %d statements only", ENG_STATEMENTS_MAX);
        else if (a.n_proofs == ENG_PROOFS_MAX)
            snprintf(r.msg, sizeof(r.msg), "the first %d records only are proven", ENG_PROOFS_MAX);
    }
reply:
    rep.status = r.status;
    rep.message = r.msg;
    st =
        oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT, &rep.base, out, outlen);
    pk_txn_abort(txn);
    answer_free(&a);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (q)
        pactum__v1__engagement_query__free_unpacked(q, NULL);
    return st;
}
