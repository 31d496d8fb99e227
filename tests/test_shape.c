/*
 * test_shape.c - md_shape_infer: default kinds, declarations, unification
 * of symbolic sizes, broadcasting, polymorphic closed terms, the
 * derivative layout of SPEC 3, and every shape error with its text.
 */
#include "testutil.h"

#include "shape.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

/* One inference: TEXT is "let ...; let ...; EXPR". */
static struct {
  md_source src;
  md_parsed p;
  md_env env;
  md_shapes *sh;
  md_errors err;
  expr *e;
  md_shape out;
  char msg[1024];
  unsigned col;
} cur;

static void reset(void) {
  md_shapes_free(cur.sh);
  md_errors_clear(&cur.err);
  md_env_clear(&cur.env);
  md_parsed_clear(&cur.p);
  memset(&cur, 0, sizeof cur);
}

static void setup(void) {
  memset(&cur, 0, sizeof cur);
}

/* Infers the shape of the last statement of TEXT under the declarations
 * before it; false (and cur.msg, cur.col) on a shape error. */
static bool infer(const char *text) {
  reset();
  md_env_init(&cur.env);
  md_errors_init(&cur.err);
  cur.src = (md_source){"<test>", text, strlen(text), 1};
  bool ok = md_parse(tu_ctx, &cur.src, MD_PARSE_PROGRAM, &cur.p, &cur.err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text,
                cur.err.n ? cur.err.v[0].msg : "");
  for (size_t i = 0; i + 1 < cur.p.n; i++) {
    md_stmt *st = &cur.p.stmts[i];
    ck_assert_int_eq(st->kind, ST_LET);
    for (size_t k = 0; k < st->ndecls; k++)
      md_env_add(&cur.env, &st->decls[k]);
  }
  ck_assert_int_eq(cur.p.stmts[cur.p.n - 1].kind, ST_EXPR);
  cur.e = cur.p.stmts[cur.p.n - 1].lhs;
  cur.sh = md_shapes_new(tu_ctx, &cur.env);
  ok = md_shape_infer(cur.sh, cur.e, &cur.p, &cur.src, &cur.err, &cur.out);
  if (ok) {
    ck_assert_msg(cur.err.n == 0, "'%s': inferred, with an error", text);
  } else {
    ck_assert_msg(cur.err.n == 1, "'%s': %zu errors", text, cur.err.n);
    snprintf(cur.msg, sizeof cur.msg, "%s", cur.err.v[0].msg);
    unsigned line;
    ck_assert(md_loc_valid(cur.err.v[0].loc));
    md_source_linecol(&cur.src, cur.err.v[0].loc.begin, &line, &cur.col);
  }
  return ok;
}

static const char *fmt(md_shape s) {
  static char buf[256];
  md_shape_format(cur.sh, s, buf, sizeof buf);
  return buf;
}

/* The shape of symbol NAME in the current inference. */
static md_shape sym_shape(const char *name) {
  expr *s = expr_sym(tu_ctx, name);
  ck_assert_msg(md_shape_known(cur.sh, s), "no shape for %s", name);
  return md_shape_of(cur.sh, s);
}

static bool same_dim(md_dim a, md_dim b) {
  return md_dim_equal(cur.sh, a, b);
}

/* TEXT infers to the shape printed as WANT. */
static void check_shape(const char *text, const char *want) {
  bool ok = infer(text);
  ck_assert_msg(ok, "'%s': %s", text, cur.msg);
  const char *got = fmt(cur.out);
  ck_assert_msg(strcmp(got, want) == 0, "'%s' is %s, expected %s", text, got,
                want);
}

/* TEXT is a shape error MSG at column COL. */
static void check_error(const char *text, const char *msg, unsigned col) {
  bool ok = infer(text);
  ck_assert_msg(!ok, "'%s' inferred as %s, expected \"%s\"", text, fmt(cur.out),
                msg);
  ck_assert_msg(strcmp(cur.msg, msg) == 0,
                "'%s': message\n  \"%s\"\nexpected\n  \"%s\"", text, cur.msg,
                msg);
  ck_assert_msg(cur.col == col, "'%s': column %u, expected %u (%s)", text,
                cur.col, col, msg);
}

