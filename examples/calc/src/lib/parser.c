/* Recursive descent: assign := NAME '=' assign | sum; sum := term (('+'|'-') term)*;
 * term := unary (('*'|'/'|'%') unary)*; unary := '-' unary | power;
 * power := atom ('^' unary)?; atom := NUM | NAME | NAME '(' args ')' | '(' sum ')' */
#include <string.h>

#include "calc.h"

typedef struct {
    lexer lx;
    calc_error *err;
} parser;

static node *parse_sum(parser *p);
static node *parse_unary(parser *p);

static int advance(parser *p) { return lexer_next(&p->lx, p->err); }

static int expect(parser *p, token_kind kind) {
    if (p->lx.current.kind != kind) {
        calc_error_set(p->err, p->lx.current.pos, "expected %s, found %s", token_name(kind),
                       token_name(p->lx.current.kind));
        return 0;
    }
    return advance(p);
}

static node *parse_atom(parser *p) {
    token t = p->lx.current;
    if (t.kind == TOK_NUM) {
        node *n = node_new(NODE_NUM);
        n->number = t.number;
        if (!advance(p)) { node_free(n); return NULL; }
        return n;
    }
    if (t.kind == TOK_IDENT) {
        if (!advance(p)) return NULL;
        if (p->lx.current.kind == TOK_LPAREN) {
            node *call = node_new(NODE_CALL);
            strcpy(call->name, t.ident);
            if (!advance(p)) { node_free(call); return NULL; }
            if (p->lx.current.kind != TOK_RPAREN) {
                for (;;) {
                    if (call->nargs == 4) {
                        calc_error_set(p->err, p->lx.current.pos, "too many arguments to %s", call->name);
                        node_free(call);
                        return NULL;
                    }
                    node *arg = parse_sum(p);
                    if (!arg) { node_free(call); return NULL; }
                    call->args[call->nargs++] = arg;
                    if (p->lx.current.kind != TOK_COMMA) break;
                    if (!advance(p)) { node_free(call); return NULL; }
                }
            }
            if (!expect(p, TOK_RPAREN)) { node_free(call); return NULL; }
            return call;
        }
        node *var = node_new(NODE_VAR);
        strcpy(var->name, t.ident);
        return var;
    }
    if (t.kind == TOK_LPAREN) {
        if (!advance(p)) return NULL;
        node *inner = parse_sum(p);
        if (!inner) return NULL;
        if (!expect(p, TOK_RPAREN)) { node_free(inner); return NULL; }
        return inner;
    }
    calc_error_set(p->err, t.pos, "expected a value, found %s", token_name(t.kind));
    return NULL;
}

static node *binary(char op, node *left, node *right) {
    node *n = node_new(NODE_BINARY);
    n->op = op;
    n->left = left;
    n->right = right;
    return n;
}

static node *parse_power(parser *p) {
    node *base = parse_atom(p);
    if (!base || p->lx.current.kind != TOK_CARET) return base;
    if (!advance(p)) { node_free(base); return NULL; }
    node *exponent = parse_unary(p); /* right associative */
    if (!exponent) { node_free(base); return NULL; }
    return binary('^', base, exponent);
}

static node *parse_unary(parser *p) {
    if (p->lx.current.kind == TOK_MINUS) {
        if (!advance(p)) return NULL;
        node *operand = parse_unary(p);
        if (!operand) return NULL;
        node *n = node_new(NODE_NEG);
        n->left = operand;
        return n;
    }
    return parse_power(p);
}

static node *parse_term(parser *p) {
    node *left = parse_unary(p);
    while (left) {
        token_kind k = p->lx.current.kind;
        if (k != TOK_STAR && k != TOK_SLASH && k != TOK_PERCENT) break;
        if (!advance(p)) { node_free(left); return NULL; }
        node *right = parse_unary(p);
        if (!right) { node_free(left); return NULL; }
        left = binary(k == TOK_STAR ? '*' : k == TOK_SLASH ? '/' : '%', left, right);
    }
    return left;
}

static node *parse_sum(parser *p) {
    node *left = parse_term(p);
    while (left) {
        token_kind k = p->lx.current.kind;
        if (k != TOK_PLUS && k != TOK_MINUS) break;
        if (!advance(p)) { node_free(left); return NULL; }
        node *right = parse_term(p);
        if (!right) { node_free(left); return NULL; }
        left = binary(k == TOK_PLUS ? '+' : '-', left, right);
    }
    return left;
}

node *calc_parse(const char *src, calc_error *err) {
    parser p;
    p.err = err;
    lexer_init(&p.lx, src);
    if (!advance(&p)) return NULL;
    node *result;
    /* assignment: NAME '=' ... needs one token of lookahead past the name */
    lexer save = p.lx;
    if (p.lx.current.kind == TOK_IDENT) {
        token name = p.lx.current;
        if (!advance(&p)) return NULL;
        if (p.lx.current.kind == TOK_ASSIGN) {
            if (!advance(&p)) return NULL;
            node *value = parse_sum(&p);
            if (!value) return NULL;
            result = node_new(NODE_ASSIGN);
            strcpy(result->name, name.ident);
            result->left = value;
            goto done;
        }
        p.lx = save;
    }
    result = parse_sum(&p);
    if (!result) return NULL;
done:
    if (p.lx.current.kind != TOK_END) {
        calc_error_set(err, p.lx.current.pos, "unexpected %s after expression", token_name(p.lx.current.kind));
        node_free(result);
        return NULL;
    }
    return result;
}
