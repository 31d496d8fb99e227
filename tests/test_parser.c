/*
 * test_parser.c - the grammar of SPEC 2: operators and their precedence,
 * the fine points, statements, and every parse error with its place.
 *
 * Precedence is asserted by parsing two spellings and comparing the nodes:
 * the DAG is hash-consed, so equal structure is pointer equality.
 */
#include "testutil.h"

#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

static expr *sym(const char *name) {
  return expr_sym(tu_ctx, name);
}

/* ---- two spellings of one expression ---- */

static const struct {
  const char *a, *b;
} same[] = {
    /* ⊗ binds tighter than products, looser than postfix (fine point 2) */
    {"A B ⊗ C D", "A (B ⊗ C) D"},
    {"A ⊗ B C", "(A ⊗ B) C"},
    {"A ⊗ B^T", "A ⊗ (B^T)"},
    {"A ⊗ B ⊗ C", "kron(kron(A, B), C)"},
    {"A ⊗ B ⊗ C", "kron(A, kron(B, C))"},
    {"-A ⊗ B", "-(A ⊗ B)"},
    /* unary minus binds looser than products */
    {"-x^T A x", "-(x^T A x)"},
    {"-A B + C", "(-(A B)) + C"},
    {"-2 A", "-(2 A)"},
    {"-A .* B", "-(A .* B)"},
    {"--x", "-(-x)"},
    /* d/dX takes the whole sum to its right (fine point 1) */
    {"d/dx a^T x + b^T x", "d/dx (a^T x + b^T x)"},
    {"d/dx a^T x - b^T x", "d/dx (a^T x - b^T x)"},
    {"a + d/dx b^T x + c", "a + d/dx (b^T x + c)"},
    {"d/dX d/dY f + g", "d/dX (d/dY (f + g))"},
    {"-d/dx f + g", "-(d/dx (f + g))"},
    {"d/dX (f)", "d/dX f"},
    /* .* and ./ share the product level, left to right (fine point 3) */
    {"P x .* Q x", "((P x) .* Q) x"},
    {"A .* B C", "(A .* B) C"},
    {"A B .* C", "(A B) .* C"},
    {"A ./ B C", "(A ./ B) C"},
    {"A B ./ C", "(A B) ./ C"},
    {"A ./ B ./ C", "(A ./ B) ./ C"},
    {"A ./ B .* C", "(A ./ B) .* C"},
    {"A / s B", "(A / s) B"},
    {"A B / s", "(A B) / s"},
    {"A / s / t", "(A / s) / t"},
    {"A * B", "A B"},
    {"A·B", "A B"},
    {"2*A", "2 A"},
    /* negative powers (fine point 7) */
    {"X^-2", "(X^-1)^2"},
    {"X^-2", "inv(X)^2"},
    {"X^(-2)", "X^-2"},
    {"X^{-2}", "X^-2"},
    {"X^-1", "inv(X)"},
    {"X^(-1)", "inv(X)"},
    {"s^1/2", "(s^1)/2"},
    {"s^2.5", "s^(5/2)"},
    {"s^-1.5", "s^(-3/2)"},
    {"s^-1 .5", "(s^-1) (1/2)"},
    {"A^-T", "(A^T)^-1"},
    {"A^-T", "inv(A^T)"},
    {"A^-T", "A^T^-1"},
    {"A^-T", "A^{-T}"},
    /* postfix operators bind tightest, left to right */
    {"A^T^T", "(A^T)^T"},
    {"A^2^T", "(A^2)^T"},
    {"A B^T", "A (B^T)"},
    {"x^T A^-1 x", "x^T (A^-1) x"},
    {"A .^ 2", "A.^2"},
    {"-A .^ 2", "-(A .^ 2)"},
    {"A .^ 2 B", "(A .^ 2) B"},
    {"2^3^2", "(2^3)^2"},
    /* norms (fine point 6) */
    {"||x||_2", "norm2(x)"},
    {"||x||", "norm2(x)"},
    {"||X||_F", "norm2(X)"},
    {"||x||_1", "norm1(x)"},
    {"||A x - y||^2", "norm2(A x - y)^2"},
    {"||A x - y||_2^2", "(norm2(A x - y))^2"},
    /* derivatives as expressions */
    {"diff(f, X)", "d/dX f"},
    {"grad(f, X)", "d/dX f"},
    {"diff(f, vec(X))", "d/dvec(X) f"},
    {"diff(f, delta)", "grad(f, delta)"},
    {"diff(f + g, x)", "d/dx f + g"},
    /* a - b is a + (-b); sums and products are flat */
    {"A - B", "A + -B"},
    {"A - B - C", "A + (-B) + (-C)"},
    {"(A B) C", "A (B C)"},
    {"(A B) C", "A B C"},
    {"(A + B) + C", "A + (B + C)"},
    {"(A .* B) .* C", "A .* (B .* C)"},
    {"((x))", "x"},
    /* a number's sign is folded into the number */
    {"-(1/2)", "-0.5"},
    {"2 / 4", "0.5"},
    {"-(-3)", "3"},
    /* where: bindings are substituted, and may use the earlier ones */
    {"x^T t where t = A x", "x^T (A x)"},
    {"t u where t = A x, u = B t", "(A x) (B (A x))"},
    {"t^T t where t = A x - y", "(A x - y)^T (A x - y)"},
    {"x where x = y", "y"},
    {"t where t = x, u = t", "x"},
    /* NumPy spellings (SPEC 4) */
    {"x.T @ A @ x", "x^T A x"},
    {"(A @ B).T", "(A B)^T"},
    {"W2 @ relu(W1 @ x)", "W2 relu(W1 x)"},
    {"A**-1 @ B", "A^-1 B"},
    {"s**2 * x.T @ y", "(s^2) x^T y"},
};

