/*
 * governance - answers pactum.governance.submit: overrides and
 * acknowledgements signed by operators, disputes signed by an agent's owner
 * or a registered counterparty, rulings signed by arbiters. Accepted records
 * go to pactum.verdicts.<p>.<agent>.g, where the scorer applies them in
 * order with the verdicts of the same agent.
 *
 * Each kind of record is a row of a table: who must sign it, where its id,
 * agent, signing time and texts are, and what else is checked. The checks
 * every record gets run in one place, in the same order for every kind.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pk/clock.h"
#include "pk/engagement.h"
#include "pk/log.h"
#include "pk/pact.h"

#define GOV_MAX_BYTES   (64 * 1024)
#define TEXT_MAX        1024              /* reasons, notes, counter-evidence */
#define OVERRIDE_MAX_MS (30LL * 86400000) /* overrides expire within 30 days */
/* A signed record is accepted this long after (or before) its signing time;
 * within it the stream's 10-minute de-duplication by record id stops a
 * replay, after it the age does, on every ingest instance. */
#define SIGNED_WINDOW_MS (5LL * 60000)

typedef struct gov_ctx {
    ingest_req r;                          /* the request and its outcome */
    MDB_txn *txn;                          /* registry reads while checking */
    Pactum__V1__GovernanceReceipt receipt; /* the answer */
    char id[PK_ID_MAX + 1];                /* record id */
} gov_ctx;

#define refuse(c, ...) ingest_refuse(&(c)->r, __VA_ARGS__)

/* Where a record keeps what every record has. */
typedef struct gov_fields {
    const char *id;       /* record id */
    const char *agent;    /* agent concerned */
    int64_t signed_ms;    /* when it was signed */
    char **signer;        /* the field ingest fills with who signed */
    int64_t *stamp;       /* the field ingest fills with the time it was accepted */
    const char *texts[2]; /* free texts (reason, note, counter-evidence), checked for length */
    const char *text_names[2];
    bool text_required[2];
} gov_fields;

/* A kind-specific check, after the common ones: false after refusing. *who is what
 * goes in the signer field (the signer's id unless the check says otherwise). */
typedef bool (*gov_check_fn)(gov_ctx *c, const pk_signed_msg *env,
                             const Pactum__V1__AgentRecord *signer,
                             const Pactum__V1__AgentRecord *subject, ProtobufCMessage *m,
                             int64_t now, const char **who);

typedef struct gov_kind {
    Pactum__V1__PayloadType type;                   /* payload type of the envelope */
    const char *name;                               /* "override" */
    const ProtobufCMessageDescriptor *desc;         /* its message */
    Pactum__V1__GovernanceRecord__RecordCase rcase; /* its place in GovernanceRecord */
    Pactum__V1__Role role;    /* the signer's role, or UNSPECIFIED: the check decides */
    const char *role_refusal; /* the sentence when another signs */
    const char *id_name;      /* "override id" */
    void (*fields)(ProtobufCMessage *m, gov_fields *f);
    gov_check_fn check; /* optional */
} gov_kind;

/* --- the kinds ------------------------------------------------------------------------ */

static void override_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__Override *o = (Pactum__V1__Override *)m;

    *f = (gov_fields){.id = o->override_id,
                      .agent = o->agent_id,
                      .signed_ms = o->signed_ms,
                      .signer = &o->operator_id,
                      .stamp = &o->created_ms,
                      .texts = {o->reason},
                      .text_names = {"reason"},
                      .text_required = {true}};
}

