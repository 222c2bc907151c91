/*
 * Identities nobody can borrow and rights nobody can stretch. The bus runs as
 * deployed (h_start_secure): TLS, operator mode, the streams and consumers
 * made by the setup user, each service on its own credentials, and every
 * agent and principal on the user JWT its registration returned. Each test
 * is an attack tried with real credentials; what the bus lets through, the
 * services must still refuse.
 *
 * The harness's own connection has every right: it stands for a server that
 * was broken into, and is used only to look and to try forgeries.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/codec.h"

#define PARTITIONS 4 /* pactum setup init's default */

static h_env h;
static pk_keypair ka, koa, kb, kob, kops;
static char out[65536];

static const char pact_a[] =
    "{\"pactum\":1,\"id\":\"a\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"c\","
    "\"promise\":\"never "
    "leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\",\"window\":\"1d\","
    "\"match\":{\"field\":\"kind\",\"eq\":\"leak\"}},"
    /* a forbidden kind judges only that kind: something must judge every event */
    "{\"id\":\"alive\",\"promise\":\"keeps reporting\",\"severity\":\"low\","
    "\"kind\":\"freshness\",\"max_gap\":\"1d\"}]}";

static void write_file(const char *name, const char *text)
{
    char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", h.dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fputs(text, f) >= 0, true);
    fclose(f);
}

static void setup(void)
{
    /* every evaluation reported at once, so the counts below are exact */
    const char *evaluator_env[] = {"PACTUM_EVALUATOR_REPORT_EVERY=1", NULL};

    cr_assert(h_start_secure(&h, false), "the secure bus did not start (see %s)", h.dir);
    for (int i = 0; i < H_SERVICES; i++)
        cr_assert(h_start_service(&h, i, i == 1 ? evaluator_env : NULL),
                  "%s did not start on its own credentials", h_service_names[i]);
    h_keypair(&ka, 61);
    h_keypair(&koa, 62);
    h_keypair(&kb, 63);
    h_keypair(&kob, 64);
    h_keypair(&kops, 65);
    cr_assert(h_key_file(&h, "a", &ka) && h_key_file(&h, "oa", &koa) && h_key_file(&h, "b", &kb) &&
                  h_key_file(&h, "ob", &kob) && h_key_file(&h, "ops", &kops) &&
                  h_key_file(&h, "admin", &h.admin),
              "%s", h.why);
    /* people register through the CLI, as the enroll user; no server reload */
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "agent register --id bot-a --key a.key --owner-key oa.key"), 0,
        "%s", out);
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "agent register --id bot-b --key b.key --owner-key ob.key"), 0,
        "%s", out);
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "principal register --id @ops --role operator --key ops.key "
                       "--admin-key admin.key"),
                 0, "%s", out);
    write_file("a.json", pact_a);
    /* the owner's own identity (oa.key.jwt, saved by the registration) registers the pact */
    cr_assert_eq(h_cli(&h, out, sizeof(out), "pact register --key oa.key a.json"), 0, "%s", out);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 240);

/* The JWT a registration saved next to a key file, read whole; caller frees. */
static char *saved_jwt(const char *key)
{
    char path[400], *jwt = calloc(1, 4096);
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.key.jwt", h.dir, key);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s was not saved by the registration", path);
    cr_assert_not_null(fgets(jwt, 4096, f));
    fclose(f);
    jwt[strcspn(jwt, "\r\n")] = '\0';
    return jwt;
}

/* Connect as the identity a registration gave key (its seed file in h.dir). */
static pk_bus *as_key(const char *key, const pk_keypair *kp)
{
    char *jwt = saved_jwt(key);
    pk_bus *bus = h_connect_jwt(&h, jwt, kp, key);

    free(jwt);
    cr_assert_not_null(bus, "%s cannot connect: %s", key, h.why);
    return bus;
}

/* Connect as one of the users pactum setup init made (ingest, enroll, monitor ...). */
static pk_bus *as_creds(const char *user)
{
    char path[400];
    pk_bus *bus;

    snprintf(path, sizeof(path), "%s/creds/%s.creds", h.auth, user);
    bus = h_connect_creds(&h, path, user);
    cr_assert_not_null(bus, "%s cannot connect: %s", user, h.why);
    return bus;
}

