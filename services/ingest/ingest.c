#include "ingest.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pk/clock.h"
#include "pk/log.h"

#define PRUNE_MARGIN_MS (3600LL * 1000) /* dedup entries outlive the age limit by this */
#define PRUNE_MAX       10000           /* entries pruned per pass */

static const char *const reason_labels[] = {"reason=\"malformed\"",
                                            "reason=\"oversized\"",
                                            "reason=\"bad_signature\"",
                                            "reason=\"unknown_signer\"",
                                            "reason=\"subject_mismatch\"",
                                            "reason=\"invalid_field\"",
                                            "reason=\"duplicate\"",
                                            "reason=\"too_old\"",
                                            "reason=\"too_new\"",
                                            "reason=\"unknown_agent\"",
                                            "reason=\"not_authorized\"",
                                            "reason=\"bad_pact\"",
                                            "reason=\"conflict\"",
                                            "reason=\"unsupported_version\"",
                                            "reason=\"internal\"",
                                            "reason=\"rate_limited\"",
                                            "reason=\"too_many_disputes\"",
                                            "reason=\"too_many_overrides\"",
                                            "reason=\"no_such_dispute\"",
                                            "reason=\"no_such_engagement\"",
                                            "reason=\"too_many_engagements\""};
_Static_assert(sizeof(reason_labels) / sizeof(reason_labels[0]) == INGEST_REASONS,
               "a label for every counted reason");
_Static_assert(PACTUM__V1__REASON__REASON_TOO_MANY_ENGAGEMENTS == INGEST_REASONS,
               "every Reason has a counter");

void ingest_metrics_init(ingest *in)
{
#define PK_METRIC(id, type, name, labels, help)                                                    \
    in->m[id] = (pk_metric){name, labels, help, type, 0};
#include "metrics.def"
#undef PK_METRIC
    for (int i = 0; i < INGEST_REASONS; i++)
        in->m[M_REJECTED_FIRST + i] = (pk_metric){"pactum_ingest_rejected_total", reason_labels[i],
                                                  "Inputs refused, by reason", PK_COUNTER, 0};
}

void ingest_count_reject(ingest *in, Pactum__V1__Reason reason)
{
    int i = (int)reason - 1;

    if (i < 0 || i >= INGEST_REASONS)
        i = PACTUM__V1__REASON__REASON_INTERNAL - 1;
    pk_metric_add(&in->m[M_REJECTED_FIRST + i], 1);
}

/* Everything known about the envelope being processed, for rejections. */
/* What the publisher of an envelope hears when its batch asks (an EnvelopeReceipt). */
typedef struct receipt {
    bool want;                     /* the batch asked for one */
    uint32_t accepted;             /* events accepted, now or on an earlier delivery */
    Pactum__V1__Refusal **refused; /* the others, and why */
    size_t n_refused;
} receipt;

typedef struct env_ctx {
    natsMsg *msg;        /* the raw message */
    const char *subject; /* its subject */
    const uint8_t *data; /* its payload */
    size_t len;          /* payload length */
    uint64_t seq;        /* stream sequence in PACTUM_RAW */
    int64_t received_ms; /* when the bus stored it */
    const char *signer;  /* signer id, once known */
    receipt *rc;         /* the envelope's receipt */
} env_ctx;

/* Note a refusal on the receipt, if one was asked for. */
static void note_refusal(const env_ctx *e, const char *event_id, Pactum__V1__Reason reason,
                         const char *text)
{
    Pactum__V1__Refusal *r, **more;

    if (!e->rc || !e->rc->want || !(r = malloc(sizeof(*r))))
        return;
    pactum__v1__refusal__init(r);
    r->event_id = strdup(event_id ? event_id : "");
    r->reason = reason;
    r->message = strdup(text);
    if (!r->event_id || !r->message ||
        !(more = realloc(e->rc->refused, (e->rc->n_refused + 1) * sizeof(*more)))) {
        free(r->event_id);
        free(r->message);
        free(r);
        return;
    }
    more[e->rc->n_refused++] = r;
    e->rc->refused = more;
}

static void receipt_free(receipt *rc)
{
    for (size_t i = 0; i < rc->n_refused; i++) {
        free(rc->refused[i]->event_id);
        free(rc->refused[i]->message);
        free(rc->refused[i]);
    }
    free(rc->refused);
    memset(rc, 0, sizeof(*rc));
}

