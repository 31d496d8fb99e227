/*
 * test_eval.c - the numbers of matdiff check: exact inverse and
 * determinant, dual and hyper-dual numbers through products, inverse,
 * det and the element-wise functions, against values computed by hand;
 * then the evaluator over parsed expressions (derivatives, Hessians,
 * closed terms, structured variables), random sizes and domain retries.
 */
#include "testutil.h"

#include "eval.h"
#include "shape.h"
#include "value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* An R×C matrix of order ORDER from "p/q" strings, row by row (the real
 * parts). */
static void mat(md_val *v, uint32_t r, uint32_t c, unsigned order,
                const char *const *q) {
  md_val_init(v, r, c, order);
  mpq_t t;
  mpq_init(t);
  for (uint32_t i = 0; i < r; i++)
    for (uint32_t j = 0; j < c; j++) {
      ck_assert_int_eq(mpq_set_str(t, q[i * c + j], 10), 0);
      mpq_canonicalize(t);
      md_num_set_q(md_val_at(v, i, j, 0), t);
    }
  mpq_clear(t);
}

/* Sets part PART of entry (i, j) to the rational Q. */
static void set_part(md_val *v, uint32_t i, uint32_t j, unsigned part,
                     const char *q) {
  mpq_t t;
  mpq_init(t);
  ck_assert_int_eq(mpq_set_str(t, q, 10), 0);
  mpq_canonicalize(t);
  md_num_set_q(md_val_at(v, i, j, part), t);
  mpq_clear(t);
}

/* Part PART of entry (i, j) of V is exactly WANT ("p/q"). */
static void check_q(const md_val *v, uint32_t i, uint32_t j, unsigned part,
                    const char *want) {
  md_num *x = md_val_at(v, i, j, part);
  ck_assert_ptr_nonnull(x);
  char got[256];
  md_num_format(x, got, sizeof got);
  ck_assert_msg(x->exact, "entry (%u, %u) part %u is %s, not exact", i, j, part,
                got);
  mpq_t w;
  mpq_init(w);
  ck_assert_int_eq(mpq_set_str(w, want, 10), 0);
  mpq_canonicalize(w);
  mpq_t g;
  mpq_init(g);
  md_num_get_q(g, x);
  bool eq = mpq_equal(w, g);
  mpq_clear(g);
  mpq_clear(w);
  ck_assert_msg(eq, "entry (%u, %u) part %u is %s, expected %s", i, j, part,
                got, want);
}

/* Every entry of the real part of V, row by row. */
static void check_mat(const md_val *v, uint32_t r, uint32_t c,
                      const char *const *want) {
  ck_assert_uint_eq(v->r, r);
  ck_assert_uint_eq(v->c, c);
  for (uint32_t i = 0; i < r; i++)
    for (uint32_t j = 0; j < c; j++)
      check_q(v, i, j, 0, want[i * c + j]);
}

static void check_d(const md_val *v, uint32_t i, uint32_t j, unsigned part,
                    double want) {
  md_num *x = md_val_at(v, i, j, part);
  ck_assert_ptr_nonnull(x);
  double got = md_num_get_d(x);
  ck_assert_msg(fabs(got - want) <= 1e-12 * fmax(1, fabs(want)),
                "entry (%u, %u) part %u is %.17g, expected %.17g", i, j, part,
                got, want);
}

/* ---- exact linear algebra ---- */

START_TEST(inverse_exact) {
  md_val a, inv;
  mat(&a, 2, 2, 0, (const char *[]){"2", "1", "7", "4"});
  ck_assert_int_eq(md_val_inv(&inv, &a), MD_OK);
  check_mat(&inv, 2, 2, (const char *[]){"4", "-1", "-7", "2"});
  md_val_clear(&inv);
  md_val_clear(&a);

  /* the classic 3×3 with determinant 1 */
  mat(&a, 3, 3, 0,
      (const char *[]){"1", "2", "3", "0", "1", "4", "5", "6", "0"});
  ck_assert_int_eq(md_val_inv(&inv, &a), MD_OK);
  check_mat(
      &inv, 3, 3,
      (const char *[]){"-24", "18", "5", "20", "-15", "-4", "-5", "4", "1"});
  md_val_clear(&inv);
  md_val_clear(&a);

  /* rational entries: det = 1/10 - 1/12 = 1/60 */
  mat(&a, 2, 2, 0, (const char *[]){"1/2", "1/3", "1/4", "1/5"});
  ck_assert_int_eq(md_val_inv(&inv, &a), MD_OK);
  check_mat(&inv, 2, 2, (const char *[]){"12", "-20", "-15", "30"});
  md_val_clear(&inv);
  md_val_clear(&a);

  /* a zero pivot needs a row swap */
  mat(&a, 2, 2, 0, (const char *[]){"0", "2", "3", "0"});
  ck_assert_int_eq(md_val_inv(&inv, &a), MD_OK);
  check_mat(&inv, 2, 2, (const char *[]){"0", "1/3", "1/2", "0"});
  md_val_clear(&inv);
  md_val_clear(&a);
}
END_TEST

START_TEST(singular_inverse) {
  md_val a, inv = {0};
  mat(&a, 2, 2, 0, (const char *[]){"1", "2", "2", "4"});
  ck_assert_int_eq(md_val_inv(&inv, &a), MD_DOMAIN);
  ck_assert_ptr_null(inv.x); /* nothing to free */
  md_val_clear(&a);
}
END_TEST

