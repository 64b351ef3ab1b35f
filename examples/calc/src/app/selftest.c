#include <stdio.h>
#include <string.h>

#include "calc.h"
#include "selftest.h"

typedef struct {
    const char *expr;
    const char *expect; /* formatted result, or "error: <prefix>" */
} check;

static const check checks[] = {
    {"1 + 2", "3"},
    {"2 * 3 + 4", "10"},
    {"2 * (3 + 4)", "14"},
    {"-2 ^ 2", "-4"},
    {"2 ^ 3 ^ 2", "512"},
    {"7 % 4", "3"},
    {"10 / 4", "2.5"},
    {"sqrt(16) + abs(-3)", "7"},
    {"max(1, 9, 4)", "9"},
    {"min(5, 2, 8, 3)", "2"},
    {"hypot(3, 4)", "5"},
    {"floor(pi * 100)", "314"},
    {"x = 6 * 7", "42"},
    {"x / 2", "21"},
    {"1 / 0", "error: division by zero"},
    {"sqrt(-1)", "error: sqrt of a negative"},
    {"2 +", "error: expected a value"},
    {"foo(1)", "error: unknown function"},
    {"(1 + 2", "error: expected ')'"},
    {"3 $ 4", "error: unexpected character"},
};

int calc_self_test(FILE *out) {
    var_table vars;
    vars_init(&vars);
    int failures = 0;
    size_t total = sizeof checks / sizeof checks[0];
    for (size_t i = 0; i < total; i++) {
        calc_error err = {0};
        double value;
        char got[160];
        if (calc_run(checks[i].expr, &vars, &value, &err)) {
            calc_format(value, got, sizeof got);
        } else {
            snprintf(got, sizeof got, "error: %s", err.message);
        }
        int ok = strncmp(got, checks[i].expect, strlen(checks[i].expect)) == 0;
        if (strncmp(checks[i].expect, "error:", 6) != 0) ok = strcmp(got, checks[i].expect) == 0;
        fprintf(out, "%s %-22s => %s\n", ok ? "ok  " : "FAIL", checks[i].expr, got);
        if (!ok) {
            fprintf(out, "     expected %s\n", checks[i].expect);
            failures++;
        }
    }
    fprintf(out, "%zu checks, %d failed\n", total, failures);
    return failures == 0;
}
