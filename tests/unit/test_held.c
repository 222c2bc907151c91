/*
 * The oracle's containments on their way into the read model: a change that contains or
 * suspends an agent is seen by authorize from the moment it is decoded until the commit that
 * stores it, and never in place of a newer stored state; nothing else is held.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "oracle.h"

static oracle o;

static void setup(void)
{
    memset(&o, 0, sizeof(o));
    oracle_held_init(&o);
}

static void teardown(void)
{
    oracle_held_free(&o);
}

TestSuite(held, .init = setup, .fini = teardown);

/* A change of agent to tier, its change_seq n. */
static void change(const char *agent, Pactum__V1__Tier tier, uint64_t n, uint64_t trust_seq)
{
    Pactum__V1__TrustChange ch = PACTUM__V1__TRUST_CHANGE__INIT;
    Pactum__V1__TrustState st = PACTUM__V1__TRUST_STATE__INIT;

    ch.agent_id = (char *)agent;
    ch.change_seq = n;
    st.agent_id = (char *)agent;
    st.change_seq = n;
    st.tier = tier;
    ch.state = &st;
    oracle_hold(&o, &ch, trust_seq);
}

/* The tier held for agent over a stored state at change_seq, or -1. */
static int held_tier(const char *agent, uint64_t change_seq, uint64_t *seq)
{
    Pactum__V1__TrustState *s = oracle_held_state(&o, agent, change_seq, seq);
    int tier = s ? (int)s->tier : -1;

    if (s)
        pactum__v1__trust_state__free_unpacked(s, NULL);
    return tier;
}

Test(held, a_containment_is_seen_until_its_commit_and_only_over_older_states)
{
    uint64_t seq = 0;

    change("bot", PACTUM__V1__TIER__TIER_CONTAINED, 5, 40);
    cr_assert_eq(held_tier("bot", 4, &seq), PACTUM__V1__TIER__TIER_CONTAINED);
    cr_assert_eq(seq, 40);
    cr_assert_eq(held_tier("bot", 5, &seq), -1, "the stored state is as new: it wins");
    cr_assert_eq(held_tier("other", 0, &seq), -1);
    oracle_release_held(&o, 39);
    cr_assert_eq(held_tier("bot", 4, &seq), PACTUM__V1__TIER__TIER_CONTAINED, "not committed");
    oracle_release_held(&o, 40);
    cr_assert_eq(held_tier("bot", 4, &seq), -1, "committed: the read model has it");
}

Test(held, only_containment_and_suspension_are_held_and_a_newer_change_replaces_an_older)
{
    uint64_t seq = 0;

    change("bot", PACTUM__V1__TIER__TIER_TRUSTED, 3, 10);
    change("bot", PACTUM__V1__TIER__TIER_WATCH, 4, 11);
    cr_assert_eq(held_tier("bot", 0, &seq), -1, "a change that denies nothing was held");
    change("bot", PACTUM__V1__TIER__TIER_SUSPENDED, 6, 13);
    change("bot", PACTUM__V1__TIER__TIER_CONTAINED, 5, 12); /* older, read late */
    cr_assert_eq(held_tier("bot", 0, &seq), PACTUM__V1__TIER__TIER_SUSPENDED);
    cr_assert_eq(seq, 13);
}

Test(held, a_full_table_loses_only_the_head_start)
{
    uint64_t seq = 0;
    char id[32];

    for (int i = 0; i < ORACLE_HELD_SLOTS + 10; i++) {
        snprintf(id, sizeof(id), "a%d", i);
        change(id, PACTUM__V1__TIER__TIER_CONTAINED, 1, (uint64_t)i + 1);
    }
    cr_assert_eq(held_tier("a0", 0, &seq), PACTUM__V1__TIER__TIER_CONTAINED);
    snprintf(id, sizeof(id), "a%d", ORACLE_HELD_SLOTS - 1);
    cr_assert_eq(held_tier(id, 0, &seq), PACTUM__V1__TIER__TIER_CONTAINED);
    snprintf(id, sizeof(id), "a%d", ORACLE_HELD_SLOTS);
    cr_assert_eq(held_tier(id, 0, &seq), -1, "a table of %d held more", ORACLE_HELD_SLOTS);
    oracle_release_held(&o, UINT64_MAX);
    change(id, PACTUM__V1__TIER__TIER_CONTAINED, 1, 500);
    cr_assert_eq(held_tier(id, 0, &seq), PACTUM__V1__TIER__TIER_CONTAINED, "slots came back");
}
