/* driver.c - parse, infer shapes, differentiate, simplify, print; see
 * driver.h. */
#include "driver.h"

#include "checker.h"
#include "deep.h"
#include "diff.h"
#include "input.h"
#include "parse.h"
#include "print_latex.h"
#include "print_numpy.h"
#include "print_text.h"
#include "prompt.h"
#include "rules.h"
#include "shape.h"
#include "share.h"
#include "simplify.h"
#include "steps.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

typedef enum { RUN_SIMPLIFY, RUN_DIFF } run_mode;

/* A name, or vec(name), as --wrt takes. */
bool md_valid_var(const char *v) {
  const char *p = v;
  if (strncmp(p, "vec(", 4) == 0)
    p += 4;
  if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
    return false;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p >= '0' && *p <= '9') || *p == '_')
    p++;
  return strncmp(v, "vec(", 4) == 0 ? strcmp(p, ")") == 0 : *p == '\0';
}

void md_report_errors(const md_options *o, FILE *err, const md_errors *e) {
  if (!o->on_error) {
    md_errors_print(err, e);
    return;
  }
  for (size_t i = 0; i < e->n; i++)
    o->on_error(o->on_error_arg, &e->v[i]);
}

typedef struct session {
  const md_options *o;
  md_ctx *ctx;
  md_env env;
  md_rules rules;
  md_errors err;
  char **texts; /* rule files read, alive as long as their rules */
  size_t ntexts;
  expr **wrt;   /* --wrt's variables read once for all lines (NULL: per line) */
  bool refuted; /* --verify found a result false */
  unsigned numpy_blocks; /* NumPy functions printed so far */
  /* the simplifier of the expression being run, for its shapes */
  md_simplifier *simp;
  md_shapes *simp_shapes;
  FILE *out, *errf;
} session;

static bool session_init(session *S, const md_options *o, FILE *out,
                         FILE *errf) {
  *S = (session){.o = o, .out = out, .errf = errf};
  S->ctx = md_ctx_new();
  md_env_init(&S->env);
  md_rules_init(&S->rules);
  md_errors_init(&S->err);
  for (size_t i = 0; i < o->ndecls; i++) {
    md_source src = {o->decl_source ? o->decl_source : "<-D>", o->decls[i],
                     strlen(o->decls[i]), 1};
    md_parsed p;
    if (!md_parse(S->ctx, &src, MD_PARSE_DECL, &p, &S->err)) {
      md_report_errors(o, errf, &S->err);
      return false;
    }
    for (size_t j = 0; j < p.n; j++)
      for (size_t k = 0; k < p.stmts[j].ndecls; k++)
        md_env_add(&S->env, &p.stmts[j].decls[k]);
    md_parsed_clear(&p);
  }
  /* a user's rules come first: the first rule that matches is used */
  S->texts = xcalloc(o->nrules + 1, sizeof *S->texts);
  for (size_t i = 0; i < o->nrules; i++) {
    size_t len;
    strbuf what;
    sb_init(&what);
    sb_printf(&what, "rules '%s'", o->rules[i]);
    char *t = md_read_file(o->rules[i], what.s, &len, &S->err);
    sb_clear(&what);
    if (!t) {
      md_report_errors(o, errf, &S->err);
      return false;
    }
    S->texts[S->ntexts++] = t;
    md_source *src = arena_alloc(md_ctx_arena(S->ctx), sizeof *src);
    *src = (md_source){o->rules[i], t, len, 1};
    if (!md_rules_load(&S->rules, S->ctx, src, &S->err)) {
      md_report_errors(o, errf, &S->err);
      return false;
    }
  }
  if (!md_rules_load_builtin(&S->rules, S->ctx, &S->err)) {
    md_report_errors(o, errf, &S->err); /* a broken build: rules/ is checked */
    return false;
  }
  return true;
}

static void session_clear(session *S) {
  md_errors_clear(&S->err);
  md_rules_clear(&S->rules);
  md_env_clear(&S->env);
  md_ctx_free(S->ctx);
  for (size_t i = 0; i < S->ntexts; i++)
    free(S->texts[i]);
  free(S->texts);
  free(S->wrt);
}

/* The distinct symbols of E, up to CAP of them. */
static size_t symbols(const expr *e, const expr **v, size_t n, size_t cap,
                      uint8_t *seen) {
  if (seen[e->id])
    return n;
  seen[e->id] = 1;
  if (e->op == E_SYM && n < cap)
    v[n++] = e;
  for (size_t i = 0; i < e->nkids; i++)
    n = symbols(e->kid[i], v, n, cap, seen);
  return n;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const expr *const *)a)->u.name,
                (*(const expr *const *)b)->u.name);
}

/* S is symbols run together with X: "AX" or "XA" or "AXB" for X, each
 * part a name ("X1" is not X then 1).  The parts spaced out go to B. */
static bool run_together(const char *s, const char *x, strbuf *b) {
  size_t n = strlen(x);
  for (const char *p = strstr(s, x); p; p = strstr(p + 1, x)) {
    /* what comes before starts with a letter, as S does */
    const char *after = p + n;
    bool name_after = *after == '\0' || (*after >= 'a' && *after <= 'z') ||
                      (*after >= 'A' && *after <= 'Z');
    if (p == s && *after == '\0')
      return false;
    if (!name_after)
      continue;
    sb_printf(b, "%.*s%s%s%s%s", (int)(p - s), s, p == s ? "" : " ", x,
              *after ? " " : "", after);
    return true;
  }
  return false;
}

/* SPEC 4: differentiating by a symbol that does not occur gives 0 and a
 * warning naming the symbols that do, with "A X" for a run-together "AX". */
