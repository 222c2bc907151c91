/*
 * The oracle's public face against the running suite: the transparency log
 * (heads, inclusion and consistency proofs checked here with the log key),
 * authorize decisions recorded and logged, evidence pages, attestations and
 * answers checked offline by `pactum verify` (and refused once a byte is
 * changed), governance figures, and every HTTP route exercised with curl.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "fixtures.h"
#include "pk/merkle.h"
#include "pk/note.h"

static h_env h;
static pk_keypair agent, owner;
static char out[262144];
static char token[128];   /* the API client @shop's, for authorize */
static char key_pub[600]; /* path of the oracle's public key */

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

static const char *pact =
    "{\"pactum\":1,\"id\":\"shop\",\"agent\":\"shop-bot\",\"clauses\":["
    "{\"id\":\"scope\",\"promise\":\"replies and refunds up to 100 USD\",\"severity\":\"critical\","
    "\"kind\":\"scope\",\"actions\":[\"reply\",\"refund.*\"],"
    "\"spend\":{\"currency\":\"USD\",\"per_action\":100}},"
    "{\"id\":\"no-pii\",\"promise\":\"no "
    "leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\",\"window\":\"1d\","
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}}],"
    "\"governance\":{\"tiers\":{\"standard\":{\"approval\":[\"refund.*\"]}}}}";

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    snprintf(key_pub, sizeof(key_pub), "%s/var/oracle/oracle.key.pub", h.dir);
    cr_assert(h_agent_with_pact(&h, "shop-bot", 41, &agent, &owner, pact), "%s", h.why);
    cr_assert(h_client(&h, "@shop", token, sizeof(token)), "%s", h.why);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(oracle, .init = setup, .fini = teardown, .timeout = 240);

static void good(const char *prefix, int n)
{
    cr_assert(h_publish_events(&h, "shop-bot", &agent, prefix, n, "reply", "latency_ms", 500, "pii",
                               "none"));
}

static Pactum__V1__LogAnswer *log_query(Pactum__V1__LogQueryKind kind, uint64_t index,
                                        const char *stream, uint64_t seq, uint64_t first,
                                        uint64_t size)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;

    q.kind = kind;
    q.index = index;
    q.stream = (char *)stream;
    q.stream_seq = seq;
    q.first = first;
    q.size = size;
    return (Pactum__V1__LogAnswer *)h_ask(&h, PK_SUBJ_ORACLE_LOG, &q.base,
                                          PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER);
}

static Pactum__V1__TreeHead *head_of(const ProtobufCBinaryData *b)
{
    Pactum__V1__TreeHead *th = NULL;

    cr_assert_eq(pk_answer_open(b->data, b->len, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                                &pactum__v1__tree_head__descriptor, NULL, NULL,
                                (ProtobufCMessage **)&th),
                 PK_OK, "%s", pk_error_msg());
    return th;
}

/* The log's size, once it has at least `want` leaves (bounded wait). */
static uint64_t wait_log(uint64_t want)
{
    int64_t deadline = pk_mono_ms() + 20000;
    uint64_t size = 0;

    do {
        Pactum__V1__LogAnswer *a = log_query(PACTUM__V1__LOG_QUERY_KIND__LOG_HEAD, 0, "", 0, 0, 0);
        Pactum__V1__TreeHead *th;
        cr_assert_not_null(a);
        th = head_of(&a->head);
        size = th->size;
        pactum__v1__tree_head__free_unpacked(th, NULL);
        pactum__v1__log_answer__free_unpacked(a, NULL);
        if (size >= want)
            return size;
        pk_sleep_ms(100);
    } while (pk_mono_ms() < deadline);
    return size;
}

static bool four_entries(const ProtobufCMessage *m, void *ctx)
{
    return ((const Pactum__V1__EvidencePage *)m)->n_entries == 4;
}

static bool all_logged(const ProtobufCMessage *m, void *ctx)
{
    const Pactum__V1__GovernanceFigures *f = (const Pactum__V1__GovernanceFigures *)m;

    return f->tier_changes && f->tier_changes_logged == f->tier_changes;
}

static void copy_path(const Pactum__V1__LogAnswer *a, uint8_t p[][PK_HASH])
{
    for (size_t i = 0; i < a->n_path; i++) {
        cr_assert_eq(a->path[i].len, PK_HASH);
        memcpy(p[i], a->path[i].data, PK_HASH);
    }
}

Test(oracle, the_log_proves_what_it_holds_and_only_grows)
{
    Pactum__V1__TrustReport *r;
    Pactum__V1__LogAnswer *a;
    Pactum__V1__TreeHead *th, *first;
    uint8_t p[PK_MERKLE_PATH_MAX][PK_HASH], lh[PK_HASH];
    uint64_t size1, size2, trust_seq;

    good("a", 30);
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_STANDARD, 20000);
    cr_assert_not_null(r);
    trust_seq = r->trust_seq;
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* 2 registry records and 30 events at least */
    size1 = wait_log(32);
    cr_assert_geq(size1, 32);

    /* the trust change the report reflects, proven by stream and sequence */
    for (int i = 0; i < 100; i++) {
        a = log_query(PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION, 0, "PACTUM_TRUST", trust_seq, 0,
                      0);
        cr_assert_not_null(a);
        if (a->status == PACTUM__V1__QUERY_STATUS__QUERY_OK)
            break;
        pactum__v1__log_answer__free_unpacked(a, NULL);
        a = NULL;
        pk_sleep_ms(100);
    }
    cr_assert_not_null(a, "the trust change never reached the log");
    th = head_of(&a->head);
    copy_path(a, p);
    pk_merkle_leaf_hash(a->leaf.data, a->leaf.len, lh);
    cr_assert(pk_merkle_verify_inclusion(lh, a->index, th->size, (const uint8_t(*)[PK_HASH])p,
                                         a->n_path, th->root.data));
    {
        Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, a->leaf.len, a->leaf.data);
        uint8_t d[32];
        cr_assert_not_null(l);
        cr_assert_eq(l->kind, PACTUM__V1__LEAF_KIND__LEAF_TRUST_CHANGE);
        cr_assert_str_eq(l->agent_id, "shop-bot");
        cr_assert_eq(l->stream_seq, trust_seq);
        pk_sha256(a->record.data, a->record.len, d);
        cr_assert(memcmp(d, l->data_sha256.data, 32) == 0,
                  "the record is what the leaf commits to");
        pactum__v1__log_leaf__free_unpacked(l, NULL);
    }
    /* a changed leaf does not verify */
    a->leaf.data[0] ^= 1;
    pk_merkle_leaf_hash(a->leaf.data, a->leaf.len, lh);
    cr_assert_not(pk_merkle_verify_inclusion(lh, a->index, th->size, (const uint8_t(*)[PK_HASH])p,
                                             a->n_path, th->root.data));
    pactum__v1__tree_head__free_unpacked(th, NULL);
    pactum__v1__log_answer__free_unpacked(a, NULL);

    /* the log grows; the old tree is a prefix of the new one */
    good("b", 10);
    size2 = wait_log(size1 + 10);
    cr_assert_gt(size2, size1);
    a = log_query(PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY, 0, "", 0, size1, size2);
    cr_assert_eq(a->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", a->message);
    th = head_of(&a->head);
    first = head_of(&a->first_head);
    cr_assert_eq(first->size, size1);
    cr_assert_eq(th->size, size2);
    copy_path(a, p);
    cr_assert(pk_merkle_verify_consistency(size1, size2, first->root.data, th->root.data,
                                           (const uint8_t(*)[PK_HASH])p, a->n_path));
    pactum__v1__tree_head__free_unpacked(th, NULL);
    pactum__v1__tree_head__free_unpacked(first, NULL);
    pactum__v1__log_answer__free_unpacked(a, NULL);

    /* asking beyond the log is refused with a reason */
    a = log_query(PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION, size2 + 5, "", 0, 0, 0);
    cr_assert_eq(a->status, PACTUM__V1__QUERY_STATUS__QUERY_NOT_FOUND, "%s", a->message);
    pactum__v1__log_answer__free_unpacked(a, NULL);
    a = log_query(PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY, 0, "", 0, 5, size2 + 100);
    cr_assert_eq(a->status, PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST, "%s", a->message);
    pactum__v1__log_answer__free_unpacked(a, NULL);
    cr_assert_geq(h_wait_metric(&h, "oracle", "pactum_oracle_tree_heads_total", 1, 5000), 1,
                  "signed heads are published while the log grows");
}

