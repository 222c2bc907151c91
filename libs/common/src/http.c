/*
 * http - what the HTTP servers share (pk/http.h).
 */
#include "pk/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pk_http_gather(void **con_cls, const char *data, size_t *size, size_t max, bool *fail)
{
    pk_http_body *b = *con_cls;

    *fail = false;
    if (!b) {
        if (!(b = calloc(1, sizeof(*b))))
            *fail = true;
        *con_cls = b;
        return !*fail;
    }
    if (!*size)
        return false;
    if (b->len + *size > max) {
        b->too_big = true;
    } else {
        char *nb = realloc(b->buf, b->len + *size + 1);
        if (!nb) {
            *fail = true;
            return false;
        }
        memcpy(nb + b->len, data, *size);
        b->buf = nb;
        b->len += *size;
        b->buf[b->len] = '\0';
    }
    *size = 0;
    return true;
}

void pk_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode code)
{
    pk_http_body *b = *con_cls;

    (void)cls, (void)c, (void)code;
    if (b) {
        free(b->buf);
        free(b);
    }
    *con_cls = NULL;
}

void pk_http_client(struct MHD_Connection *c, char *addr, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    snprintf(addr, len, "?");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, (socklen_t)len);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
                      (socklen_t)len);
    }
}

enum MHD_Result pk_http_send(struct MHD_Connection *c, unsigned status, const char *type,
                             const void *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == MHD_HTTP_TOO_MANY_REQUESTS)
        MHD_add_response_header(r, "Retry-After", "1");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}
