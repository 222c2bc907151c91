/*
 * The trust loop end to end: a real nats-server, the four services, and the
 * scenario of the README driven through the bus.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/pact.h"

static h_env h;
static pk_keypair agent, owner, stranger;
static char *pact_doc;

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    h_keypair(&agent, 1);
    h_keypair(&owner, 2);
    h_keypair(&stranger, 3);
    pact_doc = h_source_file("examples/pacts/support-bot.json");
    cr_assert_not_null(pact_doc);
}

static void teardown(void)
{
    h_stop(&h);
    free(pact_doc);
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 180);

static Pactum__V1__RegistryReceipt *register_all(void)
{
    Pactum__V1__RegistryReceipt *r = h_register_agent(&h, "support-bot-1", &agent, &owner);

    cr_assert_not_null(r, "no answer to the agent registration");
    cr_assert(r->ok, "agent registration refused: %s", r->message);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    r = h_register_pact(&h, &owner, pact_doc);
    cr_assert_not_null(r);
    cr_assert(r->ok, "pact registration refused: %s", r->message);
    cr_assert_eq(r->version, 1);
    cr_assert_eq(r->hash.len, PK_HASH_BYTES);
    return r;
}

Test(loop, kept_promises_make_the_agent_trusted_and_a_critical_violation_contains_it)
{
    Pactum__V1__RegistryReceipt *pact = register_all();
    Pactum__V1__TrustReport *r;
    const Pactum__V1__Verdict *v;
    uint8_t want_hash[PK_HASH_BYTES];

    pk_sha256(pact_doc, strlen(pact_doc), want_hash);
    cr_assert(memcmp(pact->hash.data, want_hash, PK_HASH_BYTES) == 0,
              "the pact is stored under the SHA-256 of its document");

    r = h_trust(&h, "support-bot-1");
    cr_assert_not_null(r);
    cr_assert_eq(r->status, PACTUM__V1__QUERY_STATUS__QUERY_OK);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_WATCH, "a new agent is watched");
    cr_assert_eq(r->state->evidence, 0);
    pactum__v1__trust_report__free_unpacked(r, NULL);

    cr_assert(h_publish_events(&h, "support-bot-1", &agent, "ok", 70, "reply", "latency_ms", 850,
                               "pii", "none"));
    r = h_wait_tier(&h, "support-bot-1", PACTUM__V1__TIER__TIER_TRUSTED, 30000);
    cr_assert_not_null(r);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_TRUSTED, "tier %d, lower %u, evidence %llu",
                 r->state->tier, r->state->lower_ppm, (unsigned long long)r->state->evidence);
    cr_assert_geq(r->state->lower_ppm, 900000);
    cr_assert_eq(r->state->n_violations, 0);
    cr_assert_null(r->last_violation);
    cr_assert_eq(r->n_pacts, 1);
    cr_assert_str_eq(r->pacts[0]->pact_id, "support-bot");
    cr_assert_eq(r->pacts[0]->version, 1);
    cr_assert(memcmp(r->pacts[0]->hash.data, want_hash, PK_HASH_BYTES) == 0);
    cr_assert_geq(r->n_tier_history, 2, "watch -> standard -> trusted");
    cr_assert_eq(r->tier_history[0]->to, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_str_eq(r->tier_history[0]->rule, "score");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    cr_assert(h_publish_events(&h, "support-bot-1", &agent, "leak", 1, "reply", "latency_ms", 900,
                               "pii", "leaked"));
    r = h_wait_tier(&h, "support-bot-1", PACTUM__V1__TIER__TIER_CONTAINED, 30000);
    cr_assert_not_null(r);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(r->state->n_violations, 1);
    cr_assert_eq(r->state->violations[0]->severity, PACTUM__V1__SEVERITY__SEVERITY_CRITICAL);
    cr_assert_eq(r->state->violations[0]->count, 1);
    v = r->last_violation;
    cr_assert_not_null(v, "the report names the verdict that contained the agent");
    cr_assert_str_eq(v->clause_id, "no-pii-leak");
    cr_assert_eq(v->outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    cr_assert_eq(v->severity, PACTUM__V1__SEVERITY__SEVERITY_CRITICAL);
    cr_assert_eq(v->pact_version, 1);
    cr_assert(memcmp(v->pact_hash.data, want_hash, PK_HASH_BYTES) == 0,
              "the verdict names the pact version in force");
    cr_assert_eq(v->n_evidence, 1);
    cr_assert_str_eq(v->evidence[0]->event_id, "leak-0");
    cr_assert_gt(v->evidence[0]->seq, 70, "the leak came after the 70 good events");
    cr_assert_eq(r->tier_history[0]->from, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_eq(r->tier_history[0]->to, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_str_eq(r->tier_history[0]->rule, "critical violation contains at once");
    cr_assert_not_null(r->tier_history[0]->verdict);
    cr_assert(h_containment_timed(&h, r->tier_history[0], 30000), "%s", h.why);
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* good behaviour alone does not lift containment */
    cr_assert(h_publish_events(&h, "support-bot-1", &agent, "after", 20, "reply", "latency_ms", 500,
                               "pii", "none"));
    cr_assert_geq(h_wait_metric(&h, "ingest", "pactum_ingest_events_accepted_total", 91, 20000),
                  91);
    r = h_trust(&h, "support-bot-1");
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    pactum__v1__registry_receipt__free_unpacked(pact, NULL);

    cr_assert_eq(h_stop_services(&h), 0, "every service exits 0 on SIGTERM");
}

