/*
 * Faults: a steady stream of signed events through the running suite while,
 * mid-stream, each service is killed with SIGKILL and restarted, and
 * nats-server is stopped and restarted on the same store. Afterwards nothing
 * may be lost or counted twice: every event sent is in PACTUM_EVENTS exactly
 * once, every clause has judged each event once, the live scorer's state
 * equals a replay of the recorded history, and the transparency log holds
 * one leaf per source message. A second test fills the ingest LMDB map: the
 * service must stop consuming with a clear error, not acknowledge and drop.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"

#define EVENTS 2400

static h_env h;
static pk_keypair agent, owner;
static char out[65536];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

static const char *pact =
    "{\"pactum\":1,\"id\":\"steady\",\"agent\":\"steady-bot\",\"clauses\":["
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
    "\"threshold\":2000,\"min_samples\":1},"
    "{\"id\":\"no-pii\",\"promise\":\"no "
    "leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\",\"window\":\"1d\","
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}}]}";

/* every evaluation reported at once, so the counts can be compared exactly */
static const char *const eval_env[] = {"PACTUM_EVALUATOR_REPORT_EVERY=1", NULL};
/* one agent sends faster than a signer may by default: what is measured here is what
 * faults lose, not what the rate limit refuses (test_abuse.c covers that) */
static const char *const ingest_env[] = {"PACTUM_INGEST_RATE=0", NULL};

static const char *const *env_of(int service)
{
    return service == 1 ? eval_env : service == 0 ? ingest_env : NULL;
}

static void setup(void)
{
    cr_assert(h_start(&h, false), "nats-server did not start (logs in %s)", h.dir);
    for (int i = 0; i < H_SERVICES; i++)
        cr_assert(h_start_service(&h, i, env_of(i)), "%s did not start", h_service_names[i]);
    cr_assert(h_agent_with_pact(&h, "steady-bot", 51, &agent, &owner, pact), "%s", h.why);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 600);

/* --- the steady stream ------------------------------------------------------------ */

typedef struct stream {
    atomic_int sent;     /* events stored in PACTUM_RAW (acknowledged) */
    atomic_int retries;  /* publish attempts that failed and were repeated */
    atomic_int dup_acks; /* publishes JetStream recognised as duplicates */
    atomic_bool failed;  /* an event could not be stored within its bound */
    int n;
} stream;

/* Publish n events, one per envelope, each retried (same message id) until stored. */
static void *publisher(void *arg)
{
    stream *s = arg;
    pk_bus *bus = NULL;

    if (!(bus = h_connect(h.url, "fault-publisher", true))) {
        atomic_store(&s->failed, true);
        return NULL;
    }
    for (int i = 0; i < s->n; i++) {
        Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT;
        Pactum__V1__Label l = PACTUM__V1__LABEL__INIT;
        pk_event_msg ev, *evp = &ev;
        char id[32], msg_id[64];
        uint8_t *env;
        size_t len;
        bool stored = false;

        m.name = "latency_ms";
        m.value = 400 + i % 100;
        l.name = "pii";
        l.value = "none";
        snprintf(id, sizeof(id), "f-%d", i);
        h_event_init(&ev, id, "steady-bot", "reply", &m, &l);
        env = h_envelope("steady-bot", &agent, &evp, 1, &len);
        snprintf(msg_id, sizeof(msg_id), "steady-bot:%s:1", id);
        /* bounded: 40 s of retries per event (nats-server may be down a while) */
        for (int attempt = 0; attempt < 400 && !stored; attempt++) {
            bool dup = false;
            if (pk_bus_publish_sync(bus, "pactum.raw.steady-bot", env, len, msg_id, false, 0, NULL,
                                    &dup) == PK_OK) {
                stored = true;
                if (dup)
                    atomic_fetch_add(&s->dup_acks, 1);
            } else {
                atomic_fetch_add(&s->retries, 1);
                pk_sleep_ms(100);
            }
        }
        free(env);
        if (!stored) {
            atomic_store(&s->failed, true);
            break;
        }
        atomic_fetch_add(&s->sent, 1);
        pk_sleep_ms(4); /* about 150 events a second, with signing */
    }
    pk_bus_close(bus);
    return NULL;
}

