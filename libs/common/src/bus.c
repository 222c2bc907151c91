#include "pk/bus.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/buspolicy.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/natsauth.h"

pk_status pk_nats_err(natsStatus s, jsErrCode jerr, const char *what)
{
    const char *detail = nats_GetLastError(NULL);

    if (s == NATS_TIMEOUT)
        return PK_ERR(PK_ETIMEOUT, "%s: timed out", what);
    if (jerr)
        return PK_ERR(PK_EBUS, "%s: %s (JetStream error %d%s%s)", what, natsStatus_GetText(s),
                      (int)jerr, detail && *detail ? ": " : "", detail ? detail : "");
    return PK_ERR(PK_EBUS, "%s: %s%s%s", what, natsStatus_GetText(s), detail && *detail ? ": " : "",
                  detail ? detail : "");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    pk_bus *bus = closure;

    atomic_store(&bus->connected, false);
    if (!atomic_load(&bus->closing))
        PK_WARN("lost the NATS connection; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    pk_bus *bus = closure;

    atomic_store(&bus->connected, true);
    atomic_fetch_add(&bus->reconnects, 1);
    PK_INFO("NATS connection restored");
}

/* The client runs callbacks on its own thread; this is the last one it runs
 * for a connection, so pk_bus_close waits for it before freeing the bus. */
static void on_closed(natsConnection *nc, void *closure)
{
    pk_bus *bus = closure;

    atomic_store(&bus->closed, true);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    pk_bus *bus = closure;
    const char *text = NULL;

    if (err == NATS_NOT_PERMITTED) {
        natsConnection_GetLastError(nc, &text);
        snprintf(bus->denial, sizeof(bus->denial), "%s", text && *text ? text : "not permitted");
        atomic_store(&bus->denied, true);
        atomic_fetch_add(&bus->denials, 1);
        pk_incident("the bus refused %s: %s", bus->name, bus->denial);
        return;
    }
    PK_WARN("NATS asynchronous error: %s", natsStatus_GetText(err));
}

/* The user JWT, when connecting with a JWT and a key (the client frees it). */
static natsStatus user_jwt(char **jwt, char **err, void *closure)
{
    pk_bus *bus = closure;

    return (*jwt = strdup(bus->jwt)) ? NATS_OK : NATS_NO_MEMORY;
}

/* The key's signature of the server's nonce (the client frees it). */
static natsStatus sign_nonce(char **err, unsigned char **sig, int *len, const char *nonce,
                             void *closure)
{
    pk_bus *bus = closure;

    if (!(*sig = malloc(PK_SIG_BYTES)))
        return NATS_NO_MEMORY;
    pk_sign(&bus->nkey, (const uint8_t *)nonce, strlen(nonce), *sig);
    *len = PK_SIG_BYTES;
    return NATS_OK;
}

/* Who the bus knows us as: credentials, the reply inbox that goes with them, TLS. */
static pk_status set_identity(pk_bus *bus, natsOptions *no, const pk_bus_opts *o)
{
    natsStatus s = NATS_OK;

    if (o->creds && *o->creds) {
        char *jwt = NULL;
        pk_keypair kp;
        pk_status st = pk_creds_read(o->creds, &jwt, &kp);
        if (st != PK_OK)
            return st;
        free(jwt);
        pk_bus_inbox(kp.pk, bus->inbox);
        pk_keypair_wipe(&kp);
        s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
    } else if (o->jwt && o->nkey) {
        if (!(bus->jwt = strdup(o->jwt)))
            return PK_ERR(PK_ENOMEM, "out of memory");
        bus->nkey = *o->nkey;
        pk_bus_inbox(bus->nkey.pk, bus->inbox);
        s = natsOptions_SetUserCredentialsCallbacks(no, user_jwt, bus, sign_nonce, bus);
    } else if (o->user && *o->user) {
        s = natsOptions_SetUserInfo(no, o->user, o->password ? o->password : "");
    }
    if (s == NATS_OK && bus->inbox[0])
        s = natsOptions_SetCustomInboxPrefix(no, bus->inbox);
    if (s == NATS_OK && o->ca && *o->ca &&
        ((s = natsOptions_SetSecure(no, true)) != NATS_OK ||
         (s = natsOptions_LoadCATrustedCertificates(no, o->ca)) != NATS_OK))
        return pk_nats_err(s, 0, o->ca);
    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, "NATS credentials");
}

static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    pk_bus *bus = closure;

    if (atomic_load(&bus->ack_hooked)) {
        const char *subject = natsMsg_GetSubject(msg);
        pthread_mutex_lock(&bus->ack_mu);
        if (bus->ack_fn && subject &&
            strncmp(subject, bus->ack_prefix, strlen(bus->ack_prefix)) == 0) {
            char err[256];
            if (!pa)
                snprintf(err, sizeof(err), "%s%s%s", natsStatus_GetText(pae ? pae->Err : NATS_ERR),
                         pae && pae->ErrText ? ": " : "", pae && pae->ErrText ? pae->ErrText : "");
            bus->ack_fn(bus->ack_ctx, msg, pa ? NULL : err);
            pthread_mutex_unlock(&bus->ack_mu);
            return;
        }
        pthread_mutex_unlock(&bus->ack_mu);
    }
    if (pa) {
        atomic_fetch_add(&bus->pub_ok, 1);
        if (pa->Duplicate)
            atomic_fetch_add(&bus->pub_dup, 1);
    } else {
        atomic_fetch_add(&bus->pub_err, 1);
        if (pae)
            PK_WARN("publish to %s failed: %s%s%s", natsMsg_GetSubject(msg),
                    natsStatus_GetText(pae->Err), pae->ErrText ? ": " : "",
                    pae->ErrText ? pae->ErrText : "");
    }
    natsMsg_Destroy(msg);
}

#define SEEDS_MAX 16

/*
 * The servers of a seed list, "nats://a:4222,nats://b:4222" (spaces around the
 * commas allowed): the client tries them in turn and reconnects to any of them,
 * and to the cluster's other members it learns from the server.
 */
static natsStatus set_servers(natsOptions *no, const char *list)
{
    char buf[2048], *seeds[SEEDS_MAX], *save = NULL;
    int n = 0;

    if (!list || strlen(list) >= sizeof(buf))
        return NATS_INVALID_ARG;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        while (*t == ' ' || *t == '\t')
            t++;
        end = t + strlen(t);
        while (end > t && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*t)
            continue;
        if (n == SEEDS_MAX)
            return NATS_INVALID_ARG;
        seeds[n++] = t;
    }
    if (n == 0)
        return NATS_INVALID_ARG;
    return natsOptions_SetServers(no, (const char **)seeds, n);
}

