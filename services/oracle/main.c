/*
 * pactum-oracle: answers public trust queries from its own read model.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/log.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(oracle_cfg),
    {"history", "PACTUM_ORACLE_HISTORY", PK_CFG_INT, "20", 1, 200, offsetof(oracle_cfg, history),
     "tier changes returned with a trust report unless the query asks for another number"},
    {"key", "PACTUM_ORACLE_SIGNING_KEY", PK_CFG_STR, "", 0, 0, offsetof(oracle_cfg, key_path),
     "secret key that signs answers and tree heads (every instance uses the same); default "
     "<data-dir>/oracle/oracle.key, made on first start"},
    {"http", "PACTUM_ORACLE_HTTP", PK_CFG_STR, "127.0.0.1:7480", 0, 0, offsetof(oracle_cfg, http),
     "HTTP/JSON listen address host:port, or off"},
    {"http-connections", "PACTUM_ORACLE_HTTP_CONNECTIONS", PK_CFG_INT, "1024", 16, 65536,
     offsetof(oracle_cfg, http_connections), "HTTP connections open at once, from all clients"},
    {"http-per-client", "PACTUM_ORACLE_HTTP_PER_CLIENT", PK_CFG_INT, "16", 1, 65536,
     offsetof(oracle_cfg, http_per_client), "HTTP connections open at once from one address"},
    {"http-timeout", "PACTUM_ORACLE_HTTP_TIMEOUT", PK_CFG_DURATION, "10s", 1000, 600000,
     offsetof(oracle_cfg, http_timeout_ms),
     "an HTTP connection that sends nothing for this long is closed (slow headers included)"},
    {"attest-ttl", "PACTUM_ORACLE_ATTEST_TTL", PK_CFG_DURATION, "1h", 1000, 30LL * 86400000,
     offsetof(oracle_cfg, attest_ttl_ms), "how long an attestation is valid"},
    {"head-every", "PACTUM_ORACLE_HEAD_EVERY", PK_CFG_DURATION, "1s", 100, 3600000,
     offsetof(oracle_cfg, head_every_ms),
     "publish a signed tree head at most this often while the log grows"},
    {"log-batch", "PACTUM_ORACLE_LOG_BATCH", PK_CFG_INT, "256", 1, 4096,
     offsetof(oracle_cfg, log_batch), "source messages appended to the log per batch"},
    {"log-every", "PACTUM_ORACLE_LOG_EVERY", PK_CFG_DURATION, "50ms", 0, 1000,
     offsetof(oracle_cfg, log_every_ms),
     "append source messages to the log this long after they come, unless a full batch is "
     "waiting (0s: at once)"},
    {"authorize-rate", "PACTUM_ORACLE_AUTHORIZE_RATE", PK_CFG_INT, "100", 0, 10000000,
     offsetof(oracle_cfg, authorize_rate),
     "authorize decisions a second one API client may ask for (twice that at once); 0: no limit"},
    {"unbound", "PACTUM_ORACLE_UNBOUND", PK_CFG_STR, "approval", 0, 0,
     offsetof(oracle_cfg, unbound),
     "what authorize answers for an agent no pact binds: approval (a person's, for "
     "every action), deny or allow"},
    {"http-rate", "PACTUM_ORACLE_HTTP_RATE", PK_CFG_INT, "200", 0, 10000000,
     offsetof(oracle_cfg, http_rate),
     "HTTP requests a second from one address (twice that at once); 0: no limit"},
    {"reuse", "PACTUM_ORACLE_REUSE", PK_CFG_DURATION, "100ms", 0, 10000,
     offsetof(oracle_cfg, reuse_ms),
     "send a signed trust answer again for this long when the same query comes and nothing "
     "changed; 0 makes every answer anew"},
    {"witnesses", "PACTUM_ORACLE_WITNESSES", PK_CFG_STR, "", 0, 0, offsetof(oracle_cfg, witnesses),
     "witnesses that cosign the log's checkpoints (C2SP tlog-witness): \"<URL> <verifier "
     "key>\" entries separated by commas; GET /checkpoint then serves the cosigned one"},
    {"witness-every", "PACTUM_ORACLE_WITNESS_EVERY", PK_CFG_DURATION, "1s", 100, 3600000,
     offsetof(oracle_cfg, witness_every_ms),
     "how often the grown log's checkpoint is sent to the witnesses"},
    {"webhooks", "PACTUM_ORACLE_WEBHOOKS", PK_CFG_BOOL, "on", 0, 0, offsetof(oracle_cfg, webhooks),
     "keep webhook subscriptions and deliver to them (on exactly one instance of a deployment)"},
    {"webhook-hosts", "PACTUM_ORACLE_WEBHOOK_HOSTS", PK_CFG_STR, "public", 0, 0,
     offsetof(oracle_cfg, webhook_hosts),
     "public: deliveries never connect to loopback, private or link-local addresses; any"},
    {"webhook-backoff", "PACTUM_ORACLE_WEBHOOK_BACKOFF", PK_CFG_DURATION, "1s", 10, 3600000,
     offsetof(oracle_cfg, webhook_backoff_ms),
     "wait before the first retry of a failed delivery (doubled at each failure)"},
    {"webhook-backoff-max", "PACTUM_ORACLE_WEBHOOK_BACKOFF_MAX", PK_CFG_DURATION, "10m", 10,
     86400000, offsetof(oracle_cfg, webhook_backoff_max),
     "the longest wait between two attempts at one delivery"},
    {"webhook-timeout", "PACTUM_ORACLE_WEBHOOK_TIMEOUT", PK_CFG_DURATION, "5s", 100, 60000,
     offsetof(oracle_cfg, webhook_timeout_ms),
     "one delivery attempt's bound, the connection included"},
};

/* Load the signing key, or make it on first start when no path is configured. */
static pk_status load_key(oracle *o, const oracle_cfg *cfg)
{
    char path[4096];
    struct stat sb;
    pk_status st;

    if (cfg->key_path && *cfg->key_path) {
        if ((st = pk_key_load(cfg->key_path, &o->kp)) != PK_OK)
            return PK_WRAP(st, "--key %s", cfg->key_path);
    } else {
        snprintf(path, sizeof(path), "%s/oracle/oracle.key", cfg->common.data_dir);
        if (stat(path, &sb) == 0) {
            if ((st = pk_key_load(path, &o->kp)) != PK_OK)
                return st;
        } else if (errno == ENOENT) {
            if ((st = pk_keypair_generate(&o->kp)) != PK_OK ||
                (st = pk_key_save(path, &o->kp)) != PK_OK)
                return st;
            PK_INFO("made the oracle key %s (public half in %s.pub)", path, path);
        } else {
            return PK_ERR(PK_EIO, "cannot read %s", path);
        }
    }
    {
        char hex[65], id[PK_LOG_ID_LEN + 1];
        pk_hex_encode(o->kp.pk, 32, hex);
        pk_log_id(o->kp.pk, id);
        PK_INFO("answers and tree heads are signed by %s (log %s)", hex, id);
    }
    return PK_OK;
}

