/*
 * governance - answers pactum.governance.submit: overrides and
 * acknowledgements signed by operators, disputes signed by an agent's owner
 * or a registered counterparty, rulings signed by arbiters. Accepted records
 * go to pactum.verdicts.<p>.<agent>.g, where the scorer applies them in
 * order with the verdicts of the same agent.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pk/clock.h"
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
    ingest *in;                            /* the service */
    natsMsg *msg;                          /* the request */
    Pactum__V1__GovernanceReceipt receipt; /* the answer */
    char text[1024];                       /* receipt message */
    char id[PK_ID_MAX + 1];                /* record id */
    char **filled;                         /* the field the service filled in, if any */
    char *filled_was;                      /* what the request held there (freed with it) */
} gov_ctx;

/* Set the field the service fills in (who signed), keeping the request's value to free. */
static void fill(gov_ctx *c, char **field, const char *value)
{
    c->filled = field;
    c->filled_was = *field;
    *field = (char *)value;
}

static void refuse(gov_ctx *c, Pactum__V1__Reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(gov_ctx *c, Pactum__V1__Reason reason, const char *fmt, ...)
{
    va_list ap;
    pk_rejection r = {0};

    va_start(ap, fmt);
    vsnprintf(c->text, sizeof(c->text), fmt, ap);
    va_end(ap);
    c->receipt.ok = false;
    c->receipt.reason = reason;
    r.reason = reason;
    r.message = c->text;
    r.subject = PK_SUBJ_GOV_SUBMIT;
    r.data = (const uint8_t *)natsMsg_GetData(c->msg);
    r.len = (size_t)natsMsg_GetDataLength(c->msg);
    pk_metric_add(&c->in->m[M_GOV_REJECTED], 1);
    ingest_count_reject(c->in, reason);
    PK_INFO("governance record refused (%s): %s", pk_reason_name(reason), c->text);
    if (pk_reject_publish(c->in->bus, "ingest", &r, NULL, true) != PK_OK)
        PK_WARN("could not record the refusal: %s", pk_error_msg());
}

static bool text_ok(gov_ctx *c, const char *what, const char *s, bool required)
{
    size_t n = strlen(s);

    if (required && n == 0) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s is mandatory", what);
        return false;
    }
    if (n > TEXT_MAX) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s is %zu bytes; at most %d", what, n,
               TEXT_MAX);
        return false;
    }
    return true;
}

/* The registered agent id, or refuse. */
static bool agent_known(gov_ctx *c, MDB_txn *txn, const char *agent, Pactum__V1__AgentRecord **out)
{
    if (pk_id_check("agent id", agent) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
        return false;
    }
    if (pk_registry_agent(c->in->reg, txn, agent, out, NULL) != PK_OK ||
        (*out)->role != PACTUM__V1__ROLE__ROLE_AGENT) {
        refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT, "agent '%s' is not registered", agent);
        return false;
    }
    return true;
}

static const char *kind_name(Pactum__V1__PayloadType t)
{
    switch (t) {
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_OVERRIDE:
        return "override";
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DISPUTE:
        return "dispute";
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_RULING:
        return "ruling";
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ACK:
        return "ack";
    default:
        return "record";
    }
}

