/*
 * Keys, agents and pacts: keygen, agent register, pact lint, pact register.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/pact.h"

int cmd_keygen(const cli_call *c)
{
    const char *out = cli_get(c, "out");
    pk_keypair kp;
    char hex[PK_PUBKEY_BYTES * 2 + 1];

    if (pk_keypair_generate(&kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_key_save(out, &kp) != PK_OK) {
        pk_keypair_wipe(&kp);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    pk_hex_encode(kp.pk, PK_PUBKEY_BYTES, hex);
    pk_keypair_wipe(&kp);
    if (cli.json) {
        cli_print_json(json_pack("{s:s, s:s+, s:s}", "secret_key_file", out, "public_key_file", out,
                                 ".pub", "public_key", hex));
    } else {
        printf("secret key  %s (mode 0600)\npublic key  %s.pub\n            %s\n", out, out, hex);
    }
    return CLI_OK;
}

/* Read a whole file (at most max bytes) into a new buffer. */
static int read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (!f)
        return cli_error(CLI_IO, "cannot read %s: %s", path, strerror(errno));
    buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return cli_error(CLI_IO, "out of memory");
    }
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        free(buf);
        return cli_error(CLI_IO, "%s is larger than %zu bytes", path, max);
    }
    *out = buf;
    *len = n;
    return CLI_OK;
}

