/*
 * oracle - answers public trust queries from its own read model.
 *
 * The read model is built from the PACTUM_TRUST stream (and the registry),
 * never from the scorer's files, so an oracle can run on another host. Each
 * instance keeps its model in its own LMDB folder and resumes from the last
 * stream sequence it applied. Queries arrive by request-reply on
 * pactum.oracle.trust in the queue group "oracle", so instances share the load.
 */
#ifndef PK_ORACLE_H
#define PK_ORACLE_H

#include <pthread.h>
#include <jansson.h>
#include <stdatomic.h>

#include "pk/bus.h"
#include "pk/crypto.h"
#include "pk/merkle.h"
#include "pk/pact.h"
#include "pk/registry.h"
#include "pk/service.h"
#include "pk/store.h"

typedef struct oracle_cfg {
    pk_common_cfg common;  /* shared options */
    long long history;     /* tier changes returned by default */
    const char *key_path;  /* the signing key ("": <data-dir>/oracle/oracle.key, made if missing) */
    const char *http;      /* HTTP listen address, "host:port"; "" or "off": none */
    int64_t attest_ttl_ms; /* how long an attestation is valid */
    int64_t head_every_ms; /* signed tree heads published at most this often while the log grows */
    long long log_batch;   /* source messages per log batch */
    int64_t log_every_ms;  /* a log batch short of log_batch is appended this long after it came */
    int64_t reuse_ms;      /* a signed trust answer is sent again for this long; 0: never */
} oracle_cfg;

enum {
    OM_QUERIES,
    OM_UNKNOWN,
    OM_BAD,
    OM_CHANGES,
    OM_DUPLICATES,
    OM_LAG,
    OM_LOG_SIZE,
    OM_LOG_APPENDED,
    OM_HEADS,
    OM_ALLOW,
    OM_DENY,
    OM_APPROVAL,
    OM_HTTP,
    OM_HTTP_4XX,
    OM_LMDB_USED,
    OM_LMDB_MAP,
    OM_REUSED,
    OM_COUNT
};

#define ORACLE_LOG_SOURCES 5

typedef struct oracle_log_source {
    const char *stream;  /* source stream */
    const char *filter;  /* subject filter */
    const char *durable; /* durable consumer, shared by every oracle instance */
} oracle_log_source;

extern const oracle_log_source oracle_log_sources[ORACLE_LOG_SOURCES];

#define ORACLE_REUSE_SLOTS 512 /* agents whose last trust answer is kept */

typedef struct oracle_reuse oracle_reuse;

typedef struct oracle {
    const oracle_cfg *cfg;  /* borrowed configuration */
    pk_service svc;         /* health, metrics */
    pk_bus *bus;            /* connection */
    pk_store *store;        /* read model */
    pk_registry *reg;       /* registry copy */
    uint32_t partitions;    /* partitions of the streams */
    MDB_dbi reports;        /* agent -> TrustReport (state, last violation, seq) */
    MDB_dbi tiers;          /* agent \0 be64 change_seq -> TierChange */
    MDB_dbi governance;     /* agent \0 be64 change_seq -> GovernanceEntry */
    MDB_dbi meta;           /* trust_seq, log_size, log_seq, hw_<stream> */
    MDB_dbi violations;     /* agent \0 be64 at_ms be64 vseq -> severity (1 byte) */
    MDB_dbi log_nodes;      /* level (1 byte) be64 index -> hash of a perfect subtree */
    MDB_dbi log_leaves;     /* be64 index -> LogLeaf bytes */
    MDB_dbi log_refs;       /* stream \0 be64 seq -> be64 index */
    MDB_dbi log_agent;      /* agent \0 be64 index -> "" */
    pk_consumer trust;      /* ephemeral consumer of PACTUM_TRUST */
    pk_consumer log_reader; /* ephemeral consumer of PACTUM_LOG */
    pk_keypair kp;          /* signs answers and tree heads */
    char log_id[33];        /* hex id of the log key */
    atomic_ullong log_size; /* leaves committed */
    uint64_t head_size;     /* size of the last head published */
    int64_t head_mono_ms;   /* when it was published */
    pthread_t log_builder;
    bool log_builder_started;
    natsSubscription *subs[8 * 4]; /* request responders: 4 per subject */
    void *http;                    /* struct MHD_Daemon */
    pk_metric m[OM_COUNT];         /* counters */
    oracle_reuse *reuse;           /* signed trust answers kept for reuse, or NULL */
} oracle;

void oracle_metrics_init(oracle *o);

/* Open the read model's named databases in o->store. */
pk_status oracle_open_dbs(oracle *o);

/*
 * Reuse of signed trust answers (reuse.c). oracle_reuse_get copies the kept
 * answer to a query (the same bytes about the same agent) into *out if it is
 * still good, and otherwise sets *version for oracle_reuse_put, which keeps a
 * new answer only if nothing changed since. oracle_reuse_forget ends reuse for
 * the slots set in marked (ORACLE_REUSE_SLOTS bits; oracle_reuse_slot(agent)).
 * Without a table (reuse_ms 0) nothing is kept.
 */
