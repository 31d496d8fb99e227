/*
 * driver.h - the commands of the CLI, as library calls.
 *
 * main.c parses options into an md_options and calls these; tests call
 * them in-process.  Each returns the process exit status (0 success,
 * 1 a check failed, 2 bad usage or bad input) and writes results to OUT,
 * messages to ERR.
 *
 * Errors as values (the library, src/api.c): with on_error set, each
 * error goes to on_error instead of being printed on ERR, while its
 * source is still alive (its line and column can be computed then, not
 * after the call).  Warnings and notes still go to ERR.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct md_error;
struct md_errors;

typedef enum md_layout {
  MD_LAYOUT_DENOMINATOR,
  MD_LAYOUT_NUMERATOR, /* every result transposed */
  MD_LAYOUT_MIXED,     /* Jacobians in numerator, gradients in denominator */
} md_layout;

typedef enum md_format {
  MD_FORMAT_TEXT,   /* the language itself (default) */
  MD_FORMAT_LATEX,  /* math-mode LaTeX */
  MD_FORMAT_NUMPY,  /* a Python function computing the result */
  MD_FORMAT_TORCH,  /* the same over PyTorch tensors */
  MD_FORMAT_OCTAVE, /* an Octave (and MATLAB) function file */
} md_format;

typedef struct md_options {
  const char **decls; /* -D, in order */
  size_t ndecls;
  const char **wrt; /* --wrt, in order */
  size_t nwrt;
  const char **rules; /* --rules files, tried before the built-in ones */
  size_t nrules;
  bool hessian;
  md_layout layout;
  bool cookbook; /* --symmetric cookbook */
  bool verify;   /* --verify: check each result with matdiff check first */
  md_format format;
  bool unicode;  /* --unicode: text with Unicode symbols */
  bool equation; /* --equation: print LHS = result */
  bool steps;    /* --steps: the derivation, then the result */
  bool value;    /* --value: the value of EXPR too, with its derivatives */
  /* where declarations are placed in messages; NULL: "<-D>" */
  const char *decl_source;
  /* NULL: errors are printed on ERR */
  void (*on_error)(void *arg, const struct md_error *e);
  void *on_error_arg;
  uint64_t seed; /* check --seed: the random points' seed (checker.h) */
} md_options;

/* VAR is a name, or vec(name), as --wrt takes. */
bool md_valid_var(const char *var);

/* The errors of E, to O's on_error or printed on ERR. */
void md_report_errors(const md_options *o, FILE *err,
                      const struct md_errors *e);

/* matdiff [--wrt X] EXPR: derivatives of EXPR, one line per variable.
 * With several variables (or --value) the results are formed by one
 * reverse pass and printed together: text and LaTeX with one set of where
 * bindings, code as one function (matdiff(1), "Several variables"). */
int md_cmd_diff(const md_options *o, const char *text, FILE *out, FILE *err);
/* matdiff with no EXPR: one expression per line of IN. */
int md_cmd_diff_stream(const md_options *o, FILE *in, FILE *out, FILE *err);

/* matdiff with no EXPR and a terminal on stdin: a prompt (prompt.h) for
 * one expression a line, each answered in turn; errors are shown and the
 * session goes on.  0 at the end of the input (2 if it cannot be read). */
int md_cmd_diff_prompt(const md_options *o, FILE *out, FILE *err);

/* matdiff simplify EXPR: EXPR is the text of one argument. */
int md_cmd_simplify(const md_options *o, const char *text, FILE *out,
                    FILE *err);
/* matdiff simplify with no EXPR: one expression per line of IN. */
int md_cmd_simplify_stream(const md_options *o, FILE *in, FILE *out, FILE *err);
/* matdiff simplify at a prompt, as md_cmd_diff_prompt. */
int md_cmd_simplify_prompt(const md_options *o, FILE *out, FILE *err);
