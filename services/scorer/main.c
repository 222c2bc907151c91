/*
 * pactum-scorer: keeps reputation and tier per agent, publishes trust changes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pk/clock.h"
#include "pk/log.h"
#include "scorer.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(scorer_cfg),
    {"owned", "PACTUM_SCORER_PARTITIONS", PK_CFG_STR, "all", 0, 0, offsetof(scorer_cfg, owned),
     "partitions served by this instance: all, or a list like 0,1 or 2-3"},
    {"batch", "PACTUM_SCORER_BATCH", PK_CFG_INT, "256", 1, 4096, offsetof(scorer_cfg, batch),
     "verdicts fetched and committed together"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* Databases, registry copy and pact cache; PK_EXIT_STORE on failure. */
static int open_state(scorer *sc)
{
    if (pk_store_dbi(sc->store, "agents", 0, &sc->agents) != PK_OK ||
        pk_store_dbi(sc->store, "tiers", 0, &sc->tiers) != PK_OK ||
        pk_store_dbi(sc->store, "meta", 0, &sc->meta) != PK_OK ||
        pk_registry_open(&sc->reg, sc->store, sc->bus) != PK_OK ||
        pk_pact_cache_create(&sc->pacts, sc->reg, 256) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_STORE;
    }
    return PK_EXIT_OK;
}

/* Registry, responders and one worker per owned partition; an exit code on failure. */
static int start(scorer *sc, const scorer_cfg *cfg, uint64_t owned)
{
    sc->workers = (pk_pworkers){.svc = &sc->svc,
                                .common = &cfg->common,
                                .stream = PK_STREAM_VERDICTS,
                                .prefix = "scorer",
                                .subject = "pactum.verdicts",
                                .tail = ">",
                                .batch = (int)cfg->batch,
                                .process = scorer_process};
    if (pk_registry_watch(sc->reg) != PK_OK || pk_registry_sync(sc->reg, 0) != PK_OK ||
        pk_service_ops_start(&sc->svc) != PK_OK || scorer_answers_start(sc) != PK_OK ||
        pk_pworkers_open(&sc->workers, sc->partitions, owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_BUS;
    }
    if (scorer_workers_init(sc) != PK_OK || pk_pworkers_start(&sc->workers) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_RUNTIME;
    }
    return PK_EXIT_OK;
}

int main(int argc, char **argv)
{
    static scorer_cfg cfg;
    static scorer sc;
    uint64_t owned = 0;
    int rc;
    pk_status st;

    if ((st = pk_config_load(options, N_OPTIONS, &cfg, argc, argv, "pactum-scorer",
                             "Keeps reputation and tier per agent; publishes trust changes.")) !=
        PK_OK) {
        if (st == PK_ENOTFOUND)
            return PK_EXIT_OK;
        fprintf(stderr, "pactum-scorer: %s\n", pk_error_msg());
        return PK_EXIT_CONFIG;
    }
    sc.cfg = &cfg;
    sc.svc.name = "scorer";
    scorer_metrics_init(&sc);
    sc.svc.metrics = sc.m;
    sc.svc.n_metrics = SM_COUNT;
    pk_signals_install();
    rc = pk_service_boot(&sc.svc, &cfg.common, &sc.bus, &sc.store, &sc.partitions, 8);
    if (rc == PK_EXIT_OK && pk_partitions_parse(cfg.owned, sc.partitions, &owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_CONFIG;
    }
    if (rc == PK_EXIT_OK)
        rc = open_state(&sc);
    if (rc == PK_EXIT_OK)
        rc = start(&sc, &cfg, owned);
    if (rc == PK_EXIT_OK)
        PK_INFO("ready: serving %zu of %u partitions", sc.workers.n, sc.partitions);
    while (rc == PK_EXIT_OK && !pk_shutdown) {
        if (pk_registry_sync_if_dirty(sc.reg) != PK_OK)
            PK_WARN("registry sync: %s", pk_error_msg());
        pk_sleep_ms(100);
    }
    if (rc == PK_EXIT_OK)
        PK_INFO("shutting down");
    pk_shutdown = 1;
    pk_pworkers_close(&sc.workers);
    scorer_workers_free(&sc);
    pk_responders_stop(&sc.answers);
    pk_service_ops_stop(&sc.svc);
    pk_pact_cache_destroy(sc.pacts);
    pk_registry_close(sc.reg);
    pk_bus_close(sc.bus);
    pk_store_close(sc.store);
    nats_Close();
    return rc;
}
