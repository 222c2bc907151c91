#include "pk/trust.h"

#include "pk/log.h"
#include "pk/tiers.h"

#include <stdio.h>
#include <string.h>

/* Weight of a clause in the composite, by severity (info .. critical). */
static const uint64_t severity_weight[] = {0, 1, 2, 4, 8, 16};
_Static_assert(sizeof(severity_weight) / sizeof(severity_weight[0]) == PK_SEVERITIES,
               "a weight for every severity");

/* round(2^32 * 2^(-i/64)), i = 0..64 */
static const uint64_t exp2_neg_q32[65] = {
    4294967296ull, 4248701965ull, 4202935003ull, 4157661043ull, 4112874773ull, 4068570940ull,
    4024744348ull, 3981389855ull, 3938502376ull, 3896076880ull, 3854108391ull, 3812591987ull,
    3771522796ull, 3730896002ull, 3690706840ull, 3650950594ull, 3611622603ull, 3572718252ull,
    3534232978ull, 3496162267ull, 3458501653ull, 3421246719ull, 3384393094ull, 3347936457ull,
    3311872529ull, 3276197082ull, 3240905930ull, 3205994934ull, 3171459999ull, 3137297074ull,
    3103502151ull, 3070071267ull, 3037000500ull, 3004285971ull, 2971923842ull, 2939910317ull,
    2908241642ull, 2876914102ull, 2845924021ull, 2815267765ull, 2784941738ull, 2754942382ull,
    2725266179ull, 2695909648ull, 2666869345ull, 2638141863ull, 2609723834ull, 2581611923ull,
    2553802834ull, 2526293303ull, 2499080105ull, 2472160047ull, 2445529972ull, 2419186755ull,
    2393127307ull, 2367348571ull, 2341847524ull, 2316621173ull, 2291666561ull, 2266980759ull,
    2242560872ull, 2218404036ull, 2194507417ull, 2170868212ull, 2147483648ull,
};

uint64_t pk_decay_q32(int64_t dt_ms, int64_t half_life_ms)
{
    uint64_t whole, frac, idx, rem, a, b, v;

    if (dt_ms <= 0 || half_life_ms <= 0)
        return 1ull << 32;
    whole = (uint64_t)(dt_ms / half_life_ms);
    if (whole >= 64)
        return 0;
    /* fraction of a half-life in 1/2^20 units, split into a table step (1/64) and the rest */
    frac = (uint64_t)(((unsigned __int128)(uint64_t)(dt_ms % half_life_ms) << 20) /
                      (uint64_t)half_life_ms);
    idx = frac >> 14;
    rem = frac & 16383;
    a = exp2_neg_q32[idx];
    b = exp2_neg_q32[idx + 1];
    v = a - (((a - b) * rem) >> 14); /* linear between table points */
    return v >> whole;
}

void pk_trust_init(pk_trust *t, const char *agent_id, int64_t now_ms)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", agent_id);
    t->tier = PACTUM__V1__TIER__TIER_WATCH;
    t->tier_since_ms = now_ms;
    t->clock_ms = now_ms;
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

void pk_clause_posterior(const pk_clause_score *c, const pk_governance *g, uint64_t *alpha,
                         uint64_t *beta)
{
    uint64_t cap = (uint64_t)g->source_cap * PK_PPM;

    *alpha = PK_PRIOR_MICRO;
    *beta = PK_PRIOR_MICRO;
    for (int s = 1; s < PK_SOURCES; s++) {
        uint64_t p = c->pass_m[s], f = c->fail_m[s], mass = p + f;
        /* no one source may carry more than source_cap evaluations' weight */
        if (mass > cap) {
            p = (uint64_t)(((unsigned __int128)p * cap) / mass);
            f = (uint64_t)(((unsigned __int128)f * cap) / mass);
        }
        *alpha += p;
        *beta += f;
    }
}

/* Bring a clause's masses forward to time `to` (never backwards). Returns the
 * weight kept, ppm. */
static int64_t decay_clause(pk_clause_score *c, int64_t to, const pk_governance *g)
{
    uint64_t d;

    if (c->decayed_to_ms == 0 || to <= c->decayed_to_ms) {
        if (c->decayed_to_ms == 0)
            c->decayed_to_ms = to;
        return PK_PPM;
    }
    d = pk_decay_q32(to - c->decayed_to_ms, g->half_life_ms);
    for (int s = 0; s < PK_SOURCES; s++) {
        c->pass_m[s] = (uint64_t)(((unsigned __int128)c->pass_m[s] * d) >> 32);
        c->fail_m[s] = (uint64_t)(((unsigned __int128)c->fail_m[s] * d) >> 32);
    }
    c->decayed_to_ms = to;
    return (int64_t)((d * PK_PPM) >> 32);
}

