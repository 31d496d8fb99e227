/*
 * test_capi.c - the public C API (include/matdiff/matdiff.h), as a
 * program sees it: this suite includes nothing but <matdiff/matdiff.h>
 * and links libmatdiff.so.
 *
 * Every error path of the API has a case here that shows its message,
 * its source, line and column.
 */
#include <matdiff/matdiff.h>

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static matdiff_ctx *ctx;

static void setup(void) {
  ctx = matdiff_ctx_new();
}

static void teardown(void) {
  matdiff_ctx_free(ctx);
}

/* The output of a call that must succeed. */
static void expect_ok(matdiff_result *r, const char *want) {
  const matdiff_error *e = matdiff_result_error(r, 0);
  ck_assert_msg(matdiff_result_status(r) == MATDIFF_OK,
                "expected %s, got status %d: %s", want,
                (int)matdiff_result_status(r),
                e ? matdiff_error_text(e) : "(no error)");
  ck_assert_str_eq(matdiff_result_output(r), want);
  ck_assert_uint_eq(matdiff_result_nerrors(r), 0);
  ck_assert_ptr_null(matdiff_result_error(r, 0));
  matdiff_result_free(r);
}

/* A call that must fail with one error MSG in SOURCE at LINE:COL (0:0:
 * no place) whose text is TEXT (NULL: not compared). */
static void expect_error(matdiff_result *r, const char *source, unsigned line,
                         unsigned col, const char *msg, const char *text) {
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_ERROR);
  ck_assert_uint_eq(matdiff_result_nerrors(r), 1);
  const matdiff_error *e = matdiff_result_error(r, 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_str_eq(matdiff_error_message(e), msg);
  ck_assert_str_eq(matdiff_error_source(e), source);
  ck_assert_uint_eq(matdiff_error_line(e), line);
  ck_assert_uint_eq(matdiff_error_column(e), col);
  if (text)
    ck_assert_str_eq(matdiff_error_text(e), text);
  ck_assert_str_eq(matdiff_result_output(r), "");
  ck_assert_ptr_null(matdiff_result_error(r, 1));
  matdiff_result_free(r);
}

/* A file holding TEXT, for --rules and check_file; the caller unlinks
 * and frees the path. */
static char *temp_file(const char *text) {
  const char *dir = getenv("TMPDIR");
  size_t n = strlen(dir ? dir : "/tmp") + 32;
  char *path = malloc(n);
  snprintf(path, n, "%s/capi-XXXXXX", dir ? dir : "/tmp");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

/* ---- answers ---- */

START_TEST(version) {
  ck_assert_str_eq(matdiff_version(), "0.1.0");
}
END_TEST

START_TEST(seed_forms) {
  static const char *const seed[][3] = {
      {"a^T x", "x", "a"},
      {"x^T a", "x", "a"},
      {"x^T A x", "x", "(A + A^T) x"},
      {"A x", "x", "A^T"},
      {"||A x - y||_2^2", "x", "2 A^T (A x - y)"},
      {"tr(A X)", "X", "A^T"},
      {"tr(X A)", "X", "A^T"},
      {"tr(A X^T B)", "X", "B A"},
      {"tr(X^T A X)", "X", "(A + A^T) X"},
  };
  for (size_t i = 0; i < sizeof seed / sizeof seed[0]; i++)
    expect_ok(matdiff_diff(ctx, seed[i][0], seed[i][1], MATDIFF_FORMAT_TEXT),
              seed[i][2]);
}
END_TEST

START_TEST(formats) {
  expect_ok(matdiff_diff(ctx, "tr(A X^T B)", "X", MATDIFF_FORMAT_LATEX),
            "\\mathbf{B} \\mathbf{A}");
  expect_ok(matdiff_diff(ctx, "tr(A X^T B)", "X", MATDIFF_FORMAT_NUMPY),
            "import numpy as np\n\ndef df_dX(A, X, B):\n    return B @ A");
  expect_ok(matdiff_simplify(ctx, "(A^T)^T + A", MATDIFF_FORMAT_TEXT), "2 A");
  expect_ok(matdiff_simplify(ctx, "(A^T)^T + A", MATDIFF_FORMAT_LATEX),
            "2 \\mathbf{A}");
}
END_TEST

/* Several variables at once, with the value, in each code format. */
START_TEST(several_variables) {
  const char *wrt[] = {"W1", "b1"};
  matdiff_ctx_set_flags(ctx, MATDIFF_VALUE);
  expect_ok(
      matdiff_diff_n(ctx, "||W1 x + b1 - y||^2", wrt, 2, MATDIFF_FORMAT_TEXT),
      "||t1||^2\n2 t1 x^T\n2 t1\nwhere t1 = W1 x + b1 - y");
  matdiff_ctx_set_flags(ctx, 0);
  const char *xy[] = {"x", "y"};
  expect_ok(matdiff_diff_n(ctx, "x^T A y", xy, 2, MATDIFF_FORMAT_OCTAVE),
            "function [dx, dy] = df_dx_y(x, A, y)\n  x = x(:);\n  y = y(:);\n"
            "  dx = A * y;\n  dy = A.' * x;\nend");
  matdiff_result *r =
      matdiff_diff_n(ctx, "x^T A y", xy, 2, MATDIFF_FORMAT_TORCH);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_OK);
  ck_assert_ptr_nonnull(strstr(matdiff_result_output(r), "import torch"));
  matdiff_result_free(r);
  /* errors: a variable that is no variable, MATDIFF_VALUE for simplify */
  const char *bad[] = {"x", "2 x"};
  expect_error(
      matdiff_diff_n(ctx, "x^T A y", bad, 2, MATDIFF_FORMAT_TEXT), "<wrt>", 1,
      1, "not a variable to differentiate by: give a symbol or vec(X)", NULL);
  matdiff_ctx_set_flags(ctx, MATDIFF_VALUE);
  expect_error(matdiff_simplify(ctx, "x", MATDIFF_FORMAT_TEXT), "", 0, 0,
               "MATDIFF_VALUE is for derivatives with their value, without "
               "MATDIFF_STEPS",
               NULL);
  matdiff_ctx_set_flags(ctx, 0);
}
END_TEST

