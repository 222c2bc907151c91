/*
 * Test harness: a real nats-server on a free loopback port with its own
 * temporary store, the Pactum services as child processes, and client
 * helpers that speak the wire protocol. Every wait is bounded in time.
 */
#ifndef PK_HARNESS_H
#define PK_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pk/bus.h"
#include "pk/codec.h"
#include "pk/crypto.h"

#define H_SERVICES 4
#define H_NODES    3 /* nats-servers of a cluster (h_start_cluster) */
#define H_EXTRA    8 /* service instances started by h_start_instance */

typedef struct h_env {
    char dir[256];             /* temporary folder: js/, var/, logs */
    int port;                  /* nats-server port on 127.0.0.1 */
    char url[256];             /* nats://127.0.0.1:<port>, or a cluster's seed list */
    pid_t nats_pid;            /* nats-server */
    pid_t svc_pid[H_SERVICES]; /* ingest, evaluator, scorer, oracle (0 = not running) */
    pk_bus *bus;               /* client connection */
    int http_port;             /* the oracle's HTTP port on 127.0.0.1 (chosen at its start) */
    char nats_conf[300];       /* nats-server configuration file, if any */
    char why[512];             /* why the last h_agent, h_pact ... returned false */
    pk_keypair admin;          /* the admin key ingest is started with (unless a test sets one) */
    bool secure;               /* h_start_secure: TLS and a user per part */
    char auth[300];            /* its pactum setup folder: nats.conf, creds/, issuer.json */
    char ca[300];              /* the CA the bus's certificate is checked against */
    int nodes;                 /* cluster nodes (0: one nats-server, nats_pid) */
    pid_t node_pid[H_NODES];   /* each node's nats-server (0 = stopped) */
    int node_port[H_NODES];    /* its client port */
    pid_t extra_pid[H_EXTRA];  /* more service instances (0 = none) */
} h_env;

extern const char *const h_service_names[H_SERVICES];

/* A free TCP port on 127.0.0.1. */
int h_free_port(void);

/* fork + exec path with argv, output to log, and KEY=VALUE pairs added to the environment. */
pid_t h_spawn(const char *path, char *const argv[], const char *log, const char *const *env_pairs);

/* A connection of its own to url named name (a few seconds to connect); NULL on failure. */
pk_bus *h_connect(const char *url, const char *name, bool send_asap);

/* Start nats-server (and the services when with_services); returns false on failure. */
bool h_start(h_env *h, bool with_services);

/*
 * The same with a nats-server configuration (its text; NULL: none) and the
 * credentials the harness's own connection uses (NULL: none).
 */
bool h_start_with(h_env *h, bool with_services, const char *nats_conf, const char *user,
                  const char *password);

/*
 * Start the bus as Pactum is deployed: TLS (scripts/tls.sh), operator mode
 * (pactum setup init), the streams made by the setup user, and (with
 * with_services) the four services, each with its own credentials. The
 * harness's own connection is a user with every right, minted from the
 * account key: it stands for a server that was broken into. The CLI (h_cli)
 * runs as the enroll user unless told otherwise.
 */
bool h_start_secure(h_env *h, bool with_services);

/* A connection as the user of a .creds file (NULL on failure, with h->why). */
pk_bus *h_connect_creds(h_env *h, const char *creds, const char *name);

/* A connection as a user JWT and the key it names (NULL on failure, with h->why). */
pk_bus *h_connect_jwt(h_env *h, const char *jwt, const pk_keypair *kp, const char *name);

/*
 * Register (again, if need be) agent id with its owner and connect with the
 * bus identity the receipt carries: the agent's, or with as_owner the
 * owner's. NULL with h->why if there is none.
 */
pk_bus *h_connect_agent(h_env *h, const char *id, const pk_keypair *agent, const pk_keypair *owner,
                        bool as_owner);

/*
 * Start a cluster of `nodes` nats-servers (at most H_NODES) on free loopback
 * ports, each with JetStream and its own store, routed to each other; h->url
 * is the seed list of all of them, and services started after this create
 * their streams with as many replicas (PACTUM_STREAM_REPLICAS). Waits until
 * the cluster has a JetStream leader. No services are started.
 */
