/*
 * The compiled-pact cache: a table of slots addressed by a hash of (id,
 * version) and probed over a short window. A miss takes the least recently
 * used slot of the window that nobody holds; when every slot of the window is
 * held, the pact is compiled into a loose entry that its holder frees.
 */
#include "pk/pactcache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBES 16 /* slots looked at for one (id, version) */

struct pk_pact_cache {
    pk_registry *reg;     /* borrowed: where pacts are read */
    pthread_mutex_t lock; /* guards the slots */
    pk_compiled *slot;    /* the table */
    size_t n;             /* its size */
    uint64_t clock;       /* use counter */
};

pk_status pk_pact_cache_create(pk_pact_cache **out, pk_registry *reg, size_t slots)
{
    pk_pact_cache *c = calloc(1, sizeof(*c));

    if (!c || !(c->slot = calloc(slots < PROBES ? PROBES : slots, sizeof(*c->slot)))) {
        free(c);
        return PK_ERR(PK_ENOMEM, "cannot allocate a pact cache of %zu slots", slots);
    }
    c->n = slots < PROBES ? PROBES : slots;
    c->reg = reg;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return PK_OK;
}

void pk_pact_cache_destroy(pk_pact_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        pk_pact_free(c->slot[i].pact);
    pthread_mutex_destroy(&c->lock);
    free(c->slot);
    free(c);
}

static size_t hash_of(const char *id, uint32_t version)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (size_t)(h ^ (version * 2654435761u));
}

/* Read and compile (id, version) into e (whose old pact, if any, the caller freed). */
static pk_status compile(pk_pact_cache *c, MDB_txn *txn, const char *id, uint32_t version,
                         pk_compiled *e)
{
    Pactum__V1__PactRecord *rec = NULL;
    uint64_t seq = 0;
    pk_lint lint = {0};
    pk_pact *pact = NULL;
    pk_status st = pk_registry_pact(c->reg, txn, id, version, 0, &rec, &seq);

    if (st == PK_ENOTFOUND)
        return PK_ERR(PK_ENOTFOUND, "pact %s v%u is not in the registry copy (yet)", id, version);
    if (st != PK_OK)
        return st;
    if (pk_pact_parse((const char *)rec->document.data, rec->document.len, &pact, &lint) != PK_OK) {
        st = PK_ERR(PK_EDECODE, "pact %s v%u in the registry does not compile: %s", id, version,
                    lint.n ? lint.msgs[0] : pk_error_msg());
        pk_lint_free(&lint);
        pactum__v1__pact_record__free_unpacked(rec, NULL);
        return st;
    }
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->version = version;
    if (rec->hash.len == sizeof(e->hash))
        memcpy(e->hash, rec->hash.data, sizeof(e->hash));
    e->registered_ms = rec->registered_ms;
    e->registry_seq = seq;
    e->pact = pact;
    pactum__v1__pact_record__free_unpacked(rec, NULL);
    return PK_OK;
}

pk_status pk_pact_cache_get(pk_pact_cache *c, MDB_txn *txn, const char *id, uint32_t version,
                            const pk_compiled **out)
{
    size_t h = hash_of(id, version);
    pk_compiled *victim = NULL, *loose;
    pk_status st;

    pthread_mutex_lock(&c->lock);
    for (size_t k = 0; k < PROBES; k++) {
        pk_compiled *e = &c->slot[(h + k) % c->n];
        if (e->pact && e->version == version && strcmp(e->id, id) == 0) {
            e->refs++;
            e->used = ++c->clock;
            *out = e;
            pthread_mutex_unlock(&c->lock);
            return PK_OK;
        }
        if (e->refs == 0 && (!victim || (victim->pact && (!e->pact || e->used < victim->used))))
            victim = e;
    }
    if (victim) {
        /* compiled under the lock: the registry read is local and a pact compiles in
         * microseconds, and two threads missing the same pact compile it once */
        pk_pact_free(victim->pact);
        victim->pact = NULL;
        if ((st = compile(c, txn, id, version, victim)) == PK_OK) {
            victim->refs = 1;
            victim->used = ++c->clock;
            *out = victim;
        }
        pthread_mutex_unlock(&c->lock);
        return st;
    }
    pthread_mutex_unlock(&c->lock);
    if (!(loose = calloc(1, sizeof(*loose))))
        return PK_ERR(PK_ENOMEM, "cannot allocate a compiled pact");
    if ((st = compile(c, txn, id, version, loose)) != PK_OK) {
        free(loose);
        return st;
    }
    loose->refs = 1;
    loose->loose = true;
    *out = loose;
    return PK_OK;
}

void pk_pact_cache_release(pk_pact_cache *c, const pk_compiled *p)
{
    pk_compiled *e = (pk_compiled *)p;

    if (!e)
        return;
    if (e->loose) {
        pk_pact_free(e->pact);
        free(e);
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (e->refs > 0)
        e->refs--;
    pthread_mutex_unlock(&c->lock);
}

bool pk_pact_cache_counterparty(pk_pact_cache *c, pk_registry *reg, MDB_txn *txn, const char *agent,
                                const char *who)
{
    char **ids = NULL;
    size_t n = 0;
    bool named = false;

    if (pk_registry_agent_pacts(reg, txn, agent, &ids, &n) != PK_OK)
        return false;
    for (size_t i = 0; i < n && !named; i++) {
        uint32_t version = 0;
        const pk_compiled *p = NULL;
        if (pk_registry_pact_version(reg, txn, ids[i], pk_registry_seq(reg), &version, NULL) !=
                PK_OK ||
            pk_pact_cache_get(c, txn, ids[i], version, &p) != PK_OK)
            continue;
        named = strcmp(p->pact->agent, agent) == 0 && pk_pact_counterparty(p->pact, who);
        pk_pact_cache_release(c, p);
    }
    pk_registry_ids_free(ids, n);
    return named;
}
