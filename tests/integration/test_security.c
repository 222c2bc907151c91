/*
 * Least privilege on the bus: nats-server runs with the configuration
 * scripts/nats-conf.sh writes (one user per service, one for people, one per
 * agent), and the services run as their own users. The trust loop works; an
 * agent cannot publish as another agent, nor anywhere but its own raw
 * subject; if a forged envelope got through anyway, ingest's signature check
 * refuses it; the oracle's user cannot write trust state, and no query
 * changes any.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "pk/answer.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair ka, kb;
static char conf_dir[64], pw_pactum[64], pw_svc[4][64], pw_a[64], pw_b[64];
static char out[65536];

/* the credentials file: NAME=PASSWORD lines */
static void read_password(const char *name, char *dst, size_t len)
{
    char path[128], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/credentials", conf_dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    dst[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(name);
        if (strncmp(line, name, n) == 0 && line[n] == '=') {
            snprintf(dst, len, "%s", line + n + 1);
            dst[strcspn(dst, "\n")] = '\0';
        }
    }
    fclose(f);
    cr_assert(dst[0], "no password for %s", name);
}

static char *conf_text(void)
{
    char path[128], *text;
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/nats.conf", conf_dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 512);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* a user with every right, standing for a server that was misconfigured or
     * broken into: what gets past the bus must still be refused by ingest */
    {
        static const char extra[] = "    {user: \"intruder\", password: \"intruder-password\"}\n";
        char *end = strrchr(text, ']'), *with = calloc(1, strlen(text) + sizeof(extra) + 1);
        cr_assert(end && with);
        memcpy(with, text, (size_t)(end - text));
        strcat(with, extra);
        strcat(with, end);
        free(text);
        text = with;
    }
    return text;
}

static void setup(void)
{
    char cmd[512], *conf;
    static char env[4][2][128];
    const char *svc_env[4];

    snprintf(conf_dir, sizeof(conf_dir), "/tmp/pactum-natsconf-XXXXXX");
    cr_assert_not_null(mkdtemp(conf_dir));
    snprintf(cmd, sizeof(cmd), "bash %s/scripts/nats-conf.sh %s bot-a bot-b >/dev/null",
             PK_SOURCE_DIR, conf_dir);
    cr_assert_eq(system(cmd), 0);
    read_password("pactum", pw_pactum, sizeof(pw_pactum));
    read_password("bot-a", pw_a, sizeof(pw_a));
    read_password("bot-b", pw_b, sizeof(pw_b));
    conf = conf_text();
    cr_assert(h_start_with(&h, false, conf, "pactum", pw_pactum), "nats-server did not start");
    free(conf);
    for (int i = 0; i < H_SERVICES; i++) {
        read_password(h_service_names[i], pw_svc[i], sizeof(pw_svc[i]));
        snprintf(env[i][0], sizeof(env[i][0]), "PACTUM_NATS_USER=%s", h_service_names[i]);
        snprintf(env[i][1], sizeof(env[i][1]), "PACTUM_NATS_PASSWORD=%s", pw_svc[i]);
        svc_env[0] = env[i][0];
        svc_env[1] = env[i][1];
        /* every evaluation reported at once, so the counts below are exact */
        svc_env[2] = i == 1 ? "PACTUM_EVALUATOR_REPORT_EVERY=1" : NULL;
        svc_env[3] = NULL;
        cr_assert(h_start_service(&h, i, svc_env), "%s did not start as its own user",
                  h_service_names[i]);
    }
    h_keypair(&ka, 61);
    h_keypair(&kb, 62);
    cr_assert(h_agent(&h, "bot-a", &ka, &ka), "%s", h.why);
    cr_assert(h_agent(&h, "bot-b", &kb, &kb), "%s", h.why);
    cr_assert(h_pact(&h, &ka,
                     "{\"pactum\":1,\"id\":\"a\",\"agent\":\"bot-a\",\"clauses\":[{\"id\":\"c\","
                     "\"promise\":\"never errors\",\"severity\":\"low\",\"kind\":\"forbidden\","
                     "\"match\":{\"field\":\"kind\",\"eq\":\"error\"}}]}"),
              "%s", h.why);
}

