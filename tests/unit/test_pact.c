/* The pact language: valid pacts, a corpus of broken ones, predicates. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/pact.h"

static pk_pact *parse_ok(const char *json)
{
    pk_lint l = {0};
    pk_pact *p = NULL;
    pk_status st = pk_pact_parse(json, strlen(json), &p, &l);

    cr_assert_eq(st, PK_OK, "%s", l.n ? l.msgs[0] : pk_error_msg());
    cr_assert_eq(l.n, 0);
    pk_lint_free(&l);
    return p;
}

#define HEAD "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\",\"clauses\":["
#define TAIL "]}"
#define OBJ(extra)                                                                                 \
    HEAD "{\"id\":\"c\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","        \
         "\"metric\":\"latency_ms\",\"aggregate\":\"mean\",\"window\":\"5m\",\"op\":\"<=\","       \
         "\"threshold\":2000" extra "}" TAIL

#define OBJ_AGG(agg)                                                                               \
    HEAD "{\"id\":\"c\",\"promise\":\"fast\",\"severity\":\"high\",\"kind\":\"objective\","        \
         "\"metric\":\"latency_ms\",\"aggregate\":\"" agg "\",\"window\":\"5m\",\"op\":\"<=\","    \
         "\"threshold\":2000}" TAIL
/* a pact-level field next to one forbidden clause */
#define TOP(f)                                                                                     \
    "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\"," f ",\"clauses\":[{\"id\":\"c\",\"promise\":"   \
    "\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":"    \
    "\"kind\",\"eq\":\"a\"}}]}"

/* a forbidden clause and a governance section */
#define GOV(g)                                                                                     \
    HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":" \
         "\"1d\","                                                                                 \
         "\"match\":{\"field\":\"kind\",\"eq\":\"a\"}}],\"governance\":" g "}"

