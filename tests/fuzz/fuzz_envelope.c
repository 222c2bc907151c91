/*
 * Fuzz: what ingest reads from the wire. A Signed envelope is opened and its
 * signature checked; an event batch payload is decoded and every event
 * checked, as ingest does before it accepts anything.
 */
#include <stddef.h>
#include <stdint.h>

#include "pk/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pk_signed_msg *env = NULL;

    if (pk_envelope_open(data, size, &env) != PK_OK)
        return 0;
    if (pk_envelope_verify(env, env->signer_key.data) == PK_OK)
        env->version = 1; /* verified: read on as ingest would */
    if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH) {
        pk_event_batch_msg *b =
            pactum__v1__event_batch__unpack(NULL, env->payload.len, env->payload.data);
        for (size_t i = 0; b && i < b->n_events; i++) {
            double v;
            if (pk_event_check(b->events[i]) == PK_OK) {
                (void)pk_event_metric(b->events[i], "latency_ms", &v);
                (void)pk_event_label(b->events[i], "pii");
            }
        }
        if (b)
            pactum__v1__event_batch__free_unpacked(b, NULL);
    }
    pactum__v1__signed__free_unpacked(env, NULL);
    return 0;
}
