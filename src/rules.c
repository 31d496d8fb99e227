/* rules.c - reading rules/ into rule records; see rules.h. */
#include "rules.h"

#include "frozen.h"
#include "print_text.h"
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
  for (size_t i = 0; i < r->nrw; i++) {
    free(r->rw[i].guards);
    free(r->rw[i].needs);
  }
  free(r->rw);
  free(r->defs);
  free(r->byfn);
  md_rules_init(r);
}

size_t md_rule_symbols(const expr *e, const expr **v, size_t n, size_t cap) {
  if (e->op == E_SYM) {
    for (size_t i = 0; i < n; i++)
      if (v[i] == e)
        return n;
    if (n < cap)
      v[n++] = e;
    return n;
  }
  for (size_t i = 0; i < e->nkids; i++)
    n = md_rule_symbols(e->kid[i], v, n, cap);
  return n;
}

/* d/dX <G, P> = R, with X a symbol occurring in P. */
static bool add_rule(md_rules *r, const md_env *env, const md_stmt *st,
                     const md_source *src, md_errors *err, unsigned line,
                     md_ctx *ctx, bool builtin) {
  expr *l = st->lhs;
  if (l->op != E_DIFF || l->kid[0]->op != E_INNER || l->kid[1]->op != E_SYM ||
      l->kid[0]->kid[0]->op != E_SYM ||
      !expr_contains(l->kid[0]->kid[1], l->kid[1], NULL)) {
    md_error_at(err, src, st->loc,
                "a rule reads d/dX <G, op(..., X, ...)> = result");
    return false;
  }
  md_ctx_pin(ctx); /* the rule's nodes outlive the line (expr.h) */
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 64;
    r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
  }
  /* a user's rule goes before the built-in ones, which it overrides */
  size_t at = builtin ? r->n : r->nuser++;
  memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
  r->n++;
  md_rule *rule = &r->v[at];
  *rule = (md_rule){.pattern = l->kid[0]->kid[1],
                    .var = l->kid[1],
                    .adj = l->kid[0]->kid[0],
                    .result = st->rhs,
                    .file = md_intern(ctx, src->name, strlen(src->name)),
                    .line = line};
  const expr *vars[32];
  size_t nv = md_rule_symbols(rule->pattern, vars, 0, 32);
  rule->guards = xreallocarray(NULL, nv ? nv : 1, sizeof *rule->guards);
  for (size_t i = 0; i < nv; i++) {
    const md_decl *d = md_env_find(env, vars[i]->u.name);
    if (d)
      rule->guards[rule->nguards++] = (md_guard){vars[i], d->kind};
  }
  return true;
}

/* ---- simplification rules: LHS = RHS, used left to right ---- */

/* At most this many pattern variables in a rule (the matcher's bindings). */
enum { MAX_RW_VARS = 16 };

/* Infers the shapes of the rule's two sides in S, the left one alone
 * first when BOTH is false.  False if they do not fit. */
static bool rule_shapes(md_shapes *s, const md_stmt *st, bool both) {
  md_errors err;
  md_errors_init(&err);
  md_shape l, r;
  bool ok = md_shape_infer(s, st->lhs, NULL, NULL, &err, &l);
  if (ok && both)
    ok = md_shape_infer(s, st->rhs, NULL, NULL, &err, &r) &&
         md_shape_unify(s, l, r);
  md_errors_clear(&err);
  return ok;
}

static md_dim side_of(md_shapes *s, const expr *v, unsigned side) {
  md_shape sh = md_shape_of(s, v);
  return side ? sh.c : sh.r;
}

/* The size conditions of a rule: the equalities between the sizes of its
 * variables (and with 1) that both sides together imply and the left
 * side alone does not.  A variable without a `let` is a matrix of
 * unknown sizes, which are never 1: a rule that needs one to be 1 fails
 * here, and a guard (let x : vector) says so.  False when the sides do
 * not fit at all. */
