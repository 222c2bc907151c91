#include "pk/merkle.h"

#include <sodium.h>
#include <string.h>

void pk_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[PK_HASH])
{
    crypto_hash_sha256_state s;
    const uint8_t prefix = 0x00;

    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, &prefix, 1);
    crypto_hash_sha256_update(&s, data, len);
    crypto_hash_sha256_final(&s, out);
}

void pk_merkle_node_hash(const uint8_t left[PK_HASH], const uint8_t right[PK_HASH],
                         uint8_t out[PK_HASH])
{
    crypto_hash_sha256_state s;
    const uint8_t prefix = 0x01;

    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, &prefix, 1);
    crypto_hash_sha256_update(&s, left, PK_HASH);
    crypto_hash_sha256_update(&s, right, PK_HASH);
    crypto_hash_sha256_final(&s, out);
}

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_of(uint64_t n)
{
    uint64_t k = 1;

    while (k < n - k)
        k <<= 1;
    return k;
}

static bool is_pow2(uint64_t n)
{
    return n && !(n & (n - 1));
}

static unsigned log2_of(uint64_t n)
{
    unsigned l = 0;

    while (n >>= 1)
        l++;
    return l;
}

pk_status pk_merkle_append(const pk_merkle_io *io, uint64_t index, const uint8_t leaf_hash[PK_HASH])
{
    uint8_t cur[PK_HASH], left[PK_HASH];
    uint64_t i = index;
    pk_status st;

    memcpy(cur, leaf_hash, PK_HASH);
    if ((st = io->put(io->ctx, 0, index, cur)) != PK_OK)
        return st;
    /* an odd index at a level completes the pair with its left neighbour */
    for (unsigned level = 0; (i & 1) && level < 63; level++, i >>= 1) {
        if ((st = io->get(io->ctx, level, i - 1, left)) != PK_OK)
            return st;
        pk_merkle_node_hash(left, cur, cur);
        if ((st = io->put(io->ctx, level + 1, i >> 1, cur)) != PK_OK)
            return st;
    }
    return PK_OK;
}

/*
 * MTH(D[begin:end]) for a range the RFC 6962 recursion produces: a perfect
 * aligned subtree is one read; otherwise its left part is perfect and the
 * right part recurses, so O(log n) reads in all.
 */
static pk_status subtree(const pk_merkle_io *io, uint64_t begin, uint64_t end, uint8_t out[PK_HASH])
{
    uint64_t n = end - begin, k;
    uint8_t left[PK_HASH], right[PK_HASH];
    pk_status st;

    if (is_pow2(n) && begin % n == 0)
        return io->get(io->ctx, log2_of(n), begin / n, out);
    k = split_of(n);
    if ((st = io->get(io->ctx, log2_of(k), begin / k, left)) != PK_OK ||
        (st = subtree(io, begin + k, end, right)) != PK_OK)
        return st;
    pk_merkle_node_hash(left, right, out);
    return PK_OK;
}

pk_status pk_merkle_root(const pk_merkle_io *io, uint64_t size, uint8_t out[PK_HASH])
{
    if (size == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return PK_OK;
    }
    return subtree(io, 0, size, out);
}

pk_status pk_merkle_inclusion(const pk_merkle_io *io, uint64_t index, uint64_t size,
                              uint8_t path[][PK_HASH], size_t *n)
{
    uint8_t sib[PK_MERKLE_PATH_MAX][PK_HASH];
    uint64_t begin = 0, end = size;
    size_t k = 0;
    pk_status st;

    *n = 0;
    if (index >= size)
        return PK_ERR(PK_EINVAL, "leaf %llu is not in a tree of %llu leaves",
                      (unsigned long long)index, (unsigned long long)size);
    /* walk down from the root; siblings come out top first, the path wants them bottom first */
    while (end - begin > 1) {
        uint64_t split = split_of(end - begin);
        if (index < begin + split) {
            st = subtree(io, begin + split, end, sib[k]);
            end = begin + split;
        } else {
            st = subtree(io, begin, begin + split, sib[k]);
            begin += split;
        }
        if (st != PK_OK)
            return st;
        k++;
    }
    for (size_t i = 0; i < k; i++)
        memcpy(path[i], sib[k - 1 - i], PK_HASH);
    *n = k;
    return PK_OK;
}

