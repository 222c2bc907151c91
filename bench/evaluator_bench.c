/*
 * Evaluator throughput: events per second judged against pacts of 10
 * clauses, with 1-minute windows and with 30-day windows (the cost of an
 * event must not depend on the window's length), and with pacts of 1 and of
 * 50 clauses; and with 1-clause pacts for 1,000 and 10,000 agents (the cost as
 * agents grow: more clause states, fewer events each).
 *
 * Each round: a fresh nats-server; pacts for 16 agents (or as many as the
 * variant says) put straight into the registry stream; N normalized events
 * loaded into PACTUM_EVENTS; then
 *   baseline: bare JetStream consumers, one per partition (fetch 256, ack
 *             each, at most one batch unacknowledged), nothing else; for
 *             10 clauses and 1-minute windows also the same consumers with
 *             one acknowledgement per batch (the evaluator's own consumer
 *             settings), reported beside it;
 *   figure:   the evaluator service started on the loaded stream, timed from
 *             its first event to its last.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "util.h"

#define AGENTS     16 /* agents of the pacts, unless a variant says otherwise */
#define PARTITIONS 4

/* A pact of n clauses (up to 64: the ten below again and again, "-k" after the id of the k-th
 * repetition) with windows of length win for agent. */
static void pact_json(char *buf, size_t len, const char *agent, int n, const char *win)
{
    static const char *const clauses[] = {
        "{\"id\":\"mean-latency\",\"promise\":\"p\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"WIN\",\"op\":\"<=\","
        "\"threshold\":2000,\"min_samples\":5}",
        "{\"id\":\"p95-latency\",\"promise\":\"p\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"latency_ms\",\"aggregate\":\"p95\",\"window\":\"WIN\",\"op\":\"<=\","
        "\"threshold\":3000,\"min_samples\":20}",
        "{\"id\":\"p99-latency\",\"promise\":\"p\",\"severity\":\"medium\",\"kind\":\"objective\","
        "\"metric\":\"latency_ms\",\"aggregate\":\"p99\",\"window\":\"WIN\",\"op\":\"<=\","
        "\"threshold\":5000,\"min_samples\":20}",
        "{\"id\":\"errors\",\"promise\":\"p\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"error\",\"aggregate\":\"rate\",\"window\":\"WIN\",\"op\":\"<=\","
        "\"threshold\":0.05,\"min_samples\":20,\"burn_rate\":{\"target\":0.99,\"triggers\":["
        "{\"long\":\"1h\",\"short\":\"5m\",\"factor\":14.4,\"severity\":\"critical\"},"
        "{\"long\":\"6h\",\"short\":\"30m\",\"factor\":6,\"severity\":\"medium\"}]}}",
        "{\"id\":\"tokens\",\"promise\":\"p\",\"severity\":\"low\",\"kind\":\"objective\","
        "\"metric\":\"tokens\",\"aggregate\":\"max\",\"window\":\"WIN\",\"op\":\"<=\","
        "\"threshold\":8000}",
        "{\"id\":\"no-pii\",\"promise\":\"p\",\"severity\":\"critical\",\"kind\":\"forbidden\","
        "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"},\"max_count\":0,\"window\":"
        "\"WIN\"}",
        "{\"id\":\"few-errors\",\"promise\":\"p\",\"severity\":\"low\",\"kind\":\"forbidden\","
        "\"match\":{\"field\":\"kind\",\"eq\":\"error\"},\"max_count\":100000,\"window\":\"WIN\"}",
        "{\"id\":\"scope\",\"promise\":\"p\",\"severity\":\"high\",\"kind\":\"scope\","
        "\"actions\":[\"reply\",\"kb.*\",\"tickets.*\"],\"spend\":{\"currency\":\"USD\","
        "\"per_action\":100,\"per_window\":100000000,\"window\":\"WIN\"}}",
        "{\"id\":\"heartbeat\",\"promise\":\"p\",\"severity\":\"medium\",\"kind\":\"freshness\","
        "\"evidence\":{\"field\":\"kind\",\"eq\":\"reply\"},\"max_gap\":\"WIN\"}",
        "{\"id\":\"replies\",\"promise\":\"p\",\"severity\":\"info\",\"kind\":\"objective\","
        "\"aggregate\":\"count\",\"window\":\"WIN\",\"op\":\">=\",\"threshold\":1}",
    };
    size_t off = (size_t)snprintf(
        buf, len, "{\"pactum\":1,\"id\":\"%s-pact\",\"agent\":\"%s\",\"clauses\":[", agent, agent);
    for (int i = 0; i < n && off < len; i++) {
        const char *c = clauses[i % 10];
        bool in_id = false;
        if (i && off < len - 1)
            buf[off++] = ',';
        /* copy the clause, putting the window length where it says WIN */
        while (*c && off < len - 1) {
            if (strncmp(c, "{\"id\":\"", 7) == 0 && c == clauses[i % 10]) {
                off += (size_t)snprintf(buf + off, len - off, "{\"id\":\"");
                c += 7;
                in_id = true;
            } else if (in_id && *c == '"') {
                if (i >= 10)
                    off += (size_t)snprintf(buf + off, len - off, "-%d", i / 10);
                in_id = false;
                buf[off++] = *c++;
            } else if (strncmp(c, "WIN", 3) == 0) {
                off += (size_t)snprintf(buf + off, len - off, "%s", win);
                c += 3;
            } else {
                buf[off++] = *c++;
            }
        }
    }
    snprintf(buf + off, len - off, "]}");
}

