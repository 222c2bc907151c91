/*
 * Authorize: may the agent take this action now? Decided by pk_authorize
 * from the agent's state, governance and pacts in force; its record is sent
 * to PACTUM_AUDIT before it is answered (audit.c).
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

bool oracle_client_token(oracle *o, const char *token, char *id, size_t idlen)
{
    const char *colon = token ? strrchr(token, ':') : NULL;
    Pactum__V1__AgentRecord *rec = NULL;
    uint8_t hash[PK_HASH_BYTES];
    MDB_txn *txn = NULL;
    bool ok = false;

    if (!colon || (size_t)(colon - token) >= idlen || !colon[1]) {
        id[0] = '\0';
        return false;
    }
    memcpy(id, token, (size_t)(colon - token));
    id[colon - token] = '\0';
    crypto_hash_sha256(hash, (const uint8_t *)colon + 1, strlen(colon + 1));
    /* a client registered a moment ago: the copy follows the registry's notices (cheap when
     * nothing is new; a made-up id costs no more than a known one) */
    if (pk_registry_sync_if_dirty(o->reg) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if (pk_txn_begin(o->store, false, &txn) == PK_OK &&
        pk_registry_agent(o->reg, txn, id, &rec, NULL) == PK_ENOTFOUND) {
        /* registered so recently that its notice has not come yet: read the registry up to
         * its end once (one request when nothing is new; the callers are rate-limited) */
        pk_txn_abort(txn);
        txn = NULL;
        if (pk_registry_sync(o->reg, 0) != PK_OK)
            PK_WARN("registry sync: %s", pk_error_msg());
        if (pk_txn_begin(o->store, false, &txn) != PK_OK ||
            pk_registry_agent(o->reg, txn, id, &rec, NULL) != PK_OK)
            rec = NULL;
    }
    if (rec)
        ok = rec->role == PACTUM__V1__ROLE__ROLE_CLIENT && rec->token_hash.len == PK_HASH_BYTES &&
             sodium_memcmp(rec->token_hash.data, hash, PK_HASH_BYTES) == 0;
    pk_txn_abort(txn);
    if (rec)
        pactum__v1__agent_record__free_unpacked(rec, NULL);
    sodium_memzero(hash, sizeof(hash));
    if (!ok)
        id[0] = '\0'; /* a refusal does not repeat the id the token claims */
    return ok;
}

/*
 * The API client a token belongs to, into id; false (the reply refused) when it is not the
 * token of a registered client, or the client asks more often than it may.
 */
