/*
 * Webhooks from the command line: an API client subscribes a URL to trust changes (signed
 * with the key it registered) or cancels it, and reads its subscriptions and their delivery
 * logs with its token, all over the oracle's HTTP API.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

#define ANSWER_MAX (1 << 20)

typedef struct answer {
    char *text;
    size_t len;
} answer;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    answer *a = ctx;
    char *nb;

    if (a->len + size * n > ANSWER_MAX || !(nb = realloc(a->text, a->len + size * n + 1)))
        return 0;
    memcpy(nb + a->len, p, size * n);
    a->text = nb;
    a->len += size * n;
    a->text[a->len] = '\0';
    return size * n;
}

static const char *oracle_url(const cli_call *c)
{
    const char *u = cli_get(c, "oracle");

    if (!u)
        u = getenv("PACTUM_ORACLE_URL");
    return u && *u ? u : "http://127.0.0.1:7480";
}

/*
 * A request to the oracle (POST with body when body is not NULL); the answer is printed,
 * as JSON with --json or when show is NULL, else by show. CLI_OK on 200.
 */
static int call(const cli_call *c, const char *path, const uint8_t *body, size_t len,
                const char *token, void (*show)(json_t *))
{
    CURL *curl = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[1200], auth[600];
    answer a = {0};
    long status = 0;
    CURLcode rc;
    json_t *doc;
    int code;

    if (!curl)
        return cli_error(CLI_IO, "out of memory");
    snprintf(url, sizeof(url), "%s%s", oracle_url(c), path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cli.timeout_ms > 0 ? (long)cli.timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/x-protobuf");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    if (token)
        sodium_memzero(auth, sizeof(auth));
    if (rc != CURLE_OK) {
        free(a.text);
        return cli_error(CLI_BUS, "%s: %s", url, curl_easy_strerror(rc));
    }
    doc = a.text ? json_loads(a.text, 0, NULL) : NULL;
    free(a.text);
    if (!doc)
        return cli_error(CLI_BUS, "%s answered %ld with no JSON", url, status);
    if (status != 200) {
        code =
            cli_error(CLI_FAIL, "%s (%ld): %s", json_string_value(json_object_get(doc, "status")),
                      status, json_string_value(json_object_get(doc, "message")));
        json_decref(doc);
        return code;
    }
    if (cli.json || !show)
        cli_print_json(doc);
    else {
        show(doc);
        json_decref(doc);
    }
    return CLI_OK;
}

static void show_one(json_t *s)
{
    const char *err = json_string_value(json_object_get(s, "last_error"));

    printf("%s  %s%s\n  agents: ", json_string_value(json_object_get(s, "id")),
           json_string_value(json_object_get(s, "url")),
           json_is_true(json_object_get(s, "cancelled")) ? "  (cancelled)" : "");
    if (!json_array_size(json_object_get(s, "agents")))
        printf("every agent");
    for (size_t i = 0; i < json_array_size(json_object_get(s, "agents")); i++)
        printf("%s%s", i ? ", " : "",
               json_string_value(json_array_get(json_object_get(s, "agents"), i)));
    printf("; kinds: ");
    if (!json_array_size(json_object_get(s, "kinds")))
        printf("every change");
    for (size_t i = 0; i < json_array_size(json_object_get(s, "kinds")); i++)
        printf("%s%s", i ? ", " : "",
               json_string_value(json_array_get(json_object_get(s, "kinds"), i)));
    printf("\n  delivered %lld, failed attempts %lld, next change #%lld\n",
           (long long)json_integer_value(json_object_get(s, "delivered")),
           (long long)json_integer_value(json_object_get(s, "failed")),
           (long long)json_integer_value(json_object_get(s, "next_seq")));
    if (err && *err)
        printf("  last error: %s\n", err);
}

static void show_subscribed(json_t *doc)
{
    show_one(json_object_get(doc, "subscription"));
}

static void show_list(json_t *doc)
{
    json_t *subs = json_object_get(doc, "subscriptions");

    if (!json_array_size(subs))
        printf("%s has no webhook subscriptions\n",
               json_string_value(json_object_get(doc, "client_id")));
    for (size_t i = 0; i < json_array_size(subs); i++)
        show_one(json_array_get(subs, i));
}

static void show_deliveries(json_t *doc)
{
    json_t *d = json_object_get(doc, "deliveries");

    show_one(doc);
    printf("  latest deliveries (newest first):\n");
    for (size_t i = 0; i < json_array_size(d); i++) {
        json_t *e = json_array_get(d, i);
        const char *err = json_string_value(json_object_get(e, "error"));
        printf("    %s attempt %lld: %s, HTTP %lld, %lld ms%s%s\n",
               json_string_value(json_object_get(e, "delivery_id")),
               (long long)json_integer_value(json_object_get(e, "attempt")),
               json_is_true(json_object_get(e, "ok")) ? "ok" : "failed",
               (long long)json_integer_value(json_object_get(e, "http_status")),
               (long long)json_integer_value(json_object_get(e, "duration_ms")),
               err && *err ? ": " : "", err && *err ? err : "");
    }
}

/* add and cancel: a WebhookSubscription signed by the client's key. */
static int subscribe(const cli_call *c, bool cancel)
{
    Pactum__V1__WebhookSubscription s = PACTUM__V1__WEBHOOK_SUBSCRIPTION__INIT;
    const char *const *agents = NULL, *const *kinds = NULL;
    uint8_t *buf = NULL, *env = NULL;
    size_t len = 0, elen = 0;
    pk_keypair kp;
    int code;

    s.client_id = (char *)cli_get(c, "client");
    s.url = (char *)cli_get(c, "url");
    s.n_agents = cli_get_all(c, "agent", &agents);
    s.agents = (char **)agents;
    s.n_kinds = cli_get_all(c, "kind", &kinds);
    s.kinds = (char **)kinds;
    s.ts_ms = pk_now_ms();
    s.cancel = cancel;
    if (pk_key_load(cli_get(c, "key"), &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_pack(&s.base, &buf, &len) != PK_OK ||
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_WEBHOOK_SUBSCRIPTION, buf, len,
                         s.client_id, &kp, &env, &elen) != PK_OK) {
        pk_keypair_wipe(&kp);
        free(buf);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    pk_keypair_wipe(&kp);
    free(buf);
    code = call(c, "/v1/webhooks", env, elen, NULL, show_subscribed);
    free(env);
    return code;
}

int cmd_webhook_add(const cli_call *c)
{
    return subscribe(c, false);
}

int cmd_webhook_cancel(const cli_call *c)
{
    return subscribe(c, true);
}

static const char *token_of(const cli_call *c)
{
    const char *t = cli_get(c, "token");

    return t ? t : getenv("PACTUM_TOKEN");
}

int cmd_webhook_list(const cli_call *c)
{
    if (!token_of(c))
        return cli_usage_error("the client's token is needed (--token or PACTUM_TOKEN)");
    return call(c, "/v1/webhooks", NULL, 0, token_of(c), show_list);
}

int cmd_webhook_show(const cli_call *c)
{
    char path[128];

    if (!token_of(c))
        return cli_usage_error("the client's token is needed (--token or PACTUM_TOKEN)");
    if (strlen(c->args[0]) > 64 || strspn(c->args[0], "wh-0123456789abcdef") != strlen(c->args[0]))
        return cli_usage_error("a subscription id looks like wh-0123456789abcdef");
    snprintf(path, sizeof(path), "/v1/webhooks/%s", c->args[0]);
    return call(c, path, NULL, 0, token_of(c), show_deliveries);
}
