/*
 * pk/governance.h - what an agent may do now: the tier in force once the
 * overrides are applied, and that tier's scope as the governance section of
 * its pact (or the defaults) writes it. Used by the oracle and the CLI.
 *
 * Everything returned borrows from the state and the governance passed in.
 */
#ifndef PK_AUTHORIZE_H
#define PK_AUTHORIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/codec.h"
#include "pk/pact.h"

/* Is the override in force at now? */
bool pk_override_active(const Pactum__V1__Override *o, int64_t now);

/* The tier in force at now: the newest tier override in force, else the decided tier. */
Pactum__V1__Tier pk_effective_tier(const Pactum__V1__TrustState *s, int64_t now,
                                   const Pactum__V1__Override **by);

#define PK_SCOPE_VIEW_MAX 192

/* Storage for a TierScope built by pk_scope_view. */
typedef struct pk_scope_view {
    Pactum__V1__TierScope scope;      /* the answer */
    char *actions[PK_SCOPE_VIEW_MAX]; /* borrowed strings */
    char *approval[PK_SCOPE_VIEW_MAX];
    char *allowed[PK_SCOPE_VIEW_MAX];
    char *denied[PK_SCOPE_VIEW_MAX];
} pk_scope_view;

/* The scope of tier under g, with the allow and deny overrides of s in force at now. */
void pk_scope_view_build(pk_scope_view *v, const pk_governance *g, const Pactum__V1__TrustState *s,
                         Pactum__V1__Tier tier, int64_t now);

/* --- authorize ---------------------------------------------------------------- */

#define PK_AUTHZ_REASONS    16
#define PK_AUTHZ_REASON_LEN 240

/* What pk_authorize looks at. */
typedef struct pk_authz_input {
    const Pactum__V1__TrustState *state; /* the agent's state (decided tier, overrides) */
    const pk_governance *gov;            /* its governance section, or the defaults */
    pk_pact *const *pacts;               /* its pacts in force, compiled */
    size_t n_pacts;
    const Pactum__V1__AuthorizeRequest *req; /* the action asked about */
    int64_t now_ms;                          /* overrides in force at this time */
} pk_authz_input;

typedef struct pk_authz {
    Pactum__V1__Permit permit;       /* allow, deny or needs approval */
    Pactum__V1__Tier effective_tier; /* tier in force, overrides applied */
    char override_id[PK_ID_MAX + 1]; /* the override that changed the answer, or "" */
    char reasons[PK_AUTHZ_REASONS][PK_AUTHZ_REASON_LEN]; /* every rule that spoke, in order */
    int n_reasons;
} pk_authz;

/*
 * May the agent do req->action now? The rules, in order (docs/oracle-api.md):
 * a deny override in force denies; a tier that allows nothing denies; an
 * action outside the tier's list denies unless an allow override covers it;
 * an action, tool, resource or amount outside a scope clause of a pact in
 * force denies; an amount above the tier's limit denies; an action on the
 * tier's approval list (or any spend where the tier wants approval for
 * spending) needs a person's approval unless an allow override covers it;
 * everything else is allowed.
 */
void pk_authorize(const pk_authz_input *in, pk_authz *out);

#endif