static Pactum__V1__AuthorizeDecision *authorize_as(const char *client_token, const char *who,
                                                   const char *action, double amount)
{
    Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;

    q.client_token = (char *)client_token;
    q.agent_id = (char *)who;
    q.action = (char *)action;
    q.amount = amount;
    q.currency = amount > 0 ? "USD" : "";
    return (Pactum__V1__AuthorizeDecision *)h_ask(&h, PK_SUBJ_ORACLE_AUTHORIZE, &q.base,
                                                  PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION);
}

static Pactum__V1__AuthorizeDecision *authorize(const char *who, const char *action, double amount)
{
    return authorize_as(token, who, action, amount);
}

/* The decision ids of the records in PACTUM_AUDIT, in order, into ids; how many. */
static size_t audit_ids(char (*ids)[PK_ID_MAX + 1], size_t max)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t first, last;
    size_t n = 0;

    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, PK_STREAM_AUDIT, NULL, &jerr), NATS_OK);
    first = si->State.FirstSeq;
    last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    for (uint64_t seq = first; seq && seq <= last && n < max; seq++) {
        natsMsg *m = NULL;
        Pactum__V1__AuthorizeDecision *d;
        if (js_GetMsg(&m, h.bus->js, PK_STREAM_AUDIT, seq, NULL, &jerr) != NATS_OK)
            continue;
        d = pactum__v1__authorize_decision__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                   (const uint8_t *)natsMsg_GetData(m));
        if (d)
            snprintf(ids[n++], PK_ID_MAX + 1, "%s", d->decision_id);
        if (d)
            pactum__v1__authorize_decision__free_unpacked(d, NULL);
        natsMsg_Destroy(m);
    }
    return n;
}

/* Times the decision id appears among the records of PACTUM_AUDIT. */
static int audit_count(const char *decision_id)
{
    static char ids[512][PK_ID_MAX + 1];
    size_t n = audit_ids(ids, 512);
    int c = 0;

    for (size_t i = 0; i < n; i++)
        c += strcmp(ids[i], decision_id) == 0;
    return c;
}

/* The same, once the stream holds it (records are stored after their answer), within ms. */
static int audit_count_within(const char *decision_id, int ms)
{
    int64_t until = pk_mono_ms() + ms;
    int n;

    while ((n = audit_count(decision_id)) == 0 && pk_mono_ms() < until)
        pk_sleep_ms(20);
    return n;
}

Test(oracle, authorize_decides_by_tier_records_every_decision_and_logs_it)
{
    Pactum__V1__AuthorizeDecision *d;
    Pactum__V1__TrustReport *r;
    Pactum__V1__EvidenceQuery eq = PACTUM__V1__EVIDENCE_QUERY__INIT;
    Pactum__V1__EvidencePage *pg = NULL;
    char audit[3][PK_ID_MAX + 1];

    good("a", 30);
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_STANDARD, 20000);
    pactum__v1__trust_report__free_unpacked(r, NULL);

    d = authorize("shop-bot", "reply", 0);
    cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_ALLOW, "%s", d->reasons[d->n_reasons - 1]);
    cr_assert(strncmp(d->decision_id, "dec-", 4) == 0);
    cr_assert_str_eq(d->requested_by, "@shop", "a decision says which client asked");
    cr_assert_str_eq(d->request->client_token, "", "the token is never echoed");
    cr_assert_eq(d->n_pacts, 1);
    cr_assert_eq(d->pacts[0]->hash.len, 32, "the pact hash in force");
    snprintf(audit[0], sizeof(audit[0]), "%s", d->decision_id);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    d = authorize("shop-bot", "refund.issue", 20);
    cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL,
                 "the pact's standard tier wants approval for refunds");
    snprintf(audit[1], sizeof(audit[1]), "%s", d->decision_id);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    d = authorize("shop-bot", "refund.issue", 500);
    cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_DENY);
    cr_assert(strstr(d->reasons[d->n_reasons - 1],
                     "shop/scope: spends 500 USD in one action; the limit is 100"),
              "%s", d->reasons[d->n_reasons - 1]);
    snprintf(audit[2], sizeof(audit[2]), "%s", d->decision_id);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(audit_count_within(audit[i], 5000), 1,
                     "decision %s is recorded in PACTUM_AUDIT once", audit[i]);

    /* a leak contains: nothing is allowed any more */
    cr_assert(h_publish_events(&h, "shop-bot", &agent, "leak", 1, "reply", "latency_ms", 500, "pii",
                               "leaked"));
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    d = authorize("shop-bot", "reply", 0);
    cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_DENY);
    cr_assert_eq(d->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);

    /* unknown agents and bad requests get a clear answer, and are not recorded */
    d = authorize("nobody", "reply", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT);
    cr_assert(strstr(d->message, "unknown agent") != NULL);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    d = authorize("shop-bot", "", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST);
    cr_assert_str_eq(d->message, "action is required");
    pactum__v1__authorize_decision__free_unpacked(d, NULL);

    /* the four recorded decisions reach the log, with proofs */
    eq.agent_id = "shop-bot";
    eq.kind = PACTUM__V1__LEAF_KIND__LEAF_DECISION;
    pg = (Pactum__V1__EvidencePage *)h_ask_until(&h, PK_SUBJ_ORACLE_EVIDENCE, &eq.base,
                                                 PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE,
                                                 four_entries, NULL, 10000);
    cr_assert_not_null(pg);
    cr_assert_eq(pg->n_entries, 4, "decisions in the log: %zu", pg->n_entries);
    {
        Pactum__V1__TreeHead *th = head_of(&pg->head);
        for (size_t i = 0; i < pg->n_entries; i++) {
            const Pactum__V1__EvidenceEntry *e = pg->entries[i];
            uint8_t lh[PK_HASH], p[PK_MERKLE_PATH_MAX][PK_HASH];
            Pactum__V1__AuthorizeDecision *rec =
                pactum__v1__authorize_decision__unpack(NULL, e->record.len, e->record.data);
            for (size_t k = 0; k < e->n_path; k++)
                memcpy(p[k], e->path[k].data, PK_HASH);
            pk_merkle_leaf_hash(e->leaf.data, e->leaf.len, lh);
            cr_assert(pk_merkle_verify_inclusion(
                lh, e->index, th->size, (const uint8_t(*)[PK_HASH])p, e->n_path, th->root.data));
            cr_assert_not_null(rec, "the record is the decision");
            cr_assert(strncmp(rec->decision_id, "dec-", 4) == 0);
            pactum__v1__authorize_decision__free_unpacked(rec, NULL);
        }
        pactum__v1__tree_head__free_unpacked(th, NULL);
    }
    pactum__v1__evidence_page__free_unpacked(pg, NULL);
    cr_assert_eq(h_metric(&h, "oracle", "pactum_oracle_decisions_total{permit=\"deny\"}"), 2);
}

