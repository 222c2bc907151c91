/*
 * Governance end to end, driven through the pactum CLI: principals
 * registered by the admin key, a containment, a dispute that blocks
 * re-entry until ruled, an operator acknowledgement, re-entry with its
 * criteria recorded, an override that changes what is in force without
 * erasing the decision, a ruling that overturns a verdict, and a replay of
 * the whole history that reaches the live scorer's digest.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair admin, ops, arb, owner, agent;
static char out[65536];

static void key_file(const char *name, const pk_keypair *kp)
{
    cr_assert(h_key_file(&h, name, kp), "%s", h.why);
}

/* Run the CLI; its output lands in `out`; returns its exit status. */
#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

static void setup(void)
{
    char admin_env[128], hex[65];
    const char *ingest_env[] = {admin_env, NULL};
    const char *eval_env[] = {"PACTUM_EVALUATOR_REPORT_EVERY=1", NULL};

    cr_assert(h_start(&h, false), "nats-server did not start");
    h_keypair(&admin, 31);
    h_keypair(&ops, 32);
    h_keypair(&arb, 33);
    h_keypair(&owner, 34);
    h_keypair(&agent, 35);
    pk_hex_encode(admin.pk, 32, hex);
    snprintf(admin_env, sizeof(admin_env), "PACTUM_ADMIN_KEY=%s", hex);
    cr_assert(h_start_service(&h, 0, ingest_env));
    cr_assert(h_start_service(&h, 1, eval_env));
    cr_assert(h_start_service(&h, 2, NULL));
    cr_assert(h_start_service(&h, 3, NULL));
    key_file("admin", &admin);
    key_file("ops", &ops);
    key_file("arb", &arb);
    key_file("owner", &owner);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(governance, .init = setup, .fini = teardown, .timeout = 240);

static const char *pact =
    "{\"pactum\":1,\"id\":\"gov\",\"agent\":\"gov-bot\",\"clauses\":["
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
    "\"threshold\":2000,\"min_samples\":3},"
    "{\"id\":\"no-pii\",\"promise\":\"no "
    "leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\",\"window\":\"1d\","
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}}],"
    "\"governance\":{\"tiers\":{\"watch\":{\"actions\":[\"reply\"],\"approval\":[\"kb.*\"]}},"
    "\"reentry\":[{\"from\":\"contained\",\"to\":\"watch\",\"clean\":\"2s\",\"min_samples\":5,"
    "\"no_open_dispute\":true,\"operator_ack\":true}]}}";

static Pactum__V1__TrustReport *wait_tier(Pactum__V1__Tier tier)
{
    Pactum__V1__TrustReport *r = h_wait_tier(&h, "gov-bot", tier, 20000);

    cr_assert_not_null(r);
    cr_assert_eq(r->state->tier, tier, "tier %s, wanted %s", pk_tier_name(r->state->tier),
                 pk_tier_name(tier));
    return r;
}

