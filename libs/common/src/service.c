#include "pk/service.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pk/clock.h"
#include "pk/codec.h"
#include "pk/crypto.h"
#include "pk/log.h"

volatile sig_atomic_t pk_shutdown = 0;

static void on_signal(int sig)
{
    (void)sig;
    pk_shutdown = 1;
}

void pk_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

char *pk_metrics_render(pk_metric *ms, size_t n)
{
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);

    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char line[512];
        int k = 0;
        bool first = i == 0 || strcmp(ms[i - 1].name, ms[i].name) != 0;

        if (first)
            k += snprintf(line + k, sizeof(line) - (size_t)k, "# HELP %s %s\n# TYPE %s %s\n",
                          ms[i].name, ms[i].help, ms[i].name,
                          ms[i].type == PK_COUNTER ? "counter" : "gauge");
        k += snprintf(line + k, sizeof(line) - (size_t)k, "%s%s%s%s %lld\n", ms[i].name,
                      ms[i].labels ? "{" : "", ms[i].labels ? ms[i].labels : "",
                      ms[i].labels ? "}" : "", pk_metric_get(&ms[i]));
        if (len + (size_t)k + 1 > cap) {
            char *grown;
            cap = (cap + (size_t)k) * 2;
            grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, line, (size_t)k + 1);
        len += (size_t)k;
    }
    return out;
}

