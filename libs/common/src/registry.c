#include "pk/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/log.h"
#include "pk/service.h"

#define SYNC_TXN_RECORDS 256 /* records applied per LMDB transaction */

pk_status pk_registry_open(pk_registry **out, pk_store *store, pk_bus *bus)
{
    pk_registry *r = calloc(1, sizeof(*r));
    MDB_txn *txn = NULL;
    uint64_t applied = 0;
    pk_status st;

    if (!r)
        return PK_ERR(PK_ENOMEM, "cannot allocate registry");
    r->store = store;
    r->bus = bus;
    pthread_mutex_init(&r->lock, NULL);
    const pk_dbi_spec dbs[] = {{"reg_meta", 0, &r->meta},
                               {"reg_agents", 0, &r->agents},
                               {"reg_pacts", 0, &r->pacts},
                               {"reg_agent_pacts", MDB_DUPSORT, &r->agent_pacts}};

    if ((st = pk_store_dbis(store, dbs, PK_NELEM(dbs))) != PK_OK)
        goto fail;
    if ((st = pk_txn_begin(store, false, &txn)) != PK_OK)
        goto fail;
    st = pk_get_u64(txn, r->meta, "registry_seq", &applied);
    pk_txn_abort(txn);
    if (st != PK_OK && st != PK_ENOTFOUND)
        goto fail;
    atomic_store(&r->applied, applied);
    atomic_store(&r->notified_ms, INT64_MIN / 2);
    atomic_store(&r->dirty, true);
    *out = r;
    return PK_OK;
fail:
    pthread_mutex_destroy(&r->lock);
    free(r);
    return st;
}

void pk_registry_close(pk_registry *r)
{
    if (!r)
        return;
    if (r->notify) {
        natsSubscription_Unsubscribe(r->notify);
        natsSubscription_Destroy(r->notify);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void on_registry_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    pk_registry_notified(closure);
    natsMsg_Destroy(msg);
}

void pk_registry_notified(pk_registry *r)
{
    atomic_store(&r->notified_ms, pk_mono_ms());
    atomic_store(&r->dirty, true);
}

pk_status pk_registry_watch(pk_registry *r)
{
    natsStatus s =
        natsConnection_Subscribe(&r->notify, r->bus->nc, "pactum.registry.*.*", on_registry_msg, r);

    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, "subscribe to registry notifications");
}

uint64_t pk_registry_seq(pk_registry *r)
{
    return atomic_load(&r->applied);
}

static pk_status put_record(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                            const ProtobufCMessage *m, uint64_t seq)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = 8 + n, .mv_data = NULL};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);

    if (rc)
        return pk_store_err(rc, "registry write");
    pk_be64_put(v.mv_data, seq);
    protobuf_c_message_pack(m, (uint8_t *)v.mv_data + 8);
    return PK_OK;
}

/* Key of a pact version: id \0 be32(version). */
static size_t pact_key(uint8_t *buf, const char *id, uint32_t version)
{
    size_t n = strlen(id);

    memcpy(buf, id, n);
    buf[n] = 0;
    pk_be32_put(buf + n + 1, version);
    return n + 5;
}

