/* The registry copy: applying records and looking up versions in force. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pk/registry.h"

static char dir[64];
static pk_store *st;
static pk_registry *reg;

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/pactum-reg-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert_eq(pk_store_open(&st, dir, 16, 8), PK_OK);
    cr_assert_eq(pk_registry_open(&reg, st, NULL), PK_OK);
}

static void fini(void)
{
    pk_registry_close(reg);
    pk_store_close(st);
    h_remove_tree(dir);
}

TestSuite(registry, .init = init, .fini = fini);

/* Apply a registry record as the stream would deliver it at seq. */
static void apply(MDB_txn *txn, Pactum__V1__RegistryRecord *r, uint64_t seq)
{
    uint8_t *buf;
    size_t len;

    cr_assert_eq(pk_pack(&r->base, &buf, &len), PK_OK);
    cr_assert_eq(pk_registry_apply(reg, txn, buf, len, seq), PK_OK);
    free(buf);
}

static void apply_agent(MDB_txn *txn, const char *id, uint8_t keybyte, uint64_t seq)
{
    Pactum__V1__AgentRecord a = PACTUM__V1__AGENT_RECORD__INIT;
    Pactum__V1__RegistryRecord r = PACTUM__V1__REGISTRY_RECORD__INIT;
    uint8_t key[32];

    memset(key, keybyte, sizeof(key));
    a.agent_id = (char *)id;
    a.agent_key.data = key;
    a.agent_key.len = 32;
    a.role = PACTUM__V1__ROLE__ROLE_AGENT;
    r.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_AGENT;
    r.agent = &a;
    apply(txn, &r, seq);
}

static void apply_pact(MDB_txn *txn, const char *id, const char *agent, uint32_t version,
                       uint64_t seq)
{
    Pactum__V1__PactRecord p = PACTUM__V1__PACT_RECORD__INIT;
    Pactum__V1__RegistryRecord r = PACTUM__V1__REGISTRY_RECORD__INIT;

    p.pact_id = (char *)id;
    p.agent_id = (char *)agent;
    p.version = version;
    r.record_case = PACTUM__V1__REGISTRY_RECORD__RECORD_PACT;
    r.pact = &p;
    apply(txn, &r, seq);
}

Test(registry, agents_are_found_by_id)
{
    MDB_txn *txn;
    Pactum__V1__AgentRecord *a = NULL;
    uint64_t seq = 0;

    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    apply_agent(txn, "bot-1", 7, 1);
    cr_assert_eq(pk_registry_agent(reg, txn, "bot-1", &a, &seq), PK_OK);
    cr_assert_eq(seq, 1);
    cr_assert_eq(a->agent_key.data[0], 7);
    pactum__v1__agent_record__free_unpacked(a, NULL);
    cr_assert_eq(pk_registry_agent(reg, txn, "bot-2", &a, NULL), PK_ENOTFOUND);
    pk_txn_abort(txn);
}

Test(registry, version_in_force_depends_on_registry_position)
{
    MDB_txn *txn;
    uint32_t v = 0;
    uint64_t seq = 0;
    Pactum__V1__PactRecord *p = NULL;

    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    apply_agent(txn, "bot-1", 7, 1);
    apply_pact(txn, "p", "bot-1", 1, 2);
    apply_pact(txn, "other", "bot-1", 1, 3);
    apply_pact(txn, "p", "bot-1", 2, 5);
    apply_pact(txn, "q", "bot-2", 1, 6);
    cr_assert_eq(pk_registry_pact_version(reg, txn, "p", 0, &v, &seq), PK_OK);
    cr_assert_eq(v, 2);
    cr_assert_eq(seq, 5);
    cr_assert_eq(pk_registry_pact_version(reg, txn, "p", 4, &v, &seq), PK_OK);
    cr_assert_eq(v, 1, "an event accepted at registry #4 is judged by version 1");
    cr_assert_eq(pk_registry_pact_version(reg, txn, "p", 1, &v, NULL), PK_ENOTFOUND,
                 "nothing was in force at #1");
    cr_assert_eq(pk_registry_pact_version(reg, txn, "o", 0, &v, NULL), PK_ENOTFOUND,
                 "a prefix of an id is not the id");
    cr_assert_eq(pk_registry_pact(reg, txn, "p", 1, 0, &p, &seq), PK_OK);
    cr_assert_eq(p->version, 1);
    pactum__v1__pact_record__free_unpacked(p, NULL);
    cr_assert_eq(pk_registry_pact(reg, txn, "p", 3, 0, &p, NULL), PK_ENOTFOUND);
    pk_txn_abort(txn);
}

Test(registry, pacts_of_an_agent_are_listed_once)
{
    MDB_txn *txn;
    char **ids = NULL;
    size_t n = 0;

    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    apply_pact(txn, "p", "bot-1", 1, 2);
    apply_pact(txn, "p", "bot-1", 2, 3);
    apply_pact(txn, "z", "bot-1", 1, 4);
    apply_pact(txn, "q", "bot-2", 1, 5);
    cr_assert_eq(pk_registry_agent_pacts(reg, txn, "bot-1", &ids, &n), PK_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ids[0], "p");
    cr_assert_str_eq(ids[1], "z");
    pk_registry_ids_free(ids, n);
    pk_txn_abort(txn);
}

Test(registry, undecodable_records_are_skipped_not_fatal)
{
    MDB_txn *txn;
    const uint8_t junk[] = {0xff, 0xfe, 0x01};

    cr_assert_eq(pk_txn_begin(st, true, &txn), PK_OK);
    cr_assert_eq(pk_registry_apply(reg, txn, junk, sizeof(junk), 9), PK_OK);
    pk_txn_abort(txn);
}
