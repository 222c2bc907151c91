#define _GNU_SOURCE /* strptime, timegm */
#include "pk/pact.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pk/clock.h"

#define PATH_MAX_LEN   256
#define PRED_MAX_DEPTH 16

/* --- lint ------------------------------------------------------------------- */

void pk_lint_add(pk_lint *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **m = realloc(l->msgs, cap * sizeof(*m));
        if (!m)
            return;
        l->msgs = m;
        l->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    l->msgs[l->n] = strdup(buf);
    if (l->msgs[l->n])
        l->n++;
}

void pk_lint_free(pk_lint *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->msgs[i]);
    free(l->msgs);
    memset(l, 0, sizeof(*l));
}

/* --- names ------------------------------------------------------------------ */

typedef struct name_val {
    const char *name; /* text in the document */
    int val;          /* enum value */
} name_val;

static const name_val kind_names[] = {{"objective", PK_CLAUSE_OBJECTIVE},
                                      {"forbidden", PK_CLAUSE_FORBIDDEN},
                                      {"freshness", PK_CLAUSE_FRESHNESS},
                                      {"scope", PK_CLAUSE_SCOPE}};
static const name_val agg_names[] = {
    {"count", PK_AGG_COUNT}, {"sum", PK_AGG_SUM},   {"mean", PK_AGG_MEAN},  {"min", PK_AGG_MIN},
    {"max", PK_AGG_MAX},     {"rate", PK_AGG_RATE}, {"ratio", PK_AGG_RATIO}};
static const name_val op_names[] = {{"<", PK_OP_LT},  {"<=", PK_OP_LE}, {">", PK_OP_GT},
                                    {">=", PK_OP_GE}, {"==", PK_OP_EQ}, {"!=", PK_OP_NE}};
static const name_val conseq_names[] = {{"notify", PK_CONSEQ_NOTIFY},
                                        {"demote", PK_CONSEQ_DEMOTE},
                                        {"restrict", PK_CONSEQ_RESTRICT},
                                        {"contain", PK_CONSEQ_CONTAIN},
                                        {"suspend", PK_CONSEQ_SUSPEND}};
static const name_val sev_names[] = {{"info", PACTUM__V1__SEVERITY__SEVERITY_INFO},
                                     {"low", PACTUM__V1__SEVERITY__SEVERITY_LOW},
                                     {"medium", PACTUM__V1__SEVERITY__SEVERITY_MEDIUM},
                                     {"high", PACTUM__V1__SEVERITY__SEVERITY_HIGH},
                                     {"critical", PACTUM__V1__SEVERITY__SEVERITY_CRITICAL}};
static const name_val source_names[] = {{"self", PACTUM__V1__SOURCE__SOURCE_SELF},
                                        {"peer", PACTUM__V1__SOURCE__SOURCE_PEER},
                                        {"evaluator", PACTUM__V1__SOURCE__SOURCE_EVALUATOR},
                                        {"human", PACTUM__V1__SOURCE__SOURCE_HUMAN},
                                        {"telemetry", PACTUM__V1__SOURCE__SOURCE_TELEMETRY}};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const name_val *t, size_t n, int v)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].val == v)
            return t[i].name;
    }
    return "?";
}

const char *pk_clause_kind_name(pk_clause_kind k)
{
    return name_of(kind_names, N_OF(kind_names), k);
}
const char *pk_aggregate_name(pk_aggregate a)
{
    return a == PK_AGG_PERCENTILE ? "percentile" : name_of(agg_names, N_OF(agg_names), a);
}
const char *pk_op_name(pk_op op)
{
    return name_of(op_names, N_OF(op_names), op);
}
const char *pk_consequence_name(pk_consequence c)
{
    return name_of(conseq_names, N_OF(conseq_names), c);
}

/* Look text up in t; on failure lint "path: expected one of a, b, c, got 'x'". */
static int lookup(const name_val *t, size_t n, const char *text, const char *path, pk_lint *l)
{
    char list[256] = "";

    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, text) == 0)
            return t[i].val;
    }
    for (size_t i = 0; i < n; i++) {
        strncat(list, t[i].name, sizeof(list) - strlen(list) - 1);
        if (i + 1 < n)
            strncat(list, ", ", sizeof(list) - strlen(list) - 1);
    }
    pk_lint_add(l, "%s: expected one of %s, got '%s'", path, list, text);
    return 0;
}

/* --- JSON helpers ----------------------------------------------------------- */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* Report keys of obj that are not in allowed (NULL-terminated). */
static void check_keys(const json_t *obj, const char *path, const char *const *allowed, pk_lint *l)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        char list[384] = "";
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (ok)
            continue;
        /* the list of what is allowed is written only for a key that is not */
        for (size_t i = 0; allowed[i]; i++) {
            strncat(list, allowed[i], sizeof(list) - strlen(list) - 1);
            if (allowed[i + 1])
                strncat(list, ", ", sizeof(list) - strlen(list) - 1);
        }
        pk_lint_add(l, "%s%s%s: unknown field (expected one of %s)", path, *path ? "." : "", key,
                    list);
    }
}

static const char *get_str(const json_t *obj, const char *key, const char *path, bool required,
                           pk_lint *l)
{
    json_t *v = json_object_get(obj, key);

    if (!v) {
        if (required)
            pk_lint_add(l, "%s%s%s: required field is missing", path, *path ? "." : "", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        pk_lint_add(l, "%s%s%s: expected a string, got %s", path, *path ? "." : "", key,
                    json_type_name(v));
        return NULL;
    }
    if (required && json_string_length(v) == 0) {
        pk_lint_add(l, "%s%s%s: must not be empty", path, *path ? "." : "", key);
        return NULL;
    }
    return json_string_value(v);
}

static bool get_num(const json_t *obj, const char *key, const char *path, bool required,
                    double *out, pk_lint *l)
{
    json_t *v = json_object_get(obj, key);

    if (!v) {
        if (required)
            pk_lint_add(l, "%s.%s: required field is missing", path, key);
        return false;
    }
    if (!json_is_number(v)) {
        pk_lint_add(l, "%s.%s: expected a number, got %s", path, key, json_type_name(v));
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* Whole number in [min, max]; returns false (and lints) otherwise. */
static bool get_uint(const json_t *obj, const char *key, const char *path, uint32_t min,
                     uint32_t max, uint32_t *out, pk_lint *l)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return false;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        json_integer_value(v) > (json_int_t)max) {
        pk_lint_add(l, "%s.%s: expected a whole number from %u to %u, got %s", path, key, min, max,
                    json_is_integer(v) ? "a number outside that range" : json_type_name(v));
        return false;
    }
    *out = (uint32_t)json_integer_value(v);
    return true;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* --- predicates ------------------------------------------------------------- */

void pk_pred_free(pk_pred *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_kids; i++)
        pk_pred_free(p->kids[i]);
    free(p->kids);
    free(p->name);
    free(p->str);
    for (size_t i = 0; p->strs && i < p->n_set; i++)
        free(p->strs[i]);
    free(p->strs);
    free(p->nums);
    free(p);
}

static const name_val field_names[] = {
    {"kind", PK_FIELD_KIND},         {"action", PK_FIELD_ACTION},     {"tool", PK_FIELD_TOOL},
    {"resource", PK_FIELD_RESOURCE}, {"currency", PK_FIELD_CURRENCY}, {"amount", PK_FIELD_AMOUNT},
    {"source", PK_FIELD_SOURCE},     {"reporter", PK_FIELD_REPORTER},
};

static bool field_numeric(pk_field f)
{
    return f == PK_FIELD_AMOUNT || f == PK_FIELD_METRIC;
}

/* "metrics.latency_ms", "labels.pii", or a plain field name. */
static bool parse_field(const char *text, const char *path, pk_pred *p, pk_lint *l)
{
    if (strncmp(text, "metrics.", 8) == 0 || strncmp(text, "labels.", 7) == 0) {
        bool metric = text[0] == 'm';
        const char *name = text + (metric ? 8 : 7);
        if (!*name || strlen(name) > PK_NAME_MAX) {
            pk_lint_add(l, "%s: expected a name after '%s', got '%s'", path,
                        metric ? "metrics." : "labels.", text);
            return false;
        }
        p->field = metric ? PK_FIELD_METRIC : PK_FIELD_LABEL;
        p->name = strdup(name);
        return p->name != NULL;
    }
    for (size_t i = 0; i < N_OF(field_names); i++) {
        if (strcmp(field_names[i].name, text) == 0) {
            p->field = (pk_field)field_names[i].val;
            return true;
        }
    }
    pk_lint_add(l,
                "%s: expected an event field (kind, action, tool, resource, currency, amount, "
                "source, reporter, metrics.NAME, labels.NAME), got '%s'",
                path, text);
    return false;
}

static pk_pred *parse_pred(const json_t *v, const char *path, int depth, pk_lint *l);

static pk_pred *parse_pred_list(const json_t *arr, pk_pred_type type, const char *path, int depth,
                                pk_lint *l)
{
    pk_pred *p = calloc(1, sizeof(*p));
    size_t n;

    if (!p)
        return NULL;
    p->type = type;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        pk_lint_add(l, "%s: expected a non-empty array of conditions, got %s", path,
                    json_is_array(arr) ? "an empty array" : json_type_name(arr));
        pk_pred_free(p);
        return NULL;
    }
    n = json_array_size(arr);
    p->kids = calloc(n, sizeof(*p->kids));
    if (!p->kids) {
        pk_pred_free(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        p->kids[p->n_kids] = parse_pred(json_array_get(arr, i), sub, depth + 1, l);
        if (!p->kids[p->n_kids]) {
            pk_pred_free(p);
            return NULL;
        }
        p->n_kids++;
    }
    return p;
}

/* {"not": {...}}: the negation of one condition. */
static pk_pred *parse_not(const json_t *v, const char *path, int depth, pk_lint *l)
{
    char sub[PATH_MAX_LEN];
    pk_pred *kid, *p;

    snprintf(sub, sizeof(sub), "%s.not", path);
    if (!(kid = parse_pred(v, sub, depth + 1, l)))
        return NULL;
    p = calloc(1, sizeof(*p));
    if (!p || !(p->kids = calloc(1, sizeof(*p->kids)))) {
        free(p);
        pk_pred_free(kid);
        return NULL;
    }
    p->type = PK_PRED_NOT;
    p->kids[0] = kid;
    p->n_kids = 1;
    return p;
}

/* The IN operand: a non-empty array of numbers or strings, as the field is. */
static bool parse_set(pk_pred *p, const json_t *operand, const char *sub, pk_lint *l)
{
    size_t n = json_is_array(operand) ? json_array_size(operand) : 0;

    if (n == 0) {
        pk_lint_add(l, "%s: expected a non-empty array, got %s", sub, json_type_name(operand));
        return false;
    }
    if (p->numeric)
        p->nums = calloc(n, sizeof(double));
    else
        p->strs = calloc(n, sizeof(char *));
    if (!p->nums && !p->strs)
        return false;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(operand, i);
        if (p->numeric ? !json_is_number(e) : !json_is_string(e)) {
            pk_lint_add(l, "%s[%zu]: expected %s, got %s", sub, i,
                        p->numeric ? "a number" : "a string", json_type_name(e));
            return false;
        }
        if (p->numeric)
            p->nums[i] = json_number_value(e);
        else
            p->strs[i] = strdup(json_string_value(e));
        p->n_set++;
    }
    return true;
}