pk_status pk_registry_apply(pk_registry *r, MDB_txn *txn, const uint8_t *data, size_t len,
                            uint64_t seq)
{
    Pactum__V1__RegistryRecord *rec = pactum__v1__registry_record__unpack(NULL, len, data);
    pk_status st = PK_OK;

    if (!rec) {
        PK_WARN("registry record at sequence %llu does not decode; skipped",
                (unsigned long long)seq);
        return PK_OK;
    }
    if (rec->record_case == PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT) {
        const char *id = rec->agent->agent_id;
        /* an agent's id never begins with '@'; a principal's does (or, registered before
         * principals had their own ids, looks like an agent's) */
        bool id_ok = rec->agent->role == PACTUM__V1__ROLE__ROLE_AGENT
                         ? pk_id_check("agent id", id) == PK_OK
                         : pk_signer_id_check("principal id", id) == PK_OK;
        bool key_ok = rec->agent->role == PACTUM__V1__ROLE__ROLE_CLIENT
                          ? rec->agent->token_hash.len == PK_HASH_BYTES
                          : rec->agent->agent_key.len == PK_PUBKEY_BYTES;
        if (id_ok && key_ok &&
            (rec->agent->owner_key.len == PK_PUBKEY_BYTES || rec->agent->owner_key.len == 0))
            st = put_record(txn, r->agents, id, strlen(id), &rec->agent->base, seq);
        else
            PK_WARN("registry record #%llu: agent record with a bad id or key; skipped",
                    (unsigned long long)seq);
    } else if (rec->record_case == PACTUM__V1__REGISTRY_RECORD__RECORD_PACT) {
        Pactum__V1__PactRecord *p = rec->pact;
        uint8_t key[PK_ID_MAX + 8];
        if (pk_id_check("pact id", p->pact_id) == PK_OK &&
            pk_id_check("agent id", p->agent_id) == PK_OK) {
            size_t kl = pact_key(key, p->pact_id, p->version);
            st = put_record(txn, r->pacts, key, kl, &p->base, seq);
            if (st == PK_OK) {
                st = pk_put(txn, r->agent_pacts, p->agent_id, strlen(p->agent_id), p->pact_id,
                            strlen(p->pact_id), MDB_NODUPDATA);
                if (st == PK_EEXIST)
                    st = PK_OK;
            }
        }
    }
    if (st == PK_OK && r->hook)
        st = r->hook(r->hook_ctx, txn, rec, seq);
    pactum__v1__registry_record__free_unpacked(rec, NULL);
    return st;
}

static pk_status sync_locked(pk_registry *r, uint64_t at_least)
{
    uint64_t next = atomic_load(&r->applied) + 1;
    uint64_t last_seq = 0;
    bool have_last = false;
    pk_status st = PK_OK;

    for (;;) {
        MDB_txn *txn = NULL;
        int applied_now = 0;

        if ((st = pk_txn_begin(r->store, true, &txn)) != PK_OK)
            return st;
        while (applied_now < SYNC_TXN_RECORDS) {
            natsMsg *msg = NULL;
            jsErrCode jerr = 0;
            natsStatus s = js_GetMsg(&msg, r->bus->js, PK_STREAM_REGISTRY, next, NULL, &jerr);

            if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
                /* Past the end, or a gap: find out which. The stream may
                 * have grown since the read, so a message at or below its
                 * last sequence is read once more before it is taken for a
                 * gap left by a removed message. */
                if (!have_last || next > last_seq) {
                    jsStreamInfo *si = NULL;
                    s = js_GetStreamInfo(&si, r->bus->js, PK_STREAM_REGISTRY, NULL, &jerr);
                    if (s != NATS_OK) {
                        st = pk_nats_err(s, jerr, "registry stream info");
                        break;
                    }
                    last_seq = si->State.LastSeq;
                    have_last = true;
                    jsStreamInfo_Destroy(si);
                    if (next <= last_seq)
                        continue; /* read it again */
                }
                if (next <= last_seq) {
                    next++; /* a gap left by a removed message */
                    continue;
                }
                break;
            }
            if (s != NATS_OK) {
                st = pk_nats_err(s, jerr, "registry read");
                break;
            }
            st = pk_registry_apply(r, txn, (const uint8_t *)natsMsg_GetData(msg),
                                   (size_t)natsMsg_GetDataLength(msg), next);
            natsMsg_Destroy(msg);
            if (st != PK_OK)
                break;
            next++;
            applied_now++;
        }
        if (st == PK_OK && applied_now > 0) {
            st = pk_put_u64(txn, r->meta, "registry_seq", next - 1);
            if (st == PK_OK)
                st = pk_txn_commit(txn);
            else
                pk_txn_abort(txn);
            if (st == PK_OK)
                atomic_store(&r->applied, next - 1);
        } else {
            pk_txn_abort(txn);
        }
        if (st != PK_OK || applied_now < SYNC_TXN_RECORDS)
            break;
    }
    if (st == PK_OK && at_least > atomic_load(&r->applied))
        return PK_ERR(PK_ENOTFOUND, "registry position %llu is not in the stream (last %llu)",
                      (unsigned long long)at_least, (unsigned long long)atomic_load(&r->applied));
    return st;
}

