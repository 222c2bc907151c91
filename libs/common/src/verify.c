/*
 * verify - an oracle answer checked offline (pk/verify.h). One function per
 * answer type, chosen from a table.
 */
#include "pk/verify.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/merkle.h"
#include "pk/pbjson.h"

void pk_verify_step(pk_verifier *v, bool ok, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    if (!ok)
        v->failures++;
    if (!v->say)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    v->say(v->say_ctx, ok, text);
}

Pactum__V1__TreeHead *pk_verify_head(pk_verifier *v, const ProtobufCBinaryData *b, const char *what)
{
    Pactum__V1__TreeHead *th = NULL;
    char root[65];

    if (b->len == 0) {
        pk_verify_step(v, false, "%s: missing", what);
        return NULL;
    }
    if (pk_answer_open(b->data, b->len, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                       &pactum__v1__tree_head__descriptor, v->key, NULL,
                       (ProtobufCMessage **)&th) != PK_OK) {
        pk_verify_step(v, false, "%s: %s", what, pk_error_msg());
        return NULL;
    }
    if (th->root.len != PK_HASH) {
        pk_verify_step(v, false, "%s: the root is %zu bytes, not 32", what, th->root.len);
        pactum__v1__tree_head__free_unpacked(th, NULL);
        return NULL;
    }
    pk_hex_encode(th->root.data, PK_HASH, root);
    pk_verify_step(v, true, "%s: signed tree head of log %s, %llu leaves, root %s", what,
                   th->log_id, (unsigned long long)th->size, root);
    return th;
}

/* A proof as an array of hashes; false (and a failed step) if it is not one. */
static bool proof_of(pk_verifier *v, const ProtobufCBinaryData *path, size_t n,
                     uint8_t out[][PK_HASH], const char *what)
{
    if (n > PK_MERKLE_PATH_MAX) {
        pk_verify_step(v, false, "%s: a proof of %zu hashes is too long", what, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (path[i].len != PK_HASH) {
            pk_verify_step(v, false, "%s: proof element %zu is not 32 bytes", what, i);
            return false;
        }
        memcpy(out[i], path[i].data, PK_HASH);
    }
    return true;
}

Pactum__V1__LogLeaf *pk_verify_leaf(pk_verifier *v, const ProtobufCBinaryData *leaf, uint64_t index,
                                    const ProtobufCBinaryData *path, size_t n_path,
                                    const ProtobufCBinaryData *record,
                                    const Pactum__V1__TreeHead *th)
{
    uint8_t h[PK_HASH], p[PK_MERKLE_PATH_MAX][PK_HASH], digest[32];
    Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, leaf->len, leaf->data);
    char what[48];

    snprintf(what, sizeof(what), "leaf %llu", (unsigned long long)index);
    if (!l) {
        pk_verify_step(v, false, "%s does not decode", what);
        return NULL;
    }
    if (!proof_of(v, path, n_path, p, what))
        return l;
    pk_merkle_leaf_hash(leaf->data, leaf->len, h);
    if (!pk_merkle_verify_inclusion(h, index, th->size, (const uint8_t(*)[PK_HASH])p, n_path,
                                    th->root.data)) {
        pk_verify_step(v, false, "%s (%s #%llu) is NOT proven in the tree of %llu leaves", what,
                       l->stream, (unsigned long long)l->stream_seq, (unsigned long long)th->size);
        return l;
    }
    pk_verify_step(v, true,
                   "%s (%s, %s #%llu, agent %s) is in the tree of %llu leaves (%zu hashes)", what,
                   pk_pb_enum_name(&pactum__v1__leaf_kind__descriptor, l->kind), l->stream,
                   (unsigned long long)l->stream_seq, l->agent_id[0] ? l->agent_id : "-",
                   (unsigned long long)th->size, n_path);
    if (record && record->len) {
        crypto_hash_sha256(digest, record->data, record->len);
        if (l->data_sha256.len != 32 || sodium_memcmp(digest, l->data_sha256.data, 32) != 0)
            pk_verify_step(v, false, "the record given for %s is not the one the leaf commits to",
                           what);
        else
            pk_verify_step(v, true, "the record (%zu bytes) is the one %s commits to", record->len,
                           what);
    }
    return l;
}

