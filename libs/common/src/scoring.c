/*
 * scoring - one input of PACTUM_VERDICTS applied to its agent's state, the
 * same way in the scorer and in `pactum replay` (pk/scoring.h).
 */
#include "pk/scoring.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/log.h"
#include "pk/tiers.h"

void pk_scoring_init(pk_scoring *s, pk_registry *reg, pk_pact_cache *pacts, MDB_dbi agents,
                     pk_history_fn history, void *history_ctx)
{
    memset(s, 0, sizeof(*s));
    s->reg = reg;
    s->pacts = pacts;
    s->agents = agents;
    s->history = history;
    s->history_ctx = history_ctx;
    pk_governance_defaults(&s->defaults);
}

void pk_scoring_reset(pk_scoring *s)
{
    for (size_t i = 0; i < s->n_batch; i++)
        free(s->batch[i]);
    s->n_batch = 0;
}

void pk_scoring_free(pk_scoring *s)
{
    pk_scoring_reset(s);
    free(s->batch);
    s->batch = NULL;
    s->cap_batch = 0;
    pk_pact_cache_release(s->pacts, s->gov_held);
    s->gov_held = NULL;
    pk_pact_cache_release(s->pacts, s->cons_held);
    s->cons_held = NULL;
    pk_governance_free(&s->defaults);
}

void pk_applied_clear(pk_applied *a)
{
    /* the statements are large and read only up to eng.n: not cleared */
    memset(a, 0, offsetof(pk_applied, eng));
    a->eng.n = 0;
    a->eng.no_terms = false;
}

void pk_applied_free(pk_applied *a)
{
    if (a->verdict)
        pactum__v1__verdict__free_unpacked(a->verdict, NULL);
    if (a->gov)
        pactum__v1__governance_record__free_unpacked(a->gov, NULL);
    pk_applied_clear(a);
}

/* --- governance -------------------------------------------------------------------- */

/*
 * Does pact (id, version) have a governance section? 1 yes (*gov is it, held
 * in s->gov_held), 0 no, -1 the registry copy does not hold that version yet.
 */
static int pact_governance(pk_scoring *s, MDB_txn *txn, const char *pact, uint32_t version,
                           const pk_governance **gov)
{
    const pk_compiled *p = NULL;
    pk_status st = s->pacts ? pk_pact_cache_get(s->pacts, txn, pact, version, &p) : PK_ENOTFOUND;

    if (st == PK_EDECODE)
        return 0; /* registered, but it does not compile (any more): no section to apply */
    if (st != PK_OK)
        return -1;
    pk_pact_cache_release(s->pacts, s->gov_held);
    s->gov_held = p;
    *gov = &p->pact->gov;
    return p->pact->gov.present;
}

const pk_governance *pk_scoring_governance(pk_scoring *s, MDB_txn *txn, const pk_trust *t)
{
    const pk_governance *g;

    if (t->gov_pact[0] && pact_governance(s, txn, t->gov_pact, t->gov_version, &g) == 1)
        return g;
    return &s->defaults;
}

bool pk_scoring_subject_agent(const char *subject, char *buf, size_t len, char *kind)
{
    /* pactum.verdicts.<p>.<agent>.<v|g|t> */
    const char *p = subject, *agent, *end;
    int dots = 0;

    for (; *p && dots < 3; p++) {
        if (*p == '.')
            dots++;
    }
    if (dots < 3)
        return false;
    agent = p;
    end = strrchr(subject, '.');
    if (!end || end <= agent || (size_t)(end - agent) >= len || !end[1] || end[2])
        return false;
    memcpy(buf, agent, (size_t)(end - agent));
    buf[end - agent] = '\0';
    *kind = end[1];
    return end[1] == 'g' || end[1] == 'v' || end[1] == 't';
}

/* --- applying one input to a state ------------------------------------------------------- */

static pk_status apply(pk_scoring *s, MDB_txn *txn, pk_trust *t, const char *subject,
                       const uint8_t *data, size_t len, uint64_t seq, pk_applied *out);
static pk_status engagements(pk_scoring *s, MDB_txn *txn, pk_trust *t, char kind, uint64_t seq,
                             pk_applied *out);

