#define _GNU_SOURCE
/*
 * replay: rebuild the scorer's state from the recorded history (the
 * PACTUM_VERDICTS stream: verdicts and governance records) into a fresh LMDB
 * folder, through the scorer's own input step (pk_scoring_step), and print a
 * digest of the state. With --compare, ask the live scorer for its digest
 * and say whether they agree. Replay holds no scoring logic of its own.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/registry.h"
#include "pk/scoring.h"
#include "pk/store.h"

typedef struct replay {
    pk_bus *bus;                      /* connection */
    pk_store *store;                  /* the fresh LMDB */
    pk_registry *reg;                 /* registry copy in it */
    pk_pact_cache *pacts;             /* compiled pacts */
    uint32_t partitions;              /* of the streams */
    MDB_dbi agents;                   /* agent -> TrustState */
    pk_scoring scoring;               /* the scorer's input step */
    bool scoring_ready;               /* scoring was set up */
    pk_wset *ws;                      /* a batch's writes */
    bool limited;                     /* replay only up to upto[partition] */
    uint64_t upto[PK_PARTITIONS_MAX]; /* the live scorer's applied positions */
    uint64_t last;                    /* last sequence of PACTUM_VERDICTS when it started */
    uint64_t inputs;                  /* inputs applied */
    struct issued *issued;            /* settlement statements the replay issued */
    size_t n_issued, cap_issued;
} replay;

/* A settlement statement as the replay issued it: agent, engagement, number, and its bytes. */
typedef struct issued {
    char agent[PK_ID_MAX + 1];
    char engagement[PK_ID_MAX + 1];
    uint32_t number;
    uint8_t *buf;
    size_t len;
    bool matched;
} issued;

static pk_status history(void *ctx, const char *agent, uint64_t before_seq, pk_input_fn each,
                         void *each_ctx)
{
    replay *r = ctx;

    return pk_scoring_read_history(r->bus, r->partitions, agent, before_seq, each, each_ctx);
}

/* Keep the statements an input issued, packed as the scorer publishes them. */
static pk_status keep_statements(replay *r, const pk_applied *a)
{
    static _Thread_local pk_settlement_storage storage;

    for (int i = 0; i < a->eng.n; i++) {
        Pactum__V1__Settlement m;
        issued *s;
        if (r->n_issued == r->cap_issued) {
            size_t cap = r->cap_issued ? r->cap_issued * 2 : 16;
            issued *more = realloc(r->issued, cap * sizeof(*more));
            if (!more)
                return PK_ERR(PK_ENOMEM, "out of memory");
            r->issued = more;
            r->cap_issued = cap;
        }
        s = &r->issued[r->n_issued];
        memset(s, 0, sizeof(*s));
        pk_settlement_to_msg(a->t->agent_id, &a->eng.st[i], &m, &storage);
        if (pk_pack(&m.base, &s->buf, &s->len) != PK_OK)
            return PK_ERR(PK_ENOMEM, "out of memory");
        snprintf(s->agent, sizeof(s->agent), "%s", a->t->agent_id);
        snprintf(s->engagement, sizeof(s->engagement), "%s", a->eng.st[i].eng.id);
        s->number = a->eng.st[i].head.number;
        r->n_issued++;
    }
    return PK_OK;
}

/* Mark the statement of one published change that the replay issued too, if it is equal. */
static void match_change(replay *r, const Pactum__V1__TrustChange *tc, uint64_t seq, char *why,
                         size_t wlen)
{
    for (size_t i = 0; i < tc->n_settlements; i++) {
        const Pactum__V1__Settlement *s = tc->settlements[i];
        uint8_t *buf = NULL;
        size_t len = 0;
        for (size_t k = 0; k < r->n_issued; k++) {
            issued *x = &r->issued[k];
            if (x->number != s->statement || strcmp(x->agent, tc->agent_id) != 0 ||
                strcmp(x->engagement, s->engagement_id) != 0)
                continue;
            if (!buf && pk_pack(&s->base, &buf, &len) != PK_OK)
                break;
            if (len == x->len && memcmp(buf, x->buf, len) == 0)
                x->matched = true;
            else if (!why[0])
                snprintf(why, wlen, "statement %u of %s (%s) differs from PACTUM_TRUST #%llu",
                         s->statement, s->engagement_id, tc->agent_id, (unsigned long long)seq);
        }
        free(buf);
    }
}

