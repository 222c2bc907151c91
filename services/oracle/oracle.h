/*
 * oracle - answers public trust queries from its own read model, and keeps
 * the transparency log (tlog.h).
 *
 * The read model is built from the PACTUM_TRUST stream (and the registry),
 * never from the scorer's files, so an oracle can run on another host. Each
 * instance keeps its model in its own LMDB folder and resumes from the last
 * stream sequence it applied. Questions arrive by request-reply on
 * pactum.oracle.* in the queue group "oracle", so instances share the load,
 * and over HTTP/JSON, where each route calls the same answer function.
 *
 * Files: model.c (the read model), query.c (what every answer reads, and the
 * responder table), report.c (trust and pact reports), authorize.c,
 * evidence.c (evidence, attestations, log proofs), figures.c, http.c,
 * reuse.c (signed answers sent again), tlog.c (the log).
 */
#ifndef ORACLE_H
#define ORACLE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pk/authorize.h"
#include "pk/bus.h"
#include "pk/crypto.h"
#include "pk/merkle.h"
#include "pk/pact.h"
#include "pk/pactcache.h"
#include "pk/ratelimit.h"
#include "pk/registry.h"
#include "pk/responder.h"
#include "pk/runner.h"
#include "pk/service.h"
#include "pk/store.h"
#include "tlog.h"

typedef struct oracle_cfg {
    pk_common_cfg common; /* shared options */
    long long history;    /* tier changes returned by default */
    const char *key_path; /* the signing key ("": <data-dir>/oracle/oracle.key, made if missing) */
    const char *http;     /* HTTP listen address, "host:port"; "" or "off": none */
    long long http_connections; /* HTTP connections at once, all clients */
    long long http_per_client;  /* HTTP connections at once from one address */
    int64_t http_timeout_ms;    /* an idle HTTP connection is closed after this long */
    int64_t attest_ttl_ms;      /* how long an attestation is valid */
    int64_t head_every_ms; /* signed tree heads published at most this often while the log grows */
    long long log_batch;   /* source messages per log batch */
    int64_t log_every_ms;  /* a log batch short of log_batch is appended this long after it came */
    int64_t reuse_ms;      /* a signed trust answer is sent again for this long; 0: never */
    long long authorize_rate;    /* decisions a second per API client; 0: no limit */
    long long http_rate;         /* HTTP requests a second per client address; 0: no limit */
    const char *unbound;         /* agents no pact binds: "approval", "deny" or "allow" */
    const char *witnesses;       /* "<URL> <verifier key>,...": witnesses asked to cosign */
    int64_t witness_every_ms;    /* how often the grown log's checkpoint goes to them */
    bool webhooks;               /* this instance keeps subscriptions and delivers to them */
    const char *webhook_hosts;   /* "public": no loopback or private addresses; "any" */
    int64_t webhook_backoff_ms;  /* the first retry's wait (doubling, to webhook_backoff_max) */
    int64_t webhook_backoff_max; /* the longest wait between attempts */
    int64_t webhook_timeout_ms;  /* one attempt's bound, connection included */
} oracle_cfg;

/* Its own metrics (metrics.def). */
enum {
#define PK_METRIC(id, ...) id,
#include "metrics.def"
#undef PK_METRIC
    OM_COUNT
};

#define ORACLE_REUSE_SLOTS 512 /* agents whose last trust answer is kept */

typedef struct oracle_reuse oracle_reuse;
typedef struct oracle_audit oracle_audit;
typedef struct oracle_changes oracle_changes;

#define ORACLE_CHANGES_KEPT 4096 /* the newest trust changes a live stream can resume from */
typedef struct oracle_witnesses oracle_witnesses;
typedef struct oracle_hooks oracle_hooks;

#define ORACLE_HELD_SLOTS 64 /* containments decoded and not yet committed, at once */

/*
 * A point of an agent's score series, one per trust change (the agent page's chart): be64
 * time (bus clock, ms), be32 score_ppm, be32 lower_ppm, the tier, and what happened.
 */
#define ORACLE_POINT_BYTES      18
#define ORACLE_MARK_VIOLATION   1
#define ORACLE_MARK_CONTAINMENT 2
#define ORACLE_MARK_REENTRY     4
#define ORACLE_MARK_OVERRIDE    8
#define ORACLE_MARK_DISPUTE     16

