/* The status type and the per-thread error sentence, and wrapping an error with context. */
#include <criterion/criterion.h>
#include <string.h>

#include "pk/answer.h"
#include "pk/crypto.h"
#include "pk/status.h"

static pk_status inner(void)
{
    return PK_ERR(PK_EDECODE, "unsupported envelope version %d", 9);
}

Test(status, an_error_names_its_sentence_and_place)
{
    cr_assert_eq(inner(), PK_EDECODE);
    cr_assert_str_eq(pk_error_msg(), "unsupported envelope version 9");
    cr_assert_not_null(strstr(pk_error_where(), "test_status.c:"));
    cr_assert_not_null(strstr(pk_error_where(), "inner()"));
    pk_error_clear();
    cr_assert_str_eq(pk_error_msg(), "");
}

Test(status, a_new_error_may_quote_the_last_one_without_garbling_it)
{
    inner();
    cr_assert_eq(PK_ERR(PK_EINVAL, "not a signed answer: %s", pk_error_msg()), PK_EINVAL);
    cr_assert_str_eq(pk_error_msg(), "not a signed answer: unsupported envelope version 9");
}

Test(status, wrapping_adds_context_and_keeps_the_cause_and_its_place)
{
    inner();
    cr_assert_eq(PK_WRAP(PK_EBUS, "partition %u", 3u), PK_EBUS);
    cr_assert_str_eq(pk_error_msg(), "partition 3: unsupported envelope version 9");
    /* where it happened first, then where the context was added */
    cr_assert_not_null(strstr(pk_error_where(), "inner()"));
    cr_assert_not_null(strstr(pk_error_where(), "wrapping_adds_context"));
    cr_assert_lt(strstr(pk_error_where(), "inner()"),
                 strstr(pk_error_where(), "wrapping_adds_context"));
}

Test(status, a_long_cause_is_cut_not_overrun)
{
    char big[2000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    PK_ERR(PK_EINVAL, "%s", big);
    PK_WRAP(PK_EINVAL, "context");
    cr_assert_eq(strncmp(pk_error_msg(), "context: xxx", 12), 0);
    cr_assert_lt(strlen(pk_error_msg()), sizeof(big));
}

Test(status, a_garbage_answer_says_why_once)
{
    uint8_t junk[] = {0xff, 0x01, 0x02};

    cr_assert_eq(pk_crypto_init(), PK_OK);
    cr_assert_neq(pk_answer_open(junk, sizeof(junk), 0, NULL, NULL, NULL, NULL), PK_OK);
    /* the prefix appears once, followed by the cause */
    cr_assert_eq(strncmp(pk_error_msg(), "not a signed answer: ", 21), 0, "%s", pk_error_msg());
    cr_assert_null(strstr(pk_error_msg() + 21, "not a signed answer"), "%s", pk_error_msg());
    cr_assert_gt(strlen(pk_error_msg()), 21);
}

Test(status, every_status_has_a_name)
{
    for (int s = PK_OK; s <= PK_ESHUTDOWN; s++)
        cr_assert_neq(strcmp(pk_status_str((pk_status)s), "PK_E?"), 0, "status %d", s);
}
