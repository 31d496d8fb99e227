/*
 * matdiff.h - the matdiff engine as a C library.
 *
 * Differentiates and simplifies matrix expressions and checks identity
 * files, as the matdiff command does (see matdiff(1) for the language
 * and the results), and answers with values instead of printing:
 *
 *   #include <matdiff/matdiff.h>
 *
 *   matdiff_ctx *ctx = matdiff_ctx_new();
 *   matdiff_result *r =
 *       matdiff_diff(ctx, "tr(A X^T B)", "X", MATDIFF_FORMAT_TEXT);
 *   if (matdiff_result_status(r) == MATDIFF_OK)
 *     puts(matdiff_result_output(r));             // B A
 *   else
 *     fputs(matdiff_error_text(matdiff_result_error(r, 0)), stderr);
 *   matdiff_result_free(r);
 *   matdiff_ctx_free(ctx);
 *
 * Build with `pkg-config --cflags --libs matdiff`.
 *
 * Ownership.  matdiff_ctx_new and the calls that return a matdiff_result
 * return a new object that the caller frees (matdiff_ctx_free,
 * matdiff_result_free); every other pointer a function returns (strings,
 * errors, verdicts) belongs to the object it was read from and lasts
 * until that object is freed.  Strings passed in are copied or used
 * during the call only.  Running out of memory aborts the process, as
 * the matdiff command does.
 *
 * Errors are values.  A call that fails returns a result whose status is
 * MATDIFF_ERROR and which holds at least one error: a message, the line
 * and column (1-based; 0 when the error has no place) in the source it
 * names ("<expr>", "<let>", a file), and the compiler-style text with the
 * offending line and a caret.  Results are never NULL.
 *
 * Threads.  One context per thread: a context and the results made with
 * it may be used by one thread at a time.  Different contexts share
 * nothing and may be used at once from different threads.
 *
 * Every exported name starts with matdiff_ (types, functions) or
 * MATDIFF_ (constants).
 */
#ifndef MATDIFF_MATDIFF_H
#define MATDIFF_MATDIFF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MATDIFF_BUILDING) && defined(__GNUC__)
#define MATDIFF_API __attribute__((visibility("default")))
#else
#define MATDIFF_API
#endif

/* The library's version, "0.1.0": the matdiff release it comes from. */
MATDIFF_API const char *matdiff_version(void);

/* ---- contexts: declarations and options for the calls made with them */

typedef struct matdiff_ctx matdiff_ctx;

typedef enum matdiff_format {
  MATDIFF_FORMAT_TEXT,   /* the expression language; parses back (default) */
  MATDIFF_FORMAT_LATEX,  /* math-mode LaTeX (amsmath; MathJax renders it) */
  MATDIFF_FORMAT_NUMPY,  /* a Python function computing the result */
  MATDIFF_FORMAT_TORCH,  /* the same with PyTorch tensors */
  MATDIFF_FORMAT_OCTAVE, /* an Octave/MATLAB function file */
} matdiff_format;

typedef enum matdiff_layout {
  MATDIFF_LAYOUT_DENOMINATOR, /* the default (matdiff(1), LAYOUT) */
  MATDIFF_LAYOUT_NUMERATOR,   /* every result transposed */
  MATDIFF_LAYOUT_MIXED,       /* Jacobians numerator, gradients denominator */
} matdiff_layout;

/* Options, or-ed together for matdiff_ctx_set_flags; the command line's
 * options of the same names. */
enum {
  MATDIFF_STEPS = 1 << 0,    /* --steps: the derivation, then the result */
  MATDIFF_EQUATION = 1 << 1, /* --equation: d/dX f = result */
  MATDIFF_UNICODE = 1 << 2,  /* --unicode: text with Unicode symbols */
  MATDIFF_VERIFY = 1 << 3,   /* --verify: results checked numerically */
  MATDIFF_COOKBOOK = 1 << 4, /* --symmetric cookbook */
  MATDIFF_VALUE = 1 << 5,    /* --value: the value of EXPR first */
};

/* A context with no declarations, no rules of the user's, no flags, the
 * denominator layout. */
MATDIFF_API matdiff_ctx *matdiff_ctx_new(void);
/* Frees CTX (NULL is allowed).  Results made with it stay valid. */
MATDIFF_API void matdiff_ctx_free(matdiff_ctx *ctx);

/* Declares symbols for every later call, as `let` or -D does:
 * "A : symmetric(n)", "x : vector(n), s : scalar".  A declaration is
 * read by each call, and an error in it is that call's error, placed in
 * the source "<let>". */
MATDIFF_API void matdiff_ctx_let(matdiff_ctx *ctx, const char *decl);
/* Adds the rules and functions of the file PATH (--rules) for every later
 * call; read by each call, which fails when it cannot be read. */
MATDIFF_API void matdiff_ctx_add_rules(matdiff_ctx *ctx, const char *path);
/* MATDIFF_STEPS | ...: the flags for later calls, replacing the earlier
 * ones.  Unknown bits are an error of each call. */
MATDIFF_API void matdiff_ctx_set_flags(matdiff_ctx *ctx, unsigned flags);
MATDIFF_API void matdiff_ctx_set_layout(matdiff_ctx *ctx,
                                        matdiff_layout layout);

/* ---- calls */

typedef struct matdiff_result matdiff_result;