static pk_status reject(ingest *in, const env_ctx *e, int idx, Pactum__V1__Reason reason,
                        const char *agent, const char *event_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static pk_status reject(ingest *in, const env_ctx *e, int idx, Pactum__V1__Reason reason,
                        const char *agent, const char *event_id, const char *fmt, ...)
{
    char text[512], msg_id[64];
    va_list ap;
    pk_rejection r = {0};

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    r.reason = reason;
    r.message = text;
    r.subject = e->subject;
    r.signer_id = e->signer;
    r.agent_id = agent;
    r.event_id = event_id;
    r.source_seq = e->seq;
    r.data = e->data;
    r.len = e->len;
    snprintf(msg_id, sizeof(msg_id), "ingest:%llu:%d", (unsigned long long)e->seq, idx);
    ingest_count_reject(in, reason);
    note_refusal(e, event_id, reason, text);
    PK_DEBUG("refused %s (raw #%llu): %s", pk_reason_name(reason), (unsigned long long)e->seq,
             text);
    return pk_reject_publish(in->bus, "ingest", &r, msg_id, false);
}

/*
 * The signer sent more events than its rate allows: the envelope is refused.
 * A dead-letter record goes out at most once a second per signer (a flood
 * must not become a flood of records); every refusal is counted.
 */
static pk_status rate_limited(ingest *in, const env_ctx *e, const char *signer, size_t n_events)
{
    if (!pk_ratelimit_take(in->notes, signer, 1, pk_mono_ms())) {
        ingest_count_reject(in, PACTUM__V1__REASON__REASON_RATE_LIMITED);
        note_refusal(e, NULL, PACTUM__V1__REASON__REASON_RATE_LIMITED,
                     "the signer sent more events than its rate allows");
        return PK_OK;
    }
    return reject(in, e, -1, PACTUM__V1__REASON__REASON_RATE_LIMITED, signer, NULL,
                  "%s sent more than %lld events a second (at most %lld at once): %zu events "
                  "refused; further refusals this second are only counted",
                  signer, in->cfg->rate, in->cfg->burst, n_events);
}

/*
 * The duplicate-table key of an event: agent \0 event id for what an agent says
 * of itself, agent \0 signer \0 event id for what another says of it. Event
 * ids are the signer's own: a peer's report cannot take the id of an event the
 * agent has yet to send.
 */
static size_t dedup_key(uint8_t *buf, const char *agent, const char *signer, const char *event_id)
{
    size_t a = strlen(agent), s = strlen(signer), b = strlen(event_id), n = 0;

    memcpy(buf, agent, a);
    buf[a] = 0;
    n = a + 1;
    if (strcmp(agent, signer) != 0) {
        memcpy(buf + n, signer, s);
        buf[n + s] = 0;
        n += s + 1;
    }
    memcpy(buf + n, event_id, b);
    return n + b;
}

static Pactum__V1__Source source_of_role(Pactum__V1__Role role)
{
    static const Pactum__V1__Source sources[] = {
        [PACTUM__V1__ROLE__ROLE_AGENT] = PACTUM__V1__SOURCE__SOURCE_PEER,
        [PACTUM__V1__ROLE__ROLE_EVALUATOR] = PACTUM__V1__SOURCE__SOURCE_EVALUATOR,
        [PACTUM__V1__ROLE__ROLE_HUMAN] = PACTUM__V1__SOURCE__SOURCE_HUMAN,
        [PACTUM__V1__ROLE__ROLE_TELEMETRY] = PACTUM__V1__SOURCE__SOURCE_TELEMETRY};

    /* unlisted roles are 0: PACTUM__V1__SOURCE__SOURCE_UNSPECIFIED */
    return (unsigned)role < PK_NELEM(sources) ? sources[role]
                                              : PACTUM__V1__SOURCE__SOURCE_UNSPECIFIED;
}

/*
 * A rating (kind "rating", metric "rating" from 1 to 5) is the buyer's, about a job that has
 * ended (completed, or past its deadline), one per job: its event id is "rating:<id>", so
 * the duplicate table takes it once. No rating without a job.
 */
static bool rating_ok(ingest *in, const env_ctx *e, int idx, pk_event_msg *ev, const ledger_eng *le,
                      pk_status *st)
{
    char want[PK_ID_MAX + 8];
    const char *why = NULL;
    bool has = false;

    snprintf(want, sizeof(want), "rating:%s", ev->engagement_id);
    for (size_t i = 0; i < ev->n_metrics; i++)
        has |= strcmp(ev->metrics[i]->name, "rating") == 0 && ev->metrics[i]->value >= 1 &&
               ev->metrics[i]->value <= 5;
    if (strcmp(e->signer, le->buyer) != 0)
        why = "only the engagement's buyer rates the job";
    else if (!le->done && le->deadline_ms > pk_now_ms())
        why = "the job has not ended: a rating comes after completion or the deadline";
    else if (strcmp(ev->event_id, want) != 0)
        why = "a rating's event id is rating:<engagement id> (one rating per job)";
    else if (!has)
        why = "a rating carries the metric rating, from 1 to 5";
    if (!why)
        return true;
    *st =
        reject(in, e, idx,
               has || strcmp(e->signer, le->buyer) != 0 ? PACTUM__V1__REASON__REASON_NOT_AUTHORIZED
                                                        : PACTUM__V1__REASON__REASON_INVALID_FIELD,
               ev->agent_id, ev->event_id, "rating %s of %s: %s", ev->event_id, ev->agent_id, why);
    return false;
}

/*
 * An event about an engagement: the agent has it, and the reporter may speak
 * about it. Besides the agent (and its owner's agents) and the independent
 * sources (evaluators, telemetry), only the engagement's buyer: no other
 * peer or person, named by the pact or not. True to go on; false refused (*st).
 */
static bool engagement_source(ingest *in, const env_ctx *e, int idx, pk_event_msg *ev,
                              pk_status *st)
{
    bool rating = strcasecmp(ev->kind, "rating") == 0;
    ledger_eng le;
    pk_status found;

    found = ledger_engagement(in, ev->agent_id, ev->engagement_id, rating, &le);
    if (found == PK_ENOTFOUND) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NO_SUCH_ENGAGEMENT, ev->agent_id,
                     ev->event_id, "event %s names engagement %s, which %s does not have",
                     ev->event_id, ev->engagement_id, ev->agent_id);
        return false;
    }
    if (found != PK_OK) {
        *st = found; /* the ledger cannot be read now: the envelope is tried again */
        return false;
    }
    if ((ev->source == PACTUM__V1__SOURCE__SOURCE_PEER ||
         ev->source == PACTUM__V1__SOURCE__SOURCE_HUMAN) &&
        strcmp(e->signer, le.buyer) != 0) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, ev->agent_id,
                     ev->event_id,
                     "%s may not report about engagement %s: besides the agent and independent "
                     "evaluators, only its buyer (%s) may",
                     e->signer, ev->engagement_id, le.buyer);
        return false;
    }
    return !rating || rating_ok(in, e, idx, ev, &le, st);
}