static bool has_mass(const pk_clause_score *c)
{
    for (int s = 0; s < PK_SOURCES; s++) {
        if (c->pass_m[s] || c->fail_m[s])
            return true;
    }
    return false;
}

void pk_trust_recompute(pk_trust *t, const pk_governance *g)
{
    uint64_t wsum = 0, msum = 0, lsum = 0, evidence = 0;

    for (size_t i = 0; i < t->n; i++) {
        pk_clause_score *c = &t->c[i];
        uint64_t alpha, beta,
            w = severity_weight[c->severity >= 0 && c->severity < PK_SEVERITIES ? c->severity : 0];
        uint32_t mean, lower;
        decay_clause(c, t->clock_ms, g); /* no fresh evidence: confidence drops */
        evidence += c->passes + c->fails;
        if (!has_mass(c))
            continue; /* no evidence (or all forgotten): it does not count as good */
        pk_clause_posterior(c, g, &alpha, &beta);
        pk_beta_bounds(alpha, beta, &mean, &lower);
        wsum += w;
        msum += w * mean;
        lsum += w * lower;
    }
    t->evidence = evidence;
    t->score = wsum ? (uint32_t)(msum / wsum) : 0;
    t->lower = wsum ? (uint32_t)(lsum / wsum) : 0;
}

static pk_clause_score *clause_of(pk_trust *t, const char *pact, const char *clause)
{
    pk_clause_score *c;

    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->c[i].pact_id, pact) == 0 && strcmp(t->c[i].clause_id, clause) == 0)
            return &t->c[i];
    }
    if (t->n == PK_SCORE_MAX_CLAUSES)
        return NULL;
    c = &t->c[t->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->pact_id, sizeof(c->pact_id), "%s", pact);
    snprintf(c->clause_id, sizeof(c->clause_id), "%s", clause);
    return c;
}

int64_t pk_verdict_time(const pk_verdict_msg *v)
{
    return v->received_ms ? v->received_ms : v->evaluated_ms;
}

int64_t pk_governance_time(const Pactum__V1__GovernanceRecord *rec)
{
    switch (rec->record_case) {
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE:
        return rec->override->created_ms;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
        return rec->dispute->opened_ms;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
        return rec->ruling->ruled_ms;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ACK:
        return rec->ack->acked_ms;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT:
        return rec->engagement->accepted_ms;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION:
        return rec->completion->completed_ms;
    default:
        return 0;
    }
}

bool pk_trust_overturned(const pk_trust *t, const pk_verdict_msg *v)
{
    for (int i = 0; i < t->n_overturned; i++) {
        if (t->overturned[i] == v->vseq)
            return true;
    }
    for (int i = 0; i < t->n_overturned_events; i++) {
        for (size_t k = 0; k < v->n_evidence; k++) {
            if (v->evidence[k] && strcmp(v->evidence[k]->event_id, t->overturned_events[i]) == 0)
                return true;
        }
    }
    return false;
}