static bool override_check(gov_ctx *c, const pk_signed_msg *env,
                           const Pactum__V1__AgentRecord *signer,
                           const Pactum__V1__AgentRecord *subject, ProtobufCMessage *m, int64_t now,
                           const char **who)
{
    Pactum__V1__Override *o = (Pactum__V1__Override *)m;
    const char *id = o->override_id;
    bool good;

    if (o->expires_ms <= now || o->expires_ms > now + OVERRIDE_MAX_MS) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "override %s: expiry is mandatory and must lie within the next 30 days", id);
        return false;
    }
    if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER) {
        good = o->tier > PACTUM__V1__TIER__TIER_UNSPECIFIED &&
               o->tier <= PACTUM__V1__TIER__TIER_SUSPENDED && !o->n_actions;
        if (!good)
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                   "override %s: a tier override names one tier and no actions", id);
        return good;
    }
    if (o->kind != PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW &&
        o->kind != PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "override %s: kind must be tier, allow or deny", id);
        return false;
    }
    good = o->n_actions > 0 && o->n_actions <= 8;
    for (size_t i = 0; good && i < o->n_actions; i++) {
        const char *star = strchr(o->actions[i], '*');
        good = *o->actions[i] && strlen(o->actions[i]) <= PK_NAME_MAX && (!star || star[1] == '\0');
    }
    if (!good)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "override %s: allow and deny name 1 to 8 actions (exact, or ending in '*')", id);
    return good;
}

static void ack_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__Ack *a = (Pactum__V1__Ack *)m;

    *f = (gov_fields){.id = a->ack_id,
                      .agent = a->agent_id,
                      .signed_ms = a->signed_ms,
                      .signer = &a->operator_id,
                      .stamp = &a->acked_ms,
                      .texts = {a->note},
                      .text_names = {"note"}};
}

static void dispute_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__Dispute *d = (Pactum__V1__Dispute *)m;

    *f = (gov_fields){.id = d->dispute_id,
                      .agent = d->agent_id,
                      .signed_ms = d->signed_ms,
                      .signer = &d->opened_by,
                      .stamp = &d->opened_ms,
                      .texts = {d->reason, d->counter_evidence},
                      .text_names = {"reason", "counter_evidence"},
                      .text_required = {true, false}};
}

/* A dispute names what it disputes, and is opened by the agent's owner or a counterparty. */
static bool dispute_check(gov_ctx *c, const pk_signed_msg *env,
                          const Pactum__V1__AgentRecord *signer,
                          const Pactum__V1__AgentRecord *subject, ProtobufCMessage *m, int64_t now,
                          const char **who)
{
    Pactum__V1__Dispute *d = (Pactum__V1__Dispute *)m;

    if (!d->verdict_vseq && !d->event_id[0]) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "dispute %s names neither a verdict nor an event", d->dispute_id);
        return false;
    }
    if ((d->event_id[0] && pk_event_id_check(d->event_id) != PK_OK) ||
        (d->engagement_id[0] && pk_id_check("engagement id", d->engagement_id) != PK_OK)) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        return false;
    }
    if (!env->signer_id[0] && subject->owner_key.len == PK_PUBKEY_BYTES &&
        pk_bytes_equal(subject->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        *who = "owner";
        return true;
    }
    /* about an engagement: its buyer, an agent or a person (the ledger checks it is the buyer) */
    if (d->engagement_id[0] && signer && strcmp(env->signer_id, d->agent_id) != 0 &&
        (signer->role == PACTUM__V1__ROLE__ROLE_AGENT ||
         signer->role == PACTUM__V1__ROLE__ROLE_HUMAN))
        return true;
    /* a counterparty is one the agent's pact names, not any registered agent */
    if (signer && signer->role == PACTUM__V1__ROLE__ROLE_AGENT &&
        strcmp(env->signer_id, d->agent_id) != 0 &&
        pk_pact_cache_counterparty(c->r.in->pacts, c->r.in->reg, c->txn, d->agent_id,
                                   env->signer_id))
        return true;
    refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
           "dispute %s: only the owner of %s or a counterparty its pact names may open it",
           d->dispute_id, d->agent_id);
    return false;
}

static void ruling_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__Ruling *r = (Pactum__V1__Ruling *)m;

    *f = (gov_fields){.id = r->dispute_id,
                      .agent = r->agent_id,
                      .signed_ms = r->signed_ms,
                      .signer = &r->arbiter_id,
                      .stamp = &r->ruled_ms,
                      .texts = {r->reason},
                      .text_names = {"reason"},
                      .text_required = {true}};
}

