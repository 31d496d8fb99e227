/* steps.c - the derivation behind a gradient; see steps.h. */
#include "steps.h"

#include "arena.h"
#include "print_latex.h"
#include "rules.h"
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

/* One term <G, dn> of the differential: n with the contributions to its
 * adjoint so far (G is their sum), each simplified once, when it comes. */
typedef struct term {
  const expr *n;
  expr **v;
  size_t nv, cap;
} term;

/* One line of the derivation: LABEL = BODY  WHY. */
typedef struct step {
  char *label; /* "f", "df", or NULL on a continuation line */
  char *body;
  char *why; /* the rules used, or NULL */
} step;

struct md_steps {
  md_ctx *ctx;
  md_shapes *shapes;
  expr *f, *x;
  md_steps_print_fn *print;
  void *arg;
  bool latex;
  bool cookbook; /* --symmetric cookbook */
  /* a vector or matrix f: the pass starts from a symbolic adjoint, shown
   * under a readable name (g, G) rather than the engine's fresh one */
  expr *adj;
  expr_subst show_subst;
  md_diff_trace trace;
  term *t; /* the differential now, in reading order */
  size_t nt, capt;
  size_t at;            /* where the operands of the node being passed on go */
  const md_rule **used; /* the rules of the node being passed on */
  size_t nused, capused;
  bool pending; /* a node was passed on and its line is not written yet */
  step *lines;
  size_t nlines, caplines;
  md_simplifier *simp; /* readable(): made on first use */
};

static char *dupstr(const char *t) {
  size_t n = strlen(t) + 1;
  return memcpy(xmalloc(n), t, n);
}

/* E with the symbolic adjoint under its shown name. */
static const expr *shown(md_steps *s, const expr *e) {
  if (s->adj) {
    expr *t = expr_subst_apply(&s->show_subst, (expr *)e);
    if (t)
      e = t;
  }
  return e;
}

/* Prints E, with the symbolic adjoint under its shown name. */
static void show(md_steps *s, strbuf *b, const expr *e) {
  s->print(s->arg, b, shown(s, e));
}

static char *print_alloc(md_steps *s, const expr *e) {
  strbuf b;
  sb_init(&b);
  show(s, &b, e);
  return sb_take(&b);
}

static void add_line(md_steps *s, const char *label, char *body, char *why) {
  if (s->nlines == s->caplines) {
    s->caplines = s->caplines ? 2 * s->caplines : 8;
    s->lines = xreallocarray(s->lines, s->caplines, sizeof *s->lines);
  }
  s->lines[s->nlines++] = (step){label ? dupstr(label) : NULL, body, why};
}

/* E simplified for reading, or E itself when it has no shape (a form the
 * simplifier cannot take). */
static expr *readable(md_steps *s, expr *e) {
  md_errors err;
  md_errors_init(&err);
  bool ok = md_shape_infer(s->shapes, e, NULL, NULL, &err, NULL);
  md_errors_clear(&err);
  if (!ok)
    return e;
  /* one simplifier for the whole derivation: each step shares most of
   * the one before (a chain of 24 exp took 9 G instructions) */
  if (!s->simp)
    s->simp = md_simplifier_builtin(s->ctx, s->shapes);
  expr *r = md_simplifier_run(s->simp, e);
  return r ? r : e;
}

/* d(n): dX for a symbol, d(...) otherwise; in LaTeX with the brackets
 * of a call, sized by what they hold as print_latex.c sizes them. */
static void differential(md_steps *s, strbuf *b, const expr *n) {
  bool atom = n->op == E_SYM;
  if (s->latex && atom) {
    sb_puts(b, "\\mathrm{d}");
    show(s, b, n);
  } else if (s->latex) {
    md_print_latex_call(b, s->ctx, s->shapes, "\\mathrm{d}", shown(s, n));
  } else {
    sb_puts(b, atom ? "d" : "d(");
    show(s, b, n);
    if (!atom)
      sb_putc(b, ')');
  }
}

/* <G, dN>: in LaTeX \langle \rangle, \left \right when G or N holds a
 * fraction (as print_latex.c writes an inner product). */
static void inner(md_steps *s, strbuf *b, const expr *G, const expr *n) {
  bool tall = s->latex && (md_latex_tall(s->ctx, s->shapes, shown(s, G)) ||
                           md_latex_tall(s->ctx, s->shapes, shown(s, n)));
  sb_puts(b, !s->latex ? "<" : tall ? "\\left\\langle " : "\\langle ");
  show(s, b, G);
  sb_puts(b, ", ");
  differential(s, b, n);
  sb_puts(b, !s->latex ? ">" : tall ? " \\right\\rangle" : " \\rangle");
}

