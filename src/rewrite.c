/* rewrite.c - simplification rules applied bottom-up; see rewrite.h. */
#include "rewrite.h"

#include "normal.h"

#include <stdlib.h>
#include <string.h>

/* Rewrites of one node before its result is taken as it is, and results
 * of rewrites nested in results: a rule set that loops (sin(X) =
 * sin(sin(X))) stops there rather than build ever deeper nodes. */
enum { MAX_LOCAL = 64, MAX_NEST = 64 };

typedef struct match {
  md_binding b[MD_MAX_BIND];
  size_t n;
  size_t tries; /* steps of the search for commuting operands */
} match;

typedef struct rewriter {
  md_ctx *ctx;
  md_shapes *shapes;
  const md_rules *R;
  md_idmap memo;            /* node -> its rewritten form */
  md_idmap busy;            /* nodes being rewritten: a result may hold one */
  size_t budget;            /* rewrites left in this call */
  unsigned nest;            /* results being rewritten, one inside the other */
  bool failed;              /* a result was too deep */
  const md_rwrule *last;    /* the rule applied last */
  const md_rwrule *runaway; /* a user's rule still applying at a limit */
  /* the rules that can apply at a node of head op H, in their order:
   * R->rw[first[H]], then R->rw[next[i]] after R->rw[i] (SIZE_MAX ends
   * a list); calls of every function share one list */
  size_t first[E_NOPS], *next;
  size_t nindexed; /* R->nrw when they were made (rules may come later) */
} rewriter;

/* The shape of E, derived if E was built after inference; false if it
 * has none (0^-1 has no value, so no shape). */
static bool shape(rewriter *W, expr *e, md_shape *out) {
  if (!md_shape_derive(W->shapes, e) || !md_shape_known(W->shapes, e))
    return false;
  *out = md_shape_of(W->shapes, e);
  return true;
}

enum { MAX_FACTORS = 16 };

/* A and B are one size: the same, or products of the same factors (kron
 * builds a new product for m·n each time). */
static bool dim_same(rewriter *W, md_dim a, md_dim b) {
  if (md_dim_equal(W->shapes, a, b))
    return true;
  md_dim fa[MAX_FACTORS], fb[MAX_FACTORS];
  size_t na = 0, nb = 0;
  if (!md_dim_factors(W->shapes, a, fa, &na, MAX_FACTORS) ||
      !md_dim_factors(W->shapes, b, fb, &nb, MAX_FACTORS) || na != nb)
    return false;
  for (size_t i = 0; i < na; i++) {
    size_t j = 0;
    while (j < nb && fb[j] != fa[i])
      j++;
    if (j == nb)
      return false;
    fb[j] = fb[--nb];
  }
  return true;
}

/* ---- matching ---- */

static bool guard_ok(rewriter *W, const md_rwrule *r, const expr *var,
                     expr *val) {
  md_shape sh;
  if (!shape(W, val, &sh))
    return false;
  for (size_t i = 0; i < r->nguards; i++) {
    if (r->guards[i].var != var)
      continue;
    switch (r->guards[i].kind) {
    case K_SCALAR:
      return md_shape_is_scalar(W->shapes, sh);
    case K_VECTOR:
      return md_shape_is_vector(W->shapes, sh);
    case K_MATRIX:
      return !md_shape_is_scalar(W->shapes, sh);
    default: /* symmetric, spd, diagonal: a symbol declared so */
      return val->op == E_SYM &&
             md_shape_sym_kind(W->shapes, val) == r->guards[i].kind;
    }
  }
  return true;
}

static bool bind(rewriter *W, match *m, const md_rwrule *r, const expr *var,
                 expr *val) {
  for (size_t i = 0; i < m->n; i++)
    if (m->b[i].var == var)
      return m->b[i].val == val;
  if (m->n == MD_MAX_BIND || !guard_ok(W, r, var, val))
    return false;
  m->b[m->n++] = (md_binding){var, val};
  return true;
}

static expr *bound(const match *m, const expr *var) {
  for (size_t i = 0; i < m->n; i++)
    if (m->b[i].var == var)
      return m->b[i].val;
  return NULL;
}

