/*
 * Answers beyond the trust report: authorize (recorded in PACTUM_AUDIT),
 * evidence with inclusion proofs, attestations, governance figures, and the
 * transparency log's heads and proofs. Every answer is signed.
 */
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/authorize.h"
#include "pk/log.h"
#include "pk/pact.h"

#define Q_OK          PACTUM__V1__QUERY_STATUS__QUERY_OK
#define Q_BAD         PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST
#define Q_UNKNOWN     PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT
#define Q_UNAVAILABLE PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE
#define Q_NOT_FOUND   PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND

/* Is agent registered, or known to the read model? */
static bool agent_known(oracle *o, MDB_txn *txn, const char *agent)
{
    Pactum__V1__AgentRecord *a = NULL;
    MDB_val v;

    if (pk_registry_agent(o->reg, txn, agent, &a, NULL) == PK_OK) {
        bool is_agent = a->role == PACTUM__V1__ROLE__ROLE_AGENT;
        pactum__v1__agent_record__free_unpacked(a, NULL);
        return is_agent;
    }
    return pk_get(txn, o->reports, agent, strlen(agent), &v) == PK_OK;
}

/* A read transaction that sees agent if the registry has it (refreshed once if not). */
static pk_status begin_for(oracle *o, const char *agent, MDB_txn **txn, bool *known)
{
    pk_status st;

    if ((st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return st;
    *known = agent_known(o, *txn, agent);
    if (*known)
        return PK_OK;
    pk_txn_abort(*txn);
    *txn = NULL;
    if ((st = pk_registry_refresh(o->reg, 50)) != PK_OK ||
        (st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return st;
    *known = agent_known(o, *txn, agent);
    return PK_OK;
}

/* The agent's stored state, or a new agent's (watch, no evidence) in *initial. */
static const Pactum__V1__TrustState *state_of(Pactum__V1__TrustReport *stored,
                                              Pactum__V1__TrustState *initial, const char *agent)
{
    if (stored && stored->state)
        return stored->state;
    pactum__v1__trust_state__init(initial);
    initial->agent_id = (char *)agent;
    initial->tier = PACTUM__V1__TIER__TIER_WATCH;
    return initial;
}

static Pactum__V1__TrustReport *stored_report(oracle *o, MDB_txn *txn, const char *agent)
{
    Pactum__V1__TrustReport *r = NULL;

    if (pk_get_msg(txn, o->reports, agent, strlen(agent), &pactum__v1__trust_report__descriptor,
                   (ProtobufCMessage **)&r) != PK_OK)
        return NULL;
    return r;
}

/* --- authorize ---------------------------------------------------------------- */

#define PACT_CACHE 64

/* Compiled pacts by (id, version); a pact version never changes, so entries stay valid. */
static struct {
    char id[PK_ID_MAX + 1];
    uint32_t version;
    pk_pact *pact;
    uint64_t used;
} pact_cache[PACT_CACHE];
static uint64_t pact_clock;
static pthread_mutex_t pact_lock = PTHREAD_MUTEX_INITIALIZER;

/* The compiled pact (id, version); call with pact_lock held. */
static pk_pact *compiled(oracle *o, MDB_txn *txn, const char *id, uint32_t version)
{
    Pactum__V1__PactRecord *rec = NULL;
    pk_pact *p = NULL;
    pk_lint l = {0};
    int victim = 0;

    for (int i = 0; i < PACT_CACHE; i++) {
        if (pact_cache[i].pact && pact_cache[i].version == version &&
            strcmp(pact_cache[i].id, id) == 0) {
            pact_cache[i].used = ++pact_clock;
            return pact_cache[i].pact;
        }
        if (pact_cache[i].used < pact_cache[victim].used)
            victim = i;
    }
    if (pk_registry_pact(o->reg, txn, id, version, 0, &rec, NULL) != PK_OK)
        return NULL;
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &p, &l) != PK_OK)
        p = NULL;
    pk_lint_free(&l);
    pactum__v1__pact_record__free_unpacked(rec, NULL);
    if (!p)
        return NULL;
    pk_pact_free(pact_cache[victim].pact);
    snprintf(pact_cache[victim].id, sizeof(pact_cache[victim].id), "%s", id);
    pact_cache[victim].version = version;
    pact_cache[victim].pact = p;
    pact_cache[victim].used = ++pact_clock;
    return p;
}

static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20)
            return false;
    }
    return true;
}

