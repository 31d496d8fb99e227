/* simplify.c - the obvious identities, bottom up; see simplify.h. */
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

typedef struct simp {
  md_ctx *ctx;
  md_shapes *shapes;
  expr **memo; /* by node id */
  size_t nmemo;
  size_t *slot; /* by node id: scratch for collecting terms, 0 = none */
  size_t nslot;
} simp;

/* Exponents beyond this are left unexpanded: 2^100000 is no help. */
enum { MAX_FOLD_EXP = 4096 };

static expr *simp_rec(simp *S, expr *e);
static expr *simp_node(simp *S, expr *e);

static bool is_scalar(simp *S, expr *e) {
  if (!e)
    return false;
  if (e->op == E_NUM)
    return true;
  md_shape_derive(S->shapes, e);
  return md_shape_known(S->shapes, e) &&
         md_shape_is_scalar(S->shapes, md_shape_of(S->shapes, e));
}

/* Records the shape of a node we built, so parents can ask for it. */
static expr *built(simp *S, expr *e) {
  if (e)
    md_shape_derive(S->shapes, e);
  return e;
}

static expr *num(simp *S, const mpq_t q) {
  return expr_num(S->ctx, q);
}

/* ---- sums: like terms collected with rational coefficients ---- */

typedef struct term {
  mpq_t c;
  expr *base; /* NULL for the constant term */
} term;

/* Splits T into c * base. */
static void split(expr *t, mpq_t c, expr **base) {
  mpq_set_ui(c, 1, 1);
  for (;;) {
    if (t->op == E_NEG) {
      mpq_neg(c, c);
      t = t->kid[0];
      continue;
    }
    break;
  }
  if (t->op == E_NUM) {
    mpq_mul(c, c, t->u.num);
    *base = NULL;
    return;
  }
  *base = t;
}

static expr *scale(simp *S, const mpq_t c, expr *base) {
  if (!base)
    return num(S, c);
  if (mpq_cmp_ui(c, 1, 1) == 0)
    return base;
  if (mpq_cmp_si(c, -1, 1) == 0)
    return built(S, expr_neg(S->ctx, base));
  /* BASE is simplified and has no leading number of its own. */
  return built(S, expr_mul(S->ctx, num(S, c), base));
}

static void ensure_slots(simp *S) {
  size_t n = md_ctx_nnodes(S->ctx);
  if (n <= S->nslot)
    return;
  if (n < 2 * S->nslot)
    n = 2 * S->nslot;
  S->slot = xreallocarray(S->slot, n, sizeof *S->slot);
  memset(S->slot + S->nslot, 0, (n - S->nslot) * sizeof *S->slot);
  S->nslot = n;
}

static expr *simp_add(simp *S, expr *e) {
  size_t n = e->nkids;
  /* t[0] is the constant term; order[] is the order of first occurrence,
   * which the result keeps. */
  term *t = xreallocarray(NULL, n + 1, sizeof *t);
  size_t *order = xreallocarray(NULL, n + 1, sizeof *order);
  size_t nt = 1, norder = 0;
  bool have_const = false;
  mpq_init(t[0].c);
  t[0].base = NULL;
  mpq_t c;
  mpq_init(c);
  for (size_t i = 0; i < n; i++) {
    expr *b;
    split(e->kid[i], c, &b);
    /* c * rest, with c pulled out of a product's leading number */
    if (b && b->op == E_MUL && b->kid[0]->op == E_NUM) {
      mpq_mul(c, c, b->kid[0]->u.num);
      b = built(S, expr_mul_n(S->ctx, b->kid + 1, b->nkids - 1));
    }
    ensure_slots(S);
    if (!b) {
      mpq_add(t[0].c, t[0].c, c);
      if (!have_const)
        order[norder++] = 0;
      have_const = true;
      continue;
    }
    size_t j = S->slot[b->id];
    if (!j) {
      j = nt++;
      mpq_init(t[j].c);
      mpq_set(t[j].c, c);
      t[j].base = b;
      S->slot[b->id] = j;
      order[norder++] = j;
    } else {
      mpq_add(t[j].c, t[j].c, c);
    }
  }
  mpq_clear(c);
  expr **out = xreallocarray(NULL, nt, sizeof *out);
  size_t m = 0;
  for (size_t i = 0; i < norder; i++) {
    size_t j = order[i];
    if (j)
      S->slot[t[j].base->id] = 0;
    if (mpq_sgn(t[j].c))
      out[m++] = scale(S, t[j].c, t[j].base);
  }
  if (m == 0)
    out[m++] = num(S, t[0].c);
  for (size_t j = 0; j < nt; j++)
    mpq_clear(t[j].c);
  free(t);
  free(order);
  expr *r = built(S, expr_add_n(S->ctx, out, m));
  free(out);
  return r;
}