/* An answer that refuses carries no proof: for a file to verify, that is a failure. */
static bool answered(pk_verifier *v, int status, const char *message)
{
    if (status == PACTUM__V1__QUERY_STATUS__QUERY_OK)
        return true;
    pk_verify_step(v, false, "the answer is a refusal: %s", message);
    return false;
}

/* The signed head an answer that was not refused carries, or NULL (said why). */
static Pactum__V1__TreeHead *answered_head(pk_verifier *v, int status, const char *message,
                                           const ProtobufCBinaryData *head)
{
    return answered(v, status, message) ? pk_verify_head(v, head, "head") : NULL;
}

/* --- by answer type ------------------------------------------------------------------- */

static void check_tree_head(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__TreeHead *th = (const Pactum__V1__TreeHead *)m;
    char root[65] = "";

    if (th->root.len == PK_HASH)
        pk_hex_encode(th->root.data, PK_HASH, root);
    else
        pk_verify_step(v, false, "the root is not 32 bytes");
    pk_verify_step(v, true, "%llu leaves, root %s", (unsigned long long)th->size, root);
}

static void check_consistency(pk_verifier *v, const Pactum__V1__LogAnswer *a,
                              const Pactum__V1__TreeHead *th)
{
    uint8_t p[PK_MERKLE_PATH_MAX][PK_HASH];
    Pactum__V1__TreeHead *first = pk_verify_head(v, &a->first_head, "first head");

    if (!first)
        return;
    if (proof_of(v, a->path, a->n_path, p, "consistency") &&
        pk_merkle_verify_consistency(first->size, th->size, first->root.data, th->root.data,
                                     (const uint8_t(*)[PK_HASH])p, a->n_path))
        pk_verify_step(v, true,
                       "the tree of %llu leaves is a prefix of the tree of %llu (%zu hashes)",
                       (unsigned long long)first->size, (unsigned long long)th->size, a->n_path);
    else
        pk_verify_step(v, false,
                       "the tree of %llu leaves is NOT proven a prefix of the tree of %llu",
                       (unsigned long long)first->size, (unsigned long long)th->size);
    pactum__v1__tree_head__free_unpacked(first, NULL);
}

static void check_log_answer(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__LogAnswer *a = (const Pactum__V1__LogAnswer *)m;
    Pactum__V1__TreeHead *th;

    if (!(th = answered_head(v, a->status, a->message, &a->head)))
        return;
    if (a->leaf.len) {
        Pactum__V1__LogLeaf *l =
            pk_verify_leaf(v, &a->leaf, a->index, a->path, a->n_path, &a->record, th);
        if (l)
            pactum__v1__log_leaf__free_unpacked(l, NULL);
    } else if (a->first_head.len) {
        check_consistency(v, a, th);
    }
    pactum__v1__tree_head__free_unpacked(th, NULL);
}

static void check_evidence(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__EvidencePage *pg = (const Pactum__V1__EvidencePage *)m;
    Pactum__V1__TreeHead *th;

    if (!(th = answered_head(v, pg->status, pg->message, &pg->head)))
        return;
    for (size_t i = 0; i < pg->n_entries; i++) {
        const Pactum__V1__EvidenceEntry *e = pg->entries[i];
        Pactum__V1__LogLeaf *l =
            pk_verify_leaf(v, &e->leaf, e->index, e->path, e->n_path, &e->record, th);
        if (l && strcmp(l->agent_id, pg->agent_id) != 0)
            pk_verify_step(v, false, "leaf %llu is about %s, not %s", (unsigned long long)e->index,
                           l->agent_id, pg->agent_id);
        if (l)
            pactum__v1__log_leaf__free_unpacked(l, NULL);
    }
    pactum__v1__tree_head__free_unpacked(th, NULL);
}

/* What an attestation states equals the trust change it proves. */
static void check_attested_state(pk_verifier *v, const Pactum__V1__Attestation *at)
{
    Pactum__V1__TrustChange *tc =
        pactum__v1__trust_change__unpack(NULL, at->record.len, at->record.data);

    if (!tc || !tc->state)
        pk_verify_step(v, false, "the record is not a trust change");
    else if (strcmp(tc->agent_id, at->agent_id) != 0 || tc->state->score_ppm != at->score_ppm ||
             tc->state->lower_ppm != at->lower_ppm || tc->state->tier != at->tier)
        pk_verify_step(v, false,
                       "the attested score, bound or tier differ from the logged trust change");
    else
        pk_verify_step(v, true,
                       "%s: score %.4f, lower bound %.4f, tier %s (in force: %s), as logged",
                       at->agent_id, at->score_ppm / 1e6, at->lower_ppm / 1e6,
                       pk_tier_name(at->tier), pk_tier_name(at->effective_tier));
    if (tc)
        pactum__v1__trust_change__free_unpacked(tc, NULL);
}

