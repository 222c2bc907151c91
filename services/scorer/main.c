/*
 * pactum-scorer: keeps reputation and tier per agent, publishes trust changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/log.h"
#include "scorer.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(scorer_cfg),
    {"owned", "PACTUM_SCORER_PARTITIONS", PK_CFG_STR, "auto", 0, 0, offsetof(scorer_cfg, owned),
     "partitions served: auto (a fair share of them, by lease, moving with the live "
     "instances), or pinned: all, or a list like 0,1 or 2-3"},
    {"batch", "PACTUM_SCORER_BATCH", PK_CFG_INT, "256", 1, 4096, offsetof(scorer_cfg, batch),
     "verdicts fetched and committed together"},
    /* the default is PK_SCORING_STATES, which `pactum replay` keeps too */
    {"states", "PACTUM_SCORER_STATES", PK_CFG_INT, "64", 1, 4096, offsetof(scorer_cfg, states),
     "trust states a partition keeps decoded while it computes a batch (about 81 KiB each); "
     "a batch about more agents writes the one used longest ago to the batch's writes and "
     "reads it back from there"},
    {"tick", "PACTUM_SCORER_TICK", PK_CFG_DURATION, "1s", 100, 60000,
     offsetof(scorer_cfg, tick_every_ms),
     "how often to look for silent agents whose time has come (a clean window ends, "
     "forgetting lowers the bound)"},
};

/* Partitions, databases, registry copy, pact cache, the digest and one worker per partition. */
static int start(void *ctx)
{
    scorer *sc = ctx;
    const pk_dbi_spec dbs[] = {{"agents", 0, &sc->agents},
                               {"tiers", 0, &sc->tiers},
                               {"meta", 0, &sc->meta},
                               {"wake", 0, &sc->wake},
                               {"wake_of", 0, &sc->wake_of}};
    uint64_t owned = 0;
    pk_status st;

    if (strcmp(sc->cfg->owned, "auto") != 0 &&
        pk_partitions_parse(sc->cfg->owned, sc->partitions, &owned) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    if (pk_store_dbis(sc->store, dbs, PK_NELEM(dbs)) != PK_OK ||
        pk_registry_open(&sc->reg, sc->store, sc->bus) != PK_OK ||
        pk_pact_cache_create(&sc->pacts, sc->reg, 256) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    sc->workers = (pk_pworkers){.svc = &sc->svc,
                                .common = &sc->cfg->common,
                                .stream = PK_STREAM_VERDICTS,
                                .prefix = "scorer",
                                .subject = "pactum.verdicts",
                                .tail = ">",
                                .batch = (int)sc->cfg->batch,
                                .process = scorer_process,
                                .idle = scorer_idle,
                                .ctx_size = sizeof(score_worker),
                                .ctx_init = scorer_worker_init,
                                .ctx_free = scorer_worker_free,
                                .owner = sc,
                                .store = sc->store,
                                .meta = sc->meta,
                                .position_key = "inputs_p"};
    if (pk_registry_watch(sc->reg) != PK_OK || pk_registry_sync(sc->reg, 0) != PK_OK ||
        scorer_answers_start(sc) != PK_OK)
        return pk_service_failed(PK_EXIT_BUS);
    if ((st = pk_pworkers_serve(&sc->workers, sc->bus, sc->cfg->owned, sc->partitions)) != PK_OK)
        return pk_service_failed(st == PK_ECONFLICT ? PK_EXIT_CONFIG : PK_EXIT_BUS);
    PK_INFO("ready: serving %d of %u partitions (%s)",
            __builtin_popcountll(atomic_load(&sc->workers.serving)), sc->partitions,
            sc->cfg->owned);
    return PK_EXIT_OK;
}

static void run(void *ctx)
{
    pk_registry_follow(((scorer *)ctx)->reg);
}

static void stop(void *ctx)
{
    scorer *sc = ctx;

    pk_pworkers_close(&sc->workers);
    pk_responders_stop(&sc->answers);
    pk_pact_cache_destroy(sc->pacts);
    pk_registry_close(sc->reg);
}

PK_SERVICE_MAIN(scorer, scorer_cfg, scorer_metrics_init, .name = "scorer",
                .summary = "Keeps reputation and tier per agent; publishes trust changes.",
                .max_dbs = 16)