/*
 * Where the evidence comes from: the agent itself (or another agent of its
 * owner), a peer, an independent evaluator, a human. True with ev->source
 * set; false when the event was refused (*st: the refusal's publish status)
 * or the lookup failed (*st says why).
 */
static bool set_source(ingest *in, MDB_txn *txn, const env_ctx *e, int idx, pk_event_msg *ev,
                       const Pactum__V1__AgentRecord *signer, pk_status *st)
{
    Pactum__V1__AgentRecord *subject_agent = NULL;

    if (strcasecmp(ev->kind, "rating") == 0 && !ev->engagement_id[0]) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, ev->agent_id,
                     ev->event_id, "rating %s of %s names no engagement: no rating without a job",
                     ev->event_id, ev->agent_id);
        return false;
    }
    if (strcmp(ev->agent_id, e->signer) == 0) {
        if (signer->role != PACTUM__V1__ROLE__ROLE_AGENT) {
            *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, ev->agent_id,
                         ev->event_id, "%s is not an agent and cannot report on itself", e->signer);
            return false;
        }
        ev->source = PACTUM__V1__SOURCE__SOURCE_SELF;
        return !ev->engagement_id[0] || engagement_source(in, e, idx, ev, st);
    }
    *st = pk_registry_agent(in->reg, txn, ev->agent_id, &subject_agent, NULL);
    if (*st == PK_ENOTFOUND)
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_UNKNOWN_AGENT, ev->agent_id,
                     ev->event_id, "event %s is about agent '%s', which is not registered",
                     ev->event_id, ev->agent_id);
    if (!subject_agent)
        return false;
    ev->source = source_of_role(signer->role);
    /* Another agent of the same owner is not a peer: what an owner's agents
     * say about each other is the owner speaking about itself. */
    if (ev->source == PACTUM__V1__SOURCE__SOURCE_PEER &&
        subject_agent->owner_key.len == PK_PUBKEY_BYTES &&
        signer->owner_key.len == PK_PUBKEY_BYTES &&
        pk_bytes_equal(subject_agent->owner_key.data, signer->owner_key.data, PK_PUBKEY_BYTES))
        ev->source = PACTUM__V1__SOURCE__SOURCE_SELF;
    pactum__v1__agent_record__free_unpacked(subject_agent, NULL);
    if (ev->engagement_id[0])
        return engagement_source(in, e, idx, ev, st);
    /* another agent's word about this one counts only if its pact names that agent */
    if (ev->source == PACTUM__V1__SOURCE__SOURCE_PEER &&
        !pk_pact_cache_counterparty(in->pacts, in->reg, txn, ev->agent_id, e->signer)) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, ev->agent_id,
                     ev->event_id, "%s is not a counterparty named by the pact of %s", e->signer,
                     ev->agent_id);
        return false;
    }
    if (ev->source == PACTUM__V1__SOURCE__SOURCE_UNSPECIFIED) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, ev->agent_id,
                     ev->event_id, "%s may not report evidence about other agents", e->signer);
        return false;
    }
    return true;
}

