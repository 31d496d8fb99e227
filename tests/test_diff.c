/*
 * test_diff.c - md_derivative and md_hessian (diff.h): one test case per
 * rule group of rules/derivatives.rules, the layout table of SPEC 3
 * (gradients, Jacobians in denominator layout, a matrix by a scalar,
 * Hessians, d/dvec(X) in Kronecker form, vec(...) inside a scalar),
 * symmetric variables in both conventions, and the errors that must
 * stop the engine rather than let it guess.
 *
 * Each positive case asserts two things: the simplified result prints
 * exactly as expected, and the identity "diff(f, x) = result" passes
 * md_check_text, the checker of --verify, which evaluates the left side
 * with dual numbers at random rational points and never calls the
 * engine.  The last test case shows that the checker refutes wrong
 * answers, so the second assertion can fail.
 *
 * Run one case alone, leak-checked:
 *   CK_FORK=no CK_RUN_CASE=hessian valgrind --leak-check=full \
 *     build/tests/test_diff
 */
#include "testutil.h"

#include "checker.h"
#include "diff.h"
#include "driver.h"
#include "print_text.h"
#include "rules.h"
#include "shape.h"
#include "simplify.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What is asked of the engine. */
typedef enum ask {
  GRAD,     /* md_derivative, symmetric variables as (G + G^T)/2 */
  COOKBOOK, /* md_derivative, symmetric variables as G + G^T - G .* I */
  HESS,     /* md_hessian */
} ask;

/* One derivative set up as the CLI sets it up (driver.c, run_expr and
 * run_diff): the built-in rules, the declarations of the text, the
 * shapes of f and of the variable, errors placed in the text. */
typedef struct diff_case {
  char text[512]; /* "let ...; f", the source errors point into */
  md_source src;
  md_parsed p;
  md_env env;
  md_rules rules;
  md_errors err;
  md_shapes *sh;
  md_diff D;
  expr *f, *x;
} diff_case;

/* F (after the declarations DECLS, "" for none) to be differentiated by
 * WRT, a symbol or vec(symbol). */
static void case_open(diff_case *t, const char *decls, const char *f,
                      const char *wrt, ask a) {
  snprintf(t->text, sizeof t->text, "%s%s%s", decls, *decls ? "; " : "", f);
  t->src = (md_source){"<test>", t->text, strlen(t->text), 1};
  md_env_init(&t->env);
  md_rules_init(&t->rules);
  md_errors_init(&t->err);
  bool ok = md_rules_load_builtin(&t->rules, tu_ctx, &t->err);
  ck_assert_msg(ok, "the built-in rules do not load");
  ok = md_parse(tu_ctx, &t->src, MD_PARSE_PROGRAM, &t->p, &t->err);
  ck_assert_msg(ok, "'%s' does not parse: %s", t->text,
                t->err.n ? t->err.v[0].msg : "");
  for (size_t i = 0; i + 1 < t->p.n; i++)
    for (size_t k = 0; k < t->p.stmts[i].ndecls; k++)
      md_env_add(&t->env, &t->p.stmts[i].decls[k]);
  t->f = t->p.stmts[t->p.n - 1].lhs;
  ck_assert_ptr_nonnull(t->f);
  t->x = tu_parse(wrt);
  t->sh = md_shapes_new(tu_ctx, &t->env);
  ok = md_shape_infer(t->sh, t->f, &t->p, &t->src, &t->err, NULL) &&
       md_shape_infer(t->sh, t->x, NULL, NULL, &t->err, NULL);
  ck_assert_msg(ok, "'%s' by %s: shape error: %s", t->text, wrt,
                t->err.n ? t->err.v[0].msg : "");
  t->D =
      (md_diff){.ctx = tu_ctx,
                .rules = &t->rules,
                .shapes = t->sh,
                .env = &t->env,
                .symmetric = a == COOKBOOK ? MD_SYM_COOKBOOK : MD_SYM_FROBENIUS,
                .src = &t->src,
                .locs = &t->p,
                .err = &t->err};
}

static void case_close(diff_case *t) {
  md_diff_clear(&t->D);
  md_shapes_free(t->sh);
  md_parsed_clear(&t->p);
  md_errors_clear(&t->err);
  md_rules_clear(&t->rules);
  md_env_clear(&t->env);
}