/* Publish one registry record on subject; 0 or -1. */
static long agents = AGENTS; /* of the round being run */

/* The variant's pact: how many clauses, how long their windows. */
typedef struct pact_shape {
    int clauses;
    const char *win;
} pact_shape;

static void shaped_doc(char *buf, size_t len, const char *agent, void *ctx)
{
    const pact_shape *ps = ctx;

    pact_json(buf, len, agent, ps->clauses, ps->win);
}

/* Load n events, round robin over the agents, 10 ms apart in event time. */
static int load_events(h_env *h, long n, uint64_t registry_seq)
{
    Pactum__V1__Metric m[3] = {PACTUM__V1__METRIC__INIT, PACTUM__V1__METRIC__INIT,
                               PACTUM__V1__METRIC__INIT};
    Pactum__V1__Metric *mp[3] = {&m[0], &m[1], &m[2]};
    Pactum__V1__Label l = PACTUM__V1__LABEL__INIT, *lp[1] = {&l};
    int64_t base = pk_now_ms() - n * 10;

    m[0].name = "latency_ms";
    m[1].name = "error";
    m[2].name = "tokens";
    l.name = "pii";
    l.value = "none";
    srand(42);
    pk_bus_publish_reset(h->bus);
    for (long i = 0; i < n; i++) {
        Pactum__V1__Event ev = PACTUM__V1__EVENT__INIT;
        char agent[32], id[32], subject[128];
        uint8_t buf[512];
        size_t len;

        snprintf(agent, sizeof(agent), "agent-%02ld", i % agents);
        snprintf(id, sizeof(id), "e-%ld", i);
        ev.event_id = id;
        ev.agent_id = agent;
        ev.ts_ms = base + i * 10;
        ev.kind = "reply";
        ev.action = "reply";
        ev.amount = i % 50 == 0 ? 5 : 0;
        ev.currency = "USD";
        m[0].value = exp(5 + 1.5 * ((double)rand() / RAND_MAX));
        m[1].value = rand() % 200 == 0;
        m[2].value = rand() % 4000;
        ev.metrics = mp;
        ev.n_metrics = 3;
        ev.labels = lp;
        ev.n_labels = 1;
        ev.source = PACTUM__V1__SOURCE__SOURCE_SELF;
        ev.reporter_id = agent;
        ev.received_ms = ev.ts_ms;
        ev.accepted_ms = ev.ts_ms;
        ev.registry_seq = registry_seq;
        ev.partition = pk_partition_of(agent, PARTITIONS);
        len = protobuf_c_message_pack(&ev.base, buf);
        snprintf(subject, sizeof(subject), PK_SUBJ_EVENTS, ev.partition, agent);
        if (pk_bus_publish_async(h->bus, subject, buf, len, NULL) != PK_OK)
            return -1;
        if (i % 4096 == 4095 && pk_bus_publish_wait(h->bus, 30000) != PK_OK)
            return -1;
    }
    return pk_bus_publish_wait(h->bus, 30000) == PK_OK ? 0 : -1;
}

