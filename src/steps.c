/* steps.c - the derivation behind a gradient; see steps.h. */
#include "steps.h"

#include "arena.h"
#include "print_latex.h"
#include "normal.h"
#include "rules.h"
#include "share.h"
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

/* The lines of a derivation are written in full until, so written, they
 * would come to 4 times the nodes they have and this many more; past
 * that, the parts they repeat are named (share_lines). */
enum { STEPS_SHARE_FLOOR = 1000 };

/* The nodes all the lines of a derivation may print, written out (as
 * MAX_PRINTED_NODES for a result, driver.c); a part past it is "...". */
enum { STEPS_MAX_PRINTED = 1 << 22 };

/* One term <G, dn> of the differential: n with the contributions to its
 * adjoint so far (G is their sum), each simplified once, when it comes. */
typedef struct term {
  const expr *n;
  expr **v;
  size_t nv, cap;
} term;

/* One line of the derivation: LABEL = BODY  WHY.  The body is kept as
 * expressions until the end, when the parts that lines repeat are named
 * once (md_steps_finish): <G1, dn1> + <G2, dn2> + ... as the pairs
 * G1, n1, G2, n2, ... (INNER), or one expression. */
typedef struct step {
  char *label; /* "f", "df", or NULL on a continuation line */
  expr **e;    /* shown (the adjoint under its shown name); may hold NULL */
  size_t ne;
  bool inner;
  bool whole; /* written out in full: the lines of f itself */
  char *why;  /* the rules used, or NULL */
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
  bool whole_f;        /* f's lines written in full (f does not unfold) */
  md_idmap fsyms;      /* the symbols of f, by uses() */
  bool fsyms_done;
  md_idmap flat;    /* flat_size() by node, plus 1 */
  size_t work;      /* what readable() may still do (STEP_WORK) */
  bool spent;       /* ... nothing more */
  size_t simp_work; /* md_simplifier_work after the last readable() */
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

/* Adds a line of the N expressions V (shown as they will be printed),
 * pairs <G, dn> when INNER. */
static step *add_line(md_steps *s, const char *label, const expr *const *v,
                      size_t n, bool inner, char *why) {
  if (s->nlines == s->caplines) {
    s->caplines = s->caplines ? 2 * s->caplines : 8;
    s->lines = xreallocarray(s->lines, s->caplines, sizeof *s->lines);
  }
  expr **e = xreallocarray(NULL, n ? n : 1, sizeof *e);
  for (size_t i = 0; i < n; i++)
    e[i] = v[i] ? (expr *)shown(s, v[i]) : NULL;
  step *l = &s->lines[s->nlines++];
  *l = (step){.label = label ? dupstr(label) : NULL,
              .e = e,
              .ne = n,
              .inner = inner,
              .why = why};
  return l;
}

static step *add_expr_line(md_steps *s, const char *label, const expr *e,
                           char *why) {
  return add_line(s, label, &e, 1, false, why);
}

/* The longest product or sum under E flattened (A (B C)^T is A C^T B^T,
 * a + (b + c) is a + b + c), up to STEP_FLAT + 1, and in *WORK the
 * operands of the products and sums not seen before: memoised over the
 * derivation, so linear in its DAG.  The steps are simplified while
 * their products and sums have at most STEP_FLAT operands, and all of
 * them together STEP_WORK (the nodes presented before cost nothing
 * again); past that they are shown as they are.
 * Simplified at each step, t_k = t_(k-1)^T A t_(k-1) t_(k-1) ..., some
 * hundred nodes whose products have 7^k factors, took 30 s at k = 8;
 * the result itself is simplified once, within its own limits.  The
 * 1000-layer tanh network's steps need more than 2^16. */
enum { STEP_FLAT = 4096, STEP_WORK = 1 << 17 };

/* Whether E is a node of OP, under transposes and signs: its operands
 * are OP's when the normal form flattens. */
static bool same_op(const expr *e, int op) {
  while (e->op == E_TRANS || e->op == E_NEG)
    e = e->kid[0];
  return e->op == op;
}

static size_t flat_of(md_steps *s, const expr *e, size_t *longest,
                      size_t *work) {
  size_t n = 1;
  if (e->op == E_MUL || e->op == E_ADD) {
    n = 0;
    for (size_t i = 0; i < e->nkids; i++)
      n +=
          same_op(e->kid[i], e->op) ? md_idmap_get(&s->flat, e->kid[i]) - 1 : 1;
  } else if (e->op == E_TRANS || e->op == E_NEG) {
    n = md_idmap_get(&s->flat, e->kid[0]) - 1;
  }
  n = n > STEP_FLAT ? STEP_FLAT + 1 : n;
  if (n > *longest)
    *longest = n;
  if (e->op == E_MUL || e->op == E_ADD)
    *work += n;
  return n;
}

static size_t flat_size(md_steps *s, const expr *e, size_t *work) {
  size_t longest = 0, ntodo = 0, cap = 64;
  const expr **todo = xreallocarray(NULL, cap, sizeof *todo);
  todo[ntodo++] = e;
  /* post-order, without recursion */
  while (ntodo && longest <= STEP_FLAT && *work <= s->work) {
    const expr *x = todo[ntodo - 1];
    uintptr_t v = md_idmap_get(&s->flat, x);
    if (v) {
      longest = v - 1 > longest ? v - 1 : longest;
      ntodo--;
      continue;
    }
    bool ready = true;
    for (size_t i = 0; i < x->nkids; i++)
      if (!md_idmap_get(&s->flat, x->kid[i])) {
        if (ntodo == cap) {
          cap *= 2;
          todo = xreallocarray(todo, cap, sizeof *todo);
        }
        todo[ntodo++] = x->kid[i];
        ready = false;
      }
    if (ready) {
      md_idmap_put(&s->flat, x, flat_of(s, x, &longest, work) + 1);
      ntodo--;
    }
  }
  free(todo);
  return longest;
}

/* E simplified for reading, or E itself when it has no shape (a form the
 * simplifier cannot take) or its products are too long (flat_size). */
static expr *readable(md_steps *s, expr *e) {
  if (!e) /* past a limit: shown as ... (put) */
    return NULL;
  size_t work = 0;
  if (s->spent || flat_size(s, e, &work) > STEP_FLAT || work > s->work) {
    s->spent = true; /* and the steps after it too */
    return e;
  }
  s->work -= work;
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
  /* what the simplifier did counts too: its normal forms flatten sums
   * that E shares (t_k = sigmoid(t_(k-1)) .* t_(k-1) - t_(k-1) ... at
   * k = 39: 3.9 s, its steps' sums of k terms each presented anew) */
  size_t done = md_simplifier_work(s->simp), spent = done - s->simp_work;
  if (spent > s->work)
    s->spent = true;
  else
    s->work -= spent;
  s->simp_work = done;
  return r ? r : e;
}

/* Prints E (shown already); a part past the size limit, which could not
 * be built, as "...". */
static void put(md_steps *s, strbuf *b, const expr *e) {
  if (e)
    s->print(s->arg, b, e);
  else
    sb_puts(b, s->latex ? "\\ldots" : "...");
}

/* d(n): dX for a symbol (ATOM: not a name sharing gave a part), d(...)
 * otherwise; in LaTeX with the brackets of a call, sized by what they
 * hold as print_latex.c sizes them. */
static void differential(md_steps *s, strbuf *b, const expr *n, bool atom) {
  if (s->latex && atom) {
    sb_puts(b, "\\mathrm{d}");
    put(s, b, n);
  } else if (s->latex && n) {
    md_print_latex_call(b, s->ctx, s->shapes, "\\mathrm{d}", n);
  } else {
    sb_puts(b, atom ? "d" : s->latex ? "\\mathrm{d}(" : "d(");
    put(s, b, n);
    if (!atom)
      sb_putc(b, ')');
  }
}

/* <G, dN>: in LaTeX \langle \rangle, \left \right when G or N holds a
 * fraction (as print_latex.c writes an inner product). */
static void inner(md_steps *s, strbuf *b, const expr *G, const expr *n,
                  bool atom) {
  bool tall = s->latex && ((G && md_latex_tall(s->ctx, s->shapes, G)) ||
                           (n && md_latex_tall(s->ctx, s->shapes, n)));
  sb_puts(b, !s->latex ? "<" : tall ? "\\left\\langle " : "\\langle ");
  put(s, b, G);
  sb_puts(b, ", ");
  differential(s, b, n, atom);
  sb_puts(b, !s->latex ? ">" : tall ? " \\right\\rangle" : " \\rangle");
}

/* The body of line L, its expressions V (L's own, or with parts named). */
static void body(md_steps *s, strbuf *b, const step *l, expr *const *v) {
  if (!l->inner) {
    put(s, b, v[0]);
    return;
  }
  for (size_t i = 0; i + 1 < l->ne; i += 2) {
    if (i)
      sb_puts(b, " + ");
    inner(s, b, v[i], v[i + 1], l->e[i + 1] && l->e[i + 1]->op == E_SYM);
  }
}

/* The differential as it stands: <G1, dn1> + <G2, dn2> + ... */
static void frontier(md_steps *s, char *why) {
  expr **v = xreallocarray(NULL, 2 * s->nt + 1, sizeof *v);
  for (size_t i = 0; i < s->nt; i++) {
    term *t = &s->t[i];
    v[2 * i] = expr_add_n(s->ctx, t->v, t->nv);
    v[2 * i + 1] = (expr *)t->n;
  }
  add_line(s, NULL, (const expr *const *)v, 2 * s->nt, true, why);
  free(v);
}

static bool uses(md_steps *s, const expr *sym);

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
    if (v[i] != adj && !uses(s, v[i]))
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
      bool ok = cand != adj && !uses(s, cand);
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
  frontier(s, rules_used(s));
  s->nused = 0;
}