/* One event of agent `about`, signed by kp as `signer`, published by bus on subject. */
static bool publish_event(pk_bus *bus, const char *subject, const char *signer,
                          const pk_keypair *kp, const char *id, const char *about, const char *kind)
{
    pk_event_msg ev, *evp = &ev;
    uint8_t *env;
    size_t len;
    bool ok;

    h_event_init(&ev, id, about, kind, NULL, NULL);
    env = h_envelope(signer, kp, &evp, 1, &len);
    ok = pk_bus_publish_sync(bus, subject, env, len, NULL, false, 0, NULL, NULL) == PK_OK;
    free(env);
    return ok;
}

static int violations_in_server_log(void)
{
    char path[400], line[2048];
    FILE *f;
    int n = 0;

    snprintf(path, sizeof(path), "%s/nats.log", h.dir);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, "Violation") != NULL; /* "Publish Violation", "Subscription Violation" */
    fclose(f);
    return n;
}

/* JetStream calls wait this long: a refused request is never answered. */
static jsOptions short_wait(void)
{
    jsOptions o;

    jsOptions_Init(&o);
    o.Wait = 700;
    return o;
}

/* Wait (bounded) until the server's refusal of something bus did has reached it. */
static bool denied(pk_bus *bus)
{
    for (int i = 0; i < 40 && !atomic_load(&bus->denied); i++)
        pk_sleep_ms(50);
    return atomic_load(&bus->denied);
}

/* Every run-time identity there is: the services, the shared users, a person and an agent. */
typedef struct identity {
    const char *name;
    pk_bus *bus;
} identity;

#define IDENTITIES 9

static void connect_all(identity *ids)
{
    static const char *const users[] = {"ingest", "evaluator", "scorer",
                                        "oracle", "enroll",    "monitor"};
    int n = 0;

    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++, n++)
        ids[n] = (identity){users[i], as_creds(users[i])};
    ids[n++] = (identity){"agent bot-a", as_key("a", &ka)};
    ids[n++] = (identity){"owner of bot-a", as_key("oa", &koa)};
    ids[n++] = (identity){"operator @ops", as_key("ops", &kops)};
    cr_assert_eq(n, IDENTITIES);
}

static void close_all(identity *ids)
{
    for (int i = 0; i < IDENTITIES; i++)
        pk_bus_close(ids[i].bus);
}

Test(security, the_trust_loop_runs_with_each_part_on_its_own_identity)
{
    Pactum__V1__TrustReport *r;
    char path[400];
    struct stat sb;

    /* an agent registered a moment ago publishes on the identity it was given */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "event publish --agent bot-a --key a.key --kind reply --count 5"),
                 0, "%s", out);
    cr_assert(strstr(out, "5 accepted"), "%s", out);
    r = h_trust(&h, "bot-a");
    for (int i = 0; i < 100 && (!r || !r->state || r->state->evidence < 5); i++) {
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "bot-a");
    }
    cr_assert_not_null(r);
    cr_assert_geq(r->state->evidence, 5, "the events were judged and scored");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* anyone may read: the enroll user asks */
    cr_assert_eq(h_cli(&h, out, sizeof(out), "trust bot-a"), 0, "%s", out);
    /* a service may ask its own health (a container's healthcheck), no other's */
    cr_assert_eq(h_cli(&h, out, sizeof(out), "--creds %s/creds/ingest.creds health ingest", h.auth),
                 0, "%s", out);
    cr_assert_neq(
        h_cli(&h, out, sizeof(out), "--creds %s/creds/ingest.creds health scorer", h.auth), 0, "%s",
        out);
    cr_assert(strstr(out, "permission denied"), "%s", out);
    /* replay reads the verdicts as the monitor user */
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--creds %s/creds/monitor.creds replay --compare", h.auth), 0,
        "%s", out);
    cr_assert_eq(violations_in_server_log(), 1,
                 "no part of the suite needed a right it does not have (one refusal: the "
                 "health of another service)");
    /* the oracle's signing key and the setup's keys are their owners' alone */
    snprintf(path, sizeof(path), "%s/var/oracle/oracle.key", h.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/account.nk", h.auth);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0077, 0, "the account key is readable by others");
    cr_assert_eq(h_stop_services(&h), 0);
}

