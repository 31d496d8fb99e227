/*
 * fuzz_pipeline.c - libFuzzer harness: parse -> shapes -> differentiate ->
 * simplify -> print on arbitrary bytes, and the printed input must parse
 * back to the same node.  Build and run with tests/fuzz/run.sh.
 */
#include "diff.h"
#include "parse.h"
#include "print_text.h"
#include "shape.h"
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 4096)
    return 0;
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
        /* the printer's output re-parses to the same node */
        char *t = md_print_text_alloc(ctx, e);
        md_source s2 = {"<printed>", t, strlen(t), 1};
        md_parsed q;
        if (!md_parse(ctx, &s2, MD_PARSE_PROGRAM, &q, &err) || q.n != 1 ||
            q.stmts[0].lhs != e)
          abort();
        md_parsed_clear(&q);
        free(t);
        md_shapes *sh = md_shapes_new(ctx, &env);
        md_diff D = {ctx, &rules, sh, &env, MD_SYM_FROBENIUS, &src, &p, &err,
                     0, NULL};
        if (md_shape_infer(sh, e, &p, &src, &err, NULL)) {
          /* by the first symbol, as `matdiff EXPR` would */
          const expr *x = e;
          while (x->nkids && x->op != E_SYM)
            x = x->kid[0];
          if (x->op == E_SYM && md_shape_infer(sh, (expr *)x, NULL, NULL,
                                               &err, NULL)) {
            expr *d = md_derivative(&D, e, (expr *)x);
            if (d && md_shape_derive(sh, d)) {
              expr *s = md_simplify(ctx, sh, d);
              if (s)
                free(md_print_text_alloc(ctx, s));
            }
          }
          e = md_eval_derivatives(&D, e);
          expr *r = e ? md_simplify(ctx, sh, e) : NULL;
          if (r) {
            char *u = md_print_text_alloc(ctx, r);
            free(u);
          }
        }
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
  return 0;
}
