/* Score math and tier rules. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "score.h"

#define SEV_CRIT PACTUM__V1__SEVERITY__SEVERITY_CRITICAL
#define SEV_HIGH PACTUM__V1__SEVERITY__SEVERITY_HIGH
#define PASS PACTUM__V1__OUTCOME__OUTCOME_PASS
#define FAIL PACTUM__V1__OUTCOME__OUTCOME_FAIL

static Pactum__V1__SourceTally tally;
static Pactum__V1__SourceTally *tallyp[1] = {&tally};

static pk_verdict_msg verdict(uint64_t vseq, const char *clause, Pactum__V1__Severity sev,
                              Pactum__V1__Outcome outcome, uint32_t pass, uint32_t fail,
                              bool violation, const char *consequence)
{
    pk_verdict_msg v;

    pactum__v1__verdict__init(&v);
    pactum__v1__source_tally__init(&tally);
    v.agent_id = "bot";
    v.vseq = vseq;
    v.pact_id = "p";
    v.clause_id = (char *)clause;
    v.severity = sev;
    v.outcome = outcome;
    v.violation = violation;
    v.consequence = (char *)consequence;
    v.detail = "detail";
    v.event_ts_ms = 1000 + (int64_t)vseq;
    v.ingest_ms = 1000 + (int64_t)vseq;
    tally.source = PACTUM__V1__SOURCE__SOURCE_EVALUATOR;
    tally.pass = pass;
    tally.fail = fail;
    tally.weight_ppm = 1000000;
    v.tally = tallyp;
    v.n_tally = 1;
    return v;
}

Test(score, isqrt_is_the_floor_of_the_square_root)
{
    cr_assert_eq(pk_isqrt(0), 0);
    cr_assert_eq(pk_isqrt(15), 3);
    cr_assert_eq(pk_isqrt(16), 4);
    cr_assert_eq(pk_isqrt(1000000000000ull), 1000000);
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
    /* Beta(1,1): sd = sqrt(0.25/3) = 0.288675; lower = 0.5 - 1.645 * sd = 0.025129 */
    cr_assert(lower >= 25128 && lower <= 25131, "lower %u", lower);
    pk_beta_bounds(31000000, 1000000, &mean, &lower);
    cr_assert(fabs(mean / 1e6 - m) < 2e-6);
    cr_assert(fabs(lower / 1e6 - (m - 1.645 * sd)) < 1e-5, "lower %u", lower);
}

Test(score, no_evidence_is_insufficient_not_good)
{
    pk_trust t;

    pk_trust_init(&t, "bot", 0);
    pk_trust_recompute(&t);
    cr_assert_eq(t.score, 0);
    cr_assert_eq(t.lower, 0);
    cr_assert_eq(pk_tier_from_score(&t), PACTUM__V1__TIER__TIER_WATCH);
}

Test(score, clean_evidence_promotes_step_by_step)
{
    pk_trust t;
    pk_trust_effect fx;
    int seen_standard = 0;

    pk_trust_init(&t, "bot", 0);
    for (uint64_t i = 1; i <= 40; i++) {
        pk_verdict_msg v = verdict(i, "lat", SEV_HIGH, PASS, 1, 0, false, "demote");
        pk_trust_apply(&t, &v, 0, &fx);
        cr_assert(fx.applied);
        if (t.tier == PACTUM__V1__TIER__TIER_STANDARD)
            seen_standard = 1;
        if (i < PK_MIN_EVIDENCE)
            cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_WATCH, "too little evidence at %llu",
                         (unsigned long long)i);
    }
    cr_assert(seen_standard, "watch -> standard -> trusted, not a jump");
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED, "lower %u", t.lower);
    cr_assert_eq(t.evidence, 40);
}

