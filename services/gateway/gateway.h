/*
 * pactum-gateway: the roads in over HTTP. Signed envelopes and registrations
 * (POST /v1/events, /v1/agents, /v1/pacts) go onto the bus the way a client
 * of the bus would send them, and ingest judges them; OpenTelemetry traces
 * (OTLP/HTTP, POST /v1/traces) become events signed by the gateway's
 * telemetry key.
 */
#ifndef PK_GATEWAY_H
#define PK_GATEWAY_H

#include <microhttpd.h>
#include <pthread.h>

#include "pk/crypto.h"
#include "pk/ratelimit.h"
#include "pk/registry.h"
#include "pk/service.h"

typedef struct gateway_cfg {
    pk_common_cfg common;
    const char *http;         /* API listen address, or off */
    const char *otlp;         /* OTLP/HTTP listen address, or off */
    const char *otlp_key;     /* the telemetry principal's secret key file */
    const char *otlp_id;      /* its registered id */
    const char *otlp_agents;  /* service.name=agent pairs, comma-separated */
    long long wait_ms;        /* how long to wait for ingest's receipt */
    long long rate;           /* requests a second from one address */
    long long max_bytes;      /* largest envelope or registration */
    long long otlp_max_bytes; /* largest OTLP request */
    long long connections;    /* connections open at once, each listener */
    long long per_client;     /* connections open at once from one address */
    long long timeout_ms;     /* idle connection timeout */
} gateway_cfg;

enum {
#define PK_METRIC(id, type, name, labels, help) id,
#include "metrics.def"
#undef PK_METRIC
    GM_COUNT
};

/* Receipts ingest sends, matched to the envelopes this gateway put on the stream. */
typedef struct gw_receipts gw_receipts;

typedef struct gateway {
    const gateway_cfg *cfg;
    pk_service svc;
    pk_bus *bus;
    pk_store *store;
    uint32_t partitions;
    pk_metric m[GM_COUNT];
    pk_registry *reg;
    pk_ratelimit *rate;
    gw_receipts *receipts;
    struct MHD_Daemon *api, *otlp;
    pk_keypair otel; /* the telemetry reporter's key */
    bool have_otel;
    char otel_id[PK_ID_MAX + 1];
} gateway;

void gateway_metrics_init(gateway *g);

pk_status gw_receipts_start(gw_receipts **out, pk_bus *bus) PK_MUST_CHECK;
void gw_receipts_stop(gw_receipts *r);

/*
 * Put a signed envelope on pactum.raw.<signer> and, if its batch asked for a
 * receipt, wait up to wait_ms for it: *receipt (caller frees) is then set,
 * else NULL. *seq: its position in PACTUM_RAW.
 */
pk_status gw_publish(gateway *g, const char *signer, const uint8_t *env, size_t len,
                     bool want_receipt, uint64_t *seq,
                     Pactum__V1__EnvelopeReceipt **receipt) PK_MUST_CHECK;

/*
 * Authenticate a signed envelope as the bus authenticates a publisher: its
 * signer is registered, signer_key is the registered key and the signature
 * verifies. On failure *reason and a sentence in why.
 */
bool gw_authenticate(gateway *g, const pk_signed_msg *env, Pactum__V1__Reason *reason, char *why,
                     size_t wlen);

/* The HTTP listeners. */
pk_status gw_http_start(gateway *g) PK_MUST_CHECK;
void gw_http_stop(gateway *g);

/*
 * The protobuf bytes of a Signed envelope from its JSON form (docs/http-api.md), a new
 * buffer the caller frees; NULL and a sentence in why if it is not one.
 */
uint8_t *gw_signed_from_json(const char *body, size_t len, size_t *olen, char *why, size_t wlen);

/*
 * OTLP/HTTP: an ExportTraceServiceRequest (protobuf, or JSON when json) turned
 * into events signed as the telemetry reporter (without a bus, g->bus NULL,
 * they are made and counted but go nowhere: the fuzz target). The answer's HTTP status and
 * body (*out, caller frees; an ExportTraceServiceResponse in the request's
 * encoding, or a JSON refusal).
 */
unsigned gw_otlp_traces(gateway *g, const uint8_t *body, size_t len, bool json, uint8_t **out,
                        size_t *olen);

#endif
