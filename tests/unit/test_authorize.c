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

/* Clause states as the evaluator would have them (none here: each starts empty). */
static void no_state(void *ctx, const pk_pact *p, const pk_clause *c, pk_clause_state *s)
{
    (void)ctx;
    (void)p;
    (void)c;
    (void)s;
}

static const char *approver; /* set: the request carries a valid approval by this person */

static pk_authz ask(Pactum__V1__Tier tier, const char *action, double amount, const char *currency,
                    const char *resource)
{
    Pactum__V1__AuthorizeRequest r = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    pk_pact *pacts[1] = {pact};
    static pk_authz_finding f[PK_AUTHZ_FINDINGS];
    pk_authz_input in = {.state = &state, .gov = &gov, .n_pacts = 1, .req = &r, .now_ms = 1000000};
    pk_event_msg ev;
    pk_authz a;

    state.tier = tier;
    r.agent_id = "bot";
    r.action = (char *)action;
    r.amount = amount;
    r.currency = (char *)currency;
    r.resource = (char *)resource;
    pk_authz_event(&r, in.now_ms, &ev);
    in.findings = f;
    in.n_findings = pk_authz_findings(pacts, 1, &ev, no_state, NULL, f, PK_AUTHZ_FINDINGS);
    in.approved_by = approver;
    in.approval_id = approver ? "appr-1" : NULL;
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
        EXPECT(t, "refund.issue", 50, "USD", "orders/17", ALLOW, "clauses in force allow it");
        EXPECT(t, "delete", 0, "", "", DENY, "action 'delete' is outside the scope");
        EXPECT(t, "refund.issue", 150, "USD", "", DENY, "spends 150 USD in one action");
        EXPECT(t, "refund.issue", 50, "EUR", "", DENY, "allows USD only");
        EXPECT(t, "kb.read", 0, "", "users/1", DENY, "resource 'users/1' is outside the scope");
    }
    EXPECT(T(WATCH), "reply", 0, "", "", ALLOW, "allowed");
    EXPECT(T(WATCH), "refund.issue", 50, "USD", "", APPROVE, "spends money needs a person");
    EXPECT(T(WATCH), "delete", 0, "", "", DENY, "outside the scope");
    EXPECT(T(RESTRICTED), "reply", 0, "", "", APPROVE, "every action needs a person");
    EXPECT(T(RESTRICTED), "delete", 0, "", "", DENY, "outside the scope");
    EXPECT(T(CONTAINED), "reply", 0, "", "", DENY, "contained: nothing is allowed");
    EXPECT(T(SUSPENDED), "reply", 0, "", "", DENY, "suspended: nothing is allowed");
}

/*
 * A denial made before the clauses (the tier's scope) is the same with or without the
 * findings, so the oracle may skip asking the evaluator for them; any answer that depends on
 * the clauses is never marked so.
 */
Test(authorize, only_answers_the_clauses_cannot_change_are_decided_before_them)
{
    for (int t = T(TRUSTED); t <= T(SUSPENDED); t++) {
        static const char *const actions[] = {"reply", "refund.issue", "delete", "kb.read"};
        for (size_t k = 0; k < 4; k++) {
            pk_authz with = ask(t, actions[k], k == 1 ? 150 : 0, "USD", "users/1");
            Pactum__V1__AuthorizeRequest r = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
            pk_authz_input in = {
                .state = &state, .gov = &gov, .n_pacts = 1, .req = &r, .now_ms = 1000000};
            pk_authz without;
            r.agent_id = "bot";
            r.action = (char *)actions[k];
            r.amount = k == 1 ? 150 : 0;
            r.currency = "USD";
            r.resource = "users/1";
            pk_authorize(&in, &without);
            if (without.before_clauses) {
                cr_assert_eq(without.permit, with.permit, "%s on %s", actions[k], pk_tier_name(t));
                cr_assert_eq(without.permit, DENY, "%s on %s", actions[k], pk_tier_name(t));
            }
            cr_assert_eq(with.before_clauses, without.before_clauses, "%s on %s", actions[k],
                         pk_tier_name(t));
        }
    }
    cr_assert(ask(T(CONTAINED), "reply", 0, "", "").before_clauses);
    cr_assert_not(ask(T(TRUSTED), "reply", 0, "", "").before_clauses);
    cr_assert_not(ask(T(TRUSTED), "refund.issue", 150, "USD", "").before_clauses,
                  "a denial by a clause was marked as decided before the clauses");
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
            EXPECT(T(RESTRICTED), "delete", 0, "", "", DENY, "outside the scope");
            EXPECT(T(RESTRICTED), "kb.read", 0, "", "", DENY, "restricted allows only reply");
            gov.tiers[T(RESTRICTED)].actions = (pk_patterns){0};
        }
    }
}

