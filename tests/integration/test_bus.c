/*
 * The bus: services started together all create the streams they need, on a
 * fresh server, at the same moment, and every one of them starts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "harness.h"
#include "pk/bus.h"

#define STARTERS 6 /* services starting at once */
#define ROUNDS   8 /* fresh servers */

typedef struct starter {
    const char *url;
    pk_status st;          /* what pk_streams_ensure said */
    char why[256];         /* its message when it failed */
    pthread_barrier_t *go; /* every starter connects, then all ensure at once */
} starter;

static void *start_one(void *arg)
{
    starter *s = arg;
    pk_bus *bus = h_connect(s->url, "starter", true);
    uint32_t partitions = 4;

    pthread_barrier_wait(s->go);
    s->st = bus ? pk_streams_ensure(bus, &partitions) : PK_EBUS;
    if (s->st != PK_OK)
        snprintf(s->why, sizeof(s->why), "%s", bus ? pk_error_msg() : "could not connect");
    pk_bus_close(bus);
    return NULL;
}

Test(bus, services_starting_together_all_create_the_streams, .timeout = 240)
{
    for (int round = 0; round < ROUNDS; round++) {
        h_env h;
        starter s[STARTERS];
        pthread_t t[STARTERS];
        pthread_barrier_t go;

        cr_assert(h_start(&h, false), "nats-server did not start (logs in %s)", h.dir);
        pthread_barrier_init(&go, NULL, STARTERS);
        for (int i = 0; i < STARTERS; i++) {
            s[i] = (starter){.url = h.url, .go = &go};
            cr_assert_eq(pthread_create(&t[i], NULL, start_one, &s[i]), 0);
        }
        for (int i = 0; i < STARTERS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        h_stop(&h);
        for (int i = 0; i < STARTERS; i++)
            cr_assert_eq(s[i].st, PK_OK, "round %d, starter %d: %s", round, i, s[i].why);
    }
}
