#include "scorer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"

void scorer_metrics_init(scorer *s)
{
    pk_metric *m = s->m;

    m[SM_VERDICTS] = (pk_metric){"pactum_scorer_verdicts_total", NULL,
                                 "Verdicts taken from PACTUM_VERDICTS", PK_COUNTER, 0};
    m[SM_GOVERNANCE] =
        (pk_metric){"pactum_scorer_governance_total", NULL,
                    "Overrides, disputes, rulings and acknowledgements applied", PK_COUNTER, 0};
    m[SM_DUPLICATES] =
        (pk_metric){"pactum_scorer_duplicates_total", NULL,
                    "Inputs already applied (redelivered) and skipped", PK_COUNTER, 0};
    m[SM_MALFORMED] = (pk_metric){"pactum_scorer_malformed_total", NULL,
                                  "Inputs that did not decode (dead-lettered)", PK_COUNTER, 0};
    m[SM_CHANGES] = (pk_metric){"pactum_scorer_trust_changes_total", NULL,
                                "Trust changes published", PK_COUNTER, 0};
    m[SM_TIER_CHANGES] = (pk_metric){"pactum_scorer_tier_changes_total", NULL,
                                     "Tier changes published", PK_COUNTER, 0};
    m[SM_CONTAINMENTS] = (pk_metric){"pactum_scorer_containments_total", NULL,
                                     "Agents contained or suspended", PK_COUNTER, 0};
    m[SM_CONTAINMENT_MS] = (pk_metric){"pactum_scorer_last_containment_ms", NULL,
                                       "Milliseconds from ingest of the violating event to the "
                                       "last containment decision",
                                       PK_GAUGE, 0};
    m[SM_REENTRIES] =
        (pk_metric){"pactum_scorer_reentries_total", NULL,
                    "Agents that met re-entry criteria and left a held tier", PK_COUNTER, 0};
    m[SM_RULINGS] =
        (pk_metric){"pactum_scorer_rulings_recomputed_total", NULL,
                    "Rulings that overturned verdicts and rebuilt an agent's state", PK_COUNTER, 0};
    m[SM_BATCH_RETRIES] = (pk_metric){"pactum_scorer_batch_retries_total", NULL,
                                      "Batch attempts that failed and were retried", PK_COUNTER, 0};
    m[SM_LAG] = (pk_metric){"pactum_consumer_pending", "consumer=\"scorer\"",
                            "Messages waiting for this consumer", PK_GAUGE, 0};
    m[SM_LMDB_USED] =
        (pk_metric){"pactum_lmdb_used_bytes", NULL, "LMDB pages in use, in bytes", PK_GAUGE, 0};
    m[SM_LMDB_MAP] =
        (pk_metric){"pactum_lmdb_map_bytes", NULL, "LMDB map size, in bytes", PK_GAUGE, 0};
}

/* --- history ------------------------------------------------------------------- */