/* --- engagements ----------------------------------------------------------------------- */

static void accept_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__EngagementAcceptance *a = (Pactum__V1__EngagementAcceptance *)m;

    *f = (gov_fields){.id = a->engagement_id,
                      .agent = a->agent_id,
                      .signed_ms = a->signed_ms,
                      .signer = &a->accepted_by,
                      .stamp = &a->accepted_ms};
}

/* The buyer: registered with the key that signed the terms, an agent or a person, and not
 * the agent itself nor another agent of its owner (whose word would be the owner's own). */
static bool buyer_ok(gov_ctx *c, const pk_signed_msg *oe, const Pactum__V1__Engagement *o,
                     const Pactum__V1__AgentRecord *subject)
{
    Pactum__V1__AgentRecord *b = NULL;
    bool ok = false;

    if (strcmp(o->buyer_id, oe->signer_id) != 0)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "engagement %s: buyer_id '%s' is not the signer of the terms ('%s')",
               o->engagement_id, o->buyer_id, oe->signer_id);
    else if (strcmp(o->buyer_id, o->agent_id) == 0)
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "engagement %s: an agent cannot hire itself", o->engagement_id);
    else if (pk_registry_agent(c->r.in->reg, c->txn, o->buyer_id, &b, NULL) != PK_OK)
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER,
               "engagement %s: buyer '%s' is not registered", o->engagement_id, o->buyer_id);
    else if (b->agent_key.len != PK_PUBKEY_BYTES ||
             !pk_bytes_equal(b->agent_key.data, oe->signer_key.data, PK_PUBKEY_BYTES))
        refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "engagement %s: the terms are signed with a key that is not the registered key "
               "of '%s'",
               o->engagement_id, o->buyer_id);
    else if (b->role != PACTUM__V1__ROLE__ROLE_AGENT && b->role != PACTUM__V1__ROLE__ROLE_HUMAN)
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "engagement %s: a buyer is a registered agent or person", o->engagement_id);
    else if (b->role == PACTUM__V1__ROLE__ROLE_AGENT && b->owner_key.len == PK_PUBKEY_BYTES &&
             subject->owner_key.len == PK_PUBKEY_BYTES &&
             pk_bytes_equal(b->owner_key.data, subject->owner_key.data, PK_PUBKEY_BYTES))
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "engagement %s: %s and %s have the same owner; an owner cannot hire its own agent",
               o->engagement_id, o->buyer_id, o->agent_id);
    else
        ok = true;
    if (b)
        pactum__v1__agent_record__free_unpacked(b, NULL);
    return ok;
}

/* Price, currency, times and text of the terms. */
static bool terms_ok(gov_ctx *c, const Pactum__V1__Engagement *o, int64_t now)
{
    const char *cur = o->currency;
    const char *bad = NULL;

    if (o->price <= 0 || o->price > PK_PRICE_MAX)
        bad = "price must be from 1 to 10^15 minor units of its currency";
    else if (strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
             cur[2] < 'A' || cur[2] > 'Z')
        bad = "currency must be an ISO 4217 code (three capital letters)";
    else if (o->deadline_ms <= o->start_ms || o->deadline_ms - o->start_ms > PK_ENG_DURATION_MAX)
        bad = "the deadline must come after the start, and within 366 days of it";
    else if (o->deadline_ms <= now)
        bad = "the deadline has passed";
    else if (o->signed_ms > now + SIGNED_WINDOW_MS)
        bad = "the terms are signed in the future";
    else if (strlen(o->job) > TEXT_MAX)
        bad = "job is longer than 1024 bytes";
    if (bad)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "engagement %s: %s", o->engagement_id,
               bad);
    return !bad;
}