static void teardown(void)
{
    char cmd[128];

    h_stop(&h);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", conf_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", conf_dir);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 240);

static pk_bus *connect_as(const char *user, const char *password)
{
    pk_bus *bus = NULL;
    pk_bus_opts o = {.url = h.url,
                     .name = user,
                     .user = user,
                     .password = password,
                     .send_asap = true,
                     .connect_wait_ms = 5000};

    cr_assert_eq(pk_bus_connect(&bus, &o), PK_OK, "%s cannot connect: %s", user, pk_error_msg());
    return bus;
}

/* One event of agent `about`, signed by kp as `signer`, published by bus on subject. */
static bool publish_event(pk_bus *bus, const char *subject, const char *signer,
                          const pk_keypair *kp, const char *id, const char *about)
{
    pk_event_msg ev, *evp = &ev;
    uint8_t *env;
    size_t len;
    bool ok;

    h_event_init(&ev, id, about, "reply", NULL, NULL);
    env = h_envelope(signer, kp, &evp, 1, &len);
    ok = pk_bus_publish_sync(bus, subject, env, len, NULL, false, 0, NULL, NULL) == PK_OK;
    free(env);
    return ok;
}

static int violations_in_server_log(void)
{
    char path[400], line[1024];
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

Test(security, the_trust_loop_runs_with_each_part_on_its_own_user)
{
    pk_bus *a = connect_as("bot-a", pw_a);
    Pactum__V1__TrustReport *r;
    char path[400];
    struct stat sb;

    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ok-%d", i);
        cr_assert(publish_event(a, "pactum.raw.bot-a", "bot-a", &ka, id, "bot-a"));
    }
    cr_assert(publish_event(a, "pactum.raw.bot-a", "bot-a", &ka, "ok-5", "bot-a"));
    r = h_trust(&h, "bot-a");
    for (int i = 0; i < 100 && (!r || !r->state || r->state->evidence < 6); i++) {
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        pk_sleep_ms(100);
        r = h_trust(&h, "bot-a");
    }
    cr_assert_not_null(r);
    cr_assert_geq(r->state->evidence, 6, "the events were judged and scored");
    pactum__v1__trust_report__free_unpacked(r, NULL);
    /* replay and the people's commands work on the people's user */
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--user pactum --password %s replay --compare", pw_pactum), 0,
        "%s", out);
    cr_assert_eq(violations_in_server_log(), 0,
                 "no part of the suite needed a right it does not have");
    /* the oracle's signing key is its owner's alone */
    snprintf(path, sizeof(path), "%s/var/oracle/oracle.key", h.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    pk_bus_close(a);
    cr_assert_eq(h_stop_services(&h), 0);
}

Test(security, an_agent_cannot_publish_as_another_and_forgeries_are_refused)
{
    pk_bus *a = connect_as("bot-a", pw_a), *intruder;

    /* the server refuses bot-a anywhere but its own subject */
    cr_assert_not(publish_event(a, "pactum.raw.bot-b", "bot-b", &ka, "x-1", "bot-b"),
                  "bot-a published on bot-b's subject");
    cr_assert_not(publish_event(a, "pactum.events.0.bot-b", "bot-a", &ka, "x-2", "bot-b"),
                  "bot-a bypassed ingest");
    cr_assert_not(publish_event(a, "pactum.trust.bot-a", "bot-a", &ka, "x-3", "bot-a"));
    cr_assert_not(publish_event(a, "pactum.registry.agent.bot-c", "bot-a", &ka, "x-4", "bot-a"));
    cr_assert_geq(violations_in_server_log(), 4, "the server logged each refusal");
    pk_bus_close(a);

    /* past the bus (a server with too wide a user), ingest still refuses forgeries */
    intruder = connect_as("intruder", "intruder-password");
    cr_assert(publish_event(intruder, "pactum.raw.bot-b", "bot-b", &ka, "f-1", "bot-b"));
    cr_assert(publish_event(intruder, "pactum.raw.bot-b", "bot-a", &ka, "f-2", "bot-b"));
    cr_assert_eq(h_wait_metric(&h, "ingest",
                               "pactum_ingest_rejected_total{reason=\"bad_signature\"}", 1, 10000),
                 1, "signed with bot-a's key in bot-b's name");
    cr_assert_eq(h_wait_metric(&h, "ingest",
                               "pactum_ingest_rejected_total{reason=\"subject_mismatch\"}", 1,
                               10000),
                 1, "bot-a's envelope on bot-b's subject");
    cr_assert_eq(h_metric(&h, "ingest", "pactum_ingest_events_accepted_total"), 0);
    pk_bus_close(intruder);
}

