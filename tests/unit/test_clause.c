/* Judging events against clauses: edges of thresholds, samples and windows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/clause.h"

static pk_pact *pact;

static void load(const char *clauses)
{
    char doc[4096];
    pk_lint l = {0};

    snprintf(doc, sizeof(doc), "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\",\"clauses\":[%s]}",
             clauses);
    cr_assert_eq(pk_pact_parse(doc, strlen(doc), &pact, &l), PK_OK, "%s", l.n ? l.msgs[0] : "");
}

static void fini(void)
{
    pk_pact_free(pact);
    pact = NULL;
}

TestSuite(clause, .fini = fini);

/* A self-reported event of "bot"; it points into storage the next call reuses. */
static pk_event_msg event(int64_t ts, const char *kind, const char *metric_name, double value,
                          const char *pii)
{
    static h_event e;

    return *h_event_set(&e, "bot", ts, kind, metric_name, value, pii ? "pii" : NULL, pii);
}

#define LATENCY(op, minimum)                                                                       \
    "{\"id\":\"lat\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","           \
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"5m\",\"op\":\"" op "\","        \
    "\"threshold\":2000,\"min_samples\":" #minimum "}"

Test(clause, one_sample_short_of_min_samples_is_insufficient_never_pass)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(LATENCY("<=", 3));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 2; i++) {
        ev = event(1000 + i, "reply", "latency_ms", 100, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &j);
        cr_assert(j.relevant);
        cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT, "sample %d", i + 1);
        cr_assert_eq(j.samples, (uint64_t)i + 1);
    }
    cr_assert_eq(s.h.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 0, "insufficient is not a pass");
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

    load(LATENCY("<=", 1) ","
                          "{\"id\":\"strict\",\"promise\":\"faster\",\"severity\":\"low\","
                          "\"kind\":\"objective\",\"metric\":\"latency_ms\",\"aggregate\":"
                          "\"mean\",\"window\":\"5m\",\"op\":\"<\",\"threshold\":2000}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS, "2000 <= 2000");
    cr_assert_float_eq(j.observed, 2000, 1e-9);
    pk_clause_state_init(&s, &pact->clauses[1], 0);
    pk_clause_judge(&pact->clauses[1], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL, "2000 < 2000 is false");
    cr_assert_eq(s.h.fail[PACTUM__V1__SOURCE__SOURCE_SELF], 1);
}

Test(clause, breach_leaves_the_window_and_the_clause_recovers)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(LATENCY("<=", 1));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
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
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    ev = event(1, "heartbeat", "latency_ms", 9999, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_not(j.relevant);
    ev = event(2, "reply", "tokens", 10, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert_not(j.relevant);
    cr_assert_eq(s.h.since_verdict, 0);
}

Test(clause, sources_with_no_weight_do_not_count)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load("{\"id\":\"lat\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","
         "\"sources\":{\"evaluator\":1},\"metric\":\"latency_ms\",\"aggregate\":\"mean\","
         "\"window\":\"5m\",\"op\":\"<=\",\"threshold\":2000}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    ev = event(1, "reply", "latency_ms", 1, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_not(j.relevant, "self reports do not count for this clause");
    ev.source = PACTUM__V1__SOURCE__SOURCE_EVALUATOR;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert(j.relevant);
    cr_assert_eq(s.h.pass[PACTUM__V1__SOURCE__SOURCE_EVALUATOR], 1);
}

Test(clause, telemetry_counts_with_its_weight_and_by_default)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    /* weighed by the pact, and by the default (0.5) when the pact does not say */
    load("{\"id\":\"rm\",\"promise\":\"no rm\",\"severity\":\"critical\",\"kind\":"
         "\"forbidden\",\"window\":\"1d\",\"sources\":{\"telemetry\":1},\"match\":{"
         "\"field\":\"kind\",\"eq\":\"rm\"}}," LATENCY("<=", 1));
    cr_assert_float_eq(pact->clauses[0].weight[PACTUM__V1__SOURCE__SOURCE_TELEMETRY], 1, 1e-12);
    cr_assert_float_eq(pact->clauses[1].weight[PACTUM__V1__SOURCE__SOURCE_TELEMETRY], 0.5, 1e-12);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    ev = event(1000, "rm", NULL, 0, NULL);
    ev.source = PACTUM__V1__SOURCE__SOURCE_TELEMETRY;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert(j.relevant, "telemetry is looked at");
    cr_assert(j.violation);
    pk_clause_state_release(&s);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    ev.source = PACTUM__V1__SOURCE__SOURCE_SELF;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert_not(j.relevant, "the agent's own word does not count for this clause");
    pk_clause_state_release(&s);
}

