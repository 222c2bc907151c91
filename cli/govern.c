/*
 * Governance from the command line: register principals (admin key), and
 * sign overrides, acknowledgements (operators), disputes (owners or
 * counterparties) and rulings (arbiters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include "cli.h"
#include "pk/clock.h"

/* A random id like "ov-1a2b3c4d5e6f" when the user gives none. */
static const char *id_or_random(const char *given, const char *prefix, char *buf, size_t len)
{
    uint8_t rnd[6];
    char hex[13];

    if (given)
        return given;
    randombytes_buf(rnd, sizeof(rnd));
    pk_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(buf, len, "%s-%s", prefix, hex);
    return buf;
}

int cmd_principal_register(const cli_call *c)
{
    const char *id = cli_get(c, "id"), *role = cli_get(c, "role"), *key = cli_get(c, "key"),
               *admin = cli_get(c, "admin-key"),
               *name = cli_has(c, "name") ? cli_get(c, "name") : "";
    Pactum__V1__PrincipalRegistration pr = PACTUM__V1__PRINCIPAL_REGISTRATION__INIT;
    pk_keypair kp, akp;
    uint8_t *pop = NULL, sig[PK_SIG_BYTES];
    size_t poplen = 0;
    int code;

    pr.role = pk_role_parse(role);
    if (pr.role == PACTUM__V1__ROLE__ROLE_UNSPECIFIED || pr.role == PACTUM__V1__ROLE__ROLE_AGENT)
        return cli_usage_error("--role must be operator, arbiter, evaluator, human or telemetry");
    if (pk_key_load(key, &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_key_load(admin, &akp) != PK_OK) {
        pk_keypair_wipe(&kp);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    if (pk_pop_message(id, akp.pk, &pop, &poplen) != PK_OK) {
        pk_keypair_wipe(&kp);
        pk_keypair_wipe(&akp);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    pk_sign(&kp, pop, poplen, sig);
    free(pop);
    pr.id = (char *)id;
    pr.key.data = kp.pk;
    pr.key.len = PK_PUBKEY_BYTES;
    pr.display_name = (char *)name;
    pr.key_pop.data = sig;
    pr.key_pop.len = PK_SIG_BYTES;
    pr.ts_ms = pk_now_ms();
    cli_expect_identity(key, kp.pk);
    pk_keypair_wipe(&kp);
    pk_keypair_wipe(&akp);
    code = cli_submit_with_key(PK_SUBJ_REG_SUBMIT,
                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PRINCIPAL_REGISTRATION, &pr.base,
                               "", admin);
    return code;
}

int cmd_client_register(const cli_call *c)
{
    const char *id = cli_get(c, "id"), *admin = cli_get(c, "admin-key"), *out = cli_get(c, "out"),
               *name = cli_has(c, "name") ? cli_get(c, "name") : "";
    Pactum__V1__PrincipalRegistration pr = PACTUM__V1__PRINCIPAL_REGISTRATION__INIT;
    const char *key = cli_get(c, "key");
    uint8_t secret[32], hash[PK_HASH_BYTES], sig[PK_SIG_BYTES];
    char b64[64], token[PK_ID_MAX + 66];
    pk_keypair kp, akp;
    int code;

    if (pk_principal_id_check("client id", id) != PK_OK)
        return cli_usage_error("%s", pk_error_msg());
    if (key) {
        /* the client's own key, which signs its webhook subscriptions; proved as a
         * principal's is, by its signature of the proof-of-possession message */
        uint8_t *pop = NULL;
        size_t poplen = 0;
        pk_status st = pk_key_load(key, &kp);

        if (st == PK_OK && (st = pk_key_load(admin, &akp)) == PK_OK) {
            if ((st = pk_pop_message(id, akp.pk, &pop, &poplen)) == PK_OK)
                pk_sign(&kp, pop, poplen, sig);
            free(pop);
            pk_keypair_wipe(&akp);
        }
        if (st != PK_OK)
            return cli_error(CLI_IO, "%s", pk_error_msg());
        pr.key.data = kp.pk;
        pr.key.len = PK_PUBKEY_BYTES;
        pr.key_pop.data = sig;
        pr.key_pop.len = PK_SIG_BYTES;
    }
    /* the token is made here and shown once; the registry keeps only its hash */
    randombytes_buf(secret, sizeof(secret));
    sodium_bin2base64(b64, sizeof(b64), secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof(secret));
    crypto_hash_sha256(hash, (const uint8_t *)b64, strlen(b64));
    snprintf(token, sizeof(token), "%s:%s", id, b64);
    pr.id = (char *)id;
    pr.role = PACTUM__V1__ROLE__ROLE_CLIENT;
    pr.display_name = (char *)name;
    pr.token_hash.data = hash;
    pr.token_hash.len = sizeof(hash);
    pr.ts_ms = pk_now_ms();
    code = cli_submit_with_key(PK_SUBJ_REG_SUBMIT,
                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PRINCIPAL_REGISTRATION, &pr.base,
                               "", admin);
    if (key)
        pk_keypair_wipe(&kp);
    if (code == CLI_OK) {
        if (out) {
            FILE *f;
            int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd < 0 || !(f = fdopen(fd, "w")) || fprintf(f, "%s\n", token) < 0 || fclose(f) != 0)
                code =
                    cli_error(CLI_IO, "cannot write the token to %s (it is not shown again)", out);
            else if (!cli.json)
                printf("token of %s in %s (mode 0600); it is not kept anywhere else\n", id, out);
        } else if (cli.json) {
            cli_print_json(json_pack("{s:s, s:s}", "client", id, "token", token));
        } else {
            printf("token of %s (shown once; pass it with --token or PACTUM_TOKEN, or HTTP "
                   "Authorization: Bearer):\n%s\n",
                   id, token);
        }
    }
    sodium_memzero(b64, sizeof(b64));
    sodium_memzero(token, sizeof(token));
    return code;
}

/* "a,b,c" split in place into at most max strings. */
static size_t split_list(char *text, char **out, size_t max)
{
    size_t n = 0;

    for (char *tok = strtok(text, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

int cmd_override(const cli_call *c)
{
    const char *op = cli_get(c, "operator"), *key = cli_get(c, "key"), *agent = cli_get(c, "agent"),
               *tier = cli_get(c, "tier"), *allow = cli_get(c, "allow"), *deny = cli_get(c, "deny"),
               *reason = cli_get(c, "reason"), *expires = cli_get(c, "expires"),
               *id = cli_get(c, "id");
    Pactum__V1__Override o = PACTUM__V1__OVERRIDE__INIT;
    char idbuf[32], listbuf[1024], *actions[8];
    int64_t ms = 0;

    if (pk_duration_parse(expires, &ms) != PK_OK || ms <= 0)
        return cli_usage_error("--expires needs a duration like 2h (from now)");
    o.override_id = (char *)id_or_random(id, "ov", idbuf, sizeof(idbuf));
    o.agent_id = (char *)agent;
    o.signed_ms = pk_now_ms();
    o.reason = (char *)reason;
    o.expires_ms = pk_now_ms() + ms;
    if (tier) {
        o.kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER;
        if (!(o.tier = pk_tier_parse(tier)))
            return cli_usage_error("--tier: expected trusted, standard, watch, restricted, "
                                   "contained or suspended");
    } else {
        o.kind = allow ? PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW
                       : PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY;
        snprintf(listbuf, sizeof(listbuf), "%s", allow ? allow : deny);
        o.n_actions = split_list(listbuf, actions, 8);
        o.actions = actions;
    }
    return cli_submit_with_key(PK_SUBJ_GOV_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_OVERRIDE,
                               &o.base, op, key);
}

int cmd_ack(const cli_call *c)
{
    const char *op = cli_get(c, "operator"), *key = cli_get(c, "key"), *agent = cli_get(c, "agent"),
               *note = cli_has(c, "note") ? cli_get(c, "note") : "", *id = cli_get(c, "id");
    Pactum__V1__Ack k = PACTUM__V1__ACK__INIT;
    char idbuf[32];

    k.ack_id = (char *)id_or_random(id, "ack", idbuf, sizeof(idbuf));
    k.agent_id = (char *)agent;
    k.signed_ms = pk_now_ms();
    k.note = (char *)note;
    return cli_submit_with_key(PK_SUBJ_GOV_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ACK, &k.base,
                               op, key);
}

/* The vseq of the agent's last violation, as the oracle reports it. */
static int last_violation(const char *agent, uint64_t *vseq)
{
    Pactum__V1__TrustReport *r = NULL;
    pk_bus *bus = cli_connect();
    int code;

    if (!bus)
        return CLI_BUS;
    code = cli_trust_ask(bus, agent, 1, NULL, NULL, &r);
    pk_bus_close(bus);
    if (code != CLI_OK)
        return code;
    if (!r->last_violation || !r->last_violation->vseq)
        code = cli_error(CLI_FAIL, "the oracle knows no violation of %s to dispute", agent);
    else
        *vseq = r->last_violation->vseq;
    pactum__v1__trust_report__free_unpacked(r, NULL);
    return code;
}

int cmd_dispute_open(const cli_call *c)
{
    const char *agent = cli_get(c, "agent"), *key = cli_get(c, "key"), *as = cli_get(c, "as"),
               *verdict = cli_get(c, "verdict"), *event = cli_get(c, "event"),
               *reason = cli_get(c, "reason"), *id = cli_get(c, "id");
    Pactum__V1__Dispute d = PACTUM__V1__DISPUTE__INIT;
    char idbuf[32];

    d.dispute_id = (char *)id_or_random(id, "d", idbuf, sizeof(idbuf));
    d.agent_id = (char *)agent;
    d.signed_ms = pk_now_ms();
    if (verdict && strcmp(verdict, "last") == 0) {
        int code = last_violation(agent, &d.verdict_vseq);
        if (code != CLI_OK)
            return code;
    } else if (verdict) {
        char *end = NULL;
        d.verdict_vseq = strtoull(verdict, &end, 10);
        if (!*verdict || *end || d.verdict_vseq == 0)
            return cli_usage_error("--verdict: expected a verdict sequence (vseq) or 'last', "
                                   "got '%s'",
                                   verdict);
    }
    d.event_id = (char *)(event ? event : "");
    d.engagement_id = (char *)(cli_has(c, "engagement") ? cli_get(c, "engagement") : "");
    d.reason = (char *)reason;
    d.counter_evidence = (char *)(cli_has(c, "evidence") ? cli_get(c, "evidence") : "");
    /* signed by the owner key (no id) or by a registered counterparty (--as) */
    return cli_submit_with_key(PK_SUBJ_GOV_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DISPUTE,
                               &d.base, as, key);
}

int cmd_dispute_rule(const cli_call *c)
{
    Pactum__V1__Ruling u = PACTUM__V1__RULING__INIT;

    u.dispute_id = (char *)cli_get(c, "dispute");
    u.agent_id = (char *)cli_get(c, "agent");
    u.signed_ms = pk_now_ms();
    u.overturned = cli_has(c, "overturned");
    u.reason = (char *)cli_get(c, "reason");
    return cli_submit_with_key(PK_SUBJ_GOV_SUBMIT, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_RULING,
                               &u.base, cli_get(c, "arbiter"), cli_get(c, "key"));
}

int cmd_approve(const cli_call *c)
{
    const char *key = cli_get(c, "key"), *out = cli_get(c, "out");
    Pactum__V1__Approval a = PACTUM__V1__APPROVAL__INIT;
    char idbuf[32];
    uint8_t *payload = NULL, *env = NULL;
    size_t plen = 0, elen = 0;
    int64_t ttl = 15 * 60000;
    pk_keypair kp;
    FILE *f;
    int fd, code = CLI_OK;

    if ((code = cli_get_duration(c, "expires", 1000, 86400000, &ttl)) != CLI_OK)
        return code;
    if ((code = cli_get_double(c, "amount", 0, &a.amount)) != CLI_OK)
        return code;
    a.approval_id = (char *)id_or_random(cli_get(c, "id"), "appr", idbuf, sizeof(idbuf));
    a.decision_id = (char *)cli_get(c, "decision");
    a.agent_id = (char *)cli_get(c, "agent");
    a.action = (char *)cli_get(c, "action");
    a.resource = (char *)(cli_has(c, "resource") ? cli_get(c, "resource") : "");
    a.tool = (char *)(cli_has(c, "tool") ? cli_get(c, "tool") : "");
    a.currency = (char *)(cli_has(c, "currency") ? cli_get(c, "currency") : "");
    a.approver_id = (char *)cli_get(c, "approver");
    a.note = (char *)(cli_has(c, "note") ? cli_get(c, "note") : "");
    a.signed_ms = pk_now_ms();
    a.expires_ms = a.signed_ms + ttl;
    if (pk_id_check("approval id", a.approval_id) != PK_OK ||
        pk_signer_id_check("approver", a.approver_id) != PK_OK)
        return cli_usage_error("%s", pk_error_msg());
    if (pk_key_load(key, &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (pk_pack(&a.base, &payload, &plen) != PK_OK ||
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_APPROVAL, payload, plen, a.approver_id,
                         &kp, &env, &elen) != PK_OK)
        code = cli_error(CLI_IO, "%s", pk_error_msg());
    pk_keypair_wipe(&kp);
    free(payload);
    if (code != CLI_OK)
        return code;
    /* the approval travels with the request it approves: a file the asker passes on */
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "wb")) || fwrite(env, 1, elen, f) != elen || fclose(f) != 0)
        code = cli_error(CLI_IO, "cannot write the approval to %s", out);
    else if (cli.json)
        cli_print_json(json_pack("{s:s, s:s, s:I}", "approval", a.approval_id, "file", out,
                                 "expires_ms", (json_int_t)a.expires_ms));
    else
        printf("approval %s of %s for %s by %s, until %lld ms, in %s (pass it with "
               "pactum authorize --approval %s)\n",
               a.approval_id, a.action, a.agent_id, a.approver_id, (long long)a.expires_ms, out,
               out);
    free(env);
    return code;
}
