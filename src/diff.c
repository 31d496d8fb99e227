/* diff.c - reverse-mode differentiation driven by rules/; see diff.h. */
#include "diff.h"

#include "print_text.h"
#include "normal.h"
#include "rewrite.h"
#include "simplify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A matrix power A^k is expanded to A A ... A for k up to this. */
enum { MAX_EXPAND_POW = 64 };

typedef struct match {
  md_binding b[MD_MAX_BIND];
  size_t n;
  bool limit; /* a part of the node could not be built (md_ctx_limit) */
} match;

/* Contributions to one node's adjoint, summed when the node is reached. */
typedef struct contribs {
  expr **v;
  size_t n, cap;
} contribs;

typedef struct pass {
  md_diff *D;
  const md_diff_trace *trace; /* D's, taken by the first pass only */
  const expr *target;         /* the one target, or NULL: see is_tgt */
  const uint8_t *is_tgt;      /* by id, for several targets (backprop) */
  size_t ntgt;
  uint8_t *dep; /* by id: 0 unknown, 1 independent, 2 depends on target */
  size_t ndep;
  contribs *adj; /* by id */
  size_t nadj;
  const expr **order; /* nodes that depend on the target, kids first */
  size_t norder, caporder;
  md_idmap adjoints; /* by id: 1 for an adjoint G found, its signs and
                        numbers taken off (unscaled) */
} pass;

static md_shape shape(md_diff *D, expr *e) {
  md_shape_derive(D->shapes, e);
  return md_shape_of(D->shapes, e);
}

static bool is_scalar(md_diff *D, expr *e) {
  return md_shape_is_scalar(D->shapes, shape(D, e));
}

/* How deep a derivative goes through vec(...) around vec(...) around X
 * (through_vec) before it is an error. */
#define MAX_VEC_NEST 32
#define TEXT_OF(n)   #n
#define TEXT(n)      TEXT_OF(n) /* (of a macro's value) */

static bool fail(md_diff *D, const expr *at, const char *fmt, const char *a,
                 const char *b) {
  md_loc loc = D->locs ? md_parsed_loc(D->locs, at) : MD_NOLOC;
  md_error_at(D->err, D->src, loc, fmt, a, b);
  return false;
}

/* A constructor returned NULL: the limit it ran into. */
static bool too_deep(md_diff *D) {
  char why[320];
  md_ctx_limit_text(D->ctx, why, sizeof why);
  md_error_at(D->err, D->src, MD_NOLOC, "the derivative is %s", why);
  return false;
}

/* ---- matching a rule's pattern ---- */

static bool guard_ok(md_diff *D, const md_rule *r, const expr *var, expr *val) {
  for (size_t i = 0; i < r->nguards; i++) {
    if (r->guards[i].var != var)
      continue;
    md_shape sh = shape(D, val);
    switch (r->guards[i].kind) {
    case K_SCALAR:
      return md_shape_is_scalar(D->shapes, sh);
    case K_VECTOR:
      return md_shape_is_vector(D->shapes, sh);
    case K_MATRIX:
      return !md_shape_is_scalar(D->shapes, sh);
    default:
      return val->op == E_SYM &&
             md_shape_sym_kind(D->shapes, val) == r->guards[i].kind;
    }
  }
  return true;
}

static bool bind(md_diff *D, match *m, const md_rule *r, const expr *var,
                 expr *val) {
  if (!val)
    return false;
  for (size_t i = 0; i < m->n; i++)
    if (m->b[i].var == var)
      return m->b[i].val == val;
  if (m->n == MD_MAX_BIND || !guard_ok(D, r, var, val))
    return false;
  m->b[m->n++] = (md_binding){var, val};
  return true;
}

/* How many times the symbol X occurs in the tree of pattern P. */
static size_t occurrences(const expr *p, const expr *x) {
  if (p == x)
    return 1;
  size_t n = 0;
  for (size_t i = 0; i < p->nkids; i++)
    n += occurrences(p->kid[i], x);
  return n;
}

static bool is_nary(const expr *e) {
  return e->op == E_ADD || e->op == E_MUL || e->op == E_HAD || e->op == E_KRON;
}

static bool same_head(const expr *p, const expr *n) {
  return p->op == n->op && (p->op != E_CALL || p->u.fn == n->u.fn);
}

/* A product of more than this many factors, taken apart at more than
 * two of its operands, has its prefixes and suffixes made as chains of
 * nodes, each the one before and a factor (MD_WHOLE_MUL keeps the long
 * ones whole): a rule for A X B takes the product apart at each operand
 * that depends on X, and A and B made flat each time were k^2 factors
 * (the gradient of tr((A1 + X) ... (Ak + X))).  Taken apart at one or
 * two (tr(A1 ... A100 X)), its parts stay flat: a chain of nodes prints
 * as nested brackets. */
#define SLICE_CHAIN      64
#define SLICE_FLAT_CALLS 4 /* two operands, a prefix and a suffix each */

struct md_slices {
  const expr *of;
  size_t n, calls;
  expr **pre, **suf; /* pre[b]: factors 0..b-1; suf[a]: factors a..n-1 */
};

static void slices_free(struct md_slices *s) {
  if (!s)
    return;
  free(s->pre);
  free(s->suf);
  free(s);
}

/* The prefixes and suffixes of the product N, once it has been taken
 * apart more than SLICE_FLAT_CALLS times (else NULL, and *FLAT); NULL
 * past a limit. */
static struct md_slices *slices_of(md_diff *D, expr *n, bool *flat) {
  struct md_slices *s = D->slices;
  *flat = false;
  if (!s || s->of != n) {
    slices_free(s);
    D->slices = s = xcalloc(1, sizeof *s);
    s->of = n;
  }
  if (s->pre)
    return s;
  if (++s->calls <= SLICE_FLAT_CALLS) {
    *flat = true;
    return NULL;
  }
  size_t k = n->nkids;
  s->n = k;
  s->pre = xcalloc(k + 1, sizeof *s->pre);
  s->suf = xcalloc(k + 1, sizeof *s->suf);
  s->pre[1] = n->kid[0];
  for (size_t b = 2; b <= k && s->pre[b - 1]; b++)
    s->pre[b] = expr_mul(D->ctx, s->pre[b - 1], n->kid[b - 1]);
  s->suf[k - 1] = n->kid[k - 1];
  for (size_t a = k - 1; a-- > 0 && s->suf[a + 1];)
    s->suf[a] = expr_mul(D->ctx, n->kid[a], s->suf[a + 1]);
  if (!s->pre[k] || !s->suf[0]) {
    slices_free(s);
    D->slices = NULL;
    return NULL;
  }
  return s;
}

/* The part of an n-ary node from kid A to kid B (exclusive). */
static expr *part(md_diff *D, expr *n, size_t a, size_t b) {
  if (b - a == 1)
    return n->kid[a];
  if (n->op == E_MUL && n->nkids > SLICE_CHAIN && (a == 0 || b == n->nkids) &&
      n->kid[0]->op != E_NUM && n->kid[0]->op != E_NEG) {
    bool flat;
    struct md_slices *s = slices_of(D, n, &flat);
    if (!flat)
      return !s ? NULL : a == 0 ? s->pre[b] : s->suf[a];
  }
  if (n->op == E_MUL)
    return expr_mul_n(D->ctx, n->kid + a, b - a);
  return expr_make(D->ctx, (expr_op)n->op, n->kid + a, b - a);
}

static bool match_at(md_diff *D, match *m, const md_rule *r, const expr *p,
                     expr *n, long slot);

/* The operands of pattern P on one side of X (PA, count NP) against the
 * node's (from A to B): one variable takes them all. */
static bool match_side(md_diff *D, match *m, const md_rule *r, expr *const *pk,
                       size_t np, expr *n, size_t a, size_t b) {
  if (np == 0)
    return a == b;
  if (a == b)
    return false;
  if (np == 1) {
    /* a variable that only soaks up the rest (the A of A + X in a sum of
     * k terms) need not be built: building every rest would cost k^2 */
    if (pk[0]->op == E_SYM && pk[0] != r->var && pk[0] != r->adj &&
        !expr_contains(r->result, pk[0], NULL) &&
        occurrences(r->pattern, pk[0]) == 1) {
      bool guarded = false;
      for (size_t g = 0; g < r->nguards; g++)
        guarded |= r->guards[g].var == pk[0];
      if (!guarded)
        return true;
    }
    expr *rest = part(D, n, a, b);
    if (!rest) {
      m->limit = true;
      return false;
    }
    return match_at(D, m, r, pk[0], rest, -1);
  }
  if (np != b - a)
    return false;
  for (size_t i = 0; i < np; i++)
    if (!match_at(D, m, r, pk[i], n->kid[a + i], -1))
      return false;
  return true;
}

/* Matches pattern P against node N.  SLOT >= 0 (the root) says which
 * operand of N the rule is for: the part of P holding X must sit there. */
static bool match_at(md_diff *D, match *m, const md_rule *r, const expr *p,
                     expr *n, long slot) {
  if (p->op == E_SYM)
    return bind(D, m, r, p, n);
  if (p->op == E_NUM || p->nkids == 0)
    return p == n;
  if (!same_head(p, n))
    return false;
  if (slot >= 0 && is_nary(n)) {
    size_t j = 0;
    while (j < p->nkids && !expr_contains(p->kid[j], r->var, NULL))
      j++;
    size_t i = (size_t)slot;
    return j < p->nkids && match_side(D, m, r, p->kid, j, n, 0, i) &&
           match_side(D, m, r, p->kid + j + 1, p->nkids - j - 1, n, i + 1,
                      n->nkids) &&
           match_at(D, m, r, p->kid[j], n->kid[i], -1);
  }
  if (p->nkids != n->nkids)
    return false;
  if (slot >= 0 && !expr_contains(p->kid[slot], r->var, NULL))
    return false;
  for (size_t i = 0; i < p->nkids; i++)
    if (!match_at(D, m, r, p->kid[i], n->kid[i], -1))
      return false;
  return true;
}

/* The rule's result with its variables replaced by what they matched. */
static expr *instantiate(md_diff *D, const match *m, const md_rule *r, expr *G,
                         expr *t) {
  if (t == r->adj)
    return G;
  if (t->op == E_SYM) {
    for (size_t i = 0; i < m->n; i++)
      if (m->b[i].var == t)
        return m->b[i].val;
    return t;
  }
  if (t->nkids == 0)
    return t;
  expr *small[4];
  expr **k = t->nkids <= 4 ? small : xreallocarray(NULL, t->nkids, sizeof *k);
  for (size_t i = 0; i < t->nkids; i++)
    k[i] = instantiate(D, m, r, G, t->kid[i]);
  expr *e = expr_rebuild(D->ctx, t, k);
  if (k != small)
    free(k);
  return e;
}

/* ---- the pass ---- */

/* The new size of a table by node id that holds HAVE entries and must
 * hold NEED (md_ctx_nnodes, which grows by a few nodes at a time as
 * results are made): at least twice HAVE.  Grown to NEED exactly, each
 * growth copied the whole table: a fuzz finding's derivative grew one
 * table of lin_grow thousands of times, 9 s of memmove under the
 * sanitizers. */
static size_t table_size(size_t have, size_t need) {
  return need > 2 * have ? need : 2 * have;
}

static bool is_target(const pass *P, const expr *e) {
  if (P->target)
    return e == P->target;
  return e->id < P->ntgt && P->is_tgt[e->id];
}

static uint8_t depends(pass *P, const expr *e) {
  if (e->id < P->ndep && P->dep[e->id])
    return P->dep[e->id];
  uint8_t d = is_target(P, e) ? 2 : 1;
  for (size_t i = 0; d == 1 && i < e->nkids; i++)
    if (depends(P, e->kid[i]) == 2)
      d = 2;
  for (size_t i = 0; d == 2 && !is_target(P, e) && i < e->nkids; i++)
    depends(P, e->kid[i]); /* every dependent kid gets its mark */
  if (e->id >= P->ndep) {
    size_t n = table_size(P->ndep, md_ctx_nnodes(P->D->ctx));
    P->dep = xrealloc(P->dep, n);
    memset(P->dep + P->ndep, 0, n - P->ndep);
    P->ndep = n;
  }
  P->dep[e->id] = d;
  return d;
}

