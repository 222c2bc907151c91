/*
 * Bad input through the running suite: each gets its reason code and a
 * dead-letter record, is counted, and good events around it still count.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair ka, kb;
static natsSubscription *rejections;

static const char *pact_a =
    "{\"pactum\":1,\"id\":\"bot-a-pact\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"no-errors\","
    "\"promise\":\"never "
    "errors\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":"
    "\"kind\",\"eq\":\"error\"}},"
    /* a forbidden kind judges only that kind: something must judge every event */
    "{\"id\":\"alive\",\"promise\":\"keeps reporting\",\"severity\":\"low\","
    "\"kind\":\"freshness\",\"max_gap\":\"1d\"}]}";

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    h_keypair(&ka, 11);
    h_keypair(&kb, 12);
    cr_assert(h_agent(&h, "bot-a", &ka, &ka), "%s", h.why);
    cr_assert(h_agent(&h, "bot-b", &kb, &kb), "%s", h.why);
    cr_assert(h_pact(&h, &ka, pact_a), "%s", h.why);
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
        Pactum__V1__Rejection *rej;
        char subject[128];
        if (!h_next_rejection(rejections, 2000, &rej, subject, sizeof(subject)))
            break;
        cr_assert_not_null(rej);
        cr_assert_str_eq(rej->service, "ingest");
        cr_assert_gt(strlen(rej->message), 10, "a sentence, not a code: %s", rej->message);
        cr_assert(strstr(subject, pk_reason_name(rej->reason)) != NULL);
        if (rej->reason < 16)
            counts[rej->reason]++;
        got++;
        pactum__v1__rejection__free_unpacked(rej, NULL);
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

    r = h_register_pact(
        &h, &ka,
        "{\"pactum\":1,\"id\":\"x\",\"agent\":\"nobody\",\"clauses\":"
        "[{\"id\":\"c\",\"promise\":\"p\",\"severity\":\"low\",\"kind\":"
        "\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"kind\",\"eq\":\"e\"}}]}");
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

/* --- the corpus --------------------------------------------------------------------- */

static char out[65536];

static long long rejected(const char *reason)
{
    char series[96];

    snprintf(series, sizeof(series), "pactum_ingest_rejected_total{reason=\"%s\"}", reason);
    return h_metric(&h, "ingest", series);
}

/* Wait until the reason's counter moved by want from before; print the category's line. */
static void expect_refused(const char *category, const char *reason, long long before, int want)
{
    char series[96];
    long long now;

    snprintf(series, sizeof(series), "pactum_ingest_rejected_total{reason=\"%s\"}", reason);
    now = h_wait_metric(&h, "ingest", series, before + want, 20000);
    cr_assert_eq(now - before, want, "%s: %lld of %d refused as %s", category, now - before, want,
                 reason);
    printf("bad input  %-34s %3d tried, %3d refused: %s\n", category, want, want, reason);
}

/* A valid envelope of one bot-a event (caller frees). */
static uint8_t *valid_envelope(const char *id, size_t *len)
{
    pk_event_msg ev;

    h_event_init(&ev, id, "bot-a", "reply", NULL, NULL);
    return envelope_of("bot-a", &ka, &ev, len);
}

/* Publish bot-a's envelope of event id, its signature spoiled if tamper; its PACTUM_RAW
 * sequence. */
static uint64_t publish_envelope(const char *id, bool tamper, int which_byte)
{
    size_t len, blen;
    uint8_t *env = valid_envelope(id, &len), *buf;
    pk_signed_msg *open = NULL;
    uint64_t seq = 0;

    cr_assert_eq(pk_envelope_open(env, len, &open), PK_OK);
    if (tamper)
        open->signature.data[which_byte % PK_SIG_BYTES] ^= 0x01;
    cr_assert_eq(pk_pack(&open->base, &buf, &blen), PK_OK);
    cr_assert_eq(
        pk_bus_publish_sync(h.bus, "pactum.raw.bot-a", buf, blen, NULL, false, 0, &seq, NULL),
        PK_OK);
    free(buf);
    free(env);
    pactum__v1__signed__free_unpacked(open, NULL);
    return seq;
}

