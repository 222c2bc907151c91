/*
 * Bad input through the running suite: each gets its reason code and a
 * dead-letter record, is counted, and good events around it still count.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair ka, kb;
static natsSubscription *rejections;

static const char *pact_a =
    "{\"pactum\":1,\"id\":\"bot-a-pact\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"no-errors\","
    "\"promise\":\"never errors\",\"severity\":\"low\",\"kind\":\"forbidden\",\"match\":{\"field\":"
    "\"kind\",\"eq\":\"error\"}}]}";

static void setup(void)
{
    Pactum__V1__RegistryReceipt *r;

    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    h_keypair(&ka, 11);
    h_keypair(&kb, 12);
    r = h_register_agent(&h, "bot-a", &ka, &ka);
    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    r = h_register_agent(&h, "bot-b", &kb, &kb);
    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    r = h_register_pact(&h, &ka, pact_a);
    cr_assert(r && r->ok, "%s", r ? r->message : "no answer");
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    cr_assert_eq(natsConnection_SubscribeSync(&rejections, h.bus->nc, "pactum.rejected.*"),
                 NATS_OK);
    natsConnection_Flush(h.bus->nc);
}

static void teardown(void)
{
    natsSubscription_Destroy(rejections);
    h_stop(&h);
}

TestSuite(bad_input, .init = setup, .fini = teardown, .timeout = 180);

/* One event envelope signed by kp as signer, with fields tweaked by the caller. */
static uint8_t *envelope_of(const char *signer, const pk_keypair *kp, pk_event_msg *ev, size_t *len)
{
    pk_event_msg *evp = ev;

    return h_envelope(signer, kp, &evp, 1, len);
}

static void send(const char *subject, const uint8_t *data, size_t len)
{
    cr_assert(h_publish(&h, subject, data, len), "publish on %s", subject);
}

static int sent;

static void send_event(const char *subject, const char *signer, const pk_keypair *kp,
                       pk_event_msg *ev)
{
    size_t len;
    uint8_t *env = envelope_of(signer, kp, ev, &len);

    cr_assert_not_null(env);
    send(subject, env, len);
    free(env);
    sent++;
}

static void good(const char *id)
{
    pk_event_msg ev;

    h_event_init(&ev, id, "bot-a", "reply", NULL, NULL);
    send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
}

