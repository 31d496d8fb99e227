/*
 * api.c - the public C API (include/matdiff/matdiff.h) over the driver.
 *
 * Each call runs the command it stands for (driver.h, checker.h) with
 * options made from the context, its standard output and error captured
 * in memory, and its errors taken as values (md_options.on_error) while
 * their sources are alive.  Nothing here is shared between contexts: the
 * engine keeps no global state, so one context per thread is safe.
 *
 * Only the functions marked MATDIFF_API are exported from libmatdiff.so
 * (hidden visibility, and matdiff.map).
 */
#define MATDIFF_BUILDING 1
#include "matdiff/matdiff.h"

#include "arena.h"
#include "checker.h"
#include "diag.h"
#include "driver.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MATDIFF_VERSION
#define MATDIFF_VERSION "0.1.0"
#endif

enum {
  ALL_FLAGS = MATDIFF_STEPS | MATDIFF_EQUATION | MATDIFF_UNICODE |
              MATDIFF_VERIFY | MATDIFF_COOKBOOK | MATDIFF_VALUE,
};

struct matdiff_ctx {
  char **decls, **rules;
  size_t ndecls, nrules;
  unsigned flags;
  matdiff_layout layout;
};

struct matdiff_error {
  char *message, *source, *text;
  unsigned line, column;
};

struct matdiff_verdict {
  char *file, *identity, *status, *detail;
  unsigned line;
  bool holds;
  matdiff_error *error; /* or NULL */
};

struct matdiff_result {
  matdiff_status status;
  char *output, *warnings;
  matdiff_error *errors;
  size_t nerrors, caperrors;
  matdiff_verdict *verdicts;
  size_t nverdicts, capverdicts;
};

static char *dup_n(const char *s, size_t n) {
  char *d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static char *dup(const char *s) {
  return dup_n(s, strlen(s));
}

const char *matdiff_version(void) {
  return MATDIFF_VERSION;
}

/* ---- contexts ---- */

matdiff_ctx *matdiff_ctx_new(void) {
  return xcalloc(1, sizeof(matdiff_ctx));
}

void matdiff_ctx_free(matdiff_ctx *ctx) {
  if (!ctx)
    return;
  for (size_t i = 0; i < ctx->ndecls; i++)
    free(ctx->decls[i]);
  for (size_t i = 0; i < ctx->nrules; i++)
    free(ctx->rules[i]);
  free(ctx->decls);
  free(ctx->rules);
  free(ctx);
}

static void push(char ***v, size_t *n, const char *s) {
  *v = xreallocarray(*v, *n + 1, sizeof **v);
  (*v)[(*n)++] = dup(s ? s : "");
}

void matdiff_ctx_let(matdiff_ctx *ctx, const char *decl) {
  push(&ctx->decls, &ctx->ndecls, decl);
}

void matdiff_ctx_add_rules(matdiff_ctx *ctx, const char *path) {
  push(&ctx->rules, &ctx->nrules, path);
}

void matdiff_ctx_set_flags(matdiff_ctx *ctx, unsigned flags) {
  ctx->flags = flags;
}

void matdiff_ctx_set_layout(matdiff_ctx *ctx, matdiff_layout layout) {
  ctx->layout = layout;
}

/* ---- errors ---- */

static matdiff_result *result_new(void) {
  matdiff_result *r = xcalloc(1, sizeof *r);
  r->output = dup("");
  r->warnings = dup("");
  return r;
}

/* E as a value: its place computed now, while its source is alive. */
static void error_from(matdiff_error *to, const md_error *e) {
  to->message = dup(e->msg);
  to->source = dup(e->src ? e->src->name : "");
  to->line = to->column = 0;
  if (e->src && md_loc_valid(e->loc))
    md_source_linecol(e->src, e->loc.begin, &to->line, &to->column);
  /* the command's message, without its "matdiff: " */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f) {
    md_error_print(f, e);
    fclose(f);
  }
  const char *pfx = "matdiff: ";
  size_t skip = buf && strncmp(buf, pfx, strlen(pfx)) == 0 ? strlen(pfx) : 0;
  to->text = dup(buf ? buf + skip : e->msg);
  free(buf);
}

static void error_clear(matdiff_error *e) {
  free(e->message);
  free(e->source);
  free(e->text);
}

