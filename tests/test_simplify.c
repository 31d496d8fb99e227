/*
 * test_simplify.c - md_simplify on parsed, shape-inferred expressions: the
 * obvious identities, exact rational coefficients, term order, and that
 * simplifying twice changes nothing.
 */
#include "testutil.h"

#include "print_text.h"
#include "shape.h"
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

/* Simplifies the last statement of TEXT ("let ...; EXPR") and returns
 * the result.  The declarations go into ENV; *SHAPES_OUT receives the
 * inference, which the caller frees (md_shapes_free, then md_env_clear). */
static expr *simplify_in(const char *text, md_shapes **shapes_out,
                         md_env *env) {
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text, err.n ? err.v[0].msg : "");
  for (size_t i = 0; i + 1 < p.n; i++)
    for (size_t k = 0; k < p.stmts[i].ndecls; k++)
      md_env_add(env, &p.stmts[i].decls[k]);
  expr *e = p.stmts[p.n - 1].lhs;
  ck_assert_ptr_nonnull(e);
  md_shapes *sh = md_shapes_new(tu_ctx, env);
  ok = md_shape_infer(sh, e, &p, &src, &err, NULL);
  char msg[512] = "";
  if (err.n)
    snprintf(msg, sizeof msg, "%s", err.v[0].msg);
  md_errors_clear(&err);
  md_parsed_clear(&p);
  if (!ok) {
    md_shapes_free(sh);
    ck_abort_msg("'%s': shape error: %s", text, msg);
  }
  expr *r = md_simplify(tu_ctx, sh, e);
  ck_assert_ptr_nonnull(r);
  /* every node the simplifier returns has a shape */
  ck_assert_msg(md_shape_known(sh, r), "'%s': result %s has no shape", text,
                tu_print(r));
  *shapes_out = sh;
  return r;
}

/* TEXT simplifies to WANT, and simplifying that changes nothing. */
static void check_simplify(const char *text, const char *want) {
  md_env env;
  md_env_init(&env);
  md_shapes *sh;
  expr *r = simplify_in(text, &sh, &env);
  const char *got = tu_print(r);
  bool match = strcmp(got, want) == 0;
  expr *again = md_simplify(tu_ctx, sh, r);
  md_shapes_free(sh);
  md_env_clear(&env);
  ck_assert_msg(match, "'%s' simplified to \"%s\", expected \"%s\"", text, got,
                want);
  ck_assert_msg(again == r, "'%s': simplifying %s again gives %s", text,
                tu_print(r), tu_print(again));
}

START_TEST(transpose) {
  check_simplify("(A^T)^T", "A");
  check_simplify("A^T^T^T", "A^T");
  check_simplify("((A B)^T)^T", "A B");
  check_simplify("I^T", "I");
  check_simplify("2^T", "2");
  /* a scalar is its own transpose */
  check_simplify("(x^T y)^T", "x^T y");
  check_simplify("alpha^T", "alpha");
  check_simplify("(x^T A x)^T + x^T A x", "2 x^T A x");
  /* a vector is not */
  check_simplify("x^T", "x^T");
  check_simplify("tr(A^T)", "tr(A)");
}
END_TEST

START_TEST(identity) {
  check_simplify("A I", "A");
  check_simplify("I A", "A");
  check_simplify("A I B", "A B");
  check_simplify("I x", "x");
  check_simplify("I I", "I");
  check_simplify("2 I I", "2 I");
  /* s I is a matrix: the I stays when only scalars remain */
  check_simplify("let s : scalar; s I", "s I");
  check_simplify("alpha I", "alpha I");
  check_simplify("alpha I + A", "alpha I + A");
  check_simplify("x^T y I", "x^T y I");
  check_simplify("x^T y I + A", "x^T y I + A");
  check_simplify("x^T I y", "x^T y");
  check_simplify("alpha I A", "alpha A");
  check_simplify("A alpha I", "A alpha");
  check_simplify("inv(I)", "I");
  check_simplify("I^5", "I");
  check_simplify("det(I)", "1");
  check_simplify("logdet(I)", "0");
  check_simplify("x^T I x", "x^T x");
}
END_TEST

START_TEST(sums) {
  check_simplify("0 + A", "A");
  check_simplify("A + 0", "A");
  check_simplify("x + x", "2 x");
  check_simplify("x - x", "0");
  check_simplify("x + x + x", "3 x");
  check_simplify("2 x - 3 x", "-x");
  check_simplify("A - 2 A", "-A");
  check_simplify("-2 A + 2 A", "0");
  check_simplify("1/2 A + 1/3 A", "5/6 A");
  check_simplify("0.5 x - 1/4 x", "1/4 x");
  check_simplify("x^T x / 2 + x^T x / 2", "x^T x");
  check_simplify("-(-x) + x", "2 x");
  check_simplify("1 + 2", "3");
  check_simplify("1/3 + 1/6", "1/2");
  check_simplify("x + 1 + 2", "x + 3");
  check_simplify("0 x + y", "y");
  check_simplify("A B + A B", "2 A B");
  check_simplify("x^T A x - x^T A x + alpha", "alpha");
}
END_TEST

