/* Score math, forgetting, source caps, tiers, re-entry and governance records. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "pk/tiers.h"
#include "pk/scoring.h"
#include "pk/trust.h"

#define SEV_CRIT PACTUM__V1__SEVERITY__SEVERITY_CRITICAL
#define SEV_HIGH PACTUM__V1__SEVERITY__SEVERITY_HIGH
#define SEV_MED  PACTUM__V1__SEVERITY__SEVERITY_MEDIUM
#define PASS     PACTUM__V1__OUTCOME__OUTCOME_PASS
#define FAIL     PACTUM__V1__OUTCOME__OUTCOME_FAIL
#define HOUR     3600000LL

static pk_governance gov;
static Pactum__V1__SourceTally tally;
static Pactum__V1__SourceTally *tallyp[1] = {&tally};
static Pactum__V1__EvidenceRef ref;
static Pactum__V1__EvidenceRef *refp[1] = {&ref};

static void init(void)
{
    pk_governance_defaults(&gov);
    /* most tests below measure the mechanics without the promotion margin and the dwell
     * after a re-entry; those have tests of their own, with the defaults */
    gov.margin_ppm = 0;
    gov.after_demotion_ms = 0;
    for (int t = 0; t < PK_TIERS; t++)
        gov.reentry[t].dwell_ms = 0;
}

TestSuite(score, .init = init);

/* A verdict at bus time at_ms carrying pass/fail evaluations from one source. */
static pk_verdict_msg verdict_at(uint64_t vseq, int64_t at_ms, const char *clause,
                                 Pactum__V1__Severity sev, Pactum__V1__Outcome outcome,
                                 uint32_t pass, uint32_t fail, bool violation,
                                 const char *consequence, Pactum__V1__Source src, uint32_t w)
{
    pk_verdict_msg v;

    pactum__v1__verdict__init(&v);
    pactum__v1__source_tally__init(&tally);
    pactum__v1__evidence_ref__init(&ref);
    v.agent_id = "bot";
    v.vseq = vseq;
    v.pact_id = "p";
    v.clause_id = (char *)clause;
    v.severity = sev;
    v.outcome = outcome;
    v.violation = violation;
    v.consequence = (char *)consequence;
    v.detail = "detail";
    v.received_ms = at_ms;
    v.event_ts_ms = at_ms;
    v.ingest_ms = at_ms;
    tally.source = src;
    tally.pass = pass;
    tally.fail = fail;
    tally.weight_ppm = w;
    v.tally = tallyp;
    v.n_tally = 1;
    ref.event_id = "e";
    ref.seq = vseq;
    v.evidence = refp;
    v.n_evidence = 1;
    return v;
}

static pk_verdict_msg good_on(const char *clause, Pactum__V1__Severity sev, uint64_t vseq,
                              int64_t at_ms)
{
    return verdict_at(vseq, at_ms, clause, sev, PASS, 1, 0, false, "demote",
                      PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
}

static pk_verdict_msg good(uint64_t vseq, int64_t at_ms)
{
    return good_on("lat", SEV_HIGH, vseq, at_ms);
}

/* n clean evaluations, step ms apart, alternating the latency and the pii clause */
static void feed_good(pk_trust *t, uint64_t *vseq, int n, int64_t *at, int64_t step)
{
    pk_trust_effect fx;

    for (int i = 0; i < n; i++) {
        pk_verdict_msg v =
            i % 2 ? good_on("pii", SEV_CRIT, ++*vseq, *at += step) : good(++*vseq, *at += step);
        pk_trust_apply(t, &v, &gov, &fx);
    }
}

Test(score, isqrt_is_the_floor_of_the_square_root)
{
    cr_assert_eq(pk_isqrt(0), 0);
    cr_assert_eq(pk_isqrt(15), 3);
    cr_assert_eq(pk_isqrt(16), 4);
    cr_assert_eq(pk_isqrt(UINT64_MAX), 4294967295ull);
    for (uint64_t x = 1; x < 100000; x += 7) {
        uint64_t r = pk_isqrt(x);
        cr_assert(r * r <= x && (r + 1) * (r + 1) > x, "x=%llu", (unsigned long long)x);
    }
}

Test(score, beta_bounds_match_the_closed_form)
{
    uint32_t mean, lower;
    double a = 31, b = 1, m = a / (a + b), sd = sqrt(m * (1 - m) / (a + b + 1));

    pk_beta_bounds(1000000, 1000000, &mean, &lower);
    cr_assert_eq(mean, 500000);
    cr_assert(lower >= 25128 && lower <= 25131, "lower %u", lower);
    pk_beta_bounds(31000000, 1000000, &mean, &lower);
    cr_assert(fabs(mean / 1e6 - m) < 2e-6);
    cr_assert(fabs(lower / 1e6 - (m - 1.645 * sd)) < 1e-5, "lower %u", lower);
}

Test(score, decay_follows_two_to_the_minus_t_over_half_life)
{
    cr_assert_eq(pk_decay_q32(0, HOUR), 1ull << 32);
    cr_assert_eq(pk_decay_q32(-5, HOUR), 1ull << 32);
    cr_assert_eq(pk_decay_q32(HOUR, HOUR), 1ull << 31, "one half-life halves exactly");
    cr_assert_eq(pk_decay_q32(3 * HOUR, HOUR), 1ull << 29);
    cr_assert_eq(pk_decay_q32(64 * HOUR, HOUR), 0);
    for (int64_t dt = 1; dt < 5 * HOUR; dt += 7919 * 13) {
        double want = pow(2, -(double)dt / HOUR), got = pk_decay_q32(dt, HOUR) / 4294967296.0;
        cr_assert(fabs(got - want) <= 2e-5 * want, "dt %lld: %.9f vs %.9f", (long long)dt, got,
                  want);
    }
}

Test(score, no_evidence_is_insufficient_not_good)
{
    pk_trust t;

    pk_trust_init(&t, "bot", 0);
    pk_trust_recompute(&t, &gov);
    cr_assert_eq(t.score, 0);
    cr_assert_eq(t.lower, 0);
    cr_assert_eq(pk_tier_from_score(&t, &gov), PACTUM__V1__TIER__TIER_WATCH);
}

Test(score, clean_evidence_promotes_step_by_step)
{
    pk_trust t;
    pk_trust_effect fx;
    bool seen_standard = false;

    pk_trust_init(&t, "bot", 0);
    for (uint64_t i = 1; i <= 40; i++) {
        pk_verdict_msg v = good(i, (int64_t)i * 1000);
        pk_trust_apply(&t, &v, &gov, &fx);
        cr_assert(fx.applied);
        seen_standard |= t.tier == PACTUM__V1__TIER__TIER_STANDARD;
        if (i < gov.min_evidence)
            cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "too little evidence at %llu",
                         (unsigned long long)i);
    }
    cr_assert(seen_standard, "watch -> standard -> trusted, not a jump");
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED, "lower %u", t.lower);
    cr_assert_not(t.held);
}