/* Why the request cannot be decided, or NULL. */
static const char *request_problem(const Pactum__V1__AuthorizeRequest *q, char *buf, size_t len)
{
    if (pk_id_check("agent id", q->agent_id) != PK_OK) {
        snprintf(buf, len, "%s", pk_error_msg());
        return buf;
    }
    if (!q->action[0])
        return "action is required";
    if (!text_ok(q->action, PK_NAME_MAX) || !text_ok(q->tool, PK_NAME_MAX))
        return "action and tool are at most 128 bytes, without control characters";
    if (!text_ok(q->resource, PK_VALUE_MAX))
        return "resource is at most 1024 bytes, without control characters";
    if (!isfinite(q->amount) || q->amount < 0)
        return "amount must be a finite number, 0 or more";
    if (q->amount > 0 && (!q->currency[0] || !text_ok(q->currency, 8)))
        return "an amount needs a currency of at most 8 bytes";
    return NULL;
}

pk_status oracle_answer_authorize(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                  size_t *outlen)
{
    Pactum__V1__AuthorizeRequest *q = pactum__v1__authorize_request__unpack(NULL, len, req);
    Pactum__V1__AuthorizeDecision d = PACTUM__V1__AUTHORIZE_DECISION__INIT;
    Pactum__V1__TrustReport *stored = NULL;
    Pactum__V1__TrustState initial;
    Pactum__V1__PactRef *refs[PK_PACTS_PER_AGENT_MAX];
    pk_pact *pacts[PK_PACTS_PER_AGENT_MAX];
    char *reasons[PK_AUTHZ_REASONS], msg[256] = "", id[24], subject[96], pbuf[256];
    static _Thread_local pk_authz a;
    uint8_t rnd[8], *rec = NULL;
    size_t n_refs = 0, n_pacts = 0, rec_len = 0;
    pk_governance gov;
    bool have_gov = false, known = false;
    const char *problem;
    MDB_txn *txn = NULL;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    d.decided_ms = pk_now_ms();
    d.message = msg;
    d.permit = PACTUM__V1__PERMIT__PERMIT_DENY;
    if (!q) {
        d.status = Q_BAD;
        snprintf(msg, sizeof(msg), "request is not an AuthorizeRequest");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    d.request = q;
    if ((problem = request_problem(q, pbuf, sizeof(pbuf)))) {
        d.status = Q_BAD;
        snprintf(msg, sizeof(msg), "%s", problem);
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    if ((st = begin_for(o, q->agent_id, &txn, &known)) != PK_OK) {
        d.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
        goto reply;
    }
    if (!known) {
        d.status = Q_UNKNOWN;
        snprintf(msg, sizeof(msg), "unknown agent: '%s' is not registered", q->agent_id);
        pk_metric_add(&o->m[OM_UNKNOWN], 1);
        goto reply;
    }
    stored = stored_report(o, txn, q->agent_id);
    {
        const Pactum__V1__TrustState *s = state_of(stored, &initial, q->agent_id);
        pk_authz_input in = {.state = s, .gov = &gov, .req = q, .now_ms = d.decided_ms};
        oracle_governance_of(o, txn, s, &gov);
        have_gov = true;
        n_refs = oracle_pacts_of(o, txn, q->agent_id, refs, PK_PACTS_PER_AGENT_MAX);
        pthread_mutex_lock(&pact_lock);
        for (size_t i = 0; i < n_refs; i++) {
            pk_pact *p = compiled(o, txn, refs[i]->pact_id, refs[i]->version);
            if (p)
                pacts[n_pacts++] = p;
        }
        in.pacts = pacts;
        in.n_pacts = n_pacts;
        pk_authorize(&in, &a);
        pthread_mutex_unlock(&pact_lock);
        d.tier = s->tier;
        d.lower_ppm = s->lower_ppm;
        d.trust_seq = stored ? stored->trust_seq : 0;
    }
    d.status = Q_OK;
    d.permit = a.permit;
    d.effective_tier = a.effective_tier;
    d.override_id = a.override_id;
    for (int i = 0; i < a.n_reasons; i++)
        reasons[i] = a.reasons[i];
    d.reasons = reasons;
    d.n_reasons = (size_t)a.n_reasons;
    d.pacts = refs;
    d.n_pacts = n_refs;
    randombytes_buf(rnd, sizeof(rnd));
    memcpy(id, "dec-", 4);
    sodium_bin2hex(id + 4, sizeof(id) - 4, rnd, sizeof(rnd));
    d.decision_id = id;
    if (n_pacts < n_refs)
        snprintf(msg, sizeof(msg),
                 "%zu of the agent's pacts could not be read; decided on the "
                 "others",
                 n_refs - n_pacts);
    /* recorded for audit before it is answered: an unrecorded decision is no decision */
    snprintf(subject, sizeof(subject), PK_SUBJ_AUDIT, q->agent_id);
    if (!o->bus) {
        d.status = Q_UNAVAILABLE;
        d.permit = PACTUM__V1__PERMIT__PERMIT_DENY;
        snprintf(msg, sizeof(msg), "no bus to record the decision on, so it is not made");
        goto reply;
    }
    if ((st = pk_pack(&d.base, &rec, &rec_len)) != PK_OK ||
        (st = pk_bus_publish_sync(o->bus, subject, rec, rec_len, id, false, 0, &d.audit_seq,
                                  NULL)) != PK_OK) {
        d.status = Q_UNAVAILABLE;
        d.permit = PACTUM__V1__PERMIT__PERMIT_DENY;
        snprintf(msg, sizeof(msg),
                 "the decision could not be recorded for audit, so it is not "
                 "made: %s",
                 pk_error_msg());
        goto reply;
    }
    pk_metric_add(&o->m[d.permit == PACTUM__V1__PERMIT__PERMIT_ALLOW  ? OM_ALLOW
                        : d.permit == PACTUM__V1__PERMIT__PERMIT_DENY ? OM_DENY
                                                                      : OM_APPROVAL],
                  1);
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, &d.base, out, outlen);
    free(rec);
    pk_txn_abort(txn);
    oracle_pacts_free(refs, n_refs);
    if (have_gov)
        pk_governance_free(&gov);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (q)
        pactum__v1__authorize_request__free_unpacked(q, NULL);
    return st;
}

/* --- evidence ----------------------------------------------------------------- */

#define EVIDENCE_MAX 100

/* Proof path as repeated bytes pointing into path storage. */
static void path_field(uint8_t path[][PK_HASH], size_t n, ProtobufCBinaryData *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].data = path[i];
        out[i].len = PK_HASH;
    }
}

