#include "clause.h"

#include <string.h>

static uint64_t fnv_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t pk_clause_fingerprint(const pk_clause *c)
{
    uint64_t h = 14695981039346656037ull;
    int32_t kind = c->kind, agg = c->aggregate;

    h = fnv_bytes(h, &kind, sizeof(kind));
    h = fnv_bytes(h, &agg, sizeof(agg));
    h = fnv_bytes(h, &c->window_ms, sizeof(c->window_ms));
    h = fnv_bytes(h, &c->window_events, sizeof(c->window_events));
    if (c->metric)
        h = fnv_bytes(h, c->metric, strlen(c->metric));
    return h;
}

void pk_clause_state_init(pk_clause_state *s, const pk_clause *c)
{
    memset(s, 0, sizeof(*s));
    s->magic = PK_CLAUSE_STATE_MAGIC;
    s->fingerprint = pk_clause_fingerprint(c);
    pk_window_init(&s->win, c->window_ms ? c->window_ms : (int64_t)c->window_events);
}

/* Position of a sample: event time, or the running event count. */
static int64_t position(const pk_clause *c, const pk_clause_state *s, const pk_event_msg *ev)
{
    return c->window_ms ? ev->ts_ms : s->win.events;
}

/* Where the window is read from after a sample at pos. */
static int64_t read_at(const pk_clause *c, const pk_clause_state *s, int64_t pos)
{
    if (c->window_ms)
        return pos > s->win.newest ? pos : s->win.newest;
    return s->win.events - 1;
}

void pk_clause_judge(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, uint64_t seq,
                     uint32_t report_every, pk_judgement *out)
{
    unsigned src = (unsigned)ev->source < 5 ? (unsigned)ev->source : 0;
    pk_win_summary sum;
    int64_t pos;
    bool pass_now;

    memset(out, 0, sizeof(*out));
    if (c->weight[src] <= 0)
        return; /* evidence from this source does not count for this clause */
    if (c->when && !pk_pred_eval(c->when, ev))
        return;

    if (c->kind == PK_CLAUSE_OBJECTIVE) {
        double v = 1;
        if (c->aggregate != PK_AGG_COUNT && !pk_event_metric(ev, c->metric, &v))
            return; /* the event does not carry the metric */
        pos = position(c, s, ev);
        pk_window_add(&s->win, pos, v);
        pk_window_summary(&s->win, read_at(c, s, pos), &sum);
        out->observed = pk_window_aggregate(&sum, c->aggregate);
        out->threshold = c->threshold;
        out->samples = sum.count;
        if (sum.count < c->min_samples) {
            out->outcome = PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT;
        } else {
            pass_now = pk_op_holds(c->op, out->observed, c->threshold);
            out->outcome = pass_now ? PACTUM__V1__OUTCOME__OUTCOME_PASS
                                    : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
            if (pass_now)
                s->pass[src]++;
            else
                s->fail[src]++;
        }
    } else {
        bool match = pk_pred_eval(c->match, ev);
        pos = position(c, s, ev);
        /* The window counts occurrences; last-N windows advance on every event. */
        if (match || !c->window_ms)
            pk_window_add(&s->win, pos, match ? 1 : 0);
        pk_window_summary(&s->win, read_at(c, s, pos), &sum);
        out->observed = (double)sum.trues;
        out->threshold = c->max_count;
        out->samples = sum.count;
        out->violation = match && sum.trues > c->max_count;
        out->outcome = sum.trues > c->max_count ? PACTUM__V1__OUTCOME__OUTCOME_FAIL
                                                : PACTUM__V1__OUTCOME__OUTCOME_PASS;
        /* Each event counts once: a violation is one failure, not a failure for
         * every later event while it stays in the window. */
        if (out->violation)
            s->fail[src]++;
        else
            s->pass[src]++;
    }
    out->relevant = true;
    s->since_verdict++;
    if (ev->ts_ms > s->last_ts_ms)
        s->last_ts_ms = ev->ts_ms;
    s->last_seq = seq;
    out->verdict_due = out->violation || (int32_t)out->outcome != s->last_outcome ||
                       s->since_verdict >= report_every;
}

void pk_clause_state_reported(pk_clause_state *s, Pactum__V1__Outcome outcome)
{
    memset(s->pass, 0, sizeof(s->pass));
    memset(s->fail, 0, sizeof(s->fail));
    s->since_verdict = 0;
    s->last_outcome = (int32_t)outcome;
}