static void check_attestation(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__Attestation *at = (const Pactum__V1__Attestation *)m;
    Pactum__V1__TreeHead *th;
    Pactum__V1__LogLeaf *l;
    char until[40];

    if (!(th = answered_head(v, at->status, at->message, &at->head)))
        return;
    l = pk_verify_leaf(v, &at->leaf, at->log_index, at->path, at->n_path, &at->record, th);
    if (l && (l->kind != PACTUM__V1__LEAF_KIND__LEAF_TRUST_CHANGE ||
              strcmp(l->agent_id, at->agent_id) != 0))
        pk_verify_step(v, false, "leaf %llu is not a trust change of %s",
                       (unsigned long long)at->log_index, at->agent_id);
    check_attested_state(v, at);
    pk_clock_format(at->valid_until_ms, until, sizeof(until));
    if (pk_now_ms() > at->valid_until_ms)
        pk_verify_step(v, false, "the attestation expired at %s", until);
    else
        pk_verify_step(v, true, "valid until %s", until);
    if (l)
        pactum__v1__log_leaf__free_unpacked(l, NULL);
    pactum__v1__tree_head__free_unpacked(th, NULL);
}

/* The tree head an answer carries, if any. */
static void check_carried_head(pk_verifier *v, const ProtobufCBinaryData *head)
{
    Pactum__V1__TreeHead *th;

    if (head->len && (th = pk_verify_head(v, head, "log head")))
        pactum__v1__tree_head__free_unpacked(th, NULL);
}

static void check_trust_report(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__TrustReport *r = (const Pactum__V1__TrustReport *)m;

    check_carried_head(v, &r->log_head);
    if (r->state)
        pk_verify_step(v, true, "%s: tier %s, score %.4f, lower bound %.4f", r->agent_id,
                       pk_tier_name(r->state->tier), r->state->score_ppm / 1e6,
                       r->state->lower_ppm / 1e6);
}

static void check_decision(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__AuthorizeDecision *d = (const Pactum__V1__AuthorizeDecision *)m;

    pk_verify_step(v, true, "decision %s: %s %s for %s", d->decision_id,
                   pk_pb_enum_name(&pactum__v1__permit__descriptor, d->permit),
                   d->request ? d->request->action : "?", d->request ? d->request->agent_id : "?");
}

/* A streamed change: the TrustChange it carries decodes and is about the agent it names. */
static void check_change_notice(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__ChangeNotice *n = (const Pactum__V1__ChangeNotice *)m;
    Pactum__V1__TrustChange *tc =
        pactum__v1__trust_change__unpack(NULL, n->change.len, n->change.data);

    if (!tc || !tc->state || strcmp(tc->agent_id, n->agent_id) != 0)
        pk_verify_step(v, false, "the change it carries is not a trust change of %s", n->agent_id);
    else
        pk_verify_step(v, true, "PACTUM_TRUST #%llu: %s, change %llu, tier %s, score %.4f",
                       (unsigned long long)n->trust_seq, n->agent_id,
                       (unsigned long long)tc->change_seq, pk_tier_name(tc->state->tier),
                       tc->state->score_ppm / 1e6);
    if (tc)
        pactum__v1__trust_change__free_unpacked(tc, NULL);
}

static void check_figures(pk_verifier *v, const ProtobufCMessage *m)
{
    check_carried_head(v, &((const Pactum__V1__GovernanceFigures *)m)->log_head);
}

static const struct {
    Pactum__V1__PayloadType type;
    void (*check)(pk_verifier *v, const ProtobufCMessage *m);
} checks[] = {
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD, check_tree_head},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER, check_log_answer},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, check_evidence},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, check_attestation},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT, check_trust_report},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, check_decision},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES, check_figures},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_CHANGE_NOTICE, check_change_notice},
    {PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT, pk_verify_engagements},
};

