/*
 * pk/service.h - what every Pactum service shares: the common options, the
 * shutdown flag set by signals, counters in Prometheus text format, and the
 * health and metrics responders on the bus.
 */
#ifndef PK_SERVICE_H
#define PK_SERVICE_H

#include <signal.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/codec.h"
#include "pk/config.h"
#include "pk/responder.h"
#include "pk/store.h"

/* Set by SIGINT/SIGTERM; the service loop finishes its batch and exits. */
extern volatile sig_atomic_t pk_shutdown;

/* Install SIGINT/SIGTERM handlers that only set pk_shutdown; ignore SIGPIPE. */
void pk_signals_install(void);

/* Exit codes distinct per start-up failure. */
enum {
    PK_EXIT_OK = 0,
    PK_EXIT_CONFIG = 2,  /* bad option or environment value */
    PK_EXIT_STORE = 3,   /* LMDB folder could not be opened */
    PK_EXIT_BUS = 4,     /* NATS unreachable or streams could not be created */
    PK_EXIT_CRYPTO = 5,  /* libsodium could not start */
    PK_EXIT_RUNTIME = 6, /* could not start its worker threads */
};

/* Options every service has; embedded as `common` in each service's config. */
typedef struct pk_common_cfg {
    const char *nats_url;      /* NATS server URL */
    const char *nats_user;     /* optional NATS user */
    const char *nats_password; /* NATS password */
    const char *nats_creds;    /* NATS user credentials (.creds file made by pactum setup) */
    const char *nats_ca;       /* CA certificate: the bus is reached over TLS and checked */
    const char *data_dir;      /* folder holding <data_dir>/<service>/ LMDB files */
    long long lmdb_map_mb;     /* LMDB map size */
    const char *log_level;     /* debug, info, warn, error */
    const char *instance;      /* instance name; "" = <service>-<pid> */
    long long partitions;      /* partitions when the event streams are first created */
} pk_common_cfg;

#define PK_COMMON_OPTS(type)                                                                       \
    {"nats-url",                                                                                   \
     "PACTUM_NATS_URL",                                                                            \
     PK_CFG_STR,                                                                                   \
     "nats://127.0.0.1:4222",                                                                      \
     0,                                                                                            \
     0,                                                                                            \
     offsetof(type, common.nats_url),                                                              \
     "NATS server, or a comma-separated seed list of a cluster's servers"},                        \
        {"nats-user",                                                                              \
         "PACTUM_NATS_USER",                                                                       \
         PK_CFG_STR,                                                                               \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.nats_user),                                                         \
         "NATS user name (if the server requires one)"},                                           \
        {"nats-password",                                                                          \
         "PACTUM_NATS_PASSWORD",                                                                   \
         PK_CFG_STR,                                                                               \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.nats_password),                                                     \
         "NATS password"},                                                                         \
        {"nats-creds",                                                                             \
         "PACTUM_NATS_CREDS",                                                                      \
         PK_CFG_STR,                                                                               \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.nats_creds),                                                        \
         "NATS user credentials file (from pactum setup); the service connects as that user"},     \
        {"nats-ca",                                                                                \
         "PACTUM_NATS_CA",                                                                         \
         PK_CFG_STR,                                                                               \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.nats_ca),                                                           \
         "CA certificate of the bus: connect over TLS and check the server against it"},           \
        {"data-dir",                                                                               \
         "PACTUM_DATA_DIR",                                                                        \
         PK_CFG_STR,                                                                               \
         "var",                                                                                    \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.data_dir),                                                          \
         "folder for LMDB files (a sub-folder per service)"},                                      \
        {"lmdb-map-mb",                                                                            \
         "PACTUM_LMDB_MAP_MB",                                                                     \
         PK_CFG_INT,                                                                               \
         "1024",                                                                                   \
         1,                                                                                        \
         1048576,                                                                                  \
         offsetof(type, common.lmdb_map_mb),                                                       \
         "LMDB map size in MiB"},                                                                  \
        {"log-level",                                                                              \
         "PACTUM_LOG_LEVEL",                                                                       \
         PK_CFG_STR,                                                                               \
         "info",                                                                                   \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.log_level),                                                         \
         "debug, info, warn or error"},                                                            \
        {"instance",                                                                               \
         "PACTUM_INSTANCE",                                                                        \
         PK_CFG_STR,                                                                               \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         offsetof(type, common.instance),                                                          \
         "instance name (default <service>-<pid>)"},                                               \
    {                                                                                              \
        "partitions", "PACTUM_PARTITIONS", PK_CFG_INT, "4", 1, PK_PARTITIONS_MAX,                  \
            offsetof(type, common.partitions),                                                     \
            "partitions of the event and verdict streams (fixed when first created)"               \
    }