/* One sync, under the lock. */
static pk_status sync_pass(pk_registry *r, uint64_t at_least)
{
    uint64_t before = atomic_load(&r->applied);
    int64_t started = pk_mono_ms();
    pk_status st;

    r->sync_started_ns = pk_mono_ns();
    atomic_fetch_add(&r->syncs, 1);
    atomic_store(&r->dirty, false);
    st = sync_locked(r, at_least);
    /* Nothing new although a message was seen just now: the stream may not
     * have stored it yet, so look again on the next pass. */
    if (st != PK_OK || (atomic_load(&r->applied) == before &&
                        started - atomic_load(&r->notified_ms) < PK_REGISTRY_NOTICE_MS))
        atomic_store(&r->dirty, true);
    atomic_store(&r->last_sync_ms, pk_mono_ms());
    return st;
}

pk_status pk_registry_sync(pk_registry *r, uint64_t at_least)
{
    pk_status st;

    if (!r->bus)
        return PK_OK;
    if (at_least && at_least <= atomic_load(&r->applied))
        return PK_OK;
    pthread_mutex_lock(&r->lock);
    st = sync_pass(r, at_least);
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* Under the lock: may a miss force one more sync now (a token bucket)? */
static bool refresh_token(pk_registry *r)
{
    int64_t now = pk_mono_ms();

    if (r->refresh_ms == 0)
        r->refresh_tokens = PK_REGISTRY_REFRESH_BURST;
    else
        r->refresh_tokens += (double)(now - r->refresh_ms) * PK_REGISTRY_REFRESH_PER_S / 1000.0;
    if (r->refresh_tokens > PK_REGISTRY_REFRESH_BURST)
        r->refresh_tokens = PK_REGISTRY_REFRESH_BURST;
    r->refresh_ms = now;
    if (r->refresh_tokens < 1)
        return false;
    r->refresh_tokens -= 1;
    return true;
}

pk_status pk_registry_refresh(pk_registry *r, int64_t min_interval_ms)
{
    int64_t asked = pk_mono_ns();
    pk_status st = PK_OK;

    if (!r->bus)
        return PK_OK;
    pthread_mutex_lock(&r->lock);
    /* a sync that began after the lookup missed (another miss's) has read what it needs */
    if (r->sync_started_ns > asked)
        goto out;
    if (atomic_load(&r->dirty) || pk_mono_ms() - atomic_load(&r->last_sync_ms) >= min_interval_ms ||
        refresh_token(r))
        st = sync_pass(r, 0);
out:
    pthread_mutex_unlock(&r->lock);
    return st;
}

pk_status pk_registry_sync_if_dirty(pk_registry *r)
{
    if (!atomic_load(&r->dirty))
        return PK_OK;
    return pk_registry_sync(r, 0);
}

pk_status pk_registry_agent(pk_registry *r, MDB_txn *txn, const char *agent_id,
                            Pactum__V1__AgentRecord **out, uint64_t *seq)
{
    MDB_val v;
    pk_status st = pk_get(txn, r->agents, agent_id, strlen(agent_id), &v);

    if (st != PK_OK)
        return st;
    if (v.mv_size < 8)
        return PK_ERR(PK_ESTORE, "registry entry of agent %s is damaged", agent_id);
    *out = pactum__v1__agent_record__unpack(NULL, v.mv_size - 8, (uint8_t *)v.mv_data + 8);
    if (!*out)
        return PK_ERR(PK_EDECODE, "registry entry of agent %s does not decode", agent_id);
    if (seq)
        *seq = pk_be64_get(v.mv_data);
    return PK_OK;
}

/*
 * Position a cursor on the newest version of pact_id registered at or before
 * max_seq (0: any). Versions of one pact are adjacent and ascending, so start
 * past the highest possible version and walk back.
 */
static pk_status seek_in_force(pk_registry *r, MDB_cursor *cur, const char *pact_id,
                               uint64_t max_seq, MDB_val *k, MDB_val *v)
{
    uint8_t key[PK_ID_MAX + 8];
    size_t idlen = strlen(pact_id);
    int rc;

    if (idlen > PK_ID_MAX)
        return PK_ENOTFOUND;
    k->mv_size = pact_key(key, pact_id, UINT32_MAX);
    k->mv_data = key;
    rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, k, v, MDB_PREV) : mdb_cursor_get(cur, k, v, MDB_LAST);
    while (rc == 0) {
        if (k->mv_size != idlen + 5 || memcmp(k->mv_data, pact_id, idlen + 1) != 0)
            return PK_ENOTFOUND;
        if (v->mv_size >= 8 && (!max_seq || pk_be64_get(v->mv_data) <= max_seq))
            return PK_OK;
        rc = mdb_cursor_get(cur, k, v, MDB_PREV);
    }
    return rc == MDB_NOTFOUND ? PK_ENOTFOUND : pk_store_err(rc, "registry cursor");
}