static expr *run(diff_case *t, ask a) {
  return a == HESS ? md_hessian(&t->D, t->f, t->x)
                   : md_derivative(&t->D, t->f, t->x);
}

/* The checker's verdict on "DECLS \n LHS = RHS": 0 when the identity
 * passes; else non-zero, with the checker's report in *REPORT (freed by
 * the caller; NULL when there is none). */
static int verify(const char *decls, const char *lhs, const char *rhs,
                  char **report) {
  strbuf b;
  sb_init(&b);
  sb_printf(&b, "%s\n%s = %s\n", decls, lhs, rhs);
  char *buf = NULL;
  size_t len = 0;
  FILE *err = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(err);
  int rc = md_check_text("<test>", b.s, b.len, err);
  fclose(err);
  sb_clear(&b);
  if (rc == 0) {
    free(buf);
    buf = NULL;
  }
  *report = buf;
  return rc;
}

/* The left side the checker evaluates for A: the derivative in the
 * Frobenius convention F, and for the Cookbook's G + G^T - G .* I the
 * same from F = (G + G^T)/2, which has G's diagonal: 2 F - F .* I. */
static void lhs_text(char *buf, size_t size, const char *f, const char *wrt,
                     ask a) {
  if (a == HESS)
    snprintf(buf, size, "hess(%s, %s)", f, wrt);
  else if (a == COOKBOOK)
    snprintf(buf, size, "2 diff(%s, %s) - diff(%s, %s) .* I", f, wrt, f, wrt);
  else
    snprintf(buf, size, "diff(%s, %s)", f, wrt);
}

/* d/dWRT F (as A asks) simplifies to the text WANT, and the checker
 * verifies it independently of the engine. */
static void check_ask(const char *decls, const char *f, const char *wrt, ask a,
                      const char *want) {
  diff_case t;
  case_open(&t, decls, f, wrt, a);
  expr *r = run(&t, a);
  ck_assert_msg(r, "'%s' by %s: %s", t.text, wrt,
                t.err.n ? t.err.v[0].msg : "no result and no error");
  md_shape_derive(t.sh, r);
  expr *s = md_simplify(tu_ctx, t.sh, r);
  ck_assert_ptr_nonnull(s);
  char *got = md_print_text_alloc(tu_ctx, s);
  case_close(&t);
  ck_assert_msg(strcmp(got, want) == 0, "'%s' by %s gave\n  %s\nexpected\n  %s",
                t.text, wrt, got, want);
  char lhs[600], *report;
  lhs_text(lhs, sizeof lhs, f, wrt, a);
  int rc = verify(decls, lhs, got, &report);
  ck_assert_msg(rc == 0, "the checker refutes %s = %s:\n%s", lhs, got,
                report ? report : "");
  free(got);
}

static void check_diff(const char *decls, const char *f, const char *wrt,
                       const char *want) {
  check_ask(decls, f, wrt, GRAD, want);
}

static void check_hessian(const char *decls, const char *f, const char *wrt,
                          const char *want) {
  check_ask(decls, f, wrt, HESS, want);
}

/* The engine refuses: no result, and a first error that says PHRASE. */
static void check_refused(const char *decls, const char *f, const char *wrt,
                          ask a, const char *phrase) {
  diff_case t;
  case_open(&t, decls, f, wrt, a);
  expr *r = run(&t, a);
  ck_assert_msg(!r, "'%s' by %s gave %s, expected an error", t.text, wrt,
                tu_print(r));
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", t.err.n ? t.err.v[0].msg : "(none)");
  case_close(&t);
  ck_assert_msg(strstr(msg, phrase), "'%s' by %s: error\n  %s\nwithout \"%s\"",
                f, wrt, msg, phrase);
}

/* ---- rules/derivatives.rules, group by group ---- */

START_TEST(products) {
  check_diff("", "x^T A x", "x", "(A + A^T) x");
  check_diff("", "a^T X b", "X", "a b^T");
  /* d/ds <G, A s B> = <G, A B> */
  check_diff("", "tr(alpha A B)", "alpha", "tr(A B)");
}
END_TEST

