/*
 * Latencies and the oracle:
 *
 *   containment   a critical event published by an agent -> the tier change
 *                 to contained received by a subscriber on pactum.trust.<agent>;
 *                 idle, and while other agents publish at half the end-to-end
 *                 rate. Baseline: a bare JetStream pipeline of 3 hops, one
 *                 message at a time, received by a plain subscriber, its samples
 *                 as far apart as the containments (each starts from rest; the
 *                 same hops back to back are reported too).
 *   to deny       the same violation -> the first authorize answer that denies, asked
 *                 again and again by a caller as an agent's gateway would; idle and
 *                 under the same load. Baseline: the 3 bare hops plus one bare
 *                 request-reply, measured alongside.
 *   oracle        trust queries over NATS, one client and 8 concurrent ones;
 *                 baseline: request-reply to a responder that does nothing.
 *   authorize     decisions per second with 8 concurrent clients (each decision
 *                 recorded in PACTUM_AUDIT); baseline: the same bare responder.
 *   http          trust queries over HTTP (keep-alive); baseline: the same
 *                 oracle's health route.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "util.h"

/* agents: 0.. containment idle, 32.. under load, 64.. to deny idle, 96.. to deny under
 * load (at most 30 each); QUERY_AGENT; LOAD_FROM.. the load */
#define AGENTS      160
#define LOAD_FROM   128
#define QUERY_AGENT 127 /* asked about by the oracle, authorize and HTTP figures */
#define CLIENTS     8

/* --- containment ------------------------------------------------------------------ */

typedef struct loader {
    bu_suite *s;
    double rate; /* events per second to keep up */
    volatile bool stop;
    long sent;
} loader;

/* Publish signed batches of good events for agents LOAD_FROM.. at the loader's rate. */
static void *load_main(void *p)
{
    loader *l = p;
    pk_bus *bus = NULL;
    int64_t t0 = pk_mono_ns();
    long k = 0;

    if (!(bus = h_connect(l->s->h.url, "bench-load", false)))
        return NULL;
    while (!l->stop) {
        double due = (double)(pk_mono_ns() - t0) / 1e9 * l->rate;
        while (l->sent + 32 <= due && !l->stop) {
            pk_event_msg evs[32], *evp[32];
            Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
            char ids[32][40], subject[64];
            int a = LOAD_FROM + (int)(k % (AGENTS - LOAD_FROM));
            uint8_t *env;
            size_t len;
            m.name = "latency_ms";
            m.value = 600;
            for (int i = 0; i < 32; i++) {
                snprintf(ids[i], sizeof(ids[i]), "load-%ld-%d", k, i);
                h_event_init(&evs[i], ids[i], l->s->ids[a], "reply", &m, NULL);
                evs[i].metrics = mp;
                evs[i].n_metrics = 1;
                evp[i] = &evs[i];
            }
            env = h_envelope(l->s->ids[a], &l->s->keys[a], evp, 32, &len);
            snprintf(subject, sizeof(subject), PK_SUBJ_RAW, l->s->ids[a]);
            if (pk_bus_publish_async(bus, subject, env, len, NULL) == PK_OK)
                l->sent += 32; /* what could not be sent is not counted as load */
            free(env);
            k++;
        }
        pk_sleep_ms(2);
    }
    if (pk_bus_publish_wait(bus, 10000) != PK_OK)
        fprintf(stderr, "load: %s\n", pk_error_msg());
    pk_bus_close(bus);
    return NULL;
}

/*
 * Where a containment's time goes, from the times the bus stored each hop's
 * message (one clock, the server's): published -> PACTUM_RAW, -> the event in
 * PACTUM_EVENTS (ingest), -> the last verdict in PACTUM_VERDICTS (evaluator),
 * -> the tier change in PACTUM_TRUST (scorer), -> received by the subscriber.
 */
#define HOPS 5
static const char *const hop_names[HOPS] = {"publish", "ingest", "evaluator", "scorer", "delivery"};

static int64_t wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t stored_ns(bu_suite *s, const char *stream, const char *subject)
{
    natsMsg *m = NULL;
    int64_t t = 0;

    if (js_GetLastMsg(&m, s->h.bus->js, stream, subject, NULL, NULL) == NATS_OK)
        t = natsMsg_GetTime(m);
    natsMsg_Destroy(m);
    return t;
}

