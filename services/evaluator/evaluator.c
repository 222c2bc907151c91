#include "evaluator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/authorize.h"
#include "pk/clause.h"
#include "pk/clock.h"
#include "pk/log.h"

#define STATE_SLOTS 1024 /* clause states cached per batch (power of two) */
#define MAX_PACTS   PK_PACTS_PER_AGENT_MAX
#define KEY_MAX     (4 * (PK_ID_MAX + 1))
#define TICK_MAX    512 /* stale clauses handled per tick */

void evaluator_metrics_init(evaluator *e)
{
#define PK_METRIC(id, type, name, labels, help) e->m[id] = (pk_metric){name, labels, help, type, 0};
#include "metrics.def"
#undef PK_METRIC
}

/* --- pacts in force ------------------------------------------------------------ */

/*
 * Pacts in force for agent at registry position registry_seq, held from the
 * shared cache: the caller releases each (release_pacts).
 */
static size_t pacts_in_force(evaluator *e, MDB_txn *txn, const char *agent, uint64_t registry_seq,
                             const pk_compiled **out)
{
    char **ids = NULL;
    size_t n_ids = 0, n = 0;

    if (pk_registry_agent_pacts(e->reg, txn, agent, &ids, &n_ids) != PK_OK)
        return 0;
    for (size_t i = 0; i < n_ids && n < MAX_PACTS; i++) {
        uint32_t version = 0;
        const pk_compiled *p = NULL;
        if (pk_registry_pact_version(e->reg, txn, ids[i], registry_seq, &version, NULL) != PK_OK)
            continue; /* registered after this event was accepted */
        if (pk_pact_cache_get(e->pacts, txn, ids[i], version, &p) != PK_OK) {
            PK_WARN("%s", pk_error_msg());
            continue;
        }
        if (strcmp(p->pact->agent, agent) == 0)
            out[n++] = p;
        else
            pk_pact_cache_release(e->pacts, p);
    }
    pk_registry_ids_free(ids, n_ids);
    return n;
}

static void release_pacts(evaluator *e, const pk_compiled **ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pk_pact_cache_release(e->pacts, ps[i]);
}

/* --- per-batch state cache ---------------------------------------------------- */

typedef struct state_entry {
    uint8_t key[KEY_MAX]; /* agent \0 pact \0 clause */
    size_t klen;          /* 0 when free */
    pk_clause_state *st;  /* the state (allocated when the slot is first used, then kept) */
} state_entry;

typedef struct batch {
    pk_pworker *pw;      /* the partition worker */
    eval_worker *w;      /* its evaluator data */
    MDB_txn *txn;        /* the batch's read transaction (writes go to w->ws) */
    state_entry *states; /* STATE_SLOTS */
    size_t n_states;     /* entries in use */
} batch;

pk_status evaluator_worker_init(pk_pworker *pw)
{
    eval_worker *w = pw->ctx;

    w->ev = pw->group->owner;
    if (!(w->states = calloc(STATE_SLOTS, sizeof(*w->states))))
        return PK_ERR(PK_ENOMEM, "cannot allocate the state cache");
    return pk_wset_create(&w->ws);
}

void evaluator_worker_free(pk_pworker *pw)
{
    eval_worker *w = pw->ctx;

    for (size_t k = 0; w->states && k < STATE_SLOTS; k++) {
        if (w->states[k].st)
            pk_clause_state_release(w->states[k].st);
        free(w->states[k].st);
    }
    free(w->states);
    pk_wset_destroy(w->ws);
}

/*
 * agent \0 pact \0 clause, and \0 engagement for the state of a clause judged per engagement
 * (scope: the engagement's id, or "" for the agent's whole history).
 */
static size_t state_key(uint8_t *key, const char *agent, const char *pact, const char *clause,
                        const char *scope)
{
    size_t a = strlen(agent), p = strlen(pact), k = strlen(clause), s = strlen(scope);

    memcpy(key, agent, a);
    key[a] = 0;
    memcpy(key + a + 1, pact, p);
    key[a + 1 + p] = 0;
    memcpy(key + a + p + 2, clause, k);
    if (!s)
        return a + p + k + 2;
    key[a + p + k + 2] = 0;
    memcpy(key + a + p + k + 3, scope, s);
    return a + p + k + s + 3;
}

/* Where a clause keeps its windows for ev: per engagement, or over the agent's history. */
static const char *scope_of(const pk_clause *c, const pk_event_msg *ev)
{
    return c->per_engagement && ev && ev->engagement_id ? ev->engagement_id : "";
}

/* Put every cached state into the batch's writes (or just forget them). */
static pk_status flush_states(batch *b, bool write)
{
    pk_status st = PK_OK;

    for (size_t i = 0; i < STATE_SLOTS; i++) {
        state_entry *e = &b->states[i];
        if (!e->klen)
            continue;
        if (write && st == PK_OK) {
            void *buf = NULL;
            st = pk_wset_put_reserve(b->w->ws, b->w->ev->states, e->key, e->klen,
                                     pk_clause_state_size(e->st), &buf);
            if (st == PK_OK)
                pk_clause_state_write(e->st, buf);
        }
        pk_clause_state_release(e->st);
        e->klen = 0;
    }
    b->n_states = 0;
    return st;
}

