#include "pk/authorize.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool pk_override_active(const Pactum__V1__Override *o, int64_t now)
{
    return o && o->created_ms <= now && now < o->expires_ms;
}

Pactum__V1__Tier pk_effective_tier(const Pactum__V1__TrustState *s, int64_t now,
                                   const Pactum__V1__Override **by)
{
    const Pactum__V1__Override *best = NULL;

    for (size_t i = 0; s && i < s->n_overrides; i++) {
        const Pactum__V1__Override *o = s->overrides[i];
        if (o->kind != PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER || !pk_override_active(o, now))
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
        if (!pk_override_active(o, now))
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
        if (o->kind == kind && pk_override_active(o, now) && pk_patterns_match(&ps, action))
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

/* The scope clauses of the pacts in force; true if one of them denies. */
static bool scope_clauses_deny(const pk_authz_input *in, pk_authz *a)
{
    const Pactum__V1__AuthorizeRequest *r = in->req;
    char list[160];

    for (size_t p = 0; p < in->n_pacts; p++) {
        const pk_pact *pact = in->pacts[p];
        for (size_t i = 0; i < pact->n_clauses; i++) {
            const pk_clause *c = &pact->clauses[i];
            if (c->kind != PK_CLAUSE_SCOPE)
                continue;
            if (c->actions.n && !pk_patterns_match(&c->actions, r->action)) {
                list_text(&c->actions, list, sizeof(list));
                reason(a, "%s/%s: '%s' is outside the actions the pact allows (%s)", pact->id,
                       c->id, r->action, list);
                return deny(a);
            }
            if (c->tools.n && r->tool[0] && !pk_patterns_match(&c->tools, r->tool)) {
                list_text(&c->tools, list, sizeof(list));
                reason(a, "%s/%s: tool '%s' is outside the tools the pact allows (%s)", pact->id,
                       c->id, r->tool, list);
                return deny(a);
            }
            if (c->resources.n && r->resource[0] &&
                !pk_patterns_match(&c->resources, r->resource)) {
                list_text(&c->resources, list, sizeof(list));
                reason(a, "%s/%s: resource '%s' is outside the resources the pact allows (%s)",
                       pact->id, c->id, r->resource, list);
                return deny(a);
            }
            if (c->currency[0] && r->amount > 0) {
                if (strcmp(c->currency, r->currency) != 0) {
                    reason(a, "%s/%s: the pact spends only %s, not '%s'", pact->id, c->id,
                           c->currency, r->currency);
                    return deny(a);
                }
                if (c->per_action > 0 && r->amount > c->per_action) {
                    reason(a, "%s/%s: %.2f %s is above the pact's %.2f per action", pact->id, c->id,
                           r->amount, r->currency, c->per_action);
                    return deny(a);
                }
                if (c->per_window > 0 && r->amount > c->per_window) {
                    reason(a, "%s/%s: %.2f %s is above the pact's %.2f per window", pact->id, c->id,
                           r->amount, r->currency, c->per_window);
                    return deny(a);
                }
            }
            reason(a, "%s/%s: within the pact's scope", pact->id, c->id);
        }
    }
    return false;
}

void pk_authorize(const pk_authz_input *in, pk_authz *out)
{
    const Pactum__V1__AuthorizeRequest *r = in->req;
    const Pactum__V1__Override *by = NULL, *allow, *denied;
    const pk_tier_scope *ts;
    const char *tier;
    char list[160];

    memset(out, 0, sizeof(*out));
    out->effective_tier = pk_effective_tier(in->state, in->now_ms, &by);
    tier = pk_tier_name(out->effective_tier);
    ts = &in->gov->tiers[(unsigned)out->effective_tier < PK_TIERS ? out->effective_tier : 0];
    if (by) {
        snprintf(out->override_id, sizeof(out->override_id), "%s", by->override_id);
        reason(out, "override %s by %s puts the agent on %s (decided: %s): %s", by->override_id,
               by->operator_id, tier, pk_tier_name(in->state->tier), by->reason);
    } else {
        reason(out, "tier %s", tier);
    }
    if ((denied = override_covering(in->state, PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY, r->action,
                                    in->now_ms))) {
        snprintf(out->override_id, sizeof(out->override_id), "%s", denied->override_id);
        reason(out, "override %s by %s denies '%s': %s", denied->override_id, denied->operator_id,
               r->action, denied->reason);
        deny(out);
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
            deny(out);
            return;
        }
        snprintf(out->override_id, sizeof(out->override_id), "%s", allow->override_id);
        reason(out, "override %s by %s allows '%s' on %s: %s", allow->override_id,
               allow->operator_id, r->action, tier, allow->reason);
    }
    if (scope_clauses_deny(in, out))
        return;
    if (ts->spend_per_action > 0 && r->amount > ts->spend_per_action) {
        reason(out, "%s: %.2f is above the %.2f one action may spend on this tier", tier, r->amount,
               ts->spend_per_action);
        deny(out);
        return;
    }
    if (!allow && (ts->approve_all || pk_patterns_match(&ts->approval, r->action) ||
                   (ts->spend_approval && r->amount > 0))) {
        if (ts->approve_all)
            reason(out, "%s: every action needs a person's approval", tier);
        else if (pk_patterns_match(&ts->approval, r->action))
            reason(out, "%s: '%s' needs a person's approval", tier, r->action);
        else
            reason(out, "%s: an action that spends money needs a person's approval", tier);
        out->permit = PACTUM__V1__PERMIT__PERMIT_NEEDS_APPROVAL;
        return;
    }
    reason(out, "allowed");
    out->permit = PACTUM__V1__PERMIT__PERMIT_ALLOW;
}