/* The differential as it stands: <G1, dn1> + <G2, dn2> + ... */
static char *frontier(md_steps *s) {
  strbuf b;
  sb_init(&b);
  for (size_t i = 0; i < s->nt; i++) {
    term *t = &s->t[i];
    if (i)
      sb_puts(&b, " + ");
    inner(s, &b, expr_add_n(s->ctx, t->v, t->nv), t->n);
  }
  return sb_take(&b);
}

static bool uses(md_steps *s, const expr *e, const expr *sym);

/* The rule's placeholders renamed, for the text, where they have a name
 * the reader could take for one of theirs: a symbol of f or the shown
 * adjoint.  The new name is the first of P, Q, R, ... (p, q, r, ... for
 * a lower-case one), then P1, Q1, ..., that is none of those and not
 * another placeholder of the rule. */
static void rename_placeholders(md_steps *s, const expr *const *v, size_t n,
                                expr_subst *sub) {
  static const char seq[] = "PQRSUVKLMN";
  const expr *adj = s->adj ? shown(s, s->adj) : NULL;
  const expr *taken[64];
  size_t nt = 0;
  for (size_t i = 0; i < n && nt < 64; i++)
    taken[nt++] = v[i];
  for (size_t i = 0; i < n; i++) {
    if (v[i] != adj && !uses(s, s->f, v[i]))
      continue;
    bool lower = v[i]->u.name[0] >= 'a' && v[i]->u.name[0] <= 'z';
    for (unsigned k = 0;; k++) {
      char name[16];
      char c = seq[k % (sizeof seq - 1)];
      if (lower)
        c = (char)(c - 'A' + 'a');
      if (k < sizeof seq - 1)
        snprintf(name, sizeof name, "%c", c);
      else
        snprintf(name, sizeof name, "%c%u", c, k / (unsigned)(sizeof seq - 1));
      expr *cand = expr_sym(s->ctx, name);
      bool ok = cand != adj && !uses(s, s->f, cand);
      for (size_t j = 0; j < nt && ok; j++)
        ok = taken[j] != cand;
      if (ok) {
        expr_subst_bind(sub, v[i], cand);
        if (nt < 64)
          taken[nt++] = cand;
        break;
      }
    }
  }
}

/* "by RULE, RULE" for the rules just used. */
static char *rules_used(md_steps *s) {
  if (s->nused == 0)
    return NULL;
  strbuf b;
  sb_init(&b);
  sb_puts(&b, s->latex ? "\\text{by } " : "by ");
  for (size_t i = 0; i < s->nused; i++) {
    const md_rule *r = s->used[i];
    if (i)
      sb_puts(&b, s->latex ? ",\\ " : ", ");
    expr *lhs =
        expr_diff(s->ctx, expr_inner(s->ctx, r->adj, r->pattern), r->var);
    if (!lhs) {
      /* past the size budget (the work's expansion took it all): the
       * rule's name cannot be built; the work fails with that error */
      sb_puts(&b, "a rule");
      continue;
    }
    /* the rule's placeholders: every symbol of it */
    const expr *ph[32];
    size_t nph = md_rule_symbols(lhs, ph, 0, 32);
    nph = md_rule_symbols(r->result, ph, nph, 32);
    if (s->latex) {
      /* in LaTeX a rule's variables are bold or not by the kinds its
       * `let` lines give them (let g : scalar), not the expression's */
      md_env env;
      md_env_init(&env);
      for (size_t k = 0; k < r->nguards; k++)
        md_env_add(&env, &(md_decl){.name = r->guards[k].var->u.name,
                                    .kind = r->guards[k].kind,
                                    .loc = MD_NOLOC});
      /* the adjoint has the kind of what it multiplies (g of a scalar) */
      md_shapes *sh = md_shapes_new(s->ctx, &env);
      md_errors err;
      md_errors_init(&err);
      md_shape ps;
      if (md_shape_infer(sh, r->pattern, NULL, NULL, &err, &ps)) {
        md_kind k = md_shape_is_scalar(sh, ps)   ? K_SCALAR
                    : md_shape_is_vector(sh, ps) ? K_VECTOR
                                                 : K_MATRIX;
        md_env_add(
            &env,
            &(md_decl){.name = r->adj->u.name, .kind = k, .loc = MD_NOLOC});
        md_shapes_free(sh);
        sh = md_shapes_new(s->ctx, &env);
      }
      md_errors_clear(&err);
      /* in a style of their own: \mathsf{X} is no symbol of the user's */
      md_latex_style style = {ph, nph};
      md_print_latex_opts(&b, s->ctx, sh, lhs, &style);
      sb_puts(&b, " = ");
      md_print_latex_opts(&b, s->ctx, sh, r->result, &style);
      md_shapes_free(sh);
      md_env_clear(&env);
    } else {
      expr_subst sub;
      expr_subst_init(&sub, s->ctx);
      rename_placeholders(s, ph, nph, &sub);
      expr *l = expr_subst_apply(&sub, lhs),
           *res = expr_subst_apply(&sub, r->result);
      s->print(s->arg, &b, l ? l : lhs);
      sb_puts(&b, " = ");
      s->print(s->arg, &b, res ? res : r->result);
      expr_subst_clear(&sub);
    }
  }
  return sb_take(&b);
}