pk_status pk_bus_connect(pk_bus **out, const pk_bus_opts *o)
{
    pk_bus *bus = calloc(1, sizeof(*bus));
    natsOptions *no = NULL;
    jsOptions jo;
    natsStatus s;
    pk_status st = PK_OK;
    int64_t deadline = pk_mono_ms() + o->connect_wait_ms;
    int attempts = 0;

    if (!bus)
        return PK_ERR(PK_ENOMEM, "cannot allocate bus");
    snprintf(bus->name, sizeof(bus->name), "%s", o->name ? o->name : "pactum");
    if ((s = natsOptions_Create(&no)) != NATS_OK) {
        st = pk_nats_err(s, 0, "NATS options");
        goto fail;
    }
    if (set_servers(no, o->url) != NATS_OK) {
        st = PK_ERR(PK_EINVAL,
                    "'%s' is not a NATS server URL or a comma-separated list of at most %d of "
                    "them",
                    o->url ? o->url : "", SEEDS_MAX);
        goto fail;
    }
    if ((s = natsOptions_SetNoRandomize(no, false)) != NATS_OK ||
        (s = natsOptions_SetName(no, bus->name)) != NATS_OK ||
        (s = natsOptions_SetMaxReconnect(no, -1)) != NATS_OK ||
        (s = natsOptions_SetReconnectWait(no, 250)) != NATS_OK ||
        (s = natsOptions_SetReconnectBufSize(no, 64 * 1024 * 1024)) != NATS_OK ||
        (s = natsOptions_SetPingInterval(no, 5000)) != NATS_OK ||
        (s = natsOptions_SetMaxPingsOut(no, 3)) != NATS_OK ||
        (s = natsOptions_SetTimeout(no, 2000)) != NATS_OK ||
        (s = natsOptions_SetSendAsap(no, o->send_asap)) != NATS_OK ||
        (s = natsOptions_SetDisconnectedCB(no, on_disconnected, bus)) != NATS_OK ||
        (s = natsOptions_SetReconnectedCB(no, on_reconnected, bus)) != NATS_OK ||
        (s = natsOptions_SetClosedCB(no, on_closed, bus)) != NATS_OK ||
        (s = natsOptions_SetErrorHandler(no, on_async_error, bus)) != NATS_OK) {
        st = pk_nats_err(s, 0, "NATS options");
        goto fail;
    }
    if ((st = set_identity(bus, no, o)) != PK_OK)
        goto fail;
    for (;;) {
        s = natsConnection_Connect(&bus->nc, no);
        if (s == NATS_OK)
            break;
        attempts++;
        if (pk_mono_ms() >= deadline || (o->stop && *o->stop)) {
            const char *why = natsStatus_GetText(s);
            const char *hint =
                strstr(why, "Authentication") || strstr(why, "Authorization")
                    ? "the server does not accept this identity: check the credentials "
                      "(--creds, PACTUM_NATS_CREDS, KEY.jwt); after a key rotation use the "
                      "newly issued ones"
                : s == NATS_SSL_ERROR || strstr(why, "SSL") || strstr(why, "TLS")
                    ? "TLS failed: check the CA (--ca, PACTUM_NATS_CA) against the server's "
                      "certificate"
                    : "is nats-server running?";
            st = PK_ERR(PK_EBUS, "cannot connect to NATS at %s: %s (%d attempt%s); %s", o->url, why,
                        attempts, attempts == 1 ? "" : "s", hint);
            goto fail;
        }
        if (attempts == 1)
            PK_WARN("NATS at %s is not reachable yet (%s); retrying", o->url,
                    natsStatus_GetText(s));
        pk_sleep_ms(250);
    }
    atomic_store(&bus->connected, true);
    bus->send_asap = o->send_asap;
    pthread_mutex_init(&bus->ack_mu, NULL);
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.MaxPending = 8192;
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = bus;
    if ((s = natsConnection_JetStream(&bus->js, bus->nc, &jo)) != NATS_OK) {
        st = pk_nats_err(s, 0, "JetStream context");
        goto fail;
    }
    natsOptions_Destroy(no);
    *out = bus;
    return PK_OK;
fail:
    natsOptions_Destroy(no);
    if (bus->nc) {
        natsConnection_Close(bus->nc);
        for (int i = 0; i < 2000 && !atomic_load(&bus->closed); i++)
            pk_sleep_ms(1);
        natsConnection_Destroy(bus->nc);
    }
    free(bus->jwt);
    pk_keypair_wipe(&bus->nkey);
    free(bus);
    return st;
}

void pk_bus_close(pk_bus *bus)
{
    if (!bus)
        return;
    atomic_store(&bus->closing, true);
    if (bus->js) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2000;
        js_PublishAsyncComplete(bus->js, &po);
        jsCtx_Destroy(bus->js);
    }
    if (bus->nc) {
        natsConnection_FlushTimeout(bus->nc, 1000);
        natsConnection_Close(bus->nc);
        /* Bounded: 2 s in 1 ms steps. */
        for (int i = 0; i < 2000 && !atomic_load(&bus->closed); i++)
            pk_sleep_ms(1);
        natsConnection_Destroy(bus->nc);
    }
    free(bus->jwt);
    pk_keypair_wipe(&bus->nkey);
    pthread_mutex_destroy(&bus->ack_mu);
    free(bus);
}

/* --- Streams --------------------------------------------------------------- */

typedef struct stream_def {
    const char *name;      /* stream name */
    const char *subject;   /* its one subject pattern */
    int64_t max_age_ms;    /* 0 = keep forever */
    int64_t dup_window_ms; /* de-duplication window */
    int32_t max_msg_size;  /* largest message accepted */
    bool deny_delete;      /* evidence may not be deleted */
} stream_def;