typedef struct entry_store {
    Pactum__V1__EvidenceEntry e;
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH];
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    uint8_t *leaf;
    uint8_t *record;
} entry_store;

pk_status oracle_answer_evidence(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                 size_t *outlen)
{
    Pactum__V1__EvidenceQuery *q = pactum__v1__evidence_query__unpack(NULL, len, req);
    Pactum__V1__EvidencePage page = PACTUM__V1__EVIDENCE_PAGE__INIT;
    entry_store *es = NULL;
    Pactum__V1__EvidenceEntry *ptrs[EVIDENCE_MAX];
    char msg[256] = "";
    uint8_t *head = NULL;
    size_t n = 0, head_len = 0;
    uint32_t limit;
    bool known = false;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    page.answered_ms = pk_now_ms();
    page.message = msg;
    if (!q || pk_id_check("agent id", q->agent_id) != PK_OK) {
        page.status = Q_BAD;
        snprintf(msg, sizeof(msg), "%s", q ? pk_error_msg() : "request is not an EvidenceQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    page.agent_id = q->agent_id;
    limit = q->limit ? q->limit : 20;
    if (limit > EVIDENCE_MAX) {
        page.status = Q_BAD;
        snprintf(msg, sizeof(msg), "limit is at most %d, got %u", EVIDENCE_MAX, q->limit);
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    if ((st = begin_for(o, q->agent_id, &txn, &known)) != PK_OK) {
        page.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
        goto reply;
    }
    if (!known) {
        page.status = Q_UNKNOWN;
        snprintf(msg, sizeof(msg), "unknown agent: '%s' is not registered", q->agent_id);
        pk_metric_add(&o->m[OM_UNKNOWN], 1);
        goto reply;
    }
    if (!(es = calloc(limit, sizeof(*es)))) {
        page.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "out of memory");
        goto reply;
    }
    {
        uint64_t size = oracle_log_size(o, txn);
        uint8_t key[PK_ID_MAX + 9];
        size_t al = strlen(q->agent_id);
        MDB_val k, v;
        int rc;

        if ((st = oracle_log_head(o, txn, size, &head, &head_len)) != PK_OK) {
            page.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "cannot sign a tree head: %s", pk_error_msg());
            goto reply;
        }
        page.head.data = head;
        page.head.len = head_len;
        memcpy(key, q->agent_id, al);
        key[al] = 0;
        pk_be64_put(key + al + 1, q->from);
        k.mv_size = al + 9;
        k.mv_data = key;
        if (mdb_cursor_open(txn, o->log_agent, &cur) != 0) {
            page.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "cannot read the log index");
            goto reply;
        }
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint64_t index;
            MDB_val leaf;
            Pactum__V1__LogLeaf *l;
            entry_store *e;
            size_t rl = 0;
            if (k.mv_size != al + 9 || memcmp(k.mv_data, key, al + 1) != 0)
                break;
            index = pk_be64_get((const uint8_t *)k.mv_data + al + 1);
            if (index >= size)
                break;
            if (oracle_log_leaf(o, txn, index, &leaf) != PK_OK)
                continue;
            l = pactum__v1__log_leaf__unpack(NULL, leaf.mv_size, leaf.mv_data);
            if (!l)
                continue;
            if (q->kind && l->kind != q->kind) {
                pactum__v1__log_leaf__free_unpacked(l, NULL);
                continue;
            }
            if (n == limit) {
                page.next = index; /* the first entry of the next page */
                pactum__v1__log_leaf__free_unpacked(l, NULL);
                break;
            }
            e = &es[n];
            pactum__v1__evidence_entry__init(&e->e);
            e->e.index = index;
            e->leaf = malloc(leaf.mv_size ? leaf.mv_size : 1);
            if (e->leaf)
                memcpy(e->leaf, leaf.mv_data, leaf.mv_size);
            e->e.leaf.data = e->leaf;
            e->e.leaf.len = e->leaf ? leaf.mv_size : 0;
            if (oracle_log_record(o, l->stream, l->stream_seq, &e->record, &rl) == PK_OK) {
                e->e.record.data = e->record;
                e->e.record.len = rl;
            }
            pactum__v1__log_leaf__free_unpacked(l, NULL);
            if ((st = oracle_log_path(o, txn, index, size, e->path, &e->e.n_path)) != PK_OK) {
                page.status = Q_UNAVAILABLE;
                snprintf(msg, sizeof(msg), "cannot prove leaf %llu: %s", (unsigned long long)index,
                         pk_error_msg());
                n++;
                goto reply;
            }
            path_field(e->path, e->e.n_path, e->pathv);
            e->e.path = e->pathv;
            ptrs[n] = &e->e;
            n++;
        }
    }
    page.status = Q_OK;
    page.entries = ptrs;
    page.n_entries = n;
    if (n == 0)
        snprintf(msg, sizeof(msg), "no logged records of %s from leaf %llu", q->agent_id,
                 (unsigned long long)q->from);