static void flush(md_steps *s) {
  if (!s->pending)
    return;
  s->pending = false;
  add_line(s, NULL, frontier(s), rules_used(s));
  s->nused = 0;
}

/* Whether E holds the symbol SYM (each node once). */
static bool uses(md_steps *s, const expr *e, const expr *sym) {
  uint8_t *seen = xcalloc(md_ctx_nnodes(s->ctx), 1);
  bool r = expr_contains(e, sym, seen);
  free(seen);
  return r;
}

static term *find(md_steps *s, const expr *n, size_t *at) {
  for (size_t i = 0; i < s->nt; i++)
    if (s->t[i].n == n) {
      if (at)
        *at = i;
      return &s->t[i];
    }
  return NULL;
}

/* g (or G for a matrix adjoint), or g0, g1... when F has that name. */
static expr *adjoint_name(md_steps *s, const expr *G) {
  const char *base = G->u.name[0] == 'G' ? "G" : "g";
  for (unsigned k = 0;; k++) {
    char name[16];
    if (k == 0)
      snprintf(name, sizeof name, "%s", base);
    else
      snprintf(name, sizeof name, "%s%u", base, k - 1);
    expr *sym = expr_sym(s->ctx, name);
    if (!uses(s, s->f, sym))
      return sym;
  }
}

static void on_node(void *arg, const expr *n, expr *G) {
  md_steps *s = arg;
  flush(s);
  size_t i;
  term *t = find(s, n, &i);
  if (t) {
    free(t->v);
    memmove(s->t + i, s->t + i + 1, (s->nt - i - 1) * sizeof *s->t);
    s->nt--;
  } else {
    /* the root: the pass starts from its seed, 1 for a scalar f, else
     * a symbolic adjoint: the derivation is that of <g, f> */
    i = 0;
    char label[160];
    snprintf(label, sizeof label, "%s", s->latex ? "\\mathrm{d}f" : "df");
    if (G->op == E_SYM) {
      s->adj = G;
      expr_subst_init(&s->show_subst, s->ctx);
      expr_subst_bind(&s->show_subst, G, adjoint_name(s, G));
      strbuf l;
      sb_init(&l);
      sb_puts(&l, s->latex ? "\\langle " : "<");
      show(s, &l, G);
      sb_puts(&l, s->latex ? ", \\mathrm{d}f \\rangle" : ", df>");
      snprintf(label, sizeof label, "%s", l.s);
      sb_clear(&l);
    }
    strbuf b;
    sb_init(&b);
    inner(s, &b, G, n);
    /* vec(F) by vec(X) is read off the pass of <G, F> */
    bool vec = s->f->op == E_CALL && s->f->u.fn == FN_VEC && s->adj;
    if (vec) {
      snprintf(label, sizeof label, "%s",
               s->latex
                   ? "\\langle \\mathbf{G}, \\mathrm{d}\\mathbf{F} \\rangle"
                   : "<G, dF>");
    } else if (n != s->f) {
      /* matrix powers are products to the engine */
      add_line(s, NULL, print_alloc(s, n),
               dupstr(s->latex ? "\\text{powers as products}"
                               : "powers as products"));
    }
    add_line(s, label, sb_take(&b),
             vec ? dupstr(s->latex ? "\\text{with } f = "
                                     "\\operatorname{vec}(\\mathbf{F})"
                                   : "with f = vec(F)")
                 : NULL);
  }
  s->at = i;
  s->pending = true;
}

static void on_edge(void *arg, const expr *n, const expr *kid, const md_rule *r,
                    expr *c) {
  md_steps *s = arg;
  (void)n;
  term *t = find(s, kid, NULL);
  if (!t) {
    if (s->nt == s->capt) {
      s->capt = s->capt ? 2 * s->capt : 8;
      s->t = xreallocarray(s->t, s->capt, sizeof *s->t);
    }
    memmove(s->t + s->at + 1, s->t + s->at, (s->nt - s->at) * sizeof *s->t);
    s->nt++;
    t = &s->t[s->at++];
    *t = (term){.n = kid};
  }
  if (t->nv == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 2;
    t->v = xreallocarray(t->v, t->cap, sizeof *t->v);
  }
  t->v[t->nv++] = readable(s, c);
  for (size_t i = 0; i < s->nused; i++)
    if (s->used[i] == r)
      return;
  if (s->nused == s->capused) {
    s->capused = s->capused ? 2 * s->capused : 4;
    s->used = xreallocarray(s->used, s->capused, sizeof *s->used);
  }
  s->used[s->nused++] = r;
}

