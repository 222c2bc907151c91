/*
 * registrar - answers pactum.registry.submit: registers agents and pacts.
 *
 * The PACTUM_REGISTRY stream is the registry. Writes use the stream's
 * expected-last-subject-sequence check, so two ingest instances racing to
 * register the same agent id, or the same pact version, cannot both win.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/pact.h"

#define SUBMIT_MAX_BYTES (PK_PACT_MAX_BYTES + 8192)

typedef struct submit_ctx {
    ingest_req r;                        /* the request and its outcome */
    Pactum__V1__RegistryReceipt receipt; /* the answer being built */
} submit_ctx;

#define refuse(c, ...)   ingest_refuse(&(c)->r, __VA_ARGS__)
#define accepted(c, ...) ingest_accept(&(c)->r, __VA_ARGS__)

/* A bus identity for key, on the receipt (nothing without an issuer). */
static void give_credential(submit_ctx *c, pk_bus_role role, const uint8_t key[32],
                            const char *name)
{
    Pactum__V1__BusCredential *cred, **more;

    if (c->receipt.n_credentials >= 2 ||
        !(cred = issuer_credential(&c->r.in->issuer, role, key, name)))
        return;
    if (!(more = realloc(c->receipt.credentials, (c->receipt.n_credentials + 1) * sizeof(*more)))) {
        issuer_credential_free(cred);
        return;
    }
    more[c->receipt.n_credentials++] = cred;
    c->receipt.credentials = more;
}

/* The bus identities of a principal just registered (or found registered with the same key):
 * an agent's and its owner's, or a principal's in its role. */
static void give_credentials(submit_ctx *c, const Pactum__V1__AgentRecord *rec)
{
    char owner[32];

    switch (rec->role) {
    case PACTUM__V1__ROLE__ROLE_AGENT:
        give_credential(c, PK_BUS_AGENT, rec->agent_key.data, rec->agent_id);
        snprintf(owner, sizeof(owner), "owner-%02x%02x%02x%02x%02x%02x", rec->owner_key.data[0],
                 rec->owner_key.data[1], rec->owner_key.data[2], rec->owner_key.data[3],
                 rec->owner_key.data[4], rec->owner_key.data[5]);
        give_credential(c, PK_BUS_OWNER, rec->owner_key.data, owner);
        break;
    case PACTUM__V1__ROLE__ROLE_OPERATOR:
        give_credential(c, PK_BUS_OPERATOR, rec->agent_key.data, rec->agent_id);
        break;
    case PACTUM__V1__ROLE__ROLE_ARBITER:
        give_credential(c, PK_BUS_ARBITER, rec->agent_key.data, rec->agent_id);
        break;
    case PACTUM__V1__ROLE__ROLE_EVALUATOR:
    case PACTUM__V1__ROLE__ROLE_HUMAN:
    case PACTUM__V1__ROLE__ROLE_TELEMETRY:
        give_credential(c, PK_BUS_REPORTER, rec->agent_key.data, rec->agent_id);
        break;
    default:
        break;
    }
}

/* The receipt owns a copy of the pact hash (freed by on_submit). */
static void set_receipt_hash(submit_ctx *c, const uint8_t hash[PK_HASH_BYTES])
{
    c->receipt.hash.data = malloc(PK_HASH_BYTES);
    if (c->receipt.hash.data) {
        memcpy(c->receipt.hash.data, hash, PK_HASH_BYTES);
        c->receipt.hash.len = PK_HASH_BYTES;
    }
}

/*
 * Publish rec on subject expecting the subject's last sequence to be last_seq:
 * true with receipt.seq set, or false after refusing (`raced` when another
 * write to the subject came first; `what` names the record otherwise).
 */
static bool publish_record(submit_ctx *c, const char *subject, Pactum__V1__RegistryRecord *rec,
                           uint64_t last_seq, const char *raced, const char *what)
{
    ingest *in = c->r.in;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    pk_status st = pk_pack(&rec->base, &buf, &len);

    if (st == PK_OK)
        st = pk_bus_publish_sync(in->bus, subject, buf, len, NULL, true, last_seq, &seq, NULL);
    free(buf);
    if (st == PK_ECONFLICT) {
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT, "%s", raced);
        return false;
    }
    if (st != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "could not store the %s: %s", what,
               pk_error_msg());
        return false;
    }
    if (pk_registry_sync(in->reg, seq) != PK_OK)
        PK_WARN("registry copy lags behind: %s", pk_error_msg());
    c->receipt.seq = seq;
    return true;
}

