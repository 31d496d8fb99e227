/*
 * fuzz_pipeline.c - libFuzzer harness: parse -> shapes -> differentiate
 * (with the --steps trace) -> simplify -> print on arbitrary bytes, in
 * every output form: text (which must parse back to the same node), the
 * where form and Unicode text (the same), LaTeX and NumPy.  Build and run
 * with tests/fuzz/run.sh.
 */
#include <flint/flint.h>

#include "diff.h"
#include "parse.h"
#include "print_latex.h"
#include "print_numpy.h"
#include "print_text.h"
#include "shape.h"
#include "share.h"
#include "simplify.h"
#include "steps.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* TEXT parses to exactly the node E (the printers' contract). */
static void reparses(md_ctx *ctx, const char *text, expr *e, md_errors *err) {
  md_source s = {"<printed>", text, strlen(text), 1};
  md_parsed q;
  size_t before = err->n;
  if (!md_parse(ctx, &s, MD_PARSE_PROGRAM, &q, err)) {
    /* a limit the text meets (kron of thousands of operands prints as
     * calls nested deeper than MD_MAX_NESTING) is an error, not a bug */
    if (err->n > before && (strstr(err->v[before].msg, "nested too deeply") ||
                            strstr(err->v[before].msg, "too large"))) {
      /* (its messages point into TEXT, which the caller frees: printed
       * at the end, they read freed memory) */
      md_errors_truncate(err, before);
      return;
    }
    abort();
  }
  if (q.n != 1 || q.stmts[0].lhs != e) {
    /* for triage: what was printed, and what it read back as */
    strbuf b;
    sb_init(&b);
    if (q.n == 1)
      md_print_text(&b, ctx, q.stmts[0].lhs);
    char *back = sb_take(&b);
    fprintf(stderr, "printed:   %s\nreads as:  %s\n", text, back);
    free(back);
    abort();
  }
  md_parsed_clear(&q);
}

static void text_print(void *arg, strbuf *b, const expr *e) {
  md_print_text(b, arg, e);
}

/* R as the CLI prints it: its repeated parts named (share.h), in Unicode
 * text when UNICODE.  Printed whole, a DAG is a tree: a Kronecker tower
 * of 18 levels has 2^18 leaves (a fuzzer's timeout in this harness, not
 * in matdiff, which never prints a result unshared). */
static char *shared_text(md_ctx *ctx, md_shapes *sh, expr *r, bool unicode) {
  md_sharing w;
  md_share(ctx, sh, r, &w);
  strbuf b;
  sb_init(&b);
  md_print_text_opts(&b, ctx, w.body, unicode);
  for (size_t i = 0; i < w.n; i++) {
    sb_puts(&b, i ? ", " : " where ");
    md_print_text_opts(&b, ctx, w.names[i], unicode);
    sb_puts(&b, " = ");
    md_print_text_opts(&b, ctx, w.values[i], unicode);
  }
  md_sharing_clear(&w);
  return sb_take(&b);
}

/* Past this many bytes of text, a result is printed in each form once
 * (its Unicode text and its LaTeX without line breaks are left out): a
 * where chain's gradient of 0.5 MB, 0.4 s in the CLI, took 4.5 s in this
 * harness under the sanitizers, printed five times, and timed out with
 * two fuzzers on two cores (fuzz_dag, session 14).  The forms left out
 * are the same code on smaller results. */
enum { BIG_TEXT = 1 << 16 };

/* R, simplified, in every output form, shared as the CLI prints it. */
static void print_all(md_ctx *ctx, md_shapes *sh, expr *r, expr *f,
                      md_errors *err) {
  strbuf b;
  bool big = false;
  for (int unicode = 0; unicode < 2 && !big; unicode++) {
    char *t = shared_text(ctx, sh, r, unicode);
    reparses(ctx, t, r, err);
    big = strlen(t) > BIG_TEXT;
    free(t);
  }
  md_sharing w;
  md_share(ctx, sh, r, &w);
  if (!big)
    free(md_print_latex_alloc(ctx, sh, w.body));
  /* as --format latex --equation prints it: broken into lines when long */
  sb_init(&b);
  md_print_latex_result(&b, ctx, sh, md_unfolds(f) ? NULL : f, w.body, w.names,
                        w.values, w.n, 0);
  sb_clear(&b);
  md_sharing_clear(&w);
  const expr *params[64];
  size_t np = 0;
  for (const expr *x = f; np < 64 && x;) { /* a few of f's symbols */
    if (x->op == E_SYM)
      params[np++] = x;
    x = x->nkids ? x->kid[x->nkids - 1] : NULL;
  }
  if (md_shape_known(sh, r)) {
    sb_init(&b);
    md_errors e2;
    md_errors_init(&e2);
    md_print_numpy(&b, ctx, sh, r, md_shape_of(sh, r), params, np, "f", &e2);
    md_errors_clear(&e2);
    sb_clear(&b);
  }
}