/* The pact version named binds the agent, has that hash, and says what a job pays. */
static bool terms_pact_ok(gov_ctx *c, const Pactum__V1__Engagement *o)
{
    const pk_compiled *p = NULL;
    const char *bad = NULL;

    if (pk_pact_cache_get(c->r.in->pacts, c->txn, o->pact_id, o->pact_version, &p) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "engagement %s: pact %s v%u is not registered (or does not compile)",
               o->engagement_id, o->pact_id, o->pact_version);
        return false;
    }
    if (!p->pact->agent || strcmp(p->pact->agent, o->agent_id) != 0)
        bad = "binds another agent";
    else if (o->pact_hash.len != PK_HASH_BYTES ||
             !pk_bytes_equal(o->pact_hash.data, p->hash, PK_HASH_BYTES))
        bad = "has another hash than the terms name";
    else if (!p->pact->cons.present)
        bad = "has no consequences section: nothing says what a job pays";
    if (bad)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "engagement %s: pact %s v%u %s",
               o->engagement_id, o->pact_id, o->pact_version, bad);
    pk_pact_cache_release(c->r.in->pacts, p);
    return !bad;
}

/* Signed by both: the buyer's terms, verified, inside the owner's acceptance. */
static bool accept_check(gov_ctx *c, const pk_signed_msg *env,
                         const Pactum__V1__AgentRecord *signer,
                         const Pactum__V1__AgentRecord *subject, ProtobufCMessage *m, int64_t now,
                         const char **who)
{
    Pactum__V1__EngagementAcceptance *a = (Pactum__V1__EngagementAcceptance *)m;
    pk_signed_msg *oe = NULL;
    Pactum__V1__Engagement *o;
    bool ok = false;

    (void)signer;
    if (env->signer_id[0] || subject->owner_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(subject->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "engagement %s: only the owner of %s, with its owner key, accepts a job for it",
               a->engagement_id, a->agent_id);
        return false;
    }
    if (!(o = ledger_offer(a, &oe))) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "engagement %s: offer is not an engagement signed by a buyer", a->engagement_id);
        return false;
    }
    if (pk_envelope_verify(oe, oe->signer_key.data) != PK_OK)
        refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "engagement %s: the buyer's signature on the terms does not verify",
               a->engagement_id);
    else if (strcmp(o->engagement_id, a->engagement_id) != 0 ||
             strcmp(o->agent_id, a->agent_id) != 0)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "the acceptance names engagement %s of %s; the buyer's terms name %s of %s",
               a->engagement_id, a->agent_id, o->engagement_id, o->agent_id);
    else
        ok = buyer_ok(c, oe, o, subject) && terms_ok(c, o, now) && terms_pact_ok(c, o);
    pactum__v1__engagement__free_unpacked(o, NULL);
    pactum__v1__signed__free_unpacked(oe, NULL);
    if (ok)
        *who = "owner";
    return ok;
}

static void complete_fields(ProtobufCMessage *m, gov_fields *f)
{
    Pactum__V1__EngagementCompletion *x = (Pactum__V1__EngagementCompletion *)m;

    *f = (gov_fields){.id = x->engagement_id,
                      .agent = x->agent_id,
                      .signed_ms = x->signed_ms,
                      .signer = &x->completed_by,
                      .stamp = &x->completed_ms,
                      .texts = {x->note},
                      .text_names = {"note"}};
}

/* The job is declared done by the agent itself or by its owner. */
static bool complete_check(gov_ctx *c, const pk_signed_msg *env,
                           const Pactum__V1__AgentRecord *signer,
                           const Pactum__V1__AgentRecord *subject, ProtobufCMessage *m, int64_t now,
                           const char **who)
{
    Pactum__V1__EngagementCompletion *x = (Pactum__V1__EngagementCompletion *)m;

    (void)now;
    if (!env->signer_id[0] && subject->owner_key.len == PK_PUBKEY_BYTES &&
        pk_bytes_equal(subject->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        *who = "owner";
        return true;
    }
    if (signer && strcmp(env->signer_id, x->agent_id) == 0)
        return true; /* the agent, with its registered key (signer_of checked it) */
    refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
           "engagement %s: only %s or its owner may declare the job done", x->engagement_id,
           x->agent_id);
    return false;
}

