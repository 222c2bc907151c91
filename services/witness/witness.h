/*
 * witness.h - a transparency-log witness (C2SP tlog-witness): it follows logs by their
 * checkpoints, cosigns a checkpoint only if it is consistent with the last one it cosigned
 * for that log, and never cosigns two views of one log that disagree (a split view).
 *
 * Its state is one LMDB record per log (origin -> tree size || root), read, checked and
 * written in one write transaction, synced before the cosignature is given: two requests at
 * once cannot roll the record back, and a restart keeps it. Requests it refused although the
 * log had signed them are kept (dbi "evidence") as proof of the log's misbehaviour.
 */
#ifndef PK_WITNESS_H
#define PK_WITNESS_H

#include <stddef.h>
#include <stdint.h>

#include "pk/crypto.h"
#include "pk/note.h"
#include "pk/status.h"
#include "pk/store.h"

#define WITNESS_LOGS_MAX  32 /* logs one witness follows */
#define WITNESS_PROOF_MAX 63 /* consistency proof lines in a request (the specification's cap) */
#define WITNESS_BODY_MAX  16384

typedef struct witness_log {
    char origin[PK_NOTE_NAME_MAX]; /* its origin line, which is also its key's name */
    uint8_t pk[PK_PUBKEY_BYTES];   /* its key */
} witness_log;

typedef struct witness {
    pk_keypair kp;                      /* signs cosignatures */
    char name[PK_NOTE_NAME_MAX];        /* the cosigner's name */
    witness_log logs[WITNESS_LOGS_MAX]; /* the logs it follows */
    size_t n_logs;                      /* ... and how many */
    pk_store *store;                    /* its state */
    MDB_dbi state, evidence;            /* origin -> size || root; refused requests */
} witness;

/* What an add-checkpoint request gets: an HTTP status, its body and content type. */
typedef struct witness_reply {
    unsigned status;
    const char *type;
    char body[512];
} witness_reply;

/*
 * Open the witness's state in dir for the logs given as note verifier keys (comma-separated,
 * "<origin>+<key id>+<base64(0x01 || key)>"), cosigning as name with kp.
 */
pk_status witness_open(witness *w, const char *dir, const pk_keypair *kp, const char *name,
                       const char *logs) PK_MUST_CHECK;
void witness_close(witness *w);

/* Answer an add-checkpoint request body of len bytes (C2SP tlog-witness) at time now_s. */
void witness_add(witness *w, const char *body, size_t len, uint64_t now_s, witness_reply *r);

#endif