/* Check a record and fill in what ingest vouches for; false if refused. */
static bool check_record(gov_ctx *c, MDB_txn *txn, const pk_signed_msg *env,
                         const Pactum__V1__AgentRecord *signer, Pactum__V1__GovernanceRecord *rec,
                         const char **agent)
{
    Pactum__V1__AgentRecord *subject = NULL;
    int64_t now = pk_now_ms(), signed_ms = 0;
    bool ok = false;
    const char *id = NULL;

    switch (env->type) {
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_OVERRIDE: {
        Pactum__V1__Override *o = rec->override =
            pactum__v1__override__unpack(NULL, env->payload.len, env->payload.data);
        rec->record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE;
        if (!o) {
            refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not an Override");
            break;
        }
        signed_ms = o->signed_ms;
        id = o->override_id;
        *agent = o->agent_id;
        if (!signer || signer->role != PACTUM__V1__ROLE__ROLE_OPERATOR) {
            refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
                   "overrides must be signed by a registered operator");
            break;
        }
        if (pk_id_check("override id", id) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
            break;
        }
        if (!agent_known(c, txn, o->agent_id, &subject) || !text_ok(c, "reason", o->reason, true))
            break;
        if (o->expires_ms <= now || o->expires_ms > now + OVERRIDE_MAX_MS) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                   "override %s: expiry is mandatory and must lie within the next 30 days", id);
            break;
        }
        if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER) {
            if (o->tier <= PACTUM__V1__TIER__TIER_UNSPECIFIED ||
                o->tier > PACTUM__V1__TIER__TIER_SUSPENDED || o->n_actions) {
                refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                       "override %s: a tier override names one tier and no actions", id);
                break;
            }
        } else if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW ||
                   o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY) {
            bool good = o->n_actions > 0 && o->n_actions <= 8;
            for (size_t i = 0; good && i < o->n_actions; i++) {
                const char *star = strchr(o->actions[i], '*');
                good = *o->actions[i] && strlen(o->actions[i]) <= PK_NAME_MAX &&
                       (!star || star[1] == '\0');
            }
            if (!good) {
                refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                       "override %s: allow and deny name 1 to 8 actions (exact, or ending in '*')",
                       id);
                break;
            }
        } else {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                   "override %s: kind must be tier, allow or deny", id);
            break;
        }
        fill(c, &o->operator_id, env->signer_id);
        o->created_ms = now;
        ok = true;
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ACK: {
        Pactum__V1__Ack *a = rec->ack =
            pactum__v1__ack__unpack(NULL, env->payload.len, env->payload.data);
        rec->record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_ACK;
        if (!a) {
            refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not an Ack");
            break;
        }
        signed_ms = a->signed_ms;
        id = a->ack_id;
        *agent = a->agent_id;
        if (!signer || signer->role != PACTUM__V1__ROLE__ROLE_OPERATOR) {
            refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
                   "acknowledgements must be signed by a registered operator");
            break;
        }
        if (pk_id_check("ack id", id) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
            break;
        }
        if (!agent_known(c, txn, a->agent_id, &subject) || !text_ok(c, "note", a->note, false))
            break;
        fill(c, &a->operator_id, env->signer_id);
        a->acked_ms = now;
        ok = true;
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DISPUTE: {
        Pactum__V1__Dispute *d = rec->dispute =
            pactum__v1__dispute__unpack(NULL, env->payload.len, env->payload.data);
        rec->record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE;
        if (!d) {
            refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not a Dispute");
            break;
        }
        signed_ms = d->signed_ms;
        id = d->dispute_id;
        *agent = d->agent_id;
        if (pk_id_check("dispute id", id) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
            break;
        }
        if (!agent_known(c, txn, d->agent_id, &subject) || !text_ok(c, "reason", d->reason, true) ||
            !text_ok(c, "counter_evidence", d->counter_evidence, false))
            break;
        if (!d->verdict_vseq && !d->event_id[0]) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
                   "dispute %s names neither a verdict nor an event", id);
            break;
        }
        if (d->event_id[0] && pk_event_id_check(d->event_id) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
            break;
        }
        /* the agent's owner, or another registered agent (a counterparty) */
        if (!env->signer_id[0] && subject->owner_key.len == PK_PUBKEY_BYTES &&
            pk_bytes_equal(subject->owner_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
            fill(c, &d->opened_by, "owner");
        } else if (signer && signer->role == PACTUM__V1__ROLE__ROLE_AGENT &&
                   strcmp(env->signer_id, d->agent_id) != 0) {
            fill(c, &d->opened_by, env->signer_id);
        } else {
            refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
                   "dispute %s: only the owner of %s or a registered counterparty may open it", id,
                   d->agent_id);
            break;
        }
        d->opened_ms = now;
        ok = true;
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_RULING: {
        Pactum__V1__Ruling *r = rec->ruling =
            pactum__v1__ruling__unpack(NULL, env->payload.len, env->payload.data);
        rec->record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING;
        if (!r) {
            refuse(c, PACTUM__V1__REASON__REASON_MALFORMED, "payload is not a Ruling");
            break;
        }
        signed_ms = r->signed_ms;
        id = r->dispute_id;
        *agent = r->agent_id;
        if (!signer || signer->role != PACTUM__V1__ROLE__ROLE_ARBITER) {
            refuse(c, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED,
                   "rulings must be signed by a registered arbiter");
            break;
        }
        if (pk_id_check("dispute id", id) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", pk_error_msg());
            break;
        }
        if (!agent_known(c, txn, r->agent_id, &subject) || !text_ok(c, "reason", r->reason, true))
            break;
        fill(c, &r->arbiter_id, env->signer_id);
        r->ruled_ms = now;
        ok = true;
        break;
    }
    default:
        refuse(c, PACTUM__V1__REASON__REASON_INVALID_FIELD,
               "only overrides, disputes, rulings and acknowledgements are accepted here");
        break;
    }
    if (ok && (signed_ms < now - SIGNED_WINDOW_MS || signed_ms > now + SIGNED_WINDOW_MS)) {
        refuse(c,
               signed_ms < now - SIGNED_WINDOW_MS ? PACTUM__V1__REASON__REASON_TOO_OLD
                                                  : PACTUM__V1__REASON__REASON_TOO_NEW,
               "%s %s was signed at %lld ms, %lld s from now; records are accepted within "
               "5 minutes of signing (is a clock wrong, or is this a replay?)",
               kind_name(env->type), id, (long long)signed_ms, (long long)(signed_ms - now) / 1000);
        ok = false;
    }
    if (id)
        snprintf(c->id, sizeof(c->id), "%.64s", id);
    if (subject)
        pactum__v1__agent_record__free_unpacked(subject, NULL);
    return ok;
}

