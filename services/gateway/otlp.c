/*
 * otlp - OpenTelemetry traces in: the GenAI spans of an OTLP/HTTP request
 * (protobuf or JSON) become events about the agents they name, signed by the
 * gateway's telemetry reporter and put on the raw stream like any reporter's
 * envelope; ingest judges them. docs/otel.md has the mapping.
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "pactum/otlp/traces.pb-c.h"
#include "pk/clock.h"
#include "pk/log.h"

#define SPANS_MAX    8192 /* spans taken from one request; more are refused */
#define PER_ENVELOPE 256  /* events signed together (a request holds this many in memory) */

/* What one span says, whichever encoding it came in (strings borrowed from the request). */
typedef struct span_in {
    char trace[33], span[17]; /* ids in hex */
    const char *name;
    uint64_t start_ns, end_ns;
    bool error;
    const char *status_msg;
    const char *agent, *op, *tool, *model, *error_type, *action, *resource, *currency;
    double in_tokens, out_tokens, cost, amount;
    bool has_in, has_out, has_cost, has_amount;
} span_in;

/* What the resource says: the service, or the agent itself. */
typedef struct resource_in {
    const char *service, *agent;
} resource_in;

typedef struct attr_val {
    const char *s; /* a string value, or NULL */
    double num;    /* a number's value */
    bool is_num;
} attr_val;

static void span_attr(span_in *sp, const char *key, attr_val v)
{
    static const struct {
        const char *key;
        size_t off;
    } texts[] = {
        {"gen_ai.agent.id", offsetof(span_in, agent)},
        {"gen_ai.operation.name", offsetof(span_in, op)},
        {"gen_ai.tool.name", offsetof(span_in, tool)},
        {"gen_ai.request.model", offsetof(span_in, model)},
        {"error.type", offsetof(span_in, error_type)},
        {"pactum.action", offsetof(span_in, action)},
        {"pactum.resource", offsetof(span_in, resource)},
        {"pactum.currency", offsetof(span_in, currency)},
    };

    for (size_t i = 0; i < PK_NELEM(texts); i++) {
        if (strcmp(key, texts[i].key) == 0 && v.s) {
            *(const char **)((char *)sp + texts[i].off) = v.s;
            return;
        }
    }
    if (strcmp(key, "gen_ai.response.model") == 0 && v.s && !sp->model)
        sp->model = v.s;
    else if (strcmp(key, "gen_ai.usage.input_tokens") == 0 && v.is_num)
        sp->in_tokens = v.num, sp->has_in = true;
    else if (strcmp(key, "gen_ai.usage.output_tokens") == 0 && v.is_num)
        sp->out_tokens = v.num, sp->has_out = true;
    else if (strcmp(key, "gen_ai.usage.cost") == 0 && v.is_num)
        sp->cost = v.num, sp->has_cost = true;
    else if (strcmp(key, "pactum.amount") == 0 && v.is_num)
        sp->amount = v.num, sp->has_amount = true;
}

static void resource_attr(resource_in *r, const char *key, attr_val v)
{
    if (!v.s)
        return;
    if (strcmp(key, "service.name") == 0)
        r->service = v.s;
    else if (strcmp(key, "gen_ai.agent.id") == 0)
        r->agent = v.s;
}

/* --- the agent a span is about ------------------------------------------------------ */

