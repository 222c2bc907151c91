#include "pk/codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char SIG_DOMAIN[] = "pactum/v1\n";
static const char POP_DOMAIN[] = "pactum/v1/pop\n";

pk_status pk_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);

    if (!buf)
        return PK_ERR(PK_ENOMEM, "cannot allocate %zu bytes to encode %s", n,
                      msg->descriptor->name);
    protobuf_c_message_pack(msg, buf);
    *out = buf;
    *len = n;
    return PK_OK;
}

/* domain || type (big-endian u32) || payload, in a new buffer. */
static uint8_t *signing_input(uint32_t type, const uint8_t *payload, size_t len, size_t *outlen)
{
    size_t dl = sizeof(SIG_DOMAIN) - 1;
    uint8_t *buf = malloc(dl + 4 + len);

    if (!buf)
        return NULL;
    memcpy(buf, SIG_DOMAIN, dl);
    buf[dl] = (uint8_t)(type >> 24);
    buf[dl + 1] = (uint8_t)(type >> 16);
    buf[dl + 2] = (uint8_t)(type >> 8);
    buf[dl + 3] = (uint8_t)type;
    if (len)
        memcpy(buf + dl + 4, payload, len);
    *outlen = dl + 4 + len;
    return buf;
}

pk_status pk_envelope_seal(Pactum__V1__PayloadType type, const uint8_t *payload, size_t len,
                           const char *signer_id, const pk_keypair *kp, uint8_t **out,
                           size_t *outlen)
{
    Pactum__V1__Signed env = PACTUM__V1__SIGNED__INIT;
    uint8_t sig[PK_SIG_BYTES];
    size_t inlen;
    uint8_t *in = signing_input((uint32_t)type, payload, len, &inlen);
    pk_status st;

    if (!in)
        return PK_ERR(PK_ENOMEM, "cannot allocate signing input");
    pk_sign(kp, in, inlen, sig);
    free(in);
    env.version = PK_ENVELOPE_VERSION;
    env.type = type;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    env.signer_id = (char *)(signer_id ? signer_id : "");
    env.signer_key.data = (uint8_t *)kp->pk;
    env.signer_key.len = PK_PUBKEY_BYTES;
    env.signature.data = sig;
    env.signature.len = PK_SIG_BYTES;
    st = pk_pack(&env.base, out, outlen);
    return st;
}

pk_status pk_envelope_open(const uint8_t *buf, size_t len, pk_signed_msg **out)
{
    pk_signed_msg *env = pactum__v1__signed__unpack(NULL, len, buf);

    if (!env)
        return PK_ERR(PK_EDECODE, "not a Pactum envelope: protobuf decoding failed (%zu bytes)",
                      len);
    if (env->version != PK_ENVELOPE_VERSION) {
        unsigned v = env->version;
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EINVAL, "envelope version %u is not supported (this build reads %d)", v,
                      PK_ENVELOPE_VERSION);
    }
    if (env->signer_key.len != PK_PUBKEY_BYTES || env->signature.len != PK_SIG_BYTES) {
        size_t kl = env->signer_key.len, sl = env->signature.len;
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EDECODE,
                      "envelope signer_key must be %d bytes and signature %d bytes, got %zu and "
                      "%zu",
                      PK_PUBKEY_BYTES, PK_SIG_BYTES, kl, sl);
    }
    if (env->type <= PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_UNSPECIFIED ||
        env->type > PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT) {
        int t = (int)env->type;
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EDECODE, "envelope payload type %d is unknown", t);
    }
    *out = env;
    return PK_OK;
}

pk_status pk_envelope_verify(const pk_signed_msg *env, const uint8_t pk[PK_PUBKEY_BYTES])
{
    size_t inlen;
    uint8_t *in = signing_input((uint32_t)env->type, env->payload.data, env->payload.len, &inlen);
    pk_status st;

    if (!in)
        return PK_ERR(PK_ENOMEM, "cannot allocate signing input");
    if (env->signature.len != PK_SIG_BYTES)
        st = PK_EBADSIG;
    else
        st = pk_verify(pk, in, inlen, env->signature.data);
    free(in);
    return st;
}