Test(score, old_evidence_is_forgotten_and_confidence_drops)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;
    uint32_t lower_then;
    pk_verdict_msg v;

    gov.half_life_ms = HOUR;
    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 60, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    lower_then = t.lower;
    /* ten half-lives later one more evaluation arrives: the old 60 weigh 0.06 */
    v = good(++vseq, at + 10 * HOUR);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_lt(t.lower, lower_then / 2, "lower %u then %u", t.lower, lower_then);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH,
                 "a day of silence leaves too little confidence to trust, and nothing bad was "
                 "seen: watch, not restricted");
    cr_assert_lt(fx.decay_ppm, 1000, "about 1/1024 of the weight is left");
    cr_assert_eq(t.evidence, 61, "the count of evaluations is not forgotten");
}

Test(score, thin_evidence_that_all_passes_is_watch_not_restricted)
{
    pk_trust t;
    pk_trust_effect fx;

    pk_trust_init(&t, "bot", 0);
    /* the agent's own word, weighed 0.05: 25 passes are little evidence, none of it bad */
    for (uint64_t i = 1; i <= 25; i++) {
        pk_verdict_msg v = verdict_at(i, (int64_t)i * 1000, "latency", SEV_MED, PASS, 1, 0, false,
                                      "demote", PACTUM__V1__SOURCE__SOURCE_SELF, 50000);
        pk_trust_apply(&t, &v, &gov, &fx);
    }
    cr_assert_lt(t.lower, gov.watch_ppm, "the bound is low (%u): the test tests nothing", t.lower);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "restricted for keeping every promise");
}

Test(score, one_source_cannot_carry_more_than_its_cap)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    uint64_t alpha, beta;

    gov.source_cap = 100;
    pk_trust_init(&t, "bot", 0);
    /* 1000 self-reported passes at weight 0.5: 500 evaluations' worth */
    v = verdict_at(1, 1000, "lat", SEV_HIGH, PASS, 1000, 0, false, "demote",
                   PACTUM__V1__SOURCE__SOURCE_SELF, 500000);
    pk_trust_apply(&t, &v, &gov, &fx);
    pk_clause_posterior(&t.c[0], &gov, &alpha, &beta);
    cr_assert_eq(alpha, 101000000, "prior 1 + capped 100, got %llu", (unsigned long long)alpha);
    /* an independent evaluator's failures are not drowned by the flood */
    v = verdict_at(2, 2000, "lat", SEV_HIGH, FAIL, 0, 20, false, "demote",
                   PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
    pk_trust_apply(&t, &v, &gov, &fx);
    pk_clause_posterior(&t.c[0], &gov, &alpha, &beta);
    cr_assert_eq(beta, 21000000);
    cr_assert_lt(t.score, 850000, "20 evaluator failures move the score: %u", t.score);
}

