/*
 * changes - live streams of trust changes (Server-Sent Events): GET /v1/changes and
 * GET /v1/agents/<id>/changes. The read model hands every change it decodes to a ring of
 * the newest ORACLE_CHANGES_KEPT; each stream reads the ring from its position (the client's
 * Last-Event-ID, which is the change's PACTUM_TRUST sequence) and, when it has sent
 * everything, suspends its connection until the next change (or the next keep-alive).
 * Each event is the change as stored, in a ChangeNotice signed by the log's key.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"
#include "pk/log.h"
#include "pk/pbjson.h"

#define KEEPALIVE_MS 15000 /* a comment line this often on a quiet stream */
#define LEFT_MS      200   /* how often suspended streams are checked for clients that left */
#define WAITING_MAX  1024  /* streams open at once (each may be suspended) */

typedef struct entry {
    uint64_t seq; /* 0: empty */
    char agent[PK_ID_MAX + 1];
    uint8_t *data; /* the TrustChange as stored */
    size_t len;
    char *event; /* the SSE event, made (and signed) once, when first sent */
} entry;

typedef struct stream {
    oracle *o;
    struct MHD_Connection *c;
    char agent[PK_ID_MAX + 1]; /* "" for every agent */
    uint64_t next;             /* the first sequence still to send */
    char *pending;             /* an event being sent */
    size_t plen, poff;
    int64_t last_write_ms;
    bool left; /* its client closed the connection while it was suspended (under mu) */
} stream;

struct oracle_changes {
    pthread_mutex_t mu;
    entry ring[ORACLE_CHANGES_KEPT];
    uint64_t last;                /* the newest sequence in the ring */
    stream *waiting[WAITING_MAX]; /* suspended streams (each is in it at most once) */
    int n_waiting;
    atomic_int n_streams; /* open; at most WAITING_MAX, so every one fits in waiting */
    bool closing;
    pthread_t ticker;
    bool ticking;
};

static entry *slot(oracle_changes *h, uint64_t seq)
{
    return &h->ring[seq % ORACLE_CHANGES_KEPT];
}

/*
 * Resume every suspended stream. Called without h->mu held: MHD takes locks of its own to
 * resume, and a stream's reader holds h->mu when it suspends. The list is taken under h->mu,
 * so each suspended stream is resumed exactly once; a suspended connection cannot close (MHD
 * sees nothing of it until it is resumed), so the pointers stay good until then.
 */
static void wake_all(oracle_changes *h)
{
    static _Thread_local stream *woken[WAITING_MAX];
    int n;

    pthread_mutex_lock(&h->mu);
    n = h->n_waiting;
    memcpy(woken, h->waiting, (size_t)n * sizeof(woken[0]));
    h->n_waiting = 0;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n; i++)
        MHD_resume_connection(woken[i]->c);
}

/*
 * Resume the suspended streams whose clients have closed their connections, so that each
 * ends now and frees its connection (and its place among its address's --http-per-client),
 * instead of at the next change or keep-alive. A suspended connection stays open (see
 * wake_all), so its socket can be polled here; a client that closed it has sent its FIN.
 */
