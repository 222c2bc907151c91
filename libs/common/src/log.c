#include "pk/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "pk/clock.h"

static const char *log_program = "pactum"; /* printed on every line */
static pk_log_level log_min = PK_LOG_INFO; /* lines below this are dropped */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int pk_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (int i = 0; i < 4; i++) {
        if (name && strcasecmp(name, names[i]) == 0)
            return i;
    }
    return -1;
}

void pk_log_init(const char *program, pk_log_level level)
{
    log_program = program ? program : "pactum";
    log_min = level;
}

void pk_log(pk_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, log_program, level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

static pthread_mutex_t incident_lock = PTHREAD_MUTEX_INITIALIZER;
static char incident_text[256]; /* the last incident */
static int64_t incident_at;     /* when (monotonic ms); 0: none */

void pk_incident(const char *fmt, ...)
{
    char text[sizeof(incident_text)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pk_log(PK_LOG_ERROR, "%s", text);
    pthread_mutex_lock(&incident_lock);
    memcpy(incident_text, text, sizeof(text));
    incident_at = pk_mono_ms();
    pthread_mutex_unlock(&incident_lock);
}

bool pk_incident_recent(int64_t within_ms, char *buf, size_t len)
{
    bool recent;

    pthread_mutex_lock(&incident_lock);
    recent = incident_at > 0 && pk_mono_ms() - incident_at <= within_ms;
    if (recent && buf && len)
        snprintf(buf, len, "%s", incident_text);
    pthread_mutex_unlock(&incident_lock);
    return recent;
}