Test(score, a_critical_violation_contains_at_once_and_good_evidence_does_not_lift_it)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    uint64_t vseq = 0;
    int64_t at = 0;

    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 80, &at, 1000);
    v = verdict_at(++vseq, at += 1000, "pii", SEV_CRIT, FAIL, 0, 1, true, "contain",
                   PACTUM__V1__SOURCE__SOURCE_SELF, 500000);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(fx.from_tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_str_eq(fx.rule, "critical violation contains at once");
    cr_assert(t.held);
    cr_assert_eq(t.tier_since_ms, at, "the input's time, not the scorer's clock");
    feed_good(&t, &vseq, 500, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "no operator acknowledgement yet");
}

/* Contain the agent at time `at`; then give it evidence and time as asked. */
static void contained(pk_trust *t, uint64_t *vseq, int64_t *at)
{
    pk_trust_effect fx;
    pk_verdict_msg v;

    pk_trust_init(t, "bot", 0);
    feed_good(t, vseq, 80, at, 1000);
    v = verdict_at(++*vseq, *at += 1000, "pii", SEV_CRIT, FAIL, 0, 1, true, "contain",
                   PACTUM__V1__SOURCE__SOURCE_SELF, 500000);
    pk_trust_apply(t, &v, &gov, &fx);
    cr_assert_eq(t->tier, PACTUM__V1__TIER__TIER_CONTAINED);
}

static Pactum__V1__GovernanceRecord ack_at(int64_t at)
{
    static Pactum__V1__Ack a;
    Pactum__V1__GovernanceRecord r = PACTUM__V1__GOVERNANCE_RECORD__INIT;

    pactum__v1__ack__init(&a);
    a.ack_id = "ack-1";
    a.agent_id = "bot";
    a.operator_id = "ops";
    a.note = "looked at the leak";
    a.acked_ms = at;
    r.record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_ACK;
    r.ack = &a;
    return r;
}

/* Contained at `t0`; re-entry defaults: clean 24h, 100 samples, no dispute, ack. */
Test(score, reentry_waits_for_every_criterion_and_records_their_values)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    Pactum__V1__GovernanceRecord ack;
    uint64_t vseq = 0;
    int64_t at = 0, t0;

    contained(&t, &vseq, &at);
    t0 = at;
    /* 99 samples over the day: one short */
    feed_good(&t, &vseq, 99, &at, 24 * HOUR / 100);
    ack = ack_at(at);
    pk_trust_govern(&t, &ack, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "99 of 100 samples");
    /* the 100th sample, one millisecond before the clean window is complete */
    v = good(++vseq, t0 + 24 * HOUR - 1);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "clean window 1 ms short");
    /* one more at exactly 24 h */
    v = good(++vseq, t0 + 24 * HOUR);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_WATCH, "every criterion met: watch");
    cr_assert_str_eq(fx.rule, "re-entry criteria met");
    cr_assert_eq(fx.n_crit, 4);
    cr_assert_str_eq(fx.crit[0].name, "clean_window_ms");
    cr_assert_str_eq(fx.crit[0].actual, "86400000");
    cr_assert_str_eq(fx.crit[1].name, "min_samples");
    cr_assert_str_eq(fx.crit[1].actual, "101");
    cr_assert(fx.crit[2].met && fx.crit[3].met);
    cr_assert(strstr(fx.cause, "re-entry from contained") != NULL, "%s", fx.cause);
    cr_assert_not(t.held);
}

Test(score, no_reentry_without_the_operator_acknowledgement)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    Pactum__V1__GovernanceRecord ack;
    uint64_t vseq = 0;
    int64_t at = 0, t0;

    contained(&t, &vseq, &at);
    t0 = at;
    feed_good(&t, &vseq, 200, &at, 48 * HOUR / 200);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "clean and plenty, but no ack");
    ack = ack_at(t0 - 1);
    pk_trust_govern(&t, &ack, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED,
                 "an acknowledgement from before the containment does not count");
    ack = ack_at(at);
    pk_trust_govern(&t, &ack, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "the ack completes the criteria");
    cr_assert_str_eq(fx.rule, "re-entry criteria met");
    v = good(++vseq, at + 1000);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_neq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED);
}

static Pactum__V1__GovernanceRecord dispute(const char *id, uint64_t vseq, int64_t at)
{
    static Pactum__V1__Dispute d;
    Pactum__V1__GovernanceRecord r = PACTUM__V1__GOVERNANCE_RECORD__INIT;

    pactum__v1__dispute__init(&d);
    d.dispute_id = (char *)id;
    d.agent_id = "bot";
    d.opened_by = "owner";
    d.verdict_vseq = vseq;
    d.reason = "the label was a test fixture";
    d.opened_ms = at;
    r.record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE;
    r.dispute = &d;
    return r;
}

