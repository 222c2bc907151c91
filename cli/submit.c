/*
 * Submitting signed records: registrations (agents, pacts, principals) to
 * pactum.registry.submit and governance records to pactum.governance.submit.
 * The receipt is printed the same way for all (JSON with --json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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
    code = cli_submit(subject, type, payload, signer_id, &kp);
    pk_keypair_wipe(&kp);
    return code;
}
