/* Which addresses are inside: what a webhook delivery may not connect to by default. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "pk/net.h"

static bool internal(const char *text)
{
    struct sockaddr_storage ss;
    char back[64];

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, text, &a->sin6_addr), 1, "%s", text);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, text, &a->sin_addr), 1, "%s", text);
    }
    return pk_addr_internal((struct sockaddr *)&ss, back, sizeof(back));
}

Test(net, loopback_private_link_local_cgnat_multicast_and_unspecified_are_inside)
{
    const char *inside[] = {"127.0.0.1",
                            "127.255.0.9",
                            "10.0.0.1",
                            "172.16.0.1",
                            "172.31.255.254",
                            "192.168.1.1",
                            "169.254.169.254",
                            "100.64.0.1",
                            "100.127.255.255",
                            "0.0.0.0",
                            "224.0.0.1",
                            "255.255.255.255",
                            "::1",
                            "::",
                            "fc00::1",
                            "fd12:3456::1",
                            "fe80::1",
                            "febf::1",
                            "fec0::1",
                            "ff02::1",
                            "::ffff:127.0.0.1",
                            "::ffff:10.1.2.3",
                            "64:ff9b::a9fe:a9fe",
                            "64:ff9b::7f00:1"};

    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
        cr_assert(internal(inside[i]), "%s is inside", inside[i]);
}

Test(net, public_addresses_are_not_inside_even_next_to_the_ranges)
{
    const char *outside[] = {"8.8.8.8",
                             "172.15.255.255",
                             "172.32.0.1",
                             "192.169.0.1",
                             "169.253.1.1",
                             "100.63.255.255",
                             "100.128.0.1",
                             "11.0.0.1",
                             "223.255.255.255",
                             "2001:4860:4860::8888",
                             "::ffff:8.8.8.8",
                             "64:ff9b::808:808",
                             "::2"};

    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
        cr_assert_not(internal(outside[i]), "%s is not inside", outside[i]);
}
