#include "pk/answer.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void pk_log_id(const uint8_t pk[PK_PUBKEY_BYTES], char out[PK_LOG_ID_LEN + 1])
{
    uint8_t h[32];

    crypto_hash_sha256(h, pk, PK_PUBKEY_BYTES);
    sodium_bin2hex(out, PK_LOG_ID_LEN + 1, h, PK_LOG_ID_LEN / 2);
}

static const struct {
    Pactum__V1__PayloadType type;
    const char *name;
    const ProtobufCMessageDescriptor *desc;
} answers[] = {
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, "trust_report",
     &pactum__v1__trust_report__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT, "pact_report",
     &pactum__v1__pact_report__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, "decision",
     &pactum__v1__authorize_decision__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, "evidence_page",
     &pactum__v1__evidence_page__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, "attestation",
     &pactum__v1__attestation__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD, "tree_head", &pactum__v1__tree_head__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER, "log_answer",
     &pactum__v1__log_answer__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES, "figures",
     &pactum__v1__governance_figures__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_CHANGE_NOTICE, "change_notice",
     &pactum__v1__change_notice__descriptor},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT, "engagement_report",
     &pactum__v1__engagement_report__descriptor},
};

#define N_ANSWERS (sizeof(answers) / sizeof(answers[0]))

const char *pk_answer_type_name(Pactum__V1__PayloadType type)
{
    for (size_t i = 0; i < N_ANSWERS; i++) {
        if (answers[i].type == type)
            return answers[i].name;
    }
    return NULL;
}

const ProtobufCMessageDescriptor *pk_answer_descriptor(Pactum__V1__PayloadType type)
{
    for (size_t i = 0; i < N_ANSWERS; i++) {
        if (answers[i].type == type)
            return answers[i].desc;
    }
    return NULL;
}

pk_status pk_answer_seal(Pactum__V1__PayloadType type, const ProtobufCMessage *msg,
                         const pk_keypair *kp, uint8_t **out, size_t *len)
{
    char id[PK_LOG_ID_LEN + 1];
    uint8_t *buf = NULL;
    size_t n = 0;
    pk_status st;

    pk_log_id(kp->pk, id);
    if ((st = pk_pack(msg, &buf, &n)) != PK_OK)
        return st;
    st = pk_envelope_seal(type, buf, n, id, kp, out, len);
    free(buf);
    return st;
}

pk_status pk_answer_open(const uint8_t *buf, size_t len, Pactum__V1__PayloadType type,
                         const ProtobufCMessageDescriptor *desc, const uint8_t *want_key,
                         pk_signed_msg **env_out, ProtobufCMessage **out)
{
    pk_signed_msg *env = NULL;
    const char *name;
    pk_status st;

    if (out)
        *out = NULL;
    if (env_out)
        *env_out = NULL;
    if ((st = pk_envelope_open(buf, len, &env)) != PK_OK)
        return PK_WRAP(PK_EDECODE, "not a signed answer");
    name = pk_answer_type_name(env->type);
    if (!name || (type && env->type != type)) {
        const char *want = type ? pk_answer_type_name(type) : "an oracle answer";
        int got = (int)env->type;
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EDECODE, "expected %s, got payload type %d%s%s%s", want ? want : "?", got,
                      name ? " (" : "", name ? name : "", name ? ")" : "");
    }
    if (want_key && sodium_memcmp(env->signer_key.data, want_key, PK_PUBKEY_BYTES) != 0) {
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EBADSIG, "%s is signed by another key than the oracle key given", name);
    }
    if (pk_envelope_verify(env, env->signer_key.data) != PK_OK) {
        pactum__v1__signed__free_unpacked(env, NULL);
        return PK_ERR(PK_EBADSIG,
                      "the signature of the %s does not verify: it was changed after "
                      "signing",
                      name);
    }
    if (desc && out) {
        *out = protobuf_c_message_unpack(desc, NULL, env->payload.len, env->payload.data);
        if (!*out) {
            pactum__v1__signed__free_unpacked(env, NULL);
            return PK_ERR(PK_EDECODE, "the signed %s does not decode", name);
        }
    }
    if (env_out)
        *env_out = env;
    else
        pactum__v1__signed__free_unpacked(env, NULL);
    return PK_OK;
}