/* The state of (agent, pact, clause, scope), from the batch cache, LMDB, or fresh. */
static pk_status state_get(batch *b, const char *agent, const pk_compiled *ps, const pk_clause *c,
                           const char *scope, pk_clause_state **out)
{
    uint8_t key[KEY_MAX];
    size_t klen = state_key(key, agent, ps->pact->id, c->id, scope);
    uint32_t h = 2166136261u;
    MDB_val v;
    pk_status st;

    for (size_t i = 0; i < klen; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    for (;;) {
        for (size_t probe = 0; probe < STATE_SLOTS; probe++) {
            state_entry *e = &b->states[(h + probe) & (STATE_SLOTS - 1)];
            if (e->klen == klen && memcmp(e->key, key, klen) == 0) {
                *out = e->st;
                return PK_OK;
            }
            if (e->klen != 0)
                continue;
            if (b->n_states >= STATE_SLOTS * 3 / 4)
                break; /* too full: write back and start over */
            if (!e->st && !(e->st = calloc(1, sizeof(*e->st))))
                return PK_ERR(PK_ENOMEM, "cannot allocate a clause state");
            st = pk_wset_get(b->w->ws, b->txn, b->w->ev->states, key, klen, &v);
            if (st != PK_OK && st != PK_ENOTFOUND)
                return st;
            /* LMDB values are not aligned: the reader copies before looking inside. */
            if (st != PK_OK || pk_clause_state_read(e->st, v.mv_data, v.mv_size) != PK_OK ||
                e->st->h.fingerprint != pk_clause_fingerprint(c)) {
                pk_clause_state_release(e->st);
                pk_clause_state_init(e->st, c, ps->registered_ms);
            }
            memcpy(e->key, key, klen);
            e->klen = klen;
            b->n_states++;
            *out = e->st;
            return PK_OK;
        }
        if ((st = flush_states(b, true)) != PK_OK)
            return st;
    }
}

/* --- freshness deadlines ------------------------------------------------------- */

static size_t deadline_key(uint8_t *buf, uint32_t partition, int64_t ms, const uint8_t *key,
                           size_t klen)
{
    pk_be32_put(buf, partition);
    pk_be64_put(buf + 4, (uint64_t)(ms < 0 ? 0 : ms));
    memcpy(buf + 12, key, klen);
    return 12 + klen;
}

/*
 * Move the deadline of a freshness clause from old_ms to new_ms: in a
 * worker's batch writes (ws), or straight in a write transaction (txn, when
 * ws is NULL: the registry hook).
 */
static pk_status move_deadline(evaluator *e, pk_wset *ws, MDB_txn *txn, uint32_t partition,
                               const char *agent, const char *pact, const char *clause,
                               const char *scope, int64_t old_ms, int64_t new_ms)
{
    uint8_t key[KEY_MAX], dk[12 + KEY_MAX];
    size_t klen = state_key(key, agent, pact, clause, scope), dl;
    pk_status st;

    if (old_ms == new_ms)
        return PK_OK;
    if (old_ms > 0) {
        dl = deadline_key(dk, partition, old_ms, key, klen);
        st = ws ? pk_wset_del(ws, e->deadlines, dk, dl) : pk_del(txn, e->deadlines, dk, dl);
        if (st != PK_OK)
            return st;
    }
    dl = deadline_key(dk, partition, new_ms, key, klen);
    return ws ? pk_wset_put(ws, e->deadlines, dk, dl, "", 0)
              : pk_put(txn, e->deadlines, dk, dl, "", 0, 0);
}

pk_status evaluator_on_registry(void *ctx, MDB_txn *txn, const Pactum__V1__RegistryRecord *rec,
                                uint64_t seq)
{
    evaluator *e = ctx;
    const Pactum__V1__PactRecord *p;
    pk_pact *pact = NULL;
    pk_lint lint = {0};
    uint32_t partition;
    pk_status st = PK_OK;

    if (rec->record_case != PACTUM__V1__REGISTRY_RECORD__RECORD_PACT)
        return PK_OK;
    p = rec->pact;
    partition = pk_partition_of(p->agent_id, e->partitions);
    if (!(atomic_load(&e->workers.serving) & (1ull << partition)))
        return PK_OK; /* another instance keeps this agent's clocks */
    if (pk_pact_parse((const char *)p->document.data, p->document.len, &pact, &lint) != PK_OK) {
        pk_lint_free(&lint);
        return PK_OK;
    }
    /* The clock of a freshness clause starts when the pact is registered: an
     * agent that never reports goes stale too. */
    for (size_t i = 0; i < pact->n_clauses && st == PK_OK; i++) {
        const pk_clause *c = &pact->clauses[i];
        if (c->kind == PK_CLAUSE_FRESHNESS)
            st = move_deadline(e, NULL, txn, partition, p->agent_id, pact->id, c->id, "", 0,
                               p->registered_ms + c->max_gap_ms);
    }
    pk_pact_free(pact);
    return st;
}

/* --- verdicts ----------------------------------------------------------------- */

static void window_text(const pk_clause *c, char *win, size_t len)
{
    if (c->window_ms)
        pk_duration_format(c->window_ms, win, len);
    else
        snprintf(win, len, "last %u events", c->window_events);
}

static void describe(char *buf, size_t len, const pk_clause *c, const pk_judgement *j)
{
    char win[32], gap[32], seen[32];

    window_text(c, win, sizeof(win));
    switch (c->kind) {
    case PK_CLAUSE_OBJECTIVE:
        if (j->outcome == PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT)
            snprintf(buf, len, "%s(%s%s%s) over %s: %llu of %u samples needed", c->agg_name,
                     c->metric ? c->metric : "events", c->of ? " / " : "", c->of ? c->of : "", win,
                     (unsigned long long)j->samples, c->min_samples);
        else
            snprintf(buf, len, "%s(%s%s%s) over %s = %g, promised %s %g (%llu samples)",
                     c->agg_name, c->metric ? c->metric : "events", c->of ? " / " : "",
                     c->of ? c->of : "", win, j->observed, pk_op_name(c->op), c->threshold,
                     (unsigned long long)j->samples);
        break;
    case PK_CLAUSE_FORBIDDEN:
        snprintf(buf, len, "%s: %g occurrence%s in %s, allowed %u", c->id, j->observed,
                 j->observed == 1 ? "" : "s", win, c->max_count);
        break;
    case PK_CLAUSE_FRESHNESS:
        pk_duration_format(c->max_gap_ms, gap, sizeof(gap));
        if (j->outcome == PACTUM__V1__OUTCOME__OUTCOME_STALE) {
            pk_duration_format((int64_t)j->observed / 1000 * 1000, seen, sizeof(seen));
            snprintf(buf, len, "no %s evidence for %s; promised at least every %s", c->id,
                     j->observed >= 1000 ? seen : "a moment", gap);
        } else {
            snprintf(buf, len, "%s evidence arrived; promised at least every %s", c->id, gap);
        }
        break;
    case PK_CLAUSE_SCOPE:
        snprintf(buf, len, "%s", j->violation ? j->why : "within scope");
        break;
    }
}

typedef struct verdict_spec {
    const pk_compiled *ps;      /* pact in force */
    const pk_clause *c;         /* clause */
    const pk_judgement *j;      /* judgement (outcome, observed ...) */
    const pk_event_msg *ev;     /* triggering event, or NULL (clock) */
    const char *agent;          /* agent */
    uint64_t seq;               /* PACTUM_EVENTS sequence of the event (0: clock) */
    uint64_t vseq;              /* verdict sequence */
    const pk_clause_state *s;   /* tallies, previous outcome */
    const pk_burn_change *burn; /* set: a burn-rate trigger changed */
    const char *engagement;     /* the engagement it is about, or "" */
} verdict_spec;

/* A burn-rate trigger that started or stopped firing speaks for itself. */
static void burn_verdict(Pactum__V1__Verdict *v, const verdict_spec *sp, char *detail, size_t len)
{
    const pk_clause *c = sp->c;
    const pk_burn *br = &c->burn[sp->burn->trigger];
    bool firing = sp->burn->firing;

    v->trigger = (char *)br->name;
    v->severity = br->severity;
    v->consequence = (char *)pk_consequence_name((pk_consequence)br->consequence);
    v->outcome = firing ? PACTUM__V1__OUTCOME__OUTCOME_FAIL : PACTUM__V1__OUTCOME__OUTCOME_PASS;
    v->previous = firing ? PACTUM__V1__OUTCOME__OUTCOME_PASS : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
    v->observed = sp->burn->burn_long;
    v->burn_short = sp->burn->burn_short;
    v->threshold = br->factor;
    v->op = ">=";
    v->aggregate = "burn_rate";
    v->window_ms = br->long_ms;
    v->violation = firing;
    snprintf(detail, len,
             "error budget of %s (target %g) burning %.1fx over the long window and %.1fx "
             "over the short one: trigger %s %s",
             c->id, c->target, sp->burn->burn_long, sp->burn->burn_short, br->name,
             firing ? "fires" : "stops");
}

/* The clause's own verdict: the tallies by source since the last one. */
static void clause_verdict(Pactum__V1__Verdict *v, const verdict_spec *sp,
                           Pactum__V1__SourceTally tallies[PK_SOURCES],
                           Pactum__V1__SourceTally *tp[PK_SOURCES], char *detail, size_t len)
{
    const pk_clause *c = sp->c;
    size_t nt = 0;

    if (!sp->ev && sp->j->outcome != PACTUM__V1__OUTCOME__OUTCOME_STALE)
        snprintf(detail, len, "%s: %llu evaluation%s since the last verdict, each %s", c->id,
                 (unsigned long long)sp->j->samples, sp->j->samples == 1 ? "" : "s",
                 pk_outcome_name(sp->j->outcome));
    else
        describe(detail, len, c, sp->j);
    for (int src = 1; src < PK_SOURCES; src++) {
        if (!sp->s->h.pass[src] && !sp->s->h.fail[src])
            continue;
        pactum__v1__source_tally__init(&tallies[nt]);
        tallies[nt].source = (Pactum__V1__Source)src;
        tallies[nt].pass = sp->s->h.pass[src];
        tallies[nt].fail = sp->s->h.fail[src];
        tallies[nt].weight_ppm = (uint32_t)(c->weight[src] * 1000000.0 + 0.5);
        tp[nt] = &tallies[nt];
        nt++;
    }
    v->n_tally = nt;
    v->tally = tp;
    v->violation = sp->j->violation || (sp->j->outcome == PACTUM__V1__OUTCOME__OUTCOME_FAIL &&
                                        sp->s->h.last_outcome != PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    /* a peer's word alone moves an agent one tier down at most, unless the pact says */
    v->peer_report = v->violation && sp->ev && sp->ev->source == PACTUM__V1__SOURCE__SOURCE_PEER &&
                     !c->peers_can_contain;
}

static void count_verdict(evaluator *e, Pactum__V1__Outcome outcome)
{
    static const int by_outcome[] = {
        [PACTUM__V1__OUTCOME__OUTCOME_PASS] = EM_VERDICT_PASS,
        [PACTUM__V1__OUTCOME__OUTCOME_FAIL] = EM_VERDICT_FAIL,
        [PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT] = EM_VERDICT_INSUFFICIENT,
        [PACTUM__V1__OUTCOME__OUTCOME_STALE] = EM_VERDICT_STALE,
    };
    unsigned o = (unsigned)outcome;

    pk_metric_add(&e->m[o < sizeof(by_outcome) / sizeof(by_outcome[0]) && by_outcome[o]
                            ? by_outcome[o]
                            : EM_VERDICT_INSUFFICIENT],
                  1);
}

static pk_status publish_verdict(batch *b, const verdict_spec *sp)
{
    const pk_clause *c = sp->c;
    const pk_judgement *j = sp->j;
    Pactum__V1__Verdict v = PACTUM__V1__VERDICT__INIT;
    Pactum__V1__SourceTally tallies[PK_SOURCES], *tp[PK_SOURCES];
    Pactum__V1__EvidenceRef ref = PACTUM__V1__EVIDENCE_REF__INIT, *refs[1] = {&ref};
    char detail[400], subject[160], msg_id[PK_ID_MAX + 24];
    uint8_t *buf = NULL;
    size_t len = 0;
    pk_status st;

    if (sp->seq && sp->seq <= b->pw->quiet_until)
        return PK_OK; /* a previous holder of the partition published it */
    v.agent_id = (char *)sp->agent;
    v.vseq = sp->vseq;
    v.pact_id = sp->ps->pact->id;
    v.pact_version = sp->ps->version;
    v.pact_hash.data = (uint8_t *)sp->ps->hash;
    v.pact_hash.len = sizeof(sp->ps->hash);
    v.clause_id = c->id;
    v.clause_kind = (char *)pk_clause_kind_name(c->kind);
    v.severity = c->severity;
    v.consequence = (char *)pk_consequence_name(c->consequence);
    v.outcome = j->outcome;
    v.previous = (Pactum__V1__Outcome)sp->s->h.last_outcome;
    v.observed = j->observed;
    v.threshold = j->threshold;
    v.op = (char *)(c->kind == PK_CLAUSE_OBJECTIVE ? pk_op_name(c->op) : "<=");
    v.aggregate = (char *)(c->kind == PK_CLAUSE_OBJECTIVE   ? c->agg_name
                           : c->kind == PK_CLAUSE_FRESHNESS ? "gap_ms"
                                                            : "count");
    v.metric = c->metric ? c->metric : "";
    v.window_ms = c->kind == PK_CLAUSE_FRESHNESS ? c->max_gap_ms : c->window_ms;
    v.window_events = c->window_events;
    v.samples = j->samples;
    if (sp->burn)
        burn_verdict(&v, sp, detail, sizeof(detail));
    else
        clause_verdict(&v, sp, tallies, tp, detail, sizeof(detail));
    v.detail = detail;
    if (sp->ev) {
        ref.event_id = sp->ev->event_id;
        ref.seq = sp->seq;
        v.n_evidence = 1;
        v.evidence = refs;
        v.event_ts_ms = sp->ev->ts_ms;
        v.ingest_ms = sp->ev->accepted_ms;
        v.received_ms = sp->ev->received_ms;
    }
    v.engagement_id = (char *)(sp->engagement ? sp->engagement : "");
    v.evaluated_ms = pk_now_ms();
    if ((st = pk_pack(&v.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_VERDICTS, b->pw->partition, sp->agent);
    snprintf(msg_id, sizeof(msg_id), "%s:%llu", sp->agent, (unsigned long long)sp->vseq);
    st = pk_bus_publish_async(b->pw->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK)
        count_verdict(b->w->ev, v.outcome);
    return st;
}

/* Judge ev against one clause; publish what is due (burn-rate triggers, the verdict). */
static pk_status judge_clause(batch *b, const pk_event_msg *ev, uint64_t seq, const pk_compiled *ps,
                              const pk_clause *c, uint32_t *ordinal)
{
    evaluator *e = b->w->ev;
    pk_clause_state *s;
    pk_judgement j;
    int64_t deadline = 0;
    const char *scope = scope_of(c, ev);
    verdict_spec sp = {.ps = ps,
                       .c = c,
                       .j = &j,
                       .ev = ev,
                       .agent = ev->agent_id,
                       .seq = seq,
                       .engagement = ev->engagement_id};
    pk_status st;

    if ((st = state_get(b, ev->agent_id, ps, c, scope, &s)) != PK_OK)
        return st;
    if (seq <= s->h.last_seq)
        return PK_OK; /* already judged (a replayed event) */
    if (c->kind == PK_CLAUSE_FRESHNESS)
        deadline = pk_freshness_deadline(c, s);
    pk_clause_judge(c, s, ev, seq, (uint32_t)e->cfg->report_every, &j);
    sp.s = s;
    if (c->kind == PK_CLAUSE_FRESHNESS && j.relevant &&
        (st = move_deadline(e, b->w->ws, NULL, b->pw->partition, ev->agent_id, ps->pact->id, c->id,
                            "", deadline, pk_freshness_deadline(c, s))) != PK_OK)
        return st;
    /* Burn-rate triggers report on their own; the verdict sequence comes from
     * the event's place in its partition: increasing per agent, the same on
     * every instance and on every retry. */
    for (int t = 0; t < j.n_burn; t++) {
        sp.burn = &j.burn[t];
        sp.vseq = (seq << PK_VSEQ_SHIFT) | (*ordinal)++;
        if ((st = publish_verdict(b, &sp)) != PK_OK)
            return st;
    }
    sp.burn = NULL;
    if (j.relevant && !j.verdict_due && s->h.since_verdict == 1 && c->kind != PK_CLAUSE_FRESHNESS)
        /* the first evaluation not reported: report it by --report-after at the latest */
        return move_deadline(
            e, b->w->ws, NULL, b->pw->partition, ev->agent_id, ps->pact->id, c->id, scope, 0,
            (ev->received_ms ? ev->received_ms : ev->ts_ms) + e->cfg->report_after_ms);
    if (!j.relevant || !j.verdict_due)
        return PK_OK;
    sp.vseq = (seq << PK_VSEQ_SHIFT) | (*ordinal)++;
    if ((st = publish_verdict(b, &sp)) != PK_OK)
        return st;
    pk_clause_state_reported(s, j.outcome);
    return PK_OK;
}

/* Does approval a (the oracle's record of it) cover ev exactly? */
static bool approval_covers(const Pactum__V1__Approval *a, const pk_event_msg *ev)
{
    return strcmp(a->agent_id, ev->agent_id) == 0 && strcmp(a->action, ev->action) == 0 &&
           strcmp(a->tool, ev->tool) == 0 && strcmp(a->resource, ev->resource) == 0 &&
           a->amount == ev->amount && strcmp(a->currency, ev->currency) == 0;
}

/*
 * Claim the approval for ev: the oracle's record of it, seq, is republished
 * with the event's id, expecting seq to be the last on its subject, so only
 * one event ever carries it. The event itself again (redelivered) keeps it.
 */
static bool approval_claim(batch *b, Pactum__V1__Approval *a, uint64_t seq, const char *subject,
                           const pk_event_msg *ev)
{
    char *unused = a->used_by_event; /* protobuf-c's own empty string: put back before freeing */
    uint8_t *buf = NULL;
    size_t len = 0;
    pk_status st;

    if (unused[0])
        return strcmp(unused, ev->event_id) == 0;
    a->used_by_event = ev->event_id;
    st = pk_pack(&a->base, &buf, &len);
    a->used_by_event = unused;
    if (st == PK_OK)
        st = pk_bus_publish_sync(b->pw->bus, subject, buf, len, NULL, true, seq, NULL, NULL);
    free(buf);
    if (st != PK_OK && st != PK_ECONFLICT)
        PK_WARN("approval on %s not claimed for event %s: %s", subject, ev->event_id,
                pk_error_msg());
    return st == PK_OK;
}

/*
 * An event labelled `approval` claims a person approved it: believed only if
 * the oracle granted and used that approval for exactly this action and the
 * event is the only one that names it; otherwise the label is renamed
 * approval_claimed and counted.
 */
static void check_approval(batch *b, pk_event_msg *ev)
{
    const char *id = pk_event_label(ev, "approval");
    char subject[128];
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    jsOptions jo;
    Pactum__V1__Approval *a = NULL;
    bool ok = false;

    if (!id)
        return;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    snprintf(subject, sizeof(subject), PK_SUBJ_APPROVAL_USED, id);
    if (pk_id_check("approval id", id) == PK_OK &&
        js_GetLastMsg(&m, b->pw->bus->js, PK_STREAM_APPROVALS, subject, &jo, &jerr) == NATS_OK &&
        (a = pactum__v1__approval__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                          (const uint8_t *)natsMsg_GetData(m))))
        ok = approval_covers(a, ev) && approval_claim(b, a, natsMsg_GetSequence(m), subject, ev);
    if (a)
        pactum__v1__approval__free_unpacked(a, NULL);
    natsMsg_Destroy(m);
    if (ok)
        return;
    pk_metric_add(&b->w->ev->m[EM_FALSE_APPROVALS], 1);
    for (size_t i = 0; i < ev->n_labels; i++) {
        char *claimed;
        if (strcmp(ev->labels[i]->name, "approval") != 0)
            continue;
        /* kept for the record, not believed (out of memory: unbelieved all the same) */
        if (!(claimed = strdup("approval_claimed"))) {
            ev->labels[i]->name[0] = '_';
            continue;
        }
        free(ev->labels[i]->name); /* the event's own allocation */
        ev->labels[i]->name = claimed;
    }
}

/* Judge one event against every clause of every pact in force for its agent. */
static pk_status judge_event(batch *b, pk_event_msg *ev, uint64_t seq)
{
    evaluator *e = b->w->ev;
    const pk_compiled *pacts[MAX_PACTS];
    size_t n = pacts_in_force(e, b->txn, ev->agent_id, ev->registry_seq, pacts);
    uint32_t ordinal = 0;
    pk_status st = PK_OK;

    if (n == 0)
        pk_metric_add(&e->m[EM_NO_PACT], 1);
    else
        check_approval(b, ev);
    for (size_t i = 0; i < n && st == PK_OK; i++) {
        const pk_pact *p = pacts[i]->pact;
        for (size_t k = 0; k < p->n_clauses && st == PK_OK; k++)
            st = judge_clause(b, ev, seq, pacts[i], &p->clauses[k], &ordinal);
    }
    release_pacts(e, pacts, n);
    return st;
}

static pk_status batch_begin(batch *b, pk_pworker *pw)
{
    eval_worker *w = pw->ctx;

    memset(b, 0, sizeof(*b));
    b->pw = pw;
    b->w = w;
    b->states = w->states;
    pk_wset_clear(w->ws);
    return pk_txn_begin(w->ev->store, false, &b->txn);
}

/*
 * End the batch: the states join the writes, the read transaction ends, the
 * bus acknowledges the verdicts, and then the writes go to LMDB in one short
 * transaction. On any failure the cached states and writes are forgotten.
 */
static pk_status batch_end(batch *b, pk_status st)
{
    if (st == PK_OK)
        st = flush_states(b, true);
    else
        flush_states(b, false);
    pk_txn_abort(b->txn);
    b->txn = NULL;
    if (st == PK_OK)
        st = pk_bus_publish_wait(b->pw->bus, 5000);
    if (st == PK_OK)
        st = pk_pworker_still_held(b->pw);
    if (st == PK_OK)
        st = pk_wset_commit(b->w->ws, b->w->ev->store);
    if (st != PK_OK)
        pk_wset_clear(b->w->ws);
    return st;
}

static pk_status dead_letter(batch *b, natsMsg *m, uint64_t seq)
{
    pk_rejection r = {.reason = PACTUM__V1__REASON__REASON_MALFORMED,
                      .message = "event in PACTUM_EVENTS does not decode",
                      .subject = natsMsg_GetSubject(m),
                      .source_seq = seq,
                      .data = (const uint8_t *)natsMsg_GetData(m),
                      .len = (size_t)natsMsg_GetDataLength(m)};
    char id[48];

    snprintf(id, sizeof(id), "evaluator:%llu", (unsigned long long)seq);
    pk_metric_add(&b->w->ev->m[EM_MALFORMED], 1);
    if (seq <= b->pw->quiet_until)
        return PK_OK; /* a previous holder of the partition dead-lettered it */
    return pk_reject_publish(b->pw->bus, "evaluator", &r, id, false);
}

/* Decode every event, and the registry position the newest needs. */
static pk_status decode_all(natsMsgList *list, pk_event_msg **events, uint64_t *seqv,
                            uint64_t *max_reg)
{
    *max_reg = 0;
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        seqv[i] = pk_msg_seq(m);
        events[i] = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        if (events[i] && events[i]->registry_seq > *max_reg)
            *max_reg = events[i]->registry_seq;
    }
    return PK_OK;
}

pk_status evaluator_process(pk_pworker *pw, natsMsgList *list)
{
    eval_worker *w = pw->ctx;
    evaluator *e = w->ev;
    batch b;
    char applied_key[32];
    uint64_t applied = 0, max_reg = 0;
    pk_event_msg **events = calloc((size_t)list->Count + 1, sizeof(*events));
    uint64_t *seqv = calloc((size_t)list->Count + 1, sizeof(*seqv));
    pk_status st = PK_OK;

    if (!events || !seqv) {
        st = PK_ERR(PK_ENOMEM, "cannot allocate batch");
        goto out;
    }
    decode_all(list, events, seqv, &max_reg);
    /* Judging an event by an older pact than the one in force would be
     * wrong and final: if the copy cannot catch up, do not judge yet. */
    if (max_reg > pk_registry_seq(e->reg) && (st = pk_registry_sync(e->reg, max_reg)) != PK_OK)
        goto out;
    if ((st = batch_begin(&b, pw)) != PK_OK)
        goto out;
    snprintf(applied_key, sizeof(applied_key), "events_p%u", pw->partition);
    if ((st = pk_get_u64(b.txn, e->meta, applied_key, &applied)) == PK_ENOTFOUND)
        st = PK_OK;
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        pk_metric_add(&e->m[EM_EVENTS], 1);
        if (seqv[i] && seqv[i] <= applied) {
            pk_metric_add(&e->m[EM_SKIPPED], 1);
            continue;
        }
        if (!events[i] || pk_id_check("agent id", events[i]->agent_id) != PK_OK)
            st = dead_letter(&b, list->Msgs[i], seqv[i]);
        else
            st = judge_event(&b, events[i], seqv[i]);
        if (seqv[i] > applied)
            applied = seqv[i];
    }
    if (st == PK_OK)
        st = pk_wset_put_u64(w->ws, e->meta, applied_key, applied);
    if ((st = batch_end(&b, st)) != PK_OK)
        goto out;
    pk_consumer_ack(&pw->consumer, list);
out:
    for (int i = 0; events && i < list->Count; i++) {
        if (events[i])
            pactum__v1__event__free_unpacked(events[i], NULL);
    }
    free(events);
    free(seqv);
    return st;
}

/* --- the clock ------------------------------------------------------------------ */

/* Split a state key into its three ids (pointers into buf). */
static bool split_key(const uint8_t *key, size_t len, char *buf, const char **agent,
                      const char **pact, const char **clause, const char **scope)
{
    char *a, *p, *c, *s;

    if (len == 0 || len >= KEY_MAX)
        return false;
    memcpy(buf, key, len);
    buf[len] = '\0';
    a = buf;
    p = memchr(a, '\0', len);
    if (!p || (size_t)(++p - buf) >= len)
        return false;
    c = memchr(p, '\0', len - (size_t)(p - buf));
    if (!c || (size_t)(++c - buf) > len)
        return false;
    /* the engagement, for the state of a clause judged per engagement */
    s = memchr(c, '\0', len - (size_t)(c - buf));
    *agent = a;
    *pact = p;
    *clause = c;
    *scope = s ? s + 1 : "";
    return true;
}

/* Up to max deadline keys of the partition due at now_ms, in order, copied into keys. */
typedef struct due_key {
    uint8_t key[12 + KEY_MAX];
    size_t len;
} due_key;

static pk_status due_deadlines(evaluator *e, MDB_txn *txn, uint32_t partition, int64_t now_ms,
                               due_key *keys, int max, int *n)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t from[12];
    int rc;

    *n = 0;
    pk_be32_put(from, partition);
    pk_be64_put(from + 4, 0);
    k.mv_size = sizeof(from);
    k.mv_data = from;
    if ((rc = mdb_cursor_open(txn, e->deadlines, &cur)) != 0)
        return pk_store_err(rc, "deadline cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= 12 || k.mv_size > sizeof(keys[0].key) ||
            pk_be32_get(k.mv_data) != partition ||
            (int64_t)pk_be64_get((const uint8_t *)k.mv_data + 4) > now_ms)
            break; /* nothing more due */
        memcpy(keys[*n].key, k.mv_data, k.mv_size);
        keys[(*n)++].len = k.mv_size;
    }
    mdb_cursor_close(cur);
    return PK_OK;
}

