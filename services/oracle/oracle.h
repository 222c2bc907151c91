/*
 * oracle - answers public trust queries from its own read model.
 *
 * The read model is built from the PACTUM_TRUST stream (and the registry),
 * never from the scorer's files, so an oracle can run on another host. Each
 * instance keeps its model in its own LMDB folder and resumes from the last
 * stream sequence it applied. Queries arrive by request-reply on
 * pactum.oracle.trust in the queue group "oracle", so instances share the load.
 */
#ifndef PK_ORACLE_H
#define PK_ORACLE_H

#include "pk/bus.h"
#include "pk/registry.h"
#include "pk/service.h"
#include "pk/store.h"

typedef struct oracle_cfg {
    pk_common_cfg common;   /* shared options */
    long long history;      /* tier changes returned by default */
} oracle_cfg;

enum {
    OM_QUERIES,
    OM_UNKNOWN,
    OM_BAD,
    OM_CHANGES,
    OM_DUPLICATES,
    OM_LAG,
    OM_LMDB_USED,
    OM_LMDB_MAP,
    OM_COUNT
};

typedef struct oracle {
    const oracle_cfg *cfg;       /* borrowed configuration */
    pk_service svc;              /* health, metrics */
    pk_bus *bus;                 /* connection */
    pk_store *store;             /* read model */
    pk_registry *reg;            /* registry copy */
    uint32_t partitions;         /* partitions of the streams */
    MDB_dbi reports;             /* agent -> TrustReport (state, last violation, seq) */
    MDB_dbi tiers;               /* agent \0 be64 change_seq -> TierChange */
    MDB_dbi governance;          /* agent \0 be64 change_seq -> GovernanceEntry */
    MDB_dbi meta;                /* "trust_seq" -> last PACTUM_TRUST sequence applied */
    pk_consumer trust;           /* ephemeral consumer of PACTUM_TRUST */
    natsSubscription *queries;   /* pactum.oracle.trust responder */
    natsSubscription *pact_queries; /* pactum.oracle.pact responder */
    pk_metric m[OM_COUNT];       /* counters */
} oracle;

void oracle_metrics_init(oracle *o);

/* Apply a batch of trust changes to the read model. */
pk_status oracle_apply(oracle *o, natsMsgList *list);

/* Build the answer to a trust query (exposed for tests). *out: caller frees. */
pk_status oracle_answer(oracle *o, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen);

/* Build the answer to a pact history query. *out: caller frees. */
pk_status oracle_answer_pact(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                             size_t *outlen);

pk_status oracle_queries_start(oracle *o);
void oracle_queries_stop(oracle *o);

#endif
