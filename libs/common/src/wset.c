/*
 * The write set: an open-addressing hash table from (dbi, key) to the last
 * value written (or a deletion), with the entries also kept in the order of
 * their first write, so that applying them is a straight walk.
 */
#include "pk/wset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct wentry {
    MDB_dbi dbi;   /* database */
    size_t key;    /* offset of the key in the arena */
    size_t klen;   /* key length */
    size_t val;    /* offset of the value in the arena */
    size_t vlen;   /* value length */
    bool deleted;  /* a deletion, not a value */
    uint32_t hash; /* of (dbi, key) */
} wentry;

struct pk_wset {
    wentry *e;      /* entries, in order of first write */
    size_t n, cap;  /* used and allocated entries */
    uint32_t *slot; /* hash table: entry index + 1, 0 = empty */
    size_t nslots;  /* a power of two, at least twice cap */
    uint8_t *arena; /* keys and values, one after another; kept across batches */
    size_t used;    /* bytes of the arena in use */
    size_t size;    /* bytes allocated */
};

static uint32_t hash_of(MDB_dbi dbi, const uint8_t *key, size_t klen)
{
    uint32_t h = 2166136261u ^ (uint32_t)dbi;

    for (size_t i = 0; i < klen; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

pk_status pk_wset_create(pk_wset **out)
{
    pk_wset *ws = calloc(1, sizeof(*ws));

    if (!ws)
        return PK_ERR(PK_ENOMEM, "cannot allocate a write set");
    *out = ws;
    return PK_OK;
}

void pk_wset_clear(pk_wset *ws)
{
    if (!ws)
        return;
    ws->n = 0;
    ws->used = 0;
    if (ws->slot)
        memset(ws->slot, 0, ws->nslots * sizeof(*ws->slot));
}

void pk_wset_destroy(pk_wset *ws)
{
    if (!ws)
        return;
    free(ws->e);
    free(ws->slot);
    free(ws->arena);
    free(ws);
}

size_t pk_wset_count(const pk_wset *ws)
{
    return ws ? ws->n : 0;
}

/* The slot of (dbi, key): holding it, or the empty one where it would go. */
static uint32_t *find(const pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, uint32_t h)
{
    size_t mask = ws->nslots - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t *s = &ws->slot[i];
        const wentry *e;
        if (*s == 0)
            return s;
        e = &ws->e[*s - 1];
        if (e->hash == h && e->dbi == dbi && e->klen == klen &&
            memcmp(ws->arena + e->key, key, klen) == 0)
            return s;
    }
}

/* Room for one more entry, growing the table when it is half full. */
static pk_status make_room(pk_wset *ws)
{
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 64;
        wentry *e = realloc(ws->e, cap * sizeof(*e));
        if (!e)
            return PK_ERR(PK_ENOMEM, "cannot grow a write set to %zu entries", cap);
        ws->e = e;
        ws->cap = cap;
    }
    if (ws->nslots < 2 * ws->cap) {
        size_t nslots = ws->nslots ? ws->nslots : 128;
        uint32_t *slot;
        while (nslots < 2 * ws->cap)
            nslots *= 2;
        if (!(slot = calloc(nslots, sizeof(*slot))))
            return PK_ERR(PK_ENOMEM, "cannot grow a write set's table to %zu slots", nslots);
        free(ws->slot);
        ws->slot = slot;
        ws->nslots = nslots;
        for (size_t i = 0; i < ws->n; i++)
            *find(ws, ws->e[i].dbi, ws->arena + ws->e[i].key, ws->e[i].klen, ws->e[i].hash) =
                (uint32_t)(i + 1);
    }
    return PK_OK;
}

/* n bytes at the end of the arena; their offset in *off. */
static pk_status take(pk_wset *ws, size_t n, size_t *off)
{
    if (n > ws->size - ws->used) {
        size_t size = ws->size ? ws->size : 4096;
        uint8_t *a;
        while (size - ws->used < n)
            size *= 2;
        if (!(a = realloc(ws->arena, size)))
            return PK_ERR(PK_ENOMEM, "cannot grow a write set to %zu bytes", size);
        ws->arena = a;
        ws->size = size;
    }
    *off = ws->used;
    ws->used += n;
    return PK_OK;
}

/* The offset of p in the arena, or -1 when it is not in it. */
static ptrdiff_t inside(const pk_wset *ws, const void *p)
{
    const uint8_t *b = p;

    return ws->arena && b >= ws->arena && b < ws->arena + ws->used ? b - ws->arena : -1;
}

/*
 * Record a write of vlen bytes from val; with val NULL, a deletion unless
 * reserve is set, in which case *reserve receives the room to fill.
 */
