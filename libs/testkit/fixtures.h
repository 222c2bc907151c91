/*
 * In-memory fixtures for unit tests, fuzzers and benchmarks: messages built
 * the same way everywhere, with no server behind them.
 */
#ifndef PK_FIXTURES_H
#define PK_FIXTURES_H

#include <stdint.h>

#include "pk/codec.h"
#include "pk/merkle.h"

/* An event with room for one metric and one label of its own. */
typedef struct h_event {
    pk_event_msg ev;
    Pactum__V1__Metric metric, *metricp[1];
    Pactum__V1__Label label, *labelp[1];
} h_event;

/*
 * Fill e with event "e" of agent, self-reported at ts_ms, of kind; with one
 * metric when metric is not NULL and one label when label is not NULL.
 * Returns &e->ev, which points into e.
 */
pk_event_msg *h_event_set(h_event *e, const char *agent, int64_t ts_ms, const char *kind,
                          const char *metric, double value, const char *label,
                          const char *label_value);

/* A Merkle tree in memory (pk/merkle.h), for logs made up by a test. */
#define H_TREE_LEAVES 512
typedef struct h_tree {
    uint8_t nodes[10][H_TREE_LEAVES][PK_HASH]; /* nodes[level][index] */
    uint64_t size;                             /* leaves */
    pk_merkle_io io;                           /* reads and writes nodes */
} h_tree;

/* Empty t. */
void h_tree_reset(h_tree *t);

/* Append a leaf's bytes; its leaf hash into hash when not NULL. */
void h_tree_add(h_tree *t, const void *leaf, size_t len, uint8_t *hash);

/* Remove a folder and everything in it (no-op for "" or a missing folder). */
void h_remove_tree(const char *dir);

#endif