static const stream_def streams[] = {
    /* a pact record holds the document twice (document and submission) */
    {PK_STREAM_REGISTRY, "pactum.registry.*.*", 0, 120000, 1024 * 1024 - 4096, true},
    {PK_STREAM_RAW, "pactum.raw.*", 7LL * 86400000, 120000, 1024 * 1024, false},
    {PK_STREAM_EVENTS, "pactum.events.*.*", 0, 600000, 256 * 1024, true},
    /* verdicts (.v) and governance records (.g), one order per partition */
    {PK_STREAM_VERDICTS, "pactum.verdicts.>", 0, 600000, 256 * 1024, true},
    {PK_STREAM_TRUST, "pactum.trust.*", 0, 600000, 512 * 1024, true},
    {PK_STREAM_REJECTED, "pactum.rejected.*", 30LL * 86400000, 120000, 256 * 1024, false},
    /* authorize decisions, kept for audit */
    {PK_STREAM_AUDIT, "pactum.audit.*", 0, 600000, 64 * 1024, true},
    /* the transparency log's leaves, in order */
    {PK_STREAM_LOG, "pactum.log.leaves", 0, 600000, 1024 * 1024, true},
    /* approvals used (one message per approval, never twice); approvals last a day at most */
    {PK_STREAM_APPROVALS, "pactum.approvals.*", 2LL * 86400000, 120000, 64 * 1024, true},
};

/* The replicas asked for each stream: PACTUM_STREAM_REPLICAS (1 to 5; default 1). */
static pk_status replicas_asked(int64_t *out)
{
    const char *v = getenv("PACTUM_STREAM_REPLICAS");
    char *end = NULL;
    long n;

    *out = 1;
    if (!v || !*v)
        return PK_OK;
    n = strtol(v, &end, 10);
    if (*end || n < 1 || n > 5)
        return PK_ERR(PK_EINVAL, "PACTUM_STREAM_REPLICAS: expected 1 to 5, got '%s'", v);
    *out = n;
    return PK_OK;
}

/*
 * A JetStream answer worth asking again: the server or the cluster is not
 * ready yet (timed out, no responders, no leader, not enough peers), or
 * another service creating the same stream at this moment ("name in use",
 * "subjects overlap").
 */
static bool transient(natsStatus s, jsErrCode jerr)
{
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || jerr == JSClusterNotAvailErr ||
           jerr == JSClusterNoPeersErr || jerr == JSInsufficientResourcesErr ||
           jerr == JSStreamNameExistErr || jerr == JSStreamSubjectOverlapErr;
}

/* An existing stream with fewer replicas than asked: raise them, or say who can. */
static void reconcile_replicas(pk_bus *bus, const jsStreamInfo *si, int64_t asked)
{
    jsStreamInfo *after = NULL;
    jsStreamConfig sc;
    jsErrCode jerr = 0;
    natsStatus s;

    if (si->Config->Replicas >= asked)
        return;
    sc = *si->Config;
    sc.Replicas = asked;
    s = js_UpdateStream(&after, bus->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(after);
    if (s == NATS_OK)
        PK_INFO("stream %s now has %lld replicas (had %lld)", sc.Name, (long long)asked,
                (long long)si->Config->Replicas);
    else
        PK_WARN("stream %s has %lld replica%s, %lld asked (PACTUM_STREAM_REPLICAS), and could "
                "not be changed here (%s): run 'pactum setup streams' with the setup user",
                sc.Name, (long long)si->Config->Replicas, si->Config->Replicas == 1 ? "" : "s",
                (long long)asked, natsStatus_GetText(s));
}

pk_status pk_streams_ensure(pk_bus *bus, uint32_t *partitions)
{
    char desc[64];
    int64_t replicas, give_up = pk_mono_ms() + 60000;
    int attempt = 0; /* tries of the stream at hand */
    pk_status st = replicas_asked(&replicas);

    if (st != PK_OK)
        return st;
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        const stream_def *d = &streams[i];
        jsStreamInfo *si = NULL;
        jsStreamConfig sc;
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, bus->js, d->name, NULL, &jerr);
        const char *subjects[1] = {d->subject};

        if (s == NATS_OK) {
            if (strcmp(d->name, PK_STREAM_EVENTS) == 0 && si->Config->Description) {
                unsigned p = 0;
                if (sscanf(si->Config->Description, "pactum partitions=%u", &p) == 1 && p > 0 &&
                    p <= PK_PARTITIONS_MAX) {
                    if (p != *partitions)
                        PK_INFO("using %u partitions, as fixed when %s was created", p, d->name);
                    *partitions = p;
                }
            }
            reconcile_replicas(bus, si, replicas);
            jsStreamInfo_Destroy(si);
            attempt = 0;
            continue;
        }
        if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
            if (transient(s, jerr) && pk_mono_ms() < give_up) {
                if (attempt++ == 0)
                    PK_WARN("JetStream is not ready for %s yet (%s); retrying", d->name,
                            natsStatus_GetText(s));
                pk_sleep_ms(attempt < 10 ? 50 * attempt : 500);
                i--;
                continue;
            }
            return pk_nats_err(s, jerr, d->name);
        }
        jsStreamConfig_Init(&sc);
        sc.Name = d->name;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.MaxAge = d->max_age_ms * 1000000;
        sc.Duplicates = d->dup_window_ms * 1000000;
        sc.MaxMsgSize = d->max_msg_size;
        sc.DenyDelete = d->deny_delete;
        sc.DenyPurge = d->deny_delete;
        sc.AllowDirect = true;
        sc.Replicas = replicas;
        if (strcmp(d->name, PK_STREAM_EVENTS) == 0) {
            snprintf(desc, sizeof(desc), "pactum partitions=%u", *partitions);
            sc.Description = desc;
        }
        jerr = 0;
        s = js_AddStream(&si, bus->js, &sc, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (s == NATS_OK) {
            PK_INFO("created stream %s (%s, %lld replica%s)", d->name, d->subject,
                    (long long)replicas, replicas == 1 ? "" : "s");
            attempt = 0;
            continue;
        }
        /* Not ready, or another service made it at this moment: look again (and then read
         * the stream it made). A timed-out create may have worked: the lookup says. */
        if (transient(s, jerr) && pk_mono_ms() < give_up) {
            pk_sleep_ms(attempt < 10 ? 10 * ++attempt : 500);
            i--;
            continue;
        }
        return pk_nats_err(s, jerr, d->name);
    }
    return PK_OK;
}

/* --- Consumers -------------------------------------------------------------- */

#define AHEAD_WAIT_MS  500  /* a read-ahead is answered at once; this bounds it if not */
#define READER_IDLE_MS 2000 /* a reader nobody listens to is removed by the server after this */

