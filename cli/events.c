/*
 * event publish: build events, sign them (one envelope per --batch events),
 * and publish them on pactum.raw.<signer> with JetStream acknowledgement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

#define MAX_FIELDS 32

typedef struct event_spec {
    const char *signer; /* --agent: who signs */
    const char *about;  /* --about: the agent the events are about (default: signer) */
    const char *key;    /* --key */
    const char *kind;   /* --kind */
    const char *id;     /* --id (with --count > 1: a prefix) */
    const char *action, *tool, *resource, *currency;
    double amount;
    int64_t ts_ms; /* --ts, 0 = now */
    long count;    /* --count */
    long batch;    /* --batch */
    Pactum__V1__Metric metrics[MAX_FIELDS];
    Pactum__V1__Metric *mp[MAX_FIELDS];
    size_t n_metrics;
    Pactum__V1__Label labels[MAX_FIELDS];
    Pactum__V1__Label *lp[MAX_FIELDS];
    size_t n_labels;
} event_spec;

/* Split NAME=VALUE in place; returns the value or NULL. */
static char *split_pair(char *text)
{
    char *eq = strchr(text, '=');

    if (!eq || eq == text)
        return NULL;
    *eq = '\0';
    return eq + 1;
}

static int parse(cli_args *a, event_spec *s)
{
    const char *v;
    int r;

    while (a->i < a->argc) {
        if ((r = cli_opt(a, "agent", &s->signer)) || (r = cli_opt(a, "about", &s->about)) ||
            (r = cli_opt(a, "key", &s->key)) || (r = cli_opt(a, "kind", &s->kind)) ||
            (r = cli_opt(a, "id", &s->id)) || (r = cli_opt(a, "action", &s->action)) ||
            (r = cli_opt(a, "tool", &s->tool)) || (r = cli_opt(a, "resource", &s->resource)) ||
            (r = cli_opt(a, "currency", &s->currency))) {
            if (r < 0)
                return cli_usage_error("%s needs a value", a->argv[a->i]);
        } else if ((r = cli_opt(a, "amount", &v))) {
            char *end;
            if (r < 0 || (s->amount = strtod(v, &end), *end) || s->amount < 0)
                return cli_usage_error("--amount needs a number >= 0");
        } else if ((r = cli_opt(a, "ts", &v))) {
            char *end;
            if (r < 0 || (s->ts_ms = strtoll(v, &end, 10), *end) || s->ts_ms <= 0)
                return cli_usage_error("--ts needs Unix milliseconds");
        } else if ((r = cli_opt(a, "count", &v))) {
            char *end;
            if (r < 0 || (s->count = strtol(v, &end, 10), *end) || s->count < 1 ||
                s->count > 1000000)
                return cli_usage_error("--count needs a number from 1 to 1000000");
        } else if ((r = cli_opt(a, "batch", &v))) {
            char *end;
            if (r < 0 || (s->batch = strtol(v, &end, 10), *end) || s->batch < 1 ||
                s->batch > PK_BATCH_MAX)
                return cli_usage_error("--batch needs a number from 1 to %d", PK_BATCH_MAX);
        } else if ((r = cli_opt(a, "metric", &v))) {
            char *name = r > 0 ? (char *)v : NULL, *val, *end;
            Pactum__V1__Metric *m = &s->metrics[s->n_metrics];
            if (!name || !(val = split_pair(name)) || s->n_metrics == MAX_FIELDS)
                return cli_usage_error("--metric needs NAME=NUMBER (at most %d)", MAX_FIELDS);
            pactum__v1__metric__init(m);
            m->name = name;
            m->value = strtod(val, &end);
            if (*end || end == val)
                return cli_usage_error("--metric %s: '%s' is not a number", name, val);
            s->mp[s->n_metrics++] = m;
        } else if ((r = cli_opt(a, "label", &v))) {
            char *name = r > 0 ? (char *)v : NULL, *val;
            Pactum__V1__Label *l = &s->labels[s->n_labels];
            if (!name || !(val = split_pair(name)) || s->n_labels == MAX_FIELDS)
                return cli_usage_error("--label needs NAME=TEXT (at most %d)", MAX_FIELDS);
            pactum__v1__label__init(l);
            l->name = name;
            l->value = val;
            s->lp[s->n_labels++] = l;
        } else {
            return cli_usage_error("event publish: unexpected '%s'", a->argv[a->i]);
        }
    }
    if (!s->signer || !s->key || !s->kind)
        return cli_usage_error("event publish needs --agent, --key and --kind");
    return CLI_OK;
}