static bool size_conditions(md_ctx *ctx, const md_env *env, const md_stmt *st,
                            const expr **vars, size_t nv, md_rwrule *rw) {
  md_env venv;
  md_env_init(&venv);
  for (size_t i = 0; i < nv; i++) {
    const md_decl *d = md_env_find(env, vars[i]->u.name);
    md_decl any = {.name = vars[i]->u.name, .kind = K_MATRIX, .loc = MD_NOLOC};
    md_env_add(&venv, d ? d : &any);
  }
  md_shapes *alone = md_shapes_new_sparse(ctx, &venv);
  md_shapes *both = md_shapes_new_sparse(ctx, &venv);
  bool ok = rule_shapes(alone, st, false) && rule_shapes(both, st, true);
  size_t cap = 0;
  for (size_t i = 0; ok && i < 2 * nv; i++) {
    const expr *a = vars[i / 2];
    md_dim da1 = side_of(alone, a, i % 2), da2 = side_of(both, a, i % 2);
    /* j == 2 nv stands for the size 1 */
    for (size_t j = i + 1; j <= 2 * nv; j++) {
      const expr *b = j < 2 * nv ? vars[j / 2] : NULL;
      bool eq2 = b ? md_dim_equal(both, da2, side_of(both, b, j % 2))
                   : md_dim_is_one(both, da2);
      bool eq1 = b ? md_dim_equal(alone, da1, side_of(alone, b, j % 2))
                   : md_dim_is_one(alone, da1);
      if (!eq2 || eq1)
        continue;
      if (rw->nneeds == cap) {
        cap = cap ? 2 * cap : 4;
        rw->needs = xreallocarray(rw->needs, cap, sizeof *rw->needs);
      }
      rw->needs[rw->nneeds++] =
          (md_sizeeq){a, b, (unsigned)(i % 2), (unsigned)(j % 2)};
    }
  }
  md_shapes_free(alone);
  md_shapes_free(both);
  md_env_clear(&venv);
  return ok;
}

/* LHS = RHS with LHS an operation (not a derivative): a simplification
 * rule. */
static bool add_rewrite(md_rules *r, const md_env *env, const md_stmt *st,
                        const md_parsed *p, const md_source *src,
                        md_errors *err, unsigned line, md_ctx *ctx,
                        bool builtin) {
  expr *l = st->lhs, *rhs = st->rhs;
  if (l->nkids == 0) {
    if (l->op == E_SYM)
      md_error_at(err, src, md_parsed_loc(p, l),
                  "the left side of a rule cannot be a lone variable (%s "
                  "would match everything): write an operation, such as "
                  "log(exp(X)) = X",
                  l->u.name);
    else
      md_error_at(err, src, st->loc,
                  "the left side of a rule must be an operation, such as "
                  "log(exp(X)) = X");
    return false;
  }
  md_idmap seen;
  md_idmap_init(&seen);
  bool deriv = expr_has_derivative(l, &seen) || expr_has_derivative(rhs, &seen);
  md_idmap_clear(&seen);
  if (deriv) {
    md_error_at(err, src, st->loc,
                "a simplification rule may not hold a derivative; a "
                "derivative rule reads d/dX <G, op(..., X, ...)> = result");
    return false;
  }
  const expr *vars[MAX_RW_VARS + 1], *rvars[MAX_RW_VARS + 1];
  size_t nv = md_rule_symbols(l, vars, 0, MAX_RW_VARS + 1);
  if (nv > MAX_RW_VARS) {
    md_error_at(err, src, st->loc, "a rule may have at most %d variables",
                MAX_RW_VARS);
    return false;
  }
  size_t nr = md_rule_symbols(rhs, rvars, 0, MAX_RW_VARS + 1);
  for (size_t i = 0; i < nr; i++)
    if (!expr_contains(l, rvars[i], NULL)) {
      md_error_at(err, src, md_parsed_loc(p, rvars[i]),
                  "the right side uses %s, which the left side does not "
                  "bind: every variable of the result must occur on the left",
                  rvars[i]->u.name);
      return false;
    }
  md_rwrule rw = {.lhs = l,
                  .rhs = rhs,
                  .file = md_intern(ctx, src->name, strlen(src->name)),
                  .line = line,
                  .sub = builtin && strcmp(src->name, "algebra.rules") == 0};
  if (!size_conditions(ctx, env, st, vars, nv, &rw)) {
    free(rw.needs);
    md_error_at(err, src, st->loc,
                "the two sides of this rule do not have one shape (a "
                "variable without a let is a matrix of any size, never 1×1: "
                "declare vectors and scalars)");
    return false;
  }
  rw.guards = xreallocarray(NULL, nv ? nv : 1, sizeof *rw.guards);
  for (size_t i = 0; i < nv; i++) {
    const md_decl *d = md_env_find(env, vars[i]->u.name);
    if (d)
      rw.guards[rw.nguards++] = (md_guard){vars[i], d->kind};
  }
  md_ctx_pin(ctx); /* the rule's nodes outlive the line (expr.h) */
  if (r->nrw == r->caprw) {
    r->caprw = r->caprw ? 2 * r->caprw : 32;
    r->rw = xreallocarray(r->rw, r->caprw, sizeof *r->rw);
  }
  /* a user's rule goes before the built-in ones */
  size_t at = builtin ? r->nrw : r->nrwuser++;
  memmove(&r->rw[at + 1], &r->rw[at], (r->nrw - at) * sizeof *r->rw);
  r->nrw++;
  r->rw[at] = rw;
  return true;
}

