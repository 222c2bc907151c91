/* Token buckets: the burst, the refill rate, keys apart, forgetting full buckets. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "pk/ratelimit.h"

static pk_ratelimit *rl;

static void fini(void)
{
    pk_ratelimit_destroy(rl);
    rl = NULL;
}

TestSuite(ratelimit, .fini = fini);

Test(ratelimit, a_burst_then_the_rate)
{
    cr_assert_eq(pk_ratelimit_create(&rl, 100, 50, 16), PK_OK);
    cr_assert(pk_ratelimit_take(rl, "a", 50, 0), "the whole burst at once");
    cr_assert_not(pk_ratelimit_take(rl, "a", 1, 0), "nothing left");
    cr_assert_not(pk_ratelimit_take(rl, "a", 2, 10), "10 ms at 100/s refill one token");
    cr_assert(pk_ratelimit_take(rl, "a", 1, 10));
    cr_assert(pk_ratelimit_take(rl, "a", 50, 10000), "never more than the burst...");
    cr_assert_not(pk_ratelimit_take(rl, "a", 1, 10000), "...however long it waited");
}

Test(ratelimit, a_refused_take_takes_nothing)
{
    cr_assert_eq(pk_ratelimit_create(&rl, 10, 10, 16), PK_OK);
    cr_assert_not(pk_ratelimit_take(rl, "a", 11, 0), "more than the bucket holds");
    cr_assert(pk_ratelimit_take(rl, "a", 10, 0), "the refusal took nothing");
}

Test(ratelimit, keys_have_their_own_buckets)
{
    cr_assert_eq(pk_ratelimit_create(&rl, 1, 5, 16), PK_OK);
    cr_assert(pk_ratelimit_take(rl, "flooder", 5, 0));
    cr_assert_not(pk_ratelimit_take(rl, "flooder", 1, 0));
    cr_assert(pk_ratelimit_take(rl, "victim", 5, 0), "another key is not touched");
}

Test(ratelimit, rate_zero_is_no_limit)
{
    cr_assert_eq(pk_ratelimit_create(&rl, 0, 0, 16), PK_OK);
    for (int i = 0; i < 1000; i++)
        cr_assert(pk_ratelimit_take(rl, "a", 1000000, 0));
}

Test(ratelimit, full_buckets_are_forgotten_and_busy_ones_kept)
{
    const int64_t later = 1000 * 20000;
    char key[32];

    cr_assert_eq(pk_ratelimit_create(&rl, 1, 10, 8), PK_OK);
    /* many more keys than the table tracks, each full again by the time the next comes */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        cr_assert(pk_ratelimit_take(rl, key, 1, (int64_t)i * 20000), "key %d", i);
    }
    cr_assert(pk_ratelimit_take(rl, "busy", 10, later));
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "new%d", i);
        (void)pk_ratelimit_take(rl, key, 1, later);
    }
    cr_assert_not(pk_ratelimit_take(rl, "busy", 1, later), "an emptied bucket is not forgotten");
    cr_assert(pk_ratelimit_take(rl, "busy", 1, later + 1000), "and refills at its rate");
    cr_assert(pk_ratelimit_take(rl, "k3", 10, later), "a forgotten key starts full");
}
