#include "evaluator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clause.h"
#include "pk/clock.h"
#include "pk/log.h"

#define STATE_SLOTS 256 /* clause states cached per batch (power of two) */
#define MAX_PACTS   PK_PACTS_PER_AGENT_MAX
#define KEY_MAX     (3 * (PK_ID_MAX + 1))
#define TICK_MAX    512 /* stale clauses handled per tick */

void evaluator_metrics_init(evaluator *e)
{
    pk_metric *m = e->m;
    static const char *vh = "Verdicts published, by outcome";

    m[EM_EVENTS] = (pk_metric){"pactum_evaluator_events_total", NULL,
                               "Events taken from PACTUM_EVENTS", PK_COUNTER, 0};
    m[EM_STALE_CHECKS] = (pk_metric){"pactum_evaluator_freshness_checks_total", NULL,
                                     "Freshness deadlines examined by the clock", PK_COUNTER, 0};
    m[EM_SKIPPED] =
        (pk_metric){"pactum_evaluator_redelivered_total", NULL,
                    "Redelivered events skipped because they were already applied", PK_COUNTER, 0};
    m[EM_NO_PACT] = (pk_metric){"pactum_evaluator_events_without_pact_total", NULL,
                                "Events about agents with no pact in force", PK_COUNTER, 0};
    m[EM_VERDICT_PASS] =
        (pk_metric){"pactum_evaluator_verdicts_total", "outcome=\"pass\"", vh, PK_COUNTER, 0};
    m[EM_VERDICT_FAIL] =
        (pk_metric){"pactum_evaluator_verdicts_total", "outcome=\"fail\"", vh, PK_COUNTER, 0};
    m[EM_VERDICT_INSUFFICIENT] = (pk_metric){"pactum_evaluator_verdicts_total",
                                             "outcome=\"insufficient\"", vh, PK_COUNTER, 0};
    m[EM_VERDICT_STALE] =
        (pk_metric){"pactum_evaluator_verdicts_total", "outcome=\"stale\"", vh, PK_COUNTER, 0};
    m[EM_MALFORMED] = (pk_metric){"pactum_evaluator_malformed_total", NULL,
                                  "Events that did not decode (dead-lettered)", PK_COUNTER, 0};
    m[EM_BATCH_RETRIES] = (pk_metric){"pactum_evaluator_batch_retries_total", NULL,
                                      "Batch attempts that failed and were retried", PK_COUNTER, 0};
    m[EM_LAG] = (pk_metric){"pactum_consumer_pending", "consumer=\"evaluator\"",
                            "Messages waiting for this consumer", PK_GAUGE, 0};
    m[EM_LMDB_USED] =
        (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes", PK_GAUGE, 0};
    m[EM_LMDB_MAP] =
        (pk_metric){"pactum_lmdb_map_bytes", NULL, "LMDB map size, in bytes", PK_GAUGE, 0};
}

/* --- compiled pact cache ------------------------------------------------------ */

static uint32_t hash_str(const char *s, uint32_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

#define PACT_PROBES (2 * MAX_PACTS) /* slots looked at for one (id, version) */

/*
 * The compiled pact (id, version), loading it from the registry copy if
 * needed. Slots in pinned (already handed out for the current event) are
 * never evicted.
 */
static pact_slot *pact_get(eval_worker *w, MDB_txn *txn, const char *id, uint32_t version,
                           pact_slot *const *pinned, size_t n_pinned)
{
    uint32_t h = hash_str(id, 2166136261u) ^ (version * 2654435761u);
    pact_slot *victim = NULL;
    Pactum__V1__PactRecord *rec = NULL;
    pk_lint lint = {0};
    pk_pact *pact = NULL;

    for (uint32_t k = 0; k < PACT_PROBES; k++) {
        pact_slot *s = &w->cache[(h + k) % PACT_CACHE_SLOTS];
        bool is_pinned = false;
        if (s->pact && s->version == version && strcmp(s->id, id) == 0)
            return s;
        for (size_t i = 0; i < n_pinned; i++)
            is_pinned |= pinned[i] == s;
        if (!is_pinned && (!victim || (victim->pact && !s->pact)))
            victim = s;
    }
    if (!victim)
        return NULL; /* cannot happen: fewer pins than probes */
    if (pk_registry_pact(w->ev->reg, txn, id, version, 0, &rec, NULL) != PK_OK)
        return NULL;
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &pact, &lint) != PK_OK) {
        PK_WARN("pact %s v%u in the registry does not parse: %s", id, version,
                lint.n ? lint.msgs[0] : pk_error_msg());
        pk_lint_free(&lint);
        pactum__v1__pact_record__free_unpacked(rec, NULL);
        return NULL;
    }
    pk_pact_free(victim->pact);
    snprintf(victim->id, sizeof(victim->id), "%s", id);
    victim->version = version;
    victim->registered_ms = rec->registered_ms;
    memset(victim->hash, 0, sizeof(victim->hash));
    if (rec->hash.len == sizeof(victim->hash))
        memcpy(victim->hash, rec->hash.data, sizeof(victim->hash));
    victim->pact = pact;
    pactum__v1__pact_record__free_unpacked(rec, NULL);
    return victim;
}

