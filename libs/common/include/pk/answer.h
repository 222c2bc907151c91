/*
 * pk/answer.h - oracle answers are Signed envelopes: the payload is the answer
 * message, signed by the oracle's key (which is also the transparency log's
 * key), so anyone holding its public key can check an answer offline.
 */
#ifndef PK_ANSWER_H
#define PK_ANSWER_H

#include "pk/codec.h"

#define PK_LOG_ID_LEN 32 /* hex characters of a log id */

/* The log id of a public key: the first 16 bytes of its SHA-256, in hex. */
void pk_log_id(const uint8_t pk[PK_PUBKEY_BYTES], char out[PK_LOG_ID_LEN + 1]);

/* Pack msg and sign it as `type` with kp, naming the log id. *out: caller frees. */
pk_status pk_answer_seal(Pactum__V1__PayloadType type, const ProtobufCMessage *msg,
                         const pk_keypair *kp, uint8_t **out, size_t *len) PK_MUST_CHECK;

/*
 * Open a signed answer: the envelope decodes, has the type wanted (0: any
 * answer type), its signature verifies under the key it names, and that key
 * is want_key when want_key is not NULL. Then the payload is unpacked with
 * desc (NULL: not unpacked). *env_out (optional) receives the envelope, to
 * free with pactum__v1__signed__free_unpacked; *out the message, to free with
 * protobuf_c_message_free_unpacked.
 */
pk_status pk_answer_open(const uint8_t *buf, size_t len, Pactum__V1__PayloadType type,
                         const ProtobufCMessageDescriptor *desc, const uint8_t *want_key,
                         pk_signed_msg **env_out, ProtobufCMessage **out) PK_MUST_CHECK;

/* Name of an answer type ("trust_report", "tree_head" ...), or NULL for other types. */
const char *pk_answer_type_name(Pactum__V1__PayloadType type);

/* The message descriptor of an answer type's payload, or NULL. */
const ProtobufCMessageDescriptor *pk_answer_descriptor(Pactum__V1__PayloadType type);

#endif