typedef struct bare_arg {
    h_env *h;           /* harness */
    bool batch_ack;     /* one acknowledgement per batch, as a partition's only reader */
    uint32_t partition; /* partition consumed */
    long got;           /* messages consumed */
    long want;          /* messages in the partition */
} bare_arg;

static void *bare_consume(void *p)
{
    bare_arg *a = p;
    pk_bus *bus = NULL;
    pk_consumer c;
    char durable[32], filter[64];
    int64_t deadline = pk_mono_ms() + 120000;

    static _Atomic int64_t unlimited = INT64_MAX;

    snprintf(durable, sizeof(durable), "bare%s-p%u", a->batch_ack ? "1" : "", a->partition);
    snprintf(filter, sizeof(filter), "pactum.events.%u.*", a->partition);
    if (!(bus = h_connect(a->h->url, "bench-bare", true)) ||
        (a->batch_ack ? pk_consumer_take_over(&c, bus, PK_STREAM_EVENTS, durable, filter, 256,
                                              10000, NULL, NULL, 0, &unlimited)
                      : pk_consumer_open(&c, bus, PK_STREAM_EVENTS, durable, filter, 0, 256,
                                         10000)) != PK_OK) {
        pk_bus_close(bus);
        return NULL;
    }
    while (a->got < a->want && pk_mono_ms() < deadline) {
        natsMsgList list;
        if (pk_consumer_fetch(&c, &list, 256, 500) != PK_OK)
            continue;
        if (a->batch_ack) {
            a->got += list.Count;
            pk_consumer_ack(&c, &list);
            natsMsgList_Destroy(&list);
        } else {
            a->got += bu_ack_all(&list);
        }
    }
    pk_consumer_close(&c);
    pk_bus_close(bus);
    return NULL;
}

/* Bare consume+ack of everything in PACTUM_EVENTS; messages per second, or -1. */
static double bare_rate(h_env *h, long n, bool batch_ack)
{
    bare_arg args[PARTITIONS];
    pthread_t th[PARTITIONS];
    long counts[PARTITIONS] = {0}, got = 0;
    int64_t t0;
    double secs;

    for (long i = 0; i < n; i++) {
        char agent[32];
        snprintf(agent, sizeof(agent), "agent-%02ld", i % agents);
        counts[pk_partition_of(agent, PARTITIONS)]++;
    }
    t0 = pk_mono_ns();
    for (uint32_t p = 0; p < PARTITIONS; p++) {
        args[p] = (bare_arg){.h = h, .partition = p, .want = counts[p], .batch_ack = batch_ack};
        pthread_create(&th[p], NULL, bare_consume, &args[p]);
    }
    for (uint32_t p = 0; p < PARTITIONS; p++) {
        pthread_join(th[p], NULL);
        got += args[p].got;
    }
    secs = (double)(pk_mono_ns() - t0) / 1e9;
    return got == n ? (double)n / secs : -1;
}

/* Start the evaluator on the loaded stream; events per second from its first to its last, and
 * into *verdicts the verdicts it published. */
static double evaluator_rate(h_env *h, long n, long long *verdicts)
{
    static const char *const env[] = {"PACTUM_PARTITIONS=4", NULL};
    int64_t t0 = 0, t1 = 0, start = pk_mono_ns(), deadline;
    long long first = 0, v = 0;

    if (!h_start_service(h, 1, env))
        return -1;
    deadline = pk_mono_ms() + 300000;
    while (pk_mono_ms() < deadline) {
        v = h_metric(h, "evaluator", "pactum_evaluator_events_total");
        if (v > 0 && !t0) {
            t0 = pk_mono_ns();
            first = v;
        }
        if (v >= n) {
            t1 = pk_mono_ns();
            break;
        }
        pk_sleep_ms(10);
    }
    *verdicts = 0;
    for (int i = 0; t1 && i < 4; i++) {
        static const char *const outcomes[] = {"pass", "fail", "insufficient", "stale"};
        char series[96];
        snprintf(series, sizeof(series), "pactum_evaluator_verdicts_total{outcome=\"%s\"}",
                 outcomes[i]);
        v = h_metric(h, "evaluator", series);
        *verdicts += v > 0 ? v : 0;
    }
    h_stop_pid(h->svc_pid[1], SIGTERM, 15000);
    h->svc_pid[1] = 0;
    if (!t1 || t1 <= t0)
        return -1;
    /* everything was done before the first look (a short run): timed from the start */
    if (first >= n)
        return (double)n / ((double)(t1 - start) / 1e9);
    return (double)(n - first) / ((double)(t1 - t0) / 1e9);
}