Test(authorize, an_override_belongs_to_its_incident_and_an_allow_names_itself)
{
    state.n_overrides = 1;
    ov[0].override_id = "ov-1";
    ov[0].operator_id = "@ops";
    ov[0].kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER;
    ov[0].tier = T(WATCH);
    ov[0].reason = "first incident";
    ov[0].created_ms = 100;
    ov[0].expires_ms = 2000000;
    state.contained_ms = 50;
    EXPECT(T(CONTAINED), "reply", 0, "", "", ALLOW,
           "override ov-1 by @ops puts the agent on watch");
    /* contained again after the override was written: it belonged to the first incident */
    state.contained_ms = 500;
    EXPECT(T(CONTAINED), "reply", 0, "", "", DENY, "contained: nothing is allowed");
    state.contained_ms = 0;
    /* an allow override that stands for the tier's approval says so, and names itself */
    ov[0].kind = PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW;
    {
        static char *acts[] = {"refund.*"};
        ov[0].actions = acts;
        ov[0].n_actions = 1;
        pk_authz a = ask(T(WATCH), "refund.issue", 50, "USD", "");
        cr_assert_eq(a.permit, ALLOW);
        cr_assert_str_eq(a.override_id, "ov-1");
        cr_assert(said(&a, "override ov-1 by @ops allows 'refund.issue' without approval"));
    }
}

Test(authorize, no_pact_no_limits_is_no_longer_true)
{
    Pactum__V1__AuthorizeRequest r = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    pk_authz_input in = {.state = &state, .gov = &gov, .n_pacts = 0, .req = &r, .now_ms = 1};
    pk_authz a;

    state.tier = T(TRUSTED);
    r.agent_id = "bot";
    r.action = "db.drop_all_tables";
    pk_authorize(&in, &a);
    cr_assert_eq(a.permit, APPROVE, "the default policy: a person approves");
    cr_assert(said(&a, "no pact binds the agent"));
    in.unbound = PK_UNBOUND_DENY;
    pk_authorize(&in, &a);
    cr_assert_eq(a.permit, DENY);
    in.unbound = PK_UNBOUND_ALLOW;
    pk_authorize(&in, &a);
    cr_assert_eq(a.permit, ALLOW);
}

Test(authorize, an_approval_allows_what_needed_one_and_nothing_else)
{
    approver = "@alice";
    {
        pk_authz a = ask(T(WATCH), "refund.issue", 50, "USD", "");
        cr_assert_eq(a.permit, ALLOW);
        cr_assert(said(&a, "approved by @alice (approval appr-1), once"));
    }
    EXPECT(T(WATCH), "refund.issue", 150, "USD", "", DENY, "in one action");
    EXPECT(T(CONTAINED), "reply", 0, "", "", DENY, "nothing is allowed");
    approver = NULL;
}

Test(authorize, review_overdue_caps_the_tier)
{
    Pactum__V1__AuthorizeRequest r = PACTUM__V1__AUTHORIZE_REQUEST__INIT;
    pk_pact *pacts[1] = {pact};
    pk_authz_input in = {.state = &state,
                         .gov = &gov,
                         .n_pacts = 1,
                         .req = &r,
                         .now_ms = 1,
                         .review_cap = T(RESTRICTED),
                         .review_pact = "shop"};
    pk_authz a;

    (void)pacts;
    state.tier = T(TRUSTED);
    r.agent_id = "bot";
    r.action = "reply";
    pk_authorize(&in, &a);
    cr_assert_eq(a.effective_tier, T(RESTRICTED));
    cr_assert_eq(a.permit, APPROVE);
    cr_assert(said(&a, "pact shop is overdue for review"));
}

