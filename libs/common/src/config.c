#include "pk/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pk/clock.h"

static pk_status parse_value(const pk_cfg_opt *o, const char *text, const char *origin, void *cfg)
{
    char *field = (char *)cfg + o->offset;

    switch (o->type) {
    case PK_CFG_STR:
        *(const char **)field = text;
        return PK_OK;
    case PK_CFG_BOOL: {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(text, yes[i]) == 0) {
                *(bool *)field = true;
                return PK_OK;
            }
            if (strcasecmp(text, no[i]) == 0) {
                *(bool *)field = false;
                return PK_OK;
            }
        }
        return PK_ERR(PK_EINVAL, "--%s (from %s): expected true or false, got '%s'", o->flag,
                      origin, text);
    }
    case PK_CFG_INT: {
        char *end = NULL;
        long long v;
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno || end == text || *end)
            return PK_ERR(PK_EINVAL, "--%s (from %s): expected a whole number, got '%s'", o->flag,
                          origin, text);
        if (v < o->min || v > o->max)
            return PK_ERR(PK_EINVAL, "--%s (from %s): must be between %lld and %lld, got %lld",
                          o->flag, origin, o->min, o->max, v);
        *(long long *)field = v;
        return PK_OK;
    }
    case PK_CFG_DURATION: {
        int64_t ms;
        char lo[32], hi[32];
        if (pk_duration_parse(text, &ms) != PK_OK)
            return PK_ERR(PK_EINVAL,
                          "--%s (from %s): expected a duration like 5s or 250ms, "
                          "got '%s'",
                          o->flag, origin, text);
        if (ms < o->min || ms > o->max) {
            pk_duration_format(o->min, lo, sizeof(lo));
            pk_duration_format(o->max, hi, sizeof(hi));
            return PK_ERR(PK_EINVAL, "--%s (from %s): must be between %s and %s, got '%s'", o->flag,
                          origin, lo, hi, text);
        }
        *(int64_t *)field = ms;
        return PK_OK;
    }
    }
    return PK_ERR(PK_EINVAL, "--%s: unknown option type", o->flag);
}

void pk_config_usage(FILE *out, const char *program, const char *summary, const pk_cfg_opt *opts,
                     size_t n)
{
    fprintf(out, "usage: %s [options]\n%s\n\noptions (flag, environment variable, default):\n",
            program, summary ? summary : "");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "  --%-18s %-26s %s\n      %s\n", opts[i].flag, opts[i].env ? opts[i].env : "",
                opts[i].def && *opts[i].def ? opts[i].def : "(none)", opts[i].help);
    }
}

pk_status pk_config_load(const pk_cfg_opt *opts, size_t n, void *cfg, int argc, char **argv,
                         const char *program, const char *summary)
{
    pk_status st;

    for (size_t i = 0; i < n; i++) {
        const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
        if (env && *env)
            st = parse_value(&opts[i], env, opts[i].env, cfg);
        else
            st = parse_value(&opts[i], opts[i].def ? opts[i].def : "", "default", cfg);
        if (st != PK_OK)
            return st;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = NULL, *eq;
        size_t nlen;
        const pk_cfg_opt *o = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            pk_config_usage(stdout, program, summary, opts, n);
            return PK_ENOTFOUND;
        }
        if (strncmp(arg, "--", 2) != 0)
            return PK_ERR(PK_EINVAL, "unexpected argument '%s' (see --help)", arg);
        arg += 2;
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (size_t i = 0; i < n; i++) {
            if (strlen(opts[i].flag) == nlen && strncmp(opts[i].flag, arg, nlen) == 0)
                o = &opts[i];
        }
        if (!o)
            return PK_ERR(PK_EINVAL, "unknown option '--%.*s' (see --help)", (int)nlen, arg);
        if (eq)
            val = eq + 1;
        else if (a + 1 < argc)
            val = argv[++a];
        else
            return PK_ERR(PK_EINVAL, "--%s needs a value", o->flag);
        st = parse_value(o, val, "command line", cfg);
        if (st != PK_OK)
            return st;
    }
    return PK_OK;
}
