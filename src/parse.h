/*
 * parse.h - text -> statements over the expression DAG.
 *
 * The grammar lives in grammar/parser.y and grammar/lexer.l; this is its
 * interface.  A source holds statements separated by ';' (an identity file
 * is parsed one line at a time by its reader):
 *
 *   let A : symmetric(n), x : vector(n)     declarations
 *   x^T A x where t = A x                   an expression, with sharing
 *   d/dx (a^T x) = a                        an identity
 *   d/dX tr(X) != X                         a non-identity
 *   sigmoid(x) := 1 ./ (1 + exp(-x))        a function definition
 *
 * Ownership: nodes belong to the context; an md_parsed owns its arrays and
 * is released with md_parsed_clear().  On error, md_parse() returns false,
 * has appended at least one message to ERR, and OUT holds nothing.
 */
#pragma once

#include "diag.h"
#include "expr.h"

typedef enum md_kind {
  K_SCALAR,
  K_VECTOR,
  K_MATRIX,
  K_SYMMETRIC,
  K_SPD,
  K_DIAGONAL,
} md_kind;

/* A declared dimension: a name, an integer, or nothing (inferred). */
typedef struct md_dimspec {
  const char *name; /* interned, or NULL */
  long value;       /* > 0 when name is NULL and the size is given */
} md_dimspec;

typedef struct md_decl {
  const char *name; /* interned */
  md_kind kind;
  md_dimspec dim[2]; /* rows, cols; vectors use dim[0] only */
  md_loc loc;
} md_decl;

typedef enum md_stmt_kind {
  ST_EMPTY,
  ST_LET,  /* decls */
  ST_EXPR, /* lhs */
  ST_EQ,   /* lhs = rhs */
  ST_NE,   /* lhs != rhs */
  ST_DEF,  /* lhs := rhs, lhs a call f(x, ...) */
} md_stmt_kind;

typedef struct md_stmt {
  md_stmt_kind kind;
  expr *lhs, *rhs;
  md_decl *decls;
  size_t ndecls;
  md_loc loc;
} md_stmt;

typedef struct md_parsed {
  md_stmt *stmts;
  size_t n;
  /* where each node first occurs in this source: LOCS[i - 1] for the i
   * that AT maps it to (sparse, by node: a source's few nodes among the
   * context's many, as the rules' lines are read one by one) */
  md_idmap at;
  md_loc *locs;
  size_t nlocs;
} md_parsed;

typedef enum md_parse_mode {
  MD_PARSE_PROGRAM, /* statements separated by ';' */
  MD_PARSE_DECL,    /* declarations, "let" optional (for -D) */
} md_parse_mode;

/* Limits on input, each with its own message. */
/* Brackets, calls and norms open at once: as deep as a node may be, so
 * that whatever the printer writes parses back (--verify re-reads it). */
#define MD_MAX_NESTING MD_MAX_DEPTH
/* Symbols on the parser's stack: more than MD_MAX_NESTING brackets ever
 * need (one holds at most 15: a + - d/dvec(X) b * c ⊗ (a, b, ...; see
 * tests/test_parser.c), so that only chains of prefix operators fill it
 * (- - - x, d/dx a + d/dx b + ...). */
#define MD_MAX_PARSE_STACK (20 * MD_MAX_NESTING)
/* Digits in one number: enough for any constant the printer can write
 * (1e1000 has 1001 digits; no number node has a numerator or denominator
 * of more, MD_MAX_NUM_DIGITS, expr.h), so output always parses back, and
 * few enough to refuse a 100000-digit number. */
#define MD_MAX_DIGITS MD_MAX_NUM_DIGITS
#define MD_MAX_EXP10  1000        /* |e| in 1e<e> */
#define MD_MAX_IDENT  100         /* characters in one identifier */
#define MD_MAX_INPUT  (16u << 20) /* bytes in one source (16 MiB) */

bool md_parse(md_ctx *ctx, const md_source *src, md_parse_mode mode,
              md_parsed *out, md_errors *err);
void md_parsed_clear(md_parsed *p);
/* The location of E's first occurrence, or MD_NOLOC. */
md_loc md_parsed_loc(const md_parsed *p, const expr *e);

const char *md_kind_name(md_kind k);