/* --- authorize and the evaluator never disagree -------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

static const char *pick(const char *const *set, uint32_t n)
{
    return set[rnd(n)];
}

static const char *const actions[] = {"reply", "refund", "refund.big", "db.read", "db.drop", "pay"};
static const char *const tools[] = {"", "ledger", "search.web", "db"};
static const char *const kinds[] = {"action", "refund", "payment"};

/* A random pact of scope and forbidden clauses, as a document. */
static void random_pact(char *text, size_t len)
{
    size_t off =
        (size_t)snprintf(text, len, "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\",\"clauses\":[");
    int n = 1 + (int)rnd(3);

    for (int i = 0; i < n; i++) {
        char when[96] = "";
        if (rnd(3) == 0)
            snprintf(when, sizeof(when), "\"when\":{\"field\":\"tool\",\"eq\":\"%s\"},",
                     pick(tools + 1, 3));
        else if (rnd(4) == 0)
            snprintf(when, sizeof(when), "\"when\":{\"field\":\"kind\",\"eq\":\"%s\"},",
                     pick(kinds, 3));
        if (rnd(2)) {
            char acts[96] = "", spend[200] = "";
            if (rnd(3)) {
                snprintf(acts, sizeof(acts), "\"actions\":[\"%s\",\"%s\"],", pick(actions, 6),
                         rnd(2) ? "refund*" : pick(actions, 6));
            }
            if (rnd(3) || !acts[0]) {
                int per = 100 + 100 * (int)rnd(5), win = per * (1 + (int)rnd(4));
                int ask = rnd(2) ? 20 + 20 * (int)rnd(4) : 0;
                char approve[48] = "";
                if (ask && ask < per)
                    snprintf(approve, sizeof(approve), ",\"approval_above\":%d", ask);
                snprintf(spend, sizeof(spend),
                         "\"spend\":{\"currency\":\"USD\",\"per_action\":%d,\"per_window\":%d,"
                         "\"window\":\"%s\"%s},",
                         per, win, rnd(2) ? "1h" : "30s", approve);
            }
            off += (size_t)snprintf(text + off, len - off,
                                    "%s{\"id\":\"c%d\",\"promise\":\"x\",\"severity\":\"high\","
                                    "\"kind\":\"scope\",%s%s%s\"sources\":{\"self\":1}}",
                                    i ? "," : "", i, when, acts, spend);
        } else {
            off += (size_t)snprintf(
                text + off, len - off,
                "%s{\"id\":\"c%d\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"forbidden\","
                "%s\"window\":\"%s\",\"max_count\":%u,\"match\":{\"all\":[{\"field\":\"action\","
                "\"eq\":\"%s\"},{\"field\":\"amount\",\"gt\":%u}]}}",
                i ? "," : "", i, when, rnd(2) ? "1h" : "20s", rnd(3), pick(actions, 6),
                50 * rnd(6));
        }
    }
    snprintf(text + off, len - off, "]}");
}

/* A random event of bot at ts (strings point at static tables). */
static void random_event(pk_event_msg *ev, int64_t ts, Pactum__V1__AuthorizeRequest *as)
{
    static const double amounts[] = {0, 10, 30, 50, 120, 250, 450, 700};

    pactum__v1__authorize_request__init(as);
    as->agent_id = "bot";
    as->action = (char *)pick(actions, 6);
    as->tool = (char *)pick(tools, 4);
    as->kind = (char *)pick(kinds, 3);
    as->amount = amounts[rnd(8)];
    as->currency = as->amount > 0 ? (rnd(10) ? "USD" : "EUR") : "";
    pk_authz_event(as, ts, ev);
}

typedef struct states {
    pk_pact *pact;
    pk_clause_state s[8];
} states;

static void state_of(void *ctx, const pk_pact *p, const pk_clause *c, pk_clause_state *out)
{
    states *st = ctx;

    (void)p;
    *out = st->s[c - st->pact->clauses];
}