static Pactum__V1__GovernanceRecord ruling(const char *id, bool overturned, int64_t at)
{
    static Pactum__V1__Ruling u;
    Pactum__V1__GovernanceRecord r = PACTUM__V1__GOVERNANCE_RECORD__INIT;

    pactum__v1__ruling__init(&u);
    u.dispute_id = (char *)id;
    u.agent_id = "bot";
    u.arbiter_id = "arb";
    u.overturned = overturned;
    u.reason = "fixture data";
    u.ruled_ms = at;
    r.record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING;
    r.ruling = &u;
    return r;
}

Test(score, an_open_dispute_blocks_reentry_until_ruled)
{
    pk_trust t;
    pk_trust_effect fx;
    Pactum__V1__GovernanceRecord r;
    uint64_t vseq = 0;
    int64_t at = 0;

    contained(&t, &vseq, &at);
    r = dispute("d-1", 12345, at);
    pk_trust_govern(&t, &r, &gov, &fx);
    cr_assert_eq(t.n_disp, 1);
    feed_good(&t, &vseq, 200, &at, 48 * HOUR / 200);
    r = ack_at(at);
    pk_trust_govern(&t, &r, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "one dispute open");
    r = ruling("d-1", false, at + 1);
    pk_trust_govern(&t, &r, &gov, &fx);
    cr_assert_eq(t.n_disp, 0);
    cr_assert_eq(t.n_overturned, 0, "upheld: nothing leaves the score");
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "the ruling completes the criteria");
}

Test(score, an_overturning_ruling_marks_the_verdict)
{
    pk_trust t;
    pk_trust_effect fx;
    Pactum__V1__GovernanceRecord r;
    pk_verdict_msg v;

    pk_trust_init(&t, "bot", 0);
    r = dispute("d-2", 77, 10);
    pk_trust_govern(&t, &r, &gov, &fx);
    r = ruling("d-2", true, 20);
    pk_trust_govern(&t, &r, &gov, &fx);
    cr_assert_eq(t.n_overturned, 1);
    cr_assert_eq(t.overturned[0], 77);
    v = good(77, 30);
    cr_assert(pk_trust_overturned(&t, &v));
    v = good(78, 30);
    cr_assert_not(pk_trust_overturned(&t, &v));
    r = ruling("d-2", true, 40); /* the same ruling again: no dispute left to close */
    pk_trust_govern(&t, &r, &gov, &fx);
    cr_assert_eq(t.n_overturned, 1);
}

Test(score, demote_holds_until_its_reentry_criteria)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    uint64_t vseq = 0;
    int64_t at = 0;

    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 60, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    /* a medium clause: a high one failing would cap the tier at watch on its own */
    v = verdict_at(++vseq, at += 1000, "lat", SEV_MED, FAIL, 0, 1, true, "demote",
                   PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_STANDARD);
    cr_assert_str_eq(fx.rule, "consequence demote");
    cr_assert(t.held);
    /* 19 samples in the next hour: the score is high, but the default
     * criteria for leaving standard are 20 samples and a clean hour */
    feed_good(&t, &vseq, 19, &at, HOUR / 19);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_STANDARD);
    feed_good(&t, &vseq, 1, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_not(t.held);
}

Test(score, falling_scores_demote_step_by_step_and_rising_ones_promote_back)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;
    int last;
    bool seen[PK_TIERS] = {false};

    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 60, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    last = t.tier;
    /* failed evaluations that are not violations, of medium clauses (a high one failing
     * caps the tier at once: see its own test): only the score speaks */
    for (int i = 0; i < 200 && t.tier != PACTUM__V1__TIER__TIER_RESTRICTED; i++) {
        pk_verdict_msg v =
            verdict_at(++vseq, at += 1000, i % 2 ? "pii" : "lat", SEV_MED, FAIL, 0, 1, false,
                       "demote", PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(&t, &v, &gov, &fx);
        if (fx.to_tier != fx.from_tier) {
            cr_assert_eq(fx.to_tier, last + 1, "one step at a time: %d -> %d", last, fx.to_tier);
            cr_assert_str_eq(fx.rule, "score");
            cr_assert(strstr(fx.cause, "lower bound") != NULL, "%s", fx.cause);
            last = fx.to_tier;
        }
        seen[t.tier] = true;
        cr_assert_not(t.held, "a score demotion is not held");
    }
    cr_assert(seen[PACTUM__V1__TIER__TIER_STANDARD] && seen[PACTUM__V1__TIER__TIER_WATCH]);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_RESTRICTED, "tier %d, lower %u", t.tier, t.lower);
    /* not held: good evidence alone brings it back, by score */
    for (int i = 0; i < 4000 && t.tier != PACTUM__V1__TIER__TIER_STANDARD; i++) {
        pk_verdict_msg v =
            i % 2 ? good_on("pii", SEV_CRIT, ++vseq, at += 60000) : good(++vseq, at += 60000);
        pk_trust_apply(&t, &v, &gov, &fx);
        if (fx.to_tier != fx.from_tier)
            cr_assert_str_eq(fx.rule, "score", "promoted by the score alone");
    }
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_STANDARD, "tier %d, lower %u", t.tier, t.lower);
}

