/*
 * score - the reputation math, the tier rules and the governance records, in
 * integers and input times only, so that a replay of the same inputs gives
 * the same state byte for byte on any machine. docs/scoring.md explains
 * every step.
 *
 * Units: evidence masses in millionths ("micro", 1.0 = 1,000,000); scores
 * and bounds in parts per million (ppm); times in ms of the bus clock as
 * recorded in the inputs (never the scorer's own clock).
 */
#ifndef PK_TRUST_H
#define PK_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/engagement.h"
#include "pk/pact.h"

#define PK_SCORE_MAX_CLAUSES PK_CLAUSES_PER_AGENT_MAX
#define PK_PPM               1000000u
#define PK_PRIOR_MICRO       1000000u /* Beta(1, 1) prior: one pass and one failure */
#define PK_Z_MILLI           1645u    /* one-sided 95 % normal quantile, x1000 */
#define PK_OVERRIDES_MAX     16       /* overrides kept in the state (active ones always) */
#define PK_OVERRIDE_ACTIONS  8
#define PK_DISPUTES_MAX      32  /* open disputes kept in the state */
#define PK_OVERTURNED_MAX    64  /* verdicts and events taken out of the score */
#define PK_TEXT_MAX          256 /* reasons kept in the state (full text in the history) */
#define PK_CRITERIA_MAX      6   /* re-entry criteria recorded with a tier change */

typedef struct pk_clause_score {
    char pact_id[PK_ID_MAX + 1];   /* pact */
    char clause_id[PK_ID_MAX + 1]; /* clause */
    int severity;                  /* Pactum__V1__Severity */
    uint64_t pass_m[PK_SOURCES];   /* weighted passes by source, after forgetting, micro */
    uint64_t fail_m[PK_SOURCES];   /* weighted failures by source, after forgetting, micro */
    int64_t decayed_to_ms;         /* masses are as of this time */
    uint64_t passes;               /* evaluations that passed, ever */
    uint64_t fails;                /* evaluations that failed, ever */
    int last_outcome;              /* Pactum__V1__Outcome of the last verdict */
    int64_t last_ts_ms;            /* newest evidence */
} pk_clause_score;

typedef struct pk_override {
    char id[PK_ID_MAX + 1];
    char operator_id[PK_ID_MAX + 1];
    int kind; /* Pactum__V1__OverrideKind */
    int tier; /* with OVERRIDE_TIER */
    char actions[PK_OVERRIDE_ACTIONS][PK_NAME_MAX + 1];
    int n_actions;
    char reason[PK_TEXT_MAX];
    int64_t expires_ms;
    int64_t created_ms;
} pk_override;

typedef struct pk_dispute {
    char id[PK_ID_MAX + 1];
    char opened_by[PK_ID_MAX + 1];
    uint64_t vseq;                      /* verdict disputed, or 0 */
    char event_id[PK_EVENT_ID_MAX + 1]; /* or event disputed */
    char reason[PK_TEXT_MAX];
    int64_t opened_ms;
} pk_dispute;

typedef struct pk_trust {
    char agent_id[PK_ID_MAX + 1];       /* the agent */
    uint32_t score;                     /* composite score, ppm */
    uint32_t lower;                     /* lower confidence bound of the score, ppm */
    uint64_t evidence;                  /* evaluations counted */
    int64_t newest_ms;                  /* newest evidence */
    int tier;                           /* decided tier (Pactum__V1__Tier) */
    int64_t tier_since_ms;              /* when it was entered (input time) */
    bool held;                          /* entered by a consequence: leaving needs re-entry */
    uint64_t change_seq;                /* trust changes published */
    uint64_t last_vseq;                 /* last verdict applied */
    uint64_t violations[PK_SEVERITIES]; /* by Pactum__V1__Severity */
    int64_t clock_ms;                   /* newest input time */
    int64_t last_violation_ms;          /* newest violation */
    uint64_t evaluations_in_tier;       /* evaluations since the tier was entered */
    int64_t acked_ms;                   /* newest operator acknowledgement */
    int64_t contained_ms;               /* newest containment or suspension (a new incident) */
    int64_t promote_after_ms;           /* after a re-entry: no promotion before this time */
    char gov_pact[PK_ID_MAX + 1];       /* pact whose governance applies; "" = defaults */
    uint32_t gov_version;
    size_t n; /* clauses */
    pk_clause_score c[PK_SCORE_MAX_CLAUSES];
    pk_override ov[PK_OVERRIDES_MAX];
    int n_ov;
    pk_dispute disp[PK_DISPUTES_MAX];
    int n_disp;
    uint64_t overturned[PK_OVERTURNED_MAX];
    int n_overturned;
    char overturned_events[PK_OVERTURNED_MAX][PK_EVENT_ID_MAX + 1];
    int n_overturned_events;
    pk_engagement eng[PK_ENGAGEMENTS_MAX]; /* engagements not yet final, and recent ones */
    int n_eng;
    pk_eng_totals eng_totals;
} pk_trust;

typedef struct pk_criterion {
    char name[32]; /* clean_window_ms, min_samples ... */
    char required[48];
    char actual[48];
    bool met;
} pk_criterion;

