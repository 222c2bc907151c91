/*
 * The transparency log.
 *
 * Appenders (one thread per source stream, on durable consumers that every
 * oracle instance shares) turn each batch of source messages into a LogBatch
 * of leaves, publish it on pactum.log.leaves (PACTUM_LOG) and only then
 * acknowledge the batch. PACTUM_LOG, read in order, is the log: every
 * oracle instance builds the same Merkle tree from it (the builder thread),
 * so any instance can prove anything with the same roots. A source message
 * already logged (a batch delivered again, in whatever order) is skipped by
 * its stream and sequence, so each message is one leaf.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/merkle.h"
#include "pk/workers.h"

const oracle_log_source oracle_log_sources[ORACLE_LOG_SOURCES] = {
    {PK_STREAM_REGISTRY, "pactum.registry.*.*", "log-registry"},
    {PK_STREAM_EVENTS, "pactum.events.>", "log-events"},
    {PK_STREAM_VERDICTS, "pactum.verdicts.>", "log-verdicts"},
    {PK_STREAM_TRUST, "pactum.trust.*", "log-trust"},
    {PK_STREAM_AUDIT, "pactum.audit.*", "log-audit"},
};

/* --- the tree in LMDB --------------------------------------------------------- */

typedef struct node_io {
    MDB_txn *txn;
    MDB_dbi dbi;
} node_io;

static void node_key(uint8_t key[9], unsigned level, uint64_t index)
{
    key[0] = (uint8_t)level;
    pk_be64_put(key + 1, index);
}

static pk_status node_get(void *ctx, unsigned level, uint64_t index, uint8_t out[PK_HASH])
{
    node_io *io = ctx;
    uint8_t key[9];
    MDB_val v;
    pk_status st;

    node_key(key, level, index);
    if ((st = pk_get(io->txn, io->dbi, key, 9, &v)) != PK_OK)
        return st == PK_ENOTFOUND ? PK_ERR(PK_ESTORE, "log node %u/%llu is missing", level,
                                           (unsigned long long)index)
                                  : st;
    if (v.mv_size != PK_HASH)
        return PK_ERR(PK_ESTORE, "log node %u/%llu is damaged", level, (unsigned long long)index);
    memcpy(out, v.mv_data, PK_HASH);
    return PK_OK;
}

static pk_status node_put(void *ctx, unsigned level, uint64_t index, const uint8_t h[PK_HASH])
{
    node_io *io = ctx;
    uint8_t key[9];

    node_key(key, level, index);
    return pk_put(io->txn, io->dbi, key, 9, h, PK_HASH, 0);
}

uint64_t oracle_log_size(oracle *o, MDB_txn *txn)
{
    uint64_t n = 0;

    if (pk_get_u64(txn, o->meta, "log_size", &n) != PK_OK)
        return 0;
    return n;
}

