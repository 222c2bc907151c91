/*
 * The roads in over HTTP, against the running suite on the bus as deployed
 * (TLS, a user per service): signed envelopes judged by ingest and answered
 * per event, forgeries refused before they reach the bus, registrations
 * over HTTP, and OpenTelemetry spans (OTLP/HTTP, JSON and protobuf) turned
 * into evidence signed by the telemetry reporter that moves an agent's tier.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pactum/otlp/traces.pb-c.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair agent, owner, otel;
static int api_port, otlp_port;
static char out[65536];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

/* A critical forbidden tool, judged on what telemetry says (and the agent's own word). */
static const char *pact =
    "{\"pactum\":1,\"id\":\"gw-pact\",\"agent\":\"gw-bot\",\"clauses\":["
    "{\"id\":\"no-rm\",\"promise\":\"never runs shell.rm\",\"severity\":\"critical\","
    "\"kind\":\"forbidden\",\"window\":\"1d\",\"sources\":{\"self\":0.5,\"telemetry\":1},"
    "\"match\":{\"field\":\"tool\",\"eq\":\"shell.rm\"}},"
    "{\"id\":\"latency\",\"promise\":\"replies within 2 s on average\",\"severity\":\"low\","
    "\"kind\":\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\","
    "\"op\":\"<=\",\"threshold\":2000,\"min_samples\":1}]}";

static void setup(void)
{
    char key_env[600];
    const char *env[] = {key_env, "PACTUM_GATEWAY_OTLP_ID=@otel", NULL};

    cr_assert(h_start_secure(&h, true), "harness did not start (logs in %s)", h.dir);
    cr_assert(h_agent_with_pact(&h, "gw-bot", 51, &agent, &owner, pact), "%s", h.why);
    h_keypair(&otel, 55);
    cr_assert(h_key_file(&h, "otel", &otel) && h_key_file(&h, "admin", &h.admin), "%s", h.why);
    cr_assert_eq(cli("principal register --id @otel --role telemetry --key otel.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
    snprintf(key_env, sizeof(key_env), "PACTUM_GATEWAY_OTLP_KEY=%s/otel.key", h.dir);
    cr_assert(h_start_gateway(&h, env, &api_port, &otlp_port), "the gateway did not start (%s)",
              h.dir);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
    h_stop(&h);
    curl_global_cleanup();
}

TestSuite(gateway, .init = setup, .fini = teardown, .timeout = 240);

typedef struct reply {
    char *buf;
    size_t len;
} reply;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    reply *r = ctx;
    size_t k = size * n;

    if (r->len + k + 1 > sizeof(out))
        return 0;
    memcpy(r->buf + r->len, p, k);
    r->len += k;
    r->buf[r->len] = '\0';
    return k;
}

/* POST body to the gateway's port and path; the HTTP status, the reply in out. */
static long post(int port, const char *path, const char *type, const void *body, size_t len)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hd = NULL;
    char url[256], ct[128];
    reply r = {out, 0};
    long status = 0;

    out[0] = '\0';
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(ct, sizeof(ct), "Content-Type: %s", type);
    hd = curl_slist_append(hd, ct);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    return status;
}

/* A signed batch of events of signer (ids prefix-0 ..), asking for a receipt or not. */
static uint8_t *batch_of(const char *signer, const pk_keypair *kp, const char *prefix, int n,
                         int64_t ts_ms, bool receipt, size_t *len)
{
    pk_event_msg evs[8], *evp[8];
    Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
    Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
    char ids[8][32];
    uint8_t *payload = NULL, *env = NULL;
    size_t plen = 0;

    m.name = "latency_ms";
    m.value = 300;
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%s-%d", prefix, i);
        h_event_init(&evs[i], ids[i], signer, "reply", &m, NULL);
        evs[i].ts_ms = ts_ms;
        evs[i].metrics = mp;
        evs[i].n_metrics = 1;
        evp[i] = &evs[i];
    }
    b.events = evp;
    b.n_events = (size_t)n;
    b.receipt = receipt;
    cr_assert_eq(pk_pack(&b.base, &payload, &plen), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen,
                                  signer, kp, &env, len),
                 PK_OK);
    free(payload);
    return env;
}

static uint8_t *batch(const char *prefix, int n, int64_t ts_ms, bool receipt, size_t *len)
{
    return batch_of("gw-bot", &agent, prefix, n, ts_ms, receipt, len);
}

