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
    pk_common_cfg common;     /* shared options */
    const char *owned;        /* partitions this instance serves: "all", "0,2", "0-3" */
    long long report_every;   /* evaluations of a clause between verdicts */
    long long batch;          /* events fetched per batch */
} evaluator_cfg;

enum {
    EM_EVENTS,
    EM_SKIPPED,
    EM_NO_PACT,
    EM_VERDICT_PASS,
    EM_VERDICT_FAIL,
    EM_VERDICT_INSUFFICIENT,
    EM_VERDICT_STALE,
    EM_MALFORMED,
    EM_BATCH_RETRIES,
    EM_LMDB_USED,
    EM_LMDB_MAP,
    EM_COUNT
};

/* A compiled pact version, cached by (id, version). */
typedef struct pact_slot {
    char id[PK_ID_MAX + 1];   /* pact id; "" when the slot is free */
    uint32_t version;         /* version */
    uint8_t hash[32];         /* SHA-256 of the document */
    pk_pact *pact;            /* compiled pact, owned */
} pact_slot;

#define PACT_CACHE_SLOTS 256

/* Verdict sequence: PACTUM_EVENTS sequence << PK_VSEQ_SHIFT | ordinal within the event. */
#define PK_VSEQ_SHIFT 10

typedef struct evaluator evaluator;

/* Per-partition data of a worker (pk_pworker.ctx). */
typedef struct eval_worker {
    evaluator *ev;                     /* the service */
    pact_slot cache[PACT_CACHE_SLOTS]; /* compiled pacts */
    struct state_entry *states;        /* per-batch clause state cache, owned */
} eval_worker;

struct evaluator {
    const evaluator_cfg *cfg;     /* borrowed configuration */
    pk_service svc;               /* health, metrics */
    pk_bus *bus;                  /* main connection (registry, ops) */
    pk_store *store;              /* LMDB: states, sequences, registry copy */
    pk_registry *reg;             /* registry copy */
    uint32_t partitions;          /* partitions of the streams */
    MDB_dbi states;               /* agent \0 pact \0 clause -> pk_clause_state */
    MDB_dbi meta;                 /* "events_p<N>" -> last PACTUM_EVENTS sequence applied */
    pk_pworkers workers;          /* one per owned partition */
    eval_worker *ctx;             /* their data */
    size_t n_ctx;                 /* entries in ctx */
    pk_metric m[EM_COUNT];        /* counters */
};

void evaluator_metrics_init(evaluator *e);

/* Judge one fetched batch, publish verdicts, commit, ack (a pk_batch_fn). */
pk_status evaluator_process(pk_pworker *w, natsMsgList *list);

/* Release a worker's caches. */
void evaluator_worker_free(eval_worker *w);

#endif