/* Pacts in force for agent at registry position registry_seq. */
static size_t pacts_in_force(eval_worker *w, MDB_txn *txn, const char *agent, uint64_t registry_seq,
                             pact_slot **out)
{
    char **ids = NULL;
    size_t n_ids = 0, n = 0;

    if (pk_registry_agent_pacts(w->ev->reg, txn, agent, &ids, &n_ids) != PK_OK)
        return 0;
    for (size_t i = 0; i < n_ids && n < MAX_PACTS; i++) {
        uint32_t version = 0;
        pact_slot *s;
        if (pk_registry_pact_version(w->ev->reg, txn, ids[i], registry_seq, &version, NULL) !=
            PK_OK)
            continue; /* registered after this event was accepted */
        if ((s = pact_get(w, txn, ids[i], version, out, n)) && strcmp(s->pact->agent, agent) == 0)
            out[n++] = s;
    }
    pk_registry_ids_free(ids, n_ids);
    return n;
}

/* --- per-batch state cache ---------------------------------------------------- */

typedef struct state_entry {
    uint8_t key[KEY_MAX]; /* agent \0 pact \0 clause */
    size_t klen;          /* 0 when free */
    pk_clause_state st;   /* the state */
} state_entry;

typedef struct batch {
    pk_pworker *pw;      /* the partition worker */
    eval_worker *w;      /* its evaluator data */
    MDB_txn *txn;        /* the batch's write transaction */
    state_entry *states; /* STATE_SLOTS */
    size_t n_states;     /* entries in use */
} batch;

void evaluator_worker_free(eval_worker *w)
{
    for (size_t i = 0; i < PACT_CACHE_SLOTS; i++) {
        pk_pact_free(w->cache[i].pact);
        w->cache[i].pact = NULL;
    }
    if (w->states) {
        for (size_t i = 0; i < STATE_SLOTS; i++)
            pk_clause_state_release(&w->states[i].st);
    }
    free(w->states);
    w->states = NULL;
}

static size_t state_key(uint8_t *key, const char *agent, const char *pact, const char *clause)
{
    size_t a = strlen(agent), p = strlen(pact), k = strlen(clause);

    memcpy(key, agent, a);
    key[a] = 0;
    memcpy(key + a + 1, pact, p);
    key[a + 1 + p] = 0;
    memcpy(key + a + p + 2, clause, k);
    return a + p + k + 2;
}

