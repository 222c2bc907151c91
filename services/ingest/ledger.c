/*
 * ledger - ingest's account of each agent's governance records: the disputes
 * open and the overrides not yet expired, so that a record that would exceed
 * a limit, or a ruling that names no open dispute, is refused with a reason
 * instead of being dropped or evicting another later.
 *
 * The records themselves are the truth: PACTUM_VERDICTS, subject
 * pactum.verdicts.<p>.<agent>.g. The ledger in LMDB is a cache of them up to a
 * stream sequence; before deciding, ingest reads what was added since (by
 * every instance), and it stores a record only if the subject's last sequence
 * is still the one it read (the bus checks), so two instances cannot both
 * admit the record that exceeds a limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pk/clock.h"
#include "pk/log.h"

#define LEDGER_READ_MAX 100000 /* records read to catch up, at most (bounded) */

static void entries_free(Pactum__V1__LedgerEntry **e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pactum__v1__ledger_entry__free_unpacked(e[i], NULL);
    free(e);
}

void ledger_free(Pactum__V1__GovLedger *l)
{
    if (!l)
        return;
    entries_free(l->disputes, l->n_disputes);
    entries_free(l->overrides, l->n_overrides);
    entries_free(l->engagements, l->n_engagements);
    l->disputes = l->overrides = l->engagements = NULL;
    l->n_disputes = l->n_overrides = l->n_engagements = 0;
    free(l);
}

/* Append an entry (copies of the strings) to a list; false if out of memory. */
static bool add_entry(Pactum__V1__LedgerEntry ***list, size_t *n, const char *id, const char *by,
                      int64_t expires_ms)
{
    Pactum__V1__LedgerEntry *e = malloc(sizeof(*e));
    Pactum__V1__LedgerEntry **more = realloc(*list, (*n + 1) * sizeof(**list));

    if (!e || !more) {
        free(e);
        if (more)
            *list = more;
        return false;
    }
    *list = more;
    pactum__v1__ledger_entry__init(e);
    e->id = strdup(id);
    e->by = strdup(by);
    e->expires_ms = expires_ms;
    if (!e->id || !e->by) {
        free(e->id);
        free(e->by);
        free(e);
        return false;
    }
    (*list)[(*n)++] = e;
    return true;
}

static void remove_at(Pactum__V1__LedgerEntry **list, size_t *n, size_t i)
{
    pactum__v1__ledger_entry__free_unpacked(list[i], NULL);
    memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof(*list));
    (*n)--;
}

int ledger_find(Pactum__V1__LedgerEntry *const *list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i]->id, id) == 0)
            return (int)i;
    }
    return -1;
}

size_t ledger_count_by(Pactum__V1__LedgerEntry *const *list, size_t n, const char *by)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += strcmp(list[i]->by, by) == 0;
    return k;
}

Pactum__V1__Engagement *ledger_offer(const Pactum__V1__EngagementAcceptance *a,
                                     pk_signed_msg **env_out)
{
    pk_signed_msg *env = NULL;
    Pactum__V1__Engagement *o = NULL;

    if (env_out)
        *env_out = NULL;
    if (pk_envelope_open(a->offer.data, a->offer.len, &env) != PK_OK)
        return NULL;
    if (env->type == PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT)
        o = pactum__v1__engagement__unpack(NULL, env->payload.len, env->payload.data);
    if (o && env_out)
        *env_out = env;
    else
        pactum__v1__signed__free_unpacked(env, NULL);
    return o;
}

size_t ledger_open_engagements(const Pactum__V1__GovLedger *l, int64_t now)
{
    size_t k = 0;

    for (size_t i = 0; i < l->n_engagements; i++)
        k += !l->engagements[i]->done && l->engagements[i]->expires_ms > now;
    return k;
}

/* Copy what the ledger says of engagement id into the caller's fields; false if it has none. */
static bool engagement_of(const Pactum__V1__GovLedger *l, const char *id, ledger_eng *out)
{
    int at = l ? ledger_find(l->engagements, l->n_engagements, id) : -1;

    if (at < 0)
        return false;
    snprintf(out->buyer, sizeof(out->buyer), "%s", l->engagements[at]->by);
    out->deadline_ms = l->engagements[at]->expires_ms;
    out->done = l->engagements[at]->done;
    return true;
}

pk_status ledger_engagement(ingest *in, const char *agent, const char *id, bool newest,
                            ledger_eng *out)
{
    Pactum__V1__GovLedger *l = NULL;
    MDB_txn *txn = NULL;
    pk_status st;
    bool found;

    /* the stored ledger first (no bus round trip): enough unless the newest is asked for and
     * the stored one says the job still runs (a completion may have come since) */
    if (pk_txn_begin(in->store, false, &txn) == PK_OK) {
        if (pk_get_msg(txn, in->ledger, agent, strlen(agent), &pactum__v1__gov_ledger__descriptor,
                       (ProtobufCMessage **)&l) != PK_OK)
            l = NULL;
        pk_txn_abort(txn);
    }
    found = engagement_of(l, id, out);
    ledger_free(l);
    if (found && (!newest || out->done || out->deadline_ms <= pk_now_ms()))
        return PK_OK;
    l = NULL;
    pthread_mutex_lock(&in->gov_lock);
    st = ledger_load(in, agent, &l);
    found = st == PK_OK && engagement_of(l, id, out);
    if (st == PK_OK && ledger_store(in, agent, l) != PK_OK)
        PK_WARN("ledger of %s not kept: %s", agent, pk_error_msg());
    pthread_mutex_unlock(&in->gov_lock);
    ledger_free(l);
    if (st == PK_OK && !found)
        return PK_ENOTFOUND;
    return st;
}

