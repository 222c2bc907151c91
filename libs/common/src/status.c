#include "pk/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[512];   /* last error sentence of this thread */
static _Thread_local char err_where[192]; /* where it was recorded */

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

pk_status pk_error_set(pk_status st, const char *file, int line, const char *func, const char *fmt,
                       ...)
{
    va_list ap;
    const char *base = strrchr(file, '/');

    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
    va_end(ap);
    snprintf(err_where, sizeof(err_where), "%s:%d %s()", base ? base + 1 : file, line, func);
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