Test(loop, oracle_answers_unknown_agents_and_bad_queries_clearly)
{
    Pactum__V1__TrustReport *r = h_trust(&h, "nobody");
    natsMsg *reply = NULL;

    cr_assert_not_null(r);
    cr_assert_eq(r->status, PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT);
    cr_assert(strstr(r->message, "unknown agent") != NULL, "%s", r->message);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    r = h_trust(&h, "bad.agent.id");
    cr_assert_eq(r->status, PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(
        natsConnection_Request(&reply, h.bus->nc, PK_SUBJ_ORACLE_TRUST, "\xff\xff\xff", 3, 5000),
        NATS_OK);
    cr_assert_eq(pk_answer_open(
                     (const uint8_t *)natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                     PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT,
                     &pactum__v1__trust_report__descriptor, NULL, NULL, (ProtobufCMessage **)&r),
                 PK_OK, "even a refusal is a signed answer: %s", pk_error_msg());
    cr_assert_eq(r->status, PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    natsMsg_Destroy(reply);
    cr_assert_eq(h_metric(&h, "oracle", "pactum_oracle_bad_requests_total"), 2);
}

Test(loop, registrations_are_idempotent_versioned_and_owner_signed)
{
    Pactum__V1__RegistryReceipt *r = register_all(), *r2;
    char *v2;
    size_t len = strlen(pact_doc);

    /* the same registration again is a no-op that answers with the same version */
    r2 = h_register_agent(&h, "support-bot-1", &agent, &owner);
    cr_assert(r2->ok, "%s", r2->message);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);
    r2 = h_register_pact(&h, &owner, pact_doc);
    cr_assert(r2->ok);
    cr_assert_eq(r2->version, 1);
    cr_assert_eq(r2->seq, r->seq);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);

    /* another key cannot take the agent id, nor sign its pacts */
    r2 = h_register_agent(&h, "support-bot-1", &stranger, &stranger);
    cr_assert_not(r2->ok);
    cr_assert_eq(r2->reason, PACTUM__V1__REASON__REASON_CONFLICT);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);
    r2 = h_register_pact(&h, &stranger, pact_doc);
    cr_assert_not(r2->ok);
    cr_assert_eq(r2->reason, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);

    /* a changed document is a new version; the old one stays */
    v2 = malloc(len + 2);
    memcpy(v2, pact_doc, len + 1);
    strcpy(strstr(v2, "\"threshold\": 2000"), "\"threshold\": 1500");
    strcat(v2, strstr(pact_doc, "\"threshold\": 2000") + strlen("\"threshold\": 2000"));
    r2 = h_register_pact(&h, &owner, v2);
    cr_assert(r2->ok, "%s", r2->message);
    cr_assert_eq(r2->version, 2);
    cr_assert(memcmp(r2->hash.data, r->hash.data, PK_HASH_BYTES) != 0);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);
    free(v2);

    /* a pact that does not lint is refused with the problems */
    r2 = h_register_pact(&h, &owner,
                         "{\"pactum\":1,\"id\":\"support-bot\",\"agent\":"
                         "\"support-bot-1\",\"clauses\":[]}");
    cr_assert_not(r2->ok);
    cr_assert_eq(r2->reason, PACTUM__V1__REASON__REASON_BAD_PACT);
    cr_assert(strstr(r2->message, "clauses") != NULL, "%s", r2->message);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
}

