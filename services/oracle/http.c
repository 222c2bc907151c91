/*
 * The oracle over HTTP/JSON (libmicrohttpd). Each route builds the same
 * protobuf query the NATS subjects take, calls the same answer function, and
 * returns the signed answer as JSON:
 *
 *   {"type": "trust_report", "answer": {...}, "signed": BASE64, "key": HEX}
 *
 * "signed" is the Signed envelope (protobuf) that `pactum verify` checks with
 * the log's public key; "answer" is its payload in JSON (pk/pbjson.h).
 * docs/oracle-api.md and docs/openapi.yaml describe the routes.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/http.h"
#include "pk/log.h"
#include "pk/net.h"
#include "pk/note.h"
#include "pk/pbjson.h"

#define BODY_MAX (64 * 1024)

typedef pk_http_body request;

/* Send text (taken: freed here) as the response, uncached, and count it. */
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text,
                                 const char *type, oracle *o)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (!text)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"pactum\"");
    if (status == MHD_HTTP_TOO_MANY_REQUESTS)
        MHD_add_response_header(r, "Retry-After", "1");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    pk_metric_add(&o->m[OM_HTTP], 1);
    if (status >= 400 && status < 500)
        pk_metric_add(&o->m[OM_HTTP_4XX], 1);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *doc, oracle *o)
{
    char *text = json_dumps(doc, JSON_COMPACT);

    json_decref(doc);
    return send_text(c, status, text, "application/json", o);
}