Test(oracle, answers_check_offline_and_a_changed_byte_fails)
{
    char path[600];
    Pactum__V1__TrustReport *r;

    good("a", 30);
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_STANDARD, 20000);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    wait_log(32);

    cr_assert_eq(cli("--save att.bin attest shop-bot"), 0, "%s", out);
    cr_assert(strstr(out, "proof verified") != NULL, "%s", out);
    cr_assert_eq(cli("--save head.bin log head"), 0, "%s", out);
    cr_assert_eq(cli("--save incl.bin log prove --index 1"), 0, "%s", out);
    cr_assert_eq(cli("--save cons.bin log consistency --from 3"), 0, "%s", out);
    cr_assert_eq(cli("--save ev.bin evidence shop-bot --limit 5"), 0, "%s", out);
    cr_assert_eq(
        cli("--json authorize --agent shop-bot --action reply --token '%s' > dec.json", token), 0,
        "%s", out);
    cr_assert_eq(cli("verify --key %s att.bin head.bin incl.bin cons.bin ev.bin dec.json", key_pub),
                 0, "%s", out);
    cr_assert(strstr(out, "all 6 answers verified") != NULL, "%s", out);
    cr_assert(strstr(out, "is a prefix of the tree") != NULL, "%s", out);
    cr_assert(strstr(out, "as logged") != NULL, "%s", out);

    /* one byte changed anywhere in a saved answer: it fails, saying why */
    for (int at = 0; at < 6; at++) {
        FILE *f;
        long len;
        snprintf(path, sizeof(path), "%s/att.bin", h.dir);
        f = fopen(path, "r+b");
        cr_assert_not_null(f);
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        {
            long pos = len * (at + 1) / 7;
            int c;
            fseek(f, pos, SEEK_SET);
            c = fgetc(f);
            fseek(f, pos, SEEK_SET);
            fputc(c ^ 0x04, f);
            fclose(f);
            cr_assert_eq(cli("verify --key %s att.bin", key_pub), 1, "byte %ld: %s", pos, out);
            cr_assert(strstr(out, "FAIL") != NULL, "%s", out);
            f = fopen(path, "r+b");
            fseek(f, pos, SEEK_SET);
            fputc(c, f);
            fclose(f);
        }
    }
    cr_assert_eq(cli("verify --key %s att.bin", key_pub), 0, "restored: %s", out);
    /* another key: refused */
    cr_assert_eq(cli("verify --key %s att.bin",
                     "0000000000000000000000000000000000000000000000000000000000000000"),
                 1, "%s", out);
    cr_assert(strstr(out, "another key") != NULL, "%s", out);
}

Test(oracle, figures_count_containments_overrides_and_the_audit_trail)
{
    Pactum__V1__FiguresQuery q = PACTUM__V1__FIGURES_QUERY__INIT;
    Pactum__V1__GovernanceFigures *f = NULL;
    Pactum__V1__TrustReport *r;

    good("a", 30);
    cr_assert(h_publish_events(&h, "shop-bot", &agent, "leak", 1, "reply", "latency_ms", 500, "pii",
                               "leaked"));
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_eq(r->n_violations_24h, 1);
    cr_assert_eq(r->violations_24h[0]->severity, PACTUM__V1__SEVERITY__SEVERITY_CRITICAL);
    cr_assert_not_null(r->log_head.data, "a trust report carries the log head");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    f = (Pactum__V1__GovernanceFigures *)h_ask_until(&h, PK_SUBJ_ORACLE_FIGURES, &q.base,
                                                     PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES,
                                                     all_logged, NULL, 10000);
    cr_assert_not_null(f);
    cr_assert_eq(f->agents, 1);
    cr_assert_not_null(f->containment_ms);
    cr_assert_eq(f->containment_ms->count, 1);
    cr_assert_geq(f->containment_ms->max, f->containment_ms->p50);
    cr_assert_geq(f->tier_changes, 2, "watch -> standard -> contained");
    cr_assert_eq(f->tier_changes_with_cause, f->tier_changes, "every tier change has a cause");
    cr_assert_eq(f->tier_changes_logged, f->tier_changes, "and a log entry");
    cr_assert_eq(f->n_violations, 1);
    pactum__v1__governance_figures__free_unpacked(f, NULL);
    cr_assert_eq(cli("figures shop-bot"), 0, "%s", out);
    cr_assert(strstr(out, "containment     1, p50") != NULL, "%s", out);
}

