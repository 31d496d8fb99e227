/*
 * checker.h - matdiff check: identity files (SPEC 7; the format is in
 * matdiff-identities(5)).
 *
 * Each line of a file is parsed on its own (so a bad line is reported
 * and the rest still run); `let` declarations hold from their line on.
 * An identity LHS = RHS is decided in this order: proved (both sides
 * simplify to one node, and no derivative is involved), verified exactly
 * (equal at random rational points, derivatives by dual numbers: see
 * eval.h), verified numerically (in doubles, within 1e-9 relative to
 * the largest entry, or absolute when that is below 1), or FALSE with a
 * counterexample.  LHS != RHS passes when the identity is false, or when the
 * sides have different shapes.
 *
 * The random points are drawn from a seed made of the identity's text and
 * of --seed N (md_options.seed, 0 by default): every run with the same N
 * gives the same verdicts and counterexamples, and a counterexample shows
 * the value of every symbol at its point, with the N that draws it.
 */
#pragma once

#include "driver.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Points at which an identity is evaluated. */
#define MD_CHECK_POINTS 3
/* Points in a row at which a floating-point difference must show before
 * it counts (rounding shows at one point, rarely at two). */
#define MD_CHECK_CONFIRM 3
/* Agreement wanted in doubles, relative to the largest entry when it is
 * above 1, absolute below (a zero computed in doubles is 1e-16). */
#define MD_CHECK_TOL 1e-9
/* A floating-point difference is weighed against the rounding the point
 * allows: the values are computed again with the point moved by this
 * much (relative), and a side that moves by c is taken to carry rounding
 * of c 2^-17 (2^-53 / 2^-26, times 2^10 for the operations that
 * compound it); a side that moves by more than 2^-10 is past any such
 * estimate (t_k = sin(3 t_(k-1)) + cos(t_(k-1)), 200 levels deep, whose
 * values double precision cannot tell apart from noise).  Where rounding
 * can explain the difference, the point decides nothing, and another is
 * drawn, up to MD_CHECK_UNDECIDED of them; then the check cannot be
 * made in doubles, an error, not a FALSE. */
#define MD_CHECK_PERTURB 0x1p-26
/* ... and moved by this much, which changes a stable formula's value by
 * 2^-44 times its condition and an unstable one's by its rounding: a
 * difference within 16 times that is rounding too.  simplify --verify
 * said FALSE of a correct result whose terms of 2^27 cancel in doubles
 * (7 digits lost: tests/fuzz/regress/simplify-verify-false-
 * cancellation-31); a real difference of 1e-9 passes for rounding only
 * where the condition passes 1 000, as at MD_CHECK_PERTURB. */
#define MD_CHECK_NOISE     0x1p-44
#define MD_CHECK_UNDECIDED 6

/* Checks the identities of FILES ("-" is stdin), in order: one verdict
 * per identity and a summary line on OUT (TAP with TAP), messages about
 * the files themselves on ERR.  Returns 0 when every identity passes, 1
 * when one fails, 2 on a usage error (a file that cannot be read, a bad
 * -D). */
int md_cmd_check(const md_options *o, const char *const *files, size_t nfiles,
                 bool tap, FILE *out, FILE *err);

/* One verdict of matdiff check, for the library (src/api.c).  Its
 * pointers last as long as the call that receives it. */
typedef struct md_check_verdict {
  const char *file; /* the file as named in messages */
  unsigned line;
  const char *ident; /* the identity as written, LEN bytes, not terminated */
  size_t len;
  bool cut;                     /* IDENT was cut: the identity goes on */
  bool passes;                  /* = holds, != does not, both as they should */
  const char *verdict;          /* "proved", "verified exactly", ... */
  const char *detail;           /* the counterexample, why; "" when none */
  const struct md_error *error; /* a located error (a bad line), or NULL */
} md_check_verdict;

typedef void md_check_fn(void *arg, const md_check_verdict *v);

/* matdiff check on one input, each verdict to FN too: the identity file
 * PATH, or, when TEXT is not NULL, the LEN bytes at TEXT, named PATH in
 * messages.  The report and summary go to OUT, as md_cmd_check writes
 * them; returns as md_cmd_check does. */
int md_check_each(const md_options *o, const char *path, const char *text,
                  size_t len, md_check_fn *fn, void *arg, FILE *out, FILE *err);

/* Checks the identity file TEXT (LEN bytes) quietly, for --verify: 0 if
 * every identity passes; else 1, or 2 for a line in error, with the
 * verdicts of the lines that failed written to ERR. */
int md_check_text(const char *name, const char *text, size_t len, FILE *err);
