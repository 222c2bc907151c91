/*
 * pk/scoring.h - what the scorer does with each input of PACTUM_VERDICTS (a
 * verdict on pactum.verdicts.<p>.<agent>.v, a governance record on
 * ...<agent>.g, the scorer's tick on ...<agent>.t): read the agent's state, apply the input under
 * the governance in force, number the change, and keep the state for writing.
 *
 * The scorer service and `pactum replay` both run every input through
 * pk_scoring_step and write the states with pk_scoring_store, so a replay is
 * the same code on the same inputs and reaches the same bytes.
 *
 * A pk_scoring is used by one thread at a time. The states of a batch are
 * owned by it from the first pk_scoring_step that reads them until
 * pk_scoring_store or pk_scoring_reset. A decoded state is large (pk_trust,
 * about 81 KiB), so a bounded pk_scoring keeps at most max_states of them and
 * writes the one used longest ago to the batch's write set to make room.
 */
#ifndef PK_SCORING_H
#define PK_SCORING_H

#include "pk/bus.h"
#include "pk/pactcache.h"
#include "pk/registry.h"
#include "pk/trust.h"
#include "pk/wset.h"

/* Called for each input of an agent in stream order (see pk_history_fn). */
typedef pk_status (*pk_input_fn)(void *ctx, const char *subject, const uint8_t *data, size_t len,
                                 uint64_t seq);

/* Feed every input of agent with stream sequence below before_seq to each. */
typedef pk_status (*pk_history_fn)(void *ctx, const char *agent, uint64_t before_seq,
                                   pk_input_fn each, void *each_ctx);

typedef struct pk_scoring {
    pk_registry *reg;             /* borrowed: registry copy (pacts, governance sections) */
    pk_pact_cache *pacts;         /* borrowed: compiled pacts */
    MDB_dbi agents;               /* agent -> TrustState, in the registry's store */
    pk_history_fn history;        /* where a ruling reads an agent's past inputs */
    void *history_ctx;            /* its context */
    pk_governance defaults;       /* when no pact of the agent has a governance section */
    const pk_compiled *gov_held;  /* the pact of the governance last returned (held) */
    const pk_compiled *cons_held; /* the pact of the consequences last returned (held) */
    bool rebuilding;              /* inside a ruling's rebuild: rulings only do bookkeeping */
    pk_trust **batch;             /* states read or changed since the last store or reset,
                                   * the one used longest ago first */
    size_t n_batch, cap_batch;    /* their count and room */
    pk_wset *spill;               /* bounded: where states that make room go (borrowed) */
    size_t max_states;            /* ... and how many are kept decoded at most (0: all) */
    unsigned long long spilled;   /* states written to make room, in all */
    /* optional: called by pk_scoring_store for each state stored, with its wake time */
    pk_status (*on_store)(void *ctx, MDB_txn *txn, pk_wset *ws, const pk_trust *t, int64_t wake);
    void *on_store_ctx;
} pk_scoring;

/* What one input did, for publishing. */
typedef struct pk_applied {
    pk_trust *t;                         /* the agent's state after it (owned by the pk_scoring) */
    bool changed;                        /* the state changed: t->change_seq numbers the change */
    pk_trust_effect fx;                  /* tier movement, rule, cause, criteria */
    pk_verdict_msg *verdict;             /* the input, if a verdict (owned) */
    Pactum__V1__GovernanceRecord *gov;   /* the input, if a governance record (owned) */
    bool ruling_recomputed;              /* an overturning ruling rebuilt the state */
    bool ticked;                         /* the input was the scorer's tick */
    uint32_t score_before, lower_before; /* ... and these were the values before */
    int tier_before;
    uint64_t violations_before[PK_SEVERITIES];
    uint64_t removed[PK_OVERTURNED_MAX]; /* verdict sequences taken out */
    int n_removed;
    pk_eng_out eng; /* settlement statements it issued */
} pk_applied;

/* Set up s over the agents database of reg's store; pacts and history are borrowed. */
/* An empty pk_applied (without clearing its statements' storage). */
void pk_applied_clear(pk_applied *a);