static void warn_absent(session *S, const expr *e, const expr *x) {
  enum { SHOWN = 10 };
  const expr *v[SHOWN + 1];
  if (x->op == E_CALL)
    x = x->kid[0]; /* vec(X) */
  uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
  size_t k = symbols(e, v, 0, SHOWN + 1, seen);
  bool occurs = x->id < md_ctx_nnodes(S->ctx) && seen[x->id];
  free(seen);
  if (occurs)
    return;
  qsort(v, k < SHOWN ? k : SHOWN, sizeof *v, by_name);
  strbuf b;
  sb_init(&b);
  sb_printf(&b,
            "matdiff: warning: %s does not occur in the expression, so "
            "the derivative is 0; ",
            x->u.name);
  if (k == 0)
    sb_puts(&b, "it has no symbol");
  for (size_t i = 0; i < k && i < SHOWN; i++)
    sb_printf(&b, "%s%s",
              i > 0    ? (i + 1 == k ? " and " : ", ")
              : k == 1 ? "its symbol is "
                       : "its symbols are ",
              v[i]->u.name);
  if (k > SHOWN)
    sb_puts(&b, ", ...");
  sb_putc(&b, '\n');
  for (size_t i = 0; i < k && i < SHOWN; i++) {
    strbuf t;
    sb_init(&t);
    bool found = run_together(v[i]->u.name, x->u.name, &t);
    if (found)
      sb_printf(&b, "matdiff: note: %s is one symbol; for a product write %s\n",
                v[i]->u.name, t.s);
    sb_clear(&t);
    if (found)
      break;
  }
  fputs(b.s, S->errf);
  sb_clear(&b);
}

/* "let A : matrix(m, n)" for each declaration in force. */
static void decl_lines(const md_env *env, strbuf *b) {
  for (size_t i = 0; i < env->n; i++) {
    const md_decl *d = &env->v[i];
    sb_printf(b, "let %s : %s", d->name, md_kind_name(d->kind));
    size_t nd = d->kind == K_SCALAR ? 0 : d->kind == K_MATRIX ? 2 : 1;
    for (size_t j = 0; j < nd; j++) {
      if (!d->dim[j].name && d->dim[j].value <= 0)
        break;
      sb_puts(b, j ? ", " : "(");
      if (d->dim[j].name)
        sb_puts(b, d->dim[j].name);
      else
        sb_printf(b, "%ld", d->dim[j].value);
      if (j + 1 == nd)
        sb_putc(b, ')');
    }
    sb_putc(b, '\n');
  }
}

/* --verify: LHS = RESULT must pass matdiff check, which evaluates LHS
 * (derivatives by dual numbers) without this engine.  False: refuted,
 * reported on stderr. */
static bool verified(session *S, expr *lhs, expr *result) {
  strbuf b;
  sb_init(&b);
  md_rules_print_defs(&S->rules, S->ctx, &b); /* user functions */
  decl_lines(&S->env, &b);
  /* both sides share their where bindings: a large result stays linear */
  expr *sides[2] = {lhs, result}, *body[2];
  md_sharing w;
  md_share_n(S->ctx, NULL, sides, 2, body, &w);
  md_print_text(&b, S->ctx, body[0]);
  sb_puts(&b, " = ");
  md_print_text(&b, S->ctx, body[1]);
  for (size_t i = 0; i < w.n; i++) {
    sb_puts(&b, i ? ", " : " where ");
    md_print_text(&b, S->ctx, w.names[i]);
    sb_puts(&b, " = ");
    md_print_text(&b, S->ctx, w.values[i]);
  }
  md_sharing_clear(&w);
  sb_putc(&b, '\n');
  int rc = md_check_text("--verify", b.s, b.len, S->errf);
  sb_clear(&b);
  if (rc != 0)
    S->refuted = true;
  return rc == 0;
}

/* What a result answers, for the printers: --equation writes LHS = R,
 * NumPy writes a function of PARAMS whose result has shape SHAPE. */
typedef struct request {
  expr *lhs; /* d/dX f, hess(f, x), (d/dX f)^T, or f itself */
  expr *f;   /* the expression asked about */
  expr *x;   /* the variable, NULL for simplify */
  md_shape shape;
  const md_source *src; /* where f was read */
} request;

/* E in the format asked (not NumPy, which writes whole functions). */
static void print_expr(session *S, md_shapes *sh, strbuf *b, const expr *e) {
  if (S->o->format == MD_FORMAT_LATEX)
    md_print_latex(b, S->ctx, sh, e);
  else
    md_print_text_opts(b, S->ctx, e, S->o->unicode);
}

/* LHS = E (E alone when LHS is NULL), with E's repeated parts named in
 * `where` bindings (share.h); LaTeX breaks a long one into lines. */
/* The parts of a result printed whole hold at most this many nodes: a
 * DAG whose parts are each used twice (kron(t, t) again and again) has
 * none that sharing names, and its text is exponential. */
enum { MAX_PRINTED_NODES = 1 << 22 };

/* Whether the sharing W (with the extra roots V[0..n)) prints within
 * MAX_PRINTED_NODES nodes. */
static bool printable(const md_sharing *w, expr *const *v, size_t n) {
  size_t left = MAX_PRINTED_NODES;
  for (size_t i = 0; i < n + w->n; i++) {
    const expr *e = i < n ? v[i] : w->values[i - n];
    if (!e)
      continue;
    size_t t = md_tree_size(e, left + 1);
    if (t > left)
      return false;
    left -= t;
  }
  return true;
}

static bool print_shared(session *S, md_shapes *sh, strbuf *b, const expr *lhs,
                         expr *e, const md_source *src) {
  /* --equation's left side is written as the user wrote it, unless that
   * unfolds a DAG: then it shares the result's bindings */
  md_sharing w;
  bool both = lhs && md_unfolds(lhs);
  expr *roots[2] = {e, (expr *)lhs}, *bodies[2] = {e, (expr *)lhs};
  md_share_n(S->ctx, sh, roots, both ? 2 : 1, bodies, &w);
  w.body = bodies[0];
  const expr *left = lhs ? bodies[1] : NULL;
  expr *shown[2] = {w.body, (expr *)left};
  if (!printable(&w, shown, 2)) {
    md_error_at(&S->err, src, MD_NOLOC,
                "the result is too large to print: written out it has more "
                "than %d nodes (parts used twice are not named)",
                (int)MAX_PRINTED_NODES);
    md_sharing_clear(&w);
    return false;
  }
  if (S->o->format == MD_FORMAT_LATEX) {
    md_print_latex_result(b, S->ctx, sh, left, w.body, w.names, w.values, w.n,
                          0);
    md_sharing_clear(&w);
    return true;
  }
  if (left) {
    print_expr(S, sh, b, left);
    sb_puts(b, " = ");
  }
  print_expr(S, sh, b, w.body);
  for (size_t i = 0; i < w.n; i++) {
    sb_puts(b, i ? ", " : " where ");
    print_expr(S, sh, b, w.names[i]);
    sb_puts(b, " = ");
    print_expr(S, sh, b, w.values[i]);
  }
  md_sharing_clear(&w);
  return true;
}

