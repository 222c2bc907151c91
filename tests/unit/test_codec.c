/* The signed envelope and the shape rules for ids and events. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/codec.h"

static pk_keypair kp, other;

static void init(void)
{
    uint8_t seed[32];

    cr_assert_eq(pk_crypto_init(), PK_OK);
    memset(seed, 1, sizeof(seed));
    cr_assert_eq(pk_keypair_from_seed(&kp, seed), PK_OK);
    memset(seed, 2, sizeof(seed));
    cr_assert_eq(pk_keypair_from_seed(&other, seed), PK_OK);
}

TestSuite(envelope, .init = init);
TestSuite(shape, .init = init);

static uint8_t *seal(const char *payload, Pactum__V1__PayloadType type, size_t *len)
{
    uint8_t *out = NULL;

    cr_assert_eq(
        pk_envelope_seal(type, (const uint8_t *)payload, strlen(payload), "bot-1", &kp, &out, len),
        PK_OK);
    return out;
}

/* An event batch envelope around payload, sealed by kp and opened again; caller frees. */
static pk_signed_msg *sealed_and_opened(const char *payload)
{
    size_t len;
    uint8_t *buf = seal(payload, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, &len);
    pk_signed_msg *env = NULL;

    cr_assert_eq(pk_envelope_open(buf, len, &env), PK_OK);
    free(buf);
    return env;
}

Test(envelope, sealed_envelope_opens_and_verifies)
{
    pk_signed_msg *env = sealed_and_opened("hello");

    cr_assert_str_eq(env->signer_id, "bot-1");
    cr_assert_eq(env->payload.len, 5);
    cr_assert_eq(pk_envelope_verify(env, kp.pk), PK_OK);
    cr_assert_eq(pk_envelope_verify(env, other.pk), PK_EBADSIG, "another agent's key");
    pactum__v1__signed__free_unpacked(env, NULL);
}

Test(envelope, no_truncation_ever_verifies)
{
    size_t len;
    uint8_t *buf =
        seal("a payload of some length", PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, &len);

    for (size_t cut = 0; cut < len; cut++) {
        pk_signed_msg *env = NULL;
        if (pk_envelope_open(buf, cut, &env) == PK_OK) {
            cr_assert_neq(pk_envelope_verify(env, kp.pk), PK_OK, "cut at %zu verified", cut);
            pactum__v1__signed__free_unpacked(env, NULL);
        }
    }
    free(buf);
}

Test(envelope, every_flipped_payload_byte_fails_verification)
{
    pk_signed_msg *env = sealed_and_opened("tamper-evident");

    for (size_t i = 0; i < env->payload.len; i++) {
        env->payload.data[i] ^= 0x01;
        cr_assert_eq(pk_envelope_verify(env, kp.pk), PK_EBADSIG, "byte %zu", i);
        env->payload.data[i] ^= 0x01;
    }
    pactum__v1__signed__free_unpacked(env, NULL);
}

Test(envelope, signature_does_not_carry_over_to_another_payload_type)
{
    pk_signed_msg *env = sealed_and_opened("x");

    env->type = PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION;
    cr_assert_eq(pk_envelope_verify(env, kp.pk), PK_EBADSIG);
    pactum__v1__signed__free_unpacked(env, NULL);
}

Test(envelope, garbage_wrong_sizes_and_versions_are_refused)
{
    Pactum__V1__Signed e = PACTUM__V1__SIGNED__INIT;
    uint8_t key[32] = {0}, sig[64] = {0}, *buf = NULL;
    size_t len;
    pk_signed_msg *env = NULL;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};

    cr_assert_eq(pk_envelope_open(garbage, sizeof(garbage), &env), PK_EDECODE);
    e.version = 1;
    e.type = PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH;
    e.signer_key.data = key;
    e.signer_key.len = 31;
    e.signature.data = sig;
    e.signature.len = 64;
    cr_assert_eq(pk_pack(&e.base, &buf, &len), PK_OK);
    cr_assert_eq(pk_envelope_open(buf, len, &env), PK_EDECODE, "31-byte key");
    free(buf);
    e.signer_key.len = 32;
    e.version = 2;
    cr_assert_eq(pk_pack(&e.base, &buf, &len), PK_OK);
    cr_assert_eq(pk_envelope_open(buf, len, &env), PK_EINVAL, "version 2");
    cr_assert(strstr(pk_error_msg(), "version 2") != NULL);
    free(buf);
    e.version = 1;
    e.type = 99;
    cr_assert_eq(pk_pack(&e.base, &buf, &len), PK_OK);
    cr_assert_eq(pk_envelope_open(buf, len, &env), PK_EDECODE, "unknown type");
    free(buf);
}