Test(security, the_oracle_cannot_write_trust_state_and_no_query_changes_it)
{
    pk_bus *o;
    pk_bus *a = connect_as("bot-a", pw_a);
    Pactum__V1__TrustReport *before, *after;
    char digest[2][80];
    static const char *subjects[] = {PK_SUBJ_ORACLE_TRUST,     PK_SUBJ_ORACLE_PACT,
                                     PK_SUBJ_ORACLE_AUTHORIZE, PK_SUBJ_ORACLE_EVIDENCE,
                                     PK_SUBJ_ORACLE_ATTEST,    PK_SUBJ_ORACLE_FIGURES,
                                     PK_SUBJ_ORACLE_LOG};

    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q-%d", i);
        cr_assert(publish_event(a, "pactum.raw.bot-a", "bot-a", &ka, id, "bot-a"));
    }
    pk_bus_close(a);
    cr_assert_geq(h_wait_metric(&h, "scorer", "pactum_scorer_verdicts_total", 3, 20000), 3);
    pk_sleep_ms(500);
    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--user pactum --password %s replay --compare", pw_pactum), 0,
        "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", digest[0]), 1);
    before = h_trust(&h, "bot-a");

    /* every question, well formed and not, many times */
    for (int round = 0; round < 20; round++) {
        for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++) {
            natsMsg *reply = NULL;
            char junk[32];
            snprintf(junk, sizeof(junk),
                     "\x0a\x05"
                     "bot-a\x10%c",
                     (char)round);
            if (natsConnection_Request(&reply, h.bus->nc, subjects[s], junk,
                                       (int)strlen(junk) + (round % 3), 5000) == NATS_OK)
                natsMsg_Destroy(reply);
        }
    }
    /* and the oracle's own user cannot write what the scorer and ingest write */
    read_password("oracle", pw_svc[3], sizeof(pw_svc[3]));
    o = connect_as("oracle", pw_svc[3]);
    cr_assert_not(publish_event(o, "pactum.trust.bot-a", "bot-a", &ka, "o-1", "bot-a"));
    cr_assert_not(publish_event(o, "pactum.verdicts.0.bot-a.v", "bot-a", &ka, "o-2", "bot-a"));
    cr_assert_not(publish_event(o, "pactum.events.0.bot-a", "bot-a", &ka, "o-3", "bot-a"));
    cr_assert_not(publish_event(o, "pactum.registry.pact.x", "bot-a", &ka, "o-4", "bot-a"));
    pk_bus_close(o);

    cr_assert_eq(
        h_cli(&h, out, sizeof(out), "--user pactum --password %s replay --compare", pw_pactum), 0,
        "%s", out);
    cr_assert_eq(sscanf(strstr(out, "live"), "live %64s", digest[1]), 1);
    cr_assert_str_eq(digest[0], digest[1], "the scorer's state did not move");
    after = h_trust(&h, "bot-a");
    cr_assert_eq(after->trust_seq, before->trust_seq, "no trust change was made");
    cr_assert_eq(after->state->evidence, before->state->evidence);
    pactum__v1__trust_report__free_unpacked(before, NULL);
    pactum__v1__trust_report__free_unpacked(after, NULL);
}
