/*
 * The transparency log (tlog.h): the tree in LMDB, heads and proofs, the
 * appenders that turn source messages into leaves on PACTUM_LOG, and the
 * builder that makes the tree from PACTUM_LOG.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlog.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/merkle.h"

const tlog_source tlog_sources[TLOG_SOURCES] = {
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

uint64_t tlog_size(tlog *l, MDB_txn *txn)
{
    uint64_t n = 0;

    if (pk_get_u64(txn, l->meta, "log_size", &n) != PK_OK)
        return 0;
    return n;
}

pk_status tlog_root(tlog *l, MDB_txn *txn, uint64_t size, uint8_t root[PK_HASH])
{
    node_io nio = {txn, l->nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_root(&io, size, root);
}

pk_status tlog_node(tlog *l, MDB_txn *txn, unsigned level, uint64_t index, uint8_t h[PK_HASH])
{
    node_io nio = {txn, l->nodes};

    return node_get(&nio, level, index, h);
}

pk_status tlog_path(tlog *l, MDB_txn *txn, uint64_t index, uint64_t size, uint8_t path[][PK_HASH],
                    size_t *n)
{
    node_io nio = {txn, l->nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_inclusion(&io, index, size, path, n);
}

pk_status tlog_consistency(tlog *l, MDB_txn *txn, uint64_t first, uint64_t second,
                           uint8_t path[][PK_HASH], size_t *n)
{
    node_io nio = {txn, l->nodes};
    pk_merkle_io io = {node_get, node_put, &nio};

    return pk_merkle_consistency(&io, first, second, path, n);
}

pk_status tlog_head(tlog *l, MDB_txn *txn, uint64_t size, uint8_t **out, size_t *len)
{
    Pactum__V1__TreeHead th = PACTUM__V1__TREE_HEAD__INIT;
    uint8_t root[PK_HASH], *copy;
    pk_status st;

    pthread_mutex_lock(&l->head_lock);
    if (l->head && l->head_size == size) {
        if ((*out = malloc(l->head_len))) {
            memcpy(*out, l->head, l->head_len);
            *len = l->head_len;
        }
        pthread_mutex_unlock(&l->head_lock);
        return *out ? PK_OK : PK_ERR(PK_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&l->head_lock);
    if ((st = tlog_root(l, txn, size, root)) != PK_OK)
        return st;
    th.log_id = l->log_id;
    th.size = size;
    th.root.data = root;
    th.root.len = PK_HASH;
    th.timestamp_ms = pk_now_ms();
    if ((st = pk_answer_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD, &th.base, l->kp, out,
                             len)) != PK_OK)
        return st;
    pthread_mutex_lock(&l->head_lock);
    if (size >= l->head_size && (copy = malloc(*len))) {
        memcpy(copy, *out, *len);
        free(l->head);
        l->head = copy;
        l->head_len = *len;
        l->head_size = size;
    }
    pthread_mutex_unlock(&l->head_lock);
    return PK_OK;
}

pk_status tlog_find(tlog *l, MDB_txn *txn, const char *stream, uint64_t seq, uint64_t *index)
{
    uint8_t key[80];
    MDB_val v;
    pk_status st;

    if (strlen(stream) > 64)
        return PK_ERR(PK_EINVAL, "stream name too long");
    if ((st = pk_get(txn, l->refs, key, pk_key_id_u64(key, stream, seq), &v)) != PK_OK)
        return st;
    if (v.mv_size != 8)
        return PK_ERR(PK_ESTORE, "log reference of %s #%llu is damaged", stream,
                      (unsigned long long)seq);
    *index = pk_be64_get(v.mv_data);
    return PK_OK;
}

pk_status tlog_leaf(tlog *l, MDB_txn *txn, uint64_t index, MDB_val *leaf)
{
    uint8_t key[8];

    pk_be64_put(key, index);
    return pk_get(txn, l->leaves, key, 8, leaf);
}

pk_status tlog_record(tlog *l, const char *stream, uint64_t seq, uint8_t **out, size_t *len)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    *out = NULL;
    *len = 0;
    if (!l->bus)
        return PK_ERR(PK_EBUS, "no bus to read %s #%llu from", stream, (unsigned long long)seq);
    s = js_GetMsg(&m, l->bus->js, stream, seq, NULL, &jerr);
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
               : n > 2 && strcmp(subject + n - 2, ".t") == 0 ? PACTUM__V1__LEAF_KIND__LEAF_TICK
                                                             : PACTUM__V1__LEAF_KIND__LEAF_VERDICT;
    if (strcmp(stream, PK_STREAM_TRUST) == 0)
        return PACTUM__V1__LEAF_KIND__LEAF_TRUST_CHANGE;
    if (strcmp(stream, PK_STREAM_REGISTRY) == 0)
        return PACTUM__V1__LEAF_KIND__LEAF_REGISTRY;
    return PACTUM__V1__LEAF_KIND__LEAF_DECISION;
}

static pk_status append_batch(void *ctx, natsMsgList *list)
{
    tlog_appender *a = ctx;
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

        if (pk_msg_meta(m, &seq, NULL, &ts) != PK_OK)
            seq = 0, ts = 0;
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
        pk_consumer_ack(&a->consumer, list);
        if (a->log->cfg.m_appended)
            pk_metric_add(a->log->cfg.m_appended, (long long)list->Count);
    }
    for (int i = 0; i < list->Count; i++)
        free(leaves[i].data);
    free(leaves);
    free(buf);
    return st;
}

/* --- the builder ------------------------------------------------------------------ */

