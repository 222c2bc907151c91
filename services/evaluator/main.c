/*
 * pactum-evaluator: applies pact clauses to the event stream, emits verdicts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluator.h"
#include "pk/clock.h"
#include "pk/log.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(evaluator_cfg),
    {"owned", "PACTUM_EVALUATOR_PARTITIONS", PK_CFG_STR, "all", 0, 0,
     offsetof(evaluator_cfg, owned),
     "partitions served by this instance: all, or a list like 0,1 or 2-3"},
    {"report-every", "PACTUM_EVALUATOR_REPORT_EVERY", PK_CFG_INT, "10", 1, 100000,
     offsetof(evaluator_cfg, report_every),
     "evaluations of a clause between verdicts when its outcome does not change"},
    {"batch", "PACTUM_EVALUATOR_BATCH", PK_CFG_INT, "256", 1, 4096, offsetof(evaluator_cfg, batch),
     "events fetched and committed together"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* Databases, registry copy and pact cache; PK_EXIT_STORE on failure. */
static int open_state(evaluator *ev)
{
    if (pk_store_dbi(ev->store, "states", 0, &ev->states) != PK_OK ||
        pk_store_dbi(ev->store, "meta", 0, &ev->meta) != PK_OK ||
        pk_store_dbi(ev->store, "deadlines", 0, &ev->deadlines) != PK_OK ||
        pk_registry_open(&ev->reg, ev->store, ev->bus) != PK_OK ||
        pk_pact_cache_create(&ev->pacts, ev->reg, 256) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_STORE;
    }
    return PK_EXIT_OK;
}

/* Registry, responders and one worker per owned partition; an exit code on failure. */
static int start(evaluator *ev, const evaluator_cfg *cfg)
{
    ev->workers = (pk_pworkers){.svc = &ev->svc,
                                .common = &cfg->common,
                                .stream = PK_STREAM_EVENTS,
                                .prefix = "evaluator",
                                .subject = "pactum.events",
                                .tail = "*",
                                .batch = (int)cfg->batch,
                                .process = evaluator_process,
                                .idle = evaluator_idle};
    ev->reg->hook = evaluator_on_registry;
    ev->reg->hook_ctx = ev;
    if (pk_registry_watch(ev->reg) != PK_OK || pk_registry_sync(ev->reg, 0) != PK_OK ||
        pk_service_ops_start(&ev->svc) != PK_OK ||
        pk_pworkers_open(&ev->workers, ev->partitions, ev->owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_BUS;
    }
    if (evaluator_workers_init(ev) != PK_OK || pk_pworkers_start(&ev->workers) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        return PK_EXIT_RUNTIME;
    }
    return PK_EXIT_OK;
}

int main(int argc, char **argv)
{
    static evaluator_cfg cfg;
    static evaluator ev;
    int rc;
    pk_status st;

    if ((st = pk_config_load(options, N_OPTIONS, &cfg, argc, argv, "pactum-evaluator",
                             "Applies pact clauses to the event stream and emits verdicts.")) !=
        PK_OK) {
        if (st == PK_ENOTFOUND)
            return PK_EXIT_OK;
        fprintf(stderr, "pactum-evaluator: %s\n", pk_error_msg());
        return PK_EXIT_CONFIG;
    }
    ev.cfg = &cfg;
    ev.svc.name = "evaluator";
    evaluator_metrics_init(&ev);
    ev.svc.metrics = ev.m;
    ev.svc.n_metrics = EM_COUNT;
    pk_signals_install();
    rc = pk_service_boot(&ev.svc, &cfg.common, &ev.bus, &ev.store, &ev.partitions, 16);
    if (rc == PK_EXIT_OK && pk_partitions_parse(cfg.owned, ev.partitions, &ev.owned) != PK_OK) {
        PK_ERROR("%s", pk_error_msg());
        rc = PK_EXIT_CONFIG;
    }
    if (rc == PK_EXIT_OK)
        rc = open_state(&ev);
    if (rc == PK_EXIT_OK)
        rc = start(&ev, &cfg);
    if (rc == PK_EXIT_OK)
        PK_INFO("ready: serving %zu of %u partitions, registry at #%llu", ev.workers.n,
                ev.partitions, (unsigned long long)pk_registry_seq(ev.reg));
    while (rc == PK_EXIT_OK && !pk_shutdown) {
        if (pk_registry_sync_if_dirty(ev.reg) != PK_OK)
            PK_WARN("registry sync: %s", pk_error_msg());
        pk_sleep_ms(100);
    }
    if (rc == PK_EXIT_OK)
        PK_INFO("shutting down");
    pk_shutdown = 1;
    pk_pworkers_close(&ev.workers);
    pk_service_ops_stop(&ev.svc);
    evaluator_workers_free(&ev);
    pk_pact_cache_destroy(ev.pacts);
    pk_registry_close(ev.reg);
    pk_bus_close(ev.bus);
    pk_store_close(ev.store);
    nats_Close();
    return rc;
}
