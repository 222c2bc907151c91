/*
 * pk/http.h - what the HTTP servers (libmicrohttpd) share: a request body
 * gathered up to a limit, the client's address, and sending a reply.
 */
#ifndef PK_HTTP_H
#define PK_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* A request's body as it arrives; NUL-terminated for text parsers. */
typedef struct pk_http_body {
    char *buf;    /* NULL until the first byte */
    size_t len;   /* bytes kept */
    bool too_big; /* more than the limit came: the rest was dropped */
} pk_http_body;

/*
 * The start of an access handler: the first call makes *con_cls a body (true:
 * return MHD_YES), later calls with data append it (at most max bytes; true:
 * return MHD_YES). False when the whole request is in and the handler should
 * answer; *fail is set when memory ran out (return MHD_NO).
 */
bool pk_http_gather(void **con_cls, const char *data, size_t *size, size_t max, bool *fail);

/* The completion callback that frees what pk_http_gather made. */
void pk_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode code);

/* The client's IP address as text ("?" if unknown). */
void pk_http_client(struct MHD_Connection *c, char *addr, size_t len);

/* Queue data (copied) as the reply, uncached; MHD_NO if it could not be made. */
enum MHD_Result pk_http_send(struct MHD_Connection *c, unsigned status, const char *type,
                             const void *data, size_t len);

#endif
