/*
 * Answers that carry proofs from the transparency log: an agent's evidence
 * (each record with its inclusion proof), attestations, and the log's heads,
 * inclusion and consistency proofs.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"

/* Proof path as repeated bytes pointing into path storage. */
static void path_field(uint8_t path[][PK_HASH], size_t n, ProtobufCBinaryData *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].data = path[i];
        out[i].len = PK_HASH;
    }
}

/* A copy of an LMDB value that outlives the transaction; NULL if out of memory. */
static uint8_t *copy_of(const MDB_val *v)
{
    uint8_t *c = malloc(v->mv_size ? v->mv_size : 1);

    if (c)
        memcpy(c, v->mv_data, v->mv_size);
    return c;
}

/* --- evidence ----------------------------------------------------------------- */

#define EVIDENCE_MAX 100

/* One logged record of the agent with its inclusion proof in a tree of size leaves. */
pk_status oracle_entry_of(oracle *o, MDB_txn *txn, uint64_t index, uint64_t size,
                          const MDB_val *leaf, const Pactum__V1__LogLeaf *l, oracle_entry *e)
{
    size_t rl = 0;
    pk_status st;

    pactum__v1__evidence_entry__init(&e->e);
    e->e.index = index;
    e->leaf = copy_of(leaf);
    e->e.leaf.data = e->leaf;
    e->e.leaf.len = e->leaf ? leaf->mv_size : 0;
    if (tlog_record(&o->log, l->stream, l->stream_seq, &e->record, &rl) == PK_OK) {
        e->e.record.data = e->record;
        e->e.record.len = rl;
    }
    if ((st = tlog_path(&o->log, txn, index, size, e->path, &e->e.n_path)) != PK_OK)
        return PK_WRAP(st, "cannot prove leaf %llu", (unsigned long long)index);
    path_field(e->path, e->e.n_path, e->pathv);
    e->e.path = e->pathv;
    return PK_OK;
}

/* Up to limit of the agent's leaves from q->from, of q->kind; page->next if more follow. */
static pk_status collect_entries(oracle *o, MDB_txn *txn, const Pactum__V1__EvidenceQuery *q,
                                 uint32_t limit, uint64_t size, oracle_entry *es, size_t *n,
                                 Pactum__V1__EvidencePage *page)
{
    uint8_t key[PK_ID_MAX + 9];
    size_t al = strlen(q->agent_id);
    MDB_cursor *cur = NULL;
    MDB_val k = {.mv_size = pk_key_id_u64(key, q->agent_id, q->from), .mv_data = key}, v;
    pk_status st = PK_OK;
    int rc;

    if ((rc = mdb_cursor_open(txn, o->log.by_agent, &cur)) != 0)
        return pk_store_err(rc, "the log index");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && st == PK_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t index;
        MDB_val leaf;
        Pactum__V1__LogLeaf *l;
        if (!pk_key_has_id(&k, q->agent_id) ||
            (index = pk_be64_get((const uint8_t *)k.mv_data + al + 1)) >= size)
            break;
        if (tlog_leaf(&o->log, txn, index, &leaf) != PK_OK ||
            !(l = pactum__v1__log_leaf__unpack(NULL, leaf.mv_size, leaf.mv_data)))
            continue;
        if (!q->kind || l->kind == q->kind) {
            if (*n == limit) {
                page->next = index; /* the first entry of the next page */
                rc = MDB_NOTFOUND;
            } else {
                st = oracle_entry_of(o, txn, index, size, &leaf, l, &es[*n]);
                (*n)++;
            }
        }
        pactum__v1__log_leaf__free_unpacked(l, NULL);
        if (rc == MDB_NOTFOUND)
            break;
    }
    mdb_cursor_close(cur);
    return st;
}

