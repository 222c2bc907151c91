/*
 * The transparency log's tree against a straightforward computation: roots,
 * inclusion and consistency proofs over random trees of many sizes (every
 * size up to 300, and every size within 2 of a power of two up to 4097),
 * computed by recursion over the whole list of leaves exactly as RFC 6962
 * 2.1 writes it, compared byte for byte with the store-backed O(log n)
 * versions; then every proof is verified, and tampered ones are refused.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pk/merkle.h"

#define MAX_LEAVES 4200

/* --- the straightforward computation --------------------------------------- */

static uint8_t leaves[MAX_LEAVES][PK_HASH]; /* leaf hashes */

static size_t split(size_t n)
{
    size_t k = 1;

    while (k * 2 < n)
        k *= 2;
    return k;
}

/* MTH(D[lo:hi]) by recursion over the leaves */
static void naive_mth(size_t lo, size_t hi, uint8_t out[PK_HASH])
{
    uint8_t l[PK_HASH], r[PK_HASH];
    size_t k;

    if (hi - lo == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return;
    }
    if (hi - lo == 1) {
        memcpy(out, leaves[lo], PK_HASH);
        return;
    }
    k = split(hi - lo);
    naive_mth(lo, lo + k, l);
    naive_mth(lo + k, hi, r);
    pk_merkle_node_hash(l, r, out);
}

/* PATH(m, D[lo:hi]) */
static void naive_path(size_t m, size_t lo, size_t hi, uint8_t out[][PK_HASH], size_t *n)
{
    size_t k;

    if (hi - lo <= 1)
        return;
    k = split(hi - lo);
    if (m < k) {
        naive_path(m, lo, lo + k, out, n);
        naive_mth(lo + k, hi, out[(*n)++]);
    } else {
        naive_path(m - k, lo + k, hi, out, n);
        naive_mth(lo, lo + k, out[(*n)++]);
    }
}

/* SUBPROOF(m, D[lo:hi], b) */
static void naive_subproof(size_t m, size_t lo, size_t hi, bool b, uint8_t out[][PK_HASH],
                           size_t *n)
{
    size_t k;

    if (m == hi - lo) {
        if (!b)
            naive_mth(lo, hi, out[(*n)++]);
        return;
    }
    k = split(hi - lo);
    if (m <= k) {
        naive_subproof(m, lo, lo + k, b, out, n);
        naive_mth(lo + k, hi, out[(*n)++]);
    } else {
        naive_subproof(m - k, lo + k, hi, false, out, n);
        naive_mth(lo, lo + k, out[(*n)++]);
    }
}

/* --- a store in memory for the real thing ----------------------------------- */

static uint8_t (*nodes[64])[PK_HASH]; /* nodes[level][index] */
static int reads;

static pk_status mem_get(void *ctx, unsigned level, uint64_t index, uint8_t out[PK_HASH])
{
    reads++;
    if (!nodes[level] || index >= (uint64_t)(MAX_LEAVES >> level) + 1)
        return PK_ERR(PK_ENOTFOUND, "node %u/%llu", level, (unsigned long long)index);
    memcpy(out, nodes[level][index], PK_HASH);
    return PK_OK;
}

static pk_status mem_put(void *ctx, unsigned level, uint64_t index, const uint8_t h[PK_HASH])
{
    if (!nodes[level])
        nodes[level] = calloc((MAX_LEAVES >> level) + 1, PK_HASH);
    memcpy(nodes[level][index], h, PK_HASH);
    return PK_OK;
}

static const pk_merkle_io io = {mem_get, mem_put, NULL};
static size_t built; /* leaves appended so far */

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    srand(20261126);
    for (size_t i = 0; i < MAX_LEAVES; i++) {
        uint8_t data[40];
        size_t len = (size_t)rand() % sizeof(data);
        for (size_t b = 0; b < len; b++)
            data[b] = (uint8_t)rand();
        pk_merkle_leaf_hash(data, len, leaves[i]);
    }
    built = 0;
}

static void teardown(void)
{
    for (int l = 0; l < 64; l++) {
        free(nodes[l]);
        nodes[l] = NULL;
    }
}

TestSuite(merkle, .init = setup, .fini = teardown);

/* Grow the stored tree to n leaves. */
static void grow(size_t n)
{
    for (; built < n; built++)
        cr_assert_eq(pk_merkle_append(&io, built, leaves[built]), PK_OK);
}

/* Sizes: 1..300, and 2^k - 2 .. 2^k + 2 up to 4098. */
static size_t sizes[400];
static size_t n_sizes;

static void make_sizes(void)
{
    n_sizes = 0;
    for (size_t s = 1; s <= 300; s++)
        sizes[n_sizes++] = s;
    for (size_t p = 512; p <= 4096; p *= 2)
        for (size_t s = p - 2; s <= p + 2; s++)
            sizes[n_sizes++] = s;
}