/* Write every cached state into the transaction (or just forget them). */
static pk_status flush_states(batch *b, bool write)
{
    pk_status st = PK_OK;

    for (size_t i = 0; i < STATE_SLOTS; i++) {
        state_entry *e = &b->states[i];
        if (!e->klen)
            continue;
        if (write && st == PK_OK) {
            MDB_val k = {.mv_size = e->klen, .mv_data = e->key};
            MDB_val v = {.mv_size = pk_clause_state_size(&e->st), .mv_data = NULL};
            int rc = mdb_put(b->txn, b->w->ev->states, &k, &v, MDB_RESERVE);
            if (rc)
                st = pk_store_err(rc, "clause state");
            else
                pk_clause_state_write(&e->st, v.mv_data);
        }
        pk_clause_state_release(&e->st);
        e->klen = 0;
    }
    b->n_states = 0;
    return st;
}

/* The state of (agent, pact, clause), from the batch cache, LMDB, or fresh. */
static pk_status state_get(batch *b, const char *agent, const pact_slot *ps, const pk_clause *c,
                           pk_clause_state **out)
{
    uint8_t key[KEY_MAX];
    size_t klen = state_key(key, agent, ps->pact->id, c->id);
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
                *out = &e->st;
                return PK_OK;
            }
            if (e->klen != 0)
                continue;
            if (b->n_states >= STATE_SLOTS * 3 / 4)
                break; /* too full: write back and start over */
            st = pk_get(b->txn, b->w->ev->states, key, klen, &v);
            if (st != PK_OK && st != PK_ENOTFOUND)
                return st;
            /* LMDB values are not aligned: the reader copies before looking inside. */
            if (st != PK_OK || pk_clause_state_read(&e->st, v.mv_data, v.mv_size) != PK_OK ||
                e->st.h.fingerprint != pk_clause_fingerprint(c)) {
                pk_clause_state_release(&e->st);
                pk_clause_state_init(&e->st, c, ps->registered_ms);
            }
            memcpy(e->key, key, klen);
            e->klen = klen;
            b->n_states++;
            *out = &e->st;
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

