/*
 * frozen.h - the built-in rules of rules/, read at build time.
 *
 * Parsing rules/ took 2.8 M of the 3.1 M instructions of a start.  meson
 * builds tools/freeze_rules.c, which loads rules/ as matdiff would at run
 * time (rules.c, parsing the embedded text) and writes rules_frozen.c: the
 * nodes the rules use, in an order where kids come first, and the rule
 * records with node numbers in place of pointers.  md_rules_load_builtin
 * interns those nodes (the context shares what it already holds) and
 * fills the records, without the parser.  tests/test_rewrite.c checks
 * that both ways give the same rules, node for node.
 *
 * A build of the generator itself links a definition of md_frozen_builtin
 * that is NULL: rules.c then parses, as before.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MD_FROZEN_NONE UINT32_MAX

typedef struct md_fnode {
  uint8_t op;     /* expr_op */
  uint32_t fn;    /* E_CALL: a built-in function's id */
  uint32_t text;  /* E_SYM: name, E_NUM: value "p/q", into texts */
  uint32_t nkids; /* kids: kids[first .. first + nkids) */
  uint32_t first;
} md_fnode;

typedef struct md_fguard {
  uint32_t var;
  uint8_t kind; /* md_kind */
} md_fguard;

typedef struct md_fsizeeq {
  uint32_t a, b; /* b: MD_FROZEN_NONE for "is 1" */
  uint8_t aside, bside;
} md_fsizeeq;

typedef struct md_frule {
  uint32_t pattern, var, adj, result;
  uint32_t guards, nguards; /* into guards */
  uint32_t file;            /* into texts */
  unsigned line;
} md_frule;

typedef struct md_frw {
  uint32_t lhs, rhs;
  uint32_t guards, nguards; /* into guards */
  uint32_t needs, nneeds;   /* into needs */
  uint32_t file;            /* into texts */
  unsigned line;
  bool sub;
} md_frw;

typedef struct md_frozen {
  const md_fnode *nodes;
  size_t nnodes;
  const uint32_t *kids;
  const char *const *texts;
  const md_fguard *guards;
  const md_fsizeeq *needs;
  const md_frule *rules;
  size_t nrules;
  const md_frw *rw;
  size_t nrw;
} md_frozen;

/* rules_frozen.c, generated; NULL in the generator itself. */
extern const md_frozen *const md_frozen_builtin;