typedef struct steps_printer {
  session *S;
  md_shapes *sh;
} steps_printer;

static void steps_print(void *arg, strbuf *b, const expr *e) {
  steps_printer *p = arg;
  print_expr(p->S, p->sh, b, e);
}

/* How code names variable X: "X", "vecX". */
static void var_name(strbuf *b, const expr *x) {
  const expr *X = x->op == E_SYM ? x : x->kid[0];
  sb_printf(b, "%s%s", x->op == E_SYM ? "" : "vec", X->u.name);
}

/* The name of the generated function: f, df_dX, df_dvecX, d2f_dx2; for
 * several variables df_dX_Y, and f_ before it with --value. */
static char *code_name(const request *q, size_t n, bool hessian, bool value) {
  strbuf b;
  sb_init(&b);
  if (!q[0].x) {
    sb_puts(&b, "f");
    return sb_take(&b);
  }
  sb_printf(&b, "%s%s_d", value ? "f_" : "", hessian ? "d2f" : "df");
  for (size_t i = 0; i < n; i++) {
    if (i)
      sb_putc(&b, '_');
    var_name(&b, q[i].x);
    if (hessian)
      sb_putc(&b, '2');
  }
  return sb_take(&b);
}

/* Octave's name for the output that holds Q's result: dX, dvecX, d2x. */
static char *out_name(const request *q, bool hessian) {
  strbuf b;
  sb_init(&b);
  if (!q->x) {
    sb_puts(&b, "y");
    return sb_take(&b);
  }
  sb_puts(&b, hessian ? "d2" : "d");
  var_name(&b, q->x);
  return sb_take(&b);
}

static bool is_code(md_format f) {
  return f == MD_FORMAT_NUMPY || f == MD_FORMAT_TORCH || f == MD_FORMAT_OCTAVE;
}

static md_code_lang code_lang(md_format f) {
  return f == MD_FORMAT_TORCH    ? MD_CODE_TORCH
         : f == MD_FORMAT_OCTAVE ? MD_CODE_OCTAVE
                                 : MD_CODE_NUMPY;
}

/* The parameters of the function for F: its symbols, and each variable
 * even when F does not use it (its derivative is then a zero of its
 * size).  *NP gets their number; the caller frees the array. */
static const expr **code_params(session *S, const expr *f, const request *q,
                                size_t nq, size_t *np) {
  size_t cap = md_ctx_nnodes(S->ctx) + nq + 1;
  const expr **params = xcalloc(cap, sizeof *params);
  uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
  size_t n = symbols(f, params, 0, cap, seen);
  free(seen);
  for (size_t j = 0; j < nq; j++) {
    if (!q[j].x)
      continue;
    const expr *X = q[j].x->op == E_SYM ? q[j].x : q[j].x->kid[0];
    bool has = false;
    for (size_t i = 0; i < n && !has; i++)
      has = params[i] == X;
    if (!has)
      params[n++] = X;
  }
  *np = n;
  return params;
}

/* simplify --steps: F, then S (F with its derivatives evaluated, R,
 * simplified) when it differs.  The raw R is not shown: the forms rules
 * produce are written for the engine, not for reading. */
static void simplify_steps(session *S, md_shapes *sh, strbuf *b, expr *f,
                           expr *r, expr *s) {
  bool latex = S->o->format == MD_FORMAT_LATEX;
  expr *v[2] = {f, s};
  const char *why[2] = {NULL, r != f ? "derivatives evaluated, simplified"
                                     : "simplified"};
  if (latex)
    sb_puts(b, "\\begin{align*}\n");
  for (size_t i = 0, n = 0; i < 2; i++) {
    if (i && v[i] == v[i - 1])
      continue;
    if (latex) {
      sb_puts(b, n ? " \\\\\n &= " : "f &= ");
      print_expr(S, sh, b, v[i]);
      if (why[i])
        sb_printf(b, " && \\text{%s}", why[i]);
    } else {
      sb_printf(b, "%zu. %s = ", n + 1, n ? " " : "f");
      print_expr(S, sh, b, v[i]);
      if (why[i])
        sb_printf(b, "    %s", why[i]);
      sb_putc(b, '\n');
    }
    n++;
  }
  if (latex)
    sb_puts(b, "\n\\end{align*}\n");
}

/* R simplified; NULL after an error (reported). */
/* Whether E holds the inverse of 0 (0^-1, as a division by a zero
 * matrix simplifies: X ./ (0 X) is X 0^-1), which no input may write. */
static bool divides_by_zero(const expr *e, md_idmap *seen) {
  if (md_idmap_get(seen, e))
    return false;
  md_idmap_put(seen, e, 1);
  if ((e->op == E_INV && expr_is_zero(e->kid[0])) ||
      ((e->op == E_POW || e->op == E_EPOW) && expr_is_zero(e->kid[0]) &&
       expr_num_sgn(e->kid[1]) < 0))
    return true;
  for (size_t i = 0; i < e->nkids; i++)
    if (divides_by_zero(e->kid[i], seen))
      return true;
  return false;
}

