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

int pk_tier_from_score(const pk_trust *t, const pk_governance *g)
{
    if (t->evidence < g->min_evidence || t->score == 0)
        return T_WATCH;
    if (t->lower >= g->trusted_ppm)
        return T_TRUSTED;
    if (t->lower >= g->standard_ppm)
        return T_STANDARD;
    if (t->lower >= g->watch_ppm)
        return T_WATCH;
    return T_RESTRICTED;
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
        t->tier = to;
        t->tier_since_ms = t->clock_ms;
        t->evaluations_in_tier = 0;
    }
    t->held = held;
    fx->to_tier = to;
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
            move(t, worse(g->reentry[cur].to, score_tier), false, fx);
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
    } else if (t->held) {
        if (reentry_met(t, &g->reentry[cur], fx)) {
            set_rule(fx, PK_RULE_REENTRY);
            move(t, worse(g->reentry[cur].to, score_tier), false, fx);
        } else {
            fx->n_crit = 0; /* criteria are recorded only when they let the agent out */
        }
    } else if (score_tier != cur) {
        set_rule(fx, "score");
        move(t, score_tier, false, fx);
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
