/*
 * webhooks - trust changes pushed to the URLs API clients subscribe (POST /v1/webhooks).
 *
 * A subscription is a WebhookSubscription signed by a registered API client with the key it
 * registered: one per client and URL, filtered by agents and kinds of change. The oracle that
 * runs with --webhooks keeps them in its store (webhooks, webhook_log) and delivers from its
 * own thread: it reads PACTUM_TRUST from each subscription's position, as far as its read
 * model has applied, and POSTs each change that matches, one at a time per subscription and
 * in order, all subscriptions at once through one curl multi handle. A change is passed only
 * once its receiver answered 2xx; a failure is tried again after a wait that doubles (up to
 * --webhook-backoff-max), so delivery is at least once and the receiver deduplicates by the
 * delivery id. A slow or failing receiver holds up its own subscription and nothing else:
 * the read model, the answers and the other subscriptions never wait on it.
 *
 * Each body is signed by the log's key (the Pactum-Signature header), over
 * "pactum-webhook-v1\n" <t> "\n" <body>, t being the header's time in milliseconds.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/net.h"
#include "pk/pbjson.h"

#define HOOKS_MAX        1024   /* subscriptions in force, in all */
#define HOOKS_PER_CLIENT 16     /* ... of one API client */
#define HOOK_URL_MAX     1024   /* bytes of a URL */
#define HOOK_AGENTS_MAX  64     /* agents one subscription names */
#define HOOK_SKEW_MS     300000 /* a subscription signed this far from now is refused */
#define HOOK_SCAN        256    /* changes looked at per subscription and pass */
#define HOOK_LOG_KEPT    200    /* delivery attempts kept per subscription */
#define HOOK_LOG_SHOWN   50     /* ... and shown by GET /v1/webhooks/<id> */
#define HOOK_CACHE       512    /* changes read from the stream, kept for the next subscription */
#define HOOK_PASS_MS     100    /* the longest wait between passes */
#define HOOK_ID_LEN      19     /* "wh-" and 16 hex digits */
#define SIG_CONTEXT      "pactum-webhook-v1\n"

static const char *const kind_names[ORACLE_KINDS] = {"tier_changed",   "contained",     "violation",
                                                     "dispute_opened", "dispute_ruled", "reentry",
                                                     "override",       "settlement"};

typedef struct hook {
    char id[HOOK_ID_LEN + 1];
    Pactum__V1__WebhookSubscription *sub; /* in force (client, URL, filters) */
    uint8_t *signed_sub;                  /* its Signed envelope, as submitted */
    size_t signed_len;
    unsigned kinds; /* ORACLE_KIND_* bits; 0: every change */
    Pactum__V1__WebhookState st;
    char last_error[256];
    /* the attempt in flight (the deliverer's alone) */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    uint64_t seq;
    unsigned seq_kinds;
    char agent[PK_ID_MAX + 1];
    int64_t started_ms;
    char errbuf[CURL_ERROR_SIZE];
    char refused[128]; /* why the address was refused, if it was */
} hook;

typedef struct cached {
    uint64_t seq; /* 0: empty */
    uint8_t *data;
    size_t len;
} cached;

struct oracle_hooks {
    oracle *o;
    pthread_mutex_t mu; /* the table and what the store keeps of it */
    hook *h[HOOKS_MAX];
    int n;
    MDB_dbi state; /* id -> WebhookState */
    MDB_dbi log;   /* id \0 be64 n -> WebhookDelivery */
    CURLM *multi;
    cached cache[HOOK_CACHE];
    pthread_t thread;
    atomic_bool stop;
    bool any_host;
};

/* --- the table and the store ------------------------------------------------------------ */

static void hook_free(hook *h)
{
    if (!h)
        return;
    if (h->sub)
        pactum__v1__webhook_subscription__free_unpacked(h->sub, NULL);
    free(h->signed_sub);
    free(h->body);
    curl_slist_free_all(h->headers);
    free(h);
}

static unsigned kinds_of(const Pactum__V1__WebhookSubscription *s)
{
    unsigned k = 0;

    for (size_t i = 0; i < s->n_kinds; i++)
        for (int b = 0; b < ORACLE_KINDS; b++)
            if (strcmp(s->kinds[i], kind_names[b]) == 0)
                k |= 1u << b;
    return k;
}