/*
 * Store rec (an agent, or a principal of another role) unless its id is taken:
 * the same id with the same role and keys answers ok with the first record's
 * position; with anything else, conflict. An API client registered again
 * (the admin key signed it) with a new token replaces its token: the way to
 * rotate one, or to cut off a leaked one. `what` names it in messages.
 */
static void store_principal(submit_ctx *c, Pactum__V1__AgentRecord *rec, const char *what)
{
    ingest *in = c->r.in;
    Pactum__V1__AgentRecord *existing = NULL;
    Pactum__V1__RegistryRecord rr = PACTUM__V1__REGISTRY_RECORD__INIT;
    uint64_t existing_seq = 0, replaces = 0;
    MDB_txn *txn = NULL;
    char subject[128], raced[256];
    pk_status st;

    if (pk_registry_sync(in->reg, 0) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if ((st = pk_txn_begin(in->store, false, &txn)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        return;
    }
    st = pk_registry_agent(in->reg, txn, rec->agent_id, &existing, &existing_seq);
    pk_txn_abort(txn);
    if (st == PK_OK) {
        bool client = existing->role == PACTUM__V1__ROLE__ROLE_CLIENT &&
                      rec->role == PACTUM__V1__ROLE__ROLE_CLIENT;
        bool same =
            client
                ? existing->token_hash.len == PK_HASH_BYTES &&
                      rec->token_hash.len == PK_HASH_BYTES &&
                      pk_bytes_equal(existing->token_hash.data, rec->token_hash.data, PK_HASH_BYTES)
                : existing->role == rec->role && existing->agent_key.len == PK_PUBKEY_BYTES &&
                      existing->owner_key.len == PK_PUBKEY_BYTES &&
                      pk_bytes_equal(existing->agent_key.data, rec->agent_key.data,
                                     PK_PUBKEY_BYTES) &&
                      pk_bytes_equal(existing->owner_key.data, rec->owner_key.data,
                                     PK_PUBKEY_BYTES);
        pactum__v1__agent_record__free_unpacked(existing, NULL);
        if (same) {
            c->receipt.seq = existing_seq;
            give_credentials(c, rec);
            accepted(c, "%s %s is already registered with these keys", what, rec->agent_id);
            return;
        }
        if (!client) {
            refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
                   "id %s is already registered with another role or other keys", rec->agent_id);
            return;
        }
        /* a client's new token: stored below, after the record it replaces */
        replaces = existing_seq;
    }
    rec->registered_ms = pk_now_ms();
    rec->submission.data = (uint8_t *)c->r.data;
    rec->submission.len = c->r.len;
    rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT;
    rr.agent = rec;
    snprintf(subject, sizeof(subject), PK_SUBJ_REG_AGENT, rec->agent_id);
    snprintf(raced, sizeof(raced), "id %s was registered by someone else at the same moment",
             rec->agent_id);
    if (publish_record(c, subject, &rr, replaces, raced, "registration") &&
        (give_credentials(c, rec), 1))
        accepted(c, "registered %s %s (registry #%llu)", what, rec->agent_id,
                 (unsigned long long)c->receipt.seq);
}

static void register_agent(submit_ctx *c, const pk_signed_msg *env, ProtobufCMessage *m)
{
    const Pactum__V1__AgentRegistration *ar = (const Pactum__V1__AgentRegistration *)m;
    Pactum__V1__AgentRecord rec = PACTUM__V1__AGENT_RECORD__INIT;
    uint8_t *pop = NULL;
    size_t poplen = 0;

    if (ar->agent_key.len != PK_PUBKEY_BYTES || ar->owner_key.len != PK_PUBKEY_BYTES ||
        ar->agent_pop.len != PK_SIG_BYTES) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "agent %s: agent_key and owner_key must be %d bytes and agent_pop %d bytes",
               ar->agent_id, PK_PUBKEY_BYTES, PK_SIG_BYTES);
        goto done;
    }
    if (strlen(ar->display_name) > PK_NAME_MAX) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "agent %s: display_name is longer than %d bytes", ar->agent_id, PK_NAME_MAX);
        goto done;
    }
    if (!pk_bytes_equal(ar->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "agent %s: the registration must be signed by the owner key it names", ar->agent_id);
        goto done;
    }
    if (pk_pop_message(ar->agent_id, ar->owner_key.data, &pop, &poplen) != PK_OK ||
        pk_verify(ar->agent_key.data, pop, poplen, ar->agent_pop.data) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "agent %s: agent_pop is not the agent key's signature, so the owner has not "
               "shown it holds the agent key",
               ar->agent_id);
        goto done;
    }
    rec.agent_id = ar->agent_id;
    rec.agent_key = ar->agent_key;
    rec.owner_key = ar->owner_key;
    rec.display_name = ar->display_name;
    rec.role = PACTUM__V1__ROLE__ROLE_AGENT;
    store_principal(c, &rec, "agent");
