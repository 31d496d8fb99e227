/* rules.c - reading rules/ into rule records; see rules.h. */
#include "rules.h"

#include "shape.h"

#include <stdlib.h>
#include <string.h>

void md_rules_init(md_rules *r) {
  *r = (md_rules){0};
}

void md_rules_clear(md_rules *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i].guards);
  free(r->v);
  md_rules_init(r);
}

/* Collects the distinct symbols of E into V (at most CAP). */
static size_t symbols(const expr *e, const expr **v, size_t n, size_t cap) {
  if (e->op == E_SYM) {
    for (size_t i = 0; i < n; i++)
      if (v[i] == e)
        return n;
    if (n < cap)
      v[n++] = e;
    return n;
  }
  for (size_t i = 0; i < e->nkids; i++)
    n = symbols(e->kid[i], v, n, cap);
  return n;
}

static bool contains(const expr *e, const expr *x) {
  if (e == x)
    return true;
  for (size_t i = 0; i < e->nkids; i++)
    if (contains(e->kid[i], x))
      return true;
  return false;
}

/* d/dX <G, P> = R, with X a symbol occurring in P. */
static bool add_rule(md_rules *r, const md_env *env, const md_stmt *st,
                     const md_source *src, md_errors *err, unsigned line,
                     md_ctx *ctx) {
  expr *l = st->lhs;
  if (l->op != E_DIFF || l->kid[0]->op != E_INNER || l->kid[1]->op != E_SYM ||
      l->kid[0]->kid[0]->op != E_SYM ||
      !contains(l->kid[0]->kid[1], l->kid[1])) {
    md_error_at(err, src, st->loc,
                "a rule reads d/dX <G, op(..., X, ...)> = result");
    return false;
  }
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 64;
    r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
  }
  md_rule *rule = &r->v[r->n++];
  *rule = (md_rule){.pattern = l->kid[0]->kid[1],
                    .var = l->kid[1],
                    .adj = l->kid[0]->kid[0],
                    .result = st->rhs,
                    .file = md_intern(ctx, src->name, strlen(src->name)),
                    .line = line};
  const expr *vars[32];
  size_t nv = symbols(rule->pattern, vars, 0, 32);
  rule->guards = xreallocarray(NULL, nv ? nv : 1, sizeof *rule->guards);
  for (size_t i = 0; i < nv; i++) {
    const md_decl *d = md_env_find(env, vars[i]->u.name);
    if (d)
      rule->guards[rule->nguards++] = (md_guard){vars[i], d->kind};
  }
  return true;
}

bool md_rules_load(md_rules *r, md_ctx *ctx, const md_source *src,
                   md_errors *err) {
  md_env env;
  md_env_init(&env);
  bool ok = true;
  size_t b = 0;
  unsigned line = src->line0;
  while (b < src->len) {
    size_t e = b;
    while (e < src->len && src->text[e] != '\n')
      e++;
    /* each line is its own source, so messages say file:line:col; it
     * lives in the context, as long as the messages that point at it */
    md_source *ls = arena_alloc(md_ctx_arena(ctx), sizeof *ls);
    *ls = (md_source){src->name, src->text + b, e - b, line};
    md_parsed p;
    if (!md_parse(ctx, ls, MD_PARSE_PROGRAM, &p, err)) {
      ok = false;
    } else {
      for (size_t i = 0; i < p.n; i++) {
        md_stmt *st = &p.stmts[i];
        if (st->kind == ST_LET) {
          for (size_t k = 0; k < st->ndecls; k++)
            md_env_add(&env, &st->decls[k]);
        } else if (st->kind == ST_EQ) {
          ok &= add_rule(r, &env, st, ls, err, line, ctx);
        } else if (st->kind != ST_EMPTY) {
          md_error_at(err, ls, st->loc,
                      "a rules file holds let lines and rules "
                      "d/dX <G, op(..., X, ...)> = result");
          ok = false;
        }
      }
      md_parsed_clear(&p);
    }
    b = e + 1;
    line++;
  }
  md_env_clear(&env);
  return ok;
}

bool md_rules_load_builtin(md_rules *r, md_ctx *ctx, md_errors *err) {
  bool ok = true;
  for (const md_rule_file *f = md_builtin_rules; f->name; f++) {
    md_source src = {f->name, f->text, strlen(f->text), 1};
    ok &= md_rules_load(r, ctx, &src, err);
  }
  return ok;
}