/* The operand of p's comparison, checked against its field's type. */
static bool parse_operand(pk_pred *p, const json_t *operand, const char *sub, const char *field,
                          pk_lint *l)
{
    switch (p->cmp) {
    case PK_CMP_EXISTS:
        if (!json_is_boolean(operand)) {
            pk_lint_add(l, "%s: expected true or false, got %s", sub, json_type_name(operand));
            return false;
        }
        p->exists = json_is_true(operand);
        return true;
    case PK_CMP_PREFIX:
        if (p->numeric || !json_is_string(operand)) {
            pk_lint_add(l, "%s: prefix needs a text field and a string, got %s on '%s'", sub,
                        json_type_name(operand), field);
            return false;
        }
        p->str = strdup(json_string_value(operand));
        return true;
    case PK_CMP_LT:
    case PK_CMP_LE:
    case PK_CMP_GT:
    case PK_CMP_GE:
        if (!p->numeric || !json_is_number(operand)) {
            pk_lint_add(l,
                        "%s: ordering needs a numeric field (amount, metrics.NAME) and a "
                        "number, got %s on '%s'",
                        sub, json_type_name(operand), field);
            return false;
        }
        p->num = json_number_value(operand);
        return true;
    case PK_CMP_EQ:
    case PK_CMP_NE:
        if (p->numeric ? !json_is_number(operand) : !json_is_string(operand)) {
            pk_lint_add(l, "%s: '%s' is a %s field, so expected %s, got %s", sub, field,
                        p->numeric ? "numeric" : "text", p->numeric ? "a number" : "a string",
                        json_type_name(operand));
            return false;
        }
        if (p->numeric)
            p->num = json_number_value(operand);
        else
            p->str = strdup(json_string_value(operand));
        return true;
    case PK_CMP_IN:
        return parse_set(p, operand, sub, l);
    }
    return false;
}

/* {"field": F, OP: operand}: one comparison. */
static pk_pred *parse_cmp(const json_t *v, const char *path, pk_lint *l)
{
    static const char *const cmp_keys[] = {"field", "eq", "ne",     "lt",     "le", "gt",
                                           "ge",    "in", "exists", "prefix", NULL};
    static const struct {
        const char *key; /* operator key */
        pk_cmp cmp;      /* its comparison */
    } ops[] = {{"eq", PK_CMP_EQ}, {"ne", PK_CMP_NE},         {"lt", PK_CMP_LT},
               {"le", PK_CMP_LE}, {"gt", PK_CMP_GT},         {"ge", PK_CMP_GE},
               {"in", PK_CMP_IN}, {"exists", PK_CMP_EXISTS}, {"prefix", PK_CMP_PREFIX}};
    char sub[PATH_MAX_LEN];
    const char *field;
    json_t *operand = NULL;
    pk_pred *p;
    int found = 0;

    check_keys(v, path, cmp_keys, l);
    field = get_str(v, "field", path, true, l);
    if (!field) {
        if (!json_object_get(v, "field"))
            pk_lint_add(l,
                        "%s: a condition is {\"field\": ..., \"eq\"|\"ne\"|\"lt\"|\"le\"|"
                        "\"gt\"|\"ge\"|\"in\"|\"exists\"|\"prefix\": ...} or "
                        "{\"all\"|\"any\": [...]} or {\"not\": {...}}",
                        path);
        return NULL;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;
    p->type = PK_PRED_CMP;
    snprintf(sub, sizeof(sub), "%s.field", path);
    if (!parse_field(field, sub, p, l))
        goto bad;
    for (size_t i = 0; i < N_OF(ops); i++) {
        json_t *o = json_object_get(v, ops[i].key);
        if (o) {
            found++;
            p->cmp = ops[i].cmp;
            operand = o;
            snprintf(sub, sizeof(sub), "%s.%s", path, ops[i].key);
        }
    }
    if (found != 1) {
        pk_lint_add(l,
                    "%s: expected exactly one comparison (eq, ne, lt, le, gt, ge, in, exists, "
                    "prefix), got %d",
                    path, found);
        goto bad;
    }
    p->numeric = field_numeric(p->field);
    if (parse_operand(p, operand, sub, field, l))
        return p;
bad:
    pk_pred_free(p);
    return NULL;
}

static pk_pred *parse_pred(const json_t *v, const char *path, int depth, pk_lint *l)
{
    static const char *const lists[] = {"all", "any"};
    char sub[PATH_MAX_LEN];

    if (depth > PRED_MAX_DEPTH) {
        pk_lint_add(l, "%s: conditions nest deeper than %d levels", path, PRED_MAX_DEPTH);
        return NULL;
    }
    if (!json_is_object(v)) {
        pk_lint_add(l, "%s: expected a condition object, got %s", path, json_type_name(v));
        return NULL;
    }
    if (json_object_size(v) == 1) {
        for (int i = 0; i < 2; i++) {
            json_t *arr = json_object_get(v, lists[i]);
            if (arr) {
                snprintf(sub, sizeof(sub), "%s.%s", path, lists[i]);
                return parse_pred_list(arr, i == 0 ? PK_PRED_ALL : PK_PRED_ANY, sub, depth, l);
            }
        }
        if (json_object_get(v, "not"))
            return parse_not(json_object_get(v, "not"), path, depth, l);
    }
    return parse_cmp(v, path, l);
}

/* Where an event keeps each of its plain text fields (0: not one). */
static const size_t text_field_at[] = {[PK_FIELD_KIND] = offsetof(pk_event_msg, kind),
                                       [PK_FIELD_ACTION] = offsetof(pk_event_msg, action),
                                       [PK_FIELD_TOOL] = offsetof(pk_event_msg, tool),
                                       [PK_FIELD_RESOURCE] = offsetof(pk_event_msg, resource),
                                       [PK_FIELD_CURRENCY] = offsetof(pk_event_msg, currency),
                                       [PK_FIELD_REPORTER] = offsetof(pk_event_msg, reporter_id)};

/* Value of a text field; NULL when absent. */
static const char *field_text(const pk_pred *p, const pk_event_msg *ev)
{
    const char *s = NULL;

    if (p->field == PK_FIELD_SOURCE)
        return pk_source_name(ev->source);
    if (p->field == PK_FIELD_LABEL)
        s = pk_event_label(ev, p->name);
    else if ((unsigned)p->field < PK_NELEM(text_field_at) && text_field_at[p->field])
        s = *(char *const *)((const char *)ev + text_field_at[p->field]);
    return s && *s ? s : NULL;
}

static bool field_number(const pk_pred *p, const pk_event_msg *ev, double *out)
{
    if (p->field == PK_FIELD_AMOUNT) {
        *out = ev->amount;
        return ev->amount != 0; /* no money moved: no amount */
    }
    return pk_event_metric(ev, p->name, out);
}

bool pk_pred_eval(const pk_pred *p, const pk_event_msg *ev)
{
    switch (p->type) {
    case PK_PRED_ALL:
        for (size_t i = 0; i < p->n_kids; i++) {
            if (!pk_pred_eval(p->kids[i], ev))
                return false;
        }
        return true;
    case PK_PRED_ANY:
        for (size_t i = 0; i < p->n_kids; i++) {
            if (pk_pred_eval(p->kids[i], ev))
                return true;
        }
        return false;
    case PK_PRED_NOT:
        return !pk_pred_eval(p->kids[0], ev);
    case PK_PRED_CMP:
        break;
    }
    if (p->numeric) {
        double x;
        bool present = field_number(p, ev, &x);
        if (p->cmp == PK_CMP_EXISTS)
            return present == p->exists;
        if (!present)
            return p->cmp == PK_CMP_NE;
        switch (p->cmp) {
        case PK_CMP_EQ:
            return x == p->num;
        case PK_CMP_NE:
            return x != p->num;
        case PK_CMP_LT:
            return x < p->num;
        case PK_CMP_LE:
            return x <= p->num;
        case PK_CMP_GT:
            return x > p->num;
        case PK_CMP_GE:
            return x >= p->num;
        case PK_CMP_IN:
            for (size_t i = 0; i < p->n_set; i++) {
                if (x == p->nums[i])
                    return true;
            }
            return false;
        default:
            return false;
        }
    } else {
        const char *s = field_text(p, ev);
        if (p->cmp == PK_CMP_EXISTS)
            return (s != NULL) == p->exists;
        if (!s)
            return p->cmp == PK_CMP_NE;
        switch (p->cmp) {
        case PK_CMP_EQ:
            return strcmp(s, p->str) == 0;
        case PK_CMP_NE:
            return strcmp(s, p->str) != 0;
        case PK_CMP_PREFIX:
            return strncmp(s, p->str, strlen(p->str)) == 0;
        case PK_CMP_IN:
            for (size_t i = 0; i < p->n_set; i++) {
                if (strcmp(s, p->strs[i]) == 0)
                    return true;
            }
            return false;
        default:
            return false;
        }
    }
}

double pk_clause_quantile(const pk_clause *c)
{
    return c->aggregate == PK_AGG_PERCENTILE ? c->quantile : 0;
}

bool pk_clause_applies(const pk_clause *c, const pk_event_msg *ev)
{
    if (c->when)
        return pk_pred_eval(c->when, ev);
    for (size_t i = 0; c->kind == PK_CLAUSE_FORBIDDEN && i < c->n_domain; i++) {
        if (!pk_pred_eval(c->domain[i], ev))
            return false;
    }
    return true;
}

bool pk_pact_counterparty(const pk_pact *p, const char *id)
{
    for (size_t i = 0; i < p->n_counterparties; i++) {
        if (strcmp(p->counterparties[i], id) == 0)
            return true;
    }
    return false;
}

/* A comparison on a field that says which event it is (not what happened in it). */
static bool identity_cmp(const pk_pred *p)
{
    return p->type == PK_PRED_CMP &&
           (p->field == PK_FIELD_KIND || p->field == PK_FIELD_ACTION || p->field == PK_FIELD_TOOL ||
            p->field == PK_FIELD_RESOURCE || p->field == PK_FIELD_CURRENCY ||
            p->field == PK_FIELD_SOURCE || p->field == PK_FIELD_REPORTER);
}

/* The domain of a forbidden clause: the identity comparisons its match requires. */
static void find_domain(pk_clause *c)
{
    const pk_pred *m = c->match;

    c->n_domain = 0;
    if (!m)
        return;
    if (identity_cmp(m)) {
        c->domain[c->n_domain++] = m;
        return;
    }
    for (size_t i = 0; m->type == PK_PRED_ALL && i < m->n_kids && c->n_domain < 8; i++) {
        if (identity_cmp(m->kids[i]))
            c->domain[c->n_domain++] = m->kids[i];
    }
}

bool pk_patterns_match(const pk_patterns *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++) {
        const char *p = ps->p[i];
        size_t n = strlen(p);
        if (n && p[n - 1] == '*') {
            if (strncmp(name, p, n - 1) == 0)
                return true;
        } else if (strcmp(name, p) == 0) {
            return true;
        }
    }
    return false;
}