static void add_error(void *arg, const md_error *e) {
  matdiff_result *r = arg;
  if (r->nerrors == r->caperrors) {
    r->caperrors = r->caperrors ? 2 * r->caperrors : 2;
    r->errors = xreallocarray(r->errors, r->caperrors, sizeof *r->errors);
  }
  error_from(&r->errors[r->nerrors++], e);
}

/* R fails with the error MSG at the start of TEXT (named NAME), or with
 * no place when TEXT is NULL. */
static matdiff_result *fail_at(matdiff_result *r, const char *name,
                               const char *text, const char *msg) {
  md_source src = {name, text, text ? strlen(text) : 0, 1};
  md_errors e;
  md_errors_init(&e);
  md_error_at(&e, text ? &src : NULL, text ? (md_loc){0, 0} : MD_NOLOC, "%s",
              msg);
  add_error(r, &e.v[0]);
  md_errors_clear(&e);
  r->status = MATDIFF_ERROR;
  return r;
}

static matdiff_result *fail(matdiff_result *r, const char *msg) {
  return fail_at(r, NULL, NULL, msg);
}

/* ---- calls ---- */

typedef enum { CALL_DIFF, CALL_HESSIAN, CALL_SIMPLIFY, CALL_CHECK } call_kind;

typedef struct capture {
  char *out, *err;
  size_t outlen, errlen;
  FILE *outf, *errf;
} capture;

static bool capture_open(capture *c) {
  *c = (capture){0};
  c->outf = open_memstream(&c->out, &c->outlen);
  c->errf = c->outf ? open_memstream(&c->err, &c->errlen) : NULL;
  if (c->errf)
    return true;
  if (c->outf)
    fclose(c->outf);
  free(c->out);
  return false;
}

/* The captured streams into R: the output without its last newline. */
static void capture_close(capture *c, matdiff_result *r) {
  fclose(c->outf);
  fclose(c->errf);
  if (c->outlen && c->out[c->outlen - 1] == '\n')
    c->out[--c->outlen] = '\0';
  free(r->output);
  free(r->warnings);
  r->output = c->out;
  r->warnings = c->err;
}

/* The options of CTX for a call; NULL after an error added to R. */
static bool make_options(const matdiff_ctx *ctx, call_kind kind,
                         matdiff_format format, matdiff_result *r,
                         md_options *o) {
  unsigned f = ctx->flags;
  const char *why = NULL;
  *o = (md_options){
      .decls = (const char **)ctx->decls,
      .ndecls = ctx->ndecls,
      .rules = (const char **)ctx->rules,
      .nrules = ctx->nrules,
      .decl_source = "<let>",
      .on_error = add_error,
      .on_error_arg = r,
  };
  if (kind == CALL_CHECK)
    return true; /* an identity file says everything else itself */
  if (f & ~(unsigned)ALL_FLAGS)
    why = "unknown flags: give MATDIFF_STEPS, MATDIFF_EQUATION, "
          "MATDIFF_UNICODE, MATDIFF_VERIFY, MATDIFF_COOKBOOK or "
          "MATDIFF_VALUE";
  else if ((unsigned)format > MATDIFF_FORMAT_OCTAVE)
    why = "unknown format: give MATDIFF_FORMAT_TEXT, MATDIFF_FORMAT_LATEX, "
          "MATDIFF_FORMAT_NUMPY, MATDIFF_FORMAT_TORCH or MATDIFF_FORMAT_OCTAVE";
  else if ((unsigned)ctx->layout > MATDIFF_LAYOUT_MIXED)
    why = "unknown layout: give MATDIFF_LAYOUT_DENOMINATOR, "
          "MATDIFF_LAYOUT_NUMERATOR or MATDIFF_LAYOUT_MIXED";
  else if ((f & MATDIFF_UNICODE) && format != MATDIFF_FORMAT_TEXT)
    why = "MATDIFF_UNICODE is for text output";
  else if (format >= MATDIFF_FORMAT_NUMPY &&
           (f & (MATDIFF_EQUATION | MATDIFF_STEPS)))
    why = "code formats write a function: MATDIFF_EQUATION and "
          "MATDIFF_STEPS are for text and LaTeX";
  else if ((f & MATDIFF_VALUE) && (kind != CALL_DIFF || (f & MATDIFF_STEPS)))
    why = "MATDIFF_VALUE is for derivatives with their value, without "
          "MATDIFF_STEPS";
  else if ((f & MATDIFF_VERIFY) && (f & MATDIFF_COOKBOOK))
    why = "MATDIFF_VERIFY checks gradients in the Frobenius convention; "
          "leave out MATDIFF_COOKBOOK";
  if (why) {
    fail(r, why);
    return false;
  }
  o->hessian = kind == CALL_HESSIAN;
  o->layout = ctx->layout == MATDIFF_LAYOUT_NUMERATOR ? MD_LAYOUT_NUMERATOR
              : ctx->layout == MATDIFF_LAYOUT_MIXED   ? MD_LAYOUT_MIXED
                                                      : MD_LAYOUT_DENOMINATOR;
  o->cookbook = f & MATDIFF_COOKBOOK;
  o->verify = f & MATDIFF_VERIFY;
  o->format = format == MATDIFF_FORMAT_LATEX    ? MD_FORMAT_LATEX
              : format == MATDIFF_FORMAT_NUMPY  ? MD_FORMAT_NUMPY
              : format == MATDIFF_FORMAT_TORCH  ? MD_FORMAT_TORCH
              : format == MATDIFF_FORMAT_OCTAVE ? MD_FORMAT_OCTAVE
                                                : MD_FORMAT_TEXT;
  o->value = f & MATDIFF_VALUE;
  o->unicode = f & MATDIFF_UNICODE;
  o->equation = f & MATDIFF_EQUATION;
  o->steps = f & MATDIFF_STEPS;
  return true;
}