START_TEST(wrt_default_and_vec) {
  /* the one symbol of the expression */
  expect_ok(matdiff_diff(ctx, "tr(X)", NULL, MATDIFF_FORMAT_TEXT), "I");
  expect_ok(matdiff_diff(ctx, "vec(A X B)", "vec(X)", MATDIFF_FORMAT_TEXT),
            "kron(B, A^T)");
}
END_TEST

START_TEST(hessian) {
  expect_ok(matdiff_hessian(ctx, "x^T A x", "x", MATDIFF_FORMAT_TEXT),
            "A + A^T");
}
END_TEST

START_TEST(declarations) {
  matdiff_ctx_let(ctx, "A : symmetric(n)");
  expect_ok(matdiff_diff(ctx, "x^T A x", "x", MATDIFF_FORMAT_TEXT), "2 A x");
  /* declarations hold for every later call */
  expect_ok(matdiff_hessian(ctx, "x^T A x", "x", MATDIFF_FORMAT_TEXT), "2 A");
}
END_TEST

START_TEST(flags_and_layout) {
  matdiff_ctx_set_flags(ctx, MATDIFF_EQUATION);
  expect_ok(matdiff_diff(ctx, "tr(A X^T B)", "X", MATDIFF_FORMAT_TEXT),
            "d/dX tr(A X^T B) = B A");
  matdiff_ctx_set_flags(ctx, MATDIFF_UNICODE);
  expect_ok(matdiff_diff(ctx, "a^T X b", "X", MATDIFF_FORMAT_TEXT), "a bᵀ");
  matdiff_ctx_set_flags(ctx, 0);
  matdiff_ctx_set_layout(ctx, MATDIFF_LAYOUT_NUMERATOR);
  expect_ok(matdiff_diff(ctx, "A x", "x", MATDIFF_FORMAT_TEXT), "A");
  matdiff_ctx_set_layout(ctx, MATDIFF_LAYOUT_MIXED);
  expect_ok(matdiff_diff(ctx, "a^T x", "x", MATDIFF_FORMAT_TEXT), "a");
  matdiff_ctx_set_layout(ctx, MATDIFF_LAYOUT_DENOMINATOR);
  matdiff_ctx_let(ctx, "S : symmetric(n)");
  matdiff_ctx_set_flags(ctx, MATDIFF_COOKBOOK);
  expect_ok(matdiff_diff(ctx, "tr(A S)", "S", MATDIFF_FORMAT_TEXT),
            "A + A^T - A .* I");
}
END_TEST

