/*
 * pactum - the command-line tool for every action a person takes.
 *
 * Every command is a row of the table in main.c: its words, its options (a
 * cli_opt table, parsed by getopt_long in args.c), which options exclude or
 * need each other, and the function that runs it with what was parsed.
 * `pactum COMMAND --help` prints the row as a usage.
 */
#ifndef CLI_H
#define CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/codec.h"

/* Exit codes. */
enum {
    CLI_OK = 0,
    CLI_FAIL = 1,  /* the request was refused or the answer is negative */
    CLI_USAGE = 2, /* bad command line */
    CLI_IO = 3,    /* files, keys */
    CLI_BUS = 4,   /* NATS unreachable, no responders, timeouts */
};

/* Global options, from the environment and the command line. */
typedef struct cli_globals {
    const char *server;     /* NATS URL */
    const char *user;       /* NATS user */
    const char *password;   /* NATS password */
    const char *creds;      /* --creds: a .creds file to connect with */
    const char *creds_env;  /* PACTUM_NATS_CREDS: the same, unless a key says who we are */
    const char *as;         /* --as: connect as the bus identity of this key file */
    const char *as_env;     /* PACTUM_AS */
    const char *key_id;     /* the key the command signs with: its identity, if registered */
    const char *ca;         /* CA certificate of the bus (TLS) */
    bool json;              /* print JSON instead of text */
    int64_t timeout_ms;     /* request timeout */
    uint8_t oracle_key[32]; /* the key oracle answers must be signed with (--oracle-key) */
    bool have_oracle_key;
    const char *save; /* --save FILE: keep the signed answer */
} cli_globals;

extern cli_globals cli;

/* --- commands and their options ------------------------------------------------------- */

#define CLI_REQ  1u /* the option must be given */
#define CLI_MANY 2u /* the option may be given more than once; every value is kept */

#define CLI_OPTS_MAX 24 /* options of one command */
#define CLI_MANY_MAX 32 /* values of a CLI_MANY option */

typedef struct cli_opt {
    const char *name; /* long name, without "--" */
    char short_name;  /* a one-letter form ('o' for -o), or 0 */
    const char *arg;  /* the value's name in the usage ("ID"); NULL: a flag */
    const char *help; /* one line */
    unsigned flags;   /* CLI_REQ, CLI_MANY */
} cli_opt;

typedef struct cli_call cli_call;

typedef struct cli_cmd {
    const char *path;               /* its words: "agent register" */
    const char *args;               /* positional words in the usage: "FILE...", or NULL */
    int min_args, max_args;         /* how many positional words (max -1: any) */
    const char *summary;            /* what it does */
    const cli_opt *opts;            /* its options, ended by {NULL} */
    const char *const *exactly_one; /* groups "a|b|c": exactly one of each must be given */
    const char *const *at_most_one; /* groups "a|b": they contradict each other */
    int (*run)(const cli_call *c);  /* runs it */
} cli_cmd;

/* What the command line gave a command. */
struct cli_call {
    const cli_cmd *cmd;                           /* the command */
    const char *val[CLI_OPTS_MAX];                /* each option's (last) value; "" for a
                                                   * flag given; NULL when absent */
    const char *many[CLI_OPTS_MAX][CLI_MANY_MAX]; /* every value of a CLI_MANY option */
    size_t n_many[CLI_OPTS_MAX];                  /* ... and how many */
    char *const *args;                            /* positional words */
    int n_args;                                   /* ... and how many */
};

/*
 * Parse argv (argv[0] names the command) for cmd into *c. Returns CLI_OK, a
 * usage error (printed), or -1 after printing cmd's usage for --help (the
 * caller exits 0).
 */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_call *c);

/* Print cmd's usage, options and summary to f. */
void cli_print_usage(const cli_cmd *cmd, FILE *f);

/* The value of option name, or NULL if it was not given. */
const char *cli_get(const cli_call *c, const char *name);

/* Was option name given? */
bool cli_has(const cli_call *c, const char *name);

/* Every value of a CLI_MANY option; returns how many. */
size_t cli_get_all(const cli_call *c, const char *name, const char *const **out);

/*
 * Option name as a whole number within [min, max] into *out (left as it is
 * when absent). CLI_OK or a printed usage error.
 */
int cli_get_u64(const cli_call *c, const char *name, uint64_t min, uint64_t max, uint64_t *out);

/* Option name as a number >= min (left as it is when absent). */
int cli_get_double(const cli_call *c, const char *name, double min, double *out);

/* Option name as a duration ("5s") within [min_ms, max_ms] (left as it is when absent). */
int cli_get_duration(const cli_call *c, const char *name, int64_t min_ms, int64_t max_ms,
                     int64_t *out);

/* Apply a global option given on the command line; CLI_OK or a printed usage error. */
int cli_global(const char *name, const char *value);

/* The global options every command accepts (ended by {NULL}). */
extern const cli_opt cli_global_opts[];

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- the bus and the oracle --------------------------------------------------------------- */

/* Connect to the bus (a few seconds of retries); NULL with a message on failure. */
pk_bus *cli_connect(void);

/* Request-reply; *reply is the caller's (natsMsg_Destroy). */
int cli_request(pk_bus *bus, const char *subject, const uint8_t *data, size_t len, natsMsg **reply);

