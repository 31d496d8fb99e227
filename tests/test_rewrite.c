/*
 * test_rewrite.c - simplification rules (rules.h) and the rewriter
 * (rewrite.h): loading and its errors, matching (consecutive runs of
 * products, any operands of sums and .*, repeated variables, guards, size
 * conditions), termination of rule sets that loop, linear work on a DAG
 * whose tree is exponential, and md_simplify with the built-in rules.
 *
 * The property test simplifies random expressions built from the left
 * sides of rules/simplify.rules and ordinary operations, evaluates both
 * at random rational points (eval.h, which knows no rule), and checks
 * that the rules never make a result larger than the normal form alone.
 * A failure prints the seed and the input.  Another seed or more rounds:
 * MATDIFF_TEST_SEED=7 MATDIFF_TEST_ROUNDS=5000 build/tests/test_rewrite
 */
#include "testutil.h"

#include "eval.h"
#include "rewrite.h"
#include "rules.h"
#include "shape.h"
#include "simplify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures of one test: declarations, rules, shapes ---- */

typedef struct env_rules {
  md_env env;
  md_rules rules;
  md_errors err;
} env_rules;

/* Loads RULES (a user's file) over the built-in ones. */
static bool load_rules(env_rules *t, const char *rules) {
  md_env_init(&t->env);
  md_rules_init(&t->rules);
  md_errors_init(&t->err);
  md_source *src = arena_alloc(md_ctx_arena(tu_ctx), sizeof *src);
  *src = (md_source){"<rules>", rules, strlen(rules), 1};
  return md_rules_load(&t->rules, tu_ctx, src, &t->err);
}

static void done(env_rules *t) {
  md_errors_clear(&t->err);
  md_rules_clear(&t->rules);
  md_env_clear(&t->env);
}

/* The expression of "let ...; EXPR", its declarations into T's env and
 * its shapes inferred into a new *SH. */
static expr *parse_in(env_rules *t, const char *text, md_shapes **sh) {
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err);
  ck_assert_msg(ok, "'%s' does not parse", text);
  for (size_t i = 0; i + 1 < p.n; i++)
    for (size_t k = 0; k < p.stmts[i].ndecls; k++)
      md_env_add(&t->env, &p.stmts[i].decls[k]);
  expr *e = p.stmts[p.n - 1].lhs;
  *sh = md_shapes_new(tu_ctx, &t->env);
  ok = md_shape_infer(*sh, e, &p, &src, &err, NULL);
  md_parsed_clear(&p);
  md_errors_clear(&err);
  ck_assert_msg(ok, "'%s': shape error", text);
  return e;
}

/* TEXT rewritten by the user's RULES alone (no built-in rules, no normal
 * form) reads WANT. */
static void check_rewrite(const char *rules, const char *text,
                          const char *want) {
  env_rules t;
  bool ok = load_rules(&t, rules);
  ck_assert_msg(ok, "rules '%s' do not load: %s", rules,
                t.err.n ? t.err.v[0].msg : "");
  size_t all = t.rules.nrw;
  t.rules.nrw = t.rules.nrwuser; /* the user's rules only */
  md_shapes *sh;
  expr *e = parse_in(&t, text, &sh);
  expr *r = md_rewrite(tu_ctx, sh, &t.rules, e);
  ck_assert_ptr_nonnull(r);
  const char *got = tu_print(r);
  bool match = strcmp(got, want) == 0;
  /* a result is a fixed point */
  expr *again = md_rewrite(tu_ctx, sh, &t.rules, r);
  md_shapes_free(sh);
  t.rules.nrw = all;
  done(&t);
  ck_assert_msg(match, "'%s' by '%s' gave \"%s\", expected \"%s\"", text, rules,
                got, want);
  ck_assert_msg(again == r, "'%s': rewriting %s again changes it", text, got);
}

/* RULES fail to load with MSG as the first message. */
static void check_load_error(const char *rules, const char *msg) {
  env_rules t;
  bool ok = load_rules(&t, rules);
  char got[512] = "";
  if (t.err.n)
    snprintf(got, sizeof got, "%s", t.err.v[0].msg);
  done(&t);
  ck_assert_msg(!ok, "rules '%s' loaded", rules);
  ck_assert_msg(strcmp(got, msg) == 0, "rules '%s': \"%s\", expected \"%s\"",
                rules, got, msg);
}

