#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/pact.h"

#define PACT_FMT                                                                                   \
    "{\"pactum\":1,\"id\":\"%s-pact\",\"agent\":\"%s\",\"clauses\":["                              \
    "{\"id\":\"latency\",\"promise\":\"replies within 2 s on average\",\"severity\":\"high\","     \
    "\"kind\":\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\","   \
    "\"op\":\"<=\",\"threshold\":2000,\"min_samples\":1},"                                         \
    "{\"id\":\"no-leak\",\"promise\":\"never leaks\",\"severity\":\"critical\",\"kind\":"          \
    "\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"kind\",\"eq\":\"leak\"}}]}"

/* Throughput is measured without the per-signer rate limit (a few agents send it all). */
const char *const bu_ingest_env[] = {"PACTUM_INGEST_RATE=0", NULL};

/* ... and no per-client limits on the oracle (8 clients ask as fast as they can). */
const char *const bu_oracle_env[] = {"PACTUM_ORACLE_AUTHORIZE_RATE=0", "PACTUM_ORACLE_HTTP_RATE=0",
                                     NULL};

int bu_start(bu_suite *s, int n_agents, const char *const *eval_env)
{
    return bu_start_on(s, 0, n_agents, eval_env);
}

static int start_suite(bu_suite *s, int nodes, int n_agents, const char *const *ingest_env,
                       const char *const *eval_env);

int bu_start_on(bu_suite *s, int nodes, int n_agents, const char *const *eval_env)
{
    return start_suite(s, nodes, n_agents, bu_ingest_env, eval_env);
}

int bu_start_limited(bu_suite *s, int n_agents)
{
    return start_suite(s, 0, n_agents, NULL, NULL);
}

static int start_suite(bu_suite *s, int nodes, int n_agents, const char *const *ingest_env,
                       const char *const *eval_env)
{
    memset(s, 0, sizeof(*s));
    if (n_agents > BU_AGENTS_MAX ||
        !(nodes ? h_start_cluster(&s->h, nodes) : h_start(&s->h, false)))
        return -1;
    for (int i = 0; i < H_SERVICES; i++) {
        if (!h_start_service(&s->h, i,
                             i == 0   ? ingest_env
                             : i == 1 ? eval_env
                             : i == 3 ? bu_oracle_env
                                      : NULL))
            return -1;
    }
    s->n_agents = n_agents;
    for (int i = 0; i < n_agents; i++) {
        Pactum__V1__RegistryReceipt *r;
        uint8_t seed[32] = {0};
        char doc[1024];
        seed[0] = (uint8_t)i;
        seed[1] = (uint8_t)(i >> 8);
        seed[2] = 0x5a;
        if (pk_keypair_from_seed(&s->keys[i], seed) != PK_OK)
            return -1;
        snprintf(s->ids[i], sizeof(s->ids[i]), "b-%04d", i);
        r = h_register_agent(&s->h, s->ids[i], &s->keys[i], &s->keys[i]);
        if (!r || !r->ok)
            return -1;
        pactum__v1__registry_receipt__free_unpacked(r, NULL);
        snprintf(doc, sizeof(doc), PACT_FMT, s->ids[i], s->ids[i]);
        r = h_register_pact(&s->h, &s->keys[i], doc);
        if (!r || !r->ok)
            return -1;
        pactum__v1__registry_receipt__free_unpacked(r, NULL);
    }
    return 0;
}

void bu_stop(bu_suite *s)
{
    h_stop(&s->h);
}

