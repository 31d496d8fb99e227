/*
 * test_print.c - md_print_text: exact forms with minimal parentheses, and
 * the round-trip property: for random expressions built with the expr.h
 * constructors, parse(print(e)) is the very node e, and printing it again
 * gives the same text (a fixed point, as dtc's tests check).
 *
 * The random expressions come from a seeded generator; a failure prints
 * the seed, the iteration and the text (FLINT's t-*.c style).  Another
 * seed: MATDIFF_TEST_SEED=12345 build/tests/test_print.
 */
#include "testutil.h"

#include "print_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static expr *sym(const char *name) {
  return expr_sym(tu_ctx, name);
}

static void check_print(expr *e, const char *want) {
  const char *got = tu_print(e);
  ck_assert_msg(strcmp(got, want) == 0, "printed \"%s\", expected \"%s\"", got,
                want);
}

/* TEXT parses and prints as WANT. */
static void check_reprint(const char *text, const char *want) {
  const char *got = tu_print(tu_parse(text));
  ck_assert_msg(strcmp(got, want) == 0,
                "'%s' printed as \"%s\", expected "
                "\"%s\"",
                text, got, want);
}

/* ---- exact forms ---- */

START_TEST(atoms) {
  check_print(sym("x"), "x");
  check_print(expr_ident(tu_ctx), "I");
  check_print(expr_ones(tu_ctx), "ones");
  check_print(tu_rat(7, 1), "7");
  check_print(tu_rat(-7, 1), "-7");
  check_print(tu_rat(1, 2), "1/2");
  check_print(tu_rat(-3, 4), "-3/4");
  check_print(tu_rat(0, 1), "0");
  check_reprint("0.125", "1/8");
  check_reprint("1e-3", "1/1000");
  check_reprint("λ", "lambda");
  check_reprint("Σ", "Sigma");
}
END_TEST

START_TEST(postfix_forms) {
  check_reprint("A'", "A^T");
  check_reprint("Aᵀ", "A^T");
  check_reprint("A⁻¹", "A^-1");
  check_reprint("inv(A)", "A^-1");
  check_reprint("inv(A^T)", "A^-T");
  check_reprint("(A^-1)^T", "A^-1^T");
  check_reprint("x^-1", "x^-1");
  check_reprint("X^-2", "X^-2");
  check_reprint("inv(X)^2", "X^-2");
  check_reprint("X^-1^1", "X^-1^1");
  check_reprint("X^-1^(1/2)", "X^-1^(1/2)");
  check_reprint("s^(1/2)", "s^(1/2)");
  check_reprint("s^-0.5", "s^(-1/2)");
  check_reprint("s^{-1/2}", "s^(-1/2)");
  check_reprint("A^0", "A^0");
  check_reprint("(A B)^T", "(A B)^T");
  check_reprint("(A + B)^-1", "(A + B)^-1");
  check_reprint("(-x)^T", "(-x)^T");
  check_reprint("(1/2)^T", "(1/2)^T");
  check_reprint("(-2)^2", "(-2)^2");
  check_reprint("2^3^2", "2^3^2");
  check_reprint("A .^ 2", "A .^ 2");
  check_reprint("A.^(1/2)", "A .^ (1/2)");
  check_reprint("A .^ -1", "A .^ (-1)");
}
END_TEST