/* TEXT simplified with the built-in rules (md_simplify) reads WANT; with
 * none (md_simplify_with NULL) it reads PLAIN. */
static void check_simplify(const char *text, const char *want,
                           const char *plain) {
  env_rules t;
  md_env_init(&t.env);
  md_shapes *sh;
  expr *e = parse_in(&t, text, &sh);
  expr *r = md_simplify(tu_ctx, sh, e);
  expr *p = md_simplify_with(tu_ctx, sh, NULL, e);
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(p);
  const char *got = tu_print(r);
  bool ok = strcmp(got, want) == 0;
  const char *gotp = tu_print(p);
  bool okp = strcmp(gotp, plain) == 0;
  expr *again = md_simplify(tu_ctx, sh, r);
  md_shapes_free(sh);
  md_env_clear(&t.env);
  ck_assert_msg(ok, "'%s' simplified to \"%s\", expected \"%s\"", text, got,
                want);
  ck_assert_msg(okp, "'%s' without rules gave \"%s\", expected \"%s\"", text,
                gotp, plain);
  ck_assert_msg(again == r, "'%s': simplifying again changes it", text);
}

/* ---- loading ---- */

START_TEST(test_load) {
  env_rules t;
  ck_assert(load_rules(&t, "let x : vector\n"
                           "diag(diag(x)) = x\n"
                           "d/dX <G, sin(X)> = G .* cos(X)\n"
                           "kron(A, B) kron(C, D) = kron(A C, B D)\n"
                           "inv(A B) = inv(B) inv(A)\n"));
  ck_assert_uint_eq(t.rules.nrwuser, 3);
  ck_assert_uint_gt(t.rules.nrw, 3); /* and the built-in ones after */
  ck_assert_uint_eq(t.rules.nuser, 1);
  md_rwrule *d = &t.rules.rw[0], *k = &t.rules.rw[1];
  ck_assert_str_eq(tu_print(d->lhs), "diag(diag(x))");
  ck_assert_uint_eq(d->nguards, 1);
  ck_assert_uint_eq(d->line, 2);
  ck_assert_uint_eq(d->nneeds, 0);
  /* kron(A, B) kron(C, D) alone makes cols(A) = rows(C) and cols(B) =
   * rows(D) already (shape.h unifies products factor by factor) */
  ck_assert_uint_eq(k->nneeds, 0);
  /* inv(A B) needs A B square; inv(A) inv(B) needs A and B square */
  ck_assert_uint_gt(t.rules.rw[2].nneeds, 0);
  ck_assert_ptr_eq(md_rules_find_rewrite(&t.rules, d->lhs, d->rhs), d);
  ck_assert_ptr_null(md_rules_find_rewrite(&t.rules, d->rhs, d->lhs));
  done(&t);
}
END_TEST

/* The rules made at build time (frozen.h) are the rules parsed from
 * rules/, node for node: the same records, in the same order. */
static void same_guards(const md_guard *a, size_t na, const md_guard *b,
                        size_t nb) {
  ck_assert_uint_eq(na, nb);
  for (size_t i = 0; i < na; i++) {
    ck_assert_ptr_eq(a[i].var, b[i].var);
    ck_assert_int_eq(a[i].kind, b[i].kind);
  }
}

