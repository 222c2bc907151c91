/*
 * pk/wset.h - the writes of a batch, gathered in memory while the batch is
 * computed under a read transaction, then applied in one short write
 * transaction once the bus has acknowledged what the batch published. No
 * LMDB write transaction is open while a service waits on the network, so
 * partitions never queue behind another partition's slow acknowledgement.
 *
 * Reads through the set (pk_wset_get) see the batch's own writes first, then
 * the read transaction's snapshot. Each key keeps its last write.
 *
 * Ownership: a pk_wset owns copies of every key and value put into it. A
 * value returned by pk_wset_get is borrowed: from the set until its next
 * write or clear, or from LMDB until the transaction ends.
 */
#ifndef PK_WSET_H
#define PK_WSET_H

#include <lmdb.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/status.h"
#include "pk/store.h"

typedef struct pk_wset pk_wset;

/* An empty set; *out is written only on success. */
pk_status pk_wset_create(pk_wset **out) PK_MUST_CHECK;

/* Free the set and what it holds; NULL is a no-op. */
void pk_wset_destroy(pk_wset *ws);

/* Forget every write (keeps the memory for the next batch). */
void pk_wset_clear(pk_wset *ws);

/* Writes held. */
size_t pk_wset_count(const pk_wset *ws);

pk_status pk_wset_put(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                      size_t vlen) PK_MUST_CHECK;

/*
 * Put a value of vlen bytes that the caller writes into *buf right away
 * (like MDB_RESERVE): *buf is valid until the next write or clear of ws.
 */
pk_status pk_wset_put_reserve(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, size_t vlen,
                              void **buf) PK_MUST_CHECK;

/* Put m packed as the value. */
pk_status pk_wset_put_msg(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen,
                          const ProtobufCMessage *m) PK_MUST_CHECK;

/* Put v as 8 big-endian bytes under a text key (like pk_put_u64). */
pk_status pk_wset_put_u64(pk_wset *ws, MDB_dbi dbi, const char *key, uint64_t v) PK_MUST_CHECK;

/* Delete key when applied (absent keys are fine). */
pk_status pk_wset_del(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen) PK_MUST_CHECK;

/*
 * The value of key as the batch sees it: a write held by the set, else the
 * value in txn (a read or write transaction; NULL: the set only). PK_ENOTFOUND
 * if absent or deleted by the set.
 */
pk_status pk_wset_get(pk_wset *ws, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      MDB_val *val) PK_MUST_CHECK;

/* The u64 under a text key as the batch sees it (like pk_get_u64). */
pk_status pk_wset_get_u64(pk_wset *ws, MDB_txn *txn, MDB_dbi dbi, const char *key,
                          uint64_t *out) PK_MUST_CHECK;

/* Apply every write to txn, a write transaction (the set is kept). */
pk_status pk_wset_apply(const pk_wset *ws, MDB_txn *txn) PK_MUST_CHECK;

/*
 * Open a write transaction on store, apply the set, commit, and clear the
 * set on success. PK_ESTORE_FULL when the map is full (nothing is written).
 */
pk_status pk_wset_commit(pk_wset *ws, pk_store *store) PK_MUST_CHECK;

#endif
