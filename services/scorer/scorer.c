#include "scorer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"
#include "pk/tiers.h"

void scorer_metrics_init(scorer *s)
{
#define PK_METRIC(id, type, name, labels, help) s->m[id] = (pk_metric){name, labels, help, type, 0};
#include "metrics.def"
#undef PK_METRIC
}

/* --- workers ------------------------------------------------------------------------ */

/* Where a ruling reads an agent's past inputs: PACTUM_VERDICTS (a pk_history_fn). */
static pk_status history(void *ctx, const char *agent, uint64_t before_seq, pk_input_fn each,
                         void *each_ctx)
{
    score_worker *w = ctx;

    return pk_scoring_read_history(w->pw->bus, w->s->partitions, agent, before_seq, each, each_ctx);
}

/* --- the clock --------------------------------------------------------------------- */

static size_t wake_key(uint8_t *buf, uint32_t partition, int64_t ms, const char *agent)
{
    size_t n = strlen(agent);

    pk_be32_put(buf, partition);
    pk_be64_put(buf + 4, (uint64_t)(ms < 0 ? 0 : ms));
    memcpy(buf + 12, agent, n);
    return 12 + n;
}

/* Keep agent's place in the wake index: when the scorer should tick it (0: never). */
static pk_status on_store(void *ctx, MDB_txn *txn, pk_wset *ws, const pk_trust *t, int64_t wake)
{
    score_worker *w = ctx;
    scorer *s = w->s;
    uint8_t key[12 + PK_ID_MAX], val[8];
    MDB_val v;
    int64_t old = 0;
    pk_status st;

    if (pk_wset_get(ws, txn, s->wake_of, t->agent_id, strlen(t->agent_id), &v) == PK_OK &&
        v.mv_size == 8)
        old = (int64_t)pk_be64_get(v.mv_data);
    if (old == wake)
        return PK_OK;
    if (old && (st = pk_wset_del(ws, s->wake, key,
                                 wake_key(key, w->pw->partition, old, t->agent_id))) != PK_OK)
        return st;
    if (!wake)
        return pk_wset_del(ws, s->wake_of, t->agent_id, strlen(t->agent_id));
    pk_be64_put(val, (uint64_t)wake);
    if ((st = pk_wset_put(ws, s->wake, key, wake_key(key, w->pw->partition, wake, t->agent_id), "",
                          0)) != PK_OK)
        return st;
    return pk_wset_put(ws, s->wake_of, t->agent_id, strlen(t->agent_id), val, sizeof(val));
}

#define TICKS_MAX 512 /* agents ticked per look */