/* What a trust change is, for webhook filters (bits; names in webhooks.c). */
#define ORACLE_KIND_TIER           1   /* tier_changed */
#define ORACLE_KIND_CONTAINED      2   /* contained: into contained or suspended */
#define ORACLE_KIND_VIOLATION      4   /* violation: a verdict that is a violation */
#define ORACLE_KIND_DISPUTE_OPENED 8   /* dispute_opened */
#define ORACLE_KIND_DISPUTE_RULED  16  /* dispute_ruled */
#define ORACLE_KIND_REENTRY        32  /* reentry: out of contained or suspended */
#define ORACLE_KIND_OVERRIDE       64  /* override */
#define ORACLE_KIND_SETTLEMENT     128 /* settlement: an engagement's statement */
#define ORACLE_KINDS               8

/* A containment the read model has decoded and is committing (see oracle_held_state). */
typedef struct oracle_held {
    char agent[PK_ID_MAX + 1]; /* "" when the slot is free */
    uint64_t trust_seq;        /* its PACTUM_TRUST sequence */
    uint64_t change_seq;       /* the agent's change number */
    uint8_t *state;            /* the new TrustState, packed */
    size_t len;
} oracle_held;

typedef struct oracle {
    const oracle_cfg *cfg;       /* borrowed configuration */
    pk_service svc;              /* health, metrics */
    pk_bus *bus;                 /* connection */
    pk_bus *model_bus;           /* the read model's own connection (its trust consumer) */
    pk_store *store;             /* read model and log */
    pk_registry *reg;            /* registry copy */
    pk_pact_cache *pacts;        /* compiled pacts (authorize, governance sections) */
    uint32_t partitions;         /* partitions of the streams */
    int unbound;                 /* pk_unbound_policy of cfg->unbound */
    MDB_dbi reports;             /* agent -> TrustReport (state, last violation, seq) */
    MDB_dbi tiers;               /* agent \0 be64 change_seq -> TierChange */
    MDB_dbi governance;          /* agent \0 be64 change_seq -> GovernanceEntry */
    MDB_dbi meta;                /* trust_seq (and the log's keys, see tlog.h) */
    MDB_dbi violations;          /* agent \0 be64 at_ms be64 vseq -> severity (1 byte) */
    MDB_dbi series;              /* agent \0 be64 change_seq -> a point (ORACLE_POINT_BYTES) */
    MDB_dbi settlements;         /* agent \0 be64 trust_seq -> StatementRef */
    pk_consumer trust;           /* the read model's durable consumer of PACTUM_TRUST */
    pk_runner model;             /* the read model's loop */
    pthread_t warmer;            /* maps the store's pages ahead of queries, after the start */
    bool warming;                /* the warmer was started (joined at stop) */
    atomic_bool warm_stop;       /* asks the warmer to stop */
    pk_keypair kp;               /* signs answers and tree heads */
    tlog log;                    /* the transparency log */
    pk_responders answers;       /* pactum.oracle.* */
    void *http;                  /* struct MHD_Daemon */
    pk_metric m[OM_COUNT];       /* counters */
    oracle_reuse *reuse;         /* signed trust answers kept for reuse, or NULL */
    pk_ratelimit *clients;       /* authorize decisions per API client */
    pk_ratelimit *readers;       /* HTTP requests per client address */
    oracle_witnesses *witnesses; /* cosignatures of checkpoints, or NULL without witnesses */
    pthread_mutex_t http_mu;     /* guards the last HTTP answer rendered */
    uint8_t *http_signed;        /* its signed bytes, *http_signed_len of them */
    size_t http_signed_len;
    char *http_text;         /* its JSON body */
    unsigned http_status;    /* its HTTP status */
    oracle_changes *changes; /* live streams of trust changes (changes.c) */
    oracle_hooks *hooks;     /* webhook subscriptions and their deliverer, or NULL */
    oracle_audit *audit;     /* decision records on their way to PACTUM_AUDIT (audit.c) */
    pthread_mutex_t held_mu; /* guards held */
    oracle_held held[ORACLE_HELD_SLOTS];
} oracle;

/*
 * Witnesses (witnesses.c): with --witnesses, a thread sends the grown log's checkpoint to each
 * and keeps the cosignatures that verify. oracle_witnessed_checkpoint returns (caller frees)
 * the latest checkpoint sent with the cosignatures it got, or NULL without witnesses or
 * before the first round.
 */