#define NO_PII(extra)                                                                              \
    "{\"id\":\"pii\",\"promise\":\"no leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\","   \
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}" extra "}"

Test(clause, a_forbidden_event_is_one_violation_not_one_per_later_event)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(NO_PII(",\"window\":\"1d\""));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
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
    cr_assert_eq(s.h.fail[PACTUM__V1__SOURCE__SOURCE_SELF], 0);
    cr_assert_eq(s.h.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 1);
}

Test(clause, at_most_k_per_window_of_events)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(NO_PII(",\"max_count\":2,\"window\":{\"events\":64}"));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
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

    load(NO_PII(",\"window\":\"1d\""));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
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
    cr_assert_eq(s.h.since_verdict, 4);
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
    cr_assert_eq(pk_clause_fingerprint(&pact->clauses[0]), a, "a new threshold keeps the samples");
}

/* --- percentiles ------------------------------------------------------------ */

Test(clause, p95_flips_when_the_96th_percent_sample_is_slow)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load("{\"id\":\"p95\",\"promise\":\"95% within 2s\",\"severity\":\"high\",\"kind\":"
         "\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"p95\",\"window\":\"1h\","
         "\"op\":\"<=\",\"threshold\":2000,\"min_samples\":100}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 100; i++) {
        ev = event(1000 + i, "reply", "latency_ms", i < 95 ? 1000 : 5000, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 1000, &j);
        if (i < 99)
            cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT);
    }
    /* nearest rank 95 of 100 is the last fast sample */
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert(j.observed >= 990 && j.observed <= 1010, "p95 %g within 1%% of 1000", j.observed);
    ev = event(1200, "reply", "latency_ms", 5000, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 101, 1000, &j);
    /* rank ceil(0.95 * 101) = 96 is now a slow one */
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    cr_assert(j.observed >= 4950 && j.observed <= 5050, "p95 %g", j.observed);
    pk_clause_state_release(&s);
}

Test(clause, state_with_a_sketch_survives_storage)
{
    pk_clause_state s, back;
    pk_judgement j;
    uint8_t *buf;
    size_t len;

    load("{\"id\":\"p99\",\"promise\":\"p99 under 3s\",\"severity\":\"high\",\"kind\":"
         "\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"p99\",\"window\":\"1h\","
         "\"op\":\"<\",\"threshold\":3000}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 500; i++) {
        pk_event_msg ev = event(1000 + i, "reply", "latency_ms", 100 + i * 7 % 3000, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 1000, &j);
    }
    len = pk_clause_state_size(&s);
    buf = malloc(len);
    pk_clause_state_write(&s, buf);
    cr_assert_eq(pk_clause_state_read(&back, buf, len), PK_OK);
    cr_assert_eq(back.sketch.n, s.sketch.n);
    cr_assert_eq(memcmp(&back.h, &s.h, sizeof(s.h)), 0);
    cr_assert_eq(pk_clause_state_read(&back, buf, len - 3), PK_EDECODE);
    buf[0] ^= 0xff;
    cr_assert_eq(pk_clause_state_read(&back, buf, len), PK_EDECODE, "wrong magic");
    free(buf);
    pk_clause_state_release(&s);
}

/* --- burn rates --------------------------------------------------------------- */

#define ERRORS                                                                                     \
    "{\"id\":\"errors\",\"promise\":\"99% of calls succeed\",\"severity\":\"high\","               \
    "\"kind\":\"objective\",\"metric\":\"error\",\"aggregate\":\"rate\",\"window\":\"6h\","        \
    "\"op\":\"<=\",\"threshold\":0.5,\"min_samples\":20,\"burn_rate\":{\"target\":0.99,"           \
    "\"triggers\":[{\"long\":\"1h\",\"short\":\"5m\",\"factor\":14.4,\"severity\":\"critical\"},"  \
    "{\"long\":\"6h\",\"short\":\"30m\",\"factor\":6,\"severity\":\"medium\",\"consequence\":"     \
    "\"restrict\"}]}}"

/* Feed n events over span_ms where every k-th is an error; return which triggers fire. */
static unsigned burn_after(int n, int64_t span_ms, int every)
{
    pk_clause_state s;
    pk_judgement j;
    unsigned firing;

    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < n; i++) {
        pk_event_msg ev =
            event(10000000 + span_ms * i / n, "call", "error", i % every == 0 ? 1 : 0, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 100000, &j);
        for (int t = 0; t < j.n_burn; t++)
            cr_assert_eq((s.h.burning >> j.burn[t].trigger) & 1, j.burn[t].firing);
    }
    firing = s.h.burning;
    pk_clause_state_release(&s);
    return firing;
}

