#include "evaluator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clause.h"
#include "pk/clock.h"
#include "pk/log.h"

#define STATE_SLOTS 1024  /* clause states cached per batch (power of two) */
#define MAX_PACTS PK_PACTS_PER_AGENT_MAX
#define KEY_MAX (3 * (PK_ID_MAX + 1))

void evaluator_metrics_init(evaluator *e)
{
    pk_metric *m = e->m;
    static const char *vh = "Verdicts published, by outcome";

    m[EM_EVENTS] = (pk_metric){"pactum_evaluator_events_total", NULL,
                               "Events taken from PACTUM_EVENTS", PK_COUNTER, 0};
    m[EM_SKIPPED] = (pk_metric){"pactum_evaluator_redelivered_total", NULL,
                                "Redelivered events skipped because they were already applied",
                                PK_COUNTER, 0};
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
                                      "Batch attempts that failed and were retried",
                                      PK_COUNTER, 0};
    m[EM_LMDB_USED] = (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes",
                                  PK_GAUGE, 0};
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
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &pact, &lint) !=
        PK_OK) {
        PK_WARN("pact %s v%u in the registry does not parse: %s", id, version,
                lint.n ? lint.msgs[0] : pk_error_msg());
        pk_lint_free(&lint);
        pactum__v1__pact_record__free_unpacked(rec, NULL);
        return NULL;
    }
    pk_pact_free(victim->pact);
    snprintf(victim->id, sizeof(victim->id), "%s", id);
    victim->version = version;
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

void evaluator_worker_free(eval_worker *w)
{
    for (size_t i = 0; i < PACT_CACHE_SLOTS; i++) {
        pk_pact_free(w->cache[i].pact);
        w->cache[i].pact = NULL;
    }
    free(w->states);
    w->states = NULL;
}

/* --- per-batch caches ----------------------------------------------------------- */

typedef struct state_entry {
    uint8_t key[KEY_MAX];    /* agent \0 pact \0 clause */
    size_t klen;             /* 0 when free */
    pk_clause_state st;      /* the state */
} state_entry;

typedef struct batch {
    pk_pworker *pw;          /* the partition worker */
    eval_worker *w;          /* its evaluator data */
    MDB_txn *txn;
    state_entry *states;     /* STATE_SLOTS */
    size_t n_states;
} batch;

static pk_status flush_states(batch *b)
{
    for (size_t i = 0; i < STATE_SLOTS; i++) {
        state_entry *e = &b->states[i];
        if (!e->klen)
            continue;
        pk_status st = pk_put(b->txn, b->w->ev->states, e->key, e->klen, &e->st, sizeof(e->st), 0);
        if (st != PK_OK)
            return st;
        e->klen = 0;
    }
    b->n_states = 0;
    return PK_OK;
}

/* The state of (agent, pact, clause), from the batch cache, LMDB, or fresh. */
static pk_status state_get(batch *b, const char *agent, const char *pact, const pk_clause *c,
                           pk_clause_state **out)
{
    uint8_t key[KEY_MAX];
    size_t a = strlen(agent), p = strlen(pact), k = strlen(c->id), klen = a + p + k + 2;
    uint32_t h;
    MDB_val v;
    pk_status st;

    memcpy(key, agent, a);
    key[a] = 0;
    memcpy(key + a + 1, pact, p);
    key[a + 1 + p] = 0;
    memcpy(key + a + p + 2, c->id, k);
    h = 2166136261u;
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
            if (e->klen == 0) {
                if (b->n_states >= STATE_SLOTS * 3 / 4)
                    break; /* too full: write back and start over */
                memcpy(e->key, key, klen);
                e->klen = klen;
                b->n_states++;
                st = pk_get(b->txn, b->w->ev->states, key, klen, &v);
                if (st != PK_OK && st != PK_ENOTFOUND)
                    return st;
                /* LMDB values are not aligned: copy before looking inside. */
                if (st == PK_OK && v.mv_size == sizeof(pk_clause_state))
                    memcpy(&e->st, v.mv_data, sizeof(e->st));
                if (st != PK_OK || v.mv_size != sizeof(pk_clause_state) ||
                    e->st.magic != PK_CLAUSE_STATE_MAGIC)
                    pk_clause_state_init(&e->st, c);
                if (e->st.fingerprint != pk_clause_fingerprint(c))
                    pk_clause_state_init(&e->st, c); /* the clause changed shape: start over */
                *out = &e->st;
                return PK_OK;
            }
        }
        if ((st = flush_states(b)) != PK_OK)
            return st;
    }
}

