/*
 * Checkpoints (C2SP signed notes) offline, with their witnesses' cosignatures, and
 * `pactum log monitor`, which follows a log by its checkpoints and tiles over HTTP.
 */
#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pk/answer.h"
#include "pk/merkle.h"
#include "pk/note.h"

bool cli_is_note(const uint8_t *buf, size_t len)
{
    size_t text_len, sigs_at;
    static const char prefix[] = "pactum.log/";

    return len > sizeof(prefix) && memcmp(buf, prefix, sizeof(prefix) - 1) == 0 &&
           pk_note_split((const char *)buf, len, &text_len, &sigs_at) == PK_OK;
}

/* Is note (len bytes) a checkpoint of the log of pk, signed by it? Its size and root. */
static bool log_signed(const char *note, size_t len, const uint8_t pk[32], size_t *text_len,
                       size_t *sigs_at, uint64_t *size, uint8_t root[PK_HASH])
{
    char origin[PK_NOTE_NAME_MAX], want[PK_NOTE_NAME_MAX];

    pk_note_origin(pk, want, sizeof(want));
    if (pk_note_split(note, len, text_len, sigs_at) != PK_OK ||
        pk_checkpoint_parse(note, *text_len, origin, size, root) != PK_OK) {
        printf("FAIL  not a checkpoint: %s\n", pk_error_msg());
        return false;
    }
    if (strcmp(origin, want) != 0) {
        printf("FAIL  a checkpoint of %s, not of the log whose key is pinned (%s)\n", origin, want);
        return false;
    }
    if (!pk_note_signed_by(note, *text_len, note + *sigs_at, len - *sigs_at, want, pk)) {
        printf("FAIL  the checkpoint is not signed by the log's key\n");
        return false;
    }
    return true;
}

int cli_verify_checkpoint(const uint8_t *buf, size_t len, const uint8_t pk[32],
                          const char *const *witnesses, size_t n_witnesses, size_t needed)
{
    const char *note = (const char *)buf;
    size_t text_len, sigs_at, cosigned = 0;
    uint64_t size;
    uint8_t root[PK_HASH];
    char root64[sodium_base64_ENCODED_LEN(PK_HASH, sodium_base64_VARIANT_ORIGINAL)];

    if (!log_signed(note, len, pk, &text_len, &sigs_at, &size, root))
        return CLI_FAIL;
    sodium_bin2base64(root64, sizeof(root64), root, PK_HASH, sodium_base64_VARIANT_ORIGINAL);
    printf("ok    checkpoint of %.*s: tree size %llu, root %s, signed by the log's key\n",
           (int)strcspn(note, "\n"), note, (unsigned long long)size, root64);
    for (size_t i = 0; i < n_witnesses; i++) {
        char name[PK_NOTE_NAME_MAX];
        uint8_t wpk[32];
        uint64_t t = 0;
        if (pk_note_verifier_parse(witnesses[i], PK_NOTE_COSIG, name, wpk) != PK_OK) {
            printf("FAIL  --witness %s\n", pk_error_msg());
            return CLI_FAIL;
        }
        if (pk_cosigned_by(note, text_len, note + sigs_at, len - sigs_at, name, wpk, &t)) {
            time_t tt = (time_t)t;
            char when[32];
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
            printf("ok    cosigned by witness %s at %s\n", name, when);
            cosigned++;
        } else {
            printf("--    no valid cosignature by witness %s\n", name);
        }
    }
    if (cosigned < needed) {
        printf("FAIL  %zu of the %zu witnesses cosigned; %zu needed\n", cosigned, n_witnesses,
               needed);
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cmd_log_key(const cli_call *c)
{
    uint8_t pk[32];
    int rc;
    char id[PK_LOG_ID_LEN + 1], hex[65], name[PK_NOTE_NAME_MAX], vkey[256];

    if ((rc = cli_log_key_arg(c, pk)) != CLI_OK)
        return rc;
    pk_log_id(pk, id);
    pk_hex_encode(pk, 32, hex);
    pk_note_origin(pk, name, sizeof(name));
    if (pk_note_verifier_key(name, PK_NOTE_ED25519, pk, vkey, sizeof(vkey)) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (cli.json) {
        cli_print_json(json_pack("{s:s, s:s, s:s, s:s}", "log_id", id, "key", hex, "note_key_name",
                                 name, "note_verifier_key", vkey));
    } else {
        printf("log id             %s\npublic key         %s\nnote key name      %s\n"
               "note verifier key  %s\n",
               id, hex, name, vkey);
    }
    return CLI_OK;
}

/* --- the monitor ----------------------------------------------------------------------- */

#define FETCH_MAX (32u << 20)

typedef struct fetched {
    uint8_t *data;
    size_t len;
    bool too_big;
} fetched;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    fetched *f = ctx;
    size_t n = size * nmemb;
    uint8_t *nb;

    if (f->len + n > FETCH_MAX || !(nb = realloc(f->data, f->len + n + 1))) {
        f->too_big = true;
        return 0;
    }
    memcpy(nb + f->len, ptr, n);
    f->data = nb;
    f->len += n;
    f->data[f->len] = 0;
    return n;
}

/* GET base + path into *f (caller frees f->data); CLI_OK, or a printed error. */
static int fetch(CURL *curl, const char *base, const char *path, fetched *f)
{
    char url[1024];
    long status = 0;
    CURLcode rc;

    *f = (fetched){0};
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cli.timeout_ms > 0 ? (long)cli.timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK && strncmp(url, "file:", 5) != 0)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || (status && status != 200)) {
        free(f->data);
        *f = (fetched){0};
        return cli_error(CLI_BUS, "GET %s: %s", url,
                         rc != CURLE_OK ? curl_easy_strerror(rc) : "not 200");
    }
    if (!f->data && !(f->data = calloc(1, 1)))
        return cli_error(CLI_IO, "out of memory");
    return CLI_OK;
}