Test(clause, fast_burn_fires_both_triggers)
{
    load(ERRORS);
    /* 1 error in 5 = 20% of calls fail: budget burns 20x */
    cr_assert_eq(burn_after(600, 600000, 5), 0x3);
}

Test(clause, slow_burn_fires_only_the_slow_trigger)
{
    load(ERRORS);
    /* 1 error in 10 = 10%: burns 10x, above 6 but below 14.4 */
    cr_assert_eq(burn_after(600, 600000, 10), 0x2);
}

Test(clause, healthy_traffic_fires_nothing_and_too_few_samples_never_fire)
{
    load(ERRORS);
    cr_assert_eq(burn_after(600, 600000, 200), 0, "0.5% errors burn 0.5x");
    cr_assert_eq(burn_after(19, 60000, 1), 0, "19 samples, all errors, min_samples 20");
}

Test(clause, a_burn_that_stops_is_reported)
{
    pk_clause_state s;
    pk_judgement j;
    bool fired = false, stopped = false;

    load(ERRORS);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 2000; i++) {
        /* five minutes of 50% errors, then two hours clean */
        int64_t ts = i < 100 ? 3000 * i : 300000 + 3600 * (i - 100);
        pk_event_msg ev = event(ts, "call", "error", i < 100 && i % 2 == 0 ? 1 : 0, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 100000, &j);
        for (int t = 0; t < j.n_burn; t++) {
            if (j.burn[t].trigger == 0 && j.burn[t].firing)
                fired = true;
            if (j.burn[t].trigger == 0 && !j.burn[t].firing && fired)
                stopped = true;
        }
    }
    cr_assert(fired && stopped);
    pk_clause_state_release(&s);
}

/* --- freshness ---------------------------------------------------------------- */

Test(clause, freshness_counts_arrival_by_the_bus_clock)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load(
        "{\"id\":\"hb\",\"promise\":\"beats every minute\",\"severity\":\"medium\",\"kind\":"
        "\"freshness\",\"evidence\":{\"field\":\"kind\",\"eq\":\"heartbeat\"},\"max_gap\":\"1m\"}");
    pk_clause_state_init(&s, &pact->clauses[0], 5000);
    cr_assert_eq(pk_freshness_deadline(&pact->clauses[0], &s), 65000,
                 "the clock starts when the pact comes into force");
    ev = event(999999999, "reply", NULL, 0, NULL);
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_not(j.relevant, "not a heartbeat");
    ev = event(999999999, "heartbeat", NULL, 0, NULL);
    ev.received_ms = 30000;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert(j.relevant);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_PASS);
    cr_assert_eq(pk_freshness_deadline(&pact->clauses[0], &s), 90000,
                 "a future timestamp written by the agent does not extend it");
}

/* --- scope --------------------------------------------------------------------- */

#define SCOPE                                                                                      \
    "{\"id\":\"scope\",\"promise\":\"only ticket work, at most 500 USD a refund\","                \
    "\"severity\":\"high\",\"kind\":\"scope\",\"actions\":[\"reply\",\"tickets.*\"],"              \
    "\"spend\":{\"currency\":\"USD\",\"per_action\":500,\"per_window\":2000,\"window\":\"24h\"}}"

static pk_judgement act(pk_clause_state *s, int64_t ts, const char *action, double amount,
                        const char *currency)
{
    pk_judgement j;
    pk_event_msg ev = event(ts, "action", NULL, 0, NULL);

    ev.action = (char *)action;
    ev.amount = amount;
    ev.currency = (char *)currency;
    pk_clause_judge(&pact->clauses[0], s, &ev, (uint64_t)ts, 10, &j);
    return j;
}

Test(clause, scope_prefix_patterns)
{
    pk_clause_state s;
    pk_judgement j;

    load(SCOPE);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    j = act(&s, 1, "tickets.close", 0, "");
    cr_assert(j.relevant);
    cr_assert_not(j.violation);
    j = act(&s, 2, "ticketsx", 0, "");
    cr_assert(j.violation, "'tickets.*' does not cover 'ticketsx'");
    cr_assert(strstr(j.why, "action 'ticketsx' is outside the scope") != NULL, "%s", j.why);
    j = act(&s, 3, "reply", 0, "");
    cr_assert_not(j.violation);
    j = act(&s, 4, "", 0, "");
    cr_assert_not(j.relevant, "no action, no amount: nothing to check");
}

