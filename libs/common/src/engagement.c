/*
 * engagement - settlement statements from an engagement's failures and its
 * pact's consequence terms, and the engagements part of the trust state's
 * wire form (pk/engagement.h).
 */
#include "pk/engagement.h"

#include <stdio.h>
#include <string.h>

#include "pk/trust.h"

const char *pk_settlement_outcome_name(int outcome)
{
    switch (outcome) {
    case PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_RELEASE:
        return "release";
    case PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_PARTIAL:
        return "partial";
    case PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD:
        return "withhold";
    case PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_REFUND:
        return "refund";
    default:
        return "none";
    }
}

pk_engagement *pk_engagement_find(pk_engagement *es, int n, const char *id)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(es[i].id, id) == 0)
            return &es[i];
    }
    return NULL;
}

uint32_t pk_withhold_percent(const pk_withhold_rule *r, const pk_eng_failure *f)
{
    if (strcmp(r->clause, "*") != 0 && strcmp(r->clause, f->clause_id) != 0)
        return 0;
    if (r->min_severity && f->severity < r->min_severity)
        return 0;
    return r->percent;
}

static pk_statement_line *line(pk_statement *out, const char *term, int64_t amount, bool to_buyer)
{
    pk_statement_line *l;

    if (out->n_lines == PK_STATEMENT_LINES)
        return NULL;
    l = &out->lines[out->n_lines++];
    memset(l, 0, sizeof(*l));
    snprintf(l->term, sizeof(l->term), "%s", term);
    l->amount = amount;
    l->to_buyer = to_buyer;
    return l;
}

/* The price less what each failure withholds: the first matching rule, per failure. */
static void settle_done(const pk_engagement *e, const pk_consequences *c, pk_statement *out)
{
    int64_t withheld = 0;

    for (int i = 0; i < e->n_fail && withheld < e->price; i++) {
        const pk_eng_failure *f = &e->fail[i];
        for (size_t r = 0; r < c->n_withhold; r++) {
            uint32_t pct = pk_withhold_percent(&c->withhold[r], f);
            int64_t amount;
            pk_statement_line *l;
            if (!pct)
                continue;
            /* price <= 10^15 and pct <= 100: no overflow */
            amount = e->price * (int64_t)pct / 100;
            if (amount > e->price - withheld)
                amount = e->price - withheld; /* never more than the price in all */
            if ((l = line(out, c->withhold[r].term, amount, true))) {
                l->vseq = f->vseq;
                l->seq = f->seq;
                snprintf(l->clause_id, sizeof(l->clause_id), "%s", f->clause_id);
                l->severity = f->severity;
            }
            withheld += amount;
            break; /* one rule per failure */
        }
    }
    out->head.refund = withheld;
    out->head.release = e->price - withheld;
    if (out->head.release > 0) {
        line(out,
             e->end[0] == 'd' ? "release at the deadline (on_deadline: settle)"
                              : "release on completion",
             out->head.release, false);
    }
    out->head.outcome = withheld == 0          ? PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_RELEASE
                        : withheld == e->price ? PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_REFUND
                                               : PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_PARTIAL;
}

void pk_engagement_settle(const pk_engagement *e, const pk_consequences *c, const char *trigger,
                          int64_t at_ms, pk_statement *out)
{
    pk_statement_line *l;

    memset(out, 0, sizeof(*out));
    snprintf(out->head.trigger, sizeof(out->head.trigger), "%s", trigger);
    out->head.at_ms = at_ms;
    if (e->hold[0] || !e->end[0]) {
        /* a dispute holds it, or the job runs on: nothing moves */
        out->head.outcome = PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD;
        snprintf(out->head.dispute_id, sizeof(out->head.dispute_id), "%s", e->hold);
        return;
    }
    out->head.final_after_ms = at_ms + c->dispute_window_ms;
    if (strcmp(e->end, "critical_violation") == 0) {
        out->head.outcome = PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_REFUND;
        out->head.refund = e->price;
        if ((l = line(out, "refund in full on a critical violation", e->price, true))) {
            l->vseq = e->end_vseq;
            l->seq = e->end_seq;
            l->severity = PACTUM__V1__SEVERITY__SEVERITY_CRITICAL;
            for (int i = 0; i < e->n_fail; i++) {
                if (e->fail[i].vseq == e->end_vseq)
                    snprintf(l->clause_id, sizeof(l->clause_id), "%s", e->fail[i].clause_id);
            }
        }
        return;
    }
    if (strcmp(e->end, "deadline") == 0 && c->deadline_refund) {
        out->head.outcome = PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_REFUND;
        out->head.refund = e->price;
        line(out, "refund in full at the deadline without completion (on_deadline: refund)",
             e->price, true);
        return;
    }
    settle_done(e, c, out);
}