pk_status pk_pop_message(const char *agent_id, const uint8_t owner_key[PK_PUBKEY_BYTES],
                         uint8_t **out, size_t *len)
{
    size_t dl = sizeof(POP_DOMAIN) - 1, il = strlen(agent_id);
    uint8_t *buf = malloc(dl + il + 1 + PK_PUBKEY_BYTES);

    if (!buf)
        return PK_ERR(PK_ENOMEM, "cannot allocate proof-of-possession input");
    memcpy(buf, POP_DOMAIN, dl);
    memcpy(buf + dl, agent_id, il);
    buf[dl + il] = '\n';
    memcpy(buf + dl + il + 1, owner_key, PK_PUBKEY_BYTES);
    *out = buf;
    *len = dl + il + 1 + PK_PUBKEY_BYTES;
    return PK_OK;
}

pk_status pk_id_check(const char *what, const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0)
        return PK_ERR(PK_EINVAL, "%s is missing", what);
    if (n > PK_ID_MAX)
        return PK_ERR(PK_EINVAL, "%s '%.20s...' is %zu characters; at most %d", what, id, n,
                      PK_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return PK_ERR(PK_EINVAL,
                          "%s '%s' has '%c' at position %zu; use letters, digits, '_' and '-'",
                          what, id, c, i + 1);
    }
    return PK_OK;
}

pk_status pk_principal_id_check(const char *what, const char *id)
{
    if (!id || id[0] != '@')
        return PK_ERR(PK_EINVAL,
                      "%s '%s' must begin with '@' (like @ops): principals have ids no agent can "
                      "take",
                      what, id ? id : "");
    if (strlen(id) > PK_ID_MAX)
        return PK_ERR(PK_EINVAL, "%s '%.20s...' is %zu characters; at most %d", what, id,
                      strlen(id), PK_ID_MAX);
    return pk_id_check(what, id + 1);
}

pk_status pk_signer_id_check(const char *what, const char *id)
{
    return id && id[0] == '@' ? pk_principal_id_check(what, id) : pk_id_check(what, id);
}

pk_status pk_event_id_check(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0)
        return PK_ERR(PK_EINVAL, "event_id is missing");
    if (n > PK_EVENT_ID_MAX)
        return PK_ERR(PK_EINVAL, "event_id is %zu characters; at most %d", n, PK_EVENT_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return PK_ERR(PK_EINVAL, "event_id '%.40s' has a character outside [A-Za-z0-9._:-]",
                          id);
    }
    return PK_OK;
}

static pk_status check_name(const char *field, const char *v, size_t max, bool required)
{
    size_t n = v ? strlen(v) : 0;

    if (required && n == 0)
        return PK_ERR(PK_EINVAL, "%s is missing", field);
    if (n > max)
        return PK_ERR(PK_EINVAL, "%s is %zu bytes; at most %zu", field, n, max);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] < 0x20)
            return PK_ERR(PK_EINVAL, "%s holds a control character at byte %zu", field, i + 1);
    }
    return PK_OK;
}

pk_status pk_event_check(const pk_event_msg *ev)
{
    pk_status st;

    if ((st = pk_event_id_check(ev->event_id)) != PK_OK)
        return st;
    if ((st = pk_id_check("agent_id", ev->agent_id)) != PK_OK)
        return st;
    if (ev->engagement_id[0] && (st = pk_id_check("engagement_id", ev->engagement_id)) != PK_OK)
        return st;
    if (ev->ts_ms <= 0)
        return PK_ERR(PK_EINVAL, "event %s: ts_ms must be a positive Unix time in ms, got %lld",
                      ev->event_id, (long long)ev->ts_ms);
    if ((st = check_name("kind", ev->kind, PK_NAME_MAX, true)) != PK_OK ||
        (st = check_name("action", ev->action, PK_NAME_MAX, false)) != PK_OK ||
        (st = check_name("tool", ev->tool, PK_NAME_MAX, false)) != PK_OK ||
        (st = check_name("resource", ev->resource, PK_VALUE_MAX, false)) != PK_OK ||
        (st = check_name("currency", ev->currency, 8, false)) != PK_OK)
        return st;
    if (!isfinite(ev->amount) || ev->amount < 0)
        return PK_ERR(PK_EINVAL, "event %s: amount must be a finite number >= 0", ev->event_id);
    if (ev->n_metrics + ev->n_labels > PK_EVENT_FIELDS_MAX)
        return PK_ERR(PK_EINVAL, "event %s has %zu metrics and labels; at most %d", ev->event_id,
                      ev->n_metrics + ev->n_labels, PK_EVENT_FIELDS_MAX);
    for (size_t i = 0; i < ev->n_metrics; i++) {
        if ((st = check_name("metric name", ev->metrics[i]->name, PK_NAME_MAX, true)) != PK_OK)
            return st;
        if (!isfinite(ev->metrics[i]->value))
            return PK_ERR(PK_EINVAL, "event %s: metric %s is not a finite number", ev->event_id,
                          ev->metrics[i]->name);
    }
    for (size_t i = 0; i < ev->n_labels; i++) {
        if ((st = check_name("label name", ev->labels[i]->name, PK_NAME_MAX, true)) != PK_OK ||
            (st = check_name("label value", ev->labels[i]->value, PK_VALUE_MAX, false)) != PK_OK)
            return st;
    }
    return PK_OK;
}