/* curl against the oracle; the body lands in `out`, the status code is returned. */
static int http(const char *method, const char *path, const char *body, const char *save)
{
    char cmd[2048], code[8] = "";
    const char *p;
    FILE *f;
    size_t n;

    snprintf(cmd, sizeof(cmd),
             "curl -s -m 10 -o %s/%s -w '%%{http_code}' -X %s %s%s%s%s%s%s 'http://127.0.0.1:%d%s'",
             h.dir, save ? save : "body.json", method,
             strcmp(method, "POST") == 0 ? "-H 'Authorization: Bearer " : "",
             strcmp(method, "POST") == 0 ? token : "", strcmp(method, "POST") == 0 ? "' " : "",
             body ? "-H 'Content-Type: application/json' -d '" : "", body ? body : "",
             body ? "'" : "", h.http_port, path);
    f = popen(cmd, "r");
    cr_assert_not_null(f);
    n = fread(code, 1, sizeof(code) - 1, f);
    code[n] = '\0';
    pclose(f);
    snprintf(cmd, sizeof(cmd), "%s/%s", h.dir, save ? save : "body.json");
    f = fopen(cmd, "rb");
    out[0] = '\0';
    if (f) {
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    p = code;
    return atoi(p);
}

Test(oracle, every_http_route_answers_signed_json_or_a_clear_refusal)
{
    Pactum__V1__TrustReport *r;
    char saved[65536];

    good("a", 30);
    r = h_wait_tier(&h, "shop-bot", PACTUM__V1__TIER__TIER_STANDARD, 20000);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    wait_log(32);

    cr_assert_eq(http("GET", "/v1/health", NULL, NULL), 200, "%s", out);
    cr_assert(strstr(out, "\"healthy\":true") != NULL, "%s", out);
    cr_assert_eq(http("GET", "/metrics", NULL, NULL), 200, "%s", out);
    cr_assert(strstr(out, "# TYPE pactum_oracle_queries_total counter") &&
                  strstr(out, "pactum_lmdb_map_bytes "),
              "Prometheus text: %.300s", out);
    cr_assert_eq(http("GET", "/v1/agents/shop-bot/trust", NULL, "trust.json"), 200, "%s", out);
    cr_assert(strstr(out, "\"type\":\"trust_report\"") && strstr(out, "\"tier\":\"standard\"") &&
                  strstr(out, "\"signed\":"),
              "%.400s", out);
    cr_assert_eq(http("POST", "/v1/agents/shop-bot/authorize",
                      "{\"action\":\"refund.issue\",\"amount\":20,\"currency\":\"USD\"}",
                      "decision.json"),
                 200, "%s", out);
    cr_assert(strstr(out, "\"permit\":\"needs_approval\"") != NULL, "%.600s", out);
    cr_assert_eq(http("GET", "/v1/agents/shop-bot/evidence?limit=3", NULL, "evidence.json"), 200,
                 "%.300s", out);
    cr_assert_eq(http("GET", "/v1/agents/shop-bot/attestation", NULL, "attestation.json"), 200,
                 "%.300s", out);
    cr_assert_eq(http("GET", "/v1/agents/shop-bot/figures", NULL, "figures.json"), 200, "%.300s",
                 out);
    cr_assert_eq(http("GET", "/v1/figures", NULL, NULL), 200, "%.300s", out);
    cr_assert_eq(http("GET", "/v1/log/head", NULL, "head.json"), 200, "%.300s", out);
    cr_assert_eq(http("GET", "/v1/log/inclusion?index=0", NULL, "inclusion.json"), 200, "%.300s",
                 out);
    cr_assert_eq(http("GET", "/v1/log/consistency?first=2", NULL, "consistency.json"), 200,
                 "%.300s", out);
    cr_assert_eq(http("GET", "/v1/pacts/shop", NULL, NULL), 200, "%.300s", out);
    /* everything saved from HTTP checks offline */
    cr_assert_eq(cli("verify --key %s trust.json decision.json evidence.json attestation.json "
                     "figures.json head.json inclusion.json consistency.json",
                     key_pub),
                 0, "%s", out);
    snprintf(saved, sizeof(saved), "%s", out);
    cr_assert(strstr(saved, "all 8 answers verified") != NULL, "%s", saved);
    /* what is shown is what is signed: an answer edited beside an intact "signed" fails */
    {
        char path[600];
        json_t *doc, *tier;
        snprintf(path, sizeof(path), "%s/trust.json", h.dir);
        doc = json_load_file(path, 0, NULL);
        cr_assert_not_null(doc);
        tier = json_object_get(json_object_get(json_object_get(doc, "answer"), "state"), "tier");
        cr_assert(json_is_string(tier), "no answer.state.tier in %s", path);
        json_string_set(tier, strcmp(json_string_value(tier), "trusted") ? "trusted" : "watch");
        snprintf(path, sizeof(path), "%s/edited.json", h.dir);
        cr_assert_eq(json_dump_file(doc, path, 0), 0);
        json_decref(doc);
        /* the answer back as it was, the type changed instead */
        snprintf(path, sizeof(path), "%s/trust.json", h.dir);
        doc = json_load_file(path, 0, NULL);
        cr_assert_not_null(doc);
        json_object_set_new(doc, "type", json_string("attestation"));
        snprintf(path, sizeof(path), "%s/retyped.json", h.dir);
        cr_assert_eq(json_dump_file(doc, path, 0), 0);
        json_decref(doc);
    }
    cr_assert_neq(cli("verify --key %s edited.json", key_pub), 0, "an edited answer verified: %s",
                  out);
    cr_assert(strstr(out, "\"answer\" is not what \"signed\" says") != NULL, "%s", out);
    cr_assert_neq(cli("verify --key %s retyped.json", key_pub), 0, "a retyped answer verified: %s",
                  out);
    cr_assert(strstr(out, "\"type\" is not what \"signed\" says") != NULL, "%s", out);
    /* the checkpoint, checked by an independent implementation of the C2SP specifications
     * (Python and PyNaCl) against the key and the signed tree head of the same tree */
    cr_assert_eq(http("GET", "/v1/log/key", NULL, "logkey.json"), 200, "%.300s", out);
    {
        bool same = false;
        for (int i = 0; i < 50 && !same; i++) {
            char first[64] = "";
            cr_assert_eq(http("GET", "/v1/log/head", NULL, "cphead.json"), 200, "%.300s", out);
            snprintf(first, sizeof(first), "%.60s",
                     strstr(out, "\"size\"") ? strstr(out, "\"size\"") : "");
            cr_assert_eq(http("GET", "/checkpoint", NULL, "checkpoint.txt"), 200, "%.300s", out);
            cr_assert(strstr(out, "\n\n\xe2\x80\x94 pactum.log/") != NULL, "%s", out);
            cr_assert_eq(http("GET", "/v1/log/head", NULL, NULL), 200, "%.300s", out);
            same = strstr(out, "\"size\"") &&
                   strncmp(first, strstr(out, "\"size\""), strlen(first)) == 0;
        }
        cr_assert(same, "the log kept growing; no quiet moment to compare");
    }
    {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd),
                 "cd %s && /usr/bin/python3 %s/tests/tools/checkpoint_check.py checkpoint.txt "
                 "logkey.json cphead.json --same",
                 h.dir, PK_SOURCE_DIR);
        cr_assert_eq(system(cmd), 0, "the checkpoint did not pass the independent check");
        /* and it can fail: a checkpoint whose size was changed */
        snprintf(cmd, sizeof(cmd),
                 "cd %s && sed '2s/^/1/' checkpoint.txt >forged.txt && /usr/bin/python3 "
                 "%s/tests/tools/checkpoint_check.py forged.txt logkey.json cphead.json >/dev/null",
                 h.dir, PK_SOURCE_DIR);
        cr_assert_neq(system(cmd), 0, "a forged checkpoint passed the independent check");
    }
    /* tiles: the level-0 hashes and the entries of the checkpoint's tree, checked by an
     * independent computation of the leaf hashes and the root */
    {
        char cmd[1200], tile[64], bundle[64];
        long size = 0;
        cr_assert_eq(http("GET", "/checkpoint", NULL, "checkpoint.txt"), 200, "%.300s", out);
        size = strtol(strchr(out, '\n') + 1, NULL, 10);
        cr_assert(size > 0 && size < 256, "a test log of %ld leaves", size);
        snprintf(tile, sizeof(tile), "/tile/0/000.p/%ld", size);
        snprintf(bundle, sizeof(bundle), "/tile/entries/000.p/%ld", size);
        cr_assert_eq(http("GET", tile, NULL, "tile0.bin"), 200, "%.300s", out);
        cr_assert_eq(http("GET", bundle, NULL, "entries0.bin"), 200, "%.300s", out);
        snprintf(cmd, sizeof(cmd),
                 "cd %s && /usr/bin/python3 %s/tests/tools/tiles_check.py checkpoint.txt tile0.bin "
                 "entries0.bin",
                 h.dir, PK_SOURCE_DIR);
        cr_assert_eq(system(cmd), 0, "the tiles did not pass the independent check");
        /* a wider tile than the log holds (by far: it may grow by a leaf meanwhile), the full
         * tile, other names for it: not found */
        cr_assert(size < 200, "a test log of %ld leaves", size);
        snprintf(tile, sizeof(tile), "/tile/0/000.p/%d", 255);
        cr_assert_eq(http("GET", tile, NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/0/000", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/0/x000/000.p/1", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/0/00.p/1", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/1/000.p/1", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/00/000.p/1", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/0/000.p/0", NULL, NULL), 404, "%.300s", out);
        cr_assert_eq(http("GET", "/tile/0/000.p/1", NULL, "one.bin"), 200, "%.300s", out);
    }
    /* pacts that do not exist, or not at that version: not_found, not unknown_agent */
    cr_assert_eq(http("GET", "/v1/pacts/no-such-pact", NULL, NULL), 404, "%.300s", out);
    cr_assert(strstr(out, "\"status\":\"not_found\"") != NULL, "%.300s", out);
    cr_assert_eq(http("GET", "/v1/pacts/shop?version=9", NULL, NULL), 404, "%.300s", out);
    cr_assert(strstr(out, "\"status\":\"not_found\"") != NULL, "%.300s", out);

    /* refusals: 404 for unknown agents and routes, 400 for malformed queries, 405 for methods */
    cr_assert_eq(http("GET", "/v1/agents/nobody/trust", NULL, NULL), 404, "%s", out);
    cr_assert(strstr(out, "\"status\":\"unknown_agent\"") != NULL, "%s", out);
    cr_assert_eq(http("POST", "/v1/agents/nobody/authorize", "{\"action\":\"reply\"}", NULL), 404,
                 "%s", out);
    cr_assert_eq(http("GET", "/v1/agents/bad.id/trust", NULL, NULL), 400, "%s", out);
    cr_assert_eq(http("GET", "/v1/log/inclusion?index=abc", NULL, NULL), 400, "%s", out);
    cr_assert(strstr(out, "index: expected a whole number") != NULL, "%s", out);
    cr_assert_eq(http("GET", "/v1/log/inclusion?index=999999", NULL, NULL), 404, "%s", out);
    cr_assert_eq(http("POST", "/v1/agents/shop-bot/authorize", "not json", NULL), 400, "%s", out);
    cr_assert_eq(
        http("POST", "/v1/agents/shop-bot/authorize", "{\"action\":\"reply\",\"x\":1}", NULL), 400,
        "%s", out);
    cr_assert(strstr(out, "x: unknown field") != NULL, "%s", out);
    cr_assert_eq(http("POST", "/v1/agents/shop-bot/authorize", "{\"amount\":5}", NULL), 400, "%s",
                 out);
    cr_assert_eq(http("GET", "/v1/agents/shop-bot/authorize", NULL, NULL), 405, "%s", out);
    cr_assert_eq(http("GET", "/v1/nothing", NULL, NULL), 404, "%s", out);
    cr_assert_geq(h_metric(&h, "oracle", "pactum_oracle_http_refused_total"), 9);
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

