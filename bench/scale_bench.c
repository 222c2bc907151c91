/*
 * Scale: what an agent costs in LMDB, and whether a trust query slows down
 * when the oracle knows a million agents.
 *
 * One agent's real state is made by the suite (registration, a pact of two
 * clauses, 40 events through the whole pipeline). Its records in each
 * service's LMDB (evaluator: clause states; scorer: trust state; oracle: read
 * model and registry copy) are then copied for N synthetic agents into fresh
 * LMDB folders, N = 1,000 and 1,000,000, and the bytes in use are divided by
 * N. Records that grow with events rather than agents (the transparency log,
 * tier histories, ingest's duplicate table) are not counted; their sizes are
 * in docs/operations.md. An oracle is then started on each synthetic folder
 * and asked about random agents.
 */
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "pk/clock.h"
#include "pk/store.h"
#include "util.h"

typedef struct copy_spec {
    const char *service; /* LMDB folder */
    const char *dbs[3];  /* per-agent databases */
} copy_spec;

static const copy_spec specs[] = {
    {"evaluator", {"states", NULL}},
    {"scorer", {"agents", NULL}},
    {"oracle", {"reports", "reg_agents", NULL}},
};

#define N_SPECS (sizeof(specs) / sizeof(specs[0]))

/* Does key belong to agent (== agent, or agent \0 ...)? */
static bool of_agent(const MDB_val *k, const char *agent)
{
    size_t al = strlen(agent);

    return k->mv_size >= al && memcmp(k->mv_data, agent, al) == 0 &&
           (k->mv_size == al || ((const char *)k->mv_data)[al] == '\0');
}

/* Copy every record of agent in src's dbs for n agents "s%07d" into a fresh env at dst. */
static int replicate(const char *src_dir, const char *dst_dir, const copy_spec *sp,
                     const char *agent, long n, uint64_t *used)
{
    pk_store *src = NULL, *dst = NULL;
    MDB_txn *rt = NULL;
    int rc = -1;

    mkdir(dst_dir, 0700);
    if (pk_store_open(&src, src_dir, 64, 32) != PK_OK ||
        pk_store_open(&dst, dst_dir, 16384, 32) != PK_OK)
        goto out;
    mdb_env_set_flags(dst->env, MDB_NOSYNC, 1); /* a bulk load; synced once at the end */
    for (int d = 0; sp->dbs[d]; d++) {
        MDB_dbi sdb, ddb;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        /* the agent's records, copied out of the read transaction */
        struct {
            uint8_t *key, *val;
            size_t kl, vl;
        } recs[64];
        int nr = 0;
        if (pk_store_dbi(src, sp->dbs[d], 0, &sdb) != PK_OK ||
            pk_store_dbi(dst, sp->dbs[d], 0, &ddb) != PK_OK)
            goto out;
        /* a read transaction sees only the databases opened before it began */
        pk_txn_abort(rt);
        rt = NULL;
        if (pk_txn_begin(src, false, &rt) != PK_OK)
            goto out;
        if (mdb_cursor_open(rt, sdb, &cur) != 0) {
            PK_ERR(PK_ESTORE, "cannot read %s", sp->dbs[d]);
            goto out;
        }
        for (int c = mdb_cursor_get(cur, &k, &v, MDB_FIRST); c == 0 && nr < 64;
             c = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (!of_agent(&k, agent))
                continue;
            recs[nr].kl = k.mv_size - strlen(agent);
            recs[nr].key = malloc(recs[nr].kl + 1);
            recs[nr].vl = v.mv_size;
            recs[nr].val = malloc(v.mv_size + 1);
            memcpy(recs[nr].key, (uint8_t *)k.mv_data + strlen(agent), recs[nr].kl);
            memcpy(recs[nr].val, v.mv_data, v.mv_size);
            nr++;
        }
        mdb_cursor_close(cur);
        if (nr == 0) {
            PK_ERR(PK_ENOTFOUND, "no record of %s in %s", agent, sp->dbs[d]);
            goto out;
        }
        for (long i = 0; i < n;) {
            MDB_txn *wt = NULL;
            if (pk_txn_begin(dst, true, &wt) != PK_OK)
                goto out;
            for (long end = i + 20000; i < n && i < end; i++) {
                char id[16];
                uint8_t key[256];
                snprintf(id, sizeof(id), "s%07ld", i);
                for (int r = 0; r < nr; r++) {
                    size_t il = strlen(id);
                    memcpy(key, id, il);
                    memcpy(key + il, recs[r].key, recs[r].kl);
                    if (pk_put(wt, ddb, key, il + recs[r].kl, recs[r].val, recs[r].vl, 0) !=
                        PK_OK) {
                        pk_txn_abort(wt);
                        goto out;
                    }
                }
            }
            if (pk_txn_commit(wt) != PK_OK)
                goto out;
        }
        for (int r = 0; r < nr; r++) {
            free(recs[r].key);
            free(recs[r].val);
        }
    }
    mdb_env_sync(dst->env, 1);
    {
        uint64_t map = 0;
        if (pk_store_usage(dst, used, &map) != PK_OK)
            goto out;
    }
    rc = 0;
out:
    pk_txn_abort(rt);
    pk_store_close(src);
    pk_store_close(dst);
    return rc;
}

/* Start an oracle on data dir `dir` (its oracle/ folder) and time trust queries of random agents.
 */
