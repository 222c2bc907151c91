/*
 * Webhooks against the running suite (TLS, a user per service): an API client subscribes a
 * local receiver to one agent's changes with the key it registered; the receiver fails the
 * first deliveries, and still every change of that agent arrives, once by its idempotency
 * id, in order, signed by the log's key; a receiver that never answers in time holds up
 * only its own subscription; the delivery log shows the failures; subscriptions signed by
 * anyone else, or naming something other than a web URL, are refused; a cancelled one
 * receives nothing more. By default no delivery connects to a loopback or private address,
 * and subscriptions and their logs outlive a restart of the oracle.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pk/clock.h"

#define FAIL_FIRST 3   /* the receiver answers 500 to its first deliveries */
#define GOT_MAX    512 /* deliveries the receiver keeps */

static h_env h;
static pk_keypair agent, owner, other, other_owner, market, thief;
static char out[65536];
static uint8_t log_pk[PK_PUBKEY_BYTES];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

/* --- the receiver ----------------------------------------------------------------------- */

typedef struct got {
    char id[96];  /* the delivery id */
    uint64_t seq; /* the change's PACTUM_TRUST sequence */
    char agent[PK_ID_MAX + 1];
    int attempts; /* requests that carried it */
    int accepted; /* ... answered 200 */
} got;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static got gotten[GOT_MAX];
static int n_got, n_requests, n_slow, n_bad_signatures, n_out_of_order;
static uint64_t last_accepted_seq;
static struct MHD_Daemon *receiver;
static int receiver_port;

typedef struct body {
    char *data;
    size_t len;
} body;

