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
#include "pk/verify.h"

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

int cli_refused(Pactum__V1__QueryStatus s, const char *message)
{
    return cli_error(CLI_FAIL, "%s: %s", pk_pb_enum_name(&pactum__v1__query_status__descriptor, s),
                     message);
}

static void hex_short(const ProtobufCBinaryData *b, char *out, size_t len)
{
    size_t n = b->len < (len - 1) / 2 ? b->len : (len - 1) / 2;

    pk_hex_encode(b->data, n, out);
}

/* Print each step of a check: "ok    ..." or "FAIL  <file>: ..." (failures only if quiet). */
typedef struct say_ctx {
    const char *file; /* named in failures, or NULL */
    bool quiet;       /* print failures only */
} say_ctx;

static void say(void *ctx, bool ok, const char *text)
{
    const say_ctx *s = ctx;

    if (ok && !s->quiet)
        printf("ok    %s\n", text);
    else if (!ok)
        printf("FAIL  %s%s%s\n", s->file ? s->file : "", s->file ? ": " : "", text);
}

/* --- verify ------------------------------------------------------------------------ */

/* A saved answer: the envelope's bytes, or JSON with "signed" (base64). */
/* The whole file, at most 64 MiB (caller frees). */
static int read_whole(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return cli_error(CLI_IO, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t r;
        if (n == cap) {
            uint8_t *nb = cap > 64 * 1024 * 1024 ? NULL : realloc(buf, cap ? cap * 2 : 65536);
            if (!nb) {
                free(buf);
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
    *out = buf;
    *len = n;
    return CLI_OK;
}

int cli_log_key_arg(const cli_call *c, uint8_t pk[32])
{
    const char *key = cli_get(c, "key");

    if (key) {
        if (pk_pubkey_load(key, pk) != PK_OK)
            return cli_error(CLI_IO, "--key: %s", pk_error_msg());
    } else if (cli.have_oracle_key) {
        memcpy(pk, cli.oracle_key, 32);
    } else {
        return cli_usage_error("%s needs the log's public key: --key FILE.pub or HEX (or "
                               "PACTUM_ORACLE_KEY), obtained from the operator",
                               c->cmd->path);
    }
    return CLI_OK;
}

int cmd_verify(const cli_call *c)
{
    const char *const *witnesses = NULL;
    size_t n_witnesses = cli_get_all(c, "witness", &witnesses);
    uint64_t needed = n_witnesses;
    uint8_t pk[32];
    int failures = 0, checkpoints = 0, rc;

    if (cli_get_u64(c, "witnesses", 1, n_witnesses ? n_witnesses : 1, &needed) != CLI_OK)
        return CLI_USAGE;
    if (cli_has(c, "witnesses") && !n_witnesses)
        return cli_usage_error("--witnesses counts the --witness keys: give them");
    if ((rc = cli_log_key_arg(c, pk)) != CLI_OK)
        return rc;
    for (int i = 0; i < c->n_args; i++) {
        say_ctx sc = {.file = NULL};
        pk_verifier v = {.key = pk, .say = say, .say_ctx = &sc};
        uint8_t *buf = NULL, *answer = NULL;
        size_t len = 0, alen = 0;
        if (read_whole(c->args[i], &buf, &len) != CLI_OK) {
            failures++;
            continue;
        }
        printf("%s\n", c->args[i]);
        if (cli_is_note(buf, len)) {
            checkpoints++;
            failures += cli_verify_checkpoint(buf, len, pk, witnesses, n_witnesses,
                                              (size_t)needed) != CLI_OK;
        } else if (pk_verify_unwrap(buf, len, &answer, &alen) != PK_OK) {
            cli_error(CLI_FAIL, "%s: %s", c->args[i], pk_error_msg());
            failures++;
        } else {
            failures += pk_verify_answer(&v, answer, alen) != 0;
            free(answer);
        }
        free(buf);
    }
    if (n_witnesses && !checkpoints)
        return cli_error(CLI_FAIL, "--witness checks checkpoints, and none was given (save one "
                                   "from GET /checkpoint)");
    if (failures)
        return cli_error(CLI_FAIL, "%d of %d file%s did not verify", failures, c->n_args,
                         c->n_args == 1 ? "" : "s");
    if (checkpoints)
        printf("all %d file%s verified (%d checkpoint%s)\n", c->n_args, c->n_args == 1 ? "" : "s",
               checkpoints, checkpoints == 1 ? "" : "s");
    else
        printf("all %d answer%s verified\n", c->n_args, c->n_args == 1 ? "" : "s");
    return CLI_OK;
}

/* --- online commands ------------------------------------------------------------------ */

int cli_ask_checked(const char *subject, const ProtobufCMessage *q, Pactum__V1__PayloadType t,
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
        say_ctx sc = {.quiet = true};
        pk_verifier v = {
            .key = cli.have_oracle_key ? cli.oracle_key : NULL, .say = say, .say_ctx = &sc};
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name((*out)->descriptor, "status");
        int status = f ? *(const int *)((const uint8_t *)*out + f->offset) : 0;
        if (status == PACTUM__V1__QUERY_STATUS__QUERY_OK && pk_verify_answer(&v, raw, len)) {
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

/* A decision for people: the answer, the tier, the pacts in force, the reasons. */
static void print_decision(const Pactum__V1__AuthorizeDecision *d)
{
    printf("%s  %s for %s (decision %s, recorded in PACTUM_AUDIT)\n",
           d->permit == PACTUM__V1__PERMIT__PERMIT_ALLOW  ? "ALLOW"
           : d->permit == PACTUM__V1__PERMIT__PERMIT_DENY ? "DENY"
                                                          : "NEEDS APPROVAL",
           d->request->action, d->request->agent_id, d->decision_id);
    printf("tier            %s%s%s\n", pk_tier_name(d->effective_tier),
           d->effective_tier != d->tier ? " by override, decided " : "",
           d->effective_tier != d->tier ? pk_tier_name(d->tier) : "");
    for (size_t i = 0; i < d->n_pacts; i++) {
        char h[17];
        hex_short(&d->pacts[i]->hash, h, sizeof(h));
        printf("pact in force   %s v%u sha256:%s...\n", d->pacts[i]->pact_id, d->pacts[i]->version,
               h);
    }
    if (d->approval_id && *d->approval_id)
        printf("approved        by %s (approval %s, now used)\n", d->approved_by, d->approval_id);
    printf("because\n");
    for (size_t i = 0; i < d->n_reasons; i++)
        printf("  - %s\n", d->reasons[i]);
}

int cmd_authorize(const cli_call *c)
{
    Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    Pactum__V1__AuthorizeDecision *d = NULL;
    int code;

    q.agent_id = (char *)cli_get(c, "agent");
    q.action = (char *)cli_get(c, "action");
    q.resource = (char *)(cli_has(c, "resource") ? cli_get(c, "resource") : "");
    q.tool = (char *)(cli_has(c, "tool") ? cli_get(c, "tool") : "");
    q.currency = (char *)(cli_has(c, "currency") ? cli_get(c, "currency") : "");
    if ((code = cli_get_double(c, "amount", 0, &q.amount)) != CLI_OK)
        return code;
    q.client_token = (char *)(cli_has(c, "token")      ? cli_get(c, "token")
                              : getenv("PACTUM_TOKEN") ? getenv("PACTUM_TOKEN")
                                                       : "");
    q.kind = (char *)(cli_has(c, "kind") ? cli_get(c, "kind") : "");
    if (cli_has(c, "approval")) {
        FILE *f = fopen(cli_get(c, "approval"), "rb");
        static uint8_t buf[65536];
        size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
        if (f)
            fclose(f);
        if (!n)
            return cli_error(CLI_IO, "cannot read the approval %s", cli_get(c, "approval"));
        q.approval.data = buf;
        q.approval.len = n;
    }
    code = cli_ask_checked(PK_SUBJ_ORACLE_AUTHORIZE, &q.base,
                           PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION, (ProtobufCMessage **)&d);
    if (code != CLI_OK)
        return code;
    if (d->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(d->status, d->message);
    } else {
        if (!cli.json && d->request)
            print_decision(d);
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

int cmd_evidence(const cli_call *c)
{
    Pactum__V1__EvidenceQuery q = PACTUM__V1__EVIDENCE_QUERY__INIT;
    Pactum__V1__EvidencePage *pg = NULL;
    const char *kind = cli_get(c, "kind");
    uint64_t limit = 20;
    int code;

    q.agent_id = c->args[0];
    if ((code = cli_get_u64(c, "from", 0, UINT64_MAX, &q.from)) != CLI_OK ||
        (code = cli_get_u64(c, "limit", 1, 100, &limit)) != CLI_OK)
        return code;
    q.limit = (uint32_t)limit;
    if (kind && !(q.kind = leaf_kind(kind)))
        return cli_usage_error("--kind: expected event, verdict, governance, trust_change, "
                               "registry or decision");
    code =
        cli_ask_checked(PK_SUBJ_ORACLE_EVIDENCE, &q.base,
                        PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVIDENCE_PAGE, (ProtobufCMessage **)&pg);
    if (code != CLI_OK)
        return code;
    if (pg->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(pg->status, pg->message);
    } else if (!cli.json) {
        for (size_t i = 0; i < pg->n_entries; i++) {
            const Pactum__V1__EvidenceEntry *e = pg->entries[i];
            Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, e->leaf.len, e->leaf.data);
            char when[40];
            if (!l)
                continue;
            pk_clock_format(l->stored_ms, when, sizeof(when));
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

int cmd_attest(const cli_call *c)
{
    Pactum__V1__AttestQuery q = PACTUM__V1__ATTEST_QUERY__INIT;
    Pactum__V1__Attestation *at = NULL;
    int code;

    q.agent_id = c->args[0];
    code = cli_ask_checked(PK_SUBJ_ORACLE_ATTEST, &q.base,
                           PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ATTESTATION, (ProtobufCMessage **)&at);
    if (code != CLI_OK)
        return code;
    if (at->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(at->status, at->message);
    } else if (!cli.json) {
        char until[40], issued[40];
        pk_clock_format(at->issued_ms, issued, sizeof(issued));
        pk_clock_format(at->valid_until_ms, until, sizeof(until));
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

int cmd_figures(const cli_call *c)
{
    Pactum__V1__FiguresQuery q = PACTUM__V1__FIGURES_QUERY__INIT;
    Pactum__V1__GovernanceFigures *f = NULL;
    int code;

    if (c->n_args)
        q.agent_id = c->args[0];
    code = cli_ask_checked(PK_SUBJ_ORACLE_FIGURES, &q.base,
                           PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES, (ProtobufCMessage **)&f);
    if (code != CLI_OK)
        return code;
    if (f->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(f->status, f->message);
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

/* Ask for a log answer and show what was checked. */
static int ask_log(Pactum__V1__LogQuery *q)
{
    Pactum__V1__LogAnswer *la = NULL;
    int code =
        cli_ask_checked(PK_SUBJ_ORACLE_LOG, &q->base, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_LOG_ANSWER,
                        (ProtobufCMessage **)&la);

    if (code != CLI_OK)
        return code;
    if (la->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused(la->status, la->message);
    } else if (!cli.json) {
        say_ctx sc = {.file = NULL};
        pk_verifier v = {
            .key = cli.have_oracle_key ? cli.oracle_key : NULL, .say = say, .say_ctx = &sc};
        Pactum__V1__TreeHead *th = pk_verify_head(&v, &la->head, "head"), *first;
        if (th && q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION) {
            Pactum__V1__LogLeaf *l =
                pk_verify_leaf(&v, &la->leaf, la->index, la->path, la->n_path, &la->record, th);
            if (l)
                pactum__v1__log_leaf__free_unpacked(l, NULL);
        } else if (th && q->kind == PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY &&
                   (first = pk_verify_head(&v, &la->first_head, "first head"))) {
            printf("ok    consistency proof of %zu hashes from %llu to %llu leaves (verified)\n",
                   la->n_path, (unsigned long long)first->size, (unsigned long long)th->size);
            pactum__v1__tree_head__free_unpacked(first, NULL);
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

int cmd_log_head(const cli_call *c)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
    int code;

    q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_HEAD;
    if ((code = cli_get_u64(c, "size", 1, UINT64_MAX, &q.size)) != CLI_OK)
        return code;
    return ask_log(&q);
}

int cmd_log_prove(const cli_call *c)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
    int code;

    q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_INCLUSION;
    q.stream = (char *)(cli_has(c, "stream") ? cli_get(c, "stream") : "");
    if (q.stream[0] && !cli_has(c, "seq"))
        return cli_usage_error("log prove --stream needs --seq N");
    if ((code = cli_get_u64(c, "size", 1, UINT64_MAX, &q.size)) != CLI_OK ||
        (code = cli_get_u64(c, "index", 0, UINT64_MAX, &q.index)) != CLI_OK ||
        (code = cli_get_u64(c, "seq", 1, UINT64_MAX, &q.stream_seq)) != CLI_OK)
        return code;
    return ask_log(&q);
}

int cmd_log_consistency(const cli_call *c)
{
    Pactum__V1__LogQuery q = PACTUM__V1__LOG_QUERY__INIT;
    int code;

    q.kind = PACTUM__V1__LOG_QUERY_KIND__LOG_CONSISTENCY;
    if ((code = cli_get_u64(c, "size", 1, UINT64_MAX, &q.size)) != CLI_OK ||
        (code = cli_get_u64(c, "from", 0, UINT64_MAX, &q.first)) != CLI_OK)
        return code;
    return ask_log(&q);
}
