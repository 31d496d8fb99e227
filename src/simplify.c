/* simplify.c - compact output from the normal form; see simplify.h. */
#include "simplify.h"

#include "ewise.h"
#include "normal.h"
#include "print_text.h"
#include "rewrite.h"
#include "rules.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Nested factoring deeper than this is not tried (the plain form is). */
enum { MAX_NEST = 64 };

/* A coefficient or sign goes into one of the first this many factors that
 * take it, at most this deep. */
enum { MAX_SIGN_IN = 4, MAX_SIGN_DEPTH = 4 };

typedef struct simp {
  md_ctx *ctx;
  md_shapes *shapes;
  md_nf *N;
  /* by node id */
  md_idmap memo; /* presentation of a normal node */
  md_idmap core; /* of a normal sum, without the transposed alternative */
  md_idmap size; /* size_of */
  md_idmap flip; /* flipped */
  unsigned nest;
  size_t work, budget; /* presentations made; past BUDGET no more forms
                        * are tried, only the plain one (may_try) */
  size_t asked_end;    /* nor past this md_ctx_asked (0: no such bound) */
  bool failed;
} simp;

/* Forms this deep in each other, or past this many presentations per
 * node of the input (plus a floor), are not tried: each alternative
 * presents new nodes, and nested sums of scaled sums would make that
 * quadratic or worse (t_k = t_(k-1) + sin(t_(k-1)) / 10).  Presenting
 * the results of the tests, of the identity files and of a 10-layer
 * network takes at most 20000 (the floor), or 3 to 6 per node: 16 leaves
 * room. */
enum { WORK_PER_NODE = 16, WORK_FLOOR = 20000 };

/* Nor past this many nodes asked for (md_ctx_asked: made or found) by
 * one call, its rounds together: the floor, ASKED_FLOOR, shared by all
 * calls as WORK_FLOOR is, and ASKED_PER_NODE for each node not presented
 * before.  A presentation counts once however wide, but a scaled or
 * negated sum of k terms asks for k nodes, and each costs a look-up in
 * the node table (a cache miss, about 0.3 us): t_k = s .* t_(k-1) -
 * t_(k-1) .* t_(k-1) - 2 t_(k-1) - m, whose normal form flattens its
 * sums into Θ(k^2) terms, asked for 11 million in each of two rounds
 * at k = 60 (8 s), and at k = 100 took 22 s to reach the size budget
 * (expr.h).  Presenting the tests' results asks for at most 720 000.
 * A round that reaches the bound is the last: the next would have
 * nothing to try. */
enum { ASKED_PER_NODE = 32, ASKED_FLOOR = 1 << 20, ASKED_PER_WORK = 32 };

/* Both are lowered in proportion by MATDIFF_SIMPLIFY_WORK (md_work_budget,
 * with the normal form's expansion budget and the islands' of ewise.c):
 * the fuzz runs do, as they lower the size budget (expr.h), to reach the
 * paths past these budgets sooner under the sanitizers.  (Both matter:
 * t_k = sigmoid(t_(k-1)) .* t_(k-1) - 2 t_(k-1) - ... at k = 39 has a
 * normal form of 11 751 nodes, its sums flattened, Θ(k^2): 1.8 s in the
 * CLI for 16 tries a node, 15 s under the sanitizers.) */

static bool may_try(const simp *S) {
  return S->nest < MAX_NEST && S->work < S->budget &&
         (!S->asked_end || md_ctx_asked(S->ctx) < S->asked_end);
}

static expr *built(simp *S, expr *e) {
  if (!e) {
    S->failed = true;
    return NULL;
  }
  md_shape_derive(S->shapes, e);
  return e;
}

static bool is_scalar(simp *S, expr *e) {
  if (e->op == E_NUM)
    return true;
  md_shape_derive(S->shapes, e);
  return md_shape_known(S->shapes, e) &&
         md_shape_is_scalar(S->shapes, md_shape_of(S->shapes, e));
}

static bool dim_one(simp *S, expr *e, bool rows) {
  if (!md_shape_derive(S->shapes, e) || !md_shape_known(S->shapes, e))
    return false;
  md_shape sh = md_shape_of(S->shapes, e);
  return md_dim_is_one(S->shapes, rows ? sh.r : sh.c);
}

/* The size measure: what the text shows (md_text_size). */
/* The text size of E, at most 2^40: sizes of a DAG written whole can be
 * astronomic (md_text_size saturates), and the comparisons here subtract
 * and add them as longs. */
static size_t size_of(simp *S, const expr *e) {
  const size_t cap = (size_t)1 << 40;
  size_t n = md_text_size(&S->size, e);
  return n < cap ? n : cap;
}

/* ---- building presented terms ---- */

/* A presented factor X taken apart: numbers into C, its leading scalars
 * and 1×1 runs (presented products put them first) into LEAD, the rest
 * of its chain into REST. */
static void take_apart(simp *S, expr *x, mpq_t c, md_nodes *lead,
                       md_nodes *rest) {
  while (x->op == E_NEG) {
    mpq_neg(c, c);
    x = x->kid[0];
  }
  /* (a long product stays one factor: MD_WHOLE_MUL) */
  bool flat = x->op == E_MUL && !expr_whole(x);
  expr *const *k = flat ? x->kid : &x;
  size_t n = flat ? x->nkids : 1, i = 0;
  while (i < n) {
    if (k[i]->op == E_NUM) {
      md_q_mul_in(c, k[i]->u.num);
      i++;
    } else if (is_scalar(S, k[i])) {
      md_nodes_push(lead, k[i++]);
    } else if (dim_one(S, k[i], true)) {
      size_t j = i + 1;
      while (j < n && !dim_one(S, k[j], false))
        j++;
      if (j == n)
        break;
      for (; i <= j; i++)
        md_nodes_push(lead, k[i]);
    } else {
      break;
    }
  }
  for (; i < n; i++)
    md_nodes_push(rest, k[i]);
}

/* c f[0] f[1] ...: numbers and signs gathered in front, products
 * flattened with their scalars first (A (x^T y B) is x^T y A B: the flat
 * A x^T y B would be ill-shaped). */
static expr *psum(simp *S, expr **v, size_t n);
static bool negative(const expr *t);

/* The presented sum S negated term by term: A - C -> C - A
 * (remembered: a sum is a factor of many products, and each product
 * presented, in each form tried, asks for it). */
static expr *flipped(simp *S, expr *s) {
  expr *m = (expr *)md_idmap_get(&S->flip, s);
  if (m)
    return m;
  expr **v = xreallocarray(NULL, s->nkids, sizeof *v);
  for (size_t i = 0; i < s->nkids; i++) {
    expr *t = s->kid[i];
    if (t->op == E_NEG) {
      v[i] = t->kid[0];
    } else if (t->op == E_NUM) {
      mpq_t q;
      mpq_init(q);
      mpq_neg(q, t->u.num);
      v[i] = expr_num(S->ctx, q);
      mpq_clear(q);
    } else {
      v[i] = built(S, expr_neg(S->ctx, t));
    }
  }
  expr *r = psum(S, v, s->nkids);
  free(v);
  if (r)
    md_idmap_put(&S->flip, s, (uintptr_t)r);
  return r;
}

/* With a negative coefficient *C, the sign into the first of the
 * presented factors V[0..N) that is a sum and comes out no longer for
 * it: -A (B - C) -> A (C - B), in whatever form the product was found. */
static void sign_into_sum(simp *S, expr **v, size_t n, mpq_t c) {
  for (size_t i = 0; i < n; i++) {
    if (v[i]->op != E_ADD)
      continue;
    /* with no negative term, every term would take a sign: longer, so
     * not built (pmul runs for every form tried) */
    bool any = false;
    for (size_t j = 0; j < v[i]->nkids && !any; j++)
      any = negative(v[i]->kid[j]);
    if (!any)
      continue;
    expr *f = flipped(S, v[i]);
    if (f && size_of(S, f) <= size_of(S, v[i])) {
      v[i] = f;
      mpq_neg(c, c);
      return;
    }
  }
}

static expr *pmul(simp *S, const mpq_t c0, expr *const *f, size_t n) {
  mpq_t c;
  mpq_init(c);
  mpq_set(c, c0);
  md_nodes v = {0}, rest = {0};
  for (size_t i = 0; i < n; i++) {
    if (!f[i]) {
      S->failed = true;
      break;
    }
    take_apart(S, f[i], c, &v, &rest);
  }
  for (size_t i = 0; i < rest.n; i++)
    md_nodes_push(&v, rest.v[i]);
  md_nodes_clear(&rest);
  if (mpq_sgn(c) < 0 && !S->failed)
    sign_into_sum(S, v.v, v.n, c);
  expr *r = NULL;
  if (S->failed) {
    r = NULL;
  } else if (mpq_sgn(c) == 0 || v.n == 0) {
    r = expr_num(S->ctx, c);
  } else {
    bool neg = mpq_sgn(c) < 0;
    mpq_abs(c, c);
    expr *m;
    if (mpq_cmp_ui(c, 1, 1) == 0) {
      m = expr_mul_n(S->ctx, v.v, v.n);
    } else {
      md_nodes w = {0};
      md_nodes_push(&w, expr_num(S->ctx, c));
      for (size_t i = 0; i < v.n; i++)
        md_nodes_push(&w, v.v[i]);
      m = expr_mul_n(S->ctx, w.v, w.n);
      md_nodes_clear(&w);
    }
    m = built(S, m);
    r = neg && m ? built(S, expr_neg(S->ctx, m)) : m;
  }
  md_nodes_clear(&v);
  mpq_clear(c);
  return r;
}

static expr *pmul1(simp *S, expr *const *f, size_t n) {
  mpq_t one;
  mpq_init(one);
  mpq_set_ui(one, 1, 1);
  expr *r = pmul(S, one, f, n);
  mpq_clear(one);
  return r;
}

static bool negative(const expr *t) {
  return t->op == E_NEG || expr_num_sgn(t) < 0;
}

/* A sum of presented terms, in the term order, except that a sum with a
 * positive term starts with the first of them: y - x, not -x + y. */