/* In doubles, a matrix singular but for rounding is singular: u v^T of
 * entries that doubles cannot hold (1/3, 1/7, ...) left pivots of 1e-17
 * of its entries, and its "inverse" of 1e16 made --verify say FALSE
 * (value.c, md_val_inv).  A well-conditioned one still inverts. */
START_TEST(singular_inverse_in_doubles) {
  static const double u[4] = {1.0 / 3, 2.0 / 7, 5.0 / 11, 7.0 / 13};
  static const double v[4] = {3.0 / 17, 1.0 / 19, 4.0 / 23, 9.0 / 29};
  for (double scale = 1e-100; scale < 1e101; scale *= 1e50) {
    md_val a, inv = {0};
    md_val_init(&a, 4, 4, 0);
    for (uint32_t i = 0; i < 4; i++)
      for (uint32_t j = 0; j < 4; j++)
        md_num_set_d(md_val_at(&a, i, j, 0), scale * u[i] * v[j]);
    ck_assert_int_eq(md_val_inv(&inv, &a), MD_DOMAIN);
    md_val_clear(&a);
    md_val_init(&a, 4, 4, 0);
    for (uint32_t i = 0; i < 4; i++)
      for (uint32_t j = 0; j < 4; j++)
        md_num_set_d(md_val_at(&a, i, j, 0),
                     scale * (u[i] * v[j] + (i == j ? 1.0 / (i + 2) : 0)));
    ck_assert_int_eq(md_val_inv(&inv, &a), MD_OK);
    md_val_clear(&inv);
    md_val_clear(&a);
  }
}
END_TEST

START_TEST(det_exact) {
  md_val a, d;
  mat(&a, 3, 3, 0,
      (const char *[]){"2", "-3", "1", "2", "0", "-1", "1", "4", "5"});
  ck_assert_int_eq(md_val_det(&d, &a), MD_OK);
  check_q(&d, 0, 0, 0, "49");
  md_val_clear(&d);
  md_val_clear(&a);

  mat(&a, 2, 2, 0, (const char *[]){"0", "1", "1", "0"});
  ck_assert_int_eq(md_val_det(&d, &a), MD_OK);
  check_q(&d, 0, 0, 0, "-1");
  md_val_clear(&d);
  md_val_clear(&a);

  /* singular: 0, not a failure */
  mat(&a, 3, 3, 0,
      (const char *[]){"2", "0", "1", "1", "3", "2", "1", "1", "1"});
  ck_assert_int_eq(md_val_det(&d, &a), MD_OK);
  check_q(&d, 0, 0, 0, "0");
  md_val_clear(&d);
  md_val_clear(&a);

  mat(&a, 2, 2, 0, (const char *[]){"1/2", "1/3", "1/4", "1/5"});
  ck_assert_int_eq(md_val_det(&d, &a), MD_OK);
  check_q(&d, 0, 0, 0, "1/60");
  md_val_clear(&d);
  md_val_clear(&a);
}
END_TEST

START_TEST(kron_vec_diag_trace) {
  md_val a, b, k, v, dg, t;
  mat(&a, 2, 2, 0, (const char *[]){"1", "2", "3", "4"});
  mat(&b, 1, 2, 0, (const char *[]){"5", "6"});
  ck_assert_int_eq(md_val_kron(&k, &a, &b), MD_OK);
  check_mat(&k, 2, 4,
            (const char *[]){"5", "6", "10", "12", "15", "18", "20", "24"});
  ck_assert_int_eq(md_val_vec(&v, &a), MD_OK); /* columns stacked */
  check_mat(&v, 4, 1, (const char *[]){"1", "3", "2", "4"});
  ck_assert_int_eq(md_val_diag(&dg, &a), MD_OK);
  check_mat(&dg, 2, 1, (const char *[]){"1", "4"});
  ck_assert_int_eq(md_val_tr(&t, &a), MD_OK);
  check_q(&t, 0, 0, 0, "5");
  md_val_clear(&a);
  md_val_clear(&b);
  md_val_clear(&k);
  md_val_clear(&v);
  md_val_clear(&dg);
  md_val_clear(&t);
}
END_TEST

/* ---- dual numbers ---- */

START_TEST(dual_product) {
  /* (X + eps V) Y = X Y + eps V Y */
  md_val x, y, p;
  mat(&x, 2, 2, 1, (const char *[]){"1", "2", "3", "4"});
  set_part(&x, 0, 1, 1, "1"); /* V = E_12 */
  mat(&y, 2, 2, 0, (const char *[]){"5", "6", "7", "8"});
  ck_assert_int_eq(md_val_mul(&p, &x, &y), MD_OK);
  ck_assert_uint_eq(p.order, 1);
  check_mat(&p, 2, 2, (const char *[]){"19", "22", "43", "50"});
  check_q(&p, 0, 0, 1, "7");
  check_q(&p, 0, 1, 1, "8");
  check_q(&p, 1, 0, 1, "0");
  check_q(&p, 1, 1, 1, "0");
  md_val_clear(&x);
  md_val_clear(&y);
  md_val_clear(&p);
}
END_TEST

