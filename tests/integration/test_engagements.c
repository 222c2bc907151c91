/*
 * Engagements against the running suite (TLS, a user per service), through
 * the CLI as people use it: the documented example (a payments agent hired
 * for 1,000 USD, one high-severity failure, 20% withheld, disputed by the
 * owner, upheld by the arbiter) issues, holds and supersedes its statements,
 * every one verifies offline and a replay issues them again byte for byte;
 * forged and single-signed engagements are refused; only the buyer, besides
 * the agent and independent sources, reports or disputes about one; a
 * critical violation refunds at once and a deadline refunds by the clock.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static char out[65536];

#define cli(...) h_cli(&h, out, sizeof(out), __VA_ARGS__)
#define PACT     PK_SOURCE_DIR "/examples/pacts/payments-agent.json"

static void setup(void)
{
    cr_assert(h_start_secure(&h, true), "harness did not start (logs in %s)", h.dir);
    cr_assert(h_key_file(&h, "admin", &h.admin), "%s", h.why);
    cr_assert_eq(cli("keygen -o owner.key && %s/cli/pactum keygen -o agent.key && "
                     "%s/cli/pactum keygen -o shop-owner.key && %s/cli/pactum keygen -o shop.key "
                     "&& %s/cli/pactum keygen -o arbiter.key && %s/cli/pactum keygen -o "
                     "thief.key && %s/cli/pactum keygen -o thief-owner.key",
                     PK_BUILD_DIR, PK_BUILD_DIR, PK_BUILD_DIR, PK_BUILD_DIR, PK_BUILD_DIR,
                     PK_BUILD_DIR),
                 0, "%s", out);
    cr_assert_eq(cli("agent register --id payments-agent-1 --key agent.key --owner-key owner.key"),
                 0, "%s", out);
    cr_assert_eq(cli("pact register --key owner.key " PACT), 0, "%s", out);
    /* the buyer is not a counterparty the pact names: the engagement makes it one */
    cr_assert_eq(cli("agent register --id shop-1 --key shop.key --owner-key shop-owner.key"), 0,
                 "%s", out);
    cr_assert_eq(cli("agent register --id stranger-1 --key thief.key --owner-key thief-owner.key"),
                 0, "%s", out);
    cr_assert_eq(cli("principal register --id @arbiter --role arbiter --key arbiter.key "
                     "--admin-key admin.key"),
                 0, "%s", out);
    cr_assert_eq(cli("client register --id @desk --admin-key admin.key --out desk.token"), 0, "%s",
                 out);
}