done:
    free(pop);
}

/*
 * How many other pacts bind the agent of pact, and how many clauses they
 * hold (their newest versions): the scorer keeps a score per clause, so the
 * total per agent is bounded.
 */
/*
 * What the agent's other pacts already take: how many pacts and clauses, and
 * which of them (if any) sets the agent's governance (governor, PK_ID_MAX + 1).
 */
static pk_status agent_budget(ingest *in, MDB_txn *txn, const pk_pact *pact, size_t *pacts,
                              size_t *clauses, char *governor)
{
    char **ids = NULL;
    size_t n_ids = 0;
    pk_status st = pk_registry_agent_pacts(in->reg, txn, pact->agent, &ids, &n_ids);

    *pacts = 0;
    *clauses = 0;
    governor[0] = '\0';
    for (size_t i = 0; st == PK_OK && i < n_ids; i++) {
        Pactum__V1__PactRecord *other = NULL;
        if (strcmp(ids[i], pact->id) == 0)
            continue; /* the pact being registered replaces its own older version */
        (*pacts)++;
        if (pk_registry_pact(in->reg, txn, ids[i], 0, 0, &other, NULL) == PK_OK) {
            *clauses += other->clauses;
            if (other->governs)
                snprintf(governor, PK_ID_MAX + 1, "%s", other->pact_id);
            pactum__v1__pact_record__free_unpacked(other, NULL);
        }
    }
    pk_registry_ids_free(ids, n_ids);
    return st;
}

/* What registering a pact looks at: the request, the document and the registry's view. */
typedef struct pact_reg {
    Pactum__V1__PactRegistration *pr; /* the request's payload */
    pk_pact *pact;                    /* its document, compiled */
    Pactum__V1__AgentRecord *agent;   /* the agent it binds */
    Pactum__V1__PactRecord *latest;   /* its newest registered version, or NULL */
    uint64_t latest_seq;              /* ... and that version's registry position */
    size_t pacts_bound;               /* the agent's other pacts */
    size_t clauses_bound;             /* ... and their clauses */
    char governor[PK_ID_MAX + 1];     /* the other pact with a governance section, or "" */
} pact_reg;

/* Compile the document; false after refusing it with every problem (the first five). */
static bool compile_document(submit_ctx *c, pact_reg *p)
{
    pk_lint lint = {0};
    char all[900] = "";

    if (pk_pact_parse((const char *)p->pr->document.data, p->pr->document.len, &p->pact, &lint) ==
        PK_OK) {
        pk_lint_free(&lint);
        if (strcmp(p->pact->id, p->pr->pact_id) == 0)
            return true;
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "registration names pact %s but the document's id is %s", p->pr->pact_id,
               p->pact->id);
        return false;
    }
    for (size_t i = 0; i < lint.n && i < 5; i++) {
        strncat(all, lint.msgs[i], sizeof(all) - strlen(all) - 1);
        if (i + 1 < lint.n && i + 1 < 5)
            strncat(all, "; ", sizeof(all) - strlen(all) - 1);
    }
    refuse(c, PACTUM__V1__REASON__REASON_BAD_PACT, "pact %s has %zu problem%s: %s%s",
           p->pr->pact_id, lint.n, lint.n == 1 ? "" : "s", all, lint.n > 5 ? "; ..." : "");
    pk_lint_free(&lint);
    return false;
}