/* Whether f holds the symbol SYM (its symbols are found once: a line
 * asks for each placeholder of its rules). */
static bool uses(md_steps *s, const expr *sym) {
  if (!s->fsyms_done) {
    md_nodes todo = {0};
    md_idmap seen;
    md_idmap_init(&seen);
    md_nodes_push(&todo, s->f);
    while (todo.n) {
      expr *e = todo.v[--todo.n];
      if (md_idmap_get(&seen, e))
        continue;
      md_idmap_put(&seen, e, 1);
      if (e->op == E_SYM)
        md_idmap_put(&s->fsyms, e, 1);
      for (size_t i = 0; i < e->nkids; i++)
        md_nodes_push(&todo, e->kid[i]);
    }
    md_idmap_clear(&seen);
    md_nodes_clear(&todo);
    s->fsyms_done = true;
  }
  return md_idmap_get(&s->fsyms, sym) != 0;
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
    if (!uses(s, sym))
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
    /* vec(F) by vec(X) is read off the pass of <G, F> */
    bool vec = s->f->op == E_CALL && s->f->u.fn == FN_VEC && s->adj;
    if (vec) {
      snprintf(label, sizeof label, "%s",
               s->latex
                   ? "\\langle \\mathbf{G}, \\mathrm{d}\\mathbf{F} \\rangle"
                   : "<G, dF>");
    } else if (n != s->f) {
      /* matrix powers are products to the engine */
      add_expr_line(s, NULL, n,
                    dupstr(s->latex ? "\\text{powers as products}"
                                    : "powers as products"));
    }
    const expr *v[2] = {G, n};
    add_line(s, label, v, 2, true,
             vec ? dupstr(s->latex ? "\\text{with } f = "
                                     "\\operatorname{vec}(\\mathbf{F})"
                                   : "with f = vec(F)")
                 : NULL)
        ->whole = n == s->f && s->whole_f;
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
  md_idmap_init(&s->fsyms);
  md_idmap_init(&s->flat);
  s->work = md_work_budget(STEP_WORK); /* (MATDIFF_SIMPLIFY_WORK) */
  /* f's own lines are written as the user wrote f, unless that unfolds
   * a where-DAG: then they are shared with the rest */
  s->whole_f = !md_unfolds(f);
  add_expr_line(s, "f", f, NULL)->whole = s->whole_f;
  return s;
}