static expr *simplified(session *S, md_shapes *sh, const request *q, expr *r) {
  /* the results of one expression (several --wrt) share a simplifier:
   * what they have in common is simplified once */
  if (S->simp_shapes != sh) {
    md_simplifier_free(S->simp);
    S->simp = md_simplifier_new(S->ctx, sh, &S->rules);
    S->simp_shapes = sh;
  }
  expr *s = md_simplifier_run(S->simp, r);
  if (!s || md_shapes_full(sh)) {
    /* R as it is would print forms no output shows (1 ones, 3^T G); with
     * sizes past their limit, nothing decided with them is sure */
    char why[320];
    if (md_shapes_full(sh))
      snprintf(why, sizeof why, "too large (more than %zu sizes)",
               (size_t)MD_MAX_DIMS);
    else
      md_ctx_limit_text(S->ctx, why, sizeof why);
    md_error_at(&S->err, q->src, MD_NOLOC, "cannot simplify the %s: it is %s",
                q->x ? "derivative" : "expression", why);
    return NULL;
  }
  md_idmap seen;
  md_idmap_init(&seen);
  bool zero = divides_by_zero(s, &seen);
  md_idmap_clear(&seen);
  if (zero) {
    /* printed, 0^-1 would not parse back */
    md_error_at(&S->err, q->src, MD_NOLOC,
                "division by zero: the %s simplifies to a multiple of 0^-1",
                q->x ? "derivative" : "expression");
    return NULL;
  }
  return s;
}

/* One function computing the N results S[i] of Q[i] (and the value V of
 * F, if not NULL), into B. */
static bool print_code(session *S, md_shapes *sh, strbuf *b, expr *f, expr *v,
                       md_shape vshape, const request *q, expr *const *s,
                       size_t n) {
  size_t np;
  const expr **params = code_params(S, f, q, n, &np);
  char *name = code_name(q, n, S->o->hessian && q[0].x, v != NULL);
  const expr **body = xcalloc(n, sizeof *body);
  md_shape *shape = xcalloc(n, sizeof *shape);
  char **outs = xcalloc(n, sizeof *outs);
  /* functions defined with --rules: the code computes their bodies */
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) {
    expr *e = md_rules_inline(&S->rules, S->ctx, s[i]);
    ok = e && md_shape_infer(sh, e, NULL, NULL, &S->err, NULL);
    body[i] = e;
    shape[i] = q[i].shape;
    outs[i] = out_name(&q[i], S->o->hessian && q[i].x);
  }
  if (ok && v) {
    v = md_rules_inline(&S->rules, S->ctx, v);
    ok = v && md_shape_infer(sh, v, NULL, NULL, &S->err, NULL);
  }
  if (ok && S->numpy_blocks++)
    sb_putc(b, '\n'); /* a blank line between the functions */
  md_code_fn fn = {.lang = code_lang(S->o->format),
                   .name = name,
                   .params = params,
                   .nparams = np,
                   .value = v,
                   .value_shape = vshape,
                   .results = body,
                   .shapes = shape,
                   .outs = (const char *const *)outs,
                   .nresults = n};
  ok = ok && md_print_code(b, S->ctx, sh, &fn, &S->err);
  for (size_t i = 0; i < n; i++)
    free(outs[i]);
  free(outs);
  free(shape);
  free(body);
  free(name);
  free(params);
  return ok;
}

/* Prints R simplified, after checking LHS = R when --verify asks; with
 * STEPS, as the end of the derivation STEPS recorded. */
static bool print_result(session *S, md_shapes *sh, const request *q, expr *r,
                         md_steps *steps) {
  expr *s = simplified(S, sh, q, r);
  if (!s)
    return false;
  if (S->o->verify && !verified(S, q->lhs, s))
    return true; /* reported; the run goes on, exit status 1 */
  strbuf b;
  sb_init(&b);
  bool ok = true;
  if (is_code(S->o->format)) {
    ok = print_code(S, sh, &b, q->f, NULL, (md_shape){0}, q, &s, 1);
  } else if (steps) {
    md_steps_finish(steps, &b, s);
  } else if (S->o->steps && !q->x && (md_unfolds(q->f) || md_unfolds(s))) {
    md_error_at(&S->err, q->src, MD_NOLOC,
                "--steps writes every step out in full, and this "
                "expression's where bindings unfold into far more than it "
                "holds; leave out --steps");
    ok = false;
  } else if (S->o->steps && !q->x) {
    simplify_steps(S, sh, &b, q->f, r, s);
  } else {
    ok = print_shared(S, sh, &b, S->o->equation ? q->lhs : NULL, s, q->src);
    sb_putc(&b, '\n');
  }
  if (ok)
    fputs(b.s, S->out);
  sb_clear(&b);
  return ok;
}

/* The label of Q's row in a LaTeX block: the left side with --equation,
 * else \frac{\partial f}{\partial X} (f: the expression, named f in the
 * first row with --value), transposed in numerator layout. */
static void latex_label(session *S, md_shapes *sh, strbuf *b, const request *q,
                        const expr *lhs) {
  if (S->o->equation) {
    print_expr(S, sh, b, lhs);
    return;
  }
  bool t = q->lhs->op == E_TRANS;
  if (t)
    sb_puts(b, "\\left( ");
  bool scalar = md_shape_is_scalar(sh, md_shape_of(sh, q->x));
  sb_puts(b, S->o->hessian ? "\\frac{\\partial^2 f}{\\partial "
                           : "\\frac{\\partial f}{\\partial ");
  print_expr(S, sh, b, q->x);
  if (S->o->hessian && scalar) {
    sb_puts(b, "^{2}");
  } else if (S->o->hessian) {
    sb_puts(b, " \\, \\partial ");
    print_expr(S, sh, b, q->x);
    sb_puts(b, "^\\top");
  }
  sb_putc(b, '}');
  if (t)
    sb_puts(b, " \\right)^\\top");
}

/* The N results R[i] of Q[i] together (several --wrt, or --value): code
 * as one function; text one line per result, then one line of the where
 * bindings they use ("where t1 = ..., T2 = ..."), so that each result
 * line with it re-parses; LaTeX one aligned block.  With --value, the
 * value FV of F comes first.  Nothing is printed when --verify refutes
 * a result (reported). */