Test(clause, spend_limits_per_action_and_per_window)
{
    pk_clause_state s;
    pk_judgement j;

    load(SCOPE);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    j = act(&s, 1000, "tickets.refund", 500, "USD");
    cr_assert_not(j.violation, "exactly the per-action limit is allowed");
    j = act(&s, 2000, "tickets.refund", 500.01, "USD");
    cr_assert(j.violation);
    cr_assert(strstr(j.why, "in one action") != NULL, "%s", j.why);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    act(&s, 1000, "tickets.refund", 500, "USD");
    act(&s, 2000, "tickets.refund", 500, "USD");
    act(&s, 3000, "tickets.refund", 500, "USD");
    j = act(&s, 4000, "tickets.refund", 500, "USD");
    cr_assert_not(j.violation, "2000 USD in the window is the limit, not over it");
    j = act(&s, 5000, "tickets.refund", 1, "USD");
    cr_assert(j.violation, "the limit is reached");
    cr_assert(strstr(j.why, "within the window") != NULL, "%s", j.why);
    cr_assert_float_eq(j.observed, 2001, 1e-9);
    j = act(&s, 5000 + 86400000, "tickets.refund", 400, "USD");
    cr_assert_not(j.violation, "a day later the window has emptied");
    j = act(&s, 6000 + 86400000, "tickets.refund", 10, "EUR");
    cr_assert(j.violation);
    cr_assert(strstr(j.why, "allows USD only") != NULL, "%s", j.why);
}

Test(clause, a_state_written_by_an_older_evaluator_is_read)
{
    pk_clause_state s, back;
    pk_judgement j;
    uint8_t *buf, *cur;
    size_t n;

    load(LATENCY("<=", 1));
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 5; i++) {
        pk_event_msg ev = event(1000 * i, "reply", "latency_ms", 100 + i, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &j);
    }
    /* the older layout: head, then each window as it is in memory */
    n = sizeof(s.h) + s.h.n_windows * sizeof(pk_window);
    buf = malloc(n);
    memcpy(buf, &s.h, sizeof(s.h));
    ((pk_clause_head *)buf)->magic = PK_CLAUSE_STATE_MAGIC_V2;
    cur = buf + sizeof(s.h);
    for (uint32_t i = 0; i < s.h.n_windows; i++, cur += sizeof(pk_window))
        memcpy(cur, &s.win[i], sizeof(pk_window));
    cr_assert_eq(pk_clause_state_read(&back, buf, n), PK_OK);
    cr_assert_eq(back.h.magic, PK_CLAUSE_STATE_MAGIC, "rewritten in the new form");
    cr_assert(memcmp(back.win, s.win, s.h.n_windows * sizeof(pk_window)) == 0);
    free(buf);
    /* and the new form is smaller for a window that is mostly empty */
    cr_assert_lt(pk_clause_state_size(&s), n / 4);
    pk_clause_state_release(&s);
    pk_clause_state_release(&back);
}

/* --- what a clause judges ----------------------------------------------------- */

#define BIG_REFUNDS                                                                                \
    "{\"id\":\"big\",\"promise\":\"no refund above 1000\",\"severity\":\"high\","                  \
    "\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{\"all\":[{\"field\":\"action\",\"eq\":"   \
    "\"refund\"},{\"field\":\"amount\",\"gt\":1000}]}}"

Test(clause, a_forbidden_clause_judges_only_the_events_of_its_domain)
{
    pk_clause_state s;
    pk_judgement j;

    load(BIG_REFUNDS);
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    j = act(&s, 1000, "reply", 0, "");
    cr_assert_not(j.relevant, "a reply is no evidence about refunds");
    cr_assert_eq(s.h.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 0);
    j = act(&s, 2000, "refund", 20, "USD");
    cr_assert(j.relevant);
    cr_assert_not(j.violation);
    cr_assert_eq(s.h.pass[PACTUM__V1__SOURCE__SOURCE_SELF], 1, "a small refund keeps it");
    j = act(&s, 3000, "refund", 1500, "USD");
    cr_assert(j.violation);
}