/* True if the event's time lies within the limits around its arrival; else refused (*st). */
static bool time_ok(ingest *in, const env_ctx *e, int idx, const pk_event_msg *ev, pk_status *st)
{
    if (ev->ts_ms < e->received_ms - in->cfg->max_age_ms) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_TOO_OLD, ev->agent_id, ev->event_id,
                     "event %s is %lld s older than its arrival; the limit is %lld s", ev->event_id,
                     (long long)((e->received_ms - ev->ts_ms) / 1000),
                     (long long)(in->cfg->max_age_ms / 1000));
        return false;
    }
    if (ev->ts_ms > e->received_ms + in->cfg->max_skew_ms) {
        *st = reject(in, e, idx, PACTUM__V1__REASON__REASON_TOO_NEW, ev->agent_id, ev->event_id,
                     "event %s is %lld s in the future of its arrival; the limit is %lld s",
                     ev->event_id, (long long)((ev->ts_ms - e->received_ms) / 1000),
                     (long long)(in->cfg->max_skew_ms / 1000));
        return false;
    }
    return true;
}

/* Normalize the fields ingest vouches for and publish the event to PACTUM_EVENTS. */
static pk_status publish_event(ingest *in, const env_ctx *e, pk_event_msg *ev,
                               uint64_t registry_seq)
{
    char subject[160], msg_id[2 * PK_ID_MAX + PK_EVENT_ID_MAX + 3];
    uint8_t *buf = NULL;
    size_t blen = 0;
    char *reporter;
    pk_status st;

    for (char *p = ev->kind; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (char *p = ev->currency; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    reporter = ev->reporter_id; /* whatever the reporter wrote there is replaced */
    ev->reporter_id = (char *)e->signer;
    ev->received_ms = e->received_ms;
    ev->accepted_ms = pk_now_ms();
    ev->registry_seq = registry_seq;
    ev->raw_seq = e->seq;
    ev->partition = pk_partition_of(ev->agent_id, in->partitions);
    st = pk_pack(&ev->base, &buf, &blen);
    ev->reporter_id = reporter; /* give free_unpacked back what it allocated */
    if (st != PK_OK)
        return st;
    snprintf(subject, sizeof(subject), PK_SUBJ_EVENTS, ev->partition, ev->agent_id);
    /* the same key as the duplicate table's: one signer's event ids are its own */
    if (strcmp(ev->agent_id, e->signer) == 0)
        snprintf(msg_id, sizeof(msg_id), "%s:%s", ev->agent_id, ev->event_id);
    else
        snprintf(msg_id, sizeof(msg_id), "%s:%s:%s", ev->agent_id, e->signer, ev->event_id);
    st = pk_bus_publish_async(in->bus, subject, buf, blen, msg_id);
    free(buf);
    return st;
}

/* Check, normalize and publish one event of a verified envelope; its id joins the batch's writes.
 */
static pk_status handle_event(ingest *in, MDB_txn *txn, const env_ctx *e, int idx, pk_event_msg *ev,
                              const Pactum__V1__AgentRecord *signer, uint64_t registry_seq)
{
    uint8_t key[2 * PK_ID_MAX + PK_EVENT_ID_MAX + 3], val[20], tkey[8 + sizeof(key)];
    size_t klen;
    MDB_val seen;
    pk_status st;

    if (pk_event_check(ev) != PK_OK)
        return reject(in, e, idx, PACTUM__V1__REASON__REASON_INVALID_FIELD, ev->agent_id,
                      ev->event_id, "event %d of the batch: %s", idx, pk_error_msg());
    if (!set_source(in, txn, e, idx, ev, signer, &st) || !time_ok(in, e, idx, ev, &st))
        return st; /* refused (PK_OK once the refusal is published), or a failure */
    klen = dedup_key(key, ev->agent_id, e->signer, ev->event_id);
    st = pk_wset_get(in->ws, txn, in->dedup, key, klen, &seen);
    if (st == PK_OK) {
        /* The same envelope and position: accepted on an earlier delivery of
         * this message. Anything else is a second copy of the event. */
        if (seen.mv_size == 20 && pk_be64_get(seen.mv_data) == e->seq &&
            pk_be32_get((const uint8_t *)seen.mv_data + 16) == (uint32_t)idx) {
            pk_metric_add(&in->m[M_REDELIVERED], 1);
            if (e->rc)
                e->rc->accepted++;
            return PK_OK;
        }
        return reject(in, e, idx, PACTUM__V1__REASON__REASON_DUPLICATE, ev->agent_id, ev->event_id,
                      "event %s of agent %s was already accepted from %s", ev->event_id,
                      ev->agent_id, e->signer);
    }
    if (st != PK_ENOTFOUND)
        return st;
    if ((st = publish_event(in, e, ev, registry_seq)) != PK_OK)
        return st;
    pk_be64_put(val, e->seq);
    pk_be64_put(val + 8, (uint64_t)ev->ts_ms);
    pk_be32_put(val + 16, (uint32_t)idx);
    pk_be64_put(tkey, (uint64_t)ev->ts_ms);
    memcpy(tkey + 8, key, klen);
    if ((st = pk_wset_put(in->ws, in->dedup, key, klen, val, 20)) != PK_OK ||
        (st = pk_wset_put(in->ws, in->dedup_time, tkey, 8 + klen, "", 0)) != PK_OK)
        return st;
    pk_metric_add(&in->m[M_ACCEPTED], 1);
    if (e->rc)
        e->rc->accepted++;
    return PK_OK;
}

/*
 * An envelope opened, and its signature checked against the key it names,
 * ahead of the in-order pass. env NULL: too large or not an envelope; the
 * in-order pass looks again and says why.
 */
struct opened {
    pk_signed_msg *env; /* owned until handle_envelope takes it */
    pk_status sig;      /* PK_OK or PK_EBADSIG under env->signer_key; else not checked */
    receipt rc;         /* for its publisher, if asked */
};

static void *open_range(void *p)
{
    open_job *j = p;

    for (int i = j->from; i < j->to; i++) {
        const uint8_t *data = (const uint8_t *)natsMsg_GetData(j->msgs[i]);
        size_t len = (size_t)natsMsg_GetDataLength(j->msgs[i]);
        pk_signed_msg *env;

        j->out[i].env = NULL;
        j->out[i].sig = PK_EINVAL;
        if (len > (size_t)j->max_bytes || pk_envelope_open(data, len, &env) != PK_OK)
            continue;
        j->out[i].env = env;
        j->out[i].sig = env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH
                            ? pk_envelope_verify(env, env->signer_key.data)
                            : PK_EINVAL;
    }
    return NULL;
}

#define MIN_PER_THREAD 4 /* fewer envelopes than this are not worth a thread */

/* How many threads check a batch of n envelopes. */
static int open_threads(const ingest *in, int n)
{
    int t = in->verify_threads;

    if (t > INGEST_VERIFY_THREADS_MAX)
        t = INGEST_VERIFY_THREADS_MAX;
    if (t > n / MIN_PER_THREAD)
        t = n / MIN_PER_THREAD;
    return t < 1 ? 1 : t;
}

/*
 * An Ed25519 check costs about five times everything else ingest does for an
 * envelope, and whether an envelope verifies under the key it names depends on
 * its bytes alone. So the batch is opened and checked on several threads
 * first; the in-order pass, which must see registry, dedup and publishing in
 * stream order, then only compares the named key with the registered one.
 * Ranges from `first` on go to threads of their own; open_finish opens the
 * others (and any whose thread could not start) and waits for the rest.
 */
static void open_start(const ingest *in, opening *g, natsMsgList *list, opened *out, int first)
{
    int n = list->Count;

    g->msgs = list->Msgs;
    g->count = n;
    g->op = out;
    g->t = open_threads(in, n);
    for (int k = 0; k < g->t; k++) {
        g->jobs[k] = (open_job){.msgs = list->Msgs,
                                .out = out,
                                .from = (int)((long)n * k / g->t),
                                .to = (int)((long)n * (k + 1) / g->t),
                                .max_bytes = in->cfg->max_bytes};
        g->started[k] = k >= first && pthread_create(&g->th[k], NULL, open_range, &g->jobs[k]) == 0;
    }
}

static void open_finish(opening *g)
{
    for (int k = 0; k < g->t; k++)
        if (!g->started[k])
            open_range(&g->jobs[k]);
    for (int k = 0; k < g->t; k++)
        if (g->started[k])
            pthread_join(g->th[k], NULL);
}

static void opened_free(opened *op, int n)
{
    for (int i = 0; op && i < n; i++) {
        if (op[i].env)
            pactum__v1__signed__free_unpacked(op[i].env, NULL);
        receipt_free(&op[i].rc);
    }
    free(op);
}

/*
 * The runner read the next batch ahead while this one waits for the bus: its
 * signatures are checked meanwhile, on threads of their own, and handed to
 * ingest_process when the batch comes to it (or dropped, if it never does).
 */
void ingest_prepare(void *ctx, natsMsgList *list)
{
    ingest *in = ctx;
    opening *g = !in->ahead[0].op ? &in->ahead[0] : !in->ahead[1].op ? &in->ahead[1] : NULL;
    opened *op;

    if (!g || !(op = calloc((size_t)list->Count + 1, sizeof(*op))))
        return; /* opened in order when it comes */
    open_start(in, g, list, op, 0);
    pk_metric_add(&in->m[M_READ_AHEAD], 1);
}

/* The envelopes of list as opened ahead (NULL: not opened ahead); the threads are done. */
static opened *take_prepared(ingest *in, natsMsgList *list)
{
    for (int i = 0; i < 2; i++) {
        opening *g = &in->ahead[i];
        opened *op = g->op;
        if (!op || g->msgs != list->Msgs || g->count != list->Count)
            continue;
        open_finish(g);
        g->op = NULL;
        return op;
    }
    return NULL;
}

void ingest_discard(void *ctx, natsMsgList *list)
{
    ingest *in = ctx;

    opened_free(take_prepared(in, list), list->Count);
}

static pk_status handle_envelope(ingest *in, MDB_txn *txn, env_ctx *e, uint64_t registry_seq,
                                 opened *o)
{
    pk_signed_msg *env = o->env;
    pk_status sig = env ? o->sig : PK_EINVAL; /* not checked unless opened ahead */
    Pactum__V1__AgentRecord *signer = NULL;
    pk_event_batch_msg *batch = NULL;
    const char *subj_signer = pk_subject_last_token(e->subject);
    pk_status st = PK_OK;

    o->env = NULL; /* taken */
    if (e->len > (size_t)in->cfg->max_bytes) {
        if (env) /* not opened ahead when too large; be safe all the same */
            pactum__v1__signed__free_unpacked(env, NULL);
        return reject(in, e, -1, PACTUM__V1__REASON__REASON_OVERSIZED, subj_signer, NULL,
                      "envelope is %zu bytes; the limit is %lld", e->len, in->cfg->max_bytes);
    }
    if (!env && (st = pk_envelope_open(e->data, e->len, &env)) != PK_OK)
        return reject(in, e, -1,
                      st == PK_EINVAL ? PACTUM__V1__REASON__REASON_UNSUPPORTED_VERSION
                                      : PACTUM__V1__REASON__REASON_MALFORMED,
                      subj_signer, NULL, "%s", pk_error_msg());
    e->signer = env->signer_id;
    /* read first for whether a receipt is wanted; judged below, after the signature */
    if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH)
        batch = pactum__v1__event_batch__unpack(NULL, env->payload.len, env->payload.data);
    if (batch && batch->receipt && e->rc)
        e->rc->want = true;
    if (env->type != PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_INVALID_FIELD, subj_signer, NULL,
                    "only event batches may be published on pactum.raw.*; registrations go to "
                    "%s",
                    PK_SUBJ_REG_SUBMIT);
        goto done;
    }
    if (strcmp(env->signer_id, subj_signer) != 0) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_SUBJECT_MISMATCH, subj_signer, NULL,
                    "envelope signed as '%s' was published on %s; publish on pactum.raw.%s",
                    env->signer_id, e->subject, env->signer_id);
        goto done;
    }
    st = pk_registry_agent(in->reg, txn, env->signer_id, &signer, NULL);
    if (st == PK_ENOTFOUND) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_UNKNOWN_SIGNER, subj_signer, NULL,
                    "signer '%s' is not registered (register it with: pactum agent register)",
                    env->signer_id);
        goto done;
    }
    if (st != PK_OK)
        goto done;
    if (signer->agent_key.len != PK_PUBKEY_BYTES ||
        !pk_bytes_equal(signer->agent_key.data, env->signer_key.data, PK_PUBKEY_BYTES)) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_BAD_SIGNATURE, subj_signer, NULL,
                    "envelope is signed with a key that is not the registered key of '%s'",
                    env->signer_id);
        goto done;
    }
    /* the registered key is the named key, which the signature may have been checked
     * against already (not if that check could not be made) */
    if (sig != PK_OK &&
        (sig == PK_EBADSIG || pk_envelope_verify(env, signer->agent_key.data) != PK_OK)) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_BAD_SIGNATURE, subj_signer, NULL,
                    "signature of '%s' does not verify: the envelope was altered or signed "
                    "with another key",
                    env->signer_id);
        goto done;
    }
    if (!batch) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_MALFORMED, subj_signer, NULL,
                    "signed payload is not an EventBatch");
        goto done;
    }
    if (batch->n_events == 0 || batch->n_events > PK_BATCH_MAX) {
        st = reject(in, e, -1, PACTUM__V1__REASON__REASON_INVALID_FIELD, subj_signer, NULL,
                    "a batch holds 1 to %d events, this one %zu", PK_BATCH_MAX, batch->n_events);
        goto done;
    }
    /* the signature is checked first: nobody can spend another signer's allowance */
    if (!pk_ratelimit_take(in->rate, env->signer_id, batch->n_events, pk_mono_ms())) {
        st = rate_limited(in, e, env->signer_id, batch->n_events);
        goto done;
    }
    for (size_t i = 0; i < batch->n_events && st == PK_OK; i++)
        st = handle_event(in, txn, e, (int)i, batch->events[i], signer, registry_seq);