bool pk_event_metric(const pk_event_msg *ev, const char *name, double *out)
{
    for (size_t i = 0; i < ev->n_metrics; i++) {
        if (strcmp(ev->metrics[i]->name, name) == 0) {
            *out = ev->metrics[i]->value;
            return true;
        }
    }
    return false;
}

const char *pk_event_label(const pk_event_msg *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_labels; i++) {
        if (strcmp(ev->labels[i]->name, name) == 0)
            return ev->labels[i]->value;
    }
    return NULL;
}

static const char *const source_names[] = {"unspecified", "self",  "peer",
                                           "evaluator",   "human", "telemetry"};
static const char *const severity_names[] = {"unspecified", "info", "low",
                                             "medium",      "high", "critical"};
static const char *const outcome_names[] = {"unspecified", "pass", "fail", "insufficient", "stale"};
static const char *const tier_names[] = {"unspecified", "trusted",   "standard", "watch",
                                         "restricted",  "contained", "suspended"};
static const char *const reason_names[] = {"unspecified",
                                           "malformed",
                                           "oversized",
                                           "bad_signature",
                                           "unknown_signer",
                                           "subject_mismatch",
                                           "invalid_field",
                                           "duplicate",
                                           "too_old",
                                           "too_new",
                                           "unknown_agent",
                                           "not_authorized",
                                           "bad_pact",
                                           "conflict",
                                           "unsupported_version",
                                           "internal",
                                           "rate_limited",
                                           "too_many_disputes",
                                           "too_many_overrides",
                                           "no_such_dispute",
                                           "no_such_engagement",
                                           "too_many_engagements"};

_Static_assert(sizeof(reason_names) / sizeof(reason_names[0]) ==
                   PACTUM__V1__REASON__REASON_TOO_MANY_ENGAGEMENTS + 1,
               "a name for every Reason");

static const char *const role_names[] = {"unspecified", "agent", "operator", "arbiter",
                                         "evaluator",   "human", "client",   "telemetry"};
_Static_assert(sizeof(role_names) / sizeof(role_names[0]) == PACTUM__V1__ROLE__ROLE_TELEMETRY + 1,
               "a name for every Role");

#define NAME_OF(table, v)                                                                          \
    ((unsigned)(v) < sizeof(table) / sizeof(table[0]) ? table[(unsigned)(v)] : "unknown")

#define NAME_FN(fn, type, table)                                                                   \
    const char *fn(type v)                                                                         \
    {                                                                                              \
        return NAME_OF(table, v);                                                                  \
    }

NAME_FN(pk_source_name, Pactum__V1__Source, source_names)
NAME_FN(pk_severity_name, Pactum__V1__Severity, severity_names)
NAME_FN(pk_outcome_name, Pactum__V1__Outcome, outcome_names)
NAME_FN(pk_tier_name, Pactum__V1__Tier, tier_names)
NAME_FN(pk_reason_name, Pactum__V1__Reason, reason_names)
NAME_FN(pk_role_name, Pactum__V1__Role, role_names)

static int parse_name(const char *const *table, size_t n, const char *name)
{
    for (size_t i = 1; name && i < n; i++) {
        if (strcmp(table[i], name) == 0)
            return (int)i;
    }
    return 0;
}

Pactum__V1__Severity pk_severity_parse(const char *name)
{
    return (Pactum__V1__Severity)parse_name(severity_names, 6, name);
}

Pactum__V1__Tier pk_tier_parse(const char *name)
{
    return (Pactum__V1__Tier)parse_name(tier_names, 7, name);
}

Pactum__V1__Source pk_source_parse(const char *name)
{
    return (Pactum__V1__Source)parse_name(source_names, 5, name);
}

Pactum__V1__Role pk_role_parse(const char *name)
{
    return (Pactum__V1__Role)parse_name(role_names, PK_NELEM(role_names), name);
}
