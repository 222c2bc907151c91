/*
 * pk/workers.h - one thread per owned partition, each with its own NATS
 * connection and durable pull consumer (<prefix>-p<N>), calling a batch
 * function. Used by the evaluator and the scorer, whose state is per agent
 * and therefore must see each agent's messages in order on one instance.
 */
#ifndef PK_WORKERS_H
#define PK_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/service.h"

typedef struct pk_pworker pk_pworker;
typedef struct pk_pworkers pk_pworkers;

/* Process one fetched batch; on success ack every message, on failure ack none
 * and return the failure (the batch is retried as it is). */
typedef pk_status (*pk_batch_fn)(pk_pworker *w, natsMsgList *list);

/* Work driven by the clock (e.g. stale evidence), called about every tick_ms. */
typedef pk_status (*pk_tick_fn)(pk_pworker *w, int64_t now_ms);

struct pk_pworker {
    pk_pworkers *group;   /* the group this worker belongs to */
    uint32_t partition;   /* partition served */
    pk_bus *bus;          /* own connection */
    pk_consumer consumer; /* durable consumer of the partition */
    pthread_t thread;     /* the thread, once started */
    atomic_llong pending; /* messages waiting for this consumer, at the last fetch */
    bool started;         /* thread is running */
    void *ctx;            /* service-specific per-worker data */
};

struct pk_pworkers {
    pk_service *svc;             /* borrowed: health is set here on fatal store errors */
    const pk_common_cfg *common; /* borrowed: connection settings */
    const char *stream;          /* stream consumed */
    const char *prefix;          /* durable name prefix, e.g. "evaluator" */
    const char *subject;         /* subject prefix; the filter is <subject>.<N>.<tail> */
    const char *tail;            /* "*" or ">" */
    int batch;                   /* messages per fetch */
    pk_batch_fn process;         /* batch function */
    pk_tick_fn tick;             /* optional clock function */
    int64_t tick_ms;             /* how often to call it */
    pk_metric *lag;              /* optional gauge: messages waiting, summed over the workers */
    pk_pworker *w;               /* workers, one per owned partition */
    size_t n;                    /* their count */
};

/*
 * Apply a batch, retrying it in place (same messages, same order, marked in
 * progress) until it succeeds. Returns PK_OK, PK_ESTORE_FULL (stop consuming),
 * or PK_ESHUTDOWN (left unacknowledged for redelivery after restart).
 */
pk_status pk_batch_until_done(pk_status (*fn)(void *ctx, natsMsgList *list), void *ctx,
                              natsMsgList *list, const char *what);

/* Parse "all", "1,3" or "0-2" into a bitmap of partitions below n. */
pk_status pk_partitions_parse(const char *text, uint32_t n, uint64_t *mask);

/* Connect a worker for each partition in mask; g's fields must be set. */
pk_status pk_pworkers_open(pk_pworkers *g, uint32_t partitions, uint64_t mask);

/* Start the threads; they run until pk_shutdown. */
pk_status pk_pworkers_start(pk_pworkers *g);

/* Wait for the threads, then close consumers and connections (ctx is the caller's). */
void pk_pworkers_close(pk_pworkers *g);

#endif
