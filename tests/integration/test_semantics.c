/*
 * The answers a buyer and an operator rely on, end to end on a real suite:
 * authorize agrees with the evaluator (a clause's `when`, spend per window),
 * reputation decays on the clock, re-entry happens without more events and
 * caps the tier, a pact applies from registration, an agent without a pact
 * is not unlimited, an event dispute takes its verdicts out, peers cannot
 * contain, governance records cannot be flooded, approvals are one-time
 * and checked by the evaluator, and a scorer that keeps few states decoded
 * scores a batch about many agents as one that keeps them all. Each test
 * ends with a replay of the history that must give the live state.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair agent, owner, ops, arb, rev;
static char token[160];
static char out[65536];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)

static void key_file(const char *name, const pk_keypair *kp)
{
    cr_assert(h_key_file(&h, name, kp), "%s", h.why);
}

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    cr_assert(h_client(&h, "@buyer", token, sizeof(token)), "%s", h.why);
    h_keypair(&ops, 71);
    h_keypair(&arb, 72);
    h_keypair(&rev, 73);
    key_file("admin", &h.admin);
    key_file("ops", &ops);
    key_file("arb", &arb);
    key_file("rev", &rev);
    cr_assert_eq(cli("principal register --id @ops --role operator --key ops.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
    cr_assert_eq(cli("principal register --id @arb --role arbiter --key arb.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
    cr_assert_eq(cli("principal register --id @rev --role human --key rev.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(semantics, .init = setup, .fini = teardown, .timeout = 240);

/* Register agent id (keys from seed) with pact, key files <id>.key and owner.key. */
static void agent_with(const char *id, uint8_t seed, const char *pact)
{
    char name[64];

    cr_assert(h_agent_with_pact(&h, id, seed, &agent, &owner, pact), "%s", h.why);
    snprintf(name, sizeof(name), "%s", id);
    key_file(name, &agent);
    key_file("owner", &owner);
}

typedef struct ask {
    const char *action, *tool, *resource, *kind;
    double amount;
} ask;

static Pactum__V1__AuthorizeDecision *authorize(const char *who, ask a)
{
    Pactum__V1__AuthorizeRequest q = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    Pactum__V1__AuthorizeDecision *d;

    q.client_token = token;
    q.agent_id = (char *)who;
    q.action = (char *)a.action;
    q.tool = (char *)(a.tool ? a.tool : "");
    q.resource = (char *)(a.resource ? a.resource : "");
    q.kind = (char *)(a.kind ? a.kind : "");
    q.amount = a.amount;
    q.currency = a.amount > 0 ? "USD" : "";
    d = (Pactum__V1__AuthorizeDecision *)h_ask(&h, PK_SUBJ_ORACLE_AUTHORIZE, &q.base,
                                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_DECISION);
    cr_assert_not_null(d, "no signed decision");
    cr_assert_eq(d->status, PACTUM__V1__QUERY_STATUS__QUERY_OK, "%s", d->message);
    return d;
}

static const char *last_reason(const Pactum__V1__AuthorizeDecision *d)
{
    return d->n_reasons ? d->reasons[d->n_reasons - 1] : "";
}

static Pactum__V1__Permit permit_of(const char *who, ask a, char *why, size_t len)
{
    Pactum__V1__AuthorizeDecision *d = authorize(who, a);
    Pactum__V1__Permit p = d->permit;

    snprintf(why, len, "%s", last_reason(d));
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    return p;
}

/* Wait until the evaluator has looked at n events in all. */
static void judged(long long n)
{
    cr_assert_geq(h_wait_metric(&h, "evaluator", "pactum_evaluator_events_total", n, 20000), n,
                  "the evaluator did not look at %lld events", n);
}

static uint64_t violations(const Pactum__V1__TrustState *s)
{
    uint64_t n = 0;

    for (size_t i = 0; i < s->n_violations; i++)
        n += s->violations[i]->count;
    return n;
}

static void replay_agrees(void)
{
    pk_sleep_ms(1500);
    cr_assert_eq(cli("replay --compare"), 0, "%s", out);
    cr_assert(strstr(out, "(the same)") != NULL, "%s", out);
}

