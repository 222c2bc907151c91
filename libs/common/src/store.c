#include "pk/store.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

pk_status pk_store_err(int rc, const char *what)
{
    if (rc == MDB_NOTFOUND)
        return PK_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        return PK_ERR(PK_ESTORE_FULL,
                      "%s: the LMDB map is full; raise PACTUM_LMDB_MAP_MB and restart (nothing "
                      "was acknowledged)",
                      what);
    return PK_ERR(PK_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

pk_status pk_mkdir_p(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(buf))
        return PK_ERR(PK_EINVAL, "bad data folder '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return PK_ERR(PK_EIO, "cannot create folder %s: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return PK_OK;
}

/* Where this process maps the store's data file, and how long the mapping is (NULL: not found).
 * LMDB names the address only for a fixed map, so it is looked up in /proc/self/maps. */
static const volatile unsigned char *map_of(const pk_store *s, size_t *len)
{
    char want[PATH_MAX + 16], real[PATH_MAX], line[PATH_MAX + 128], path[PATH_MAX];
    const volatile unsigned char *map = NULL;
    unsigned long from, to;
    FILE *f;

    if (!realpath(s->path, real))
        return NULL;
    snprintf(want, sizeof(want), "%s/data.mdb", real);
    if (!(f = fopen("/proc/self/maps", "r")))
        return NULL;
    while (!map && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %4095[^\n]", &from, &to, path) == 3 &&
            strcmp(path, want) == 0) {
            map = (const volatile unsigned char *)(uintptr_t)from;
            *len = to - from;
        }
    }
    fclose(f);
    return map;
}

size_t pk_store_warm(pk_store *s, size_t max_bytes, const atomic_bool *stop)
{
    MDB_envinfo info;
    MDB_stat est;
    const volatile unsigned char *map;
    size_t used, page, mapped = 0;
    unsigned sum = 0;

    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &est) != 0 ||
        !(map = map_of(s, &mapped)))
        return 0;
    page = est.ms_psize ? est.ms_psize : 4096;
    used = ((size_t)info.me_last_pgno + 1) * page;
    if (used > mapped)
        used = mapped;
    if (used > max_bytes)
        used = max_bytes;
    for (size_t off = 0; off < used; off += page) {
        if ((off / page) % 4096 == 0 && stop && atomic_load(stop))
            return off;
        sum += map[off];
    }
    (void)sum;
    return used;
}

pk_status pk_store_open(pk_store **out, const char *dir, size_t map_mb, unsigned max_dbs)
{
    pk_store *s = calloc(1, sizeof(*s));
    pk_status st;
    int rc;

    if (!s)
        return PK_ERR(PK_ENOMEM, "cannot allocate store");
    if ((st = pk_mkdir_p(dir)) != PK_OK)
        goto fail;
    snprintf(s->path, sizeof(s->path), "%s", dir);
    s->map_bytes = map_mb * 1024 * 1024;
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, s->map_bytes)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, max_dbs)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 126)) != 0) {
        st = pk_store_err(rc, "LMDB environment setup");
        goto fail;
    }
    if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
        st = PK_ERR(PK_ESTORE, "cannot open LMDB environment in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    *out = s;
    return PK_OK;
fail:
    if (s->env)
        mdb_env_close(s->env);
    free(s);
    return st;
}

void pk_store_close(pk_store *s)
{
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    free(s);
}

pk_status pk_store_dbi(pk_store *s, const char *name, unsigned flags, MDB_dbi *out)
{
    MDB_txn *txn = NULL;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return pk_store_err(rc, "begin transaction to open a database");
    if ((rc = mdb_dbi_open(txn, name, flags | MDB_CREATE, out)) != 0) {
        mdb_txn_abort(txn);
        return pk_store_err(rc, name);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return pk_store_err(rc, name);
    return PK_OK;
}

pk_status pk_store_dbis(pk_store *s, const pk_dbi_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pk_status st = pk_store_dbi(s, specs[i].name, specs[i].flags, specs[i].dbi);
        if (st != PK_OK)
            return st;
    }
    return PK_OK;
}

pk_status pk_txn_begin(pk_store *s, bool write, MDB_txn **out)
{
    int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);

    return rc ? pk_store_err(rc, write ? "begin write transaction" : "begin read transaction")
              : PK_OK;
}

pk_status pk_txn_commit(MDB_txn *txn)
{
    int rc = mdb_txn_commit(txn);

    return rc ? pk_store_err(rc, "commit") : PK_OK;
}

void pk_txn_abort(MDB_txn *txn)
{
    if (txn)
        mdb_txn_abort(txn);
}

pk_status pk_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *val)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    int rc = mdb_get(txn, dbi, &k, val);

    return rc ? pk_store_err(rc, "read") : PK_OK;
}

pk_status pk_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                 size_t vlen, unsigned flags)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};
    int rc = mdb_put(txn, dbi, &k, &v, flags);

    if (rc == MDB_KEYEXIST)
        return PK_EEXIST;
    return rc ? pk_store_err(rc, "write") : PK_OK;
}

pk_status pk_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);

    if (rc == MDB_NOTFOUND)
        return PK_OK;
    return rc ? pk_store_err(rc, "delete") : PK_OK;
}

void pk_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t pk_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

void pk_be32_put(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

uint32_t pk_be32_get(const uint8_t in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

pk_status pk_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
    MDB_val v;
    pk_status st = pk_get(txn, dbi, key, strlen(key), &v);

    if (st != PK_OK)
        return st;
    if (v.mv_size != 8)
        return PK_ERR(PK_ESTORE, "value of '%s' is %zu bytes, expected 8", key, v.mv_size);
    *out = pk_be64_get(v.mv_data);
    return PK_OK;
}

size_t pk_key_id_u64(uint8_t *buf, const char *id, uint64_t n)
{
    size_t len = strlen(id);

    memcpy(buf, id, len);
    buf[len] = 0;
    pk_be64_put(buf + len + 1, n);
    return len + 9;
}

bool pk_key_has_id(const MDB_val *k, const char *id)
{
    size_t len = strlen(id);

    return k->mv_size == len + 9 && memcmp(k->mv_data, id, len + 1) == 0;
}

uint64_t pk_get_u64_or(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t def)
{
    uint64_t v = def;

    return pk_get_u64(txn, dbi, key, &v) == PK_OK ? v : def;
}

pk_status pk_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    uint8_t buf[8];

    pk_be64_put(buf, v);
    return pk_put(txn, dbi, key, strlen(key), buf, 8, 0);
}

pk_status pk_put_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                     const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = n, .mv_data = NULL};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);

    if (rc)
        return pk_store_err(rc, "write message");
    protobuf_c_message_pack(msg, v.mv_data);
    return PK_OK;
}

pk_status pk_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    MDB_val v;
    pk_status st = pk_get(txn, dbi, key, klen, &v);
    ProtobufCMessage *m;

    if (st != PK_OK)
        return st;
    m = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
    if (!m)
        return PK_ERR(PK_EDECODE, "stored %s does not decode", desc->name);
    *out = m;
    return PK_OK;
}

pk_status pk_store_usage(pk_store *s, uint64_t *used, uint64_t *map)
{
    MDB_envinfo info;
    MDB_stat stat;
    int rc;

    if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &stat)) != 0)
        return pk_store_err(rc, "environment info");
    *used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
    *map = info.me_mapsize;
    return PK_OK;
}
