/* LMDB helpers: values, counters, messages, and a full map. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pactum/v1/pactum.pb-c.h"
#include "fixtures.h"
#include "harness.h"
#include "pk/store.h"

static char dir[64];
static pk_store *st;

static void open_store(size_t mb)
{
    snprintf(dir, sizeof(dir), "/tmp/pactum-store-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert_eq(pk_store_open(&st, dir, mb, 4), PK_OK);
}

static void init(void)
{
    open_store(16);
}

static void fini(void)
{
    pk_store_close(st);
    h_remove_tree(dir);
}

TestSuite(store, .init = init, .fini = fini);

Test(store, put_get_delete)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_val v;

    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_put(txn, dbi, "k", 1, "value", 5, 0), PK_OK);
    cr_assert_eq(pk_put(txn, dbi, "k", 1, "other", 5, MDB_NOOVERWRITE), PK_EEXIST);
    cr_assert_eq(pk_txn_commit(txn), PK_OK);
    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    cr_assert_eq(pk_get(txn, dbi, "k", 1, &v), PK_OK);
    cr_assert_eq(v.mv_size, 5);
    cr_assert(memcmp(v.mv_data, "value", 5) == 0);
    cr_assert_eq(pk_get(txn, dbi, "nope", 4, &v), PK_ENOTFOUND);
    pk_txn_abort(txn);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_del(txn, dbi, "k", 1), PK_OK);
    cr_assert_eq(pk_del(txn, dbi, "k", 1), PK_OK, "deleting a missing key is not an error");
    cr_assert_eq(pk_get(txn, dbi, "k", 1, &v), PK_ENOTFOUND);
    pk_txn_abort(txn);
}

Test(store, aborted_transaction_leaves_nothing)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    uint64_t n = 0;

    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_put_u64(txn, dbi, "seq", 41), PK_OK);
    pk_txn_abort(txn);
    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    cr_assert_eq(pk_get_u64(txn, dbi, "seq", &n), PK_ENOTFOUND);
    pk_txn_abort(txn);
}

Test(store, u64_values_are_big_endian_and_round_trip)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_val v;
    uint64_t n = 0;

    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_put_u64(txn, dbi, "seq", 0x0102030405060708ull), PK_OK);
    cr_assert_eq(pk_get(txn, dbi, "seq", 3, &v), PK_OK);
    cr_assert_eq(((uint8_t *)v.mv_data)[0], 0x01);
    cr_assert_eq(pk_get_u64(txn, dbi, "seq", &n), PK_OK);
    cr_assert_eq(n, 0x0102030405060708ull);
    cr_assert_eq(pk_put(txn, dbi, "bad", 3, "xyz", 3, 0), PK_OK);
    cr_assert_eq(pk_get_u64(txn, dbi, "bad", &n), PK_ESTORE, "a 3-byte value is not a u64");
    pk_txn_abort(txn);
}

Test(store, protobuf_messages_round_trip)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    Pactum__V1__Event ev = PACTUM__V1__EVENT__INIT, *back = NULL;

    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    ev.event_id = "e-1";
    ev.agent_id = "bot";
    ev.ts_ms = 123;
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_put_msg(txn, dbi, "e", 1, &ev.base), PK_OK);
    cr_assert_eq(
        pk_get_msg(txn, dbi, "e", 1, &pactum__v1__event__descriptor, (ProtobufCMessage **)&back),
        PK_OK);
    cr_assert_str_eq(back->event_id, "e-1");
    cr_assert_eq(back->ts_ms, 123);
    pactum__v1__event__free_unpacked(back, NULL);
    pk_txn_abort(txn);
}

Test(store, full_map_is_reported_as_store_full)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    char key[32], val[4000];
    pk_status s = PK_OK;

    pk_store_close(st);
    h_remove_tree(dir);
    open_store(1);
    memset(val, 'v', sizeof(val));
    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    for (int i = 0; i < 1000 && s == PK_OK; i++) {
        snprintf(key, sizeof(key), "k%06d", i);
        s = pk_put(txn, dbi, key, strlen(key), val, sizeof(val), 0);
    }
    cr_assert_eq(s, PK_ESTORE_FULL, "4 MB of values cannot fit a 1 MiB map");
    cr_assert(strstr(pk_error_msg(), "PACTUM_LMDB_MAP_MB") != NULL, "%s", pk_error_msg());
    pk_txn_abort(txn);
}

/* Read every value of dbi; the bytes read. */
static size_t read_all(MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t bytes = 0;
    unsigned sum = 0;

    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, bytes ? MDB_NEXT : MDB_FIRST) == 0) {
        sum += ((const unsigned char *)v.mv_data)[v.mv_size - 1];
        bytes += v.mv_size;
    }
    (void)sum;
    mdb_cursor_close(cur);
    pk_txn_abort(txn);
    return bytes;
}

#define RECORDS 60000

Test(store, warming_maps_the_pages_in_use_so_that_reads_after_it_do_not_fault)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    char key[16], val[200];
    atomic_bool stop = true;
    long long before, read_faults;
    size_t warmed;

    pk_store_close(st);
    cr_assert_eq(pk_store_open(&st, dir, 64, 4), PK_OK);
    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < RECORDS; i++) { /* about 12 MiB in some 4,000 pages */
        snprintf(key, sizeof(key), "k%07d", i);
        cr_assert_eq(pk_put(txn, dbi, key, strlen(key), val, sizeof(val), 0), PK_OK);
    }
    cr_assert_eq(pk_txn_commit(txn), PK_OK);
    /* a fresh mapping, as after a start */
    pk_store_close(st);
    cr_assert_eq(pk_store_open(&st, dir, 64, 4), PK_OK);
    cr_assert_eq(pk_store_dbi(st, "t", 0, &dbi), PK_OK);

    cr_assert_eq(pk_store_warm(st, SIZE_MAX, &stop), 0, "asked to stop, it reads nothing");
    cr_assert_eq(pk_store_warm(st, 64 * 1024, NULL), 64 * 1024, "no more than it is allowed");
    warmed = pk_store_warm(st, SIZE_MAX, NULL);
    cr_assert_geq(warmed, (size_t)RECORDS * sizeof(val), "warmed only %zu bytes", warmed);
    cr_assert_leq(warmed, (size_t)64 << 20, "warmed %zu bytes, past the map", warmed);
    before = h_page_faults(0);
    cr_assert_geq(read_all(dbi), (size_t)RECORDS * sizeof(val));
    read_faults = h_page_faults(0) - before;
    cr_assert_lt(read_faults, 64, "%lld page faults reading a warmed store of %zu bytes",
                 read_faults, warmed);
}