static bool client_of(oracle *o, const char *token, char *id, size_t idlen, oracle_reply *r)
{
    if (!token || !strrchr(token, ':'))
        return oracle_refuse(o, r, Q_UNAUTHORIZED,
                             "a decision is recorded, so authorize needs the token of a "
                             "registered API client (client_token, or HTTP Authorization: "
                             "Bearer; pactum client register makes one)");
    if (!oracle_client_token(o, token, id, idlen))
        return oracle_refuse(o, r, Q_UNAUTHORIZED,
                             "the token is not one of a registered API client");
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

/* The findings of the evaluator's probe, and the ids they name (owned here). */
typedef struct probe_result {
    pk_authz_finding f[PK_AUTHZ_FINDINGS];
    char ids[PK_AUTHZ_FINDINGS][2][PK_ID_MAX + 1];
    size_t n;
} probe_result;

#define PROBE_WAIT_MS 2000

/*
 * Ask the evaluator that serves the agent's partition what the imagined event
 * would do to the scope and forbidden clauses in force, from the windows it has
 * (the spend and the occurrences so far). False, with why, if it cannot tell.
 */
static bool probe(oracle *o, const pk_event_msg *ev, size_t n_pacts, probe_result *pr, char *why,
                  size_t len)
{
    Pactum__V1__ProbeRequest q = PACTUM__V1__PROBE_REQUEST__INIT;
    Pactum__V1__ProbeAnswer *a = NULL;
    natsMsg *reply = NULL;
    uint8_t *buf = NULL;
    size_t blen = 0;
    char subject[64];
    pk_status st;

    pr->n = 0;
    q.event = (pk_event_msg *)ev;
    snprintf(subject, sizeof(subject), PK_SUBJ_EVALUATOR_PROBE,
             pk_partition_of(ev->agent_id, o->partitions));
    if ((st = pk_pack(&q.base, &buf, &blen)) == PK_OK)
        st = pk_bus_request(o->bus, subject, buf, blen, PROBE_WAIT_MS, &reply);
    free(buf);
    if (st != PK_OK) {
        snprintf(why, len, "the evaluator did not answer on %s: %s", subject, pk_error_msg());
        return false;
    }
    a = pactum__v1__probe_answer__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                         (const uint8_t *)natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    if (!a || a->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        snprintf(why, len, "the evaluator could not judge the request: %s",
                 a ? a->message : "its answer does not decode");
        if (a)
            pactum__v1__probe_answer__free_unpacked(a, NULL);
        return false;
    }
    if (a->pacts < n_pacts) {
        snprintf(why, len, "the evaluator knows %u of the agent's %zu pacts in force", a->pacts,
                 n_pacts);
        pactum__v1__probe_answer__free_unpacked(a, NULL);
        return false;
    }
    for (size_t i = 0; i < a->n_findings && pr->n < PK_AUTHZ_FINDINGS; i++) {
        const Pactum__V1__ProbeFinding *f = a->findings[i];
        pk_authz_finding *out = &pr->f[pr->n];
        snprintf(pr->ids[pr->n][0], PK_ID_MAX + 1, "%s", f->pact_id);
        snprintf(pr->ids[pr->n][1], PK_ID_MAX + 1, "%s", f->clause_id);
        *out = (pk_authz_finding){.pact_id = pr->ids[pr->n][0],
                                  .clause_id = pr->ids[pr->n][1],
                                  .violation = f->violation,
                                  .needs_approval = f->needs_approval};
        snprintf(out->why, sizeof(out->why), "%s", f->why);
        pr->n++;
    }
    pactum__v1__probe_answer__free_unpacked(a, NULL);
    return true;
}

/*
 * The approval the request carries, if it is one: signed by a registered
 * operator or human reviewer with the key it registered, for exactly this
 * request, and not expired. *out: the approval (caller frees); false with why.
 */
static bool approval_of(oracle *o, MDB_txn *txn, const Pactum__V1__AuthorizeRequest *q, int64_t now,
                        Pactum__V1__Approval **out, char *why, size_t len)
{
    pk_signed_msg *env = NULL;
    Pactum__V1__Approval *a = NULL;
    Pactum__V1__AgentRecord *who = NULL;
    bool ok = false;

    *out = NULL;
    if (pk_envelope_open(q->approval.data, q->approval.len, &env) != PK_OK ||
        env->type != PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_APPROVAL ||
        !(a = pactum__v1__approval__unpack(NULL, env->payload.len, env->payload.data)))
        snprintf(why, len, "the approval is not a signed Approval");
    else if (pk_registry_agent(o->reg, txn, env->signer_id, &who, NULL) != PK_OK ||
             (who->role != PACTUM__V1__ROLE__ROLE_OPERATOR &&
              who->role != PACTUM__V1__ROLE__ROLE_HUMAN) ||
             who->agent_key.len != PK_PUBKEY_BYTES ||
             !pk_bytes_equal(who->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES) ||
             pk_envelope_verify(env, env->signer_key.data) != PK_OK ||
             strcmp(a->approver_id, env->signer_id) != 0)
        snprintf(why, len,
                 "the approval is not signed by a registered operator or human reviewer with "
                 "the key they registered");
    else if (pk_id_check("approval id", a->approval_id) != PK_OK)
        snprintf(why, len, "%s", pk_error_msg());
    else if (strcmp(a->agent_id, q->agent_id) != 0 || strcmp(a->action, q->action) != 0 ||
             strcmp(a->resource, q->resource) != 0 || strcmp(a->tool, q->tool) != 0 ||
             a->amount != q->amount || strcmp(a->currency, q->currency) != 0)
        snprintf(why, len,
                 "approval %s approves another request (agent, action, resource, "
                 "tool, amount or currency differ)",
                 a->approval_id);
    else if (a->expires_ms <= now || a->signed_ms > now + 300000 ||
             a->expires_ms - a->signed_ms > 86400000)
        snprintf(why, len, "approval %s has expired (or lasts more than a day)", a->approval_id);
    else if (a->used_by_event[0])
        snprintf(why, len, "approval %s names an event: only the evaluator writes that",
                 a->approval_id);
    else
        ok = true;
    if (who)
        pactum__v1__agent_record__free_unpacked(who, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    if (ok)
        *out = a;
    else if (a)
        pactum__v1__approval__free_unpacked(a, NULL);
    return ok;
}

/* Use the approval: once, across every oracle instance (the stream keeps one per id). */
static bool approval_use(oracle *o, const Pactum__V1__Approval *a, char *why, size_t len)
{
    char subject[128];
    uint8_t *buf = NULL;
    size_t blen = 0;
    pk_status st = pk_pack(&a->base, &buf, &blen);

    snprintf(subject, sizeof(subject), PK_SUBJ_APPROVAL_USED, a->approval_id);
    if (st == PK_OK)
        st = pk_bus_publish_sync(o->bus, subject, buf, blen, NULL, true, 0, NULL, NULL);
    free(buf);
    if (st == PK_ECONFLICT)
        snprintf(why, len, "approval %s was already used", a->approval_id);
    else if (st != PK_OK)
        snprintf(why, len, "approval %s could not be marked used: %s", a->approval_id,
                 pk_error_msg());
    return st == PK_OK;
}

/* The governance that applies: the state's, else (from registration on) the pact's that has
 * a governance section, else the defaults. */
static const pk_governance *governance(oracle *o, MDB_txn *txn, const Pactum__V1__TrustState *s,
                                       pk_pact *const *pacts, size_t n, const pk_compiled **held)
{
    const pk_governance *g = oracle_governance_of(o, txn, s, held);

    if (*held)
        return g;
    for (size_t i = 0; i < n; i++) {
        if (pacts[i]->gov.present)
            return &pacts[i]->gov;
    }
    return g;
}

/* The state of a clause when none is needed: empty (pk_clause_state_fn). */
static void no_state(void *ctx, const pk_pact *p, const pk_clause *c, pk_clause_state *s)
{
    (void)ctx, (void)p, (void)c, (void)s;
}

/*
 * Decide q for its agent under txn: its state (or a containment the read
 * model holds), governance and pacts in force (every one compiled from the
 * shared cache, held while deciding), what the request would do to the
 * clauses in force (judged here when no stored window could matter, else
 * asked of the evaluator), and an approval if it carries one. Fills the decision's tier and
 * position; *refs receives the pacts in force (free with oracle_pacts_free). False (and r says why)
 * if it cannot be decided.
 */
static void money(int64_t minor, const char *cur, char *buf, size_t len)
{
    snprintf(buf, len, "%lld.%02lld %s", (long long)(minor / 100), (long long)(minor % 100), cur);
}

/*
 * May the agent take a job of q->amount now? Its tier in force (overrides applied), the
 * job limit the consequences section sets for that tier, and the jobs it runs already in
 * that currency: allow if they fit together, deny otherwise (and always when contained or
 * suspended, or when no pact says what a job pays).
 */
static void decide_job(pk_pact *const *pacts, size_t n, const Pactum__V1__TrustState *s,
                       const Pactum__V1__AuthorizeRequest *q, int64_t now, pk_authz *a)
{
    const Pactum__V1__Override *by = NULL;
    const pk_consequences *c = NULL;
    bool too_big = q->amount * 100 > (double)PK_PRICE_MAX; /* no job is worth more */
    int64_t asked = too_big ? PK_PRICE_MAX : (int64_t)(q->amount * 100 + 0.5), running = 0, limit;
    char lim[48], run[48], ask[48];
    const char *tier;

    memset(a, 0, sizeof(*a));
    a->permit = PACTUM__V1__PERMIT__PERMIT_DENY;
    a->effective_tier = pk_effective_tier(s, now, &by);
    if (by)
        snprintf(a->override_id, sizeof(a->override_id), "%s", by->override_id);
    tier = pk_tier_name(a->effective_tier);
    for (size_t i = 0; i < n && !c; i++)
        c = pacts[i]->cons.present ? &pacts[i]->cons : NULL;
    a->n_reasons = 1;
    if (!c) {
        snprintf(a->reasons[0], PK_AUTHZ_REASON_LEN,
                 "no pact of %s says what a job pays (consequences): it takes no engagement",
                 q->agent_id);
        return;
    }
    for (size_t i = 0; i < s->n_engagements; i++) {
        const Pactum__V1__EngagementState *e = s->engagements[i];
        if (e->terms && !(e->ended && e->ended[0]) && strcmp(e->terms->currency, q->currency) == 0)
            running += e->terms->price;
    }
    limit = (unsigned)a->effective_tier < PK_TIERS ? c->job_limit[a->effective_tier] : 0;
    money(limit, q->currency, lim, sizeof(lim));
    money(running, q->currency, run, sizeof(run));
    money(asked, q->currency, ask, sizeof(ask));
    if (too_big) {
        snprintf(a->reasons[0], PK_AUTHZ_REASON_LEN, "%s is more than any job may be worth", ask);
    } else if (limit < 0) {
        a->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
        snprintf(a->reasons[0], PK_AUTHZ_REASON_LEN,
                 "tier %s has no job limit (%s running, %s asked)", tier, run, ask);
    } else if (running + asked > limit) {
        snprintf(a->reasons[0], PK_AUTHZ_REASON_LEN,
                 "tier %s takes jobs up to %s at once: %s running and %s asked is more", tier, lim,
                 run, ask);
    } else {
        a->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
        snprintf(a->reasons[0], PK_AUTHZ_REASON_LEN,
                 "tier %s takes jobs up to %s at once: %s running and %s asked fit", tier, lim, run,
                 ask);
    }
}

static bool decide(oracle *o, MDB_txn *txn, Pactum__V1__AuthorizeRequest *q,
                   Pactum__V1__AuthorizeDecision *d, pk_authz *a, Pactum__V1__PactRef **refs,
                   size_t *n_refs, size_t *n_read, oracle_reply *r)
{
    Pactum__V1__TrustReport *stored = oracle_stored_report(o, txn, q->agent_id);
    Pactum__V1__TrustState initial, *coming;
    const Pactum__V1__TrustState *s = oracle_state_of(stored, &initial, q->agent_id);
    uint64_t trust_seq = stored ? stored->trust_seq : 0;
    const pk_compiled *held[PK_PACTS_PER_AGENT_MAX], *gov_held = NULL;
    pk_pact *pacts[PK_PACTS_PER_AGENT_MAX];
    static _Thread_local probe_result pr;
    static _Thread_local char approval_id[PK_ID_MAX + 1], approved_by[PK_ID_MAX + 1];
    Pactum__V1__Approval *approval = NULL;
    pk_authz_input in = {
        .state = s, .req = q, .now_ms = d->decided_ms, .unbound = (pk_unbound_policy)o->unbound};
    pk_event_msg ev;
    char why[256] = "";
    bool ok = true;

    /* a containment stored in PACTUM_TRUST that the read model is still committing */
    if ((coming = oracle_held_state(o, q->agent_id, s->change_seq, &trust_seq)))
        in.state = s = coming;
    *n_refs = oracle_pacts_of(o, txn, q->agent_id, refs, PK_PACTS_PER_AGENT_MAX);
    *n_read = 0;
    for (size_t i = 0; i < *n_refs; i++) {
        if (pk_pact_cache_get(o->pacts, txn, refs[i]->pact_id, refs[i]->version, &held[*n_read]) ==
            PK_OK) {
            pacts[*n_read] = held[*n_read]->pact;
            (*n_read)++;
        }
    }
    in.gov = governance(o, txn, s, pacts, *n_read, &gov_held);
    in.n_pacts = *n_read;
    for (size_t i = 0; i < *n_read; i++) {
        if (pacts[i]->review_by_ms && d->decided_ms > pacts[i]->review_by_ms &&
            (!in.review_cap || pacts[i]->review_cap > in.review_cap)) {
            in.review_cap = pacts[i]->review_cap;
            in.review_pact = pacts[i]->id;
        }
    }
    pk_authz_event(q, d->decided_ms, &ev);
    ev.registry_seq = pk_registry_seq(o->reg); /* the evaluator must know these pacts */
    if (strcmp(q->action, PK_JOB_ACTION) == 0) {
        /* taking a job is judged by the job limits, not by the tier's action list */
        decide_job(pacts, *n_read, s, q, d->decided_ms, a);
        goto done;
    }
    /* a contained agent, a deny override: decided without the clauses, so without asking the
     * evaluator (a denial reaches the caller one request-reply sooner); and the evaluator is
     * asked for its clause states only when they could change the answer */
    pk_authorize(&in, a);
    if (!a->before_clauses && in.n_pacts && !pk_authz_needs_state(pacts, in.n_pacts, &ev)) {
        /* no clause's stored state could change the findings: judged here, with none */
        in.findings = pr.f;
        in.n_findings =
            pk_authz_findings(pacts, in.n_pacts, &ev, no_state, NULL, pr.f, PK_AUTHZ_FINDINGS);
        pk_authorize(&in, a);
    } else if (!a->before_clauses && in.n_pacts) {
        if (!probe(o, &ev, in.n_pacts, &pr, why, sizeof(why))) {
            ok = oracle_refuse(o, r, Q_UNAVAILABLE,
                               "the pact's clauses cannot be checked now, so nothing is allowed: "
                               "%s",
                               why);
        } else {
            in.findings = pr.f;
            in.n_findings = pr.n;
            pk_authorize(&in, a);
        }
    }
    if (ok) {
        /* an approval turns "needs approval" into allow, once */
        if (a->permit == PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL && q->approval.len) {
            if (approval_of(o, txn, q, d->decided_ms, &approval, why, sizeof(why)) &&
                approval_use(o, approval, why, sizeof(why))) {
                in.approved_by = approval->approver_id;
                in.approval_id = approval->approval_id;
                pk_authorize(&in, a);
                snprintf(approval_id, sizeof(approval_id), "%s", approval->approval_id);
                snprintf(approved_by, sizeof(approved_by), "%s", approval->approver_id);
                d->approval_id = approval_id;
                d->approved_by = approved_by;
            } else if (a->n_reasons < PK_AUTHZ_REASONS) {
                snprintf(a->reasons[a->n_reasons++], PK_AUTHZ_REASON_LEN, "%s", why);
            }
        }
    }
done:
    if (approval)
        pactum__v1__approval__free_unpacked(approval, NULL);
    for (size_t i = 0; i < *n_read; i++)
        pk_pact_cache_release(o->pacts, held[i]);
    pk_pact_cache_release(o->pacts, gov_held);
    d->tier = s->tier;
    d->lower_ppm = s->lower_ppm;
    d->trust_seq = trust_seq;
    if (stored)
        pactum__v1__trust_report__free_unpacked(stored, NULL);
    if (coming)
        pactum__v1__trust_state__free_unpacked(coming, NULL);
    return ok;
}

/*
 * Record the decision in PACTUM_AUDIT: its record is sent before the answer (on the same
 * connection) and stored without the answer waiting for it; false (and a denial saying why)
 * if it cannot be sent, or an earlier record is not stored yet.
 */
static bool record(oracle *o, Pactum__V1__AuthorizeDecision *d, oracle_reply *r)
{
    char subject[96];
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    pk_status st;

    snprintf(subject, sizeof(subject), PK_SUBJ_AUDIT, d->request->agent_id);
    if ((st = pk_pack(&d->base, &rec, &rec_len)) == PK_OK)
        st = oracle_audit_send(o, subject, rec, rec_len, d->decision_id);
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
               oracle_agent_txn(o, &r, NULL, q->agent_id, &txn) &&
               decide(o, txn, q, &d, &a, refs, &n_refs, &n_read, &r)) {
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
        /* its record goes to the audit stream before the answer: an unrecorded decision is no
         * decision */
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
