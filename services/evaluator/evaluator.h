/*
 * evaluator - applies the clauses of the pacts in force to the normalized
 * event stream and publishes verdicts.
 *
 *   PACTUM_EVENTS (pactum.events.<p>.<agent>) -> clauses -> PACTUM_VERDICTS
 *                                                           (pactum.verdicts.<p>.<agent>)
 *
 * Each owned partition has a worker thread with its own connection and
 * durable consumer (evaluator-p<N>, see pk/workers.h). Clause state lives in LMDB and is
 * committed before the events are acknowledged, with the last sequence
 * processed per partition, so a redelivered event is never counted twice.
 */
#ifndef PK_EVALUATOR_H
#define PK_EVALUATOR_H

#include <pthread.h>

#include "pk/bus.h"
#include "pk/pact.h"
#include "pk/registry.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/workers.h"

typedef struct evaluator_cfg {
    pk_common_cfg common;   /* shared options */
    const char *owned;      /* partitions this instance serves: "all", "0,2", "0-3" */
    long long report_every; /* evaluations of a clause between verdicts */
    long long batch;        /* events fetched per batch */
} evaluator_cfg;

enum {
    EM_EVENTS,
    EM_STALE_CHECKS,
    EM_SKIPPED,
    EM_NO_PACT,
    EM_VERDICT_PASS,
    EM_VERDICT_FAIL,
    EM_VERDICT_INSUFFICIENT,
    EM_VERDICT_STALE,
    EM_MALFORMED,
    EM_BATCH_RETRIES,
    EM_LAG,
    EM_LMDB_USED,
    EM_LMDB_MAP,
    EM_COUNT
};

/* A compiled pact version, cached by (id, version). */
typedef struct pact_slot {
    char id[PK_ID_MAX + 1]; /* pact id; "" when the slot is free */
    uint32_t version;       /* version */
    uint8_t hash[32];       /* SHA-256 of the document */
    int64_t registered_ms;  /* when this version was registered */
    pk_pact *pact;          /* compiled pact, owned */
} pact_slot;

#define PACT_CACHE_SLOTS 256

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
    evaluator *ev;                     /* the service */
    pact_slot cache[PACT_CACHE_SLOTS]; /* compiled pacts */
    struct state_entry *states;        /* per-batch clause state cache, owned */
} eval_worker;

struct evaluator {
    const evaluator_cfg *cfg; /* borrowed configuration */
    pk_service svc;           /* health, metrics */
    pk_bus *bus;              /* main connection (registry, ops) */
    pk_store *store;          /* LMDB: states, sequences, registry copy */
    pk_registry *reg;         /* registry copy */
    uint32_t partitions;      /* partitions of the streams */
    MDB_dbi states;           /* agent \0 pact \0 clause -> pk_clause_state */
    MDB_dbi meta;             /* "events_p<N>" -> last PACTUM_EVENTS sequence applied;
                                 "ticks_p<N>" -> be64 applied || be32 tick ordinal */
    MDB_dbi deadlines;        /* be32 partition || be64 ms || state key -> "" (freshness) */
    uint64_t owned;           /* partitions served, as a bitmap */
    pk_pworkers workers;      /* one per owned partition */
    eval_worker *ctx;         /* their data */
    size_t n_ctx;             /* entries in ctx */
    pk_metric m[EM_COUNT];    /* counters */
};

void evaluator_metrics_init(evaluator *e);

/* Judge one fetched batch, publish verdicts, commit, ack (a pk_batch_fn). */
pk_status evaluator_process(pk_pworker *w, natsMsgList *list);

/* Publish stale verdicts for freshness clauses whose deadline passed (a pk_tick_fn). */
pk_status evaluator_tick(pk_pworker *w, int64_t now_ms);

/* Registry hook: start the freshness clock of each new pact's clauses. */
pk_status evaluator_on_registry(void *ctx, MDB_txn *txn, const Pactum__V1__RegistryRecord *rec,
                                uint64_t seq);

/* Release a worker's caches. */
void evaluator_worker_free(eval_worker *w);

#endif
