#include "score.h"

#include <stdio.h>
#include <string.h>

/* Weight of a clause in the composite, by severity (info .. critical). */
static const uint64_t severity_weight[6] = {0, 1, 2, 4, 8, 16};

#define T_TRUSTED PACTUM__V1__TIER__TIER_TRUSTED
#define T_STANDARD PACTUM__V1__TIER__TIER_STANDARD
#define T_WATCH PACTUM__V1__TIER__TIER_WATCH
#define T_RESTRICTED PACTUM__V1__TIER__TIER_RESTRICTED
#define T_CONTAINED PACTUM__V1__TIER__TIER_CONTAINED
#define T_SUSPENDED PACTUM__V1__TIER__TIER_SUSPENDED

void pk_trust_init(pk_trust *t, const char *agent_id, int64_t now_ms)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", agent_id);
    t->tier = T_WATCH;
    t->tier_since_ms = now_ms;
}

uint64_t pk_isqrt(uint64_t x)
{
    uint64_t r = 0, bit = 1ull << 62;

    while (bit > x)
        bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

void pk_beta_bounds(uint64_t alpha, uint64_t beta, uint32_t *mean, uint32_t *lower)
{
    unsigned __int128 s = (unsigned __int128)alpha + beta;
    uint64_t m, var12, sd, margin;

    if (s == 0) {
        *mean = 0;
        *lower = 0;
        return;
    }
    m = (uint64_t)(((unsigned __int128)alpha * PK_PPM) / s);
    /* Beta variance m(1-m)/(a+b+1), in ppm squared; a+b+1 = (s + 1e6) / 1e6. */
    var12 = (uint64_t)(((unsigned __int128)m * (PK_PPM - m) * PK_PPM) / (s + PK_PPM));
    sd = pk_isqrt(var12);
    margin = sd * PK_Z_MILLI / 1000;
    *mean = (uint32_t)m;
    *lower = (uint32_t)(m > margin ? m - margin : 0);
}

void pk_trust_recompute(pk_trust *t)
{
    uint64_t wsum = 0, msum = 0, lsum = 0, evidence = 0;

    for (size_t i = 0; i < t->n; i++) {
        const pk_clause_score *c = &t->c[i];
        uint32_t mean, lower;
        uint64_t w = severity_weight[c->severity >= 0 && c->severity < 6 ? c->severity : 0];
        evidence += c->passes + c->fails;
        if (c->passes + c->fails == 0)
            continue; /* no evidence yet: it does not count as good */
        pk_beta_bounds(c->alpha, c->beta, &mean, &lower);
        wsum += w;
        msum += w * mean;
        lsum += w * lower;
    }
    t->evidence = evidence;
    t->score = wsum ? (uint32_t)(msum / wsum) : 0;
    t->lower = wsum ? (uint32_t)(lsum / wsum) : 0;
}

int pk_tier_from_score(const pk_trust *t)
{
    if (t->evidence < PK_MIN_EVIDENCE)
        return T_WATCH;
    if (t->lower >= 900000)
        return T_TRUSTED;
    if (t->lower >= 750000)
        return T_STANDARD;
    if (t->lower >= 500000)
        return T_WATCH;
    return T_RESTRICTED;
}

static pk_clause_score *clause_of(pk_trust *t, const char *pact, const char *clause)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->c[i].pact_id, pact) == 0 && strcmp(t->c[i].clause_id, clause) == 0)
            return &t->c[i];
    }
    if (t->n == PK_SCORE_MAX_CLAUSES)
        return NULL;
    pk_clause_score *c = &t->c[t->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->pact_id, sizeof(c->pact_id), "%s", pact);
    snprintf(c->clause_id, sizeof(c->clause_id), "%s", clause);
    c->alpha = PK_PRIOR_MICRO;
    c->beta = PK_PRIOR_MICRO;
    return c;
}

