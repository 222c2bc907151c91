/*
 * Scale: what an agent costs in LMDB, and whether a trust query slows down
 * when the oracle knows a million agents.
 *
 * One agent's real state is made by the suite (registration, a pact of two
 * clauses, 40 events through the whole pipeline). Its records in each
 * service's LMDB (evaluator: clause states; scorer: trust state; oracle: read
 * model and registry copy) are then copied for N synthetic agents into fresh
 * LMDB folders, N = 1,000 and 1,000,000, and the bytes in use are divided by
 * N. Records that grow with events rather than agents (the transparency log,
 * tier histories, ingest's duplicate table) are not counted; their sizes are
 * in docs/operations.md. An oracle is then started on each synthetic folder
 * and asked about random agents.
 *
 * Then 100,000 agents in the registry stream and the whole suite on them:
 * questions spread by a Zipf law, events from all of them, containment and
 * memory (docs/performance.md says what each figure measures).
 */
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/store.h"
#include "util.h"

typedef struct copy_spec {
    const char *service; /* LMDB folder */
    const char *dbs[4];  /* per-agent databases */
} copy_spec;

static const copy_spec specs[] = {
    {"evaluator", {"states", NULL}},
    {"scorer", {"agents", NULL}},
    {"oracle", {"reports", "reg_agents", NULL}},
};

/*
 * For the questions about many agents: the oracle's read model of each. Their registrations
 * and pacts (a pact binds one agent) go into the registry stream (bu_registry_load), which
 * the oracle and the evaluator read at their start; the evaluator's clause states start
 * empty.
 */
static const copy_spec query_specs[] = {
    {"oracle", {"reports", NULL}},
};

#define N_SPECS (sizeof(specs) / sizeof(specs[0]))

/* Does key belong to agent (== agent, or agent \0 ...)? */
static bool of_agent(const MDB_val *k, const char *agent)
{
    size_t al = strlen(agent);

    return k->mv_size >= al && memcmp(k->mv_data, agent, al) == 0 &&
           (k->mv_size == al || ((const char *)k->mv_data)[al] == '\0');
}

/* Copy every record of agent in src's dbs for n agents "s%07d" into a fresh env at dst. */
static int replicate(const char *src_dir, const char *dst_dir, const copy_spec *sp,
                     const char *agent, long n, uint64_t *used)
{
    pk_store *src = NULL, *dst = NULL;
    MDB_txn *rt = NULL;
    int rc = -1;

    mkdir(dst_dir, 0700);
    if (pk_store_open(&src, src_dir, 64, 32) != PK_OK ||
        pk_store_open(&dst, dst_dir, 16384, 32) != PK_OK)
        goto out;
    mdb_env_set_flags(dst->env, MDB_NOSYNC, 1); /* a bulk load; synced once at the end */
    for (int d = 0; sp->dbs[d]; d++) {
        MDB_dbi sdb, ddb;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        /* the agent's records, copied out of the read transaction */
        struct {
            uint8_t *key, *val;
            size_t kl, vl;
        } recs[64];
        int nr = 0;
        if (pk_store_dbi(src, sp->dbs[d], 0, &sdb) != PK_OK ||
            pk_store_dbi(dst, sp->dbs[d], 0, &ddb) != PK_OK)
            goto out;
        /* a read transaction sees only the databases opened before it began */
        pk_txn_abort(rt);
        rt = NULL;
        if (pk_txn_begin(src, false, &rt) != PK_OK)
            goto out;
        if (mdb_cursor_open(rt, sdb, &cur) != 0) {
            PK_ERR(PK_ESTORE, "cannot read %s", sp->dbs[d]);
            goto out;
        }
        for (int c = mdb_cursor_get(cur, &k, &v, MDB_FIRST); c == 0 && nr < 64;
             c = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (!of_agent(&k, agent))
                continue;
            recs[nr].kl = k.mv_size - strlen(agent);
            recs[nr].key = malloc(recs[nr].kl + 1);
            recs[nr].vl = v.mv_size;
            recs[nr].val = malloc(v.mv_size + 1);
            memcpy(recs[nr].key, (uint8_t *)k.mv_data + strlen(agent), recs[nr].kl);
            memcpy(recs[nr].val, v.mv_data, v.mv_size);
            nr++;
        }
        mdb_cursor_close(cur);
        if (nr == 0) {
            PK_ERR(PK_ENOTFOUND, "no record of %s in %s", agent, sp->dbs[d]);
            goto out;
        }
        for (long i = 0; i < n;) {
            MDB_txn *wt = NULL;
            if (pk_txn_begin(dst, true, &wt) != PK_OK)
                goto out;
            for (long end = i + 20000; i < n && i < end; i++) {
                char id[16];
                uint8_t key[256];
                snprintf(id, sizeof(id), "s%07ld", i);
                for (int r = 0; r < nr; r++) {
                    size_t il = strlen(id);
                    memcpy(key, id, il);
                    memcpy(key + il, recs[r].key, recs[r].kl);
                    if (pk_put(wt, ddb, key, il + recs[r].kl, recs[r].val, recs[r].vl, 0) !=
                        PK_OK) {
                        pk_txn_abort(wt);
                        goto out;
                    }
                }
            }
            if (pk_txn_commit(wt) != PK_OK)
                goto out;
        }
        for (int r = 0; r < nr; r++) {
            free(recs[r].key);
            free(recs[r].val);
        }
    }
    mdb_env_sync(dst->env, 1);
    {
        uint64_t map = 0;
        if (pk_store_usage(dst, used, &map) != PK_OK)
            goto out;
    }
    rc = 0;
out:
    pk_txn_abort(rt);
    pk_store_close(src);
    pk_store_close(dst);
    return rc;
}