void pk_trust_apply(pk_trust *t, const pk_verdict_msg *v, const pk_governance *g,
                    pk_trust_effect *out)
{
    pk_clause_score *c;
    uint32_t old_score = t->score;
    int64_t at = pk_verdict_time(v);
    const char *consequence = NULL;

    memset(out, 0, sizeof(*out));
    out->from_tier = out->to_tier = t->tier;
    out->decay_ppm = PK_PPM;
    if (v->vseq <= t->last_vseq)
        return; /* already applied */
    out->applied = true;
    t->last_vseq = v->vseq;
    if (at > t->clock_ms)
        t->clock_ms = at;
    /* A burn-rate trigger speaks about the clause's error budget; it carries
     * no evaluations and its severity is the trigger's, not the clause's. */
    c = v->trigger[0] ? NULL : clause_of(t, v->pact_id, v->clause_id);
    if (c) {
        c->severity = (int)v->severity;
        out->decay_ppm = decay_clause(c, t->clock_ms, g);
        for (size_t i = 0; i < v->n_tally; i++) {
            const Pactum__V1__SourceTally *s = v->tally[i];
            unsigned src = s && (unsigned)s->source < PK_SOURCES ? (unsigned)s->source : 0;
            if (!s || src == 0)
                continue;
            c->pass_m[src] += (uint64_t)s->pass * s->weight_ppm;
            c->fail_m[src] += (uint64_t)s->fail * s->weight_ppm;
            c->passes += s->pass;
            c->fails += s->fail;
            t->evaluations_in_tier += (uint64_t)s->pass + s->fail;
        }
        c->last_outcome = (int)v->outcome;
        if (v->event_ts_ms > c->last_ts_ms)
            c->last_ts_ms = v->event_ts_ms;
    }
    if (v->event_ts_ms > t->newest_ms)
        t->newest_ms = v->event_ts_ms;
    if (v->violation) {
        if (v->severity < PK_SEVERITIES)
            t->violations[v->severity]++;
        t->last_violation_ms = t->clock_ms;
        consequence = v->consequence ? v->consequence : "notify";
    }
    pk_trust_recompute(t, g);
    out->score_delta = (int64_t)t->score - (int64_t)old_score;
    if (consequence && v->peer_report) /* peers alone move an agent one tier down at most */
        pk_tiers_decide(t, g, "demote", PACTUM__V1__SEVERITY__SEVERITY_MEDIUM, out);
    else
        pk_tiers_decide(t, g, consequence, (int)v->severity, out);
    pk_tiers_explain(t, v, out);
}

/* --- governance records ------------------------------------------------------ */

const pk_dispute *pk_trust_dispute(const pk_trust *t, const char *id)
{
    for (int i = 0; i < t->n_disp; i++) {
        if (strcmp(t->disp[i].id, id) == 0)
            return &t->disp[i];
    }
    return NULL;
}

static void add_override(pk_trust *t, const Pactum__V1__Override *o)
{
    pk_override *slot = NULL;

    for (int i = 0; i < t->n_ov; i++) {
        if (strcmp(t->ov[i].id, o->override_id) == 0)
            return; /* already recorded */
    }
    if (t->n_ov == PK_OVERRIDES_MAX) {
        /* make room only from an override no longer in force (expired, or written before
         * a newer containment); one in force is never dropped (ingest refuses a record
         * that would need it) */
        int victim = -1;
        for (int i = 0; i < t->n_ov; i++) {
            bool gone = t->ov[i].expires_ms <= t->clock_ms || t->ov[i].created_ms < t->contained_ms;
            if (gone && (victim < 0 || t->ov[i].expires_ms < t->ov[victim].expires_ms))
                victim = i;
        }
        if (victim < 0) {
            PK_WARN("%s: override %s not kept: %d overrides in force", t->agent_id, o->override_id,
                    t->n_ov);
            return;
        }
        memmove(&t->ov[victim], &t->ov[victim + 1],
                (size_t)(t->n_ov - victim - 1) * sizeof(t->ov[0]));
        t->n_ov--;
    }
    slot = &t->ov[t->n_ov++];
    memset(slot, 0, sizeof(*slot));
    snprintf(slot->id, sizeof(slot->id), "%s", o->override_id);
    snprintf(slot->operator_id, sizeof(slot->operator_id), "%s", o->operator_id);
    slot->kind = (int)o->kind;
    slot->tier = (int)o->tier;
    for (size_t i = 0; i < o->n_actions && i < PK_OVERRIDE_ACTIONS; i++)
        snprintf(slot->actions[slot->n_actions++], PK_NAME_MAX + 1, "%s", o->actions[i]);
    snprintf(slot->reason, sizeof(slot->reason), "%s", o->reason);
    slot->expires_ms = o->expires_ms;
    slot->created_ms = o->created_ms;
}

static void add_dispute(pk_trust *t, const Pactum__V1__Dispute *d)
{
    pk_dispute *slot;

    if (pk_trust_dispute(t, d->dispute_id))
        return;
    if (t->n_disp == PK_DISPUTES_MAX) { /* ingest refuses the record that would need it */
        PK_WARN("%s: dispute %s not kept: %d disputes open", t->agent_id, d->dispute_id, t->n_disp);
        return;
    }
    slot = &t->disp[t->n_disp++];
    memset(slot, 0, sizeof(*slot));
    snprintf(slot->id, sizeof(slot->id), "%s", d->dispute_id);
    snprintf(slot->opened_by, sizeof(slot->opened_by), "%s", d->opened_by);
    slot->vseq = d->verdict_vseq;
    snprintf(slot->event_id, sizeof(slot->event_id), "%s", d->event_id);
    snprintf(slot->reason, sizeof(slot->reason), "%s", d->reason);
    slot->opened_ms = d->opened_ms;
}