/* KIND on TEXT by the NWRT variables WRT (none: the one symbol). */
static matdiff_result *run_n(const matdiff_ctx *ctx, call_kind kind,
                             const char *text, const char *const *wrt,
                             size_t nwrt, matdiff_format format) {
  matdiff_result *r = result_new();
  md_options o;
  if (!ctx)
    return fail(r, "no context: make one with "
                   "matdiff_ctx_new()");
  if (!text)
    return fail(r, "no expression given (NULL)");
  if (!make_options(ctx, kind, format, r, &o))
    return r;
  if (nwrt && !wrt)
    return fail(r, "no variables given (NULL)");
  for (size_t i = 0; i < nwrt; i++)
    if (!wrt[i] || !md_valid_var(wrt[i]))
      return fail_at(r, "<wrt>", wrt[i] ? wrt[i] : "",
                     "not a variable to differentiate by: give a symbol or "
                     "vec(X)");
  o.wrt = (const char **)wrt;
  o.nwrt = nwrt;
  capture c;
  if (!capture_open(&c))
    return fail(r, "cannot capture the output");
  int rc = kind == CALL_SIMPLIFY ? md_cmd_simplify(&o, text, c.outf, c.errf)
                                 : md_cmd_diff(&o, text, c.outf, c.errf);
  capture_close(&c, r);
  r->status = rc == 0 ? MATDIFF_OK : rc == 1 ? MATDIFF_FALSE : MATDIFF_ERROR;
  if (r->status == MATDIFF_ERROR && r->nerrors == 0)
    fail(r, "failed without a message");
  if (r->status == MATDIFF_ERROR) {
    free(r->output); /* nothing half-printed */
    r->output = dup("");
  }
  return r;
}

static matdiff_result *run(const matdiff_ctx *ctx, call_kind kind,
                           const char *text, const char *wrt,
                           matdiff_format format) {
  return run_n(ctx, kind, text, &wrt, wrt != NULL, format);
}

matdiff_result *matdiff_diff(matdiff_ctx *ctx, const char *expr,
                             const char *wrt, matdiff_format format) {
  return run(ctx, CALL_DIFF, expr, wrt, format);
}

matdiff_result *matdiff_diff_n(matdiff_ctx *ctx, const char *expr,
                               const char *const *wrt, size_t n,
                               matdiff_format format) {
  return run_n(ctx, CALL_DIFF, expr, wrt, n, format);
}

matdiff_result *matdiff_hessian(matdiff_ctx *ctx, const char *expr,
                                const char *wrt, matdiff_format format) {
  return run(ctx, CALL_HESSIAN, expr, wrt, format);
}

matdiff_result *matdiff_simplify(matdiff_ctx *ctx, const char *expr,
                                 matdiff_format format) {
  return run(ctx, CALL_SIMPLIFY, expr, NULL, format);
}

