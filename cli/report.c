/*
 * The trust report as text for a person, section by section. (With --json,
 * commands print the signed answer as the HTTP API returns it.)
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pk/pbjson.h"
#include "pk/clock.h"
#include "pk/crypto.h"

static double ppm(uint32_t v)
{
    return (double)v / 1e6;
}

static void hex_of(const ProtobufCBinaryData *b, char *out, size_t cap)
{
    if (b->len * 2 + 1 > cap || b->len == 0) {
        out[0] = '\0';
        return;
    }
    pk_hex_encode(b->data, b->len, out);
}

static void ago(int64_t ms, char *buf, size_t len)
{
    int64_t d = pk_now_ms() - ms;

    if (ms <= 0)
        snprintf(buf, len, "never");
    else if (d < 1000)
        snprintf(buf, len, "%lld ms ago", (long long)(d < 0 ? 0 : d));
    else if (d < 120000)
        snprintf(buf, len, "%lld s ago", (long long)(d / 1000));
    else if (d < 7200000)
        snprintf(buf, len, "%lld min ago", (long long)(d / 60000));
    else
        snprintf(buf, len, "%lld h ago", (long long)(d / 3600000));
}

/* The tier, what is in force, the score and the violations. */
static void print_state(const Pactum__V1__TrustReport *r, const Pactum__V1__TrustState *s)
{
    char when[40], rel[32];

    pk_clock_format(s->tier_since_ms, when, sizeof(when));
    printf("tier            %s (since %s)%s\n", pk_tier_name(s->tier), when,
           s->held ? ", held: leaving needs its re-entry criteria" : "");
    if (r->effective_tier != s->tier && r->effective_by) {
        pk_clock_format(r->effective_by->expires_ms, when, sizeof(when));
        printf("in force        %s by override %s of %s until %s: %s\n",
               pk_tier_name(r->effective_tier), r->effective_by->override_id,
               r->effective_by->operator_id, when, r->effective_by->reason);
    }
    ago(s->newest_evidence_ms, rel, sizeof(rel));
    if (s->evidence == 0)
        printf("score           insufficient evidence (no evaluations yet)\n");
    else
        printf("score           %.4f (lower bound %.4f; %llu evaluations; newest evidence %s)\n",
               ppm(s->score_ppm), ppm(s->lower_ppm), (unsigned long long)s->evidence, rel);
    printf("violations     ");
    if (s->n_violations == 0)
        printf(" none");
    for (size_t i = 0; i < s->n_violations; i++)
        printf(" %s %llu", pk_severity_name(s->violations[i]->severity),
               (unsigned long long)s->violations[i]->count);
    printf("\n");
}

/* The pacts in force and where the report is in the log. */
static void print_pacts_and_log(const Pactum__V1__TrustReport *r)
{
    for (size_t i = 0; i < r->n_pacts; i++) {
        char hash[PK_HASH_BYTES * 2 + 1];
        hex_of(&r->pacts[i]->hash, hash, sizeof(hash));
        printf("%s %s v%u sha256:%.16s...\n", i == 0 ? "pacts          " : "               ",
               r->pacts[i]->pact_id, r->pacts[i]->version, hash);
    }
    if (r->log_head.len) {
        Pactum__V1__Signed *env =
            pactum__v1__signed__unpack(NULL, r->log_head.len, r->log_head.data);
        Pactum__V1__TreeHead *th =
            env ? pactum__v1__tree_head__unpack(NULL, env->payload.len, env->payload.data) : NULL;
        if (th && r->logged)
            printf("log             leaf %llu of log %s (%llu leaves)\n",
                   (unsigned long long)r->log_index, th->log_id, (unsigned long long)th->size);
        else if (th)
            printf("log             not yet in log %s (%llu leaves)\n", th->log_id,
                   (unsigned long long)th->size);
        if (th)
            pactum__v1__tree_head__free_unpacked(th, NULL);
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
    }
}

static void print_clauses(const Pactum__V1__TrustState *s)
{
    printf("clauses\n");
    for (size_t i = 0; i < s->n_clauses; i++) {
        const Pactum__V1__ClauseScore *c = s->clauses[i];
        char name[2 * PK_ID_MAX + 2];
        snprintf(name, sizeof(name), "%s/%s", c->pact_id, c->clause_id);
        printf("  %-28s %-8s score %.4f lower %.4f  pass %llu fail %llu  last %s\n", name,
               pk_severity_name(c->severity), ppm(c->score_ppm), ppm(c->lower_ppm),
               (unsigned long long)c->passes, (unsigned long long)c->fails,
               pk_outcome_name(c->last_outcome));
    }
}

/* What the agent may do now. */
static void print_scope(const Pactum__V1__TierScope *sc)
{
    printf("may do now     ");
    if (sc->nothing)
        printf(" nothing (%s)", pk_tier_name(sc->tier));
    else if (sc->any_action)
        printf(" what the pact's scope allows");
    else
        for (size_t i = 0; i < sc->n_actions; i++)
            printf(" %s", sc->actions[i]);
    if (sc->n_approval) {
        printf("; approval needed for");
        for (size_t i = 0; i < sc->n_approval; i++)
            printf(" %s", sc->approval[i]);
    }
    if (sc->spend_needs_approval)
        printf("; spending needs approval");
    if (sc->spend_per_action > 0)
        printf("; at most %g per action", sc->spend_per_action);
    for (size_t i = 0; i < sc->n_allowed_by_override; i++)
        printf("%s%s", i ? " " : "; allowed by override: ", sc->allowed_by_override[i]);
    for (size_t i = 0; i < sc->n_denied_by_override; i++)
        printf("%s%s", i ? " " : "; denied by override: ", sc->denied_by_override[i]);
    printf("\n");
}

