/*
 * pk/verify.h - checking an oracle answer offline, with nothing but the
 * log's public key: the signature of the answer, every signed tree head in
 * it, every inclusion and consistency proof against its head, every record
 * against the leaf that commits to it, and what an attestation states
 * against the trust change it proves. `pactum verify` and the CLI's online
 * commands call it; the SDKs and the web page mirror it step for step.
 *
 * Each step is reported, passed or failed, with a sentence, through the
 * verifier's `say` callback; failures are counted.
 */
#ifndef PK_VERIFY_H
#define PK_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/codec.h"

/* One step of a check: passed or failed, and what it established. */
typedef void (*pk_verify_say_fn)(void *ctx, bool ok, const char *text);

typedef struct pk_verifier {
    const uint8_t *key;   /* the log key answers must be signed by; NULL: the answer's own */
    pk_verify_say_fn say; /* where each step is reported; NULL: nowhere */
    void *say_ctx;        /* its context */
    int failures;         /* failed steps so far */
} pk_verifier;

/*
 * Check a signed answer (the Signed envelope's bytes) with every check its
 * type allows. Returns the number of failed steps of this answer (0: it
 * verified); v->failures accumulates over calls.
 */
int pk_verify_answer(pk_verifier *v, const uint8_t *buf, size_t len);

/* One checked step: counted as a failure unless ok, and said. */
void pk_verify_step(pk_verifier *v, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * An engagement report: with proofs, every statement is the one its logged
 * trust change holds (byte for byte), its amounts add up, each verdict it
 * cites is logged as cited, and the acceptance carries valid signatures of
 * both parties over the terms shown (verify_engagement.c).
 */
void pk_verify_engagements(pk_verifier *v, const ProtobufCMessage *m);

/*
 * Open a nested signed tree head, checked; NULL (and a failed step) if it
 * does not check. The caller frees it (pactum__v1__tree_head__free_unpacked).
 */
Pactum__V1__TreeHead *pk_verify_head(pk_verifier *v, const ProtobufCBinaryData *b,
                                     const char *what);

/*
 * Check that leaf (LogLeaf bytes) is at index in the tree of th, by path, and
 * that record (optional) is the message the leaf commits to. Returns the
 * decoded leaf (the caller frees it) or NULL if it does not decode.
 */
Pactum__V1__LogLeaf *pk_verify_leaf(pk_verifier *v, const ProtobufCBinaryData *leaf, uint64_t index,
                                    const ProtobufCBinaryData *path, size_t n_path,
                                    const ProtobufCBinaryData *record,
                                    const Pactum__V1__TreeHead *th);

/*
 * A saved answer as its envelope's bytes: buf as it is, or, when it is JSON
 * (what the HTTP API returns), the base64 of its "signed" field. *out is the
 * caller's (free).
 */
pk_status pk_verify_unwrap(const uint8_t *buf, size_t len, uint8_t **out,
                           size_t *outlen) PK_MUST_CHECK;

#endif
