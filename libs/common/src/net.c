/*
 * net - listen addresses, and which addresses are inside (pk/net.h).
 */
#include "pk/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
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

bool pk_addr_internal(const struct sockaddr *sa, char *text, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t zero[15] = {0};
    const uint8_t *b;

    if (sa->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        inet_ntop(AF_INET, b, text, (socklen_t)len);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        inet_ntop(AF_INET6, a, text, (socklen_t)len);
        if (memcmp(a, mapped, 12) != 0 && memcmp(a, nat64, 12) != 0)
            return (memcmp(a, zero, 15) == 0 && a[15] <= 1) /* :: and ::1 */
                   || (a[0] & 0xfe) == 0xfc                 /* unique local fc00::/7 */
                   || (a[0] == 0xfe && (a[1] & 0x80))       /* link- and site-local fe80::/9 */
                   || a[0] == 0xff;                         /* multicast */
        b = a + 12;
    } else {
        snprintf(text, len, "address family %d", sa->sa_family);
        return true;
    }
    return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 169 && b[1] == 254) ||
           (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
           (b[0] == 100 && (b[1] & 0xc0) == 64) || b[0] >= 224;
}
