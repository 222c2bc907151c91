/*
 * pk/governance.h - what an agent may do now: the tier in force once the
 * overrides are applied, and that tier's scope as the governance section of
 * its pact (or the defaults) writes it. Used by the oracle and the CLI.
 *
 * Everything returned borrows from the state and the governance passed in.
 */
#ifndef PK_GOVERNANCE_H
#define PK_GOVERNANCE_H

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
    Pactum__V1__TierScope scope;            /* the answer */
    char *actions[PK_SCOPE_VIEW_MAX];       /* borrowed strings */
    char *approval[PK_SCOPE_VIEW_MAX];
    char *allowed[PK_SCOPE_VIEW_MAX];
    char *denied[PK_SCOPE_VIEW_MAX];
} pk_scope_view;

/* The scope of tier under g, with the allow and deny overrides of s in force at now. */
void pk_scope_view_build(pk_scope_view *v, const pk_governance *g,
                         const Pactum__V1__TrustState *s, Pactum__V1__Tier tier, int64_t now);

#endif