/*
 * What a durable consumer that exists says against what we asked for: a
 * sentence if someone else changed it (its filter, where it starts, how it
 * delivers, its limits once we had set them, or, for an ordered reader,
 * messages acknowledged that the reader never applied), else "".
 */
/*
 * Is there a message of c's filter in (from, to] of its stream? A filtered consumer's
 * acknowledged floor may stand past our last message on a message of another filter (after a
 * change of consumer leader, the floor is counted in stream sequences): that is no gap. When
 * the stream cannot be asked, assume there is.
 */
static bool filtered_between(const pk_consumer *c, uint64_t from, uint64_t to)
{
    jsDirectGetMsgOptions dg;
    jsOptions jo;
    natsMsg *m = NULL;
    uint64_t seq = 0;
    natsStatus s;

    jsOptions_Init(&jo);
    jo.Wait = 2000;
    jsDirectGetMsgOptions_Init(&dg);
    dg.Sequence = from + 1;
    dg.NextBySubject = c->filter;
    s = js_DirectGetMsg(&m, c->bus->js, c->stream, &jo, &dg);
    if (s == NATS_NOT_FOUND)
        return false;
    if (s != NATS_OK)
        return true;
    seq = pk_msg_seq(m);
    if (!seq) { /* a direct get carries its sequence in a header */
        const char *v = NULL;
        if (natsMsgHeader_Get(m, "Nats-Sequence", &v) == NATS_OK && v)
            seq = strtoull(v, NULL, 10);
    }
    natsMsg_Destroy(m);
    return seq == 0 || seq <= to;
}

static void tampered(const pk_consumer *c, const jsConsumerInfo *ci, bool have_own, uint64_t own,
                     char *why, size_t len)
{
    const char *filter = ci->Config->FilterSubject ? ci->Config->FilterSubject : "";

    why[0] = '\0';
    if (strcmp(filter, c->filter) != 0)
        snprintf(why, len, "its filter is '%s', not '%s'", filter, c->filter);
    else if (!c->ordered && ci->Config->DeliverPolicy != js_DeliverAll)
        snprintf(why, len, "it no longer starts at the beginning of %s", c->stream);
    else if (!c->sole && ci->Config->AckPolicy != js_AckExplicit)
        snprintf(why, len, "one acknowledgement covers all before it, and readers share it");
    else if (ci->Config->HeadersOnly)
        snprintf(why, len, "it delivers headers only");
    else if (ci->Config->DeliverSubject && ci->Config->DeliverSubject[0])
        snprintf(why, len, "it pushes to %s", ci->Config->DeliverSubject);
    else if (c->bound &&
             ((c->max_ack_pending > 0 && ci->Config->MaxAckPending != c->max_ack_pending) ||
              (c->ack_wait_ms > 0 && ci->Config->AckWait != c->ack_wait_ms * 1000000)))
        snprintf(why, len, "its limits were changed (%lld unacknowledged, %lld ms ack wait)",
                 (long long)ci->Config->MaxAckPending, (long long)(ci->Config->AckWait / 1000000));
    else if (have_own && ci->AckFloor.Stream > own && filtered_between(c, own, ci->AckFloor.Stream))
        snprintf(why, len, "it has %s #%llu acknowledged, but this reader applied only up to #%llu",
                 c->stream, (unsigned long long)ci->AckFloor.Stream, (unsigned long long)own);
}

/* Create a durable consumer from stream sequence start (0: from the beginning). */
static natsStatus create_durable(pk_consumer *c, jsConsumerConfig *cc, uint64_t start,
                                 jsErrCode *jerr)
{
    jsConsumerInfo *ci = NULL;
    natsStatus s;

    if (start > 1) {
        cc->DeliverPolicy = js_DeliverByStartSequence;
        cc->OptStartSeq = start;
    }
    s = js_AddConsumer(&ci, c->bus->js, c->stream, cc, NULL, jerr);
    jsConsumerInfo_Destroy(ci);
    return s;
}

/*
 * Bind to our durable consumer, checking it first: one changed or deleted by
 * someone else is an incident, and is made again from the reader's own
 * position (never from what the server says), or from the beginning of the
 * stream for a reader without one (what it did before is recognised and
 * skipped). An ordered reader with messages out and unacknowledged starts
 * again from its own position too: the server would redeliver them only
 * after the ack wait, and newer ones could come first.
 */
