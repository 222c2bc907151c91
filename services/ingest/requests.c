/*
 * requests - what registrations and governance records share: opening and
 * checking the signed request, and answering it (a refusal is also a counted
 * dead-letter record with its reason).
 */
#include <stdarg.h>
#include <stdio.h>

#include "ingest.h"
#include "pk/log.h"

void ingest_refuse(ingest_req *r, Pactum__V1__Reason reason, const char *fmt, ...)
{
    va_list ap;
    pk_rejection rej = {0};

    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    r->ok = false;
    r->reason = reason;
    rej.reason = reason;
    rej.message = r->text;
    rej.subject = r->kind->subject;
    rej.data = r->data;
    rej.len = r->len;
    pk_metric_add(&r->in->m[r->kind->m_rejected], 1);
    ingest_count_reject(r->in, reason);
    PK_INFO("%s refused (%s): %s", r->kind->what, pk_reason_name(reason), r->text);
    if (pk_reject_publish(r->in->bus, "ingest", &rej, NULL, true) != PK_OK)
        PK_WARN("could not record the refusal: %s", pk_error_msg());
}

void ingest_accept(ingest_req *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    r->ok = true;
    r->reason = PACTUM__V1__REASON__REASON_UNSPECIFIED;
    pk_metric_add(&r->in->m[r->kind->m_ok], 1);
    PK_INFO("%s", r->text);
}

pk_signed_msg *ingest_open_request(ingest_req *r)
{
    pk_signed_msg *env = NULL;
    pk_status st;

    if (r->len > r->kind->max_bytes) {
        ingest_refuse(r, PACTUM__V1__REASON__REASON_OVERSIZED, "%s is %zu bytes; the limit is %zu",
                      r->kind->what, r->len, r->kind->max_bytes);
        return NULL;
    }
    if ((st = pk_envelope_open(r->data, r->len, &env)) != PK_OK) {
        ingest_refuse(r,
                      st == PK_EINVAL ? PACTUM__V1__REASON__REASON_UNSUPPORTED_VERSION
                                      : PACTUM__V1__REASON__REASON_MALFORMED,
                      "%s", pk_error_msg());
        return NULL;
    }
    if (pk_envelope_verify(env, env->signer_key.data) != PK_OK) {
        ingest_refuse(r, PACTUM__V1__REASON__REASON_BAD_SIGNATURE,
                      "signature does not verify under the signer key it names");
        pactum__v1__signed__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}
