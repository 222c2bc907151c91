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

#include "pk/clause.h"
#include "pk/codec.h"
#include "pk/pact.h"

/*
 * Is the override in force at now for an agent in state s? Between its
 * creation and its expiry, and written after the agent's newest containment:
 * an override belongs to the incident it was written for (s may be NULL).
 */
bool pk_override_active(const Pactum__V1__Override *o, const Pactum__V1__TrustState *s,
                        int64_t now);

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

/* What a clause in force says of the imagined event (pk_clause_probe). */
typedef struct pk_authz_finding {
    const char *pact_id, *clause_id; /* borrowed */
    bool violation;                  /* the event would break the clause */
    bool needs_approval;             /* its amount is above the clause's approval_above */
    char why[192];                   /* what the violation would be */
} pk_authz_finding;

#define PK_AUTHZ_FINDINGS PK_CLAUSES_PER_AGENT_MAX

/* What an installation does for an agent no pact binds. */
typedef enum pk_unbound_policy {
    PK_UNBOUND_APPROVAL = 0, /* every action needs a person's approval (the default) */
    PK_UNBOUND_DENY,
    PK_UNBOUND_ALLOW,
} pk_unbound_policy;

/* What pk_authorize looks at. */
typedef struct pk_authz_input {
    const Pactum__V1__TrustState *state; /* the agent's state (decided tier, overrides) */
    const pk_governance *gov;            /* its governance section, or the defaults */
    size_t n_pacts;                      /* pacts in force (0: the unbound policy decides) */
    pk_unbound_policy unbound;           /* what to do then */
    /* the scope and forbidden clauses in force, judged on the event the request
     * imagines, with the clause states as the evaluator has them */
    const pk_authz_finding *findings;
    size_t n_findings;
    int review_cap;          /* 0, or the best tier while a pact is overdue for review */
    const char *review_pact; /* the overdue pact */
    const Pactum__V1__AuthorizeRequest *req; /* the action asked about */
    const char *approved_by;                 /* a valid one-time approval of it, or NULL */
    const char *approval_id;
    int64_t now_ms; /* overrides in force at this time */
} pk_authz_input;

typedef struct pk_authz {
    Pactum__V1__Permit permit;       /* allow, deny or needs approval */
    Pactum__V1__Tier effective_tier; /* tier in force, overrides applied */
    char override_id[PK_ID_MAX + 1]; /* the override that changed the answer, or "" */
    char reasons[PK_AUTHZ_REASONS][PK_AUTHZ_REASON_LEN]; /* every rule that spoke, in order */
    int n_reasons;
    /* decided by a rule before the clauses' (the unbound policy, a deny override, the tier's
     * scope): the findings could not change the answer, so they need not be asked for */
    bool before_clauses;
} pk_authz;

/*
 * May the agent do req->action now? The rules, in order (docs/oracle-api.md):
 * no pact binds the agent: the installation's policy; a deny override in
 * force denies; a tier that allows nothing denies; an action outside the
 * tier's list denies unless an allow override covers it; the imagined event
 * breaking a scope or forbidden clause in force denies; an amount above the
 * tier's limit denies; an amount above a clause's approval_above, an action
 * on the tier's approval list (or any spend where the tier wants approval for
 * spending) needs a person's approval (the tier's, not the pact's, is skipped
 * by an allow override, which is named); a valid approval turns "needs
 * approval" into allow; everything else is allowed.
 */
void pk_authorize(const pk_authz_input *in, pk_authz *out);

/*
 * Where pk_authz_findings reads the state of a clause: fill *s (initialised
 * empty by the caller) with the stored state of (agent, pact, clause), or
 * leave it empty when there is none.
 */
typedef void (*pk_clause_state_fn)(void *ctx, const pk_pact *pact, const pk_clause *c,
                                   pk_clause_state *s);

/*
 * Could the findings on ev depend on the clauses' stored states? Only where ev matches a
 * forbidden clause's pattern (the count in the window decides), or spends in the currency of
 * a scope clause with a limit per window (the sum decides). When false, the findings with
 * empty states are the findings: the oracle need not ask the evaluator for its states.
 */
bool pk_authz_needs_state(pk_pact *const *pacts, size_t n_pacts, const pk_event_msg *ev);

/*
 * Judge ev with every scope and forbidden clause of the pacts (pk_clause_probe
 * on each clause's state from get): the findings of the clauses it is about,
 * at most max; how many.
 */
size_t pk_authz_findings(pk_pact *const *pacts, size_t n_pacts, const pk_event_msg *ev,
                         pk_clause_state_fn get, void *ctx, pk_authz_finding *out, size_t max);

/*
 * The event a request imagines: agent, action, tool, resource, amount and
 * currency as asked, kind the request's (its action when it names none),
 * self-reported, at now_ms. Borrows from req.
 */
void pk_authz_event(const Pactum__V1__AuthorizeRequest *req, int64_t now_ms, pk_event_msg *ev);

#endif