static bool same_head(const expr *p, const expr *n) {
  return p->op == n->op && (p->op != E_CALL || p->u.fn == n->u.fn);
}

/* P against the whole of N, operand by operand.  On failure the bindings
 * made are undone. */
static bool match_whole(rewriter *W, match *m, const md_rwrule *r,
                        const expr *p, expr *n) {
  if (p->op == E_SYM)
    return bind(W, m, r, p, n);
  md_shape sh;
  if (p->op == E_TRANS && p->kid[0]->op == E_SYM && n->op != E_TRANS &&
      shape(W, n, &sh) && md_dim_is_one(W->shapes, sh.r) &&
      !md_dim_is_one(W->shapes, sh.c)) {
    /* b^T against a row that is not written as a transpose (x^T .^ 2,
     * where the normal form put the transpose at the leaves): b is the
     * row transposed */
    expr *t = expr_trans(W->ctx, n);
    return t && bind(W, m, r, p->kid[0], t);
  }
  if (p->nkids == 0)
    return p == n; /* I, ones, numbers: interned, so pointers */
  if (!same_head(p, n) || p->nkids != n->nkids)
    return false;
  size_t saved = m->n;
  for (size_t i = 0; i < p->nkids; i++)
    if (!match_whole(W, m, r, p->kid[i], n->kid[i])) {
      m->n = saved;
      return false;
    }
  return true;
}

/* Operands PK[J..K) of a commuting pattern against unused operands of N,
 * in any order: PICK[j] is the operand pattern operand j took. */
static bool match_any(rewriter *W, match *m, const md_rwrule *r,
                      expr *const *pk, size_t j, size_t k, expr *n,
                      uint8_t *used, size_t *pick) {
  if (j == k)
    return true;
  for (size_t i = 0; i < n->nkids; i++) {
    if (used[i])
      continue;
    if (++m->tries > MD_REWRITE_TRIES)
      return false;
    size_t saved = m->n;
    if (match_whole(W, m, r, pk[j], n->kid[i])) {
      used[i] = 1;
      pick[j] = i;
      if (match_any(W, m, r, pk, j + 1, k, n, used, pick))
        return true;
      used[i] = 0;
      m->n = saved;
    }
  }
  return false;
}

/* Where the root of a pattern matched: the whole node, or some of the
 * operands of an n-ary one (PICK, K of them, in pattern order). */
typedef struct site {
  size_t *pick;
  size_t k;
  bool whole;
} site;

static bool commutes(const expr *e) {
  return e->op == E_ADD || e->op == E_HAD;
}

static bool ordered(const expr *e) {
  return e->op == E_MUL || e->op == E_KRON;
}

static bool match_root(rewriter *W, match *m, const md_rwrule *r, expr *n,
                       site *at) {
  const expr *p = r->lhs;
  at->whole = true;
  at->k = 0;
  if (!same_head(p, n))
    return false;
  if (p->nkids == n->nkids && !commutes(n))
    return match_whole(W, m, r, p, n);
  if (p->nkids > n->nkids || !(ordered(n) || commutes(n)))
    return false;
  size_t k = p->nkids;
  at->whole = false;
  at->k = k;
  if (ordered(n)) {
    for (size_t i = 0; i + k <= n->nkids; i++) {
      size_t j = 0;
      while (j < k && match_whole(W, m, r, p->kid[j], n->kid[i + j]))
        j++;
      if (j == k) {
        for (j = 0; j < k; j++)
          at->pick[j] = i + j;
        return true;
      }
      m->n = 0;
    }
    return false;
  }
  uint8_t *used = xcalloc(n->nkids, 1);
  bool ok = match_any(W, m, r, p->kid, 0, k, n, used, at->pick);
  free(used);
  at->whole = ok && k == n->nkids;
  return ok;
}