static expr *psum(simp *S, expr **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!v[i]) {
      S->failed = true;
      return NULL;
    }
  md_nf_sort_terms(S->N, v, n);
  size_t first = 0;
  while (first < n && negative(v[first]))
    first++;
  if (first > 0 && first < n) {
    expr *t = v[first];
    memmove(v + 1, v, first * sizeof *v);
    v[0] = t;
  }
  return built(S, expr_add_n(S->ctx, v, n));
}

/* ---- presentation ---- */

static expr *present(simp *S, expr *n);

/* Whether E has no transpose inside: then its transpose, which has one on
 * every leaf that is not symmetric, is never written shorter, and the
 * forms below do not try it (a where chain of element-wise functions of
 * a vector was presented twice over, as itself and as its transpose). */
static bool no_trans(const expr *e) {
  return e->flags & EF_NO_TRANS;
}

/* Whether N's transpose is a form worth trying: N is no scalar (its own
 * transpose) and has a transpose inside (the flag first: is_scalar
 * derives a shape). */
static bool transposable(simp *S, expr *n) {
  return !no_trans(n) && !is_scalar(S, n);
}

/* A term of a sum taken apart, and its normal form kept. */
typedef struct part {
  expr *t; /* the normal term */
  mpq_t c;
  md_nf_parts p;
} part;

static void parts_of(simp *S, expr *sum, part *tp) {
  for (size_t i = 0; i < sum->nkids; i++) {
    tp[i].t = sum->kid[i];
    mpq_init(tp[i].c);
    md_nf_split(S->N, sum->kid[i], tp[i].c, &tp[i].p);
  }
}

static void parts_clear(part *tp, size_t n) {
  for (size_t i = 0; i < n; i++) {
    mpq_clear(tp[i].c);
    md_nf_parts_clear(&tp[i].p);
  }
}

static expr *smaller(simp *S, expr *best, expr *cand);

/* A trace of a chain this long or shorter is cut anywhere to be written as
 * an inner product (present_inner). */
enum { MAX_INNER_CUTS = 8 };

/* A coefficient shared by some terms of a sum is taken out for at most
 * this many coefficients (partial_content). */
enum { MAX_GROUPS = 4 };

/* Which run a presented chain factor X can join: 1 transposes (X^-T as
 * (X^-1)^T), 2 inverses, 0 none; *IN is what the run holds of it. */
static int run_kind(simp *S, expr *x, expr **in, bool *soft) {
  *soft = false;
  if (x && x->op == E_TRANS) {
    *in = x->kid[0];
    return 1;
  }
  if (x && x->op == E_CALL && x->nkids == 1 && x->kid[0]->op == E_TRANS &&
      md_fn_get(S->ctx, x->u.fn)->cls == FC_ELEMWISE) {
    /* f(X^T) = f(X)^T for an element-wise f: a transpose in a run of
     * them, alone it stays as it is (*SOFT) */
    *in = built(S, expr_call1(S->ctx, x->u.fn, x->kid[0]->kid[0]));
    *soft = true;
    return *in ? 1 : 0;
  }
  if (x && x->op == E_INV && x->kid[0]->op == E_TRANS) {
    /* (past the size budget none: X^-T stays as it is; run_of read
     * the NULL, a fuzz finding) */
    *in = built(S, expr_inv(S->ctx, x->kid[0]->kid[0]));
    return *in ? 1 : 0;
  }
  if (x && x->op == E_INV) {
    *in = x->kid[0];
    return 2;
  }
  *in = x;
  return 0;
}

/* The run V[0..N) of kind KIND back as one factor: (M N)^T for N^T M^T,
 * (B A)^-1 for A^-1 B^-1 (inverses are square, so B A is one). */
static expr *run_of(simp *S, int kind, expr **v, size_t n) {
  if (n == 1) {
    expr *t = v[0];
    if (kind == 2)
      return built(S, expr_inv(S->ctx, t));
    if (t->op == E_INV) /* X^-T */
      return built(S,
                   expr_inv(S->ctx, built(S, expr_trans(S->ctx, t->kid[0]))));
    return built(S, expr_trans(S->ctx, t));
  }
  for (size_t j = 0; j < n / 2; j++) {
    expr *t = v[j];
    v[j] = v[n - 1 - j];
    v[n - 1 - j] = t;
  }
  expr *m = pmul1(S, v, n);
  if (!m)
    return NULL;
  return built(S, kind == 2 ? expr_inv(S->ctx, m) : expr_trans(S->ctx, m));
}

static void push_presented(simp *S, md_nodes *out, expr *const *f, size_t n);

/* Pushes the presented factors of the matrix chain F[0..N) onto OUT, a
 * run of two or more transposes (X^-T too) or inverses as one:
 * A N^T M^T -> A (M N)^T, X^-T A^T X^-T -> (X^-1 A X^-1)^T,
 * A^-1 B^-1 -> (B A)^-1. */