/* Replaying an agent's history without the verdicts a ruling overturned. */
typedef struct rebuild {
    pk_scoring *s; /* the scoring */
    MDB_txn *txn;  /* registry reads */
    pk_trust *t;   /* the state being rebuilt */
} rebuild;

static pk_status rebuild_one(void *ctx, const char *subject, const uint8_t *data, size_t len,
                             uint64_t seq)
{
    rebuild *r = ctx;
    pk_applied a;
    pk_status st;

    /* rulings met again on the way only do their bookkeeping: the set of
     * verdicts taken out is already complete */
    st = apply(r->s, r->txn, r->t, subject, data, len, seq, &a);
    pk_applied_free(&a);
    return st == PK_EDECODE ? PK_OK : st;
}

static bool overturned_has(const pk_trust *t, uint64_t vseq)
{
    for (int i = 0; i < t->n_overturned; i++) {
        if (t->overturned[i] == vseq)
            return true;
    }
    return false;
}

/*
 * The ruling at seq overturned a dispute of t: replay the agent's inputs from
 * the start without the disputed verdicts, and keep what changed.
 */
static pk_status recompute(pk_scoring *s, MDB_txn *txn, pk_trust *t, const pk_trust *before,
                           uint64_t seq, pk_applied *out)
{
    pk_trust *fresh = malloc(sizeof(*fresh));
    rebuild r = {.s = s, .txn = txn, .t = fresh};
    pk_status st;

    if (!fresh)
        return PK_ERR(PK_ENOMEM, "cannot allocate a state to rebuild");
    if (!s->history) {
        free(fresh);
        return PK_ERR(PK_EINVAL, "no history to rebuild %s from", t->agent_id);
    }
    pk_trust_init(fresh, t->agent_id, 0);
    s->rebuilding = true;
    /* everything rulings took out so far, this one included (t is already
     * after the ruling's bookkeeping) */
    memcpy(fresh->overturned, t->overturned, sizeof(t->overturned));
    fresh->n_overturned = t->n_overturned;
    memcpy(fresh->overturned_events, t->overturned_events, sizeof(t->overturned_events));
    fresh->n_overturned_events = t->n_overturned_events;
    st = s->history(s->history_ctx, t->agent_id, seq, rebuild_one, &r);
    s->rebuilding = false;
    if (st != PK_OK) {
        free(fresh);
        return st;
    }
    /* the ruling itself, on the rebuilt state */
    pk_trust_govern(fresh, out->gov, pk_scoring_governance(s, txn, fresh), &out->fx);
    for (int i = 0; i < fresh->n_overturned; i++) {
        if (!overturned_has(before, fresh->overturned[i]) && out->n_removed < PK_OVERTURNED_MAX)
            out->removed[out->n_removed++] = fresh->overturned[i];
    }
    fresh->change_seq = t->change_seq; /* the count of published changes goes on */
    out->fx.from_tier = before->tier;
    out->fx.to_tier = fresh->tier;
    out->fx.score_delta = (int64_t)fresh->score - (int64_t)before->score;
    if (fresh->tier != before->tier) {
        snprintf(out->fx.rule, sizeof(out->fx.rule), "ruling overturned");
        snprintf(out->fx.cause, sizeof(out->fx.cause),
                 "dispute %s overturned by %s: the disputed verdicts left the score (%s)",
                 out->gov->ruling->dispute_id, out->gov->ruling->arbiter_id,
                 out->gov->ruling->reason);
    }
    pk_eng_keep_numbers(fresh, before);
    *t = *fresh;
    free(fresh);
    out->ruling_recomputed = true;
    return PK_OK;
}