/* Verdicts the evaluator has published in all. */
static long long verdicts_published(void)
{
    static const char *const outcomes[] = {"pass", "fail", "insufficient", "stale"};
    long long n = 0;

    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        char series[96];
        long long v;
        snprintf(series, sizeof(series), "pactum_evaluator_verdicts_total{outcome=\"%s\"}",
                 outcomes[i]);
        v = h_metric(&h, "evaluator", series);
        n += v > 0 ? v : 0;
    }
    return n;
}

#define ALL_TIERS_BY_CLAUSES "\"tiers\":{\"trusted\":{},\"standard\":{},\"watch\":{}}"

static const char *pay_pact =
    "{\"pactum\":1,\"id\":\"pay\",\"agent\":\"pay-bot\",\"clauses\":["
    "{\"id\":\"db\",\"promise\":\"reads only the ledger database\",\"severity\":\"high\","
    "\"kind\":\"scope\",\"when\":{\"field\":\"tool\",\"eq\":\"db.read\"},\"resources\":[\"ledger\"]"
    "},"
    "{\"id\":\"money\",\"promise\":\"refunds up to 500 USD each, 2000 an hour\","
    "\"severity\":\"critical\",\"kind\":\"scope\",\"when\":{\"field\":\"action\",\"eq\":"
    "\"refund.issue\"},\"spend\":{\"currency\":\"USD\",\"per_action\":500,\"per_window\":2000,"
    "\"window\":\"1h\"}}],"
    "\"governance\":{" ALL_TIERS_BY_CLAUSES "}}";

Test(semantics, authorize_judges_as_the_evaluator_does)
{
    char why[512];
    Pactum__V1__TrustReport *r;

    agent_with("pay-bot", 81, pay_pact);
    /* a clause written for db.read says nothing about another tool */
    cr_assert_eq(
        permit_of("pay-bot", (ask){.action = "search", .tool = "search.web"}, why, sizeof(why)),
        PACTUM__V1__PERMIT__PERMIT_ALLOW, "%s", why);
    cr_assert_eq(permit_of("pay-bot",
                           (ask){.action = "search", .tool = "db.read", .resource = "customers"},
                           why, sizeof(why)),
                 PACTUM__V1__PERMIT__PERMIT_DENY, "%s", why);
    cr_assert(strstr(why, "pay/db") != NULL, "%s", why);
    cr_assert_eq(permit_of("pay-bot",
                           (ask){.action = "search", .tool = "db.read", .resource = "ledger"}, why,
                           sizeof(why)),
                 PACTUM__V1__PERMIT__PERMIT_ALLOW, "%s", why);
    /* and the evaluator agrees: the search is no violation */
    cr_assert_eq(cli("event publish --agent pay-bot --key pay-bot.key --kind search --action "
                     "search --tool search.web"),
                 0, "%s", out);
    /* four refunds of 450 against 2000 an hour */
    cr_assert_eq(cli("event publish --agent pay-bot --key pay-bot.key --kind refund --action "
                     "refund.issue --amount 450 --currency USD --count 4 --id r"),
                 0, "%s", out);
    judged(5);
    cr_assert_eq(
        permit_of("pay-bot", (ask){.action = "refund.issue", .amount = 450}, why, sizeof(why)),
        PACTUM__V1__PERMIT__PERMIT_DENY, "a fifth would break the window: %s", why);
    cr_assert(strstr(why, "within the window") != NULL, "%s", why);
    cr_assert_eq(
        permit_of("pay-bot", (ask){.action = "refund.issue", .amount = 150}, why, sizeof(why)),
        PACTUM__V1__PERMIT__PERMIT_ALLOW, "150 fits: %s", why);
    r = h_trust(&h, "pay-bot");
    cr_assert_eq(violations(r->state), 0, "nothing so far broke the pact");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* the refund authorize refused is a violation when done */
    cr_assert_eq(cli("event publish --agent pay-bot --key pay-bot.key --kind refund --action "
                     "refund.issue --amount 450 --currency USD --id r-5"),
                 0, "%s", out);
    r = h_wait_tier(&h, "pay-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(violations(r->state), 1);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    replay_agrees();
}

Test(semantics, a_pact_applies_from_registration_and_no_pact_is_no_licence)
{
    char why[512];
    Pactum__V1__TrustReport *r;
    pk_keypair a2, o2;

    agent_with("kb-bot", 83,
               "{\"pactum\":1,\"id\":\"kb\",\"agent\":\"kb-bot\",\"clauses\":["
               "{\"id\":\"fresh\",\"promise\":\"answers from data under a day old\","
               "\"severity\":\"medium\",\"kind\":\"objective\",\"metric\":\"data_age_s\","
               "\"aggregate\":\"max\",\"window\":\"1h\",\"op\":\"<=\",\"threshold\":86400}],"
               "\"governance\":{\"tiers\":{\"watch\":{\"actions\":[\"kb.read\"]}}}}");
    r = h_trust(&h, "kb-bot");
    cr_assert_eq(r->state->evidence, 0, "no verdict yet");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(permit_of("kb-bot", (ask){.action = "kb.read"}, why, sizeof(why)),
                 PACTUM__V1__PERMIT__PERMIT_ALLOW, "%s", why);
    cr_assert_eq(permit_of("kb-bot", (ask){.action = "refund.issue"}, why, sizeof(why)),
                 PACTUM__V1__PERMIT__PERMIT_DENY,
                 "the pact's watch tier allows kb.read only, from registration: %s", why);

    /* an agent bound by no pact gets no blanket yes */
    cr_assert(h_agent_with_pact(&h, "bare-bot", 85, &a2, &o2, NULL), "%s", h.why);
    cr_assert_neq(permit_of("bare-bot", (ask){.action = "db.drop_all_tables"}, why, sizeof(why)),
                  PACTUM__V1__PERMIT__PERMIT_ALLOW, "%s", why);
    cr_assert(strstr(why, "no pact") != NULL, "%s", why);
}

static const char *leak_pact =
    "{\"pactum\":1,\"id\":\"re\",\"agent\":\"re-bot\",\"counterparties\":[\"buyer-bot\"],"
    "\"clauses\":["
    "{\"id\":\"latency\",\"promise\":\"fast\",\"severity\":\"medium\",\"kind\":\"objective\","
    "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<=\","
    "\"threshold\":2000,\"min_samples\":3},"
    "{\"id\":\"no-pii\",\"promise\":\"no leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\","
    "\"window\":\"1d\",\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"},"
    "\"sources\":{\"self\":0.5,\"peer\":1}}],"
    "\"governance\":{\"half_life\":\"1m\",\"min_evidence\":5,"
    "\"reentry\":[{\"from\":\"contained\",\"to\":\"watch\",\"clean\":\"1s\",\"min_samples\":3}]}}";

