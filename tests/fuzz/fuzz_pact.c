/*
 * Fuzz: the pact language. Any bytes go through the parser and lint; a pact
 * that compiles has its conditions evaluated against an event.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fixtures.h"
#include "pk/pact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pk_pact *p = NULL;
    pk_lint l = {0};

    if (pk_pact_parse((const char *)data, size, &p, &l) == PK_OK && p) {
        h_event e;
        pk_event_msg *ev = h_event_set(&e, p->agent, 0, "reply", "latency_ms", 800, "pii", "none");
        ev->action = "refund.issue";
        ev->amount = 12.5;
        ev->currency = "USD";
        for (size_t i = 0; i < p->n_clauses; i++) {
            const pk_clause *c = &p->clauses[i];
            if (c->when)
                (void)pk_pred_eval(c->when, ev);
            if (c->match)
                (void)pk_pred_eval(c->match, ev);
            if (c->evidence)
                (void)pk_pred_eval(c->evidence, ev);
            (void)pk_patterns_match(&c->actions, ev->action);
        }
    }
    pk_pact_free(p);
    pk_lint_free(&l);
    return 0;
}