static void hop_times(bu_suite *s, const char *agent, int64_t sent_ns, int64_t got_ns, double *hop)
{
    char subj[4][128];
    const char *streams[4] = {PK_STREAM_RAW, PK_STREAM_EVENTS, PK_STREAM_VERDICTS, PK_STREAM_TRUST};
    uint32_t parts = 0, p;
    int64_t t[6];

    if (pk_streams_ensure(s->h.bus, &parts) != PK_OK || parts == 0)
        return;
    p = pk_partition_of(agent, parts);

    snprintf(subj[0], sizeof(subj[0]), PK_SUBJ_RAW, agent);
    snprintf(subj[1], sizeof(subj[1]), PK_SUBJ_EVENTS, p, agent);
    snprintf(subj[2], sizeof(subj[2]), PK_SUBJ_VERDICTS, p, agent);
    snprintf(subj[3], sizeof(subj[3]), PK_SUBJ_TRUST, agent);
    t[0] = sent_ns;
    for (int i = 0; i < 4; i++)
        t[i + 1] = stored_ns(s, streams[i], subj[i]);
    t[5] = got_ns;
    for (int i = 0; i < HOPS; i++)
        hop[i] = t[i] && t[i + 1] ? (double)(t[i + 1] - t[i]) / 1e6 : 0;
}

/* One containment per agent in [from, to): milliseconds each into ms[], and
 * each hop's share into hops[k][] when hops is not NULL. */
static int contain(bu_suite *s, int from, int to, double *ms, double (*hops)[HOPS])
{
    natsSubscription *sub = NULL;
    int got = 0;

    if (natsConnection_SubscribeSync(&sub, s->h.bus->nc, "pactum.trust.*") != NATS_OK)
        return -1;
    natsConnection_Flush(s->h.bus->nc);
    for (int a = from; a < to; a++) {
        char id[32];
        int64_t wall0 = wall_ns();
        snprintf(id, sizeof(id), "leak-%d", a);
        ms[got] = bu_contain_one(&s->h, sub, s->ids[a], &s->keys[a], id);
        if (ms[got] < 0)
            break;
        if (hops)
            hop_times(s, s->ids[a], wall0, wall0 + (int64_t)(ms[got] * 1e6), hops[got]);
        got++;
        pk_sleep_ms(BU_CONTAIN_GAP_MS);
    }
    natsSubscription_Destroy(sub);
    return got == to - from ? 0 : -1;
}

/* The permit of a signed authorize answer (PERMIT_UNSPECIFIED if it cannot be read). */
static Pactum__V1__Permit permit_of(natsMsg *reply)
{
    Pactum__V1__Signed *env = pactum__v1__signed__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                                         (const uint8_t *)natsMsg_GetData(reply));
    Pactum__V1__AuthorizeDecision *d =
        env ? pactum__v1__authorize_decision__unpack(NULL, env->payload.len, env->payload.data)
            : NULL;
    Pactum__V1__Permit p = d && d->status == PACTUM__V1__QUERY_STATUS__QUERY_OK
                               ? d->permit
                               : PACTUM__V1__PERMIT__PERMIT_UNSPECIFIED;

    if (d)
        pactum__v1__authorize_decision__free_unpacked(d, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    return p;
}

/*
 * Containment as a caller sees it: agent a publishes a violating event, and a caller asks
 * authorize whether the agent may act, again and again (as an agent's gateway asks before
 * each action), until the answer is deny: the milliseconds into *ms. An agent denied before
 * its violation is an error (the figure would mean nothing).
 */