/* ---- kinds ---- */

START_TEST(default_kinds) {
  static const struct {
    const char *name;
    md_kind kind;
  } k[] = {
      {"A", K_MATRIX},        {"X", K_MATRIX},      {"W1", K_MATRIX},
      {"Sigma", K_MATRIX},    {"Lambda", K_MATRIX}, {"x", K_VECTOR},
      {"a", K_VECTOR},        {"b1", K_VECTOR},     {"y_hat", K_VECTOR},
      {"alpha", K_SCALAR},    {"lambda", K_SCALAR}, {"lambda1", K_SCALAR},
      {"sigma_2", K_SCALAR},  {"eta", K_SCALAR},    {"omega", K_SCALAR},
      {"delta", K_SCALAR},    {"pi", K_SCALAR},     {"lambda_max", K_SCALAR},
      {"alphabet", K_VECTOR}, {"pin", K_VECTOR},    {"etas", K_VECTOR},
      {"mu12", K_SCALAR},     {"theta_", K_SCALAR}, {"epsilon", K_SCALAR},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    ck_assert_msg(md_default_kind(k[i].name) == k[i].kind, "%s: %d, not %d",
                  k[i].name, (int)md_default_kind(k[i].name), (int)k[i].kind);
}
END_TEST

START_TEST(default_shapes) {
  check_shape("A", "m×n");
  check_shape("x", "m×1");
  check_shape("alpha", "1×1");
  check_shape("lambda1", "1×1");
  check_shape("sigma_2", "1×1");
  check_shape("λ", "1×1");
  check_shape("Σ", "m×n");
  check_shape("I", "m×m");
  check_shape("ones", "m×1");
  check_shape("2", "1×1");
  ck_assert(md_shape_is_scalar(cur.sh, cur.out));
  check_shape("x", "m×1");
  ck_assert(md_shape_is_vector(cur.sh, cur.out));
  ck_assert(!md_shape_is_scalar(cur.sh, cur.out));
  ck_assert(md_dim_is_one(cur.sh, cur.out.c));
  ck_assert(!md_dim_is_one(cur.sh, cur.out.r));
  check_shape("A", "m×n");
  ck_assert(!md_shape_is_vector(cur.sh, cur.out));
  /* an unknown size is never 1: a matrix symbol stays a matrix */
  ck_assert(!md_dim_is_one(cur.sh, cur.out.r));
  ck_assert(!same_dim(cur.out.r, cur.out.c));
}
END_TEST

START_TEST(declarations) {
  check_shape("let s : scalar; s", "1×1");
  check_shape("let x : vector(n); x", "n×1");
  check_shape("let X : matrix(m, n); X", "m×n");
  check_shape("let X : matrix(p, q); X", "p×q");
  check_shape("let A : symmetric(n); A", "n×n");
  check_shape("let A : symmetric; A", "m×m");
  check_shape("let S : spd(3); S", "3×3");
  check_shape("let D : diagonal(k); D", "k×k");
  check_shape("let x : matrix(2, 3); x", "2×3");
  check_shape("let alpha : vector(n); alpha", "n×1");
  check_shape("let A : scalar; A", "1×1");
  /* a later let wins */
  check_shape("let A : matrix(m, n); let A : symmetric(p); A", "p×p");
  ck_assert_int_eq(md_shape_sym_kind(cur.sh, expr_sym(tu_ctx, "A")),
                   K_SYMMETRIC);
  ck_assert_int_eq(md_shape_sym_kind(cur.sh, expr_sym(tu_ctx, "B")), K_MATRIX);
  ck_assert_int_eq(md_shape_sym_kind(cur.sh, expr_sym(tu_ctx, "beta")),
                   K_SCALAR);
  /* names for unknown sizes avoid the declared ones */
  check_shape("let x : vector(m); A x", "n×1");
  check_shape("let x : vector(m), y : vector(n); A", "p×q");
}
END_TEST

/* ---- unification ---- */

START_TEST(products_unify) {
  check_shape("A x", "m×1");
  ck_assert(same_dim(sym_shape("A").c, sym_shape("x").r));
  ck_assert(!same_dim(sym_shape("A").r, sym_shape("A").c));
  check_shape("A B C", "m×n");
  ck_assert(same_dim(sym_shape("A").c, sym_shape("B").r));
  ck_assert(same_dim(sym_shape("B").c, sym_shape("C").r));
  ck_assert(same_dim(cur.out.r, sym_shape("A").r));
  ck_assert(same_dim(cur.out.c, sym_shape("C").c));
  check_shape("A^T B", "m×n");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("B").r));
  check_shape("let A : matrix(m, n); A x", "m×1");
  ck_assert_str_eq(fmt(sym_shape("x")), "n×1");
  check_shape("let x : vector(n); A x", "m×1");
  ck_assert_str_eq(fmt(sym_shape("A")), "m×n");
  check_shape("let A : matrix(2, 3), B : matrix(3, 4); A B", "2×4");
}
END_TEST