bool pk_op_holds(pk_op op, double observed, double threshold)
{
    switch (op) {
    case PK_OP_LT:
        return observed < threshold;
    case PK_OP_LE:
        return observed <= threshold;
    case PK_OP_GT:
        return observed > threshold;
    case PK_OP_GE:
        return observed >= threshold;
    case PK_OP_EQ:
        return observed == threshold;
    case PK_OP_NE:
        return observed != threshold;
    }
    return false;
}

/* --- clauses ---------------------------------------------------------------- */

/* A duration field between min_ms and max_ms; returns 0 (and lints) if bad or absent. */
static int64_t get_duration(const json_t *obj, const char *key, const char *path, bool required,
                            int64_t min_ms, int64_t max_ms, pk_lint *l)
{
    json_t *v = json_object_get(obj, key);
    int64_t ms;
    char lo[32], hi[32];

    if (!v) {
        if (required)
            pk_lint_add(l, "%s.%s: required field is missing (a duration like \"5m\")", path, key);
        return 0;
    }
    if (!json_is_string(v) || pk_duration_parse(json_string_value(v), &ms) != PK_OK) {
        pk_lint_add(l, "%s.%s: expected a duration like 1h or 500ms, got %s%s%s", path, key,
                    json_is_string(v) ? "'" : "",
                    json_is_string(v) ? json_string_value(v) : json_type_name(v),
                    json_is_string(v) ? "'" : "");
        return 0;
    }
    if (ms < min_ms || ms > max_ms) {
        pk_duration_format(min_ms, lo, sizeof(lo));
        pk_duration_format(max_ms, hi, sizeof(hi));
        pk_lint_add(l, "%s.%s: must be from %s to %s, got '%s'", path, key, lo, hi,
                    json_string_value(v));
        return 0;
    }
    return ms;
}

static void parse_window(const json_t *c, const char *path, bool required, pk_clause *cl,
                         pk_lint *l)
{
    json_t *w = json_object_get(c, "window");

    if (!w) {
        if (required)
            pk_lint_add(l,
                        "%s.window: required field is missing (a duration like \"1h\", or "
                        "{\"events\": N})",
                        path);
        return;
    }
    if (json_is_string(w)) {
        int64_t ms;
        if (pk_duration_parse(json_string_value(w), &ms) != PK_OK) {
            pk_lint_add(l, "%s.window: expected a duration like 1h or 500ms, got '%s'", path,
                        json_string_value(w));
            return;
        }
        if (ms < 1000 || ms > 366LL * 86400000) {
            pk_lint_add(l, "%s.window: must be from 1s to 366d, got '%s'", path,
                        json_string_value(w));
            return;
        }
        cl->window_ms = ms;
    } else if (json_is_object(w)) {
        static const char *const keys[] = {"events", NULL};
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof(sub), "%s.window", path);
        check_keys(w, sub, keys, l);
        if (!get_uint(w, "events", sub, 1, 1000000, &cl->window_events, l) &&
            !json_object_get(w, "events"))
            pk_lint_add(l, "%s.events: required field is missing", sub);
    } else {
        pk_lint_add(l, "%s.window: expected a duration like 1h or {\"events\": 100}, got %s", path,
                    json_type_name(w));
    }
}

static void parse_sources(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    /* peers count only where the pact says so (and names them as counterparties); telemetry
     * comes from the agent's own runtime, instrumented by its operator: as much as self */
    static const double defaults[PK_SOURCES] = {0, 0.5, 0, 1.0, 1.0, 0.5};
    json_t *s = json_object_get(c, "sources");
    const char *key;
    json_t *v;

    memcpy(cl->weight, defaults, sizeof(defaults));
    if (!s)
        return;
    if (!json_is_object(s) || json_object_size(s) == 0) {
        pk_lint_add(l,
                    "%s.sources: expected an object like {\"self\": 0.5, \"evaluator\": 1}, "
                    "got %s",
                    path, json_is_object(s) ? "an empty object" : json_type_name(s));
        return;
    }
    memset(cl->weight, 0, sizeof(cl->weight)); /* sources not listed do not count */
    json_object_foreach(s, key, v)
    {
        char sub[PATH_MAX_LEN];
        int src;
        snprintf(sub, sizeof(sub), "%s.sources.%s", path, key);
        src = lookup(source_names, N_OF(source_names), key, sub, l);
        if (!src)
            continue;
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            pk_lint_add(l, "%s: expected a weight from 0 to 1, got %s", sub,
                        json_is_number(v) ? "a number outside that range" : json_type_name(v));
            continue;
        }
        cl->weight[src] = json_number_value(v);
    }
    {
        double sum = 0;
        for (int src = 1; src < PK_SOURCES; src++)
            sum += cl->weight[src];
        if (sum <= 0)
            pk_lint_add(l, "%s.sources: every weight is 0, so no evidence would ever count", path);
    }
}