int pk_verify_answer(pk_verifier *v, const uint8_t *buf, size_t len)
{
    int before = v->failures;
    pk_signed_msg *env = NULL;
    ProtobufCMessage *m = NULL;
    char id[PK_LOG_ID_LEN + 1];
    const char *name;

    if (pk_answer_open(buf, len, 0, NULL, v->key, &env, NULL) != PK_OK) {
        pk_verify_step(v, false, "%s", pk_error_msg());
        return v->failures - before;
    }
    name = pk_answer_type_name(env->type);
    m = protobuf_c_message_unpack(pk_answer_descriptor(env->type), NULL, env->payload.len,
                                  env->payload.data);
    if (!m) {
        pk_verify_step(v, false, "the signed %s does not decode", name);
    } else {
        pk_log_id(env->signer_key.data, id);
        pk_verify_step(v, true, "%s signed by log %s", name, id);
        for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
            if (checks[i].type == env->type)
                checks[i].check(v, m);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    pactum__v1__signed__free_unpacked(env, NULL);
    return v->failures - before;
}

/*
 * What a JSON answer shows beside "signed" must be what "signed" says: "answer" equal to
 * the signed payload as the oracle renders it, "type" its payload type, "key" its signer.
 * A reader of "answer" could otherwise be shown an edit while the signature still checks.
 */
static pk_status shown_is_signed(json_t *doc, const uint8_t *env_buf, size_t env_len)
{
    json_t *shown = json_object_get(doc, "answer"), *type = json_object_get(doc, "type"),
           *key = json_object_get(doc, "key"), *rendered = NULL;
    pk_signed_msg *env = NULL;
    const ProtobufCMessageDescriptor *d;
    ProtobufCMessage *m = NULL;
    char hex[65] = "";
    pk_status st = PK_OK;

    if (!shown && !type && !key)
        return PK_OK; /* only "signed": nothing else is shown */
    if (pk_envelope_open(env_buf, env_len, &env) != PK_OK)
        return PK_ERR(PK_EDECODE, "\"signed\" is not a signed answer");
    d = pk_answer_descriptor(env->type);
    if (env->signer_key.len == 32)
        sodium_bin2hex(hex, sizeof(hex), env->signer_key.data, 32);
    if (type && (!json_is_string(type) ||
                 strcmp(json_string_value(type), pk_answer_type_name(env->type)) != 0))
        st = PK_ERR(PK_EBADSIG,
                    "\"type\" is not what \"signed\" says (%s); only \"signed\" "
                    "counts",
                    pk_answer_type_name(env->type));
    else if (key && (!json_is_string(key) || strcmp(json_string_value(key), hex) != 0))
        st = PK_ERR(PK_EBADSIG,
                    "\"key\" is not the key that signed \"signed\" (%s); only "
                    "\"signed\" counts",
                    hex);
    else if (shown &&
             (!d ||
              !(m = protobuf_c_message_unpack(d, NULL, env->payload.len, env->payload.data)) ||
              !(rendered = pk_pb_json(m)) || !json_equal(shown, rendered)))
        st = PK_ERR(PK_EBADSIG, "\"answer\" is not what \"signed\" says (edited?); only "
                                "\"signed\" counts");
    json_decref(rendered);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    return st;
}

pk_status pk_verify_unwrap(const uint8_t *buf, size_t len, uint8_t **out, size_t *outlen)
{
    pk_status st;

    json_t *doc;
    const char *b64;
    size_t bl;

    if (!len || buf[0] != '{') {
        if (!(*out = malloc(len ? len : 1)))
            return PK_ERR(PK_ENOMEM, "out of memory");
        memcpy(*out, buf, len);
        *outlen = len;
        return PK_OK;
    }
    doc = json_loadb((const char *)buf, len, 0, NULL);
    b64 = doc ? json_string_value(json_object_get(doc, "signed")) : NULL;
    if (!b64) {
        json_decref(doc);
        return PK_ERR(PK_EDECODE, "JSON without a \"signed\" answer");
    }
    bl = strlen(b64);
    if (!(*out = malloc(bl + 1)) || sodium_base642bin(*out, bl + 1, b64, bl, NULL, outlen, NULL,
                                                      sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(*out);
        *out = NULL;
        json_decref(doc);
        return PK_ERR(PK_EDECODE, "\"signed\" is not base64");
    }
    if ((st = shown_is_signed(doc, *out, *outlen)) != PK_OK) {
        free(*out);
        *out = NULL;
    }
    json_decref(doc);
    return st;
}