/* Walk agent's changes in PACTUM_TRUST (direct gets: no consumer), matching statements. */
static bool agent_changes(replay *r, const char *agent, char *why, size_t wlen)
{
    char subject[PK_ID_MAX + 24];
    jsDirectGetMsgOptions dg;
    jsOptions jo;
    uint64_t seq = 0;

    snprintf(subject, sizeof(subject), PK_SUBJ_TRUST, agent);
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    for (int i = 0; i < 1000000; i++) {
        natsMsg *m = NULL;
        const char *hv = NULL;
        Pactum__V1__TrustChange *tc;
        natsStatus s;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = seq + 1;
        dg.NextBySubject = subject;
        s = js_DirectGetMsg(&m, r->bus->js, PK_STREAM_TRUST, &jo, &dg);
        if (s == NATS_NOT_FOUND)
            return true;
        if (s != NATS_OK) {
            snprintf(why, wlen, "cannot read %s: %s", PK_STREAM_TRUST, natsStatus_GetText(s));
            return false;
        }
        if (natsMsgHeader_Get(m, "Nats-Sequence", &hv) != NATS_OK || !hv ||
            strtoull(hv, NULL, 10) <= seq) {
            natsMsg_Destroy(m);
            snprintf(why, wlen, "a change of %s came without its sequence", agent);
            return false;
        }
        seq = strtoull(hv, NULL, 10);
        tc = pactum__v1__trust_change__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        natsMsg_Destroy(m);
        if (tc) {
            match_change(r, tc, seq, why, wlen);
            pactum__v1__trust_change__free_unpacked(tc, NULL);
        }
    }
    return true;
}

/*
 * Every statement the replay issued is, byte for byte, the one the scorer published in
 * PACTUM_TRUST; false with why if one differs or is not there.
 */
static bool statements_agree(replay *r, char *why, size_t wlen, size_t *matched)
{
    *matched = 0;
    why[0] = '\0';
    for (size_t k = 0; k < r->n_issued; k++) {
        bool walked = false;
        for (size_t j = 0; j < k && !walked; j++)
            walked = strcmp(r->issued[j].agent, r->issued[k].agent) == 0;
        if (!walked && !agent_changes(r, r->issued[k].agent, why, wlen))
            return false;
    }
    for (size_t k = 0; k < r->n_issued; k++) {
        if (r->issued[k].matched)
            (*matched)++;
        else if (!why[0])
            snprintf(why, wlen, "statement %u of %s (%s) is not in PACTUM_TRUST",
                     r->issued[k].number, r->issued[k].engagement, r->issued[k].agent);
    }
    return *matched == r->n_issued;
}

/* Apply one input the way the scorer does (what the scorer dead-letters is skipped). */
static pk_status apply(replay *r, MDB_txn *txn, natsMsg *m, uint64_t seq)
{
    const char *subject = natsMsg_GetSubject(m);
    char agent[PK_ID_MAX + 1], kind;
    int64_t ts = 0;
    pk_applied a;
    pk_status st;

    if (r->limited && pk_scoring_subject_agent(subject, agent, sizeof(agent), &kind) &&
        seq > r->upto[pk_partition_of(agent, r->partitions)])
        return PK_OK; /* the live scorer has not applied it yet */
    if (pk_msg_meta(m, NULL, NULL, &ts) != PK_OK)
        ts = 0; /* as the scorer does: a new agent's clock then starts at 0 */
    st = pk_scoring_step(&r->scoring, txn, subject, (const uint8_t *)natsMsg_GetData(m),
                         (size_t)natsMsg_GetDataLength(m), seq, ts, &a);
    if (st == PK_EINVAL || st == PK_EDECODE)
        return PK_OK;
    if (st == PK_OK) {
        st = keep_statements(r, &a);
        pk_applied_free(&a);
        r->inputs++;
    }
    return st;
}

