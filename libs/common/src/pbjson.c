#include "pk/pbjson.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pactum/v1/pactum.pb-c.h"

const char *pk_pb_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    static _Thread_local char buf[8][64];
    static _Thread_local int next;
    char *out;
    const char *us;

    if (!v)
        return "unknown";
    out = buf[next++ % 8];
    us = strchr(v->name, '_');
    snprintf(out, sizeof(buf[0]), "%s", us ? us + 1 : v->name);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

static json_t *hex_json(const ProtobufCBinaryData *b)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(b->len * 2 + 1);
    json_t *j;

    if (!s)
        return NULL;
    for (size_t i = 0; i < b->len; i++) {
        s[2 * i] = digits[b->data[i] >> 4];
        s[2 * i + 1] = digits[b->data[i] & 15];
    }
    s[b->len * 2] = '\0';
    j = json_string(s);
    free(s);
    return j;
}

/* bytes fields worth decoding: a signed tree head, or a log leaf */
static json_t *bytes_json(const char *field, const ProtobufCBinaryData *b)
{
    json_t *hex = hex_json(b), *o;

    if (!hex || b->len == 0)
        return hex;
    if (strcmp(field, "head") == 0 || strcmp(field, "log_head") == 0 ||
        strcmp(field, "first_head") == 0) {
        Pactum__V1__Signed *env = pactum__v1__signed__unpack(NULL, b->len, b->data);
        Pactum__V1__TreeHead *th =
            env ? pactum__v1__tree_head__unpack(NULL, env->payload.len, env->payload.data) : NULL;
        if (th) {
            o = json_object();
            json_object_set_new(o, "tree_head", pk_pb_json(&th->base));
            json_object_set_new(o, "signed", hex);
            pactum__v1__tree_head__free_unpacked(th, NULL);
            pactum__v1__signed__free_unpacked(env, NULL);
            return o;
        }
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
    } else if (strcmp(field, "leaf") == 0) {
        Pactum__V1__LogLeaf *l = pactum__v1__log_leaf__unpack(NULL, b->len, b->data);
        if (l) {
            o = pk_pb_json(&l->base);
            json_object_set_new(o, "bytes", hex);
            pactum__v1__log_leaf__free_unpacked(l, NULL);
            return o;
        }
    }
    return hex;
}

/* One value of field f stored at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return json_string(pk_pb_enum_name(f->descriptor, *(const int *)p));
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_json(f->name, (const ProtobufCBinaryData *)p);
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p ? pk_pb_json(*(ProtobufCMessage *const *)p)
                                             : json_null();
    }
    return json_null();
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* Is a singular proto3 field at its default (and so left out)? */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0;
    default: {
        const uint8_t *b = p;
        for (size_t i = 0; i < value_size(f); i++)
            if (b[i])
                return false;
        return true;
    }
    }
}

json_t *pk_pb_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();

    for (unsigned i = 0; o && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const uint8_t *base = (const uint8_t *)m;
        const void *p = base + f->offset;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const uint8_t *arr = *(uint8_t *const *)p;
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, value_json(f, arr + k * value_size(f)));
            json_object_set_new(o, f->name, a);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        } else if (is_default(f, p) && f->type != PROTOBUF_C_TYPE_ENUM &&
                   f->type != PROTOBUF_C_TYPE_BOOL) {
            continue;
        }
        json_object_set_new(o, f->name, value_json(f, p));
    }
    return o;
}