static void add_verdict(void *arg, const md_check_verdict *v) {
  matdiff_result *r = arg;
  if (r->nverdicts == r->capverdicts) {
    r->capverdicts = r->capverdicts ? 2 * r->capverdicts : 8;
    r->verdicts =
        xreallocarray(r->verdicts, r->capverdicts, sizeof *r->verdicts);
  }
  matdiff_verdict *to = &r->verdicts[r->nverdicts++];
  *to = (matdiff_verdict){
      .file = dup(v->file),
      .identity = xmalloc(v->len + 4),
      .status = dup(v->verdict),
      .detail = dup(v->detail),
      .line = v->line,
      .holds = v->passes,
  };
  memcpy(to->identity, v->ident, v->len);
  strcpy(to->identity + v->len, v->cut ? "..." : "");
  if (v->error) {
    to->error = xmalloc(sizeof *to->error);
    error_from(to->error, v->error);
  }
}

static matdiff_result *check(const matdiff_ctx *ctx, const char *path,
                             const char *text) {
  matdiff_result *r = result_new();
  md_options o;
  if (!ctx)
    return fail(r, "no context: make one with "
                   "matdiff_ctx_new()");
  if (!path)
    return fail(r, "no identity file given (NULL)");
  make_options(ctx, CALL_CHECK, MATDIFF_FORMAT_TEXT, r, &o);
  capture c;
  if (!capture_open(&c))
    return fail(r, "cannot capture the output");
  int rc = md_check_each(&o, path, text, text ? strlen(text) : 0, add_verdict,
                         r, c.outf, c.errf);
  capture_close(&c, r);
  r->status = rc == 0 ? MATDIFF_OK : rc == 1 ? MATDIFF_FALSE : MATDIFF_ERROR;
  if (r->status == MATDIFF_ERROR && r->nerrors == 0)
    fail(r, "failed without a message");
  return r;
}

matdiff_result *matdiff_check(matdiff_ctx *ctx, const char *text,
                              const char *name) {
  if (!text) {
    matdiff_result *r = result_new();
    return fail(r, "no identities given (NULL)");
  }
  return check(ctx, name ? name : "<text>", text);
}

matdiff_result *matdiff_check_file(matdiff_ctx *ctx, const char *path) {
  return check(ctx, path, NULL);
}

/* ---- results ---- */

void matdiff_result_free(matdiff_result *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->nerrors; i++)
    error_clear(&r->errors[i]);
  for (size_t i = 0; i < r->nverdicts; i++) {
    matdiff_verdict *v = &r->verdicts[i];
    free(v->file);
    free(v->identity);
    free(v->status);
    free(v->detail);
    if (v->error)
      error_clear(v->error);
    free(v->error);
  }
  free(r->errors);
  free(r->verdicts);
  free(r->output);
  free(r->warnings);
  free(r);
}

matdiff_status matdiff_result_status(const matdiff_result *r) {
  return r->status;
}

const char *matdiff_result_output(const matdiff_result *r) {
  return r->output;
}

const char *matdiff_result_warnings(const matdiff_result *r) {
  return r->warnings;
}

size_t matdiff_result_nerrors(const matdiff_result *r) {
  return r->nerrors;
}

const matdiff_error *matdiff_result_error(const matdiff_result *r, size_t i) {
  return i < r->nerrors ? &r->errors[i] : NULL;
}

const char *matdiff_error_message(const matdiff_error *e) {
  return e->message;
}

const char *matdiff_error_source(const matdiff_error *e) {
  return e->source;
}

unsigned matdiff_error_line(const matdiff_error *e) {
  return e->line;
}

unsigned matdiff_error_column(const matdiff_error *e) {
  return e->column;
}

const char *matdiff_error_text(const matdiff_error *e) {
  return e->text;
}

size_t matdiff_result_nverdicts(const matdiff_result *r) {
  return r->nverdicts;
}

const matdiff_verdict *matdiff_result_verdict(const matdiff_result *r,
                                              size_t i) {
  return i < r->nverdicts ? &r->verdicts[i] : NULL;
}

int matdiff_verdict_holds(const matdiff_verdict *v) {
  return v->holds;
}

const char *matdiff_verdict_status(const matdiff_verdict *v) {
  return v->status;
}

const char *matdiff_verdict_identity(const matdiff_verdict *v) {
  return v->identity;
}

const char *matdiff_verdict_file(const matdiff_verdict *v) {
  return v->file;
}

unsigned matdiff_verdict_line(const matdiff_verdict *v) {
  return v->line;
}

const char *matdiff_verdict_detail(const matdiff_verdict *v) {
  return v->detail;
}

const matdiff_error *matdiff_verdict_error(const matdiff_verdict *v) {
  return v->error;
}