START_TEST(dual_inverse) {
  /* d inv(X)[V] = -X^-1 V X^-1; X^-1 = [4 -1; -7 2], V = E_11 */
  md_val x, inv;
  mat(&x, 2, 2, 1, (const char *[]){"2", "1", "7", "4"});
  set_part(&x, 0, 0, 1, "1");
  ck_assert_int_eq(md_val_inv(&inv, &x), MD_OK);
  check_mat(&inv, 2, 2, (const char *[]){"4", "-1", "-7", "2"});
  check_q(&inv, 0, 0, 1, "-16");
  check_q(&inv, 0, 1, 1, "4");
  check_q(&inv, 1, 0, 1, "28");
  check_q(&inv, 1, 1, 1, "-7");
  md_val_clear(&x);
  md_val_clear(&inv);
}
END_TEST

START_TEST(dual_det) {
  /* d det(X)[E_ij] is the cofactor C_ij; X = [1 2; 3 4], C = [4 -3; -2 1] */
  md_val x, d;
  mat(&x, 2, 2, 1, (const char *[]){"1", "2", "3", "4"});
  set_part(&x, 1, 0, 1, "1");
  ck_assert_int_eq(md_val_det(&d, &x), MD_OK);
  check_q(&d, 0, 0, 0, "-2");
  check_q(&d, 0, 0, 1, "-2");
  md_val_clear(&x);
  md_val_clear(&d);

  /* a singular X: no pivot, but the cofactor is still 4 */
  mat(&x, 2, 2, 1, (const char *[]){"1", "2", "2", "4"});
  set_part(&x, 0, 0, 1, "1");
  ck_assert_int_eq(md_val_det(&d, &x), MD_OK);
  check_q(&d, 0, 0, 0, "0");
  check_q(&d, 0, 0, 1, "4");
  md_val_clear(&x);
  md_val_clear(&d);
}
END_TEST

START_TEST(dual_functions) {
  md_val x, r;
  /* log(2 + eps): the derivative 1/2 stays exact */
  mat(&x, 1, 1, 1, (const char *[]){"2"});
  set_part(&x, 0, 0, 1, "1");
  ck_assert_int_eq(md_val_apply(&r, &x, FN_LOG), MD_OK);
  check_d(&r, 0, 0, 0, log(2));
  check_q(&r, 0, 0, 1, "1/2");
  md_val_clear(&r);
  ck_assert_int_eq(md_val_apply(&r, &x, FN_EXP), MD_OK);
  check_d(&r, 0, 0, 0, exp(2));
  check_d(&r, 0, 0, 1, exp(2));
  md_val_clear(&r);
  ck_assert_int_eq(md_val_apply(&r, &x, FN_SIGMOID), MD_OK);
  double s = 1 / (1 + exp(-2));
  check_d(&r, 0, 0, 1, s * (1 - s));
  md_val_clear(&r);
  md_val_clear(&x);

  /* sqrt(4/9 + eps) = 2/3 + 3/4 eps, exactly */
  mat(&x, 1, 1, 1, (const char *[]){"4/9"});
  set_part(&x, 0, 0, 1, "1");
  ck_assert_int_eq(md_val_apply(&r, &x, FN_SQRT), MD_OK);
  check_q(&r, 0, 0, 0, "2/3");
  check_q(&r, 0, 0, 1, "3/4");
  md_val_clear(&r);
  md_val_clear(&x);

  /* outside the domain */
  mat(&x, 1, 1, 0, (const char *[]){"-1"});
  ck_assert_int_eq(md_val_apply(&r, &x, FN_LOG), MD_DOMAIN);
  ck_assert_int_eq(md_val_apply(&r, &x, FN_SQRT), MD_DOMAIN);
  ck_assert_int_eq(md_val_apply(&r, &x, FN_ABS), MD_OK);
  check_q(&r, 0, 0, 0, "1");
  md_val_clear(&r);
  md_val_clear(&x);
  /* abs is not differentiable at 0 */
  mat(&x, 1, 1, 1, (const char *[]){"0"});
  set_part(&x, 0, 0, 1, "1");
  ck_assert_int_eq(md_val_apply(&r, &x, FN_ABS), MD_DOMAIN);
  md_val_clear(&x);
}
END_TEST

START_TEST(hyperdual_quadratic_form) {
  /* f(x) = x^T A x at x = (1, 1) + eps0 (1, 0) + eps1 (0, 1):
   * f = sum(A) = 10, the eps0 part v^T (A + A^T) x = 7, the eps0 eps1
   * part v^T (A + A^T) w = 5 */
  md_val a, x, xt, ax, f;
  mat(&a, 2, 2, 0, (const char *[]){"1", "2", "3", "4"});
  mat(&x, 2, 1, 2, (const char *[]){"1", "1"});
  set_part(&x, 0, 0, 1, "1");
  set_part(&x, 1, 0, 2, "1");
  ck_assert_int_eq(md_val_trans(&xt, &x), MD_OK);
  ck_assert_int_eq(md_val_mul(&ax, &a, &x), MD_OK);
  ck_assert_int_eq(md_val_mul(&f, &xt, &ax), MD_OK);
  ck_assert_uint_eq(f.order, 2);
  check_q(&f, 0, 0, 0, "10");
  check_q(&f, 0, 0, 1, "7");  /* row 1 of A + A^T = (2, 5), times x */
  check_q(&f, 0, 0, 2, "13"); /* row 2 = (5, 8) */
  check_q(&f, 0, 0, 3, "5");
  md_val_clear(&a);
  md_val_clear(&x);
  md_val_clear(&xt);
  md_val_clear(&ax);
  md_val_clear(&f);
}
END_TEST