START_TEST(scalars_from_products) {
  /* a 1×1 result is a scalar, and x^T A x makes A square */
  check_shape("x^T A x", "1×1");
  ck_assert(md_shape_is_scalar(cur.sh, cur.out));
  ck_assert(same_dim(sym_shape("A").r, sym_shape("A").c));
  ck_assert(same_dim(sym_shape("A").r, sym_shape("x").r));
  check_shape("x^T y", "1×1");
  ck_assert(same_dim(sym_shape("x").r, sym_shape("y").r));
  /* a scalar scales anything */
  check_shape("x^T y A", "m×n");
  check_shape("alpha A", "m×n");
  check_shape("A alpha", "m×n");
  check_shape("A x alpha", "m×1");
  check_shape("A / alpha", "m×n");
  check_shape("A / (x^T x)", "m×n");
  check_shape("A .* alpha", "m×n");
  check_shape("alpha ./ x", "m×1");
  check_shape("x x^T", "m×m");
}
END_TEST

START_TEST(square_functions_unify) {
  check_shape("tr(A)", "1×1");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("A").c));
  check_shape("det(A) + logdet(B)", "1×1");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("A").c));
  ck_assert(same_dim(sym_shape("B").r, sym_shape("B").c));
  ck_assert(!same_dim(sym_shape("A").r, sym_shape("B").r));
  check_shape("inv(A)", "m×m");
  check_shape("A^-T", "m×m");
  check_shape("A^2", "m×m");
  check_shape("A^-2", "m×m");
  check_shape("diag(x)", "m×m");
  check_shape("diag(A)", "m×1");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("A").c));
  check_shape("diag(alpha)", "1×1");
}
END_TEST

START_TEST(sums_and_elementwise_unify) {
  check_shape("A + B", "m×n");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("B").r));
  ck_assert(same_dim(sym_shape("A").c, sym_shape("B").c));
  check_shape("A x + y", "m×1");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("y").r));
  check_shape("x .* y ./ z", "m×1");
  ck_assert(same_dim(sym_shape("x").r, sym_shape("z").r));
  check_shape("<A, B>", "1×1");
  ck_assert(same_dim(sym_shape("A").c, sym_shape("B").c));
  check_shape("exp(A) + log(B) .* sqrt(C)", "m×n");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("C").r));
  check_shape("A .^ 2", "m×n");
  check_shape("alpha^(1/2)", "1×1");
  check_shape("-A^T", "m×n");
}
END_TEST

START_TEST(functions_to_scalars) {
  check_shape("sum(A)", "1×1");
  check_shape("norm2(A)", "1×1");
  check_shape("||x||_1", "1×1");
  check_shape("logsumexp(A)", "1×1"); /* over all entries (fine point 8) */
  check_shape("logsumexp(x)", "1×1");
  check_shape("softmax(x)", "m×1");
  check_shape("||A x - y||^2", "1×1");
}
END_TEST

