/*
 * Fuzz: the pact language. Any bytes go through the parser and lint; a pact
 * that compiles has its conditions evaluated against an event.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pk/pact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pk_pact *p = NULL;
    pk_lint l = {0};

    if (pk_pact_parse((const char *)data, size, &p, &l) == PK_OK && p) {
        pk_event_msg ev = PACTUM__V1__EVENT__INIT;
        Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT, *mp[1] = {&m};
        Pactum__V1__Label lb = PACTUM__V1__LABEL__INIT, *lp[1] = {&lb};
        ev.event_id = "e";
        ev.agent_id = p->agent;
        ev.kind = "reply";
        ev.action = "refund.issue";
        ev.amount = 12.5;
        ev.currency = "USD";
        m.name = "latency_ms";
        m.value = 800;
        lb.name = "pii";
        lb.value = "none";
        ev.metrics = mp;
        ev.n_metrics = 1;
        ev.labels = lp;
        ev.n_labels = 1;
        for (size_t i = 0; i < p->n_clauses; i++) {
            const pk_clause *c = &p->clauses[i];
            if (c->when)
                (void)pk_pred_eval(c->when, &ev);
            if (c->match)
                (void)pk_pred_eval(c->match, &ev);
            if (c->evidence)
                (void)pk_pred_eval(c->evidence, &ev);
            (void)pk_patterns_match(&c->actions, ev.action);
        }
    }
    pk_pact_free(p);
    pk_lint_free(&l);
    return 0;
}