/* Write a file in the test folder (made with its parents). */
static void put_file(const char *name, const void *data, size_t len)
{
    char path[900], cmd[1000];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", h.dir, name);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(system(cmd), 0);
    f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* POST a file of the test folder to the witness; its status, its answer in out. */
static int post_witness(int port, const char *name)
{
    char cmd[1200], code[8] = "";
    FILE *f;
    size_t n;

    snprintf(cmd, sizeof(cmd),
             "curl -s -m 10 -o %s/witness-reply.txt -w '%%{http_code}' --data-binary @%s/%s "
             "http://127.0.0.1:%d/add-checkpoint",
             h.dir, h.dir, name, port);
    f = popen(cmd, "r");
    cr_assert_not_null(f);
    n = fread(code, 1, sizeof(code) - 1, f);
    code[n] = '\0';
    pclose(f);
    snprintf(cmd, sizeof(cmd), "%s/witness-reply.txt", h.dir);
    out[0] = '\0';
    if ((f = fopen(cmd, "rb"))) {
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    return atoi(code);
}

/*
 * Another history of the log: n leaves "forked <i>", its checkpoint signed with the log's own
 * (stolen) key into note, and, when old > 0, an add-checkpoint request from old in request.
 */
static void forked_log(h_tree *t, const pk_keypair *log_kp, uint64_t old, uint64_t n, char *note,
                       char *request, size_t cap)
{
    char origin[PK_NOTE_NAME_MAX];
    uint8_t root[PK_HASH], proof[PK_MERKLE_PATH_MAX][PK_HASH];
    size_t np = 0, at;

    h_tree_reset(t);
    for (uint64_t i = 0; i < n; i++) {
        char leaf[32];
        int len = snprintf(leaf, sizeof(leaf), "forked %llu", (unsigned long long)i);
        h_tree_add(t, leaf, (size_t)len, NULL);
    }
    cr_assert_eq(t->size, n);
    pk_note_origin(log_kp->pk, origin, sizeof(origin));
    cr_assert_eq(pk_merkle_root(&t->io, n, root), PK_OK);
    cr_assert_eq(pk_checkpoint_note(log_kp, origin, n, root, note, PK_NOTE_MAX), PK_OK);
    if (!request)
        return;
    if (old > 0 && old < n)
        cr_assert_eq(pk_merkle_consistency(&t->io, old, n, proof, &np), PK_OK);
    at = (size_t)snprintf(request, cap, "old %llu\n", (unsigned long long)old);
    for (size_t i = 0; i < np; i++) {
        sodium_bin2base64(request + at, cap - at, proof[i], PK_HASH,
                          sodium_base64_VARIANT_ORIGINAL);
        at += strlen(request + at);
        request[at++] = '\n';
    }
    snprintf(request + at, cap - at, "\n%s", note);
}

/* The tree size on the second line of a checkpoint. */
static uint64_t checkpoint_size(const char *note)
{
    const char *nl = strchr(note, '\n');

    cr_assert_not_null(nl, "not a checkpoint: %s", note);
    return strtoull(nl + 1, NULL, 10);
}

Test(oracle, witnesses_cosign_the_log_refuse_a_fork_and_a_monitor_catches_one)
{
    static h_tree fork;
    char wdir[600], listen[64], vkey[256] = "", wvkey[256] = "", stranger[256], env_w[800];
    char note[PK_NOTE_MAX], request[8192], path[900], cmd[1600];
    int wport = h_free_port();
    pid_t wpid;
    pk_keypair log_kp, other;
    uint64_t head_size, cosigned_size = 0, s, m;
    bool cosigned = false;

    good("w", 3);
    head_size = wait_log(4);
    cr_assert_eq(http("GET", "/v1/log/key", NULL, "logkey.json"), 200, "%.300s", out);
    {
        json_t *doc = json_loads(out, 0, NULL);
        cr_assert_not_null(doc, "%s", out);
        snprintf(vkey, sizeof(vkey), "%s",
                 json_string_value(json_object_get(doc, "note_verifier_key")));
        json_decref(doc);
    }
    cr_assert_eq(http("GET", "/.well-known/pactum-log-key", NULL, NULL), 200, "%.300s", out);
    cr_assert(strstr(out, vkey) != NULL, "the well-known path shows another key: %s", out);
    cr_assert_eq(cli("log key --key %s", key_pub), 0, "%s", out);
    cr_assert(strstr(out, vkey) != NULL, "pactum log key computes another key: %s", out);
    /* a witness of its own key, following this log */
    snprintf(wdir, sizeof(wdir), "%s/witness", h.dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", wport);
    snprintf(path, sizeof(path), "%s/witness.log", h.dir);
    {
        char *argv[] = {PK_BUILD_DIR "/services/witness/pactum-witness",
                        "--listen",
                        listen,
                        "--dir",
                        wdir,
                        "--logs",
                        vkey,
                        NULL};
        wpid = h_spawn(argv[0], argv, path, NULL);
        cr_assert_gt(wpid, 0);
    }
    snprintf(path, sizeof(path), "%s/witness.vkey", wdir);
    for (int i = 0; i < 100 && !wvkey[0]; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(wvkey, sizeof(wvkey), f))
                wvkey[0] = '\0';
            fclose(f);
            wvkey[strcspn(wvkey, "\n")] = '\0';
        }
        if (!wvkey[0])
            pk_sleep_ms(100);
    }
    cr_assert(wvkey[0], "the witness wrote no verifier key (see %s/witness.log)", h.dir);
    cr_assert(strncmp(wvkey, "pactum.witness/", 15) == 0, "%s", wvkey);

    /* the oracle asks it to cosign; /checkpoint then carries its cosignature */
    snprintf(env_w, sizeof(env_w), "PACTUM_ORACLE_WITNESSES=http://127.0.0.1:%d %s", wport, wvkey);
    {
        const char *env[] = {env_w, "PACTUM_ORACLE_WITNESS_EVERY=200ms", NULL};
        cr_assert(h_restart_service(&h, 3, SIGTERM, env), "the oracle did not come back");
    }
    cr_assert_eq(http("GET", "/v1/log/head", NULL, "cphead.json"), 200, "%.300s", out);
    {
        /* the log may have grown since (the oracle appends on its start): the checkpoint must
         * cover this head, which the independent check below compares it with */
        json_t *doc = json_loads(out, 0, NULL), *a = json_object_get(doc, "answer");
        json_t *th = json_object_get(json_object_get(a, "head"), "tree_head");
        json_t *size = json_object_get(th ? th : a, "size");
        cr_assert(json_is_integer(size) || json_is_string(size), "%.300s", out);
        head_size = json_is_integer(size) ? (uint64_t)json_integer_value(size)
                                          : strtoull(json_string_value(size), NULL, 10);
        json_decref(doc);
    }
    for (int i = 0; i < 100 && !cosigned; i++) {
        cr_assert_eq(http("GET", "/checkpoint", NULL, "checkpoint.txt"), 200, "%.300s", out);
        cosigned = strstr(out, "\n\xe2\x80\x94 pactum.witness/") != NULL &&
                   checkpoint_size(out) >= head_size;
        if (!cosigned)
            pk_sleep_ms(100);
    }
    cr_assert(cosigned, "no cosigned checkpoint: %s", out);
    cosigned_size = checkpoint_size(out);
    cr_assert_eq(cli("verify --key %s --witness %s checkpoint.txt", key_pub, wvkey), 0, "%s", out);
    cr_assert(strstr(out, "cosigned by witness pactum.witness/") != NULL, "%s", out);
    /* a witness that did not cosign it */
    h_keypair(&other, 0x77);
    cr_assert_eq(pk_note_verifier_key("pactum.witness/other", PK_NOTE_COSIG, other.pk, stranger,
                                      sizeof(stranger)),
                 PK_OK);
    cr_assert_eq(
        cli("verify --key %s --witness %s --witness %s checkpoint.txt", key_pub, wvkey, stranger),
        1, "%s", out);
    cr_assert(strstr(out, "1 of the 2 witnesses cosigned; 2 needed") != NULL, "%s", out);
    cr_assert_eq(cli("verify --key %s --witness %s --witness %s --witnesses 1 checkpoint.txt",
                     key_pub, wvkey, stranger),
                 0, "%s", out);
    /* the cosignature, checked by the independent implementation (Python and PyNaCl) */
    snprintf(cmd, sizeof(cmd),
             "cd %s && /usr/bin/python3 %s/tests/tools/checkpoint_check.py checkpoint.txt "
             "logkey.json cphead.json --witness '%s'",
             h.dir, PK_SOURCE_DIR, wvkey);
    cr_assert_eq(system(cmd), 0, "the cosignature did not pass the independent check");
    snprintf(cmd, sizeof(cmd),
             "cd %s && /usr/bin/python3 %s/tests/tools/checkpoint_check.py checkpoint.txt "
             "logkey.json cphead.json --witness '%s' >/dev/null",
             h.dir, PK_SOURCE_DIR, stranger);
    cr_assert_neq(system(cmd), 0, "a witness that did not cosign passed the independent check");

    /* someone with the log's key shows the witness another history: refused (the oracle goes
     * on without witnesses, so that the witness's record stays where it is) */
    cr_assert_eq(h_stop_pid(h.svc_pid[3], SIGTERM, 15000), 0, "the oracle did not stop cleanly");
    h.svc_pid[3] = 0;
    cr_assert(h_start_service(&h, 3, NULL), "the oracle did not come back");
    snprintf(path, sizeof(path), "%s/var/oracle/oracle.key", h.dir);
    cr_assert_eq(pk_key_load(path, &log_kp), PK_OK, "%s", pk_error_msg());
    forked_log(&fork, &log_kp, 0, 1, note, request, sizeof(request));
    put_file("fork-0.txt", request, strlen(request));
    cr_assert_eq(post_witness(wport, "fork-0.txt"), 409, "%s", out);
    s = strtoull(out, NULL, 10); /* the size it cosigned last */
    cr_assert_geq(s, cosigned_size, "%s", out);
    forked_log(&fork, &log_kp, s, s, note, request, sizeof(request));
    put_file("fork-same.txt", request, strlen(request));
    cr_assert_eq(post_witness(wport, "fork-same.txt"), 409, "another tree of the same size: %s",
                 out);
    forked_log(&fork, &log_kp, s, s + 3, note, request, sizeof(request));
    put_file("fork-longer.txt", request, strlen(request));
    cr_assert_eq(post_witness(wport, "fork-longer.txt"), 422, "a longer tree off the cosigned: %s",
                 out);
    snprintf(cmd, sizeof(cmd), "grep -q 'a split view' %s/witness.log", h.dir);
    cr_assert_eq(system(cmd), 0, "the witness did not log the split view");

    /* a monitor follows the log ... */
    cr_assert_eq(cli("log monitor --url http://127.0.0.1:%d --key %s --state %s/mon.state --once",
                     h.http_port, key_pub, h.dir),
                 0, "%s", out);
    cr_assert(strstr(out, "verified, consistent with 0") != NULL, "%s", out);
    m = strtoull(strstr(out, "checkpoint ") + 11, NULL, 10);
    good("w2", 2);
    wait_log(m + 2);
    cr_assert_eq(cli("log monitor --url http://127.0.0.1:%d --key %s --state %s/mon.state --once",
                     h.http_port, key_pub, h.dir),
                 0, "%s", out);
    snprintf(cmd, sizeof(cmd), "verified, consistent with %llu", (unsigned long long)m);
    cr_assert(strstr(out, cmd) != NULL, "%s", out);
    m = strtoull(strstr(out, "checkpoint ") + 11, NULL, 10);
    cr_assert_lt(m, 250, "a test log of %llu leaves", (unsigned long long)m);
    /* ... and catches one that forked (served from files: its checkpoint and tiles) */
    forked_log(&fork, &log_kp, 0, m + 2, note, NULL, 0);
    put_file("fork/checkpoint", note, strlen(note));
    {
        uint8_t hashes[256 * PK_HASH], entries[256 * 34];
        size_t at = 0;
        char name[64];
        for (uint64_t i = 0; i < m + 2; i++) {
            char leaf[32];
            int len = snprintf(leaf, sizeof(leaf), "forked %llu", (unsigned long long)i);
            pk_merkle_leaf_hash((const uint8_t *)leaf, (size_t)len, hashes + i * PK_HASH);
            entries[at++] = 0;
            entries[at++] = (uint8_t)len;
            memcpy(entries + at, leaf, (size_t)len);
            at += (size_t)len;
        }
        snprintf(name, sizeof(name), "fork/tile/0/000.p/%llu", (unsigned long long)(m + 2));
        put_file(name, hashes, (m + 2) * PK_HASH);
        snprintf(name, sizeof(name), "fork/tile/entries/000.p/%llu", (unsigned long long)(m + 2));
        put_file(name, entries, at);
    }
    cr_assert_eq(cli("log monitor --url file://%s/fork --key %s --state %s/mon.state --once", h.dir,
                     key_pub, h.dir),
                 1, "%s", out);
    cr_assert(strstr(out, "INCONSISTENT: the tree of") != NULL, "%s", out);
    cr_assert(strstr(out, "--- the earlier checkpoint") != NULL, "%s", out);
    cr_assert(strstr(out, note) != NULL, "the forked checkpoint is not shown: %s", out);
    /* what it verified is kept: the honest log still follows from it */
    cr_assert_eq(cli("log monitor --url http://127.0.0.1:%d --key %s --state %s/mon.state --once",
                     h.http_port, key_pub, h.dir),
                 0, "%s", out);
    cr_assert_eq(h_stop_pid(wpid, SIGTERM, 5000), 0, "the witness did not stop cleanly");
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

/* The signed answer to a trust query about shop-bot, as sent (*len bytes; free it). */
static uint8_t *raw_trust(size_t *len)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
    natsMsg *reply = NULL;
    uint8_t *req = NULL, *copy;
    size_t rlen = 0;

    q.agent_id = "shop-bot";
    cr_assert_eq(pk_pack(&q.base, &req, &rlen), PK_OK);
    cr_assert_eq(
        natsConnection_Request(&reply, h.bus->nc, PK_SUBJ_ORACLE_TRUST, req, (int)rlen, 5000),
        NATS_OK);
    free(req);
    *len = (size_t)natsMsg_GetDataLength(reply);
    copy = malloc(*len);
    cr_assert_not_null(copy);
    memcpy(copy, natsMsg_GetData(reply), *len);
    natsMsg_Destroy(reply);
    return copy;
}

static uint64_t trust_seq_of(const uint8_t *buf, size_t len)
{
    Pactum__V1__TrustReport *r = NULL;
    uint64_t seq;

    cr_assert_eq(pk_answer_open(buf, len, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT,
                                &pactum__v1__trust_report__descriptor, NULL, NULL,
                                (ProtobufCMessage **)&r),
                 PK_OK, "%s", pk_error_msg());
    seq = r->trust_seq;
    pactum__v1__trust_report__free_unpacked(r, NULL);
    return seq;
}

/* Trust changes the oracle has applied, once there are more than `than` (bounded wait). */
static long long changes_after(long long than)
{
    return h_wait_metric(&h, "oracle", "pactum_oracle_trust_changes_total", than + 1, 20000);
}

Test(oracle, a_signed_trust_answer_is_sent_again_only_until_the_agent_changes)
{
    const char *long_reuse[] = {"PACTUM_ORACLE_REUSE=10s", NULL};
    const char *no_reuse[] = {"PACTUM_ORACLE_REUSE=0s", NULL};
    uint8_t *a, *b, *c;
    size_t la, lb, lc;
    long long changes;

    /* reuse long enough that only a change can end it */
    cr_assert(h_restart_service(&h, 3, SIGTERM, long_reuse));
    good("reuse-a", 1);
    changes = changes_after(0);
    cr_assert_gt(changes, 0);
    a = raw_trust(&la);
    pk_sleep_ms(20);
    b = raw_trust(&lb);
    cr_assert(la == lb && memcmp(a, b, la) == 0,
              "the same query, nothing changed: the same answer");
    cr_assert_geq(h_metric(&h, "oracle", "pactum_oracle_answers_reused_total"), 1);

    /* a change to the agent (a leak: contained) ends reuse as soon as the oracle applied it */
    cr_assert(h_publish_events(&h, "shop-bot", &agent, "reuse-b", 1, "reply", "latency_ms", 500,
                               "pii", "leaked"));
    cr_assert_gt(changes_after(changes), changes);
    c = raw_trust(&lc);
    cr_assert(lc != la || memcmp(a, c, la) != 0, "an answer from before the change was sent again");
    cr_assert_gt(trust_seq_of(c, lc), trust_seq_of(a, la));
    free(a);
    free(b);
    free(c);

    /* 0s: every answer is made anew (answered_ms moves on) */
    cr_assert(h_restart_service(&h, 3, SIGTERM, no_reuse));
    a = raw_trust(&la);
    pk_sleep_ms(20);
    b = raw_trust(&lb);
    cr_assert(la != lb || memcmp(a, b, la) != 0);
    cr_assert_eq(h_metric(&h, "oracle", "pactum_oracle_answers_reused_total"), 0);
    free(a);
    free(b);
}

/* The number of records PACTUM_AUDIT holds. */
static uint64_t audit_records(void)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t n;

    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, PK_STREAM_AUDIT, NULL, &jerr), NATS_OK);
    n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