pk_status tlog_append_leaf(tlog *l, MDB_txn *txn, const uint8_t *leaf, size_t len,
                           const char *stream, uint64_t stream_seq, const char *agent,
                           uint64_t *size)
{
    node_io nio = {txn, l->nodes};
    pk_merkle_io io = {node_get, node_put, &nio};
    uint8_t h[PK_HASH], key[80], ib[8], ak[PK_ID_MAX + 9];
    size_t al = agent ? strlen(agent) : 0;
    pk_status st;

    if (strlen(stream) > 64 || al > PK_ID_MAX)
        return PK_ERR(PK_EINVAL, "a leaf names a stream or agent that is too long");
    pk_merkle_leaf_hash(leaf, len, h);
    pk_be64_put(ib, *size);
    if ((st = pk_merkle_append(&io, *size, h)) != PK_OK ||
        (st = pk_put(txn, l->leaves, ib, 8, leaf, len, 0)) != PK_OK ||
        (st = pk_put(txn, l->refs, key, pk_key_id_u64(key, stream, stream_seq), ib, 8, 0)) != PK_OK)
        return st;
    if (al &&
        (st = pk_put(txn, l->by_agent, ak, pk_key_id_u64(ak, agent, *size), "", 0, 0)) != PK_OK)
        return st;
    (*size)++;
    return PK_OK;
}

/* The position of the builder: leaves, and each source's highest sequence logged. */
typedef struct build_state {
    uint64_t size;             /* leaves */
    uint64_t hw[TLOG_SOURCES]; /* highest sequence logged, by source */
    uint64_t last_seq;         /* last PACTUM_LOG sequence applied */
} build_state;

static int source_of(const char *stream)
{
    for (int s = 0; s < TLOG_SOURCES; s++) {
        if (strcmp(stream, tlog_sources[s].stream) == 0)
            return s;
    }
    return -1;
}

/* One leaf of a LogBatch: appended unless undecodable, foreign, or its message logged already. */
static pk_status build_leaf(tlog *l, MDB_txn *txn, const ProtobufCBinaryData *bytes, build_state *b)
{
    Pactum__V1__LogLeaf *leaf = pactum__v1__log_leaf__unpack(NULL, bytes->len, bytes->data);
    uint8_t key[80];
    MDB_val seen;
    int src = leaf ? source_of(leaf->stream) : -1;
    pk_status st = PK_OK;

    if (src >= 0) {
        /* a source message already logged (a batch delivered again) is skipped */
        st = pk_get(txn, l->refs, key, pk_key_id_u64(key, leaf->stream, leaf->stream_seq), &seen);
        if (st == PK_ENOTFOUND) {
            if (leaf->stream_seq > b->hw[src])
                b->hw[src] = leaf->stream_seq;
            st = tlog_append_leaf(l, txn, bytes->data, bytes->len, leaf->stream, leaf->stream_seq,
                                  leaf->agent_id, &b->size);
        }
    }
    if (leaf)
        pactum__v1__log_leaf__free_unpacked(leaf, NULL);
    return st;
}

