#include <stdlib.h>
#include <string.h>

#include "calc.h"

node *node_new(node_kind kind) {
    node *n = calloc(1, sizeof *n);
    if (!n) abort();
    n->kind = kind;
    return n;
}

void node_free(node *n) {
    if (!n) return;
    node_free(n->left);
    node_free(n->right);
    for (int i = 0; i < n->nargs; i++) node_free(n->args[i]);
    free(n);
}

size_t node_count(const node *n) {
    if (!n) return 0;
    size_t count = 1 + node_count(n->left) + node_count(n->right);
    for (int i = 0; i < n->nargs; i++) count += node_count(n->args[i]);
    return count;
}