/* "x001/x234/067" for 1234067 (C2SP tlog-tiles). */
static void tile_index(uint64_t n, char *out, size_t len)
{
    char digits[24], full[32];
    int d = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    int groups = (d + 2) / 3;
    size_t at = 0;

    snprintf(full, sizeof(full), "%.*s%s", groups * 3 - d, "00", digits);
    for (int g = 0; g < groups; g++)
        at += (size_t)snprintf(out + at, len - at, "%s%s%.3s", g ? "/" : "",
                               g < groups - 1 ? "x" : "", full + 3 * g);
}

/* What the monitor knows: the last checkpoint it verified and the tree's right edge. */
typedef struct monitor_state {
    uint64_t size;
    uint8_t root[PK_HASH];
    uint8_t range[64][PK_HASH]; /* perfect subtrees of the tree, largest first */
    size_t n_range;
    char *note; /* that checkpoint, as the log signed it */
} monitor_state;

/* Append a leaf hash to the right edge (a compact range over leaves 0..size). */
static void range_append(monitor_state *s, const uint8_t leaf[PK_HASH])
{
    uint8_t node[PK_HASH];

    memcpy(node, leaf, PK_HASH);
    for (uint64_t i = s->size; i & 1; i >>= 1)
        pk_merkle_node_hash(s->range[--s->n_range], node, node);
    memcpy(s->range[s->n_range++], node, PK_HASH);
    s->size++;
}

static void range_root(const monitor_state *s, uint8_t out[PK_HASH])
{
    if (s->n_range == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return;
    }
    memcpy(out, s->range[s->n_range - 1], PK_HASH);
    for (size_t i = s->n_range - 1; i-- > 0;)
        pk_merkle_node_hash(s->range[i], out, out);
}