/* Apply one batch of PACTUM_LOG messages to the tree, in one transaction (a pk_batch_fn). */
static pk_status build_batch(void *ctx, natsMsgList *list)
{
    tlog *l = ctx;
    MDB_txn *txn = NULL;
    build_state b = {0};
    char key[80];
    pk_status st;

    if ((st = pk_txn_begin(l->store, true, &txn)) != PK_OK)
        return st;
    b.size = tlog_size(l, txn);
    for (int s = 0; s < TLOG_SOURCES; s++) {
        snprintf(key, sizeof(key), "hw_%s", tlog_sources[s].stream);
        b.hw[s] = pk_get_u64_or(txn, l->meta, key, 0);
    }
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        natsMsg *m = list->Msgs[i];
        Pactum__V1__LogBatch *batch;
        b.last_seq = pk_msg_seq(m);
        batch = pactum__v1__log_batch__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        if (!batch) {
            PK_WARN("PACTUM_LOG #%llu does not decode; skipped", (unsigned long long)b.last_seq);
            continue;
        }
        for (size_t k = 0; k < batch->n_leaves && st == PK_OK; k++)
            st = build_leaf(l, txn, &batch->leaves[k], &b);
        pactum__v1__log_batch__free_unpacked(batch, NULL);
    }
    if (st == PK_OK)
        st = pk_put_u64(txn, l->meta, "log_size", b.size);
    if (st == PK_OK && b.last_seq)
        st = pk_put_u64(txn, l->meta, "log_seq", b.last_seq);
    for (int s = 0; s < TLOG_SOURCES && st == PK_OK; s++) {
        snprintf(key, sizeof(key), "hw_%s", tlog_sources[s].stream);
        if (b.hw[s])
            st = pk_put_u64(txn, l->meta, key, b.hw[s]);
    }
    if (st != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    if ((st = pk_txn_commit(txn)) == PK_OK) {
        atomic_store(&l->size, b.size);
        if (l->cfg.m_size)
            pk_metric_set(l->cfg.m_size, (long long)b.size);
    }
    return st;
}

/* Sign and publish the newest head, if the log grew and the last one is old enough. */
static pk_status maybe_publish_head(void *ctx, bool caught_up)
{
    tlog *l = ctx;
    uint64_t size = atomic_load(&l->size);
    int64_t now = pk_mono_ms();
    MDB_txn *txn = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    pk_status st;

    if (size == l->published_size || now - l->published_mono_ms < l->cfg.head_every_ms)
        return PK_OK;
    if ((st = pk_txn_begin(l->store, false, &txn)) != PK_OK)
        return st;
    size = tlog_size(l, txn);
    st = tlog_head(l, txn, size, &buf, &len);
    pk_txn_abort(txn);
    if (st != PK_OK)
        return PK_WRAP(st, "cannot sign a tree head");
    if (natsConnection_Publish(l->bus->nc, PK_SUBJ_LOG_HEAD, buf, (int)len) == NATS_OK) {
        l->published_size = size;
        l->published_mono_ms = now;
        if (l->cfg.m_heads)
            pk_metric_add(l->cfg.m_heads, 1);
        pthread_mutex_lock(&l->head_lock);
        free(l->recent[l->recent_next]);
        l->recent[l->recent_next] = buf; /* kept for the log page */
        l->recent_len[l->recent_next] = len;
        l->recent_next = (l->recent_next + 1) % TLOG_RECENT_HEADS;
        pthread_mutex_unlock(&l->head_lock);
        return PK_OK;
    }
    free(buf);
    return PK_OK;
}

int tlog_recent_heads(tlog *l, uint8_t **heads, size_t *lens, int max)
{
    int n = 0;

    pthread_mutex_lock(&l->head_lock);
    for (unsigned k = 1; k <= TLOG_RECENT_HEADS && n < max; k++) {
        unsigned slot = (l->recent_next + TLOG_RECENT_HEADS - k) % TLOG_RECENT_HEADS;
        if (!l->recent[slot] || !(heads[n] = malloc(l->recent_len[slot])))
            continue;
        memcpy(heads[n], l->recent[slot], l->recent_len[slot]);
        lens[n++] = l->recent_len[slot];
    }
    pthread_mutex_unlock(&l->head_lock);
    return n;
}

/* --- starting and stopping ------------------------------------------------------------ */

