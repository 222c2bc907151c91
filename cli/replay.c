#define _GNU_SOURCE
/*
 * replay: rebuild the scorer's state from the recorded history (the
 * PACTUM_VERDICTS stream: verdicts and governance records) into a fresh LMDB
 * folder, with the scorer's own code, and print a digest of the state. With
 * --compare, ask the live scorer for its digest and say whether they agree.
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
#include "pk/store.h"
#include "scorer.h"

typedef struct replay {
    pk_bus *bus;                      /* connection */
    pk_store *store;                  /* the fresh LMDB */
    pk_registry *reg;                 /* registry copy in it */
    uint32_t partitions;              /* of the streams */
    MDB_dbi agents;                   /* agent -> TrustState */
    pk_core core;                     /* the scorer's input logic */
    bool limited;                     /* replay only up to upto[partition] */
    uint64_t upto[PK_PARTITIONS_MAX]; /* the live scorer's applied positions */
} replay;

static pk_status history(void *ctx, const char *agent, uint64_t before_seq, pk_input_fn each,
                         void *each_ctx)
{
    replay *r = ctx;

    return pk_read_history(r->bus, r->partitions, agent, before_seq, each, each_ctx);
}

/* Apply one input the way the scorer does, storing the state. */
static pk_status apply(replay *r, MDB_txn *txn, natsMsg *m, uint64_t *inputs)
{
    static pk_trust_msg_storage storage;
    const char *subject = natsMsg_GetSubject(m);
    char agent[PK_ID_MAX + 1];
    bool is_gov;
    uint64_t seq = 0;
    int64_t ts = 0;
    Pactum__V1__TrustState *stored = NULL, out;
    pk_trust *t = malloc(sizeof(*t));
    pk_applied a;
    pk_status st;

    if (!t)
        return PK_ERR(PK_ENOMEM, "out of memory");
    pk_msg_meta(m, &seq, NULL, &ts);
    if (!pk_core_subject_agent(subject, agent, sizeof(agent), &is_gov) ||
        pk_id_check("agent id", agent) != PK_OK) {
        free(t);
        return PK_OK; /* the scorer dead-letters these */
    }
    if (r->limited && seq > r->upto[pk_partition_of(agent, r->partitions)]) {
        free(t);
        return PK_OK; /* the live scorer has not applied it yet */
    }
    st = pk_get_msg(txn, r->agents, agent, strlen(agent), &pactum__v1__trust_state__descriptor,
                    (ProtobufCMessage **)&stored);
    if (st == PK_OK) {
        pk_trust_from_msg(t, stored);
        pactum__v1__trust_state__free_unpacked(stored, NULL);
    } else if (st == PK_ENOTFOUND) {
        pk_trust_init(t, agent, ts);
    } else {
        free(t);
        return st;
    }
    st = pk_core_apply(&r->core, txn, t, subject, (const uint8_t *)natsMsg_GetData(m),
                       (size_t)natsMsg_GetDataLength(m), seq, &a);
    if (st == PK_EDECODE) {
        free(t);
        return PK_OK;
    }
    if (st == PK_OK) {
        if (a.changed)
            t->change_seq++; /* the scorer numbers every change it publishes */
        pk_applied_free(&a);
        pk_trust_to_msg(t, pk_core_governance(&r->core, txn, t), &out, &storage);
        st = pk_put_msg(txn, r->agents, agent, strlen(agent), &out.base);
        (*inputs)++;
    }
    free(t);
    return st;
}

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    return remove(p);
}

/* The live scorer's digest and agent count, as JSON. */
static json_t *live_digest(pk_bus *bus)
{
    natsMsg *reply = NULL;
    json_t *doc = NULL;

    if (natsConnection_Request(&reply, bus->nc, PK_SUBJ_SCORER_DIGEST, "", 0, cli.timeout_ms) ==
        NATS_OK) {
        doc = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
        natsMsg_Destroy(reply);
    }
    return doc;
}