START_TEST(same_expression) {
  const char *a = same[_i].a, *b = same[_i].b;
  expr *ea = tu_parse(a), *eb = tu_parse(b);
  ck_assert_msg(ea == eb, "'%s' parsed as %s, but '%s' as %s", a, tu_print(ea),
                b, tu_print(eb));
}
END_TEST

/* Pairs that must differ: the comparison above can fail. */
static const struct {
  const char *a, *b;
} differ[] = {
    {"A B ⊗ C D", "(A B) ⊗ (C D)"},
    {"-x^T A x", "(-x)^T A x"},
    {"s^1/2", "s^(1/2)"},
    {"P x .* Q x", "(P x) .* (Q x)"},
    {"d/dx a^T x + b^T x", "(d/dx a^T x) + b^T x"},
    {"A / s B", "A / (s B)"},
    {"A - B", "A + B"},
    {"A B", "B A"},
    {"A + B", "B + A"}, /* order is kept */
    {"A^-T", "A^T"},
    {"A^-T", "A^-1"},
    {"X^-2", "X^2"},
    {"||x||_1", "||x||"},
    {"x^T t where t = A x", "x^T t"},
    {"A^T", "A"},
    {"1/2", "0.2"},
};

START_TEST(different_expressions) {
  const char *a = differ[_i].a, *b = differ[_i].b;
  ck_assert_msg(tu_parse(a) != tu_parse(b), "'%s' and '%s' are one node", a, b);
}
END_TEST

/* ---- the nodes built ---- */

START_TEST(node_kinds) {
  expr *e = tu_parse("<A, B>");
  ck_assert_int_eq(e->op, E_INNER);
  ck_assert_ptr_eq(e->kid[0], sym("A"));
  ck_assert_ptr_eq(e->kid[1], sym("B"));
  e = tu_parse("A - B");
  ck_assert_int_eq(e->op, E_ADD);
  ck_assert_uint_eq(e->nkids, 2);
  ck_assert_int_eq(e->kid[1]->op, E_NEG);
  e = tu_parse("A B C D");
  ck_assert_int_eq(e->op, E_MUL);
  ck_assert_uint_eq(e->nkids, 4);
  e = tu_parse("A ⊗ B ⊗ C");
  ck_assert_int_eq(e->op, E_KRON);
  ck_assert_uint_eq(e->nkids, 3);
  e = tu_parse("d/dvec(X) vec(A X B)");
  ck_assert_int_eq(e->op, E_DIFF);
  ck_assert_int_eq(e->kid[1]->op, E_CALL);
  ck_assert_uint_eq(e->kid[1]->u.fn, FN_VEC);
  e = tu_parse("hess(f, x)");
  ck_assert_int_eq(e->op, E_HESS);
  ck_assert_ptr_eq(e->kid[0], sym("f"));
  ck_assert_ptr_eq(e->kid[1], sym("x"));
  e = tu_parse("s^(1/2)");
  ck_assert_int_eq(e->op, E_POW);
  ck_assert_int_eq(e->kid[1]->op, E_NUM);
  ck_assert_int_eq(mpq_cmp_si(e->kid[1]->u.num, 1, 2), 0);
  e = tu_parse("A^3");
  ck_assert_int_eq(e->op, E_POW);
  ck_assert(expr_is_int(e->kid[1], NULL));
  e = tu_parse("A .^ -1");
  ck_assert_int_eq(e->op, E_EPOW);
  ck_assert_int_eq(expr_num_sgn(e->kid[1]), -1);
  /* every function by name, with its id */
  for (uint32_t fn = 0; fn < FN_NBUILTIN; fn++) {
    char text[64];
    const fn_info *f = md_fn_get(tu_ctx, fn);
    snprintf(text, sizeof text, "%s(X)", f->name);
    e = tu_parse(text);
    ck_assert_msg(e->op == E_CALL && e->u.fn == fn, "%s", text);
    ck_assert_ptr_eq(e->kid[0], sym("X"));
  }
}
END_TEST