pk_status oracle_log_root(oracle *o, MDB_txn *txn, uint64_t size, uint8_t root[PK_HASH])
{
    node_io nio = {txn, o->log_nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_root(&io, size, root);
}

pk_status oracle_log_path(oracle *o, MDB_txn *txn, uint64_t index, uint64_t size,
                          uint8_t path[][PK_HASH], size_t *n)
{
    node_io nio = {txn, o->log_nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_inclusion(&io, index, size, path, n);
}

pk_status oracle_log_consistency(oracle *o, MDB_txn *txn, uint64_t first, uint64_t second,
                                 uint8_t path[][PK_HASH], size_t *n)
{
    node_io nio = {txn, o->log_nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_consistency(&io, first, second, path, n);
}

/* The last head signed, reused while the log has not grown (signing costs more than the answer). */
static struct {
    pthread_mutex_t lock;
    uint64_t size;
    uint8_t *bytes;
    size_t len;
} head_cache = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, 0};

pk_status oracle_log_head(oracle *o, MDB_txn *txn, uint64_t size, uint8_t **out, size_t *len)
{
    Pactum__V1__TreeHead th = PACTUM__V1__TREE_HEAD__INIT;
    uint8_t root[PK_HASH];
    pk_status st;

    pthread_mutex_lock(&head_cache.lock);
    if (head_cache.bytes && head_cache.size == size) {
        *out = malloc(head_cache.len);
        if (*out) {
            memcpy(*out, head_cache.bytes, head_cache.len);
            *len = head_cache.len;
        }
        pthread_mutex_unlock(&head_cache.lock);
        return *out ? PK_OK : PK_ERR(PK_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&head_cache.lock);
    if ((st = oracle_log_root(o, txn, size, root)) != PK_OK)
        return st;
    th.log_id = o->log_id;
    th.size = size;
    th.root.data = root;
    th.root.len = PK_HASH;
    th.timestamp_ms = pk_now_ms();
    if ((st = pk_answer_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD, &th.base, &o->kp, out,
                             len)) != PK_OK)
        return st;
    pthread_mutex_lock(&head_cache.lock);
    if (size >= head_cache.size) {
        uint8_t *copy = malloc(*len);
        if (copy) {
            memcpy(copy, *out, *len);
            free(head_cache.bytes);
            head_cache.bytes = copy;
            head_cache.len = *len;
            head_cache.size = size;
        }
    }
    pthread_mutex_unlock(&head_cache.lock);
    return PK_OK;
}

static size_t ref_key(uint8_t *key, const char *stream, uint64_t seq)
{
    size_t n = strlen(stream);

    memcpy(key, stream, n);
    key[n] = 0;
    pk_be64_put(key + n + 1, seq);
    return n + 9;
}

pk_status oracle_log_find(oracle *o, MDB_txn *txn, const char *stream, uint64_t seq,
                          uint64_t *index)
{
    uint8_t key[80];
    MDB_val v;
    pk_status st;

    if (strlen(stream) > 64)
        return PK_ERR(PK_EINVAL, "stream name too long");
    if ((st = pk_get(txn, o->log_refs, key, ref_key(key, stream, seq), &v)) != PK_OK)
        return st;
    if (v.mv_size != 8)
        return PK_ERR(PK_ESTORE, "log reference of %s #%llu is damaged", stream,
                      (unsigned long long)seq);
    *index = pk_be64_get(v.mv_data);
    return PK_OK;
}

pk_status oracle_log_leaf(oracle *o, MDB_txn *txn, uint64_t index, MDB_val *leaf)
{
    uint8_t key[8];

    pk_be64_put(key, index);
    return pk_get(txn, o->log_leaves, key, 8, leaf);
}

pk_status oracle_log_record(oracle *o, const char *stream, uint64_t seq, uint8_t **out, size_t *len)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    *out = NULL;
    *len = 0;
    if (!o->bus)
        return PK_ERR(PK_EBUS, "no bus to read %s #%llu from", stream, (unsigned long long)seq);
    s = js_GetMsg(&m, o->bus->js, stream, seq, NULL, &jerr);
    if (s != NATS_OK)
        return pk_nats_err(s, jerr, "read the logged record");
    *len = (size_t)natsMsg_GetDataLength(m);
    *out = malloc(*len ? *len : 1);
    if (*out)
        memcpy(*out, natsMsg_GetData(m), *len);
    natsMsg_Destroy(m);
    return *out ? PK_OK : PK_ERR(PK_ENOMEM, "out of memory");
}

/* --- appenders ------------------------------------------------------------------ */

/* The agent a source message concerns, from its subject (and, for pacts, its record). */
static void agent_of(const char *stream, const char *subject, natsMsg *m, char *out, size_t len)
{
    char tok[6][PK_ID_MAX + 16];
    int n = 0;
    const char *p = subject;

    out[0] = '\0';
    while (*p && n < 6) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(tok[n++], sizeof(tok[0]), "%.*s", (int)(l < sizeof(tok[0]) ? l : 0), p);
        p += l + (dot ? 1 : 0);
        if (!dot)
            break;
    }
    if (strcmp(stream, PK_STREAM_EVENTS) == 0 || strcmp(stream, PK_STREAM_VERDICTS) == 0) {
        if (n >= 4)
            snprintf(out, len, "%s", tok[3]);
    } else if (strcmp(stream, PK_STREAM_TRUST) == 0 || strcmp(stream, PK_STREAM_AUDIT) == 0) {
        if (n >= 3)
            snprintf(out, len, "%s", tok[2]);
    } else if (strcmp(stream, PK_STREAM_REGISTRY) == 0 && n >= 4) {
        if (strcmp(tok[2], "agent") == 0) {
            snprintf(out, len, "%s", tok[3]);
        } else {
            Pactum__V1__RegistryRecord *r = pactum__v1__registry_record__unpack(
                NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
            if (r && r->record_case == PACTUM__V1__REGISTRY_RECORD__RECORD_PACT)
                snprintf(out, len, "%s", r->pact->agent_id);
            if (r)
                pactum__v1__registry_record__free_unpacked(r, NULL);
        }
    }
    if (pk_id_check("agent id", out) != PK_OK)
        out[0] = '\0';
}

static Pactum__V1__LeafKind kind_of(const char *stream, const char *subject)
{
    size_t n = strlen(subject);

    if (strcmp(stream, PK_STREAM_EVENTS) == 0)
        return PACTUM__V1__LEAF_KIND__LEAF_EVENT;
    if (strcmp(stream, PK_STREAM_VERDICTS) == 0)
        return n > 2 && strcmp(subject + n - 2, ".g") == 0 ? PACTUM__V1__LEAF_KIND__LEAF_GOVERNANCE
                                                           : PACTUM__V1__LEAF_KIND__LEAF_VERDICT;
    if (strcmp(stream, PK_STREAM_TRUST) == 0)
        return PACTUM__V1__LEAF_KIND__LEAF_TRUST_CHANGE;
    if (strcmp(stream, PK_STREAM_REGISTRY) == 0)
        return PACTUM__V1__LEAF_KIND__LEAF_REGISTRY;
    return PACTUM__V1__LEAF_KIND__LEAF_DECISION;
}

typedef struct appender {
    oracle *o;
    const oracle_log_source *src;
    pk_bus *bus;   /* own connection */
    pk_consumer c; /* durable consumer shared by every oracle instance */
    pthread_t thread;
    bool started;
} appender;

static appender appenders[ORACLE_LOG_SOURCES];

static pk_status append_batch(void *ctx, natsMsgList *list)
{
    appender *a = ctx;
    Pactum__V1__LogBatch b = PACTUM__V1__LOG_BATCH__INIT;
    ProtobufCBinaryData *leaves = calloc((size_t)list->Count, sizeof(*leaves));
    uint64_t first = 0, last = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    char msg_id[96];
    pk_status st = PK_OK;

    if (!leaves)
        return PK_ERR(PK_ENOMEM, "out of memory");
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        natsMsg *m = list->Msgs[i];
        Pactum__V1__LogLeaf l = PACTUM__V1__LOG_LEAF__INIT;
        uint8_t digest[32];
        char agent[PK_ID_MAX + 1];
        uint64_t seq = 0;
        int64_t ts = 0;

        pk_msg_meta(m, &seq, NULL, &ts);
        if (!first)
            first = seq;
        last = seq;
        crypto_hash_sha256(digest, (const uint8_t *)natsMsg_GetData(m),
                           (unsigned long long)natsMsg_GetDataLength(m));
        agent_of(a->src->stream, natsMsg_GetSubject(m), m, agent, sizeof(agent));
        l.kind = kind_of(a->src->stream, natsMsg_GetSubject(m));
        l.stream = (char *)a->src->stream;
        l.stream_seq = seq;
        l.subject = (char *)natsMsg_GetSubject(m);
        l.agent_id = agent;
        l.data_sha256.data = digest;
        l.data_sha256.len = sizeof(digest);
        l.stored_ms = ts;
        st = pk_pack(&l.base, &leaves[i].data, &leaves[i].len);
    }
    if (st == PK_OK) {
        ProtobufCBinaryData *ptrs = leaves;
        b.leaves = ptrs;
        b.n_leaves = (size_t)list->Count;
        st = pk_pack(&b.base, &buf, &len);
    }
    if (st == PK_OK) {
        /* the same batch again (a retry) is stored once */
        snprintf(msg_id, sizeof(msg_id), "%s:%llu-%llu", a->src->stream, (unsigned long long)first,
                 (unsigned long long)last);
        st =
            pk_bus_publish_sync(a->bus, PK_SUBJ_LOG_LEAVES, buf, len, msg_id, false, 0, NULL, NULL);
    }
    if (st == PK_OK) {
        for (int i = 0; i < list->Count; i++)
            natsMsg_Ack(list->Msgs[i], NULL);
        pk_metric_add(&a->o->m[OM_LOG_APPENDED], (long long)list->Count);
    }
    for (int i = 0; i < list->Count; i++)
        free(leaves[i].data);
    free(leaves);
    free(buf);
    return st;
}

