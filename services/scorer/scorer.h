/*
 * scorer - keeps each agent's reputation and tier in LMDB and publishes every
 * change.
 *
 *   PACTUM_VERDICTS (pactum.verdicts.<p>.<agent>) -> score, tier -> PACTUM_TRUST
 *                                                                  (pactum.trust.<agent>)
 *
 * A verdict is acknowledged only after the LMDB transaction holding its
 * effect commits. Each agent's state remembers the last verdict sequence
 * applied, so a verdict delivered twice changes nothing.
 */
#ifndef PK_SCORER_H
#define PK_SCORER_H

#include "pk/bus.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/workers.h"
#include "score.h"

typedef struct scorer_cfg {
    pk_common_cfg common;   /* shared options */
    const char *owned;      /* partitions served: "all", "0,2", "0-3" */
    long long batch;        /* verdicts fetched per batch */
} scorer_cfg;

enum {
    SM_VERDICTS,
    SM_DUPLICATES,
    SM_MALFORMED,
    SM_CHANGES,
    SM_TIER_CHANGES,
    SM_CONTAINMENTS,
    SM_CONTAINMENT_MS,
    SM_BATCH_RETRIES,
    SM_LMDB_USED,
    SM_LMDB_MAP,
    SM_COUNT
};

typedef struct scorer {
    const scorer_cfg *cfg;   /* borrowed configuration */
    pk_service svc;          /* health, metrics */
    pk_bus *bus;             /* main connection (ops) */
    pk_store *store;         /* LMDB */
    uint32_t partitions;     /* partitions of the streams */
    MDB_dbi agents;          /* agent -> TrustState */
    MDB_dbi tiers;           /* agent \0 be64 change_seq -> TierChange */
    pk_pworkers workers;     /* one per owned partition */
    pk_metric m[SM_COUNT];   /* counters */
} scorer;

void scorer_metrics_init(scorer *s);

/* Apply one fetched batch of verdicts (a pk_batch_fn; w->ctx is the scorer). */
pk_status scorer_process(pk_pworker *w, natsMsgList *list);

#endif
