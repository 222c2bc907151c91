/*
 * pk/note.h - the log's checkpoints as C2SP signed notes.
 *
 * A checkpoint (C2SP tlog-checkpoint) is the text "<origin>\n<tree size>\n<base64 root
 * hash>\n", signed as a note (C2SP signed-note): after a blank line, one line per signature,
 * "\u2014 <key name> <base64 of key id (4 bytes) || Ed25519 signature (64)>". The key id is
 * the first 4 bytes of SHA-256(key name || "\n" || 0x01 || public key); a verifier key is
 * written "<name>+<key id, 8 hex>+<base64 of 0x01 || public key>". The log's origin and key
 * name are "pactum.log/<log id>", whose first line can never be that of the answers' own
 * signing input ("pactum/v1\n"), so one key signs both without one being taken for the other.
 */
#ifndef PK_NOTE_H
#define PK_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "pk/crypto.h"
#include "pk/merkle.h"
#include "pk/status.h"

#define PK_NOTE_MAX      512  /* a checkpoint with one signature fits */
#define PK_NOTE_NAME_MAX 128  /* a key name or origin, with its NUL */
#define PK_COSIGNED_MAX  4096 /* a checkpoint with its cosignatures */

/* Signature types of note keys (C2SP signed-note): the log's, and a witness's cosignature/v1. */
#define PK_NOTE_ED25519 0x01
#define PK_NOTE_COSIG   0x04

/* "pactum.log/<log id>": the origin of the log signed by pk, and its note key name. */
void pk_note_origin(const uint8_t pk[PK_PUBKEY_BYTES], char *out, size_t len);

/* The key id of a note key of type alg: SHA-256(name || "\n" || alg || pk)[0..4). */
void pk_note_key_id(const char *name, uint8_t alg, const uint8_t pk[PK_PUBKEY_BYTES],
                    uint8_t id[4]);

/* The verifier key "<name>+<id hex>+<base64(alg || pk)>". */
pk_status pk_note_verifier_key(const char *name, uint8_t alg, const uint8_t pk[PK_PUBKEY_BYTES],
                               char *out, size_t len) PK_MUST_CHECK;

/*
 * Read a verifier key of type alg into name and pk; refused unless its key id is the one its
 * name, type and key give.
 */
pk_status pk_note_verifier_parse(const char *vkey, uint8_t alg, char name[PK_NOTE_NAME_MAX],
                                 uint8_t pk[PK_PUBKEY_BYTES]) PK_MUST_CHECK;

/*
 * Split a signed note of len bytes at its last blank line: the text (*text_len bytes, up to
 * and including its last newline) and the signature lines after it (from note + *sigs_at),
 * each "\u2014 <name> <base64>\n". Refused if it has no signature line or a malformed one.
 */
pk_status pk_note_split(const char *note, size_t len, size_t *text_len,
                        size_t *sigs_at) PK_MUST_CHECK;

/* Does a line of sigs (len bytes) hold a valid Ed25519 note signature of text by (name, pk)? */
bool pk_note_signed_by(const char *text, size_t text_len, const char *sigs, size_t len,
                       const char *name, const uint8_t pk[PK_PUBKEY_BYTES]);

/* A checkpoint's text: its origin, tree size and root; refused unless in the C2SP form. */
pk_status pk_checkpoint_parse(const char *text, size_t text_len, char origin[PK_NOTE_NAME_MAX],
                              uint64_t *size, uint8_t root[PK_HASH]) PK_MUST_CHECK;

/*
 * A witness's cosignature (C2SP tlog-cosignature, cosignature/v1) of a checkpoint's text at
 * time t (seconds since the epoch): the line "\u2014 <name> <base64(key id || be64 t ||
 * Ed25519 signature over "cosignature/v1\ntime <t>\n" || text)>\n".
 */
pk_status pk_cosign(const pk_keypair *kp, const char *name, const char *text, size_t text_len,
                    uint64_t t, char *out, size_t len) PK_MUST_CHECK;

/* Does a line of sigs hold a valid cosignature/v1 of text by (name, pk)? *t: its time. */
bool pk_cosigned_by(const char *text, size_t text_len, const char *sigs, size_t len,
                    const char *name, const uint8_t pk[PK_PUBKEY_BYTES], uint64_t *t);

/* The checkpoint of a tree of size leaves with root, signed by kp as the note key name. */
pk_status pk_checkpoint_note(const pk_keypair *kp, const char *name, uint64_t size,
                             const uint8_t root[PK_HASH], char *out, size_t len) PK_MUST_CHECK;

#endif
