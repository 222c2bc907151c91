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
    {"owned", "PACTUM_EVALUATOR_PARTITIONS", PK_CFG_STR, "auto", 0, 0,
     offsetof(evaluator_cfg, owned),
     "partitions served: auto (a fair share of them, by lease, moving with the live "
     "instances), or pinned: all, or a list like 0,1 or 2-3"},
    {"report-every", "PACTUM_EVALUATOR_REPORT_EVERY", PK_CFG_INT, "10", 1, 100000,
     offsetof(evaluator_cfg, report_every),
     "evaluations of a clause between verdicts when its outcome does not change"},
    {"report-after", "PACTUM_EVALUATOR_REPORT_AFTER", PK_CFG_DURATION, "1s", 100, 3600000,
     offsetof(evaluator_cfg, report_after_ms),
     "an evaluation not yet reported is reported at most this long after it (so a tier "
     "moves when its evidence is in, not ten events later)"},
    {"batch", "PACTUM_EVALUATOR_BATCH", PK_CFG_INT, "256", 1, 4096, offsetof(evaluator_cfg, batch),
     "events fetched and committed together"},
};

/* Partitions, databases, registry copy, pact cache and one worker per owned partition. */
static int start(void *ctx)
{
    evaluator *ev = ctx;
    const pk_dbi_spec dbs[] = {
        {"states", 0, &ev->states}, {"meta", 0, &ev->meta}, {"deadlines", 0, &ev->deadlines}};

    uint64_t pinned = 0;
    pk_status st;

    if (strcmp(ev->cfg->owned, "auto") != 0 &&
        pk_partitions_parse(ev->cfg->owned, ev->partitions, &pinned) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    if (pk_store_dbis(ev->store, dbs, PK_NELEM(dbs)) != PK_OK ||
        pk_registry_open(&ev->reg, ev->store, ev->bus) != PK_OK ||
        pk_pact_cache_create(&ev->pacts, ev->reg, 256) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    ev->workers = (pk_pworkers){.svc = &ev->svc,
                                .common = &ev->cfg->common,
                                .stream = PK_STREAM_EVENTS,
                                .prefix = "evaluator",
                                .subject = "pactum.events",
                                .tail = "*",
                                .batch = (int)ev->cfg->batch,
                                .process = evaluator_process,
                                .idle = evaluator_idle,
                                .ctx_size = sizeof(eval_worker),
                                .ctx_init = evaluator_worker_init,
                                .ctx_free = evaluator_worker_free,
                                .owner = ev,
                                .store = ev->store,
                                .meta = ev->meta,
                                .position_key = "events_p"};
    ev->reg->hook = evaluator_on_registry;
    ev->reg->hook_ctx = ev;
    if (pk_registry_watch(ev->reg) != PK_OK || pk_registry_sync(ev->reg, 0) != PK_OK ||
        evaluator_probes_start(ev) != PK_OK)
        return pk_service_failed(PK_EXIT_BUS);
    if ((st = pk_pworkers_serve(&ev->workers, ev->bus, ev->cfg->owned, ev->partitions)) != PK_OK)
        return pk_service_failed(st == PK_ECONFLICT ? PK_EXIT_CONFIG : PK_EXIT_BUS);
    PK_INFO("ready: serving %d of %u partitions (%s), registry at #%llu",
            __builtin_popcountll(atomic_load(&ev->workers.serving)), ev->partitions, ev->cfg->owned,
            (unsigned long long)pk_registry_seq(ev->reg));
    return PK_EXIT_OK;
}

static void run(void *ctx)
{
    pk_registry_follow(((evaluator *)ctx)->reg);
}

static void stop(void *ctx)
{
    evaluator *ev = ctx;

    pk_responders_stop(&ev->probes);
    pk_pworkers_close(&ev->workers);
    pk_pact_cache_destroy(ev->pacts);
    pk_registry_close(ev->reg);
}

PK_SERVICE_MAIN(evaluator, evaluator_cfg, evaluator_metrics_init, .name = "evaluator",
                .summary = "Applies pact clauses to the event stream and emits verdicts.",
                .max_dbs = 16)