/* Start an oracle on data dir `dir` (its oracle/ folder) and time trust queries of random agents.
 */
static double query_p50(h_env *h, const char *dir, long n, int queries)
{
    char env_dir[600], *argv[2];
    const char *extra[4];
    double *ms = calloc((size_t)queries, sizeof(double)), p50 = -1;
    pid_t saved = h->svc_pid[3];
    long long faults = -1;
    int ok = 0;

    snprintf(env_dir, sizeof(env_dir), "PACTUM_DATA_DIR=%s", dir);
    extra[0] = env_dir;
    extra[1] = "PACTUM_LMDB_MAP_MB=16384";
    /* every answer made from the state: with 1,000 agents a random one is often asked again
     * within the reuse time, which would make the small state look faster than it is */
    extra[2] = "PACTUM_ORACLE_REUSE=0s";
    extra[3] = NULL;
    (void)argv;
    if (!ms || !h_start_service(h, 3, extra))
        goto out;
    srand(11);
    faults = h_page_faults(h->svc_pid[3]);
    for (int i = 0; i < queries; i++) {
        Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
        char id[16];
        uint8_t *buf = NULL;
        size_t len = 0;
        natsMsg *m = NULL;
        int64_t t0;
        snprintf(id, sizeof(id), "s%07ld",
                 (long)(((unsigned long)rand() << 16 ^ (unsigned)rand()) % (unsigned long)n));
        q.agent_id = id;
        if (pk_pack(&q.base, &buf, &len) != PK_OK)
            break;
        t0 = pk_mono_ns();
        if (natsConnection_Request(&m, h->bus->nc, PK_SUBJ_ORACLE_TRUST, buf, (int)len, 5000) ==
            NATS_OK) {
            ms[ok++] = (double)(pk_mono_ns() - t0) / 1e6;
            natsMsg_Destroy(m);
        }
        free(buf);
    }
    if (ok == queries)
        p50 = bu_pct(ms, ok, 50);
    if (faults >= 0 && ok > 0)
        printf("  scale: %ld agents, %.1f page faults in the oracle per query (its warm-up's "
               "included)\n",
               n, (double)(h_page_faults(h->svc_pid[3]) - faults) / ok);
out:
    if (h->svc_pid[3] > 0)
        h_stop_pid(h->svc_pid[3], SIGTERM, 15000);
    h->svc_pid[3] = saved;
    free(ms);
    return p50;
}