START_TEST(test_frozen_as_parsed) {
  md_rules parsed, frozen, rewrites;
  md_rules_init(&parsed);
  md_rules_init(&frozen);
  md_rules_init(&rewrites);
  md_errors err;
  md_errors_init(&err);
  ck_assert(md_rules_parse_builtin(&parsed, tu_ctx, &err));
  ck_assert(md_rules_load_builtin(&frozen, tu_ctx, &err));
  ck_assert(md_rules_load_rewrites(&rewrites, tu_ctx, &err));
  ck_assert_uint_gt(parsed.n, 50);
  ck_assert_uint_gt(parsed.nrw, 20);
  ck_assert_uint_eq(frozen.n, parsed.n);
  ck_assert_uint_eq(frozen.nrw, parsed.nrw);
  ck_assert_uint_eq(rewrites.n, 0);
  ck_assert_uint_eq(rewrites.nrw, parsed.nrw);
  for (size_t i = 0; i < parsed.n; i++) {
    const md_rule *a = &parsed.v[i], *b = &frozen.v[i];
    ck_assert_ptr_eq(a->pattern, b->pattern);
    ck_assert_ptr_eq(a->var, b->var);
    ck_assert_ptr_eq(a->adj, b->adj);
    ck_assert_ptr_eq(a->result, b->result);
    ck_assert_ptr_eq(a->file, b->file);
    ck_assert_uint_eq(a->line, b->line);
    same_guards(a->guards, a->nguards, b->guards, b->nguards);
  }
  for (size_t i = 0; i < parsed.nrw; i++) {
    const md_rwrule *a = &parsed.rw[i];
    for (int k = 0; k < 2; k++) {
      const md_rwrule *b = k ? &rewrites.rw[i] : &frozen.rw[i];
      ck_assert_ptr_eq(a->lhs, b->lhs);
      ck_assert_ptr_eq(a->rhs, b->rhs);
      ck_assert_ptr_eq(a->file, b->file);
      ck_assert_uint_eq(a->line, b->line);
      ck_assert_int_eq(a->sub, b->sub);
      same_guards(a->guards, a->nguards, b->guards, b->nguards);
      ck_assert_uint_eq(a->nneeds, b->nneeds);
      for (size_t j = 0; j < a->nneeds; j++) {
        ck_assert_ptr_eq(a->needs[j].a, b->needs[j].a);
        ck_assert_ptr_eq(a->needs[j].b, b->needs[j].b);
        ck_assert_uint_eq(a->needs[j].aside, b->needs[j].aside);
        ck_assert_uint_eq(a->needs[j].bside, b->needs[j].bside);
      }
    }
  }
  md_errors_clear(&err);
  md_rules_clear(&parsed);
  md_rules_clear(&frozen);
  md_rules_clear(&rewrites);
}
END_TEST

START_TEST(test_load_errors) {
  check_load_error("X = X^T^T",
                   "the left side of a rule cannot be a lone variable (X "
                   "would match everything): write an operation, such as "
                   "log(exp(X)) = X");
  check_load_error("2 = 1 + 1", "the left side of a rule must be an "
                                "operation, such as log(exp(X)) = X");
  check_load_error("log(exp(X)) = Y",
                   "the right side uses Y, which the left side does not "
                   "bind: every variable of the result must occur on the "
                   "left");
  check_load_error("tr(d/dX tr(X)) = 1",
                   "a simplification rule may not hold a derivative; a "
                   "derivative rule reads d/dX <G, op(..., X, ...)> = "
                   "result");
  /* a and b^T are matrices of any size here, never 1: needs a guard */
  check_load_error("kron(a, b^T) = a b^T",
                   "the two sides of this rule do not have one shape (a "
                   "variable without a let is a matrix of any size, never "
                   "1×1: declare vectors and scalars)");
  check_load_error("tr(X) = X", "the two sides of this rule do not have one "
                                "shape (a variable without a let is a "
                                "matrix of any size, never 1×1: declare "
                                "vectors and scalars)");
}
END_TEST

/* ---- matching ---- */

START_TEST(test_whole) {
  check_rewrite("log(exp(X)) = X", "A + log(exp(B))", "A + B");
  check_rewrite("log(exp(X)) = X", "log(exp(log(exp(B))))", "B");
  /* below the root, a pattern matches a whole node */
  check_rewrite("sin(X Y) = cos(X Y)", "sin(A B C)", "sin(A B C)");
}
END_TEST

/* The rewriter tries only the rules of a node's head, in their order:
 * of two rules for sin, the first that matches; a rule for cos does not
 * apply to sin.  Rules loaded after the rewriter was made (a session
 * that reads another rules file) are tried too, after the user's earlier
 * ones and before the built-in ones. */
