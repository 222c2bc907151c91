/*
 * engagement - a job an agent does for a buyer under a pact version, and the
 * settlement statements it leads to: release, partial, withhold or refund,
 * each amount with the verdicts and consequence terms that caused it.
 *
 * The scorer keeps an agent's engagements in its trust state and applies
 * acceptances, verdicts, completions, disputes, rulings and ticks to them in
 * the order of PACTUM_VERDICTS, in integers and input times only, so that a
 * replay issues the same statements byte for byte. docs/engagements.md
 * explains every rule.
 */
#ifndef PK_ENGAGEMENT_H
#define PK_ENGAGEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/pact.h"

#define PK_ENGAGEMENTS_MAX  8  /* engagements a state keeps (ingest admits 4 open) */
#define PK_ENG_FAILURES_MAX 16 /* failures kept per engagement (more are counted) */
#define PK_STATEMENT_LINES  (PK_ENG_FAILURES_MAX + 2)
#define PK_ENG_DURATION_MAX (366LL * 86400000) /* start to deadline, at most */

typedef struct pk_eng_failure {
    uint64_t vseq;                 /* the verdict */
    uint64_t seq;                  /* its position in PACTUM_VERDICTS */
    char clause_id[PK_ID_MAX + 1]; /* its clause */
    int severity;                  /* Pactum__V1__Severity */
} pk_eng_failure;

/* The newest statement of an engagement, without its lines (they are in the statement). */
typedef struct pk_statement_head {
    uint32_t number;                /* 1, 2, 3 ...; 0: none yet */
    int outcome;                    /* Pactum__V1__SettlementOutcome */
    char trigger[24];               /* completion, deadline, critical_violation, dispute, ruling */
    int64_t release, refund;        /* minor units */
    int64_t at_ms;                  /* input time */
    int64_t final_after_ms;         /* executable after this, unless superseded */
    char dispute_id[PK_ID_MAX + 1]; /* holding it, or whose ruling made it */
    uint32_t supersedes;
} pk_statement_head;

typedef struct pk_engagement {
    char id[PK_ID_MAX + 1];
    char buyer[PK_ID_MAX + 1];
    char pact_id[PK_ID_MAX + 1];
    uint32_t pact_version;
    uint8_t pact_hash[32];
    int64_t price;    /* minor units */
    char currency[4]; /* ISO 4217 */
    int64_t start_ms; /* as the buyer signed */
    int64_t deadline_ms;
    int64_t signed_ms;
    int64_t accepted_ms;   /* when ingest accepted it: both had signed */
    uint64_t accepted_seq; /* the acceptance's position in PACTUM_VERDICTS (a log leaf) */
    int64_t completed_ms;  /* the completion's time, or 0 */
    char end[24];          /* what ended the job: completion, deadline, critical_violation; "" */
    int64_t ended_ms;
    uint64_t end_vseq, end_seq; /* with critical_violation: the verdict */
    pk_eng_failure fail[PK_ENG_FAILURES_MAX];
    int n_fail;
    uint32_t dropped;         /* failures beyond the ones kept */
    char hold[PK_ID_MAX + 1]; /* the open dispute holding it */
    bool disputed;            /* a dispute was ever opened about it */
    bool counted;             /* its outcome is in the totals and the score */
    pk_statement_head last;   /* the newest statement */
} pk_engagement;

typedef struct pk_eng_totals {
    uint64_t completed; /* settled with something released */
    uint64_t disputed;
    uint64_t refunded;
} pk_eng_totals;

/* One amount of a statement. */
typedef struct pk_statement_line {
    char term[200];
    int64_t amount;
    bool to_buyer;
    uint64_t vseq, seq;
    char clause_id[PK_ID_MAX + 1];
    int severity;
} pk_statement_line;

/* A full statement, as issued (pk_engagement_settle). */
typedef struct pk_statement {
    pk_engagement eng; /* the engagement as the statement found it */
    pk_statement_head head;
    pk_statement_line lines[PK_STATEMENT_LINES];
    int n_lines;
} pk_statement;

