/*
 * print_latex.h - the LaTeX printer (SPEC 6, --format latex).
 *
 * Math-mode LaTeX that compiles with plain pdflatex + amsmath and renders
 * in MathJax 3: vectors and matrices in bold (\mathbf{A},
 * \boldsymbol{\Sigma}), scalars in italic, ^\top, ^{-1}, \operatorname{tr},
 * \det, \log\det, \odot, \otimes, \lVert x \rVert, \frac{p}{q} for
 * rationals, Greek names as \lambda, a trailing number or _suffix as a
 * subscript (W1 -> \mathbf{W}_{1}), and \left( \right) only where the
 * structure needs them.  The whole table of forms, and the choices made
 * for a human reader, head print_latex.c.
 *
 * The kind of each symbol comes from SHAPES (its declarations, else the
 * naming convention of SPEC 2); SHAPES may be NULL for the naming
 * convention alone.  No shape needs to have been inferred.  The output is
 * one line, with no math delimiters ($, \[) around it.  The printer never
 * changes the DAG.
 */
#pragma once

#include "expr.h"
#include "shape.h"
#include "strbuf.h"

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e);
/* The LaTeX of E in a new string the caller frees. */
char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes, const expr *e);
