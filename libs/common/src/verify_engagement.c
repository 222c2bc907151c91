/*
 * verify_engagement - the offline checks of an engagement report
 * (pk_verify_engagements in pk/verify.h): each settlement statement against
 * the trust change the log holds, each verdict it cites, and both parties'
 * signatures on the terms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/bus.h"
#include "pk/codec.h"
#include "pk/engagement.h"
#include "pk/verify.h"

#define PROVEN_MAX 64

typedef struct proven {
    Pactum__V1__LogLeaf *leaf[PROVEN_MAX];
    const ProtobufCBinaryData *record[PROVEN_MAX];
    size_t n;
} proven;

/* The record of a proven leaf of stream at seq, or NULL. */
static const ProtobufCBinaryData *record_at(const proven *p, const char *stream, uint64_t seq)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->leaf[i] && p->leaf[i]->stream_seq == seq &&
            strcmp(p->leaf[i]->stream, stream) == 0 && p->record[i]->len)
            return p->record[i];
    }
    return NULL;
}

static bool same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
    uint8_t *ba, *bb;
    bool same;

    if (la != lb)
        return false;
    ba = malloc(la ? la : 1);
    bb = malloc(lb ? lb : 1);
    same = ba && bb && protobuf_c_message_pack(a, ba) == la &&
           protobuf_c_message_pack(b, bb) == lb && memcmp(ba, bb, la) == 0;
    free(ba);
    free(bb);
    return same;
}

/* minor units as "800.00 USD" (hundredths) */
static const char *money(int64_t minor, const char *cur, char *buf, size_t len)
{
    snprintf(buf, len, "%s%lld.%02lld %s", minor < 0 ? "-" : "", llabs(minor) / 100,
             llabs(minor) % 100, cur);
    return buf;
}

/* The statement is the one the logged trust change issued, byte for byte. */
static void check_logged(pk_verifier *v, const proven *p, const Pactum__V1__StatementRef *ref)
{
    const Pactum__V1__Settlement *s = ref->settlement;
    const ProtobufCBinaryData *rec = record_at(p, PK_STREAM_TRUST, ref->trust_seq);
    Pactum__V1__TrustChange *tc =
        rec ? pactum__v1__trust_change__unpack(NULL, rec->len, rec->data) : NULL;
    char rel[48], ref_[48];
    bool found = false;

    for (size_t i = 0; tc && i < tc->n_settlements && !found; i++) {
        const Pactum__V1__Settlement *x = tc->settlements[i];
        if (strcmp(x->engagement_id, s->engagement_id) == 0 && x->statement == s->statement)
            found = same_message(&x->base, &s->base);
    }
    pk_verify_step(v, found, "statement %u of %s (%s: release %s, refund %s) %s PACTUM_TRUST #%llu",
                   s->statement, s->engagement_id, pk_settlement_outcome_name((int)s->outcome),
                   money(s->release, s->currency, rel, sizeof(rel)),
                   money(s->refund, s->currency, ref_, sizeof(ref_)),
                   found ? "is byte for byte the one logged in" : "is NOT the one logged in",
                   (unsigned long long)ref->trust_seq);
    if (tc)
        pactum__v1__trust_change__free_unpacked(tc, NULL);
}

/* The amounts add up: lines to each side sum to release and refund, and both to the price. */
static void check_amounts(pk_verifier *v, const Pactum__V1__Settlement *s)
{
    int64_t to_owner = 0, to_buyer = 0;
    bool held = s->outcome == PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD;
    char price[48];

    for (size_t i = 0; i < s->n_lines; i++) {
        if (s->lines[i]->to_buyer)
            to_buyer += s->lines[i]->amount;
        else
            to_owner += s->lines[i]->amount;
    }
    if (held
            ? s->release || s->refund || s->n_lines
            : to_owner != s->release || to_buyer != s->refund || s->release + s->refund != s->price)
        pk_verify_step(v, false, "statement %u of %s: its amounts do not add up to the price %s",
                       s->statement, s->engagement_id,
                       money(s->price, s->currency, price, sizeof(price)));
}

/* Each verdict a statement cites is logged, with the clause and sequence it names. */
static void check_cited(pk_verifier *v, const proven *p, const Pactum__V1__Settlement *s)
{
    for (size_t i = 0; i < s->n_lines; i++) {
        const Pactum__V1__SettlementLine *l = s->lines[i];
        const ProtobufCBinaryData *rec;
        Pactum__V1__Verdict *vd;
        char amt[48];
        bool ok;
        if (!l->verdict_seq)
            continue;
        rec = record_at(p, PK_STREAM_VERDICTS, l->verdict_seq);
        vd = rec ? pactum__v1__verdict__unpack(NULL, rec->len, rec->data) : NULL;
        ok = vd && vd->vseq == l->verdict_vseq && vd->violation &&
             strcmp(vd->clause_id, l->clause_id) == 0 &&
             strcmp(vd->engagement_id, s->engagement_id) == 0;
        pk_verify_step(v, ok, "\"%s\" (%s): verdict #%llu of clause %s %s PACTUM_VERDICTS #%llu",
                       l->term, money(l->amount, s->currency, amt, sizeof(amt)),
                       (unsigned long long)l->verdict_vseq, l->clause_id,
                       ok ? "is a violation logged in" : "is NOT as logged in",
                       (unsigned long long)l->verdict_seq);
        if (vd)
            pactum__v1__verdict__free_unpacked(vd, NULL);
    }
}