START_TEST(steps) {
  matdiff_ctx_set_flags(ctx, MATDIFF_STEPS);
  matdiff_result *r = matdiff_diff(ctx, "tr(X)", "X", MATDIFF_FORMAT_TEXT);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_OK);
  ck_assert_ptr_nonnull(strstr(matdiff_result_output(r), "1.  f = tr(X)\n"));
  ck_assert_ptr_nonnull(strstr(matdiff_result_output(r), "d/dX f = I"));
  matdiff_result_free(r);
}
END_TEST

START_TEST(verify) {
  matdiff_ctx_set_flags(ctx, MATDIFF_VERIFY);
  expect_ok(matdiff_diff(ctx, "x^T A x", "x", MATDIFF_FORMAT_TEXT),
            "(A + A^T) x");
  /* a wrong derivative rule of the user's: --verify refutes its result */
  char *path = temp_file("cube(x) := x .* x .* x\n"
                         "d/dX <G, cube(X)> = G .* X\n");
  matdiff_ctx_add_rules(ctx, path);
  matdiff_result *r =
      matdiff_diff(ctx, "sum(cube(x))", "x", MATDIFF_FORMAT_TEXT);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_FALSE);
  ck_assert_uint_eq(matdiff_result_nerrors(r), 0);
  ck_assert_str_eq(matdiff_result_output(r), "");
  ck_assert_ptr_nonnull(
      strstr(matdiff_result_warnings(r), "FALSE: d/dx sum(cube(x)) = x"));
  matdiff_result_free(r);
  unlink(path);
  free(path);
}
END_TEST

START_TEST(rules) {
  char *path = temp_file("cube(x) := x .* x .* x\n");
  matdiff_ctx_add_rules(ctx, path);
  expect_ok(matdiff_diff(ctx, "sum(cube(x))", "x", MATDIFF_FORMAT_TEXT),
            "3 x .^ 2");
  unlink(path);
  free(path);
}
END_TEST

START_TEST(warnings) {
  matdiff_result *r = matdiff_diff(ctx, "tr(AX)", "X", MATDIFF_FORMAT_TEXT);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_OK);
  ck_assert_str_eq(matdiff_result_output(r), "0");
  ck_assert_str_eq(matdiff_result_warnings(r),
                   "matdiff: warning: X does not occur in the expression, "
                   "so the derivative is 0; its symbol is AX\n"
                   "matdiff: note: AX is one symbol; for a product write "
                   "A X\n");
  matdiff_result_free(r);
  r = matdiff_diff(ctx, "tr(A X)", "X", MATDIFF_FORMAT_TEXT);
  ck_assert_str_eq(matdiff_result_warnings(r), "");
  matdiff_result_free(r);
}
END_TEST

/* ---- check ---- */

START_TEST(check_verdicts) {
  matdiff_result *r = matdiff_check(ctx,
                                    "# identities\n"
                                    "let A : symmetric(n)\n"
                                    "d/dx x^T A x = 2 A x\n"
                                    "A B = B A\n"
                                    "(A B)^T = B^T A\n"
                                    "x +\n"
                                    "tr(A B) != tr(B A)\n",
                                    "ids.mdi");
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_FALSE);
  ck_assert_uint_eq(matdiff_result_nerrors(r), 0);
  ck_assert_uint_eq(matdiff_result_nverdicts(r), 5);
  static const struct {
    unsigned line;
    int holds;
    const char *status, *identity;
  } want[] = {
      {3, 1, "verified exactly", "d/dx x^T A x = 2 A x"},
      {4, 0, "FALSE", "A B = B A"},
      {5, 1, "proved", "(A B)^T = B^T A"},
      {6, 0, "error", "x +"},
      {7, 0, "FALSE", "tr(A B) != tr(B A)"},
  };
  for (size_t i = 0; i < 5; i++) {
    const matdiff_verdict *v = matdiff_result_verdict(r, i);
    ck_assert_str_eq(matdiff_verdict_file(v), "ids.mdi");
    ck_assert_uint_eq(matdiff_verdict_line(v), want[i].line);
    ck_assert_int_eq(matdiff_verdict_holds(v), want[i].holds);
    ck_assert_str_eq(matdiff_verdict_status(v), want[i].status);
    ck_assert_str_eq(matdiff_verdict_identity(v), want[i].identity);
    ck_assert_int_eq(matdiff_verdict_error(v) != NULL, i == 3);
  }
  ck_assert_ptr_nonnull(
      strstr(matdiff_verdict_detail(matdiff_result_verdict(r, 1)),
             "counterexample: "));
  const matdiff_error *e = matdiff_verdict_error(matdiff_result_verdict(r, 3));
  ck_assert_str_eq(matdiff_error_message(e),
                   "syntax error, unexpected end of input");
  ck_assert_str_eq(matdiff_error_source(e), "ids.mdi");
  ck_assert_uint_eq(matdiff_error_line(e), 6);
  ck_assert_uint_eq(matdiff_error_column(e), 4);
  ck_assert_str_eq(matdiff_error_text(e),
                   "ids.mdi:6:4: error: syntax error, unexpected end of "
                   "input\nx +\n   ^\n");
  ck_assert_ptr_null(matdiff_result_verdict(r, 5));
  ck_assert_ptr_nonnull(
      strstr(matdiff_result_output(r), "5 identities: 2 passed, 3 failed"));
  matdiff_result_free(r);
}
END_TEST

