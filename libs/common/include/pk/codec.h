/*
 * pk/codec.h - protobuf helpers, the signed envelope, and the shape rules for
 * identifiers and events that every service and the CLI share.
 *
 * Generated types are used under their protobuf-c names (Pactum__V1__Event
 * and so on); the short aliases below keep service code readable.
 */
#ifndef PK_CODEC_H
#define PK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pactum/v1/pactum.pb-c.h"
#include "pk/crypto.h"
#include "pk/status.h"

typedef Pactum__V1__Signed pk_signed_msg;
typedef Pactum__V1__Event pk_event_msg;
typedef Pactum__V1__EventBatch pk_event_batch_msg;
typedef Pactum__V1__Verdict pk_verdict_msg;
typedef Pactum__V1__TrustChange pk_trust_change_msg;

#define PK_ENVELOPE_VERSION 1
#define PK_ID_MAX           64   /* agent, pact, clause ids */
#define PK_EVENT_ID_MAX     128  /* event ids */
#define PK_NAME_MAX         128  /* kinds, actions, tools, metric and label names */
#define PK_VALUE_MAX        1024 /* label values, resources */
#define PK_EVENT_FIELDS_MAX 64   /* metrics + labels per event */
#define PK_BATCH_MAX        1024 /* events per signed batch */

/* Arrays indexed by a protobuf enum are sized by these, checked against the enum. */
#define PK_SEVERITIES 6 /* Pactum__V1__Severity: unspecified, info .. critical */
#define PK_SOURCES                                                                                 \
    6              /* Pactum__V1__Source: unspecified, self, peer, evaluator, human, telemetry     \
                    */
#define PK_TIERS 7 /* Pactum__V1__Tier: unspecified, trusted .. suspended */
_Static_assert(PACTUM__V1__SEVERITY__SEVERITY_CRITICAL + 1 == PK_SEVERITIES,
               "PK_SEVERITIES follows Pactum__V1__Severity");
_Static_assert(PACTUM__V1__SOURCE__SOURCE_TELEMETRY + 1 == PK_SOURCES,
               "PK_SOURCES follows Pactum__V1__Source");
_Static_assert(PACTUM__V1__TIER__TIER_SUSPENDED + 1 == PK_TIERS,
               "PK_TIERS follows Pactum__V1__Tier");

/* Serialize any message into a new buffer (*out, owned by the caller, free()). */
pk_status pk_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len) PK_MUST_CHECK;

/*
 * Sign payload as a Signed envelope of the given type by kp, naming signer_id
 * (may be "" for owner keys). *out is a new buffer owned by the caller.
 */
pk_status pk_envelope_seal(Pactum__V1__PayloadType type, const uint8_t *payload, size_t len,
                           const char *signer_id, const pk_keypair *kp, uint8_t **out,
                           size_t *outlen) PK_MUST_CHECK;

/*
 * Decode an envelope and check its shape (version, key and signature sizes,
 * known type). Does not verify the signature. *out is owned by the caller and
 * freed with pactum__v1__signed__free_unpacked(*out, NULL).
 */
pk_status pk_envelope_open(const uint8_t *buf, size_t len, pk_signed_msg **out) PK_MUST_CHECK;

/* PK_OK if env's signature verifies under pk, PK_EBADSIG otherwise. */
pk_status pk_envelope_verify(const pk_signed_msg *env,
                             const uint8_t pk[PK_PUBKEY_BYTES]) PK_MUST_CHECK;

/* The bytes an agent key signs to prove its owner holds it. *out: caller frees. */
pk_status pk_pop_message(const char *agent_id, const uint8_t owner_key[PK_PUBKEY_BYTES],
                         uint8_t **out, size_t *len) PK_MUST_CHECK;

/*
 * Identifier rules. what names the field in the error ("agent id").
 * pk_id_check: 1..64 of [A-Za-z0-9_-], usable as one NATS subject token:
 *   agent, pact and record ids.
 * pk_principal_id_check: '@' and 1..63 of the same, e.g. "@ops": operators,
 *   arbiters, evaluators, human reviewers and API clients. No agent id begins
 *   with '@', so an agent can never take a principal's id, nor the reverse.
 * pk_signer_id_check: either (the signer of an envelope).
 * pk_event_id_check: 1..128 of [A-Za-z0-9._:-].
 */
pk_status pk_id_check(const char *what, const char *id) PK_MUST_CHECK;
pk_status pk_principal_id_check(const char *what, const char *id) PK_MUST_CHECK;
pk_status pk_signer_id_check(const char *what, const char *id) PK_MUST_CHECK;
pk_status pk_event_id_check(const char *id) PK_MUST_CHECK;

/* Shape checks on an event as written by a reporter (sizes, names, numbers). */
pk_status pk_event_check(const pk_event_msg *ev) PK_MUST_CHECK;

/* Value of the metric or label of an event, or NULL / false if absent. */
bool pk_event_metric(const pk_event_msg *ev, const char *name, double *out);
const char *pk_event_label(const pk_event_msg *ev, const char *name);

/* Lower-case names ("self", "critical", "fail", "contained", "bad_signature"). */
const char *pk_source_name(Pactum__V1__Source s);
const char *pk_severity_name(Pactum__V1__Severity s);
const char *pk_outcome_name(Pactum__V1__Outcome o);
const char *pk_tier_name(Pactum__V1__Tier t);
const char *pk_reason_name(Pactum__V1__Reason r);
const char *pk_role_name(Pactum__V1__Role r);

/* Parse the names above back; return 0 (UNSPECIFIED) if unknown. */
Pactum__V1__Severity pk_severity_parse(const char *name);
Pactum__V1__Tier pk_tier_parse(const char *name);
Pactum__V1__Source pk_source_parse(const char *name);
Pactum__V1__Role pk_role_parse(const char *name);

#endif
