/* Ed25519, SHA-256 and key files: known answers and negative cases. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"
#include "pk/crypto.h"

static void init(void)
{
    cr_assert_eq(pk_crypto_init(), PK_OK);
}

static void remove_dirs(void);

TestSuite(crypto, .init = init, .fini = remove_dirs);

/* RFC 8032 section 7.1, test 1 (empty message). */
static const char *rfc_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char *rfc_pk = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char *rfc_sig = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
                             "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

Test(crypto, rfc8032_vector_signs_and_verifies)
{
    uint8_t seed[32], pk[32], want_sig[64], sig[64];
    pk_keypair kp;

    cr_assert_eq(pk_hex_decode(rfc_seed, seed, 32), PK_OK);
    cr_assert_eq(pk_hex_decode(rfc_pk, pk, 32), PK_OK);
    cr_assert_eq(pk_hex_decode(rfc_sig, want_sig, 64), PK_OK);
    cr_assert_eq(pk_keypair_from_seed(&kp, seed), PK_OK);
    cr_assert(memcmp(kp.pk, pk, 32) == 0);
    pk_sign(&kp, (const uint8_t *)"", 0, sig);
    cr_assert(memcmp(sig, want_sig, 64) == 0);
    cr_assert_eq(pk_verify(pk, (const uint8_t *)"", 0, sig), PK_OK);
}

Test(crypto, tampered_message_signature_or_key_fails)
{
    pk_keypair kp, other;
    uint8_t msg[64], sig[64];

    cr_assert_eq(pk_keypair_generate(&kp), PK_OK);
    cr_assert_eq(pk_keypair_generate(&other), PK_OK);
    memset(msg, 7, sizeof(msg));
    pk_sign(&kp, msg, sizeof(msg), sig);
    cr_assert_eq(pk_verify(kp.pk, msg, sizeof(msg), sig), PK_OK);
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] ^= 1;
        cr_assert_eq(pk_verify(kp.pk, msg, sizeof(msg), sig), PK_EBADSIG, "byte %zu", i);
        msg[i] ^= 1;
    }
    for (size_t i = 0; i < sizeof(sig); i++) {
        sig[i] ^= 0x80;
        cr_assert_eq(pk_verify(kp.pk, msg, sizeof(msg), sig), PK_EBADSIG, "sig byte %zu", i);
        sig[i] ^= 0x80;
    }
    cr_assert_eq(pk_verify(other.pk, msg, sizeof(msg), sig), PK_EBADSIG);
}

Test(crypto, sha256_known_answer)
{
    uint8_t h[32];
    char hex[65];

    pk_sha256("abc", 3, h);
    pk_hex_encode(h, 32, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(crypto, hex_decode_refuses_bad_input)
{
    uint8_t out[4];

    cr_assert_eq(pk_hex_decode("0011223", out, 4), PK_EINVAL);
    cr_assert_eq(pk_hex_decode("00112g33", out, 4), PK_EINVAL);
    cr_assert_eq(pk_hex_decode("00112233", out, 4), PK_OK);
    cr_assert_eq(out[3], 0x33);
}

/* Folders made by temp_path, removed after each test: key files must not outlive it. */
static char dirs[4][32];
static int n_dirs;

static void remove_dirs(void)
{
    for (int i = 0; i < n_dirs; i++)
        h_remove_tree(dirs[i]);
    n_dirs = 0;
}

static void temp_path(char *buf, size_t len, const char *name)
{
    char *dir;

    cr_assert_lt(n_dirs, 4);
    dir = dirs[n_dirs++];
    snprintf(dir, sizeof(dirs[0]), "/tmp/pactum-keys-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(buf, len, "%s/%s", dir, name);
}

Test(crypto, key_file_round_trip_with_mode_0600)
{
    char path[256], pub[300];
    pk_keypair kp, back;
    uint8_t pk[32];
    struct stat sb;

    temp_path(path, sizeof(path), "a.key");
    cr_assert_eq(pk_keypair_generate(&kp), PK_OK);
    cr_assert_eq(pk_key_save(path, &kp), PK_OK);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    cr_assert_eq(pk_key_load(path, &back), PK_OK);
    cr_assert(memcmp(kp.sk, back.sk, sizeof(kp.sk)) == 0);
    snprintf(pub, sizeof(pub), "%s.pub", path);
    cr_assert_eq(pk_pubkey_load(pub, pk), PK_OK);
    cr_assert(memcmp(pk, kp.pk, 32) == 0);
    cr_assert_eq(pk_pubkey_load(path, pk), PK_OK, "a secret key file also yields its public key");
    cr_assert_eq(pk_key_save(path, &kp), PK_EEXIST, "an existing key is never overwritten");
    pk_keypair_wipe(&back);
    for (size_t i = 0; i < sizeof(back.sk); i++)
        cr_assert_eq(back.sk[i], 0);
}

Test(crypto, key_file_readable_by_others_is_refused)
{
    char path[256];
    pk_keypair kp, back;

    temp_path(path, sizeof(path), "loose.key");
    cr_assert_eq(pk_keypair_generate(&kp), PK_OK);
    cr_assert_eq(pk_key_save(path, &kp), PK_OK);
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(pk_key_load(path, &back), PK_EPERM);
    cr_assert(strstr(pk_error_msg(), "chmod 600") != NULL, "%s", pk_error_msg());
}

Test(crypto, key_file_with_mismatched_public_key_is_refused)
{
    char path[256];
    FILE *f;
    pk_keypair back;

    temp_path(path, sizeof(path), "bad.key");
    f = fopen(path, "w");
    cr_assert(f != NULL);
    fprintf(f, "{\"kind\":\"pactum-ed25519-secret-key\",\"seed\":\"%s\",\"public_key\":\"%s\"}",
            rfc_seed, "00000000000000000000000000000000000000000000000000000000000000ff");
    fclose(f);
    chmod(path, 0600);
    cr_assert_eq(pk_key_load(path, &back), PK_ECRYPTO);
}
