/*
 * rewrite.h - the simplification rules of rules/ applied to a DAG.
 *
 * md_rewrite() rewrites E bottom-up with the rules LHS = RHS of an
 * md_rules (rules.h), each used left to right, the user's first and then
 * the built-in ones in file order; the first rule that matches a node
 * rewrites it, and its result is rewritten again, until no rule matches.
 * The matcher knows no operator:
 *
 *   - a pattern variable matches any node its guard allows (let x :
 *     vector); a variable used twice matches one node twice (nodes are
 *     hash-consed, so that is pointer equality); closed terms (I, ones,
 *     numbers) match themselves;
 *   - at the root of a pattern, a product or Kronecker product of k
 *     operands matches k consecutive operands of a longer one, and the
 *     rewrite replaces that run: A I matches the middle of B A I C;
 *   - at the root, a sum or .* of k operands matches any k of the
 *     operands, in any order (they commute), by a backtracking search of
 *     at most MD_REWRITE_TRIES steps per node and rule;
 *   - below the root, a pattern matches a whole node, operand by operand;
 *   - a rule applies only when the sizes its right side needs hold
 *     (md_sizeeq, found when the rule was loaded) and its result has the
 *     shape of what it replaces, so that no rule assumes a size.
 *
 * Work is linear in the size of the DAG: each node is rewritten once
 * (memoised by node), and the number of rewrites in one call is bounded
 * by MD_REWRITE_BUDGET per node of the input that no earlier call of one
 * md_rewriter rewrote (plus 64); the rewrites of
 * one node, and of results nested in results, are bounded as well (64
 * each), so that a loop does not build ever deeper nodes.  A rule that
 * still applies when a bound is met loops (A B = B A, sin(X) =
 * sin(sin(X))): a user's rule (R's first nrwuser) makes md_rewrite
 * return NULL with md_ctx_limit_rule set to its place, an error the
 * callers report; the built-in ones stop there, with an expression still
 * equal to E, since every step is an identity.
 *
 * Ownership: nodes belong to the context, which must be the one the rules
 * were loaded in (patterns are compared by pointer).  Shapes of the nodes
 * built are derived into SHAPES, which must hold E's.
 */
#pragma once

#include "expr.h"
#include "rules.h"
#include "shape.h"

#define MD_REWRITE_TRIES  4096
#define MD_REWRITE_BUDGET 8

/* E rewritten by the rules of R (E itself when none applies); NULL only
 * when a result would be too deep. */
expr *md_rewrite(md_ctx *ctx, md_shapes *shapes, const md_rules *r, expr *e);
/* md_rewrite for several expressions of one context and SHAPES: what was
 * rewritten once is not rewritten again (md_simplifier, simplify.h). */
typedef struct md_rewriter md_rewriter;
md_rewriter *md_rewriter_new(md_ctx *ctx, md_shapes *shapes, const md_rules *r);
expr *md_rewriter_run(md_rewriter *m, expr *e);
void md_rewriter_free(md_rewriter *m);

/* The right side of R where its left side matches all of E (at the root,
 * no part of a longer product or sum), with E's shape; NULL when it does
 * not match.  The element-wise algebra's substitutions (ewise.h). */
expr *md_rewrite_one(md_ctx *ctx, md_shapes *shapes, const md_rwrule *r,
                     expr *e);
