/*
 * Benchmarks: each figure is measured in several rounds against a baseline
 * measured in the same run on the same machine, and reported as the median,
 * the spread (min..max) and the ratio to the baseline. Nothing here asserts
 * a timing: benchmarks print figures, tests check behaviour.
 */
#ifndef PK_BENCH_H
#define PK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_ROUNDS_MAX 16

typedef struct bench_opts {
    int rounds;  /* rounds per figure */
    long events; /* events per round where it applies */
    bool quick;  /* smaller runs: a smoke test that the suite still works */
} bench_opts;

/* One figure: median of rounds, and its baseline from the same run. */
typedef struct bench_figure {
    char name[96];              /* e.g. "evaluator, 10 clauses, 30d windows" */
    char unit[24];              /* e.g. "events/s" */
    double v[BENCH_ROUNDS_MAX]; /* the rounds */
    int n;
    char baseline[96];          /* what it is compared with */
    double b[BENCH_ROUNDS_MAX]; /* baseline rounds */
    int nb;
    char target[64];       /* the target, as text ("30d within 10% of 1m") */
    bool higher_is_better; /* throughput vs latency */
} bench_figure;

double bench_median(const double *v, int n);
double bench_min(const double *v, int n);
double bench_max(const double *v, int n);

/* Add a figure to the run's table; returns it for filling in. */
bench_figure *bench_add(const char *name, const char *unit, const char *baseline,
                        const char *target, bool higher_is_better);
bench_figure *bench_find(const char *name);

/* Print the table and write JSON (path may be NULL). */
void bench_report(const char *json_path, const bench_opts *o);

/* Benchmarks. Each returns 0 on success, non-zero if it could not run. */
int bench_evaluator(const bench_opts *o);
int bench_pipeline(const bench_opts *o);
int bench_latency(const bench_opts *o);
int bench_flood(const bench_opts *o);
int bench_scale(const bench_opts *o);

#endif
