/*
 * A cluster: three nats-servers with every stream on three replicas, two
 * evaluators and two scorers sharing the partitions by lease, two oracles.
 * While a steady stream of signed events flows, each nats node is killed
 * (SIGKILL) and brought back in turn, the next once the last has caught up; then a scorer and an
 * evaluator are killed, the other instance takes their partitions over, and they are started again
 * from empty folders (their share rebuilt from the retained streams without publishing twice).
 * Afterwards nothing may be lost or counted twice, every partition's live state must equal a replay
 * gathered from both scorers, and the figures are printed: events, the longest stall of any
 * partition, the takeover times.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "pk/clock.h"

#define EVENTS 2400
#define AGENTS 4 /* one per partition */

static h_env h;
static pk_keypair agent[AGENTS], owner[AGENTS];
static char name[AGENTS][32];
static char out[65536];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

#define PACT_FMT                                                                                   \
    "{\"pactum\":1,\"id\":\"steady-%d\",\"agent\":\"%s\",\"clauses\":["                            \
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","       \
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","            \
    "\"threshold\":2000,\"min_samples\":1}]}"

static const char *const eval_a[] = {"PACTUM_EVALUATOR_REPORT_EVERY=1",
                                     "PACTUM_INSTANCE=evaluator-a", NULL};
static const char *const eval_b[] = {"PACTUM_EVALUATOR_REPORT_EVERY=1",
                                     "PACTUM_INSTANCE=evaluator-b", NULL};
static const char *const scorer_a[] = {"PACTUM_INSTANCE=scorer-a", NULL};
static const char *const scorer_b[] = {"PACTUM_INSTANCE=scorer-b", NULL};
static const char *const ingest_env[] = {"PACTUM_INGEST_RATE=0", NULL};
static int slot_eval_b, slot_scorer_b;

static int64_t wait_served(const char *service, const char *instance, int want, int64_t bound_ms);

static void setup(void)
{
    uint32_t covered = 0;

    cr_assert(h_start_cluster(&h, 3), "the cluster did not start (logs in %s)", h.dir);
    cr_assert(h_start_service(&h, 0, ingest_env), "ingest did not start");
    cr_assert(h_start_service(&h, 1, eval_a), "evaluator a did not start");
    cr_assert(h_start_service(&h, 2, scorer_a), "scorer a did not start");
    cr_assert(h_start_service(&h, 3, NULL), "oracle a did not start");
    cr_assert_geq(slot_eval_b = h_start_instance(&h, 1, "evaluator-b", eval_b), 0);
    cr_assert_geq(slot_scorer_b = h_start_instance(&h, 2, "scorer-b", scorer_b), 0);
    cr_assert_geq(h_start_instance(&h, 3, "oracle-b", NULL), 0);
    /* the second instances take their share from the first */
    cr_assert_geq(wait_served("evaluator", "evaluator-b", 2, 20000), 0, "evaluators unbalanced");
    cr_assert_geq(wait_served("scorer", "scorer-b", 2, 20000), 0, "scorers unbalanced");
    /* one agent in each partition */
    for (int k = 0, found = 0; found < AGENTS && k < 1000; k++) {
        char id[32];
        uint32_t p;
        snprintf(id, sizeof(id), "steady-%d", k);
        p = pk_partition_of(id, 4);
        if (covered & (1u << p))
            continue;
        covered |= 1u << p;
        snprintf(name[found], sizeof(name[found]), "%s", id);
        found++;
    }
    for (int i = 0; i < AGENTS; i++) {
        char pact[1024];
        snprintf(pact, sizeof(pact), PACT_FMT, i, name[i]);
        cr_assert(h_agent_with_pact(&h, name[i], (uint8_t)(61 + 2 * i), &agent[i], &owner[i], pact),
                  "%s", h.why);
    }
}

static void stop_threads(void);

static void teardown(void)
{
    stop_threads();
    h_stop(&h);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 900);

/* --- the steady stream ------------------------------------------------------------ */

typedef struct stream {
    atomic_int sent;     /* events stored in PACTUM_RAW (acknowledged) */
    atomic_int retries;  /* publish attempts that failed and were repeated */
    atomic_int dup_acks; /* publishes JetStream recognised as duplicates */
    atomic_bool failed;  /* an event could not be stored within its bound */
    atomic_bool done;    /* the publisher finished */
    atomic_bool stop;    /* the test ended early: stop publishing */
} stream;