/* The agent, the pact's newest version and the agent's other pacts; false after refusing. */
static bool read_registry(submit_ctx *c, pact_reg *p)
{
    ingest *in = c->r.in;
    MDB_txn *txn = NULL;
    pk_status st;

    if (pk_registry_sync(in->reg, 0) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if ((st = pk_txn_begin(in->store, false, &txn)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        return false;
    }
    st = pk_registry_agent(in->reg, txn, p->pact->agent, &p->agent, NULL);
    if (st == PK_OK)
        st = pk_registry_pact(in->reg, txn, p->pact->id, 0, 0, &p->latest, &p->latest_seq);
    if ((st == PK_OK || st == PK_ENOTFOUND) &&
        agent_budget(in, txn, p->pact, &p->pacts_bound, &p->clauses_bound, p->governor) != PK_OK)
        st = PK_ESTORE;
    pk_txn_abort(txn);
    if (!p->agent) {
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT,
               "pact %s binds agent %s, which is not registered", p->pact->id, p->pact->agent);
        return false;
    }
    if (st != PK_OK && st != PK_ENOTFOUND) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        return false;
    }
    return true;
}

/* Signed by the agent's owner, within the agent's limits, not moving the pact; false after
 * refusing. */
static bool allowed(submit_ctx *c, const pk_signed_msg *env, const pact_reg *p)
{
    const pk_pact *pact = p->pact;

    if (p->agent->owner_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(p->agent->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES))
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "pact %s must be signed by the owner key of agent %s", pact->id, pact->agent);
    else if (!p->latest && p->pacts_bound >= PK_PACTS_PER_AGENT_MAX)
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s is already bound by %d pacts, the most allowed; add the clauses to one "
               "of them instead",
               pact->agent, PK_PACTS_PER_AGENT_MAX);
    else if (p->clauses_bound + pact->n_clauses > PK_CLAUSES_PER_AGENT_MAX)
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s would be bound by %zu clauses across its pacts; at most %d are scored",
               pact->agent, p->clauses_bound + pact->n_clauses, PK_CLAUSES_PER_AGENT_MAX);
    else if (pact->gov.present && p->governor[0])
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s is already governed by pact %s; one pact per agent may have a "
               "governance section",
               pact->agent, p->governor);
    else if (p->latest && strcmp(p->latest->agent_id, pact->agent) != 0)
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "pact %s binds agent %s; a new version cannot move it to %s", pact->id,
               p->latest->agent_id, pact->agent);
    else
        return true;
    return false;
}

/* Store the document as the pact's next version (or answer with the version it already is). */
static void store_version(submit_ctx *c, const pact_reg *p)
{
    const pk_pact *pact = p->pact;
    Pactum__V1__PactRecord rec = PACTUM__V1__PACT_RECORD__INIT;
    Pactum__V1__RegistryRecord rr = PACTUM__V1__REGISTRY_RECORD__INIT;
    uint8_t hash[PK_HASH_BYTES];
    char subject[128], raced[256], hexhash[PK_HASH_BYTES * 2 + 1];

    pk_sha256(p->pr->document.data, p->pr->document.len, hash);
    pk_hex_encode(hash, sizeof(hash), hexhash);
    if (p->latest && p->latest->hash.len == PK_HASH_BYTES &&
        pk_bytes_equal(p->latest->hash.data, hash, PK_HASH_BYTES)) {
        c->receipt.seq = p->latest_seq;
        c->receipt.version = p->latest->version;
        set_receipt_hash(c, hash);
        accepted(c, "pact %s v%u (sha256:%s) is already registered", pact->id, p->latest->version,
                 hexhash);
        return;
    }
    rec.pact_id = pact->id;
    rec.version = p->latest ? p->latest->version + 1 : 1;
    rec.hash.data = hash;
    rec.hash.len = PK_HASH_BYTES;
    rec.agent_id = pact->agent;
    rec.document = p->pr->document;
    rec.owner_key = p->agent->owner_key;
    rec.registered_ms = pk_now_ms();
    rec.submission.data = (uint8_t *)c->r.data;
    rec.submission.len = c->r.len;
    rec.clauses = (uint32_t)pact->n_clauses;
    rec.governs = pact->gov.present;
    rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_PACT;
    rr.pact = &rec;
    snprintf(subject, sizeof(subject), PK_SUBJ_REG_PACT, pact->id);
    snprintf(raced, sizeof(raced),
             "another version of pact %s was registered at the same moment; retry", pact->id);
    if (publish_record(c, subject, &rr, p->latest ? p->latest_seq : 0, raced, "pact")) {
        c->receipt.version = rec.version;
        set_receipt_hash(c, hash);
        accepted(c, "registered pact %s v%u for agent %s (sha256:%s, registry #%llu)", pact->id,
                 rec.version, pact->agent, hexhash, (unsigned long long)c->receipt.seq);
    }
}