/* ---- products ---- */

static expr *simp_mul(simp *S, expr *e) {
  size_t n = e->nkids;
  expr **v = xreallocarray(NULL, n, sizeof *v);
  size_t m = 0;
  bool had_ident = false;
  mpq_t c;
  mpq_init(c);
  mpq_set_ui(c, 1, 1);
  for (size_t i = 0; i < n; i++) {
    expr *k = e->kid[i];
    while (k->op == E_NEG) {
      mpq_neg(c, c);
      k = k->kid[0];
    }
    if (k->op == E_NUM)
      mpq_mul(c, c, k->u.num);
    else if (k->op == E_IDENT)
      had_ident = true; /* A I = A */
    else
      v[m++] = k;
  }
  /* s I and x^T y I are matrices: I stays when what remains is a scalar
   * and the product was not (x^T I y is a scalar: there I goes). */
  if (had_ident && m > 0 && !is_scalar(S, e) &&
      is_scalar(S, built(S, expr_mul_n(S->ctx, v, m))))
    v[m++] = expr_ident(S->ctx);
  expr *r;
  if (mpq_sgn(c) == 0)
    r = num(S, c); /* a zero factor: the zero of the product's shape */
  else if (m == 0)
    r = had_ident ? scale(S, c, expr_ident(S->ctx)) : num(S, c);
  else
    r = scale(S, c, built(S, expr_mul_n(S->ctx, v, m)));
  mpq_clear(c);
  free(v);
  return r;
}

static expr *simp_had(simp *S, expr *e) {
  size_t n = e->nkids;
  expr **v = xreallocarray(NULL, n, sizeof *v);
  size_t m = 0;
  mpq_t c;
  mpq_init(c);
  mpq_set_ui(c, 1, 1);
  for (size_t i = 0; i < n; i++) {
    expr *k = e->kid[i];
    while (k->op == E_NEG) {
      mpq_neg(c, c);
      k = k->kid[0];
    }
    if (k->op == E_NUM)
      mpq_mul(c, c, k->u.num);
    else
      v[m++] = k;
  }
  expr *r;
  if (mpq_sgn(c) == 0 || m == 0)
    r = num(S, c);
  else
    r = scale(S, c, built(S, m == 1 ? v[0] : expr_make(S->ctx, E_HAD, v, m)));
  mpq_clear(c);
  free(v);
  return r;
}

/* x^k of a number, exactly, when the result is small enough. */
static expr *fold_pow(simp *S, expr *base, expr *k) {
  long n;
  if (base->op != E_NUM || !expr_is_int(k, &n) || n < 0 || n > MAX_FOLD_EXP)
    return NULL;
  if (mpz_sizeinbase(mpq_numref(base->u.num), 2) * (size_t)n > 65536 ||
      mpz_sizeinbase(mpq_denref(base->u.num), 2) * (size_t)n > 65536)
    return NULL;
  mpq_t q;
  mpq_init(q);
  mpz_pow_ui(mpq_numref(q), mpq_numref(base->u.num), (unsigned long)n);
  mpz_pow_ui(mpq_denref(q), mpq_denref(base->u.num), (unsigned long)n);
  mpq_canonicalize(q);
  expr *r = num(S, q);
  mpq_clear(q);
  return r;
}

/* ---- one node whose kids are simplified ---- */