/* --- verdicts ----------------------------------------------------------------- */

static void describe(char *buf, size_t len, const pk_clause *c, const pk_judgement *j)
{
    char win[32];

    if (c->window_ms)
        pk_duration_format(c->window_ms, win, sizeof(win));
    else
        snprintf(win, sizeof(win), "last %u events", c->window_events);
    if (c->kind == PK_CLAUSE_OBJECTIVE) {
        if (j->outcome == PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT)
            snprintf(buf, len, "%s(%s) over %s: %llu of %u samples needed", pk_aggregate_name(c->aggregate),
                     c->metric ? c->metric : "events", win, (unsigned long long)j->samples,
                     c->min_samples);
        else
            snprintf(buf, len, "%s(%s) over %s = %g, promised %s %g (%llu samples)",
                     pk_aggregate_name(c->aggregate), c->metric ? c->metric : "events", win,
                     j->observed, pk_op_name(c->op), c->threshold, (unsigned long long)j->samples);
    } else {
        snprintf(buf, len, "%s: %g occurrence%s in %s, allowed %u", c->id, j->observed,
                 j->observed == 1 ? "" : "s", win, c->max_count);
    }
}

static pk_status publish_verdict(batch *b, const pact_slot *ps, const pk_clause *c,
                                 pk_clause_state *s, const pk_judgement *j,
                                 const pk_event_msg *ev, uint64_t seq, uint64_t vseq)
{
    evaluator *e = b->w->ev;
    Pactum__V1__Verdict v = PACTUM__V1__VERDICT__INIT;
    Pactum__V1__SourceTally tallies[5], *tp[5];
    Pactum__V1__EvidenceRef ref = PACTUM__V1__EVIDENCE_REF__INIT, *refs[1] = {&ref};
    char detail[320], subject[160], msg_id[PK_ID_MAX + 24];
    uint8_t *buf = NULL;
    size_t len = 0, nt = 0;
    pk_status st;

    describe(detail, sizeof(detail), c, j);
    v.agent_id = ev->agent_id;
    v.vseq = vseq;
    v.pact_id = ps->pact->id;
    v.pact_version = ps->version;
    v.pact_hash.data = (uint8_t *)ps->hash;
    v.pact_hash.len = sizeof(ps->hash);
    v.clause_id = c->id;
    v.clause_kind = (char *)pk_clause_kind_name(c->kind);
    v.severity = c->severity;
    v.outcome = j->outcome;
    v.previous = (Pactum__V1__Outcome)s->last_outcome;
    v.observed = j->observed;
    v.threshold = j->threshold;
    v.op = (char *)(c->kind == PK_CLAUSE_OBJECTIVE ? pk_op_name(c->op) : "<=");
    v.aggregate = (char *)(c->kind == PK_CLAUSE_OBJECTIVE ? pk_aggregate_name(c->aggregate)
                                                          : "count");
    v.metric = c->metric ? c->metric : "";
    v.window_ms = c->window_ms;
    v.window_events = c->window_events;
    v.samples = j->samples;
    for (int src = 1; src < 5; src++) {
        if (!s->pass[src] && !s->fail[src])
            continue;
        pactum__v1__source_tally__init(&tallies[nt]);
        tallies[nt].source = (Pactum__V1__Source)src;
        tallies[nt].pass = s->pass[src];
        tallies[nt].fail = s->fail[src];
        tallies[nt].weight_ppm = (uint32_t)(c->weight[src] * 1000000.0 + 0.5);
        tp[nt] = &tallies[nt];
        nt++;
    }
    v.n_tally = nt;
    v.tally = tp;
    ref.event_id = ev->event_id;
    ref.seq = seq;
    v.n_evidence = 1;
    v.evidence = refs;
    v.evaluated_ms = pk_now_ms();
    v.event_ts_ms = ev->ts_ms;
    v.ingest_ms = ev->accepted_ms;
    v.consequence = (char *)pk_consequence_name(c->consequence);
    v.detail = detail;
    v.violation = j->violation || (j->outcome == PACTUM__V1__OUTCOME__OUTCOME_FAIL &&
                                    s->last_outcome != PACTUM__V1__OUTCOME__OUTCOME_FAIL);
    if ((st = pk_pack(&v.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_VERDICTS, b->pw->partition, ev->agent_id);
    snprintf(msg_id, sizeof(msg_id), "%s:%llu", ev->agent_id, (unsigned long long)vseq);
    st = pk_bus_publish_async(b->pw->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK) {
        switch (j->outcome) {
        case PACTUM__V1__OUTCOME__OUTCOME_PASS: pk_metric_add(&e->m[EM_VERDICT_PASS], 1); break;
        case PACTUM__V1__OUTCOME__OUTCOME_FAIL: pk_metric_add(&e->m[EM_VERDICT_FAIL], 1); break;
        case PACTUM__V1__OUTCOME__OUTCOME_STALE: pk_metric_add(&e->m[EM_VERDICT_STALE], 1); break;
        default: pk_metric_add(&e->m[EM_VERDICT_INSUFFICIENT], 1); break;
        }
        pk_clause_state_reported(s, j->outcome);
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

            if ((st = state_get(b, ev->agent_id, p->id, c, &s)) != PK_OK)
                return st;
            if (seq <= s->last_seq)
                continue; /* already judged (a replayed event) */
            pk_clause_judge(c, s, ev, seq, (uint32_t)w->ev->cfg->report_every, &j);
            if (!j.relevant || !j.verdict_due)
                continue;
            /* The verdict sequence comes from the event's place in its
             * partition: increasing per agent, the same on every instance and
             * on every retry, so the scorer can drop repeats by number. */
            if ((st = publish_verdict(b, pacts[i], c, s, &j, ev, seq,
                                      (seq << PK_VSEQ_SHIFT) | ordinal++)) != PK_OK)
                return st;
        }
    }
    return PK_OK;
}

pk_status evaluator_process(pk_pworker *pw, natsMsgList *list)
{
    eval_worker *w = pw->ctx;
    evaluator *e = w->ev;
    batch b = {.pw = pw, .w = w};
    char applied_key[32];
    uint64_t applied = 0, max_reg = 0;
    pk_event_msg **events = calloc((size_t)list->Count, sizeof(*events));
    uint64_t *seqv = calloc((size_t)list->Count, sizeof(*seqv));
    pk_status st = PK_OK;

    if (!w->states)
        w->states = calloc(STATE_SLOTS, sizeof(*w->states));
    if (!events || !seqv || !w->states) {
        st = PK_ERR(PK_ENOMEM, "cannot allocate batch");
        goto retry;
    }
    b.states = w->states;
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
        goto retry;
    if ((st = pk_txn_begin(e->store, true, &b.txn)) != PK_OK)
        goto retry;
    snprintf(applied_key, sizeof(applied_key), "events_p%u", pw->partition);
    st = pk_get_u64(b.txn, e->meta, applied_key, &applied);
    if (st != PK_OK && st != PK_ENOTFOUND)
        goto retry;
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < list->Count; i++) {
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
            if ((st = pk_reject_publish(pw->bus, "evaluator", &r, id, false)) != PK_OK)
                goto retry;
        } else if ((st = judge_event(&b, events[i], seqv[i])) != PK_OK) {
            goto retry;
        }
        if (seqv[i] > applied)
            applied = seqv[i];
    }
    if ((st = flush_states(&b)) != PK_OK ||
        (st = pk_put_u64(b.txn, e->meta, applied_key, applied)) != PK_OK)
        goto retry;
    if ((st = pk_bus_publish_wait(pw->bus, 10000)) != PK_OK)
        goto retry;
    st = pk_txn_commit(b.txn);
    b.txn = NULL;
    if (st != PK_OK)
        goto retry;
    for (int i = 0; i < list->Count; i++)
        natsMsg_Ack(list->Msgs[i], NULL);
    goto out;
retry:
    pk_txn_abort(b.txn);
    if (w->states)
        memset(w->states, 0, STATE_SLOTS * sizeof(*w->states));
    pk_metric_add(&e->m[EM_BATCH_RETRIES], 1);
out:
    for (int i = 0; events && i < list->Count; i++) {
        if (events[i])
            pactum__v1__event__free_unpacked(events[i], NULL);
    }
    free(events);
    free(seqv);
    return st;
}