static void wait_sent(stream *s, int n)
{
    int64_t deadline = pk_mono_ms() + 120000;

    while (atomic_load(&s->sent) < n && !atomic_load(&s->failed) && pk_mono_ms() < deadline)
        pk_sleep_ms(20);
    cr_assert_geq(atomic_load(&s->sent), n, "the stream stalled at %d", atomic_load(&s->sent));
}

/* Every event id of PACTUM_EVENTS, read through an ordered consumer: counts per id. */
/* What reading PACTUM_EVENTS found: each event of the stream, and the others. */
typedef struct event_tally {
    int *seen, n;       /* times each f-<k> was seen, k < n */
    int total, foreign; /* events, and events not of the stream */
} event_tally;

static bool count_event(void *ctx, natsMsg *m)
{
    event_tally *t = ctx;
    pk_event_msg *ev = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                 (const uint8_t *)natsMsg_GetData(m));
    int k;

    t->total++;
    if (ev && sscanf(ev->event_id, "f-%d", &k) == 1 && k >= 0 && k < t->n)
        t->seen[k]++;
    else
        t->foreign++;
    if (ev)
        pactum__v1__event__free_unpacked(ev, NULL);
    return true;
}

static void read_events(int *seen, int n, int *total, int *foreign)
{
    event_tally t = {.seen = seen, .n = n};

    cr_assert(h_read_stream(&h, PK_STREAM_EVENTS, "pactum.events.>", count_event, &t), "%s",
              pk_error_msg());
    *total = t.total;
    *foreign = t.foreign;
}

/* Evaluations of each clause in PACTUM_VERDICTS (the sum of their tallies), and verdicts. */
static int judged[EVENTS]; /* verdicts citing each event */

typedef struct verdict_tally {
    uint64_t *evals; /* [0] latency, [1] the other clause */
    int verdicts;    /* verdicts read */
} verdict_tally;

static bool count_verdict(void *ctx, natsMsg *m)
{
    verdict_tally *t = ctx;
    pk_verdict_msg *v = pactum__v1__verdict__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                    (const uint8_t *)natsMsg_GetData(m));

    if (!v)
        return true;
    t->verdicts++;
    for (size_t k = 0; k < v->n_evidence; k++) {
        int e;
        if (sscanf(v->evidence[k]->event_id, "f-%d", &e) == 1 && e >= 0 && e < EVENTS)
            judged[e]++;
    }
    for (size_t k = 0; k < v->n_tally; k++)
        t->evals[strcmp(v->clause_id, "latency") == 0 ? 0 : 1] +=
            v->tally[k]->pass + v->tally[k]->fail;
    pactum__v1__verdict__free_unpacked(v, NULL);
    return true;
}

static void read_verdicts(uint64_t evals[2], int *verdicts)
{
    verdict_tally t = {.evals = evals};

    evals[0] = evals[1] = 0;
    cr_assert(h_read_stream(&h, PK_STREAM_VERDICTS, "pactum.verdicts.>", count_verdict, &t), "%s",
              pk_error_msg());
    *verdicts = t.verdicts;
}

static uint64_t stream_msgs(const char *name)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t n;

    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, name, NULL, &jerr), NATS_OK,
                 "cannot read stream %s (%d)", name, (int)jerr);
    n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/* The oracle's HTTP health status, polled (bounded) until it is `want`; the last one seen. */
static int http_health_code(int want, int timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;
    int code = 0;

    do {
        char cmd[256], buf[8] = "";
        FILE *p;
        snprintf(cmd, sizeof(cmd),
                 "curl -s -m 2 -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/v1/health",
                 h.http_port);
        if ((p = popen(cmd, "r"))) {
            if (fgets(buf, sizeof(buf), p))
                code = atoi(buf);
            pclose(p);
        }
        if (code == want)
            break;
        pk_sleep_ms(100);
    } while (pk_mono_ms() < deadline);
    return code;
}