/* The JSON form of an envelope (docs/http-api.md) from its parts in hex; caller frees. */
static char *json_form(const char *payload_hex, const char *key_hex, const char *sig_hex)
{
    char *body = malloc(strlen(payload_hex) + 512);

    cr_assert_not_null(body);
    sprintf(body,
            "{\"version\":1,\"type\":\"event_batch\",\"payload\":\"%s\",\"signer_id\":"
            "\"gw-bot\",\"signer_key\":\"%s\",\"signature\":\"%s\"}",
            payload_hex, key_hex, sig_hex);
    return body;
}

static json_t *json_out(void)
{
    json_t *doc = json_loads(out, 0, NULL);

    cr_assert_not_null(doc, "not JSON: %s", out);
    return doc;
}

static long long envelopes_published(void)
{
    return h_metric(&h, "gateway", "pactum_gateway_envelopes_total");
}

Test(gateway, events_over_http_are_judged_per_event_and_forgeries_never_reach_the_bus)
{
    size_t len = 0;
    uint8_t *env = batch("http", 3, pk_now_ms(), true, &len);
    json_t *doc, *refused;
    long long before;

    /* binary protobuf: judged by ingest, every event accepted */
    cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 200, "%s", out);
    doc = json_out();
    cr_assert(json_is_true(json_object_get(doc, "judged")), "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(doc, "accepted")), 3, "%s", out);
    cr_assert(json_integer_value(json_object_get(doc, "raw_seq")) > 0, "%s", out);
    json_decref(doc);

    /* the same again: stored, judged, every event refused as a duplicate */
    cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 200, "%s", out);
    doc = json_out();
    refused = json_object_get(doc, "refused");
    cr_assert_eq(json_integer_value(json_object_get(doc, "accepted")), 0, "%s", out);
    cr_assert_eq(json_array_size(refused), 3, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(refused, 0), "reason")),
                     "duplicate", "%s", out);
    json_decref(doc);
    free(env);

    /* an event from the far past: refused with its reason, the other accepted */
    {
        pk_event_msg evs[2], *evp[2] = {&evs[0], &evs[1]};
        Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
        uint8_t *payload = NULL;
        size_t plen = 0;
        h_event_init(&evs[0], "old-0", "gw-bot", "reply", NULL, NULL);
        h_event_init(&evs[1], "new-0", "gw-bot", "reply", NULL, NULL);
        evs[0].ts_ms = pk_now_ms() - 30LL * 86400000;
        b.events = evp;
        b.n_events = 2;
        b.receipt = true;
        cr_assert_eq(pk_pack(&b.base, &payload, &plen), PK_OK);
        cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen,
                                      "gw-bot", &agent, &env, &len),
                     PK_OK);
        free(payload);
        cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 200, "%s",
                     out);
        doc = json_out();
        refused = json_object_get(doc, "refused");
        cr_assert_eq(json_integer_value(json_object_get(doc, "accepted")), 1, "%s", out);
        cr_assert_eq(json_array_size(refused), 1, "%s", out);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(refused, 0), "event_id")),
                         "old-0");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(refused, 0), "reason")),
                         "too_old", "%s", out);
        json_decref(doc);
        free(env);
    }

    /* the JSON form: the envelope's fields, bytes in hex */
    {
        pk_signed_msg *s = NULL;
        char *payload_hex, key_hex[65], sig_hex[129], *body;
        env = batch("json", 2, pk_now_ms(), true, &len);
        cr_assert_eq(pk_envelope_open(env, len, &s), PK_OK);
        payload_hex = malloc(s->payload.len * 2 + 1);
        sodium_bin2hex(payload_hex, s->payload.len * 2 + 1, s->payload.data, s->payload.len);
        sodium_bin2hex(key_hex, sizeof(key_hex), s->signer_key.data, s->signer_key.len);
        sodium_bin2hex(sig_hex, sizeof(sig_hex), s->signature.data, s->signature.len);
        body = json_form(payload_hex, key_hex, sig_hex);
        cr_assert_eq(post(api_port, "/v1/events", "application/json", body, strlen(body)), 200,
                     "%s", out);
        doc = json_out();
        cr_assert_eq(json_integer_value(json_object_get(doc, "accepted")), 2, "%s", out);
        json_decref(doc);

        /* a forged signature (one payload byte changed): refused, nothing published */
        before = envelopes_published();
        payload_hex[10] = payload_hex[10] == '0' ? '1' : '0';
        free(body);
        body = json_form(payload_hex, key_hex, sig_hex);
        cr_assert_eq(post(api_port, "/v1/events", "application/json", body, strlen(body)), 403,
                     "%s", out);
        cr_assert(strstr(out, "bad_signature"), "%s", out);
        cr_assert_eq(envelopes_published(), before);
        free(body);
        free(payload_hex);
        pactum__v1__signed__free_unpacked(s, NULL);
        free(env);
    }

    /* a key that is not the registered one, for a registered signer and for an unknown one */
    {
        static const char *const signers[2] = {"gw-bot", "nobody-bot"};
        static const char *const said[2] = {"not the key registered", "unknown_signer"};
        pk_event_msg ev, *evp = &ev;
        Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
        pk_keypair stranger;
        uint8_t *payload = NULL;
        size_t plen = 0;
        h_keypair(&stranger, 57);
        h_event_init(&ev, "x-0", "gw-bot", "reply", NULL, NULL);
        b.events = &evp;
        b.n_events = 1;
        cr_assert_eq(pk_pack(&b.base, &payload, &plen), PK_OK);
        before = envelopes_published();
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload,
                                          plen, signers[i], &stranger, &env, &len),
                         PK_OK);
            cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 403,
                         "%s", out);
            cr_assert(strstr(out, said[i]), "%s", out);
            free(env);
        }
        free(payload);
        cr_assert_eq(envelopes_published(), before);
    }

    /* not an envelope; not a media type it takes; not asking for a receipt */
    cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", "\x0a\x03xyz", 5), 400,
                 "%s", out);
    cr_assert_eq(post(api_port, "/v1/events", "text/plain", "hello", 5), 415, "%s", out);
    env = batch("quiet", 1, pk_now_ms(), false, &len);
    cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 202, "%s", out);
    cr_assert(strstr(out, "\"judged\":false"), "%s", out);
    free(env);
}

