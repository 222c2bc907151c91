/* Authorize: allow, deny or needs-approval on every tier, with overrides and scope clauses. */
#include <criterion/criterion.h>
#include <string.h>

#include "pk/authorize.h"

#define ALLOW   PACTUM__V1__PERMIT__PERMIT_ALLOW
#define DENY    PACTUM__V1__PERMIT__PERMIT_DENY
#define APPROVE PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL

static const char *doc =
    "{\"pactum\":1,\"id\":\"shop\",\"agent\":\"bot\",\"clauses\":[{\"id\":\"scope\","
    "\"promise\":\"replies, refunds up to 100 USD, the knowledge base\",\"severity\":\"high\","
    "\"kind\":\"scope\",\"actions\":[\"reply\",\"refund.*\",\"kb.*\"],"
    "\"resources\":[\"orders/*\"],\"spend\":{\"currency\":\"USD\",\"per_action\":100}}]}";

static pk_pact *pact;
static pk_governance gov;
static Pactum__V1__TrustState state;
static Pactum__V1__Override ov[4], *ovp[4];

static void setup(void)
{
    pk_lint l = {0};

    cr_assert_eq(pk_pact_parse(doc, strlen(doc), &pact, &l), PK_OK, "%s", l.n ? l.msgs[0] : "");
    pk_governance_defaults(&gov);
    pactum__v1__trust_state__init(&state);
    state.agent_id = "bot";
    state.overrides = ovp;
    for (int i = 0; i < 4; i++) {
        pactum__v1__override__init(&ov[i]);
        ovp[i] = &ov[i];
    }
}

static void teardown(void)
{
    pk_pact_free(pact);
    pk_governance_free(&gov);
}

TestSuite(authorize, .init = setup, .fini = teardown);

static pk_authz ask(Pactum__V1__Tier tier, const char *action, double amount, const char *currency,
                    const char *resource)
{
    Pactum__V1__AuthorizeRequest r = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    pk_pact *pacts[1] = {pact};
    pk_authz_input in = {&state, &gov, pacts, 1, &r, 1000000};
    pk_authz a;

    state.tier = tier;
    r.agent_id = "bot";
    r.action = (char *)action;
    r.amount = amount;
    r.currency = (char *)currency;
    r.resource = (char *)resource;
    pk_authorize(&in, &a);
    return a;
}

static bool said(const pk_authz *a, const char *text)
{
    for (int i = 0; i < a->n_reasons; i++) {
        if (strstr(a->reasons[i], text))
            return true;
    }
    return false;
}

#define EXPECT(tier, action, amount, cur, res, want, text)                                         \
    do {                                                                                           \
        pk_authz a_ = ask(tier, action, amount, cur, res);                                         \
        cr_assert_eq(a_.permit, want, "%s on %s: got %d (%s)", action, pk_tier_name(tier),         \
                     a_.permit, a_.n_reasons ? a_.reasons[a_.n_reasons - 1] : "");                 \
        cr_assert(said(&a_, text), "%s on %s: no reason says \"%s\"; last: %s", action,            \
                  pk_tier_name(tier), text, a_.reasons[a_.n_reasons - 1]);                         \
    } while (0)

#define T(x) PACTUM__V1__TIER__TIER_##x

Test(authorize, every_tier_with_the_default_scopes)
{
    for (int t = T(TRUSTED); t <= T(STANDARD); t++) {
        EXPECT(t, "reply", 0, "", "", ALLOW, "allowed");
        EXPECT(t, "refund.issue", 50, "USD", "orders/17", ALLOW, "within the pact's scope");
        EXPECT(t, "delete", 0, "", "", DENY, "outside the actions the pact allows");
        EXPECT(t, "refund.issue", 150, "USD", "", DENY, "above the pact's 100.00 per action");
        EXPECT(t, "refund.issue", 50, "EUR", "", DENY, "spends only USD");
        EXPECT(t, "kb.read", 0, "", "users/1", DENY, "outside the resources");
    }
    EXPECT(T(WATCH), "reply", 0, "", "", ALLOW, "allowed");
    EXPECT(T(WATCH), "refund.issue", 50, "USD", "", APPROVE, "spends money needs a person");
    EXPECT(T(WATCH), "delete", 0, "", "", DENY, "outside the actions the pact allows");
    EXPECT(T(RESTRICTED), "reply", 0, "", "", APPROVE, "every action needs a person");
    EXPECT(T(RESTRICTED), "delete", 0, "", "", DENY, "outside the actions");
    EXPECT(T(CONTAINED), "reply", 0, "", "", DENY, "contained: nothing is allowed");
    EXPECT(T(SUSPENDED), "reply", 0, "", "", DENY, "suspended: nothing is allowed");
}

