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

#define PK_NOTE_MAX 512 /* a checkpoint with one signature fits */

/* "pactum.log/<log id>": the origin of the log signed by pk, and its note key name. */
void pk_note_origin(const uint8_t pk[PK_PUBKEY_BYTES], char *out, size_t len);

/* The key id of an Ed25519 note key: SHA-256(name || "\n" || 0x01 || pk)[0..4). */
void pk_note_key_id(const char *name, const uint8_t pk[PK_PUBKEY_BYTES], uint8_t id[4]);

/* The verifier key "<name>+<id hex>+<base64(0x01 || pk)>". */
pk_status pk_note_verifier_key(const char *name, const uint8_t pk[PK_PUBKEY_BYTES], char *out,
                               size_t len) PK_MUST_CHECK;

/* The checkpoint of a tree of size leaves with root, signed by kp as the note key name. */
pk_status pk_checkpoint_note(const pk_keypair *kp, const char *name, uint64_t size,
                             const uint8_t root[PK_HASH], char *out, size_t len) PK_MUST_CHECK;

#endif