Test(gateway, agents_and_pacts_register_over_http_owner_signed)
{
    Pactum__V1__AgentRegistration ar = PACTUM__V1__AGENT_REGISTRATION__INIT;
    Pactum__V1__PactRegistration pr = PACTUM__V1__PACT_REGISTRATION__INIT;
    pk_keypair a2, o2, thief;
    uint8_t *pop = NULL, sig[PK_SIG_BYTES], *payload = NULL, *env = NULL;
    size_t poplen = 0, plen = 0, len = 0;
    const char *doc2 = "{\"pactum\":1,\"id\":\"web-pact\",\"agent\":\"web-bot\",\"clauses\":["
                       "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"low\",\"kind\":"
                       "\"objective\",\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":"
                       "\"1h\",\"op\":\"<=\",\"threshold\":2000}]}";
    json_t *doc;

    h_keypair(&a2, 61);
    h_keypair(&o2, 62);
    h_keypair(&thief, 63);
    cr_assert_eq(pk_pop_message("web-bot", o2.pk, &pop, &poplen), PK_OK);
    pk_sign(&a2, pop, poplen, sig);
    ar.agent_id = "web-bot";
    ar.agent_key = (ProtobufCBinaryData){PK_PUBKEY_BYTES, a2.pk};
    ar.owner_key = (ProtobufCBinaryData){PK_PUBKEY_BYTES, o2.pk};
    ar.agent_pop = (ProtobufCBinaryData){PK_SIG_BYTES, sig};
    ar.ts_ms = pk_now_ms();
    cr_assert_eq(pk_pack(&ar.base, &payload, &plen), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION, payload,
                                  plen, "", &o2, &env, &len),
                 PK_OK);
    cr_assert_eq(post(api_port, "/v1/agents", "application/x-protobuf", env, len), 200, "%s", out);
    doc = json_out();
    cr_assert(json_is_true(json_object_get(doc, "ok")), "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "id")), "web-bot");
    /* a bus identity for the new agent at once: no operator, no reload */
    cr_assert(json_array_size(json_object_get(doc, "credentials")) >= 1, "%s", out);
    json_decref(doc);
    free(env);
    free(payload);
    /* and its first events, sent the moment the answer came, are taken: the gateway's copy of
     * the registry already holds the agent it just answered for */
    env = batch_of("web-bot", &a2, "first", 1, pk_now_ms(), true, &len);
    cr_assert_eq(post(api_port, "/v1/events", "application/x-protobuf", env, len), 200, "%s", out);
    doc = json_out();
    cr_assert_eq(json_integer_value(json_object_get(doc, "accepted")), 1, "%s", out);
    json_decref(doc);
    free(env);

    /* an agent registration on the pacts route is refused before the registrar sees it */
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION,
                                  (const uint8_t *)"", 0, "", &o2, &env, &len),
                 PK_OK);
    cr_assert_eq(post(api_port, "/v1/pacts", "application/x-protobuf", env, len), 400, "%s", out);
    free(env);

    /* the pact, signed by the owner: registered; signed by someone else: refused */
    pr.pact_id = "web-pact";
    pr.document = (ProtobufCBinaryData){strlen(doc2), (uint8_t *)doc2};
    pr.ts_ms = pk_now_ms();
    cr_assert_eq(pk_pack(&pr.base, &payload, &plen), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION, payload,
                                  plen, "", &thief, &env, &len),
                 PK_OK);
    cr_assert_eq(post(api_port, "/v1/pacts", "application/x-protobuf", env, len), 403, "%s", out);
    cr_assert(strstr(out, "not_authorized"), "%s", out);
    free(env);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION, payload,
                                  plen, "", &o2, &env, &len),
                 PK_OK);
    cr_assert_eq(post(api_port, "/v1/pacts", "application/x-protobuf", env, len), 200, "%s", out);
    doc = json_out();
    cr_assert_eq(json_integer_value(json_object_get(doc, "version")), 1, "%s", out);
    json_decref(doc);
    free(env);
    free(payload);
    free(pop);
}

