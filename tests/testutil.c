/* testutil.c - helpers shared by the Check suites; see testutil.h. */
#include "testutil.h"

#include "eval.h"
#include "print_text.h"
#include "simplify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

md_ctx *tu_ctx;
static char *print_bufs[2]; /* tu_print's results */
static int print_next;

void tu_setup(void) {
  tu_ctx = md_ctx_new();
}

void tu_teardown(void) {
  md_ctx_free(tu_ctx);
  tu_ctx = NULL;
  for (int i = 0; i < 2; i++) {
    free(print_bufs[i]);
    print_bufs[i] = NULL;
  }
}

TCase *tu_tcase(Suite *s, const char *name) {
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, tu_setup, tu_teardown);
  tcase_set_timeout(tc, TU_TIMEOUT);
  suite_add_tcase(s, tc);
  return tc;
}

int tu_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

expr *tu_parse(const char *text) {
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  if (!md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
    char msg[1024];
    unsigned line, col;
    md_source_linecol(&src, err.v[0].loc.begin, &line, &col);
    snprintf(msg, sizeof msg, "%s", err.v[0].msg);
    md_errors_clear(&err);
    ck_abort_msg("'%s' does not parse: %u:%u: %s", text, line, col, msg);
  }
  md_errors_clear(&err);
  size_t n = p.n;
  md_stmt_kind kind = n ? p.stmts[0].kind : ST_EMPTY;
  expr *e = n ? p.stmts[0].lhs : NULL;
  md_parsed_clear(&p);
  ck_assert_msg(n == 1 && kind == ST_EXPR,
                "'%s' is not one expression (%zu statements, first kind %d)",
                text, n, (int)kind);
  ck_assert_ptr_nonnull(e);
  return e;
}

