/*
 * The permissions of every bus user. Subjects follow pk/bus.h; JetStream API
 * subjects are the ones cnats 3.4 publishes to (account and stream info,
 * message get, durable create/info/delete, fetch, ack, named reader create,
 * flow control).
 *
 * A JetStream consumer's settings travel in the request's body, where no
 * permission reaches: whoever may send "$JS.API.CONSUMER.CREATE.<stream>"
 * may name an existing durable in it and change it (deliver headers only, one
 * message at a time ...). So no one gets that subject. Readers are created
 * on "$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>", where the server
 * takes the name from the subject, and every durable's name on that stream
 * is denied.
 */
#include "pk/buspolicy.h"

#include "pk/lease.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pk/bus.h"
#include "pk/natsauth.h"

static const char *const role_names[PK_BUS_ROLES] = {"agent", "owner", "operator", "arbiter",
                                                     "reporter"};

const char *pk_bus_role_name(pk_bus_role role)
{
    return (unsigned)role < PK_BUS_ROLES ? role_names[role] : "unknown";
}

void pk_bus_inbox(const uint8_t user_pk[32], char *out)
{
    char u[PK_NKEY_PUBLIC_LEN + 1];

    pk_nkey_public(PK_NKEY_USER, user_pk, u);
    snprintf(out, 64, "_INBOX.%s", u);
}

/* Permissions being written: subjects allowed, publishing denied, whether replies are allowed. */
typedef struct perms {
    json_t *pub, *sub, *pub_deny;
    bool replies;
} perms;