/* A refusal before any answer could be built (bad route, bad parameter). */
static enum MHD_Result refuse(struct MHD_Connection *c, oracle *o, unsigned status,
                              const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result refuse(struct MHD_Connection *c, oracle *o, unsigned status,
                              const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return send_json(c, status, json_pack("{s:s, s:s}", "status", kind, "message", msg), o);
}

/* Keep the body rendered for a signed answer (taking out), for the next request it answers. */
static void keep_rendered(oracle *o, uint8_t *out, size_t olen, const char *text, unsigned status)
{
    char *copy = text ? strdup(text) : NULL;

    if (!copy) {
        free(out);
        return;
    }
    pthread_mutex_lock(&o->http_mu);
    free(o->http_signed);
    free(o->http_text);
    o->http_signed = out;
    o->http_signed_len = olen;
    o->http_text = copy;
    o->http_status = status;
    pthread_mutex_unlock(&o->http_mu);
}

/* Run an answer function on a packed query and send its signed answer. */
static enum MHD_Result answer(struct MHD_Connection *c, oracle *o, oracle_answer_fn fn,
                              const ProtobufCMessage *query)
{
    uint8_t *req = NULL, *out = NULL;
    size_t rlen = 0, olen = 0;
    pk_signed_msg *env = NULL;
    ProtobufCMessage *payload = NULL;
    const ProtobufCFieldDescriptor *sf;
    unsigned status = MHD_HTTP_OK;
    char *b64 = NULL, hex[65], *text;
    size_t b64len;
    json_t *doc;

    if (pk_pack(query, &req, &rlen) != PK_OK || fn(o, req, rlen, &out, &olen) != PK_OK) {
        free(req);
        free(out);
        return refuse(c, o, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "%s", pk_error_msg());
    }
    free(req);
    /* the same signed answer (a reused one) renders the same body: send that again */
    pthread_mutex_lock(&o->http_mu);
    if (o->http_text && o->http_signed_len == olen && memcmp(o->http_signed, out, olen) == 0) {
        char *again = strdup(o->http_text);
        status = o->http_status;
        pthread_mutex_unlock(&o->http_mu);
        free(out);
        return send_text(c, status, again, "application/json", o);
    }
    pthread_mutex_unlock(&o->http_mu);
    /* signed here a moment ago: opened, not checked again (an Ed25519 check per request) */
    if (pk_envelope_open(out, olen, &env) != PK_OK || !pk_answer_descriptor(env->type) ||
        !(payload = protobuf_c_message_unpack(pk_answer_descriptor(env->type), NULL,
                                              env->payload.len, env->payload.data))) {
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
        free(out);
        return refuse(c, o, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                      "the oracle's own answer does not open");
    }
    /* every answer message has `status` (QueryStatus) */
    sf = protobuf_c_message_descriptor_get_field_by_name(payload->descriptor, "status");
    if (sf) {
        int s = *(const int *)((const uint8_t *)payload + sf->offset);
        status = s == PACTUM__V1__QUERY_STATUS__QUERY_OK              ? MHD_HTTP_OK
                 : s == PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST   ? MHD_HTTP_BAD_REQUEST
                 : s == PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT ? MHD_HTTP_NOT_FOUND
                 : s == PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND     ? MHD_HTTP_NOT_FOUND
                 : s == PACTUM__V1__QUERY_STATUS__QUERY_UNAUTHORIZED  ? MHD_HTTP_UNAUTHORIZED
                 : s == PACTUM__V1__QUERY_STATUS__QUERY_RATE_LIMITED  ? MHD_HTTP_TOO_MANY_REQUESTS
                                                                     : MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    b64len = sodium_base64_ENCODED_LEN(olen, sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(b64len);
    if (b64)
        sodium_bin2base64(b64, b64len, out, olen, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2hex(hex, sizeof(hex), env->signer_key.data, env->signer_key.len);
    doc = json_pack("{s:s, s:o, s:s, s:s}", "type", pk_answer_type_name(env->type), "answer",
                    pk_pb_json(payload), "signed", b64 ? b64 : "", "key", hex);
    free(b64);
    protobuf_c_message_free_unpacked(payload, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    keep_rendered(o, out, olen, text, status);
    return send_text(c, status, text, "application/json", o);
}

/* Query parameter `name` as an unsigned number (absent: def); false if malformed. */
static bool param_u64(struct MHD_Connection *c, const char *name, uint64_t def, uint64_t *out,
                      char *why, size_t wlen);

/* The same for a number of at most max; false (saying so) when larger. */
static bool param_at_most(struct MHD_Connection *c, const char *name, uint64_t max, uint64_t *out,
                          char *why, size_t wlen)
{
    if (!param_u64(c, name, 0, out, why, wlen))
        return false;
    if (*out <= max)
        return true;
    snprintf(why, wlen, "%s: at most %llu", name, (unsigned long long)max);
    return false;
}

static bool param_u64(struct MHD_Connection *c, const char *name, uint64_t def, uint64_t *out,
                      char *why, size_t wlen)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    char *end = NULL;

    *out = def;
    if (!v)
        return true;
    if (!*v || *v == '-') {
        snprintf(why, wlen, "%s: expected a whole number, got '%s'", name, v);
        return false;
    }
    *out = strtoull(v, &end, 10);
    if (*end) {
        snprintf(why, wlen, "%s: expected a whole number, got '%s'", name, v);
        return false;
    }
    return true;
}

static const char *param(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

    return v ? v : "";
}

bool oracle_authorize_body(const char *body, size_t len, char *agent,
                           Pactum__V1__AuthorizeRequest *q, json_t **doc, char *why, size_t wlen)
{
    json_error_t err;
    json_t *b, *v;
    const char *key;

    *doc = NULL;
    pactum__v1__authorize_request__init(q);
    b = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!b || !json_is_object(b)) {
        snprintf(why, wlen,
                 "the body must be a JSON object like {\"action\": \"refund.issue\", "
                 "\"amount\": 20, \"currency\": \"USD\"}%s%s",
                 b ? "" : ": ", b ? "" : err.text);
        json_decref(b);
        return false;
    }
    q->agent_id = agent;
    json_object_foreach(b, key, v)
    {
        char **field = strcmp(key, "action") == 0     ? &q->action
                       : strcmp(key, "resource") == 0 ? &q->resource
                       : strcmp(key, "tool") == 0     ? &q->tool
                       : strcmp(key, "currency") == 0 ? &q->currency
                       : strcmp(key, "kind") == 0     ? &q->kind
                                                      : NULL;
        why[0] = '\0';
        if (field) {
            if (!json_is_string(v))
                snprintf(why, wlen, "%.64s: expected a string", key);
            else
                *field = (char *)json_string_value(v);
        } else if (strcmp(key, "amount") == 0) {
            if (!json_is_number(v))
                snprintf(why, wlen, "amount: expected a number");
            else
                q->amount = json_number_value(v);
        } else if (strcmp(key, "approval") == 0) {
            /* the signed approval (pactum approve) as hex; decided in this thread, so the
             * bytes may live here until the answer is sent */
            static _Thread_local uint8_t approval[8192];
            size_t n = 0;
            if (!json_is_string(v) ||
                sodium_hex2bin(approval, sizeof(approval), json_string_value(v),
                               json_string_length(v), NULL, &n, NULL) != 0 ||
                n == 0)
                snprintf(why, wlen,
                         "approval: expected the signed approval in hex (at most "
                         "8192 bytes)");
            q->approval.data = approval;
            q->approval.len = n;
        } else if (strcmp(key, "agent_id") != 0) {
            snprintf(why, wlen,
                     "%.64s: unknown field (expected action, resource, tool, amount, currency, "
                     "kind, approval)",
                     key);
        }
        if (why[0]) {
            json_decref(b); /* key and v belong to b: the message is copied first */
            pactum__v1__authorize_request__init(q);
            return false;
        }
    }
    *doc = b; /* q's strings point into it */
    return true;
}

static enum MHD_Result route_authorize(struct MHD_Connection *c, oracle *o, char *agent,
                                       request *rq)
{
    Pactum__V1__AuthorizeRequest q;
    json_t *doc = NULL;
    char why[320];
    enum MHD_Result ret;

    if (rq->too_big)
        return refuse(c, o, MHD_HTTP_CONTENT_TOO_LARGE, "bad_request",
                      "the body is larger than %d bytes", BODY_MAX);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

    if (!oracle_authorize_body(rq->buf, rq->len, agent, &q, &doc, why, sizeof(why)))
        return refuse(c, o, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
    /* the client's token: "Authorization: Bearer <client id>:<secret>" */
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        q.client_token = (char *)auth + 7;
    ret = answer(c, o, oracle_answer_authorize, &q.base);
    json_decref(doc);
    return ret;
}

/* --- routes ------------------------------------------------------------------- */

/* What a route handler gets: the connection, the oracle, the id in the path, the body. */
typedef struct route_req {
    struct MHD_Connection *c;
    oracle *o;
    char id[256];    /* the path's '*' segment, if any (checked by the answer) */
    request *rq;     /* the body */
    const char *url; /* the path */
} route_req;

typedef enum MHD_Result (*route_fn)(route_req *r);

static enum MHD_Result bad_param(route_req *r, const char *why)
{
    return refuse(r->c, r->o, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
}

static enum MHD_Result get_health(route_req *r)
{
    json_t *doc = pk_service_health_json(&r->o->svc);
    bool healthy = json_is_true(json_object_get(doc, "healthy"));

    json_object_set_new(doc, "log_id", json_string(r->o->log.log_id));
    json_object_set_new(doc, "log_size", json_integer((json_int_t)atomic_load(&r->o->log.size)));
    return send_json(r->c, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, doc, r->o);
}

/*
 * The log's latest checkpoint as a C2SP signed note (pk/note.h), for standard
 * transparency-log tools; the same tree as GET /v1/log/head at that size.
 */
static enum MHD_Result get_checkpoint(route_req *r)
{
    oracle *o = r->o;
    MDB_txn *txn = NULL;
    uint8_t root[PK_HASH];
    char name[96], *note;
    uint64_t size;

    /* with witnesses: the latest checkpoint they were asked to cosign, with their cosignatures */
    if ((note = oracle_witnessed_checkpoint(o)))
        return send_text(r->c, MHD_HTTP_OK, note, "text/plain; charset=utf-8", o);
    if (!(note = malloc(PK_NOTE_MAX)) || pk_txn_begin(o->store, false, &txn) != PK_OK ||
        tlog_root(&o->log, txn, size = tlog_size(&o->log, txn), root) != PK_OK) {
        pk_txn_abort(txn);
        free(note);
        return refuse(r->c, o, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "the log: %s",
                      pk_error_msg());
    }
    pk_txn_abort(txn);
    pk_note_origin(o->kp.pk, name, sizeof(name));
    if (pk_checkpoint_note(&o->kp, name, size, root, note, PK_NOTE_MAX) != PK_OK) {
        free(note);
        return refuse(r->c, o, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "%s", pk_error_msg());
    }
    return send_text(r->c, MHD_HTTP_OK, note, "text/plain; charset=utf-8", o);
}

/*
 * Tiles (C2SP tlog-tiles): /tile/<L>/<N>[.p/<W>] holds the hashes of the perfect subtrees of
 * 2^(8L) leaves numbered N*256 ... (256 of them, or the first W), each 32 bytes;
 * /tile/entries/<N>[.p/<W>] holds the leaves themselves (each a big-endian 16-bit length and
 * the LogLeaf bytes whose RFC 6962 leaf hash is the level-0 hash). N is written in groups of
 * three digits, all but the last prefixed with 'x' ("x001/x234/067"). What a tile holds never
 * changes once it exists, so tiles are served as immutable.
 */
#define TILE_WIDTH 256

/* Parse the tile index and width of p ("x001/234.p/7"); false if not the canonical form. */
static bool parse_tile_index(const char *p, uint64_t *n, unsigned *width)
{
    uint64_t v = 0;
    bool first = true;

    *width = TILE_WIDTH;
    for (;;) {
        bool more = *p == 'x';
        if (more)
            p++;
        if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
              p[2] <= '9'))
            return false;
        if (more && first && p[0] == '0' && p[1] == '0' && p[2] == '0')
            return false; /* "x000/..." would be a second name for the same tile */
        if (v > UINT64_MAX / 1000 - 1)
            return false;
        v = v * 1000 + (uint64_t)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
        p += 3;
        first = false;
        if (more) {
            if (*p++ != '/')
                return false;
            continue;
        }
        break;
    }
    *n = v;
    if (!*p)
        return true;
    if (strncmp(p, ".p/", 3) != 0 || p[3] < '1' || p[3] > '9')
        return false;
    *width = 0;
    for (p += 3; *p; p++) {
        if (*p < '0' || *p > '9' || *width >= TILE_WIDTH)
            return false;
        *width = *width * 10 + (unsigned)(*p - '0');
    }
    return *width >= 1 && *width < TILE_WIDTH;
}

static enum MHD_Result send_tile(struct MHD_Connection *c, oracle *o, uint8_t *buf, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    pk_metric_add(&o->m[OM_HTTP], 1);
    return ret;
}

static enum MHD_Result get_tile(struct MHD_Connection *c, oracle *o, const char *url)
{
    const char *p = url + strlen("/tile/");
    bool entries = strncmp(p, "entries/", 8) == 0;
    unsigned level = 0, width, have;
    uint64_t n, count;
    uint8_t *buf = NULL;
    size_t len = 0;
    MDB_txn *txn = NULL;
    pk_status st = PK_OK;

    if (entries) {
        p += 8;
    } else {
        const char *digits = p;
        if (!(*p >= '0' && *p <= '9'))
            return refuse(c, o, MHD_HTTP_NOT_FOUND, "not_found", "no tile %s", url);
        for (; *p >= '0' && *p <= '9' && level < 100; p++)
            level = level * 10 + (unsigned)(*p - '0');
        /* one spelling per level: no leading zeros */
        if (*p++ != '/' || level > 7 || (digits[0] == '0' && digits[1] != '/'))
            return refuse(c, o, MHD_HTTP_NOT_FOUND, "not_found", "no tile %s", url);
    }
    if (!parse_tile_index(p, &n, &width))
        return refuse(c, o, MHD_HTTP_NOT_FOUND, "not_found",
                      "no tile %s: see C2SP tlog-tiles for the path", url);
    if (pk_txn_begin(o->store, false, &txn) != PK_OK)
        return refuse(c, o, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "the log: %s",
                      pk_error_msg());
    /* perfect subtrees at this level, and how many of them this tile would hold */
    count = tlog_size(&o->log, txn) >> (8 * level);
    have =
        n > count / TILE_WIDTH
            ? 0
            : (unsigned)(count - n * TILE_WIDTH < TILE_WIDTH ? count - n * TILE_WIDTH : TILE_WIDTH);
    if (have < width) {
        pk_txn_abort(txn);
        return refuse(c, o, MHD_HTTP_NOT_FOUND, "not_found",
                      "tile %s: the log holds %u of its entries yet", url, have);
    }
    if (!entries) {
        if (!(buf = malloc((size_t)width * PK_HASH)))
            st = PK_ERR(PK_ENOMEM, "out of memory");
        for (unsigned i = 0; i < width && st == PK_OK; i++)
            st = tlog_node(&o->log, txn, 8 * level, n * TILE_WIDTH + i, buf + (size_t)i * PK_HASH);
        len = (size_t)width * PK_HASH;
    } else {
        size_t cap = 0;
        for (unsigned i = 0; i < width && st == PK_OK; i++) {
            MDB_val leaf;
            if ((st = tlog_leaf(&o->log, txn, n * TILE_WIDTH + i, &leaf)) != PK_OK)
                break;
            if (leaf.mv_size > 0xffff) {
                st = PK_ERR(PK_ETOOBIG, "leaf %llu is too long for an entry bundle",
                            (unsigned long long)(n * TILE_WIDTH + i));
                break;
            }
            if (len + 2 + leaf.mv_size > cap) {
                uint8_t *nb = realloc(buf, cap = (len + 2 + leaf.mv_size) * 2);
                if (!nb) {
                    st = PK_ERR(PK_ENOMEM, "out of memory");
                    break;
                }
                buf = nb;
            }
            buf[len] = (uint8_t)(leaf.mv_size >> 8);
            buf[len + 1] = (uint8_t)leaf.mv_size;
            memcpy(buf + len + 2, leaf.mv_data, leaf.mv_size);
            len += 2 + leaf.mv_size;
        }
    }
    pk_txn_abort(txn);
    if (st != PK_OK) {
        free(buf);
        return refuse(c, o, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "tile %s: %s", url,
                      pk_error_msg());
    }
    return send_tile(c, o, buf, len);
}

/* The log's key, to pin: its id, the Ed25519 public key, and its signed-note name and key. */
static enum MHD_Result get_log_key(route_req *r)
{
    oracle *o = r->o;
    char name[96], vkey[256], hex[2 * PK_PUBKEY_BYTES + 1];

    pk_note_origin(o->kp.pk, name, sizeof(name));
    sodium_bin2hex(hex, sizeof(hex), o->kp.pk, PK_PUBKEY_BYTES);
    if (pk_note_verifier_key(name, PK_NOTE_ED25519, o->kp.pk, vkey, sizeof(vkey)) != PK_OK)
        return refuse(r->c, o, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "%s", pk_error_msg());
    return send_json(r->c, MHD_HTTP_OK,
                     json_pack("{s:s, s:s, s:s, s:s}", "log_id", o->log.log_id, "key", hex,
                               "note_key_name", name, "note_verifier_key", vkey),
                     o);
}

static enum MHD_Result get_metrics(route_req *r)
{
    return send_text(r->c, MHD_HTTP_OK, pk_service_metrics_text(&r->o->svc),
                     "text/plain; version=0.0.4", r->o);
}

static enum MHD_Result get_figures(route_req *r)
{
    Pactum__V1__FiguresQuery q = PACTUM__V1__FIGURES_QUERY__INIT;

    q.agent_id = r->id; /* "" for the system-wide route */
    return answer(r->c, r->o, oracle_answer_figures, &q.base);
}

/* /v1/log/head, /v1/log/inclusion, /v1/log/consistency */
static enum MHD_Result get_log(route_req *r, Pactum__V1__LogQueryKind kind)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
    char why[256];

    if (!param_u64(r->c, "size", 0, &q.size, why, sizeof(why)) ||
        !param_u64(r->c, "index", 0, &q.index, why, sizeof(why)) ||
        !param_u64(r->c, "seq", 0, &q.stream_seq, why, sizeof(why)) ||
        !param_u64(r->c, "first", 0, &q.first, why, sizeof(why)))
        return bad_param(r, why);
    q.stream = (char *)param(r->c, "stream");
    q.kind = kind;
    if (kind == PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION && !q.stream[0] &&
        !MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "index"))
        return bad_param(r, "inclusion needs index, or stream and seq");
    if (kind == PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY &&
        !MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "first"))
        return bad_param(r, "consistency needs first");
    return answer(r->c, r->o, oracle_answer_log, &q.base);
}

