/*
 * pk/bus.h - the NATS connection, JetStream streams and consumers, and the
 * subjects Pactum uses. docs/protocol.md describes every subject.
 *
 * Ownership: a pk_bus owns its connection and JetStream context; messages
 * fetched with pk_consumer_fetch are owned by the caller's natsMsgList.
 */
#ifndef PK_BUS_H
#define PK_BUS_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/crypto.h"
#include "pk/status.h"

/* Streams. */
#define PK_STREAM_REGISTRY  "PACTUM_REGISTRY"
#define PK_STREAM_RAW       "PACTUM_RAW"
#define PK_STREAM_EVENTS    "PACTUM_EVENTS"
#define PK_STREAM_VERDICTS  "PACTUM_VERDICTS"
#define PK_STREAM_TRUST     "PACTUM_TRUST"
#define PK_STREAM_REJECTED  "PACTUM_REJECTED"
#define PK_STREAM_AUDIT     "PACTUM_AUDIT"
#define PK_STREAM_LOG       "PACTUM_LOG"
#define PK_STREAM_APPROVALS "PACTUM_APPROVALS"

/* Subjects (printf formats take agent ids, partitions, reasons). */
#define PK_SUBJ_RAW                "pactum.raw.%s"           /* agent publishes Signed EventBatch */
#define PK_SUBJ_EVENTS             "pactum.events.%u.%s"     /* ingest publishes Event */
#define PK_SUBJ_VERDICTS           "pactum.verdicts.%u.%s.v" /* evaluator publishes Verdict */
#define PK_SUBJ_GOVERNANCE         "pactum.verdicts.%u.%s.g" /* ingest publishes GovernanceRecord */
#define PK_SUBJ_TRUST              "pactum.trust.%s"         /* scorer publishes TrustChange */
#define PK_SUBJ_REJECTED           "pactum.rejected.%s" /* ingest, evaluator, scorer publish Rejection */
#define PK_SUBJ_INGEST_RECEIPT     "pactum.ingest.receipt.%s" /* ingest: EnvelopeReceipt, if asked */
#define PK_SUBJ_REG_AGENT          "pactum.registry.agent.%s" /* ingest publishes RegistryRecord */
#define PK_SUBJ_REG_PACT           "pactum.registry.pact.%s"  /* ingest publishes RegistryRecord */
#define PK_SUBJ_REG_SUBMIT         "pactum.registry.submit"   /* request: Signed registration */
#define PK_SUBJ_GOV_SUBMIT         "pactum.governance.submit" /* request: Signed governance record */
#define PK_SUBJ_SCORER_DIGEST      "pactum.scorer.digest"    /* request: empty; reply JSON digest */
#define PK_SUBJ_ORACLE_TRUST       "pactum.oracle.trust"     /* request: TrustQuery */
#define PK_SUBJ_ORACLE_PACT        "pactum.oracle.pact"      /* request: PactQuery */
#define PK_SUBJ_ORACLE_AUTHORIZE   "pactum.oracle.authorize" /* request: AuthorizeRequest */
#define PK_SUBJ_ORACLE_EVIDENCE    "pactum.oracle.evidence"  /* request: EvidenceQuery */
#define PK_SUBJ_ORACLE_ATTEST      "pactum.oracle.attest"    /* request: AttestQuery */
#define PK_SUBJ_ORACLE_ENGAGEMENTS "pactum.oracle.engagements" /* request: EngagementQuery */
#define PK_SUBJ_ORACLE_FIGURES     "pactum.oracle.figures"     /* request: FiguresQuery */
#define PK_SUBJ_ORACLE_LOG         "pactum.oracle.log"         /* request: LogQuery */
#define PK_SUBJ_AUDIT              "pactum.audit.%s"   /* oracle publishes AuthorizeDecision */
#define PK_SUBJ_LOG_LEAVES         "pactum.log.leaves" /* oracle publishes LogBatch */
#define PK_SUBJ_LOG_HEAD           "pactum.log.head"   /* oracle publishes Signed TreeHead */
#define PK_SUBJ_HEALTH             "pactum.health.%s"  /* request: empty; reply JSON */
#define PK_SUBJ_EVALUATOR_PROBE    "pactum.evaluator.probe.%u" /* request: ProbeRequest */
#define PK_SUBJ_APPROVAL_USED      "pactum.approvals.%s" /* oracle publishes the Approval it used */
#define PK_SUBJ_TICK               "pactum.verdicts.%u.%s.t" /* scorer: an agent's Tick */
#define PK_SUBJ_METRICS            "pactum.metrics.%s" /* request: empty; reply Prometheus text */

