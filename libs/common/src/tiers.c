/*
 * tiers - the tier ladder: the tier a score gives, the tier rules after each
 * input (consequences, containment, held tiers and their re-entry criteria),
 * and the sentence that explains a move. docs/scoring.md describes each rule.
 */
#include "pk/tiers.h"

#include <stdio.h>
#include <string.h>

#define T_TRUSTED    PACTUM__V1__TIER__TIER_TRUSTED
#define T_STANDARD   PACTUM__V1__TIER__TIER_STANDARD
#define T_WATCH      PACTUM__V1__TIER__TIER_WATCH
#define T_RESTRICTED PACTUM__V1__TIER__TIER_RESTRICTED
#define T_CONTAINED  PACTUM__V1__TIER__TIER_CONTAINED
#define T_SUSPENDED  PACTUM__V1__TIER__TIER_SUSPENDED

/*
 * The tier the bound gives with each threshold raised by margin (ppm). Below watch the
 * score itself must say so: a bound that is low only because the evidence is thin (a new
 * agent, or one gone quiet) is watch, not restricted.
 */
static int tier_of_bound(const pk_trust *t, const pk_governance *g, uint32_t margin)
{
    if (t->lower >= g->trusted_ppm + margin)
        return T_TRUSTED;
    if (t->lower >= g->standard_ppm + margin)
        return T_STANDARD;
    if (t->lower >= g->watch_ppm + margin || t->score >= g->watch_ppm + margin)
        return T_WATCH;
    return T_RESTRICTED;
}

/* A high or critical clause whose last verdict failed (or went stale), or NULL. */
static const pk_clause_score *failing_serious(const pk_trust *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const pk_clause_score *c = &t->c[i];
        if (c->severity >= PACTUM__V1__SEVERITY__SEVERITY_HIGH &&
            (c->last_outcome == PACTUM__V1__OUTCOME__OUTCOME_FAIL ||
             c->last_outcome == PACTUM__V1__OUTCOME__OUTCOME_STALE))
            return c;
    }
    return NULL;
}

int pk_tier_from_score(const pk_trust *t, const pk_governance *g)
{
    int tier;

    if (t->evidence < g->min_evidence || t->score == 0)
        return T_WATCH;
    tier = tier_of_bound(t, g, 0);
    /* a serious promise broken now caps the tier, whatever the composite says */
    return failing_serious(t) && tier < T_WATCH ? T_WATCH : tier;
}

/* The better tier a promotion may reach now: the bound a margin above the threshold, a
 * dwell in the current tier, no serious clause failing; else cur. */
static int promotion(const pk_trust *t, const pk_governance *g, int cur)
{
    int tier;

    if (t->evidence < g->min_evidence || t->score == 0 || failing_serious(t))
        return cur;
    if (t->clock_ms < t->promote_after_ms || t->clock_ms - t->tier_since_ms < g->dwell_ms)
        return cur;
    tier = tier_of_bound(t, g, g->margin_ppm);
    return tier < cur ? tier : cur;
}

/* Record criterion name: required "<op><req>", actual "<act>". */
static void add_criterion(pk_trust_effect *fx, const char *name, bool met, const char *op,
                          long long req, long long act)
{
    pk_criterion *c;

    if (fx->n_crit >= (int)(sizeof(fx->crit) / sizeof(fx->crit[0])))
        return;
    c = &fx->crit[fx->n_crit++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->required, sizeof(c->required), "%s%lld", op, req);
    snprintf(c->actual, sizeof(c->actual), "%lld", act);
    c->met = met;
}

/* Are the re-entry criteria for leaving the current (held) tier met? Records
 * every criterion and its value in fx. */
static bool reentry_met(const pk_trust *t, const pk_reentry *r, pk_trust_effect *fx)
{
    int64_t since_violation =
        t->clock_ms -
        (t->last_violation_ms > t->tier_since_ms ? t->last_violation_ms : t->tier_since_ms);
    bool ok = true, met;

    fx->n_crit = 0;
    if (!r->from)
        return false; /* no criteria: no automatic way out */
    met = since_violation >= r->clean_ms;
    add_criterion(fx, "clean_window_ms", met, ">= ", r->clean_ms, since_violation);
    ok &= met;
    met = t->evaluations_in_tier >= r->min_samples;
    add_criterion(fx, "min_samples", met, ">= ", r->min_samples, (long long)t->evaluations_in_tier);
    ok &= met;
    if (r->no_open_dispute) {
        met = t->n_disp == 0;
        add_criterion(fx, "open_disputes", met, "== ", 0, t->n_disp);
        ok &= met;
    }
    if (r->operator_ack) {
        met = t->acked_ms >= t->tier_since_ms && t->acked_ms > 0;
        add_criterion(fx, "operator_ack_ms", met, ">= ", t->tier_since_ms, t->acked_ms);
        ok &= met;
    }
    if (r->min_lower_ppm) {
        met = t->lower >= r->min_lower_ppm;
        add_criterion(fx, "lower_ppm", met, ">= ", r->min_lower_ppm, t->lower);
        ok &= met;
    }
    return ok;
}

bool pk_tiers_reentry(const pk_trust *t, const pk_governance *g, pk_trust_effect *fx)
{
    fx->n_crit = 0;
    if (!(t->held || t->tier >= T_CONTAINED) || (unsigned)t->tier >= PK_TIERS)
        return false;
    return reentry_met(t, &g->reentry[t->tier], fx);
}

