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
 * Ownership: an md_rules owns its arrays; the expressions belong to the
 * context, which must outlive the rules.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "parse.h"

typedef struct md_rule_file {
  const char *name, *text;
} md_rule_file;

/* The built-in rule files, ended by {NULL, NULL}. */
extern const md_rule_file md_builtin_rules[];

typedef struct md_guard {
  const expr *var; /* a pattern variable */
  md_kind kind;    /* what it must be */
} md_guard;

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

typedef struct md_rules {
  md_rule *v;
  size_t n, cap;
} md_rules;

void md_rules_init(md_rules *r);
void md_rules_clear(md_rules *r);
/* Adds the rules of SRC (one per line).  On error, adds messages to ERR
 * with file:line:col and returns false; the rules before stay. */
bool md_rules_load(md_rules *r, md_ctx *ctx, const md_source *src,
                   md_errors *err);
/* Loads every built-in rule file. */
bool md_rules_load_builtin(md_rules *r, md_ctx *ctx, md_errors *err);
