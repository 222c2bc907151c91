#include "pk/authorize.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool pk_override_active(const Pactum__V1__Override *o, const Pactum__V1__TrustState *s, int64_t now)
{
    return o && o->created_ms <= now && now < o->expires_ms &&
           (!s || o->created_ms >= s->contained_ms);
}

Pactum__V1__Tier pk_effective_tier(const Pactum__V1__TrustState *s, int64_t now,
                                   const Pactum__V1__Override **by)
{
    const Pactum__V1__Override *best = NULL;

    for (size_t i = 0; s && i < s->n_overrides; i++) {
        const Pactum__V1__Override *o = s->overrides[i];
        if (o->kind != PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER || !pk_override_active(o, s, now))
            continue;
        if (!best || o->created_ms > best->created_ms ||
            (o->created_ms == best->created_ms && strcmp(o->override_id, best->override_id) > 0))
            best = o;
    }
    if (by)
        *by = best;
    return best ? best->tier : (s ? s->tier : PACTUM__V1__TIER__TIER_WATCH);
}

static char star[] = "*";

void pk_scope_view_build(pk_scope_view *v, const pk_governance *g, const Pactum__V1__TrustState *s,
                         Pactum__V1__Tier tier, int64_t now)
{
    const pk_tier_scope *ts = &g->tiers[(unsigned)tier < PK_TIERS ? tier : 0];
    Pactum__V1__TierScope *out = &v->scope;
    size_t na = 0, nap = 0, nal = 0, nd = 0;

    pactum__v1__tier_scope__init(out);
    out->tier = tier;
    out->any_action = ts->any_action;
    out->spend_per_action = ts->spend_per_action;
    out->nothing = !ts->any_action && ts->actions.n == 0;
    for (size_t i = 0; i < ts->actions.n && na < PK_SCOPE_VIEW_MAX; i++)
        v->actions[na++] = ts->actions.p[i];
    if (ts->approve_all)
        v->approval[nap++] = star;
    for (size_t i = 0; i < ts->approval.n && nap < PK_SCOPE_VIEW_MAX; i++)
        v->approval[nap++] = ts->approval.p[i];
    for (size_t i = 0; s && i < s->n_overrides; i++) {
        const Pactum__V1__Override *o = s->overrides[i];
        if (!pk_override_active(o, s, now))
            continue;
        for (size_t k = 0; k < o->n_actions; k++) {
            if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW && nal < PK_SCOPE_VIEW_MAX)
                v->allowed[nal++] = o->actions[k];
            else if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY && nd < PK_SCOPE_VIEW_MAX)
                v->denied[nd++] = o->actions[k];
        }
    }
    out->actions = v->actions;
    out->n_actions = na;
    out->approval = v->approval;
    out->n_approval = nap;
    out->allowed_by_override = v->allowed;
    out->n_allowed_by_override = nal;
    out->denied_by_override = v->denied;
    out->n_denied_by_override = nd;
    out->spend_needs_approval = ts->spend_approval;
}

/* --- authorize ---------------------------------------------------------------- */

static void reason(pk_authz *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(pk_authz *a, const char *fmt, ...)
{
    va_list ap;

    if (a->n_reasons >= PK_AUTHZ_REASONS)
        return;
    va_start(ap, fmt);
    vsnprintf(a->reasons[a->n_reasons++], PK_AUTHZ_REASON_LEN, fmt, ap);
    va_end(ap);
}

/* The first override in force of this kind whose actions cover action, or NULL. */
static const Pactum__V1__Override *override_covering(const Pactum__V1__TrustState *s,
                                                     Pactum__V1__OverrideKind kind,
                                                     const char *action, int64_t now)
{
    for (size_t i = 0; s && i < s->n_overrides; i++) {
        const Pactum__V1__Override *o = s->overrides[i];
        pk_patterns ps = {.p = o->actions, .n = o->n_actions};
        if (o->kind == kind && pk_override_active(o, s, now) && pk_patterns_match(&ps, action))
            return o;
    }
    return NULL;
}

/* "reply, kb.*" (at most a few names) */
static void list_text(const pk_patterns *ps, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < ps->n && off < len; i++) {
        if (i == 4) {
            snprintf(buf + off, len - off, ", ...");
            break;
        }
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", ps->p[i]);
    }
}