START_TEST(test_rules_by_head) {
  check_rewrite("tanh(X) = X\nsin(X^T) = cos(X)^T\nsin(X) = X",
                "sin(A^T) + sin(C)", "cos(A)^T + C");
  check_rewrite("sin(X) = cos(X)\nsin(X) = X", "sin(A)", "cos(A)");
  env_rules t;
  ck_assert(load_rules(&t, "exp(X) = X"));
  md_shapes *sh;
  expr *e = parse_in(&t, "exp(A) + log(B)", &sh);
  md_rewriter *R = md_rewriter_new(tu_ctx, sh, &t.rules);
  ck_assert_str_eq(tu_print(md_rewriter_run(R, e)), "A + log(B)");
  md_source *src = arena_alloc(md_ctx_arena(tu_ctx), sizeof *src);
  const char *more = "log(X) = sin(X)\nexp(X) = cos(X)";
  *src = (md_source){"<more>", more, strlen(more), 1};
  ck_assert(md_rules_load(&t.rules, tu_ctx, src, &t.err));
  md_shapes *sh2; /* (R goes on with SH's shapes) */
  expr *f = parse_in(&t, "exp(C) + log(D)", &sh2);
  const char *got = tu_print(md_rewriter_run(R, f));
  md_rewriter_free(R);
  md_shapes_free(sh);
  md_shapes_free(sh2);
  done(&t);
  ck_assert_str_eq(got, "C + sin(D)");
}
END_TEST

START_TEST(test_runs) {
  /* k consecutive factors of a longer product: the run is replaced */
  check_rewrite("inv(X) X = I", "A inv(B) B C", "A I C");
  check_rewrite("inv(X) X = I", "A inv(B) C B", "A B^-1 C B");
  check_rewrite("let a : vector, b : vector\n"
                "kron(a, b) = kron(a, I) b",
                "A kron(x, y)", "A kron(x, I) y");
}
END_TEST

START_TEST(test_commuting) {
  /* any operands of a sum or .*, a repeated variable one node twice */
  check_rewrite("sin(X) + sin(X) = 2 sin(X)", "A + sin(B) + C + sin(B)",
                "A + 2 sin(B) + C");
  check_rewrite("sin(X) + sin(X) = 2 sin(X)", "sin(B) + sin(C)",
                "sin(B) + sin(C)");
  check_rewrite("X .* (ones ones^T) = X", "(ones ones^T) .* A .* B", "A .* B");
  check_rewrite("X .* (ones ones^T) = X", "A .* (ones ones^T)", "A");
}
END_TEST

START_TEST(test_guards) {
  /* x must be a vector: diag(diag(X)) of a matrix X stays */
  check_rewrite("let x : vector\ndiag(diag(x)) = x", "diag(diag(X)) + A",
                "diag(diag(X)) + A");
  check_rewrite("let x : vector\ndiag(diag(x)) = x", "diag(diag(A y))", "A y");
  check_rewrite("let S : symmetric\nS^T = S", "let P : symmetric; P^T + A^T",
                "P + A^T");
  /* a scalar .* (ones ones^T) is a matrix: the result would be 1×1 */
  check_rewrite("X .* (ones ones^T) = X", "alpha .* (ones ones^T)",
                "alpha .* (ones ones^T)");
}
END_TEST

START_TEST(test_sizes) {
  const char *mixed = "kron(A, B) kron(C, D) = kron(A C, B D)";
  check_rewrite(mixed,
                "let A : matrix(2, 3), C : matrix(3, 2), B : matrix(2, 2), "
                "D : matrix(2, 1); kron(A, B) kron(C, D)",
                "kron(A C, B D)");
  /* the product fits (3·2 = 2·3) but A C does not */
  check_rewrite(mixed,
                "let A : matrix(2, 3), C : matrix(2, 2), B : matrix(2, 2), "
                "D : matrix(3, 1); kron(A, B) kron(C, D)",
                "kron(A, B) kron(C, D)");
  check_rewrite(mixed, "kron(I, b^T) kron(x, b)", "kron(I x, b^T b)");
  /* a size condition found when the rule was loaded: A and B square */
  const char *inv = "inv(A B) = inv(B) inv(A)";
  check_rewrite(inv, "let A : matrix(n, n), B : matrix(n, n); inv(A B)",
                "B^-1 A^-1");
  check_rewrite(inv, "let A : matrix(2, 3), B : matrix(3, 2); inv(A B)",
                "(A B)^-1");
  /* unknown sizes are not assumed equal (m×n times n×m) */
  check_rewrite(inv, "inv(A B)", "(A B)^-1");
}
END_TEST

