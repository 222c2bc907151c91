/*
 * witnesses - the log asks its witnesses to cosign its checkpoints (C2SP tlog-witness).
 *
 * A thread of its own, off every query path: each --witness-every, when the log has grown, it
 * makes the checkpoint of the whole log and sends it to each configured witness with a
 * consistency proof from the size that witness last cosigned (learnt from the witness itself:
 * a 409 answer carries it, and the request is made again from there). Each cosignature that
 * verifies under that witness's key is kept; the checkpoint with its cosignatures is what
 * GET /checkpoint serves from then on. A witness that is down, slow (2 s at most each) or
 * refuses is logged and counted, and the others are asked all the same.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oracle.h"
#include "pk/log.h"
#include "pk/note.h"
#include "pk/service.h"

#define WITNESSES_MAX 8
#define REPLY_MAX     4096

typedef struct witness_peer {
    char url[512];               /* <submission prefix>/add-checkpoint */
    char name[PK_NOTE_NAME_MAX]; /* its cosigner name */
    uint8_t pk[PK_PUBKEY_BYTES]; /* its key */
    uint64_t size;               /* the size it last cosigned, as far as known */
    long last_status;            /* of the last request, to log changes only */
    CURL *curl;                  /* kept: one connection per witness */
} witness_peer;

struct oracle_witnesses {
    witness_peer peers[WITNESSES_MAX];
    size_t n;
    pthread_t thread;
    volatile bool stop;
    pthread_mutex_t mu;
    char *served;       /* the checkpoint with its cosignatures, or NULL before the first */
    uint64_t sent_size; /* the size last sent round */
};

/* "URL VKEY,URL VKEY": the witnesses from --witnesses. */
static pk_status parse_peers(oracle_witnesses *ws, const char *spec)
{
    const char *p = spec;

    while (*p) {
        char one[1024], *space;
        size_t n = strcspn(p, ",");
        witness_peer *w = &ws->peers[ws->n];
        if (n >= sizeof(one))
            return PK_ERR(PK_EINVAL, "--witnesses: an entry longer than %zu", sizeof(one));
        memcpy(one, p, n);
        one[n] = '\0';
        p += n + (p[n] == ',');
        if (!n)
            continue;
        if (ws->n == WITNESSES_MAX)
            return PK_ERR(PK_EINVAL, "--witnesses: more than %d", WITNESSES_MAX);
        if (!(space = strchr(one, ' ')) ||
            (strncmp(one, "http://", 7) != 0 && strncmp(one, "https://", 8) != 0))
            return PK_ERR(PK_EINVAL,
                          "--witnesses: expected \"<URL> <verifier key>\" entries separated by "
                          "commas, got '%s'",
                          one);
        *space = '\0';
        while (space > one && space[-1] == '/')
            *--space = '\0';
        snprintf(w->url, sizeof(w->url), "%s/add-checkpoint", one);
        if (pk_note_verifier_parse(space + 1 + strspn(space + 1, " "), PK_NOTE_COSIG, w->name,
                                   w->pk) != PK_OK)
            return PK_WRAP(PK_EINVAL, "--witnesses: %s", one);
        ws->n++;
    }
    return PK_OK;
}

typedef struct reply_buf {
    char data[REPLY_MAX];
    size_t len;
} reply_buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    reply_buf *b = ctx;
    size_t n = size * nmemb, room = sizeof(b->data) - 1 - b->len;

    memcpy(b->data + b->len, ptr, n < room ? n : room);
    b->len += n < room ? n : room;
    b->data[b->len] = '\0';
    return n; /* the rest of a long answer is dropped, not an error */
}

/* POST body to w; the HTTP status (0: no answer) and the answer in *b. */
static long post(witness_peer *w, const char *body, size_t len, reply_buf *b)
{
    long status = 0;

    b->len = 0;
    b->data[0] = '\0';
    curl_easy_setopt(w->curl, CURLOPT_URL, w->url);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_easy_perform(w->curl) != CURLE_OK ||
        curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        return 0;
    return status;
}

/* The add-checkpoint body for w: old size, the proof from it to size, the checkpoint. */
static char *request_for(oracle *o, MDB_txn *txn, uint64_t old, uint64_t size, const char *note,
                         size_t *len)
{
    uint8_t path[PK_MERKLE_PATH_MAX][PK_HASH];
    size_t n = 0, cap = 64 + PK_MERKLE_PATH_MAX * 46 + strlen(note), at;
    char *body = malloc(cap);

    if (!body)
        return NULL;
    if (old > 0 && old < size && tlog_consistency(&o->log, txn, old, size, path, &n) != PK_OK) {
        free(body);
        return NULL;
    }
    at = (size_t)snprintf(body, cap, "old %llu\n", (unsigned long long)old);
    for (size_t i = 0; i < n; i++) {
        sodium_bin2base64(body + at, cap - at, path[i], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
        at += strlen(body + at);
        body[at++] = '\n';
    }
    at += (size_t)snprintf(body + at, cap - at, "\n%s", note);
    *len = at;
    return body;
}

/* Ask w to cosign note (tree of size leaves); its signature line appended to lines. */
static bool ask(oracle *o, MDB_txn *txn, witness_peer *w, const char *note, size_t text_len,
                uint64_t size, char *lines, size_t cap)
{
    reply_buf b;
    long status = 0;
    uint64_t t = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        size_t len = 0;
        char *body = request_for(o, txn, w->size <= size ? w->size : 0, size, note, &len);
        if (!body)
            return false;
        status = post(w, body, len, &b);
        free(body);
        if (status != 409)
            break;
        /* it has cosigned another size: from there, unless it is ahead of this tree */
        {
            char *end = NULL;
            unsigned long long at = strtoull(b.data, &end, 10);
            if (end == b.data || at > size || at == w->size)
                break;
            w->size = at;
        }
    }
    if (status == 200 && pk_cosigned_by(note, text_len, b.data, b.len, w->name, w->pk, &t)) {
        const char *line = strstr(b.data, w->name) - strlen("\xe2\x80\x94 ");
        size_t l = strcspn(line, "\n"), have = strlen(lines);
        if (have + l + 2 < cap) {
            memcpy(lines + have, line, l);
            lines[have + l] = '\n';
            lines[have + l + 1] = '\0';
        }
        w->size = size;
        if (w->last_status != 200)
            PK_INFO("witness %s cosigned the log at size %llu", w->name, (unsigned long long)size);
        w->last_status = 200;
        return true;
    }
    if (status != w->last_status)
        PK_WARN("witness %s (%s) did not cosign the log at size %llu: %s%ld %.200s", w->name,
                w->url, (unsigned long long)size, status ? "HTTP " : "no answer",
                status ? status : 0L, status == 200 ? "(its cosignature does not verify)" : b.data);
    w->last_status = status;
    return false;
}

