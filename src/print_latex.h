/*
 * print_latex.h - the LaTeX printer (SPEC 6, --format latex).
 *
 * Math-mode LaTeX that compiles with plain pdflatex + amsmath and renders
 * in MathJax: vectors and matrices in bold (\mathbf{A}, \boldsymbol{\Sigma}),
 * scalars in italic, ^\top, ^{-1}, \operatorname{tr}, \det, \log\det,
 * \odot, \otimes, \lVert x \rVert, \frac{p}{q} for rationals, Greek names
 * as \lambda, a trailing number or _suffix as a subscript (W1 ->
 * \mathbf{W}_{1}), and \left( \right) only where the structure needs them.
 * The kind of each symbol comes from SHAPES (declarations, or the naming
 * convention).  The printer never changes the DAG.
 */
#pragma once

#include "expr.h"
#include "shape.h"
#include "strbuf.h"

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e);
/* The LaTeX of E in a new string the caller frees. */
char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes, const expr *e);