/* Publish EVENTS events round the agents, one per envelope, each retried until stored. */
static void *publisher(void *arg)
{
    stream *s = arg;
    pk_bus *bus = h_connect(h.url, "cluster-publisher", true);

    for (int i = 0; bus && i < EVENTS && !atomic_load(&s->stop); i++) {
        Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT;
        pk_event_msg ev, *evp = &ev;
        int a = i % AGENTS;
        char id[32], msg_id[96], subject[64];
        uint8_t *env;
        size_t len;
        bool stored = false;

        m.name = "latency_ms";
        m.value = 400 + i % 100;
        snprintf(id, sizeof(id), "f-%d", i);
        h_event_init(&ev, id, name[a], "reply", &m, NULL);
        env = h_envelope(name[a], &agent[a], &evp, 1, &len);
        snprintf(msg_id, sizeof(msg_id), "%s:%s:1", name[a], id);
        snprintf(subject, sizeof(subject), "pactum.raw.%s", name[a]);
        /* bounded: 60 s of retries per event (a node may be down a while) */
        for (int attempt = 0; attempt < 600 && !stored && !atomic_load(&s->stop); attempt++) {
            bool dup = false;
            if (pk_bus_publish_sync(bus, subject, env, len, msg_id, false, 0, NULL, &dup) ==
                PK_OK) {
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
        pk_sleep_ms(4);
    }
    if (!bus)
        atomic_store(&s->failed, true);
    pk_bus_close(bus);
    atomic_store(&s->done, true);
    return NULL;
}

static void wait_sent(stream *s, int n)
{
    int64_t deadline = pk_mono_ms() + 120000;

    while (atomic_load(&s->sent) < n && !atomic_load(&s->failed) && pk_mono_ms() < deadline)
        pk_sleep_ms(20);
    cr_assert_geq(atomic_load(&s->sent), n, "the stream stalled at %d", atomic_load(&s->sent));
}

/* --- stalls: how long each partition's scored evidence stood still while owed some ---- */

static int64_t t_start; /* when the stream began, for the times printed */

typedef struct watch {
    stream *s;
    atomic_bool stop;
    int64_t longest_ms[AGENTS];
    int64_t longest_at[AGENTS]; /* when that stall began, ms after t_start */
} watch;

static uint64_t evidence_of(pk_bus *bus, const char *who)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;
    natsMsg *reply = NULL;
    uint64_t n = UINT64_MAX;

    q.agent_id = (char *)who;
    if (pk_pack(&q.base, &buf, &len) == PK_OK &&
        pk_bus_request(bus, PK_SUBJ_ORACLE_TRUST, buf, len, 1000, &reply) == PK_OK) {
        Pactum__V1__Signed *env = pactum__v1__signed__unpack(
            NULL, (size_t)natsMsg_GetDataLength(reply), (const uint8_t *)natsMsg_GetData(reply));
        Pactum__V1__TrustReport *r =
            env ? pactum__v1__trust_report__unpack(NULL, env->payload.len, env->payload.data)
                : NULL;
        if (r && r->state)
            n = r->state->evidence;
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
        natsMsg_Destroy(reply);
    }
    free(buf);
    return n;
}

static void *watcher(void *arg)
{
    watch *w = arg;
    pk_bus *bus = h_connect(h.url, "cluster-watcher", true);
    uint64_t last[AGENTS] = {0};
    int64_t since[AGENTS];

    for (int a = 0; a < AGENTS; a++)
        since[a] = pk_mono_ms();
    /* bounded: the test's own timeout; one round every 100 ms */
    while (bus && !atomic_load(&w->stop)) {
        for (int a = 0; a < AGENTS; a++) {
            uint64_t n = evidence_of(bus, name[a]);
            uint64_t owed = (uint64_t)(atomic_load(&w->s->sent) / AGENTS);
            int64_t now = pk_mono_ms();
            if (n != UINT64_MAX && n > last[a]) {
                last[a] = n;
                since[a] = now;
            } else if (last[a] >= owed) {
                since[a] = now; /* nothing owed: not a stall */
            } else if (now - since[a] > w->longest_ms[a]) {
                w->longest_ms[a] = now - since[a];
                w->longest_at[a] = since[a] - t_start;
            }
        }
        pk_sleep_ms(100);
    }
    pk_bus_close(bus);
    return NULL;
}

/* --- who serves what ----------------------------------------------------------------- */

typedef struct served_q {
    const char *instance;
    int n; /* partitions it serves; -1: it did not answer */
} served_q;

static bool take_health(void *ctx, natsMsg *m)
{
    served_q *q = ctx;
    json_t *doc = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    const char *who = json_string_value(json_object_get(doc, "instance"));

    if (who && strcmp(who, q->instance) == 0)
        q->n = (int)json_array_size(json_object_get(doc, "partitions_served"));
    json_decref(doc);
    return true;
}

/* How many partitions instance (of service) serves now; -1 if it does not answer. */
static int served(const char *service, const char *instance)
{
    char subject[64];
    served_q q = {.instance = instance, .n = -1};
    int n = 0;

    snprintf(subject, sizeof(subject), PK_SUBJ_HEALTH, service);
    if (pk_bus_gather(h.bus, subject, "", 0, 2000, 200, 8, take_health, &q, &n) != PK_OK)
        return -1;
    return q.n;
}

/* Wait (bounded) until instance serves want partitions; the time it took, or -1. */
static int64_t wait_served(const char *service, const char *instance, int want, int64_t bound_ms)
{
    int64_t t0 = pk_mono_ms();

    while (pk_mono_ms() - t0 < bound_ms) {
        if (served(service, instance) == want)
            return pk_mono_ms() - t0;
        pk_sleep_ms(100);
    }
    return -1;
}

/* --- counting what arrived ---------------------------------------------------------- */

static int seen[EVENTS];

static bool count_event(void *ctx, natsMsg *m)
{
    int *foreign = ctx, k;
    pk_event_msg *ev = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                 (const uint8_t *)natsMsg_GetData(m));

    if (ev && sscanf(ev->event_id, "f-%d", &k) == 1 && k >= 0 && k < EVENTS)
        seen[k]++;
    else
        (*foreign)++;
    if (ev)
        pactum__v1__event__free_unpacked(ev, NULL);
    return true;
}