START_TEST(sums_negation) {
  check_diff("", "a^T x + b^T x", "x", "a + b");
  check_diff("", "-(a^T x)", "x", "-a");
  check_diff("", "a^T (x + y + z)", "y", "a");
}
END_TEST

START_TEST(transpose) {
  check_diff("", "tr(A X^T B)", "X", "B A");
  check_diff("", "a^T X^T b", "X", "b a^T");
}
END_TEST

START_TEST(inverse_power) {
  check_diff("", "tr(inv(X) A)", "X", "-(X^-1 A X^-1)^T");
  /* X^2 is X X to the engine */
  check_diff("", "tr(X^2)", "X", "2 X^T");
  check_diff("", "alpha^3", "alpha", "3 alpha^2");
}
END_TEST

START_TEST(trace_det) {
  check_diff("", "tr(X)", "X", "I");
  check_diff("", "det(X)", "X", "det(X) X^-T");
  check_diff("", "logdet(X)", "X", "X^-T");
}
END_TEST

START_TEST(hadamard) {
  check_diff("", "sum(A .* X .* B)", "X", "A .* B");
  check_diff("", "sum(A ./ X)", "X", "-A ./ X .^ 2");
  check_diff("", "sum(x .^ 3)", "x", "3 x .^ 2");
}
END_TEST

START_TEST(elementwise) {
  check_diff("", "sum(exp(x))", "x", "exp(x)");
  check_diff("", "a^T log(x)", "x", "a ./ x");
  check_diff("", "a^T sqrt(x)", "x", "a ./ (2 sqrt(x))");
  check_diff("", "sum(sin(x))", "x", "cos(x)");
  check_diff("", "sum(cos(x))", "x", "-sin(x)");
  check_diff("", "a^T tan(x)", "x", "a ./ cos(x) .^ 2");
  check_diff("", "sum(tanh(x))", "x", "1 - tanh(x) .^ 2");
  check_diff("", "sum(abs(x))", "x", "sign(x)");
  /* a zero, but one that a rule gave: never a silent one */
  check_diff("", "sum(sign(x))", "x", "0");
  check_diff("", "sum(step(x))", "x", "0");
  check_diff("", "sum(relu(x))", "x", "step(x)");
  /* relu's derivative meets relu: 2 relu(z) .* step(z) is 2 relu(z) */
  check_diff("", "sum(relu(x) .^ 2)", "x", "2 relu(x)");
  check_diff("", "c^T relu(M v)", "v", "M^T (c .* step(M v))");
  /* sigmoid and softplus: rules/functions.rules */
  check_diff("", "sum(sigmoid(x))", "x", "sigmoid(x) .* (1 - sigmoid(x))");
  check_diff("", "sum(softplus(x))", "x", "sigmoid(x)");
}
END_TEST

START_TEST(diag_vec_sum) {
  check_diff("", "tr(A diag(x))", "x", "diag(A)");
  check_diff("", "a^T diag(X)", "X", "diag(a)");
  check_diff("", "sum(X)", "X", "ones ones^T");
  /* vec(X) has no rule: its gradient passes into X through its matrix
   * form */
  check_diff("", "vec(A)^T vec(X)", "X", "A");
}
END_TEST

/* With a vector on one side a Kronecker product is an ordinary product. */
START_TEST(kron_vector) {
  check_diff("", "sum(kron(X, b))", "X", "sum(b) ones ones^T");
  check_diff("", "c^T kron(a, X) d", "X", "kron(a^T, I) c d^T");
}
END_TEST

START_TEST(norms) {
  check_diff("", "norm2(x)", "x", "x / ||x||");
  check_diff("", "norm1(x)", "x", "sign(x)");
  check_diff("", "||A x - y||_2^2", "x", "2 A^T (A x - y)");
}
END_TEST

START_TEST(softmax_logsumexp) {
  check_diff("", "logsumexp(x)", "x", "softmax(x)");
  /* d/dv <h, softmax(v)>, read off as the Jacobian */
  check_diff("", "softmax(x)", "x",
             "diag(softmax(x)) - softmax(x) softmax(x)^T");
}
END_TEST