static natsStatus bind_durable(pk_consumer *c, jsErrCode *jerr)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    uint64_t own = 0, start = 0;
    bool have_own = c->position && c->position(c->position_ctx, &own) == PK_OK;
    char why[256];
    natsStatus s;

    jsConsumerConfig_Init(&cc);
    cc.Durable = c->durable;
    /* the only reader acknowledges a batch by its newest message */
    cc.AckPolicy = c->sole ? js_AckAll : js_AckExplicit;
    cc.AckWait = c->ack_wait_ms * 1000000;
    cc.MaxAckPending = c->max_ack_pending;
    cc.MaxWaiting = 64;
    cc.FilterSubject = c->filter;
    cc.DeliverPolicy = js_DeliverAll;
    if (have_own)
        start = own + 1;
    s = js_GetConsumerInfo(&ci, c->bus->js, c->stream, c->durable, NULL, jerr);
    /* only a consumer that is not there is made anew: one that cannot be looked at now (a node
     * lost, a leader being elected) is bound later, or it would be taken over where it stands */
    if (s != NATS_OK && s != NATS_NOT_FOUND && *jerr != JSConsumerNotFoundErr)
        return s;
    if (s != NATS_OK && c->bound)
        pk_incident("consumer %s of %s was deleted by someone else; made again from %s #%llu",
                    c->durable, c->stream, c->stream, (unsigned long long)(start ? start : 1));
    if (s == NATS_OK) {
        tampered(c, ci, have_own, own, why, sizeof(why));
        /* acknowledged past our position by the instance that held the partition before: a
         * handover, not tampering (the lease said how far it got) */
        if (why[0] && have_own && c->handover_seq > 0 && ci->AckFloor.Stream > own &&
            strncmp(why, "it has ", 7) == 0)
            PK_INFO("consumer %s: taking over from the previous holder (at %s #%llu); reading "
                    "again from %s #%llu",
                    c->durable, c->stream, (unsigned long long)c->handover_seq, c->stream,
                    (unsigned long long)start);
        else if (why[0])
            pk_incident("consumer %s of %s was changed by someone else (%s); made again from %s "
                        "#%llu",
                        c->durable, c->stream, why, c->stream,
                        (unsigned long long)(start ? start : 1));
        else if (c->ordered && ci->NumAckPending > 0)
            PK_INFO("consumer %s: %lld messages delivered but not acknowledged; reading again "
                    "from %s #%llu, in order",
                    c->durable, (long long)ci->NumAckPending, c->stream,
                    (unsigned long long)(have_own ? start : ci->AckFloor.Stream + 1));
        if (!why[0] && c->ordered && ci->NumAckPending > 0 && !have_own)
            start = ci->AckFloor.Stream + 1;
        /* looking took a while: a lease that lapsed meanwhile may mean that this consumer is
         * another instance's now, and not ours to delete */
        if (pk_consumer_fenced(c)) {
            jsConsumerInfo_Destroy(ci);
            return NATS_ILLEGAL_STATE;
        }
        /* an only reader's, made when every message was acknowledged on its own: the server
         * cannot change that, so it is made again from the reader's own position */
        if (!why[0] && c->sole && c->ordered && have_own && ci->Config->AckPolicy != js_AckAll) {
            PK_INFO("consumer %s: made again to acknowledge batches at once, from %s #%llu",
                    c->durable, c->stream, (unsigned long long)start);
            why[0] = 'a';
        }
        if (why[0] || (c->ordered && ci->NumAckPending > 0)) {
            jsConsumerInfo_Destroy(ci);
            ci = NULL;
            *jerr = 0;
            if ((s = js_DeleteConsumer(c->bus->js, c->stream, c->durable, NULL, jerr)) != NATS_OK)
                return s;
            s = NATS_NOT_FOUND;
        }
    }
    if (s == NATS_OK) {
        /* it is ours, as we made it: bring its limits to ours (its position is kept) */
        cc.DeliverPolicy = ci->Config->DeliverPolicy;
        cc.OptStartSeq = ci->Config->OptStartSeq;
        cc.AckPolicy = ci->Config->AckPolicy;
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        *jerr = 0;
        s = js_UpdateConsumer(&ci, c->bus->js, c->stream, &cc, NULL, jerr);
        jsConsumerInfo_Destroy(ci);
    } else {
        jsConsumerInfo_Destroy(ci);
        *jerr = 0;
        s = create_durable(c, &cc, start, jerr);
    }
    c->ack_all = s == NATS_OK && c->sole && cc.AckPolicy == js_AckAll;
    return s;
}

bool pk_consumer_fenced(const pk_consumer *c)
{
    return c->serve_until && pk_mono_ms() >= atomic_load(c->serve_until);
}

static pk_status fenced_err(const pk_consumer *c)
{
    return PK_ERR(PK_ECONFLICT,
                  "consumer %s: its lease may have lapsed; reading nothing until it is renewed",
                  c->durable);
}

static pk_status consumer_bind(pk_consumer *c)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;

    if (pk_consumer_fenced(c))
        return fenced_err(c);
    jsSubOptions_Init(&so);
    so.Stream = c->stream;
    c->delivered_ms = pk_mono_ms(); /* a stall is counted from here */
    c->last_dseq = 0;
    if (c->durable[0]) {
        if ((s = bind_durable(c, &jerr)) != NATS_OK)
            return pk_consumer_fenced(c) ? fenced_err(c) : pk_nats_err(s, jerr, c->durable);
        so.Consumer = c->durable;
        jerr = 0;
        s = js_PullSubscribe(&c->sub, c->bus->js, c->filter, c->durable, NULL, &so, &jerr);
        c->bound = c->bound || s == NATS_OK;
    } else {
        /*
         * An ordered push consumer, delivering to our own inbox from the
         * position we keep: nothing to acknowledge, and the client recreates
         * it from where it was if it breaks. It has a name of its own, which
         * cnats puts in the create subject (where permissions can see it:
         * see buspolicy.c), unguessable, and it goes away soon after nobody
         * listens (which also frees the name for a recreation).
         */
        uint8_t rnd[8];
        char name[24];
        randombytes_buf(rnd, sizeof(rnd));
        snprintf(name, sizeof(name), "rd-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        so.Ordered = true;
        so.Config.Name = name;
        so.Config.InactiveThreshold = READER_IDLE_MS * 1000000LL;
        so.Config.DeliverPolicy = c->start_seq > 1 ? js_DeliverByStartSequence : js_DeliverAll;
        so.Config.OptStartSeq = c->start_seq > 1 ? c->start_seq : 0;
        s = js_SubscribeSync(&c->sub, c->bus->js, c->filter, NULL, &so, &jerr);
    }
    if (s != NATS_OK)
        return pk_nats_err(s, jerr, "subscribe");
    return PK_OK;
}

pk_status pk_consumer_open(pk_consumer *c, pk_bus *bus, const char *stream, const char *durable,
                           const char *filter, uint64_t start_seq, int max_ack_pending,
                           int64_t ack_wait_ms)
{
    memset(c, 0, sizeof(*c));
    c->bus = bus;
    snprintf(c->stream, sizeof(c->stream), "%s", stream);
    snprintf(c->durable, sizeof(c->durable), "%s", durable ? durable : "");
    snprintf(c->filter, sizeof(c->filter), "%s", filter);
    c->start_seq = start_seq;
    c->ack = durable != NULL;
    c->max_ack_pending = max_ack_pending;
    c->ack_wait_ms = ack_wait_ms;
    return consumer_bind(c);
}

pk_status pk_consumer_open_ordered(pk_consumer *c, pk_bus *bus, const char *stream,
                                   const char *durable, const char *filter, int max_ack_pending,
                                   int64_t ack_wait_ms,
                                   pk_status (*position)(void *ctx, uint64_t *applied), void *ctx)
{
    return pk_consumer_take_over(c, bus, stream, durable, filter, max_ack_pending, ack_wait_ms,
                                 position, ctx, 0, NULL);
}

pk_status pk_consumer_take_over(pk_consumer *c, pk_bus *bus, const char *stream,
                                const char *durable, const char *filter, int max_ack_pending,
                                int64_t ack_wait_ms,
                                pk_status (*position)(void *ctx, uint64_t *applied), void *ctx,
                                uint64_t handover_seq, const _Atomic int64_t *serve_until)
{
    memset(c, 0, sizeof(*c));
    c->handover_seq = handover_seq;
    c->serve_until = serve_until;
    c->sole = serve_until != NULL;
    c->bus = bus;
    snprintf(c->stream, sizeof(c->stream), "%s", stream);
    snprintf(c->durable, sizeof(c->durable), "%s", durable);
    snprintf(c->filter, sizeof(c->filter), "%s", filter);
    c->ack = true;
    c->ordered = true;
    c->max_ack_pending = max_ack_pending;
    c->ack_wait_ms = ack_wait_ms;
    c->position = position;
    c->position_ctx = ctx;
    return consumer_bind(c);
}