Test(security, an_agent_cannot_publish_as_another_and_forgeries_are_refused)
{
    pk_bus *a = as_key("a", &ka);

    /* the server refuses bot-a anywhere but its own subject */
    cr_assert_not(publish_event(a, "pactum.raw.bot-b", "bot-b", &ka, "x-1", "bot-b", "reply"),
                  "bot-a published on bot-b's subject");
    cr_assert_not(publish_event(a, "pactum.events.0.bot-b", "bot-a", &ka, "x-2", "bot-b", "reply"),
                  "bot-a bypassed ingest");
    cr_assert_not(publish_event(a, "pactum.trust.bot-a", "bot-a", &ka, "x-3", "bot-a", "reply"));
    cr_assert_not(
        publish_event(a, "pactum.registry.agent.bot-c", "bot-a", &ka, "x-4", "bot-a", "reply"));
    cr_assert(denied(a));
    cr_assert_geq(violations_in_server_log(), 4, "the server logged each refusal");
    pk_bus_close(a);

    /* past the bus (a server broken into), ingest still refuses forgeries */
    cr_assert(publish_event(h.bus, "pactum.raw.bot-b", "bot-b", &ka, "f-1", "bot-b", "reply"));
    cr_assert(publish_event(h.bus, "pactum.raw.bot-b", "bot-a", &ka, "f-2", "bot-b", "reply"));
    cr_assert_eq(h_wait_metric(&h, "ingest",
                               "pactum_ingest_rejected_total{reason=\"bad_signature\"}", 1, 10000),
                 1, "signed with bot-a's key in bot-b's name");
    cr_assert_eq(h_wait_metric(&h, "ingest",
                               "pactum_ingest_rejected_total{reason=\"subject_mismatch\"}", 1,
                               10000),
                 1, "bot-a's envelope on bot-b's subject");
    cr_assert_eq(h_metric(&h, "ingest", "pactum_ingest_events_accepted_total"), 0);
}

Test(security, a_publish_outside_ones_rights_says_permission_denied)
{
    /* bot-b's key file is not bot-a's: bot-a's identity tries bot-b's subject */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "event publish --agent bot-b --key a.key --kind reply --id x-1"),
                 4, "%s", out);
    cr_assert(strstr(out, "permission denied"), "%s", out);
    cr_assert_null(strstr(out, "timed out"), "%s", out);
    /* and the enroll user may register, not publish events */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "--creds %s/creds/enroll.creds event publish --agent bot-a --key a.key "
                       "--kind reply --id x-2",
                       h.auth),
                 4, "%s", out);
    cr_assert(strstr(out, "permission denied"), "%s", out);
}