static enum MHD_Result get_log_head(route_req *r)
{
    return get_log(r, PACTUM__V1__LOG_QUERY_KIND__LOG_HEAD);
}

static enum MHD_Result get_log_inclusion(route_req *r)
{
    return get_log(r, PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION);
}

static enum MHD_Result get_log_consistency(route_req *r)
{
    return get_log(r, PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY);
}

static enum MHD_Result get_pact(route_req *r)
{
    Pactum__V1__PactQuery q = PACTUM__V1__PACT_QUERY__INIT;
    uint64_t version;
    char why[256];

    if (!param_at_most(r->c, "version", UINT32_MAX, &version, why, sizeof(why)))
        return bad_param(r, why);
    q.pact_id = r->id;
    q.version = (uint32_t)version;
    q.document = strcmp(param(r->c, "document"), "true") == 0;
    return answer(r->c, r->o, oracle_answer_pact, &q.base);
}

static enum MHD_Result post_authorize(route_req *r)
{
    return route_authorize(r->c, r->o, r->id, r->rq);
}

static enum MHD_Result get_trust(route_req *r)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
    uint64_t h;
    char why[256];

    if (!param_at_most(r->c, "history", 200, &h, why, sizeof(why)))
        return bad_param(r, why);
    q.agent_id = r->id;
    q.history = (uint32_t)h;
    return answer(r->c, r->o, oracle_answer_trust, &q.base);
}