START_TEST(number_format) {
  md_num x;
  md_num_init(&x);
  char buf[64];
  md_num_set_si(&x, -7, 2);
  md_num_format(&x, buf, sizeof buf);
  ck_assert_str_eq(buf, "-7/2");
  mpq_t big;
  mpq_init(big);
  mpz_ui_pow_ui(mpq_numref(big), 10, 999);
  md_num_set_q(&x, big);
  mpq_clear(big);
  md_num_format(&x, buf, sizeof buf);
  ck_assert_str_eq(buf, "~1.0000000000e+999");
  md_num_set_d(&x, 0.25);
  md_num_format(&x, buf, sizeof buf);
  ck_assert_str_eq(buf, "0.25");
  md_num_clear(&x);
}
END_TEST

/* An exact number as a double rounds toward zero, as GMP's mpq_get_d
 * does (value.c q_get_d divides small ones in doubles and corrects the
 * rounding): the same bits as GMP on quotients that round up, round
 * down, are exact, and on numbers past the words (2^53, 2^62). */
START_TEST(number_to_double_truncates) {
  static const char *const q[] = {
      "1/3",
      "-1/3",
      "2/3",
      "-2/3",
      "1/10",
      "-7/10",
      "5/4",
      "1/7",
      "6/7",
      "-6/7",
      "0",
      "42",
      "-1",
      "1/49",
      "9007199254740991/3",
      "-9007199254740991/7",
      "9007199254740993/3",
      "1/9007199254740991",
      "4611686018427387905/3",
      "123456789012345678901234567890/7",
      "-2/123456789012345678901234567",
  };
  md_num x;
  md_num_init(&x);
  mpq_t t;
  mpq_init(t);
  for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
    ck_assert_int_eq(mpq_set_str(t, q[i], 10), 0);
    mpq_canonicalize(t);
    md_num_set_q(&x, t);
    double want = mpq_get_d(t), got = md_num_get_d(&x);
    ck_assert_msg(got == want, "%s: %.17g, GMP %.17g", q[i], got, want);
  }
  /* a quotient of small words that a double division rounds up */
  md_num_set_si(&x, 1, 10);
  ck_assert(md_num_get_d(&x) == nextafter(1.0 / 10, 0));
  mpq_clear(t);
  md_num_clear(&x);
}
END_TEST

/* ---- the evaluator ---- */

static struct {
  md_source src;
  md_parsed p;
  md_env env;
  md_shapes *sh;
  md_eval *ev;
  expr *e;
} cur;

static void ev_setup(void) {
  memset(&cur, 0, sizeof cur);
}

static void ev_teardown(void) {
  md_eval_free(cur.ev);
  md_shapes_free(cur.sh);
  md_env_clear(&cur.env);
  md_parsed_clear(&cur.p);
  memset(&cur, 0, sizeof cur);
}

/* TEXT is "let ...; EXPR": an evaluator for EXPR. */
static void prepare(const char *text) {
  ev_teardown();
  md_errors err;
  md_errors_init(&err);
  cur.src = (md_source){"<test>", text, strlen(text), 1};
  bool ok = md_parse(tu_ctx, &cur.src, MD_PARSE_PROGRAM, &cur.p, &err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text, err.n ? err.v[0].msg : "");
  for (size_t i = 0; i + 1 < cur.p.n; i++)
    for (size_t k = 0; k < cur.p.stmts[i].ndecls; k++)
      md_env_add(&cur.env, &cur.p.stmts[i].decls[k]);
  cur.e = cur.p.stmts[cur.p.n - 1].lhs;
  cur.sh = md_shapes_new(tu_ctx, &cur.env);
  ok = md_shape_infer(cur.sh, cur.e, &cur.p, &cur.src, &err, NULL);
  ck_assert_msg(ok, "'%s': shape error: %s", text, err.n ? err.v[0].msg : "");
  md_errors_clear(&err);
  cur.ev = md_eval_new(tu_ctx, cur.sh, &cur.e, 1);
}

static void bind(const char *name, const md_val *v) {
  ck_assert_msg(md_eval_bind(cur.ev, name, v), "no symbol %s", name);
}

static void bind_mat(const char *name, uint32_t r, uint32_t c,
                     const char *const *q) {
  md_val v;
  mat(&v, r, c, 0, q);
  bind(name, &v);
  md_val_clear(&v);
}

START_TEST(derivative_of_det) {
  /* d/dX det(X) = det(X) X^-T, the cofactor matrix */
  prepare("let X : matrix(2, 2); d/dX det(X)");
  bind_mat("X", 2, 2, (const char *[]){"1", "2", "3", "4"});
  md_val r;
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"4", "-3", "-2", "1"});
  md_val_clear(&r);
}
END_TEST

