/*
 * Rendering of trust reports and verdicts, as JSON or as text for a person.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pk/pbjson.h"
#include "pk/clock.h"
#include "pk/crypto.h"

static double ppm(uint32_t v)
{
    return (double)v / 1e6;
}

static const char *status_name(Pactum__V1__QueryStatus s)
{
    switch (s) {
    case PACTUM__V1__QUERY_STATUS__QUERY_OK:
        return "ok";
    case PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT:
        return "unknown_agent";
    case PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST:
        return "bad_request";
    case PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE:
        return "unavailable";
    default:
        return "unspecified";
    }
}

static void hex_of(const ProtobufCBinaryData *b, char *out, size_t cap)
{
    if (b->len * 2 + 1 > cap || b->len == 0) {
        out[0] = '\0';
        return;
    }
    pk_hex_encode(b->data, b->len, out);
}

json_t *cli_verdict_json(const Pactum__V1__Verdict *v)
{
    char hash[PK_HASH_BYTES * 2 + 1];
    json_t *tally = json_array(), *evidence = json_array(), *o;

    hex_of(&v->pact_hash, hash, sizeof(hash));
    for (size_t i = 0; i < v->n_tally; i++)
        json_array_append_new(
            tally, json_pack("{s:s, s:i, s:i, s:f}", "source", pk_source_name(v->tally[i]->source),
                             "pass", (int)v->tally[i]->pass, "fail", (int)v->tally[i]->fail,
                             "weight", v->tally[i]->weight_ppm / 1e6));
    for (size_t i = 0; i < v->n_evidence; i++)
        json_array_append_new(evidence,
                              json_pack("{s:s, s:I}", "event_id", v->evidence[i]->event_id,
                                        "events_seq", (json_int_t)v->evidence[i]->seq));
    o = json_pack(
        "{s:s, s:I, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:f, s:f, s:s, s:s, "
        "s:s, s:I, s:i, s:I, s:o, s:o, s:I, s:I, s:I, s:s, s:s}",
        "agent", v->agent_id, "vseq", (json_int_t)v->vseq, "pact", v->pact_id, "pact_version",
        (int)v->pact_version, "pact_hash", hash, "clause", v->clause_id, "kind", v->clause_kind,
        "severity", pk_severity_name(v->severity), "outcome", pk_outcome_name(v->outcome),
        "previous", pk_outcome_name(v->previous), "violation", v->violation, "observed",
        v->observed, "threshold", v->threshold, "op", v->op, "aggregate", v->aggregate, "metric",
        v->metric, "window_ms", (json_int_t)v->window_ms, "window_events", (int)v->window_events,
        "samples", (json_int_t)v->samples, "tally", tally, "evidence", evidence, "evaluated_ms",
        (json_int_t)v->evaluated_ms, "event_ts_ms", (json_int_t)v->event_ts_ms, "ingest_ms",
        (json_int_t)v->ingest_ms, "consequence", v->consequence, "detail", v->detail);
    return o ? o : json_null();
}

static json_t *strings_json(char **v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *override_json(const Pactum__V1__Override *o, int64_t now)
{
    static const char *const kinds[] = {"unspecified", "tier", "allow", "deny"};

    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:b}", "id", o->override_id, "operator",
        o->operator_id, "kind", (unsigned)o->kind < 4 ? kinds[o->kind] : "unknown", "tier",
        pk_tier_name(o->tier), "actions", strings_json(o->actions, o->n_actions), "reason",
        o->reason, "created_ms", (json_int_t)o->created_ms, "expires_ms", (json_int_t)o->expires_ms,
        "in_force", o->created_ms <= now && now < o->expires_ms);
}

static json_t *tier_change_json(const Pactum__V1__TierChange *t)
{
    json_t *crit = json_array();

    for (size_t i = 0; i < t->n_criteria; i++)
        json_array_append_new(crit, json_pack("{s:s, s:s, s:s, s:b}", "name", t->criteria[i]->name,
                                              "required", t->criteria[i]->required, "actual",
                                              t->criteria[i]->actual, "met", t->criteria[i]->met));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "from", pk_tier_name(t->from),
                     "to", pk_tier_name(t->to), "cause", t->cause, "rule", t->rule, "at_ms",
                     (json_int_t)t->at_ms, "containment_ms", (json_int_t)t->containment_ms,
                     "criteria", crit, "verdict",
                     t->verdict ? cli_verdict_json(t->verdict) : json_null());
}

static json_t *governance_json(const Pactum__V1__GovernanceEntry *e)
{
    const Pactum__V1__GovernanceRecord *r = e->record;
    json_t *o = NULL;

    if (r->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE)
        o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "type", "dispute", "id",
                      r->dispute->dispute_id, "opened_by", r->dispute->opened_by, "verdict_vseq",
                      (json_int_t)r->dispute->verdict_vseq, "event_id", r->dispute->event_id,
                      "reason", r->dispute->reason, "counter_evidence",
                      r->dispute->counter_evidence, "at_ms", (json_int_t)r->dispute->opened_ms);
    else if (r->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING)
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", "ruling", "dispute",
                      r->ruling->dispute_id, "arbiter", r->ruling->arbiter_id, "outcome",
                      r->ruling->overturned ? "overturned" : "upheld", "reason", r->ruling->reason,
                      "at_ms", (json_int_t)r->ruling->ruled_ms);
    if (o && e->effect) {
        json_t *removed = json_array();
        for (size_t i = 0; i < e->effect->n_verdicts_removed; i++)
            json_array_append_new(removed,
                                  json_integer((json_int_t)e->effect->verdicts_removed[i]));
        json_object_set_new(o, "effect",
                            json_pack("{s:o, s:f, s:f, s:f, s:f, s:s, s:s}", "verdicts_removed",
                                      removed, "score_before", e->effect->score_before_ppm / 1e6,
                                      "score_after", e->effect->score_after_ppm / 1e6,
                                      "lower_before", e->effect->lower_before_ppm / 1e6,
                                      "lower_after", e->effect->lower_after_ppm / 1e6,
                                      "tier_before", pk_tier_name(e->effect->tier_before),
                                      "tier_after", pk_tier_name(e->effect->tier_after)));
    }
    return o ? o : json_null();
}

static json_t *scope_json(const Pactum__V1__TierScope *s)
{
    return json_pack(
        "{s:s, s:b, s:b, s:o, s:o, s:b, s:f, s:o, s:o}", "tier", pk_tier_name(s->tier), "nothing",
        s->nothing, "any_action", s->any_action, "actions", strings_json(s->actions, s->n_actions),
        "approval", strings_json(s->approval, s->n_approval), "spend_needs_approval",
        s->spend_needs_approval, "spend_per_action", s->spend_per_action, "allowed_by_override",
        strings_json(s->allowed_by_override, s->n_allowed_by_override), "denied_by_override",
        strings_json(s->denied_by_override, s->n_denied_by_override));
}

json_t *cli_report_json(const Pactum__V1__TrustReport *r)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "status", status_name(r->status), "message",
                  r->message, "agent", r->agent_id, "registered", r->registered, "trust_seq",
                  (json_int_t)r->trust_seq, "answered_ms", (json_int_t)r->answered_ms);
    const Pactum__V1__TrustState *s = r->state;

    if (!o)
        return json_null();
    if (s) {
        json_t *clauses = json_array(), *viol = json_object();
        json_object_set_new(o, "tier", json_string(pk_tier_name(s->tier)));
        json_object_set_new(o, "effective_tier", json_string(pk_tier_name(r->effective_tier)));
        json_object_set_new(o, "effective_by",
                            r->effective_by ? override_json(r->effective_by, r->answered_ms)
                                            : json_null());
        json_object_set_new(o, "held", json_boolean(s->held));
        json_object_set_new(o, "open_disputes", json_integer((json_int_t)s->n_open_disputes));
        json_object_set_new(o, "tier_since_ms", json_integer(s->tier_since_ms));
        json_object_set_new(o, "score", json_real(ppm(s->score_ppm)));
        json_object_set_new(o, "lower_bound", json_real(ppm(s->lower_ppm)));
        json_object_set_new(o, "evidence", json_integer((json_int_t)s->evidence));
        json_object_set_new(o, "newest_evidence_ms", json_integer(s->newest_evidence_ms));
        json_object_set_new(o, "change_seq", json_integer((json_int_t)s->change_seq));
        for (size_t i = 0; i < s->n_violations; i++)
            json_object_set_new(viol, pk_severity_name(s->violations[i]->severity),
                                json_integer((json_int_t)s->violations[i]->count));
        json_object_set_new(o, "violations", viol);
        for (size_t i = 0; i < s->n_clauses; i++) {
            const Pactum__V1__ClauseScore *c = s->clauses[i];
            json_array_append_new(
                clauses,
                json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:s}", "pact", c->pact_id, "clause",
                          c->clause_id, "severity", pk_severity_name(c->severity), "score",
                          ppm(c->score_ppm), "lower_bound", ppm(c->lower_ppm), "passes",
                          (json_int_t)c->passes, "fails", (json_int_t)c->fails, "last_outcome",
                          pk_outcome_name(c->last_outcome)));
        }
        json_object_set_new(o, "clauses", clauses);
    }
    {
        json_t *pacts = json_array(), *hist = json_array();
        for (size_t i = 0; i < r->n_pacts; i++) {
            char hash[PK_HASH_BYTES * 2 + 1];
            hex_of(&r->pacts[i]->hash, hash, sizeof(hash));
            json_array_append_new(
                pacts, json_pack("{s:s, s:i, s:s, s:I}", "id", r->pacts[i]->pact_id, "version",
                                 (int)r->pacts[i]->version, "hash", hash, "registered_ms",
                                 (json_int_t)r->pacts[i]->registered_ms));
        }
        for (size_t i = 0; i < r->n_tier_history; i++)
            json_array_append_new(hist, tier_change_json(r->tier_history[i]));
        json_object_set_new(o, "pacts", pacts);
        json_object_set_new(o, "tier_history", hist);
        {
            json_t *ov = json_array(), *disp = json_array(), *cont = json_array();
            for (size_t i = 0; i < r->n_overrides; i++)
                json_array_append_new(ov, override_json(r->overrides[i], r->answered_ms));
            for (size_t i = 0; i < r->n_disputes; i++)
                json_array_append_new(disp, governance_json(r->disputes[i]));
            for (size_t i = 0; i < r->n_containments; i++)
                json_array_append_new(cont, tier_change_json(r->containments[i]));
            json_object_set_new(o, "overrides", ov);
            json_object_set_new(o, "disputes", disp);
            json_object_set_new(o, "containments", cont);
            json_object_set_new(o, "scope", r->scope ? scope_json(r->scope) : json_null());
        }
        json_object_set_new(o, "last_violation",
                            r->last_violation ? cli_verdict_json(r->last_violation) : json_null());
        {
            Pactum__V1__TrustReport view = PACTUM__V1__TRUST_REPORT__INIT;
            json_t *tmp;
            /* the log head and windows, in the generic JSON form (pk/pbjson.h) */
            view.log_head = r->log_head;
            view.violations_24h = r->violations_24h;
            view.n_violations_24h = r->n_violations_24h;
            view.violations_7d = r->violations_7d;
            view.n_violations_7d = r->n_violations_7d;
            view.violations_30d = r->violations_30d;
            view.n_violations_30d = r->n_violations_30d;
            tmp = pk_pb_json(&view.base);
            json_object_set(o, "violations_24h", json_object_get(tmp, "violations_24h"));
            json_object_set(o, "violations_7d", json_object_get(tmp, "violations_7d"));
            json_object_set(o, "violations_30d", json_object_get(tmp, "violations_30d"));
            json_object_set(o, "log_head", json_object_get(tmp, "log_head"));
            json_decref(tmp);
            json_object_set_new(o, "logged", json_boolean(r->logged));
            if (r->logged)
                json_object_set_new(o, "log_index", json_integer((json_int_t)r->log_index));
        }
    }
    return o;
}

