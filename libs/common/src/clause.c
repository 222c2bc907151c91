#include "pk/clause.h"

#include <stdio.h>
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
    int32_t kind = c->kind, agg = c->aggregate, pct = c->aggregate == PK_AGG_PERCENTILE;

    h = fnv_bytes(h, &kind, sizeof(kind));
    h = fnv_bytes(h, &pct, sizeof(pct));
    h = fnv_bytes(h, &c->window_ms, sizeof(c->window_ms));
    h = fnv_bytes(h, &c->window_events, sizeof(c->window_events));
    if (c->kind == PK_CLAUSE_OBJECTIVE && !pct)
        h = fnv_bytes(h, &agg, sizeof(agg));
    if (c->metric)
        h = fnv_bytes(h, c->metric, strlen(c->metric));
    if (c->of)
        h = fnv_bytes(h, c->of, strlen(c->of));
    for (size_t k = 0; k < c->n_burn; k++) {
        h = fnv_bytes(h, &c->burn[k].long_ms, sizeof(c->burn[k].long_ms));
        h = fnv_bytes(h, &c->burn[k].short_ms, sizeof(c->burn[k].short_ms));
    }
    return h;
}

static uint32_t windows_of(const pk_clause *c)
{
    switch (c->kind) {
    case PK_CLAUSE_OBJECTIVE:
        return c->aggregate == PK_AGG_RATIO ? 2 : 1 + 2 * (uint32_t)c->n_burn;
    case PK_CLAUSE_FORBIDDEN:
        return 1;
    case PK_CLAUSE_SCOPE:
        return c->per_window > 0 ? 1 : 0;
    case PK_CLAUSE_FRESHNESS:
        return 0;
    }
    return 0;
}

void pk_clause_state_init(pk_clause_state *s, const pk_clause *c, int64_t since_ms)
{
    memset(&s->h, 0, sizeof(s->h));
    s->h.magic = PK_CLAUSE_STATE_MAGIC;
    s->h.fingerprint = pk_clause_fingerprint(c);
    s->h.since_ms = since_ms;
    s->h.n_windows = windows_of(c);
    s->h.has_sketch = c->kind == PK_CLAUSE_OBJECTIVE && c->aggregate == PK_AGG_PERCENTILE;
    pk_window_init(&s->win[0], c->window_ms ? c->window_ms : (int64_t)c->window_events);
    if (c->aggregate == PK_AGG_RATIO) /* [1]: the denominator, over the same window */
        pk_window_init(&s->win[1], c->window_ms ? c->window_ms : (int64_t)c->window_events);
    for (size_t k = 0; k < c->n_burn; k++) {
        pk_window_init(&s->win[1 + 2 * k], c->burn[k].long_ms);
        pk_window_init(&s->win[2 + 2 * k], c->burn[k].short_ms);
    }
    pk_sketch_init(&s->sketch);
}

void pk_clause_state_release(pk_clause_state *s)
{
    pk_sketch_free(&s->sketch);
}

size_t pk_clause_state_size(const pk_clause_state *s)
{
    size_t n = sizeof(s->h);

    for (uint32_t i = 0; i < s->h.n_windows; i++)
        n += pk_window_packed_size(&s->win[i]);
    return n + (s->h.has_sketch ? pk_sketch_size(&s->sketch) : 0);
}

void pk_clause_state_write(const pk_clause_state *s, uint8_t *buf)
{
    memcpy(buf, &s->h, sizeof(s->h));
    buf += sizeof(s->h);
    for (uint32_t i = 0; i < s->h.n_windows; i++) {
        pk_window_pack(&s->win[i], buf);
        buf += pk_window_packed_size(&s->win[i]);
    }
    if (s->h.has_sketch)
        pk_sketch_write(&s->sketch, buf);
}

pk_status pk_clause_state_read(pk_clause_state *s, const uint8_t *buf, size_t len)
{
    size_t off;

    pk_sketch_init(&s->sketch);
    if (len < sizeof(s->h))
        goto bad;
    memcpy(&s->h, buf, sizeof(s->h));
    if ((s->h.magic != PK_CLAUSE_STATE_MAGIC && s->h.magic != PK_CLAUSE_STATE_MAGIC_V2) ||
        s->h.n_windows > PK_CLAUSE_WINDOWS)
        goto bad;
    off = sizeof(s->h);
    for (uint32_t i = 0; i < s->h.n_windows; i++) {
        if (s->h.magic == PK_CLAUSE_STATE_MAGIC_V2) {
            /* an older evaluator's state: windows as they were in memory */
            if (len - off < sizeof(pk_window))
                goto bad;
            memcpy(&s->win[i], buf + off, sizeof(pk_window));
            off += sizeof(pk_window);
        } else {
            size_t n = pk_window_unpack(&s->win[i], buf + off, len - off);
            if (n == 0)
                goto bad;
            off += n;
        }
    }
    s->h.magic = PK_CLAUSE_STATE_MAGIC;
    if (s->h.has_sketch) {
        size_t rest = len - off;
        if (pk_sketch_read(&s->sketch, buf + off, rest) != rest)
            goto bad;
    } else if (len != off) {
        goto bad;
    }
    return PK_OK;
bad:
    memset(&s->h, 0, sizeof(s->h));
    pk_sketch_init(&s->sketch);
    return PK_EDECODE;
}