int bu_envelopes(bu_suite *s, long n, int per_env, const char *prefix, uint8_t ***envs,
                 size_t **lens, long *n_envs, char ***subjects)
{
    long ne = 0, cap = n / per_env + s->n_agents + 1;
    pk_event_msg *evs = calloc((size_t)per_env, sizeof(*evs));
    pk_event_msg **evp = calloc((size_t)per_env, sizeof(*evp));
    char(*ids)[48] = calloc((size_t)per_env, sizeof(*ids));
    Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
    long *per_agent = calloc((size_t)s->n_agents, sizeof(long));

    *envs = calloc((size_t)cap, sizeof(**envs));
    *lens = calloc((size_t)cap, sizeof(**lens));
    *subjects = calloc((size_t)cap, sizeof(**subjects));
    if (!evs || !evp || !ids || !per_agent || !*envs || !*lens || !*subjects)
        return -1;
    m.name = "latency_ms";
    m.value = 700;
    /* agent a gets events a, a + agents, ...; each envelope holds one agent's events */
    for (int a = 0; a < s->n_agents; a++)
        per_agent[a] = n / s->n_agents + (a < n % s->n_agents);
    for (int a = 0; a < s->n_agents; a++) {
        for (long done = 0; done < per_agent[a];) {
            int k = 0;
            char subject[64];
            for (; k < per_env && done < per_agent[a]; k++, done++) {
                snprintf(ids[k], sizeof(ids[k]), "%s-%d-%ld", prefix, a, done);
                h_event_init(&evs[k], ids[k], s->ids[a], "reply", &m, NULL);
                evs[k].metrics = mp;
                evs[k].n_metrics = 1;
                evp[k] = &evs[k];
            }
            (*envs)[ne] = h_envelope(s->ids[a], &s->keys[a], evp, (size_t)k, &(*lens)[ne]);
            snprintf(subject, sizeof(subject), PK_SUBJ_RAW, s->ids[a]);
            (*subjects)[ne] = strdup(subject);
            if (!(*envs)[ne] || !(*subjects)[ne])
                return -1;
            ne++;
        }
    }
    *n_envs = ne;
    free(evs);
    free(evp);
    free(ids);
    free(per_agent);
    return 0;
}

int bu_publish_all(pk_bus *bus, uint8_t **envs, size_t *lens, char **subjects, long n)
{
    pk_bus_publish_reset(bus);
    for (long i = 0; i < n; i++) {
        if (pk_bus_publish_async(bus, subjects[i], envs[i], lens[i], NULL) != PK_OK)
            return -1;
        if (i % 2048 == 2047 && pk_bus_publish_wait(bus, 60000) != PK_OK)
            return -1;
    }
    return pk_bus_publish_wait(bus, 60000) == PK_OK ? 0 : -1;
}

void bu_envelopes_free(uint8_t **envs, size_t *lens, char **subjects, long n)
{
    for (long i = 0; i < n; i++) {
        free(envs[i]);
        free(subjects[i]);
    }
    free(envs);
    free(lens);
    free(subjects);
}

/* --- bare pipelines -------------------------------------------------------------- */

#define BARE_HOPS_MAX 4

typedef struct hop {
    h_env *h;
    int index; /* 0 .. hops-1 */
    int hops;
    size_t out_size; /* bytes republished */
    long want;       /* messages to move */
    long done;
    bool latency; /* republish synchronously, one at a time */
} hop;