/* --- queries about many agents, spread by a Zipf law -------------------------------- */

#define ZIPF_AGENTS  100000 /* 10,000 in a quick run */
#define ZIPF_CLIENTS 8

static long zipf_agents = ZIPF_AGENTS;

typedef struct zipf_client {
    const char *url;
    const double *cdf; /* cdf[i]: the chance that an agent of rank <= i is asked about */
    const char *token; /* the API client's, for authorize */
    const char *echo;  /* NULL: ask the oracle; else a bare responder's subject */
    int n;             /* requests */
    unsigned seed;
    int ok; /* answered, with status ok */
} zipf_client;

static long zipf_rank(const double *cdf, unsigned *seed)
{
    double u = (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
    long lo = 0, hi = zipf_agents - 1;

    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Is m a signed answer (of a trust report, or of a decision) whose status is ok? */
static bool answered_ok(natsMsg *m, bool authorize)
{
    Pactum__V1__Signed *env = pactum__v1__signed__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                         (const uint8_t *)natsMsg_GetData(m));
    bool ok = false;

    if (!env)
        return false;
    if (authorize) {
        Pactum__V1__AuthorizeDecision *d =
            pactum__v1__authorize_decision__unpack(NULL, env->payload.len, env->payload.data);
        ok = d && d->status == PACTUM__V1__QUERY_STATUS__QUERY_OK;
        if (d)
            pactum__v1__authorize_decision__free_unpacked(d, NULL);
    } else {
        Pactum__V1__TrustReport *t =
            pactum__v1__trust_report__unpack(NULL, env->payload.len, env->payload.data);
        ok = t && t->status == PACTUM__V1__QUERY_STATUS__QUERY_OK;
        if (t)
            pactum__v1__trust_report__free_unpacked(t, NULL);
    }
    pactum__v1__signed__free_unpacked(env, NULL);
    return ok;
}

/* One client: n questions, one at a time; one in ten an authorize, the rest trust reports. */
static void *zipf_main(void *p)
{
    zipf_client *c = p;
    pk_bus *bus = h_connect(c->url, "bench-zipf", true);

    if (!bus)
        return NULL;
    for (int i = 0; i < c->n; i++) {
        char id[16];
        bool authorize = i % 10 == 0;
        uint8_t *req = NULL;
        size_t len = 0;
        natsMsg *m = NULL;
        pk_status st;
        snprintf(id, sizeof(id), "s%07ld", zipf_rank(c->cdf, &c->seed));
        if (authorize) {
            Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
            q.agent_id = id;
            q.action = "reply";
            q.client_token = (char *)c->token;
            st = pk_pack(&q.base, &req, &len);
        } else {
            Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
            q.agent_id = id;
            st = pk_pack(&q.base, &req, &len);
        }
        if (st != PK_OK)
            break;
        if (natsConnection_Request(&m, bus->nc,
                                   c->echo     ? c->echo
                                   : authorize ? PK_SUBJ_ORACLE_AUTHORIZE
                                               : PK_SUBJ_ORACLE_TRUST,
                                   req, (int)len, 5000) == NATS_OK &&
            (c->echo || answered_ok(m, authorize)))
            c->ok++;
        natsMsg_Destroy(m);
        free(req);
    }
    pk_bus_close(bus);
    return NULL;
}

/* ZIPF_CLIENTS clients of n questions each; questions a second, or -1 if one went unanswered. */
static double zipf_rate(h_env *h, const double *cdf, const char *token, const char *echo, int n)
{
    zipf_client c[ZIPF_CLIENTS];
    pthread_t th[ZIPF_CLIENTS];
    int64_t t0 = pk_mono_ns();
    int ok = 0;

    for (int i = 0; i < ZIPF_CLIENTS; i++) {
        c[i] = (zipf_client){h->url, cdf, token, echo, n, 1000u + (unsigned)i, 0};
        pthread_create(&th[i], NULL, zipf_main, &c[i]);
    }
    for (int i = 0; i < ZIPF_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += c[i].ok;
    }
    if (ok != ZIPF_CLIENTS * n) {
        fprintf(stderr, "bench: %d of %d questions about %ld agents unanswered\n",
                ZIPF_CLIENTS * n - ok, ZIPF_CLIENTS * n, zipf_agents);
        return -1;
    }
    return ok / ((double)(pk_mono_ns() - t0) / 1e9);
}

/* Until the evaluator answers for every partition: an authorize about 64 agents answered. */
static bool zipf_ready(h_env *h, const char *token)
{
    int64_t deadline = pk_mono_ms() + 60000;

    for (long a = 0; a < 64 && pk_mono_ms() < deadline;) {
        Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
        char id[16];
        uint8_t *req = NULL;
        size_t len = 0;
        natsMsg *m = NULL;
        bool ok = false;
        snprintf(id, sizeof(id), "s%07ld", a);
        q.agent_id = id;
        q.action = "reply";
        q.client_token = (char *)token;
        if (pk_pack(&q.base, &req, &len) == PK_OK &&
            natsConnection_Request(&m, h->bus->nc, PK_SUBJ_ORACLE_AUTHORIZE, req, (int)len, 5000) ==
                NATS_OK)
            ok = answered_ok(m, true);
        natsMsg_Destroy(m);
        free(req);
        if (ok)
            a++;
        else
            pk_sleep_ms(100);
    }
    if (pk_mono_ms() >= deadline)
        fprintf(stderr, "bench: the evaluator and the oracle did not answer for every agent\n");
    return pk_mono_ms() < deadline;
}

/* --- the whole pipeline with many agents registered ---------------------------------- */

/* Verdicts the evaluator has published, whatever their outcome (-1 if it did not say). */
static long long verdicts_published(h_env *h)
{
    static const char *const outcomes[] = {"pass", "fail", "insufficient", "stale"};
    long long sum = 0;

    for (int i = 0; i < 4; i++) {
        char series[96];
        long long v;
        snprintf(series, sizeof(series), "pactum_evaluator_verdicts_total{outcome=\"%s\"}",
                 outcomes[i]);
        if ((v = h_metric(h, "evaluator", series)) < 0)
            return -1;
        sum += v;
    }
    return sum;
}

/*
 * n events, kind reply, from the registered agents [0, senders), as evenly as they go, each
 * envelope one agent's events (at most 64), signed with the registry's key; then events a
 * second from the first publish until the evaluator has taken them all and the scorer has
 * committed every verdict it published. -1 if that did not happen within 5 minutes.
 */
static double wide_e2e(h_env *h, long senders, long n, const char *prefix)
{
    const pk_keypair *kp = bu_registry_key();
    long per = n / senders, n_envs = 0, cap = senders * ((per + 63) / 64 + 1);
    uint8_t **envs = calloc((size_t)cap, sizeof(*envs));
    size_t *lens = calloc((size_t)cap, sizeof(*lens));
    char **subjects = calloc((size_t)cap, sizeof(*subjects));
    pk_event_msg evs[64], *evp[64];
    char ids[64][48];
    Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
    long long events0 = h_metric(h, "evaluator", "pactum_evaluator_events_total");
    int64_t t0, deadline;
    double rate = -1;

    m.name = "latency_ms";
    m.value = 700;
    for (long a = 0; envs && lens && subjects && a < senders; a++) {
        char agent[32];
        long mine = per + (a < n % senders);
        snprintf(agent, sizeof(agent), "s%07ld", a);
        for (long done = 0; done < mine;) {
            int k = 0;
            for (; k < 64 && done < mine; k++, done++) {
                snprintf(ids[k], sizeof(ids[k]), "%s-%ld-%ld", prefix, a, done);
                h_event_init(&evs[k], ids[k], agent, "reply", &m, NULL);
                evs[k].metrics = mp;
                evs[k].n_metrics = 1;
                evp[k] = &evs[k];
            }
            envs[n_envs] = h_envelope(agent, kp, evp, (size_t)k, &lens[n_envs]);
            subjects[n_envs] = malloc(64);
            if (!envs[n_envs] || !subjects[n_envs])
                goto out;
            snprintf(subjects[n_envs], 64, PK_SUBJ_RAW, agent);
            n_envs++;
        }
    }
    if (events0 < 0)
        goto out;
    t0 = pk_mono_ns();
    if (bu_publish_all(h->bus, envs, lens, subjects, n_envs) != 0)
        goto out;
    deadline = pk_mono_ms() + 300000;
    while (pk_mono_ms() < deadline) {
        long long ev = h_metric(h, "evaluator", "pactum_evaluator_events_total");
        long long pub = ev >= events0 + n ? verdicts_published(h) : -1;
        if (pub >= 0 && h_metric(h, "scorer", "pactum_scorer_verdicts_total") >= pub) {
            rate = (double)n / ((double)(pk_mono_ns() - t0) / 1e9);
            break;
        }
        pk_sleep_ms(5);
    }
out:
    bu_envelopes_free(envs, lens, subjects, n_envs);
    return rate;
}

/* Containment p50 (ms) of `samples` registered agents, from the far end of the registry. */
static double wide_containment(h_env *h, int samples, int round)
{
    natsSubscription *sub = NULL;
    double *ms = calloc((size_t)samples, sizeof(*ms)), p50 = -1;
    int got = 0;

    if (!ms || natsConnection_SubscribeSync(&sub, h->bus->nc, "pactum.trust.*") != NATS_OK ||
        natsConnection_Flush(h->bus->nc) != NATS_OK)
        goto out;
    for (; got < samples; got++) {
        char agent[32], id[48];
        snprintf(agent, sizeof(agent), "s%07ld", zipf_agents - 1 - (long)round * samples - got);
        snprintf(id, sizeof(id), "wide-leak-%d-%d", round, got);
        if ((ms[got] = bu_contain_one(h, sub, agent, bu_registry_key(), id)) < 0)
            goto out;
        pk_sleep_ms(BU_CONTAIN_GAP_MS);
    }
    p50 = bu_pct(ms, samples, 50);
out:
    natsSubscription_Destroy(sub);
    free(ms);
    return p50;
}

/*
 * zipf_agents agents registered (their pacts in the registry stream) with their state in a
 * fresh folder, the four services on it; then each round, ZIPF_CLIENTS clients asking about
 * agents chosen by a Zipf law (s = 1.1), and the same clients asking a bare responder, one
 * right after the other; then the rounds of the whole pipeline with those agents.
 */
typedef struct wide_figures {
    bench_figure *zipf;    /* questions */
    bench_figure *e2e;     /* events from every agent, against events from 1,000 of them */
    bench_figure *contain; /* containment p50 */
    bench_figure *rss;     /* the largest service's anonymous RSS after end to end */
} wide_figures;

static int zipf_figure(bu_suite *s, const char *token, const bench_opts *o, wide_figures *w)
{
    static double cdf[ZIPF_AGENTS];
    char dir[600], env_dir[700], cmd[700];
    const char *extra[] = {env_dir, "PACTUM_LMDB_MAP_MB=16384", "PACTUM_ORACLE_AUTHORIZE_RATE=0",
                           "PACTUM_INGEST_RATE=0", NULL};
    natsSubscription *echo = NULL;
    int n = o->quick ? 200 : 2000, rc = -1;
    uint64_t seq = 0;
    double sum = 0;

    zipf_agents = o->quick ? 10000 : ZIPF_AGENTS;
    for (long i = 0; i < zipf_agents; i++)
        cdf[i] = (sum += 1.0 / pow((double)(i + 1), 1.1));
    for (long i = 0; i < zipf_agents; i++)
        cdf[i] /= sum;
    if (bu_registry_load(&s->h, zipf_agents, "s", 7, bu_pact_doc, NULL, &seq) != 0) {
        fprintf(stderr, "bench: could not register %ld agents: %s\n", zipf_agents, pk_error_msg());
        return -1;
    }
    snprintf(dir, sizeof(dir), "%s/zipf", s->h.dir);
    mkdir(dir, 0700);
    for (size_t i = 0; i < sizeof(query_specs) / sizeof(query_specs[0]); i++) {
        char src[600], dst[700];
        uint64_t used = 0;
        snprintf(src, sizeof(src), "%s/var/%s", s->h.dir, query_specs[i].service);
        snprintf(dst, sizeof(dst), "%s/%s", dir, query_specs[i].service);
        if (replicate(src, dst, &query_specs[i], s->ids[0], zipf_agents, &used) != 0) {
            fprintf(stderr, "bench: could not copy the %s state: %s\n", query_specs[i].service,
                    pk_error_msg());
            return -1;
        }
    }
    snprintf(env_dir, sizeof(env_dir), "PACTUM_DATA_DIR=%s", dir);
    /* each reads the registry of all those agents and pacts at its start: give it time */
    for (int i = 0; i < H_SERVICES; i++) {
        int64_t t0 = pk_mono_ms();
        if (!h_start_service(&s->h, i, extra) &&
            (s->h.svc_pid[i] <= 0 || !h_wait_healthy(&s->h, h_service_names[i], 180000))) {
            fprintf(stderr, "bench: the %s did not start with %ld agents\n", h_service_names[i],
                    zipf_agents);
            goto out;
        }
        printf("  zipf: the %s started with %ld agents in %.1f s\n", h_service_names[i],
               zipf_agents, (double)(pk_mono_ms() - t0) / 1000);
    }
    if (!zipf_ready(&s->h, token) ||
        natsConnection_Subscribe(&echo, s->h.bus->nc, "bench.zipf.echo", bu_on_echo, NULL) !=
            NATS_OK ||
        natsConnection_Flush(s->h.bus->nc) != NATS_OK)
        goto out;
    for (int r = 0; r < o->rounds; r++) {
        double fig, bare;
        if ((fig = zipf_rate(&s->h, cdf, token, NULL, n)) < 0 ||
            (bare = zipf_rate(&s->h, cdf, token, "bench.zipf.echo", n)) < 0)
            goto out;
        w->zipf->v[w->zipf->n++] = fig;
        w->zipf->b[w->zipf->nb++] = bare;
        printf("  zipf, round %d: %.0f questions/s about %ld agents (bare %.0f/s)\n", r + 1, fig,
               zipf_agents, bare);
        fflush(stdout);
    }
    for (int r = 0; r < o->rounds; r++) {
        char p1[16], p2[16];
        double all, some, p50;
        long kib = 0, each[H_SERVICES];
        snprintf(p1, sizeof(p1), "all%d", r);
        snprintf(p2, sizeof(p2), "some%d", r);
        if ((all = wide_e2e(&s->h, zipf_agents, zipf_agents, p1)) < 0 ||
            (some = wide_e2e(&s->h, 1000, zipf_agents, p2)) < 0 ||
            (p50 = wide_containment(&s->h, o->quick ? 5 : 20, r)) < 0) {
            fprintf(stderr, "bench: the pipeline with %ld agents did not finish\n", zipf_agents);
            goto out;
        }
        for (int i = 0; i < H_SERVICES; i++) {
            each[i] = bu_rss_anon_kib(s->h.svc_pid[i]);
            kib = each[i] > kib ? each[i] : kib;
        }
        w->e2e->v[w->e2e->n++] = all;
        w->e2e->b[w->e2e->nb++] = some;
        w->contain->v[w->contain->n++] = p50;
        w->rss->v[w->rss->n++] = (double)kib / 1024;
        printf(
            "  %ld agents, round %d: end to end %.0f events/s with one event from each, %.0f "
            "with as many from 1,000 of them; containment p50 %.2f ms; RSS ingest %.1f, evaluator "
            "%.1f, scorer %.1f, oracle %.1f MiB\n",
            zipf_agents, r + 1, all, some, p50, (double)each[0] / 1024, (double)each[1] / 1024,
            (double)each[2] / 1024, (double)each[3] / 1024);
        fflush(stdout);
    }
    rc = 0;
out:
    natsSubscription_Destroy(echo);
    for (int i = H_SERVICES - 1; i >= 0; i--) {
        if (s->h.svc_pid[i] > 0)
            h_stop_pid(s->h.svc_pid[i], SIGTERM, 15000);
        s->h.svc_pid[i] = 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    return rc;
}

int bench_scale(const bench_opts *o)
{
    bench_figure *q1k = bench_add("trust query p50, 1,000 agents", "ms", "", "", false);
    bench_figure *q1m = bench_add("trust query p50, 1,000,000 agents", "ms",
                                  "trust query p50, 1,000 agents", "<= 1.2 x baseline", false);
    bench_figure *bytes =
        bench_add("LMDB bytes per agent at 1,000,000 agents", "bytes", "", "<= 2048", false);
    wide_figures wide = {
        bench_add("oracle queries, 100,000 agents, zipf, 8 clients", "queries/s",
                  "bare NATS request-reply, 8 clients", ">= 0.8 x baseline", true),
        bench_add("end to end, 100,000 agents, one event from each", "events/s",
                  "end to end, 100,000 agents, as many events from 1,000 of them", "", true),
        bench_add("containment p50, idle, 100,000 agents", "ms", "", "", false),
        bench_add("RSS of the largest service after end to end, 100,000 agents", "MiB", "", "",
                  false),
    };
    bench_figure *per[N_SPECS];
    long big = o->quick ? 20000 : 1000000;
    char token[128];
    bu_suite s;
    char base[512], dir[600];
    int rc = -1;

    for (size_t i = 0; i < N_SPECS; i++) {
        char name[96];
        snprintf(name, sizeof(name), "  of which %s", specs[i].service);
        per[i] = bench_add(name, "bytes", "", "", false);
    }
    if (bu_start(&s, 1, NULL) != 0 ||
        !h_publish_events(&s.h, s.ids[0], &s.keys[0], "scale", 40, "reply", "latency_ms", 700, NULL,
                          NULL) ||
        h_wait_metric(&s.h, "scorer", "pactum_scorer_verdicts_total", 2, 30000) < 2 ||
        !h_client(&s.h, "@bench", token, sizeof(token)))
        goto out;
    pk_sleep_ms(1000);
    for (int i = H_SERVICES - 1; i >= 0; i--) {
        h_stop_pid(s.h.svc_pid[i], SIGTERM, 15000);
        s.h.svc_pid[i] = 0;
    }
    for (int r = 0; r < o->rounds; r++) {
        long sizes[2] = {1000, big};
        double p50[2];
        uint64_t total = 0;
        for (int k = 0; k < 2; k++) {
            snprintf(base, sizeof(base), "%s/scale-%d-%ld", s.h.dir, r, sizes[k]);
            mkdir(base, 0700);
            for (size_t i = 0; i < N_SPECS; i++) {
                char src[600];
                uint64_t used = 0;
                snprintf(src, sizeof(src), "%s/var/%s", s.h.dir, specs[i].service);
                snprintf(dir, sizeof(dir), "%s/%s", base, specs[i].service);
                if (replicate(src, dir, &specs[i], s.ids[0], sizes[k], &used) != 0) {
                    fprintf(stderr, "bench: could not copy the %s state: %s\n", specs[i].service,
                            pk_error_msg());
                    goto out;
                }
                if (k == 1) {
                    per[i]->v[per[i]->n++] = (double)used / (double)sizes[k];
                    total += used;
                }
            }
            p50[k] = query_p50(&s.h, base, sizes[k], o->quick ? 200 : 2000);
            if (p50[k] < 0)
                goto out;
            {
                char cmd[700];
                snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
                if (system(cmd) != 0)
                    fprintf(stderr, "bench: could not remove %s\n", base);
            }
        }
        q1k->v[q1k->n++] = p50[0];
        q1m->v[q1m->n++] = p50[1];
        q1m->b[q1m->nb++] = p50[0];
        bytes->v[bytes->n++] = (double)total / (double)big;
        printf("  scale, round %d: trust query p50 %.3f ms at 1,000 agents, %.3f ms at %ld; "
               "%.0f bytes per agent\n",
               r + 1, p50[0], p50[1], big, (double)total / (double)big);
        fflush(stdout);
    }
    if (zipf_figure(&s, token, o, &wide) != 0)
        goto out;
    rc = 0;
out:
    bu_stop(&s);
    return rc;
}
