/*
 * Queries: trust reports, health, metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

int cli_trust_ask(pk_bus *bus, const char *agent, uint32_t history, Pactum__V1__TrustReport **out)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;

    q.agent_id = (char *)agent;
    q.history = history;
    return cli_ask(bus, PK_SUBJ_ORACLE_TRUST, &q.base,
                   PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, (ProtobufCMessage **)out, NULL,
                   NULL);
}

int cmd_trust(cli_args *a)
{
    const char *agent = NULL, *v, *wait_tier = NULL;
    uint32_t history = 0;
    int64_t wait_ms = 10000, deadline;
    Pactum__V1__TrustReport *rep = NULL;
    Pactum__V1__Tier want = 0;
    pk_bus *bus;
    int r, code;

    if (a->i < a->argc && strcmp(a->argv[a->i], "query") == 0)
        a->i++; /* "pactum trust query AGENT" reads as well */
    while (a->i < a->argc) {
        if ((r = cli_opt(a, "history", &v))) {
            char *end;
            long h = r > 0 ? strtol(v, &end, 10) : -1;
            if (r < 0 || *end || h < 1 || h > 200)
                return cli_usage_error("--history needs a number from 1 to 200");
            history = (uint32_t)h;
        } else if ((r = cli_opt(a, "wait-tier", &wait_tier))) {
            if (r < 0 || !(want = pk_tier_parse(wait_tier)))
                return cli_usage_error("--wait-tier needs a tier (trusted, standard, watch, "
                                       "restricted, contained, suspended)");
        } else if ((r = cli_opt(a, "wait", &v))) {
            if (r < 0 || pk_duration_parse(v, &wait_ms) != PK_OK)
                return cli_usage_error("--wait needs a duration like 10s");
        } else if (!agent && a->argv[a->i][0] != '-') {
            agent = a->argv[a->i++];
        } else {
            return cli_usage_error("trust: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (!agent)
        return cli_usage_error("trust needs an AGENT id");
    if (!(bus = cli_connect()))
        return CLI_BUS;
    deadline = pk_mono_ms() + wait_ms;
    for (;;) {
        if ((code = cli_trust_ask(bus, agent, history, &rep)) != CLI_OK)
            break;
        if (!want || (rep->state && rep->state->tier == want) || pk_mono_ms() >= deadline)
            break;
        pactum__v1__trust_report__free_unpacked(rep, NULL);
        rep = NULL;
        pk_sleep_ms(100);
    }
    if (rep) {
        if (cli.json)
            cli_print_json(cli_report_json(rep));
        else
            cli_report_print(rep);
        if (rep->status != PACTUM__V1__QUERY_STATUS__QUERY_OK)
            code = CLI_FAIL;
        else if (want && (!rep->state || rep->state->tier != want))
            code = cli_error(CLI_FAIL, "agent %s did not reach tier %s within %lld ms", agent,
                             wait_tier, (long long)wait_ms);
        pactum__v1__trust_report__free_unpacked(rep, NULL);
    }
    pk_bus_close(bus);
    return code;
}

int cmd_health(cli_args *a)
{
    static const char *const all[] = {"ingest", "evaluator", "scorer", "oracle"};
    const char *const *names = all;
    size_t n = 4;
    const char *one;
    pk_bus *bus;
    int code = CLI_OK;
    json_t *arr = cli.json ? json_array() : NULL;

    if (a->i < a->argc) {
        one = a->argv[a->i++];
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
        natsStatus s;
        snprintf(subject, sizeof(subject), PK_SUBJ_HEALTH, names[i]);
        s = natsConnection_Request(&reply, bus->nc, subject, "", 0, cli.timeout_ms);
        if (s == NATS_OK) {
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
                json_array_append_new(arr,
                                      json_pack("{s:s, s:b, s:s}", "service", names[i], "healthy",
                                                0, "detail", natsStatus_GetText(s)));
            else
                printf("%-10s DOWN (%s)\n", names[i], natsStatus_GetText(s));
            code = CLI_FAIL;
        }
        natsMsg_Destroy(reply);
    }
    if (arr)
        cli_print_json(arr);
    pk_bus_close(bus);
    return code;
}

int cmd_metrics(cli_args *a)
{
    char subject[64];
    natsMsg *reply = NULL;
    pk_bus *bus;
    int code;

    if (a->i >= a->argc)
        return cli_usage_error("metrics needs a SERVICE (ingest, evaluator, scorer, oracle)");
    snprintf(subject, sizeof(subject), PK_SUBJ_METRICS, a->argv[a->i]);
    if (!(bus = cli_connect()))
        return CLI_BUS;
    code = cli_request(bus, subject, (const uint8_t *)"", 0, &reply);
    if (code == CLI_OK)
        fwrite(natsMsg_GetData(reply), 1, (size_t)natsMsg_GetDataLength(reply), stdout);
    natsMsg_Destroy(reply);
    pk_bus_close(bus);
    return code;
}
