/* Configuration tables and durations. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pk/clock.h"
#include "pk/config.h"

typedef struct cfg {
    const char *url;
    long long batch;
    bool asap;
    int64_t wait_ms;
} cfg;

static const pk_cfg_opt opts[] = {
    {"url", "PK_TEST_URL", PK_CFG_STR, "nats://127.0.0.1:4222", 0, 0, offsetof(cfg, url), ""},
    {"batch", "PK_TEST_BATCH", PK_CFG_INT, "256", 1, 4096, offsetof(cfg, batch), ""},
    {"asap", "PK_TEST_ASAP", PK_CFG_BOOL, "true", 0, 0, offsetof(cfg, asap), ""},
    {"wait", "PK_TEST_WAIT", PK_CFG_DURATION, "5s", 100, 60000, offsetof(cfg, wait_ms), ""},
};

static pk_status load(cfg *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    return pk_config_load(opts, 4, c, argc, argv, "test", "");
}

Test(config, defaults_apply_when_nothing_is_given)
{
    cfg c;
    char *argv[] = {"test"};

    unsetenv("PK_TEST_BATCH");
    cr_assert_eq(load(&c, 1, argv), PK_OK);
    cr_assert_str_eq(c.url, "nats://127.0.0.1:4222");
    cr_assert_eq(c.batch, 256);
    cr_assert(c.asap);
    cr_assert_eq(c.wait_ms, 5000);
}

Test(config, environment_overrides_default_and_flag_overrides_environment)
{
    cfg c;
    char *argv[] = {"test", "--batch", "8", "--wait=250ms"};

    setenv("PK_TEST_BATCH", "64", 1);
    setenv("PK_TEST_ASAP", "no", 1);
    cr_assert_eq(load(&c, 1, argv), PK_OK);
    cr_assert_eq(c.batch, 64);
    cr_assert_not(c.asap);
    cr_assert_eq(load(&c, 4, argv), PK_OK);
    cr_assert_eq(c.batch, 8);
    cr_assert_eq(c.wait_ms, 250);
    unsetenv("PK_TEST_BATCH");
    unsetenv("PK_TEST_ASAP");
}

Test(config, out_of_bounds_values_name_the_flag_and_the_bounds)
{
    cfg c;
    char *argv[] = {"test", "--batch", "0"};

    cr_assert_eq(load(&c, 3, argv), PK_EINVAL);
    cr_assert(strstr(pk_error_msg(), "--batch") != NULL, "%s", pk_error_msg());
    cr_assert(strstr(pk_error_msg(), "between 1 and 4096") != NULL, "%s", pk_error_msg());
}

Test(config, environment_errors_name_the_variable)
{
    cfg c;
    char *argv[] = {"test"};

    setenv("PK_TEST_WAIT", "1 hour", 1);
    cr_assert_eq(load(&c, 1, argv), PK_EINVAL);
    cr_assert(strstr(pk_error_msg(), "PK_TEST_WAIT") != NULL, "%s", pk_error_msg());
    unsetenv("PK_TEST_WAIT");
}

Test(config, unknown_flags_and_missing_values_are_refused)
{
    cfg c;
    char *unknown[] = {"test", "--bacth", "3"};
    char *missing[] = {"test", "--batch"};
    char *notbool[] = {"test", "--asap", "maybe"};

    cr_assert_eq(load(&c, 3, unknown), PK_EINVAL);
    cr_assert(strstr(pk_error_msg(), "--bacth") != NULL);
    cr_assert_eq(load(&c, 2, missing), PK_EINVAL);
    cr_assert_eq(load(&c, 3, notbool), PK_EINVAL);
}

Test(duration, parses_units_and_combinations)
{
    int64_t ms;

    cr_assert_eq(pk_duration_parse("500ms", &ms), PK_OK);
    cr_assert_eq(ms, 500);
    cr_assert_eq(pk_duration_parse("1h30m", &ms), PK_OK);
    cr_assert_eq(ms, 5400000);
    cr_assert_eq(pk_duration_parse("30d", &ms), PK_OK);
    cr_assert_eq(ms, 30LL * 86400000);
    cr_assert_eq(pk_duration_parse("2w", &ms), PK_OK);
    cr_assert_eq(ms, 14LL * 86400000);
}

Test(duration, refuses_bare_numbers_spaces_unknown_units_and_overflow)
{
    int64_t ms = 42;

    cr_assert_eq(pk_duration_parse("5", &ms), PK_EINVAL);
    cr_assert_eq(pk_duration_parse("1 hour", &ms), PK_EINVAL);
    cr_assert_eq(pk_duration_parse("3y", &ms), PK_EINVAL);
    cr_assert_eq(pk_duration_parse("", &ms), PK_EINVAL);
    cr_assert_eq(pk_duration_parse("-5s", &ms), PK_EINVAL);
    cr_assert_eq(pk_duration_parse("99999999999999999999d", &ms), PK_EINVAL);
    cr_assert_eq(ms, 42, "a refused duration must not change the output");
}

Test(duration, format_is_the_shortest_exact_form)
{
    char buf[32];

    pk_duration_format(3600000, buf, sizeof(buf));
    cr_assert_str_eq(buf, "1h");
    pk_duration_format(90000, buf, sizeof(buf));
    cr_assert_str_eq(buf, "90s");
    pk_duration_format(1500, buf, sizeof(buf));
    cr_assert_str_eq(buf, "1500ms");
}