/* May payments-agent-1 take a job of amount USD now? The exit code; the answer in out. */
static int may_take(const char *amount)
{
    return cli("authorize --agent payments-agent-1 --action engagement.accept --amount %s "
               "--currency USD --token \"$(cat desk.token)\"",
               amount);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(engagements, .init = setup, .fini = teardown, .timeout = 300);

/* The buyer signs terms (id, price, deadline) and the owner accepts them. */
static void hire(const char *id, const char *price, const char *deadline)
{
    cr_assert_eq(cli("engagement open --id %s --buyer shop-1 --key shop.key --agent "
                     "payments-agent-1 --pact payments-agent --price %s --currency USD --deadline "
                     "%s --job 'reconcile the March chargebacks' --out %s.terms",
                     id, price, deadline, id),
                 0, "%s", out);
    cr_assert_eq(cli("engagement accept %s.terms --key owner.key", id), 0, "%s", out);
    cr_assert(strstr(out, "recorded"), "%s", out);
}

/* A file the CLI wrote in the test's folder; caller frees. */
static uint8_t *file_of(const char *name, size_t *len)
{
    char path[512];
    uint8_t *buf = malloc(1 << 20);
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", h.dir, name);
    cr_assert_not_null(f = fopen(path, "rb"), "%s", path);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static size_t keep_body(char *data, size_t size, size_t n, void *ctx)
{
    size_t *len = ctx, take = size * n;

    if (*len + take >= sizeof(out))
        take = sizeof(out) - 1 - *len;
    memcpy(out + *len, data, take);
    *len += take;
    out[*len] = '\0';
    return size * n;
}

/* GET path from the oracle's HTTP listener into out; the HTTP status. */
static long http_get(const char *path)
{
    char url[256];
    CURL *c = curl_easy_init();
    size_t len = 0;
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h.http_port, path);
    out[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* signer rates payments-agent-1 (engagement: "--engagement ID" or ""); the exit code. */
static int rate(const char *signer, const char *key, const char *engagement, const char *id,
                int stars)
{
    return cli("event publish --agent %s --key %s --about payments-agent-1 %s --kind rating "
               "--metric rating=%d --id %s",
               signer, key, engagement, stars, id);
}

/* Ask for agent's engagement until its output holds want (bounded); the last output is in out. */
static bool shows_for(const char *agent, const char *id, const char *want, int64_t bound_ms)
{
    int64_t until = pk_mono_ms() + bound_ms;

    do {
        if (cli("engagement show %s %s", agent, id) == 0 && strstr(out, want))
            return true;
        pk_sleep_ms(200);
    } while (pk_mono_ms() < until);
    return false;
}

static bool shows(const char *id, const char *want, int64_t bound_ms)
{
    return shows_for("payments-agent-1", id, want, bound_ms);
}

Test(engagements, the_documented_example_settles_holds_supersedes_verifies_and_replays)
{
    hire("job-1001", "1000.00", "2h");
    /* a new agent is on watch: jobs up to 2,000.00 at once */
    cr_assert_eq(may_take("500"), 0, "%s", out);
    cr_assert(strstr(out, "tier watch takes jobs up to 2000.00 USD at once: 1000.00 USD running "
                          "and 500.00 USD asked fit"),
              "%s", out);
    cr_assert_neq(may_take("1500"), 0, "%s", out);
    cr_assert(strstr(out, "1000.00 USD running and 1500.00 USD asked is more"), "%s", out);
    cr_assert_neq(may_take("1e300"), 0, "%s", out);
    cr_assert(strstr(out, "more than any job may be worth"), "%s", out);
    cr_assert_eq(cli("event publish --agent payments-agent-1 --key agent.key --engagement "
                     "job-1001 --kind request --action payments.lookup --metric latency_ms=420 "
                     "--count 5 --id lookup"),
                 0, "%s", out);
    cr_assert_eq(cli("event publish --agent payments-agent-1 --key agent.key --engagement "
                     "job-1001 --kind request --action ledger.query --tool db.read --resource "
                     "customers --id read-1"),
                 0, "%s", out);
    /* the failure is judged before the job is declared done */
    cr_assert(shows("job-1001", "running (1 failures so far)", 15000), "%s", out);
    cr_assert_eq(cli("engagement complete --agent payments-agent-1 --as payments-agent-1 --key "
                     "agent.key --engagement job-1001 --note '42 chargebacks reconciled'"),
                 0, "%s", out);
    cr_assert(shows("job-1001", "statement 1", 15000), "%s", out);
    cr_assert(strstr(out, "partial  on completion"), "%s", out);
    cr_assert(strstr(out, "release 800.00 USD to the owner, refund 200.00 USD to the buyer"), "%s",
              out);
    cr_assert(strstr(out, "withhold 20% per high-severity failure of db-reads-ledger-only"), "%s",
              out);
    /* a second completion is refused, and so is a completion by a stranger */
    cr_assert_neq(cli("engagement complete --agent payments-agent-1 --as payments-agent-1 --key "
                      "agent.key --engagement job-1001"),
                  0);
    cr_assert(strstr(out, "already completed"), "%s", out);

    cr_assert_eq(cli("dispute open --agent payments-agent-1 --key owner.key --engagement job-1001 "
                     "--verdict last --id d-1001 --reason 'customers is the ledger replica'"),
                 0, "%s", out);
    cr_assert(shows("job-1001", "statement 2, supersedes 1  withhold on dispute", 15000), "%s",
              out);
    cr_assert_eq(cli("dispute rule --arbiter @arbiter --key arbiter.key --agent payments-agent-1 "
                     "--dispute d-1001 --overturned --reason 'the replica is part of the ledger'"),
                 0, "%s", out);
    cr_assert(shows("job-1001", "statement 3, supersedes 2  release  on ruling", 15000), "%s", out);
    cr_assert(strstr(out, "release 1000.00 USD to the owner, refund 0.00 USD to the buyer"), "%s",
              out);
    cr_assert_eq(cli("engagement list payments-agent-1"), 0, "%s", out);
    cr_assert(strstr(out, "0 open, 1 completed, 1 disputed, 0 refunded"), "%s", out);
    cr_assert(strstr(out, "settled: 1000.00 USD released, 0.00 USD refunded"), "%s", out);
    /* the agent's page and the HTTP answer say the same */
    cr_assert_eq(http_get("/agents/payments-agent-1"), 200, "%s", out);
    cr_assert(strstr(out, "<h2>Engagements</h2>"), "%s", out);
    cr_assert(strstr(out, "<code>job-1001</code>"), "%s", out);
    cr_assert(strstr(out, "#3 release (ruling)"), "%s", out);
    cr_assert_eq(http_get("/v1/agents/payments-agent-1/engagements?engagement=job-1001"), 200, "%s",
                 out);
    cr_assert(strstr(out, "\"type\": \"engagement_report\"") ||
                  strstr(out, "\"type\":\"engagement_report\""),
              "%s", out);
    cr_assert_eq(http_get("/v1/agents/payments-agent-1/engagements?engagement=no-such-job"), 404,
                 "%s", out);

    /* offline: every statement against its logged trust change, both signatures, the verdict */
    cr_assert_eq(cli("--save job.answer engagement show payments-agent-1 job-1001"), 0, "%s", out);
    cr_assert_eq(cli("verify --key %s/var/oracle/oracle.key.pub job.answer", h.dir), 0, "%s", out);
    cr_assert(strstr(out, "statement 1 of job-1001 (partial: release 800.00 USD, refund 200.00 "
                          "USD) is byte for byte the one logged"),
              "%s", out);
    cr_assert(strstr(out, "was signed by both"), "%s", out);
    cr_assert(strstr(out, "is a violation logged in"), "%s", out);
    cr_assert(strstr(out, "all 1 answer verified"), "%s", out);
    /* a changed byte anywhere is refused */
    {
        size_t n;
        uint8_t *b = file_of("job.answer", &n);
        char path[512];
        FILE *f;
        b[n / 2] ^= 1;
        snprintf(path, sizeof(path), "%s/bad.answer", h.dir);
        cr_assert_not_null(f = fopen(path, "wb"));
        cr_assert_eq(fwrite(b, 1, n, f), n);
        fclose(f);
        free(b);
    }
    cr_assert_neq(cli("verify --key %s/var/oracle/oracle.key.pub bad.answer", h.dir), 0, "%s", out);

    /* the history gives the same statements again, byte for byte */
    cr_assert_eq(cli("--creds %s/creds/monitor.creds replay --compare", h.auth), 0, "%s", out);
    cr_assert(strstr(out, "statements 3 issued by the replay, 3 byte for byte the ones in "
                          "PACTUM_TRUST"),
              "%s", out);
    cr_assert(strstr(out, "(the same)"), "%s", out);
}

/* Submit an acceptance, signed by kp as signer ("" for an owner key), holding offer. */
static Pactum__V1__GovernanceReceipt *submit_accept(const char *id, const uint8_t *offer,
                                                    size_t offer_len, const char *signer,
                                                    const pk_keypair *kp)
{
    Pactum__V1__EngagementAcceptance a = PACTUM__V1__ENGAGEMENT_ACCEPTANCE__INIT;
    uint8_t *buf = NULL, *env = NULL;
    size_t len = 0, elen = 0;
    natsMsg *reply = NULL;
    Pactum__V1__GovernanceReceipt *r = NULL;

    a.engagement_id = (char *)id;
    a.agent_id = "payments-agent-1";
    a.offer.data = (uint8_t *)offer;
    a.offer.len = offer_len;
    a.signed_ms = pk_now_ms();
    cr_assert_eq(pk_pack(&a.base, &buf, &len), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_ACCEPT, buf, len,
                                  signer, kp, &env, &elen),
                 PK_OK);
    if (natsConnection_Request(&reply, h.bus->nc, PK_SUBJ_GOV_SUBMIT, env, (int)elen, 5000) ==
        NATS_OK)
        r = pactum__v1__governance_receipt__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                                   (const uint8_t *)natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    free(buf);
    free(env);
    cr_assert_not_null(r, "no receipt");
    return r;
}

static void refused(Pactum__V1__GovernanceReceipt *r, Pactum__V1__Reason reason, const char *text)
{
    cr_assert_not(r->ok, "accepted: %s", r->message);
    cr_assert_eq(r->reason, reason, "reason %d: %s", r->reason, r->message);
    cr_assert(strstr(r->message, text), "'%s' not in: %s", text, r->message);
    pactum__v1__governance_receipt__free_unpacked(r, NULL);
}

static void key_of(const char *name, pk_keypair *kp)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s.key", h.dir, name);
    cr_assert_eq(pk_key_load(path, kp), PK_OK, "%s", pk_error_msg());
}

Test(engagements, forged_and_single_signed_engagements_are_refused)
{
    pk_keypair owner, thief, shop;
    uint8_t *terms;
    size_t len;
    pk_signed_msg *env = NULL;
    Pactum__V1__Engagement *o;
    uint8_t *payload = NULL, *forged = NULL;
    size_t plen = 0, flen = 0;

    key_of("owner", &owner);
    key_of("thief", &thief);
    key_of("shop", &shop);
    cr_assert_eq(cli("engagement open --id job-f --buyer shop-1 --key shop.key --agent "
                     "payments-agent-1 --pact payments-agent --price 50.00 --currency USD "
                     "--deadline 1h --out job-f.terms"),
                 0, "%s", out);
    terms = file_of("job-f.terms", &len);

    /* only the buyer's signature: the terms alone are not an engagement */
    {
        natsMsg *reply = NULL;
        Pactum__V1__GovernanceReceipt *r;
        cr_assert_eq(
            natsConnection_Request(&reply, h.bus->nc, PK_SUBJ_GOV_SUBMIT, terms, (int)len, 5000),
            NATS_OK);
        r = pactum__v1__governance_receipt__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                                   (const uint8_t *)natsMsg_GetData(reply));
        natsMsg_Destroy(reply);
        refused(r, PACTUM__V1__REASON__REASON_INVALID_FIELD, "engagement acceptances");
    }
    /* accepted by someone who is not the owner */
    refused(submit_accept("job-f", terms, len, "", &thief),
            PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, "only the owner of payments-agent-1");
    refused(submit_accept("job-f", terms, len, "stranger-1", &thief),
            PACTUM__V1__REASON__REASON_NOT_AUTHORIZED, "only the owner of payments-agent-1");
    /* the buyer's signature broken */
    terms[len - 1] ^= 1;
    refused(submit_accept("job-f", terms, len, "", &owner),
            PACTUM__V1__REASON__REASON_BAD_SIGNATURE, "the buyer's signature");
    terms[len - 1] ^= 1;
    /* terms in the buyer's name, signed with another key */
    cr_assert_eq(pk_envelope_open(terms, len, &env), PK_OK);
    o = pactum__v1__engagement__unpack(NULL, env->payload.len, env->payload.data);
    cr_assert_not_null(o);
    cr_assert_eq(pk_pack(&o->base, &payload, &plen), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT, payload, plen,
                                  "shop-1", &thief, &forged, &flen),
                 PK_OK);
    refused(submit_accept("job-f", forged, flen, "", &owner),
            PACTUM__V1__REASON__REASON_BAD_SIGNATURE, "not the registered key of 'shop-1'");
    free(forged);
    free(payload);
    /* a pact hash that is not the version's (the buyer's own signature, its own mistake) */
    o->pact_hash.data[0] ^= 1;
    cr_assert_eq(pk_pack(&o->base, &payload, &plen), PK_OK);
    cr_assert_eq(pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT, payload, plen,
                                  "shop-1", &shop, &forged, &flen),
                 PK_OK);
    refused(submit_accept("job-f", forged, flen, "", &owner),
            PACTUM__V1__REASON__REASON_INVALID_FIELD, "has another hash");
    free(forged);
    free(payload);
    pactum__v1__engagement__free_unpacked(o, NULL);
    pactum__v1__signed__free_unpacked(env, NULL);

    /* the real thing is taken once */
    cr_assert_eq(cli("engagement accept job-f.terms --key owner.key"), 0, "%s", out);
    cr_assert_neq(cli("engagement accept job-f.terms --key owner.key"), 0, "%s", out);
    cr_assert(strstr(out, "already recorded") || strstr(out, "was already recorded"), "%s", out);
    free(terms);

    /* an owner cannot hire its own agent: its reputation would be its own word */
    cr_assert_eq(cli("agent register --id owned-buyer --key thief.key --owner-key owner.key"), 0,
                 "%s", out);
    cr_assert_eq(cli("engagement open --id job-self --buyer owned-buyer --key thief.key --agent "
                     "payments-agent-1 --pact payments-agent --price 50.00 --currency USD "
                     "--deadline 1h --out job-self.terms"),
                 0, "%s", out);
    cr_assert_eq(cli("engagement accept job-self.terms --key owner.key"), 1, "%s", out);
    cr_assert(strstr(out, "an owner cannot hire its own agent"), "%s", out);
    pk_keypair_wipe(&owner);
    pk_keypair_wipe(&thief);
    pk_keypair_wipe(&shop);
}