static const gov_kind kinds[] = {
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_OVERRIDE, "override", &pactum__v1__override__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE, PACTUM__V1__ROLE__ROLE_OPERATOR,
     "overrides must be signed by a registered operator", "override id", override_fields,
     override_check},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ACK, "ack", &pactum__v1__ack__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_ACK, PACTUM__V1__ROLE__ROLE_OPERATOR,
     "acknowledgements must be signed by a registered operator", "ack id", ack_fields, NULL},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DISPUTE, "dispute", &pactum__v1__dispute__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE, PACTUM__V1__ROLE__ROLE_UNSPECIFIED, NULL,
     "dispute id", dispute_fields, dispute_check},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_RULING, "ruling", &pactum__v1__ruling__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING, PACTUM__V1__ROLE__ROLE_ARBITER,
     "rulings must be signed by a registered arbiter", "dispute id", ruling_fields, NULL},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_ACCEPT, "engagement",
     &pactum__v1__engagement_acceptance__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT, PACTUM__V1__ROLE__ROLE_UNSPECIFIED, NULL,
     "engagement id", accept_fields, accept_check},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_COMPLETE, "completion",
     &pactum__v1__engagement_completion__descriptor,
     PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION, PACTUM__V1__ROLE__ROLE_UNSPECIFIED, NULL,
     "engagement id", complete_fields, complete_check},
};

/* --- the checks every record gets ------------------------------------------------------ */

static bool texts_ok(gov_ctx *c, const gov_fields *f)
{
    for (int i = 0; i < 2 && f->text_names[i]; i++) {
        size_t n = strlen(f->texts[i]);
        if (f->text_required[i] && n == 0) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s is mandatory",
                   f->text_names[i]);
            return false;
        }
        if (n > TEXT_MAX) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s is %zu bytes; at most %d",
                   f->text_names[i], n, TEXT_MAX);
            return false;
        }
    }
    return true;
}

/* The registered agent the record is about, or refuse. */
static bool agent_known(gov_ctx *c, MDB_txn *txn, const char *agent, Pactum__V1__AgentRecord **out)
{
    if (pk_id_check("agent id", agent) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        return false;
    }
    if (pk_registry_agent(c->r.in->reg, txn, agent, out, NULL) != PK_OK ||
        (*out)->role != PACTUM__V1__ROLE__ROLE_AGENT) {
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT, "agent '%s' is not registered", agent);
        return false;
    }
    return true;
}

/* Signed recently enough that the stream's de-duplication covers a replay. */
static bool fresh(gov_ctx *c, const gov_kind *k, const gov_fields *f, int64_t now)
{
    if (f->signed_ms >= now - SIGNED_WINDOW_MS && f->signed_ms <= now + SIGNED_WINDOW_MS)
        return true;
    refuse(c,
           f->signed_ms < now - SIGNED_WINDOW_MS ? PACTUM__V1__REASON__REASON_TOO_OLD
                                                 : PACTUM__V1__REASON__REASON_TOO_NEW,
           "%s %s was signed at %lld ms, %lld s from now; records are accepted within "
           "5 minutes of signing (is a clock wrong, or is this a replay?)",
           k->name, f->id, (long long)f->signed_ms, (long long)(f->signed_ms - now) / 1000);
    return false;
}

/*
 * Check record m of kind k and fill in what ingest vouches for (who signed,
 * when); false if refused. *filled and *filled_was: the field ingest set and
 * what the request held there, to give back before m is freed.
 */