Test(pact, every_example_pact_passes_lint)
{
    char dir[512];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(dir, sizeof(dir), "%s/examples/pacts", PK_SOURCE_DIR);
    d = opendir(dir);
    cr_assert(d != NULL);
    while ((e = readdir(d))) {
        char path[1024], *buf;
        FILE *f;
        long len;
        if (!strstr(e->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        cr_assert(f != NULL);
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        rewind(f);
        buf = malloc((size_t)len + 1);
        cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
        buf[len] = '\0';
        fclose(f);
        pk_pact_free(parse_ok(buf));
        free(buf);
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 1, "no example pacts found");
}

Test(pact, objective_fields_are_compiled)
{
    pk_pact *p = parse_ok(OBJ(",\"min_samples\":5,\"sources\":{\"self\":0.25,\"evaluator\":1}"));
    const pk_clause *c = pk_pact_clause(p, "c");

    cr_assert_not_null(c);
    cr_assert_eq(c->kind, PK_CLAUSE_OBJECTIVE);
    cr_assert_eq(c->aggregate, PK_AGG_MEAN);
    cr_assert_eq(c->op, PK_OP_LE);
    cr_assert_eq(c->window_ms, 300000);
    cr_assert_eq(c->min_samples, 5);
    cr_assert_float_eq(c->weight[PACTUM__V1__SOURCE__SOURCE_SELF], 0.25, 1e-12);
    cr_assert_float_eq(c->weight[PACTUM__V1__SOURCE__SOURCE_PEER], 0, 1e-12,
                       "sources not listed do not count");
    cr_assert_eq(c->consequence, PK_CONSEQ_DEMOTE, "high severity demotes by default");
    pk_pact_free(p);
}

Test(pact, forbidden_defaults_and_event_windows)
{
    pk_pact *p = parse_ok(
        HEAD "{\"id\":\"f\",\"promise\":\"no pii\",\"severity\":\"critical\","
             "\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":\"labels.pii\","
             "\"eq\":\"leaked\"}}" TAIL);

    cr_assert_eq(p->clauses[0].consequence, PK_CONSEQ_CONTAIN);
    cr_assert_eq(p->clauses[0].max_count, 0);
    cr_assert_eq(p->clauses[0].window_ms, 86400000);
    cr_assert_eq(p->clauses[0].n_domain, 0, "a match on a label judges every event");
    pk_pact_free(p);
    p = parse_ok(HEAD "{\"id\":\"g\",\"promise\":\"few errors\",\"severity\":\"low\","
                      "\"kind\":\"forbidden\",\"match\":{\"field\":\"kind\",\"eq\":"
                      "\"error\"},\"max_count\":3,\"window\":{\"events\":100}}" TAIL);
    cr_assert_eq(p->clauses[0].window_events, 100);
    cr_assert_eq(p->clauses[0].max_count, 3);
    pk_pact_free(p);
}

Test(pact, percentiles_ratios_counterparties_review_and_promotion_are_compiled)
{
    pk_pact *p = parse_ok(
        "{\"pactum\":1,\"id\":\"p\",\"agent\":\"bot\",\"counterparties\":[\"shop\",\"bank\"],"
        "\"review_by\":\"2027-06-30\",\"review_cap\":\"standard\",\"clauses\":["
        "{\"id\":\"p999\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"ms\",\"aggregate\":\"p99.9\",\"window\":\"1h\",\"op\":\"<=\",\"threshold\":"
        "900},"
        "{\"id\":\"errors\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
        "\"metric\":\"errors\",\"of\":\"requests\",\"aggregate\":\"ratio\",\"window\":\"1h\","
        "\"op\":\"<=\",\"threshold\":0.01},"
        "{\"id\":\"big\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"forbidden\","
        "\"window\":\"7d\",\"peers_can_contain\":true,\"sources\":{\"peer\":0.8},\"match\":{"
        "\"all\":["
        "{\"field\":\"action\",\"eq\":\"refund\"},{\"field\":\"amount\",\"gt\":1000}]}},"
        "{\"id\":\"spend\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
        "\"spend\":{\"currency\":\"USD\",\"per_action\":500,\"approval_above\":200}}],"
        "\"governance\":{\"promotion\":{\"margin\":0.05,\"dwell\":\"2h\"},"
        "\"reentry\":[{\"from\":\"contained\",\"to\":\"watch\",\"dwell\":\"30m\"}]}}");
    const pk_clause *c;

    c = pk_pact_clause(p, "p999");
    cr_assert_eq(c->aggregate, PK_AGG_PERCENTILE);
    cr_assert_float_eq(pk_clause_quantile(c), 0.999, 1e-12);
    cr_assert_str_eq(c->agg_name, "p99.9");
    c = pk_pact_clause(p, "errors");
    cr_assert_eq(c->aggregate, PK_AGG_RATIO);
    cr_assert_str_eq(c->of, "requests");
    c = pk_pact_clause(p, "big");
    cr_assert_eq(c->n_domain, 1, "the match's action names the events it judges");
    cr_assert(c->peers_can_contain);
    cr_assert_float_eq(c->weight[PACTUM__V1__SOURCE__SOURCE_PEER], 0.8, 1e-12);
    c = pk_pact_clause(p, "spend");
    cr_assert_float_eq(c->approval_above, 200, 1e-12);
    cr_assert_float_eq(c->weight[PACTUM__V1__SOURCE__SOURCE_PEER], 0, 1e-12,
                       "peers count only where the pact lists them");
    cr_assert_eq(p->n_counterparties, 2);
    cr_assert(pk_pact_counterparty(p, "bank"));
    cr_assert_not(pk_pact_counterparty(p, "stranger"));
    cr_assert_eq(p->review_by_ms, 1814399999000LL, "the end of 2027-06-30, UTC");
    cr_assert_eq(p->review_cap, PACTUM__V1__TIER__TIER_STANDARD);
    cr_assert_eq(p->gov.margin_ppm, 50000);
    cr_assert_eq(p->gov.dwell_ms, 7200000);
    cr_assert_eq(p->gov.reentry[PACTUM__V1__TIER__TIER_CONTAINED].dwell_ms, 1800000);
    pk_pact_free(p);
}

/* Each broken document and a phrase its lint message must contain. */
static const struct {
    const char *doc;
    const char *expect;
} corpus[] = {
    {"not json", "not valid JSON"},
    {"[1,2]", "expected a JSON object"},
    {"{\"pactum\":2,\"id\":\"p\",\"agent\":\"a\",\"clauses\":[]}",
     "pactum: expected language version 1"},
    {"{\"pactum\":1,\"agent\":\"a\",\"clauses\":[]}", "id: required field is missing"},
    {"{\"pactum\":1,\"id\":\"p.q\",\"agent\":\"a\",\"clauses\":[]}", "id: id 'p.q' has '.'"},
    {"{\"pactum\":1,\"id\":\"p\",\"agent\":\"a\",\"clauses\":{}}", "clauses: expected an array"},
    {"{\"pactum\":1,\"id\":\"p\",\"agent\":\"a\",\"clauses\":[],\"extra\":1}",
     "extra: unknown field"},
    {OBJ(""), NULL}, /* sanity: the template itself is valid */
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"urgent\",\"kind\":\"objective\"}" TAIL,
     "clauses[0].severity: expected one of info, low, medium, high, critical, got 'urgent'"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"wish\"}" TAIL,
     "clauses[0].kind: expected one of objective, forbidden, freshness, scope, got 'wish'"},
    {HEAD "{\"id\":\"c\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{"
          "\"field\":\"kind\","
          "\"eq\":\"x\"}}" TAIL,
     "clauses[0].promise: required field is missing"},
    {OBJ(",\"window\":\"1 hour\""), "window"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"m\",\"aggregate\":\"mean\",\"window\":\"1 hour\",\"op\":\"<=\","
          "\"threshold\":1}" TAIL,
     "clauses[0].window: expected a duration like 1h or 500ms, got '1 hour'"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"m\",\"aggregate\":\"median\",\"window\":\"1h\",\"op\":\"<=\","
          "\"threshold\":1}" TAIL,
     "clauses[0].aggregate: expected one of count, sum, mean, min, max, rate, ratio, got "
     "'median'"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"m\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"=<\","
          "\"threshold\":1}" TAIL,
     "clauses[0].op: expected one of <, <=, >, >=, ==, !=, got '=<'"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"m\",\"aggregate\":\"mean\",\"window\":\"1h\",\"op\":\"<\","
          "\"threshold\":\"fast\"}" TAIL,
     "clauses[0].threshold: expected a number, got a string"},
    {OBJ(",\"min_samples\":0"), "clauses[0].min_samples: expected a whole number from 1"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"m\",\"aggregate\":\"mean\",\"window\":{\"events\":10},\"op\":\"<\","
          "\"threshold\":1,\"min_samples\":20}" TAIL,
     "min_samples: 20 can never be reached in a window of 10 events"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"err\",\"aggregate\":\"rate\",\"window\":\"1h\",\"op\":\"<\","
          "\"threshold\":5}" TAIL,
     "a rate is a fraction from 0 to 1"},
    {OBJ(",\"windw\":\"1h\""), "clauses[0].windw: unknown field"},
    {OBJ(",\"sources\":{\"self\":2}"), "clauses[0].sources.self: expected a weight from 0 to 1"},
    {OBJ(",\"sources\":{\"bots\":1}"), "clauses[0].sources.bots: expected one of self, peer"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\"}" TAIL,
     "clauses[0].match: required field is missing"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"field\":\"color\",\"eq\":\"red\"}}" TAIL,
     "clauses[0].match.field: expected an event field"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"field\":\"kind\",\"gt\":3}}" TAIL,
     "clauses[0].match.gt: ordering needs a numeric field"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"field\":\"amount\",\"eq\":\"ten\"}}" TAIL,
     "clauses[0].match.eq: 'amount' is a numeric field, so expected a number"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"any\":[]}}" TAIL,
     "clauses[0].match.any: expected a non-empty array"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"field\":\"kind\",\"eq\":\"a\",\"ne\":\"b\"}}" TAIL,
     "expected exactly one comparison"},
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\","
          "\"match\":{\"field\":\"kind\",\"eq\":\"a\"},\"max_count\":2}" TAIL,
     "clauses[0].window: required field is missing"},
    /* never means never within a window the pact names: no implied day */
    {HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\","
          "\"match\":{\"field\":\"kind\",\"eq\":\"a\"}}" TAIL,
     "clauses[0].window: required field is missing"},
    /* percentiles, ratios */
    {OBJ_AGG("p101"), "clauses[0].aggregate: a percentile is p0 to p100"},
    {OBJ_AGG("p9x"), "clauses[0].aggregate: a percentile is p0 to p100"},
    {OBJ_AGG("median"), "or a percentile p0 to p100"},
    {OBJ_AGG("ratio"), "clauses[0].of: required field is missing"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"objective\","
          "\"metric\":\"err\",\"of\":\"total\",\"aggregate\":\"mean\",\"window\":\"1h\","
          "\"op\":\"<\",\"threshold\":5}" TAIL,
     "clauses[0].of: only a ratio has a denominator"},
    /* counterparties, review */
    {TOP("\"counterparties\":[\"bot\"]"), "counterparties[0]: 'bot' is the agent itself"},
    {TOP("\"counterparties\":\"peer\""), "counterparties: expected an array"},
    {TOP("\"review_by\":\"next spring\""), "review_by: expected a date like"},
    {TOP("\"review_cap\":\"standard\""), "review_cap: only meaningful with review_by"},
    {GOV("{\"promotion\":{\"margin\":0.9}}"), "governance.promotion.margin: expected 0 to 0.5"},
    /* approval above an amount */
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"spend\":{\"currency\":\"USD\",\"per_action\":100,\"approval_above\":200}}" TAIL,
     "clauses[0].spend.approval_above: 200 is not below per_action 100"},
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"peers_can_contain\":\"yes\",\"actions\":[\"a\"]}" TAIL,
     "clauses[0].peers_can_contain: expected true or false"},
    /* burn rates */
    {OBJ(",\"burn_rate\":{\"target\":1.5,\"triggers\":[{\"long\":\"1h\",\"short\":\"5m\","
         "\"factor\":14.4,\"severity\":\"high\"}]}"),
     "clauses[0].burn_rate.target: the fraction of good events promised"},
    {OBJ(",\"burn_rate\":{\"target\":0.9,\"triggers\":[{\"long\":\"1h\",\"short\":\"5m\","
         "\"factor\":14.4,\"severity\":\"high\"}]}"),
     "clauses[0].burn_rate.triggers[0].factor: 14.4 can never be reached"},
    {OBJ(",\"burn_rate\":{\"target\":0.99,\"triggers\":[{\"long\":\"5m\",\"short\":\"1h\","
         "\"factor\":6,\"severity\":\"high\"}]}"),
     "clauses[0].burn_rate.triggers[0].short: the short window must be shorter"},
    {OBJ(",\"burn_rate\":{\"target\":0.99,\"triggers\":[]}"),
     "clauses[0].burn_rate.triggers: expected an array of 1 to 4 triggers"},
    /* freshness */
    {HEAD "{\"id\":\"hb\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"freshness\"}" TAIL,
     "clauses[0].max_gap: required field is missing"},
    {HEAD "{\"id\":\"hb\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"freshness\","
          "\"max_gap\":\"soon\"}" TAIL,
     "clauses[0].max_gap: expected a duration like 1h or 500ms, got 'soon'"},
    {HEAD "{\"id\":\"hb\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"freshness\","
          "\"max_gap\":\"5m\",\"window\":\"1h\"}" TAIL,
     "clauses[0].window: unknown field"},
    /* scope */
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\"}" TAIL,
     "a scope names at least one of actions, tools, resources, spend"},
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"tools\":[\"git.*.push\"]}" TAIL,
     "clauses[0].tools[0]: '*' may only end a pattern"},
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"spend\":{\"currency\":\"usd\",\"per_action\":5}}" TAIL,
     "clauses[0].spend.currency: expected a three-letter ISO 4217 code"},
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"spend\":{\"currency\":\"USD\",\"per_window\":5}}" TAIL,
     "clauses[0].spend.window: required field is missing"},
    {HEAD "{\"id\":\"s\",\"promise\":\"x\",\"severity\":\"high\",\"kind\":\"scope\","
          "\"spend\":{\"currency\":\"USD\"}}" TAIL,
     "clauses[0].spend: give per_action, per_window, approval_above, or several"},
    {HEAD "{\"id\":\"c\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":"
          "\"1d\","
          "\"match\":{\"field\":\"kind\",\"eq\":\"a\"}},{\"id\":\"c\",\"promise\":\"y\","
          "\"severity\":\"low\",\"kind\":\"forbidden\",\"window\":\"1d\",\"match\":{\"field\":"
          "\"kind\",\"eq\":\"b\"}"
          "}" TAIL,
     "clauses[1].id: 'c' is already the id of clauses[0]"},
    {GOV("{}"), NULL},
    {GOV("[]"), "governance: expected an object"},
    {GOV("{\"halflife\":\"1d\"}"), "governance.halflife: unknown field"},
    {GOV("{\"half_life\":\"10s\"}"), "governance.half_life"},
    {GOV("{\"thresholds\":{\"trusted\":0.5,\"standard\":0.7,\"watch\":0.2}}"),
     "governance.thresholds: expected trusted > standard > watch"},
    {GOV("{\"thresholds\":{\"trusted\":1}}"),
     "governance.thresholds.trusted: expected a fraction strictly between 0 and 1"},
    {GOV("{\"tiers\":{\"gold\":{}}}"), "governance.tiers.gold"},
    {GOV("{\"tiers\":{\"watch\":{\"actions\":[\"a.*.b\"]}}}"), "governance.tiers.watch.actions[0]"},
    {GOV("{\"tiers\":{\"watch\":{\"spend_per_action\":0}}}"),
     "governance.tiers.watch.spend_per_action: must be above 0"},
    {GOV("{\"reentry\":[{\"from\":\"watch\",\"to\":\"restricted\"}]}"),
     "governance.reentry[0].to: re-entry leads to a better tier than 'watch'"},
    {GOV("{\"reentry\":[{\"from\":\"trusted\",\"to\":\"trusted\"}]}"),
     "governance.reentry[0].from: there is nothing to re-enter from trusted"},
    {GOV("{\"reentry\":[{\"from\":\"watch\",\"to\":\"standard\"},"
         "{\"from\":\"watch\",\"to\":\"trusted\"}]}"),
     "governance.reentry[1].from: reentry[0] already covers 'watch'"},
    {GOV("{\"reentry\":[{\"from\":\"watch\",\"to\":\"standard\",\"min_lower\":2}]}"),
     "governance.reentry[0].min_lower: expected a fraction"},
    {GOV("{\"reentry\":[{\"to\":\"standard\"}]}"),
     "governance.reentry[0].from: required field is missing"},
};