START_TEST(term_order_is_kept) {
  check_simplify("B + A", "B + A");
  check_simplify("A + B", "A + B");
  check_simplify("y + x + y", "2 y + x");
  check_simplify("b + a + 2 b", "3 b + a");
  check_simplify("1 + x + 2", "3 + x");
  check_simplify("c - a + b + a", "c + b");
  check_simplify("z + y - z + x", "y + x");
}
END_TEST

START_TEST(constants) {
  check_simplify("2 3 A / 4", "3/2 A");
  check_simplify("A / 2", "1/2 A");
  check_simplify("2 (3 x)", "6 x");
  check_simplify("-2 (-3) A", "6 A");
  check_simplify("2 .* x .* 3", "6 x");
  check_simplify("x .* 1", "x");
  check_simplify("x ./ 1", "x");
  check_simplify("0 A", "0");
  check_simplify("--x", "x");
  check_simplify("2^10", "1024");
  check_simplify("(1/2)^2", "1/4");
  check_simplify("(-2)^3", "-8");
  check_simplify("2^-1", "1/2");
  check_simplify("2^-2", "1/4");
  check_simplify("0.1 + 0.2", "3/10");
  /* exact, never overflowing */
  check_simplify("2^100", "1267650600228229401496703205376");
  check_simplify("10^40 / 10^39", "10");
  /* but a huge power is left alone */
  check_simplify("2^100000", "2^100000");
  check_simplify("inv(4)", "1/4");
}
END_TEST

START_TEST(powers_and_inverses) {
  check_simplify("inv(inv(A))", "A");
  check_simplify("A^-1^-1", "A");
  check_simplify("A^1", "A");
  check_simplify("A^0", "I");
  check_simplify("alpha^0", "1");
  check_simplify("(x^T x)^0", "1");
  check_simplify("A .^ 1", "A");
  check_simplify("A^2", "A^2");
  check_simplify("A^-1", "A^-1");
  check_simplify("A^-2", "A^-2");
}
END_TEST

START_TEST(functions) {
  check_simplify("tr(alpha)", "alpha");
  check_simplify("tr(x^T A x)", "x^T A x");
  check_simplify("tr(A)", "tr(A)");
  check_simplify("exp(0)", "1");
  check_simplify("log(1)", "0");
  check_simplify("sqrt(1)", "1");
  check_simplify("sqrt(0)", "0");
  check_simplify("abs(-3)", "3");
  check_simplify("sign(-2)", "-1");
  check_simplify("relu(-2)", "0");
  check_simplify("relu(2)", "2");
  check_simplify("||-3/2||", "3/2");
  check_simplify("exp(x - x)", "1");
  check_simplify("1 - sigmoid(x)", "1 - sigmoid(x)");
}
END_TEST

START_TEST(sharing) {
  /* equal subexpressions are simplified once and stay one node */
  md_env env;
  md_env_init(&env);
  md_shapes *sh;
  expr *r = simplify_in("(A^T)^T B + (A^T)^T C", &sh, &env);
  ck_assert_str_eq(tu_print(r), "A B + A C");
  ck_assert_int_eq(r->op, E_ADD);
  ck_assert_ptr_eq(r->kid[0]->kid[0], r->kid[1]->kid[0]);
  ck_assert_ptr_eq(r->kid[0]->kid[0], expr_sym(tu_ctx, "A"));
  md_shapes_free(sh);
  md_env_clear(&env);
  /* an expression with nothing to simplify comes back as itself */
  md_env_init(&env);
  expr *e = tu_parse("x^T A x + tr(B C)");
  r = simplify_in("x^T A x + tr(B C)", &sh, &env);
  ck_assert_ptr_eq(r, e);
  md_shapes_free(sh);
  md_env_clear(&env);
}
END_TEST

static Suite *simplify_suite(void) {
  Suite *s = suite_create("simplify");
  TCase *tc = tu_tcase(s, "identities");
  tcase_add_test(tc, transpose);
  tcase_add_test(tc, identity);
  tcase_add_test(tc, powers_and_inverses);
  tcase_add_test(tc, functions);
  tc = tu_tcase(s, "arithmetic");
  tcase_add_test(tc, sums);
  tcase_add_test(tc, term_order_is_kept);
  tcase_add_test(tc, constants);
  tcase_add_test(tc, sharing);
  return s;
}

int main(void) {
  return tu_run(simplify_suite());
}
