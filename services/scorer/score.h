/*
 * score - the reputation math and the tier rules, in integers so that a
 * replay of the same verdicts gives the same state on any machine.
 * docs/scoring.md explains every step.
 *
 * Units: evidence weights are in millionths (1.0 = 1,000,000 "micro"),
 * scores and bounds in parts per million (ppm).
 */
#ifndef PK_SCORE_H
#define PK_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"

#define PK_SCORE_MAX_CLAUSES 64
#define PK_PPM 1000000u
#define PK_PRIOR_MICRO 1000000u      /* Beta(1, 1) prior: one pass and one failure */
#define PK_Z_MILLI 1645u             /* one-sided 95% normal quantile, x1000 */
#define PK_MIN_EVIDENCE 20u          /* evaluations before the score decides the tier */

typedef struct pk_clause_score {
    char pact_id[PK_ID_MAX + 1];     /* pact */
    char clause_id[PK_ID_MAX + 1];   /* clause */
    int severity;                    /* Pactum__V1__Severity */
    uint64_t alpha;                  /* prior + weighted passes, micro */
    uint64_t beta;                   /* prior + weighted failures, micro */
    uint64_t passes;                 /* evaluations that passed */
    uint64_t fails;                  /* evaluations that failed */
    int last_outcome;                /* Pactum__V1__Outcome of the last verdict */
    int64_t last_ts_ms;              /* ts of the newest evidence */
} pk_clause_score;

typedef struct pk_trust {
    char agent_id[PK_ID_MAX + 1];    /* the agent */
    uint32_t score;                  /* composite score, ppm */
    uint32_t lower;                  /* lower confidence bound of the score, ppm */
    uint64_t evidence;               /* evaluations counted */
    int64_t newest_ms;               /* newest evidence */
    int tier;                        /* Pactum__V1__Tier */
    int64_t tier_since_ms;           /* when the tier was entered */
    uint64_t change_seq;             /* trust changes published */
    uint64_t last_vseq;              /* last verdict applied */
    uint64_t violations[6];          /* by Pactum__V1__Severity */
    size_t n;                        /* clauses */
    pk_clause_score c[PK_SCORE_MAX_CLAUSES];
} pk_trust;

/* What one verdict did. */
typedef struct pk_trust_effect {
    bool applied;            /* false: a duplicate (vseq already applied) */
    int from_tier, to_tier;  /* tier before and after */
    int64_t score_delta;     /* change of the composite score, ppm */
    char rule[48];           /* which tier rule fired */
    char cause[320];         /* sentence naming what moved the tier or score */
} pk_trust_effect;

/* A new agent: no evidence, tier watch. */
void pk_trust_init(pk_trust *t, const char *agent_id, int64_t now_ms);

/* Integer square root (floor). */
uint64_t pk_isqrt(uint64_t x);

/* Posterior mean and lower bound (ppm) of Beta(alpha, beta), both in micro. */
void pk_beta_bounds(uint64_t alpha, uint64_t beta, uint32_t *mean, uint32_t *lower);

/* Recompute the composite score and bound from the clauses. */
void pk_trust_recompute(pk_trust *t);

/* Tier the score alone would give. */
int pk_tier_from_score(const pk_trust *t);

/*
 * Apply one verdict at time now_ms. Verdicts with vseq at or below
 * t->last_vseq are duplicates and change nothing (effect->applied false).
 */
void pk_trust_apply(pk_trust *t, const pk_verdict_msg *v, int64_t now_ms, pk_trust_effect *out);

/* Convert to and from the wire form. pk_trust_to_msg fills caller-provided
 * storage; the message borrows from t and storage. */
typedef struct pk_trust_msg_storage {
    Pactum__V1__ClauseScore cs[PK_SCORE_MAX_CLAUSES];
    Pactum__V1__ClauseScore *csp[PK_SCORE_MAX_CLAUSES];
    Pactum__V1__SeverityCount sc[6];
    Pactum__V1__SeverityCount *scp[6];
} pk_trust_msg_storage;

void pk_trust_to_msg(const pk_trust *t, Pactum__V1__TrustState *m, pk_trust_msg_storage *s);
void pk_trust_from_msg(pk_trust *t, const Pactum__V1__TrustState *m);

#endif
