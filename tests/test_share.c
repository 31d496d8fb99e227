/*
 * test_share.c - where bindings for the repeated parts of a result
 * (share.h): what gets a name, the names, their order, and that the
 * printed form parses back to the same node.
 */
#include "testutil.h"

#include "print_text.h"
#include "share.h"
#include "shape.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* E as the CLI prints it: body where name = value, ... */
static char *printed(expr *e, md_shapes *sh, md_sharing *w) {
  md_share(tu_ctx, sh, e, w);
  strbuf b;
  sb_init(&b);
  md_print_text(&b, tu_ctx, w->body);
  for (size_t i = 0; i < w->n; i++) {
    sb_puts(&b, i ? ", " : " where ");
    md_print_text(&b, tu_ctx, w->names[i]);
    sb_puts(&b, " = ");
    md_print_text(&b, tu_ctx, w->values[i]);
  }
  return sb_take(&b);
}

/* TEXT prints as WANT with sharing, and WANT parses back to TEXT's node. */
static void check_shared(const char *text, const char *want) {
  expr *e = tu_parse(text);
  md_env env;
  md_env_init(&env);
  md_shapes *sh = md_shapes_new(tu_ctx, &env);
  md_errors err;
  md_errors_init(&err);
  bool ok = md_shape_infer(sh, e, NULL, NULL, &err, NULL);
  md_errors_clear(&err);
  ck_assert_msg(ok, "'%s' is ill-shaped", text);
  md_sharing w;
  char *got = printed(e, sh, &w);
  md_sharing_clear(&w);
  md_shapes_free(sh);
  md_env_clear(&env);
  bool same = strcmp(got, want) == 0;
  expr *back = same ? tu_parse(got) : NULL;
  free(got);
  ck_assert_msg(same, "'%s' printed as \"%s\", expected \"%s\"", text,
                tu_print(e), want);
  ck_assert_msg(back == e, "'%s' does not parse back to '%s'", want, text);
}

START_TEST(small_repeats_stay) {
  /* A^T, sigmoid(x), tanh(A x + b): used twice but under 8 nodes */
  check_shared("A^T B A^T", "A^T B A^T");
  check_shared("sigmoid(x) .* (1 - sigmoid(x))",
               "sigmoid(x) .* (1 - sigmoid(x))");
  check_shared("tanh(A x + b) .* tanh(A x + b)",
               "tanh(A x + b) .* tanh(A x + b)");
  /* a part used once is never named, however big */
  check_shared("exp(W3 tanh(W2 tanh(W1 x)))", "exp(W3 tanh(W2 tanh(W1 x)))");
}
END_TEST

START_TEST(names_by_kind) {
  /* a vector part: t1 */
  check_shared("exp(W2 tanh(W1 x + b)) .* exp(W2 tanh(W1 x + b))",
               "t1 .* t1 where t1 = exp(W2 tanh(W1 x + b))");
  /* a matrix part: T1 */
  check_shared("inv(A + B C D + E) F inv(A + B C D + E)",
               "T1 F T1 where T1 = (A + B C D + E)^-1");
  /* a scalar part: tau1 */
  check_shared("(x^T A x + y^T B y) A + (x^T A x + y^T B y) B",
               "tau1 A + tau1 B where tau1 = x^T A x + y^T B y");
}
END_TEST

START_TEST(names_in_use_are_skipped) {
  check_shared("t1 .* exp(W2 tanh(W1 x + b)) .* exp(W2 tanh(W1 x + b))",
               "t1 .* t2 .* t2 where t2 = exp(W2 tanh(W1 x + b))");
}
END_TEST

START_TEST(dependency_order) {
  /* the inner part is bound first, and the outer uses its name */
  check_shared("exp(W3 exp(W2 exp(W1 x + b))) .* exp(W3 exp(W2 exp(W1 x + "
               "b))) + exp(W2 exp(W1 x + b))",
               "t2 .* t2 + t1 where t1 = exp(W2 exp(W1 x + b)), t2 = "
               "exp(W3 t1)");
}
END_TEST

START_TEST(linear_size) {
  /* u_k = exp(W u_{k-1}) .* exp(W u_{k-1}): a tree of 2^k copies, a DAG
   * of k levels; printed with sharing, the text grows by a constant per
   * level */
  size_t len[2] = {0, 0};
  for (int round = 0; round < 2; round++) {
    int levels = round ? 80 : 40;
    strbuf b;
    sb_init(&b);
    sb_puts(&b, "x");
    expr *e = tu_parse("x");
    expr *W = expr_sym(tu_ctx, "W");
    for (int k = 0; k < levels; k++) {
      expr *u = expr_call1(tu_ctx, FN_EXP, expr_mul(tu_ctx, W, e));
      e = expr_had(tu_ctx, u, u);
    }
    sb_clear(&b);
    md_env env;
    md_env_init(&env);
    md_shapes *sh = md_shapes_new(tu_ctx, &env);
    md_errors err;
    md_errors_init(&err);
    bool ok = md_shape_infer(sh, e, NULL, NULL, &err, NULL);
    char msg[256] = "";
    if (!ok)
      snprintf(msg, sizeof msg, "%.200s", err.v[0].msg);
    md_errors_clear(&err);
    ck_assert_msg(ok, "%d levels: %s", levels, msg);
    md_sharing w;
    char *t = printed(e, sh, &w);
    len[round] = strlen(t);
    md_sharing_clear(&w);
    expr *back = tu_parse(t);
    free(t);
    md_shapes_free(sh);
    md_env_clear(&env);
    ck_assert_msg(back == e, "%d levels: the printed form does not parse "
                             "back",
                  levels);
  }
  /* twice the levels, about twice the text (not 2^20 times) */
  ck_assert_msg(len[1] < 2 * len[0] + 64, "20 levels: %zu bytes, 40: %zu",
                len[0], len[1]);
}
END_TEST

static Suite *share_suite(void) {
  Suite *s = suite_create("share");
  TCase *tc = tu_tcase(s, "share");
  tcase_add_test(tc, small_repeats_stay);
  tcase_add_test(tc, names_by_kind);
  tcase_add_test(tc, names_in_use_are_skipped);
  tcase_add_test(tc, dependency_order);
  tcase_add_test(tc, linear_size);
  return s;
}

int main(void) {
  return tu_run(share_suite());
}