void pk_scoring_init(pk_scoring *s, pk_registry *reg, pk_pact_cache *pacts, MDB_dbi agents,
                     pk_history_fn history, void *history_ctx);

/* Release what s holds (the batch's states too). */
void pk_scoring_free(pk_scoring *s);

/*
 * Apply the input (subject, data) at stream sequence seq, stored by the bus at
 * ts_ms, to its agent's state: the batch's copy, else the one in txn (a read
 * transaction on the registry's store), else a new agent's. txn also reads
 * pacts. On success *out says what changed (pk_applied_free it). Errors:
 * PK_EINVAL, the subject is not an input subject; PK_EDECODE, the input does
 * not decode (the state is unchanged; the scorer dead-letters it); others
 * (a pact not in the registry copy yet, a history read) mean try the batch
 * again.
 */
pk_status pk_scoring_step(pk_scoring *s, MDB_txn *txn, const char *subject, const uint8_t *data,
                          size_t len, uint64_t seq, int64_t ts_ms, pk_applied *out) PK_MUST_CHECK;

void pk_applied_free(pk_applied *a);

/*
 * Keep at most max_states decoded (0: no bound): when another is needed, the one used longest
 * ago is put into ws as pk_scoring_store would put it, and read back from ws if its agent
 * comes again. ws must be the set pk_scoring_store writes to, cleared when the batch is
 * retried, so that a state is read from ws before the transaction's snapshot.
 */
void pk_scoring_bound(pk_scoring *s, pk_wset *ws, size_t max_states);

/* The bound the scorer keeps by default (its --states) and `pactum replay` keeps. */
#define PK_SCORING_STATES 64

/* Put every state of the batch into ws (txn reads their governance), then forget them. */
pk_status pk_scoring_store(pk_scoring *s, MDB_txn *txn, pk_wset *ws) PK_MUST_CHECK;

/* Forget the batch's states without writing them (a batch to be retried). */
void pk_scoring_reset(pk_scoring *s);

/* The governance that applies to t (its governance pact's, else the defaults); valid
 * until the next call on s. */
const pk_governance *pk_scoring_governance(pk_scoring *s, MDB_txn *txn, const pk_trust *t);

/*
 * The agent named in an input subject (pactum.verdicts.<p>.<agent>.<v|g|t>),
 * into buf; *kind: 'v' a verdict, 'g' a governance record, 't' a tick.
 */
bool pk_scoring_subject_agent(const char *subject, char *buf, size_t len, char *kind);

/*
 * When time alone may next change t under g (a clean window or a dwell ends,
 * forgetting lowers the bound), as an input time; 0: never. The scorer sends
 * the agent a Tick then.
 */
int64_t pk_scoring_wake(const pk_trust *t, const pk_governance *g);

/* Read agent's inputs below before_seq from PACTUM_VERDICTS on bus, in order (bounded: 60 s). */
pk_status pk_scoring_read_history(pk_bus *bus, uint32_t partitions, const char *agent,
                                  uint64_t before_seq, pk_input_fn each,
                                  void *each_ctx) PK_MUST_CHECK;

/* The digest of each partition's agents, as `pactum replay --compare` compares them. */
typedef struct pk_digests {
    uint8_t part[PK_PARTITIONS_MAX][32]; /* SHA-256 over the partition's agents, in key order */
    uint64_t agents[PK_PARTITIONS_MAX];  /* how many agents each holds */
} pk_digests;

/*
 * The digest of every partition below partitions: SHA-256 over each stored
 * agent state of that partition, in key order (a partition without agents has
 * the digest of nothing).
 */
pk_status pk_scoring_digests(pk_store *store, MDB_dbi agents, uint32_t partitions,
                             pk_digests *out) PK_MUST_CHECK;

/*
 * One digest for the partitions in mask: SHA-256 over their digests in
 * partition order; *n_agents receives their agents. The same partitions give
 * the same digest on every instance and in a replay.
 */
void pk_scoring_digest_of(const pk_digests *d, uint64_t mask, uint8_t out[32], uint64_t *n_agents);

#endif
