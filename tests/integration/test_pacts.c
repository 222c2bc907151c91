/*
 * Pacts over time: new versions take effect without restarting anything,
 * every version stays queryable, and the evaluator's windows survive a
 * restart.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair agent, owner;

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    cr_assert(h_agent_with_pact(&h, "bot", 21, &agent, &owner, NULL), "%s", h.why);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(pacts, .init = setup, .fini = teardown, .timeout = 180);

static char *latency_pact(int threshold, int min_samples)
{
    static char doc[1024];

    snprintf(doc, sizeof(doc),
             "{\"pactum\":1,\"id\":\"lat\",\"agent\":\"bot\",\"clauses\":[{\"id\":\"latency\","
             "\"promise\":\"fast on average\",\"severity\":\"high\",\"kind\":\"objective\","
             "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
             "\"threshold\":%d,\"min_samples\":%d}]}",
             threshold, min_samples);
    return doc;
}

static Pactum__V1__ClauseScore *find_clause(Pactum__V1__TrustReport *r, const char *id)
{
    for (size_t i = 0; r && r->state && i < r->state->n_clauses; i++) {
        if (strcmp(r->state->clauses[i]->clause_id, id) == 0)
            return r->state->clauses[i];
    }
    return NULL;
}

/* Poll until clause `latency` of bot has the outcome; returns the report (caller frees). */
static Pactum__V1__TrustReport *wait_outcome(Pactum__V1__Outcome want)
{
    int64_t deadline = pk_mono_ms() + 20000;
    Pactum__V1__TrustReport *r = NULL;

    do {
        Pactum__V1__ClauseScore *c;
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        r = h_trust(&h, "bot");
        c = find_clause(r, "latency");
        if (c && c->last_outcome == want)
            return r;
        pk_sleep_ms(100);
    } while (pk_mono_ms() < deadline);
    return r;
}

static Pactum__V1__PactReport *history(uint32_t version, bool document)
{
    Pactum__V1__PactQuery q = PACTUM__V1__PACT_QUERY__INIT;

    q.pact_id = "lat";
    q.version = version;
    q.document = document;
    return (Pactum__V1__PactReport *)h_ask(&h, PK_SUBJ_ORACLE_PACT, &q.base,
                                           PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT);
}