Test(pact, broken_pacts_are_refused_with_the_field_path)
{
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        pk_lint l = {0};
        pk_pact *p = NULL;
        pk_status st = pk_pact_parse(corpus[i].doc, strlen(corpus[i].doc), &p, &l);
        bool found = false;

        if (!corpus[i].expect) {
            cr_assert_eq(st, PK_OK, "case %zu: %s", i, l.n ? l.msgs[0] : "");
            pk_pact_free(p);
            continue;
        }
        cr_assert_neq(st, PK_OK, "case %zu was accepted: %s", i, corpus[i].doc);
        cr_assert_null(p);
        for (size_t k = 0; k < l.n; k++)
            found |= strstr(l.msgs[k], corpus[i].expect) != NULL;
        cr_assert(found, "case %zu: no message contains \"%s\"; first was \"%s\"", i,
                  corpus[i].expect, l.n ? l.msgs[0] : "(none)");
        pk_lint_free(&l);
    }
}

Test(pact, governance_is_compiled_over_the_defaults)
{
    pk_pact *p = parse_ok(GOV("{\"half_life\":\"3d\",\"thresholds\":{\"trusted\":0.92,"
                              "\"standard\":0.8,\"watch\":0.5},\"tiers\":{\"watch\":{"
                              "\"actions\":[\"reply\",\"kb.*\"],\"approval\":[\"refund.*\"]},"
                              "\"restricted\":{\"actions\":[]}},\"reentry\":[{\"from\":"
                              "\"contained\",\"to\":\"restricted\",\"clean\":\"12h\","
                              "\"min_samples\":200,\"operator_ack\":true,\"min_lower\":0.6}]}"));
    const pk_governance *g = &p->gov;
    pk_governance d;

    pk_governance_defaults(&d);
    cr_assert(g->present);
    cr_assert_eq(g->half_life_ms, 3LL * 86400000);
    cr_assert_eq(g->source_cap, d.source_cap, "left out: the default");
    cr_assert_eq(g->trusted_ppm, 920000);
    cr_assert_eq(g->standard_ppm, 800000);
    cr_assert_not(g->tiers[PACTUM__V1__TIER__TIER_WATCH].any_action);
    cr_assert_eq(g->tiers[PACTUM__V1__TIER__TIER_WATCH].actions.n, 2);
    cr_assert_str_eq(g->tiers[PACTUM__V1__TIER__TIER_WATCH].approval.p[0], "refund.*");
    cr_assert_not(g->tiers[PACTUM__V1__TIER__TIER_WATCH].spend_approval,
                  "a tier written in the pact replaces the default entirely");
    cr_assert_not(g->tiers[PACTUM__V1__TIER__TIER_RESTRICTED].any_action);
    cr_assert_eq(g->tiers[PACTUM__V1__TIER__TIER_RESTRICTED].actions.n, 0, "[]: nothing");
    cr_assert(g->tiers[PACTUM__V1__TIER__TIER_STANDARD].any_action, "not written: default");
    cr_assert_eq(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].to,
                 PACTUM__V1__TIER__TIER_RESTRICTED);
    cr_assert_eq(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].clean_ms, 12LL * 3600000);
    cr_assert_eq(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].min_samples, 200);
    cr_assert(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].operator_ack);
    cr_assert_not(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].no_open_dispute,
                  "criteria written replace the default set");
    cr_assert_eq(g->reentry[PACTUM__V1__TIER__TIER_CONTAINED].min_lower_ppm, 600000);
    cr_assert_eq(g->reentry[PACTUM__V1__TIER__TIER_RESTRICTED].min_samples,
                 d.reentry[PACTUM__V1__TIER__TIER_RESTRICTED].min_samples);
    pk_pact_free(p);
    p = parse_ok(OBJ(""));
    cr_assert_not(p->gov.present, "no section: the defaults, and it does not govern");
    cr_assert_eq(p->gov.half_life_ms, d.half_life_ms);
    pk_pact_free(p);
}

