/*
 * pk/status.h - the one status type every Pactum call returns.
 *
 * Codes from LMDB, cnats and protobuf-c are converted to a pk_status once, at
 * the call site, and a sentence saying what failed is recorded with the file,
 * function and line (pk_error_*). The sentence is per thread and stays valid
 * until the next pk_error_set or pk_error_wrap on that thread; either may take
 * pk_error_msg() among its arguments.
 */
#ifndef PK_STATUS_H
#define PK_STATUS_H

#include <stddef.h>

typedef enum pk_status {
    PK_OK = 0,
    PK_EINVAL,      /* invalid argument or input */
    PK_ENOMEM,      /* allocation failed */
    PK_ENOTFOUND,   /* no such record */
    PK_EEXIST,      /* record exists already */
    PK_EIO,         /* file or socket I/O failed */
    PK_EBUS,        /* NATS or JetStream call failed */
    PK_ETIMEOUT,    /* operation timed out */
    PK_ESTORE,      /* LMDB call failed */
    PK_ESTORE_FULL, /* LMDB map is full: stop consuming, do not ack */
    PK_ECRYPTO,     /* libsodium failure */
    PK_EBADSIG,     /* signature does not verify */
    PK_EDECODE,     /* protobuf or JSON decode failed */
    PK_ETOOBIG,     /* input larger than a limit */
    PK_EPERM,       /* not allowed (permissions, key file mode) */
    PK_ECONFLICT,   /* concurrent or conflicting write */
    PK_ESHUTDOWN,   /* shutting down */
} pk_status;

/* On every function that returns a pk_status: a status nobody reads is a bug. */
#define PK_MUST_CHECK __attribute__((warn_unused_result))

/* The number of elements of an array (not a pointer). */
#define PK_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Short stable name of a status, e.g. "PK_EBADSIG". Never NULL. */
const char *pk_status_str(pk_status st);

/*
 * Record st with a message for the calling thread and return st, so a
 * function can `return PK_ERR(PK_EINVAL, "window must be > 0, got %d", w);`.
 */
#define PK_ERR(st, ...) pk_error_set((st), __FILE__, __LINE__, __func__, __VA_ARGS__)

pk_status pk_error_set(pk_status st, const char *file, int line, const char *func, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

/*
 * Add context to the error already recorded on this thread and return st:
 * `return PK_WRAP(st, "partition %u", p);` turns "timed out" into
 * "partition 3: timed out". The cause is kept, its text and the place it was
 * recorded: pk_error_where() then names the cause's place first, then this
 * one's. The arguments may quote pk_error_msg(): the sentence is built aside.
 */
#define PK_WRAP(st, ...) pk_error_wrap((st), __FILE__, __LINE__, __func__, __VA_ARGS__)

pk_status pk_error_wrap(pk_status st, const char *file, int line, const char *func, const char *fmt,
                        ...) __attribute__((format(printf, 5, 6)));

/* The message of the last error recorded on this thread, "" if none. Owned by
 * the thread; valid until the next pk_error_set or pk_error_wrap on it (either
 * may take it among its arguments). */
const char *pk_error_msg(void);

/* "file:line func()" where the last error was recorded ("... <- file:line func()"
 * for each context added by pk_error_wrap), "" if none. */
const char *pk_error_where(void);

/* Forget the last error of this thread. */
void pk_error_clear(void);

#endif