Test(oracle, a_decision_is_made_and_recorded_only_for_a_registered_client)
{
    Pactum__V1__AuthorizeDecision *d;
    static const char *const tokens[] = {"", "no-colon", "@shop:wrong-secret", "@nobody:x",
                                         "shop-bot:x"};
    uint64_t before = audit_records();

    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
            d = authorize_as(tokens[i], "shop-bot", "reply", 0);
            cr_assert_not_null(d);
            cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_UNAUTHORIZED, "token '%s': %s",
                         tokens[i], d->message);
            cr_assert_str_empty(d->requested_by, "a signed refusal names '%s' as the client",
                                d->requested_by);
            pactum__v1__authorize_decision__free_unpacked(d, NULL);
        }
    }
    /* over HTTP, without the header */
    {
        char cmd[512], code[8] = "";
        FILE *f;
        snprintf(cmd, sizeof(cmd),
                 "curl -s -m 10 -o /dev/null -w '%%{http_code}' -X POST -H 'Content-Type: "
                 "application/json' -d '{\"action\":\"reply\"}' "
                 "'http://127.0.0.1:%d/v1/agents/shop-bot/authorize'",
                 h.http_port);
        f = popen(cmd, "r");
        cr_assert_not_null(f);
        code[fread(code, 1, sizeof(code) - 1, f)] = '\0';
        pclose(f);
        cr_assert_str_eq(code, "401");
    }
    cr_assert_eq(audit_records(), before, "refused questions recorded nothing");
    cr_assert_geq(h_metric(&h, "oracle", "pactum_oracle_unauthorized_total"), 101);
    d = authorize("shop-bot", "reply", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    cr_assert_eq(audit_count_within(d->decision_id, 5000), 1);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    cr_assert_eq(audit_records(), before + 1, "the client's question is recorded");
}

