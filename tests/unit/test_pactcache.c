/* The compiled-pact cache: hits, versions, eviction of what nobody holds, and failures. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/pactcache.h"

static char dir[64];
static pk_store *st;
static pk_registry *reg;
static pk_pact_cache *cache;

#define DOC_FMT                                                                                    \
    "{\"pactum\": 1, \"id\": \"%s\", \"agent\": \"bot\", \"title\": \"t\", \"clauses\": ["         \
    "{\"id\": \"c%u\", \"promise\": \"p\", \"severity\": \"high\", \"kind\": \"forbidden\","       \
    " \"match\": {\"field\": \"labels.pii\", \"eq\": \"leaked\"}, \"window\": \"1h\"}]}"

/* Register pact id at version with a clause named c<version>. */
static void add_pact(const char *id, uint32_t version, uint64_t seq, bool valid)
{
    Pactum__V1__PactRecord p = PACTUM__V1__PACT_RECORD__INIT;
    Pactum__V1__RegistryRecord r = PACTUM__V1__REGISTRY_RECORD__INIT;
    char doc[1024];
    uint8_t *buf, hash[32];
    size_t len;
    MDB_txn *txn;

    if (valid)
        snprintf(doc, sizeof(doc), DOC_FMT, id, version);
    else
        snprintf(doc, sizeof(doc), "{\"pactum\": 1, \"id\": \"%s\"}", id);
    memset(hash, (int)version, sizeof(hash));
    p.pact_id = (char *)id;
    p.agent_id = "bot";
    p.version = version;
    p.document.data = (uint8_t *)doc;
    p.document.len = strlen(doc);
    p.hash.data = hash;
    p.hash.len = 32;
    p.registered_ms = 1000 * version;
    r.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_PACT;
    r.pact = &p;
    cr_assert_eq(pk_pack(&r.base, &buf, &len), PK_OK);
    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_registry_apply(reg, txn, buf, len, seq), PK_OK);
    cr_assert_eq(pk_txn_commit(txn), PK_OK);
    free(buf);
}

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/pactum-pc-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert_eq(pk_store_open(&st, dir, 16, 8), PK_OK);
    cr_assert_eq(pk_registry_open(&reg, st, NULL), PK_OK);
    cr_assert_eq(pk_pact_cache_create(&cache, reg, 16), PK_OK);
}

static void fini(void)
{
    pk_pact_cache_destroy(cache);
    pk_registry_close(reg);
    pk_store_close(st);
    h_remove_tree(dir);
}

TestSuite(pactcache, .init = init, .fini = fini);

static const pk_compiled *get(const char *id, uint32_t version, pk_status want)
{
    const pk_compiled *p = NULL;
    MDB_txn *txn;
    pk_status s;

    cr_assert_eq(pk_txn_begin(st, false, &txn), PK_OK);
    s = pk_pact_cache_get(cache, txn, id, version, &p);
    pk_txn_abort(txn);
    cr_assert_eq(s, want, "%s v%u: %s (%s)", id, version, pk_status_str(s), pk_error_msg());
    return p;
}

Test(pactcache, each_version_is_its_own_entry_and_a_hit_is_the_same_entry)
{
    const pk_compiled *a1, *a2, *again;

    add_pact("p", 1, 1, true);
    add_pact("p", 2, 2, true);
    a1 = get("p", 1, PK_OK);
    a2 = get("p", 2, PK_OK);
    cr_assert_str_eq(a1->pact->clauses[0].id, "c1");
    cr_assert_str_eq(a2->pact->clauses[0].id, "c2");
    cr_assert_eq(a1->registered_ms, 1000);
    cr_assert_eq(a2->registry_seq, 2);
    cr_assert_eq(a2->hash[0], 2);
    again = get("p", 1, PK_OK);
    cr_assert_eq(again, a1);
    pk_pact_cache_release(cache, a1);
    pk_pact_cache_release(cache, again);
    pk_pact_cache_release(cache, a2);
}

Test(pactcache, missing_and_broken_pacts_say_so)
{
    add_pact("broken", 1, 1, false);
    cr_assert_null(get("nope", 1, PK_ENOTFOUND));
    cr_assert_null(get("broken", 1, PK_EDECODE));
    cr_assert_not_null(strstr(pk_error_msg(), "does not compile"), "%s", pk_error_msg());
}

Test(pactcache, held_entries_are_never_evicted)
{
    const pk_compiled *held[40];
    char id[16];

    for (unsigned i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "p%u", i);
        add_pact(id, 1, i + 1, true);
    }
    /* more pacts held at once than the cache has slots: every one stays right */
    for (unsigned i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "p%u", i);
        held[i] = get(id, 1, PK_OK);
    }
    for (unsigned i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "p%u", i);
        cr_assert_str_eq(held[i]->id, id);
        cr_assert_str_eq(held[i]->pact->id, id);
    }
    for (unsigned i = 0; i < 40; i++)
        pk_pact_cache_release(cache, held[i]);
    /* released, they can be evicted and read again */
    for (unsigned i = 0; i < 40; i++) {
        const pk_compiled *p;
        snprintf(id, sizeof(id), "p%u", (i * 7) % 40);
        p = get(id, 1, PK_OK);
        cr_assert_str_eq(p->pact->id, id);
        pk_pact_cache_release(cache, p);
    }
}
