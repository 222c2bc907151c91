/*
 * The pipeline: end-to-end throughput, ingest throughput with one signature
 * per event and with signed batches, and the services' memory.
 *
 *   e2e       signed batches published by 32 agents -> ingest -> evaluator ->
 *             scorer, timed from the first publish until the scorer has
 *             applied every verdict. Baseline: a bare JetStream pipeline of the
 *             same three hops and message sizes, in the same run.
 *   ingest    envelopes preloaded in PACTUM_RAW while ingest is stopped, then
 *             ingest alone, timed from start to the last event accepted: with
 *             one event per envelope (baseline: Ed25519 verifications per
 *             second on one core, in this process) and with batches of 64
 *             (baseline: the bare pipeline).
 *   memory    the largest resident anonymous memory (RssAnon: heap and stacks,
 *             not the LMDB map or other files) of each service during e2e.
 *   cluster   e2e on a 3-node nats-server cluster with every stream on three
 *             replicas; baseline: the bare pipeline on the same cluster, three
 *             replicas too.
 */
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "pk/clock.h"
#include "util.h"

#define AGENTS 32
#define BATCH  64

/* message sizes of the three hops: event, verdict, trust change (measured on the suite) */
static const size_t hop_sizes[4] = {120, 120, 260, 640};

typedef struct sampler {
    bu_suite *s;
    volatile bool stop;
    long peak_kib[H_SERVICES];
} sampler;

static void *sample_rss(void *p)
{
    sampler *sp = p;

    while (!sp->stop) {
        for (int i = 0; i < H_SERVICES; i++) {
            long k = bu_rss_anon_kib(sp->s->h.svc_pid[i]);
            if (k > sp->peak_kib[i])
                sp->peak_kib[i] = k;
        }
        pk_sleep_ms(20);
    }
    return NULL;
}

/* Verdicts the evaluator publishes for k evaluations of one clause at --report-every 10. */
static long verdicts_for(long k)
{
    return k > 0 ? 1 + (k - 1) / 10 : 0;
}

static int e2e_round(const bench_opts *o, int nodes, double *fig, double *base,
                     long peak[H_SERVICES])
{
    bu_suite s;
    uint8_t **envs = NULL;
    size_t *lens = NULL;
    char **subjects = NULL;
    long n_envs = 0, want = 0, n = o->events;
    sampler sp = {0};
    pthread_t st;
    int64_t t0, deadline;
    int rc = -1;

    if (bu_start_on(&s, nodes, AGENTS, NULL) != 0) {
        fprintf(stderr, "bench: the suite did not start\n");
        goto out;
    }
    *base = bu_bare_pipeline(&s.h, n, 3, hop_sizes);
    if (bu_envelopes(&s, n, BATCH, "e2e", &envs, &lens, &n_envs, &subjects) != 0)
        goto out;
    for (int a = 0; a < AGENTS; a++)
        want += BU_CLAUSES * verdicts_for(n / AGENTS + (a < n % AGENTS));
    sp.s = &s;
    pthread_create(&st, NULL, sample_rss, &sp);
    t0 = pk_mono_ns();
    if (bu_publish_all(s.h.bus, envs, lens, subjects, n_envs) != 0) {
        sp.stop = true;
        pthread_join(st, NULL);
        goto out;
    }
    deadline = pk_mono_ms() + 300000;
    while (h_metric(&s.h, "scorer", "pactum_scorer_verdicts_total") < want &&
           pk_mono_ms() < deadline)
        pk_sleep_ms(5);
    *fig = (double)n / ((double)(pk_mono_ns() - t0) / 1e9);
    sp.stop = true;
    pthread_join(st, NULL);
    for (int i = 0; i < H_SERVICES; i++)
        peak[i] = sp.peak_kib[i];
    rc = h_metric(&s.h, "scorer", "pactum_scorer_verdicts_total") >= want && *base > 0 ? 0 : -1;
out:
    bu_envelopes_free(envs, lens, subjects, n_envs);
    bu_stop(&s);
    return rc;
}

/* Ed25519 verifications per second on this core. */
static double verify_rate(long n)
{
    uint8_t pk[32], sk[64], msg[200], sig[64];
    int64_t t0;
    long ok = 0;

    crypto_sign_keypair(pk, sk);
    randombytes_buf(msg, sizeof(msg));
    crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
    t0 = pk_mono_ns();
    for (long i = 0; i < n; i++)
        ok += crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) == 0;
    return ok == n ? (double)n / ((double)(pk_mono_ns() - t0) / 1e9) : -1;
}

