/*
 * pactum: command-line tool.
 *
 *   pactum [--server URL] [--json] [--timeout 5s] COMMAND ...
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"

cli_globals cli;

static const char usage[] =
    "usage: pactum [global options] COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  keygen -o FILE                      make an Ed25519 key (FILE, mode 0600) and FILE.pub\n"
    "  agent register --id ID --key AGENT_KEY --owner-key OWNER_KEY [--name TEXT]\n"
    "                                      register an agent and its key\n"
    "  pact lint FILE...                   check pact files; every problem is listed\n"
    "  pact register --key OWNER_KEY FILE  register a pact (a new version if the id exists)\n"
    "  pact history PACT_ID                every registered version with its hash\n"
    "  pact show PACT_ID [--version N]     a version's document, checked against its hash\n"
    "                                      and its owner's signature\n"
    "  event publish --agent ID --key KEY --kind KIND [--metric NAME=VALUE]...\n"
    "                [--label NAME=VALUE]... [--action A] [--tool T] [--resource R]\n"
    "                [--amount X --currency C] [--id EVENT_ID] [--ts MS]\n"
    "                [--about AGENT] [--count N] [--batch N]\n"
    "                                      sign and publish events\n"
    "  trust AGENT [--history N] [--wait-tier TIER] [--wait 10s]\n"
    "                                      show an agent's trust report\n"
    "  principal register --id ID --role operator|arbiter|evaluator|human --key KEY\n"
    "                     --admin-key ADMIN_KEY   register a principal (signed by the admin key)\n"
    "  override --operator ID --key KEY --agent AGENT --reason TEXT --expires 2h\n"
    "           (--tier TIER | --allow A,B | --deny A,B) [--id ID]\n"
    "                                      an operator widens, narrows or lifts a tier\n"
    "  ack --operator ID --key KEY --agent AGENT [--note TEXT]\n"
    "                                      an operator acknowledges a contained agent\n"
    "  dispute open --agent AGENT --key KEY (--verdict VSEQ|last | --event ID) --reason TEXT\n"
    "               [--evidence TEXT] [--as COUNTERPARTY] [--id ID]\n"
    "                                      the owner (or a counterparty) disputes evidence\n"
    "  dispute rule --arbiter ID --key KEY --agent AGENT --dispute ID --reason TEXT\n"
    "               (--upheld | --overturned)   an arbiter rules\n"
    "  replay [--compare] [--keep DIR]     rebuild the scorer's state from the history and\n"
    "                                      print its digest (with --compare, the live one too)\n"
    "  authorize --agent ID --action A [--resource R] [--tool T] [--amount X --currency C]\n"
    "                                      may the agent do it now? (exit 0 allow, 1 otherwise)\n"
    "  evidence AGENT [--from N] [--limit N] [--kind K]\n"
    "                                      the agent's logged records with inclusion proofs\n"
    "  attest AGENT                        a signed statement of the agent's standing\n"
    "  figures [AGENT]                     governance figures, system-wide or for one agent\n"
    "  log head | log prove (--index N | --stream S --seq N) [--size N]\n"
    "      | log consistency --from N [--size N]\n"
    "                                      the transparency log: heads and proofs\n"
    "  verify [--key LOG.pub] FILE...      check saved answers offline (--save, or JSON)\n"
    "  health [SERVICE]                    ask services if they are healthy\n"
    "  metrics SERVICE                     print a service's counters (Prometheus text)\n"
    "\n"
    "global options:\n"
    "  --server URL     NATS server (PACTUM_NATS_URL, default nats://127.0.0.1:4222)\n"
    "  --user U --password P   NATS credentials (PACTUM_NATS_USER, PACTUM_NATS_PASSWORD)\n"
    "  --json           print JSON\n"
    "  --timeout DUR    request timeout (default 5s)\n"
    "  --oracle-key K   oracle answers must be signed by this key (PACTUM_ORACLE_KEY)\n"
    "  --save FILE      keep the oracle's signed answer in FILE, for pactum verify\n"
    "\n"
    "exit codes: 0 ok, 1 refused or negative answer, 2 usage, 3 files or keys, 4 bus\n";

int cli_opt(cli_args *a, const char *name, const char **val)
{
    const char *arg;
    size_t n = strlen(name);

    if (a->i >= a->argc)
        return 0;
    arg = a->argv[a->i];
    if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0)
        return 0;
    if (arg[2 + n] == '=') {
        *val = arg + 3 + n;
        a->i++;
        return 1;
    }
    if (arg[2 + n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc)
        return -1;
    *val = a->argv[a->i + 1];
    a->i += 2;
    return 1;
}

bool cli_flag(cli_args *a, const char *name)
{
    if (a->i < a->argc && strncmp(a->argv[a->i], "--", 2) == 0 &&
        strcmp(a->argv[a->i] + 2, name) == 0) {
        a->i++;
        return true;
    }
    return false;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("pactum: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see pactum --help)\n", stderr);
    return CLI_USAGE;
}

int cli_error(int code, const char *fmt, ...)
{
    va_list ap;

    fputs("pactum: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

pk_bus *cli_connect(void)
{
    pk_bus *bus = NULL;
    pk_bus_opts o = {.url = cli.server,
                     .name = "pactum-cli",
                     .user = cli.user,
                     .password = cli.password,
                     .send_asap = true,
                     .connect_wait_ms = 3000};

    if (pk_bus_connect(&bus, &o) != PK_OK) {
        cli_error(CLI_BUS, "%s", pk_error_msg());
        return NULL;
    }
    return bus;
}

int cli_request(pk_bus *bus, const char *subject, const uint8_t *data, size_t len, natsMsg **reply)
{
    natsStatus s = natsConnection_Request(reply, bus->nc, subject, data, (int)len, cli.timeout_ms);

    if (s == NATS_NO_RESPONDERS)
        return cli_error(CLI_BUS, "nobody answers on %s: is the service running?", subject);
    if (s == NATS_TIMEOUT)
        return cli_error(CLI_BUS, "no answer on %s within %lld ms", subject,
                         (long long)cli.timeout_ms);
    if (s != NATS_OK)
        return cli_error(CLI_BUS, "request on %s failed: %s", subject, natsStatus_GetText(s));
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

int main(int argc, char **argv)
{
    static const struct {
        const char *name;       /* command word */
        int (*fn)(cli_args *a); /* its handler */
    } commands[] = {{"keygen", cmd_keygen},
                    {"agent", cmd_agent},
                    {"pact", cmd_pact},
                    {"event", cmd_event},
                    {"trust", cmd_trust},
                    {"health", cmd_health},
                    {"metrics", cmd_metrics},
                    {"principal", cmd_principal},
                    {"override", cmd_override},
                    {"ack", cmd_ack},
                    {"dispute", cmd_dispute},
                    {"replay", cmd_replay},
                    {"authorize", cmd_authorize},
                    {"evidence", cmd_evidence},
                    {"attest", cmd_attest},
                    {"figures", cmd_figures},
                    {"log", cmd_log},
                    {"verify", cmd_verify}};
    cli_args a = {.argc = argc, .argv = argv, .i = 1};
    const char *val;
    int rc = CLI_USAGE;

    cli.server = getenv("PACTUM_NATS_URL") ? getenv("PACTUM_NATS_URL") : "nats://127.0.0.1:4222";
    cli.user = getenv("PACTUM_NATS_USER");
    cli.password = getenv("PACTUM_NATS_PASSWORD");
    cli.timeout_ms = 5000;
    if (getenv("PACTUM_ORACLE_KEY") && *getenv("PACTUM_ORACLE_KEY")) {
        if (pk_crypto_init() != PK_OK ||
            pk_pubkey_load(getenv("PACTUM_ORACLE_KEY"), cli.oracle_key) != PK_OK)
            return cli_error(CLI_USAGE, "PACTUM_ORACLE_KEY: %s", pk_error_msg());
        cli.have_oracle_key = true;
    }
    pk_log_init("pactum", PK_LOG_ERROR);
    if (pk_crypto_init() != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    while (a.i < a.argc && strncmp(a.argv[a.i], "--", 2) == 0) {
        int r;
        if (cli_flag(&a, "help")) {
            fputs(usage, stdout);
            return CLI_OK;
        } else if (cli_flag(&a, "json")) {
            cli.json = true;
        } else if ((r = cli_opt(&a, "server", &val)) != 0) {
            if (r < 0)
                return cli_usage_error("--server needs a URL");
            cli.server = val;
        } else if ((r = cli_opt(&a, "user", &val)) != 0) {
            if (r < 0)
                return cli_usage_error("--user needs a value");
            cli.user = val;
        } else if ((r = cli_opt(&a, "password", &val)) != 0) {
            if (r < 0)
                return cli_usage_error("--password needs a value");
            cli.password = val;
        } else if ((r = cli_opt(&a, "oracle-key", &val)) != 0) {
            if (r < 0 || pk_pubkey_load(val, cli.oracle_key) != PK_OK)
                return cli_usage_error("--oracle-key needs the log's public key (a .pub file or "
                                       "64 hex characters)");
            cli.have_oracle_key = true;
        } else if ((r = cli_opt(&a, "save", &val)) != 0) {
            if (r < 0)
                return cli_usage_error("--save needs a file name");
            cli.save = val;
        } else if ((r = cli_opt(&a, "timeout", &val)) != 0) {
            if (r < 0 || pk_duration_parse(val, &cli.timeout_ms) != PK_OK || cli.timeout_ms <= 0)
                return cli_usage_error("--timeout needs a duration like 5s");
        } else {
            return cli_usage_error("unknown option '%s'", a.argv[a.i]);
        }
    }
    if (a.i >= a.argc) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(a.argv[a.i], commands[i].name) == 0) {
            a.i++;
            rc = commands[i].fn(&a);
            nats_Close();
            return rc;
        }
    }
    return cli_usage_error("unknown command '%s'", a.argv[a.i]);
}
