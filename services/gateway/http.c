/*
 * The gateway's HTTP listeners (libmicrohttpd): the API (signed envelopes and
 * registrations, docs/http-api.md) and OTLP/HTTP (docs/otel.md). A handler
 * may wait for ingest's receipt, so each connection has a thread of its own;
 * the connection caps bound how many.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "pk/clock.h"
#include "pk/http.h"
#include "pk/log.h"
#include "pk/net.h"
#include "pk/pbjson.h"

static enum MHD_Result send_json(gateway *g, struct MHD_Connection *c, unsigned status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    enum MHD_Result ret;

    json_decref(doc);
    if (!text)
        return MHD_NO;
    ret = pk_http_send(c, status, "application/json", text, strlen(text));
    free(text);
    pk_metric_add(&g->m[GM_HTTP], 1);
    return ret;
}

static enum MHD_Result refuse(gateway *g, struct MHD_Connection *c, unsigned status,
                              const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A refusal before anything was published: {"status": reason, "message": ...}. */
static enum MHD_Result refuse(gateway *g, struct MHD_Connection *c, unsigned status,
                              const char *reason, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status != MHD_HTTP_TOO_MANY_REQUESTS && status < 500)
        pk_metric_add(&g->m[GM_REFUSED], 1);
    return send_json(g, c, status, json_pack("{s:s, s:s}", "status", reason, "message", msg));
}

static bool is_json(const char *type)
{
    return type && strncasecmp(type, "application/json", 16) == 0;
}

static bool is_protobuf(const char *type)
{
    return !type || strncasecmp(type, "application/x-protobuf", 22) == 0 ||
           strncasecmp(type, "application/protobuf", 20) == 0 ||
           strncasecmp(type, "application/octet-stream", 24) == 0;
}

/* Hex of a JSON string into a new buffer; false if it is not one. */
static bool hex_field(json_t *doc, const char *name, ProtobufCBinaryData *out, size_t max)
{
    json_t *v = json_object_get(doc, name);
    size_t n = 0;

    out->data = NULL;
    out->len = 0;
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) > 2 * max ||
        !(out->data = malloc(json_string_length(v) / 2 + 1)) ||
        sodium_hex2bin(out->data, json_string_length(v) / 2 + 1, json_string_value(v),
                       json_string_length(v), NULL, &n, NULL) != 0 ||
        n * 2 != json_string_length(v))
        return false;
    out->len = n;
    return true;
}

/* The JSON form: the fields of Signed, bytes in hex, type by name or number (pk/pbjson.h). */
uint8_t *gw_signed_from_json(const char *body, size_t len, size_t *olen, char *why, size_t wlen)
{
    Pactum__V1__Signed s = PACTUM__V1__SIGNED__INIT;
    json_error_t err;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err), *t, *v;
    uint8_t *out = NULL;

    if (!doc || !json_is_object(doc)) {
        snprintf(why, wlen, "the body is not a JSON object: %s", doc ? "" : err.text);
        goto done;
    }
    v = json_object_get(doc, "version");
    s.version = json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
    t = json_object_get(doc, "type");
    if (json_is_integer(t)) {
        s.type = (Pactum__V1__PayloadType)json_integer_value(t);
    } else if (json_is_string(t)) {
        const ProtobufCEnumDescriptor *d = &pactum__v1__payload_type__descriptor;
        for (unsigned i = 0; i < d->n_values; i++) {
            if (strcmp(pk_pb_enum_name(d, d->values[i].value), json_string_value(t)) == 0)
                s.type = (Pactum__V1__PayloadType)d->values[i].value;
        }
    }
    v = json_object_get(doc, "signer_id");
    s.signer_id = json_is_string(v) ? (char *)json_string_value(v) : "";
    if (!hex_field(doc, "payload", &s.payload, len) ||
        !hex_field(doc, "signer_key", &s.signer_key, PK_PUBKEY_BYTES) ||
        !hex_field(doc, "signature", &s.signature, PK_SIG_BYTES)) {
        snprintf(why, wlen, "payload, signer_key and signature must be lower-case hex");
    } else if (pk_pack(&s.base, &out, olen) != PK_OK) {
        snprintf(why, wlen, "%s", pk_error_msg());
        out = NULL;
    }
    free(s.payload.data);
    free(s.signer_key.data);
    free(s.signature.data);