static expr *simp_node(simp *S, expr *e) {
  if (!e)
    return NULL;
  md_ctx *ctx = S->ctx;
  expr *a = e->nkids ? e->kid[0] : NULL;
  switch ((expr_op)e->op) {
  case E_ADD:
    return simp_add(S, e);
  case E_NEG:
    if (a->op == E_NEG)
      return a->kid[0];
    return built(S, e);
  case E_MUL:
    return simp_mul(S, e);
  case E_DIV:
    if (e->kid[1]->op == E_NUM && mpq_sgn(e->kid[1]->u.num)) {
      mpq_t q;
      mpq_init(q);
      mpq_inv(q, e->kid[1]->u.num);
      expr *r = simp_node(S, expr_mul(ctx, num(S, q), a));
      mpq_clear(q);
      return r;
    }
    return built(S, e);
  case E_HAD:
    return simp_had(S, e);
  case E_HDIV:
    if (expr_is_one(e->kid[1]))
      return a;
    if (expr_is_zero(a))
      return a;
    return built(S, e);
  case E_TRANS:
    if (a->op == E_TRANS)
      return a->kid[0]; /* (A^T)^T = A */
    if (a->op == E_IDENT || a->op == E_NUM || is_scalar(S, a))
      return a; /* I^T = I; a scalar is its own transpose */
    return built(S, e);
  case E_INV:
    if (a->op == E_INV)
      return a->kid[0];
    if (a->op == E_IDENT)
      return a;
    if (a->op == E_NUM && mpq_sgn(a->u.num)) {
      mpq_t q;
      mpq_init(q);
      mpq_inv(q, a->u.num);
      expr *r = num(S, q);
      mpq_clear(q);
      return r;
    }
    return built(S, e);
  case E_POW: {
    expr *k = e->kid[1];
    if (expr_is_one(k))
      return a;
    if (expr_is_zero(k))
      return is_scalar(S, a) ? expr_int(ctx, 1) : expr_ident(ctx);
    if (a->op == E_IDENT)
      return a;
    expr *f = fold_pow(S, a, k);
    return f ? f : built(S, e);
  }
  case E_EPOW: {
    expr *k = e->kid[1];
    if (expr_is_one(k))
      return a;
    expr *f = fold_pow(S, a, k);
    return f ? f : built(S, e);
  }
  case E_CALL:
    switch (e->u.fn) {
    case FN_TR:
      if (a->op == E_TRANS)
        return simp_node(S, expr_call1(ctx, FN_TR, a->kid[0]));
      if (is_scalar(S, a))
        return a; /* tr(s) = s */
      break;
    case FN_DET:
      if (a->op == E_IDENT)
        return expr_int(ctx, 1);
      break;
    case FN_LOGDET:
      if (a->op == E_IDENT)
        return expr_int(ctx, 0);
      break;
    case FN_ABS:
    case FN_NORM2:
    case FN_NORM1:
      if (a->op == E_NUM) {
        mpq_t q;
        mpq_init(q);
        mpq_abs(q, a->u.num);
        expr *r = num(S, q);
        mpq_clear(q);
        return r;
      }
      break;
    case FN_SIGN:
      if (a->op == E_NUM)
        return expr_int(ctx, mpq_sgn(a->u.num));
      break;
    case FN_RELU:
      if (a->op == E_NUM)
        return mpq_sgn(a->u.num) > 0 ? a : expr_int(ctx, 0);
      break;
    case FN_EXP:
      if (expr_is_zero(a))
        return expr_int(ctx, 1);
      break;
    case FN_LOG:
      if (expr_is_one(a))
        return expr_int(ctx, 0);
      break;
    case FN_SQRT:
      if (expr_is_zero(a) || expr_is_one(a))
        return a;
      break;
    default:
      break;
    }
    return built(S, e);
  default:
    return built(S, e);
  }
}

static expr *simp_rec(simp *S, expr *e) {
  if (e->id < S->nmemo && S->memo[e->id])
    return S->memo[e->id];
  expr *r = e;
  if (e->nkids) {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    bool changed = false;
    for (size_t i = 0; i < e->nkids; i++) {
      k[i] = simp_rec(S, e->kid[i]);
      if (!k[i]) {
        if (k != small)
          free(k);
        return NULL;
      }
      changed |= k[i] != e->kid[i];
    }
    r = changed ? expr_rebuild(S->ctx, e, k) : e;
    if (k != small)
      free(k);
  }
  r = built(S, simp_node(S, r)); /* every result has a shape */
  if (r && e->id < S->nmemo)
    S->memo[e->id] = r;
  return r;
}

expr *md_simplify(md_ctx *ctx, md_shapes *shapes, expr *e) {
  simp S = {ctx, shapes, NULL, md_ctx_nnodes(ctx), NULL, 0};
  S.memo = xcalloc(S.nmemo, sizeof *S.memo);
  expr *r = simp_rec(&S, e);
  free(S.memo);
  free(S.slot);
  return r;
}