Test(pacts, a_new_version_takes_effect_without_a_restart_and_every_version_stays_queryable)
{
    Pactum__V1__RegistryReceipt *r1 = h_register_pact(&h, &owner, latency_pact(2000, 1)), *r2;
    Pactum__V1__TrustReport *rep;
    Pactum__V1__PactReport *hist;
    char *v1 = strdup(latency_pact(2000, 1));

    cr_assert(r1 && r1->ok && r1->version == 1);
    cr_assert(h_publish_events(&h, "bot", &agent, "a", 5, "reply", "latency_ms", 1500, NULL, NULL));
    rep = wait_outcome(PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert_eq(find_clause(rep, "latency")->last_outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS,
                 "1500 ms meets v1's 2000 ms");
    pactum__v1__trust_report__free_unpacked(rep, NULL);

    r2 = h_register_pact(&h, &owner, latency_pact(1000, 1));
    cr_assert(r2 && r2->ok && r2->version == 2, "%s", r2 ? r2->message : "");
    cr_assert(h_publish_events(&h, "bot", &agent, "b", 5, "reply", "latency_ms", 1500, NULL, NULL));
    rep = wait_outcome(PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    cr_assert_eq(find_clause(rep, "latency")->last_outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL,
                 "the same 1500 ms breaks v2's 1000 ms");
    cr_assert_not_null(rep->last_violation);
    cr_assert_eq(rep->last_violation->pact_version, 2, "the verdict names the version in force");
    cr_assert(memcmp(rep->last_violation->pact_hash.data, r2->hash.data, PK_HASH_BYTES) == 0);
    cr_assert_eq(rep->n_pacts, 1);
    cr_assert_eq(rep->pacts[0]->version, 2);
    pactum__v1__trust_report__free_unpacked(rep, NULL);

    hist = history(0, false);
    cr_assert_not_null(hist);
    cr_assert_eq(hist->status, PACTUM__V1__QUERY_STATUS__QUERY_OK);
    cr_assert_eq(hist->n_versions, 2);
    cr_assert_eq(hist->versions[0]->version, 1);
    cr_assert(memcmp(hist->versions[0]->hash.data, r1->hash.data, PK_HASH_BYTES) == 0);
    cr_assert_eq(hist->versions[1]->version, 2);
    cr_assert_eq(hist->versions[0]->document.len, 0, "no documents unless asked");
    cr_assert(memcmp(hist->versions[0]->owner_key.data, owner.pk, PK_PUBKEY_BYTES) == 0);
    pactum__v1__pact_report__free_unpacked(hist, NULL);

    hist = history(1, true);
    cr_assert_eq(hist->n_versions, 1);
    cr_assert_eq(hist->versions[0]->document.len, strlen(v1));
    cr_assert(memcmp(hist->versions[0]->document.data, v1, strlen(v1)) == 0,
              "version 1 never changes");
    cr_assert_gt(hist->versions[0]->submission.len, 0, "the owner's signed submission is kept");
    pactum__v1__pact_report__free_unpacked(hist, NULL);

    hist = history(3, false);
    cr_assert_eq(hist->status, PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND);
    pactum__v1__pact_report__free_unpacked(hist, NULL);
    pactum__v1__registry_receipt__free_unpacked(r1, NULL);
    pactum__v1__registry_receipt__free_unpacked(r2, NULL);
    free(v1);
}

Test(pacts, evaluator_windows_survive_a_restart)
{
    Pactum__V1__RegistryReceipt *r = h_register_pact(&h, &owner, latency_pact(2000, 5));
    Pactum__V1__TrustReport *rep;

    cr_assert(r && r->ok);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    cr_assert(h_publish_events(&h, "bot", &agent, "x", 3, "reply", "latency_ms", 100, NULL, NULL));
    rep = wait_outcome(PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT);
    cr_assert_eq(find_clause(rep, "latency")->last_outcome,
                 PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT, "3 of 5 samples");
    pactum__v1__trust_report__free_unpacked(rep, NULL);

    cr_assert_eq(h_stop_pid(h.svc_pid[1], SIGTERM, 15000), 0, "evaluator stops cleanly");
    h.svc_pid[1] = 0;
    cr_assert(h_start_service(&h, 1, NULL), "evaluator starts again");

    cr_assert(h_publish_events(&h, "bot", &agent, "y", 2, "reply", "latency_ms", 100, NULL, NULL));
    rep = wait_outcome(PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert_eq(find_clause(rep, "latency")->last_outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS,
                 "the 3 samples from before the restart still count: 5 of 5");
    pactum__v1__trust_report__free_unpacked(rep, NULL);
}

#define SMALL_PACT                                                                                 \
    "{\"pactum\":1,\"id\":\"%s\",\"agent\":\"bot\",\"clauses\":[{\"id\":\"c\","                    \
    "\"promise\":\"never leak\",\"severity\":\"high\",\"kind\":\"forbidden\",\"window\":\"1d\","   \
    "\"match\":{\"field\":\"kind\",\"eq\":\"leak\"}}]%s}"

Test(pacts, only_one_pact_of_an_agent_sets_its_governance)
{
    static const char *gov = ",\"governance\":{\"half_life\":\"7d\"}";
    char doc[1024];
    Pactum__V1__RegistryReceipt *r;

    snprintf(doc, sizeof(doc), SMALL_PACT, "first", gov);
    cr_assert(h_pact(&h, &owner, doc), "%s", h.why);
    snprintf(doc, sizeof(doc), SMALL_PACT, "second", gov);
    r = h_register_pact(&h, &owner, doc);
    cr_assert_not_null(r);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_CONFLICT);
    cr_assert(strstr(r->message, "already governed by pact first") != NULL, "%s", r->message);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    /* without a governance section it is welcome; a new version of the
     * governing pact may keep its section */
    snprintf(doc, sizeof(doc), SMALL_PACT, "second", "");
    cr_assert(h_pact(&h, &owner, doc), "%s", h.why);
    snprintf(doc, sizeof(doc), SMALL_PACT, "first", ",\"governance\":{\"half_life\":\"3d\"}");
    r = h_register_pact(&h, &owner, doc);
    cr_assert(r && r->ok, "%s", r ? r->message : "no answer");
    cr_assert_eq(r->version, 2);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
}