pk_status oracle_witnesses_start(oracle *o) PK_MUST_CHECK;
void oracle_witnesses_stop(oracle *o);
char *oracle_witnessed_checkpoint(oracle *o);

/*
 * Decision records (audit.c). oracle_audit_send sends a decision's record to PACTUM_AUDIT
 * under subject, de-duplicated by its decision id, ahead of its answer on the same
 * connection, without waiting for the stream to acknowledge it; an error (the decision is
 * then not made) while a record is not stored, while the oracle is not connected, or while
 * too many are unacknowledged. Records the stream did not store are sent again until it does.
 */
pk_status oracle_audit_start(oracle *o) PK_MUST_CHECK;
pk_status oracle_audit_send(oracle *o, const char *subject, const uint8_t *rec, size_t len,
                            const char *decision_id) PK_MUST_CHECK;
/* After the last decision: wait (bounded) for the last acknowledgements, then stop. */
void oracle_audit_stop(oracle *o);

/* --- the read model (model.c) --- */

void oracle_metrics_init(oracle *o);

/* Open the read model's named databases in o->store. */
pk_status oracle_open_dbs(oracle *o) PK_MUST_CHECK;

/* Apply a batch of trust changes to the read model (a pk_batch_fn; ctx: the oracle). */
pk_status oracle_apply(void *ctx, natsMsgList *list) PK_MUST_CHECK;

/*
 * Containments on their way into the read model: oracle_apply holds each change that contains
 * or suspends an agent from the moment it is decoded (it is stored in PACTUM_TRUST already)
 * until its batch is committed, so that authorize denies without waiting for the commit.
 * oracle_held_state returns (caller frees) the held state of agent if its change is newer
 * than change_seq, with its sequence in *trust_seq; else NULL.
 */
void oracle_held_init(oracle *o);
void oracle_held_free(oracle *o);
/* Hold ch if it contains or suspends its agent (a full table only loses the head start). */
void oracle_hold(oracle *o, const Pactum__V1__TrustChange *ch, uint64_t trust_seq);
/* Everything up to trust_seq is committed: what was held for it is in LMDB now. */
void oracle_release_held(oracle *o, uint64_t trust_seq);
Pactum__V1__TrustState *oracle_held_state(oracle *o, const char *agent, uint64_t change_seq,
                                          uint64_t *trust_seq);

/* Between batches: bring the registry copy up to date (a pk_idle_fn). */
pk_status oracle_model_idle(void *ctx, bool caught_up) PK_MUST_CHECK;

/* The last PACTUM_TRUST sequence the read model applied, from its LMDB (ctx: the oracle). */
pk_status oracle_model_position(void *ctx, uint64_t *applied) PK_MUST_CHECK;

/*
 * Reuse of signed trust answers (reuse.c). oracle_reuse_get copies the kept
 * answer to a query (the same bytes about the same agent) into *out if it is
 * still good, and otherwise sets *version for oracle_reuse_put, which keeps a
 * new answer only if nothing changed since. oracle_reuse_forget ends reuse for
 * the slots set in marked (ORACLE_REUSE_SLOTS bits; oracle_reuse_slot(agent)).
 * Without a table (reuse_ms 0) nothing is kept.
 */
pk_status oracle_reuse_open(oracle *o) PK_MUST_CHECK;
void oracle_reuse_close(oracle *o);
unsigned oracle_reuse_slot(const char *agent);
bool oracle_reuse_get(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t *version, uint8_t **out, size_t *outlen);
void oracle_reuse_put(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t version, uint64_t reg_seq, int64_t made_mono_ms,
                      const uint8_t *answer, size_t alen);
void oracle_reuse_forget(oracle *o, const uint8_t *marked);

/* --- answers --- */

/*
 * An answer (a pk_handler_fn with the oracle as ctx): decode the request (a
 * protobuf message), build the answer and return it as a Signed envelope
 * under the oracle key (*out: caller frees). PK_OK whenever there is an
 * answer to send, refusals included.
 */
typedef pk_handler_fn oracle_answer_fn;

#define ORACLE_ANSWER(name)                                                                        \
    pk_status name(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen)       \
        PK_MUST_CHECK