/* The clause a deadline key names (a freshness deadline, or a report due), if in force. */
static const pk_clause *clause_in_force(evaluator *e, MDB_txn *txn, const char *agent,
                                        const char *pact_id, const char *clause_id,
                                        const pk_compiled **pacts, size_t *n,
                                        const pk_compiled **ps)
{
    const pk_clause *c = NULL;

    *n = pacts_in_force(e, txn, agent, pk_registry_seq(e->reg), pacts);
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(pacts[i]->pact->id, pact_id) == 0) {
            *ps = pacts[i];
            c = pk_pact_clause(pacts[i]->pact, clause_id);
        }
    }
    return c;
}

/* One due deadline: a stale verdict if the clause went silent, else the right deadline. */
static pk_status handle_deadline(batch *b, const due_key *dk, int64_t now_ms, uint64_t applied,
                                 uint32_t *ordinal)
{
    evaluator *e = b->w->ev;
    char ids[KEY_MAX + 1];
    const char *agent, *pact_id, *clause_id, *scope;
    const pk_compiled *pacts[MAX_PACTS], *ps = NULL;
    const pk_clause *c;
    pk_clause_state *s;
    int64_t deadline;
    size_t n = 0;
    pk_status st;

    pk_metric_add(&e->m[EM_STALE_CHECKS], 1);
    if ((st = pk_wset_del(b->w->ws, e->deadlines, dk->key, dk->len)) != PK_OK)
        return st;
    if (!split_key(dk->key + 12, dk->len - 12, ids, &agent, &pact_id, &clause_id, &scope))
        return PK_OK;
    c = clause_in_force(e, b->txn, agent, pact_id, clause_id, pacts, &n, &ps);
    if (c && c->kind != PK_CLAUSE_FRESHNESS) {
        /* evaluations waiting for a verdict: report them now, with the outcome they had
         * (a change of outcome would have been reported at once) */
        if ((st = state_get(b, agent, ps, c, scope, &s)) == PK_OK && s->h.since_verdict > 0) {
            pk_judgement j = {.relevant = true, .outcome = (Pactum__V1__Outcome)s->h.last_outcome};
            verdict_spec sp = {
                .ps = ps, .c = c, .j = &j, .agent = agent, .s = s, .engagement = scope};
            if (!j.outcome)
                j.outcome = PACTUM__V1__OUTCOME__OUTCOME_PASS;
            j.samples = s->h.since_verdict;
            sp.vseq = (applied << PK_VSEQ_SHIFT) | (*ordinal)++;
            if ((st = publish_verdict(b, &sp)) == PK_OK)
                pk_clause_state_reported(s, j.outcome);
        }
    } else if (c && (st = state_get(b, agent, ps, c, "", &s)) == PK_OK) {
        deadline = pk_freshness_deadline(c, s);
        if (deadline > now_ms) {
            /* evidence came in, or the pact changed: keep the right deadline */
            st = move_deadline(e, b->w->ws, NULL, b->pw->partition, agent, pact_id, clause_id, "",
                               0, deadline);
        } else if (s->h.last_outcome != PACTUM__V1__OUTCOME__OUTCOME_STALE) {
            /* Going stale breaks the promise of fresh evidence: it is a violation,
             * and the clause's consequence applies. */
            pk_judgement j = {
                .relevant = true, .outcome = PACTUM__V1__OUTCOME__OUTCOME_STALE, .violation = true};
            verdict_spec sp = {.ps = ps, .c = c, .j = &j, .agent = agent, .s = s};
            j.observed = (double)(now_ms - (s->h.last_seen_ms ? s->h.last_seen_ms : s->h.since_ms));
            j.threshold = (double)c->max_gap_ms;
            sp.vseq = (applied << PK_VSEQ_SHIFT) | (*ordinal)++;
            if ((st = publish_verdict(b, &sp)) == PK_OK)
                pk_clause_state_reported(s, PACTUM__V1__OUTCOME__OUTCOME_STALE);
        }
    }
    release_pacts(e, pacts, n);
    return st;
}