Test(pact, freshness_scope_and_burn_rates_are_compiled)
{
    pk_pact *p = parse_ok(
        HEAD "{\"id\":\"hb\",\"promise\":\"reports every minute\",\"severity\":\"medium\","
             "\"kind\":\"freshness\",\"evidence\":{\"field\":\"kind\",\"eq\":\"heartbeat\"},"
             "\"max_gap\":\"1m\"}" TAIL);

    cr_assert_eq(p->clauses[0].kind, PK_CLAUSE_FRESHNESS);
    cr_assert_eq(p->clauses[0].max_gap_ms, 60000);
    cr_assert_not_null(p->clauses[0].evidence);
    pk_pact_free(p);
    p = parse_ok(HEAD "{\"id\":\"tools\",\"promise\":\"only its tools\",\"severity\":\"high\","
                      "\"kind\":\"scope\",\"tools\":[\"git.*\",\"tests.run\"],\"spend\":{"
                      "\"currency\":\"USD\",\"per_action\":500,\"per_window\":2000,\"window\":"
                      "\"24h\"}}" TAIL);
    cr_assert_eq(p->clauses[0].tools.n, 2);
    cr_assert_str_eq(p->clauses[0].currency, "USD");
    cr_assert_float_eq(p->clauses[0].per_window, 2000, 1e-9);
    cr_assert_eq(p->clauses[0].window_ms, 86400000);
    pk_pact_free(p);
    p = parse_ok(HEAD "{\"id\":\"errors\",\"promise\":\"99% succeed\",\"severity\":\"high\","
                      "\"kind\":\"objective\",\"metric\":\"error\",\"aggregate\":\"rate\","
                      "\"window\":\"1h\",\"op\":\"<=\",\"threshold\":0.01,\"burn_rate\":{"
                      "\"target\":0.99,\"triggers\":[{\"long\":\"1h\",\"short\":\"5m\",\"factor\":"
                      "14.4,\"severity\":\"critical\"},{\"long\":\"6h\",\"short\":\"30m\","
                      "\"factor\":6,\"severity\":\"medium\",\"consequence\":\"restrict\"}]}}" TAIL);
    cr_assert_eq(p->clauses[0].n_burn, 2);
    cr_assert_float_eq(p->clauses[0].target, 0.99, 1e-12);
    cr_assert_eq(p->clauses[0].burn[0].consequence, PK_CONSEQ_CONTAIN, "critical contains");
    cr_assert_eq(p->clauses[0].burn[1].consequence, PK_CONSEQ_RESTRICT);
    cr_assert_str_eq(p->clauses[0].burn[0].name, "1h/5m x14.4");
    pk_pact_free(p);
}

