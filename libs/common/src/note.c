/*
 * note - the log's checkpoints as C2SP signed notes (pk/note.h).
 */
#include "pk/note.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/answer.h"
#include "pk/store.h"

void pk_note_origin(const uint8_t pk[PK_PUBKEY_BYTES], char *out, size_t len)
{
    char id[PK_LOG_ID_LEN + 1];

    pk_log_id(pk, id);
    snprintf(out, len, "pactum.log/%s", id);
}

void pk_note_key_id(const char *name, uint8_t alg, const uint8_t pk[PK_PUBKEY_BYTES], uint8_t id[4])
{
    crypto_hash_sha256_state h;
    uint8_t digest[crypto_hash_sha256_BYTES];

    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&h, (const uint8_t *)"\n", 1);
    crypto_hash_sha256_update(&h, &alg, 1);
    crypto_hash_sha256_update(&h, pk, PK_PUBKEY_BYTES);
    crypto_hash_sha256_final(&h, digest);
    memcpy(id, digest, 4);
}

pk_status pk_note_verifier_key(const char *name, uint8_t alg, const uint8_t pk[PK_PUBKEY_BYTES],
                               char *out, size_t len)
{
    uint8_t id[4], enc[1 + PK_PUBKEY_BYTES];
    char b64[sodium_base64_ENCODED_LEN(sizeof(enc), sodium_base64_VARIANT_ORIGINAL)];
    int n;

    pk_note_key_id(name, alg, pk, id);
    enc[0] = alg;
    memcpy(enc + 1, pk, PK_PUBKEY_BYTES);
    sodium_bin2base64(b64, sizeof(b64), enc, sizeof(enc), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out, len, "%s+%02x%02x%02x%02x+%s", name, id[0], id[1], id[2], id[3], b64);
    return n > 0 && (size_t)n < len ? PK_OK : PK_ERR(PK_ETOOBIG, "verifier key too long");
}

/* A key name (or origin) as the signed-note specification allows it. */
static bool good_name(const char *name, size_t len)
{
    if (len == 0 || len >= PK_NOTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == '+' || name[i] == 0x7f)
            return false;
    return true;
}