/* One round: the checkpoint of the log as it is, to every witness. */
static void round_once(oracle *o, oracle_witnesses *ws)
{
    MDB_txn *txn = NULL;
    uint8_t root[PK_HASH];
    char name[PK_NOTE_NAME_MAX], note[PK_NOTE_MAX], *served;
    char lines[WITNESSES_MAX * 200] = "";
    uint64_t size;
    size_t text_len, sigs_at, cosigned = 0;

    if (pk_txn_begin(o->store, false, &txn) != PK_OK)
        return;
    size = tlog_size(&o->log, txn);
    pk_note_origin(o->kp.pk, name, sizeof(name));
    if (size == ws->sent_size || tlog_root(&o->log, txn, size, root) != PK_OK ||
        pk_checkpoint_note(&o->kp, name, size, root, note, sizeof(note)) != PK_OK ||
        pk_note_split(note, strlen(note), &text_len, &sigs_at) != PK_OK) {
        pk_txn_abort(txn);
        return;
    }
    for (size_t i = 0; i < ws->n && !ws->stop; i++)
        cosigned += ask(o, txn, &ws->peers[i], note, text_len, size, lines, sizeof(lines));
    pk_txn_abort(txn);
    pk_metric_add(&o->m[OM_COSIGNATURES], (long long)cosigned);
    pk_metric_add(&o->m[OM_COSIGN_FAILED], (long long)(ws->n - cosigned));
    if (!(served = malloc(strlen(note) + strlen(lines) + 1)))
        return;
    strcpy(served, note);
    strcat(served, lines);
    pthread_mutex_lock(&ws->mu);
    free(ws->served);
    ws->served = served;
    pthread_mutex_unlock(&ws->mu);
    ws->sent_size = size;
}

static void *witness_main(void *arg)
{
    oracle *o = arg;
    oracle_witnesses *ws = o->witnesses;

    while (!ws->stop && !pk_shutdown) {
        round_once(o, ws);
        for (int64_t slept = 0; slept < o->cfg->witness_every_ms && !ws->stop && !pk_shutdown;
             slept += 50)
            usleep(50 * 1000);
    }
    return NULL;
}

pk_status oracle_witnesses_start(oracle *o)
{
    oracle_witnesses *ws;
    pk_status st;

    if (!o->cfg->witnesses || !*o->cfg->witnesses)
        return PK_OK;
    if (!(ws = calloc(1, sizeof(*ws))))
        return PK_ERR(PK_ENOMEM, "witnesses");
    o->witnesses = ws;
    pthread_mutex_init(&ws->mu, NULL);
    ws->sent_size = UINT64_MAX;
    if ((st = parse_peers(ws, o->cfg->witnesses)) != PK_OK)
        return st;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return PK_ERR(PK_EIO, "libcurl could not start");
    for (size_t i = 0; i < ws->n; i++)
        if (!(ws->peers[i].curl = curl_easy_init()))
            return PK_ERR(PK_ENOMEM, "libcurl handle");
    if (pthread_create(&ws->thread, NULL, witness_main, o) != 0) {
        ws->n = 0;
        return PK_ERR(PK_EIO, "cannot start the witnesses' thread");
    }
    PK_INFO("checkpoints go to %zu witness%s every %lld ms", ws->n, ws->n == 1 ? "" : "es",
            (long long)o->cfg->witness_every_ms);
    return PK_OK;
}

char *oracle_witnessed_checkpoint(oracle *o)
{
    oracle_witnesses *ws = o->witnesses;
    char *copy = NULL;

    if (!ws)
        return NULL;
    pthread_mutex_lock(&ws->mu);
    if (ws->served)
        copy = strdup(ws->served);
    pthread_mutex_unlock(&ws->mu);
    return copy;
}

void oracle_witnesses_stop(oracle *o)
{
    oracle_witnesses *ws = o->witnesses;

    if (!ws)
        return;
    ws->stop = true;
    if (ws->thread)
        pthread_join(ws->thread, NULL);
    for (size_t i = 0; i < WITNESSES_MAX; i++)
        if (ws->peers[i].curl)
            curl_easy_cleanup(ws->peers[i].curl);
    pthread_mutex_destroy(&ws->mu);
    free(ws->served);
    free(ws);
    o->witnesses = NULL;
    curl_global_cleanup();
}
