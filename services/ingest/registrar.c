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
    ingest *in;                          /* the service */
    natsMsg *msg;                        /* the request */
    Pactum__V1__RegistryReceipt receipt; /* the answer being built */
    char text[1024];                     /* receipt message */
} submit_ctx;

static void refuse(submit_ctx *c, Pactum__V1__Reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(submit_ctx *c, Pactum__V1__Reason reason, const char *fmt, ...)
{
    va_list ap;
    pk_rejection r = {0};

    va_start(ap, fmt);
    vsnprintf(c->text, sizeof(c->text), fmt, ap);
    va_end(ap);
    c->receipt.ok = false;
    c->receipt.reason = reason;
    c->receipt.message = c->text;
    r.reason = reason;
    r.message = c->text;
    r.subject = PK_SUBJ_REG_SUBMIT;
    r.data = (const uint8_t *)natsMsg_GetData(c->msg);
    r.len = (size_t)natsMsg_GetDataLength(c->msg);
    pk_metric_add(&c->in->m[M_REG_REJECTED], 1);
    ingest_count_reject(c->in, reason);
    PK_INFO("registration refused (%s): %s", pk_reason_name(reason), c->text);
    if (pk_reject_publish(c->in->bus, "ingest", &r, NULL, true) != PK_OK)
        PK_WARN("could not record the refusal: %s", pk_error_msg());
}

static void accepted(submit_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void accepted(submit_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->text, sizeof(c->text), fmt, ap);
    va_end(ap);
    c->receipt.ok = true;
    c->receipt.message = c->text;
    pk_metric_add(&c->in->m[M_REG_OK], 1);
    PK_INFO("%s", c->text);
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

/* Publish rec on subject expecting the subject's last sequence to be last_seq. */
static pk_status publish_record(ingest *in, const char *subject, Pactum__V1__RegistryRecord *rec,
                                uint64_t last_seq, uint64_t *seq)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    pk_status st = pk_pack(&rec->base, &buf, &len);

    if (st != PK_OK)
        return st;
    st = pk_bus_publish_sync(in->bus, subject, buf, len, NULL, true, last_seq, seq, NULL);
    free(buf);
    if (st == PK_OK && pk_registry_sync(in->reg, *seq) != PK_OK)
        PK_WARN("registry copy lags behind: %s", pk_error_msg());
    return st;
}

/*
 * Store rec (an agent, or a principal of another role) unless its id is taken:
 * the same id with the same role and keys answers ok with the first record's
 * position; with anything else, conflict. `what` names it in messages.
 */
static void store_principal(submit_ctx *c, Pactum__V1__AgentRecord *rec, const char *what)
{
    ingest *in = c->in;
    Pactum__V1__AgentRecord *existing = NULL;
    Pactum__V1__RegistryRecord rr = PACTUM__V1__REGISTRY_RECORD__INIT;
    uint64_t seq = 0, existing_seq = 0;
    MDB_txn *txn = NULL;
    char subject[128];
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
        if (existing->role == rec->role && existing->agent_key.len == PK_PUBKEY_BYTES &&
            existing->owner_key.len == PK_PUBKEY_BYTES &&
            pk_bytes_equal(existing->agent_key.data, rec->agent_key.data, PK_PUBKEY_BYTES) &&
            pk_bytes_equal(existing->owner_key.data, rec->owner_key.data, PK_PUBKEY_BYTES)) {
            c->receipt.seq = existing_seq;
            accepted(c, "%s %s is already registered with these keys", what, rec->agent_id);
        } else {
            refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
                   "id %s is already registered with another role or other keys", rec->agent_id);
        }
        pactum__v1__agent_record__free_unpacked(existing, NULL);
        return;
    }
    rec->registered_ms = pk_now_ms();
    rec->submission.data = (uint8_t *)natsMsg_GetData(c->msg);
    rec->submission.len = (size_t)natsMsg_GetDataLength(c->msg);
    rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT;
    rr.agent = rec;
    snprintf(subject, sizeof(subject), PK_SUBJ_REG_AGENT, rec->agent_id);
    st = publish_record(in, subject, &rr, 0, &seq);
    if (st == PK_ECONFLICT) {
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "id %s was registered by someone else at the same moment", rec->agent_id);
    } else if (st != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "could not store the registration: %s",
               pk_error_msg());
    } else {
        c->receipt.seq = seq;
        accepted(c, "registered %s %s (registry #%llu)", what, rec->agent_id,
                 (unsigned long long)seq);
    }
}