pk_status scorer_idle(pk_pworker *pw, bool caught_up)
{
    score_worker *w = pw->ctx;
    scorer *s = w->s;
    static _Thread_local char agents[TICKS_MAX][PK_ID_MAX + 1];
    int64_t mono = pk_mono_ms(), now = pk_now_ms();
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t from[12];
    int n = 0, rc;
    pk_status st = PK_OK;

    /* time is judged only once the inputs that may already be waiting are applied */
    if (!caught_up || mono < w->next_tick)
        return PK_OK;
    w->next_tick = mono + s->cfg->tick_every_ms;
    if ((st = pk_txn_begin(s->store, false, &txn)) != PK_OK)
        return st;
    pk_be32_put(from, pw->partition);
    pk_be64_put(from + 4, 0);
    k.mv_size = sizeof(from);
    k.mv_data = from;
    if ((rc = mdb_cursor_open(txn, s->wake, &cur)) != 0) {
        pk_txn_abort(txn);
        return pk_store_err(rc, "wake cursor");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < TICKS_MAX;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= 12 || k.mv_size > 12 + PK_ID_MAX ||
            pk_be32_get(k.mv_data) != pw->partition ||
            (int64_t)pk_be64_get((const uint8_t *)k.mv_data + 4) > now)
            break;
        memcpy(agents[n], (const uint8_t *)k.mv_data + 12, k.mv_size - 12);
        agents[n++][k.mv_size - 12] = '\0';
    }
    mdb_cursor_close(cur);
    pk_txn_abort(txn);
    if (n == 0)
        return PK_OK;
    /* the ticks are inputs like the verdicts: they come back through the agent's own
     * order, and a replay meets them at the same place */
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < n && st == PK_OK; i++) {
        Pactum__V1__Tick tick = PACTUM__V1__TICK__INIT;
        char subject[160], msg_id[PK_ID_MAX + 32];
        uint8_t *buf = NULL;
        size_t len = 0;
        tick.partition = pw->partition;
        tick.at_ms = now;
        if ((st = pk_pack(&tick.base, &buf, &len)) != PK_OK)
            break;
        snprintf(subject, sizeof(subject), PK_SUBJ_TICK, pw->partition, agents[i]);
        snprintf(msg_id, sizeof(msg_id), "tick:%s:%lld", agents[i], (long long)now);
        st = pk_bus_publish_async(pw->bus, subject, buf, len, msg_id);
        free(buf);
    }
    if (st == PK_OK)
        st = pk_bus_publish_wait(pw->bus, 10000);
    if (st != PK_OK)
        return st;
    pk_metric_add(&s->m[SM_TICKS], n);
    /* out of the index until the tick is applied (which puts the agent back in) */
    pk_wset_clear(w->ws);
    if ((st = pk_txn_begin(s->store, false, &txn)) != PK_OK)
        return st;
    for (int i = 0; i < n && st == PK_OK; i++) {
        uint8_t key[12 + PK_ID_MAX];
        if (pk_wset_get(w->ws, txn, s->wake_of, agents[i], strlen(agents[i]), &v) == PK_OK &&
            v.mv_size == 8) {
            int64_t at = (int64_t)pk_be64_get(v.mv_data);
            st = pk_wset_del(w->ws, s->wake, key, wake_key(key, pw->partition, at, agents[i]));
            if (st == PK_OK)
                st = pk_wset_del(w->ws, s->wake_of, agents[i], strlen(agents[i]));
        }
    }
    pk_txn_abort(txn);
    if (st == PK_OK)
        st = pk_wset_commit(w->ws, s->store);
    pk_wset_clear(w->ws);
    return st;
}

pk_status scorer_worker_init(pk_pworker *pw)
{
    score_worker *w = pw->ctx;
    scorer *s = pw->group->owner;
    pk_status st;

    w->s = s;
    w->pw = pw;
    pk_scoring_init(&w->scoring, s->reg, s->pacts, s->agents, history, w);
    w->scoring.on_store = on_store;
    w->scoring.on_store_ctx = w;
    st = pk_wset_create(&w->ws);
    if (st == PK_OK) /* a batch about many agents keeps --states of them decoded */
        pk_scoring_bound(&w->scoring, w->ws, (size_t)s->cfg->states);
    return st;
}

void scorer_worker_free(pk_pworker *pw)
{
    score_worker *w = pw->ctx;

    pk_scoring_free(&w->scoring);
    pk_wset_destroy(w->ws);
}

/* --- publishing ------------------------------------------------------------------ */

static void severity_counts(const uint64_t v[PK_SEVERITIES], Pactum__V1__SeverityCount *sc,
                            Pactum__V1__SeverityCount **scp, size_t *n)
{
    *n = 0;
    for (int sev = 1; sev < PK_SEVERITIES; sev++) {
        if (!v[sev])
            continue;
        pactum__v1__severity_count__init(&sc[*n]);
        sc[*n].severity = (Pactum__V1__Severity)sev;
        sc[*n].count = v[sev];
        scp[*n] = &sc[*n];
        (*n)++;
    }
}

