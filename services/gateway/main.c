/*
 * pactum-gateway: signed envelopes and registrations over HTTP, and
 * OpenTelemetry traces in (gateway.h).
 */
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "pk/log.h"

static const pk_cfg_opt options[] = {
    PK_COMMON_OPTS(gateway_cfg),
    {"http", "PACTUM_GATEWAY_HTTP", PK_CFG_STR, "127.0.0.1:7481", 0, 0, offsetof(gateway_cfg, http),
     "listen address host:port of the HTTP API (POST /v1/events, /v1/agents, /v1/pacts), or off"},
    {"otlp", "PACTUM_GATEWAY_OTLP", PK_CFG_STR, "127.0.0.1:4318", 0, 0, offsetof(gateway_cfg, otlp),
     "listen address of the OTLP/HTTP trace receiver (POST /v1/traces), or off; it needs "
     "--otlp-key"},
    {"otlp-key", "PACTUM_GATEWAY_OTLP_KEY", PK_CFG_STR, "", 0, 0, offsetof(gateway_cfg, otlp_key),
     "secret key of the telemetry reporter that signs the events made from spans (registered "
     "with pactum principal register --role telemetry)"},
    {"otlp-id", "PACTUM_GATEWAY_OTLP_ID", PK_CFG_STR, "@otel", 0, 0, offsetof(gateway_cfg, otlp_id),
     "the telemetry reporter's registered id"},
    {"otlp-agents", "PACTUM_GATEWAY_OTLP_AGENTS", PK_CFG_STR, "", 0, 0,
     offsetof(gateway_cfg, otlp_agents),
     "service.name=agent-id pairs, comma-separated, for services whose name is not their "
     "agent's id (a span's gen_ai.agent.id names the agent itself)"},
    {"wait", "PACTUM_GATEWAY_WAIT", PK_CFG_DURATION, "5s", 10, 60000,
     offsetof(gateway_cfg, wait_ms),
     "how long a request waits for ingest's judgement (or the registrar's answer)"},
    {"rate", "PACTUM_GATEWAY_RATE", PK_CFG_INT, "200", 0, 10000000, offsetof(gateway_cfg, rate),
     "requests a second from one address (twice that at once); 0: no limit"},
    {"max-bytes", "PACTUM_GATEWAY_MAX_BYTES", PK_CFG_INT, "1048576", 1024, 16777216,
     offsetof(gateway_cfg, max_bytes), "largest request body of the API"},
    {"otlp-max-bytes", "PACTUM_GATEWAY_OTLP_MAX_BYTES", PK_CFG_INT, "4194304", 1024, 67108864,
     offsetof(gateway_cfg, otlp_max_bytes), "largest OTLP request body"},
    {"connections", "PACTUM_GATEWAY_CONNECTIONS", PK_CFG_INT, "256", 4, 4096,
     offsetof(gateway_cfg, connections),
     "connections open at once on each listener (a thread each while it waits)"},
    {"per-client", "PACTUM_GATEWAY_PER_CLIENT", PK_CFG_INT, "16", 1, 4096,
     offsetof(gateway_cfg, per_client), "connections open at once from one address"},
    {"timeout", "PACTUM_GATEWAY_TIMEOUT", PK_CFG_DURATION, "10s", 1000, 600000,
     offsetof(gateway_cfg, timeout_ms), "a connection that sends nothing for this long is closed"},
};

void gateway_metrics_init(gateway *g)
{
#define PK_METRIC(id, type, name, labels, help) g->m[id] = (pk_metric){name, labels, help, type, 0};
#include "metrics.def"
#undef PK_METRIC
}

static int start(void *ctx)
{
    gateway *g = ctx;
    const gateway_cfg *cfg = g->cfg;

    if (cfg->otlp_key && *cfg->otlp_key) {
        if (pk_key_load(cfg->otlp_key, &g->otel) != PK_OK) {
            PK_ERROR("--otlp-key: %s", pk_error_msg());
            return PK_EXIT_CONFIG;
        }
        if (pk_principal_id_check("--otlp-id", cfg->otlp_id) != PK_OK) {
            PK_ERROR("%s", pk_error_msg());
            return PK_EXIT_CONFIG;
        }
        g->have_otel = true;
        snprintf(g->otel_id, sizeof(g->otel_id), "%s", cfg->otlp_id);
    }
    if (pk_ratelimit_create(&g->rate, (uint64_t)cfg->rate, (uint64_t)cfg->rate * 2, 65536) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    if (pk_registry_open(&g->reg, g->store, g->bus) != PK_OK)
        return pk_service_failed(PK_EXIT_STORE);
    if (pk_registry_watch(g->reg) != PK_OK || pk_registry_sync(g->reg, 0) != PK_OK ||
        gw_receipts_start(&g->receipts, g->bus) != PK_OK)
        return pk_service_failed(PK_EXIT_BUS);
    if (gw_http_start(g) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    PK_INFO("ready: registry at #%llu", (unsigned long long)pk_registry_seq(g->reg));
    return PK_EXIT_OK;
}

static void run(void *ctx)
{
    pk_registry_follow(((gateway *)ctx)->reg);
}

static void stop(void *ctx)
{
    gateway *g = ctx;

    gw_http_stop(g);
    gw_receipts_stop(g->receipts);
    g->receipts = NULL;
    pk_registry_close(g->reg);
    pk_ratelimit_destroy(g->rate);
    pk_keypair_wipe(&g->otel);
}

PK_SERVICE_MAIN(gateway, gateway_cfg, gateway_metrics_init, .name = "gateway",
                .summary = "Signed events and registrations over HTTP; OpenTelemetry traces in.",
                .max_dbs = 8)
