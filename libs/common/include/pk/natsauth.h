/*
 * pk/natsauth.h - NATS decentralised authentication, as nats-server 2.9
 * checks it: nkeys (Ed25519 keys in NATS's text form) and the JWTs that an
 * operator signs for its accounts and an account (or one of its signing
 * keys) signs for its users. A user proves at connect time that it holds the
 * seed of the key its JWT names; the server needs nothing but the operator's
 * and the accounts' JWTs, so users can be added without touching it.
 *
 * Text forms: a public key is 56 characters, base32 of a type byte, the 32
 * key bytes and a CRC-16 (XMODEM, little-endian); a seed is 58 characters with
 * two type bytes. The first letter says the type: O operator, A account,
 * U user; seeds begin with S and the type letter.
 */
#ifndef PK_NATSAUTH_H
#define PK_NATSAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pk/crypto.h"
#include "pk/status.h"

typedef enum pk_nkey_kind {
    PK_NKEY_OPERATOR,
    PK_NKEY_ACCOUNT,
    PK_NKEY_USER,
} pk_nkey_kind;

#define PK_NKEY_PUBLIC_LEN 56 /* characters of a public nkey */
#define PK_NKEY_SEED_LEN   58 /* characters of a seed */

/* The text form of a public key (out: PK_NKEY_PUBLIC_LEN + 1 bytes). */
void pk_nkey_public(pk_nkey_kind kind, const uint8_t pk[PK_PUBKEY_BYTES], char *out);

/* The text form of kp's seed (out: PK_NKEY_SEED_LEN + 1 bytes; wipe it after use). */
void pk_nkey_seed(pk_nkey_kind kind, const pk_keypair *kp, char *out);

/* Decode a public nkey of the given kind; PK_EINVAL (with why) if it is not one. */
pk_status pk_nkey_public_decode(const char *text, pk_nkey_kind kind,
                                uint8_t pk[PK_PUBKEY_BYTES]) PK_MUST_CHECK;

/* Decode a seed of any kind into a keypair and its kind. */
pk_status pk_nkey_seed_decode(const char *text, pk_nkey_kind *kind, pk_keypair *kp) PK_MUST_CHECK;

/*
 * Sign claims (a JSON object with sub, name and nats; iat, iss and jti are
 * added here) as a JWT of issuer, whose key is of issuer_kind. *out: caller
 * frees. The claims are not taken.
 */
pk_status pk_jwt_sign(json_t *claims, const pk_keypair *issuer, pk_nkey_kind issuer_kind,
                      char **out) PK_MUST_CHECK;

/*
 * Check a JWT's signature against the key it names as issuer; on success
 * *claims (caller decrefs) and the issuer's key. Expiry is not checked: the
 * server does that.
 */
pk_status pk_jwt_open(const char *jwt, json_t **claims,
                      uint8_t issuer[PK_PUBKEY_BYTES]) PK_MUST_CHECK;

/* The operator's own JWT, naming its system account. */
pk_status pk_jwt_operator(const pk_keypair *op, const char *name, const uint8_t system_account[32],
                          char **out) PK_MUST_CHECK;

/*
 * An account's JWT, signed by the operator, with no limits on connections,
 * subscriptions or payloads, and JetStream if asked (never for the system
 * account). signing_keys (a JSON array of public account nkeys or scope
 * objects, see pk_jwt_scope) is not taken; NULL for none.
 */
pk_status pk_jwt_account(const pk_keypair *op, const uint8_t account[32], const char *name,
                         bool jetstream, json_t *signing_keys, char **out) PK_MUST_CHECK;

/*
 * A user's JWT. issuer is the account key, or one of its signing keys (then
 * account names the account, else NULL). perms (a JSON object with pub, sub
 * and resp, see pk_jwt_perms) is not taken; NULL when the issuer is a scoped
 * signing key, whose template decides the permissions.
 */
pk_status pk_jwt_user(const pk_keypair *issuer, const uint8_t *account, const uint8_t user[32],
                      const char *name, json_t *perms, char **out) PK_MUST_CHECK;

/*
 * Permissions: the subjects a user may publish to and subscribe to (NULL
 * ended lists), and whether it may reply to the requests it receives. A new
 * reference.
 */
json_t *pk_jwt_perms(const char *const *pub, const char *const *sub, bool replies);

/*
 * A scoped signing key for an account JWT: users it signs get the template's
 * permissions, whatever their JWT says; "{{name()}}" in a subject stands for
 * the user's name and "{{subject()}}" for its public key (each must be a
 * whole subject token). Takes template; a new reference.
 */
json_t *pk_jwt_scope(const uint8_t key[32], const char *role, json_t *template);

/* The text of a .creds file (a user JWT and its seed); caller frees. */
char *pk_creds_text(const char *jwt, const char *seed);

/*
 * Read a .creds file: *jwt (caller frees) and the user's keypair (wipe it
 * after use).
 */
pk_status pk_creds_read(const char *path, char **jwt, pk_keypair *kp) PK_MUST_CHECK;

#endif