static pk_status apply_verdict(pk_scoring *s, MDB_txn *txn, pk_trust *t, const char *agent,
                               const char *subject, const uint8_t *data, size_t len,
                               pk_applied *out)
{
    const pk_governance *vg;
    int has;

    out->verdict = pactum__v1__verdict__unpack(NULL, len, data);
    if (!out->verdict || strcmp(out->verdict->agent_id, agent) != 0)
        return PK_ERR(PK_EDECODE, "verdict on %s does not decode", subject);
    /* the pact that has a governance section governs the agent; judging
     * without the pact the verdict names would be wrong and final */
    has = pact_governance(s, txn, out->verdict->pact_id, out->verdict->pact_version, &vg);
    if (has < 0)
        return PK_ERR(PK_ENOTFOUND, "pact %s v%u is not in the registry copy yet",
                      out->verdict->pact_id, out->verdict->pact_version);
    if (has) {
        snprintf(t->gov_pact, sizeof(t->gov_pact), "%s", out->verdict->pact_id);
        t->gov_version = out->verdict->pact_version;
    }
    if (pk_trust_overturned(t, out->verdict)) {
        t->last_vseq = out->verdict->vseq > t->last_vseq ? out->verdict->vseq : t->last_vseq;
        /* taken out for its event: named by its own sequence too, so that the ruling's
         * effect, the report and the figures all count it */
        if (!overturned_has(t, out->verdict->vseq) && t->n_overturned < PK_OVERTURNED_MAX)
            t->overturned[t->n_overturned++] = out->verdict->vseq;
        return PK_OK; /* a ruling took it out: it never counts */
    }
    pk_trust_apply(t, out->verdict, pk_scoring_governance(s, txn, t), &out->fx);
    out->changed = out->fx.applied;
    return PK_OK;
}

/* The scorer's clock for a silent agent: forgetting, clean windows and dwell times. */
static pk_status apply_tick(pk_scoring *s, MDB_txn *txn, pk_trust *t, const char *subject,
                            const uint8_t *data, size_t len, pk_applied *out)
{
    Pactum__V1__Tick *tick = pactum__v1__tick__unpack(NULL, len, data);
    uint32_t score = t->score, lower = t->lower;

    if (!tick)
        return PK_ERR(PK_EDECODE, "tick on %s does not decode", subject);
    memset(&out->fx, 0, sizeof(out->fx));
    out->fx.from_tier = out->fx.to_tier = t->tier;
    out->fx.decay_ppm = PK_PPM;
    if (tick->at_ms > t->clock_ms)
        t->clock_ms = tick->at_ms;
    pactum__v1__tick__free_unpacked(tick, NULL);
    pk_trust_recompute(t, pk_scoring_governance(s, txn, t));
    pk_tiers_decide(t, pk_scoring_governance(s, txn, t), NULL, 0, &out->fx);
    out->fx.score_delta = (int64_t)t->score - (int64_t)score;
    if (out->fx.to_tier != out->fx.from_tier && !out->fx.cause[0])
        pk_tiers_explain(t, NULL, &out->fx);
    if (!out->fx.cause[0])
        snprintf(out->fx.cause, sizeof(out->fx.cause), "time passed: clock at %lld",
                 (long long)t->clock_ms);
    out->fx.applied = true;
    out->ticked = true;
    /* a change is published only when the clock moved something anyone can see */
    out->changed = t->score != score || t->lower != lower || out->fx.to_tier != out->fx.from_tier;
    return PK_OK;
}

/* A ruling that overturns an open dispute: bookkeeping, then the rebuild without it. */
static pk_status apply_overturn(pk_scoring *s, MDB_txn *txn, pk_trust *t, uint64_t seq,
                                pk_applied *out)
{
    pk_trust *before = malloc(sizeof(*before));
    pk_trust_effect fx;
    pk_status st;

    if (!before)
        return PK_ERR(PK_ENOMEM, "cannot allocate a copy of the state");
    *before = *t;
    out->score_before = t->score;
    out->lower_before = t->lower;
    out->tier_before = t->tier;
    memcpy(out->violations_before, t->violations, sizeof(t->violations));
    pk_trust_govern(t, out->gov, pk_scoring_governance(s, txn, t), &fx);
    st = recompute(s, txn, t, before, seq, out);
    free(before);
    if (st == PK_OK)
        out->changed = true;
    return st;
}