Test(loop, every_pact_binding_an_agent_is_judged)
{
    char doc[1024], id[32];
    Pactum__V1__RegistryReceipt *r = h_register_agent(&h, "multi", &agent, &owner);
    Pactum__V1__TrustReport *rep;
    int64_t deadline;

    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    /* eight pacts, each forbidding its own kind of event */
    for (int i = 0; i < PK_PACTS_PER_AGENT_MAX + 1; i++) {
        snprintf(id, sizeof(id), "multi-%d", i);
        snprintf(
            doc, sizeof(doc),
            "{\"pactum\":1,\"id\":\"%s\",\"agent\":\"multi\",\"clauses\":[{\"id\":"
            "\"c\",\"promise\":\"never %s\",\"severity\":\"low\",\"kind\":"
            "\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"kind\",\"eq\":\"bad-%d\"}}]}",
            id, id, i);
        r = h_register_pact(&h, &owner, doc);
        cr_assert_not_null(r);
        if (i < PK_PACTS_PER_AGENT_MAX)
            cr_assert(r->ok, "pact %d: %s", i, r->message);
        else
            cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_CONFLICT,
                         "a ninth pact is refused, not silently ignored");
        pactum__v1__registry_receipt__free_unpacked(r, NULL);
    }
    /* one event breaking each of the eight pacts */
    for (int i = 0; i < PK_PACTS_PER_AGENT_MAX; i++) {
        char kind[16], prefix[16];
        snprintf(kind, sizeof(kind), "bad-%d", i);
        snprintf(prefix, sizeof(prefix), "e%d", i);
        cr_assert(h_publish_events(&h, "multi", &agent, prefix, 1, kind, NULL, 0, NULL, NULL));
    }
    deadline = pk_mono_ms() + 30000;
    for (;;) {
        rep = h_trust(&h, "multi");
        cr_assert_not_null(rep);
        if ((rep->state && rep->state->n_violations == 1 &&
             rep->state->violations[0]->count == PK_PACTS_PER_AGENT_MAX) ||
            pk_mono_ms() > deadline)
            break;
        pactum__v1__trust_report__free_unpacked(rep, NULL);
        pk_sleep_ms(100);
    }
    cr_assert_eq(rep->state->n_violations, 1);
    cr_assert_eq(rep->state->violations[0]->count, PK_PACTS_PER_AGENT_MAX,
                 "a violation of each pact");
    cr_assert_eq(rep->state->n_clauses, PK_PACTS_PER_AGENT_MAX);
    cr_assert_eq(rep->n_pacts, PK_PACTS_PER_AGENT_MAX);
    pactum__v1__trust_report__free_unpacked(rep, NULL);
}

