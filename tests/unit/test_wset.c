/* The write set: reads see the batch's writes first; applying writes them all at once. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/store.h"
#include "pk/wset.h"

static char dir[64];
static pk_store *st;
static MDB_dbi a, b;
static pk_wset *ws;

static void init(void)
{
    MDB_txn *txn;

    snprintf(dir, sizeof(dir), "/tmp/pactum-wset-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert_eq(pk_store_open(&st, dir, 16, 4), PK_OK);
    cr_assert_eq(pk_store_dbi(st, "a", 0, &a), PK_OK);
    cr_assert_eq(pk_store_dbi(st, "b", 0, &b), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_put(txn, a, "old", 3, "stored", 6, 0), PK_OK);
    cr_assert_eq(pk_put(txn, a, "gone", 4, "x", 1, 0), PK_OK);
    cr_assert_eq(pk_txn_commit(txn), PK_OK);
    cr_assert_eq(pk_wset_create(&ws), PK_OK);
}

static void fini(void)
{
    pk_wset_destroy(ws);
    pk_store_close(st);
    h_remove_tree(dir);
}

TestSuite(wset, .init = init, .fini = fini);

static bool value_is(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *want)
{
    MDB_val v;

    if (pk_wset_get(ws, txn, dbi, key, strlen(key), &v) != PK_OK)
        return want == NULL;
    return want && v.mv_size == strlen(want) && memcmp(v.mv_data, want, v.mv_size) == 0;
}

Test(wset, reads_see_the_batch_first_and_the_snapshot_behind_it)
{
    MDB_txn *txn;

    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    cr_assert(value_is(txn, a, "old", "stored"));
    cr_assert_eq(pk_wset_put(ws, a, "new", 3, "fresh", 5), PK_OK);
    cr_assert_eq(pk_wset_put(ws, a, "old", 3, "changed", 7), PK_OK);
    cr_assert_eq(pk_wset_del(ws, a, "gone", 4), PK_OK);
    cr_assert(value_is(txn, a, "new", "fresh"));
    cr_assert(value_is(txn, a, "old", "changed"));
    cr_assert(value_is(txn, a, "gone", NULL));
    /* the same key in another database is another key */
    cr_assert(value_is(txn, b, "new", NULL));
    /* nothing is written until the set is committed */
    cr_assert(value_is(NULL, a, "old", "changed"));
    pk_txn_abort(txn);
    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    {
        MDB_val v;
        cr_assert_eq(pk_get(txn, a, "new", 3, &v), PK_ENOTFOUND);
    }
    pk_txn_abort(txn);
    cr_assert_eq(pk_wset_count(ws), 3);
}

Test(wset, commit_writes_everything_and_empties_the_set)
{
    MDB_txn *txn;
    MDB_val v;
    uint64_t n = 0;

    cr_assert_eq(pk_wset_put(ws, a, "new", 3, "fresh", 5), PK_OK);
    cr_assert_eq(pk_wset_put(ws, a, "new", 3, "fresher", 7), PK_OK); /* the last write wins */
    cr_assert_eq(pk_wset_del(ws, a, "gone", 4), PK_OK);
    cr_assert_eq(pk_wset_del(ws, a, "never-there", 11), PK_OK);
    cr_assert_eq(pk_wset_put_u64(ws, b, "applied", 42), PK_OK);
    cr_assert_eq(pk_wset_commit(ws, st), PK_OK);
    cr_assert_eq(pk_wset_count(ws), 0);
    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    cr_assert_eq(pk_get(txn, a, "new", 3, &v), PK_OK);
    cr_assert_eq(v.mv_size, 7);
    cr_assert_eq(memcmp(v.mv_data, "fresher", 7), 0);
    cr_assert_eq(pk_get(txn, a, "gone", 4, &v), PK_ENOTFOUND);
    cr_assert_eq(pk_get(txn, a, "old", 3, &v), PK_OK);
    cr_assert_eq(pk_get_u64(txn, b, "applied", &n), PK_OK);
    cr_assert_eq(n, 42);
    cr_assert_eq(pk_wset_get_u64(ws, txn, b, "applied", &n), PK_OK);
    cr_assert_eq(n, 42);
    pk_txn_abort(txn);
}