static void common_metrics_init(pk_service *svc)
{
    pk_metric *m = svc->common;

    snprintf(svc->lag_label, sizeof(svc->lag_label), "consumer=\"%s\"", svc->name);
    snprintf(svc->retries_name, sizeof(svc->retries_name), "pactum_%s_batch_retries_total",
             svc->name);
    snprintf(svc->health_subject, sizeof(svc->health_subject), PK_SUBJ_HEALTH, svc->name);
    snprintf(svc->metrics_subject, sizeof(svc->metrics_subject), PK_SUBJ_METRICS, svc->name);
    m[PK_SM_LAG] = (pk_metric){"pactum_consumer_pending", svc->lag_label,
                               "Messages waiting for this consumer", PK_GAUGE, 0};
    m[PK_SM_RETRIES] = (pk_metric){svc->retries_name, NULL,
                                   "Batch attempts that failed on a bus or store error and were "
                                   "retried",
                                   PK_COUNTER, 0};
    m[PK_SM_LMDB_USED] =
        (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes", PK_GAUGE, 0};
    m[PK_SM_LMDB_MAP] =
        (pk_metric){"pactum_lmdb_map_bytes", NULL, "LMDB map size, in bytes", PK_GAUGE, 0};
    m[PK_SM_STALLS] = (pk_metric){"pactum_consumer_stalls_total", svc->lag_label,
                                  "Times a consumer had messages waiting, delivered none for "
                                  "10 s, and was bound again",
                                  PK_COUNTER, 0};
}

pk_bus_opts pk_common_bus_opts(const pk_common_cfg *c, const char *name)
{
    return (pk_bus_opts){.url = c->nats_url,
                         .name = name,
                         .user = c->nats_user,
                         .password = c->nats_password,
                         .creds = c->nats_creds,
                         .ca = c->nats_ca};
}

pk_status pk_reader_bus_connect(const pk_common_cfg *c, const char *name, pk_bus **out)
{
    pk_bus_opts bo = pk_common_bus_opts(c, name);

    bo.send_asap = true;
    bo.connect_wait_ms = 10000;
    bo.stop = (volatile int *)&pk_shutdown;
    return pk_bus_connect(out, &bo);
}

int pk_service_boot(pk_service *svc, const pk_common_cfg *c, pk_bus **bus, pk_store **store,
                    uint32_t *partitions, unsigned max_dbs)
{
    char dir[4096];
    int level = pk_log_level_parse(c->log_level);
    pk_bus_opts bo = {0};

    if (level < 0) {
        fprintf(stderr, "%s: --log-level: expected debug, info, warn or error, got '%s'\n",
                svc->name, c->log_level);
        return PK_EXIT_CONFIG;
    }
    pk_log_init(svc->name, (pk_log_level)level);
    if (c->instance && *c->instance)
        snprintf(svc->instance, sizeof(svc->instance), "%s", c->instance);
    else
        snprintf(svc->instance, sizeof(svc->instance), "%s-%d", svc->name, (int)getpid());
    svc->started_ms = pk_now_ms();
    atomic_store(&svc->healthy, true);
    common_metrics_init(svc);
    if (pk_crypto_init() != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_CRYPTO;
    }
    if (store) {
        snprintf(dir, sizeof(dir), "%s/%s", c->data_dir, svc->name);
        if (pk_store_open(store, dir, (size_t)c->lmdb_map_mb, max_dbs) != PK_OK) {
            PK_ERROR("%s", pk_error_msg());
            return PK_EXIT_STORE;
        }
        svc->store = *store;
        PK_INFO("LMDB in %s (map %lld MiB)", dir, c->lmdb_map_mb);
    }
    bo = pk_common_bus_opts(c, svc->instance);
    bo.send_asap = !svc->buffered;
    bo.connect_wait_ms = 60000;
    bo.stop = (volatile int *)&pk_shutdown;
    if (pk_bus_connect(bus, &bo) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_BUS;
    }
    svc->bus = *bus;
    *partitions = (uint32_t)c->partitions;
    if (pk_streams_ensure(*bus, partitions) != PK_OK) {
        PK_ERROR("cannot set up JetStream streams: %s", pk_error_msg());
        return PK_EXIT_BUS;
    }
    PK_INFO("connected to %s as %s", c->nats_url, svc->instance);
    return PK_EXIT_OK;
}

int pk_service_failed(int exit_code)
{
    PK_ERROR("%s", pk_error_msg());
    return exit_code;
}

/* Open files up to the hard limit: each connection (bus, HTTP clients) is one. */
static void raise_file_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int pk_service_main(const pk_service_def *d, int argc, char **argv)
{
    char program[64];
    pk_status st;
    int rc;

    snprintf(program, sizeof(program), "pactum-%s", d->name);
    d->svc->name = d->name;
    d->svc->buffered = d->buffered;
    st = pk_config_load(d->opts, d->n_opts, d->cfg, argc, argv, program, d->summary);

    if (st == PK_ENOTFOUND)
        return PK_EXIT_OK; /* --help */
    if (st != PK_OK) {
        fprintf(stderr, "%s: %s\n", program, pk_error_msg());
        return PK_EXIT_CONFIG;
    }
    pk_signals_install();
    raise_file_limit();
    rc = pk_service_boot(d->svc, d->common, d->bus, d->store, d->partitions, d->max_dbs);
    if (rc == PK_EXIT_OK)
        rc = d->start(d->ctx);
    if (rc == PK_EXIT_OK && pk_service_ops_start(d->svc) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_BUS;
    }
    if (rc == PK_EXIT_OK) {
        d->run(d->ctx);
        PK_INFO("shutting down");
    }
    pk_shutdown = 1; /* threads run until it is set, also after a failed start */
    pk_service_ops_stop(d->svc);
    d->stop(d->ctx);
    pk_bus_close(*d->bus);
    *d->bus = NULL;
    pk_store_close(*d->store);
    *d->store = NULL;
    nats_Close();
    return rc;
}

static pthread_mutex_t detail_lock = PTHREAD_MUTEX_INITIALIZER; /* guards pk_service.detail */

void pk_service_set_health(pk_service *svc, bool healthy, const char *detail)
{
    pthread_mutex_lock(&detail_lock);
    snprintf(svc->detail, sizeof(svc->detail), "%s", detail ? detail : "");
    atomic_store(&svc->healthy, healthy);
    pthread_mutex_unlock(&detail_lock);
}

#define INCIDENT_MS 60000 /* a service is unhealthy this long after an incident */
#define JS_CHECK_MS 2000  /* JetStream is asked at most this often */

/*
 * JetStream answers for our account: a reload of the server without
 * JetStream, or a server that lost it, leaves every consumer silent while
 * the connection looks fine. Asked at most every JS_CHECK_MS; why in *why.
 */
static bool jetstream_ok(pk_service *svc, char *why, size_t len)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t checked_ms;
    static bool ok = true;
    static char last[160];
    int64_t now = pk_mono_ms();

    pthread_mutex_lock(&lock);
    if (now - checked_ms >= JS_CHECK_MS) {
        jsAccountInfo *ai = NULL;
        jsOptions jo;
        jsErrCode jerr = 0;
        natsStatus s;
        jsOptions_Init(&jo);
        jo.Wait = 1000;
        s = js_GetAccountInfo(&ai, svc->bus->js, &jo, &jerr);
        ok = s == NATS_OK;
        if (!ok)
            snprintf(last, sizeof(last), "JetStream is not available on the bus: %s%s",
                     natsStatus_GetText(s), jerr ? " (JetStream error)" : "");
        jsAccountInfo_Destroy(ai);
        checked_ms = now;
    }
    if (!ok)
        snprintf(why, len, "%s", last);
    pthread_mutex_unlock(&lock);
    return ok;
}

json_t *pk_service_health_json(pk_service *svc)
{
    bool bus_ok = svc->bus && atomic_load(&svc->bus->connected);
    bool ok;
    char detail[sizeof(svc->detail)];

    pthread_mutex_lock(&detail_lock);
    ok = atomic_load(&svc->healthy) && bus_ok;
    snprintf(detail, sizeof(detail), "%s", svc->detail);
    pthread_mutex_unlock(&detail_lock);
    if (!bus_ok)
        snprintf(detail, sizeof(detail), "NATS connection lost");
    else if (ok && pk_incident_recent(INCIDENT_MS, detail, sizeof(detail)))
        ok = false;
    else if (ok && !jetstream_ok(svc, detail, sizeof(detail)))
        ok = false;
    json_t *doc =
        json_pack("{s:s, s:s, s:b, s:b, s:s, s:I, s:I, s:I}", "service", svc->name, "instance",
                  svc->instance, "healthy", ok, "bus_connected", bus_ok, "detail", ok ? "" : detail,
                  "uptime_ms", (json_int_t)(pk_now_ms() - svc->started_ms), "consumer_pending",
                  (json_int_t)pk_metric_get(&svc->common[PK_SM_LAG]), "consumer_stalls",
                  (json_int_t)pk_metric_get(&svc->common[PK_SM_STALLS]));
    if (doc && svc->health_extra)
        svc->health_extra(svc->health_extra_ctx, doc);
    return doc;
}