/* Take sub (and its envelope, copied) as h's subscription in force. */
static bool hook_set(hook *h, Pactum__V1__WebhookSubscription *sub, const uint8_t *env, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);

    if (!copy)
        return false;
    memcpy(copy, env, len);
    if (h->sub)
        pactum__v1__webhook_subscription__free_unpacked(h->sub, NULL);
    free(h->signed_sub);
    h->sub = sub;
    h->signed_sub = copy;
    h->signed_len = len;
    h->kinds = kinds_of(sub);
    return true;
}

/* Write h's state (and a delivery, if one) in one transaction. Under hs->mu. */
static pk_status persist(oracle_hooks *hs, hook *h, const Pactum__V1__WebhookDelivery *d)
{
    MDB_txn *txn = NULL;
    uint8_t key[HOOK_ID_LEN + 9];
    pk_status st;

    h->st.id = h->id;
    h->st.subscription = (ProtobufCBinaryData){h->signed_len, h->signed_sub};
    h->st.last_error = h->last_error;
    if ((st = pk_txn_begin(hs->o->store, true, &txn)) != PK_OK)
        return st;
    st = pk_put_msg(txn, hs->state, h->id, strlen(h->id), &h->st.base);
    if (st == PK_OK && d) {
        st = pk_put_msg(txn, hs->log, key, pk_key_id_u64(key, h->id, h->st.logged), &d->base);
        if (st == PK_OK && h->st.logged > HOOK_LOG_KEPT)
            st = pk_del(txn, hs->log, key, pk_key_id_u64(key, h->id, h->st.logged - HOOK_LOG_KEPT));
    }
    if (st != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    return pk_txn_commit(txn);
}

/* The subscriptions kept in the store, into the table. */
static pk_status load(oracle_hooks *hs)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pk_status st;
    int rc;

    if ((st = pk_txn_begin(hs->o->store, false, &txn)) != PK_OK)
        return st;
    if (mdb_cursor_open(txn, hs->state, &cur) != 0) {
        pk_txn_abort(txn);
        return PK_ERR(PK_ESTORE, "cannot read the webhook subscriptions");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && hs->n < HOOKS_MAX;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Pactum__V1__WebhookState *ws =
            pactum__v1__webhook_state__unpack(NULL, v.mv_size, (const uint8_t *)v.mv_data);
        pk_signed_msg *env = NULL;
        Pactum__V1__WebhookSubscription *sub = NULL;
        hook *h = calloc(1, sizeof(*h));

        if (ws && h && strlen(ws->id) == HOOK_ID_LEN &&
            pk_envelope_open(ws->subscription.data, ws->subscription.len, &env) == PK_OK &&
            (sub = pactum__v1__webhook_subscription__unpack(NULL, env->payload.len,
                                                            env->payload.data)) &&
            hook_set(h, sub, ws->subscription.data, ws->subscription.len)) {
            pactum__v1__webhook_state__init(&h->st);
            memcpy(h->id, ws->id, HOOK_ID_LEN + 1);
            h->st.next_seq = ws->next_seq;
            h->st.attempts = ws->attempts;
            h->st.next_try_ms = ws->next_try_ms;
            h->st.delivered = ws->delivered;
            h->st.failed = ws->failed;
            h->st.logged = ws->logged;
            h->st.cancelled = ws->cancelled;
            h->st.created_ms = ws->created_ms;
            snprintf(h->last_error, sizeof(h->last_error), "%s", ws->last_error);
            hs->h[hs->n++] = h;
            sub = NULL;
            h = NULL;
        } else {
            PK_WARN("webhook subscription %.*s in the store does not decode; left out",
                    (int)k.mv_size, (const char *)k.mv_data);
        }
        if (sub)
            pactum__v1__webhook_subscription__free_unpacked(sub, NULL);
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
        if (ws)
            pactum__v1__webhook_state__free_unpacked(ws, NULL);
        hook_free(h);
    }
    mdb_cursor_close(cur);
    pk_txn_abort(txn);
    return PK_OK;
}

static int in_force(oracle_hooks *hs)
{
    int n = 0;

    for (int i = 0; i < hs->n; i++)
        n += !hs->h[i]->st.cancelled;
    return n;
}

/* --- subscribing ------------------------------------------------------------------------- */

