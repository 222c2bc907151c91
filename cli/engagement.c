/*
 * Engagements from the command line: a buyer signs a job's terms (open), the
 * agent's owner accepts them (accept: both signatures go in), the agent or
 * its owner declares the job done (complete), and anyone reads the
 * engagements and their settlement statements, checked (show, list).
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/engagement.h"

#define OFFER_MAX (64 * 1024)

/* "1000.00" -> 100000 hundredths; false if it is not a positive amount with at most 2 decimals. */
static bool price_parse(const char *s, int64_t *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    const char *dot = strchr(s, '.');

    if (!*s || *end || !isfinite(v) || v <= 0 || (dot && strlen(dot + 1) > 2) ||
        v * 100 > (double)PK_PRICE_MAX)
        return false;
    *out = (int64_t)llround(v * 100);
    return *out > 0;
}

/* The pact version the terms name, its document checked; prints its consequences. */
static int terms_pact(const char *pact, uint32_t version, Pactum__V1__Engagement *o,
                      uint8_t hash[PK_HASH_BYTES])
{
    Pactum__V1__PactReport *rep = NULL;
    const Pactum__V1__PactVersion *pv;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    const char *why;
    json_t *doc, *cons;
    int code;

    if ((code = cli_pact_query(pact, version, true, &rep, &raw, &raw_len)) != CLI_OK)
        return code;
    free(raw);
    pv = rep->versions[rep->n_versions - 1];
    if ((why = cli_pact_check(pv))) {
        code = cli_error(CLI_FAIL, "pact %s v%u: %s", pact, pv->version, why);
        pactum__v1__pact_report__free_unpacked(rep, NULL);
        return code;
    }
    memcpy(hash, pv->hash.data, PK_HASH_BYTES);
    o->pact_version = pv->version;
    doc = json_loadb((const char *)pv->document.data, pv->document.len, 0, NULL);
    cons = doc ? json_object_get(doc, "consequences") : NULL;
    if (!cons) {
        code = cli_error(CLI_FAIL,
                         "pact %s v%u has no consequences section: nothing says what a job pays",
                         pact, pv->version);
    } else if (!cli.json) {
        char *text = json_dumps(cons, JSON_INDENT(2) | JSON_SORT_KEYS);
        fprintf(stderr, "terms of pact %s v%u (sha256 checked, owner's signature verified):\n%s\n",
                pact, pv->version, text ? text : "");
        free(text);
    }
    json_decref(doc);
    pactum__v1__pact_report__free_unpacked(rep, NULL);
    return code;
}

static int write_new(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    bool ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

    if (fd >= 0 && close(fd) != 0)
        ok = false;
    return ok ? CLI_OK : cli_error(CLI_IO, "cannot write %s (it must not exist yet)", path);
}

int cmd_engagement_open(const cli_call *c)
{
    const char *id = cli_get(c, "id"), *pact = cli_get(c, "pact"), *out = cli_get(c, "out");
    Pactum__V1__Engagement o = PACTUM__V1__ENGAGEMENT__INIT;
    uint8_t hash[PK_HASH_BYTES], *buf = NULL, *env = NULL;
    size_t len = 0, elen = 0;
    uint64_t version = 0;
    int64_t deadline = 0;
    pk_keypair kp;
    int code;

    if (!price_parse(cli_get(c, "price"), &o.price))
        return cli_usage_error("--price: expected a positive amount with at most 2 decimals "
                               "(1000.00), got '%s'",
                               cli_get(c, "price"));
    if ((code = cli_get_duration(c, "deadline", 1000, PK_ENG_DURATION_MAX, &deadline)) != CLI_OK ||
        (code = cli_get_u64(c, "version", 1, UINT32_MAX, &version)) != CLI_OK)
        return code;
    if (pk_id_check("engagement id", id) != PK_OK)
        return cli_usage_error("%s", pk_error_msg());
    o.engagement_id = (char *)id;
    o.buyer_id = (char *)cli_get(c, "buyer");
    o.agent_id = (char *)cli_get(c, "agent");
    o.pact_id = (char *)pact;
    o.currency = (char *)cli_get(c, "currency");
    o.job = (char *)(cli_has(c, "job") ? cli_get(c, "job") : "");
    o.start_ms = pk_now_ms();
    o.deadline_ms = o.start_ms + deadline;
    o.signed_ms = o.start_ms;
    if ((code = terms_pact(pact, (uint32_t)version, &o, hash)) != CLI_OK)
        return code;
    o.pact_hash.data = hash;
    o.pact_hash.len = sizeof(hash);
    if (pk_key_load(cli_get(c, "key"), &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_pack(&o.base, &buf, &len) != PK_OK ||
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT, buf, len, o.buyer_id, &kp,
                         &env, &elen) != PK_OK)
        code = cli_error(CLI_IO, "%s", pk_error_msg());
    pk_keypair_wipe(&kp);
    free(buf);
    if (code == CLI_OK && (code = write_new(out, env, elen)) == CLI_OK) {
        char until[40];
        pk_clock_format(o.deadline_ms, until, sizeof(until));
        if (cli.json)
            cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:I, s:s}", "engagement",
                                     id, "buyer", o.buyer_id, "agent", o.agent_id, "pact", pact,
                                     "pact_version", (int)o.pact_version, "price",
                                     (json_int_t)o.price, "currency", o.currency, "deadline_ms",
                                     (json_int_t)o.deadline_ms, "offer", out));
        else
            printf("engagement %s: %s hires %s under %s v%u for %lld.%02lld %s, deadline %s\n"
                   "terms signed by %s in %s; the owner of %s accepts them with:\n"
                   "  pactum engagement accept %s --key OWNER.key\n",
                   id, o.buyer_id, o.agent_id, pact, o.pact_version, (long long)(o.price / 100),
                   (long long)(o.price % 100), o.currency, until, o.buyer_id, out, o.agent_id, out);
    }
    free(env);
    return code;
}

