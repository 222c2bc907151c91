/*
 * Fuzz: what the gateway reads from anyone who reaches its ports. Any bytes are an OTLP
 * request, in the protobuf and in the JSON encoding, turned into events (with no bus, so
 * nothing is sent), and the JSON form of a signed envelope; none of it may crash, and every
 * answer is a status the receiver documents with a body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gateway_cfg cfg = {.otlp_agents = "svc=agent-1, other=bot-2", .otlp_id = "@otel"};
    static gateway g = {.cfg = &cfg};
    char *text = malloc(size + 1), why[256];
    uint8_t *out = NULL, *env;
    size_t olen = 0;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (int json = 0; json < 2; json++) {
        unsigned status = gw_otlp_traces(&g, data, size, json, &out, &olen);
        if (status != 200 && status != 400)
            abort();
        if (status == 400 && !out)
            abort();
        free(out);
        out = NULL;
    }
    if ((env = gw_signed_from_json(text, size, &olen, why, sizeof(why)))) {
        pk_signed_msg *s = NULL;
        if (pk_envelope_open(env, olen, &s) == PK_OK)
            pactum__v1__signed__free_unpacked(s, NULL);
        free(env);
    } else if (!why[0]) {
        abort(); /* a refusal always says why */
    }
    free(text);
    return 0;
}