static unsigned refuse(json_t **out, unsigned status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static unsigned refuse(json_t **out, unsigned status, const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *out = json_pack("{s:s, s:s}", "status", kind, "message", msg);
    return status;
}

/* Is the envelope signed by the registered API client it names, with the key it registered? */
static bool signed_by_client(oracle *o, const pk_signed_msg *env, const char *client)
{
    Pactum__V1__AgentRecord *rec = NULL;
    MDB_txn *txn = NULL;
    pk_status st = PK_ENOTFOUND;
    bool ok;

    if (strcmp(env->signer_id, client) != 0 || pk_principal_id_check("client id", client) != PK_OK)
        return false;
    for (int attempt = 0; attempt < 2 && st == PK_ENOTFOUND; attempt++) {
        if (attempt && pk_registry_refresh(o->reg, 1000) != PK_OK)
            break;
        if (pk_txn_begin(o->store, false, &txn) == PK_OK) {
            st = pk_registry_agent(o->reg, txn, client, &rec, NULL);
            pk_txn_abort(txn);
        }
    }
    ok = st == PK_OK && rec->role == PACTUM__V1__ROLE__ROLE_CLIENT &&
         rec->agent_key.len == PK_PUBKEY_BYTES &&
         pk_bytes_equal(rec->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES) &&
         pk_envelope_verify(env, rec->agent_key.data) == PK_OK;
    if (rec)
        pactum__v1__agent_record__free_unpacked(rec, NULL);
    return ok;
}

/* What is wrong with the subscription's fields, or NULL. */
static const char *check_fields(const Pactum__V1__WebhookSubscription *s, char *why, size_t len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool url_ok;

    url_ok = u && strlen(s->url) <= HOOK_URL_MAX &&
             curl_url_set(u, CURLUPART_URL, s->url, 0) == 0 &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == 0 &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == 0 && *host &&
             (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    for (const char *p = s->url; url_ok && *p; p++)
        url_ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    if (!url_ok) {
        snprintf(why, len, "url must be an http:// or https:// URL with a host, at most %d bytes",
                 HOOK_URL_MAX);
        return why;
    }
    if (s->n_agents > HOOK_AGENTS_MAX) {
        snprintf(why, len, "at most %d agents per subscription (none: every agent)",
                 HOOK_AGENTS_MAX);
        return why;
    }
    for (size_t i = 0; i < s->n_agents; i++)
        if (pk_id_check("agent id", s->agents[i]) != PK_OK) {
            snprintf(why, len, "agents: %s", pk_error_msg());
            return why;
        }
    for (size_t i = 0; i < s->n_kinds; i++) {
        bool known = false;
        for (int b = 0; b < ORACLE_KINDS; b++)
            known |= strcmp(s->kinds[i], kind_names[b]) == 0;
        if (!known || i >= ORACLE_KINDS) {
            snprintf(why, len,
                     "kinds: '%.64s' is not one of tier_changed, contained, violation, "
                     "dispute_opened, dispute_ruled, reentry, override (each at most once)",
                     s->kinds[i]);
            return why;
        }
    }
    return NULL;
}

/* "wh-" and the first 8 bytes of SHA-256(client \0 url), in hex. */
static void hook_id(const char *client, const char *url, char out[HOOK_ID_LEN + 1])
{
    crypto_hash_sha256_state st;
    uint8_t h[32];

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)client, strlen(client) + 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)url, strlen(url));
    crypto_hash_sha256_final(&st, h);
    memcpy(out, "wh-", 3);
    pk_hex_encode(h, 8, out + 3);
}

static json_t *strings(char **v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* A subscription as GET /v1/webhooks shows it. Under hs->mu. */
static json_t *hook_json(const hook *h)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:I, s:I, s:I, s:i, s:I, s:s, s:I}", "id",
                     h->id, "client_id", h->sub->client_id, "url", h->sub->url, "agents",
                     strings(h->sub->agents, h->sub->n_agents), "kinds",
                     strings(h->sub->kinds, h->sub->n_kinds), "cancelled", h->st.cancelled,
                     "next_seq", (json_int_t)h->st.next_seq, "delivered",
                     (json_int_t)h->st.delivered, "failed", (json_int_t)h->st.failed, "attempts",
                     (int)h->st.attempts, "next_try_ms", (json_int_t)h->st.next_try_ms,
                     "last_error", h->last_error, "created_ms", (json_int_t)h->st.created_ms);
}

static hook *find(oracle_hooks *hs, const char *id)
{
    for (int i = 0; i < hs->n; i++)
        if (strcmp(hs->h[i]->id, id) == 0)
            return hs->h[i];
    return NULL;
}