static pk_status answer_text(char *text, uint8_t **out, size_t *len)
{
    if (!text)
        return PK_ERR(PK_ENOMEM, "out of memory");
    *out = (uint8_t *)text;
    *len = strlen(text);
    return PK_OK;
}

static pk_status on_health(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen)
{
    json_t *doc = pk_service_health_json(ctx);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return answer_text(text, out, outlen);
}

char *pk_service_metrics_text(pk_service *svc)
{
    uint64_t used = 0, map = 0;
    char *common, *own, *all;
    size_t a, b;

    if (svc->store && pk_store_usage(svc->store, &used, &map) == PK_OK) {
        pk_metric_set(&svc->common[PK_SM_LMDB_USED], (long long)used);
        pk_metric_set(&svc->common[PK_SM_LMDB_MAP], (long long)map);
    }
    /* LMDB figures only where there is a store */
    common = pk_metrics_render(svc->common, svc->store ? PK_SM_COUNT : PK_SM_LMDB_USED);
    own = pk_metrics_render(svc->metrics, svc->n_metrics);
    if (!common || !own || !(all = malloc((a = strlen(own)) + (b = strlen(common)) + 1))) {
        free(common);
        free(own);
        return NULL;
    }
    memcpy(all, own, a);
    memcpy(all + a, common, b + 1);
    free(common);
    free(own);
    return all;
}

static pk_status on_metrics(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen)
{
    return answer_text(pk_service_metrics_text(ctx), out, outlen);
}

pk_status pk_service_ops_start(pk_service *svc)
{
    const pk_route routes[] = {
        {svc->health_subject, NULL, 1, on_health},
        {svc->metrics_subject, NULL, 1, on_metrics},
    };

    return pk_responders_start(&svc->ops, svc->bus, routes, sizeof(routes) / sizeof(routes[0]),
                               svc);
}

void pk_service_ops_stop(pk_service *svc)
{
    pk_responders_stop(&svc->ops);
}

pk_status pk_reject_publish(pk_bus *bus, const char *service, const pk_rejection *r,
                            const char *msg_id, bool wait)
{
    Pactum__V1__Rejection rej = PACTUM__V1__REJECTION__INIT;
    char subj[96];
    uint8_t *buf = NULL;
    size_t len = 0;
    pk_status st;

    /* Whatever the input held, the record stays small: ids and the sentence
     * are cut, so a refusal can always be stored. */
    char message[512], subject[160], signer[PK_ID_MAX + 1], agent[PK_ID_MAX + 1],
        event[PK_EVENT_ID_MAX + 1];

    snprintf(message, sizeof(message), "%s", r->message ? r->message : "");
    snprintf(subject, sizeof(subject), "%s", r->subject ? r->subject : "");
    snprintf(signer, sizeof(signer), "%s", r->signer_id ? r->signer_id : "");
    snprintf(agent, sizeof(agent), "%s", r->agent_id ? r->agent_id : "");
    snprintf(event, sizeof(event), "%s", r->event_id ? r->event_id : "");
    rej.reason = r->reason;
    rej.message = message;
    rej.service = (char *)service;
    rej.subject = subject;
    rej.signer_id = signer;
    rej.agent_id = agent;
    rej.event_id = event;
    rej.source_seq = r->source_seq;
    rej.at_ms = pk_now_ms();
    rej.excerpt.data = (uint8_t *)r->data;
    rej.excerpt.len = r->data ? (r->len < 512 ? r->len : 512) : 0;
    snprintf(subj, sizeof(subj), PK_SUBJ_REJECTED, pk_reason_name(r->reason));
    if ((st = pk_pack(&rej.base, &buf, &len)) != PK_OK)
        return st;
    if (wait)
        st = pk_bus_publish_sync(bus, subj, buf, len, msg_id, false, 0, NULL, NULL);
    else
        st = pk_bus_publish_async(bus, subj, buf, len, msg_id);
    free(buf);
    return st;
}

void pk_stable_name(const pk_common_cfg *c, const char *service, char *out, size_t len)
{
    char host[64] = "host";
    uint32_t h = 2166136261u;
    const char *dir = c->data_dir ? c->data_dir : "";

    if (c->instance && c->instance[0]) {
        snprintf(out, len, "%s", c->instance);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
        h = (h ^ *p) * 16777619u;
    snprintf(out, len, "%s-%.32s-%08x", service, host, h);
}
