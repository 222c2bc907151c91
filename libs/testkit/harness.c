#define _GNU_SOURCE
#include "harness.h"

#include "pk/answer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pk/clock.h"
#include "pk/natsauth.h"

const char *const h_service_names[H_SERVICES] = {"ingest", "evaluator", "scorer", "oracle"};

pk_bus *h_connect(const char *url, const char *name, bool send_asap)
{
    pk_bus_opts bo = {.url = url, .name = name, .send_asap = send_asap, .connect_wait_ms = 5000};
    pk_bus *bus = NULL;

    return pk_bus_connect(&bus, &bo) == PK_OK ? bus : NULL;
}

int h_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/*
 * The environment is built before fork: the child only calls async-signal-safe functions,
 * since the parent has other threads.
 */
pid_t h_spawn(const char *path, char *const argv[], const char *log, const char *const *env_pairs)
{
    extern char **environ;
    size_t n_env = 0, n_pairs = 0, k = 0;
    char **envp;
    pid_t pid;
    int fd;

    while (environ[n_env])
        n_env++;
    while (env_pairs && env_pairs[n_pairs])
        n_pairs++;
    envp = calloc(n_env + n_pairs + 1, sizeof(*envp));
    if (!envp)
        return -1;
    for (size_t i = 0; i < n_env; i++) {
        bool overridden = false;
        for (size_t j = 0; j < n_pairs; j++) {
            size_t kl = strcspn(env_pairs[j], "=");
            if (strncmp(environ[i], env_pairs[j], kl + 1) == 0)
                overridden = true;
        }
        if (!overridden)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < n_pairs; j++)
        envp[k++] = (char *)env_pairs[j];
    envp[k] = NULL;
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid = fork();
    if (pid == 0) {
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execve(path, argv, envp);
        _exit(127);
    }
    if (fd >= 0)
        close(fd);
    free(envp);
    return pid;
}