/* Does the Pactum-Signature header verify over this body under the log's key? */
static bool signature_ok(const char *header, const char *text, size_t len)
{
    char t[32] = "", b64[128] = "";
    uint8_t sig[crypto_sign_BYTES], *msg;
    size_t siglen = 0, clen = strlen("pactum-webhook-v1\n"), mlen;
    const char *tp = header ? strstr(header, "t=") : NULL,
               *sp = header ? strstr(header, "ed25519=") : NULL;
    bool ok;

    if (!tp || !sp || sscanf(tp, "t=%31[0-9]", t) != 1 ||
        sscanf(sp, "ed25519=%127[A-Za-z0-9+/=]", b64) != 1 ||
        sodium_base642bin(sig, sizeof(sig), b64, strlen(b64), NULL, &siglen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        siglen != sizeof(sig))
        return false;
    mlen = clen + strlen(t) + 1 + len;
    msg = malloc(mlen);
    memcpy(msg, "pactum-webhook-v1\n", clen);
    memcpy(msg + clen, t, strlen(t));
    msg[clen + strlen(t)] = '\n';
    memcpy(msg + clen + strlen(t) + 1, text, len);
    ok = crypto_sign_verify_detached(sig, msg, mlen, log_pk) == 0;
    free(msg);
    return ok;
}

/* Note a delivery to /hook; the status to answer. */
static unsigned take(struct MHD_Connection *c, const body *b)
{
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Pactum-Signature");
    const char *hid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Pactum-Delivery-Id");
    json_t *doc = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(doc, "delivery_id"));
    unsigned status = MHD_HTTP_OK;
    got *g = NULL;

    pthread_mutex_lock(&mu);
    n_requests++;
    if (!doc || !id || !hid || strcmp(id, hid) != 0 || !signature_ok(sig, b->data, b->len))
        n_bad_signatures++;
    if (id) {
        for (int i = 0; i < n_got && !g; i++)
            if (strcmp(gotten[i].id, id) == 0)
                g = &gotten[i];
        if (!g && n_got < GOT_MAX) {
            g = &gotten[n_got++];
            snprintf(g->id, sizeof(g->id), "%s", id);
            g->seq = (uint64_t)json_integer_value(json_object_get(doc, "seq"));
            snprintf(g->agent, sizeof(g->agent), "%s",
                     json_string_value(json_object_get(doc, "agent_id")) ?: "");
        }
        if (g)
            g->attempts++;
    }
    if (n_requests <= FAIL_FIRST) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else if (g) {
        g->accepted++;
        if (g->seq < last_accepted_seq)
            n_out_of_order++;
        last_accepted_seq = g->seq;
    }
    pthread_mutex_unlock(&mu);
    json_decref(doc);
    return status;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    body *b = *con_cls;
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned status = MHD_HTTP_OK;

    (void)cls;
    (void)method;
    (void)version;
    if (!b) {
        *con_cls = calloc(1, sizeof(body));
        return MHD_YES;
    }
    if (*size) {
        char *nb = realloc(b->data, b->len + *size + 1);
        cr_assert_not_null(nb);
        memcpy(nb + b->len, data, *size);
        b->data = nb;
        b->len += *size;
        b->data[b->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/slow") == 0) {
        pthread_mutex_lock(&mu);
        n_slow++;
        pthread_mutex_unlock(&mu);
        sleep(3); /* longer than the oracle waits (PACTUM_ORACLE_WEBHOOK_TIMEOUT=1s) */
    } else {
        status = take(c, b);
    }
    r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
    body *b = *con_cls;

    (void)cls;
    (void)c;
    (void)why;
    if (b)
        free(b->data);
    free(b);
    *con_cls = NULL;
}

/* --- the oracle's log key, over HTTP ----------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    body *b = ctx;
    char *nb = realloc(b->data, b->len + size * n + 1);

    if (!nb)
        return 0;
    memcpy(nb + b->len, p, size * n);
    b->data = nb;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

static void fetch_log_key(void)
{
    CURL *c = curl_easy_init();
    char url[128];
    body b = {0};
    json_t *doc;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/log/key", h.http_port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    doc = json_loads(b.data, 0, NULL);
    cr_assert_not_null(doc, "%s", b.data);
    cr_assert_eq(
        pk_hex_decode(json_string_value(json_object_get(doc, "key")), log_pk, sizeof(log_pk)),
        PK_OK);
    json_decref(doc);
    free(b.data);
}

/* --- the suite ---------------------------------------------------------------------------- */

static const char *pact =
    "{\"pactum\":1,\"id\":\"wh-pact\",\"agent\":\"wh-bot\",\"clauses\":["
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"low\",\"kind\":\"objective\","
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
    "\"threshold\":2000,\"min_samples\":1},"
    "{\"id\":\"no-pii\",\"promise\":\"no leaks\",\"severity\":\"critical\",\"kind\":"
    "\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}}]}";

static const char *other_pact =
    "{\"pactum\":1,\"id\":\"wh-other-pact\",\"agent\":\"wh-other\",\"clauses\":["
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"low\",\"kind\":\"objective\","
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
    "\"threshold\":2000,\"min_samples\":1}]}";

static void start(const char *hosts)
{
    setenv("PACTUM_ORACLE_WEBHOOK_HOSTS", hosts, 1);
    setenv("PACTUM_ORACLE_WEBHOOK_BACKOFF", "100ms", 1);
    setenv("PACTUM_ORACLE_WEBHOOK_BACKOFF_MAX", "400ms", 1);
    setenv("PACTUM_ORACLE_WEBHOOK_TIMEOUT", "1s", 1);
    cr_assert(h_start_secure(&h, true), "harness did not start (logs in %s)", h.dir);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cr_assert(h_agent_with_pact(&h, "wh-bot", 71, &agent, &owner, pact), "%s", h.why);
    cr_assert(h_agent_with_pact(&h, "wh-other", 73, &other, &other_owner, other_pact), "%s", h.why);
    h_keypair(&market, 75);
    h_keypair(&thief, 76);
    cr_assert(h_key_file(&h, "admin", &h.admin) && h_key_file(&h, "market", &market) &&
                  h_key_file(&h, "thief", &thief),
              "%s", h.why);
    receiver_port = h_free_port();
    receiver = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                (uint16_t)receiver_port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    cr_assert_not_null(receiver);
    fetch_log_key();
}

static void setup(void)
{
    start("any"); /* the receiver is on loopback */
}

static void setup_public(void)
{
    start("public"); /* the default */
}

static void teardown(void)
{
    if (receiver)
        MHD_stop_daemon(receiver);
    h_stop(&h);
    curl_global_cleanup();
}

TestSuite(webhooks, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(webhooks_public, .init = setup_public, .fini = teardown, .timeout = 240);

typedef struct expected {
    uint64_t from;
    uint64_t seq[GOT_MAX];
    int n;
} expected;

/* The changes of wh-bot at or after e->from, as PACTUM_TRUST holds them. */
static bool each_change(void *ctx, natsMsg *m)
{
    expected *e = ctx;
    uint64_t seq = pk_msg_seq(m);

    if (seq >= e->from && e->n < GOT_MAX)
        e->seq[e->n++] = seq;
    return true;
}

/* Has every change in e been accepted by the receiver? */
static bool all_accepted(const expected *e)
{
    bool all = true;

    pthread_mutex_lock(&mu);
    for (int i = 0; i < e->n && all; i++) {
        bool found = false;
        for (int j = 0; j < n_got && !found; j++)
            found = gotten[j].seq == e->seq[i] && gotten[j].accepted > 0;
        all = found;
    }
    pthread_mutex_unlock(&mu);
    return all;
}

static char subscription_id[64];

static uint64_t subscribe(const char *path, const char *extra)
{
    json_t *doc;
    uint64_t from;

    cr_assert_eq(cli("--json webhook add --client @market --key market.key --url "
                     "http://127.0.0.1:%d%s %s --oracle http://127.0.0.1:%d",
                     receiver_port, path, extra, h.http_port),
                 0, "%s", out);
    doc = json_loads(out, 0, NULL);
    cr_assert_not_null(doc, "%s", out);
    from = (uint64_t)json_integer_value(
        json_object_get(json_object_get(doc, "subscription"), "next_seq"));
    if (strcmp(path, "/hook") == 0)
        snprintf(subscription_id, sizeof(subscription_id), "%s",
                 json_string_value(json_object_get(json_object_get(doc, "subscription"), "id")));
    json_decref(doc);
    cr_assert(from > 0, "%s", out);
    return from;
}

Test(webhooks, every_change_arrives_once_signed_in_order_though_the_receiver_failed_at_first)
{
    expected e = {0};
    int64_t deadline;
    int slow, requests;

    /* the client registers a key beside its token; a subscription signed by another key, or
     * naming no web URL, or a kind that does not exist, is refused */
    cr_assert_eq(cli("client register --id @market --key market.key --admin-key admin.key "
                     "--out market.token"),
                 0, "%s", out);
    cr_assert_eq(cli("webhook add --client @market --key thief.key --url http://127.0.0.1:%d/hook "
                     "--oracle http://127.0.0.1:%d",
                     receiver_port, h.http_port),
                 1, "%s", out);
    cr_assert(strstr(out, "not_authorized"), "%s", out);
    cr_assert_eq(cli("webhook add --client @market --key market.key --url file:///etc/passwd "
                     "--oracle http://127.0.0.1:%d",
                     h.http_port),
                 1, "%s", out);
    cr_assert(strstr(out, "bad_request") && strstr(out, "http://"), "%s", out);
    cr_assert_eq(cli("webhook add --client @market --key market.key --url http://127.0.0.1:%d/hook "
                     "--kind promoted --oracle http://127.0.0.1:%d",
                     receiver_port, h.http_port),
                 1, "%s", out);
    cr_assert(strstr(out, "promoted"), "%s", out);

    /* one subscription to wh-bot's changes, one to a receiver that never answers in time */
    e.from = subscribe("/hook", "--agent wh-bot");
    subscribe("/slow", "");

    /* wh-bot: judged, violates, is contained; wh-other changes too (not subscribed) */
    cr_assert(
        h_publish_events(&h, "wh-bot", &agent, "ok", 5, "reply", "latency_ms", 300, "pii", "none"));
    cr_assert(h_publish_events(&h, "wh-other", &other, "ok", 5, "reply", "latency_ms", 300, "pii",
                               "none"));
    cr_assert(h_publish_events(&h, "wh-bot", &agent, "leak", 1, "reply", "latency_ms", 300, "pii",
                               "leaked"));
    Pactum__V1__TrustReport *r = h_wait_tier(&h, "wh-bot", PACTUM__V1__TIER__TIER_CONTAINED, 30000);
    cr_assert_not_null(r, "wh-bot was not contained");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* every change of wh-bot since the subscription arrives (bounded) */
    deadline = pk_mono_ms() + 60000;
    do {
        e.n = 0;
        cr_assert(h_read_stream(&h, "PACTUM_TRUST", "pactum.trust.wh-bot", each_change, &e));
        if (e.n > 0 && all_accepted(&e))
            break;
        pk_sleep_ms(200);
    } while (pk_mono_ms() < deadline);
    cr_assert(e.n >= 2, "only %d changes of wh-bot", e.n);
    cr_assert(all_accepted(&e), "not every change of wh-bot arrived (%d changes, %d requests)", e.n,
              n_requests);

    pthread_mutex_lock(&mu);
    /* once each by idempotency id, only wh-bot's, in order, each signed by the log's key */
    for (int i = 0; i < n_got; i++) {
        cr_assert_eq(gotten[i].accepted, 1, "%s accepted %d times", gotten[i].id,
                     gotten[i].accepted);
        cr_assert_str_eq(gotten[i].agent, "wh-bot", "%s is of %s", gotten[i].id, gotten[i].agent);
    }
    cr_assert_eq(n_got, e.n, "%d deliveries for %d changes", n_got, e.n);
    cr_assert_eq(n_bad_signatures, 0, "%d deliveries without a good signature", n_bad_signatures);
    cr_assert_eq(n_out_of_order, 0);
    /* the first change was tried FAIL_FIRST + 1 times, under one id */
    cr_assert_eq(gotten[0].attempts, FAIL_FIRST + 1, "%s was tried %d times", gotten[0].id,
                 gotten[0].attempts);
    slow = n_slow;
    pthread_mutex_unlock(&mu);
    cr_assert(slow >= 1, "the slow receiver was never called");
    cr_assert(signature_ok("t=1, ed25519=AAAA", "{}", 2) == false);

    /* the delivery log shows the failures, to the client's token and no one else's */
    cr_assert_eq(cli("webhook show %s --token \"$(cat market.token)\" --oracle "
                     "http://127.0.0.1:%d",
                     subscription_id, h.http_port),
                 0, "%s", out);
    cr_assert(strstr(out, "HTTP 500") && strstr(out, "attempt 1: failed"), "%s", out);
    cr_assert(strstr(out, "attempt 4: ok"), "%s", out);
    cr_assert_eq(cli("webhook list --token \"$(cat market.token)\" --oracle http://127.0.0.1:%d",
                     h.http_port),
                 0, "%s", out);
    cr_assert(strstr(out, subscription_id) && strstr(out, "/slow"), "%s", out);
    cr_assert_eq(cli("webhook show %s --token @market:not-the-secret --oracle "
                     "http://127.0.0.1:%d",
                     subscription_id, h.http_port),
                 1, "%s", out);
    cr_assert(strstr(out, "unauthorized"), "%s", out);

    /* cancelled: wh-bot's next changes are not delivered */
    cr_assert_eq(cli("webhook cancel --client @market --key market.key --url "
                     "http://127.0.0.1:%d/hook --oracle http://127.0.0.1:%d",
                     receiver_port, h.http_port),
                 0, "%s", out);
    pthread_mutex_lock(&mu);
    requests = n_requests;
    pthread_mutex_unlock(&mu);
    {
        expected after = {.from = e.seq[e.n - 1] + 1};
        cr_assert(h_publish_events(&h, "wh-bot", &agent, "later", 3, "reply", "latency_ms", 300,
                                   "pii", "none"));
        deadline = pk_mono_ms() + 20000;
        do {
            after.n = 0;
            cr_assert(
                h_read_stream(&h, "PACTUM_TRUST", "pactum.trust.wh-bot", each_change, &after));
            pk_sleep_ms(200);
        } while (after.n == 0 && pk_mono_ms() < deadline);
        cr_assert(after.n > 0, "wh-bot changed no more");
        pk_sleep_ms(1500); /* longer than a pass and a retry */
    }
    pthread_mutex_lock(&mu);
    cr_assert_eq(n_requests, requests, "a cancelled subscription was delivered to");
    pthread_mutex_unlock(&mu);
}

Test(webhooks_public, no_delivery_reaches_a_private_address_and_subscriptions_outlive_a_restart)
{
    int64_t deadline;

    cr_assert_eq(cli("client register --id @market --key market.key --admin-key admin.key "
                     "--out market.token"),
                 0, "%s", out);
    subscribe("/hook", "--agent wh-bot");
    cr_assert(
        h_publish_events(&h, "wh-bot", &agent, "ok", 3, "reply", "latency_ms", 300, "pii", "none"));
    /* the attempt is refused before it connects, and logged with why */
    deadline = pk_mono_ms() + 30000;
    do {
        cr_assert_eq(cli("webhook show %s --token \"$(cat market.token)\" --oracle "
                         "http://127.0.0.1:%d",
                         subscription_id, h.http_port),
                     0, "%s", out);
        if (strstr(out, "refused to connect to 127.0.0.1"))
            break;
        pk_sleep_ms(200);
    } while (pk_mono_ms() < deadline);
    cr_assert(strstr(out, "refused to connect to 127.0.0.1") && strstr(out, "attempt 1: failed"),
              "%s", out);
    pthread_mutex_lock(&mu);
    cr_assert_eq(n_requests, 0, "a delivery reached a loopback receiver");
    pthread_mutex_unlock(&mu);

    /* the oracle restarts: the subscription and its log are still there */
    cr_assert(h_restart_service(&h, 3, SIGTERM, NULL), "the oracle did not start again");
    cr_assert(h_wait_healthy(&h, "oracle", 20000));
    cr_assert_eq(cli("webhook show %s --token \"$(cat market.token)\" --oracle "
                     "http://127.0.0.1:%d",
                     subscription_id, h.http_port),
                 0, "%s", out);
    cr_assert(strstr(out, "attempt 1: failed") && strstr(out, "agents: wh-bot"), "%s", out);
}
