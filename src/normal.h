/*
 * normal.h - the normal form of an expression, and the canonical order.
 *
 * Expressions that differ by the identities below get the same normal
 * form, and equal normal forms have equal values.  The form does not
 * distribute products over sums (A (B + C) and A B + A C stay apart)
 * unless expand is set, so it is not complete; md_equal() says what it
 * proves.  It is built bottom up, one node at a time, by the constructors
 * of this module (md_nf_sum, md_nf_mul, md_nf_trans, ...), each of which
 * takes normal kids and returns a normal node:
 *
 *   transposes      pushed to the leaves: (A B)^T = B^T A^T, (A + B)^T =
 *                   A^T + B^T, (A^-1)^T = A^-T, (A .* B)^T = A^T .* B^T,
 *                   f(A)^T = f(A^T) for element-wise f; A^T = A for
 *                   symmetric, spd and diagonal A, for diag(x) and for
 *                   every scalar (1×1);
 *   inverses        (A B)^-1 = B^-1 A^-1 when every factor is square,
 *                   (c A)^-1 = 1/c A^-1, (A^-1)^-1 = A, kron likewise;
 *                   an inverse stands outside a transpose (A^-T) and
 *                   inside a power (A^-2 is (A^-1)^2);
 *   products        flat; a rational coefficient first, then the scalar
 *                   factors, then the matrix chain.  Scalar factors are
 *                   scalar symbols and functions, and every minimal run
 *                   u^T ... v of the chain that is 1×1 ("x^T A y"), taken
 *                   out of the chain; they are sorted and equal ones
 *                   combined into powers (alpha alpha = alpha^2).  They
 *                   must come first: products are flat, and A (x^T y) B
 *                   has no node of its own (A x^T y B is ill-shaped).  In
 *                   the chain adjacent powers of one base combine
 *                   (A^2 A^3 = A^5, A A^-1 = I), and I disappears unless
 *                   nothing else is left of a matrix (alpha I);
 *   repeats         a power of a product is unfolded into its factors
 *                   (at most 64 of them, none a row or a column), the
 *                   chain reduced, and its repeats (of up to 8 factors)
 *                   folded back into powers (leftmost first, then the
 *                   one covering most factors, then the shortest):
 *                   A B A B = (A B)^2, (A B)^3 B^-1 A^-1 = (A B)^2,
 *                   A B A B C A B A B C = ((A B)^2 C)^2, B^2 A B A B A =
 *                   B (B A)^3 (a repeat may start inside a power); the
 *                   inverse of a product of factors that
 *                   are not square cancels against the product:
 *                   (M N)^-1 M N = I, (M N)^-2 M N = (M N)^-1;
 *   scalar runs     a 1×1 run equals its transpose; of the two the one
 *                   with fewer transposed factors is kept, on a tie the
 *                   first in the canonical order (x^T A y, not
 *                   y^T A^T x);
 *   sums            flat, like terms collected with exact rational
 *                   coefficients, zeros dropped, a constant first and
 *                   the other terms in the canonical term order; a sum
 *                   that is a factor of a product is primitive (its
 *                   coefficients have no common factor, the first one is
 *                   positive: 2 A^T (A x - y)), and c (A + B) alone is
 *                   c A + c B;
 *   traces          tr(A^T) = tr(A), tr(s) = s, scalars out, cyclic
 *                   rotation and transposition to a canonical chain
 *                   (fewest transposes, then the canonical order:
 *                   tr(X^T A X) is tr(A X X^T)) of the unfolded chain
 *                   (tr((A B)^2) = tr(B A B A)), where an inverse of a
 *                   product may also meet the product across the ends
 *                   (tr(N (M N)^-1 M) = 2 for a 2×2 M N; a symbolic size
 *                   stays as it is); a chain with a row in it
 *                   rotates to a 1×1 run: tr(a b^T) = a^T b; <A, B> is
 *                   tr(A^T B) (so tr(A B^T));
 *   others          det(A^T) = det(A), det(A^-1) = det(A)^-1, logdet
 *                   likewise, A .* B = B .* A (sorted), ones .* x = x,
 *                   scalars pulled out of .* and kron (s .* A = s A),
 *                   tr, vec, sum and diag linear, norms of transposes,
 *                   vec(x^T) = x, A / s = s^-1 A, (A^2)^3 = A^6,
 *                   constant folding (exact, bounded).
 *
 * The canonical order (md_nf_cmp) is a total order on nodes that depends
 * only on their structure, never on pointers or on when a node was made,
 * so results never change from run to run.  It compares the token
 * streams the printer would write, roughly: a product factor by factor,
 * each factor by its base (numbers, then names in strcmp order - symbols,
 * I, ones and function names alike -, then bracketed sums and other
 * compound bases), then by what is applied to the base (nothing first,
 * then ^-1, ^k, ^T, .^p, negation); a shorter stream that is a prefix of
 * a longer one comes first.  So A < A x < A^T, and A + A^T, never
 * A^T + A.  Terms of a sum are ordered by their first name or number
 * ("lead", ignoring brackets and coefficients), then by md_nf_cmp:
 * (A + A^T) x + b, A x - y, 1 + x.  Exponents compare numbers by value,
 * then other scalars in the term order.  Factors whose base is a sum 256
 * levels high or more, which no formula a person writes has, come before
 * all others, the higher first, so that no comparison walks such a height
 * (normal.c TALL_LEVELS).
 *
 * With expand set, products, traces, Hadamard and Kronecker products are
 * also distributed over sums (within a budget of terms), which decides
 * more equalities at a cost that may grow quickly; md_equal() uses it.
 *
 * Ownership: an md_nf holds side tables indexed by node id; the nodes
 * belong to the context.  Every node built gets its shape recorded in the
 * md_shapes given (md_shape_derive); a node without a value (0^-1) has
 * none, and neither has a node that holds I and a symbol (alpha I) when
 * one inference needs it at two sizes, as with the parser's own input.
 * Functions return NULL when a result would be too deep (or, when
 * expanding, too large).
 */
