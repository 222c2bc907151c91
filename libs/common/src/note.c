/*
 * note - the log's checkpoints as C2SP signed notes (pk/note.h).
 */
#include "pk/note.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "pk/answer.h"

void pk_note_origin(const uint8_t pk[PK_PUBKEY_BYTES], char *out, size_t len)
{
    char id[PK_LOG_ID_LEN + 1];

    pk_log_id(pk, id);
    snprintf(out, len, "pactum.log/%s", id);
}

void pk_note_key_id(const char *name, const uint8_t pk[PK_PUBKEY_BYTES], uint8_t id[4])
{
    crypto_hash_sha256_state h;
    uint8_t digest[crypto_hash_sha256_BYTES], alg = 0x01;

    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&h, (const uint8_t *)"\n", 1);
    crypto_hash_sha256_update(&h, &alg, 1);
    crypto_hash_sha256_update(&h, pk, PK_PUBKEY_BYTES);
    crypto_hash_sha256_final(&h, digest);
    memcpy(id, digest, 4);
}

pk_status pk_note_verifier_key(const char *name, const uint8_t pk[PK_PUBKEY_BYTES], char *out,
                               size_t len)
{
    uint8_t id[4], enc[1 + PK_PUBKEY_BYTES];
    char b64[sodium_base64_ENCODED_LEN(sizeof(enc), sodium_base64_VARIANT_ORIGINAL)];
    int n;

    pk_note_key_id(name, pk, id);
    enc[0] = 0x01;
    memcpy(enc + 1, pk, PK_PUBKEY_BYTES);
    sodium_bin2base64(b64, sizeof(b64), enc, sizeof(enc), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out, len, "%s+%02x%02x%02x%02x+%s", name, id[0], id[1], id[2], id[3], b64);
    return n > 0 && (size_t)n < len ? PK_OK : PK_ERR(PK_ETOOBIG, "verifier key too long");
}

pk_status pk_checkpoint_note(const pk_keypair *kp, const char *name, uint64_t size,
                             const uint8_t root[PK_HASH], char *out, size_t len)
{
    char root64[sodium_base64_ENCODED_LEN(PK_HASH, sodium_base64_VARIANT_ORIGINAL)];
    uint8_t sig[4 + PK_SIG_BYTES];
    char sig64[sodium_base64_ENCODED_LEN(sizeof(sig), sodium_base64_VARIANT_ORIGINAL)];
    int body, n;

    if (strchr(name, ' ') || strchr(name, '+') || strchr(name, '\n') || !name[0])
        return PK_ERR(PK_EINVAL, "note key name '%s': no spaces, '+' or newlines", name);
    sodium_bin2base64(root64, sizeof(root64), root, PK_HASH, sodium_base64_VARIANT_ORIGINAL);
    body = snprintf(out, len, "%s\n%llu\n%s\n", name, (unsigned long long)size, root64);
    if (body <= 0 || (size_t)body >= len)
        return PK_ERR(PK_ETOOBIG, "checkpoint too long");
    /* the signature covers the text, up to and including its last newline */
    pk_note_key_id(name, kp->pk, sig);
    pk_sign(kp, (const uint8_t *)out, (size_t)body, sig + 4);
    sodium_bin2base64(sig64, sizeof(sig64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out + body, len - (size_t)body, "\n\xe2\x80\x94 %s %s\n", name, sig64);
    return n > 0 && (size_t)n < len - (size_t)body ? PK_OK
                                                   : PK_ERR(PK_ETOOBIG, "checkpoint too long");
}