Test(bad_input, a_corpus_of_bad_inputs_is_refused_by_category_and_changes_nothing)
{
    long long b;
    char live[2][80];
    uint64_t events_before, events_after;
    Pactum__V1__TrustReport *before, *after;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int total = 0;

    /* a known state: five good events, scored */
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ok-%d", i);
        good(id);
    }
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_verdicts_total", 1, 20000), 1);
    pk_sleep_ms(1000);
    cr_assert_eq(h_cli(&h, out, sizeof(out), "replay --compare"), 0, "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", live[0]), 1);
    before = h_trust(&h, "bot-a");
    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, PK_STREAM_EVENTS, NULL, &jerr), NATS_OK);
    events_before = si->State.Msgs;
    jsStreamInfo_Destroy(si);

    /* truncated protobuf: a valid envelope cut at 12 places */
    {
        size_t len;
        uint8_t *env = valid_envelope("cut", &len);
        b = rejected("malformed");
        for (int i = 1; i <= 12; i++)
            send("pactum.raw.bot-a", env, len * (size_t)i / 13);
        free(env);
        expect_refused("truncated protobuf", "malformed", b, 12);
        total += 12;
    }
    /* garbage: 20 random byte strings */
    {
        srand(7);
        b = rejected("malformed");
        for (int i = 0; i < 20; i++) {
            uint8_t junk[200];
            size_t n = 1 + (size_t)rand() % sizeof(junk);
            for (size_t k = 0; k < n; k++)
                junk[k] = (uint8_t)rand();
            junk[0] = 0xff; /* never a valid first field tag */
            send("pactum.raw.bot-a", junk, n);
        }
        expect_refused("garbage bytes", "malformed", b, 20);
        total += 20;
    }
    /* wrong field types: fields of the envelope with the wrong wire type */
    {
        static const uint8_t wrong[][8] = {
            {0x0a, 0x01, 0x01},             /* version (varint) as bytes */
            {0x10, 0x01, 0x1d, 1, 2, 3, 4}, /* payload (bytes) as fixed32 */
            {0x08, 0x01, 0x12, 0x01, 0x31}, /* type (varint) as bytes */
        };
        static const size_t lens[] = {3, 7, 5};
        b = rejected("malformed");
        for (int i = 0; i < 3; i++)
            send("pactum.raw.bot-a", wrong[i], lens[i]);
        expect_refused("wrong field types", "malformed", b, 3);
        total += 3;
    }
    /* huge strings: a 10 KB kind is a bad field; a 100 KB label makes the envelope too big */
    {
        char *big = malloc(100 * 1024 + 1);
        pk_event_msg ev;
        Pactum__V1__Label l = PACTUM__V1__LABEL__INIT;
        memset(big, 'k', 100 * 1024);
        big[10 * 1024] = '\0';
        b = rejected("invalid_field");
        h_event_init(&ev, "huge-kind", "bot-a", big, NULL, NULL);
        send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
        expect_refused("a 10 KB string field", "invalid_field", b, 1);
        big[10 * 1024] = 'k';
        big[100 * 1024] = '\0';
        l.name = "blob";
        l.value = big;
        b = rejected("oversized");
        h_event_init(&ev, "huge-label", "bot-a", "reply", NULL, &l);
        send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
        expect_refused("a 100 KB envelope", "oversized", b, 1);
        free(big);
        total += 2;
    }
    /* wrong signatures: a flipped bit in each of 8 places; another agent's key */
    {
        size_t len;
        uint8_t *env = valid_envelope("sig", &len);
        pk_signed_msg *open = NULL;
        b = rejected("bad_signature");
        for (int i = 0; i < 8; i++) {
            uint8_t *buf;
            size_t blen;
            cr_assert_eq(pk_envelope_open(env, len, &open), PK_OK);
            open->signature.data[i * 8] ^= 0x40;
            cr_assert_eq(pk_pack(&open->base, &buf, &blen), PK_OK);
            send("pactum.raw.bot-a", buf, blen);
            free(buf);
            pactum__v1__signed__free_unpacked(open, NULL);
        }
        free(env);
        {
            pk_event_msg ev;
            h_event_init(&ev, "other-key", "bot-a", "reply", NULL, NULL);
            send_event("pactum.raw.bot-a", "bot-a", &kb, &ev);
        }
        expect_refused("wrong or another agent's signature", "bad_signature", b, 9);
        total += 9;
    }
    /* replayed event ids: ok-0 .. ok-4 again */
    {
        b = rejected("duplicate");
        for (int i = 0; i < 5; i++) {
            char id[16];
            snprintf(id, sizeof(id), "ok-%d", i);
            good(id);
        }
        expect_refused("replayed event ids", "duplicate", b, 5);
        total += 5;
    }
    /* timestamps far in the past and the future */
    {
        pk_event_msg ev;
        long long b2 = rejected("too_new");
        b = rejected("too_old");
        for (int i = 0; i < 3; i++) {
            char id[16];
            snprintf(id, sizeof(id), "old-%d", i);
            h_event_init(&ev, id, "bot-a", "reply", NULL, NULL);
            ev.ts_ms = pk_now_ms() - (int64_t)(i + 2) * 86400000;
            send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
            snprintf(id, sizeof(id), "new-%d", i);
            h_event_init(&ev, id, "bot-a", "reply", NULL, NULL);
            ev.ts_ms = pk_now_ms() + (int64_t)(i + 1) * 3600000;
            send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
        }
        expect_refused("timestamps days in the past", "too_old", b, 3);
        expect_refused("timestamps hours in the future", "too_new", b2, 3);
        total += 6;
    }
    /* unknown agents: events about one, and a signer nobody registered */
    {
        pk_event_msg ev;
        long long b2 = rejected("unknown_signer");
        b = rejected("unknown_agent");
        h_event_init(&ev, "about-ghost", "ghost", "reply", NULL, NULL);
        send_event("pactum.raw.bot-a", "bot-a", &ka, &ev);
        h_event_init(&ev, "from-ghost", "ghost", "reply", NULL, NULL);
        send_event("pactum.raw.ghost", "ghost", &ka, &ev);
        expect_refused("an event about an unknown agent", "unknown_agent", b, 1);
        expect_refused("an unknown signer", "unknown_signer", b2, 1);
        total += 2;
    }
    /* unknown pacts, malformed pact files */
    {
        static const char *broken[] = {
            "",
            "{",
            "[]",
            "{\"pactum\":1}",
            "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot-a\"}",
            "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"c\"}]}",
            "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot-a\",\"clauses\":[],\"x\":1}",
            "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"c\",\"promise\":"
            "\"p\",\"severity\":\"low\",\"kind\":\"objective\",\"metric\":\"m\",\"aggregate\":"
            "\"mean\",\"window\":\"1 hour\",\"op\":\"<=\",\"threshold\":1}]}",
        };
        Pactum__V1__PactQuery q = PACTUM__V1__PACT_QUERY__INIT;
        Pactum__V1__PactReport *rep;
        long long rb =
            h_metric(&h, "ingest", "pactum_ingest_registrations_total{result=\"rejected\"}");
        for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
            Pactum__V1__RegistryReceipt *r = h_register_pact(&h, &ka, broken[i]);
            cr_assert_not_null(r);
            cr_assert_not(r->ok, "broken pact %zu accepted", i);
            cr_assert(r->reason == PACTUM__V1__REASON__REASON_BAD_PACT ||
                          r->reason == PACTUM__V1__REASON__REASON_INVALID_FIELD,
                      "pact %zu: %s", i, pk_reason_name(r->reason));
            pactum__v1__registry_receipt__free_unpacked(r, NULL);
        }
        cr_assert_eq(
            h_metric(&h, "ingest", "pactum_ingest_registrations_total{result=\"rejected\"}") - rb,
            8);
        printf("bad input  %-34s %3d tried, %3d refused: bad_pact\n", "malformed pact files", 8, 8);
        q.pact_id = "no-such-pact";
        rep = (Pactum__V1__PactReport *)h_ask(&h, PK_SUBJ_ORACLE_PACT, &q.base,
                                              PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT);
        cr_assert_not_null(rep);
        cr_assert_eq(rep->status, PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND);
        cr_assert(strstr(rep->message, "unknown pact") != NULL, "%s", rep->message);
        pactum__v1__pact_report__free_unpacked(rep, NULL);
        printf("bad input  %-34s %3d tried, %3d refused: unknown pact\n", "an unknown pact", 1, 1);
        total += 9;
    }
    /* malformed oracle queries: garbage on every question, each a signed refusal */
    {
        static const struct {
            const char *subject;
            Pactum__V1__PayloadType type;
        } qs[] = {
            {PK_SUBJ_ORACLE_TRUST, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT},
            {PK_SUBJ_ORACLE_PACT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT},
            {PK_SUBJ_ORACLE_AUTHORIZE, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION},
            {PK_SUBJ_ORACLE_EVIDENCE, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE},
            {PK_SUBJ_ORACLE_ATTEST, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION},
            {PK_SUBJ_ORACLE_FIGURES, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES},
            {PK_SUBJ_ORACLE_LOG, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER},
        };
        int n = 0;
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            static const char *junk[] = {"\xff\xff\xff",
                                         "\x0a\x09"
                                         "bad.agent",
                                         "\x0a\x03"
                                         "a b"};
            for (int k = 0; k < 3; k++) {
                natsMsg *reply = NULL;
                ProtobufCMessage *m = NULL;
                const ProtobufCFieldDescriptor *sf;
                if (strcmp(qs[i].subject, PK_SUBJ_ORACLE_FIGURES) == 0 && k > 0)
                    continue; /* figures has no agent field 1 of type string to break this way */
                cr_assert_eq(natsConnection_Request(&reply, h.bus->nc, qs[i].subject, junk[k],
                                                    (int)strlen(junk[k]), 5000),
                             NATS_OK);
                cr_assert_eq(pk_answer_open((const uint8_t *)natsMsg_GetData(reply),
                                            (size_t)natsMsg_GetDataLength(reply), qs[i].type,
                                            pk_answer_descriptor(qs[i].type), NULL, NULL, &m),
                             PK_OK, "%s: %s", qs[i].subject, pk_error_msg());
                sf = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "status");
                cr_assert_neq(*(const int *)((const uint8_t *)m + sf->offset),
                              PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s accepted junk %d",
                              qs[i].subject, k);
                protobuf_c_message_free_unpacked(m, NULL);
                natsMsg_Destroy(reply);
                n++;
            }
        }
        printf("bad input  %-34s %3d tried, %3d refused: bad_request (signed)\n",
               "malformed oracle queries", n, n);
        total += n;
    }
    /* malformed HTTP requests */
    {
        static const struct {
            const char *method, *body, *path;
            int code;
        } reqs[] = {
            {"POST", "not json", "/v1/agents/bot-a/authorize", 400},
            {"POST", "{\"action\":5}", "/v1/agents/bot-a/authorize", 400},
            {"POST", "[1,2]", "/v1/agents/bot-a/authorize", 400},
            {"GET", NULL, "/v1/agents/bot-a/authorize", 405},
            {"GET", NULL, "/v1/log/inclusion?index=-1", 400},
            {"GET", NULL, "/v1/log/consistency", 400},
            {"GET", NULL, "/v1/agents/bot-a/evidence?kind=nonsense", 400},
            {"GET", NULL, "/v1/agents/has.dots/trust", 400},
            {"GET", NULL, "/v1/nowhere", 404},
            {"DELETE", NULL, "/v1/agents/bot-a/trust", 405},
            {"POST", "@70k", "/v1/agents/bot-a/authorize", 413},
        };
        char cmd[1024], bigfile[400];
        int n = 0;
        FILE *f;
        snprintf(bigfile, sizeof(bigfile), "%s/big-body", h.dir);
        f = fopen(bigfile, "w");
        cr_assert_not_null(f);
        for (int i = 0; i < 70000; i++)
            fputc('x', f);
        fclose(f);
        for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
            FILE *p;
            char code[8] = "", data[480] = "";
            if (reqs[i].body && strcmp(reqs[i].body, "@70k") == 0)
                snprintf(data, sizeof(data), "--data-binary @%s", bigfile);
            else if (reqs[i].body)
                snprintf(data, sizeof(data), "--data-binary '%s'", reqs[i].body);
            snprintf(
                cmd, sizeof(cmd),
                "curl -s -m 10 -o /dev/null -w '%%{http_code}' -X %s %s 'http://127.0.0.1:%d%s'",
                reqs[i].method, data, h.http_port, reqs[i].path);
            p = popen(cmd, "r");
            cr_assert_not_null(p);
            cr_assert_neq(fgets(code, sizeof(code), p), NULL);
            pclose(p);
            cr_assert_eq(atoi(code), reqs[i].code, "%s %s: %s", reqs[i].method, reqs[i].path, code);
            n++;
        }
        printf("bad input  %-34s %3d tried, %3d refused: 4xx with a reason\n",
               "malformed HTTP requests", n, n);
        total += n;
    }

    /* nothing changed: no event got in, no trust change, the scorer's state is the same */
    pk_sleep_ms(1000);
    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, PK_STREAM_EVENTS, NULL, &jerr), NATS_OK);
    events_after = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    cr_assert_eq(events_after, events_before, "no bad input became an event");
    after = h_trust(&h, "bot-a");
    cr_assert_eq(after->trust_seq, before->trust_seq);
    cr_assert_eq(after->state->evidence, before->state->evidence);
    cr_assert_eq(h_cli(&h, out, sizeof(out), "replay --compare"), 0, "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", live[1]), 1);
    cr_assert_str_eq(live[0], live[1]);
    pactum__v1__trust_report__free_unpacked(before, NULL);
    pactum__v1__trust_report__free_unpacked(after, NULL);
    printf("bad input  %-34s %3d tried, state unchanged (digest %.16s...)\n", "all categories",
           total, live[1]);
    fflush(stdout);
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