pk_status evaluator_tick(pk_pworker *pw, int64_t now_ms)
{
    eval_worker *w = pw->ctx;
    evaluator *e = w->ev;
    static _Thread_local due_key due[TICK_MAX];
    batch b;
    MDB_val v;
    uint8_t tick_val[12];
    char applied_key[32], ticks_key[32];
    uint64_t applied = 0;
    uint32_t ordinal = PK_TICK_ORDINAL;
    int n = 0;
    pk_status st;

    if ((st = batch_begin(&b, pw)) != PK_OK)
        return st;
    snprintf(applied_key, sizeof(applied_key), "events_p%u", pw->partition);
    snprintf(ticks_key, sizeof(ticks_key), "ticks_p%u", pw->partition);
    if ((st = pk_get_u64(b.txn, e->meta, applied_key, &applied)) == PK_ENOTFOUND)
        st = PK_OK;
    if (st == PK_OK && pk_get(b.txn, e->meta, ticks_key, strlen(ticks_key), &v) == PK_OK &&
        v.mv_size == 12 && pk_be64_get(v.mv_data) == applied)
        ordinal = pk_be32_get((const uint8_t *)v.mv_data + 8);
    if (st == PK_OK)
        st = due_deadlines(e, b.txn, pw->partition, now_ms, due, TICK_MAX, &n);
    pk_bus_publish_reset(pw->bus);
    /* a million stale reports since the last event: the rest next time */
    for (int i = 0; i < n && st == PK_OK && ordinal < (1u << PK_VSEQ_SHIFT); i++)
        st = handle_deadline(&b, &due[i], now_ms, applied, &ordinal);
    if (st == PK_OK && n) {
        pk_be64_put(tick_val, applied);
        pk_be32_put(tick_val + 8, ordinal);
        st = pk_wset_put(w->ws, e->meta, ticks_key, strlen(ticks_key), tick_val, 12);
    }
    return batch_end(&b, st);
}