Test(engagements, only_the_buyer_besides_the_agent_reports_or_disputes_about_a_job)
{
    hire("job-2", "100.00", "2h");
    /* the buyer's report about the job counts; the same buyer without it is a stranger */
    cr_assert_eq(cli("event publish --agent shop-1 --key shop.key --about payments-agent-1 "
                     "--engagement job-2 --kind request --action payments.lookup --metric "
                     "latency_ms=300 --id shop-saw-1"),
                 0, "%s", out);
    cr_assert_neq(cli("event publish --agent shop-1 --key shop.key --about payments-agent-1 "
                      "--kind request --action payments.lookup --id shop-saw-2"),
                  0, "%s", out);
    cr_assert(strstr(out, "not a counterparty"), "%s", out);
    /* another agent, even with the engagement's id, may not */
    cr_assert_neq(cli("event publish --agent stranger-1 --key thief.key --about payments-agent-1 "
                      "--engagement job-2 --kind request --action payments.lookup --id s-1"),
                  0, "%s", out);
    cr_assert(strstr(out, "only its buyer (shop-1) may"), "%s", out);
    /* an engagement the agent does not have */
    cr_assert_neq(cli("event publish --agent payments-agent-1 --key agent.key --engagement "
                      "job-none --kind request --action payments.lookup --id n-1"),
                  0, "%s", out);
    cr_assert(strstr(out, "no_such_engagement"), "%s", out);
    cr_assert_eq(cli("event publish --agent payments-agent-1 --key agent.key --engagement job-2 "
                     "--kind request --action ledger.query --tool db.read --resource customers "
                     "--id read-2"),
                 0, "%s", out);
    cr_assert(shows("job-2", "running (1 failures so far)", 15000), "%s", out);
    /* the failure restricts the agent (its consequence): a restricted agent takes no job */
    cr_assert_eq(cli("trust payments-agent-1 --wait-tier restricted --wait 15s"), 0, "%s", out);
    cr_assert_neq(may_take("10"), 0, "%s", out);
    cr_assert(strstr(out, "tier restricted takes jobs up to 0.00 USD at once"), "%s", out);
    /* disputes about the job: the stranger is refused, the buyer may */
    cr_assert_neq(cli("dispute open --agent payments-agent-1 --key thief.key --as stranger-1 "
                      "--engagement job-2 --verdict last --id d-s --reason mine"),
                  0, "%s", out);
    cr_assert(strstr(out, "not_authorized"), "%s", out);
    cr_assert_eq(cli("dispute open --agent payments-agent-1 --key shop.key --as shop-1 "
                     "--engagement job-2 --verdict last --id d-b --reason 'it read our replica'"),
                 0, "%s", out);
    /* no rating before the job ends, none without a job, none but the buyer's */
    cr_assert_neq(rate("shop-1", "shop.key", "--engagement job-2", "rating:job-2", 5), 0, "%s",
                  out);
    cr_assert(strstr(out, "the job has not ended"), "%s", out);
    cr_assert_neq(rate("shop-1", "shop.key", "", "rating-x", 5), 0, "%s", out);
    cr_assert(strstr(out, "no rating without a job"), "%s", out);
    cr_assert_neq(rate("payments-agent-1", "agent.key", "--engagement job-2", "rating:job-2", 5), 0,
                  "%s", out);
    cr_assert(strstr(out, "only the engagement's buyer rates the job"), "%s", out);
    /* held from completion on: nothing moves until the ruling */
    cr_assert_eq(cli("engagement complete --agent payments-agent-1 --key owner.key --engagement "
                     "job-2"),
                 0, "%s", out);
    cr_assert(shows("job-2", "statement 1  withhold on completion", 15000), "%s", out);
    /* the job has ended: the buyer rates it, once */
    cr_assert_neq(rate("shop-1", "shop.key", "--engagement job-2", "rating-2", 4), 0, "%s", out);
    cr_assert(strstr(out, "rating:<engagement id>"), "%s", out);
    cr_assert_eq(rate("shop-1", "shop.key", "--engagement job-2", "rating:job-2", 4), 0, "%s", out);
    /* a second rating of the job has its id: the stream (within 2 minutes) or ingest's
     * duplicate table (after) takes it once */
    rate("shop-1", "shop.key", "--engagement job-2", "rating:job-2", 1);
    cr_assert(strstr(out, "nothing new") || strstr(out, "duplicate"), "%s", out);
    cr_assert_eq(cli("dispute rule --arbiter @arbiter --key arbiter.key --agent payments-agent-1 "
                     "--dispute d-b --upheld --reason 'the read was of customers'"),
                 0, "%s", out);
    cr_assert(shows("job-2", "statement 2, supersedes 1  partial  on ruling", 15000), "%s", out);
    cr_assert(strstr(out, "release 80.00 USD to the owner, refund 20.00 USD to the buyer"), "%s",
              out);
}