/* Where a window of clause c is read after a sample at pos. */
static int64_t read_at(const pk_window *w, bool by_events, int64_t pos)
{
    if (by_events)
        return w->events - 1;
    return pos > w->newest ? pos : w->newest;
}

static void tally(pk_clause_state *s, unsigned src, bool pass)
{
    if (pass)
        s->h.pass[src]++;
    else
        s->h.fail[src]++;
}

/* Burn-rate triggers: classify the event good or bad, update both windows of
 * every trigger, and note the triggers that started or stopped firing. */
static void judge_burn(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, double v,
                       pk_judgement *out)
{
    double bad = pk_op_holds(c->op, v, c->threshold) ? 0 : 1, budget = 1 - c->target;

    for (size_t k = 0; k < c->n_burn; k++) {
        pk_window *lw = &s->win[1 + 2 * k], *sw = &s->win[2 + 2 * k];
        pk_win_summary ls, ss;
        double bl, bs;
        bool firing, was = (s->h.burning >> k) & 1;

        pk_window_add(lw, ev->ts_ms, bad);
        pk_window_add(sw, ev->ts_ms, bad);
        pk_window_summary(lw, read_at(lw, false, ev->ts_ms), &ls);
        pk_window_summary(sw, read_at(sw, false, ev->ts_ms), &ss);
        bl = ls.count ? ((double)ls.trues / (double)ls.count) / budget : 0;
        bs = ss.count ? ((double)ss.trues / (double)ss.count) / budget : 0;
        firing = ls.count >= c->min_samples && bl >= c->burn[k].factor && bs >= c->burn[k].factor;
        if (firing != was) {
            pk_burn_change *ch = &out->burn[out->n_burn++];
            ch->trigger = (int)k;
            ch->firing = firing;
            ch->burn_long = bl;
            ch->burn_short = bs;
            if (firing)
                s->h.burning |= 1u << k;
            else
                s->h.burning &= ~(1u << k);
        }
    }
}

/* errors / total over the window: numerator in win[0], denominator in win[1]. */
static bool judge_ratio(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev,
                        unsigned src, pk_judgement *out)
{
    double num = 0, den = 0;
    bool by_events = c->window_ms == 0;
    int64_t pos;
    pk_win_summary ns, ds;

    if (!pk_event_metric(ev, c->of, &den))
        return false; /* only events that carry the total count */
    if (!pk_event_metric(ev, c->metric, &num))
        num = 0;
    pos = by_events ? s->win[1].events : ev->ts_ms;
    pk_window_add(&s->win[0], pos, num);
    pk_window_add(&s->win[1], pos, den);
    pk_window_summary(&s->win[0], read_at(&s->win[0], by_events, pos), &ns);
    pk_window_summary(&s->win[1], read_at(&s->win[1], by_events, pos), &ds);
    out->observed = ds.sum > 0 ? ns.sum / ds.sum : 0;
    out->threshold = c->threshold;
    out->samples = ds.count;
    if (ds.count < c->min_samples || !(ds.sum > 0)) {
        out->outcome = PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT;
    } else {
        bool pass = pk_op_holds(c->op, out->observed, c->threshold);
        out->outcome = pass ? PACTUM__V1__OUTCOME__OUTCOME_PASS : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
        tally(s, src, pass);
    }
    return true;
}

