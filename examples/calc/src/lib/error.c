#include <stdarg.h>
#include <stdio.h>

#include "calc.h"

void calc_error_set(calc_error *err, size_t pos, const char *fmt, ...) {
    if (err->failed) return; /* keep the first error: it is the cause */
    err->failed = 1;
    err->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}