Test(pact, patterns)
{
    char *pats[] = {"tickets.*", "reply", "*"};
    pk_patterns ps = {.p = pats, .n = 2}, any = {.p = pats + 2, .n = 1};

    cr_assert(pk_patterns_match(&ps, "tickets.close"));
    cr_assert(pk_patterns_match(&ps, "tickets."));
    cr_assert_not(pk_patterns_match(&ps, "tickets"), "the prefix includes the dot");
    cr_assert(pk_patterns_match(&ps, "reply"));
    cr_assert_not(pk_patterns_match(&ps, "reply.all"), "exact names are exact");
    cr_assert(pk_patterns_match(&any, "anything"));
}

Test(pact, several_problems_are_reported_in_one_run)
{
    const char *doc = HEAD "{\"id\":\"c\",\"promise\":\"\",\"severity\":\"urgent\","
                           "\"kind\":\"objective\",\"metric\":\"m\",\"aggregate\":\"avg\","
                           "\"window\":\"soon\",\"op\":\"<\",\"threshold\":1}" TAIL;
    pk_lint l = {0};
    pk_pact *p = NULL;

    cr_assert_neq(pk_pact_parse(doc, strlen(doc), &p, &l), PK_OK);
    cr_assert_geq(l.n, 4, "got %zu messages", l.n);
    pk_lint_free(&l);
}