static void register_agent(submit_ctx *c, const pk_signed_msg *env)
{
    Pactum__V1__AgentRegistration *ar =
        pactum__v1__agent_registration__unpack(NULL, env->payload.len, env->payload.data);
    Pactum__V1__AgentRecord rec = PACTUM__V1__AGENT_RECORD__INIT;
    uint8_t *pop = NULL;
    size_t poplen = 0;

    if (!ar) {
        refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not an AgentRegistration");
        return;
    }
    if (pk_id_check("agent id", ar->agent_id) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        goto done;
    }
    c->receipt.id = ar->agent_id;
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
    /* receipt.id points into ar: make it a copy that outlives ar */
    if (c->receipt.id)
        c->receipt.id = strdup(c->receipt.id);
    pactum__v1__agent_registration__free_unpacked(ar, NULL);
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

static void register_pact(submit_ctx *c, const pk_signed_msg *env)
{
    ingest *in = c->in;
    Pactum__V1__PactRegistration *pr =
        pactum__v1__pact_registration__unpack(NULL, env->payload.len, env->payload.data);
    Pactum__V1__AgentRecord *agent = NULL;
    Pactum__V1__PactRecord *latest = NULL, rec = PACTUM__V1__PACT_RECORD__INIT;
    Pactum__V1__RegistryRecord rr = PACTUM__V1__REGISTRY_RECORD__INIT;
    pk_lint lint = {0};
    pk_pact *pact = NULL;
    uint8_t hash[PK_HASH_BYTES];
    uint64_t latest_seq = 0, seq = 0;
    size_t pacts_bound = 0, clauses_bound = 0;
    char governor[PK_ID_MAX + 1] = "";
    MDB_txn *txn = NULL;
    char subject[128], hexhash[PK_HASH_BYTES * 2 + 1];
    pk_status st;

    if (!pr) {
        refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not a PactRegistration");
        return;
    }
    if (pk_id_check("pact id", pr->pact_id) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        goto done;
    }
    c->receipt.id = pr->pact_id;
    if (pk_pact_parse((const char *)pr->document.data, pr->document.len, &pact, &lint) != PK_OK) {
        char all[900] = "";
        for (size_t i = 0; i < lint.n && i < 5; i++) {
            strncat(all, lint.msgs[i], sizeof(all) - strlen(all) - 1);
            if (i + 1 < lint.n && i + 1 < 5)
                strncat(all, "; ", sizeof(all) - strlen(all) - 1);
        }
        refuse(c, PACTUM__V1__REASON__REASON_BAD_PACT, "pact %s has %zu problem%s: %s%s",
               pr->pact_id, lint.n, lint.n == 1 ? "" : "s", all, lint.n > 5 ? "; ..." : "");
        goto done;
    }
    if (strcmp(pact->id, pr->pact_id) != 0) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "registration names pact %s but the document's id is %s", pr->pact_id, pact->id);
        goto done;
    }
    if (pk_registry_sync(in->reg, 0) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if ((st = pk_txn_begin(in->store, false, &txn)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        goto done;
    }
    st = pk_registry_agent(in->reg, txn, pact->agent, &agent, NULL);
    if (st == PK_OK)
        st = pk_registry_pact(in->reg, txn, pact->id, 0, 0, &latest, &latest_seq);
    if (st == PK_OK || st == PK_ENOTFOUND)
        st = agent_budget(in, txn, pact, &pacts_bound, &clauses_bound, governor) == PK_OK
                 ? st
                 : PK_ESTORE;
    pk_txn_abort(txn);
    if (!agent) {
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT,
               "pact %s binds agent %s, which is not registered", pact->id, pact->agent);
        goto done;
    }
    if (st != PK_OK && st != PK_ENOTFOUND) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        goto done;
    }
    if (agent->owner_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(agent->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
               "pact %s must be signed by the owner key of agent %s", pact->id, pact->agent);
        goto done;
    }
    if (!latest && pacts_bound >= PK_PACTS_PER_AGENT_MAX) {
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s is already bound by %d pacts, the most allowed; add the clauses to one "
               "of them instead",
               pact->agent, PK_PACTS_PER_AGENT_MAX);
        goto done;
    }
    if (clauses_bound + pact->n_clauses > PK_CLAUSES_PER_AGENT_MAX) {
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s would be bound by %zu clauses across its pacts; at most %d are scored",
               pact->agent, clauses_bound + pact->n_clauses, PK_CLAUSES_PER_AGENT_MAX);
        goto done;
    }
    if (pact->gov.present && governor[0]) {
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "agent %s is already governed by pact %s; one pact per agent may have a "
               "governance section",
               pact->agent, governor);
        goto done;
    }
    pk_sha256(pr->document.data, pr->document.len, hash);
    pk_hex_encode(hash, sizeof(hash), hexhash);
    if (latest) {
        if (strcmp(latest->agent_id, pact->agent) != 0) {
            refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
                   "pact %s binds agent %s; a new version cannot move it to %s", pact->id,
                   latest->agent_id, pact->agent);
            goto done;
        }
        if (latest->hash.len == PK_HASH_BYTES &&
            pk_bytes_equal(latest->hash.data, hash, PK_HASH_BYTES)) {
            c->receipt.seq = latest_seq;
            c->receipt.version = latest->version;
            set_receipt_hash(c, hash);
            accepted(c, "pact %s v%u (sha256:%s) is already registered", pact->id, latest->version,
                     hexhash);
            goto done;
        }
    }
    rec.pact_id = pact->id;
    rec.version = latest ? latest->version + 1 : 1;
    rec.hash.data = hash;
    rec.hash.len = PK_HASH_BYTES;
    rec.agent_id = pact->agent;
    rec.document = pr->document;
    rec.owner_key = agent->owner_key;
    rec.registered_ms = pk_now_ms();
    rec.submission.data = (uint8_t *)natsMsg_GetData(c->msg);
    rec.submission.len = (size_t)natsMsg_GetDataLength(c->msg);
    rec.clauses = (uint32_t)pact->n_clauses;
    rec.governs = pact->gov.present;
    rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_PACT;
    rr.pact = &rec;
    snprintf(subject, sizeof(subject), PK_SUBJ_REG_PACT, pact->id);
    st = publish_record(in, subject, &rr, latest ? latest_seq : 0, &seq);
    if (st == PK_ECONFLICT)
        refuse(c, PACTUM__V1__REASON__REASON_CONFLICT,
               "another version of pact %s was registered at the same moment; retry", pact->id);
    else if (st != PK_OK)
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "could not store the pact: %s",
               pk_error_msg());
    else {
        c->receipt.seq = seq;
        c->receipt.version = rec.version;
        set_receipt_hash(c, hash);
        accepted(c, "registered pact %s v%u for agent %s (sha256:%s, registry #%llu)", pact->id,
                 rec.version, pact->agent, hexhash, (unsigned long long)seq);
    }