pk_status oracle_reuse_open(oracle *o);
void oracle_reuse_close(oracle *o);
unsigned oracle_reuse_slot(const char *agent);
bool oracle_reuse_get(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t *version, uint8_t **out, size_t *outlen);
void oracle_reuse_put(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t version, uint64_t reg_seq, int64_t made_mono_ms,
                      const uint8_t *answer, size_t alen);
void oracle_reuse_forget(oracle *o, const uint8_t *marked);

/* Apply a batch of trust changes to the read model. */
pk_status oracle_apply(oracle *o, natsMsgList *list);

/*
 * An answer: decode the request (a protobuf message), build the answer and
 * return it as a Signed envelope under the oracle key (*out: caller frees).
 * PK_OK whenever there is an answer to send, including refusals.
 */
typedef pk_status (*oracle_answer_fn)(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                      size_t *outlen);

pk_status oracle_answer_trust(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                              size_t *outlen);
pk_status oracle_answer_pact(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                             size_t *outlen);
pk_status oracle_answer_authorize(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                  size_t *outlen);
pk_status oracle_answer_evidence(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                 size_t *outlen);
pk_status oracle_answer_attest(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                               size_t *outlen);
pk_status oracle_answer_figures(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                                size_t *outlen);
pk_status oracle_answer_log(oracle *o, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen);

/* Violations of agent (NULL: every agent) by severity, counts[w][severity] for those at
 * or after since_ms[w], in one pass, leaving out the verdicts rulings overturned. */
void oracle_count_violations(oracle *o, MDB_txn *txn, const char *agent, const int64_t *since_ms,
                             int n_windows, uint64_t (*counts)[6]);

/* counts as SeverityCount entries, most severe first; returns how many. */
size_t oracle_severity_list(const uint64_t counts[6], Pactum__V1__SeverityCount store[6],
                            Pactum__V1__SeverityCount *ptrs[6]);

/* Pacts in force now for agent, as PactRefs; free with oracle_pacts_free. */
size_t oracle_pacts_of(oracle *o, MDB_txn *txn, const char *agent, Pactum__V1__PactRef **refs,
                       size_t max);
void oracle_pacts_free(Pactum__V1__PactRef **refs, size_t n);

/* The governance section that applies to a state (its pact's, or the defaults); free it. */
void oracle_governance_of(oracle *o, MDB_txn *txn, const Pactum__V1__TrustState *s,
                          pk_governance *g);

/* Seal an answer message with the oracle key. */
pk_status oracle_seal(oracle *o, Pactum__V1__PayloadType type, const ProtobufCMessage *m,
                      uint8_t **out, size_t *len);

pk_status oracle_queries_start(oracle *o);
void oracle_queries_stop(oracle *o);

/* --- the transparency log (log.c) --- */

pk_status oracle_log_start(oracle *o);
void oracle_log_stop(oracle *o);
/* Leaves committed, as seen by txn. */
uint64_t oracle_log_size(oracle *o, MDB_txn *txn);
pk_status oracle_log_root(oracle *o, MDB_txn *txn, uint64_t size, uint8_t root[PK_HASH]);
/* A signed tree head of the first `size` leaves, signed now. *out: caller frees. */
pk_status oracle_log_head(oracle *o, MDB_txn *txn, uint64_t size, uint8_t **out, size_t *len);
pk_status oracle_log_path(oracle *o, MDB_txn *txn, uint64_t index, uint64_t size,
                          uint8_t path[][PK_HASH], size_t *n);
pk_status oracle_log_consistency(oracle *o, MDB_txn *txn, uint64_t first, uint64_t second,
                                 uint8_t path[][PK_HASH], size_t *n);
/* The leaf of a stream message, if logged. */
pk_status oracle_log_find(oracle *o, MDB_txn *txn, const char *stream, uint64_t seq,
                          uint64_t *index);
/* The LogLeaf bytes of a leaf (borrowed from txn). */
pk_status oracle_log_leaf(oracle *o, MDB_txn *txn, uint64_t index, MDB_val *leaf);
/* The stream message a leaf commits to, read from its stream. *out: caller frees. */
pk_status oracle_log_record(oracle *o, const char *stream, uint64_t seq, uint8_t **out,
                            size_t *len);

/* --- HTTP (http.c) --- */

/*
 * Read an authorize request's JSON body for agent into q (its strings point
 * into *doc, which the caller frees with json_decref). false with a sentence
 * in why if the body is not a JSON object of the expected fields.
 */
bool oracle_authorize_body(const char *body, size_t len, char *agent,
                           Pactum__V1__AuthorizeRequest *q, json_t **doc, char *why, size_t wlen);

pk_status oracle_http_start(oracle *o);
void oracle_http_stop(oracle *o);

#endif