pk_status oracle_answer_evidence(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                                 size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__EvidenceQuery *q = pactum__v1__evidence_query__unpack(NULL, len, req);
    Pactum__V1__EvidencePage page = PACTUM__V1__EVIDENCE_PAGE__INIT;
    oracle_entry *es = NULL;
    Pactum__V1__EvidenceEntry *ptrs[EVIDENCE_MAX];
    oracle_reply r = {.status = Q_OK};
    uint8_t *head = NULL;
    size_t n = 0, head_len = 0;
    uint32_t limit = q && q->limit ? q->limit : 20;
    MDB_txn *txn = NULL;
    uint64_t size;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    page.answered_ms = pk_now_ms();
    if (q && pk_id_check("agent id", q->agent_id) == PK_OK)
        page.agent_id = q->agent_id;
    if (page.agent_id[0] && limit > EVIDENCE_MAX) {
        oracle_refuse(o, &r, Q_BAD, "limit is at most %d, got %u", EVIDENCE_MAX, q->limit);
        goto reply;
    }
    if (!oracle_agent_txn(o, &r, "request is not an EvidenceQuery", q ? q->agent_id : NULL, &txn))
        goto reply;
    size = tlog_size(&o->log, txn);
    if (!(es = calloc(limit, sizeof(*es))))
        st = PK_ERR(PK_ENOMEM, "out of memory");
    else if ((st = tlog_head(&o->log, txn, size, &head, &head_len)) != PK_OK)
        st = PK_WRAP(st, "cannot sign a tree head");
    else
        st = collect_entries(o, txn, q, limit, size, es, &n, &page);
    if (st != PK_OK) {
        oracle_refuse(o, &r, Q_UNAVAILABLE, "%s", pk_error_msg());
        goto reply;
    }
    page.head.data = head;
    page.head.len = head_len;
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &es[i].e;
    page.entries = ptrs;
    page.n_entries = n;
    if (n == 0)
        snprintf(r.msg, sizeof(r.msg), "no logged records of %s from leaf %llu", q->agent_id,
                 (unsigned long long)q->from);
reply:
    page.status = r.status;
    page.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, &page.base, out, outlen);
    pk_txn_abort(txn);
    for (size_t i = 0; es && i < n; i++) {
        free(es[i].leaf);
        free(es[i].record);
    }
    free(es);
    free(head);
    if (q)
        pactum__v1__evidence_query__free_unpacked(q, NULL);
    return st;
}

/* --- attestations ------------------------------------------------------------- */

/*
 * The agent's stored report once its newest trust change is in the log (the
 * log follows the read model by a moment: wait for it, up to 3 s). *index is
 * its leaf; NULL report if the agent has none. txn is left open.
 */
static Pactum__V1__TrustReport *logged_report(oracle *o, const char *agent, MDB_txn **txn,
                                              uint64_t *index, bool *logged)
{
    Pactum__V1__TrustReport *stored = NULL;
    bool known = false;

    *logged = false;
    for (int tries = 0; tries < 30; tries++) {
        if (tries) {
            pk_txn_abort(*txn);
            *txn = NULL;
            pk_sleep_ms(100);
            if (oracle_begin_for(o, agent, txn, &known) != PK_OK)
                return NULL;
        }
        stored = oracle_stored_report(o, *txn, agent);
        if (!stored || !stored->state)
            return stored;
        if (tlog_find(&o->log, *txn, PK_STREAM_TRUST, stored->trust_seq, index) == PK_OK) {
            *logged = true;
            return stored;
        }
        if (tries == 29)
            return stored; /* answered: not in the log yet */
        pactum__v1__trust_report__free_unpacked(stored, NULL);
        stored = NULL;
    }
    return stored;
}

/* What an attestation points into. */
typedef struct attest_parts {
    Pactum__V1__PactRef *refs[PK_PACTS_PER_AGENT_MAX];
    size_t n_refs;
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH];
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    uint8_t *head, *leaf, *rec;
} attest_parts;

