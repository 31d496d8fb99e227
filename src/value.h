/*
 * value.h - the numbers of the evaluator: exact rationals, doubles, and
 * matrices of jets (dual and hyper-dual numbers) over them.
 *
 * An md_num is exact (a GMP rational) until a transcendental function, or
 * exact numbers grown past MD_EXACT_BITS, force a double; an operation
 * with one double operand gives a double.
 *
 * An md_val is an r×c matrix whose entries are jets of some order K: an
 * entry is a + sum over nonempty S of a_S prod_{k in S} eps_k, with
 * infinitesimals eps_0 .. eps_{K-1} that square to zero (eps_k^2 = 0, but
 * eps_0 eps_1 != 0).  Order 0 is plain numbers, order 1 dual numbers
 * (f(X + eps V) = f(X) + eps Df(X)[V]), order 2 hyper-dual numbers (the
 * eps_0 eps_1 part of f(x + eps_0 v + eps_1 w) is v^T H w).  Operands of
 * different orders combine: missing parts are zero.  Part S of entry
 * (i, j) is x[((i c + j) << K) | S], S a bit set.
 *
 * Ownership: md_val_init() and every operation that makes a value take an
 * uninitialised OUT and initialise it exactly when they return MD_OK (on
 * any other status OUT holds nothing); the caller then md_val_clear()s
 * it.  Inputs are never modified and may not be OUT.
 */
#pragma once

#include "expr.h"

#include <flint/fmpq.h>
#include <gmp.h>
#include <stdbool.h>
#include <stdint.h>

/* At most this many infinitesimals (nested derivatives) at once. */
#define MD_MAX_ORDER 4
/* Exact numerators and denominators stay below this many bits; past it
 * the evaluation is redone in doubles (MD_HUGE). */
#define MD_EXACT_BITS 20000
/* No value holds more numbers than this (entries times jet parts). */
#define MD_MAX_NUMS (1u << 18)
/* No product takes more multiplications of numbers than this: a few
 * seconds of exact arithmetic at most (512×512 times 512×512 would take
 * minutes). */
#define MD_MAX_WORK (1u << 22)

typedef enum md_status {
  MD_OK,
  MD_DOMAIN, /* undefined at this point (log of a negative number, a
                singular inverse...): another point may do */
  MD_HUGE,   /* exact numbers too large: evaluate in doubles instead */
  MD_FAIL,   /* cannot be evaluated at all */
} md_status;

/* Exact numbers are FLINT's fmpq: a numerator and a denominator below
 * 2^62 live in the two words themselves, so drawing and combining the
 * small entries of a point allocates nothing (with GMP's mpq_t every
 * entry was two allocations: most of `check`'s time under the
 * sanitizers, tests/fuzz/regress/check-slow-drawn-entries). */
typedef struct md_num {
  bool exact; /* the value is q; otherwise d */
  double d;
  fmpq_t q;
} md_num;

void md_num_init(md_num *x); /* exact 0 */
void md_num_clear(md_num *x);
void md_num_set(md_num *x, const md_num *y);
void md_num_set_q(md_num *x, const mpq_t q);
/* Q = X, an exact X (a double's q is not its value). */
void md_num_get_q(mpq_t q, const md_num *x);
void md_num_set_si(md_num *x, long num, unsigned long den);
void md_num_set_d(md_num *x, double d);
double md_num_get_d(const md_num *x);
int md_num_sgn(const md_num *x);
/* R = A + B, R = A B (exact when both are); R may be A or B. */
void md_num_add(md_num *r, const md_num *a, const md_num *b);
void md_num_mul(md_num *r, const md_num *a, const md_num *b);
/* The text of X: "7/2" when exact, else "%.10g"; cut to SIZE. */
void md_num_format(const md_num *x, char *buf, size_t size);

typedef struct md_val {
  uint32_t r, c;
  unsigned order;
  md_num *x; /* (r c) << order numbers */
} md_val;