Test(score, a_critical_violation_contains_at_once_and_stays)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;

    pk_trust_init(&t, "bot", 0);
    for (uint64_t i = 1; i <= 40; i++) {
        v = verdict(i, "lat", SEV_HIGH, PASS, 1, 0, false, "demote");
        pk_trust_apply(&t, &v, 0, &fx);
    }
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    v = verdict(41, "pii", SEV_CRIT, FAIL, 0, 1, true, "contain");
    pk_trust_apply(&t, &v, 5000, &fx);
    cr_assert_eq(fx.from_tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_str_eq(fx.rule, "critical violation contains at once");
    cr_assert(strstr(fx.cause, "p/pii") != NULL, "%s", fx.cause);
    cr_assert_eq(t.tier_since_ms, 5000);
    cr_assert_eq(t.violations[SEV_CRIT], 1);
    for (uint64_t i = 42; i <= 200; i++) {
        v = verdict(i, "lat", SEV_HIGH, PASS, 1, 0, false, "demote");
        pk_trust_apply(&t, &v, 6000, &fx);
        cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_CONTAINED, "good evidence alone never "
                                                               "lifts containment");
    }
}

Test(score, a_verdict_applied_twice_changes_nothing)
{
    pk_trust t, copy;
    pk_trust_effect fx;
    pk_verdict_msg v = verdict(1, "lat", SEV_HIGH, PASS, 3, 1, false, "demote");

    pk_trust_init(&t, "bot", 0);
    pk_trust_apply(&t, &v, 0, &fx);
    cr_assert(fx.applied);
    memcpy(&copy, &t, sizeof(t));
    pk_trust_apply(&t, &v, 0, &fx);
    cr_assert_not(fx.applied);
    cr_assert(memcmp(&copy, &t, sizeof(t)) == 0);
    v.vseq = 0;
    pk_trust_apply(&t, &v, 0, &fx);
    cr_assert_not(fx.applied, "an older sequence is a duplicate too");
}

Test(score, demote_and_restrict_consequences)
{
    pk_trust t;
    pk_trust_effect fx;
    pk_verdict_msg v;

    pk_trust_init(&t, "bot", 0);
    for (uint64_t i = 1; i <= 60; i++) {
        v = verdict(i, "lat", SEV_HIGH, PASS, 1, 0, false, "demote");
        pk_trust_apply(&t, &v, 0, &fx);
    }
    cr_assert_eq(t.tier, PACTUM__V1__TIER__TIER_TRUSTED);
    v = verdict(61, "lat", SEV_HIGH, FAIL, 0, 1, true, "demote");
    pk_trust_apply(&t, &v, 0, &fx);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_STANDARD);
    cr_assert_str_eq(fx.rule, "consequence demote");
    v = verdict(62, "cost", PACTUM__V1__SEVERITY__SEVERITY_MEDIUM, FAIL, 0, 1, true, "restrict");
    pk_trust_apply(&t, &v, 0, &fx);
    cr_assert_eq(fx.to_tier, PACTUM__V1__TIER__TIER_RESTRICTED);
}

Test(score, same_verdicts_give_the_same_state_byte_for_byte)
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
        pk_verdict_msg v = verdict(i, i % 3 ? "lat" : "pii", i % 3 ? SEV_HIGH : SEV_CRIT,
                                   i % 17 ? PASS : FAIL, (uint32_t)(i % 7), (uint32_t)(i % 17 == 0),
                                   i % 97 == 0, "demote");
        pk_trust_apply(&a, &v, 0, &fx);
        pk_trust_apply(&b, &v, 0, &fx);
    }
    pk_trust_to_msg(&a, &ma, &sa);
    pk_trust_to_msg(&b, &mb, &sb);
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
    pk_verdict_msg v = verdict(1, "pii", SEV_CRIT, FAIL, 2, 1, true, "contain");

    pk_trust_init(&t, "bot", 77);
    pk_trust_apply(&t, &v, 99, &fx);
    pk_trust_to_msg(&t, &m, &s);
    pk_trust_from_msg(&back, &m);
    cr_assert_eq(back.tier, t.tier);
    cr_assert_eq(back.score, t.score);
    cr_assert_eq(back.c[0].alpha, t.c[0].alpha);
    cr_assert_eq(back.violations[SEV_CRIT], 1);
    cr_assert_eq(back.last_vseq, 1);
}