/*
 * The amounts e is due now under c, for trigger at time at_ms (input time):
 * held by a dispute: withhold; ended by a critical violation (with
 * refund_on_critical): refund; ended by the deadline without completion
 * (deadline_refund): refund; completed, or the deadline with "settle": the
 * price less each failure's withholding (first matching rule, per failure,
 * at most the price); not ended: withhold. Fills out->head except number
 * and supersedes. Pure: the same inputs give the same statement.
 */
void pk_engagement_settle(const pk_engagement *e, const pk_consequences *c, const char *trigger,
                          int64_t at_ms, pk_statement *out);

/* The percentage of the price rule r withholds for failure f (0: it does not match). */
uint32_t pk_withhold_percent(const pk_withhold_rule *r, const pk_eng_failure *f);

/* The engagement with this id in an array, or NULL. */
pk_engagement *pk_engagement_find(pk_engagement *es, int n, const char *id);

/* The outcome's name: release, partial, withhold, refund. */
const char *pk_settlement_outcome_name(int outcome);

/* --- an agent's engagements, input by input (the scorer and replay) ------------------------ */

struct pk_trust;

/* The consequence terms of e's pact version, or NULL if the registry copy lacks it. */
typedef const pk_consequences *(*pk_cons_fn)(void *ctx, const pk_engagement *e);

/* The statements one input issued, and the evidence each settled engagement adds. */
typedef struct pk_eng_out {
    pk_statement st[PK_ENGAGEMENTS_MAX];
    uint64_t pass_micro[PK_ENGAGEMENTS_MAX]; /* weight released, for the score */
    uint64_t fail_micro[PK_ENGAGEMENTS_MAX]; /* weight refunded or withheld */
    bool counts[PK_ENGAGEMENTS_MAX];         /* the statement settles it for the first time */
    int n;
    bool no_terms; /* a statement was due but its pact version is not in the registry copy */
} pk_eng_out;

/* An accepted engagement joins the state; false if known already or no room. */
bool pk_eng_accept(struct pk_trust *t, const Pactum__V1__EngagementAcceptance *a, uint64_t seq);

/* A verdict of the engagement's pact on one of its events: a violation is a failure; a
 * critical one ends it with a refund when the terms say so. */
void pk_eng_verdict(struct pk_trust *t, const pk_verdict_msg *v, uint64_t seq, pk_cons_fn cons,
                    void *ctx, pk_eng_out *out);

/* The job is done: settle. False if it had ended already (or is unknown). */
bool pk_eng_complete(struct pk_trust *t, const Pactum__V1__EngagementCompletion *c, pk_cons_fn cons,
                     void *ctx, pk_eng_out *out);

/* A dispute about an engagement holds its settlement (a withhold statement if one was out). */
bool pk_eng_dispute(struct pk_trust *t, const Pactum__V1__Dispute *d, pk_cons_fn cons, void *ctx,
                    pk_eng_out *out);

/* A ruling lets go of what its dispute held and issues the statement due now. */
bool pk_eng_ruling(struct pk_trust *t, const Pactum__V1__Ruling *r, int64_t at_ms, pk_cons_fn cons,
                   void *ctx, pk_eng_out *out);

/* The clock at t->clock_ms: deadlines passed end their jobs; final statements leave. */
bool pk_eng_clock(struct pk_trust *t, pk_cons_fn cons, void *ctx, pk_eng_out *out);

/* The earliest deadline still ahead of an engagement that runs on, or 0. */
int64_t pk_eng_wake(const struct pk_trust *t);

/* After a rebuild: statement numbers go on from the state before it. */
void pk_eng_keep_numbers(struct pk_trust *fresh, const struct pk_trust *before);

/* Statement s as a message; it borrows from s and storage. */
typedef struct pk_settlement_storage {
    Pactum__V1__SettlementLine lines[PK_STATEMENT_LINES];
    Pactum__V1__SettlementLine *linep[PK_STATEMENT_LINES];
} pk_settlement_storage;

void pk_settlement_to_msg(const char *agent, const pk_statement *s, Pactum__V1__Settlement *m,
                          pk_settlement_storage *storage);

#endif
