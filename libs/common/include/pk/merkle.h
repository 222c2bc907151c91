/*
 * merkle - the transparency log's tree: RFC 6962 / RFC 9162 hashing, inclusion
 * and consistency proofs, and their verification.
 *
 * Leaf hash: SHA-256(0x00 || data). Node hash: SHA-256(0x01 || left || right).
 * The tree of n leaves splits at the largest power of two below n, so every
 * left subtree is perfect and aligned. The store keeps the hash of every
 * perfect aligned subtree, (level, index) = the 2^level leaves starting at
 * index * 2^level; proofs and roots then need O(log n) reads of it.
 */
#ifndef PK_MERKLE_H
#define PK_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/crypto.h"
#include "pk/status.h"

#define PK_HASH            32
#define PK_MERKLE_PATH_MAX 66 /* proof elements: at most the depth (64), plus one */

/* Read the hash of the perfect subtree (level, index) into out. */
typedef pk_status (*pk_node_get_fn)(void *ctx, unsigned level, uint64_t index,
                                    uint8_t out[PK_HASH]);
/* Store the hash of the perfect subtree (level, index). */
typedef pk_status (*pk_node_put_fn)(void *ctx, unsigned level, uint64_t index,
                                    const uint8_t hash[PK_HASH]);

typedef struct pk_merkle_io {
    pk_node_get_fn get;
    pk_node_put_fn put; /* only for appending */
    void *ctx;
} pk_merkle_io;

void pk_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[PK_HASH]);
void pk_merkle_node_hash(const uint8_t left[PK_HASH], const uint8_t right[PK_HASH],
                         uint8_t out[PK_HASH]);

/*
 * Append the leaf with this hash as leaf number `index` (the tree had `index`
 * leaves): stores it and every perfect subtree it completes.
 */
pk_status pk_merkle_append(const pk_merkle_io *io, uint64_t index,
                           const uint8_t leaf_hash[PK_HASH]) PK_MUST_CHECK;

/* The root of the first `size` leaves (size 0: SHA-256 of nothing). */
pk_status pk_merkle_root(const pk_merkle_io *io, uint64_t size, uint8_t out[PK_HASH]) PK_MUST_CHECK;

/* The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1). */
pk_status pk_merkle_inclusion(const pk_merkle_io *io, uint64_t index, uint64_t size,
                              uint8_t path[][PK_HASH], size_t *n) PK_MUST_CHECK;

/* The consistency proof from size `first` to size `second` (RFC 9162 2.1.4.1). */
pk_status pk_merkle_consistency(const pk_merkle_io *io, uint64_t first, uint64_t second,
                                uint8_t path[][PK_HASH], size_t *n) PK_MUST_CHECK;

/* RFC 9162 2.1.3.2: does the path prove the leaf at index is in the tree with this root? */
bool pk_merkle_verify_inclusion(const uint8_t leaf_hash[PK_HASH], uint64_t index, uint64_t size,
                                const uint8_t path[][PK_HASH], size_t n,
                                const uint8_t root[PK_HASH]);

/* RFC 9162 2.1.4.2: is the tree (second, second_root) an extension of (first, first_root)? */
bool pk_merkle_verify_consistency(uint64_t first, uint64_t second,
                                  const uint8_t first_root[PK_HASH],
                                  const uint8_t second_root[PK_HASH], const uint8_t path[][PK_HASH],
                                  size_t n);

#endif
