/*
 * print_numpy.h - the NumPy printer (SPEC 6, --format numpy).
 *
 * Writes a self-contained Python function
 *
 *   import numpy as np
 *
 *   def NAME(P1, P2, ...):
 *       ...
 *       return <E>
 *
 * whose parameters are PARAMS (symbols, in the order given) and whose
 * result is the value of E, of shape SHAPE (the shape the caller expects
 * of E; it sizes closed results such as 2 I).  Conventions (documented in
 * matdiff(1)): scalars are Python numbers, vectors are accepted as 1-D or
 * n×1 arrays and returned as 1-D arrays, matrices are 2-D arrays.
 * SHAPES must hold the shapes of E's nodes (md_shape_infer / md_simplify).
 * Returns false, after adding one error to ERR, when E cannot be written
 * (a size that no parameter fixes).
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "shape.h"
#include "strbuf.h"

bool md_print_numpy(strbuf *out, md_ctx *ctx, md_shapes *shapes, const expr *e,
                    md_shape shape, const expr *const *params, size_t nparams,
                    const char *name, md_errors *err);
