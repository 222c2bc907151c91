/*
 * ingest - takes signed envelopes from agents and reporters, checks them, and
 * either publishes each event, normalized, to PACTUM_EVENTS or refuses it
 * with a reason on pactum.rejected.<reason>. Also answers registrations of
 * agents, principals and pacts (registrar.c) and governance records
 * (governance.c), through one responder table (requests.c).
 */
#ifndef INGEST_H
#define INGEST_H

#include <pthread.h>

#include "pk/bus.h"
#include "pk/buspolicy.h"
#include "pk/ratelimit.h"
#include "pk/pactcache.h"
#include "pk/registry.h"
#include "pk/responder.h"
#include "pk/runner.h"
#include "pk/service.h"
#include "pk/store.h"
#include "pk/wset.h"

typedef struct ingest_cfg {
    pk_common_cfg common;     /* shared options */
    long long max_bytes;      /* largest envelope accepted */
    int64_t max_age_ms;       /* oldest event timestamp accepted, relative to arrival */
    int64_t max_skew_ms;      /* newest event timestamp accepted, relative to arrival */
    long long batch;          /* envelopes fetched per batch */
    long long verify_threads; /* threads checking a batch's signatures; 0: one per CPU */
    const char *admin_key;    /* public key that may register operators and arbiters */
    const char *issuer;       /* issuer.json from pactum setup: bus identities for registrations */
    long long rate;           /* events a second per signer; 0: no limit */
    long long burst;          /* events at once per signer */
} ingest_cfg;

/* Refusals are counted by reason: one counter per Reason value. */
#define INGEST_REASONS 21

/* Counters (metrics.def, then the refusals); order matters only for the exposition. */
enum {
#define PK_METRIC(id, ...) id,
#include "metrics.def"
#undef PK_METRIC
    M_REJECTED_FIRST, /* one counter per Reason, in Reason order (1..INGEST_REASONS) */
    M_REJECTED_LAST = M_REJECTED_FIRST + INGEST_REASONS - 1,
    M_COUNT
};

/* The signing keys registrations' bus identities are issued with (issuer.c). */
typedef struct ingest_issuer {
    bool on;                       /* a JWT bus: credentials go with receipts */
    uint8_t account[32];           /* the account they belong to */
    pk_keypair keys[PK_BUS_ROLES]; /* one scoped signing key per role */
} ingest_issuer;

#define INGEST_VERIFY_THREADS_MAX 16

typedef struct opened opened; /* an envelope opened and its signature checked (ingest.c) */

typedef struct open_job {
    natsMsg **msgs;      /* the batch */
    opened *out;         /* one per message */
    int from, to;        /* the range this job opens */
    long long max_bytes; /* larger envelopes are not opened */
} open_job;

/* A batch's envelopes being opened and checked on several threads. */
typedef struct opening {
    natsMsg **msgs; /* the batch */
    int count;
    opened *op; /* one per message (NULL: no batch) */
    int t;      /* ranges */
    pthread_t th[INGEST_VERIFY_THREADS_MAX];
    bool started[INGEST_VERIFY_THREADS_MAX]; /* on a thread of its own */
    open_job jobs[INGEST_VERIFY_THREADS_MAX];
} opening;

typedef struct ingest {
    const ingest_cfg *cfg;    /* borrowed configuration */
    pk_service svc;           /* health, metrics, instance */
    pk_bus *bus;              /* owned connection */
    pk_store *store;          /* owned LMDB environment */
    pk_registry *reg;         /* owned registry copy */
    uint32_t partitions;      /* partitions of PACTUM_EVENTS */
    MDB_dbi dedup;            /* agent \0 event id -> be64 raw seq || be64 ts || be32 index */
    MDB_dbi dedup_time;       /* be64 ts || agent \0 event id -> "" (for pruning) */
    MDB_dbi ledger;           /* agent -> GovLedger: its open disputes and live overrides */
    pk_pact_cache *pacts;     /* compiled pacts: counterparties */
    pthread_mutex_t gov_lock; /* governance records are admitted one at a time */
    pk_consumer raw;          /* durable consumer of PACTUM_RAW */
    pk_runner runner;         /* its loop */
    pk_wset *ws;              /* the batch's writes */
    pk_responders answers;    /* registration and governance requests */
    ingest_issuer issuer;     /* bus identities for registrations */
    pk_ratelimit *rate;       /* events per signer */
    pk_ratelimit *notes;      /* rate-limit dead letters per signer: one a second */
    uint8_t admin_pk[32];     /* the admin key */
    bool have_admin;          /* an admin key is configured */
    int64_t next_prune_ms;    /* when to prune the dedup table next */
    int verify_threads;       /* threads checking a batch's signatures (>= 1) */
    opening ahead[2];         /* batches read ahead, being checked (this one and the next) */
    pk_metric m[M_COUNT];     /* counters */
} ingest;

/* --- governance records: limits (ledger.c) --------------------------------------------- */

#define LEDGER_DISPUTES_PER_OPENER 4  /* open disputes of one opener about one agent */
#define LEDGER_DISPUTES_MAX        32 /* open disputes about one agent (the scorer keeps 32) */
#define LEDGER_OVERRIDES_PER_OP    4  /* live overrides of one operator on one agent */
#define LEDGER_OVERRIDES_MAX       16 /* live overrides on one agent (the scorer keeps 16) */
#define LEDGER_ENGAGEMENTS_OPEN    4 /* engagements running at once per agent (the scorer keeps 8) */