/* The buyer's signed terms in path, checked; *raw keeps the bytes for the acceptance. */
static int read_offer(const char *path, uint8_t **raw, size_t *len, Pactum__V1__Engagement **o,
                      char signer[PK_ID_MAX + 2])
{
    FILE *f = fopen(path, "rb");
    pk_signed_msg *env = NULL;
    uint8_t *buf = malloc(OFFER_MAX);
    size_t n = 0;

    if (!f || !buf) {
        if (f)
            fclose(f);
        free(buf);
        return cli_error(CLI_IO, "cannot read %s", path);
    }
    n = fread(buf, 1, OFFER_MAX, f);
    fclose(f);
    if (pk_envelope_open(buf, n, &env) != PK_OK ||
        env->type != PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT ||
        pk_envelope_verify(env, env->signer_key.data) != PK_OK ||
        !(*o = pactum__v1__engagement__unpack(NULL, env->payload.len, env->payload.data))) {
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
        free(buf);
        return cli_error(CLI_FAIL, "%s is not an engagement whose signature verifies", path);
    }
    snprintf(signer, PK_ID_MAX + 2, "%s", env->signer_id);
    pactum__v1__signed__free_unpacked(env, NULL);
    *raw = buf;
    *len = n;
    return CLI_OK;
}

int cmd_engagement_accept(const cli_call *c)
{
    Pactum__V1__EngagementAcceptance a = PACTUM__V1__ENGAGEMENT_ACCEPTANCE__INIT;
    Pactum__V1__Engagement *o = NULL;
    char signer[PK_ID_MAX + 2];
    uint8_t *raw = NULL;
    size_t len = 0;
    int code;

    if ((code = read_offer(c->args[0], &raw, &len, &o, signer)) != CLI_OK)
        return code;
    if (!cli.json)
        printf("accepting engagement %s: %s (signature verified) hires %s under %s v%u for "
               "%lld.%02lld %s\n",
               o->engagement_id, signer, o->agent_id, o->pact_id, o->pact_version,
               (long long)(o->price / 100), (long long)(o->price % 100), o->currency);
    a.engagement_id = o->engagement_id;
    a.agent_id = o->agent_id;
    a.offer.data = raw;
    a.offer.len = len;
    a.signed_ms = pk_now_ms();
    /* signed by the owner key, named by no id */
    code =
        cli_submit_with_key(PK_SUBJ_GOV_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_ACCEPT,
                            &a.base, "", cli_get(c, "key"));
    pactum__v1__engagement__free_unpacked(o, NULL);
    free(raw);
    return code;
}

int cmd_engagement_complete(const cli_call *c)
{
    Pactum__V1__EngagementCompletion x = PACTUM__V1__ENGAGEMENT_COMPLETION__INIT;

    x.engagement_id = (char *)cli_get(c, "engagement");
    x.agent_id = (char *)cli_get(c, "agent");
    x.note = (char *)(cli_has(c, "note") ? cli_get(c, "note") : "");
    x.signed_ms = pk_now_ms();
    /* by the agent (--as AGENT with its key) or by the owner key (no --as) */
    return cli_submit_with_key(PK_SUBJ_GOV_SUBMIT,
                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_COMPLETE, &x.base,
                               cli_get(c, "as"), cli_get(c, "key"));
}

static void money(int64_t minor, const char *cur, char *buf, size_t len)
{
    snprintf(buf, len, "%lld.%02lld %s", (long long)(minor / 100), (long long)(minor % 100), cur);
}