static bool print_joint(session *S, md_shapes *sh, expr *f, expr *fv,
                        const request *q, expr *const *r, size_t n) {
  size_t k = n + (fv != NULL);
  expr **roots = xcalloc(k, sizeof *roots);
  expr **s = roots + (fv != NULL);
  md_shape vshape = md_shape_of(sh, f);
  bool ok = true, refuted = false;
  if (fv) {
    request qv = {f, f, NULL, vshape, q[0].src};
    ok = (roots[0] = simplified(S, sh, &qv, fv)) != NULL;
  }
  for (size_t i = 0; ok && i < n; i++) {
    ok = (s[i] = simplified(S, sh, &q[i], r[i])) != NULL;
    if (ok && S->o->verify && !verified(S, q[i].lhs, s[i]))
      refuted = true;
  }
  if (!ok || refuted) {
    free(roots);
    return ok;
  }
  strbuf b;
  sb_init(&b);
  if (is_code(S->o->format)) {
    ok = print_code(S, sh, &b, f, fv ? roots[0] : NULL, vshape, q, s, n);
  } else {
    /* the left sides (--equation) as written, unless one unfolds a DAG:
     * then they share the bindings too (print_shared) */
    bool lhs_shared = false;
    for (size_t i = 0; S->o->equation && i < n && !lhs_shared; i++)
      lhs_shared = md_unfolds(q[i].lhs);
    size_t kk = k + (lhs_shared ? n : 0);
    expr **all = xcalloc(kk, sizeof *all);
    for (size_t i = 0; i < k; i++)
      all[i] = roots[i];
    for (size_t i = 0; lhs_shared && i < n; i++)
      all[k + i] = q[i].lhs;
    expr **body = xcalloc(kk, sizeof *body);
    md_sharing w;
    md_share_n(S->ctx, sh, all, kk, body, &w);
    free(all);
    bool latex = S->o->format == MD_FORMAT_LATEX;
    if (latex)
      sb_puts(&b, "\\begin{aligned}\n");
    for (size_t i = 0; i < k; i++) {
      bool value = fv && i == 0;
      const request *qi = value ? NULL : &q[i - (fv != NULL)];
      if (latex) {
        if (value)
          sb_puts(&b, "f");
        else
          latex_label(S, sh, &b, qi,
                      lhs_shared ? body[k + (size_t)(qi - q)] : qi->lhs);
        sb_puts(&b, " &= ");
      } else if (S->o->equation && !value) {
        print_expr(S, sh, &b,
                   lhs_shared ? body[k + (size_t)(qi - q)] : qi->lhs);
        sb_puts(&b, " = ");
      }
      print_expr(S, sh, &b, body[i]);
      sb_puts(&b, latex ? (i + 1 < k || w.n ? " \\\\\n" : "\n") : "\n");
    }
    for (size_t i = 0; i < w.n; i++) {
      if (latex) {
        sb_puts(&b, i ? "" : "\\text{where }\\; ");
        print_expr(S, sh, &b, w.names[i]);
        sb_puts(&b, " &= ");
        print_expr(S, sh, &b, w.values[i]);
        sb_puts(&b, i + 1 < w.n ? " \\\\\n" : "\n");
      } else {
        sb_puts(&b, i ? ", " : "where ");
        print_expr(S, sh, &b, w.names[i]);
        sb_puts(&b, " = ");
        print_expr(S, sh, &b, w.values[i]);
        if (i + 1 == w.n)
          sb_putc(&b, '\n');
      }
    }
    if (latex)
      sb_puts(&b, "\\end{aligned}\n");
    md_sharing_clear(&w);
    free(body);
  }
  if (ok)
    fputs(b.s, S->out);
  sb_clear(&b);
  free(roots);
  return ok;
}

/* The variable of --wrt TEXT: a symbol or vec(symbol). */
static expr *parse_wrt(session *S, const char *text) {
  md_source *src = arena_alloc(md_ctx_arena(S->ctx), sizeof *src);
  *src = (md_source){"<--wrt>", text, strlen(text), 1};
  md_parsed p;
  if (!md_parse(S->ctx, src, MD_PARSE_PROGRAM, &p, &S->err))
    return NULL;
  expr *x = p.n == 1 && p.stmts[0].kind == ST_EXPR ? p.stmts[0].lhs : NULL;
  md_parsed_clear(&p);
  if (!x || !(x->op == E_SYM || (x->op == E_CALL && x->u.fn == FN_VEC &&
                                 x->kid[0]->op == E_SYM))) {
    md_error_at(&S->err, src, (md_loc){0, 0},
                "--wrt takes a symbol or vec(X), such as --wrt X");
    return NULL;
  }
  return x;
}

/* The shape of a derivative of F (shape FS) by X (shape XS): the layout
 * table of SPEC 3, in denominator layout. */
static md_shape result_shape(md_shapes *sh, md_shape fs, md_shape xs,
                             bool hessian) {
  if (hessian)
    return (md_shape){xs.r, xs.r};
  if (md_shape_is_scalar(sh, fs))
    return xs; /* a gradient */
  if (md_shape_is_vector(sh, fs))
    return (md_shape){xs.r, fs.r}; /* a Jacobian, or a 1×k row */
  return fs;                       /* a matrix by a scalar */
}

/* --steps shows the adjoint pass of a first derivative in denominator
 * layout (of <g, f> for a vector or matrix f). */
static bool steps_ok(session *S, const md_source *src, const md_parsed *p,
                     md_shapes *sh, expr *e) {
  const char *why = NULL;
  if (S->o->hessian)
    why = "--steps shows first derivatives; leave out --hessian";
  else if (S->o->layout == MD_LAYOUT_NUMERATOR)
    why = "--steps writes gradients in denominator layout; leave out "
          "--layout numerator";
  if (why)
    md_error_at(&S->err, src, md_parsed_loc(p, e), "%s", why);
  return why == NULL;
}

/* Whether SH ran past its sizes: then whatever the engine said (the
 * messages after the first NERR), it said without sizes, and the error
 * is that limit. */
static bool sizes_past_limit(session *S, md_shapes *sh, const md_source *src,
                             size_t nerr) {
  if (!md_shapes_full(sh))
    return false;
  md_errors_truncate(&S->err, nerr);
  md_error_at(&S->err, src, MD_NOLOC,
              "the derivative is too large (more than %zu sizes)",
              (size_t)MD_MAX_DIMS);
  return true;
}

/* The derivatives of E by the N variables XS together: one reverse pass
 * (md_derivatives), printed by print_joint. */