const md_rwrule *md_rules_find_rewrite(const md_rules *r, const expr *lhs,
                                       const expr *rhs) {
  for (size_t i = 0; i < r->nrw; i++)
    if (r->rw[i].lhs == lhs && r->rw[i].rhs == rhs)
      return &r->rw[i];
  return NULL;
}

/* ---- function definitions ---- */

/* A body whose every operation works entry by entry on x: then f(X)^T =
 * f(X^T), which the simplifier assumes of an element-wise function. */
static bool elementwise(const md_ctx *ctx, const expr *e, const expr *x) {
  switch ((expr_op)e->op) {
  case E_NUM:
    return true;
  case E_SYM:
    return e == x;
  case E_ADD:
  case E_NEG:
  case E_HAD:
  case E_HDIV:
    for (size_t i = 0; i < e->nkids; i++)
      if (!elementwise(ctx, e->kid[i], x))
        return false;
    return true;
  case E_MUL: {
    /* scaling by constants: 2 x, but not x x */
    size_t nonconst = 0;
    for (size_t i = 0; i < e->nkids; i++) {
      if (!elementwise(ctx, e->kid[i], x))
        return false;
      nonconst += !(e->kid[i]->flags & EF_CONST);
    }
    return nonconst <= 1;
  }
  case E_DIV:
    return elementwise(ctx, e->kid[0], x) && (e->kid[1]->flags & EF_CONST);
  case E_EPOW:
    return elementwise(ctx, e->kid[0], x);
  case E_CALL:
    return e->nkids == 1 && md_fn_get(ctx, e->u.fn)->cls == FC_ELEMWISE &&
           elementwise(ctx, e->kid[0], x);
  default:
    return false;
  }
}

/* The shape of BODY when its parameter X is of KIND, with the sizes
 * named #m and #n (#n×#n when SQUARE), declared in ENV (which the shapes
 * *OUT read); false if the body does not fit. */
static bool body_shape(md_ctx *ctx, const expr *x, expr *body, md_kind kind,
                       bool square, md_env *env, md_shapes **out,
                       md_shape *sh) {
  const char *m = md_intern(ctx, "#m", 2), *n = md_intern(ctx, "#n", 2);
  md_decl d = {.name = x->u.name, .kind = kind, .loc = MD_NOLOC};
  if (kind == K_VECTOR)
    d.dim[0].name = n;
  else if (kind == K_MATRIX)
    d.dim[0].name = square ? n : m, d.dim[1].name = n;
  md_env_clear(env);
  md_env_add(env, &d);
  md_shapes *s = md_shapes_new_sparse(ctx, env);
  md_errors err;
  md_errors_init(&err);
  bool ok = md_shape_infer(s, body, NULL, NULL, &err, sh);
  md_errors_clear(&err);
  if (!ok) {
    md_shapes_free(s);
    return false;
  }
  *out = s;
  return true;
}