/* Post-order over the nodes that depend on the target. */
static void collect(pass *P, const expr *e, uint8_t *seen) {
  if (seen[e->id] || P->dep[e->id] != 2)
    return;
  seen[e->id] = 1;
  if (!is_target(P, e))
    for (size_t i = 0; i < e->nkids; i++)
      collect(P, e->kid[i], seen);
  if (P->norder == P->caporder) {
    P->caporder = P->caporder ? 2 * P->caporder : 64;
    P->order = xreallocarray(P->order, P->caporder, sizeof *P->order);
  }
  P->order[P->norder++] = e;
}

static void contribute(pass *P, const expr *to, expr *c) {
  if (expr_is_zero(c))
    return;
  if (to->id >= P->nadj) {
    size_t n = table_size(P->nadj, md_ctx_nnodes(P->D->ctx));
    P->adj = xreallocarray(P->adj, n, sizeof *P->adj);
    memset(P->adj + P->nadj, 0, (n - P->nadj) * sizeof *P->adj);
    P->nadj = n;
  }
  contribs *a = &P->adj[to->id];
  if (a->n == a->cap) {
    a->cap = a->cap ? 2 * a->cap : 2;
    a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
  }
  a->v[a->n++] = c;
}

/* A contribution taken apart: a number times the operands of a .* over
 * those of another (each side possibly the contribution itself).  G ./ D
 * .* (2 t) is 2 times (G, t) over (D); G / 3 is 1/3 times (G).  A .* in
 * a ./ or a ./ in a .* is taken apart once, no deeper: an adjoint that
 * is a long .* (MD_WHOLE_HAD) is one operand past that. */
typedef struct hterm {
  mpq_t c;
  md_nodes num, den;
} hterm;

/* X without its signs and numbers, which go into C (divided out with
 * DEN); a division by a number only with DIV. */
static expr *unscaled(expr *x, mpq_t c, bool den, bool div) {
  for (;;) {
    if (x->op == E_NEG) {
      mpq_neg(c, c);
      x = x->kid[0];
    } else if (x->op == E_MUL && x->nkids == 2 && x->kid[0]->op == E_NUM &&
               mpq_sgn(x->kid[0]->u.num)) {
      (den ? mpq_div : mpq_mul)(c, c, x->kid[0]->u.num);
      x = x->kid[1];
    } else if (div && x->op == E_DIV && x->kid[1]->op == E_NUM &&
               mpq_sgn(x->kid[1]->u.num)) {
      (den ? mpq_mul : mpq_div)(c, c, x->kid[1]->u.num);
      x = x->kid[0];
    } else {
      return x;
    }
  }
}

/* X, without its signs and numbers, onto T's numerator (or denominator
 * with DEN); LEVELS of .* and ./ left to take apart, a ./ and a division
 * by a number only when DEEP. */
static void hterm_add(hterm *t, expr *x, bool den, int levels, bool deep) {
  x = unscaled(x, t->c, den, deep);
  if (levels > 0 && x->op == E_HAD) {
    for (size_t i = 0; i < x->nkids; i++)
      hterm_add(t, x->kid[i], den, levels - 1, deep);
  } else if (deep && levels > 0 && x->op == E_HDIV) {
    hterm_add(t, x->kid[0], den, levels - 1, deep);
    hterm_add(t, x->kid[1], !den, levels - 1, deep);
  } else {
    md_nodes_push(den ? &t->den : &t->num, x);
  }
}

/* Notes G, without its signs and numbers, as an adjoint: an operand
 * common_factor may take out when deep. */
static void note_adjoint(pass *P, expr *g) {
  mpq_t c;
  mpq_init(c);
  md_idmap_put(&P->adjoints, unscaled(g, c, false, true), 1);
  mpq_clear(c);
}

/* The operands of .* in A taken together, NULL for none. */
static expr *had_of(md_ctx *ctx, expr *const *a, size_t n) {
  return n == 0 ? NULL : n == 1 ? a[0] : expr_make(ctx, E_HAD, a, n);
}

/* The sum of the contributions V[0..N) with operands of .* that all of
 * them share taken out: G .* cos(t) + G is G .* (cos(t) + 1).  So the
 * adjoint of t_k = f(t_(k-1)) + t_(k-1), k times over, is a product of
 * k such factors, not a sum that grows by a term at each step (output
 * quadratic in k).
 *
 * DEEP looks two levels into .* and ./ and through numbers, and takes
 * out every adjoint the terms share (P->adjoints, without numbers),
 * matched with its multiplicity: G ./ D .* (2 t) + G / 3 is
 * G .* (2 t ./ D + 1/3), for t_k = log(1 + t_(k-1) .* t_(k-1)) +
 * t_(k-1) / 3, whose expanded adjoint was Θ(k^2) (16 MB at k = 3 000).
 * Only adjoints: other operands found that deep (x, p) made sums of
 * nested quotients that the normal form no longer brought back to 0
 * (p ./ t .* t, k times over, printed 70 KB at k = 70).  Not DEEP, the
 * first operand of a .* that the terms share, whatever it is, is taken
 * out (the normal form does bring those back).  NULL when nothing is
 * shared (or too deep: the plain sum is tried then, and fails in turn). */
static expr *common_factor(pass *P, expr **v, size_t n, bool deep) {
  md_diff *D = P->D;
  md_ctx *ctx = D->ctx;
  hterm *t = xcalloc(n, sizeof *t);
  for (size_t i = 0; i < n; i++) {
    mpq_init(t[i].c);
    mpq_set_ui(t[i].c, 1, 1);
    hterm_add(&t[i], v[i], false, deep ? 2 : 1, deep);
  }
  /* taken[i][k]: operand k of term i is one of those shared */
  bool **taken = xcalloc(n, sizeof *taken);
  for (size_t i = 0; i < n; i++)
    taken[i] = xcalloc(t[i].num.n ? t[i].num.n : 1, sizeof **taken);
  size_t *at = xcalloc(n, sizeof *at); /* where F is in term i */
  md_nodes shared = {0};
  for (size_t j = 0; j < t[0].num.n; j++) {
    expr *f = t[0].num.v[j];
    if ((deep && !md_idmap_get(&P->adjoints, f)) || (!deep && is_scalar(D, f)))
      continue;
    bool all = true;
    for (size_t i = 1; i < n && all; i++) {
      all = false;
      for (size_t k = 0; k < t[i].num.n && !all; k++)
        if (!taken[i][k] && t[i].num.v[k] == f) {
          all = true;
          at[i] = k;
        }
    }
    if (all) {
      taken[0][j] = true;
      for (size_t i = 1; i < n; i++)
        taken[i][at[i]] = true;
      md_nodes_push(&shared, f);
    }
    if (!deep && shared.n)
      break;
  }
  free(at);
  expr *r = NULL;
  if (shared.n) {
    expr **terms = xreallocarray(NULL, n, sizeof *terms);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
      /* the operands but the shared, over the denominator, times the
       * number */
      md_nodes rest = {0};
      for (size_t k = 0; k < t[i].num.n; k++)
        if (!taken[i][k])
          md_nodes_push(&rest, t[i].num.v[k]);
      expr *x = had_of(ctx, rest.v, rest.n);
      expr *d = had_of(ctx, t[i].den.v, t[i].den.n);
      if (d) /* a number broadcasts: 2 ./ D */
        x = expr_hdiv(ctx, x ? x : expr_int(ctx, 1), d);
      md_nodes_clear(&rest);
      if (!x)
        terms[i] = expr_num(ctx, t[i].c); /* a number broadcasts */
      else if (mpq_cmp_ui(t[i].c, 1, 1) == 0)
        terms[i] = x;
      else if (mpq_cmp_si(t[i].c, -1, 1) == 0)
        terms[i] = expr_neg(ctx, x);
      else
        terms[i] = expr_mul(ctx, expr_num(ctx, t[i].c), x);
      ok = terms[i] != NULL;
    }
    expr *sum = ok ? expr_add_n(ctx, terms, n) : NULL;
    if (sum) {
      /* the sum is a factor of the adjoint, which the contributions to
       * the next node share in turn: G .* (1/5 + 1/2 (1 - tanh(t) .^ 2))
       * passed on as S/5 and S/2 .* (1 - tanh(u) .^ 2) is S .* (...)
       * again, for t_k = tanh(t_(k-1)) / 2 + t_(k-1) / 5 */
      note_adjoint(P, sum);
      md_nodes_push(&shared, sum);
      r = had_of(ctx, shared.v, shared.n);
    }
    if (r && !md_shape_derive(D->shapes, r))
      r = NULL;
    free(terms);
  }
  md_nodes_clear(&shared);
  for (size_t i = 0; i < n; i++) {
    mpq_clear(t[i].c);
    md_nodes_clear(&t[i].num);
    md_nodes_clear(&t[i].den);
    free(taken[i]);
  }
  free(taken);
  free(t);
  return r;
}

/* The sum of E's contributions into *G: NULL when there are none.  False
 * (an error reported) when the sum cannot be built: past MD_MAX_DEPTH a
 * constructor returns NULL too, and reading that as "no contribution"
 * would drop a term and print a wrong answer. */
static bool adjoint(pass *P, const expr *e, expr **G) {
  *G = NULL;
  if (e->id >= P->nadj || P->adj[e->id].n == 0)
    return true;
  contribs *a = &P->adj[e->id];
  if (a->n >= 2 && !(*G = common_factor(P, a->v, a->n, true)))
    *G = common_factor(P, a->v, a->n, false);
  if (!*G)
    *G = expr_add_n(P->D->ctx, a->v, a->n);
  if (*G) /* an operand common_factor may take out, deep */
    note_adjoint(P, *G);
  return *G ? true : too_deep(P->D);
}

static expr *reverse(md_diff *D, expr *root, const expr *target, expr *seed,
                     bool *ok);

/* A symbol no input can name, of E's shape: it stands for E while a form
 * is differentiated with respect to it. */
static expr *fresh_like(md_diff *D, expr *e) {
  md_shape sh = shape(D, e);
  const char *stem = md_shape_is_scalar(D->shapes, sh)   ? "alpha_"
                     : md_shape_is_vector(D->shapes, sh) ? "t"
                                                         : "T";
  char name[32];
  snprintf(name, sizeof name, "%s'%u", stem, ++D->nadjoints);
  expr *t = expr_sym(D->ctx, name);
  expr *in = expr_inner(D->ctx, t, e);
  if (!in)
    return NULL; /* past a limit: T would have no shape */
  md_shape_derive(D->shapes, in);
  return t;
}

/* What rule R (matched as M) passes to X, the operand it is for.  A right
 * side d/dX <G, form> is differentiated: form, with X a fresh symbol T
 * standing for the operand, by its own pass, then T is X again.  So a
 * function defined by its body differentiates through its body, and the
 * derivative of the body is taken where the operand stands, once. */
static expr *rule_result(pass *P, const match *m, const md_rule *r, expr *G,
                         const expr *x, bool *ok) {
  md_diff *D = P->D;
  const expr *t = r->result;
  *ok = true;
  if (!(t->op == E_DIFF && t->kid[1] == r->var && t->kid[0]->op == E_INNER &&
        t->kid[0]->kid[0] == r->adj)) {
    expr *c = instantiate(D, m, r, G, r->result);
    if (!c)
      *ok = too_deep(D);
    return c;
  }
  expr *X = (expr *)x;
  expr *T = fresh_like(D, X);
  if (!T) {
    *ok = too_deep(D);
    return NULL;
  }
  match mt = *m;
  for (size_t i = 0; i < mt.n; i++)
    if (mt.b[i].var == r->var)
      mt.b[i].val = T;
  expr *form = instantiate(D, &mt, r, G, t->kid[0]->kid[1]);
  if (!form || !md_shape_derive(D->shapes, form)) {
    *ok = form ? fail(D, NULL,
                      "internal error: no shape for the form of "
                      "%s:%s",
                      r->file, "a rule's right side")
               : too_deep(D);
    return NULL;
  }
  expr *c = reverse(D, form, T, G, ok);
  if (!*ok)
    return NULL;
  expr_subst sub;
  expr_subst_init(&sub, D->ctx);
  expr_subst_bind(&sub, T, X);
  c = expr_subst_apply(&sub, c);
  expr_subst_clear(&sub);
  if (!c)
    *ok = too_deep(D);
  else
    md_shape_derive(D->shapes, c);
  return c;
}

/* The first rule of V[0..N-1] that matches N at SLOT and is for a node
 * that depends on the target passes G on; false if none is. */