void pk_consumer_ack(const pk_consumer *c, natsMsgList *list)
{
    natsMsg *newest = NULL;
    uint64_t top = 0;

    if (!c->ack_all) {
        for (int i = 0; i < list->Count; i++)
            natsMsg_Ack(list->Msgs[i], NULL);
        return;
    }
    /* in stream order but for a redelivery, which comes first: the newest covers it */
    for (int i = 0; i < list->Count; i++) {
        uint64_t seq = pk_msg_seq(list->Msgs[i]);
        if (!newest || seq > top) {
            newest = list->Msgs[i];
            top = seq;
        }
    }
    if (newest)
        natsMsg_Ack(newest, NULL);
}

void pk_msgs_in_progress(natsMsgList *list)
{
    for (int i = 0; i < list->Count; i++)
        natsMsg_InProgress(list->Msgs[i], NULL);
}

void pk_consumer_close(pk_consumer *c)
{
    if (!c || !c->sub)
        return;
    /* an ordered consumer goes away by itself once nobody listens */
    natsSubscription_Destroy(c->sub);
    c->sub = NULL;
}

/* The durable still exists as we made it (when in doubt, yes: a fetch error will tell). */
static bool still_ours(pk_consumer *c)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    uint64_t own = 0;
    bool have_own = c->position && c->position(c->position_ctx, &own) == PK_OK;
    char why[256] = "";
    natsStatus s = js_GetConsumerInfo(&ci, c->bus->js, c->stream, c->durable, NULL, &jerr);

    c->checked_ms = pk_mono_ms();
    if (s == NATS_OK)
        tampered(c, ci, have_own, own, why, sizeof(why));
    /*
     * Stalled: messages wait for it, yet nothing came for a while (after a node loss a
     * consumer can be left without a leader, or bound to a subscription that no longer
     * receives): bind again.
     */
    if (s == NATS_OK && !why[0] && ci->NumPending > 0 &&
        pk_mono_ms() - c->delivered_ms > PK_STALL_MS) {
        c->stalls++;
        PK_WARN("consumer %s on %s: %llu messages waiting, none delivered for %lld ms; binding "
                "again",
                c->durable, c->stream, (unsigned long long)ci->NumPending,
                (long long)(pk_mono_ms() - c->delivered_ms));
        c->delivered_ms = pk_mono_ms();
        why[0] = 's';
    }
    jsConsumerInfo_Destroy(ci);
    return !(s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || why[0]);
}

/* Up to batch messages of a push subscription: the first within timeout_ms, then those waiting. */
static natsStatus next_msgs(natsSubscription *sub, natsMsgList *list, int batch, int64_t timeout_ms)
{
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, sub, timeout_ms);

    if (s != NATS_OK)
        return s;
    if (!(list->Msgs = malloc((size_t)(batch > 0 ? batch : 1) * sizeof(*list->Msgs)))) {
        natsMsg_Destroy(m);
        return NATS_NO_MEMORY;
    }
    list->Msgs[list->Count++] = m;
    while (list->Count < batch && natsSubscription_NextMsg(&m, sub, 0) == NATS_OK)
        list->Msgs[list->Count++] = m;
    return NATS_OK;
}

/*
 * An ordered reader must see every message of its filter after its own position, in order.
 * A delivery can be lost on its way (handed to a pull request whose connection went down
 * with a node): the server hands it out again only after the ack wait, newer ones first.
 * Deliveries are numbered without gaps, so where the numbering jumps (or at the first
 * delivery since binding), ask the stream whether a message of the filter lies between what
 * we applied and what came: if so the batch is refused and the consumer made again from
 * our position.
 */
static bool delivery_seqs(natsMsg *m, uint64_t *dseq, uint64_t *sseq)
{
    jsMsgMetaData *meta = NULL;

    if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
        return false;
    *dseq = meta->Sequence.Consumer;
    *sseq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return true;
}

static bool delivery_missing(pk_consumer *c, natsMsgList *list)
{
    uint64_t own = 0, prev_seq = 0, first, last, unused;

    if (!c->ordered || !c->position)
        return false;
    /* the usual case, cheaply: this batch follows the last delivery without a gap */
    if (c->last_dseq && delivery_seqs(list->Msgs[0], &first, &unused) &&
        delivery_seqs(list->Msgs[list->Count - 1], &last, &unused) && first == c->last_dseq + 1 &&
        last - first == (uint64_t)list->Count - 1) {
        c->last_dseq = last;
        return false;
    }
    if (c->position(c->position_ctx, &own) != PK_OK)
        return false;
    prev_seq = own;
    for (int i = 0; i < list->Count; i++) {
        uint64_t dseq, sseq;
        if (!delivery_seqs(list->Msgs[i], &dseq, &sseq))
            return false;
        if ((c->last_dseq == 0 || dseq != c->last_dseq + 1) && sseq > prev_seq + 1 &&
            filtered_between(c, prev_seq, sseq - 1)) {
            PK_WARN("consumer %s on %s: #%llu came, but a message after #%llu was not delivered "
                    "(lost on its way); reading again from #%llu",
                    c->durable, c->stream, (unsigned long long)sseq, (unsigned long long)prev_seq,
                    (unsigned long long)own + 1);
            return true;
        }
        c->last_dseq = dseq;
        if (sseq > prev_seq)
            prev_seq = sseq;
    }
    return false;
}