static pk_consequence default_consequence(Pactum__V1__Severity s);

static void parse_burn(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    static const char *const keys[] = {"target", "triggers", NULL};
    static const char *const tkeys[] = {"long", "short", "factor", "severity", "consequence", NULL};
    json_t *b = json_object_get(c, "burn_rate"), *trig;
    char sub[PATH_MAX_LEN];

    if (!b)
        return;
    snprintf(sub, sizeof(sub), "%s.burn_rate", path);
    if (!json_is_object(b)) {
        pk_lint_add(l, "%s: expected an object {\"target\": 0.99, \"triggers\": [...]}, got %s",
                    sub, json_type_name(b));
        return;
    }
    check_keys(b, sub, keys, l);
    if (cl->aggregate == PK_AGG_COUNT || cl->aggregate == PK_AGG_SUM)
        pk_lint_add(l,
                    "%s: burn rates judge each event by '%s %s threshold'; that needs a metric "
                    "aggregate other than count or sum",
                    sub, cl->metric ? cl->metric : "metric", pk_op_name(cl->op));
    if (!get_num(b, "target", sub, true, &cl->target, l))
        cl->target = 0;
    else if (!(cl->target > 0 && cl->target < 1)) {
        pk_lint_add(l,
                    "%s.target: the fraction of good events promised, strictly between 0 "
                    "and 1, got %g",
                    sub, cl->target);
        cl->target = 0;
    }
    trig = json_object_get(b, "triggers");
    if (!json_is_array(trig) || json_array_size(trig) == 0 || json_array_size(trig) > PK_BURN_MAX) {
        char got[48];
        if (json_is_array(trig))
            snprintf(got, sizeof(got), "%zu triggers", json_array_size(trig));
        pk_lint_add(l, "%s.triggers: expected an array of 1 to %d triggers, got %s", sub,
                    PK_BURN_MAX,
                    json_is_array(trig) ? got
                    : trig              ? json_type_name(trig)
                                        : "nothing");
        return;
    }
    for (size_t i = 0; i < json_array_size(trig); i++) {
        json_t *t = json_array_get(trig, i);
        pk_burn *br = &cl->burn[cl->n_burn];
        char tp[PATH_MAX_LEN], lw[16], sw[16];
        const char *s;
        snprintf(tp, sizeof(tp), "%s.triggers[%zu]", sub, i);
        if (!json_is_object(t)) {
            pk_lint_add(l, "%s: expected a trigger object, got %s", tp, json_type_name(t));
            continue;
        }
        check_keys(t, tp, tkeys, l);
        br->long_ms = get_duration(t, "long", tp, true, 60000, 366LL * 86400000, l);
        br->short_ms = get_duration(t, "short", tp, true, 1000, 366LL * 86400000, l);
        if (br->long_ms && br->short_ms && br->short_ms >= br->long_ms)
            pk_lint_add(l, "%s.short: the short window must be shorter than the long one", tp);
        if (get_num(t, "factor", tp, true, &br->factor, l)) {
            if (!(br->factor > 0))
                pk_lint_add(l, "%s.factor: must be a burn rate above 0, got %g", tp, br->factor);
            else if (cl->target > 0 && br->factor > 1 / (1 - cl->target) + 1e-9)
                pk_lint_add(l,
                            "%s.factor: %g can never be reached: with target %g the budget "
                            "burns at most %g times too fast",
                            tp, br->factor, cl->target, 1 / (1 - cl->target));
        }
        if ((s = get_str(t, "severity", tp, true, l))) {
            char sp[PATH_MAX_LEN];
            snprintf(sp, sizeof(sp), "%s.severity", tp);
            br->severity = (Pactum__V1__Severity)lookup(sev_names, N_OF(sev_names), s, sp, l);
        }
        br->consequence = default_consequence(br->severity);
        if ((s = get_str(t, "consequence", tp, false, l))) {
            char sp[PATH_MAX_LEN];
            snprintf(sp, sizeof(sp), "%s.consequence", tp);
            br->consequence = lookup(conseq_names, N_OF(conseq_names), s, sp, l);
        }
        pk_duration_format(br->long_ms, lw, sizeof(lw));
        pk_duration_format(br->short_ms, sw, sizeof(sw));
        snprintf(br->name, sizeof(br->name), "%s/%s x%g", lw, sw, br->factor);
        cl->n_burn++;
    }
}

static void patterns_free(pk_patterns *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->p[i]);
    free(ps->p);
    memset(ps, 0, sizeof(*ps));
}

static void parse_patterns(const json_t *c, const char *key, const char *path, pk_patterns *ps,
                           pk_lint *l)
{
    json_t *a = json_object_get(c, key);
    size_t n, max = strcmp(key, "resources") == 0 ? PK_VALUE_MAX : PK_NAME_MAX;

    if (!a)
        return;
    n = json_is_array(a) ? json_array_size(a) : 0;
    if (n == 0 || n > PK_SCOPE_MAX) {
        char got[48];
        if (json_is_array(a))
            snprintf(got, sizeof(got), "%zu", json_array_size(a));
        pk_lint_add(l,
                    "%s.%s: expected an array of 1 to %d names or patterns like \"tickets.*\", "
                    "got %s%s",
                    path, key, PK_SCOPE_MAX, json_is_array(a) ? got : json_type_name(a),
                    json_is_array(a) ? " entries" : "");
        return;
    }
    ps->p = calloc(n, sizeof(char *));
    if (!ps->p)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        const char *star = s ? strchr(s, '*') : NULL;
        if (!s || !*s || strlen(s) > max) {
            pk_lint_add(l, "%s.%s[%zu]: expected a name of 1 to %zu bytes, got %s", path, key, i,
                        max, s ? "an empty or longer string" : json_type_name(e));
            continue;
        }
        if (star && star[1] != '\0') {
            pk_lint_add(l, "%s.%s[%zu]: '*' may only end a pattern (\"tickets.*\"), got '%s'", path,
                        key, i, s);
            continue;
        }
        ps->p[ps->n++] = strdup(s);
    }
}

static void parse_spend(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    static const char *const keys[] = {"currency", "per_action",     "per_window",
                                       "window",   "approval_above", NULL};
    json_t *sp = json_object_get(c, "spend");
    char sub[PATH_MAX_LEN];
    const char *cur;

    if (!sp)
        return;
    snprintf(sub, sizeof(sub), "%s.spend", path);
    if (!json_is_object(sp)) {
        pk_lint_add(l,
                    "%s: expected an object like {\"currency\": \"USD\", \"per_action\": 100}, "
                    "got %s",
                    sub, json_type_name(sp));
        return;
    }
    check_keys(sp, sub, keys, l);
    if ((cur = get_str(sp, "currency", sub, true, l))) {
        if (strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
            cur[2] < 'A' || cur[2] > 'Z')
            pk_lint_add(l,
                        "%s.currency: expected a three-letter ISO 4217 code like \"USD\", got "
                        "'%s'",
                        sub, cur);
        else
            snprintf(cl->currency, sizeof(cl->currency), "%s", cur);
    }
    if (json_object_get(sp, "per_action") &&
        get_num(sp, "per_action", sub, true, &cl->per_action, l) && !(cl->per_action > 0))
        pk_lint_add(l, "%s.per_action: must be above 0, got %g", sub, cl->per_action);
    if (json_object_get(sp, "per_window") &&
        get_num(sp, "per_window", sub, true, &cl->per_window, l)) {
        if (!(cl->per_window > 0))
            pk_lint_add(l, "%s.per_window: must be above 0, got %g", sub, cl->per_window);
        cl->window_ms = get_duration(sp, "window", sub, true, 1000, 366LL * 86400000, l);
    } else if (json_object_get(sp, "window") && !json_object_get(sp, "per_window")) {
        pk_lint_add(l, "%s.window: only meaningful with per_window", sub);
    }
    if (json_object_get(sp, "approval_above") &&
        get_num(sp, "approval_above", sub, true, &cl->approval_above, l) &&
        !(cl->approval_above > 0))
        pk_lint_add(l, "%s.approval_above: must be above 0, got %g", sub, cl->approval_above);
    if (cl->approval_above > 0 && cl->per_action > 0 && cl->approval_above >= cl->per_action)
        pk_lint_add(l, "%s.approval_above: %g is not below per_action %g, so it never applies", sub,
                    cl->approval_above, cl->per_action);
    if (!json_object_get(sp, "per_action") && !json_object_get(sp, "per_window") &&
        !json_object_get(sp, "approval_above"))
        pk_lint_add(l, "%s: give per_action, per_window, approval_above, or several", sub);
}