static int state_load(const char *path, monitor_state *s)
{
    FILE *f = fopen(path, "r");
    char line[128];
    size_t cap = 4096, n = 0;

    *s = (monitor_state){0};
    if (!f)
        return errno == ENOENT ? CLI_OK : cli_error(CLI_IO, "%s: %s", path, strerror(errno));
    /* "<size>\n<edge hashes, base64, one a line>\n\n<the checkpoint>" */
    if (!fgets(line, sizeof(line), f) || sscanf(line, "%llu", (unsigned long long *)&s->size) != 1)
        goto bad;
    while (fgets(line, sizeof(line), f) && line[0] != '\n') {
        size_t l = 0;
        if (s->n_range == 64 ||
            sodium_base642bin(s->range[s->n_range], PK_HASH, line, strcspn(line, "\n"), NULL, &l,
                              NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            l != PK_HASH)
            goto bad;
        s->n_range++;
    }
    if ((size_t)__builtin_popcountll(s->size) != s->n_range || !(s->note = malloc(cap)))
        goto bad;
    while ((n += fread(s->note + n, 1, cap - 1 - n, f)) == cap - 1 && cap < 65536) {
        char *nb = realloc(s->note, cap * 2);
        if (!nb)
            goto bad;
        s->note = nb;
        cap *= 2;
    }
    s->note[n] = '\0';
    fclose(f);
    range_root(s, s->root);
    return CLI_OK;
bad:
    fclose(f);
    free(s->note);
    s->note = NULL;
    return cli_error(CLI_IO, "%s: not a monitor state file", path);
}

static int state_save(const char *path, const monitor_state *s)
{
    char tmp[4096];
    FILE *f;
    bool ok;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w")))
        return cli_error(CLI_IO, "%s: %s", tmp, strerror(errno));
    ok = fprintf(f, "%llu\n", (unsigned long long)s->size) > 0;
    for (size_t i = 0; i < s->n_range; i++) {
        char b64[sodium_base64_ENCODED_LEN(PK_HASH, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof(b64), s->range[i], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
        ok = ok && fprintf(f, "%s\n", b64) > 0;
    }
    ok = ok && fprintf(f, "\n%s", s->note ? s->note : "") >= 0;
    ok = (fflush(f) == 0) & ok & (fsync(fileno(f)) == 0);
    if ((fclose(f) != 0) | !ok || rename(tmp, path) != 0)
        return cli_error(CLI_IO, "%s: cannot write: %s", path, strerror(errno));
    return CLI_OK;
}

/* The log contradicts itself: say so, with the two checkpoints that show it. */
static int inconsistent(const monitor_state *s, const char *note, const char *why)
{
    printf("INCONSISTENT: %s\n", why);
    printf("--- the earlier checkpoint (verified before) ---\n%s", s->note ? s->note : "(none)\n");
    printf("--- the new checkpoint ---\n%s", note);
    printf("--- both are signed by the log; together with the entries it serves they prove "
           "that it showed two histories\n");
    return CLI_FAIL;
}

/*
 * Read the leaves from s->size up to size from the entries tiles, check each against the
 * log's level-0 hash tile, and add it to the right edge. CLI_OK, CLI_FAIL with the reason in
 * why (the log's own files disagree), or another printed error.
 */
static int read_leaves(CURL *curl, const char *base, monitor_state *s, uint64_t size, char *why,
                       size_t whylen)
{
    while (s->size < size) {
        uint64_t tile = s->size / 256, first = tile * 256;
        unsigned width = (unsigned)(size - first < 256 ? size - first : 256);
        char idx[64], path[160];
        fetched entries, hashes;
        const uint8_t *p, *end;
        int rc;

        tile_index(tile, idx, sizeof(idx));
        snprintf(path, sizeof(path), "/tile/entries/%s", idx);
        if (width < 256)
            snprintf(path, sizeof(path), "/tile/entries/%s.p/%u", idx, width);
        if ((rc = fetch(curl, base, path, &entries)) != CLI_OK)
            return rc;
        snprintf(path, sizeof(path), "/tile/0/%s", idx);
        if (width < 256)
            snprintf(path, sizeof(path), "/tile/0/%s.p/%u", idx, width);
        if ((rc = fetch(curl, base, path, &hashes)) != CLI_OK) {
            free(entries.data);
            return rc;
        }
        p = entries.data;
        end = entries.data + entries.len;
        rc = CLI_OK;
        if (hashes.len != (size_t)width * PK_HASH) {
            snprintf(why, whylen, "tile 0/%s holds %zu bytes, not %u hashes", idx, hashes.len,
                     width);
            rc = CLI_FAIL;
        }
        for (unsigned i = 0; i < width && rc == CLI_OK; i++) {
            size_t l;
            uint8_t h[PK_HASH];
            if (end - p < 2 || (size_t)(end - p - 2) < (l = (size_t)p[0] << 8 | p[1])) {
                snprintf(why, whylen, "the entries tile %s ends before its leaf %u", idx, i);
                rc = CLI_FAIL;
                break;
            }
            pk_merkle_leaf_hash(p + 2, l, h);
            p += 2 + l;
            if (memcmp(h, hashes.data + (size_t)i * PK_HASH, PK_HASH) != 0) {
                snprintf(why, whylen, "leaf %llu: its hash is not the one in tile 0/%s",
                         (unsigned long long)(first + i), idx);
                rc = CLI_FAIL;
            } else if (first + i >= s->size) {
                range_append(s, h);
            }
        }
        if (rc == CLI_OK && p != end) {
            snprintf(why, whylen, "the entries tile %s holds more than %u leaves", idx, width);
            rc = CLI_FAIL;
        }
        free(entries.data);
        free(hashes.data);
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* One look at the log: CLI_OK when what it shows follows from what was verified before. */
static int monitor_round(CURL *curl, const char *base, const uint8_t pk[32], monitor_state *s)
{
    fetched cp;
    size_t text_len, sigs_at;
    uint64_t size, was = s->size;
    uint8_t root[PK_HASH], got[PK_HASH];
    char why[256] = "", *note;
    int rc;

    if ((rc = fetch(curl, base, "/checkpoint", &cp)) != CLI_OK)
        return rc;
    note = (char *)cp.data;
    if (!log_signed(note, cp.len, pk, &text_len, &sigs_at, &size, root)) {
        free(note);
        return cli_error(CLI_FAIL, "the log's checkpoint does not verify");
    }
    /* the signatures are kept, the checkpoint is compared by its text */
    if (size < s->size) {
        snprintf(why, sizeof(why), "the log shrank from %llu to %llu leaves",
                 (unsigned long long)s->size, (unsigned long long)size);
    } else if (size == s->size && memcmp(root, s->root, PK_HASH) != 0 && s->note) {
        snprintf(why, sizeof(why), "two different trees of %llu leaves", (unsigned long long)size);
    } else if (size > s->size) {
        monitor_state next = *s;
        if ((rc = read_leaves(curl, base, &next, size, why, sizeof(why))) == CLI_OK) {
            range_root(&next, got);
            if (memcmp(got, root, PK_HASH) != 0)
                snprintf(why, sizeof(why),
                         "the tree of %llu leaves does not extend the one of %llu: the leaves "
                         "it serves give another root than its checkpoint",
                         (unsigned long long)size, (unsigned long long)s->size);
            else
                *s = next;
        } else if (rc != CLI_FAIL) {
            free(note);
            return rc;
        }
    }
    if (*why) {
        rc = inconsistent(s, note, why);
        free(note);
        return rc;
    }
    if (size > was || !s->note) {
        free(s->note);
        s->note = note;
        memcpy(s->root, root, PK_HASH);
        printf("checkpoint %llu: %llu new lea%s verified, consistent with %llu\n",
               (unsigned long long)size, (unsigned long long)(size - was),
               size - was == 1 ? "f" : "ves", (unsigned long long)was);
    } else {
        free(note);
        printf("checkpoint %llu: unchanged\n", (unsigned long long)size);
    }
    fflush(stdout);
    return CLI_OK;
}

int cmd_log_monitor(const cli_call *c)
{
    const char *url = cli_get(c, "url") ? cli_get(c, "url") : "http://127.0.0.1:7480";
    const char *state = cli_get(c, "state");
    uint64_t rounds = cli_has(c, "once") ? 1 : 0;
    int64_t every_ms = 5000;
    monitor_state s;
    uint8_t pk[32];
    char base[900];
    CURL *curl;
    int rc;

    if (cli_get_u64(c, "rounds", 1, 1000000000, &rounds) != CLI_OK ||
        cli_get_duration(c, "every", 100, 86400000, &every_ms) != CLI_OK)
        return CLI_USAGE;
    if ((rc = cli_log_key_arg(c, pk)) != CLI_OK)
        return rc;
    snprintf(base, sizeof(base), "%s", url);
    while (*base && base[strlen(base) - 1] == '/')
        base[strlen(base) - 1] = '\0';
    if (state) {
        if ((rc = state_load(state, &s)) != CLI_OK)
            return rc;
    } else {
        s = (monitor_state){0};
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(curl = curl_easy_init()))
        return cli_error(CLI_IO, "libcurl could not start");
    for (uint64_t r = 0; rounds == 0 || r < rounds; r++) {
        if (r)
            usleep((useconds_t)every_ms * 1000);
        if ((rc = monitor_round(curl, base, pk, &s)) != CLI_OK)
            break;
        if (state && (rc = state_save(state, &s)) != CLI_OK)
            break;
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    free(s.note);
    return rc;
}
