/*
 * clause - judge one event against one clause, keeping the clause's state,
 * and decide when a verdict is due. Pure functions over plain data, so the
 * state can live in LMDB and the logic can be tested without a bus.
 *
 * Memory per (agent, pact, clause) is bounded: one window for the clause,
 * two per burn-rate trigger, and for percentiles a sketch whose size depends
 * on how many distinct 1 % bins the samples fall in, never on their number.
 */
#ifndef PK_CLAUSE_H
#define PK_CLAUSE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/pact.h"
#include "pk/sketch.h"
#include "pk/window.h"

#define PK_CLAUSE_STATE_MAGIC    0x504b4333u /* "PKC3": windows packed (pk_window_pack) */
#define PK_CLAUSE_STATE_MAGIC_V2 0x504b4332u /* "PKC2": windows stored as they are in memory */
#define PK_CLAUSE_WINDOWS        (1 + 2 * PK_BURN_MAX)

/* The fixed part of a clause's state (stored first, byte for byte). */
typedef struct pk_clause_head {
    uint32_t magic;            /* PK_CLAUSE_STATE_MAGIC */
    uint32_t since_verdict;    /* evaluations since the last verdict */
    uint64_t fingerprint;      /* of the clause definition the windows were built for */
    uint32_t pass[PK_SOURCES]; /* passes since the last verdict, by source */
    uint32_t fail[PK_SOURCES]; /* failures since the last verdict, by source */
    int32_t last_outcome;      /* outcome of the last verdict (0: none yet) */
    uint32_t burning;          /* bit k set: burn-rate trigger k is firing */
    int64_t last_ts_ms;        /* ts of the newest event evaluated */
    uint64_t last_seq;         /* PACTUM_EVENTS sequence of the newest event evaluated */
    int64_t since_ms;          /* when the clause came into force (freshness clock start) */
    int64_t last_seen_ms;      /* freshness: bus arrival time of the newest evidence; 0 none */
    uint32_t n_windows;        /* windows in use */
    uint32_t has_sketch;       /* a percentile sketch follows the windows */
} pk_clause_head;

typedef struct pk_clause_state {
    pk_clause_head h; /* fixed part */
    pk_window
        win[PK_CLAUSE_WINDOWS]; /* [0] the clause, [1+2k] long and [2+2k] short of trigger k */
    pk_sketch sketch;           /* percentiles of win[0]'s samples */
} pk_clause_state;

/* A burn-rate trigger that started or stopped firing. */
typedef struct pk_burn_change {
    int trigger;       /* index in the clause's triggers */
    bool firing;       /* now firing */
    double burn_long;  /* burn rate over the long window */
    double burn_short; /* ... over the short window */
} pk_burn_change;

/* The result of judging one event. */
typedef struct pk_judgement {
    bool relevant;               /* the clause looked at this event */
    Pactum__V1__Outcome outcome; /* the clause's outcome after it */
    double observed;             /* aggregate, count in window, amount, or gap */
    double threshold;            /* bound it was compared with */
    uint64_t samples;            /* samples in the window */
    bool violation;              /* this event broke the clause (forbidden, scope) */
    bool verdict_due;            /* a verdict should be published now */
    bool needs_approval;         /* scope: above the amount that needs a person's approval */
    bool unapproved;             /* ... and the violation is only that it had none */
    char why[192];               /* scope: what was outside it */
    int n_burn;                  /* burn-rate triggers that changed */
    pk_burn_change burn[PK_BURN_MAX];
} pk_judgement;

/* Fingerprint of what the windows depend on; a change starts them afresh. */
uint64_t pk_clause_fingerprint(const pk_clause *c);

/* A fresh state for clause c, in force since since_ms. Release with
 * pk_clause_state_release. */
void pk_clause_state_init(pk_clause_state *s, const pk_clause *c, int64_t since_ms);
void pk_clause_state_release(pk_clause_state *s);

/* Stored form: head, the windows in use, then the sketch if any. */
size_t pk_clause_state_size(const pk_clause_state *s);
void pk_clause_state_write(const pk_clause_state *s, uint8_t *buf);
/* PK_EDECODE if buf is not a state of this version; s is then initialised empty. */
pk_status pk_clause_state_read(pk_clause_state *s, const uint8_t *buf, size_t len) PK_MUST_CHECK;

/*
 * Judge ev (at PACTUM_EVENTS sequence seq) against c, updating s. A verdict is
 * due when the outcome changes, on every violation, and after report_every
 * evaluations. After publishing a verdict call pk_clause_state_reported.
 */
void pk_clause_judge(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, uint64_t seq,
                     uint32_t report_every, pk_judgement *out);

/*
 * Would ev, now, break clause c whose state is s? The same judgement as
 * pk_clause_judge on a copy of s (s is not changed): what authorize asks of
 * the scope and forbidden clauses in force. Other kinds are not probed (out
 * says not relevant).
 */
void pk_clause_probe(const pk_clause *c, const pk_clause_state *s, const pk_event_msg *ev,
                     pk_judgement *out);

/* Clear the tallies after a verdict carrying them was published. */
void pk_clause_state_reported(pk_clause_state *s, Pactum__V1__Outcome outcome);

/* Freshness: when the clause goes stale if no evidence arrives (ms). */
int64_t pk_freshness_deadline(const pk_clause *c, const pk_clause_state *s);

#endif