/* The size conditions of R hold for what its variables matched. */
static bool sizes_hold(rewriter *W, const match *m, const md_rwrule *r) {
  for (size_t i = 0; i < r->nneeds; i++) {
    const md_sizeeq *q = &r->needs[i];
    md_shape sa, sb;
    if (!shape(W, bound(m, q->a), &sa))
      return false;
    md_dim da = q->aside ? sa.c : sa.r;
    if (!q->b) {
      if (!md_dim_is_one(W->shapes, da))
        return false;
      continue;
    }
    if (!shape(W, bound(m, q->b), &sb))
      return false;
    /* a closed term (I, ones) takes the size where it stands: its
     * recorded shape is only its most general one */
    if ((bound(m, q->a)->flags & EF_CLOSED) ||
        (bound(m, q->b)->flags & EF_CLOSED))
      continue;
    if (!dim_same(W, da, q->bside ? sb.c : sb.r))
      return false;
  }
  return true;
}

/* ---- building the result ---- */

/* A node of E's kind with the N operands K (K[0] itself when N is 1). */
static expr *with_kids(rewriter *W, const expr *e, expr *const *k, size_t n) {
  if (n == 1)
    return k[0];
  switch ((expr_op)e->op) {
  case E_MUL:
    return expr_mul_n(W->ctx, k, n);
  case E_ADD:
    return expr_add_n(W->ctx, k, n);
  default:
    return expr_make(W->ctx, (expr_op)e->op, k, n);
  }
}

/* T (a rule's right side) with its variables replaced by what they
 * matched; NULL if too deep or ill-shaped. */
static expr *instantiate(rewriter *W, const match *m, const expr *t) {
  if (t->op == E_SYM)
    return bound(m, t);
  if (t->nkids == 0)
    return (expr *)t;
  expr *small[4];
  expr **k = t->nkids <= 4 ? small : xreallocarray(NULL, t->nkids, sizeof *k);
  expr *e = NULL;
  size_t i = 0;
  for (; i < t->nkids; i++)
    if (!(k[i] = instantiate(W, m, t->kid[i])))
      break;
  md_shape sh;
  if (i == t->nkids && (e = expr_rebuild(W->ctx, t, k)) && !shape(W, e, &sh))
    e = NULL;
  if (k != small)
    free(k);
  return e;
}

/* D, a size of a term (CLOSED when it has no symbol), is a scheme's: a
 * closed term's sizes are, and a generic size of any term (sum(b) I ones:
 * the size of I and ones, which no symbol fixes) is too. */
static bool loose(rewriter *W, md_dim d, bool closed) {
  return (closed && md_dim_get(W->shapes, d).kind == MD_DIM_FREE) ||
         md_dim_is_generic(W->shapes, d);
}

/* Size A fits size B: the same, or either loose and the other not 1
 * (free sizes are never 1). */
static bool dim_fits(rewriter *W, md_dim a, bool aclosed, md_dim b,
                     bool bclosed) {
  return dim_same(W, a, b) ||
         (loose(W, a, aclosed) && !md_dim_is_one(W->shapes, b)) ||
         (loose(W, b, bclosed) && !md_dim_is_one(W->shapes, a));
}

/* Shape A, whose rows and columns are one loose size (I), fits B only if
 * B's are one size too, or either of them is loose. */
static bool square_fits(rewriter *W, md_shape a, bool ca, md_shape b, bool cb) {
  return !md_dim_equal(W->shapes, a.r, a.c) || !loose(W, a.r, ca) ||
         dim_same(W, b.r, b.c) || loose(W, b.r, cb) || loose(W, b.c, cb);
}

/* A and B have one shape: the rewrite assumed no size. */
static bool same_shape(rewriter *W, expr *a, expr *b) {
  md_shape sa, sb;
  if (!shape(W, a, &sa) || !shape(W, b, &sb))
    return false;
  bool ca = a->flags & EF_CLOSED, cb = b->flags & EF_CLOSED;
  return dim_fits(W, sa.r, ca, sb.r, cb) && dim_fits(W, sa.c, ca, sb.c, cb) &&
         square_fits(W, sa, ca, sb, cb) && square_fits(W, sb, cb, sa, ca);
}

