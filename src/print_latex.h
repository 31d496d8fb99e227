/*
 * print_latex.h - the LaTeX printer (SPEC 6, --format latex).
 *
 * Math-mode LaTeX that compiles with plain pdflatex + amsmath and renders
 * in MathJax 3: vectors and matrices in bold (\mathbf{A},
 * \boldsymbol{\Sigma}), scalars in italic, ^\top, ^{-1}, \operatorname{tr},
 * \det, \log\det, \odot, \otimes, \lVert x \rVert, \frac{p}{q} for
 * rationals, Greek names as \lambda, a trailing number or _suffix as a
 * subscript (W1 -> \mathbf{W}_{1}), brackets only where the structure
 * needs them and only as tall as what they hold (plain ( ), \bigl( \bigr)
 * around brackets, \left( \right) around a fraction).  The whole table
 * of forms, and the choices made for a human reader, head print_latex.c.
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

/* The width of a line, in em, past which md_print_latex_result breaks a
 * result into lines: an article's \textwidth at 10 pt (345 pt). */
#define MD_LATEX_WIDTH 34.0

/* Symbols printed in a style of their own: the placeholders of a rule
 * (steps.c), in sans serif, \mathsf{X}, bold by kind, so that they
 * cannot be taken for the user's symbols. */
typedef struct md_latex_style {
  const expr *const *placeholders;
  size_t nplaceholders;
} md_latex_style;

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e);
/* md_print_latex with STYLE (may be NULL). */
void md_print_latex_opts(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                         const expr *e, const md_latex_style *style);
/* The LaTeX of E in a new string the caller frees. */
char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes, const expr *e);

/* A result for display: LHS = BODY (just BODY when LHS is NULL), then
 * ",\quad\text{where } NAMES[0] = VALUES[0],\quad ..." for the N
 * bindings.  On one line when it is at most WIDTH em wide (0: the
 * default, MD_LATEX_WIDTH), else broken into the lines of an aligned
 * environment, \begin{aligned} ... \end{aligned}, still one line of
 * text: at the bindings first, then at a sum's + and -, then between
 * the factors of a product, the outermost first (print_latex.c). */
void md_print_latex_result(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                           const expr *lhs, const expr *body,
                           expr *const *names, expr *const *values, size_t n,
                           double width);

/* Whether E, printed, holds a fraction: brackets around it are then
 * \left \right. */
bool md_latex_tall(const md_ctx *ctx, md_shapes *shapes, const expr *e);
/* NAME(E), NAME a LaTeX macro (\mathrm{d}), with the brackets sized as
 * those of a call (print_latex.c). */
void md_print_latex_call(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                         const char *name, const expr *e);

/* The estimated width, in em of a 10 pt font, of N bytes of LaTeX that
 * this printer writes (the model heads print_latex.c's line breaking). */
double md_latex_width(const char *tex, size_t n);
