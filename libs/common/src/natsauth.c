/*
 * nkeys and NATS JWTs (version 2), written from the formats nats-server 2.9
 * accepts: a JWT is base64url(header) "." base64url(claims) "." base64url of
 * the Ed25519 signature of the first two parts, all without padding.
 */
#include "pk/natsauth.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pk/clock.h"

/* Type bytes: the letter's index in the base32 alphabet, shifted left 3. */
static const uint8_t kind_byte[] = {
    [PK_NKEY_OPERATOR] = 14 << 3, [PK_NKEY_ACCOUNT] = 0 << 3, [PK_NKEY_USER] = 20 << 3};
#define SEED_BYTE (18 << 3)

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

/* base32 without padding of n bytes; out holds (n * 8 + 4) / 5 + 1 characters. */
static void b32_encode(const uint8_t *in, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

/* Decode base32 without padding into at most max bytes; the count, or -1 if not base32. */
static int b32_decode(const char *in, uint8_t *out, size_t max)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (; *in; in++) {
        const char *p = strchr(b32, *in);
        if (!p || !*in)
            return -1;
        acc = (acc << 5) | (uint32_t)(p - b32);
        bits += 5;
        if (bits >= 8) {
            if (o == max)
                return -1;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return (int)o;
}

/* base32 of raw (n bytes) with its CRC appended. */
static void with_crc(uint8_t *raw, size_t n, char *out)
{
    uint16_t crc = crc16(raw, n);

    raw[n] = (uint8_t)(crc & 0xff);
    raw[n + 1] = (uint8_t)(crc >> 8);
    b32_encode(raw, n + 2, out);
}

void pk_nkey_public(pk_nkey_kind kind, const uint8_t pk[PK_PUBKEY_BYTES], char *out)
{
    uint8_t raw[1 + PK_PUBKEY_BYTES + 2];

    raw[0] = kind_byte[kind];
    memcpy(raw + 1, pk, PK_PUBKEY_BYTES);
    with_crc(raw, 1 + PK_PUBKEY_BYTES, out);
}

void pk_nkey_seed(pk_nkey_kind kind, const pk_keypair *kp, char *out)
{
    uint8_t raw[2 + PK_SEED_BYTES + 2];

    raw[0] = (uint8_t)(SEED_BYTE | (kind_byte[kind] >> 5));
    raw[1] = (uint8_t)((kind_byte[kind] & 31) << 3);
    memcpy(raw + 2, kp->sk, PK_SEED_BYTES); /* libsodium keeps the seed first */
    with_crc(raw, 2 + PK_SEED_BYTES, out);
    sodium_memzero(raw, sizeof(raw));
}

/* Decode text into raw (n bytes expected, CRC included) and check the CRC. */
static pk_status decode_checked(const char *text, uint8_t *raw, size_t n, const char *what)
{
    int got = text ? b32_decode(text, raw, n) : -1;

    if (got != (int)n)
        return PK_ERR(PK_EINVAL, "not %s: wrong length or a character outside base32", what);
    if (crc16(raw, n - 2) != (uint16_t)(raw[n - 2] | raw[n - 1] << 8))
        return PK_ERR(PK_EINVAL, "not %s: the checksum does not match", what);
    return PK_OK;
}

pk_status pk_nkey_public_decode(const char *text, pk_nkey_kind kind, uint8_t pk[PK_PUBKEY_BYTES])
{
    uint8_t raw[1 + PK_PUBKEY_BYTES + 2];
    pk_status st = decode_checked(text, raw, sizeof(raw), "a public nkey");

    if (st != PK_OK)
        return st;
    if (raw[0] != kind_byte[kind])
        return PK_ERR(PK_EINVAL, "public nkey %.8s... is not of the expected kind", text);
    memcpy(pk, raw + 1, PK_PUBKEY_BYTES);
    return PK_OK;
}

pk_status pk_nkey_seed_decode(const char *text, pk_nkey_kind *kind, pk_keypair *kp)
{
    uint8_t raw[2 + PK_SEED_BYTES + 2];
    pk_status st = decode_checked(text, raw, sizeof(raw), "an nkey seed");
    uint8_t type;

    if (st != PK_OK)
        return st;
    if ((raw[0] & 0xf8) != SEED_BYTE) {
        sodium_memzero(raw, sizeof(raw));
        return PK_ERR(PK_EINVAL, "not an nkey seed (it does not begin with S)");
    }
    type = (uint8_t)((raw[0] & 7) << 5 | raw[1] >> 3);
    st = PK_EINVAL;
    for (int k = PK_NKEY_OPERATOR; k <= PK_NKEY_USER; k++) {
        if (kind_byte[k] == type) {
            *kind = (pk_nkey_kind)k;
            st = pk_keypair_from_seed(kp, raw + 2);
        }
    }
    sodium_memzero(raw, sizeof(raw));
    if (st == PK_EINVAL)
        return PK_ERR(PK_EINVAL, "nkey seed of a kind Pactum does not use");
    return st;
}

/* base64url without padding; caller frees. */
static char *b64url(const uint8_t *in, size_t n)
{
    size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(len);

    if (out)
        sodium_bin2base64(out, len, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

pk_status pk_jwt_sign(json_t *claims, const pk_keypair *issuer, pk_nkey_kind issuer_kind,
                      char **out)
{
    static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ed25519-nkey\"}";
    json_t *c = json_deep_copy(claims);
    char iss[PK_NKEY_PUBLIC_LEN + 1], jti[64], *body = NULL, *h64 = NULL, *c64 = NULL;
    char *s64 = NULL, *signing = NULL;
    uint8_t hash[crypto_hash_sha256_BYTES], sig[PK_SIG_BYTES];
    pk_status st = PK_ENOMEM;

    if (!c)
        return PK_ERR(PK_ENOMEM, "out of memory");
    pk_nkey_public(issuer_kind, issuer->pk, iss);
    json_object_set_new(c, "iss", json_string(iss));
    json_object_set_new(c, "iat", json_integer((json_int_t)(pk_now_ms() / 1000)));
    /* an id for the token: a digest of what it says (the server does not check it) */
    if ((body = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS))) {
        crypto_hash_sha256(hash, (const uint8_t *)body, strlen(body));
        b32_encode(hash, sizeof(hash), jti);
        json_object_set_new(c, "jti", json_string(jti));
        free(body);
    }
    body = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    h64 = b64url((const uint8_t *)header, strlen(header));
    c64 = body ? b64url((const uint8_t *)body, strlen(body)) : NULL;
    if (h64 && c64 && (signing = malloc(strlen(h64) + strlen(c64) + 2))) {
        sprintf(signing, "%s.%s", h64, c64);
        pk_sign(issuer, (const uint8_t *)signing, strlen(signing), sig);
        if ((s64 = b64url(sig, sizeof(sig))) &&
            (*out = malloc(strlen(signing) + strlen(s64) + 2))) {
            sprintf(*out, "%s.%s", signing, s64);
            st = PK_OK;
        }
    }
    free(body);
    free(h64);
    free(c64);
    free(s64);
    free(signing);
    json_decref(c);
    return st == PK_OK ? PK_OK : PK_ERR(PK_ENOMEM, "out of memory");
}

/* Decode one base64url part into a new buffer; its length in *n. */
static uint8_t *unb64(const char *p, size_t len, size_t *n)
{
    uint8_t *out = malloc(len + 1);

    if (out && sodium_base642bin(out, len + 1, p, len, NULL, n, NULL,
                                 sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

pk_status pk_jwt_open(const char *jwt, json_t **claims, uint8_t issuer[PK_PUBKEY_BYTES])
{
    const char *d1 = jwt ? strchr(jwt, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    uint8_t *body = NULL, *sig = NULL;
    size_t blen = 0, slen = 0;
    json_t *c = NULL;
    const char *iss;
    pk_status st;

    if (!d2)
        return PK_ERR(PK_EDECODE, "not a JWT: it needs three parts separated by dots");
    body = unb64(d1 + 1, (size_t)(d2 - d1 - 1), &blen);
    sig = unb64(d2 + 1, strlen(d2 + 1), &slen);
    if (!body || !sig || slen != PK_SIG_BYTES ||
        !(c = json_loadb((const char *)body, blen, 0, NULL)) ||
        !(iss = json_string_value(json_object_get(c, "iss")))) {
        st = PK_ERR(PK_EDECODE, "not a JWT: its claims or its signature do not decode");
    } else if (pk_nkey_public_decode(iss,
                                     iss[0] == 'O'   ? PK_NKEY_OPERATOR
                                     : iss[0] == 'A' ? PK_NKEY_ACCOUNT
                                                     : PK_NKEY_USER,
                                     issuer) != PK_OK) {
        st = PK_ERR(PK_EDECODE, "the JWT's issuer is not an operator or account nkey");
    } else if (pk_verify(issuer, (const uint8_t *)jwt, (size_t)(d2 - jwt), sig) != PK_OK) {
        st = PK_ERR(PK_EBADSIG, "the JWT's signature does not verify under its issuer's key");
    } else {
        *claims = c;
        c = NULL;
        st = PK_OK;
    }
    json_decref(c);
    free(body);
    free(sig);
    return st;
}

/* Claims with sub (a public nkey of kind), name and nats (taken). */
static json_t *claims_of(pk_nkey_kind kind, const uint8_t sub[32], const char *name, json_t *nats)
{
    char s[PK_NKEY_PUBLIC_LEN + 1];

    pk_nkey_public(kind, sub, s);
    return json_pack("{s:s, s:s, s:o}", "sub", s, "name", name, "nats", nats);
}

/* Sign claims (taken) by issuer. */
static pk_status sign_claims(json_t *claims, const pk_keypair *issuer, pk_nkey_kind kind,
                             char **out)
{
    pk_status st;

    if (!claims)
        return PK_ERR(PK_ENOMEM, "out of memory");
    st = pk_jwt_sign(claims, issuer, kind, out);
    json_decref(claims);
    return st;
}

pk_status pk_jwt_operator(const pk_keypair *op, const char *name, const uint8_t system_account[32],
                          char **out)
{
    char sys[PK_NKEY_PUBLIC_LEN + 1];

    pk_nkey_public(PK_NKEY_ACCOUNT, system_account, sys);
    return sign_claims(claims_of(PK_NKEY_OPERATOR, op->pk, name,
                                 json_pack("{s:s, s:s, s:i}", "system_account", sys, "type",
                                           "operator", "version", 2)),
                       op, PK_NKEY_OPERATOR, out);
}

pk_status pk_jwt_account(const pk_keypair *op, const uint8_t account[32], const char *name,
                         bool jetstream, json_t *signing_keys, char **out)
{
    /* a missing limit is a limit of 0: every one is written, -1 for none */
    json_t *nats = json_pack(
        "{s:{s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:{}, s:{}}, s:s, "
        "s:i}",
        "limits", "subs", -1, "data", -1, "payload", -1, "imports", -1, "exports", -1, "wildcards",
        1, "conn", -1, "leaf", -1, "mem_storage", -1, "disk_storage", -1, "streams", -1, "consumer",
        -1, "default_permissions", "pub", "sub", "type", "account", "version", 2);
    json_t *limits = json_object_get(nats, "limits");
    static const char *const storage[] = {"mem_storage", "disk_storage", "streams", "consumer"};

    /* JetStream is on for an account whose storage limits are not 0 */
    for (size_t i = 0; limits && !jetstream && i < sizeof(storage) / sizeof(storage[0]); i++)
        json_object_set_new(limits, storage[i], json_integer(0));
    if (nats && signing_keys)
        json_object_set(nats, "signing_keys", signing_keys);
    return sign_claims(nats ? claims_of(PK_NKEY_ACCOUNT, account, name, nats) : NULL, op,
                       PK_NKEY_OPERATOR, out);
}

pk_status pk_jwt_user(const pk_keypair *issuer, const uint8_t *account, const uint8_t user[32],
                      const char *name, json_t *perms, char **out)
{
    json_t *nats = perms ? json_deep_copy(perms) : json_object();
    char acc[PK_NKEY_PUBLIC_LEN + 1];

    if (!nats)
        return PK_ERR(PK_ENOMEM, "out of memory");
    if (account) {
        pk_nkey_public(PK_NKEY_ACCOUNT, account, acc);
        json_object_set_new(nats, "issuer_account", json_string(acc));
    }
    if (perms) { /* the limits go with the permissions; a scoped key's template holds both */
        json_object_set_new(nats, "subs", json_integer(-1));
        json_object_set_new(nats, "data", json_integer(-1));
        json_object_set_new(nats, "payload", json_integer(-1));
    }
    json_object_set_new(nats, "type", json_string("user"));
    json_object_set_new(nats, "version", json_integer(2));
    return sign_claims(claims_of(PK_NKEY_USER, user, name, nats), issuer, PK_NKEY_ACCOUNT, out);
}

/* A JSON array of the strings in a NULL-ended list. */
static json_t *string_array(const char *const *list)
{
    json_t *a = json_array();

    for (size_t i = 0; a && list && list[i]; i++)
        json_array_append_new(a, json_string(list[i]));
    return a;
}

json_t *pk_jwt_perms(const char *const *pub, const char *const *sub, bool replies)
{
    json_t *p = json_pack("{s:{s:o}, s:{s:o}}", "pub", "allow", string_array(pub), "sub", "allow",
                          string_array(sub));

    if (p && replies)
        json_object_set_new(p, "resp", json_pack("{s:i, s:i}", "max", 1, "ttl", 0));
    return p;
}

json_t *pk_jwt_scope(const uint8_t key[32], const char *role, json_t *template)
{
    char k[PK_NKEY_PUBLIC_LEN + 1];

    pk_nkey_public(PK_NKEY_ACCOUNT, key, k);
    if (template) {
        json_object_set_new(template, "subs", json_integer(-1));
        json_object_set_new(template, "data", json_integer(-1));
        json_object_set_new(template, "payload", json_integer(-1));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "kind", "user_scope", "key", k, "role", role,
                     "template", template ? template : json_object());
}

char *pk_creds_text(const char *jwt, const char *seed)
{
    static const char fmt[] =
        "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n";
    size_t n = sizeof(fmt) + strlen(jwt) + strlen(seed);
    char *out = malloc(n);

    if (out)
        snprintf(out, n, fmt, jwt, seed);
    return out;
}

/* The first line after the line containing marker, into a new string. */
static char *line_after(const char *text, const char *marker)
{
    const char *p = strstr(text, marker), *e;

    if (!p || !(p = strchr(p, '\n')))
        return NULL;
    p++;
    e = p + strcspn(p, "\r\n");
    return e > p ? strndup(p, (size_t)(e - p)) : NULL;
}

pk_status pk_creds_read(const char *path, char **jwt, pk_keypair *kp)
{
    char buf[16384], *seed = NULL;
    FILE *f = fopen(path, "r");
    pk_nkey_kind kind;
    size_t n;
    pk_status st;

    if (!f)
        return PK_ERR(PK_EIO, "cannot read the credentials %s", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *jwt = line_after(buf, "BEGIN NATS USER JWT");
    seed = line_after(buf, "BEGIN USER NKEY SEED");
    sodium_memzero(buf, sizeof(buf));
    if (!*jwt || !seed)
        st = PK_ERR(PK_EDECODE, "%s is not a .creds file (a user JWT and its nkey seed)", path);
    else if ((st = pk_nkey_seed_decode(seed, &kind, kp)) == PK_OK && kind != PK_NKEY_USER)
        st = PK_ERR(PK_EDECODE, "%s holds a seed that is not a user's", path);
    if (seed)
        sodium_memzero(seed, strlen(seed));
    free(seed);
    if (st != PK_OK) {
        free(*jwt);
        *jwt = NULL;
    }
    return st == PK_OK ? PK_OK : PK_WRAP(st, "%s", path);
}