/* One fetched batch: computed under a read transaction, then written. */
static pk_status apply_batch(replay *r, natsMsgList *list, uint64_t *seen)
{
    MDB_txn *txn = NULL;
    pk_status st;

    if ((st = pk_txn_begin(r->store, false, &txn)) != PK_OK)
        return st;
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        uint64_t seq = pk_msg_seq(list->Msgs[i]);
        if (seq > r->last)
            break;
        st = apply(r, txn, list->Msgs[i], seq);
        *seen = seq;
    }
    if (st == PK_OK)
        st = pk_scoring_store(&r->scoring, txn, r->ws);
    pk_txn_abort(txn);
    if (st == PK_OK)
        st = pk_wset_commit(r->ws, r->store);
    return st;
}

/* Read PACTUM_VERDICTS from the start to its last message when the replay began. */
static int run(replay *r)
{
    pk_consumer c = {0};
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int code = CLI_OK;

    if (js_GetStreamInfo(&si, r->bus->js, PK_STREAM_VERDICTS, NULL, &jerr) != NATS_OK)
        return cli_error(CLI_BUS, "cannot read %s: %s", PK_STREAM_VERDICTS, pk_error_msg());
    r->last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (r->last > 0 && pk_consumer_open(&c, r->bus, PK_STREAM_VERDICTS, NULL, "pactum.verdicts.>",
                                        1, 1024, 30000) != PK_OK)
        return cli_error(CLI_BUS, "%s", pk_error_msg());
    for (uint64_t seen = 0; seen < r->last;) {
        natsMsgList list;
        pk_status st = pk_consumer_fetch(&c, &list, 512, 5000);
        if (st == PK_ETIMEOUT)
            break;
        if (st != PK_OK) {
            code = cli_error(CLI_BUS, "%s", pk_error_msg());
            break;
        }
        st = apply_batch(r, &list, &seen);
        natsMsgList_Destroy(&list);
        if (st != PK_OK) {
            code = cli_error(CLI_IO, "replay stopped: %s", pk_error_msg());
            break;
        }
    }
    pk_consumer_close(&c);
    return code;
}

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    return remove(p);
}

/* What every live scorer said: each owned partition's digest, agents and position. */
typedef struct live_view {
    uint64_t mask; /* partitions some scorer owns */
    uint8_t digest[PK_PARTITIONS_MAX][32];
    uint64_t agents[PK_PARTITIONS_MAX];
    uint64_t applied[PK_PARTITIONS_MAX];
    char owner[PK_PARTITIONS_MAX][64]; /* the instance that said so */
    char conflict[256];                /* two owners of one partition that disagree */
    int instances;                     /* scorers that answered */
} live_view;

static bool take_digest(void *ctx, natsMsg *m)
{
    live_view *v = ctx;
    json_t *doc = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    json_t *parts = json_object_get(doc, "partitions"), *e;
    const char *key, *who = json_string_value(json_object_get(doc, "instance"));

    v->instances++;
    json_object_foreach(parts, key, e)
    {
        unsigned long p = strtoul(key, NULL, 10);
        const char *hex = json_string_value(json_object_get(e, "digest"));
        uint8_t d[32];
        if (p >= PK_PARTITIONS_MAX || !hex || pk_hex_decode(hex, d, 32) != PK_OK)
            continue;
        if ((v->mask & (1ull << p)) && memcmp(v->digest[p], d, 32) != 0 && !v->conflict[0])
            snprintf(v->conflict, sizeof(v->conflict),
                     "partition %lu is owned by two scorers that disagree (%s and %s)", p,
                     v->owner[p], who ? who : "?");
        v->mask |= 1ull << p;
        memcpy(v->digest[p], d, 32);
        v->agents[p] = (uint64_t)json_integer_value(json_object_get(e, "agents"));
        v->applied[p] =
            (uint64_t)json_integer_value(json_object_get(json_object_get(doc, "applied"), key));
        snprintf(v->owner[p], sizeof(v->owner[p]), "%s", who ? who : "?");
    }
    json_decref(doc);
    return true;
}

/* Every live scorer's digests (each answers for the partitions it owns); false if none did. */
static bool live_digests(pk_bus *bus, live_view *v)
{
    int n = 0;

    memset(v, 0, sizeof(*v));
    return pk_bus_gather(bus, PK_SUBJ_SCORER_DIGEST, "", 0, cli.timeout_ms, 500, PK_PARTITIONS_MAX,
                         take_digest, v, &n) == PK_OK;
}