static bool try_rules(pass *P, expr *n, size_t slot, expr *G, const md_rule *v,
                      size_t nv, bool *ok) {
  md_diff *D = P->D;
  for (size_t i = 0; i < nv; i++) {
    const md_rule *r = &v[i];
    if (!same_head(r->pattern, n))
      continue;
    match m = {.n = 0};
    if (!match_at(D, &m, r, r->pattern, n, (long)slot)) {
      if (m.limit) {
        *ok = too_deep(D); /* not "no rule" */
        return true;
      }
      continue;
    }
    const expr *x = NULL;
    for (size_t k = 0; k < m.n; k++)
      if (m.b[k].var == r->var)
        x = m.b[k].val;
    if (!x || P->dep[x->id] != 2)
      continue;
    /* a rule whose X lies below the operand (d/dx <g, vec(x y^T)>) gives
     * the part through X alone: where another of its variables holds the
     * target too (vec(x x^T)), the parts through it would be lost, a
     * wrong answer: such a rule does not apply */
    bool partial = false;
    for (size_t k = 0; x != n->kid[slot] && k < m.n && !partial; k++)
      partial = m.b[k].var != r->var && depends(P, m.b[k].val) == 2;
    if (partial)
      continue;
    expr *c = rule_result(P, &m, r, G, x, ok);
    if (!*ok)
      return true;
    if (P->trace)
      P->trace->edge(P->trace->arg, n, x, r, c);
    contribute(P, x, c);
    return true;
  }
  return false;
}

/* Passes the adjoint G of node N to its operand at SLOT: by the rules of
 * rules/ and --rules, else by a definition of N's function. */
static bool propagate(pass *P, expr *n, size_t slot, expr *G) {
  md_diff *D = P->D;
  const md_rules *R = D->rules;
  bool ok = true;
  bool done = try_rules(P, n, slot, G, R->v, R->n, &ok);
  if (!done && n->op == E_CALL) {
    const md_fndef *d = md_rules_fndef(R, n->u.fn);
    done = d && try_rules(P, n, slot, G, &d->rule, 1, &ok);
  }
  if (done)
    return ok;
  char *t = md_print_text_brief(D->ctx, n, MD_BRIEF_MAX);
  char *o = md_print_text_brief(D->ctx, n->kid[slot], MD_BRIEF_MAX);
  /* a Kronecker product with a matrix on the other side: no rule can be
   * written, say why */
  bool blocks = n->op == E_KRON;
  for (size_t i = 0; blocks && i < n->nkids; i++) {
    md_shape s = shape(D, n->kid[i]);
    blocks = i == slot ||
             (!md_dim_is_one(D->shapes, s.r) && !md_dim_is_one(D->shapes, s.c));
  }
  if (blocks)
    fail(D, n,
         "cannot differentiate %s with respect to %s: with a matrix on the "
         "other side, the adjoint of a Kronecker product sums blocks of G, "
         "which the language has no name for (it can with a vector there)",
         t, o);
  else {
    /* what the simplification rules make of N may have rules: say so
     * (vec(x y^T) is kron(y, x)) */
    expr *w = md_rewrite(D->ctx, D->shapes, R, n);
    if (w && w != n) {
      char *wt = md_print_text_brief(D->ctx, w, MD_BRIEF_MAX);
      strbuf m;
      sb_init(&m);
      sb_printf(&m,
                "no rule to differentiate %s with respect to %s; it equals %s, "
                "which has rules: write that instead",
                t, o, wt);
      fail(D, n, "%s%s", m.s, "");
      sb_clear(&m);
      free(wt);
    } else {
      fail(D, n,
           "no rule to differentiate %s with respect to %s "
           "(add one with --rules)",
           t, o);
    }
  }
  free(t);
  free(o);
  return false;
}

/* A flat product may hold a run of factors that multiplies to 1×1 where
 * the chain would break (M u^T u N, read as M (u^T u) N: md_shape_runs).
 * The product rules read a chain, so such a run becomes one factor: its
 * transpose, which is itself and is not spliced into the product.  NULL
 * past a limit. */
static expr *group_runs(md_diff *D, expr *e) {
  size_t n = e->nkids;
  md_shapes *S = D->shapes;
  md_shape *sh = xreallocarray(NULL, n, sizeof *sh);
  size_t *run = xreallocarray(NULL, n, sizeof *run);
  for (size_t i = 0; i < n; i++)
    sh[i] = shape(D, e->kid[i]);
  if (!md_shape_runs(S, sh, n, run)) { /* (not reached: E was inferred) */
    free(sh);
    free(run);
    return e;
  }
  expr **out = xreallocarray(NULL, n, sizeof *out);
  expr **seg = xreallocarray(NULL, n, sizeof *seg);
  size_t m = 0, k = 0;
  bool grouped = false, ok = true;
  md_shape acc = sh[0];
  seg[k++] = e->kid[0];
  for (size_t i = 1; i < n; i++) {
    if (md_shape_is_scalar(S, acc)) {
      /* the segment so far is 1×1: one factor, so the chain after it is
       * not read into it (x^T A x B) */
      if (k >= 2) {
        out[m++] = expr_trans(D->ctx, expr_mul_n(D->ctx, seg, k));
        grouped = true;
      } else {
        out[m++] = seg[0];
      }
      k = 0;
      seg[k++] = e->kid[i];
      acc = sh[i];
      continue;
    }
    if (!run[i]) {
      if (!md_shape_is_scalar(S, sh[i]))
        acc.c = sh[i].c;
      seg[k++] = e->kid[i];
      continue;
    }
    /* the chain breaks: the run from here scales, with runs of its own
     * inside, grouped in turn */
    size_t j = run[i];
    expr *r = expr_mul_n(D->ctx, e->kid + i, j - i);
    if (r && r->op == E_MUL && md_shape_derive(S, r))
      r = group_runs(D, r);
    if (!r || !(seg[k++] = expr_trans(D->ctx, r))) {
      ok = false; /* past a limit */
      break;
    }
    grouped = true;
    i = j - 1;
  }
  for (size_t i = 0; i < k && ok; i++)
    out[m++] = seg[i];
  expr *r = !ok ? NULL : grouped ? expr_mul_n(D->ctx, out, m) : e;
  free(out);
  free(seg);
  free(sh);
  free(run);
  return r;
}

/* A .* or + whose operands repeat, with each repeat as one operand: x .*
 * x .* x is x .^ 3, x + x is 2 x.  The product rule passes the adjoint
 * to every operand, each time through all the others: so a .* of k
 * copies (t = t .* t, k times over, flattened) costs k^2, and as a power
 * it costs one rule.  E itself when nothing repeats (or, past the depth
 * limit, when the merged node cannot be built). */
static expr *merge_repeats(md_diff *D, expr *e) {
  size_t n = e->nkids;
  md_idmap count; /* kid -> repeats */
  md_idmap_init(&count);
  bool rep = false;
  for (size_t i = 0; i < n; i++) {
    uintptr_t c = md_idmap_get(&count, e->kid[i]);
    rep |= c != 0;
    md_idmap_put(&count, e->kid[i], c + 1);
  }
  expr *r = e;
  if (rep) {
    expr **v = xreallocarray(NULL, n, sizeof *v);
    size_t m = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
      uintptr_t c = md_idmap_get(&count, e->kid[i]);
      if (!c)
        continue; /* placed with its first occurrence */
      md_idmap_put(&count, e->kid[i], 0);
      expr *k = e->kid[i];
      if (c > 1) {
        expr *num = expr_int(D->ctx, (long)c);
        k = e->op == E_HAD ? expr_epow(D->ctx, k, num)
                           : expr_mul(D->ctx, num, k);
      }
      ok = k && md_shape_derive(D->shapes, k);
      v[m++] = k;
    }
    if (ok)
      r = m == 1 ? v[0] : expr_make(D->ctx, (expr_op)e->op, v, m);
    if (!r || !md_shape_derive(D->shapes, r))
      r = e;
    free(v);
  }
  md_idmap_clear(&count);
  return r;
}

/* Expands integer matrix powers into products, the form the rules know.
 * NULL after an error (reported). */
static expr *expand(md_diff *D, expr *e, expr **memo) {
  if (memo[e->id])
    return memo[e->id];
  expr *r = e;
  if (e->nkids) {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    bool changed = false;
    for (size_t i = 0; r && i < e->nkids; i++) {
      if (!(k[i] = expand(D, e->kid[i], memo)))
        r = NULL;
      else
        changed |= k[i] != e->kid[i];
    }
    if (r && changed && !(r = expr_rebuild(D->ctx, e, k)))
      too_deep(D);
    if (k != small)
      free(k);
  }
  if (r && (r->op == E_HAD || r->op == E_ADD))
    r = merge_repeats(D, r);
  if (r && r->op == E_MUL && !(r = group_runs(D, r)))
    too_deep(D); /* past a limit */
  long n;
  if (r && r->op == E_POW && expr_is_int(r->kid[1], &n) && n >= 2 &&
      !is_scalar(D, r->kid[0])) {
    /* powers of powers multiply: bound the product, not each power */
    expr *b = r->kid[0];
    size_t per = b->op == E_MUL ? b->nkids : 1;
    if (n > MAX_EXPAND_POW || per * (size_t)n > MAX_EXPAND_POW) {
      char *t = md_print_text_brief(D->ctx, e, MD_BRIEF_MAX);
      char lim[32];
      snprintf(lim, sizeof lim, "%d", MAX_EXPAND_POW);
      fail(D, e,
           "cannot differentiate %s: a matrix power expands to more than "
           "%s factors",
           t, lim);
      free(t);
      return NULL;
    }
    expr *v[MAX_EXPAND_POW];
    for (long i = 0; i < n; i++)
      v[i] = b;
    r = expr_mul_n(D->ctx, v, (size_t)n);
  }
  if (r)
    md_shape_derive(D->shapes, r);
  return memo[e->id] = r;
}

/* The adjoints of the targets T[0..N) when ROOT's adjoint is SEED, into
 * OUT: sum over every path, one visit per node, however many targets.
 * The targets are symbols (leaves), so a node that depends on one has
 * only parents that depend on it too: each node's adjoint is the same
 * whichever targets the pass is for, and one pass serves them all (the
 * intermediates' adjoints are computed once: backpropagation).  With
 * N == 1 the target is T[0] alone. */