Test(engagements, a_critical_violation_refunds_at_once_and_a_deadline_refunds_by_the_clock)
{
    hire("job-3", "250.00", "2h");
    hire("job-4", "10.00", "3s");
    /* a refund to an account that is not allow-listed: critical, refund in full at once */
    cr_assert_eq(cli("event publish --agent payments-agent-1 --key agent.key --engagement job-3 "
                     "--kind request --action payments.refund --amount 20 --currency USD "
                     "--label account_allowlisted=false --id refund-1"),
                 0, "%s", out);
    cr_assert(shows("job-3", "refund   on critical_violation", 15000), "%s", out);
    cr_assert(strstr(out, "refund in full on a critical violation"), "%s", out);
    cr_assert(strstr(out, "release 0.00 USD to the owner, refund 250.00 USD to the buyer"), "%s",
              out);
    /* no completion, no input: the scorer's clock ends job-4 at its deadline */
    cr_assert(shows("job-4", "refund   on deadline", 20000), "%s", out);
    cr_assert(strstr(out, "refund in full at the deadline without completion"), "%s", out);
    cr_assert_eq(cli("engagement list payments-agent-1"), 0, "%s", out);
    cr_assert(strstr(out, "0 completed, 0 disputed, 2 refunded"), "%s", out);
    cr_assert_eq(cli("--creds %s/creds/monitor.creds replay --compare", h.auth), 0, "%s", out);
    cr_assert(strstr(out, "statements 2 issued by the replay, 2 byte for byte"), "%s", out);
}