static void register_pact(submit_ctx *c, const pk_signed_msg *env, ProtobufCMessage *m)
{
    pact_reg p = {.pr = (Pactum__V1__PactRegistration *)m};

    if (compile_document(c, &p) && read_registry(c, &p) && allowed(c, env, &p))
        store_version(c, &p);
    if (p.latest)
        pactum__v1__pact_record__free_unpacked(p.latest, NULL);
    if (p.agent)
        pactum__v1__agent_record__free_unpacked(p.agent, NULL);
    pk_pact_free(p.pact);
}

static void register_principal(submit_ctx *c, const pk_signed_msg *env, ProtobufCMessage *m)
{
    ingest *in = c->r.in;
    const Pactum__V1__PrincipalRegistration *pr = (const Pactum__V1__PrincipalRegistration *)m;
    Pactum__V1__AgentRecord rec = PACTUM__V1__AGENT_RECORD__INIT;
    uint8_t *pop = NULL;
    size_t poplen = 0;

    if (!in->have_admin) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "this ingest has no admin key (PACTUM_ADMIN_KEY), so no operator, arbiter, "
               "evaluator or human reviewer can be registered");
        goto done;
    }
    if (!pk_bytes_equal(env->signer_key.data, in->admin_pk, PK_PUBKEY_BYTES)) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "principal %s: only the admin key may register operators, arbiters, evaluators "
               "and human reviewers",
               pr->id);
        goto done;
    }
    if (pr->role != PACTUM__V1__ROLE__ROLE_OPERATOR && pr->role != PACTUM__V1__ROLE__ROLE_ARBITER &&
        pr->role != PACTUM__V1__ROLE__ROLE_EVALUATOR && pr->role != PACTUM__V1__ROLE__ROLE_HUMAN &&
        pr->role != PACTUM__V1__ROLE__ROLE_CLIENT && pr->role != PACTUM__V1__ROLE__ROLE_TELEMETRY) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "principal %s: role must be operator, arbiter, evaluator, human, telemetry or "
               "client (agents register with an agent registration)",
               pr->id);
        goto done;
    }
    if (pr->role == PACTUM__V1__ROLE__ROLE_CLIENT) {
        /* an API client holds a token (only its hash is kept), and may register a key too,
         * which signs its webhook subscriptions and nothing else */
        if (pr->token_hash.len != PK_HASH_BYTES || strlen(pr->display_name) > PK_NAME_MAX) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                   "client %s: token_hash must be %d bytes, display_name at most %d", pr->id,
                   PK_HASH_BYTES, PK_NAME_MAX);
            goto done;
        }
        rec.token_hash = pr->token_hash;
        if (!pr->key.len && !pr->key_pop.len)
            goto store;
    }
    if (pr->key.len != PK_PUBKEY_BYTES || pr->key_pop.len != PK_SIG_BYTES ||
        strlen(pr->display_name) > PK_NAME_MAX) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "principal %s: key must be %d bytes, key_pop %d bytes, display_name at most %d",
               pr->id, PK_PUBKEY_BYTES, PK_SIG_BYTES, PK_NAME_MAX);
        goto done;
    }
    if (pk_pop_message(pr->id, in->admin_pk, &pop, &poplen) != PK_OK ||
        pk_verify(pr->key.data, pop, poplen, pr->key_pop.data) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "principal %s: key_pop is not the principal key's signature", pr->id);
        goto done;
    }
    rec.agent_key = pr->key;