Test(clause, an_error_ratio_is_a_ratio_of_sums)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;
    Pactum__V1__Metric m[2] = {PACTUM__V1__METRIC__INIT, PACTUM__V1__METRIC__INIT},
                       *mp[2] = {&m[0], &m[1]};

    load("{\"id\":\"err\",\"promise\":\"under 1% errors\",\"severity\":\"high\",\"kind\":"
         "\"objective\",\"metric\":\"errors\",\"of\":\"requests\",\"aggregate\":\"ratio\","
         "\"window\":\"1h\",\"op\":\"<=\",\"threshold\":0.01,\"min_samples\":2}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    cr_assert_eq(s.h.n_windows, 2);
    m[0].name = "errors";
    m[1].name = "requests";
    ev = event(1000, "batch", NULL, 0, NULL);
    ev.metrics = mp;
    ev.n_metrics = 2;
    /* 1 error in 1000, then 30 in 1000: 31 / 2000 is 1.55 %, not the mean of the two rates */
    m[0].value = 1;
    m[1].value = 1000;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 1, 10, &j);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT);
    ev.ts_ms = 2000;
    m[0].value = 30;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 2, 10, &j);
    cr_assert_float_eq(j.observed, 31.0 / 2000.0, 1e-12);
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    /* an event without the total is not about this clause */
    ev.n_metrics = 1;
    pk_clause_judge(&pact->clauses[0], &s, &ev, 3, 10, &j);
    cr_assert_not(j.relevant);
}

Test(clause, any_percentile)
{
    pk_clause_state s;
    pk_judgement j;
    pk_event_msg ev;

    load("{\"id\":\"tail\",\"promise\":\"p99.9 under a second\",\"severity\":\"high\",\"kind\":"
         "\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"p99.9\",\"window\":\"1h\","
         "\"op\":\"<=\",\"threshold\":1000}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 2000; i++) {
        ev = event(1000 + i, "reply", "latency_ms", i < 1996 ? 100 : 5000, NULL);
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 100000, &j);
    }
    /* 4 of 2000 slow: 0.2 % of the samples sit above the 99.9th percentile's rank */
    cr_assert_eq(j.outcome, PACTUM__V1__OUTCOME__OUTCOME_FAIL, "p99.9 = %g", j.observed);
    pk_clause_state_release(&s);
}

Test(clause, a_probe_judges_as_the_evaluator_would_and_changes_nothing)
{
    pk_clause_state s, before;
    pk_judgement probe, judged;

    load("{\"id\":\"scope\",\"promise\":\"refunds within 2000 a day; above 200 ask\","
         "\"severity\":\"high\",\"kind\":\"scope\",\"when\":{\"field\":\"tool\",\"eq\":\"ledger\"},"
         "\"actions\":[\"refund\"],\"spend\":{\"currency\":\"USD\",\"per_action\":500,"
         "\"per_window\":2000,\"window\":\"1d\",\"approval_above\":200}}");
    pk_clause_state_init(&s, &pact->clauses[0], 0);
    for (int i = 0; i < 4; i++) {
        /* each approved: the evaluator keeps an "approval" label only if it names an approval
         * the oracle granted */
        pk_event_msg ev = event(1000 + i, "refund", NULL, 0, NULL);
        static Pactum__V1__Label approved = {PROTOBUF_C_MESSAGE_INIT(
                                                 &pactum__v1__label__descriptor),
                                             "approval", "appr-1"},
                                 *labels[1] = {&approved};
        ev.labels = labels;
        ev.n_labels = 1;
        ev.action = "refund";
        ev.tool = "ledger";
        ev.amount = 450;
        ev.currency = "USD";
        pk_clause_judge(&pact->clauses[0], &s, &ev, (uint64_t)i + 1, 10, &judged);
        cr_assert_not(judged.violation);
    }
    before = s;
    {
        pk_event_msg ev = event(5000, "refund", NULL, 0, NULL);
        ev.action = "refund";
        ev.tool = "ledger";
        ev.amount = 450;
        ev.currency = "USD";
        pk_clause_probe(&pact->clauses[0], &s, &ev, &probe);
        cr_assert(probe.violation, "1800 + 450 is over the 2000 a day");
        cr_assert(probe.needs_approval, "450 is above 200");
        cr_assert(memcmp(&before.h, &s.h, sizeof(s.h)) == 0, "the probe changed the state");
        pk_clause_judge(&pact->clauses[0], &s, &ev, 5, 10, &judged);
        cr_assert_eq(judged.violation, probe.violation);
        cr_assert_str_eq(judged.why, probe.why);
        /* another tool: the clause's `when` leaves it out, for the probe too */
        ev.tool = "search.web";
        ev.ts_ms = 6000;
        pk_clause_probe(&pact->clauses[0], &s, &ev, &probe);
        cr_assert_not(probe.relevant);
    }
}
