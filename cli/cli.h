/*
 * pactum - the command-line tool for every action a person takes.
 */
#ifndef PK_CLI_H
#define PK_CLI_H

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

/* Global options, set before the command's own. */
typedef struct cli_globals {
    const char *server;     /* NATS URL */
    const char *user;       /* NATS user */
    const char *password;   /* NATS password */
    bool json;              /* print JSON instead of text */
    int64_t timeout_ms;     /* request timeout */
    uint8_t oracle_key[32]; /* the key oracle answers must be signed with (--oracle-key) */
    bool have_oracle_key;
    const char *save; /* --save FILE: keep the signed answer */
} cli_globals;

extern cli_globals cli;

/* A tiny option scanner: --name value, --name=value, and positional words. */
typedef struct cli_args {
    int argc;    /* remaining arguments */
    char **argv; /* borrowed */
    int i;       /* next to read */
} cli_args;

/* If argv[i] is --name, consume it and its value into *val; returns 1 if
 * matched, 0 if not, -1 if the value is missing. */
int cli_opt(cli_args *a, const char *name, const char **val);
/* If argv[i] is the flag --name, consume it and return true. */
bool cli_flag(cli_args *a, const char *name);

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Connect to the bus (a few seconds of retries); NULL with a message on failure. */
pk_bus *cli_connect(void);

/* Request-reply; *reply is the caller's (natsMsg_Destroy). */
int cli_request(pk_bus *bus, const char *subject, const uint8_t *data, size_t len, natsMsg **reply);

/* Print a JSON value to stdout and free it. */
void cli_print_json(json_t *v);

/* "2026-11-26 08:23:15.438Z" */
void cli_clock(int64_t ms, char *buf, size_t len);

/*
 * Ask the oracle: send query on subject, open the signed answer of this type
 * (checking its signature, and its key against --oracle-key when given), and
 * keep its bytes in --save FILE when asked. *out: the payload (free with
 * protobuf_c_message_free_unpacked); *raw (optional): the envelope bytes, len.
 */
int cli_ask(pk_bus *bus, const char *subject, const ProtobufCMessage *query,
            Pactum__V1__PayloadType type, ProtobufCMessage **out, uint8_t **raw, size_t *raw_len);

/* {"type", "answer", "signed", "key"}: a signed answer as JSON (what HTTP returns). */
json_t *cli_answer_json(const uint8_t *raw, size_t len);

/* Commands. */
int cmd_keygen(cli_args *a);
int cmd_agent(cli_args *a);
int cmd_pact(cli_args *a);
int cmd_event(cli_args *a);
int cmd_trust(cli_args *a);
int cmd_health(cli_args *a);
int cmd_metrics(cli_args *a);
int cmd_principal(cli_args *a);
int cmd_override(cli_args *a);
int cmd_ack(cli_args *a);
int cmd_dispute(cli_args *a);
int cmd_replay(cli_args *a);
int cmd_authorize(cli_args *a);
int cmd_evidence(cli_args *a);
int cmd_attest(cli_args *a);
int cmd_figures(cli_args *a);
int cmd_log(cli_args *a);
int cmd_verify(cli_args *a);

/* Trust report rendering (report.c). */
/* Ask the oracle for agent's trust report once; *out is the decoded report (caller frees). */
int cli_trust_ask(pk_bus *bus, const char *agent, uint32_t history, Pactum__V1__TrustReport **out);

json_t *cli_report_json(const Pactum__V1__TrustReport *r);
void cli_report_print(const Pactum__V1__TrustReport *r);
json_t *cli_verdict_json(const Pactum__V1__Verdict *v);

#endif