/* --- predicates -------------------------------------------------------------- */

static pk_pred *pred(const char *json)
{
    char doc[2048];
    pk_pact *p;
    pk_pred *m;

    snprintf(doc, sizeof(doc),
             HEAD "{\"id\":\"f\",\"promise\":\"x\",\"severity\":\"low\",\"kind\":\"forbidden\","
                  "\"window\":\"1d\","
                  "\"match\":%s}" TAIL,
             json);
    p = parse_ok(doc);
    m = p->clauses[0].match;
    p->clauses[0].match = NULL; /* keep the predicate, drop the pact */
    pk_pact_free(p);
    return m;
}

static h_event e;
static pk_event_msg *ev;

static void event_init(void)
{
    ev = h_event_set(&e, "bot", 0, "tool_call", "tokens", 900, "pii", "none");
    ev->tool = "shell.exec";
    ev->amount = 25;
}

TestSuite(predicate, .init = event_init);

static bool holds(const char *json)
{
    pk_pred *p = pred(json);
    bool r = pk_pred_eval(p, ev);

    pk_pred_free(p);
    return r;
}

Test(predicate, comparisons)
{
    cr_assert(holds("{\"field\":\"kind\",\"eq\":\"tool_call\"}"));
    cr_assert_not(holds("{\"field\":\"kind\",\"eq\":\"reply\"}"));
    cr_assert(holds("{\"field\":\"kind\",\"ne\":\"reply\"}"));
    cr_assert(holds("{\"field\":\"tool\",\"prefix\":\"shell.\"}"));
    cr_assert_not(holds("{\"field\":\"tool\",\"prefix\":\"kb.\"}"));
    cr_assert(holds("{\"field\":\"amount\",\"ge\":25}"));
    cr_assert_not(holds("{\"field\":\"amount\",\"gt\":25}"));
    cr_assert(holds("{\"field\":\"metrics.tokens\",\"lt\":1000}"));
    cr_assert_not(holds("{\"field\":\"metrics.latency_ms\",\"lt\":1000}"),
                  "a missing metric satisfies no comparison");
    cr_assert(holds("{\"field\":\"labels.pii\",\"in\":[\"none\",\"masked\"]}"));
    cr_assert(holds("{\"field\":\"source\",\"eq\":\"self\"}"));
}

Test(predicate, presence_and_logic)
{
    cr_assert(holds("{\"field\":\"labels.pii\",\"exists\":true}"));
    cr_assert(holds("{\"field\":\"labels.tone\",\"exists\":false}"));
    cr_assert(holds("{\"field\":\"resource\",\"exists\":false}"), "empty strings are absent");
    cr_assert(holds("{\"all\":[{\"field\":\"kind\",\"eq\":\"tool_call\"},"
                    "{\"field\":\"tool\",\"prefix\":\"shell\"}]}"));
    cr_assert_not(holds("{\"all\":[{\"field\":\"kind\",\"eq\":\"tool_call\"},"
                        "{\"field\":\"tool\",\"prefix\":\"kb\"}]}"));
    cr_assert(holds("{\"any\":[{\"field\":\"kind\",\"eq\":\"reply\"},"
                    "{\"field\":\"amount\",\"gt\":10}]}"));
    cr_assert(holds("{\"not\":{\"field\":\"kind\",\"eq\":\"reply\"}}"));
}