static void close_dispute(pk_trust *t, const char *id, bool overturned)
{
    for (int i = 0; i < t->n_disp; i++) {
        pk_dispute *d = &t->disp[i];
        if (strcmp(d->id, id) != 0)
            continue;
        bool have = false;
        for (int k = 0; k < t->n_overturned; k++)
            have |= t->overturned[k] == d->vseq;
        if (overturned && d->vseq && !have && t->n_overturned < PK_OVERTURNED_MAX)
            t->overturned[t->n_overturned++] = d->vseq;
        have = false;
        for (int k = 0; k < t->n_overturned_events; k++)
            have |= strcmp(t->overturned_events[k], d->event_id) == 0;
        if (overturned && d->event_id[0] && !have && t->n_overturned_events < PK_OVERTURNED_MAX)
            memcpy(t->overturned_events[t->n_overturned_events++], d->event_id,
                   sizeof(d->event_id)); /* same size, both NUL-terminated */
        memmove(d, d + 1, (size_t)(t->n_disp - i - 1) * sizeof(*d));
        t->n_disp--;
        return;
    }
}

void pk_trust_govern(pk_trust *t, const Pactum__V1__GovernanceRecord *rec, const pk_governance *g,
                     pk_trust_effect *out)
{
    int64_t at = pk_governance_time(rec);

    memset(out, 0, sizeof(*out));
    out->from_tier = out->to_tier = t->tier;
    out->decay_ppm = PK_PPM;
    out->applied = true;
    if (at > t->clock_ms)
        t->clock_ms = at;
    switch (rec->record_case) {
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE:
        add_override(t, rec->override);
        snprintf(out->cause, sizeof(out->cause), "override %s by %s: %s",
                 rec->override->override_id, rec->override->operator_id, rec->override->reason);
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
        add_dispute(t, rec->dispute);
        snprintf(out->cause, sizeof(out->cause), "dispute %s opened by %s: %s",
                 rec->dispute->dispute_id, rec->dispute->opened_by, rec->dispute->reason);
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
        close_dispute(t, rec->ruling->dispute_id, rec->ruling->overturned);
        snprintf(out->cause, sizeof(out->cause), "dispute %s %s by %s: %s", rec->ruling->dispute_id,
                 rec->ruling->overturned ? "overturned" : "upheld", rec->ruling->arbiter_id,
                 rec->ruling->reason);
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ACK:
        if (rec->ack->acked_ms > t->acked_ms)
            t->acked_ms = rec->ack->acked_ms;
        snprintf(out->cause, sizeof(out->cause), "acknowledged by %s: %s", rec->ack->operator_id,
                 rec->ack->note);
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT:
        /* the engagement itself joins the state in pk_eng_accept (scoring.c) */
        snprintf(out->cause, sizeof(out->cause), "engagement %s accepted by the owner",
                 rec->engagement->engagement_id);
        break;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION:
        snprintf(out->cause, sizeof(out->cause), "engagement %s completed (signed by %s)",
                 rec->completion->engagement_id, rec->completion->completed_by);
        break;
    default:
        out->applied = false;
        return;
    }
    /* forgetting runs on the clock, and a record may complete the re-entry criteria */
    pk_trust_recompute(t, g);
    pk_tiers_decide(t, g, NULL, 0, out);
    if (out->to_tier != out->from_tier && strcmp(out->rule, PK_RULE_REENTRY) == 0)
        pk_tiers_criteria_text(out, "re-entry from", out->cause, sizeof(out->cause));
}

/* --- wire form ----------------------------------------------------------------- */

