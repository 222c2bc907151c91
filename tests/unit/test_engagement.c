/*
 * Settlement statements: every consequence rule at its edges (no failure, one
 * failure, failures that withhold the whole price and more, severities below
 * a rule, the first matching rule only, rounding, a critical violation with
 * and without refund_on_critical, the deadline both ways, a dispute's hold),
 * the engagement state an input at a time (numbering, supersession, totals
 * counted once, what is ignored), and the pact's consequences section.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pk/engagement.h"
#include "pk/pact.h"
#include "pk/trust.h"

#define RELEASE  PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_RELEASE
#define PARTIAL  PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_PARTIAL
#define WITHHOLD PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD
#define REFUND   PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_REFUND
#define HIGH     PACTUM__V1__SEVERITY__SEVERITY_HIGH
#define MEDIUM   PACTUM__V1__SEVERITY__SEVERITY_MEDIUM
#define CRITICAL PACTUM__V1__SEVERITY__SEVERITY_CRITICAL

static pk_consequences terms;

/* "withhold 20% per high failure of latency; 10% per high failure of any clause" */
static void default_terms(void)
{
    memset(&terms, 0, sizeof(terms));
    terms.present = true;
    terms.refund_on_critical = true;
    terms.deadline_refund = true;
    terms.dispute_window_ms = 86400000;
    snprintf(terms.withhold[0].clause, sizeof(terms.withhold[0].clause), "latency");
    terms.withhold[0].min_severity = HIGH;
    terms.withhold[0].percent = 20;
    snprintf(terms.withhold[0].term, sizeof(terms.withhold[0].term), "withhold 20%% latency");
    snprintf(terms.withhold[1].clause, sizeof(terms.withhold[1].clause), "*");
    terms.withhold[1].min_severity = HIGH;
    terms.withhold[1].percent = 10;
    snprintf(terms.withhold[1].term, sizeof(terms.withhold[1].term), "withhold 10%% any");
    terms.n_withhold = 2;
}

static void job(pk_engagement *e, int64_t price, const char *end)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "job-1");
    snprintf(e->buyer, sizeof(e->buyer), "shop");
    snprintf(e->pact_id, sizeof(e->pact_id), "pay");
    snprintf(e->currency, sizeof(e->currency), "USD");
    e->price = price;
    e->deadline_ms = 10000;
    snprintf(e->end, sizeof(e->end), "%s", end);
}

static void fail(pk_engagement *e, const char *clause, int severity)
{
    pk_eng_failure *f = &e->fail[e->n_fail];
    f->vseq = 100 + (uint64_t)e->n_fail;
    f->seq = 10 + (uint64_t)e->n_fail;
    snprintf(f->clause_id, sizeof(f->clause_id), "%s", clause);
    f->severity = severity;
    e->n_fail++;
}

/* The lines add up to the amounts, and the amounts to the price. */
static void balanced(const pk_statement *s, int64_t price)
{
    int64_t owner = 0, buyer = 0;
    for (int i = 0; i < s->n_lines; i++) {
        if (s->lines[i].to_buyer)
            buyer += s->lines[i].amount;
        else
            owner += s->lines[i].amount;
    }
    cr_assert_eq(owner, s->head.release, "lines to the owner %lld, release %lld", (long long)owner,
                 (long long)s->head.release);
    cr_assert_eq(buyer, s->head.refund, "lines to the buyer %lld, refund %lld", (long long)buyer,
                 (long long)s->head.refund);
    cr_assert_eq(s->head.release + s->head.refund, price);
}

TestSuite(settle, .init = default_terms);

Test(settle, no_failure_releases_the_whole_price)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.outcome, RELEASE);
    cr_assert_eq(s.head.release, 100000);
    cr_assert_eq(s.n_lines, 1);
    cr_assert_eq(s.head.final_after_ms, 5000 + 86400000);
    balanced(&s, 100000);
}

Test(settle, one_high_failure_of_the_named_clause_withholds_its_percentage_once)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    fail(&e, "latency", HIGH); /* matches both rules: the first counts, 20% */
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.outcome, PARTIAL);
    cr_assert_eq(s.head.refund, 20000);
    cr_assert_eq(s.head.release, 80000);
    cr_assert_eq(s.lines[0].vseq, 100);
    cr_assert_eq(s.lines[0].seq, 10);
    cr_assert_str_eq(s.lines[0].clause_id, "latency");
    cr_assert_str_eq(s.lines[0].term, "withhold 20% latency");
    balanced(&s, 100000);
}

