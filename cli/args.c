/*
 * args - a command's options from its cli_opt table, parsed with
 * getopt_long: values, repeated options, required ones, groups that exclude
 * each other, positional words, --help, and the global options anywhere.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

#define GLOBAL_BASE 500  /* getopt value of global option i: GLOBAL_BASE + i */
#define OWN_BASE    1000 /* ... of the command's option i: OWN_BASE + i */
#define HELP        'h'

static size_t count_opts(const cli_opt *o)
{
    size_t n = 0;

    while (o && o[n].name)
        n++;
    return n;
}

static int find(const cli_cmd *cmd, const char *name)
{
    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        if (strcmp(cmd->opts[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

const char *cli_get(const cli_call *c, const char *name)
{
    int i = find(c->cmd, name);

    return i < 0 ? NULL : c->val[i];
}

bool cli_has(const cli_call *c, const char *name)
{
    return cli_get(c, name) != NULL;
}

size_t cli_get_all(const cli_call *c, const char *name, const char *const **out)
{
    int i = find(c->cmd, name);

    if (i < 0)
        return 0;
    *out = c->many[i];
    return c->n_many[i];
}

int cli_get_u64(const cli_call *c, const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *v = cli_get(c, name);
    char *end = NULL;
    unsigned long long n;

    if (!v)
        return CLI_OK;
    n = strtoull(v, &end, 10);
    if (!*v || *v == '-' || *end || n < min || n > max)
        return cli_usage_error("--%s needs a whole number from %llu to %llu, got '%s'", name,
                               (unsigned long long)min, (unsigned long long)max, v);
    *out = n;
    return CLI_OK;
}

int cli_get_double(const cli_call *c, const char *name, double min, double *out)
{
    const char *v = cli_get(c, name);
    char *end = NULL;
    double d;

    if (!v)
        return CLI_OK;
    d = strtod(v, &end);
    if (end == v || *end || !(d >= min))
        return cli_usage_error("--%s needs a number of at least %g, got '%s'", name, min, v);
    *out = d;
    return CLI_OK;
}

int cli_get_duration(const cli_call *c, const char *name, int64_t min_ms, int64_t max_ms,
                     int64_t *out)
{
    const char *v = cli_get(c, name);
    int64_t ms;

    if (!v)
        return CLI_OK;
    if (pk_duration_parse(v, &ms) != PK_OK || ms < min_ms || ms > max_ms)
        return cli_usage_error("--%s needs a duration like 10s or 2h, got '%s'", name, v);
    *out = ms;
    return CLI_OK;
}

/* "--name VALUE" or "--name", as the usage shows an option. */
static void opt_text(const cli_opt *o, char *buf, size_t len)
{
    snprintf(buf, len, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

void cli_print_usage(const cli_cmd *cmd, FILE *f)
{
    char text[64];

    fprintf(f, "usage: pactum %s", cmd->path);
    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        opt_text(&cmd->opts[i], text, sizeof(text));
        fprintf(f, (cmd->opts[i].flags & CLI_REQ) ? " %s" : " [%s]", text);
    }
    fprintf(f, "%s%s\n\n%s\n", cmd->args ? " " : "", cmd->args ? cmd->args : "", cmd->summary);
    for (size_t i = 0; cmd->exactly_one && cmd->exactly_one[i]; i++)
        fprintf(f, "(exactly one of: %s)\n", cmd->exactly_one[i]);
    for (size_t i = 0; cmd->at_most_one && cmd->at_most_one[i]; i++)
        fprintf(f, "(at most one of: %s)\n", cmd->at_most_one[i]);
    if (cmd->opts && cmd->opts[0].name)
        fputs("\noptions:\n", f);
    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        opt_text(&cmd->opts[i], text, sizeof(text));
        if (cmd->opts[i].short_name)
            fprintf(f, "  -%c, %-28s %s%s\n", cmd->opts[i].short_name, text, cmd->opts[i].help,
                    (cmd->opts[i].flags & CLI_MANY) ? " (may be repeated)" : "");
        else
            fprintf(f, "  %-32s %s%s\n", text, cmd->opts[i].help,
                    (cmd->opts[i].flags & CLI_MANY) ? " (may be repeated)" : "");
    }
    fputs("\nglobal options (anywhere): ", f);
    for (size_t i = 0; cli_global_opts[i].name; i++) {
        opt_text(&cli_global_opts[i], text, sizeof(text));
        fprintf(f, "%s%s", i ? ", " : "", text);
    }
    fputs("; see pactum --help\n", f);
}

/* How many options of a group "a|b|c" were given; the first two named in *a, *b. */
static int given_in(const cli_call *c, const char *group, char *a, char *b, size_t len)
{
    char buf[160], *save = NULL;
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", group);
    for (char *name = strtok_r(buf, "|", &save); name; name = strtok_r(NULL, "|", &save)) {
        if (!cli_has(c, name))
            continue;
        snprintf(n == 0 ? a : b, len, "%s", name);
        n++;
    }
    return n;
}

/* "--a, --b or --c" for a group "a|b|c". */
static void group_text(const char *group, char *out, size_t len)
{
    size_t o = 0;
    const char *p = group;

    while (*p && o + 8 < len) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        o += (size_t)snprintf(out + o, len - o, "%s--%.*s",
                              o == 0 ? "" : (strchr(p, '|') ? ", " : " or "), (int)n, p);
        p += n + (bar ? 1 : 0);
    }
}

/* Required options, groups and positional words, checked after parsing. */
static int check_call(const cli_cmd *cmd, const cli_call *c)
{
    char a[40], b[40], text[200];

    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        if ((cmd->opts[i].flags & CLI_REQ) && !c->val[i])
            return cli_usage_error("%s needs --%s", cmd->path, cmd->opts[i].name);
    }
    for (size_t i = 0; cmd->exactly_one && cmd->exactly_one[i]; i++) {
        int n = given_in(c, cmd->exactly_one[i], a, b, sizeof(a));
        group_text(cmd->exactly_one[i], text, sizeof(text));
        if (n == 0)
            return cli_usage_error("%s needs one of %s", cmd->path, text);
        if (n > 1)
            return cli_usage_error("--%s and --%s contradict each other: give one of %s", a, b,
                                   text);
    }
    for (size_t i = 0; cmd->at_most_one && cmd->at_most_one[i]; i++) {
        if (given_in(c, cmd->at_most_one[i], a, b, sizeof(a)) > 1)
            return cli_usage_error("--%s and --%s contradict each other: give one", a, b);
    }
    if (c->n_args < cmd->min_args)
        return cli_usage_error("%s needs %s", cmd->path, cmd->args ? cmd->args : "more words");
    if (cmd->max_args >= 0 && c->n_args > cmd->max_args)
        return cli_usage_error("%s: unexpected '%s'", cmd->path, c->args[cmd->max_args]);
    return CLI_OK;
}

/* Record the value of the command's option i. */
static int take(const cli_cmd *cmd, cli_call *c, int i, const char *value)
{
    const cli_opt *o = &cmd->opts[i];

    c->val[i] = value ? value : "";
    if (!(o->flags & CLI_MANY))
        return CLI_OK;
    if (c->n_many[i] == CLI_MANY_MAX)
        return cli_usage_error("--%s is given more than %d times", o->name, CLI_MANY_MAX);
    c->many[i][c->n_many[i]++] = c->val[i];
    return CLI_OK;
}

/* The getopt_long tables for cmd: its options, the global ones, --help. */
static void build(const cli_cmd *cmd, struct option *longs, char *shorts)
{
    size_t n = 0, s = 0, own = count_opts(cmd->opts);

    shorts[s++] = ':'; /* a missing value returns ':' */
    shorts[s++] = HELP;
    for (size_t i = 0; i < own; i++) {
        const cli_opt *o = &cmd->opts[i];
        longs[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
                                     OWN_BASE + (int)i};
        if (o->short_name) {
            shorts[s++] = o->short_name;
            if (o->arg)
                shorts[s++] = ':';
        }
    }
    for (size_t i = 0; cli_global_opts[i].name; i++)
        longs[n++] = (struct option){cli_global_opts[i].name,
                                     cli_global_opts[i].arg ? required_argument : no_argument, NULL,
                                     GLOBAL_BASE + (int)i};
    longs[n++] = (struct option){"help", no_argument, NULL, HELP};
    longs[n] = (struct option){NULL, 0, NULL, 0};
    shorts[s] = '\0';
}

/* The command's option whose short name is ch, or -1. */
static int find_short(const cli_cmd *cmd, int ch)
{
    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        if (cmd->opts[i].short_name == ch)
            return (int)i;
    }
    return -1;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_call *c)
{
    struct option longs[CLI_OPTS_MAX + 16];
    char shorts[2 * CLI_OPTS_MAX + 4];
    int ch, rc;

    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    build(cmd, longs, shorts);
    opterr = 0;
    optind = 0; /* GNU: start afresh */
    while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        if (ch == HELP) {
            cli_print_usage(cmd, stdout);
            return -1;
        }
        if (ch == ':')
            return cli_usage_error("%s: %s needs a value", cmd->path, argv[optind - 1]);
        if (ch == '?')
            return cli_usage_error("%s: unknown option '%s'", cmd->path,
                                   optopt && optopt < 256 ? (char[]){'-', (char)optopt, 0}
                                                          : argv[optind - 1]);
        if (ch >= OWN_BASE)
            rc = take(cmd, c, ch - OWN_BASE, optarg);
        else if (ch >= GLOBAL_BASE)
            rc = cli_global(cli_global_opts[ch - GLOBAL_BASE].name, optarg);
        else
            rc = take(cmd, c, find_short(cmd, ch), optarg);
        if (rc != CLI_OK)
            return rc;
    }
    c->args = argv + optind;
    c->n_args = argc - optind;
    return check_call(cmd, c);
}

/* "pactum: <message><tail>" on stderr. */
static void say(const char *tail, const char *fmt, va_list ap)
{
    fputs("pactum: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say(" (see --help)\n", fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

int cli_error(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say("\n", fmt, ap);
    va_end(ap);
    return code;
}