done:
    if (c->receipt.id)
        c->receipt.id = strdup(c->receipt.id);
    if (latest)
        pactum__v1__pact_record__free_unpacked(latest, NULL);
    if (agent)
        pactum__v1__agent_record__free_unpacked(agent, NULL);
    pk_pact_free(pact);
    pk_lint_free(&lint);
    pactum__v1__pact_registration__free_unpacked(pr, NULL);
}

static void register_principal(submit_ctx *c, const pk_signed_msg *env)
{
    ingest *in = c->in;
    Pactum__V1__PrincipalRegistration *pr =
        pactum__v1__principal_registration__unpack(NULL, env->payload.len, env->payload.data);
    Pactum__V1__AgentRecord rec = PACTUM__V1__AGENT_RECORD__INIT;
    uint8_t *pop = NULL;
    size_t poplen = 0;

    if (!pr) {
        refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not a PrincipalRegistration");
        return;
    }
    if (pk_id_check("principal id", pr->id) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        goto done;
    }
    c->receipt.id = pr->id;
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
        pr->role != PACTUM__V1__ROLE__ROLE_EVALUATOR && pr->role != PACTUM__V1__ROLE__ROLE_HUMAN) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "principal %s: role must be operator, arbiter, evaluator or human (agents register "
               "with an agent registration)",
               pr->id);
        goto done;
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
    rec.agent_id = pr->id;
    rec.agent_key = pr->key;
    rec.owner_key.data = in->admin_pk;
    rec.owner_key.len = PK_PUBKEY_BYTES;
    rec.display_name = pr->display_name;
    rec.role = pr->role;
    store_principal(c, &rec, pk_role_name(pr->role));