static void end_left(oracle_changes *h)
{
    static _Thread_local struct pollfd fds[WAITING_MAX];
    static _Thread_local stream *seen[WAITING_MAX], *left[WAITING_MAX];
    int n = 0, n_left = 0;

    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_waiting; i++) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(h->waiting[i]->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            continue;
        fds[n] = (struct pollfd){.fd = ci->connect_fd, .events = POLLRDHUP};
        seen[n++] = h->waiting[i];
    }
    if (n > 0 && poll(fds, (nfds_t)n, 0) > 0) {
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
                continue;
            for (int w = 0; w < h->n_waiting; w++) {
                if (h->waiting[w] == seen[i]) { /* taken out: resumed exactly once, here */
                    h->waiting[w] = h->waiting[--h->n_waiting];
                    seen[i]->left = true;
                    left[n_left++] = seen[i];
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n_left; i++)
        MHD_resume_connection(left[i]->c);
}

static void *tick(void *p)
{
    oracle_changes *h = p;

    for (;;) {
        for (int i = 0; i < KEEPALIVE_MS / LEFT_MS; i++) {
            pk_sleep_ms(LEFT_MS);
            pthread_mutex_lock(&h->mu);
            if (h->closing) {
                pthread_mutex_unlock(&h->mu);
                return NULL;
            }
            pthread_mutex_unlock(&h->mu);
            end_left(h);
        }
        wake_all(h); /* each writes a keep-alive, and finds out if its client left */
    }
}

pk_status oracle_changes_open(oracle *o)
{
    oracle_changes *h = calloc(1, sizeof(*h));

    if (!h)
        return PK_ERR(PK_ENOMEM, "cannot allocate the change streams");
    pthread_mutex_init(&h->mu, NULL);
    if (pthread_create(&h->ticker, NULL, tick, h) != 0) {
        pthread_mutex_destroy(&h->mu);
        free(h);
        return PK_ERR(PK_EIO, "cannot start the change streams' keep-alive thread");
    }
    h->ticking = true;
    o->changes = h;
    return PK_OK;
}

void oracle_changes_close_streams(oracle *o)
{
    oracle_changes *h = o->changes;

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->closing = true; /* no stream suspends again */
    pthread_mutex_unlock(&h->mu);
    if (h->ticking) /* its last round of resuming is over */
        pthread_join(h->ticker, NULL);
    h->ticking = false;
    wake_all(h); /* every stream ends: MHD may not stop with suspended connections */
}

void oracle_changes_free(oracle *o)
{
    oracle_changes *h = o->changes;

    if (!h)
        return;
    oracle_changes_close_streams(o);
    for (size_t i = 0; i < ORACLE_CHANGES_KEPT; i++) {
        free(h->ring[i].data);
        free(h->ring[i].event);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
    o->changes = NULL;
}

void oracle_changes_add(oracle *o, uint64_t seq, const char *agent, const void *data, size_t len)
{
    oracle_changes *h = o->changes;
    entry *e;
    uint8_t *copy;

    if (!h || !(copy = malloc(len ? len : 1)))
        return;
    memcpy(copy, data, len);
    pthread_mutex_lock(&h->mu);
    if (seq <= h->last) { /* a redelivery: sent already */
        pthread_mutex_unlock(&h->mu);
        free(copy);
        return;
    }
    e = slot(h, seq);
    free(e->data);
    free(e->event);
    e->seq = seq;
    snprintf(e->agent, sizeof(e->agent), "%s", agent);
    e->data = copy;
    e->len = len;
    e->event = NULL;
    h->last = seq;
    pthread_mutex_unlock(&h->mu);
    wake_all(h);
}

json_t *oracle_change_doc(oracle *o, uint64_t seq, const char *agent, const uint8_t *data,
                          size_t len)
{
    Pactum__V1__ChangeNotice n = PACTUM__V1__CHANGE_NOTICE__INIT;
    Pactum__V1__TrustChange *tc;
    uint8_t *sig = NULL;
    size_t slen = 0, b64len;
    char *b64;
    json_t *doc;

    n.trust_seq = seq;
    n.agent_id = (char *)agent;
    n.change.data = (uint8_t *)data;
    n.change.len = len;
    n.sent_ms = pk_now_ms();
    if (oracle_seal(o, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_CHANGE_NOTICE, &n.base, &sig, &slen) !=
        PK_OK)
        return NULL;
    b64len = sodium_base64_ENCODED_LEN(slen, sodium_base64_VARIANT_ORIGINAL);
    if (!(b64 = malloc(b64len))) {
        free(sig);
        return NULL;
    }
    sodium_bin2base64(b64, b64len, sig, slen, sodium_base64_VARIANT_ORIGINAL);
    free(sig);
    tc = pactum__v1__trust_change__unpack(NULL, len, data);
    doc = json_pack("{s:I, s:s, s:o, s:s}", "seq", (json_int_t)seq, "agent_id", agent, "change",
                    tc ? pk_pb_json(&tc->base) : json_null(), "signed", b64);
    if (tc)
        pactum__v1__trust_change__free_unpacked(tc, NULL);
    free(b64);
    return doc;
}

/* The event of e: id, and the signed notice with the change as JSON beside it (under h->mu). */
static const char *event_of(oracle *o, entry *e)
{
    json_t *doc;
    char *text;

    if (e->event)
        return e->event;
    doc = oracle_change_doc(o, e->seq, e->agent, e->data, e->len);
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    if ((e->event = malloc(strlen(text) + 64)))
        sprintf(e->event, "id: %llu\nevent: change\ndata: %s\n\n", (unsigned long long)e->seq,
                text);
    free(text);
    return e->event;
}

static ssize_t copy_pending(stream *s, char *buf, size_t max)
{
    size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;

    memcpy(buf, s->pending + s->poff, n);
    s->poff += n;
    if (s->poff == s->plen) {
        free(s->pending);
        s->pending = NULL;
    }
    s->last_write_ms = pk_mono_ms();
    return (ssize_t)n;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    oracle_changes *h = s->o->changes;
    const char *ev = NULL;
    uint64_t oldest;

    (void)pos;
    if (s->pending)
        return copy_pending(s, buf, max);
    pthread_mutex_lock(&h->mu);
    if (h->closing || s->left) {
        bool left = s->left;
        pthread_mutex_unlock(&h->mu);
        return left ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    }
    oldest = h->last >= ORACLE_CHANGES_KEPT ? h->last - ORACLE_CHANGES_KEPT + 1 : 1;
    if (s->next < oldest && h->last) { /* older than the ring: say so, go on from its start */
        char gap[160];
        int n = snprintf(gap, sizeof(gap), "event: gap\ndata: {\"next\":%llu,\"oldest\":%llu}\n\n",
                         (unsigned long long)s->next, (unsigned long long)oldest);
        s->next = oldest;
        s->pending = strndup(gap, (size_t)n);
        s->plen = s->pending ? (size_t)n : 0;
        s->poff = 0;
    }
    for (; !s->pending && s->next <= h->last; s->next++) {
        entry *e = slot(h, s->next);
        if (e->seq != s->next || (s->agent[0] && strcmp(e->agent, s->agent) != 0))
            continue;
        if ((ev = event_of(s->o, e)) && (s->pending = strdup(ev))) {
            s->plen = strlen(ev);
            s->poff = 0;
        }
    }
    if (!s->pending && pk_mono_ms() - s->last_write_ms >= KEEPALIVE_MS - 100) {
        s->pending = strdup(": keep-alive\n\n");
        s->plen = s->pending ? strlen(s->pending) : 0;
        s->poff = 0;
    }
    if (!s->pending) {
        h->waiting[h->n_waiting++] = s; /* room for every open stream (n_streams) */
        MHD_suspend_connection(s->c);   /* until the next change, or the keep-alive tick */
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    pthread_mutex_unlock(&h->mu);
    return copy_pending(s, buf, max);
}

/* A stream's connection ended: it is not suspended, so not in the waiting list (no lock). */
static void free_stream(void *cls)
{
    stream *s = cls;

    atomic_fetch_sub(&s->o->changes->n_streams, 1);
    free(s->pending);
    free(s);
}

struct MHD_Response *oracle_changes_response(oracle *o, struct MHD_Connection *c, const char *agent,
                                             uint64_t after, bool from_now)
{
    stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *r;

    if (!s || !o->changes) {
        free(s);
        return NULL;
    }
    s->o = o;
    s->c = c;
    snprintf(s->agent, sizeof(s->agent), "%s", agent ? agent : "");
    if (atomic_fetch_add(&o->changes->n_streams, 1) >= WAITING_MAX) {
        atomic_fetch_sub(&o->changes->n_streams, 1);
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&o->changes->mu);
    s->next = from_now ? o->changes->last + 1 : after + 1;
    pthread_mutex_unlock(&o->changes->mu);
    s->pending = strdup("retry: 2000\n\n");
    s->plen = s->pending ? strlen(s->pending) : 0;
    s->last_write_ms = pk_mono_ms();
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, read_stream, s, free_stream);
    if (!r) {
        free_stream(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}