/* The agent --otlp-agents maps service to, into out; false if none is listed. */
static bool mapped(const char *pairs, const char *service, char *out, size_t len)
{
    size_t sl = strlen(service);

    for (const char *p = pairs; p && *p;) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        while (*p == ' ')
            p++;
        if (eq && (size_t)(eq - p) == sl && memcmp(p, service, sl) == 0) {
            snprintf(out, len, "%.*s", (int)(end - eq - 1), eq + 1);
            return true;
        }
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

static bool agent_of(gateway *g, const span_in *sp, const resource_in *r, char *out, size_t len)
{
    if (sp->agent)
        snprintf(out, len, "%s", sp->agent);
    else if (r->agent)
        snprintf(out, len, "%s", r->agent);
    else if (!r->service)
        return false;
    else if (!mapped(g->cfg->otlp_agents, r->service, out, len))
        snprintf(out, len, "%s", r->service);
    return pk_id_check("agent id", out) == PK_OK;
}

/* --- spans into events --------------------------------------------------------------- */

typedef struct ev_buf {
    pk_event_msg ev;
    char id[80], agent[PK_ID_MAX + 1], kind[PK_NAME_MAX + 1], action[PK_NAME_MAX + 1];
    char tool[PK_NAME_MAX + 1], resource[PK_VALUE_MAX + 1], currency[16];
    Pactum__V1__Metric m[5], *mp[5];
    Pactum__V1__Label l[5], *lp[5];
    char lv[5][PK_VALUE_MAX + 1];
} ev_buf;

typedef struct batch {
    gateway *g;
    ev_buf *evs; /* up to PER_ENVELOPE */
    size_t n;
    long accepted, rejected, pending;
    char first_error[256];
} batch;

static void add_metric(ev_buf *b, const char *name, double v)
{
    size_t i = b->ev.n_metrics;

    pactum__v1__metric__init(&b->m[i]);
    b->m[i].name = (char *)name;
    b->m[i].value = v;
    b->mp[i] = &b->m[i];
    b->ev.n_metrics++;
}

static void add_label(ev_buf *b, const char *name, const char *v)
{
    size_t i = b->ev.n_labels;

    if (!v || !*v)
        return;
    pactum__v1__label__init(&b->l[i]);
    snprintf(b->lv[i], sizeof(b->lv[i]), "%s", v);
    b->l[i].name = (char *)name;
    b->l[i].value = b->lv[i];
    b->lp[i] = &b->l[i];
    b->ev.n_labels++;
}

static void note_error(batch *bt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the first reason a span could not become evidence, for the answer. */
static void note_error(batch *bt, const char *fmt, ...)
{
    va_list ap;

    if (bt->first_error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(bt->first_error, sizeof(bt->first_error), fmt, ap);
    va_end(ap);
}

/* Sign the events gathered so far as the telemetry reporter and hand them to ingest. */
static void flush(batch *bt)
{
    gateway *g = bt->g;
    pk_event_batch_msg eb = PACTUM__V1__EVENT_BATCH__INIT;
    pk_event_msg **evp = NULL;
    uint8_t *payload = NULL, *env = NULL;
    size_t plen = 0, elen = 0;
    uint64_t seq = 0;
    Pactum__V1__EnvelopeReceipt *rc = NULL;

    if (bt->n == 0)
        return;
    if (!g->bus) { /* nowhere to send them */
        pk_metric_add(&g->m[GM_SPAN_EVENTS], (long long)bt->n);
        bt->pending += (long)bt->n;
        bt->n = 0;
        return;
    }
    if (!(evp = calloc(bt->n, sizeof(*evp)))) {
        bt->rejected += (long)bt->n;
        bt->n = 0;
        return;
    }
    for (size_t i = 0; i < bt->n; i++)
        evp[i] = &bt->evs[i].ev;
    eb.events = evp;
    eb.n_events = bt->n;
    eb.receipt = true;
    if (pk_pack(&eb.base, &payload, &plen) != PK_OK ||
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen, g->otel_id,
                         &g->otel, &env, &elen) != PK_OK ||
        gw_publish(g, g->otel_id, env, elen, true, &seq, &rc) != PK_OK) {
        note_error(bt, "the events could not be stored: %s", pk_error_msg());
        bt->rejected += (long)bt->n;
    } else if (!rc) {
        bt->pending += (long)bt->n; /* stored; ingest judges them later */
    } else {
        bool whole = false;
        for (size_t i = 0; i < rc->n_refused; i++) {
            whole |= !rc->refused[i]->event_id[0];
            note_error(bt, "%s: %s", pk_reason_name(rc->refused[i]->reason),
                       rc->refused[i]->message);
        }
        bt->rejected += whole ? (long)bt->n : (long)rc->n_refused;
        bt->accepted += whole ? 0 : (long)rc->accepted;
        pactum__v1__envelope_receipt__free_unpacked(rc, NULL);
    }
    pk_metric_add(&g->m[GM_SPAN_EVENTS], (long long)bt->n);
    free(evp);
    free(payload);
    free(env);
    bt->n = 0;
}

/* One span: skipped (not a GenAI span), refused (no agent), or an event in the batch. */
static void take_span(batch *bt, const span_in *sp, const resource_in *r)
{
    gateway *g = bt->g;
    ev_buf *b;
    uint64_t at = sp->end_ns ? sp->end_ns : sp->start_ns;

    pk_metric_add(&g->m[GM_SPANS], 1);
    if (!sp->op && !sp->tool && !sp->agent) {
        pk_metric_add(&g->m[GM_SPANS_SKIPPED], 1);
        return;
    }
    b = &bt->evs[bt->n];
    memset(b, 0, sizeof(*b));
    pactum__v1__event__init(&b->ev);
    if (!agent_of(g, sp, r, b->agent, sizeof(b->agent)) || !sp->span[0]) {
        pk_metric_add(&g->m[GM_SPANS_SKIPPED], 1);
        note_error(bt, "a span named no agent (gen_ai.agent.id or service.name)");
        bt->rejected++;
        return;
    }
    snprintf(b->id, sizeof(b->id), "otel-%s-%s", sp->trace[0] ? sp->trace : "0", sp->span);
    snprintf(b->kind, sizeof(b->kind), "%s",
             sp->op && strcmp(sp->op, "execute_tool") == 0 ? "tool_call"
             : sp->op                                      ? sp->op
                                                           : "span");
    snprintf(b->action, sizeof(b->action), "%s", sp->action ? sp->action : sp->op ? sp->op : "");
    snprintf(b->tool, sizeof(b->tool), "%s", sp->tool ? sp->tool : "");
    snprintf(b->resource, sizeof(b->resource), "%s", sp->resource ? sp->resource : "");
    b->ev.event_id = b->id;
    b->ev.agent_id = b->agent;
    b->ev.ts_ms = at ? (int64_t)(at / 1000000) : pk_now_ms();
    b->ev.kind = b->kind;
    b->ev.action = b->action;
    b->ev.tool = b->tool;
    b->ev.resource = b->resource;
    if (sp->has_amount && isfinite(sp->amount)) {
        snprintf(b->currency, sizeof(b->currency), "%s", sp->currency ? sp->currency : "");
        b->ev.amount = sp->amount;
        b->ev.currency = b->currency;
    }
    b->ev.metrics = b->mp;
    b->ev.labels = b->lp;
    if (sp->start_ns && sp->end_ns >= sp->start_ns)
        add_metric(b, "duration_ms", (double)(sp->end_ns - sp->start_ns) / 1e6);
    add_metric(b, "error", sp->error ? 1 : 0);
    if (sp->has_in && isfinite(sp->in_tokens))
        add_metric(b, "input_tokens", sp->in_tokens);
    if (sp->has_out && isfinite(sp->out_tokens))
        add_metric(b, "output_tokens", sp->out_tokens);
    if (sp->has_cost && isfinite(sp->cost))
        add_metric(b, "cost", sp->cost);
    add_label(b, "model", sp->model);
    add_label(b, "error_type", sp->error_type ? sp->error_type : sp->error ? sp->status_msg : NULL);
    add_label(b, "operation", sp->op);
    add_label(b, "span_name", sp->name);
    add_label(b, "trace_id", sp->trace);
    if (++bt->n == PER_ENVELOPE)
        flush(bt);
}

/* --- the protobuf encoding ----------------------------------------------------------- */

static attr_val pb_value(const Pactum__Otlp__AnyValue *v)
{
    attr_val out = {0};

    if (!v)
        return out;
    switch (v->value_case) {
    case PACTUM__OTLP__ANY_VALUE__VALUE_STRING_VALUE:
        out.s = v->string_value;
        break;
    case PACTUM__OTLP__ANY_VALUE__VALUE_INT_VALUE:
        out.num = (double)v->int_value, out.is_num = true;
        break;
    case PACTUM__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
        out.num = v->double_value, out.is_num = true;
        break;
    case PACTUM__OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
        out.num = v->bool_value, out.is_num = true;
        break;
    default:
        break;
    }
    return out;
}

static void hex_id(const ProtobufCBinaryData *b, char *out, size_t len)
{
    out[0] = '\0';
    if (b->len > 0 && b->len * 2 < len)
        sodium_bin2hex(out, len, b->data, b->len);
}

static bool from_protobuf(batch *bt, const uint8_t *body, size_t len, char *why, size_t wlen)
{
    Pactum__Otlp__ExportTraceServiceRequest *req =
        pactum__otlp__export_trace_service_request__unpack(NULL, len, body);
    size_t spans = 0;

    if (!req) {
        snprintf(why, wlen, "the body is not an OTLP ExportTraceServiceRequest (protobuf)");
        return false;
    }
    for (size_t i = 0; i < req->n_resource_spans; i++)
        for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
            spans += req->resource_spans[i]->scope_spans[j]->n_spans;
    if (spans > SPANS_MAX) {
        snprintf(why, wlen, "%zu spans in one request; at most %d", spans, SPANS_MAX);
        pactum__otlp__export_trace_service_request__free_unpacked(req, NULL);
        return false;
    }
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const Pactum__Otlp__ResourceSpans *rs = req->resource_spans[i];
        resource_in r = {0};
        for (size_t k = 0; rs->resource && k < rs->resource->n_attributes; k++)
            resource_attr(&r, rs->resource->attributes[k]->key,
                          pb_value(rs->resource->attributes[k]->value));
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            for (size_t s = 0; s < rs->scope_spans[j]->n_spans; s++) {
                const Pactum__Otlp__Span *p = rs->scope_spans[j]->spans[s];
                span_in sp = {.name = p->name,
                              .start_ns = p->start_time_unix_nano,
                              .end_ns = p->end_time_unix_nano};
                hex_id(&p->trace_id, sp.trace, sizeof(sp.trace));
                hex_id(&p->span_id, sp.span, sizeof(sp.span));
                if (p->status) {
                    sp.error = p->status->code == PACTUM__OTLP__STATUS_CODE__STATUS_CODE_ERROR;
                    sp.status_msg = p->status->message;
                }
                for (size_t k = 0; k < p->n_attributes; k++)
                    span_attr(&sp, p->attributes[k]->key, pb_value(p->attributes[k]->value));
                take_span(bt, &sp, &r);
            }
        }
    }
    flush(bt); /* while the request's strings are alive */
    pactum__otlp__export_trace_service_request__free_unpacked(req, NULL);
    return true;
}