/* One clause's score in the wire form, its masses in sm/smp (borrowed from c). */
static Pactum__V1__ClauseScore *clause_to_msg(const pk_clause_score *c, const pk_governance *g,
                                              Pactum__V1__ClauseScore *o,
                                              Pactum__V1__SourceMass *sm,
                                              Pactum__V1__SourceMass **smp)
{
    uint64_t alpha, beta;
    uint32_t mean, lower;
    size_t nm = 0;

    pactum__v1__clause_score__init(o);
    o->pact_id = (char *)c->pact_id;
    o->clause_id = (char *)c->clause_id;
    o->severity = (Pactum__V1__Severity)c->severity;
    pk_clause_posterior(c, g, &alpha, &beta);
    o->alpha_micro = alpha;
    o->beta_micro = beta;
    pk_beta_bounds(alpha, beta, &mean, &lower);
    o->score_ppm = has_mass(c) ? mean : 0;
    o->lower_ppm = has_mass(c) ? lower : 0;
    o->last_outcome = (Pactum__V1__Outcome)c->last_outcome;
    o->last_ts_ms = c->last_ts_ms;
    o->passes = c->passes;
    o->fails = c->fails;
    o->decayed_to_ms = c->decayed_to_ms;
    for (int src = 1; src < PK_SOURCES; src++) {
        if (!c->pass_m[src] && !c->fail_m[src])
            continue;
        pactum__v1__source_mass__init(&sm[nm]);
        sm[nm].source = (Pactum__V1__Source)src;
        sm[nm].pass_micro = c->pass_m[src];
        sm[nm].fail_micro = c->fail_m[src];
        smp[nm] = &sm[nm];
        nm++;
    }
    o->n_mass = nm;
    o->mass = smp;
    return o;
}

/* The numbers a pk_trust and its TrustState share: (pk_trust field, TrustState field). */
#define TRUST_NUMBERS(X)                                                                           \
    X(score, score_ppm)                                                                            \
    X(lower, lower_ppm)                                                                            \
    X(evidence, evidence)                                                                          \
    X(newest_ms, newest_evidence_ms)                                                               \
    X(tier_since_ms, tier_since_ms)                                                                \
    X(change_seq, change_seq)                                                                      \
    X(last_vseq, last_vseq)                                                                        \
    X(held, held)                                                                                  \
    X(clock_ms, clock_ms)                                                                          \
    X(last_violation_ms, last_violation_ms)                                                        \
    X(evaluations_in_tier, evaluations_in_tier)                                                    \
    X(acked_ms, acked_ms)                                                                          \
    X(contained_ms, contained_ms)                                                                  \
    X(promote_after_ms, promote_after_ms)                                                          \
    X(gov_version, governance_version)

