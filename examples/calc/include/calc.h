/* calc: a small expression calculator library (the bldr example project). */
#ifndef CALC_H
#define CALC_H

#include <stddef.h>

/* --- strbuf.c: growable strings --- */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
void strbuf_append(strbuf *sb, const char *s, size_t n);
void strbuf_appendf(strbuf *sb, const char *fmt, ...);

/* --- error.c: error reporting --- */
typedef struct {
    int failed;
    size_t pos;
    char message[128];
} calc_error;

void calc_error_set(calc_error *err, size_t pos, const char *fmt, ...);

/* --- lexer.c --- */
typedef enum {
    TOK_NUM, TOK_IDENT, TOK_PLUS, TOK_MINUS, TOK_STAR, TOK_SLASH, TOK_CARET,
    TOK_PERCENT, TOK_LPAREN, TOK_RPAREN, TOK_COMMA, TOK_ASSIGN, TOK_END
} token_kind;

typedef struct {
    token_kind kind;
    double number;
    char ident[32];
    size_t pos;
} token;

typedef struct {
    const char *src;
    size_t pos;
    token current;
} lexer;

void lexer_init(lexer *lx, const char *src);
int lexer_next(lexer *lx, calc_error *err);
const char *token_name(token_kind kind);

/* --- ast.c --- */
typedef enum { NODE_NUM, NODE_VAR, NODE_NEG, NODE_BINARY, NODE_CALL, NODE_ASSIGN } node_kind;

typedef struct node {
    node_kind kind;
    double number;
    char name[32];
    char op;
    struct node *left, *right;
    struct node *args[4];
    int nargs;
} node;

node *node_new(node_kind kind);
void node_free(node *n);
size_t node_count(const node *n);

/* --- parser.c --- */
node *calc_parse(const char *src, calc_error *err);

/* --- vars.c --- */
typedef struct {
    char names[64][32];
    double values[64];
    int count;
} var_table;

void vars_init(var_table *vars);
int vars_get(const var_table *vars, const char *name, double *out);
int vars_set(var_table *vars, const char *name, double value);

/* --- funcs.c --- */
int funcs_call(const char *name, const double *args, int nargs, double *out, calc_error *err, size_t pos);
int funcs_exists(const char *name);

/* --- eval.c --- */
int calc_eval(const node *n, var_table *vars, double *out, calc_error *err);
int calc_run(const char *src, var_table *vars, double *out, calc_error *err);

/* --- format.c --- */
void calc_format(double value, char *buf, size_t size);

#endif