static bool reverse_n(md_diff *D, expr *root, const expr *const *T, size_t n,
                      expr *seed, expr **out) {
  pass P = {.D = D, .trace = D->trace};
  md_idmap_init(&P.adjoints);
  D->trace = NULL; /* nested passes are not the derivation shown */
  uint8_t *is_tgt = NULL;
  if (n == 1) {
    P.target = T[0];
  } else {
    P.ntgt = md_ctx_nnodes(D->ctx);
    is_tgt = xcalloc(P.ntgt ? P.ntgt : 1, 1);
    for (size_t i = 0; i < n; i++)
      is_tgt[T[i]->id] = 1;
    P.is_tgt = is_tgt;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  bool ok = true;
  expr **memo = xcalloc(md_ctx_nnodes(D->ctx), sizeof *memo);
  root = expand(D, root, memo);
  free(memo);
  if (!root) {
    free(is_tgt);
    return false;
  }
  if (depends(&P, root) == 2) {
    uint8_t *seen = xcalloc(md_ctx_nnodes(D->ctx), 1);
    collect(&P, root, seen);
    free(seen);
    contribute(&P, root, seed);
    for (size_t i = P.norder; ok && i-- > 0;) {
      expr *e = (expr *)P.order[i];
      if (is_target(&P, e))
        continue;
      expr *G;
      if (!(ok = adjoint(&P, e, &G)))
        break;
      if (!G)
        continue;
      if (P.trace)
        P.trace->node(P.trace->arg, e, G);
      for (size_t k = 0; ok && k < e->nkids; k++)
        if (P.dep[e->kid[k]->id] == 2)
          ok = propagate(&P, e, k, G);
    }
    for (size_t i = 0; ok && i < n; i++)
      ok = adjoint(&P, T[i], &out[i]);
  }
  for (size_t i = 0; i < P.nadj; i++)
    free(P.adj[i].v);
  free(P.adj);
  md_idmap_clear(&P.adjoints);
  free(P.dep);
  free(P.order);
  free(is_tgt);
  for (size_t i = 0; ok && i < n; i++)
    if (!out[i])
      out[i] = expr_int(D->ctx, 0);
  return ok;
}

/* The adjoint of TARGET when ROOT's adjoint is SEED. */
static expr *reverse(md_diff *D, expr *root, const expr *target, expr *seed,
                     bool *ok) {
  expr *r;
  *ok = reverse_n(D, root, &target, 1, seed, &r);
  return *ok ? r : NULL;
}

/* ---- Jacobians: the matrix M of a form M g linear in the vector g ---- */

/* Memoised by node id, since adjoints share much: each node once. */
typedef struct linear {
  md_diff *D;
  const expr *g;
  uint8_t *has; /* 0 unknown, 1 no, 2 yes */
  expr **memo;
  size_t n;
} linear;

static void lin_grow(linear *L) {
  size_t n = md_ctx_nnodes(L->D->ctx);
  if (n <= L->n)
    return;
  n = table_size(L->n, n);
  L->has = xrealloc(L->has, n);
  memset(L->has + L->n, 0, n - L->n);
  L->memo = xreallocarray(L->memo, n, sizeof *L->memo);
  memset(L->memo + L->n, 0, (n - L->n) * sizeof *L->memo);
  L->n = n;
}

static bool lhas(linear *L, const expr *e) {
  lin_grow(L);
  if (!L->has[e->id]) {
    uint8_t h = e == L->g ? 2 : 1;
    for (size_t i = 0; h == 1 && i < e->nkids; i++)
      if (lhas(L, e->kid[i]))
        h = 2;
    L->has[e->id] = h;
  }
  return L->has[e->id] == 2;
}

static expr *lin(linear *L, expr *e);

/* The one operand of E that holds the adjoint; E's number of operands
 * when none or several do (then E is not linear in it). */
static size_t linear_kid(linear *L, const expr *e) {
  size_t j = e->nkids;
  for (size_t i = 0; i < e->nkids; i++)
    if (lhas(L, e->kid[i])) {
      if (j != e->nkids)
        return e->nkids;
      j = i;
    }
  return j;
}

/* (A B)^T = B^T A^T and its kin, one level: NULL if E is not of a kind
 * whose transpose moves in. */
static expr *push_trans(md_diff *D, expr *e) {
  md_ctx *c = D->ctx;
  switch ((expr_op)e->op) {
  case E_TRANS:
    return e->kid[0];
  case E_NEG:
    return expr_neg(c, expr_trans(c, e->kid[0]));
  case E_DIV:
    return expr_div(c, expr_trans(c, e->kid[0]), e->kid[1]);
  case E_ADD:
  case E_MUL:
  case E_HAD: {
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    for (size_t i = 0; i < e->nkids; i++)
      v[i] = expr_trans(c, e->kid[e->op == E_MUL ? e->nkids - 1 - i : i]);
    expr *r = e->op == E_MUL ? expr_mul_n(c, v, e->nkids)
                             : expr_make(c, (expr_op)e->op, v, e->nkids);
    free(v);
    return r;
  }
  default:
    return NULL;
  }
}

/* P .* O (or P ./ O, with DIVIDE) for P linear in g and O not. */
static expr *lin_scaled(linear *L, expr *p, expr *o, bool divide) {
  md_diff *D = L->D;
  md_ctx *c = D->ctx;
  expr *m = lin(L, p);
  if (!m)
    return NULL;
  if (divide)
    o = expr_hdiv(c, expr_int(c, 1), o);
  if (!o)
    return NULL; /* past a limit (the caller reports it) */
  if (is_scalar(D, p) || is_scalar(D, o))
    return expr_mul(c, o, m); /* a scaling, either way */
  if (!md_shape_is_vector(D->shapes, shape(D, o)))
    return NULL;
  return expr_mul(c, expr_call1(c, FN_DIAG, o), m);
}

/* The product E with the long products in it that hold G spliced in
 * (a long product stays whole as a factor: MD_WHOLE_MUL), so that the
 * readers below find G among its factors.  Only those on the way to G:
 * the others may be a where chain's DAG.  NULL past a limit. */
static expr *splice_linear(linear *L, expr *e) {
  while (e && e->op == E_MUL) {
    size_t j = e->nkids;
    for (size_t i = 0; i < e->nkids && j == e->nkids; i++)
      if (e->kid[i]->op == E_MUL && lhas(L, e->kid[i]))
        j = i;
    if (j == e->nkids)
      break;
    expr *w = e->kid[j];
    size_t n = e->nkids - 1 + w->nkids;
    expr **v = xreallocarray(NULL, n, sizeof *v);
    memcpy(v, e->kid, j * sizeof *v);
    memcpy(v + j, w->kid, w->nkids * sizeof *v);
    memcpy(v + j + w->nkids, e->kid + j + 1, (e->nkids - j - 1) * sizeof *v);
    expr *r = expr_make(L->D->ctx, E_MUL, v, n);
    free(v);
    if (r == e)
      break; /* (cannot be: W was a factor of its own) */
    e = r;
  }
  return e;
}

/* <U g R, M> for a matrix U g R (g a column, R a row) is
 * tr(R^T g^T U^T M) = g^T U^T M R^T, so the row R M^T U.  NULL when P is
 * not of that form (the caller tries P^T against M^T). */
static expr *inner_lin(linear *L, expr *p, expr *M) {
  md_diff *D = L->D;
  const expr *g = L->g;
  if (p->op == E_TRANS) {
    p = push_trans(D, p->kid[0]);
    if (!p)
      return NULL;
  }
  if (p->op != E_MUL)
    return NULL;
  p = splice_linear(L, p);
  if (!p || p->op != E_MUL)
    return NULL;
  size_t j = p->nkids;
  for (size_t k = 0; k < p->nkids; k++)
    if (p->kid[k] == g)
      j = k;
  if (j == p->nkids || j + 1 == p->nkids)
    return NULL;
  for (size_t k = 0; k < p->nkids; k++)
    if (k != j && lhas(L, p->kid[k]))
      return NULL;
  expr *R = expr_mul_n(D->ctx, p->kid + j + 1, p->nkids - j - 1);
  expr *r = expr_mul(D->ctx, R, expr_trans(D->ctx, M));
  if (j)
    r = expr_mul(D->ctx, r, expr_mul_n(D->ctx, p->kid, j));
  return r;
}

static expr *lin_mul(linear *L, expr *e) {
  md_diff *D = L->D;
  e = splice_linear(L, e);
  if (e && !md_shape_derive(D->shapes, e))
    return NULL;
  e = e ? group_runs(D, e) : NULL; /* a 1×1 run inside is one factor */
  if (!e)
    return NULL; /* past a limit (the caller reports it) */
  if (e->op != E_MUL)
    return lin(L, e);
  size_t j = linear_kid(L, e);
  if (j == e->nkids)
    return NULL; /* g twice: not linear */
  expr *f = e->kid[j];
  /* f = h^T a row, and f post a scalar: e = pre (h^T post) = pre post^T h */
  expr *post = f->op == E_TRANS && j + 1 < e->nkids
                   ? expr_mul_n(D->ctx, e->kid + j + 1, e->nkids - j - 1)
                   : NULL;
  md_shape fs = shape(D, f);
  if (f->op == E_TRANS && md_dim_is_one(D->shapes, fs.r) &&
      !md_dim_is_one(D->shapes, fs.c) && post &&
      md_dim_is_one(D->shapes, shape(D, post).c)) {
    expr *pre = j ? expr_mul_n(D->ctx, e->kid, j) : NULL;
    expr *m = lin(L, f->kid[0]);
    if (!m || (j && !pre))
      return NULL; /* (past a limit, the caller reports it) */
    expr *r = m;
    if (post)
      r = expr_mul(D->ctx, expr_trans(D->ctx, post), r);
    if (pre)
      r = expr_mul(D->ctx, pre, r);
    return r;
  }
  /* otherwise the factors around f are a matrix before it and scalars
   * after it, or f is a scalar: e = (the others, in order) lin(f) g */
  bool after_scalar = true;
  for (size_t i = j + 1; i < e->nkids; i++)
    after_scalar &= is_scalar(D, e->kid[i]);
  if (!after_scalar && !is_scalar(D, f))
    return NULL;
  expr *m = lin(L, f);
  if (!m)
    return NULL;
  expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < e->nkids; i++)
    if (i != j)
      v[k++] = e->kid[i];
  v[k++] = m;
  expr *r = expr_mul_n(D->ctx, v, k);
  free(v);
  return r;
}

static expr *lin_node(linear *L, expr *e) {
  md_diff *D = L->D;
  const expr *g = L->g;
  if (e == g)
    return expr_ident(D->ctx);
  if (!lhas(L, e))
    return NULL;
  switch ((expr_op)e->op) {
  case E_ADD: {
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    size_t k = 0;
    expr *r = e;
    for (size_t i = 0; r && i < e->nkids; i++)
      if (lhas(L, e->kid[i]) && !(v[k++] = lin(L, e->kid[i])))
        r = NULL;
    if (r)
      r = expr_add_n(D->ctx, v, k);
    free(v);
    return r;
  }
  case E_NEG: {
    expr *m = lin(L, e->kid[0]);
    return m ? expr_neg(D->ctx, m) : NULL;
  }
  case E_MUL:
    return lin_mul(L, e);
  case E_DIV: {
    if (lhas(L, e->kid[1]))
      return NULL;
    expr *m = lin(L, e->kid[0]);
    return m ? expr_div(D->ctx, m, e->kid[1]) : NULL;
  }
  case E_HAD: {
    /* P .* v .* w = diag(v .* w) P for a column P linear in g; a scalar P
     * scales: P v */
    size_t j = linear_kid(L, e);
    if (j == e->nkids)
      return NULL; /* g twice: not linear */
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < e->nkids; i++)
      if (i != j)
        v[k++] = e->kid[i];
    expr *o = k == 1 ? v[0] : expr_make(D->ctx, E_HAD, v, k);
    free(v);
    return lin_scaled(L, e->kid[j], o, false);
  }
  case E_HDIV:
    if (lhas(L, e->kid[1]))
      return NULL;
    return lin_scaled(L, e->kid[0], e->kid[1], true);
  case E_TRANS:
    /* a scalar: t^T = t; else the transpose moves in, toward g */
    if (is_scalar(D, e))
      return lin(L, e->kid[0]);
    return push_trans(D, e->kid[0]) ? lin(L, push_trans(D, e->kid[0])) : NULL;
  case E_INNER: {
    size_t i = lhas(L, e->kid[0]) ? 0 : 1;
    if (lhas(L, e->kid[1 - i]))
      return NULL;
    /* <P, M> for a matrix P linear in g: see inner_lin */
    expr *p = e->kid[i], *M = e->kid[1 - i];
    if (!md_shape_is_vector(D->shapes, shape(D, p)) &&
        !md_shape_is_scalar(D->shapes, shape(D, p))) {
      expr *r = inner_lin(L, p, M);
      expr *pt = r ? NULL : push_trans(D, p);
      return r ? r : pt ? inner_lin(L, pt, expr_trans(D->ctx, M)) : NULL;
    }
    expr *m = lin(L, e->kid[i]);
    return m ? expr_mul(D->ctx, expr_trans(D->ctx, e->kid[1 - i]), m) : NULL;
  }
  default:
    return NULL;
  }
}

static expr *lin(linear *L, expr *e) {
  lin_grow(L);
  if (L->memo[e->id])
    return L->memo[e->id];
  expr *r = lin_node(L, e);
  lin_grow(L);
  L->memo[e->id] = r;
  return r;
}

/* M such that E = M g, or NULL when E is not of a form we can read. */
static expr *jacobian_of(md_diff *D, expr *e, const expr *g) {
  linear L = {D, g, NULL, NULL, 0};
  expr *r = lin(&L, e);
  free(L.has);
  free(L.memo);
  return r;
}

/* ---- a matrix F by a scalar: the M of a form <G, M> ----
 *
 * The derivative of <G, F> by a scalar is a scalar linear in the matrix
 * adjoint G; F's element-wise derivative is the M with that scalar equal
 * to <G, M>.  The rules give it as inner products, sums and scalings of
 * forms linear in G (<G .* E, A>, <-L G R, A>, ...), which move_in turns
 * around: <L P R, M> = <P, L^T M R^T>, <P .* E, M> = <P, M .* E>,
 * <P^T, M> = <P, M^T>. */

static expr *inner_coeff(linear *L, expr *e);

