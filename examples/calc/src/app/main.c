#include <stdio.h>
#include <string.h>

#include "calc.h"
#include "selftest.h"
#include "version.h"

static int run_line(const char *line, var_table *vars) {
    calc_error err = {0};
    double value;
    if (!calc_run(line, vars, &value, &err)) {
        fprintf(stderr, "error at column %zu: %s\n", err.pos + 1, err.message);
        return 0;
    }
    char buf[64];
    calc_format(value, buf, sizeof buf);
    printf("%s\n", buf);
    return 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--self-test") == 0) return calc_self_test(stdout) ? 0 : 1;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("calc %s\n", CALC_VERSION);
        return 0;
    }
    var_table vars;
    vars_init(&vars);
    int ok = 1;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) ok &= run_line(argv[i], &vars);
        return ok ? 0 : 1;
    }
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '\0') ok &= run_line(line, &vars);
    }
    return ok ? 0 : 1;
}
