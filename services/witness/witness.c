/*
 * witness - checks and cosigns checkpoints (witness.h).
 */
#include "witness.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pk/log.h"
#include "pk/merkle.h"

pk_status witness_open(witness *w, const char *dir, const pk_keypair *kp, const char *name,
                       const char *logs)
{
    const pk_dbi_spec dbis[] = {{"state", 0, &w->state}, {"evidence", 0, &w->evidence}};
    const char *p = logs;
    pk_status st;

    memset(w, 0, sizeof(*w));
    w->kp = *kp;
    if (strlen(name) >= sizeof(w->name) || strchr(name, ' ') || strchr(name, '+') || !*name)
        return PK_ERR(PK_EINVAL, "--name '%s': a key name has no spaces or '+'", name);
    snprintf(w->name, sizeof(w->name), "%s", name);
    while (p && *p) {
        char one[512];
        size_t n = strcspn(p, ",");
        if (n >= sizeof(one))
            return PK_ERR(PK_EINVAL, "--logs: a verifier key longer than %zu", sizeof(one));
        if (w->n_logs == WITNESS_LOGS_MAX)
            return PK_ERR(PK_EINVAL, "--logs: more than %d logs", WITNESS_LOGS_MAX);
        memcpy(one, p, n);
        one[n] = '\0';
        if (n) {
            witness_log *l = &w->logs[w->n_logs];
            if ((st = pk_note_verifier_parse(one, PK_NOTE_ED25519, l->origin, l->pk)) != PK_OK)
                return PK_WRAP(st, "--logs");
            w->n_logs++;
        }
        p += n + (p[n] == ',');
    }
    if (w->n_logs == 0)
        return PK_ERR(PK_EINVAL, "--logs: no log to follow (the log's note verifier key, from "
                                 "GET /v1/log/key)");
    if ((st = pk_store_open(&w->store, dir, 64, 4)) != PK_OK ||
        (st = pk_store_dbis(w->store, dbis, 2)) != PK_OK) {
        pk_store_close(w->store);
        w->store = NULL;
        return st;
    }
    return PK_OK;
}

void witness_close(witness *w)
{
    pk_store_close(w->store);
    w->store = NULL;
    sodium_memzero(&w->kp, sizeof(w->kp));
}