/* Move the deadline of a freshness clause from old_ms to new_ms. */
static pk_status move_deadline(evaluator *e, MDB_txn *txn, uint32_t partition, const char *agent,
                               const char *pact, const char *clause, int64_t old_ms, int64_t new_ms)
{
    uint8_t key[KEY_MAX], dk[12 + KEY_MAX];
    size_t klen = state_key(key, agent, pact, clause), dl;
    pk_status st;

    if (old_ms == new_ms)
        return PK_OK;
    if (old_ms > 0) {
        dl = deadline_key(dk, partition, old_ms, key, klen);
        if ((st = pk_del(txn, e->deadlines, dk, dl)) != PK_OK)
            return st;
    }
    dl = deadline_key(dk, partition, new_ms, key, klen);
    return pk_put(txn, e->deadlines, dk, dl, "", 0, 0);
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
    if (!(e->owned & (1ull << partition)))
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
            st = move_deadline(e, txn, partition, p->agent_id, pact->id, c->id, 0,
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
            snprintf(buf, len, "%s(%s) over %s: %llu of %u samples needed",
                     pk_aggregate_name(c->aggregate), c->metric ? c->metric : "events", win,
                     (unsigned long long)j->samples, c->min_samples);
        else
            snprintf(buf, len, "%s(%s) over %s = %g, promised %s %g (%llu samples)",
                     pk_aggregate_name(c->aggregate), c->metric ? c->metric : "events", win,
                     j->observed, pk_op_name(c->op), c->threshold, (unsigned long long)j->samples);
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
    const pact_slot *ps;        /* pact in force */
    const pk_clause *c;         /* clause */
    const pk_judgement *j;      /* judgement (outcome, observed ...) */
    const pk_event_msg *ev;     /* triggering event, or NULL (clock) */
    const char *agent;          /* agent */
    uint64_t seq;               /* PACTUM_EVENTS sequence of the event (0: clock) */
    uint64_t vseq;              /* verdict sequence */
    const pk_clause_state *s;   /* tallies, previous outcome */
    const pk_burn_change *burn; /* set: a burn-rate trigger changed */
} verdict_spec;

static pk_status publish_verdict(batch *b, const verdict_spec *sp)
{
    evaluator *e = b->w->ev;
    const pk_clause *c = sp->c;
    const pk_judgement *j = sp->j;
    Pactum__V1__Verdict v = PACTUM__V1__VERDICT__INIT;
    Pactum__V1__SourceTally tallies[5], *tp[5];
    Pactum__V1__EvidenceRef ref = PACTUM__V1__EVIDENCE_REF__INIT, *refs[1] = {&ref};
    char detail[400], subject[160], msg_id[PK_ID_MAX + 24];
    uint8_t *buf = NULL;
    size_t len = 0, nt = 0;
    pk_status st;

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
    v.aggregate = (char *)(c->kind == PK_CLAUSE_OBJECTIVE   ? pk_aggregate_name(c->aggregate)
                           : c->kind == PK_CLAUSE_FRESHNESS ? "gap_ms"
                                                            : "count");
    v.metric = c->metric ? c->metric : "";
    v.window_ms = c->kind == PK_CLAUSE_FRESHNESS ? c->max_gap_ms : c->window_ms;
    v.window_events = c->window_events;
    v.samples = j->samples;
    if (sp->burn) {
        const pk_burn *br = &c->burn[sp->burn->trigger];
        v.trigger = (char *)br->name;
        v.severity = br->severity;
        v.consequence = (char *)pk_consequence_name((pk_consequence)br->consequence);
        v.outcome = sp->burn->firing ? PACTUM__V1__OUTCOME__OUTCOME_FAIL
                                     : PACTUM__V1__OUTCOME__OUTCOME_PASS;
        v.previous = sp->burn->firing ? PACTUM__V1__OUTCOME__OUTCOME_PASS
                                      : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
        v.observed = sp->burn->burn_long;
        v.burn_short = sp->burn->burn_short;
        v.threshold = br->factor;
        v.op = ">=";
        v.aggregate = "burn_rate";
        v.window_ms = br->long_ms;
        v.violation = sp->burn->firing;
        snprintf(detail, sizeof(detail),
                 "error budget of %s (target %g) burning %.1fx over the long window and %.1fx "
                 "over the short one: trigger %s %s",
                 c->id, c->target, sp->burn->burn_long, sp->burn->burn_short, br->name,
                 sp->burn->firing ? "fires" : "stops");
    } else {
        describe(detail, sizeof(detail), c, j);
        for (int src = 1; src < 5; src++) {
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
        v.n_tally = nt;
        v.tally = tp;
        v.violation = j->violation || (j->outcome == PACTUM__V1__OUTCOME__OUTCOME_FAIL &&
                                       sp->s->h.last_outcome != PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    }
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
    v.evaluated_ms = pk_now_ms();
    if ((st = pk_pack(&v.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_VERDICTS, b->pw->partition, sp->agent);
    snprintf(msg_id, sizeof(msg_id), "%s:%llu", sp->agent, (unsigned long long)sp->vseq);
    st = pk_bus_publish_async(b->pw->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK) {
        switch (v.outcome) {
        case PACTUM__V1__OUTCOME__OUTCOME_PASS:
            pk_metric_add(&e->m[EM_VERDICT_PASS], 1);
            break;
        case PACTUM__V1__OUTCOME__OUTCOME_FAIL:
            pk_metric_add(&e->m[EM_VERDICT_FAIL], 1);
            break;
        case PACTUM__V1__OUTCOME__OUTCOME_STALE:
            pk_metric_add(&e->m[EM_VERDICT_STALE], 1);
            break;
        default:
            pk_metric_add(&e->m[EM_VERDICT_INSUFFICIENT], 1);
            break;
        }
    }
    return st;
}

/* Judge one event against every clause of every pact in force for its agent. */
static pk_status judge_event(batch *b, const pk_event_msg *ev, uint64_t seq)
{
    eval_worker *w = b->w;
    pact_slot *pacts[MAX_PACTS];
    size_t n = pacts_in_force(w, b->txn, ev->agent_id, ev->registry_seq, pacts);
    uint32_t ordinal = 0;
    pk_status st;

    if (n == 0) {
        pk_metric_add(&w->ev->m[EM_NO_PACT], 1);
        return PK_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const pk_pact *p = pacts[i]->pact;
        for (size_t k = 0; k < p->n_clauses; k++) {
            const pk_clause *c = &p->clauses[k];
            pk_clause_state *s;
            pk_judgement j;
            int64_t deadline = 0;
            verdict_spec sp = {
                .ps = pacts[i], .c = c, .j = &j, .ev = ev, .agent = ev->agent_id, .seq = seq};

            if ((st = state_get(b, ev->agent_id, pacts[i], c, &s)) != PK_OK)
                return st;
            if (seq <= s->h.last_seq)
                continue; /* already judged (a replayed event) */
            if (c->kind == PK_CLAUSE_FRESHNESS)
                deadline = pk_freshness_deadline(c, s);
            pk_clause_judge(c, s, ev, seq, (uint32_t)w->ev->cfg->report_every, &j);
            sp.s = s;
            if (c->kind == PK_CLAUSE_FRESHNESS && j.relevant &&
                (st = move_deadline(w->ev, b->txn, b->pw->partition, ev->agent_id, p->id, c->id,
                                    deadline, pk_freshness_deadline(c, s))) != PK_OK)
                return st;
            /* Burn-rate triggers report on their own; the verdict sequence
             * comes from the event's place in its partition: increasing per
             * agent, the same on every instance and on every retry. */
            for (int t = 0; t < j.n_burn; t++) {
                sp.burn = &j.burn[t];
                sp.vseq = (seq << PK_VSEQ_SHIFT) | ordinal++;
                if ((st = publish_verdict(b, &sp)) != PK_OK)
                    return st;
            }
            sp.burn = NULL;
            if (!j.relevant || !j.verdict_due)
                continue;
            sp.vseq = (seq << PK_VSEQ_SHIFT) | ordinal++;
            if ((st = publish_verdict(b, &sp)) != PK_OK)
                return st;
            pk_clause_state_reported(s, j.outcome);
        }
    }
    return PK_OK;
}

static pk_status batch_begin(batch *b, pk_pworker *pw)
{
    eval_worker *w = pw->ctx;

    memset(b, 0, sizeof(*b));
    b->pw = pw;
    b->w = w;
    if (!w->states && !(w->states = calloc(STATE_SLOTS, sizeof(*w->states))))
        return PK_ERR(PK_ENOMEM, "cannot allocate the state cache");
    b->states = w->states;
    return pk_txn_begin(w->ev->store, true, &b->txn);
}

/* Publish, then commit; on any failure forget the cached states and abort. */
static pk_status batch_end(batch *b, pk_status st)
{
    if (st == PK_OK)
        st = flush_states(b, true);
    else
        flush_states(b, false);
    if (st == PK_OK)
        st = pk_bus_publish_wait(b->pw->bus, 5000);
    if (st == PK_OK) {
        st = pk_txn_commit(b->txn);
        b->txn = NULL;
    }
    pk_txn_abort(b->txn);
    b->txn = NULL;
    return st;
}

pk_status evaluator_process(pk_pworker *pw, natsMsgList *list)
{
    eval_worker *w = pw->ctx;
    evaluator *e = w->ev;
    batch b;
    char applied_key[32];
    uint64_t applied = 0, max_reg = 0;
    pk_event_msg **events = calloc((size_t)list->Count, sizeof(*events));
    uint64_t *seqv = calloc((size_t)list->Count, sizeof(*seqv));
    pk_status st = PK_OK;

    if (!events || !seqv) {
        st = PK_ERR(PK_ENOMEM, "cannot allocate batch");
        goto out;
    }
    /* Decode first: the registry copy must reach every event's registry
     * position before a write transaction is opened. */
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        pk_msg_meta(m, &seqv[i], NULL, NULL);
        events[i] = pactum__v1__event__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                              (const uint8_t *)natsMsg_GetData(m));
        if (events[i] && events[i]->registry_seq > max_reg)
            max_reg = events[i]->registry_seq;
    }
    /* Judging an event by an older pact than the one in force would be
     * wrong and final: if the copy cannot catch up, do not judge yet. */
    if (max_reg > pk_registry_seq(e->reg) && (st = pk_registry_sync(e->reg, max_reg)) != PK_OK)
        goto out;
    if ((st = batch_begin(&b, pw)) != PK_OK)
        goto out;
    snprintf(applied_key, sizeof(applied_key), "events_p%u", pw->partition);
    st = pk_get_u64(b.txn, e->meta, applied_key, &applied);
    if (st == PK_ENOTFOUND)
        st = PK_OK;
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        pk_metric_add(&e->m[EM_EVENTS], 1);
        if (seqv[i] && seqv[i] <= applied) {
            pk_metric_add(&e->m[EM_SKIPPED], 1);
            continue;
        }
        if (!events[i] || pk_id_check("agent id", events[i]->agent_id) != PK_OK) {
            pk_rejection r = {.reason = PACTUM__V1__REASON__REASON_MALFORMED,
                              .message = "event in PACTUM_EVENTS does not decode",
                              .subject = natsMsg_GetSubject(list->Msgs[i]),
                              .source_seq = seqv[i],
                              .data = (const uint8_t *)natsMsg_GetData(list->Msgs[i]),
                              .len = (size_t)natsMsg_GetDataLength(list->Msgs[i])};
            char id[48];
            snprintf(id, sizeof(id), "evaluator:%llu", (unsigned long long)seqv[i]);
            pk_metric_add(&e->m[EM_MALFORMED], 1);
            st = pk_reject_publish(pw->bus, "evaluator", &r, id, false);
        } else {
            st = judge_event(&b, events[i], seqv[i]);
        }
        if (seqv[i] > applied)
            applied = seqv[i];
    }
    if (st == PK_OK)
        st = pk_put_u64(b.txn, e->meta, applied_key, applied);
    if ((st = batch_end(&b, st)) != PK_OK)
        goto out;
    for (int i = 0; i < list->Count; i++)
        natsMsg_Ack(list->Msgs[i], NULL);
out:
    if (st != PK_OK)
        pk_metric_add(&e->m[EM_BATCH_RETRIES], 1);
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
                      const char **pact, const char **clause)
{
    char *a, *p, *c;

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
    *agent = a;
    *pact = p;
    *clause = c;
    return true;
}

pk_status evaluator_tick(pk_pworker *pw, int64_t now_ms)
{
    eval_worker *w = pw->ctx;
    evaluator *e = w->ev;
    batch b;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t from[12], tick_val[12];
    char applied_key[32], ticks_key[32];
    uint64_t applied = 0, tick_at = 0;
    uint32_t ordinal = PK_TICK_ORDINAL;
    int rc, handled = 0;
    pk_status st;

    if ((st = batch_begin(&b, pw)) != PK_OK)
        return st;
    snprintf(applied_key, sizeof(applied_key), "events_p%u", pw->partition);
    snprintf(ticks_key, sizeof(ticks_key), "ticks_p%u", pw->partition);
    if ((st = pk_get_u64(b.txn, e->meta, applied_key, &applied)) == PK_ENOTFOUND)
        st = PK_OK;
    if (st == PK_OK && pk_get(b.txn, e->meta, ticks_key, strlen(ticks_key), &v) == PK_OK &&
        v.mv_size == 12) {
        tick_at = pk_be64_get(v.mv_data);
        if (tick_at == applied)
            ordinal = pk_be32_get((const uint8_t *)v.mv_data + 8);
    }
    pk_be32_put(from, pw->partition);
    pk_be64_put(from + 4, 0);
    pk_bus_publish_reset(pw->bus);
    while (st == PK_OK && handled < TICK_MAX) {
        char ids[KEY_MAX + 1];
        const char *agent, *pact_id, *clause_id;
        int64_t deadline;
        pact_slot *pacts[MAX_PACTS];
        const pact_slot *ps = NULL;
        const pk_clause *c = NULL;
        pk_clause_state *s;
        uint8_t dkey[12 + KEY_MAX];
        size_t dlen;

        if ((rc = mdb_cursor_open(b.txn, e->deadlines, &cur)) != 0) {
            st = pk_store_err(rc, "deadline cursor");
            break;
        }
        k.mv_size = sizeof(from);
        k.mv_data = from;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size <= 12 || pk_be32_get(k.mv_data) != pw->partition ||
            (int64_t)pk_be64_get((const uint8_t *)k.mv_data + 4) > now_ms) {
            mdb_cursor_close(cur);
            break; /* nothing due */
        }
        dlen = k.mv_size;
        memcpy(dkey, k.mv_data, dlen);
        mdb_cursor_close(cur);
        cur = NULL;
        handled++;
        pk_metric_add(&e->m[EM_STALE_CHECKS], 1);
        if ((st = pk_del(b.txn, e->deadlines, dkey, dlen)) != PK_OK)
            break;
        if (!split_key(dkey + 12, dlen - 12, ids, &agent, &pact_id, &clause_id))
            continue;
        /* the clause in force now, if it still is */
        for (size_t i = 0, n = pacts_in_force(w, b.txn, agent, pk_registry_seq(e->reg), pacts);
             i < n; i++) {
            if (strcmp(pacts[i]->pact->id, pact_id) == 0) {
                ps = pacts[i];
                c = pk_pact_clause(ps->pact, clause_id);
            }
        }
        if (!c || c->kind != PK_CLAUSE_FRESHNESS)
            continue;
        if ((st = state_get(&b, agent, ps, c, &s)) != PK_OK)
            break;
        deadline = pk_freshness_deadline(c, s);
        if (deadline > now_ms) {
            /* evidence came in, or the pact changed: keep the right deadline */
            st = move_deadline(e, b.txn, pw->partition, agent, pact_id, clause_id, 0, deadline);
            continue;
        }
        if (s->h.last_outcome != PACTUM__V1__OUTCOME__OUTCOME_STALE) {
            /* Going stale breaks the promise of fresh evidence: it is a violation,
             * and the clause's consequence applies. */
            pk_judgement j = {
                .relevant = true, .outcome = PACTUM__V1__OUTCOME__OUTCOME_STALE, .violation = true};
            verdict_spec sp = {.ps = ps, .c = c, .j = &j, .agent = agent, .s = s};
            j.observed = (double)(now_ms - (s->h.last_seen_ms ? s->h.last_seen_ms : s->h.since_ms));
            j.threshold = (double)c->max_gap_ms;
            if (ordinal >= (1u << PK_VSEQ_SHIFT))
                break; /* a million stale reports since the last event: next time */
            sp.vseq = (applied << PK_VSEQ_SHIFT) | ordinal++;
            if ((st = publish_verdict(&b, &sp)) != PK_OK)
                break;
            pk_clause_state_reported(s, PACTUM__V1__OUTCOME__OUTCOME_STALE);
        }
    }
    if (st == PK_OK && handled) {
        pk_be64_put(tick_val, applied);
        pk_be32_put(tick_val + 8, ordinal);
        st = pk_put(b.txn, e->meta, ticks_key, strlen(ticks_key), tick_val, 12, 0);
    }
    return batch_end(&b, st);
}