START_TEST(products) {
  check_print(expr_mul(tu_ctx, tu_rat(1, 2), sym("A")), "1/2 A");
  check_reprint("0.5 A", "1/2 A");
  check_reprint("A*B", "A B");
  check_reprint("A · B", "A B");
  check_reprint("(A B) C", "A B C");
  check_reprint("(A + B) C", "(A + B) C");
  check_reprint("A (B + C)", "A (B + C)");
  check_reprint("A (B C)^T", "A (B C)^T");
  /* a product never starts with a negative number */
  check_print(expr_mul(tu_ctx, tu_rat(-2, 1), sym("A")), "-2 A");
  check_print(expr_mul(tu_ctx, sym("A"), tu_rat(-2, 1)), "A (-2)");
  check_print(expr_mul(tu_ctx, sym("A"), tu_rat(1, 2)), "A (1/2)");
  check_print(expr_mul(tu_ctx, tu_rat(2, 1), tu_rat(3, 1)), "2 3");
  check_reprint("(-x) y", "(-x) y");
  check_reprint("A / s B", "A / s B");
  check_reprint("A / (s B)", "A / (s B)");
  check_reprint("(A + B) / s", "(A + B) / s");
  check_reprint("(-x) / 2", "(-x) / 2");
  check_reprint("x / (1/2)", "x / (1/2)");
  check_reprint("x / 0", "x / 0");
  check_reprint("A .* B", "A .* B");
  check_reprint("A ⊙ B C", "A .* B C");
  check_reprint("A .* (B C)", "A .* (B C)");
  check_reprint("x .* (A x)", "x .* (A x)");
  check_reprint("P x .* Q x", "P x .* Q x");
  check_reprint("A ./ B ./ C", "A ./ B ./ C");
  check_reprint("A ./ (B ./ C)", "A ./ (B ./ C)");
  check_reprint("A ⊗ B", "kron(A, B)");
  check_reprint("A ⊗ B ⊗ C", "kron(kron(A, B), C)");
  check_reprint("A B ⊗ C D", "A kron(B, C) D");
}
END_TEST

START_TEST(sums_and_signs) {
  check_reprint("a - b", "a - b");
  check_reprint("a + -b", "a - b");
  check_reprint("a - 2", "a - 2");
  check_reprint("a - 1/2", "a - 1/2");
  check_reprint("a - (1/2)", "a - 1/2");
  check_reprint("a - 1/2 b", "a - 1/2 b");
  check_reprint("a + 1/2", "a + 1/2");
  check_reprint("-2 + a", "-2 + a");
  check_reprint("-1/2 + a", "-1/2 + a");
  check_reprint("-x + y", "-x + y");
  check_reprint("-2 A", "-2 A");
  check_reprint("-(A + B)", "-(A + B)");
  check_reprint("a - (b + c)", "a - (b + c)");
  check_reprint("a - (b - c)", "a - (b - c)");
  check_reprint("(a + b) + c", "a + b + c");
  check_reprint("-x^T A x", "-x^T A x");
  /* -(-x), never --x */
  check_reprint("--x", "-(-x)");
  check_reprint("-(-x)", "-(-x)");
  check_reprint("a - -b", "a - (-b)");
  check_reprint("a - (-b) + c", "a - (-b) + c");
  check_reprint("-A .* B", "-A .* B");
  check_reprint("(-A) .* B", "(-A) .* B");
}
END_TEST

START_TEST(functions_and_norms) {
  check_reprint("tr(A X^T B)", "tr(A X^T B)");
  check_reprint("exp(-x)", "exp(-x)");
  check_reprint("1 ./ (1 + exp(-x))", "1 ./ (1 + exp(-x))");
  check_reprint("norm2(x)", "||x||");
  check_reprint("||x||_2", "||x||");
  check_reprint("||X||_F", "||X||");
  check_reprint("norm1(x)", "||x||_1");
  check_reprint("||A x - y||_2^2", "||A x - y||^2");
  check_reprint("||x|| ||y||", "||x|| ||y||");
  /* a norm inside a norm is written as a call */
  check_reprint("||norm2(x) y||", "||norm2(x) y||");
  check_reprint("||(||x||_1) y||", "||norm1(x) y||");
  check_reprint("tr(||x|| I)", "tr(||x|| I)");
  check_reprint("<A, B>", "<A, B>");
  check_reprint("<A + B, C D>", "<A + B, C D>");
  check_reprint("kron(A, B)", "kron(A, B)");
}
END_TEST