pk_status evaluator_idle(pk_pworker *pw, bool caught_up)
{
    eval_worker *w = pw->ctx;
    int64_t now = pk_mono_ms();
    pk_status st;

    /* the evidence a silent clause waits for may still be in the stream: judge silence
     * only once caught up */
    if (!caught_up || now < w->next_tick_ms)
        return PK_OK;
    w->next_tick_ms = now + 1000;
    if ((st = evaluator_tick(pw, pk_now_ms())) != PK_OK)
        return PK_WRAP(st, "clock work");
    return PK_OK;
}

/* --- probes ------------------------------------------------------------------------ */

typedef struct probe_ctx {
    evaluator *e;
    MDB_txn *txn;
    const char *agent;
} probe_ctx;

/* The committed state of a clause (a pk_clause_state_fn). */
static void probe_state(void *ctx, const pk_pact *pact, const pk_clause *c, pk_clause_state *s)
{
    probe_ctx *pc = ctx;
    uint8_t key[KEY_MAX];
    MDB_val v;

    /* authorize imagines an event of no engagement: the agent's whole history */
    if (pk_get(pc->txn, pc->e->states, key, state_key(key, pc->agent, pact->id, c->id, ""), &v) !=
        PK_OK)
        return;
    pk_clause_state_release(s);
    if (pk_clause_state_read(s, v.mv_data, v.mv_size) != PK_OK ||
        s->h.fingerprint != pk_clause_fingerprint(c)) {
        pk_clause_state_release(s);
        pk_clause_state_init(s, c, 0);
    }
}

