#include <math.h>

#include "calc.h"

int calc_eval(const node *n, var_table *vars, double *out, calc_error *err) {
    double l, r;
    switch (n->kind) {
    case NODE_NUM:
        *out = n->number;
        return 1;
    case NODE_VAR:
        if (!vars_get(vars, n->name, out)) {
            calc_error_set(err, 0, "unknown variable %s", n->name);
            return 0;
        }
        return 1;
    case NODE_NEG:
        if (!calc_eval(n->left, vars, &l, err)) return 0;
        *out = -l;
        return 1;
    case NODE_ASSIGN:
        if (!calc_eval(n->left, vars, out, err)) return 0;
        if (!vars_set(vars, n->name, *out)) {
            calc_error_set(err, 0, "too many variables");
            return 0;
        }
        return 1;
    case NODE_CALL: {
        double args[4];
        for (int i = 0; i < n->nargs; i++)
            if (!calc_eval(n->args[i], vars, &args[i], err)) return 0;
        return funcs_call(n->name, args, n->nargs, out, err, 0);
    }
    case NODE_BINARY:
        if (!calc_eval(n->left, vars, &l, err) || !calc_eval(n->right, vars, &r, err)) return 0;
        switch (n->op) {
        case '+': *out = l + r; return 1;
        case '-': *out = l - r; return 1;
        case '*': *out = l * r; return 1;
        case '^': *out = pow(l, r); return 1;
        case '/':
        case '%':
            if (r == 0) {
                calc_error_set(err, 0, "division by zero");
                return 0;
            }
            *out = n->op == '/' ? l / r : fmod(l, r);
            return 1;
        }
    }
    calc_error_set(err, 0, "internal error: bad node");
    return 0;
}

int calc_run(const char *src, var_table *vars, double *out, calc_error *err) {
    node *tree = calc_parse(src, err);
    if (!tree) return 0;
    int ok = calc_eval(tree, vars, out, err);
    node_free(tree);
    return ok;
}