Test(faults, nothing_lost_or_counted_twice_through_kills_and_a_server_restart)
{
    static const struct {
        int at;      /* events sent before the fault */
        int service; /* index in h_service_names, or -1 for nats-server */
    } plan[] = {{250, 0}, {550, 1}, {850, 2}, {1150, 3}, {1450, -1}, {1750, 0}, {1950, 2}};
    stream s = {.n = EVENTS};
    pthread_t t;
    int *seen = calloc(EVENTS, sizeof(int)), total = 0, foreign = 0, lost = 0, twice = 0;
    int64_t t0 = pk_mono_ms(), deadline;
    Pactum__V1__TrustReport *r = NULL;
    char live[80] = "", replayed[80] = "";

    cr_assert_not_null(seen);
    cr_assert_eq(pthread_create(&t, NULL, publisher, &s), 0);
    for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
        int64_t f0;
        wait_sent(&s, plan[i].at);
        f0 = pk_mono_ms();
        if (plan[i].service < 0) {
            /* while the bus is down, the oracle says so over HTTP */
            h_stop_nats(&h, SIGTERM);
            cr_assert(http_health_code(503, 5000) == 503,
                      "the oracle did not report the lost bus over HTTP");
            cr_assert(h_start_nats(&h), "nats-server did not come back");
            for (int k = 0; k < H_SERVICES; k++)
                cr_assert(h_wait_healthy(&h, h_service_names[k], 30000),
                          "%s did not recover from the server restart", h_service_names[k]);
        } else {
            cr_assert(h_restart_service(&h, plan[i].service, SIGKILL, env_of(plan[i].service)),
                      "%s did not come back after SIGKILL", h_service_names[plan[i].service]);
        }
        printf("fault %zu: %-22s at %4d events sent, back after %lld ms\n", i + 1,
               plan[i].service < 0 ? "nats-server restarted" : h_service_names[plan[i].service],
               plan[i].at, (long long)(pk_mono_ms() - f0));
        if (plan[i].service >= 0)
            printf("         (SIGKILL of %s)\n", h_service_names[plan[i].service]);
        else {
            int code = http_health_code(200, 10000);
            printf("         (the oracle answered 503 over HTTP while the bus was down, 200 "
                   "after: %d)\n",
                   code);
            cr_assert_eq(code, 200, "the oracle's health did not come back after the restart");
        }
    }
    pthread_join(t, NULL);
    cr_assert_not(atomic_load(&s.failed), "an event could not be published");
    cr_assert_eq(atomic_load(&s.sent), EVENTS);

    /* wait (bounded) until both clauses have judged every event */
    deadline = pk_mono_ms() + 60000;
    for (;;) {
        bool done = false;
        r = h_trust(&h, "steady-bot");
        if (r && r->state && r->state->n_clauses == 2)
            done = r->state->clauses[0]->passes + r->state->clauses[0]->fails >= EVENTS &&
                   r->state->clauses[1]->passes + r->state->clauses[1]->fails >= EVENTS;
        if (done || pk_mono_ms() > deadline)
            break;
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(200);
    }
    /* every event sent is in PACTUM_EVENTS exactly once */
    read_events(seen, EVENTS, &total, &foreign);
    for (int i = 0; i < EVENTS; i++) {
        lost += seen[i] == 0;
        twice += seen[i] > 1;
    }
    cr_assert_eq(foreign, 0);
    cr_assert_eq(lost, 0, "%d events lost", lost);
    cr_assert_eq(twice, 0, "%d events accepted twice", twice);
    cr_assert_eq(total, EVENTS);
    cr_assert_eq(stream_msgs(PK_STREAM_REJECTED), 0, "nothing was refused");

    {
        uint64_t evals[2];
        int verdicts;
        read_verdicts(evals, &verdicts);
        printf("stream:  %d verdicts holding %llu latency and %llu no-pii evaluations\n", verdicts,
               (unsigned long long)evals[0], (unsigned long long)evals[1]);
        int off = 0;
        for (int i = 0; i < EVENTS; i++) {
            if (judged[i] != 2) {
                printf("         event f-%d is cited by %d verdicts, not 2\n", i, judged[i]);
                off++;
            }
        }
        /* a loss and a double count of two events would cancel out in the totals */
        cr_assert_eq(off, 0, "%d events were not judged once by each clause", off);
        cr_assert_eq(evals[0], EVENTS, "the evaluator reported %llu latency evaluations",
                     (unsigned long long)evals[0]);
        cr_assert_eq(evals[1], EVENTS, "the evaluator reported %llu no-pii evaluations",
                     (unsigned long long)evals[1]);
    }
    cr_assert_not_null(r);
    cr_assert_eq(r->state->n_clauses, 2);
    for (size_t i = 0; i < 2; i++) {
        const Pactum__V1__ClauseScore *c = r->state->clauses[i];
        cr_assert_eq(c->passes, EVENTS, "%s judged %llu times for %d events", c->clause_id,
                     (unsigned long long)c->passes, EVENTS);
        cr_assert_eq(c->fails, 0);
    }
    cr_assert_eq(r->state->evidence, 2 * EVENTS, "no evaluation counted twice");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the live state equals a replay of the recorded history */
    cr_assert_eq(cli("replay --compare"), 0, "%s", out);
    sscanf(strstr(out, "digest") ? strstr(out, "digest") : "", "digest %64s", replayed);
    sscanf(strstr(out, "live") ? strstr(out, "live") : "", "live %64s", live);
    cr_assert_str_eq(live, replayed);

    /* the log: one leaf per source message, after the oracle was killed mid-stream */
    {
        uint64_t want = stream_msgs(PK_STREAM_REGISTRY) + stream_msgs(PK_STREAM_EVENTS) +
                        stream_msgs(PK_STREAM_VERDICTS) + stream_msgs(PK_STREAM_TRUST) +
                        stream_msgs(PK_STREAM_AUDIT);
        uint64_t size = 0;
        deadline = pk_mono_ms() + 60000;
        while (pk_mono_ms() < deadline) {
            Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
            Pactum__V1__LogAnswer *a;
            Pactum__V1__TreeHead *th = NULL;
            q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_HEAD;
            a = (Pactum__V1__LogAnswer *)h_ask(&h, PK_SUBJ_ORACLE_LOG, &q.base,
                                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER);
            if (a && pk_answer_open(a->head.data, a->head.len,
                                    PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                                    &pactum__v1__tree_head__descriptor, NULL, NULL,
                                    (ProtobufCMessage **)&th) == PK_OK) {
                size = th->size;
                pactum__v1__tree_head__free_unpacked(th, NULL);
            }
            if (a)
                pactum__v1__log_answer__free_unpacked(a, NULL);
            if (size >= want)
                break;
            pk_sleep_ms(200);
        }
        cr_assert_eq(size, want, "log leaves %llu, source messages %llu", (unsigned long long)size,
                     (unsigned long long)want);
        printf("log:     %llu leaves for %llu source messages\n", (unsigned long long)size,
               (unsigned long long)want);
    }
    printf("events:  sent %d, accepted %d, rejected %llu, lost %d, accepted twice %d "
           "(%d publish retries, %d duplicate publishes dropped by the stream) in %lld ms\n",
           atomic_load(&s.sent), total, (unsigned long long)stream_msgs(PK_STREAM_REJECTED), lost,
           twice, atomic_load(&s.retries), atomic_load(&s.dup_acks),
           (long long)(pk_mono_ms() - t0));
    printf("digests: live %s\n         replay %s\n", live, replayed);
    fflush(stdout);
    free(seen);
    cr_assert_eq(h_stop_services(&h), 0, "every service exits cleanly at the end");
}

