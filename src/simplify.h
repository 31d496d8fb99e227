/*
 * simplify.h - simplification: the normal form, then compact output.
 *
 * md_simplify() takes E to its normal form (normal.h: transposes at the
 * leaves, exact rational coefficients, like terms collected, canonical
 * order, cyclic traces, scalars as their own transposes, ...) and then
 * writes that form compactly:
 *
 *   - common left and right factors come out of sums:
 *     A^T x + A x -> (A + A^T) x,  2 A^T A x - 2 A^T y -> 2 A^T (A x - y);
 *   - common rational and scalar factors come out of sums, a lone sign
 *     excepted: 2 A + 2 B -> 2 (A + B), alpha A + alpha B ->
 *     alpha (A + B), but -A - B stays;
 *   - a coefficient goes into a sum factor when that is shorter:
 *     (1/2 - beta) N, not 1/2 (1 - 2 beta) N;
 *   - a sum of transposes is written as a transpose when that is shorter:
 *     x^T A^T - y^T -> (A x - y)^T; so is a product, with its sign and
 *     scalars outside: -X^-T A^T X^-T -> -(X^-1 A X^-1)^T;
 *   - scalar inverses become a quotient: alpha^-1 A -> A / alpha;
 *   - a sum starts with its first positive term (y - A x); a sign goes
 *     into a sum factor, or into what is odd in one, when that is shorter:
 *     A^T (y - A x), x .* (z - y), (beta - alpha)^-1;
 *   - a run of transposes or inverses in a chain is written as one:
 *     u (M z)^T, (A B)^-1 C; so is an element-wise node of transposes,
 *     (x .* z)^T; scalars go inside a power: (alpha A)^-1;
 *   - a trace is written as an inner product when that is shorter:
 *     tr(X^T A X) -> <X, A X>, tr(M N N^T M^T) -> <M N, M N>.
 *
 * Of the forms considered the smallest by md_text_size (print_text.h:
 * the names, numbers and operators the text shows) is kept; on a tie,
 * the plainer one.  A written form can have another normal form than the
 * one it came from (a scalar factored out of a .* operand comes out of
 * the .*), so normal form and writing alternate
 * until the normal form is stable (a few rounds at most): simplifying the
 * result again gives the same node.  The output depends only on the
 * structure of E, never on pointers or on the order nodes were made.
 *
 * md_simplify() needs the shapes of E (from md_shape_infer) and records
 * the shapes of the nodes it builds in the same md_shapes (a result
 * without a value, such as 0^-1 from inv(A - A), has none).  It returns
 * a node of the context, never NULL except when a result would be too
 * deep or past the size budget (md_ctx_limit_text says which).  The work
 * is linear in the size of the DAG apart from sorting the terms of sums
 * and the bounded rotations of traces; the forms tried beside the plain
 * one are bounded by a budget per node of the input.
 */
#pragma once

#include "expr.h"
#include "shape.h"

expr *md_simplify(md_ctx *ctx, md_shapes *shapes, expr *e);

/* The same with the simplification rules of RULES (rules.h: LHS = RHS,
 * left to right) applied before each normal form is taken (rewrite.h);
 * NULL: none.  md_simplify() applies the built-in ones, loaded into CTX
 * once (kept in its slot, md_ctx_slot): a caller that holds an md_rules
 * (the CLI, with a user's --rules) passes it here instead. */
struct md_rules;
expr *md_simplify_with(md_ctx *ctx, md_shapes *shapes,
                       const struct md_rules *rules, expr *e);

/* md_simplify_with for several expressions of one context and SHAPES,
 * which share what they have in common: the gradients of one loss by
 * several variables.  The simplifier holds side tables by node; RULES and
 * SHAPES must outlive it. */
typedef struct md_simplifier md_simplifier;
md_simplifier *md_simplifier_new(md_ctx *ctx, md_shapes *shapes,
                                 const struct md_rules *rules);
expr *md_simplifier_run(md_simplifier *m, expr *e);
void md_simplifier_free(md_simplifier *m);
/* What M's calls have cost so far, for a caller that bounds them
 * (steps.c): the presentations made (each node once, a node of k
 * operands counting k + 1), and one for every 32 nodes its calls asked
 * the node table for (md_ctx_asked: normal forms, the forms tried). */
size_t md_simplifier_work(const md_simplifier *m);
/* A simplifier with the built-in rewrite rules, as md_simplify uses. */
md_simplifier *md_simplifier_builtin(md_ctx *ctx, md_shapes *shapes);

/* True when A and B are equal by the identities of the normal form
 * (normal.h), also after distributing products over sums (within a
 * budget).  False means "not proved", not "different".  A and B share
 * SHAPES (infer both in one md_shapes, as the two sides of an identity). */
bool md_equal(md_ctx *ctx, md_shapes *shapes, expr *a, expr *b);