static enum MHD_Result get_evidence(route_req *r)
{
    Pactum__V1__EvidenceQuery q = PACTUM__V1__EVIDENCE_QUERY__INIT;
    const ProtobufCEnumDescriptor *d = &pactum__v1__leaf_kind__descriptor;
    const char *kind = param(r->c, "kind");
    uint64_t limit;
    char why[256];

    if (!param_u64(r->c, "from", 0, &q.from, why, sizeof(why)) ||
        !param_u64(r->c, "limit", 20, &limit, why, sizeof(why)))
        return bad_param(r, why);
    q.agent_id = r->id;
    q.limit = limit > 1000 ? 1000 : (uint32_t)limit;
    for (unsigned i = 1; *kind && i < d->n_values; i++) {
        if (strcmp(pk_pb_enum_name(d, d->values[i].value), kind) == 0)
            q.kind = (Pactum__V1__LeafKind)d->values[i].value;
    }
    if (*kind && !q.kind)
        return refuse(r->c, r->o, MHD_HTTP_BAD_REQUEST, "bad_request",
                      "kind: expected event, verdict, governance, trust_change, registry or "
                      "decision, got '%s'",
                      kind);
    return answer(r->c, r->o, oracle_answer_evidence, &q.base);
}

static enum MHD_Result get_attestation(route_req *r)
{
    Pactum__V1__AttestQuery q = PACTUM__V1__ATTEST_QUERY__INIT;

