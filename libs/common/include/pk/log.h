/*
 * pk/log.h - one line per event on stderr, readable by a person:
 *
 *   2026-11-26T06:40:30.123Z ingest INFO accepted 256 events (batch 12)
 *
 * The level comes from PACTUM_LOG_LEVEL (debug, info, warn, error) unless a
 * service sets it explicitly. Thread-safe: each line is one write(2).
 */
#ifndef PK_LOG_H
#define PK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pk_log_level {
    PK_LOG_DEBUG = 0,
    PK_LOG_INFO,
    PK_LOG_WARN,
    PK_LOG_ERROR,
} pk_log_level;

/* Set the program name printed on every line (borrowed; must outlive logging)
 * and the minimum level. */
void pk_log_init(const char *program, pk_log_level level);

/* Parse "debug", "info", "warn" or "error"; returns -1 if unknown. */
int pk_log_level_parse(const char *name);

void pk_log(pk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PK_DEBUG(...) pk_log(PK_LOG_DEBUG, __VA_ARGS__)
#define PK_INFO(...)  pk_log(PK_LOG_INFO, __VA_ARGS__)
#define PK_WARN(...)  pk_log(PK_LOG_WARN, __VA_ARGS__)
#define PK_ERROR(...) pk_log(PK_LOG_ERROR, __VA_ARGS__)

/*
 * An incident: something a person must look at (the bus refused us, one of
 * our consumers was deleted or changed by someone else). Logged as an error,
 * and kept: the service reports itself unhealthy, with these words, for a
 * while after the last one (pk_incident_recent).
 */
void pk_incident(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last incident's words if it was within the last within_ms; false if none was. */
bool pk_incident_recent(int64_t within_ms, char *buf, size_t len);

#endif