/* SUBPROOF(m, D[begin:end], b) of RFC 6962 2.1.2, appended to path in order. */
static pk_status subproof(const pk_merkle_io *io, uint64_t m, uint64_t begin, uint64_t end,
                          bool whole, uint8_t path[][PK_HASH], size_t *n)
{
    uint64_t size = end - begin, k;
    uint8_t sib[PK_HASH];
    pk_status st;

    if (m == size) {
        if (whole)
            return PK_OK;
        if ((st = subtree(io, begin, end, path[*n])) != PK_OK)
            return st;
        (*n)++;
        return PK_OK;
    }
    k = split_of(size);
    if (m <= k) {
        if ((st = subproof(io, m, begin, begin + k, whole, path, n)) != PK_OK ||
            (st = subtree(io, begin + k, end, sib)) != PK_OK)
            return st;
    } else {
        if ((st = subproof(io, m - k, begin + k, end, false, path, n)) != PK_OK ||
            (st = subtree(io, begin, begin + k, sib)) != PK_OK)
            return st;
    }
    memcpy(path[(*n)++], sib, PK_HASH);
    return PK_OK;
}

pk_status pk_merkle_consistency(const pk_merkle_io *io, uint64_t first, uint64_t second,
                                uint8_t path[][PK_HASH], size_t *n)
{
    *n = 0;
    if (first > second)
        return PK_ERR(PK_EINVAL, "no consistency proof from %llu leaves back to %llu",
                      (unsigned long long)first, (unsigned long long)second);
    if (first == 0 || first == second)
        return PK_OK; /* nothing to prove */
    return subproof(io, first, 0, second, true, path, n);
}

/* One level up the tree: fn and sn right-shifted (RFC 9162 2.1.3.2). */
static void up(uint64_t *fn, uint64_t *sn)
{
    *fn >>= 1;
    *sn >>= 1;
}

/* Up until fn is a right child or 0: "until LSB(fn) is set or fn is 0". */
static void up_to_right(uint64_t *fn, uint64_t *sn)
{
    while (!(*fn & 1) && *fn != 0)
        up(fn, sn);
}

bool pk_merkle_verify_inclusion(const uint8_t leaf_hash[PK_HASH], uint64_t index, uint64_t size,
                                const uint8_t path[][PK_HASH], size_t n,
                                const uint8_t root[PK_HASH])
{
    uint64_t fn = index, sn;
    uint8_t r[PK_HASH];

    if (index >= size)
        return false;
    sn = size - 1;
    memcpy(r, leaf_hash, PK_HASH);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            pk_merkle_node_hash(path[i], r, r);
            up_to_right(&fn, &sn);
        } else {
            pk_merkle_node_hash(r, path[i], r);
        }
        up(&fn, &sn);
    }
    return sn == 0 && sodium_memcmp(r, root, PK_HASH) == 0;
}

bool pk_merkle_verify_consistency(uint64_t first, uint64_t second,
                                  const uint8_t first_root[PK_HASH],
                                  const uint8_t second_root[PK_HASH], const uint8_t path[][PK_HASH],
                                  size_t n)
{
    uint8_t fr[PK_HASH], sr[PK_HASH];
    const uint8_t *start;
    uint64_t fn, sn;
    size_t i;

    if (first > second)
        return false;
    if (first == second)
        return n == 0 && sodium_memcmp(first_root, second_root, PK_HASH) == 0;
    if (first == 0)
        return n == 0; /* the empty tree is a prefix of every tree */
    if (n == 0)
        return false;
    /* a first tree of a power-of-two size is itself a node of the second: its
     * root starts the path (RFC 9162 2.1.4.2 step 2) */
    i = 0;
    if (is_pow2(first)) {
        start = first_root;
    } else {
        start = path[0];
        i = 1;
    }
    fn = first - 1;
    sn = second - 1;
    while (fn & 1)
        up(&fn, &sn);
    memcpy(fr, start, PK_HASH);
    memcpy(sr, start, PK_HASH);
    for (; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            pk_merkle_node_hash(path[i], fr, fr);
            pk_merkle_node_hash(path[i], sr, sr);
            up_to_right(&fn, &sn);
        } else {
            pk_merkle_node_hash(sr, path[i], sr);
        }
        up(&fn, &sn);
    }
    return sn == 0 && sodium_memcmp(fr, first_root, PK_HASH) == 0 &&
           sodium_memcmp(sr, second_root, PK_HASH) == 0;
}
