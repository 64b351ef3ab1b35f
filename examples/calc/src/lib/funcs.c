#include <math.h>
#include <string.h>

#include "calc.h"

typedef struct {
    const char *name;
    int min_args, max_args;
} func_info;

static const func_info funcs[] = {
    {"sqrt", 1, 1}, {"abs", 1, 1}, {"sin", 1, 1}, {"cos", 1, 1}, {"ln", 1, 1},
    {"floor", 1, 1}, {"min", 1, 4}, {"max", 1, 4}, {"hypot", 2, 2},
};

static const func_info *lookup(const char *name) {
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        if (strcmp(funcs[i].name, name) == 0) return &funcs[i];
    return NULL;
}

int funcs_exists(const char *name) { return lookup(name) != NULL; }

int funcs_call(const char *name, const double *a, int n, double *out, calc_error *err, size_t pos) {
    const func_info *f = lookup(name);
    if (!f) {
        calc_error_set(err, pos, "unknown function %s", name);
        return 0;
    }
    if (n < f->min_args || n > f->max_args) {
        calc_error_set(err, pos, "%s takes %d to %d arguments, got %d", name, f->min_args, f->max_args, n);
        return 0;
    }
    if (strcmp(name, "sqrt") == 0) {
        if (a[0] < 0) {
            calc_error_set(err, pos, "sqrt of a negative number");
            return 0;
        }
        *out = sqrt(a[0]);
    } else if (strcmp(name, "abs") == 0) {
        *out = fabs(a[0]);
    } else if (strcmp(name, "sin") == 0) {
        *out = sin(a[0]);
    } else if (strcmp(name, "cos") == 0) {
        *out = cos(a[0]);
    } else if (strcmp(name, "ln") == 0) {
        if (a[0] <= 0) {
            calc_error_set(err, pos, "ln of a non-positive number");
            return 0;
        }
        *out = log(a[0]);
    } else if (strcmp(name, "floor") == 0) {
        *out = floor(a[0]);
    } else if (strcmp(name, "hypot") == 0) {
        *out = hypot(a[0], a[1]);
    } else {
        double best = a[0];
        int want_max = strcmp(name, "max") == 0;
        for (int i = 1; i < n; i++)
            if (want_max ? a[i] > best : a[i] < best) best = a[i];
        *out = best;
    }
    return 1;
}