Test(oracle, a_client_registered_again_gets_a_new_token_and_the_old_one_stops_working)
{
    char old[160], fresh[160];
    Pactum__V1__AuthorizeDecision *d;
    int64_t deadline;

    cr_assert(h_client(&h, "@rotating", old, sizeof(old)), "%s", h.why);
    d = authorize_as(old, "shop-bot", "reply", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    /* the admin registers the client again: a leaked token is cut off */
    cr_assert(h_client(&h, "@rotating", fresh, sizeof(fresh)), "%s", h.why);
    cr_assert_str_neq(old, fresh);
    deadline = pk_mono_ms() + 10000;
    do {
        d = authorize_as(old, "shop-bot", "reply", 0);
        if (d->status == PACTUM__V1__QUERY_STATUS__QUERY_UNAUTHORIZED || pk_mono_ms() > deadline)
            break;
        pactum__v1__authorize_decision__free_unpacked(d, NULL);
        pk_sleep_ms(50);
    } while (1);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_UNAUTHORIZED, "the old token works");
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    d = authorize_as(fresh, "shop-bot", "reply", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    cr_assert_str_eq(d->requested_by, "@rotating");
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    /* an agent's or principal's id is not replaced that way */
    cr_assert_not(h_client(&h, "shop-bot", fresh, sizeof(fresh)), "a client took an agent's id");
}

/* Sets PACTUM_AUDIT to refuse new records (limit: the records it holds) or to take them again. */
static void audit_refuses(bool refuse)
{
    jsStreamInfo *si = NULL, *updated = NULL;
    jsErrCode jerr = 0;

    cr_assert_eq(js_GetStreamInfo(&si, h.bus->js, PK_STREAM_AUDIT, NULL, &jerr), NATS_OK);
    si->Config->MaxMsgs = refuse ? (int64_t)si->State.Msgs : -1;
    si->Config->Discard = refuse ? js_DiscardNew : js_DiscardOld;
    cr_assert_eq(js_UpdateStream(&updated, h.bus->js, si->Config, NULL, &jerr), NATS_OK,
                 "stream update: %d", (int)jerr);
    jsStreamInfo_Destroy(updated);
    jsStreamInfo_Destroy(si);
}

Test(oracle, while_a_decision_record_is_not_stored_no_decision_is_made_and_it_is_sent_again)
{
    Pactum__V1__AuthorizeDecision *d;
    char first[PK_ID_MAX + 1] = "";
    int64_t deadline;
    int refused = 0;

    d = authorize("shop-bot", "reply", 0);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    cr_assert_eq(audit_count_within(d->decision_id, 5000), 1);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);

    /* the stream refuses records: the next decision is answered (its record is sent, not
     * awaited) and the ones after it are refused until that record is stored */
    audit_refuses(true);
    deadline = pk_mono_ms() + 10000;
    while (pk_mono_ms() < deadline && !refused) {
        d = authorize("shop-bot", "reply", 0);
        cr_assert_not_null(d);
        if (d->status == PACTUM__V1__QUERY_STATUS__QUERY_OK && !first[0])
            snprintf(first, sizeof(first), "%s", d->decision_id);
        else if (d->status == PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE) {
            cr_assert(strstr(d->message, "could not be recorded for audit") &&
                          strstr(d->message, "not stored"),
                      "%s", d->message);
            cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_DENY);
            refused++;
        }
        pactum__v1__authorize_decision__free_unpacked(d, NULL);
        pk_sleep_ms(20);
    }
    cr_assert(first[0], "a decision was answered before the refusal came back");
    cr_assert(refused, "decisions go on while a record is not stored");
    cr_assert_eq(audit_count(first), 0, "the stream refused %s", first);

    /* the stream takes records again: the refused one is sent again and stored, then
     * decisions go on */
    audit_refuses(false);
    cr_assert_eq(audit_count_within(first, 10000), 1, "decision %s was never recorded", first);
    deadline = pk_mono_ms() + 10000;
    do {
        d = authorize("shop-bot", "reply", 0);
        if (d->status == PACTUM__V1__QUERY_STATUS__QUERY_OK || pk_mono_ms() > deadline)
            break;
        pactum__v1__authorize_decision__free_unpacked(d, NULL);
        pk_sleep_ms(50);
    } while (1);
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    cr_assert_eq(audit_count_within(d->decision_id, 5000), 1);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    cr_assert_geq(h_metric(&h, "oracle", "pactum_oracle_audit_retries_total"), 1);
    deadline = pk_mono_ms() + 5000;
    while (h_metric(&h, "oracle", "pactum_oracle_audit_pending") != 0 && pk_mono_ms() < deadline)
        pk_sleep_ms(50);
    cr_assert_eq(h_metric(&h, "oracle", "pactum_oracle_audit_pending"), 0);
}