START_TEST(derivatives) {
  check_reprint("d/dX f", "d/dX f");
  check_reprint("diff(f, X)", "d/dX f");
  check_reprint("grad(a + b, x)", "d/dx a + b");
  check_reprint("(d/dX f) + g", "(d/dX f) + g");
  check_reprint("g + d/dX f", "g + (d/dX f)");
  check_reprint("A (d/dX f)", "A (d/dX f)");
  check_reprint("-d/dx f", "-(d/dx f)");
  check_reprint("(d/dx f)^T", "(d/dx f)^T");
  check_reprint("d/dvec(X) vec(A X B)", "d/dvec(X) vec(A X B)");
  check_reprint("d/dλ f", "d/dlambda f");
  check_reprint("hess(f, x)", "hess(f, x)");
  check_reprint("hess(f, vec(X))", "hess(f, vec(X))");
  /* d/delta would read as d over delta */
  check_reprint("diff(f, elta)", "diff(f, elta)");
  check_reprint("diff(f, delta)", "d/ddelta f");
  check_reprint("d/delta", "d / delta");
}
END_TEST

START_TEST(tuples) {
  /* a list exists only inside the parser, but prints all the same */
  expr *v[3] = {sym("a"), sym("b"), tu_rat(1, 2)};
  check_print(expr_tuple(tu_ctx, v, 3), "(a, b, 1/2)");
}
END_TEST

START_TEST(print_into_a_buffer) {
  strbuf b;
  sb_init(&b);
  sb_puts(&b, "f = ");
  md_print_text(&b, tu_ctx, tu_parse("x^T A x"));
  char *s = sb_take(&b);
  ck_assert_str_eq(s, "f = x^T A x");
  free(s);
  sb_clear(&b);
}
END_TEST

/* ---- the round trip ---- */

/* Names of every default kind, and ones that test the lexer's corners:
 * d (of d/dX), delta and elta (d/delta), T (of ^T), e (of 1e3). */
static const char *const names[] = {
    "A",  "B",     "X",       "W_1",     "Sigma", "x",     "y",    "a",
    "b1", "alpha", "lambda1", "sigma_2", "d",     "delta", "elta", "elta1",
    "dX", "T",     "e",       "e1",      "F",     "vec1"};
#define NNAMES (sizeof names / sizeof names[0])

/* The generator of testutil.h over these names. */
static tu_gen G = {
    .names = names, .nnames = NNAMES, .big_numbers = true, .kron_twice = false};

enum { ROUNDS = 4000, MAX_DEPTH = 6 };

START_TEST(round_trip) {
  uint64_t seed = 0x6D61746469666621u; /* "matdiff!" */
  const char *env = getenv("MATDIFF_TEST_SEED");
  if (env && *env)
    seed = strtoull(env, NULL, 0);
  G.rng = seed;
  size_t chars = 0;
  unsigned ops = 0;
  for (unsigned i = 0; i < ROUNDS; i++) {
    expr *e = tu_gen_expr(&G, 1 + (int)(i % MAX_DEPTH));
    ck_assert_ptr_nonnull(e);
    ops |= 1u << e->op;
    char *text = md_print_text_alloc(tu_ctx, e);
    chars += strlen(text);
    md_source src = {"<round-trip>", text, strlen(text), 1};
    md_parsed p;
    md_errors err;
    md_errors_init(&err);
    if (!md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
      unsigned line, col;
      md_source_linecol(&src, err.v[0].loc.begin, &line, &col);
      fprintf(stderr,
              "seed %#" PRIx64 ", round %u: '%s' does not parse: "
              "%u:%u: %s\n",
              seed, i, text, line, col, err.v[0].msg);
      md_errors_clear(&err);
      free(text);
      ck_abort_msg("printed text does not parse (seed %#" PRIx64 ", round %u)",
                   seed, i);
    }
    md_errors_clear(&err);
    expr *back = p.n == 1 ? p.stmts[0].lhs : NULL;
    md_parsed_clear(&p);
    if (back != e) {
      fprintf(stderr, "seed %#" PRIx64 ", round %u: '%s' parses to %s\n", seed,
              i, text, back ? tu_print(back) : "(no expression)");
      free(text);
      ck_abort_msg("parse(print(e)) is not e (seed %#" PRIx64 ", round %u)",
                   seed, i);
    }
    char *again = md_print_text_alloc(tu_ctx, back);
    bool same = strcmp(text, again) == 0;
    if (!same)
      fprintf(stderr,
              "seed %#" PRIx64 ", round %u: '%s' printed again as "
              "'%s'\n",
              seed, i, text, again);
    free(again);
    free(text);
    ck_assert_msg(same,
                  "print is not a fixed point (seed %#" PRIx64 ", round %u)",
                  seed, i);
  }
  /* the generator did reach every operator at the top (E_TUPLE aside) */
  for (int op = 0; op < E_NOPS; op++)
    if (op != E_TUPLE)
      ck_assert_msg(ops & (1u << op), "no %s at the top in %d rounds",
                    expr_op_name((expr_op)op), ROUNDS);
  ck_assert_uint_gt(chars, 20 * ROUNDS);
}
END_TEST

