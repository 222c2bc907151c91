/*
 * pk/pact.h - the pact language: parse a pact document (JSON), report every
 * problem with the path of the field at fault, and evaluate predicates over
 * events. docs/pact-language.md is the reference for users.
 *
 * Ownership: pk_pact_parse returns a pact owned by the caller
 * (pk_pact_free); every string and predicate inside belongs to the pact.
 */
#ifndef PK_PACT_H
#define PK_PACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/status.h"

#define PK_PACT_MAX_BYTES        (256 * 1024) /* largest pact document accepted */
#define PK_PACT_MAX_CLAUSES      64
#define PK_PACTS_PER_AGENT_MAX   8  /* pact ids that may bind one agent */
#define PK_CLAUSES_PER_AGENT_MAX 64 /* clauses across an agent's pacts (each is scored) */

/* Problems found in a document, each "path: what was expected, what was found". */
typedef struct pk_lint {
    char **msgs; /* n messages, owned */
    size_t n;    /* count */
    size_t cap;  /* allocated slots */
} pk_lint;

void pk_lint_add(pk_lint *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pk_lint_free(pk_lint *l);

typedef enum pk_clause_kind {
    PK_CLAUSE_OBJECTIVE = 1, /* aggregate of a metric over a window vs a threshold */
    PK_CLAUSE_FORBIDDEN,     /* a predicate that must (almost) never hold */
    PK_CLAUSE_FRESHNESS,     /* evidence of a kind must keep arriving */
    PK_CLAUSE_SCOPE,         /* allowed actions, tools, resources and spend */
} pk_clause_kind;

typedef enum pk_aggregate {
    PK_AGG_COUNT = 1,
    PK_AGG_SUM,
    PK_AGG_MEAN,
    PK_AGG_MIN,
    PK_AGG_MAX,
    PK_AGG_RATE,
    PK_AGG_PERCENTILE, /* any percentile p0 to p100 (the clause's quantile) */
    PK_AGG_RATIO,      /* sum of the metric over sum of another (`of`), in the window */
} pk_aggregate;

#define PK_BURN_MAX  4  /* burn-rate triggers per objective */
#define PK_SCOPE_MAX 64 /* patterns per scope list */

/* Multi-window burn-rate trigger (SRE Workbook): fires when the error budget
 * burns at least factor times too fast over both windows. */
typedef struct pk_burn {
    int64_t long_ms;               /* long window */
    int64_t short_ms;              /* short window */
    double factor;                 /* burn rate that fires it */
    Pactum__V1__Severity severity; /* severity of the violation it reports */
    int consequence;               /* pk_consequence */
    char name[48];                 /* "1h/5m x14.4" */
} pk_burn;

/* Allowed names: exact, or a prefix ending in '*' ("tickets.*"), or "*". */
typedef struct pk_patterns {
    char **p; /* patterns, owned */
    size_t n; /* count; 0 = list absent (anything goes) */
} pk_patterns;

typedef enum pk_op { PK_OP_LT = 1, PK_OP_LE, PK_OP_GT, PK_OP_GE, PK_OP_EQ, PK_OP_NE } pk_op;

typedef enum pk_consequence {
    PK_CONSEQ_NOTIFY = 1, /* record only */
    PK_CONSEQ_DEMOTE,     /* lower the tier one step */
    PK_CONSEQ_RESTRICT,   /* drop to restricted */
    PK_CONSEQ_CONTAIN,    /* contain at once */
    PK_CONSEQ_SUSPEND,    /* suspend at once */
} pk_consequence;

/* Event fields a predicate or objective can read. */
typedef enum pk_field {
    PK_FIELD_KIND = 1,
    PK_FIELD_ACTION,
    PK_FIELD_TOOL,
    PK_FIELD_RESOURCE,
    PK_FIELD_CURRENCY,
    PK_FIELD_AMOUNT,
    PK_FIELD_SOURCE,
    PK_FIELD_REPORTER,
    PK_FIELD_METRIC,
    PK_FIELD_LABEL,
} pk_field;

typedef enum pk_pred_type {
    PK_PRED_ALL = 1, /* every child holds */
    PK_PRED_ANY,     /* at least one child holds */
    PK_PRED_NOT,     /* the one child does not hold */
    PK_PRED_CMP,     /* a comparison on one field */
} pk_pred_type;

typedef enum pk_cmp {
    PK_CMP_EQ = 1,
    PK_CMP_NE,
    PK_CMP_LT,
    PK_CMP_LE,
    PK_CMP_GT,
    PK_CMP_GE,
    PK_CMP_IN,     /* value is one of a set */
    PK_CMP_EXISTS, /* field present (or absent, with exists=false) */
    PK_CMP_PREFIX, /* string field starts with text */
} pk_cmp;

typedef struct pk_pred {
    pk_pred_type type;     /* node type */
    struct pk_pred **kids; /* children of ALL / ANY / NOT */
    size_t n_kids;         /* number of children */
    pk_field field;        /* CMP: which field */
    char *name;            /* CMP on METRIC or LABEL: its name */
    pk_cmp cmp;            /* CMP: comparison */
    bool numeric;          /* CMP: compare as numbers */
    double num;            /* CMP: number operand */
    char *str;             /* CMP: string operand */
    bool exists;           /* CMP EXISTS: wanted presence */
    double *nums;          /* CMP IN: numeric set */
    char **strs;           /* CMP IN: string set */
    size_t n_set;          /* CMP IN: set size */
} pk_pred;

typedef struct pk_clause {
    char *id;            /* unique within the pact */
    char *promise;       /* the prose promise this clause formalizes */
    pk_clause_kind kind; /* what sort of clause */
    Pactum__V1__Severity severity;
    pk_consequence consequence; /* what a failure leads to */
    double weight[PK_SOURCES];  /* weight of each evidence source, by Pactum__V1__Source */
    pk_pred *when;              /* events the clause looks at; NULL = all */
    /* objective */
    char *metric;           /* metric name read from events */
    pk_aggregate aggregate; /* how the window is summarised */
    double quantile;        /* PK_AGG_PERCENTILE: 0 to 1 (p95: 0.95) */
    char agg_name[16];      /* the aggregate as written ("p99.9", "ratio" ...) */
    char *of;               /* PK_AGG_RATIO: the denominator's metric */
    pk_op op;               /* comparison of the aggregate with threshold */
    double threshold;       /* the promised bound */
    uint32_t min_samples;   /* fewer samples: insufficient evidence */
    /* objective and forbidden */
    int64_t window_ms;      /* time window; 0 when counted in events */
    uint32_t window_events; /* last-N-events window; 0 when timed */
    /* objective: burn-rate triggers on the per-event target */
    double target;             /* fraction of events that must be good; 0 = no triggers */
    pk_burn burn[PK_BURN_MAX]; /* triggers */
    size_t n_burn;
    /* forbidden */
    pk_pred *match;     /* the event that must not happen */
    uint32_t max_count; /* allowed occurrences per window (0 = never) */
    /* the events it judges when it has no `when`: the comparisons of identity fields
     * (kind, action, tool, resource, currency, source, reporter) the match requires,
     * borrowed from match; none: every event */
    const pk_pred *domain[8];
    size_t n_domain;
    /* freshness */
    pk_pred *evidence;  /* what counts as evidence; NULL = any event */
    int64_t max_gap_ms; /* longest allowed time without it */
    /* scope */
    pk_patterns actions, tools, resources; /* allowed names */
    char currency[8];                      /* spend currency; "" = no spend limits */
    double per_action;                     /* largest amount of one event; 0 = none */
    double per_window;                     /* largest total over window_ms; 0 = none */
    double approval_above; /* authorize: a larger amount needs a person's approval; 0 = none */
    /* a violation only peers reported moves the agent at most one tier down, unless this */
    bool peers_can_contain;
    /* objective and forbidden: an event of an engagement is judged in windows of that
     * engagement alone ("per": "engagement"), others in the agent's */
    bool per_engagement;
} pk_clause;

/* What a tier allows, as the pact's governance section writes it. */
typedef struct pk_tier_scope {
    bool set;                /* given in the pact (else the default applies) */
    bool any_action;         /* "actions" absent: whatever the scope clauses allow */
    pk_patterns actions;     /* allowed actions (present and empty: none) */
    pk_patterns approval;    /* actions that need a person's approval on this tier */
    bool approve_all;        /* every action needs approval */
    bool spend_approval;     /* any action moving money needs approval */
    double spend_per_action; /* largest amount of one action on this tier; 0 = no extra limit */
} pk_tier_scope;

/* Criteria for leaving a held tier (one entered by a consequence). */
typedef struct pk_reentry {
    int from;               /* Pactum__V1__Tier left */
    int to;                 /* best tier allowed at once (the score may give worse) */
    int64_t clean_ms;       /* time without a violation */
    uint32_t min_samples;   /* evaluations since entering the tier */
    bool no_open_dispute;   /* no dispute may be open */
    bool operator_ack;      /* an operator acknowledged the agent since it entered */
    uint32_t min_lower_ppm; /* the score's lower bound, at least */
    int64_t dwell_ms;       /* after re-entry, no promotion above `to` for this long */
} pk_reentry;

typedef struct pk_governance {
    bool present;                  /* the pact has a governance section */
    int64_t half_life_ms;          /* evidence loses half its weight in this long */
    uint32_t source_cap;           /* weighted evaluations one source can hold per clause */
    uint32_t min_evidence;         /* evaluations before the score decides the tier */
    uint32_t trusted_ppm;          /* lower bound for trusted */
    uint32_t standard_ppm;         /* ... for standard */
    uint32_t watch_ppm;            /* ... for watch (below: restricted) */
    uint32_t margin_ppm;           /* a promotion needs the bound this far above the threshold */
    int64_t dwell_ms;              /* and this long in the current tier (0: no wait) */
    int64_t after_demotion_ms;     /* and, after a demotion by score, this long before any */
    pk_tier_scope tiers[PK_TIERS]; /* by tier */
    pk_reentry reentry[PK_TIERS];  /* by tier left; from == 0: no criteria (no automatic exit) */
} pk_governance;

#define PK_PRICE_MAX 1000000000000000LL /* largest price: 10^15 minor units */

/* What a job done under the pact pays (its `consequences` section). */
#define PK_WITHHOLD_MAX 16
typedef struct pk_withhold_rule {
    char clause[PK_ID_MAX + 1]; /* clause id, or "*": any clause of the pact */
    int min_severity;           /* failures at or above it (Pactum__V1__Severity) */
    uint32_t percent;           /* of the price, per failure */
    char term[160];             /* the rule in words, for the statements */
} pk_withhold_rule;

typedef struct pk_consequences {
    bool present;                               /* the pact has the section */
    pk_withhold_rule withhold[PK_WITHHOLD_MAX]; /* first match counts, per failure */
    size_t n_withhold;
    bool refund_on_critical;   /* a critical violation refunds in full at once */
    bool deadline_refund;      /* the deadline without completion: refund (else settle as done) */
    int64_t dispute_window_ms; /* a statement is final this long after it, unless disputed */
    /* by tier: the largest value of the jobs it may run at once, in hundredths of the jobs'
     * currency; -1: no limit (contained and suspended take none) */
    int64_t job_limit[PK_TIERS];
} pk_consequences;

/* The action authorize decides with the job limits: may the agent take a job of this value? */
#define PK_JOB_ACTION "engagement.accept"

#define PK_COUNTERPARTIES_MAX 32

typedef struct pk_pact {
    char *id;           /* pact id */
    char *agent;        /* agent the pact binds */
    char *title;        /* one-line title */
    pk_clause *clauses; /* n_clauses clauses */
    size_t n_clauses;
    pk_governance gov; /* governance section, or the defaults */
    /* agents that may report about the agent and dispute its verdicts (with its owner) */
    char *counterparties[PK_COUNTERPARTIES_MAX];
    size_t n_counterparties;
    int64_t review_by_ms; /* after this (Unix ms) the pact is due for review; 0: never */
    int review_cap;       /* the best tier (Pactum__V1__Tier) while it is overdue */
    pk_consequences cons; /* what an engagement under it pays */
} pk_pact;

/* The defaults that apply when a pact has no governance section (docs/scoring.md). */
void pk_governance_defaults(pk_governance *g);
void pk_governance_free(pk_governance *g);

/*
 * Parse and check a pact document. On success *out is a new pact; on failure
 * PK_EINVAL (or PK_EDECODE for text that is not JSON) and every problem is in
 * lint (caller-initialised with {0}, caller frees).
 */
pk_status pk_pact_parse(const char *json, size_t len, pk_pact **out, pk_lint *lint) PK_MUST_CHECK;

void pk_pact_free(pk_pact *p);

const pk_clause *pk_pact_clause(const pk_pact *p, const char *id);

/* Free a predicate tree; NULL is a no-op. */
void pk_pred_free(pk_pred *p);

/* Evaluate a predicate against an event (normalized by ingest). */
bool pk_pred_eval(const pk_pred *p, const pk_event_msg *ev);

/* Compare observed with threshold under op. */
bool pk_op_holds(pk_op op, double observed, double threshold);

/* Does name match one of the patterns (exact, "prefix*", or "*")? */
bool pk_patterns_match(const pk_patterns *ps, const char *name);

/* The quantile of a clause's percentile aggregate (0.5 for p50), or 0 for others. */
double pk_clause_quantile(const pk_clause *c);

/* Does a forbidden clause judge ev (its `when`, else its domain)? Other kinds: `when`. */
bool pk_clause_applies(const pk_clause *c, const pk_event_msg *ev);

/* Is id one of the pact's counterparties? */
bool pk_pact_counterparty(const pk_pact *p, const char *id);

const char *pk_clause_kind_name(pk_clause_kind k);
const char *pk_aggregate_name(pk_aggregate a); /* of the clause: c->agg_name */
const char *pk_op_name(pk_op op);
const char *pk_consequence_name(pk_consequence c);

#endif
