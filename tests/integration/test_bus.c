/*
 * The bus: services started together all create the streams they need, on a
 * fresh server, at the same moment, and every one of them starts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "pk/clock.h"
#include "pk/bus.h"
#include "pk/lease.h"
#include "pk/log.h"
#include "pk/registry.h"
#include "pk/store.h"

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

/* --- a durable consumer someone else deleted or changed --------------------------------- */

static uint64_t applied; /* what the reader below applied: its own position */

static pk_status position(void *ctx, uint64_t *out)
{
    *out = applied;
    return PK_OK;
}

/* Fetch up to n, "apply" and acknowledge them; the first sequence, or 0. */
static uint64_t take(pk_consumer *c, int n)
{
    natsMsgList list;
    uint64_t first = 0;

    for (int tries = 0; tries < 3 && !first; tries++) {
        if (pk_consumer_fetch(c, &list, n, 2000) != PK_OK)
            continue;
        first = pk_msg_seq(list.Msgs[0]);
        for (int i = 0; i < list.Count; i++) {
            applied = pk_msg_seq(list.Msgs[i]);
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    return first;
}

Test(bus, a_consumer_someone_else_changes_or_deletes_is_made_again_from_our_position,
     .timeout = 120)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    pk_consumer c;
    char why[256];
    h_env h;

    cr_assert(h_start(&h, false), "nats-server did not start");
    cr_assert(h_test_stream(&h, "TEST_TAMPER", "test.tamper", 20));
    applied = 0;
    cr_assert_eq(pk_consumer_open_ordered(&c, h.bus, "TEST_TAMPER", "reader", "test.tamper", 4,
                                          30000, position, NULL),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(take(&c, 4), 1);
    pk_consumer_close(&c);

    /* someone with rights on consumers makes it again to start after #8: 5..8 never come */
    cr_assert_eq(js_DeleteConsumer(h.bus->js, "TEST_TAMPER", "reader", NULL, &jerr), NATS_OK);
    jsConsumerConfig_Init(&cc);
    cc.Durable = "reader";
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = "test.tamper";
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = 9;
    cr_assert_eq(js_AddConsumer(&ci, h.bus->js, "TEST_TAMPER", &cc, NULL, &jerr), NATS_OK);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    /* the attacker's consumer has handed out and acknowledged #9 before the reader comes back */
    {
        natsSubscription *sub = NULL;
        natsMsgList list;
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = "TEST_TAMPER";
        so.Consumer = "reader";
        cr_assert_eq(js_PullSubscribe(&sub, h.bus->js, "test.tamper", "reader", NULL, &so, &jerr),
                     NATS_OK);
        cr_assert_eq(natsSubscription_Fetch(&list, sub, 1, 2000, &jerr), NATS_OK);
        natsMsg_AckSync(list.Msgs[0], NULL, NULL);
        natsMsgList_Destroy(&list);
        natsSubscription_Destroy(sub);
    }
    cr_assert_eq(pk_consumer_open_ordered(&c, h.bus, "TEST_TAMPER", "reader", "test.tamper", 4,
                                          30000, position, NULL),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(take(&c, 4), 5, "the reader goes on from its own position, not the server's");
    cr_assert(pk_incident_recent(60000, why, sizeof(why)), "a changed consumer is an incident");
    cr_assert(strstr(why, "changed") != NULL, "%s", why);

    /* deleted while bound: the next fetch finds it gone and makes it again from #9 */
    cr_assert_eq(js_DeleteConsumer(h.bus->js, "TEST_TAMPER", "reader", NULL, &jerr), NATS_OK);
    {
        uint64_t first = 0;
        for (int i = 0; i < 10 && !first; i++)
            first = take(&c, 4);
        cr_assert_eq(first, 9, "after a deletion it goes on from its own position");
    }
    cr_assert(pk_incident_recent(60000, why, sizeof(why)));
    cr_assert(strstr(why, "deleted") != NULL, "%s", why);
    pk_consumer_close(&c);
    h_stop(&h);
}

/* Fetch and acknowledge until *pos reaches last, each message the one after *pos. */
static void read_in_order(pk_consumer *c, uint64_t *pos, uint64_t last)
{
    natsMsgList list;

    for (int i = 0; i < 50 && *pos < last; i++) {
        if (pk_consumer_fetch(c, &list, 4, 500) != PK_OK)
            continue;
        for (int k = 0; k < list.Count; k++) {
            uint64_t seq = pk_msg_seq(list.Msgs[k]);
            cr_assert_eq(seq, *pos + 1, "handed #%llu after #%llu", (unsigned long long)seq,
                         (unsigned long long)*pos);
            *pos = seq;
            natsMsg_Ack(list.Msgs[k], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    cr_assert_eq(*pos, last);
}

/* --- a delivery lost on its way (the connection dropped with a node) --------------------- */

Test(bus, a_delivery_lost_on_its_way_is_read_again_before_anything_newer, .timeout = 120)
{
    jsErrCode jerr = 0;
    pk_consumer c;
    natsMsgList list;
    h_env h;

    cr_assert(h_start(&h, false), "nats-server did not start");
    cr_assert(h_test_stream(&h, "TEST_LOST", "test.lost", 12));
    applied = 0;
    cr_assert_eq(pk_consumer_open_ordered(&c, h.bus, "TEST_LOST", "reader", "test.lost", 4, 30000,
                                          position, NULL),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(take(&c, 2), 1);
    cr_assert_eq(applied, 2);
    /* #3 is handed out on a pull request whose connection is gone: it never arrives, and the
     * server will hand it out again only after the ack wait (30 s), while newer ones flow */
    {
        natsSubscription *sub = NULL;
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = "TEST_LOST";
        so.Consumer = "reader";
        cr_assert_eq(js_PullSubscribe(&sub, h.bus->js, "test.lost", "reader", NULL, &so, &jerr),
                     NATS_OK);
        cr_assert_eq(natsSubscription_Fetch(&list, sub, 1, 2000, &jerr), NATS_OK);
        cr_assert_eq(pk_msg_seq(list.Msgs[0]), 3);
        natsMsgList_Destroy(&list); /* not acknowledged */
        natsSubscription_Destroy(sub);
    }
    /* the reader applies every message in order: #3 before #4, none skipped */
    read_in_order(&c, &applied, 12);
    pk_consumer_close(&c);
    h_stop(&h);
}

/* --- one acknowledgement for a batch ------------------------------------------------------ */

/* The consumer's acknowledgement policy (-1: not found), once its acknowledgements are in:
 * within 5 s none pending and its floor at floor (0: not checked). */
static int settled_policy(h_env *h, const char *stream, const char *name, uint64_t floor)
{
    for (int i = 0; i < 100; i++) {
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        int policy;
        bool settled;

        natsConnection_Flush(h->bus->nc);
        if (js_GetConsumerInfo(&ci, h->bus->js, stream, name, NULL, &jerr) != NATS_OK)
            return -1;
        policy = (int)ci->Config->AckPolicy;
        settled = ci->NumAckPending == 0 && (!floor || ci->AckFloor.Stream == floor);
        jsConsumerInfo_Destroy(ci);
        if (settled)
            return policy;
        pk_sleep_ms(50);
    }
    return -2; /* acknowledgements still pending */
}

/* Fetch exactly n (in up to 3 tries) and acknowledge them as a service does; the first. */
static uint64_t take_batch(pk_consumer *c, int n)
{
    natsMsgList list;
    uint64_t first = 0;

    for (int tries = 0; tries < 3 && !first; tries++) {
        if (pk_consumer_fetch(c, &list, n, 2000) != PK_OK)
            continue;
        cr_assert_eq(list.Count, n, "fetched %d of %d", list.Count, n);
        first = pk_msg_seq(list.Msgs[0]);
        applied = pk_msg_seq(list.Msgs[n - 1]);
        pk_consumer_ack(c, &list);
        natsMsgList_Destroy(&list);
    }
    return first;
}

Test(bus, a_leased_reader_acknowledges_a_batch_at_once_and_a_shared_durable_each_message,
     .timeout = 120)
{
    _Atomic int64_t until = INT64_MAX;
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    pk_consumer c;
    char why[256];
    h_env h;

    cr_assert(h_start(&h, false), "nats-server did not start");
    cr_assert(h_test_stream(&h, "TEST_ACKS", "test.acks", 40));

    /* a partition's durable made when each message had its own acknowledgement, read up to
     * #10: its leased reader makes it again from its own position, taking one per batch */
    jsConsumerConfig_Init(&cc);
    cc.Durable = "part";
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = "test.acks";
    cr_assert_eq(js_AddConsumer(&ci, h.bus->js, "TEST_ACKS", &cc, NULL, &jerr), NATS_OK);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    applied = 10;
    cr_assert_eq(pk_consumer_take_over(&c, h.bus, "TEST_ACKS", "part", "test.acks", 8, 30000,
                                       position, NULL, 0, &until),
                 PK_OK, "%s", pk_error_msg());
    cr_assert(c.ack_all);
    cr_assert_eq(take_batch(&c, 8), 11, "made again from the reader's position");
    cr_assert_eq(settled_policy(&h, "TEST_ACKS", "part", 18), js_AckAll,
                 "the batch #11-#18 acknowledged by one acknowledgement");
    cr_assert_eq(take_batch(&c, 8), 19);
    cr_assert_eq(settled_policy(&h, "TEST_ACKS", "part", 26), js_AckAll);
    pk_consumer_close(&c);

    /* a durable that readers share: every message of a batch acknowledged on its own, or
     * one reader's acknowledgement would cover another's batch */
    cr_assert_eq(pk_consumer_open(&c, h.bus, "TEST_ACKS", "shared", "test.acks", 0, 64, 30000),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_not(c.ack_all);
    cr_assert_eq(take_batch(&c, 8), 1);
    cr_assert_eq(settled_policy(&h, "TEST_ACKS", "shared", 8), js_AckExplicit,
                 "each of #1-#8 acknowledged");
    pk_consumer_close(&c);

    /* someone makes the shared durable take one acknowledgement for all before it: an
     * incident, and it is made again as it was */
    cr_assert_eq(js_DeleteConsumer(h.bus->js, "TEST_ACKS", "shared", NULL, &jerr), NATS_OK);
    jsConsumerConfig_Init(&cc);
    cc.Durable = "shared";
    cc.AckPolicy = js_AckAll;
    cc.FilterSubject = "test.acks";
    cr_assert_eq(js_AddConsumer(&ci, h.bus->js, "TEST_ACKS", &cc, NULL, &jerr), NATS_OK);
    jsConsumerInfo_Destroy(ci);
    cr_assert_eq(pk_consumer_open(&c, h.bus, "TEST_ACKS", "shared", "test.acks", 0, 64, 30000),
                 PK_OK, "%s", pk_error_msg());
    cr_assert(pk_incident_recent(60000, why, sizeof(why)), "a changed consumer is an incident");
    cr_assert(strstr(why, "acknowledgement") != NULL, "%s", why);
    cr_assert_not(c.ack_all);
    cr_assert_eq(settled_policy(&h, "TEST_ACKS", "shared", 0), js_AckExplicit);
    pk_consumer_close(&c);
    h_stop(&h);
}

/* --- a reader whose lease lapsed, and the instance that takes the partition over ------- */

static uint64_t next_applied; /* the next holder's own position */

static pk_status next_position(void *ctx, uint64_t *out)
{
    (void)ctx;
    *out = next_applied;
    return PK_OK;
}

Test(bus, a_reader_whose_lease_lapsed_reads_nothing_more_and_the_next_holder_misses_nothing,
     .timeout = 120)
{
    pk_consumer old_holder, next_holder;
    _Atomic int64_t old_until = INT64_MAX, next_until = INT64_MAX;
    natsMsgList list;
    h_env h;

    cr_assert(h_start(&h, false), "nats-server did not start");
    cr_assert(h_test_stream(&h, "TEST_LEASE", "test.lease", 30));
    applied = 0;
    cr_assert_eq(pk_consumer_take_over(&old_holder, h.bus, "TEST_LEASE", "part", "test.lease", 4,
                                       30000, position, NULL, 0, &old_until),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(take(&old_holder, 4), 1);
    cr_assert_not(pk_consumer_fenced(&old_holder));

    /* its lease is not renewed in time (the bucket was slow): past its deadline ... */
    atomic_store(&old_until, pk_mono_ms() - 1);
    cr_assert(pk_consumer_fenced(&old_holder));
    /* ... another instance takes the partition over, from its own (empty) position */
    next_applied = 0;
    cr_assert_eq(pk_consumer_take_over(&next_holder, h.bus, "TEST_LEASE", "part", "test.lease", 4,
                                       30000, next_position, NULL, applied, &next_until),
                 PK_OK, "%s", pk_error_msg());
    /* the old holder, still running, must not take a share of the new holder's consumer */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(pk_consumer_fetch(&old_holder, &list, 4, 200), PK_ECONFLICT,
                     "a reader past its lease fetched");
        cr_assert_eq(list.Count, 0);
    }
    /* the new holder sees every message, in order, none missing; the old one tries again */
    read_in_order(&next_holder, &next_applied, 30);
    cr_assert_neq(pk_consumer_fetch(&old_holder, &list, 4, 50), PK_OK);
    pk_consumer_close(&old_holder);
    pk_consumer_close(&next_holder);
    h_stop(&h);
}

/* --- a lease that cannot be renewed ------------------------------------------------------ */

typedef struct lease_probe {
    _Atomic int64_t until;    /* the last deadline the leases gave (0 not counted) */
    atomic_int starts, stops; /* partition 0 started, stopped */
    atomic_bool blind_start;  /* started with no deadline ahead */
    atomic_bool fenced_off;   /* given deadline 0 (let go) */
} lease_probe;

static pk_status probe_start(void *ctx, uint32_t p, uint64_t from)
{
    lease_probe *lp = ctx;

    (void)p;
    (void)from;
    if (atomic_load(&lp->until) <= pk_mono_ms())
        atomic_store(&lp->blind_start, true);
    atomic_fetch_add(&lp->starts, 1);
    return PK_OK;
}

static void probe_stop(void *ctx, uint32_t p)
{
    (void)p;
    atomic_fetch_add(&((lease_probe *)ctx)->stops, 1);
}

static uint64_t probe_position(void *ctx, uint32_t p)
{
    (void)ctx;
    (void)p;
    return 0;
}

static void probe_fence(void *ctx, uint32_t p, int64_t until)
{
    lease_probe *lp = ctx;

    (void)p;
    if (until)
        atomic_store(&lp->until, until);
    else
        atomic_store(&lp->fenced_off, true);
}

Test(bus, a_lease_that_cannot_be_renewed_stops_its_partition_before_it_could_expire, .timeout = 120)
{
    lease_probe lp = {0};
    pk_lease_cfg cfg = {.service = "tester",
                        .instance = "one",
                        .partitions = 1,
                        .ttl_ms = 8000,
                        .start = probe_start,
                        .stop = probe_stop,
                        .position = probe_position,
                        .fence = probe_fence,
                        .ctx = &lp};
    pk_leases *l = NULL;
    int64_t first, renewed, cut, last;
    h_env h;

    cr_assert(h_start(&h, false), "nats-server did not start");
    cr_assert_eq(pk_leases_start(&l, h.bus, &cfg), PK_OK, "%s", pk_error_msg());
    cr_assert_eq(atomic_load(&lp.starts), 1, "the only instance did not take the partition");
    cr_assert_not(atomic_load(&lp.blind_start), "started before its deadline was set");
    first = atomic_load(&lp.until);
    cr_assert_geq(first - pk_mono_ms(), 8000 - PK_LEASE_MARGIN_MS - 1000,
                  "the deadline is not the lease's ttl less the margin");
    cr_assert_leq(first - pk_mono_ms(), 8000 - PK_LEASE_MARGIN_MS);
    pk_sleep_ms(2500);
    renewed = atomic_load(&lp.until);
    cr_assert_geq(renewed - first, 1500, "renewals did not move the deadline");

    /* the bucket goes away: nothing can be renewed any more */
    cr_assert_eq(js_DeleteKeyValue(h.bus->js, PK_LEASE_BUCKET), NATS_OK);
    cut = pk_mono_ms();
    for (int i = 0; i < 200 && !atomic_load(&lp.stops); i++)
        pk_sleep_ms(50);
    last = pk_mono_ms();
    cr_assert_eq(atomic_load(&lp.stops), 1, "the partition was still served 10 s later");
    cr_assert(atomic_load(&lp.fenced_off), "stopped without its deadline being withdrawn");
    /* the deadline never moved past the last renewal, and the partition stopped by then */
    cr_assert_leq(atomic_load(&lp.until), cut + 8000 - PK_LEASE_MARGIN_MS,
                  "the deadline moved without a renewal");
    cr_assert_leq(last, cut + 8000 - PK_LEASE_MARGIN_MS + 1200,
                  "stopped %lld ms after the last renewal could have been",
                  (long long)(last - cut));
    pk_leases_stop(l);
    h_stop(&h);
}

Test(bus, a_seed_list_connects_through_a_dead_first_seed, .timeout = 60)
{
    h_env h;
    char seeds[300];
    pk_bus *bus;

    cr_assert(h_start(&h, false), "nats-server did not start (logs in %s)", h.dir);
    /* the first seed listens nowhere; the second is the server */
    snprintf(seeds, sizeof(seeds), "nats://127.0.0.1:%d, %s", h_free_port(), h.url);
    bus = h_connect(seeds, "seeds", true);
    cr_assert_not_null(bus, "a client with a seed list could not connect: %s", pk_error_msg());
    pk_bus_close(bus);
    cr_assert_null(h_connect("nats://127.0.0.1:1,,", "bad", true),
                   "a list naming no usable server connected");
    h_stop(&h);
}

Test(bus, a_partition_is_served_by_one_instance_and_a_second_pin_is_refused, .timeout = 120)
{
    h_env h;
    char cmd[600], out[4096] = "";
    const char *const pinned[] = {"PACTUM_EVALUATOR_PARTITIONS=all", "PACTUM_INSTANCE=first", NULL};
    const char *const second[] = {"PACTUM_EVALUATOR_PARTITIONS=1-2", "PACTUM_INSTANCE=second",
                                  NULL};
    int slot, status = -1;
    FILE *f;

    cr_assert(h_start(&h, false), "nats-server did not start (logs in %s)", h.dir);
    cr_assert(h_start_service(&h, 1, pinned), "the first evaluator did not start");
    slot = h_start_instance(&h, 1, "second", second);
    cr_assert_geq(slot, 0);
    /* bounded: the second exits by itself, refused */
    for (int i = 0; i < 200 && status < 0; i++) {
        int st;
        if (waitpid(h.extra_pid[slot], &st, WNOHANG) == h.extra_pid[slot])
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        else
            pk_sleep_ms(50);
    }
    if (status >= 0)
        h.extra_pid[slot] = 0;
    cr_assert_eq(status, 2, "a second instance pinned to served partitions was not refused");
    snprintf(cmd, sizeof(cmd), "%s/second.log", h.dir);
    f = fopen(cmd, "r");
    cr_assert_not_null(f);
    cr_assert_gt(fread(out, 1, sizeof(out) - 1, f), 0);
    fclose(f);
    cr_assert(strstr(out, "is served by first") != NULL, "%s", out);
    h_stop(&h);
}

/* --- a registry record whose notice came before the stream stored it ------------------- */

/* Append an agent record to the registry stream, as the registrar does. */
static void store_agent(h_env *h, const char *id)
{
    Pactum__V1__AgentRecord a = PACTUM__V1__AGENT_RECORD__INIT;
    Pactum__V1__RegistryRecord r = PACTUM__V1__REGISTRY_RECORD__INIT;
    uint8_t key[PK_PUBKEY_BYTES], *buf = NULL;
    char subject[PK_ID_MAX + 32];
    size_t len = 0;

    memset(key, 7, sizeof(key));
    a.agent_id = (char *)id;
    a.agent_key = (ProtobufCBinaryData){.data = key, .len = sizeof(key)};
    a.role = PACTUM__V1__ROLE__ROLE_AGENT;
    r.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT;
    r.agent = &a;
    cr_assert_eq(pk_pack(&r.base, &buf, &len), PK_OK);
    snprintf(subject, sizeof(subject), PK_SUBJ_REG_AGENT, id);
    cr_assert_eq(pk_bus_publish_sync(h->bus, subject, buf, len, NULL, false, 0, NULL, NULL), PK_OK,
                 "%s", pk_error_msg());
    free(buf);
}

static bool has_agent(pk_store *store, pk_registry *reg, const char *id)
{
    Pactum__V1__AgentRecord *rec = NULL;
    MDB_txn *txn = NULL;
    pk_status st;

    cr_assert_eq(pk_txn_begin(store, false, &txn), PK_OK);
    st = pk_registry_agent(reg, txn, id, &rec, NULL);
    pk_txn_abort(txn);
    if (rec)
        pactum__v1__agent_record__free_unpacked(rec, NULL);
    return st == PK_OK;
}

/* A nats-server with the streams, and a registry copy of its own in a fresh store. */
static void registry_copy(h_env *h, pk_store **store, pk_registry **reg)
{
    uint32_t partitions = 1;
    char dir[300];

    cr_assert(h_start(h, false), "nats-server did not start");
    cr_assert_eq(pk_streams_ensure(h->bus, &partitions), PK_OK, "%s", pk_error_msg());
    snprintf(dir, sizeof(dir), "%s/view", h->dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(pk_store_open(store, dir, 16, 8), PK_OK);
    cr_assert_eq(pk_registry_open(reg, *store, h->bus), PK_OK);
}

Test(bus, a_registry_record_whose_notice_came_before_the_stream_stored_it_is_still_read,
     .timeout = 60)
{
    pk_store *store = NULL;
    pk_registry *reg = NULL;
    h_env h;

    registry_copy(&h, &store, &reg);
    cr_assert_eq(pk_registry_sync(reg, 0), PK_OK);

    /* the notice arrives, a sync runs at once and finds nothing yet, then the record is stored */
    pk_registry_notified(reg);
    cr_assert_eq(pk_registry_sync_if_dirty(reg), PK_OK);
    cr_assert_not(has_agent(store, reg, "late-bot"));
    store_agent(&h, "late-bot");
    /* the next pass of the follower, or a lookup that missed, reads it */
    cr_assert_eq(pk_registry_sync_if_dirty(reg), PK_OK);
    cr_assert(has_agent(store, reg, "late-bot"),
              "the record stored after its notice was never read into the copy");

    /* a notice whose record never comes costs a few reads, not one every pass for ever */
    pk_registry_notified(reg);
    cr_assert_eq(pk_registry_sync_if_dirty(reg), PK_OK);
    pk_sleep_ms(PK_REGISTRY_NOTICE_MS + 100);
    cr_assert_eq(pk_registry_sync_if_dirty(reg), PK_OK);
    cr_assert_not(atomic_load(&reg->dirty), "the copy stays dirty after the notice's time");

    pk_registry_close(reg);
    pk_store_close(store);
    h_stop(&h);
}

Test(bus, a_lookup_that_misses_right_after_a_sync_still_reads_what_was_stored_before_it,
     .timeout = 60)
{
    pk_store *store = NULL;
    pk_registry *reg = NULL;
    unsigned long before;
    h_env h;

    registry_copy(&h, &store, &reg);

    /* a sync has just run; an agent is registered (stored, its registrant answered) and asked
     * about before any notice of it: the lookup misses, and must find it, not call it unknown */
    cr_assert_eq(pk_registry_sync(reg, 0), PK_OK);
    store_agent(&h, "fresh-bot");
    cr_assert_eq(pk_registry_refresh(reg, 50), PK_OK, "%s", pk_error_msg());
    cr_assert(has_agent(store, reg, "fresh-bot"),
              "a record stored before the lookup was not read: a registered agent is unknown");

    /* a flood of misses (ids nobody registered) costs a bounded number of reads */
    {
        int64_t t0 = pk_mono_ms(), secs;
        unsigned long reads, most;
        before = atomic_load(&reg->syncs);
        for (int i = 0; i < 2000; i++)
            cr_assert_eq(pk_registry_refresh(reg, 50), PK_OK);
        secs = (pk_mono_ms() - t0) / 1000 + 1;
        reads = atomic_load(&reg->syncs) - before;
        /* the burst, then the bucket's rate and one a min_interval (50 ms) */
        most = PK_REGISTRY_REFRESH_BURST + (unsigned long)secs * (PK_REGISTRY_REFRESH_PER_S + 20);
        cr_assert_leq(reads, most, "%lu reads for 2000 misses in under %lld s", reads,
                      (long long)secs);
        cr_assert_lt(reads, 1000, "%lu reads for 2000 misses", reads);
    }

    pk_registry_close(reg);
    pk_store_close(store);
    h_stop(&h);
}
