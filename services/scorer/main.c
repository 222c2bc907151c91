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
    if (rc != PK_EXIT_OK)
        goto out;
    if (pk_partitions_parse(cfg.owned, sc.partitions, &owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_CONFIG;
        goto out;
    }
    if (pk_store_dbi(sc.store, "agents", 0, &sc.agents) != PK_OK ||
        pk_store_dbi(sc.store, "tiers", 0, &sc.tiers) != PK_OK ||
        pk_store_dbi(sc.store, "meta", 0, &sc.meta) != PK_OK ||
        pk_registry_open(&sc.reg, sc.store, sc.bus) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_STORE;
        goto out;
    }
    sc.workers = (pk_pworkers){.svc = &sc.svc,
                               .common = &cfg.common,
                               .stream = PK_STREAM_VERDICTS,
                               .prefix = "scorer",
                               .subject = "pactum.verdicts",
                               .tail = ">",
                               .batch = (int)cfg.batch,
                               .process = scorer_process,
                               .lag = &sc.m[SM_LAG]};
    if (pk_registry_watch(sc.reg) != PK_OK || pk_registry_sync(sc.reg, 0) != PK_OK ||
        pk_service_ops_start(&sc.svc) != PK_OK || scorer_digest_start(&sc) != PK_OK ||
        pk_pworkers_open(&sc.workers, sc.partitions, owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_BUS;
        goto out;
    }
    if (!(sc.ctx = calloc(sc.workers.n, sizeof(*sc.ctx)))) {
        rc = PK_EXIT_RUNTIME;
        goto out;
    }
    for (size_t i = 0; i < sc.workers.n; i++) {
        sc.ctx[i].s = &sc;
        sc.ctx[i].pw = &sc.workers.w[i];
        pk_core_init(&sc.ctx[i].core, sc.reg, scorer_history, &sc.ctx[i]);
        sc.workers.w[i].ctx = &sc.ctx[i];
    }
    if (pk_pworkers_start(&sc.workers) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_RUNTIME;
        goto out;
    }
    PK_INFO("ready: serving %zu of %u partitions", sc.workers.n, sc.partitions);
    while (!pk_shutdown) {
        if (pk_registry_sync_if_dirty(sc.reg) != PK_OK)
            PK_WARN("registry sync: %s", pk_error_msg());
        pk_sleep_ms(100);
    }
    PK_INFO("shutting down");
out:
    pk_shutdown = 1;
    {
        size_t n = sc.workers.n;
        pk_pworkers_close(&sc.workers);
        for (size_t i = 0; sc.ctx && i < n; i++)
            pk_core_free(&sc.ctx[i].core);
        free(sc.ctx);
    }
    scorer_digest_stop(&sc);
    pk_service_ops_stop(&sc.svc);
    pk_registry_close(sc.reg);
    pk_bus_close(sc.bus);
    pk_store_close(sc.store);
    nats_Close();
    return rc;
}