Test(wset, many_keys_grow_the_table_and_all_are_found)
{
    char key[32], val[32];
    MDB_txn *txn;

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cr_assert_eq(pk_wset_put(ws, i % 2 ? a : b, key, strlen(key), val, strlen(val)), PK_OK);
    }
    cr_assert_eq(pk_wset_count(ws), 5000);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cr_assert(value_is(NULL, i % 2 ? a : b, key, val), "key %s", key);
        cr_assert(value_is(NULL, i % 2 ? b : a, key, NULL), "key %s in the other db", key);
    }
    cr_assert_eq(pk_wset_commit(ws, st), PK_OK);
    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    for (int i = 0; i < 5000; i += 13) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cr_assert(value_is(txn, i % 2 ? a : b, key, val), "key %s after commit", key);
    }
    pk_txn_abort(txn);
}

Test(wset, a_key_lmdb_cannot_store_is_refused_up_front)
{
    char big[600];

    memset(big, 'k', sizeof(big));
    cr_assert_eq(pk_wset_put(ws, a, big, sizeof(big), "v", 1), PK_EINVAL);
    cr_assert_eq(pk_wset_put(ws, a, "", 0, "v", 1), PK_EINVAL);
    cr_assert_eq(pk_wset_count(ws), 0);
}

Test(wset, a_full_map_is_reported_and_nothing_is_written)
{
    static char val[64 * 1024];
    pk_store *small = NULL;
    char sdir[64], key[16];
    MDB_dbi d;
    MDB_txn *txn;
    MDB_val v;
    pk_status s = PK_OK;

    snprintf(sdir, sizeof(sdir), "/tmp/pactum-wset-XXXXXX");
    cr_assert(mkdtemp(sdir) != NULL);
    cr_assert_eq(pk_store_open(&small, sdir, 1, 2), PK_OK);
    cr_assert_eq(pk_store_dbi(small, "d", 0, &d), PK_OK);
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        cr_assert_eq(pk_wset_put(ws, d, key, strlen(key), val, sizeof(val)), PK_OK);
    }
    s = pk_wset_commit(ws, small);
    cr_assert_eq(s, PK_ESTORE_FULL, "%s", pk_status_str(s));
    cr_assert_eq(pk_wset_count(ws), 40, "the set is kept for a retry");
    cr_assert_eq(pk_txn_begin(small, false, &txn), PK_OK);
    cr_assert_eq(pk_get(txn, d, "k0", 2, &v), PK_ENOTFOUND);
    pk_txn_abort(txn);
    pk_store_close(small);
    h_remove_tree(sdir);
}

Test(wset, a_value_read_from_the_set_can_be_written_back_while_it_grows)
{
    static char big[3000];
    MDB_val v;
    char key[16];

    memset(big, 'v', sizeof(big));
    cr_assert_eq(pk_wset_put(ws, a, "first", 5, big, sizeof(big)), PK_OK);
    /* the value and the key it is read from live in the set; writing them again under other
     * keys grows it, so it must copy them before it moves */
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(pk_wset_get(ws, NULL, a, "first", 5, &v), PK_OK);
        snprintf(key, sizeof(key), "copy%d", i);
        cr_assert_eq(pk_wset_put(ws, b, key, strlen(key), v.mv_data, v.mv_size), PK_OK);
        cr_assert_eq(pk_wset_get(ws, NULL, b, key, strlen(key), &v), PK_OK);
        cr_assert_eq(v.mv_size, sizeof(big));
        cr_assert(memcmp(v.mv_data, big, sizeof(big)) == 0, "copy %d", i);
    }
    cr_assert_eq(pk_wset_put(ws, a, "key-from-value", 14, "x", 1), PK_OK);
    cr_assert_eq(pk_wset_get(ws, NULL, a, "first", 5, &v), PK_OK);
    cr_assert_eq(pk_wset_put(ws, b, v.mv_data, 100, "y", 1), PK_OK);
    cr_assert_eq(pk_wset_get(ws, NULL, b, big, 100, &v), PK_OK, "a key taken from a value");
    cr_assert_eq(pk_wset_count(ws), 11);
}