static void good(const char *prefix, int n)
{
    cr_assert(h_publish_events(&h, "re-bot", &agent, prefix, n, "reply", "latency_ms", 300, "pii",
                               "none"));
}

Test(semantics, reputation_decays_on_the_clock_without_input)
{
    Pactum__V1__TrustReport *r;
    uint32_t lower;
    int64_t clock;

    agent_with("re-bot", 87, leak_pact);
    good("g", 20);
    judged(20);
    r = h_trust(&h, "re-bot");
    for (int i = 0; i < 100 && r->state->evidence < 40; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "re-bot");
    }
    lower = r->state->lower_ppm;
    clock = r->state->clock_ms;
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* silence: with a one-minute half-life the bound must fall by itself */
    pk_sleep_ms(5000);
    r = h_trust(&h, "re-bot");
    cr_assert_gt(r->state->clock_ms, clock + 2000, "the scorer's clock did not move");
    cr_assert_lt(r->state->lower_ppm, lower, "the lower bound did not decay (%u, then %u)", lower,
                 r->state->lower_ppm);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    replay_agrees();
}

Test(semantics, reentry_comes_on_time_and_caps_the_tier)
{
    Pactum__V1__TrustReport *r;
    int64_t left;

    agent_with("re-bot", 87, leak_pact);
    good("g", 5);
    cr_assert(h_publish_events(&h, "re-bot", &agent, "leak", 1, "reply", "latency_ms", 300, "pii",
                               "leaked"));
    r = h_wait_tier(&h, "re-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_eq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    good("h", 3);
    /* no event after these: the verdicts and the clock must carry the agent out */
    r = h_trust(&h, "re-bot");
    for (int i = 0; i < 80 && r->state->tier == PACTUM__V1__TIER__TIER_CONTAINED; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "re-bot");
    }
    cr_assert_neq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED, "still contained");
    cr_assert_str_eq(r->tier_history[0]->rule, "re-entry criteria met");
    /* `to` is the best it may get: the score, low after a leak, may say worse */
    cr_assert_geq(r->state->tier, PACTUM__V1__TIER__TIER_WATCH, "re-entered above watch: %s",
                  pk_tier_name(r->state->tier));
    left = r->state->tier_since_ms;
    cr_assert_geq(r->state->promote_after_ms, left + 3599000, "an hour before any promotion");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* a long clean run does not take it above the re-entry tier within the dwell */
    good("i", 30);
    judged(39);
    pk_sleep_ms(1500);
    r = h_trust(&h, "re-bot");
    cr_assert_geq(r->state->tier, PACTUM__V1__TIER__TIER_WATCH, "climbed to %s",
                  pk_tier_name(r->state->tier));
    pactum__v1__trust_report__free_unpacked(r, NULL);
    replay_agrees();
}