pk_status pk_read_history(pk_bus *bus, uint32_t partitions, const char *agent, uint64_t before_seq,
                          pk_input_fn each, void *each_ctx)
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
            pk_msg_meta(list.Msgs[i], &seq, NULL, NULL);
            if (seq >= before_seq) {
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

pk_status scorer_history(void *ctx, const char *agent, uint64_t before_seq, pk_input_fn each,
                         void *each_ctx)
{
    score_worker *w = ctx;

    return pk_read_history(w->pw->bus, w->s->partitions, agent, before_seq, each, each_ctx);
}

/* --- state cache per batch ------------------------------------------------------- */

typedef struct touched {
    pk_trust **t;  /* states */
    size_t n, cap; /* count and room */
} touched;

static pk_status trust_get(scorer *s, MDB_txn *txn, touched *tc, const char *agent, int64_t now,
                           pk_trust **out)
{
    Pactum__V1__TrustState *m = NULL;
    pk_trust *t;
    pk_status st;

    for (size_t i = 0; i < tc->n; i++) {
        if (strcmp(tc->t[i]->agent_id, agent) == 0) {
            *out = tc->t[i];
            return PK_OK;
        }
    }
    if (tc->n == tc->cap) {
        size_t cap = tc->cap ? tc->cap * 2 : 64;
        pk_trust **grown = realloc(tc->t, cap * sizeof(*grown));
        if (!grown)
            return PK_ERR(PK_ENOMEM, "cannot grow the batch");
        tc->t = grown;
        tc->cap = cap;
    }
    if (!(t = malloc(sizeof(*t))))
        return PK_ERR(PK_ENOMEM, "cannot allocate trust state");
    st = pk_get_msg(txn, s->agents, agent, strlen(agent), &pactum__v1__trust_state__descriptor,
                    (ProtobufCMessage **)&m);
    if (st == PK_OK) {
        pk_trust_from_msg(t, m);
        pactum__v1__trust_state__free_unpacked(m, NULL);
    } else if (st == PK_ENOTFOUND) {
        pk_trust_init(t, agent, now);
    } else {
        free(t);
        return st;
    }
    tc->t[tc->n++] = t;
    *out = t;
    return PK_OK;
}

static pk_status put_trust(scorer *s, pk_core *core, MDB_txn *txn, const pk_trust *t)
{
    static _Thread_local pk_trust_msg_storage storage;
    Pactum__V1__TrustState m;

    pk_trust_to_msg(t, pk_core_governance(core, txn, t), &m, &storage);
    return pk_put_msg(txn, s->agents, t->agent_id, strlen(t->agent_id), &m.base);
}

/* --- publishing ------------------------------------------------------------------ */

static void severity_counts(const uint64_t v[6], Pactum__V1__SeverityCount *sc,
                            Pactum__V1__SeverityCount **scp, size_t *n)
{
    *n = 0;
    for (int sev = 1; sev < 6; sev++) {
        if (!v[sev])
            continue;
        pactum__v1__severity_count__init(&sc[*n]);
        sc[*n].severity = (Pactum__V1__Severity)sev;
        sc[*n].count = v[sev];
        scp[*n] = &sc[*n];
        (*n)++;
    }
}

/* Publish the change an input made, and keep tier changes for history. */
static pk_status publish_change(score_worker *w, MDB_txn *txn, pk_trust *t, const pk_applied *a)
{
    static _Thread_local pk_trust_msg_storage storage;
    scorer *s = w->s;
    const pk_trust_effect *fx = &a->fx;
    Pactum__V1__TrustChange ch = PACTUM__V1__TRUST_CHANGE__INIT;
    Pactum__V1__TrustState state;
    Pactum__V1__TierChange tc = PACTUM__V1__TIER_CHANGE__INIT;
    Pactum__V1__Factor factor = PACTUM__V1__FACTOR__INIT, *factors[1] = {&factor};
    Pactum__V1__Criterion crit[6], *critp[6];
    Pactum__V1__RulingEffect re = PACTUM__V1__RULING_EFFECT__INIT;
    Pactum__V1__SeverityCount scb[6], sca[6], *scbp[6], *scap[6];
    char subject[128], msg_id[PK_ID_MAX + 24], fname[2 * PK_ID_MAX + 16], fdetail[480];
    uint8_t *buf = NULL, key[PK_ID_MAX + 9];
    size_t len = 0, alen = strlen(t->agent_id);
    int64_t now = pk_now_ms();
    pk_status st;

    t->change_seq++;
    pk_trust_to_msg(t, pk_core_governance(&w->core, txn, t), &state, &storage);
    ch.agent_id = t->agent_id;
    ch.change_seq = t->change_seq;
    ch.state = &state;
    ch.cause = a->verdict;
    ch.governance = a->gov;
    ch.published_ms = now;
    if (a->verdict) {
        snprintf(fname, sizeof(fname), "clause %s/%s", a->verdict->pact_id, a->verdict->clause_id);
        snprintf(fdetail, sizeof(fdetail),
                 "%s verdict #%llu: %s; older evidence kept %lld ppm of its weight",
                 pk_outcome_name(a->verdict->outcome), (unsigned long long)a->verdict->vseq,
                 a->verdict->detail, (long long)fx->decay_ppm);
    } else {
        snprintf(fname, sizeof(fname), "governance");
        snprintf(fdetail, sizeof(fdetail), "%s", fx->cause);
    }
    factor.name = fname;
    factor.delta_ppm = fx->score_delta;
    factor.detail = fdetail;
    ch.n_factors = 1;
    ch.factors = factors;
    if (a->ruling_recomputed) {
        re.dispute_id = a->gov->ruling->dispute_id;
        re.verdicts_removed = (uint64_t *)a->removed;
        re.n_verdicts_removed = (size_t)a->n_removed;
        re.score_before_ppm = a->score_before;
        re.score_after_ppm = t->score;
        re.lower_before_ppm = a->lower_before;
        re.lower_after_ppm = t->lower;
        re.tier_before = (Pactum__V1__Tier)a->tier_before;
        re.tier_after = (Pactum__V1__Tier)t->tier;
        severity_counts(a->violations_before, scb, scbp, &re.n_violations_before);
        re.violations_before = scbp;
        severity_counts(t->violations, sca, scap, &re.n_violations_after);
        re.violations_after = scap;
        ch.ruling_effect = &re;
        pk_metric_add(&s->m[SM_RULINGS], 1);
    }
    if (fx->from_tier != fx->to_tier) {
        tc.from = (Pactum__V1__Tier)fx->from_tier;
        tc.to = (Pactum__V1__Tier)fx->to_tier;
        tc.cause = (char *)fx->cause;
        tc.rule = (char *)fx->rule;
        tc.at_ms = t->clock_ms;
        tc.decided_ms = now;
        tc.verdict = a->verdict;
        tc.governance = a->gov;
        for (int i = 0; i < fx->n_crit; i++) {
            pactum__v1__criterion__init(&crit[i]);
            crit[i].name = (char *)fx->crit[i].name;
            crit[i].required = (char *)fx->crit[i].required;
            crit[i].actual = (char *)fx->crit[i].actual;
            crit[i].met = fx->crit[i].met;
            critp[i] = &crit[i];
        }
        tc.n_criteria = (size_t)fx->n_crit;
        tc.criteria = critp;
        if (fx->to_tier >= PACTUM__V1__TIER__TIER_CONTAINED &&
            fx->from_tier < PACTUM__V1__TIER__TIER_CONTAINED && a->verdict &&
            a->verdict->ingest_ms > 0) {
            tc.containment_ms = now - a->verdict->ingest_ms;
            pk_metric_add(&s->m[SM_CONTAINMENTS], 1);
            pk_metric_set(&s->m[SM_CONTAINMENT_MS], tc.containment_ms);
        }
        if (strcmp(fx->rule, "re-entry criteria met") == 0)
            pk_metric_add(&s->m[SM_REENTRIES], 1);
        ch.tier_change = &tc;
        memcpy(key, t->agent_id, alen);
        key[alen] = 0;
        pk_be64_put(key + alen + 1, t->change_seq);
        if ((st = pk_put_msg(txn, s->tiers, key, alen + 9, &tc.base)) != PK_OK)
            return st;
        pk_metric_add(&s->m[SM_TIER_CHANGES], 1);
        PK_INFO("%s: %s -> %s (%s: %s)", t->agent_id, pk_tier_name(tc.from), pk_tier_name(tc.to),
                fx->rule, fx->cause);
    }
    if ((st = pk_pack(&ch.base, &buf, &len)) != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_TRUST, t->agent_id);
    snprintf(msg_id, sizeof(msg_id), "%s:%llu", t->agent_id, (unsigned long long)t->change_seq);
    st = pk_bus_publish_async(w->pw->bus, subject, buf, len, msg_id);
    free(buf);
    if (st == PK_OK)
        pk_metric_add(&s->m[SM_CHANGES], 1);
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
    return pk_reject_publish(w->bus, "scorer", &r, id, false);
}

pk_status scorer_process(pk_pworker *pw, natsMsgList *list)
{
    score_worker *w = pw->ctx;
    scorer *s = w->s;
    MDB_txn *txn = NULL;
    touched tc = {0};
    char applied_key[32];
    uint64_t applied = 0;
    pk_status st;

    /* verdicts name pact versions whose governance sections we may need */
    if ((st = pk_registry_sync_if_dirty(s->reg)) != PK_OK)
        goto retry;
    if ((st = pk_txn_begin(s->store, true, &txn)) != PK_OK)
        goto retry;
    snprintf(applied_key, sizeof(applied_key), "inputs_p%u", pw->partition);
    if ((st = pk_get_u64(txn, s->meta, applied_key, &applied)) == PK_ENOTFOUND)
        st = PK_OK;
    pk_bus_publish_reset(pw->bus);
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        natsMsg *msg = list->Msgs[i];
        const char *subject = natsMsg_GetSubject(msg);
        char agent[PK_ID_MAX + 1];
        bool is_gov = false;
        uint64_t seq = 0;
        int64_t ts = 0;
        pk_applied a;
        pk_trust *t = NULL;

        pk_msg_meta(msg, &seq, NULL, &ts);
        if (seq && seq <= applied) {
            pk_metric_add(&s->m[SM_DUPLICATES], 1);
            continue;
        }
        if (!pk_core_subject_agent(subject, agent, sizeof(agent), &is_gov) ||
            pk_id_check("agent id", agent) != PK_OK) {
            st = dead_letter(pw, msg, seq, "input on an unexpected subject");
        } else if ((st = trust_get(s, txn, &tc, agent, ts, &t)) == PK_OK) {
            pk_metric_add(&s->m[is_gov ? SM_GOVERNANCE : SM_VERDICTS], 1);
            st = pk_core_apply(&w->core, txn, t, subject, (const uint8_t *)natsMsg_GetData(msg),
                               (size_t)natsMsg_GetDataLength(msg), seq, &a);
            if (st == PK_EDECODE) {
                st = dead_letter(pw, msg, seq, pk_error_msg());
            } else if (st == PK_OK) {
                if (a.changed)
                    st = publish_change(w, txn, t, &a);
                else if (!is_gov)
                    pk_metric_add(&s->m[SM_DUPLICATES], 1);
                pk_applied_free(&a);
            }
        }
        if (seq > applied)
            applied = seq;
    }
    for (size_t i = 0; i < tc.n && st == PK_OK; i++)
        st = put_trust(s, &w->core, txn, tc.t[i]);
    if (st == PK_OK)
        st = pk_put_u64(txn, s->meta, applied_key, applied);
    if (st == PK_OK)
        st = pk_bus_publish_wait(pw->bus, 10000);
    if (st == PK_OK) {
        st = pk_txn_commit(txn);
        txn = NULL;
    }
    if (st != PK_OK)
        goto retry;
    for (int i = 0; i < list->Count; i++)
        natsMsg_Ack(list->Msgs[i], NULL);
    goto out;
retry:
    pk_txn_abort(txn);
    pk_metric_add(&s->m[SM_BATCH_RETRIES], 1);
    /* a pact the copy did not have yet, perhaps: bring it up to date for the retry */
    if (pk_registry_sync(s->reg, 0) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
out:
    for (size_t i = 0; i < tc.n; i++)
        free(tc.t[i]);
    free(tc.t);
    return st;
}

/* --- digest ------------------------------------------------------------------------ */

pk_status scorer_digest(pk_store *store, MDB_dbi agents, uint8_t out[32], uint64_t *n_agents)
{
    crypto_hash_sha256_state h;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pk_status st;
    int rc;

    *n_agents = 0;
    crypto_hash_sha256_init(&h);
    if ((st = pk_txn_begin(store, false, &txn)) != PK_OK)
        return st;
    if ((rc = mdb_cursor_open(txn, agents, &cur)) != 0) {
        pk_txn_abort(txn);
        return pk_store_err(rc, "digest cursor");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t lens[8];
        pk_be32_put(lens, (uint32_t)k.mv_size);
        pk_be32_put(lens + 4, (uint32_t)v.mv_size);
        crypto_hash_sha256_update(&h, lens, 8);
        crypto_hash_sha256_update(&h, k.mv_data, k.mv_size);
        crypto_hash_sha256_update(&h, v.mv_data, v.mv_size);
        (*n_agents)++;
    }
    mdb_cursor_close(cur);
    pk_txn_abort(txn);
    crypto_hash_sha256_final(&h, out);
    return PK_OK;
}

static void on_digest(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    scorer *s = closure;
    uint8_t d[32];
    char hex[65];
    uint64_t n = 0;
    json_t *doc = NULL, *applied = json_object();
    char *text = NULL;
    MDB_txn *txn = NULL;

    if (scorer_digest(s->store, s->agents, d, &n) == PK_OK) {
        pk_hex_encode(d, 32, hex);
        if (pk_txn_begin(s->store, false, &txn) == PK_OK) {
            for (size_t i = 0; i < s->workers.n; i++) {
                char key[32], p[16];
                uint64_t seq = 0;
                snprintf(key, sizeof(key), "inputs_p%u", s->workers.w[i].partition);
                snprintf(p, sizeof(p), "%u", s->workers.w[i].partition);
                if (pk_get_u64(txn, s->meta, key, &seq) == PK_OK)
                    json_object_set_new(applied, p, json_integer((json_int_t)seq));
            }
            pk_txn_abort(txn);
        }
        doc = json_pack("{s:s, s:I, s:O}", "digest", hex, "agents", (json_int_t)n, "applied",
                        applied);
    } else {
        doc = json_pack("{s:s}", "error", pk_error_msg());
    }
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text && natsMsg_GetReply(msg))
        natsConnection_PublishString(nc, natsMsg_GetReply(msg), text);
    free(text);
    json_decref(doc);
    json_decref(applied);
    natsMsg_Destroy(msg);
}

pk_status scorer_digest_start(scorer *s)
{
    natsStatus st =
        natsConnection_Subscribe(&s->digest, s->bus->nc, PK_SUBJ_SCORER_DIGEST, on_digest, s);

    return st == NATS_OK ? PK_OK : pk_nats_err(st, 0, "subscribe to " PK_SUBJ_SCORER_DIGEST);
}

void scorer_digest_stop(scorer *s)
{
    if (s->digest) {
        natsSubscription_Unsubscribe(s->digest);
        natsSubscription_Destroy(s->digest);
        s->digest = NULL;
    }
}
