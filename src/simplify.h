/*
 * simplify.h - a first simplifier: the obvious identities.
 *
 * (A^T)^T = A, A I = A, 0 + A = A, x + x = 2 x, constant folding with
 * exact rationals, scalars equal to their transpose, and the like.  The
 * canonical forms of SPEC 5 (normal form, factoring) build on this.
 *
 * md_simplify() needs the shapes of E (from md_shape_infer) and records
 * the shapes of the nodes it builds in the same md_shapes.  It returns a
 * node of the context, never NULL except when a result would be too deep.
 */
#pragma once

#include "expr.h"
#include "shape.h"

expr *md_simplify(md_ctx *ctx, md_shapes *shapes, expr *e);