/* The shape class of a function with parameter X and BODY: element-wise,
 * anything to a scalar, square to a scalar, or vector to vector. */
static bool classify(md_ctx *ctx, const expr *x, expr *body, fn_class *cls) {
  md_shapes *s;
  md_shape sh;
  md_env env;
  md_env_init(&env);
  bool ok = false, done = false;
  if (body_shape(ctx, x, body, K_MATRIX, false, &env, &s, &sh)) {
    md_shape xs = md_shape_of(s, x);
    if (md_shape_is_scalar(s, sh)) {
      *cls = FC_ANY_TO_SC, ok = true;
    } else if (elementwise(ctx, body, x) && md_dim_equal(s, sh.r, xs.r) &&
               md_dim_equal(s, sh.c, xs.c)) {
      *cls = FC_ELEMWISE, ok = true;
    }
    md_shapes_free(s);
    done = ok;
  }
  if (!done && body_shape(ctx, x, body, K_MATRIX, true, &env, &s, &sh)) {
    if ((done = md_shape_is_scalar(s, sh)))
      *cls = FC_SQUARE_TO_SC;
    md_shapes_free(s);
  }
  if (!done && body_shape(ctx, x, body, K_VECTOR, false, &env, &s, &sh)) {
    md_shape xs = md_shape_of(s, x);
    if ((done = md_shape_is_vector(s, sh) && md_dim_equal(s, sh.r, xs.r)))
      *cls = FC_VEC_TO_VEC;
    md_shapes_free(s);
  }
  md_env_clear(&env);
  return done;
}

/* A symbol of E other than X, or NULL; each node once (a body with
 * where-bindings is a DAG). */
static const expr *other_symbol(const expr *e, const expr *x, md_idmap *seen) {
  if (md_idmap_get(seen, e))
    return NULL;
  md_idmap_put(seen, e, 1);
  if (e->op == E_SYM)
    return e == x ? NULL : e;
  for (size_t i = 0; i < e->nkids; i++) {
    const expr *s = other_symbol(e->kid[i], x, seen);
    if (s)
      return s;
  }
  return NULL;
}

const md_fndef *md_rules_fndef(const md_rules *r, uint32_t fn) {
  return fn < r->nbyfn && r->byfn[fn] ? &r->defs[r->byfn[fn] - 1] : NULL;
}

