#include "pk/scoring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/log.h"

void pk_core_init(pk_core *c, pk_registry *reg, pk_history_fn history, void *history_ctx)
{
    memset(c, 0, sizeof(*c));
    c->reg = reg;
    c->history = history;
    c->history_ctx = history_ctx;
    pk_governance_defaults(&c->defaults);
}

void pk_core_free(pk_core *c)
{
    for (int i = 0; i < PK_GOV_CACHE; i++)
        pk_governance_free(&c->cache[i].gov);
    pk_governance_free(&c->defaults);
}

/*
 * Does pact (id, version) have a governance section? 1 yes (*gov is it), 0 no,
 * -1 the registry copy does not hold that version (yet).
 */
static int pact_governance(pk_core *c, MDB_txn *txn, const char *pact, uint32_t version,
                           const pk_governance **gov)
{
    Pactum__V1__PactRecord *rec = NULL;
    pk_pact *p = NULL;
    pk_lint lint = {0};
    int slot;

    for (int i = 0; i < PK_GOV_CACHE; i++) {
        if (c->cache[i].version == version && strcmp(c->cache[i].pact, pact) == 0) {
            *gov = &c->cache[i].gov;
            return c->cache[i].has;
        }
    }
    if (!c->reg || pk_registry_pact(c->reg, txn, pact, version, 0, &rec, NULL) != PK_OK)
        return -1;
    slot = (int)(c->next++ % PK_GOV_CACHE);
    pk_governance_free(&c->cache[slot].gov);
    memset(&c->cache[slot], 0, sizeof(c->cache[slot]));
    snprintf(c->cache[slot].pact, sizeof(c->cache[slot].pact), "%s", pact);
    c->cache[slot].version = version;
    pk_governance_defaults(&c->cache[slot].gov);
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &p, &lint) == PK_OK &&
        p->gov.present) {
        pk_governance_free(&c->cache[slot].gov);
        c->cache[slot].gov = p->gov; /* moved: the pact gives it up below */
        memset(&p->gov, 0, sizeof(p->gov));
        c->cache[slot].has = true;
    }
    pk_pact_free(p);
    pk_lint_free(&lint);
    pactum__v1__pact_record__free_unpacked(rec, NULL);
    *gov = &c->cache[slot].gov;
    return c->cache[slot].has;
}

const pk_governance *pk_core_governance(pk_core *c, MDB_txn *txn, const pk_trust *t)
{
    const pk_governance *g;

    if (t->gov_pact[0] && pact_governance(c, txn, t->gov_pact, t->gov_version, &g) == 1)
        return g;
    return &c->defaults;
}

bool pk_core_subject_agent(const char *subject, char *buf, size_t len, bool *is_governance)
{
    /* pactum.verdicts.<p>.<agent>.<v|g> */
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
    *is_governance = end[1] == 'g';
    return end[1] == 'g' || end[1] == 'v';
}

void pk_applied_free(pk_applied *a)
{
    if (a->verdict)
        pactum__v1__verdict__free_unpacked(a->verdict, NULL);
    if (a->gov)
        pactum__v1__governance_record__free_unpacked(a->gov, NULL);
    memset(a, 0, sizeof(*a));
}

/* --- rebuilding an agent's state without the verdicts a ruling overturned -------- */

typedef struct rebuild {
    pk_core *c;   /* the core */
    MDB_txn *txn; /* registry reads */
    pk_trust *t;  /* the state being rebuilt */
} rebuild;

