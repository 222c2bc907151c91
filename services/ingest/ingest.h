/*
 * ingest - takes signed envelopes from agents and reporters, checks them, and
 * either publishes each event, normalized, to PACTUM_EVENTS or refuses it
 * with a reason on pactum.rejected.<reason>. Also handles registrations of
 * agents and pacts (registrar.c).
 */
#ifndef PK_INGEST_H
#define PK_INGEST_H

#include "pk/bus.h"
#include "pk/registry.h"
#include "pk/service.h"
#include "pk/store.h"

typedef struct ingest_cfg {
    pk_common_cfg common;     /* shared options */
    long long max_bytes;      /* largest envelope accepted */
    int64_t max_age_ms;       /* oldest event timestamp accepted, relative to arrival */
    int64_t max_skew_ms;      /* newest event timestamp accepted, relative to arrival */
    long long batch;          /* envelopes fetched per batch */
    long long verify_threads; /* threads checking a batch's signatures; 0: one per CPU */
    const char *admin_key;    /* public key that may register operators and arbiters */
} ingest_cfg;

/* Counters; order matters only for the exposition. */
enum {
    M_ENVELOPES,
    M_ACCEPTED,
    M_REJECTED_FIRST, /* one counter per Reason, in Reason order (1..15) */
    M_REJECTED_LAST = M_REJECTED_FIRST + 14,
    M_REDELIVERED,
    M_REG_OK,
    M_REG_REJECTED,
    M_GOV_OK,
    M_GOV_REJECTED,
    M_BATCH_RETRIES,
    M_DEDUP_PRUNED,
    M_LAG,
    M_LMDB_USED,
    M_LMDB_MAP,
    M_COUNT
};

typedef struct ingest {
    const ingest_cfg *cfg;    /* borrowed configuration */
    pk_service svc;           /* health, metrics, instance */
    pk_bus *bus;              /* owned connection */
    pk_store *store;          /* owned LMDB environment */
    pk_registry *reg;         /* owned registry copy */
    uint32_t partitions;      /* partitions of PACTUM_EVENTS */
    MDB_dbi dedup;            /* agent \0 event id -> be64 raw seq || be64 ts */
    MDB_dbi dedup_time;       /* be64 ts || agent \0 event id -> "" (for pruning) */
    pk_consumer raw;          /* durable consumer of PACTUM_RAW */
    natsSubscription *submit; /* registration requests */
    natsSubscription *govern; /* governance requests */
    uint8_t admin_pk[32];     /* the admin key */
    bool have_admin;          /* an admin key is configured */
    int64_t next_prune_ms;    /* when to prune the dedup table next */
    int verify_threads;       /* threads checking a batch's signatures (>= 1) */
    pk_metric m[M_COUNT];     /* counters */
} ingest;

/* Set up the metric table. */
void ingest_metrics_init(ingest *in);

/* Count a refusal by reason. */
void ingest_count_reject(ingest *in, Pactum__V1__Reason reason);

/*
 * Process one fetched batch of raw envelopes (ctx: the ingest): publish
 * accepted events and rejections, record event ids, then ack. On a bus or
 * store failure nothing is acked and the status is returned; the caller
 * retries the same batch (pk_batch_until_done).
 */
pk_status ingest_process(void *ctx, natsMsgList *batch);

/* Drop dedup entries too old to matter (events that old are refused anyway). */
pk_status ingest_prune(ingest *in, int64_t now_ms);

/* Answer registration requests on pactum.registry.submit. */
pk_status registrar_start(ingest *in);
void registrar_stop(ingest *in);

/* Answer governance requests on pactum.governance.submit (governance.c). */
pk_status governance_start(ingest *in);
void governance_stop(ingest *in);

#endif
