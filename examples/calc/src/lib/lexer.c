#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"

void lexer_init(lexer *lx, const char *src) {
    lx->src = src;
    lx->pos = 0;
    memset(&lx->current, 0, sizeof lx->current);
}

const char *token_name(token_kind kind) {
    static const char *names[] = {"number", "name", "'+'", "'-'", "'*'", "'/'", "'^'",
                                  "'%'", "'('", "')'", "','", "'='", "end of input"};
    return names[kind];
}

int lexer_next(lexer *lx, calc_error *err) {
    const char *s = lx->src;
    while (s[lx->pos] == ' ' || s[lx->pos] == '\t') lx->pos++;
    token *t = &lx->current;
    t->pos = lx->pos;
    char c = s[lx->pos];
    if (c == '\0') {
        t->kind = TOK_END;
        return 1;
    }
    if (isdigit((unsigned char)c) || c == '.') {
        char *end;
        t->number = strtod(s + lx->pos, &end);
        if (end == s + lx->pos) {
            calc_error_set(err, lx->pos, "malformed number");
            return 0;
        }
        lx->pos = (size_t)(end - s);
        t->kind = TOK_NUM;
        return 1;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t n = 0;
        while (isalnum((unsigned char)s[lx->pos]) || s[lx->pos] == '_') {
            if (n + 1 >= sizeof t->ident) {
                calc_error_set(err, t->pos, "name too long");
                return 0;
            }
            t->ident[n++] = s[lx->pos++];
        }
        t->ident[n] = '\0';
        t->kind = TOK_IDENT;
        return 1;
    }
    static const char ops[] = "+-*/^%(),=";
    static const token_kind kinds[] = {TOK_PLUS, TOK_MINUS, TOK_STAR, TOK_SLASH, TOK_CARET,
                                       TOK_PERCENT, TOK_LPAREN, TOK_RPAREN, TOK_COMMA, TOK_ASSIGN};
    const char *op = strchr(ops, c);
    if (op) {
        t->kind = kinds[op - ops];
        lx->pos++;
        return 1;
    }
    calc_error_set(err, lx->pos, "unexpected character '%c'", c);
    return 0;
}