Test(security, the_oracle_cannot_write_trust_state_and_no_query_changes_it)
{
    pk_bus *o, *a = as_key("a", &ka);
    Pactum__V1__TrustReport *before, *after;
    char digest[2][80];
    static const char *subjects[] = {PK_SUBJ_ORACLE_TRUST,     PK_SUBJ_ORACLE_PACT,
                                     PK_SUBJ_ORACLE_AUTHORIZE, PK_SUBJ_ORACLE_EVIDENCE,
                                     PK_SUBJ_ORACLE_ATTEST,    PK_SUBJ_ORACLE_FIGURES,
                                     PK_SUBJ_ORACLE_LOG};

    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q-%d", i);
        cr_assert(publish_event(a, "pactum.raw.bot-a", "bot-a", &ka, id, "bot-a", "reply"));
    }
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_verdicts_total", 3, 20000), 3);
    pk_sleep_ms(500);
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--creds %s/creds/monitor.creds replay --compare", h.auth), 0,
        "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", digest[0]), 1);
    before = h_trust(&h, "bot-a");

    /* every question, well formed and not, many times, from an agent */
    for (int round = 0; round < 20; round++) {
        for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++) {
            natsMsg *reply = NULL;
            char junk[32];
            snprintf(junk, sizeof(junk),
                     "\x0a\x05"
                     "bot-a\x10%c",
                     (char)round);
            if (natsConnection_Request(&reply, a->nc, subjects[s], junk,
                                       (int)strlen(junk) + (round % 3), 5000) == NATS_OK)
                natsMsg_Destroy(reply);
        }
    }
    pk_bus_close(a);
    /* and the oracle's own user cannot write what the scorer and ingest write */
    o = as_creds("oracle");
    cr_assert_not(publish_event(o, "pactum.trust.bot-a", "bot-a", &ka, "o-1", "bot-a", "reply"));
    cr_assert_not(
        publish_event(o, "pactum.verdicts.0.bot-a.v", "bot-a", &ka, "o-2", "bot-a", "reply"));
    cr_assert_not(publish_event(o, "pactum.events.0.bot-a", "bot-a", &ka, "o-3", "bot-a", "reply"));
    cr_assert_not(
        publish_event(o, "pactum.registry.pact.x", "bot-a", &ka, "o-4", "bot-a", "reply"));
    cr_assert(denied(o));
    pk_bus_close(o);

    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--creds %s/creds/monitor.creds replay --compare", h.auth), 0,
        "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", digest[1]), 1);
    cr_assert_str_eq(digest[0], digest[1], "the scorer's state did not move");
    after = h_trust(&h, "bot-a");
    cr_assert_eq(after->trust_seq, before->trust_seq, "no trust change was made");
    cr_assert_eq(after->state->evidence, before->state->evidence);
    pactum__v1__trust_report__free_unpacked(before, NULL);
    pactum__v1__trust_report__free_unpacked(after, NULL);
}

/* The consumers an attacker would most like to silence, and whose they are. */
static const struct victim {
    const char *stream, *name, *owner, *quiet_filter;
} victims[] = {
    {PK_STREAM_EVENTS, "evaluator-p0", "evaluator", "pactum.events.0.nobody"},
    {PK_STREAM_VERDICTS, "scorer-p0", "scorer", "pactum.verdicts.0.nobody.v"},
    {PK_STREAM_VERDICTS, "log-verdicts", "oracle", "pactum.verdicts.0.nobody.v"},
};
#define VICTIMS (sizeof(victims) / sizeof(victims[0]))

/* When each durable consumer of the services was made, checking it is as they made it. */
static void consumer_births(int64_t *born)
{
    for (int i = 0; i < PARTITIONS * 2 + 1; i++) {
        jsConsumerInfo *ci = NULL;
        char name[32];
        jsErrCode e = 0;
        const char *stream = i < PARTITIONS ? PK_STREAM_EVENTS : PK_STREAM_VERDICTS;
        if (i < PARTITIONS)
            snprintf(name, sizeof(name), "evaluator-p%d", i);
        else if (i < PARTITIONS * 2)
            snprintf(name, sizeof(name), "scorer-p%d", i - PARTITIONS);
        else
            snprintf(name, sizeof(name), "log-verdicts");
        cr_assert_eq(js_GetConsumerInfo(&ci, h.bus->js, stream, name, NULL, &e), NATS_OK,
                     "%s is gone (%d)", name, (int)e);
        cr_assert_eq(ci->Config->DeliverPolicy, js_DeliverAll, "%s was changed", name);
        cr_assert_not(ci->Config->HeadersOnly, "%s delivers headers only", name);
        cr_assert_neq(ci->Config->MaxAckPending, 1, "%s was throttled", name);
        cr_assert(!ci->Config->DeliverSubject || !ci->Config->DeliverSubject[0], "%s pushes to %s",
                  name, ci->Config->DeliverSubject);
        born[i] = ci->Created;
        jsConsumerInfo_Destroy(ci);
    }
}