static pk_status apply(pk_scoring *s, MDB_txn *txn, pk_trust *t, const char *subject,
                       const uint8_t *data, size_t len, uint64_t seq, pk_applied *out)
{
    char agent[PK_ID_MAX + 1], kind = 0;
    bool is_gov;
    pk_status st;

    pk_applied_clear(out);
    out->t = t;
    if (!pk_scoring_subject_agent(subject, agent, sizeof(agent), &kind) ||
        strcmp(agent, t->agent_id) != 0)
        return PK_ERR(PK_EDECODE, "input on %s is not about %s", subject, t->agent_id);
    is_gov = kind == 'g';
    if (kind == 't') {
        st = apply_tick(s, txn, t, subject, data, len, out);
    } else if (!is_gov) {
        st = apply_verdict(s, txn, t, agent, subject, data, len, out);
    } else if (!(out->gov = pactum__v1__governance_record__unpack(NULL, len, data)) ||
               out->gov->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD__NOT_SET) {
        st = PK_ERR(PK_EDECODE, "governance record on %s does not decode", subject);
    } else if (out->gov->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING &&
               out->gov->ruling->overturned && pk_trust_dispute(t, out->gov->ruling->dispute_id) &&
               s->history && !s->rebuilding) {
        st = apply_overturn(s, txn, t, seq, out);
    } else {
        pk_trust_govern(t, out->gov, pk_scoring_governance(s, txn, t), &out->fx);
        out->changed = out->fx.applied;
        st = PK_OK;
    }
    if (st == PK_OK)
        st = engagements(s, txn, t, kind, seq, out);
    if (st != PK_OK)
        pk_applied_free(out); /* callers free it on success only */
    return st;
}

/* --- engagements ----------------------------------------------------------------------- */

typedef struct eng_ctx {
    pk_scoring *s;
    MDB_txn *txn;
} eng_ctx;

/* The consequence terms of the engagement's pact version (held in s->cons_held). */
static const pk_consequences *cons_of(void *ctx, const pk_engagement *e)
{
    eng_ctx *x = ctx;
    const pk_compiled *p = NULL;

    if (!x->s->pacts ||
        pk_pact_cache_get(x->s->pacts, x->txn, e->pact_id, e->pact_version, &p) != PK_OK) {
        PK_WARN("%s: the terms of engagement %s (pact %s v%u) are not in the registry copy", e->id,
                e->id, e->pact_id, e->pact_version);
        return NULL;
    }
    pk_pact_cache_release(x->s->pacts, x->s->cons_held);
    x->s->cons_held = p;
    return &p->pact->cons;
}

/*
 * What the input does to the agent's engagements, after it did what it does to the score.
 * PK_ENOTFOUND if a statement was due and the registry copy lacks its terms: the input is
 * applied again once it has them, never settled without them.
 */
static pk_status engagements(pk_scoring *s, MDB_txn *txn, pk_trust *t, char kind, uint64_t seq,
                             pk_applied *out)
{
    eng_ctx x = {.s = s, .txn = txn};
    pk_eng_out *eo = &out->eng;
    int before = eo->n;
    bool moved = false;

    if (kind == 'v' && out->verdict && !pk_trust_overturned(t, out->verdict)) {
        pk_eng_verdict(t, out->verdict, seq, cons_of, &x, eo);
    } else if (kind == 'g' && out->gov) {
        const Pactum__V1__GovernanceRecord *r = out->gov;
        switch (r->record_case) {
        case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT:
            moved = pk_eng_accept(t, r->engagement, seq);
            break;
        case PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION:
            moved = pk_eng_complete(t, r->completion, cons_of, &x, eo);
            break;
        case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
            moved = pk_eng_dispute(t, r->dispute, cons_of, &x, eo);
            break;
        case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
            moved = pk_eng_ruling(t, r->ruling, r->ruling->ruled_ms, cons_of, &x, eo);
            break;
        default:
            break;
        }
    }
    moved |= pk_eng_clock(t, cons_of, &x, eo);
    if (eo->no_terms)
        return PK_ERR(PK_ENOTFOUND,
                      "%s: the terms of an engagement that ended are not in the "
                      "registry copy yet",
                      t->agent_id);
    for (int i = before; i < eo->n; i++) {
        if (eo->counts[i])
            pk_trust_add_settled(t, pk_scoring_governance(s, txn, t), eo->pass_micro[i],
                                 eo->fail_micro[i]);
    }
    if (eo->n > before) {
        const pk_statement *st = &eo->st[eo->n - 1];
        out->fx.applied = true;
        if (!out->fx.cause[0] || out->ticked)
            snprintf(out->fx.cause, sizeof(out->fx.cause), "engagement %s: statement %u, %s (%s)",
                     st->eng.id, st->head.number, pk_settlement_outcome_name(st->head.outcome),
                     st->head.trigger);
    }
    if (moved || eo->n > before)
        out->changed = true;
    return PK_OK;
}