/* An OTLP/JSON request with one span of gw-bot (tool, status) and one span of no GenAI kind. */
static char *otlp_json(const char *span_id, const char *agent_id, const char *tool, bool error)
{
    char *b = malloc(4096);
    uint64_t end = (uint64_t)pk_now_ms() * 1000000ULL, start = end - 250000000ULL;

    snprintf(b, 4096,
             "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
             "\"value\":{\"stringValue\":\"support-service\"}}]},\"scopeSpans\":[{\"scope\":{"
             "\"name\":\"test\"},\"spans\":["
             "{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"%s\",\"name\":"
             "\"execute_tool %s\",\"kind\":1,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":"
             "\"%llu\",\"attributes\":[{\"key\":\"gen_ai.operation.name\",\"value\":{"
             "\"stringValue\":\"execute_tool\"}},{\"key\":\"gen_ai.tool.name\",\"value\":{"
             "\"stringValue\":\"%s\"}},{\"key\":\"gen_ai.agent.id\",\"value\":{\"stringValue\":"
             "\"%s\"}},{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"120\"}}],"
             "\"status\":{\"code\":%d,\"message\":\"%s\"}},"
             "{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"00000000000000aa\","
             "\"name\":\"GET /health\",\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"}"
             "]}]}]}",
             span_id, tool, (unsigned long long)start, (unsigned long long)end, tool, agent_id,
             error ? 2 : 1, error ? "permission denied" : "", (unsigned long long)start,
             (unsigned long long)end);
    return b;
}

typedef struct seen_event {
    bool seen;
    char why[256];
} seen_event;

/* The stored event made from the harmless span: the source, the reporter and the measures. */
static bool telemetry_event(void *ctx, natsMsg *m)
{
    seen_event *se = ctx;
    pk_event_msg *ev = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                 (const uint8_t *)natsMsg_GetData(m));
    double tokens = 0;

    if (ev && strcmp(ev->tool, "search.docs") == 0) {
        se->seen = true;
        if (ev->source != PACTUM__V1__SOURCE__SOURCE_TELEMETRY ||
            strcmp(ev->reporter_id, "@otel") != 0 || strcmp(ev->kind, "tool_call") != 0 ||
            !pk_event_metric(ev, "input_tokens", &tokens) || tokens != 120 ||
            strcmp(ev->event_id, "otel-5b8efff798038103d269b633813fc60c-00f067aa0ba902b7") != 0)
            snprintf(se->why, sizeof(se->why), "source %s, reporter %s, kind %s, tokens %g, id %s",
                     pk_source_name(ev->source), ev->reporter_id, ev->kind, tokens, ev->event_id);
    }
    if (ev)
        pactum__v1__event__free_unpacked(ev, NULL);
    return true;
}

