/*
 * setup: the bus's identities and streams, made once by whoever runs the
 * nats-server (docs/security.md).
 *
 *   pactum setup init --dir DIR   keys, JWTs, credentials and nats.conf (operator mode)
 *   pactum setup streams          the streams, created with the setup user's credentials
 *
 * DIR holds the secrets: the operator, system and Pactum account keys, the
 * signing keys ingest issues people's and agents' credentials with
 * (issuer.json), and one .creds file per service and tool. Running init again
 * keeps the keys and writes the JWTs, credentials and configuration anew.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pk/lease.h"
#include "pk/buspolicy.h"
#include "pk/natsauth.h"

#define SERVICES 5
static const char *const services[SERVICES] = {"ingest", "evaluator", "scorer", "oracle",
                                               "gateway"};

/* Write text to path, readable by its owner only (replacing what was there). */
static int write_private(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t n = strlen(text);

    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fchmod(fd, 0600) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return cli_error(CLI_IO, "cannot write %s: %s", path, strerror(e));
    }
    close(fd);
    return CLI_OK;
}

/* The key kept in DIR/name (an nkey seed), made the first time. */
static int key_of(const char *dir, const char *name, pk_nkey_kind kind, pk_keypair *kp)
{
    char path[4096], text[128], seed[PK_NKEY_SEED_LEN + 2];
    pk_nkey_kind got;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "r"))) {
        bool ok = fgets(text, sizeof(text), f) != NULL;
        fclose(f);
        text[strcspn(text, "\r\n")] = '\0';
        if (!ok || pk_nkey_seed_decode(text, &got, kp) != PK_OK || got != kind)
            return cli_error(CLI_IO, "%s is not the nkey seed it should be", path);
        return CLI_OK;
    }
    if (errno != ENOENT)
        return cli_error(CLI_IO, "cannot read %s: %s", path, strerror(errno));
    if (pk_keypair_generate(kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    pk_nkey_seed(kind, kp, seed);
    strcat(seed, "\n");
    return write_private(path, seed);
}

/* DIR/creds/name.creds: a user of account signed by signer with perms (taken). */
static int
write_creds(const char *dir, const char *name, const pk_keypair *signer, const uint8_t account[32],
            json_t *(*perms_of)(const char *name, uint32_t partitions, const char *inbox),
            uint32_t partitions)
{
    char path[4096], seed[PK_NKEY_SEED_LEN + 1], inbox[64], *jwt = NULL, *text = NULL;
    pk_keypair user;
    json_t *perms;
    int code = CLI_IO;

    if (pk_keypair_generate(&user) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    pk_bus_inbox(user.pk, inbox);
    perms = perms_of(name, partitions, inbox);
    if (perms && pk_jwt_user(signer, account, user.pk, name, perms, &jwt) == PK_OK) {
        pk_nkey_seed(PK_NKEY_USER, &user, seed);
        text = pk_creds_text(jwt, seed);
        snprintf(path, sizeof(path), "%s/creds/%s.creds", dir, name);
        code = text ? write_private(path, text) : cli_error(CLI_IO, "out of memory");
    } else {
        code = cli_error(CLI_IO, "cannot make the credentials of %s: %s", name, pk_error_msg());
    }
    json_decref(perms);
    pk_keypair_wipe(&user);
    if (text)
        memset(text, 0, strlen(text));
    free(text);
    free(jwt);
    return code;
}

static json_t *service_perms(const char *name, uint32_t partitions, const char *inbox)
{
    return pk_policy_service(name, partitions, inbox);
}

static json_t *tool_perms(const char *name, uint32_t partitions, const char *inbox)
{
    if (strcmp(name, "enroll") == 0)
        return pk_policy_enroll(inbox);
    if (strcmp(name, "monitor") == 0)
        return pk_policy_monitor(inbox, partitions);
    return pk_policy_setup(inbox);
}

/*
 * issuer.json: the account's public key and one scoped signing key per role
 * for ingest; the same keys, with their templates, go into *scopes.
 */
static int write_issuer(const char *dir, const uint8_t account[32], uint32_t partitions,
                        json_t *scopes)
{
    char path[4096], name[64], seed[PK_NKEY_SEED_LEN + 1], *text;
    json_t *doc = json_object();
    int code = CLI_OK;

    pk_nkey_public(PK_NKEY_ACCOUNT, account, seed);
    json_object_set_new(doc, "account", json_string(seed));
    for (int r = 0; r < PK_BUS_ROLES && code == CLI_OK; r++) {
        pk_keypair kp;
        snprintf(name, sizeof(name), "role-%s.nk", pk_bus_role_name((pk_bus_role)r));
        if ((code = key_of(dir, name, PK_NKEY_ACCOUNT, &kp)) != CLI_OK)
            break;
        pk_nkey_seed(PK_NKEY_ACCOUNT, &kp, seed);
        json_object_set_new(doc, pk_bus_role_name((pk_bus_role)r), json_string(seed));
        json_array_append_new(scopes, pk_jwt_scope(kp.pk, pk_bus_role_name((pk_bus_role)r),
                                                   pk_policy_role((pk_bus_role)r, partitions)));
        pk_keypair_wipe(&kp);
    }
    text = json_dumps(doc, JSON_INDENT(2));
    snprintf(path, sizeof(path), "%s/issuer.json", dir);
    if (code == CLI_OK)
        code = text ? write_private(path, text) : cli_error(CLI_IO, "out of memory");
    if (text)
        memset(text, 0, strlen(text));
    free(text);
    json_decref(doc);
    return code;
}

/* nats.conf: the operator, its accounts, JetStream and (when given) TLS. */
static int write_conf(const char *dir, const char *op_jwt, const char *sys, const char *sys_jwt,
                      const char *acc, const char *acc_jwt, const char *store, const char *tls)
{
    char path[4096], *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    int code;

    if (!f)
        return cli_error(CLI_IO, "out of memory");
    fprintf(f,
            "# Pactum's bus, made by pactum setup init. Operator mode: no user is listed\n"
            "# here; each connects with a JWT that the Pactum account (or one of its\n"
            "# signing keys) signed, so adding an agent needs no change and no reload.\n"
            "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n"
            "  %s: %s\n  %s: %s\n}\n"
            "# JetStream is configured here, so that a reload keeps it on\n"
            "jetstream {\n  store_dir: \"%s\"\n}\n",
            op_jwt, sys, sys, sys_jwt, acc, acc_jwt, store);
    if (tls && *tls)
        fprintf(f,
                "# every client must speak TLS; they check this certificate against the CA\n"
                "tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n"
                "  timeout: 2\n}\n",
                tls, tls);
    fclose(f);
    snprintf(path, sizeof(path), "%s/nats.conf", dir);
    code = write_private(path, text);
    free(text);
    return code;
}

int cmd_setup_init(const cli_call *c)
{
    const char *dir = cli_get(c, "dir"), *tls = cli_get(c, "tls-dir"), *store = cli_get(c, "store");
    uint64_t partitions = 4;
    char js_dir[4096], sub[4096], sys_pub[PK_NKEY_PUBLIC_LEN + 1], acc_pub[PK_NKEY_PUBLIC_LEN + 1];
    char *op_jwt = NULL, *sys_jwt = NULL, *acc_jwt = NULL;
    pk_keypair op, sys, acc, users;
    json_t *scopes = json_array();
    int code;

    if ((code = cli_get_u64(c, "partitions", 1, PK_PARTITIONS_MAX, &partitions)) != CLI_OK)
        return code;
    snprintf(sub, sizeof(sub), "%s/creds", dir);
    if (!store) {
        snprintf(js_dir, sizeof(js_dir), "%s/jetstream", dir);
        store = js_dir;
    }
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || (mkdir(sub, 0700) != 0 && errno != EEXIST))
        return cli_error(CLI_IO, "cannot make %s: %s", sub, strerror(errno));
    if ((code = key_of(dir, "operator.nk", PK_NKEY_OPERATOR, &op)) != CLI_OK ||
        (code = key_of(dir, "system.nk", PK_NKEY_ACCOUNT, &sys)) != CLI_OK ||
        (code = key_of(dir, "account.nk", PK_NKEY_ACCOUNT, &acc)) != CLI_OK ||
        (code = key_of(dir, "signing-users.nk", PK_NKEY_ACCOUNT, &users)) != CLI_OK ||
        (code = write_issuer(dir, acc.pk, (uint32_t)partitions, scopes)) != CLI_OK)
        goto out;
    pk_nkey_public(PK_NKEY_ACCOUNT, sys.pk, sys_pub);
    pk_nkey_public(PK_NKEY_ACCOUNT, acc.pk, acc_pub);
    /* the services' and tools' users are signed by a signing key of their own, not by the
     * account's: removing signing-users.nk and running this again revokes them all */
    {
        char users_pub[PK_NKEY_PUBLIC_LEN + 1];
        pk_nkey_public(PK_NKEY_ACCOUNT, users.pk, users_pub);
        json_array_append_new(scopes, json_string(users_pub));
    }
    if (pk_jwt_operator(&op, "pactum", sys.pk, &op_jwt) != PK_OK ||
        pk_jwt_account(&op, sys.pk, "SYS", false, NULL, &sys_jwt) != PK_OK ||
        pk_jwt_account(&op, acc.pk, "PACTUM", true, scopes, &acc_jwt) != PK_OK) {
        code = cli_error(CLI_IO, "cannot sign the JWTs: %s", pk_error_msg());
        goto out;
    }
    for (int i = 0; i < SERVICES && code == CLI_OK; i++)
        code = write_creds(dir, services[i], &users, acc.pk, service_perms, (uint32_t)partitions);
    if (code == CLI_OK)
        code = write_creds(dir, "enroll", &users, acc.pk, tool_perms, (uint32_t)partitions);
    if (code == CLI_OK)
        code = write_creds(dir, "monitor", &users, acc.pk, tool_perms, (uint32_t)partitions);
    if (code == CLI_OK)
        code = write_creds(dir, "setup", &users, acc.pk, tool_perms, (uint32_t)partitions);
    if (code == CLI_OK)
        code = write_conf(dir, op_jwt, sys_pub, sys_jwt, acc_pub, acc_jwt, store, tls);
    if (code == CLI_OK && !cli.json)
        printf("bus identities in %s: nats.conf (operator mode%s), creds/ for %d services and "
               "the enroll, monitor and setup users, issuer.json for ingest (%llu partitions)\n",
               dir, tls && *tls ? ", TLS" : "", SERVICES, (unsigned long long)partitions);
    else if (code == CLI_OK)
        cli_print_json(json_pack("{s:s, s:s, s:I}", "dir", dir, "account", acc_pub, "partitions",
                                 (json_int_t)partitions));
out:
    pk_keypair_wipe(&op);
    pk_keypair_wipe(&sys);
    pk_keypair_wipe(&acc);
    pk_keypair_wipe(&users);
    json_decref(scopes);
    free(op_jwt);
    free(sys_jwt);
    free(acc_jwt);
    return code;
}

int cmd_setup_streams(const cli_call *c)
{
    uint64_t want = 4;
    uint32_t partitions;
    pk_bus *bus;
    pk_status st;
    int code;

    if ((code = cli_get_u64(c, "partitions", 1, PK_PARTITIONS_MAX, &want)) != CLI_OK)
        return code;
    if (cli_get(c, "replicas")) {
        uint64_t replicas = 1;
        char text[8];
        if ((code = cli_get_u64(c, "replicas", 1, 5, &replicas)) != CLI_OK)
            return code;
        snprintf(text, sizeof(text), "%u", (unsigned)replicas);
        setenv("PACTUM_STREAM_REPLICAS", text, 1); /* what pk_streams_ensure reads */
    }
    if (!(bus = cli_connect()))
        return CLI_BUS;
    partitions = (uint32_t)want;
    st = pk_streams_ensure(bus, &partitions);
    if (st == PK_OK)
        st = pk_leases_bucket(bus); /* where evaluators and scorers hold their partitions */
    pk_bus_close(bus);
    if (st != PK_OK)
        return cli_error(CLI_BUS, "cannot create the streams: %s", pk_error_msg());
    if (cli.json)
        cli_print_json(json_pack("{s:b, s:I}", "ok", 1, "partitions", (json_int_t)partitions));
    else
        printf("streams ready (%u partitions)\n", partitions);
    return CLI_OK;
}