typedef enum matdiff_status {
  MATDIFF_OK = 0,    /* an answer; for check, every identity holds */
  MATDIFF_FALSE = 1, /* check: an identity fails; --verify refuted one */
  MATDIFF_ERROR = 2, /* bad input or options: see the errors */
} matdiff_status;

/* The derivative of EXPR by WRT (a symbol, or vec(X)); WRT NULL: by the
 * one symbol of EXPR.  The output is the derivative, in FORMAT. */
MATDIFF_API matdiff_result *matdiff_diff(matdiff_ctx *ctx, const char *expr,
                                         const char *wrt,
                                         matdiff_format format);
/* The derivatives of EXPR by the N variables WRT[0..N-1] at once, as
 * several --wrt do: one reverse pass; text one line per variable and one
 * line of the where bindings they share; code one function returning
 * them in WRT's order (with MATDIFF_VALUE, the value first). */
MATDIFF_API matdiff_result *matdiff_diff_n(matdiff_ctx *ctx, const char *expr,
                                           const char *const *wrt, size_t n,
                                           matdiff_format format);
/* The Hessian of the scalar EXPR by the vector WRT (or NULL, as above). */
MATDIFF_API matdiff_result *matdiff_hessian(matdiff_ctx *ctx, const char *expr,
                                            const char *wrt,
                                            matdiff_format format);
/* EXPR simplified, its derivatives (d/dX f) evaluated. */
MATDIFF_API matdiff_result *matdiff_simplify(matdiff_ctx *ctx, const char *expr,
                                             matdiff_format format);
/* Checks the identity file TEXT (NAME names it in verdicts and errors;
 * NULL: "<text>"), as `matdiff check` does: one verdict per identity.
 * Only declarations and rules of the context apply; the status is
 * MATDIFF_FALSE when an identity fails, or a line has an error (both are
 * verdicts, not errors of the result). */
MATDIFF_API matdiff_result *matdiff_check(matdiff_ctx *ctx, const char *text,
                                          const char *name);
/* Checks the identity file PATH ("-" is standard input, as for the
 * command). */
MATDIFF_API matdiff_result *matdiff_check_file(matdiff_ctx *ctx,
                                               const char *path);

/* ---- results */

MATDIFF_API void matdiff_result_free(matdiff_result *r);
MATDIFF_API matdiff_status matdiff_result_status(const matdiff_result *r);
/* What the command prints on standard output, without its last newline:
 * the derivative (several lines for NumPy and steps); for check, the
 * report and its summary line.  "" when the call failed. */
MATDIFF_API const char *matdiff_result_output(const matdiff_result *r);
/* Warnings and notes the command prints on standard error, such as
 * "matdiff: warning: X does not occur in the expression ..."; "" when
 * none.  Errors are not among them. */
MATDIFF_API const char *matdiff_result_warnings(const matdiff_result *r);

typedef struct matdiff_error matdiff_error;

/* The errors, in the order found: 0 when the status is not
 * MATDIFF_ERROR, at least 1 when it is. */
MATDIFF_API size_t matdiff_result_nerrors(const matdiff_result *r);
/* The I-th error, or NULL when I is out of range. */
MATDIFF_API const matdiff_error *matdiff_result_error(const matdiff_result *r,
                                                      size_t i);
/* "cannot multiply A (m×n) by x (p×1) when n ≠ p" */
MATDIFF_API const char *matdiff_error_message(const matdiff_error *e);
/* "<expr>", "<let>", "<wrt>", a file name; "" for an error without a
 * source (an unknown flag, a file that cannot be read). */
MATDIFF_API const char *matdiff_error_source(const matdiff_error *e);
MATDIFF_API unsigned matdiff_error_line(const matdiff_error *e);
MATDIFF_API unsigned matdiff_error_column(const matdiff_error *e);
/* "<expr>:1:3: error: MESSAGE\n", the line and a caret under the column,
 * each line ending in '\n'. */
MATDIFF_API const char *matdiff_error_text(const matdiff_error *e);

typedef struct matdiff_verdict matdiff_verdict;

/* The verdicts of a check, one per identity in order (0 for other
 * calls). */
MATDIFF_API size_t matdiff_result_nverdicts(const matdiff_result *r);
MATDIFF_API const matdiff_verdict *
matdiff_result_verdict(const matdiff_result *r, size_t i);
/* 1 when the identity holds as written (for != : when it does not), 0
 * when it fails or its line has an error. */
MATDIFF_API int matdiff_verdict_holds(const matdiff_verdict *v);
/* "proved", "verified exactly", "verified numerically (...)", "FALSE",
 * "error" */
MATDIFF_API const char *matdiff_verdict_status(const matdiff_verdict *v);
/* The identity as written (cut after 160 bytes, then "..."). */
MATDIFF_API const char *matdiff_verdict_identity(const matdiff_verdict *v);
MATDIFF_API const char *matdiff_verdict_file(const matdiff_verdict *v);
MATDIFF_API unsigned matdiff_verdict_line(const matdiff_verdict *v);
/* The counterexample, or why it could not be decided; "" when none. */
MATDIFF_API const char *matdiff_verdict_detail(const matdiff_verdict *v);
/* The error of a line that is not a well-formed identity, or NULL. */
MATDIFF_API const matdiff_error *
matdiff_verdict_error(const matdiff_verdict *v);

#ifdef __cplusplus
}
#endif

#endif /* MATDIFF_MATDIFF_H */