int cmd_replay(cli_args *a)
{
    const char *keep = NULL;
    bool compare = false;
    char dir[512];
    replay r = {0};
    pk_consumer c = {0};
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t last = 0, inputs = 0, n_agents = 0;
    uint8_t digest[32];
    char hex[65];
    json_t *live_before = NULL, *live_after = NULL;
    int code = CLI_OK, rc;

    while (a->i < a->argc) {
        if ((rc = cli_opt(a, "keep", &keep))) {
            if (rc < 0)
                return cli_usage_error("--keep needs a folder");
        } else if (cli_flag(a, "compare")) {
            compare = true;
        } else {
            return cli_usage_error("replay: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (keep) {
        if (mkdir(keep, 0700) != 0)
            return cli_error(CLI_IO, "--keep %s: %s (give a folder that does not exist yet)", keep,
                             strerror(errno));
        snprintf(dir, sizeof(dir), "%s", keep);
    } else {
        snprintf(dir, sizeof(dir), "/tmp/pactum-replay-XXXXXX");
        if (!mkdtemp(dir))
            return cli_error(CLI_IO, "cannot make a temporary folder: %s", strerror(errno));
    }
    if (!(r.bus = cli_connect())) {
        code = CLI_BUS;
        goto out;
    }
    r.partitions = PK_PARTITIONS_DEFAULT;
    if (compare && !(live_before = live_digest(r.bus))) {
        code = cli_error(CLI_BUS, "the scorer does not answer on %s", PK_SUBJ_SCORER_DIGEST);
        goto out;
    }
    if (compare) {
        /* replay exactly what the live scorer has applied, partition by partition */
        json_t *applied = json_object_get(live_before, "applied");
        const char *p;
        json_t *v;
        r.limited = true;
        json_object_foreach(applied, p, v)
        {
            unsigned long n = strtoul(p, NULL, 10);
            if (n < PK_PARTITIONS_MAX)
                r.upto[n] = (uint64_t)json_integer_value(v);
        }
    }
    if (pk_streams_ensure(r.bus, &r.partitions) != PK_OK ||
        pk_store_open(&r.store, dir, 4096, 8) != PK_OK ||
        pk_store_dbi(r.store, "agents", 0, &r.agents) != PK_OK ||
        pk_registry_open(&r.reg, r.store, r.bus) != PK_OK || pk_registry_sync(r.reg, 0) != PK_OK) {
        code = cli_error(CLI_IO, "%s", pk_error_msg());
        goto out;
    }
    pk_core_init(&r.core, r.reg, history, &r);
    if (js_GetStreamInfo(&si, r.bus->js, PK_STREAM_VERDICTS, NULL, &jerr) != NATS_OK) {
        code = cli_error(CLI_BUS, "cannot read %s: %s", PK_STREAM_VERDICTS, pk_error_msg());
        goto out;
    }
    last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (last > 0 && pk_consumer_open(&c, r.bus, PK_STREAM_VERDICTS, NULL, "pactum.verdicts.>", 1,
                                     1024, 30000) != PK_OK) {
        code = cli_error(CLI_BUS, "%s", pk_error_msg());
        goto out;
    }
    for (uint64_t seen = 0; seen < last;) {
        natsMsgList list;
        MDB_txn *txn = NULL;
        pk_status st = pk_consumer_fetch(&c, &list, 512, 5000);
        if (st == PK_ETIMEOUT)
            break;
        if (st != PK_OK || pk_txn_begin(r.store, true, &txn) != PK_OK) {
            code = cli_error(CLI_BUS, "%s", pk_error_msg());
            break;
        }
        for (int i = 0; i < list.Count && st == PK_OK; i++) {
            uint64_t seq = 0;
            pk_msg_meta(list.Msgs[i], &seq, NULL, NULL);
            if (seq > last)
                break;
            st = apply(&r, txn, list.Msgs[i], &inputs);
            seen = seq;
        }
        natsMsgList_Destroy(&list);
        if (st != PK_OK || pk_txn_commit(txn) != PK_OK) {
            if (st != PK_OK)
                pk_txn_abort(txn);
            code = cli_error(CLI_IO, "replay stopped: %s", pk_error_msg());
            break;
        }
    }
    if (code != CLI_OK)
        goto out;
    if (scorer_digest(r.store, r.agents, digest, &n_agents) != PK_OK) {
        code = cli_error(CLI_IO, "%s", pk_error_msg());
        goto out;
    }
    pk_hex_encode(digest, 32, hex);
    if (compare)
        live_after = live_digest(r.bus);
    if (cli.json) {
        json_t *o =
            json_pack("{s:s, s:I, s:I, s:I, s:s}", "digest", hex, "agents", (json_int_t)n_agents,
                      "inputs", (json_int_t)inputs, "last_seq", (json_int_t)last, "folder", dir);
        if (compare)
            json_object_set(o, "live", live_after ? live_after : json_null());
        cli_print_json(o);
    } else {
        printf("replayed %llu input%s (PACTUM_VERDICTS #1..#%llu) for %llu agent%s into %s\n",
               (unsigned long long)inputs, inputs == 1 ? "" : "s", (unsigned long long)last,
               (unsigned long long)n_agents, n_agents == 1 ? "" : "s", dir);
        printf("digest   %s\n", hex);
    }
    if (compare) {
        const char *ld =
            live_after ? json_string_value(json_object_get(live_after, "digest")) : NULL;
        const char *lb = json_string_value(json_object_get(live_before, "digest"));
        if (!ld || !lb || strcmp(ld, lb) != 0) {
            code = cli_error(CLI_FAIL, "the live scorer changed during the replay; run it again "
                                       "when no input is arriving");
        } else if (strcmp(ld, hex) != 0) {
            if (!cli.json)
                printf("live     %s\n", ld);
            code = cli_error(CLI_FAIL, "the replayed state differs from the live scorer's");
        } else if (!cli.json) {
            printf("live     %s (the same)\n", ld);
        }
    }
out:
    pk_consumer_close(&c);
    pk_core_free(&r.core);
    pk_registry_close(r.reg);
    pk_store_close(r.store);
    pk_bus_close(r.bus);
    json_decref(live_before);
    json_decref(live_after);
    if (!keep)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return code;
}
