/*
 * What every answer reads (the agent, its stored report, its pacts and
 * governance, its violations), how answers are signed, and the table of
 * request-reply subjects.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/log.h"

void oracle_count(oracle *o, int metric)
{
    pk_metric_add(&o->m[metric], 1);
}

/* Is agent registered, or known to the read model? */
static bool agent_known(oracle *o, MDB_txn *txn, const char *agent)
{
    Pactum__V1__AgentRecord *a = NULL;
    MDB_val v;

    if (pk_registry_agent(o->reg, txn, agent, &a, NULL) == PK_OK) {
        bool is_agent = a->role == PACTUM__V1__ROLE__ROLE_AGENT;
        pactum__v1__agent_record__free_unpacked(a, NULL);
        return is_agent;
    }
    return pk_get(txn, o->reports, agent, strlen(agent), &v) == PK_OK;
}

pk_status oracle_begin_for(oracle *o, const char *agent, MDB_txn **txn, bool *known)
{
    pk_status st;

    if ((st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return st;
    *known = agent_known(o, *txn, agent);
    if (*known)
        return PK_OK;
    pk_txn_abort(*txn);
    *txn = NULL;
    if ((st = pk_registry_refresh(o->reg, 50)) != PK_OK ||
        (st = pk_txn_begin(o->store, false, txn)) != PK_OK)
        return st;
    *known = agent_known(o, *txn, agent);
    return PK_OK;
}

bool oracle_refuse(oracle *o, oracle_reply *r, Pactum__V1__QueryStatus status, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    if (status == Q_BAD)
        oracle_count(o, OM_BAD);
    else if (status == Q_UNKNOWN)
        oracle_count(o, OM_UNKNOWN);
    else if (status == Q_UNAUTHORIZED)
        oracle_count(o, OM_UNAUTHORIZED);
    else if (status == Q_RATE_LIMITED)
        oracle_count(o, OM_RATE_LIMITED);
    return false;
}

bool oracle_agent_txn(oracle *o, oracle_reply *r, const char *what, const char *agent,
                      MDB_txn **txn)
{
    bool known = false;

    if (!agent || pk_id_check("agent id", agent) != PK_OK)
        return oracle_refuse(o, r, Q_BAD, "%s", agent ? pk_error_msg() : what);
    if (oracle_begin_for(o, agent, txn, &known) != PK_OK)
        return oracle_refuse(o, r, Q_UNAVAILABLE, "read model unavailable: %s", pk_error_msg());
    if (!known)
        return oracle_refuse(o, r, Q_UNKNOWN, "unknown agent: '%s' is not registered", agent);
    return true;
}

const Pactum__V1__TrustState *oracle_state_of(Pactum__V1__TrustReport *stored,
                                              Pactum__V1__TrustState *initial, const char *agent)
{
    if (stored && stored->state)
        return stored->state;
    pactum__v1__trust_state__init(initial);
    initial->agent_id = (char *)agent;
    initial->tier = PACTUM__V1__TIER__TIER_WATCH;
    return initial;
}

Pactum__V1__TrustReport *oracle_stored_report(oracle *o, MDB_txn *txn, const char *agent)
{
    Pactum__V1__TrustReport *r = NULL;

    if (pk_get_msg(txn, o->reports, agent, strlen(agent), &pactum__v1__trust_report__descriptor,
                   (ProtobufCMessage **)&r) != PK_OK)
        return NULL;
    return r;
}

void oracle_pacts_free(Pactum__V1__PactRef **refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(refs[i]->pact_id);
        free(refs[i]->hash.data);
        free(refs[i]);
    }
}

size_t oracle_pacts_of(oracle *o, MDB_txn *txn, const char *agent, Pactum__V1__PactRef **refs,
                       size_t max)
{
    char **ids = NULL;
    size_t n_ids = 0, n = 0;

    if (pk_registry_agent_pacts(o->reg, txn, agent, &ids, &n_ids) != PK_OK)
        return 0;
    for (size_t i = 0; i < n_ids && n < max; i++) {
        Pactum__V1__PactRecord *rec = NULL;
        uint64_t seq = 0;
        Pactum__V1__PactRef *r;
        if (pk_registry_pact(o->reg, txn, ids[i], 0, 0, &rec, &seq) != PK_OK)
            continue;
        if ((r = malloc(sizeof(*r)))) {
            pactum__v1__pact_ref__init(r);
            r->pact_id = strdup(rec->pact_id);
            r->version = rec->version;
            r->registered_ms = rec->registered_ms;
            r->hash.data = malloc(rec->hash.len ? rec->hash.len : 1);
            if (r->pact_id && r->hash.data) {
                memcpy(r->hash.data, rec->hash.data, rec->hash.len);
                r->hash.len = rec->hash.len;
                refs[n++] = r;
            } else {
                free(r->pact_id);
                free(r->hash.data);
                free(r);
            }
        }
        pactum__v1__pact_record__free_unpacked(rec, NULL);
    }
    pk_registry_ids_free(ids, n_ids);
    return n;
}

static pk_governance defaults;                           /* when no pact has a governance section */
static pthread_once_t defaults_once = PTHREAD_ONCE_INIT; /* they are set once */

static void defaults_init(void)
{
    pk_governance_defaults(&defaults);
}

const pk_governance *oracle_governance_of(oracle *o, MDB_txn *txn, const Pactum__V1__TrustState *s,
                                          const pk_compiled **held)
{
    *held = NULL;
    pthread_once(&defaults_once, defaults_init);
    if (s && s->governance_pact && s->governance_pact[0] &&
        pk_pact_cache_get(o->pacts, txn, s->governance_pact, s->governance_version, held) ==
            PK_OK &&
        (*held)->pact->gov.present)
        return &(*held)->pact->gov;
    pk_pact_cache_release(o->pacts, *held);
    *held = NULL;
    return &defaults;
}

pk_status oracle_seal(oracle *o, Pactum__V1__PayloadType type, const ProtobufCMessage *m,
                      uint8_t **out, size_t *len)
{
    return pk_answer_seal(type, m, &o->kp, out, len);
}

/* The verdicts a ruling took out of agent's score, from its stored report. */
static size_t overturned_of(oracle *o, MDB_txn *txn, const char *agent, uint64_t *out, size_t max)
{
    Pactum__V1__TrustReport *r = NULL;
    size_t n = 0;

    if (pk_get_msg(txn, o->reports, agent, strlen(agent), &pactum__v1__trust_report__descriptor,
                   (ProtobufCMessage **)&r) != PK_OK)
        return 0;
    for (size_t i = 0; r->state && i < r->state->n_overturned && n < max; i++)
        out[n++] = r->state->overturned[i];
    pactum__v1__trust_report__free_unpacked(r, NULL);
    return n;
}

void oracle_count_violations(oracle *o, MDB_txn *txn, const char *agent, const int64_t *since_ms,
                             int n_windows, uint64_t (*counts)[PK_SEVERITIES])
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t start[PK_ID_MAX + 1];
    size_t al = agent ? strlen(agent) : 0;
    char current[PK_ID_MAX + 1] = "";
    uint64_t over[64];
    size_t n_over = 0;
    int rc;

    memset(counts, 0, (size_t)n_windows * sizeof(*counts));
    if (mdb_cursor_open(txn, o->violations, &cur) != 0)
        return;
    if (agent) {
        memcpy(start, agent, al);
        start[al] = 0;
        k.mv_size = al + 1;
        k.mv_data = start;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kb = k.mv_data;
        size_t kal = k.mv_size >= 17 ? k.mv_size - 17 : 0;
        int64_t at;
        uint64_t vseq;
        bool out = false;
        if (k.mv_size < 18 || kb[kal] != 0 || v.mv_size != 1)
            continue;
        if (agent && (kal != al || memcmp(kb, agent, al) != 0))
            break;
        if (kal != strlen(current) || memcmp(kb, current, kal) != 0) {
            snprintf(current, sizeof(current), "%.*s", (int)kal, (const char *)kb);
            n_over = overturned_of(o, txn, current, over, 64);
        }
        at = (int64_t)pk_be64_get(kb + kal + 1);
        vseq = pk_be64_get(kb + kal + 9);
        for (size_t i = 0; i < n_over; i++)
            out |= over[i] == vseq;
        for (int w = 0; w < n_windows && !out && *(const uint8_t *)v.mv_data < PK_SEVERITIES; w++) {
            if (at >= since_ms[w])
                counts[w][*(const uint8_t *)v.mv_data]++;
        }
    }
    mdb_cursor_close(cur);
}