static pk_consequence default_consequence(Pactum__V1__Severity s)
{
    return s == PACTUM__V1__SEVERITY__SEVERITY_CRITICAL ? PK_CONSEQ_CONTAIN
           : s == PACTUM__V1__SEVERITY__SEVERITY_HIGH   ? PK_CONSEQ_DEMOTE
                                                        : PK_CONSEQ_NOTIFY;
}

/* "count" ... "ratio", or a percentile "p0" to "p100" ("p99.9"). */
static void parse_aggregate(const char *s, const char *path, pk_clause *cl, pk_lint *l)
{
    char *end = NULL;
    double q;

    snprintf(cl->agg_name, sizeof(cl->agg_name), "%s", s);
    if (s[0] == 'p' && s[1] >= '0' && s[1] <= '9') {
        q = strtod(s + 1, &end);
        if (end && !*end && q >= 0 && q <= 100 && strlen(s) <= 8) {
            cl->aggregate = PK_AGG_PERCENTILE;
            cl->quantile = q / 100;
            return;
        }
        pk_lint_add(l, "%s: a percentile is p0 to p100 (like p95 or p99.9), got '%s'", path, s);
        return;
    }
    cl->aggregate = (pk_aggregate)lookup(agg_names, N_OF(agg_names), s, path, l);
    if (!cl->aggregate)
        pk_lint_add(l, "%s: or a percentile p0 to p100 (like p95 or p99.9)", path);
}

static void parse_objective(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    char sub[PATH_MAX_LEN];
    const char *s;

    if ((s = get_str(c, "aggregate", path, true, l))) {
        snprintf(sub, sizeof(sub), "%s.aggregate", path);
        parse_aggregate(s, sub, cl, l);
    }
    cl->metric = dup_or_null(get_str(c, "metric", path, cl->aggregate != PK_AGG_COUNT, l));
    cl->of = dup_or_null(get_str(c, "of", path, cl->aggregate == PK_AGG_RATIO, l));
    if (cl->of && cl->aggregate != PK_AGG_RATIO)
        pk_lint_add(l, "%s.of: only a ratio has a denominator", path);
    if (cl->of && (strlen(cl->of) > PK_NAME_MAX || (cl->metric && strcmp(cl->of, cl->metric) == 0)))
        pk_lint_add(l, "%s.of: a metric name of at most %d characters, other than metric", path,
                    PK_NAME_MAX);
    if (cl->aggregate == PK_AGG_RATIO && json_object_get(c, "burn_rate"))
        pk_lint_add(l, "%s.burn_rate: a ratio has no per-event target; use a rate", path);
    if (cl->metric && cl->aggregate == PK_AGG_COUNT)
        pk_lint_add(l,
                    "%s.metric: count counts events; remove the metric or pick another "
                    "aggregate",
                    path);
    if (cl->metric && strlen(cl->metric) > PK_NAME_MAX)
        pk_lint_add(l, "%s.metric: at most %d characters", path, PK_NAME_MAX);
    if ((s = get_str(c, "op", path, true, l))) {
        snprintf(sub, sizeof(sub), "%s.op", path);
        cl->op = (pk_op)lookup(op_names, N_OF(op_names), s, sub, l);
    }
    get_num(c, "threshold", path, true, &cl->threshold, l);
    if (!isfinite(cl->threshold))
        pk_lint_add(l, "%s.threshold: must be a finite number", path);
    if (cl->aggregate == PK_AGG_RATE && (cl->threshold < 0 || cl->threshold > 1))
        pk_lint_add(l, "%s.threshold: a rate is a fraction from 0 to 1, got %g", path,
                    cl->threshold);
    cl->min_samples = 1;
    if (json_object_get(c, "min_samples"))
        get_uint(c, "min_samples", path, 1, 1000000, &cl->min_samples, l);
    parse_window(c, path, true, cl, l);
    if (cl->window_events && cl->min_samples > cl->window_events)
        pk_lint_add(l, "%s.min_samples: %u can never be reached in a window of %u events", path,
                    cl->min_samples, cl->window_events);
    parse_burn(c, path, cl, l);
}

static void parse_forbidden(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    json_t *m = json_object_get(c, "match");
    char sub[PATH_MAX_LEN];

    if (!m) {
        pk_lint_add(l, "%s.match: required field is missing (the condition that must not hold)",
                    path);
    } else {
        snprintf(sub, sizeof(sub), "%s.match", path);
        cl->match = parse_pred(m, sub, 0, l);
    }
    if (json_object_get(c, "max_count"))
        get_uint(c, "max_count", path, 0, 1000000, &cl->max_count, l);
    /* how long an occurrence counts is part of the promise: never implied */
    parse_window(c, path, true, cl, l);
    find_domain(cl);
}

static void parse_freshness(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    json_t *ev = json_object_get(c, "evidence");
    char sub[PATH_MAX_LEN];

    if (ev) {
        snprintf(sub, sizeof(sub), "%s.evidence", path);
        cl->evidence = parse_pred(ev, sub, 0, l);
    }
    cl->max_gap_ms = get_duration(c, "max_gap", path, true, 1000, 366LL * 86400000, l);
}

static void parse_scope(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    parse_patterns(c, "actions", path, &cl->actions, l);
    parse_patterns(c, "tools", path, &cl->tools, l);
    parse_patterns(c, "resources", path, &cl->resources, l);
    parse_spend(c, path, cl, l);
    if (!json_object_get(c, "actions") && !json_object_get(c, "tools") &&
        !json_object_get(c, "resources") && !json_object_get(c, "spend"))
        pk_lint_add(l, "%s: a scope names at least one of actions, tools, resources, spend", path);
}

/* The fields every clause has: id, promise, severity, consequence, sources, when. */
static void parse_clause_common(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    const char *s;
    char sub[PATH_MAX_LEN];
    json_t *when;

    if ((s = get_str(c, "id", path, true, l))) {
        if (pk_id_check("id", s) != PK_OK)
            pk_lint_add(l, "%s.id: %s", path, pk_error_msg());
        else
            cl->id = strdup(s);
    }
    cl->promise = dup_or_null(get_str(c, "promise", path, true, l));
    if ((s = get_str(c, "severity", path, true, l))) {
        snprintf(sub, sizeof(sub), "%s.severity", path);
        cl->severity = (Pactum__V1__Severity)lookup(sev_names, N_OF(sev_names), s, sub, l);
    }
    cl->consequence = default_consequence(cl->severity);
    if ((s = get_str(c, "consequence", path, false, l))) {
        snprintf(sub, sizeof(sub), "%s.consequence", path);
        cl->consequence = (pk_consequence)lookup(conseq_names, N_OF(conseq_names), s, sub, l);
    }
    parse_sources(c, path, cl, l);
    if (json_object_get(c, "peers_can_contain")) {
        if (!json_is_boolean(json_object_get(c, "peers_can_contain")))
            pk_lint_add(l, "%s.peers_can_contain: expected true or false", path);
        cl->peers_can_contain = json_is_true(json_object_get(c, "peers_can_contain"));
    }
    if ((when = json_object_get(c, "when"))) {
        snprintf(sub, sizeof(sub), "%s.when", path);
        cl->when = parse_pred(when, sub, 0, l);
    }
    if ((s = get_str(c, "per", path, false, l))) {
        if (strcmp(s, "engagement") == 0 || strcmp(s, "agent") == 0)
            cl->per_engagement = s[0] == 'e';
        else
            pk_lint_add(l, "%s.per: expected one of agent, engagement, got '%s'", path, s);
    }
}

/* Each clause kind: the keys it may have, and what reads its own fields. */
static const struct {
    pk_clause_kind kind;
    const char *const *keys;
    void (*parse)(const json_t *c, const char *path, pk_clause *cl, pk_lint *l);
} clause_kinds[] = {
    {PK_CLAUSE_OBJECTIVE,
     (const char *const[]){"id", "promise", "severity", "kind", "consequence", "sources",
                           "peers_can_contain", "when", "metric", "of", "aggregate", "window", "op",
                           "threshold", "min_samples", "burn_rate", "per", NULL},
     parse_objective},
    {PK_CLAUSE_FORBIDDEN,
     (const char *const[]){"id", "promise", "severity", "kind", "consequence", "sources",
                           "peers_can_contain", "when", "match", "max_count", "window", "per",
                           NULL},
     parse_forbidden},
    {PK_CLAUSE_FRESHNESS,
     (const char *const[]){"id", "promise", "severity", "kind", "consequence", "sources",
                           "peers_can_contain", "evidence", "max_gap", NULL},
     parse_freshness},
    {PK_CLAUSE_SCOPE,
     (const char *const[]){"id", "promise", "severity", "kind", "consequence", "sources",
                           "peers_can_contain", "when", "actions", "tools", "resources", "spend",
                           NULL},
     parse_scope},
};

