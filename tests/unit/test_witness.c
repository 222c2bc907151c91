/*
 * The witness (C2SP tlog-witness) against logs that behave and logs that fork: it cosigns
 * a log's first checkpoint and every consistent extension, keeps what it cosigned across a
 * restart, and refuses a second view of the log (another tree of the same size, or a tree
 * that does not extend the one it cosigned) with the specification's status codes. The
 * cosignatures are checked as cosignature/v1 under the witness's key and no other.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "harness.h"
#include "pk/merkle.h"
#include "witness.h"

#define LEAVES 64

/* A tree of n leaves "<fork> <i>" but for leaf 1: logs with different forks differ there. */
static void grow(h_tree *t, pk_merkle_io *io, char fork, size_t n)
{
    h_tree_reset(t);
    for (size_t i = 0; i < n; i++) {
        char leaf[16];
        int len = snprintf(leaf, sizeof(leaf), "%c %zu", i == 1 ? fork : 'a', i);
        h_tree_add(t, leaf, (size_t)len, NULL);
    }
    cr_assert_eq(t->size, n);
    *io = t->io;
}

static char dir[64];
static pk_keypair log_kp, witness_kp, stranger_kp;
static char origin[PK_NOTE_NAME_MAX], log_vkey[256];
static witness w;
static h_tree good, forked;
static pk_merkle_io good_io, forked_io;

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/pk-witness-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    h_keypair(&log_kp, 0x10);
    h_keypair(&witness_kp, 0x20);
    h_keypair(&stranger_kp, 0x30);
    pk_note_origin(log_kp.pk, origin, sizeof(origin));
    cr_assert_eq(
        pk_note_verifier_key(origin, PK_NOTE_ED25519, log_kp.pk, log_vkey, sizeof(log_vkey)),
        PK_OK);
    cr_assert_eq(witness_open(&w, dir, &witness_kp, "witness.test/w1", log_vkey), PK_OK, "%s",
                 pk_error_msg());
    grow(&good, &good_io, 'a', LEAVES);
    grow(&forked, &forked_io, 'b', LEAVES);
}