START_TEST(inner_product) {
  check_diff("", "<A, X>", "X", "A");
  check_diff("", "<X, X>", "X", "2 X");
}
END_TEST

/* ---- the layout table of SPEC 3 ---- */

START_TEST(scalar_by) {
  check_diff("", "sin(alpha)", "alpha", "cos(alpha)");
  check_diff("", "x^T a", "x", "a");
  check_diff("", "tr(X^T A X)", "X", "(A + A^T) X");
}
END_TEST

/* a 1×k row */
START_TEST(vector_by_scalar) {
  check_diff("", "alpha x", "alpha", "x^T");
}
END_TEST

/* n×k, entry (i, j) = d y_j / d x_i */
START_TEST(jacobian) {
  check_diff("", "A x", "x", "A^T");
  check_diff("", "tanh(A x)", "x", "A^T diag(1 - tanh(A x) .^ 2)");
}
END_TEST

START_TEST(matrix_by_scalar) {
  check_diff("", "alpha^2 A", "alpha", "2 alpha A");
}
END_TEST

START_TEST(hessian) {
  check_hessian("", "||A x - y||^2", "x", "2 A^T A");
  check_hessian("", "sum(exp(x))", "x", "diag(exp(x))");
  /* of a scalar by a scalar, the second derivative */
  check_hessian("", "alpha^3", "alpha", "6 alpha");
}
END_TEST

START_TEST(vec_kronecker) {
  check_diff("", "vec(A X B)", "vec(X)", "kron(B, A^T)");
  check_diff("", "vec(inv(X))", "vec(X)", "-kron(X^-1, X^-T)");
  check_diff("", "vec(X .* B)", "vec(X)", "diag(vec(B))");
}
END_TEST

START_TEST(vec_in_scalar) {
  check_diff("", "tr(X^T A X)", "vec(X)", "vec((A + A^T) X)");
  check_diff("", "a^T vec(X)", "vec(X)", "a");
}
END_TEST

/* ---- symmetric variables ---- */

START_TEST(symmetric_frobenius) {
  check_diff("let S : symmetric(n)", "tr(A S)", "S", "1/2 (A + A^T)");
  check_diff("let A : symmetric(n)", "x^T A x", "x", "2 A x");
}
END_TEST

START_TEST(symmetric_cookbook) {
  check_ask("let S : symmetric(n)", "tr(A S)", "S", COOKBOOK,
            "A + A^T - A .* I");
  check_ask("let S : spd(n)", "logdet(S)", "S", COOKBOOK, "2 S^-1 - I .* S^-1");
}
END_TEST

/* ---- what the engine must refuse ---- */

START_TEST(errors) {
  check_refused("", "A X B", "X", GRAD, "is a tensor");
  check_refused("", "sum(kron(X, A))", "X", GRAD,
                "with a matrix on the other side");
  check_refused("", "a^T vec(X)", "X", GRAD, "differentiate by vec(X) instead");
  check_refused("", "tr(X^100)", "X", GRAD, "more than 64 factors");
  check_refused("", "tr(X^T X)", "X", HESS, "is a tensor");
}
END_TEST

/* At the depth limit the simplifier gives up: that is an error, never
 * the derivative as the rules wrote it, in forms no output shows
 * (t22 = 1 ones .* sin(t20) .* t21 + 3^T (...) was printed).  The chain
 * of t_k = log(1 + t .* t) + t / 3 has a derivative 44 levels deep whose
 * simplification needs 48 (sin(3 t) .* exp(t), used until the adjoint
 * of each level became one factor, no longer needs more than its
 * derivative). */