/* Printing is deterministic and never changes the DAG. */
/* ---- the size measure (md_text_size) ---- */

static void check_size(const char *text, size_t want) {
  md_idmap memo;
  md_idmap_init(&memo);
  size_t got = md_text_size(&memo, tu_parse(text));
  size_t again = md_text_size(&memo, tu_parse(text)); /* from the memo */
  md_idmap_clear(&memo);
  ck_assert_msg(got == want && again == want,
                "'%s' has size %zu (then %zu), expected %zu", text, got, again,
                want);
}

/* A product of products past MD_MAX_FLAT operands keeps its kids whole;
 * the printer brackets them, and the text parses back to the same node
 * (for .*, + and kron as well: kron calls nest as a balanced tree). */
START_TEST(round_trip_unflattened) {
  static const char *const ops[] = {"P P", "P .* P", "P + P", "kron(P, P)"};
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    strbuf b;
    sb_init(&b);
    sb_puts(&b, "t14 where t1 = X");
    for (int i = 2; i <= 14; i++) {
      sb_printf(&b, ", t%d = ", i);
      for (const char *c = ops[o]; *c; c++)
        if (*c == 'P')
          sb_printf(&b, "t%d", i - 1);
        else
          sb_putc(&b, *c);
    }
    expr *e = tu_parse(b.s);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_le(e->nkids, MD_MAX_FLAT); /* not 2^13 operands */
    char *t = md_print_text_alloc(tu_ctx, e);
    md_source src = {"<printed>", t, strlen(t), 1};
    md_parsed q;
    md_errors err;
    md_errors_init(&err);
    bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &q, &err);
    if (ok)
      md_parsed_clear(&q);
    const char *why = ok ? "" : err.v[0].msg;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", why);
    md_errors_clear(&err);
    ck_assert_msg(ok, "%s: printed form does not parse: %s", ops[o], msg);
    ck_assert_msg(tu_parse(t) == e, "%s: printed form parses to another node",
                  ops[o]);
    free(t);
    sb_clear(&b);
  }
}
END_TEST

/* A product kept whole (past MD_MAX_FLAT) whose neighbours were spliced
 * in later: c ⊗ (K ⊗ B), with K = x ⊗ y kept whole beside B's 4095
 * operands, is the node [c, K, B].  Written as the calls kron(kron(c, K),
 * B) it read back as [[c, x, y], B] (a fuzzer's finding): such a product
 * is one call, kron(c, kron(x, y), ...).  The same node for the chains of
 * a product, .* and a sum, which the parser gathers whole. */