static void print_statement(const Pactum__V1__StatementRef *ref)
{
    const Pactum__V1__Settlement *s = ref->settlement;
    char at[40], fin[40], rel[48], ref_[48];

    pk_clock_format(s->at_ms, at, sizeof(at));
    money(s->release, s->currency, rel, sizeof(rel));
    money(s->refund, s->currency, ref_, sizeof(ref_));
    printf("  statement %u%s%.0u  %-8s on %s at %s (PACTUM_TRUST #%llu)\n", s->statement,
           s->supersedes ? ", supersedes " : "", s->supersedes,
           pk_settlement_outcome_name((int)s->outcome), s->trigger, at,
           (unsigned long long)ref->trust_seq);
    if (s->dispute_id[0])
        printf("    dispute %s\n", s->dispute_id);
    if (s->outcome != PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD) {
        pk_clock_format(s->final_after_ms, fin, sizeof(fin));
        printf("    release %s to the owner, refund %s to the buyer; final after %s\n", rel, ref_,
               fin);
    }
    for (size_t i = 0; i < s->n_lines; i++) {
        const Pactum__V1__SettlementLine *l = s->lines[i];
        char amt[48];
        money(l->amount, s->currency, amt, sizeof(amt));
        printf("    %-14s %s: %s", amt, l->to_buyer ? "to the buyer" : "to the owner", l->term);
        if (l->verdict_vseq)
            printf(" (verdict #%llu of %s, PACTUM_VERDICTS #%llu)",
                   (unsigned long long)l->verdict_vseq, l->clause_id,
                   (unsigned long long)l->verdict_seq);
        putchar('\n');
    }
}

static void print_view(const Pactum__V1__EngagementView *v)
{
    const Pactum__V1__EngagementState *s = v->state;
    const Pactum__V1__Engagement *t = s ? s->terms : NULL;
    char price[48], dl[40];

    if (!t)
        return;
    money(t->price, t->currency, price, sizeof(price));
    pk_clock_format(t->deadline_ms, dl, sizeof(dl));
    printf("engagement %s: buyer %s, pact %s v%u, price %s, deadline %s\n", t->engagement_id,
           t->buyer_id, t->pact_id, t->pact_version, price, t->deadline_ms ? dl : "-");
    if (s->ended && s->ended[0])
        printf("  ended by %s\n", s->ended);
    else
        printf("  running (%zu failures so far)\n", s->n_failures);
    if (s->hold && s->hold[0])
        printf("  held by dispute %s\n", s->hold);
    for (size_t i = 0; i < v->n_statements; i++)
        print_statement(v->statements[i]);
}

static int ask(const char *agent, const char *id)
{
    Pactum__V1__EngagementQuery q = PACTUM__V1__ENGAGEMENT_QUERY__INIT;
    Pactum__V1__EngagementReport *r = NULL;
    int code;

    q.agent_id = (char *)agent;
    q.engagement_id = (char *)(id ? id : "");
    code = cli_ask_checked(PK_SUBJ_ORACLE_ENGAGEMENTS, &q.base,
                           PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT,
                           (ProtobufCMessage **)&r);
    if (code != CLI_OK)
        return code;
    if (r->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(r->status, r->message);
    } else if (!cli.json) {
        const Pactum__V1__EngagementTotals *t = r->totals;
        printf("%s: %llu open, %llu completed, %llu disputed, %llu refunded\n", r->agent_id,
               t ? (unsigned long long)t->open : 0, t ? (unsigned long long)t->completed : 0,
               t ? (unsigned long long)t->disputed : 0, t ? (unsigned long long)t->refunded : 0);
        for (size_t i = 0; i < r->n_settled; i++) {
            char rel[48], ref[48];
            money(r->settled[i]->released, r->settled[i]->currency, rel, sizeof(rel));
            money(r->settled[i]->refunded, r->settled[i]->currency, ref, sizeof(ref));
            printf("settled: %s released, %s refunded\n", rel, ref);
        }
        for (size_t i = 0; i < r->n_engagements; i++)
            print_view(r->engagements[i]);
        if (r->message[0])
            printf("note: %s\n", r->message);
        if (id)
            printf("proofs: %zu records proven in one signed tree head, every statement checked "
                   "against its logged trust change\n",
                   r->n_proofs);
        if (cli.save)
            printf("saved %s (check it offline: pactum verify --key LOG.pub %s)\n", cli.save,
                   cli.save);
    }
    pactum__v1__engagement_report__free_unpacked(r, NULL);
    return code;
}

int cmd_engagement_show(const cli_call *c)
{
    return ask(c->args[0], c->args[1]);
}

int cmd_engagement_list(const cli_call *c)
{
    return ask(c->args[0], NULL);
}