md_steps *md_steps_new(md_ctx *ctx, md_shapes *shapes, expr *f, expr *x,
                       md_steps_print_fn *print, void *arg, bool latex,
                       bool cookbook) {
  md_steps *s = xcalloc(1, sizeof *s);
  *s = (md_steps){.ctx = ctx,
                  .shapes = shapes,
                  .f = f,
                  .x = x,
                  .print = print,
                  .arg = arg,
                  .latex = latex,
                  .cookbook = cookbook};
  s->trace = (md_diff_trace){s, on_node, on_edge};
  add_line(s, "f", print_alloc(s, f), NULL);
  return s;
}

const md_diff_trace *md_steps_trace(md_steps *s) {
  return &s->trace;
}

void md_steps_free(md_steps *s) {
  md_simplifier_free(s->simp);
  if (s->adj)
    expr_subst_clear(&s->show_subst);
  for (size_t i = 0; i < s->nt; i++)
    free(s->t[i].v);
  free(s->t);
  free(s->used);
  for (size_t i = 0; i < s->nlines; i++) {
    free(s->lines[i].label);
    free(s->lines[i].body);
    free(s->lines[i].why);
  }
  free(s->lines);
  free(s);
}

/* The gradient of a structured variable is not G itself (SPEC 3). */
static char *structure_note(md_steps *s) {
  const expr *X = s->x->op == E_SYM ? s->x : s->x->kid[0];
  md_kind k = md_shape_sym_kind(s->shapes, X);
  const char *t = NULL;
  if (k == K_DIAGONAL)
    t = s->latex ? "\\text{diagonal: } \\mathbf{G} \\odot \\mathbf{I}"
                 : "diagonal: G .* I";
  else if ((k == K_SYMMETRIC || k == K_SPD) && s->cookbook)
    t = s->latex ? "\\text{symmetric (Cookbook): } \\mathbf{G} + "
                   "\\mathbf{G}^\\top - \\mathbf{G} \\odot \\mathbf{I}"
                 : "symmetric (Cookbook): G + G^T - G .* I";
  else if (k == K_SYMMETRIC || k == K_SPD)
    t = s->latex ? "\\text{symmetric: } \\frac{1}{2} (\\mathbf{G} + "
                   "\\mathbf{G}^\\top)"
                 : "symmetric: (G + G^T)/2";
  if (!t && s->adj)
    t = s->latex ? "\\text{read off the form, linear in the adjoint}"
                 : "read off the form, linear in the adjoint";
  return t ? dupstr(t) : NULL;
}

void md_steps_finish(md_steps *s, strbuf *out, const expr *result) {
  flush(s);
  strbuf b;
  sb_init(&b);
  if (s->latex) {
    sb_puts(&b, "\\frac{\\partial f}{\\partial ");
    s->print(s->arg, &b, s->x);
    sb_putc(&b, '}');
  } else {
    sb_puts(&b, "d/d");
    s->print(s->arg, &b, s->x);
    sb_puts(&b, " f");
  }
  add_line(s, NULL, print_alloc(s, result), structure_note(s));
  step *last = &s->lines[s->nlines - 1];
  last->label = sb_take(&b);
  if (s->latex) {
    sb_puts(out, "\\begin{align*}\n");
    for (size_t i = 0; i < s->nlines; i++) {
      step *l = &s->lines[i];
      sb_printf(out, "%s &= %s", l->label ? l->label : "", l->body);
      if (l->why)
        sb_printf(out, " && %s", l->why);
      sb_puts(out, i + 1 < s->nlines ? " \\\\\n" : "\n");
    }
    sb_puts(out, "\\end{align*}\n");
    return;
  }
  /* text: numbered lines, the = of the differential's lines aligned */
  size_t width = 0;
  for (size_t i = 0; i + 1 < s->nlines; i++)
    if (s->lines[i].label && strlen(s->lines[i].label) > width)
      width = strlen(s->lines[i].label);
  for (size_t i = 0; i < s->nlines; i++) {
    step *l = &s->lines[i];
    const char *label = l->label ? l->label : "";
    size_t w = strlen(label);
    sb_printf(out, "%zu. ", i + 1);
    if (i + 1 < s->nlines)
      for (; w < width; w++)
        sb_putc(out, ' ');
    sb_printf(out, "%s = %s", label, l->body);
    if (l->why)
      sb_printf(out, "    %s", l->why);
    sb_putc(out, '\n');
  }
}