/* f(x) := body, with f a new name or (BUILTIN) a built-in function */
bool md_rules_define(md_rules *r, md_ctx *ctx, const md_stmt *st,
                     const md_source *src, md_errors *err, bool builtin,
                     bool *identity) {
  if (identity)
    *identity = false;
  expr *l = st->lhs, *body = st->rhs, *x = NULL;
  const char *name = NULL;
  int fn = -1;
  /* f(x) with f not yet a function parses as the product f x */
  if (l->op == E_MUL && l->nkids == 2 && l->kid[0]->op == E_SYM &&
      l->kid[1]->op == E_SYM) {
    name = l->kid[0]->u.name, x = l->kid[1];
  } else if (l->op == E_CALL && l->nkids == 1 && l->kid[0]->op == E_SYM) {
    fn = (int)l->u.fn, x = l->kid[0];
    name = md_fn_get(ctx, l->u.fn)->name;
  }
  if (!x || !(name[0] >= 'a' && name[0] <= 'z')) {
    md_error_at(err, src, st->loc,
                "a definition reads f(x) := body, with f a lower-case name "
                "and x a symbol");
    return false;
  }
  if (fn >= FN_NBUILTIN) {
    const md_fndef *d = md_rules_fndef(r, (uint32_t)fn);
    char at[64] = "";
    if (d)
      snprintf(at, sizeof at, " (at %s:%u)", d->rule.file, d->rule.line);
    md_error_at(err, src, st->loc, "function '%s' is already defined%s", name,
                at);
    return false;
  }
  if (fn >= 0 && !builtin) {
    md_error_at(err, src, st->loc,
                "'%s' is a built-in function: give yours another name", name);
    return false;
  }
  md_idmap seen;
  md_idmap_init(&seen);
  const expr *other = other_symbol(body, x, &seen);
  md_idmap_clear(&seen);
  bool deriv = expr_has_derivative(body, &seen);
  md_idmap_clear(&seen);
  if (other) {
    md_error_at(err, src, st->loc,
                "the body of %s may use only its parameter %s, not %s", name,
                x->u.name, other->u.name);
    return false;
  }
  if (deriv) {
    md_error_at(err, src, st->loc,
                "the body of %s may not hold a derivative: define the "
                "function, then give its derivative as a rule",
                name);
    return false;
  }
  fn_class cls;
  if (!classify(ctx, x, body, &cls)) {
    md_error_at(err, src, st->loc,
                "cannot tell the shape of %s(%s): its body must work entry "
                "by entry (+, -, .*, ./, .^, element-wise functions), give a "
                "scalar, or give a vector of the size of a vector %s",
                name, x->u.name, x->u.name);
    return false;
  }
  if (fn >= 0) {
    /* a built-in: the definition says what it computes */
    if (identity)
      *identity = true;
    return true;
  }
  uint32_t id = md_fn_add(ctx, name, 1, cls);
  if (r->ndefs == r->capdefs) {
    r->capdefs = r->capdefs ? 2 * r->capdefs : 8;
    r->defs = xreallocarray(r->defs, r->capdefs, sizeof *r->defs);
  }
  if (id >= r->nbyfn) {
    size_t n = r->nbyfn ? 2 * r->nbyfn : 64;
    while (n <= id)
      n *= 2;
    r->byfn = xreallocarray(r->byfn, n, sizeof *r->byfn);
    memset(r->byfn + r->nbyfn, 0, (n - r->nbyfn) * sizeof *r->byfn);
    r->nbyfn = n;
  }
  r->byfn[id] = (uint32_t)r->ndefs + 1;
  expr *G = expr_sym(ctx, strcmp(x->u.name, "G") ? "G" : "H");
  r->defs[r->ndefs++] =
      (md_fndef){.fn = id,
                 .param = x,
                 .body = body,
                 .rule = {.pattern = expr_call1(ctx, id, x),
                          .var = x,
                          .adj = G,
                          .result = expr_diff(ctx, expr_inner(ctx, G, body), x),
                          .file = md_intern(ctx, src->name, strlen(src->name)),
                          .line = src->line0}};
  return true;
}

/* MEMO: by node, what it inlines to (sparse: a call inlines its body
 * with a memo of its own, and a table as large as the context for each
 * made a program of many calls quadratic). */
static expr *inline_rec(const md_rules *r, md_ctx *ctx, expr *e,
                        md_idmap *memo) {
  expr *got = (expr *)md_idmap_get(memo, e);
  if (got)
    return got;
  expr *out = e;
  if (e->nkids) {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    bool changed = false;
    for (size_t i = 0; out && i < e->nkids; i++) {
      if (!(k[i] = inline_rec(r, ctx, e->kid[i], memo)))
        out = NULL;
      else
        changed |= k[i] != e->kid[i];
    }
    if (out && changed)
      out = expr_rebuild(ctx, e, k);
    if (k != small)
      free(k);
  }
  const md_fndef *d =
      out && out->op == E_CALL ? md_rules_fndef(r, out->u.fn) : NULL;
  if (d) {
    /* the body, inlined itself (it calls only functions defined before) */
    md_idmap m;
    md_idmap_init(&m);
    expr *b = inline_rec(r, ctx, d->body, &m);
    md_idmap_clear(&m);
    expr_subst sub;
    expr_subst_init(&sub, ctx);
    expr_subst_bind(&sub, d->param, out->kid[0]);
    out = b ? expr_subst_apply(&sub, b) : NULL;
    expr_subst_clear(&sub);
  }
  if (out)
    md_idmap_put(memo, e, (uintptr_t)out);
  return out;
}

expr *md_rules_inline(const md_rules *r, md_ctx *ctx, expr *e) {
  if (!r->ndefs)
    return e;
  md_idmap memo;
  md_idmap_init(&memo);
  expr *out = inline_rec(r, ctx, e, &memo);
  md_idmap_clear(&memo);
  return out;
}