static bool judge_objective(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev,
                            unsigned src, pk_judgement *out)
{
    double v = 1, q = pk_clause_quantile(c);
    bool by_events = c->window_ms == 0;
    int64_t pos, at;
    pk_win_summary sum;

    if (c->aggregate == PK_AGG_RATIO)
        return judge_ratio(c, s, ev, src, out);
    if (c->aggregate != PK_AGG_COUNT && !pk_event_metric(ev, c->metric, &v))
        return false; /* the event does not carry the metric */
    pos = by_events ? s->win[0].events : ev->ts_ms;
    if (pk_window_add(&s->win[0], pos, v) && q > 0)
        pk_sketch_add(&s->sketch, &s->win[0], pos, read_at(&s->win[0], by_events, pos), v);
    at = read_at(&s->win[0], by_events, pos);
    pk_window_summary(&s->win[0], at, &sum);
    if (q > 0) {
        pk_sketch_expire(&s->sketch, &s->win[0], at);
        out->observed = pk_sketch_quantile(&s->sketch, q);
    } else {
        out->observed = pk_window_aggregate(&sum, c->aggregate);
    }
    out->threshold = c->threshold;
    out->samples = sum.count;
    if (sum.count < c->min_samples) {
        out->outcome = PACTUM__V1__OUTCOME__OUTCOME_INSUFFICIENT;
    } else {
        bool pass = pk_op_holds(c->op, out->observed, c->threshold);
        out->outcome = pass ? PACTUM__V1__OUTCOME__OUTCOME_PASS : PACTUM__V1__OUTCOME__OUTCOME_FAIL;
        tally(s, src, pass);
    }
    if (c->n_burn && c->aggregate != PK_AGG_COUNT && c->aggregate != PK_AGG_SUM)
        judge_burn(c, s, ev, v, out);
    return true;
}

static bool judge_forbidden(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev,
                            unsigned src, pk_judgement *out)
{
    bool match, by_events = c->window_ms == 0;
    int64_t pos = by_events ? s->win[0].events : ev->ts_ms;
    pk_win_summary sum;

    /* An event outside the clause's domain neither breaks nor keeps it (a heartbeat is
     * no evidence that refunds stay small). */
    if (!pk_clause_applies(c, ev))
        return false;
    match = pk_pred_eval(c->match, ev);
    /* The window counts occurrences; last-N windows advance on every event it judges. */
    if (match || by_events)
        pk_window_add(&s->win[0], pos, match ? 1 : 0);
    pk_window_summary(&s->win[0], read_at(&s->win[0], by_events, pos), &sum);
    out->observed = (double)sum.trues;
    out->threshold = c->max_count;
    out->samples = sum.count;
    out->violation = match && sum.trues > c->max_count;
    if (out->violation)
        snprintf(out->why, sizeof(out->why), "%s: occurrence %llu in the window, allowed %u", c->id,
                 (unsigned long long)sum.trues, c->max_count);
    out->outcome = sum.trues > c->max_count ? PACTUM__V1__OUTCOME__OUTCOME_FAIL
                                            : PACTUM__V1__OUTCOME__OUTCOME_PASS;
    /* Each event counts once: a violation is one failure, not a failure for
     * every later event while it stays in the window. */
    tally(s, src, !out->violation);
    return true;
}

static bool judge_freshness(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev,
                            unsigned src, pk_judgement *out)
{
    int64_t arrived = ev->received_ms ? ev->received_ms : ev->ts_ms;

    if (c->evidence && !pk_pred_eval(c->evidence, ev))
        return false;
    /* Arrival time is the bus's, not the reporter's: an agent cannot keep a
     * clause fresh by writing timestamps in the future. */
    if (arrived > s->h.last_seen_ms)
        s->h.last_seen_ms = arrived;
    out->outcome = PACTUM__V1__OUTCOME__OUTCOME_PASS;
    out->observed = 0;
    out->threshold = (double)c->max_gap_ms;
    tally(s, src, true);
    return true;
}