int h_stop_pid(pid_t pid, int sig, int timeout_ms)
{
    int status = 0;
    int64_t deadline = pk_mono_ms() + timeout_ms;

    if (pid <= 0)
        return -1;
    kill(pid, sig);
    while (pk_mono_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pk_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/*
 * Spawn service `which` with its data under var (a folder name in h->dir),
 * its log in <dir>/<log>.log and the harness's defaults unless extra sets
 * them; its pid, or -1.
 */
static pid_t spawn_named(h_env *h, const char *name, const char *var, const char *logname,
                         const char *const *extra)
{
    char path[512], log[512];
    static _Thread_local char url_env[300], dir_env[320], http_env[96], admin_env[96];
    static _Thread_local char creds_env[400], ca_env[400], issuer_env[400], replicas_env[64];
    const char *env[32];
    size_t n = 0;
    char *argv[2];

    snprintf(path, sizeof(path), "%s/services/%s/pactum-%s", PK_BUILD_DIR, name, name);
    snprintf(log, sizeof(log), "%s/%s.log", h->dir, logname);
    snprintf(url_env, sizeof(url_env), "PACTUM_NATS_URL=%s", h->url);
    snprintf(dir_env, sizeof(dir_env), "PACTUM_DATA_DIR=%s/%s", h->dir, var);
    snprintf(replicas_env, sizeof(replicas_env), "PACTUM_STREAM_REPLICAS=%d",
             h->nodes > 0 ? h->nodes : 1);
    {
        /* defaults, each unless the caller's environment sets it itself */
        const char *defaults[5] = {url_env, dir_env, "PACTUM_LMDB_MAP_MB=64", admin_env,
                                   replicas_env};
        char hex[65];
        pk_hex_encode(h->admin.pk, 32, hex);
        snprintf(admin_env, sizeof(admin_env), "PACTUM_ADMIN_KEY=%s", hex);
        for (int d = 0; d < 5; d++) {
            size_t nl = (size_t)(strchr(defaults[d], '=') - defaults[d]) + 1;
            bool own = false;
            for (size_t i = 0; extra && extra[i]; i++)
                own |= strncmp(extra[i], defaults[d], nl) == 0;
            if (!own)
                env[n++] = defaults[d];
        }
    }
    if (strcmp(name, "oracle") == 0) {
        int port = strcmp(var, "var") == 0
                       ? (h->http_port ? h->http_port : (h->http_port = h_free_port()))
                       : h_free_port();
        snprintf(http_env, sizeof(http_env), "PACTUM_ORACLE_HTTP=127.0.0.1:%d", port);
        env[n++] = http_env;
    }
    if (h->secure) { /* each service as its own bus user, over TLS */
        snprintf(creds_env, sizeof(creds_env), "PACTUM_NATS_CREDS=%s/creds/%s.creds", h->auth,
                 name);
        snprintf(ca_env, sizeof(ca_env), "PACTUM_NATS_CA=%s", h->ca);
        snprintf(issuer_env, sizeof(issuer_env), "PACTUM_INGEST_ISSUER=%s/issuer.json", h->auth);
        env[n++] = creds_env;
        env[n++] = ca_env;
        if (strcmp(name, "ingest") == 0)
            env[n++] = issuer_env;
    }
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    argv[0] = path;
    argv[1] = NULL;
    return h_spawn(path, argv, log, env);
}

static pid_t spawn_service(h_env *h, int which, const char *var, const char *logname,
                           const char *const *extra)
{
    return spawn_named(h, h_service_names[which], var, logname, extra);
}

bool h_start_gateway(h_env *h, const char *const *extra, int *http_port, int *otlp_port)
{
    static _Thread_local char http_env[64], otlp_env[64];
    const char *env[24];
    size_t n = 0;
    int slot = 0;

    while (slot < H_EXTRA && h->extra_pid[slot] > 0)
        slot++;
    if (slot == H_EXTRA)
        return false;
    *http_port = h_free_port();
    *otlp_port = h_free_port();
    snprintf(http_env, sizeof(http_env), "PACTUM_GATEWAY_HTTP=127.0.0.1:%d", *http_port);
    snprintf(otlp_env, sizeof(otlp_env), "PACTUM_GATEWAY_OTLP=127.0.0.1:%d", *otlp_port);
    env[n++] = http_env;
    env[n++] = otlp_env;
    for (size_t i = 0; extra && extra[i] && n < 23; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    h->extra_pid[slot] = spawn_named(h, "gateway", "var", "gateway", env);
    return h->extra_pid[slot] > 0 && h_wait_healthy(h, "gateway", 20000);
}

bool h_start_service(h_env *h, int which, const char *const *extra)
{
    h->svc_pid[which] = spawn_service(h, which, "var", h_service_names[which], extra);
    if (h->svc_pid[which] < 0)
        return false;
    return h_wait_healthy(h, h_service_names[which], 20000);
}

int h_start_instance(h_env *h, int which, const char *name, const char *const *extra)
{
    char var[96];
    int slot = 0;

    while (slot < H_EXTRA && h->extra_pid[slot] > 0)
        slot++;
    if (slot == H_EXTRA)
        return -1;
    snprintf(var, sizeof(var), "var-%s", name);
    h->extra_pid[slot] = spawn_service(h, which, var, name, extra);
    return h->extra_pid[slot] > 0 ? slot : -1;
}

bool h_wait_healthy(h_env *h, const char *service, int timeout_ms)
{
    char subject[64];
    int64_t deadline = pk_mono_ms() + timeout_ms;

    snprintf(subject, sizeof(subject), PK_SUBJ_HEALTH, service);
    while (pk_mono_ms() < deadline) {
        natsMsg *reply = NULL;
        if (natsConnection_Request(&reply, h->bus->nc, subject, "", 0, 500) == NATS_OK) {
            bool ok = strstr(natsMsg_GetData(reply), "\"healthy\":true") != NULL;
            natsMsg_Destroy(reply);
            if (ok)
                return true;
        }
        pk_sleep_ms(50);
    }
    return false;
}

/* Start nats-server on h->port (0: a free one) with the store in h->dir/js. */
static bool start_nats(h_env *h)
{
    char js[320], log[320], port[16];
    int64_t deadline;
    bool fixed = h->port != 0;

    snprintf(js, sizeof(js), "%s/js", h->dir);
    snprintf(log, sizeof(log), "%s/nats.log", h->dir);
    h->nats_pid = 0;
    for (int attempt = 0; attempt < (fixed ? 50 : 5) && !h->nats_pid; attempt++) {
        char *argv[12];
        int n = 0;
        if (!fixed)
            h->port = h_free_port();
        snprintf(port, sizeof(port), "%d", h->port);
        snprintf(h->url, sizeof(h->url), "nats://127.0.0.1:%d", h->port);
        argv[n++] = (char *)PK_NATS_SERVER;
        if (h->nats_conf[0]) {
            argv[n++] = "-c";
            argv[n++] = h->nats_conf;
        }
        argv[n++] = "-a";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = port;
        if (!h->secure) { /* a deployed bus has JetStream in its configuration, so a reload
                           * of that file is what decides whether it stays on */
            argv[n++] = "-js";
            argv[n++] = "-sd";
            argv[n++] = js;
        }
        argv[n] = NULL;
        h->nats_pid = h_spawn(PK_NATS_SERVER, argv, log, NULL);
        deadline = pk_mono_ms() + 10000;
        while (pk_mono_ms() < deadline && !port_open(h->port)) {
            if (waitpid(h->nats_pid, NULL, WNOHANG) == h->nats_pid) {
                h->nats_pid = 0; /* the port is taken: another one, or (fixed) a moment later */
                break;
            }
            pk_sleep_ms(20);
        }
        if (h->nats_pid && !port_open(h->port)) {
            h_stop_pid(h->nats_pid, SIGKILL, 1000);
            h->nats_pid = 0;
        }
        if (!h->nats_pid && fixed)
            pk_sleep_ms(100);
    }
    return h->nats_pid != 0;
}

/* --- a cluster of nats-servers ------------------------------------------------------ */

static int route_port[H_NODES];

/* Every stream has node i as its leader or as a current replica (the streams' own view). */
static bool streams_current_on(h_env *h, int i)
{
    jsStreamInfoList *list = NULL;
    jsErrCode jerr = 0;
    char name[16];
    bool ok = true;

    snprintf(name, sizeof(name), "n%d", i);
    if (js_Streams(&list, h->bus->js, NULL, &jerr) != NATS_OK)
        return false;
    for (int k = 0; k < list->Count && ok; k++) {
        const jsClusterInfo *c = list->List[k]->Cluster;
        bool here = false;
        if (!c)
            continue; /* one replica, elsewhere */
        if (c->Leader && strcmp(c->Leader, name) == 0)
            continue;
        for (int r = 0; r < c->ReplicasLen; r++) {
            if (strcmp(c->Replicas[r]->Name, name) == 0)
                here = c->Replicas[r]->Current && !c->Replicas[r]->Offline;
        }
        ok = here && c->Leader; /* no leader: nothing is current anywhere yet */
    }
    jsStreamInfoList_Destroy(list);
    return ok;
}

int64_t h_node_current(h_env *h, int i, int64_t bound_ms)
{
    int64_t t0 = pk_mono_ms();

    while (pk_mono_ms() - t0 < bound_ms) {
        if (streams_current_on(h, i))
            return pk_mono_ms() - t0;
        pk_sleep_ms(200);
    }
    return -1;
}

/* Write node i's configuration (ports fixed at the first start) and start it. */
bool h_start_node(h_env *h, int i)
{
    char conf[400], log[320], routes[512] = "";
    char *argv[4];
    FILE *f;
    int64_t deadline;

    for (int k = 0; k < h->nodes; k++) {
        char one[64];
        if (k == i)
            continue;
        snprintf(one, sizeof(one), "%snats-route://127.0.0.1:%d", routes[0] ? ", " : "",
                 route_port[k]);
        strncat(routes, one, sizeof(routes) - strlen(routes) - 1);
    }
    snprintf(conf, sizeof(conf), "%s/node-%d.conf", h->dir, i);
    snprintf(log, sizeof(log), "%s/nats-%d.log", h->dir, i);
    if (!(f = fopen(conf, "w")))
        return false;
    fprintf(f,
            "server_name: n%d\nlisten: 127.0.0.1:%d\n"
            "jetstream { store_dir: \"%s/js-%d\" }\n"
            "cluster { name: pactum-test, listen: 127.0.0.1:%d, routes: [%s] }\n",
            i, h->node_port[i], h->dir, i, route_port[i], routes);
    fclose(f);
    argv[0] = (char *)PK_NATS_SERVER;
    argv[1] = "-c";
    argv[2] = conf;
    argv[3] = NULL;
    h->node_pid[i] = h_spawn(PK_NATS_SERVER, argv, log, NULL);
    deadline = pk_mono_ms() + 15000;
    while (h->node_pid[i] > 0 && pk_mono_ms() < deadline && !port_open(h->node_port[i]))
        pk_sleep_ms(20);
    return h->node_pid[i] > 0 && port_open(h->node_port[i]);
}

void h_stop_node(h_env *h, int i, int sig)
{
    if (h->node_pid[i] > 0)
        h_stop_pid(h->node_pid[i], sig, 15000);
    h->node_pid[i] = 0;
}

bool h_start_cluster(h_env *h, int nodes)
{
    pk_bus_opts bo = {0};
    int64_t deadline;
    size_t off = 0;

    memset(h, 0, sizeof(*h));
    if (nodes < 1 || nodes > H_NODES || pk_crypto_init() != PK_OK)
        return false;
    h_keypair(&h->admin, 0xad);
    snprintf(h->dir, sizeof(h->dir), "/tmp/pactum-test-XXXXXX");
    if (!mkdtemp(h->dir))
        return false;
    h->nodes = nodes;
    for (int i = 0; i < nodes; i++) {
        h->node_port[i] = h_free_port();
        route_port[i] = h_free_port();
        off += (size_t)snprintf(h->url + off, sizeof(h->url) - off, "%snats://127.0.0.1:%d",
                                i ? "," : "", h->node_port[i]);
    }
    h->port = h->node_port[0];
    for (int i = 0; i < nodes; i++) {
        if (!h_start_node(h, i))
            return false;
    }
    bo.url = h->url;
    bo.name = "pactum-test";
    bo.send_asap = true;
    bo.connect_wait_ms = 10000;
    if (pk_bus_connect(&h->bus, &bo) != PK_OK)
        return false;
    /* the cluster is ready when its JetStream answers (it has elected a leader) */
    deadline = pk_mono_ms() + 30000;
    while (pk_mono_ms() < deadline) {
        jsAccountInfo *ai = NULL;
        jsErrCode jerr = 0;
        if (js_GetAccountInfo(&ai, h->bus->js, NULL, &jerr) == NATS_OK) {
            jsAccountInfo_Destroy(ai);
            return true;
        }
        pk_sleep_ms(200);
    }
    return false;
}

bool h_start_with(h_env *h, bool with_services, const char *nats_conf, const char *user,
                  const char *password)
{
    pk_bus_opts bo = {0};

    memset(h, 0, sizeof(*h));
    if (pk_crypto_init() != PK_OK)
        return false;
    h_keypair(&h->admin, 0xad);
    snprintf(h->dir, sizeof(h->dir), "/tmp/pactum-test-XXXXXX");
    if (!mkdtemp(h->dir))
        return false;
    if (nats_conf) {
        FILE *f;
        snprintf(h->nats_conf, sizeof(h->nats_conf), "%s/nats.conf", h->dir);
        if (!(f = fopen(h->nats_conf, "w")))
            return false;
        fputs(nats_conf, f);
        fclose(f);
    }
    if (!start_nats(h))
        return false;
    bo.url = h->url;
    bo.name = "pactum-test";
    bo.user = user;
    bo.password = password;
    bo.send_asap = true;
    bo.connect_wait_ms = 5000;
    if (pk_bus_connect(&h->bus, &bo) != PK_OK)
        return false;
    if (with_services) {
        for (int i = 0; i < H_SERVICES; i++) {
            if (!h_start_service(h, i, NULL))
                return false;
        }
    }
    return true;
}

/* Run a shell command (bounded); true if it exited 0. */
static bool run(const char *cmd)
{
    char bounded[4096];
    int status;

    snprintf(bounded, sizeof(bounded), "timeout 120 %s >/dev/null 2>&1", cmd);
    status = system(bounded);
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A user with every right, signed by the account key in the setup folder. */
static bool connect_superuser(h_env *h)
{
    char path[512], seed[PK_NKEY_SEED_LEN + 2], *jwt = NULL;
    const char *all[] = {">", NULL};
    pk_keypair account, user;
    pk_nkey_kind kind;
    json_t *perms = pk_jwt_perms(all, all, true);
    FILE *f;
    bool ok = false;

    snprintf(path, sizeof(path), "%s/account.nk", h->auth);
    if (!(f = fopen(path, "r")))
        return false;
    ok = fgets(seed, sizeof(seed), f) != NULL;
    fclose(f);
    seed[strcspn(seed, "\r\n")] = '\0';
    ok = ok && pk_nkey_seed_decode(seed, &kind, &account) == PK_OK &&
         pk_keypair_generate(&user) == PK_OK &&
         pk_jwt_user(&account, NULL, user.pk, "harness", perms, &jwt) == PK_OK &&
         (h->bus = h_connect_jwt(h, jwt, &user, "pactum-test")) != NULL;
    json_decref(perms);
    free(jwt);
    pk_keypair_wipe(&account);
    return ok;
}

bool h_start_secure(h_env *h, bool with_services)
{
    char cmd[2048], tls[300];

    memset(h, 0, sizeof(*h));
    if (pk_crypto_init() != PK_OK)
        return false;
    h_keypair(&h->admin, 0xad);
    snprintf(h->dir, sizeof(h->dir), "/tmp/pactum-test-XXXXXX");
    if (!mkdtemp(h->dir))
        return false;
    h->secure = true;
    snprintf(tls, sizeof(tls), "%s/tls", h->dir);
    snprintf(h->auth, sizeof(h->auth), "%s/auth", h->dir);
    snprintf(h->ca, sizeof(h->ca), "%s/ca.pem", tls);
    snprintf(cmd, sizeof(cmd), "%s/scripts/tls.sh %s", PK_SOURCE_DIR, tls);
    if (!run(cmd))
        return false;
    snprintf(cmd, sizeof(cmd), "%s/cli/pactum setup init --dir %s --tls-dir %s --store %s/js",
             PK_BUILD_DIR, h->auth, tls, h->dir);
    if (!run(cmd))
        return false;
    snprintf(h->nats_conf, sizeof(h->nats_conf), "%s/nats.conf", h->auth);
    if (!start_nats(h))
        return false;
    snprintf(cmd, sizeof(cmd),
             "%s/cli/pactum --server %s --ca %s --creds %s/creds/setup.creds setup streams",
             PK_BUILD_DIR, h->url, h->ca, h->auth);
    if (!run(cmd) || !connect_superuser(h))
        return false;
    for (int i = 0; with_services && i < H_SERVICES; i++) {
        if (!h_start_service(h, i, NULL))
            return false;
    }
    return true;
}

pk_bus *h_connect_creds(h_env *h, const char *creds, const char *name)
{
    pk_bus_opts bo = {.url = h->url,
                      .name = name,
                      .creds = creds,
                      .ca = h->secure ? h->ca : NULL,
                      .send_asap = true,
                      .connect_wait_ms = 5000};
    pk_bus *bus = NULL;

    if (pk_bus_connect(&bus, &bo) != PK_OK) {
        snprintf(h->why, sizeof(h->why), "%s", pk_error_msg());
        return NULL;
    }
    return bus;
}

pk_bus *h_connect_jwt(h_env *h, const char *jwt, const pk_keypair *kp, const char *name)
{
    pk_bus_opts bo = {.url = h->url,
                      .name = name,
                      .jwt = jwt,
                      .nkey = kp,
                      .ca = h->secure ? h->ca : NULL,
                      .send_asap = true,
                      .connect_wait_ms = 5000};
    pk_bus *bus = NULL;

    if (pk_bus_connect(&bus, &bo) != PK_OK) {
        snprintf(h->why, sizeof(h->why), "%s", pk_error_msg());
        return NULL;
    }
    return bus;
}

bool h_start(h_env *h, bool with_services)
{
    return h_start_with(h, with_services, NULL, NULL, NULL);
}

void h_stop_nats(h_env *h, int sig)
{
    if (h->nats_pid > 0)
        h_stop_pid(h->nats_pid, sig, 15000);
    h->nats_pid = 0;
}

bool h_start_nats(h_env *h)
{
    return start_nats(h);
}

bool h_restart_nats(h_env *h, int sig)
{
    h_stop_nats(h, sig);
    return start_nats(h);
}

bool h_restart_service(h_env *h, int which, int sig, const char *const *extra_env)
{
    if (h->svc_pid[which] > 0)
        h_stop_pid(h->svc_pid[which], sig, 15000);
    h->svc_pid[which] = 0;
    return h_start_service(h, which, extra_env);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int h_stop_services(h_env *h)
{
    int bad = 0;

    for (int i = H_SERVICES - 1; i >= 0; i--) {
        int status;
        if (h->svc_pid[i] <= 0)
            continue;
        status = h_stop_pid(h->svc_pid[i], SIGTERM, 15000);
        if (status != 0) {
            char cmd[600];
            fprintf(stderr, "%s did not exit cleanly (status %d%s); the end of its log:\n",
                    h_service_names[i], status, status < 0 ? ", killed after 15 s" : "");
            snprintf(cmd, sizeof(cmd), "tail -n 30 %s/%s.log >&2", h->dir, h_service_names[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "(no log)\n");
            bad++;
        }
        h->svc_pid[i] = 0;
    }
    return bad;
}

char *h_source_file(const char *relative)
{
    char path[1024];
    FILE *f;
    long len;
    char *buf;

    snprintf(path, sizeof(path), "%s/%s", PK_SOURCE_DIR, relative);
    if (!(f = fopen(path, "rb")))
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

void h_stop(h_env *h)
{
    h_stop_services(h);
    for (int i = 0; i < H_EXTRA; i++) {
        if (h->extra_pid[i] > 0)
            h_stop_pid(h->extra_pid[i], SIGTERM, 15000);
        h->extra_pid[i] = 0;
    }
    pk_bus_close(h->bus);
    h->bus = NULL;
    if (h->nats_pid > 0)
        h_stop_pid(h->nats_pid, SIGTERM, 5000);
    h->nats_pid = 0;
    for (int i = 0; i < h->nodes; i++)
        h_stop_node(h, i, SIGTERM);
    if (h->dir[0] && !getenv("PK_KEEP_TEST_DIR"))
        nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void h_keypair(pk_keypair *kp, uint8_t seed_byte)
{
    uint8_t seed[PK_SEED_BYTES];

    memset(seed, seed_byte, sizeof(seed));
    if (pk_keypair_from_seed(kp, seed) != PK_OK)
        abort();
}

Pactum__V1__RegistryReceipt *h_submit(h_env *h, const uint8_t *data, size_t len)
{
    natsMsg *reply = NULL;
    Pactum__V1__RegistryReceipt *r;

    if (natsConnection_Request(&reply, h->bus->nc, PK_SUBJ_REG_SUBMIT, data, (int)len, 10000) !=
        NATS_OK)
        return NULL;
    r = pactum__v1__registry_receipt__unpack(NULL, (size_t)natsMsg_GetDataLength(reply),
                                             (const uint8_t *)natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    return r;
}

/* Seal m as type under signer (no signer id: by key) and submit it for registration. */
static Pactum__V1__RegistryReceipt *submit_sealed(h_env *h, Pactum__V1__PayloadType type,
                                                  const ProtobufCMessage *m,
                                                  const pk_keypair *signer)
{
    uint8_t *payload = NULL, *env = NULL;
    size_t plen, elen;
    Pactum__V1__RegistryReceipt *r = NULL;

    if (pk_pack(m, &payload, &plen) == PK_OK &&
        pk_envelope_seal(type, payload, plen, "", signer, &env, &elen) == PK_OK)
        r = h_submit(h, env, elen);
    free(payload);
    free(env);
    return r;
}

Pactum__V1__RegistryReceipt *h_register_agent(h_env *h, const char *id, const pk_keypair *agent,
                                              const pk_keypair *owner)
{
    Pactum__V1__AgentRegistration ar = PACTUM__V1__AGENT_REGISTRATION__INIT;
    uint8_t *pop = NULL, sig[PK_SIG_BYTES];
    size_t poplen;
    Pactum__V1__RegistryReceipt *r;

    if (pk_pop_message(id, owner->pk, &pop, &poplen) != PK_OK)
        return NULL;
    pk_sign(agent, pop, poplen, sig);
    ar.agent_id = (char *)id;
    ar.agent_key.data = (uint8_t *)agent->pk;
    ar.agent_key.len = PK_PUBKEY_BYTES;
    ar.owner_key.data = (uint8_t *)owner->pk;
    ar.owner_key.len = PK_PUBKEY_BYTES;
    ar.agent_pop.data = sig;
    ar.agent_pop.len = PK_SIG_BYTES;
    r = submit_sealed(h, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_AGENT_REGISTRATION, &ar.base, owner);
    free(pop);
    return r;
}

pk_bus *h_connect_agent(h_env *h, const char *id, const pk_keypair *agent, const pk_keypair *owner,
                        bool as_owner)
{
    Pactum__V1__RegistryReceipt *r = h_register_agent(h, id, agent, owner);
    const pk_keypair *kp = as_owner ? owner : agent;
    pk_bus *bus = NULL;

    if (!r) {
        snprintf(h->why, sizeof(h->why), "no receipt for %s", id);
        return NULL;
    }
    snprintf(h->why, sizeof(h->why), "the receipt carries no bus identity: %s", r->message);
    for (size_t i = 0; i < r->n_credentials && !bus; i++) {
        if (r->credentials[i]->key.len == 32 &&
            memcmp(r->credentials[i]->key.data, kp->pk, 32) == 0)
            bus = h_connect_jwt(h, r->credentials[i]->jwt, kp, id);
    }
    pactum__v1__registry_receipt__free_unpacked(r, NULL);
    return bus;
}

Pactum__V1__RegistryReceipt *h_register_pact(h_env *h, const pk_keypair *owner, const char *json)
{
    Pactum__V1__PactRegistration pr = PACTUM__V1__PACT_REGISTRATION__INIT;
    const char *id = strstr(json, "\"id\"");
    char pact_id[PK_ID_MAX + 1] = "";

    if (id)
        sscanf(id, "\"id\"%*[ :]\"%64[^\"]\"", pact_id);
    pr.pact_id = pact_id;
    pr.document.data = (uint8_t *)json;
    pr.document.len = strlen(json);
    return submit_sealed(h, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PACT_REGISTRATION, &pr.base, owner);
}

void h_event_init(pk_event_msg *ev, const char *event_id, const char *agent, const char *kind,
                  Pactum__V1__Metric *metric, Pactum__V1__Label *label)
{
    static Pactum__V1__Metric *mp[1];
    static Pactum__V1__Label *lp[1];

    pactum__v1__event__init(ev);
    ev->event_id = (char *)event_id;
    ev->agent_id = (char *)agent;
    ev->ts_ms = pk_now_ms();
    ev->kind = (char *)kind;
    if (metric) {
        mp[0] = metric;
        ev->metrics = mp;
        ev->n_metrics = 1;
    }
    if (label) {
        lp[0] = label;
        ev->labels = lp;
        ev->n_labels = 1;
    }
}

uint8_t *h_envelope(const char *signer, const pk_keypair *kp, pk_event_msg **evs, size_t n,
                    size_t *len)
{
    Pactum__V1__EventBatch b = PACTUM__V1__EVENT_BATCH__INIT;
    uint8_t *payload = NULL, *env = NULL;
    size_t plen;

    b.events = evs;
    b.n_events = n;
    if (pk_pack(&b.base, &payload, &plen) != PK_OK)
        return NULL;
    if (pk_envelope_seal(PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_EVENT_BATCH, payload, plen, signer, kp,
                         &env, len) != PK_OK)
        env = NULL;
    free(payload);
    return env;
}

bool h_test_stream(h_env *h, const char *name, const char *subject, int n)
{
    const char *subj[] = {subject};
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;

    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    if (js_AddStream(&si, h->bus->js, &sc, NULL, &jerr) != NATS_OK)
        return false;
    jsStreamInfo_Destroy(si);
    for (int i = 0; i < n; i++) {
        if (!h_publish(h, subject, (const uint8_t *)"m", 1))
            return false;
    }
    return true;
}

bool h_publish(h_env *h, const char *subject, const uint8_t *data, size_t len)
{
    return pk_bus_publish_sync(h->bus, subject, data, len, NULL, false, 0, NULL, NULL) == PK_OK;
}

bool h_publish_events(h_env *h, const char *agent, const pk_keypair *kp, const char *prefix, int n,
                      const char *kind, const char *metric, double value, const char *label,
                      const char *label_value)
{
    char subject[128];

    snprintf(subject, sizeof(subject), PK_SUBJ_RAW, agent);
    for (int i = 0; i < n; i++) {
        Pactum__V1__Metric m = PACTUM__V1__METRIC__INIT;
        Pactum__V1__Label l = PACTUM__V1__LABEL__INIT;
        pk_event_msg ev, *evp = &ev;
        char id[128];
        uint8_t *env;
        size_t len;
        bool ok;

        m.name = (char *)metric;
        m.value = value;
        l.name = (char *)label;
        l.value = (char *)label_value;
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        h_event_init(&ev, id, agent, kind, metric ? &m : NULL, label ? &l : NULL);
        env = h_envelope(agent, kp, &evp, 1, &len);
        ok = env && h_publish(h, subject, env, len);
        free(env);
        if (!ok)
            return false;
    }
    return true;
}

int h_cli(h_env *h, char *out, size_t outlen, const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    FILE *p;
    size_t n;
    int status;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    /* bounded: a command that hangs fails its test instead of holding it */
    if (h->secure) /* people: the enroll user, unless a key of theirs says who they are */
        snprintf(cmd, sizeof(cmd),
                 "cd %s && PACTUM_NATS_URL=%s PACTUM_NATS_CA=%s "
                 "PACTUM_NATS_CREDS=%s/creds/enroll.creds timeout 120 %s/cli/pactum %s 2>&1",
                 h->dir, h->url, h->ca, h->auth, PK_BUILD_DIR, args);
    else
        snprintf(cmd, sizeof(cmd), "cd %s && PACTUM_NATS_URL=%s timeout 120 %s/cli/pactum %s 2>&1",
                 h->dir, h->url, PK_BUILD_DIR, args);
    if (!(p = popen(cmd, "r")))
        return -1;
    n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ProtobufCMessage *h_ask(h_env *h, const char *subject, const ProtobufCMessage *query,
                        Pactum__V1__PayloadType type)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    natsMsg *reply = NULL;
    ProtobufCMessage *r = NULL;

    if (pk_pack(query, &buf, &len) != PK_OK)
        return NULL;
    if (natsConnection_Request(&reply, h->bus->nc, subject, buf, (int)len, 5000) == NATS_OK) {
        /* every oracle answer is signed: open it the way a client must */
        if (pk_answer_open((const uint8_t *)natsMsg_GetData(reply),
                           (size_t)natsMsg_GetDataLength(reply), type, pk_answer_descriptor(type),
                           NULL, NULL, &r) != PK_OK)
            fprintf(stderr, "harness: answer on %s does not open: %s\n", subject, pk_error_msg());
        natsMsg_Destroy(reply);
    }
    free(buf);
    return r;
}

Pactum__V1__TrustReport *h_trust(h_env *h, const char *agent)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;

    q.agent_id = (char *)agent;
    return (Pactum__V1__TrustReport *)h_ask(h, PK_SUBJ_ORACLE_TRUST, &q.base,
                                            PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT);
}

Pactum__V1__TrustReport *h_wait_tier(h_env *h, const char *agent, Pactum__V1__Tier tier,
                                     int timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;
    Pactum__V1__TrustReport *r = NULL;

    do {
        if (r)
            pactum__v1__trust_report__free_unpacked(r, NULL);
        r = h_trust(h, agent);
        if (r && r->state && r->state->tier == tier)
            return r;
        pk_sleep_ms(50);
    } while (pk_mono_ms() < deadline);
    return r;
}

long long h_page_faults(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long minflt = 0, majflt = 0;
    FILE *f;
    size_t n;

    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/stat");
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command's closing parenthesis: state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %llu", &minflt, &majflt) != 2)
        return -1;
    return (long long)(minflt + majflt);
}

long long h_metric(h_env *h, const char *service, const char *series)
{
    char subject[64];
    natsMsg *reply = NULL;
    long long v = -1;
    size_t n = strlen(series);

    snprintf(subject, sizeof(subject), PK_SUBJ_METRICS, service);
    if (natsConnection_Request(&reply, h->bus->nc, subject, "", 0, 3000) != NATS_OK)
        return -1;
    for (const char *p = natsMsg_GetData(reply); p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtoll(p + n + 1, NULL, 10);
            break;
        }
        p = eol ? eol + 1 : NULL;
    }
    natsMsg_Destroy(reply);
    return v;
}

long long h_wait_metric(h_env *h, const char *service, const char *series, long long want,
                        int timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;
    long long v;

    do {
        v = h_metric(h, service, series);
        if (v >= want)
            return v;
        pk_sleep_ms(50);
    } while (pk_mono_ms() < deadline);
    return v;
}

static bool receipt_ok(h_env *h, Pactum__V1__RegistryReceipt *r, const char *what)
{
    bool ok = r && r->ok;

    snprintf(h->why, sizeof(h->why), "%s: %s", what,
             r ? r->message : "no receipt (is ingest running?)");
    if (r)
        pactum__v1__registry_receipt__free_unpacked(r, NULL);
    return ok;
}

bool h_agent(h_env *h, const char *id, const pk_keypair *agent, const pk_keypair *owner)
{
    return receipt_ok(h, h_register_agent(h, id, agent, owner), id);
}

bool h_pact(h_env *h, const pk_keypair *owner, const char *json)
{
    return receipt_ok(h, h_register_pact(h, owner, json), "pact");
}

bool h_key_file(h_env *h, const char *name, const pk_keypair *kp)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s.key", h->dir, name);
    if (pk_key_save(path, kp) == PK_OK)
        return true;
    snprintf(h->why, sizeof(h->why), "%s", pk_error_msg());
    return false;
}

bool h_client(h_env *h, const char *id, char *token, size_t len)
{
    Pactum__V1__PrincipalRegistration pr = PACTUM__V1__PRINCIPAL_REGISTRATION__INIT;
    uint8_t secret[24], hash[PK_HASH_BYTES];
    char b64[48];

    randombytes_buf(secret, sizeof(secret));
    sodium_bin2base64(b64, sizeof(b64), secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_hash_sha256(hash, (const uint8_t *)b64, strlen(b64));
    pr.id = (char *)id;
    pr.role = PACTUM__V1__ROLE__ROLE_CLIENT;
    pr.token_hash.data = hash;
    pr.token_hash.len = sizeof(hash);
    pr.ts_ms = pk_now_ms();
    snprintf(token, len, "%s:%s", id, b64);
    return receipt_ok(h,
                      submit_sealed(h, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_PRINCIPAL_REGISTRATION,
                                    &pr.base, &h->admin),
                      id);
}

bool h_agent_with_pact(h_env *h, const char *id, uint8_t seed, pk_keypair *agent, pk_keypair *owner,
                       const char *pact)
{
    h_keypair(agent, seed);
    h_keypair(owner, (uint8_t)(seed + 1));
    return h_agent(h, id, agent, owner) && (!pact || h_pact(h, owner, pact));
}

bool h_containment_timed(h_env *h, const Pactum__V1__TierChange *tc, int64_t bound_ms)
{
    if (!tc->verdict || tc->verdict->ingest_ms <= 0)
        snprintf(h->why, sizeof(h->why), "the containment names no verdict with an ingest time");
    else if (tc->containment_ms != tc->decided_ms - tc->verdict->ingest_ms)
        snprintf(h->why, sizeof(h->why), "containment_ms %lld is not decided %lld - ingest %lld",
                 (long long)tc->containment_ms, (long long)tc->decided_ms,
                 (long long)tc->verdict->ingest_ms);
    else if (tc->containment_ms < 0 || tc->containment_ms >= bound_ms)
        snprintf(h->why, sizeof(h->why), "containment_ms %lld is outside [0, %lld)",
                 (long long)tc->containment_ms, (long long)bound_ms);
    else
        return true;
    return false;
}

ProtobufCMessage *h_ask_until(h_env *h, const char *subject, const ProtobufCMessage *query,
                              Pactum__V1__PayloadType type,
                              bool (*done)(const ProtobufCMessage *answer, void *ctx), void *ctx,
                              int timeout_ms)
{
    int64_t deadline = pk_mono_ms() + timeout_ms;
    ProtobufCMessage *m = NULL;

    for (;;) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        m = h_ask(h, subject, query, type);
        if ((m && done(m, ctx)) || pk_mono_ms() >= deadline)
            return m;
        pk_sleep_ms(100);
    }
}

bool h_read_stream(h_env *h, const char *stream, const char *filter, h_msg_fn each, void *ctx)
{
    pk_consumer c = {0};
    int64_t deadline = pk_mono_ms() + 60000;
    bool go = true;

    if (pk_consumer_open(&c, h->bus, stream, NULL, filter, 1, 1024, 30000) != PK_OK)
        return false;
    while (go && pk_mono_ms() < deadline) {
        natsMsgList list;
        pk_status st = pk_consumer_fetch(&c, &list, 512, 1000);
        if (st == PK_ETIMEOUT)
            break;
        if (st != PK_OK) {
            go = false;
            break;
        }
        for (int i = 0; i < list.Count && go; i++)
            go = each(ctx, list.Msgs[i]);
        natsMsgList_Destroy(&list);
    }
    pk_consumer_close(&c);
    return go;
}

bool h_next_rejection(natsSubscription *sub, int timeout_ms, Pactum__V1__Rejection **out,
                      char *subject, size_t len)
{
    natsMsg *m = NULL;

    *out = NULL;
    if (natsSubscription_NextMsg(&m, sub, timeout_ms) != NATS_OK)
        return false;
    *out = pactum__v1__rejection__unpack(NULL, (size_t)natsMsg_GetDataLength(m),
                                         (const uint8_t *)natsMsg_GetData(m));
    if (subject)
        snprintf(subject, len, "%s", natsMsg_GetSubject(m));
    natsMsg_Destroy(m);
    return true;
}