static int deny_one(bu_suite *s, const char *token, int a, double *ms)
{
    Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    pk_event_msg ev, *evp = &ev;
    char id[32], subject[64];
    uint8_t *env, *req = NULL;
    size_t len, rlen = 0;
    natsMsg *m = NULL;
    int64_t t0, deadline;
    int rc = -1;

    q.agent_id = s->ids[a];
    q.action = "reply";
    q.client_token = (char *)token;
    if (pk_pack(&q.base, &req, &rlen) != PK_OK)
        return -1;
    if (natsConnection_Request(&m, s->h.bus->nc, PK_SUBJ_ORACLE_AUTHORIZE, req, (int)rlen, 5000) !=
            NATS_OK ||
        permit_of(m) == PACTUM__V1__PERMIT__PERMIT_DENY) {
        fprintf(stderr, "containment to deny: %s denied (or no answer) before its violation\n",
                s->ids[a]);
        natsMsg_Destroy(m);
        free(req);
        return -1;
    }
    natsMsg_Destroy(m);
    snprintf(id, sizeof(id), "deny-%d", a);
    h_event_init(&ev, id, s->ids[a], "leak", NULL, NULL);
    env = h_envelope(s->ids[a], &s->keys[a], &evp, 1, &len);
    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, s->ids[a]);
    t0 = pk_mono_ns();
    if (!env ||
        pk_bus_publish_sync(s->h.bus, subject, env, len, NULL, false, 0, NULL, NULL) != PK_OK) {
        free(env);
        free(req);
        return -1;
    }
    free(env);
    deadline = pk_mono_ms() + 10000;
    while (rc != 0 && pk_mono_ms() < deadline) {
        m = NULL;
        if (natsConnection_Request(&m, s->h.bus->nc, PK_SUBJ_ORACLE_AUTHORIZE, req, (int)rlen,
                                   5000) != NATS_OK)
            continue;
        if (permit_of(m) == PACTUM__V1__PERMIT__PERMIT_DENY) {
            *ms = (double)(pk_mono_ns() - t0) / 1e6;
            rc = 0;
        }
        natsMsg_Destroy(m);
    }
    free(req);
    return rc;
}

/* deny_one for each agent in [from, to), one at a time: ms[0 .. to - from). */
static int contain_to_deny(bu_suite *s, const char *token, int from, int to, double *ms)
{
    for (int a = from; a < to; a++) {
        if (deny_one(s, token, a, &ms[a - from]) != 0)
            return -1;
        pk_sleep_ms(BU_CONTAIN_GAP_MS);
    }
    return 0;
}

/* Bare request-reply latencies, one client, in order (ms[n]). */
static int bare_requests(bu_suite *s, int n, double *ms)
{
    for (int i = 0; i < n; i++) {
        natsMsg *m = NULL;
        int64_t t0 = pk_mono_ns();
        if (natsConnection_Request(&m, s->h.bus->nc, "bench.echo", "", 0, 5000) != NATS_OK)
            return -1;
        ms[i] = (double)(pk_mono_ns() - t0) / 1e6;
        natsMsg_Destroy(m);
    }
    return 0;
}

/* --- request-reply clients ---------------------------------------------------------- */

typedef struct client {
    const char *url;
    const char *subject;
    const uint8_t *req;
    size_t len;
    int n;      /* requests */
    double *ms; /* latencies (may be NULL) */
    int ok;
    const char *anew; /* if set: trust queries about this agent, each unlike the last */
    int offset;       /* ... starting here */
} client;

static void *client_main(void *p)
{
    client *c = p;
    pk_bus *bus = NULL;

    if (!(bus = h_connect(c->url, "bench-client", true)))
        return NULL;
    for (int i = 0; i < c->n; i++) {
        natsMsg *m = NULL;
        uint8_t buf[128];
        const uint8_t *req = c->req;
        size_t len = c->len;
        int64_t t0;
        if (c->anew) {
            /* another history length each time: a query the oracle has not answered just now */
            Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
            q.agent_id = (char *)c->anew;
            q.history = 1 + (uint32_t)((c->offset + i * (CLIENTS + 1)) % 200);
            if (protobuf_c_message_get_packed_size(&q.base) > sizeof(buf))
                continue;
            len = protobuf_c_message_pack(&q.base, buf);
            req = buf;
        }
        t0 = pk_mono_ns();
        if (natsConnection_Request(&m, bus->nc, c->subject, req, (int)len, 5000) != NATS_OK)
            continue;
        if (c->ms)
            c->ms[c->ok] = (double)(pk_mono_ns() - t0) / 1e6;
        c->ok++;
        natsMsg_Destroy(m);
    }
    pk_bus_close(bus);
    return NULL;
}

/* Sequential latencies (ms[n]) and 8-client throughput of requests on subject; with
 * anew, trust queries about that agent, no two alike in a row. */
static int requests(const char *url, const char *subject, const uint8_t *req, size_t len,
                    const char *anew, int n, double *ms, double *per_s)
{
    client one = {url, subject, req, len, n, ms, 0, anew, 0}, many[CLIENTS];
    pthread_t th[CLIENTS];
    int64_t t0;
    int total = 0;

    client_main(&one);
    if (one.ok != n)
        return -1;
    t0 = pk_mono_ns();
    for (int i = 0; i < CLIENTS; i++) {
        many[i] = (client){url, subject, req, len, n, NULL, 0, anew, i + 1};
        pthread_create(&th[i], NULL, client_main, &many[i]);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += many[i].ok;
    }
    *per_s = total / ((double)(pk_mono_ns() - t0) / 1e9);
    return total == CLIENTS * n ? 0 : -1;
}

