/*
 * Rendering of trust reports and verdicts, as JSON or as text for a person.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/crypto.h"

static double ppm(uint32_t v)
{
    return (double)v / 1e6;
}

static const char *status_name(Pactum__V1__QueryStatus s)
{
    switch (s) {
    case PACTUM__V1__QUERY_STATUS__QUERY_OK: return "ok";
    case PACTUM__V1__QUERY_STATUS__QUERY_UNKNOWN_AGENT: return "unknown_agent";
    case PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST: return "bad_request";
    case PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE: return "unavailable";
    default: return "unspecified";
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
        json_array_append_new(tally, json_pack("{s:s, s:i, s:i, s:f}", "source",
                                               pk_source_name(v->tally[i]->source), "pass",
                                               (int)v->tally[i]->pass, "fail",
                                               (int)v->tally[i]->fail, "weight",
                                               v->tally[i]->weight_ppm / 1e6));
    for (size_t i = 0; i < v->n_evidence; i++)
        json_array_append_new(evidence, json_pack("{s:s, s:I}", "event_id",
                                                  v->evidence[i]->event_id, "events_seq",
                                                  (json_int_t)v->evidence[i]->seq));
    o = json_pack("{s:s, s:I, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:f, s:f, s:s, s:s, "
                  "s:s, s:I, s:i, s:I, s:o, s:o, s:I, s:I, s:I, s:s, s:s}",
                  "agent", v->agent_id, "vseq", (json_int_t)v->vseq, "pact", v->pact_id,
                  "pact_version", (int)v->pact_version, "pact_hash", hash, "clause", v->clause_id,
                  "kind", v->clause_kind, "severity", pk_severity_name(v->severity), "outcome",
                  pk_outcome_name(v->outcome), "previous", pk_outcome_name(v->previous),
                  "violation", v->violation, "observed", v->observed, "threshold", v->threshold,
                  "op", v->op, "aggregate", v->aggregate, "metric", v->metric, "window_ms",
                  (json_int_t)v->window_ms, "window_events", (int)v->window_events, "samples",
                  (json_int_t)v->samples, "tally", tally, "evidence", evidence, "evaluated_ms",
                  (json_int_t)v->evaluated_ms, "event_ts_ms", (json_int_t)v->event_ts_ms,
                  "ingest_ms", (json_int_t)v->ingest_ms, "consequence", v->consequence, "detail",
                  v->detail);
    return o ? o : json_null();
}

static json_t *tier_change_json(const Pactum__V1__TierChange *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "from", pk_tier_name(t->from), "to",
                     pk_tier_name(t->to), "cause", t->cause, "rule", t->rule, "at_ms",
                     (json_int_t)t->at_ms, "containment_ms", (json_int_t)t->containment_ms,
                     "verdict", t->verdict ? cli_verdict_json(t->verdict) : json_null());
}

json_t *cli_report_json(const Pactum__V1__TrustReport *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "status", status_name(r->status),
                          "message", r->message, "agent", r->agent_id, "registered",
                          r->registered, "trust_seq", (json_int_t)r->trust_seq, "answered_ms",
                          (json_int_t)r->answered_ms);
    const Pactum__V1__TrustState *s = r->state;

    if (!o)
        return json_null();
    if (s) {
        json_t *clauses = json_array(), *viol = json_object();
        json_object_set_new(o, "tier", json_string(pk_tier_name(s->tier)));
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
                json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:s}", "pact", c->pact_id,
                          "clause", c->clause_id, "severity", pk_severity_name(c->severity),
                          "score", ppm(c->score_ppm), "lower_bound", ppm(c->lower_ppm), "passes",
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
            json_array_append_new(pacts, json_pack("{s:s, s:i, s:s, s:I}", "id",
                                                   r->pacts[i]->pact_id, "version",
                                                   (int)r->pacts[i]->version, "hash", hash,
                                                   "registered_ms",
                                                   (json_int_t)r->pacts[i]->registered_ms));
        }
        for (size_t i = 0; i < r->n_tier_history; i++)
            json_array_append_new(hist, tier_change_json(r->tier_history[i]));
        json_object_set_new(o, "pacts", pacts);
        json_object_set_new(o, "tier_history", hist);
        json_object_set_new(o, "last_violation",
                            r->last_violation ? cli_verdict_json(r->last_violation) : json_null());
    }
    return o;
}

static void clock_of(int64_t ms, char *buf, size_t len)
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
        clock_of(s->tier_since_ms, when, sizeof(when));
        printf("tier            %s (since %s)\n", pk_tier_name(s->tier), when);
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
    if (r->last_violation) {
        const Pactum__V1__Verdict *v = r->last_violation;
        printf("last violation  verdict #%llu %s/%s (%s) %s: %s\n", (unsigned long long)v->vseq,
               v->pact_id, v->clause_id, pk_severity_name(v->severity),
               pk_outcome_name(v->outcome), v->detail);
        if (v->n_evidence)
            printf("                evidence: event %s (PACTUM_EVENTS #%llu); pact %s v%u\n",
                   v->evidence[0]->event_id, (unsigned long long)v->evidence[0]->seq, v->pact_id,
                   v->pact_version);
    }
    if (r->n_tier_history) {
        printf("tier history (newest first)\n");
        for (size_t i = 0; i < r->n_tier_history; i++) {
            const Pactum__V1__TierChange *t = r->tier_history[i];
            clock_of(t->at_ms, when, sizeof(when));
            printf("  %s  %-10s -> %-10s %s: %s", when, pk_tier_name(t->from), pk_tier_name(t->to),
                   t->rule, t->cause);
            if (t->containment_ms)
                printf(" [contained %lld ms after ingest]", (long long)t->containment_ms);
            printf("\n");
        }
    }
    if (r->message && *r->message)
        printf("note            %s\n", r->message);
}