/* Storage for the parts of a trust change (borrowed by the message). */
typedef struct change_parts {
    Pactum__V1__TrustState state;
    Pactum__V1__Factor factor, *factors[1];
    char fname[2 * PK_ID_MAX + 16], fdetail[480];
    Pactum__V1__RulingEffect re;
    Pactum__V1__SeverityCount scb[PK_SEVERITIES], sca[PK_SEVERITIES], *scbp[PK_SEVERITIES],
        *scap[PK_SEVERITIES];
    Pactum__V1__TierChange tc;
    Pactum__V1__Criterion crit[PK_CRITERIA_MAX], *critp[PK_CRITERIA_MAX];
    Pactum__V1__Settlement sett[PK_ENGAGEMENTS_MAX], *settp[PK_ENGAGEMENTS_MAX];
    pk_settlement_storage sst[PK_ENGAGEMENTS_MAX];
} change_parts;

/* The one factor that explains the change. */
static void add_factor(Pactum__V1__TrustChange *ch, change_parts *p, const pk_applied *a)
{
    const Pactum__V1__Verdict *v = a->verdict;

    pactum__v1__factor__init(&p->factor);
    if (v) {
        snprintf(p->fname, sizeof(p->fname), "clause %s/%s", v->pact_id, v->clause_id);
        snprintf(p->fdetail, sizeof(p->fdetail),
                 "%s verdict #%llu: %s; older evidence kept %lld ppm of its weight",
                 pk_outcome_name(v->outcome), (unsigned long long)v->vseq, v->detail,
                 (long long)a->fx.decay_ppm);
    } else {
        snprintf(p->fname, sizeof(p->fname), "governance");
        snprintf(p->fdetail, sizeof(p->fdetail), "%s", a->fx.cause);
    }
    p->factor.name = p->fname;
    p->factor.delta_ppm = a->fx.score_delta;
    p->factor.detail = p->fdetail;
    p->factors[0] = &p->factor;
    ch->n_factors = 1;
    ch->factors = p->factors;
}

/* What an overturning ruling changed, before and after. */
static void add_ruling_effect(Pactum__V1__TrustChange *ch, change_parts *p, const pk_applied *a)
{
    const pk_trust *t = a->t;

    pactum__v1__ruling_effect__init(&p->re);
    p->re.dispute_id = a->gov->ruling->dispute_id;
    p->re.verdicts_removed = (uint64_t *)a->removed;
    p->re.n_verdicts_removed = (size_t)a->n_removed;
    p->re.score_before_ppm = a->score_before;
    p->re.score_after_ppm = t->score;
    p->re.lower_before_ppm = a->lower_before;
    p->re.lower_after_ppm = t->lower;
    p->re.tier_before = (Pactum__V1__Tier)a->tier_before;
    p->re.tier_after = (Pactum__V1__Tier)t->tier;
    severity_counts(a->violations_before, p->scb, p->scbp, &p->re.n_violations_before);
    p->re.violations_before = p->scbp;
    severity_counts(t->violations, p->sca, p->scap, &p->re.n_violations_after);
    p->re.violations_after = p->scap;
    ch->ruling_effect = &p->re;
}