Test(semantics, an_overturned_event_dispute_takes_its_verdicts_out)
{
    Pactum__V1__TrustReport *r;
    Pactum__V1__FiguresQuery q = PACTUM__V1__FIGURES_QUERY__INIT;
    Pactum__V1__GovernanceFigures *f;
    uint64_t n = 0;

    agent_with("re-bot", 87, leak_pact);
    good("g", 5);
    cr_assert(h_publish_events(&h, "re-bot", &agent, "leak", 1, "reply", "latency_ms", 300, "pii",
                               "leaked"));
    r = h_wait_tier(&h, "re-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert_eq(violations(r->state), 1);
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(cli("dispute open --agent re-bot --key owner.key --event leak-0 --reason "
                     "'a test fixture' --id d1"),
                 0, "%s", out);
    cr_assert_eq(cli("dispute rule --arbiter @arb --key arb.key --agent re-bot --dispute d1 "
                     "--overturned --reason 'fixture'"),
                 0, "%s", out);
    r = h_trust(&h, "re-bot");
    for (int i = 0; i < 100 && r->state->n_overturned_events == 0; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "re-bot");
    }
    cr_assert_eq(r->state->n_overturned_events, 1);
    cr_assert_str_eq(r->state->overturned_events[0], "leak-0");
    cr_assert_eq(violations(r->state), 0, "the overturned event's violation left the score");
    cr_assert_neq(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_geq(r->disputes[0]->effect->n_verdicts_removed, 1, "its verdicts were removed");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    q.agent_id = "re-bot";
    f = (Pactum__V1__GovernanceFigures *)h_ask(&h, PK_SUBJ_ORACLE_FIGURES, &q.base,
                                               PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_FIGURES);
    cr_assert_not_null(f);
    for (size_t i = 0; i < f->n_violations; i++)
        n += f->violations[i]->count;
    cr_assert_eq(n, 0, "figures agree with trust");
    pactum__v1__governance_figures__free_unpacked(f, NULL);
    replay_agrees();
}

Test(semantics, peers_cannot_contain_and_strangers_cannot_report)
{
    pk_keypair buyer, bo, stranger, so;
    Pactum__V1__TrustReport *r;

    agent_with("re-bot", 87, leak_pact);
    cr_assert(h_agent_with_pact(&h, "buyer-bot", 91, &buyer, &bo, NULL), "%s", h.why);
    cr_assert(h_agent_with_pact(&h, "stranger-bot", 93, &stranger, &so, NULL), "%s", h.why);
    key_file("buyer-bot", &buyer);
    key_file("stranger-bot", &stranger);
    good("g", 10);
    judged(10);
    /* a stranger's word is refused */
    cr_assert_eq(cli("event publish --agent stranger-bot --key stranger-bot.key --about re-bot "
                     "--kind reply --label pii=leaked"),
                 1, "%s", out);
    cr_assert(strstr(out, "not_authorized") != NULL, "%s", out);
    /* a counterparty's word counts, but alone it demotes one tier, no more */
    cr_assert_eq(cli("event publish --agent buyer-bot --key buyer-bot.key --about re-bot "
                     "--kind reply --label pii=leaked --id claim-1"),
                 0, "%s", out);
    judged(11);
    pk_sleep_ms(1500);
    r = h_trust(&h, "re-bot");
    cr_assert_eq(violations(r->state), 1, "the counterparty's report was judged");
    cr_assert_lt(r->state->tier, PACTUM__V1__TIER__TIER_CONTAINED, "one peer contained the agent");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* a dispute about re-bot by someone the pact does not name is refused */
    cr_assert_neq(cli("dispute open --agent re-bot --key stranger-bot.key --as stranger-bot "
                      "--verdict last --reason 'I say so'"),
                  0, "%s", out);
    cr_assert(strstr(out, "not_authorized") != NULL, "refused for another reason: %s", out);
    replay_agrees();
}

Test(semantics, governance_records_cannot_be_flooded)
{
    agent_with("re-bot", 87, leak_pact);
    good("g", 5);
    cr_assert(h_publish_events(&h, "re-bot", &agent, "leak", 1, "reply", "latency_ms", 300, "pii",
                               "leaked"));
    pactum__v1__trust_report__free_unpacked(
        h_wait_tier(&h, "re-bot", PACTUM__V1__TIER__TIER_CONTAINED, 20000), NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(cli("dispute open --agent re-bot --key owner.key --verdict last --reason r "
                         "--id d%d",
                         i),
                     0, "%s", out);
    cr_assert_eq(cli("dispute open --agent re-bot --key owner.key --verdict last --reason r "
                     "--id d9"),
                 1, "%s", out);
    cr_assert(strstr(out, "too_many_disputes") != NULL, "%s", out);
    cr_assert_eq(cli("dispute rule --arbiter @arb --key arb.key --agent re-bot --dispute "
                     "no-such --upheld --reason r"),
                 1, "%s", out);
    cr_assert(strstr(out, "no_such_dispute") != NULL, "%s", out);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(cli("override --operator @ops --key ops.key --agent re-bot --deny x%d "
                         "--expires 1h --reason r --id o%d",
                         i, i),
                     0, "%s", out);
    cr_assert_eq(cli("override --operator @ops --key ops.key --agent re-bot --deny y "
                     "--expires 1h --reason r --id o9"),
                 1, "%s", out);
    cr_assert(strstr(out, "too_many_overrides") != NULL, "%s", out);
    replay_agrees();
}

static const char *approval_pact =
    "{\"pactum\":1,\"id\":\"ap\",\"agent\":\"ap-bot\",\"clauses\":["
    "{\"id\":\"money\",\"promise\":\"refunds up to 500 USD; above 100 with a person's approval\","
    "\"severity\":\"high\",\"kind\":\"scope\",\"actions\":[\"refund.issue\",\"reply\"],"
    "\"spend\":{\"currency\":\"USD\",\"per_action\":500,\"approval_above\":100}}],"
    "\"governance\":{" ALL_TIERS_BY_CLAUSES "}}";

Test(semantics, an_approval_lets_one_request_through_and_is_checked)
{
    Pactum__V1__AuthorizeDecision *d;
    Pactum__V1__TrustReport *r;
    char decision[128], approval[128];

    agent_with("ap-bot", 95, approval_pact);
    d = authorize("ap-bot", (ask){.action = "refund.issue", .amount = 200});
    cr_assert_eq(d->permit, PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL, "%s", last_reason(d));
    snprintf(decision, sizeof(decision), "%s", d->decision_id);
    pactum__v1__authorize_decision__free_unpacked(d, NULL);
    /* the agent cannot sign a reviewer's approval */
    cr_assert_eq(cli("approve --decision %s --agent ap-bot --action refund.issue --amount 200 "
                     "--currency USD --approver @rev --key ap-bot.key --id forged -o forged.ap",
                     decision),
                 0, "%s", out);
    cr_assert_eq(cli("authorize --agent ap-bot --action refund.issue --amount 200 --currency USD "
                     "--approval forged.ap --token '%s'",
                     token),
                 1, "a forged approval let the request through: %s", out);
    cr_assert_eq(cli("approve --decision %s --agent ap-bot --action refund.issue --amount 200 "
                     "--currency USD --approver @rev --key rev.key --id ok-1 -o ok.ap",
                     decision),
                 0, "%s", out);
    cr_assert_eq(cli("--json authorize --agent ap-bot --action refund.issue --amount 200 "
                     "--currency USD --approval ok.ap --token '%s'",
                     token),
                 0, "%s", out);
    cr_assert(strstr(out, "\"approval_id\": \"ok-1\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"approved_by\": \"@rev\"") != NULL, "%s", out);
    cr_assert_eq(cli("authorize --agent ap-bot --action refund.issue --amount 200 --currency USD "
                     "--approval ok.ap --token '%s'",
                     token),
                 1, "an approval is used once: %s", out);
    snprintf(approval, sizeof(approval), "approval=ok-1");
    /* the refund done with that approval keeps the promise; one claiming a made-up one does not */
    cr_assert_eq(cli("event publish --agent ap-bot --key ap-bot.key --kind refund --action "
                     "refund.issue --amount 200 --currency USD --label %s --id paid-1",
                     approval),
                 0, "%s", out);
    judged(1);
    pk_sleep_ms(1000);
    r = h_trust(&h, "ap-bot");
    cr_assert_eq(violations(r->state), 0, "an approved refund was judged a violation");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* one approval, one refund: a second refund naming it is not approved */
    cr_assert_eq(cli("event publish --agent ap-bot --key ap-bot.key --kind refund --action "
                     "refund.issue --amount 200 --currency USD --label %s --id paid-again",
                     approval),
                 0, "%s", out);
    judged(2);
    r = h_trust(&h, "ap-bot");
    for (int i = 0; i < 50 && violations(r->state) == 0; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "ap-bot");
    }
    cr_assert_eq(violations(r->state), 1, "an approval was used twice");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(cli("event publish --agent ap-bot --key ap-bot.key --kind refund --action "
                     "refund.issue --amount 200 --currency USD --label approval=made-up --id "
                     "paid-2"),
                 0, "%s", out);
    judged(3);
    r = h_trust(&h, "ap-bot");
    for (int i = 0; i < 50 && violations(r->state) < 2; i++) {
        pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "ap-bot");
    }
    cr_assert_eq(violations(r->state), 2, "a made-up approval was believed");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_eq(h_metric(&h, "evaluator", "pactum_evaluator_false_approvals_total"), 2);
    replay_agrees();
}