static void parse_clause(const json_t *c, const char *path, pk_clause *cl, pk_lint *l)
{
    static const char *const common[] = {"id",          "promise", "severity",          "kind",
                                         "consequence", "sources", "peers_can_contain", "when",
                                         NULL};
    char sub[PATH_MAX_LEN];
    const char *s;

    if (!json_is_object(c)) {
        pk_lint_add(l, "%s: expected a clause object, got %s", path, json_type_name(c));
        return;
    }
    parse_clause_common(c, path, cl, l);
    if (!(s = get_str(c, "kind", path, true, l))) {
        check_keys(c, path, common, l);
        return;
    }
    snprintf(sub, sizeof(sub), "%s.kind", path);
    cl->kind = (pk_clause_kind)lookup(kind_names, N_OF(kind_names), s, sub, l);
    for (size_t i = 0; i < N_OF(clause_kinds); i++) {
        if (clause_kinds[i].kind == cl->kind) {
            check_keys(c, path, clause_kinds[i].keys, l);
            clause_kinds[i].parse(c, path, cl, l);
        }
    }
}

/* --- governance --------------------------------------------------------------- */

static const name_val tier_names[] = {{"trusted", PACTUM__V1__TIER__TIER_TRUSTED},
                                      {"standard", PACTUM__V1__TIER__TIER_STANDARD},
                                      {"watch", PACTUM__V1__TIER__TIER_WATCH},
                                      {"restricted", PACTUM__V1__TIER__TIER_RESTRICTED},
                                      {"contained", PACTUM__V1__TIER__TIER_CONTAINED},
                                      {"suspended", PACTUM__V1__TIER__TIER_SUSPENDED}};

void pk_governance_defaults(pk_governance *g)
{
    memset(g, 0, sizeof(*g));
    g->half_life_ms = 7LL * 86400000;
    g->source_cap = 200;
    g->min_evidence = 20;
    g->trusted_ppm = 900000;
    g->standard_ppm = 750000;
    g->watch_ppm = 500000;
    g->margin_ppm = 20000;         /* promotions need the bound 0.02 above the threshold */
    g->after_demotion_ms = 600000; /* and, after a demotion by score, ten minutes */
    for (int t = 0; t < PK_TIERS; t++)
        g->tiers[t].any_action = true;
    /* What each tier allows unless the pact says otherwise (docs/scoring.md):
     * trusted and standard: what the scope clauses allow; watch: the same,
     * but moving money needs a person's approval; restricted: everything
     * needs approval; contained and suspended: nothing. */
    g->tiers[PACTUM__V1__TIER__TIER_WATCH].spend_approval = true;
    g->tiers[PACTUM__V1__TIER__TIER_RESTRICTED].approve_all = true;
    g->tiers[PACTUM__V1__TIER__TIER_CONTAINED].any_action = false;
    g->tiers[PACTUM__V1__TIER__TIER_SUSPENDED].any_action = false;
    /* Held tiers and what it takes to leave them (docs/scoring.md). */
    g->reentry[PACTUM__V1__TIER__TIER_STANDARD] = (pk_reentry){PACTUM__V1__TIER__TIER_STANDARD,
                                                               PACTUM__V1__TIER__TIER_TRUSTED,
                                                               3600000,
                                                               20,
                                                               false,
                                                               false,
                                                               0,
                                                               3600000};
    g->reentry[PACTUM__V1__TIER__TIER_WATCH] = (pk_reentry){PACTUM__V1__TIER__TIER_WATCH,
                                                            PACTUM__V1__TIER__TIER_STANDARD,
                                                            3600000,
                                                            20,
                                                            false,
                                                            false,
                                                            0,
                                                            3600000};
    g->reentry[PACTUM__V1__TIER__TIER_RESTRICTED] = (pk_reentry){PACTUM__V1__TIER__TIER_RESTRICTED,
                                                                 PACTUM__V1__TIER__TIER_WATCH,
                                                                 6LL * 3600000,
                                                                 50,
                                                                 true,
                                                                 false,
                                                                 0,
                                                                 3600000};
    g->reentry[PACTUM__V1__TIER__TIER_CONTAINED] = (pk_reentry){PACTUM__V1__TIER__TIER_CONTAINED,
                                                                PACTUM__V1__TIER__TIER_WATCH,
                                                                24LL * 3600000,
                                                                100,
                                                                true,
                                                                true,
                                                                0,
                                                                3600000};
    /* suspended: no automatic way out; an override or a ruling is needed */
    /* after a re-entry the agent stays at most at `to` for an hour before climbing */
}

void pk_governance_free(pk_governance *g)
{
    for (int t = 0; t < PK_TIERS; t++) {
        patterns_free(&g->tiers[t].actions);
        patterns_free(&g->tiers[t].approval);
    }
}

static bool get_fraction(const json_t *o, const char *key, const char *path, uint32_t *ppm,
                         pk_lint *l)
{
    double v;

    if (!json_object_get(o, key))
        return false;
    if (!get_num(o, key, path, true, &v, l))
        return false;
    if (!(v > 0 && v < 1)) {
        pk_lint_add(l, "%s.%s: expected a fraction strictly between 0 and 1, got %g", path, key, v);
        return false;
    }
    *ppm = (uint32_t)(v * 1000000.0 + 0.5);
    return true;
}

static void parse_thresholds(const json_t *thr, pk_governance *gov, pk_lint *l)
{
    static const char *const thr_keys[] = {"trusted", "standard", "watch", NULL};

    if (!json_is_object(thr)) {
        pk_lint_add(l, "governance.thresholds: expected an object like {\"trusted\": 0.9}, got %s",
                    json_type_name(thr));
        return;
    }
    check_keys(thr, "governance.thresholds", thr_keys, l);
    get_fraction(thr, "trusted", "governance.thresholds", &gov->trusted_ppm, l);
    get_fraction(thr, "standard", "governance.thresholds", &gov->standard_ppm, l);
    get_fraction(thr, "watch", "governance.thresholds", &gov->watch_ppm, l);
    if (!(gov->trusted_ppm > gov->standard_ppm && gov->standard_ppm > gov->watch_ppm))
        pk_lint_add(l, "governance.thresholds: expected trusted > standard > watch, got %g, %g, %g",
                    gov->trusted_ppm / 1e6, gov->standard_ppm / 1e6, gov->watch_ppm / 1e6);
}

/* promotion: {"margin": 0.02, "dwell": "1h"} */
static void parse_promotion(const json_t *v, pk_governance *gov, pk_lint *l)
{
    static const char *const keys[] = {"margin", "dwell", "after_demotion", NULL};
    double m;

    if (!json_is_object(v)) {
        pk_lint_add(l, "governance.promotion: expected an object like {\"margin\": 0.02}, got %s",
                    json_type_name(v));
        return;
    }
    check_keys(v, "governance.promotion", keys, l);
    if (json_object_get(v, "margin") && get_num(v, "margin", "governance.promotion", true, &m, l)) {
        if (m < 0 || m > 0.5)
            pk_lint_add(l, "governance.promotion.margin: expected 0 to 0.5, got %g", m);
        else
            gov->margin_ppm = (uint32_t)(m * 1000000.0 + 0.5);
    }
    if (json_object_get(v, "dwell"))
        gov->dwell_ms =
            get_duration(v, "dwell", "governance.promotion", false, 0, 366LL * 86400000, l);
    if (json_object_get(v, "after_demotion"))
        gov->after_demotion_ms = get_duration(v, "after_demotion", "governance.promotion", false, 0,
                                              366LL * 86400000, l);
}

/* One tier's scope as the pact writes it (it replaces the default entirely). */
static void parse_tier_scope(const json_t *v, const char *path, pk_tier_scope *ts, pk_lint *l)
{
    static const char *const scope_keys[] = {"actions", "approval", "spend_approval",
                                             "spend_per_action", NULL};

    if (!json_is_object(v)) {
        pk_lint_add(l, "%s: expected an object, got %s", path, json_type_name(v));
        return;
    }
    check_keys(v, path, scope_keys, l);
    ts->set = true;
    ts->any_action = true;
    ts->approve_all = false;
    ts->spend_approval = json_is_true(json_object_get(v, "spend_approval"));
    if (json_object_get(v, "actions")) {
        json_t *arr = json_object_get(v, "actions");
        ts->any_action = false;
        if (json_is_array(arr) && json_array_size(arr) == 0)
            return; /* an empty list: nothing is allowed */
        parse_patterns(v, "actions", path, &ts->actions, l);
    }
    if (json_object_get(v, "approval"))
        parse_patterns(v, "approval", path, &ts->approval, l);
    if (json_object_get(v, "spend_per_action") &&
        get_num(v, "spend_per_action", path, true, &ts->spend_per_action, l) &&
        !(ts->spend_per_action > 0))
        pk_lint_add(l, "%s.spend_per_action: must be above 0, got %g", path, ts->spend_per_action);
}