/* The statement: the state, the trust change's leaf and proof, the pacts, the expiry. */
static pk_status attest(oracle *o, MDB_txn *txn, const Pactum__V1__TrustReport *stored,
                        uint64_t index, Pactum__V1__Attestation *at, attest_parts *p)
{
    uint64_t size = tlog_size(&o->log, txn);
    const Pactum__V1__Override *by = NULL;
    size_t head_len = 0, rec_len = 0, n_path = 0;
    MDB_val lv;
    pk_status st;

    if ((st = tlog_head(&o->log, txn, size, &p->head, &head_len)) != PK_OK ||
        (st = tlog_path(&o->log, txn, index, size, p->path, &n_path)) != PK_OK ||
        (st = tlog_leaf(&o->log, txn, index, &lv)) != PK_OK ||
        (st = tlog_record(&o->log, PK_STREAM_TRUST, stored->trust_seq, &p->rec, &rec_len)) != PK_OK)
        return PK_WRAP(st, "cannot prove the trust change");
    if (!(p->leaf = copy_of(&lv)))
        return PK_ERR(PK_ENOMEM, "out of memory");
    at->leaf.data = p->leaf;
    at->leaf.len = lv.mv_size;
    at->record.data = p->rec;
    at->record.len = rec_len;
    at->head.data = p->head;
    at->head.len = head_len;
    path_field(p->path, n_path, p->pathv);
    at->path = p->pathv;
    at->n_path = n_path;
    at->log_index = index;
    at->score_ppm = stored->state->score_ppm;
    at->lower_ppm = stored->state->lower_ppm;
    at->evidence = stored->state->evidence;
    at->newest_evidence_ms = stored->state->newest_evidence_ms;
    at->tier = stored->state->tier;
    at->effective_tier = pk_effective_tier(stored->state, at->issued_ms, &by);
    p->n_refs = oracle_pacts_of(o, txn, at->agent_id, p->refs, PK_PACTS_PER_AGENT_MAX);
    at->pacts = p->refs;
    at->n_pacts = p->n_refs;
    at->valid_until_ms = at->issued_ms + o->cfg->attest_ttl_ms;
    /* an override that ends sooner ends the statement with it */
    if (by && by->expires_ms < at->valid_until_ms)
        at->valid_until_ms = by->expires_ms;
    return PK_OK;
}

pk_status oracle_answer_attest(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                               size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__AttestQuery *q = pactum__v1__attest_query__unpack(NULL, len, req);
    Pactum__V1__Attestation at = PACTUM__V1__ATTESTATION__INIT;
    Pactum__V1__TrustReport *stored = NULL;
    attest_parts parts = {0};
    uint64_t index = 0;
    oracle_reply r = {.status = Q_OK};
    bool logged = false;
    MDB_txn *txn = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    at.issued_ms = pk_now_ms();
    if (q && pk_id_check("agent id", q->agent_id) == PK_OK)
        at.agent_id = q->agent_id;
    if (!oracle_agent_txn(o, &r, "request is not an AttestQuery", q ? q->agent_id : NULL, &txn))
        goto reply;
    stored = logged_report(o, q->agent_id, &txn, &index, &logged);
    if (!txn)
        oracle_refuse(o, &r, Q_UNAVAILABLE, "read model unavailable: %s", pk_error_msg());
    else if (!stored || !stored->state)
        oracle_refuse(o, &r, Q_NOT_FOUND, "nothing to attest yet: %s has no evidence", q->agent_id);
    else if (!logged)
        oracle_refuse(o, &r, Q_UNAVAILABLE,
                      "the newest trust change of %s is not in the log yet; ask again in a moment",
                      q->agent_id);
    else if (attest(o, txn, stored, index, &at, &parts) != PK_OK)
        oracle_refuse(o, &r, Q_UNAVAILABLE, "%s", pk_error_msg());
reply:
    at.status = r.status;
    at.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, &at.base, out, outlen);
    pk_txn_abort(txn);
    oracle_pacts_free(parts.refs, parts.n_refs);
    free(parts.head);
    free(parts.leaf);
    free(parts.rec);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (q)
        pactum__v1__attest_query__free_unpacked(q, NULL);
    return st;
}

/* --- the log: heads and proofs --------------------------------------------------- */

/* What a log answer points into. */
typedef struct log_parts {
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH];
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    uint8_t *head, *first, *leaf, *rec;
} log_parts;

/* An inclusion proof of q's leaf (by index, or by stream and sequence) in a tree of want. */
static bool prove_inclusion(oracle *o, MDB_txn *txn, const Pactum__V1__LogQuery *q, uint64_t want,
                            Pactum__V1__LogAnswer *a, log_parts *p, oracle_reply *r)
{
    uint64_t index = q->index;
    size_t n_path = 0, rec_len = 0;
    Pactum__V1__LogLeaf *l;
    MDB_val lv;

    if (q->stream[0] && tlog_find(&o->log, txn, q->stream, q->stream_seq, &index) != PK_OK)
        return oracle_refuse(o, r, Q_NOT_FOUND, "%s #%llu is not in the log (yet)", q->stream,
                             (unsigned long long)q->stream_seq);
    if (index >= want)
        return oracle_refuse(o, r, Q_NOT_FOUND, "leaf %llu is not in a tree of %llu leaves",
                             (unsigned long long)index, (unsigned long long)want);
    if (tlog_leaf(&o->log, txn, index, &lv) != PK_OK ||
        tlog_path(&o->log, txn, index, want, p->path, &n_path) != PK_OK)
        return oracle_refuse(o, r, Q_UNAVAILABLE, "cannot prove leaf %llu: %s",
                             (unsigned long long)index, pk_error_msg());
    p->leaf = copy_of(&lv);
    a->index = index;
    a->leaf.data = p->leaf;
    a->leaf.len = p->leaf ? lv.mv_size : 0;
    l = pactum__v1__log_leaf__unpack(NULL, lv.mv_size, lv.mv_data);
    if (l && tlog_record(&o->log, l->stream, l->stream_seq, &p->rec, &rec_len) == PK_OK) {
        a->record.data = p->rec;
        a->record.len = rec_len;
    }
    if (l)
        pactum__v1__log_leaf__free_unpacked(l, NULL);
    path_field(p->path, n_path, p->pathv);
    a->path = p->pathv;
    a->n_path = n_path;
    return true;
}

