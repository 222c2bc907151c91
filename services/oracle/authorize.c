/*
 * Authorize: may the agent take this action now? Decided by pk_authorize
 * from the agent's state, governance and pacts in force, recorded in
 * PACTUM_AUDIT before it is answered.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"

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

/*
 * The API client a token "<client id>:<secret>" belongs to, into id; false
 * (the reply refused) when it is not the token of a registered client, or the
 * client asks more often than it may.
 */
static bool client_of(oracle *o, const char *token, char *id, size_t idlen, oracle_reply *r)
{
    const char *colon = token ? strrchr(token, ':') : NULL;
    Pactum__V1__AgentRecord *rec = NULL;
    uint8_t hash[PK_HASH_BYTES];
    MDB_txn *txn = NULL;
    bool ok = false;

    if (!colon || (size_t)(colon - token) >= idlen || !colon[1])
        return oracle_refuse(o, r, Q_UNAUTHORIZED,
                             "a decision is recorded, so authorize needs the token of a "
                             "registered API client (client_token, or HTTP Authorization: "
                             "Bearer; pactum client register makes one)");
    memcpy(id, token, (size_t)(colon - token));
    id[colon - token] = '\0';
    crypto_hash_sha256(hash, (const uint8_t *)colon + 1, strlen(colon + 1));
    /* a client registered a moment ago: the copy follows the registry's notices (cheap when
     * nothing is new; a made-up id costs no more than a known one) */
    if (pk_registry_sync_if_dirty(o->reg) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if (pk_txn_begin(o->store, false, &txn) == PK_OK &&
        pk_registry_agent(o->reg, txn, id, &rec, NULL) == PK_OK)
        ok = rec->role == PACTUM__V1__ROLE__ROLE_CLIENT && rec->token_hash.len == PK_HASH_BYTES &&
             sodium_memcmp(rec->token_hash.data, hash, PK_HASH_BYTES) == 0;
    pk_txn_abort(txn);
    if (rec)
        pactum__v1__agent_record__free_unpacked(rec, NULL);
    sodium_memzero(hash, sizeof(hash));
    if (!ok) {
        id[0] = '\0'; /* a signed refusal does not repeat the id the token claims */
        return oracle_refuse(o, r, Q_UNAUTHORIZED,
                             "the token is not one of a registered API client");
    }
    if (!pk_ratelimit_take(o->clients, id, 1, pk_mono_ms()))
        return oracle_refuse(o, r, Q_RATE_LIMITED,
                             "client %s asks more than %lld decisions a second; ask again shortly",
                             id, o->cfg->authorize_rate);
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

/*
 * Decide q for its agent under txn: its state, governance and pacts in force
 * (every one compiled from the shared cache, held while deciding). Fills the
 * decision's tier and position; *refs receives the pacts in force (free with
 * oracle_pacts_free).
 */
static void decide(oracle *o, MDB_txn *txn, const Pactum__V1__AuthorizeRequest *q,
                   Pactum__V1__AuthorizeDecision *d, pk_authz *a, Pactum__V1__PactRef **refs,
                   size_t *n_refs, size_t *n_read)
{
    Pactum__V1__TrustReport *stored = oracle_stored_report(o, txn, q->agent_id);
    Pactum__V1__TrustState initial;
    const Pactum__V1__TrustState *s = oracle_state_of(stored, &initial, q->agent_id);
    const pk_compiled *held[PK_PACTS_PER_AGENT_MAX], *gov_held = NULL;
    pk_pact *pacts[PK_PACTS_PER_AGENT_MAX];
    pk_authz_input in = {.state = s, .req = q, .now_ms = d->decided_ms};

    in.gov = oracle_governance_of(o, txn, s, &gov_held);
    *n_refs = oracle_pacts_of(o, txn, q->agent_id, refs, PK_PACTS_PER_AGENT_MAX);
    *n_read = 0;
    for (size_t i = 0; i < *n_refs; i++) {
        if (pk_pact_cache_get(o->pacts, txn, refs[i]->pact_id, refs[i]->version, &held[*n_read]) ==
            PK_OK) {
            pacts[*n_read] = held[*n_read]->pact;
            (*n_read)++;
        }
    }
    in.pacts = pacts;
    in.n_pacts = *n_read;
    pk_authorize(&in, a);
    for (size_t i = 0; i < *n_read; i++)
        pk_pact_cache_release(o->pacts, held[i]);
    pk_pact_cache_release(o->pacts, gov_held);
    d->tier = s->tier;
    d->lower_ppm = s->lower_ppm;
    d->trust_seq = stored ? stored->trust_seq : 0;
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
}

/* Record the decision in PACTUM_AUDIT; false (and a denial saying why) if it cannot be. */
static bool record(oracle *o, Pactum__V1__AuthorizeDecision *d, oracle_reply *r)
{
    char subject[96];
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    pk_status st;

    snprintf(subject, sizeof(subject), PK_SUBJ_AUDIT, d->request->agent_id);
    if (!o->bus)
        st = PK_ERR(PK_EBUS, "no bus to record the decision on");
    else if ((st = pk_pack(&d->base, &rec, &rec_len)) == PK_OK)
        st = pk_bus_publish_sync(o->bus, subject, rec, rec_len, d->decision_id, false, 0,
                                 &d->audit_seq, NULL);
    free(rec);
    if (st == PK_OK)
        return true;
    d->permit = PACTUM__V1__PERMIT__PERMIT_DENY;
    return oracle_refuse(o, r, Q_UNAVAILABLE,
                         "the decision could not be recorded for audit, so it is not made: %s",
                         pk_error_msg());
}

pk_status oracle_answer_authorize(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                                  size_t *outlen)
{
    oracle *o = ctx;
    Pactum__V1__AuthorizeRequest *q = pactum__v1__authorize_request__unpack(NULL, len, req);
    Pactum__V1__AuthorizeDecision d = PACTUM__V1__AUTHORIZE_DECISION__INIT;
    Pactum__V1__PactRef *refs[PK_PACTS_PER_AGENT_MAX];
    char *reasons[PK_AUTHZ_REASONS], id[24], pbuf[256], client[PK_ID_MAX + 1] = "";
    char *token = q ? q->client_token : NULL;
    static _Thread_local pk_authz a;
    uint8_t rnd[8];
    size_t n_refs = 0, n_read = 0;
    const char *problem =
        q ? request_problem(q, pbuf, sizeof(pbuf)) : "request is not an AuthorizeRequest";
    oracle_reply r = {.status = Q_OK};
    MDB_txn *txn = NULL;
    pk_status st;

    oracle_count(o, OM_QUERIES);
    d.decided_ms = pk_now_ms();
    d.permit = PACTUM__V1__PERMIT__PERMIT_DENY;
    d.request = q;
    if (q) /* never recorded nor echoed; given back before the request is freed */
        q->client_token = "";
    d.requested_by = client;
    if (problem) {
        oracle_refuse(o, &r, Q_BAD, "%s", problem);
    } else if (client_of(o, token, client, sizeof(client), &r) &&
               oracle_agent_txn(o, &r, NULL, q->agent_id, &txn)) {
        decide(o, txn, q, &d, &a, refs, &n_refs, &n_read);
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
        if (n_read < n_refs)
            snprintf(r.msg, sizeof(r.msg),
                     "%zu of the agent's pacts could not be read; decided on the others",
                     n_refs - n_read);
        /* recorded for audit before it is answered: an unrecorded decision is no decision */
        if (record(o, &d, &r))
            oracle_count(o, d.permit == PACTUM__V1__PERMIT__PERMIT_ALLOW  ? OM_ALLOW
                            : d.permit == PACTUM__V1__PERMIT__PERMIT_DENY ? OM_DENY
                                                                          : OM_APPROVAL);
    }
    d.status = r.status;
    d.message = r.msg;
    st = oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, &d.base, out, outlen);
    pk_txn_abort(txn);
    oracle_pacts_free(refs, n_refs);
    if (q) {
        q->client_token = token;
        pactum__v1__authorize_request__free_unpacked(q, NULL);
    }
    return st;
}