/* M' with <P, M> = <G, M'>, for P linear in G; NULL if not readable. */
static expr *move_in(linear *L, expr *p, expr *M) {
  md_diff *D = L->D;
  md_ctx *c = D->ctx;
  if (p == L->g)
    return M;
  if (!lhas(L, p))
    return NULL;
  if (is_scalar(D, p)) { /* <p, m> = p m for scalars */
    expr *r = inner_coeff(L, p);
    return r ? expr_mul(c, M, r) : NULL;
  }
  switch ((expr_op)p->op) {
  case E_NEG: {
    expr *r = move_in(L, p->kid[0], M);
    return r ? expr_neg(c, r) : NULL;
  }
  case E_ADD: {
    expr *sum = NULL;
    for (size_t i = 0; i < p->nkids; i++) {
      if (!lhas(L, p->kid[i]))
        continue;
      expr *r = move_in(L, p->kid[i], M);
      if (!r)
        return NULL;
      sum = sum ? expr_add(c, sum, r) : r;
    }
    return sum;
  }
  case E_TRANS:
    return move_in(L, p->kid[0], expr_trans(c, M));
  case E_DIV:
    if (lhas(L, p->kid[1]))
      return NULL;
    return move_in(L, p->kid[0], expr_div(c, M, p->kid[1]));
  case E_HAD:
  case E_HDIV: {
    size_t j = linear_kid(L, p);
    if (j == p->nkids || (p->op == E_HDIV && j > 0))
      return NULL; /* G twice, or under a quotient */
    expr *m = M;
    for (size_t i = 0; i < p->nkids; i++)
      if (i != j)
        m = p->op == E_HAD ? expr_had(c, m, p->kid[i])
                           : expr_hdiv(c, m, p->kid[i]);
    return move_in(L, p->kid[j], m);
  }
  case E_MUL: {
    /* scalars scale; the matrices before and after the factor with G
     * move over: <L P R, M> = <P, L^T M R^T> */
    size_t j = linear_kid(L, p);
    if (j == p->nkids)
      return NULL; /* G twice, or none: not linear */
    if (is_scalar(D, p->kid[j])) {
      /* <s(G) Q, M> = s(G) <Q, M> */
      expr **v = xreallocarray(NULL, p->nkids, sizeof *v);
      size_t k = 0;
      for (size_t i = 0; i < p->nkids; i++)
        if (i != j)
          v[k++] = p->kid[i];
      expr *q = expr_mul_n(c, v, k);
      free(v);
      return move_in(L, p->kid[j], expr_inner(c, q, M));
    }
    /* L^T M R^T with L = l1 .. lj and R = r1 .. rk: lj^T .. l1^T M
     * rk^T .. r1^T, so the nearest factors go on last */
    expr *m = M;
    for (size_t i = 0; i < j; i++)
      m = is_scalar(D, p->kid[i]) ? expr_mul(c, p->kid[i], m)
                                  : expr_mul(c, expr_trans(c, p->kid[i]), m);
    for (size_t i = p->nkids; i-- > j + 1;)
      m = is_scalar(D, p->kid[i]) ? expr_mul(c, p->kid[i], m)
                                  : expr_mul(c, m, expr_trans(c, p->kid[i]));
    return move_in(L, p->kid[j], m);
  }
  default:
    return NULL;
  }
}

/* M with E = <G, M>, for a scalar E linear in G; NULL if not readable. */
static expr *inner_coeff(linear *L, expr *e) {
  md_diff *D = L->D;
  md_ctx *c = D->ctx;
  if (!lhas(L, e))
    return NULL;
  switch ((expr_op)e->op) {
  case E_INNER: {
    size_t i = lhas(L, e->kid[0]) ? 0 : 1;
    if (lhas(L, e->kid[1 - i]))
      return NULL;
    return move_in(L, e->kid[i], e->kid[1 - i]);
  }
  case E_ADD: {
    expr *sum = NULL;
    for (size_t i = 0; i < e->nkids; i++) {
      if (!lhas(L, e->kid[i]))
        continue;
      expr *r = inner_coeff(L, e->kid[i]);
      if (!r)
        return NULL;
      sum = sum ? expr_add(c, sum, r) : r;
    }
    return sum;
  }
  case E_NEG: {
    expr *r = inner_coeff(L, e->kid[0]);
    return r ? expr_neg(c, r) : NULL;
  }
  case E_TRANS: /* a scalar is its transpose */
    return inner_coeff(L, e->kid[0]);
  case E_DIV: {
    if (lhas(L, e->kid[1]))
      return NULL;
    expr *r = inner_coeff(L, e->kid[0]);
    return r ? expr_div(c, r, e->kid[1]) : NULL;
  }
  case E_MUL: {
    /* a scalar: one factor holds G; around it scalars scale, or a row
     * L and a column R read it as L P R = <P, L^T R^T> */
    size_t j = linear_kid(L, e);
    if (j == e->nkids)
      return NULL; /* G twice, or none: not linear */
    expr *f = e->kid[j];
    if (is_scalar(D, f)) {
      expr *r = inner_coeff(L, f);
      if (!r)
        return NULL;
      for (size_t i = 0; i < e->nkids; i++)
        if (i != j)
          r = expr_mul(c, e->kid[i], r);
      return r;
    }
    expr *row = j ? expr_mul_n(c, e->kid, j) : NULL;
    expr *col = j + 1 < e->nkids
                    ? expr_mul_n(c, e->kid + j + 1, e->nkids - j - 1)
                    : NULL;
    if (!row || !col)
      return NULL;
    return move_in(L, f, expr_mul(c, expr_trans(c, row), expr_trans(c, col)));
  }
  case E_HAD:
  case E_HDIV: {
    /* scalars here: .* scales, ./ divides (G in the numerator only) */
    size_t j = linear_kid(L, e);
    if (j == e->nkids || (e->op == E_HDIV && j > 0))
      return NULL; /* G twice, or under a quotient */
    expr *r = inner_coeff(L, e->kid[j]);
    for (size_t i = 0; r && i < e->nkids; i++)
      if (i != j)
        r = e->op == E_HAD ? expr_mul(c, e->kid[i], r)
                           : expr_div(c, r, e->kid[i]);
    return r;
  }
  case E_CALL:
    if (e->u.fn == FN_TR) /* tr(P) = <P, I> */
      return move_in(L, e->kid[0], expr_ident(c));
    return NULL;
  default:
    return NULL;
  }
}

/* ---- d/dvec(X) vec(F): the matrix J of vec(R) = J vec(G) ----
 *
 * The gradient R of <G, F> with respect to X, for a symbolic adjoint G of
 * F's shape, is linear in G, and vec(R) = J vec(G) where J is the
 * derivative of vec(F) by vec(X) in denominator layout.  The forms the
 * rules produce are read with vec(L P M) = kron(M^T, L) vec(P),
 * vec(P .* B) = diag(vec(B)) vec(P) and <M, P> = vec(M)^T vec(P).  A G^T
 * would need the commutation matrix K (vec(G^T) = K vec(G)), which the
 * language has no name for: the reader says so (needs_k) and gives up. */

typedef struct vlinear {
  linear L;       /* which nodes hold G, and J by node id */
  bool needs_k;   /* gave up at a G^T */
  bool ambiguous; /* gave up at a kron of identities of unfixed sizes */
} vlinear;

static expr *vlin(vlinear *V, expr *e);

/* vec(E): E itself when it is a column, E^T when it is a row. */
static expr *vec_of(md_diff *D, expr *e) {
  if (!e)
    return NULL; /* past a limit */
  md_shape sh = shape(D, e);
  if (md_dim_is_one(D->shapes, sh.c))
    return e;
  if (md_dim_is_one(D->shapes, sh.r))
    return expr_trans(D->ctx, e);
  return expr_call1(D->ctx, FN_VEC, e);
}

/* vec(P) = vec(P^T) for a column or a row P. */
static bool is_vector_like(md_diff *D, expr *e) {
  md_shape sh = shape(D, e);
  return md_dim_is_one(D->shapes, sh.r) || md_dim_is_one(D->shapes, sh.c);
}

/* A factor of a Kronecker product whose size nothing in it fixes: I, or
 * a Kronecker product holding such a factor (b^T ⊗ I).  In a sum or a
 * product the other operands size an identity (A X + 9 I). */
static bool unsized(const expr *e) {
  switch ((expr_op)e->op) {
  case E_IDENT:
    return true;
  case E_TRANS:
  case E_NEG:
  case E_INV:
    return unsized(e->kid[0]);
  case E_KRON:
    for (size_t i = 0; i < e->nkids; i++)
      if (unsized(e->kid[i]))
        return true;
    return false;
  default:
    return false;
  }
}

/* kron(A, B) with neighbouring identities merged (I ⊗ I = I): sizes are
 * inferred, and a product of two unknown sizes could not be told apart. */
static expr *kron_merged(md_diff *D, expr *a, expr *b) {
  expr *k = expr_kron(D->ctx, a, b);
  if (!k || k->op != E_KRON)
    return k; /* (NULL past a limit) */
  expr **v = xreallocarray(NULL, k->nkids, sizeof *v);
  size_t n = 0;
  for (size_t i = 0; i < k->nkids; i++)
    if (!(n && v[n - 1]->op == E_IDENT && k->kid[i]->op == E_IDENT))
      v[n++] = k->kid[i];
  expr *r = n == 1 ? v[0] : expr_make(D->ctx, E_KRON, v, n);
  free(v);
  return r;
}

/* J scaled by the scalar factors of a product, C[0..NC-1]. */
static expr *vscale(md_diff *D, expr *const *c, size_t nc, expr *J) {
  if (!nc)
    return J;
  return expr_mul(D->ctx, expr_mul_n(D->ctx, c, nc), J);
}

/* vec(e) for E = a product with one factor P holding G. */
static expr *vlin_mul(vlinear *V, expr *e) {
  md_diff *D = V->L.D;
  md_ctx *c = D->ctx;
  e = splice_linear(&V->L, e);
  if (e && !md_shape_derive(D->shapes, e))
    return NULL;
  e = e ? group_runs(D, e) : NULL; /* a 1×1 run inside is one factor */
  if (!e)
    return NULL; /* past a limit (the caller reports it) */
  if (e->op != E_MUL)
    return vlin(V, e);
  size_t n = e->nkids, j = linear_kid(&V->L, e);
  if (j == n)
    return NULL; /* G twice, or none: not linear */
  expr *J = vlin(V, e->kid[j]);
  if (!J)
    return NULL;
  expr **others = xreallocarray(NULL, n, sizeof *others);
  size_t no = 0;
  for (size_t i = 0; i < n; i++)
    if (i != j)
      others[no++] = e->kid[i];
  expr *r = NULL;
  if (is_scalar(D, e->kid[j])) {
    /* s(G) M = vec(M) s(G), J being the row of s */
    expr *M = expr_mul_n(c, others, no);
    r = expr_mul(c, vec_of(D, M), J);
  } else {
    /* c L P M: the scalars move out, the chain around P is L and M */
    expr **sc = xreallocarray(NULL, n, sizeof *sc);
    expr **left = xreallocarray(NULL, n, sizeof *left);
    expr **right = xreallocarray(NULL, n, sizeof *right);
    size_t ns = 0, nl = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
      if (i == j)
        continue;
      if (is_scalar(D, e->kid[i]))
        sc[ns++] = e->kid[i];
      else if (i < j)
        left[nl++] = e->kid[i];
      else
        right[nr++] = e->kid[i];
    }
    expr *Lm = nl ? expr_mul_n(c, left, nl) : NULL;
    expr *Mt = nr ? expr_trans(c, expr_mul_n(c, right, nr)) : NULL;
    /* past a limit a side is NULL, not absent (an identity in its
     * place would be a wrong Jacobian): none, and the caller reports
     * the limit */
    bool lost = (nl && !Lm) || (nr && !Mt);
    /* the identity of a missing side is 1×1 when P is a column (no M)
     * or a row (no L): vec(L p) = L vec(p), vec(q M) = M^T vec(q) */
    md_shape ps = shape(D, e->kid[j]);
    expr *K = NULL;
    if (!Mt && md_dim_is_one(D->shapes, ps.c))
      K = Lm;
    else if (!Lm && md_dim_is_one(D->shapes, ps.r))
      K = Mt;
    else if (Lm || Mt)
      lost |= !(
          K = kron_merged(D, Mt ? Mt : expr_ident(c), Lm ? Lm : expr_ident(c)));
    if (lost)
      J = NULL;
    if (K && K->op == E_KRON) {
      /* I ⊗ b^T ⊗ I: two identities whose sizes only their product
       * fixes, so the matrix could be read two ways */
      size_t nid = 0;
      for (size_t i = 0; i < K->nkids; i++)
        nid += unsized(K->kid[i]);
      V->ambiguous |= nid >= 2;
      if (nid >= 2)
        K = NULL, J = NULL;
    }
    if (J)
      r = vscale(D, sc, ns, K ? expr_mul(c, K, J) : J);
    free(sc);
    free(left);
    free(right);
  }
  free(others);
  return r;
}