Test(faults, a_full_lmdb_map_stops_ingest_without_dropping_anything)
{
    const char *tiny[] = {"PACTUM_LMDB_MAP_MB=1", "PACTUM_INGEST_RATE=0", NULL};
    char health[256] = "";
    int sent = 0, total = 0, foreign = 0, lost = 0;
    int *seen = calloc(20000, sizeof(int));
    bool full = false;

    cr_assert_not_null(seen);
    cr_assert(h_restart_service(&h, 0, SIGTERM, tiny));
    /* batches of 100 events until ingest says its map is full (bounded: 20,000 events) */
    for (int b = 0; b < 200 && !full; b++) {
        pk_event_msg evs[100], *evp[100];
        Pactum__V1__Label l = PACTUM__V1__LABEL__INIT;
        char ids[100][32];
        uint8_t *env;
        size_t len;
        l.name = "pii";
        l.value = "none";
        for (int i = 0; i < 100; i++) {
            snprintf(ids[i], sizeof(ids[i]), "f-%d", sent + i);
            h_event_init(&evs[i], ids[i], "steady-bot", "reply", NULL, &l);
            evp[i] = &evs[i];
        }
        env = h_envelope("steady-bot", &agent, evp, 100, &len);
        cr_assert(h_publish(&h, "pactum.raw.steady-bot", env, len));
        free(env);
        sent += 100;
        if (b % 5 == 4) {
            natsMsg *reply = NULL;
            pk_sleep_ms(300);
            if (natsConnection_Request(&reply, h.bus->nc, "pactum.health.ingest", "", 0, 2000) ==
                NATS_OK) {
                snprintf(health, sizeof(health), "%.*s", natsMsg_GetDataLength(reply),
                         natsMsg_GetData(reply));
                full = strstr(health, "\"healthy\":false") != NULL;
                natsMsg_Destroy(reply);
            }
        }
    }
    cr_assert(full, "ingest never reported a full map after %d events: %s", sent, health);
    cr_assert(strstr(health, "full") != NULL, "the health check says why: %s", health);
    printf("lmdb:    ingest stopped at a full 1 MiB map after %d events were sent: %s\n", sent,
           health);
    /* nothing was acknowledged and dropped: with room again, every event gets in */
    cr_assert(h_restart_service(&h, 0, SIGTERM, ingest_env));
    {
        int64_t deadline = pk_mono_ms() + 60000;
        while (stream_msgs(PK_STREAM_EVENTS) < (uint64_t)sent && pk_mono_ms() < deadline)
            pk_sleep_ms(200);
    }
    read_events(seen, 20000, &total, &foreign);
    for (int i = 0; i < sent; i++)
        lost += seen[i] != 1;
    cr_assert_eq(lost, 0, "%d events lost or doubled after the map filled", lost);
    cr_assert_eq(total, sent);
    printf("lmdb:    after a restart with room, %d of %d events accepted, none twice\n", total,
           sent);
    free(seen);
}

