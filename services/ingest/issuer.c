/*
 * issuer - the bus identities ingest hands out with a registration: a NATS
 * user JWT for the key just registered, signed by the account's scoped
 * signing key for its role. The scope, set by pactum setup, decides what the
 * user may do whatever the JWT says; the JWT is good only with the key it
 * names, so a receipt can travel openly.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pk/natsauth.h"

pk_status issuer_load(ingest_issuer *is, const char *path)
{
    json_error_t jerr;
    json_t *doc;
    const char *account;
    pk_status st = PK_OK;

    memset(is, 0, sizeof(*is));
    if (!path || !*path)
        return PK_OK; /* no JWT bus: registrations carry no credentials */
    if (!(doc = json_load_file(path, 0, &jerr)))
        return PK_ERR(PK_EIO, "--issuer %s: %s", path, jerr.text);
    account = json_string_value(json_object_get(doc, "account"));
    if (!account || pk_nkey_public_decode(account, PK_NKEY_ACCOUNT, is->account) != PK_OK)
        st = PK_ERR(PK_EINVAL, "--issuer %s: \"account\" is not an account nkey", path);
    for (int r = 0; r < PK_BUS_ROLES && st == PK_OK; r++) {
        const char *seed = json_string_value(json_object_get(doc, pk_bus_role_name(r)));
        pk_nkey_kind kind;
        if (!seed || pk_nkey_seed_decode(seed, &kind, &is->keys[r]) != PK_OK ||
            kind != PK_NKEY_ACCOUNT)
            st = PK_ERR(PK_EINVAL, "--issuer %s: no signing key for %s", path, pk_bus_role_name(r));
    }
    json_decref(doc);
    if (st != PK_OK) {
        issuer_close(is);
        return st;
    }
    is->on = true;
    return PK_OK;
}

void issuer_close(ingest_issuer *is)
{
    for (int r = 0; r < PK_BUS_ROLES; r++)
        pk_keypair_wipe(&is->keys[r]);
    is->on = false;
}

Pactum__V1__BusCredential *issuer_credential(const ingest_issuer *is, pk_bus_role role,
                                             const uint8_t key[32], const char *name)
{
    Pactum__V1__BusCredential *c;
    char *jwt = NULL;

    if (!is->on || pk_jwt_user(&is->keys[role], is->account, key, name, NULL, &jwt) != PK_OK)
        return NULL;
    if (!(c = malloc(sizeof(*c)))) {
        free(jwt);
        return NULL;
    }
    pactum__v1__bus_credential__init(c);
    if (!(c->key.data = malloc(32))) {
        free(c);
        free(jwt);
        return NULL;
    }
    c->role = strdup(pk_bus_role_name(role));
    c->name = strdup(name);
    memcpy(c->key.data, key, 32);
    c->key.len = 32;
    c->jwt = jwt;
    if (!c->role || !c->name) {
        issuer_credential_free(c);
        return NULL;
    }
    return c;
}

void issuer_credential_free(Pactum__V1__BusCredential *c)
{
    if (!c)
        return;
    free(c->role);
    free(c->name);
    free(c->key.data);
    free(c->jwt);
    free(c);
}