static void *kill_oracle(void *arg)
{
    pk_sleep_ms(*(int *)arg);
    kill(h.svc_pid[3], SIGKILL);
    return NULL;
}

Test(oracle, every_decision_answered_is_recorded_even_when_the_oracle_is_killed_at_once)
{
    enum { MAX = 4000 };
    static char ids[MAX][PK_ID_MAX + 1];
    int n = 0, after_ms = 600;
    pthread_t t;

    /* decisions as fast as one caller asks, and the oracle killed among them */
    pthread_create(&t, NULL, kill_oracle, &after_ms);
    for (int i = 0; i < MAX; i++) {
        Pactum__V1__AuthorizeDecision *d = authorize("shop-bot", "reply", 0);
        if (!d)
            break; /* the oracle is gone */
        if (d->status == PACTUM__V1__QUERY_STATUS__QUERY_RATE_LIMITED) {
            pactum__v1__authorize_decision__free_unpacked(d, NULL);
            pk_sleep_ms(2); /* the client's 100 a second */
            continue;
        }
        cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
        snprintf(ids[n++], sizeof(ids[0]), "%s", d->decision_id);
        pactum__v1__authorize_decision__free_unpacked(d, NULL);
    }
    pthread_join(t, NULL);
    h.svc_pid[3] = 0;
    cr_assert_gt(n, 5, "only %d decisions before the kill", n);
    cr_assert_lt(n, MAX, "the oracle was not killed");
    /* every answer a caller holds has its record: it went to the server ahead of the answer */
    {
        uint64_t records = audit_records();
        int64_t until = pk_mono_ms() + 5000;
        while (records < (uint64_t)n && pk_mono_ms() < until) {
            pk_sleep_ms(50);
            records = audit_records();
        }
        cr_assert_geq(records, (uint64_t)n, "%d decisions answered, %llu records", n,
                      (unsigned long long)records);
    }
    {
        static char stored[MAX + 8][PK_ID_MAX + 1];
        size_t m = audit_ids(stored, MAX + 8);
        for (int i = 0; i < n; i++) {
            size_t k = 0;
            while (k < m && strcmp(stored[k], ids[i]) != 0)
                k++;
            cr_assert_lt(k, m, "decision %s (%d of %d) was answered and has no record", ids[i],
                         i + 1, n);
        }
    }
}

/* A live stream of every change on a socket of its own, once its first line has come; -1 if
 * the oracle closed the connection first (no room for it). */
static int open_change_stream(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h.http_port)};
    struct timeval tv = {.tv_sec = 5};
    const char req[] = "GET /v1/changes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Accept: text/event-stream\r\n\r\n";
    char buf[2048];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        close(fd);
        return -1;
    }
    for (int i = 0; i < 50 && got < sizeof(buf) - 1; i++) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "retry: "))
            return fd;
    }
    close(fd);
    return -1;
}

/*
 * A client that closes a live change stream gives its connection back at once, though the
 * stream was waiting for the next change: with room for 3 connections from one address, 6
 * streams opened and closed one after the other all get in, and a question after them is
 * answered. (A closed stream held its place until the next change or keep-alive, up to 15 s,
 * so a page that followed a few agents in turn ran out of connections.)
 */
Test(oracle, a_closed_change_stream_gives_its_connection_back_at_once)
{
    static const char *const three[] = {"PACTUM_ORACLE_HTTP_PER_CLIENT=3", NULL};

    cr_assert_eq(h_stop_pid(h.svc_pid[3], SIGTERM, 15000), 0, "the oracle did not stop cleanly");
    h.svc_pid[3] = 0;
    cr_assert(h_start_service(&h, 3, three), "the oracle did not come back");
    cr_assert_eq(http("GET", "/v1/health", NULL, NULL), 200, "%s", out);
    for (int i = 0; i < 6; i++) {
        int fd = open_change_stream();
        /* a place given back may take one check of the waiting streams (a fraction of a second)
         * to come free; the keep-alive that freed them before comes every 15 s */
        for (int k = 0; k < 20 && fd < 0; k++) {
            pk_sleep_ms(100);
            fd = open_change_stream();
        }
        cr_assert_geq(fd, 0, "stream %d found no room: the closed ones still hold theirs", i + 1);
        pk_sleep_ms(100); /* it waits for the next change now */
        close(fd);
    }
    pk_sleep_ms(1000);
    cr_assert_eq(http("GET", "/v1/health", NULL, NULL), 200,
                 "the closed streams still hold the address's connections");
}
