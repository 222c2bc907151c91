/*
 * responder - request-reply from a table of routes (pk/responder.h).
 */
#include "pk/responder.h"

#include <stdlib.h>
#include <string.h>

#include "pk/log.h"

struct pk_bound {
    pk_handler_fn fn; /* handler */
    void *ctx;        /* its context */
};

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct pk_bound *b = closure;
    const char *reply = natsMsg_GetReply(msg);
    uint8_t *out = NULL;
    size_t len = 0;

    if (reply) {
        if (b->fn(b->ctx, (const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                  &out, &len) == PK_OK) {
            if (out) /* none: not this instance's to answer */
                natsConnection_Publish(nc, reply, out, (int)len);
        } else
            PK_WARN("no answer on %s: %s", natsMsg_GetSubject(msg), pk_error_msg());
    }
    free(out);
    natsMsg_Destroy(msg);
}

pk_status pk_responders_start(pk_responders *r, pk_bus *bus, const pk_route *routes, size_t n,
                              void *ctx)
{
    size_t total = 0;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < n; i++)
        total += (size_t)(routes[i].threads > 0 ? routes[i].threads : 1);
    r->subs = calloc(total ? total : 1, sizeof(*r->subs));
    r->bound = calloc(n ? n : 1, sizeof(*r->bound));
    if (!r->subs || !r->bound) {
        pk_responders_stop(r);
        return PK_ERR(PK_ENOMEM, "cannot allocate %zu responders", total);
    }
    r->n_bound = n;
    for (size_t i = 0; i < n; i++) {
        int threads = routes[i].threads > 0 ? routes[i].threads : 1;
        r->bound[i].fn = routes[i].fn;
        r->bound[i].ctx = ctx;
        for (int t = 0; t < threads; t++) {
            natsStatus s =
                routes[i].queue
                    ? natsConnection_QueueSubscribe(&r->subs[r->n], bus->nc, routes[i].subject,
                                                    routes[i].queue, on_request, &r->bound[i])
                    : natsConnection_Subscribe(&r->subs[r->n], bus->nc, routes[i].subject,
                                               on_request, &r->bound[i]);
            if (s != NATS_OK) {
                pk_status st = pk_nats_err(s, 0, routes[i].subject);
                pk_responders_stop(r);
                return st;
            }
            r->n++;
        }
    }
    return PK_OK;
}

void pk_responders_stop(pk_responders *r)
{
    /* Drained, not just unsubscribed: a handler still running when this returns
     * would use a context its owner is about to free. Bounded: 2 s in all. */
    for (size_t i = 0; i < r->n; i++)
        natsSubscription_DrainTimeout(r->subs[i], 2000);
    for (size_t i = 0; i < r->n; i++) {
        natsSubscription_WaitForDrainCompletion(r->subs[i], 2000);
        natsSubscription_Destroy(r->subs[i]);
    }
    free(r->subs);
    free(r->bound);
    memset(r, 0, sizeof(*r));
}