/* An r×c zero of ORDER (r c << order must not exceed MD_MAX_NUMS). */
void md_val_init(md_val *v, uint32_t r, uint32_t c, unsigned order);
void md_val_clear(md_val *v);
void md_val_init_copy(md_val *v, const md_val *a);
/* A copy of A raised to ORDER (at least A's): the new parts are zero. */
void md_val_init_order(md_val *v, const md_val *a, unsigned order);
/* Whether an r×c value of ORDER fits in MD_MAX_NUMS. */
bool md_val_fits(uint64_t r, uint64_t c, unsigned order);
/* Part PART of entry (i, j); NULL when PART is beyond V's order. */
md_num *md_val_at(const md_val *v, uint32_t i, uint32_t j, unsigned part);
bool md_val_is_exact(const md_val *v);
/* Every number of V as a double. */
void md_val_to_double(md_val *v);
/* The most bits of an exact number of V (numerator and denominator); 0
 * when all are doubles. */
size_t md_val_max_bits(const md_val *v);
/* Some exact number of V is past MD_EXACT_BITS. */
bool md_val_too_big(const md_val *v);
/* Some double of V is infinite or NaN. */
bool md_val_not_finite(const md_val *v);

void md_val_identity(md_val *out, uint32_t n);
void md_val_fill(md_val *out, uint32_t r, uint32_t c, long v);

/* Operations.  MD_FAIL means the shapes do not fit (a caller's bug). */
md_status md_val_add(md_val *out, const md_val *a, const md_val *b);
md_status md_val_sub(md_val *out, const md_val *a, const md_val *b);
md_status md_val_neg(md_val *out, const md_val *a);
/* The matrix product; a 1×1 operand scales the other. */
md_status md_val_mul(md_val *out, const md_val *a, const md_val *b);
/* A / s for a 1×1 S. */
md_status md_val_div(md_val *out, const md_val *a, const md_val *s);
/* Element-wise product and quotient; a 1×1 operand broadcasts. */
md_status md_val_had(md_val *out, const md_val *a, const md_val *b);
md_status md_val_hdiv(md_val *out, const md_val *a, const md_val *b);
md_status md_val_kron(md_val *out, const md_val *a, const md_val *b);
md_status md_val_trans(md_val *out, const md_val *a);
/* Inverse by Gauss-Jordan elimination; MD_DOMAIN when singular. */
md_status md_val_inv(md_val *out, const md_val *a);
/* Determinant by Gaussian elimination (1×1 result). */
md_status md_val_det(md_val *out, const md_val *a);
/* log |det A|. */
md_status md_val_logdet(md_val *out, const md_val *a);
/* A^k for a square matrix and an integer K, or s^K for a 1×1 S and any
 * rational K. */
md_status md_val_pow(md_val *out, const md_val *a, const mpq_t k);
/* Element-wise power by a rational P. */
md_status md_val_epow(md_val *out, const md_val *a, const mpq_t p);
md_status md_val_tr(md_val *out, const md_val *a);
/* Vector -> diagonal matrix, square matrix -> vector of its diagonal. */
md_status md_val_diag(md_val *out, const md_val *a);
/* The columns stacked. */
md_status md_val_vec(md_val *out, const md_val *a);
md_status md_val_sum(md_val *out, const md_val *a);
/* The sum of the squares of the entries (norm2(a)^2, exactly). */
md_status md_val_sumsq(md_val *out, const md_val *a);
md_status md_val_norm1(md_val *out, const md_val *a);
md_status md_val_norm2(md_val *out, const md_val *a);
md_status md_val_inner(md_val *out, const md_val *a, const md_val *b);
md_status md_val_softmax(md_val *out, const md_val *a);
md_status md_val_logsumexp(md_val *out, const md_val *a);
/* An element-wise function of expr.h: FN_EXP .. FN_SOFTPLUS. */
md_status md_val_apply(md_val *out, const md_val *a, md_fn fn);