#define PK_PARTITIONS_DEFAULT 4
#define PK_PARTITIONS_MAX     64

typedef struct pk_bus_opts {
    const char *url;         /* e.g. nats://127.0.0.1:4222 */
    const char *name;        /* connection name shown by the server */
    const char *user;        /* optional user */
    const char *password;    /* optional password */
    const char *creds;       /* optional .creds file: connect as that NATS user */
    const char *jwt;         /* or a user JWT ... */
    const pk_keypair *nkey;  /* ... and the key it names (signs the server's nonce) */
    const char *ca;          /* optional CA certificate file: TLS, the server checked against it */
    bool send_asap;          /* write each message at once instead of buffering; a buffered
                              * bus writes in bulk (acknowledgements, fetch requests) and
                              * pk_bus_publish_wait sends what is buffered before it waits */
    int64_t connect_wait_ms; /* keep trying to connect this long; 0 = one attempt */
    volatile int *stop;      /* if set and non-zero, stop trying to connect */
} pk_bus_opts;

/* An acknowledgement hook (pk_bus_on_acks). */
typedef void (*pk_ack_fn)(void *ctx, natsMsg *msg, const char *err);

typedef struct pk_bus {
    natsConnection *nc;      /* the connection */
    jsCtx *js;               /* JetStream context */
    atomic_bool connected;   /* false between disconnect and reconnect */
    atomic_bool closing;     /* set by pk_bus_close: disconnects are expected */
    atomic_bool closed;      /* set by the client's closed callback, its last */
    atomic_ulong pub_ok;     /* async publishes acknowledged since pk_bus_publish_reset */
    atomic_ulong pub_dup;    /* ... acknowledged as duplicates */
    atomic_ulong pub_err;    /* ... failed */
    atomic_ulong reconnects; /* times the connection came back */
    bool send_asap;          /* as opened */
    char name[64];           /* connection name */
    char inbox[64];          /* reply inbox prefix: "_INBOX.<user nkey>" as a JWT user, else "" */
    char *jwt;               /* the user JWT when connected with jwt and nkey (owned) */
    pk_keypair nkey;         /* its key (wiped at close) */
    atomic_bool denied;      /* the server refused a publish or subscription of ours */
    atomic_ulong denials;    /* how many times */
    char denial[256];        /* its words, the last time (read once denied is set) */
    atomic_bool ack_hooked;  /* an acknowledgement hook is set (then read under ack_mu) */
    pthread_mutex_t ack_mu;  /* guards the acknowledgement hook below */
    char ack_prefix[64];     /* subjects whose acknowledgements go to ack_fn ("": none) */
    pk_ack_fn ack_fn;
    void *ack_ctx;
} pk_bus;

/* Connect and create a JetStream context. *out owned by caller (pk_bus_close). */
pk_status pk_bus_connect(pk_bus **out, const pk_bus_opts *opts) PK_MUST_CHECK;

/* Drain (bounded) and close; NULL is a no-op. */
void pk_bus_close(pk_bus *bus);

/* Convert a cnats status (and JetStream error code) into a recorded pk_status. */
pk_status pk_nats_err(natsStatus s, jsErrCode jerr, const char *what) PK_MUST_CHECK;

/*
 * Create every Pactum stream that does not exist yet. The partition count is
 * fixed when PACTUM_EVENTS is first created; *partitions is set to the
 * value in force (which may differ from the requested one).
 */
pk_status pk_streams_ensure(pk_bus *bus, uint32_t *partitions) PK_MUST_CHECK;

#define PK_STALL_MS 10000 /* a consumer with messages waiting and none delivered this long */