/* N rewritten once at its root by the first rule that applies, or N. */
static expr *rewrite_root(rewriter *W, expr *n) {
  size_t pick[MD_MAX_BIND];
  for (size_t i = W->first[n->op]; i != SIZE_MAX; i = W->next[i]) {
    const md_rwrule *r = &W->R->rw[i];
    if (!same_head(r->lhs, n))
      continue;
    match m = {.n = 0};
    site at = {.pick = pick};
    if (!match_root(W, &m, r, n, &at) || !sizes_hold(W, &m, r))
      continue;
    expr *inst = instantiate(W, &m, r->rhs);
    if (!inst)
      continue;
    if (at.whole) {
      if (!same_shape(W, inst, n))
        continue;
      W->last = r;
      return inst;
    }
    /* the operands matched, as one node, and N with them replaced */
    expr **k = xreallocarray(NULL, n->nkids, sizeof *k);
    for (size_t j = 0; j < at.k; j++)
      k[j] = n->kid[at.pick[j]];
    expr *part = with_kids(W, n, k, at.k);
    expr *out = NULL;
    if (part && same_shape(W, inst, part)) {
      uint8_t *gone = xcalloc(n->nkids, 1);
      for (size_t j = 0; j < at.k; j++)
        gone[at.pick[j]] = 1;
      size_t nk = 0;
      for (size_t j = 0; j < n->nkids; j++)
        if (j == at.pick[0])
          k[nk++] = inst;
        else if (!gone[j])
          k[nk++] = n->kid[j];
      free(gone);
      md_shape sh;
      out = with_kids(W, n, k, nk);
      if (!out)
        W->failed = true;
      else if (!shape(W, out, &sh))
        out = NULL;
    }
    free(k);
    if (out) {
      W->last = r;
      return out;
    }
  }
  return n;
}

/* ---- the walk ---- */

static expr *rewrite_rec(rewriter *W, expr *n);

/* N with its operands rewritten. */
static expr *rewrite_kids(rewriter *W, expr *n) {
  if (!n->nkids)
    return n;
  expr *small[4];
  expr **k = n->nkids <= 4 ? small : xreallocarray(NULL, n->nkids, sizeof *k);
  bool changed = false;
  expr *out = n;
  for (size_t i = 0; out && i < n->nkids; i++) {
    /* the variable of d/dX stays as it is written */
    k[i] = (n->op == E_DIFF || n->op == E_HESS) && i == 1
               ? n->kid[i]
               : rewrite_rec(W, n->kid[i]);
    if (!k[i])
      out = NULL;
    else
      changed |= k[i] != n->kid[i];
  }
  if (out && changed) {
    out = expr_rebuild(W->ctx, n, k);
    md_shape sh;
    if (out && !shape(W, out, &sh))
      out = n; /* cannot happen with rules that keep shapes: be safe */
  }
  if (k != small)
    free(k);
  if (!out)
    W->failed = true;
  return out;
}

/* A limit met while a rule still applies: a user's rule (the first
 * nrwuser) that rewrites without end is an error naming it; the
 * built-in ones stop there, with an expression still equal to the
 * input. */
static void runaway(rewriter *W) {
  const md_rwrule *r = W->last;
  if (r && (size_t)(r - W->R->rw) < W->R->nrwuser && !W->runaway) {
    W->runaway = r;
    W->failed = true;
  }
}

static expr *rewrite_rec(rewriter *W, expr *n) {
  if (W->failed)
    return NULL;
  expr *done = (expr *)md_idmap_get(&W->memo, n);
  if (done)
    return done;
  if (W->nest > MAX_NEST) {
    runaway(W); /* results nested in results: sin(X) = sin(sin(X)) */
    return n;
  }
  if (md_idmap_get(&W->busy, n))
    return n; /* a rule's result holds the node it rewrote */
  md_idmap_put(&W->busy, n, 1);
  expr *cur = rewrite_kids(W, n);
  bool settled = false;
  const md_rwrule *applied = NULL;
  for (int i = 0; cur && i < MAX_LOCAL && W->budget; i++) {
    expr *next = rewrite_root(W, cur);
    if (next == cur) {
      settled = true;
      break;
    }
    applied = W->last;
    W->budget--;
    /* the result's new operands are rewritten too */
    W->nest++;
    cur = next ? rewrite_kids(W, next) : NULL;
    W->nest--;
  }
  md_idmap_put(&W->busy, n, 0);
  if (cur && !settled && !W->failed) {
    W->last = applied;
    runaway(W); /* still rewriting at MAX_LOCAL or the budget */
  }
  if (!cur) {
    W->failed = true;
    return NULL;
  }
  md_idmap_put(&W->memo, n, (uintptr_t)cur);
  if (cur != n && !md_idmap_get(&W->busy, cur) && !md_idmap_get(&W->memo, cur))
    md_idmap_put(&W->memo, cur, (uintptr_t)cur); /* a fixed point */
  return cur;
}

