/*
 * pk/responder.h - request-reply on the bus from a table of routes: each
 * subject with its handler, its queue group and how many subscriptions (so
 * delivery threads) answer it. Every service's requests (registrations,
 * governance records, oracle questions, digests, health, metrics) are
 * answered through it, and the oracle's HTTP routes call the same handlers.
 */
#ifndef PK_RESPONDER_H
#define PK_RESPONDER_H

#include <stddef.h>
#include <stdint.h>

#include "pk/bus.h"

/*
 * Answer a request: req (len bytes, borrowed) in, *out (malloc'd, the
 * caller frees) out. PK_OK whenever there is an answer to send, refusals
 * included; otherwise nothing is sent and the failure is logged. PK_OK with
 * *out left NULL: not this instance's to answer (another instance will).
 */
typedef pk_status (*pk_handler_fn)(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                                   size_t *outlen);

typedef struct pk_route {
    const char *subject; /* subject answered (borrowed for as long as the responders run) */
    const char *queue;   /* queue group (instances share the load), or NULL: each answers */
    int threads;         /* subscriptions, each with its own delivery thread (>= 1) */
    pk_handler_fn fn;    /* the handler */
} pk_route;

typedef struct pk_responders {
    natsSubscription **subs; /* one per thread of each route */
    size_t n;                /* subscriptions made */
    struct pk_bound *bound;  /* (handler, ctx) of each route */
    size_t n_bound;
} pk_responders;

/*
 * Subscribe every route on bus, each handler called with ctx. r is
 * caller-owned (zeroed first); on failure what was started is stopped.
 */
pk_status pk_responders_start(pk_responders *r, pk_bus *bus, const pk_route *routes, size_t n,
                              void *ctx) PK_MUST_CHECK;

/* Unsubscribe everything; a stopped or zeroed r is a no-op. */
void pk_responders_stop(pk_responders *r);

#endif