    q.agent_id = r->id;
    return answer(r->c, r->o, oracle_answer_attest, &q.base);
}

static enum MHD_Result get_engagements(route_req *r)
{
    Pactum__V1__EngagementQuery q = PACTUM__V1__ENGAGEMENT_QUERY__INIT;

    q.agent_id = r->id;
    q.engagement_id = (char *)param(r->c, "engagement");
    return answer(r->c, r->o, oracle_answer_engagements, &q.base);
}

/* POST /v1/webhooks: a Signed WebhookSubscription (protobuf). */
static enum MHD_Result post_webhook(route_req *r)
{
    json_t *doc = NULL;
    unsigned status;

    if (r->rq->too_big)
        return refuse(r->c, r->o, MHD_HTTP_CONTENT_TOO_LARGE, "bad_request",
                      "the body is larger than %d bytes", BODY_MAX);
    status = oracle_hooks_subscribe(r->o, (const uint8_t *)r->rq->buf, r->rq->len, &doc);
    return send_json(r->c, status, doc, r->o);
}

/* GET /v1/webhooks and /v1/webhooks/<id>: the API client's own, with its token. */
static enum MHD_Result get_webhooks(route_req *r)
{
    const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Authorization");
    json_t *doc = NULL;
    unsigned status =
        oracle_hooks_list(r->o, auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL,
                          r->id[0] ? r->id : NULL, &doc);