static double query_p50(h_env *h, const char *dir, long n, int queries)
{
    char env_dir[600], *argv[2];
    const char *extra[4];
    double *ms = calloc((size_t)queries, sizeof(double)), p50 = -1;
    pid_t saved = h->svc_pid[3];
    int ok = 0;

    snprintf(env_dir, sizeof(env_dir), "PACTUM_DATA_DIR=%s", dir);
    extra[0] = env_dir;
    extra[1] = "PACTUM_LMDB_MAP_MB=16384";
    /* every answer made from the state: with 1,000 agents a random one is often asked again
     * within the reuse time, which would make the small state look faster than it is */
    extra[2] = "PACTUM_ORACLE_REUSE=0s";
    extra[3] = NULL;
    (void)argv;
    if (!ms || !h_start_service(h, 3, extra))
        goto out;
    srand(11);
    for (int i = 0; i < queries; i++) {
        Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
        char id[16];
        uint8_t *buf = NULL;
        size_t len = 0;
        natsMsg *m = NULL;
        int64_t t0;
        snprintf(id, sizeof(id), "s%07ld",
                 (long)(((unsigned long)rand() << 16 ^ (unsigned)rand()) % (unsigned long)n));
        q.agent_id = id;
        if (pk_pack(&q.base, &buf, &len) != PK_OK)
            break;
        t0 = pk_mono_ns();
        if (natsConnection_Request(&m, h->bus->nc, PK_SUBJ_ORACLE_TRUST, buf, (int)len, 5000) ==
            NATS_OK) {
            ms[ok++] = (double)(pk_mono_ns() - t0) / 1e6;
            natsMsg_Destroy(m);
        }
        free(buf);
    }
    if (ok == queries)
        p50 = bu_pct(ms, ok, 50);
out:
    if (h->svc_pid[3] > 0)
        h_stop_pid(h->svc_pid[3], SIGTERM, 15000);
    h->svc_pid[3] = saved;
    free(ms);
    return p50;
}

int bench_scale(const bench_opts *o)
{
    bench_figure *q1k = bench_add("trust query p50, 1,000 agents", "ms", "", "", false);
    bench_figure *q1m = bench_add("trust query p50, 1,000,000 agents", "ms",
                                  "trust query p50, 1,000 agents", "<= 1.2 x baseline", false);
    bench_figure *bytes =
        bench_add("LMDB bytes per agent at 1,000,000 agents", "bytes", "", "<= 2048", false);
    bench_figure *per[N_SPECS];
    long big = o->quick ? 20000 : 1000000;
    bu_suite s;
    char base[512], dir[600];
    int rc = -1;

    for (size_t i = 0; i < N_SPECS; i++) {
        char name[96];
        snprintf(name, sizeof(name), "  of which %s", specs[i].service);
        per[i] = bench_add(name, "bytes", "", "", false);
    }
    if (bu_start(&s, 1, NULL) != 0 ||
        !h_publish_events(&s.h, s.ids[0], &s.keys[0], "scale", 40, "reply", "latency_ms", 700, NULL,
                          NULL) ||
        h_wait_metric(&s.h, "scorer", "pactum_scorer_verdicts_total", 2, 30000) < 2)
        goto out;
    pk_sleep_ms(1000);
    for (int i = H_SERVICES - 1; i >= 0; i--) {
        h_stop_pid(s.h.svc_pid[i], SIGTERM, 15000);
        s.h.svc_pid[i] = 0;
    }
    for (int r = 0; r < o->rounds; r++) {
        long sizes[2] = {1000, big};
        double p50[2];
        uint64_t total = 0;
        for (int k = 0; k < 2; k++) {
            snprintf(base, sizeof(base), "%s/scale-%d-%ld", s.h.dir, r, sizes[k]);
            mkdir(base, 0700);
            for (size_t i = 0; i < N_SPECS; i++) {
                char src[600];
                uint64_t used = 0;
                snprintf(src, sizeof(src), "%s/var/%s", s.h.dir, specs[i].service);
                snprintf(dir, sizeof(dir), "%s/%s", base, specs[i].service);
                if (replicate(src, dir, &specs[i], s.ids[0], sizes[k], &used) != 0) {
                    fprintf(stderr, "bench: could not copy the %s state: %s\n", specs[i].service,
                            pk_error_msg());
                    goto out;
                }
                if (k == 1) {
                    per[i]->v[per[i]->n++] = (double)used / (double)sizes[k];
                    total += used;
                }
            }
            p50[k] = query_p50(&s.h, base, sizes[k], o->quick ? 200 : 2000);
            if (p50[k] < 0)
                goto out;
            {
                char cmd[700];
                snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
                if (system(cmd) != 0)
                    fprintf(stderr, "bench: could not remove %s\n", base);
            }
        }
        q1k->v[q1k->n++] = p50[0];
        q1m->v[q1m->n++] = p50[1];
        q1m->b[q1m->nb++] = p50[0];
        bytes->v[bytes->n++] = (double)total / (double)big;
        printf("  scale, round %d: trust query p50 %.3f ms at 1,000 agents, %.3f ms at %ld; "
               "%.0f bytes per agent\n",
               r + 1, p50[0], p50[1], big, (double)total / (double)big);
        fflush(stdout);
    }
    rc = 0;
out:
    bu_stop(&s);
    return rc;
}