static bool deny(pk_authz *a)
{
    a->permit = PACTUM__V1__PERMIT__PERMIT_DENY;
    return true;
}

/* The clauses in force, judged on the imagined event: true if one of them denies. */
static bool clauses_deny(const pk_authz_input *in, pk_authz *a)
{
    for (size_t i = 0; i < in->n_findings; i++) {
        const pk_authz_finding *f = &in->findings[i];
        if (f->violation) {
            reason(a, "%s/%s: %s", f->pact_id, f->clause_id, f->why);
            return deny(a);
        }
    }
    if (in->n_findings)
        reason(a, "the pact's scope and forbidden clauses in force allow it");
    return false;
}

/* A clause's approval_above the amount exceeds, or NULL. */
static const pk_authz_finding *clause_wants_approval(const pk_authz_input *in)
{
    for (size_t i = 0; i < in->n_findings; i++) {
        if (in->findings[i].needs_approval)
            return &in->findings[i];
    }
    return NULL;
}

/* "needs approval", or allow if a valid approval of this request was given. */
static void needs_approval(const pk_authz_input *in, pk_authz *out)
{
    if (in->approved_by) {
        reason(out, "approved by %s (approval %s), once", in->approved_by, in->approval_id);
        out->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
        return;
    }
    out->permit = PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL;
}

static void unbound(const pk_authz_input *in, pk_authz *out)
{
    static const char *const names[] = {"every action needs a person's approval",
                                        "nothing is allowed", "everything is allowed"};
    reason(out, "no pact binds the agent; the installation's policy: %s",
           names[(unsigned)in->unbound < 3 ? in->unbound : 0]);
    if (in->unbound == PK_UNBOUND_DENY)
        deny(out);
    else if (in->unbound == PK_UNBOUND_ALLOW)
        out->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
    else
        needs_approval(in, out);
}

size_t pk_authz_findings(pk_pact *const *pacts, size_t n_pacts, const pk_event_msg *ev,
                         pk_clause_state_fn get, void *ctx, pk_authz_finding *out, size_t max)
{
    size_t n = 0;

    for (size_t p = 0; p < n_pacts; p++) {
        for (size_t i = 0; i < pacts[p]->n_clauses && n < max; i++) {
            const pk_clause *c = &pacts[p]->clauses[i];
            pk_clause_state s;
            pk_judgement j;
            if (c->kind != PK_CLAUSE_SCOPE && c->kind != PK_CLAUSE_FORBIDDEN)
                continue;
            pk_clause_state_init(&s, c, 0);
            get(ctx, pacts[p], c, &s);
            pk_clause_probe(c, &s, ev, &j);
            pk_clause_state_release(&s);
            if (!j.relevant)
                continue;
            out[n] = (pk_authz_finding){.pact_id = pacts[p]->id,
                                        .clause_id = c->id,
                                        .violation = j.violation && !j.unapproved,
                                        .needs_approval = j.needs_approval};
            snprintf(out[n].why, sizeof(out[n].why), "%s",
                     j.violation ? j.why : "within the clause");
            n++;
        }
    }
    return n;
}

bool pk_authz_needs_state(pk_pact *const *pacts, size_t n_pacts, const pk_event_msg *ev)
{
    for (size_t p = 0; p < n_pacts; p++) {
        for (size_t i = 0; i < pacts[p]->n_clauses; i++) {
            const pk_clause *c = &pacts[p]->clauses[i];
            if (c->kind == PK_CLAUSE_FORBIDDEN && pk_pred_eval(c->match, ev))
                return true;
            if (c->kind == PK_CLAUSE_SCOPE && c->per_window > 0 && ev->amount > 0)
                return true;
        }
    }
    return false;
}

void pk_authz_event(const Pactum__V1__AuthorizeRequest *req, int64_t now_ms, pk_event_msg *ev)
{
    pactum__v1__event__init(ev);
    ev->event_id = "authorize";
    ev->agent_id = req->agent_id;
    ev->ts_ms = now_ms;
    ev->received_ms = now_ms;
    ev->kind = req->kind && req->kind[0] ? req->kind : req->action;
    ev->action = req->action;
    ev->tool = req->tool;
    ev->resource = req->resource;
    ev->amount = req->amount;
    ev->currency = req->currency;
    ev->source = PACTUM__V1__SOURCE__SOURCE_SELF;
    ev->reporter_id = req->agent_id;
}