static bool judge_scope(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev,
                        unsigned src, pk_judgement *out)
{
    bool relevant = false;

    out->threshold = 0;
    if (c->actions.n && ev->action[0]) {
        relevant = true;
        if (!pk_patterns_match(&c->actions, ev->action) && !out->violation) {
            out->violation = true;
            snprintf(out->why, sizeof(out->why), "action '%.64s' is outside the scope", ev->action);
        }
    }
    if (c->tools.n && ev->tool[0]) {
        relevant = true;
        if (!pk_patterns_match(&c->tools, ev->tool) && !out->violation) {
            out->violation = true;
            snprintf(out->why, sizeof(out->why), "tool '%.64s' is outside the scope", ev->tool);
        }
    }
    if (c->resources.n && ev->resource[0]) {
        relevant = true;
        if (!pk_patterns_match(&c->resources, ev->resource) && !out->violation) {
            out->violation = true;
            snprintf(out->why, sizeof(out->why), "resource '%.64s' is outside the scope",
                     ev->resource);
        }
    }
    if (c->currency[0] && ev->amount > 0) {
        relevant = true;
        out->observed = ev->amount;
        if (strcmp(ev->currency, c->currency) != 0) {
            if (!out->violation)
                snprintf(out->why, sizeof(out->why), "spends in '%.8s'; the pact allows %s only",
                         ev->currency, c->currency);
            out->violation = true;
        } else {
            if (c->per_action > 0 && ev->amount > c->per_action && !out->violation) {
                out->violation = true;
                out->threshold = c->per_action;
                snprintf(out->why, sizeof(out->why), "spends %g %s in one action; the limit is %g",
                         ev->amount, c->currency, c->per_action);
            }
            if (c->per_window > 0) {
                pk_win_summary sum;
                pk_window_add(&s->win[0], ev->ts_ms, ev->amount);
                pk_window_summary(&s->win[0], read_at(&s->win[0], false, ev->ts_ms), &sum);
                out->samples = sum.count;
                if (sum.sum > c->per_window && !out->violation) {
                    out->violation = true;
                    out->observed = sum.sum;
                    out->threshold = c->per_window;
                    snprintf(out->why, sizeof(out->why),
                             "spends %g %s within the window; the limit is %g", sum.sum,
                             c->currency, c->per_window);
                }
            }
            if (c->approval_above > 0 && ev->amount > c->approval_above) {
                /* done without a person's approval it breaks the scope; the evaluator keeps
                 * an "approval" label only if it names an approval the oracle granted */
                out->needs_approval = true;
                if (!pk_event_label(ev, "approval") && !out->violation) {
                    out->violation = true;
                    out->unapproved = true;
                    out->threshold = c->approval_above;
                    snprintf(out->why, sizeof(out->why),
                             "spends %g %s without the approval needed above %g", ev->amount,
                             c->currency, c->approval_above);
                }
            }
        }
    }
    if (!relevant)
        return false;
    if (out->violation && out->threshold == 0)
        out->observed = 1;
    out->outcome =
        out->violation ? PACTUM__V1__OUTCOME__OUTCOME_FAIL : PACTUM__V1__OUTCOME__OUTCOME_PASS;
    tally(s, src, !out->violation);
    return true;
}

/* How each kind of clause judges an event; false: the event is not about it. */
typedef bool judge_fn(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, unsigned src,
                      pk_judgement *out);
static judge_fn *const judges[] = {[PK_CLAUSE_OBJECTIVE] = judge_objective,
                                   [PK_CLAUSE_FORBIDDEN] = judge_forbidden,
                                   [PK_CLAUSE_FRESHNESS] = judge_freshness,
                                   [PK_CLAUSE_SCOPE] = judge_scope};

void pk_clause_judge(const pk_clause *c, pk_clause_state *s, const pk_event_msg *ev, uint64_t seq,
                     uint32_t report_every, pk_judgement *out)
{
    unsigned src = (unsigned)ev->source < PK_SOURCES ? (unsigned)ev->source : 0;
    bool relevant = false;

    memset(out, 0, sizeof(*out));
    if (c->weight[src] <= 0)
        return; /* evidence from this source does not count for this clause */
    if (c->kind != PK_CLAUSE_FORBIDDEN && c->when && !pk_pred_eval(c->when, ev))
        return;
    if ((unsigned)c->kind < PK_NELEM(judges) && judges[c->kind])
        relevant = judges[c->kind](c, s, ev, src, out);
    if (!relevant)
        return;
    out->relevant = true;
    s->h.since_verdict++;
    if (ev->ts_ms > s->h.last_ts_ms)
        s->h.last_ts_ms = ev->ts_ms;
    s->h.last_seq = seq;
    out->verdict_due = out->violation || (int32_t)out->outcome != s->h.last_outcome ||
                       s->h.since_verdict >= report_every;
}

void pk_clause_state_reported(pk_clause_state *s, Pactum__V1__Outcome outcome)
{
    memset(s->h.pass, 0, sizeof(s->h.pass));
    memset(s->h.fail, 0, sizeof(s->h.fail));
    s->h.since_verdict = 0;
    s->h.last_outcome = (int32_t)outcome;
}

void pk_clause_probe(const pk_clause *c, const pk_clause_state *s, const pk_event_msg *ev,
                     pk_judgement *out)
{
    pk_clause_state copy = *s; /* windows are values; a sketch is not: objectives are not probed */

    memset(out, 0, sizeof(*out));
    if (c->kind != PK_CLAUSE_SCOPE && c->kind != PK_CLAUSE_FORBIDDEN)
        return;
    copy.h.has_sketch = 0;
    pk_sketch_init(&copy.sketch);
    pk_clause_judge(c, &copy, ev, copy.h.last_seq + 1, UINT32_MAX, out);
}

int64_t pk_freshness_deadline(const pk_clause *c, const pk_clause_state *s)
{
    int64_t from = s->h.last_seen_ms ? s->h.last_seen_ms : s->h.since_ms;

    return from + c->max_gap_ms;
}