START_TEST(too_deep_to_simplify) {
  const char *f = "sum(t8) where t1 = x, t2 = log(1 + t1 .* t1) + t1 / 3, "
                  "t3 = log(1 + t2 .* t2) + t2 / 3, "
                  "t4 = log(1 + t3 .* t3) + t3 / 3, "
                  "t5 = log(1 + t4 .* t4) + t4 / 3, "
                  "t6 = log(1 + t5 .* t5) + t5 / 3, "
                  "t7 = log(1 + t6 .* t6) + t6 / 3, "
                  "t8 = log(1 + t7 .* t7) + t7 / 3";
  const char *wrt[] = {"x"};
  md_options o = {.wrt = wrt, .nwrt = 1};
  for (int depth = 46; depth <= 48; depth++) {
    char knob[16], *out = NULL, *msg = NULL;
    size_t nout = 0, nmsg = 0;
    snprintf(knob, sizeof knob, "%d", depth);
    setenv("MATDIFF_MAX_DEPTH", knob, 1);
    FILE *fo = open_memstream(&out, &nout), *fe = open_memstream(&msg, &nmsg);
    int rc = md_cmd_diff(&o, f, fo, fe);
    fclose(fo);
    fclose(fe);
    unsetenv("MATDIFF_MAX_DEPTH");
    if (depth < 48) {
      ck_assert_int_eq(rc, 2);
      ck_assert_str_eq(out, "");
      char want[160];
      snprintf(want, sizeof want,
               "matdiff: <expr>: error: cannot simplify the derivative: it "
               "is nested too deeply (more than %d levels)\n",
               depth);
      ck_assert_str_eq(msg, want);
    } else {
      ck_assert_int_eq(rc, 0);
      ck_assert_msg(!strstr(out, "1 ones") && !strstr(out, "3^T"), "%s", out);
    }
    free(out);
    free(msg);
  }
}
END_TEST

/* The second assertion of each case can fail: the checker refutes a
 * gradient that misses a transpose and a Kronecker form with its
 * factors transposed. */
START_TEST(checker_refutes) {
  char *report;
  int rc = verify("", "diff(x^T A x, x)", "2 A x", &report);
  ck_assert_msg(rc == 1 && report && strstr(report, "FALSE"),
                "d/dx x^T A x = 2 A x not refuted (%d)", rc);
  free(report);
  rc = verify("", "diff(vec(A X B), vec(X))", "kron(B^T, A)", &report);
  ck_assert_msg(rc == 1 && report && strstr(report, "FALSE"),
                "d/dvec(X) vec(A X B) = kron(B^T, A) not refuted (%d)", rc);
  free(report);
}
END_TEST

static Suite *diff_suite(void) {
  Suite *s = suite_create("diff");
  tcase_add_test(tu_tcase(s, "products"), products);
  tcase_add_test(tu_tcase(s, "sums_negation"), sums_negation);
  tcase_add_test(tu_tcase(s, "transpose"), transpose);
  tcase_add_test(tu_tcase(s, "inverse_power"), inverse_power);
  tcase_add_test(tu_tcase(s, "trace_det"), trace_det);
  tcase_add_test(tu_tcase(s, "hadamard"), hadamard);
  tcase_add_test(tu_tcase(s, "elementwise"), elementwise);
  tcase_add_test(tu_tcase(s, "diag_vec_sum"), diag_vec_sum);
  tcase_add_test(tu_tcase(s, "kron_vector"), kron_vector);
  tcase_add_test(tu_tcase(s, "norms"), norms);
  tcase_add_test(tu_tcase(s, "softmax_logsumexp"), softmax_logsumexp);
  tcase_add_test(tu_tcase(s, "inner_product"), inner_product);
  tcase_add_test(tu_tcase(s, "scalar_by"), scalar_by);
  tcase_add_test(tu_tcase(s, "vector_by_scalar"), vector_by_scalar);
  tcase_add_test(tu_tcase(s, "jacobian"), jacobian);
  tcase_add_test(tu_tcase(s, "matrix_by_scalar"), matrix_by_scalar);
  tcase_add_test(tu_tcase(s, "hessian"), hessian);
  tcase_add_test(tu_tcase(s, "vec_kronecker"), vec_kronecker);
  tcase_add_test(tu_tcase(s, "vec_in_scalar"), vec_in_scalar);
  tcase_add_test(tu_tcase(s, "symmetric_frobenius"), symmetric_frobenius);
  tcase_add_test(tu_tcase(s, "symmetric_cookbook"), symmetric_cookbook);
  tcase_add_test(tu_tcase(s, "errors"), errors);
  tcase_add_test(tu_tcase(s, "too_deep_to_simplify"), too_deep_to_simplify);
  tcase_add_test(tu_tcase(s, "checker_refutes"), checker_refutes);
  return s;
}

int main(void) {
  return tu_run(diff_suite());
}