Test(gateway, opentelemetry_spans_become_signed_telemetry_evidence_that_moves_the_tier)
{
    char *body;
    Pactum__V1__TrustReport *r;
    long long spans0 = h_metric(&h, "gateway", "pactum_gateway_otlp_spans_total");

    /* a harmless tool call over OTLP/JSON: accepted; the health-check span is not evidence */
    body = otlp_json("00f067aa0ba902b7", "gw-bot", "search.docs", false);
    cr_assert_eq(post(otlp_port, "/v1/traces", "application/json", body, strlen(body)), 200, "%s",
                 out);
    cr_assert_str_eq(out, "{}", "a full success has no partialSuccess: %s", out);
    free(body);
    cr_assert_eq(h_metric(&h, "gateway", "pactum_gateway_otlp_spans_total"), spans0 + 2);
    cr_assert_eq(h_metric(&h, "gateway", "pactum_gateway_otlp_events_total"), 1);

    /* a span about an agent nobody registered: refused, and said so */
    body = otlp_json("00f067aa0ba902b8", "ghost-bot", "search.docs", false);
    cr_assert_eq(post(otlp_port, "/v1/traces", "application/json", body, strlen(body)), 200, "%s",
                 out);
    cr_assert(strstr(out, "\"rejectedSpans\":1") && strstr(out, "unknown_agent"), "%s", out);
    free(body);

    /* the forbidden tool, in the protobuf encoding: the critical clause contains the agent */
    {
        Pactum__Otlp__ExportTraceServiceRequest req =
            PACTUM__OTLP__EXPORT_TRACE_SERVICE_REQUEST__INIT;
        Pactum__Otlp__ResourceSpans rs = PACTUM__OTLP__RESOURCE_SPANS__INIT, *rsp = &rs;
        Pactum__Otlp__Resource res = PACTUM__OTLP__RESOURCE__INIT;
        Pactum__Otlp__ScopeSpans ss = PACTUM__OTLP__SCOPE_SPANS__INIT, *ssp = &ss;
        Pactum__Otlp__Span sp = PACTUM__OTLP__SPAN__INIT, *spp = &sp;
        Pactum__Otlp__KeyValue kv[3] = {PACTUM__OTLP__KEY_VALUE__INIT,
                                        PACTUM__OTLP__KEY_VALUE__INIT,
                                        PACTUM__OTLP__KEY_VALUE__INIT},
                               *kvp[3] = {&kv[0], &kv[1], &kv[2]},
                               rkv = PACTUM__OTLP__KEY_VALUE__INIT, *rkvp = &rkv;
        Pactum__Otlp__AnyValue v[3] = {PACTUM__OTLP__ANY_VALUE__INIT, PACTUM__OTLP__ANY_VALUE__INIT,
                                       PACTUM__OTLP__ANY_VALUE__INIT},
                               rv = PACTUM__OTLP__ANY_VALUE__INIT;
        uint8_t trace[16] = {1, 2, 3}, span[8] = {9, 9, 9, 1}, *bytes = NULL;
        size_t len = 0;
        uint64_t end = (uint64_t)pk_now_ms() * 1000000ULL;
        const char *keys[3] = {"gen_ai.operation.name", "gen_ai.tool.name", "gen_ai.request.model"};
        const char *vals[3] = {"execute_tool", "shell.rm", "gpt-test"};
        for (int i = 0; i < 3; i++) {
            v[i].value_case = PACTUM__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
            v[i].string_value = (char *)vals[i];
            kv[i].key = (char *)keys[i];
            kv[i].value = &v[i];
        }
        /* the agent from service.name this time */
        rv.value_case = PACTUM__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
        rv.string_value = "gw-bot";
        rkv.key = "service.name";
        rkv.value = &rv;
        res.attributes = &rkvp;
        res.n_attributes = 1;
        sp.trace_id = (ProtobufCBinaryData){16, trace};
        sp.span_id = (ProtobufCBinaryData){8, span};
        sp.name = "execute_tool shell.rm";
        sp.start_time_unix_nano = end - 1000000;
        sp.end_time_unix_nano = end;
        sp.attributes = kvp;
        sp.n_attributes = 3;
        ss.spans = &spp;
        ss.n_spans = 1;
        rs.resource = &res;
        rs.scope_spans = &ssp;
        rs.n_scope_spans = 1;
        req.resource_spans = &rsp;
        req.n_resource_spans = 1;
        cr_assert_eq(pk_pack(&req.base, &bytes, &len), PK_OK);
        cr_assert_eq(post(otlp_port, "/v1/traces", "application/x-protobuf", bytes, len), 200, "%s",
                     out);
        free(bytes);
    }
    r = h_wait_tier(&h, "gw-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_not_null(r);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED, "tier %s",
                 pk_tier_name(r->state->tier));
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the stored evidence says it came from telemetry, reported by @otel, with the span's
     * measures */
    {
        seen_event se = {0};
        cr_assert(
            h_read_stream(&h, PK_STREAM_EVENTS, "pactum.events.*.gw-bot", telemetry_event, &se));
        cr_assert(se.seen, "the telemetry event is stored");
        cr_assert_eq(se.why[0], '\0', "%s", se.why);
    }

    /* not OTLP at all: refused with a reason, nothing signed */
    cr_assert_eq(post(otlp_port, "/v1/traces", "application/json", "[1,2", 4), 400, "%s", out);
    cr_assert_eq(post(otlp_port, "/v1/logs", "application/json", "{}", 2), 404, "%s", out);
}