/* --- HTTP keep-alive client ---------------------------------------------------------- */

typedef struct http_client {
    int port;
    const char *path;
    int n;
    double *ms;
    int ok;
} http_client;

/* GET path on an open connection; true on a 200 with its whole body read. */
static bool http_get(int fd, const char *path, char *buf, size_t cap)
{
    char req[256];
    size_t got = 0, need = 0;
    char *hdr_end = NULL;

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        return false;
    while (!hdr_end || got < need) {
        ssize_t r = read(fd, buf + got, cap - got - 1);
        if (r <= 0)
            return false;
        got += (size_t)r;
        buf[got] = '\0';
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strstr(buf, "Content-Length:");
            if (!cl)
                cl = strstr(buf, "content-length:");
            if (!cl)
                return false;
            need = (size_t)(hdr_end + 4 - buf) + strtoul(cl + 15, NULL, 10);
            if (need >= cap)
                return false;
        }
    }
    return strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

static void *http_main(void *p)
{
    http_client *c = p;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    char *buf = malloc(1 << 20);

    sa.sin_port = htons((uint16_t)c->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd < 0 || !buf || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        free(buf);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    for (int i = 0; i < c->n; i++) {
        int64_t t0 = pk_mono_ns();
        if (!http_get(fd, c->path, buf, 1 << 20))
            break;
        if (c->ms)
            c->ms[c->ok] = (double)(pk_mono_ns() - t0) / 1e6;
        c->ok++;
    }
    close(fd);
    free(buf);
    return NULL;
}

static int http_requests(int port, const char *path, int n, double *ms, double *per_s)
{
    http_client one = {port, path, n, ms, 0}, many[CLIENTS];
    pthread_t th[CLIENTS];
    int64_t t0;
    int total = 0;

    http_main(&one);
    if (one.ok != n)
        return -1;
    t0 = pk_mono_ns();
    for (int i = 0; i < CLIENTS; i++) {
        many[i] = (http_client){port, path, n, NULL, 0};
        pthread_create(&th[i], NULL, http_main, &many[i]);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += many[i].ok;
    }
    *per_s = total / ((double)(pk_mono_ns() - t0) / 1e9);
    return total == CLIENTS * n ? 0 : -1;
}

/* --- the benchmark ---------------------------------------------------------------------- */

static void add_rounds(bench_figure *f, double v, double b)
{
    f->v[f->n++] = v;
    if (b >= 0)
        f->b[f->nb++] = b;
}

/*
 * Containment to deny for agents [from, from + n) into f50 and f99, against the bare 3 hops
 * plus one bare request-reply measured just before (ms, bare, rr: n entries of scratch).
 */
static int deny_figures(bu_suite *s, const char *token, int from, int n, double *ms, double *bare,
                        double *rr, bench_figure *f50, bench_figure *f99)
{
    if (bu_bare_latency(&s->h, 3, n, BU_CONTAIN_GAP_MS, bare) != 0 ||
        bare_requests(s, n, rr) != 0 || contain_to_deny(s, token, from, from + n, ms) != 0)
        return -1;
    add_rounds(f50, bu_pct(ms, n, 50), bu_pct(bare, n, 50) + bu_pct(rr, n, 50));
    add_rounds(f99, bu_pct(ms, n, 99), bu_pct(bare, n, 99) + bu_pct(rr, n, 99));
    return 0;
}

int bench_latency(const bench_opts *o)
{
    bench_figure *c50 = bench_add("containment p50, idle", "ms", "bare JetStream 3 hops, p50",
                                  "<= 2 x baseline", false);
    bench_figure *c99 =
        bench_add("containment p99, idle", "ms", "bare JetStream 3 hops, p99", "reported", false);
    static const char *const hop_figs[HOPS] = {
        "containment idle, publish to PACTUM_RAW, p50", "containment idle, ingest hop, p50",
        "containment idle, evaluator hop, p50", "containment idle, scorer hop, p50",
        "containment idle, PACTUM_TRUST to subscriber, p50"};
    bench_figure *hf[HOPS];
    bench_figure *bb =
        bench_add("bare JetStream 3 hops p50, samples back to back", "ms", "", "reported", false);
    bench_figure *l50 = bench_add("containment p50, half of max load", "ms",
                                  "bare JetStream 3 hops, p50", "reported", false);
    bench_figure *l99 = bench_add("containment p99, half of max load", "ms",
                                  "bare JetStream 3 hops, p99", "reported", false);
    bench_figure *d50 =
        bench_add("containment to deny p50, idle", "ms",
                  "bare JetStream 3 hops + bare request-reply, p50", "<= 2.5 x baseline", false);
    bench_figure *d99 =
        bench_add("containment to deny p99, idle", "ms",
                  "bare JetStream 3 hops + bare request-reply, p99", "reported", false);
    bench_figure *dl50 = bench_add("containment to deny p50, half of max load", "ms",
                                   "bare JetStream 3 hops + bare request-reply, p50, same load",
                                   "<= 3 x baseline", false);
    bench_figure *dl99 = bench_add("containment to deny p99, half of max load", "ms",
                                   "bare JetStream 3 hops + bare request-reply, p99, same load",
                                   "<= 5 x baseline", false);
    bench_figure *q50 = bench_add("oracle trust query p50, one client", "ms",
                                  "bare NATS request-reply, p50", "<= 1.3 x baseline", false);
    bench_figure *q99 = bench_add("oracle trust query p99, one client", "ms",
                                  "bare NATS request-reply, p99", "reported", false);
    bench_figure *qt = bench_add("oracle trust queries, 8 clients", "queries/s",
                                 "bare NATS request-reply, 8 clients", ">= 0.8 x baseline", true);
    bench_figure *n50 = bench_add("oracle trust query p50, made anew", "ms",
                                  "bare NATS request-reply, p50", "reported", false);
    bench_figure *nt = bench_add("oracle trust queries, 8 clients, made anew", "queries/s",
                                 "bare NATS request-reply, 8 clients", "reported", true);
    bench_figure *az = bench_add("authorize decisions, 8 clients", "decisions/s",
                                 "bare NATS request-reply, 8 clients", ">= 0.8 x baseline", true);
    bench_figure *a50 = bench_add("authorize decision p50, one client", "ms",
                                  "bare NATS request-reply, p50", "reported", false);
    bench_figure *h50 = bench_add("HTTP trust query p50, one client", "ms",
                                  "HTTP health route, p50", "reported", false);
    bench_figure *ht = bench_add("HTTP trust queries, 8 clients", "queries/s",
                                 "HTTP health route, 8 clients", ">= 0.5 x baseline", true);
    bench_figure *e2e = bench_find("end to end, signed batches of 64");
    int samples = o->quick ? 10 : 30, nq = o->quick ? 300 : 2000;

    for (int i = 0; i < HOPS; i++)
        hf[i] = bench_add(hop_figs[i], "ms",
                          i >= 1 && i <= 3 ? "bare JetStream hop, p50 (3 hops / 3)" : "",
                          "reported", false);

    for (int r = 0; r < o->rounds; r++) {
        bu_suite s;
        double *ms = calloc((size_t)nq, sizeof(double)), *bms = calloc((size_t)nq, sizeof(double)),
               *rr = calloc((size_t)nq, sizeof(double));
        char deny_token[128];
        double(*hops)[HOPS] = calloc((size_t)samples, sizeof(*hops)), hv[64];
        double per_s = 0, bper_s = 0, anew_s = 0, rate;
        long long reused = 0, reused_anew = 0;
        loader ld = {0};
        pthread_t lt;
        natsSubscription *echo = NULL;
        uint8_t *req = NULL;
        size_t len = 0;
        char path[96];
        int rc = -1;

        if (!ms || !bms || !rr || !hops || bu_start(&s, AGENTS, NULL) != 0)
            goto round_out;
        /* every agent has a state (and its pact) before containment is timed */
        for (int a = 0; a < AGENTS; a++) {
            char p[16];
            snprintf(p, sizeof(p), "warm-%d", a);
            if (!h_publish_events(&s.h, s.ids[a], &s.keys[a], p, 1, "reply", "latency_ms", 500,
                                  NULL, NULL))
                goto round_out;
        }
        if (h_wait_metric(&s.h, "scorer", "pactum_scorer_verdicts_total", AGENTS * BU_CLAUSES,
                          60000) < AGENTS * BU_CLAUSES)
            goto round_out;
        /* baseline latency (its samples as far apart as the containments', and back to back),
         * then containment idle */
        if (bu_bare_latency(&s.h, 3, samples, 0, bms) != 0)
            goto round_out;
        add_rounds(bb, bu_pct(bms, samples, 50), -1);
        if (bu_bare_latency(&s.h, 3, samples, BU_CONTAIN_GAP_MS, bms) != 0 ||
            contain(&s, 0, samples, ms, hops) != 0)
            goto round_out;
        add_rounds(c50, bu_pct(ms, samples, 50), bu_pct(bms, samples, 50));
        add_rounds(c99, bu_pct(ms, samples, 99), bu_pct(bms, samples, 99));
        for (int i = 0; i < HOPS; i++) {
            for (int k = 0; k < samples && k < 64; k++)
                hv[k] = hops[k][i];
            add_rounds(hf[i], bu_pct(hv, samples < 64 ? samples : 64, 50),
                       i >= 1 && i <= 3 ? bu_pct(bms, samples, 50) / 3 : -1);
        }
        printf("  containment, round %d, idle p50 by hop:", r + 1);
        for (int i = 0; i < HOPS; i++)
            printf(" %s %.2f", hop_names[i], hf[i]->v[hf[i]->n - 1]);
        printf(" ms\n");
        /* under half of the end-to-end rate measured in this run (or 2,000/s) */
        rate = e2e && e2e->n ? bench_median(e2e->v, e2e->n) / 2 : 2000;
        ld = (loader){.s = &s, .rate = rate};
        pthread_create(&lt, NULL, load_main, &ld);
        pk_sleep_ms(1000);
        rc = contain(&s, 32, 32 + samples, ms, hops);
        ld.stop = true;
        pthread_join(lt, NULL);
        if (rc != 0)
            goto round_out;
        rc = -1;
        add_rounds(l50, bu_pct(ms, samples, 50), bu_pct(bms, samples, 50));
        add_rounds(l99, bu_pct(ms, samples, 99), bu_pct(bms, samples, 99));
        printf("  containment, round %d, under load, p50 by hop:", r + 1);
        for (int i = 0; i < HOPS; i++) {
            for (int k = 0; k < samples && k < 64; k++)
                hv[k] = hops[k][i];
            printf(" %s %.2f", hop_names[i], bu_pct(hv, samples < 64 ? samples : 64, 50));
        }
        printf(" ms\n");
        printf("  containment, round %d: idle p50 %.2f p99 %.2f ms; at %.0f events/s p50 %.2f "
               "p99 %.2f ms; bare 3 hops p50 %.2f ms (back to back %.2f ms)\n",
               r + 1, c50->v[c50->n - 1], c99->v[c99->n - 1], rate, l50->v[l50->n - 1],
               l99->v[l99->n - 1], c50->b[c50->nb - 1], bb->v[bb->n - 1]);
        fflush(stdout);
        /* oracle queries, against the bare responder */
        if (natsConnection_Subscribe(&echo, s.h.bus->nc, "bench.echo", bu_on_echo, NULL) != NATS_OK)
            goto round_out;
        natsConnection_Flush(s.h.bus->nc);
        {
            Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
            q.agent_id = s.ids[QUERY_AGENT];
            if (pk_pack(&q.base, &req, &len) != PK_OK)
                goto round_out;
        }
        if (requests(s.h.url, "bench.echo", req, len, NULL, nq, bms, &bper_s) != 0 ||
            requests(s.h.url, PK_SUBJ_ORACLE_TRUST, req, len, NULL, nq, ms, &per_s) != 0)
            goto round_out;
        add_rounds(q50, bu_pct(ms, nq, 50), bu_pct(bms, nq, 50));
        add_rounds(q99, bu_pct(ms, nq, 99), bu_pct(bms, nq, 99));
        add_rounds(qt, per_s, bper_s);
        reused = h_metric(&s.h, "oracle", "pactum_oracle_answers_reused_total");
        if (requests(s.h.url, PK_SUBJ_ORACLE_TRUST, req, len, s.ids[QUERY_AGENT], nq, ms,
                     &anew_s) != 0)
            goto round_out;
        add_rounds(n50, bu_pct(ms, nq, 50), bu_pct(bms, nq, 50));
        add_rounds(nt, anew_s, bper_s);
        reused_anew = h_metric(&s.h, "oracle", "pactum_oracle_answers_reused_total") - reused;
        free(req);
        req = NULL;
        {
            Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
            char token[128];
            if (!h_client(&s.h, "@bench", token, sizeof(token)))
                goto round_out;
            q.agent_id = s.ids[QUERY_AGENT];
            q.action = "reply";
            q.client_token = token;
            if (pk_pack(&q.base, &req, &len) != PK_OK ||
                requests(s.h.url, PK_SUBJ_ORACLE_AUTHORIZE, req, len, NULL, nq / 4, ms, &per_s) !=
                    0)
                goto round_out;
            add_rounds(az, per_s, bper_s);
            add_rounds(a50, bu_pct(ms, nq / 4, 50), bu_pct(bms, nq, 50));
        }
        printf("  oracle, round %d: trust p50 %.3f ms (bare %.3f), 8 clients %.0f/s (bare %.0f/s),"
               " %lld answers sent again; made anew: p50 %.3f ms, 8 clients %.0f/s (%lld sent "
               "again); authorize %.0f/s\n",
               r + 1, q50->v[q50->n - 1], q50->b[q50->nb - 1], qt->v[qt->n - 1], bper_s, reused,
               n50->v[n50->n - 1], nt->v[nt->n - 1], reused_anew, az->v[az->n - 1]);
        /* HTTP */
        snprintf(path, sizeof(path), "/v1/agents/%s/trust", s.ids[QUERY_AGENT]);
        if (http_requests(s.h.http_port, "/v1/health", nq, bms, &bper_s) != 0 ||
            http_requests(s.h.http_port, path, nq, ms, &per_s) != 0)
            goto round_out;
        add_rounds(h50, bu_pct(ms, nq, 50), bu_pct(bms, nq, 50));
        add_rounds(ht, per_s, bper_s);
        printf("  http, round %d: trust p50 %.3f ms (health %.3f), 8 clients %.0f/s (health "
               "%.0f/s)\n",
               r + 1, h50->v[h50->n - 1], h50->b[h50->nb - 1], per_s, bper_s);
        fflush(stdout);
        /* last, since every question a caller asks is recorded and logged: containment to deny,
         * idle, against 3 bare hops and one bare request-reply measured alongside ... */
        if (!h_client(&s.h, "@deny", deny_token, sizeof(deny_token)) ||
            deny_figures(&s, deny_token, 64, samples, ms, bms, rr, d50, d99) != 0)
            goto round_out;
        printf("  containment to deny, round %d, idle: p50 %.2f p99 %.2f ms (bare hops + "
               "request-reply p50 %.2f ms)\n",
               r + 1, d50->v[d50->n - 1], d99->v[d99->n - 1], d50->b[d50->nb - 1]);
        /* ... and under the same load as above, with its baseline */
        ld = (loader){.s = &s, .rate = rate};
        pthread_create(&lt, NULL, load_main, &ld);
        pk_sleep_ms(1000);
        rc = deny_figures(&s, deny_token, 96, samples, ms, bms, rr, dl50, dl99);
        if (rc == 0)
            printf("  containment to deny, round %d, at %.0f events/s: p50 %.2f p99 %.2f ms (bare "
                   "hops + request-reply under the same load p50 %.2f ms)\n",
                   r + 1, rate, dl50->v[dl50->n - 1], dl99->v[dl99->n - 1], dl50->b[dl50->nb - 1]);
        ld.stop = true;
        pthread_join(lt, NULL);
        if (rc != 0)
            goto round_out;
        fflush(stdout);
        rc = 0;
    round_out:
        if (echo)
            natsSubscription_Destroy(echo);
        free(req);
        free(ms);
        free(bms);
        free(rr);
        free(hops);
        bu_stop(&s);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* --- the victim of a flood ----------------------------------------------------------- */

#define FLOOD_AGENTS 64
#define FLOOD_EVENTS 100000

typedef struct flooder {
    bu_suite *s;
    int agent;
    volatile bool stop;
    volatile long sent;
} flooder;

/* Agent f->agent publishes FLOOD_EVENTS good events in signed batches of 64, as fast as the
 * server takes them. */
static void *flood_main(void *p)
{
    flooder *f = p;
    pk_bus *bus = h_connect(f->s->h.url, "bench-flood", false);
    Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
    char subject[64];

    if (!bus)
        return NULL;
    m.name = "latency_ms";
    m.value = 600;
    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, f->s->ids[f->agent]);
    for (long k = 0; f->sent < FLOOD_EVENTS && !f->stop; k++) {
        pk_event_msg evs[64], *evp[64];
        char ids[64][40];
        uint8_t *env;
        size_t len;
        for (int i = 0; i < 64; i++) {
            snprintf(ids[i], sizeof(ids[i]), "flood-%ld-%d", k, i);
            h_event_init(&evs[i], ids[i], f->s->ids[f->agent], "reply", &m, NULL);
            evs[i].metrics = mp;
            evs[i].n_metrics = 1;
            evp[i] = &evs[i];
        }
        if (!(env = h_envelope(f->s->ids[f->agent], &f->s->keys[f->agent], evp, 64, &len)))
            break;
        if (pk_bus_publish_async(bus, subject, env, len, NULL) == PK_OK)
            f->sent += 64;
        free(env);
        if (k % 256 == 255 && pk_bus_publish_wait(bus, 10000) != PK_OK)
            fprintf(stderr, "flood: %s\n", pk_error_msg());
    }
    if (pk_bus_publish_wait(bus, 10000) != PK_OK)
        fprintf(stderr, "flood: %s\n", pk_error_msg());
    pk_bus_close(bus);
    return NULL;
}

/*
 * One agent floods its partition with 100,000 events while ingest limits each signer to its
 * default rate (1,000 events a second, the rest refused); meanwhile other agents of the same
 * partition violate their pacts one at a time, and a caller polls authorize for each until
 * it denies.
 */
int bench_flood(const bench_opts *o)
{
    bench_figure *f50 =
        bench_add("containment to deny p50, victim of a flood", "ms", "", "<= 50 ms", false);
    bench_figure *f99 =
        bench_add("containment to deny p99, victim of a flood", "ms", "", "reported", false);
    int want = o->quick ? 5 : 15;

    for (int r = 0; r < o->rounds; r++) {
        bu_suite s;
        flooder fl = {0};
        pthread_t ft;
        double ms[FLOOD_AGENTS];
        int victims[FLOOD_AGENTS], n = 0, got = 0, rc = -1;
        uint32_t parts = 0, p;
        char token[128];
        bool flooding = false;

        if (bu_start_limited(&s, FLOOD_AGENTS) != 0 ||
            pk_streams_ensure(s.h.bus, &parts) != PK_OK || parts == 0 ||
            !h_client(&s.h, "@flood", token, sizeof(token)))
            goto round_out;
        p = pk_partition_of(s.ids[0], parts);
        for (int a = 1; a < FLOOD_AGENTS && n < want; a++) {
            if (pk_partition_of(s.ids[a], parts) == p)
                victims[n++] = a;
        }
        /* every victim has a state before it is timed */
        for (int i = 0; i < n; i++) {
            char pre[16];
            snprintf(pre, sizeof(pre), "warm-%d", i);
            if (!h_publish_events(&s.h, s.ids[victims[i]], &s.keys[victims[i]], pre, 1, "reply",
                                  "latency_ms", 500, NULL, NULL))
                goto round_out;
        }
        if (h_wait_metric(&s.h, "scorer", "pactum_scorer_verdicts_total", n * BU_CLAUSES, 60000) <
            n * BU_CLAUSES)
            goto round_out;
        fl = (flooder){.s = &s, .agent = 0};
        if (pthread_create(&ft, NULL, flood_main, &fl) != 0)
            goto round_out;
        flooding = true;
        for (int i = 0; i < 200 && fl.sent < FLOOD_EVENTS / 10; i++)
            pk_sleep_ms(10);
        for (int i = 0; i < n; i++) {
            if (deny_one(&s, token, victims[i], &ms[got]) == 0)
                got++;
        }
        rc = got == n && n > 0 ? 0 : -1;
        if (rc == 0) {
            add_rounds(f50, bu_pct(ms, got, 50), -1);
            add_rounds(f99, bu_pct(ms, got, 99), -1);
            printf("  containment to deny, round %d, %d victims of a flood (%ld events sent by "
                   "then, rate limit on): p50 %.2f p99 %.2f ms\n",
                   r + 1, got, fl.sent, f50->v[f50->n - 1], f99->v[f99->n - 1]);
            fflush(stdout);
        }
    round_out:
        if (flooding) {
            fl.stop = true;
            pthread_join(ft, NULL);
        }
        bu_stop(&s);
        if (rc != 0)
            return -1;
    }
    return 0;
}