Test(score, a_burn_rate_trigger_demotes_without_counting_as_an_evaluation)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    uint64_t vseq = 0, evidence;
    int64_t at = 0;

    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 60, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    evidence = t.evidence;
    v = verdict_at(++vseq, at += 1000, "lat", SEV_HIGH, FAIL, 0, 0, true, "demote",
                   PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
    v.n_tally = 0;
    v.trigger = "fast-burn";
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_STANDARD);
    cr_assert(t.held);
    cr_assert_eq(t.evidence, evidence, "a trigger carries no evaluations");
    cr_assert(strstr(fx.cause, "by trigger fast-burn") != NULL, "%s", fx.cause);
}

/*
 * Re-entry from each held tier with the default criteria, each criterion one
 * value short of passing and then met.
 */
enum short_of { SHORT_SAMPLES, SHORT_WINDOW, SHORT_DISPUTE, SHORT_ACK };

/* Bring a trusted agent to a held `tier`; returns the time it entered. */
static int64_t hold_at(pk_trust *t, int tier, uint64_t *vseq, int64_t *at)
{
    pk_trust_effect fx;
    pk_verdict_msg v;

    pk_trust_init(t, "bot", 0);
    feed_good(t, vseq, 80, at, 1000);
    cr_assert_eq(t->tier, PACTUM__V1__TIER__TIER_TRUSTED);
    for (int step = 0; step < 2 && t->tier < tier; step++) {
        const char *cons = tier == PACTUM__V1__TIER__TIER_CONTAINED    ? "contain"
                           : tier == PACTUM__V1__TIER__TIER_RESTRICTED ? "restrict"
                                                                       : "demote";
        v = verdict_at(++*vseq, *at += 1000, "lat", SEV_MED, FAIL, 0, 1, true, cons,
                       PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(t, &v, &gov, &fx);
    }
    cr_assert_eq(t->tier, tier);
    cr_assert(t->held);
    return t->tier_since_ms;
}

static void reentry_one_short(int tier, enum short_of what)
{
    const pk_reentry *r = &gov.reentry[tier];
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    Pactum__V1__GovernanceRecord rec;
    uint64_t vseq = 0;
    int64_t at = 0, t0 = hold_at(&t, tier, &vseq, &at);
    int n = (int)r->min_samples;

    cr_assert(r->from == tier && r->to < tier && r->clean_ms > 0 && n > 1);
    if (what == SHORT_DISPUTE) {
        rec = dispute("d-open", 1, at + 1);
        pk_trust_govern(&t, &rec, &gov, &fx);
    }
    if (what == SHORT_SAMPLES) {
        /* n - 1 samples, the last one past the clean window */
        feed_good(&t, &vseq, n - 1, &at, (r->clean_ms + 1000) / (n - 1) + 1);
    } else if (what == SHORT_WINDOW) {
        /* every sample, all inside the window; the last 1 ms before it closes */
        feed_good(&t, &vseq, n, &at, (r->clean_ms - 1000) / n);
        cr_assert_lt(at, t0 + r->clean_ms - 1);
        v = good(++vseq, t0 + r->clean_ms - 1);
        pk_trust_apply(&t, &v, &gov, &fx);
        at = t0 + r->clean_ms - 1;
    } else {
        feed_good(&t, &vseq, n + 5, &at, (r->clean_ms + 1000) / n + 1);
    }
    if (r->operator_ack && what != SHORT_ACK) {
        rec = ack_at(at);
        pk_trust_govern(&t, &rec, &gov, &fx);
    }
    cr_assert_eq(t.tier, tier, "tier %d, criterion %d one short: still held", tier, what);
    /* now the missing value */
    switch (what) {
    case SHORT_SAMPLES:
    case SHORT_WINDOW:
        v = good(++vseq, what == SHORT_WINDOW ? t0 + r->clean_ms : at + 1000);
        pk_trust_apply(&t, &v, &gov, &fx);
        break;
    case SHORT_DISPUTE:
        rec = ruling("d-open", false, at + 1000);
        pk_trust_govern(&t, &rec, &gov, &fx);
        break;
    case SHORT_ACK:
        rec = ack_at(at + 1000);
        pk_trust_govern(&t, &rec, &gov, &fx);
        break;
    }
    cr_assert_eq(t.tier, r->to, "tier %d, criterion %d met: re-entry to %d", tier, what, r->to);
    cr_assert_str_eq(fx.rule, "re-entry criteria met");
    cr_assert_eq(fx.n_crit, 2 + r->no_open_dispute + r->operator_ack);
    for (int i = 0; i < fx.n_crit; i++)
        cr_assert(fx.crit[i].met, "%s %s (%s)", fx.crit[i].name, fx.crit[i].actual,
                  fx.crit[i].required);
    cr_assert_not(t.held);
}

Test(score, reentry_from_every_held_tier_one_value_short)
{
    static const int tiers[] = {PACTUM__V1__TIER__TIER_STANDARD, PACTUM__V1__TIER__TIER_WATCH,
                                PACTUM__V1__TIER__TIER_RESTRICTED,
                                PACTUM__V1__TIER__TIER_CONTAINED};
    int cases = 0;

    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        const pk_reentry *r = &gov.reentry[tiers[i]];
        reentry_one_short(tiers[i], SHORT_SAMPLES);
        reentry_one_short(tiers[i], SHORT_WINDOW);
        cases += 2;
        if (r->no_open_dispute) {
            reentry_one_short(tiers[i], SHORT_DISPUTE);
            cases++;
        }
        if (r->operator_ack) {
            reentry_one_short(tiers[i], SHORT_ACK);
            cases++;
        }
    }
    cr_assert_eq(cases, 11, "4 tiers x 2, disputes for 2, ack for 1");
}