START_TEST(long_sums_are_flat) {
  /* 100000 terms: one node with 100000 kids, parsed in linear time */
  size_t n = 100000;
  char *text = malloc(4 * n);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (i)
      text[len++] = i % 2 ? '+' : '-';
    text[len++] = 'x';
  }
  text[len] = '\0';
  expr *e = tu_parse(text);
  free(text);
  ck_assert_int_eq(e->op, E_ADD);
  ck_assert_uint_eq(e->nkids, n);
  ck_assert_ptr_eq(e->kid[1], sym("x"));
  ck_assert_ptr_eq(e->kid[2], expr_neg(tu_ctx, sym("x")));
}
END_TEST

START_TEST(deep_but_allowed) {
  /* 1000 brackets is the limit, and 1500 unary minuses are fine */
  char *text = malloc(4000);
  memset(text, '(', 1000);
  text[1000] = 'x';
  memset(text + 1001, ')', 1000);
  text[2001] = '\0';
  ck_assert_ptr_eq(tu_parse(text), sym("x"));
  memset(text, '-', 1500);
  strcpy(text + 1500, "x");
  expr *e = tu_parse(text);
  free(text);
  for (int i = 0; i < 1500; i++) {
    ck_assert_int_eq(e->op, E_NEG);
    e = e->kid[0];
  }
  ck_assert_ptr_eq(e, sym("x"));
}
END_TEST

/* ---- statements ---- */

/* Parses TEXT as a program, which must succeed, into P. */
static void parse_program(const char *text, md_source *src, md_parsed *p,
                          md_parse_mode mode) {
  *src = (md_source){"<test>", text, strlen(text), 1};
  md_errors err;
  md_errors_init(&err);
  bool ok = md_parse(tu_ctx, src, mode, p, &err);
  char msg[512] = "";
  if (err.n)
    snprintf(msg, sizeof msg, "%s", err.v[0].msg);
  md_errors_clear(&err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text, msg);
}

static const char *intern(const char *s) {
  return md_intern(tu_ctx, s, strlen(s));
}

START_TEST(let_all_kinds) {
  md_source src;
  md_parsed p;
  parse_program("let s : scalar, x : vector(n), X : matrix(m, n), "
                "A : symmetric(n), S : spd(3), D : diagonal(k), "
                "B : symmetric, M : matrix",
                &src, &p, MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 1);
  md_stmt *st = &p.stmts[0];
  ck_assert_int_eq(st->kind, ST_LET);
  ck_assert_ptr_null(st->lhs);
  ck_assert_uint_eq(st->ndecls, 8);
  md_decl *d = st->decls;
  ck_assert_ptr_eq(d[0].name, intern("s"));
  ck_assert_int_eq(d[0].kind, K_SCALAR);
  ck_assert_ptr_null(d[0].dim[0].name);
  ck_assert_int_eq(d[0].dim[0].value, 0);
  ck_assert_int_eq(d[1].kind, K_VECTOR);
  ck_assert_ptr_eq(d[1].dim[0].name, intern("n"));
  ck_assert_int_eq(d[2].kind, K_MATRIX);
  ck_assert_ptr_eq(d[2].dim[0].name, intern("m"));
  ck_assert_ptr_eq(d[2].dim[1].name, intern("n"));
  /* square kinds give both sizes */
  ck_assert_int_eq(d[3].kind, K_SYMMETRIC);
  ck_assert_ptr_eq(d[3].dim[0].name, intern("n"));
  ck_assert_ptr_eq(d[3].dim[1].name, intern("n"));
  ck_assert_int_eq(d[4].kind, K_SPD);
  ck_assert_ptr_null(d[4].dim[0].name);
  ck_assert_int_eq(d[4].dim[0].value, 3);
  ck_assert_int_eq(d[4].dim[1].value, 3);
  ck_assert_int_eq(d[5].kind, K_DIAGONAL);
  ck_assert_ptr_eq(d[5].dim[1].name, intern("k"));
  /* without sizes, they are inferred */
  ck_assert_int_eq(d[6].kind, K_SYMMETRIC);
  ck_assert_ptr_null(d[6].dim[0].name);
  ck_assert_int_eq(d[6].dim[0].value, 0);
  ck_assert_int_eq(d[7].kind, K_MATRIX);
  ck_assert_ptr_null(d[7].dim[1].name);
  /* the place of each declaration */
  ck_assert_uint_eq(d[0].loc.begin, 4);
  ck_assert_uint_eq(d[0].loc.end, 14);
  md_parsed_clear(&p);
}
END_TEST

