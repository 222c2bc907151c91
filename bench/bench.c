/*
 * pactum-bench: run the benchmark suite and print a table of figures with
 * their same-run baselines; also write the figures as JSON.
 *
 *   pactum-bench [--only NAME[,NAME...]] [--rounds N] [--events N] [--quick] [--out FILE]
 */
#include "bench.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pk/clock.h"
#include "pk/crypto.h"
#include "pk/log.h"

static bench_figure figures[64];
static int n_figures;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
    double s[BENCH_ROUNDS_MAX];

    if (n <= 0)
        return 0;
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double bench_min(const double *v, int n)
{
    double m = n ? v[0] : 0;

    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

double bench_max(const double *v, int n)
{
    double m = n ? v[0] : 0;

    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

bench_figure *bench_add(const char *name, const char *unit, const char *baseline,
                        const char *target, bool higher_is_better)
{
    bench_figure *f;

    if (n_figures == (int)(sizeof(figures) / sizeof(figures[0])))
        return NULL;
    f = &figures[n_figures++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    snprintf(f->unit, sizeof(f->unit), "%s", unit);
    snprintf(f->baseline, sizeof(f->baseline), "%s", baseline ? baseline : "");
    snprintf(f->target, sizeof(f->target), "%s", target ? target : "");
    f->higher_is_better = higher_is_better;
    return f;
}

bench_figure *bench_find(const char *name)
{
    for (int i = 0; i < n_figures; i++) {
        if (strcmp(figures[i].name, name) == 0)
            return &figures[i];
    }
    return NULL;
}

/* Whether name is one of the comma-separated names in list. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

/* Three significant figures for small values, whole numbers for large ones. */
static void fmt_value(char *buf, size_t cap, double v)
{
    if (v < 10)
        snprintf(buf, cap, "%.3f", v);
    else if (v < 1000)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.0f", v);
}

void bench_report(const char *json_path, const bench_opts *o)
{
    json_t *doc = json_object(), *arr = json_array();
    struct utsname u;
    char host[256] = "";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    uname(&u);
    gethostname(host, sizeof(host) - 1);
    printf("\n%-52s %10s %-10s %-38s %10s %7s\n", "figure", "median", "unit", "baseline (same run)",
           "baseline", "ratio");
    for (int i = 0; i < n_figures; i++) {
        bench_figure *f = &figures[i];
        double m = bench_median(f->v, f->n), bm = bench_median(f->b, f->nb), ratio = 0;
        double rr[BENCH_ROUNDS_MAX];
        int nr = 0;
        json_t *vals = json_array(), *bvals = json_array();
        char mv[32], bv[32], rv[32], lo[32], hi[32];
        fmt_value(mv, sizeof(mv), m);
        fmt_value(lo, sizeof(lo), bench_min(f->v, f->n));
        fmt_value(hi, sizeof(hi), bench_max(f->v, f->n));
        /* each round's value over the baseline of the same round, when every round has one */
        for (int k = 0; f->nb == f->n && k < f->n; k++)
            if (f->b[k] > 0)
                rr[nr++] = f->v[k] / f->b[k];
        if (nr == f->n && nr > 0)
            ratio = bench_median(rr, nr);
        else if (f->nb && bm)
            ratio = m / bm;
        if (f->nb && bm) {
            fmt_value(bv, sizeof(bv), bm);
            snprintf(rv, sizeof(rv), "%.3f", ratio);
        } else {
            snprintf(bv, sizeof(bv), "-");
            snprintf(rv, sizeof(rv), "-");
        }
        printf("%-52s %10s %-10s %-38s %10s %7s\n", f->name, mv, f->unit, f->nb ? f->baseline : "-",
               bv, rv);
        printf("%-52s %10s spread %s..%s over %d rounds%s%s\n", "", "", lo, hi, f->n,
               f->target[0] ? "; target: " : "", f->target);
        for (int k = 0; k < f->n; k++)
            json_array_append_new(vals, json_real(f->v[k]));
        for (int k = 0; k < f->nb; k++)
            json_array_append_new(bvals, json_real(f->b[k]));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:f, s:f, s:f, s:o, s:s, s:f, s:o, s:f, s:s}", "figure",
                           f->name, "unit", f->unit, "median", m, "min", bench_min(f->v, f->n),
                           "max", bench_max(f->v, f->n), "rounds", vals, "baseline", f->baseline,
                           "baseline_median", bm, "baseline_rounds", bvals, "ratio", ratio,
                           "target", f->target));
    }
    json_object_set_new(doc, "figures", arr);
    json_object_set_new(doc, "machine",
                        json_pack("{s:s, s:s, s:s, s:i}", "host", host, "kernel", u.release, "arch",
                                  u.machine, "cores", (int)cores));
    json_object_set_new(doc, "rounds", json_integer(o->rounds));
    json_object_set_new(doc, "events", json_integer(o->events));
    json_object_set_new(doc, "quick", json_boolean(o->quick));
    json_object_set_new(doc, "when_ms", json_integer(pk_now_ms()));
    if (json_path && json_dump_file(doc, json_path, JSON_INDENT(2)) == 0)
        printf("\nfigures written to %s\n", json_path);
    json_decref(doc);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;               /* --only NAME */
        int (*fn)(const bench_opts *o); /* the benchmark */
    } all[] = {{"pipeline", bench_pipeline},
               {"latency", bench_latency},
               {"flood", bench_flood},
               {"evaluator", bench_evaluator},
               {"scale", bench_scale}};
    bench_opts o = {.rounds = 3, .events = 20000};
    const char *only = NULL, *out = "bench-results.json";
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            o.rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            o.events = atol(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            o.quick = true;
        else {
            fprintf(stderr, "usage: pactum-bench [--only NAME[,NAME...]] [--rounds N] [--events N] "
                            "[--quick] [--out FILE]\n");
            return 2;
        }
    }
    if (o.quick) {
        o.rounds = 1;
        o.events = o.events > 4000 ? 4000 : o.events;
    }
    if (o.rounds < 1 || o.rounds > BENCH_ROUNDS_MAX || o.events < 100) {
        fprintf(stderr, "pactum-bench: --rounds 1..%d and --events >= 100\n", BENCH_ROUNDS_MAX);
        return 2;
    }
    pk_log_init("bench", PK_LOG_WARN);
    if (pk_crypto_init() != PK_OK)
        return 1;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (only && !listed(only, all[i].name))
            continue;
        printf("== %s\n", all[i].name);
        fflush(stdout);
        if (all[i].fn(&o) != 0) {
            fprintf(stderr, "pactum-bench: %s could not run\n", all[i].name);
            failed++;
        }
    }
    bench_report(out, &o);
    return failed ? 1 : 0;
}