done:
    json_decref(doc);
    return out;
}

/*
 * The body as a Signed envelope's bytes (*bytes, caller frees) and decoded (*env);
 * false with an HTTP status and a sentence.
 */
static bool signed_body(struct MHD_Connection *c, const pk_http_body *b, uint8_t **bytes,
                        size_t *len, pk_signed_msg **env, unsigned *status, char *why, size_t wlen)
{
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");

    *bytes = NULL;
    *env = NULL;
    *status = MHD_HTTP_BAD_REQUEST;
    if (is_json(type)) {
        if (!(*bytes = gw_signed_from_json(b->buf ? b->buf : "", b->len, len, why, wlen)))
            return false;
    } else if (is_protobuf(type)) {
        if (!(*bytes = malloc(b->len ? b->len : 1)))
            return false;
        memcpy(*bytes, b->buf ? b->buf : "", b->len);
        *len = b->len;
    } else {
        *status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
        snprintf(why, wlen,
                 "Content-Type must be application/x-protobuf (a Signed envelope) or "
                 "application/json (its JSON form)");
        return false;
    }
    if (pk_envelope_open(*bytes, *len, env) != PK_OK) {
        snprintf(why, wlen, "not a Signed envelope: %s", pk_error_msg());
        free(*bytes);
        *bytes = NULL;
        return false;
    }
    return true;
}

static unsigned status_of(Pactum__V1__Reason reason)
{
    switch (reason) {
    case PACTUM__V1__REASON__REASON_BAD_SIGNATURE:
    case PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER:
    case PACTUM__V1__REASON__REASON_NOT_AUTHORIZED:
        return MHD_HTTP_FORBIDDEN;
    case PACTUM__V1__REASON__REASON_CONFLICT:
    case PACTUM__V1__REASON__REASON_DUPLICATE:
        return MHD_HTTP_CONFLICT;
    case PACTUM__V1__REASON__REASON_OVERSIZED:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case PACTUM__V1__REASON__REASON_RATE_LIMITED:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case PACTUM__V1__REASON__REASON_INTERNAL:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    default:
        return MHD_HTTP_BAD_REQUEST;
    }
}