done:
    if (batch)
        pactum__v1__event_batch__free_unpacked(batch, NULL);
    if (signer)
        pactum__v1__agent_record__free_unpacked(signer, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);
    return st;
}

/*
 * A signer registered a moment ago (perhaps through another instance) may not
 * be in the copy yet: look once more before refusing anyone. Refusing a
 * signer that is registered would be wrong and final: if the copy cannot be
 * brought up to date, the batch is not judged yet.
 */
static pk_status refresh_if_missing(ingest *in, natsMsgList *list)
{
    MDB_txn *txn = NULL;
    bool missing = false;

    if (pk_txn_begin(in->store, false, &txn) != PK_OK)
        return PK_OK; /* the batch's own transaction will say what is wrong */
    for (int i = 0; i < list->Count && !missing; i++) {
        const char *signer = pk_subject_last_token(natsMsg_GetSubject(list->Msgs[i]));
        MDB_val v;
        missing = pk_get(txn, in->reg->agents, signer, strlen(signer), &v) == PK_ENOTFOUND;
    }
    pk_txn_abort(txn);
    return missing ? pk_registry_refresh(in->reg, 100) : PK_OK;
}

/* Where, when and what an envelope of the batch is. */
static void envelope_of(natsMsg *m, env_ctx *e)
{
    jsMsgMetaData *meta = NULL;

    memset(e, 0, sizeof(*e));
    e->msg = m;
    e->subject = natsMsg_GetSubject(m);
    e->data = (const uint8_t *)natsMsg_GetData(m);
    e->len = (size_t)natsMsg_GetDataLength(m);
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        e->seq = meta->Sequence.Stream;
        e->received_ms = meta->Timestamp / 1000000;
        jsMsgMetaData_Destroy(meta);
    } else {
        e->received_ms = pk_now_ms();
    }
}

