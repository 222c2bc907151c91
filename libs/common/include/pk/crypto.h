/*
 * pk/crypto.h - Ed25519 keys and signatures, SHA-256, hex, key files.
 *
 * Sizes come from libsodium's constants. Secret keys are wiped with
 * sodium_memzero by pk_keypair_wipe; verification results must be checked.
 */
#ifndef PK_CRYPTO_H
#define PK_CRYPTO_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pk/status.h"

#define PK_PUBKEY_BYTES crypto_sign_PUBLICKEYBYTES
#define PK_SECKEY_BYTES crypto_sign_SECRETKEYBYTES
#define PK_SEED_BYTES   crypto_sign_SEEDBYTES
#define PK_SIG_BYTES    crypto_sign_BYTES
#define PK_HASH_BYTES   crypto_hash_sha256_BYTES

typedef struct pk_keypair {
    uint8_t pk[PK_PUBKEY_BYTES]; /* public key */
    uint8_t sk[PK_SECKEY_BYTES]; /* secret key (seed || public key); wipe after use */
} pk_keypair;

/* Initialise libsodium; safe to call more than once. */
pk_status pk_crypto_init(void) PK_MUST_CHECK;

pk_status pk_keypair_generate(pk_keypair *kp) PK_MUST_CHECK;

/* Derive a keypair from a 32-byte seed (deterministic, for tests and vectors). */
pk_status pk_keypair_from_seed(pk_keypair *kp, const uint8_t seed[PK_SEED_BYTES]) PK_MUST_CHECK;

/* Overwrite the secret key with zeros. */
void pk_keypair_wipe(pk_keypair *kp);

/* Detached Ed25519 signature of msg into sig. */
void pk_sign(const pk_keypair *kp, const uint8_t *msg, size_t len, uint8_t sig[PK_SIG_BYTES]);

/* PK_OK if sig is a valid signature of msg by pk, PK_EBADSIG otherwise. */
pk_status pk_verify(const uint8_t pk[PK_PUBKEY_BYTES], const uint8_t *msg, size_t len,
                    const uint8_t sig[PK_SIG_BYTES]) PK_MUST_CHECK;

void pk_sha256(const void *data, size_t len, uint8_t out[PK_HASH_BYTES]);

/* Constant-time equality of two byte strings of length len. */
bool pk_bytes_equal(const void *a, const void *b, size_t len);

/* Lower-case hex of bin into out, which must hold 2*len+1 bytes. */
void pk_hex_encode(const uint8_t *bin, size_t len, char *out);

/* Decode exactly outlen bytes of hex; PK_EINVAL on bad length or digits. */
pk_status pk_hex_decode(const char *hex, uint8_t *out, size_t outlen) PK_MUST_CHECK;

/*
 * Key files. A secret key file is JSON
 *   {"kind": "pactum-ed25519-secret-key", "public_key": HEX, "seed": HEX}
 * written with mode 0600; its public key goes beside it in PATH.pub as one
 * line of hex. pk_key_load refuses a secret key file that group or others can
 * read or write (PK_EPERM, with the chmod to run).
 */
pk_status pk_key_save(const char *path, const pk_keypair *kp) PK_MUST_CHECK;
pk_status pk_key_load(const char *path, pk_keypair *kp) PK_MUST_CHECK;

/* Read a public key from a .pub file, a secret key file, or a hex string. */
pk_status pk_pubkey_load(const char *path_or_hex, uint8_t pk[PK_PUBKEY_BYTES]) PK_MUST_CHECK;

#endif