/* The first stream sequence of a fetch from c (0 if nothing came). */
static uint64_t first_seq(pk_consumer *c, int n, int ack)
{
    natsMsgList list;
    uint64_t seq = 0;

    if (pk_consumer_fetch(c, &list, n, 2000) != PK_OK)
        return 0;
    seq = pk_msg_seq(list.Msgs[0]);
    for (int i = 0; i < ack && i < list.Count; i++)
        natsMsg_Ack(list.Msgs[i], NULL);
    natsMsgList_Destroy(&list);
    return seq;
}

Test(faults, a_reader_restarted_mid_batch_reads_again_from_the_first_unacknowledged)
{
    pk_consumer c;

    cr_assert(h_test_stream(&h, "TEST_ORDER", "test.order", 10));

    /* a reader takes 4, applies and acknowledges 2, and dies */
    cr_assert_eq(pk_consumer_open_ordered(&c, h.bus, "TEST_ORDER", "reader", "test.order", 8, 30000,
                                          NULL, NULL),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(first_seq(&c, 4, 2), 1);
    pk_consumer_close(&c);
    for (int i = 0; i < 5; i++)
        cr_assert(h_publish(&h, "test.order", (const uint8_t *)"m", 1));

    /* bound as it was, the server hands out newer messages before #3 and #4 */
    cr_assert_eq(pk_consumer_open(&c, h.bus, "TEST_ORDER", "reader", "test.order", 0, 8, 30000),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(first_seq(&c, 2, 0), 5, "the hazard the ordered binding exists for");
    pk_consumer_close(&c);

    /* bound in order, it starts again at the first unacknowledged message */
    cr_assert_eq(pk_consumer_open_ordered(&c, h.bus, "TEST_ORDER", "reader", "test.order", 8, 30000,
                                          NULL, NULL),
                 PK_OK, "%s", pk_error_msg());
    cr_assert_eq(first_seq(&c, 4, 4), 3);
    cr_assert_eq(first_seq(&c, 4, 4), 7, "then on in order");
    pk_consumer_close(&c);
}