tu_error tu_parse_fail(const char *text, size_t len, md_parse_mode mode) {
  md_source src = {"<test>", text, len, 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  tu_error r = {0};
  r.parsed = md_parse(tu_ctx, &src, mode, &p, &err);
  r.nerr = err.n;
  if (r.parsed) {
    md_parsed_clear(&p);
  } else {
    /* On failure the result must be empty: nothing to free, nothing
     * half-built. */
    ck_assert_ptr_null(p.stmts);
    ck_assert_ptr_null(p.locs);
    ck_assert_uint_eq(p.n, 0);
  }
  if (err.n > 0) {
    snprintf(r.msg, sizeof r.msg, "%s", err.v[0].msg);
    ck_assert_msg(err.v[0].src == &src, "error without its source");
    r.begin = err.v[0].loc.begin;
    r.end = err.v[0].loc.end;
    if (md_loc_valid(err.v[0].loc))
      md_source_linecol(&src, r.begin, &r.line, &r.col);
  }
  md_errors_clear(&err);
  return r;
}

void tu_check_parse_error(const char *text, size_t len, const char *msg,
                          unsigned col) {
  tu_error r = tu_parse_fail(text, len, MD_PARSE_PROGRAM);
  ck_assert_msg(!r.parsed, "'%.*s' parsed, expected \"%s\"", (int)len, text,
                msg);
  ck_assert_msg(r.nerr == 1, "'%.*s': %zu errors, the first \"%s\"", (int)len,
                text, r.nerr, r.msg);
  ck_assert_msg(strcmp(r.msg, msg) == 0,
                "'%.*s': message\n  \"%s\"\nexpected\n  \"%s\"", (int)len, text,
                r.msg, msg);
  ck_assert_msg(r.line == 1 && r.col == col,
                "'%.*s': error at %u:%u, expected 1:%u (\"%s\")", (int)len,
                text, r.line, r.col, col, msg);
}

const char *tu_print(const expr *e) {
  free(print_bufs[print_next]);
  print_bufs[print_next] = md_print_text_alloc(tu_ctx, e);
  const char *s = print_bufs[print_next];
  print_next ^= 1;
  return s;
}

/* ---- random expressions ---- */

/* The library's generator (eval.h), on the state the tests seed. */
static uint64_t next(tu_gen *g) {
  md_rng r;
  md_rng_seed(&r, g->rng);
  uint64_t z = md_rng_next(&r);
  g->rng = r.s;
  return z;
}

unsigned tu_below(tu_gen *g, unsigned n) {
  return (unsigned)(next(g) % n);
}

/* ---- simplification ---- */

expr *tu_simplify_in(const char *text, md_shapes **shapes_out, md_env *env) {
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

void tu_check_simplify(const char *text, const char *want) {
  md_env env;
  md_env_init(&env);
  md_shapes *sh;
  expr *r = tu_simplify_in(text, &sh, &env);
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

bool tu_equal_in(const char *decls, const char *lhs, const char *rhs) {
  char text[1024];
  snprintf(text, sizeof text, "%s%s = %s", decls, lhs, rhs);
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text, err.n ? err.v[0].msg : "");
  md_env env;
  md_env_init(&env);
  for (size_t i = 0; i + 1 < p.n; i++)
    for (size_t k = 0; k < p.stmts[i].ndecls; k++)
      md_env_add(&env, &p.stmts[i].decls[k]);
  md_stmt *st = &p.stmts[p.n - 1];
  ck_assert_int_eq(st->kind, ST_EQ);
  md_shapes *sh = md_shapes_new(tu_ctx, &env);
  ok = md_shape_infer(sh, st->lhs, &p, &src, &err, NULL) &&
       md_shape_infer(sh, st->rhs, &p, &src, &err, NULL);
  ck_assert_msg(ok, "'%s': shape error: %s", text, err.n ? err.v[0].msg : "");
  bool eq = md_equal(tu_ctx, sh, st->lhs, st->rhs);
  md_shapes_free(sh);
  md_env_clear(&env);
  md_errors_clear(&err);
  md_parsed_clear(&p);
  return eq;
}

expr *tu_rat(long p, long q) {
  mpq_t v;
  mpq_init(v);
  mpq_set_si(v, p, (unsigned long)q);
  mpq_canonicalize(v);
  expr *e = expr_num(tu_ctx, v);
  mpq_clear(v);
  return e;
}

static expr *gen_num(tu_gen *g) {
  switch (tu_below(g, g->big_numbers ? 6 : 5)) {
  case 0:
  case 1:
    return expr_int(tu_ctx, (long)tu_below(g, 13));
  case 2:
    return expr_int(tu_ctx, -(long)tu_below(g, 13) - 1);
  case 3:
  case 4:
    return tu_rat((long)tu_below(g, 41) - 20, (long)tu_below(g, 12) + 1);
  default: {
    /* a big one: 10^k / 7 or -(10^k) */
    mpq_t q;
    mpq_init(q);
    mpz_ui_pow_ui(mpq_numref(q), 10, tu_below(g, 40) + 10);
    if (tu_below(g, 2))
      mpz_set_ui(mpq_denref(q), 7);
    else
      mpz_neg(mpq_numref(q), mpq_numref(q));
    mpq_canonicalize(q);
    expr *e = expr_num(tu_ctx, q);
    mpq_clear(q);
    return e;
  }
  }
}

/* An exponent: an integer (negative ones too) or a rational. */
static expr *gen_exponent(tu_gen *g) {
  if (tu_below(g, 3))
    return expr_int(tu_ctx, (long)tu_below(g, 12) - 5);
  return tu_rat((long)tu_below(g, 21) - 10, (long)tu_below(g, 6) + 1);
}

static expr *gen_name(tu_gen *g) {
  return expr_sym(tu_ctx, g->names[tu_below(g, (unsigned)g->nnames)]);
}

static expr *gen_wrt(tu_gen *g) {
  expr *s = gen_name(g);
  return tu_below(g, 4) ? s : expr_call1(tu_ctx, FN_VEC, s);
}

expr *tu_gen_expr(tu_gen *g, int depth) {
  if (depth == 0 || tu_below(g, 5) == 0) {
    unsigned k = tu_below(g, 20);
    if (k < 5)
      return gen_num(g);
    if (k == 5)
      return expr_ident(tu_ctx);
    if (k == 6)
      return expr_ones(tu_ctx);
    return gen_name(g);
  }
  depth--;
  expr *v[4];
  size_t n = 2 + tu_below(g, 3);
  unsigned k = tu_below(g, g->kron_twice ? 20 : 19);
  if (g->kron_twice && k >= 8)
    k = k == 8 ? 7 : k - 1; /* 7 and 8 are both kron */
  switch (k) {
  case 0:
    for (size_t i = 0; i < n; i++)
      v[i] = tu_gen_expr(g, depth);
    return expr_add_n(tu_ctx, v, n);
  case 1:
    return expr_sub(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 2:
    return expr_neg(tu_ctx, tu_gen_expr(g, depth));
  case 3:
    for (size_t i = 0; i < n; i++)
      v[i] = tu_gen_expr(g, depth);
    return expr_mul_n(tu_ctx, v, n);
  case 4:
    return expr_div(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 5:
    return expr_had(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 6:
    return expr_hdiv(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 7:
    return expr_kron(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 8:
    return expr_trans(tu_ctx, tu_gen_expr(g, depth));
  case 9:
    return expr_inv(tu_ctx, tu_gen_expr(g, depth));
  case 10:
  case 11:
    return expr_pow(tu_ctx, tu_gen_expr(g, depth), gen_exponent(g));
  case 12:
    return expr_epow(tu_ctx, tu_gen_expr(g, depth), gen_exponent(g));
  case 13:
  case 14:
    return expr_call1(tu_ctx, tu_below(g, FN_NBUILTIN), tu_gen_expr(g, depth));
  case 15:
    return expr_inner(tu_ctx, tu_gen_expr(g, depth), tu_gen_expr(g, depth));
  case 16:
    return expr_diff(tu_ctx, tu_gen_expr(g, depth), gen_wrt(g));
  case 17:
    return expr_hess(tu_ctx, tu_gen_expr(g, depth), gen_wrt(g));
  default:
    /* norms, often nested, for the lexer's "||" */
    return expr_call1(tu_ctx, tu_below(g, 2) ? FN_NORM2 : FN_NORM1,
                      tu_gen_expr(g, depth));
  }
}
