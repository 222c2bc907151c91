/*
 * pk/buspolicy.h - who may do what on the bus. Every service, person and agent
 * connects as a NATS user of its own, and each user may publish and subscribe
 * only where its part needs: these functions write those permissions, once,
 * for `pactum setup` (services, the setup and enroll users, the role
 * templates) and for the issuer in ingest. docs/security.md explains them.
 *
 * Every user reads replies only on its own inbox prefix, "_INBOX.<its public
 * nkey>" (pk_bus_inbox): no one reads another's replies. JetStream consumers
 * are named per service and partition; a service may fetch from, acknowledge,
 * read, create and delete only its own (to restart one from its own stored
 * position). A user that reads a stream makes a reader of its own, named in
 * the request's subject, and may not use any durable's name. No run-time
 * user may create, change or delete a stream.
 */
#ifndef PK_BUSPOLICY_H
#define PK_BUSPOLICY_H

#include <jansson.h>
#include <stdint.h>

/* People and agents, whose credentials ingest issues when they register. */
typedef enum pk_bus_role {
    PK_BUS_AGENT,    /* publishes its own events; asks the oracle; disputes as a counterparty */
    PK_BUS_OWNER,    /* registers agents and pacts; disputes; asks the oracle */
    PK_BUS_OPERATOR, /* overrides and acknowledgements; health, metrics, replay */
    PK_BUS_ARBITER,  /* rulings */
    PK_BUS_REPORTER, /* an evaluator or human reviewer: publishes events about agents */
    PK_BUS_ROLES
} pk_bus_role;

/* "agent", "owner", "operator", "arbiter", "reporter". */
const char *pk_bus_role_name(pk_bus_role role);

/* A user's inbox prefix: "_INBOX." and its public nkey (out: 64 bytes). */
void pk_bus_inbox(const uint8_t user_pk[32], char *out);

/*
 * The permissions every user of a role gets, as the template of the scoped
 * signing key that ingest signs its users with ({{name()}} is the user's id),
 * on a bus with `partitions` partitions.
 */
json_t *pk_policy_role(pk_bus_role role, uint32_t partitions);

/*
 * The permissions of a service ("ingest", "evaluator", "scorer", "oracle")
 * for a bus with `partitions` partitions, reading replies on inbox; NULL for
 * another name. A new reference.
 */
json_t *pk_policy_service(const char *service, uint32_t partitions, const char *inbox);

/* The shared user anyone may use to register and to ask the oracle. */
json_t *pk_policy_enroll(const char *inbox);

/* The user scripts and operators' tools check health with: health, metrics, replay. */
json_t *pk_policy_monitor(const char *inbox, uint32_t partitions);

/* The user `pactum setup` creates streams with: JetStream administration. */
json_t *pk_policy_setup(const char *inbox);

#endif