static void handle(gov_ctx *c, const pk_signed_msg *env)
{
    ingest *in = c->in;
    Pactum__V1__AgentRecord *signer = NULL;
    Pactum__V1__GovernanceRecord rec = PACTUM__V1__GOVERNANCE_RECORD__INIT;
    MDB_txn *txn = NULL;
    const char *agent = NULL;
    char subject[160], msg_id[2 * PK_ID_MAX + 16];
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    bool dup = false;
    pk_status st;

    if (pk_registry_refresh(in->reg, 100) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if ((st = pk_txn_begin(in->store, false, &txn)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        return;
    }
    /* Signed by a registered principal (its key on record), or by an owner
     * key named in the envelope (disputes only). */
    if (env->signer_id[0]) {
        if (pk_registry_agent(in->reg, txn, env->signer_id, &signer, NULL) != PK_OK) {
            refuse(c, PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER, "signer '%s' is not registered",
                   env->signer_id);
            goto done;
        }
        if (signer->agent_key.len != PK_PUBKEY_BYTES ||
            !pk_bytes_equal(signer->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
            refuse(c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
                   "signed with a key that is not the registered key of '%s'", env->signer_id);
            goto done;
        }
    }
    if (!check_record(c, txn, env, signer, &rec, &agent))
        goto done;
    pk_txn_abort(txn); /* not held over the round trips below */
    txn = NULL;
    rec.submission.data = (uint8_t *)natsMsg_GetData(c->msg);
    rec.submission.len = (size_t)natsMsg_GetDataLength(c->msg);
    if ((st = pk_pack(&rec.base, &buf, &len)) != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "%s", pk_error_msg());
        goto done;
    }
    snprintf(subject, sizeof(subject), PK_SUBJ_GOVERNANCE, pk_partition_of(agent, in->partitions),
             agent);
    /* the same record submitted twice is stored once */
    snprintf(msg_id, sizeof(msg_id), "%s:%s:%s", kind_name(env->type), agent, c->id);
    st = pk_bus_publish_sync(in->bus, subject, buf, len, msg_id, false, 0, &seq, &dup);
    if (st != PK_OK) {
        refuse(c, PACTUM__V1__REASON__REASON_INTERNAL, "could not store the record: %s",
               pk_error_msg());
        goto done;
    }
    c->receipt.ok = true;
    c->receipt.seq = seq;
    snprintf(c->text, sizeof(c->text), "%s %s for agent %s %s (PACTUM_VERDICTS #%llu)",
             kind_name(env->type), c->id, agent, dup ? "was already recorded" : "recorded",
             (unsigned long long)seq);
    pk_metric_add(&in->m[M_GOV_OK], 1);
    PK_INFO("%s", c->text);
done:
    /* the filled-in field points into env or a static string: give back the request's own */
    if (c->filled)
        *c->filled = c->filled_was;
    if (rec.override) /* whichever record it is: they share the oneof */
        protobuf_c_message_free_unpacked(&rec.override->base, NULL);
    free(buf);
    if (signer)
        pactum__v1__agent_record__free_unpacked(signer, NULL);
    pk_txn_abort(txn);
}

static void on_govern(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    gov_ctx c = {.in = closure, .msg = msg};
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    pk_signed_msg *env = NULL;
    uint8_t *out = NULL;
    size_t outlen = 0;
    pk_status st;

    pactum__v1__governance_receipt__init(&c.receipt);
    c.receipt.message = c.text;
    c.receipt.id = c.id;
    if (len > GOV_MAX_BYTES) {
        refuse(&c, PACTUM__V1__REASON__REASON_OVERSIZED, "record is %zu bytes; the limit is %d",
               len, GOV_MAX_BYTES);
    } else if ((st = pk_envelope_open(data, len, &env)) != PK_OK) {
        refuse(&c,
               st == PK_EINVAL ? PACTUM__V1__REASON__REASON_UNSUPPORTED_VERSION
                               : PACTUM__V1__REASON__REASON_MALFORMED,
               "%s", pk_error_msg());
    } else if (pk_envelope_verify(env, env->signer_key.data) != PK_OK) {
        refuse(&c, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
               "signature does not verify under the signer key it names");
    } else {
        handle(&c, env);
    }
    if (natsMsg_GetReply(msg) && pk_pack(&c.receipt.base, &out, &outlen) == PK_OK) {
        natsConnection_Publish(nc, natsMsg_GetReply(msg), out, (int)outlen);
        free(out);
    }
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    natsMsg_Destroy(msg);
}

pk_status governance_start(ingest *in)
{
    natsStatus s = natsConnection_QueueSubscribe(&in->govern, in->bus->nc, PK_SUBJ_GOV_SUBMIT,
                                                 "ingest", on_govern, in);

    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, "subscribe to " PK_SUBJ_GOV_SUBMIT);
}

void governance_stop(ingest *in)
{
    if (in->govern) {
        natsSubscription_Unsubscribe(in->govern);
        natsSubscription_Destroy(in->govern);
        in->govern = NULL;
    }
}