/* agent's ledger: the cached one, caught up with the stream. Caller frees (ledger_free). */
pk_status ledger_load(ingest *in, const char *agent, Pactum__V1__GovLedger **out) PK_MUST_CHECK;
pk_status ledger_store(ingest *in, const char *agent, const Pactum__V1__GovLedger *l) PK_MUST_CHECK;
void ledger_free(Pactum__V1__GovLedger *l);
/* A record stored at seq (false: out of memory). */
bool ledger_apply(Pactum__V1__GovLedger *l, const Pactum__V1__GovernanceRecord *rec, uint64_t seq);
/* Drop overrides expired at now. */
void ledger_prune(Pactum__V1__GovLedger *l, int64_t now);
int ledger_find(Pactum__V1__LedgerEntry *const *list, size_t n, const char *id);
size_t ledger_count_by(Pactum__V1__LedgerEntry *const *list, size_t n, const char *by);
/* The buyer's signed terms inside an acceptance (and, if env, the envelope); NULL if none. */
Pactum__V1__Engagement *ledger_offer(const Pactum__V1__EngagementAcceptance *a,
                                     pk_signed_msg **env);
/* Engagements not completed whose deadline is still ahead. */
size_t ledger_open_engagements(const Pactum__V1__GovLedger *l, int64_t now);
/* What the ledger says of an engagement. */
typedef struct ledger_eng {
    char buyer[PK_ID_MAX + 2];
    int64_t deadline_ms;
    bool done; /* its completion is recorded */
} ledger_eng;

/* Agent's engagement id (newest: read what every instance added, unless it has ended):
 * PK_ENOTFOUND if the agent has none of that id. */
pk_status ledger_engagement(ingest *in, const char *agent, const char *id, bool newest,
                            ledger_eng *out) PK_MUST_CHECK;

/* Set up the metric table. */
void ingest_metrics_init(ingest *in);

/* Count a refusal by reason. */
void ingest_count_reject(ingest *in, Pactum__V1__Reason reason);

/*
 * Process one fetched batch of raw envelopes (a pk_batch_fn; ctx: the
 * ingest): check every envelope, publish accepted events and refusals, and
 * once the bus has them, record the event ids and acknowledge. On a bus or
 * store failure nothing is recorded or acknowledged; the batch is given again.
 */
pk_status ingest_process(void *ctx, natsMsgList *batch) PK_MUST_CHECK;

/*
 * The runner's read-ahead (pk_ahead_fn; ctx: the ingest): start checking the
 * signatures of the batch read ahead on threads of their own, or drop that
 * work for a batch that will not be processed.
 */
void ingest_prepare(void *ctx, natsMsgList *batch);
void ingest_discard(void *ctx, natsMsgList *batch);

/* Between batches: prune the dedup table now and then, bring the registry copy up to date. */
pk_status ingest_idle(void *ctx, bool caught_up) PK_MUST_CHECK;

/* Drop dedup entries too old to matter (events that old are refused anyway). */
pk_status ingest_prune(ingest *in, int64_t now_ms) PK_MUST_CHECK;

/* --- requests (registrations and governance records) --------------------------------- */

/* A request being answered: its bytes, and the outcome every receipt carries. */
/* A kind of signed request answered on the bus. */
typedef struct ingest_req_kind {
    const char *subject;  /* where it arrives */
    const char *what;     /* "registration", "governance record": for the log */
    int m_ok, m_rejected; /* counters of its outcome */
    size_t max_bytes;     /* larger requests are refused unopened */
} ingest_req_kind;

typedef struct ingest_req {
    ingest *in;                  /* the service */
    const ingest_req_kind *kind; /* what it is */
    const uint8_t *data;         /* the request (borrowed) */
    size_t len;                  /* its length */
    bool ok;                     /* accepted */
    Pactum__V1__Reason reason;   /* why not */
    char text[1024];             /* the receipt's sentence */
} ingest_req;

/* Refuse the request: the sentence, a counted dead-letter record with the reason. */
void ingest_refuse(ingest_req *r, Pactum__V1__Reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Accept the request with a sentence. */
void ingest_accept(ingest_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The request's envelope, opened and its signature checked; NULL after refusing it. */
pk_signed_msg *ingest_open_request(ingest_req *r);

/* Answer pactum.registry.submit (a pk_handler_fn; ctx: the ingest). */
pk_status registrar_answer(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                           size_t *outlen) PK_MUST_CHECK;

/* Answer pactum.governance.submit (a pk_handler_fn; ctx: the ingest). */
pk_status governance_answer(void *ctx, const uint8_t *req, size_t len, uint8_t **out,
                            size_t *outlen) PK_MUST_CHECK;

/* Load the signing keys from path ("" for none: no credentials are issued). */
pk_status issuer_load(ingest_issuer *is, const char *path) PK_MUST_CHECK;
void issuer_close(ingest_issuer *is);

/* A bus identity for key as name in role; NULL without an issuer. Free with
 * issuer_credential_free. */
Pactum__V1__BusCredential *issuer_credential(const ingest_issuer *is, pk_bus_role role,
                                             const uint8_t key[32], const char *name);
void issuer_credential_free(Pactum__V1__BusCredential *c);

#endif
