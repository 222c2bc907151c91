/*
 * pk/registry.h - each service's copy of the registry: agents and their keys,
 * pacts and their versions. The PACTUM_REGISTRY stream is the source of
 * truth; pk_registry_sync copies what is new into the service's LMDB, in
 * stream order, and remembers how far it got, so a restart resumes there.
 *
 * Records returned by the lookups are owned by the caller and freed with
 * the matching protobuf-c free_unpacked function.
 */
#ifndef PK_REGISTRY_H
#define PK_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>

#include "pk/bus.h"
#include "pk/codec.h"
#include "pk/store.h"

typedef struct pk_registry pk_registry;

/* Called under the registry lock, inside the transaction that applies each
 * record (e.g. to index what a new pact needs); a failure aborts the sync. */
typedef pk_status (*pk_registry_hook)(void *ctx, MDB_txn *txn,
                                      const Pactum__V1__RegistryRecord *rec, uint64_t seq);

struct pk_registry {
    pk_store *store;           /* borrowed: where the copy lives */
    pk_bus *bus;               /* borrowed: where the stream is */
    MDB_dbi meta;              /* "registry_seq" -> u64 */
    MDB_dbi agents;            /* agent id -> be64 seq || AgentRecord */
    MDB_dbi pacts;             /* pact id \0 be32 version -> be64 seq || PactRecord */
    MDB_dbi agent_pacts;       /* agent id -> pact id (duplicates sorted) */
    pthread_mutex_t lock;      /* one sync at a time */
    atomic_ulong applied;      /* last stream sequence applied */
    atomic_bool dirty;         /* a registry message was seen since the last sync */
    natsSubscription *notify;  /* core subscription that sets dirty */
    atomic_llong last_sync_ms; /* monotonic time the last sync finished */
    atomic_llong notified_ms;  /* monotonic time the last registry message was seen */
    int64_t sync_started_ns;   /* under lock: monotonic time the last sync began */
    double refresh_tokens;     /* under lock: syncs misses may still force (see refresh) */
    int64_t refresh_ms;        /* under lock: when refresh_tokens was last topped up */
    atomic_ulong syncs;        /* syncs run (tests count them) */
    pk_registry_hook hook;     /* optional per-record hook */
    void *hook_ctx;            /* its context */
};

/* Open the registry databases in store; bus may be NULL for offline use. */
pk_status pk_registry_open(pk_registry **out, pk_store *store, pk_bus *bus) PK_MUST_CHECK;
void pk_registry_close(pk_registry *r);

/* Subscribe to registry subjects so that new records mark the copy dirty. */
pk_status pk_registry_watch(pk_registry *r) PK_MUST_CHECK;

/*
 * Copy every record after the applied position. If at_least > 0 and the copy
 * cannot reach it, PK_ENOTFOUND. Must not be called while the caller holds a
 * write transaction on the same store.
 */
pk_status pk_registry_sync(pk_registry *r, uint64_t at_least) PK_MUST_CHECK;

/* Sync only if a registry message was seen since the last sync. */
pk_status pk_registry_sync_if_dirty(pk_registry *r) PK_MUST_CHECK;

/*
 * A registry message was seen (what the watch does for each one). Its notice
 * can come before the stream has stored it, so the copy stays dirty until a
 * sync reads something new or PK_REGISTRY_NOTICE_MS have passed since.
 */
void pk_registry_notified(pk_registry *r);
#define PK_REGISTRY_NOTICE_MS 500

/*
 * For a lookup that missed (an id registered a moment ago): sync, so that the
 * copy holds every record the stream stored before this call. Concurrent
 * misses share one sync. A stream of unknown ids must not become a stream of
 * reads: past PK_REGISTRY_REFRESH_BURST forced syncs, then
 * PK_REGISTRY_REFRESH_PER_S a second, a miss syncs only when the last sync
 * finished min_interval_ms ago or more, or a registry message was seen since.
 */
#define PK_REGISTRY_REFRESH_BURST 20
#define PK_REGISTRY_REFRESH_PER_S 50
pk_status pk_registry_refresh(pk_registry *r, int64_t min_interval_ms) PK_MUST_CHECK;

uint64_t pk_registry_seq(pk_registry *r);

/* Keep the copy up to date (a sync whenever a record was seen) until pk_shutdown. */
void pk_registry_follow(pk_registry *r);

/* Apply one record at seq (used by sync PK_MUST_CHECK; exposed for tests and replay). */
pk_status pk_registry_apply(pk_registry *r, MDB_txn *txn, const uint8_t *data, size_t len,
                            uint64_t seq) PK_MUST_CHECK;

pk_status pk_registry_agent(pk_registry *r, MDB_txn *txn, const char *agent_id,
                            Pactum__V1__AgentRecord **out, uint64_t *seq) PK_MUST_CHECK;

/*
 * The pact record of pact_id at version (0: the latest) among those registered
 * at or before registry position max_seq (0: any).
 */
pk_status pk_registry_pact(pk_registry *r, MDB_txn *txn, const char *pact_id, uint32_t version,
                           uint64_t max_seq, Pactum__V1__PactRecord **out,
                           uint64_t *seq) PK_MUST_CHECK;

/*
 * The version of pact_id in force at registry position max_seq (0: latest),
 * without decoding the record. PK_ENOTFOUND if none.
 */
pk_status pk_registry_pact_version(pk_registry *r, MDB_txn *txn, const char *pact_id,
                                   uint64_t max_seq, uint32_t *version,
                                   uint64_t *seq) PK_MUST_CHECK;

/* Pact ids registered for agent_id; *ids is a malloc'd array of malloc'd strings. */
pk_status pk_registry_agent_pacts(pk_registry *r, MDB_txn *txn, const char *agent_id, char ***ids,
                                  size_t *n) PK_MUST_CHECK;
void pk_registry_ids_free(char **ids, size_t n);

#endif