ORACLE_ANSWER(oracle_answer_trust);       /* TrustQuery -> TrustReport (report.c) */
ORACLE_ANSWER(oracle_answer_pact);        /* PactQuery -> PactReport (report.c) */
ORACLE_ANSWER(oracle_answer_authorize);   /* AuthorizeRequest -> AuthorizeDecision (authorize.c) */
ORACLE_ANSWER(oracle_answer_evidence);    /* EvidenceQuery -> EvidencePage (evidence.c) */
ORACLE_ANSWER(oracle_answer_attest);      /* AttestQuery -> Attestation (evidence.c) */
ORACLE_ANSWER(oracle_answer_engagements); /* EngagementQuery -> EngagementReport (engagements.c) */
ORACLE_ANSWER(oracle_answer_figures);     /* FiguresQuery -> GovernanceFigures (figures.c) */
ORACLE_ANSWER(oracle_answer_log);         /* LogQuery -> LogAnswer (evidence.c) */

/* Answer every pactum.oracle.* subject on the bus. */
pk_status oracle_queries_start(oracle *o) PK_MUST_CHECK;

/* --- what answers share (query.c) --- */

#define Q_OK           PACTUM__V1__QUERY_STATUS__QUERY_OK
#define Q_BAD          PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST
#define Q_UNKNOWN      PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT
#define Q_UNAVAILABLE  PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE
#define Q_NOT_FOUND    PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND
#define Q_UNAUTHORIZED PACTUM__V1__QUERY_STATUS__QUERY_UNAUTHORIZED
#define Q_RATE_LIMITED PACTUM__V1__QUERY_STATUS__QUERY_RATE_LIMITED

/* A read transaction that sees agent if the registry has it (refreshed once if not). */
pk_status oracle_begin_for(oracle *o, const char *agent, MDB_txn **txn, bool *known) PK_MUST_CHECK;

/* What an answer says of itself: its status and the sentence that goes with it. */
typedef struct oracle_reply {
    Pactum__V1__QueryStatus status; /* Q_OK unless refused */
    char msg[256];                  /* why, or a note; "" for none */
} oracle_reply;

/*
 * Refuse: set the reply's status and sentence (printf format). Bad requests
 * and questions about unknown agents are counted. Returns false, for checks
 * written as `return oracle_refuse(...)`.
 */
bool oracle_refuse(oracle *o, oracle_reply *r, Pactum__V1__QueryStatus status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A question about one agent: true with a read transaction that sees it in
 * *txn, or false with the reply refused (a bad id, or `what` when agent is
 * NULL because the request did not decode; the read model unavailable; an
 * unknown agent).
 */
bool oracle_agent_txn(oracle *o, oracle_reply *r, const char *what, const char *agent,
                      MDB_txn **txn);

/* The agent's stored report (caller frees), or NULL. */
Pactum__V1__TrustReport *oracle_stored_report(oracle *o, MDB_txn *txn, const char *agent);

/* The agent's stored state, or a new agent's (watch, no evidence) in *initial. */
const Pactum__V1__TrustState *oracle_state_of(Pactum__V1__TrustReport *stored,
                                              Pactum__V1__TrustState *initial, const char *agent);

/* Violations of agent (NULL: every agent) by severity, counts[w][severity] for those at
 * or after since_ms[w], in one pass, leaving out the verdicts rulings overturned. */
void oracle_count_violations(oracle *o, MDB_txn *txn, const char *agent, const int64_t *since_ms,
                             int n_windows, uint64_t (*counts)[PK_SEVERITIES]);

/* counts as SeverityCount entries, most severe first; returns how many. */
size_t oracle_severity_list(const uint64_t counts[PK_SEVERITIES],
                            Pactum__V1__SeverityCount store[PK_SEVERITIES],
                            Pactum__V1__SeverityCount *ptrs[PK_SEVERITIES]);

/* Pacts in force now for agent, as PactRefs; free with oracle_pacts_free. */
size_t oracle_pacts_of(oracle *o, MDB_txn *txn, const char *agent, Pactum__V1__PactRef **refs,
                       size_t max);
void oracle_pacts_free(Pactum__V1__PactRef **refs, size_t n);

/*
 * The governance section that applies to a state (its pact's, or the
 * defaults), valid until oracle_governance_release; *held is what to release.
 */
const pk_governance *oracle_governance_of(oracle *o, MDB_txn *txn, const Pactum__V1__TrustState *s,
                                          const pk_compiled **held);

/* A log leaf with its record and inclusion proof, as answers carry it (evidence.c). */
typedef struct oracle_entry {
    Pactum__V1__EvidenceEntry e;
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH];
    ProtobufCBinaryData pathv[PK_MERKLE_PATH_MAX];
    uint8_t *leaf;   /* owned */
    uint8_t *record; /* owned */
} oracle_entry;