static bool run_joint(session *S, const md_source *src, md_shapes *sh,
                      md_diff *D, expr *e, expr **xs, size_t n) {
  const md_options *o = S->o;
  request *q = xcalloc(n, sizeof *q);
  expr **r = xcalloc(n, sizeof *r);
  md_shape *xsh = xcalloc(n, sizeof *xsh);
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) {
    ok = md_shape_infer(sh, xs[i], NULL, NULL, &S->err, &xsh[i]);
    if (ok)
      warn_absent(S, e, xs[i]);
  }
  size_t nerr = S->err.n;
  if (ok && o->hessian) {
    for (size_t i = 0; ok && i < n; i++)
      ok = (r[i] = md_hessian(D, e, xs[i])) != NULL;
  } else if (ok) {
    ok = md_derivatives(D, e, xs, n, r);
  }
  if (sizes_past_limit(S, sh, src, nerr))
    ok = false;
  md_shape fsh = md_shape_of(sh, e);
  bool gradient = md_shape_is_scalar(sh, fsh) && !o->hessian;
  for (size_t i = 0; ok && i < n; i++) {
    /* what --verify checks: the derivative in denominator layout */
    expr *lhs =
        o->hessian ? expr_hess(S->ctx, e, xs[i]) : expr_diff(S->ctx, e, xs[i]);
    q[i] = (request){lhs, e, xs[i], result_shape(sh, fsh, xsh[i], o->hessian),
                     src};
    if (o->layout == MD_LAYOUT_NUMERATOR ||
        (o->layout == MD_LAYOUT_MIXED && !gradient)) {
      q[i].lhs = expr_trans(S->ctx, lhs), r[i] = expr_trans(S->ctx, r[i]);
      q[i].shape = (md_shape){q[i].shape.c, q[i].shape.r};
    }
    md_shape_derive(sh, r[i]);
  }
  expr *fv = NULL;
  if (ok && o->value)
    ok = (fv = md_eval_derivatives(D, e)) != NULL;
  ok = ok && print_joint(S, sh, e, fv, q, r, n);
  free(q);
  free(r);
  free(xsh);
  return ok;
}

/* d/dX for each variable asked, or the one symbol of E. */
static bool run_diff(session *S, const md_source *src, const md_parsed *p,
                     md_shapes *sh, md_diff *D, expr *e) {
  const md_options *o = S->o;
  size_t n = o->nwrt;
  expr **xs = xcalloc(n ? n : 1, sizeof *xs);
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++)
    ok = (xs[i] = S->wrt && S->wrt[i] ? S->wrt[i] : parse_wrt(S, o->wrt[i])) !=
         NULL;
  if (ok && n == 0) {
    const expr *v[2];
    uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
    size_t k = symbols(e, v, 0, 2, seen);
    free(seen);
    if (k != 1) {
      md_error_at(&S->err, src, md_parsed_loc(p, e),
                  k ? "give the variable with --wrt: the expression has "
                      "several symbols"
                    : "nothing to differentiate: the expression has no "
                      "symbol");
      ok = false;
    } else {
      xs[0] = (expr *)v[0];
      n = 1;
    }
  }
  if (ok && !o->steps && (n >= 2 || o->value)) {
    ok = run_joint(S, src, sh, D, e, xs, n);
    n = 0; /* done */
  }
  for (size_t i = 0; ok && i < n; i++) {
    md_shape xsh;
    ok = md_shape_infer(sh, xs[i], NULL, NULL, &S->err, &xsh);
    expr *r = NULL;
    md_steps *steps = NULL;
    steps_printer sp = {S, sh};
    if (ok && o->steps) {
      ok = steps_ok(S, src, p, sh, e);
      if (ok) {
        steps = md_steps_new(S->ctx, sh, e, xs[i], steps_print, &sp,
                             o->format == MD_FORMAT_LATEX, o->cookbook);
        D->trace = md_steps_trace(steps);
      }
    }
    if (ok) {
      size_t nerr = S->err.n;
      warn_absent(S, e, xs[i]);
      r = o->hessian ? md_hessian(D, e, xs[i]) : md_derivative(D, e, xs[i]);
      ok = r != NULL;
      if (sizes_past_limit(S, sh, src, nerr))
        ok = false;
    }
    if (ok) {
      md_shape fsh = md_shape_of(sh, e);
      bool gradient = md_shape_is_scalar(sh, fsh) && !o->hessian;
      /* what --verify checks: the derivative in denominator layout */
      expr *lhs = o->hessian ? expr_hess(S->ctx, e, xs[i])
                             : expr_diff(S->ctx, e, xs[i]);
      request q = {lhs, e, xs[i], result_shape(sh, fsh, xsh, o->hessian), src};
      if (o->layout == MD_LAYOUT_NUMERATOR ||
          (o->layout == MD_LAYOUT_MIXED && !gradient)) {
        q.lhs = expr_trans(S->ctx, lhs), r = expr_trans(S->ctx, r);
        q.shape = (md_shape){q.shape.c, q.shape.r};
      }
      md_shape_derive(sh, r);
      ok = print_result(S, sh, &q, r, steps);
    }
    D->trace = NULL;
    if (steps)
      md_steps_free(steps);
  }
  free(xs);
  return ok;
}

/* One expression statement: shapes, derivatives, simplification, output. */
/* ---- kinds from use (SPEC 4) ----
 *
 * An undeclared symbol takes the kind of its name unless its use needs
 * another: in ||X theta - y||^2 theta is a vector, in x - mu mu is one.
 * When E's shapes do not fit with the names' kinds, an undeclared Greek
 * name (a scalar by its name; theta, mu, beta are vectors in every ML
 * text) is tried as a vector, then two of them at once, as long as no
 * undeclared matrix becomes a row or a column by it.
 * The first assignment that fits, in order of first occurrence, is taken,
 * with a note on stderr; if none does, the error is the names' own.
 * Other names keep their kinds: a vector taken as a scalar or a matrix
 * would change what x^2 or a x mean (x^2 is an error that suggests
 * x .^ 2), and upper-case names are matrices of free size already. */

enum { USE_SYMBOLS = 8 };

typedef struct use_try {
  const expr *sym[USE_SYMBOLS];
  size_t n;
} use_try;