static void print_last_violation(const Pactum__V1__TrustReport *r)
{
    const Pactum__V1__Verdict *v = r->last_violation;

    printf("last violation  verdict #%llu %s/%s (%s) %s: %s\n", (unsigned long long)v->vseq,
           v->pact_id, v->clause_id, pk_severity_name(v->severity), pk_outcome_name(v->outcome),
           v->detail);
    if (v->n_evidence)
        printf("                evidence: event %s (PACTUM_EVENTS #%llu); pact %s v%u\n",
               v->evidence[0]->event_id, (unsigned long long)v->evidence[0]->seq, v->pact_id,
               v->pact_version);
    for (size_t i = 0; r->state && i < r->state->n_overturned; i++) {
        if (r->state->overturned[i] == v->vseq)
            printf("                overturned by a ruling: it no longer counts\n");
    }
}

static void print_overrides(const Pactum__V1__TrustReport *r)
{
    printf("overrides (newest first)\n");
    for (size_t i = 0; i < r->n_overrides; i++) {
        const Pactum__V1__Override *o = r->overrides[i];
        char until[40];
        pk_clock_format(o->expires_ms, until, sizeof(until));
        printf("  %-14s by %-10s %s until %s%s: %s\n", o->override_id, o->operator_id,
               o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER    ? pk_tier_name(o->tier)
               : o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW ? "allow"
                                                                      : "deny",
               until,
               o->created_ms <= r->answered_ms && r->answered_ms < o->expires_ms ? " (in force)"
                                                                                 : " (expired)",
               o->reason);
    }
}

static void print_disputes(const Pactum__V1__TrustReport *r)
{
    printf("disputes and rulings (newest first)\n");
    for (size_t i = 0; i < r->n_disputes; i++) {
        const Pactum__V1__GovernanceRecord *g = r->disputes[i]->record;
        const Pactum__V1__RulingEffect *e = r->disputes[i]->effect;
        if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE)
            printf("  dispute %s by %s on %s%s: %s\n", g->dispute->dispute_id,
                   g->dispute->opened_by, g->dispute->verdict_vseq ? "a verdict" : "event ",
                   g->dispute->event_id, g->dispute->reason);
        else if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING)
            printf("  ruling on %s by %s: %s (%s)\n", g->ruling->dispute_id, g->ruling->arbiter_id,
                   g->ruling->overturned ? "overturned" : "upheld", g->ruling->reason);
        if (e)
            printf("      it changed: score %.4f -> %.4f, tier %s -> %s, %zu verdict%s removed\n",
                   ppm(e->score_before_ppm), ppm(e->score_after_ppm), pk_tier_name(e->tier_before),
                   pk_tier_name(e->tier_after), e->n_verdicts_removed,
                   e->n_verdicts_removed == 1 ? "" : "s");
    }
}

static void print_tier_history(const Pactum__V1__TrustReport *r)
{
    char when[40];

    printf("tier history (newest first)\n");
    for (size_t i = 0; i < r->n_tier_history; i++) {
        const Pactum__V1__TierChange *t = r->tier_history[i];
        pk_clock_format(t->at_ms, when, sizeof(when));
        printf("  %s  %-10s -> %-10s %s: %s", when, pk_tier_name(t->from), pk_tier_name(t->to),
               t->rule, t->cause);
        if (t->containment_ms)
            printf(" [contained %lld ms after ingest]", (long long)t->containment_ms);
        printf("\n");
        for (size_t k = 0; k < t->n_criteria; k++)
            printf("      %s %s: %s (required %s)\n", t->criteria[k]->met ? "met    " : "not met",
                   t->criteria[k]->name, t->criteria[k]->actual, t->criteria[k]->required);
    }
}

void cli_report_print(const Pactum__V1__TrustReport *r)
{
    if (r->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        printf("%s: %s\n", pk_pb_enum_name(&pactum__v1__query_status__descriptor, r->status),
               r->message);
        return;
    }
    printf("agent           %s%s\n", r->agent_id, r->registered ? "" : " (not in the registry)");
    if (r->state)
        print_state(r, r->state);
    print_pacts_and_log(r);
    if (r->state && r->state->n_clauses)
        print_clauses(r->state);
    if (r->scope)
        print_scope(r->scope);
    if (r->last_violation)
        print_last_violation(r);
    if (r->n_overrides)
        print_overrides(r);
    if (r->n_disputes)
        print_disputes(r);
    if (r->n_reentry) {
        printf("re-entry        (held: what it takes to leave %s, and where it stands)\n",
               r->state ? pk_tier_name(r->state->tier) : "?");
        for (size_t i = 0; i < r->n_reentry; i++)
            printf("  %-3s %-18s %s, needs %s\n", r->reentry[i]->met ? "ok" : "no",
                   r->reentry[i]->name, r->reentry[i]->actual, r->reentry[i]->required);
    }
    if (r->review_pact && *r->review_pact)
        printf("review          pact %s was due for review; until it is, the tier is capped\n",
               r->review_pact);
    if (r->n_tier_history)
        print_tier_history(r);
    if (r->message && *r->message)
        printf("note            %s\n", r->message);
}