/* Leaf index (l, its bytes in leaf) with its record and its proof in a tree of size leaves. */
pk_status oracle_entry_of(oracle *o, MDB_txn *txn, uint64_t index, uint64_t size,
                          const MDB_val *leaf, const Pactum__V1__LogLeaf *l,
                          oracle_entry *e) PK_MUST_CHECK;

/* Seal an answer message with the oracle key. */
pk_status oracle_seal(oracle *o, Pactum__V1__PayloadType type, const ProtobufCMessage *m,
                      uint8_t **out, size_t *len) PK_MUST_CHECK;

/*
 * Is token ("<client id>:<secret>") the token of a registered API client? Its id into id
 * ("" when not).
 */
bool oracle_client_token(oracle *o, const char *token, char *id, size_t idlen);

/* Count a refused question (bad, unknown agent). */
void oracle_count(oracle *o, int metric);

/* The kinds of a trust change (ORACLE_KIND_* bits). */
unsigned oracle_change_kinds(const Pactum__V1__TrustChange *ch);

/* --- webhooks (webhooks.c) --- */

pk_status oracle_hooks_start(oracle *o) PK_MUST_CHECK;
void oracle_hooks_stop(oracle *o);
/*
 * POST /v1/webhooks (a Signed WebhookSubscription), GET /v1/webhooks and GET
 * /v1/webhooks/<id> (the client's token): the HTTP status and the JSON answer.
 */
unsigned oracle_hooks_subscribe(oracle *o, const uint8_t *body, size_t len, json_t **out);
unsigned oracle_hooks_list(oracle *o, const char *token, const char *id, json_t **out);

/* --- live streams (changes.c) --- */

/*
 * A change as the streams and webhooks send it: {seq, agent_id, change (JSON), signed (the
 * ChangeNotice, base64)}; NULL if it cannot be signed. The caller owns it.
 */
json_t *oracle_change_doc(oracle *o, uint64_t seq, const char *agent, const uint8_t *data,
                          size_t len);

pk_status oracle_changes_open(oracle *o) PK_MUST_CHECK;
/* Every stream ends (before the HTTP server stops); then free. */
void oracle_changes_close_streams(oracle *o);
void oracle_changes_free(oracle *o);
/* A change the read model decoded (the bytes as stored, at seq in PACTUM_TRUST). */
void oracle_changes_add(oracle *o, uint64_t seq, const char *agent, const void *data, size_t len);
/*
 * A Server-Sent Events response of the changes of agent (NULL or "": every agent) after
 * sequence `after`, or from now on; NULL if too many streams are open.
 */
struct MHD_Connection;
struct MHD_Response *oracle_changes_response(oracle *o, struct MHD_Connection *c, const char *agent,
                                             uint64_t after, bool from_now);

/* --- pages (pages.c) --- */

/*
 * The HTML page for url ("/", "/log", "/agents/<id>"; leaf: the /log page's leaf query, or
 * NULL): its HTTP status and body (*out, caller frees; NULL on failure with 500).
 */
unsigned oracle_page(oracle *o, const char *url, const char *leaf, char **out, size_t *len);

/* The pages' stylesheet and script (web/, embedded at build time). */
extern const unsigned char oracle_web_css[], oracle_web_js[];
extern const unsigned long oracle_web_css_len, oracle_web_js_len;

/* --- HTTP (http.c) --- */

/*
 * Read an authorize request's JSON body for agent into q (its strings point
 * into *doc, which the caller frees with json_decref). false with a sentence
 * in why if the body is not a JSON object of the expected fields.
 */
bool oracle_authorize_body(const char *body, size_t len, char *agent,
                           Pactum__V1__AuthorizeRequest *q, json_t **doc, char *why, size_t wlen);

pk_status oracle_http_start(oracle *o) PK_MUST_CHECK;
void oracle_http_stop(oracle *o);

#endif