START_TEST(let_several_names) {
  md_source src;
  md_parsed p;
  parse_program("let x, y, z : vector(n)", &src, &p, MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 1);
  ck_assert_uint_eq(p.stmts[0].ndecls, 3);
  const char *names[] = {"x", "y", "z"};
  for (int i = 0; i < 3; i++) {
    ck_assert_ptr_eq(p.stmts[0].decls[i].name, intern(names[i]));
    ck_assert_int_eq(p.stmts[0].decls[i].kind, K_VECTOR);
    ck_assert_ptr_eq(p.stmts[0].decls[i].dim[0].name, intern("n"));
  }
  md_parsed_clear(&p);
}
END_TEST

START_TEST(decl_mode) {
  /* -D 'A : symmetric' takes declarations, with or without let */
  md_source src;
  md_parsed p;
  parse_program("A : symmetric", &src, &p, MD_PARSE_DECL);
  ck_assert_uint_eq(p.n, 1);
  ck_assert_int_eq(p.stmts[0].kind, ST_LET);
  ck_assert_uint_eq(p.stmts[0].ndecls, 1);
  ck_assert_int_eq(p.stmts[0].decls[0].kind, K_SYMMETRIC);
  md_parsed_clear(&p);
  parse_program("let x : vector(3), s : scalar", &src, &p, MD_PARSE_DECL);
  ck_assert_uint_eq(p.stmts[0].ndecls, 2);
  ck_assert_int_eq(p.stmts[0].decls[0].dim[0].value, 3);
  md_parsed_clear(&p);
  /* an expression is not a declaration */
  tu_error r = tu_parse_fail("x + y", 5, MD_PARSE_DECL);
  ck_assert(!r.parsed);
  ck_assert_str_eq(r.msg, "syntax error, unexpected '+', expecting ',' or "
                          "':'");
  ck_assert_uint_eq(r.col, 3);
  r = tu_parse_fail("A : foo", 7, MD_PARSE_DECL);
  ck_assert_str_eq(r.msg, "unknown kind 'foo'; expected scalar, vector, "
                          "matrix, symmetric, spd or diagonal");
  ck_assert_uint_eq(r.col, 5);
}
END_TEST

START_TEST(identities) {
  md_source src;
  md_parsed p;
  parse_program("d/dx (a^T x) = a; A != B; sigmoid2(x) := 1 ./ (1 + "
                "exp(-x))",
                &src, &p, MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 3);
  ck_assert_int_eq(p.stmts[0].kind, ST_EQ);
  ck_assert_ptr_eq(p.stmts[0].lhs, tu_parse("d/dx a^T x"));
  ck_assert_ptr_eq(p.stmts[0].rhs, sym("a"));
  ck_assert_uint_eq(p.stmts[0].loc.begin, 0);
  ck_assert_uint_eq(p.stmts[0].loc.end, 16);
  ck_assert_int_eq(p.stmts[1].kind, ST_NE);
  ck_assert_ptr_eq(p.stmts[1].lhs, sym("A"));
  ck_assert_ptr_eq(p.stmts[1].rhs, sym("B"));
  ck_assert_int_eq(p.stmts[2].kind, ST_DEF);
  ck_assert_ptr_eq(p.stmts[2].rhs, tu_parse("1 ./ (1 + exp(-x))"));
  md_parsed_clear(&p);
}
END_TEST

START_TEST(where_applies_to_both_sides) {
  md_source src;
  md_parsed p;
  parse_program("t^T t = u where t = A x, u = t^T t", &src, &p,
                MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 1);
  ck_assert_int_eq(p.stmts[0].kind, ST_EQ);
  expr *want = tu_parse("(A x)^T (A x)");
  ck_assert_ptr_eq(p.stmts[0].lhs, want);
  ck_assert_ptr_eq(p.stmts[0].rhs, want);
  md_parsed_clear(&p);
}
END_TEST

START_TEST(programs) {
  md_source src;
  md_parsed p;
  parse_program("let x : vector(n); x^T x ;; a = b", &src, &p,
                MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 4);
  ck_assert_int_eq(p.stmts[0].kind, ST_LET);
  ck_assert_int_eq(p.stmts[1].kind, ST_EXPR);
  ck_assert_ptr_eq(p.stmts[1].lhs, tu_parse("x^T x"));
  ck_assert_uint_eq(p.stmts[1].loc.begin, 19);
  ck_assert_int_eq(p.stmts[2].kind, ST_EMPTY);
  ck_assert_int_eq(p.stmts[3].kind, ST_EQ);
  md_parsed_clear(&p);
}
END_TEST