Test(authorize, a_pact_writes_the_scope_of_a_tier)
{
    gov.tiers[T(WATCH)].any_action = false;
    gov.tiers[T(WATCH)].spend_approval = false;
    gov.tiers[T(WATCH)].spend_per_action = 20;
    {
        static char *acts[] = {"reply", "refund.*"}, *appr[] = {"refund.*"};
        gov.tiers[T(WATCH)].actions = (pk_patterns){acts, 2};
        gov.tiers[T(WATCH)].approval = (pk_patterns){appr, 1};
        EXPECT(T(WATCH), "kb.read", 0, "", "", DENY, "watch allows only reply, refund.*");
        EXPECT(T(WATCH), "refund.issue", 30, "USD", "", DENY, "30.00 is above the 20.00");
        EXPECT(T(WATCH), "refund.issue", 10, "USD", "", APPROVE, "'refund.issue' needs a person");
        EXPECT(T(WATCH), "reply", 0, "", "", ALLOW, "allowed");
        gov.tiers[T(WATCH)].actions = (pk_patterns){0};
        gov.tiers[T(WATCH)].approval = (pk_patterns){0};
    }
}

Test(authorize, overrides_change_the_answer_and_say_so)
{
    /* a contained agent put on standard by an operator */
    state.n_overrides = 1;
    ov[0].override_id = "ov-1";
    ov[0].operator_id = "ops";
    ov[0].kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER;
    ov[0].tier = T(STANDARD);
    ov[0].reason = "customers are waiting";
    ov[0].created_ms = 0;
    ov[0].expires_ms = 2000000;
    {
        pk_authz a = ask(T(CONTAINED), "reply", 0, "", "");
        cr_assert_eq(a.permit, ALLOW);
        cr_assert_eq(a.effective_tier, T(STANDARD));
        cr_assert_str_eq(a.override_id, "ov-1");
        cr_assert(said(&a, "override ov-1 by ops puts the agent on standard (decided: contained)"));
    }
    /* expired: the decided tier again */
    ov[0].expires_ms = 1000000;
    EXPECT(T(CONTAINED), "reply", 0, "", "", DENY, "nothing is allowed");
    /* a deny override wins on any tier */
    ov[0].kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY;
    ov[0].expires_ms = 2000000;
    {
        static char *acts[] = {"refund.*"};
        ov[0].actions = acts;
        ov[0].n_actions = 1;
        EXPECT(T(TRUSTED), "refund.issue", 5, "USD", "", DENY, "override ov-1 by ops denies");
        EXPECT(T(TRUSTED), "reply", 0, "", "", ALLOW, "allowed");
    }
    /* an allow override widens a tier's list and stands for the approval, not for the pact */
    ov[0].kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW;
    {
        static char *acts[] = {"kb.write", "delete"};
        ov[0].actions = acts;
        ov[0].n_actions = 2;
        gov.tiers[T(RESTRICTED)].any_action = false;
        {
            static char *only[] = {"reply"};
            gov.tiers[T(RESTRICTED)].actions = (pk_patterns){only, 1};
            EXPECT(T(RESTRICTED), "kb.write", 0, "", "", ALLOW, "override ov-1 by ops allows");
            EXPECT(T(RESTRICTED), "delete", 0, "", "", DENY, "outside the actions the pact");
            EXPECT(T(RESTRICTED), "kb.read", 0, "", "", DENY, "restricted allows only reply");
            gov.tiers[T(RESTRICTED)].actions = (pk_patterns){0};
        }
    }
}