/*
 * A consumer create request for victim with the settings it has now, except
 * that it would deliver headers only and one message at a time: an update
 * the server applies if the request is let through.
 */
static char *quiet_update(const char *stream, const char *victim)
{
    char subject[128], *text;
    natsMsg *info = NULL;
    json_t *doc, *cfg, *req;

    snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.INFO.%s.%s", stream, victim);
    cr_assert_eq(natsConnection_Request(&info, h.bus->nc, subject, "", 0, 5000), NATS_OK);
    doc = json_loadb(natsMsg_GetData(info), (size_t)natsMsg_GetDataLength(info), 0, NULL);
    natsMsg_Destroy(info);
    cfg = json_object_get(doc, "config");
    cr_assert_not_null(cfg, "no config for %s", victim);
    json_object_del(cfg, "durable_name");
    json_object_set_new(cfg, "name", json_string(victim));
    json_object_set_new(cfg, "headers_only", json_true());
    json_object_set_new(cfg, "max_ack_pending", json_integer(1));
    req = json_pack("{s:s, s:O}", "stream_name", stream, "config", cfg);
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_decref(doc);
    return text;
}

/*
 * Send every request at once from bus and collect the answers for a while: a
 * request the bus refuses is never answered. How many were done (answered
 * without an error); the first such answer in what (if not NULL).
 */
static int requests_done(pk_bus *bus, const char *const *subjects, char *const *bodies, int n,
                         char *what, size_t len)
{
    natsSubscription *answers = NULL;
    char reply[128], prefix[128];
    int done = 0;
    int64_t until;

    snprintf(prefix, sizeof(prefix), "%s.attempt.>", bus->inbox);
    cr_assert_eq(natsConnection_SubscribeSync(&answers, bus->nc, prefix), NATS_OK);
    for (int i = 0; i < n; i++) {
        snprintf(reply, sizeof(reply), "%s.attempt.%d", bus->inbox, i);
        cr_assert_eq(natsConnection_PublishRequestString(bus->nc, subjects[i], reply, bodies[i]),
                     NATS_OK);
    }
    cr_assert_eq(natsConnection_Flush(bus->nc), NATS_OK);
    until = pk_mono_ms() + 1500;
    while (pk_mono_ms() < until) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, answers, 100) != NATS_OK)
            continue;
        if (!strstr(natsMsg_GetData(m), "\"error\"") && done++ == 0 && what)
            snprintf(what, len, "%s: %s", natsMsg_GetSubject(m), natsMsg_GetData(m));
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(answers);
    return done;
}

/* Every way to take a victim's consumer away from its service, as requests (4). */
static int consumer_attacks(const struct victim *v, const char **subjects, char **bodies)
{
    char subj[256];
    json_t *doc;
    const char *filter;

    /* delete it ... */
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.DELETE.%s.%s", v->stream, v->name);
    subjects[0] = strdup(subj);
    bodies[0] = strdup("");
    /* ... recreate it under the same name, reading nothing from now on ... */
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", v->stream, v->name);
    subjects[1] = strdup(subj);
    doc = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "stream_name", v->stream, "config",
                    "durable_name", v->name, "ack_policy", "explicit", "deliver_policy", "new",
                    "filter_subject", v->quiet_filter);
    bodies[1] = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    /* ... or "create" it again with its own settings but for payloads nobody can
     * judge: by its name in the body, and by its name in the subject */
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.CREATE.%s", v->stream);
    subjects[2] = strdup(subj);
    bodies[2] = quiet_update(v->stream, v->name);
    doc = json_loads(bodies[2], 0, NULL);
    filter = json_string_value(json_object_get(json_object_get(doc, "config"), "filter_subject"));
    cr_assert_not_null(filter);
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.CREATE.%s.%s.%s", v->stream, v->name, filter);
    json_decref(doc);
    subjects[3] = strdup(subj);
    bodies[3] = strdup(bodies[2]);
    return 4;
}