START_TEST(empty_input) {
  const char *inputs[] = {"", "   ", "# only a comment", "\n\n"};
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    md_source src;
    md_parsed p;
    parse_program(inputs[i], &src, &p, MD_PARSE_PROGRAM);
    ck_assert_uint_eq(p.n, 1);
    ck_assert_int_eq(p.stmts[0].kind, ST_EMPTY);
    ck_assert_ptr_null(p.stmts[0].lhs);
    md_parsed_clear(&p);
  }
  md_source src;
  md_parsed p;
  parse_program(";", &src, &p, MD_PARSE_PROGRAM);
  ck_assert_uint_eq(p.n, 2);
  ck_assert_int_eq(p.stmts[1].kind, ST_EMPTY);
  md_parsed_clear(&p);
}
END_TEST

START_TEST(locations) {
  /* each node remembers where it first occurs */
  md_source src;
  md_parsed p;
  parse_program("x + A y + A y", &src, &p, MD_PARSE_PROGRAM);
  expr *e = p.stmts[0].lhs;
  ck_assert_uint_eq(e->nkids, 3);
  md_loc l = md_parsed_loc(&p, e->kid[1]);
  ck_assert_uint_eq(l.begin, 4);
  ck_assert_uint_eq(l.end, 7);
  ck_assert_ptr_eq(e->kid[1], e->kid[2]);
  l = md_parsed_loc(&p, sym("y"));
  ck_assert_uint_eq(l.begin, 6);
  ck_assert_uint_eq(l.end, 7);
  l = md_parsed_loc(&p, e);
  ck_assert_uint_eq(l.begin, 0);
  ck_assert_uint_eq(l.end, 13);
  /* a node the source does not hold has no place */
  ck_assert(!md_loc_valid(md_parsed_loc(&p, sym("z"))));
  md_parsed_clear(&p);
}
END_TEST

/* ---- errors ---- */