typedef enum pk_metric_type { PK_COUNTER, PK_GAUGE } pk_metric_type;

typedef struct pk_metric {
    const char *name;    /* e.g. pactum_ingest_events_total */
    const char *labels;  /* e.g. result="accepted", or NULL */
    const char *help;    /* HELP line (first metric of a name carries it) */
    pk_metric_type type; /* counter or gauge */
    atomic_llong value;  /* current value */
} pk_metric;

static inline void pk_metric_add(pk_metric *m, long long d)
{
    atomic_fetch_add(&m->value, d);
}
static inline void pk_metric_set(pk_metric *m, long long v)
{
    atomic_store(&m->value, v);
}
static inline long long pk_metric_get(pk_metric *m)
{
    return atomic_load(&m->value);
}

/*
 * A service lists its own metrics once, in a metrics.def file of
 * PK_METRIC(id, type, name, labels, help) lines that its header includes to
 * make the enum of ids and its metrics_init includes to fill the table.
 */

/* Prometheus text exposition of n metrics; caller frees the result. */
char *pk_metrics_render(pk_metric *ms, size_t n);

/* The metrics every service has (pk_service.common), before its own. */
enum {
    PK_SM_LAG,       /* pactum_consumer_pending{consumer="<service>"}: messages waiting */
    PK_SM_RETRIES,   /* pactum_<service>_batch_retries_total: failed batch attempts */
    PK_SM_LMDB_USED, /* pactum_lmdb_used_bytes (read at each request) */
    PK_SM_LMDB_MAP,  /* pactum_lmdb_map_bytes (read at each request) */
    PK_SM_STALLS,    /* pactum_consumer_stalls_total{consumer="<service>"}: bound again */
    PK_SM_COUNT
};

typedef struct pk_service {
    const char *name;              /* "ingest", "evaluator", "scorer", "oracle" */
    char instance[64];             /* instance name */
    pk_bus *bus;                   /* borrowed */
    pk_store *store;               /* borrowed, may be NULL */
    pk_metric common[PK_SM_COUNT]; /* the metrics every service has (set by pk_service_boot) */
    pk_metric *metrics;            /* borrowed array: the service's own */
    size_t n_metrics;              /* its length */
    int64_t started_ms;            /* start time */
    atomic_bool healthy;           /* the service's own view of its health */
    /* optional: more members of the health answer (the partitions served ...) */
    void (*health_extra)(void *ctx, json_t *doc);
    void *health_extra_ctx;
    char detail[256];         /* why, when unhealthy */
    char lag_label[64];       /* consumer="<name>" */
    char retries_name[64];    /* pactum_<name>_batch_retries_total */
    char health_subject[96];  /* pactum.health.<name> */
    char metrics_subject[96]; /* pactum.metrics.<name> */
    pk_responders ops;        /* health and metrics responders */
    bool buffered;            /* set before boot: the bus buffers writes (see pk_bus_opts) */
} pk_service;

/* Bus options from the common configuration: URL, credentials, TLS; name is kept by pointer. */
pk_bus_opts pk_common_bus_opts(const pk_common_cfg *c, const char *name);

/*
 * A connection of its own for one reader of a service (a partition worker, a log appender,
 * the oracle's read model), named name: the common options, each message written at once,
 * up to 10 s to connect, given up at shutdown. *out is written only on success.
 */
pk_status pk_reader_bus_connect(const pk_common_cfg *c, const char *name, pk_bus **out);

/*
 * A name for this instance of service that stays the same across restarts:
 * --instance if given, else "<service>-<host>-<hash of the data folder>". Used
 * where the bus must recognise a restarted instance (its leases, its durable
 * consumers).
 */
void pk_stable_name(const pk_common_cfg *c, const char *service, char *out, size_t len);

/*
 * Set up the shared parts of a service: logging, libsodium, the data folder
 * <data_dir>/<name>, the bus connection and the streams, the common metrics.
 * On failure returns the exit code to use; on success 0 and *bus, *store,
 * *partitions are set.
 */
int pk_service_boot(pk_service *svc, const pk_common_cfg *c, pk_bus **bus, pk_store **store,
                    uint32_t *partitions, unsigned max_dbs);

/*
 * What a service's main() hands pk_service_main: its options and the three
 * steps that are its own. pk_service_main does the rest, the same for every
 * service: options and environment (--help exits 0, a bad value exits
 * PK_EXIT_CONFIG with a sentence), signals, pk_service_boot, health and
 * metrics on the bus, the shutdown on SIGINT or SIGTERM, and the release of
 * the bus and the store after `stop`. PK_SERVICE_MAIN fills one.
 */
