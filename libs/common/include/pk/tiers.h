/*
 * pk/tiers.h - the tier ladder (trusted, standard, watch, restricted,
 * contained, suspended): which tier a score gives, how an input moves an
 * agent on it, and the re-entry criteria that let a held agent out. Integer
 * arithmetic on input times only, like the rest of the trust state.
 */
#ifndef PK_TIERS_H
#define PK_TIERS_H

#include "pk/trust.h"

/* The rule name of a tier change that re-entry criteria allowed. */
#define PK_RULE_REENTRY "re-entry criteria met"

/* Tier the score alone would give. */
int pk_tier_from_score(const pk_trust *t, const pk_governance *g);

/*
 * The tier rules, after an input: consequence is the consequence of the
 * violation the input was (NULL: not a violation), severity its severity.
 * Moves t and records the rule and any re-entry criteria in fx.
 */
void pk_tiers_decide(pk_trust *t, const pk_governance *g, const char *consequence, int severity,
                     pk_trust_effect *fx);

/*
 * The re-entry criteria of t's held tier under g, each with what it needs
 * and its value (measured at t's clock), into fx->crit; whether all are met.
 * False with no criteria when the tier is not held or has none.
 */
bool pk_tiers_reentry(const pk_trust *t, const pk_governance *g, pk_trust_effect *fx);

/* The cause sentence of fx after verdict v (NULL: a governance record). */
void pk_tiers_explain(const pk_trust *t, const pk_verdict_msg *v, pk_trust_effect *fx);

/* "re-entry from contained: clean_window_ms 90000000 (>= 86400000), ..." into buf. */
void pk_tiers_criteria_text(const pk_trust_effect *fx, const char *what, char *buf, size_t len);

#endif