START_TEST(constants_broadcast) {
  /* a numeric constant broadcasts in + and - (fine point 4) */
  check_shape("1 - sigmoid(x)", "m×1");
  ck_assert(md_shape_is_vector(cur.sh, cur.out));
  check_shape("1 ./ (1 + exp(-x))", "m×1");
  check_shape("2 + A", "m×n");
  check_shape("A + 1/2", "m×n");
  check_shape("A - 2 3", "m×n");
  check_shape("1 + 2", "1×1");
  check_shape("x - 1 + y", "m×1");
  ck_assert(same_dim(sym_shape("x").r, sym_shape("y").r));
}
END_TEST

START_TEST(closed_terms_are_polymorphic) {
  /* each occurrence of I has sizes of its own */
  check_shape("let A : matrix(m, m), B : matrix(n, n); "
              "kron(A, I) + kron(I, B)",
              "m·n×m·n");
  check_shape("let A : matrix(m, m), B : matrix(n, n); tr(A I) + tr(I B)",
              "1×1");
  check_shape("let x : vector(m), y : vector(n); ones^T x + ones^T y", "1×1");
  check_shape("let A : matrix(m, m), B : matrix(n, n); "
              "tr(2 I A) + tr(B (2 I))",
              "1×1");
  check_shape("let A : matrix(2, 2), B : matrix(3, 3); kron(A + I, B + I)",
              "6×6");
  check_shape("x^T I x", "1×1");
  check_shape("I + A", "m×m");
  ck_assert(same_dim(sym_shape("A").r, sym_shape("A").c));
}
END_TEST

/* A size that only closed terms have fixed is generic (the rewriter lets
 * such a term take any size); once a symbol's size meets it, it is that
 * symbol's size, whichever side unification met it from. */
START_TEST(generic_sizes) {
  ck_assert(infer("sum(b) I ones"));
  ck_assert(md_dim_is_generic(cur.sh, cur.out.r));
  ck_assert(!md_dim_is_generic(cur.sh, cur.out.c));
  ck_assert(!md_dim_is_generic(cur.sh, sym_shape("b").r));
  ck_assert(infer("I x"));
  ck_assert(!md_dim_is_generic(cur.sh, cur.out.r));
  ck_assert(same_dim(cur.out.r, sym_shape("x").r));
  ck_assert(infer("x^T I"));
  ck_assert(!md_dim_is_generic(cur.sh, cur.out.c));
  ck_assert(infer("(ones ones^T + I) A"));
  ck_assert(!md_dim_is_generic(cur.sh, cur.out.r));
  ck_assert(infer("tr(ones ones^T + I)"));
  ck_assert(!md_dim_is_generic(cur.sh, cur.out.r));
}
END_TEST

START_TEST(kron_and_vec_sizes) {
  check_shape("kron(A, B)", "m·n×p·q");
  check_shape("kron(x, y)", "m·n×1");
  check_shape("x ⊗ y^T", "m×n");
  check_shape("let A : matrix(2, 3), B : matrix(4, 5); kron(A, B)", "8×15");
  check_shape("let A : matrix(2, 3), B : matrix(4, 5); A ⊗ B ⊗ A", "16×45");
  /* vec stacks columns: the column index is the outer one */
  /* (unknown sizes are named as messages show them: A is n×m) */
  check_shape("vec(A)", "m·n×1");
  check_shape("let X : matrix(2, 3); vec(X)", "6×1");
  check_shape("let X : matrix(m, n); vec(X)", "n·m×1");
  check_shape("let X : matrix(m, n); vec(X^T)", "m·n×1");
  /* products of sizes unify part by part */
  check_shape("let A : matrix(m, n), B : matrix(p, q); "
              "kron(A, B) vec(X)",
              "m·p×1");
  ck_assert_str_eq(fmt(sym_shape("X")), "q×n");
  check_shape("let X : matrix(m, n); vec(X)^T vec(Y)", "1×1");
  ck_assert_str_eq(fmt(sym_shape("Y")), "m×n");
  /* vec(A X B) = kron(B^T, A) vec(X), with every size declared */
  check_shape("let A : matrix(p, m), B : matrix(n, q), X : matrix(m, n); "
              "kron(B^T, A) vec(X) - vec(A X B)",
              "q·p×1");
  check_shape("let A : matrix(p, m), B : matrix(n, q); "
              "vec(A X B) - kron(B^T, A) vec(X)",
              "q·p×1");
  ck_assert_str_eq(fmt(sym_shape("X")), "m×n");
}
END_TEST

