#include <string.h>

#include "calc.h"

void vars_init(var_table *vars) {
    vars->count = 0;
    vars_set(vars, "pi", 3.14159265358979323846);
    vars_set(vars, "e", 2.71828182845904523536);
}

int vars_get(const var_table *vars, const char *name, double *out) {
    for (int i = 0; i < vars->count; i++) {
        if (strcmp(vars->names[i], name) == 0) {
            *out = vars->values[i];
            return 1;
        }
    }
    return 0;
}

int vars_set(var_table *vars, const char *name, double value) {
    for (int i = 0; i < vars->count; i++) {
        if (strcmp(vars->names[i], name) == 0) {
            vars->values[i] = value;
            return 1;
        }
    }
    if (vars->count == 64) return 0;
    strncpy(vars->names[vars->count], name, sizeof vars->names[0] - 1);
    vars->names[vars->count][sizeof vars->names[0] - 1] = '\0';
    vars->values[vars->count++] = value;
    return 1;
}