Test(shape, ids_are_subject_tokens)
{
    char long_id[80];

    cr_assert_eq(pk_id_check("agent id", "support-bot_1"), PK_OK);
    cr_assert_eq(pk_id_check("agent id", ""), PK_EINVAL);
    cr_assert_eq(pk_id_check("agent id", "a.b"), PK_EINVAL, "dots split NATS subjects");
    cr_assert_eq(pk_id_check("agent id", "a*"), PK_EINVAL);
    cr_assert_eq(pk_id_check("agent id", "a b"), PK_EINVAL);
    memset(long_id, 'a', sizeof(long_id));
    long_id[65] = '\0';
    cr_assert_eq(pk_id_check("agent id", long_id), PK_EINVAL);
    long_id[64] = '\0';
    cr_assert_eq(pk_id_check("agent id", long_id), PK_OK, "64 characters is the limit");
    cr_assert_eq(pk_event_id_check("01HX:evt.42"), PK_OK);
    cr_assert_eq(pk_event_id_check("evt/42"), PK_EINVAL);
}

#define T0 1700000000000

/* A valid event, changed one field at a time below; it points into e. */
static h_event e;

static pk_event_msg *good_event(const char *metric, double value, const char *label,
                                const char *label_value)
{
    return h_event_set(&e, "bot-1", T0, "reply", metric, value, label, label_value);
}

Test(shape, event_checks_catch_each_bad_field)
{
    char big[PK_VALUE_MAX + 2];
    pk_event_msg *ev = good_event(NULL, 0, NULL, NULL);

    cr_assert_eq(pk_event_check(ev), PK_OK);
    ev->kind = "";
    cr_assert_eq(pk_event_check(ev), PK_EINVAL);
    ev = good_event(NULL, 0, NULL, NULL);
    ev->ts_ms = 0;
    cr_assert_eq(pk_event_check(ev), PK_EINVAL);
    ev = good_event(NULL, 0, NULL, NULL);
    ev->amount = -1;
    cr_assert_eq(pk_event_check(ev), PK_EINVAL);
    ev = good_event("latency_ms", NAN, NULL, NULL);
    cr_assert_eq(pk_event_check(ev), PK_EINVAL);
    e.metric.value = 12;
    cr_assert_eq(pk_event_check(ev), PK_OK);
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    ev = good_event("latency_ms", 12, "note", big);
    cr_assert_eq(pk_event_check(ev), PK_EINVAL, "label value over the limit");
    e.label.value = "line\nbreak";
    cr_assert_eq(pk_event_check(ev), PK_EINVAL, "control characters");
}

Test(shape, metric_and_label_lookup)
{
    pk_event_msg *ev = good_event("latency_ms", 850, "pii", "none");
    double v = 0;

    cr_assert(pk_event_metric(ev, "latency_ms", &v));
    cr_assert_float_eq(v, 850, 1e-9);
    cr_assert_not(pk_event_metric(ev, "tokens", &v));
    cr_assert_str_eq(pk_event_label(ev, "pii"), "none");
    cr_assert_null(pk_event_label(ev, "tone"));
}

Test(shape, enum_names_round_trip)
{
    cr_assert_eq(pk_severity_parse(pk_severity_name(PACTUM__V1__SEVERITY__SEVERITY_CRITICAL)),
                 PACTUM__V1__SEVERITY__SEVERITY_CRITICAL);
    cr_assert_eq(pk_tier_parse("contained"), PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(pk_tier_parse("nonsense"), 0);
    cr_assert_str_eq(pk_reason_name(PACTUM__V1__REASON__REASON_BAD_SIGNATURE), "bad_signature");
}