/* The tier change, with its criteria and containment time, kept for history in ws. */
static pk_status add_tier_change(score_worker *w, Pactum__V1__TrustChange *ch, change_parts *p,
                                 const pk_applied *a, int64_t now)
{
    scorer *s = w->s;
    const pk_trust_effect *fx = &a->fx;
    const pk_trust *t = a->t;
    Pactum__V1__TierChange *tc = &p->tc;
    uint8_t key[PK_ID_MAX + 9];

    pactum__v1__tier_change__init(tc);
    tc->from = (Pactum__V1__Tier)fx->from_tier;
    tc->to = (Pactum__V1__Tier)fx->to_tier;
    tc->cause = (char *)fx->cause;
    tc->rule = (char *)fx->rule;
    tc->at_ms = t->clock_ms;
    tc->decided_ms = now;
    tc->verdict = a->verdict;
    tc->governance = a->gov;
    for (int i = 0; i < fx->n_crit; i++) {
        pactum__v1__criterion__init(&p->crit[i]);
        p->crit[i].name = (char *)fx->crit[i].name;
        p->crit[i].required = (char *)fx->crit[i].required;
        p->crit[i].actual = (char *)fx->crit[i].actual;
        p->crit[i].met = fx->crit[i].met;
        p->critp[i] = &p->crit[i];
    }
    tc->n_criteria = (size_t)fx->n_crit;
    tc->criteria = p->critp;
    if (fx->to_tier >= PACTUM__V1__TIER__TIER_CONTAINED &&
        fx->from_tier < PACTUM__V1__TIER__TIER_CONTAINED && a->verdict &&
        a->verdict->ingest_ms > 0) {
        tc->containment_ms = now - a->verdict->ingest_ms;
        pk_metric_add(&s->m[SM_CONTAINMENTS], 1);
        pk_metric_set(&s->m[SM_CONTAINMENT_MS], tc->containment_ms);
    }
    if (strcmp(fx->rule, PK_RULE_REENTRY) == 0)
        pk_metric_add(&s->m[SM_REENTRIES], 1);
    ch->tier_change = tc;
    pk_metric_add(&s->m[SM_TIER_CHANGES], 1);
    PK_INFO("%s: %s -> %s (%s: %s)", t->agent_id, pk_tier_name(tc->from), pk_tier_name(tc->to),
            fx->rule, fx->cause);
    return pk_wset_put_msg(w->ws, s->tiers, key, pk_key_id_u64(key, t->agent_id, t->change_seq),
                           &tc->base);
}

/*
 * Publish the change the input at PACTUM_VERDICTS seq made (numbered a->t->change_seq), and
 * keep tier changes. Its message id names the input alone, so whoever applies that input again
 * (a restart, another instance taking the partition over) publishes a duplicate the stream
 * drops, never a new change under an id already used.
 */