/* Apply a checked subscription under hs->mu (*taken when h keeps sub): status and answer. */
static unsigned apply(oracle_hooks *hs, Pactum__V1__WebhookSubscription *sub, const uint8_t *env,
                      size_t len, json_t **out, bool *taken)
{
    char id[HOOK_ID_LEN + 1];
    hook *h;
    int mine = 0;
    uint64_t applied = 0;
    bool fresh;

    hook_id(sub->client_id, sub->url, id);
    h = find(hs, id);
    if (h && sub->ts_ms <= h->sub->ts_ms)
        return refuse(out, 409, "conflict",
                      "subscription %s was changed by a subscription signed at or after this "
                      "one (ts_ms %lld)",
                      id, (long long)h->sub->ts_ms);
    if (!h && sub->cancel)
        return refuse(out, 404, "not_found", "there is no subscription of %s to this URL",
                      sub->client_id);
    for (int i = 0; i < hs->n; i++)
        mine += !hs->h[i]->st.cancelled && strcmp(hs->h[i]->sub->client_id, sub->client_id) == 0;
    fresh = !h || h->st.cancelled;
    if (fresh && !sub->cancel && (mine >= HOOKS_PER_CLIENT || in_force(hs) >= HOOKS_MAX))
        return refuse(out, 429, "too_many",
                      "at most %d subscriptions per client and %d in all; cancel one first",
                      HOOKS_PER_CLIENT, HOOKS_MAX);
    if (!h && hs->n >= HOOKS_MAX)
        return refuse(out, 429, "too_many", "the oracle keeps at most %d subscriptions", HOOKS_MAX);
    if (fresh && !sub->cancel && oracle_model_position(hs->o, &applied) != PK_OK)
        return refuse(out, 503, "unavailable", "the read model cannot be read now: %s",
                      pk_error_msg());
    if (!h) {
        if (!(h = calloc(1, sizeof(*h))) || !hook_set(h, sub, env, len)) {
            free(h);
            return refuse(out, 503, "unavailable", "out of memory");
        }
        pactum__v1__webhook_state__init(&h->st);
        memcpy(h->id, id, sizeof(id));
        hs->h[hs->n++] = h;
    } else if (!hook_set(h, sub, env, len)) {
        return refuse(out, 503, "unavailable", "out of memory");
    }
    *taken = true;
    if (fresh && !sub->cancel) {
        /* from the next change on; a renewed one starts over */
        h->st.next_seq = applied + 1;
        h->st.attempts = 0;
        h->st.next_try_ms = 0;
        h->st.created_ms = pk_now_ms();
        h->last_error[0] = '\0';
    }
    h->st.cancelled = sub->cancel;
    if (persist(hs, h, NULL) != PK_OK)
        return refuse(out, 503, "unavailable", "cannot keep the subscription: %s", pk_error_msg());
    pk_metric_set(&hs->o->m[OM_HOOK_SUBSCRIPTIONS], in_force(hs));
    PK_INFO("webhook %s of %s to %s: %s", h->id, h->sub->client_id, h->sub->url,
            sub->cancel ? "cancelled"
            : fresh     ? "subscribed"
                        : "filters changed");
    *out = json_pack("{s:b, s:o}", "ok", 1, "subscription", hook_json(h));
    return 200;
}

