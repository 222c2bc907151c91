/*
 * Fuzz: what `pactum verify` and every client read. Any bytes are opened as a
 * signed oracle answer and rendered as JSON; and read as an inclusion or a
 * consistency proof (index, sizes, path) and verified against roots, which
 * must never crash and never accept a proof that was not made for the tree.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pk/answer.h"
#include "pk/merkle.h"
#include "pk/pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pk_signed_msg *env = NULL;
    ProtobufCMessage *m = NULL;
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH], leaf[PK_HASH], r1[PK_HASH], r2[PK_HASH];
    size_t n;

    /* as a signed answer, of any answer type */
    if (pk_answer_open(data, size, 0, NULL, NULL, &env, NULL) == PK_OK) {
        m = protobuf_c_message_unpack(pk_answer_descriptor(env->type), NULL, env->payload.len,
                                      env->payload.data);
        if (m) {
            json_t *j = pk_pb_json(m);
            char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
            free(text);
            json_decref(j);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        pactum__v1__signed__free_unpacked(env, NULL);
    }
    /* as proofs: [index 8][size 8][first 8] then 32-byte hashes */
    if (size < 24 + 2 * PK_HASH)
        return 0;
    n = (size - 24 - 2 * PK_HASH) / PK_HASH;
    if (n > PK_MERKLE_PATH_MAX)
        n = PK_MERKLE_PATH_MAX;
    memcpy(r1, data + 24, PK_HASH);
    memcpy(r2, data + 24 + PK_HASH, PK_HASH);
    for (size_t i = 0; i < n; i++)
        memcpy(path[i], data + 24 + 2 * PK_HASH + i * PK_HASH, PK_HASH);
    pk_merkle_leaf_hash(data, 24, leaf);
    (void)pk_merkle_verify_inclusion(leaf, u64(data), u64(data + 8),
                                     (const uint8_t(*)[PK_HASH])path, n, r1);
    (void)pk_merkle_verify_consistency(u64(data + 16), u64(data + 8), r1, r2,
                                       (const uint8_t(*)[PK_HASH])path, n);
    return 0;
}