/* The acceptance in the log: the buyer signed the terms, the owner signed the acceptance. */
static void check_acceptance(pk_verifier *v, const proven *p, uint64_t seq,
                             const Pactum__V1__Settlement *s)
{
    const ProtobufCBinaryData *rec = record_at(p, PK_STREAM_VERDICTS, seq);
    Pactum__V1__GovernanceRecord *g =
        rec ? pactum__v1__governance_record__unpack(NULL, rec->len, rec->data) : NULL;
    pk_signed_msg *offer = NULL, *sub = NULL;
    Pactum__V1__Engagement *o = NULL;
    char buyer[17] = "", owner[17] = "";
    bool ok = false;

    if (g && g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT &&
        pk_envelope_open(g->engagement->offer.data, g->engagement->offer.len, &offer) == PK_OK &&
        pk_envelope_open(g->submission.data, g->submission.len, &sub) == PK_OK &&
        offer->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT &&
        sub->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_ACCEPT &&
        (o = pactum__v1__engagement__unpack(NULL, offer->payload.len, offer->payload.data))) {
        pk_hex_encode(offer->signer_key.data, 8, buyer);
        pk_hex_encode(sub->signer_key.data, 8, owner);
        ok = pk_envelope_verify(offer, offer->signer_key.data) == PK_OK &&
             pk_envelope_verify(sub, sub->signer_key.data) == PK_OK &&
             strcmp(offer->signer_id, s->buyer_id) == 0 &&
             strcmp(o->engagement_id, s->engagement_id) == 0 &&
             strcmp(o->agent_id, s->agent_id) == 0 && o->price == s->price &&
             strcmp(o->currency, s->currency) == 0 && o->pact_version == s->pact_version &&
             strcmp(o->pact_id, s->pact_id) == 0 && o->pact_hash.len == s->pact_hash.len &&
             memcmp(o->pact_hash.data, s->pact_hash.data, o->pact_hash.len) == 0;
    }
    pk_verify_step(v, ok,
                   "engagement %s %s: terms signed by buyer %s (key %s...), accepted with owner "
                   "key %s... (PACTUM_VERDICTS #%llu)",
                   s->engagement_id, ok ? "was signed by both" : "is NOT proven signed by both",
                   s->buyer_id, buyer, owner, (unsigned long long)seq);
    if (o)
        pactum__v1__engagement__free_unpacked(o, NULL);
    if (offer)
        pactum__v1__signed__free_unpacked(offer, NULL);
    if (sub)
        pactum__v1__signed__free_unpacked(sub, NULL);
    if (g)
        pactum__v1__governance_record__free_unpacked(g, NULL);
}

void pk_verify_engagements(pk_verifier *v, const ProtobufCMessage *m)
{
    const Pactum__V1__EngagementReport *r = (const Pactum__V1__EngagementReport *)m;
    Pactum__V1__TreeHead *th;
    proven p = {0};

    if (r->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        pk_verify_step(v, false, "the answer is a refusal: %s", r->message);
        return;
    }
    if (!r->head.len) {
        pk_verify_step(v, true, "%s: %zu engagements (ask about one for its proofs)", r->agent_id,
                       r->n_engagements);
        return;
    }
    if (!(th = pk_verify_head(v, &r->head, "head")))
        return;
    for (size_t i = 0; i < r->n_proofs && p.n < PROVEN_MAX; i++) {
        const Pactum__V1__EvidenceEntry *e = r->proofs[i];
        p.leaf[p.n] = pk_verify_leaf(v, &e->leaf, e->index, e->path, e->n_path, &e->record, th);
        p.record[p.n++] = &e->record;
    }
    for (size_t i = 0; i < r->n_engagements; i++) {
        const Pactum__V1__EngagementView *ev = r->engagements[i];
        for (size_t k = 0; k < ev->n_statements; k++) {
            const Pactum__V1__StatementRef *ref = ev->statements[k];
            if (!ref->settlement)
                continue;
            check_logged(v, &p, ref);
            check_amounts(v, ref->settlement);
            check_cited(v, &p, ref->settlement);
            if (k == 0)
                check_acceptance(v, &p, ref->settlement->accepted_seq, ref->settlement);
        }
    }
    for (size_t i = 0; i < p.n; i++) {
        if (p.leaf[i])
            pactum__v1__log_leaf__free_unpacked(p.leaf[i], NULL);
    }
    pactum__v1__tree_head__free_unpacked(th, NULL);
}