START_TEST(test_loops) {
  /* a user's rules that loop stop, at the rewriter's budget, with an
   * error naming the rule (issue 15): A B = B A at line 1 */
  static const char *const sets[] = {"A B = B A\n", "sin(X) = sin(sin(X))\n"};
  static const char *const inputs[] = {
      "let A : matrix(n, n), B : matrix(n, n); tr(A B)", "sin(alpha)"};
  for (size_t i = 0; i < 2; i++) {
    env_rules t;
    ck_assert(load_rules(&t, sets[i]));
    md_shapes *sh;
    expr *e = parse_in(&t, inputs[i], &sh);
    ck_assert_ptr_null(md_rewrite(tu_ctx, sh, &t.rules, e));
    ck_assert(md_ctx_limit_is_rule(tu_ctx));
    char why[256];
    md_ctx_limit_text(tu_ctx, why, sizeof why);
    ck_assert_msg(strstr(why, "rewritten without end by the rule at ") &&
                      strstr(why, ":1"),
                  "%s", why);
    ck_assert_ptr_null(md_simplify_with(tu_ctx, sh, &t.rules, e));
    md_shapes_free(sh);
    done(&t);
  }
}
END_TEST

/* A DAG of 2^60 paths: t_{k+1} = log(exp(t_k)) ./ t_k.  Linear work
 * rewrites it at once. */
START_TEST(test_dag) {
  env_rules t;
  ck_assert(load_rules(&t, "log(exp(X)) = X\n"));
  size_t all = t.rules.nrw;
  t.rules.nrw = t.rules.nrwuser;
  md_shapes *sh;
  expr *e = parse_in(&t, "A", &sh);
  uint32_t fexp = (uint32_t)md_fn_lookup(tu_ctx, "exp", 3);
  uint32_t flog = (uint32_t)md_fn_lookup(tu_ctx, "log", 3);
  expr *want = e;
  for (int i = 0; i < 60; i++) {
    expr *l = expr_call1(tu_ctx, flog, expr_call1(tu_ctx, fexp, e));
    e = expr_hdiv(tu_ctx, l, e);
    want = expr_hdiv(tu_ctx, want, want);
  }
  ck_assert(md_shape_derive(sh, e));
  expr *r = md_rewrite(tu_ctx, sh, &t.rules, e);
  md_shapes_free(sh);
  t.rules.nrw = all;
  done(&t);
  ck_assert_ptr_eq(r, want);
}
END_TEST

/* ---- md_simplify with the built-in rules ---- */

START_TEST(test_simplify_builtin) {
  check_simplify("X .* (ones ones^T)", "X", "X .* (ones ones^T)");
  check_simplify("exp(X) .* (ones ones^T) + Y", "exp(X) + Y",
                 "Y + ones ones^T .* exp(X)");
  check_simplify("diag(ones)", "I", "diag(ones)");
  check_simplify("diag(diag(x))", "x", "diag(diag(x))");
  check_simplify("A diag(x) ones", "A x", "A diag(x) ones");
  check_simplify("ones^T diag(x) A", "x^T A", "ones^T diag(x) A");
  check_simplify("tr(diag(x))", "sum(x)", "tr(diag(x))");
  check_simplify("log(exp(X)) + X", "2 X", "log(exp(X)) + X");
  check_simplify("X .* step(X)", "relu(X)", "X .* step(X)");
  check_simplify("step(A x) .* relu(A x)", "relu(A x)",
                 "relu(A x) .* step(A x)");
  check_simplify("Y .* abs(X) .* step(X)", "Y .* relu(X)",
                 "Y .* abs(X) .* step(X)");
  check_simplify("step(x) .^ 2 + sign(x) .* step(x)", "2 step(x)",
                 "step(x) .* (sign(x) + step(x))");
  check_simplify("relu(x) .* (1 + sign(x))", "2 relu(x)",
                 "relu(x) .* (1 + sign(x))");
  check_simplify("kron(I, b^T) kron(x, b)", "b^T b x",
                 "kron(I, b^T) kron(x, b)");
}
END_TEST

/* ---- property test ---- */

typedef struct gen {
  uint64_t s;
  char buf[4096];
  size_t n;
} gen;

static unsigned below(gen *g, unsigned n) {
  g->s = g->s * 6364136223846793005u + 1442695040888963407u;
  return (unsigned)((g->s >> 33) % n);
}

static void put(gen *g, const char *t) {
  size_t k = strlen(t);
  if (g->n + k < sizeof g->buf) {
    memcpy(g->buf + g->n, t, k);
    g->n += k;
    g->buf[g->n] = 0;
  }
}