static const struct {
  const char *text, *msg;
  unsigned col;
} errors[] = {
    /* syntax errors, at the offending token or just after the last one */
    {"A +", "syntax error, unexpected end of input", 4},
    {"A +   # comment", "syntax error, unexpected end of input", 4},
    {"(A", "syntax error, unexpected end of input, expecting ',' or ')'", 3},
    {"A)", "syntax error, unexpected ')', expecting end of input", 2},
    {"A + * B", "syntax error, unexpected '*'", 5},
    {"A^ *", "syntax error, unexpected '*'", 4},
    {"A ^ ,", "syntax error, unexpected ','", 5},
    {"x = y = z", "syntax error, unexpected '=', expecting end of input", 7},
    {"tr()", "syntax error, unexpected ')'", 4},
    {"tr A", "syntax error, unexpected identifier, expecting '('", 4},
    {"<A>", "syntax error, unexpected '>', expecting ','", 3},
    {"<A, B, C>", "syntax error, unexpected ',', expecting '>'", 6},
    {"||x", "syntax error, unexpected end of input, expecting closing ||", 4},
    {"A ⊗ -B", "syntax error, unexpected '-'", 5},
    {"A d/dx f", "syntax error, unexpected d/dX, expecting end of input", 3},
    {"diff(f)", "syntax error, unexpected ')', expecting ','", 7},
    {"diff(f, x, y)", "syntax error, unexpected ',', expecting ')'", 10},
    {"d/dvec(A B) f", "syntax error, unexpected identifier, expecting ')'", 10},
    {"let", "syntax error, unexpected end of input, expecting identifier", 4},
    {"let x", "syntax error, unexpected end of input, expecting ',' or ':'", 6},
    {"let 2 : scalar", "syntax error, unexpected number, expecting identifier",
     5},
    {"let x : vector(1/2)",
     "syntax error, unexpected '/', expecting ',' or ')'", 17},
    {"x where I = 1", "syntax error, unexpected I, expecting identifier", 9},
    {"a where t", "syntax error, unexpected end of input, expecting '='", 10},
    {"A^--1", "syntax error, unexpected '-', expecting number", 4},
    /* unknown functions and lists */
    {"foo(x, y)", "unknown function 'foo'", 1},
    {"x + foo(x, y, z)", "unknown function 'foo'", 5},
    {"a .* foo(x, y)", "unknown function 'foo'", 6},
    {"(a, b)",
     "a list in parentheses is only allowed as the arguments of a "
     "function",
     1},
    {"tr((A, B))",
     "a list in parentheses is only allowed as the arguments "
     "of a function",
     4},
    /* arity */
    {"tr(A, B)", "tr takes 1 argument, not 2", 1},
    {"x + tr(A, B)", "tr takes 1 argument, not 2", 5},
    {"exp(a, b, c)", "exp takes 1 argument, not 3", 1},
    {"kron(A)", "kron takes at least 2 arguments, not 1", 1},
    {"inv(A, B)", "inv takes 1 argument, not 2", 1},
    /* exponents */
    /* declarations */
    {"let x : vector(0)",
     "a size must be a name or an integer from 1 to 1000000", 16},
    {"let x : vector(1000001)",
     "a size must be a name or an integer from 1 to 1000000", 16},
    {"let X : matrix(m, 0)",
     "a size must be a name or an integer from 1 to 1000000", 19},
    {"let x : foo",
     "unknown kind 'foo'; expected scalar, vector, matrix, "
     "symmetric, spd or diagonal",
     9},
    {"let x : vector(m, n)", "vector takes 1 size, as in vector(n)", 9},
    {"let A : matrix(n)", "matrix takes 2 sizes, as in matrix(m, n)", 9},
    {"let s : scalar(n)", "scalar takes no size", 9},
    {"let S : spd(m, n)", "spd takes 1 size, as in spd(n)", 9},
    {"let A : symmetric(m, n)", "symmetric takes 1 size, as in symmetric(n)",
     9},
    {"let D : diagonal(m, n)", "diagonal takes 1 size, as in diagonal(n)", 9},
    /* where */
    {"x^T t where t = A x, t = x", "'t' is bound twice in 'where'", 22},
    /* derivatives */
    {"d/dI A", "cannot differentiate with respect to 'I'", 4},
    {"d/dones x", "cannot differentiate with respect to 'ones'", 4},
    {"x + d/dtr x", "cannot differentiate with respect to 'tr'", 8},
    {"diff(x, 2)", "can only differentiate with respect to a symbol or vec(X)",
     9},
    {"hess(f, A B)",
     "can only differentiate with respect to a symbol or vec(X)", 9},
    {"grad(f, x^T)",
     "can only differentiate with respect to a symbol or vec(X)", 9},
    {"diff(f, vec(A B))",
     "can only differentiate with respect to a symbol or vec(X)", 9},
    /* unknown functions: the closest known name, built-in or defined in
     * rules, by edit distance; a capitalised function name right before
     * '(' is a call (issue 18) */
    {"sigmod(x)", "unknown function 'sigmod'; did you mean sigmoid?", 1},
    {"softmx(x)", "unknown function 'softmx'; did you mean softmax?", 1},
    {"x + sgn(x)", "unknown function 'sgn'; did you mean sign?", 5},
    {"lgo(x)", "unknown function 'lgo'; did you mean log?", 1},
    {"kronn(A, B)", "unknown function 'kronn'; did you mean kron?", 1},
    {"Tr(A X)", "unknown function 'Tr'; did you mean tr?", 1},
    {"2 Sigmoid(x)", "unknown function 'Sigmoid'; did you mean sigmoid?", 3},
    {"Inv(A)", "unknown function 'Inv'; did you mean inv?", 1},
    {"trace(A)", "unknown function 'trace'; did you mean tr?", 1},
    {"arcsin(x)",
     "unknown function 'arcsin'; there is no such function (matdiff(1) "
     "lists them, --rules FILE adds one)",
     1},
};

START_TEST(parse_error) {
  tu_check_parse_error(errors[_i].text, strlen(errors[_i].text), errors[_i].msg,
                       errors[_i].col);
}
END_TEST

START_TEST(error_on_a_later_line) {
  const char *text = "let x : vector(n);\nx^T x +\n  foo(x, y)";
  tu_error r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  ck_assert(!r.parsed);
  ck_assert_str_eq(r.msg, "unknown function 'foo'");
  ck_assert_uint_eq(r.line, 3);
  ck_assert_uint_eq(r.col, 3);
  ck_assert_uint_eq(r.begin, 29);
  ck_assert_uint_eq(r.end, 32);
}
END_TEST

/* A string of N copies of OPEN, then MIDDLE, then N copies of CLOSE. */
static char *nest(size_t n, const char *open, const char *middle,
                  const char *close) {
  size_t lo = strlen(open), lc = strlen(close), lm = strlen(middle);
  char *s = malloc(n * (lo + lc) + lm + 1), *p = s;
  for (size_t i = 0; i < n; i++, p += lo)
    memcpy(p, open, lo);
  memcpy(p, middle, lm);
  p += lm;
  for (size_t i = 0; i < n; i++, p += lc)
    memcpy(p, close, lc);
  *p = '\0';
  return s;
}

/* TEXT (freed) fails with the one message MSG, at column COL when COL is
 * not 0. */
static void check_too_deep(char *text, const char *msg, unsigned col) {
  tu_error r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  free(text);
  ck_assert_msg(!r.parsed, "parsed: %s", msg);
  ck_assert_uint_eq(r.nerr, 1);
  ck_assert_str_eq(r.msg, msg);
  ck_assert_uint_eq(r.line, 1);
  if (col)
    ck_assert_uint_eq(r.col, col);
}