pk_status tlog_open(tlog *l, const tlog_cfg *cfg, pk_service *svc, pk_bus *bus, pk_store *store,
                    const pk_keypair *kp)
{
    const pk_dbi_spec dbs[] = {{"meta", 0, &l->meta},
                               {"log_nodes", 0, &l->nodes},
                               {"log_leaves", 0, &l->leaves},
                               {"log_refs", 0, &l->refs},
                               {"log_agent", 0, &l->by_agent}};
    MDB_txn *txn = NULL;
    pk_status st;

    memset(l, 0, sizeof(*l));
    l->cfg = *cfg;
    l->svc = svc;
    l->bus = bus;
    l->store = store;
    l->kp = kp;
    pthread_mutex_init(&l->head_lock, NULL);
    pk_log_id(kp->pk, l->log_id);
    if ((st = pk_store_dbis(store, dbs, PK_NELEM(dbs))) != PK_OK ||
        (st = pk_txn_begin(store, false, &txn)) != PK_OK)
        return st;
    atomic_store(&l->size, tlog_size(l, txn));
    pk_txn_abort(txn);
    if (l->cfg.m_size)
        pk_metric_set(l->cfg.m_size, (long long)atomic_load(&l->size));
    return PK_OK;
}

static void *runner_main(void *arg)
{
    pk_runner_loop(arg);
    return NULL;
}

static pk_status start_appender(tlog *l, tlog_appender *a, const tlog_source *src)
{
    char name[96];
    pk_status st;

    snprintf(name, sizeof(name), "%s-%s", l->svc->instance, src->durable);
    a->log = l;
    a->src = src;
    snprintf(a->what, sizeof(a->what), "log of %s", src->stream);
    if ((st = pk_reader_bus_connect(l->cfg.common, name, &a->bus)) != PK_OK ||
        (st = pk_consumer_open(&a->consumer, a->bus, src->stream, src->durable, src->filter, 0,
                               l->cfg.batch, 30000)) != PK_OK)
        return st;
    /* less than a full batch is appended --log-every later, with what came meanwhile: the
     * log's work stays off the moments a message passes through the pipeline */
    a->runner = (pk_runner){.what = a->what,
                            .consumer = &a->consumer,
                            .svc = l->svc,
                            .batch = l->cfg.batch,
                            .wait_ms = 500,
                            .gather_ms = l->cfg.every_ms,
                            .process = append_batch,
                            .ctx = a};
    if (pthread_create(&a->thread, NULL, runner_main, &a->runner) != 0)
        return PK_ERR(PK_ENOMEM, "cannot start the log appender of %s", src->stream);
    a->started = true;
    return PK_OK;
}

pk_status tlog_start(tlog *l)
{
    MDB_txn *txn = NULL;
    uint64_t at = 0;
    pk_status st;

    if ((st = pk_txn_begin(l->store, false, &txn)) != PK_OK)
        return st;
    at = pk_get_u64_or(txn, l->meta, "log_seq", 0);
    pk_txn_abort(txn);
    if ((st = pk_consumer_open(&l->reader, l->bus, PK_STREAM_LOG, NULL, PK_SUBJ_LOG_LEAVES, at + 1,
                               1024, 30000)) != PK_OK)
        return st;
    for (int s = 0; s < TLOG_SOURCES; s++) {
        if ((st = start_appender(l, &l->appenders[s], &tlog_sources[s])) != PK_OK)
            return st;
    }
    l->builder = (pk_runner){.what = "log",
                             .consumer = &l->reader,
                             .svc = l->svc,
                             .batch = 64,
                             .wait_ms = 250,
                             .process = build_batch,
                             .idle = maybe_publish_head,
                             .ctx = l};
    if (pthread_create(&l->builder_thread, NULL, runner_main, &l->builder) != 0)
        return PK_ERR(PK_ENOMEM, "cannot start the log builder");
    l->builder_started = true;
    PK_INFO("transparency log %s: %llu leaves", l->log_id,
            (unsigned long long)atomic_load(&l->size));
    return PK_OK;
}

/* Wait for a thread if it was started. */
static void join_started(pthread_t thread, bool *started)
{
    if (*started)
        pthread_join(thread, NULL);
    *started = false;
}

void tlog_close(tlog *l)
{
    for (int s = 0; s < TLOG_SOURCES; s++) {
        tlog_appender *a = &l->appenders[s];
        join_started(a->thread, &a->started);
        pk_consumer_close(&a->consumer);
        pk_bus_close(a->bus);
        a->bus = NULL;
    }
    join_started(l->builder_thread, &l->builder_started);
    pk_consumer_close(&l->reader);
    free(l->head);
    l->head = NULL;
    for (int i = 0; i < TLOG_RECENT_HEADS; i++) {
        free(l->recent[i]);
        l->recent[i] = NULL;
    }
    pthread_mutex_destroy(&l->head_lock);
}