/* --- the example pacts, kept, slowly broken and broken outright -------------------- */

typedef struct behaviour {
    const char *name;  /* keep, degrade, break */
    const char *calls; /* CLI event publish argument lists, ';'-separated, %s = the agent */
} behaviour;

typedef struct example {
    const char *file, *pact_id, *agent_id;
    behaviour b[3];
} example;

static const example examples[] = {
    {"examples/pacts/payments-agent.json",
     "payments-agent",
     "payments-agent-1",
     {{"keep", "--kind lookup --action payments.lookup --metric latency_ms=180 --count 120 "
               "--batch 40;--kind refund --action payments.refund --amount 40 --currency USD "
               "--label account_allowlisted=true --count 5"},
      {"degrade", "--kind lookup --action payments.lookup --metric latency_ms=180 --count 60 "
                  "--batch 30;--kind lookup --action payments.lookup --metric latency_ms=2400 "
                  "--count 60 --batch 30"},
      {"break", "--kind lookup --action payments.lookup --metric latency_ms=180 --count 60 "
                "--batch 30;--kind refund --action payments.refund --amount 40 --currency USD "
                "--label account_allowlisted=false"}}},
    {"examples/pacts/coding-agent.json",
     "coding-agent",
     "coding-agent-1",
     {{"keep", "--kind heartbeat;--kind test_run --tool tests.run --resource repo:acme/web "
               "--metric passed=1 --metric tests_failed=0 --metric tests_run=200 --count 60 "
               "--batch 30"},
      {"degrade", "--kind heartbeat;--kind test_run --tool tests.run --resource repo:acme/web "
                  "--metric passed=1 --metric tests_failed=1 --metric tests_run=200 --count 40 "
                  "--batch 20;--kind test_run --tool tests.run --resource repo:acme/web "
                  "--metric passed=1 --metric tests_failed=12 --metric tests_run=200 --count 40 "
                  "--batch 20"},
      {"break", "--kind heartbeat;--kind test_run --tool tests.run --resource repo:acme/web "
                "--metric passed=1 --metric tests_failed=0 --metric tests_run=200 --count 30 "
                "--batch 30;--kind push --action git.push --tool git.push --resource "
                "repo:acme/web --label branch=main --label force=true"}}},
    {"examples/pacts/data-retrieval-agent.json",
     "data-retrieval-agent",
     "data-retrieval-agent-1",
     {{"keep", "--kind answer --action query --resource dataset:sales.q1 --metric data_age_s=60 "
               "--metric rows_empty=0 --metric rows_requested=10 --count 80 --batch 40"},
      {"degrade", "--kind answer --action query --resource dataset:sales.q1 --metric "
                  "data_age_s=60 --metric rows_empty=0 --metric rows_requested=10 --count 40 "
                  "--batch 40;--kind answer --action query --resource dataset:sales.q1 --metric "
                  "data_age_s=7200 --metric rows_empty=0 --metric rows_requested=10 --count 40 "
                  "--batch 40"},
      {"break", "--kind answer --action query --resource dataset:sales.q1 --metric "
                "data_age_s=60 --metric rows_empty=0 --metric rows_requested=10 --count 40 "
                "--batch 40;--kind answer --action query --resource dataset:sales.q1 "
                "--label classification=restricted"}}},
};