static int worse(int a, int b)
{
    return a > b ? a : b;
}

static void set_rule(pk_trust_effect *fx, const char *rule)
{
    snprintf(fx->rule, sizeof(fx->rule), "%s", rule);
}

/* Move to tier `to` (held or not) at the current input time. */
static void move(pk_trust *t, int to, bool held, pk_trust_effect *fx)
{
    if (to != t->tier) {
        if (to >= T_CONTAINED && held)
            t->contained_ms = t->clock_ms; /* a new incident: older overrides lapse */
        t->tier = to;
        t->tier_since_ms = t->clock_ms;
        t->evaluations_in_tier = 0;
    }
    t->held = held;
    fx->to_tier = to;
}

/* Leave a held tier: at most to r->to (a cap: the score may say worse), and no climbing
 * past it for r->dwell_ms. */
static void reenter(pk_trust *t, const pk_reentry *r, int score_tier, pk_trust_effect *fx)
{
    move(t, worse(r->to, score_tier), false, fx);
    t->promote_after_ms = t->clock_ms + r->dwell_ms;
}

/*
 * The tier rules, after an input. `violation`: the input was a violation with
 * this consequence and severity (consequence NULL: no violation).
 */
void pk_tiers_decide(pk_trust *t, const pk_governance *g, const char *consequence, int severity,
                     pk_trust_effect *fx)
{
    int cur = t->tier, score_tier = pk_tier_from_score(t, g);
    bool violation = consequence != NULL;

    fx->to_tier = cur;
    if (violation && strcmp(consequence, "suspend") == 0) {
        set_rule(fx, "consequence suspend");
        move(t, T_SUSPENDED, true, fx);
    } else if (violation && cur < T_CONTAINED &&
               (strcmp(consequence, "contain") == 0 ||
                severity == PACTUM__V1__SEVERITY__SEVERITY_CRITICAL)) {
        set_rule(fx, "critical violation contains at once");
        move(t, T_CONTAINED, true, fx);
    } else if (cur >= T_CONTAINED) {
        /* contained or suspended: only the re-entry criteria (or an override) lead out */
        if (reentry_met(t, &g->reentry[cur], fx)) {
            set_rule(fx, PK_RULE_REENTRY);
            reenter(t, &g->reentry[cur], score_tier, fx);
        }
    } else if (violation && strcmp(consequence, "restrict") == 0) {
        set_rule(fx, "consequence restrict");
        move(t, worse(worse(cur, T_RESTRICTED), score_tier), true, fx);
    } else if (violation && strcmp(consequence, "demote") == 0) {
        set_rule(fx, "consequence demote");
        move(t, worse(cur + 1 < T_RESTRICTED ? cur + 1 : T_RESTRICTED, score_tier), true, fx);
    } else if (score_tier > cur) {
        set_rule(fx, "score");
        move(t, score_tier, t->held, fx); /* a held tier stays held when the score drops */
        /* no climbing straight back: a bound hovering at a threshold would flap */
        if (t->clock_ms + g->after_demotion_ms > t->promote_after_ms)
            t->promote_after_ms = t->clock_ms + g->after_demotion_ms;
    } else if (t->held) {
        if (reentry_met(t, &g->reentry[cur], fx)) {
            set_rule(fx, PK_RULE_REENTRY);
            reenter(t, &g->reentry[cur], score_tier, fx);
        } else {
            fx->n_crit = 0; /* criteria are recorded only when they let the agent out */
        }
    } else if (promotion(t, g, cur) < cur) {
        set_rule(fx, "score");
        move(t, promotion(t, g, cur), false, fx);
    }
}

/* "re-entry from contained: clean_window_ms 90000000 (>= 86400000), ..." */
void pk_tiers_criteria_text(const pk_trust_effect *fx, const char *what, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "%s %s:", what, pk_tier_name(fx->from_tier));

    for (int i = 0; i < fx->n_crit && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s %s %s (%s)", i ? "," : "",
                                fx->crit[i].name, fx->crit[i].actual, fx->crit[i].required);
}

void pk_tiers_explain(const pk_trust *t, const pk_verdict_msg *v, pk_trust_effect *fx)
{
    if (fx->to_tier == fx->from_tier) {
        if (v)
            snprintf(fx->cause, sizeof(fx->cause), "%s/%s %s", v->pact_id, v->clause_id,
                     pk_outcome_name(v->outcome));
        return;
    }
    if (strcmp(fx->rule, "score") == 0)
        snprintf(fx->cause, sizeof(fx->cause),
                 "lower bound %u.%06u with %llu evaluations (after %s/%s %s)", t->lower / PK_PPM,
                 t->lower % PK_PPM, (unsigned long long)t->evidence, v ? v->pact_id : "-",
                 v ? v->clause_id : "-", v ? pk_outcome_name(v->outcome) : "-");
    else if (strcmp(fx->rule, PK_RULE_REENTRY) == 0)
        pk_tiers_criteria_text(fx, "re-entry from", fx->cause, sizeof(fx->cause));
    else if (v)
        snprintf(fx->cause, sizeof(fx->cause), "%s/%s (%s) %s%s%s: %s", v->pact_id, v->clause_id,
                 pk_severity_name(v->severity), pk_outcome_name(v->outcome),
                 v->trigger[0] ? " by trigger " : "", v->trigger, v->detail);
}