unsigned oracle_hooks_subscribe(oracle *o, const uint8_t *body, size_t len, json_t **out)
{
    oracle_hooks *hs = o->hooks;
    pk_signed_msg *env = NULL;
    Pactum__V1__WebhookSubscription *sub = NULL;
    int64_t now = pk_now_ms();
    char why[320];
    unsigned status;

    if (!hs)
        return refuse(out, 503, "unavailable",
                      "this oracle instance does not deliver webhooks (--webhooks off); "
                      "subscribe at the one that does");
    if (pk_envelope_open(body, len, &env) != PK_OK ||
        env->type != PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_WEBHOOK_SUBSCRIPTION ||
        !(sub =
              pactum__v1__webhook_subscription__unpack(NULL, env->payload.len, env->payload.data)))
        status = refuse(out, 400, "bad_request",
                        "the body must be a Signed envelope (protobuf) of type "
                        "webhook_subscription");
    else if (!signed_by_client(o, env, sub->client_id))
        status = refuse(out, 403, "not_authorized",
                        "a subscription is signed by a registered API client with the key it "
                        "registered (pactum client register --key), and names it as client_id");
    else if (sub->ts_ms < now - HOOK_SKEW_MS || sub->ts_ms > now + HOOK_SKEW_MS)
        status = refuse(out, 400, "bad_request",
                        "ts_ms is more than 5 minutes from the oracle's clock: sign it again");
    else if (check_fields(sub, why, sizeof(why)))
        status = refuse(out, 400, "bad_request", "%s", why);
    else {
        bool taken = false;
        pthread_mutex_lock(&hs->mu);
        status = apply(hs, sub, body, len, out, &taken);
        pthread_mutex_unlock(&hs->mu);
        if (taken)
            sub = NULL;
    }
    if (sub)
        pactum__v1__webhook_subscription__free_unpacked(sub, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    return status;
}

/* The newest HOOK_LOG_SHOWN delivery attempts of h, newest first. */
static json_t *deliveries(oracle_hooks *hs, const hook *h)
{
    json_t *a = json_array();
    MDB_txn *txn = NULL;
    uint8_t key[HOOK_ID_LEN + 9];
    uint64_t n = h->st.logged;

    if (pk_txn_begin(hs->o->store, false, &txn) != PK_OK)
        return a;
    for (int i = 0; i < HOOK_LOG_SHOWN && n > 0; i++, n--) {
        ProtobufCMessage *d = NULL;
        if (pk_get_msg(txn, hs->log, key, pk_key_id_u64(key, h->id, n),
                       &pactum__v1__webhook_delivery__descriptor, &d) != PK_OK)
            break;
        json_array_append_new(a, pk_pb_json(d));
        protobuf_c_message_free_unpacked(d, NULL);
    }
    pk_txn_abort(txn);
    return a;
}

unsigned oracle_hooks_list(oracle *o, const char *token, const char *id, json_t **out)
{
    oracle_hooks *hs = o->hooks;
    char client[PK_ID_MAX + 1];
    json_t *list;
    unsigned status = 200;

    if (!hs)
        return refuse(out, 503, "unavailable",
                      "this oracle instance does not deliver webhooks (--webhooks off)");
    if (!token || !oracle_client_token(o, token, client, sizeof(client)))
        return refuse(out, 401, "unauthorized",
                      "webhook subscriptions are shown to their API client: send its token "
                      "(Authorization: Bearer <client id>:<secret>)");
    pthread_mutex_lock(&hs->mu);
    if (id) {
        hook *h = find(hs, id);
        if (!h || strcmp(h->sub->client_id, client) != 0) {
            status = refuse(out, 404, "not_found", "%s has no subscription %s", client, id);
        } else {
            *out = hook_json(h);
            json_object_set_new(*out, "deliveries", deliveries(hs, h));
        }
    } else {
        list = json_array();
        for (int i = 0; i < hs->n; i++)
            if (strcmp(hs->h[i]->sub->client_id, client) == 0)
                json_array_append_new(list, hook_json(hs->h[i]));
        *out = json_pack("{s:s, s:o}", "client_id", client, "subscriptions", list);
    }
    pthread_mutex_unlock(&hs->mu);
    return status;
}

/* --- delivering -------------------------------------------------------------------------- */

/* The TrustChange at seq, borrowed from the cache: 1; 0 for a gap (a removed message); -1
 * when the stream cannot be read now. */
static int change_at(oracle_hooks *hs, uint64_t seq, const cached **out)
{
    cached *c = &hs->cache[seq % HOOK_CACHE];
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    *out = c;
    if (c->seq == seq)
        return 1;
    s = js_GetMsg(&msg, hs->o->bus->js, PK_STREAM_TRUST, seq, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (s != NATS_OK)
        return -1;
    free(c->data);
    c->len = (size_t)natsMsg_GetDataLength(msg);
    c->data = malloc(c->len ? c->len : 1);
    c->seq = c->data ? seq : 0;
    if (c->data)
        memcpy(c->data, natsMsg_GetData(msg), c->len);
    natsMsg_Destroy(msg);
    return c->seq ? 1 : -1;
}

static bool wanted(const hook *h, const char *agent, unsigned kinds)
{
    if (h->kinds && !(h->kinds & kinds))
        return false;
    if (!h->sub->n_agents)
        return true;
    for (size_t i = 0; i < h->sub->n_agents; i++)
        if (strcmp(h->sub->agents[i], agent) == 0)
            return true;
    return false;
}

static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    hook *h = ctx;
    char text[INET6_ADDRSTRLEN + 16];

    (void)purpose;
    if (pk_addr_internal(&a->addr, text, sizeof(text))) {
        snprintf(h->refused, sizeof(h->refused),
                 "refused to connect to %s: a loopback, private or link-local address "
                 "(--webhook-hosts any allows it)",
                 text);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* Start delivering the change at seq to h. Under hs->mu. */
static bool start(oracle_hooks *hs, hook *h, const cached *c, const char *agent, unsigned kinds)
{
    oracle *o = hs->o;
    json_t *doc = oracle_change_doc(o, c->seq, agent, c->data, c->len), *names = json_array();
    char delivery[HOOK_ID_LEN + 24], line[256], t[24], kinds_text[160] = "";
    uint8_t sig[PK_SIG_BYTES];
    char b64[sodium_base64_ENCODED_LEN(PK_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    char logid[PK_LOG_ID_LEN + 1];
    size_t blen, clen = strlen(SIG_CONTEXT);
    uint8_t *signing;
    int64_t now = pk_now_ms();

    if (!doc) {
        json_decref(names);
        return false;
    }
    snprintf(delivery, sizeof(delivery), "%s-%llu", h->id, (unsigned long long)c->seq);
    for (int b = 0; b < ORACLE_KINDS; b++)
        if (kinds & (1u << b)) {
            json_array_append_new(names, json_string(kind_names[b]));
            snprintf(kinds_text + strlen(kinds_text), sizeof(kinds_text) - strlen(kinds_text),
                     "%s%s", kinds_text[0] ? "," : "", kind_names[b]);
        }
    json_object_set_new(doc, "delivery_id", json_string(delivery));
    json_object_set_new(doc, "subscription_id", json_string(h->id));
    json_object_set_new(doc, "kinds", names);
    free(h->body);
    h->body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (!h->body)
        return false;
    /* the signature: over the context, the time and the body, by the log's key */
    snprintf(t, sizeof(t), "%lld", (long long)now);
    blen = strlen(h->body);
    if (!(signing = malloc(clen + strlen(t) + 1 + blen)))
        return false;
    memcpy(signing, SIG_CONTEXT, clen);
    memcpy(signing + clen, t, strlen(t));
    signing[clen + strlen(t)] = '\n';
    memcpy(signing + clen + strlen(t) + 1, h->body, blen);
    pk_sign(&o->kp, signing, clen + strlen(t) + 1 + blen, sig);
    free(signing);
    sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    pk_log_id(o->kp.pk, logid);

    curl_slist_free_all(h->headers);
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(line, sizeof(line), "Pactum-Delivery-Id: %s", delivery);
    h->headers = curl_slist_append(h->headers, line);
    snprintf(line, sizeof(line), "Pactum-Event: %s", kinds_text);
    h->headers = curl_slist_append(h->headers, line);
    snprintf(line, sizeof(line), "Pactum-Attempt: %u", h->st.attempts + 1);
    h->headers = curl_slist_append(h->headers, line);
    snprintf(line, sizeof(line), "Pactum-Signature: t=%s, keyid=%s, ed25519=%s", t, logid, b64);
    h->headers = curl_slist_append(h->headers, line);
    h->headers = curl_slist_append(h->headers, "Expect:");
    if (!h->headers || !(h->easy = curl_easy_init()))
        return false;
    curl_easy_setopt(h->easy, CURLOPT_URL, h->sub->url);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "pactum-webhooks/1");
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)o->cfg->webhook_timeout_ms);
    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)o->cfg->webhook_timeout_ms);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->easy, CURLOPT_PROXY, ""); /* straight to the receiver, whatever the
                                                   * environment says: the address check is
                                                   * on the receiver's own address */
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h);
    if (!hs->any_host) {
        curl_easy_setopt(h->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h->easy, CURLOPT_OPENSOCKETDATA, h);
    }
    h->errbuf[0] = h->refused[0] = '\0';
    h->seq = c->seq;
    h->seq_kinds = kinds;
    snprintf(h->agent, sizeof(h->agent), "%s", agent);
    h->started_ms = pk_mono_ms();
    if (curl_multi_add_handle(hs->multi, h->easy) != CURLM_OK) {
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
        return false;
    }
    return true;
}