/* POST /v1/events: authenticate, put on the raw stream, answer with ingest's receipt. */
static enum MHD_Result post_events(gateway *g, struct MHD_Connection *c, const pk_http_body *b)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    pk_signed_msg *env = NULL;
    pk_event_batch_msg *batch = NULL;
    Pactum__V1__EnvelopeReceipt *rc = NULL;
    Pactum__V1__Reason reason = PACTUM__V1__REASON__REASON_MALFORMED;
    char why[512];
    unsigned status;
    uint64_t seq = 0;
    enum MHD_Result ret;
    json_t *doc;

    if (!signed_body(c, b, &bytes, &len, &env, &status, why, sizeof(why)))
        return refuse(g, c, status, status == MHD_HTTP_BAD_REQUEST ? "malformed" : "bad_request",
                      "%s", why);
    if (env->type != PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH ||
        !(batch = pactum__v1__event_batch__unpack(NULL, env->payload.len, env->payload.data))) {
        ret = refuse(g, c, MHD_HTTP_BAD_REQUEST, "invalid_field",
                     "POST /v1/events takes a signed EventBatch (type event_batch); "
                     "registrations go to /v1/agents and /v1/pacts");
    } else if (!gw_authenticate(g, env, &reason, why, sizeof(why))) {
        ret = refuse(g, c, status_of(reason), pk_reason_name(reason), "%s", why);
    } else if (gw_publish(g, env->signer_id, bytes, len, batch->receipt, &seq, &rc) != PK_OK) {
        ret = refuse(g, c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the envelope could not be stored: %s", pk_error_msg());
    } else if (rc) {
        doc = pk_pb_json(&rc->base);
        json_object_set_new(doc, "judged", json_true());
        ret = send_json(g, c, MHD_HTTP_OK, doc);
    } else {
        ret = send_json(g, c, MHD_HTTP_ACCEPTED,
                        json_pack("{s:I, s:s, s:b, s:s}", "raw_seq", (json_int_t)seq, "signer_id",
                                  env->signer_id, "judged", false, "message",
                                  batch->receipt ? "stored; ingest had not judged it in time"
                                                 : "stored; set receipt in the batch to wait for "
                                                   "ingest's judgement"));
    }
    if (rc)
        pactum__v1__envelope_receipt__free_unpacked(rc, NULL);
    if (batch)
        pactum__v1__event_batch__free_unpacked(batch, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    free(bytes);
    return ret;
}

/* POST /v1/agents and /v1/pacts: an owner-signed registration, judged by the registrar. */
static enum MHD_Result post_registration(gateway *g, struct MHD_Connection *c,
                                         const pk_http_body *b, Pactum__V1__PayloadType want)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    pk_signed_msg *env = NULL;
    natsMsg *reply = NULL;
    Pactum__V1__RegistryReceipt *rr = NULL;
    char why[512];
    unsigned status;
    enum MHD_Result ret;

    if (!signed_body(c, b, &bytes, &len, &env, &status, why, sizeof(why)))
        return refuse(g, c, status, status == MHD_HTTP_BAD_REQUEST ? "malformed" : "bad_request",
                      "%s", why);
    if (env->type != want) {
        ret = refuse(g, c, MHD_HTTP_BAD_REQUEST, "invalid_field", "this route takes a signed %s",
                     want == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION
                         ? "AgentRegistration (type agent_registration)"
                         : "PactRegistration (type pact_registration)");
    } else if (pk_bus_request(g->bus, PK_SUBJ_REG_SUBMIT, bytes, len, g->cfg->wait_ms, &reply) !=
                   PK_OK ||
               !(rr = pactum__v1__registry_receipt__unpack(
                     NULL, (size_t)natsMsg_GetDataLength(reply),
                     (const uint8_t *)natsMsg_GetData(reply)))) {
        ret = refuse(g, c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the registrar did not answer: %s", pk_error_msg());
    } else {
        pk_metric_add(&g->m[GM_REGISTRATIONS], 1);
        /* Read your writes: once this answer is out, the new agent's events are
         * authenticated here, so the copy holds the record before it goes. */
        if (rr->ok && rr->seq && pk_registry_sync(g->reg, rr->seq) != PK_OK)
            PK_WARN("registry copy behind #%llu: %s", (unsigned long long)rr->seq, pk_error_msg());
        ret = send_json(g, c, rr->ok ? MHD_HTTP_OK : status_of(rr->reason), pk_pb_json(&rr->base));
    }
    if (rr)
        pactum__v1__registry_receipt__free_unpacked(rr, NULL);
    natsMsg_Destroy(reply);
    pactum__v1__signed__free_unpacked(env, NULL);
    free(bytes);
    return ret;
}

/* The same limits on both listeners: the body's size, and requests a second per address. */
static bool admitted(gateway *g, struct MHD_Connection *c, const pk_http_body *b, size_t max,
                     enum MHD_Result *ret)
{
    char addr[64];

    pk_http_client(c, addr, sizeof(addr));
    if (!pk_ratelimit_take(g->rate, addr, 1, pk_mono_ms())) {
        pk_metric_add(&g->m[GM_RATE_LIMITED], 1);
        *ret = refuse(g, c, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                      "more than %lld requests a second from this address; send again shortly",
                      g->cfg->rate);
        return false;
    }
    if (b->too_big) {
        *ret = refuse(g, c, MHD_HTTP_CONTENT_TOO_LARGE, "oversized",
                      "the body is larger than %zu bytes", max);
        return false;
    }
    return true;
}

static enum MHD_Result on_api(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls)
{
    gateway *g = cls;
    const pk_http_body *b;
    enum MHD_Result ret;
    bool fail;

    (void)version;
    if (pk_http_gather(con_cls, data, size, (size_t)g->cfg->max_bytes, &fail))
        return MHD_YES;
    if (fail)
        return MHD_NO;
    b = *con_cls;
    if (strcmp(url, "/v1/health") == 0 && strcmp(method, "GET") == 0)
        return send_json(g, c, MHD_HTTP_OK, pk_service_health_json(&g->svc));
    if (!admitted(g, c, b, (size_t)g->cfg->max_bytes, &ret))
        return ret;
    if (strcmp(url, "/v1/events") == 0 || strcmp(url, "/v1/agents") == 0 ||
        strcmp(url, "/v1/pacts") == 0) {
        if (strcmp(method, "POST") != 0)
            return refuse(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "%s takes POST", url);
        if (strcmp(url, "/v1/events") == 0)
            return post_events(g, c, b);
        return post_registration(g, c, b,
                                 strcmp(url, "/v1/agents") == 0
                                     ? PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION
                                     : PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION);
    }
    return refuse(g, c, MHD_HTTP_NOT_FOUND, "not_found",
                  "no route %s %s; the gateway answers POST /v1/events, POST /v1/agents, POST "
                  "/v1/pacts and GET /v1/health (docs/http-api.md)",
                  method, url);
}

static enum MHD_Result on_otlp(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
    gateway *g = cls;
    const pk_http_body *b;
    const char *type;
    enum MHD_Result ret;
    unsigned status;
    uint8_t *out = NULL;
    size_t olen = 0;
    bool fail;

    (void)version;
    if (pk_http_gather(con_cls, data, size, (size_t)g->cfg->otlp_max_bytes, &fail))
        return MHD_YES;
    if (fail)
        return MHD_NO;
    b = *con_cls;
    if (strcmp(url, "/v1/traces") != 0)
        return refuse(g, c, MHD_HTTP_NOT_FOUND, "not_found",
                      "this OTLP/HTTP receiver takes traces only: POST /v1/traces");
    if (strcmp(method, "POST") != 0)
        return refuse(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "/v1/traces takes POST");
    if (!admitted(g, c, b, (size_t)g->cfg->otlp_max_bytes, &ret))
        return ret;
    type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!is_json(type) && !is_protobuf(type))
        return refuse(g, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "bad_request",
                      "Content-Type must be application/x-protobuf or application/json (OTLP)");
    status = gw_otlp_traces(g, (const uint8_t *)(b->buf ? b->buf : ""), b->len, is_json(type), &out,
                            &olen);
    ret = pk_http_send(c, status,
                       is_json(type) || status != MHD_HTTP_OK ? "application/json"
                                                              : "application/x-protobuf",
                       out ? (const void *)out : "", olen);
    pk_metric_add(&g->m[GM_HTTP], 1);
    free(out);
    return ret;
}