static void undeclared(const md_env *env, const expr *e, use_try *u,
                       uint8_t *seen) {
  if (seen[e->id] || u->n == USE_SYMBOLS)
    return;
  seen[e->id] = 1;
  if (e->op == E_SYM && !md_env_find(env, e->u.name) &&
      md_default_kind(e->u.name) == K_SCALAR) {
    u->sym[u->n++] = e;
    return;
  }
  for (size_t i = 0; i < e->nkids; i++)
    undeclared(env, e->kid[i], u, seen);
}

/* The kinds a Greek name may take instead of a scalar's: ALT[0..n).  A
 * matrix is written with a capital (Sigma, Lambda): A + alpha stays the
 * error that says a scalar does not broadcast. */
static size_t other_kinds(md_kind *alt) {
  alt[0] = K_VECTOR;
  return 1;
}

/* Whether an undeclared matrix (by its name) under E became a row or a
 * column in SH: Lambda + alpha, alpha a vector, would make Lambda one. */
static bool matrix_collapsed(md_shapes *sh, const md_env *env, const expr *e,
                             uint8_t *seen) {
  if (seen[e->id])
    return false;
  seen[e->id] = 1;
  if (e->op == E_SYM) {
    if (md_env_find(env, e->u.name) || md_default_kind(e->u.name) != K_MATRIX)
      return false;
    md_shape s = md_shape_of(sh, e);
    return md_dim_is_one(sh, s.r) || md_dim_is_one(sh, s.c);
  }
  for (size_t i = 0; i < e->nkids; i++)
    if (matrix_collapsed(sh, env, e->kid[i], seen))
      return true;
  return false;
}

/* Whether E's shapes fit in ENV (a scratch inference, nothing kept). */
static bool fits(session *S, md_env *env, const md_source *src,
                 const md_parsed *p, expr *e) {
  md_shapes *t = md_shapes_new(S->ctx, env);
  md_errors err;
  md_errors_init(&err);
  bool ok = md_shape_infer(t, e, p, src, &err, NULL);
  if (ok) {
    uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
    ok = !matrix_collapsed(t, env, e, seen);
    free(seen);
  }
  md_errors_clear(&err);
  md_shapes_free(t);
  return ok;
}

static void env_with(md_env *to, const md_env *from, const expr *const *sym,
                     const md_kind *kind, size_t n) {
  md_env_init(to);
  for (size_t i = 0; i < from->n; i++)
    md_env_add(to, &from->v[i]);
  for (size_t i = 0; i < n; i++)
    md_env_add(to, &(md_decl){.name = sym[i]->u.name, .kind = kind[i]});
}

/* S->env with kinds from E's use when the names' kinds do not fit: true
 * and *ENV set (the caller clears it) when some do. */
static bool kinds_from_use(session *S, const md_source *src, const md_parsed *p,
                           expr *e, md_env *env) {
  use_try u = {.n = 0};
  uint8_t *seen = xcalloc(md_ctx_nnodes(S->ctx), 1);
  undeclared(&S->env, e, &u, seen);
  free(seen);
  const expr *sym[2];
  md_kind kind[2], alt[2][2];
  /* one symbol, then two */
  for (size_t width = 1; width <= 2; width++)
    for (size_t i = 0; i < u.n; i++)
      for (size_t j = i + 1; j < (width == 1 ? i + 2 : u.n); j++) {
        size_t na = other_kinds(alt[0]);
        size_t nb = width == 1 ? 1 : other_kinds(alt[1]);
        for (size_t a = 0; a < na; a++)
          for (size_t b = 0; b < nb; b++) {
            sym[0] = u.sym[i], kind[0] = alt[0][a];
            if (width == 2)
              sym[1] = u.sym[j], kind[1] = alt[1][b];
            env_with(env, &S->env, sym, kind, width);
            if (fits(S, env, src, p, e)) {
              for (size_t k = 0; k < width; k++)
                fprintf(S->errf,
                        "matdiff: note: %s is taken as a %s, as its use "
                        "needs (its name makes it a %s); declare it to "
                        "choose: -D '%s : %s'\n",
                        sym[k]->u.name, md_kind_name(kind[k]),
                        md_kind_name(md_default_kind(sym[k]->u.name)),
                        sym[k]->u.name, md_kind_name(kind[k]));
              return true;
            }
            md_env_clear(env);
          }
      }
  return false;
}

static bool run_expr(session *S, run_mode mode, const md_source *src,
                     const md_parsed *p, expr *e) {
  md_shapes *sh = md_shapes_new(S->ctx, &S->env);
  size_t nerr = S->err.n;
  bool ok = md_shape_infer(sh, e, p, src, &S->err, NULL);
  /* kinds from use: the expression is run in an environment that
   * declares them (so --verify's identity declares them too) */
  md_env by_use, saved = S->env;
  bool used = !ok && kinds_from_use(S, src, p, e, &by_use);
  if (used) {
    md_errors_truncate(&S->err, nerr);
    S->env = by_use;
    md_shapes_free(sh);
    sh = md_shapes_new(S->ctx, &S->env);
    ok = md_shape_infer(sh, e, p, src, &S->err, NULL);
  }
  md_diff D = {.ctx = S->ctx,
               .rules = &S->rules,
               .shapes = sh,
               .env = &S->env,
               .symmetric = S->o->cookbook ? MD_SYM_COOKBOOK : MD_SYM_FROBENIUS,
               .src = src,
               .locs = p,
               .err = &S->err};
  if (ok && mode == RUN_DIFF) {
    ok = run_diff(S, src, p, sh, &D, e);
  } else if (ok) {
    expr *r = md_eval_derivatives(&D, e);
    ok = r != NULL;
    if (ok) {
      request q = {e, e, NULL, md_shape_of(sh, e), src};
      ok = print_result(S, sh, &q, r, NULL);
    }
  }
  md_diff_clear(&D);           /* (its simplifier holds SH too) */
  md_simplifier_free(S->simp); /* it holds SH */
  S->simp = NULL;
  S->simp_shapes = NULL;
  md_shapes_free(sh);
  if (used) {
    md_env_clear(&S->env);
    S->env = saved;
  }
  return ok;
}

