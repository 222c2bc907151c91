/*
 * pactum-ingest: validates, authenticates and normalizes agent events.
 *
 *   PACTUM_RAW (pactum.raw.<signer>) -> checks -> PACTUM_EVENTS (pactum.events.<p>.<agent>)
 *                                            \-> PACTUM_REJECTED (pactum.rejected.<reason>)
 *   pactum.registry.submit (request) -> PACTUM_REGISTRY
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ingest.h"
#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"
#include "pk/workers.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(ingest_cfg),
    {"max-bytes", "PACTUM_INGEST_MAX_BYTES", PK_CFG_INT, "65536", 1024, 1048576,
     offsetof(ingest_cfg, max_bytes), "largest signed envelope accepted, in bytes"},
    {"max-age", "PACTUM_INGEST_MAX_AGE", PK_CFG_DURATION, "24h", 1000, 30LL * 86400000,
     offsetof(ingest_cfg, max_age_ms), "refuse events whose timestamp is older than this"},
    {"max-skew", "PACTUM_INGEST_MAX_SKEW", PK_CFG_DURATION, "5m", 0, 86400000,
     offsetof(ingest_cfg, max_skew_ms), "refuse events whose timestamp is this far ahead"},
    {"batch", "PACTUM_INGEST_BATCH", PK_CFG_INT, "1024", 1, 4096, offsetof(ingest_cfg, batch),
     "envelopes fetched and committed together (about 2 x batch x max-bytes held at once, at "
     "most)"},
    {"verify-threads", "PACTUM_INGEST_VERIFY_THREADS", PK_CFG_INT, "0", 0, 64,
     offsetof(ingest_cfg, verify_threads),
     "threads that check the signatures of a fetched batch at once; 0: one per CPU"},
    {"rate", "PACTUM_INGEST_RATE", PK_CFG_INT, "1000", 0, 10000000, offsetof(ingest_cfg, rate),
     "events a second one signer may send, on average; 0: no limit"},
    {"burst", "PACTUM_INGEST_BURST", PK_CFG_INT, "1000", 1, 10000000, offsetof(ingest_cfg, burst),
     "events one signer may send at once above its rate"},
    {"issuer", "PACTUM_INGEST_ISSUER", PK_CFG_STR, "", 0, 0, offsetof(ingest_cfg, issuer),
     "issuer.json from pactum setup: registrations then come with bus credentials for their "
     "keys; empty: none"},
    {"admin-key", "PACTUM_ADMIN_KEY", PK_CFG_STR, "", 0, 0, offsetof(ingest_cfg, admin_key),
     "public key (hex, or a .pub file) allowed to register operators, arbiters, evaluators "
     "and human reviewers; empty: none can be registered"},
};

/* The admin key, databases, registry copy, consumer and responders; an exit code on failure. */
static int start(void *ctx)
{
    static const pk_route routes[] = {
        {PK_SUBJ_REG_SUBMIT, "ingest", 1, registrar_answer},
        {PK_SUBJ_GOV_SUBMIT, "ingest", 1, governance_answer},
    };
    ingest *in = ctx;
    const ingest_cfg *cfg = in->cfg;

    if (cfg->admin_key && *cfg->admin_key) {
        if (pk_pubkey_load(cfg->admin_key, in->admin_pk) != PK_OK) {
            PK_ERROR("--admin-key: %s", pk_error_msg());
            return PK_EXIT_CONFIG;
        }
        in->have_admin = true;
    }
    if (issuer_load(&in->issuer, cfg->issuer) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    pthread_mutex_init(&in->gov_lock, NULL);
    in->verify_threads = (int)cfg->verify_threads;
    if (in->verify_threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        in->verify_threads = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    }
    const pk_dbi_spec dbs[] = {
        {"dedup", 0, &in->dedup}, {"dedup_time", 0, &in->dedup_time}, {"ledger", 0, &in->ledger}};

    if (pk_store_dbis(in->store, dbs, PK_NELEM(dbs)) != PK_OK ||
        pk_registry_open(&in->reg, in->store, in->bus) != PK_OK ||
        pk_pact_cache_create(&in->pacts, in->reg, 256) != PK_OK ||
        pk_wset_create(&in->ws) != PK_OK ||
        pk_ratelimit_create(&in->rate, (uint64_t)cfg->rate, (uint64_t)cfg->burst, 65536) != PK_OK ||
        pk_ratelimit_create(&in->notes, 1, 1, 65536) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    if (pk_registry_watch(in->reg) != PK_OK || pk_registry_sync(in->reg, 0) != PK_OK ||
        pk_consumer_open(&in->raw, in->bus, PK_STREAM_RAW, "ingest", "pactum.raw.*", 0, 8192,
                         30000) != PK_OK ||
        pk_responders_start(&in->answers, in->bus, routes, PK_NELEM(routes), in) != PK_OK)
        return pk_service_failed(PK_EXIT_BUS);
    in->runner = (pk_runner){.what = "ingest",
                             .consumer = &in->raw,
                             .svc = &in->svc,
                             .batch = (int)cfg->batch,
                             .wait_ms = 500,
                             .process = ingest_process,
                             .prepare = ingest_prepare,
                             .discard = ingest_discard,
                             .idle = ingest_idle,
                             .ctx = in,
                             .lag = &in->svc.common[PK_SM_LAG]};
    PK_INFO("ready: %u partitions, registry at #%llu", in->partitions,
            (unsigned long long)pk_registry_seq(in->reg));
    return PK_EXIT_OK;
}

static void run(void *ctx)
{
    pk_runner_loop(&((ingest *)ctx)->runner);
}

static void stop(void *ctx)
{
    ingest *in = ctx;

    pk_responders_stop(&in->answers);
    pk_consumer_close(&in->raw);
    pk_pact_cache_destroy(in->pacts);
    pk_registry_close(in->reg);
    pk_wset_destroy(in->ws);
    pk_ratelimit_destroy(in->rate);
    issuer_close(&in->issuer);
    pk_ratelimit_destroy(in->notes);
}

PK_SERVICE_MAIN(ingest, ingest_cfg, ingest_metrics_init, .name = "ingest",
                .summary = "Validates, authenticates and normalizes agent events.", .max_dbs = 16,
                /* a batch's acknowledgements and the next fetch go out together, not one
                 * write each; the events go out at once when a batch waits for their
                 * acknowledgements */
                .buffered = true)