Test(security, nobody_but_a_service_touches_its_consumers)
{
    identity ids[IDENTITIES];
    int64_t born[2][PARTITIONS * 2 + 1];

    consumer_births(born[0]);
    connect_all(ids);
    for (int i = 0; i < IDENTITIES; i++) {
        const char *subjects[VICTIMS * 4];
        char *bodies[VICTIMS * 4], what[1024] = "";
        int n = 0;
        for (size_t k = 0; k < VICTIMS; k++) {
            if (strcmp(ids[i].name, victims[k].owner) != 0) /* a service may remake its own */
                n += consumer_attacks(&victims[k], subjects + n, bodies + n);
        }
        cr_assert_eq(requests_done(ids[i].bus, subjects, bodies, n, what, sizeof(what)), 0,
                     "%s: %s", ids[i].name, what);
        cr_assert(denied(ids[i].bus), "the server refused %s", ids[i].name);
        for (int j = 0; j < n; j++) {
            free((char *)subjects[j]);
            free(bodies[j]);
        }
    }
    close_all(ids);

    /* every consumer is the one the services made, unchanged ... */
    pk_sleep_ms(1000);
    consumer_births(born[1]);
    for (int i = 0; i < PARTITIONS * 2 + 1; i++)
        cr_assert_eq(born[1][i], born[0][i], "consumer %d was remade", i);
    /* ... so a leak is still judged and the agent contained */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "event publish --agent bot-a --key a.key --kind leak --id leak-1"),
                 0, "%s", out);
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_containments_total", 1, 20000), 1,
                  "the leak was not judged");
}

Test(security, replies_and_receipts_are_read_only_by_whom_they_are_for)
{
    pk_bus *a = as_key("a", &ka), *b = as_key("b", &kb);
    natsSubscription *spy[4] = {0}, *mine = NULL;
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
    char b_inbox[80], *wire = NULL;
    size_t wlen = 0;
    const char *spied[4] = {"_INBOX.>", b_inbox, "pactum.ingest.receipt.bot-b", ">"};
    natsMsg *m = NULL;

    snprintf(b_inbox, sizeof(b_inbox), "%s.>", b->inbox);
    cr_assert(strncmp(b->inbox, "_INBOX.U", 8) == 0, "bot-b's inbox is its own: %s", b->inbox);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(natsConnection_SubscribeSync(&spy[i], a->nc, spied[i]), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&mine, b->nc, "pactum.ingest.receipt.bot-b"),
                 NATS_OK);
    cr_assert_eq(natsConnection_Flush(b->nc), NATS_OK);
    cr_assert(denied(a), "the server refused bot-a's subscriptions");

    /* bot-b asks the oracle (the answer goes to its inbox) and gets its receipt */
    q.agent_id = "bot-b";
    cr_assert_eq(pk_pack(&q.base, (uint8_t **)&wire, &wlen), PK_OK);
    cr_assert_eq(natsConnection_Request(&m, b->nc, PK_SUBJ_ORACLE_TRUST, wire, (int)wlen, 5000),
                 NATS_OK, "bot-b reads its own replies");
    natsMsg_Destroy(m);
    free(wire);
    cr_assert_eq(natsConnection_PublishString(h.bus->nc, "pactum.ingest.receipt.bot-b", "r"),
                 NATS_OK);
    cr_assert_eq(natsSubscription_NextMsg(&m, mine, 5000), NATS_OK, "bot-b reads its receipts");
    natsMsg_Destroy(m);

    /* bot-a saw none of it */
    for (int i = 0; i < 4; i++) {
        m = NULL;
        cr_assert_neq(natsSubscription_NextMsg(&m, spy[i], 300), NATS_OK, "bot-a read %s: %.*s",
                      spied[i], m ? natsMsg_GetDataLength(m) : 0, m ? natsMsg_GetData(m) : "");
        natsSubscription_Destroy(spy[i]);
    }
    natsSubscription_Destroy(mine);
    pk_bus_close(a);
    pk_bus_close(b);
}