/* The pact text of file with its pact and agent ids replaced by `name`. */
static char *pact_for(const example *x, const char *name)
{
    char *text = h_source_file(x->file), *doc = calloc(1, strlen(text) + 256), *w = doc;
    const char *p = text;
    char from[2][96];

    cr_assert_not_null(text);
    snprintf(from[0], sizeof(from[0]), "\"id\": \"%s\"", x->pact_id);
    snprintf(from[1], sizeof(from[1]), "\"agent\": \"%s\"", x->agent_id);
    while (*p) {
        if (strncmp(p, from[0], strlen(from[0])) == 0) {
            w += sprintf(w, "\"id\": \"%s\"", name);
            p += strlen(from[0]);
        } else if (strncmp(p, from[1], strlen(from[1])) == 0) {
            w += sprintf(w, "\"agent\": \"%s\"", name);
            p += strlen(from[1]);
        } else {
            *w++ = *p++;
        }
    }
    free(text);
    return doc;
}

static Pactum__V1__TrustReport *settled(const char *name)
{
    long long before = -1, now = h_metric(&h, "scorer", "pactum_scorer_verdicts_total");

    /* settled: no new verdict for a second (bounded: 30 s) */
    for (int i = 0; i < 30 && now != before; i++) {
        pk_sleep_ms(1000);
        before = now;
        now = h_metric(&h, "scorer", "pactum_scorer_verdicts_total");
    }
    pk_sleep_ms(500);
    return h_trust(&h, name);
}