Test(bad_input, each_bad_input_gets_its_reason_and_good_events_still_count)
{
    static const struct {
        const char *series;
        long long want;
    } expect[] = {
        {"pactum_ingest_rejected_total{reason=\"malformed\"}", 2},
        {"pactum_ingest_rejected_total{reason=\"oversized\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"bad_signature\"}", 2},
        {"pactum_ingest_rejected_total{reason=\"unknown_signer\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"subject_mismatch\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"invalid_field\"}", 3},
        {"pactum_ingest_rejected_total{reason=\"duplicate\"}", 2},
        {"pactum_ingest_rejected_total{reason=\"too_old\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"too_new\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"unknown_agent\"}", 1},
        {"pactum_ingest_rejected_total{reason=\"unsupported_version\"}", 1},
        {"pactum_ingest_events_accepted_total", 8},
    };
    pk_event_msg ev;
    uint8_t *env, *buf;
    size_t len, blen;
    pk_signed_msg *open = NULL;
    int counts[16] = {0}, got = 0;

    sent = 0;
    good("g-1");

    /* garbage, and a valid envelope cut in half */
    send("pactum.raw.bot-a", (const uint8_t *)"\x0a\xff\xff\xff\x7f garbage", 14);
    sent++;
    h_event_init(&ev, "t-1", "bot-a", "reply", NULL, NULL);
    env = envelope_of("bot-a", &ka, &ev, &len);
    send("pactum.raw.bot-a", env, len / 2);
    sent++;
    good("g-2");

    /* one flipped byte of the signed payload */
    cr_assert_eq(pk_envelope_open(env, len, &open), PK_OK);
    open->payload.data[open->payload.len - 1] ^= 0x01;
    cr_assert_eq(pk_pack(&open->base, &buf, &blen), PK_OK);
    send("pactum.raw.bot-a", buf, blen);
    sent++;
    free(buf);
    /* a version this build does not read */
    open->payload.data[open->payload.len - 1] ^= 0x01;
    open->version = 2;
    cr_assert_eq(pk_pack(&open->base, &buf, &blen), PK_OK);
    send("pactum.raw.bot-a", buf, blen);
    sent++;
    free(buf);
    pactum__v1__signed__free_unpacked(open, NULL);
    free(env);

    /* signed by bot-b's key while claiming to be bot-a */
    h_event_init(&ev, "t-2", "bot-a", "reply", NULL, NULL);
    send_event("pactum.raw.bot-a", "bot-a", &kb, &ev);
    /* a signer nobody registered */
    h_event_init(&ev, "t-3", "ghost", "reply", NULL, NULL);
    send_event("pactum.raw.ghost", "ghost", &kb, &ev);
    /* bot-a's envelope on bot-b's subject */
    h_event_init(&ev, "t-4", "bot-a", "reply", NULL, NULL);
    send_event("pactum.raw.bot-b", "bot-a", &ka, &ev);
    good("g-3");

    /* too big */
    {
        enum { N = 100 };
        pk_event_msg evs[N], *evp[N];
        Pactum__V1__Label l = PACTUM__V1__LABEL__INIT, *lp[1] = {&l};
        char big[1001], ids[N][16];
        memset(big, 'x', 1000);
        big[1000] = '\0';
        l.name = "blob";
        l.value = big;
        for (int i = 0; i < N; i++) {
            snprintf(ids[i], sizeof(ids[i]), "big-%d", i);
            h_event_init(&evs[i], ids[i], "bot-a", "reply", NULL, NULL);
            evs[i].labels = lp;
            evs[i].n_labels = 1;
            evp[i] = &evs[i];
        }
        env = h_envelope("bot-a", &ka, evp, N, &len);
        cr_assert_gt(len, 65536);
        send("pactum.raw.bot-a", env, len);
        sent++;
        free(env);
    }

    /* a replayed event id */
    good("g-dup");
    good("g-dup");

    /* timestamps far in the past and the future */
    h_event_init(&ev, "t-old", "bot-a", "reply", NULL, NULL);
    ev.ts_ms = pk_now_ms() - 48LL * 3600 * 1000;
    send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
    h_event_init(&ev, "t-new", "bot-a", "reply", NULL, NULL);
    ev.ts_ms = pk_now_ms() + 3600 * 1000;
    send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);

    /* bot-a reporting as a peer on an agent nobody registered */
    h_event_init(&ev, "t-peer", "ghost-agent", "reply", NULL, NULL);
    send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);

    /* a missing kind */
    h_event_init(&ev, "t-nokind", "bot-a", "", NULL, NULL);
    send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);

    /* a registration published where events go */
    {
        uint8_t *e2;
        size_t l2;
        cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION,
                                      (const uint8_t *)"x", 1, "bot-a", &ka, &e2, &l2),
                     PK_OK);
        send("pactum.raw.bot-a", e2, l2);
        sent++;
        free(e2);
    }

    /* one envelope holding the same event id twice: the second is a duplicate;
     * a reporter_id written by the reporter is replaced by the signer */
    {
        pk_event_msg evs[2], *evp[2] = {&evs[0], &evs[1]};
        h_event_init(&evs[0], "twice", "bot-a", "reply", NULL, NULL);
        h_event_init(&evs[1], "twice", "bot-a", "reply", NULL, NULL);
        evs[0].reporter_id = "someone-else";
        env = h_envelope("bot-a", &ka, evp, 2, &len);
        send("pactum.raw.bot-a", env, len);
        sent++;
        free(env);
    }

    /* a signed batch of three whose middle event is bad: the other two count */
    {
        pk_event_msg evs[3], *evp[3] = {&evs[0], &evs[1], &evs[2]};
        h_event_init(&evs[0], "b-1", "bot-a", "reply", NULL, NULL);
        h_event_init(&evs[1], "b-2", "bot-a", "reply", NULL, NULL);
        evs[1].amount = -5;
        h_event_init(&evs[2], "b-3", "bot-a", "error", NULL, NULL);
        env = h_envelope("bot-a", &ka, evp, 3, &len);
        send("pactum.raw.bot-a", env, len);
        sent++;
        free(env);
    }
    good("g-4");

    cr_assert_geq(h_wait_metric(&h, "ingest", "pactum_ingest_envelopes_total", sent, 30000), sent);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        cr_assert_eq(h_wait_metric(&h, "ingest", expect[i].series, expect[i].want, 10000),
                     expect[i].want, "%s", expect[i].series);

    /* every refusal left a dead-letter record with a reason and a sentence */
    for (int i = 0; i < 60; i++) {
        natsMsg *m = NULL;
        Pactum__V1__Rejection *rej;
        if (natsSubscription_NextMsg(&m, rejections, 2000) != NATS_OK)
            break;
        rej = pactum__v1__rejection__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                            (const uint8_t *)natsMsg_GetData(m));
        cr_assert_not_null(rej);
        cr_assert_str_eq(rej->service, "ingest");
        cr_assert_gt(strlen(rej->message), 10, "a sentence, not a code: %s", rej->message);
        cr_assert(strstr(natsMsg_GetSubject(m), pk_reason_name(rej->reason)) != NULL);
        if (rej->reason < 16)
            counts[rej->reason]++;
        got++;
        pactum__v1__rejection__free_unpacked(rej, NULL);
        natsMsg_Destroy(m);
        if (got == 16)
            break;
    }
    cr_assert_eq(got, 16, "16 refusals, 16 records");
    cr_assert_eq(counts[PACTUM__V1__REASON__REASON_DUPLICATE], 2);
    cr_assert_eq(counts[PACTUM__V1__REASON__REASON_INVALID_FIELD], 3);

    /* the good events went on: the evaluator saw exactly them, and the error
     * event of the batch was judged a violation of bot-a's pact */
    cr_assert_eq(h_wait_metric(&h, "evaluator", "pactum_evaluator_events_total", 8, 20000), 8);
    {
        Pactum__V1__TrustReport *r = h_wait_tier(&h, "bot-a", PACTUM__V1__TIER__TIER_WATCH, 1000);
        int64_t deadline = pk_mono_ms() + 20000;
        while (r && (!r->state || r->state->n_violations == 0) && pk_mono_ms() < deadline) {
            pactum__v1__trust_report__free_unpacked(r, NULL);
            pk_sleep_ms(100);
            r = h_trust(&h, "bot-a");
        }
        cr_assert_not_null(r);
        cr_assert_eq(r->state->n_violations, 1);
        cr_assert_eq(r->state->violations[0]->severity, PACTUM__V1__SEVERITY__SEVERITY_LOW);
        cr_assert_str_eq(r->last_violation->evidence[0]->event_id, "b-3");
        pactum__v1__trust_report__free_unpacked(r, NULL);
    }
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

Test(bad_input, bad_registrations_are_refused_with_reasons)
{
    Pactum__V1__RegistryReceipt *r;
    uint8_t *big = calloc(1, 300 * 1024);

    r = h_submit(&h, (const uint8_t *)"\xff\x01garbage", 9);
    cr_assert_not_null(r);
    cr_assert_not(r->ok);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_MALFORMED);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);

    r = h_submit(&h, big, 300 * 1024);
    cr_assert_not_null(r);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_OVERSIZED);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    free(big);

    r = h_register_pact(&h, &ka, "{\"pactum\":1,\"id\":\"x\",\"agent\":\"nobody\",\"clauses\":"
                                 "[{\"id\":\"c\",\"promise\":\"p\",\"severity\":\"low\",\"kind\":"
                                 "\"forbidden\",\"match\":{\"field\":\"kind\",\"eq\":\"e\"}}]}");
    cr_assert_not_null(r);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);

    r = h_register_agent(&h, "bad.id", &ka, &ka);
    cr_assert_not_null(r);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_INVALID_FIELD);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);

    cr_assert_eq(h_metric(&h, "ingest", "pactum_ingest_registrations_total{result=\"rejected\"}"),
                 4);
}