/* --- the batch's states ---------------------------------------------------------------- */

void pk_scoring_bound(pk_scoring *s, pk_wset *ws, size_t max_states)
{
    s->spill = ws;
    s->max_states = max_states;
}

/* Put t into ws as pk_scoring_store does (txn reads its governance). */
static pk_status store_one(pk_scoring *s, MDB_txn *txn, pk_wset *ws, const pk_trust *t)
{
    static _Thread_local pk_trust_msg_storage storage;
    const pk_governance *g = pk_scoring_governance(s, txn, t);
    Pactum__V1__TrustState m;
    pk_status st;

    pk_trust_to_msg(t, g, &m, &storage);
    st = pk_wset_put_msg(ws, s->agents, t->agent_id, strlen(t->agent_id), &m.base);
    if (st == PK_OK && s->on_store)
        st = s->on_store(s->on_store_ctx, txn, ws, t, pk_scoring_wake(t, g));
    return st;
}

/* The stored state of agent into *m: the one the spill set holds, else the one in txn. */
static pk_status stored_state(pk_scoring *s, MDB_txn *txn, const char *agent,
                              Pactum__V1__TrustState **m)
{
    MDB_val v;
    pk_status st;

    if (!s->spill)
        return pk_get_msg(txn, s->agents, agent, strlen(agent),
                          &pactum__v1__trust_state__descriptor, (ProtobufCMessage **)m);
    if ((st = pk_wset_get(s->spill, txn, s->agents, agent, strlen(agent), &v)) != PK_OK)
        return st;
    if (!(*m = pactum__v1__trust_state__unpack(NULL, v.mv_size, v.mv_data)))
        return PK_ERR(PK_EDECODE, "stored %s does not decode",
                      pactum__v1__trust_state__descriptor.name);
    return PK_OK;
}

/*
 * The state of agent: the batch's copy, else the stored one, else a new agent's at now_ms.
 * The batch's copies are kept in the order they were last used; when s is bounded and holds
 * max_states of them, the one used longest ago is written to the spill set and forgotten
 * first (read back from there if its agent comes again).
 */
static pk_status state_of(pk_scoring *s, MDB_txn *txn, const char *agent, int64_t now_ms,
                          pk_trust **out)
{
    Pactum__V1__TrustState *m = NULL;
    pk_trust *t;
    pk_status st;

    for (size_t i = 0; i < s->n_batch; i++) {
        if (strcmp(s->batch[i]->agent_id, agent) == 0) {
            t = s->batch[i];
            memmove(s->batch + i, s->batch + i + 1, (s->n_batch - 1 - i) * sizeof(*s->batch));
            s->batch[s->n_batch - 1] = t;
            *out = t;
            return PK_OK;
        }
    }
    if (s->spill && s->max_states && s->n_batch >= s->max_states) {
        if ((st = store_one(s, txn, s->spill, s->batch[0])) != PK_OK)
            return st;
        free(s->batch[0]);
        memmove(s->batch, s->batch + 1, (s->n_batch - 1) * sizeof(*s->batch));
        s->n_batch--;
        s->spilled++;
    }
    if (s->n_batch == s->cap_batch) {
        size_t cap = s->cap_batch ? s->cap_batch * 2 : 64;
        pk_trust **grown = realloc(s->batch, cap * sizeof(*grown));
        if (!grown)
            return PK_ERR(PK_ENOMEM, "cannot grow the batch to %zu states", cap);
        s->batch = grown;
        s->cap_batch = cap;
    }
    if (!(t = malloc(sizeof(*t))))
        return PK_ERR(PK_ENOMEM, "cannot allocate a trust state");
    st = stored_state(s, txn, agent, &m);
    if (st == PK_OK) {
        pk_trust_from_msg(t, m);
        pactum__v1__trust_state__free_unpacked(m, NULL);
    } else if (st == PK_ENOTFOUND) {
        pk_trust_init(t, agent, now_ms);
    } else {
        free(t);
        return st;
    }
    s->batch[s->n_batch++] = t;
    *out = t;
    return PK_OK;
}

