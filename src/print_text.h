/*
 * print_text.h - the text printer: the language itself, re-parseable.
 *
 * Output uses ^T, ^-1, juxtaposition for products, minimal parentheses
 * and exact rationals.  Parsing the output gives back the very same node
 * (see the invariants in expr.h).  The printer never changes the DAG.
 */
#pragma once

#include "expr.h"
#include "strbuf.h"

#include <stdio.h>

void md_print_text(strbuf *out, const md_ctx *ctx, const expr *e);
/* With UNICODE, --unicode: Aᵀ, X⁻¹, ⊙, ⊗, ‖x‖, λ (SPEC 2, Unicode). */
void md_print_text_opts(strbuf *out, const md_ctx *ctx, const expr *e,
                        bool unicode);
/* The text of E in a new string the caller frees. */
char *md_print_text_alloc(const md_ctx *ctx, const expr *e);
/* For messages: at most MAX bytes of the text of E, then "..." when it
 * is longer.  The work is bounded by MAX, not by the size of E, which as
 * a tree can be exponential in the size of its DAG. */
char *md_print_text_brief(const md_ctx *ctx, const expr *e, size_t max);
/* The size of the text of E: the names, numbers and operators it shows
 * (a function's name, kron, <a, b> and ||x|| count one), not parentheses,
 * commas or juxtaposition, so that x + x is larger than 2 x, and
 * C^T B^T A^T than (A B C)^T.  The simplifier's size measure
 * (simplify.h).  MEMO (may be NULL) keeps the size of each node seen, so
 * that the work is linear in the size of the DAG. */
size_t md_text_size(md_idmap *memo, const expr *e);
/* How much of an expression a message shows. */
enum { MD_BRIEF_MAX = 200 };