struct md_rewriter {
  rewriter W; /* its memo is kept from call to call */
};

/* The lists of W's rules by head (a scan of every rule at every node was
 * 3% of a filter run's instructions).  The substitutions of ewise.h are
 * in none, nor a rule with more operands than a match binds. */
static void index_rules(rewriter *W) {
  for (size_t h = 0; h < E_NOPS; h++)
    W->first[h] = SIZE_MAX;
  size_t n = W->R ? W->R->nrw : 0;
  free(W->next);
  W->next = n ? xreallocarray(NULL, n, sizeof *W->next) : NULL;
  W->nindexed = n;
  for (size_t i = n; i-- > 0;) {
    const md_rwrule *r = &W->R->rw[i];
    if (r->sub || r->lhs->nkids > MD_MAX_BIND)
      continue;
    W->next[i] = W->first[r->lhs->op];
    W->first[r->lhs->op] = i;
  }
}

md_rewriter *md_rewriter_new(md_ctx *ctx, md_shapes *shapes,
                             const md_rules *r) {
  md_rewriter *m = xcalloc(1, sizeof *m);
  m->W = (rewriter){.ctx = ctx, .shapes = shapes, .R = r};
  md_idmap_init(&m->W.memo);
  md_idmap_init(&m->W.busy);
  index_rules(&m->W);
  return m;
}

void md_rewriter_free(md_rewriter *m) {
  if (!m)
    return;
  md_idmap_clear(&m->W.memo);
  md_idmap_clear(&m->W.busy);
  free(m->W.next);
  free(m);
}

expr *md_rewriter_run(md_rewriter *m, expr *e) {
  rewriter *W = &m->W;
  if (!W->R || !W->R->nrw || !e)
    return e;
  if (W->nindexed != W->R->nrw)
    index_rules(W);
  /* per node not rewritten by an earlier call (a look-up now) */
  W->budget = MD_REWRITE_BUDGET * expr_dag_size_new(e, &W->memo) + 64;
  W->failed = false;
  W->runaway = NULL;
  W->last = NULL;
  W->nest = 0;
  expr *out = rewrite_rec(W, e);
  md_idmap_clear(&W->busy);
  md_idmap_init(&W->busy);
  if (W->runaway)
    md_ctx_limit_rule(W->ctx, W->runaway->file, W->runaway->line);
  return W->failed ? NULL : out;
}

expr *md_rewrite(md_ctx *ctx, md_shapes *shapes, const md_rules *r, expr *e) {
  if (!r || !r->nrw || !e)
    return e;
  md_rewriter *m = md_rewriter_new(ctx, shapes, r);
  expr *out = md_rewriter_run(m, e);
  md_rewriter_free(m);
  return out;
}

expr *md_rewrite_one(md_ctx *ctx, md_shapes *shapes, const md_rwrule *r,
                     expr *e) {
  if (!same_head(r->lhs, e) || r->lhs->nkids > MD_MAX_BIND)
    return NULL;
  rewriter W = {.ctx = ctx, .shapes = shapes};
  size_t pick[MD_MAX_BIND];
  match m = {.n = 0};
  site at = {.pick = pick};
  if (!match_root(&W, &m, r, e, &at) || !at.whole || !sizes_hold(&W, &m, r))
    return NULL;
  expr *inst = instantiate(&W, &m, r->rhs);
  return inst && same_shape(&W, inst, e) ? inst : NULL;
}