done:
    free(pop);
    if (c->receipt.id)
        c->receipt.id = strdup(c->receipt.id);
    pactum__v1__principal_registration__free_unpacked(pr, NULL);
}

static void on_submit(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    submit_ctx c = {.in = closure, .msg = msg};
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    pk_signed_msg *env = NULL;
    uint8_t *out = NULL;
    size_t outlen = 0;
    pk_status st;

    pactum__v1__registry_receipt__init(&c.receipt);
    c.receipt.id = NULL; /* set to an owned copy by the handlers */
    c.receipt.message = c.text;
    if (len > SUBMIT_MAX_BYTES) {
        refuse(&c, PACTUM__V1__REASON__REASON_OVERSIZED,
               "registration is %zu bytes; the limit is %d", len, SUBMIT_MAX_BYTES);
    } else if ((st = pk_envelope_open(data, len, &env)) != PK_OK) {
        refuse(&c,
               st == PK_EINVAL ? PACTUM__V1__REASON__REASON_UNSUPPORTED_VERSION
                               : PACTUM__V1__REASON__REASON_MALFORMED,
               "%s", pk_error_msg());
    } else if (pk_envelope_verify(env, env->signer_key.data) != PK_OK) {
        refuse(&c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "signature does not verify under the signer key it names");
    } else if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION) {
        register_agent(&c, env);
    } else if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION) {
        register_pact(&c, env);
    } else if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PRINCIPAL_REGISTRATION) {
        register_principal(&c, env);
    } else {
        refuse(&c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "only agent, principal and pact registrations are accepted here; events go to "
               "pactum.raw.<agent>, governance records to " PK_SUBJ_GOV_SUBMIT);
    }
    if (natsMsg_GetReply(msg) && pk_pack(&c.receipt.base, &out, &outlen) == PK_OK) {
        natsConnection_Publish(nc, natsMsg_GetReply(msg), out, (int)outlen);
        free(out);
    }
    free(c.receipt.id);
    free(c.receipt.hash.data);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    natsMsg_Destroy(msg);
}

pk_status registrar_start(ingest *in)
{
    natsStatus s = natsConnection_QueueSubscribe(&in->submit, in->bus->nc, PK_SUBJ_REG_SUBMIT,
                                                 "ingest", on_submit, in);

    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, "subscribe to " PK_SUBJ_REG_SUBMIT);
}

void registrar_stop(ingest *in)
{
    if (in->submit) {
        natsSubscription_Unsubscribe(in->submit);
        natsSubscription_Destroy(in->submit);
        in->submit = NULL;
    }
}
