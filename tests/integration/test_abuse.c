/*
 * Abuse that needs no stolen key: slow HTTP clients, floods, squatting on
 * other principals' ids, and refusals that must not pass in silence. Each
 * test is an attack that worked once; each prints the figure it measured.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "pk/clock.h"

static h_env h;
static pk_keypair agent, owner;

static const char *pact =
    "{\"pactum\":1,\"id\":\"abuse-pact\",\"agent\":\"target-bot\",\"clauses\":["
    "{\"id\":\"no-pii\",\"promise\":\"no leaks\",\"severity\":\"critical\",\"kind\":\"forbidden\","
    "\"match\":{\"field\":\"labels.pii\",\"eq\":\"leaked\"}}]}";

static void setup(void)
{
    cr_assert(h_start(&h, true), "harness did not start (logs in %s)", h.dir);
    cr_assert(h_agent_with_pact(&h, "target-bot", 61, &agent, &owner, pact), "%s", h.why);
}

static void teardown(void)
{
    h_stop(&h);
}

TestSuite(abuse, .init = setup, .fini = teardown, .timeout = 300);

/* --- slow HTTP clients ------------------------------------------------------------- */

#define SLOW_CLIENTS 300

/* A TCP connection to the oracle's HTTP port from source address `from` (127.x.y.z). */
static int connect_from(const char *from, int port)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    inet_pton(AF_INET, from, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Still open: no end of stream and no reset waiting to be read. */
static bool still_open(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    if (poll(&p, 1, 0) <= 0)
        return true;
    return recv(fd, &c, 1, MSG_DONTWAIT) > 0;
}

/* One trust report over HTTP from 127.0.0.1; its time in ms, or -1 if it failed. */
static double trust_report_ms(void)
{
    char cmd[256], result[64] = "";
    double secs = -1;
    int code = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "curl -s -m 5 -o /dev/null -w '%%{http_code} %%{time_total}' "
             "'http://127.0.0.1:%d/v1/agents/target-bot/trust'",
             h.http_port);
    if (!(p = popen(cmd, "r")))
        return -1;
    if (!fgets(result, sizeof(result), p))
        result[0] = '\0';
    pclose(p);
    if (sscanf(result, "%d %lf", &code, &secs) != 2 || code != 200)
        return -1;
    return secs * 1000;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(abuse, slow_http_clients_do_not_lock_others_out)
{
    static const char partial[] = "GET /v1/health HTTP/1.1\r\nHost: oracle\r\n";
    int fds[SLOW_CLIENTS], opened = 0, held = 0, one_address = 0, one_address_held = 0;
    double ms[20];
    char from[32];

    /* 200 slow clients from 20 addresses, 100 more from a single one; each sends part of its
     * headers and keeps the connection alive with one more header line at a time */
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        if (i < 200)
            snprintf(from, sizeof(from), "127.0.1.%d", 1 + i / 10);
        else
            snprintf(from, sizeof(from), "127.0.2.1");
        fds[i] = connect_from(from, h.http_port);
        if (fds[i] >= 0 && send(fds[i], partial, sizeof(partial) - 1, MSG_NOSIGNAL) > 0)
            opened++;
        one_address += i >= 200;
    }
    cr_assert_gt(opened, 0, "no slow connection could be made: %s", strerror(errno));
    for (int round = 0; round < 3; round++) {
        pk_sleep_ms(1000);
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            if (fds[i] >= 0)
                (void)send(fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    /* a normal client, from its own address, while they are held */
    for (int i = 0; i < 20; i++) {
        ms[i] = trust_report_ms();
        cr_assert_geq(ms[i], 0, "trust report %d failed while slow clients were connected", i);
    }
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        bool open = fds[i] >= 0 && still_open(fds[i]);
        held += open;
        one_address_held += open && i >= 200;
    }
    qsort(ms, 20, sizeof(ms[0]), cmp_double);
    printf("slow clients: %d of %d held open (%d of the %d from one address); a normal "
           "client's trust report p50 %.1f ms, max %.1f ms\n",
           held, SLOW_CLIENTS, one_address_held, one_address, ms[10], ms[19]);
    cr_assert_lt(one_address_held, one_address, "no cap on connections from one address");
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
}
