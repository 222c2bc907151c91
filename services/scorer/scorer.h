/*
 * scorer - keeps each agent's reputation and tier in LMDB and publishes every
 * change.
 *
 *   PACTUM_VERDICTS (pactum.verdicts.<p>.<agent>.v  verdicts,
 *                    pactum.verdicts.<p>.<agent>.g  governance records)
 *       -> score, tier, overrides, disputes -> PACTUM_TRUST (pactum.trust.<agent>)
 *
 * Each input goes through pk_scoring_step (pk/scoring.h), the same code
 * `pactum replay` runs. A batch is computed under a read transaction, its
 * changes are published, and only when the bus has acknowledged them are the
 * states written, in one short write transaction, and the inputs
 * acknowledged. Each partition remembers the last stream sequence applied,
 * so an input delivered twice changes nothing. The state depends on the
 * inputs alone (their times, never the scorer's clock).
 */
#ifndef SCORER_H
#define SCORER_H

#include "pk/bus.h"
#include "pk/pactcache.h"
#include "pk/registry.h"
#include "pk/responder.h"
#include "pk/scoring.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/workers.h"
#include "pk/wset.h"

typedef struct scorer_cfg {
    pk_common_cfg common;  /* shared options */
    const char *owned;     /* partitions served: "auto" (by lease), or pinned "all", "0-3" */
    long long batch;       /* inputs fetched per batch */
    long long states;      /* trust states a partition keeps decoded while computing a batch */
    int64_t tick_every_ms; /* how often the clock looks for agents whose time has come */
} scorer_cfg;

/* Its own metrics (metrics.def). */
enum {
#define PK_METRIC(id, ...) id,
#include "metrics.def"
#undef PK_METRIC
    SM_COUNT
};

typedef struct scorer scorer;

/* Per-partition data of a worker (pk_pworker.ctx). */
typedef struct score_worker {
    scorer *s;          /* the service */
    pk_pworker *pw;     /* its worker */
    pk_scoring scoring; /* the input step and the batch's states */
    pk_wset *ws;        /* the batch's writes */
    int64_t next_tick;  /* monotonic ms of the next look at the clock */
} score_worker;

struct scorer {
    const scorer_cfg *cfg; /* borrowed configuration */
    pk_service svc;        /* health, metrics */
    pk_bus *bus;           /* main connection (ops, registry, digest) */
    pk_store *store;       /* LMDB */
    pk_registry *reg;      /* registry copy: governance sections of pacts */
    pk_pact_cache *pacts;  /* compiled pacts, shared by the workers */
    uint32_t partitions;   /* partitions of the streams */
    MDB_dbi agents;        /* agent -> TrustState */
    MDB_dbi tiers;         /* agent \0 be64 change_seq -> TierChange */
    MDB_dbi meta;          /* "inputs_p<N>" -> last PACTUM_VERDICTS sequence applied */
    MDB_dbi wake;          /* be32 partition be64 wake_ms agent -> "": when to tick an agent */
    MDB_dbi wake_of;       /* agent -> be64 wake_ms (its entry in wake) */
    pk_pworkers workers;   /* one per owned partition, each with a score_worker */
    pk_responders answers; /* pactum.scorer.digest */
    pk_metric m[SM_COUNT]; /* counters */
};

void scorer_metrics_init(scorer *s);

/* Set up a worker's score_worker (pk_pworkers.ctx_init; w->group->owner: the scorer). */
pk_status scorer_worker_init(pk_pworker *w) PK_MUST_CHECK;

/* Release it (pk_pworkers.ctx_free). */
void scorer_worker_free(pk_pworker *w);

/* Tick the agents whose time has come (a pk_pworkers idle hook). */
pk_status scorer_idle(pk_pworker *w, bool caught_up) PK_MUST_CHECK;

/* Apply one fetched batch of inputs (a pk_pbatch_fn; w->ctx is a score_worker). */
pk_status scorer_process(pk_pworker *w, natsMsgList *list) PK_MUST_CHECK;

/* Answer pactum.scorer.digest: the digest of the stored states and the positions applied. */
pk_status scorer_answers_start(scorer *s) PK_MUST_CHECK;

#endif