/* The messages at the limits, with their numbers. */
static const char *levels_msg(void) {
  static char m[80];
  snprintf(m, sizeof m, "expression nested too deeply (more than %d levels)",
           (int)MD_MAX_NESTING);
  return m;
}

static const char *stack_msg(void) {
  static char m[100];
  snprintf(m, sizeof m,
           "expression nested too deeply (more than %d operators waiting "
           "for their operands)",
           (int)MD_MAX_PARSE_STACK);
  return m;
}

START_TEST(nesting_too_deep) {
  const unsigned n = MD_MAX_NESTING;
  /* the bracket past the limit is the error, whichever kind it is */
  check_too_deep(nest(n + 1, "(", "x", ")"), levels_msg(), n + 1);
  check_too_deep(nest(n + 1, "tr(", "X", ")"), levels_msg(), (n + 1) * 3);
  check_too_deep(nest(n + 1, "<", "x, y", ", z>"), levels_msg(), n + 1);
  check_too_deep(nest(n / 2 + 200, "(|| ", "x", "||)"), levels_msg(),
                 n / 2 * 4 + 1);
  /* x (x (x ...)): the brackets count, not the products */
  check_too_deep(nest(n + 1, "x (", "x", ")"), levels_msg(), (n + 1) * 3);
}
END_TEST

START_TEST(huge_nesting_is_a_clean_error) {
  const unsigned n = MD_MAX_NESTING;
  check_too_deep(nest(2 * n, "(", "x", ")"), levels_msg(), n + 1);
  check_too_deep(nest(2 * n, "||", "x", "||"), levels_msg(), 2 * n + 1);
  /* unary minus nests without brackets: the parser's stack is the limit,
   * and the message says so */
  char *text = nest(MD_MAX_PARSE_STACK + 1000, "-", "x", "");
  tu_error r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  free(text);
  ck_assert(!r.parsed);
  ck_assert_uint_eq(r.nerr, 1);
  ck_assert_str_eq(r.msg, stack_msg());
  /* ... where the stack fills: the minus signs take one symbol each */
  ck_assert_uint_le(r.col, MD_MAX_PARSE_STACK);
  ck_assert_uint_gt(r.col, MD_MAX_PARSE_STACK - 10);
  text = nest(MD_MAX_PARSE_STACK / 2, "d/dx a + ", "x", "");
  r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  free(text);
  ck_assert_str_eq(r.msg, stack_msg());
  /* so do d/dx and postfix operators, up to the depth of the DAG */
  text = nest(n + 10, "d/dx ", "x", "");
  r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  free(text);
  ck_assert(!r.parsed);
  ck_assert_str_eq(r.msg, levels_msg());
  text = nest(n + 10, "", "x", "^T");
  r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
  free(text);
  ck_assert(!r.parsed);
  ck_assert_str_eq(r.msg, levels_msg());
}
END_TEST

/* Brackets fill the parser's stack no faster than MD_MAX_PARSE_STACK /
 * MD_MAX_NESTING symbols each, however much waits inside each one: the
 * bracket limit comes first (a level of 'a + b kron(c, d + e' filled the
 * stack at 1428 levels, and the message said 2000). */
START_TEST(brackets_fit_on_the_stack) {
  static const char *const levels[] = {
      "a + - d/dvec(X) b * c ⊗ (a, b, ",
      "a + -d/dx b * c ⊗ kron(a, ",
      "a + - d/dvec(X) b / c ./ d ⊗ e^T .* f^(",
      "a + - d/dx b * c ⊗ <a, ",
      "a + - d/dx b * c ⊗ tr(a, ",
      "a + b kron(c, d + e ",
  };
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    char *text = nest(MD_MAX_NESTING, levels[i], "x", "");
    tu_error r = tu_parse_fail(text, strlen(text), MD_PARSE_PROGRAM);
    ck_assert_msg(!strstr(r.msg, "operators"), "%s: %s", levels[i], r.msg);
    free(text);
    text = nest(MD_MAX_NESTING + 1, levels[i], "x", "");
    check_too_deep(text, levels_msg(), 0);
  }
}
END_TEST

/* Argument lists and the names of a let are collected left to right: a
 * long one neither fills the parser's stack ("nested too deeply" for
 * kron of 5000 arguments) nor is copied once per element (20000 names
 * took 19 s and 2.6 GB). */
