/*
 * Shared pieces of the benchmarks: the suite with registered agents, signed
 * envelopes, bare JetStream pipelines for baselines, percentiles, RSS.
 */
#ifndef PK_BENCH_UTIL_H
#define PK_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define BU_AGENTS_MAX 256

typedef struct bu_suite {
    h_env h;
    int n_agents;
    pk_keypair keys[BU_AGENTS_MAX]; /* agent i signs with keys[i] (also its owner key) */
    char ids[BU_AGENTS_MAX][32];    /* "b-0000" ... */
} bu_suite;

/*
 * nats-server and the four services (evaluator with extra env eval_env, may be
 * NULL), n agents registered, each bound by a pact with a latency objective
 * and a critical forbidden clause (kind "leak"). services: start them (false:
 * nats-server only, registration then needs them started by the caller).
 */
int bu_start(bu_suite *s, int n_agents, const char *const *eval_env);

/* The same on a cluster of nodes nats-servers (0: one), every stream on as many replicas. */
int bu_start_on(bu_suite *s, int nodes, int n_agents, const char *const *eval_env);

/* bu_start with ingest's default per-signer rate limit on (the others run without it). */
int bu_start_limited(bu_suite *s, int n_agents);

/* The ingest's environment in the benchmarks: no per-signer rate limit. */
extern const char *const bu_ingest_env[];
extern const char *const bu_oracle_env[];
void bu_stop(bu_suite *s);

/*
 * Clauses of the pact bu_start registers that judge every event: the latency objective (the
 * forbidden clause judges only events of kind leak).
 */
#define BU_CLAUSES 1

/*
 * Signed envelopes of n events spread over the suite's agents, per_env events
 * per envelope, each event id unique with prefix; kind "reply" unless leak.
 * envs[k] / lens[k] for k < *n_envs (caller frees each and the arrays).
 */
int bu_envelopes(bu_suite *s, long n, int per_env, const char *prefix, uint8_t ***envs,
                 size_t **lens, long *n_envs, char ***subjects);

/* Publish prepared envelopes asynchronously as fast as JetStream takes them. */
int bu_publish_all(pk_bus *bus, uint8_t **envs, size_t *lens, char **subjects, long n);

/* Free what bu_envelopes made. */
void bu_envelopes_free(uint8_t **envs, size_t *lens, char **subjects, long n);

/*
 * A bare JetStream pipeline of `hops` consumers: n messages published
 * asynchronously to the first stream; each hop fetches (256, one batch
 * unacknowledged), republishes each message (sizes[h] bytes) to the next
 * stream, waits for the acks and acknowledges; the last hop only acks.
 * Messages per second from the first publish to the last acknowledgement.
 */
double bu_bare_pipeline(h_env *h, long n, int hops, const size_t *sizes);

/*
 * Latency of the same pipeline for one message at a time: publish to the
 * first stream, received by a plain subscriber on the last hop's output.
 * Fills ms[] with `samples` latencies, taken gap_ms apart (0: back to back).
 * A figure it is the baseline of takes its samples with the same gap: on
 * this kind of machine a process that has slept is slower to wake than one
 * that was just busy, and every hop wakes one.
 */
int bu_bare_latency(h_env *h, int hops, int samples, int gap_ms, double *ms);

/* The pause between two containments timed one after the other, so that each starts from a
 * pipeline at rest (and the pause between the baseline's samples). */
#define BU_CONTAIN_GAP_MS 20

/* Write agent's pact document into buf. */
typedef void (*bu_doc_fn)(char *buf, size_t len, const char *agent, void *ctx);

/* The pact bu_start registers (a latency objective and a forbidden leak), for agent. */
void bu_pact_doc(char *buf, size_t len, const char *agent, void *ctx);

/*
 * Put n agents (ids: prefix and the index in width digits) and a pact each (doc) straight into
 * the registry stream, as the registrar writes them, without ingest: for benchmarks of many
 * agents. Every one of them has bu_registry_key()'s public key, so that envelopes signed
 * with it pass ingest. *last_seq: the stream sequence of the last record.
 */
int bu_registry_load(h_env *h, long n, const char *prefix, int width, bu_doc_fn doc, void *ctx,
                     uint64_t *last_seq);
const pk_keypair *bu_registry_key(void);

/*
 * Containment of one agent, as a subscriber to its trust changes sees it: a critical leak
 * signed with key is published to PACTUM_RAW, and the milliseconds until a change to
 * CONTAINED for agent arrives on sub (subscribed to pactum.trust.*). -1 if none came
 * within 10 s.
 */
double bu_contain_one(h_env *h, natsSubscription *sub, const char *agent, const pk_keypair *key,
                      const char *event_id);

/* A bare responder for baselines: answers every request with an empty message. */
void bu_on_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);

/* p-th percentile (0..100) of v (sorted in place). */
double bu_pct(double *v, int n, double p);

/* Resident anonymous memory of a process in KiB (RssAnon), or -1. */
long bu_rss_anon_kib(pid_t pid);

/* Acknowledge every message of a fetched list and destroy it; returns how many. */
int bu_ack_all(natsMsgList *list);

#endif