START_TEST(derivative_layouts) {
  md_val r;
  /* a Jacobian in denominator layout: (i, j) = dy_j / dx_i */
  prepare("let A : matrix(2, 3); let x : vector(3); d/dx (A x)");
  bind_mat("A", 2, 3, (const char *[]){"1", "2", "3", "4", "5", "6"});
  bind_mat("x", 3, 1, (const char *[]){"1", "1", "1"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 3, 2, (const char *[]){"1", "4", "2", "5", "3", "6"});
  md_val_clear(&r);

  /* a vector by a scalar: a row */
  prepare("let x : vector(2); d/dalpha (alpha^2 x)");
  bind_mat("x", 2, 1, (const char *[]){"1", "2"});
  bind_mat("alpha", 1, 1, (const char *[]){"3"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 1, 2, (const char *[]){"6", "12"});
  md_val_clear(&r);

  /* along vec(X): d/dvec(X) vec(A X) = kron(I, A^T) */
  prepare("let A : matrix(2, 2); let X : matrix(2, 3); d/dvec(X) vec(A X)");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  bind_mat("X", 2, 3, (const char *[]){"1", "0", "2", "0", "1", "5"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  ck_assert_uint_eq(r.r, 6);
  ck_assert_uint_eq(r.c, 6);
  check_q(&r, 0, 1, 0, "3");
  check_q(&r, 1, 0, 0, "2");
  check_q(&r, 4, 5, 0, "3");
  check_q(&r, 0, 2, 0, "0");
  md_val_clear(&r);
}
END_TEST

START_TEST(structured_gradients) {
  md_val r;
  /* symmetric: (G + G^T) / 2 with G = A^T */
  prepare("let A : matrix(2, 2); let S : symmetric(2); d/dS tr(A S)");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  bind_mat("S", 2, 2, (const char *[]){"1", "0", "0", "1"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"1", "5/2", "5/2", "4"});
  md_val_clear(&r);
  /* diagonal: G .* I */
  prepare("let A : matrix(2, 2); let D : diagonal(2); d/dD tr(A D)");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  bind_mat("D", 2, 2, (const char *[]){"1", "0", "0", "1"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"1", "0", "0", "4"});
  md_val_clear(&r);
}
END_TEST

START_TEST(hessian) {
  prepare("let A : matrix(2, 2); let x : vector(2); hess(x^T A x, x)");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  bind_mat("x", 2, 1, (const char *[]){"7", "-1/2"});
  md_val r;
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"2", "5", "5", "8"});
  md_val_clear(&r);
  /* nested derivatives agree with it */
  prepare("let A : matrix(2, 2); let x : vector(2); d/dx d/dx (x^T A x)");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  bind_mat("x", 2, 1, (const char *[]){"7", "-1/2"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"2", "5", "5", "8"});
  md_val_clear(&r);
}
END_TEST

START_TEST(closed_terms_sized_by_context) {
  md_val r;
  prepare("let A : matrix(2, 2); A + 2 I");
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 2, 2, (const char *[]){"3", "2", "3", "6"});
  md_val_clear(&r);

  /* I is 3×3 on the left of A and 2×2 on its right */
  prepare("let A : matrix(3, 2); I A I + ones ones^T A");
  bind_mat("A", 3, 2, (const char *[]){"1", "2", "3", "4", "5", "6"});
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_mat(&r, 3, 2, (const char *[]){"10", "14", "12", "16", "14", "18"});
  md_val_clear(&r);

  /* kron(I, A) + kron(B, A): I must be the size of B */
  prepare(
      "let A : matrix(n, n); let B : matrix(m, m); kron(I, A) + kron(B, A)");
  md_eval_set_size(cur.ev, md_shape_of(cur.sh, expr_sym(tu_ctx, "A")).r, 2);
  md_eval_set_size(cur.ev, md_shape_of(cur.sh, expr_sym(tu_ctx, "B")).r, 3);
  bind_mat("A", 2, 2, (const char *[]){"1", "2", "3", "4"});
  md_val b;
  md_val_init(&b, 3, 3, 0);
  bind("B", &b);
  md_val_clear(&b);
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  ck_assert_uint_eq(r.r, 6);
  check_q(&r, 4, 4, 0, "1");
  check_q(&r, 5, 4, 0, "3");
  check_q(&r, 0, 2, 0, "0");
  md_val_clear(&r);

  /* nothing sizes I in tr(I) */
  prepare("tr(I)");
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_FAIL);
  ck_assert_ptr_nonnull(strstr(md_eval_why(cur.ev), "size of I"));
}
END_TEST

START_TEST(distinct_sizes) {
  prepare("let A : matrix(m, n); let B : matrix(n, p); A B");
  md_rng rng;
  md_rng_seed(&rng, 42);
  expr *a = expr_sym(tu_ctx, "A"), *b = expr_sym(tu_ctx, "B");
  for (int k = 0; k < 20; k++) {
    md_eval_draw_sizes(cur.ev, &rng);
    uint64_t m = md_eval_size(cur.ev, md_shape_of(cur.sh, a).r);
    uint64_t n = md_eval_size(cur.ev, md_shape_of(cur.sh, a).c);
    uint64_t p = md_eval_size(cur.ev, md_shape_of(cur.sh, b).c);
    ck_assert(m >= 2 && m <= 5 && n >= 2 && n <= 5 && p >= 2 && p <= 5);
    ck_assert(m != n && n != p && m != p);
  }
}
END_TEST

