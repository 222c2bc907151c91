/*
 * pk/runner.h - the one JetStream consumer loop: fetch a batch, hand it to the
 * service's batch function, which applies it, commits and acknowledges; on a
 * failure retry the same batch in place with back-off; between fetches do the
 * service's idle work; report lag and retries; on a full LMDB map stop
 * consuming and turn the service unhealthy. Every reader of a stream in
 * Pactum (ingest, each evaluator and scorer partition, the oracle's read
 * model, the transparency log's appenders and builder) runs on it.
 */
#ifndef PK_RUNNER_H
#define PK_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/service.h"

/*
 * Apply a fetched batch and acknowledge it (if the consumer acknowledges).
 * On a failure acknowledge nothing and return why: the same batch, in the
 * same order, is given again until it succeeds.
 */
typedef pk_status (*pk_batch_fn)(void *ctx, natsMsgList *list);

/*
 * Work between fetches (clock work, registry syncs, signed heads), called
 * before each fetch. caught_up: the consumer had nothing more waiting at the
 * last fetch. A failure is logged; the runner goes on.
 */
typedef pk_status (*pk_idle_fn)(void *ctx, bool caught_up);

/* A batch read ahead holds about this many bytes of messages at most. */
#define PK_AHEAD_BYTES (8LL << 20)

/* Work on a batch read ahead: start it (prepare), or undo it for a batch not applied. */
typedef void (*pk_ahead_fn)(void *ctx, natsMsgList *list);

typedef struct pk_runner {
    const char *what;        /* names the reader in logs: "ingest", "scorer partition 2" */
    pk_consumer *consumer;   /* borrowed: what is read */
    pk_service *svc;         /* borrowed: counts retries; unhealthy when the map is full */
    int batch;               /* messages per fetch, at most */
    int64_t wait_ms;         /* longest wait of a fetch */
    int64_t gather_ms;       /* a batch short of `batch` waits this long before it is
                              * applied, so what comes meanwhile joins the next (0: never) */
    pk_batch_fn process;     /* applies a batch */
    pk_idle_fn idle;         /* optional work between fetches */
    void *ctx;               /* for both */
    pk_metric *lag;          /* optional gauge: messages waiting, summed over the runners
                              * that share it */
    long long pending;       /* messages waiting at this runner's last fetch */
    const atomic_bool *stop; /* optional: set to stop this runner alone (a partition let go) */
    unsigned long stalls;    /* the consumer's stalls already counted */
    /*
     * Optional read-ahead, for a durable that readers share (not ordered, not
     * leased). The batch function calls pk_runner_read_ahead as it starts; if
     * more messages were waiting, the next batch is fetched then and handed to
     * prepare, which may start work on it that depends on its bytes alone (a
     * signature check) while this batch is applied. That batch is applied
     * next, as if just fetched, also when the runner is stopping; one that
     * cannot be (this batch failed at a stop, a lease lapsed) goes to discard
     * and is handed back unacknowledged (nak), to be delivered again at once.
     */
    pk_ahead_fn prepare;
    pk_ahead_fn discard;
    natsMsgList ahead; /* read ahead and prepared, not applied yet (Count 0: none) */
} pk_runner;

/* Run until pk_shutdown (or r->stop) is set. */
void pk_runner_loop(pk_runner *r);

/*
 * From the batch function of a runner with prepare set: fetch the next batch
 * now, if the server said more messages were waiting after this one and none
 * is read ahead yet, and prepare it. Fetches nothing otherwise; never waits.
 */
void pk_runner_read_ahead(pk_runner *r);

/*
 * Apply a batch, retrying it in place (same messages, same order, marked in
 * progress when acked) with back-off until it succeeds. Returns PK_OK,
 * PK_ESTORE_FULL (stop consuming), or PK_ESHUTDOWN (left unacknowledged for
 * redelivery after a restart). Each failed attempt adds to retries (optional).
 */
pk_status pk_batch_until_done(pk_batch_fn fn, void *ctx, natsMsgList *list, const char *what,
                              pk_metric *retries) PK_MUST_CHECK;

/* Sleep ms, in short steps, returning early on pk_shutdown. */
void pk_pause_ms(int64_t ms);

#endif