pk_status pk_consumer_fetch(pk_consumer *c, natsMsgList *list, int batch, int64_t timeout_ms)
{
    jsErrCode jerr = 0;
    natsStatus s;

    list->Msgs = NULL;
    list->Count = 0;
    if (pk_consumer_fenced(c)) {
        /* what was fetched and not acknowledged is read again from our position, in order,
         * if the lease is renewed: bind again then */
        pk_consumer_close(c);
        return fenced_err(c);
    }
    if (!c->sub) {
        pk_status st = consumer_bind(c);
        if (st != PK_OK)
            return st;
    }
    s = c->durable[0] ? natsSubscription_Fetch(list, c->sub, batch, timeout_ms, &jerr)
                      : next_msgs(c->sub, list, batch, timeout_ms);
    if (s == NATS_OK && c->durable[0] && list->Count > 0 && delivery_missing(c, list)) {
        natsMsgList_Destroy(list);
        list->Msgs = NULL;
        list->Count = 0;
        natsSubscription_Destroy(c->sub); /* bound again: unacknowledged, so from our position */
        c->sub = NULL;
        return PK_ERR(PK_EBUS, "consumer %s: a delivery was lost on its way; reading again",
                      c->durable);
    }
    if (s == NATS_OK) {
        c->delivered_ms = pk_mono_ms();
        if (!c->durable[0] && list->Count > 0) {
            uint64_t seq = 0;
            if (pk_msg_meta(list->Msgs[list->Count - 1], &seq, NULL, NULL) == PK_OK)
                c->start_seq = seq + 1;
        }
        return PK_OK;
    }
    if (s == NATS_TIMEOUT) {
        /* a fetch from a consumer that someone deleted just times out: look now and then */
        if (c->durable[0] && pk_mono_ms() - c->checked_ms > 5000 && !still_ours(c)) {
            natsSubscription_Destroy(c->sub);
            c->sub = NULL;
        }
        return PK_ETIMEOUT;
    }
    /* The consumer may be gone (server restarted without it, or an ephemeral
     * consumer expired): drop the subscription and bind again next time. */
    if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || s == NATS_INVALID_SUBSCRIPTION ||
        s == NATS_CONNECTION_CLOSED) {
        natsSubscription_Destroy(c->sub);
        c->sub = NULL;
    }
    return pk_nats_err(s, jerr, "fetch");
}

pk_status pk_consumer_fetch_ahead(pk_consumer *c, natsMsgList *list, int batch, int64_t max_bytes)
{
    jsFetchRequest req;
    natsStatus s;

    list->Msgs = NULL;
    list->Count = 0;
    /* an ordered reader checks each delivery against the last: it fetches one batch at a time */
    if (!c->sub || !c->durable[0] || c->ordered || pk_consumer_fenced(c))
        return PK_ETIMEOUT;
    jsFetchRequest_Init(&req);
    req.Batch = batch;
    req.MaxBytes = max_bytes;
    req.NoWait = true; /* what is waiting now, or nothing */
    req.Expires = (int64_t)AHEAD_WAIT_MS * 1000000;
    s = natsSubscription_FetchRequest(list, c->sub, &req);
    if (s == NATS_OK && list->Count > 0) {
        c->delivered_ms = pk_mono_ms();
        return PK_OK;
    }
    natsMsgList_Destroy(list);
    list->Msgs = NULL;
    list->Count = 0;
    return s == NATS_OK || s == NATS_TIMEOUT || s == NATS_NOT_FOUND ? PK_ETIMEOUT
                                                                    : pk_nats_err(s, 0, "fetch");
}

uint64_t pk_msg_seq(natsMsg *msg)
{
    uint64_t seq = 0;

    return pk_msg_meta(msg, &seq, NULL, NULL) == PK_OK ? seq : 0;
}

pk_status pk_msg_meta(natsMsg *msg, uint64_t *seq, uint64_t *delivered, int64_t *ts_ms)
{
    jsMsgMetaData *meta = NULL;
    natsStatus s = natsMsg_GetMetaData(&meta, msg);

    if (s != NATS_OK)
        return pk_nats_err(s, 0, "message metadata");
    if (seq)
        *seq = meta->Sequence.Stream;
    if (delivered)
        *delivered = meta->NumDelivered;
    if (ts_ms)
        *ts_ms = meta->Timestamp / 1000000;
    jsMsgMetaData_Destroy(meta);
    return PK_OK;
}

/* --- Publishing ------------------------------------------------------------- */

void pk_bus_publish_reset(pk_bus *bus)
{
    atomic_store(&bus->pub_ok, 0);
    atomic_store(&bus->pub_dup, 0);
    atomic_store(&bus->pub_err, 0);
}

pk_status pk_bus_publish_async(pk_bus *bus, const char *subject, const void *data, size_t len,
                               const char *msg_id)
{
    pk_status st = pk_bus_publish_tracked(bus, subject, data, len, msg_id, 0);

    if (st != PK_OK)
        atomic_fetch_add(&bus->pub_err, 1);
    return st;
}

void pk_bus_on_acks(pk_bus *bus, const char *prefix, pk_ack_fn fn, void *ctx)
{
    pthread_mutex_lock(&bus->ack_mu);
    snprintf(bus->ack_prefix, sizeof(bus->ack_prefix), "%s", fn && prefix ? prefix : "");
    bus->ack_fn = fn;
    bus->ack_ctx = ctx;
    atomic_store(&bus->ack_hooked, fn != NULL);
    pthread_mutex_unlock(&bus->ack_mu);
}

pk_status pk_bus_publish_tracked(pk_bus *bus, const char *subject, const void *data, size_t len,
                                 const char *msg_id, int64_t ack_wait_ms)
{
    jsPubOptions po;
    natsStatus s;

    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = ack_wait_ms;
    s = js_PublishAsync(bus->js, subject, data, (int)len, &po);
    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, subject);
}

pk_status pk_bus_publish_again(pk_bus *bus, natsMsg **msg, int64_t ack_wait_ms)
{
    char subject[256];
    jsPubOptions po;
    natsStatus s;

    snprintf(subject, sizeof(subject), "%s", natsMsg_GetSubject(*msg));
    jsPubOptions_Init(&po);
    po.MaxWait = ack_wait_ms;
    s = js_PublishMsgAsync(bus->js, msg, &po);
    return s == NATS_OK ? PK_OK : pk_nats_err(s, 0, subject);
}

pk_status pk_bus_publish_wait(pk_bus *bus, int64_t timeout_ms)
{
    jsPubOptions po;
    natsStatus s;
    unsigned long errs;

    /* a buffered bus would otherwise send the publishes at its next periodic flush */
    if (!bus->send_asap)
        natsConnection_FlushTimeout(bus->nc, timeout_ms);
    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms;
    s = js_PublishAsyncComplete(bus->js, &po);
    if (s != NATS_OK) {
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, bus->js) == NATS_OK) {
            atomic_fetch_add(&bus->pub_err, (unsigned long)pending.Count);
            natsMsgList_Destroy(&pending);
        }
        return pk_nats_err(s, 0, "waiting for publish acknowledgements");
    }
    errs = atomic_load(&bus->pub_err);
    if (errs)
        return PK_ERR(PK_EBUS, "%lu publish%s failed", errs, errs == 1 ? "" : "es");
    return PK_OK;
}