bool h_start_cluster(h_env *h, int nodes);

/* Stop one cluster node with sig (its store is kept); start it again on the same ports. */
void h_stop_node(h_env *h, int node, int sig);
bool h_start_node(h_env *h, int node);

/*
 * Wait (at most bound_ms) until every replicated stream has a leader and node
 * is that leader or a current replica (caught up, as the stream info says):
 * the ms it took, or -1. Consumers are not looked at: under traffic a
 * consumer's followers are always a little behind.
 */
int64_t h_node_current(h_env *h, int node, int64_t bound_ms);

/*
 * Start one more instance of service `which`, named name, with a data folder
 * and log of its own (<dir>/var-<name>, <dir>/<name>.log) and extra
 * KEY=VALUE environment; its index in h->extra_pid, or -1.
 */
int h_start_instance(h_env *h, int which, const char *name, const char *const *extra);

/* Stop nats-server with sig; start it again on the same port and store. */
void h_stop_nats(h_env *h, int sig);
bool h_start_nats(h_env *h);

/* Stop nats-server with sig and start it again on the same port and store. */
bool h_restart_nats(h_env *h, int sig);

/* Stop a service with sig (SIGKILL: no chance to clean up) and start it again. */
bool h_restart_service(h_env *h, int which, int sig, const char *const *extra_env);

/* Stop everything by PID (SIGTERM, then SIGKILL after a bound) and remove the folder. */
void h_stop(h_env *h);

/* Stop the services with SIGTERM; returns how many did not exit with status 0. */
int h_stop_services(h_env *h);

/* Read a file of the source tree (e.g. "examples/pacts/support-bot.json"); caller frees. */
char *h_source_file(const char *relative);

/*
 * Start pactum-gateway (as an extra instance: h_stop stops it) with its HTTP API and its
 * OTLP receiver on free loopback ports (*http_port, *otlp_port) and extra KEY=VALUE
 * environment; true once it is healthy.
 */
bool h_start_gateway(h_env *h, const char *const *extra, int *http_port, int *otlp_port);

/* Start one service (index into h_service_names) with extra KEY=VALUE environment. */
bool h_start_service(h_env *h, int which, const char *const *extra_env);

/* Send sig to a process and wait at most timeout_ms; returns its exit status, or -1. */
int h_stop_pid(pid_t pid, int sig, int timeout_ms);

/* Wait until a service answers its health check. */
bool h_wait_healthy(h_env *h, const char *service, int timeout_ms);

/* A deterministic keypair from one seed byte. */
void h_keypair(pk_keypair *kp, uint8_t seed_byte);

/* Register an agent; returns the receipt (caller frees) or NULL on transport failure. */
Pactum__V1__RegistryReceipt *h_register_agent(h_env *h, const char *id, const pk_keypair *agent,
                                              const pk_keypair *owner);

/* Register a pact document signed by owner. */
Pactum__V1__RegistryReceipt *h_register_pact(h_env *h, const pk_keypair *owner, const char *json);

/* Register an agent (h_register_agent) and insist it is accepted; false with h->why if not. */
bool h_agent(h_env *h, const char *id, const pk_keypair *agent, const pk_keypair *owner);

/* Register a pact (h_register_pact) and insist it is accepted; false with h->why if not. */
bool h_pact(h_env *h, const pk_keypair *owner, const char *json);

/* Save kp as <dir>/<name>.key (and .pub) for the CLI; false with h->why on failure. */
bool h_key_file(h_env *h, const char *name, const pk_keypair *kp);

/*
 * Register an API client id ("@..."), signed with h->admin, and its token
 * "<id>:<secret>" into token (at least 128 bytes); false with h->why.
 */
bool h_client(h_env *h, const char *id, char *token, size_t len);

/*
 * An agent's and its owner's keys from seed and seed + 1, the agent
 * registered as id, and pact (when not NULL) registered by the owner.
 */