int cmd_agent_register(const cli_call *c)
{
    const char *id = cli_get(c, "id"), *key = cli_get(c, "key"), *owner = cli_get(c, "owner-key"),
               *name = cli_has(c, "name") ? cli_get(c, "name") : "";
    pk_keypair agent_kp, owner_kp;
    Pactum__V1__AgentRegistration ar = PACTUM__V1__AGENT_REGISTRATION__INIT;
    uint8_t *pop = NULL, sig[PK_SIG_BYTES];
    size_t poplen = 0;
    int code = CLI_IO;

    if (pk_id_check("agent id", id) != PK_OK)
        return cli_usage_error("%s", pk_error_msg());
    if (pk_key_load(key, &agent_kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_key_load(owner, &owner_kp) != PK_OK) {
        pk_keypair_wipe(&agent_kp);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    if (pk_pop_message(id, owner_kp.pk, &pop, &poplen) != PK_OK)
        goto out;
    pk_sign(&agent_kp, pop, poplen, sig);
    ar.agent_id = (char *)id;
    ar.agent_key.data = agent_kp.pk;
    ar.agent_key.len = PK_PUBKEY_BYTES;
    ar.owner_key.data = owner_kp.pk;
    ar.owner_key.len = PK_PUBKEY_BYTES;
    ar.display_name = (char *)name;
    ar.agent_pop.data = sig;
    ar.agent_pop.len = PK_SIG_BYTES;
    ar.ts_ms = pk_now_ms();
    cli_expect_identity(key, agent_kp.pk);
    cli_expect_identity(owner, owner_kp.pk);
    cli.key_id = owner; /* an owner with a bus identity registers as itself */
    code = cli_submit(PK_SUBJ_REG_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION,
                      &ar.base, NULL, &owner_kp);
out:
    pk_keypair_wipe(&agent_kp);
    pk_keypair_wipe(&owner_kp);
    free(pop);
    return code;
}

int cmd_pact_lint(const cli_call *c)
{
    int code = CLI_OK;
    json_t *all = cli.json ? json_array() : NULL;

    for (int i = 0; i < c->n_args; i++) {
        const char *path = c->args[i];
        uint8_t *doc = NULL;
        size_t len = 0;
        pk_lint lint = {0};
        pk_pact *p = NULL;

        if (read_file(path, PK_PACT_MAX_BYTES, &doc, &len) != CLI_OK) {
            code = CLI_IO;
            continue;
        }
        if (pk_pact_parse((const char *)doc, len, &p, &lint) == PK_OK) {
            if (all)
                json_array_append_new(all, json_pack("{s:s, s:b, s:s, s:i, s:[]}", "file", path,
                                                     "ok", 1, "pact", p->id, "clauses",
                                                     (int)p->n_clauses, "problems"));
            else
                printf("%s: ok (pact %s for agent %s, %zu clause%s)\n", path, p->id, p->agent,
                       p->n_clauses, p->n_clauses == 1 ? "" : "s");
        } else {
            json_t *probs = json_array();
            for (size_t k = 0; k < lint.n; k++) {
                if (all)
                    json_array_append_new(probs, json_string(lint.msgs[k]));
                else
                    fprintf(stderr, "%s: %s\n", path, lint.msgs[k]);
            }
            if (all)
                json_array_append_new(
                    all, json_pack("{s:s, s:b, s:o}", "file", path, "ok", 0, "problems", probs));
            else {
                json_decref(probs);
                fprintf(stderr, "%s: %zu problem%s\n", path, lint.n, lint.n == 1 ? "" : "s");
            }
            if (code == CLI_OK)
                code = CLI_FAIL;
        }
        pk_pact_free(p);
        pk_lint_free(&lint);
        free(doc);
    }
    if (all)
        cli_print_json(all);
    return code;
}

int cmd_pact_register(const cli_call *c)
{
    const char *key = cli_get(c, "key"), *path = c->args[0];
    Pactum__V1__PactRegistration pr = PACTUM__V1__PACT_REGISTRATION__INIT;
    uint8_t *doc = NULL;
    size_t len = 0;
    pk_lint lint = {0};
    pk_pact *p = NULL;
    int code;

    if ((code = read_file(path, PK_PACT_MAX_BYTES, &doc, &len)) != CLI_OK)
        return code;
    if (pk_pact_parse((const char *)doc, len, &p, &lint) != PK_OK) {
        for (size_t i = 0; i < lint.n; i++)
            fprintf(stderr, "%s: %s\n", path, lint.msgs[i]);
        code = cli_error(CLI_FAIL, "%s: not registered; fix the %zu problem%s above", path, lint.n,
                         lint.n == 1 ? "" : "s");
        goto out;
    }
    pr.pact_id = p->id;
    pr.document.data = doc;
    pr.document.len = len;
    pr.ts_ms = pk_now_ms();
    code =
        cli_submit_with_key(PK_SUBJ_REG_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION,
                            &pr.base, NULL, key);
out:
    pk_pact_free(p);
    pk_lint_free(&lint);
    free(doc);
    return code;
}

/* Ask the oracle for versions of a pact; *out: caller frees. */
int cli_pact_query(const char *id, uint32_t version, bool document, Pactum__V1__PactReport **out,
                   uint8_t **raw, size_t *raw_len)
{
    Pactum__V1__PactQuery q = PACTUM__V1__PACT_QUERY__INIT;
    pk_bus *bus;
    int code;

    q.pact_id = (char *)id;
    q.version = version;
    q.document = document;
    if (!(bus = cli_connect()))
        return CLI_BUS;
    code = cli_ask(bus, PK_SUBJ_ORACLE_PACT, &q.base, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REPORT,
                   (ProtobufCMessage **)out, raw, raw_len);
    if (code == CLI_OK && (*out)->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        code = cli_refused((*out)->status, (*out)->message);
        pactum__v1__pact_report__free_unpacked(*out, NULL);
        *out = NULL;
        free(*raw);
        *raw = NULL;
    }
    pk_bus_close(bus);
    return code;
}

int cmd_pact_history(const cli_call *c)
{
    Pactum__V1__PactReport *rep = NULL;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int code;

    if ((code = cli_pact_query(c->args[0], 0, false, &rep, &raw, &raw_len)) != CLI_OK)
        return code;
    if (cli.json) {
        cli_print_json(cli_answer_json(raw, raw_len));
    } else {
        printf("pact %s: %zu version%s\n", rep->pact_id, rep->n_versions,
               rep->n_versions == 1 ? "" : "s");
        for (size_t i = 0; i < rep->n_versions; i++) {
            const Pactum__V1__PactVersion *v = rep->versions[i];
            char hash[PK_HASH_BYTES * 2 + 1] = "";
            if (v->hash.len == PK_HASH_BYTES)
                pk_hex_encode(v->hash.data, PK_HASH_BYTES, hash);
            printf("  v%-3u sha256:%s  agent %s  %u clause%s  registry #%llu\n", v->version, hash,
                   v->agent_id, v->clauses, v->clauses == 1 ? "" : "s",
                   (unsigned long long)v->registry_seq);
        }
    }
    pactum__v1__pact_report__free_unpacked(rep, NULL);
    free(raw);
    return CLI_OK;
}

/*
 * Check what the oracle returned against itself: the document hashes to the
 * recorded hash, and the owner's signed submission holds this very document,
 * signed by the owner key on record. Returns a sentence, or NULL if it holds.
 */
const char *cli_pact_check(const Pactum__V1__PactVersion *v)
{
    uint8_t hash[PK_HASH_BYTES];
    pk_signed_msg *env = NULL;
    Pactum__V1__PactRegistration *pr = NULL;
    const char *why = NULL;

    pk_sha256(v->document.data, v->document.len, hash);
    if (v->hash.len != PK_HASH_BYTES || !pk_bytes_equal(hash, v->hash.data, PK_HASH_BYTES))
        return "the document does not hash to the recorded sha256";
    if (pk_envelope_open(v->submission.data, v->submission.len, &env) != PK_OK)
        return "the signed submission does not decode";
    if (v->owner_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(env->signer_key.data, v->owner_key.data, PK_PUBKEY_BYTES))
        why = "the submission is not signed by the owner key on record";
    else if (pk_envelope_verify(env, env->signer_key.data) != PK_OK)
        why = "the owner's signature does not verify";
    else if (!(pr = pactum__v1__pact_registration__unpack(NULL, env->payload.len,
                                                          env->payload.data)) ||
             pr->document.len != v->document.len ||
             memcmp(pr->document.data, v->document.data, v->document.len) != 0)
        why = "the signed submission holds another document";
    if (pr)
        pactum__v1__pact_registration__free_unpacked(pr, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    return why;
}

int cmd_pact_show(const cli_call *c)
{
    const char *id = c->args[0];
    uint64_t version = 0;
    Pactum__V1__PactReport *rep = NULL;
    const Pactum__V1__PactVersion *pv;
    const char *why;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int code;

    if ((code = cli_get_u64(c, "version", 1, UINT32_MAX, &version)) != CLI_OK)
        return code;
    if ((code = cli_pact_query(id, (uint32_t)version, true, &rep, &raw, &raw_len)) != CLI_OK)
        return code;
    pv = rep->versions[rep->n_versions - 1];
    why = cli_pact_check(pv);
    if (cli.json) {
        json_t *o = cli_answer_json(raw, raw_len);
        json_object_set_new(o, "verified", json_boolean(why == NULL));
        json_object_set_new(o, "problem", why ? json_string(why) : json_null());
        cli_print_json(o);
    } else {
        fwrite(pv->document.data, 1, pv->document.len, stdout);
        if (pv->document.len && pv->document.data[pv->document.len - 1] != '\n')
            putchar('\n');
        fprintf(stderr, "pact %s v%u: %s\n", rep->pact_id, pv->version,
                why ? why : "sha256 matches and the owner's signature verifies");
    }
    code = why ? cli_error(CLI_FAIL, "pact %s v%u: %s", id, pv->version, why) : CLI_OK;
    pactum__v1__pact_report__free_unpacked(rep, NULL);
    free(raw);
    return code;
}