/* Find h's next change, passing those it does not want; start its delivery. Under hs->mu. */
static void advance(oracle_hooks *hs, hook *h, uint64_t last)
{
    uint64_t from = h->st.next_seq;

    if (h->st.cancelled || h->easy || h->st.next_try_ms > pk_now_ms())
        return;
    for (int n = 0; n < HOOK_SCAN && h->st.next_seq <= last && !h->easy; n++) {
        const cached *c = NULL;
        int got = change_at(hs, h->st.next_seq, &c);
        Pactum__V1__TrustChange *ch =
            got > 0 ? pactum__v1__trust_change__unpack(NULL, c->len, c->data) : NULL;

        if (got < 0)
            break; /* the bus: the next pass tries again, nothing is passed */
        if (ch && ch->agent_id && pk_id_check("agent id", ch->agent_id) == PK_OK) {
            unsigned kinds = oracle_change_kinds(ch);
            if (wanted(h, ch->agent_id, kinds) && !start(hs, h, c, ch->agent_id, kinds)) {
                pactum__v1__trust_change__free_unpacked(ch, NULL);
                break; /* could not be sent now: tried again on the next pass */
            }
        }
        if (ch)
            pactum__v1__trust_change__free_unpacked(ch, NULL);
        if (!h->easy)
            h->st.next_seq++; /* not wanted, or a gap: passed */
    }
    if (h->st.next_seq != from && persist(hs, h, NULL) != PK_OK)
        PK_WARN("webhook %s: cannot keep its position: %s", h->id, pk_error_msg());
}