reply:
    if (page.status != Q_OK) {
        page.entries = NULL;
        page.n_entries = 0;
    }
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, &page.base, out, outlen);
    if (cur)
        mdb_cursor_close(cur);
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

pk_status oracle_answer_attest(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                               size_t *outlen)
{
    Pactum__V1__AttestQuery *q = pactum__v1__attest_query__unpack(NULL, len, req);
    Pactum__V1__Attestation at = PACTUM__V1__ATTESTATION__INIT;
    Pactum__V1__TrustReport *stored = NULL;
    Pactum__V1__PactRef *refs[PK_PACTS_PER_AGENT_MAX];
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH], *head = NULL, *leaf = NULL, *rec = NULL;
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    size_t n_refs = 0, head_len = 0, rec_len = 0, n_path = 0;
    uint64_t index = 0;
    char msg[256] = "";
    bool known = false, logged = false;
    MDB_txn *txn = NULL;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    at.issued_ms = pk_now_ms();
    at.message = msg;
    if (!q || pk_id_check("agent id", q->agent_id) != PK_OK) {
        at.status = Q_BAD;
        snprintf(msg, sizeof(msg), "%s", q ? pk_error_msg() : "request is not an AttestQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    at.agent_id = q->agent_id;
    /* the newest trust change reaches the log shortly after the read model: wait for it */
    for (int tries = 0; tries < 30; tries++) {
        if ((st = begin_for(o, q->agent_id, &txn, &known)) != PK_OK) {
            at.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
            goto reply;
        }
        if (!known)
            break;
        stored = stored_report(o, txn, q->agent_id);
        if (!stored || !stored->state)
            break;
        if (oracle_log_find(o, txn, PK_STREAM_TRUST, stored->trust_seq, &index) == PK_OK) {
            logged = true;
            break;
        }
        if (tries == 29)
            break; /* answered below: not in the log yet */
        pactum__v1__trust_report__free_unpacked(stored, NULL);
        stored = NULL;
        pk_txn_abort(txn);
        txn = NULL;
        pk_sleep_ms(100);
    }
    if (!known) {
        at.status = Q_UNKNOWN;
        snprintf(msg, sizeof(msg), "unknown agent: '%s' is not registered", q->agent_id);
        pk_metric_add(&o->m[OM_UNKNOWN], 1);
        goto reply;
    }
    if (!stored || !stored->state) {
        at.status = Q_NOT_FOUND;
        snprintf(msg, sizeof(msg), "nothing to attest yet: %s has no evidence", q->agent_id);
        goto reply;
    }
    if (!logged) {
        at.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg),
                 "the newest trust change of %s is not in the log yet; ask "
                 "again in a moment",
                 q->agent_id);
        goto reply;
    }
    {
        uint64_t size = oracle_log_size(o, txn);
        const Pactum__V1__Override *by = NULL;
        MDB_val lv;
        if ((st = oracle_log_head(o, txn, size, &head, &head_len)) != PK_OK ||
            (st = oracle_log_path(o, txn, index, size, path, &n_path)) != PK_OK ||
            (st = oracle_log_leaf(o, txn, index, &lv)) != PK_OK ||
            (st = oracle_log_record(o, PK_STREAM_TRUST, stored->trust_seq, &rec, &rec_len)) !=
                PK_OK) {
            at.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "cannot prove the trust change: %s", pk_error_msg());
            goto reply;
        }
        leaf = malloc(lv.mv_size ? lv.mv_size : 1);
        if (!leaf) {
            at.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "out of memory");
            goto reply;
        }
        memcpy(leaf, lv.mv_data, lv.mv_size);
        at.leaf.data = leaf;
        at.leaf.len = lv.mv_size;
        at.record.data = rec;
        at.record.len = rec_len;
        at.head.data = head;
        at.head.len = head_len;
        path_field(path, n_path, pathv);
        at.path = pathv;
        at.n_path = n_path;
        at.log_index = index;
        at.score_ppm = stored->state->score_ppm;
        at.lower_ppm = stored->state->lower_ppm;
        at.evidence = stored->state->evidence;
        at.newest_evidence_ms = stored->state->newest_evidence_ms;
        at.tier = stored->state->tier;
        at.effective_tier = pk_effective_tier(stored->state, at.issued_ms, &by);
        n_refs = oracle_pacts_of(o, txn, q->agent_id, refs, PK_PACTS_PER_AGENT_MAX);
        at.pacts = refs;
        at.n_pacts = n_refs;
        at.valid_until_ms = at.issued_ms + o->cfg->attest_ttl_ms;
        /* an override that ends sooner ends the statement with it */
        if (by && by->expires_ms < at.valid_until_ms)
            at.valid_until_ms = by->expires_ms;
        at.status = Q_OK;
    }
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, &at.base, out, outlen);
    pk_txn_abort(txn);
    oracle_pacts_free(refs, n_refs);
    free(head);
    free(leaf);
    free(rec);
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (q)
        pactum__v1__attest_query__free_unpacked(q, NULL);
    return st;
}

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
    size_t al;

    if (!agent)
        return true;
    al = strlen(agent);
    return k->mv_size == al + 9 && memcmp(k->mv_data, agent, al) == 0 &&
           ((const uint8_t *)k->mv_data)[al] == 0;
}