/* Sizes of 2^60 factors in 60 dimensions (kron(vec(t), vec(t)), sixty
 * times): each product's size is computed once, and found too large (it
 * was computed over the tree of factors, 2^60 steps). */
START_TEST(sizes_of_towers) {
  char text[4096];
  int n = snprintf(text, sizeof text,
                   "let x : vector(2); t60 where t1 = kron(x, x)");
  for (int i = 2; i <= 60; i++)
    n += snprintf(text + n, sizeof text - (size_t)n,
                  ", t%d = kron(vec(t%d), vec(t%d))", i, i - 1, i - 1);
  prepare(text);
  md_rng rng;
  md_rng_seed(&rng, 1);
  md_eval_draw_sizes(cur.ev, &rng);
  ck_assert_uint_eq(md_eval_size(cur.ev, md_shape_of(cur.sh, cur.e).r), 0);
  md_val r;
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r), MD_FAIL);
  ck_assert_ptr_nonnull(strstr(md_eval_why(cur.ev), "too large"));
  /* a small one: 2^(2^4) */
  prepare("let x : vector(2); t4 where t1 = kron(x, x), t2 = kron(vec(t1), "
          "vec(t1)), t3 = kron(vec(t2), vec(t2)), t4 = kron(vec(t3), vec(t3))");
  md_eval_draw_sizes(cur.ev, &rng);
  ck_assert_uint_eq(md_eval_size(cur.ev, md_shape_of(cur.sh, cur.e).r), 65536);
}
END_TEST

START_TEST(domain_retries) {
  md_rng rng;
  md_rng_seed(&rng, 7);
  md_val r;
  /* log needs positive entries: a later draw has them */
  prepare("let x : vector(n); sum(log(x))");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r), MD_OK);
  md_val_clear(&r);
  /* never defined: reported, not aborted */
  prepare("let x : vector(n); log(-abs(x) - 1)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_ptr_nonnull(strstr(md_eval_why(cur.ev), "log"));
  prepare("let A : matrix(n, n); inv(A - A)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_ptr_nonnull(strstr(md_eval_why(cur.ev), "singular"));
  ck_assert_uint_eq(md_eval_tries(cur.ev), MD_EVAL_TRIES);
  /* a divisor of numbers only is 0 at every point: one try */
  prepare("let X : matrix(n, n); X ./ (2 - 2)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_uint_eq(md_eval_tries(cur.ev), 1);
  /* a dividend of numbers only is not: (2 - 2) ./ X draws again */
  prepare("let X : matrix(n, n); (2 - 2) ./ (X - X)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_uint_eq(md_eval_tries(cur.ev), MD_EVAL_TRIES);
  /* an element-wise divisor built from I, ones and numbers: the same
   * zeros at every size, one try */
  prepare("let X : matrix(n, n); X ./ (I ./ I)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_uint_eq(md_eval_tries(cur.ev), 1);
  /* not one with a matrix product in it: I I is I, but ones^T ones is
   * the size, so X ./ (I - I I) draws all its points */
  prepare("let X : matrix(n, n); X ./ (I - I I)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_uint_eq(md_eval_tries(cur.ev), MD_EVAL_TRIES);
  /* nor an inverse: inv(ones ones^T - 2 I) is singular at size 2 only */
  prepare("let X : matrix(n, n); X .* inv(I - I)");
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r),
                   MD_DOMAIN);
  ck_assert_uint_eq(md_eval_tries(cur.ev), MD_EVAL_TRIES);
  /* spd draws are invertible every time */
  prepare("let S : spd(n); logdet(S)");
  for (int k = 0; k < 10; k++) {
    ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r), MD_OK);
    ck_assert(md_num_get_d(r.x) > 0);
    md_val_clear(&r);
  }
}
END_TEST

START_TEST(huge_exact_numbers_go_double) {
  prepare("alpha^30000");
  bind_mat("alpha", 1, 1, (const char *[]){"1/3"});
  md_val r;
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_HUGE);
  md_eval_use_doubles(cur.ev);
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  ck_assert(!md_val_is_exact(&r));
  md_val_clear(&r);
  /* and sampling does that by itself */
  md_rng rng;
  md_rng_seed(&rng, 1);
  ck_assert_int_eq(md_eval_sample(cur.ev, &rng, &cur.e, NULL, 1, &r), MD_OK);
  ck_assert(!md_val_is_exact(&r));
  md_val_clear(&r);
}
END_TEST

/* An N×N matrix, diagonally dominant, whose entries are near 1 (N on
 * the diagonal) with BITS bits in their numerators and denominators. */
static void big_matrix(md_val *v, uint32_t n, unsigned bits) {
  md_val_init(v, n, n, 0);
  mpq_t t;
  mpq_init(t);
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t j = 0; j < n; j++) {
      mpz_set_ui(mpq_denref(t), 1);
      mpz_mul_2exp(mpq_denref(t), mpq_denref(t), bits);
      mpz_add_ui(mpq_numref(t), mpq_denref(t), 1 + (i * 7 + j * 3) % 11);
      if (i == j)
        mpz_mul_ui(mpq_numref(t), mpq_numref(t), n);
      mpq_canonicalize(t);
      md_num_set_q(md_val_at(v, i, j, 0), t);
    }
  mpq_clear(t);
}