/* A pact whose latency objective is judged per engagement: the mean of the last 3 replies. */
static const char speedy_pact[] =
    "{\"pactum\": 1, \"id\": \"speedy\", \"agent\": \"speedy-1\", \"clauses\": [{\"id\": "
    "\"latency\", \"promise\": \"replies average at most 500 ms over the last 3\", \"severity\": "
    "\"high\", \"kind\": \"objective\", \"when\": {\"field\": \"kind\", \"eq\": \"reply\"}, "
    "\"metric\": \"latency_ms\", \"aggregate\": \"mean\", \"window\": {\"events\": 3}, \"op\": "
    "\"<=\", \"threshold\": 500, \"per\": \"engagement\"}], \"consequences\": {\"withhold\": "
    "[{\"clause\": \"latency\", \"percent\": 50}]}}";

Test(engagements, a_clause_judged_per_engagement_sees_only_that_jobs_events)
{
    FILE *f;
    char path[512];

    snprintf(path, sizeof(path), "%s/speedy.json", h.dir);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(speedy_pact, f);
    fclose(f);
    cr_assert_eq(cli("keygen -o speedy.key"), 0, "%s", out);
    cr_assert_eq(cli("agent register --id speedy-1 --key speedy.key --owner-key owner.key"), 0,
                 "%s", out);
    cr_assert_eq(cli("pact register --key owner.key speedy.json"), 0, "%s", out);
    /* slow work for nobody in particular: the agent's own window fails */
    cr_assert_eq(cli("event publish --agent speedy-1 --key speedy.key --kind reply --metric "
                     "latency_ms=1500 --count 3 --id slow"),
                 0, "%s", out);
    cr_assert_eq(cli("trust speedy-1 --wait-tier restricted --wait 15s"), 0, "%s", out);
    cr_assert_eq(cli("engagement open --id job-s --buyer shop-1 --key shop.key --agent speedy-1 "
                     "--pact speedy --price 100.00 --currency USD --deadline 1h --out job-s.terms"),
                 0, "%s", out);
    cr_assert_eq(cli("engagement accept job-s.terms --key owner.key"), 0, "%s", out);
    /* fast work for the job: judged in the job's own window, which passes */
    cr_assert_eq(cli("event publish --agent speedy-1 --key speedy.key --engagement job-s --kind "
                     "reply --metric latency_ms=100 --count 3 --id fast"),
                 0, "%s", out);
    cr_assert_eq(cli("engagement complete --agent speedy-1 --key owner.key --engagement job-s"), 0,
                 "%s", out);
    cr_assert(shows_for("speedy-1", "job-s", "statement 1  release  on completion", 15000), "%s",
              out);
    cr_assert(strstr(out, "release 100.00 USD to the owner, refund 0.00 USD to the buyer"), "%s",
              out);
    /* and slow work for the job fails in the job's window alone */
    cr_assert_eq(cli("engagement open --id job-t --buyer shop-1 --key shop.key --agent speedy-1 "
                     "--pact speedy --price 100.00 --currency USD --deadline 1h --out job-t.terms"),
                 0, "%s", out);
    cr_assert_eq(cli("engagement accept job-t.terms --key owner.key"), 0, "%s", out);
    cr_assert_eq(cli("event publish --agent speedy-1 --key speedy.key --engagement job-t --kind "
                     "reply --metric latency_ms=900 --count 3 --id sluggish"),
                 0, "%s", out);
    cr_assert(shows_for("speedy-1", "job-t", "running (1 failures so far)", 15000), "%s", out);
}