/* An attempt ended: log it, and pass the change or schedule the next attempt. */
static void finish(oracle_hooks *hs, hook *h, CURLcode rc)
{
    Pactum__V1__WebhookDelivery d = PACTUM__V1__WEBHOOK_DELIVERY__INIT;
    char delivery[HOOK_ID_LEN + 24], error[320] = "";
    char *names[ORACLE_KINDS];
    long status = 0;
    size_t nk = 0;

    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    snprintf(delivery, sizeof(delivery), "%s-%llu", h->id, (unsigned long long)h->seq);
    for (int b = 0; b < ORACLE_KINDS; b++)
        if (h->seq_kinds & (1u << b))
            names[nk++] = (char *)kind_names[b];
    d.delivery_id = delivery;
    d.trust_seq = h->seq;
    d.agent_id = h->agent;
    d.kinds = names;
    d.n_kinds = nk;
    d.attempt = h->st.attempts + 1;
    d.ok = rc == CURLE_OK && status >= 200 && status < 300;
    d.http_status = (int32_t)status;
    d.at_ms = pk_now_ms();
    d.duration_ms = pk_mono_ms() - h->started_ms;
    if (!d.ok)
        snprintf(error, sizeof(error), "%s",
                 h->refused[0]    ? h->refused
                 : rc != CURLE_OK ? (h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc))
                                  : "the receiver answered with a status that is not 2xx");
    d.error = error;
    h->st.logged++;
    if (d.ok) {
        h->st.next_seq = h->seq + 1;
        h->st.attempts = 0;
        h->st.next_try_ms = 0;
        h->st.delivered++;
        h->last_error[0] = '\0';
        pk_metric_add(&hs->o->m[OM_HOOK_DELIVERED], 1);
    } else {
        int64_t wait = hs->o->cfg->webhook_backoff_ms;
        for (uint32_t i = 0; i < h->st.attempts && wait < hs->o->cfg->webhook_backoff_max; i++)
            wait *= 2;
        if (wait > hs->o->cfg->webhook_backoff_max)
            wait = hs->o->cfg->webhook_backoff_max;
        wait += (int64_t)randombytes_uniform((uint32_t)(wait / 10 + 1)); /* spread the retries */
        h->st.attempts++;
        h->st.failed++;
        h->st.next_try_ms = d.at_ms + wait;
        snprintf(h->last_error, sizeof(h->last_error), "attempt %u at #%llu: %s%s%ld", d.attempt,
                 (unsigned long long)h->seq, error, status ? "; HTTP " : "", status);
        pk_metric_add(&hs->o->m[OM_HOOK_FAILED], 1);
    }
    if (persist(hs, h, &d) != PK_OK)
        PK_WARN("webhook %s: cannot log delivery %s: %s", h->id, delivery, pk_error_msg());
    curl_multi_remove_handle(hs->multi, h->easy);
    curl_easy_cleanup(h->easy);
    h->easy = NULL;
}

/*
 * Read into the cache, without holding hs->mu, the changes the subscription furthest behind
 * looks at next (the cache is the deliverer's alone), so that a pass seldom waits on the bus
 * while it holds the table that subscribing and reading take too.
 */
