/*
 * pk/workers.h - one thread per owned partition, each with its own NATS
 * connection and durable pull consumer (<prefix>-p<N>), each a pk_runner
 * calling the service's batch function. Used by the evaluator and the
 * scorer, whose state is per agent and therefore must see each agent's
 * messages in order on one instance.
 */
#ifndef PK_WORKERS_H
#define PK_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/runner.h"
#include "pk/service.h"
#include "pk/store.h"

typedef struct pk_pworker pk_pworker;
typedef struct pk_pworkers pk_pworkers;

/* Process one fetched batch of a partition (see pk_batch_fn). */
typedef pk_status (*pk_pbatch_fn)(pk_pworker *w, natsMsgList *list);

/* Work between fetches of a partition (see pk_idle_fn). */
typedef pk_status (*pk_pidle_fn)(pk_pworker *w, bool caught_up);

struct pk_pworker {
    pk_pworkers *group;          /* the group this worker belongs to */
    uint32_t partition;          /* partition served */
    pk_bus *bus;                 /* own connection */
    pk_consumer consumer;        /* durable consumer of the partition */
    pk_runner runner;            /* its loop */
    char what[64];               /* "<prefix> partition <N>", for logs */
    pthread_t thread;            /* the thread, once started */
    bool started;                /* thread is running */
    bool prepared;               /* connected, consumer bound */
    atomic_bool active;          /* serving its partition (for readers on other threads) */
    atomic_bool stop;            /* set to stop this partition alone */
    uint64_t quiet_until;        /* inputs up to here are applied without publishing what they make:
                                  * a previous holder of the partition published it already */
    _Atomic int64_t serve_until; /* pk_mono_ms after which the lease may have lapsed: nothing
                                  * more is read or written until it is renewed */
    void *ctx;                   /* service-specific per-worker data */
};

struct pk_pworkers {
    pk_service *svc;             /* borrowed: health, retries and lag are kept here */
    const pk_common_cfg *common; /* borrowed: connection settings */
    const char *stream;          /* stream consumed */
    const char *prefix;          /* durable name prefix, e.g. "evaluator" */
    const char *subject;         /* subject prefix; the filter is <subject>.<N>.<tail> */
    const char *tail;            /* "*" or ">" */
    int batch;                   /* messages per fetch */
    pk_pbatch_fn process;        /* batch function */
    pk_pidle_fn idle;            /* optional work between fetches */
    size_t ctx_size;             /* bytes of per-worker data (w->ctx) made for each worker */
    pk_status (*ctx_init)(pk_pworker *w); /* optional: set up w->ctx (zeroed) before the threads */
    void (*ctx_free)(pk_pworker *w);      /* optional: release what ctx_init set up */
    void *owner;              /* the service, for the functions above and the batch function */
    pk_store *store;          /* where the service keeps what it applied ... */
    MDB_dbi meta;             /* ... in this database ... */
    const char *position_key; /* ... under this key and the partition ("events_p3"), a be64 */
    pk_pworker *w;            /* workers, one per partition (w[p]); active: served here */
    size_t n;                 /* partitions */
    _Atomic uint64_t serving; /* partitions served now, as a bitmap */
    struct pk_leases *leases; /* set by pk_pworkers_serve */
};

/* Parse "all", "1,3" or "0-2" into a bitmap of partitions below n. */
pk_status pk_partitions_parse(const char *text, uint32_t n, uint64_t *mask) PK_MUST_CHECK;

/* One (idle) worker slot per partition; g's fields must be set. */
pk_status pk_pworkers_init(pk_pworkers *g, uint32_t partitions) PK_MUST_CHECK;

/* pk_pworkers_init, then connect a worker for each partition in mask. */
pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask) PK_MUST_CHECK;

/*
 * Serve partition p from now on (connect, bind its consumer, make its data,
 * start its thread); inputs up to quiet_until are applied without publishing.
 */
pk_status pk_pworker_start(pk_pworkers *g, uint32_t p, uint64_t quiet_until) PK_MUST_CHECK;

/* Stop serving partition p: its thread ends after the batch at hand; its data is released. */
void pk_pworker_stop(pk_pworkers *g, uint32_t p);

/*
 * PK_OK while w's lease is surely still held; otherwise PK_ECONFLICT, and what
 * its batch made must be neither written nor acknowledged (another instance
 * may be serving the partition by now).
 */
pk_status pk_pworker_still_held(const pk_pworker *w) PK_MUST_CHECK;

/* The last input sequence partition w applied, from the service's store (0: none). */
uint64_t pk_pworker_position(pk_pworker *w);

/*
 * Serve partitions by lease (pk/lease.h) on bus: owned "auto" takes a fair
 * share of the partitions and moves with the live instances; "all" or a list
 * ("0,2", "1-3") pins those, and is refused (PK_ECONFLICT) if another live
 * instance serves one of them. g's fields must be set; pk_pworkers_close
 * lets the leases go.
 */
pk_status pk_pworkers_serve(pk_pworkers *g, pk_bus *bus, const char *owned,
                            uint32_t partitions) PK_MUST_CHECK;

/* Make each worker's ctx (ctx_size, ctx_init), then start the threads; they run until pk_shutdown.
 */
pk_status pk_pworkers_start(pk_pworkers *g) PK_MUST_CHECK;

/* Wait for the threads, then release each ctx (ctx_free) and close consumers and connections. */
void pk_pworkers_close(pk_pworkers *g);

#endif