/* ---- derivatives: the denominator layout of SPEC 3 ---- */

START_TEST(derivative_shapes) {
  check_shape("d/dalpha alpha^2", "1×1");
  check_shape("let x : vector(n); d/dx x^T x", "n×1");
  check_shape("let X : matrix(m, n); d/dX tr(X^T X)", "m×n");
  check_shape("let y : vector(k); d/dalpha y", "1×k");
  check_shape("let y : vector(k), x : vector(n); d/dx y", "n×k");
  check_shape("let Y : matrix(p, q); d/dalpha Y", "p×q");
  check_shape("let x : vector(n); d/dx A x", "n×m");
  check_shape("let X : matrix(m, n); d/dvec(X) vec(X)", "n·m×n·m");
  check_shape("let X : matrix(m, n), A : matrix(p, m), B : matrix(n, q); "
              "d/dvec(X) vec(A X B)",
              "n·m×q·p");
  /* d/dvec(X) vec(A X B) = kron(B, A^T) (SPEC 3) */
  check_shape("let X : matrix(m, n), A : matrix(p, m), B : matrix(n, q); "
              "(d/dvec(X) vec(A X B)) - kron(B, A^T)",
              "n·m×q·p");
  check_shape("let x : vector(n); hess(x^T x, x)", "n×n");
  check_shape("hess(alpha^3, alpha)", "1×1");
  check_shape("let X : matrix(m, n); hess(tr(X^T X), vec(X))", "n·m×n·m");
  check_shape("let x : vector(n); diff(x^T x, x)", "n×1");
}
END_TEST

START_TEST(derivative_errors) {
  check_error("let x : vector(n), X : matrix(m, n); d/dX x",
              "the derivative of x (n×1) with respect to X (m×n) is a "
              "tensor; differentiate vec(...) with respect to vec(...) "
              "instead",
              38);
  check_error("let Y : matrix(p, q), x : vector(n); d/dx Y",
              "the derivative of Y (p×q) with respect to x (n×1) is a "
              "tensor; differentiate vec(...) with respect to vec(...) "
              "instead",
              38);
  check_error("d/dX Y",
              "the derivative of Y (m×n) with respect to X (p×q) is a "
              "tensor; differentiate vec(...) with respect to vec(...) "
              "instead",
              1);
  check_error("let y : vector(n); hess(y, x)",
              "hess needs a scalar function, not y (n×1)", 25);
  check_error("hess(tr(X), X)",
              "hess needs a scalar or vector variable, not X (m×m); use "
              "hess(f, vec(X))",
              1);
}
END_TEST

/* ---- conflicts ---- */

START_TEST(rigid_sizes_conflict) {
  /* declared names are different sizes (fine point 9) */
  check_error("let x : vector(m), y : vector(n); x + y",
              "cannot add x (m×1) and y (n×1)", 39);
  check_error("let x : vector(3), y : vector(4); x + y",
              "cannot add x (3×1) and y (4×1)", 39);
  check_error("let A : matrix(m, n), x : vector(p); A x",
              "cannot multiply A (m×n) by x (p×1) when n ≠ p", 40);
  /* one node, one place: the caret is at the first A */
  check_error("let A : matrix(m, n); A A",
              "cannot multiply A (m×n) by A (m×n) when n ≠ m", 23);
  check_error("let A : matrix(2, 3); A A",
              "cannot multiply A (2×3) by A (2×3) when 3 ≠ 2", 23);
  check_error("let A : matrix(m, n), B : matrix(m, n), C : matrix(m, n); "
              "A^T B + C",
              "cannot add A^T B (n×n) and C (m×n)", 67);
  /* the left operand of a failed product is the whole chain so far */
  check_error("let A : matrix(m, n), B : matrix(n, p), C : matrix(q, m); "
              "A B C",
              "cannot multiply A B (m×p) by C (q×m) when p ≠ q", 63);
}
END_TEST

