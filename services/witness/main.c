/*
 * pactum-witness: a transparency-log witness (C2SP tlog-witness) over HTTP. It cosigns the
 * checkpoints of the logs it follows, each only if it is consistent with the last one it
 * cosigned for that log; it needs no bus, only its key, its state folder and the logs' keys.
 */
#include <errno.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pk/answer.h"
#include "pk/http.h"
#include "pk/log.h"
#include "pk/net.h"
#include "pk/service.h"
#include "witness.h"

typedef struct witness_cfg {
    const char *listen;   /* host:port */
    const char *dir;      /* its state and, by default, its key */
    const char *key_path; /* its key ("": <dir>/witness.key, made if missing) */
    const char *name;     /* cosigner name ("": pactum.witness/<id of its key>) */
    const char *logs;     /* the logs' note verifier keys, comma-separated */
} witness_cfg;

static const pk_cfg_opt options[] = {
    {"listen", "PACTUM_WITNESS_LISTEN", PK_CFG_STR, "127.0.0.1:7490", 0, 0,
     offsetof(witness_cfg, listen), "HTTP listen address host:port (POST /add-checkpoint)"},
    {"dir", "PACTUM_WITNESS_DIR", PK_CFG_STR, "var/witness", 0, 0, offsetof(witness_cfg, dir),
     "its state (the last checkpoint cosigned per log, refused requests) and by default its key"},
    {"key", "PACTUM_WITNESS_KEY", PK_CFG_STR, "", 0, 0, offsetof(witness_cfg, key_path),
     "secret key that signs cosignatures; default <dir>/witness.key, made on first start"},
    {"name", "PACTUM_WITNESS_NAME", PK_CFG_STR, "", 0, 0, offsetof(witness_cfg, name),
     "the cosigner's name in its signature lines; default pactum.witness/<id of its key>"},
    {"logs", "PACTUM_WITNESS_LOGS", PK_CFG_STR, "", 0, 0, offsetof(witness_cfg, logs),
     "the logs it follows: their note verifier keys (GET /v1/log/key), comma-separated"},
};

static enum MHD_Result send_reply(struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *text)
{
    return pk_http_send(c, status, type, text, strlen(text));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    witness *w = cls;
    pk_http_body *b;
    witness_reply r;
    bool fail;

    (void)version;
    if (pk_http_gather(con_cls, upload, upload_size, WITNESS_BODY_MAX, &fail))
        return MHD_YES;
    if (fail)
        return MHD_NO;
    b = *con_cls;
    if (strcmp(url, "/add-checkpoint") != 0)
        return send_reply(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
                          "this witness answers POST /add-checkpoint (C2SP tlog-witness)\n");
    if (strcmp(method, "POST") != 0)
        return send_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                          "add-checkpoint takes POST\n");
    if (b->too_big)
        return send_reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "text/plain; charset=utf-8",
                          "a request is at most 16 KiB\n");
    witness_add(w, b->buf ? b->buf : "", b->len, (uint64_t)time(NULL), &r);
    if (r.status != 200)
        PK_INFO("add-checkpoint refused (%u): %s", r.status, r.body);
    return send_reply(c, r.status, r.type, r.body);
}

/* Its key from --key, or <dir>/witness.key, made on first start. */
static pk_status load_key(const witness_cfg *cfg, pk_keypair *kp)
{
    char path[4096];
    struct stat sb;
    pk_status st;

    if (*cfg->key_path)
        return pk_key_load(cfg->key_path, kp);
    snprintf(path, sizeof(path), "%s/witness.key", cfg->dir);
    if (stat(path, &sb) == 0)
        return pk_key_load(path, kp);
    if (errno != ENOENT)
        return PK_ERR(PK_EIO, "cannot read %s", path);
    if ((st = pk_keypair_generate(kp)) != PK_OK || (st = pk_key_save(path, kp)) != PK_OK)
        return st;
    PK_INFO("made the witness key %s", path);
    return PK_OK;
}

int main(int argc, char **argv)
{
    witness_cfg cfg = {0};
    witness w;
    pk_keypair kp;
    char name[PK_NOTE_NAME_MAX], vkey[256], path[4096];
    struct sockaddr_in sa;
    struct MHD_Daemon *d;
    FILE *f;
    pk_status st;

    pk_log_init("pactum-witness", PK_LOG_INFO);
    st = pk_config_load(options, sizeof(options) / sizeof(options[0]), &cfg, argc, argv,
                        "pactum-witness",
                        "Cosigns the checkpoints of transparency logs (C2SP tlog-witness).");
    if (st == PK_ENOTFOUND)
        return PK_EXIT_OK;
    if (st != PK_OK || sodium_init() < 0 || pk_mkdir_p(cfg.dir) != PK_OK ||
        load_key(&cfg, &kp) != PK_OK || pk_listen_addr(cfg.listen, "--listen", &sa) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    if (*cfg.name) {
        snprintf(name, sizeof(name), "%s", cfg.name);
    } else {
        char id[PK_LOG_ID_LEN + 1];
        pk_log_id(kp.pk, id);
        snprintf(name, sizeof(name), "pactum.witness/%s", id);
    }
    if (witness_open(&w, cfg.dir, &kp, name, cfg.logs) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    sodium_memzero(&kp, sizeof(kp));
    if (pk_note_verifier_key(w.name, PK_NOTE_COSIG, w.kp.pk, vkey, sizeof(vkey)) != PK_OK)
        return pk_service_failed(PK_EXIT_CONFIG);
    /* its verifier key beside its state, for the logs and readers to configure */
    snprintf(path, sizeof(path), "%s/witness.vkey", cfg.dir);
    if (!(f = fopen(path, "w")) || fprintf(f, "%s\n", vkey) < 0 || fclose(f) != 0) {
        PK_ERR(PK_EIO, "cannot write %s", path);
        return pk_service_failed(PK_EXIT_STORE);
    }
    pk_signals_install();
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                         ntohs(sa.sin_port), NULL, NULL, on_request, &w, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 256u,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
                         10u, MHD_OPTION_NOTIFY_COMPLETED, pk_http_done, NULL, MHD_OPTION_END);
    if (!d) {
        PK_ERR(PK_EIO, "cannot listen on %s (is the port taken?)", cfg.listen);
        witness_close(&w);
        return pk_service_failed(PK_EXIT_CONFIG);
    }
    PK_INFO("witness %s on http://%s/add-checkpoint, following %zu log%s; verifier key %s", w.name,
            cfg.listen, w.n_logs, w.n_logs == 1 ? "" : "s", vkey);
    while (!pk_shutdown)
        usleep(100 * 1000);
    MHD_stop_daemon(d);
    witness_close(&w);
    PK_INFO("stopped");
    return PK_EXIT_OK;
}