Test(settle, a_failure_below_the_rules_severity_withholds_nothing)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    fail(&e, "latency", MEDIUM);
    fail(&e, "other", MEDIUM);
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.outcome, RELEASE);
    cr_assert_eq(s.head.release, 100000);
}

Test(settle, another_clause_falls_to_the_wildcard_rule)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    fail(&e, "refunds", HIGH);
    fail(&e, "refunds", CRITICAL); /* severity at or above the rule's */
    terms.refund_on_critical = false;
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.refund, 20000);
    cr_assert_eq(s.n_lines, 3);
    balanced(&s, 100000);
}

Test(settle, five_failures_of_twenty_percent_refund_everything_and_a_sixth_adds_nothing)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    for (int i = 0; i < 5; i++)
        fail(&e, "latency", HIGH);
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.outcome, REFUND);
    cr_assert_eq(s.head.release, 0);
    cr_assert_eq(s.n_lines, 5); /* no release line of 0 */
    fail(&e, "latency", HIGH);
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.refund, 100000);
    cr_assert_eq(s.n_lines, 5, "a failure past the whole price has no line of its own");
    balanced(&s, 100000);
}

Test(settle, a_percentage_that_would_pass_the_price_is_cut_to_what_is_left)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    terms.withhold[0].percent = 70;
    fail(&e, "latency", HIGH);
    fail(&e, "latency", HIGH); /* 140% asked: 70% then the remaining 30% */
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.lines[0].amount, 70000);
    cr_assert_eq(s.lines[1].amount, 30000);
    cr_assert_eq(s.head.outcome, REFUND);
    balanced(&s, 100000);
}

Test(settle, amounts_are_rounded_down_in_the_buyers_lines_and_still_add_up)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 999, "completion"); /* 9.99: 20% is 199.8 hundredths */
    fail(&e, "latency", HIGH);
    pk_engagement_settle(&e, &terms, "completion", 5000, &s);
    cr_assert_eq(s.head.refund, 199);
    cr_assert_eq(s.head.release, 800);
    balanced(&s, 999);
}

Test(settle, a_critical_violation_refunds_in_full_citing_its_verdict)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "critical_violation");
    fail(&e, "leak", CRITICAL);
    e.end_vseq = 100;
    e.end_seq = 10;
    pk_engagement_settle(&e, &terms, "critical_violation", 5000, &s);
    cr_assert_eq(s.head.outcome, REFUND);
    cr_assert_eq(s.head.refund, 100000);
    cr_assert_eq(s.n_lines, 1);
    cr_assert_eq(s.lines[0].vseq, 100);
    cr_assert_str_eq(s.lines[0].clause_id, "leak");
    balanced(&s, 100000);
}

Test(settle, the_deadline_without_completion_refunds_or_settles_as_the_terms_say)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "deadline");
    fail(&e, "latency", HIGH);
    pk_engagement_settle(&e, &terms, "deadline", 10000, &s);
    cr_assert_eq(s.head.outcome, REFUND);
    cr_assert_eq(s.head.refund, 100000);
    terms.deadline_refund = false;
    pk_engagement_settle(&e, &terms, "deadline", 10000, &s);
    cr_assert_eq(s.head.outcome, PARTIAL);
    cr_assert_eq(s.head.release, 80000);
    cr_assert_str_eq(s.lines[1].term, "release at the deadline (on_deadline: settle)");
    balanced(&s, 100000);
}

Test(settle, a_dispute_or_a_job_still_running_moves_nothing)
{
    pk_engagement e;
    pk_statement s;

    job(&e, 100000, "completion");
    snprintf(e.hold, sizeof(e.hold), "d-1");
    pk_engagement_settle(&e, &terms, "dispute", 5000, &s);
    cr_assert_eq(s.head.outcome, WITHHOLD);
    cr_assert_eq(s.head.release + s.head.refund, 0);
    cr_assert_eq(s.n_lines, 0);
    cr_assert_eq(s.head.final_after_ms, 0, "a held statement is never final");
    cr_assert_str_eq(s.head.dispute_id, "d-1");
    job(&e, 100000, "");
    pk_engagement_settle(&e, &terms, "ruling", 5000, &s);
    cr_assert_eq(s.head.outcome, WITHHOLD);
}

/* --- the state, input by input ------------------------------------------------------------ */

static pk_trust *t;

static const pk_consequences *terms_of(void *ctx, const pk_engagement *e)
{
    (void)ctx;
    (void)e;
    return &terms;
}