static pk_status decode_pact(const MDB_val *v, const char *pact_id, Pactum__V1__PactRecord **out,
                             uint64_t *seq)
{
    if (v->mv_size < 8)
        return PK_ERR(PK_ESTORE, "registry entry of pact %s is damaged", pact_id);
    *out = pactum__v1__pact_record__unpack(NULL, v->mv_size - 8, (uint8_t *)v->mv_data + 8);
    if (!*out)
        return PK_ERR(PK_EDECODE, "registry entry of pact %s does not decode", pact_id);
    if (seq)
        *seq = pk_be64_get(v->mv_data);
    return PK_OK;
}

pk_status pk_registry_pact(pk_registry *r, MDB_txn *txn, const char *pact_id, uint32_t version,
                           uint64_t max_seq, Pactum__V1__PactRecord **out, uint64_t *seq)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pk_status st;
    int rc;

    if (version) {
        uint8_t key[PK_ID_MAX + 8];
        if (strlen(pact_id) > PK_ID_MAX)
            return PK_ENOTFOUND;
        if ((st = pk_get(txn, r->pacts, key, pact_key(key, pact_id, version), &v)) != PK_OK)
            return st;
        if (max_seq && v.mv_size >= 8 && pk_be64_get(v.mv_data) > max_seq)
            return PK_ENOTFOUND;
        return decode_pact(&v, pact_id, out, seq);
    }
    if ((rc = mdb_cursor_open(txn, r->pacts, &cur)) != 0)
        return pk_store_err(rc, "registry cursor");
    st = seek_in_force(r, cur, pact_id, max_seq, &k, &v);
    if (st == PK_OK)
        st = decode_pact(&v, pact_id, out, seq);
    mdb_cursor_close(cur);
    return st;
}

pk_status pk_registry_pact_version(pk_registry *r, MDB_txn *txn, const char *pact_id,
                                   uint64_t max_seq, uint32_t *version, uint64_t *seq)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pk_status st;
    int rc;

    if ((rc = mdb_cursor_open(txn, r->pacts, &cur)) != 0)
        return pk_store_err(rc, "registry cursor");
    st = seek_in_force(r, cur, pact_id, max_seq, &k, &v);
    if (st == PK_OK) {
        *version = pk_be32_get((const uint8_t *)k.mv_data + k.mv_size - 4);
        if (seq)
            *seq = pk_be64_get(v.mv_data);
    }
    mdb_cursor_close(cur);
    return st;
}

pk_status pk_registry_agent_pacts(pk_registry *r, MDB_txn *txn, const char *agent_id, char ***ids,
                                  size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {.mv_size = strlen(agent_id), .mv_data = (void *)agent_id}, v;
    char **out = NULL;
    size_t count = 0;
    int rc;

    *ids = NULL;
    *n = 0;
    if ((rc = mdb_cursor_open(txn, r->agent_pacts, &cur)) != 0)
        return pk_store_err(rc, "registry cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    while (rc == 0) {
        char **grown = realloc(out, (count + 1) * sizeof(*out));
        if (!grown)
            break;
        out = grown;
        out[count] = strndup(v.mv_data, v.mv_size);
        if (!out[count])
            break;
        count++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    *ids = out;
    *n = count;
    return PK_OK;
}

void pk_registry_ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

void pk_registry_follow(pk_registry *r)
{
    while (!pk_shutdown) {
        if (pk_registry_sync_if_dirty(r) != PK_OK)
            PK_WARN("registry sync: %s", pk_error_msg());
        pk_sleep_ms(100);
    }
}