void md_rules_print_defs(const md_rules *r, md_ctx *ctx, strbuf *out) {
  for (size_t i = 0; i < r->ndefs; i++) {
    md_print_text(out, ctx, r->defs[i].rule.pattern);
    sb_puts(out, " := ");
    md_print_text(out, ctx, r->defs[i].body);
    sb_putc(out, '\n');
  }
}

/* A line that can be neither a simplification rule nor a let: a
 * comment, a derivative rule (d/dX <G, ...> = ...) or a definition. */
static bool not_rewrite(const char *t, size_t n) {
  while (n && (*t == ' ' || *t == '\t'))
    t++, n--;
  if (n == 0 || *t == '#')
    return true;
  if (n >= 3 && memcmp(t, "d/d", 3) == 0)
    return true;
  for (size_t i = 0; i + 1 < n; i++)
    if (t[i] == ':' && t[i + 1] == '=')
      return true;
  return false;
}

/* REWRITES_ONLY: the let lines and simplification rules, skipping the
 * rest unparsed (md_rules_load_rewrites). */
static bool load_lines(md_rules *r, md_ctx *ctx, const md_source *src,
                       md_errors *err, bool builtin, bool rewrites_only) {
  md_env env;
  md_env_init(&env);
  bool ok = true;
  size_t b = 0;
  unsigned line = src->line0;
  while (b < src->len) {
    size_t e = b;
    while (e < src->len && src->text[e] != '\n')
      e++;
    if (rewrites_only && not_rewrite(src->text + b, e - b)) {
      b = e + 1;
      line++;
      continue;
    }
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
        } else if (st->kind == ST_EQ && st->lhs->op != E_DIFF) {
          ok &= add_rewrite(r, &env, st, &p, ls, err, line, ctx, builtin);
        } else if (st->kind == ST_EQ) {
          ok &= add_rule(r, &env, st, ls, err, line, ctx, builtin);
        } else if (st->kind == ST_DEF) {
          ok &= md_rules_define(r, ctx, st, ls, err, builtin, NULL);
        } else if (st->kind != ST_EMPTY) {
          md_error_at(err, ls, st->loc,
                      "a rules file holds let lines, rules "
                      "d/dX <G, op(..., X, ...)> = result, simplification "
                      "rules LHS = RHS and definitions f(x) := body");
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

static bool load(md_rules *r, md_ctx *ctx, const md_source *src, md_errors *err,
                 bool builtin) {
  return load_lines(r, ctx, src, err, builtin, false);
}

/* ---- the frozen rules (frozen.h) ---- */

static md_guard *thaw_guards(const md_frozen *z, expr **node, uint32_t first,
                             uint32_t n) {
  md_guard *g = xreallocarray(NULL, n ? n : 1, sizeof *g);
  for (uint32_t i = 0; i < n; i++)
    g[i] = (md_guard){node[z->guards[first + i].var],
                      (md_kind)z->guards[first + i].kind};
  return g;
}

/* The rules of Z, as the parser would have made them, after any a user's
 * file added (they are the built-in ones); the derivative rules only
 * unless REWRITES_ONLY.  False when a node cannot be made (too deep: a
 * build with MATDIFF_MAX_DEPTH that low cannot hold the rules). */
static bool thaw(md_rules *r, md_ctx *ctx, const md_frozen *z,
                 bool rewrites_only) {
  expr **node = xreallocarray(NULL, z->nnodes ? z->nnodes : 1, sizeof *node);
  bool ok = true;
  for (size_t i = 0; ok && i < z->nnodes; i++) {
    const md_fnode *f = &z->nodes[i];
    expr *small[4];
    expr **k = f->nkids <= 4 ? small : xreallocarray(NULL, f->nkids, sizeof *k);
    for (uint32_t j = 0; j < f->nkids; j++)
      k[j] = node[z->kids[f->first + j]];
    switch ((expr_op)f->op) {
    case E_NUM: {
      mpq_t q;
      mpq_init(q);
      mpq_set_str(q, z->texts[f->text], 10);
      mpq_canonicalize(q);
      node[i] = expr_num(ctx, q);
      mpq_clear(q);
      break;
    }
    case E_SYM:
      node[i] = expr_sym(ctx, z->texts[f->text]);
      break;
    case E_IDENT:
      node[i] = expr_ident(ctx);
      break;
    case E_ONES:
      node[i] = expr_ones(ctx);
      break;
    case E_CALL:
      node[i] = expr_call(ctx, f->fn, k, f->nkids);
      break;
    default:
      node[i] = expr_make(ctx, (expr_op)f->op, k, f->nkids);
      break;
    }
    if (k != small)
      free(k);
    ok = node[i] != NULL;
  }
  if (ok) {
    md_ctx_pin(ctx); /* the rules' nodes outlive any line (expr.h) */
    for (size_t i = 0; !rewrites_only && i < z->nrules; i++) {
      const md_frule *f = &z->rules[i];
      if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
      }
      r->v[r->n++] = (md_rule){
          .pattern = node[f->pattern],
          .var = node[f->var],
          .adj = node[f->adj],
          .result = node[f->result],
          .guards = thaw_guards(z, node, f->guards, f->nguards),
          .nguards = f->nguards,
          .file = md_intern(ctx, z->texts[f->file], strlen(z->texts[f->file])),
          .line = f->line};
    }
    for (size_t i = 0; i < z->nrw; i++) {
      const md_frw *f = &z->rw[i];
      md_sizeeq *needs =
          xreallocarray(NULL, f->nneeds ? f->nneeds : 1, sizeof *needs);
      for (uint32_t j = 0; j < f->nneeds; j++) {
        const md_fsizeeq *q = &z->needs[f->needs + j];
        needs[j] =
            (md_sizeeq){node[q->a], q->b == MD_FROZEN_NONE ? NULL : node[q->b],
                        q->aside, q->bside};
      }
      if (r->nrw == r->caprw) {
        r->caprw = r->caprw ? 2 * r->caprw : 32;
        r->rw = xreallocarray(r->rw, r->caprw, sizeof *r->rw);
      }
      r->rw[r->nrw++] = (md_rwrule){
          .lhs = node[f->lhs],
          .rhs = node[f->rhs],
          .guards = thaw_guards(z, node, f->guards, f->nguards),
          .nguards = f->nguards,
          .needs = needs,
          .nneeds = f->nneeds,
          .file = md_intern(ctx, z->texts[f->file], strlen(z->texts[f->file])),
          .line = f->line,
          .sub = f->sub};
    }
  }
  free(node);
  return ok;
}

bool md_rules_load_rewrites(md_rules *r, md_ctx *ctx, md_errors *err) {
  if (md_frozen_builtin && thaw(r, ctx, md_frozen_builtin, true))
    return true;
  bool ok = true;
  for (const md_rule_file *f = md_builtin_rules; f->name; f++) {
    md_source src = {f->name, f->text, strlen(f->text), 1};
    ok &= load_lines(r, ctx, &src, err, true, true);
  }
  return ok;
}

/* The built-in files are read first, whenever a user's file comes first:
 * a user's definition (of x, say) must not change how they parse, and
 * the functions they define are there for the user's files. */
bool md_rules_load(md_rules *r, md_ctx *ctx, const md_source *src,
                   md_errors *err) {
  return md_rules_load_builtin(r, ctx, err) && load(r, ctx, src, err, false);
}

bool md_rules_parse_builtin(md_rules *r, md_ctx *ctx, md_errors *err) {
  r->builtin_loaded = true;
  bool ok = true;
  for (const md_rule_file *f = md_builtin_rules; f->name; f++) {
    md_source src = {f->name, f->text, strlen(f->text), 1};
    ok &= load(r, ctx, &src, err, true);
  }
  return ok;
}

bool md_rules_load_builtin(md_rules *r, md_ctx *ctx, md_errors *err) {
  if (r->builtin_loaded)
    return true;
  r->builtin_loaded = true;
  if (md_frozen_builtin && thaw(r, ctx, md_frozen_builtin, false))
    return true;
  return md_rules_parse_builtin(r, ctx, err);
}