/* An inverse, det or matrix power is charged before it is done, in
 * exact numbers by the size its numbers will grow to: a 60×60 inverse of
 * 200-bit entries is done in doubles (MD_HUGE), a 200×200 inverse is
 * refused even so (the fuzzer's 168×168 inverse took 20 s in GMP, then
 * came past the budget). */
/* "let X : matrix(N, N); BODY" */
static void prepare_square(uint32_t n, const char *body) {
  static char text[128];
  snprintf(text, sizeof text, "let X : matrix(%u, %u); %s", n, n, body);
  prepare(text);
}

/* BODY with X an N×N big_matrix of BITS-bit entries, evaluated: its
 * status, and its value in *R when MD_OK. */
static md_status run_big(uint32_t n, unsigned bits, const char *body,
                         md_val *r) {
  prepare_square(n, body);
  md_val x;
  big_matrix(&x, n, bits);
  bind("X", &x);
  md_val_clear(&x);
  return md_eval_run(cur.ev, cur.e, NULL, r);
}

/* The same point again in doubles: it evaluates, inexactly. */
static void check_in_doubles(const char *what) {
  md_val r;
  md_eval_use_doubles(cur.ev);
  md_status st = md_eval_run(cur.ev, cur.e, NULL, &r);
  ck_assert_msg(st == MD_OK, "%s: %s", what, md_eval_why(cur.ev));
  ck_assert(!md_val_is_exact(&r));
  md_val_clear(&r);
}

/* ... and exactly, at first. */
static void check_exact(uint32_t n, unsigned bits, const char *body) {
  md_val r;
  ck_assert_int_eq(run_big(n, bits, body, &r), MD_OK);
  ck_assert(md_val_is_exact(&r));
  md_val_clear(&r);
}

START_TEST(cubic_work_charged_first) {
  static const char *const bodies[] = {"tr(inv(X))", "det(X)", "tr(X^7)"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    md_val r;
    ck_assert_int_eq(run_big(60, 200, bodies[i], &r), MD_HUGE);
    check_in_doubles(bodies[i]);
    ck_assert_int_eq(run_big(200, 1, bodies[i], &r), MD_FAIL);
    ck_assert_msg(strstr(md_eval_why(cur.ev), "too much arithmetic"), "%s",
                  md_eval_why(cur.ev));
  }
  /* small ones stay exact */
  check_exact(8, 20, "tr(inv(X))");
}
END_TEST

/* A long product of exact numbers goes on in doubles once the words of
 * its numbers pass a quarter of the budget (charge_mul): 40 factors
 * of 200-bit entries grew to 8 000 bits, under MD_EXACT_BITS, and
 * --verify spent seconds in GMP's gcds on such products. */
START_TEST(product_words_charged) {
  char body[256] = "X";
  for (int i = 1; i < 40; i++)
    strcat(body, " X");
  md_val r;
  ck_assert_int_eq(run_big(5, 200, body, &r), MD_HUGE);
  check_in_doubles(body);
  /* a short one stays exact */
  check_exact(5, 20, "X X X");
}
END_TEST

/* The largest size md_eval_draw_sizes gives over 20 draws. */
static unsigned largest_size_drawn(void) {
  md_rng rng;
  md_rng_seed(&rng, 7);
  unsigned most = 0;
  for (int k = 0; k < 20; k++) {
    md_eval_draw_sizes(cur.ev, &rng);
    strbuf b;
    sb_init(&b);
    md_eval_format_sizes(cur.ev, &b);
    for (const char *p = b.s; p && *p; p++)
      if (*p >= '0' && *p <= '9' &&
          (p == b.s || p[-1] == ' ' || (unsigned char)p[-1] == 0x97)) {
        unsigned v = (unsigned)strtoul(p, NULL, 10);
        most = v > most ? v : most;
      }
    sb_clear(&b);
  }
  return most;
}

/* Sizes 2..5 (or more for many dimensions), but 2..3 for a large DAG
 * with a derivative: 300 nested inverses used the budget up at 2..5. */
START_TEST(large_dags_draw_small_sizes) {
  prepare("d/dX tr(A1 A2 X)");
  ck_assert_uint_ge(largest_size_drawn(), 4);
  char text[4096] = "d/dX tr(";
  for (int i = 1; i <= 300; i++)
    sprintf(text + strlen(text), "A%d ", i);
  strcat(text, "X)");
  prepare(text);
  ck_assert_uint_le(largest_size_drawn(), 3);
}
END_TEST

/* The values of the symbols as a counterexample shows them. */
static void check_values(const char *want) {
  strbuf b;
  sb_init(&b);
  md_eval_format_values(cur.ev, "  ", &b);
  ck_assert_str_eq(b.len ? b.s : "", want);
  sb_clear(&b);
}

