/*
 * testutil.h - helpers shared by the Check suites (tests/test_*.c).
 *
 * Each test runs with a fresh context, tu_ctx, made by the checked fixture
 * tu_setup/tu_teardown; every node a helper returns belongs to it.  The
 * helpers free what they allocate before they return, so a suite run with
 * CK_FORK=no under valgrind is leak-free whenever its tests pass.
 *
 * Helpers that can fail take the input text and put it into the failure
 * message, so a failing case says which input it was.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "parse.h"
#include "shape.h"

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds a test case may run before Check kills it. */
#define TU_TIMEOUT 60

extern md_ctx *tu_ctx;

void tu_setup(void);
void tu_teardown(void);

/* A test case with the fixture and the timeout, added to S. */
TCase *tu_tcase(Suite *s, const char *name);

/* Runs suite S (CK_FORK and CK_VERBOSITY are honoured); the exit status. */
int tu_run(Suite *s);

/* The expression of TEXT, which must parse as exactly one expression
 * statement (a where clause included); fails the test otherwise. */
expr *tu_parse(const char *text);

/* The first error of a failed parse, with its place in the source. */
typedef struct tu_error {
  bool parsed; /* the input parsed after all: no error */
  size_t nerr; /* messages reported */
  char msg[1024];
  uint32_t begin, end; /* byte offsets */
  unsigned line, col;  /* 1-based, col in characters */
} tu_error;

/* Parses LEN bytes at TEXT (mode MODE) expecting a failure. */
tu_error tu_parse_fail(const char *text, size_t len, md_parse_mode mode);

/* TEXT must fail to parse with exactly one message MSG at column COL. */
void tu_check_parse_error(const char *text, size_t len, const char *msg,
                          unsigned col);

/* The text of E, in a buffer that lives until the next call but one
 * (or the end of the test). */
const char *tu_print(const expr *e);

/* The number P/Q (Q > 0) as a node of tu_ctx. */
expr *tu_rat(long p, long q);

/* ---- simplification (simplify.h) ----
 *
 * TEXT is a program: declarations ("let s : scalar; ") then the
 * expression, in tu_ctx. */

/* The simplified expression of TEXT, which must parse, infer its shapes
 * and have a result with a shape.  The declarations go into ENV;
 * *SHAPES_OUT receives the inference, which the caller frees
 * (md_shapes_free, then md_env_clear). */
expr *tu_simplify_in(const char *text, md_shapes **shapes_out, md_env *env);

/* TEXT simplifies to WANT (its printed text), and simplifying that
 * changes nothing. */
void tu_check_simplify(const char *text, const char *want);

/* md_equal on "DECLS LHS = RHS", the two sides inferred together, as
 * matdiff check infers them. */
bool tu_equal_in(const char *decls, const char *lhs, const char *rhs);

/* ---- random expressions, for the property tests ----
 *
 * A seeded generator of every kind of node (numbers, I, ones, symbols of
 * NAMES, sums, products, quotients, .*, ./, kron, transposes, inverses,
 * powers, every built-in function, norms, inner products, d/dX, hess),
 * well-shaped or not: the printers must print anything the constructors
 * build.  The library's md_rng (splitmix64), so a seed means the same
 * expressions everywhere. */
typedef struct tu_gen {
  uint64_t rng;
  const char *const *names;
  size_t nnames;
  bool big_numbers; /* also 10^k / 7 and -(10^k), k from 10 to 49 */
  bool kron_twice;  /* Kronecker products twice as often */
} tu_gen;

unsigned tu_below(tu_gen *g, unsigned n);
/* An expression at most DEPTH levels deep, in the context tu_ctx. */
expr *tu_gen_expr(tu_gen *g, int depth);