START_TEST(unknown_sizes_conflict) {
  check_error("x y", "cannot multiply x (m×1) by y (n×1) when 1 ≠ n", 3);
  check_error("x^T + y", "cannot add x^T (1×m) and y (n×1)", 7);
  check_error("let A : matrix(m, n); x x^T + A",
              "cannot add x x^T (m×m) and A (m×n)", 31);
  check_error("let A : matrix(m, n); I + A", "cannot add I (m×m) and A (m×n)",
              27);
  check_error("P x .* Q x",
              "cannot multiply element-wise P x (m×1) and Q (m×n)", 8);
  check_error("x ./ A", "cannot divide element-wise x (m×1) and A (m×n)", 6);
  check_error("<x, A>",
              "cannot take the inner product of x (m×1) and A "
              "(m×n)",
              5);
}
END_TEST

START_TEST(scalars_do_not_broadcast) {
  check_error("let s : scalar; s + A",
              "cannot add s (scalar) and A (m×n): only a number broadcasts; "
              "write s I or s ones for a scalar s",
              21);
  check_error("alpha + x",
              "cannot add alpha (scalar) and x (m×1): only a number "
              "broadcasts; write s I or s ones for a scalar s",
              9);
  check_error("x - alpha",
              "cannot add x (m×1) and - alpha (scalar): only a number "
              "broadcasts; write s I or s ones for a scalar s",
              3);
  check_error("let A : matrix(m, n); x^T x + A",
              "cannot add x^T x (scalar) and A (m×n): only a number "
              "broadcasts; write s I or s ones for a scalar s",
              31);
  /* ... but s I and s ones are fine */
  check_shape("let s : scalar; s I + A", "m×m");
  check_shape("let s : scalar; s ones + x", "m×1");
}
END_TEST

/* Exponents may be symbols or expressions, but they must be scalars, and
 * a matrix power needs an integer. */
START_TEST(exponents) {
  check_error("A^(x)", "an exponent must be a scalar, not x (m×1)", 4);
  check_error("A ^ T", "an exponent must be a scalar, not T (m×n)", 5);
  check_error("A .^ (y)", "an exponent must be a scalar, not y (m×1)", 7);
  check_error("A^beta",
              "the power of a matrix needs an integer exponent; A (m×n) is "
              "not a scalar (for element-wise powers use .^)",
              1);
  /* an integer, too large: not "needs an integer exponent" */
  const char *big = "the exponent of a matrix power is too large (at most "
                    "9223372036854775807 in magnitude)";
  check_error("X^9223372036854775808", big, 1);
  check_error("X^-9223372036854775808", big, 1);
  check_error("X^1e19", big, 1);
  check_shape("X^9223372036854775807", "m×m");
  check_shape("X^-9223372036854775807", "m×m");
}
END_TEST

START_TEST(not_square) {
  check_error("let A : matrix(m, n); det(A)",
              "det needs a square matrix, not A (m×n)", 27);
  check_error("let A : matrix(m, n); tr(A)",
              "tr needs a square matrix, not A (m×n)", 26);
  check_error("let A : matrix(m, n); logdet(A)",
              "logdet needs a square matrix, not A (m×n)", 30);
  check_error("let A : matrix(m, n); inv(A)",
              "cannot invert A (m×n): it is not square", 23);
  check_error("let A : matrix(m, n); A^-1",
              "cannot invert A (m×n): it is not square", 23);
  check_error("let A : matrix(m, n); A^2",
              "cannot raise A (m×n) to a power: it is not square (for an "
              "element-wise power use .^)",
              23);
  check_error("let A : matrix(m, n); diag(A)",
              "diag needs a vector or a square matrix, not A (m×n)", 28);
  check_error("tr(x)", "tr needs a square matrix, not x (m×1)", 4);
  check_error("x^-1", "cannot invert x (m×1): it is not square", 1);
  check_error("A^(1/2)",
              "the power of a matrix needs an integer exponent; A (m×n) is "
              "not a scalar (for element-wise powers use .^)",
              1);
}
END_TEST