static bool check_record(gov_ctx *c, MDB_txn *txn, const pk_signed_msg *env, const gov_kind *k,
                         const Pactum__V1__AgentRecord *signer, ProtobufCMessage *m,
                         const char **agent, char ***filled, char **filled_was)
{
    Pactum__V1__AgentRecord *subject = NULL;
    const char *who = env->signer_id;
    int64_t now = pk_now_ms();
    gov_fields f;
    bool ok = false;

    k->fields(m, &f);
    *agent = f.agent;
    if (k->role != PACTUM__V1__ROLE__ROLE_UNSPECIFIED && (!signer || signer->role != k->role))
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, "%s", k->role_refusal);
    else if (pk_id_check(k->id_name, f.id) != PK_OK)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
    else
        ok = agent_known(c, txn, f.agent, &subject) && texts_ok(c, &f) &&
             (!k->check || k->check(c, env, signer, subject, m, now, &who)) && fresh(c, k, &f, now);
    if (ok) {
        *filled = f.signer;
        *filled_was = *f.signer;
        *f.signer = (char *)who;
        *f.stamp = now;
    }
    snprintf(c->id, sizeof(c->id), "%.64s", f.id);
    if (subject)
        pactum__v1__agent_record__free_unpacked(subject, NULL);
    return ok;
}

/* --- storing an accepted record ----------------------------------------------------------- */

/* The signer's registered record when the envelope names one; NULL (and true) for an owner key. */
static bool signer_of(gov_ctx *c, MDB_txn *txn, const pk_signed_msg *env,
                      Pactum__V1__AgentRecord **out)
{
    if (!env->signer_id[0])
        return true; /* an owner key named in the envelope (disputes only) */
    if (pk_registry_agent(c->r.in->reg, txn, env->signer_id, out, NULL) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER, "signer '%s' is not registered",
               env->signer_id);
        return false;
    }
    if ((*out)->agent_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal((*out)->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "signed with a key that is not the registered key of '%s'", env->signer_id);
        return false;
    }
    return true;
}

/*
 * Put the accepted record in its agent's verdict order, if the agent's last
 * record is still the one at last_seq: PK_ECONFLICT (nothing stored, nothing
 * said) if another record came first; otherwise the receipt says what
 * happened and *seq is where it went.
 */
static pk_status store(gov_ctx *c, const gov_kind *k, Pactum__V1__GovernanceRecord *rec,
                       const char *agent, uint64_t last_seq, uint64_t *stored)
{
    ingest *in = c->r.in;
    char subject[160], msg_id[2 * PK_ID_MAX + 16];
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    bool dup = false;
    pk_status st;

    rec->submission.data = (uint8_t *)c->r.data;
    rec->submission.len = c->r.len;
    if ((st = pk_pack(&rec->base, &buf, &len)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        return st;
    }
    snprintf(subject, sizeof(subject), PK_SUBJ_GOVERNANCE, pk_partition_of(agent, in->partitions),
             agent);
    /* the same record submitted twice is stored once */
    snprintf(msg_id, sizeof(msg_id), "%s:%s:%s", k->name, agent, c->id);
    st = pk_bus_publish_sync(in->bus, subject, buf, len, msg_id, true, last_seq, &seq, &dup);
    free(buf);
    if (st == PK_ECONFLICT)
        return st;
    if (st != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "could not store the record: %s",
               pk_error_msg());
        return st;
    }
    c->receipt.seq = seq;
    *stored = dup ? 0 : seq;
    ingest_accept(&c->r, "%s %s for agent %s %s (PACTUM_VERDICTS #%llu)", k->name, c->id, agent,
                  dup ? "was already recorded" : "recorded", (unsigned long long)seq);
    return PK_OK;
}

/* A dispute about an engagement: the engagement exists, and the owner or its buyer opens it. */
static bool engagement_party(gov_ctx *c, const Pactum__V1__GovLedger *l,
                             const Pactum__V1__Dispute *d, const char *agent)
{
    int at = ledger_find(l->engagements, l->n_engagements, d->engagement_id);

    if (at < 0) {
        refuse(c, PACTUM__V1__REASON__REASON_NO_SUCH_ENGAGEMENT,
               "dispute %s: %s has no engagement %s", d->dispute_id, agent, d->engagement_id);
        return false;
    }
    if (strcmp(d->opened_by, "owner") != 0 && strcmp(d->opened_by, l->engagements[at]->by) != 0) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "dispute %s: only the owner of %s or the buyer of engagement %s (%s) may open it",
               d->dispute_id, agent, d->engagement_id, l->engagements[at]->by);
        return false;
    }
    return true;
}

