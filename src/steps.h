/*
 * steps.h - the derivation behind a gradient, for --steps.
 *
 * A derivation is what the engine did, written as a reader of a matrix
 * calculus note would: the differential of the scalar f as an inner
 * product with each node it depends on,
 *
 *   df = <1, d(tr(A X^T B))>
 *      = <I, d(A X^T B)>          by d/dX <g, tr(X)> = g I
 *      = <A^T B^T, d(X^T)>        by d/dX <G, A X B> = A^T G B^T
 *      = <B A, dX>                by d/dX <G, X^T> = G^T
 *
 * one line for each node the adjoint pass of diff.c goes through (the
 * node is replaced by its operands, with the rules that passed its
 * adjoint G on), until only <G, dX> is left.  Each contribution is shown
 * simplified; the sum of several is shown as it is, and the last line
 * simplifies it: the gradient.  For a symmetric or diagonal variable
 * the last line says how the gradient follows from G (SPEC 3).  A long
 * derivation names the parts its lines repeat (share.h) once, after the
 * last line, so that its text is linear in its length: each line of a
 * network's carries the forward values and the adjoint so far.
 *
 * Use: md_steps_new(), set D->trace = md_steps_trace(s) for the one
 * md_derivative() call, then md_steps_finish() with its result.  An
 * md_steps owns its lines and tables; the nodes belong to the context.
 */
#pragma once

#include "diff.h"
#include "shape.h"
#include "strbuf.h"

/* How expressions are written: the printer of the chosen format. */
typedef void md_steps_print_fn(void *arg, strbuf *out, const expr *e);

typedef struct md_steps md_steps;

md_steps *md_steps_new(md_ctx *ctx, md_shapes *shapes, expr *f, expr *x,
                       md_steps_print_fn *print, void *arg, bool latex,
                       bool cookbook);
void md_steps_free(md_steps *s);
const md_diff_trace *md_steps_trace(md_steps *s);
/* Writes the derivation, ending in d/dX f = RESULT (the gradient as the
 * CLI prints it). */
void md_steps_finish(md_steps *s, strbuf *out, const expr *result);
