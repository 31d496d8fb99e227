/* ewise.c - the element-wise algebra; see ewise.h. */
#include "ewise.h"

#include "print_text.h"
#include "rewrite.h"

#include <flint/fmpq.h>
#include <flint/fmpq_mpoly.h>
#include <flint/fmpq_mpoly_factor.h>
#include <stdlib.h>
#include <string.h>

struct md_ew {
  md_ctx *ctx;
  md_shapes *shapes;
  md_nf *N;
  const md_rules *R; /* the substitutions of rules/algebra.rules */
  unsigned nest;     /* substitutions inside substitutions */
  unsigned subs;     /* substitutions still to be tried (MD_EW_MAX_SUBS) */
  bool canonical;
  bool failed;            /* a result was too deep */
  md_idmap memo;          /* by id: the node's image */
  md_idmap size;          /* md_text_size */
  md_idmap leaves;        /* leaves() */
  size_t work, budget;    /* nodes collected; past BUDGET no island is read */
  size_t floor, per_node; /* MD_EW_WORK_* as md_work_budget */
};

/* One island being read: its atoms (numbered in the canonical order) and
 * the quotient of each node (memoised: an island is a DAG too). */
typedef struct island {
  md_ew *W;
  md_shape shape;
  md_nodes atoms; /* images of the atoms, in variable order */
  md_idmap var;   /* by image id: variable + 1 */
  md_idmap image; /* by id of an atom as found: its image + 1 */
  md_idmap seen;  /* by id: collected */
  bool *scalar;   /* by variable: the atom is 1×1 */
  fmpq_mpoly_ctx_t m;
  bool has_ctx;
  /* quotients of the island's nodes, by id: index + 1 into num/den */
  md_idmap rat;
  md_idmap was; /* by id: the node with its atoms reduced (as_was) */
  fmpq_mpoly_struct *num, *den;
  size_t nrat, caprat;
  bool failed;
  bool too_big;     /* past MD_EW_MAX_ATOMS or MD_EW_MAX_NODES */
  size_t nnodes;    /* collected */
  bool elementwise; /* holds a .*, ./ or .^ */
  bool split;       /* writing: a coefficient p/q as p N ./ (q D) */
  size_t ident;     /* variable + 1 of the atom I, or 0 */
  /* the factors of the island's numerator and denominator, made once
   * for the forms written with and without split (form_factored) */
  fmpq_mpoly_factor_struct fac[2];
  int nfac;   /* of fac, initialised */
  bool facok; /* both factored */
} island;

static expr *ew(md_ew *W, expr *e);
static expr *normal(md_ew *W, expr *raw);
static size_t size_of(md_ew *W, const expr *e);
static bool better(md_ew *W, const expr *a, const expr *b);

static bool known_shape(md_ew *W, expr *e, md_shape *sh) {
  if (!md_shape_derive(W->shapes, e) || !md_shape_known(W->shapes, e))
    return false;
  *sh = md_shape_of(W->shapes, e);
  return true;
}

static bool is_scalar(md_ew *W, expr *e) {
  md_shape sh;
  if (e->op == E_NUM)
    return true;
  return known_shape(W, e, &sh) && md_shape_is_scalar(W->shapes, sh);
}

static bool small_int(const expr *e, long lo, long hi, long *k) {
  return expr_is_int(e, k) && *k >= lo && *k <= hi;
}

/* Whether E is an operation of the algebra (not an atom).  At a shape
 * other than 1×1: sums, negation, .*, ./, .^ with a small integer, and
 * products that scale one factor.  At 1×1: sums, negation, products of
 * scalars (not a run u^T v), inverses and small integer powers. */
static bool is_op(md_ew *W, expr *e) {
  long k;
  bool scalar = is_scalar(W, e);
  switch ((expr_op)e->op) {
  case E_ADD:
  case E_NEG:
    return true;
  case E_HAD:
  case E_HDIV:
    return !scalar;
  case E_EPOW:
    return !scalar && small_int(e->kid[1], -MD_EW_MAX_POW, MD_EW_MAX_POW, &k);
  case E_INV:
    return scalar;
  case E_POW:
    return scalar && small_int(e->kid[1], -MD_EW_MAX_POW, MD_EW_MAX_POW, &k);
  case E_MUL: {
    /* scaling: at most one factor of the chain, the others scalars */
    size_t chain = 0;
    for (size_t i = 0; i < e->nkids; i++)
      chain += !is_scalar(W, e->kid[i]);
    return chain == !scalar;
  }
  default:
    return false;
  }
}

/* ---- collecting the atoms ---- */

static void add_atom(island *I, expr *a) {
  if (md_idmap_get(&I->image, a))
    return;
  expr *img = ew(I->W, a);
  if (!img) {
    I->failed = true;
    return;
  }
  md_idmap_put(&I->image, a, (uintptr_t)img);
  if (!md_idmap_get(&I->var, img)) {
    md_idmap_put(&I->var, img, 1); /* numbered once sorted */
    md_nodes_push(&I->atoms, img);
  }
}

/* The atoms of the island under E.  It stops at once past the bounds: each
 * node of the DAG may be the root of an island that fails so, and its kids
 * roots in turn, so an unbounded walk here made the pass quadratic (the
 * adjoint of t_k = t_(k-1) + sin(t_(k-1))/10: 13 s at k = 200). */
static void collect(island *I, expr *e) {
  if (I->failed || I->too_big || md_idmap_get(&I->seen, e))
    return;
  if (++I->nnodes > MD_EW_MAX_NODES || I->atoms.n > MD_EW_MAX_ATOMS ||
      ++I->W->work > I->W->budget) {
    I->too_big = true;
    return;
  }
  md_idmap_put(&I->seen, e, 1);
  md_ew *W = I->W;
  if (e->op == E_NUM || (e->op == E_ONES && !is_scalar(W, e)))
    return;
  if (!is_op(W, e)) {
    add_atom(I, e);
    return;
  }
  /* what the algebra can reduce: a product or quotient of its own (a
   * scalar's inverse is a quotient) */
  if (e->op == E_HAD || e->op == E_HDIV || e->op == E_EPOW || e->op == E_INV ||
      (e->op == E_POW && expr_num_sgn(e->kid[1]) < 0))
    I->elementwise = true;
  if (e->op == E_EPOW || e->op == E_POW) {
    collect(I, e->kid[0]);
    return;
  }
  for (size_t i = 0; i < e->nkids; i++)
    collect(I, e->kid[i]);
}

static int atom_order(const void *x, const void *y, void *ctx) {
  return md_nf_cmp(ctx, *(expr *const *)x, *(expr *const *)y);
}