static void vec(gen *g, int d);
static void mat(gen *g, int d);

/* PRE S MID S POST, S one matrix written twice: the left sides of rules
 * that use a variable twice (X .* step(X)).  S is exact: step and sign
 * jump at 0, where log(exp(A)) in doubles is not A. */
static void twice(gen *g, const char *pre, const char *mid, const char *post) {
  static const char *const s[] = {"A", "B", "(A B)", "(A - B^T)", "(A .* B)"};
  const char *x = s[below(g, 5)];
  put(g, pre);
  put(g, x);
  put(g, mid);
  put(g, x);
  put(g, post);
}

/* An n×n matrix, in parentheses unless a symbol. */
static void mat(gen *g, int d) {
  unsigned k = d <= 0 ? below(g, 2) : below(g, 14);
  static const char *const by_step[] = {"(", "(relu(", "(abs(", "(sign(",
                                        "(step("};
  static const char *const op[] = {" ", " + ", " .* "};
  switch (k) {
  case 0:
    put(g, "A");
    return;
  case 1:
    put(g, "B");
    return;
  case 2:
  case 3:
  case 4:
    put(g, "(");
    mat(g, d - 1);
    put(g, op[k - 2]);
    mat(g, d - 1);
    put(g, ")");
    return;
  case 5:
    put(g, "(");
    mat(g, d - 1);
    put(g, "^T)");
    return;
  case 6:
    put(g, "diag(");
    vec(g, d - 1);
    put(g, ")");
    return;
  case 7:
    put(g, "log(exp(");
    mat(g, d - 1);
    put(g, "))");
    return;
  case 8:
    put(g, "((ones ones^T) .* ");
    mat(g, d - 1);
    put(g, ")");
    return;
  case 9:
    put(g, "(diag(ones) ");
    mat(g, d - 1);
    put(g, ")");
    return;
  case 10:
  case 11: {
    /* X .* step(X), relu(X) .* step(X), ... */
    unsigned f = below(g, 5);
    twice(g, by_step[f], f ? ") .* step(" : " .* step(", "))");
    return;
  }
  case 12:
    twice(g, "(step(", ") .* step(", "))");
    return;
  default:
    put(g, "(");
    mat(g, d - 1);
    put(g, " .* (ones ones^T))");
    return;
  }
}

/* An n-vector, in parentheses unless a symbol. */
static void vec(gen *g, int d) {
  unsigned k = d <= 0 ? below(g, 2) : below(g, 8);
  switch (k) {
  case 0:
    put(g, "x");
    return;
  case 1:
    put(g, "y");
    return;
  case 2:
    put(g, "(");
    mat(g, d - 1);
    put(g, " ");
    vec(g, d - 1);
    put(g, ")");
    return;
  case 3:
    put(g, "diag(diag(");
    vec(g, d - 1);
    put(g, "))");
    return;
  case 4:
    put(g, "(diag(");
    vec(g, d - 1);
    put(g, ") ones)");
    return;
  case 5:
    put(g, "(");
    vec(g, d - 1);
    put(g, " + diag(");
    mat(g, d - 1);
    put(g, "))");
    return;
  case 6:
    put(g, "(ones^T diag(");
    vec(g, d - 1);
    put(g, ") ");
    mat(g, d - 1);
    put(g, ")^T");
    return;
  default:
    put(g, "log(exp(");
    vec(g, d - 1);
    put(g, "))");
    return;
  }
}

/* A scalar. */
static void scalar(gen *g, int d) {
  switch (below(g, 4)) {
  case 0:
    put(g, "tr(");
    mat(g, d);
    put(g, ")");
    return;
  case 1:
    put(g, "tr(diag(");
    vec(g, d);
    put(g, "))");
    return;
  case 2:
    put(g, "tr(kron(");
    mat(g, d - 1);
    put(g, ", ");
    mat(g, d - 1);
    put(g, ") kron(");
    mat(g, d - 1);
    put(g, ", ");
    mat(g, d - 1);
    put(g, "))");
    return;
  default:
    put(g, "x^T ");
    vec(g, d);
    return;
  }
}

/* Nodes of E as a tree, saturating: the size measure of simplify.c. */
static size_t tree_size(const expr *e, size_t cap) {
  size_t n = 1;
  for (size_t i = 0; i < e->nkids && n < cap; i++)
    n += tree_size(e->kid[i], cap);
  return n < cap ? n : cap;
}