/* --- the JSON encoding (lowerCamelCase names; the protobuf names are taken too) ------ */

static json_t *get(const json_t *o, const char *camel, const char *snake)
{
    json_t *v = json_object_get(o, camel);
    return v ? v : json_object_get(o, snake);
}

/* A 64-bit integer as OTLP/JSON writes it: a decimal string, or a number. */
static uint64_t json_u64(const json_t *v)
{
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return (uint64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) > 0)
        return (uint64_t)json_real_value(v);
    return 0;
}

static attr_val json_value(const json_t *v)
{
    attr_val out = {0};
    json_t *x;

    if ((x = get(v, "stringValue", "string_value")) && json_is_string(x)) {
        out.s = json_string_value(x);
    } else if ((x = get(v, "intValue", "int_value"))) {
        out.is_num = true;
        out.num = json_is_string(x) ? strtod(json_string_value(x), NULL) : json_number_value(x);
    } else if ((x = get(v, "doubleValue", "double_value"))) {
        out.is_num = json_is_number(x) || json_is_string(x);
        out.num = json_is_string(x) ? strtod(json_string_value(x), NULL) : json_number_value(x);
    } else if ((x = get(v, "boolValue", "bool_value"))) {
        out.is_num = true;
        out.num = json_is_true(x);
    }
    return out;
}

