/*
 * pk/net.h - listen addresses given as "host:port", and which addresses are inside.
 */
#ifndef PK_NET_H
#define PK_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "pk/status.h"

/* Resolve spec ("127.0.0.1:7480") to an IPv4 address; errors name flag ("--http"). */
pk_status pk_listen_addr(const char *spec, const char *flag, struct sockaddr_in *out) PK_MUST_CHECK;

/*
 * Is sa an address outgoing requests made for others must not reach: loopback, private
 * (RFC 1918, unique local), link-local, carrier-grade NAT, multicast, unspecified or
 * reserved? An IPv4 address inside IPv6 (mapped, or the NAT64 prefix 64:ff9b::/96) is judged
 * as that IPv4 address; any other family is inside. Its text goes into text.
 */
bool pk_addr_internal(const struct sockaddr *sa, char *text, size_t len);

#endif