/* One digest for the live partitions: SHA-256 over their digests in partition order. */
static void live_digest_of(const live_view *v, char hex[65], uint64_t *agents)
{
    pk_digests d;
    uint8_t all[32];

    memset(&d, 0, sizeof(d));
    memcpy(d.part, v->digest, sizeof(d.part));
    memcpy(d.agents, v->agents, sizeof(d.agents));
    pk_scoring_digest_of(&d, v->mask, all, agents);
    pk_hex_encode(all, 32, hex);
}

/* Replay exactly what the live scorers have applied, partition by partition. */
static void limit_to(replay *r, const live_view *v)
{
    r->limited = true;
    for (uint32_t p = 0; p < PK_PARTITIONS_MAX; p++)
        r->upto[p] = (v->mask & (1ull << p)) ? v->applied[p] : 0;
}

/* The fresh store, its registry copy, and the scorer's input step over them. */
static int open_replay(replay *r, const char *dir)
{
    if (pk_streams_ensure(r->bus, &r->partitions) != PK_OK ||
        pk_store_open(&r->store, dir, 4096, 8) != PK_OK ||
        pk_store_dbi(r->store, "agents", 0, &r->agents) != PK_OK ||
        pk_registry_open(&r->reg, r->store, r->bus) != PK_OK ||
        pk_registry_sync(r->reg, 0) != PK_OK ||
        pk_pact_cache_create(&r->pacts, r->reg, 256) != PK_OK || pk_wset_create(&r->ws) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    pk_scoring_init(&r->scoring, r->reg, r->pacts, r->agents, history, r);
    pk_scoring_bound(&r->scoring, r->ws, PK_SCORING_STATES);
    r->scoring_ready = true;
    return CLI_OK;
}

/* The live scorers applied inputs while we replayed (a tick, an event): try again. */
#define REPLAY_MOVED (-1)
#define REPLAY_TRIES 5

/* Print the digest (and compare it with the live scorers'); the exit code, or REPLAY_MOVED. */
static int report(replay *r, const char *dir, const live_view *before, const live_view *after)
{
    static pk_digests d;
    uint64_t all_mask = r->partitions >= 64 ? ~0ull : ((1ull << r->partitions) - 1);
    uint8_t digest[32];
    char hex[65], lhex[65], lhex_after[65];
    uint64_t n_agents = 0, n_live = 0;
    int differ = 0;

    if (pk_scoring_digests(r->store, r->agents, r->partitions, &d) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    pk_scoring_digest_of(&d, before ? before->mask : all_mask, digest, &n_agents);
    pk_hex_encode(digest, 32, hex);
    if (before) {
        live_digest_of(before, lhex, &n_live);
        if (after)
            live_digest_of(after, lhex_after, &n_live);
        /* compared only with a live state that held still while we replayed */
        if (!before->conflict[0] && (!after || strcmp(lhex, lhex_after) != 0))
            return REPLAY_MOVED;
    }
    if (cli.json) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:s}", "digest", hex, "agents",
                              (json_int_t)n_agents, "inputs", (json_int_t)r->inputs, "last_seq",
                              (json_int_t)r->last, "folder", dir);
        if (before)
            json_object_set_new(o, "live", after ? json_string(lhex_after) : json_null());
        cli_print_json(o);
    } else {
        printf("replayed %llu input%s (PACTUM_VERDICTS #1..#%llu) for %llu agent%s into %s\n",
               (unsigned long long)r->inputs, r->inputs == 1 ? "" : "s",
               (unsigned long long)r->last, (unsigned long long)n_agents, n_agents == 1 ? "" : "s",
               dir);
        printf("digest   %s\n", hex);
    }
    if (r->n_issued) {
        char why[256];
        size_t matched = 0;
        bool same = statements_agree(r, why, sizeof(why), &matched);
        if (!cli.json)
            printf("statements %zu issued by the replay, %zu byte for byte the ones in "
                   "PACTUM_TRUST\n",
                   r->n_issued, matched);
        if (!same)
            return cli_error(CLI_FAIL, "settlement statements: %s", why);
    }
    if (!before)
        return CLI_OK;
    if (before->conflict[0])
        return cli_error(CLI_FAIL, "%s", before->conflict);
    for (uint32_t p = 0; p < r->partitions; p++) {
        char ph[65];
        if (!(before->mask & (1ull << p))) {
            if (!cli.json)
                printf("partition %u: no scorer owns it\n", p);
            differ++;
            continue;
        }
        if (memcmp(before->digest[p], d.part[p], 32) == 0)
            continue;
        pk_hex_encode(before->digest[p], 32, ph);
        if (!cli.json)
            printf("partition %u: %s says %s\n", p, before->owner[p], ph);
        differ++;
    }
    if (!cli.json)
        printf("live     %s (%d scorer%s)%s\n", lhex, before->instances,
               before->instances == 1 ? "" : "s", differ ? "" : " (the same)");
    if (differ)
        return cli_error(CLI_FAIL,
                         "the replayed state differs from the live scorers' in %d "
                         "partition%s",
                         differ, differ == 1 ? "" : "s");
    return CLI_OK;
}