static void *hop_main(void *p)
{
    hop *hp = p;
    pk_bus *bus = NULL;
    pk_consumer c;
    char stream[32], filter[32], durable[32], out[32];
    uint8_t *payload = calloc(1, hp->out_size ? hp->out_size : 1);
    int64_t deadline = pk_mono_ms() + 300000;

    snprintf(stream, sizeof(stream), "BARE_%d", hp->index);
    snprintf(filter, sizeof(filter), "bare.%d", hp->index);
    snprintf(durable, sizeof(durable), "hop-%d", hp->index);
    snprintf(out, sizeof(out), "bare.%d", hp->index + 1);
    if (!(bus = h_connect(hp->h->url, "bench-hop", true)) ||
        pk_consumer_open(&c, bus, stream, durable, filter, 0, 256, 10000) != PK_OK) {
        pk_bus_close(bus);
        free(payload);
        return NULL;
    }
    while ((hp->want < 0 || hp->done < hp->want) && pk_mono_ms() < deadline) {
        natsMsgList list;
        bool last = hp->index == hp->hops - 1;
        if (pk_consumer_fetch(&c, &list, 256, 200) != PK_OK) {
            if (hp->want < 0 && hp->done < 0)
                break;
            continue;
        }
        if (!last || hp->latency) {
            pk_status st = PK_OK;
            pk_bus_publish_reset(bus);
            for (int i = 0; i < list.Count && st == PK_OK; i++) {
                if (hp->latency)
                    st = pk_bus_publish_sync(bus, out, natsMsg_GetData(list.Msgs[i]),
                                             (size_t)natsMsg_GetDataLength(list.Msgs[i]), NULL,
                                             false, 0, NULL, NULL);
                else
                    st = pk_bus_publish_async(bus, out, payload, hp->out_size, NULL);
            }
            if (!hp->latency && st == PK_OK)
                st = pk_bus_publish_wait(bus, 30000);
            if (st != PK_OK) {
                fprintf(stderr, "hop %s: %s\n", out, pk_error_msg());
                st = PK_OK; /* the figure shows it: what was not forwarded never arrives */
            }
        }
        hp->done += bu_ack_all(&list);
    }
    pk_consumer_close(&c);
    pk_bus_close(bus);
    free(payload);
    return NULL;
}

static int bare_streams(h_env *h, int hops)
{
    for (int i = 0; i <= hops; i++) {
        jsStreamConfig sc;
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        char name[32], subj[32];
        const char *subjects[1] = {subj};
        snprintf(name, sizeof(name), "BARE_%d", i);
        snprintf(subj, sizeof(subj), "bare.%d", i);
        jsStreamConfig_Init(&sc);
        sc.Name = name;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Replicas = h->nodes > 0 ? h->nodes : 1; /* as many as the suite's streams */
        if (js_AddStream(&si, h->bus->js, &sc, NULL, &jerr) != NATS_OK &&
            jerr != JSStreamNameExistErr)
            return -1;
        jsStreamInfo_Destroy(si);
    }
    return 0;
}

static void bare_streams_delete(h_env *h, int hops)
{
    for (int i = 0; i <= hops; i++) {
        char name[32];
        jsErrCode jerr = 0;
        snprintf(name, sizeof(name), "BARE_%d", i);
        js_DeleteStream(h->bus->js, name, NULL, &jerr);
    }
}

double bu_bare_pipeline(h_env *h, long n, int hops, const size_t *sizes)
{
    hop hp[BARE_HOPS_MAX];
    pthread_t th[BARE_HOPS_MAX];
    uint8_t *first = calloc(1, sizes[0]);
    int64_t t0;
    double secs;
    bool ok = true;

    if (hops > BARE_HOPS_MAX || !first || bare_streams(h, hops) != 0) {
        free(first);
        return -1;
    }
    for (int i = 0; i < hops; i++) {
        hp[i] = (hop){.h = h, .index = i, .hops = hops, .out_size = sizes[i + 1], .want = n};
        pthread_create(&th[i], NULL, hop_main, &hp[i]);
    }
    pk_sleep_ms(200); /* consumers bound */
    t0 = pk_mono_ns();
    pk_bus_publish_reset(h->bus);
    for (long i = 0; i < n && ok; i++) {
        ok = pk_bus_publish_async(h->bus, "bare.0", first, sizes[0], NULL) == PK_OK;
        if (i % 2048 == 2047)
            ok = ok && pk_bus_publish_wait(h->bus, 60000) == PK_OK;
    }
    ok = ok && pk_bus_publish_wait(h->bus, 60000) == PK_OK;
    for (int i = 0; i < hops; i++)
        pthread_join(th[i], NULL);
    secs = (double)(pk_mono_ns() - t0) / 1e9;
    ok = ok && hp[hops - 1].done == n;
    bare_streams_delete(h, hops);
    free(first);
    return ok ? (double)n / secs : -1;
}

typedef struct latency_sink {
    natsSubscription *sub;
} latency_sink;