/* The key, the read model, the registry copy and the log; an exit code on failure. */
static int open_state(oracle *o, const oracle_cfg *cfg)
{
    tlog_cfg lc = {.common = &cfg->common,
                   .batch = (int)cfg->log_batch,
                   .every_ms = cfg->log_every_ms,
                   .head_every_ms = cfg->head_every_ms,
                   .m_size = &o->m[OM_LOG_SIZE],
                   .m_appended = &o->m[OM_LOG_APPENDED],
                   .m_heads = &o->m[OM_HEADS]};

    if (load_key(o, cfg) != PK_OK || oracle_reuse_open(o) != PK_OK ||
        pk_ratelimit_create(&o->clients, (uint64_t)cfg->authorize_rate,
                            (uint64_t)cfg->authorize_rate * 2, 4096) != PK_OK ||
        pk_ratelimit_create(&o->readers, (uint64_t)cfg->http_rate, (uint64_t)cfg->http_rate * 2,
                            65536) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    if (oracle_open_dbs(o) != PK_OK || pk_registry_open(&o->reg, o->store, o->bus) != PK_OK ||
        pk_pact_cache_create(&o->pacts, o->reg, 64) != PK_OK ||
        tlog_open(&o->log, &lc, &o->svc, o->bus, o->store, &o->kp) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    return PK_EXIT_OK;
}

/*
 * The read model's consumer: a durable of this instance's own (named after its stable name,
 * so it is found again after a restart and kept, replicated, through the loss of a node),
 * from where the model stopped, on a connection of its own (a trust change is never read
 * behind a burst of questions and their records on the service's connection); the log, the
 * responders, HTTP.
 */
static int start_queries(oracle *o)
{
    uint64_t applied = 0;
    char name[96], durable[48], conn[128];
    uint32_t h = 2166136261u;

    if (oracle_model_position(o, &applied) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    pk_stable_name(&o->cfg->common, "oracle", name, sizeof(name));
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 16777619u;
    snprintf(durable, sizeof(durable), "oracle-model-%08x", h);
    snprintf(conn, sizeof(conn), "%s-model", o->svc.instance);
    if (pk_registry_watch(o->reg) != PK_OK || pk_registry_sync(o->reg, 0) != PK_OK ||
        pk_reader_bus_connect(&o->cfg->common, conn, &o->model_bus) != PK_OK ||
        pk_consumer_open_ordered(&o->trust, o->model_bus, PK_STREAM_TRUST, durable,
                                 "pactum.trust.*", 512, 30000, oracle_model_position, o) != PK_OK ||
        tlog_start(&o->log) != PK_OK || oracle_audit_start(o) != PK_OK ||
        oracle_queries_start(o) != PK_OK)
        return pk_service_failed(PK_EXIT_BUS);
    if (oracle_changes_open(o) != PK_OK || oracle_hooks_start(o) != PK_OK ||
        oracle_http_start(o) != PK_OK || oracle_witnesses_start(o) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    o->model = (pk_runner){.what = "read model",
                           .consumer = &o->trust,
                           .svc = &o->svc,
                           .batch = 512,
                           .wait_ms = 250,
                           .process = oracle_apply,
                           .idle = oracle_model_idle,
                           .ctx = o,
                           .lag = &o->svc.common[PK_SM_LAG]};
    PK_INFO("ready: read model at PACTUM_TRUST #%llu (consumer %s), registry at #%llu",
            (unsigned long long)applied, durable, (unsigned long long)pk_registry_seq(o->reg));
    return PK_EXIT_OK;
}

#define WARM_MAX_BYTES ((size_t)2 << 30) /* the store's first 2 GiB */

static void *warm_main(void *arg)
{
    oracle *o = arg;
    int64_t t0 = pk_mono_ms();
    size_t n = pk_store_warm(o->store, WARM_MAX_BYTES, &o->warm_stop);

    pk_metric_set(&o->m[OM_WARMED], (long long)n);
    PK_INFO("read model: %.1f MiB of its store mapped ahead of queries in %lld ms",
            (double)n / (1 << 20), (long long)(pk_mono_ms() - t0));
    return NULL;
}

static int start(void *ctx)
{
    oracle *o = ctx;
    int rc;

    if (strcmp(o->cfg->unbound, "approval") == 0)
        o->unbound = PK_UNBOUND_APPROVAL;
    else if (strcmp(o->cfg->unbound, "deny") == 0)
        o->unbound = PK_UNBOUND_DENY;
    else if (strcmp(o->cfg->unbound, "allow") == 0)
        o->unbound = PK_UNBOUND_ALLOW;
    else {
        PK_ERROR("--unbound: expected approval, deny or allow, got '%s'", o->cfg->unbound);
        return pk_service_failed(PK_EXIT_CONFIG);
    }
    oracle_held_init(o);
    pthread_mutex_init(&o->http_mu, NULL);
    rc = open_state(o, o->cfg);
    /* answers are served at once; the warmer only saves the first queries their page faults */
    if (rc == PK_EXIT_OK)
        o->warming = pthread_create(&o->warmer, NULL, warm_main, o) == 0;
    return rc == PK_EXIT_OK ? start_queries(o) : rc;
}

static void run(void *ctx)
{
    pk_runner_loop(&((oracle *)ctx)->model);
}

static void stop(void *ctx)
{
    oracle *o = ctx;

    if (o->warming) {
        atomic_store(&o->warm_stop, true);
        pthread_join(o->warmer, NULL);
        o->warming = false;
    }
    oracle_witnesses_stop(o);
    oracle_changes_close_streams(o);
    oracle_http_stop(o);
    oracle_hooks_stop(o);
    oracle_changes_free(o);
    pk_responders_stop(&o->answers);
    oracle_audit_stop(o);
    tlog_close(&o->log);
    pk_consumer_close(&o->trust);
    if (o->model_bus)
        pk_bus_close(o->model_bus);
    o->model_bus = NULL;
    pk_pact_cache_destroy(o->pacts);
    pk_registry_close(o->reg);
    oracle_reuse_close(o);
    pk_ratelimit_destroy(o->clients);
    pk_ratelimit_destroy(o->readers);
    pk_keypair_wipe(&o->kp);
    oracle_held_free(o);
    pthread_mutex_destroy(&o->http_mu);
}

PK_SERVICE_MAIN(oracle, oracle_cfg, oracle_metrics_init, .name = "oracle",
                .summary = "Answers public trust queries.", .max_dbs = 32)
