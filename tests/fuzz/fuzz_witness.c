/*
 * Fuzz: what a witness reads from anyone on the network. Any bytes are an add-checkpoint
 * request to a real witness (its LMDB state in a temporary folder) following the log of the
 * seeds' key, and are read as a signed note, a checkpoint, a cosignature and a verifier key;
 * none of it may crash, and nothing but the log's own signed checkpoints may be cosigned.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk/note.h"
#include "witness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static witness w;
static bool opened;
static char dir[64];
static uint8_t log_pk[PK_PUBKEY_BYTES];

static void cleanup(void)
{
    char cmd[128];

    witness_close(&w);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_witness: could not remove %s\n", dir);
}

/* The witness, opened once: it follows the log of the seeds' key (32 bytes of 7). */
static void open_once(void)
{
    pk_keypair log_kp, wkp;
    uint8_t seed[32];
    char origin[PK_NOTE_NAME_MAX], vkey[256];

    if (opened)
        return;
    memset(seed, 7, sizeof(seed));
    if (pk_crypto_init() != PK_OK || pk_keypair_from_seed(&log_kp, seed) != PK_OK)
        abort();
    memset(seed, 9, sizeof(seed));
    if (pk_keypair_from_seed(&wkp, seed) != PK_OK)
        abort();
    memcpy(log_pk, log_kp.pk, PK_PUBKEY_BYTES);
    pk_note_origin(log_kp.pk, origin, sizeof(origin));
    snprintf(dir, sizeof(dir), "/tmp/pk-fuzz-witness-XXXXXX");
    if (!mkdtemp(dir) ||
        pk_note_verifier_key(origin, PK_NOTE_ED25519, log_kp.pk, vkey, sizeof(vkey)) != PK_OK ||
        witness_open(&w, dir, &wkp, "fuzz.witness/w", vkey) != PK_OK)
        abort();
    pk_keypair_wipe(&log_kp);
    pk_keypair_wipe(&wkp);
    atexit(cleanup);
    opened = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    witness_reply r;
    size_t text_len, sigs_at;
    char origin[PK_NOTE_NAME_MAX], *text;
    uint8_t root[PK_HASH], pk[PK_PUBKEY_BYTES];
    uint64_t n, t;

    open_once();
    witness_add(&w, (const char *)data, size, 1, &r);
    if (r.status == 200 && !memchr(data, '\n', size))
        abort(); /* a cosignature for something that is not even a request */
    /* the same bytes as a note, a checkpoint, cosignatures, and a verifier key */
    if (pk_note_split((const char *)data, size, &text_len, &sigs_at) == PK_OK) {
        if (pk_checkpoint_parse((const char *)data, text_len, origin, &n, root) == PK_OK &&
            !origin[0])
            abort(); /* a checkpoint has an origin */
        (void)pk_note_signed_by((const char *)data, text_len, (const char *)data + sigs_at,
                                size - sigs_at, "fuzz.witness/w", log_pk);
        (void)pk_cosigned_by((const char *)data, text_len, (const char *)data + sigs_at,
                             size - sigs_at, "fuzz.witness/w", w.kp.pk, &t);
    }
    if ((text = malloc(size + 1))) {
        memcpy(text, data, size);
        text[size] = '\0';
        if (pk_note_verifier_parse(text, PK_NOTE_ED25519, origin, pk) == PK_OK &&
            pk_note_verifier_parse(text, PK_NOTE_COSIG, origin, pk) == PK_OK)
            abort(); /* one key is of one signature type */
        free(text);
    }
    return 0;
}
