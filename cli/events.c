/*
 * event publish: build events, sign them (one envelope per --batch events),
 * publish them on pactum.raw.<signer> with JetStream acknowledgement, and wait
 * for ingest's receipt of each envelope: what it accepted, what it refused
 * and why (exit 1 when anything was refused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pk/clock.h"

#define MAX_FIELDS CLI_MANY_MAX /* metrics, labels: as many as --metric may be repeated */

typedef struct event_spec {
    const char *signer; /* --agent: who signs */
    const char *about;  /* --about: the agent the events are about (default: signer) */
    const char *key;    /* --key */
    const char *kind;   /* --kind */
    const char *id;     /* --id (with --count > 1: a prefix) */
    const char *action, *tool, *resource, *currency;
    const char *engagement; /* --engagement */
    double amount;
    int64_t ts_ms;   /* --ts, 0 = now */
    long count;      /* --count */
    long batch;      /* --batch */
    int64_t wait_ms; /* --wait: for ingest's receipts; 0 with --no-wait */
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

/* Metrics (NAME=NUMBER) and labels (NAME=TEXT) from the command line, in s's storage. */
static int pairs(const cli_call *c, event_spec *s)
{
    const char *const *vals;
    size_t n = cli_get_all(c, "metric", &vals);

    for (size_t i = 0; i < n; i++) {
        char *name = (char *)vals[i], *val = split_pair(name), *end;
        Pactum__V1__Metric *m = &s->metrics[s->n_metrics];
        if (!val)
            return cli_usage_error("--metric needs NAME=NUMBER, got '%s'", name);
        pactum__v1__metric__init(m);
        m->name = name;
        m->value = strtod(val, &end);
        if (*end || end == val)
            return cli_usage_error("--metric %s: '%s' is not a number", name, val);
        s->mp[s->n_metrics++] = m;
    }
    n = cli_get_all(c, "label", &vals);
    for (size_t i = 0; i < n; i++) {
        char *name = (char *)vals[i], *val = split_pair(name);
        Pactum__V1__Label *l = &s->labels[s->n_labels];
        if (!val)
            return cli_usage_error("--label needs NAME=TEXT, got '%s'", name);
        pactum__v1__label__init(l);
        l->name = name;
        l->value = val;
        s->lp[s->n_labels++] = l;
    }
    return CLI_OK;
}

static int parse(const cli_call *c, event_spec *s)
{
    uint64_t ts = 0, count = 1, batch = 1;
    int64_t wait_ms = 10000;
    int code;

    s->signer = cli_get(c, "agent");
    s->about = cli_get(c, "about");
    s->key = cli_get(c, "key");
    s->kind = cli_get(c, "kind");
    s->id = cli_get(c, "id");
    s->action = cli_get(c, "action");
    s->tool = cli_get(c, "tool");
    s->resource = cli_get(c, "resource");
    s->engagement = cli_get(c, "engagement");
    s->currency = cli_get(c, "currency");
    if ((code = cli_get_double(c, "amount", 0, &s->amount)) != CLI_OK ||
        (code = cli_get_u64(c, "ts", 1, INT64_MAX, &ts)) != CLI_OK ||
        (code = cli_get_u64(c, "count", 1, 1000000, &count)) != CLI_OK ||
        (code = cli_get_u64(c, "batch", 1, PK_BATCH_MAX, &batch)) != CLI_OK ||
        (code = cli_get_duration(c, "wait", 1, 3600000, &wait_ms)) != CLI_OK)
        return code;
    s->wait_ms = cli_has(c, "no-wait") ? 0 : wait_ms;
    s->ts_ms = (int64_t)ts;
    s->count = (long)count;
    s->batch = (long)batch;
    return pairs(c, s);
}

/* What publishing keeps between envelopes. */
typedef struct sending {
    Pactum__V1__Event *evs, **evp; /* the events of one envelope */
    char **ids;                    /* their ids */
    char prefix[40];               /* the id prefix */
    char subject[128];             /* pactum.raw.<signer> */
    uint64_t first_seq, last_seq;  /* where the envelopes landed in PACTUM_RAW */
    long sent, envelopes, repeats; /* events, envelopes, envelopes the stream already held */
    struct {
        uint64_t seq; /* an envelope ingest is to answer for */
        long events;  /* its events */
    } * waiting;
    size_t n_waiting;
    long answered, accepted; /* events ingest answered for, and accepted */
    json_t *refusals;        /* with --json: each refusal */
    char verdict[96];        /* ": 5 accepted, 1 refused", once answered */
} sending;

/* Fill the next n events (from the sent-th) of s into out's storage. */
static int fill_events(const event_spec *s, sending *out, long n)
{
    for (long i = 0; i < n; i++) {
        Pactum__V1__Event *e = &out->evs[i];
        pactum__v1__event__init(e);
        free(out->ids[i]);
        if (!(out->ids[i] = malloc(PK_EVENT_ID_MAX + 1)))
            return cli_error(CLI_IO, "out of memory");
        if (s->count == 1 && s->id)
            snprintf(out->ids[i], PK_EVENT_ID_MAX + 1, "%s", s->id);
        else
            snprintf(out->ids[i], PK_EVENT_ID_MAX + 1, "%s-%ld", out->prefix, out->sent + i);
        e->event_id = out->ids[i];
        e->agent_id = (char *)(s->about ? s->about : s->signer);
        e->ts_ms = s->ts_ms ? s->ts_ms : pk_now_ms();
        e->kind = (char *)s->kind;
        e->action = (char *)(s->action ? s->action : "");
        e->tool = (char *)(s->tool ? s->tool : "");
        e->resource = (char *)(s->resource ? s->resource : "");
        e->currency = (char *)(s->currency ? s->currency : "");
        e->engagement_id = (char *)(s->engagement ? s->engagement : "");
        e->amount = s->amount;
        e->n_metrics = s->n_metrics;
        e->metrics = (Pactum__V1__Metric **)s->mp;
        e->n_labels = s->n_labels;
        e->labels = (Pactum__V1__Label **)s->lp;
        out->evp[i] = e;
    }
    return CLI_OK;
}

/* Sign n events into one envelope and publish it with JetStream acknowledgement. */
static int send_envelope(pk_bus *bus, const event_spec *s, const pk_keypair *kp, sending *out,
                         long n)
{
    Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
    uint8_t *payload = NULL, *env = NULL;
    size_t plen = 0, elen = 0;
    char msg_id[PK_ID_MAX + PK_EVENT_ID_MAX + 8];
    uint64_t seq = 0;
    bool dup = false;
    pk_status st;
    int code;

    if ((code = fill_events(s, out, n)) != CLI_OK)
        return code;
    b.n_events = (size_t)n;
    b.events = out->evp;
    b.receipt = s->wait_ms > 0;
    if (pk_pack(&b.base, &payload, &plen) != PK_OK ||
        pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen, s->signer,
                         kp, &env, &elen) != PK_OK) {
        free(payload);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    snprintf(msg_id, sizeof(msg_id), "%s:%s:%ld", s->signer, out->ids[0], n);
    st = pk_bus_publish_sync(bus, out->subject, env, elen, msg_id, false, 0, &seq, &dup);
    free(payload);
    free(env);
    if (st != PK_OK && atomic_load(&bus->denied))
        return cli_error(CLI_BUS,
                         "permission denied: %s (a bus identity publishes only its own events, "
                         "on pactum.raw.<its id>)",
                         bus->denial);
    if (st != PK_OK)
        return cli_error(CLI_BUS, "publishing to %s failed after %ld events: %s", out->subject,
                         out->sent, pk_error_msg());
    if (!dup && s->wait_ms > 0) {
        void *more = realloc(out->waiting, (out->n_waiting + 1) * sizeof(*out->waiting));
        if (!more)
            return cli_error(CLI_IO, "out of memory");
        out->waiting = more;
        out->waiting[out->n_waiting].seq = seq;
        out->waiting[out->n_waiting++].events = n;
    }
    if (dup) {
        out->repeats++; /* the stream already holds this envelope: nothing new was sent */
    } else {
        if (!out->first_seq)
            out->first_seq = seq;
        out->last_seq = seq;
    }
    out->sent += n;
    out->envelopes++;
    return CLI_OK;
}

/* Take the receipt of one envelope we wait for, telling its refusals; false if not ours. */
static bool take_receipt(sending *o, const Pactum__V1__EnvelopeReceipt *r)
{
    size_t i = 0;

    while (i < o->n_waiting && o->waiting[i].seq != r->raw_seq)
        i++;
    if (i == o->n_waiting)
        return false;
    o->answered += o->waiting[i].events;
    o->waiting[i] = o->waiting[--o->n_waiting];
    o->accepted += r->accepted;
    for (size_t k = 0; k < r->n_refused; k++) {
        const Pactum__V1__Refusal *f = r->refused[k];
        if (o->refusals)
            json_array_append_new(
                o->refusals,
                json_pack("{s:I, s:s, s:s, s:s}", "raw_seq", (json_int_t)r->raw_seq, "event_id",
                          f->event_id, "reason", pk_reason_name(f->reason), "message", f->message));
        else if (f->event_id[0])
            fprintf(stderr, "pactum: refused event %s (%s): %s\n", f->event_id,
                    pk_reason_name(f->reason), f->message);
        else
            fprintf(stderr, "pactum: refused the envelope PACTUM_RAW #%llu (%s): %s\n",
                    (unsigned long long)r->raw_seq, pk_reason_name(f->reason), f->message);
    }
    return true;
}

/* Wait (bounded) for ingest's receipt of every envelope sent; CLI_OK when all came. */
static int wait_receipts(natsSubscription *rs, sending *o, int64_t wait_ms)
{
    int64_t deadline = pk_mono_ms() + wait_ms;

    while (o->n_waiting > 0) {
        int64_t left = deadline - pk_mono_ms();
        natsMsg *m = NULL;
        Pactum__V1__EnvelopeReceipt *r;
        if (left <= 0 || natsSubscription_NextMsg(&m, rs, left) != NATS_OK)
            break;
        r = pactum__v1__envelope_receipt__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                                 (const uint8_t *)natsMsg_GetData(m));
        if (r)
            take_receipt(o, r);
        if (r)
            pactum__v1__envelope_receipt__free_unpacked(r, NULL);
        natsMsg_Destroy(m);
    }
    snprintf(o->verdict, sizeof(o->verdict), ": %ld accepted, %ld refused", o->accepted,
             o->answered - o->accepted);
    if (o->n_waiting == 0)
        return o->accepted < o->answered ? CLI_FAIL : CLI_OK;
    return cli_error(CLI_BUS,
                     "ingest did not answer for %zu envelope%s within %lld ms; they are stored in "
                     "PACTUM_RAW and will be judged when it runs",
                     o->n_waiting, o->n_waiting == 1 ? "" : "s", (long long)wait_ms);
}