Test(authorize, authorize_and_the_evaluator_never_disagree, .timeout = 120)
{
    int cases = 0, denied = 0, approval = 0, allowed = 0, stateless = 0;

    gov.tiers[T(TRUSTED)].any_action = true; /* the tier allows anything: the pact decides */
    for (uint64_t seed = 1; seed <= 10000; seed++) {
        char pdoc[4096];
        pk_lint l = {0};
        pk_pact *p = NULL;
        states st;
        pk_event_msg ev;
        Pactum__V1__AuthorizeRequest req;
        pk_authz_finding f[PK_AUTHZ_FINDINGS];
        pk_authz_input in = {.state = &state, .gov = &gov, .n_pacts = 1, .req = &req};
        pk_authz a;
        bool broken = false, unapproved = false;
        int64_t ts = 1000000;
        uint32_t history;

        rng_state = seed * 0x9E3779B97F4A7C15ull;
        random_pact(pdoc, sizeof(pdoc));
        cr_assert_eq(pk_pact_parse(pdoc, strlen(pdoc), &p, &l), PK_OK, "%s\n%s", pdoc,
                     l.n ? l.msgs[0] : "");
        st.pact = p;
        for (size_t i = 0; i < p->n_clauses; i++)
            pk_clause_state_init(&st.s[i], &p->clauses[i], 0);
        /* the history the evaluator has judged */
        history = rnd(25);
        for (uint32_t k = 0; k < history; k++) {
            pk_judgement j;
            ts += 1 + rnd(8000);
            random_event(&ev, ts, &req);
            for (size_t i = 0; i < p->n_clauses; i++)
                pk_clause_judge(&p->clauses[i], &st.s[i], &ev, k + 1, 10, &j);
        }
        /* the request, and the event it would be */
        ts += 1 + rnd(8000);
        random_event(&ev, ts, &req);
        in.now_ms = ts;
        in.findings = f;
        in.n_findings = pk_authz_findings(&p, 1, &ev, state_of, &st, f, PK_AUTHZ_FINDINGS);
        /* where the states cannot matter, the findings without them are the same */
        if (!pk_authz_needs_state(&p, 1, &ev)) {
            pk_authz_finding g[PK_AUTHZ_FINDINGS];
            size_t ng = pk_authz_findings(&p, 1, &ev, no_state, NULL, g, PK_AUTHZ_FINDINGS);
            cr_assert_eq(ng, in.n_findings, "case %llu\n%s", (unsigned long long)seed, pdoc);
            for (size_t i = 0; i < ng; i++) {
                cr_assert_str_eq(g[i].clause_id, f[i].clause_id);
                cr_assert_eq(g[i].violation, f[i].violation,
                             "case %llu, %s: the state changed the finding\n%s",
                             (unsigned long long)seed, f[i].clause_id, pdoc);
                cr_assert_eq(g[i].needs_approval, f[i].needs_approval);
            }
            stateless++;
        }
        state.tier = T(TRUSTED);
        state.n_overrides = 0;
        pk_authorize(&in, &a);
        /* the evaluator, judging that event for real on its own copies of the states */
        for (size_t i = 0; i < p->n_clauses; i++) {
            pk_clause_state copy = st.s[i];
            pk_judgement j;
            pk_clause_judge(&p->clauses[i], &copy, &ev, history + 1, 10, &j);
            if (j.violation && !j.unapproved)
                broken = true;
            else if (j.violation)
                unapproved = true;
        }
        if (broken) {
            cr_assert_eq(a.permit, DENY,
                         "case %llu: the evaluator finds a violation; authorize: %d "
                         "(%s)\n%s",
                         (unsigned long long)seed, a.permit, a.reasons[a.n_reasons - 1], pdoc);
            denied++;
        } else if (unapproved) {
            cr_assert_eq(a.permit, APPROVE, "case %llu: needs an approval; authorize: %d (%s)\n%s",
                         (unsigned long long)seed, a.permit, a.reasons[a.n_reasons - 1], pdoc);
            approval++;
        } else {
            cr_assert_eq(a.permit, ALLOW,
                         "case %llu: the evaluator finds nothing; authorize: %d "
                         "(%s)\n%s",
                         (unsigned long long)seed, a.permit, a.reasons[a.n_reasons - 1], pdoc);
            allowed++;
        }
        cases++;
        pk_pact_free(p);
    }
    cr_assert_eq(cases, 10000);
    /* each answer is well represented, so the agreement says something */
    cr_assert_gt(denied, 1000, "%d denied", denied);
    cr_assert_gt(approval, 100, "%d needing approval", approval);
    cr_assert_gt(allowed, 1000, "%d allowed", allowed);
    cr_assert_gt(stateless, 1000, "%d decided without the states", stateless);
    printf("authorize vs evaluator: %d cases, %d denied, %d needing approval, %d allowed, "
           "no disagreement; %d needed no clause state\n",
           cases, denied, approval, allowed, stateless);
}