/* Sets the size budget (MATDIFF_MAX_SIZE, read by md_ctx_new) to the
 * WHICH-th of 1024 up to 100 000, or leaves run.sh's (0 or 6 and up): a
 * budget met at one level of a derivation and not another is where a
 * NULL was read (a sweep of MATDIFF_MAX_SIZE found three such, session
 * 12, that run.sh's one budget never met; this harness found a fourth at
 * run.sh's budget only by chance, session 12). */
static void fuzz_budget(unsigned which) {
  static char given[32];
  static bool saved;
  if (!saved) {
    const char *g = getenv("MATDIFF_MAX_SIZE");
    snprintf(given, sizeof given, "%s", g ? g : "");
    saved = true;
  }
  static const char *const budget[] = {NULL,    "1024",   "3000", "9000",
                                       "30000", "100000", NULL};
  const char *bud =
      which < sizeof budget / sizeof budget[0] ? budget[which] : NULL;
  if (!bud)
    bud = given;
  if (bud[0])
    setenv("MATDIFF_MAX_SIZE", bud, 1);
  else
    unsetenv("MATDIFF_MAX_SIZE");
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 4096)
    return 0;
#ifndef FUZZ_DAG
  /* the budget from the input's bytes, which stay the text (fuzz_dag
   * reads its own from its first byte) */
  unsigned sum = 0;
  for (size_t i = 0; i < size; i++)
    sum += data[i];
  fuzz_budget(sum % 7);
#endif
  md_ctx *ctx = md_ctx_new();
  md_errors err;
  md_errors_init(&err);
  md_env env;
  md_env_init(&env);
  md_source src = {"<fuzz>", (const char *)data, size, 1};
  md_rules rules;
  md_rules_init(&rules);
  if (!md_rules_load_builtin(&rules, ctx, &err))
    abort();
  md_parsed p;
  if (md_parse(ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
    md_ctx_scale(ctx, size); /* as the CLI's lines */
    for (size_t i = 0; i < p.n; i++) {
      md_stmt *st = &p.stmts[i];
      if (st->kind == ST_LET)
        for (size_t k = 0; k < st->ndecls; k++)
          md_env_add(&env, &st->decls[k]);
      expr *sides[2] = {st->lhs, st->rhs};
      for (int j = 0; j < 2; j++) {
        expr *e = sides[j];
        if (!e)
          continue;
        md_shapes *sh = md_shapes_new(ctx, &env);
        /* the printer's output re-parses to the same node (shared, as
         * matdiff prints: a where-DAG written whole is exponential) */
        char *t = shared_text(ctx, sh, e, false);
        reparses(ctx, t, e, &err);
        free(t);
        md_diff D = {.ctx = ctx,
                     .rules = &rules,
                     .shapes = sh,
                     .env = &env,
                     .symmetric = MD_SYM_FROBENIUS,
                     .src = &src,
                     .locs = &p,
                     .err = &err};
        if (md_shape_infer(sh, e, &p, &src, &err, NULL)) {
          /* by the first symbol, as `matdiff EXPR` would */
          const expr *x = e;
          while (x->nkids && x->op != E_SYM)
            x = x->kid[0];
          if (x->op == E_SYM &&
              md_shape_infer(sh, (expr *)x, NULL, NULL, &err, NULL)) {
            /* as the CLI's --steps (driver.c), which shares what the
             * lines repeat, so takes expressions that unfold too */
            md_steps *steps = md_steps_new(ctx, sh, e, (expr *)x, text_print,
                                           ctx, false, false);
            D.trace = md_steps_trace(steps);
            expr *d = md_derivative(&D, e, (expr *)x);
            D.trace = NULL;
            if (d && md_shape_derive(sh, d)) {
              expr *s = md_simplify(ctx, sh, d);
              if (s) {
                strbuf b;
                sb_init(&b);
                if (steps)
                  md_steps_finish(steps, &b, s);
                sb_clear(&b);
                print_all(ctx, sh, s, e, &err);
              }
            }
            if (steps)
              md_steps_free(steps);
          }
          e = md_eval_derivatives(&D, e);
          expr *r = e ? md_simplify(ctx, sh, e) : NULL;
          if (r)
            print_all(ctx, sh, r, e, &err);
        }
        md_diff_clear(&D);
        md_shapes_free(sh);
      }
    }
    md_parsed_clear(&p);
  }
  /* messages must print without trouble */
  FILE *null = fopen("/dev/null", "w");
  if (null) {
    md_errors_print(null, &err);
    fclose(null);
  }
  md_errors_clear(&err);
  md_rules_clear(&rules);
  md_env_clear(&env);
  md_ctx_free(ctx);
  /* FLINT's caches (ewise.c's polynomials fill them) freed with the
   * rest: an input that leaves more allocated than it found is run a
   * second time by libFuzzer, to look for a leak, and so took twice its
   * time (the CLI frees them as its thread ends: deep.c) */
  flint_cleanup();
  return 0;
}