START_TEST(other_errors) {
  check_error("softmax(A)", "softmax needs a vector, not A (m×n)", 9);
  check_error("softmax(alpha)", "softmax needs a vector, not alpha (scalar)",
              9);
  check_error("let x : vector(n); softmax(x x^T)",
              "softmax needs a vector, not x x^T (n×n)", 28);
  check_error("A / x",
              "can only divide by a scalar, not by x (m×1); use ./ to divide "
              "element-wise",
              5);
  check_error("A / 0", "division by zero", 5);
  check_error("x ./ 0", "division by zero", 6);
}
END_TEST

START_TEST(derive_after_inference) {
  check_shape("A x", "m×1");
  /* a node built later, from inferred parts */
  expr *a = expr_sym(tu_ctx, "A"), *x = expr_sym(tu_ctx, "x");
  expr *t = expr_trans(tu_ctx, expr_mul(tu_ctx, a, x));
  ck_assert(md_shape_derive(cur.sh, t));
  ck_assert(md_shape_known(cur.sh, t));
  ck_assert_str_eq(fmt(md_shape_of(cur.sh, t)), "1×m");
  expr *bad = expr_add(tu_ctx, x, a);
  ck_assert(!md_shape_derive(cur.sh, bad));
  ck_assert(!md_shape_known(cur.sh, bad));
}
END_TEST

START_TEST(format) {
  char buf[64];
  check_shape("let A : matrix(m, n); A", "m×n");
  md_shape_format(cur.sh, cur.out, buf, sizeof buf);
  ck_assert_str_eq(buf, "m×n");
  /* a small buffer is cut, not overrun */
  memset(buf, 'z', sizeof buf);
  md_shape_format(cur.sh, cur.out, buf, 3);
  ck_assert_uint_lt(strlen(buf), 3);
  ck_assert_int_eq(buf[3], 'z');
  check_shape("let S : spd(3); S", "3×3");
  check_shape("let X : matrix(p, q); vec(X)", "q·p×1");
}
END_TEST

/* ---- towers: sizes whose tree is exponential in their DAG ---- */

/* "TOP where t1 = kron(V, V), t2 = kron(vec(t1), vec(t1)), ..." up to tN
 * (and the same for s over W when W is not NULL): rows of t_k are the
 * rows of t_{k-1} squared, a product of 2^k sizes in k dimensions. */
static char *tower(const char *top, int n, const char *v, const char *w) {
  strbuf b;
  sb_init(&b);
  sb_printf(&b, "%s where t1 = kron(%s, %s)", top, v, v);
  for (int i = 2; i <= n; i++)
    sb_printf(&b, ", t%d = kron(vec(t%d), vec(t%d))", i, i - 1, i - 1);
  if (w) {
    sb_printf(&b, ", s1 = kron(%s, %s)", w, w);
    for (int i = 2; i <= n; i++)
      sb_printf(&b, ", s%d = kron(vec(s%d), vec(s%d))", i, i - 1, i - 1);
  }
  return sb_take(&b);
}

/* Unifying two towers of 2^40 factors, the occurs check in one, a
 * message about one, and copying a closed one: each a walk over the DAG
 * of sizes (they recursed over the tree: 2^40 steps). */