Test(semantics, the_example_pacts_move_kept_degraded_and_broken_agents_as_promised, .timeout = 600)
{
    uint8_t seed = 101;

    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
        Pactum__V1__Tier tiers[3];
        uint64_t v[3];
        uint32_t lower[3];

        for (int k = 0; k < 3; k++) {
            const behaviour *b = &examples[i].b[k];
            char name[64], *pact, *calls, *save = NULL;
            Pactum__V1__TrustReport *r;

            snprintf(name, sizeof(name), "%s-%s", examples[i].pact_id, b->name);
            pact = pact_for(&examples[i], name);
            cr_assert(h_agent_with_pact(&h, name, seed, &agent, &owner, pact), "%s: %s", name,
                      h.why);
            seed += 2;
            free(pact);
            key_file(name, &agent);
            calls = strdup(b->calls);
            for (char *c = strtok_r(calls, ";", &save); c; c = strtok_r(NULL, ";", &save))
                cr_assert_neq(cli("event publish --agent %s --key %s.key %s", name, name, c), 2,
                              "%s", out);
            free(calls);
            r = settled(name);
            tiers[k] = r->state->tier;
            lower[k] = r->state->lower_ppm;
            v[k] = violations(r->state);
            printf("tier path %-28s %-8s lower %.3f, %llu evaluations, %llu violations:", name,
                   b->name, r->state->lower_ppm / 1e6, (unsigned long long)r->state->evidence,
                   (unsigned long long)v[k]);
            for (size_t t = r->n_tier_history; t-- > 0;)
                printf(" %s→%s (%s)", pk_tier_name(r->tier_history[t]->from),
                       pk_tier_name(r->tier_history[t]->to), r->tier_history[t]->rule);
            printf(" now %s\n", pk_tier_name(r->state->tier));
            pactum__v1__trust_report__free_unpacked(r, NULL);
        }
        cr_assert_eq(v[0], 0, "%s: the agent that kept the pact has violations", examples[i].file);
        cr_assert_leq(tiers[0], PACTUM__V1__TIER__TIER_WATCH, "%s: kept, but %s", examples[i].file,
                      pk_tier_name(tiers[0]));
        cr_assert_gt(v[1], 0, "%s: the degrading agent broke nothing", examples[i].file);
        cr_assert(tiers[1] > tiers[0] || lower[1] < lower[0],
                  "%s: degrading is no worse than keeping", examples[i].file);
        cr_assert_geq(tiers[2], PACTUM__V1__TIER__TIER_CONTAINED,
                      "%s: a critical clause broken, and the agent is %s", examples[i].file,
                      pk_tier_name(tiers[2]));
    }
    fflush(stdout);
}

