/*
 * tlog - the transparency log: every message that changed trust (registry
 * records, events, verdicts and governance records, trust changes, authorize
 * decisions) is a leaf of an RFC 6962 Merkle tree, with signed tree heads,
 * inclusion and consistency proofs.
 *
 * Appenders (one thread per source stream, on durable consumers that every
 * instance shares) turn each batch of source messages into a LogBatch of
 * leaves, publish it on pactum.log.leaves (PACTUM_LOG) and only then
 * acknowledge the batch. PACTUM_LOG, read in order, is the log: every
 * instance's builder makes the same tree from it, so any instance can prove
 * anything with the same roots. A source message already logged (a batch
 * delivered again, in whatever order) is skipped by its stream and sequence,
 * so each message is one leaf.
 *
 * A tlog owns its threads, connections and head cache; it borrows the store
 * its tree lives in, the key that signs its heads, and the service whose
 * health it reports. Nothing else in the oracle is needed, so the log can run
 * in a process of its own.
 */
#ifndef TLOG_H
#define TLOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/answer.h"
#include "pk/bus.h"
#include "pk/crypto.h"
#include "pk/merkle.h"
#include "pk/runner.h"
#include "pk/service.h"
#include "pk/store.h"

#define TLOG_SOURCES 5

#define TLOG_RECENT_HEADS 32 /* heads published that are kept, for the log page */

typedef struct tlog_source {
    const char *stream;  /* source stream */
    const char *filter;  /* subject filter */
    const char *durable; /* durable consumer, shared by every instance */
} tlog_source;

extern const tlog_source tlog_sources[TLOG_SOURCES];

typedef struct tlog_cfg {
    const pk_common_cfg *common; /* connection settings of the appenders' connections */
    int batch;                   /* source messages per log batch */
    int64_t every_ms;            /* a batch short of `batch` is appended this long after it came */
    int64_t head_every_ms;       /* signed heads published at most this often while it grows */
    pk_metric *m_size;           /* gauge: leaves (optional) */
    pk_metric *m_appended;       /* counter: source messages this instance appended (optional) */
    pk_metric *m_heads;          /* counter: heads published (optional) */
} tlog_cfg;

typedef struct tlog tlog;

typedef struct tlog_appender {
    tlog *log;              /* the log */
    const tlog_source *src; /* what it appends */
    pk_bus *bus;            /* own connection */
    pk_consumer consumer;   /* durable consumer shared by every instance */
    pk_runner runner;       /* its loop */
    char what[64];          /* "log of PACTUM_EVENTS" */
    pthread_t thread;       /* its thread */
    bool started;           /* the thread runs */
} tlog_appender;

struct tlog {
    tlog_cfg cfg;                       /* settings (copied) */
    pk_service *svc;                    /* borrowed: health, retries */
    pk_bus *bus;                        /* borrowed: records are read, heads published */
    pk_store *store;                    /* borrowed: the tree lives here */
    const pk_keypair *kp;               /* borrowed: signs tree heads */
    char log_id[PK_LOG_ID_LEN + 1];     /* hex id of the key (pk_log_id) */
    MDB_dbi meta;                       /* log_size, log_seq, hw_<stream> */
    MDB_dbi nodes;                      /* level (1 byte) be64 index -> perfect subtree hash */
    MDB_dbi leaves;                     /* be64 index -> LogLeaf bytes */
    MDB_dbi refs;                       /* stream \0 be64 seq -> be64 index */
    MDB_dbi by_agent;                   /* agent \0 be64 index -> "" */
    atomic_ullong size;                 /* leaves committed */
    pthread_mutex_t head_lock;          /* guards the head cache */
    uint64_t head_size;                 /* size of the cached head */
    uint8_t *head;                      /* the last head signed (signing costs more than
                                         * the answer, so it is reused while the log has
                                         * not grown) */
    size_t head_len;                    /* its length */
    uint8_t *recent[TLOG_RECENT_HEADS]; /* heads published, a ring (under head_lock) */
    size_t recent_len[TLOG_RECENT_HEADS];
    unsigned recent_next;                  /* the slot the next one takes */
    uint64_t published_size;               /* size of the last head published */
    int64_t published_mono_ms;             /* when */
    tlog_appender appenders[TLOG_SOURCES]; /* one per source */
    pk_consumer reader;                    /* the builder's consumer of PACTUM_LOG */
    pk_runner builder;                     /* its loop */
    pthread_t builder_thread;              /* its thread */
    bool builder_started;                  /* the thread runs */
};

/*
 * Open the log's databases in store (nothing is started). bus may be NULL
 * (offline: no records, no threads). Every borrowed pointer must outlive l.
 */
pk_status tlog_open(tlog *l, const tlog_cfg *cfg, pk_service *svc, pk_bus *bus, pk_store *store,
                    const pk_keypair *kp) PK_MUST_CHECK;

/* Start the appenders and the builder; they run until pk_shutdown. */
pk_status tlog_start(tlog *l) PK_MUST_CHECK;

/* Wait for the threads (pk_shutdown must be set), then release everything. */
void tlog_close(tlog *l);

/* Leaves committed, as seen by txn. */
uint64_t tlog_size(tlog *l, MDB_txn *txn);

pk_status tlog_root(tlog *l, MDB_txn *txn, uint64_t size, uint8_t root[PK_HASH]) PK_MUST_CHECK;

/* A signed tree head of the first `size` leaves. *out: caller frees. */
pk_status tlog_head(tlog *l, MDB_txn *txn, uint64_t size, uint8_t **out, size_t *len) PK_MUST_CHECK;

/*
 * The signed heads this instance published lately, newest first: copies into heads[] (the
 * caller frees each), at most max of them (TLOG_RECENT_HEADS are kept); how many.
 */
int tlog_recent_heads(tlog *l, uint8_t **heads, size_t *lens, int max);

/* The hash of the perfect subtree of 2^level leaves starting at leaf index * 2^level. */
pk_status tlog_node(tlog *l, MDB_txn *txn, unsigned level, uint64_t index,
                    uint8_t h[PK_HASH]) PK_MUST_CHECK;

pk_status tlog_path(tlog *l, MDB_txn *txn, uint64_t index, uint64_t size, uint8_t path[][PK_HASH],
                    size_t *n) PK_MUST_CHECK;

pk_status tlog_consistency(tlog *l, MDB_txn *txn, uint64_t first, uint64_t second,
                           uint8_t path[][PK_HASH], size_t *n) PK_MUST_CHECK;

/* The leaf of a stream message, if logged. */
pk_status tlog_find(tlog *l, MDB_txn *txn, const char *stream, uint64_t seq,
                    uint64_t *index) PK_MUST_CHECK;

/* The LogLeaf bytes of a leaf (borrowed from txn). */
pk_status tlog_leaf(tlog *l, MDB_txn *txn, uint64_t index, MDB_val *leaf) PK_MUST_CHECK;

/* The stream message a leaf commits to, read from its stream. *out: caller frees. */
pk_status tlog_record(tlog *l, const char *stream, uint64_t seq, uint8_t **out,
                      size_t *len) PK_MUST_CHECK;

/*
 * Append one leaf (LogLeaf bytes) at the end of the tree in txn, a write
 * transaction: its node hashes, the leaf, the reference from its source
 * message and the agent index. *size is the tree's size, advanced by one.
 * The builder appends every leaf this way (and tests build trees with it).
 */
pk_status tlog_append_leaf(tlog *l, MDB_txn *txn, const uint8_t *leaf, size_t len,
                           const char *stream, uint64_t stream_seq, const char *agent,
                           uint64_t *size) PK_MUST_CHECK;

#endif
