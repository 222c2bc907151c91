/* Judging events against clauses: edges of thresholds, samples and windows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "clause.h"

static pk_pact *pact;

static void load(const char *clauses)
{
    char doc[4096];
    pk_lint l = {0};

    snprintf(doc, sizeof(doc), "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\",\"clauses\":[%s]}",
             clauses);
    cr_assert_eq(pk_pact_parse(doc, strlen(doc), &pact, &l), PK_OK, "%s",
                 l.n ? l.msgs[0] : "");
}

static void fini(void)
{
    pk_pact_free(pact);
    pact = NULL;
}

TestSuite(clause, .fini = fini);

static Pactum__V1__Metric metric = PACTUM__V1__METRIC__INIT, *metricp[1] = {&metric};
static Pactum__V1__Label label = PACTUM__V1__LABEL__INIT, *labelp[1] = {&label};

static pk_event_msg event(int64_t ts, const char *kind, const char *metric_name, double value,
                          const char *pii)
{
    pk_event_msg ev;

    pactum__v1__event__init(&ev);
    ev.event_id = "e";
    ev.agent_id = "bot";
    ev.ts_ms = ts;
    ev.kind = (char *)kind;
    ev.source = PACTUM__V1__SOURCE__SOURCE_SELF;
    if (metric_name) {
        metric.name = (char *)metric_name;
        metric.value = value;
        ev.metrics = metricp;
        ev.n_metrics = 1;
    }
    if (pii) {
        label.name = "pii";
        label.value = (char *)pii;
        ev.labels = labelp;
        ev.n_labels = 1;
    }
    return ev;
}

#define LATENCY(op, minimum)                                                                      \
    "{\"id\":\"lat\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","        \
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"5m\",\"op\":\"" op "\","    \
    "\"threshold\":2000,\"min_samples\":" #minimum "}"

Test(clause, one_sample_short_of_min_samples_is_insufficient_never_pass)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(LATENCY("<=", 3));
    pk_clause_state_init(&s, &pact->clauses[0]);
    for (int i = 0; i < 2; i++) {
        ev = event(1000 + i, "reply", "latency_ms", 100, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &j);
        cr_assert(j.relevant);
        cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT, "sample %d", i + 1);
        cr_assert_eq(j.samples, (uint64_t)i + 1);
    }
    cr_assert_eq(s.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 0, "insufficient is not a pass");
    ev = event(1002, "reply", "latency_ms", 100, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 3, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert(j.verdict_due, "insufficient -> pass is a change of outcome");
}

Test(clause, exactly_at_the_threshold)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev = event(1000, "reply", "latency_ms", 2000, NULL);

    load(LATENCY("<=", 1) "," "{\"id\":\"strict\",\"promise\":\"faster\",\"severity\":\"low\","
                               "\"kind\":\"objective\",\"metric\":\"latency_ms\",\"aggregate\":"
                               "\"mean\",\"window\":\"5m\",\"op\":\"<\",\"threshold\":2000}");
    pk_clause_state_init(&s, &pact->clauses[0]);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS, "2000 <= 2000");
    cr_assert_float_eq(j.observed, 2000, 1e-9);
    pk_clause_state_init(&s, &pact->clauses[1]);
    pk_clause_judge(&pact->clauses[1], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL, "2000 < 2000 is false");
    cr_assert_eq(s.fail[PACTUM__V1__SOURCE__SOURCE_SELF], 1);
}

Test(clause, breach_leaves_the_window_and_the_clause_recovers)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(LATENCY("<=", 1));
    pk_clause_state_init(&s, &pact->clauses[0]);
    ev = event(0, "reply", "latency_ms", 9000, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    pk_clause_state_reported(&s, j.outcome);
    ev = event(299999, "reply", "latency_ms", 100, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL, "mean 4550 within 5m");
    cr_assert_not(j.verdict_due, "still failing, nothing new to say");
    ev = event(300000, "reply", "latency_ms", 100, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 3, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS, "the breach left the window");
    cr_assert(j.verdict_due);
}

Test(clause, events_without_the_metric_or_outside_when_are_not_looked_at)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load("{\"id\":\"lat\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","
         "\"when\":{\"field\":\"kind\",\"eq\":\"reply\"},\"metric\":\"latency_ms\","
         "\"aggregate\":\"max\",\"window\":\"5m\",\"op\":\"<=\",\"threshold\":2000}");
    pk_clause_state_init(&s, &pact->clauses[0]);
    ev = event(1, "heartbeat", "latency_ms", 9999, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_not(j.relevant);
    ev = event(2, "reply", "tokens", 10, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert_not(j.relevant);
    cr_assert_eq(s.since_verdict, 0);
}

Test(clause, sources_with_no_weight_do_not_count)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load("{\"id\":\"lat\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","
         "\"sources\":{\"evaluator\":1},\"metric\":\"latency_ms\",\"aggregate\":\"mean\","
         "\"window\":\"5m\",\"op\":\"<=\",\"threshold\":2000}");
    pk_clause_state_init(&s, &pact->clauses[0]);
    ev = event(1, "reply", "latency_ms", 1, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_not(j.relevant, "self reports do not count for this clause");
    ev.source = PACTUM__V1__SOURCE__SOURCE_EVALUATOR;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert(j.relevant);
    cr_assert_eq(s.pass[PACTUM__V1__SOURCE__SOURCE_EVALUATOR], 1);
}

#define NO_PII(extra)                                                                             \
    "{\"id\":\"pii\",\"promise\":\"no leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\"," \
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}" extra "}"

Test(clause, a_forbidden_event_is_one_violation_not_one_per_later_event)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(NO_PII(""));
    pk_clause_state_init(&s, &pact->clauses[0]);
    ev = event(1000, "reply", NULL, 0, "none");
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert_not(j.violation);
    ev = event(2000, "reply", NULL, 0, "leaked");
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert(j.violation);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    cr_assert(j.verdict_due);
    cr_assert_float_eq(j.observed, 1, 1e-12);
    pk_clause_state_reported(&s, j.outcome);
    ev = event(3000, "reply", NULL, 0, "none");
    pk_clause_judge(&pact->clauses[0], &s, &ev, 3, 10, &j);
    cr_assert_not(j.violation);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL, "still in the window");
    cr_assert_eq(s.fail[PACTUM__V1__SOURCE__SOURCE_SELF], 0);
    cr_assert_eq(s.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 1);
}

Test(clause, at_most_k_per_window_of_events)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(NO_PII(",\"max_count\":2,\"window\":{\"events\":64}"));
    pk_clause_state_init(&s, &pact->clauses[0]);
    for (int i = 0; i < 2; i++) {
        ev = event(1000 + i, "reply", NULL, 0, "leaked");
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &j);
        cr_assert_not(j.violation, "occurrence %d is allowed", i + 1);
        cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS);
    }
    ev = event(1002, "reply", NULL, 0, "leaked");
    pk_clause_judge(&pact->clauses[0], &s, &ev, 3, 10, &j);
    cr_assert(j.violation, "the third occurrence exceeds max_count 2");
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    for (int i = 0; i < 64; i++) {
        ev = event(2000 + i, "reply", NULL, 0, "none");
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 4, 1000, &j);
    }
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS, "64 clean events later");
}

Test(clause, verdicts_are_due_every_report_every_evaluations)
{
    pk_clause_state s;
    pk_judgement j;
    int due = 0;

    load(NO_PII(""));
    pk_clause_state_init(&s, &pact->clauses[0]);
    for (int i = 0; i < 25; i++) {
        pk_event_msg ev = event(1000 + i, "reply", NULL, 0, "none");
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &j);
        if (j.verdict_due) {
            due++;
            pk_clause_state_reported(&s, j.outcome);
        }
    }
    /* the first (outcome unknown -> pass), then after 10 more, then 10 more */
    cr_assert_eq(due, 3);
    cr_assert_eq(s.since_verdict, 4);
}

Test(clause, fingerprint_follows_the_window_definition)
{
    uint64_t a, b;

    load(LATENCY("<=", 1));
    a = pk_clause_fingerprint(&pact->clauses[0]);
    pact->clauses[0].window_ms = 600000;
    b = pk_clause_fingerprint(&pact->clauses[0]);
    cr_assert_neq(a, b);
    pact->clauses[0].window_ms = 300000;
    pact->clauses[0].threshold = 1;
    cr_assert_eq(pk_clause_fingerprint(&pact->clauses[0]), a,
                 "a new threshold keeps the samples");
}