static int one_round(const bench_opts *o, int clauses, const char *win, double *fig, double *base,
                     double *base1, long long *verdicts)
{
    pact_shape shape = {clauses, win};
    h_env h;
    uint64_t reg_seq = 0;
    uint32_t parts = PARTITIONS;
    int rc = -1;

    if (!h_start(&h, false)) {
        fprintf(stderr, "bench: nats-server did not start\n");
        goto out;
    }
    if (pk_streams_ensure(h.bus, &parts) != PK_OK ||
        bu_registry_load(&h, agents, "agent-", 2, shaped_doc, &shape, &reg_seq) ||
        load_events(&h, o->events, reg_seq)) {
        fprintf(stderr, "bench: loading failed: %s\n", pk_error_msg());
        goto out;
    }
    *base = bare_rate(&h, o->events, false);
    if (base1)
        *base1 = bare_rate(&h, o->events, true);
    *fig = evaluator_rate(&h, o->events, verdicts);
    rc = *base > 0 && *fig > 0 && (!base1 || *base1 > 0) ? 0 : -1;
out:
    h_stop(&h);
    return rc;
}

int bench_evaluator(const bench_opts *o)
{
    static const struct {
        int clauses;
        const char *win;
        long agents;
        const char *name;
    } variants[] = {
        {10, "1m", AGENTS, "evaluator, 10 clauses, 1m windows"},
        {10, "30d", AGENTS, "evaluator, 10 clauses, 30d windows"},
        {1, "1m", AGENTS, "evaluator, 1 clause, 1m windows"},
        {50, "1m", AGENTS, "evaluator, 50 clauses, 1m windows"},
        {1, "1m", 1000, "evaluator, 1 clause, 1m windows, 1,000 agents"},
        {1, "1m", 10000, "evaluator, 1 clause, 1m windows, 10,000 agents"},
    };

    for (size_t k = 0; k < sizeof(variants) / sizeof(variants[0]); k++) {
        bench_figure *f =
            bench_add(variants[k].name, "events/s", "bare JetStream fetch+ack, 4 partitions",
                      k == 0   ? ">= 0.6 x baseline"
                      : k == 1 ? "within 10% of the 1m figure"
                               : "reported",
                      true);
        bench_figure *f1 =
            k == 0 ? bench_add("evaluator, 10 clauses, 1m windows, against one ack per batch",
                               "events/s", "bare JetStream fetch, one ack per batch, 4 partitions",
                               "reported", true)
                   : NULL;
        agents = variants[k].agents;
        for (int r = 0; r < o->rounds; r++) {
            double fig = 0, base = 0, base1 = 0;
            long long verdicts = 0;
            if (one_round(o, variants[k].clauses, variants[k].win, &fig, &base, f1 ? &base1 : NULL,
                          &verdicts) != 0)
                return -1;
            f->v[f->n++] = fig;
            f->b[f->nb++] = base;
            if (f1) {
                f1->v[f1->n++] = fig;
                f1->b[f1->nb++] = base1;
            }
            printf("  %s, round %d: %.0f events/s (bare %.0f msg/s", variants[k].name, r + 1, fig,
                   base);
            if (f1)
                printf(", with one ack per batch %.0f msg/s", base1);
            printf("; %.2f verdicts published per event)\n", (double)verdicts / (double)o->events);
            fflush(stdout);
        }
    }
    return 0;
}
