#include <math.h>
#include <stdio.h>
#include <string.h>

#include "calc.h"

/* Integers print without a fraction; others with up to 12 significant digits. */
void calc_format(double value, char *buf, size_t size) {
    if (isnan(value)) {
        snprintf(buf, size, "nan");
    } else if (isinf(value)) {
        snprintf(buf, size, value < 0 ? "-inf" : "inf");
    } else if (value == floor(value) && fabs(value) < 1e15) {
        snprintf(buf, size, "%.0f", value);
    } else {
        snprintf(buf, size, "%.12g", value);
    }
}