START_TEST(long_lists) {
  enum { N = 100000 };
  char *text = nest(N - 1, "x, ", "x", "");
  char *call = malloc(strlen(text) + 8);
  sprintf(call, "tr(%s)", text);
  free(text);
  tu_error r = tu_parse_fail(call, strlen(call), MD_PARSE_PROGRAM);
  free(call);
  ck_assert_str_eq(r.msg, "tr takes 1 argument, not 100000");
  ck_assert_uint_eq(r.col, 1);

  strbuf b;
  sb_init(&b);
  sb_puts(&b, "let a0");
  for (int i = 1; i < N; i++)
    sb_printf(&b, ", a%d", i);
  sb_puts(&b, " : scalar");
  md_source src = {"<test>", b.s, b.len, 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  ck_assert(md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err));
  ck_assert_uint_eq(p.n, 1);
  ck_assert_uint_eq(p.stmts[0].ndecls, N);
  ck_assert_str_eq(p.stmts[0].decls[N - 1].name, "a99999");
  md_parsed_clear(&p);
  md_errors_clear(&err);
  sb_clear(&b);
}
END_TEST

/* kron(t, t) is twice as wide as t: a tower of 24 would flatten into 2^24
 * factors, but nodes flatten only up to MD_MAX_FLAT operands, so it
 * parses as the DAG it is.  Operands made one by one still pass the size
 * budget of one parse (MD_MAX_SIZE): 8300 bindings of 2^11 + 1 operands
 * each, an error where the binding is; the next parse has a budget of
 * its own. */
START_TEST(too_large) {
  strbuf b;
  sb_init(&b);
  sb_puts(&b, "sum(t24) where t1 = kron(x, x)");
  for (int i = 2; i <= 24; i++)
    sb_printf(&b, ", t%d = kron(t%d, t%d)", i, i - 1, i - 1);
  ck_assert_ptr_nonnull(tu_parse(b.s));
  sb_clear(&b);
  sb_init(&b);
  sb_puts(&b, "sum(u8300) where t1 = kron(x, x)");
  for (int i = 2; i <= 11; i++)
    sb_printf(&b, ", t%d = kron(t%d, t%d)", i, i - 1, i - 1);
  for (int i = 1; i <= 8300; i++)
    sb_printf(&b, ", u%d = kron(t11, y%d)", i, i);
  tu_error r = tu_parse_fail(b.s, b.len, MD_PARSE_PROGRAM);
  ck_assert(!r.parsed);
  ck_assert_str_eq(r.msg, "expression too large (more than 16777216 nodes "
                          "and operands)");
  sb_clear(&b);
  /* three towers of 8 Mi operands each, in three parses */
  for (const char *v = "xyz"; *v; v++) {
    sb_init(&b);
    sb_printf(&b, "sum(t22) where t1 = kron(%c, %c)", *v, *v);
    for (int i = 2; i <= 22; i++)
      sb_printf(&b, ", t%d = kron(t%d, t%d)", i, i - 1, i - 1);
    ck_assert_ptr_nonnull(tu_parse(b.s));
    sb_clear(&b);
  }
}
END_TEST

START_TEST(errors_leave_nothing) {
  /* after an error the context still works, and equal input gives the
   * same nodes as before */
  expr *before = tu_parse("x^T A x");
  tu_error r = tu_parse_fail("x^T A x +", 9, MD_PARSE_PROGRAM);
  ck_assert(!r.parsed);
  ck_assert_ptr_eq(tu_parse("x^T A x"), before);
}
END_TEST

static Suite *parser_suite(void) {
  Suite *s = suite_create("parser");
  TCase *tc = tu_tcase(s, "precedence");
  tcase_add_loop_test(tc, same_expression, 0, sizeof same / sizeof same[0]);
  tcase_add_loop_test(tc, different_expressions, 0,
                      sizeof differ / sizeof differ[0]);
  tcase_add_test(tc, node_kinds);
  tcase_add_test(tc, long_sums_are_flat);
  tcase_add_test(tc, deep_but_allowed);
  tc = tu_tcase(s, "statements");
  tcase_add_test(tc, let_all_kinds);
  tcase_add_test(tc, let_several_names);
  tcase_add_test(tc, decl_mode);
  tcase_add_test(tc, identities);
  tcase_add_test(tc, where_applies_to_both_sides);
  tcase_add_test(tc, programs);
  tcase_add_test(tc, empty_input);
  tcase_add_test(tc, locations);
  tc = tu_tcase(s, "errors");
  tcase_add_loop_test(tc, parse_error, 0, sizeof errors / sizeof errors[0]);
  tcase_add_test(tc, error_on_a_later_line);
  tcase_add_test(tc, nesting_too_deep);
  tcase_add_test(tc, huge_nesting_is_a_clean_error);
  tcase_add_test(tc, brackets_fit_on_the_stack);
  tcase_add_test(tc, long_lists);
  tcase_add_test(tc, too_large);
  tcase_add_test(tc, errors_leave_nothing);
  return s;
}

int main(void) {
  return tu_run(parser_suite());
}