static bool close_to(md_val *a, md_val *b) {
  if (a->r != b->r || a->c != b->c)
    return false;
  for (uint32_t i = 0; i < a->r; i++)
    for (uint32_t j = 0; j < a->c; j++) {
      md_num *x = md_val_at(a, i, j, 0), *y = md_val_at(b, i, j, 0);
      if (x->exact && y->exact) {
        if (!fmpq_equal(x->q, y->q))
          return false;
        continue;
      }
      double u = md_num_get_d(x), v = md_num_get_d(y);
      if (fabs(u - v) > 1e-9 * (1 + fabs(u) + fabs(v)))
        return false;
    }
  return true;
}

static unsigned env_uint(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

START_TEST(test_property) {
  unsigned seed = env_uint("MATDIFF_TEST_SEED", 1);
  unsigned rounds = env_uint("MATDIFF_TEST_ROUNDS", 400);
  gen g = {.s = seed};
  md_rng rng;
  md_rng_seed(&rng, seed);
  unsigned compared = 0, rewritten = 0;
  for (unsigned round = 0; round < rounds; round++) {
    g.n = 0;
    g.buf[0] = 0;
    put(&g, "let A : matrix(n, n), B : matrix(n, n), x : vector(n), "
            "y : vector(n); ");
    if (below(&g, 2))
      scalar(&g, 3);
    else
      mat(&g, 3);
    env_rules t;
    md_env_init(&t.env);
    md_shapes *sh;
    expr *e = parse_in(&t, g.buf, &sh);
    expr *r = md_simplify(tu_ctx, sh, e);
    expr *p = md_simplify_with(tu_ctx, sh, NULL, e);
    ck_assert_msg(r && p, "seed %u round %u: '%s' does not simplify", seed,
                  round, g.buf);
    rewritten += r != p;
    size_t sr = tree_size(r, 1u << 20), sp = tree_size(p, 1u << 20);
    ck_assert_msg(sr <= sp,
                  "seed %u round %u: '%s': rules give %s (%zu), "
                  "larger than %s (%zu)",
                  seed, round, g.buf, tu_print(r), sr, tu_print(p), sp);
    ck_assert_msg(md_simplify(tu_ctx, sh, r) == r,
                  "seed %u round %u: '%s': simplifying %s again changes it",
                  seed, round, g.buf, tu_print(r));
    expr *sides[2] = {e, r};
    md_eval *ev = md_eval_new(tu_ctx, sh, sides, 2);
    md_val v[2];
    if (md_eval_sample(ev, &rng, sides, NULL, 2, v) == MD_OK) {
      bool same = close_to(&v[0], &v[1]);
      md_val_clear(&v[0]);
      md_val_clear(&v[1]);
      ck_assert_msg(same,
                    "seed %u round %u: '%s' simplified to %s: values "
                    "differ",
                    seed, round, g.buf, tu_print(r));
      compared++;
    }
    md_eval_free(ev);
    md_shapes_free(sh);
    md_env_clear(&t.env);
  }
  /* most inputs have a value, and the rules change many of them */
  ck_assert_uint_ge(compared, rounds * 8 / 10);
  ck_assert_uint_ge(rewritten, rounds / 4);
}
END_TEST

static Suite *rewrite_suite(void) {
  Suite *s = suite_create("rewrite");
  TCase *tc = tu_tcase(s, "load");
  tcase_add_test(tc, test_load);
  tcase_add_test(tc, test_frozen_as_parsed);
  tcase_add_test(tc, test_load_errors);
  tc = tu_tcase(s, "match");
  tcase_add_test(tc, test_whole);
  tcase_add_test(tc, test_rules_by_head);
  tcase_add_test(tc, test_runs);
  tcase_add_test(tc, test_commuting);
  tcase_add_test(tc, test_guards);
  tcase_add_test(tc, test_sizes);
  tcase_add_test(tc, test_loops);
  tcase_add_test(tc, test_dag);
  tc = tu_tcase(s, "simplify");
  tcase_add_test(tc, test_simplify_builtin);
  tcase_add_test(tc, test_property);
  return s;
}

int main(void) {
  return tu_run(rewrite_suite());
}