static void reply(witness_reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(witness_reply *r, unsigned status, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    r->type = "text/plain; charset=utf-8";
    va_start(ap, fmt);
    vsnprintf(r->body, sizeof(r->body), fmt, ap);
    va_end(ap);
}

/* A request as the specification lays it out: the old size, the proof, the checkpoint. */
typedef struct request {
    uint64_t old;
    uint8_t proof[WITNESS_PROOF_MAX][PK_HASH];
    size_t n_proof;
    const char *note; /* the checkpoint, as sent */
    size_t note_len;
} request;

/* Parse a decimal with no leading zero ("0" itself allowed) of n bytes. */
static bool decimal(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool parse_request(const char *body, size_t len, request *rq, witness_reply *r)
{
    const char *p = body, *end = body + len, *nl;

    nl = memchr(p, '\n', len);
    if (!nl || nl - p < 5 || memcmp(p, "old ", 4) != 0 ||
        !decimal(p + 4, (size_t)(nl - p - 4), &rq->old)) {
        reply(r, 400, "the first line must be \"old <size>\"\n");
        return false;
    }
    for (p = nl + 1; p < end && *p != '\n'; p = nl + 1) {
        uint8_t buf[PK_HASH + 3];
        size_t n = 0;
        if (!(nl = memchr(p, '\n', (size_t)(end - p))) || rq->n_proof == WITNESS_PROOF_MAX ||
            sodium_base642bin(buf, sizeof(buf), p, (size_t)(nl - p), NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            n != PK_HASH) {
            reply(r, 400,
                  "proof line %zu: expected a base64 hash (at most %d lines), then an "
                  "empty line\n",
                  rq->n_proof + 1, WITNESS_PROOF_MAX);
            return false;
        }
        memcpy(rq->proof[rq->n_proof++], buf, PK_HASH);
    }
    if (p >= end) {
        reply(r, 400, "no empty line before the checkpoint\n");
        return false;
    }
    rq->note = p + 1;
    rq->note_len = (size_t)(end - p - 1);
    return true;
}

/* Keep a request the log signed but the witness refused: proof of the log's misbehaviour. */
static void keep_evidence(witness *w, MDB_txn *txn, const char *body, size_t len, uint64_t now_s)
{
    uint8_t key[16];
    uint64_t n = 0;
    MDB_stat ms;

    if (mdb_stat(txn, w->evidence, &ms) == MDB_SUCCESS)
        n = ms.ms_entries;
    pk_be64_put(key, now_s);
    pk_be64_put(key + 8, n);
    if (pk_put(txn, w->evidence, key, sizeof(key), body, len, 0) != PK_OK)
        PK_WARN("could not keep a refused request: %s", pk_error_msg());
}

void witness_add(witness *w, const char *body, size_t len, uint64_t now_s, witness_reply *r)
{
    request rq = {0};
    const witness_log *log = NULL;
    char origin[PK_NOTE_NAME_MAX];
    uint8_t root[PK_HASH], rec[8 + PK_HASH], known_root[PK_HASH];
    uint64_t size = 0, known = 0;
    size_t text_len = 0, sigs_at = 0;
    MDB_txn *txn = NULL;
    MDB_val v;
    bool have = false;

    if (!parse_request(body, len, &rq, r))
        return;
    if (pk_note_split(rq.note, rq.note_len, &text_len, &sigs_at) != PK_OK ||
        pk_checkpoint_parse(rq.note, text_len, origin, &size, root) != PK_OK) {
        reply(r, 400, "the checkpoint: %s\n", pk_error_msg());
        return;
    }
    for (size_t i = 0; i < w->n_logs && !log; i++)
        if (strcmp(w->logs[i].origin, origin) == 0)
            log = &w->logs[i];
    if (!log) {
        reply(r, 404, "unknown log %s\n", origin);
        return;
    }
    if (!pk_note_signed_by(rq.note, text_len, rq.note + sigs_at, rq.note_len - sigs_at, log->origin,
                           log->pk)) {
        reply(r, 403, "the checkpoint is not signed by the key of %s\n", origin);
        return;
    }
    if (size == 0) {
        uint8_t empty[PK_HASH];
        crypto_hash_sha256(empty, NULL, 0);
        if (memcmp(root, empty, PK_HASH) != 0) {
            reply(r, 400, "a tree of no leaves has the hash of nothing as its root\n");
            return;
        }
    }
    if (rq.old > size) {
        reply(r, 400, "old size %llu is larger than the checkpoint's %llu\n",
              (unsigned long long)rq.old, (unsigned long long)size);
        return;
    }
    /* check and record in one write transaction: LMDB has one writer at a time */
    if (pk_txn_begin(w->store, true, &txn) != PK_OK) {
        reply(r, 503, "state: %s\n", pk_error_msg());
        return;
    }
    if (pk_get(txn, w->state, origin, strlen(origin), &v) == PK_OK && v.mv_size == sizeof(rec)) {
        const uint8_t *b = v.mv_data;
        for (int i = 0; i < 8; i++)
            known = known << 8 | b[i];
        memcpy(known_root, b + 8, PK_HASH);
        have = true;
    }
    if (rq.old != known) {
        pk_txn_abort(txn);
        reply(r, 409, "%llu\n", (unsigned long long)known);
        r->type = "text/x.tlog.size";
        return;
    }
    if (have && rq.old == size) {
        if (memcmp(known_root, root, PK_HASH) != 0) {
            keep_evidence(w, txn, body, len, now_s);
            if (pk_txn_commit(txn) != PK_OK)
                PK_WARN("could not keep a refused request: %s", pk_error_msg());
            PK_WARN("log %s signed two different trees of size %llu: a split view", origin,
                    (unsigned long long)size);
            reply(r, 409, "%llu\n", (unsigned long long)known);
            r->type = "text/x.tlog.size";
            return;
        }
    } else if (rq.old == 0 ? rq.n_proof != 0
                           : !pk_merkle_verify_consistency(rq.old, size, known_root, root,
                                                           (const uint8_t(*)[PK_HASH])rq.proof,
                                                           rq.n_proof)) {
        keep_evidence(w, txn, body, len, now_s);
        if (pk_txn_commit(txn) != PK_OK)
            PK_WARN("could not keep a refused request: %s", pk_error_msg());
        PK_WARN("log %s: tree %llu is not consistent with the cosigned tree %llu", origin,
                (unsigned long long)size, (unsigned long long)known);
        reply(r, 422, "the consistency proof from %llu to %llu does not verify\n",
              (unsigned long long)rq.old, (unsigned long long)size);
        return;
    }
    pk_be64_put(rec, size);
    memcpy(rec + 8, root, PK_HASH);
    if (pk_put(txn, w->state, origin, strlen(origin), rec, sizeof(rec), 0) != PK_OK) {
        pk_txn_abort(txn);
        reply(r, 503, "state: %s\n", pk_error_msg());
        return;
    }
    if (pk_txn_commit(txn) != PK_OK) {
        reply(r, 503, "state: %s\n", pk_error_msg());
        return;
    }
    /* recorded and synced: only now the cosignature */
    r->status = 200;
    r->type = "text/plain; charset=utf-8";
    if (pk_cosign(&w->kp, w->name, rq.note, text_len, now_s, r->body, sizeof(r->body)) != PK_OK)
        reply(r, 500, "cosign: %s\n", pk_error_msg());
}