/* vec(P .* O) or vec(P ./ O) for P holding G and O not. */
static expr *vlin_had(vlinear *V, expr *p, expr *o, bool divide) {
  md_diff *D = V->L.D;
  md_ctx *c = D->ctx;
  expr *J = vlin(V, p);
  if (!J)
    return NULL;
  if (divide)
    o = expr_hdiv(c, expr_int(c, 1), o);
  if (!o)
    return NULL; /* past a limit (the caller reports it) */
  if (is_scalar(D, o))
    return expr_mul(c, o, J);
  if (is_scalar(D, p))
    return expr_mul(c, vec_of(D, o), J); /* a scaling of O */
  return expr_mul(c, expr_call1(c, FN_DIAG, vec_of(D, o)), J);
}

static expr *vlin_node(vlinear *V, expr *e) {
  md_diff *D = V->L.D;
  md_ctx *c = D->ctx;
  if (e == V->L.g)
    return expr_ident(c);
  if (!lhas(&V->L, e))
    return NULL; /* a term without G: not linear in it */
  switch ((expr_op)e->op) {
  case E_ADD: {
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    expr *r = e;
    for (size_t i = 0; r && i < e->nkids; i++)
      if (!(v[i] = vlin(V, e->kid[i])))
        r = NULL;
    if (r)
      r = expr_add_n(c, v, e->nkids);
    free(v);
    return r;
  }
  case E_NEG: {
    expr *J = vlin(V, e->kid[0]);
    return J ? expr_neg(c, J) : NULL;
  }
  case E_DIV: {
    if (lhas(&V->L, e->kid[1]))
      return NULL;
    expr *J = vlin(V, e->kid[0]);
    return J ? expr_div(c, J, e->kid[1]) : NULL;
  }
  case E_MUL:
    return vlin_mul(V, e);
  case E_HAD: {
    size_t j = linear_kid(&V->L, e);
    if (j == e->nkids)
      return NULL; /* G twice, or none: not linear */
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < e->nkids; i++)
      if (i != j)
        v[k++] = e->kid[i];
    expr *o = k == 1 ? v[0] : expr_make(c, E_HAD, v, k);
    free(v);
    return vlin_had(V, e->kid[j], o, false);
  }
  case E_HDIV:
    if (lhas(&V->L, e->kid[1]))
      return NULL;
    return vlin_had(V, e->kid[0], e->kid[1], true);
  case E_TRANS: {
    expr *k = e->kid[0];
    if (is_vector_like(D, k))
      return vlin(V, k); /* vec(v^T) = vec(v) */
    expr *p = k == V->L.g ? NULL : push_trans(D, k);
    if (!p) {
      V->needs_k = k == V->L.g;
      return NULL;
    }
    md_shape_derive(D->shapes, p);
    return vlin(V, p);
  }
  case E_INNER: {
    size_t i = lhas(&V->L, e->kid[0]) ? 0 : 1;
    if (lhas(&V->L, e->kid[1 - i]))
      return NULL;
    expr *J = vlin(V, e->kid[i]);
    if (!J)
      return NULL;
    return expr_mul(c, expr_trans(c, vec_of(D, e->kid[1 - i])), J);
  }
  case E_CALL:
    if (e->u.fn == FN_VEC)
      return vlin(V, e->kid[0]);
    if (e->u.fn == FN_SUM) {
      expr *J = vlin(V, e->kid[0]);
      return J ? expr_mul(c, expr_trans(c, expr_ones(c)), J) : NULL;
    }
    return NULL;
  default:
    return NULL;
  }
}

static expr *vlin(vlinear *V, expr *e) {
  lin_grow(&V->L);
  if (V->L.memo[e->id])
    return V->L.memo[e->id];
  expr *r = vlin_node(V, e);
  if (r)
    md_shape_derive(V->L.D->shapes, r);
  lin_grow(&V->L);
  V->L.memo[e->id] = r;
  return r;
}

/* F with vec(F) = E, moving vec out of sums, negations and scalings of
 * same-shaped vec(...) terms (vec(A) + 2 vec(B) = vec(A + 2 B)); NULL if
 * E is not such a form. */
/* The matrix whose vec is K vec(F), for K a Kronecker product of two
 * matrices, its transpose or a sum of these: (P ⊗ Q) vec(F) =
 * vec(Q F P^T); NULL for any other K. */
static expr *kron_applied(md_diff *D, expr *k, expr *F) {
  md_ctx *c = D->ctx;
  if (k->op == E_KRON && k->nkids == 2)
    return expr_mul_n(c, (expr *[]){k->kid[1], F, expr_trans(c, k->kid[0])}, 3);
  if (k->op == E_TRANS && k->kid[0]->op == E_KRON && k->kid[0]->nkids == 2) {
    expr *p = k->kid[0]->kid[0], *q = k->kid[0]->kid[1];
    return expr_mul_n(c, (expr *[]){expr_trans(c, q), F, p}, 3);
  }
  if (k->op == E_ADD) {
    expr **v = xreallocarray(NULL, k->nkids, sizeof *v);
    expr *r = k;
    for (size_t i = 0; r && i < k->nkids; i++)
      if (!(v[i] = kron_applied(D, k->kid[i], F)))
        r = NULL;
    if (r)
      r = expr_add_n(c, v, k->nkids);
    free(v);
    return r;
  }
  return NULL;
}

static expr *unvec_form(md_diff *D, expr *e) {
  md_ctx *c = D->ctx;
  switch ((expr_op)e->op) {
  case E_ONES: /* the all-ones vector of m n entries, as a matrix */
    return expr_mul(c, expr_ones(c), expr_trans(c, expr_ones(c)));
  case E_CALL:
    return e->u.fn == FN_VEC ? e->kid[0] : NULL;
  case E_TRANS: { /* (v^T)^T; (u^T K)^T = K^T u */
    expr *a = e->kid[0];
    if (a->op == E_TRANS)
      return unvec_form(D, a->kid[0]);
    if (a->op != E_MUL)
      return NULL;
    expr **v = xreallocarray(NULL, a->nkids, sizeof *v);
    for (size_t i = 0; i < a->nkids; i++)
      v[a->nkids - 1 - i] = expr_trans(c, a->kid[i]);
    expr *p = expr_mul_n(c, v, a->nkids);
    free(v);
    return md_shape_derive(D->shapes, p) ? unvec_form(D, p) : NULL;
  }
  case E_KRON: {
    /* vec(c b^T) = kron(b, c) for vectors b and c */
    if (e->nkids != 2)
      return NULL;
    md_shape b = shape(D, e->kid[0]), a = shape(D, e->kid[1]);
    if (!md_dim_is_one(D->shapes, b.c) || !md_dim_is_one(D->shapes, a.c))
      return NULL;
    return expr_mul(c, e->kid[1], expr_trans(c, e->kid[0]));
  }
  case E_NEG: {
    expr *F = unvec_form(D, e->kid[0]);
    return F ? expr_neg(c, F) : NULL;
  }
  case E_DIV: {
    expr *F = unvec_form(D, e->kid[0]);
    return F ? expr_div(c, F, e->kid[1]) : NULL;
  }
  case E_MUL: {
    /* scalars and one vec(F), or kron(P, Q) ... vec(F):
     * (P ⊗ Q) vec(F) = vec(Q F P^T) */
    size_t j = e->nkids, first = e->nkids;
    for (size_t i = 0; i < e->nkids; i++)
      if (!is_scalar(D, e->kid[i])) {
        if (first == e->nkids)
          first = i;
        j = i;
      }
    expr *F = j < e->nkids ? unvec_form(D, e->kid[j]) : NULL;
    size_t lead = 0; /* kid[0..lead) is a 1×1 run: a scalar */
    for (size_t i = j; F && i-- > first;) {
      if (is_scalar(D, e->kid[i]))
        continue;
      expr *K = kron_applied(D, e->kid[i], F);
      if (K) {
        F = K;
        continue;
      }
      expr *run = expr_mul_n(c, e->kid, i + 1);
      if (md_shape_derive(D->shapes, run) && is_scalar(D, run))
        lead = i + 1;
      else
        F = NULL;
      break;
    }
    if (!F)
      return NULL;
    expr **v = xreallocarray(NULL, e->nkids + 1, sizeof *v);
    size_t n = 0;
    if (lead)
      v[n++] = expr_mul_n(c, e->kid, lead);
    for (size_t i = lead; i < e->nkids; i++)
      if (is_scalar(D, e->kid[i]))
        v[n++] = e->kid[i];
    v[n++] = F;
    expr *r = n == 1 ? F : expr_mul_n(c, v, n);
    free(v);
    return r;
  }
  case E_ADD: {
    expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
    expr *r = e;
    for (size_t i = 0; r && i < e->nkids; i++) {
      v[i] = unvec_form(D, e->kid[i]);
      if (!v[i])
        r = NULL;
      else if (i) {
        md_shape a = shape(D, v[0]), b = shape(D, v[i]);
        if (!md_dim_equal(D->shapes, a.r, b.r) ||
            !md_dim_equal(D->shapes, a.c, b.c))
          r = NULL;
      }
    }
    if (r)
      r = expr_add_n(c, v, e->nkids);
    free(v);
    return r;
  }
  default:
    return NULL;
  }
}

/* d/dvec(X) f for a vector f: vec(F) is read through F (an adjoint of
 * F's shape), any other vector f through an adjoint vector. */
static expr *vec_jacobian(md_diff *D, expr *f, expr *X) {
  md_ctx *c = D->ctx;
  md_kind k = md_shape_sym_kind(D->shapes, X);
  if (k == K_SYMMETRIC || k == K_SPD) {
    char *a = md_print_text_brief(c, f, MD_BRIEF_MAX);
    fail(D, f,
         "cannot form the derivative of %s by vec(%s): for a symmetric "
         "variable it needs the commutation matrix, which the language has "
         "no name for",
         a, X->u.name);
    free(a);
    return NULL;
  }
  expr *F = unvec_form(D, f);
  if (!F || !md_shape_derive(D->shapes, F))
    F = f;
  md_shape fs = shape(D, F);
  char name[32];
  snprintf(name, sizeof name, "%s'%u",
           md_shape_is_vector(D->shapes, fs) ? "g" : "G", ++D->nadjoints);
  expr *G = expr_sym(c, name);
  expr *GF = expr_inner(c, G, F);
  if (!GF) {
    too_deep(D); /* past a limit */
    return NULL;
  }
  if (!md_shape_derive(D->shapes, GF)) {
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    fail(D, f, "internal error: no shape for the adjoint of %s%s", a, "");
    free(a);
    return NULL;
  }
  bool ok;
  expr *R = reverse(D, F, X, G, &ok);
  if (!ok)
    return NULL;
  if (expr_is_zero(R))
    return R;
  vlinear V = {{D, G, NULL, NULL, 0}, false, false};
  expr *J = vlin(&V, R);
  free(V.L.has);
  free(V.L.memo);
  if (!J) {
    char *a = md_print_text_brief(c, f, MD_BRIEF_MAX);
    if (V.needs_k)
      fail(D, f,
           "cannot form the derivative of %s by vec(%s): it needs the "
           "commutation matrix (vec(X^T) = K vec(X)), which the language "
           "has no name for",
           a, X->u.name);
    else if (V.ambiguous)
      fail(D, f,
           "cannot form the derivative of %s by vec(%s): its Kronecker form "
           "would hold identity matrices whose sizes it does not fix",
           a, X->u.name);
    else
      fail(D, f,
           "cannot form the derivative of %s by vec(%s): its adjoint is not "
           "of a Kronecker form the engine can read",
           a, X->u.name);
    free(a);
    return NULL;
  }
  /* a diagonal X: each column is the gradient of an entry of F, projected
   * as a gradient is (G .* I, SPEC 2 fine point 11) */
  if (k == K_DIAGONAL)
    J = expr_mul(
        c, expr_call1(c, FN_DIAG, expr_call1(c, FN_VEC, expr_ident(c))), J);
  return J;
}