    return send_json(r->c, status, doc, r->o);
}

/*
 * The routes: a path pattern ('*' matches one segment and is the route's id),
 * the method it takes, and what a request with another method is told.
 */
static const struct {
    const char *method;
    const char *pattern;
    route_fn fn;
    const char *wrong_method;
} routes[] = {
    {"GET", "/v1/health", get_health, "health takes GET"},
    {"GET", "/metrics", get_metrics, "metrics takes GET"},
    {"GET", "/v1/figures", get_figures, "figures takes GET"},
    {"GET", "/v1/log/head", get_log_head, "log head takes GET"},
    {"GET", "/v1/log/key", get_log_key, "log key takes GET"},
    {"GET", "/.well-known/pactum-log-key", get_log_key, "log key takes GET"},
    {"GET", "/checkpoint", get_checkpoint, "checkpoint takes GET"},
    {"GET", "/v1/log/inclusion", get_log_inclusion, "log inclusion takes GET"},
    {"GET", "/v1/log/consistency", get_log_consistency, "log consistency takes GET"},
    {"GET", "/v1/pacts/*", get_pact, "pacts take GET"},
    {"POST", "/v1/agents/*/authorize", post_authorize,
     "authorize takes POST with a JSON body: each decision is recorded"},
    {"GET", "/v1/agents/*/trust", get_trust, "trust takes GET"},
    {"GET", "/v1/agents/*/evidence", get_evidence, "evidence takes GET"},
    {"GET", "/v1/agents/*/attestation", get_attestation, "attestation takes GET"},
    {"GET", "/v1/agents/*/engagements", get_engagements, "engagements take GET"},
    {"GET", "/v1/agents/*/figures", get_figures, "figures takes GET"},
    {"POST", "/v1/webhooks", post_webhook,
     "webhooks: POST a signed subscription, or GET your subscriptions with your token"},
    {"GET", "/v1/webhooks", get_webhooks,
     "webhooks: POST a signed subscription, or GET your subscriptions with your token"},
    {"GET", "/v1/webhooks/*", get_webhooks, "a webhook subscription takes GET, with its token"},
};