void pk_trust_apply(pk_trust *t, const pk_verdict_msg *v, int64_t now_ms, pk_trust_effect *out)
{
    pk_clause_score *c;
    uint32_t old_score = t->score;
    int to;
    bool contain, suspend;

    memset(out, 0, sizeof(*out));
    out->from_tier = out->to_tier = t->tier;
    if (v->vseq <= t->last_vseq)
        return; /* already applied */
    out->applied = true;
    t->last_vseq = v->vseq;
    /* A burn-rate trigger speaks about the clause's error budget; it carries
     * no evaluations and its severity is the trigger's, not the clause's. */
    c = v->trigger[0] ? NULL : clause_of(t, v->pact_id, v->clause_id);
    if (c) {
        c->severity = (int)v->severity;
        for (size_t i = 0; i < v->n_tally; i++) {
            const Pactum__V1__SourceTally *s = v->tally[i];
            c->alpha += (uint64_t)s->pass * s->weight_ppm;
            c->beta += (uint64_t)s->fail * s->weight_ppm;
            c->passes += s->pass;
            c->fails += s->fail;
        }
        c->last_outcome = (int)v->outcome;
        if (v->event_ts_ms > c->last_ts_ms)
            c->last_ts_ms = v->event_ts_ms;
    }
    if (v->event_ts_ms > t->newest_ms)
        t->newest_ms = v->event_ts_ms;
    if (v->violation && v->severity < 6)
        t->violations[v->severity]++;
    pk_trust_recompute(t);
    out->score_delta = (int64_t)t->score - (int64_t)old_score;

    to = t->tier;
    suspend = v->violation && strcmp(v->consequence, "suspend") == 0;
    contain = v->violation && (strcmp(v->consequence, "contain") == 0 ||
                               v->severity == PACTUM__V1__SEVERITY__SEVERITY_CRITICAL);
    if (t->tier == T_CONTAINED || t->tier == T_SUSPENDED) {
        if (suspend && t->tier == T_CONTAINED) {
            to = T_SUSPENDED;
            snprintf(out->rule, sizeof(out->rule), "consequence suspend");
        }
        /* otherwise stays until an explicit re-entry */
    } else if (suspend) {
        to = T_SUSPENDED;
        snprintf(out->rule, sizeof(out->rule), "consequence suspend");
    } else if (contain) {
        to = T_CONTAINED;
        snprintf(out->rule, sizeof(out->rule), "critical violation contains at once");
    } else {
        to = pk_tier_from_score(t);
        snprintf(out->rule, sizeof(out->rule), "score");
        if (v->violation && strcmp(v->consequence, "restrict") == 0 && to < T_RESTRICTED) {
            to = T_RESTRICTED;
            snprintf(out->rule, sizeof(out->rule), "consequence restrict");
        } else if (v->violation && strcmp(v->consequence, "demote") == 0) {
            int down = t->tier + 1 < T_RESTRICTED ? t->tier + 1 : T_RESTRICTED;
            if (down > to) {
                to = down;
                snprintf(out->rule, sizeof(out->rule), "consequence demote");
            }
        }
    }
    out->to_tier = to;
    if (to != t->tier) {
        if (strcmp(out->rule, "score") == 0)
            snprintf(out->cause, sizeof(out->cause),
                     "lower bound %u.%06u with %llu evaluations (after %s/%s %s)",
                     t->lower / PK_PPM, t->lower % PK_PPM, (unsigned long long)t->evidence,
                     v->pact_id, v->clause_id, pk_outcome_name(v->outcome));
        else
            snprintf(out->cause, sizeof(out->cause), "%s/%s (%s) %s: %s", v->pact_id,
                     v->clause_id, pk_severity_name(v->severity), pk_outcome_name(v->outcome),
                     v->detail);
        t->tier = to;
        t->tier_since_ms = now_ms;
    } else {
        snprintf(out->cause, sizeof(out->cause), "%s/%s %s", v->pact_id, v->clause_id,
                 pk_outcome_name(v->outcome));
    }
}

void pk_trust_to_msg(const pk_trust *t, Pactum__V1__TrustState *m, pk_trust_msg_storage *s)
{
    size_t nv = 0;

    pactum__v1__trust_state__init(m);
    m->agent_id = (char *)t->agent_id;
    m->score_ppm = t->score;
    m->lower_ppm = t->lower;
    m->evidence = t->evidence;
    m->newest_evidence_ms = t->newest_ms;
    m->tier = (Pactum__V1__Tier)t->tier;
    m->tier_since_ms = t->tier_since_ms;
    m->change_seq = t->change_seq;
    m->last_vseq = t->last_vseq;
    for (size_t i = 0; i < t->n; i++) {
        const pk_clause_score *c = &t->c[i];
        Pactum__V1__ClauseScore *o = &s->cs[i];
        uint32_t mean, lower;
        pactum__v1__clause_score__init(o);
        o->pact_id = (char *)c->pact_id;
        o->clause_id = (char *)c->clause_id;
        o->severity = (Pactum__V1__Severity)c->severity;
        o->alpha_micro = c->alpha;
        o->beta_micro = c->beta;
        pk_beta_bounds(c->alpha, c->beta, &mean, &lower);
        o->score_ppm = c->passes + c->fails ? mean : 0;
        o->lower_ppm = c->passes + c->fails ? lower : 0;
        o->last_outcome = (Pactum__V1__Outcome)c->last_outcome;
        o->last_ts_ms = c->last_ts_ms;
        o->passes = c->passes;
        o->fails = c->fails;
        s->csp[i] = o;
    }
    m->n_clauses = t->n;
    m->clauses = s->csp;
    for (int sev = 1; sev < 6; sev++) {
        if (!t->violations[sev])
            continue;
        pactum__v1__severity_count__init(&s->sc[nv]);
        s->sc[nv].severity = (Pactum__V1__Severity)sev;
        s->sc[nv].count = t->violations[sev];
        s->scp[nv] = &s->sc[nv];
        nv++;
    }
    m->n_violations = nv;
    m->violations = s->scp;
}

void pk_trust_from_msg(pk_trust *t, const Pactum__V1__TrustState *m)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", m->agent_id);
    t->score = m->score_ppm;
    t->lower = m->lower_ppm;
    t->evidence = m->evidence;
    t->newest_ms = m->newest_evidence_ms;
    t->tier = (int)m->tier;
    t->tier_since_ms = m->tier_since_ms;
    t->change_seq = m->change_seq;
    t->last_vseq = m->last_vseq;
    for (size_t i = 0; i < m->n_clauses && i < PK_SCORE_MAX_CLAUSES; i++) {
        const Pactum__V1__ClauseScore *o = m->clauses[i];
        pk_clause_score *c = &t->c[t->n++];
        snprintf(c->pact_id, sizeof(c->pact_id), "%s", o->pact_id);
        snprintf(c->clause_id, sizeof(c->clause_id), "%s", o->clause_id);
        c->severity = (int)o->severity;
        c->alpha = o->alpha_micro;
        c->beta = o->beta_micro;
        c->passes = o->passes;
        c->fails = o->fails;
        c->last_outcome = (int)o->last_outcome;
        c->last_ts_ms = o->last_ts_ms;
    }
    for (size_t i = 0; i < m->n_violations; i++) {
        if (m->violations[i]->severity < 6)
            t->violations[m->violations[i]->severity] = m->violations[i]->count;
    }
}