static void push_chain(simp *S, md_nodes *out, expr *const *f, size_t n) {
  expr **v = xreallocarray(NULL, n ? n : 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = present(S, f[i]);
  push_presented(S, out, v, n);
  free(v);
}

/* The same for factors F[0..N) presented already. */
static void push_presented(simp *S, md_nodes *out, expr *const *f, size_t n) {
  md_nodes run = {0};
  int kind = 0;
  bool soft = false, was_soft = false;
  for (size_t i = 0; i <= n; i++) {
    expr *x = i < n ? f[i] : NULL, *in = NULL;
    int k = run_kind(S, x, &in, &soft);
    if (k && k == kind) {
      md_nodes_push(&run, in);
      continue;
    }
    if (run.n == 1 && was_soft) /* relu(M^T) alone stays */
      md_nodes_push(out, f[i - 1]);
    else if (run.n)
      md_nodes_push(out, run_of(S, kind, run.v, run.n));
    run.n = 0;
    kind = k;
    was_soft = soft;
    if (k)
      md_nodes_push(&run, in);
    else if (i < n)
      md_nodes_push(out, x);
  }
  md_nodes_clear(&run);
}

/* The size of the presented factors V[0..N). */
static size_t sizes(simp *S, expr *const *v, size_t n) {
  size_t z = 0;
  for (size_t i = 0; i < n; i++)
    z += v[i] ? size_of(S, v[i]) : SIZE_MAX / 8;
  return z;
}

/* Pushes the presented factors of the 1×1 run F[0..N) onto OUT, one by
 * one (x^T A^T y, not (A x)^T y) unless push_chain's runs of transposes
 * are shorter: (N u)^T N u. */
static void push_run(simp *S, md_nodes *out, expr *const *f, size_t n) {
  md_nodes a = {0}, b = {0};
  for (size_t j = 0; j < n; j++)
    md_nodes_push(&a, present(S, f[j]));
  push_chain(S, &b, f, n);
  md_nodes *w = sizes(S, b.v, b.n) < sizes(S, a.v, a.n) ? &b : &a;
  for (size_t j = 0; j < w->n; j++)
    md_nodes_push(out, w->v[j]);
  md_nodes_clear(&a);
  md_nodes_clear(&b);
}

/* A normal product taken apart once (md_nf_split) for all the forms
 * present_mul tries: coefficient, scalar items, matrix chain. */
typedef struct split {
  mpq_t c;
  md_nf_parts p;
  const expr *of; /* the product, its sign taken off */
} split;

static void split_of(simp *S, expr *n, split *sp) {
  mpq_init(sp->c);
  md_nf_split(S->N, n, sp->c, &sp->p);
  while (n->op == E_NEG)
    n = n->kid[0];
  sp->of = n;
}

static void split_clear(split *sp) {
  md_nf_parts_clear(&sp->p);
  mpq_clear(sp->c);
}

/* R = Q^(1/K) for an integer K other than 0 when that is rational (a sign
 * only for odd K); false otherwise. */
static bool rational_root(mpq_t r, const mpq_t q, const mpq_t k) {
  if (mpz_cmp_ui(mpq_denref(k), 1) != 0 || !mpz_fits_slong_p(mpq_numref(k)))
    return false;
  long kk = mpz_get_si(mpq_numref(k));
  if (kk == 0)
    return false;
  unsigned long a = kk < 0 ? (unsigned long)-kk : (unsigned long)kk;
  if (mpq_sgn(q) < 0 && a % 2 == 0)
    return false;
  mpz_t n, d;
  mpz_inits(n, d, NULL);
  bool ok = mpz_root(n, mpq_numref(q), a) && mpz_root(d, mpq_denref(q), a);
  if (ok) {
    if (mpq_sgn(q) < 0 && mpz_sgn(n) > 0)
      mpz_neg(n, n);
    mpz_set(mpq_numref(r), kk < 0 ? d : n);
    mpz_set(mpq_denref(r), kk < 0 ? n : d);
    if (mpz_sgn(mpq_denref(r)) < 0) {
      mpz_neg(mpq_denref(r), mpq_denref(r));
      mpz_neg(mpq_numref(r), mpq_numref(r));
    }
    mpq_canonicalize(r);
  }
  mpz_clears(n, d, NULL);
  return ok;
}

/* The size of the sum N as psum writes it (a positive term first). */
static size_t sum_size(simp *S, expr *n) {
  size_t sz = size_of(S, n);
  if (n->op != E_ADD || !negative(n->kid[0]))
    return sz;
  for (size_t i = 1; i < n->nkids; i++)
    if (!negative(n->kid[i]))
      return sz - 1; /* y - x, not -x + y */
  return sz;
}

/* F with the factor Q taken in, or NULL when F takes none: a sum scaled,
 * or an operand of a node linear in it (tr, sum, diag, vec, a transpose,
 * a factor of a product, .* or kron, the numerator of ./) taking Q in
 * turn, the denominator of ./ or an inverse taking 1/Q, a k-th power the
 * k-th root of Q when that is rational:
 * -(y - z) = z - y, -x .* (y - z) = x .* (z - y),
 * 1/2 (z .* (z + 2 w)) = z .* (1/2 z + w).  The result is built as it
 * stands: the normal form would take the factor out again. */
static expr *scaled_inside(simp *S, expr *f, const mpq_t q, int depth,
                           long *gain) {
  if (!may_try(S))
    return NULL; /* past the budget: the coefficient stays outside */
  if (f->op == E_ADD && expr_whole(f))
    return NULL; /* and outside a long sum, which stays whole (expr.h):
                  * taken inside, it went on into the long sums in it,
                  * each scaled anew, as deep as a where chain */
  if (f->op == E_ADD) {
    expr *r = md_nf_scale(S->N, q, f);
    if (!r || !built(S, r))
      return NULL;
    /* as the two will be written (a sum that comes to start with a
     * positive term gains, and so may one whose own products take the
     * sign in turn) */
    bool was = S->failed;
    expr *a = may_try(S) && !was ? present(S, f) : NULL;
    expr *b = a ? present(S, r) : NULL;
    S->failed = was; /* only the estimate is lost */
    if (a && b)
      *gain = (long)size_of(S, a) - (long)size_of(S, b);
    else
      *gain = (long)sum_size(S, f) - (long)sum_size(S, r);
    return r;
  }
  if (depth >= MAX_SIGN_DEPTH)
    return NULL;
  size_t nk = 0; /* operands that may take it */
  mpq_t qi;      /* ... as this */
  mpq_init(qi);
  mpq_set(qi, q);
  switch ((expr_op)f->op) {
  case E_CALL:
    if (f->nkids == 1 && (f->u.fn == FN_TR || f->u.fn == FN_SUM ||
                          f->u.fn == FN_DIAG || f->u.fn == FN_VEC))
      nk = 1;
    break;
  case E_TRANS:
    nk = 1;
    break;
  case E_INV:
    nk = 1;
    mpq_inv(qi, q);
    break;
  case E_POW: /* (b^k) q = (b q^(1/k))^k when q has a rational k-th root */
    if (f->kid[1]->op == E_NUM && rational_root(qi, q, f->kid[1]->u.num))
      nk = 1;
    break;
  case E_MUL:
  case E_HAD:
  case E_HDIV:
  case E_KRON: /* linear in each operand: one takes it */
    /* the first few: each may nest more, and every operand of every
     * level tried was a product of their numbers (a Kronecker tower of
     * 4096 operands a level, past the budget: minutes) */
    nk = f->nkids < 2 * MAX_SIGN_IN ? f->nkids : 2 * MAX_SIGN_IN;
    break;
  default:
    break;
  }
  /* of the operands that can take it, the one whose sum gains most (as
   * it will be written: a sum that comes to start with a positive term
   * gains) */
  expr *best = NULL;
  for (size_t i = 0; i < nk; i++) {
    mpq_t qk;
    mpq_init(qk);
    if (f->op == E_HDIV && i > 0)
      mpq_inv(qk, qi);
    else
      mpq_set(qk, qi);
    long g = 0;
    expr *a = scaled_inside(S, f->kid[i], qk, depth + 1, &g);
    mpq_clear(qk);
    if (!a || (best && g <= *gain))
      continue;
    expr *small[4];
    expr **k = f->nkids <= 4 ? small : xreallocarray(NULL, f->nkids, sizeof *k);
    memcpy(k, f->kid, f->nkids * sizeof *k);
    k[i] = a;
    expr *r = expr_rebuild(S->ctx, f, k);
    if (k != small)
      free(k);
    if (r && built(S, r)) {
      best = r;
      *gain = g;
    }
  }
  mpq_clear(qi);
  return best;
}

/* Presents the product SP with coefficient C and, when AT is a factor's
 * index (items, then chain), that factor replaced by WITH: the
 * coefficient, scalars and chain; scalar inverses go under a quotient
 * (A / alpha). */
static expr *present_parts(simp *S, const split *sp, size_t at, expr *with,
                           const mpq_t c0) {
  mpq_t c;
  mpq_init(c);
  mpq_set(c, c0);
  md_nf_parts p = sp->p;
  expr *small[8], **copy = small;
  if (at < p.nitem + p.nchain) { /* sp's arrays stay as they are */
    bool item = at < p.nitem;
    size_t n = item ? p.nitem : p.nchain;
    copy = scratch_array(small, 8, n, sizeof *copy);
    memcpy(copy, item ? p.item : p.chain, n * sizeof *copy);
    copy[item ? at : at - p.nitem] = with;
    if (item)
      p.item = copy;
    else
      p.chain = copy;
  }
  md_nodes num = {0}, den = {0};
  for (size_t i = 0; i < p.nitem; i++) {
    expr *t = p.item[i];
    /* a 1×1 run, factor by factor; a long one as one factor (but the
     * product itself, split into itself: u^T A1 ... A20 v) */
    if (t->op == E_MUL && (!expr_whole(t) || t == sp->of)) {
      push_run(S, &num, t->kid, t->nkids);
    } else if (t->op == E_INV && t->kid[0]->op != E_NUM) {
      md_nodes_push(&den, present(S, t->kid[0]));
    } else if (t->op == E_POW && t->kid[0]->op == E_INV) {
      expr *b = present(S, t->kid[0]->kid[0]);
      md_nodes_push(&den, b ? built(S, expr_pow(S->ctx, b, t->kid[1])) : NULL);
    } else {
      md_nodes_push(&num, present(S, t));
    }
  }
  push_chain(S, &num, p.chain, p.nchain);
  expr *r;
  bool unit = md_q_unit(c) != 0;
  if (den.n && (num.n || !unit)) {
    bool neg = mpq_sgn(c) < 0;
    mpq_abs(c, c);
    expr *a = pmul(S, c, num.v, num.n);
    expr *b = pmul1(S, den.v, den.n);
    r = a && b ? built(S, expr_div(S->ctx, a, b)) : NULL;
    if (r && neg)
      r = built(S, expr_neg(S->ctx, r));
  } else {
    /* alpha^-1 and -(1 + alpha)^-2 alone stay as they are */
    for (size_t i = 0; i < den.n; i++) {
      expr *d = den.v[i], *b = d && d->op == E_POW ? d->kid[0] : d;
      expr *v = b ? built(S, expr_inv(S->ctx, b)) : NULL;
      if (v && d->op == E_POW) /* b^-k, not b^k^-1 */
        v = built(S, expr_pow(S->ctx, v, d->kid[1]));
      md_nodes_push(&num, v);
    }
    r = pmul(S, c, num.v, num.n);
  }
  md_nodes_clear(&num);
  md_nodes_clear(&den);
  scratch_free(copy, small);
  mpq_clear(c);
  return r;
}

static bool has_shape(simp *S, expr *e);

/* (C)^T with the sign and the leading scalars of the presented product C
 * written outside, -2 alpha (M N)^T rather than (-2 alpha M N)^T; WHOLE
 * when there are none (or the rest would not be a product). */
static expr *scalars_outside(simp *S, expr *c, expr *whole) {
  bool neg = c->op == E_NEG;
  expr *p = neg ? c->kid[0] : c;
  size_t k = 0;
  if (p->op == E_MUL)
    while (k + 2 <= p->nkids && is_scalar(S, p->kid[k]))
      k++;
  expr *r;
  if (k == 0) {
    r = neg ? built(S, expr_trans(S->ctx, p)) : whole;
  } else {
    expr *rest = built(S, expr_mul_n(S->ctx, p->kid + k, p->nkids - k));
    expr *t = rest ? built(S, expr_trans(S->ctx, rest)) : NULL;
    expr **v = xreallocarray(NULL, k + 1, sizeof *v);
    memcpy(v, p->kid, k * sizeof *v);
    v[k] = t;
    r = t ? built(S, expr_mul_n(S->ctx, v, k + 1)) : NULL;
    free(v);
  }
  if (r && neg)
    r = built(S, expr_neg(S->ctx, r));
  return r && has_shape(S, r) ? r : whole;
}

/* The base of F as a power with integer exponent *K: b^k, b^-1, b^-k
 * (F itself with k = 1 when F is no power). */
static expr *power_base(expr *f, long *k) {
  *k = 1;
  if (f->op == E_INV) {
    *k = -1;
    return f->kid[0];
  }
  if (f->op == E_POW && f->kid[1]->op == E_NUM &&
      mpz_cmp_ui(mpq_denref(f->kid[1]->u.num), 1) == 0 &&
      mpz_fits_slong_p(mpq_numref(f->kid[1]->u.num))) {
    *k = mpz_get_si(mpq_numref(f->kid[1]->u.num));
    if (f->kid[0]->op == E_INV) {
      *k = -*k;
      return f->kid[0]->kid[0];
    }
    return f->kid[0];
  }
  return f;
}

/* The greatest common divisor of A and B (gcd(0, b) = b). */
static long gcd(long a, long b) {
  while (b) {
    long t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* The factor I of the product P. */
static expr *factor_at(const md_nf_parts *p, size_t i) {
  return i < p->nitem ? p->item[i] : p->chain[i - p->nitem];
}

/* The normal product SP as a power with the exponent K, every factor's
 * own exponent a multiple of K: 1/4 alpha^-2 X^-2 -> (2 alpha X)^-2,
 * beta^-2 X^2 -> (X / beta)^2; NULL when its coefficient has no rational
 * K-th root, or when a matrix would have a negative exponent inside a
 * negative one: X^4 / beta^2, not (beta X^-2)^-2. */
static expr *power_with(simp *S, const split *sp, long k) {
  const md_nf_parts *p = &sp->p;
  size_t nf = p->nitem + p->nchain;
  mpq_t b, kq;
  mpq_inits(b, kq, NULL);
  mpq_set_si(kq, k, 1);
  expr *r = NULL;
  if (!rational_root(b, sp->c, kq)) {
    mpq_clears(b, kq, NULL);
    return NULL;
  }
  /* the base: the factors with exponent ki / k, those of the scalars
   * that are negative under a quotient, (alpha X^2 / beta)^2 */
  md_nodes base = {0}, under = {0};
  md_nodes_push(&base, expr_num(S->ctx, b));
  mpq_clears(b, kq, NULL);
  bool ok = true;
  for (size_t i = 0; i < nf && ok; i++) {
    long ki, kg;
    expr *f = power_base(factor_at(p, i), &ki);
    long q = ki / k;
    if (i < p->nitem && q < 0) {
      md_nodes_push(&under,
                    q == -1 ? f : expr_pow(S->ctx, f, expr_int(S->ctx, -q)));
      continue;
    }
    expr *g = q == 1 ? f : md_nf_pow(S->N, f, q);
    /* not a matrix with a negative exponent inside a negative one:
     * X^4 / beta^2, not (beta X^-2)^-2 */
    ok = g && !(k < 0 && power_base(g, &kg) != g && kg < 0);
    md_nodes_push(&base, g);
  }
  /* the base as a normal product, presented as any product is (a sign
   * goes into a sum: (alpha (D - A))^-3) */
  expr *nb = ok ? md_nf_mul(S->N, base.v, base.n) : NULL;
  expr *m = NULL;
  if (nb && may_try(S)) {
    S->nest++;
    m = present(S, nb);
    S->nest--;
  }
  if (m && under.n) {
    expr **v = xreallocarray(NULL, under.n, sizeof *v);
    for (size_t i = 0; i < under.n; i++)
      v[i] = present(S, under.v[i]);
    expr *d = S->failed ? NULL : pmul1(S, v, under.n);
    free(v);
    m = d ? built(S, expr_div(S->ctx, m, d)) : NULL;
  }
  if (m && k == -1)
    r = built(S, expr_inv(S->ctx, m));
  else if (m && k < 0 && (m = built(S, expr_inv(S->ctx, m))))
    r = built(S, expr_pow(S->ctx, m, expr_int(S->ctx, -k)));
  else if (m)
    r = built(S, expr_pow(S->ctx, m, expr_int(S->ctx, k)));
  md_nodes_clear(&base);
  md_nodes_clear(&under);
  return r;
}

/* A normal product whose factors are all powers (at most one of them a
 * matrix, so that they commute) as a power of a product: with their one
 * exponent k ((M N)^-1 / beta -> (beta M N)^-1), or with the greatest
 * common divisor g >= 2 of their exponents, as g or as -g, whichever is
 * shorter (tr(A)^-2 X^-6 -> (tr(A) X^3)^-2); NULL when it is none. */
static expr *power_of(simp *S, const split *sp) {
  const md_nf_parts *p = &sp->p;
  size_t nf = p->nitem + p->nchain;
  if (p->nchain > 1 || nf == 0)
    return NULL;
  long k0 = 0, g = 0;
  bool same = true;
  for (size_t i = 0; i < nf; i++) {
    long ki;
    power_base(factor_at(p, i), &ki);
    if (ki == 0 || ki == LONG_MIN)
      return NULL;
    if (i == 0)
      k0 = ki;
    same = same && ki == k0;
    g = gcd(g, ki < 0 ? -ki : ki);
  }
  if (same && k0 != 1)
    return power_with(S, sp, k0);
  if (g < 2)
    return NULL;
  return smaller(S, power_with(S, sp, g), power_with(S, sp, -g));
}

/* The same for a normal product N (a part of one, present_power_part). */
static expr *present_power(simp *S, expr *n) {
  split sp;
  split_of(S, n, &sp);
  expr *r = power_of(S, &sp);
  split_clear(&sp);
  return r;
}

/* Some factors of the normal product N as a power, the others outside:
 * ||D||_1 (M N)^-2 / beta^2 -> ||D||_1 (beta M N)^-2.  The power is that
 * of a matrix factor of the chain, which the power replaces; the scalars
 * with that exponent (or its negative) go in, with the coefficient or
 * without.  NULL when there is nothing to group. */
static expr *present_power_part(simp *S, const split *sp) {
  mpq_srcptr c = sp->c;
  const md_nf_parts p = sp->p;
  mpq_t one;
  mpq_init(one);
  mpq_set_ui(one, 1, 1);
  expr *best = NULL;
  for (size_t j = 0; j < p.nchain && j < MAX_GROUPS && !S->failed; j++) {
    long kc;
    power_base(p.chain[j], &kc);
    if (kc == 1 || kc == 0)
      continue;
    md_nodes in = {0}, out = {0};
    for (size_t i = 0; i < p.nitem; i++) {
      long ki;
      expr *b = power_base(p.item[i], &ki);
      /* only a symbol goes in: a sum or a function would hide a
       * quotient, 2 Sigma^-1 t / (nu + t^T Sigma^-1 t), not
       * 2 ((nu + t^T Sigma^-1 t) Sigma)^-1 t */
      bool fits =
          b->op == E_SYM && (ki == kc || (ki == -kc && (kc > 1 || kc < -1)));
      md_nodes_push(fits ? &in : &out, p.item[i]);
    }
    md_nodes_push(&in, p.chain[j]);
    for (int withc = 0; in.n >= 2 && withc < 2 && !S->failed; withc++) {
      md_nodes g = {0};
      md_nodes_push(&g, expr_num(S->ctx, withc ? c : one));
      for (size_t i = 0; i < in.n; i++)
        md_nodes_push(&g, in.v[i]);
      expr *group = md_nf_mul(S->N, g.v, g.n);
      md_nodes_clear(&g);
      expr *pw = group && group->op == E_MUL ? present_power(S, group) : NULL;
      if (!pw || (withc && !out.n && p.nchain == 1))
        continue; /* (all of it: present_power's own form) */
      md_nodes f = {0}, ch = {0};
      for (size_t i = 0; i < out.n; i++)
        md_nodes_push(&f, present(S, out.v[i]));
      for (size_t i = 0; i < p.nchain; i++)
        md_nodes_push(&ch, i == j ? pw : present(S, p.chain[i]));
      push_presented(S, &f, ch.v, ch.n); /* (M N)^T as one */
      best = smaller(S, best, pmul(S, withc ? one : c, f.v, f.n));
      md_nodes_clear(&f);
      md_nodes_clear(&ch);
    }
    md_nodes_clear(&in);
    md_nodes_clear(&out);
  }
  mpq_clear(one);
  return best;
}

/* The factors of a 1×1 chain F[0..N) the other way round, transposed,
 * pushed onto OUT; false if one has no transpose. */
static bool push_reversed(simp *S, md_nodes *out, expr *const *f, size_t n) {
  expr **t = xreallocarray(NULL, n, sizeof *t);
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++)
    ok = (t[i] = md_nf_trans(S->N, f[n - 1 - i])) != NULL;
  if (ok) /* as present_parts writes a run */
    push_run(S, out, t, n);
  free(t);
  return ok;
}

/* Pushes onto OUT the presented factors of the 1×1 chain F[0..N), as
 * they stand or the other way round, whichever is shorter; true when the
 * other way. */
static bool push_oriented(simp *S, md_nodes *out, expr *const *f, size_t n) {
  md_nodes a = {0}, b = {0};
  push_run(S, &a, f, n);
  bool rev =
      push_reversed(S, &b, f, n) && sizes(S, b.v, b.n) < sizes(S, a.v, a.n);
  md_nodes *w = rev ? &b : &a;
  for (size_t j = 0; j < w->n; j++)
    md_nodes_push(out, w->v[j]);
  md_nodes_clear(&a);
  md_nodes_clear(&b);
  return rev;
}

/* The normal product N with its 1×1 runs (and its chain, when N is 1×1)
 * written the other way round where that is shorter: x^T A^T y ->
 * y^T A x (the normal form picks one orientation for every scalar).
 * Scalar inverses stay as they are; NULL when nothing turns. */
static expr *present_reversed(simp *S, expr *n, const split *sp) {
  mpq_srcptr c = sp->c;
  const md_nf_parts p = sp->p;
  md_nodes f = {0};
  bool turned = false;
  for (size_t i = 0; i < p.nitem && !S->failed; i++) {
    expr *t = p.item[i];
    if (t->op == E_MUL && (!expr_whole(t) || t == sp->of))
      turned |= push_oriented(S, &f, t->kid, t->nkids);
    else
      md_nodes_push(&f, present(S, t));
  }
  if (p.nchain >= 2 && is_scalar(S, n))
    turned |= push_oriented(S, &f, p.chain, p.nchain);
  else
    push_chain(S, &f, p.chain, p.nchain);
  expr *r = turned && !S->failed ? pmul(S, c, f.v, f.n) : NULL;
  md_nodes_clear(&f);
  return r && has_shape(S, r) ? r : NULL;
}

/* A scalar product with one trace or sum among its factors as that trace
 * or sum of the product of the others with its operand, when shorter:
 * tr((M N)^-2) / beta^2 -> tr((beta M N)^-2).  NULL when N is none. */
static expr *present_into_call(simp *S, const split *sp) {
  mpq_srcptr c = sp->c;
  const md_nf_parts p = sp->p;
  expr *r = NULL;
  size_t at = p.nitem;
  for (size_t i = 0; i < p.nitem; i++) {
    expr *t = p.item[i];
    if (t->op == E_CALL && t->nkids == 1 &&
        (t->u.fn == FN_TR || t->u.fn == FN_SUM)) {
      if (at != p.nitem) {
        at = p.nitem; /* two: which would be arbitrary */
        break;
      }
      at = i;
    }
  }
  if (at < p.nitem && p.nchain == 0 && p.nitem >= 2 && may_try(S)) {
    md_nodes f = {0};
    md_nodes_push(&f, expr_num(S->ctx, c));
    for (size_t i = 0; i < p.nitem; i++)
      if (i != at)
        md_nodes_push(&f, p.item[i]);
    md_nodes_push(&f, p.item[at]->kid[0]);
    expr *m = md_nf_mul(S->N, f.v, f.n);
    md_nodes_clear(&f);
    S->nest++;
    expr *pm = m ? present(S, m) : NULL;
    S->nest--;
    if (pm)
      r = built(S, expr_call1(S->ctx, p.item[at]->u.fn, pm));
  }
  return r && has_shape(S, r) ? r : NULL;
}

/* The product SP presented with its coefficient in front, or with the
 * sign, or the coefficient, in one of the first few factors that take it
 * (on a tie, the sign alone; for -1 they are one), whichever is
 * shortest; the coefficient may be hidden in a factor that is not in
 * normal form. */
static expr *coefficient_in(simp *S, const split *sp) {
  expr *r = present_parts(S, sp, SIZE_MAX, NULL, sp->c);
  bool sign = mpq_cmp_si(sp->c, -1, 1) == 0;
  mpq_t q, rest;
  mpq_init(q);
  mpq_init(rest);
  /* (a coefficient of 0, as the transpose of a product that is 0 in
   * normal form can have, goes nowhere: 1/q below) */
  for (int k = 0; k < (sign ? 1 : 2) && mpq_cmp_ui(sp->c, 1, 1) != 0 &&
                  mpq_sgn(sp->c) != 0;
       k++) {
    if (k == 1) /* the whole coefficient: (1/2 - beta) N */
      mpq_set(q, sp->c);
    else
      mpq_set_si(q, mpq_sgn(sp->c) < 0 ? -1 : 1, 1); /* S^2 (z - ones) */
    if (mpq_cmp_ui(q, 1, 1) == 0)
      continue;
    md_q_div(rest, sp->c, q);
    size_t nf = sp->p.nitem + sp->p.nchain, taken = 0;
    for (size_t i = 0; i < nf && taken < MAX_SIGN_IN && r; i++) {
      long gain;
      expr *g = scaled_inside(S, factor_at(&sp->p, i), q, 0, &gain);
      if (!g)
        continue;
      taken++;
      r = smaller(S, r, present_parts(S, sp, i, g, rest));
    }
  }
  mpq_clear(q);
  mpq_clear(rest);
  return r;
}

/* What the coefficient C adds to a product's text: a number unless 1, a
 * sign when negative. */
static long coef_cost(const mpq_t c) {
  return (md_q_unit(c) == 0) + (mpq_sgn(c) < 0);
}

/* The product SP with its coefficient shared out among its sum factors,
 * each taking the scale that writes it (and what is left of the
 * coefficient) shortest, among those that make one of its terms' own
 * coefficient 1 or -1: -1/4 (1 - 2 beta) (1 + 2 beta) ->
 * (1/2 - beta) (1/2 + beta).  NULL when it has fewer than two sums (one
 * takes the coefficient in coefficient_in). */
static expr *coefficient_shared(simp *S, const split *sp) {
  size_t nf = sp->p.nitem + sp->p.nchain, nsum = 0;
  for (size_t i = 0; i < nf; i++)
    nsum += factor_at(&sp->p, i)->op == E_ADD;
  if (nsum < 2 || S->nest >= MAX_NEST)
    return NULL;
  split s2;
  mpq_init(s2.c);
  mpq_set(s2.c, sp->c);
  s2.p = sp->p;
  expr **item = xreallocarray(NULL, sp->p.nitem + 1, sizeof *item);
  expr **chain = xreallocarray(NULL, sp->p.nchain + 1, sizeof *chain);
  if (sp->p.nitem) /* (an empty list may be NULL) */
    memcpy(item, sp->p.item, sp->p.nitem * sizeof *item);
  if (sp->p.nchain)
    memcpy(chain, sp->p.chain, sp->p.nchain * sizeof *chain);
  s2.p.item = item;
  s2.p.chain = chain;
  mpq_t q, a, rest;
  mpq_inits(q, a, rest, NULL);
  bool was = S->failed, changed = false;
  S->nest++;
  for (size_t i = 0, seen = 0; i < nf && seen < MAX_SIGN_IN && !S->failed;
       i++) {
    expr *f = factor_at(&s2.p, i);
    if (f->op != E_ADD)
      continue;
    seen++;
    expr *pf = present(S, f), *best = f;
    long cost = pf ? (long)size_of(S, pf) + coef_cost(s2.c) : LONG_MAX;
    mpq_set_ui(rest, 1, 1); /* the scale taken */
    for (size_t j = 0; j < 2 * f->nkids && j < 2 * MAX_SIGN_IN; j++) {
      expr *b;
      md_nf_coef(S->N, f->kid[j / 2], a, &b);
      if (mpq_sgn(a) == 0)
        continue;
      mpq_inv(q, a);
      if (j % 2)
        mpq_neg(q, q);
      expr *g = md_nf_scale(S->N, q, f);
      expr *pg = g ? present(S, g) : NULL;
      if (!pg)
        break;
      md_q_div(a, s2.c, q);
      long cg = (long)size_of(S, pg) + coef_cost(a);
      if (cg < cost) {
        cost = cg;
        best = g;
        mpq_set(rest, q);
      }
    }
    if (best != f) {
      md_q_div(s2.c, s2.c, rest);
      if (i < s2.p.nitem)
        item[i] = best;
      else
        chain[i - s2.p.nitem] = best;
      changed = true;
    }
  }
  expr *r = changed && !S->failed ? present_parts(S, &s2, SIZE_MAX, NULL, s2.c)
                                  : NULL;
  S->nest--;
  S->failed = was; /* only this form is lost */
  mpq_clears(q, a, rest, s2.c, NULL);
  free(item);
  free(chain);
  return r;
}

/* A product whose one matrix factor is a Hadamard or Kronecker product,
 * with its scalars (and its coefficient, or not) in one operand of it,
 * when shorter: -beta^-3 (I .* S^3) -> -I .* (S / beta)^3.  NULL when N
 * is none. */
static expr *present_into_elem(simp *S, const split *sp) {
  const md_nf_parts *p = &sp->p;
  if (p->nchain != 1 || p->nitem == 0 || S->nest >= MAX_NEST)
    return NULL;
  expr *h = p->chain[0];
  if (h->op != E_HAD && h->op != E_KRON)
    return NULL;
  mpq_t one;
  mpq_init(one);
  mpq_set_ui(one, 1, 1);
  expr *best = NULL;
  bool was = S->failed;
  S->nest++;
  expr **k = xreallocarray(NULL, h->nkids, sizeof *k);
  bool unit = mpq_cmp_ui(sp->c, 1, 1) == 0;
  for (size_t j = 0; j < h->nkids && j < MAX_GROUPS; j++) {
    /* the coefficient outside, with the scalars, or in another operand
     * that takes it: (alpha M N)^2 .* (N^T M^T - M N .* (M N)) */
    for (int withc = 0; withc < 3; withc++) {
      if (withc && unit)
        continue;
      md_nodes f = {0};
      md_nodes_push(&f, expr_num(S->ctx, withc == 1 ? sp->c : one));
      for (size_t i = 0; i < p->nitem; i++)
        md_nodes_push(&f, p->item[i]);
      md_nodes_push(&f, h->kid[j]);
      expr *m = md_nf_mul(S->N, f.v, f.n);
      md_nodes_clear(&f);
      size_t took = h->nkids;
      for (size_t i = 0; withc == 2 && i < h->nkids && took == h->nkids; i++) {
        long gain;
        expr *g = i == j ? NULL : scaled_inside(S, h->kid[i], sp->c, 0, &gain);
        if (g) {
          took = i;
          k[i] = present(S, g);
        }
      }
      if (withc == 2 && took == h->nkids)
        continue;
      for (size_t i = 0; i < h->nkids; i++)
        if (i != took)
          k[i] = present(S, i == j ? m : h->kid[i]);
      expr *e =
          S->failed ? NULL : built(S, expr_make(S->ctx, h->op, k, h->nkids));
      if (e && !withc)
        e = pmul(S, sp->c, &e, 1);
      if (S->failed)
        S->failed = was; /* only this form is lost */
      else
        best = smaller(S, best, e && has_shape(S, e) ? e : NULL);
    }
  }
  free(k);
  S->nest--;
  mpq_clear(one);
  return best;
}

/* ... or as the transpose of a product, when that is shorter:
 * N^T M^T -> (M N)^T, X^-T A^T B^T X^-T -> (X^-1 B A X^-1)^T. */
static expr *present_mul(simp *S, expr *n) {
  split sp;
  split_of(S, n, &sp);
  expr *r = coefficient_in(S, &sp);
  expr *t = n;
  while (t->op == E_NEG)
    t = t->kid[0];
  if (r && (t->op == E_MUL || n->op == E_NEG))
    r = smaller(S, smaller(S, r, power_of(S, &sp)), present_power_part(S, &sp));
  if (r && t->op == E_MUL && may_try(S)) {
    S->nest++;
    r = smaller(S, r, present_reversed(S, n, &sp));
    r = smaller(S, r, present_into_call(S, &sp));
    r = smaller(S, r, present_into_elem(S, &sp));
    r = smaller(S, r, coefficient_shared(S, &sp));
    S->nest--;
  }
  split_clear(&sp);
  if (r && (t->op == E_MUL || n->op == E_NEG) && transposable(S, n) &&
      may_try(S)) {
    expr *tt = md_nf_trans(S->N, n);
    /* (a transpose that is a number, 0, is no form of N to present:
     * n = pk (x .* (ones - 1))^T, whose transpose the normal form sees
     * is 0) */
    if (tt && tt != n && tt->op != E_NUM) {
      S->nest++;
      split st;
      split_of(S, tt, &st);
      expr *c = coefficient_in(S, &st);
      split_clear(&st);
      S->nest--;
      expr *whole = c ? built(S, expr_trans(S->ctx, c)) : NULL;
      if (whole && smaller(S, r, whole) == whole)
        r = scalars_outside(S, c, whole);
    }
  }
  return r;
}

static expr *present_core(simp *S, expr *n);

/* Presents the plain sum: each term on its own. */
static expr *plain_sum(simp *S, expr *n) {
  expr *small[8];
  expr **v = scratch_array(small, 8, n->nkids, sizeof *v);
  for (size_t i = 0; i < n->nkids; i++)
    v[i] = present(S, n->kid[i]);
  expr *r = psum(S, v, n->nkids);
  scratch_free(v, small);
  return r;
}

/* The normal product c items chain[lo..hi) (I when only scalars are left
 * of a matrix). */
static expr *rest_of(simp *S, part *t, size_t lo, size_t hi, bool ident) {
  md_nodes f = {0};
  md_nodes_push(&f, expr_num(S->ctx, t->c));
  for (size_t i = 0; i < t->p.nitem; i++)
    md_nodes_push(&f, t->p.item[i]);
  for (size_t i = lo; i < hi; i++)
    md_nodes_push(&f, t->p.chain[i]);
  if (lo == hi && ident)
    md_nodes_push(&f, expr_ident(S->ctx));
  expr *r = md_nf_mul(S->N, f.v, f.n);
  md_nodes_clear(&f);
  if (!r)
    S->failed = true;
  return r;
}

/* Factors common right (RIGHT) or left factors out of groups of terms:
 * A^T x + A x -> (A + A^T) x.  NULL when no two terms share one. */
static expr *grouped(simp *S, part *tp, size_t n, bool right) {
  /* group[i]: the group of term i, by its outermost chain factor */
  size_t gsmall[8], csmall[9];
  size_t *group = scratch_array(gsmall, 8, n, sizeof *group);
  size_t *count = scratch_array(csmall, 9, n + 1, sizeof *count);
  memset(count, 0, (n + 1) * sizeof *count);
  size_t ngroups = 0;
  bool any = false;
  md_idmap ids;
  md_idmap_init(&ids);
  for (size_t i = 0; i < n; i++) {
    md_nf_parts *p = &tp[i].p;
    group[i] = SIZE_MAX;
    if (!p->nchain ||
        (p->nchain == 1 && p->chain[0]->op == E_IDENT && !p->nitem))
      continue;
    expr *k = right ? p->chain[p->nchain - 1] : p->chain[0];
    size_t g = md_idmap_get(&ids, k);
    if (!g)
      md_idmap_put(&ids, k, g = ++ngroups);
    group[i] = g - 1;
    any |= ++count[group[i]] >= 2;
  }
  md_idmap_clear(&ids);
  expr *r = NULL;
  if (any) {
    /* the terms bucketed by group, in their order: group g holds
     * member[start[g] .. start[g] + count[g]) */
    size_t *start = xcalloc(ngroups + 1, sizeof *start);
    size_t *member = xreallocarray(NULL, n, sizeof *member);
    for (size_t g = 0; g < ngroups; g++)
      start[g + 1] = start[g] + count[g];
    size_t *fill = xreallocarray(NULL, ngroups + 1, sizeof *fill);
    memcpy(fill, start, (ngroups + 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++)
      if (group[i] != SIZE_MAX)
        member[fill[group[i]]++] = i;
    free(fill);
    md_nodes out = {0};
    for (size_t i = 0; i < n; i++) {
      if (group[i] == SIZE_MAX || count[group[i]] < 2) {
        md_nodes_push(&out, present(S, tp[i].t));
        continue;
      }
      size_t *mem = member + start[group[i]], m = count[group[i]];
      if (mem[0] != i)
        continue; /* done with its group's first term */
      size_t minlen = SIZE_MAX;
      for (size_t k = 0; k < m; k++)
        if (tp[mem[k]].p.nchain < minlen)
          minlen = tp[mem[k]].p.nchain;
      /* the longest common run of factors on that side */
      size_t L = 1;
      for (; L < minlen; L++) {
        md_nf_parts *p0 = &tp[mem[0]].p;
        expr *f0 = right ? p0->chain[p0->nchain - 1 - L] : p0->chain[L];
        bool same = true;
        for (size_t k = 1; k < m && same; k++) {
          md_nf_parts *pk = &tp[mem[k]].p;
          same = (right ? pk->chain[pk->nchain - 1 - L] : pk->chain[L]) == f0;
        }
        if (!same)
          break;
      }
      bool ident = false; /* does some remainder keep a matrix factor? */
      for (size_t k = 0; k < m; k++)
        ident |= tp[mem[k]].p.nchain > L;
      md_nodes rem = {0};
      for (size_t k = 0; k < m; k++) {
        part *t = &tp[mem[k]];
        size_t nc = t->p.nchain;
        md_nodes_push(&rem, right ? rest_of(S, t, 0, nc - L, ident)
                                  : rest_of(S, t, L, nc, ident));
      }
      expr *inner = S->failed ? NULL : md_nf_sum(S->N, rem.v, rem.n);
      md_nodes_clear(&rem);
      if (!inner) {
        S->failed = true;
        break;
      }
      md_nodes f = {0};
      md_nf_parts *p0 = &tp[mem[0]].p;
      if (!right)
        for (size_t k = 0; k < L; k++)
          md_nodes_push(&f, present(S, p0->chain[k]));
      md_nodes_push(&f, present(S, inner));
      if (right)
        for (size_t k = p0->nchain - L; k < p0->nchain; k++)
          md_nodes_push(&f, present(S, p0->chain[k]));
      md_nodes_push(&out, pmul1(S, f.v, f.n));
      md_nodes_clear(&f);
    }
    if (!S->failed)
      r = psum(S, out.v, out.n);
    md_nodes_clear(&out);
    free(member);
    free(start);
  }
  scratch_free(group, gsmall);
  scratch_free(count, csmall);
  return r;
}

/* Common rational and scalar factors out: 2 A + 2 B -> 2 (A + B).  A lone
 * sign stays inside.  NULL when there is nothing to take out. */
static expr *content_out(simp *S, part *tp, size_t n) {
  mpz_t g, l;
  mpz_init(g);
  mpz_init_set_ui(l, 1);
  bool allneg = true;
  for (size_t i = 0; i < n; i++) {
    mpz_gcd(g, g, mpq_numref(tp[i].c));
    mpz_lcm(l, l, mpq_denref(tp[i].c));
    allneg &= mpq_sgn(tp[i].c) < 0;
  }
  mpq_t c;
  mpq_init(c);
  mpq_set_num(c, g);
  mpq_set_den(c, l);
  mpq_canonicalize(c);
  if (allneg)
    mpq_neg(c, c);
  /* scalar items every term has (items of a term are distinct) */
  md_idmap seen;
  md_idmap_init(&seen);
  md_nodes common = {0};
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < tp[i].p.nitem; k++) {
      expr *t = tp[i].p.item[k];
      md_idmap_put(&seen, t, md_idmap_get(&seen, t) + 1);
    }
  for (size_t k = 0; k < tp[0].p.nitem; k++)
    if (md_idmap_get(&seen, tp[0].p.item[k]) == n)
      md_nodes_push(&common, tp[0].p.item[k]);
  md_idmap_clear(&seen);
  expr *r = NULL;
  bool unit = mpz_cmpabs_ui(mpq_numref(c), 1) == 0 &&
              mpz_cmp_ui(mpq_denref(c), 1) == 0; /* 1 or a lone sign */
  if (mpq_sgn(c) != 0 && (common.n || !unit)) {
    md_nodes rem = {0};
    mpq_t q;
    mpq_init(q);
    for (size_t i = 0; i < n; i++) {
      md_nodes f = {0};
      md_q_div(q, tp[i].c, c);
      md_nodes_push(&f, expr_num(S->ctx, q));
      for (size_t k = 0; k < tp[i].p.nitem; k++) {
        bool shared = false;
        for (size_t j = 0; j < common.n && !shared; j++)
          shared = common.v[j] == tp[i].p.item[k];
        if (!shared)
          md_nodes_push(&f, tp[i].p.item[k]);
      }
      for (size_t k = 0; k < tp[i].p.nchain; k++)
        md_nodes_push(&f, tp[i].p.chain[k]);
      md_nodes_push(&rem, md_nf_mul(S->N, f.v, f.n));
      md_nodes_clear(&f);
    }
    expr *inner = md_nf_sum(S->N, rem.v, rem.n);
    if (inner && inner->op == E_ADD) {
      md_nodes f = {0};
      for (size_t j = 0; j < common.n; j++)
        md_nodes_push(&f, present(S, common.v[j]));
      md_nodes_push(&f, present(S, inner));
      r = pmul(S, c, f.v, f.n);
      md_nodes_clear(&f);
    }
    md_nodes_clear(&rem);
    mpq_clear(q);
  }
  md_nodes_clear(&common);
  mpq_clear(c);
  mpz_clear(g);
  mpz_clear(l);
  return r;
}

static bool has_shape(simp *S, expr *e) {
  return md_shape_derive(S->shapes, e) && md_shape_known(S->shapes, e);
}

/* Keeps the smaller of BEST and CAND (BEST on a tie), and one with a
 * shape: a node that holds I and a symbol (I / beta) has one size per
 * inference, and another form may have made it at another size. */
static expr *smaller(simp *S, expr *best, expr *cand) {
  if (!cand)
    return best;
  if (!best)
    return cand;
  bool sb = has_shape(S, best), sc = has_shape(S, cand);
  if (sb != sc)
    return sb ? best : cand;
  return size_of(S, cand) < size_of(S, best) ? cand : best;
}

/* A coefficient shared by some of the terms of a sum out of them:
 * 3/2 S - 3/2 C + I -> 3/2 (S - C) + I (content_out takes a common one
 * out of all).  Terms are grouped by the size of their coefficient, the
 * first MAX_GROUPS sizes tried. */
static expr *partial_content(simp *S, part *tp, size_t n) {
  if (n < 3)
    return NULL;
  expr *best = NULL;
  part *sub = xreallocarray(NULL, n, sizeof *sub);
  expr **rest = xreallocarray(NULL, n, sizeof *rest);
  mpq_t a, b;
  mpq_init(a);
  mpq_init(b);
  size_t tried = 0;
  for (size_t i = 0; i < n && tried < MAX_GROUPS && !S->failed; i++) {
    mpq_abs(a, tp[i].c);
    bool seen = mpq_cmp_ui(a, 1, 1) == 0; /* no coefficient to share */
    for (size_t j = 0; j < i && !seen; j++) {
      mpq_abs(b, tp[j].c);
      seen = mpq_equal(a, b);
    }
    if (seen)
      continue;
    size_t ns = 0, nr = 0;
    for (size_t j = 0; j < n; j++) {
      mpq_abs(b, tp[j].c);
      if (mpq_equal(a, b))
        sub[ns++] = tp[j]; /* a view: the parts stay tp's */
      else
        rest[nr++] = tp[j].t;
    }
    if (ns < 2 || nr == 0)
      continue;
    tried++;
    expr *g = content_out(S, sub, ns);
    if (!g)
      continue;
    for (size_t j = 0; j < nr; j++)
      rest[j] = present(S, rest[j]);
    rest[nr++] = g;
    best = smaller(S, best, psum(S, rest, nr));
  }
  mpq_clear(a);
  mpq_clear(b);
  free(sub);
  free(rest);
  return best;
}

/* A normal sum, factored where that is shorter. */
static expr *present_core(simp *S, expr *n) {
  expr *done = (expr *)md_idmap_get(&S->core, n);
  if (done)
    return done;
  expr *best = plain_sum(S, n);
  if (may_try(S) && !S->failed) {
    S->nest++;
    part small[4]; /* (on the recursion's path: kept small) */
    part *tp = scratch_array(small, 4, n->nkids, sizeof *tp);
    parts_of(S, n, tp);
    best = smaller(S, best, grouped(S, tp, n->nkids, true));
    best = smaller(S, best, grouped(S, tp, n->nkids, false));
    best = smaller(S, best, content_out(S, tp, n->nkids));
    best = smaller(S, best, partial_content(S, tp, n->nkids));
    parts_clear(tp, n->nkids);
    scratch_free(tp, small);
    S->nest--;
  }
  if (best)
    md_idmap_put(&S->core, n, (uintptr_t)best);
  return best;
}

/* ... or as the transpose of a sum, when that is shorter:
 * x^T A^T - y^T -> (A x - y)^T. */
/* The normal sum N with the terms that are shorter transposed written as
 * one transposed sum (their own sum presented as any sum is):
 * 1/2 M^T + A^T M^T - N -> (1/2 M + M A)^T - N.  All of them negative,
 * the sign stands outside.  NULL when fewer than two terms gain, or all
 * do (the whole sum's transpose, present_sum). */
static expr *transposed_part(simp *S, expr *n) {
  size_t k = n->nkids, ng = 0, nneg = 0;
  md_nodes in = {0}, out = {0};
  for (size_t i = 0; i < k && !S->failed; i++) {
    expr *a = present(S, n->kid[i]);
    expr *t = no_trans(n->kid[i]) ? NULL : md_nf_trans(S->N, n->kid[i]);
    expr *b = t && t != n->kid[i] ? present(S, t) : NULL;
    if (S->failed) {
      S->failed = false; /* only this form is lost */
      b = NULL;
    }
    if (a && b && size_of(S, b) < size_of(S, a)) {
      md_nodes_push(&in, t);
      ng++;
      nneg += negative(a);
    } else {
      md_nodes_push(&out, a);
    }
  }
  expr *r = NULL;
  if (ng >= 2 && ng < k && !S->failed) {
    bool neg = nneg == ng; /* -(x + y)^T */
    if (neg) {
      mpq_t m1;
      mpq_init(m1);
      mpq_set_si(m1, -1, 1);
      for (size_t i = 0; i < in.n; i++)
        in.v[i] = md_nf_scale(S->N, m1, in.v[i]);
      mpq_clear(m1);
    }
    expr *s = md_nf_sum(S->N, in.v, in.n);
    expr *c = s && s->op == E_ADD ? present_core(S, s) : NULL;
    expr *g = c ? built(S, expr_trans(S->ctx, c)) : NULL;
    if (g && neg)
      g = built(S, expr_neg(S->ctx, g));
    if (g) {
      md_nodes_push(&out, g);
      r = psum(S, out.v, out.n);
    }
  }
  md_nodes_clear(&in);
  md_nodes_clear(&out);
  return r && has_shape(S, r) ? r : NULL;
}

static expr *present_sum(simp *S, expr *n) {
  expr *best = present_core(S, n);
  if (best && transposable(S, n) && n->nkids >= 3 && may_try(S)) {
    S->nest++;
    best = smaller(S, best, transposed_part(S, n));
    S->nest--;
  }
  if (best && transposable(S, n) && may_try(S)) {
    expr *t = md_nf_trans(S->N, n);
    if (t && t->op == E_ADD && t != n) {
      S->nest++;
      expr *c = present_core(S, t);
      S->nest--;
      /* the sign outside: -((N M)^3 + y y^T) N)^T */
      bool neg = c && c->op == E_NEG;
      expr *w = c ? built(S, expr_trans(S->ctx, neg ? c->kid[0] : c)) : NULL;
      if (w && neg)
        w = built(S, expr_neg(S->ctx, w));
      best = smaller(S, best, w && has_shape(S, w) ? w : NULL);
    }
  }
  return best;
}

/* The functions whose value a transpose of their operand keeps. */
static bool transpose_free(uint32_t fn) {
  return fn == FN_TR || fn == FN_DET || fn == FN_LOGDET || fn == FN_SUM ||
         fn == FN_NORM1 || fn == FN_NORM2 || fn == FN_LOGSUMEXP;
}

/* The presented Hadamard product H with its operands that are transposes
 * (two or more) as one: M^T .* M^T .* N -> (M .* M)^T .* N; NULL when
 * fewer than two are. */
static expr *had_transposes(simp *S, expr *h) {
  size_t nt = 0;
  for (size_t i = 0; i < h->nkids; i++)
    nt += h->kid[i]->op == E_TRANS;
  if (nt < 2 || nt == h->nkids)
    return NULL; /* (all of them: the transpose of the whole, above) */
  expr **in = xreallocarray(NULL, nt, sizeof *in);
  expr **out = xreallocarray(NULL, h->nkids - nt + 1, sizeof *out);
  size_t a = 0, b = 0;
  for (size_t i = 0; i < h->nkids; i++)
    if (h->kid[i]->op == E_TRANS)
      in[a++] = h->kid[i]->kid[0];
    else
      out[b++] = h->kid[i];
  expr *t = built(S, expr_make(S->ctx, E_HAD, in, a));
  out[b++] = t ? built(S, expr_trans(S->ctx, t)) : NULL;
  expr *r = out[b - 1] ? built(S, expr_make(S->ctx, E_HAD, out, b)) : NULL;
  free(in);
  free(out);
  return r && has_shape(S, r) ? r : NULL;
}

/* N with its operands presented. */
static expr *present_kids(simp *S, expr *n) {
  if (!n->nkids)
    return n;
  expr *small[4];
  expr **k = n->nkids <= 4 ? small : xreallocarray(NULL, n->nkids, sizeof *k);
  bool changed = false;
  for (size_t i = 0; i < n->nkids; i++) {
    /* the variable of d/dX stays as it is written */
    k[i] = (n->op == E_DIFF || n->op == E_HESS) && i == 1
               ? n->kid[i]
               : present(S, n->kid[i]);
    if (!k[i])
      S->failed = true;
    else
      changed |= k[i] != n->kid[i];
  }
  expr *r = n;
  if (!S->failed && changed)
    r = built(S, expr_rebuild(S->ctx, n, k));
  if (k != small)
    free(k);
  return S->failed ? NULL : r;
}

/* tr(C) of the normal chain C as an inner product, when that is shorter:
 * tr(M N (M N)^T) -> <M N, M N>, tr(M M^T) -> <M, M>.  C, rotated as a
 * trace allows, is cut in two, L R, and tr(L R) = <L^T, R> = <R^T, L>;
 * every rotation and cut is tried when the chain is short, only the ends
 * otherwise.  NULL when C is no chain. */
static expr *present_inner(simp *S, expr *c) {
  if (c->op != E_MUL || c->nkids < 2 || is_scalar(S, c))
    return NULL;
  expr *best = NULL;
  bool was = S->failed;
  size_t n = c->nkids;
  expr **rot = xreallocarray(NULL, n, sizeof *rot);
  for (size_t at = 0; at < n * n; at++) {
    /* the chain rotated by s (the trace is the same), cut after k */
    size_t s = at / n, k = at % n;
    if (k == 0 || (n > MAX_INNER_CUTS && (s != 0 || (k != 1 && k != n - 1))))
      continue;
    for (size_t i = 0; i < n; i++)
      rot[i] = c->kid[(s + i) % n];
    expr *l = md_nf_mul(S->N, rot, k), *r = md_nf_mul(S->N, rot + k, n - k);
    for (int side = 0; side < 2 && l && r; side++) {
      expr *t = md_nf_trans(S->N, side ? r : l);
      expr *a = t ? present(S, t) : NULL;
      expr *b = present(S, side ? l : r);
      if (S->failed) {
        S->failed = was; /* only this form is lost */
        continue;
      }
      /* the smaller side first, <X, A X>; then the canonical order,
       * <A, B> */
      if (a && b &&
          (size_of(S, b) < size_of(S, a) ||
           (size_of(S, b) == size_of(S, a) && md_nf_cmp(S->ctx, b, a) < 0))) {
        expr *x = a;
        a = b;
        b = x;
      }
      best =
          smaller(S, best, a && b ? built(S, expr_inner(S->ctx, a, b)) : NULL);
    }
  }
  free(rot);
  return best;
}

/* Whether N is an element-wise function of one operand. */
static bool transposed_outside(simp *S, const expr *n) {
  return n->op == E_CALL && n->nkids == 1 &&
         md_fn_get(S->ctx, n->u.fn)->cls == FC_ELEMWISE;
}

static expr *present(simp *S, expr *n) {
  if (!n || S->failed) {
    S->failed = true;
    return NULL;
  }
  expr *r = (expr *)md_idmap_get(&S->memo, n);
  if (r)
    return r;
  S->work += 1 + n->nkids; /* a sum of k terms costs k */
  switch ((expr_op)n->op) {
  case E_ADD:
    r = present_sum(S, n);
    break;
  case E_MUL:
  case E_NEG:
    r = present_mul(S, n);
    break;
  default:
    r = present_kids(S, n);
    if (r && n->op == E_CALL && n->u.fn == FN_TR && n->nkids == 1)
      r = smaller(S, r, present_inner(S, n->kid[0]));
    /* an element-wise node whose operands are transposes, as the normal
     * form writes it, or its transpose, when shorter:
     * x^T .* z^T -> (x .* z)^T */
    if (r && transposable(S, n)) {
      expr *t = md_nf_trans(S->N, n);
      if (t && t != n && t->op == n->op) {
        expr *c = present_kids(S, t);
        if (S->failed) { /* only this form is lost */
          S->failed = false;
        } else if (c && (transposed_outside(S, n) || n->op == E_POW ||
                         n->op == E_EPOW)) {
          /* a transpose stays outside an element-wise function and a
           * power, as authors write them: tanh(z)^T, (X^2)^T, not
           * tanh(z^T), X^T^2 (on a tie too) */
          expr *o = built(S, expr_trans(S->ctx, c));
          if (o && size_of(S, o) <= size_of(S, r))
            r = o;
        } else {
          r = smaller(S, r, c ? built(S, expr_trans(S->ctx, c)) : NULL);
        }
      }
    }
    if (r && n->op == E_INV && transposable(S, n) && may_try(S)) {
      /* X^-1 as (X^T)^-T, when the transpose of X is shorter:
       * (N^T M^T)^-1 -> (M N)^-T */
      expr *kt = md_nf_trans(S->N, n->kid[0]);
      S->nest++;
      expr *p = kt && kt != n->kid[0] ? present(S, kt) : NULL;
      S->nest--;
      if (S->failed)
        S->failed = false;
      else if (p)
        r = smaller(
            S, r, built(S, expr_inv(S->ctx, built(S, expr_trans(S->ctx, p)))));
    }
    if (r && r->op == E_HAD)
      r = smaller(S, r, had_transposes(S, r));
    if (r && r->op == E_CALL && r->nkids == 1 && transpose_free(r->u.fn)) {
      /* tr(X^T) = tr(X), sum, det, ...: of X and its transpose, the
       * shorter, tr((N M .* S)^T - D) -> tr(N M .* S - D^T) */
      if (r->kid[0]->op == E_TRANS)
        r = built(S, expr_call1(S->ctx, r->u.fn, r->kid[0]->kid[0]));
      expr *t = no_trans(n->kid[0]) ? NULL : md_nf_trans(S->N, n->kid[0]);
      if (t && t != n->kid[0] && may_try(S)) {
        S->nest++;
        expr *c = present(S, t);
        S->nest--;
        if (S->failed) /* only this form is lost */
          S->failed = false;
        else if (c)
          r = smaller(S, r, built(S, expr_call1(S->ctx, r->u.fn, c)));
      }
    }
    break;
  }
  if (!r || S->failed || !built(S, r)) {
    S->failed = true;
    return NULL;
  }
  md_idmap_put(&S->memo, n, (uintptr_t)r);
  return r;
}

static void simp_clear(simp *S) {
  md_idmap_clear(&S->memo);
  md_idmap_clear(&S->core);
  md_idmap_clear(&S->size);
  md_idmap_clear(&S->flip);
}

/* Rounds of normal form and presentation: a presented operand can have
 * another normal form than the one it came from (the scalar that
 * factoring found in a .* operand comes out of the product), so we go on
 * until the normal form is stable; then simplifying again changes
 * nothing.  Each round has the work budget: near the normal form's
 * expansion budget (normal.c) a factored form may not expand back to the
 * same normal form, and the rounds may never meet one ((alpha A (alpha A
 * + B)^2 + B)^4 a by alpha takes four, each result shorter than the
 * one before), and a later round can find what the first could not within
 * its budget: t_k = t_(k-1) + Sigma t_(k-1) comes out of the first round
 * half factored at k = 16 (1164 characters) and in Horner's form from
 * the second (246), at an eighth of the first one's work. */
enum { MAX_ROUNDS = 4 };

static void release_rules(void *p) {
  md_rules_clear(p);
  free(p);
}

/* The built-in rewrite rules of CTX, loaded on first use. */
static const md_rules *builtin_rewrites(md_ctx *ctx) {
  md_rules *R = md_ctx_slot(ctx);
  if (!R) {
    R = xcalloc(1, sizeof *R);
    md_rules_init(R);
    md_errors err;
    md_errors_init(&err);
    /* a built-in file that does not load is caught by meson test 'rules';
     * here it would only mean simplifying without rules */
    if (!md_rules_load_rewrites(R, ctx, &err)) {
      md_rules_clear(R);
      md_rules_init(R);
    }
    md_errors_clear(&err);
    md_ctx_set_slot(ctx, R, release_rules);
  }
  return R;
}

expr *md_simplify(md_ctx *ctx, md_shapes *shapes, expr *e) {
  return md_simplify_with(ctx, shapes, builtin_rewrites(ctx), e);
}

md_simplifier *md_simplifier_builtin(md_ctx *ctx, md_shapes *shapes) {
  return md_simplifier_new(ctx, shapes, builtin_rewrites(ctx));
}

/* The normal form of E with its element-wise islands reduced (ewise.h). */
static expr *normal_of(md_nf *N, md_ew *W, expr *e) {
  expr *n = md_nf_of(N, e);
  return n ? md_ew_apply(W, n) : NULL;
}

/* E rewritten by M's rewriter, or E when a rewrite would be too deep. */
static expr *rewritten_by(md_ctx *ctx, md_rewriter *R, expr *e) {
  expr *w = md_rewriter_run(R, e);
  if (!w && md_ctx_limit_is_rule(ctx))
    return NULL; /* a user's rule rewrites without end: an error */
  return w ? w : e;
}

struct md_simplifier {
  md_ctx *ctx;
  md_shapes *shapes;
  const struct md_rules *rules;
  md_rewriter *R;
  md_nf *N;
  md_ew *W;
  simp first; /* the first round's presentations, kept from call to call */
  size_t pool, per_node; /* WORK_FLOOR, WORK_PER_NODE as md_work_budget;
                          * the floor as the calls leave it */
  size_t asked_pool;     /* ASKED_FLOOR as the calls leave it */
  size_t asked;          /* nodes its calls asked for */
};

md_simplifier *md_simplifier_new(md_ctx *ctx, md_shapes *shapes,
                                 const struct md_rules *rules) {
  md_simplifier *m = xcalloc(1, sizeof *m);
  m->ctx = ctx;
  m->shapes = shapes;
  m->rules = rules;
  m->R = md_rewriter_new(ctx, shapes, rules);
  m->N = md_nf_new(ctx, shapes, false);
  m->W = md_ew_new(ctx, shapes, m->N, rules, false);
  m->first = (simp){.ctx = ctx, .shapes = shapes, .N = m->N};
  m->pool = md_work_budget(WORK_FLOOR);
  m->per_node = md_work_budget(WORK_PER_NODE);
  m->asked_pool = md_work_budget(ASKED_FLOOR / 64) * 64;
  return m;
}

void md_simplifier_free(md_simplifier *m) {
  if (!m)
    return;
  simp_clear(&m->first);
  md_ew_free(m->W);
  md_nf_free(m->N);
  md_rewriter_free(m->R);
  free(m);
}

/* The rules rewrite before each normal form is taken (rewrite.h).  The
 * normal forms, the element-wise islands and the first round's
 * presentations are memoised by node in M, so that results that share
 * parts (the gradients of one loss by several variables) pay for each
 * part once; a later round starts afresh (it is rare). */
expr *md_simplifier_run(md_simplifier *m, expr *e) {
  size_t start = md_ctx_asked(m->ctx);
  expr *n = normal_of(m->N, m->W, rewritten_by(m->ctx, m->R, e)), *r = NULL;
  /* (the nodes presented before cost a look-up: on the many calls of
   * --steps on parts of one growing DAG, the whole DAG's size made them
   * quadratic) */
  size_t dag = expr_dag_size_new(n, &m->first.memo);
  size_t budget = m->pool + m->per_node * dag;
  size_t asked0 = md_ctx_asked(m->ctx),
         per_node = md_work_budget(ASKED_PER_NODE) * dag;
  size_t asked_end = asked0 + m->asked_pool + per_node;
  for (int round = 0; n && round < MAX_ROUNDS; round++) {
    simp T = {.ctx = m->ctx, .shapes = m->shapes, .N = m->N};
    simp *S = round == 0 ? &m->first : &T;
    /* each call has a budget on top of what the earlier ones did: per
     * node it has not presented before, and what is left of the floor,
     * which all calls share (--steps calls once a step: a floor each
     * made t_k = t_(k-1) + Sigma t_(k-1) at k = 34 take 9 s) */
    size_t before = S->work;
    S->budget = S->work + budget;
    S->asked_end = asked_end;
    S->failed = false;
    r = present(S, n);
    if (round == 0)
      m->pool = S->work - before < budget ? budget - (S->work - before) : 0;
    if (S->failed)
      r = NULL;
    if (S == &T)
      simp_clear(&T);
    if (md_ctx_asked(m->ctx) >= asked_end)
      break; /* (the last round: see ASKED_FLOOR) */
    expr *again =
        r ? normal_of(m->N, m->W, rewritten_by(m->ctx, m->R, r)) : NULL;
    if (!again || again == n)
      break;
    n = again;
  }
  size_t asked = md_ctx_asked(m->ctx) - asked0;
  if (asked > per_node)
    m->asked_pool -=
        asked - per_node < m->asked_pool ? asked - per_node : m->asked_pool;
  m->asked += md_ctx_asked(m->ctx) - start;
  return r;
}

size_t md_simplifier_work(const md_simplifier *m) {
  return m->first.work + m->asked / ASKED_PER_WORK;
}

expr *md_simplify_with(md_ctx *ctx, md_shapes *shapes,
                       const struct md_rules *rules, expr *e) {
  md_simplifier *m = md_simplifier_new(ctx, shapes, rules);
  expr *r = md_simplifier_run(m, e);
  md_simplifier_free(m);
  return r;
}

bool md_equal(md_ctx *ctx, md_shapes *shapes, expr *a, expr *b) {
  if (a == b)
    return true;
  md_nf *N = md_nf_new(ctx, shapes, false);
  expr *na = md_nf_of(N, a), *nb = md_nf_of(N, b);
  bool eq = na && na == nb;
  if (!eq && na && nb) {
    /* element-wise islands as reduced quotients (ewise.h) */
    md_ew *W = md_ew_new(ctx, shapes, N, NULL, true);
    expr *wa = md_ew_apply(W, na), *wb = md_ew_apply(W, nb);
    eq = wa && wa == wb;
    md_ew_free(W);
  }
  if (!eq && na && nb) {
    /* the compact forms may meet where the normal forms differ only by
     * factoring: (A + A^T) x and A x + A^T x */
    simp S = {.ctx = ctx,
              .shapes = shapes,
              .N = N,
              .budget = md_work_budget(WORK_FLOOR) +
                        md_work_budget(WORK_PER_NODE) *
                            (expr_dag_size(na) + expr_dag_size(nb))};
    expr *pa = present(&S, na), *pb = present(&S, nb);
    eq = !S.failed && pa == pb;
    simp_clear(&S);
  }
  md_nf_free(N);
  if (!eq) {
    md_nf *E = md_nf_new(ctx, shapes, true);
    expr *ea = md_nf_of(E, a), *eb = md_nf_of(E, b);
    eq = ea && ea == eb;
    md_nf_free(E);
  }
  return eq;
}