/*
 * A decoded trust state is large, so the scorer keeps --states of them at once while it
 * computes a batch and writes the one used longest ago into the batch's writes to make room.
 * A batch that names 16 agents in turn, three times, under --states 2: every agent's state
 * is written out and read back twice within the batch, and must end as if it had stayed.
 */
Test(semantics, a_scorer_keeping_two_states_decoded_scores_many_agents_as_if_it_kept_all)
{
    static const char *const two[] = {"PACTUM_SCORER_STATES=2", NULL};
    enum { AGENTS = 16, ROUNDS = 3 };
    pk_keypair keys[AGENTS];
    char id[32], pact[512];
    long long verdicts, stable;

    /* the scorer stops, so that what the evaluator publishes waits for one batch */
    cr_assert_eq(h_stop_pid(h.svc_pid[2], SIGTERM, 15000), 0, "the scorer did not stop cleanly");
    h.svc_pid[2] = 0;
    for (int i = 0; i < AGENTS; i++) {
        snprintf(id, sizeof(id), "many-%02d", i);
        snprintf(pact, sizeof(pact),
                 "{\"pactum\":1,\"id\":\"many-%02d\",\"agent\":\"%s\",\"clauses\":[{\"id\":"
                 "\"leak\",\"promise\":\"never leaks\",\"severity\":\"low\",\"kind\":"
                 "\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"kind\",\"eq\":"
                 "\"leak\"}}]}",
                 i, id);
        cr_assert(h_agent_with_pact(&h, id, (uint8_t)(100 + i), &keys[i], &owner, pact), "%s",
                  h.why);
    }
    /* agent i leaks in the rounds r with r + i odd: even agents once, odd ones twice */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < AGENTS; i++) {
            char prefix[16];
            snprintf(id, sizeof(id), "many-%02d", i);
            snprintf(prefix, sizeof(prefix), "r%d", r);
            cr_assert(h_publish_events(&h, id, &keys[i], prefix, 1, (r + i) % 2 ? "leak" : "reply",
                                       NULL, 0, NULL, NULL));
        }
    }
    judged(AGENTS * ROUNDS);
    /* every verdict is published (the count holds still) before the scorer comes back */
    verdicts = verdicts_published();
    for (int i = 0; i < 50; i++) {
        pk_sleep_ms(200);
        stable = verdicts;
        if ((verdicts = verdicts_published()) == stable && verdicts > 0)
            break;
    }
    cr_assert_geq(verdicts, AGENTS / 2 + AGENTS / 2 * 2,
                  "%lld verdicts: one for every leak at least", verdicts);
    cr_assert(h_start_service(&h, 2, two), "the scorer did not start again");
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_verdicts_total", verdicts, 60000),
                  verdicts, "the scorer did not take every verdict");
    cr_assert_gt(h_metric(&h, "scorer", "pactum_scorer_states_spilled_total"), 0,
                 "no state was written out to make room: the bound was not exercised");
    for (int i = 0; i < AGENTS; i++) {
        Pactum__V1__TrustReport *rep;
        uint64_t want = i % 2 ? 2 : 1;
        int64_t deadline = pk_mono_ms() + 20000;
        snprintf(id, sizeof(id), "many-%02d", i);
        for (;;) {
            rep = h_trust(&h, id);
            cr_assert_not_null(rep);
            if ((rep->state && violations(rep->state) == want) || pk_mono_ms() > deadline)
                break;
            pactum__v1__trust_report__free_unpacked(rep, NULL);
            pk_sleep_ms(100);
        }
        cr_assert(rep->state && violations(rep->state) == want,
                  "%s: %llu violations, not %llu: a state written out and read back lost some", id,
                  rep->state ? (unsigned long long)violations(rep->state) : 0ULL,
                  (unsigned long long)want);
        pactum__v1__trust_report__free_unpacked(rep, NULL);
    }
    replay_agrees();
}
