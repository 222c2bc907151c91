/*
 * pk/net.h - listen addresses given as "host:port".
 */
#ifndef PK_NET_H
#define PK_NET_H

#include <netinet/in.h>

#include "pk/status.h"

/* Resolve spec ("127.0.0.1:7480") to an IPv4 address; errors name flag ("--http"). */
pk_status pk_listen_addr(const char *spec, const char *flag, struct sockaddr_in *out) PK_MUST_CHECK;

#endif
