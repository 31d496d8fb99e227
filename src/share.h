/*
 * share.h - naming the repeated parts of a result: `where` bindings.
 *
 * A result is a DAG: a subexpression used in several places is one node.
 * Printed as a tree it would be written out at each use, and a gradient
 * through an L-layer network would take space exponential in L.  So the
 * printers write such a result as
 *
 *   body where t1 = ..., t2 = ...
 *
 * (SPEC 2, Sharing): each node used more than once whose tree has at
 * least MD_SHARE_MIN_SIZE nodes gets a name, and the printed text is
 * linear in the size of the DAG; so does one used three times or more
 * whose tree has at least MD_SHARE_MIN_USED nodes (softmax(K q) in
 * K^T (t1 .* v - t1^T v t1) where t1 = softmax(K q)).  Smaller repeats
 * (A^T, sigmoid(x)) read better in place and are left there.
 *
 * Names follow the kind of what they stand for, so that they read (and
 * typeset) as the naming convention of the language would: tau1, tau2
 * for scalars, t1, t2 for vectors, T1, T2 for matrices; a name the
 * expression already uses is skipped.  Bindings come in dependency
 * order: each uses only the ones before it, as the parser requires, and
 * parsing the printed form gives back the very same node.
 *
 * Ownership: an md_sharing owns its arrays; the nodes belong to the
 * context.
 */
#pragma once

#include "expr.h"
#include "shape.h"
#include "strbuf.h"

enum { MD_SHARE_MIN_SIZE = 8, MD_SHARE_MIN_USED = 4 };

typedef struct md_sharing {
  expr *body;    /* the result, with the names in place of the parts */
  expr **names;  /* symbols */
  expr **values; /* what each name stands for, using earlier names */
  size_t n;
} md_sharing;

/* Finds the parts of E to name (none when nothing qualifies: then body is
 * E).  SHAPES, if not NULL, gives the kinds of the parts. */
void md_share(md_ctx *ctx, md_shapes *shapes, expr *e, md_sharing *out);
/* The same for several results at once (both sides of an equation): one
 * set of bindings, BODIES[i] the body of ROOTS[i]; OUT's body is unset.
 * No node is built above the roots, so this works at any depth. */
void md_share_n(md_ctx *ctx, md_shapes *shapes, expr *const *roots,
                size_t nroots, expr **bodies, md_sharing *out);
void md_sharing_clear(md_sharing *s);

/* Whether E printed whole, without bindings, is much larger than its DAG
 * (4 times and more): a where-DAG such as t_k = t_(k-1) + t_(k-1) .*
 * t_(k-1) printed whole is exponential in k.  Linear in the DAG. */
bool md_unfolds(const expr *e);
/* Whether the N expressions V printed whole come to 4 times their DAG
 * (the nodes they have, together) and FLOOR more.  Linear in the DAG. */
bool md_unfolds_n(expr *const *v, size_t n, size_t floor);
/* The number of nodes of E printed whole, up to CAP. */
size_t md_tree_size(const expr *e, size_t cap);

/* E in the text of the language, with where bindings: what matdiff
 * prints (the CLI's printers do the same in LaTeX and with --unicode). */
void md_print_text_shared(strbuf *out, md_ctx *ctx, md_shapes *shapes, expr *e);