Test(score, an_open_dispute_does_not_block_where_the_pact_does_not_say_so)
{
    pk_trust t;
    pk_trust_effect fx;
    Pactum__V1__GovernanceRecord rec;
    uint64_t vseq = 0;
    int64_t at = 0;

    cr_assert_not(gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].no_open_dispute);
    hold_at(&t, PACTUM__V1__TIER__TIER_STANDARD, &vseq, &at);
    rec = dispute("d-x", 1, at + 1);
    pk_trust_govern(&t, &rec, &gov, &fx);
    feed_good(&t, &vseq, 25, &at, HOUR / 20);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_eq(t.n_disp, 1, "the dispute is still open");
}

Test(score, a_lower_bound_criterion_one_value_short)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;
    uint32_t need;

    hold_at(&t, PACTUM__V1__TIER__TIER_STANDARD, &vseq, &at);
    /* require the lower bound the agent will have after 21 more samples, plus one */
    {
        pk_trust probe = t;
        uint64_t pv = vseq;
        int64_t pat = at;
        gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].clean_ms = 0;
        gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].min_samples = 1000000;
        feed_good(&probe, &pv, 21, &pat, HOUR / 20);
        need = probe.lower + 1;
    }
    gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].clean_ms = HOUR;
    gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].min_samples = 20;
    gov.reentry[PACTUM__V1__TIER__TIER_STANDARD].min_lower_ppm = need;
    feed_good(&t, &vseq, 21, &at, HOUR / 20);
    cr_assert_eq(t.lower, need - 1);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_STANDARD, "lower bound one ppm short");
    {
        pk_verdict_msg v = good_on("pii", SEV_CRIT, ++vseq, at += HOUR / 20);
        pk_trust_apply(&t, &v, &gov, &fx);
    }
    cr_assert_geq(t.lower, need);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_str_eq(fx.rule, "re-entry criteria met");
    cr_assert_eq(fx.n_crit, 3);
    cr_assert_str_eq(fx.crit[2].name, "lower_ppm");
}

Test(score, restrict_and_suspend_consequences)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;
    uint64_t vseq = 0;
    int64_t at = 0;

    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 60, &at, 1000);
    v = verdict_at(++vseq, at += 1000, "spend", SEV_MED, FAIL, 0, 1, true, "restrict",
                   PACTUM__V1__SOURCE__SOURCE_SELF, 500000);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_RESTRICTED);
    v = verdict_at(++vseq, at += 1000, "fraud", SEV_MED, FAIL, 0, 1, true, "suspend",
                   PACTUM__V1__SOURCE__SOURCE_SELF, 500000);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_SUSPENDED);
    feed_good(&t, &vseq, 300, &at, HOUR);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_SUSPENDED, "no automatic way out of suspended");
}

Test(score, a_verdict_applied_twice_changes_nothing)
{
    pk_trust t, copy;
    pk_trust_effect fx;
    pk_verdict_msg v = good(1, 1000);

    pk_trust_init(&t, "bot", 0);
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert(fx.applied);
    memcpy(&copy, &t, sizeof(t));
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_not(fx.applied);
    cr_assert(memcmp(&copy, &t, sizeof(t)) == 0);
}