/*
 * Seal payload as type, signed by kp as signer_id ("" or NULL: by key alone),
 * send it to subject (pactum.registry.submit or pactum.governance.submit)
 * and print the receipt; CLI_OK if it says ok.
 */
int cli_submit(const char *subject, Pactum__V1__PayloadType type, const ProtobufCMessage *payload,
               const char *signer_id, const pk_keypair *kp);

/*
 * A key whose bus identity the next registration's receipt may carry: it is
 * saved as key_path.jwt (used by --as, or by any command signing with the key).
 */
void cli_expect_identity(const char *key_path, const uint8_t pk[32]);

/* The same, signed with the key in the file key_path. */
int cli_submit_with_key(const char *subject, Pactum__V1__PayloadType type,
                        const ProtobufCMessage *payload, const char *signer_id,
                        const char *key_path);

/* Print a JSON value to stdout and free it. */
void cli_print_json(json_t *v);

/* Print any protobuf message as JSON (the same form the HTTP API uses). */
void cli_print_message(const ProtobufCMessage *m);

/*
 * Ask the oracle: send query on subject, open the signed answer of this type
 * (checking its signature, and its key against --oracle-key when given), and
 * keep its bytes in --save FILE when asked. *out: the payload (free with
 * protobuf_c_message_free_unpacked); *raw (optional): the envelope bytes, len.
 */
int cli_ask(pk_bus *bus, const char *subject, const ProtobufCMessage *query,
            Pactum__V1__PayloadType type, ProtobufCMessage **out, uint8_t **raw, size_t *raw_len);

/*
 * The same, then every proof in the answer is checked (pk_verify_answer) and,
 * with --json, the answer is printed as the HTTP API returns it.
 */
int cli_ask_checked(const char *subject, const ProtobufCMessage *q, Pactum__V1__PayloadType t,
                    ProtobufCMessage **out);

/* {"type", "answer", "signed", "key"}: a signed answer as JSON (what HTTP returns). */
json_t *cli_answer_json(const uint8_t *raw, size_t len);

/* A refused answer's status and message, printed; CLI_FAIL. */
int cli_refused(Pactum__V1__QueryStatus s, const char *message);

/* Ask the oracle for agent's trust report once; *out is the decoded report (caller frees). */
int cli_trust_ask(pk_bus *bus, const char *agent, uint32_t history, uint8_t **raw, size_t *raw_len,
                  Pactum__V1__TrustReport **out);

/* A pact's versions (with document: the newest, or version N, with its document). */
int cli_pact_query(const char *id, uint32_t version, bool document, Pactum__V1__PactReport **out,
                   uint8_t **raw, size_t *raw_len);

/* Why a pact version with its document is not what it claims, or NULL if it is. */
const char *cli_pact_check(const Pactum__V1__PactVersion *v);

/* The trust report for people (report.c). */
void cli_report_print(const Pactum__V1__TrustReport *r);

/* --- commands ------------------------------------------------------------------------ */

int cmd_keygen(const cli_call *c);
int cmd_agent_register(const cli_call *c);
int cmd_pact_lint(const cli_call *c);
int cmd_pact_register(const cli_call *c);
int cmd_pact_history(const cli_call *c);
int cmd_pact_show(const cli_call *c);
int cmd_event_publish(const cli_call *c);
int cmd_trust(const cli_call *c);
int cmd_approve(const cli_call *c);
int cmd_health(const cli_call *c);
int cmd_metrics(const cli_call *c);
int cmd_principal_register(const cli_call *c);
int cmd_override(const cli_call *c);
int cmd_ack(const cli_call *c);
int cmd_dispute_open(const cli_call *c);
int cmd_dispute_rule(const cli_call *c);
int cmd_replay(const cli_call *c);
int cmd_authorize(const cli_call *c);
int cmd_evidence(const cli_call *c);
int cmd_attest(const cli_call *c);
int cmd_figures(const cli_call *c);
int cmd_log_head(const cli_call *c);
int cmd_log_prove(const cli_call *c);
int cmd_log_consistency(const cli_call *c);
int cmd_verify(const cli_call *c);
int cmd_log_monitor(const cli_call *c);
int cmd_log_key(const cli_call *c);

/* The log's public key from --key, or else --oracle-key (PACTUM_ORACLE_KEY); a printed error. */
int cli_log_key_arg(const cli_call *c, uint8_t pk[32]);

/* Does buf hold a signed note that names a Pactum log (a checkpoint)? */
bool cli_is_note(const uint8_t *buf, size_t len);

/*
 * Check a checkpoint offline: signed by the log of pk, and cosigned by at least needed of the
 * witnesses (their verifier keys); what was checked is printed. CLI_OK or CLI_FAIL.
 */
int cli_verify_checkpoint(const uint8_t *buf, size_t len, const uint8_t pk[32],
                          const char *const *witnesses, size_t n_witnesses, size_t needed);
int cmd_setup_init(const cli_call *c);
int cmd_client_register(const cli_call *c);
int cmd_webhook_add(const cli_call *c);
int cmd_webhook_cancel(const cli_call *c);
int cmd_webhook_list(const cli_call *c);
int cmd_webhook_show(const cli_call *c);
int cmd_engagement_open(const cli_call *c);
int cmd_engagement_accept(const cli_call *c);
int cmd_engagement_complete(const cli_call *c);
int cmd_engagement_show(const cli_call *c);
int cmd_engagement_list(const cli_call *c);
int cmd_setup_streams(const cli_call *c);

#endif
