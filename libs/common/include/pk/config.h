/*
 * pk/config.h - declarative configuration: one table per program of
 * {flag, environment variable, type, default, bounds}. A value comes from the
 * flag if given, else the environment, else the default; every value is
 * checked against its bounds at start-up with a sentence naming the flag.
 */
#ifndef PK_CONFIG_H
#define PK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pk/status.h"

typedef enum pk_cfg_type {
    PK_CFG_STR,      /* const char *, borrowed from argv, environ or the table */
    PK_CFG_INT,      /* long long within [min, max] */
    PK_CFG_BOOL,     /* bool: true/false, 1/0, yes/no, on/off */
    PK_CFG_DURATION, /* int64_t milliseconds within [min, max]; "250ms", "5s", "1h" */
} pk_cfg_type;

typedef struct pk_cfg_opt {
    const char *flag;   /* long flag without dashes, e.g. "nats-url" */
    const char *env;    /* environment variable, e.g. "PACTUM_NATS_URL"; may be NULL */
    pk_cfg_type type;   /* how to parse the value */
    const char *def;    /* default value as text */
    long long min, max; /* bounds for INT and DURATION (ms); ignored otherwise */
    size_t offset;      /* offsetof the field in the program's config struct */
    const char *help;   /* one line for --help */
} pk_cfg_opt;

/*
 * Fill cfg from the table, argv (--flag value or --flag=value) and the
 * environment. Returns PK_OK, PK_EINVAL with a message naming the flag, or
 * PK_ENOTFOUND if --help was given (usage already printed to stdout).
 * Strings stored in cfg are borrowed from argv, environ or the table and stay
 * valid for the life of the process. An argument that is not a known flag is
 * an error.
 */
pk_status pk_config_load(const pk_cfg_opt *opts, size_t n, void *cfg, int argc, char **argv,
                         const char *program, const char *summary) PK_MUST_CHECK;

/* Print "--flag (ENV, default X): help" lines. */
void pk_config_usage(FILE *out, const char *program, const char *summary, const pk_cfg_opt *opts,
                     size_t n);

#endif