/* What one input did. */
typedef struct pk_trust_effect {
    bool applied;                       /* false: a duplicate or an input with no effect */
    int from_tier, to_tier;             /* tier before and after */
    int64_t score_delta;                /* change of the composite score, ppm */
    char rule[64];                      /* which tier rule fired */
    char cause[400];                    /* sentence naming what moved the tier or score */
    pk_criterion crit[PK_CRITERIA_MAX]; /* re-entry criteria and their values */
    int n_crit;
    int64_t decay_ppm; /* forgetting applied to the clause: weight kept, ppm */
} pk_trust_effect;

/* A new agent: no evidence, tier watch, clock at now_ms (an input time). */
void pk_trust_init(pk_trust *t, const char *agent_id, int64_t now_ms);

uint64_t pk_isqrt(uint64_t x);

/* Posterior mean and lower bound (ppm) of Beta(alpha, beta), both in micro. */
void pk_beta_bounds(uint64_t alpha, uint64_t beta, uint32_t *mean, uint32_t *lower);

/* 2^(-dt/half_life) in Q32 fixed point, integer arithmetic only. */
uint64_t pk_decay_q32(int64_t dt_ms, int64_t half_life_ms);

/* Alpha and beta of a clause: prior plus each source's mass, capped. */
void pk_clause_posterior(const pk_clause_score *c, const pk_governance *g, uint64_t *alpha,
                         uint64_t *beta);

/* Recompute the composite score and bound from the clauses. */
void pk_trust_recompute(pk_trust *t, const pk_governance *g);

/* Has a ruling taken this verdict out of the score? */
bool pk_trust_overturned(const pk_trust *t, const pk_verdict_msg *v);

/*
 * Apply one verdict under governance g. Verdicts with vseq at or below
 * t->last_vseq are duplicates and change nothing (effect->applied false).
 */
void pk_trust_apply(pk_trust *t, const pk_verdict_msg *v, const pk_governance *g,
                    pk_trust_effect *out);

/*
 * Apply a governance record (override, dispute, ruling, acknowledgement). A
 * ruling only does the bookkeeping here (closes the dispute, notes what it
 * overturned); taking verdicts out of the score is a recompute the caller
 * does from the history (see scorer.c).
 */
void pk_trust_govern(pk_trust *t, const Pactum__V1__GovernanceRecord *rec, const pk_governance *g,
                     pk_trust_effect *out);

/* The open dispute with this id, or NULL. */
const pk_dispute *pk_trust_dispute(const pk_trust *t, const char *id);

/*
 * A settled engagement counts as one evaluation of the clause "engagements/
 * settled" (source evaluator): pass_micro and fail_micro are its weight
 * split by what was released and what went back (docs/scoring.md).
 */
void pk_trust_add_settled(pk_trust *t, const pk_governance *g, uint64_t pass_micro,
                          uint64_t fail_micro);

/* Convert to and from the wire form. pk_trust_to_msg fills caller-provided
 * storage; the message borrows from t and storage. */
typedef struct pk_trust_msg_storage {
    Pactum__V1__ClauseScore cs[PK_SCORE_MAX_CLAUSES];
    Pactum__V1__ClauseScore *csp[PK_SCORE_MAX_CLAUSES];
    Pactum__V1__SourceMass sm[PK_SCORE_MAX_CLAUSES][PK_SOURCES];
    Pactum__V1__SourceMass *smp[PK_SCORE_MAX_CLAUSES][PK_SOURCES];
    Pactum__V1__SeverityCount sc[PK_SEVERITIES];
    Pactum__V1__SeverityCount *scp[PK_SEVERITIES];
    Pactum__V1__Override ov[PK_OVERRIDES_MAX];
    Pactum__V1__Override *ovp[PK_OVERRIDES_MAX];
    char *ov_actions[PK_OVERRIDES_MAX][PK_OVERRIDE_ACTIONS];
    Pactum__V1__Dispute disp[PK_DISPUTES_MAX];
    Pactum__V1__Dispute *dispp[PK_DISPUTES_MAX];
    char *ov_events[PK_OVERTURNED_MAX];
    Pactum__V1__EngagementState es[PK_ENGAGEMENTS_MAX];
    Pactum__V1__EngagementState *esp[PK_ENGAGEMENTS_MAX];
    Pactum__V1__Engagement terms[PK_ENGAGEMENTS_MAX];
    Pactum__V1__Settlement last[PK_ENGAGEMENTS_MAX];
    Pactum__V1__EngagementFailure ef[PK_ENGAGEMENTS_MAX][PK_ENG_FAILURES_MAX];
    Pactum__V1__EngagementFailure *efp[PK_ENGAGEMENTS_MAX][PK_ENG_FAILURES_MAX];
    Pactum__V1__EngagementTotals totals;
} pk_trust_msg_storage;

void pk_trust_to_msg(const pk_trust *t, const pk_governance *g, Pactum__V1__TrustState *m,
                     pk_trust_msg_storage *s);
void pk_trust_from_msg(pk_trust *t, const Pactum__V1__TrustState *m);

/* The engagements part of the wire form (engagement.c). */
void pk_engagements_to_msg(const pk_trust *t, Pactum__V1__TrustState *m, pk_trust_msg_storage *s);
void pk_engagements_from_msg(pk_trust *t, const Pactum__V1__TrustState *m);

/* The time an input happened, as the scorer counts it. */
int64_t pk_verdict_time(const pk_verdict_msg *v);
int64_t pk_governance_time(const Pactum__V1__GovernanceRecord *rec);

#endif
