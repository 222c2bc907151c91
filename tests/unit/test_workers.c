/* Partition lists and retrying a batch in place. */
#include <criterion/criterion.h>

#include "pk/runner.h"
#include "pk/workers.h"

Test(partitions, lists_and_ranges)
{
    uint64_t m = 0;

    cr_assert_eq(pk_partitions_parse("all", 4, &m), PK_OK);
    cr_assert_eq(m, 0xf);
    cr_assert_eq(pk_partitions_parse("0,2-3", 4, &m), PK_OK);
    cr_assert_eq(m, 0xd);
    cr_assert_eq(pk_partitions_parse("1", 4, &m), PK_OK);
    cr_assert_eq(m, 0x2);
    cr_assert_eq(pk_partitions_parse("4", 4, &m), PK_EINVAL, "partition 4 of 0-3");
    cr_assert_eq(pk_partitions_parse("3-1", 4, &m), PK_EINVAL);
    cr_assert_eq(pk_partitions_parse("1;2", 4, &m), PK_EINVAL);
    cr_assert_eq(pk_partitions_parse("", 4, &m), PK_EINVAL);
}

typedef struct attempts {
    int calls;         /* times called */
    int fail_first;    /* fail this many times */
    pk_status failure; /* with this status */
    natsMsgList *seen; /* the list passed the first time */
    bool same_list;    /* every call saw that list */
} attempts;

static pk_status flaky(void *ctx, natsMsgList *list)
{
    attempts *a = ctx;

    if (a->calls++ == 0)
        a->seen = list;
    a->same_list &= list == a->seen;
    return a->calls <= a->fail_first ? PK_ERR(a->failure, "simulated failure") : PK_OK;
}

Test(batch, a_failed_batch_is_retried_as_it_is_until_it_succeeds)
{
    natsMsgList list = {0};
    attempts a = {.fail_first = 2, .failure = PK_EBUS, .same_list = true};
    pk_metric retries = {"retries", NULL, "", PK_COUNTER, 0};

    cr_assert_eq(pk_batch_until_done(flaky, &a, &list, "test", &retries), PK_OK);
    cr_assert_eq(a.calls, 3);
    cr_assert_eq(pk_metric_get(&retries), 2, "each failed attempt is counted");
    cr_assert(a.same_list, "the same batch, not a newer one");
}

Test(batch, a_full_store_stops_at_once)
{
    natsMsgList list = {0};
    attempts a = {.fail_first = 100, .failure = PK_ESTORE_FULL, .same_list = true};

    cr_assert_eq(pk_batch_until_done(flaky, &a, &list, "test", NULL), PK_ESTORE_FULL);
    cr_assert_eq(a.calls, 1, "retrying cannot free the map");
}

Test(batch, shutdown_leaves_the_batch_unacknowledged)
{
    natsMsgList list = {0};
    attempts a = {.fail_first = 100, .failure = PK_EBUS, .same_list = true};

    pk_shutdown = 1;
    cr_assert_eq(pk_batch_until_done(flaky, &a, &list, "test", NULL), PK_ESHUTDOWN);
    cr_assert_eq(a.calls, 1);
}