/* The operator "@ops" and the arbiter "@arb", registered with the admin key. */
static void register_principals(void)
{
    cr_assert_eq(cli("principal register --id @ops --role operator --key ops.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
    cr_assert_eq(cli("principal register --id @arb --role arbiter --key arb.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
}

static void good(const char *prefix, int n)
{
    cr_assert(h_publish_events(&h, "gov-bot", &agent, prefix, n, "reply", "latency_ms", 500, "pii",
                               "none"));
}

Test(governance, containment_dispute_reentry_override_ruling_and_replay)
{
    Pactum__V1__TrustReport *r;
    uint64_t v1, v2;

    /* principals: only the admin key registers them */
    register_principals();
    cr_assert_eq(cli("principal register --id @rogue --role operator --key owner.key "
                     "--admin-key owner.key"),
                 1, "%s", out);
    cr_assert(strstr(out, "not_authorized") != NULL, "%s", out);

    cr_assert(h_agent(&h, "gov-bot", &agent, &owner), "%s", h.why);
    cr_assert(h_pact(&h, &owner, pact), "%s", h.why);

    /* a violation contains */
    good("a", 6);
    cr_assert(h_publish_events(&h, "gov-bot", &agent, "leak1", 1, "reply", "latency_ms", 500, "pii",
                               "leaked"));
    r = wait_tier(PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert(r->state->held);
    v1 = r->last_violation->vseq;
    cr_assert(r->scope && r->scope->nothing, "contained: nothing is allowed");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the owner disputes it; an operator acknowledges; time and evidence pass */
    cr_assert_eq(cli("dispute open --agent gov-bot --key owner.key --verdict %llu --reason "
                     "'the label came from a test fixture' --id d1",
                     (unsigned long long)v1),
                 0, "%s", out);
    cr_assert_eq(cli("ack --operator @ops --key ops.key --agent gov-bot --note 'looked at it'"), 0,
                 "%s", out);
    cr_assert_eq(cli("dispute rule --arbiter @ops --key ops.key --agent gov-bot --dispute d1 "
                     "--upheld --reason 'not an arbiter'"),
                 1, "an operator cannot rule: %s", out);
    pk_sleep_ms(2200);
    good("b", 6);
    /* 13 events so far, each judged by 2 clauses with a verdict each time */
    cr_assert_geq(h_wait_metric(&h, "evaluator", "pactum_evaluator_events_total", 13, 20000), 13);
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_verdicts_total", 26, 20000), 26);
    r = h_trust(&h, "gov-bot");
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED,
                 "clean, enough samples, acknowledged, but a dispute is open");
    cr_assert_eq(r->state->n_open_disputes, 1);
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the arbiter upholds it: the last criterion is met */
    cr_assert_eq(cli("dispute rule --arbiter @arb --key arb.key --agent gov-bot --dispute d1 "
                     "--upheld --reason 'the leak was real'"),
                 0, "%s", out);
    r = wait_tier(PACTUM__V1__TIER__TIER_WATCH);
    cr_assert_str_eq(r->tier_history[0]->rule, "re-entry criteria met");
    cr_assert_eq(r->tier_history[0]->n_criteria, 4);
    for (size_t i = 0; i < r->tier_history[0]->n_criteria; i++)
        cr_assert(r->tier_history[0]->criteria[i]->met, "%s",
                  r->tier_history[0]->criteria[i]->name);
    cr_assert_not(r->scope->any_action);
    cr_assert_eq(r->scope->n_actions, 1, "watch allows what the pact says: reply");
    cr_assert_str_eq(r->scope->approval[0], "kb.*");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* an override changes what is in force, not the decision */
    cr_assert_eq(cli("override --operator @ops --key ops.key --agent gov-bot --tier trusted "
                     "--expires 40d --reason 'too long'"),
                 1, "%s", out);
    cr_assert(strstr(out, "30 days") != NULL, "%s", out);
    cr_assert_eq(cli("override --operator @ops --key ops.key --agent gov-bot --tier trusted "
                     "--expires 1h --id ov1"),
                 2, "a reason is mandatory: %s", out);
    cr_assert_eq(cli("override --operator @ops --key ops.key --agent gov-bot --tier trusted "
                     "--expires 1h --id ov1 --reason 'pilot customer vouches for it'"),
                 0, "%s", out);
    r = h_trust(&h, "gov-bot");
    for (int i = 0; i < 100 && (!r->effective_by); i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "gov-bot");
    }
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_WATCH, "the decision stays visible");
    cr_assert_eq(r->effective_tier, PACTUM__V1__TIER__TIER_TRUSTED);
    cr_assert_str_eq(r->effective_by->override_id, "ov1");
    cr_assert_eq(r->n_overrides, 1);
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* an override of actions, in force for two seconds, then gone by itself */
    cr_assert_eq(cli("override --operator @ops --key ops.key --agent gov-bot --deny refunds.issue "
                     "--expires 2s --id ov2 --reason 'while finance reviews refunds'"),
                 0, "%s", out);
    r = h_trust(&h, "gov-bot");
    for (int i = 0; i < 100 && r->n_overrides < 2; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(50);
        r = h_trust(&h, "gov-bot");
    }
    cr_assert_eq(r->scope->n_denied_by_override, 1, "denied while in force");
    cr_assert_str_eq(r->scope->denied_by_override[0], "refunds.issue");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    pk_sleep_ms(2200);
    r = h_trust(&h, "gov-bot");
    cr_assert_eq(r->scope->n_denied_by_override, 0, "expired by itself");
    cr_assert_eq(r->n_overrides, 2, "an expired override stays in the history");
    cr_assert_eq(r->effective_tier, PACTUM__V1__TIER__TIER_TRUSTED, "ov1 is still in force");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* a second violation; the owner disputes it and the arbiter overturns it */
    cr_assert(h_publish_events(&h, "gov-bot", &agent, "leak2", 1, "reply", "latency_ms", 500, "pii",
                               "leaked"));
    r = wait_tier(PACTUM__V1__TIER__TIER_CONTAINED);
    v2 = r->last_violation->vseq;
    cr_assert_neq(v1, v2);
    cr_assert_eq(r->effective_tier, PACTUM__V1__TIER__TIER_CONTAINED,
                 "a new incident: the override set before it lapses");
    cr_assert_null(r->effective_by, "no override is in force over a new containment");
    cr_assert_eq(r->n_containments, 2);
    cr_assert(h_containment_timed(&h, r->containments[0], 30000), "%s", h.why);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(cli("dispute open --agent gov-bot --key owner.key --verdict %llu --reason "
                     "'the reviewer mislabelled it' --evidence 'ticket 4411' --id d2",
                     (unsigned long long)v2),
                 0, "%s", out);
    cr_assert_eq(cli("dispute rule --arbiter @arb --key arb.key --agent gov-bot --dispute d2 "
                     "--overturned --reason 'mislabelled'"),
                 0, "%s", out);
    r = wait_tier(PACTUM__V1__TIER__TIER_WATCH);
    cr_assert_eq(r->state->violations[0]->count, 1, "only the first leak still counts");
    cr_assert_eq(r->state->n_overturned, 1);
    cr_assert_eq(r->state->overturned[0], v2);
    cr_assert_eq(r->disputes[0]->record->record_case, PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING);
    cr_assert_not_null(r->disputes[0]->effect, "the ruling records what it changed");
    cr_assert_eq(r->disputes[0]->effect->tier_before, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(r->disputes[0]->effect->tier_after, PACTUM__V1__TIER__TIER_WATCH);
    cr_assert_eq(r->disputes[0]->effect->n_verdicts_removed, 1);
    cr_assert_eq(r->disputes[0]->effect->verdicts_removed[0], v2);
    cr_assert_eq(r->n_disputes, 4, "two disputes and two rulings stay in the history");
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the whole history replayed into a fresh LMDB gives the live state */
    cr_assert_eq(cli("replay --compare"), 0, "%s", out);
    cr_assert(strstr(out, "(the same)") != NULL, "%s", out);
    cr_assert_eq(cli("--json trust gov-bot"), 0, "%s", out);
    cr_assert(strstr(out, "\"effective_tier\": \"trusted\"") != NULL, "%s", out);
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

/* Seal an Ack for gov-bot signed by `who` with `kp` at `signed_ms`; send it raw. */
static Pactum__V1__GovernanceReceipt *
send_ack(const char *id, const char *who, const pk_keypair *kp, int64_t signed_ms, bool corrupt)
{
    Pactum__V1__Ack a = PACTUM__V1__ACK__INIT;
    Pactum__V1__GovernanceReceipt *r = NULL;
    uint8_t *buf, *env;
    size_t len, elen;
    natsMsg *reply = NULL;

    a.ack_id = (char *)id;
    a.agent_id = "gov-bot";
    a.note = "checked";
    a.signed_ms = signed_ms;
    cr_assert_eq(pk_pack(&a.base, &buf, &len), PK_OK);
    cr_assert_eq(
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ACK, buf, len, who, kp, &env, &elen),
        PK_OK);
    if (corrupt)
        env[elen / 2] ^= 0x01;
    if (natsConnection_Request(&reply, h.bus->nc, PK_SUBJ_GOV_SUBMIT, env, (int)elen, 5000) ==
        NATS_OK) {
        r = pactum__v1__governance_receipt__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                                   (const uint8_t *)natsMsg_GetData(reply));
        natsMsg_Destroy(reply);
    }
    free(buf);
    free(env);
    cr_assert_not_null(r, "no receipt");
    return r;
}

Test(governance, bad_and_replayed_records_are_refused_with_a_reason)
{
    Pactum__V1__GovernanceReceipt *r;
    int64_t now = pk_now_ms();
    uint64_t first_seq;
    static const struct {
        const char *id, *who;
        int key; /* 0 ops, 1 owner */
        int64_t skew_ms;
        bool corrupt;
        Pactum__V1__Reason want;
    } bad[] = {
        {"a-old", "@ops", 0, -6 * 60000, false, PACTUM__V1__REASON__REASON_TOO_OLD},
        {"a-new", "@ops", 0, 6 * 60000, false, PACTUM__V1__REASON__REASON_TOO_NEW},
        {"a-sig", "@ops", 0, 0, true, PACTUM__V1__REASON__REASON_BAD_SIGNATURE},
        {"a-who", "nobody", 0, 0, false, PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER},
        {"a-key", "@ops", 1, 0, false, PACTUM__V1__REASON__REASON_BAD_SIGNATURE},
        {"a-role", "@arb", 0, 0, false, PACTUM__V1__REASON__REASON_BAD_SIGNATURE},
        {"bad id!", "@ops", 0, 0, false, PACTUM__V1__REASON__REASON_INVALID_FIELD},
    };

    register_principals();
    cr_assert(h_agent(&h, "gov-bot", &agent, &owner), "%s", h.why);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = send_ack(bad[i].id, bad[i].who, bad[i].key ? &owner : &ops, now + bad[i].skew_ms,
                     bad[i].corrupt);
        cr_assert_not(r->ok, "%s accepted", bad[i].id);
        cr_assert_eq(r->reason, bad[i].want, "%s: %s (%s)", bad[i].id, pk_reason_name(r->reason),
                     r->message);
        pactum__v1__governance_receipt__free_unpacked(r, NULL);
    }
    /* an arbiter signing with its own key is still not an operator */
    r = send_ack("a-arb", "@arb", &arb, now, false);
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, "%s", r->message);
    pactum__v1__governance_receipt__free_unpacked(r, NULL);

    /* a good record, then the very same bytes again: stored once */
    r = send_ack("a-good", "@ops", &ops, now, false);
    cr_assert(r->ok, "%s", r->message);
    first_seq = r->seq;
    pactum__v1__governance_receipt__free_unpacked(r, NULL);
    r = send_ack("a-good", "@ops", &ops, now, false);
    cr_assert(r->ok, "%s", r->message);
    cr_assert_eq(r->seq, first_seq, "the replay is not stored again");
    cr_assert(strstr(r->message, "already recorded") != NULL, "%s", r->message);
    pactum__v1__governance_receipt__free_unpacked(r, NULL);

    cr_assert_eq(
        h_wait_metric(&h, "ingest", "pactum_ingest_governance_total{result=\"rejected\"}", 8, 5000),
        8, "every refusal is counted, once");
    cr_assert_eq(h_stop_services(&h), 0, "no service crashed");
}

Test(governance, no_agent_can_take_a_principals_id)
{
    pk_keypair squatter;
    Pactum__V1__RegistryReceipt *r;

    h_keypair(&squatter, 36);
    /* an owner tries to take the id the admin will give its operator */
    r = h_register_agent(&h, "@ops", &squatter, &owner);
    cr_assert_not_null(r);
    cr_assert_not(r->ok, "an agent took a principal's id");
    cr_assert_eq(r->reason, PACTUM__V1__REASON__REASON_INVALID_FIELD, "%s", r->message);
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    /* an agent with the same name without '@' is an agent, and blocks no one */
    cr_assert(h_agent(&h, "ops", &squatter, &owner), "%s", h.why);
    register_principals();
    /* a principal id without '@' would live among agent ids: refused, saying why */
    cr_assert_eq(cli("principal register --id ops2 --role operator --key ops.key "
                     "--admin-key admin.key"),
                 1, "%s", out);
    cr_assert(strstr(out, "must begin with '@'") != NULL, "%s", out);
}