/* An acceptance of the buyer's terms, as ingest publishes it. */
static bool accept_again(const char *id, int64_t price, int64_t deadline)
{
    Pactum__V1__Engagement o = PACTUM__V1__ENGAGEMENT__INIT;
    Pactum__V1__Signed env = PACTUM__V1__SIGNED__INIT;
    Pactum__V1__EngagementAcceptance a = PACTUM__V1__ENGAGEMENT_ACCEPTANCE__INIT;
    uint8_t payload[512], offer[1024], hash[32] = {1};

    o.engagement_id = (char *)id;
    o.buyer_id = "shop";
    o.agent_id = "bot";
    o.pact_id = "pay";
    o.pact_version = 1;
    o.pact_hash.data = hash;
    o.pact_hash.len = 32;
    o.price = price;
    o.currency = "USD";
    o.deadline_ms = deadline;
    env.version = 1;
    env.type = PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT;
    env.payload.data = payload;
    env.payload.len = pactum__v1__engagement__pack(&o, payload);
    env.signer_id = "shop";
    a.engagement_id = (char *)id;
    a.agent_id = "bot";
    a.offer.data = offer;
    a.offer.len = pactum__v1__signed__pack(&env, offer);
    a.accepted_ms = 1000;
    return pk_eng_accept(t, &a, 7);
}

static void accept(const char *id, int64_t price, int64_t deadline)
{
    cr_assert(accept_again(id, price, deadline), "engagement %s not taken", id);
}

static void verdict(const char *eng, const char *pact, const char *clause, int severity,
                    bool violation, uint64_t vseq, pk_eng_out *out)
{
    Pactum__V1__Verdict v = PACTUM__V1__VERDICT__INIT;

    v.agent_id = "bot";
    v.vseq = vseq;
    v.pact_id = (char *)pact;
    v.clause_id = (char *)clause;
    v.severity = (Pactum__V1__Severity)severity;
    v.violation = violation;
    v.engagement_id = (char *)eng;
    v.received_ms = 2000;
    pk_eng_verdict(t, &v, vseq / 10, terms_of, NULL, out);
}

static void state_init(void)
{
    default_terms();
    t = calloc(1, sizeof(*t));
    pk_trust_init(t, "bot", 0);
}

static void state_fini(void)
{
    free(t);
}

TestSuite(state, .init = state_init, .fini = state_fini);

Test(state, completion_dispute_and_ruling_number_and_supersede_the_statements)
{
    Pactum__V1__EngagementCompletion done = PACTUM__V1__ENGAGEMENT_COMPLETION__INIT;
    Pactum__V1__Dispute d = PACTUM__V1__DISPUTE__INIT;
    Pactum__V1__Ruling r = PACTUM__V1__RULING__INIT;
    pk_eng_out out = {0};

    accept("job-1", 100000, 50000);
    cr_assert_not(accept_again("job-1", 1, 50000), "an engagement id is taken once");
    verdict("job-1", "pay", "latency", HIGH, true, 100, &out);
    verdict("job-1", "pay", "latency", HIGH, false, 110, &out);       /* a pass: no failure */
    verdict("job-1", "other-pact", "latency", HIGH, true, 120, &out); /* not the job's terms */
    verdict("", "pay", "latency", HIGH, true, 130, &out);             /* not the job's event */
    cr_assert_eq(out.n, 0);
    cr_assert_eq(t->eng[0].n_fail, 1);
    done.engagement_id = "job-1";
    done.completed_ms = 3000;
    cr_assert(pk_eng_complete(t, &done, terms_of, NULL, &out));
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.st[0].head.number, 1);
    cr_assert_eq(out.st[0].head.outcome, PARTIAL);
    cr_assert(out.counts[0]);
    cr_assert_eq(out.pass_micro[0] + out.fail_micro[0], 4 * PK_PPM, "1,000.00: weight 4");
    cr_assert_eq(out.pass_micro[0], 3200000);
    cr_assert_not(pk_eng_complete(t, &done, terms_of, NULL, &out), "completed once only");
    verdict("job-1", "pay", "latency", HIGH, true, 140, &out); /* after the end: no effect */
    cr_assert_eq(t->eng[0].n_fail, 1);

    d.dispute_id = "d-1";
    d.engagement_id = "job-1";
    d.opened_ms = 4000;
    cr_assert(pk_eng_dispute(t, &d, terms_of, NULL, &out));
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.st[1].head.outcome, WITHHOLD);
    cr_assert_eq(out.st[1].head.number, 2);
    cr_assert_eq(out.st[1].head.supersedes, 1);
    cr_assert_not(out.counts[1]);

    r.dispute_id = "d-1";
    cr_assert(pk_eng_ruling(t, &r, 4500, terms_of, NULL, &out));
    cr_assert_eq(out.n, 3);
    cr_assert_eq(out.st[2].head.outcome, PARTIAL, "upheld evidence: the same amounts again");
    cr_assert_eq(out.st[2].head.number, 3);
    cr_assert_eq(out.st[2].head.supersedes, 2);
    cr_assert_str_eq(out.st[2].head.dispute_id, "d-1");
    cr_assert_not(out.counts[2], "counted once");
    cr_assert_eq(t->eng_totals.completed, 1);
    cr_assert_eq(t->eng_totals.disputed, 1);
    cr_assert_eq(t->eng_totals.refunded, 0);
}