static int replay_into(const char *dir, bool compare)
{
    replay r = {.partitions = PK_PARTITIONS_DEFAULT};
    static live_view before, after;
    bool have_after = false;
    int code;

    if (!(r.bus = cli_connect()))
        return CLI_BUS;
    if (compare && !live_digests(r.bus, &before)) {
        code = cli_error(CLI_BUS, "no scorer answers on %s: %s", PK_SUBJ_SCORER_DIGEST,
                         pk_error_msg());
        goto out;
    }
    if (compare)
        limit_to(&r, &before);
    if ((code = open_replay(&r, dir)) != CLI_OK || (code = run(&r)) != CLI_OK)
        goto out;
    if (compare)
        have_after = live_digests(r.bus, &after);
    code = report(&r, dir, compare ? &before : NULL, have_after ? &after : NULL);
out:
    for (size_t i = 0; i < r.n_issued; i++)
        free(r.issued[i].buf);
    free(r.issued);
    if (r.scoring_ready)
        pk_scoring_free(&r.scoring);
    pk_wset_destroy(r.ws);
    pk_pact_cache_destroy(r.pacts);
    pk_registry_close(r.reg);
    pk_store_close(r.store);
    pk_bus_close(r.bus);
    return code;
}

/* The folder to replay into: keep (which must not exist yet), or a new temporary one. */
static int make_folder(const char *keep, char *dir, size_t len)
{
    if (keep) {
        if (mkdir(keep, 0700) != 0)
            return cli_error(CLI_IO, "--keep %s: %s (give a folder that does not exist yet)", keep,
                             strerror(errno));
        snprintf(dir, len, "%s", keep);
        return CLI_OK;
    }
    snprintf(dir, len, "/tmp/pactum-replay-XXXXXX"); /* mkdtemp's template */
    if (!mkdtemp(dir))
        return cli_error(CLI_IO, "cannot make a temporary folder: %s", strerror(errno));
    return CLI_OK;
}

int cmd_replay(const cli_call *c)
{
    const char *keep = cli_get(c, "keep");
    char dir[512];
    int code;

    if ((code = make_folder(keep, dir, sizeof(dir))) != CLI_OK)
        return code;
    /* an agent whose time has come gets a tick every second or so: a comparison that met one
     * is made again, a few times, before it is given up */
    for (int attempt = 1;; attempt++) {
        code = replay_into(dir, cli_has(c, "compare"));
        if (code != REPLAY_MOVED || attempt == REPLAY_TRIES)
            break;
        fprintf(stderr,
                "pactum: the live scorers applied inputs during the replay; replaying "
                "again (%d of %d)\n",
                attempt + 1, REPLAY_TRIES);
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        pk_sleep_ms(300 * attempt);
        if ((code = make_folder(keep, dir, sizeof(dir))) != CLI_OK)
            return code;
    }
    if (code == REPLAY_MOVED)
        code = cli_error(CLI_FAIL,
                         "the live scorers kept changing during %d replays; run it "
                         "again when fewer inputs are arriving",
                         REPLAY_TRIES);
    if (!keep)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return code;
}