/* The last outcome the oracle reports for a clause of agent, or 0. */
static Pactum__V1__Outcome clause_outcome(const char *who, const char *clause)
{
    Pactum__V1__TrustReport *r = h_trust(&h, who);
    Pactum__V1__Outcome o = 0;

    for (size_t i = 0; r && r->state && i < r->state->n_clauses; i++) {
        if (strcmp(r->state->clauses[i]->clause_id, clause) == 0)
            o = r->state->clauses[i]->last_outcome;
    }
    if (r)
        pactum__v1__trust_report__free_unpacked(r, NULL);
    return o;
}

static bool wait_clause(const char *who, const char *clause, Pactum__V1__Outcome want,
                        int timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;

    while (pk_mono_ms() < deadline) {
        if (clause_outcome(who, clause) == want)
            return true;
        pk_sleep_ms(100);
    }
    return false;
}

Test(loop, silence_makes_a_freshness_clause_stale_by_the_clock)
{
    Pactum__V1__RegistryReceipt *r = h_register_agent(&h, "beater", &agent, &owner);

    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    cr_assert(h_pact(&h, &owner,
                     "{\"pactum\":1,\"id\":\"beats\",\"agent\":\"beater\",\"clauses\":[{\"id\":"
                     "\"heartbeat\",\"promise\":\"beats every 2 seconds\",\"severity\":"
                     "\"medium\",\"kind\":\"freshness\",\"evidence\":{\"field\":\"kind\","
                     "\"eq\":\"heartbeat\"},\"max_gap\":\"2s\"}]}"),
              "%s", h.why);
    cr_assert(h_publish_events(&h, "beater", &agent, "hb1", 1, "heartbeat", NULL, 0, NULL, NULL));
    cr_assert(wait_clause("beater", "heartbeat", PACTUM__V1__OUTCOME__OUTCOME_PASS, 10000));
    /* no event at all: only the clock can notice */
    cr_assert(wait_clause("beater", "heartbeat", PACTUM__V1__OUTCOME__OUTCOME_STALE, 15000),
              "stale within a few seconds of the 2 s gap");
    cr_assert(h_publish_events(&h, "beater", &agent, "hb2", 1, "heartbeat", NULL, 0, NULL, NULL));
    cr_assert(wait_clause("beater", "heartbeat", PACTUM__V1__OUTCOME__OUTCOME_PASS, 10000),
              "fresh again when evidence arrives");
    cr_assert_geq(h_metric(&h, "evaluator", "pactum_evaluator_verdicts_total{outcome=\"stale\"}"),
                  1);
}

Test(loop, a_fast_error_budget_burn_contains_the_agent)
{
    Pactum__V1__RegistryReceipt *r = h_register_agent(&h, "caller", &agent, &owner);
    Pactum__V1__TrustReport *rep;

    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    r = h_register_pact(
        &h, &owner,
        "{\"pactum\":1,\"id\":\"calls\",\"agent\":\"caller\",\"clauses\":[{\"id\":\"errors\","
        "\"promise\":\"99% of calls succeed\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"error\",\"aggregate\":\"rate\",\"window\":\"1h\",\"op\":\"<=\","
        "\"threshold\":0.5,\"min_samples\":20,\"burn_rate\":{\"target\":0.99,\"triggers\":["
        "{\"long\":\"1h\",\"short\":\"5m\",\"factor\":14.4,\"severity\":\"critical\"}]}}]}");
    cr_assert(r && r->ok, "%s", r ? r->message : "");
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    cr_assert(h_publish_events(&h, "caller", &agent, "ok", 20, "call", "error", 0, NULL, NULL));
    cr_assert(h_publish_events(&h, "caller", &agent, "bad", 10, "call", "error", 1, NULL, NULL));
    rep = h_wait_tier(&h, "caller", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_eq(rep->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_not_null(rep->last_violation);
    cr_assert_str_eq(rep->last_violation->trigger, "1h/5m x14.4");
    cr_assert_gt(rep->last_violation->observed, 14.4, "burn %g", rep->last_violation->observed);
    pactum__v1__trust_report__free_unpacked(rep, NULL);
}