START_TEST(check_file_and_let) {
  char *path = temp_file("x^T A x = x^T A^T x\n");
  matdiff_ctx_let(ctx, "x : vector(n)");
  matdiff_result *r = matdiff_check_file(ctx, path);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_OK);
  ck_assert_uint_eq(matdiff_result_nverdicts(r), 1);
  ck_assert_str_eq(matdiff_verdict_file(matdiff_result_verdict(r, 0)), path);
  ck_assert_int_eq(matdiff_verdict_holds(matdiff_result_verdict(r, 0)), 1);
  matdiff_result_free(r);
  r = matdiff_check(ctx, "tr(X) = tr(X^T)", NULL);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_OK);
  ck_assert_str_eq(matdiff_verdict_file(matdiff_result_verdict(r, 0)),
                   "<text>");
  matdiff_result_free(r);
  unlink(path);
  free(path);
}
END_TEST

/* ---- every error path ---- */

START_TEST(error_syntax) {
  expect_error(matdiff_diff(ctx, "x +", "x", MATDIFF_FORMAT_TEXT), "<expr>", 1,
               4, "syntax error, unexpected end of input",
               "<expr>:1:4: error: syntax error, unexpected end of input\n"
               "x +\n   ^\n");
  expect_error(matdiff_simplify(ctx, "tr(A B", MATDIFF_FORMAT_TEXT), "<expr>",
               1, 7, "syntax error, unexpected end of input, expecting ')'",
               NULL);
}
END_TEST

START_TEST(error_shape) {
  expect_error(matdiff_diff(ctx, "x + x^T", "x", MATDIFF_FORMAT_TEXT), "<expr>",
               1, 5, "cannot add x (m×1) and x^T (1×m)",
               "<expr>:1:5: error: cannot add x (m×1) and x^T (1×m)\n"
               "x + x^T\n    ^\n");
}
END_TEST

START_TEST(error_empty) {
  expect_error(matdiff_diff(ctx, "", "x", MATDIFF_FORMAT_TEXT), "<expr>", 1, 1,
               "empty input: give an expression, such as 'x^T A x'", NULL);
}
END_TEST

START_TEST(error_no_variable) {
  expect_error(matdiff_diff(ctx, "x^T A x", NULL, MATDIFF_FORMAT_TEXT),
               "<expr>", 1, 1,
               "give the variable with --wrt: the expression has several "
               "symbols",
               NULL);
  expect_error(matdiff_diff(ctx, "2 + 3", NULL, MATDIFF_FORMAT_TEXT), "<expr>",
               1, 1, "nothing to differentiate: the expression has no symbol",
               NULL);
}
END_TEST

START_TEST(error_bad_wrt) {
  expect_error(matdiff_diff(ctx, "x^T A x", "x^T", MATDIFF_FORMAT_TEXT),
               "<wrt>", 1, 1,
               "not a variable to differentiate by: give a symbol or vec(X)",
               "<wrt>:1:1: error: not a variable to differentiate by: give "
               "a symbol or vec(X)\nx^T\n^\n");
}
END_TEST

START_TEST(error_tensor) {
  matdiff_result *r = matdiff_diff(ctx, "A X", "X", MATDIFF_FORMAT_TEXT);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_ERROR);
  const matdiff_error *e = matdiff_result_error(r, 0);
  ck_assert_str_eq(matdiff_error_source(e), "<expr>");
  ck_assert_ptr_nonnull(strstr(matdiff_error_message(e), "tensor"));
  ck_assert_ptr_nonnull(strstr(matdiff_error_message(e), "vec("));
  matdiff_result_free(r);
}
END_TEST