pk_status oracle_answer_figures(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                size_t *outlen)
{
    Pactum__V1__FiguresQuery *q = pactum__v1__figures_query__unpack(NULL, len, req);
    Pactum__V1__GovernanceFigures f = PACTUM__V1__GOVERNANCE_FIGURES__INIT;
    Pactum__V1__Quantiles qt = PACTUM__V1__QUANTILES__INIT;
    Pactum__V1__SeverityCount store[4][6], *ptrs[4][6];
    recent reent = {0}, ovs = {0};
    Pactum__V1__GovernanceEntry *gov_kept[RECENT_MAX];
    Pactum__V1__Override *ov_ptrs[RECENT_MAX];
    Pactum__V1__TierChange *re_ptrs[RECENT_MAX];
    int64_t *cont = NULL;
    size_t n_cont = 0, cap = 0;
    const char *agent = NULL;
    char msg[256] = "";
    uint8_t *head = NULL, kbuf[PK_ID_MAX + 9];
    size_t head_len = 0;
    bool known = true;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    f.answered_ms = pk_now_ms();
    f.message = msg;
    if (!q || (q->agent_id[0] && pk_id_check("agent id", q->agent_id) != PK_OK)) {
        f.status = Q_BAD;
        snprintf(msg, sizeof(msg), "%s", q ? pk_error_msg() : "request is not a FiguresQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    if (q->agent_id[0]) {
        agent = q->agent_id;
        f.agent_id = q->agent_id;
        st = begin_for(o, agent, &txn, &known);
    } else {
        st = pk_txn_begin(o->store, false, &txn);
    }
    if (st != PK_OK) {
        f.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "read model unavailable: %s", pk_error_msg());
        goto reply;
    }
    if (!known) {
        f.status = Q_UNKNOWN;
        snprintf(msg, sizeof(msg), "unknown agent: '%s' is not registered", agent);
        pk_metric_add(&o->m[OM_UNKNOWN], 1);
        goto reply;
    }
    /* agents with a trust state */
    if (agent) {
        MDB_val v;
        f.agents = pk_get(txn, o->reports, agent, strlen(agent), &v) == PK_OK;
    } else {
        MDB_stat ms;
        if (mdb_stat(txn, o->reports, &ms) == 0)
            f.agents = ms.ms_entries;
    }
    /* violations that still count, by age */
    {
        static const int64_t since[4] = {0, 86400000LL, 7 * 86400000LL, 30 * 86400000LL};
        Pactum__V1__SeverityCount ***lists[4] = {&f.violations, &f.violations_24h, &f.violations_7d,
                                                 &f.violations_30d};
        size_t *counts_n[4] = {&f.n_violations, &f.n_violations_24h, &f.n_violations_7d,
                               &f.n_violations_30d};
        int64_t from[4];
        uint64_t c[4][6];
        for (int w = 0; w < 4; w++)
            from[w] = w ? f.answered_ms - since[w] : INT64_MIN;
        oracle_count_violations(o, txn, agent, from, 4, c);
        for (int w = 0; w < 4; w++) {
            *counts_n[w] = oracle_severity_list(c[w], store[w], ptrs[w]);
            *lists[w] = ptrs[w];
        }
    }
    /* tier changes: containment times, causes, log entries, re-entries */
    if (mdb_cursor_open(txn, o->tiers, &cur) == 0) {
        MDB_val k, v;
        for (int rc = first_of(cur, agent, &k, &v, kbuf); rc == 0 && key_of_agent(&k, agent);
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            Pactum__V1__TierChange *tc =
                pactum__v1__tier_change__unpack(NULL, v.mv_size, v.mv_data);
            uint64_t index;
            void *drop;
            if (!tc)
                continue;
            f.tier_changes++;
            if (tc->rule[0] && tc->cause[0])
                f.tier_changes_with_cause++;
            if (tc->trust_seq &&
                oracle_log_find(o, txn, PK_STREAM_TRUST, tc->trust_seq, &index) == PK_OK)
                f.tier_changes_logged++;
            if (tc->to >= PACTUM__V1__TIER__TIER_CONTAINED &&
                tc->from < PACTUM__V1__TIER__TIER_CONTAINED && tc->containment_ms >= 0 &&
                tc->verdict) {
                if (n_cont == cap) {
                    int64_t *nc = realloc(cont, (cap ? cap * 2 : 64) * sizeof(*cont));
                    if (!nc)
                        break;
                    cont = nc;
                    cap = cap ? cap * 2 : 64;
                }
                cont[n_cont++] = tc->containment_ms;
            }
            if (strcmp(tc->rule, "re-entry criteria met") == 0) {
                f.reentries++;
                drop = recent_offer(&reent, tc, tc->at_ms);
            } else {
                drop = tc;
            }
            if (drop)
                pactum__v1__tier_change__free_unpacked(drop, NULL);
        }
        mdb_cursor_close(cur);
        cur = NULL;
    }
    if (n_cont) {
        qsort(cont, n_cont, sizeof(*cont), cmp_i64);
        qt.count = n_cont;
        qt.p50 = cont[(n_cont - 1) / 2];
        qt.p99 = cont[(size_t)((double)(n_cont - 1) * 0.99)];
        qt.max = cont[n_cont - 1];
        f.containment_ms = &qt;
    }
    /* overrides, from the governance records */
    if (mdb_cursor_open(txn, o->governance, &cur) == 0) {
        MDB_val k, v;
        for (int rc = first_of(cur, agent, &k, &v, kbuf); rc == 0 && key_of_agent(&k, agent);
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            Pactum__V1__GovernanceEntry *e =
                pactum__v1__governance_entry__unpack(NULL, v.mv_size, v.mv_data);
            void *drop = e;
            if (e && e->record &&
                e->record->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE) {
                const Pactum__V1__Override *ov = e->record->override;
                f.overrides_total++;
                if (ov->expires_ms <= f.answered_ms)
                    f.overrides_expired++;
                else if (ov->created_ms <= f.answered_ms)
                    f.overrides_active++;
                drop = recent_offer(&ovs, e, ov->created_ms);
            }
            if (drop)
                pactum__v1__governance_entry__free_unpacked(drop, NULL);
        }
        mdb_cursor_close(cur);
        cur = NULL;
    }
    for (size_t i = 0; i < ovs.n; i++) {
        gov_kept[i] = ovs.item[i];
        ov_ptrs[i] = gov_kept[i]->record->override;
    }
    f.overrides_recent = ov_ptrs;
    f.n_overrides_recent = ovs.n;
    for (size_t i = 0; i < reent.n; i++)
        re_ptrs[i] = reent.item[i];
    f.reentries_recent = re_ptrs;
    f.n_reentries_recent = reent.n;
    if (oracle_log_head(o, txn, oracle_log_size(o, txn), &head, &head_len) == PK_OK) {
        f.log_head.data = head;
        f.log_head.len = head_len;
    }
    f.status = Q_OK;
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES, &f.base, out, outlen);
    if (cur)
        mdb_cursor_close(cur);
    pk_txn_abort(txn);
    for (size_t i = 0; i < ovs.n; i++)
        pactum__v1__governance_entry__free_unpacked(ovs.item[i], NULL);
    for (size_t i = 0; i < reent.n; i++)
        pactum__v1__tier_change__free_unpacked(reent.item[i], NULL);
    free(cont);
    free(head);
    if (q)
        pactum__v1__figures_query__free_unpacked(q, NULL);
    return st;
}