static bool holds_kron(const expr *e, uint8_t *seen) {
  if (seen[e->id])
    return false;
  seen[e->id] = 1;
  if (e->op == E_KRON)
    return true;
  for (size_t i = 0; i < e->nkids; i++)
    if (holds_kron(e->kid[i], seen))
      return true;
  return false;
}

/* ---- the layout table ---- */

static expr *sym_of(expr *x) {
  return x->op == E_SYM ? x : x->kid[0];
}

/* The structured gradient of SPEC 3 for a symmetric or diagonal X. */
static expr *structured(md_diff *D, expr *x, expr *G) {
  md_kind k = md_shape_sym_kind(D->shapes, x);
  md_ctx *c = D->ctx;
  if (k == K_DIAGONAL)
    return expr_had(c, G, expr_ident(c));
  if (k != K_SYMMETRIC && k != K_SPD)
    return G;
  expr *sum = expr_add(c, G, expr_trans(c, G));
  if (D->symmetric == MD_SYM_COOKBOOK)
    return expr_sub(c, sum, expr_had(c, G, expr_ident(c)));
  mpq_t h;
  mpq_init(h);
  mpq_set_ui(h, 1, 2);
  expr *r = expr_mul(c, expr_num(c, h), sum);
  mpq_clear(h);
  return r;
}

/* Whether E depends on X, memoised in DEP (0 not known yet, 1 no, 2
 * yes): one walk serves every vec(F), however they share. */
static bool holds_x(const expr *e, const expr *X, uint8_t *dep) {
  if (!dep[e->id]) {
    bool yes = e == X;
    for (size_t i = 0; !yes && i < e->nkids; i++)
      yes = holds_x(e->kid[i], X, dep);
    dep[e->id] = yes ? 2 : 1;
  }
  return dep[e->id] == 2;
}

/* E simplified by the derivation's simplifier (md_diff.simp): the
 * retries of one derivation share its memo and its budget.  Through k
 * nested vec(t t^T) each level simplified its gradient afresh, each with
 * the whole floor of a simplifier: 23 s at k = 100. */
static expr *simplified(md_diff *D, expr *e) {
  if (!D->simp)
    D->simp = md_simplifier_builtin(D->ctx, D->shapes);
  return md_simplifier_run(D->simp, e);
}

void md_diff_clear(md_diff *D) {
  md_simplifier_free(D->simp);
  D->simp = NULL;
  slices_free(D->slices);
  D->slices = NULL;
}

/* The vec(F) nodes of E whose F depends on X, into OUT (each once), and
 * how many of them are nested on E's deepest path, at most
 * MAX_VEC_NEST + 1 (SEEN by node: that count plus one; DEP as holds_x's). */
static unsigned vec_nodes(const expr *e, const expr *X, uint8_t *seen,
                          uint8_t *dep, md_nodes *out) {
  if (!seen[e->id]) {
    seen[e->id] = 1;
    /* (outer ones first: through_vec takes them in this order) */
    bool is =
        e->op == E_CALL && e->u.fn == FN_VEC && holds_x(e->kid[0], X, dep);
    if (is)
      md_nodes_push(out, (expr *)e);
    unsigned d = 0;
    for (size_t i = 0; i < e->nkids; i++) {
      unsigned k = vec_nodes(e->kid[i], X, seen, dep, out);
      d = k > d ? k : d;
    }
    d += is && d <= MAX_VEC_NEST;
    seen[e->id] = (uint8_t)(d + 1);
  }
  return seen[e->id] - 1u;
}

/* The matrix form of the gradient DV by vec(F) (unvec_form, on DV as it
 * is or simplified), or NULL. */
static expr *unvec_of(md_diff *D, expr *dv) {
  if (!md_shape_is_vector(D->shapes, shape(D, dv)) &&
      !md_shape_is_scalar(D->shapes, shape(D, dv)))
    return NULL;
  expr *F = unvec_form(D, dv);
  if (!F) {
    expr *s = simplified(D, dv);
    F = s ? unvec_form(D, s) : NULL;
  }
  return F && md_shape_derive(D->shapes, F) ? F : NULL;
}

/* d/dX f or d/dvec(X) f where f holds vec(F) nodes with F depending on X.
 * Each such node becomes a vector variable v_i of its own, f = f'(X, v),
 * and the derivative is that of f' by X plus, for each v_i, its gradient
 * passed on into F_i: as it is for d/dvec(X) vec(X), else through its
 * matrix form M_i, as d/dX <M_i, F_i> (unvec_form: vec(A) is A,
 * kron(b, c) is c b^T, kron(P, Q) vec(A) is Q A P^T).  A gradient without
 * such a form (a^T vec(X) by X: the reshaping of a) is an error that says
 * to differentiate by vec(X). */
static expr *through_vec(md_diff *D, expr *f, expr *x, expr *X, md_nodes *vn) {
  md_ctx *c = D->ctx;
  if (D->trace) {
    fail(D, f,
         "--steps cannot show a derivative through vec(%s) yet; leave out "
         "--steps%s",
         X->u.name, "");
    return NULL;
  }
  size_t n = vn->n, limits = md_ctx_limits(c);
  expr **v = xreallocarray(NULL, n, sizeof *v);
  expr_subst sub, back;
  expr_subst_init(&sub, c);
  expr_subst_init(&back, c);
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "v'%u", ++D->nadjoints);
    v[i] = expr_sym(c, name);
    if (!md_shape_derive(D->shapes, vn->v[i]) ||
        !md_shape_derive(D->shapes, v[i]) ||
        !md_shape_unify(D->shapes, shape(D, v[i]), shape(D, vn->v[i])))
      ok = false;
    expr_subst_bind(&sub, vn->v[i], v[i]);
    expr_subst_bind(&back, v[i], vn->v[i]);
  }
  expr *fv = ok ? expr_subst_apply(&sub, f) : NULL;
  if (!fv || !md_shape_derive(D->shapes, fv)) {
    fail(D, f, "internal error: no shape once vec(...) of %s is named%s",
         X->u.name, "");
    fv = NULL;
  }
  md_kind k = md_shape_sym_kind(D->shapes, X);
  bool plain = k != K_SYMMETRIC && k != K_SPD && k != K_DIAGONAL;
  bool scalar = fv && md_shape_is_scalar(D->shapes, shape(D, fv));
  uint8_t *seen = xcalloc(md_ctx_nnodes(c), 1);
  bool has_x = fv && expr_contains(fv, X, seen);
  free(seen);
  expr *r = NULL;
  if (fv && has_x && !(r = md_derivative(D, fv, x)))
    fv = NULL;
  if (r)
    r = expr_subst_apply(&back, r);
  for (size_t i = 0; fv && i < n; i++) {
    expr *Fi = vn->v[i]->kid[0];
    expr *dv = md_derivative(D, fv, v[i]);
    dv = dv ? expr_subst_apply(&back, dv) : NULL;
    if (!dv) {
      fv = NULL;
      break;
    }
    expr *part;
    if (Fi == X && x != X && plain) {
      part = dv; /* by vec(X), as it is */
    } else {
      expr *M = scalar ? unvec_of(D, dv) : NULL;
      if (!M && scalar && x != X && plain && Fi != X) {
        /* by vec(X) the chain rule needs no matrix form: the Jacobian of
         * vec(F_i) (Kronecker form) times the gradient by vec(F_i) */
        size_t n0 = D->err->n;
        expr *J = md_derivative(D, vn->v[i], x);
        if (J) {
          r = r ? expr_add(c, r, expr_mul(c, J, dv)) : expr_mul(c, J, dv);
          continue;
        }
        md_errors_truncate(D->err, n0); /* the message below says more */
      }
      if (!M) {
        char *a = md_print_text_brief(c, f, MD_BRIEF_MAX);
        char b[240];
        if (!scalar)
          snprintf(b, sizeof b,
                   "%s%s%s: through vec(...) only a scalar or vec(%s) itself "
                   "is read",
                   x == X ? "" : "vec(", X->u.name, x == X ? "" : ")",
                   X->u.name);
        else if (x == X || plain)
          snprintf(b, sizeof b,
                   "%s%s%s: the gradient by vec(...) of it has no matrix form "
                   "the engine can read (the language has no unvec)%s",
                   x == X ? "" : "vec(", X->u.name, x == X ? "" : ")",
                   Fi == X && x == X ? "; differentiate by vec(X) instead"
                                     : "");
        else
          snprintf(b, sizeof b,
                   "vec(%s): for a symmetric or diagonal variable the "
                   "gradient needs its matrix form, which the engine cannot "
                   "read here (the language has no unvec)",
                   X->u.name);
        fail(D, vn->v[i], "cannot form the derivative of %s by %s", a, b);
        free(a);
        fv = NULL;
        break;
      }
      if (Fi == X) {
        part = structured(D, X, M);
        if (x != X)
          part = expr_call1(c, FN_VEC, part);
      } else {
        /* M is the adjoint of F_i, a constant there: pass it on into F_i,
         * with X in M frozen as a symbol of its own */
        char name[48];
        snprintf(name, sizeof name, "%s'%u", X->u.name, ++D->nadjoints);
        expr *Xc = expr_sym(c, name);
        expr_subst fr, th;
        expr_subst_init(&fr, c);
        expr_subst_init(&th, c);
        expr_subst_bind(&fr, X, Xc);
        expr_subst_bind(&th, Xc, X);
        expr *in = NULL;
        if (md_shape_derive(D->shapes, Xc) &&
            md_shape_unify(D->shapes, shape(D, Xc), shape(D, X))) {
          expr *Mc = expr_subst_apply(&fr, M);
          in = Mc ? expr_inner(c, Mc, Fi) : NULL;
        }
        part = in && md_shape_derive(D->shapes, in) ? md_derivative(D, in, x)
                                                    : NULL;
        if (part)
          part = expr_subst_apply(&th, part);
        expr_subst_clear(&fr);
        expr_subst_clear(&th);
        if (!part) {
          if (!D->err->n && md_ctx_limits(c) != limits)
            too_deep(D); /* a constructor's limit */
          else if (!D->err->n)
            fail(D, f, "internal error: no shape for the adjoint of %s%s",
                 "vec(...)", "");
          fv = NULL;
          break;
        }
      }
    }
    r = r ? expr_add(c, r, part) : part;
  }
  expr_subst_clear(&sub);
  expr_subst_clear(&back);
  free(v);
  return fv ? r : NULL;
}

/* Sizes A and B are equal, or one is still free (a closed term's, as
 * in 2 I, which takes its size where it stands). */
static bool may_equal(md_diff *D, md_dim a, md_dim b) {
  return md_dim_equal(D->shapes, a, b) ||
         md_dim_get(D->shapes, a).kind == MD_DIM_FREE ||
         md_dim_get(D->shapes, b).kind == MD_DIM_FREE;
}

/* The Jacobian J of R = J g, a form linear in the vector g, by X of
 * shape XS; NULL when it cannot be read. */
static expr *read_jacobian(md_diff *D, expr *r, const expr *g, md_shape xs) {
  expr *J = expr_is_zero(r) ? r : jacobian_of(D, r, g);
  if (!J && md_shape_is_vector(D->shapes, xs)) {
    /* the general reader: for a column R, vec(R) = R = J g.  Only when
     * its answer holds no Kronecker product: there the sizes of
     * identities may be fixed only by a product of sizes. */
    vlinear V = {{D, g, NULL, NULL, 0}, false, false};
    J = vlin(&V, r);
    free(V.L.has);
    free(V.L.memo);
    if (J) {
      uint8_t *seen = xcalloc(md_ctx_nnodes(D->ctx), 1);
      if (holds_kron(J, seen))
        J = NULL;
      free(seen);
    }
  }
  return J;
}

