/*
 * eval.h - the nodes of an identity evaluated at random points.
 *
 * md_eval computes every operation of SPEC 2 on concrete matrices
 * (value.h): in exact rationals while it can, in doubles once a
 * transcendental function or an oversized exact number forces them.
 *
 * Derivatives are evaluated independently of any symbolic engine (this
 * module never calls one): d/dX f is f evaluated at X + eps E_ij with one
 * more infinitesimal, for each basis direction E_ij, the eps part read
 * off and laid out as SPEC 3 says (denominator layout; d/dvec(X) along
 * vec(X)); hess(f, x) uses two infinitesimals (hyper-dual numbers), whose
 * eps_1 eps_2 part along (e_i, e_j) is H_ij.  Derivatives nest.  Each
 * node is evaluated once per point and perturbation: linear in the DAG
 * for every derivative direction.
 *
 * Sizes come from an md_shapes in which every node to be evaluated was
 * inferred: each free or named dimension gets a number (drawn small and
 * distinct, or set), integers and products follow.  Closed terms (I,
 * ones, 2 I) are polymorphic and take their size from where they stand.
 *
 * Ownership: an md_eval refers to the context, the shapes and the nodes,
 * which must outlive it; it owns the values it computes and the symbol
 * values bound to it.  md_eval_run() gives the caller a copy.
 */
#pragma once

#include "shape.h"
#include "strbuf.h"
#include "value.h"

#include <stdint.h>

/* Points drawn, at most, to find one where an identity is defined. */
#define MD_EVAL_TRIES 24

/* The arithmetic one md_eval may do, in operations on entries (a product
 * of an a×b and a b×c matrix counts a b c, an inverse or det of n×n n^3):
 * past it evaluation fails with "too much arithmetic".  Every identity of
 * the tests needs under 2^20 (the most, 875 198); a file of Kronecker towers
 * and products of them would otherwise take minutes of exact arithmetic.
 * The budget is about a second of the CLI's time: the environment variable
 * MATDIFF_EVAL_WORK (read by md_eval_new) may lower it, as the fuzzers do
 * (their sanitizers make each operation six times slower). */
#define MD_EVAL_WORK (UINT64_C(1) << 22)

/* A small reproducible random generator (splitmix64). */
typedef struct md_rng {
  uint64_t s;
} md_rng;

void md_rng_seed(md_rng *r, uint64_t seed);
uint64_t md_rng_next(md_rng *r);
/* Uniform in [0, N), N > 0. */
unsigned md_rng_below(md_rng *r, unsigned n);

typedef struct md_eval md_eval;

/* An evaluator for the nodes under ROOTS (both sides of an identity). */
md_eval *md_eval_new(md_ctx *ctx, md_shapes *sh, expr *const *roots,
                     size_t nroots);
void md_eval_free(md_eval *ev);

/* Gives each dimension of the symbols a random size in 2..5, distinct
 * where possible (so that a transposed answer cannot pass by chance, more
 * than four dimensions use larger sizes); other dimensions get one when
 * first needed.  Forgets every value computed. */
void md_eval_draw_sizes(md_eval *ev, md_rng *rng);
/* Sets the size of dimension D (a free or named one). */
void md_eval_set_size(md_eval *ev, md_dim d, uint32_t size);
/* The size of D (0 if it is too large to say). */
uint64_t md_eval_size(md_eval *ev, md_dim d);
/* "n = 3, A is 2×4": the named sizes, then the shapes of the symbols
 * whose sizes have no name. */
void md_eval_format_sizes(md_eval *ev, strbuf *out);

/* Draws a value for every symbol, consistent with its declaration
 * (symmetric, spd as B B^T + n I, diagonal): entries p/q with 1 <= |p| <=
 * 5 and 1 <= q <= 3, all positive when POSITIVE.  MD_FAIL if a symbol is
 * too large to hold. */
md_status md_eval_draw(md_eval *ev, md_rng *rng, bool positive);
/* Binds symbol NAME to a copy of V (in place of a drawn value); false if
 * no such symbol is under the roots. */
bool md_eval_bind(md_eval *ev, const char *name, const md_val *v);
/* A line "INDENT NAME = VALUE" for each symbol with a value at this point
 * (the exact values drawn, also after md_eval_use_doubles), in the
 * order the symbols first appear: a matrix in rows, [1, -2/3; 5, 1/2], a
 * vector [1; 2], a number alone; a value past 8 rows or columns cut to
 * its first 4 of them, with a comment saying so; at most 16 symbols. */
void md_eval_format_values(md_eval *ev, const char *indent, strbuf *out);
/* From now on (until the next draw) in doubles: the symbol values are
 * converted and every value computed is forgotten. */
void md_eval_use_doubles(md_eval *ev);

/* The value of E (a node under the roots) into OUT (initialised exactly
 * when MD_OK).  WHERE (may be NULL) is the shape E stands in, which sizes
 * a closed E.  On failure md_eval_why() says what went wrong. */
md_status md_eval_run(md_eval *ev, const expr *e, const md_shape *where,
                      md_val *out);
const char *md_eval_why(const md_eval *ev);
/* When a value at the last point drawn took a size that nothing in the
 * identity fixes (a free size of ones or I, drawn on its own for each
 * side: (ones ones^T)^T x leaves the first ones free), why the sides
 * cannot be compared there ("nothing in the identity determines the size
 * of ..."); else NULL.  checker.c reads a difference so made as that
 * error, not as FALSE. */
const char *md_eval_free_size(md_eval *ev);
/* Evaluates E[0..N-1] again as md_eval_sample did, at the last point
 * drawn but with every size that nothing fixes (those md_eval_free_size
 * tells of) SIZE: whether the sides agree where such sizes are equal. */
md_status md_eval_free_sized(md_eval *ev, uint32_t size, expr *const *e,
                             const md_shape *where, size_t n, md_val *out);

/* Draws sizes and values and evaluates E[0..N-1] (OUT[i], shapes WHERE[i]
 * or NULL), drawing again, up to MD_EVAL_TRIES times, while one of them is
 * undefined at the point (every second try with positive entries).
 * MD_HUGE is never returned: the same point is evaluated in doubles. */
md_status md_eval_sample(md_eval *ev, md_rng *rng, expr *const *e,
                         const md_shape *where, size_t n, md_val *out);
/* Evaluates E[0..N-1] again as md_eval_sample did, in doubles, at the
 * last point drawn with each entry of each symbol scaled by 1 + REL or
 * 1 - REL (the sign fixed by the symbol and the entry, the same for
 * (i, j) and (j, i), so that symmetric values stay symmetric): how far
 * that moves the values tells how far rounding can (checker.c).  The
 * point is left as it was, its values forgotten. */
md_status md_eval_perturbed(md_eval *ev, double rel, expr *const *e,
                            const md_shape *where, size_t n, md_val *out);
/* How many points the last md_eval_sample drew: fewer than
 * MD_EVAL_TRIES when it failed at a node of numbers only (1 ./ 0), which
 * is undefined at every point. */
unsigned md_eval_tries(const md_eval *ev);

/* A whole run's limit on top of the budget: LEFT operations may be done,
 * of the run's TOTAL (MATDIFF_CHECK_WORK, checker.c); past it, "too much
 * arithmetic" names the run's limit. */
void md_eval_cap(md_eval *ev, uint64_t left, uint64_t total);
/* The operations on entries done since md_eval_new. */
uint64_t md_eval_work(const md_eval *ev);