static pk_status publish_change(score_worker *w, MDB_txn *txn, const pk_applied *a, uint64_t seq)
{
    static _Thread_local pk_trust_msg_storage storage;
    static _Thread_local change_parts parts;
    const pk_trust *t = a->t;
    Pactum__V1__TrustChange ch = PACTUM__V1__TRUST_CHANGE__INIT;
    char subject[128], msg_id[PK_ID_MAX + 24];
    uint8_t *buf = NULL;
    size_t len = 0;
    int64_t now = pk_now_ms();
    pk_status st;

    pk_trust_to_msg(t, pk_scoring_governance(&w->scoring, txn, t), &parts.state, &storage);
    ch.agent_id = (char *)t->agent_id;
    ch.change_seq = t->change_seq;
    ch.state = &parts.state;
    ch.cause = a->verdict;
    ch.governance = a->gov;
    ch.published_ms = now;
    add_factor(&ch, &parts, a);
    if (a->ruling_recomputed) {
        add_ruling_effect(&ch, &parts, a);
        pk_metric_add(&w->s->m[SM_RULINGS], 1);
    }
    if (a->fx.from_tier != a->fx.to_tier && (st = add_tier_change(w, &ch, &parts, a, now)) != PK_OK)
        return st;
    for (int i = 0; i < a->eng.n; i++) {
        pk_settlement_to_msg(t->agent_id, &a->eng.st[i], &parts.sett[i], &parts.sst[i]);
        parts.settp[i] = &parts.sett[i];
        PK_INFO("%s: engagement %s statement %u: %s (%s), release %lld, refund %lld %s",
                t->agent_id, a->eng.st[i].eng.id, a->eng.st[i].head.number,
                pk_settlement_outcome_name(a->eng.st[i].head.outcome), a->eng.st[i].head.trigger,
                (long long)a->eng.st[i].head.release, (long long)a->eng.st[i].head.refund,
                a->eng.st[i].eng.currency);
    }
    ch.n_settlements = (size_t)a->eng.n;
    ch.settlements = parts.settp;
    if ((st = pk_pack(&ch.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_TRUST, t->agent_id);
    snprintf(msg_id, sizeof(msg_id), "verdicts:%llu", (unsigned long long)seq);
    /* an input a previous holder of the partition applied: it published the change */
    st = seq <= w->pw->quiet_until ? PK_OK
                                   : pk_bus_publish_async(w->pw->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK)
        pk_metric_add(&w->s->m[SM_CHANGES], 1);
    return st;
}

static pk_status dead_letter(pk_pworker *w, natsMsg *msg, uint64_t seq, const char *why)
{
    scorer *s = ((score_worker *)w->ctx)->s;
    char id[48];
    pk_rejection r = {.reason = PACTUM__V1__REASON__REASON_MALFORMED,
                      .message = why,
                      .subject = natsMsg_GetSubject(msg),
                      .source_seq = seq,
                      .data = (const uint8_t *)natsMsg_GetData(msg),
                      .len = (size_t)natsMsg_GetDataLength(msg)};

    snprintf(id, sizeof(id), "scorer:%llu", (unsigned long long)seq);
    pk_metric_add(&s->m[SM_MALFORMED], 1);
    if (seq <= w->quiet_until)
        return PK_OK; /* a previous holder of the partition dead-lettered it */
    return pk_reject_publish(w->bus, "scorer", &r, id, false);
}

/* Apply one input of the batch; bad input is dead-lettered, other failures returned. */
static pk_status apply_one(score_worker *w, MDB_txn *txn, natsMsg *msg, uint64_t seq, int64_t ts)
{
    scorer *s = w->s;
    const char *subject = natsMsg_GetSubject(msg);
    char agent[PK_ID_MAX + 1], kind = 0;
    pk_applied a;
    pk_status st;

    if (pk_scoring_subject_agent(subject, agent, sizeof(agent), &kind) && kind != 't')
        pk_metric_add(&s->m[kind == 'g' ? SM_GOVERNANCE : SM_VERDICTS], 1);
    st = pk_scoring_step(&w->scoring, txn, subject, (const uint8_t *)natsMsg_GetData(msg),
                         (size_t)natsMsg_GetDataLength(msg), seq, ts, &a);
    if (st == PK_EINVAL || st == PK_EDECODE)
        return dead_letter(w->pw, msg, seq, pk_error_msg());
    if (st != PK_OK)
        return st;
    if (a.changed)
        st = publish_change(w, txn, &a, seq);
    else if (!a.gov && !a.ticked)
        pk_metric_add(&s->m[SM_DUPLICATES], 1);
    pk_applied_free(&a);
    return st;
}

/*
 * Compute the batch under a read transaction, publish its changes, and once
 * the bus has them, write the states and the position in one short write
 * transaction; then acknowledge. A failure anywhere forgets the batch's work:
 * it is given again, from the states as they were.
 */
pk_status scorer_process(pk_pworker *pw, natsMsgList *list)
{
    score_worker *w = pw->ctx;
    scorer *s = w->s;
    MDB_txn *txn = NULL;
    char applied_key[32];
    uint64_t applied = 0;
    unsigned long long spilled = w->scoring.spilled;
    pk_status st;

    /* verdicts name pact versions whose governance sections we may need */
    if ((st = pk_registry_sync_if_dirty(s->reg)) != PK_OK)
        goto retry;
    if ((st = pk_txn_begin(s->store, false, &txn)) != PK_OK)
        goto retry;
    snprintf(applied_key, sizeof(applied_key), "inputs_p%u", pw->partition);
    if ((st = pk_get_u64(txn, s->meta, applied_key, &applied)) == PK_ENOTFOUND)
        st = PK_OK;
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        uint64_t seq = 0;
        int64_t ts = 0;

        if (pk_msg_meta(list->Msgs[i], &seq, NULL, &ts) == PK_OK && seq && seq <= applied) {
            pk_metric_add(&s->m[SM_DUPLICATES], 1);
            continue;
        }
        st = apply_one(w, txn, list->Msgs[i], seq, ts);
        if (seq > applied)
            applied = seq;
    }
    if (st == PK_OK)
        st = pk_scoring_store(&w->scoring, txn, w->ws);
    pk_metric_add(&s->m[SM_SPILLED], (long long)(w->scoring.spilled - spilled));
    if (st == PK_OK)
        st = pk_wset_put_u64(w->ws, s->meta, applied_key, applied);
    pk_txn_abort(txn);
    txn = NULL;
    if (st == PK_OK)
        st = pk_bus_publish_wait(pw->bus, 10000);
    if (st == PK_OK)
        st = pk_pworker_still_held(pw);
    if (st == PK_OK)
        st = pk_wset_commit(w->ws, s->store);
    if (st != PK_OK)
        goto retry;
    pk_consumer_ack(&pw->consumer, list);
    return PK_OK;
retry:
    pk_txn_abort(txn);
    pk_scoring_reset(&w->scoring);
    pk_wset_clear(w->ws);
    /* a pact the copy did not have yet, perhaps: bring it up to date for the retry */
    if (pk_registry_sync(s->reg, 0) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    return st;
}

/* --- the digest ---------------------------------------------------------------------- */

/*
 * The digest of each partition this instance owns, with the last input it applied there,
 * so that `pactum replay --compare` can gather every partition from whichever instance
 * owns it: {"instance", "digest" (of the owned partitions), "agents", "applied": {"<p>":
 * seq}, "partitions": {"<p>": {"digest", "agents"}}}.
 */
static json_t *digest_json(scorer *s)
{
    static _Thread_local pk_digests d;
    uint8_t all[32];
    char hex[65];
    uint64_t n = 0, mask = 0;
    json_t *applied, *parts;
    MDB_txn *txn = NULL;

    if (pk_scoring_digests(s->store, s->agents, s->partitions, &d) != PK_OK)
        return json_pack("{s:s}", "error", pk_error_msg());
    applied = json_object();
    parts = json_object();
    if (pk_txn_begin(s->store, false, &txn) == PK_OK) {
        uint64_t serving = atomic_load(&s->workers.serving);
        for (size_t i = 0; i < s->workers.n; i++) {
            uint32_t part = s->workers.w[i].partition;
            if (!(serving & (1ull << part)))
                continue;
            char key[32], p[16];
            uint64_t seq = 0;
            snprintf(key, sizeof(key), "inputs_p%u", part);
            snprintf(p, sizeof(p), "%u", part);
            if (pk_get_u64(txn, s->meta, key, &seq) != PK_OK)
                seq = 0;
            json_object_set_new(applied, p, json_integer((json_int_t)seq));
            pk_hex_encode(d.part[part], 32, hex);
            json_object_set_new(
                parts, p,
                json_pack("{s:s, s:I}", "digest", hex, "agents", (json_int_t)d.agents[part]));
            mask |= 1ull << part;
        }
        pk_txn_abort(txn);
    }
    pk_scoring_digest_of(&d, mask, all, &n);
    pk_hex_encode(all, 32, hex);
    return json_pack("{s:s, s:s, s:I, s:o, s:o}", "instance", s->svc.instance, "digest", hex,
                     "agents", (json_int_t)n, "applied", applied, "partitions", parts);
}

static pk_status on_digest(void *ctx, const uint8_t *req, size_t len, uint8_t **out, size_t *outlen)
{
    json_t *doc = digest_json(ctx);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (!text)
        return PK_ERR(PK_ENOMEM, "out of memory");
    *out = (uint8_t *)text;
    *outlen = strlen(text);
    return PK_OK;
}

pk_status scorer_answers_start(scorer *s)
{
    static const pk_route routes[] = {{PK_SUBJ_SCORER_DIGEST, NULL, 1, on_digest}};

    return pk_responders_start(&s->answers, s->bus, routes, 1, s);
}