START_TEST(error_bad_let) {
  matdiff_ctx_let(ctx, "A : matrx(m, n)");
  expect_error(matdiff_diff(ctx, "A x", "x", MATDIFF_FORMAT_TEXT), "<let>", 1,
               5,
               "unknown kind 'matrx'; expected scalar, vector, matrix, "
               "symmetric, spd or diagonal",
               "<let>:1:5: error: unknown kind 'matrx'; expected scalar, "
               "vector, matrix, symmetric, spd or diagonal\n"
               "A : matrx(m, n)\n    ^\n");
  /* check reads the declarations too */
  matdiff_result *r = matdiff_check(ctx, "A = A", NULL);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_ERROR);
  ck_assert_str_eq(matdiff_error_source(matdiff_result_error(r, 0)), "<let>");
  matdiff_result_free(r);
}
END_TEST

START_TEST(error_rules_missing) {
  matdiff_ctx_add_rules(ctx, "/nonexistent/my.rules");
  expect_error(matdiff_diff(ctx, "x", "x", MATDIFF_FORMAT_TEXT), "", 0, 0,
               "cannot read rules '/nonexistent/my.rules': No such file or "
               "directory",
               "error: cannot read rules '/nonexistent/my.rules': No such "
               "file or directory\n");
}
END_TEST

START_TEST(error_rules_bad) {
  char *path = temp_file("# mine\nlog(exp(X)) = X + Y\n");
  matdiff_ctx_add_rules(ctx, path);
  matdiff_result *r = matdiff_simplify(ctx, "x", MATDIFF_FORMAT_TEXT);
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_ERROR);
  const matdiff_error *e = matdiff_result_error(r, 0);
  ck_assert_str_eq(matdiff_error_source(e), path);
  ck_assert_uint_eq(matdiff_error_line(e), 2);
  ck_assert_uint_eq(matdiff_error_column(e), 19);
  ck_assert_str_eq(matdiff_error_message(e),
                   "the right side uses Y, which the left side does not "
                   "bind: every variable of the result must occur on the "
                   "left");
  matdiff_result_free(r);
  unlink(path);
  free(path);
}
END_TEST