/*
 * A fetched batch's signatures are checked on several threads before the
 * in-order pass: with bad signatures scattered through one batch, exactly the
 * bad envelopes are refused, and every good one is accepted once.
 */
Test(bad_input, signatures_checked_in_parallel_refuse_exactly_the_bad_envelopes)
{
    enum { N = 200 };
    static const char *const threads4[] = {"PACTUM_INGEST_VERIFY_THREADS=4", NULL};
    bool bad[N] = {false}, refused[N] = {false};
    uint64_t seq[N];
    long long acc0 = h_metric(&h, "ingest", "pactum_ingest_events_accepted_total");
    long long bad0 = rejected("bad_signature");
    int n_bad = 0, got = 0;

    /* stopped, so that the whole lot waits and is fetched in one or two batches */
    cr_assert_eq(h_stop_pid(h.svc_pid[0], SIGTERM, 15000), 0);
    h.svc_pid[0] = 0;
    for (int i = 0; i < N; i++) {
        char id[16];

        snprintf(id, sizeof(id), "par-%d", i);
        /* a pseudo-random scatter, first and last included */
        bad[i] = i == 0 || i == N - 1 || (i * 37) % 11 == 4;
        n_bad += bad[i];
        seq[i] = publish_envelope(id, bad[i], i);
    }
    cr_assert(h_start_service(&h, 0, threads4), "ingest did not restart");
    cr_assert_eq(
        h_wait_metric(&h, "ingest", "pactum_ingest_events_accepted_total", acc0 + N - n_bad, 30000),
        acc0 + N - n_bad);
    cr_assert_eq(h_wait_metric(&h, "ingest",
                               "pactum_ingest_rejected_total{reason=\"bad_signature\"}",
                               bad0 + n_bad, 10000),
                 bad0 + n_bad);
    /* the dead letters name exactly the tampered envelopes */
    for (int k = 0; k < 4 * N && got < n_bad; k++) {
        Pactum__V1__Rejection *rej;

        if (!h_next_rejection(rejections, 2000, &rej, NULL, 0))
            break;
        cr_assert_not_null(rej);
        if (rej->reason == PACTUM__V1__REASON__REASON_BAD_SIGNATURE) {
            int i = 0;
            while (i < N && seq[i] != rej->source_seq)
                i++;
            cr_assert_lt(i, N, "refused raw #%llu was not sent here",
                         (unsigned long long)rej->source_seq);
            cr_assert(bad[i], "envelope %d was refused but its signature is good", i);
            cr_assert_not(refused[i], "envelope %d was refused twice", i);
            refused[i] = true;
            got++;
        }
        pactum__v1__rejection__free_unpacked(rej, NULL);
    }
    cr_assert_eq(got, n_bad);
    pk_sleep_ms(300);
    cr_assert_eq(h_metric(&h, "ingest", "pactum_ingest_events_accepted_total"), acc0 + N - n_bad,
                 "no good envelope counted twice");
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

/* The ids of the "ahead-" events in PACTUM_EVENTS, in stream order. */
typedef struct ahead_ids {
    int idx[512];
    int n;
} ahead_ids;

static bool collect_ahead(void *ctx, natsMsg *m)
{
    ahead_ids *a = ctx;
    pk_event_msg *ev = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                 (const uint8_t *)natsMsg_GetData(m));
    int i;

    if (ev && sscanf(ev->event_id, "ahead-%d", &i) == 1 && a->n < 512)
        a->idx[a->n++] = i;
    if (ev)
        pactum__v1__event__free_unpacked(ev, NULL);
    return true;
}

