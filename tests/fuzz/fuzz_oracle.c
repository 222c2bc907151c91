/*
 * Fuzz: the oracle's questions. The first byte picks the question (trust,
 * pact, authorize, evidence, attestation, figures, log, or an HTTP authorize
 * body); the rest is the request. The oracle runs on a scratch LMDB holding
 * a small log, with no bus: every answer must be built and signed, whatever
 * the bytes.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oracle o;
static oracle_cfg cfg;

static char dir[] = "/tmp/pactum-fuzz-oracle-XXXXXX"; /* mkdtemp's template */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* The scratch store goes when the process does. */
static void cleanup(void)
{
    if (o.store)
        pk_store_close(o.store);
    o.store = NULL;
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A scratch oracle with 13 leaves of agent "bot" in its log. */
static void setup(void)
{
    MDB_txn *txn = NULL;
    uint64_t size = 0;
    tlog_cfg lc = {.batch = 16};

    if (pk_crypto_init() != PK_OK || !mkdtemp(dir) || pk_store_open(&o.store, dir, 64, 24) != PK_OK)
        abort();
    atexit(cleanup);
    cfg.history = 20;
    cfg.attest_ttl_ms = 3600000;
    cfg.log_batch = 16;
    o.cfg = &cfg;
    oracle_metrics_init(&o);
    if (oracle_open_dbs(&o) != PK_OK || pk_registry_open(&o.reg, o.store, NULL) != PK_OK ||
        pk_pact_cache_create(&o.pacts, o.reg, 16) != PK_OK || pk_keypair_generate(&o.kp) != PK_OK ||
        tlog_open(&o.log, &lc, &o.svc, NULL, o.store, &o.kp) != PK_OK)
        abort();
    if (pk_txn_begin(o.store, true, &txn) != PK_OK)
        abort();
    for (uint64_t i = 0; i < 13; i++) {
        Pactum__V1__LogLeaf l = PACTUM__V1__LOG_LEAF__INIT;
        uint8_t digest[32] = {(uint8_t)i}, *buf = NULL;
        size_t len = 0;
        l.kind = PACTUM__V1__LEAF_KIND__LEAF_EVENT;
        l.stream = "PACTUM_EVENTS";
        l.stream_seq = i + 1;
        l.agent_id = "bot";
        l.data_sha256.data = digest;
        l.data_sha256.len = 32;
        if (pk_pack(&l.base, &buf, &len) != PK_OK ||
            tlog_append_leaf(&o.log, txn, buf, len, l.stream, l.stream_seq, l.agent_id, &size) !=
                PK_OK)
            abort();
        free(buf);
    }
    if (pk_put_u64(txn, o.log.meta, "log_size", size) != PK_OK || pk_txn_commit(txn) != PK_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const oracle_answer_fn fns[] = {oracle_answer_trust,     oracle_answer_pact,
                                           oracle_answer_authorize, oracle_answer_evidence,
                                           oracle_answer_attest,    oracle_answer_figures,
                                           oracle_answer_log};
    uint8_t *out = NULL;
    size_t len = 0;

    if (!o.store)
        setup();
    if (size == 0)
        return 0;
    if (data[0] % 8 == 7) {
        /* an HTTP authorize body */
        Pactum__V1__AuthorizeRequest q;
        json_t *doc = NULL;
        char why[320], agent[] = "bot";
        uint8_t *req = NULL;
        size_t rlen = 0;
        if (oracle_authorize_body((const char *)data + 1, size - 1, agent, &q, &doc, why,
                                  sizeof(why))) {
            /* what the HTTP route then asks, as it asks it */
            if (pk_pack(&q.base, &req, &rlen) != PK_OK ||
                fns[2](&o, req, rlen, &out, &len) != PK_OK ||
                pk_answer_open(out, len, 0, NULL, o.kp.pk, NULL, NULL) != PK_OK)
                abort();
            free(req);
            free(out);
        }
        json_decref(doc);
        return 0;
    }
    if (fns[data[0] % 8](&o, data + 1, size - 1, &out, &len) != PK_OK)
        abort(); /* there is always an answer to send */
    if (pk_answer_open(out, len, 0, NULL, o.kp.pk, NULL, NULL) != PK_OK)
        abort(); /* and it is signed */
    free(out);
    return 0;
}