Test(state, a_critical_violation_ends_the_job_at_once_and_completion_comes_too_late)
{
    Pactum__V1__EngagementCompletion done = PACTUM__V1__ENGAGEMENT_COMPLETION__INIT;
    pk_eng_out out = {0};

    accept("job-2", 5000, 50000);
    verdict("job-2", "pay", "leak", CRITICAL, true, 200, &out);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.st[0].head.outcome, REFUND);
    cr_assert_str_eq(out.st[0].head.trigger, "critical_violation");
    cr_assert_eq(t->eng_totals.refunded, 1);
    cr_assert_eq(out.pass_micro[0], 0);
    cr_assert_eq(out.fail_micro[0], 2 * PK_PPM, "50.00: weight 2");
    done.engagement_id = "job-2";
    cr_assert_not(pk_eng_complete(t, &done, terms_of, NULL, &out));
}

Test(state, the_clock_ends_a_job_at_its_deadline_and_lets_final_statements_go)
{
    pk_eng_out out = {0};

    accept("job-3", 100000, 50000);
    t->clock_ms = 49999;
    cr_assert_not(pk_eng_clock(t, terms_of, NULL, &out));
    cr_assert_eq(pk_eng_wake(t), 50000);
    t->clock_ms = 50000;
    cr_assert(pk_eng_clock(t, terms_of, NULL, &out));
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.st[0].head.outcome, REFUND);
    cr_assert_str_eq(out.st[0].head.trigger, "deadline");
    cr_assert_eq(t->n_eng, 1, "kept while a dispute may still come");
    cr_assert_eq(pk_eng_wake(t), 50000 + 86400000);
    t->clock_ms = 50000 + 86400000;
    cr_assert(pk_eng_clock(t, terms_of, NULL, &out));
    cr_assert_eq(t->n_eng, 0, "final: it leaves the state");
    cr_assert_eq(out.n, 1);
}

Test(state, numbers_go_on_from_the_state_before_a_rebuild)
{
    pk_trust *before = calloc(1, sizeof(*before));

    accept("job-4", 100000, 50000);
    *before = *t;
    before->eng[0].last.number = 5;
    t->eng[0].last.number = 2;
    pk_eng_keep_numbers(t, before);
    cr_assert_eq(t->eng[0].last.number, 5);
    free(before);
}

Test(state, the_wire_form_keeps_every_field)
{
    pk_trust_msg_storage *st = calloc(1, sizeof(*st));
    Pactum__V1__TrustState m;
    pk_trust *back = calloc(1, sizeof(*back));
    pk_governance g;
    pk_eng_out out = {0};
    uint8_t *buf;
    size_t len;
    Pactum__V1__TrustState *decoded;

    pk_governance_defaults(&g);
    accept("job-5", 123456, 50000);
    verdict("job-5", "pay", "latency", HIGH, true, 300, &out);
    t->clock_ms = 60000;
    cr_assert(pk_eng_clock(t, terms_of, NULL, &out));
    pk_trust_to_msg(t, &g, &m, st);
    len = pactum__v1__trust_state__get_packed_size(&m);
    buf = malloc(len);
    pactum__v1__trust_state__pack(&m, buf);
    decoded = pactum__v1__trust_state__unpack(NULL, len, buf);
    cr_assert_not_null(decoded);
    pk_trust_from_msg(back, decoded);
    cr_assert_eq(back->n_eng, 1);
    cr_assert_eq(memcmp(&back->eng[0], &t->eng[0], sizeof(t->eng[0])), 0,
                 "an engagement survives its wire form unchanged");
    cr_assert_eq(back->eng_totals.refunded, 1);
    pactum__v1__trust_state__free_unpacked(decoded, NULL);
    free(buf);
    free(back);
    free(st);
    pk_governance_free(&g);
}

/* --- the pact's consequences section ------------------------------------------------------ */