static struct MHD_Daemon *listen_on(gateway *g, const char *spec, const char *flag,
                                    MHD_AccessHandlerCallback fn, pk_status *st)
{
    struct sockaddr_in sa;
    struct MHD_Daemon *d;

    if ((*st = pk_listen_addr(spec, flag, &sa)) != PK_OK)
        return NULL;
    d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        ntohs(sa.sin_port), NULL, NULL, fn, g, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)g->cfg->connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)g->cfg->per_client,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((g->cfg->timeout_ms + 999) / 1000),
        MHD_OPTION_NOTIFY_COMPLETED, pk_http_done, NULL, MHD_OPTION_END);
    if (!d)
        *st = PK_ERR(PK_EIO, "%s: cannot listen on %s (is the port taken?)", flag, spec);
    return d;
}

pk_status gw_http_start(gateway *g)
{
    pk_status st = PK_OK;

    if (g->cfg->http && *g->cfg->http && strcmp(g->cfg->http, "off") != 0) {
        if (!(g->api = listen_on(g, g->cfg->http, "--http", on_api, &st)))
            return st;
        PK_INFO("HTTP API on http://%s/v1/ (events, agents, pacts)", g->cfg->http);
    }
    if (g->cfg->otlp && *g->cfg->otlp && strcmp(g->cfg->otlp, "off") != 0) {
        if (!g->have_otel) {
            PK_WARN("OTLP off: no --otlp-key (the telemetry reporter's key) was given");
        } else {
            if (!(g->otlp = listen_on(g, g->cfg->otlp, "--otlp", on_otlp, &st)))
                return st;
            PK_INFO("OTLP/HTTP on http://%s/v1/traces, signing as %s", g->cfg->otlp, g->otel_id);
        }
    }
    return PK_OK;
}

void gw_http_stop(gateway *g)
{
    if (g->api)
        MHD_stop_daemon(g->api);
    if (g->otlp)
        MHD_stop_daemon(g->otlp);
    g->api = g->otlp = NULL;
}