/*
 * With more waiting than one batch, ingest fetches the next batch while it
 * applies the one before and checks that batch's signatures meanwhile. Each
 * batch is still judged as if fetched in turn: exactly the tampered envelopes
 * are refused, an event id accepted in an earlier batch is refused as a
 * duplicate, every other event is accepted once, and the events reach
 * PACTUM_EVENTS in the order they were sent, across a stop and a start.
 */
Test(bad_input, batches_read_ahead_are_judged_as_if_fetched_in_turn)
{
    enum { N = 240 };
    static const char *const small[] = {"PACTUM_INGEST_BATCH=16", "PACTUM_INGEST_VERIFY_THREADS=2",
                                        NULL};
    /* what judging them one by one in order gives: 0 accepted, else the reason refused */
    Pactum__V1__Reason expect[N];
    bool refused[N] = {false}, taken[N] = {false};
    uint64_t seq[N];
    int want[N], n_want = 0, n_refuse = 0, n_dup = 0, n_refused = 0;
    long long ahead = 0, at_stop = 0;
    ahead_ids got = {.n = 0};

    /* stopped, so that all of them wait and ingest starts fifteen batches behind */
    cr_assert_eq(h_stop_pid(h.svc_pid[0], SIGTERM, 15000), 0);
    h.svc_pid[0] = 0;
    for (int i = 0; i < N; i++) {
        char id[16];
        bool bad = (i * 29) % 13 == 5;
        /* every 20th repeats the id of one sent 37 earlier, two or three batches back */
        int id_of = i >= 40 && i % 20 == 0 ? i - 37 : i;

        snprintf(id, sizeof(id), "ahead-%d", id_of);
        seq[i] = publish_envelope(id, bad, i);
        expect[i] = bad            ? PACTUM__V1__REASON__REASON_BAD_SIGNATURE
                    : taken[id_of] ? PACTUM__V1__REASON__REASON_DUPLICATE
                                   : (Pactum__V1__Reason)0;
        if (expect[i])
            n_refuse++;
        else {
            taken[id_of] = true;
            want[n_want++] = id_of;
        }
        n_dup += expect[i] == PACTUM__V1__REASON__REASON_DUPLICATE;
    }
    cr_assert_gt(n_dup, 0);
    cr_assert(h_start_service(&h, 0, small), "ingest did not restart");
    /* stopped once on the way (a batch may be read ahead then), and started again */
    h_wait_metric(&h, "ingest", "pactum_ingest_events_accepted_total", 40, 30000);
    ahead = h_metric(&h, "ingest", "pactum_ingest_batches_read_ahead_total");
    at_stop = h_metric(&h, "ingest", "pactum_ingest_events_accepted_total");
    cr_assert_eq(h_stop_pid(h.svc_pid[0], SIGTERM, 15000), 0);
    h.svc_pid[0] = 0;
    cr_assert(h_start_service(&h, 0, small), "ingest did not restart");

    /* each refusal once, with the reason judging in order gives (a dead letter names the raw
     * message it refused) */
    for (int k = 0; k < 4 * N && n_refused < n_refuse; k++) {
        Pactum__V1__Rejection *rej;
        int i = 0;

        if (!h_next_rejection(rejections, 5000, &rej, NULL, 0))
            break;
        cr_assert_not_null(rej);
        while (i < N && seq[i] != rej->source_seq)
            i++;
        cr_assert_lt(i, N, "refused raw #%llu was not sent here",
                     (unsigned long long)rej->source_seq);
        cr_assert_eq(rej->reason, expect[i], "envelope %d refused with reason %d, not %d", i,
                     (int)rej->reason, (int)expect[i]);
        cr_assert_not(refused[i], "envelope %d was refused twice", i);
        refused[i] = true;
        n_refused++;
        pactum__v1__rejection__free_unpacked(rej, NULL);
    }
    cr_assert_eq(n_refused, n_refuse);
    for (int k = 0; k < 300 && got.n < n_want; k++) {
        got.n = 0;
        cr_assert(
            h_read_stream(&h, PK_STREAM_EVENTS, "pactum.events.*.bot-a", collect_ahead, &got));
        if (got.n < n_want)
            pk_sleep_ms(100);
    }
    pk_sleep_ms(300);
    got.n = 0;
    cr_assert(h_read_stream(&h, PK_STREAM_EVENTS, "pactum.events.*.bot-a", collect_ahead, &got));
    cr_assert_eq(got.n, n_want, "%d events in the stream, %d accepted", got.n, n_want);
    for (int k = 0; k < n_want; k++)
        cr_assert_eq(got.idx[k], want[k], "event %d of the stream is ahead-%d, not ahead-%d", k,
                     got.idx[k], want[k]);
    ahead += h_metric(&h, "ingest", "pactum_ingest_batches_read_ahead_total");
    cr_assert_gt(ahead, 0, "no batch was read ahead");
    printf("bad input  %-34s %3d sent, batches of 16, stopped after %lld: %d accepted in order, "
           "%d refused (%d duplicates); %lld batches read ahead\n",
           "batches read ahead", N, at_stop, n_want, n_refuse, n_dup, ahead);
    fflush(stdout);
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}
