/*
 * Queries: trust reports, health, metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

int cli_trust_ask(pk_bus *bus, const char *agent, uint32_t history, uint8_t **raw, size_t *raw_len,
                  Pactum__V1__TrustReport **out)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;

    q.agent_id = (char *)agent;
    q.history = history;
    return cli_ask(bus, PK_SUBJ_ORACLE_TRUST, &q.base,
                   PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, (ProtobufCMessage **)out, raw,
                   raw_len);
}

int cmd_trust(const cli_call *c)
{
    const char *agent = c->args[0], *wait_tier = cli_get(c, "wait-tier");
    uint64_t history = 0;
    int64_t wait_ms = 10000, deadline;
    Pactum__V1__TrustReport *rep = NULL;
    Pactum__V1__Tier want = 0;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    pk_bus *bus;
    int code;

    if ((code = cli_get_u64(c, "history", 1, 200, &history)) != CLI_OK ||
        (code = cli_get_duration(c, "wait", 0, 3600000, &wait_ms)) != CLI_OK)
        return code;
    if (wait_tier && !(want = pk_tier_parse(wait_tier)))
        return cli_usage_error("--wait-tier needs a tier (trusted, standard, watch, restricted, "
                               "contained, suspended), got '%s'",
                               wait_tier);
    if (!(bus = cli_connect()))
        return CLI_BUS;
    deadline = pk_mono_ms() + wait_ms;
    for (;;) {
        if ((code = cli_trust_ask(bus, agent, (uint32_t)history, &raw, &raw_len, &rep)) != CLI_OK)
            break;
        if (!want || (rep->state && rep->state->tier == want) || pk_mono_ms() >= deadline)
            break;
        pactum__v1__trust_report__free_unpacked(rep, NULL);
        rep = NULL;
        free(raw);
        raw = NULL;
        pk_sleep_ms(100);
    }
    if (rep) {
        if (cli.json)
            cli_print_json(cli_answer_json(raw, raw_len));
        else
            cli_report_print(rep);
        if (rep->status != PACTUM__V1__QUERY_STATUS__QUERY_OK)
            code = CLI_FAIL;
        else if (want && (!rep->state || rep->state->tier != want))
            code = cli_error(CLI_FAIL, "agent %s did not reach tier %s within %lld ms", agent,
                             wait_tier, (long long)wait_ms);
        pactum__v1__trust_report__free_unpacked(rep, NULL);
    }
    free(raw);
    pk_bus_close(bus);
    return code;
}

int cmd_health(const cli_call *c)
{
    static const char *const all[] = {"ingest", "evaluator", "scorer", "oracle"};
    const char *const *names = all;
    size_t n = 4;
    const char *one;
    pk_bus *bus;
    int code = CLI_OK;
    json_t *arr = cli.json ? json_array() : NULL;

    if (c->n_args) {
        one = c->args[0];
        names = &one;
        n = 1;
    }
    if (!(bus = cli_connect())) {
        json_decref(arr);
        return CLI_BUS;
    }
    for (size_t i = 0; i < n; i++) {
        char subject[64];
        natsMsg *reply = NULL;
        pk_status st;
        snprintf(subject, sizeof(subject), PK_SUBJ_HEALTH, names[i]);
        st = pk_bus_request(bus, subject, "", 0, cli.timeout_ms, &reply);
        if (st == PK_OK) {
            json_t *doc =
                json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
            bool ok = doc && json_is_true(json_object_get(doc, "healthy"));
            if (arr)
                json_array_append_new(arr, doc ? doc : json_null());
            else {
                printf("%-10s %s %s\n", names[i], ok ? "healthy" : "UNHEALTHY",
                       natsMsg_GetData(reply));
                json_decref(doc);
            }
            if (!ok)
                code = CLI_FAIL;
        } else {
            if (arr)
                json_array_append_new(arr, json_pack("{s:s, s:b, s:s}", "service", names[i],
                                                     "healthy", 0, "detail", pk_error_msg()));
            else
                printf("%-10s DOWN (%s)\n", names[i], pk_error_msg());
            code = CLI_FAIL;
        }
        natsMsg_Destroy(reply);
    }
    if (arr)
        cli_print_json(arr);
    pk_bus_close(bus);
    return code;
}

int cmd_metrics(const cli_call *c)
{
    char subject[64];
    natsMsg *reply = NULL;
    pk_bus *bus;
    int code;

    snprintf(subject, sizeof(subject), PK_SUBJ_METRICS, c->args[0]);
    if (!(bus = cli_connect()))
        return CLI_BUS;
    code = cli_request(bus, subject, (const uint8_t *)"", 0, &reply);
    if (code == CLI_OK)
        fwrite(natsMsg_GetData(reply), 1, (size_t)natsMsg_GetDataLength(reply), stdout);
    natsMsg_Destroy(reply);
    pk_bus_close(bus);
    return code;
}