/* Sleep ms, in short steps so that a shutdown is not kept waiting. */
static void pause_ms(int64_t ms)
{
    int64_t end = pk_mono_ms() + ms;

    for (int64_t now = pk_mono_ms(); now < end && !pk_shutdown; now = pk_mono_ms())
        pk_sleep_ms(end - now < 50 ? end - now : 50);
}

static void *appender_main(void *arg)
{
    appender *a = arg;
    char what[64];

    snprintf(what, sizeof(what), "log of %s", a->src->stream);
    while (!pk_shutdown) {
        natsMsgList list;
        pk_status st = pk_consumer_fetch(&a->c, &list, (int)a->o->cfg->log_batch, 500);

        if (st == PK_ETIMEOUT)
            continue;
        if (st != PK_OK) {
            PK_WARN("%s: %s", what, pk_error_msg());
            pk_sleep_ms(200);
            continue;
        }
        /*
         * Less than a full batch: append it --log-every later, and what came
         * meanwhile with the next fetch. The log's work then stays off the
         * moments a message passes through the pipeline, and comes in fewer,
         * larger batches.
         */
        if (list.Count < (int)a->o->cfg->log_batch)
            pause_ms(a->o->cfg->log_every_ms);
        pk_batch_until_done(append_batch, a, &list, what);
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

/* --- the builder ------------------------------------------------------------------ */

/* Apply one batch of PACTUM_LOG messages to the tree, in one transaction. */
static pk_status build_batch(oracle *o, natsMsgList *list)
{
    MDB_txn *txn = NULL;
    uint64_t size, hw[ORACLE_LOG_SOURCES] = {0}, last_seq = 0, added = 0;
    node_io nio;
    pk_merkle_io io = {node_get, node_put, &nio};
    pk_status st;

    if ((st = pk_txn_begin(o->store, true, &txn)) != PK_OK)
        return st;
    nio.txn = txn;
    nio.dbi = o->log_nodes;
    size = oracle_log_size(o, txn);
    for (int s = 0; s < ORACLE_LOG_SOURCES; s++) {
        char k[80];
        snprintf(k, sizeof(k), "hw_%s", oracle_log_sources[s].stream);
        pk_get_u64(txn, o->meta, k, &hw[s]);
    }
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        natsMsg *m = list->Msgs[i];
        uint64_t seq = 0;
        Pactum__V1__LogBatch *b;

        pk_msg_meta(m, &seq, NULL, NULL);
        last_seq = seq;
        b = pactum__v1__log_batch__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                          (const uint8_t *)natsMsg_GetData(m));
        if (!b) {
            PK_WARN("PACTUM_LOG #%llu does not decode; skipped", (unsigned long long)seq);
            continue;
        }
        for (size_t k = 0; k < b->n_leaves && st == PK_OK; k++) {
            Pactum__V1__LogLeaf *l =
                pactum__v1__log_leaf__unpack(NULL, b->leaves[k].len, b->leaves[k].data);
            uint8_t h[PK_HASH], key[80], ib[8];
            int src = -1;

            for (int s = 0; l && s < ORACLE_LOG_SOURCES; s++) {
                if (strcmp(l->stream, oracle_log_sources[s].stream) == 0)
                    src = s;
            }
            if (l && src >= 0) {
                /* a source message already logged (a batch delivered again) is skipped */
                MDB_val seen;
                size_t kl = ref_key(key, l->stream, l->stream_seq);
                pk_status fs = pk_get(txn, o->log_refs, key, kl, &seen);
                if (fs == PK_OK) {
                    pactum__v1__log_leaf__free_unpacked(l, NULL);
                    continue;
                }
                if (fs != PK_ENOTFOUND) {
                    st = fs;
                    pactum__v1__log_leaf__free_unpacked(l, NULL);
                    break;
                }
            }
            if (!l || src < 0) {
                /* undecodable or foreign */
                if (l)
                    pactum__v1__log_leaf__free_unpacked(l, NULL);
                continue;
            }
            if (l->stream_seq > hw[src])
                hw[src] = l->stream_seq;
            pk_merkle_leaf_hash(b->leaves[k].data, b->leaves[k].len, h);
            pk_be64_put(ib, size);
            if ((st = pk_merkle_append(&io, size, h)) == PK_OK &&
                (st = pk_put(txn, o->log_leaves, ib, 8, b->leaves[k].data, b->leaves[k].len, 0)) ==
                    PK_OK &&
                (st = pk_put(txn, o->log_refs, key, ref_key(key, l->stream, l->stream_seq), ib, 8,
                             0)) == PK_OK &&
                l->agent_id[0]) {
                uint8_t ak[PK_ID_MAX + 9];
                size_t al = strlen(l->agent_id);
                memcpy(ak, l->agent_id, al);
                ak[al] = 0;
                pk_be64_put(ak + al + 1, size);
                st = pk_put(txn, o->log_agent, ak, al + 9, "", 0, 0);
            }
            pactum__v1__log_leaf__free_unpacked(l, NULL);
            size++;
            added++;
        }
        pactum__v1__log_batch__free_unpacked(b, NULL);
    }
    if (st == PK_OK)
        st = pk_put_u64(txn, o->meta, "log_size", size);
    if (st == PK_OK && last_seq)
        st = pk_put_u64(txn, o->meta, "log_seq", last_seq);
    for (int s = 0; s < ORACLE_LOG_SOURCES && st == PK_OK; s++) {
        char k[80];
        snprintf(k, sizeof(k), "hw_%s", oracle_log_sources[s].stream);
        if (hw[s])
            st = pk_put_u64(txn, o->meta, k, hw[s]);
    }
    if (st != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    if ((st = pk_txn_commit(txn)) == PK_OK) {
        atomic_store(&o->log_size, size);
        pk_metric_set(&o->m[OM_LOG_SIZE], (long long)size);
    }
    return st;
}

/* Sign and publish the newest head, if the log grew and the last one is old enough. */
static void maybe_publish_head(oracle *o)
{
    uint64_t size = atomic_load(&o->log_size);
    int64_t now = pk_mono_ms();
    MDB_txn *txn = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (size == o->head_size || now - o->head_mono_ms < o->cfg->head_every_ms)
        return;
    if (pk_txn_begin(o->store, false, &txn) != PK_OK)
        return;
    size = oracle_log_size(o, txn);
    if (oracle_log_head(o, txn, size, &buf, &len) == PK_OK) {
        if (natsConnection_Publish(o->bus->nc, PK_SUBJ_LOG_HEAD, buf, (int)len) == NATS_OK) {
            o->head_size = size;
            o->head_mono_ms = now;
            pk_metric_add(&o->m[OM_HEADS], 1);
        }
    } else {
        PK_WARN("cannot sign a tree head: %s", pk_error_msg());
    }
    free(buf);
    pk_txn_abort(txn);
}

static void *builder_main(void *arg)
{
    oracle *o = arg;

    while (!pk_shutdown) {
        natsMsgList list;
        pk_status st = pk_consumer_fetch(&o->log_reader, &list, 64, 250);

        if (st == PK_OK) {
            st = build_batch(o, &list);
            natsMsgList_Destroy(&list);
            if (st == PK_ESTORE_FULL) {
                PK_ERROR("log: %s; stopped building the log", pk_error_msg());
                pk_service_set_health(&o->svc, false, pk_error_msg());
                while (!pk_shutdown)
                    pk_sleep_ms(200);
                break;
            }
            if (st != PK_OK) {
                MDB_txn *txn = NULL;
                uint64_t at = 0;
                PK_WARN("log update failed, re-reading: %s", pk_error_msg());
                if (pk_txn_begin(o->store, false, &txn) == PK_OK) {
                    pk_get_u64(txn, o->meta, "log_seq", &at);
                    pk_txn_abort(txn);
                }
                pk_consumer_close(&o->log_reader);
                o->log_reader.start_seq = at + 1;
                pk_sleep_ms(200);
            }
        } else if (st != PK_ETIMEOUT) {
            PK_WARN("log: %s", pk_error_msg());
            pk_sleep_ms(200);
        }
        maybe_publish_head(o);
    }
    return NULL;
}

pk_status oracle_log_start(oracle *o)
{
    MDB_txn *txn = NULL;
    uint64_t at = 0, size = 0;
    pk_status st;

    if ((st = pk_txn_begin(o->store, false, &txn)) != PK_OK)
        return st;
    pk_get_u64(txn, o->meta, "log_seq", &at);
    size = oracle_log_size(o, txn);
    pk_txn_abort(txn);
    atomic_store(&o->log_size, size);
    pk_metric_set(&o->m[OM_LOG_SIZE], (long long)size);
    if ((st = pk_consumer_open(&o->log_reader, o->bus, PK_STREAM_LOG, NULL, PK_SUBJ_LOG_LEAVES,
                               at + 1, 1024, 30000)) != PK_OK)
        return st;
    for (int s = 0; s < ORACLE_LOG_SOURCES; s++) {
        appender *a = &appenders[s];
        char name[96];
        pk_bus_opts bo = {.url = o->cfg->common.nats_url,
                          .name = name,
                          .user = o->cfg->common.nats_user,
                          .password = o->cfg->common.nats_password,
                          .send_asap = true,
                          .connect_wait_ms = 10000,
                          .stop = (volatile int *)&pk_shutdown};
        a->o = o;
        a->src = &oracle_log_sources[s];
        snprintf(name, sizeof(name), "%s-%s", o->svc.instance, a->src->durable);
        if ((st = pk_bus_connect(&a->bus, &bo)) != PK_OK ||
            (st = pk_consumer_open(&a->c, a->bus, a->src->stream, a->src->durable, a->src->filter,
                                   0, (int)o->cfg->log_batch, 30000)) != PK_OK)
            return st;
        if (pthread_create(&a->thread, NULL, appender_main, a) != 0)
            return PK_ERR(PK_ENOMEM, "cannot start the log appender of %s", a->src->stream);
        a->started = true;
    }
    if (pthread_create(&o->log_builder, NULL, builder_main, o) != 0)
        return PK_ERR(PK_ENOMEM, "cannot start the log builder");
    o->log_builder_started = true;
    PK_INFO("transparency log %s: %llu leaves", o->log_id, (unsigned long long)size);
    return PK_OK;
}

void oracle_log_stop(oracle *o)
{
    for (int s = 0; s < ORACLE_LOG_SOURCES; s++) {
        appender *a = &appenders[s];
        if (a->started)
            pthread_join(a->thread, NULL);
        a->started = false;
        pk_consumer_close(&a->c);
        pk_bus_close(a->bus);
        a->bus = NULL;
    }
    if (o->log_builder_started)
        pthread_join(o->log_builder, NULL);
    o->log_builder_started = false;
    pk_consumer_close(&o->log_reader);
}