/* Does url match pattern? The '*' segment (non-empty, no '/') is copied into id. */
static bool match(const char *pattern, const char *url, char *id, size_t idlen)
{
    const char *star = strchr(pattern, '*'), *end;
    size_t pre, n;

    if (!star)
        return strcmp(pattern, url) == 0;
    pre = (size_t)(star - pattern);
    if (strncmp(pattern, url, pre) != 0)
        return false;
    end = strchr(url + pre, '/');
    n = end ? (size_t)(end - (url + pre)) : strlen(url + pre);
    if (n == 0 || n >= idlen || strcmp(star + 1, url + pre + n) != 0)
        return false;
    memcpy(id, url + pre, n);
    id[n] = '\0';
    return true;
}

/* A page, the stylesheet or the script, with headers that keep the page to its own origin. */
static enum MHD_Result send_page(struct MHD_Connection *c, oracle *o, unsigned status,
                                 const char *type, const void *body, size_t len, bool cache)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", cache ? "max-age=300" : "no-store");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                            "form-action 'self'; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    pk_metric_add(&o->m[OM_HTTP], 1);
    return ret;
}

/* The pages for people (pages.c): /, /log, /agents/<id>, and their two static files. */
static bool page_route(struct MHD_Connection *c, oracle *o, const char *method, const char *url,
                       enum MHD_Result *ret)
{
    char *body = NULL;
    size_t len = 0;
    unsigned status;
    const char *rest = strncmp(url, "/agents/", 8) == 0 ? url + 8 : NULL;

    if (strcmp(url, "/static/pactum.css") == 0 || strcmp(url, "/static/verify.js") == 0) {
        bool css = url[8] == 'p';
        if (strcmp(method, "GET") != 0)
            return false;
        *ret = send_page(c, o, MHD_HTTP_OK,
                         css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8",
                         css ? oracle_web_css : oracle_web_js,
                         css ? oracle_web_css_len : oracle_web_js_len, true);
        return true;
    }
    if (strcmp(url, "/") != 0 && strcmp(url, "/log") != 0 && !(rest && *rest && !strchr(rest, '/')))
        return false;
    if (strcmp(method, "GET") != 0) {
        *ret = refuse(c, o, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "pages take GET");
        return true;
    }
    status = oracle_page(o, url, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "leaf"),
                         &body, &len);
    if (!body)
        *ret =
            refuse(c, o, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "the page could not be made");
    else
        *ret = send_page(c, o, status, "text/html; charset=utf-8", body, len, false);
    free(body);
    return true;
}

/* GET /v1/changes and /v1/agents/<id>/changes: live streams (changes.c). */
static bool changes_route(struct MHD_Connection *c, oracle *o, const char *method, const char *url,
                          enum MHD_Result *ret)
{
    char agent[PK_ID_MAX + 1] = "";
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    struct MHD_Response *r;
    unsigned long long from = 0;
    char *end = NULL;
    size_t n = strlen(url);