Test(security, no_run_time_identity_can_put_a_stream_on_the_submit_subjects)
{
    identity ids[IDENTITIES];
    static const char *const squat[] = {PK_SUBJ_GOV_SUBMIT, PK_SUBJ_REG_SUBMIT};

    connect_all(ids);
    for (int i = 0; i < IDENTITIES; i++) {
        jsOptions o = short_wait();
        for (int k = 0; k < 2; k++) {
            jsStreamConfig sc;
            jsStreamInfo *si = NULL;
            jsErrCode e = 0;
            const char *subjects[] = {squat[k]};
            jsStreamConfig_Init(&sc);
            sc.Name = k ? "SQUAT_REG" : "SQUAT_GOV";
            sc.Subjects = subjects;
            sc.SubjectsLen = 1;
            cr_assert_neq(js_AddStream(&si, ids[i].bus->js, &sc, &o, &e), NATS_OK,
                          "%s made a stream on %s", ids[i].name, squat[k]);
            jsStreamInfo_Destroy(si);
        }
        cr_assert(denied(ids[i].bus), "the server refused %s", ids[i].name);
    }
    close_all(ids);
    for (int k = 0; k < 2; k++) {
        jsStreamInfo *si = NULL;
        jsErrCode e = 0;
        cr_assert_neq(js_GetStreamInfo(&si, h.bus->js, k ? "SQUAT_REG" : "SQUAT_GOV", NULL, &e),
                      NATS_OK, "a squatting stream exists");
    }
    /* registrations and governance still get their receipts */
    h_keypair(&ka, 71);
    h_keypair(&koa, 72);
    cr_assert(h_key_file(&h, "c", &ka) && h_key_file(&h, "oc", &koa), "%s", h.why);
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "agent register --id bot-c --key c.key --owner-key oc.key"), 0,
        "%s", out);
}

/* The health answer of a service, or "" if none came. */
static void health_of(const char *service, char *buf, size_t len)
{
    char subject[64];
    natsMsg *reply = NULL;

    snprintf(subject, sizeof(subject), PK_SUBJ_HEALTH, service);
    buf[0] = '\0';
    if (natsConnection_Request(&reply, h.bus->nc, subject, "", 0, 2000) == NATS_OK) {
        snprintf(buf, len, "%.*s", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
        natsMsg_Destroy(reply);
    }
}

/* Wait (bounded) until every service's health says healthy or (want false) JetStream is gone. */
static bool all_services(bool want_healthy, char *last, size_t len)
{
    for (int round = 0; round < 150; round++) {
        int n = 0;
        for (int i = 0; i < H_SERVICES; i++) {
            health_of(h_service_names[i], last, len);
            n += want_healthy ? strstr(last, "\"healthy\":true") != NULL
                              : strstr(last, "\"healthy\":false") != NULL &&
                                    strstr(last, "JetStream is not available") != NULL;
        }
        if (n == H_SERVICES)
            return true;
        pk_sleep_ms(100);
    }
    return false;
}

Test(security, a_reload_keeps_jetstream_and_health_says_when_it_is_gone)
{
    char health[1024], *conf, *block, *end;
    FILE *f;
    long n;

    cr_assert(all_services(true, health, sizeof(health)), "%s", health);
    /* a reload of the configuration setup made (what adding users used to need) */
    cr_assert_eq(kill(h.nats_pid, SIGHUP), 0);
    pk_sleep_ms(1500);
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "event publish --agent bot-a --key a.key --kind reply --id after-reload"),
                 0, "JetStream stayed on: %s", out);
    cr_assert(all_services(true, health, sizeof(health)), "%s", health);

    /* a configuration without JetStream, reloaded: every service says so */
    f = fopen(h.nats_conf, "r");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    conf = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(conf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    block = strstr(conf, "\njetstream {");
    cr_assert_not_null(block, "the configuration keeps JetStream on: %s", conf);
    end = strchr(block, '}');
    cr_assert_not_null(end);
    memmove(block + 1, end + 1, strlen(end + 1) + 1); /* the block taken out */
    f = fopen(h.nats_conf, "w");
    cr_assert_not_null(f);
    fputs(conf, f);
    fclose(f);
    free(conf);
    cr_assert_eq(kill(h.nats_pid, SIGHUP), 0);
    cr_assert(all_services(false, health, sizeof(health)),
              "a service reports healthy without JetStream: %s", health);
}