/* --- the log: heads and proofs --------------------------------------------------- */

pk_status oracle_answer_log(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen)
{
    Pactum__V1__LogQuery *q = pactum__v1__log_query__unpack(NULL, len, req);
    Pactum__V1__LogAnswer a = PACTUM__V1__LOG_ANSWER__INIT;
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH], *head = NULL, *first = NULL, *leaf = NULL,
                                               *rec = NULL;
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    size_t head_len = 0, first_len = 0, n_path = 0, rec_len = 0;
    char msg[256] = "";
    MDB_txn *txn = NULL;
    uint64_t size, want;
    pk_status st;

    pk_metric_add(&o->m[OM_QUERIES], 1);
    a.answered_ms = pk_now_ms();
    a.message = msg;
    if (!q || q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_QUERY_UNSPECIFIED ||
        q->kind > PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY) {
        a.status = Q_BAD;
        snprintf(msg, sizeof(msg), "%s",
                 q ? "kind must be head, inclusion or consistency" : "request is not a LogQuery");
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    if ((st = pk_txn_begin(o->store, false, &txn)) != PK_OK) {
        a.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "log unavailable: %s", pk_error_msg());
        goto reply;
    }
    size = oracle_log_size(o, txn);
    want = q->size ? q->size : size;
    if (want > size) {
        a.status = Q_BAD;
        snprintf(msg, sizeof(msg), "the log has %llu leaves, not %llu", (unsigned long long)size,
                 (unsigned long long)want);
        pk_metric_add(&o->m[OM_BAD], 1);
        goto reply;
    }
    if ((st = oracle_log_head(o, txn, want, &head, &head_len)) != PK_OK) {
        a.status = Q_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "cannot sign a tree head: %s", pk_error_msg());
        goto reply;
    }
    a.head.data = head;
    a.head.len = head_len;
    if (q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION) {
        uint64_t index = q->index;
        MDB_val lv;
        Pactum__V1__LogLeaf *l = NULL;
        if (q->stream[0] && oracle_log_find(o, txn, q->stream, q->stream_seq, &index) != PK_OK) {
            a.status = Q_NOT_FOUND;
            snprintf(msg, sizeof(msg), "%s #%llu is not in the log (yet)", q->stream,
                     (unsigned long long)q->stream_seq);
            goto reply;
        }
        if (index >= want) {
            a.status = Q_NOT_FOUND;
            snprintf(msg, sizeof(msg), "leaf %llu is not in a tree of %llu leaves",
                     (unsigned long long)index, (unsigned long long)want);
            goto reply;
        }
        if ((st = oracle_log_leaf(o, txn, index, &lv)) != PK_OK ||
            (st = oracle_log_path(o, txn, index, want, path, &n_path)) != PK_OK) {
            a.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "cannot prove leaf %llu: %s", (unsigned long long)index,
                     pk_error_msg());
            goto reply;
        }
        if ((leaf = malloc(lv.mv_size ? lv.mv_size : 1)))
            memcpy(leaf, lv.mv_data, lv.mv_size);
        a.index = index;
        a.leaf.data = leaf;
        a.leaf.len = leaf ? lv.mv_size : 0;
        l = pactum__v1__log_leaf__unpack(NULL, lv.mv_size, lv.mv_data);
        if (l && oracle_log_record(o, l->stream, l->stream_seq, &rec, &rec_len) == PK_OK) {
            a.record.data = rec;
            a.record.len = rec_len;
        }
        if (l)
            pactum__v1__log_leaf__free_unpacked(l, NULL);
    } else if (q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY) {
        if (q->first > want) {
            a.status = Q_BAD;
            snprintf(msg, sizeof(msg), "first (%llu) is beyond size (%llu)",
                     (unsigned long long)q->first, (unsigned long long)want);
            pk_metric_add(&o->m[OM_BAD], 1);
            goto reply;
        }
        if ((st = oracle_log_head(o, txn, q->first, &first, &first_len)) != PK_OK ||
            (st = oracle_log_consistency(o, txn, q->first, want, path, &n_path)) != PK_OK) {
            a.status = Q_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "cannot prove consistency: %s", pk_error_msg());
            goto reply;
        }
        a.first_head.data = first;
        a.first_head.len = first_len;
    }
    path_field(path, n_path, pathv);
    a.path = pathv;
    a.n_path = n_path;
    a.status = Q_OK;
reply:
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER, &a.base, out, outlen);
    pk_txn_abort(txn);
    free(head);
    free(first);
    free(leaf);
    free(rec);
    if (q)
        pactum__v1__log_query__free_unpacked(q, NULL);
    return st;
}