/* qsort_r is not portable: a small insertion sort (islands are small). */
static void sort_atoms(md_ctx *ctx, expr **v, size_t n) {
  for (size_t i = 1; i < n; i++) {
    expr *x = v[i];
    size_t j = i;
    while (j > 0 && atom_order(&v[j - 1], &x, ctx) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
}

/* ---- quotients ---- */

static size_t new_rat(island *I) {
  if (I->nrat == I->caprat) {
    I->caprat = I->caprat ? 2 * I->caprat : 16;
    I->num = xreallocarray(I->num, I->caprat, sizeof *I->num);
    I->den = xreallocarray(I->den, I->caprat, sizeof *I->den);
  }
  fmpq_mpoly_init(&I->num[I->nrat], I->m);
  fmpq_mpoly_init(&I->den[I->nrat], I->m);
  fmpq_mpoly_one(&I->den[I->nrat], I->m);
  return I->nrat++;
}

/* The bits of P's largest coefficient, at most (its content's and its
 * primitive part's). */
static slong coeff_bits(const fmpq_mpoly_struct *p) {
  slong z = fmpz_mpoly_max_bits(p->zpoly);
  return (z < 0 ? -z : z) + (slong)fmpz_bits(fmpq_numref(p->content)) +
         (slong)fmpz_bits(fmpq_denref(p->content));
}

/* Whether P's total degree is at most MD_EW_MAX_DEGREE by a quick bound:
 * the sum of its degrees in each variable, which FLINT finds with word
 * operations on packed exponents, where the total degree goes through an
 * fmpz for every exponent (37% of the instructions of t_k = tanh(t) / 2
 * + t / 5 by x).  False when the bound says nothing: then the total
 * degree is taken. */
static bool degree_below(island *I, const fmpq_mpoly_struct *p) {
  slong n = fmpq_mpoly_ctx_nvars(I->m);
  if (p->zpoly->bits >= FLINT_BITS || n > (slong)MD_EW_MAX_ATOMS)
    return false;
  slong deg[MD_EW_MAX_ATOMS];
  fmpq_mpoly_degrees_si(deg, p, I->m);
  slong sum = 0;
  for (slong i = 0; i < n; i++)
    sum += deg[i] > 0 ? deg[i] : 0;
  return sum <= MD_EW_MAX_DEGREE;
}

/* Past MD_EW_MAX_TERMS terms, or a coefficient of more than a printable
 * number's digits (3 sigmoid(t) .* t .* t / 1e-34, nested 20 deep, made
 * coefficients of 2^20 times 35 digits: 21 s and 1.6 GB): the island is
 * left as it was. */
static bool too_big(island *I, const fmpq_mpoly_struct *p) {
  if (fmpq_mpoly_length(p, I->m) > MD_EW_MAX_TERMS ||
      coeff_bits(p) > (slong)MD_MAX_NUM_BITS ||
      (!degree_below(I, p) &&
       (!fmpq_mpoly_total_degree_fits_si(p, I->m) ||
        fmpq_mpoly_total_degree_si(p, I->m) > MD_EW_MAX_DEGREE)))
    I->failed = true;
  return I->failed;
}

static bool factor_linear(island *I, fmpq_mpoly_factor_struct *f,
                          const fmpq_mpoly_struct *p);
static bool factor_split(island *I, fmpq_mpoly_factor_struct *f,
                         const fmpq_mpoly_struct *p, bool flint);

/* N / D with their common factor cancelled, when the shorter of the two
 * factors without FLINT (factor_linear, factor_split): each of its
 * factors divided out of both as often as it divides both.  False, N and
 * D untouched, when it does not factor so.  FLINT's gcd takes the content
 * of each variable in turn (the denominators of the islands of a
 * derivative are mostly short and linear in their atoms, as 1 + x, their
 * numerators long: 17% of the instructions of regress/
 * dag-factor-multilinear-26 in the CLI). */
static bool reduce_by_factors(island *I, fmpq_mpoly_struct *n,
                              fmpq_mpoly_struct *d) {
  bool dshort = fmpq_mpoly_length(d, I->m) <= fmpq_mpoly_length(n, I->m);
  fmpq_mpoly_struct *s = dshort ? d : n, *o = dshort ? n : d;
  fmpq_mpoly_factor_t f;
  fmpq_mpoly_factor_init(f, I->m);
  bool ok = factor_linear(I, f, s) || factor_split(I, f, s, false);
  if (ok) {
    fmpq_mpoly_t t;
    fmpq_mpoly_init(t, I->m);
    for (slong i = 0; i < f->num; i++)
      for (slong k = fmpz_get_si(&f->exp[i]);
           k > 0 && fmpq_mpoly_divides(t, o, &f->poly[i], I->m); k--) {
        fmpq_mpoly_swap(o, t, I->m);
        fmpq_mpoly_divides(s, s, &f->poly[i], I->m);
      }
    fmpq_mpoly_clear(t, I->m);
  }
  fmpq_mpoly_factor_clear(f, I->m);
  return ok;
}

/* Cancels the common factor of N / D and makes D primitive with a
 * positive leading coefficient. */
static void reduce(island *I, fmpq_mpoly_struct *n, fmpq_mpoly_struct *d) {
  if (fmpq_mpoly_is_zero(d, I->m)) {
    I->failed = true; /* 1 ./ 0: leave the island as it was */
    return;
  }
  if (fmpq_mpoly_is_zero(n, I->m)) {
    fmpq_mpoly_one(d, I->m);
    return;
  }
  if (!fmpq_mpoly_is_fmpq(d, I->m) && !reduce_by_factors(I, n, d)) {
    fmpq_mpoly_t g;
    fmpq_mpoly_init(g, I->m);
    if (!fmpq_mpoly_gcd(g, n, d, I->m)) {
      I->failed = true;
    } else if (!fmpq_mpoly_is_one(g, I->m)) {
      fmpq_mpoly_div(n, n, g, I->m);
      fmpq_mpoly_div(d, d, g, I->m);
    }
    fmpq_mpoly_clear(g, I->m);
  }
}

/* C = the content of P with the sign of its first coefficient: P / C is
 * primitive, with integer coefficients and a positive first one (the form
 * fmpq_mpoly_factor gives its factors). */
static void signed_content(island *I, fmpq_t c, const fmpq_mpoly_struct *p) {
  fmpq_t lead;
  fmpq_init(lead);
  fmpq_mpoly_content(c, p, I->m);
  fmpq_mpoly_get_term_coeff_fmpq(lead, p, 0, I->m);
  if (fmpq_sgn(lead) < 0)
    fmpq_neg(c, c);
  fmpq_clear(lead);
}

static void make_primitive(island *I, fmpq_mpoly_struct *n,
                           fmpq_mpoly_struct *d) {
  fmpq_t c;
  fmpq_init(c);
  signed_content(I, c, d);
  if (!fmpq_is_one(c)) {
    fmpq_mpoly_scalar_div_fmpq(n, n, c, I->m);
    fmpq_mpoly_scalar_div_fmpq(d, d, c, I->m);
  }
  fmpq_clear(c);
}

static void normalise(island *I, fmpq_mpoly_struct *n, fmpq_mpoly_struct *d) {
  reduce(I, n, d);
  if (!I->failed)
    make_primitive(I, n, d);
}

/* R = A + B (S = -1: A - B), as quotients. */
static void rat_add(island *I, size_t r, size_t a, size_t b, int s) {
  fmpq_mpoly_struct *rn = &I->num[r], *rd = &I->den[r];
  if (fmpq_mpoly_equal(&I->den[a], &I->den[b], I->m)) {
    if (s > 0)
      fmpq_mpoly_add(rn, &I->num[a], &I->num[b], I->m);
    else
      fmpq_mpoly_sub(rn, &I->num[a], &I->num[b], I->m);
    fmpq_mpoly_set(rd, &I->den[a], I->m);
  } else {
    fmpq_mpoly_t t;
    fmpq_mpoly_init(t, I->m);
    fmpq_mpoly_mul(rn, &I->num[a], &I->den[b], I->m);
    fmpq_mpoly_mul(t, &I->num[b], &I->den[a], I->m);
    if (s > 0)
      fmpq_mpoly_add(rn, rn, t, I->m);
    else
      fmpq_mpoly_sub(rn, rn, t, I->m);
    fmpq_mpoly_mul(rd, &I->den[a], &I->den[b], I->m);
    fmpq_mpoly_clear(t, I->m);
  }
  if (!too_big(I, rn) && !too_big(I, rd))
    normalise(I, rn, rd);
}

/* R = A B (INV: A / B). */
static void rat_mul(island *I, size_t r, size_t a, size_t b, bool inv) {
  fmpq_mpoly_struct *bn = inv ? &I->den[b] : &I->num[b];
  fmpq_mpoly_struct *bd = inv ? &I->num[b] : &I->den[b];
  fmpq_mpoly_t n, d;
  fmpq_mpoly_init(n, I->m);
  fmpq_mpoly_init(d, I->m);
  fmpq_mpoly_mul(n, &I->num[a], bn, I->m);
  fmpq_mpoly_mul(d, &I->den[a], bd, I->m);
  fmpq_mpoly_swap(&I->num[r], n, I->m);
  fmpq_mpoly_swap(&I->den[r], d, I->m);
  fmpq_mpoly_clear(n, I->m);
  fmpq_mpoly_clear(d, I->m);
  if (!too_big(I, &I->num[r]) && !too_big(I, &I->den[r]))
    normalise(I, &I->num[r], &I->den[r]);
}

static void rat_pow(island *I, size_t r, size_t a, long k) {
  unsigned long u = (unsigned long)(k < 0 ? -k : k);
  fmpq_mpoly_struct *an = k < 0 ? &I->den[a] : &I->num[a];
  fmpq_mpoly_struct *ad = k < 0 ? &I->num[a] : &I->den[a];
  slong la = fmpq_mpoly_length(an, I->m), lb = fmpq_mpoly_length(ad, I->m);
  if ((la > 1 && u * (unsigned long)la > MD_EW_MAX_TERMS) ||
      (lb > 1 && u * (unsigned long)lb > MD_EW_MAX_TERMS)) {
    I->failed = true;
    return;
  }
  if (!fmpq_mpoly_pow_ui(&I->num[r], an, u, I->m) ||
      !fmpq_mpoly_pow_ui(&I->den[r], ad, u, I->m)) {
    I->failed = true;
    return;
  }
  if (!too_big(I, &I->num[r]) && !too_big(I, &I->den[r]))
    normalise(I, &I->num[r], &I->den[r]);
}

/* The quotient of an atom's image to the power K. */
static size_t rat_atom(island *I, expr *img, long k) {
  size_t r = new_rat(I);
  slong v = (slong)md_idmap_get(&I->var, img) - 1;
  fmpq_mpoly_struct *p = k < 0 ? &I->den[r] : &I->num[r];
  if (k < 0)
    fmpq_mpoly_one(&I->num[r], I->m);
  fmpq_mpoly_gen(p, v, I->m);
  if (k < 0)
    k = -k;
  if (k != 1)
    fmpq_mpoly_pow_ui(p, p, (ulong)k, I->m);
  return r;
}

static size_t rat_num(island *I, const mpq_t q) {
  size_t r = new_rat(I);
  fmpq_t c;
  fmpq_init(c);
  fmpq_set_mpq(c, q);
  fmpq_mpoly_set_fmpq(&I->num[r], c, I->m);
  fmpq_clear(c);
  return r;
}

static size_t rat_of(island *I, expr *e);

static size_t rat_image(island *I, expr *a, long k) {
  expr *img = (expr *)md_idmap_get(&I->image, a);
  return rat_atom(I, img, k);
}

static size_t rat_node(island *I, expr *e) {
  md_ew *W = I->W;
  if (e->op == E_NUM)
    return rat_num(I, e->u.num);
  if (e->op == E_ONES && !is_scalar(W, e)) {
    size_t r = new_rat(I);
    fmpq_mpoly_one(&I->num[r], I->m);
    return r;
  }
  if (!is_op(W, e))
    return rat_image(I, e, 1);
  size_t r = new_rat(I);
  switch ((expr_op)e->op) {
  case E_NEG: {
    size_t a = rat_of(I, e->kid[0]);
    fmpq_mpoly_neg(&I->num[r], &I->num[a], I->m);
    fmpq_mpoly_set(&I->den[r], &I->den[a], I->m);
    break;
  }
  case E_ADD:
  case E_MUL:
  case E_HAD: {
    fmpq_mpoly_set_si(&I->num[r], e->op == E_ADD ? 0 : 1, I->m);
    for (size_t i = 0; i < e->nkids && !I->failed; i++) {
      size_t a = rat_of(I, e->kid[i]);
      if (I->failed)
        break;
      if (e->op == E_ADD)
        rat_add(I, r, r, a, 1);
      else
        rat_mul(I, r, r, a, false);
    }
    break;
  }
  case E_HDIV: {
    size_t a = rat_of(I, e->kid[0]);
    size_t b = I->failed ? 0 : rat_of(I, e->kid[1]);
    if (!I->failed) {
      if (fmpq_mpoly_is_zero(&I->num[b], I->m))
        I->failed = true;
      else
        rat_mul(I, r, a, b, true);
    }
    break;
  }
  case E_INV: {
    size_t a = rat_of(I, e->kid[0]);
    if (!I->failed) {
      if (fmpq_mpoly_is_zero(&I->num[a], I->m)) {
        I->failed = true;
      } else {
        fmpq_mpoly_set(&I->num[r], &I->den[a], I->m);
        fmpq_mpoly_set(&I->den[r], &I->num[a], I->m);
        make_primitive(I, &I->num[r], &I->den[r]);
      }
    }
    break;
  }
  case E_POW:
  case E_EPOW: {
    long k;
    expr_is_int(e->kid[1], &k);
    size_t a = rat_of(I, e->kid[0]);
    if (!I->failed) {
      if (k < 0 && fmpq_mpoly_is_zero(&I->num[a], I->m))
        I->failed = true;
      else
        rat_pow(I, r, a, k);
    }
    break;
  }
  default:
    I->failed = true;
  }
  return r;
}

static size_t rat_of(island *I, expr *e) {
  uintptr_t got = md_idmap_get(&I->rat, e);
  if (got)
    return (size_t)got - 1;
  size_t r = rat_node(I, e);
  md_idmap_put(&I->rat, e, r + 1);
  return r;
}

/* ---- writing a quotient ---- */

/* Whether P uses only scalar atoms (or none). */
static bool scalar_poly(island *I, const fmpq_mpoly_struct *p) {
  size_t n = I->atoms.n;
  if (n == 0)
    return true;
  slong *deg = xreallocarray(NULL, n, sizeof *deg);
  fmpq_mpoly_degrees_si(deg, p, I->m);
  bool s = true;
  for (size_t i = 0; i < n && s; i++)
    s = I->scalar[i] || deg[i] <= 0;
  free(deg);
  return s;
}

/* The term of P at index T: its coefficient times its monomial.  In a
 * polynomial with non-scalar atoms (VEC) a term of scalar atoms only
 * needs `ones` to have the island's shape (a number broadcasts). */
static expr *term_expr(island *I, const fmpq_mpoly_struct *p, slong t,
                       bool vec) {
  md_ctx *ctx = I->W->ctx;
  size_t n = I->atoms.n;
  ulong *ex = xreallocarray(NULL, n ? n : 1, sizeof *ex);
  fmpq_mpoly_get_term_exp_ui(ex, p, t, I->m);
  md_nodes sc = {0}, el = {0};
  for (size_t i = 0; i < n; i++) {
    if (!ex[i])
      continue;
    expr *a = I->atoms.v[i];
    expr *f = a;
    if (ex[i] > 1 && a->op != E_IDENT) { /* I .^ k is I */
      expr *k = expr_int(ctx, (long)ex[i]);
      f = I->scalar[i] ? expr_pow(ctx, a, k) : expr_epow(ctx, a, k);
    }
    md_nodes_push(I->scalar[i] ? &sc : &el, f);
  }
  free(ex);
  fmpq_t c;
  mpq_t q;
  fmpq_init(c);
  mpq_init(q);
  fmpq_mpoly_get_term_coeff_fmpq(c, p, t, I->m);
  fmpq_get_mpq(q, c);
  expr *r = NULL;
  bool bad = false;
  if (el.n == 0 && vec && sc.n) {
    /* c ones, alpha ones: the island's shape needs a vector */
    md_shapes *S = I->W->shapes;
    if (md_dim_is_one(S, I->shape.c))
      md_nodes_push(&el, expr_ones(ctx));
    else if (md_dim_is_one(S, I->shape.r))
      md_nodes_push(&el, expr_trans(ctx, expr_ones(ctx)));
    else
      bad = true; /* a matrix of ones has no name */
  }
  if (!bad) {
    md_nodes f = {0};
    bool one = mpq_cmp_ui(q, 1, 1) == 0;
    if (!one || (sc.n == 0 && el.n == 0))
      md_nodes_push(&f, expr_num(ctx, q));
    for (size_t i = 0; i < sc.n; i++)
      md_nodes_push(&f, sc.v[i]);
    if (el.n)
      md_nodes_push(&f,
                    el.n == 1 ? el.v[0] : expr_make(ctx, E_HAD, el.v, el.n));
    r = f.n == 1 ? f.v[0] : expr_mul_n(ctx, f.v, f.n);
    md_nodes_clear(&f);
  }
  md_nodes_clear(&sc);
  md_nodes_clear(&el);
  fmpq_clear(c);
  mpq_clear(q);
  return r;
}

/* P written out as a sum of terms. */
static expr *poly_expr(island *I, const fmpq_mpoly_struct *p) {
  bool vec = !scalar_poly(I, p);
  md_ctx *ctx = I->W->ctx;
  slong n = fmpq_mpoly_length(p, I->m);
  if (n == 0)
    return expr_int(ctx, 0);
  md_nodes t = {0};
  expr *r = NULL;
  bool ok = true;
  for (slong i = 0; i < n && ok; i++) {
    expr *x = term_expr(I, p, i, vec);
    ok = x != NULL;
    md_nodes_push(&t, x);
  }
  if (ok)
    r = t.n == 1 ? t.v[0] : expr_add_n(ctx, t.v, t.n);
  md_nodes_clear(&t);
  return r;
}

/* A product of polynomials F[i]^K[i], scalar ones apart: the scalar part
 * goes into *SC (a list of factors), the rest is the .* of *EL. */
typedef struct written {
  md_nodes sc, el;
  bool bad;
} written;

static void write_factor(island *I, written *w, const fmpq_mpoly_struct *f,
                         long k) {
  md_ctx *ctx = I->W->ctx;
  if (fmpq_mpoly_is_one(f, I->m) || k == 0)
    return;
  bool s = scalar_poly(I, f);
  if (fmpq_mpoly_length(f, I->m) > 1 && I->ident &&
      fmpq_mpoly_degree_si(f, (slong)I->ident - 1, I->m) > 0) {
    /* I in a sum (2 - I: a matrix of twos less I) reads as no author
     * writes it: I .* stays a mask of the diagonal */
    w->bad = true;
    return;
  }
  expr *x = poly_expr(I, f);
  if (!x) {
    w->bad = true;
    return;
  }
  if (k != 1) {
    expr *p = expr_int(ctx, k);
    x = s ? expr_pow(ctx, x, p) : expr_epow(ctx, x, p);
  }
  md_nodes_push(s ? &w->sc : &w->el, x);
}

static void written_clear(written *w) {
  md_nodes_clear(&w->sc);
  md_nodes_clear(&w->el);
}

/* C N / D, from the written numerator and denominator. */
static expr *assemble(island *I, const fmpq_t c, written *n, written *d) {
  md_ctx *ctx = I->W->ctx;
  if (n->bad || d->bad)
    return NULL;
  mpq_t q;
  mpq_init(q);
  fmpq_get_mpq(q, c);
  md_nodes f = {0};
  expr *qden = NULL; /* with split: the coefficient's denominator */
  if (I->split && d->el.n && mpz_cmp_ui(mpq_denref(q), 1) != 0) {
    mpq_t t;
    mpq_init(t);
    mpz_set(mpq_numref(t), mpq_denref(q));
    qden = expr_num(ctx, t);
    mpz_set_ui(mpq_denref(q), 1);
    mpq_clear(t);
  }
  if (mpq_cmp_ui(q, 1, 1) != 0)
    md_nodes_push(&f, expr_num(ctx, q));
  mpq_clear(q);
  for (size_t i = 0; i < n->sc.n; i++)
    md_nodes_push(&f, n->sc.v[i]);
  for (size_t i = 0; i < d->sc.n; i++)
    md_nodes_push(&f, expr_inv(ctx, d->sc.v[i]));
  expr *num = n->el.n == 0   ? NULL
              : n->el.n == 1 ? n->el.v[0]
                             : expr_make(ctx, E_HAD, n->el.v, n->el.n);
  expr *den = d->el.n == 0   ? NULL
              : d->el.n == 1 ? d->el.v[0]
                             : expr_make(ctx, E_HAD, d->el.v, d->el.n);
  if (den && qden)
    den = expr_mul(ctx, qden, den);
  expr *core = NULL;
  md_shapes *S = I->W->shapes;
  if (den) {
    core = expr_hdiv(ctx, num ? num : expr_int(ctx, 1), den);
  } else if (num) {
    core = num;
  } else if (md_shape_is_scalar(S, I->shape)) {
    core = f.n ? NULL : expr_int(ctx, 1); /* a scalar is its factors */
  } else if (md_dim_is_one(S, I->shape.c)) {
    core = expr_ones(ctx);
  } else if (md_dim_is_one(S, I->shape.r)) {
    core = expr_trans(ctx, expr_ones(ctx));
  } else { /* a matrix of ones: ones ones^T (each ones takes its size) */
    core = expr_mul(ctx, expr_ones(ctx), expr_trans(ctx, expr_ones(ctx)));
  }
  expr *r = NULL;
  if (core)
    md_nodes_push(&f, core);
  if (f.n)
    r = f.n == 1 ? f.v[0] : expr_mul_n(ctx, f.v, f.n);
  md_nodes_clear(&f);
  return r;
}

/* Whether the terms of P (two or more) share a monomial other than 1. */
static bool has_monomial(island *I, const fmpq_mpoly_struct *p) {
  if (fmpq_mpoly_length(p, I->m) < 2)
    return false;
  fmpq_mpoly_t m;
  fmpq_mpoly_init(m, I->m);
  fmpq_mpoly_term_content(m, p, I->m);
  bool r = !fmpq_mpoly_is_one(m, I->m);
  fmpq_mpoly_clear(m, I->m);
  return r;
}

/* The expanded quotient: P ./ Q. */
static expr *form_expanded(island *I, const fmpq_mpoly_struct *p,
                           const fmpq_mpoly_struct *q) {
  written wn = {0}, wd = {0};
  fmpq_t c;
  fmpq_init(c);
  fmpq_set_si(c, 1, 1);
  write_factor(I, &wn, p, 1);
  write_factor(I, &wd, q, 1);
  expr *r = assemble(I, c, &wn, &wd);
  written_clear(&wn);
  written_clear(&wd);
  fmpq_clear(c);
  return r;
}

/* Appends R to F's factors, to the first power, made primitive with a
 * positive first coefficient as fmpq_mpoly_factor makes its factors (the
 * number taken out goes into F's constant). */
static void push_factor(island *I, fmpq_mpoly_factor_struct *f,
                        const fmpq_mpoly_struct *r) {
  fmpq_t c;
  fmpq_init(c);
  signed_content(I, c, r);
  fmpq_mpoly_factor_fit_length(f, f->num + 1, I->m);
  fmpq_mpoly_scalar_div_fmpq(&f->poly[f->num], r, c, I->m);
  fmpz_one(&f->exp[f->num]);
  f->num++;
  fmpq_mul(f->constant, f->constant, c);
  fmpq_clear(c);
}

/* P's factors over the rationals, as fmpq_mpoly_factor gives them (the
 * variables of P's monomial content in their order, each to its power,
 * then a primitive part with integer coefficients, the first of them
 * positive, and the number before them all), when a variable occurs in
 * one term only of the rest R = P / monomial, and to the first power:
 * then R is irreducible.  (R = v a + b, with a a term and b free of v; a
 * factor g of R free of v divides a and so is a monomial, and divides b
 * too, so divides R's monomial content, which is 1.)  False, F untouched,
 * when no variable is so: FLINT factors then.  Most islands the
 * derivative makes are such sums of products of distinct atoms, and
 * FLINT's factoring takes the content of each variable in turn, with a
 * gcd each (41% of the instructions of tests/fuzz/regress/
 * dag-slow-numbers-112 in fuzz_dag). */
static bool factor_linear(island *I, fmpq_mpoly_factor_struct *f,
                          const fmpq_mpoly_struct *p) {
  slong nv = fmpq_mpoly_ctx_nvars(I->m), len = fmpq_mpoly_length(p, I->m);
  if (len < 2 || nv > (slong)MD_EW_MAX_ATOMS || p->zpoly->bits > FLINT_BITS)
    return false;
  fmpq_mpoly_t m, r;
  fmpq_mpoly_init(m, I->m);
  fmpq_mpoly_init(r, I->m);
  fmpq_mpoly_term_content(m, p, I->m);
  fmpq_mpoly_div(r, p, m, I->m);
  slong exp[MD_EW_MAX_ATOMS], terms[MD_EW_MAX_ATOMS] = {0},
                              deg[MD_EW_MAX_ATOMS] = {0};
  for (slong t = 0; t < len; t++) {
    fmpq_mpoly_get_term_exp_si(exp, r, t, I->m);
    for (slong v = 0; v < nv; v++)
      if (exp[v] > 0) {
        terms[v]++;
        deg[v] = exp[v] > deg[v] ? exp[v] : deg[v];
      }
  }
  bool linear = false;
  for (slong v = 0; v < nv && !linear; v++)
    linear = terms[v] == 1 && deg[v] == 1;
  if (linear) {
    fmpq_mpoly_degrees_si(exp, m, I->m);
    slong n = 0;
    for (slong v = 0; v < nv; v++)
      n += exp[v] > 0;
    fmpq_mpoly_factor_fit_length(f, n + 1, I->m);
    n = 0;
    for (slong v = 0; v < nv; v++)
      if (exp[v] > 0) {
        fmpq_mpoly_gen(&f->poly[n], v, I->m);
        fmpz_set_si(&f->exp[n++], exp[v]);
      }
    f->num = n;
    fmpq_one(f->constant);
    push_factor(I, f, r);
  }
  fmpq_mpoly_clear(m, I->m);
  fmpq_mpoly_clear(r, I->m);
  return linear;
}

/* P's factors over the rationals (the same as fmpq_mpoly_factor's, maybe
 * in another order), taking out first the factors the variables of degree
 * 1 give: when v is of degree 1 in P = a v + b (a, b free of v, a not 0),
 * g = gcd(a, b) and P = g R, where R = (a/g) v + b/g is irreducible (a
 * factor of R free of v divides a/g and b/g, whose gcd is 1) and g, free
 * of v, is factored in turn; with b = 0 the factor is v.  What is left,
 * with no variable of degree 1, FLINT factors (with FLINT; without it,
 * false when anything is left).  False when FLINT fails.
 * The islands of a derivative are mostly such sums of products, linear in
 * each atom, and FLINT takes the content of each variable in turn, a gcd
 * of all the coefficients each, then tests the rest for irreducibility:
 * on the 85 polynomials of 15 to 48 terms in 12 to 20 variables that the
 * fuzz_dag finding regress/dag-factor-multilinear-26 factors, 0.129 s in
 * FLINT, 0.007 s so (the same factors). */
static bool factor_split(island *I, fmpq_mpoly_factor_struct *f,
                         const fmpq_mpoly_struct *p, bool flint) {
  slong nv = fmpq_mpoly_ctx_nvars(I->m);
  fmpq_mpoly_factor_struct found; /* the R's, found in turn */
  fmpq_mpoly_factor_init(&found, I->m);
  fmpq_mpoly_t q, a, b, g;
  fmpq_mpoly_init(q, I->m);
  fmpq_mpoly_init(a, I->m);
  fmpq_mpoly_init(b, I->m);
  fmpq_mpoly_init(g, I->m);
  fmpq_mpoly_set(q, p, I->m);
  slong deg[MD_EW_MAX_ATOMS];
  bool ok = nv <= (slong)MD_EW_MAX_ATOMS;
  while (ok && !fmpq_mpoly_is_fmpq(q, I->m)) {
    fmpq_mpoly_degrees_si(deg, q, I->m);
    slong v = 0;
    while (v < nv && deg[v] != 1)
      v++;
    if (v == nv)
      break;
    const ulong one = 1, zero = 0;
    fmpq_mpoly_get_coeff_vars_ui(a, q, &v, &one, 1, I->m);
    fmpq_mpoly_get_coeff_vars_ui(b, q, &v, &zero, 1, I->m);
    if (fmpq_mpoly_is_zero(b, I->m)) { /* q = v a */
      fmpq_mpoly_gen(g, v, I->m);
      push_factor(I, &found, g);
      fmpq_mpoly_swap(q, a, I->m);
      continue;
    }
    if (!fmpq_mpoly_gcd(g, a, b, I->m) || !fmpq_mpoly_divides(a, q, g, I->m)) {
      ok = false;
      break;
    }
    push_factor(I, &found, a); /* R = q / g */
    fmpq_mpoly_swap(q, g, I->m);
  }
  if (ok && flint)
    ok = fmpq_mpoly_factor(f, q, I->m);
  else if (ok) /* ... or nothing when FLINT is not asked */
    ok = fmpq_mpoly_is_fmpq(q, I->m) && fmpq_mpoly_factor(f, q, I->m);
  for (slong i = 0; ok && i < found.num; i++) {
    fmpq_mpoly_factor_fit_length(f, f->num + 1, I->m);
    fmpq_mpoly_swap(&f->poly[f->num], &found.poly[i], I->m);
    fmpz_one(&f->exp[f->num]);
    f->num++;
  }
  if (ok)
    fmpq_mul(f->constant, f->constant, found.constant);
  fmpq_mpoly_clear(q, I->m);
  fmpq_mpoly_clear(a, I->m);
  fmpq_mpoly_clear(b, I->m);
  fmpq_mpoly_clear(g, I->m);
  fmpq_mpoly_factor_clear(&found, I->m);
  return ok;
}

/* The factored quotient: each of P and Q factored over the rationals;
 * with MONOMIAL only their common monomials taken out. */
static expr *form_factored(island *I, const fmpq_mpoly_struct *p,
                           const fmpq_mpoly_struct *q, bool monomial) {
  written wn = {0}, wd = {0};
  fmpq_t c;
  fmpq_init(c);
  fmpq_set_si(c, 1, 1);
  bool ok = true;
  const fmpq_mpoly_struct *side[2] = {p, q};
  written *w[2] = {&wn, &wd};
  for (int s = 0; s < 2 && ok; s++) {
    if (monomial) {
      fmpq_mpoly_t m, r;
      fmpq_mpoly_init(m, I->m);
      fmpq_mpoly_init(r, I->m);
      fmpq_mpoly_term_content(m, side[s], I->m);
      fmpq_mpoly_div(r, side[s], m, I->m);
      /* the content's coefficient is 1: the numbers stay in R */
      write_factor(I, w[s], m, 1);
      write_factor(I, w[s], r, 1);
      fmpq_mpoly_clear(m, I->m);
      fmpq_mpoly_clear(r, I->m);
      continue;
    }
    if (I->nfac == 0) { /* the numerator's, then the denominator's */
      I->facok = true;
      for (int t = 0; t < 2 && I->facok; t++) {
        fmpq_mpoly_factor_init(&I->fac[t], I->m);
        I->nfac++;
        I->facok = factor_linear(I, &I->fac[t], side[t]) ||
                   factor_split(I, &I->fac[t], side[t], true);
      }
    }
    ok = I->facok;
    if (ok) {
      const fmpq_mpoly_factor_struct *f = &I->fac[s];
      if (s == 0)
        fmpq_mul(c, c, f->constant);
      else
        fmpq_div(c, c, f->constant);
      for (slong i = 0; i < f->num; i++)
        write_factor(I, w[s], &f->poly[i], fmpz_get_si(&f->exp[i]));
    }
  }
  expr *r = ok ? assemble(I, c, &wn, &wd) : NULL;
  written_clear(&wn);
  written_clear(&wd);
  fmpq_clear(c);
  return r;
}

/* ---- the pass ---- */

static expr *normal(md_ew *W, expr *raw) {
  if (!raw || !md_shape_derive(W->shapes, raw))
    return NULL;
  return md_nf_of(W->N, raw);
}

static size_t size_of(md_ew *W, const expr *e) {
  return md_text_size(&W->size, e);
}

/* The names E shows (as a tree, saturated; + 1, so never 0 in the memo):
 * of two forms of
 * one size the one that names its parts fewer times reads better,
 * x .^ 2 rather than x .* x, x - x / alpha rather than
 * (alpha x - x) / alpha. */
static size_t leaves(md_ew *W, const expr *e) {
  uintptr_t got = md_idmap_get(&W->leaves, e);
  if (got)
    return (size_t)got - 1;
  /* an exponent is not a name of a part */
  size_t k = e->op == E_POW || e->op == E_EPOW ? 1 : e->nkids;
  size_t n = e->nkids == 0 && e->op != E_NUM ? 1 : 0;
  for (size_t i = 0; i < k && n < SIZE_MAX / 4; i++)
    n += leaves(W, e->kid[i]);
  md_idmap_put(&W->leaves, e, n + 1);
  return n;
}

/* Whether A is a better form than B: smaller, or as small with fewer
 * names shown. */
static bool better(md_ew *W, const expr *a, const expr *b) {
  size_t sa = size_of(W, a), sb = size_of(W, b);
  return sa < sb || (sa == sb && leaves(W, a) < leaves(W, b));
}

/* Whether a size A of a candidate fits the island's size B: the same,
 * or free (the fresh size of ones or I) where B is not 1. */
static bool dim_fits(md_ew *W, md_dim a, md_dim b) {
  return md_dim_equal(W->shapes, a, b) ||
         (md_dim_get(W->shapes, a).kind == MD_DIM_FREE &&
          !md_dim_is_one(W->shapes, b));
}

/* Keeps CAND in *BEST when it is normal, of E's shape, and smaller. */
static void consider(md_ew *W, island *I, expr **best, expr *cand) {
  expr *n = normal(W, cand);
  md_shape sh;
  if (!n || !known_shape(W, n, &sh))
    return;
  /* a number is no value of a vector or matrix (but 0, the zero of any
   * shape): a matrix of twos is 2 ones ones^T */
  if (n->op == E_NUM && mpq_sgn(n->u.num) &&
      !md_shape_is_scalar(W->shapes, I->shape))
    return;
  /* a closed term (ones) takes the sizes its place gives it, and so
   * does one scaled by a scalar (alpha ones): a free size fits */
  if (!(n->flags & EF_CLOSED) &&
      !(dim_fits(W, sh.r, I->shape.r) && dim_fits(W, sh.c, I->shape.c)))
    return;
  if (!*best || better(W, n, *best))
    *best = n;
}

static void island_clear(island *I) {
  for (int t = 0; t < I->nfac; t++)
    fmpq_mpoly_factor_clear(&I->fac[t], I->m);
  for (size_t i = 0; i < I->nrat; i++) {
    fmpq_mpoly_clear(&I->num[i], I->m);
    fmpq_mpoly_clear(&I->den[i], I->m);
  }
  free(I->num);
  free(I->den);
  if (I->has_ctx)
    fmpq_mpoly_ctx_clear(I->m);
  free(I->scalar);
  md_nodes_clear(&I->atoms);
  md_idmap_clear(&I->var);
  md_idmap_clear(&I->image);
  md_idmap_clear(&I->seen);
  md_idmap_clear(&I->rat);
  md_idmap_clear(&I->was);
}

/* The island at E as it was, with its atoms replaced by their images,
 * and the image FROM (if not NULL) by TO; MEMO by node id. */
static expr *rebuilt(island *I, expr *e, md_idmap *memo, expr *from, expr *to) {
  md_ew *W = I->W;
  expr *r = (expr *)md_idmap_get(memo, e);
  if (r)
    return r;
  if (e->op == E_NUM || (e->op == E_ONES && !is_scalar(W, e))) {
    r = e;
  } else if (!is_op(W, e)) {
    r = (expr *)md_idmap_get(&I->image, e);
    if (r && r == from)
      r = to;
  } else {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    r = e;
    for (size_t i = 0; i < e->nkids && r; i++) {
      expr *x = e->kid[i];
      if ((e->op == E_EPOW || e->op == E_POW) && i == 1) {
        k[i] = x;
      } else {
        k[i] = rebuilt(I, x, memo, from, to);
      }
      if (!k[i])
        r = NULL;
    }
    if (r)
      r = expr_rebuild(W->ctx, e, k);
    if (k != small)
      free(k);
  }
  if (r)
    md_idmap_put(memo, e, (uintptr_t)r);
  return r;
}

static expr *as_was(island *I, expr *e) {
  return rebuilt(I, e, &I->was, NULL, NULL);
}

/* Substitutions at most this deep inside one another. */
enum { MAX_SUB_NEST = 2 };

/* Each rule of rules/algebra.rules whose left side matches the atom FROM
 * gives a candidate, made by REPLACE (FROM by the right side), taken as
 * reduced; the smallest goes into *BEST when smaller than it:
 * exp(-z) ./ (1 + exp(-z)) .^ 2 is sigmoid(z) .* (1 - sigmoid(z)) by
 * exp(-X) = (1 - sigmoid(X)) ./ sigmoid(X). */
typedef expr *(*replace_fn)(void *arg, expr *from, expr *to);
/* Whether a substitution of TO for FROM can make something cancel. */
typedef bool (*helps_fn)(void *arg, expr *from, expr *to);

/* Whether a node of TO, at most DEPTH levels down and other than FROM,
 * is one that HAS (an atom of the island, a factor of the product):
 * then the substitution brings in something to cancel against
 * (sum(exp(z)) in exp(z) = sum(exp(z)) softmax(z)). */
static bool brings(const expr *to, const expr *from, int depth,
                   bool (*has)(void *arg, const expr *e), void *arg) {
  if (to == from)
    return false;
  if (has(arg, to))
    return true;
  for (size_t i = 0; depth > 0 && i < to->nkids; i++)
    if (brings(to->kid[i], from, depth - 1, has, arg))
      return true;
  return false;
}

static void try_subs(md_ew *W, expr *from, replace_fn replace, helps_fn helps,
                     void *arg, expr **best) {
  if (!W->R || W->canonical || W->nest >= MAX_SUB_NEST)
    return;
  for (size_t j = 0; j < W->R->nrw && !W->failed && W->subs; j++) {
    const md_rwrule *r = &W->R->rw[j];
    if (!r->sub)
      continue;
    expr *to = md_rewrite_one(W->ctx, W->shapes, r, from);
    if (!to || !helps(arg, from, to))
      continue;
    W->subs--;
    expr *n = normal(W, replace(arg, from, to));
    if (!n)
      continue;
    W->nest++;
    expr *c = ew(W, n);
    W->nest--;
    if (W->failed)
      return;
    if (c && (!*best || better(W, c, *best)))
      *best = c;
  }
}

typedef struct island_sub {
  island *I;
  expr *e;
  const fmpq_mpoly_struct *den; /* the island's denominator, or NULL */
} island_sub;

static bool island_has(void *arg, const expr *e) {
  island_sub *s = arg;
  return md_idmap_get(&s->I->var, e) != 0;
}

/* A substitution helps an island when the atom is in its denominator
 * (exp(-z) in 1 + exp(-z)) or brings in one of its atoms. */
static bool island_helps(void *arg, expr *from, expr *to) {
  island_sub *s = arg;
  island *I = s->I;
  uintptr_t v = md_idmap_get(&I->var, from);
  if (s->den && v && fmpq_mpoly_degree_si(s->den, (slong)v - 1, I->m) > 0)
    return true;
  return brings(to, from, 4, island_has, arg);
}

static expr *replace_in_island(void *arg, expr *from, expr *to) {
  island_sub *s = arg;
  md_idmap memo;
  md_idmap_init(&memo);
  expr *r = rebuilt(s->I, s->e, &memo, from, to);
  md_idmap_clear(&memo);
  return r;
}

typedef struct product_sub {
  md_ctx *ctx;
  expr *p;
} product_sub;

/* Whether E is a factor of the product, or the base of one (S in
 * S^-1). */
static bool product_has(void *arg, const expr *e) {
  product_sub *s = arg;
  for (size_t i = 0; i < s->p->nkids; i++) {
    const expr *k = s->p->kid[i];
    if (k == e || ((k->op == E_INV || k->op == E_POW) && k->kid[0] == e))
      return true;
  }
  return false;
}

static bool product_helps(void *arg, expr *from, expr *to) {
  return brings(to, from, 4, product_has, arg);
}

/* The product with its factor FROM replaced by TO. */
static expr *replace_in_product(void *arg, expr *from, expr *to) {
  product_sub *s = arg;
  expr *p = s->p;
  expr **k = xreallocarray(NULL, p->nkids, sizeof *k);
  for (size_t i = 0; i < p->nkids; i++)
    k[i] = p->kid[i] == from ? to : p->kid[i];
  expr *r = expr_rebuild(s->ctx, p, k);
  free(k);
  return r;
}

/* The 1×1 run u^T v as sum(u .* v) when the .* reduces so far that this
 * is smaller: (c ./ s)^T s is sum(c); NULL if it is not. */
static expr *inner_sum(md_ew *W, expr *run) {
  if (run->op != E_MUL || run->nkids != 2 || is_scalar(W, run->kid[1]))
    return NULL;
  expr *u = md_nf_trans(W->N, run->kid[0]);
  expr *w = u ? normal(W, expr_had(W->ctx, u, run->kid[1])) : NULL;
  w = w ? ew(W, w) : NULL;
  expr *c = w ? normal(W, expr_call1(W->ctx, FN_SUM, w)) : NULL;
  return c && better(W, c, run) ? c : NULL;
}

/* The product P with its 1×1 runs written as inner_sum does. */
static expr *inner_sums(md_ew *W, expr *p) {
  mpq_t c;
  mpq_init(c);
  md_nf_parts parts;
  md_nf_split(W->N, p, c, &parts);
  bool changed = false;
  md_nodes f = {0}; /* the number, the items so written, the chain */
  md_nodes_push(&f, expr_num(W->ctx, c));
  for (size_t i = 0; i < parts.nitem && !W->failed; i++) {
    expr *s = inner_sum(W, parts.item[i]);
    md_nodes_push(&f, s ? s : parts.item[i]);
    changed |= s != NULL;
  }
  expr *r = p;
  if (changed && !W->failed) {
    for (size_t i = 0; i < parts.nchain; i++)
      md_nodes_push(&f, parts.chain[i]);
    expr *n = normal(W, expr_mul_n(W->ctx, f.v, f.n));
    if (n && better(W, n, p))
      r = n;
  }
  md_nodes_clear(&f);
  md_nf_parts_clear(&parts);
  mpq_clear(c);
  return r;
}

/* A product of a chain: its scalar factors reduced as one scalar island,
 * so that 2 A x nu^-1 (1 + q / nu)^-1 is 2 A x / (nu + q). */
static expr *scalars_together(md_ew *W, expr *p) {
  mpq_t c;
  mpq_init(c);
  md_nf_parts parts;
  md_nf_split(W->N, p, c, &parts);
  expr *r = p;
  if (parts.nitem >= 1 && parts.nchain >= 1) {
    md_nodes f = {0};
    md_nodes_push(&f, expr_num(W->ctx, c));
    for (size_t i = 0; i < parts.nitem; i++)
      md_nodes_push(&f, parts.item[i]);
    expr *sc = f.n == 1 ? f.v[0] : normal(W, expr_mul_n(W->ctx, f.v, f.n));
    expr *red = sc && is_op(W, sc) ? ew(W, sc) : NULL;
    if (red && red != sc) {
      f.n = 0;
      md_nodes_push(&f, red);
      for (size_t i = 0; i < parts.nchain; i++)
        md_nodes_push(&f, parts.chain[i]);
      expr *n = normal(W, expr_mul_n(W->ctx, f.v, f.n));
      if (n && size_of(W, n) < size_of(W, p))
        r = n;
    }
    md_nodes_clear(&f);
  }
  md_nf_parts_clear(&parts);
  mpq_clear(c);
  return r;
}

/* The island rooted at E in its reduced form; NULL when it cannot be
 * read (too large, a division by zero), and *SKIP then. */
static expr *reduce_island(md_ew *W, expr *e, bool *skip) {
  island I = {.W = W};
  *skip = false;
  md_idmap_init(&I.var);
  md_idmap_init(&I.image);
  md_idmap_init(&I.seen);
  md_idmap_init(&I.rat);
  md_idmap_init(&I.was);
  expr *best = NULL;
  if (!known_shape(W, e, &I.shape)) {
    *skip = true;
    goto done;
  }
  collect(&I, e);
  if (I.failed || W->failed || I.too_big || I.atoms.n > MD_EW_MAX_ATOMS) {
    *skip = !W->failed;
    goto done;
  }
  if (!I.elementwise) {
    /* a sum or scaling alone is the normal form's, but for what a
     * substitution makes of it (exp(z) / sum(exp(z)) is softmax(z)) */
    expr *w = normal(W, as_was(&I, e));
    if (w) {
      island_sub is = {&I, e, NULL};
      expr *sub = NULL;
      for (size_t i = 0; i < I.atoms.n && !W->failed; i++)
        try_subs(W, I.atoms.v[i], replace_in_island, island_helps, &is, &sub);
      best = sub && size_of(W, sub) < size_of(W, w) ? sub : w;
    }
    *skip = !best && !W->failed;
    goto done;
  }
  sort_atoms(W->ctx, I.atoms.v, I.atoms.n);
  I.scalar = xcalloc(I.atoms.n ? I.atoms.n : 1, sizeof *I.scalar);
  for (size_t i = 0; i < I.atoms.n; i++) {
    md_idmap_put(&I.var, I.atoms.v[i], i + 1);
    I.scalar[i] = is_scalar(W, I.atoms.v[i]);
    if (I.atoms.v[i]->op == E_IDENT)
      I.ident = i + 1;
  }
  fmpq_mpoly_ctx_init(I.m, I.atoms.n ? (slong)I.atoms.n : 1, ORD_LEX);
  I.has_ctx = true;
  size_t r = rat_of(&I, e);
  if (I.failed) {
    /* too large (or a quotient by 0): as it was, its atoms reduced, not
     * taken apart into smaller islands that would each fail in turn */
    best = normal(W, as_was(&I, e));
    *skip = !best && !W->failed;
    goto done;
  }
  const fmpq_mpoly_struct *p = &I.num[r], *q = &I.den[r];
  if (fmpq_mpoly_is_zero(p, I.m)) {
    best = expr_int(W->ctx, 0);
    goto done;
  }
  if (W->canonical) {
    best = normal(W, form_expanded(&I, p, q));
  } else {
    /* numbers go into a quotient first (a ./ (2 sqrt(x))) */
    for (int split = 1; split >= 0; split--) {
      I.split = split;
      consider(W, &I, &best, form_factored(&I, p, q, false));
      consider(W, &I, &best, form_factored(&I, p, q, true));
      /* expanding a common monomial into a sum collects nothing: then
       * it stays out, as authors write it (2 tanh(x) .* (1 - tanh(x) .^
       * 2), not 2 (tanh(x) - tanh(x) .^ 3)) */
      if (!has_monomial(&I, p) && !has_monomial(&I, q))
        consider(W, &I, &best, form_expanded(&I, p, q));
    }
    /* the island as it was when that is smaller: a sum of products that
     * neither expands nor factors shorter ((a + b) .* (c + d) + e) */
    expr *was = as_was(&I, e);
    if (was) {
      expr *w = normal(W, was);
      if (w && (!best || better(W, w, best)))
        best = w;
    }
    island_sub is = {&I, e, q};
    for (size_t i = 0; i < I.atoms.n && !W->failed; i++)
      try_subs(W, I.atoms.v[i], replace_in_island, island_helps, &is, &best);
  }
  if (!best)
    *skip = true;
done:
  island_clear(&I);
  return best;
}

/* E's kids through the pass, E rebuilt when one changed. */
static expr *rebuild(md_ew *W, expr *e) {
  if (!e->nkids)
    return e;
  expr *small[4];
  expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
  bool changed = false;
  expr *r = e;
  for (size_t i = 0; i < e->nkids; i++) {
    if (!(k[i] = ew(W, e->kid[i]))) {
      r = NULL;
      break;
    }
    changed |= k[i] != e->kid[i];
  }
  if (r && changed) {
    expr *raw = e->op == E_DIFF || e->op == E_HESS
                    ? expr_make(W->ctx, (expr_op)e->op, k, e->nkids)
                    : expr_rebuild(W->ctx, e, k);
    if (!raw)
      r = NULL; /* too deep */
    else if (md_shape_derive(W->shapes, raw))
      r = md_nf_of(W->N, raw);
    if (r && r != e)
      r = md_nf_shaped(W->N, e, r); /* sigmoid(X - X) is no scalar */
    else
      r = e; /* no value (0^-1 below): left as it was */
  }
  if (k != small)
    free(k);
  return r;
}

static expr *ew(md_ew *W, expr *e) {
  if (W->failed)
    return NULL;
  expr *r = (expr *)md_idmap_get(&W->memo, e);
  if (r)
    return r;
  r = NULL;
  bool skip = true;
  if (is_op(W, e)) {
    r = reduce_island(W, e, &skip);
  }
  if (!r && skip) {
    r = rebuild(W, e);
    if (r && r->op == E_MUL && !W->canonical)
      r = inner_sums(W, r);
    if (r && r->op == E_MUL && !is_op(W, r))
      r = scalars_together(W, r);
    if (r && r->op == E_MUL) { /* M^T exp(M v) / sum(exp(M v)) */
      product_sub ps = {W->ctx, r};
      for (size_t i = 0; i < ps.p->nkids && !W->failed; i++)
        if (ps.p->kid[i]->op == E_CALL)
          try_subs(W, ps.p->kid[i], replace_in_product, product_helps, &ps, &r);
    }
  }
  if (!r) {
    W->failed = true;
    return NULL;
  }
  md_idmap_put(&W->memo, e, (uintptr_t)r);
  return r;
}

/* ---- the interface ---- */

md_ew *md_ew_new(md_ctx *ctx, md_shapes *shapes, md_nf *N, const md_rules *R,
                 bool canonical) {
  md_ew *W = xcalloc(1, sizeof *W);
  *W = (md_ew){.ctx = ctx,
               .shapes = shapes,
               .N = N,
               .R = R,
               .subs = MD_EW_MAX_SUBS,
               .canonical = canonical,
               .floor = md_work_budget(MD_EW_WORK_FLOOR),
               .per_node = md_work_budget(MD_EW_WORK_PER_NODE)};
  md_idmap_init(&W->memo);
  md_idmap_init(&W->size);
  md_idmap_init(&W->leaves);
  return W;
}

void md_ew_free(md_ew *W) {
  if (!W)
    return;
  md_idmap_clear(&W->memo);
  md_idmap_clear(&W->size);
  md_idmap_clear(&W->leaves);
  free(W);
}

/* Every node may be the root of an island, and islands overlap (t_k =
 * sigmoid(t_(k-1)) .* t_(k-1) - 2 t_(k-1) - ...: each one's walk goes
 * down through the ones before it, up to MD_EW_MAX_NODES), so the nodes
 * collected are bounded in all: MD_EW_WORK_PER_NODE for each node not
 * seen by an earlier call, and a floor (both lowered with
 * MATDIFF_SIMPLIFY_WORK, md_work_budget, as the simplifier's are).  At k = 39
 * that walk took 15 s of the fuzzers' 5 under the sanitizers. */
expr *md_ew_apply(md_ew *W, expr *e) {
  if (!e)
    return NULL;
  W->budget = W->work + W->floor + W->per_node * expr_dag_size_new(e, &W->memo);
  return ew(W, e);
}