#pragma once

#include "expr.h"
#include "shape.h"

typedef struct md_nf md_nf;

md_nf *md_nf_new(md_ctx *ctx, md_shapes *shapes, bool expand);
void md_nf_free(md_nf *N);

/* The normal form of E (whose shape must be inferred in the md_shapes). */
expr *md_nf_of(md_nf *N, expr *e);

/* R, a normal form of E, when it is a scalar constant other than 0 (3,
 * sigmoid(0)) and E is a vector or a matrix: R times ones of E's shape
 * (3 ones, sigmoid(0) ones ones^T), never the scalar; else R. */
expr *md_nf_shaped(md_nf *N, expr *e, expr *r);

/* Constructors on normal nodes, returning normal nodes. */
expr *md_nf_sum(md_nf *N, expr *const *terms, size_t n);
expr *md_nf_mul(md_nf *N, expr *const *factors, size_t n);
expr *md_nf_trans(md_nf *N, expr *a);
expr *md_nf_scale(md_nf *N, const mpq_t c, expr *a);
/* a^k for an integer k (A^-1 for -1, I for 0). */
expr *md_nf_pow(md_nf *N, expr *a, long k);

/* A normal product (or any normal term) taken apart: coefficient, scalar
 * factors (each 1×1 run as one MUL node) and the matrix chain, as
 * md_nf_mul would put them back together.  C must be initialised.  The
 * arrays are N's, memoised by node (the simplifier takes a product apart
 * for each form it tries: 45 times for 16 nodes in ||A X - B||^2's
 * gradient), valid until md_nf_free; md_nf_parts_clear forgets them. */
typedef struct md_nf_parts {
  expr *const *item, *const *chain;
  size_t nitem, nchain;
} md_nf_parts;
void md_nf_split(md_nf *N, expr *t, mpq_t c, md_nf_parts *p);
void md_nf_parts_clear(md_nf_parts *p);

/* A growable list of nodes (the caller frees with md_nodes_clear). */
typedef struct md_nodes {
  expr **v;
  size_t n, cap;
} md_nodes;

void md_nodes_push(md_nodes *a, expr *e);
void md_nodes_clear(md_nodes *a);

/* Sorts the terms of a sum in place: a constant first, then the term
 * order of their coefficient-free parts (md_nf_term_cmp). */
void md_nf_sort_terms(md_nf *N, expr **terms, size_t n);

/* The canonical order: < 0, 0 (same node) or > 0. */
int md_nf_cmp(const md_ctx *ctx, const expr *a, const expr *b);
/* Arithmetic on coefficients, most of which are 1 or -1: mpq_mul and
 * mpq_div take gcds whatever the numbers are (a third of GMP's work in
 * a filter run).  md_q_unit: 1 or -1 when Q is, else 0, read from its
 * limbs.  md_q_mul_in: R *= B.  md_q_div: R = A / B for B not 0. */
int md_q_unit(const mpq_t q);
void md_q_mul_in(mpq_t r, const mpq_t b);
void md_q_div(mpq_t r, const mpq_t a, const mpq_t b);

/* The order of the terms of a sum (coefficients already stripped). */
int md_nf_term_cmp(const md_ctx *ctx, const expr *a, const expr *b);
/* Splits a normal term into its coefficient C and the rest (NULL for a
 * constant): -2 A x gives -2 and A x. */
void md_nf_coef(md_nf *N, expr *t, mpq_t c, expr **rest);
