#include "pk/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_KIND "pactum-ed25519-secret-key"

pk_status pk_crypto_init(void)
{
    if (sodium_init() < 0)
        return PK_ERR(PK_ECRYPTO, "libsodium failed to initialise");
    return PK_OK;
}

pk_status pk_keypair_generate(pk_keypair *kp)
{
    if (crypto_sign_keypair(kp->pk, kp->sk) != 0)
        return PK_ERR(PK_ECRYPTO, "key generation failed");
    return PK_OK;
}

pk_status pk_keypair_from_seed(pk_keypair *kp, const uint8_t seed[PK_SEED_BYTES])
{
    if (crypto_sign_seed_keypair(kp->pk, kp->sk, seed) != 0)
        return PK_ERR(PK_ECRYPTO, "key derivation from seed failed");
    return PK_OK;
}

void pk_keypair_wipe(pk_keypair *kp)
{
    sodium_memzero(kp->sk, sizeof(kp->sk));
}

void pk_sign(const pk_keypair *kp, const uint8_t *msg, size_t len, uint8_t sig[PK_SIG_BYTES])
{
    crypto_sign_detached(sig, NULL, msg, len, kp->sk);
}

pk_status pk_verify(const uint8_t pk[PK_PUBKEY_BYTES], const uint8_t *msg, size_t len,
                    const uint8_t sig[PK_SIG_BYTES])
{
    if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
        return PK_EBADSIG;
    return PK_OK;
}

void pk_sha256(const void *data, size_t len, uint8_t out[PK_HASH_BYTES])
{
    crypto_hash_sha256(out, data, len);
}

bool pk_bytes_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

void pk_hex_encode(const uint8_t *bin, size_t len, char *out)
{
    sodium_bin2hex(out, len * 2 + 1, bin, len);
}

pk_status pk_hex_decode(const char *hex, uint8_t *out, size_t outlen)
{
    size_t got = 0;
    const char *end = NULL;

    if (!hex || strlen(hex) != outlen * 2)
        return PK_ERR(PK_EINVAL, "expected %zu hex digits, got %zu", outlen * 2,
                      hex ? strlen(hex) : 0);
    if (sodium_hex2bin(out, outlen, hex, outlen * 2, NULL, &got, &end) != 0 || got != outlen)
        return PK_ERR(PK_EINVAL, "not a hex string");
    return PK_OK;
}

pk_status pk_key_save(const char *path, const pk_keypair *kp)
{
    char pkhex[PK_PUBKEY_BYTES * 2 + 1], seedhex[PK_SEED_BYTES * 2 + 1];
    char pubpath[4096];
    char *text = NULL;
    json_t *doc = NULL;
    FILE *f = NULL;
    int fd = -1;
    pk_status st = PK_OK;

    pk_hex_encode(kp->pk, PK_PUBKEY_BYTES, pkhex);
    pk_hex_encode(kp->sk, PK_SEED_BYTES, seedhex); /* the first 32 bytes of sk are the seed */
    doc = json_pack("{s:s, s:s, s:s}", "kind", SECRET_KIND, "public_key", pkhex, "seed", seedhex);
    text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (!text) {
        st = PK_ERR(PK_ENOMEM, "cannot encode key file");
        goto fail;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        st = PK_ERR(errno == EEXIST ? PK_EEXIST : PK_EIO, "cannot create %s: %s%s", path,
                    strerror(errno), errno == EEXIST ? " (refusing to overwrite a key)" : "");
        goto fail;
    }
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0) {
        st = PK_ERR(PK_EIO, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    snprintf(pubpath, sizeof(pubpath), "%s.pub", path);
    f = fopen(pubpath, "w");
    if (!f || fprintf(f, "%s\n", pkhex) < 0) {
        st = PK_ERR(PK_EIO, "cannot write %s: %s", pubpath, strerror(errno));
        goto fail;
    }
fail:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    json_decref(doc);
    sodium_memzero(seedhex, sizeof(seedhex));
    return st;
}

pk_status pk_key_load(const char *path, pk_keypair *kp)
{
    struct stat sb;
    json_error_t jerr;
    json_t *doc = NULL;
    const char *kind = NULL, *seedhex = NULL, *pkhex = NULL;
    uint8_t seed[PK_SEED_BYTES], want_pk[PK_PUBKEY_BYTES];
    pk_status st = PK_OK;

    if (stat(path, &sb) != 0)
        return PK_ERR(PK_EIO, "cannot read key file %s: %s", path, strerror(errno));
    if (sb.st_mode & 077)
        return PK_ERR(PK_EPERM, "key file %s is readable by others (mode %03o); run: chmod 600 %s",
                      path, (unsigned)(sb.st_mode & 0777), path);
    doc = json_load_file(path, 0, &jerr);
    if (!doc)
        return PK_ERR(PK_EDECODE, "key file %s: %s (line %d)", path, jerr.text, jerr.line);
    if (json_unpack(doc, "{s:s, s:s, s:s}", "kind", &kind, "seed", &seedhex, "public_key",
                    &pkhex) != 0 ||
        strcmp(kind, SECRET_KIND) != 0) {
        st = PK_ERR(PK_EDECODE, "%s is not a Pactum secret key file (make one with: pactum keygen)",
                    path);
        goto fail;
    }
    if (pk_hex_decode(seedhex, seed, sizeof(seed)) != PK_OK ||
        pk_hex_decode(pkhex, want_pk, sizeof(want_pk)) != PK_OK) {
        st = PK_ERR(PK_EDECODE, "key file %s: seed or public_key is not valid hex", path);
        goto fail;
    }
    st = pk_keypair_from_seed(kp, seed);
    if (st == PK_OK && !pk_bytes_equal(kp->pk, want_pk, PK_PUBKEY_BYTES)) {
        pk_keypair_wipe(kp);
        st = PK_ERR(PK_ECRYPTO, "key file %s: public_key does not match the seed", path);
    }
fail:
    sodium_memzero(seed, sizeof(seed));
    json_decref(doc);
    return st;
}

pk_status pk_pubkey_load(const char *path_or_hex, uint8_t pk[PK_PUBKEY_BYTES])
{
    char line[256];
    FILE *f;
    size_t n;

    if (strlen(path_or_hex) == PK_PUBKEY_BYTES * 2 &&
        pk_hex_decode(path_or_hex, pk, PK_PUBKEY_BYTES) == PK_OK)
        return PK_OK;
    f = fopen(path_or_hex, "r");
    if (!f)
        return PK_ERR(PK_EIO, "cannot read public key %s: %s", path_or_hex, strerror(errno));
    n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    if (line[0] == '{') {
        json_t *doc = json_loads(line, 0, NULL);
        const char *hex = NULL;
        pk_status st = PK_EDECODE;
        if (doc && json_unpack(doc, "{s:s}", "public_key", &hex) == 0)
            st = pk_hex_decode(hex, pk, PK_PUBKEY_BYTES);
        json_decref(doc);
        sodium_memzero(line, sizeof(line)); /* a secret key file also holds the seed */
        if (st != PK_OK)
            return PK_ERR(PK_EDECODE, "%s holds no valid public_key", path_or_hex);
        return PK_OK;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (pk_hex_decode(line, pk, PK_PUBKEY_BYTES) != PK_OK)
        return PK_ERR(PK_EDECODE, "%s is not a public key (64 hex digits)", path_or_hex);
    return PK_OK;
}