/* Runs every statement of SRC; declarations stay in force after it. */
static bool run_source(session *S, run_mode mode, const md_source *src,
                       bool *printed) {
  md_parsed p;
  if (!md_parse(S->ctx, src, MD_PARSE_PROGRAM, &p, &S->err))
    return false;
  md_ctx_scale(S->ctx, src->len); /* the line's budget, by its size */
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
      ok = run_expr(S, mode, src, &p, st->lhs);
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

static int run_text(const md_options *o, run_mode mode, const char *text,
                    FILE *out, FILE *err) {
  session S;
  int rc = 0;
  if (!session_init(&S, o, out, err)) {
    session_clear(&S);
    return 2;
  }
  md_source src = {"<expr>", text, strlen(text), 1};
  bool printed = false;
  if (!run_source(&S, mode, &src, &printed)) {
    rc = 2;
  } else if (!printed) {
    md_error_at(&S.err, &src, (md_loc){0, 0},
                "empty input: give an expression, such as 'x^T A x'");
    rc = 2;
  }
  if (rc == 0 && S.refuted)
    rc = 1;
  md_report_errors(o, err, &S.err);
  session_clear(&S);
  return rc;
}

/* Where the lines of a stream come from: md_lines (a filter) or
 * md_prompt (a terminal). */
typedef struct line_source {
  md_lines *lines;
  md_prompt *prompt;
} line_source;

static const md_source *next_line(line_source *in, md_errors *err) {
  return in->prompt ? md_prompt_next(in->prompt, err)
                    : md_lines_next(in->lines, err);
}

/* Answers each line of IN; at a prompt a line in error is shown and
 * forgotten, in a filter it makes the exit status 2. */
static int run_lines(const md_options *o, run_mode mode, line_source *in,
                     FILE *out, FILE *err) {
  session S;
  if (!session_init(&S, o, out, err)) {
    session_clear(&S);
    return 2;
  }
  /* --wrt's variables are read once, before the lines, so that their
   * nodes outlive each line's (a line's parse of "X" was 3% of a filter
   * run's work); one that does not read is read again on each line,
   * which says why */
  if (o->nwrt) {
    S.wrt = xcalloc(o->nwrt, sizeof *S.wrt);
    for (size_t i = 0; i < o->nwrt; i++)
      S.wrt[i] = parse_wrt(&S, o->wrt[i]);
    md_errors_clear(&S.err);
  }
  int rc = 0;
  const md_source *line;
  while ((line = next_line(in, &S.err))) {
    /* a line's nodes go with it: the work for a line does not grow with
     * the lines before it (declarations stay, and hold no nodes) */
    md_ctx_point before = md_ctx_save(S.ctx);
    bool printed = false;
    if (!run_source(&S, mode, line, &printed))
      rc = 2;
    md_report_errors(o, err, &S.err);
    md_errors_clear(&S.err);
    fflush(out);
    md_ctx_restore(S.ctx, &before);
  }
  bool unread = S.err.n > 0; /* the input could not be read to its end */
  md_report_errors(o, err, &S.err);
  bool refuted = S.refuted;
  session_clear(&S);
  if (unread)
    return 2;
  if (in->prompt) /* the session's errors were shown as they came */
    return 0;
  return rc ? rc : refuted ? 1 : 0;
}

static int run_stream(const md_options *o, run_mode mode, FILE *in, FILE *out,
                      FILE *err) {
  md_lines lines;
  md_lines_init(&lines, in, "<stdin>", "standard input");
  line_source src = {.lines = &lines};
  int rc = run_lines(o, mode, &src, out, err);
  md_lines_clear(&lines);
  return rc;
}

static int run_prompt(const md_options *o, run_mode mode, FILE *out,
                      FILE *err) {
  fprintf(err, "matdiff: an expression a line to %s; Ctrl-D ends.\n",
          mode == RUN_DIFF ? "differentiate" : "simplify");
  md_prompt *p =
      md_prompt_new(mode == RUN_DIFF ? "matdiff> " : "simplify> ", stdin, err);
  line_source src = {.prompt = p};
  int rc = run_lines(o, mode, &src, out, err);
  md_prompt_free(p);
  return rc;
}

/* A command, run on a deep stack (deep.h). */
typedef enum { HOW_TEXT, HOW_STREAM, HOW_PROMPT } how;

typedef struct command {
  how how;
  run_mode mode;
  const md_options *o;
  const char *text;
  FILE *in, *out, *err;
} command;

static int run_command(void *arg) {
  command *c = arg;
  switch (c->how) {
  case HOW_TEXT:
    return run_text(c->o, c->mode, c->text, c->out, c->err);
  case HOW_STREAM:
    return run_stream(c->o, c->mode, c->in, c->out, c->err);
  case HOW_PROMPT:
    break;
  }
  return run_prompt(c->o, c->mode, c->out, c->err);
}

static int deep_command(command c) {
  return md_deep(run_command, &c, c.how == HOW_TEXT ? strlen(c.text) : 0);
}

int md_cmd_simplify(const md_options *o, const char *text, FILE *out,
                    FILE *err) {
  return deep_command(
      (command){HOW_TEXT, RUN_SIMPLIFY, o, text, NULL, out, err});
}

int md_cmd_simplify_stream(const md_options *o, FILE *in, FILE *out,
                           FILE *err) {
  return deep_command(
      (command){HOW_STREAM, RUN_SIMPLIFY, o, NULL, in, out, err});
}

int md_cmd_diff(const md_options *o, const char *text, FILE *out, FILE *err) {
  return deep_command((command){HOW_TEXT, RUN_DIFF, o, text, NULL, out, err});
}

int md_cmd_diff_stream(const md_options *o, FILE *in, FILE *out, FILE *err) {
  return deep_command((command){HOW_STREAM, RUN_DIFF, o, NULL, in, out, err});
}

int md_cmd_simplify_prompt(const md_options *o, FILE *out, FILE *err) {
  return deep_command(
      (command){HOW_PROMPT, RUN_SIMPLIFY, o, NULL, NULL, out, err});
}

int md_cmd_diff_prompt(const md_options *o, FILE *out, FILE *err) {
  return deep_command((command){HOW_PROMPT, RUN_DIFF, o, NULL, NULL, out, err});
}