Test(security, each_person_governs_on_the_identity_their_registration_gave)
{
    pk_keypair karb;
    Pactum__V1__TrustReport *r;
    unsigned long long vseq;

    h_keypair(&karb, 66);
    cr_assert(h_key_file(&h, "arb", &karb), "%s", h.why);
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "principal register --id @arb --role arbiter --key arb.key "
                       "--admin-key admin.key"),
                 0, "%s", out);
    /* a leak contains bot-a */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "event publish --agent bot-a --key a.key --kind leak --id leak-1"),
                 0, "%s", out);
    r = h_wait_tier(&h, "bot-a", PACTUM__V1__TIER__TIER_CONTAINED, 20000);
    cr_assert(r && r->state->tier == PACTUM__V1__TIER__TIER_CONTAINED && r->last_violation);
    vseq = (unsigned long long)r->last_violation->vseq;
    pactum__v1__trust_report__free_unpacked(r, NULL);

    /* the agent may not register anyone, nor rule */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "--as a.key agent register --id bot-z --key b.key --owner-key ob.key"),
                 4, "%s", out);
    cr_assert(strstr(out, "permission denied"), "%s", out);
    /* the owner disputes, the operator acknowledges, the arbiter overturns: each as
     * itself (KEY.jwt beside each key file) */
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "dispute open --agent bot-a --key oa.key --verdict %llu --reason 'a test "
                       "fixture' --id d1",
                       vseq),
                 0, "%s", out);
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "ack --operator @ops --key ops.key --agent bot-a --note 'looked at it'"),
                 0, "%s", out);
    cr_assert_eq(h_cli(&h, out, sizeof(out),
                       "dispute rule --arbiter @arb --key arb.key --agent bot-a --dispute d1 "
                       "--overturned --reason 'mislabelled'"),
                 0, "%s", out);
    /* the ruling made the scorer read bot-a's history again, on a reader of its own */
    r = h_wait_tier(&h, "bot-a", PACTUM__V1__TIER__TIER_TRUSTED, 20000);
    cr_assert(r && r->state->n_overturned == 1, "the ruling was applied");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    cr_assert_geq(h_metric(&h, "scorer", "pactum_scorer_rulings_recomputed_total"), 1);
    /* the operator replays on its own identity too */
    cr_assert_eq(h_cli(&h, out, sizeof(out), "--as ops.key replay --compare"), 0, "%s", out);
    cr_assert(strstr(out, "(the same)"), "%s", out);
}

Test(security, rotating_the_users_signing_key_revokes_every_old_credential)
{
    char cmd[1024], old[400], path[400];
    pk_bus *b;

    /* keep the monitor's credential as it is now */
    snprintf(old, sizeof(old), "%s/old-monitor.creds", h.dir);
    snprintf(cmd, sizeof(cmd), "cp %s/creds/monitor.creds %s", h.auth, old);
    cr_assert_eq(system(cmd), 0);
    b = h_connect_creds(&h, old, "old");
    cr_assert_not_null(b, "%s", h.why);
    pk_bus_close(b);
    /* a new signing key, new credentials, the server restarted with the new account JWT */
    snprintf(path, sizeof(path), "%s/signing-users.nk", h.auth);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(h_cli(&h, out, sizeof(out), "setup init --dir %s --tls-dir %s/tls --store %s/js",
                       h.auth, h.dir, h.dir),
                 0, "%s", out);
    cr_assert(h_restart_nats(&h, SIGTERM), "nats-server did not come back");
    b = h_connect_creds(&h, old, "old");
    cr_assert_null(b, "a credential signed by the old key still connects");
    snprintf(path, sizeof(path), "%s/creds/monitor.creds", h.auth);
    b = h_connect_creds(&h, path, "new");
    cr_assert_not_null(b, "the new credential does not connect: %s", h.why);
    pk_bus_close(b);
    /* agents keep their identities: their role keys did not change */
    b = as_key("a", &ka);
    pk_bus_close(b);
}