static void parse_tiers(const json_t *tiers, pk_governance *gov, pk_lint *l)
{
    const char *key;
    json_t *v;

    if (!json_is_object(tiers))
        pk_lint_add(l, "governance.tiers: expected an object keyed by tier, got %s",
                    json_type_name(tiers));
    json_object_foreach((json_t *)tiers, key, v)
    {
        char path[PATH_MAX_LEN];
        int t;
        snprintf(path, sizeof(path), "governance.tiers.%s", key);
        if ((t = lookup(tier_names, N_OF(tier_names), key, path, l)))
            parse_tier_scope(v, path, &gov->tiers[t], l);
    }
}

/* The tier named by e's key ("from", "to"), or 0. */
static int tier_of(const json_t *e, const char *key, const char *path, pk_lint *l)
{
    char sp[PATH_MAX_LEN];
    const char *s = get_str(e, key, path, true, l);

    if (!s)
        return 0;
    snprintf(sp, sizeof(sp), "%s.%s", path, key);
    return lookup(tier_names, N_OF(tier_names), s, sp, l);
}

/* reentry[i]: the criteria for leaving one held tier. */
static void parse_reentry_one(const json_t *re, size_t i, pk_governance *gov, pk_lint *l)
{
    static const char *const re_keys[] = {
        "from",         "to",        "clean", "min_samples", "no_open_dispute",
        "operator_ack", "min_lower", "dwell", NULL};
    json_t *e = json_array_get(re, i);
    char path[PATH_MAX_LEN];
    pk_reentry r = {0};

    snprintf(path, sizeof(path), "governance.reentry[%zu]", i);
    if (!json_is_object(e)) {
        pk_lint_add(l, "%s: expected an object, got %s", path, json_type_name(e));
        return;
    }
    check_keys(e, path, re_keys, l);
    r.from = tier_of(e, "from", path, l);
    r.to = tier_of(e, "to", path, l);
    if (r.from && r.to && r.to >= r.from)
        pk_lint_add(l, "%s.to: re-entry leads to a better tier than '%s'", path,
                    name_of(tier_names, N_OF(tier_names), r.from));
    if (r.from == PACTUM__V1__TIER__TIER_TRUSTED)
        pk_lint_add(l, "%s.from: there is nothing to re-enter from trusted", path);
    r.clean_ms = get_duration(e, "clean", path, false, 0, 366LL * 86400000, l);
    if (json_object_get(e, "min_samples"))
        get_uint(e, "min_samples", path, 0, 100000000, &r.min_samples, l);
    if (json_object_get(e, "no_open_dispute"))
        r.no_open_dispute = json_is_true(json_object_get(e, "no_open_dispute"));
    if (json_object_get(e, "operator_ack"))
        r.operator_ack = json_is_true(json_object_get(e, "operator_ack"));
    get_fraction(e, "min_lower", path, &r.min_lower_ppm, l);
    r.dwell_ms = json_object_get(e, "dwell")
                     ? get_duration(e, "dwell", path, false, 0, 366LL * 86400000, l)
                     : 3600000;
    if (r.from <= 0 || r.from >= PK_TIERS)
        return;
    for (size_t k = 0; k < i; k++) {
        json_t *prev = json_array_get(re, k);
        const char *pf =
            json_is_object(prev) ? json_string_value(json_object_get(prev, "from")) : NULL;
        if (pf && strcmp(pf, name_of(tier_names, N_OF(tier_names), r.from)) == 0)
            pk_lint_add(l, "%s.from: reentry[%zu] already covers '%s'", path, k, pf);
    }
    gov->reentry[r.from] = r;
}

static void parse_governance(const json_t *g, pk_governance *gov, pk_lint *l)
{
    static const char *const keys[] = {"half_life", "source_cap", "min_evidence", "thresholds",
                                       "promotion", "tiers",      "reentry",      NULL};
    json_t *thr, *tiers, *re, *promo;

    if (!json_is_object(g)) {
        pk_lint_add(l, "governance: expected an object, got %s", json_type_name(g));
        return;
    }
    gov->present = true;
    check_keys(g, "governance", keys, l);
    if (json_object_get(g, "half_life"))
        gov->half_life_ms =
            get_duration(g, "half_life", "governance", true, 60000, 3650LL * 86400000, l);
    if (json_object_get(g, "source_cap"))
        get_uint(g, "source_cap", "governance", 1, 1000000, &gov->source_cap, l);
    if (json_object_get(g, "min_evidence"))
        get_uint(g, "min_evidence", "governance", 0, 1000000, &gov->min_evidence, l);
    if ((thr = json_object_get(g, "thresholds")))
        parse_thresholds(thr, gov, l);
    if ((promo = json_object_get(g, "promotion")))
        parse_promotion(promo, gov, l);
    if ((tiers = json_object_get(g, "tiers")))
        parse_tiers(tiers, gov, l);
    if ((re = json_object_get(g, "reentry"))) {
        if (!json_is_array(re) || json_array_size(re) > 5) {
            pk_lint_add(l, "governance.reentry: expected an array of up to 5 criteria sets, got %s",
                        json_type_name(re));
            return;
        }
        for (size_t i = 0; i < json_array_size(re); i++)
            parse_reentry_one(re, i, gov, l);
    }
}

static void clause_free(pk_clause *c)
{
    free(c->id);
    free(c->promise);
    free(c->metric);
    free(c->of);
    pk_pred_free(c->when);
    pk_pred_free(c->match);
    pk_pred_free(c->evidence);
    patterns_free(&c->actions);
    patterns_free(&c->tools);
    patterns_free(&c->resources);
}

void pk_pact_free(pk_pact *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_counterparties; i++)
        free(p->counterparties[i]);
    pk_governance_free(&p->gov);
    for (size_t i = 0; i < p->n_clauses; i++)
        clause_free(&p->clauses[i]);
    free(p->clauses);
    free(p->id);
    free(p->agent);
    free(p->title);
    free(p);
}

const pk_clause *pk_pact_clause(const pk_pact *p, const char *id)
{
    for (size_t i = 0; i < p->n_clauses; i++) {
        if (p->clauses[i].id && strcmp(p->clauses[i].id, id) == 0)
            return &p->clauses[i];
    }
    return NULL;
}

/* counterparties: agents that may report about the agent and dispute its verdicts. */
static void parse_counterparties(const json_t *doc, pk_pact *p, pk_lint *l)
{
    json_t *arr = json_object_get(doc, "counterparties"), *e;
    size_t i;

    if (!arr)
        return;
    if (!json_is_array(arr) || json_array_size(arr) > PK_COUNTERPARTIES_MAX) {
        pk_lint_add(l, "counterparties: expected an array of up to %d agent ids, got %s",
                    PK_COUNTERPARTIES_MAX, json_type_name(arr));
        return;
    }
    json_array_foreach(arr, i, e)
    {
        const char *id = json_string_value(e);
        if (!id || pk_id_check("counterparty", id) != PK_OK) {
            pk_lint_add(l, "counterparties[%zu]: expected an agent id, got %s", i,
                        id ? pk_error_msg() : json_type_name(e));
            continue;
        }
        if (p->agent && strcmp(id, p->agent) == 0) {
            pk_lint_add(l, "counterparties[%zu]: '%s' is the agent itself", i, id);
            continue;
        }
        p->counterparties[p->n_counterparties++] = strdup(id);
    }
}

/* review_by: "2027-06-30" (UTC, the end of that day) or an RFC 3339 time; review_cap: a tier. */
static void parse_review(const json_t *doc, pk_pact *p, pk_lint *l)
{
    const char *s = get_str(doc, "review_by", "", false, l), *cap;
    struct tm tm;
    char *end;

    p->review_cap = PACTUM__V1__TIER__TIER_WATCH;
    if ((cap = get_str(doc, "review_cap", "", false, l))) {
        if (!s)
            pk_lint_add(l, "review_cap: only meaningful with review_by");
        p->review_cap = lookup(tier_names, N_OF(tier_names), cap, "review_cap", l);
    }
    if (!s)
        return;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end && *end == '\0') {
        tm.tm_hour = 23;
        tm.tm_min = 59;
        tm.tm_sec = 59;
    } else {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (!end || *end != '\0' || tm.tm_year < 100) {
        pk_lint_add(l, "review_by: expected a date like \"2027-06-30\" (UTC), got '%s'", s);
        return;
    }
    p->review_by_ms = (int64_t)timegm(&tm) * 1000;
}

/* --- consequences: what an engagement under the pact pays ------------------------------ */