/* A pull consumer: durable (name given) or ephemeral starting at start_seq. */
typedef struct pk_consumer {
    pk_bus *bus;         /* borrowed */
    char stream[64];     /* stream name */
    char durable[64];    /* durable name; "" for an ephemeral consumer */
    char filter[128];    /* subject filter */
    uint64_t start_seq;  /* ephemeral: first stream sequence wanted */
    bool ack;            /* explicit acks (false: AckNone, ephemeral only) */
    bool sole;           /* leased: the durable's only reader, so one ack may cover a batch */
    bool ack_all;        /* bound durable acknowledges all up to a message (AckAll) */
    int max_ack_pending; /* messages delivered but not yet acknowledged, at most */
    int64_t ack_wait_ms; /* redelivery after this long without an ack */
    bool ordered;        /* durable, read in stream order: see pk_consumer_open_ordered */
    /* ordered: the last stream sequence the reader applied, from its own store */
    pk_status (*position)(void *ctx, uint64_t *applied);
    void *position_ctx;
    bool bound;            /* it was bound once: missing now means someone deleted it */
    int64_t checked_ms;    /* when the durable was last seen to be as we made it */
    int64_t delivered_ms;  /* when a fetch last brought messages (or the consumer was bound) */
    uint64_t handover_seq; /* taken over from an instance that had applied up to here (0: no) */
    uint64_t last_dseq;    /* ordered: consumer sequence of the last delivery since binding */
    unsigned long stalls;  /* times it was found stalled (messages waiting, none delivered
                            * for PK_STALL_MS) and bound again */
    /* optional: the monotonic time (pk_mono_ms) after which this reader may no longer read,
     * because its lease on the partition may lapse and another instance take it over; past
     * it nothing is fetched, bound or made again (NULL: no limit) */
    const _Atomic int64_t *serve_until;
    natsSubscription *sub; /* bound pull subscription */
} pk_consumer;

/*
 * Create (or bind to, updating its limits) the consumer. c is caller-owned;
 * pk_consumer_close it. A reader whose state depends on message order uses
 * pk_consumer_open_ordered instead, with max_ack_pending equal to its batch
 * size, so that while it runs nothing newer is handed out while a batch is
 * unacknowledged (being retried).
 */
pk_status pk_consumer_open(pk_consumer *c, pk_bus *bus, const char *stream, const char *durable,
                           const char *filter, uint64_t start_seq, int max_ack_pending,
                           int64_t ack_wait_ms) PK_MUST_CHECK;

/*
 * The same for a durable consumer whose reader applies messages in order and
 * skips what it has applied by sequence (the evaluator, the scorer), and
 * keeps the last sequence it applied in its own store (position, with ctx):
 * if the server holds unacknowledged deliveries when it binds (after a crash
 * or a lost connection), or the consumer was deleted or changed by someone
 * else, it is made again to start right after that position, so nothing is
 * skipped and nothing newer is seen first.
 */
pk_status pk_consumer_open_ordered(pk_consumer *c, pk_bus *bus, const char *stream,
                                   const char *durable, const char *filter, int max_ack_pending,
                                   int64_t ack_wait_ms,
                                   pk_status (*position)(void *ctx, uint64_t *applied),
                                   void *ctx) PK_MUST_CHECK;

/*
 * The same for a partition taken over from another instance that had applied
 * up to handover_seq (0: none): the consumer acknowledged past our own
 * position is then the handover, not tampering. serve_until (optional) is
 * the reader's lease deadline, kept up to date by whoever renews the lease;
 * a reader with one is the durable's only reader (see pk_consumer_ack).
 */
pk_status pk_consumer_take_over(pk_consumer *c, pk_bus *bus, const char *stream,
                                const char *durable, const char *filter, int max_ack_pending,
                                int64_t ack_wait_ms,
                                pk_status (*position)(void *ctx, uint64_t *applied), void *ctx,
                                uint64_t handover_seq,
                                const _Atomic int64_t *serve_until) PK_MUST_CHECK;

/*
 * The reader's lease may have lapsed (see serve_until): what it fetched must
 * be neither applied nor acknowledged, since another instance may be reading
 * the partition now. Fetching returns PK_ECONFLICT meanwhile.
 */
bool pk_consumer_fenced(const pk_consumer *c);

/*
 * Acknowledge a batch fetched from c, applied. The durable of a leased reader
 * (pk_consumer_take_over with serve_until), its only reader, takes one
 * acknowledgement for the newest message, which covers all before it; a
 * durable that readers share takes one per message, since one reader's
 * acknowledgement must not cover another's batch.
 */
void pk_consumer_ack(const pk_consumer *c, natsMsgList *list);

/* Tell the server the messages are still being worked on (resets their ack timer). */
void pk_msgs_in_progress(natsMsgList *list);
void pk_consumer_close(pk_consumer *c);

/*
 * Fetch up to batch messages waiting at most timeout_ms. PK_ETIMEOUT (no
 * message recorded) when none arrived. Recreates the consumer if the server
 * lost it. An ephemeral consumer resumes after the last sequence returned.
 */
pk_status pk_consumer_fetch(pk_consumer *c, natsMsgList *list, int batch,
                            int64_t timeout_ms) PK_MUST_CHECK;

