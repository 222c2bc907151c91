/*
 * The oracle's public answers: authorize, evidence, attestations, figures,
 * the transparency log, and `pactum verify`, which checks any saved answer
 * offline with nothing but the log's public key.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/merkle.h"
#include "pk/pbjson.h"

int cli_ask(pk_bus *bus, const char *subject, const ProtobufCMessage *query,
            Pactum__V1__PayloadType type, ProtobufCMessage **out, uint8_t **raw, size_t *raw_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    natsMsg *reply = NULL;
    int code;

    *out = NULL;
    if (pk_pack(query, &buf, &len) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    code = cli_request(bus, subject, buf, len, &reply);
    free(buf);
    if (code != CLI_OK)
        return code;
    if (pk_answer_open((const uint8_t *)natsMsg_GetData(reply),
                       (size_t)natsMsg_GetDataLength(reply), type, pk_answer_descriptor(type),
                       cli.have_oracle_key ? cli.oracle_key : NULL, NULL, out) != PK_OK) {
        natsMsg_Destroy(reply);
        return cli_error(CLI_FAIL, "the oracle's answer does not check: %s", pk_error_msg());
    }
    if (cli.save) {
        FILE *f = fopen(cli.save, "wb");
        if (!f || fwrite(natsMsg_GetData(reply), 1, (size_t)natsMsg_GetDataLength(reply), f) !=
                      (size_t)natsMsg_GetDataLength(reply)) {
            if (f)
                fclose(f);
            natsMsg_Destroy(reply);
            protobuf_c_message_free_unpacked(*out, NULL);
            *out = NULL;
            return cli_error(CLI_IO, "--save %s: %s", cli.save, strerror(errno));
        }
        fclose(f);
    }
    if (raw) {
        *raw_len = (size_t)natsMsg_GetDataLength(reply);
        *raw = malloc(*raw_len ? *raw_len : 1);
        if (*raw)
            memcpy(*raw, natsMsg_GetData(reply), *raw_len);
    }
    natsMsg_Destroy(reply);
    return CLI_OK;
}

json_t *cli_answer_json(const uint8_t *raw, size_t len)
{
    pk_signed_msg *env = NULL;
    ProtobufCMessage *m = NULL;
    size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64len), hex[65];
    json_t *doc = NULL;

    if (b64 && pk_answer_open(raw, len, 0, NULL, NULL, &env, NULL) == PK_OK &&
        (m = protobuf_c_message_unpack(pk_answer_descriptor(env->type), NULL, env->payload.len,
                                       env->payload.data))) {
        sodium_bin2base64(b64, b64len, raw, len, sodium_base64_VARIANT_ORIGINAL);
        pk_hex_encode(env->signer_key.data, 32, hex);
        doc = json_pack("{s:s, s:o, s:s, s:s}", "type", pk_answer_type_name(env->type), "answer",
                        pk_pb_json(m), "signed", b64, "key", hex);
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    free(b64);
    return doc;
}

/* Print the status line of a refused answer; CLI_FAIL. */
static int refused(Pactum__V1__QueryStatus s, const char *message)
{
    return cli_error(CLI_FAIL, "%s: %s", pk_pb_enum_name(&pactum__v1__query_status__descriptor, s),
                     message);
}

static void hex_short(const ProtobufCBinaryData *b, char *out, size_t len)
{
    size_t n = b->len < (len - 1) / 2 ? b->len : (len - 1) / 2;

    pk_hex_encode(b->data, n, out);
}

/* --- checks shared by online answers and `verify` ----------------------------------------- */

typedef struct checker {
    const uint8_t *key; /* the log key; NULL: the answer's own */
    int failures;
    bool quiet;       /* print failures only */
    const char *file; /* for messages */
} checker;

