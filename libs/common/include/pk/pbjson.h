/*
 * pk/pbjson.h - any protobuf message as JSON, driven by its descriptor: the
 * JSON form of oracle answers over HTTP and of the CLI's --json output.
 *
 * Field names as in the .proto; enum values as lower-case names without their
 * first word (TIER_TRUSTED -> "trusted", PERMIT_NEEDS_APPROVAL ->
 * "needs_approval"); bytes as lower-case hex; 64-bit integers as JSON numbers;
 * fields at their default value are left out, except enums and booleans. Bytes
 * fields that hold a signed tree head (head,
 * log_head, first_head) or a log leaf (leaf) are shown decoded next to their
 * hex.
 */
#ifndef PK_PBJSON_H
#define PK_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for m (never NULL unless out of memory). */
json_t *pk_pb_json(const ProtobufCMessage *m);

/* The JSON name of an enum value ("trusted" for TIER_TRUSTED). */
const char *pk_pb_enum_name(const ProtobufCEnumDescriptor *d, int value);

#endif