/*
 * Fetch, without waiting, up to batch messages (and about max_bytes) that
 * are waiting now, while the batch before is still being applied (a
 * read-ahead). Only a bound durable that is not ordered reads ahead; nothing
 * is bound, made or dropped here, so the messages of the batch before stay
 * valid. PK_ETIMEOUT: nothing fetched.
 */
pk_status pk_consumer_fetch_ahead(pk_consumer *c, natsMsgList *list, int batch,
                                  int64_t max_bytes) PK_MUST_CHECK;

/* The stream sequence of a JetStream message; 0 for a message without JetStream metadata. */
uint64_t pk_msg_seq(natsMsg *msg);

/* Stream sequence, delivery count and bus timestamp (ms) of a JetStream message. */
pk_status pk_msg_meta(natsMsg *msg, uint64_t *seq, uint64_t *delivered,
                      int64_t *ts_ms) PK_MUST_CHECK;

/*
 * Asynchronous JetStream publish with an optional de-duplication id. Use
 * pk_bus_publish_reset before a batch and pk_bus_publish_wait after it.
 */
pk_status pk_bus_publish_async(pk_bus *bus, const char *subject, const void *data, size_t len,
                               const char *msg_id) PK_MUST_CHECK;
void pk_bus_publish_reset(pk_bus *bus);
/* Wait for all acknowledgements; PK_EBUS if any publish failed or timed out. */
pk_status pk_bus_publish_wait(pk_bus *bus, int64_t timeout_ms) PK_MUST_CHECK;

/*
 * Acknowledgements of asynchronous publishes to subjects that start with prefix go to fn
 * instead of the bus's counters: the message (fn's to destroy, or to send again with
 * pk_bus_publish_again) and NULL when the stream stored it (now or before: a duplicate),
 * or why it was not stored (refused, or no acknowledgement in time). fn runs on
 * the client's acknowledgement thread. fn NULL removes the hook; once this returns, fn is
 * not running and will not run again.
 */
void pk_bus_on_acks(pk_bus *bus, const char *prefix, pk_ack_fn fn, void *ctx);
/*
 * pk_bus_publish_async whose acknowledgement must come within ack_wait_ms (0: no bound),
 * else it is reported as not stored; a failure to send is not counted in pub_err.
 */
pk_status pk_bus_publish_tracked(pk_bus *bus, const char *subject, const void *data, size_t len,
                                 const char *msg_id, int64_t ack_wait_ms) PK_MUST_CHECK;
/* Send a message an acknowledgement hook was given again (taking it; *msg is NULL after). */
pk_status pk_bus_publish_again(pk_bus *bus, natsMsg **msg, int64_t ack_wait_ms) PK_MUST_CHECK;

/* Synchronous JetStream publish; expect_last_subject_seq is sent when expect is true. */
pk_status pk_bus_publish_sync(pk_bus *bus, const char *subject, const void *data, size_t len,
                              const char *msg_id, bool expect, uint64_t expect_last_subject_seq,
                              uint64_t *seq, bool *duplicate) PK_MUST_CHECK;

/*
 * A request and its reply (caller destroys it). PK_EPERM, with the server's
 * words, as soon as the bus refuses it (a refused request is never answered,
 * so this does not wait for the timeout); PK_ENOTFOUND if nobody answers on
 * subject; PK_ETIMEOUT if no answer came within timeout_ms.
 */
pk_status pk_bus_request(pk_bus *bus, const char *subject, const void *data, size_t len,
                         int64_t timeout_ms, natsMsg **reply) PK_MUST_CHECK;

/*
 * Ask everyone who answers on subject (every instance of a service): each
 * reply goes to each(ctx, reply) (return false to stop), until max replies,
 * quiet_ms with no new reply after one came, or timeout_ms in all. *n: the
 * replies seen; PK_ETIMEOUT if none came.
 */
pk_status pk_bus_gather(pk_bus *bus, const char *subject, const void *data, size_t len,
                        int64_t timeout_ms, int64_t quiet_ms, int max,
                        bool (*each)(void *ctx, natsMsg *reply), void *ctx, int *n) PK_MUST_CHECK;

/* Partition of an agent id (FNV-1a 32 modulo partitions). */
uint32_t pk_partition_of(const char *agent_id, uint32_t partitions);

/* Last token of a subject ("pactum.raw.bot-1" -> "bot-1"). */
const char *pk_subject_last_token(const char *subject);

#endif