static pk_status rebuild_one(void *ctx, const char *subject, const uint8_t *data, size_t len,
                             uint64_t seq)
{
    rebuild *r = ctx;
    pk_applied a;
    pk_status st;

    /* rulings met again on the way only do their bookkeeping: the set of
     * verdicts taken out is already complete */
    st = pk_core_apply(r->c, r->txn, r->t, subject, data, len, seq, &a);
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
static pk_status recompute(pk_core *c, MDB_txn *txn, pk_trust *t, const pk_trust *before,
                           uint64_t seq, pk_applied *out)
{
    pk_trust *fresh = malloc(sizeof(*fresh));
    rebuild r = {.c = c, .txn = txn, .t = fresh};
    pk_status st;

    if (!fresh)
        return PK_ERR(PK_ENOMEM, "cannot allocate a state to rebuild");
    if (!c->history) {
        free(fresh);
        return PK_ERR(PK_EINVAL, "no history to rebuild %s from", t->agent_id);
    }
    pk_trust_init(fresh, t->agent_id, 0);
    c->rebuilding = true;
    /* everything rulings took out so far, this one included (t is already
     * after the ruling's bookkeeping) */
    memcpy(fresh->overturned, t->overturned, sizeof(t->overturned));
    fresh->n_overturned = t->n_overturned;
    memcpy(fresh->overturned_events, t->overturned_events, sizeof(t->overturned_events));
    fresh->n_overturned_events = t->n_overturned_events;
    st = c->history(c->history_ctx, t->agent_id, seq, rebuild_one, &r);
    c->rebuilding = false;
    if (st != PK_OK) {
        free(fresh);
        return st;
    }
    /* the ruling itself, on the rebuilt state */
    {
        pk_trust_effect fx;
        pk_trust_govern(fresh, out->gov, pk_core_governance(c, txn, fresh), &fx);
        out->fx = fx;
    }
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
    *t = *fresh;
    free(fresh);
    out->ruling_recomputed = true;
    return PK_OK;
}

static pk_status core_apply(pk_core *c, MDB_txn *txn, pk_trust *t, const char *subject,
                            const uint8_t *data, size_t len, uint64_t seq, pk_applied *out)
{
    char agent[PK_ID_MAX + 1];
    bool is_gov = false;
    const pk_governance *g;

    memset(out, 0, sizeof(*out));
    if (!pk_core_subject_agent(subject, agent, sizeof(agent), &is_gov) ||
        strcmp(agent, t->agent_id) != 0)
        return PK_ERR(PK_EDECODE, "input on %s is not about %s", subject, t->agent_id);
    if (!is_gov) {
        const pk_governance *vg;
        int has;
        out->verdict = pactum__v1__verdict__unpack(NULL, len, data);
        if (!out->verdict || strcmp(out->verdict->agent_id, agent) != 0) {
            pk_applied_free(out);
            return PK_ERR(PK_EDECODE, "verdict on %s does not decode", subject);
        }
        /* the pact that has a governance section governs the agent; judging
         * without the pact the verdict names would be wrong and final */
        has = pact_governance(c, txn, out->verdict->pact_id, out->verdict->pact_version, &vg);
        if (has < 0) {
            pk_status st = PK_ERR(PK_ENOTFOUND, "pact %s v%u is not in the registry copy yet",
                                  out->verdict->pact_id, out->verdict->pact_version);
            pk_applied_free(out);
            return st;
        }
        if (has) {
            snprintf(t->gov_pact, sizeof(t->gov_pact), "%s", out->verdict->pact_id);
            t->gov_version = out->verdict->pact_version;
        }
        if (pk_trust_overturned(t, out->verdict)) {
            t->last_vseq = out->verdict->vseq > t->last_vseq ? out->verdict->vseq : t->last_vseq;
            return PK_OK; /* a ruling took it out: it never counts */
        }
        g = pk_core_governance(c, txn, t);
        pk_trust_apply(t, out->verdict, g, &out->fx);
        out->changed = out->fx.applied;
        return PK_OK;
    }
    out->gov = pactum__v1__governance_record__unpack(NULL, len, data);
    if (!out->gov || out->gov->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD__NOT_SET) {
        pk_applied_free(out);
        return PK_ERR(PK_EDECODE, "governance record on %s does not decode", subject);
    }
    g = pk_core_governance(c, txn, t);
    if (out->gov->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING &&
        out->gov->ruling->overturned && pk_trust_dispute(t, out->gov->ruling->dispute_id) &&
        c->history && !c->rebuilding) {
        pk_trust *before = malloc(sizeof(*before));
        pk_status st;
        pk_trust_effect fx;
        if (!before)
            return PK_ERR(PK_ENOMEM, "cannot allocate a copy of the state");
        *before = *t;
        out->score_before = t->score;
        out->lower_before = t->lower;
        out->tier_before = t->tier;
        memcpy(out->violations_before, t->violations, sizeof(t->violations));
        /* bookkeeping first (notes what is overturned), then the rebuild */
        pk_trust_govern(t, out->gov, g, &fx);
        st = recompute(c, txn, t, before, seq, out);
        free(before);
        if (st != PK_OK)
            return st;
        out->changed = true;
        return PK_OK;
    }
    pk_trust_govern(t, out->gov, g, &out->fx);
    out->changed = out->fx.applied;
    return PK_OK;
}

pk_status pk_core_apply(pk_core *c, MDB_txn *txn, pk_trust *t, const char *subject,
                        const uint8_t *data, size_t len, uint64_t seq, pk_applied *out)
{
    pk_status st = core_apply(c, txn, t, subject, data, len, seq, out);

    if (st != PK_OK)
        pk_applied_free(out); /* callers free it on success only */
    return st;
}