static void ok(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ok(checker *c, const char *fmt, ...)
{
    va_list ap;

    if (c->quiet)
        return;
    printf("ok    ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void fail(checker *c, const char *fmt, ...)
{
    va_list ap;

    c->failures++;
    printf("FAIL  %s%s", c->file ? c->file : "", c->file ? ": " : "");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Open a nested signed tree head; NULL (and a failure) if it does not check. */
static Pactum__V1__TreeHead *check_head(checker *c, const ProtobufCBinaryData *b, const char *what)
{
    Pactum__V1__TreeHead *th = NULL;
    char root[65];

    if (b->len == 0) {
        fail(c, "%s: missing", what);
        return NULL;
    }
    if (pk_answer_open(b->data, b->len, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                       &pactum__v1__tree_head__descriptor, c->key, NULL,
                       (ProtobufCMessage **)&th) != PK_OK) {
        fail(c, "%s: %s", what, pk_error_msg());
        return NULL;
    }
    if (th->root.len != PK_HASH) {
        fail(c, "%s: the root is %zu bytes, not 32", what, th->root.len);
        pactum__v1__tree_head__free_unpacked(th, NULL);
        return NULL;
    }
    pk_hex_encode(th->root.data, PK_HASH, root);
    ok(c, "%s: signed tree head of log %s, %llu leaves, root %s", what, th->log_id,
       (unsigned long long)th->size, root);
    return th;
}

/* Check a leaf's inclusion in head, and the record against the leaf. */
static Pactum__V1__LogLeaf *check_leaf(checker *c, const ProtobufCBinaryData *leaf, uint64_t index,
                                       ProtobufCBinaryData *path, size_t n_path,
                                       const ProtobufCBinaryData *record,
                                       const Pactum__V1__TreeHead *th)
{
    uint8_t h[PK_HASH], p[PK_MERKLE_PATH_MAX][PK_HASH], digest[32];
    Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, leaf->len, leaf->data);

    if (!l) {
        fail(c, "leaf %llu does not decode", (unsigned long long)index);
        return NULL;
    }
    if (n_path > PK_MERKLE_PATH_MAX) {
        fail(c, "leaf %llu: a proof of %zu hashes is too long", (unsigned long long)index, n_path);
        return l;
    }
    for (size_t i = 0; i < n_path; i++) {
        if (path[i].len != PK_HASH) {
            fail(c, "leaf %llu: proof element %zu is not 32 bytes", (unsigned long long)index, i);
            return l;
        }
        memcpy(p[i], path[i].data, PK_HASH);
    }
    pk_merkle_leaf_hash(leaf->data, leaf->len, h);
    if (!pk_merkle_verify_inclusion(h, index, th->size, (const uint8_t(*)[PK_HASH])p, n_path,
                                    th->root.data)) {
        fail(c, "leaf %llu (%s #%llu) is NOT proven in the tree of %llu leaves",
             (unsigned long long)index, l->stream, (unsigned long long)l->stream_seq,
             (unsigned long long)th->size);
        return l;
    }
    ok(c, "leaf %llu (%s, %s #%llu, agent %s) is in the tree of %llu leaves (%zu hashes)",
       (unsigned long long)index, pk_pb_enum_name(&pactum__v1__leaf_kind__descriptor, l->kind),
       l->stream, (unsigned long long)l->stream_seq, l->agent_id[0] ? l->agent_id : "-",
       (unsigned long long)th->size, n_path);
    if (record && record->len) {
        crypto_hash_sha256(digest, record->data, record->len);
        if (l->data_sha256.len != 32 || sodium_memcmp(digest, l->data_sha256.data, 32) != 0)
            fail(c, "the record given for leaf %llu is not the one the leaf commits to",
                 (unsigned long long)index);
        else
            ok(c, "the record (%zu bytes) is the one leaf %llu commits to", record->len,
               (unsigned long long)index);
    }
    return l;
}

/* Every check an answer of its type allows; returns the failures. */
static int check_answer(checker *c, const uint8_t *buf, size_t len)
{
    pk_signed_msg *env = NULL;
    ProtobufCMessage *m = NULL;
    const char *name;

    if (pk_answer_open(buf, len, 0, NULL, c->key, &env, NULL) != PK_OK) {
        fail(c, "%s", pk_error_msg());
        return c->failures;
    }
    name = pk_answer_type_name(env->type);
    m = protobuf_c_message_unpack(pk_answer_descriptor(env->type), NULL, env->payload.len,
                                  env->payload.data);
    if (!m) {
        fail(c, "the signed %s does not decode", name);
        pactum__v1__signed__free_unpacked(env, NULL);
        return c->failures;
    }
    {
        char id[PK_LOG_ID_LEN + 1];
        pk_log_id(env->signer_key.data, id);
        ok(c, "%s signed by log %s", name, id);
    }
    switch (env->type) {
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD: {
        Pactum__V1__TreeHead *th = (Pactum__V1__TreeHead *)m;
        char root[65] = "";
        if (th->root.len == PK_HASH)
            pk_hex_encode(th->root.data, PK_HASH, root);
        else
            fail(c, "the root is not 32 bytes");
        ok(c, "%llu leaves, root %s", (unsigned long long)th->size, root);
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER: {
        Pactum__V1__LogAnswer *a = (Pactum__V1__LogAnswer *)m;
        Pactum__V1__TreeHead *th, *first;
        if (a->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
            fail(c, "the answer is a refusal: %s", a->message);
            break;
        }
        if (!(th = check_head(c, &a->head, "head")))
            break;
        if (a->leaf.len) {
            Pactum__V1__LogLeaf *l =
                check_leaf(c, &a->leaf, a->index, a->path, a->n_path, &a->record, th);
            if (l)
                pactum__v1__log_leaf__free_unpacked(l, NULL);
        } else if (a->first_head.len) {
            uint8_t p[PK_MERKLE_PATH_MAX][PK_HASH];
            bool good = a->n_path <= PK_MERKLE_PATH_MAX;
            if ((first = check_head(c, &a->first_head, "first head"))) {
                for (size_t i = 0; good && i < a->n_path; i++) {
                    good = a->path[i].len == PK_HASH;
                    if (good)
                        memcpy(p[i], a->path[i].data, PK_HASH);
                }
                if (good && pk_merkle_verify_consistency(first->size, th->size, first->root.data,
                                                         th->root.data,
                                                         (const uint8_t(*)[PK_HASH])p, a->n_path))
                    ok(c, "the tree of %llu leaves is a prefix of the tree of %llu (%zu hashes)",
                       (unsigned long long)first->size, (unsigned long long)th->size, a->n_path);
                else
                    fail(c, "the tree of %llu leaves is NOT proven a prefix of the tree of %llu",
                         (unsigned long long)first->size, (unsigned long long)th->size);
                pactum__v1__tree_head__free_unpacked(first, NULL);
            }
        }
        pactum__v1__tree_head__free_unpacked(th, NULL);
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE: {
        Pactum__V1__EvidencePage *pg = (Pactum__V1__EvidencePage *)m;
        Pactum__V1__TreeHead *th;
        if (pg->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
            fail(c, "the answer is a refusal: %s", pg->message);
            break;
        }
        if (!(th = check_head(c, &pg->head, "head")))
            break;
        for (size_t i = 0; i < pg->n_entries; i++) {
            const Pactum__V1__EvidenceEntry *e = pg->entries[i];
            Pactum__V1__LogLeaf *l =
                check_leaf(c, &e->leaf, e->index, e->path, e->n_path, &e->record, th);
            if (l && strcmp(l->agent_id, pg->agent_id) != 0)
                fail(c, "leaf %llu is about %s, not %s", (unsigned long long)e->index, l->agent_id,
                     pg->agent_id);
            if (l)
                pactum__v1__log_leaf__free_unpacked(l, NULL);
        }
        pactum__v1__tree_head__free_unpacked(th, NULL);
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION: {
        Pactum__V1__Attestation *at = (Pactum__V1__Attestation *)m;
        Pactum__V1__TreeHead *th;
        Pactum__V1__LogLeaf *l;
        Pactum__V1__TrustChange *tc;
        int64_t now = pk_now_ms();
        char until[40];
        if (at->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
            fail(c, "the answer is a refusal: %s", at->message);
            break;
        }
        if (!(th = check_head(c, &at->head, "head")))
            break;
        l = check_leaf(c, &at->leaf, at->log_index, at->path, at->n_path, &at->record, th);
        if (l && (l->kind != PACTUM__V1__LEAF_KIND__LEAF_TRUST_CHANGE ||
                  strcmp(l->agent_id, at->agent_id) != 0))
            fail(c, "leaf %llu is not a trust change of %s", (unsigned long long)at->log_index,
                 at->agent_id);
        tc = pactum__v1__trust_change__unpack(NULL, at->record.len, at->record.data);
        if (!tc || !tc->state) {
            fail(c, "the record is not a trust change");
        } else if (strcmp(tc->agent_id, at->agent_id) != 0 ||
                   tc->state->score_ppm != at->score_ppm || tc->state->lower_ppm != at->lower_ppm ||
                   tc->state->tier != at->tier) {
            fail(c, "the attested score, bound or tier differ from the logged trust change");
        } else {
            ok(c, "%s: score %.4f, lower bound %.4f, tier %s (in force: %s), as logged",
               at->agent_id, at->score_ppm / 1e6, at->lower_ppm / 1e6, pk_tier_name(at->tier),
               pk_tier_name(at->effective_tier));
        }
        cli_clock(at->valid_until_ms, until, sizeof(until));
        if (now > at->valid_until_ms)
            fail(c, "the attestation expired at %s", until);
        else
            ok(c, "valid until %s", until);
        if (tc)
            pactum__v1__trust_change__free_unpacked(tc, NULL);
        if (l)
            pactum__v1__log_leaf__free_unpacked(l, NULL);
        pactum__v1__tree_head__free_unpacked(th, NULL);
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT: {
        Pactum__V1__TrustReport *r = (Pactum__V1__TrustReport *)m;
        Pactum__V1__TreeHead *th;
        if (r->log_head.len && (th = check_head(c, &r->log_head, "log head")))
            pactum__v1__tree_head__free_unpacked(th, NULL);
        if (r->state)
            ok(c, "%s: tier %s, score %.4f, lower bound %.4f", r->agent_id,
               pk_tier_name(r->state->tier), r->state->score_ppm / 1e6, r->state->lower_ppm / 1e6);
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION: {
        Pactum__V1__AuthorizeDecision *d = (Pactum__V1__AuthorizeDecision *)m;
        ok(c, "decision %s: %s %s for %s", d->decision_id,
           pk_pb_enum_name(&pactum__v1__permit__descriptor, d->permit),
           d->request ? d->request->action : "?", d->request ? d->request->agent_id : "?");
        break;
    }
    case PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES: {
        Pactum__V1__GovernanceFigures *f = (Pactum__V1__GovernanceFigures *)m;
        Pactum__V1__TreeHead *th;
        if (f->log_head.len && (th = check_head(c, &f->log_head, "log head")))
            pactum__v1__tree_head__free_unpacked(th, NULL);
        break;
    }
    default:
        break;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    return c->failures;
}

/* --- verify ------------------------------------------------------------------------ */

/* A saved answer: the envelope's bytes, or JSON with "signed" (base64). */
static int read_answer(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return cli_error(CLI_IO, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap ? cap * 2 : 65536);
            if (!nb || cap > 64 * 1024 * 1024) {
                free(nb ? nb : buf);
                fclose(f);
                return cli_error(CLI_IO, "%s: too large", path);
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (n && buf[0] == '{') {
        json_t *doc = json_loadb((const char *)buf, n, 0, NULL);
        const char *b64 = doc ? json_string_value(json_object_get(doc, "signed")) : NULL;
        size_t bl;
        free(buf);
        if (!b64) {
            json_decref(doc);
            return cli_error(CLI_FAIL, "%s: JSON without a \"signed\" answer", path);
        }
        bl = strlen(b64);
        buf = malloc(bl + 1);
        if (!buf || sodium_base642bin(buf, bl + 1, b64, bl, NULL, &n, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(buf);
            json_decref(doc);
            return cli_error(CLI_FAIL, "%s: \"signed\" is not base64", path);
        }
        json_decref(doc);
    }
    *out = buf;
    *len = n;
    return CLI_OK;
}

int cmd_verify(cli_args *a)
{
    const char *key = NULL;
    uint8_t pk[32];
    int files = 0, failures = 0, r;

    while (a->i < a->argc && strncmp(a->argv[a->i], "--", 2) == 0) {
        if ((r = cli_opt(a, "key", &key)) != 0) {
            if (r < 0)
                return cli_usage_error("--key needs the log's public key (file or hex)");
        } else {
            return cli_usage_error("verify: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (key) {
        if (pk_pubkey_load(key, pk) != PK_OK)
            return cli_error(CLI_IO, "--key: %s", pk_error_msg());
    } else if (cli.have_oracle_key) {
        memcpy(pk, cli.oracle_key, 32);
    } else {
        return cli_usage_error("verify needs the log's public key: --key FILE.pub or HEX (or "
                               "PACTUM_ORACLE_KEY)");
    }
    if (a->i >= a->argc)
        return cli_usage_error("verify: name one or more saved answers");
    for (; a->i < a->argc; a->i++) {
        checker c = {.key = pk, .file = a->argv[a->i]};
        uint8_t *buf = NULL;
        size_t len = 0;
        int code = read_answer(a->argv[a->i], &buf, &len);
        files++;
        if (code != CLI_OK) {
            failures++;
            continue;
        }
        printf("%s\n", a->argv[a->i]);
        c.file = NULL;
        if (check_answer(&c, buf, len))
            failures++;
        free(buf);
    }
    if (failures)
        return cli_error(CLI_FAIL, "%d of %d answer%s did not verify", failures, files,
                         files == 1 ? "" : "s");
    printf("all %d answer%s verified\n", files, files == 1 ? "" : "s");
    return CLI_OK;
}

/* --- online commands ------------------------------------------------------------------ */

/* Ask, check the proofs in the answer, print JSON if asked; *out for the text printer. */
static int ask_checked(const char *subject, const ProtobufCMessage *q, Pactum__V1__PayloadType t,
                       ProtobufCMessage **out)
{
    pk_bus *bus = cli_connect();
    uint8_t *raw = NULL;
    size_t len = 0;
    int code;

    if (!bus)
        return CLI_BUS;
    code = cli_ask(bus, subject, q, t, out, &raw, &len);
    pk_bus_close(bus);
    if (code != CLI_OK)
        return code;
    {
        checker c = {.key = cli.have_oracle_key ? cli.oracle_key : NULL, .quiet = true};
        int status_field =
            *(const int *)((const uint8_t *)*out + protobuf_c_message_descriptor_get_field_by_name(
                                                       (*out)->descriptor, "status")
                                                       ->offset);
        if (status_field == PACTUM__V1__QUERY_STATUS__QUERY_OK && check_answer(&c, raw, len)) {
            free(raw);
            protobuf_c_message_free_unpacked(*out, NULL);
            *out = NULL;
            return cli_error(CLI_FAIL, "the oracle's proofs do not check (see above)");
        }
    }
    if (cli.json)
        cli_print_json(cli_answer_json(raw, len));
    free(raw);
    return CLI_OK;
}

int cmd_authorize(cli_args *a)
{
    Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    Pactum__V1__AuthorizeDecision *d = NULL;
    const char *agent = NULL, *action = NULL, *resource = NULL, *tool = NULL, *amount = NULL,
               *currency = NULL;
    int r, code;

    while (a->i < a->argc) {
        if ((r = cli_opt(a, "agent", &agent)) || (r = cli_opt(a, "action", &action)) ||
            (r = cli_opt(a, "resource", &resource)) || (r = cli_opt(a, "tool", &tool)) ||
            (r = cli_opt(a, "amount", &amount)) || (r = cli_opt(a, "currency", &currency))) {
            if (r < 0)
                return cli_usage_error("%s needs a value", a->argv[a->i]);
        } else {
            return cli_usage_error("authorize: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (!agent || !action)
        return cli_usage_error("authorize needs --agent and --action");
    q.agent_id = (char *)agent;
    q.action = (char *)action;
    q.resource = (char *)(resource ? resource : "");
    q.tool = (char *)(tool ? tool : "");
    q.currency = (char *)(currency ? currency : "");
    if (amount) {
        char *end = NULL;
        q.amount = strtod(amount, &end);
        if (end == amount || *end)
            return cli_usage_error("--amount: expected a number, got '%s'", amount);
    }
    code = ask_checked(PK_SUBJ_ORACLE_AUTHORIZE, &q.base,
                       PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, (ProtobufCMessage **)&d);
    if (code != CLI_OK)
        return code;
    if (d->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = refused(d->status, d->message);
    } else {
        if (!cli.json) {
            printf("%s  %s for %s (decision %s, recorded at PACTUM_AUDIT #%llu)\n",
                   d->permit == PACTUM__V1__PERMIT__PERMIT_ALLOW  ? "ALLOW"
                   : d->permit == PACTUM__V1__PERMIT__PERMIT_DENY ? "DENY"
                                                                  : "NEEDS APPROVAL",
                   action, agent, d->decision_id, (unsigned long long)d->audit_seq);
            printf("tier            %s%s%s\n", pk_tier_name(d->effective_tier),
                   d->effective_tier != d->tier ? " by override, decided " : "",
                   d->effective_tier != d->tier ? pk_tier_name(d->tier) : "");
            for (size_t i = 0; i < d->n_pacts; i++) {
                char h[17];
                hex_short(&d->pacts[i]->hash, h, sizeof(h));
                printf("pact in force   %s v%u sha256:%s...\n", d->pacts[i]->pact_id,
                       d->pacts[i]->version, h);
            }
            printf("because\n");
            for (size_t i = 0; i < d->n_reasons; i++)
                printf("  - %s\n", d->reasons[i]);
        }
        code = d->permit == PACTUM__V1__PERMIT__PERMIT_ALLOW ? CLI_OK : CLI_FAIL;
    }
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    return code;
}

static Pactum__V1__LeafKind leaf_kind(const char *name)
{
    const ProtobufCEnumDescriptor *d = &pactum__v1__leaf_kind__descriptor;

    for (unsigned i = 1; i < d->n_values; i++) {
        if (strcmp(pk_pb_enum_name(d, d->values[i].value), name) == 0)
            return (Pactum__V1__LeafKind)d->values[i].value;
    }
    return PACTUM__V1__LEAF_KIND__LEAF_UNSPECIFIED;
}

int cmd_evidence(cli_args *a)
{
    Pactum__V1__EvidenceQuery q = PACTUM__V1__EVIDENCE_QUERY__INIT;
    Pactum__V1__EvidencePage *pg = NULL;
    const char *from = NULL, *limit = NULL, *kind = NULL, *agent = NULL;
    int r, code;

    while (a->i < a->argc) {
        if ((r = cli_opt(a, "from", &from)) || (r = cli_opt(a, "limit", &limit)) ||
            (r = cli_opt(a, "kind", &kind))) {
            if (r < 0)
                return cli_usage_error("%s needs a value", a->argv[a->i]);
        } else if (!agent && a->argv[a->i][0] != '-') {
            agent = a->argv[a->i++];
        } else {
            return cli_usage_error("evidence: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (!agent)
        return cli_usage_error("evidence needs an agent id");
    q.agent_id = (char *)agent;
    q.from = from ? strtoull(from, NULL, 10) : 0;
    q.limit = limit ? (uint32_t)strtoul(limit, NULL, 10) : 20;
    if (kind && !(q.kind = leaf_kind(kind)))
        return cli_usage_error("--kind: expected event, verdict, governance, trust_change, "
                               "registry or decision");
    code = ask_checked(PK_SUBJ_ORACLE_EVIDENCE, &q.base,
                       PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, (ProtobufCMessage **)&pg);
    if (code != CLI_OK)
        return code;
    if (pg->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = refused(pg->status, pg->message);
    } else if (!cli.json) {
        for (size_t i = 0; i < pg->n_entries; i++) {
            const Pactum__V1__EvidenceEntry *e = pg->entries[i];
            Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, e->leaf.len, e->leaf.data);
            char when[40];
            if (!l)
                continue;
            cli_clock(l->stored_ms, when, sizeof(when));
            printf("leaf %-8llu %-13s %s #%llu  %s  (%zu-byte record, proof of %zu hashes: "
                   "verified)\n",
                   (unsigned long long)e->index,
                   pk_pb_enum_name(&pactum__v1__leaf_kind__descriptor, l->kind), l->stream,
                   (unsigned long long)l->stream_seq, when, e->record.len, e->n_path);
            pactum__v1__log_leaf__free_unpacked(l, NULL);
        }
        if (pg->n_entries == 0)
            printf("%s\n", pg->message);
        if (pg->next)
            printf("more: pactum evidence %s --from %llu\n", pg->agent_id,
                   (unsigned long long)pg->next);
    }
    pactum__v1__evidence_page__free_unpacked(pg, NULL);
    return code;
}

int cmd_attest(cli_args *a)
{
    Pactum__V1__AttestQuery q = PACTUM__V1__ATTEST_QUERY__INIT;
    Pactum__V1__Attestation *at = NULL;
    int code;

    if (a->i >= a->argc || a->argv[a->i][0] == '-')
        return cli_usage_error("attest needs an agent id");
    q.agent_id = a->argv[a->i++];
    if (a->i < a->argc)
        return cli_usage_error("attest: unexpected '%s'", a->argv[a->i]);
    code = ask_checked(PK_SUBJ_ORACLE_ATTEST, &q.base,
                       PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, (ProtobufCMessage **)&at);
    if (code != CLI_OK)
        return code;
    if (at->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = refused(at->status, at->message);
    } else if (!cli.json) {
        char until[40], issued[40];
        cli_clock(at->issued_ms, issued, sizeof(issued));
        cli_clock(at->valid_until_ms, until, sizeof(until));
        printf("agent           %s\n", at->agent_id);
        printf("tier            %s (in force: %s)\n", pk_tier_name(at->tier),
               pk_tier_name(at->effective_tier));
        printf("score           %.4f (lower bound %.4f; %llu evaluations)\n", at->score_ppm / 1e6,
               at->lower_ppm / 1e6, (unsigned long long)at->evidence);
        for (size_t i = 0; i < at->n_pacts; i++) {
            char h[65];
            hex_short(&at->pacts[i]->hash, h, sizeof(h));
            printf("pact            %s v%u sha256:%s\n", at->pacts[i]->pact_id,
                   at->pacts[i]->version, h);
        }
        printf("logged          leaf %llu, proof verified\n", (unsigned long long)at->log_index);
        printf("issued          %s\nvalid until     %s\n", issued, until);
        if (cli.save)
            printf("saved           %s (check it offline: pactum verify --key LOG.pub %s)\n",
                   cli.save, cli.save);
    }
    pactum__v1__attestation__free_unpacked(at, NULL);
    return code;
}

int cmd_figures(cli_args *a)
{
    Pactum__V1__FiguresQuery q = PACTUM__V1__FIGURES_QUERY__INIT;
    Pactum__V1__GovernanceFigures *f = NULL;
    int code;

    if (a->i < a->argc && a->argv[a->i][0] != '-')
        q.agent_id = a->argv[a->i++];
    if (a->i < a->argc)
        return cli_usage_error("figures: unexpected '%s'", a->argv[a->i]);
    code = ask_checked(PK_SUBJ_ORACLE_FIGURES, &q.base, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES,
                       (ProtobufCMessage **)&f);
    if (code != CLI_OK)
        return code;
    if (f->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = refused(f->status, f->message);
    } else if (!cli.json) {
        Pactum__V1__SeverityCount **w[4] = {f->violations, f->violations_24h, f->violations_7d,
                                            f->violations_30d};
        size_t wn[4] = {f->n_violations, f->n_violations_24h, f->n_violations_7d,
                        f->n_violations_30d};
        static const char *wname[4] = {"all", "24h", "7d", "30d"};
        printf("scope           %s (%llu agent%s with a trust state)\n",
               f->agent_id[0] ? f->agent_id : "the whole system", (unsigned long long)f->agents,
               f->agents == 1 ? "" : "s");
        for (int k = 0; k < 4; k++) {
            printf("violations %-4s ", wname[k]);
            if (!wn[k])
                printf(" none");
            for (size_t i = 0; i < wn[k]; i++)
                printf(" %s %llu", pk_severity_name(w[k][i]->severity),
                       (unsigned long long)w[k][i]->count);
            putchar('\n');
        }
        if (f->containment_ms)
            printf("containment     %llu, p50 %lld ms, p99 %lld ms, max %lld ms\n",
                   (unsigned long long)f->containment_ms->count, (long long)f->containment_ms->p50,
                   (long long)f->containment_ms->p99, (long long)f->containment_ms->max);
        else
            printf("containment     none\n");
        printf("overrides       %llu active, %llu expired, %llu in all\n",
               (unsigned long long)f->overrides_active, (unsigned long long)f->overrides_expired,
               (unsigned long long)f->overrides_total);
        for (size_t i = 0; i < f->n_overrides_recent; i++)
            printf("  %-14s on %-16s by %-10s %s\n", f->overrides_recent[i]->override_id,
                   f->overrides_recent[i]->agent_id, f->overrides_recent[i]->operator_id,
                   f->overrides_recent[i]->reason);
        printf("re-entries      %llu\n", (unsigned long long)f->reentries);
        for (size_t i = 0; i < f->n_reentries_recent; i++)
            printf("  %s\n", f->reentries_recent[i]->cause);
        printf("audit           %llu tier changes: %llu with a recorded cause, %llu in the log\n",
               (unsigned long long)f->tier_changes, (unsigned long long)f->tier_changes_with_cause,
               (unsigned long long)f->tier_changes_logged);
    }
    pactum__v1__governance_figures__free_unpacked(f, NULL);
    return code;
}

int cmd_log(cli_args *a)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
    Pactum__V1__LogAnswer *la = NULL;
    const char *sub, *index = NULL, *size = NULL, *stream = NULL, *seq = NULL, *from = NULL;
    int r, code;

    if (a->i >= a->argc)
        return cli_usage_error("log: expected head, prove or consistency");
    sub = a->argv[a->i++];
    while (a->i < a->argc) {
        if ((r = cli_opt(a, "index", &index)) || (r = cli_opt(a, "size", &size)) ||
            (r = cli_opt(a, "stream", &stream)) || (r = cli_opt(a, "seq", &seq)) ||
            (r = cli_opt(a, "from", &from))) {
            if (r < 0)
                return cli_usage_error("%s needs a value", a->argv[a->i]);
        } else {
            return cli_usage_error("log %s: unexpected '%s'", sub, a->argv[a->i]);
        }
    }
    q.size = size ? strtoull(size, NULL, 10) : 0;
    if (strcmp(sub, "head") == 0) {
        q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_HEAD;
    } else if (strcmp(sub, "prove") == 0) {
        q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION;
        if (!index && !(stream && seq))
            return cli_usage_error("log prove needs --index N, or --stream NAME --seq N");
        q.index = index ? strtoull(index, NULL, 10) : 0;
        q.stream = (char *)(stream ? stream : "");
        q.stream_seq = seq ? strtoull(seq, NULL, 10) : 0;
    } else if (strcmp(sub, "consistency") == 0) {
        q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY;
        if (!from)
            return cli_usage_error("log consistency needs --from SIZE (and --size SIZE)");
        q.first = strtoull(from, NULL, 10);
    } else {
        return cli_usage_error("log: expected head, prove or consistency, got '%s'", sub);
    }
    code = ask_checked(PK_SUBJ_ORACLE_LOG, &q.base, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER,
                       (ProtobufCMessage **)&la);
    if (code != CLI_OK)
        return code;
    if (la->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = refused(la->status, la->message);
    } else if (!cli.json) {
        checker c = {.key = cli.have_oracle_key ? cli.oracle_key : NULL};
        Pactum__V1__TreeHead *th = check_head(&c, &la->head, "head");
        if (th && q.kind == PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION) {
            Pactum__V1__LogLeaf *l =
                check_leaf(&c, &la->leaf, la->index, la->path, la->n_path, &la->record, th);
            if (l)
                pactum__v1__log_leaf__free_unpacked(l, NULL);
        } else if (th && q.kind == PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY) {
            Pactum__V1__TreeHead *first = check_head(&c, &la->first_head, "first head");
            if (first) {
                ok(&c, "consistency proof of %zu hashes from %llu to %llu leaves (verified)",
                   la->n_path, (unsigned long long)first->size, (unsigned long long)th->size);
                pactum__v1__tree_head__free_unpacked(first, NULL);
            }
        }
        if (th)
            pactum__v1__tree_head__free_unpacked(th, NULL);
        if (cli.save)
            printf("saved %s: check it offline with pactum verify --key LOG.pub %s\n", cli.save,
                   cli.save);
    }
    pactum__v1__log_answer__free_unpacked(la, NULL);
    return code;
}