/* Wait until every agent's evidence counts all its events (bounded), and return when. */
static int64_t scored_all(int64_t timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;

    while (pk_mono_ms() < deadline) {
        int done = 0;
        for (int a = 0; a < AGENTS; a++)
            done += evidence_of(h.bus, name[a]) == (uint64_t)(EVENTS / AGENTS);
        if (done == AGENTS)
            return pk_mono_ms();
        pk_sleep_ms(200);
    }
    return 0;
}

/*
 * Kill node with SIGKILL, start it again 3 s later, and wait until it has caught up (every
 * stream current on it again), as a rolling restart would before touching the next node.
 */
static void node_fault(stream *s, int node, int at)
{
    int64_t t0, down, current;

    wait_sent(s, at);
    t0 = pk_mono_ms();
    h_stop_node(&h, node, SIGKILL);
    pk_sleep_ms(3000);
    cr_assert(h_start_node(&h, node), "node %d did not come back", node);
    down = pk_mono_ms() - t0;
    current = h_node_current(&h, node, 60000);
    printf("fault   nats node %d    at %4d events sent (t=%.1f s), down %lld ms, caught up %lld "
           "ms later\n",
           node, at, (double)(t0 - t_start) / 1000, (long long)down, (long long)current);
    cr_assert_geq(current, 0, "node %d did not catch up within 60 s", node);
}

/*
 * Kill instance slot of service which with SIGKILL; the other instance (other) takes its
 * partitions over: the takeover time. Then it starts again from an empty folder and gets its
 * share back, rebuilt from the streams.
 */
static int64_t kill_and_take_over(stream *s, int which, int slot, const char *inst,
                                  const char *other, const char *const *env, int at)
{
    char cmd[512];
    int64_t took;

    int64_t t0;

    wait_sent(s, at);
    t0 = pk_mono_ms();
    h_stop_pid(h.extra_pid[slot], SIGKILL, 5000);
    h.extra_pid[slot] = 0;
    took = wait_served(h_service_names[which], other, 4, 60000);
    printf("fault   %-12s at %4d events sent (t=%.1f s), killed: %s served all 4 partitions "
           "%lld ms later\n",
           inst, at, (double)(t0 - t_start) / 1000, other, (long long)took);
    cr_assert_geq(took, 0, "%s did not take the partitions over", other);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/var-%s'", h.dir, inst);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(h_start_instance(&h, which, inst, env), slot);
    cr_assert_geq(wait_served(h_service_names[which], inst, 2, 60000), 0,
                  "%s did not get its share back", inst);
    return took;
}

/* The threads' state: at file scope, so that a test ending early (a failed assertion) leaves
 * nothing pointing into its frame; teardown stops and joins them. */
