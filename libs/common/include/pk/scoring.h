/*
 * core - what the scorer does with one input from PACTUM_VERDICTS (a verdict
 * on pactum.verdicts.<p>.<agent>.v or a governance record on ...<agent>.g),
 * shared by the scorer service and by `pactum replay`, so a replay is the
 * same code on the same inputs.
 */
#ifndef PK_SCORING_H
#define PK_SCORING_H

#include "pk/registry.h"
#include "pk/trust.h"

/* Called for each input of an agent in stream order (see history below). */
typedef pk_status (*pk_input_fn)(void *ctx, const char *subject, const uint8_t *data, size_t len,
                                 uint64_t seq);

/* Feed every input of agent with stream sequence below before_seq to each. */
typedef pk_status (*pk_history_fn)(void *ctx, const char *agent, uint64_t before_seq,
                                   pk_input_fn each, void *each_ctx);

#define PK_GOV_CACHE 64

typedef struct pk_core {
    pk_registry *reg;      /* registry copy: pacts and their governance sections */
    pk_history_fn history; /* where a ruling reads an agent's past inputs */
    void *history_ctx;
    struct {
        char pact[PK_ID_MAX + 1];
        uint32_t version;
        bool has; /* the pact has a governance section */
        pk_governance gov;
    } cache[PK_GOV_CACHE];  /* parsed governance sections by (pact, version) */
    unsigned next;          /* next cache slot to reuse */
    pk_governance defaults; /* when no pact of the agent has a section */
    bool rebuilding;        /* inside a ruling's rebuild: rulings only do bookkeeping */
} pk_core;

/* What one input did, for publishing. */
typedef struct pk_applied {
    bool changed;                        /* the state changed: publish a trust change */
    pk_trust_effect fx;                  /* tier movement, rule, cause, criteria */
    pk_verdict_msg *verdict;             /* the input, if a verdict (owned) */
    Pactum__V1__GovernanceRecord *gov;   /* the input, if a governance record (owned) */
    bool ruling_recomputed;              /* an overturning ruling rebuilt the state */
    uint32_t score_before, lower_before; /* ... and these were the values before */
    int tier_before;
    uint64_t violations_before[6];
    uint64_t removed[PK_OVERTURNED_MAX]; /* verdict sequences taken out */
    int n_removed;
} pk_applied;

void pk_core_init(pk_core *c, pk_registry *reg, pk_history_fn history, void *history_ctx);
void pk_core_free(pk_core *c);

/* The governance that applies to t (its governance pact, else defaults). */
const pk_governance *pk_core_governance(pk_core *c, MDB_txn *txn, const pk_trust *t);

/*
 * Apply one input to t (the state of the agent named in the subject). txn is
 * a transaction on the registry's store. PK_EDECODE for an input that does
 * not decode (the caller dead-letters it); out is released with
 * pk_applied_free.
 */
pk_status pk_core_apply(pk_core *c, MDB_txn *txn, pk_trust *t, const char *subject,
                        const uint8_t *data, size_t len, uint64_t seq, pk_applied *out);
void pk_applied_free(pk_applied *a);

/* The agent named in an input subject (pactum.verdicts.<p>.<agent>.<v|g>), into buf. */
bool pk_core_subject_agent(const char *subject, char *buf, size_t len, bool *is_governance);

#endif
