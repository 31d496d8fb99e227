/* driver.c - parse, infer shapes, simplify, print; see driver.h. */
#include "driver.h"

#include "parse.h"
#include "print_text.h"
#include "shape.h"
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

typedef struct session {
  md_ctx *ctx;
  md_env env;
  md_errors err;
  FILE *out, *errf;
} session;

static bool session_init(session *S, const md_options *o, FILE *out,
                         FILE *errf) {
  S->ctx = md_ctx_new();
  md_env_init(&S->env);
  md_errors_init(&S->err);
  S->out = out;
  S->errf = errf;
  for (size_t i = 0; i < o->ndecls; i++) {
    md_source src = {"<-D>", o->decls[i], strlen(o->decls[i]), 1};
    md_parsed p;
    if (!md_parse(S->ctx, &src, MD_PARSE_DECL, &p, &S->err)) {
      md_errors_print(errf, &S->err);
      return false;
    }
    for (size_t j = 0; j < p.n; j++)
      for (size_t k = 0; k < p.stmts[j].ndecls; k++)
        md_env_add(&S->env, &p.stmts[j].decls[k]);
    md_parsed_clear(&p);
  }
  return true;
}

static void session_clear(session *S) {
  md_errors_clear(&S->err);
  md_env_clear(&S->env);
  md_ctx_free(S->ctx);
}

/* Finds a derivative anywhere in E (they are not yet evaluated). */
static const expr *find_diff(const expr *e, uint8_t *seen) {
  if (seen[e->id])
    return NULL;
  seen[e->id] = 1;
  if (e->op == E_DIFF || e->op == E_HESS)
    return e;
  for (size_t i = 0; i < e->nkids; i++) {
    const expr *d = find_diff(e->kid[i], seen);
    if (d)
      return d;
  }
  return NULL;
}

/* One expression statement: shapes, simplification, output. */
static bool run_expr(session *S, const md_source *src, const md_parsed *p,
                     expr *e) {
  md_shapes *sh = md_shapes_new(S->ctx, &S->env);
  bool ok = md_shape_infer(sh, e, p, src, &S->err, NULL);
  if (ok) {
    uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
    const expr *d = find_diff(e, seen);
    free(seen);
    if (d) {
      md_error_at(&S->err, src, md_parsed_loc(p, d),
                  "derivatives are not evaluated yet in this version of "
                  "matdiff");
      ok = false;
    }
  }
  if (ok) {
    expr *r = md_simplify(S->ctx, sh, e);
    if (!r) {
      md_error_at(&S->err, src, MD_NOLOC,
                  "result nested too deeply (more than %d levels)",
                  MD_MAX_DEPTH);
      ok = false;
    } else {
      char *t = md_print_text_alloc(S->ctx, r);
      fprintf(S->out, "%s\n", t);
      free(t);
    }
  }
  md_shapes_free(sh);
  return ok;
}

/* Runs every statement of SRC; declarations stay in force after it. */
static bool run_source(session *S, const md_source *src, bool *printed) {
  md_parsed p;
  if (!md_parse(S->ctx, src, MD_PARSE_PROGRAM, &p, &S->err))
    return false;
  bool ok = true;
  for (size_t i = 0; ok && i < p.n; i++) {
    md_stmt *st = &p.stmts[i];
    switch (st->kind) {
    case ST_EMPTY:
      break;
    case ST_LET:
      for (size_t k = 0; k < st->ndecls; k++)
        md_env_add(&S->env, &st->decls[k]);
      break;
    case ST_EXPR:
      ok = run_expr(S, src, &p, st->lhs);
      *printed = true;
      break;
    case ST_EQ:
    case ST_NE:
      md_error_at(&S->err, src, st->loc,
                  "an identity is checked with 'matdiff check FILE', not "
                  "simplified");
      ok = false;
      break;
    case ST_DEF:
      md_error_at(&S->err, src, st->loc,
                  "a function definition belongs in a rules file "
                  "(--rules FILE)");
      ok = false;
      break;
    }
  }
  md_parsed_clear(&p);
  return ok;
}

int md_cmd_simplify(const md_options *o, const char *text, FILE *out,
                    FILE *err) {
  session S;
  int rc = 0;
  if (!session_init(&S, o, out, err)) {
    session_clear(&S);
    return 2;
  }
  md_source src = {"<expr>", text, strlen(text), 1};
  bool printed = false;
  if (!run_source(&S, &src, &printed)) {
    rc = 2;
  } else if (!printed) {
    md_error_at(&S.err, &src, (md_loc){0, 0},
                "empty input: give an expression, such as 'x^T A x'");
    rc = 2;
  }
  md_errors_print(err, &S.err);
  session_clear(&S);
  return rc;
}

int md_cmd_simplify_stream(const md_options *o, FILE *in, FILE *out,
                           FILE *err) {
  session S;
  if (!session_init(&S, o, out, err)) {
    session_clear(&S);
    return 2;
  }
  int rc = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  unsigned lineno = 0;
  while ((len = getline(&line, &cap, in)) >= 0) {
    lineno++;
    if (len > 0 && line[len - 1] == '\n')
      len--;
    md_source src = {"<stdin>", line, (size_t)len, lineno};
    bool printed = false;
    if (!run_source(&S, &src, &printed))
      rc = 2;
    md_errors_print(err, &S.err);
    md_errors_clear(&S.err);
    fflush(out);
  }
  free(line);
  session_clear(&S);
  return rc;
}
