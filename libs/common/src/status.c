#include "pk/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX   512 /* an error sentence, at most (longer ones are cut) */
#define WHERE_MAX 256 /* the places it was recorded and wrapped */

static _Thread_local char err_msg[MSG_MAX];     /* last error sentence of this thread */
static _Thread_local char err_where[WHERE_MAX]; /* where it was recorded (and wrapped) */

const char *pk_status_str(pk_status st)
{
    switch (st) {
    case PK_OK:
        return "PK_OK";
    case PK_EINVAL:
        return "PK_EINVAL";
    case PK_ENOMEM:
        return "PK_ENOMEM";
    case PK_ENOTFOUND:
        return "PK_ENOTFOUND";
    case PK_EEXIST:
        return "PK_EEXIST";
    case PK_EIO:
        return "PK_EIO";
    case PK_EBUS:
        return "PK_EBUS";
    case PK_ETIMEOUT:
        return "PK_ETIMEOUT";
    case PK_ESTORE:
        return "PK_ESTORE";
    case PK_ESTORE_FULL:
        return "PK_ESTORE_FULL";
    case PK_ECRYPTO:
        return "PK_ECRYPTO";
    case PK_EBADSIG:
        return "PK_EBADSIG";
    case PK_EDECODE:
        return "PK_EDECODE";
    case PK_ETOOBIG:
        return "PK_ETOOBIG";
    case PK_EPERM:
        return "PK_EPERM";
    case PK_ECONFLICT:
        return "PK_ECONFLICT";
    case PK_ESHUTDOWN:
        return "PK_ESHUTDOWN";
    }
    return "PK_E?";
}

static const char *base_name(const char *file)
{
    const char *slash = strrchr(file, '/');

    return slash ? slash + 1 : file;
}

/* The arguments may point into err_msg: the sentence is formatted aside, then copied. */
pk_status pk_error_set(pk_status st, const char *file, int line, const char *func, const char *fmt,
                       ...)
{
    char text[MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    memcpy(err_msg, text, sizeof(err_msg));
    snprintf(err_where, sizeof(err_where), "%s:%d %s()", base_name(file), line, func);
    return st;
}

pk_status pk_error_wrap(pk_status st, const char *file, int line, const char *func, const char *fmt,
                        ...)
{
    char context[MSG_MAX], text[MSG_MAX], where[WHERE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(context, sizeof(context), fmt, ap);
    va_end(ap);
    snprintf(text, sizeof(text), "%s%s%s", context, err_msg[0] ? ": " : "", err_msg);
    snprintf(where, sizeof(where), "%s%s%s:%d %s()", err_where, err_where[0] ? " <- " : "",
             base_name(file), line, func);
    memcpy(err_msg, text, sizeof(err_msg));
    memcpy(err_where, where, sizeof(err_where));
    return st;
}

const char *pk_error_msg(void)
{
    return err_msg;
}

const char *pk_error_where(void)
{
    return err_where;
}

void pk_error_clear(void)
{
    err_msg[0] = '\0';
    err_where[0] = '\0';
}