void cli_clock(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void ago(int64_t ms, char *buf, size_t len)
{
    int64_t d = pk_now_ms() - ms;

    if (ms <= 0)
        snprintf(buf, len, "never");
    else if (d < 1000)
        snprintf(buf, len, "%lld ms ago", (long long)(d < 0 ? 0 : d));
    else if (d < 120000)
        snprintf(buf, len, "%lld s ago", (long long)(d / 1000));
    else if (d < 7200000)
        snprintf(buf, len, "%lld min ago", (long long)(d / 60000));
    else
        snprintf(buf, len, "%lld h ago", (long long)(d / 3600000));
}

void cli_report_print(const Pactum__V1__TrustReport *r)
{
    const Pactum__V1__TrustState *s = r->state;
    char when[40], rel[32];

    if (r->status != PACTUM__V1__QUERY_STATUS__QUERY_OK) {
        printf("%s: %s\n", status_name(r->status), r->message);
        return;
    }
    printf("agent           %s%s\n", r->agent_id, r->registered ? "" : " (not in the registry)");
    if (s) {
        cli_clock(s->tier_since_ms, when, sizeof(when));
        printf("tier            %s (since %s)%s\n", pk_tier_name(s->tier), when,
               s->held ? ", held: leaving needs its re-entry criteria" : "");
        if (r->effective_tier != s->tier && r->effective_by) {
            cli_clock(r->effective_by->expires_ms, when, sizeof(when));
            printf("in force        %s by override %s of %s until %s: %s\n",
                   pk_tier_name(r->effective_tier), r->effective_by->override_id,
                   r->effective_by->operator_id, when, r->effective_by->reason);
        }
        ago(s->newest_evidence_ms, rel, sizeof(rel));
        if (s->evidence == 0)
            printf("score           insufficient evidence (no evaluations yet)\n");
        else
            printf("score           %.4f (lower bound %.4f; %llu evaluations; newest evidence "
                   "%s)\n",
                   ppm(s->score_ppm), ppm(s->lower_ppm), (unsigned long long)s->evidence, rel);
        printf("violations     ");
        if (s->n_violations == 0)
            printf(" none");
        for (size_t i = 0; i < s->n_violations; i++)
            printf(" %s %llu", pk_severity_name(s->violations[i]->severity),
                   (unsigned long long)s->violations[i]->count);
        printf("\n");
    }
    for (size_t i = 0; i < r->n_pacts; i++) {
        char hash[PK_HASH_BYTES * 2 + 1];
        hex_of(&r->pacts[i]->hash, hash, sizeof(hash));
        printf("%s %s v%u sha256:%.16s...\n", i == 0 ? "pacts          " : "               ",
               r->pacts[i]->pact_id, r->pacts[i]->version, hash);
    }
    if (r->log_head.len) {
        Pactum__V1__Signed *env =
            pactum__v1__signed__unpack(NULL, r->log_head.len, r->log_head.data);
        Pactum__V1__TreeHead *th =
            env ? pactum__v1__tree_head__unpack(NULL, env->payload.len, env->payload.data) : NULL;
        if (th && r->logged)
            printf("log             leaf %llu of log %s (%llu leaves)\n",
                   (unsigned long long)r->log_index, th->log_id, (unsigned long long)th->size);
        else if (th)
            printf("log             not yet in log %s (%llu leaves)\n", th->log_id,
                   (unsigned long long)th->size);
        if (th)
            pactum__v1__tree_head__free_unpacked(th, NULL);
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
    }
    if (s && s->n_clauses) {
        printf("clauses\n");
        for (size_t i = 0; i < s->n_clauses; i++) {
            const Pactum__V1__ClauseScore *c = s->clauses[i];
            char name[2 * PK_ID_MAX + 2];
            snprintf(name, sizeof(name), "%s/%s", c->pact_id, c->clause_id);
            printf("  %-28s %-8s score %.4f lower %.4f  pass %llu fail %llu  last %s\n", name,
                   pk_severity_name(c->severity), ppm(c->score_ppm), ppm(c->lower_ppm),
                   (unsigned long long)c->passes, (unsigned long long)c->fails,
                   pk_outcome_name(c->last_outcome));
        }
    }
    if (r->scope) {
        const Pactum__V1__TierScope *sc = r->scope;
        printf("may do now     ");
        if (sc->nothing)
            printf(" nothing (%s)", pk_tier_name(sc->tier));
        else if (sc->any_action)
            printf(" what the pact's scope allows");
        else
            for (size_t i = 0; i < sc->n_actions; i++)
                printf(" %s", sc->actions[i]);
        if (sc->n_approval) {
            printf("; approval needed for");
            for (size_t i = 0; i < sc->n_approval; i++)
                printf(" %s", sc->approval[i]);
        }
        if (sc->spend_needs_approval)
            printf("; spending needs approval");
        if (sc->spend_per_action > 0)
            printf("; at most %g per action", sc->spend_per_action);
        for (size_t i = 0; i < sc->n_allowed_by_override; i++)
            printf("%s%s", i ? " " : "; allowed by override: ", sc->allowed_by_override[i]);
        for (size_t i = 0; i < sc->n_denied_by_override; i++)
            printf("%s%s", i ? " " : "; denied by override: ", sc->denied_by_override[i]);
        printf("\n");
    }
    if (r->last_violation) {
        const Pactum__V1__Verdict *v = r->last_violation;
        printf("last violation  verdict #%llu %s/%s (%s) %s: %s\n", (unsigned long long)v->vseq,
               v->pact_id, v->clause_id, pk_severity_name(v->severity), pk_outcome_name(v->outcome),
               v->detail);
        if (v->n_evidence)
            printf("                evidence: event %s (PACTUM_EVENTS #%llu); pact %s v%u\n",
                   v->evidence[0]->event_id, (unsigned long long)v->evidence[0]->seq, v->pact_id,
                   v->pact_version);
        for (size_t i = 0; r->state && i < r->state->n_overturned; i++) {
            if (r->state->overturned[i] == v->vseq)
                printf("                overturned by a ruling: it no longer counts\n");
        }
    }
    if (r->n_overrides) {
        printf("overrides (newest first)\n");
        for (size_t i = 0; i < r->n_overrides; i++) {
            const Pactum__V1__Override *o = r->overrides[i];
            char until[40];
            cli_clock(o->expires_ms, until, sizeof(until));
            printf("  %-14s by %-10s %s until %s%s: %s\n", o->override_id, o->operator_id,
                   o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER    ? pk_tier_name(o->tier)
                   : o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW ? "allow"
                                                                          : "deny",
                   until,
                   o->created_ms <= r->answered_ms && r->answered_ms < o->expires_ms ? " (in force)"
                                                                                     : " (expired)",
                   o->reason);
        }
    }
    if (r->n_disputes) {
        printf("disputes and rulings (newest first)\n");
        for (size_t i = 0; i < r->n_disputes; i++) {
            const Pactum__V1__GovernanceRecord *g = r->disputes[i]->record;
            const Pactum__V1__RulingEffect *e = r->disputes[i]->effect;
            if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE)
                printf("  dispute %s by %s on %s%s%s: %s\n", g->dispute->dispute_id,
                       g->dispute->opened_by, g->dispute->verdict_vseq ? "a verdict" : "event ",
                       g->dispute->event_id, "", g->dispute->reason);
            else if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING)
                printf("  ruling on %s by %s: %s (%s)%s\n", g->ruling->dispute_id,
                       g->ruling->arbiter_id, g->ruling->overturned ? "overturned" : "upheld",
                       g->ruling->reason, e ? "" : "");
            if (e)
                printf("      it changed: score %.4f -> %.4f, tier %s -> %s, %zu verdict%s "
                       "removed\n",
                       ppm(e->score_before_ppm), ppm(e->score_after_ppm),
                       pk_tier_name(e->tier_before), pk_tier_name(e->tier_after),
                       e->n_verdicts_removed, e->n_verdicts_removed == 1 ? "" : "s");
        }
    }
    if (r->n_tier_history) {
        printf("tier history (newest first)\n");
        for (size_t i = 0; i < r->n_tier_history; i++) {
            const Pactum__V1__TierChange *t = r->tier_history[i];
            cli_clock(t->at_ms, when, sizeof(when));
            printf("  %s  %-10s -> %-10s %s: %s", when, pk_tier_name(t->from), pk_tier_name(t->to),
                   t->rule, t->cause);
            if (t->containment_ms)
                printf(" [contained %lld ms after ingest]", (long long)t->containment_ms);
            printf("\n");
            for (size_t k = 0; k < t->n_criteria; k++)
                printf("      %s %s: %s (required %s)\n",
                       t->criteria[k]->met ? "met    " : "not met", t->criteria[k]->name,
                       t->criteria[k]->actual, t->criteria[k]->required);
        }
    }
    if (r->message && *r->message)
        printf("note            %s\n", r->message);
}
