/*
 * pactum: command-line tool.
 *
 *   pactum [global options] COMMAND [options]
 *
 * Every command is a row of the table below; `pactum COMMAND --help` prints it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"
#include "pk/pbjson.h"

cli_globals cli;

const cli_opt cli_global_opts[] = {
    {"server", 0, "URL[,URL...]",
     "NATS server, or a seed list of a cluster's servers (PACTUM_NATS_URL, default "
     "nats://127.0.0.1:4222)",
     0},
    {"user", 0, "U", "NATS user (PACTUM_NATS_USER)", 0},
    {"password", 0, "P", "NATS password (PACTUM_NATS_PASSWORD)", 0},
    {"creds", 0, "FILE", "connect as the NATS user of a .creds file (PACTUM_NATS_CREDS)", 0},
    {"as", 0, "KEY",
     "connect as the bus identity of a registered key: KEY and the KEY.jwt its registration "
     "saved (PACTUM_AS)",
     0},
    {"ca", 0, "FILE", "CA certificate of the bus: TLS, the server checked (PACTUM_NATS_CA)", 0},
    {"json", 0, NULL, "print JSON (oracle answers as the HTTP API returns them)", 0},
    {"timeout", 0, "DUR", "request timeout (default 5s)", 0},
    {"oracle-key", 0, "KEY", "oracle answers must be signed by this key (PACTUM_ORACLE_KEY)", 0},
    {"save", 0, "FILE", "keep the oracle's signed answer in FILE, for pactum verify", 0},
    {NULL, 0, NULL, NULL, 0},
};

int cli_global(const char *name, const char *value)
{
    if (strcmp(name, "json") == 0) {
        cli.json = true;
    } else if (strcmp(name, "server") == 0) {
        cli.server = value;
    } else if (strcmp(name, "user") == 0) {
        cli.user = value;
    } else if (strcmp(name, "password") == 0) {
        cli.password = value;
    } else if (strcmp(name, "creds") == 0) {
        cli.creds = value;
    } else if (strcmp(name, "as") == 0) {
        cli.as = value;
    } else if (strcmp(name, "ca") == 0) {
        cli.ca = value;
    } else if (strcmp(name, "save") == 0) {
        cli.save = value;
    } else if (strcmp(name, "oracle-key") == 0) {
        if (pk_pubkey_load(value, cli.oracle_key) != PK_OK)
            return cli_usage_error("--oracle-key needs the log's public key (a .pub file or "
                                   "64 hex characters): %s",
                                   pk_error_msg());
        cli.have_oracle_key = true;
    } else if (strcmp(name, "timeout") == 0) {
        if (pk_duration_parse(value, &cli.timeout_ms) != PK_OK || cli.timeout_ms <= 0)
            return cli_usage_error("--timeout needs a duration like 5s, got '%s'", value);
    }
    return CLI_OK;
}

/* --- the commands ---------------------------------------------------------------------- */