void pk_trust_to_msg(const pk_trust *t, const pk_governance *g, Pactum__V1__TrustState *m,
                     pk_trust_msg_storage *s)
{
    size_t nv = 0;

    pactum__v1__trust_state__init(m);
#define TO_MSG(tf, mf) m->mf = t->tf;
    TRUST_NUMBERS(TO_MSG)
#undef TO_MSG
    m->agent_id = (char *)t->agent_id;
    m->tier = (Pactum__V1__Tier)t->tier;
    m->governance_pact = (char *)t->gov_pact;
    for (size_t i = 0; i < t->n; i++)
        s->csp[i] = clause_to_msg(&t->c[i], g, &s->cs[i], s->sm[i], s->smp[i]);
    m->n_clauses = t->n;
    m->clauses = s->csp;
    for (int sev = 1; sev < PK_SEVERITIES; sev++) {
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
    for (int i = 0; i < t->n_ov; i++) {
        Pactum__V1__Override *o = &s->ov[i];
        pactum__v1__override__init(o);
        o->override_id = (char *)t->ov[i].id;
        o->agent_id = (char *)t->agent_id;
        o->operator_id = (char *)t->ov[i].operator_id;
        o->kind = (Pactum__V1__OverrideKind)t->ov[i].kind;
        o->tier = (Pactum__V1__Tier)t->ov[i].tier;
        for (int k = 0; k < t->ov[i].n_actions; k++)
            s->ov_actions[i][k] = (char *)t->ov[i].actions[k];
        o->n_actions = (size_t)t->ov[i].n_actions;
        o->actions = s->ov_actions[i];
        o->reason = (char *)t->ov[i].reason;
        o->expires_ms = t->ov[i].expires_ms;
        o->created_ms = t->ov[i].created_ms;
        s->ovp[i] = o;
    }
    m->n_overrides = (size_t)t->n_ov;
    m->overrides = s->ovp;
    for (int i = 0; i < t->n_disp; i++) {
        Pactum__V1__Dispute *d = &s->disp[i];
        pactum__v1__dispute__init(d);
        d->dispute_id = (char *)t->disp[i].id;
        d->agent_id = (char *)t->agent_id;
        d->opened_by = (char *)t->disp[i].opened_by;
        d->verdict_vseq = t->disp[i].vseq;
        d->event_id = (char *)t->disp[i].event_id;
        d->reason = (char *)t->disp[i].reason;
        d->opened_ms = t->disp[i].opened_ms;
        s->dispp[i] = d;
    }
    m->n_open_disputes = (size_t)t->n_disp;
    m->open_disputes = s->dispp;
    m->n_overturned = (size_t)t->n_overturned;
    m->overturned = (uint64_t *)t->overturned;
    for (int i = 0; i < t->n_overturned_events; i++)
        s->ov_events[i] = (char *)t->overturned_events[i];
    m->n_overturned_events = (size_t)t->n_overturned_events;
    m->overturned_events = s->ov_events;
    pk_engagements_to_msg(t, m, s);
}

void pk_trust_from_msg(pk_trust *t, const Pactum__V1__TrustState *m)
{
    memset(t, 0, sizeof(*t));
#define FROM_MSG(tf, mf) t->tf = m->mf;
    TRUST_NUMBERS(FROM_MSG)
#undef FROM_MSG
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", m->agent_id);
    t->tier = (int)m->tier;
    snprintf(t->gov_pact, sizeof(t->gov_pact), "%s", m->governance_pact);
    for (size_t i = 0; i < m->n_clauses && i < PK_SCORE_MAX_CLAUSES; i++) {
        const Pactum__V1__ClauseScore *o = m->clauses[i];
        pk_clause_score *c = &t->c[t->n++];
        snprintf(c->pact_id, sizeof(c->pact_id), "%s", o->pact_id);
        snprintf(c->clause_id, sizeof(c->clause_id), "%s", o->clause_id);
        c->severity = (int)o->severity;
        c->passes = o->passes;
        c->fails = o->fails;
        c->last_outcome = (int)o->last_outcome;
        c->last_ts_ms = o->last_ts_ms;
        c->decayed_to_ms = o->decayed_to_ms;
        for (size_t k = 0; k < o->n_mass; k++) {
            unsigned src = (unsigned)o->mass[k]->source;
            if (src > 0 && src < PK_SOURCES) {
                c->pass_m[src] = o->mass[k]->pass_micro;
                c->fail_m[src] = o->mass[k]->fail_micro;
            }
        }
    }
    for (size_t i = 0; i < m->n_violations; i++) {
        if (m->violations[i]->severity < PK_SEVERITIES)
            t->violations[m->violations[i]->severity] = m->violations[i]->count;
    }
    for (size_t i = 0; i < m->n_overrides && i < PK_OVERRIDES_MAX; i++)
        add_override(t, m->overrides[i]);
    for (size_t i = 0; i < m->n_open_disputes && i < PK_DISPUTES_MAX; i++)
        add_dispute(t, m->open_disputes[i]);
    for (size_t i = 0; i < m->n_overturned && i < PK_OVERTURNED_MAX; i++)
        t->overturned[t->n_overturned++] = m->overturned[i];
    for (size_t i = 0; i < m->n_overturned_events && i < PK_OVERTURNED_MAX; i++)
        snprintf(t->overturned_events[t->n_overturned_events++], PK_EVENT_ID_MAX + 1, "%s",
                 m->overturned_events[i]);
    pk_engagements_from_msg(t, m);
}

void pk_trust_add_settled(pk_trust *t, const pk_governance *g, uint64_t pass_micro,
                          uint64_t fail_micro)
{
    pk_clause_score *c = clause_of(t, "engagements", "settled");

    if (!c)
        return; /* every clause slot is taken: the totals still count it */
    c->severity = PACTUM__V1__SEVERITY__SEVERITY_HIGH;
    decay_clause(c, t->clock_ms, g);
    c->pass_m[PACTUM__V1__SOURCE__SOURCE_EVALUATOR] += pass_micro;
    c->fail_m[PACTUM__V1__SOURCE__SOURCE_EVALUATOR] += fail_micro;
    c->passes += pass_micro >= fail_micro;
    c->fails += pass_micro < fail_micro;
    c->last_outcome = pass_micro >= fail_micro ? PACTUM__V1__OUTCOME__OUTCOME_PASS
                                               : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
    if (t->clock_ms > c->last_ts_ms)
        c->last_ts_ms = t->clock_ms;
    pk_trust_recompute(t, g);
}