void ledger_prune(Pactum__V1__GovLedger *l, int64_t now)
{
    for (size_t i = l->n_overrides; i-- > 0;) {
        if (l->overrides[i]->expires_ms <= now)
            remove_at(l->overrides, &l->n_overrides, i);
    }
}

bool ledger_apply(Pactum__V1__GovLedger *l, const Pactum__V1__GovernanceRecord *rec, uint64_t seq)
{
    int at;

    l->subject_seq = seq;
    switch (rec->record_case) {
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE:
        if (ledger_find(l->disputes, l->n_disputes, rec->dispute->dispute_id) >= 0)
            return true;
        return add_entry(&l->disputes, &l->n_disputes, rec->dispute->dispute_id,
                         rec->dispute->opened_by, 0);
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING:
        if ((at = ledger_find(l->disputes, l->n_disputes, rec->ruling->dispute_id)) >= 0)
            remove_at(l->disputes, &l->n_disputes, (size_t)at);
        return true;
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_OVERRIDE:
        if (ledger_find(l->overrides, l->n_overrides, rec->override->override_id) >= 0)
            return true;
        return add_entry(&l->overrides, &l->n_overrides, rec->override->override_id,
                         rec->override->operator_id, rec->override->expires_ms);
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_ENGAGEMENT: {
        Pactum__V1__Engagement *o = ledger_offer(rec->engagement, NULL);
        bool ok = true;
        if (o && ledger_find(l->engagements, l->n_engagements, o->engagement_id) < 0)
            ok = add_entry(&l->engagements, &l->n_engagements, o->engagement_id, o->buyer_id,
                           o->deadline_ms);
        if (o)
            pactum__v1__engagement__free_unpacked(o, NULL);
        return ok;
    }
    case PACTUM__V1__GOVERNANCE_RECORD__RECORD_COMPLETION:
        if ((at = ledger_find(l->engagements, l->n_engagements, rec->completion->engagement_id)) >=
            0)
            l->engagements[at]->done = true;
        return true;
    default:
        return true;
    }
}

/* The cached ledger of agent, or an empty one. */
static Pactum__V1__GovLedger *cached(ingest *in, const char *agent)
{
    Pactum__V1__GovLedger *l = NULL;
    MDB_txn *txn = NULL;

    if (pk_txn_begin(in->store, false, &txn) == PK_OK) {
        if (pk_get_msg(txn, in->ledger, agent, strlen(agent), &pactum__v1__gov_ledger__descriptor,
                       (ProtobufCMessage **)&l) != PK_OK)
            l = NULL;
        pk_txn_abort(txn);
    }
    if (!l && (l = calloc(1, sizeof(*l))))
        pactum__v1__gov_ledger__init(l);
    return l;
}

pk_status ledger_load(ingest *in, const char *agent, Pactum__V1__GovLedger **out)
{
    Pactum__V1__GovLedger *l = cached(in, agent);
    char subject[160];
    jsDirectGetMsgOptions dg;
    jsOptions jo;
    pk_status st = PK_OK;

    *out = NULL;
    if (!l)
        return PK_ERR(PK_ENOMEM, "out of memory");
    snprintf(subject, sizeof(subject), PK_SUBJ_GOVERNANCE, pk_partition_of(agent, in->partitions),
             agent);
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    /* what every instance added since: the next record on the subject, one at a time */
    for (int i = 0; i < LEDGER_READ_MAX; i++) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        Pactum__V1__GovernanceRecord *rec;
        uint64_t seq = 0;
        natsStatus s;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = l->subject_seq + 1;
        dg.NextBySubject = subject;
        s = js_DirectGetMsg(&m, in->bus->js, PK_STREAM_VERDICTS, &jo, &dg);
        if (s == NATS_NOT_FOUND)
            break; /* caught up */
        if (s != NATS_OK) {
            st = pk_nats_err(s, jerr, "reading the agent's governance records");
            break;
        }
        {
            const char *hv = NULL;
            if (natsMsgHeader_Get(m, "Nats-Sequence", &hv) == NATS_OK && hv)
                seq = strtoull(hv, NULL, 10);
        }
        rec = pactum__v1__governance_record__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                    (const uint8_t *)natsMsg_GetData(m));
        natsMsg_Destroy(m);
        if (!seq || seq <= l->subject_seq) {
            if (rec)
                pactum__v1__governance_record__free_unpacked(rec, NULL);
            st = PK_ERR(PK_EBUS, "a governance record of %s came without its sequence", agent);
            break;
        }
        if (!rec) {
            l->subject_seq = seq; /* not a record the scorer will apply either */
            continue;
        }
        if (!ledger_apply(l, rec, seq))
            st = PK_ERR(PK_ENOMEM, "out of memory");
        pactum__v1__governance_record__free_unpacked(rec, NULL);
        if (st != PK_OK)
            break;
    }
    if (st != PK_OK) {
        ledger_free(l);
        return st;
    }
    *out = l;
    return PK_OK;
}

pk_status ledger_store(ingest *in, const char *agent, const Pactum__V1__GovLedger *l)
{
    MDB_txn *txn = NULL;
    pk_status st = pk_txn_begin(in->store, true, &txn);

    if (st == PK_OK)
        st = pk_put_msg(txn, in->ledger, agent, strlen(agent), &l->base);
    if (st == PK_OK)
        st = pk_txn_commit(txn);
    else
        pk_txn_abort(txn);
    return st;
}
