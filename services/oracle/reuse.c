/*
 * Reuse of signed trust answers.
 *
 * Making a trust answer costs an Ed25519 signature (most of its time) and a
 * dozen LMDB reads. When the same query about the same agent comes again
 * within --reuse and nothing about that agent or the registry changed, the
 * answer already signed is sent again; its answered_ms says when it was made.
 *
 * Each agent hashes to a slot holding its last answer and a version. The
 * read model bumps the version of every agent it changed after it commits;
 * an answer is kept only if the version it read before its transaction began
 * is still current, so an answer made from a snapshot older than a change is
 * never kept. Two agents may share a slot: a change to one then ends reuse of
 * the other's answer too, which costs a signature and nothing else.
 */
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/clock.h"

#define REUSE_SLOTS      ORACLE_REUSE_SLOTS
#define REUSE_REQ_MAX    256   /* queries longer than this are not kept */
#define REUSE_ANSWER_MAX 16384 /* nor answers longer than this: at most 8 MiB in all */

typedef struct reuse_slot {
    uint64_t version;      /* bumped when an agent hashed here changes */
    uint64_t made_version; /* version when the kept answer was made */
    uint64_t reg_seq;      /* registry position then */
    int64_t made_mono_ms;  /* when it was made */
    size_t req_len;
    uint8_t req[REUSE_REQ_MAX];
    uint8_t *answer; /* the signed answer, or NULL */
    size_t len;
} reuse_slot;

struct oracle_reuse {
    pthread_mutex_t lock;
    reuse_slot slots[REUSE_SLOTS];
};

unsigned oracle_reuse_slot(const char *agent)
{
    return pk_partition_of(agent, REUSE_SLOTS);
}

pk_status oracle_reuse_open(oracle *o)
{
    o->reuse = NULL;
    if (o->cfg->reuse_ms <= 0)
        return PK_OK;
    if (!(o->reuse = calloc(1, sizeof(*o->reuse))))
        return PK_ERR(PK_ENOMEM, "cannot allocate the answer reuse table");
    pthread_mutex_init(&o->reuse->lock, NULL);
    return PK_OK;
}

void oracle_reuse_close(oracle *o)
{
    if (!o->reuse)
        return;
    for (int i = 0; i < REUSE_SLOTS; i++)
        free(o->reuse->slots[i].answer);
    pthread_mutex_destroy(&o->reuse->lock);
    free(o->reuse);
    o->reuse = NULL;
}

bool oracle_reuse_get(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t *version, uint8_t **out, size_t *outlen)
{
    oracle_reuse *r = o->reuse;
    reuse_slot *s;
    bool hit = false;

    *version = 0;
    if (!r || len > REUSE_REQ_MAX)
        return false;
    s = &r->slots[oracle_reuse_slot(agent)];
    pthread_mutex_lock(&r->lock);
    *version = s->version;
    if (s->answer && s->made_version == s->version && s->req_len == len &&
        memcmp(s->req, req, len) == 0 && s->reg_seq == pk_registry_seq(o->reg) &&
        pk_mono_ms() - s->made_mono_ms <= o->cfg->reuse_ms && (*out = malloc(s->len))) {
        memcpy(*out, s->answer, s->len);
        *outlen = s->len;
        hit = true;
    }
    pthread_mutex_unlock(&r->lock);
    if (hit)
        pk_metric_add(&o->m[OM_REUSED], 1);
    return hit;
}

void oracle_reuse_put(oracle *o, const char *agent, const uint8_t *req, size_t len,
                      uint64_t version, uint64_t reg_seq, int64_t made_mono_ms,
                      const uint8_t *answer, size_t alen)
{
    oracle_reuse *r = o->reuse;
    reuse_slot *s;
    uint8_t *copy;

    if (!r || len > REUSE_REQ_MAX || alen > REUSE_ANSWER_MAX || !(copy = malloc(alen)))
        return;
    memcpy(copy, answer, alen);
    s = &r->slots[oracle_reuse_slot(agent)];
    pthread_mutex_lock(&r->lock);
    if (s->version == version && reg_seq == pk_registry_seq(o->reg)) {
        free(s->answer);
        s->answer = copy;
        s->len = alen;
        memcpy(s->req, req, len);
        s->req_len = len;
        s->made_version = version;
        s->reg_seq = reg_seq;
        s->made_mono_ms = made_mono_ms;
        copy = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    free(copy);
}

void oracle_reuse_forget(oracle *o, const uint8_t *marked)
{
    oracle_reuse *r = o->reuse;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < REUSE_SLOTS; i++) {
        if (marked[i / 8] & (1u << (i % 8))) {
            r->slots[i].version++;
            free(r->slots[i].answer);
            r->slots[i].answer = NULL;
        }
    }
    pthread_mutex_unlock(&r->lock);
}