    if (strcmp(url, "/v1/changes") != 0) {
        if (strncmp(url, "/v1/agents/", 11) != 0 || n < 11 + 8 ||
            strcmp(url + n - 8, "/changes") != 0 || n - 19 > PK_ID_MAX)
            return false;
        memcpy(agent, url + 11, n - 19);
        agent[n - 19] = '\0';
        if (pk_id_check("agent id", agent) != PK_OK) {
            *ret = refuse(c, o, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", pk_error_msg());
            return true;
        }
    }
    if (strcmp(method, "GET") != 0) {
        *ret = refuse(c, o, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "changes take GET");
        return true;
    }
    if (!last)
        last = after;
    if (last && *last && ((from = strtoull(last, &end, 10)), !end || *end)) {
        *ret = refuse(c, o, MHD_HTTP_BAD_REQUEST, "bad_request",
                      "Last-Event-ID (or after) must be the sequence of a change");
        return true;
    }
    if (!(r = oracle_changes_response(o, c, agent, from, !last || !*last))) {
        *ret = refuse(c, o, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                      "too many streams are open; try again later");
        return true;
    }
    *ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    pk_metric_add(&o->m[OM_HTTP], 1);
    return true;
}

static enum MHD_Result dispatch(struct MHD_Connection *c, oracle *o, const char *method,
                                const char *url, request *rq)
{
    route_req r = {.c = c, .o = o, .rq = rq, .url = url};
    const char *wrong = NULL;
    enum MHD_Result page;

    if (page_route(c, o, method, url, &page))
        return page;
    if (changes_route(c, o, method, url, &page))
        return page;

    if (strncmp(url, "/tile/", 6) == 0) {
        if (strcmp(method, "GET") != 0)
            return refuse(c, o, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "tiles take GET");
        return get_tile(c, o, url);
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        r.id[0] = '\0';
        if (!match(routes[i].pattern, url, r.id, sizeof(r.id)))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return routes[i].fn(&r);
        wrong = routes[i].wrong_method;
    }
    if (wrong)
        return refuse(c, o, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", "%s", wrong);
    return refuse(c, o, MHD_HTTP_NOT_FOUND, "not_found",
                  "no route %s %s; see docs/oracle-api.md (GET /v1/agents/ID/trust, POST "
                  "/v1/agents/ID/authorize, GET /v1/agents/ID/evidence, GET "
                  "/v1/agents/ID/attestation, GET /v1/agents/ID/engagements, GET /v1/figures, "
                  "GET /v1/log/head ...)",
                  method, url);
}

/* Anonymous readers are limited per client address (--http-rate). */
static bool within_rate(struct MHD_Connection *c, oracle *o)
{
    char addr[64];

    pk_http_client(c, addr, sizeof(addr));
    return pk_ratelimit_take(o->readers, addr, 1, pk_mono_ms());
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    oracle *o = cls;
    bool fail;

    (void)version;
    if (pk_http_gather(con_cls, upload_data, upload_size, BODY_MAX, &fail))
        return MHD_YES;
    if (fail)
        return MHD_NO;
    if (!within_rate(c, o) && (oracle_count(o, OM_RATE_LIMITED), true))
        return refuse(c, o, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_requests",
                      "more than %lld requests a second from this address; ask again shortly",
                      o->cfg->http_rate);
    return dispatch(c, o, method, url, *con_cls);
}

pk_status oracle_http_start(oracle *o)
{
    const char *spec = o->cfg->http;
    struct sockaddr_in sa;
    pk_status st;
    unsigned port;

    if (!spec || !*spec || strcmp(spec, "off") == 0)
        return PK_OK;
    if ((st = pk_listen_addr(spec, "--http", &sa)) != PK_OK)
        return st;
    port = ntohs(sa.sin_port);
    /* epoll: thousands of open connections cost little; the caps keep slow or idle clients
     * from taking every slot (per address), and the timeout closes those that stop sending */
    o->http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                                   MHD_ALLOW_SUSPEND_RESUME,
                               (uint16_t)port, NULL, NULL, on_request, o, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 4u,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->cfg->http_connections,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                               (unsigned)o->cfg->http_per_client, MHD_OPTION_CONNECTION_TIMEOUT,
                               (unsigned)((o->cfg->http_timeout_ms + 999) / 1000),
                               MHD_OPTION_NOTIFY_COMPLETED, pk_http_done, o, MHD_OPTION_END);
    if (!o->http)
        return PK_ERR(PK_EIO, "cannot listen for HTTP on %s (is the port taken?)", spec);
    PK_INFO("HTTP on http://%s/v1/", spec);
    return PK_OK;
}

void oracle_http_stop(oracle *o)
{
    if (o->http)
        MHD_stop_daemon(o->http);
    o->http = NULL;
    free(o->http_signed);
    free(o->http_text);
    o->http_signed = NULL;
    o->http_text = NULL;
}