static const char *pact_with(const char *consequences)
{
    static char doc[2048];
    snprintf(doc, sizeof(doc),
             "{\"pactum\": 1, \"id\": \"p\", \"agent\": \"a\", \"clauses\": [{\"id\": "
             "\"latency\", \"promise\": \"fast\", \"kind\": \"objective\", \"severity\": "
             "\"high\", \"metric\": \"latency_ms\", \"aggregate\": \"p95\", \"window\": "
             "\"1h\", \"op\": \"<=\", \"threshold\": 500}]%s%s}",
             consequences ? ", \"consequences\": " : "", consequences ? consequences : "");
    return doc;
}

static char *lint_of(const char *consequences, pk_pact **out)
{
    pk_lint l = {0};
    const char *doc = pact_with(consequences);
    static char first[512];

    *out = NULL;
    first[0] = '\0';
    if (pk_pact_parse(doc, strlen(doc), out, &l) != PK_OK && l.n)
        snprintf(first, sizeof(first), "%s", l.msgs[0]);
    pk_lint_free(&l);
    return first;
}

Test(consequences, parse_the_rules_and_the_defaults)
{
    pk_pact *p = NULL;

    cr_assert_str_eq(lint_of(NULL, &p), "");
    cr_assert_not(p->cons.present, "no section: no engagement can name the pact");
    pk_pact_free(p);
    cr_assert_str_eq(lint_of("{\"withhold\": [{\"clause\": \"latency\", \"severity\": \"high\", "
                             "\"percent\": 20}]}",
                             &p),
                     "");
    cr_assert(p->cons.present);
    cr_assert(p->cons.refund_on_critical);
    cr_assert(p->cons.deadline_refund);
    cr_assert_eq(p->cons.dispute_window_ms, 86400000);
    cr_assert_eq(p->cons.n_withhold, 1);
    cr_assert_eq(p->cons.withhold[0].percent, 20);
    cr_assert_eq(p->cons.withhold[0].min_severity, HIGH);
    cr_assert_str_eq(p->cons.withhold[0].term, "withhold 20% per high-severity failure of latency");
    pk_pact_free(p);
    cr_assert_str_eq(lint_of("{\"on_deadline\": \"settle\", \"refund_on_critical\": false, "
                             "\"dispute_window\": \"0s\"}",
                             &p),
                     "");
    cr_assert_not(p->cons.deadline_refund);
    cr_assert_not(p->cons.refund_on_critical);
    cr_assert_eq(p->cons.dispute_window_ms, 0);
    pk_pact_free(p);
}

Test(consequences, refuse_what_is_not_a_term)
{
    pk_pact *p = NULL;

    cr_assert(strstr(lint_of("{\"withhold\": [{\"clause\": \"latency\", \"percent\": 0}]}", &p),
                     "percent: expected a whole number from 1 to 100"));
    cr_assert(strstr(lint_of("{\"withhold\": [{\"clause\": \"latency\", \"percent\": 101}]}", &p),
                     "percent: expected a whole number from 1 to 100"));
    cr_assert(strstr(lint_of("{\"withhold\": [{\"clause\": \"nope\", \"percent\": 5}]}", &p),
                     "'nope' is not a clause of this pact"));
    cr_assert(strstr(lint_of("{\"withhold\": [{\"clause\": \"latency\"}]}", &p),
                     "percent: required field is missing"));
    cr_assert(strstr(lint_of("{\"on_deadline\": \"pay\"}", &p),
                     "on_deadline: expected one of refund, settle"));
    cr_assert(strstr(lint_of("{\"refund\": true}", &p), "consequences.refund: unknown field"));
    cr_assert(strstr(lint_of("{\"dispute_window\": \"100d\"}", &p), "dispute_window: must be"));
    cr_assert(strstr(lint_of("[]", &p), "consequences: expected an object"));
    cr_assert_null(p);
}

static const pk_consequences *no_terms(void *ctx, const pk_engagement *e)
{
    (void)ctx;
    (void)e;
    return NULL;
}

Test(state, a_job_that_ends_without_its_terms_in_the_copy_issues_nothing_and_says_so)
{
    Pactum__V1__EngagementCompletion done = PACTUM__V1__ENGAGEMENT_COMPLETION__INIT;
    pk_eng_out out = {0};

    accept("job-6", 100000, 50000);
    done.engagement_id = "job-6";
    done.completed_ms = 3000;
    pk_eng_complete(t, &done, no_terms, NULL, &out);
    cr_assert_eq(out.n, 0, "no statement without the pact's terms");
    cr_assert(out.no_terms, "the caller is told, to apply the input again later");
    cr_assert_eq(t->eng_totals.completed + t->eng_totals.refunded, 0);
}
