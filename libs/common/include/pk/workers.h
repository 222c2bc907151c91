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
    pk_pworkers *group;   /* the group this worker belongs to */
    uint32_t partition;   /* partition served */
    pk_bus *bus;          /* own connection */
    pk_consumer consumer; /* durable consumer of the partition */
    pk_runner runner;     /* its loop */
    char what[64];        /* "<prefix> partition <N>", for logs */
    pthread_t thread;     /* the thread, once started */
    bool started;         /* thread is running */
    void *ctx;            /* service-specific per-worker data */
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
    pk_pworker *w;            /* workers, one per owned partition */
    size_t n;                 /* their count */
};

/* Parse "all", "1,3" or "0-2" into a bitmap of partitions below n. */
pk_status pk_partitions_parse(const char *text, uint32_t n, uint64_t *mask) PK_MUST_CHECK;

/* Connect a worker for each partition in mask; g's fields must be set. */
pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask) PK_MUST_CHECK;

/* Make each worker's ctx (ctx_size, ctx_init), then start the threads; they run until pk_shutdown.
 */
pk_status pk_pworkers_start(pk_pworkers *g) PK_MUST_CHECK;

/* Wait for the threads, then release each ctx (ctx_free) and close consumers and connections. */
void pk_pworkers_close(pk_pworkers *g);

#endif