size_t oracle_severity_list(const uint64_t counts[PK_SEVERITIES],
                            Pactum__V1__SeverityCount store[PK_SEVERITIES],
                            Pactum__V1__SeverityCount *ptrs[PK_SEVERITIES])
{
    size_t n = 0;

    for (int sev = 5; sev >= 1; sev--) {
        if (!counts[sev])
            continue;
        pactum__v1__severity_count__init(&store[n]);
        store[n].severity = (Pactum__V1__Severity)sev;
        store[n].count = counts[sev];
        ptrs[n] = &store[n];
        n++;
    }
    return n;
}

/*
 * The request-reply subjects, their answers, and how many subscriptions (so
 * threads: the client library delivers each subscription's messages on its
 * own thread) answer each at once. Authorize may wait on the bus before it
 * answers (the evaluator's clause states, an approval's use stored), so it
 * has more threads to wait on; its decision's record is not waited for.
 */
static const pk_route routes[] = {
    {PK_SUBJ_ORACLE_TRUST, "oracle", 4, oracle_answer_trust},
    {PK_SUBJ_ORACLE_PACT, "oracle", 2, oracle_answer_pact},
    {PK_SUBJ_ORACLE_AUTHORIZE, "oracle", 16, oracle_answer_authorize},
    {PK_SUBJ_ORACLE_EVIDENCE, "oracle", 2, oracle_answer_evidence},
    {PK_SUBJ_ORACLE_ATTEST, "oracle", 2, oracle_answer_attest},
    {PK_SUBJ_ORACLE_ENGAGEMENTS, "oracle", 2, oracle_answer_engagements},
    {PK_SUBJ_ORACLE_FIGURES, "oracle", 2, oracle_answer_figures},
    {PK_SUBJ_ORACLE_LOG, "oracle", 2, oracle_answer_log},
};

pk_status oracle_queries_start(oracle *o)
{
    return pk_responders_start(&o->answers, o->bus, routes, sizeof(routes) / sizeof(routes[0]), o);
}