Test(merkle, known_answers_from_rfc_hashing)
{
    uint8_t h[PK_HASH], e[PK_HASH];
    char hex[65];

    /* SHA-256 of the empty string is the root of the empty tree */
    cr_assert_eq(pk_merkle_root(&io, 0, h), PK_OK);
    crypto_hash_sha256(e, NULL, 0);
    cr_assert(memcmp(h, e, PK_HASH) == 0);
    /* the leaf hash of the empty string: SHA-256(0x00) */
    pk_merkle_leaf_hash(NULL, 0, h);
    sodium_bin2hex(hex, sizeof(hex), h, PK_HASH);
    cr_assert_str_eq(hex, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

Test(merkle, roots_match_the_straightforward_computation)
{
    make_sizes();
    for (size_t i = 0; i < n_sizes; i++) {
        uint8_t want[PK_HASH], got[PK_HASH];
        grow(sizes[i]);
        naive_mth(0, sizes[i], want);
        reads = 0;
        cr_assert_eq(pk_merkle_root(&io, sizes[i], got), PK_OK);
        cr_assert(memcmp(want, got, PK_HASH) == 0, "root of %zu leaves differs", sizes[i]);
        cr_assert_leq(reads, 64, "%d reads for the root of %zu leaves", reads, sizes[i]);
    }
}

Test(merkle, inclusion_proofs_match_and_verify)
{
    make_sizes();
    for (size_t i = 0; i < n_sizes; i++) {
        size_t size = sizes[i];
        uint8_t root[PK_HASH];
        grow(size);
        naive_mth(0, size, root);
        /* every leaf of small trees; a sample of 40 (first, last, random) of large ones */
        for (size_t t = 0; t < (size <= 64 ? size : 40); t++) {
            size_t m = size <= 64 ? t : t == 0 ? 0 : t == 1 ? size - 1 : (size_t)rand() % size;
            uint8_t want[PK_MERKLE_PATH_MAX][PK_HASH], got[PK_MERKLE_PATH_MAX][PK_HASH];
            size_t nw = 0, ng = 0;
            naive_path(m, 0, size, want, &nw);
            reads = 0;
            cr_assert_eq(pk_merkle_inclusion(&io, m, size, got, &ng), PK_OK);
            cr_assert_eq(ng, nw, "path length for leaf %zu of %zu", m, size);
            cr_assert(memcmp(want, got, nw * PK_HASH) == 0, "path of leaf %zu of %zu", m, size);
            cr_assert_leq(reads, 2 * 64, "%d reads for a path in %zu leaves", reads, size);
            cr_assert(pk_merkle_verify_inclusion(leaves[m], m, size, got, ng, root),
                      "leaf %zu of %zu does not verify", m, size);
            /* tampering: another leaf, another index, a flipped bit, a short path */
            cr_assert_not(
                pk_merkle_verify_inclusion(leaves[(m + 1) % MAX_LEAVES], m, size, got, ng, root));
            if (size > 1)
                cr_assert_not(
                    pk_merkle_verify_inclusion(leaves[m], (m + 1) % size, size, got, ng, root),
                    "leaf %zu of %zu verifies at another index", m, size);
            if (ng) {
                got[ng / 2][7] ^= 0x10;
                cr_assert_not(pk_merkle_verify_inclusion(leaves[m], m, size, got, ng, root));
                got[ng / 2][7] ^= 0x10;
                cr_assert_not(pk_merkle_verify_inclusion(leaves[m], m, size, got, ng - 1, root));
            }
        }
    }
}

Test(merkle, consistency_proofs_match_and_verify)
{
    make_sizes();
    grow(MAX_LEAVES);
    for (size_t i = 0; i < n_sizes; i++) {
        size_t second = sizes[i];
        uint8_t r2[PK_HASH];
        naive_mth(0, second, r2);
        for (size_t t = 0; t < (second <= 40 ? second + 1 : 30); t++) {
            size_t first = second <= 40 ? t
                           : t == 0     ? 1
                           : t == 1     ? second - 1
                                        : 1 + (size_t)rand() % second;
            uint8_t want[PK_MERKLE_PATH_MAX][PK_HASH], got[PK_MERKLE_PATH_MAX][PK_HASH];
            uint8_t r1[PK_HASH];
            size_t nw = 0, ng = 0;
            naive_mth(0, first, r1);
            if (first > 0 && first < second)
                naive_subproof(first, 0, second, true, want, &nw);
            reads = 0;
            cr_assert_eq(pk_merkle_consistency(&io, first, second, got, &ng), PK_OK);
            cr_assert_eq(ng, nw, "proof length %zu -> %zu", first, second);
            cr_assert(memcmp(want, got, nw * PK_HASH) == 0, "proof %zu -> %zu", first, second);
            cr_assert_leq(reads, 4 * 64, "%d reads for %zu -> %zu", reads, first, second);
            cr_assert(pk_merkle_verify_consistency(first, second, r1, r2, got, ng),
                      "%zu -> %zu does not verify", first, second);
            if (first > 0 && first < second) {
                uint8_t bad[PK_HASH];
                memcpy(bad, r1, PK_HASH);
                bad[0] ^= 1;
                cr_assert_not(pk_merkle_verify_consistency(first, second, bad, r2, got, ng));
                cr_assert_not(pk_merkle_verify_consistency(first, second, r1, bad, got, ng));
                got[ng - 1][31] ^= 0x80;
                cr_assert_not(pk_merkle_verify_consistency(first, second, r1, r2, got, ng),
                              "a flipped bit in %zu -> %zu verifies", first, second);
                got[ng - 1][31] ^= 0x80;
                cr_assert_not(pk_merkle_verify_consistency(first, second, r2, r1, got, ng),
                              "the roots swapped");
            }
        }
    }
}

Test(merkle, bad_arguments_are_refused)
{
    uint8_t p[PK_MERKLE_PATH_MAX][PK_HASH], h[PK_HASH] = {0};
    size_t n;

    grow(10);
    cr_assert_eq(pk_merkle_inclusion(&io, 10, 10, p, &n), PK_EINVAL);
    cr_assert_eq(pk_merkle_consistency(&io, 11, 10, p, &n), PK_EINVAL);
    cr_assert_not(pk_merkle_verify_inclusion(h, 3, 3, p, 0, h));
    cr_assert_not(pk_merkle_verify_consistency(5, 4, h, h, p, 0));
    cr_assert_not(pk_merkle_verify_consistency(3, 5, h, h, p, 0), "an empty proof for 3 -> 5");
}
