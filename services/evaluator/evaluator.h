/*
 * evaluator - applies the clauses of the pacts in force to the normalized
 * event stream and publishes verdicts.
 *
 *   PACTUM_EVENTS (pactum.events.<p>.<agent>) -> clauses -> PACTUM_VERDICTS
 *                                                           (pactum.verdicts.<p>.<agent>)
 *
 * Each owned partition has a worker thread with its own connection and
 * durable consumer (evaluator-p<N>, see pk/workers.h). A batch is judged
 * under a read transaction; once the bus has its verdicts, the clause states
 * and the last sequence processed are written in one short write transaction,
 * then the events are acknowledged, so a redelivered event is never counted
 * twice and no partition waits on another's acknowledgements.
 */
#ifndef EVALUATOR_H
#define EVALUATOR_H

#include <pthread.h>

#include "pk/bus.h"
#include "pk/pact.h"
#include "pk/pactcache.h"
#include "pk/wset.h"
#include "pk/registry.h"
#include "pk/responder.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/workers.h"

typedef struct evaluator_cfg {
    pk_common_cfg common;    /* shared options */
    const char *owned;       /* partitions served: "auto" (by lease), or pinned "all", "0-3" */
    long long report_every;  /* evaluations of a clause between verdicts */
    int64_t report_after_ms; /* ... or at most this long after the first unreported one */
    long long batch;         /* events fetched per batch */
} evaluator_cfg;

/* Its own metrics (metrics.def). */
enum {
#define PK_METRIC(id, ...) id,
#include "metrics.def"
#undef PK_METRIC
    EM_COUNT
};

/*
 * Verdict sequence: PACTUM_EVENTS sequence << PK_VSEQ_SHIFT | ordinal. Verdicts
 * of an event use ordinals below PK_TICK_ORDINAL (at most 8 pacts x 64
 * clauses x 2 verdicts); verdicts found by the clock use the partition's last
 * applied sequence with ordinals from PK_TICK_ORDINAL up, so they sort after
 * every verdict already issued for the agent and before the next event's.
 */
#define PK_VSEQ_SHIFT   20
#define PK_TICK_ORDINAL 2048

typedef struct evaluator evaluator;

/* Per-partition data of a worker (pk_pworker.ctx). */
typedef struct eval_worker {
    evaluator *ev;              /* the service */
    struct state_entry *states; /* per-batch clause state cache, owned */
    pk_wset *ws;                /* the batch's writes, owned */
    int64_t next_tick_ms;       /* when the clock work is due next (monotonic) */
} eval_worker;

struct evaluator {
    const evaluator_cfg *cfg; /* borrowed configuration */
    pk_service svc;           /* health, metrics */
    pk_bus *bus;              /* main connection (registry, ops) */
    pk_store *store;          /* LMDB: states, sequences, registry copy */
    pk_registry *reg;         /* registry copy */
    pk_pact_cache *pacts;     /* compiled pacts, shared by the workers */
    uint32_t partitions;      /* partitions of the streams */
    MDB_dbi states;           /* agent \0 pact \0 clause -> pk_clause_state */
    MDB_dbi meta;             /* "events_p<N>" -> last PACTUM_EVENTS sequence applied;
                                 "ticks_p<N>" -> be64 applied || be32 tick ordinal */
    MDB_dbi deadlines;        /* be32 partition || be64 ms || state key -> "" (freshness) */
    pk_pworkers workers;      /* one per owned partition, each with an eval_worker */
    pk_responders probes;     /* pactum.evaluator.probe.* (answered for the partitions served) */
    pk_metric m[EM_COUNT];    /* counters */
};

void evaluator_metrics_init(evaluator *e);

/* Set up a worker's eval_worker (pk_pworkers.ctx_init; w->group->owner: the evaluator). */
pk_status evaluator_worker_init(pk_pworker *w) PK_MUST_CHECK;

/* Release it (pk_pworkers.ctx_free). */
void evaluator_worker_free(pk_pworker *w);

/* Judge one fetched batch, publish verdicts, then write and ack (a pk_pbatch_fn). */
pk_status evaluator_process(pk_pworker *w, natsMsgList *list) PK_MUST_CHECK;

/* Between batches, once caught up and about every second: publish stale verdicts for
 * freshness clauses whose deadline passed (a pk_pidle_fn). */
pk_status evaluator_idle(pk_pworker *w, bool caught_up) PK_MUST_CHECK;

/* The same clock work at now_ms, whatever the time since the last (tests, benchmarks). */
pk_status evaluator_tick(pk_pworker *w, int64_t now_ms) PK_MUST_CHECK;

/*
 * Answer pactum.evaluator.probe.<p>: what the imagined event of an authorize
 * request would do to the scope and forbidden clauses in force for its agent,
 * judged on the clause states as committed (a pk_handler_fn; ctx: evaluator).
 */
pk_status evaluator_probe(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen);

/* Start answering probes for the owned partitions. */
pk_status evaluator_probes_start(evaluator *e) PK_MUST_CHECK;

/* Registry hook: start the freshness clock of each new pact's clauses. */
pk_status evaluator_on_registry(void *ctx, MDB_txn *txn, const Pactum__V1__RegistryRecord *rec,
                                uint64_t seq) PK_MUST_CHECK;

#endif