typedef struct pk_service_def {
    const char *name;            /* "scorer": the service is pactum-<name> */
    const char *summary;         /* what it does, for --help */
    unsigned max_dbs;            /* named LMDB databases it opens */
    bool buffered;               /* the bus buffers writes (see pk_bus_opts) */
    const pk_cfg_opt *opts;      /* its options (PK_COMMON_OPTS first) */
    size_t n_opts;               /* their count */
    void *cfg;                   /* the configuration the options fill */
    const pk_common_cfg *common; /* the common part of *cfg */
    pk_service *svc;             /* its own metrics set; name and buffered are set from here */
    pk_bus **bus;                /* receives the connection */
    pk_store **store;            /* receives the LMDB environment */
    uint32_t *partitions;        /* receives the partition count */
    int (*start)(void *ctx);     /* open and start what is its own; an exit code */
    void (*run)(void *ctx);      /* its main loop, until pk_shutdown */
    void (*stop)(void *ctx);     /* release what is its own (after a failed start too) */
    void *ctx;                   /* for the three */
} pk_service_def;

/* Run a service from start to exit; returns the exit code for main(). */
int pk_service_main(const pk_service_def *d, int argc, char **argv);

/* Log the last error (pk_error_msg) and return exit_code: a failed start step. */
int pk_service_failed(int exit_code);

/*
 * The main() of a service. T is its struct, with the members cfg (pointing
 * at its configuration, of type CT, whose member `common` holds the common
 * options), svc, bus, store, partitions and m[] (its own metrics, which
 * metrics_init fills); the file defines options[] and the functions start,
 * run and stop. The remaining arguments are pk_service_def fields:
 *
 *     PK_SERVICE_MAIN(scorer, scorer_cfg, scorer_metrics_init, .name = "scorer",
 *                     .summary = "Keeps reputation and tier per agent.", .max_dbs = 8)
 */
#define PK_SERVICE_MAIN(T, CT, metrics_init, ...)                                                  \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static CT cfg;                                                                             \
        static T s = {.cfg = &cfg};                                                                \
        pk_service_def def = {__VA_ARGS__};                                                        \
                                                                                                   \
        def.opts = options;                                                                        \
        def.n_opts = sizeof(options) / sizeof(options[0]);                                         \
        def.cfg = &cfg;                                                                            \
        def.common = &cfg.common;                                                                  \
        def.svc = &s.svc;                                                                          \
        def.bus = &s.bus;                                                                          \
        def.store = &s.store;                                                                      \
        def.partitions = &s.partitions;                                                            \
        def.start = start;                                                                         \
        def.run = run;                                                                             \
        def.stop = stop;                                                                           \
        def.ctx = &s;                                                                              \
        metrics_init(&s);                                                                          \
        s.svc.metrics = s.m;                                                                       \
        s.svc.n_metrics = sizeof(s.m) / sizeof(s.m[0]);                                            \
        return pk_service_main(&def, argc, argv);                                                  \
    }

/* The health answer: {"service", "instance", "healthy", "bus_connected", "detail", "uptime_ms"}. */
json_t *pk_service_health_json(pk_service *svc);

/* The counters in the Prometheus text format (LMDB use read now); caller frees. */
char *pk_service_metrics_text(pk_service *svc);

/* Answer health and metrics requests on the bus (pactum.health.<name>, pactum.metrics.<name>). */
pk_status pk_service_ops_start(pk_service *svc) PK_MUST_CHECK;
void pk_service_ops_stop(pk_service *svc);

void pk_service_set_health(pk_service *svc, bool healthy, const char *detail);

/* What a dead-letter record says about the refused input (all borrowed). */
typedef struct pk_rejection {
    Pactum__V1__Reason reason; /* machine-readable reason */
    const char *message;       /* sentence a person can act on */
    const char *subject;       /* where the input arrived */
    const char *signer_id;     /* who signed it, if known */
    const char *agent_id;      /* the agent concerned, if known */
    const char *event_id;      /* the event concerned, if any */
    uint64_t source_seq;       /* stream sequence of the input, if any */
    const uint8_t *data;       /* the input; its first 512 bytes are kept */
    size_t len;                /* its length */
} pk_rejection;

/*
 * Publish a Rejection on pactum.rejected.<reason>: asynchronously (wait with
 * pk_bus_publish_wait) or, with wait, synchronously. msg_id, if not NULL,
 * de-duplicates redeliveries.
 */
pk_status pk_reject_publish(pk_bus *bus, const char *service, const pk_rejection *r,
                            const char *msg_id, bool wait) PK_MUST_CHECK;

#endif
