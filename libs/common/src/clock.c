#include "pk/clock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t pk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pk_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pk_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void pk_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    if (ms > 0)
        nanosleep(&ts, NULL);
}

static const struct {
    const char *unit; /* suffix */
    int64_t ms;       /* milliseconds per unit */
} units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000},
};

pk_status pk_duration_parse(const char *text, int64_t *out_ms)
{
    const char *p = text;
    int64_t total = 0;

    if (!text || !*text)
        return PK_ERR(PK_EINVAL, "expected a duration like 1h or 500ms, got an empty value");
    while (*p) {
        int64_t num = 0;
        const char *start = p;
        size_t ulen = 0, best = (size_t)-1;

        while (isdigit((unsigned char)*p)) {
            if (num > (INT64_MAX - 9) / 10)
                return PK_ERR(PK_EINVAL, "duration '%s' is too large", text);
            num = num * 10 + (*p++ - '0');
        }
        if (p == start)
            return PK_ERR(PK_EINVAL, "expected a duration like 1h or 500ms, got '%s'", text);
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0)
                best = i;
        }
        if (best == (size_t)-1)
            return PK_ERR(PK_EINVAL,
                          "expected a duration like 1h or 500ms (units ms, s, m, h, d, w), "
                          "got '%s'",
                          text);
        if (num > (INT64_MAX - total) / units[best].ms)
            return PK_ERR(PK_EINVAL, "duration '%s' is too large", text);
        total += num * units[best].ms;
        p += ulen;
    }
    *out_ms = total;
    return PK_OK;
}

void pk_duration_format(int64_t ms, char *buf, size_t len)
{
    for (int i = (int)(sizeof(units) / sizeof(units[0])) - 1; i >= 0; i--) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%lldms", (long long)ms);
}

void pk_clock_format(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