/* --- wire form ---------------------------------------------------------------------------- */

void pk_engagements_to_msg(const pk_trust *t, Pactum__V1__TrustState *m, pk_trust_msg_storage *s)
{
    for (int i = 0; i < t->n_eng; i++) {
        const pk_engagement *e = &t->eng[i];
        Pactum__V1__EngagementState *es = &s->es[i];
        Pactum__V1__Engagement *tm = &s->terms[i];
        Pactum__V1__Settlement *st = &s->last[i];
        pactum__v1__engagement_state__init(es);
        pactum__v1__engagement__init(tm);
        pactum__v1__settlement__init(st);
        tm->engagement_id = (char *)e->id;
        tm->buyer_id = (char *)e->buyer;
        tm->agent_id = (char *)t->agent_id;
        tm->pact_id = (char *)e->pact_id;
        tm->pact_version = e->pact_version;
        tm->pact_hash.data = (uint8_t *)e->pact_hash;
        tm->pact_hash.len = sizeof(e->pact_hash);
        tm->price = e->price;
        tm->currency = (char *)e->currency;
        tm->start_ms = e->start_ms;
        tm->deadline_ms = e->deadline_ms;
        tm->signed_ms = e->signed_ms;
        es->terms = tm;
        es->accepted_ms = e->accepted_ms;
        es->accepted_seq = e->accepted_seq;
        es->completed_ms = e->completed_ms;
        es->hold = (char *)e->hold;
        es->disputed = e->disputed;
        es->counted = e->counted;
        es->failures_dropped = e->dropped;
        for (int k = 0; k < e->n_fail; k++) {
            Pactum__V1__EngagementFailure *f = &s->ef[i][k];
            pactum__v1__engagement_failure__init(f);
            f->vseq = e->fail[k].vseq;
            f->seq = e->fail[k].seq;
            f->clause_id = (char *)e->fail[k].clause_id;
            f->severity = (Pactum__V1__Severity)e->fail[k].severity;
            s->efp[i][k] = f;
        }
        es->n_failures = (size_t)e->n_fail;
        es->failures = s->efp[i];
        if (e->last.number) {
            st->engagement_id = (char *)e->id;
            st->statement = e->last.number;
            st->outcome = (Pactum__V1__SettlementOutcome)e->last.outcome;
            st->trigger = (char *)e->last.trigger;
            st->release = e->last.release;
            st->refund = e->last.refund;
            st->at_ms = e->last.at_ms;
            st->final_after_ms = e->last.final_after_ms;
            st->dispute_id = (char *)e->last.dispute_id;
            st->supersedes = e->last.supersedes;
            es->last = st;
        }
        /* what ended the job travels in the newest statement's place when none was issued */
        es->ended = (char *)e->end;
        es->ended_ms = e->ended_ms;
        es->end_vseq = e->end_vseq;
        es->end_seq = e->end_seq;
        s->esp[i] = es;
    }
    m->n_engagements = (size_t)t->n_eng;
    m->engagements = s->esp;
    pactum__v1__engagement_totals__init(&s->totals);
    s->totals.open = 0;
    for (int i = 0; i < t->n_eng; i++)
        s->totals.open += !t->eng[i].end[0];
    s->totals.completed = t->eng_totals.completed;
    s->totals.disputed = t->eng_totals.disputed;
    s->totals.refunded = t->eng_totals.refunded;
    if (t->n_eng || t->eng_totals.completed || t->eng_totals.disputed || t->eng_totals.refunded)
        m->engagement_totals = &s->totals;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void pk_engagements_from_msg(pk_trust *t, const Pactum__V1__TrustState *m)
{
    for (size_t i = 0; i < m->n_engagements && t->n_eng < PK_ENGAGEMENTS_MAX; i++) {
        const Pactum__V1__EngagementState *es = m->engagements[i];
        const Pactum__V1__Engagement *tm = es->terms;
        pk_engagement *e = &t->eng[t->n_eng];
        if (!tm)
            continue;
        memset(e, 0, sizeof(*e));
        copy_str(e->id, sizeof(e->id), tm->engagement_id);
        copy_str(e->buyer, sizeof(e->buyer), tm->buyer_id);
        copy_str(e->pact_id, sizeof(e->pact_id), tm->pact_id);
        e->pact_version = tm->pact_version;
        if (tm->pact_hash.len == sizeof(e->pact_hash))
            memcpy(e->pact_hash, tm->pact_hash.data, sizeof(e->pact_hash));
        e->price = tm->price;
        copy_str(e->currency, sizeof(e->currency), tm->currency);
        e->start_ms = tm->start_ms;
        e->deadline_ms = tm->deadline_ms;
        e->signed_ms = tm->signed_ms;
        e->accepted_ms = es->accepted_ms;
        e->accepted_seq = es->accepted_seq;
        e->completed_ms = es->completed_ms;
        copy_str(e->hold, sizeof(e->hold), es->hold);
        e->disputed = es->disputed;
        e->counted = es->counted;
        e->dropped = es->failures_dropped;
        for (size_t k = 0; k < es->n_failures && k < PK_ENG_FAILURES_MAX; k++) {
            pk_eng_failure *f = &e->fail[e->n_fail++];
            f->vseq = es->failures[k]->vseq;
            f->seq = es->failures[k]->seq;
            copy_str(f->clause_id, sizeof(f->clause_id), es->failures[k]->clause_id);
            f->severity = (int)es->failures[k]->severity;
        }
        if (es->last) {
            e->last.number = es->last->statement;
            e->last.outcome = (int)es->last->outcome;
            copy_str(e->last.trigger, sizeof(e->last.trigger), es->last->trigger);
            e->last.release = es->last->release;
            e->last.refund = es->last->refund;
            e->last.at_ms = es->last->at_ms;
            e->last.final_after_ms = es->last->final_after_ms;
            copy_str(e->last.dispute_id, sizeof(e->last.dispute_id), es->last->dispute_id);
            e->last.supersedes = es->last->supersedes;
        }
        copy_str(e->end, sizeof(e->end), es->ended);
        e->ended_ms = es->ended_ms;
        e->end_vseq = es->end_vseq;
        e->end_seq = es->end_seq;
        t->n_eng++;
    }
    if (m->engagement_totals) {
        t->eng_totals.completed = m->engagement_totals->completed;
        t->eng_totals.disputed = m->engagement_totals->disputed;
        t->eng_totals.refunded = m->engagement_totals->refunded;
    }
}

/* --- an agent's engagements, input by input ---------------------------------------------- */

/* The weight of a settled engagement: 1 to 5 evaluations by the order of its price. */
static uint64_t weight_micro(int64_t price)
{
    int64_t major = price / 100;
    uint64_t w = 1;

    while (major >= 10 && w < 5) {
        major /= 10;
        w++;
    }
    return w * PK_PPM;
}

static void issue(pk_trust *t, pk_engagement *e, const pk_consequences *c, const char *trigger,
                  int64_t at_ms, const char *ruled, pk_eng_out *out)
{
    pk_statement *st;
    int i = out->n;

    if (!c) {
        out->no_terms = true; /* the caller tries the input again once the copy has them */
        return;
    }
    if (i == PK_ENGAGEMENTS_MAX)
        return; /* one input ends at most as many jobs as the state holds */
    st = &out->st[i];
    pk_engagement_settle(e, c, trigger, at_ms, st);
    if (ruled && !st->head.dispute_id[0])
        snprintf(st->head.dispute_id, sizeof(st->head.dispute_id), "%s", ruled);
    st->head.number = e->last.number + 1;
    st->head.supersedes = e->last.number;
    e->last = st->head;
    out->counts[i] = false;
    if (!e->counted && st->head.outcome != PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD) {
        uint64_t w = weight_micro(e->price);
        e->counted = true;
        out->counts[i] = true;
        if (st->head.release > 0)
            t->eng_totals.completed++;
        else
            t->eng_totals.refunded++;
        /* the weight split by what was released (price <= 10^15, w <= 5 * 10^6) */
        out->pass_micro[i] =
            e->price > 0
                ? (uint64_t)((unsigned __int128)w * (uint64_t)st->head.release / (uint64_t)e->price)
                : 0;
        out->fail_micro[i] = w - out->pass_micro[i];
    }
    st->eng = *e;
    out->n++;
}

bool pk_eng_accept(pk_trust *t, const Pactum__V1__EngagementAcceptance *a, uint64_t seq)
{
    Pactum__V1__Signed *env;
    Pactum__V1__Engagement *o;
    pk_engagement *e;

    if (pk_engagement_find(t->eng, t->n_eng, a->engagement_id))
        return false;
    if (!(env = pactum__v1__signed__unpack(NULL, a->offer.len, a->offer.data)))
        return false;
    o = pactum__v1__engagement__unpack(NULL, env->payload.len, env->payload.data);
    pactum__v1__signed__free_unpacked(env, NULL);
    if (!o)
        return false;
    if (t->n_eng == PK_ENGAGEMENTS_MAX) {
        /* room from the oldest that has a final statement and nothing holding it */
        int victim = -1;
        for (int i = 0; i < t->n_eng && victim < 0; i++) {
            const pk_engagement *x = &t->eng[i];
            if (x->end[0] && x->last.number && !x->hold[0] &&
                x->last.outcome != PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD)
                victim = i;
        }
        if (victim < 0) {
            pactum__v1__engagement__free_unpacked(o, NULL);
            return false;
        }
        memmove(&t->eng[victim], &t->eng[victim + 1],
                (size_t)(t->n_eng - victim - 1) * sizeof(t->eng[0]));
        t->n_eng--;
    }
    e = &t->eng[t->n_eng++];
    memset(e, 0, sizeof(*e));
    copy_str(e->id, sizeof(e->id), o->engagement_id);
    copy_str(e->buyer, sizeof(e->buyer), o->buyer_id);
    copy_str(e->pact_id, sizeof(e->pact_id), o->pact_id);
    e->pact_version = o->pact_version;
    if (o->pact_hash.len == sizeof(e->pact_hash))
        memcpy(e->pact_hash, o->pact_hash.data, sizeof(e->pact_hash));
    e->price = o->price;
    copy_str(e->currency, sizeof(e->currency), o->currency);
    e->start_ms = o->start_ms;
    e->deadline_ms = o->deadline_ms;
    e->signed_ms = o->signed_ms;
    e->accepted_ms = a->accepted_ms;
    e->accepted_seq = seq;
    pactum__v1__engagement__free_unpacked(o, NULL);
    return true;
}

void pk_eng_verdict(pk_trust *t, const pk_verdict_msg *v, uint64_t seq, pk_cons_fn cons, void *ctx,
                    pk_eng_out *out)
{
    pk_engagement *e;
    const pk_consequences *c;

    if (!v->engagement_id || !v->engagement_id[0] || !v->violation)
        return;
    e = pk_engagement_find(t->eng, t->n_eng, v->engagement_id);
    if (!e || e->end[0] || strcmp(v->pact_id, e->pact_id) != 0)
        return; /* ended already, or a clause of another pact: not this job's terms */
    if (e->n_fail < PK_ENG_FAILURES_MAX) {
        pk_eng_failure *f = &e->fail[e->n_fail++];
        f->vseq = v->vseq;
        f->seq = seq;
        copy_str(f->clause_id, sizeof(f->clause_id), v->clause_id);
        f->severity = (int)v->severity;
    } else {
        e->dropped++;
    }
    c = cons(ctx, e);
    if (c && c->refund_on_critical && v->severity == PACTUM__V1__SEVERITY__SEVERITY_CRITICAL) {
        snprintf(e->end, sizeof(e->end), "critical_violation");
        e->ended_ms = pk_verdict_time(v);
        e->end_vseq = v->vseq;
        e->end_seq = seq;
        issue(t, e, c, "critical_violation", e->ended_ms, NULL, out);
    }
}

bool pk_eng_complete(pk_trust *t, const Pactum__V1__EngagementCompletion *cm, pk_cons_fn cons,
                     void *ctx, pk_eng_out *out)
{
    pk_engagement *e = pk_engagement_find(t->eng, t->n_eng, cm->engagement_id);

    if (!e || e->end[0])
        return false;
    e->completed_ms = cm->completed_ms;
    snprintf(e->end, sizeof(e->end), "completion");
    e->ended_ms = cm->completed_ms;
    issue(t, e, cons(ctx, e), "completion", cm->completed_ms, NULL, out);
    return true;
}

bool pk_eng_dispute(pk_trust *t, const Pactum__V1__Dispute *d, pk_cons_fn cons, void *ctx,
                    pk_eng_out *out)
{
    pk_engagement *e;

    if (!d->engagement_id || !d->engagement_id[0] ||
        !(e = pk_engagement_find(t->eng, t->n_eng, d->engagement_id)))
        return false;
    if (!e->disputed) {
        e->disputed = true;
        t->eng_totals.disputed++;
    }
    copy_str(e->hold, sizeof(e->hold), d->dispute_id);
    /* a statement already out is held: a payment system must not execute it */
    if (e->last.number && e->last.outcome != PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD)
        issue(t, e, cons(ctx, e), "dispute", d->opened_ms, NULL, out);
    return true;
}

bool pk_eng_ruling(pk_trust *t, const Pactum__V1__Ruling *r, int64_t at_ms, pk_cons_fn cons,
                   void *ctx, pk_eng_out *out)
{
    bool any = false;

    for (int i = 0; i < t->n_eng; i++) {
        pk_engagement *e = &t->eng[i];
        if (strcmp(e->hold, r->dispute_id) != 0)
            continue;
        e->hold[0] = '\0';
        any = true;
        if (e->end[0] || e->last.number)
            issue(t, e, cons(ctx, e), "ruling", at_ms, r->dispute_id, out);
    }
    return any;
}

bool pk_eng_clock(pk_trust *t, pk_cons_fn cons, void *ctx, pk_eng_out *out)
{
    bool any = false;

    for (int i = 0; i < t->n_eng; i++) {
        pk_engagement *e = &t->eng[i];
        if (e->end[0] || e->deadline_ms > t->clock_ms)
            continue;
        snprintf(e->end, sizeof(e->end), "deadline");
        e->ended_ms = t->clock_ms;
        issue(t, e, cons(ctx, e), "deadline", t->clock_ms, NULL, out);
        any = true;
    }
    /* a final statement whose dispute window has passed leaves the state (the oracle keeps it) */
    for (int i = t->n_eng; i-- > 0;) {
        const pk_engagement *e = &t->eng[i];
        if (e->end[0] && e->last.number && !e->hold[0] &&
            e->last.outcome != PACTUM__V1__SETTLEMENT_OUTCOME__SETTLEMENT_WITHHOLD &&
            e->last.final_after_ms <= t->clock_ms) {
            memmove(&t->eng[i], &t->eng[i + 1], (size_t)(t->n_eng - i - 1) * sizeof(t->eng[0]));
            t->n_eng--;
            any = true;
        }
    }
    return any;
}

int64_t pk_eng_wake(const pk_trust *t)
{
    int64_t wake = 0;

    for (int i = 0; i < t->n_eng; i++) {
        const pk_engagement *e = &t->eng[i];
        int64_t at = e->end[0] ? (e->hold[0] ? 0 : e->last.final_after_ms) : e->deadline_ms;
        if (at > t->clock_ms && (wake == 0 || at < wake))
            wake = at;
    }
    return wake;
}

void pk_eng_keep_numbers(pk_trust *fresh, const pk_trust *before)
{
    for (int i = 0; i < fresh->n_eng; i++) {
        pk_engagement *e = &fresh->eng[i];
        const pk_engagement *b =
            pk_engagement_find((pk_engagement *)before->eng, before->n_eng, e->id);
        if (b && b->last.number > e->last.number)
            e->last.number = b->last.number;
    }
}

void pk_settlement_to_msg(const char *agent, const pk_statement *s, Pactum__V1__Settlement *m,
                          pk_settlement_storage *storage)
{
    const pk_engagement *e = &s->eng;

    pactum__v1__settlement__init(m);
    m->engagement_id = (char *)e->id;
    m->agent_id = (char *)agent;
    m->buyer_id = (char *)e->buyer;
    m->pact_id = (char *)e->pact_id;
    m->pact_version = e->pact_version;
    m->pact_hash.data = (uint8_t *)e->pact_hash;
    m->pact_hash.len = sizeof(e->pact_hash);
    m->statement = s->head.number;
    m->outcome = (Pactum__V1__SettlementOutcome)s->head.outcome;
    m->trigger = (char *)s->head.trigger;
    m->price = e->price;
    m->currency = (char *)e->currency;
    m->release = s->head.release;
    m->refund = s->head.refund;
    m->at_ms = s->head.at_ms;
    m->final_after_ms = s->head.final_after_ms;
    m->dispute_id = (char *)s->head.dispute_id;
    m->supersedes = s->head.supersedes;
    m->accepted_seq = e->accepted_seq;
    for (int i = 0; i < s->n_lines; i++) {
        const pk_statement_line *l = &s->lines[i];
        Pactum__V1__SettlementLine *ml = &storage->lines[i];
        pactum__v1__settlement_line__init(ml);
        ml->term = (char *)l->term;
        ml->amount = l->amount;
        ml->to_buyer = l->to_buyer;
        ml->verdict_vseq = l->vseq;
        ml->verdict_seq = l->seq;
        ml->clause_id = (char *)l->clause_id;
        ml->severity = (Pactum__V1__Severity)l->severity;
        storage->linep[i] = ml;
    }
    m->n_lines = (size_t)s->n_lines;
    m->lines = storage->linep;
}
