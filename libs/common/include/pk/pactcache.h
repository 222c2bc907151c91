/*
 * pk/pactcache.h - compiled pacts by (id, version), shared by everything
 * that judges or governs by a pact: the evaluator's clauses, the scorer's
 * governance sections, the oracle's authorize. A pact version never changes
 * once registered, so an entry never goes stale; entries not in use are
 * evicted least recently used first.
 *
 * Thread-safe. An entry returned by pk_pact_cache_get stays valid (is never
 * evicted) until it is given back with pk_pact_cache_release.
 */
#ifndef PK_PACTCACHE_H
#define PK_PACTCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/pact.h"
#include "pk/registry.h"

typedef struct pk_compiled {
    char id[PK_ID_MAX + 1];      /* pact id */
    uint32_t version;            /* its version */
    uint8_t hash[PK_HASH_BYTES]; /* SHA-256 of the document */
    int64_t registered_ms;       /* when this version was registered */
    uint64_t registry_seq;       /* its position in PACTUM_REGISTRY */
    pk_pact *pact;               /* the compiled pact (with its governance section) */
    /* the cache's own bookkeeping */
    unsigned refs; /* holders that have not released it */
    uint64_t used; /* last use, for eviction */
    bool loose;    /* not in the table (it was full of entries in use): freed on release */
} pk_compiled;

typedef struct pk_pact_cache pk_pact_cache;

/* A cache of about `slots` compiled pacts read from reg; *out written only on success. */
pk_status pk_pact_cache_create(pk_pact_cache **out, pk_registry *reg, size_t slots) PK_MUST_CHECK;

/* Free the cache; no entry may still be held. NULL is a no-op. */
void pk_pact_cache_destroy(pk_pact_cache *c);

/*
 * The compiled pact (id, version), from the cache or read through txn from the
 * registry copy. PK_ENOTFOUND if the copy does not hold that version (yet),
 * PK_EDECODE if the registered document does not compile. *out is held until
 * pk_pact_cache_release.
 */
pk_status pk_pact_cache_get(pk_pact_cache *c, MDB_txn *txn, const char *id, uint32_t version,
                            const pk_compiled **out) PK_MUST_CHECK;

/* Give back an entry from pk_pact_cache_get; NULL is a no-op. */
void pk_pact_cache_release(pk_pact_cache *c, const pk_compiled *p);

/*
 * Does a pact in force for agent (its newest version of each) name who as a
 * counterparty, one that may report about it and dispute its verdicts?
 */
bool pk_pact_cache_counterparty(pk_pact_cache *c, pk_registry *reg, MDB_txn *txn, const char *agent,
                                const char *who);

#endif
