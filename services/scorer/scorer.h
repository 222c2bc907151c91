/*
 * scorer - keeps each agent's reputation and tier in LMDB and publishes every
 * change.
 *
 *   PACTUM_VERDICTS (pactum.verdicts.<p>.<agent>.v  verdicts,
 *                    pactum.verdicts.<p>.<agent>.g  governance records)
 *       -> score, tier, overrides, disputes -> PACTUM_TRUST (pactum.trust.<agent>)
 *
 * An input is acknowledged only after the LMDB transaction holding its effect
 * commits, and each partition remembers the last stream sequence applied, so
 * an input delivered twice changes nothing. The state depends on the inputs
 * alone (their times, never the scorer's clock): `pactum replay` rebuilds it
 * from the stream and must reach the same digest.
 */
#ifndef PK_SCORER_H
#define PK_SCORER_H

#include "pk/scoring.h"
#include "pk/bus.h"
#include "pk/registry.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/workers.h"

typedef struct scorer_cfg {
    pk_common_cfg common; /* shared options */
    const char *owned;    /* partitions served: "all", "0,2", "0-3" */
    long long batch;      /* inputs fetched per batch */
} scorer_cfg;

enum {
    SM_VERDICTS,
    SM_GOVERNANCE,
    SM_DUPLICATES,
    SM_MALFORMED,
    SM_CHANGES,
    SM_TIER_CHANGES,
    SM_CONTAINMENTS,
    SM_CONTAINMENT_MS,
    SM_REENTRIES,
    SM_RULINGS,
    SM_BATCH_RETRIES,
    SM_LAG,
    SM_LMDB_USED,
    SM_LMDB_MAP,
    SM_COUNT
};

typedef struct scorer scorer;

/* Per-partition data of a worker (pk_pworker.ctx). */
typedef struct score_worker {
    scorer *s;      /* the service */
    pk_pworker *pw; /* its worker */
    pk_core core;   /* governance cache and history reader */
} score_worker;

struct scorer {
    const scorer_cfg *cfg;    /* borrowed configuration */
    pk_service svc;           /* health, metrics */
    pk_bus *bus;              /* main connection (ops, registry, digest) */
    pk_store *store;          /* LMDB */
    pk_registry *reg;         /* registry copy: governance sections of pacts */
    uint32_t partitions;      /* partitions of the streams */
    MDB_dbi agents;           /* agent -> TrustState */
    MDB_dbi tiers;            /* agent \0 be64 change_seq -> TierChange */
    MDB_dbi meta;             /* "inputs_p<N>" -> last PACTUM_VERDICTS sequence applied */
    pk_pworkers workers;      /* one per owned partition */
    score_worker *ctx;        /* their data */
    natsSubscription *digest; /* pactum.scorer.digest responder */
    pk_metric m[SM_COUNT];    /* counters */
};

void scorer_metrics_init(scorer *s);

/* Apply one fetched batch of inputs (a pk_batch_fn; w->ctx is a score_worker). */
pk_status scorer_process(pk_pworker *w, natsMsgList *list);

/* Read an agent's past inputs from PACTUM_VERDICTS (a pk_history_fn; ctx: score_worker). */
pk_status scorer_history(void *ctx, const char *agent, uint64_t before_seq, pk_input_fn each,
                         void *each_ctx);

/*
 * SHA-256 over every agent's stored state in key order: the digest that
 * `pactum replay` compares. agents receives the number of agents.
 */
pk_status scorer_digest(pk_store *store, MDB_dbi agents, uint8_t out[32], uint64_t *n_agents);

pk_status scorer_digest_start(scorer *s);
void scorer_digest_stop(scorer *s);

/* Read an agent's inputs below before_seq on bus (used by the service and by replay). */
pk_status pk_read_history(pk_bus *bus, uint32_t partitions, const char *agent, uint64_t before_seq,
                          pk_input_fn each, void *each_ctx);

#endif