static void prefetch(oracle_hooks *hs, uint64_t last)
{
    uint64_t from = UINT64_MAX;
    int64_t now = pk_now_ms();
    const cached *c;

    pthread_mutex_lock(&hs->mu);
    for (int i = 0; i < hs->n; i++) {
        const hook *h = hs->h[i];
        if (!h->st.cancelled && !h->easy && h->st.next_try_ms <= now && h->st.next_seq < from)
            from = h->st.next_seq;
    }
    pthread_mutex_unlock(&hs->mu);
    for (uint64_t seq = from; seq <= last && seq < from + HOOK_SCAN; seq++)
        if (change_at(hs, seq, &c) < 0)
            break;
}

static void *deliver(void *arg)
{
    oracle_hooks *hs = arg;
    int running = 0;

    while (!atomic_load(&hs->stop) && !pk_shutdown) {
        CURLMsg *m;
        int left;
        uint64_t last = 0; /* changes up to the read model's position may go out */

        if (oracle_model_position(hs->o, &last) != PK_OK)
            last = 0; /* none this pass */

        curl_multi_perform(hs->multi, &running);
        prefetch(hs, last);
        pthread_mutex_lock(&hs->mu);
        while ((m = curl_multi_info_read(hs->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                hook *h = NULL;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
                if (h)
                    finish(hs, h, m->data.result);
            }
        for (int i = 0; i < hs->n; i++)
            advance(hs, hs->h[i], last);
        pthread_mutex_unlock(&hs->mu);
        curl_multi_perform(hs->multi, &running);
        curl_multi_poll(hs->multi, NULL, 0, HOOK_PASS_MS, NULL);
    }
    return NULL;
}

/* --- start and stop ---------------------------------------------------------------------- */

pk_status oracle_hooks_start(oracle *o)
{
    oracle_hooks *hs;
    pk_status st;

    if (!o->cfg->webhooks)
        return PK_OK;
    if (strcmp(o->cfg->webhook_hosts, "public") != 0 && strcmp(o->cfg->webhook_hosts, "any") != 0)
        return PK_ERR(PK_EINVAL, "--webhook-hosts: expected public or any, got '%s'",
                      o->cfg->webhook_hosts);
    if (!(hs = calloc(1, sizeof(*hs))))
        return PK_ERR(PK_ENOMEM, "cannot allocate the webhooks");
    hs->o = o;
    hs->any_host = strcmp(o->cfg->webhook_hosts, "any") == 0;
    pthread_mutex_init(&hs->mu, NULL);
    const pk_dbi_spec dbs[] = {{"webhooks", 0, &hs->state}, {"webhook_log", 0, &hs->log}};
    if ((st = pk_store_dbis(o->store, dbs, PK_NELEM(dbs))) != PK_OK || (st = load(hs)) != PK_OK)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(hs->multi = curl_multi_init())) {
        st = PK_ERR(PK_ENOMEM, "cannot make the webhooks' HTTP client");
        goto fail;
    }
    curl_multi_setopt(hs->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 4L);
    o->hooks = hs;
    pk_metric_set(&o->m[OM_HOOK_SUBSCRIPTIONS], in_force(hs));
    if (pthread_create(&hs->thread, NULL, deliver, hs) != 0) {
        o->hooks = NULL;
        st = PK_ERR(PK_EIO, "cannot start the webhooks' thread");
        goto fail;
    }
    PK_INFO("webhooks: %d subscriptions in force, deliveries to %s addresses", in_force(hs),
            hs->any_host ? "any" : "public");
    return PK_OK;
fail:
    for (int i = 0; i < hs->n; i++)
        hook_free(hs->h[i]);
    if (hs->multi)
        curl_multi_cleanup(hs->multi);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
    return st;
}

void oracle_hooks_stop(oracle *o)
{
    oracle_hooks *hs = o->hooks;

    if (!hs)
        return;
    atomic_store(&hs->stop, true);
    curl_multi_wakeup(hs->multi);
    pthread_join(hs->thread, NULL);
    o->hooks = NULL;
    for (int i = 0; i < hs->n; i++) {
        if (hs->h[i]->easy) {
            curl_multi_remove_handle(hs->multi, hs->h[i]->easy);
            curl_easy_cleanup(hs->h[i]->easy);
        }
        hook_free(hs->h[i]);
    }
    for (int i = 0; i < HOOK_CACHE; i++)
        free(hs->cache[i].data);
    curl_multi_cleanup(hs->multi);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}
