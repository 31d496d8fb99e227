/*
 * diff.h - derivatives by reverse-mode adjoints, driven by rules/.
 *
 * The engine walks the expression DAG once from the root down: a node's
 * adjoint is the sum of what its parents passed it, and the first rule of
 * rules/ that matches the node (at the operand in question) says what it
 * passes on.  Each node is visited once, so a gradient costs time linear
 * in the size of the DAG.  The engine knows no operation itself: a node
 * without a matching rule is an error that names it, never a zero.
 *
 * A rule whose right side reads d/dX <G, form> has the engine
 * differentiate that form where the rule matched (by a pass of its own):
 * that is how a function defined in a rules file differentiates through
 * its body when no rule is given for it (rules.h).
 *
 * Jacobians are read off the adjoint, which is linear in a symbolic
 * adjoint G: for a vector f by a vector x the matrix M of M g; for
 * d/dvec(X) vec(F) the matrix J of vec(R) = J vec(G), from Kronecker
 * forms (vec(L G M) = kron(M^T, L) vec(G), vec(G .* B) = diag(vec(B))
 * vec(G), <M, G> = vec(M)^T vec(G)).  A G^T there would need the
 * commutation matrix, which the language has no name for: an error.
 *
 * Results are in denominator layout (SPEC 3) and unsimplified: pass them
 * to md_simplify().  Nodes belong to the context; an md_diff borrows
 * everything it points at.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "parse.h"
#include "rules.h"
#include "shape.h"

typedef enum md_symmetric_mode {
  MD_SYM_FROBENIUS, /* (G + G^T)/2: the gradient on symmetric matrices */
  MD_SYM_COOKBOOK,  /* G + G^T - G .* I: The Matrix Cookbook's form */
} md_symmetric_mode;

/* Watches the adjoint pass of a derivative (for --steps).  NODE is called
 * when a node's adjoint G is complete, before it is passed on; EDGE once
 * per operand it is passed to: rule R gave C to KID.  The trace sees the
 * pass of the derivative asked for, not those of derivatives nested in
 * its expression or the passes that form Jacobians and Hessians. */
typedef struct md_diff_trace {
  void *arg;
  void (*node)(void *arg, const expr *n, expr *G);
  void (*edge)(void *arg, const expr *n, const expr *kid, const md_rule *r,
               expr *c);
} md_diff_trace;

typedef struct md_diff {
  md_ctx *ctx;
  const md_rules *rules;
  md_shapes *shapes; /* of the expressions differentiated */
  const md_env *env;
  md_symmetric_mode symmetric;
  /* where errors point */
  const md_source *src;
  const md_parsed *locs;
  md_errors *err;
  unsigned nadjoints;     /* symbolic adjoints made so far, for fresh names */
  const expr *hessian_of; /* while the Hessian of it is formed */
  const md_diff_trace *trace; /* NULL, or watches the next pass */
  /* owned (md_diff_clear): one simplifier for the forms a derivation
   * simplifies to read them (a gradient by vec(F), a Jacobian, a
   * Hessian's second pass), so that they share its work and budget */
  struct md_simplifier *simp;
  unsigned vec_nest; /* derivatives through vec(...) under way */
  /* owned: the prefixes and suffixes of the last long product whose
   * operands the rules took apart (part(), diff.c) */
  struct md_slices *slices;
} md_diff;

/* Frees what D owns (its simplifier); D may be used again. */
void md_diff_clear(md_diff *D);

/* d/dX F for a symbol X or vec(X), per the layout table of SPEC 3; NULL
 * after an error.  By vec(X), F is a scalar or a vector: vec(F), sums and
 * scalings of vec(...) terms of one shape, or any vector.  F's shapes
 * must have been inferred. */
expr *md_derivative(md_diff *D, expr *f, expr *x);
/* d/dX F for each of the N variables XS into OUT[0..N), as md_derivative
 * would give them one by one, but by one reverse pass over F's DAG for
 * all the variables a scalar F has a plain gradient by: the adjoint of
 * every intermediate is formed once and shared by the results that use
 * it (backpropagation).  False after an error (then OUT is not to be
 * used). */
bool md_derivatives(md_diff *D, expr *f, expr *const *xs, size_t n, expr **out);
/* hess(F, x) for scalar F and a scalar or vector x. */
expr *md_hessian(md_diff *D, expr *f, expr *x);
/* E with every d/dX f and hess(f, x) inside replaced by its value. */
expr *md_eval_derivatives(md_diff *D, expr *e);