START_TEST(towers_of_sizes) {
  char *t = tower("t40 + s40", 40, "x", "y");
  ck_assert_msg(infer(t), "%s", cur.msg);
  ck_assert(same_dim(sym_shape("x").r, sym_shape("y").r));
  free(t);

  /* n = n^(2^40) only if n = 1, which an unknown size never is */
  t = tower("t40 + x", 40, "x", NULL);
  ck_assert(!infer(t));
  ck_assert_str_eq(cur.msg, "cannot add kron(vec(kron(vec(kron(vec(kron(vec("
                            "kron(vec... (m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·"
                            "m·m…×1) and x (m×1)");
  free(t);

  t = tower("t40 + A", 40, "x", NULL);
  ck_assert(!infer(t));
  ck_assert(strstr(cur.msg, "m…×1) and A (m·m·"));
  ck_assert_uint_lt(strlen(cur.msg), 400);
  free(t);

  /* a closed tower gets fresh sizes at each use: 2^k of them, all
   * independent, which no walk can spare; past MD_MAX_DIMS, an error */
  t = tower("t16 + t16 + ones", 16, "ones", NULL);
  ck_assert_msg(infer(t), "%s", cur.msg);
  free(t);
  t = tower("t40 + t40 + ones", 40, "ones", NULL);
  reset();
  md_env_init(&cur.env);
  md_errors_init(&cur.err);
  cur.src = (md_source){"<test>", t, strlen(t), 1};
  ck_assert(md_parse(tu_ctx, &cur.src, MD_PARSE_PROGRAM, &cur.p, &cur.err));
  cur.sh = md_shapes_new(tu_ctx, &cur.env);
  ck_assert(!md_shape_infer(cur.sh, cur.p.stmts[0].lhs, &cur.p, &cur.src,
                            &cur.err, NULL));
  ck_assert(md_shapes_full(cur.sh));
  ck_assert_str_eq(cur.err.v[0].msg,
                   "too many sizes to infer (more than 4194304)");
  free(t);
}
END_TEST

/* A flat Kronecker product of n factors: its size is a balanced product,
 * log n deep (a chain n deep overflowed the stack of every walk). */
START_TEST(wide_kron) {
  enum { N = 1 << 17 };
  strbuf b;
  sb_init(&b);
  sb_puts(&b, "x");
  for (int i = 1; i < N; i++)
    sb_puts(&b, " ⊗ x");
  /* y^8 = x^(2^17): y is x^(2^14) */
  sb_puts(&b, " + y ⊗ y ⊗ y ⊗ y ⊗ y ⊗ y ⊗ y ⊗ y");
  ck_assert_msg(infer(b.s), "%s", cur.msg);
  sb_puts(&b, " + A");
  ck_assert_msg(!infer(b.s), "inferred");
  ck_assert_msg(strstr(cur.msg, " (m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m…×1) "
                                "and A (m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·m·"
                                "m…×n)"),
                "%s", cur.msg);
  sb_clear(&b);

  md_dim v[16];
  size_t n = 0;
  check_shape("x ⊗ x ⊗ x ⊗ x", "m·m·m·m×1");
  ck_assert(md_dim_factors(cur.sh, cur.out.r, v, &n, 16));
  ck_assert_uint_eq(n, 4);
  n = 0;
  ck_assert(!md_dim_factors(cur.sh, cur.out.r, v, &n, 3));
}
END_TEST

static void teardown(void) {
  reset();
}

static Suite *shape_suite(void) {
  Suite *s = suite_create("shape");
  TCase *tc = tu_tcase(s, "kinds");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, default_kinds);
  tcase_add_test(tc, default_shapes);
  tcase_add_test(tc, declarations);
  tc = tu_tcase(s, "unification");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, products_unify);
  tcase_add_test(tc, scalars_from_products);
  tcase_add_test(tc, square_functions_unify);
  tcase_add_test(tc, sums_and_elementwise_unify);
  tcase_add_test(tc, functions_to_scalars);
  tcase_add_test(tc, constants_broadcast);
  tcase_add_test(tc, closed_terms_are_polymorphic);
  tcase_add_test(tc, generic_sizes);
  tcase_add_test(tc, kron_and_vec_sizes);
  tcase_add_test(tc, derivative_shapes);
  tcase_add_test(tc, derive_after_inference);
  tcase_add_test(tc, format);
  tcase_add_test(tc, towers_of_sizes);
  tcase_add_test(tc, wide_kron);
  tc = tu_tcase(s, "errors");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, derivative_errors);
  tcase_add_test(tc, rigid_sizes_conflict);
  tcase_add_test(tc, unknown_sizes_conflict);
  tcase_add_test(tc, scalars_do_not_broadcast);
  tcase_add_test(tc, not_square);
  tcase_add_test(tc, exponents);
  tcase_add_test(tc, other_errors);
  return s;
}

int main(void) {
  return tu_run(shape_suite());
}