pk_status evaluator_probe(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen)
{
    evaluator *e = ctx;
    Pactum__V1__ProbeRequest *q = pactum__v1__probe_request__unpack(NULL, len, req);
    Pactum__V1__ProbeAnswer a = PACTUM__V1__PROBE_ANSWER__INIT;
    static _Thread_local pk_authz_finding f[PK_AUTHZ_FINDINGS];
    static _Thread_local Pactum__V1__ProbeFinding pf[PK_AUTHZ_FINDINGS];
    Pactum__V1__ProbeFinding *pfp[PK_AUTHZ_FINDINGS];
    const pk_compiled *ps[MAX_PACTS];
    pk_pact *pacts[MAX_PACTS];
    char applied_key[32];
    probe_ctx pc = {.e = e};
    size_t n = 0, nf = 0;
    uint32_t partition;
    pk_status st;

    a.status = PACTUM__V1__QUERY_STATUS__QUERY_OK;
    if (!q || !q->event || pk_id_check("agent id", q->event->agent_id) != PK_OK) {
        a.status = PACTUM__V1__QUERY_STATUS__QUERY_BAD_REQUEST;
        a.message = "not a ProbeRequest with an agent's event";
    } else if (!(atomic_load(&e->workers.serving) &
                 (1ull << (partition = pk_partition_of(q->event->agent_id, e->partitions))))) {
        /* every evaluator hears every probe; the one serving the partition answers */
        pactum__v1__probe_request__free_unpacked(q, NULL);
        *out = NULL;
        *outlen = 0;
        return PK_OK;
    } else if ((q->event->registry_seq > pk_registry_seq(e->reg)
                    ? pk_registry_sync(e->reg, q->event->registry_seq)
                    : pk_registry_sync_if_dirty(e->reg)) != PK_OK ||
               pk_txn_begin(e->store, false, &pc.txn) != PK_OK) {
        a.status = PACTUM__V1__QUERY_STATUS__QUERY_UNAVAILABLE;
        a.message = "the clause states cannot be read now";
    } else {
        pc.agent = q->event->agent_id;
        n = pacts_in_force(e, pc.txn, pc.agent, pk_registry_seq(e->reg), ps);
        for (size_t i = 0; i < n; i++)
            pacts[i] = ps[i]->pact;
        q->event->n_labels = 0; /* an imagined event claims no approval: the oracle asks */
        nf = pk_authz_findings(pacts, n, q->event, probe_state, &pc, f, PK_AUTHZ_FINDINGS);
        for (size_t i = 0; i < nf; i++) {
            pactum__v1__probe_finding__init(&pf[i]);
            pf[i].pact_id = (char *)f[i].pact_id;
            pf[i].clause_id = (char *)f[i].clause_id;
            for (size_t k = 0; k < n; k++) {
                if (strcmp(ps[k]->pact->id, f[i].pact_id) == 0)
                    pf[i].pact_version = ps[k]->version;
            }
            pf[i].violation = f[i].violation;
            pf[i].needs_approval = f[i].needs_approval;
            pf[i].why = f[i].why;
            pfp[i] = &pf[i];
        }
        a.findings = pfp;
        a.n_findings = nf;
        a.pacts = (uint32_t)n;
        snprintf(applied_key, sizeof(applied_key), "events_p%u", partition);
        if (pk_get_u64(pc.txn, e->meta, applied_key, &a.events_applied) != PK_OK)
            a.events_applied = 0;
    }
    st = pk_pack(&a.base, out, outlen);
    release_pacts(e, ps, n);
    pk_txn_abort(pc.txn);
    if (q)
        pactum__v1__probe_request__free_unpacked(q, NULL);
    pk_metric_add(&e->m[EM_PROBES], 1);
    return st;
}

pk_status evaluator_probes_start(evaluator *e)
{
    /* no queue group: the instance serving the partition answers, the others keep quiet */
    static const pk_route routes[] = {{"pactum.evaluator.probe.*", NULL, 2, evaluator_probe}};

    return pk_responders_start(&e->probes, e->bus, routes, 1, e);
}