/* Once the batch is stored: each publisher that asked hears what became of its envelope. */
static void send_receipts(ingest *in, natsMsgList *list, opened *op)
{
    for (int i = 0; i < list->Count; i++) {
        Pactum__V1__EnvelopeReceipt r = PACTUM__V1__ENVELOPE_RECEIPT__INIT;
        env_ctx e;
        char subject[128];
        uint8_t *buf = NULL;
        size_t len = 0;
        if (!op[i].rc.want)
            continue;
        envelope_of(list->Msgs[i], &e);
        r.raw_seq = e.seq;
        r.signer_id = (char *)pk_subject_last_token(e.subject);
        r.accepted = op[i].rc.accepted;
        r.refused = op[i].rc.refused;
        r.n_refused = op[i].rc.n_refused;
        snprintf(subject, sizeof(subject), PK_SUBJ_INGEST_RECEIPT, r.signer_id);
        if (pk_pack(&r.base, &buf, &len) == PK_OK)
            natsConnection_Publish(in->bus->nc, subject, buf, (int)len);
        free(buf);
        receipt_free(&op[i].rc);
    }
}

pk_status ingest_process(void *ctx, natsMsgList *list)
{
    ingest *in = ctx;
    MDB_txn *txn = NULL;
    opened *op = NULL;
    uint64_t registry_seq;
    pk_status st;

    /* the next batch, if one waits, is read now and checked while this one is applied */
    pk_runner_read_ahead(&in->runner);
    op = take_prepared(in, list);
    if ((st = pk_registry_sync_if_dirty(in->reg)) != PK_OK)
        PK_WARN("registry sync: %s", pk_error_msg());
    if ((st = refresh_if_missing(in, list)) != PK_OK)
        goto retry;
    registry_seq = pk_registry_seq(in->reg);
    if (!op) {
        opening g;
        if (!(op = calloc((size_t)list->Count + 1, sizeof(*op))))
            return PK_ERR(PK_ENOMEM, "cannot allocate a batch of %d envelopes", list->Count);
        open_start(in, &g, list, op, 1); /* the first range on this thread */
        open_finish(&g);
    }
    /* judged under a read transaction; the event ids are written once the bus has the events */
    if ((st = pk_txn_begin(in->store, false, &txn)) != PK_OK)
        goto retry;
    pk_bus_publish_reset(in->bus);
    for (int i = 0; i < list->Count && st == PK_OK; i++) {
        env_ctx e;
        envelope_of(list->Msgs[i], &e);
        e.rc = &op[i].rc;
        pk_metric_add(&in->m[M_ENVELOPES], 1);
        st = handle_envelope(in, txn, &e, registry_seq, &op[i]);
    }
    pk_txn_abort(txn);
    txn = NULL;
    if (st != PK_OK || (st = pk_bus_publish_wait(in->bus, 10000)) != PK_OK ||
        (st = pk_wset_commit(in->ws, in->store)) != PK_OK)
        goto retry;
    pk_consumer_ack(&in->raw, list);
    send_receipts(in, list, op);
    free(op);
    return PK_OK;
retry:
    pk_txn_abort(txn);
    pk_wset_clear(in->ws);
    opened_free(op, list->Count); /* opened and judged again when the batch comes again */
    return st;
}

