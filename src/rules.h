/*
 * rules.h - the identity table of rules/, loaded into rule records.
 *
 * The .rules files of rules/ are compiled into the binary (rules/embed.py
 * writes md_builtin_rules); --rules FILE adds a user's own, tried first.  A
 * derivative rule reads
 *
 *   d/dX <G, pattern> = result
 *
 * where every symbol of the pattern is a pattern variable, X marks the
 * operand the rule differentiates for, and G stands for the adjoint.  A
 * `let` before a rule declares a variable's kind, which guards the rule
 * (the variable then matches only expressions of that kind).
 *
 * Any other line LHS = RHS is a simplification rule, an identity used
 * left to right (SPEC 5):
 *
 *   let x : vector
 *   diag(diag(x)) = x
 *
 * Every symbol of it is a pattern variable (a `let` guards it by kind, as
 * above); closed terms (I, ones, numbers) match themselves.  The sizes
 * the right side needs that the left side does not imply (A C in
 * kron(A, B) kron(C, D) = kron(A C, B D)) are found when the rule is
 * loaded and become conditions of the match (md_sizeeq); rewrite.h
 * applies the rules.
 *
 * A rules file may also define a function (SPEC 5):
 *
 *   softsign(x) := x ./ (1 + abs(x))
 *
 * registers softsign in the context (md_fn_add), so that the lines and
 * expressions parsed after it can call it.  Its shape class follows from
 * its body.  It differentiates by a rule given for it, if any (in any
 * file), else through its body: each definition carries the rule
 * d/dx <G, f(x)> = d/dx <G, body>, tried after all the others, whose
 * right side the engine differentiates.  matdiff check evaluates it by its
 * body (md_rules_inline).  A definition of a built-in function (only in
 * the files of rules/) states what the built-in computes: an identity
 * that matdiff check verifies, not a new function.
 *
 * Ownership: an md_rules owns its arrays; the expressions belong to the
 * context, which must outlive the rules.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "parse.h"
#include "strbuf.h"

typedef struct md_rule_file {
  const char *name, *text;
} md_rule_file;

/* The built-in rule files, ended by {NULL, NULL}. */
extern const md_rule_file md_builtin_rules[];

typedef struct md_guard {
  const expr *var; /* a pattern variable */
  md_kind kind;    /* what it must be */
} md_guard;

/* What a pattern variable of a rule matched, as the matchers of diff.c
 * and rewrite.c record it; a match holds at most MD_MAX_BIND of them. */
enum { MD_MAX_BIND = 16 };
typedef struct md_binding {
  const expr *var;
  expr *val;
} md_binding;

typedef struct md_rule {
  expr *pattern; /* op(..., X, ...), possibly nested */
  expr *var;     /* X */
  expr *adj;     /* G */
  expr *result;
  md_guard *guards;
  size_t nguards;
  const char *file; /* interned */
  unsigned line;
} md_rule;

/* A size condition of a rewrite rule: dimension SIDE (0 rows, 1 cols) of
 * what variable A matched equals that of what B matched, or is 1 when B
 * is NULL. */
typedef struct md_sizeeq {
  const expr *a, *b;
  unsigned aside, bside;
} md_sizeeq;

/* LHS = RHS, a simplification rule oriented left to right. */
typedef struct md_rwrule {
  expr *lhs, *rhs;
  md_guard *guards;
  size_t nguards;
  md_sizeeq *needs; /* size conditions, see above */
  size_t nneeds;
  const char *file; /* interned */
  unsigned line;
  /* A rule of rules/algebra.rules: an identity the element-wise algebra
   * substitutes for an atom when the result is smaller (ewise.h), never
   * a rewrite of its own. */
  bool sub;
} md_rwrule;

typedef struct md_fndef {
  uint32_t fn;
  expr *param; /* the symbol x of f(x) */
  expr *body;
  md_rule rule; /* d/dx <G, f(x)> = d/dx <G, body> */
} md_fndef;

typedef struct md_rules {
  md_rule *v; /* a user's rules (the first NUSER), then the built-in ones */
  size_t n, cap, nuser;
  bool builtin_loaded;
  md_fndef *defs; /* functions defined by rules files, in order */
  size_t ndefs, capdefs;
  uint32_t *byfn; /* by function number: its definition's index + 1 */
  size_t nbyfn;
  md_rwrule *rw; /* a user's rewrite rules (the first NRWUSER), then ours */
  size_t nrw, caprw, nrwuser;
} md_rules;

void md_rules_init(md_rules *r);
void md_rules_clear(md_rules *r);
/* Adds the rules of SRC (one per line), a user's file: its rules are
 * tried before the built-in ones, which are loaded first if they are not
 * yet.  On error, adds messages to ERR with file:line:col and returns
 * false; the rules before stay. */
bool md_rules_load(md_rules *r, md_ctx *ctx, const md_source *src,
                   md_errors *err);
/* Loads every built-in rule file (once: later calls do nothing), from the
 * tables made at build time (frozen.h). */
bool md_rules_load_builtin(md_rules *r, md_ctx *ctx, md_errors *err);
/* The same by parsing the embedded text of rules/, as the build-time
 * generator does (and the tests, to compare). */
bool md_rules_parse_builtin(md_rules *r, md_ctx *ctx, md_errors *err);
/* Loads the simplification rules of the built-in files only (quickly:
 * the other lines are not parsed), into an md_rules that holds nothing
 * else; md_simplify() does this on each call. */
bool md_rules_load_rewrites(md_rules *r, md_ctx *ctx, md_errors *err);
/* The rewrite rule whose sides are LHS and RHS (nodes of the rules'
 * context), or NULL: matdiff check never proves a rule by itself. */
const md_rwrule *md_rules_find_rewrite(const md_rules *r, const expr *lhs,
                                       const expr *rhs);

/* The definition statement ST (kind ST_DEF) of SRC: registers the
 * function in CTX and adds its definition.  BUILTIN allows a definition
 * of a built-in function, which then only sets *IDENTITY (when not NULL):
 * the line is an identity to check, and nothing is added.  False after
 * adding a message to ERR. */
bool md_rules_define(md_rules *r, md_ctx *ctx, const md_stmt *st,
                     const md_source *src, md_errors *err, bool builtin,
                     bool *identity);
/* The distinct symbols of E (a rule's side: a small tree, walked as one)
 * not in V[0..N), added to V (room for CAP); the new count. */
size_t md_rule_symbols(const expr *e, const expr **v, size_t n, size_t cap);
/* The definition of function FN, or NULL. */
const md_fndef *md_rules_fndef(const md_rules *r, uint32_t fn);
/* E with every call of a defined function replaced by its body (bodies
 * may call functions defined before them); NULL if the result would be
 * too deep. */
expr *md_rules_inline(const md_rules *r, md_ctx *ctx, expr *e);
/* "f(x) := body" lines for every definition, in order: what an identity
 * file needs to know the functions (for --verify). */
void md_rules_print_defs(const md_rules *r, md_ctx *ctx, strbuf *out);