static pk_status record(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                        size_t vlen, void **reserve)
{
    uint32_t h = hash_of(dbi, key, klen), *s;
    bool deletion = !val && !reserve;
    size_t koff = 0, voff = 0;
    wentry *e;
    pk_status st;

    if (klen == 0 || klen > 511)
        return PK_ERR(PK_EINVAL, "an LMDB key is 1 to 511 bytes, not %zu", klen);
    /* the caller's key or value may have come from this arena (pk_wset_get), which may move */
    ptrdiff_t kin = inside(ws, key), vin = val ? inside(ws, val) : -1;

    if ((st = make_room(ws)) != PK_OK)
        return st;
    s = find(ws, dbi, key, klen, h);
    if (!*s && (st = take(ws, klen, &koff)) != PK_OK)
        return st;
    if (!*s)
        memcpy(ws->arena + koff, kin >= 0 ? ws->arena + kin : (const uint8_t *)key, klen);
    if (!deletion && (st = take(ws, vlen, &voff)) != PK_OK)
        return st;
    if (val && vlen)
        memcpy(ws->arena + voff, vin >= 0 ? ws->arena + vin : (const uint8_t *)val, vlen);
    if (*s) {
        e = &ws->e[*s - 1];
    } else {
        e = &ws->e[ws->n];
        e->key = koff;
        e->klen = klen;
        e->dbi = dbi;
        e->hash = h;
        *s = (uint32_t)++ws->n;
    }
    e->deleted = deletion;
    e->val = voff;
    e->vlen = deletion ? 0 : vlen;
    if (reserve)
        *reserve = ws->arena + voff;
    return PK_OK;
}

pk_status pk_wset_put(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    return record(ws, dbi, key, klen, val ? val : "", val ? vlen : 0, NULL);
}

pk_status pk_wset_put_reserve(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen, size_t vlen,
                              void **buf)
{
    return record(ws, dbi, key, klen, NULL, vlen, buf);
}

pk_status pk_wset_put_msg(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen,
                          const ProtobufCMessage *m)
{
    void *buf = NULL;
    pk_status st = record(ws, dbi, key, klen, NULL, protobuf_c_message_get_packed_size(m), &buf);

    if (st == PK_OK)
        protobuf_c_message_pack(m, buf);
    return st;
}

pk_status pk_wset_put_u64(pk_wset *ws, MDB_dbi dbi, const char *key, uint64_t v)
{
    uint8_t buf[8];

    pk_be64_put(buf, v);
    return record(ws, dbi, key, strlen(key), buf, 8, NULL);
}

pk_status pk_wset_del(pk_wset *ws, MDB_dbi dbi, const void *key, size_t klen)
{
    return record(ws, dbi, key, klen, NULL, 0, NULL);
}

pk_status pk_wset_get(pk_wset *ws, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      MDB_val *val)
{
    if (ws->n) {
        uint32_t *s = find(ws, dbi, key, klen, hash_of(dbi, key, klen));
        if (*s) {
            const wentry *e = &ws->e[*s - 1];
            if (e->deleted)
                return PK_ENOTFOUND;
            val->mv_data = ws->arena + e->val;
            val->mv_size = e->vlen;
            return PK_OK;
        }
    }
    return txn ? pk_get(txn, dbi, key, klen, val) : PK_ENOTFOUND;
}

pk_status pk_wset_get_u64(pk_wset *ws, MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
    MDB_val v;
    pk_status st = pk_wset_get(ws, txn, dbi, key, strlen(key), &v);

    if (st != PK_OK)
        return st;
    if (v.mv_size != 8)
        return PK_ERR(PK_ESTORE, "value of '%s' is %zu bytes, expected 8", key, v.mv_size);
    *out = pk_be64_get(v.mv_data);
    return PK_OK;
}

pk_status pk_wset_apply(const pk_wset *ws, MDB_txn *txn)
{
    pk_status st = PK_OK;

    for (size_t i = 0; i < ws->n && st == PK_OK; i++) {
        const wentry *e = &ws->e[i];
        st = e->deleted
                 ? pk_del(txn, e->dbi, ws->arena + e->key, e->klen)
                 : pk_put(txn, e->dbi, ws->arena + e->key, e->klen, ws->arena + e->val, e->vlen, 0);
    }
    return st;
}

pk_status pk_wset_commit(pk_wset *ws, pk_store *store)
{
    MDB_txn *txn = NULL;
    pk_status st;

    if (ws->n == 0)
        return PK_OK;
    if ((st = pk_txn_begin(store, true, &txn)) != PK_OK)
        return st;
    if ((st = pk_wset_apply(ws, txn)) != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    if ((st = pk_txn_commit(txn)) != PK_OK)
        return st;
    pk_wset_clear(ws);
    return PK_OK;
}