static void hex_text(const json_t *v, char *out, size_t len)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strlen(s);

    out[0] = '\0';
    if (n == 0 || n >= len)
        return;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return;
        out[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    out[n] = '\0';
}

static bool from_json(batch *bt, const uint8_t *body, size_t len, char *why, size_t wlen)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)body, len, 0, &err), *rss, *rs, *sss, *ss, *spans, *p;
    size_t i, j, s, count = 0;

    if (!doc || !json_is_object(doc)) {
        snprintf(why, wlen, "the body is not an OTLP/JSON ExportTraceServiceRequest%s%s",
                 doc ? "" : ": ", doc ? "" : err.text);
        json_decref(doc);
        return false;
    }
    rss = get(doc, "resourceSpans", "resource_spans");
    json_array_foreach(rss, i, rs)
    {
        json_array_foreach(get(rs, "scopeSpans", "scope_spans"), j, ss)
        {
            count += json_array_size(json_object_get(ss, "spans"));
        }
    }
    if (count > SPANS_MAX) {
        snprintf(why, wlen, "%zu spans in one request; at most %d", count, SPANS_MAX);
        json_decref(doc);
        return false;
    }
    json_array_foreach(rss, i, rs)
    {
        resource_in r = {0};
        json_t *attrs = json_object_get(json_object_get(rs, "resource"), "attributes"), *a;
        size_t k;
        json_array_foreach(attrs, k, a)
        {
            if (json_is_string(json_object_get(a, "key")))
                resource_attr(&r, json_string_value(json_object_get(a, "key")),
                              json_value(json_object_get(a, "value")));
        }
        sss = get(rs, "scopeSpans", "scope_spans");
        json_array_foreach(sss, j, ss)
        {
            spans = json_object_get(ss, "spans");
            json_array_foreach(spans, s, p)
            {
                json_t *st = json_object_get(p, "status"), *code;
                span_in sp = {0};
                sp.name = json_string_value(json_object_get(p, "name"));
                sp.start_ns = json_u64(get(p, "startTimeUnixNano", "start_time_unix_nano"));
                sp.end_ns = json_u64(get(p, "endTimeUnixNano", "end_time_unix_nano"));
                hex_text(get(p, "traceId", "trace_id"), sp.trace, sizeof(sp.trace));
                hex_text(get(p, "spanId", "span_id"), sp.span, sizeof(sp.span));
                code = json_object_get(st, "code");
                sp.error = (json_is_integer(code) && json_integer_value(code) == 2) ||
                           (json_is_string(code) &&
                            strcmp(json_string_value(code), "STATUS_CODE_ERROR") == 0);
                sp.status_msg = json_string_value(json_object_get(st, "message"));
                json_array_foreach(json_object_get(p, "attributes"), k, a)
                {
                    if (json_is_string(json_object_get(a, "key")))
                        span_attr(&sp, json_string_value(json_object_get(a, "key")),
                                  json_value(json_object_get(a, "value")));
                }
                take_span(bt, &sp, &r);
            }
        }
    }
    flush(bt);
    json_decref(doc);
    return true;
}