static void parse_withhold_rule(const json_t *r, size_t i, const pk_pact *p, pk_consequences *c,
                                pk_lint *l)
{
    static const char *const keys[] = {"clause", "severity", "percent", NULL};
    pk_withhold_rule *w = &c->withhold[c->n_withhold];
    char path[48];
    const char *clause, *sev;
    uint32_t pct = 0;

    snprintf(path, sizeof(path), "consequences.withhold[%zu]", i);
    if (!json_is_object(r)) {
        pk_lint_add(l, "%s: expected an object, got %s", path, json_type_name(r));
        return;
    }
    check_keys(r, path, keys, l);
    clause = get_str(r, "clause", path, true, l);
    sev = get_str(r, "severity", path, false, l);
    if (!get_uint(r, "percent", path, 1, 100, &pct, l)) {
        if (!json_object_get(r, "percent"))
            pk_lint_add(l, "%s.percent: required field is missing (1 to 100)", path);
        return;
    }
    if (!clause)
        return;
    if (strcmp(clause, "*") != 0 && !pk_pact_clause(p, clause)) {
        pk_lint_add(l, "%s.clause: '%s' is not a clause of this pact (or \"*\" for any)", path,
                    clause);
        return;
    }
    memset(w, 0, sizeof(*w));
    snprintf(w->clause, sizeof(w->clause), "%s", clause);
    w->min_severity = sev ? lookup(sev_names, N_OF(sev_names), sev, path, l) : 0;
    w->percent = pct;
    snprintf(w->term, sizeof(w->term), "withhold %u%% per %s%sfailure of %s", pct, sev ? sev : "",
             sev ? "-severity " : "", clause);
    c->n_withhold++;
}

/* job_limits: by tier, the largest value of the jobs the agent may run at once. */
static void parse_job_limits(const json_t *v, pk_consequences *c, pk_lint *l)
{
    const char *key;
    json_t *x;

    if (!v)
        return;
    if (!json_is_object(v)) {
        pk_lint_add(l, "consequences.job_limits: expected an object of tier: amount, got %s",
                    json_type_name(v));
        return;
    }
    json_object_foreach((json_t *)v, key, x)
    {
        char path[64];
        int t;
        snprintf(path, sizeof(path), "consequences.job_limits.%s", key);
        if (!(t = lookup(tier_names, N_OF(tier_names), key, "consequences.job_limits", l)))
            continue;
        if (t >= PACTUM__V1__TIER__TIER_CONTAINED)
            pk_lint_add(l, "%s: a %s agent takes no job; leave it out", path, key);
        else if (!json_is_number(x) || json_number_value(x) < 0 ||
                 json_number_value(x) * 100 > (double)PK_PRICE_MAX)
            pk_lint_add(l, "%s: expected an amount from 0 to 10^13, got %s", path,
                        json_is_number(x) ? "one outside that range" : json_type_name(x));
        else
            c->job_limit[t] = (int64_t)(json_number_value(x) * 100 + 0.5);
    }
}

/*
 * consequences: what a job done under the pact pays. Every engagement is
 * released in full on completion unless a rule here says otherwise.
 */
static void parse_consequences(const json_t *v, pk_pact *p, pk_lint *l)
{
    static const char *const keys[] = {"withhold",       "refund_on_critical", "on_deadline",
                                       "dispute_window", "job_limits",         NULL};
    pk_consequences *c = &p->cons;
    json_t *arr, *crit;
    const char *dl;

    c->refund_on_critical = true;
    c->deadline_refund = true;
    c->dispute_window_ms = 86400000; /* a day */
    for (int t = 0; t < PK_TIERS; t++)
        c->job_limit[t] = t >= PACTUM__V1__TIER__TIER_CONTAINED ? 0 : -1;
    if (!v)
        return;
    if (!json_is_object(v)) {
        pk_lint_add(l, "consequences: expected an object, got %s", json_type_name(v));
        return;
    }
    c->present = true;
    check_keys(v, "consequences", keys, l);
    if ((arr = json_object_get(v, "withhold"))) {
        if (!json_is_array(arr) || json_array_size(arr) > PK_WITHHOLD_MAX)
            pk_lint_add(l, "consequences.withhold: expected an array of up to %d rules, got %s",
                        PK_WITHHOLD_MAX, json_is_array(arr) ? "more" : json_type_name(arr));
        else
            for (size_t i = 0; i < json_array_size(arr); i++)
                parse_withhold_rule(json_array_get(arr, i), i, p, c, l);
    }
    if ((crit = json_object_get(v, "refund_on_critical"))) {
        if (!json_is_boolean(crit))
            pk_lint_add(l, "consequences.refund_on_critical: expected true or false, got %s",
                        json_type_name(crit));
        else
            c->refund_on_critical = json_is_true(crit);
    }
    if ((dl = get_str(v, "on_deadline", "consequences", false, l))) {
        if (strcmp(dl, "refund") == 0 || strcmp(dl, "settle") == 0)
            c->deadline_refund = dl[0] == 'r';
        else
            pk_lint_add(l, "consequences.on_deadline: expected one of refund, settle, got '%s'",
                        dl);
    }
    if (json_object_get(v, "dispute_window"))
        c->dispute_window_ms =
            get_duration(v, "dispute_window", "consequences", false, 0, 90LL * 86400000, l);
    parse_job_limits(json_object_get(v, "job_limits"), c, l);
}

pk_status pk_pact_parse(const char *text, size_t len, pk_pact **out, pk_lint *l)
{
    static const char *const top[] = {
        "pactum",         "id",        "agent",      "title",        "clauses", "governance",
        "counterparties", "review_by", "review_cap", "consequences", NULL};
    json_error_t jerr;
    json_t *doc, *clauses, *ver;
    pk_pact *p = NULL;
    const char *s;
    size_t before = l->n;

    if (len > PK_PACT_MAX_BYTES) {
        pk_lint_add(l, "document: %zu bytes; a pact may be at most %d bytes", len,
                    PK_PACT_MAX_BYTES);
        return PK_ERR(PK_ETOOBIG, "pact document is %zu bytes; at most %d", len, PK_PACT_MAX_BYTES);
    }
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        pk_lint_add(l, "line %d, column %d: not valid JSON: %s", jerr.line, jerr.column, jerr.text);
        return PK_ERR(PK_EDECODE, "pact is not valid JSON: %s (line %d)", jerr.text, jerr.line);
    }
    if (!json_is_object(doc)) {
        pk_lint_add(l, "document: expected a JSON object, got %s", json_type_name(doc));
        json_decref(doc);
        return PK_ERR(PK_EINVAL, "pact must be a JSON object");
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        json_decref(doc);
        return PK_ERR(PK_ENOMEM, "cannot allocate pact");
    }
    check_keys(doc, "", top, l);
    ver = json_object_get(doc, "pactum");
    if (!ver)
        pk_lint_add(l, "pactum: required field is missing (the language version, 1)");
    else if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        pk_lint_add(l, "pactum: expected language version 1, got %s",
                    json_is_integer(ver) ? "another version" : json_type_name(ver));
    if ((s = get_str(doc, "id", "", true, l))) {
        if (pk_id_check("id", s) != PK_OK)
            pk_lint_add(l, "id: %s", pk_error_msg());
        else
            p->id = strdup(s);
    }
    if ((s = get_str(doc, "agent", "", true, l))) {
        if (pk_id_check("agent", s) != PK_OK)
            pk_lint_add(l, "agent: %s", pk_error_msg());
        else
            p->agent = strdup(s);
    }
    p->title = dup_or_null(get_str(doc, "title", "", false, l));
    clauses = json_object_get(doc, "clauses");
    if (!clauses) {
        pk_lint_add(l, "clauses: required field is missing (an array of clauses)");
    } else if (!json_is_array(clauses) || json_array_size(clauses) == 0 ||
               json_array_size(clauses) > PK_PACT_MAX_CLAUSES) {
        char got[48];
        if (json_is_array(clauses))
            snprintf(got, sizeof(got), "%zu clauses", json_array_size(clauses));
        pk_lint_add(l, "clauses: expected an array of 1 to %d clauses, got %s", PK_PACT_MAX_CLAUSES,
                    json_is_array(clauses) ? got : json_type_name(clauses));
    } else {
        size_t n = json_array_size(clauses);
        p->clauses = calloc(n, sizeof(*p->clauses));
        if (!p->clauses) {
            pk_pact_free(p);
            json_decref(doc);
            return PK_ERR(PK_ENOMEM, "cannot allocate clauses");
        }
        p->n_clauses = n;
        for (size_t i = 0; i < n; i++) {
            char path[32];
            snprintf(path, sizeof(path), "clauses[%zu]", i);
            parse_clause(json_array_get(clauses, i), path, &p->clauses[i], l);
            for (size_t j = 0; j < i && p->clauses[i].id; j++) {
                if (p->clauses[j].id && strcmp(p->clauses[j].id, p->clauses[i].id) == 0)
                    pk_lint_add(l, "%s.id: '%s' is already the id of clauses[%zu]", path,
                                p->clauses[i].id, j);
            }
        }
    }
    pk_governance_defaults(&p->gov);
    if (json_object_get(doc, "governance"))
        parse_governance(json_object_get(doc, "governance"), &p->gov, l);
    parse_counterparties(doc, p, l);
    parse_review(doc, p, l);
    parse_consequences(json_object_get(doc, "consequences"), p, l);
    json_decref(doc);
    if (l->n > before) {
        pk_pact_free(p);
        return PK_ERR(PK_EINVAL, "pact has %zu problem%s; first: %s", l->n - before,
                      l->n - before == 1 ? "" : "s", l->msgs[before]);
    }
    *out = p;
    return PK_OK;
}