store:
    rec.agent_id = pr->id;
    rec.owner_key.data = in->admin_pk;
    rec.owner_key.len = PK_PUBKEY_BYTES;
    rec.display_name = pr->display_name;
    rec.role = pr->role;
    store_principal(c, &rec, pk_role_name(pr->role));
done:
    free(pop);
}

/* Register the decoded payload m, whose id has been checked (and copied to the receipt). */
typedef void (*register_fn)(submit_ctx *c, const pk_signed_msg *env, ProtobufCMessage *m);

/* What may be registered here, by payload type. */
typedef struct reg_kind {
    Pactum__V1__PayloadType type;
    const ProtobufCMessageDescriptor *payload;               /* how it decodes */
    const char *malformed;                                   /* what to say when it does not */
    const char *id_name;                                     /* its id, in messages */
    size_t id_at;                                            /* where the payload keeps the id */
    pk_status (*id_check)(const char *what, const char *id); /* the rule its id follows */
    register_fn fn;
} reg_kind;

static const reg_kind kinds[] = {
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION,
     &pactum__v1__agent_registration__descriptor, "payload is not an AgentRegistration", "agent id",
     offsetof(Pactum__V1__AgentRegistration, agent_id), pk_id_check, register_agent},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION,
     &pactum__v1__pact_registration__descriptor, "payload is not a PactRegistration", "pact id",
     offsetof(Pactum__V1__PactRegistration, pact_id), pk_id_check, register_pact},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PRINCIPAL_REGISTRATION,
     &pactum__v1__principal_registration__descriptor, "payload is not a PrincipalRegistration",
     "principal id", offsetof(Pactum__V1__PrincipalRegistration, id), pk_principal_id_check,
     register_principal},
};

/* Decode the payload, check its id, and hand it to the kind's function. */
static void register_one(submit_ctx *c, const pk_signed_msg *env, const reg_kind *k)
{
    ProtobufCMessage *m =
        protobuf_c_message_unpack(k->payload, NULL, env->payload.len, env->payload.data);
    const char *id;

    if (!m) {
        refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "%s", k->malformed);
        return;
    }
    id = *(char *const *)((const char *)m + k->id_at);
    if (k->id_check(k->id_name, id) != PK_OK)
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
    else if (!(c->receipt.id = strdup(id))) /* the receipt outlives m */
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "out of memory");
    else
        k->fn(c, env, m);
    protobuf_c_message_free_unpacked(m, NULL);
}

pk_status registrar_answer(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen)
{
    static const ingest_req_kind registration = {PK_SUBJ_REG_SUBMIT, "registration", M_REG_OK,
                                                 M_REG_REJECTED, SUBMIT_MAX_BYTES};
    submit_ctx c = {.r = {.in = ctx, .kind = &registration, .data = req, .len = len}};
    pk_signed_msg *env = ingest_open_request(&c.r);
    pk_status st;
    size_t i = 0;

    pactum__v1__registry_receipt__init(&c.receipt);
    c.receipt.id = NULL; /* set to an owned copy by the handlers */
    for (; env && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i].type == env->type) {
            register_one(&c, env, &kinds[i]);
            break;
        }
    }
    if (env && i == sizeof(kinds) / sizeof(kinds[0]))
        refuse(&c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "only agent, principal and pact registrations are accepted here; events go to "
               "pactum.raw.<agent>, governance records to " PK_SUBJ_GOV_SUBMIT);
    c.receipt.ok = c.r.ok;
    c.receipt.reason = c.r.reason;
    c.receipt.message = c.r.text;
    st = pk_pack(&c.receipt.base, out, outlen);
    free(c.receipt.id);
    free(c.receipt.hash.data);
    for (size_t k = 0; k < c.receipt.n_credentials; k++)
        issuer_credential_free(c.receipt.credentials[k]);
    free(c.receipt.credentials);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    return st;
}