/* Preload envelopes of per_env events, then time ingest alone over them. */
static int ingest_round(long n, int per_env, double *fig)
{
    bu_suite s;
    uint8_t **envs = NULL;
    size_t *lens = NULL;
    char **subjects = NULL;
    long n_envs = 0;
    long long first = 0;
    int64_t start, t0, deadline;
    int rc = -1;

    if (bu_start(&s, AGENTS, NULL) != 0)
        goto out;
    /* only ingest runs while it is timed */
    for (int i = H_SERVICES - 1; i >= 0; i--) {
        h_stop_pid(s.h.svc_pid[i], SIGTERM, 15000);
        s.h.svc_pid[i] = 0;
    }
    if (bu_envelopes(&s, n, per_env, per_env == 1 ? "one" : "batch", &envs, &lens, &n_envs,
                     &subjects) != 0 ||
        bu_publish_all(s.h.bus, envs, lens, subjects, n_envs) != 0)
        goto out;
    start = pk_mono_ns();
    if (!h_start_service(&s.h, 0, bu_ingest_env))
        goto out;
    /*
     * Timed from the first batch accepted to the last, as the evaluator is, so that its
     * start-up is not counted; when one batch held everything (a short run), from its start.
     */
    deadline = pk_mono_ms() + 300000;
    while ((first = h_metric(&s.h, "ingest", "pactum_ingest_events_accepted_total")) < 1 &&
           pk_mono_ms() < deadline)
        pk_sleep_ms(1);
    t0 = pk_mono_ns();
    if (first >= n) {
        first = 0;
        t0 = start;
    }
    while (h_metric(&s.h, "ingest", "pactum_ingest_events_accepted_total") < n &&
           pk_mono_ms() < deadline)
        pk_sleep_ms(5);
    *fig = (double)(n - first) / ((double)(pk_mono_ns() - t0) / 1e9);
    rc = h_metric(&s.h, "ingest", "pactum_ingest_events_accepted_total") >= n ? 0 : -1;
out:
    bu_envelopes_free(envs, lens, subjects, n_envs);
    bu_stop(&s);
    return rc;
}

int bench_pipeline(const bench_opts *o)
{
    bench_figure *e2e = bench_add("end to end, signed batches of 64", "events/s",
                                  "bare JetStream, same 3 hops", ">= 0.5 x baseline", true);
    bench_figure *one = bench_add("ingest, one signature per event", "events/s",
                                  "Ed25519 verify, one core", ">= 0.8 x baseline", true);
    bench_figure *bat = bench_add("ingest, signed batches of 64", "events/s",
                                  "bare JetStream, same 3 hops", ">= 0.5 x baseline", true);
    bench_figure *clu =
        bench_add("end to end on a 3-node cluster, 3 replicas", "events/s",
                  "bare JetStream, same 3 hops, 3 replicas", ">= 0.5 x baseline", true);
    bench_figure *mem[H_SERVICES];
    long n_one = o->quick ? 2000 : 24000;

    for (int i = 0; i < H_SERVICES; i++) {
        char name[64];
        snprintf(name, sizeof(name), "peak RSS of %s during end to end", h_service_names[i]);
        mem[i] = bench_add(name, "MiB", "", "<= 64 MiB, LMDB map excluded", false);
    }
    for (int r = 0; r < o->rounds; r++) {
        double fig = 0, base = 0, v = 0, vb;
        long peak[H_SERVICES] = {0};
        if (e2e_round(o, 0, &fig, &base, peak) != 0)
            return -1;
        e2e->v[e2e->n++] = fig;
        e2e->b[e2e->nb++] = base;
        for (int i = 0; i < H_SERVICES; i++)
            mem[i]->v[mem[i]->n++] = (double)peak[i] / 1024.0;
        printf("  end to end, round %d: %.0f events/s (bare pipeline %.0f msg/s); peak RSS "
               "ingest %.1f, evaluator %.1f, scorer %.1f, oracle %.1f MiB\n",
               r + 1, fig, base, peak[0] / 1024.0, peak[1] / 1024.0, peak[2] / 1024.0,
               peak[3] / 1024.0);
        fflush(stdout);
        {
            double cfig = 0, cbase = 0;
            long cpeak[H_SERVICES] = {0};
            if (e2e_round(o, 3, &cfig, &cbase, cpeak) != 0)
                return -1;
            clu->v[clu->n++] = cfig;
            clu->b[clu->nb++] = cbase;
            printf("  end to end on a 3-node cluster, round %d: %.0f events/s (bare pipeline, 3 "
                   "replicas, %.0f msg/s)\n",
                   r + 1, cfig, cbase);
        }
        fflush(stdout);
        /* the machine's speed drifts: the baseline is taken just before and just after */
        vb = verify_rate(10000);
        if (ingest_round(n_one, 1, &v) != 0)
            return -1;
        one->v[one->n++] = v;
        one->b[one->nb++] = (vb + verify_rate(10000)) / 2;
        printf("  ingest, one signature per event, round %d: %.0f events/s (verify %.0f/s)\n",
               r + 1, v, one->b[one->nb - 1]);
        if (ingest_round(o->events, BATCH, &v) != 0)
            return -1;
        bat->v[bat->n++] = v;
        bat->b[bat->nb++] = base;
        printf("  ingest, batches of %d, round %d: %.0f events/s\n", BATCH, r + 1, v);
        fflush(stdout);
    }
    return 0;
}