static const cli_opt keygen_opts[] = {
    {"out", 'o', "FILE", "the secret key file (mode 0600); the public key goes in FILE.pub",
     CLI_REQ},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt agent_register_opts[] = {
    {"id", 0, "ID", "the agent's id", CLI_REQ},
    {"key", 0, "AGENT_KEY", "the agent's key file", CLI_REQ},
    {"owner-key", 0, "OWNER_KEY", "its owner's key file (signs the registration)", CLI_REQ},
    {"name", 0, "TEXT", "a display name", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt pact_register_opts[] = {
    {"key", 0, "OWNER_KEY", "the agent owner's key file (signs the pact)", CLI_REQ},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt pact_show_opts[] = {
    {"version", 0, "N", "the version to show (default: the newest)", 0}, {NULL, 0, NULL, NULL, 0}};

static const cli_opt event_opts[] = {
    {"agent", 0, "ID", "who signs the events (an agent, or a reporter)", CLI_REQ},
    {"key", 0, "KEY", "its key file", CLI_REQ},
    {"kind", 0, "KIND", "the events' kind (reply, refund ...)", CLI_REQ},
    {"about", 0, "AGENT", "the agent the events are about (default: the signer)", 0},
    {"metric", 0, "NAME=VALUE", "a measured value", CLI_MANY},
    {"label", 0, "NAME=TEXT", "a label", CLI_MANY},
    {"action", 0, "A", "the action taken", 0},
    {"tool", 0, "T", "the tool used", 0},
    {"resource", 0, "R", "the resource touched", 0},
    {"amount", 0, "X", "an amount spent", 0},
    {"currency", 0, "C", "its currency", 0},
    {"engagement", 0, "ID", "the engagement the events belong to", 0},
    {"id", 0, "EVENT_ID", "the event id (with --count > 1, a prefix)", 0},
    {"ts", 0, "MS", "the event time, Unix milliseconds (default: now)", 0},
    {"count", 0, "N", "how many events (default 1)", 0},
    {"batch", 0, "N", "events per signed envelope (default 1)", 0},
    {"wait", 0, "DUR", "how long to wait for ingest's answer for what was sent (default 10s)", 0},
    {"no-wait", 0, NULL, "do not ask ingest for its answer: stored in PACTUM_RAW is enough", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt trust_opts[] = {
    {"history", 0, "N", "tier changes to show (1 to 200)", 0},
    {"wait-tier", 0, "TIER", "ask again until the agent is in TIER (exit 1 if it is not)", 0},
    {"wait", 0, "DUR", "how long --wait-tier waits (default 10s)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt principal_opts[] = {
    {"id", 0, "ID", "the principal's id", CLI_REQ},
    {"role", 0, "ROLE", "operator, arbiter, evaluator, human or telemetry", CLI_REQ},
    {"key", 0, "KEY", "the principal's key file", CLI_REQ},
    {"admin-key", 0, "ADMIN_KEY", "the admin key file (signs the registration)", CLI_REQ},
    {"name", 0, "TEXT", "a display name", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt override_opts[] = {
    {"operator", 0, "ID", "the operator", CLI_REQ},
    {"key", 0, "KEY", "the operator's key file", CLI_REQ},
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"reason", 0, "TEXT", "why", CLI_REQ},
    {"expires", 0, "DUR", "how long it is in force (at most 30d)", CLI_REQ},
    {"tier", 0, "TIER", "put the agent in this tier", 0},
    {"allow", 0, "A,B", "allow these actions (exact, or ending in '*')", 0},
    {"deny", 0, "A,B", "deny these actions", 0},
    {"id", 0, "ID", "the override's id (default: a random one)", 0},
    {NULL, 0, NULL, NULL, 0}};
static const char *const override_one[] = {"tier|allow|deny", NULL};

static const cli_opt ack_opts[] = {
    {"operator", 0, "ID", "the operator", CLI_REQ},
    {"key", 0, "KEY", "the operator's key file", CLI_REQ},
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"note", 0, "TEXT", "what was checked", 0},
    {"id", 0, "ID", "the acknowledgement's id (default: a random one)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt dispute_open_opts[] = {
    {"agent", 0, "AGENT", "the agent whose evidence is disputed", CLI_REQ},
    {"key", 0, "KEY", "the owner's key file (or, with --as, the counterparty's)", CLI_REQ},
    {"reason", 0, "TEXT", "why", CLI_REQ},
    {"verdict", 0, "VSEQ|last", "the verdict disputed (last: the agent's last violation)", 0},
    {"event", 0, "ID", "the event disputed", 0},
    {"evidence", 0, "TEXT", "counter-evidence", 0},
    {"as", 0, "COUNTERPARTY", "open it as this registered counterparty (or buyer)", 0},
    {"engagement", 0, "ID", "the engagement whose settlement it holds (owner or buyer)", 0},
    {"id", 0, "ID", "the dispute's id (default: a random one)", 0},
    {NULL, 0, NULL, NULL, 0}};
static const char *const dispute_open_one[] = {"verdict|event", NULL};

static const cli_opt engagement_open_opts[] = {
    {"buyer", 0, "ID", "the buyer: a registered agent or person, who signs the terms", CLI_REQ},
    {"key", 0, "KEY", "the buyer's key file", CLI_REQ},
    {"agent", 0, "AGENT", "the agent hired", CLI_REQ},
    {"pact", 0, "PACT", "the pact whose consequences are the terms", CLI_REQ},
    {"version", 0, "N", "its version (default: the newest)", 0},
    {"price", 0, "AMOUNT", "the price, e.g. 1000.00 (hundredths are the minor unit)", CLI_REQ},
    {"currency", 0, "CODE", "ISO 4217 code, e.g. USD", CLI_REQ},
    {"deadline", 0, "DURATION", "from now, e.g. 2h or 7d", CLI_REQ},
    {"job", 0, "TEXT", "what is to be done", 0},
    {"id", 0, "ID", "the engagement's id", CLI_REQ},
    {"out", 0, "FILE", "where the signed terms go (for the owner to accept)", CLI_REQ},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt engagement_accept_opts[] = {
    {"key", 0, "KEY", "the owner key of the agent hired", CLI_REQ}, {NULL, 0, NULL, NULL, 0}};

static const cli_opt engagement_complete_opts[] = {
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"engagement", 0, "ID", "the engagement done", CLI_REQ},
    {"key", 0, "KEY", "the owner key (or, with --as, the agent's key)", CLI_REQ},
    {"as", 0, "AGENT", "sign as the agent itself", 0},
    {"note", 0, "TEXT", "what was delivered", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt dispute_rule_opts[] = {
    {"arbiter", 0, "ID", "the arbiter", CLI_REQ},
    {"key", 0, "KEY", "the arbiter's key file", CLI_REQ},
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"dispute", 0, "ID", "the dispute ruled on", CLI_REQ},
    {"reason", 0, "TEXT", "why", CLI_REQ},
    {"upheld", 0, NULL, "the evidence stands", 0},
    {"overturned", 0, NULL, "the evidence leaves the score", 0},
    {NULL, 0, NULL, NULL, 0}};
static const char *const dispute_rule_one[] = {"upheld|overturned", NULL};

static const cli_opt replay_opts[] = {
    {"compare", 0, NULL, "compare the digest with the live scorer's", 0},
    {"keep", 0, "DIR", "keep the rebuilt state in DIR (a folder that does not exist yet)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt authorize_opts[] = {
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"action", 0, "A", "the action it wants to take", CLI_REQ},
    {"resource", 0, "R", "the resource", 0},
    {"tool", 0, "T", "the tool", 0},
    {"amount", 0, "X", "the amount", 0},
    {"currency", 0, "C", "its currency", 0},
    {"kind", 0, "KIND", "the kind of event it would be (default: the action)", 0},
    {"approval", 0, "FILE",
     "a person's approval of this request (pactum approve), "
     "used once",
     0},
    {"token", 0, "TOKEN",
     "the API client's token (PACTUM_TOKEN): a decision is "
     "recorded, so one is needed",
     0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt approve_opts[] = {
    {"decision", 0, "ID", "the decision that needed the approval", CLI_REQ},
    {"agent", 0, "AGENT", "the agent", CLI_REQ},
    {"action", 0, "A", "the action approved", CLI_REQ},
    {"resource", 0, "R", "the resource, as in the request", 0},
    {"tool", 0, "T", "the tool, as in the request", 0},
    {"amount", 0, "X", "the amount, as in the request", 0},
    {"currency", 0, "C", "its currency", 0},
    {"approver", 0, "@ID", "the approving operator or human reviewer", CLI_REQ},
    {"key", 0, "KEY", "the approver's key file (signs the approval)", CLI_REQ},
    {"expires", 0, "DUR", "how long it may be used (default 15m, at most 24h)", 0},
    {"note", 0, "TEXT", "a note", 0},
    {"id", 0, "ID", "the approval id (default: made up)", 0},
    {"out", 'o', "FILE", "where the signed approval goes (mode 0600)", CLI_REQ},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt evidence_opts[] = {
    {"from", 0, "N", "the first leaf to list", 0},
    {"limit", 0, "N", "leaves per page (1 to 100, default 20)", 0},
    {"kind", 0, "K", "event, verdict, governance, trust_change, registry or decision", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt log_head_opts[] = {
    {"size", 0, "N", "the head of the first N leaves (default: the whole log)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt log_prove_opts[] = {
    {"index", 0, "N", "the leaf", 0},
    {"stream", 0, "NAME", "the leaf of this stream's message ...", 0},
    {"seq", 0, "N", "... at this sequence", 0},
    {"size", 0, "N", "prove it in the tree of the first N leaves", 0},
    {NULL, 0, NULL, NULL, 0}};
static const char *const log_prove_one[] = {"index|stream", NULL};

static const cli_opt log_consistency_opts[] = {
    {"from", 0, "N", "the older tree's size", CLI_REQ},
    {"size", 0, "N", "the newer tree's size (default: the whole log)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt verify_opts[] = {
    {"key", 0, "LOG.pub", "the log's public key (a .pub file or hex; or PACTUM_ORACLE_KEY)", 0},
    {"witness", 0, "VKEY",
     "a witness's verifier key; a checkpoint (GET /checkpoint) must carry its cosignature",
     CLI_MANY},
    {"witnesses", 0, "N", "how many of the --witness keys must have cosigned (default: all)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt log_key_opts[] = {
    {"key", 0, "LOG.pub", "the log's public key (a .pub file or hex; or PACTUM_ORACLE_KEY)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt log_monitor_opts[] = {
    {"url", 0, "URL", "the oracle's HTTP address (default http://127.0.0.1:7480)", 0},
    {"key", 0, "LOG.pub", "the log's public key (a .pub file or hex; or PACTUM_ORACLE_KEY)", 0},
    {"state", 0, "FILE",
     "what was verified so far, read at the start and kept after each round (default: none; "
     "the whole log is read)",
     0},
    {"every", 0, "DURATION", "time between rounds (default 5s)", 0},
    {"rounds", 0, "N", "stop after N rounds (default: until interrupted)", 0},
    {"once", 0, NULL, "one round (the same as --rounds 1)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const cli_opt no_opts[] = {{NULL, 0, NULL, NULL, 0}};

static const cli_opt client_register_opts[] = {
    {"id", 0, "@ID", "the client's id (begins with '@')", CLI_REQ},
    {"admin-key", 0, "KEY", "the admin key, which signs the registration", CLI_REQ},
    {"name", 0, "TEXT", "a display name", 0},
    {"key", 0, "KEY", "the client's own key, which signs its webhook subscriptions", 0},
    {"out", 'o', "FILE", "write the token to FILE (mode 0600) instead of printing it", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const cli_opt webhook_add_opts[] = {
    {"client", 0, "@ID", "the API client subscribing", CLI_REQ},
    {"key", 0, "KEY", "the key the client registered (client register --key)", CLI_REQ},
    {"url", 0, "URL", "where the changes are POSTed (http:// or https://)", CLI_REQ},
    {"agent", 0, "AGENT", "only this agent's changes (repeat for more; none: every agent)",
     CLI_MANY},
    {"kind", 0, "KIND",
     "only changes of this kind: tier_changed, contained, violation, dispute_opened, "
     "dispute_ruled, reentry, override, settlement (repeat for more; none: every change)",
     CLI_MANY},
    {"oracle", 0, "URL", "the oracle's HTTP address (PACTUM_ORACLE_URL; http://127.0.0.1:7480)", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const cli_opt webhook_cancel_opts[] = {
    {"client", 0, "@ID", "the API client", CLI_REQ},
    {"key", 0, "KEY", "the key the client registered", CLI_REQ},
    {"url", 0, "URL", "the subscribed URL", CLI_REQ},
    {"oracle", 0, "URL", "the oracle's HTTP address (PACTUM_ORACLE_URL; http://127.0.0.1:7480)", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const cli_opt webhook_read_opts[] = {
    {"token", 0, "TOKEN", "the API client's token (PACTUM_TOKEN)", 0},
    {"oracle", 0, "URL", "the oracle's HTTP address (PACTUM_ORACLE_URL; http://127.0.0.1:7480)", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const cli_opt setup_init_opts[] = {
    {"dir", 0, "DIR", "where the keys, credentials and nats.conf go (made mode 0700)", CLI_REQ},
    {"partitions", 0, "N", "partitions of the event streams (default 4)", 0},
    {"tls-dir", 0, "DIR", "server.pem and server.key for TLS (scripts/tls.sh makes them)", 0},
    {"store", 0, "DIR", "JetStream's store (default DIR/jetstream)", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const cli_opt setup_streams_opts[] = {
    {"partitions", 0, "N", "partitions of the event streams (default 4; fixed once created)", 0},
    {"replicas", 0, "N",
     "replicas of every stream, 1 to 5 (PACTUM_STREAM_REPLICAS, default 1; 3 on a cluster); "
     "existing streams with fewer are raised",
     0},
    {NULL, 0, NULL, NULL, 0},
};

static const char *const event_one[] = {"wait|no-wait", NULL};

static const cli_cmd commands[] = {
    {"keygen", NULL, 0, 0, "make an Ed25519 key", keygen_opts, NULL, NULL, cmd_keygen},
    {"agent register", NULL, 0, 0, "register an agent and its key, signed by its owner",
     agent_register_opts, NULL, NULL, cmd_agent_register},
    {"pact lint", "FILE...", 1, -1, "check pact files; every problem is listed with its field",
     no_opts, NULL, NULL, cmd_pact_lint},
    {"pact register", "FILE", 1, 1,
     "register a pact (a changed document becomes the next "
     "version)",
     pact_register_opts, NULL, NULL, cmd_pact_register},
    {"pact history", "PACT_ID", 1, 1, "every registered version of a pact with its hash", no_opts,
     NULL, NULL, cmd_pact_history},
    {"pact show", "PACT_ID", 1, 1,
     "a version's document, checked against its hash and its "
     "owner's signature",
     pact_show_opts, NULL, NULL, cmd_pact_show},
    {"event publish", NULL, 0, 0,
     "sign and publish events, and say which ingest accepted and refused (exit 1 if any was "
     "refused)",
     event_opts, NULL, event_one, cmd_event_publish},
    {"trust", "AGENT", 1, 1, "an agent's trust report", trust_opts, NULL, NULL, cmd_trust},
    {"trust query", "AGENT", 1, 1, "the same as pactum trust AGENT", trust_opts, NULL, NULL,
     cmd_trust},
    {"principal register", NULL, 0, 0,
     "register an operator, arbiter, evaluator or human "
     "reviewer, signed by the admin key",
     principal_opts, NULL, NULL, cmd_principal_register},
    {"client register", NULL, 0, 0,
     "register an API client and make its token (shown once), signed by the admin key",
     client_register_opts, NULL, NULL, cmd_client_register},
    {"override", NULL, 0, 0, "an operator widens, narrows or lifts a tier for a while",
     override_opts, override_one, NULL, cmd_override},
    {"ack", NULL, 0, 0, "an operator acknowledges an agent (a re-entry criterion)", ack_opts, NULL,
     NULL, cmd_ack},
    {"dispute open", NULL, 0, 0, "the owner (or a counterparty) disputes a verdict or an event",
     dispute_open_opts, dispute_open_one, NULL, cmd_dispute_open},
    {"dispute rule", NULL, 0, 0, "an arbiter rules on a dispute", dispute_rule_opts,
     dispute_rule_one, NULL, cmd_dispute_rule},
    {"engagement open", NULL, 0, 0,
     "a buyer signs a job's terms for an agent under a pact version (a file for its owner)",
     engagement_open_opts, NULL, NULL, cmd_engagement_open},
    {"engagement accept", "FILE", 1, 1,
     "the agent's owner accepts a buyer's signed terms: the engagement starts",
     engagement_accept_opts, NULL, NULL, cmd_engagement_accept},
    {"engagement complete", NULL, 0, 0, "the agent or its owner declares the job done",
     engagement_complete_opts, NULL, NULL, cmd_engagement_complete},
    {"engagement show", "AGENT ENGAGEMENT", 2, 2,
     "an engagement and its settlement statements, with every proof checked", no_opts, NULL, NULL,
     cmd_engagement_show},
    {"engagement list", "AGENT", 1, 1, "an agent's engagements, totals and statements", no_opts,
     NULL, NULL, cmd_engagement_list},
    {"replay", NULL, 0, 0,
     "rebuild the scorer's state from the recorded history and print its "
     "digest",
     replay_opts, NULL, NULL, cmd_replay},
    {"authorize", NULL, 0, 0, "may the agent do it now? (exit 0 allow, 1 otherwise)",
     authorize_opts, NULL, NULL, cmd_authorize},
    {"approve", NULL, 0, 0,
     "a person approves, once, a request that needed approval (a signed file for authorize)",
     approve_opts, NULL, NULL, cmd_approve},
    {"evidence", "AGENT", 1, 1, "the agent's logged records with inclusion proofs (checked)",
     evidence_opts, NULL, NULL, cmd_evidence},
    {"attest", "AGENT", 1, 1, "a signed statement of the agent's standing, with its proof", no_opts,
     NULL, NULL, cmd_attest},
    {"figures", "[AGENT]", 0, 1, "governance figures, system-wide or for one agent", no_opts, NULL,
     NULL, cmd_figures},
    {"log head", NULL, 0, 0, "the transparency log's signed head", log_head_opts, NULL, NULL,
     cmd_log_head},
    {"log prove", NULL, 0, 0, "an inclusion proof (checked)", log_prove_opts, log_prove_one, NULL,
     cmd_log_prove},
    {"log consistency", NULL, 0, 0, "a consistency proof (checked)", log_consistency_opts, NULL,
     NULL, cmd_log_consistency},
    {"log key", NULL, 0, 0,
     "the log's id, key and note verifier key, from its public key (offline, to pin or compare)",
     log_key_opts, NULL, NULL, cmd_log_key},
    {"webhook add", NULL, 0, 0,
     "subscribe a URL to trust changes, signed by the API client's key (again: new filters)",
     webhook_add_opts, NULL, NULL, cmd_webhook_add},
    {"webhook cancel", NULL, 0, 0, "end the API client's subscription of a URL",
     webhook_cancel_opts, NULL, NULL, cmd_webhook_cancel},
    {"webhook list", NULL, 0, 0, "the API client's webhook subscriptions (with its token)",
     webhook_read_opts, NULL, NULL, cmd_webhook_list},
    {"webhook show", "ID", 1, 1, "a subscription and its latest deliveries (with its token)",
     webhook_read_opts, NULL, NULL, cmd_webhook_show},
    {"log monitor", NULL, 0, 0,
     "follow the log by its checkpoints and tiles; exit 1 with the two checkpoints if it "
     "contradicts itself",
     log_monitor_opts, NULL, NULL, cmd_log_monitor},
    {"verify", "FILE...", 1, -1,
     "check saved answers (--save, or HTTP bodies) and checkpoints offline", verify_opts, NULL,
     NULL, cmd_verify},
    {"setup init", NULL, 0, 0,
     "make the bus's keys, JWTs, credentials and nats.conf (operator mode)", setup_init_opts, NULL,
     NULL, cmd_setup_init},
    {"setup streams", NULL, 0, 0, "create the streams (with the setup user's --creds)",
     setup_streams_opts, NULL, NULL, cmd_setup_streams},
    {"health", "[SERVICE]", 0, 1, "ask the services whether they are healthy", no_opts, NULL, NULL,
     cmd_health},
    {"metrics", "SERVICE", 1, 1, "a service's counters in Prometheus text format", no_opts, NULL,
     NULL, cmd_metrics},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_help(FILE *f)
{
    fputs("usage: pactum [global options] COMMAND [options]\n\ncommands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-20s %s\n", commands[i].path, commands[i].summary);
    fputs("\nglobal options (before or after the command):\n", f);
    for (size_t i = 0; cli_global_opts[i].name; i++) {
        char text[40];
        snprintf(text, sizeof(text), "--%s%s%s", cli_global_opts[i].name,
                 cli_global_opts[i].arg ? " " : "",
                 cli_global_opts[i].arg ? cli_global_opts[i].arg : "");
        fprintf(f, "  %-20s %s\n", text, cli_global_opts[i].help);
    }
    fputs("\n`pactum COMMAND --help` shows a command's options.\n"
          "exit codes: 0 ok, 1 refused or negative answer, 2 usage, 3 files or keys, 4 bus\n",
          f);
}

/* The command whose words start argv (longest match); *words receives how many it took. */
static const cli_cmd *find_command(int argc, char **argv, int *words)
{
    const cli_cmd *best = NULL;

    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *p = commands[i].path;
        int w = 0;
        bool match = true;
        while (*p && match) {
            size_t n = strcspn(p, " ");
            match = w < argc && strlen(argv[w]) == n && strncmp(argv[w], p, n) == 0;
            w++;
            p += n + (p[n] == ' ');
        }
        if (match && (!best || w > *words)) {
            best = &commands[i];
            *words = w;
        }
    }
    return best;
}

/* "agent: expected register" when argv names the first word of commands only. */
static int unknown_command(int argc, char **argv)
{
    char known[256] = "";
    size_t n = 0;

    for (size_t i = 0; i < N_COMMANDS; i++) {
        size_t w = strcspn(commands[i].path, " ");
        if (commands[i].path[w] == ' ' && strlen(argv[0]) == w &&
            strncmp(commands[i].path, argv[0], w) == 0)
            n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "",
                                  commands[i].path + w + 1);
    }
    if (n)
        return cli_usage_error("%s: expected one of %s%s%s", argv[0], known,
                               argc > 1 ? ", got " : "", argc > 1 ? argv[1] : "");
    return cli_usage_error("unknown command '%s'", argv[0]);
}

/* Global options before the command (up to the first word that is not one). */
static int leading_globals(int *i, int argc, char **argv)
{
    while (*i < argc && strncmp(argv[*i], "--", 2) == 0) {
        const char *name = argv[*i] + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        size_t k = 0;
        for (; cli_global_opts[k].name; k++) {
            if (strlen(cli_global_opts[k].name) == n &&
                strncmp(cli_global_opts[k].name, name, n) == 0)
                break;
        }
        if (strcmp(name, "help") == 0) {
            print_help(stdout);
            return -1;
        }
        if (!cli_global_opts[k].name)
            return cli_usage_error("unknown option '%s'", argv[*i]);
        if (cli_global_opts[k].arg && !eq && *i + 1 >= argc)
            return cli_usage_error("%s needs a value", argv[*i]);
        if (cli_global(cli_global_opts[k].name,
                       cli_global_opts[k].arg ? (eq ? eq + 1 : argv[++*i]) : NULL) != CLI_OK)
            return CLI_USAGE;
        (*i)++;
    }
    return CLI_OK;
}

int main(int argc, char **argv)
{
    const cli_cmd *cmd;
    cli_call call;
    int i = 1, words = 0, rc;
    char name[64];

    cli.server = getenv("PACTUM_NATS_URL") ? getenv("PACTUM_NATS_URL") : "nats://127.0.0.1:4222";
    cli.user = getenv("PACTUM_NATS_USER");
    cli.password = getenv("PACTUM_NATS_PASSWORD");
    cli.creds_env = getenv("PACTUM_NATS_CREDS");
    cli.as_env = getenv("PACTUM_AS");
    cli.ca = getenv("PACTUM_NATS_CA");
    cli.timeout_ms = 5000;
    pk_log_init("pactum", PK_LOG_ERROR);
    if (pk_crypto_init() != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (getenv("PACTUM_ORACLE_KEY") && *getenv("PACTUM_ORACLE_KEY") &&
        cli_global("oracle-key", getenv("PACTUM_ORACLE_KEY")) != CLI_OK)
        return CLI_USAGE;
    if ((rc = leading_globals(&i, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (i >= argc) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (!(cmd = find_command(argc - i, argv + i, &words)))
        return unknown_command(argc - i, argv + i);
    /* getopt_long sees the command's words as argv[0] */
    snprintf(name, sizeof(name), "pactum %s", cmd->path);
    argv[i + words - 1] = name;
    rc = cli_parse(cmd, argc - i - words + 1, argv + i + words - 1, &call);
    if (rc < 0)
        return CLI_OK; /* --help */
    if (rc != CLI_OK)
        return rc;
    rc = cmd->run(&call);
    nats_Close();
    return rc;
}

/* --- shared by the commands --------------------------------------------------------------- */

/* KEY.jwt: the bus identity a key's registration saved; NULL if there is none. */
static char *saved_jwt(const char *key)
{
    char path[4096], line[8192];
    FILE *f;

    snprintf(path, sizeof(path), "%s.jwt", key);
    if (!(f = fopen(path, "r")))
        return NULL;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return line[0] ? strdup(line) : NULL;
}

/*
 * Connect as: --as KEY, else --creds FILE, else the key the command signs with
 * (when its registration saved a bus identity), else PACTUM_AS, else
 * PACTUM_NATS_CREDS, else the NATS user and password (or none).
 */
pk_bus *cli_connect(void)
{
    pk_bus *bus = NULL;
    pk_bus_opts o = {.url = cli.server,
                     .name = "pactum-cli",
                     .user = cli.user,
                     .password = cli.password,
                     .ca = cli.ca,
                     .send_asap = true,
                     .connect_wait_ms = 3000};
    const char *as = cli.as, *creds = cli.creds;
    char *jwt = NULL;
    pk_keypair kp;
    pk_status st;

    if (!as && !creds && cli.key_id && (jwt = saved_jwt(cli.key_id)))
        as = cli.key_id;
    if (!as && !creds) {
        as = cli.as_env && *cli.as_env ? cli.as_env : NULL;
        creds = as ? NULL : cli.creds_env;
    }
    if (as) {
        if (!jwt && !(jwt = saved_jwt(as))) {
            cli_error(CLI_IO,
                      "%s has no bus identity: %s.jwt is saved when the key is registered "
                      "(pactum agent register, pactum principal register)",
                      as, as);
            return NULL;
        }
        if (pk_key_load(as, &kp) != PK_OK) {
            free(jwt);
            cli_error(CLI_IO, "%s", pk_error_msg());
            return NULL;
        }
        o.jwt = jwt;
        o.nkey = &kp;
    } else {
        o.creds = creds;
    }
    st = pk_bus_connect(&bus, &o);
    if (as)
        pk_keypair_wipe(&kp);
    free(jwt);
    if (st != PK_OK) {
        cli_error(CLI_BUS, "%s", pk_error_msg());
        return NULL;
    }
    return bus;
}

int cli_request(pk_bus *bus, const char *subject, const uint8_t *data, size_t len, natsMsg **reply)
{
    pk_status st = pk_bus_request(bus, subject, data, len, cli.timeout_ms, reply);

    if (st == PK_ENOTFOUND)
        return cli_error(CLI_BUS, "nobody answers on %s: is the service running?", subject);
    if (st != PK_OK)
        return cli_error(CLI_BUS, "%s", pk_error_msg());
    return CLI_OK;
}

void cli_print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (text) {
        puts(text);
        free(text);
    }
    json_decref(v);
}

void cli_print_message(const ProtobufCMessage *m)
{
    cli_print_json(pk_pb_json(m));
}