START_TEST(error_options) {
  static const struct {
    unsigned flags;
    int format, layout;
    const char *msg;
  } bad[] = {
      {1u << 20, MATDIFF_FORMAT_TEXT, 0,
       "unknown flags: give MATDIFF_STEPS, MATDIFF_EQUATION, "
       "MATDIFF_UNICODE, MATDIFF_VERIFY, MATDIFF_COOKBOOK or MATDIFF_VALUE"},
      {0, 7, 0,
       "unknown format: give MATDIFF_FORMAT_TEXT, MATDIFF_FORMAT_LATEX, "
       "MATDIFF_FORMAT_NUMPY, MATDIFF_FORMAT_TORCH or MATDIFF_FORMAT_OCTAVE"},
      {0, MATDIFF_FORMAT_TEXT, 9,
       "unknown layout: give MATDIFF_LAYOUT_DENOMINATOR, "
       "MATDIFF_LAYOUT_NUMERATOR or MATDIFF_LAYOUT_MIXED"},
      {MATDIFF_UNICODE, MATDIFF_FORMAT_LATEX, 0,
       "MATDIFF_UNICODE is for text output"},
      {MATDIFF_STEPS, MATDIFF_FORMAT_NUMPY, 0,
       "code formats write a function: MATDIFF_EQUATION and MATDIFF_STEPS "
       "are for text and LaTeX"},
      {MATDIFF_EQUATION, MATDIFF_FORMAT_NUMPY, 0,
       "code formats write a function: MATDIFF_EQUATION and MATDIFF_STEPS "
       "are for text and LaTeX"},
      {MATDIFF_VERIFY | MATDIFF_COOKBOOK, MATDIFF_FORMAT_TEXT, 0,
       "MATDIFF_VERIFY checks gradients in the Frobenius convention; leave "
       "out MATDIFF_COOKBOOK"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    matdiff_ctx_set_flags(ctx, bad[i].flags);
    matdiff_ctx_set_layout(ctx, (matdiff_layout)bad[i].layout);
    expect_error(matdiff_diff(ctx, "x^T x", "x", (matdiff_format)bad[i].format),
                 "", 0, 0, bad[i].msg, NULL);
  }
}
END_TEST

START_TEST(error_steps_hessian) {
  matdiff_ctx_set_flags(ctx, MATDIFF_STEPS);
  expect_error(matdiff_hessian(ctx, "x^T x", "x", MATDIFF_FORMAT_TEXT),
               "<expr>", 1, 1,
               "--steps shows first derivatives; leave out --hessian", NULL);
}
END_TEST

START_TEST(error_null) {
  expect_error(matdiff_diff(ctx, NULL, "x", MATDIFF_FORMAT_TEXT), "", 0, 0,
               "no expression given (NULL)",
               "error: no expression given "
               "(NULL)\n");
  expect_error(matdiff_diff(NULL, "x", "x", MATDIFF_FORMAT_TEXT), "", 0, 0,
               "no context: make one with matdiff_ctx_new()", NULL);
  expect_error(matdiff_check(ctx, NULL, "x.mdi"), "", 0, 0,
               "no identities given (NULL)", NULL);
  expect_error(matdiff_check_file(ctx, NULL), "", 0, 0,
               "no identity file given (NULL)", NULL);
  matdiff_ctx_free(NULL);
  matdiff_result_free(NULL);
}
END_TEST

START_TEST(error_check_file) {
  matdiff_result *r = matdiff_check_file(ctx, "/nonexistent/x.mdi");
  ck_assert_int_eq(matdiff_result_status(r), MATDIFF_ERROR);
  ck_assert_uint_eq(matdiff_result_nverdicts(r), 0);
  ck_assert_uint_eq(matdiff_result_nerrors(r), 1);
  ck_assert_str_eq(matdiff_error_message(matdiff_result_error(r, 0)),
                   "cannot open '/nonexistent/x.mdi': No such file or "
                   "directory");
  matdiff_result_free(r);
}
END_TEST

/* ---- threads: one context each ---- */

enum { THREADS = 4, ROUNDS = 20 };

static void *worker(void *arg) {
  long k = (long)arg;
  matdiff_ctx *c = matdiff_ctx_new();
  if (k % 2)
    matdiff_ctx_let(c, "A : symmetric(n)");
  const char *want = k % 2 ? "2 A x" : "(A + A^T) x";
  long bad = 0;
  for (int i = 0; i < ROUNDS; i++) {
    matdiff_result *r = matdiff_diff(c, "x^T A x", "x", MATDIFF_FORMAT_TEXT);
    bad += strcmp(matdiff_result_output(r), want) != 0;
    matdiff_result_free(r);
    r = matdiff_check(c, "d/dX tr(A X^T B) = B A", NULL);
    bad += matdiff_result_status(r) != MATDIFF_OK;
    matdiff_result_free(r);
  }
  matdiff_ctx_free(c);
  return (void *)bad;
}

START_TEST(threads) {
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)i), 0);
  for (int i = 0; i < THREADS; i++) {
    void *bad;
    ck_assert_int_eq(pthread_join(t[i], &bad), 0);
    ck_assert_int_eq((long)bad, 0);
  }
}
END_TEST

static Suite *capi_suite(void) {
  Suite *s = suite_create("capi");
  TCase *tc = tcase_create("answers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, version);
  tcase_add_test(tc, seed_forms);
  tcase_add_test(tc, formats);
  tcase_add_test(tc, several_variables);
  tcase_add_test(tc, wrt_default_and_vec);
  tcase_add_test(tc, hessian);
  tcase_add_test(tc, declarations);
  tcase_add_test(tc, flags_and_layout);
  tcase_add_test(tc, steps);
  tcase_add_test(tc, verify);
  tcase_add_test(tc, rules);
  tcase_add_test(tc, warnings);
  tcase_add_test(tc, check_verdicts);
  tcase_add_test(tc, check_file_and_let);
  suite_add_tcase(s, tc);
  tc = tcase_create("errors");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, error_syntax);
  tcase_add_test(tc, error_shape);
  tcase_add_test(tc, error_empty);
  tcase_add_test(tc, error_no_variable);
  tcase_add_test(tc, error_bad_wrt);
  tcase_add_test(tc, error_tensor);
  tcase_add_test(tc, error_bad_let);
  tcase_add_test(tc, error_rules_missing);
  tcase_add_test(tc, error_rules_bad);
  tcase_add_test(tc, error_options);
  tcase_add_test(tc, error_steps_hessian);
  tcase_add_test(tc, error_null);
  tcase_add_test(tc, error_check_file);
  suite_add_tcase(s, tc);
  tc = tcase_create("threads");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(capi_suite());
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