static void print_sent(const sending *o)
{
    if (cli.json)
        cli_print_json(json_pack(
            "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:O}", "subject", o->subject, "id_prefix",
            o->prefix, "events", (json_int_t)o->sent, "envelopes", (json_int_t)o->envelopes,
            "repeated_envelopes", (json_int_t)o->repeats, "first_seq", (json_int_t)o->first_seq,
            "last_seq", (json_int_t)o->last_seq, "accepted", (json_int_t)o->accepted, "refused",
            o->refusals ? o->refusals : json_array()));
    else if (o->repeats == o->envelopes)
        printf("nothing new: the stream already holds %s%ld envelope%s (same ids sent within the "
               "last 2 minutes)\n",
               o->envelopes == 1 ? "this " : "these ", o->envelopes, o->envelopes == 1 ? "" : "s");
    else
        printf("published %ld event%s in %ld signed envelope%s to %s (PACTUM_RAW #%llu..#%llu)%s"
               "%s\n",
               o->sent, o->sent == 1 ? "" : "s", o->envelopes, o->envelopes == 1 ? "" : "s",
               o->subject, (unsigned long long)o->first_seq, (unsigned long long)o->last_seq,
               o->repeats ? "; some were already there and were not sent again" : "", o->verdict);
}

static int publish(const event_spec *s)
{
    pk_keypair kp;
    pk_bus *bus = NULL;
    natsSubscription *rs = NULL;
    sending o = {0};
    char rsubject[128];
    int code = CLI_OK;

    if (pk_key_load(s->key, &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    cli.key_id = s->key; /* the signer connects as itself, if it has a bus identity */
    if (!(bus = cli_connect())) {
        pk_keypair_wipe(&kp);
        return CLI_BUS;
    }
    o.evs = calloc((size_t)s->batch, sizeof(*o.evs));
    o.evp = calloc((size_t)s->batch, sizeof(*o.evp));
    o.ids = calloc((size_t)s->batch, sizeof(*o.ids));
    if (!o.evs || !o.evp || !o.ids) {
        code = cli_error(CLI_IO, "out of memory");
        goto out;
    }
    {
        uint8_t rnd[6];
        char hex[13];
        randombytes_buf(rnd, sizeof(rnd));
        pk_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(o.prefix, sizeof(o.prefix), "%s", s->id ? s->id : hex);
    }
    snprintf(o.subject, sizeof(o.subject), PK_SUBJ_RAW, s->signer);
    /* listening before the first envelope goes out: no receipt can come too early */
    snprintf(rsubject, sizeof(rsubject), PK_SUBJ_INGEST_RECEIPT, s->signer);
    if (s->wait_ms > 0 && natsConnection_SubscribeSync(&rs, bus->nc, rsubject) != NATS_OK) {
        code = cli_error(CLI_BUS, "cannot listen on %s", rsubject);
        goto out;
    }
    o.refusals = cli.json ? json_array() : NULL;
    while (o.sent < s->count && code == CLI_OK)
        code = send_envelope(bus, s, &kp, &o,
                             s->count - o.sent < s->batch ? s->count - o.sent : s->batch);
    if (code == CLI_OK && s->wait_ms > 0) {
        code = wait_receipts(rs, &o, s->wait_ms);
        if (code == CLI_BUS && atomic_load(&bus->denied))
            cli_error(CLI_BUS, "permission denied: %s", bus->denial);
    }
    if (code == CLI_OK || code == CLI_FAIL)
        print_sent(&o);
out:
    natsSubscription_Destroy(rs);
    json_decref(o.refusals);
    free(o.waiting);
    pk_keypair_wipe(&kp);
    for (long i = 0; o.ids && i < s->batch; i++)
        free(o.ids[i]);
    free(o.ids);
    free(o.evs);
    free(o.evp);
    pk_bus_close(bus);
    return code;
}

int cmd_event_publish(const cli_call *c)
{
    event_spec s = {.count = 1, .batch = 1};
    int code;

    if ((code = parse(c, &s)) != CLI_OK)
        return code;
    return publish(&s);
}