int bu_bare_latency(h_env *h, int hops, int samples, int gap_ms, double *ms)
{
    hop hp[BARE_HOPS_MAX];
    pthread_t th[BARE_HOPS_MAX];
    natsSubscription *sub = NULL;
    char last[32];
    int got = 0;

    if (hops > BARE_HOPS_MAX || bare_streams(h, hops) != 0)
        return -1;
    snprintf(last, sizeof(last), "bare.%d", hops);
    if (natsConnection_SubscribeSync(&sub, h->bus->nc, last) != NATS_OK)
        return -1;
    natsConnection_Flush(h->bus->nc);
    for (int i = 0; i < hops; i++) {
        /* the last hop republishes too, for the subscriber to see */
        hp[i] = (hop){
            .h = h, .index = i, .hops = hops + 1, .out_size = 0, .want = samples, .latency = true};
        pthread_create(&th[i], NULL, hop_main, &hp[i]);
    }
    pk_sleep_ms(300);
    for (int i = 0; i < samples; i++) {
        char body[64];
        int64_t t0 = pk_mono_ns();
        natsMsg *m = NULL;
        snprintf(body, sizeof(body), "%d", i);
        if (pk_bus_publish_sync(h->bus, "bare.0", body, strlen(body), NULL, false, 0, NULL, NULL) !=
                PK_OK ||
            natsSubscription_NextMsg(&m, sub, 5000) != NATS_OK)
            break;
        ms[got++] = (double)(pk_mono_ns() - t0) / 1e6;
        natsMsg_Destroy(m);
        if (gap_ms > 0)
            pk_sleep_ms(gap_ms);
    }
    for (int i = 0; i < hops; i++)
        hp[i].want = hp[i].done; /* let the hops end */
    for (int i = 0; i < hops; i++)
        pthread_join(th[i], NULL);
    natsSubscription_Destroy(sub);
    bare_streams_delete(h, hops);
    return got == samples ? 0 : -1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bu_pct(double *v, int n, double p)
{
    size_t k;

    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    k = (size_t)((p / 100.0) * (n - 1) + 0.5);
    return v[k < (size_t)n ? k : (size_t)n - 1];
}

long bu_rss_anon_kib(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

int bu_ack_all(natsMsgList *list)
{
    int n = list->Count;

    for (int i = 0; i < n; i++)
        natsMsg_Ack(list->Msgs[i], NULL);
    natsMsgList_Destroy(list);
    return n;
}

/* Pack rr and publish it to subject: asynchronously, or (last) synchronously for its sequence. */
static int registry_record(h_env *h, const char *subject, Pactum__V1__RegistryRecord *rr, bool last,
                           uint64_t *seq)
{
    uint8_t *buf;
    size_t len;
    pk_status st;

    if (pk_pack(&rr->base, &buf, &len) != PK_OK)
        return -1;
    st = last ? pk_bus_publish_sync(h->bus, subject, buf, len, NULL, false, 0, seq, NULL)
              : pk_bus_publish_async(h->bus, subject, buf, len, NULL);
    free(buf);
    return st == PK_OK ? 0 : -1;
}

void bu_pact_doc(char *buf, size_t len, const char *agent, void *ctx)
{
    (void)ctx;
    snprintf(buf, len, PACT_FMT, agent, agent);
}

static pk_keypair registry_kp;

static void registry_key_make(void)
{
    static const uint8_t seed[32] = {0x72, 0x65, 0x67}; /* "reg" */

    if (pk_keypair_from_seed(&registry_kp, seed) != PK_OK)
        abort();
}

const pk_keypair *bu_registry_key(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, registry_key_make);
    return &registry_kp;
}

int bu_registry_load(h_env *h, long n, const char *prefix, int width, bu_doc_fn doc, void *ctx,
                     uint64_t *last_seq)
{
    static char text[65536];
    const pk_keypair *kp = bu_registry_key();

    pk_bus_publish_reset(h->bus);
    for (long a = 0; a < n; a++) {
        char agent[32], subject[128], pact_id[64];
        Pactum__V1__AgentRecord ar = PACTUM__V1__AGENT_RECORD__INIT;
        Pactum__V1__PactRecord pr = PACTUM__V1__PACT_RECORD__INIT;
        Pactum__V1__RegistryRecord rr = PACTUM__V1__REGISTRY_RECORD__INIT;
        pk_pact *pact = NULL;
        uint8_t hash[32];

        snprintf(agent, sizeof(agent), "%s%0*ld", prefix, width, a);
        ar.agent_id = agent;
        ar.agent_key.data = (uint8_t *)kp->pk;
        ar.agent_key.len = 32;
        ar.role = PACTUM__V1__ROLE__ROLE_AGENT;
        rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT;
        rr.agent = &ar;
        snprintf(subject, sizeof(subject), PK_SUBJ_REG_AGENT, agent);
        if (registry_record(h, subject, &rr, false, NULL) != 0)
            return -1;
        doc(text, sizeof(text), agent, ctx);
        {
            pk_lint lint = {0};
            pk_status st = pk_pact_parse(text, strlen(text), &pact, &lint);
            pk_lint_free(&lint);
            if (st != PK_OK)
                return -1;
        }
        snprintf(pact_id, sizeof(pact_id), "%s", pact->id);
        pr.clauses = (uint32_t)pact->n_clauses;
        pk_pact_free(pact);
        pk_sha256(text, strlen(text), hash);
        pr.pact_id = pact_id;
        pr.version = 1;
        pr.hash.data = hash;
        pr.hash.len = 32;
        pr.agent_id = agent;
        pr.registered_ms = pk_now_ms();
        pr.document.data = (uint8_t *)text;
        pr.document.len = strlen(text);
        rr.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_PACT;
        rr.pact = &pr;
        snprintf(subject, sizeof(subject), PK_SUBJ_REG_PACT, pact_id);
        if (a == n - 1 && pk_bus_publish_wait(h->bus, 60000) != PK_OK)
            return -1;
        if (registry_record(h, subject, &rr, a == n - 1, last_seq) != 0)
            return -1;
        if (a % 4096 == 4095 && pk_bus_publish_wait(h->bus, 60000) != PK_OK)
            return -1;
    }
    return 0;
}

double bu_contain_one(h_env *h, natsSubscription *sub, const char *agent, const pk_keypair *key,
                      const char *event_id)
{
    pk_event_msg ev, *evp = &ev;
    char subject[64];
    size_t len;
    uint8_t *env;
    int64_t t0, deadline;

    h_event_init(&ev, event_id, agent, "leak", NULL, NULL);
    if (!(env = h_envelope(agent, key, &evp, 1, &len)))
        return -1;
    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, agent);
    t0 = pk_mono_ns();
    if (pk_bus_publish_sync(h->bus, subject, env, len, NULL, false, 0, NULL, NULL) != PK_OK) {
        free(env);
        return -1;
    }
    free(env);
    deadline = pk_mono_ms() + 10000;
    while (pk_mono_ms() < deadline) {
        natsMsg *m = NULL;
        Pactum__V1__TrustChange *tc;
        bool seen;
        if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK)
            continue;
        tc = pactum__v1__trust_change__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        seen = tc && strcmp(tc->agent_id, agent) == 0 && tc->tier_change &&
               tc->tier_change->to == PACTUM__V1__TIER__TIER_CONTAINED;
        if (tc)
            pactum__v1__trust_change__free_unpacked(tc, NULL);
        natsMsg_Destroy(m);
        if (seen)
            return (double)(pk_mono_ns() - t0) / 1e6;
    }
    return -1;
}

void bu_on_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub, (void)closure;
    if (natsMsg_GetReply(msg))
        natsConnection_Publish(nc, natsMsg_GetReply(msg), "", 0);
    natsMsg_Destroy(msg);
}
