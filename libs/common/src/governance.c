#include "pk/governance.h"

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

void pk_scope_view_build(pk_scope_view *v, const pk_governance *g,
                         const Pactum__V1__TrustState *s, Pactum__V1__Tier tier, int64_t now)
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
            else if (o->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_DENY &&
                     nd < PK_SCOPE_VIEW_MAX)
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
