/* nkeys and NATS JWTs: the text forms NATS uses, and tokens that verify. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "pk/natsauth.h"

static pk_keypair kp;

static void init(void)
{
    uint8_t seed[32];

    cr_assert_eq(pk_crypto_init(), PK_OK);
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    cr_assert_eq(pk_keypair_from_seed(&kp, seed), PK_OK);
}

TestSuite(natsauth, .init = init);

/* Made with an independent implementation of the nkey format from the seed 00 01 .. 1f. */
Test(natsauth, public_keys_and_seeds_match_the_nkey_format)
{
    char pub[PK_NKEY_PUBLIC_LEN + 1], seed[PK_NKEY_SEED_LEN + 1];

    pk_nkey_public(PK_NKEY_OPERATOR, kp.pk, pub);
    cr_assert_str_eq(pub, "OAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QZVT");
    pk_nkey_public(PK_NKEY_ACCOUNT, kp.pk, pub);
    cr_assert_str_eq(pub, "AAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QPZV");
    pk_nkey_public(PK_NKEY_USER, kp.pk, pub);
    cr_assert_str_eq(pub, "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK");
    pk_nkey_seed(PK_NKEY_OPERATOR, &kp, seed);
    cr_assert_str_eq(seed, "SOAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H2AJA");
    pk_nkey_seed(PK_NKEY_ACCOUNT, &kp, seed);
    cr_assert_str_eq(seed, "SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI");
    pk_nkey_seed(PK_NKEY_USER, &kp, seed);
    cr_assert_str_eq(seed, "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y");
}

Test(natsauth, seeds_and_keys_decode_and_damage_is_caught)
{
    char pub[PK_NKEY_PUBLIC_LEN + 1], seed[PK_NKEY_SEED_LEN + 1];
    uint8_t back[32];
    pk_keypair k2;
    pk_nkey_kind kind;

    pk_nkey_seed(PK_NKEY_USER, &kp, seed);
    cr_assert_eq(pk_nkey_seed_decode(seed, &kind, &k2), PK_OK);
    cr_assert_eq(kind, PK_NKEY_USER);
    cr_assert(memcmp(k2.pk, kp.pk, 32) == 0);
    pk_nkey_public(PK_NKEY_ACCOUNT, kp.pk, pub);
    cr_assert_eq(pk_nkey_public_decode(pub, PK_NKEY_ACCOUNT, back), PK_OK);
    cr_assert(memcmp(back, kp.pk, 32) == 0);
    cr_assert_eq(pk_nkey_public_decode(pub, PK_NKEY_USER, back), PK_EINVAL, "wrong kind");
    pub[10] = pub[10] == 'A' ? 'B' : 'A';
    cr_assert_eq(pk_nkey_public_decode(pub, PK_NKEY_ACCOUNT, back), PK_EINVAL, "checksum");
    cr_assert_eq(pk_nkey_seed_decode(pub, &kind, &k2), PK_EINVAL, "a public key is not a seed");
    cr_assert_eq(pk_nkey_seed_decode("SU!", &kind, &k2), PK_EINVAL);
}

Test(natsauth, a_user_jwt_verifies_and_says_what_it_was_given)
{
    const char *pub[] = {"pactum.raw.bot", NULL}, *sub[] = {"_INBOX.x.>", NULL};
    json_t *perms = pk_jwt_perms(pub, sub, true), *claims = NULL;
    uint8_t user[32] = {9}, issuer[32];
    char *jwt = NULL, upub[PK_NKEY_PUBLIC_LEN + 1];

    cr_assert_eq(pk_jwt_user(&kp, NULL, user, "bot", perms, &jwt), PK_OK);
    cr_assert_eq(pk_jwt_open(jwt, &claims, issuer), PK_OK, "%s", pk_error_msg());
    cr_assert(memcmp(issuer, kp.pk, 32) == 0);
    pk_nkey_public(PK_NKEY_USER, user, upub);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "sub")), upub);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "name")), "bot");
    cr_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_object_get(json_object_get(claims, "nats"), "pub"), "allow"), 0)),
        "pactum.raw.bot");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(claims, "nats"), "payload")),
                 -1, "a missing limit would be a limit of 0");
    /* one changed character of the claims and it no longer verifies */
    {
        char *dot = strchr(jwt, '.') + 5;
        *dot = *dot == 'A' ? 'B' : 'A';
        json_decref(claims);
        claims = NULL;
        cr_assert_neq(pk_jwt_open(jwt, &claims, issuer), PK_OK);
    }
    json_decref(perms);
    free(jwt);
}

Test(natsauth, creds_files_round_trip)
{
    char seed[PK_NKEY_SEED_LEN + 1], path[] = "/tmp/pactum-creds-XXXXXX", *text, *jwt = NULL;
    pk_keypair back;
    FILE *f;
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    pk_nkey_seed(PK_NKEY_USER, &kp, seed);
    text = pk_creds_text("header.claims.sig", seed);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    cr_assert_eq(pk_creds_read(path, &jwt, &back), PK_OK, "%s", pk_error_msg());
    cr_assert_str_eq(jwt, "header.claims.sig");
    cr_assert(memcmp(back.pk, kp.pk, 32) == 0);
    unlink(path);
    free(text);
    free(jwt);
}
