/*
 * Write seed inputs for the fuzz targets into DIR/<target>/: valid examples
 * of what each decoder reads, so fuzzing starts from inputs that go deep.
 * Pact seeds are the example pacts, copied by scripts/fuzz.sh.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "pk/answer.h"
#include "pk/merkle.h"
#include "pk/note.h"

static void put(const char *dir, const char *target, const char *name, const uint8_t *d, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
    if (!(f = fopen(path, "wb")) || fwrite(d, 1, n, f) != n) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* target oracle: one byte naming the question, then the request */
static void put_query(const char *dir, const char *name, uint8_t which, const ProtobufCMessage *m)
{
    uint8_t *buf = NULL, *seed;
    size_t len = 0;

    if (pk_pack(m, &buf, &len) != PK_OK)
        exit(1);
    seed = malloc(len + 1);
    seed[0] = which;
    memcpy(seed + 1, buf, len);
    put(dir, "oracle", name, seed, len + 1);
    free(seed);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "fuzz-seeds";
    pk_keypair kp;
    uint8_t seed[32];

    if (pk_crypto_init() != PK_OK)
        return 1;
    mkdir(dir, 0755);
    memset(seed, 7, sizeof(seed));
    if (pk_keypair_from_seed(&kp, seed) != PK_OK)
        return 1;

    /* envelope: a signed batch of two events, and a registration */
    {
        h_event e1, e2;
        pk_event_msg *evs[2] = {
            h_event_set(&e1, "bot", 1795000000000, "reply", "latency_ms", 800, "pii", "none"),
            h_event_set(&e2, "bot", 1795000000001, "refund", NULL, 0, NULL, NULL)};
        pk_event_batch_msg b = PACTUM__V1__EVENT_BATCH__INIT;
        uint8_t *buf = NULL, *env = NULL;
        size_t len = 0, elen = 0;
        evs[0]->event_id = "e-1";
        evs[1]->event_id = "e-2";
        evs[1]->action = "refund.issue";
        evs[1]->amount = 20;
        evs[1]->currency = "USD";
        b.events = evs;
        b.n_events = 2;
        if (pk_pack(&b.base, &buf, &len) != PK_OK ||
            pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, buf, len, "bot", &kp,
                             &env, &elen) != PK_OK)
            return 1;
        put(dir, "envelope", "batch", env, elen);
        free(buf);
        free(env);
        if (pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION,
                             (const uint8_t *)"\x0a\x03"
                                              "bot",
                             5, "", &kp, &env, &elen) != PK_OK)
            return 1;
        put(dir, "envelope", "registration", env, elen);
        free(env);
    }

    /* proofs: a signed tree head, a log answer with a real proof, and a raw proof */
    {
        uint8_t leaves[5][PK_HASH], l01[PK_HASH], l23[PK_HASH], l03[PK_HASH], root[PK_HASH];
        Pactum__V1__TreeHead th = PACTUM__V1__TREE_HEAD__INIT;
        Pactum__V1__LogAnswer la = PACTUM__V1__LOG_ANSWER__INIT;
        ProtobufCBinaryData path[3];
        uint8_t *head = NULL, *ans = NULL, raw[24 + 5 * PK_HASH] = {0};
        size_t hl = 0, al = 0;
        char id[PK_LOG_ID_LEN + 1];
        for (int i = 0; i < 5; i++)
            pk_merkle_leaf_hash((const uint8_t *)&i, sizeof(i), leaves[i]);
        pk_merkle_node_hash(leaves[0], leaves[1], l01);
        pk_merkle_node_hash(leaves[2], leaves[3], l23);
        pk_merkle_node_hash(l01, l23, l03);
        pk_merkle_node_hash(l03, leaves[4], root);
        pk_log_id(kp.pk, id);
        th.log_id = id;
        th.size = 5;
        th.root.data = root;
        th.root.len = PK_HASH;
        th.timestamp_ms = 1795000000000;
        if (pk_answer_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD, &th.base, &kp, &head,
                           &hl) != PK_OK)
            return 1;
        put(dir, "proofs", "head", head, hl);
        la.status = PACTUM__V1__QUERY_STATUS__QUERY_OK;
        la.head.data = head;
        la.head.len = hl;
        la.index = 1;
        la.leaf.data = (uint8_t *)"leaf";
        la.leaf.len = 4;
        path[0] = (ProtobufCBinaryData){PK_HASH, leaves[0]};
        path[1] = (ProtobufCBinaryData){PK_HASH, l23};
        path[2] = (ProtobufCBinaryData){PK_HASH, leaves[4]};
        la.path = path;
        la.n_path = 3;
        if (pk_answer_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER, &la.base, &kp, &ans,
                           &al) != PK_OK)
            return 1;
        put(dir, "proofs", "inclusion", ans, al);
        raw[7] = 1;  /* index 1 */
        raw[15] = 5; /* size 5 */
        raw[23] = 4; /* first 4 */
        memcpy(raw + 24, root, PK_HASH);
        memcpy(raw + 24 + PK_HASH, root, PK_HASH);
        memcpy(raw + 24 + 2 * PK_HASH, leaves[0], PK_HASH);
        memcpy(raw + 24 + 3 * PK_HASH, l23, PK_HASH);
        memcpy(raw + 24 + 4 * PK_HASH, leaves[4], PK_HASH);
        put(dir, "proofs", "raw", raw, sizeof(raw));
        free(head);
        free(ans);
    }

    /* oracle: one of each question */
    {
        Pactum__V1__TrustQuery tq = PACTUM__V1__TRUST_QUERY__INIT;
        Pactum__V1__PactQuery pq = PACTUM__V1__PACT_QUERY__INIT;
        Pactum__V1__AuthorizeRequest aq = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
        Pactum__V1__EvidenceQuery eq = PACTUM__V1__EVIDENCE_QUERY__INIT;
        Pactum__V1__AttestQuery atq = PACTUM__V1__ATTEST_QUERY__INIT;
        Pactum__V1__FiguresQuery fq = PACTUM__V1__FIGURES_QUERY__INIT;
        Pactum__V1__LogQuery lq = PACTUM__V1__LOG_QUERY__INIT;
        static const char body[] = "\x07{\"action\":\"refund.issue\",\"amount\":20,"
                                   "\"currency\":\"USD\"}";
        tq.agent_id = "bot";
        tq.history = 5;
        put_query(dir, "trust", 0, &tq.base);
        pq.pact_id = "support-bot";
        put_query(dir, "pact", 1, &pq.base);
        aq.agent_id = "bot";
        aq.action = "refund.issue";
        aq.amount = 20;
        aq.currency = "USD";
        put_query(dir, "authorize", 2, &aq.base);
        eq.agent_id = "bot";
        eq.from = 2;
        eq.limit = 5;
        put_query(dir, "evidence", 3, &eq.base);
        atq.agent_id = "bot";
        put_query(dir, "attest", 4, &atq.base);
        fq.agent_id = "bot";
        put_query(dir, "figures", 5, &fq.base);
        lq.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION;
        lq.index = 4;
        lq.size = 9;
        put_query(dir, "inclusion", 6, &lq.base);
        lq.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY;
        lq.first = 3;
        lq.size = 13;
        put_query(dir, "consistency", 6, &lq.base);
        put(dir, "oracle", "http-body", (const uint8_t *)body, sizeof(body) - 1);
    }
    /* witness: a log's first checkpoint, and a request from size 3 to 5 with its proof */
    {
        char origin[PK_NOTE_NAME_MAX], note[PK_NOTE_MAX], req[2048];
        uint8_t leaves[5][PK_HASH], r3[PK_HASH], r5[PK_HASH], a[PK_HASH], b[PK_HASH];
        int n;
        for (int i = 0; i < 5; i++)
            pk_merkle_leaf_hash((const uint8_t *)&i, sizeof(i), leaves[i]);
        /* MTH of 3: H(H(l0,l1), l2); of 5: H(H(H(l0,l1),H(l2,l3)), l4) */
        pk_merkle_node_hash(leaves[0], leaves[1], a);
        pk_merkle_node_hash(a, leaves[2], r3);
        pk_merkle_node_hash(leaves[2], leaves[3], b);
        pk_merkle_node_hash(a, b, b);
        pk_merkle_node_hash(b, leaves[4], r5);
        pk_note_origin(kp.pk, origin, sizeof(origin));
        if (pk_checkpoint_note(&kp, origin, 3, r3, note, sizeof(note)) != PK_OK)
            return 1;
        n = snprintf(req, sizeof(req), "old 0\n\n%s", note);
        put(dir, "witness", "first", (const uint8_t *)req, (size_t)n);
        if (pk_checkpoint_note(&kp, origin, 5, r5, note, sizeof(note)) != PK_OK)
            return 1;
        {
            char h1[64], h2[64], h3[64], h4[64];
            sodium_bin2base64(h1, sizeof(h1), leaves[2], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
            sodium_bin2base64(h2, sizeof(h2), leaves[3], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
            sodium_bin2base64(h3, sizeof(h3), a, PK_HASH, sodium_base64_VARIANT_ORIGINAL);
            sodium_bin2base64(h4, sizeof(h4), leaves[4], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
            /* RFC 9162 2.1.4.1: SUBPROOF(3, D[0:5]) = l2, l3, MTH(l0, l1), l4 */
            n = snprintf(req, sizeof(req), "old 3\n%s\n%s\n%s\n%s\n\n%s", h1, h2, h3, h4, note);
        }
        put(dir, "witness", "grow", (const uint8_t *)req, (size_t)n);
    }
    pk_keypair_wipe(&kp);
    printf("seeds written to %s\n", dir);
    return 0;
}
