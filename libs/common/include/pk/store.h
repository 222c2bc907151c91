/*
 * pk/store.h - thin LMDB helpers: open an environment in a folder, convert
 * LMDB codes to pk_status once, store protobuf messages and counters.
 *
 * Ownership: values returned in an MDB_val are borrowed from LMDB and valid
 * only until the transaction ends or the next write in it. Messages returned
 * by pk_get_msg are owned by the caller (protobuf_c_message_free_unpacked).
 */
#ifndef PK_STORE_H
#define PK_STORE_H

#include <lmdb.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/status.h"

typedef struct pk_store {
    MDB_env *env;     /* the environment */
    char path[4096];  /* its folder */
    size_t map_bytes; /* configured map size */
} pk_store;

/*
 * Open (creating the folder if needed) an LMDB environment of map_mb MiB with
 * room for max_dbs named databases. *out is owned by the caller and released
 * with pk_store_close. Writes are synced on commit.
 */
pk_status pk_store_open(pk_store **out, const char *dir, size_t map_mb,
                        unsigned max_dbs) PK_MUST_CHECK;

/* Make folder dir and its parents (mode 0700) where missing. */
pk_status pk_mkdir_p(const char *dir) PK_MUST_CHECK;

/* Close the environment; NULL is a no-op. No transaction may be open. */
void pk_store_close(pk_store *s);

/*
 * Read one byte of every page in use, up to max_bytes from the start of the
 * file, so that this process has them mapped before a query needs them: the
 * first read of a page after a start costs a fault (tens of microseconds on a
 * virtual machine), which a large read model would otherwise pay on most
 * queries for a long while. Nothing is copied: the pages stay the file's, in
 * the page cache. Stops early when *stop is set; returns the bytes read. Call
 * it from a thread of its own, and join that thread before pk_store_close.
 */
size_t pk_store_warm(pk_store *s, size_t max_bytes, const atomic_bool *stop);

/* Open or create the named database (flags: MDB_DUPSORT, MDB_INTEGERKEY ...). */
pk_status pk_store_dbi(pk_store *s, const char *name, unsigned flags, MDB_dbi *out) PK_MUST_CHECK;

/* A named database to open with pk_store_dbis. */
typedef struct pk_dbi_spec {
    const char *name; /* its name */
    unsigned flags;   /* MDB_DUPSORT ... */
    MDB_dbi *dbi;     /* receives the handle */
} pk_dbi_spec;

/* Open or create n named databases, stopping at the first failure. */
pk_status pk_store_dbis(pk_store *s, const pk_dbi_spec *specs, size_t n) PK_MUST_CHECK;

pk_status pk_txn_begin(pk_store *s, bool write, MDB_txn **out) PK_MUST_CHECK;

/* Commit; MDB_MAP_FULL becomes PK_ESTORE_FULL. The txn is gone either way. */
pk_status pk_txn_commit(MDB_txn *txn) PK_MUST_CHECK;

/* Abort; NULL is a no-op. */
void pk_txn_abort(MDB_txn *txn);

/* Convert an LMDB return code (not MDB_SUCCESS) into a recorded pk_status. */
pk_status pk_store_err(int rc, const char *what) PK_MUST_CHECK;

/* PK_ENOTFOUND if absent. val is borrowed (see above). */
pk_status pk_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                 MDB_val *val) PK_MUST_CHECK;
pk_status pk_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                 size_t vlen, unsigned flags) PK_MUST_CHECK;
/* PK_OK also when the key was absent. */
pk_status pk_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen) PK_MUST_CHECK;

/* Unsigned 64-bit values stored big-endian (so they sort as numbers too). */
pk_status pk_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out) PK_MUST_CHECK;
pk_status pk_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v) PK_MUST_CHECK;
/*
 * The key "id \0 be64(n)" (an id, then a number that sorts) into buf, which
 * holds strlen(id) + 9 bytes; returns its length. Histories keyed by agent
 * and sequence use it, so an agent's entries are contiguous and in order.
 */
size_t pk_key_id_u64(uint8_t *buf, const char *id, uint64_t n);

/* Is k a key "id \0 be64(n)" of this id (made by pk_key_id_u64)? */
bool pk_key_has_id(const MDB_val *k, const char *id);

/* The u64 under key, or def when it is absent (or not 8 bytes). */
uint64_t pk_get_u64_or(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t def);
void pk_be64_put(uint8_t out[8], uint64_t v);
uint64_t pk_be64_get(const uint8_t in[8]);
void pk_be32_put(uint8_t out[4], uint32_t v);
uint32_t pk_be32_get(const uint8_t in[4]);

/* Store a protobuf message as the value, packed straight into LMDB's page. */
pk_status pk_put_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                     const ProtobufCMessage *msg) PK_MUST_CHECK;

/* Decode the value under key with desc; *out is owned by the caller. */
pk_status pk_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out) PK_MUST_CHECK;

/* Bytes in use (pages * page size) and the map size, for metrics. */
pk_status pk_store_usage(pk_store *s, uint64_t *used, uint64_t *map) PK_MUST_CHECK;

#endif