Test(score, overrides_are_kept_with_their_reason_and_expiry)
{
    pk_trust t;
    pk_trust_effect fx;
    Pactum__V1__Override o = PACTUM__V1__OVERRIDE__INIT;
    Pactum__V1__GovernanceRecord r = PACTUM__V1__GOVERNANCE_RECORD__INIT;
    char id[32];

    pk_trust_init(&t, "bot", 0);
    o.agent_id = "bot";
    o.operator_id = "ops";
    o.kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER;
    o.tier = PACTUM__V1__TIER__TIER_WATCH;
    o.reason = "customer escalation handled by a person";
    r.record_case = PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE;
    r.override = &o;
    for (int i = 0; i < PK_OVERRIDES_MAX + 3; i++) {
        snprintf(id, sizeof(id), "ov-%d", i);
        o.override_id = id;
        o.created_ms = 1000 * i;
        o.expires_ms = 1000 * i + (i == 2 ? 100000000 : 500);
        pk_trust_govern(&t, &r, &gov, &fx);
    }
    cr_assert_eq(t.n_ov, PK_OVERRIDES_MAX);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH,
                 "an override never changes the decided tier");
    {
        bool long_lived = false;
        for (int i = 0; i < t.n_ov; i++)
            long_lived |= strcmp(t.ov[i].id, "ov-2") == 0;
        cr_assert(long_lived, "the override still in force is kept over expired ones");
    }
    cr_assert(strstr(fx.cause, "customer escalation") != NULL);
}

Test(score, same_inputs_give_the_same_state_byte_for_byte)
{
    pk_trust a, b;
    pk_trust_effect fx;
    pk_trust_msg_storage sa, sb;
    Pactum__V1__TrustState ma, mb;
    uint8_t *ba, *bb;
    size_t la, lb;

    pk_trust_init(&a, "bot", 0);
    pk_trust_init(&b, "bot", 0);
    for (uint64_t i = 1; i <= 300; i++) {
        pk_verdict_msg v =
            verdict_at(i, (int64_t)i * 600000, i % 3 ? "lat" : "pii", i % 3 ? SEV_HIGH : SEV_CRIT,
                       i % 17 ? PASS : FAIL, (uint32_t)(i % 7), (uint32_t)(i % 17 == 0),
                       i % 97 == 0, "demote", (Pactum__V1__Source)(1 + i % 4), 700000);
        pk_trust_apply(&a, &v, &gov, &fx);
        pk_trust_apply(&b, &v, &gov, &fx);
    }
    pk_trust_to_msg(&a, &gov, &ma, &sa);
    pk_trust_to_msg(&b, &gov, &mb, &sb);
    cr_assert_eq(pk_pack(&ma.base, &ba, &la), PK_OK);
    cr_assert_eq(pk_pack(&mb.base, &bb, &lb), PK_OK);
    cr_assert_eq(la, lb);
    cr_assert(memcmp(ba, bb, la) == 0);
    free(ba);
    free(bb);
}

Test(score, wire_form_round_trips)
{
    pk_trust t, back;
    pk_trust_effect fx;
    pk_trust_msg_storage s;
    Pactum__V1__TrustState m;
    Pactum__V1__GovernanceRecord r;
    pk_verdict_msg v = verdict_at(1, 5000, "pii", SEV_CRIT, FAIL, 2, 1, true, "contain",
                                  PACTUM__V1__SOURCE__SOURCE_PEER, 800000);
    uint8_t *b1, *b2;
    size_t l1, l2;

    pk_trust_init(&t, "bot", 77);
    pk_trust_apply(&t, &v, &gov, &fx);
    r = dispute("d-9", 1, 6000);
    pk_trust_govern(&t, &r, &gov, &fx);
    pk_trust_to_msg(&t, &gov, &m, &s);
    cr_assert_eq(pk_pack(&m.base, &b1, &l1), PK_OK);
    pk_trust_from_msg(&back, &m);
    cr_assert_eq(back.tier, t.tier);
    cr_assert(back.held);
    cr_assert_eq(back.c[0].pass_m[PACTUM__V1__SOURCE__SOURCE_PEER],
                 t.c[0].pass_m[PACTUM__V1__SOURCE__SOURCE_PEER]);
    cr_assert(t.c[0].pass_m[PACTUM__V1__SOURCE__SOURCE_PEER] > 1599990 &&
                  t.c[0].pass_m[PACTUM__V1__SOURCE__SOURCE_PEER] <= 1600000,
              "2 passes at 0.8, barely decayed over a second");
    cr_assert_eq(back.n_disp, 1);
    pk_trust_to_msg(&back, &gov, &m, &s);
    cr_assert_eq(pk_pack(&m.base, &b2, &l2), PK_OK);
    cr_assert_eq(l1, l2);
    cr_assert(memcmp(b1, b2, l1) == 0, "read back, written again: the same bytes");
    free(b1);
    free(b2);
}

/* --- honest tiers ------------------------------------------------------------------- */

