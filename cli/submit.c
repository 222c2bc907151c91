/*
 * Submitting signed records: registrations (agents, pacts, principals) to
 * pactum.registry.submit and governance records to pactum.governance.submit.
 * The receipt is printed the same way for all (JSON with --json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Keys whose bus identities a receipt may carry, and where to keep them. */
static struct {
    const char *path;
    uint8_t pk[32];
} expected[4];
static int n_expected;

void cli_expect_identity(const char *key_path, const uint8_t pk[32])
{
    if (n_expected < 4) {
        expected[n_expected].path = key_path;
        memcpy(expected[n_expected++].pk, pk, 32);
    }
}

/* Keep each bus identity of a registry receipt next to its key, as KEY.jwt. */
static void keep_identities(const Pactum__V1__RegistryReceipt *r)
{
    for (size_t i = 0; i < r->n_credentials; i++) {
        const Pactum__V1__BusCredential *bc = r->credentials[i];
        for (int k = 0; k < n_expected; k++) {
            char path[4096];
            FILE *f;
            if (bc->key.len != 32 || memcmp(bc->key.data, expected[k].pk, 32) != 0)
                continue;
            snprintf(path, sizeof(path), "%s.jwt", expected[k].path);
            if (!(f = fopen(path, "w")) || fprintf(f, "%s\n", bc->jwt) < 0 || fclose(f) != 0) {
                cli_error(CLI_IO, "cannot keep the bus identity in %s", path);
                continue;
            }
            if (!cli.json)
                printf("bus identity of %s %s kept in %s\n", bc->role, bc->name, path);
        }
    }
}

/* Print the receipt to a submission on subject; CLI_OK if it says ok. */
static int print_receipt(const char *subject, const uint8_t *data, size_t n)
{
    bool governance = strcmp(subject, PK_SUBJ_GOV_SUBMIT) == 0;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(governance ? &pactum__v1__governance_receipt__descriptor
                                             : &pactum__v1__registry_receipt__descriptor,
                                  NULL, n, data);
    const char *message;
    Pactum__V1__Reason reason;
    bool ok;

    if (!m)
        return cli_error(CLI_BUS, "the answer on %s is not a receipt", subject);
    if (governance) {
        const Pactum__V1__GovernanceReceipt *r = (const Pactum__V1__GovernanceReceipt *)m;
        ok = r->ok, reason = r->reason, message = r->message;
    } else {
        const Pactum__V1__RegistryReceipt *r = (const Pactum__V1__RegistryReceipt *)m;
        ok = r->ok, reason = r->reason, message = r->message;
        if (ok)
            keep_identities(r);
    }
    if (cli.json)
        cli_print_message(m);
    else if (ok)
        printf("%s\n", message);
    else
        fprintf(stderr, "pactum: refused (%s): %s\n", pk_reason_name(reason), message);
    protobuf_c_message_free_unpacked(m, NULL);
    return ok ? CLI_OK : CLI_FAIL;
}

int cli_submit(const char *subject, Pactum__V1__PayloadType type, const ProtobufCMessage *payload,
               const char *signer_id, const pk_keypair *kp)
{
    uint8_t *buf = NULL, *env = NULL;
    size_t len = 0, elen = 0;
    pk_bus *bus = NULL;
    natsMsg *reply = NULL;
    int code;

    if (pk_pack(payload, &buf, &len) != PK_OK ||
        pk_envelope_seal(type, buf, len, signer_id ? signer_id : "", kp, &env, &elen) != PK_OK) {
        free(buf);
        return cli_error(CLI_IO, "%s", pk_error_msg());
    }
    free(buf);
    if (!(bus = cli_connect())) {
        free(env);
        return CLI_BUS;
    }
    code = cli_request(bus, subject, env, elen, &reply);
    free(env);
    if (code == CLI_OK)
        code = print_receipt(subject, (const uint8_t *)natsMsg_GetData(reply),
                             (size_t)natsMsg_GetDataLength(reply));
    natsMsg_Destroy(reply);
    pk_bus_close(bus);
    return code;
}

int cli_submit_with_key(const char *subject, Pactum__V1__PayloadType type,
                        const ProtobufCMessage *payload, const char *signer_id,
                        const char *key_path)
{
    pk_keypair kp;
    int code;

    if (pk_key_load(key_path, &kp) != PK_OK)
        return cli_error(CLI_IO, "%s", pk_error_msg());
    cli.key_id = key_path; /* the signer connects as itself, if it has a bus identity */
    code = cli_submit(subject, type, payload, signer_id, &kp);
    pk_keypair_wipe(&kp);
    return code;
}