static int publish(const event_spec *s)
{
    pk_keypair kp;
    pk_bus *bus = NULL;
    Pactum__V1__Event *evs = NULL, **evp = NULL;
    char **ids = NULL, subject[128], prefix[40];
    uint64_t first_seq = 0, last_seq = 0;
    long sent = 0, envelopes = 0, repeats = 0;
    int code = CLI_OK;

    if (pk_key_load(s->key, &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    if (!(bus = cli_connect())) {
        pk_keypair_wipe(&kp);
        return CLI_BUS;
    }
    evs = calloc((size_t)s->batch, sizeof(*evs));
    evp = calloc((size_t)s->batch, sizeof(*evp));
    ids = calloc((size_t)s->batch, sizeof(*ids));
    if (!evs || !evp || !ids) {
        code = cli_error(CLI_IO, "out of memory");
        goto out;
    }
    {
        uint8_t rnd[6];
        char hex[13];
        randombytes_buf(rnd, sizeof(rnd));
        pk_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(prefix, sizeof(prefix), "%s", s->id ? s->id : hex);
    }
    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, s->signer);
    while (sent < s->count) {
        long n = s->count - sent < s->batch ? s->count - sent : s->batch;
        Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
        uint8_t *payload = NULL, *env = NULL;
        size_t plen = 0, elen = 0;
        char msg_id[PK_ID_MAX + PK_EVENT_ID_MAX + 8];
        uint64_t seq = 0;
        bool dup = false;
        pk_status st;

        for (long i = 0; i < n; i++) {
            Pactum__V1__Event *e = &evs[i];
            pactum__v1__event__init(e);
            free(ids[i]);
            ids[i] = malloc(PK_EVENT_ID_MAX + 1);
            if (!ids[i]) {
                code = cli_error(CLI_IO, "out of memory");
                goto out;
            }
            if (s->count == 1 && s->id)
                snprintf(ids[i], PK_EVENT_ID_MAX + 1, "%s", s->id);
            else
                snprintf(ids[i], PK_EVENT_ID_MAX + 1, "%s-%ld", prefix, sent + i);
            e->event_id = ids[i];
            e->agent_id = (char *)(s->about ? s->about : s->signer);
            e->ts_ms = s->ts_ms ? s->ts_ms : pk_now_ms();
            e->kind = (char *)s->kind;
            e->action = (char *)(s->action ? s->action : "");
            e->tool = (char *)(s->tool ? s->tool : "");
            e->resource = (char *)(s->resource ? s->resource : "");
            e->currency = (char *)(s->currency ? s->currency : "");
            e->amount = s->amount;
            e->n_metrics = s->n_metrics;
            e->metrics = (Pactum__V1__Metric **)s->mp;
            e->n_labels = s->n_labels;
            e->labels = (Pactum__V1__Label **)s->lp;
            evp[i] = e;
        }
        b.n_events = (size_t)n;
        b.events = evp;
        if (pk_pack(&b.base, &payload, &plen) != PK_OK ||
            pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen,
                             s->signer, &kp, &env, &elen) != PK_OK) {
            free(payload);
            code = cli_error(CLI_IO, "%s", pk_error_msg());
            goto out;
        }
        snprintf(msg_id, sizeof(msg_id), "%s:%s:%ld", s->signer, ids[0], n);
        st = pk_bus_publish_sync(bus, subject, env, elen, msg_id, false, 0, &seq, &dup);
        free(payload);
        free(env);
        if (st != PK_OK) {
            code = cli_error(CLI_BUS, "publishing to %s failed after %ld events: %s", subject, sent,
                             pk_error_msg());
            goto out;
        }
        if (dup) {
            repeats++; /* the stream already holds this envelope: nothing new was sent */
        } else {
            if (!first_seq)
                first_seq = seq;
            last_seq = seq;
        }
        sent += n;
        envelopes++;
    }
    if (cli.json)
        cli_print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "subject", subject,
                                 "id_prefix", prefix, "events", (json_int_t)sent, "envelopes",
                                 (json_int_t)envelopes, "repeated_envelopes", (json_int_t)repeats,
                                 "first_seq", (json_int_t)first_seq, "last_seq",
                                 (json_int_t)last_seq));
    else if (repeats == envelopes)
        printf("nothing new: the stream already holds %s%ld envelope%s (same ids sent within the "
               "last 2 minutes)\n",
               envelopes == 1 ? "this " : "these ", envelopes, envelopes == 1 ? "" : "s");
    else
        printf("published %ld event%s in %ld signed envelope%s to %s (PACTUM_RAW #%llu..#%llu)%s\n",
               sent, sent == 1 ? "" : "s", envelopes, envelopes == 1 ? "" : "s", subject,
               (unsigned long long)first_seq, (unsigned long long)last_seq,
               repeats ? "; some were already there and were not sent again" : "");
out:
    pk_keypair_wipe(&kp);
    for (long i = 0; ids && i < s->batch; i++)
        free(ids[i]);
    free(ids);
    free(evs);
    free(evp);
    pk_bus_close(bus);
    return code;
}

int cmd_event(cli_args *a)
{
    event_spec s = {.count = 1, .batch = 1};
    int code;

    if (a->i >= a->argc || strcmp(a->argv[a->i], "publish") != 0)
        return cli_usage_error("event: expected 'publish'");
    a->i++;
    if ((code = parse(a, &s)) != CLI_OK)
        return code;
    return publish(&s);
}