static void pub(perms *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sub(perms *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void deny(perms *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(json_t *list, const char *fmt, va_list ap)
{
    char s[256];

    vsnprintf(s, sizeof(s), fmt, ap);
    json_array_append_new(list, json_string(s));
}

static void pub(perms *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(p->pub, fmt, ap);
    va_end(ap);
}

static void sub(perms *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(p->sub, fmt, ap);
    va_end(ap);
}

static void deny(perms *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(p->pub_deny, fmt, ap);
    va_end(ap);
}

static perms start(void)
{
    return (perms){.pub = json_array(), .sub = json_array(), .pub_deny = json_array()};
}

static json_t *done(perms *p)
{
    json_t *out = json_pack("{s:{s:o}, s:{s:o}}", "pub", "allow", p->pub, "sub", "allow", p->sub);

    if (out && json_array_size(p->pub_deny) > 0)
        json_object_set(json_object_get(out, "pub"), "deny", p->pub_deny);
    json_decref(p->pub_deny);
    if (out && p->replies)
        json_object_set_new(out, "resp", json_pack("{s:i, s:i}", "max", 1, "ttl", 0));
    return out;
}

/* A durable pull consumer of the user's own: read, fetch, acknowledge, create, delete. */
static void own_consumer(perms *p, const char *stream, const char *name)
{
    pub(p, "$JS.API.CONSUMER.INFO.%s.%s", stream, name);
    pub(p, "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, name);
    pub(p, "$JS.API.CONSUMER.DELETE.%s.%s", stream, name);
    pub(p, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, name);
    pub(p, "$JS.ACK.%s.%s.>", stream, name);
}

/*
 * The durable consumers on a stream, by name: the services' own (see
 * services/ and pk_pworkers), which no reader may take the name of.
 */
static void deny_durables(perms *p, const char *stream, uint32_t partitions)
{
    static const struct {
        const char *stream, *name;
        bool per_partition; /* name-p0, name-p1 ... */
    } durables[] = {{PK_STREAM_RAW, "ingest", false},
                    {PK_STREAM_EVENTS, "evaluator", true},
                    {PK_STREAM_VERDICTS, "scorer", true},
                    {PK_STREAM_VERDICTS, "log-verdicts", false},
                    {PK_STREAM_REGISTRY, "log-registry", false},
                    {PK_STREAM_EVENTS, "log-events", false},
                    {PK_STREAM_TRUST, "log-trust", false},
                    {PK_STREAM_AUDIT, "log-audit", false}};

    for (size_t i = 0; i < sizeof(durables) / sizeof(durables[0]); i++) {
        if (strcmp(durables[i].stream, stream) != 0)
            continue;
        if (!durables[i].per_partition)
            deny(p, "$JS.API.CONSUMER.CREATE.%s.%s.>", stream, durables[i].name);
        for (uint32_t n = 0; durables[i].per_partition && n < partitions; n++)
            deny(p, "$JS.API.CONSUMER.CREATE.%s.%s-p%u.>", stream, durables[i].name, n);
    }
}

/*
 * A reader of a stream: a push consumer of its own making, named in the
 * subject (pk_consumer_open without a durable), delivering to the inbox.
 */
static void ordered_reader(perms *p, const char *stream, uint32_t partitions)
{
    pub(p, "$JS.API.CONSUMER.CREATE.%s.*.>", stream);
    deny_durables(p, stream, partitions);
    pub(p, "$JS.FC.%s.>", stream);
}

/* What every service does: its inbox, health and metrics, the registry copy, stream checks. */
static void service_common(perms *p, const char *service, const char *inbox)
{
    p->replies = true;
    sub(p, "%s.>", inbox);
    sub(p, PK_SUBJ_HEALTH, service);
    pub(p, PK_SUBJ_HEALTH, service); /* its own health check (a container's healthcheck) */
    sub(p, PK_SUBJ_METRICS, service);
    sub(p, "pactum.registry.*.*");
    pub(p, "$JS.API.INFO");
    pub(p, "$JS.API.STREAM.INFO.*");
    pub(p, "$JS.API.STREAM.MSG.GET.%s", PK_STREAM_REGISTRY);
    pub(p, "pactum.rejected.*");
}

static void ingest(perms *p, uint32_t partitions)
{
    (void)partitions;
    sub(p, PK_SUBJ_REG_SUBMIT);
    sub(p, PK_SUBJ_GOV_SUBMIT);
    pub(p, "pactum.events.>");
    pub(p, "pactum.verdicts.*.*.g");
    pub(p, "pactum.registry.agent.*");
    pub(p, "pactum.registry.pact.*");
    pub(p, "pactum.ingest.receipt.*");
    pub(p, "$JS.API.DIRECT.GET.%s", PK_STREAM_VERDICTS); /* an agent's governance records */
    own_consumer(p, PK_STREAM_RAW, "ingest");
}

/* Partition leases (pk/lease.h): read the bucket, write only the service's own keys. */
static void leases(perms *p, const char *service)
{
    pub(p, "$JS.API.STREAM.INFO.KV_%s", PK_LEASE_BUCKET);
    pub(p, "$JS.API.STREAM.MSG.GET.KV_%s", PK_LEASE_BUCKET);
    pub(p, "$JS.API.DIRECT.GET.KV_%s.$KV.%s.%s.>", PK_LEASE_BUCKET, PK_LEASE_BUCKET, service);
    pub(p, "$KV.%s.%s.>", PK_LEASE_BUCKET, service);
}

static void evaluator(perms *p, uint32_t partitions)
{
    char name[32];

    pub(p, "pactum.verdicts.*.*.v");
    sub(p, "pactum.evaluator.probe.*"); /* the oracle asks what a request would do */
    pub(p, "$JS.API.STREAM.MSG.GET.%s", PK_STREAM_APPROVALS); /* is an approval real? */
    pub(p, "pactum.approvals.*"); /* ... and claimed by one event only */
    leases(p, "evaluator");
    pub(p, "$JS.API.DIRECT.GET.%s", PK_STREAM_EVENTS); /* is a gap in its consumer real? */
    for (uint32_t i = 0; i < partitions; i++) {
        snprintf(name, sizeof(name), "evaluator-p%u", i);
        own_consumer(p, PK_STREAM_EVENTS, name);
    }
}

static void scorer(perms *p, uint32_t partitions)
{
    char name[32];

    sub(p, PK_SUBJ_SCORER_DIGEST);
    pub(p, "pactum.trust.*");
    pub(p, "pactum.verdicts.*.*.t"); /* its clock: a silent agent's tick */
    leases(p, "scorer");
    pub(p, "$JS.API.DIRECT.GET.%s", PK_STREAM_VERDICTS); /* is a gap in its consumer real? */
    for (uint32_t i = 0; i < partitions; i++) {
        snprintf(name, sizeof(name), "scorer-p%u", i);
        own_consumer(p, PK_STREAM_VERDICTS, name);
    }
    ordered_reader(p, PK_STREAM_VERDICTS, partitions); /* an agent's history, for a ruling */
}

static void oracle(perms *p, uint32_t partitions)
{
    static const char *const logged[][2] = {{PK_STREAM_REGISTRY, "log-registry"},
                                            {PK_STREAM_EVENTS, "log-events"},
                                            {PK_STREAM_VERDICTS, "log-verdicts"},
                                            {PK_STREAM_TRUST, "log-trust"},
                                            {PK_STREAM_AUDIT, "log-audit"}};

    sub(p, "pactum.oracle.>");
    pub(p, "pactum.audit.*");
    pub(p, "pactum.evaluator.probe.*"); /* what a request would do to the clauses in force */
    pub(p, "pactum.approvals.*");       /* an approval, used once */
    pub(p, PK_SUBJ_LOG_LEAVES);
    pub(p, PK_SUBJ_LOG_HEAD);
    for (size_t i = 0; i < sizeof(logged) / sizeof(logged[0]); i++) {
        own_consumer(p, logged[i][0], logged[i][1]);
        pub(p, "$JS.API.STREAM.MSG.GET.%s", logged[i][0]); /* records, for proofs */
    }
    /* the read model: a durable of each instance's own, named after it (oracle-model-<hash>) */
    own_consumer(p, PK_STREAM_TRUST, "*");
    pub(p, "$JS.API.DIRECT.GET.%s", PK_STREAM_TRUST); /* is a gap in its consumer real? */
    ordered_reader(p, PK_STREAM_TRUST, partitions);
    ordered_reader(p, PK_STREAM_LOG, partitions); /* the log, from its own size */
}

/*
 * The HTTP gateway: envelopes it has authenticated (their signature checked under the
 * signer's registered key, as the bus would check the subject) onto the raw stream, the
 * receipts ingest sends for them, and owner-signed registrations. Ingest judges all of it
 * as it judges what comes over the bus.
 */
static void gateway(perms *p, uint32_t partitions)
{
    (void)partitions;
    pub(p, "pactum.raw.*");
    sub(p, "pactum.ingest.receipt.*");
    pub(p, PK_SUBJ_REG_SUBMIT);
}

json_t *pk_policy_service(const char *service, uint32_t partitions, const char *inbox)
{
    static const struct {
        const char *name;
        void (*fill)(perms *p, uint32_t partitions);
    } services[] = {{"ingest", ingest},
                    {"evaluator", evaluator},
                    {"scorer", scorer},
                    {"oracle", oracle},
                    {"gateway", gateway}};
    perms p;

    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (strcmp(services[i].name, service) != 0)
            continue;
        p = start();
        service_common(&p, service, inbox);
        services[i].fill(&p, partitions);
        return done(&p);
    }
    return NULL;
}

/* Health, metrics, the scorer's digest and what pactum replay reads (the registry, verdicts). */
static void monitoring(perms *p, uint32_t partitions)
{
    pub(p, "pactum.health.*");
    pub(p, "pactum.metrics.*");
    pub(p, PK_SUBJ_SCORER_DIGEST);
    sub(p, "pactum.registry.*.*");
    pub(p, "$JS.API.STREAM.INFO.*"); /* the streams' settings and sizes, partitions */
    pub(p, "$JS.API.STREAM.MSG.GET.%s", PK_STREAM_REGISTRY);
    ordered_reader(p, PK_STREAM_VERDICTS, partitions);
    /* replay checks its statements against the published ones: reads, never a consumer */
    pub(p, "$JS.API.DIRECT.GET.%s", PK_STREAM_TRUST);
}

json_t *pk_policy_role(pk_bus_role role, uint32_t partitions)
{
    perms p = start();

    sub(&p, "_INBOX.{{subject()}}.>");
    pub(&p, "pactum.oracle.>");
    switch (role) {
    case PK_BUS_AGENT:
    case PK_BUS_REPORTER:
        pub(&p, "pactum.raw.{{name()}}");
        sub(&p, "pactum.ingest.receipt.{{name()}}");
        /* a counterparty's dispute, a buyer's (an agent or a person) about its engagement;
         * ingest decides who may open which */
        pub(&p, PK_SUBJ_GOV_SUBMIT);
        break;
    case PK_BUS_OWNER:
        pub(&p, PK_SUBJ_REG_SUBMIT);
        pub(&p, PK_SUBJ_GOV_SUBMIT);
        break;
    case PK_BUS_OPERATOR:
        pub(&p, PK_SUBJ_GOV_SUBMIT);
        monitoring(&p, partitions);
        break;
    case PK_BUS_ARBITER:
        pub(&p, PK_SUBJ_GOV_SUBMIT);
        break;
    case PK_BUS_ROLES:
        break;
    }
    return done(&p);
}

json_t *pk_policy_enroll(const char *inbox)
{
    perms p = start();

    sub(&p, "%s.>", inbox);
    pub(&p, PK_SUBJ_REG_SUBMIT);
    pub(&p, "pactum.oracle.>");
    return done(&p);
}

json_t *pk_policy_monitor(const char *inbox, uint32_t partitions)
{
    perms p = start();

    sub(&p, "%s.>", inbox);
    pub(&p, "pactum.oracle.>");
    monitoring(&p, partitions);
    return done(&p);
}

json_t *pk_policy_setup(const char *inbox)
{
    perms p = start();

    sub(&p, "%s.>", inbox);
    pub(&p, "$JS.API.>");
    return done(&p);
}