static void teardown(void)
{
    char cmd[128];

    witness_close(&w);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(witness, .init = setup, .fini = teardown);

/* An add-checkpoint body: old size, the proof from it to size, the checkpoint signed by kp. */
static size_t request(char *out, size_t cap, const pk_merkle_io *io, uint64_t old, uint64_t size,
                      const pk_keypair *kp)
{
    uint8_t root[PK_HASH], proof[PK_MERKLE_PATH_MAX][PK_HASH];
    size_t n = 0, at;

    cr_assert_eq(pk_merkle_root(io, size, root), PK_OK);
    if (old > 0 && old < size)
        cr_assert_eq(pk_merkle_consistency(io, old, size, proof, &n), PK_OK);
    at = (size_t)snprintf(out, cap, "old %llu\n", (unsigned long long)old);
    for (size_t i = 0; i < n; i++) {
        sodium_bin2base64(out + at, cap - at, proof[i], PK_HASH, sodium_base64_VARIANT_ORIGINAL);
        at += strlen(out + at);
        out[at++] = '\n';
    }
    out[at++] = '\n';
    cr_assert_eq(pk_checkpoint_note(kp, origin, size, root, out + at, cap - at), PK_OK);
    return at + strlen(out + at);
}

/* Send it; the reply's status. */
static unsigned add(const pk_merkle_io *io, uint64_t old, uint64_t size, const pk_keypair *kp,
                    witness_reply *r)
{
    char body[8192];
    size_t len = request(body, sizeof(body), io, old, size, kp);

    witness_add(&w, body, len, 1764547200, r);
    return r->status;
}

/* Does r hold a cosignature/v1 by the witness of the good tree's checkpoint of size n? */
static bool cosigns(const witness_reply *r, uint64_t size, const uint8_t *pk)
{
    uint8_t root[PK_HASH];
    char note[PK_NOTE_MAX];
    size_t text_len, sigs_at;
    uint64_t t = 0;
    bool ok;

    cr_assert_eq(pk_merkle_root(&good_io, size, root), PK_OK);
    cr_assert_eq(pk_checkpoint_note(&log_kp, origin, size, root, note, sizeof(note)), PK_OK);
    cr_assert_eq(pk_note_split(note, strlen(note), &text_len, &sigs_at), PK_OK);
    ok = pk_cosigned_by(note, text_len, r->body, strlen(r->body), "witness.test/w1", pk, &t);
    return ok && t == 1764547200;
}

Test(witness, cosigns_the_first_checkpoint_and_each_consistent_extension)
{
    witness_reply r;

    cr_assert_eq(add(&good_io, 0, 5, &log_kp, &r), 200, "%s", r.body);
    cr_assert(strncmp(r.body, "\xe2\x80\x94 witness.test/w1 ", 20) == 0, "%s", r.body);
    cr_assert(cosigns(&r, 5, witness_kp.pk), "%s", r.body);
    cr_assert_not(cosigns(&r, 5, stranger_kp.pk), "a cosignature verified under another key");
    cr_assert_not(cosigns(&r, 6, witness_kp.pk), "a cosignature verified for another tree");
    cr_assert_eq(add(&good_io, 5, 13, &log_kp, &r), 200, "%s", r.body);
    cr_assert(cosigns(&r, 13, witness_kp.pk));
    cr_assert_eq(add(&good_io, 13, 13, &log_kp, &r), 200, "the same tree again: %s", r.body);
    cr_assert_eq(add(&good_io, 13, 64, &log_kp, &r), 200, "%s", r.body);
    cr_assert(cosigns(&r, 64, witness_kp.pk));
}

Test(witness, tells_a_log_behind_its_record_the_size_it_cosigned_and_keeps_it_across_restarts)
{
    witness_reply r;

    cr_assert_eq(add(&good_io, 0, 9, &log_kp, &r), 200, "%s", r.body);
    witness_close(&w);
    cr_assert_eq(witness_open(&w, dir, &witness_kp, "witness.test/w1", log_vkey), PK_OK);
    cr_assert_eq(add(&good_io, 0, 12, &log_kp, &r), 409, "%s", r.body);
    cr_assert_str_eq(r.body, "9\n");
    cr_assert_str_eq(r.type, "text/x.tlog.size");
    cr_assert_eq(add(&good_io, 4, 12, &log_kp, &r), 409, "%s", r.body);
    cr_assert_eq(add(&good_io, 9, 12, &log_kp, &r), 200, "%s", r.body);
    /* a smaller tree after a larger one: never */
    cr_assert_eq(add(&good_io, 12, 10, &log_kp, &r), 400, "%s", r.body);
}

Test(witness, refuses_a_fork_and_keeps_the_request_as_evidence)
{
    witness_reply r;
    MDB_txn *txn = NULL;
    MDB_stat ms;

    cr_assert_eq(add(&good_io, 0, 8, &log_kp, &r), 200, "%s", r.body);
    /* another tree of the same size, signed by the log: a split view */
    cr_assert_eq(add(&forked_io, 8, 8, &log_kp, &r), 409, "%s", r.body);
    cr_assert_str_eq(r.body, "8\n");
    /* a larger tree that does not extend the cosigned one, with its own (valid) proof */
    cr_assert_eq(add(&forked_io, 8, 20, &log_kp, &r), 422, "%s", r.body);
    /* the record is unchanged: the honest log goes on */
    cr_assert_eq(add(&good_io, 8, 20, &log_kp, &r), 200, "%s", r.body);
    cr_assert_eq(pk_txn_begin(w.store, false, &txn), PK_OK);
    cr_assert_eq(mdb_stat(txn, w.evidence, &ms), MDB_SUCCESS);
    cr_assert_eq(ms.ms_entries, 2, "refused requests kept: %zu", ms.ms_entries);
    pk_txn_abort(txn);
}

Test(witness, refuses_unknown_logs_strangers_signatures_and_malformed_requests)
{
    witness_reply r;
    char body[8192];
    size_t len;

    /* a log it does not follow: its origin is another key's */
    {
        pk_keypair other;
        char other_origin[PK_NOTE_NAME_MAX], note[PK_NOTE_MAX];
        uint8_t root[PK_HASH];
        h_keypair(&other, 0x40);
        pk_note_origin(other.pk, other_origin, sizeof(other_origin));
        cr_assert_eq(pk_merkle_root(&good_io, 3, root), PK_OK);
        cr_assert_eq(pk_checkpoint_note(&other, other_origin, 3, root, note, sizeof(note)), PK_OK);
        len = (size_t)snprintf(body, sizeof(body), "old 0\n\n%s", note);
        witness_add(&w, body, len, 1, &r);
        cr_assert_eq(r.status, 404, "%s", r.body);
    }
    /* the log's origin, signed by someone else */
    cr_assert_eq(add(&good_io, 0, 3, &stranger_kp, &r), 403, "%s", r.body);
    /* a proof where none may be */
    len = request(body, sizeof(body), &good_io, 0, 3, &log_kp);
    memmove(body + 6 + 45, body + 6, len - 6);
    memcpy(body + 6, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", 45);
    witness_add(&w, body, len + 45, 1, &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    /* malformed */
    witness_add(&w, "old 01\n\n", 8, 1, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    witness_add(&w, "new 0\n\n", 7, 1, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    witness_add(&w, "old 0\nnot base64\n\n", 18, 1, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    witness_add(&w, "old 0\n", 6, 1, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    len = request(body, sizeof(body), &good_io, 0, 3, &log_kp);
    body[len - 1] = 'x'; /* the signature line cut short */
    witness_add(&w, body, len, 1, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    /* 64 proof lines: one more than the specification allows */
    {
        size_t at = (size_t)snprintf(body, sizeof(body), "old 3\n");
        for (int i = 0; i < 64; i++)
            at += (size_t)snprintf(body + at, sizeof(body) - at, "%s\n",
                                   "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        at += (size_t)snprintf(body + at, sizeof(body) - at, "\n");
        witness_add(&w, body, at, 1, &r);
        cr_assert_eq(r.status, 400, "%s", r.body);
    }
    /* after all that, nothing was recorded: the log's first checkpoint is still welcome */
    cr_assert_eq(add(&good_io, 0, 3, &log_kp, &r), 200, "%s", r.body);
}

Test(witness, reads_verifier_keys_only_when_their_key_id_matches)
{
    char name[PK_NOTE_NAME_MAX], bad[256];
    uint8_t pk[PK_PUBKEY_BYTES];

    cr_assert_eq(pk_note_verifier_parse(log_vkey, PK_NOTE_ED25519, name, pk), PK_OK);
    cr_assert_str_eq(name, origin);
    cr_assert_eq(memcmp(pk, log_kp.pk, PK_PUBKEY_BYTES), 0);
    cr_assert_neq(pk_note_verifier_parse(log_vkey, PK_NOTE_COSIG, name, pk), PK_OK);
    snprintf(bad, sizeof(bad), "%s", log_vkey);
    bad[strlen(origin) + 1] = bad[strlen(origin) + 1] == '0' ? '1' : '0'; /* the key id */
    cr_assert_neq(pk_note_verifier_parse(bad, PK_NOTE_ED25519, name, pk), PK_OK);
    cr_assert(strstr(pk_error_msg(), "key id") != NULL, "%s", pk_error_msg());
    cr_assert_neq(witness_open(&(witness){0}, dir, &witness_kp, "w", ""), PK_OK);
}
