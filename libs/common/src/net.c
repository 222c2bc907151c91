/*
 * net - listen addresses (pk/net.h).
 */
#include "pk/net.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

pk_status pk_listen_addr(const char *spec, const char *flag, struct sockaddr_in *out)
{
    char host[256], *end = NULL;
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints = {0}, *res = NULL;
    unsigned long port;
    int rc;

    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
        return PK_ERR(PK_EINVAL, "%s: expected host:port like 127.0.0.1:7480, got '%s'", flag,
                      spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (port == 0 || port > 65535 || *end)
        return PK_ERR(PK_EINVAL, "%s: bad port in '%s'", flag, spec);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0 || !res)
        return PK_ERR(PK_EINVAL, "%s: cannot resolve '%s': %s", flag, host, gai_strerror(rc));
    memcpy(out, res->ai_addr, sizeof(*out));
    freeaddrinfo(res);
    out->sin_port = htons((uint16_t)port);
    return PK_OK;
}