const md_diff_trace *md_steps_trace(md_steps *s) {
  return &s->trace;
}

void md_steps_free(md_steps *s) {
  md_simplifier_free(s->simp);
  md_idmap_clear(&s->fsyms);
  md_idmap_clear(&s->flat);
  if (s->adj)
    expr_subst_clear(&s->show_subst);
  for (size_t i = 0; i < s->nt; i++)
    free(s->t[i].v);
  free(s->t);
  free(s->used);
  for (size_t i = 0; i < s->nlines; i++) {
    free(s->lines[i].label);
    free(s->lines[i].e);
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

/* The parts that the lines after f's own repeat, named once: each such
 * line as one tuple of its expressions, shared together (share.h), so
 * that a part the adjoint pass carries from line to line is written once
 * (a 300-layer network took 193 MB of steps, each line in full).  ROWS[i]
 * is line i's tuple with the names in place (of its expressions that
 * could be built: a part past the size limit is NULL, and stays "..."),
 * or NULL for a line written as it is.  A line whose tuple cannot be
 * built is marked LOST and written as "...": written whole, the lines of
 * a where-DAG are exponential (a line with one part past the limit made
 * all the lines be written whole: 4.8 GB and more than a minute). */
static void share_lines(md_steps *s, expr **rows, bool *lost, md_sharing *w) {
  *w = (md_sharing){NULL};
  for (size_t i = 0; i < s->nlines; i++) {
    rows[i] = NULL;
    lost[i] = false;
  }
  /* only when the lines written in full would be long: a short
   * derivation reads best as it is */
  md_nodes all = {0};
  for (size_t i = 0; i < s->nlines; i++)
    for (size_t k = 0; !s->lines[i].whole && k < s->lines[i].ne; k++)
      if (s->lines[i].e[k])
        md_nodes_push(&all, s->lines[i].e[k]);
  bool longer = md_unfolds_n(all.v, all.n, STEPS_SHARE_FLOOR);
  md_nodes_clear(&all);
  if (!longer)
    return;
  expr **roots = xreallocarray(NULL, s->nlines, sizeof *roots);
  size_t *at = xreallocarray(NULL, s->nlines, sizeof *at), n = 0;
  md_nodes parts = {0};
  for (size_t i = 0; i < s->nlines; i++) {
    step *l = &s->lines[i];
    if (l->whole)
      continue;
    parts.n = 0;
    for (size_t k = 0; k < l->ne; k++)
      if (l->e[k])
        md_nodes_push(&parts, l->e[k]);
    if (parts.n == 0)
      continue; /* "..." each */
    /* (a line of one expression is its own root, never named itself:
     * d/dX f = T1 would say nothing) */
    expr *t = parts.n == 1 ? parts.v[0] : expr_tuple(s->ctx, parts.v, parts.n);
    if (!t) {
      lost[i] = true;
      continue;
    }
    at[n] = i;
    roots[n++] = t;
  }
  md_nodes_clear(&parts);
  expr **bodies = xreallocarray(NULL, n ? n : 1, sizeof *bodies);
  md_share_n(s->ctx, s->shapes, roots, n, bodies, w);
  for (size_t j = 0; j < n; j++)
    rows[at[j]] = bodies[j];
  free(bodies);
  free(roots);
  free(at);
}

/* Line L's expressions as they are written: ROW's (share_lines) in the
 * places of L's own that were built, NULL ("...") in the others, into
 * V (L->ne of them). */
static void row_parts(const step *l, expr *row, bool lost, expr **v) {
  size_t built = 0;
  for (size_t k = 0; k < l->ne; k++)
    built += l->e[k] != NULL;
  for (size_t k = 0, j = 0; k < l->ne; k++) {
    if (lost || !l->e[k])
      v[k] = NULL;
    else if (!row)
      v[k] = l->e[k];
    else
      v[k] = built == 1 ? row : row->kid[j++];
  }
}

/* E when it writes out within *LEFT nodes (taken from them), else NULL
 * ("..."): past the size budget sharing leaves a part it could not
 * rebuild whole (share.c), and written whole a where-DAG's line is
 * exponential (t_k = t_(k-1) - t_(k-1) at k = 28 and a budget of 3 000:
 * 1.3 GB and 13 s; a fuzz finding). */
static expr *within(expr *e, size_t *left) {
  if (!e)
    return NULL;
  size_t n = md_tree_size(e, *left + 1);
  if (n > *left)
    return NULL;
  *left -= n;
  return e;
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
  add_expr_line(s, NULL, result, structure_note(s))->label = sb_take(&b);
  expr **rows = xreallocarray(NULL, s->nlines, sizeof *rows);
  bool *lost = xreallocarray(NULL, s->nlines, sizeof *lost);
  md_sharing w;
  share_lines(s, rows, lost, &w);
  /* each line: its label, its body and the rules */
  char **text = xreallocarray(NULL, s->nlines, sizeof *text);
  size_t left = STEPS_MAX_PRINTED; /* for all the lines (within) */
  for (size_t i = 0; i < s->nlines; i++) {
    step *l = &s->lines[i];
    strbuf t;
    sb_init(&t);
    expr **v = xreallocarray(NULL, l->ne ? l->ne : 1, sizeof *v);
    row_parts(l, rows[i], lost[i], v);
    for (size_t k = 0; k < l->ne; k++)
      v[k] = within(v[k], &left);
    body(s, &t, l, v);
    free(v);
    text[i] = sb_take(&t);
  }
  /* the named parts, once, after the last line */
  /* (in LaTeX a row each, as a line of align* does not break) */
  char *where = NULL;
  if (w.n) {
    strbuf t;
    sb_init(&t);
    sb_puts(&t, s->latex ? "& \\text{where } " : "   where ");
    for (size_t i = 0; i < w.n; i++) {
      if (i)
        sb_puts(&t, s->latex ? ", \\\\\n& \\phantom{\\text{where }} " : ", ");
      put(s, &t, w.names[i]);
      sb_puts(&t, " = ");
      put(s, &t, within(w.values[i], &left));
    }
    where = sb_take(&t);
  }
  md_sharing_clear(&w);
  free(rows);
  free(lost);
  if (s->latex) {
    sb_puts(out, "\\begin{align*}\n");
    for (size_t i = 0; i < s->nlines; i++) {
      step *l = &s->lines[i];
      sb_printf(out, "%s &= %s", l->label ? l->label : "", text[i]);
      if (l->why)
        sb_printf(out, " && %s", l->why);
      sb_puts(out, i + 1 < s->nlines || where ? " \\\\\n" : "\n");
    }
    if (where)
      sb_printf(out, "%s\n", where);
    sb_puts(out, "\\end{align*}\n");
  } else {
    /* text: numbered lines, the = of the differential's lines aligned */
    size_t width = 0;
    for (size_t i = 0; i + 1 < s->nlines; i++)
      if (s->lines[i].label && strlen(s->lines[i].label) > width)
        width = strlen(s->lines[i].label);
    for (size_t i = 0; i < s->nlines; i++) {
      step *l = &s->lines[i];
      const char *label = l->label ? l->label : "";
      size_t lw = strlen(label);
      sb_printf(out, "%zu. ", i + 1);
      if (i + 1 < s->nlines)
        for (; lw < width; lw++)
          sb_putc(out, ' ');
      sb_printf(out, "%s = %s", label, text[i]);
      if (l->why)
        sb_printf(out, "    %s", l->why);
      sb_putc(out, '\n');
    }
    if (where)
      sb_printf(out, "%s\n", where);
  }
  for (size_t i = 0; i < s->nlines; i++)
    free(text[i]);
  free(text);
  free(where);
}