expr *md_derivative(md_diff *D, expr *f, expr *x) {
  const md_diff_trace *trace = D->trace;
  D->trace = NULL; /* derivatives inside F are not the derivation shown */
  f = md_eval_derivatives(D, f);
  D->trace = trace;
  if (!f)
    return NULL;
  expr *X = sym_of(x);
  {
    /* vec(F) of something that depends on X: see through_vec.
     * d/dvec(X) vec(F) is read through F (vec_jacobian): its vec(...)
     * forms are not the ones meant here */
    expr *scan = f;
    if (x != X && md_shape_is_vector(D->shapes, shape(D, f))) {
      expr *F = unvec_form(D, f);
      if (F && md_shape_derive(D->shapes, F))
        scan = F;
    }
    md_nodes vn = {0};
    uint8_t *seen = xcalloc(md_ctx_nnodes(D->ctx), 1); /* after F is made */
    uint8_t *dep = xcalloc(md_ctx_nnodes(D->ctx), 1);
    /* the levels inside counted first, not met one by one: each level
     * took longer than the last, and the error at the 33rd came after
     * 4.4 s at k = 500 (k = 1000 ended in an internal error) */
    unsigned nest = vec_nodes(scan, X, seen, dep, &vn);
    /* (a vector or matrix by a matrix X is a tensor: the error below) */
    bool tensor = x == X && !md_shape_is_scalar(D->shapes, shape(D, f));
    bool through = vn.n && !tensor;
    free(seen);
    free(dep);
    expr *r = NULL;
    if (through && D->vec_nest + nest > MAX_VEC_NEST) {
      /* each level walks and rewrites all the levels inside it: k
       * nested vec(t t^T) took 18 s at k = 200, to end in an error */
      fail(D, vn.v[0],
           "vec(...) of a form of %s nested more than %s deep; name the "
           "inner vec(...) with a symbol of its own",
           X->u.name, TEXT(MAX_VEC_NEST));
    } else if (through) {
      D->vec_nest++;
      r = through_vec(D, f, x, X, &vn);
      D->vec_nest--;
    }
    md_nodes_clear(&vn);
    if (through)
      return r;
  }
  md_shape fs = shape(D, f), xs = shape(D, X);
  bool ok;
  expr *r;
  if (md_shape_is_scalar(D->shapes, fs)) {
    r = reverse(D, f, X, expr_int(D->ctx, 1), &ok);
    if (!ok)
      return NULL;
    r = structured(D, X, r);
    if (x != X)
      r = expr_call1(D->ctx, FN_VEC, r);
    return r;
  }
  /* A vector or matrix f: differentiate <g, f> for a symbolic adjoint g,
   * then read the Jacobian off the form, linear in g. */
  if (x != X) {
    if (md_shape_is_vector(D->shapes, fs))
      return vec_jacobian(D, f, X);
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    fail(D, f,
         "the derivative of %s with respect to vec(%s) is a tensor; "
         "differentiate vec(...) of it instead",
         a, X->u.name);
    free(a);
    return NULL;
  }
  /* by a matrix X, only a scalar has a derivative (SPEC 3's table) */
  if (!md_shape_is_scalar(D->shapes, xs) &&
      (!md_shape_is_vector(D->shapes, fs) ||
       !md_shape_is_vector(D->shapes, xs))) {
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    char *b = md_print_text_brief(D->ctx, x, MD_BRIEF_MAX);
    fail(D, f,
         "the derivative of %s with respect to %s is a tensor; "
         "differentiate vec(...) with respect to a vector instead",
         a, b);
    free(a);
    free(b);
    return NULL;
  }
  /* a row by a scalar: no symbol can be 1×k (unknown sizes are never 1),
   * so through the column: the element-wise derivative of f is that of
   * f^T, transposed, which the layout table writes as the row it is */
  if (md_dim_is_one(D->shapes, fs.r) && md_shape_is_scalar(D->shapes, xs)) {
    expr *ft = expr_trans(D->ctx, f);
    if (!ft) {
      too_deep(D); /* past a limit */
      return NULL;
    }
    return md_shape_derive(D->shapes, ft) ? md_derivative(D, ft, x) : NULL;
  }
  /* a fresh symbol that no input can name, of f's kind */
  char name[32];
  snprintf(name, sizeof name, "%s'%u",
           md_shape_is_vector(D->shapes, fs) ? "g" : "G", ++D->nadjoints);
  expr *g = expr_sym(D->ctx, name);
  expr *gi = expr_inner(D->ctx, g, f);
  if (!gi) {
    too_deep(D); /* past a limit */
    return NULL;
  }
  if (!md_shape_derive(D->shapes, gi)) {
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    fail(D, f, "internal error: no shape for the adjoint of %s%s", a, "");
    free(a);
    return NULL;
  }
  r = reverse(D, f, X, g, &ok);
  if (!ok)
    return NULL;
  if (md_shape_is_scalar(D->shapes, xs) && !md_shape_is_vector(D->shapes, fs)) {
    /* a matrix F by a scalar: the element-wise derivative, the F-shaped M
     * of <G, M> */
    linear L = {D, g, NULL, NULL, 0};
    expr *m = inner_coeff(&L, r);
    free(L.has);
    free(L.memo);
    if (!m) {
      char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
      fail(D, f, "cannot form the element-wise derivative of %s%s", a, "");
      free(a);
      return NULL;
    }
    return m;
  }
  expr *J = read_jacobian(D, r, g, xs);
  size_t limits = md_ctx_limits(D->ctx);
  if (!J && !expr_is_zero(r)) {
    /* the same form with transposes at the leaves and products
     * distributed over sums (normal.h), each term then read alone */
    md_nf *N = md_nf_new(D->ctx, D->shapes, true);
    expr *n = md_nf_of(N, r);
    md_nf_free(N);
    if (n && n != r)
      J = read_jacobian(D, n, g, xs);
    if (!J) {
      /* the rules' forms: diag(g y^T), the adjoint of diag(x) y, is
       * g .* y (simplify.rules), which reads as diag(y) g */
      expr *s = simplified(D, r);
      if (s && s != r && s != n)
        J = read_jacobian(D, s, g, xs);
    }
    /* a reading that does not have the Jacobian's shape is none */
    if (J && !md_shape_derive(D->shapes, J))
      J = NULL;
    if (J) {
      md_shape js = shape(D, J);
      bool rows = md_shape_is_scalar(D->shapes, xs)
                      ? md_dim_is_one(D->shapes, js.r)
                      : may_equal(D, js.r, xs.r);
      if (!rows || !may_equal(D, js.c, fs.r))
        J = NULL;
    }
  }
  if (!J && md_ctx_limits(D->ctx) != limits) {
    too_deep(D); /* the forms tried met a limit: that is the error */
    return NULL;
  }
  if (!J) {
    if (D->hessian_of) {
      char *a = md_print_text_brief(D->ctx, D->hessian_of, MD_BRIEF_MAX);
      fail(D, D->hessian_of,
           "cannot form the Hessian of %s: its gradient is not of a form "
           "whose Jacobian can be read%s",
           a, "");
      free(a);
      return NULL;
    }
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    fail(D, f,
         "cannot form the Jacobian of %s; differentiate a scalar such as "
         "<g, %s> instead",
         a, a);
    free(a);
    return NULL;
  }
  /* denominator layout: (i, j) = d f_j / d x_i, so J as it stands;
   * by a scalar it is the 1×k row */
  return J;
}

bool md_derivatives(md_diff *D, expr *f, expr *const *xs, size_t n,
                    expr **out) {
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  const md_diff_trace *trace = D->trace;
  D->trace = NULL;
  f = md_eval_derivatives(D, f);
  D->trace = trace;
  if (!f)
    return false;
  bool scalar = is_scalar(D, f);
  /* the variables one pass serves: a scalar F, no vec(F) over them (those
   * go through through_vec, variable by variable), each symbol once */
  const expr **T = xcalloc(n ? n : 1, sizeof *T);
  size_t *slot = xcalloc(n ? n : 1, sizeof *slot); /* into T, or n */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    slot[i] = n;
    if (!scalar || trace)
      continue;
    expr *X = sym_of(xs[i]);
    md_nodes vn = {0};
    uint8_t *seen = xcalloc(md_ctx_nnodes(D->ctx), 1);
    uint8_t *dep = xcalloc(md_ctx_nnodes(D->ctx), 1);
    vec_nodes(f, X, seen, dep, &vn);
    free(seen);
    free(dep);
    bool plain = vn.n == 0;
    md_nodes_clear(&vn);
    if (!plain)
      continue;
    size_t j = 0;
    while (j < m && T[j] != X)
      j++;
    if (j == m)
      T[m++] = X;
    slot[i] = j;
  }
  bool ok = true;
  expr **adj = xcalloc(m ? m : 1, sizeof *adj);
  if (m)
    ok = reverse_n(D, f, T, m, expr_int(D->ctx, 1), adj);
  for (size_t i = 0; ok && i < n; i++) {
    if (slot[i] == n) {
      ok = (out[i] = md_derivative(D, f, xs[i])) != NULL;
      continue;
    }
    expr *X = sym_of(xs[i]);
    expr *r = structured(D, X, adj[slot[i]]);
    if (xs[i] != X)
      r = expr_call1(D->ctx, FN_VEC, r);
    ok = (out[i] = r) != NULL || too_deep(D);
  }
  free(adj);
  free(T);
  free(slot);
  return ok;
}

expr *md_hessian(md_diff *D, expr *f, expr *x) {
  md_shape xs = shape(D, x);
  if (!md_shape_is_scalar(D->shapes, xs) &&
      !md_shape_is_vector(D->shapes, xs)) {
    char *a = md_print_text_brief(D->ctx, x, MD_BRIEF_MAX);
    fail(D, f,
         "the Hessian with respect to the matrix %s is a tensor; Hessians "
         "are taken with respect to a scalar or a vector%s",
         a, "");
    free(a);
    return NULL;
  }
  md_shape fs = shape(D, f);
  if (!md_shape_is_scalar(D->shapes, fs)) {
    /* the Hessian of a vector function is a tensor: say so, not what
     * the gradient's Jacobian runs into */
    char *a = md_print_text_brief(D->ctx, f, MD_BRIEF_MAX);
    char d[96];
    md_shape_format(D->shapes, fs, d, sizeof d);
    fail(D, f,
         "the Hessian needs a scalar function; %s is %s (leave out "
         "--hessian for its Jacobian)",
         a, d);
    free(a);
    return NULL;
  }
  expr *grad = md_derivative(D, f, x);
  if (!grad)
    return NULL;
  md_shape_derive(D->shapes, grad);
  const expr *saved = D->hessian_of;
  D->hessian_of = f; /* messages name f, not its raw gradient */
  size_t n0 = D->err->n;
  expr *h = md_derivative(D, grad, x);
  if (!h) {
    /* again from the gradient simplified, then distributed and
     * simplified, where Kronecker products with a vector on one side have
     * become products (kron(I, x^T) kron(a, c) = x^T c a) and transposes
     * are at the leaves; the first try's message stands if these fail */
    size_t n1 = D->err->n;
    for (int expand = 0; !h && expand < 2; expand++) {
      expr *e = grad;
      if (expand) { /* distributed, so that rules meet each term */
        md_nf *N = md_nf_new(D->ctx, D->shapes, true);
        e = md_nf_of(N, grad);
        md_nf_free(N);
      }
      expr *s = e ? simplified(D, e) : NULL;
      if (s && s != grad)
        h = md_derivative(D, s, x);
    }
    md_errors_truncate(D->err, h ? n0 : n1);
  }
  D->hessian_of = saved;
  return h;
}

static expr *eval_rec(md_diff *D, expr *e, expr **memo, size_t nmemo) {
  if (e->id < nmemo && memo[e->id])
    return memo[e->id];
  expr *r = e;
  if (e->nkids) {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    bool changed = false;
    for (size_t i = 0; r && i < e->nkids; i++) {
      k[i] = eval_rec(D, e->kid[i], memo, nmemo);
      if (!k[i])
        r = NULL;
      else
        changed |= k[i] != e->kid[i];
    }
    if (r && changed)
      r = expr_rebuild(D->ctx, e, k);
    if (k != small)
      free(k);
  }
  if (r && (r->op == E_DIFF || r->op == E_HESS)) {
    md_shape_derive(D->shapes, r);
    r = r->op == E_DIFF ? md_derivative(D, r->kid[0], r->kid[1])
                        : md_hessian(D, r->kid[0], r->kid[1]);
  }
  if (r)
    md_shape_derive(D->shapes, r);
  if (r && e->id < nmemo)
    memo[e->id] = r;
  return r;
}

expr *md_eval_derivatives(md_diff *D, expr *e) {
  size_t n = md_ctx_nnodes(D->ctx);
  expr **memo = xcalloc(n, sizeof *memo);
  expr *r = eval_rec(D, e, memo, n);
  free(memo);
  return r;
}