START_TEST(values_shown) {
  /* in the order of first appearance: a vector as a column, a scalar
   * as its number, a matrix by rows */
  prepare("let A : matrix(2, 3); x^T A y + alpha");
  bind_mat("x", 2, 1, (const char *[]){"1", "-1/2"});
  bind_mat("A", 2, 3, (const char *[]){"1", "2", "3", "4", "5", "-6"});
  bind_mat("y", 3, 1, (const char *[]){"0", "1", "7/3"});
  bind_mat("alpha", 1, 1, (const char *[]){"-5/2"});
  check_values("  x = [1; -1/2]\n"
               "  A = [1, 2, 3; 4, 5, -6]\n"
               "  y = [0; 1; 7/3]\n"
               "  alpha = -5/2\n");
  /* the exact values drawn, also once the point is in doubles */
  md_eval_use_doubles(cur.ev);
  check_values("  x = [1; -1/2]\n"
               "  A = [1, 2, 3; 4, 5, -6]\n"
               "  y = [0; 1; 7/3]\n"
               "  alpha = -5/2\n");
}
END_TEST

START_TEST(values_wide_and_cut) {
  /* too wide for a line: a row a line, the columns aligned */
  prepare("let A : matrix(2, 6); sum(A)");
  bind_mat("A", 2, 6,
           (const char *[]){"-123456/7", "1", "-123456/7", "2", "-123456/7",
                            "3", "4", "-123456/7", "5", "-123456/7", "6",
                            "-123456/7"});
  check_values("  A = [-123456/7,         1, -123456/7,         2, "
               "-123456/7,         3;\n"
               "               4, -123456/7,         5, -123456/7,         "
               "6, -123456/7]\n");
  /* past 8 rows or columns: the first 4, and the size */
  prepare("let x : vector(9); sum(x)");
  bind_mat("x", 9, 1,
           (const char *[]){"1", "2", "3", "4", "5", "6", "7", "8", "9"});
  check_values("  x = [1; 2; 3; 4; ...]  # 9×1, cut to 4×1\n");
}
END_TEST

/* The point moved by 1 +- rel in each entry, symmetric ones alike, and
 * then as it was: S is symmetric, so S - S^T stays 0; x^T x moves by at
 * most (1 + rel)^2; the exact point and its exact value come back. */
START_TEST(perturbed_point) {
  prepare(
      "let S : symmetric(3); let x : vector(3); (x^T x) (S - S^T) + x^T x I");
  bind_mat("S", 3, 3,
           (const char *[]){"1", "2", "3", "2", "5", "6", "3", "6", "9"});
  bind_mat("x", 3, 1, (const char *[]){"1", "2", "2"});
  md_val r, m;
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_q(&r, 0, 0, 0, "9");
  check_q(&r, 0, 1, 0, "0");
  md_val_clear(&r);
  const double rel = 0x1p-20;
  ck_assert_int_eq(md_eval_perturbed(cur.ev, rel, &cur.e, NULL, 1, &m), MD_OK);
  for (uint32_t i = 0; i < 3; i++)
    for (uint32_t j = 0; j < 3; j++) {
      md_num *x = md_val_at(&m, i, j, 0);
      ck_assert(!x->exact);
      if (i != j) {
        ck_assert(x->d == 0); /* S kept symmetric */
      } else {
        ck_assert(fabs(x->d - 9) <= 9 * (2 * rel + rel * rel) * (1 + 1e-9));
      }
    }
  /* some entry moved: the value moved */
  ck_assert(md_num_get_d(md_val_at(&m, 0, 0, 0)) != 9);
  md_val_clear(&m);
  ck_assert_int_eq(md_eval_run(cur.ev, cur.e, NULL, &r), MD_OK);
  check_q(&r, 0, 0, 0, "9"); /* exact again */
  md_val_clear(&r);
}
END_TEST

static Suite *eval_suite(void) {
  Suite *s = suite_create("eval");
  TCase *tc = tu_tcase(s, "exact");
  tcase_add_test(tc, inverse_exact);
  tcase_add_test(tc, singular_inverse);
  tcase_add_test(tc, singular_inverse_in_doubles);
  tcase_add_test(tc, det_exact);
  tcase_add_test(tc, kron_vec_diag_trace);
  tcase_add_test(tc, number_format);
  tcase_add_test(tc, number_to_double_truncates);
  tc = tu_tcase(s, "dual");
  tcase_add_test(tc, dual_product);
  tcase_add_test(tc, dual_inverse);
  tcase_add_test(tc, dual_det);
  tcase_add_test(tc, dual_functions);
  tcase_add_test(tc, hyperdual_quadratic_form);
  tc = tu_tcase(s, "evaluator");
  tcase_add_checked_fixture(tc, ev_setup, ev_teardown);
  tcase_add_test(tc, derivative_of_det);
  tcase_add_test(tc, derivative_layouts);
  tcase_add_test(tc, structured_gradients);
  tcase_add_test(tc, hessian);
  tcase_add_test(tc, closed_terms_sized_by_context);
  tcase_add_test(tc, distinct_sizes);
  tcase_add_test(tc, sizes_of_towers);
  tcase_add_test(tc, domain_retries);
  tcase_add_test(tc, huge_exact_numbers_go_double);
  tcase_add_test(tc, cubic_work_charged_first);
  tcase_add_test(tc, product_words_charged);
  tcase_add_test(tc, large_dags_draw_small_sizes);
  tcase_add_test(tc, values_shown);
  tcase_add_test(tc, values_wide_and_cut);
  tcase_add_test(tc, perturbed_point);
  return s;
}

int main(void) {
  return tu_run(eval_suite());
}