START_TEST(round_trip_spliced_neighbours) {
  static const expr_op ops[] = {E_KRON, E_MUL, E_HAD, E_ADD};
  enum { NB = MD_MAX_FLAT - 1 };
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    expr_op op = ops[o];
    expr **v = malloc(NB * sizeof *v);
    for (size_t i = 0; i < NB; i++) {
      char name[16];
      snprintf(name, sizeof name, "A%zu", i);
      v[i] = sym(name);
    }
    expr *big = expr_make(tu_ctx, op, v, NB);
    ck_assert_uint_eq(big->nkids, NB);
    expr *k2[2] = {sym("X"), sym("Y")};
    expr *k = expr_make(tu_ctx, op, k2, 2);
    expr *kb[2] = {k, big};
    expr *whole = expr_make(tu_ctx, op, kb, 2);
    expr *ce[2] = {sym("C"), whole};
    expr *e = expr_make(tu_ctx, op, ce, 2);
    if (op == E_ADD || op == E_HAD || op == E_MUL) {
      /* a sum of more than MD_WHOLE_SUM terms (a .* or a product of more
       * than MD_WHOLE_HAD or MD_WHOLE_MUL factors) is never spliced: B
       * stays whole beside X and Y, and [X, Y, B] beside C */
      ck_assert_uint_eq(whole->nkids, 3);
      ck_assert_ptr_eq(whole->kid[2], big);
      ck_assert_uint_eq(e->nkids, 4); /* [C, X, Y, B] */
      ck_assert_ptr_eq(e->kid[3], big);
    } else {
      ck_assert_uint_eq(whole->nkids, 2); /* K kept whole beside B */
      ck_assert_uint_eq(e->nkids, 3);     /* [C, K, B] */
      ck_assert_ptr_eq(e->kid[1], k);
    }
    for (int unicode = 0; unicode < 2; unicode++) {
      strbuf b;
      sb_init(&b);
      md_print_text_opts(&b, tu_ctx, e, unicode);
      char *t = sb_take(&b);
      expr *back = tu_parse(t);
      ck_assert_msg(back == e,
                    "op %d, unicode %d: %.60s... reads back as "
                    "another node",
                    (int)op, unicode, t);
      free(t);
    }
    free(v);
  }
}
END_TEST

START_TEST(text_size) {
  check_size("x", 1);
  check_size("x + x", 3);
  check_size("2 x", 2);
  check_size("x - y", 3);
  check_size("-x + y", 4);
  check_size("x - 1/2", 3);
  check_size("2 (A + B)", 4);
  check_size("2 A + 2 B", 5);
  check_size("(A B C)^T", 4);
  check_size("C^T B^T A^T", 6);
  check_size("A^2", 2);
  check_size("A^-1", 2);
  check_size("A^-T", 2);
  check_size("A^-2", 2);
  check_size("s^(1/2)", 3);
  check_size("A / alpha", 3);
  check_size("A .* B ./ C", 5);
  check_size("kron(A, B)", 3);
  check_size("<v, u>", 3);
  check_size("u^T v", 3);
  check_size("tr(A B)", 3);
  check_size("||x||_1", 2);
  check_size("d/dX tr(X)", 4);
}
END_TEST

START_TEST(printing_changes_nothing) {
  G.rng = 42;
  expr *e = tu_gen_expr(&G, MAX_DEPTH);
  size_t nodes = md_ctx_nnodes(tu_ctx);
  char *a = md_print_text_alloc(tu_ctx, e);
  char *b = md_print_text_alloc(tu_ctx, e);
  ck_assert_str_eq(a, b);
  ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), nodes);
  free(a);
  free(b);
}
END_TEST

static Suite *print_suite(void) {
  Suite *s = suite_create("print");
  TCase *tc = tu_tcase(s, "forms");
  tcase_add_test(tc, atoms);
  tcase_add_test(tc, postfix_forms);
  tcase_add_test(tc, products);
  tcase_add_test(tc, sums_and_signs);
  tcase_add_test(tc, functions_and_norms);
  tcase_add_test(tc, derivatives);
  tcase_add_test(tc, tuples);
  tcase_add_test(tc, print_into_a_buffer);
  tc = tu_tcase(s, "round trip");
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, round_trip_unflattened);
  tcase_add_test(tc, round_trip_spliced_neighbours);
  tcase_add_test(tc, printing_changes_nothing);
  tcase_add_test(tc, text_size);
  return s;
}

int main(void) {
  return tu_run(print_suite());
}