pk_status ingest_idle(void *ctx, bool caught_up)
{
    ingest *in = ctx;
    int64_t now = pk_mono_ms();
    pk_status st = PK_OK;

    if (now >= in->next_prune_ms) {
        in->next_prune_ms = now + 60000;
        if ((st = ingest_prune(in, pk_now_ms())) != PK_OK)
            return PK_WRAP(st, "dedup prune");
    }
    if (caught_up && (st = pk_registry_sync_if_dirty(in->reg)) != PK_OK)
        return PK_WRAP(st, "registry sync");
    return PK_OK;
}

pk_status ingest_prune(ingest *in, int64_t now_ms)
{
    uint64_t cutoff = (uint64_t)(now_ms - in->cfg->max_age_ms - PRUNE_MARGIN_MS);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, n = 0;
    pk_status st;

    if ((st = pk_txn_begin(in->store, true, &txn)) != PK_OK)
        return st;
    if ((rc = mdb_cursor_open(txn, in->dedup_time, &cur)) != 0) {
        pk_txn_abort(txn);
        return pk_store_err(rc, "dedup cursor");
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && n < PRUNE_MAX && k.mv_size > 8 && pk_be64_get(k.mv_data) < cutoff) {
        if ((st = pk_del(txn, in->dedup, (uint8_t *)k.mv_data + 8, k.mv_size - 8)) != PK_OK)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            st = pk_store_err(rc, "dedup prune");
            break;
        }
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(cur);
    if (st != PK_OK) {
        pk_txn_abort(txn);
        return st;
    }
    if ((st = pk_txn_commit(txn)) == PK_OK)
        pk_metric_add(&in->m[M_DEDUP_PRUNED], n);
    return st;
}