static stream S;
static watch W;
static pthread_t pub_thread, mon_thread;
static bool pub_started, mon_started;

static void stop_threads(void)
{
    atomic_store(&S.stop, true);
    atomic_store(&W.stop, true);
    if (pub_started)
        pthread_join(pub_thread, NULL);
    if (mon_started)
        pthread_join(mon_thread, NULL);
    pub_started = mon_started = false;
}

Test(cluster, nothing_lost_through_node_kills_and_instances_rebuilt_from_the_streams)
{
    int foreign = 0, lost = 0, twice = 0, accepted = 0;
    int64_t t_scorer, t_eval, t_all, longest = 0;
    int worst = 0;

    t_start = pk_mono_ms();
    W.s = &S;
    cr_assert_eq(pthread_create(&pub_thread, NULL, publisher, &S), 0);
    pub_started = true;
    cr_assert_eq(pthread_create(&mon_thread, NULL, watcher, &W), 0);
    mon_started = true;
    node_fault(&S, 0, 300);
    node_fault(&S, 1, 700);
    node_fault(&S, 2, 1100);
    t_scorer = kill_and_take_over(&S, 2, slot_scorer_b, "scorer-b", "scorer-a", scorer_b, 1400);
    t_eval = kill_and_take_over(&S, 1, slot_eval_b, "evaluator-b", "evaluator-a", eval_b, 1800);
    pthread_join(pub_thread, NULL);
    pub_started = false;
    cr_assert_not(atomic_load(&S.failed), "an event could not be stored");
    t_all = scored_all(180000);
    atomic_store(&W.stop, true);
    pthread_join(mon_thread, NULL);
    mon_started = false;
    if (!t_all) { /* say what is missing before failing */
        for (int a = 0; a < AGENTS; a++) {
            printf("not scored: %s (partition %u) evidence", name[a], pk_partition_of(name[a], 4));
            for (int k = 0; k < 4; k++)
                printf(" %lld", (long long)evidence_of(h.bus, name[a]));
            printf(" of %d; scorer-a serves %d, scorer-b %d\n", EVENTS / AGENTS,
                   served("scorer", "scorer-a"), served("scorer", "scorer-b"));
        }
        printf("verdicts applied: %lld, %lld; events judged: %lld, %lld\n",
               h_metric(&h, "scorer", "pactum_scorer_verdicts_total"),
               h_metric(&h, "scorer", "pactum_scorer_verdicts_total"),
               h_metric(&h, "evaluator", "pactum_evaluator_events_total"),
               h_metric(&h, "evaluator", "pactum_evaluator_events_total"));
        fflush(stdout);
    }
    cr_assert_neq(t_all, 0, "not every event was scored");

    cr_assert(h_read_stream(&h, PK_STREAM_EVENTS, "pactum.events.>", count_event, &foreign), "%s",
              pk_error_msg());
    for (int i = 0; i < EVENTS; i++) {
        accepted += seen[i] > 0;
        lost += seen[i] == 0;
        twice += seen[i] > 1;
    }
    for (int a = 0; a < AGENTS; a++) {
        if (W.longest_ms[a] > longest) {
            longest = W.longest_ms[a];
            worst = a;
        }
    }
    printf("events: sent %d, accepted %d, rejected 0, lost %d, accepted twice %d (%d publish "
           "retries, %d duplicate publishes dropped by the stream)\n",
           atomic_load(&S.sent), accepted, lost, twice, atomic_load(&S.retries),
           atomic_load(&S.dup_acks));
    printf("stall:  longest of any partition %lld ms (partition %u, from t=%.1f s)\n",
           (long long)longest, pk_partition_of(name[worst], 4), (double)W.longest_at[worst] / 1000);
    printf("takeover: a killed scorer's partitions served again after %lld ms, a killed "
           "evaluator's after %lld ms (lease 8 s)\n",
           (long long)t_scorer, (long long)t_eval);
    cr_assert_eq(lost, 0);
    cr_assert_eq(twice, 0);
    cr_assert_eq(foreign, 0);

    /* every partition's live state equals a replay, gathered from both scorers */
    cr_assert_eq(cli("--timeout 10s replay --compare"), 0, "%s", out);
    cr_assert(strstr(out, "(2 scorers) (the same)") != NULL, "%s", out);
    printf("digests: %s", strstr(out, "live") ? strstr(out, "live") : out);
    fflush(stdout);
}
