/*
 * ewise.h - the element-wise algebra: rational functions over atoms.
 *
 * Expressions of one shape built from sums, negation, `.*`, `./`, `.^`
 * with an integer exponent, numbers, `ones` and scalars that scale them
 * form a commutative algebra.  Such a part of an expression (an island:
 * maximal, rooted where its parent is of another kind, and holding at
 * least one `.*`, `./` or `.^`) is read as a rational function P / Q
 * over its atoms -- everything else: symbols, matrix products, element-wise
 * function values such as exp(-z) or sigmoid(M v), and scalar factors --
 * with exact rational coefficients (FLINT's fmpq_mpoly).  The quotient is
 * reduced (gcd(P, Q) = 1, Q primitive with a positive leading
 * coefficient), so
 *
 *   x .* x        is  x .^ 2             (like factors collected)
 *   a .* (b ./ a) is  b                  (common factors cancelled)
 *   z ./ z        is  ones
 *   2 (r ./ (2 s)) is r ./ s             (numbers cancelled)
 *   -y .* (1 - s) + (1 - y) .* s  is  s - y   (expanded and collected)
 *
 * A cancellation assumes what the input already did: a ./ a is 1
 * wherever the input was defined (where a is 0 the input had no value).
 *
 * The atoms are put in the canonical order (md_nf_cmp) before they are
 * numbered, so the quotient depends only on the value's structure.  Two
 * modes:
 *
 *   - canonical (md_equal): every island is written as its expanded P
 *     ./ Q; equal quotients give one node, so `check` proves such
 *     identities;
 *   - compact (md_simplify): of the expanded quotient, its factored form
 *     (each of P and Q factored over Q: exp(-z) - z .* exp(-z) is
 *     (1 - z) .* exp(-z)), the form with common monomials taken out, and
 *     the island as it was, the smallest by md_text_size (on a tie, in
 *     that order of preference: factored, monomials out, expanded, as it
 *     was).
 *
 * Work is linear in the DAG outside islands (memoised by node); inside one
 * it is bounded: islands of more than MD_EW_MAX_ATOMS atoms or
 * MD_EW_MAX_NODES nodes (found without walking further), polynomials
 * of more than MD_EW_MAX_TERMS terms or with coefficients of more than
 * MD_MAX_NUM_BITS bits (expr.h) or of a total degree above
 * MD_EW_MAX_DEGREE, and powers above MD_EW_MAX_POW are left as they are.
 *
 * Ownership: an md_ew holds side tables by node id; nodes belong to the
 * context.  Results are normal (normal.h) and have shapes in SHAPES.
 */
#pragma once

#include "expr.h"
#include "normal.h"
#include "shape.h"

enum {
  MD_EW_MAX_ATOMS = 48,
  MD_EW_MAX_NODES = 1024, /* distinct nodes of one island */
  MD_EW_MAX_TERMS = 64,
  MD_EW_MAX_POW = 32,
  /* ... and polynomials of a higher total degree: t_k = c .* t_(k-1) .*
   * t_(k-1) squares its island at each level, and FLINT's gcds and
   * factoring on degrees of 2^38 took 0.9 s in the CLI at k = 39 and
   * 36 s under the sanitizers (a fuzz finding) */
  MD_EW_MAX_DEGREE = 1024,
  MD_EW_MAX_SUBS = 256, /* substitutions tried, in all, by one md_ew */
  /* nodes that islands may collect, in all, in one md_ew_apply: this
   * many for each node it has not seen, and a floor (ewise.c) */
  MD_EW_WORK_PER_NODE = 64,
  MD_EW_WORK_FLOOR = 20000
};

typedef struct md_ew md_ew;

/* N is the normal form the results are taken in, R the rules whose
 * substitutions (rules/algebra.rules) are tried; neither is owned, R may
 * be NULL. */
struct md_rules;
md_ew *md_ew_new(md_ctx *ctx, md_shapes *shapes, md_nf *N,
                 const struct md_rules *R, bool canonical);
void md_ew_free(md_ew *W);

/* E (a normal node) with every island in its reduced form; NULL when a
 * result would be too deep. */
expr *md_ew_apply(md_ew *W, expr *e);