pk_status pk_scoring_step(pk_scoring *s, MDB_txn *txn, const char *subject, const uint8_t *data,
                          size_t len, uint64_t seq, int64_t ts_ms, pk_applied *out)
{
    char agent[PK_ID_MAX + 1], kind = 0;
    pk_trust *t = NULL;
    pk_status st;

    pk_applied_clear(out);
    if (!pk_scoring_subject_agent(subject, agent, sizeof(agent), &kind) ||
        pk_id_check("agent id", agent) != PK_OK)
        return PK_ERR(PK_EINVAL, "input on an unexpected subject %s", subject);
    if ((st = state_of(s, txn, agent, ts_ms, &t)) != PK_OK)
        return st;
    if ((st = apply(s, txn, t, subject, data, len, seq, out)) != PK_OK)
        return st;
    if (out->changed)
        t->change_seq++; /* every change is numbered; the scorer publishes it under that number */
    return PK_OK;
}

/* The earliest of *best and at, if at is after now. */
static void earliest(int64_t *best, int64_t at, int64_t now)
{
    if (at > now && (*best == 0 || at < *best))
        *best = at;
}

int64_t pk_scoring_wake(const pk_trust *t, const pk_governance *g)
{
    int64_t wake = 0, now = t->clock_ms;
    bool mass = false;

    if (t->tier >= PACTUM__V1__TIER__TIER_CONTAINED || t->held) {
        const pk_reentry *r = &g->reentry[(unsigned)t->tier < PK_TIERS ? t->tier : 0];
        if (r->from)
            earliest(&wake,
                     (t->last_violation_ms > t->tier_since_ms ? t->last_violation_ms
                                                              : t->tier_since_ms) +
                         r->clean_ms,
                     now);
    }
    earliest(&wake, t->promote_after_ms, now);
    if (g->dwell_ms)
        earliest(&wake, t->tier_since_ms + g->dwell_ms, now);
    for (size_t i = 0; i < t->n && !mass; i++) {
        for (int src = 0; src < PK_SOURCES; src++)
            mass |= t->c[i].pass_m[src] || t->c[i].fail_m[src];
    }
    /* forgetting lowers the bound a little at a time: look again every 1/16 half-life */
    if (mass)
        earliest(&wake, now + (g->half_life_ms / 16 > 1000 ? g->half_life_ms / 16 : 1000), now);
    earliest(&wake, pk_eng_wake(t), now); /* a deadline, or a statement becoming final */
    return wake;
}

pk_status pk_scoring_store(pk_scoring *s, MDB_txn *txn, pk_wset *ws)
{
    pk_status st = PK_OK;

    for (size_t i = 0; i < s->n_batch && st == PK_OK; i++)
        st = store_one(s, txn, ws, s->batch[i]);
    if (st == PK_OK)
        pk_scoring_reset(s);
    return st;
}

/* --- history and digest ---------------------------------------------------------------- */