/* --- the answer ---------------------------------------------------------------------- */

unsigned gw_otlp_traces(gateway *g, const uint8_t *body, size_t len, bool json, uint8_t **out,
                        size_t *olen)
{
    batch bt = {.g = g};
    char why[256];
    bool ok;
    Pactum__Otlp__ExportTraceServiceResponse resp =
        PACTUM__OTLP__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Pactum__Otlp__ExportTracePartialSuccess partial =
        PACTUM__OTLP__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    json_t *doc;

    *out = NULL;
    *olen = 0;
    if (!(bt.evs = calloc(PER_ENVELOPE, sizeof(*bt.evs)))) {
        doc = json_pack("{s:s, s:s}", "status", "internal", "message", "out of memory");
        ok = false;
    } else {
        ok = json ? from_json(&bt, body, len, why, sizeof(why))
                  : from_protobuf(&bt, body, len, why, sizeof(why));
        doc = ok ? NULL : json_pack("{s:s, s:s}", "status", "malformed", "message", why);
    }
    free(bt.evs);
    if (!ok) {
        pk_metric_add(&g->m[GM_REFUSED], 1);
        *out = (uint8_t *)json_dumps(doc, JSON_COMPACT);
        *olen = *out ? strlen((char *)*out) : 0;
        json_decref(doc);
        return MHD_HTTP_BAD_REQUEST;
    }
    if (bt.rejected > 0) {
        PK_INFO("OTLP: %ld spans refused (%s)", bt.rejected, bt.first_error);
        partial.rejected_spans = bt.rejected;
        partial.error_message = bt.first_error;
        resp.partial_success = &partial;
    }
    if (json) {
        doc = bt.rejected > 0 ? json_pack("{s:{s:I, s:s}}", "partialSuccess", "rejectedSpans",
                                          (json_int_t)bt.rejected, "errorMessage", bt.first_error)
                              : json_object();
        *out = (uint8_t *)json_dumps(doc, JSON_COMPACT);
        *olen = *out ? strlen((char *)*out) : 0;
        json_decref(doc);
    } else if (pk_pack(&resp.base, out, olen) != PK_OK) {
        *out = NULL;
    }
    return MHD_HTTP_OK;
}