/* A reply inbox of our own: under bus->inbox (the only prefix a JWT user may read), else random. */
static bool reply_inbox(pk_bus *bus, char *inbox, size_t len)
{
    natsInbox *generated = NULL;
    uint8_t rnd[12];

    randombytes_buf(rnd, sizeof(rnd));
    if (bus->inbox[0]) {
        snprintf(inbox, len, "%s.r%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x", bus->inbox,
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9],
                 rnd[10], rnd[11]);
        return true;
    }
    if (natsInbox_Create(&generated) != NATS_OK)
        return false;
    snprintf(inbox, len, "%s", generated);
    natsInbox_Destroy(generated);
    return true;
}

/* Subscribe to a fresh inbox (at most max replies; 0: any number) and send the request. */
static pk_status send_request(pk_bus *bus, const char *subject, const void *data, size_t len,
                              int max, natsSubscription **sub)
{
    char inbox[160];
    natsStatus s;

    *sub = NULL;
    if (!reply_inbox(bus, inbox, sizeof(inbox)))
        return PK_ERR(PK_ENOMEM, "no inbox for a request on %s", subject);
    if ((s = natsConnection_SubscribeSync(sub, bus->nc, inbox)) != NATS_OK ||
        (max > 0 && (s = natsSubscription_AutoUnsubscribe(*sub, max)) != NATS_OK) ||
        (s = natsConnection_PublishRequest(bus->nc, subject, inbox, data, (int)len)) != NATS_OK) {
        natsSubscription_Destroy(*sub);
        *sub = NULL;
        return pk_nats_err(s, 0, subject);
    }
    natsConnection_Flush(bus->nc); /* a refusal comes back before the flush's answer */
    return PK_OK;
}

pk_status pk_bus_request(pk_bus *bus, const char *subject, const void *data, size_t len,
                         int64_t timeout_ms, natsMsg **reply)
{
    unsigned long before = atomic_load(&bus->denials);
    natsSubscription *sub = NULL;
    int64_t deadline = pk_mono_ms() + timeout_ms;
    natsStatus s = NATS_TIMEOUT;
    pk_status st;

    *reply = NULL;
    if ((st = send_request(bus, subject, data, len, 1, &sub)) != PK_OK)
        return st;
    while (pk_mono_ms() < deadline && atomic_load(&bus->denials) == before) {
        int64_t left = deadline - pk_mono_ms();
        s = natsSubscription_NextMsg(reply, sub, left < 50 ? (left > 0 ? left : 1) : 50);
        if (s != NATS_TIMEOUT)
            break;
    }
    natsSubscription_Destroy(sub);
    if (s == NATS_OK && natsMsg_IsNoResponders(*reply)) {
        natsMsg_Destroy(*reply);
        *reply = NULL;
        return PK_ERR(PK_ENOTFOUND, "nobody answers on %s", subject);
    }
    if (s == NATS_OK)
        return PK_OK;
    if (atomic_load(&bus->denials) != before)
        return PK_ERR(PK_EPERM, "permission denied: %s", bus->denial);
    if (s == NATS_TIMEOUT)
        return PK_ERR(PK_ETIMEOUT, "no answer on %s within %lld ms", subject,
                      (long long)timeout_ms);
    return pk_nats_err(s, 0, subject);
}

pk_status pk_bus_gather(pk_bus *bus, const char *subject, const void *data, size_t len,
                        int64_t timeout_ms, int64_t quiet_ms, int max,
                        bool (*each)(void *ctx, natsMsg *reply), void *ctx, int *n)
{
    unsigned long before = atomic_load(&bus->denials);
    natsSubscription *sub = NULL;
    int64_t deadline = pk_mono_ms() + timeout_ms, quiet_until = deadline;
    pk_status st;

    *n = 0;
    if ((st = send_request(bus, subject, data, len, 0, &sub)) != PK_OK)
        return st;
    while (*n < max && pk_mono_ms() < deadline && pk_mono_ms() < quiet_until &&
           atomic_load(&bus->denials) == before) {
        natsMsg *m = NULL;
        int64_t left = (quiet_until < deadline ? quiet_until : deadline) - pk_mono_ms();
        natsStatus s = natsSubscription_NextMsg(&m, sub, left < 50 ? (left > 0 ? left : 1) : 50);
        bool more = true;
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK)
            break;
        if (!natsMsg_IsNoResponders(m)) {
            (*n)++;
            quiet_until = pk_mono_ms() + quiet_ms;
            more = each(ctx, m);
        }
        natsMsg_Destroy(m);
        if (!more)
            break;
    }
    natsSubscription_Destroy(sub);
    if (atomic_load(&bus->denials) != before)
        return PK_ERR(PK_EPERM, "permission denied: %s", bus->denial);
    return *n ? PK_OK
              : PK_ERR(PK_ETIMEOUT, "no answer on %s within %lld ms", subject,
                       (long long)timeout_ms);
}

pk_status pk_bus_publish_sync(pk_bus *bus, const char *subject, const void *data, size_t len,
                              const char *msg_id, bool expect, uint64_t expect_last_subject_seq,
                              uint64_t *seq, bool *duplicate)
{
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    if (expect) {
        if (expect_last_subject_seq == 0)
            po.ExpectNoMessage = true;
        else
            po.ExpectLastSubjectSeq = expect_last_subject_seq;
    }
    s = js_Publish(&pa, bus->js, subject, data, (int)len, &po, &jerr);
    if (s != NATS_OK) {
        if (jerr == JSStreamWrongLastSequenceErr)
            return PK_ERR(PK_ECONFLICT, "%s changed concurrently", subject);
        return pk_nats_err(s, jerr, subject);
    }
    if (seq)
        *seq = pa->Sequence;
    if (duplicate)
        *duplicate = pa->Duplicate;
    jsPubAck_Destroy(pa);
    return PK_OK;
}

uint32_t pk_partition_of(const char *agent_id, uint32_t partitions)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)agent_id; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return partitions ? h % partitions : 0;
}

const char *pk_subject_last_token(const char *subject)
{
    const char *dot = strrchr(subject, '.');

    return dot ? dot + 1 : subject;
}