/* Does the ledger leave room for the record? Refuses (with the reason) if not. */
static bool ledger_admits(gov_ctx *c, const Pactum__V1__GovernanceRecord *rec,
                          const Pactum__V1__GovLedger *l, const char *agent)
{
    const char *by;

    switch (rec->record_case) {
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
        by = rec->dispute->opened_by;
        if (ledger_find(l->disputes, l->n_disputes, rec->dispute->dispute_id) >= 0)
            return true; /* the same dispute again: stored once */
        if (rec->dispute->engagement_id[0] && !engagement_party(c, l, rec->dispute, agent))
            return false;
        if (ledger_count_by(l->disputes, l->n_disputes, by) >= LEDGER_DISPUTES_PER_OPENER) {
            refuse(c, PACTUM__V1__REASON__REASON_TOO_MANY_DISPUTES,
                   "dispute %s: %s already has %d disputes open about %s (a ruling closes one)",
                   rec->dispute->dispute_id, by, LEDGER_DISPUTES_PER_OPENER, agent);
            return false;
        }
        if (l->n_disputes >= LEDGER_DISPUTES_MAX) {
            refuse(c, PACTUM__V1__REASON__REASON_TOO_MANY_DISPUTES,
                   "dispute %s: %s has %d disputes open, as many as it may",
                   rec->dispute->dispute_id, agent, LEDGER_DISPUTES_MAX);
            return false;
        }
        return true;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
        if (ledger_find(l->disputes, l->n_disputes, rec->ruling->dispute_id) >= 0)
            return true;
        refuse(c, PACTUM__V1__REASON__REASON_NO_SUCH_DISPUTE,
               "ruling on dispute %s: %s has no open dispute of that id", rec->ruling->dispute_id,
               agent);
        return false;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT:
        if (ledger_find(l->engagements, l->n_engagements, rec->engagement->engagement_id) >= 0) {
            refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
                   "engagement %s of %s is already recorded", rec->engagement->engagement_id,
                   agent);
            return false;
        }
        if (ledger_open_engagements(l, pk_now_ms()) >= LEDGER_ENGAGEMENTS_OPEN) {
            refuse(c, PACTUM__V1__REASON__REASON_TOO_MANY_ENGAGEMENTS,
                   "engagement %s: %s already runs %d engagements (one ends on completion or "
                   "at its deadline)",
                   rec->engagement->engagement_id, agent, LEDGER_ENGAGEMENTS_OPEN);
            return false;
        }
        return true;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION: {
        int at = ledger_find(l->engagements, l->n_engagements, rec->completion->engagement_id);
        if (at < 0)
            refuse(c, PACTUM__V1__REASON__REASON_NO_SUCH_ENGAGEMENT,
                   "completion: %s has no engagement %s", agent, rec->completion->engagement_id);
        else if (l->engagements[at]->done)
            refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
                   "engagement %s of %s is already completed", rec->completion->engagement_id,
                   agent);
        return at >= 0 && !l->engagements[at]->done;
    }
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE:
        by = rec->override->operator_id;
        if (ledger_find(l->overrides, l->n_overrides, rec->override->override_id) >= 0)
            return true;
        if (ledger_count_by(l->overrides, l->n_overrides, by) >= LEDGER_OVERRIDES_PER_OP) {
            refuse(c, PACTUM__V1__REASON__REASON_TOO_MANY_OVERRIDES,
                   "override %s: %s already has %d overrides in force on %s (none is ever "
                   "evicted; wait for one to expire)",
                   rec->override->override_id, by, LEDGER_OVERRIDES_PER_OP, agent);
            return false;
        }
        if (l->n_overrides >= LEDGER_OVERRIDES_MAX) {
            refuse(c, PACTUM__V1__REASON__REASON_TOO_MANY_OVERRIDES,
                   "override %s: %s has %d overrides in force, as many as it may",
                   rec->override->override_id, agent, LEDGER_OVERRIDES_MAX);
            return false;
        }
        return true;
    default:
        return true;
    }
}