void pk_authorize(const pk_authz_input *in, pk_authz *out)
{
    const Pactum__V1__AuthorizeRequest *r = in->req;
    const Pactum__V1__Override *by = NULL, *allow, *denied;
    const pk_authz_finding *wants;
    const pk_tier_scope *ts;
    const char *tier;
    char list[160];

    memset(out, 0, sizeof(*out));
    out->effective_tier = pk_effective_tier(in->state, in->now_ms, &by);
    if (in->review_cap && (int)out->effective_tier < in->review_cap) {
        reason(out, "pact %s is overdue for review: at most %s until it is reviewed",
               in->review_pact ? in->review_pact : "?", pk_tier_name(in->review_cap));
        out->effective_tier = (Pactum__V1__Tier)in->review_cap;
    }
    tier = pk_tier_name(out->effective_tier);
    ts = &in->gov->tiers[(unsigned)out->effective_tier < PK_TIERS ? out->effective_tier : 0];
    if (by) {
        snprintf(out->override_id, sizeof(out->override_id), "%s", by->override_id);
        reason(out, "override %s by %s puts the agent on %s (decided: %s): %s", by->override_id,
               by->operator_id, tier, pk_tier_name(in->state->tier), by->reason);
    } else {
        reason(out, "tier %s", tier);
    }
    if (in->n_pacts == 0) {
        unbound(in, out);
        out->before_clauses = true;
        return;
    }
    if ((denied = override_covering(in->state, PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY, r->action,
                                    in->now_ms))) {
        snprintf(out->override_id, sizeof(out->override_id), "%s", denied->override_id);
        reason(out, "override %s by %s denies '%s': %s", denied->override_id, denied->operator_id,
               r->action, denied->reason);
        out->before_clauses = deny(out);
        return;
    }
    allow = override_covering(in->state, PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW, r->action,
                              in->now_ms);
    if (!ts->any_action && !pk_patterns_match(&ts->actions, r->action)) {
        if (!allow) {
            if (ts->actions.n == 0) {
                reason(out, "%s: nothing is allowed", tier);
            } else {
                list_text(&ts->actions, list, sizeof(list));
                reason(out, "%s allows only %s", tier, list);
            }
            out->before_clauses = deny(out);
            return;
        }
        snprintf(out->override_id, sizeof(out->override_id), "%s", allow->override_id);
        reason(out, "override %s by %s allows '%s' on %s: %s", allow->override_id,
               allow->operator_id, r->action, tier, allow->reason);
    }
    if (clauses_deny(in, out))
        return;
    if (ts->spend_per_action > 0 && r->amount > ts->spend_per_action) {
        reason(out, "%s: %.2f is above the %.2f one action may spend on this tier", tier, r->amount,
               ts->spend_per_action);
        deny(out);
        return;
    }
    if ((wants = clause_wants_approval(in))) {
        /* the owner's rule: no override skips it, only an approval */
        reason(out, "%s/%s: %.2f %s is above the amount that needs a person's approval",
               wants->pact_id, wants->clause_id, r->amount, r->currency);
        needs_approval(in, out);
        return;
    }
    if (ts->approve_all || pk_patterns_match(&ts->approval, r->action) ||
        (ts->spend_approval && r->amount > 0)) {
        if (ts->approve_all)
            reason(out, "%s: every action needs a person's approval", tier);
        else if (pk_patterns_match(&ts->approval, r->action))
            reason(out, "%s: '%s' needs a person's approval", tier, r->action);
        else
            reason(out, "%s: an action that spends money needs a person's approval", tier);
        if (allow) {
            snprintf(out->override_id, sizeof(out->override_id), "%s", allow->override_id);
            reason(out, "override %s by %s allows '%s' without approval: %s", allow->override_id,
                   allow->operator_id, r->action, allow->reason);
            out->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
            return;
        }
        needs_approval(in, out);
        return;
    }
    reason(out, "allowed");
    out->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
}