Test(score, a_serious_clause_failing_all_the_time_is_never_promoted_past_watch)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;

    pk_governance_defaults(&gov);
    pk_trust_init(&t, "bot", 0);
    /* a data-age promise (high) broken on every answer, hidden among 300 good evaluations
     * of three other clauses */
    for (int i = 0; i < 300; i++) {
        static const char *const others[] = {"a", "b", "c"};
        pk_verdict_msg v =
            verdict_at(++vseq, at += 1000, others[i % 3], SEV_CRIT, PASS, 1, 0, false, "contain",
                       PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(&t, &v, &gov, &fx);
        v = verdict_at(++vseq, at += 1000, "data-age", SEV_HIGH, FAIL, 0, 1, false, "notify",
                       PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(&t, &v, &gov, &fx);
        cr_assert_geq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "promoted past watch at %d", i);
    }
    cr_assert_gt(t.lower, gov.standard_ppm, "the composite alone would say standard or better");
}

Test(score, the_first_samples_do_not_make_the_tier_flap)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;
    int moves = 0;

    pk_governance_defaults(&gov);
    gov.min_evidence = 1;
    pk_trust_init(&t, "bot", 0);
    /* good, bad, good, good ... around the standard threshold */
    for (int i = 0; i < 60; i++) {
        bool ok = i % 7 != 3;
        pk_verdict_msg v =
            verdict_at(++vseq, at += 1000, "lat", SEV_MED, ok ? PASS : FAIL, ok, !ok, false,
                       "notify", PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(&t, &v, &gov, &fx);
        moves += fx.to_tier != fx.from_tier;
    }
    /* promotion needs the bound 0.02 above a threshold and, after a demotion, ten
     * minutes; demotion only the bound below it: a bound hovering at a threshold moves
     * the tier once, not back and forth */
    cr_assert_leq(moves, 1, "%d tier moves in 60 evaluations", moves);
}

Test(score, reentry_to_watch_is_a_cap_for_an_hour)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;

    pk_governance_defaults(&gov);
    gov.reentry[PACTUM__V1__TIER__TIER_CONTAINED].clean_ms = 2000;
    gov.reentry[PACTUM__V1__TIER__TIER_CONTAINED].min_samples = 5;
    gov.reentry[PACTUM__V1__TIER__TIER_CONTAINED].no_open_dispute = false;
    gov.reentry[PACTUM__V1__TIER__TIER_CONTAINED].operator_ack = false;
    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 100, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    {
        pk_verdict_msg v = verdict_at(++vseq, at += 1000, "pii", SEV_CRIT, FAIL, 0, 1, true,
                                      "contain", PACTUM__V1__SOURCE__SOURCE_EVALUATOR, 1000000);
        pk_trust_apply(&t, &v, &gov, &fx);
    }
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(t.contained_ms, at, "a new incident is dated");
    feed_good(&t, &vseq, 10, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "re-entry to watch");
    cr_assert_eq(t.promote_after_ms, t.tier_since_ms + HOUR);
    /* a fine score for 76 s (and for the rest of the hour) does not lift it past watch */
    feed_good(&t, &vseq, 200, &at, HOUR / 220);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "climbed before the dwell ended");
    feed_good(&t, &vseq, 40, &at, 60000);
    cr_assert_lt(t.tier, PACTUM__V1__TIER__TIER_WATCH, "the normal rules after the hour");
}

Test(score, a_peers_word_alone_moves_an_agent_one_tier_at_most)
{
    pk_trust t;
    pk_trust_effect fx;
    uint64_t vseq = 0;
    int64_t at = 0;
    pk_verdict_msg v;

    pk_governance_defaults(&gov);
    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 120, &at, 1000);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    v = verdict_at(++vseq, at += 1000, "pii", SEV_CRIT, FAIL, 0, 1, true, "contain",
                   PACTUM__V1__SOURCE__SOURCE_PEER, 800000);
    v.peer_report = true;
    pk_trust_apply(&t, &v, &gov, &fx);
    cr_assert_lt(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "a peer contained the agent");
    cr_assert_str_eq(fx.rule, "consequence demote");
}

Test(score, the_clock_wakes_a_silent_agent)
{
    pk_trust t;
    uint64_t vseq = 0;
    int64_t at = 0, wake;
    pk_trust_effect fx;

    pk_governance_defaults(&gov);
    gov.half_life_ms = 60000; /* a minute */
    pk_trust_init(&t, "bot", 0);
    feed_good(&t, &vseq, 120, &at, 100);
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    wake = pk_scoring_wake(&t, &gov);
    cr_assert_eq(wake, t.clock_ms + 60000 / 16, "forgetting is looked at every 1/16 half-life");
    /* three silent minutes: what the scorer does on its ticks */
    for (int i = 0; i < 48 && t.tier == PACTUM__V1__TIER__TIER_TRUSTED; i++) {
        t.clock_ms = pk_scoring_wake(&t, &gov);
        pk_trust_recompute(&t, &gov);
        pk_tiers_decide(&t, &gov, NULL, 0, &fx);
    }
    cr_assert_gt(t.tier, PACTUM__V1__TIER__TIER_TRUSTED, "still trusted after 3 silent minutes");
}