pk_status pk_note_verifier_parse(const char *vkey, uint8_t alg, char name[PK_NOTE_NAME_MAX],
                                 uint8_t pk[PK_PUBKEY_BYTES])
{
    const char *plus1 = strchr(vkey, '+'), *plus2 = plus1 ? strchr(plus1 + 1, '+') : NULL;
    uint8_t enc[1 + PK_PUBKEY_BYTES + 8], id[4], want[4];
    size_t n = 0;

    if (!plus2 || plus2 - plus1 != 9 || !good_name(vkey, (size_t)(plus1 - vkey)))
        return PK_ERR(PK_EINVAL, "verifier key '%.80s': expected <name>+<key id>+<key>", vkey);
    memcpy(name, vkey, (size_t)(plus1 - vkey));
    name[plus1 - vkey] = '\0';
    if (sodium_base642bin(enc, sizeof(enc), plus2 + 1, strlen(plus2 + 1), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != 1 + PK_PUBKEY_BYTES)
        return PK_ERR(PK_EINVAL, "verifier key of %s: the key is not base64 of %d bytes", name,
                      1 + PK_PUBKEY_BYTES);
    if (enc[0] != alg)
        return PK_ERR(PK_EINVAL, "verifier key of %s: signature type 0x%02x, expected 0x%02x", name,
                      enc[0], alg);
    {
        char hex[9];
        memcpy(hex, plus1 + 1, 8);
        hex[8] = '\0';
        if (pk_hex_decode(hex, id, 4) != PK_OK)
            return PK_ERR(PK_EINVAL, "verifier key of %s: the key id is not 8 hex digits", name);
    }
    memcpy(pk, enc + 1, PK_PUBKEY_BYTES);
    pk_note_key_id(name, alg, pk, want);
    if (memcmp(id, want, 4) != 0)
        return PK_ERR(PK_EINVAL, "verifier key of %s: its key id does not match its name and key",
                      name);
    return PK_OK;
}

#define EM_DASH "\xe2\x80\x94 "

pk_status pk_note_split(const char *note, size_t len, size_t *text_len, size_t *sigs_at)
{
    size_t cut = 0;
    bool found = false;

    /* the last blank line: a signature line never holds one */
    for (size_t i = len; i-- > 1;)
        if (note[i] == '\n' && note[i - 1] == '\n') {
            cut = i;
            found = true;
            break;
        }
    if (!found || cut + 1 >= len || note[len - 1] != '\n')
        return PK_ERR(PK_EINVAL, "not a signed note: no blank line followed by signature lines");
    for (size_t at = cut + 1; at < len;) {
        const char *nl = memchr(note + at, '\n', len - at);
        if (len - at < strlen(EM_DASH) || memcmp(note + at, EM_DASH, strlen(EM_DASH)) != 0)
            return PK_ERR(PK_EINVAL, "a note signature line does not begin with an em dash");
        at = (size_t)(nl - note) + 1;
    }
    *text_len = cut;
    *sigs_at = cut + 1;
    return PK_OK;
}

/*
 * The next signature line of sigs from *at by name whose key id is id: its decoded bytes in
 * raw (*n of them, at most cap). False when no line is left.
 */
static bool next_sig(const char *sigs, size_t len, size_t *at, const char *name,
                     const uint8_t id[4], uint8_t *raw, size_t cap, size_t *n)
{
    size_t nlen = strlen(name);

    while (*at < len) {
        const char *line = sigs + *at, *nl = memchr(line, '\n', len - *at);
        size_t l = nl ? (size_t)(nl - line) : len - *at, dash = strlen(EM_DASH);
        *at += l + 1;
        if (l <= dash + nlen + 1 || memcmp(line, EM_DASH, dash) != 0 ||
            memcmp(line + dash, name, nlen) != 0 || line[dash + nlen] != ' ')
            continue;
        if (sodium_base642bin(raw, cap, line + dash + nlen + 1, l - dash - nlen - 1, NULL, n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            *n < 4 || memcmp(raw, id, 4) != 0)
            continue;
        return true;
    }
    return false;
}

bool pk_note_signed_by(const char *text, size_t text_len, const char *sigs, size_t len,
                       const char *name, const uint8_t pk[PK_PUBKEY_BYTES])
{
    uint8_t id[4], raw[4 + PK_SIG_BYTES + 8];
    size_t at = 0, n;

    pk_note_key_id(name, PK_NOTE_ED25519, pk, id);
    while (next_sig(sigs, len, &at, name, id, raw, sizeof(raw), &n))
        if (n == 4 + PK_SIG_BYTES &&
            pk_verify(pk, (const uint8_t *)text, text_len, raw + 4) == PK_OK)
            return true;
    return false;
}

pk_status pk_checkpoint_parse(const char *text, size_t text_len, char origin[PK_NOTE_NAME_MAX],
                              uint64_t *size, uint8_t root[PK_HASH])
{
    const char *l1 = memchr(text, '\n', text_len), *l2, *l3;
    size_t n = 0;
    uint64_t v = 0;

    if (!l1 || !good_name(text, (size_t)(l1 - text)))
        return PK_ERR(PK_EINVAL, "checkpoint: the first line is not an origin");
    l2 = memchr(l1 + 1, '\n', text_len - (size_t)(l1 + 1 - text));
    l3 = l2 ? memchr(l2 + 1, '\n', text_len - (size_t)(l2 + 1 - text)) : NULL;
    if (!l3 || l2 == l1 + 1 || l2 - l1 > 21 || (l1[1] == '0' && l2 - l1 > 2))
        return PK_ERR(PK_EINVAL, "checkpoint: the second line is not a tree size");
    for (const char *p = l1 + 1; p < l2; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return PK_ERR(PK_EINVAL, "checkpoint: the second line is not a tree size");
        v = v * 10 + (uint64_t)(*p - '0');
    }
    {
        uint8_t buf[PK_HASH + 3];
        if (sodium_base642bin(buf, sizeof(buf), l2 + 1, (size_t)(l3 - l2 - 1), NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            n != PK_HASH)
            return PK_ERR(PK_EINVAL, "checkpoint: the third line is not a base64 hash");
        memcpy(root, buf, PK_HASH);
    }
    memcpy(origin, text, (size_t)(l1 - text));
    origin[l1 - text] = '\0';
    *size = v;
    return PK_OK;
}

/* What a cosignature/v1 at time t signs: two lines, then the checkpoint's text. */
static uint8_t *cosigned_message(const char *text, size_t text_len, uint64_t t, size_t *len)
{
    char head[64];
    int h = snprintf(head, sizeof(head), "cosignature/v1\ntime %llu\n", (unsigned long long)t);
    uint8_t *msg = malloc((size_t)h + text_len);

    if (!msg)
        return NULL;
    memcpy(msg, head, (size_t)h);
    memcpy(msg + h, text, text_len);
    *len = (size_t)h + text_len;
    return msg;
}

pk_status pk_cosign(const pk_keypair *kp, const char *name, const char *text, size_t text_len,
                    uint64_t t, char *out, size_t len)
{
    uint8_t sig[4 + 8 + PK_SIG_BYTES], *msg;
    char b64[sodium_base64_ENCODED_LEN(sizeof(sig), sodium_base64_VARIANT_ORIGINAL)];
    size_t mlen = 0;
    int n;

    if (!good_name(name, strlen(name)) || t > (uint64_t)INT64_MAX)
        return PK_ERR(PK_EINVAL, "cosigner name '%s' or time %llu", name, (unsigned long long)t);
    if (!(msg = cosigned_message(text, text_len, t, &mlen)))
        return PK_ERR(PK_ENOMEM, "cosigned message");
    pk_note_key_id(name, PK_NOTE_COSIG, kp->pk, sig);
    pk_be64_put(sig + 4, t);
    pk_sign(kp, msg, mlen, sig + 12);
    free(msg);
    sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out, len, EM_DASH "%s %s\n", name, b64);
    return n > 0 && (size_t)n < len ? PK_OK : PK_ERR(PK_ETOOBIG, "cosignature too long");
}

bool pk_cosigned_by(const char *text, size_t text_len, const char *sigs, size_t len,
                    const char *name, const uint8_t pk[PK_PUBKEY_BYTES], uint64_t *t)
{
    uint8_t id[4], raw[4 + 8 + PK_SIG_BYTES + 8];
    size_t at = 0, n;

    pk_note_key_id(name, PK_NOTE_COSIG, pk, id);
    while (next_sig(sigs, len, &at, name, id, raw, sizeof(raw), &n)) {
        uint64_t when = 0;
        uint8_t *msg;
        size_t mlen = 0;
        bool ok;
        if (n != 4 + 8 + PK_SIG_BYTES)
            continue;
        for (int i = 0; i < 8; i++)
            when = when << 8 | raw[4 + i];
        if (when > (uint64_t)INT64_MAX || !(msg = cosigned_message(text, text_len, when, &mlen)))
            continue;
        ok = pk_verify(pk, msg, mlen, raw + 12) == PK_OK;
        free(msg);
        if (ok) {
            *t = when;
            return true;
        }
    }
    return false;
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
    pk_note_key_id(name, PK_NOTE_ED25519, kp->pk, sig);
    pk_sign(kp, (const uint8_t *)out, (size_t)body, sig + 4);
    sodium_bin2base64(sig64, sizeof(sig64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out + body, len - (size_t)body, "\n\xe2\x80\x94 %s %s\n", name, sig64);
    return n > 0 && (size_t)n < len - (size_t)body ? PK_OK
                                                   : PK_ERR(PK_ETOOBIG, "checkpoint too long");
}