bool h_agent_with_pact(h_env *h, const char *id, uint8_t seed, pk_keypair *agent, pk_keypair *owner,
                       const char *pact);

/*
 * A containment's timing is measured, not defaulted: its verdict says when
 * ingest accepted the event, containment_ms is the decision time minus that,
 * and it is under bound_ms. False with h->why saying which is not so.
 */
bool h_containment_timed(h_env *h, const Pactum__V1__TierChange *tc, int64_t bound_ms);

/* Send raw bytes as a registration request and decode the receipt. */
Pactum__V1__RegistryReceipt *h_submit(h_env *h, const uint8_t *data, size_t len);

/* A self-reported event of agent with one metric and one label (either may be NULL). */
void h_event_init(pk_event_msg *ev, const char *event_id, const char *agent, const char *kind,
                  Pactum__V1__Metric *metric, Pactum__V1__Label *label);

/* Sign events as signer into an envelope; caller frees the result. */
uint8_t *h_envelope(const char *signer, const pk_keypair *kp, pk_event_msg **evs, size_t n,
                    size_t *len);

/* Publish bytes on a subject through JetStream (waits for the stream's ack). */
bool h_publish(h_env *h, const char *subject, const uint8_t *data, size_t len);

/* A stream of the test's own, name on subject alone, holding n messages "m" (#1 .. #n). */
bool h_test_stream(h_env *h, const char *name, const char *subject, int n);

/* Publish n events with ids <prefix>-<i>, one per envelope, metric name=value, label name=value. */
bool h_publish_events(h_env *h, const char *agent, const pk_keypair *kp, const char *prefix, int n,
                      const char *kind, const char *metric, double value, const char *label,
                      const char *label_value);

/* Ask the oracle; caller frees with pactum__v1__trust_report__free_unpacked. */
/*
 * Run the pactum CLI in h->dir against h's server with these arguments (a
 * shell command line); its stdout and stderr land in out. Returns its exit
 * status, or -1.
 */
int h_cli(h_env *h, char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Ask the oracle on subject; the signed answer of this type, opened and verified, or NULL. */
ProtobufCMessage *h_ask(h_env *h, const char *subject, const ProtobufCMessage *query,
                        Pactum__V1__PayloadType type);

Pactum__V1__TrustReport *h_trust(h_env *h, const char *agent);

/* Poll the oracle until the agent's tier is tier; returns the last report (caller frees). */
Pactum__V1__TrustReport *h_wait_tier(h_env *h, const char *agent, Pactum__V1__Tier tier,
                                     int timeout_ms);

/*
 * Ask on subject until done(answer, ctx) says yes or timeout_ms passes (every
 * 100 ms); returns the last answer (caller frees), or NULL if none came.
 */
ProtobufCMessage *h_ask_until(h_env *h, const char *subject, const ProtobufCMessage *query,
                              Pactum__V1__PayloadType type,
                              bool (*done)(const ProtobufCMessage *answer, void *ctx), void *ctx,
                              int timeout_ms);

/* Called for each message of a stream read by h_read_stream; return false to stop. */
typedef bool (*h_msg_fn)(void *ctx, natsMsg *m);

/* Read stream (messages on filter) from its first message to its end (bounded: 60 s). */
bool h_read_stream(h_env *h, const char *stream, const char *filter, h_msg_fn each, void *ctx);

/*
 * The next dead-letter record on sub (a subscription to pactum.rejected.*)
 * within timeout_ms: false if none came; else *out is it decoded (caller
 * frees; NULL if it does not decode) and subject its subject.
 */
bool h_next_rejection(natsSubscription *sub, int timeout_ms, Pactum__V1__Rejection **out,
                      char *subject, size_t len);

/* Value of a metric line "name{labels}" from a service, or -1. */
long long h_metric(h_env *h, const char *service, const char *series);

/* Page faults (minor and major) of process pid so far, 0 for this one; -1 if unknown. */
long long h_page_faults(pid_t pid);

/* Poll a metric until it reaches at least want; returns the last value. */
long long h_wait_metric(h_env *h, const char *service, const char *series, long long want,
                        int timeout_ms);

#endif