/* A consistency proof between the tree of q->first leaves and the tree of want. */
static bool prove_consistency(oracle *o, MDB_txn *txn, const Pactum__V1__LogQuery *q, uint64_t want,
                              Pactum__V1__LogAnswer *a, log_parts *p, oracle_reply *r)
{
    size_t first_len = 0, n_path = 0;

    if (q->first > want)
        return oracle_refuse(o, r, Q_BAD, "first (%llu) is beyond size (%llu)",
                             (unsigned long long)q->first, (unsigned long long)want);
    if (tlog_head(&o->log, txn, q->first, &p->first, &first_len) != PK_OK ||
        tlog_consistency(&o->log, txn, q->first, want, p->path, &n_path) != PK_OK)
        return oracle_refuse(o, r, Q_UNAVAILABLE, "cannot prove consistency: %s", pk_error_msg());
    a->first_head.data = p->first;
    a->first_head.len = first_len;
    path_field(p->path, n_path, p->pathv);
    a->path = p->pathv;
    a->n_path = n_path;
    return true;
}

/* The head of a tree of want leaves (the whole log when q->size is 0), and what q asks. */
static bool log_answer(oracle *o, MDB_txn *txn, const Pactum__V1__LogQuery *q,
                       Pactum__V1__LogAnswer *a, log_parts *p, oracle_reply *r)
{
    uint64_t size = tlog_size(&o->log, txn), want = q->size ? q->size : size;
    size_t head_len = 0;

    if (want > size)
        return oracle_refuse(o, r, Q_BAD, "the log has %llu leaves, not %llu",
                             (unsigned long long)size, (unsigned long long)want);
    if (tlog_head(&o->log, txn, want, &p->head, &head_len) != PK_OK)
        return oracle_refuse(o, r, Q_UNAVAILABLE, "cannot sign a tree head: %s", pk_error_msg());
    a->head.data = p->head;
    a->head.len = head_len;
    if (q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION)
        return prove_inclusion(o, txn, q, want, a, p, r);
    if (q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY)
        return prove_consistency(o, txn, q, want, a, p, r);
    return true;
}

pk_status oracle_answer_log(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__LogQuery *q = pactum__v1__log_query__unpack(NULL, len, req);
    Pactum__V1__LogAnswer a = PACTUM__V1__LOG_ANSWER__INIT;
    log_parts parts = {0};
    oracle_reply r = {.status = Q_OK};
    MDB_txn *txn = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    a.answered_ms = pk_now_ms();
    if (!q || q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_QUERY_UNSPECIFIED ||
        q->kind > PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY)
        oracle_refuse(o, &r, Q_BAD, "%s",
                      q ? "kind must be head, inclusion or consistency"
                        : "request is not a LogQuery");
    else if (pk_txn_begin(o->store, false, &txn) != PK_OK)
        oracle_refuse(o, &r, Q_UNAVAILABLE, "log unavailable: %s", pk_error_msg());
    else
        log_answer(o, txn, q, &a, &parts, &r);
    a.status = r.status;
    a.message = r.msg;
    if (a.status != Q_OK) {
        a.path = NULL;
        a.n_path = 0;
    }
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER, &a.base, out, outlen);
    pk_txn_abort(txn);
    free(parts.head);
    free(parts.first);
    free(parts.leaf);
    free(parts.rec);
    if (q)
        pactum__v1__log_query__free_unpacked(q, NULL);
    return st;
}
