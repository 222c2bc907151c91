/*
 * clause - judge one event against one clause, keeping the clause's state,
 * and decide when a verdict is due. Pure functions over plain data, so the
 * state can live in LMDB and the logic can be tested without a bus.
 */
#ifndef PK_CLAUSE_H
#define PK_CLAUSE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/pact.h"
#include "window.h"

#define PK_CLAUSE_STATE_MAGIC 0x504b4331u /* "PKC1" */

/* Per (agent, pact, clause) state; stored in LMDB byte for byte. */
typedef struct pk_clause_state {
    uint32_t magic;            /* PK_CLAUSE_STATE_MAGIC */
    uint32_t since_verdict;    /* evaluations since the last verdict */
    uint64_t fingerprint;      /* of the clause definition the window was built for */
    uint32_t pass[5];          /* passes since the last verdict, by source */
    uint32_t fail[5];          /* failures since the last verdict, by source */
    int32_t last_outcome;      /* outcome of the last verdict (0: none yet) */
    int32_t reserved;          /* keeps the layout 8-byte aligned */
    int64_t last_ts_ms;        /* ts of the newest event evaluated */
    uint64_t last_seq;         /* PACTUM_EVENTS sequence of the newest event evaluated */
    pk_window win;             /* the samples */
} pk_clause_state;

/* The result of judging one event. */
typedef struct pk_judgement {
    bool relevant;             /* the clause looked at this event */
    Pactum__V1__Outcome outcome; /* the clause's outcome after it */
    double observed;           /* aggregate (objective) or count in window (forbidden) */
    double threshold;          /* bound it was compared with */
    uint64_t samples;          /* samples in the window */
    bool violation;            /* a forbidden event that exceeded the allowance */
    bool verdict_due;          /* a verdict should be published now */
} pk_judgement;

/* Fingerprint of what the window depends on; a change resets the state. */
uint64_t pk_clause_fingerprint(const pk_clause *c);

/* A fresh state for clause c. */
void pk_clause_state_init(pk_clause_state *s, const pk_clause *c);

/*
 * Judge ev (at PACTUM_EVENTS sequence seq) against c, updating s. A verdict is
 * due when the outcome changes, on every violation, and after report_every
 * evaluations. After publishing a verdict call pk_clause_state_reported.
 */
void pk_clause_judge(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, uint64_t seq,
                     uint32_t report_every, pk_judgement *out);

/* Clear the tallies after a verdict carrying them was published. */
void pk_clause_state_reported(pk_clause_state *s, Pactum__V1__Outcome outcome);

#endif