pk_status pk_scoring_read_history(pk_bus *bus, uint32_t partitions, const char *agent,
                                  uint64_t before_seq, pk_input_fn each, void *each_ctx)
{
    pk_consumer c;
    char filter[160];
    pk_status st;
    int64_t deadline = pk_mono_ms() + 60000;
    bool read_any = false, left = true; /* left: the server had more after the last fetch */

    snprintf(filter, sizeof(filter), "pactum.verdicts.%u.%s.>", pk_partition_of(agent, partitions),
             agent);
    if ((st = pk_consumer_open(&c, bus, PK_STREAM_VERDICTS, NULL, filter, 1, 1024, 30000)) != PK_OK)
        return st;
    for (;;) {
        natsMsgList list;
        bool done = false;
        if (pk_mono_ms() > deadline) {
            st = PK_ERR(PK_ETIMEOUT, "reading the history of %s took too long", agent);
            break;
        }
        st = pk_consumer_fetch(&c, &list, 256, 2000);
        if (st == PK_ETIMEOUT && (!read_any || !left)) {
            st = PK_OK; /* nothing more: the input itself was not stored (replay tests) */
            break;
        }
        if (st == PK_ETIMEOUT)
            continue; /* more was there: a slow fetch, not the end (bounded by the deadline) */
        if (st != PK_OK)
            break;
        if (list.Count > 0) {
            jsMsgMetaData *meta = NULL;
            read_any = true;
            if (natsMsg_GetMetaData(&meta, list.Msgs[list.Count - 1]) == NATS_OK) {
                left = meta->NumPending > 0;
                jsMsgMetaData_Destroy(meta);
            }
        }
        for (int i = 0; i < list.Count && st == PK_OK && !done; i++) {
            uint64_t seq = 0;
            if (pk_msg_meta(list.Msgs[i], &seq, NULL, NULL) != PK_OK || seq >= before_seq) {
                done = true;
                break;
            }
            st = each(each_ctx, natsMsg_GetSubject(list.Msgs[i]),
                      (const uint8_t *)natsMsg_GetData(list.Msgs[i]),
                      (size_t)natsMsg_GetDataLength(list.Msgs[i]), seq);
        }
        natsMsgList_Destroy(&list);
        if (st != PK_OK || done)
            break;
    }
    pk_consumer_close(&c);
    return st;
}

pk_status pk_scoring_digests(pk_store *store, MDB_dbi agents, uint32_t partitions, pk_digests *out)
{
    static _Thread_local crypto_hash_sha256_state h[PK_PARTITIONS_MAX];
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pk_status st;
    int rc;

    if (partitions == 0 || partitions > PK_PARTITIONS_MAX)
        return PK_ERR(PK_EINVAL, "digests: %u partitions", partitions);
    memset(out, 0, sizeof(*out));
    for (uint32_t p = 0; p < partitions; p++)
        crypto_hash_sha256_init(&h[p]);
    if ((st = pk_txn_begin(store, false, &txn)) != PK_OK)
        return st;
    if ((rc = mdb_cursor_open(txn, agents, &cur)) != 0) {
        pk_txn_abort(txn);
        return pk_store_err(rc, "digest cursor");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char id[PK_ID_MAX + 1];
        uint8_t lens[8];
        uint32_t p;
        snprintf(id, sizeof(id), "%.*s", (int)k.mv_size, (const char *)k.mv_data);
        p = pk_partition_of(id, partitions);
        pk_be32_put(lens, (uint32_t)k.mv_size);
        pk_be32_put(lens + 4, (uint32_t)v.mv_size);
        crypto_hash_sha256_update(&h[p], lens, 8);
        crypto_hash_sha256_update(&h[p], k.mv_data, k.mv_size);
        crypto_hash_sha256_update(&h[p], v.mv_data, v.mv_size);
        out->agents[p]++;
    }
    mdb_cursor_close(cur);
    pk_txn_abort(txn);
    for (uint32_t p = 0; p < partitions; p++)
        crypto_hash_sha256_final(&h[p], out->part[p]);
    return PK_OK;
}

void pk_scoring_digest_of(const pk_digests *d, uint64_t mask, uint8_t out[32], uint64_t *n_agents)
{
    crypto_hash_sha256_state h;

    *n_agents = 0;
    crypto_hash_sha256_init(&h);
    for (uint32_t p = 0; p < PK_PARTITIONS_MAX; p++) {
        if (!(mask & (1ull << p)))
            continue;
        crypto_hash_sha256_update(&h, d->part[p], 32);
        *n_agents += d->agents[p];
    }
    crypto_hash_sha256_final(&h, out);
}