/*
 * Admit and store the record: the agent's ledger, caught up with every
 * instance's records, must leave room for it, and the record is stored only
 * if no other came in between (else read again and decide again).
 */
static void admit(gov_ctx *c, const gov_kind *k, Pactum__V1__GovernanceRecord *rec,
                  const char *agent)
{
    ingest *in = c->r.in;
    pk_status st = PK_ECONFLICT;

    pthread_mutex_lock(&in->gov_lock);
    for (int attempt = 0; attempt < 5 && st == PK_ECONFLICT; attempt++) {
        Pactum__V1__GovLedger *l = NULL;
        uint64_t seq = 0;
        if ((st = ledger_load(in, agent, &l)) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INTERNAL,
                   "the agent's governance records cannot be read now: %s", pk_error_msg());
            break;
        }
        ledger_prune(l, pk_now_ms());
        if (!ledger_admits(c, rec, l, agent)) {
            ledger_free(l);
            break;
        }
        st = store(c, k, rec, agent, l->subject_seq, &seq);
        if (st == PK_OK && seq && ledger_apply(l, rec, seq) && ledger_store(in, agent, l) != PK_OK)
            PK_WARN("ledger of %s not kept (it is read again from the stream): %s", agent,
                    pk_error_msg());
        ledger_free(l);
    }
    if (st == PK_ECONFLICT)
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "other records for %s kept arriving first; submit it again", agent);
    pthread_mutex_unlock(&in->gov_lock);
}

static void handle(gov_ctx *c, const pk_signed_msg *env, const gov_kind *k)
{
    Pactum__V1__AgentRecord *signer = NULL;
    Pactum__V1__GovernanceRecord rec = PACTUM__V1__GOVERNANCE_RECORD__INIT;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(k->desc, NULL, env->payload.len, env->payload.data);
    MDB_txn *txn = NULL;
    const char *agent = NULL;
    char **filled = NULL, *filled_was = NULL;
    bool ok;

    if (!m) {
        refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not a%s %s",
               k->name[0] == 'a' || k->name[0] == 'o' ? "n" : "", k->desc->short_name);
        return;
    }
    if (pk_registry_refresh(c->r.in->reg, 100) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if (pk_txn_begin(c->r.in->store, false, &txn) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    c->txn = txn;
    ok = signer_of(c, txn, env, &signer) &&
         check_record(c, txn, env, k, signer, m, &agent, &filled, &filled_was);
    c->txn = NULL;
    pk_txn_abort(txn); /* not held over the round trip below */
    if (ok) {
        rec.record_case = k->rcase;
        rec.override = (Pactum__V1__Override *)m; /* the oneof's members share one pointer */
        admit(c, k, &rec, agent);
    }
    /* the filled-in field points into env or a static string: give back the request's own */
    if (filled)
        *filled = filled_was;
    protobuf_c_message_free_unpacked(m, NULL);
    if (signer)
        pactum__v1__agent_record__free_unpacked(signer, NULL);
}

pk_status governance_answer(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen)
{
    static const ingest_req_kind record = {PK_SUBJ_GOV_SUBMIT, "governance record", M_GOV_OK,
                                           M_GOV_REJECTED, GOV_MAX_BYTES};
    gov_ctx c = {.r = {.in = ctx, .kind = &record, .data = req, .len = len}};
    pk_signed_msg *env = ingest_open_request(&c.r);
    size_t i = 0;
    pk_status st;

    pactum__v1__governance_receipt__init(&c.receipt);
    for (; env && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i].type == env->type) {
            handle(&c, env, &kinds[i]);
            break;
        }
    }
    if (env && i == sizeof(kinds) / sizeof(kinds[0]))
        refuse(&c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "only overrides, disputes, rulings, acknowledgements, engagement acceptances "
               "and completions are accepted here");
    c.receipt.ok = c.r.ok;
    c.receipt.reason = c.r.reason;
    c.receipt.message = c.r.text;
    c.receipt.id = c.id;
    st = pk_pack(&c.receipt.base, out, outlen);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    return st;
}
