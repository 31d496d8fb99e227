/* normal.c - the normal form and the canonical order; see normal.h. */
#include "normal.h"

#include "blocks.h"

#include <stdlib.h>
#include <string.h>

enum {
  MAX_FOLD_EXP = 4096,   /* numeric powers beyond this stay unexpanded */
  MAX_ROTATE = 256,      /* longer traces are not rotated */
  EXPAND_BUDGET = 20000, /* terms made by distributing, per md_nf */
  MAX_UNFOLD = 64,       /* factors of a power of a product unfolded */
  MAX_UNFOLD_ALL = 256,  /* ... of all of them in one product */
  MAX_PERIOD = 8,        /* longest repeat folded into a power */
  MAX_TRANS_DEPTH = 4,   /* levels searched for transposes (had_oriented) */
  LEAD_DEPTH = 64,       /* levels searched for a term's lead (lead) */
  /* A flat product may have CHAIN_FLOOR factors, and CHAIN_PER_NODE more
   * for each distinct node normalised: a product as long as the input is
   * fine (tr(A1 ... A100000 X)), one that only sharing made exponential
   * is too large (t_k = t_(k-1)' A t_(k-1), 2^k factors: its normal form
   * took 15 s to reach the size budget at k = 21) */
  CHAIN_FLOOR = 1 << 13,
  CHAIN_PER_NODE = 16,
  MAX_TRANS_SEEN = 256, /* ... and nodes */
  MAX_PEEL = 4, /* scalars taken out of a long product (prod_add_whole) */
};

/* A chain reduced: a stack of powers of bases, each with the factor it
 * came in as while nothing combined with it (ORIG: the node mkpow would
 * make again, found in the node table at a cost, 1.7 million times for
 * a where chain's normal form), else NULL.  One per md_nf, reused:
 * reduce_chain does not nest, and its exponents' limbs stay allocated
 * from chain to chain. */
typedef struct stack {
  expr **base, **orig;
  mpq_t *ex;
  size_t n, cap;
  bool busy;
} stack;

struct md_nf {
  md_ctx *ctx;
  md_shapes *shapes;
  bool expand;
  bool failed; /* a result was too deep, or the budget ran out */
  long budget;
  size_t max_chain; /* factors of a flat product (CHAIN_FLOOR) */
  /* while a trace is taken: the size of its matrix when that is an
   * integer (tr(I) is then that number), else 0 */
  long tr_size;
  /* by node id */
  md_idmap memo;  /* normal form */
  md_idmap tmemo; /* transpose of a normal node */
  md_idmap prim;  /* primitive part of a normal sum */
  md_idmap cont;  /* its content, a number */
  md_idmap uses;  /* parents among the nodes to normalise (count_uses) */
  md_idmap sums;  /* the sums nsum built: terms sorted, distinct */
  md_idmap rest;  /* c A B ... -> A B ... (md_nf_coef) */
  md_idmap chain; /* c s t A B ... -> A B ..., a long product (prod_add) */
  md_idmap split; /* md_nf_split's result: its index in splits, plus 1 */
  struct split_entry *splits; /* each split made (their arrays N's) */
  size_t nsplits, capsplits;
  stack stack; /* reduce_chain's */
};

typedef struct split_entry {
  mpq_t c;
  expr **item, **chain;
  size_t nitem, nchain;
} split_entry;

/* ---- small helpers ---- */

/* The first array comes from the thread's cache of small blocks (most
 * lists stay within it), a larger one from malloc (blocks.h). */

void md_nodes_push(md_nodes *a, expr *e) {
  if (a->n == a->cap) {
    if (a->cap) {
      a->cap *= 2;
      a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
    } else {
      a->cap = MD_NODES_FIRST;
      a->v = md_block_get(MD_BLOCK_NODES);
    }
  }
  a->v[a->n++] = e;
}

void md_nodes_clear(md_nodes *a) {
  if (a->cap == MD_NODES_FIRST)
    md_block_put(MD_BLOCK_NODES, a->v);
  else
    free(a->v);
  *a = (md_nodes){0};
}

/* ---- maps keyed by node id ---- */

static expr *get(const md_idmap *m, const expr *e) {
  return (expr *)md_idmap_get(m, e);
}

/* Records the shape of a node we built, so that parents can ask for it;
 * NULL (too deep) marks the whole result as failed. */
static expr *built(md_nf *N, expr *e) {
  if (!e) {
    N->failed = true;
    return NULL;
  }
  md_shape_derive(N->shapes, e);
  return e;
}

static expr *num(md_nf *N, const mpq_t q) {
  return expr_num(N->ctx, q);
}

/* The shape of E; false when it has none (0^-1 inside: no value). */
static bool shape(md_nf *N, expr *e, md_shape *sh) {
  if (!md_shape_derive(N->shapes, e) || !md_shape_known(N->shapes, e))
    return false;
  *sh = md_shape_of(N->shapes, e);
  return true;
}

static bool is_scalar(md_nf *N, expr *e) {
  if (e->op == E_NUM)
    return true;
  md_shape_derive(N->shapes, e);
  return md_shape_known(N->shapes, e) &&
         md_shape_is_scalar(N->shapes, md_shape_of(N->shapes, e));
}

static bool rows_one(md_nf *N, expr *e) {
  md_shape s;
  return shape(N, e, &s) && md_dim_is_one(N->shapes, s.r);
}
static bool cols_one(md_nf *N, expr *e) {
  md_shape s;
  return shape(N, e, &s) && md_dim_is_one(N->shapes, s.c);
}
static bool is_square(md_nf *N, expr *e) {
  md_shape s;
  return shape(N, e, &s) && md_dim_equal(N->shapes, s.r, s.c);
}

/* The number of rows (COLS: columns) of E when that is an integer, else
 * 0. */
static long int_size(md_nf *N, expr *e, bool cols) {
  md_shape s;
  if (!shape(N, e, &s))
    return 0;
  md_dim_info d = md_dim_get(N->shapes, cols ? s.c : s.r);
  return d.kind == MD_DIM_INT ? d.value : 0;
}

static bool q_is(const mpq_t q, long v) {
  return mpq_cmp_si(q, v, 1) == 0;
}
static bool q_is_int(const mpq_t q) {
  return mpz_cmp_ui(mpq_denref(q), 1) == 0;
}

/* Whether Q is 1 or -1 (0 otherwise), read from its limbs. */
int md_q_unit(const mpq_t q) {
  mpz_srcptr n = mpq_numref(q), d = mpq_denref(q);
  if (mpz_size(n) != 1 || mpz_getlimbn(n, 0) != 1 || mpz_size(d) != 1 ||
      mpz_getlimbn(d, 0) != 1)
    return 0;
  return mpz_sgn(n);
}

void md_q_mul_in(mpq_t r, const mpq_t b) {
  int u = md_q_unit(b);
  if (u) {
    if (u < 0)
      mpq_neg(r, r);
    return;
  }
  if ((u = md_q_unit(r))) {
    mpq_set(r, b);
    if (u < 0)
      mpq_neg(r, r);
    return;
  }
  mpq_mul(r, r, b);
}

void md_q_div(mpq_t r, const mpq_t a, const mpq_t b) {
  int u = md_q_unit(b);
  if (u) {
    mpq_set(r, a);
    if (u < 0)
      mpq_neg(r, r);
  } else if (mpq_equal(a, b)) {
    mpq_set_ui(r, 1, 1);
  } else {
    mpq_div(r, a, b);
  }
}

/* A stable merge sort with a context argument (qsort has none). */
typedef int (*cmp_fn)(const void *a, const void *b, void *arg);

/* How many of sorted V[0..n) CMP puts before X, and with AND_EQUAL those
 * it puts level with X too. */
static size_t rank_of(const char *v, size_t n, size_t size, const char *x,
                      bool and_equal, cmp_fn cmp, void *arg) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cmp(v + mid * size, x, arg) < (int)and_equal)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* A stable merge sort that costs n - 1 comparisons on sorted input, and
 * O(n + log^2 n) on a sorted run with a term put after it: the terms of a
 * normal sum come sorted, and the sums of t_k = t_(k-1) + sin(t_(k-1))
 * are each the last one and a term more (k = 1500: 16 s, most of it
 * comparing terms again).  Halves already in order are not merged; a
 * merge leaves out the head of the left half that is before the whole
 * right half, and the tail of the right half after the whole left one. */
static void msort_rec(char *v, char *tmp, size_t n, size_t size, cmp_fn cmp,
                      void *arg) {
  if (n < 2)
    return;
  size_t h = n / 2;
  msort_rec(v, tmp, h, size, cmp, arg);
  msort_rec(v + h * size, tmp, n - h, size, cmp, arg);
  if (cmp(v + h * size, v + (h - 1) * size, arg) >= 0)
    return;
  size_t i = rank_of(v, h, size, v + h * size, true, cmp, arg);
  size_t e = h + rank_of(v + h * size, n - h, size, v + (h - 1) * size, false,
                         cmp, arg);
  /* merge v[i..h) and v[h..e) into tmp, then back into v[i..e) */
  size_t a = i, b = h, k = 0;
  while (a < h && b < e) {
    if (cmp(v + b * size, v + a * size, arg) < 0)
      memcpy(tmp + k++ * size, v + b++ * size, size);
    else
      memcpy(tmp + k++ * size, v + a++ * size, size);
  }
  while (a < h)
    memcpy(tmp + k++ * size, v + a++ * size, size);
  while (b < e)
    memcpy(tmp + k++ * size, v + b++ * size, size);
  memcpy(v + i * size, tmp, k * size);
}

static void msort(void *v, size_t n, size_t size, cmp_fn cmp, void *arg) {
  if (n < 2)
    return;
  char *tmp = xreallocarray(NULL, n, size);
  msort_rec(v, tmp, n, size, cmp, arg);
  free(tmp);
}

/* ---- the canonical order ---- */

static bool is_decor(const expr *e) {
  switch ((expr_op)e->op) {
  case E_TRANS:
  case E_INV:
  case E_POW:
  case E_EPOW:
  case E_NEG:
    return true;
  default:
    return false;
  }
}

static int decor_rank(const expr *e) {
  switch ((expr_op)e->op) {
  case E_INV:
    return 0;
  case E_POW:
    return 1;
  case E_TRANS:
    return 2;
  case E_EPOW:
    return 3;
  default:
    return 4; /* E_NEG */
  }
}

/* Bases: numbers, then names, then bracketed compounds. */
static int base_class(const expr *e) {
  switch ((expr_op)e->op) {
  case E_NUM:
    return 0;
  case E_SYM:
  case E_IDENT:
  case E_ONES:
  case E_CALL:
    return 1;
  default:
    return 2;
  }
}

static const char *base_name(const md_ctx *ctx, const expr *e) {
  switch ((expr_op)e->op) {
  case E_SYM:
    return e->u.name;
  case E_IDENT:
    return "I";
  case E_ONES:
    return "ones";
  default:
    return md_fn_get(ctx, e->u.fn)->name;
  }
}

static int name_sub(const expr *e) {
  return e->op == E_SYM ? 0 : e->op == E_IDENT ? 1 : e->op == E_ONES ? 2 : 3;
}

static int sgn(int c) {
  return (c > 0) - (c < 0);
}

static int cmp_stream(const md_ctx *ctx, const expr *a, const expr *b);

static int cmp_seq(const md_ctx *ctx, expr *const *a, size_t na, expr *const *b,
                   size_t nb) {
  for (size_t i = 0; i < na && i < nb; i++) {
    int c = cmp_stream(ctx, a[i], b[i]);
    if (c)
      return c;
  }
  return (na > nb) - (na < nb);
}

/* Atoms and bracketed compounds: the start of a factor. */
static int cmp_base(const md_ctx *ctx, const expr *a, const expr *b) {
  if (a == b)
    return 0;
  int ca = base_class(a), cb = base_class(b);
  if (ca != cb)
    return ca < cb ? -1 : 1;
  int c;
  switch (ca) {
  case 0:
    return sgn(mpq_cmp(a->u.num, b->u.num));
  case 1:
    c = strcmp(base_name(ctx, a), base_name(ctx, b));
    if (c)
      return sgn(c);
    c = name_sub(a) - name_sub(b);
    if (c)
      return sgn(c);
    return cmp_seq(ctx, a->kid, a->nkids, b->kid, b->nkids);
  default:
    if (a->op != b->op)
      return a->op < b->op ? -1 : 1;
    if (a->op == E_MUL)
      return cmp_stream(ctx, a, b);
    return cmp_seq(ctx, a->kid, a->nkids, b->kid, b->nkids);
  }
}

/* The decorations of F from the inside out, in BUF (or a new array). */
static const expr **decor_list(const expr *f, const expr **buf, size_t nbuf,
                               size_t *n, const expr **base) {
  size_t k = 0;
  const expr *p = f;
  while (is_decor(p)) {
    k++;
    p = p->kid[0];
  }
  const expr **d = k <= nbuf ? buf : xreallocarray(NULL, k, sizeof *d);
  p = f;
  for (size_t i = k; i-- > 0;) {
    d[i] = p;
    p = p->kid[0];
  }
  *n = k;
  *base = p;
  return d;
}

/* Exponents: numbers by value first, then other scalars in the term
 * order (alpha^2 < alpha^(1 + beta) < alpha^gamma). */
static int cmp_exponent(const md_ctx *ctx, const expr *p, const expr *q) {
  bool np = p->op == E_NUM, nq = q->op == E_NUM;
  if (np && nq)
    return sgn(mpq_cmp(p->u.num, q->u.num));
  if (np != nq)
    return np ? -1 : 1;
  return md_nf_term_cmp(ctx, p, q);
}

static int cmp_factor_of(const md_ctx *ctx, const expr *f, const expr *g);

/* Factors whose base is a sum TALL_LEVELS levels high or more ("tall")
 * come before all others, the higher base first, and only those of one
 * height are compared by their structure: a lexicographic key, so the
 * order stays total and a function of the factors.  A walk to the first
 * difference of two terms alike down to their last levels costs their
 * height, and the pair cache does not help when every pair on it is new:
 * the 2^k terms of a where chain of nested derivatives by A (t_k = d/dx
 * t_(k-1)^T A t_(k-1), tests/fuzz/sweep.py 4n-*-wA) are sums nested 2^k
 * deep, T^m v in Horner's form for every m, and sorting them took
 * Theta(4^k) (k = 14: 22 s to the size budget's error).  By height they
 * compare at once.  No formula a person writes is that high.  Only sums:
 * with every tall factor so, t ./ t (E_HDIV) no longer met t in the
 * islands of t_k = p ./ t .* t, which then were not 1; and tall sums after
 * the others, or the lower first, made the whole sums of log(1 + t .* t)
 * + t / 3 monic by another term, their numbers twice as long (the order of
 * structure puts the longer chain first).  (Session 21 cut every walk at
 * a depth and compared by a hash there: the order of the 1 000-level
 * chains of sweep.py 7c changed, their sums shared less and took 10 times
 * as long.) */
enum { TALL_LEVELS = 256 };

/* Whether F's base is a tall sum (a base is never higher than F). */
static bool tall_base(const expr *f, const expr **base) {
  if (f->depth < TALL_LEVELS)
    return false;
  while (is_decor(f))
    f = f->kid[0];
  *base = f;
  return f->op == E_ADD && f->depth >= TALL_LEVELS;
}

/* Compound factors are compared once: nested sums compare their kids,
 * which compare theirs, and without the cache the terms of the sums of
 * t_k = t_(k-1) + sin(t_(k-1)) cost k^3. */
static int cmp_factor(const md_ctx *ctx, const expr *f, const expr *g) {
  if (f == g)
    return 0;
  /* by the base, so that a base and its decorations stay together
   * (t .^ -1 meets t) */
  const expr *bf = f, *bg = g;
  bool tf = tall_base(f, &bf), tg = tall_base(g, &bg);
  if (tf != tg)
    return tf ? -1 : 1;
  if (tf && bf->depth != bg->depth)
    return bf->depth > bg->depth ? -1 : 1;
  if (!f->nkids || !g->nkids)
    return cmp_factor_of(ctx, f, g);
  int c;
  if (md_ctx_cmp_get(ctx, f, g, &c))
    return c;
  c = cmp_factor_of(ctx, f, g);
  md_ctx_cmp_put(ctx, f, g, c);
  return c;
}

static int cmp_factor_of(const md_ctx *ctx, const expr *f, const expr *g) {
  const expr *bf0[16], *bg0[16], *bf, *bg;
  size_t nf, ng;
  const expr **df = decor_list(f, bf0, 16, &nf, &bf);
  const expr **dg = decor_list(g, bg0, 16, &ng, &bg);
  int c = cmp_base(ctx, bf, bg);
  for (size_t i = 0; !c && i < nf && i < ng; i++) {
    c = sgn(decor_rank(df[i]) - decor_rank(dg[i]));
    if (!c && (df[i]->op == E_POW || df[i]->op == E_EPOW))
      c = cmp_exponent(ctx, df[i]->kid[1], dg[i]->kid[1]);
  }
  if (!c)
    c = (nf > ng) - (nf < ng);
  if (df != bf0)
    free(df);
  if (dg != bg0)
    free(dg);
  return c;
}

static int cmp_stream(const md_ctx *ctx, const expr *a, const expr *b) {
  if (a == b)
    return 0;
  expr *const *fa = a->op == E_MUL ? a->kid : (expr *const *)&a;
  expr *const *fb = b->op == E_MUL ? b->kid : (expr *const *)&b;
  size_t na = a->op == E_MUL ? a->nkids : 1;
  size_t nb = b->op == E_MUL ? b->nkids : 1;
  for (size_t i = 0; i < na && i < nb; i++) {
    int c = cmp_factor(ctx, fa[i], fb[i]);
    if (c)
      return c;
  }
  return (na > nb) - (na < nb);
}

int md_nf_cmp(const md_ctx *ctx, const expr *a, const expr *b) {
  return cmp_stream(ctx, a, b);
}

/* The first number or name a term prints, brackets and all skipped. */
static const expr *lead(const expr *e) {
  /* at most LEAD_DEPTH levels down, else the node there: the order stays
   * total (what it is then compared by is a function of the term), and
   * a comparison does not walk a term's whole depth (10 000 nested
   * inverses: 4 s sorting their sums) */
  for (int depth = 0; depth < LEAD_DEPTH; depth++) {
    switch ((expr_op)e->op) {
    case E_NUM:
    case E_SYM:
    case E_IDENT:
    case E_ONES:
    case E_CALL:
      return e;
    default:
      if (!e->nkids)
        return e;
      e = e->kid[0];
    }
  }
  return e;
}

/* Whether T is an element-wise function's value alone. */
static bool fn_value(const md_ctx *ctx, const expr *t) {
  return t->op == E_CALL && md_fn_get(ctx, t->u.fn)->cls == FC_ELEMWISE;
}

int md_nf_term_cmp(const md_ctx *ctx, const expr *a, const expr *b) {
  if (a == b)
    return 0;
  /* a function's value before the other terms, whatever the names, as
   * authors write a derivative term by term: 1 - sigmoid(z) - c,
   * exp(x) + a (the class first, then the lead: a total order) */
  int ka = fn_value(ctx, a), kb = fn_value(ctx, b);
  if (ka != kb)
    return kb - ka;
  const expr *la = lead(a), *lb = lead(b);
  int ca = base_class(la), cb = base_class(lb);
  int c = ca != cb ? (ca < cb ? -1 : 1) : 0;
  if (!c && ca == 0)
    c = sgn(mpq_cmp(la->u.num, lb->u.num));
  if (!c && ca == 1) {
    c = sgn(strcmp(base_name(ctx, la), base_name(ctx, lb)));
    if (!c)
      c = sgn(name_sub(la) - name_sub(lb));
  }
  return c ? c : cmp_stream(ctx, a, b);
}

static bool has_trans(const expr *f) {
  for (; is_decor(f); f = f->kid[0])
    if (f->op == E_TRANS)
      return true;
  return false;
}

static size_t count_trans(expr *const *v, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += has_trans(v[i]);
  return k;
}

/* ---- forward declarations of the constructors ---- */

static expr *nsum(md_nf *N, expr *const *t, size_t n);
static expr *content(md_nf *N, expr *s, mpq_t c);
static expr *nmul(md_nf *N, expr *const *f, size_t n);
static expr *ntrans(md_nf *N, expr *a);
static expr *ninv(md_nf *N, expr *a);
static expr *npow(md_nf *N, expr *a, const mpq_t k);
static expr *ntrace(md_nf *N, expr *a);
static expr *nscale(md_nf *N, const mpq_t c, expr *a);

static expr *nscale_si(md_nf *N, long c, expr *a) {
  mpq_t q;
  mpq_init(q);
  mpq_set_si(q, c, 1);
  expr *r = nscale(N, q, a);
  mpq_clear(q);
  return r;
}

static expr *call1(md_nf *N, uint32_t fn, expr *a) {
  return built(N, expr_call1(N->ctx, fn, a));
}

/* ---- coefficients and sums ---- */

void md_nf_coef(md_nf *N, expr *t, mpq_t c, expr **rest) {
  mpq_set_ui(c, 1, 1);
  while (t->op == E_NEG) {
    mpq_neg(c, c);
    t = t->kid[0];
  }
  if (t->op == E_NUM) {
    md_q_mul_in(c, t->u.num);
    *rest = NULL;
  } else if (t->op == E_MUL && t->kid[0]->op == E_NUM) {
    md_q_mul_in(c, t->kid[0]->u.num);
    /* (remembered: the terms of long sums are taken apart again and
     * again, and each product made anew was a look-up in the table) */
    expr *r = get(&N->rest, t);
    if (!r) {
      r = built(N, expr_mul_n(N->ctx, t->kid + 1, t->nkids - 1));
      if (r)
        md_idmap_put(&N->rest, t, (uintptr_t)r);
    }
    *rest = r;
  } else {
    *rest = t;
  }
}

/* c * base for a normal base that is neither a sum nor a number. */
static expr *term_of(md_nf *N, mpq_srcptr c, expr *base) {
  if (!base || mpq_sgn(c) == 0)
    return num(N, c);
  if (q_is(c, 1))
    return base;
  if (q_is(c, -1))
    return built(N, expr_neg(N->ctx, base));
  return built(N, expr_mul(N->ctx, num(N, c), base));
}

typedef struct term {
  mpq_t c;
  expr *b;
} term;

static int term_order(const void *x, const void *y, void *ctx) {
  const term *a = x, *b = y;
  return md_nf_term_cmp(ctx, a->b, b->b);
}

/* Terms with their keys: the coefficient-free part, NULL for a constant. */
typedef struct keyed {
  expr *key, *t;
} keyed;

static int keyed_order(const void *x, const void *y, void *ctx) {
  const keyed *a = x, *b = y;
  if (!a->key || !b->key)
    return (b->key == NULL) - (a->key == NULL);
  return md_nf_term_cmp(ctx, a->key, b->key);
}

void md_nf_sort_terms(md_nf *N, expr **terms, size_t n) {
  keyed *k = xreallocarray(NULL, n ? n : 1, sizeof *k);
  mpq_t c;
  mpq_init(c);
  for (size_t i = 0; i < n; i++) {
    k[i].t = terms[i];
    md_nf_coef(N, terms[i], c, &k[i].key);
  }
  msort(k, n, sizeof *k, keyed_order, N->ctx);
  for (size_t i = 0; i < n; i++)
    terms[i] = k[i].t;
  mpq_clear(c);
  free(k);
}

/* sum -> term + term + ...: flat, like terms collected, constant first,
 * then the term order. */
static expr *nsum(md_nf *N, expr *const *in, size_t n) {
  term small[8];
  size_t cap = 8, nt = 0;
  term *t = small;
  mpq_t k0, c;
  mpq_init(k0);
  mpq_init(c);
  for (size_t i = 0; i < n && !N->failed; i++) {
    if (!in[i]) {
      N->failed = true;
      break;
    }
    bool flat = in[i]->op == E_ADD && !expr_whole(in[i]);
    size_t m = flat ? in[i]->nkids : 1;
    for (size_t j = 0; j < m; j++) {
      expr *b;
      md_nf_coef(N, flat ? in[i]->kid[j] : in[i], c, &b);
      if (!b) {
        mpq_add(k0, k0, c);
        continue;
      }
      if (b->op == E_ADD) {
        /* a long sum kept whole (MD_WHOLE_SUM): a term of its own, its
         * content in the coefficient */
        mpq_t q;
        mpq_init(q);
        b = content(N, b, q);
        md_q_mul_in(c, q);
        mpq_clear(q);
        if (!b) {
          N->failed = true;
          break;
        }
      }
      if (nt == cap)
        scratch_grow((void **)&t, small, &cap, sizeof *t);
      mpq_init(t[nt].c);
      mpq_set(t[nt].c, c);
      t[nt++].b = b;
    }
  }
  /* collect: the first occurrence of a base keeps the sum */
  md_idmap seen;
  md_idmap_init(&seen);
  size_t m = 0;
  for (size_t i = 0; i < nt; i++) {
    if (!t[i].b)
      continue;
    size_t j = md_idmap_get(&seen, t[i].b);
    if (j) {
      mpq_add(t[j - 1].c, t[j - 1].c, t[i].c);
      continue;
    }
    if (m != i) {
      mpq_swap(t[m].c, t[i].c);
      t[m].b = t[i].b;
    }
    m++;
    md_idmap_put(&seen, t[m - 1].b, m);
  }
  md_idmap_clear(&seen);
  size_t kept = 0;
  for (size_t i = 0; i < m; i++) {
    if (mpq_sgn(t[i].c) == 0)
      continue;
    if (kept != i) {
      mpq_swap(t[kept].c, t[i].c);
      t[kept].b = t[i].b;
    }
    kept++;
  }
  /* c ones beside a vector that is not closed is the number c, which
   * broadcasts: 1 + x, never ones + x */
  bool open = false;
  for (size_t i = 0; i < kept && !open; i++)
    open = !(t[i].b->flags & EF_CLOSED);
  for (size_t i = 0; open && i < kept; i++) {
    const expr *b = t[i].b;
    if (b->op == E_TRANS)
      b = b->kid[0];
    if (b->op == E_ONES) {
      mpq_add(k0, k0, t[i].c);
      mpq_swap(t[i].c, t[kept - 1].c);
      t[i].b = t[kept - 1].b;
      kept--;
      i--;
    }
  }
  msort(t, kept, sizeof *t, term_order, N->ctx);
  expr *osmall[9];
  expr **out = scratch_array(osmall, 9, kept + 1, sizeof *out);
  size_t no = 0;
  if (mpq_sgn(k0))
    out[no++] = num(N, k0);
  for (size_t i = 0; i < kept; i++)
    out[no++] = term_of(N, t[i].c, t[i].b);
  expr *r;
  if (N->failed)
    r = NULL;
  else if (no == 0)
    r = num(N, k0);
  else
    r = built(N, expr_add_n(N->ctx, out, no));
  if (r && r->op == E_ADD)
    md_idmap_put(&N->sums, r, 1);
  for (size_t i = 0; i < nt; i++)
    mpq_clear(t[i].c);
  scratch_free(t, small);
  scratch_free(out, osmall);
  mpq_clear(k0);
  mpq_clear(c);
  return r;
}

/* C = the gcd of the coefficients of the sum S (of their numerators over
 * the lcm of their denominators), with the sign of the first. */
static void gcd_of_coefs(md_nf *N, expr *s, mpq_t c) {
  mpq_t q;
  mpq_init(q);
  mpz_t g, l;
  mpz_init(g);
  mpz_init_set_ui(l, 1);
  int first = 0;
  for (size_t i = 0; i < s->nkids; i++) {
    expr *b;
    md_nf_coef(N, s->kid[i], q, &b);
    if (i == 0)
      first = mpq_sgn(q);
    mpz_gcd(g, g, mpq_numref(q));
    mpz_lcm(l, l, mpq_denref(q));
  }
  mpq_set_num(c, g);
  mpq_set_den(c, l);
  mpq_canonicalize(c);
  if (first < 0)
    mpq_neg(c, c);
  mpz_clear(g);
  mpz_clear(l);
  mpq_clear(q);
}

/* A normal sum S is c * P with P primitive: its coefficients have no
 * common factor and the first is positive.  Returns P, sets C.
 *
 * A sum kept whole (MD_WHOLE_SUM) is made monic instead: its first
 * coefficient is 1.  Its terms' coefficients are then only their ratios
 * to the first, where a primitive sum's integers carry every scale the
 * sums inside it were ever given: t_k = log(1 + t .* t) + t / 3 nests
 * whole sums k / 64 deep, and primitive they held 3^k (k digits for each
 * of k terms); monic, no more than the 3^64 between one whole sum's first
 * term and its last. */
static expr *content(md_nf *N, expr *s, mpq_t c) {
  expr *p = get(&N->prim, s);
  if (p) {
    mpq_set(c, get(&N->cont, s)->u.num);
    return p;
  }
  mpq_t q;
  mpq_init(q);
  if (expr_whole(s)) {
    expr *b;
    md_nf_coef(N, s->kid[0], c, &b);
  } else {
    gcd_of_coefs(N, s, c);
  }
  if (mpq_sgn(c) == 0 || q_is(c, 1)) {
    mpq_set_ui(c, 1, 1);
    p = s;
  } else {
    mpq_t inv;
    mpq_init(inv);
    mpq_inv(inv, c);
    expr **v = xreallocarray(NULL, s->nkids, sizeof *v);
    for (size_t i = 0; i < s->nkids; i++) {
      expr *b;
      md_nf_coef(N, s->kid[i], q, &b);
      md_q_mul_in(q, inv);
      v[i] = term_of(N, q, b);
    }
    p = nsum(N, v, s->nkids);
    free(v);
    mpq_clear(inv);
  }
  /* the content's node is none past the size budget: then so is the
   * result, and neither is kept (a primitive part kept without its
   * content was read as a content of NULL by the next call: UBSan, a
   * fuzz_dag finding, regress/dag-content-null-budget-7) */
  expr *cn = p ? num(N, c) : NULL;
  if (cn) {
    md_idmap_put(&N->prim, s, (uintptr_t)p);
    md_idmap_put(&N->cont, s, (uintptr_t)cn);
  } else {
    p = NULL;
  }
  mpq_clear(q);
  return p;
}

/* ---- powers of one base ---- */

/* F = base^e: A^-2 is (A, -2), A^-T is (A^T, -1), s^(1/2) is (s, 1/2);
 * s^p for a symbol p is its own base. */
static expr *decompose(expr *f, mpq_t e) {
  mpq_set_ui(e, 1, 1);
  if (f->op == E_POW && f->kid[1]->op == E_NUM) {
    mpq_set(e, f->kid[1]->u.num);
    f = f->kid[0];
    if (f->op == E_INV) {
      mpq_neg(e, e);
      f = f->kid[0];
    }
    return f;
  }
  if (f->op == E_INV) {
    mpq_neg(e, e);
    return f->kid[0];
  }
  return f;
}

/* base^e, for a base that is not itself a power or an inverse. */
static expr *mkpow(md_nf *N, expr *base, const mpq_t e, bool scalar) {
  if (mpq_sgn(e) == 0) {
    if (scalar)
      return expr_int(N->ctx, 1);
    return expr_ident(N->ctx);
  }
  if (q_is(e, 1))
    return base;
  if (q_is(e, -1))
    return built(N, expr_inv(N->ctx, base));
  return built(N, expr_pow(N->ctx, base, num(N, e)));
}

/* Whether F, a factor of a chain, has a row or a column of one: a power
 * of a product of such factors is not unfolded, nor a repeat of them
 * folded, since a 1×1 run would stand across the copies ((x y^T)^2). */
static bool thin(md_nf *N, expr *f) {
  return rows_one(N, f) || cols_one(N, f);
}

/* Whether the factors of the product W may be repeated K times in a
 * chain: at most MAX_UNFOLD factors, none thin. */
static bool unfoldable(md_nf *N, expr *const *w, size_t m, long k) {
  if (k < 1 || m == 0 || (size_t)k > MAX_UNFOLD / m)
    return false;
  for (size_t i = 0; i < m; i++)
    if (thin(N, w[i]))
      return false;
  return true;
}

/* E = E + 1 */
static void q_inc(mpq_t e) {
  mpz_add(mpq_numref(e), mpq_numref(e), mpq_denref(e));
}

static void stack_clear(stack *s) {
  for (size_t i = 0; i < s->cap; i++)
    mpq_clear(s->ex[i]);
  free(s->base);
  free(s->orig);
  free(s->ex);
  *s = (stack){0};
}

/* Whether the top M entries of S are the factors of the product W. */
static bool stack_spells(const stack *s, const expr *w) {
  size_t m = w->nkids;
  if (s->n < m)
    return false;
  mpq_t e;
  mpq_init(e);
  bool ok = true;
  for (size_t j = 0; j < m && ok; j++) {
    expr *b = decompose(w->kid[j], e);
    ok = s->base[s->n - m + j] == b && mpq_equal(s->ex[s->n - m + j], e);
  }
  mpq_clear(e);
  return ok;
}

/* Whether mkpow(B, E) is F: F is B^E as decompose() read it, and
 * written as mkpow writes it (not A^1, nor (A^-1)^(1/2), which mkpow
 * writes A^(-1/2)). */
static bool spelled(const expr *f, const expr *b, const mpq_t e) {
  if (f == b)
    return q_is(e, 1);
  if (f->op == E_INV)
    return f->kid[0] == b && q_is(e, -1);
  if (f->op != E_POW || f->kid[1]->op != E_NUM)
    return false;
  const mpq_srcptr k = f->kid[1]->u.num;
  if (f->kid[0] == b) /* A^k: k not 0 or 1, nor a negative integer */
    return mpq_equal(k, e) && !q_is(k, 0) && !q_is(k, 1) &&
           !(q_is_int(k) && mpq_sgn(k) < 0);
  /* (A^-1)^k, k an integer of 2 or more */
  return f->kid[0]->op == E_INV && f->kid[0]->kid[0] == b && q_is_int(k) &&
         mpz_cmp_ui(mpq_numref(k), 2) >= 0 && mpq_sgn(e) < 0 && q_is_int(e) &&
         mpz_cmpabs(mpq_numref(k), mpq_numref(e)) == 0;
}

static void stack_push(md_nf *N, stack *s, expr *f);

/* Pushes B^E onto S (F: the factor that spells it, or NULL): a power of
 * the base on top combines with it (A^2 A^3 = A^5, A A^-1 = I), a power
 * of a product W with the factors of W just below it (A B (A B)^-2 =
 * (A B)^-1, and (M N)^-1 after M N is I); a product to the power 1 goes
 * in factor by factor. */
static void stack_push_pow(md_nf *N, stack *s, expr *b, mpq_t e, expr *f) {
  if (s->n && s->base[s->n - 1] == b) {
    mpq_add(s->ex[s->n - 1], s->ex[s->n - 1], e);
    s->orig[s->n - 1] = NULL;
    if (mpq_sgn(s->ex[s->n - 1]) == 0)
      s->n--;
    return;
  }
  if (b->op == E_MUL && !is_scalar(N, b)) {
    while (mpq_sgn(e) != 0 && stack_spells(s, b)) {
      s->n -= b->nkids;
      q_inc(e);
      f = NULL;
    }
    if (mpq_sgn(e) == 0)
      return;
    if (q_is(e, 1) && !expr_whole(b)) {
      for (size_t j = 0; j < b->nkids; j++)
        stack_push(N, s, b->kid[j]);
      return;
    }
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    s->base = xreallocarray(s->base, cap, sizeof *s->base);
    s->orig = xreallocarray(s->orig, cap, sizeof *s->orig);
    s->ex = xreallocarray(s->ex, cap, sizeof *s->ex);
    for (size_t i = s->cap; i < cap; i++)
      mpq_init(s->ex[i]);
    s->cap = cap;
  }
  s->base[s->n] = b;
  s->orig[s->n] = f && spelled(f, b, e) ? f : NULL;
  mpq_set(s->ex[s->n++], e);
}

static void stack_push(md_nf *N, stack *s, expr *f) {
  mpq_t e;
  mpq_init(e);
  expr *b = decompose(f, e);
  stack_push_pow(N, s, b, e, f);
  mpq_clear(e);
}

/* Whether F[i..n) starts with the factors of the product W. */
static bool spells(expr *const *f, size_t i, size_t n, const expr *w) {
  if (n - i < w->nkids)
    return false;
  for (size_t j = 0; j < w->nkids; j++)
    if (f[i + j] != w->kid[j])
      return false;
  return true;
}

/* The base of F as decompose() finds it. */
static const expr *base_of(const expr *f) {
  if (f->op == E_POW && f->kid[1]->op == E_NUM)
    f = f->kid[0];
  return f->op == E_INV ? f->kid[0] : f;
}

/* Whether reduce_chain would leave CH as it is: no two adjacent factors
 * with one base, and no power of a product (most chains; no work). */
static bool reduced(const md_nodes *ch) {
  const expr *prev = NULL;
  for (size_t i = 0; i < ch->n; i++) {
    const expr *b = base_of(ch->v[i]);
    if (b == prev || b->op == E_MUL)
      return false;
    prev = b;
  }
  return true;
}

/* Combines the powers of one base in a matrix chain, in place: adjacent
 * powers (A^2 A^3 = A^5, A A^-1 = I, dropped), and a power of a product
 * next to the product's factors ((M N)^-1 M N = I, (A B)^3 A B =
 * (A B)^4). */
static void reduce_chain(md_nf *N, md_nodes *ch) {
  if (N->failed || ch->n < 2 || reduced(ch))
    return; /* (failed: a fold past a limit may have left NULL in CH) */
  stack local = {0}, *s = N->stack.busy ? &local : &N->stack;
  s->busy = true;
  s->n = 0;
  mpq_t e;
  mpq_init(e);
  for (size_t i = 0; i < ch->n; i++) {
    expr *f = ch->v[i], *b = decompose(f, e);
    if (b->op == E_MUL && !is_scalar(N, b)) /* ... and the factors after */
      while (mpq_sgn(e) != 0 && spells(ch->v, i + 1, ch->n, b)) {
        i += b->nkids;
        q_inc(e);
        f = NULL;
      }
    stack_push_pow(N, s, b, e, f);
  }
  ch->n = 0;
  for (size_t i = 0; i < s->n; i++)
    md_nodes_push(ch, s->orig[i] ? s->orig[i]
                                 : mkpow(N, s->base[i], s->ex[i], false));
  mpq_clear(e);
  s->busy = false;
  if (s == &local)
    stack_clear(&local);
}

/* Whether a factor of CH recurs within MAX_PERIOD places (else nothing
 * repeats: no work). */
static bool may_repeat(const md_nodes *ch) {
  for (size_t i = 0; i + 2 < ch->n; i++)
    for (size_t p = 2; p <= MAX_PERIOD && i + p < ch->n; p++)
      if (ch->v[i] == ch->v[i + p])
        return true;
  return false;
}

/* Folds repeats in a reduced chain into powers, in place: A B A B C =
 * (A B)^2 C, leftmost first, and of those the one that covers the most
 * factors, then the shortest; then again over the result
 * ((A B)^2 C (A B)^2 C = ((A B)^2 C)^2); true when it folded.  A power
 * of a product is unfolded again wherever it meets another product
 * (prod_add), so that equal chains fold alike whatever their grouping;
 * past MAX_UNFOLD factors it is not, and then it combines only with a
 * power of the same product or with the product's own factors
 * (reduce_chain). */
/* Factors F[0..n) read with F[0] as FIRST (a power's last factor, when
 * a repeat starts inside it). */
typedef struct seq {
  expr *first;
  expr *const *f;
  size_t n;
} seq;

static expr *seq_at(const seq *s, size_t j) {
  return j ? s->f[j] : s->first;
}

/* Whether the factors of S at I.. and J.. are the same for P places. */
static bool seq_same(const seq *s, size_t i, size_t j, size_t p) {
  for (size_t t = 0; t < p; t++)
    if (seq_at(s, i + t) != seq_at(s, j + t))
      return false;
  return true;
}

/* Of the repeats at the start of S, the one that covers most factors, on
 * a tie the shortest: its length in *P, its count in *K (*K < 2 when
 * none). */
static void best_repeat(md_nf *N, const seq *s, size_t *p, size_t *k) {
  *p = *k = 0;
  expr *u[MAX_PERIOD];
  for (size_t q = 2; q <= MAX_PERIOD && 2 * q <= s->n; q++) {
    if (seq_at(s, 0) != seq_at(s, q) || !seq_same(s, 0, q, q))
      continue;
    for (size_t t = 0; t < q; t++)
      u[t] = seq_at(s, t);
    if (!unfoldable(N, u, q, 2))
      continue;
    size_t kq = 2;
    while ((kq + 1) * q <= s->n && seq_same(s, 0, kq * q, q))
      kq++;
    if (kq * q > *k * *p) {
      *p = q;
      *k = kq;
    }
  }
}

/* Marks in AT[i] whether F[i..] starts a repeat of 2 to MAX_PERIOD
 * factors (F[i..i+q) = F[i+q..i+2q)): where best_repeat may find one.
 * One scan a period, from the end, counting how far F[j] = F[j+q]
 * holds: linear in N, where best_repeat at every place was 7 tests and
 * a call each (a where chain's normal form folds 10 000 chains of 244
 * factors: 60% of its simplification).  False when there is none. */
static bool repeat_starts(expr *const *f, size_t n, bool *at) {
  bool any = false;
  memset(at, 0, n * sizeof *at);
  for (size_t q = 2; q <= MAX_PERIOD && 2 * q <= n; q++) {
    size_t run = 0;
    for (size_t j = n - q; j-- > 0;) {
      run = f[j] == f[j + q] ? run + 1 : 0;
      if (run >= q)
        at[j] = any = true;
    }
  }
  return any;
}

/* Whether the factor F is a power with an integer exponent of 2 or
 * more in size: a repeat may start inside it (fold_chain). */
static bool folds_inside(const expr *f) {
  return f->op == E_POW && f->kid[1]->op == E_NUM &&
         q_is_int(f->kid[1]->u.num) &&
         mpz_cmpabs_ui(mpq_numref(f->kid[1]->u.num), 2) >= 0;
}

/* Whether B^SIGN (B or the node B^-1) is F[i+q] for a period q: else
 * no repeat starts inside the power F[i] of base B, and best_repeat
 * would find none (its first test), without the node B^-1 made for
 * it at each place and each pass. */
static bool base_recurs(expr *const *f, size_t i, size_t n, const expr *b,
                        int sign) {
  for (size_t q = 2; q <= MAX_PERIOD && 2 * q <= n - i; q++) {
    const expr *g = f[i + q];
    if (sign > 0 ? g == b : g->op == E_INV && g->kid[0] == b)
      return true;
  }
  return false;
}

static bool fold_chain(md_nf *N, md_nodes *ch) {
  bool changed = true, any = false;
  md_nodes out = {0};
  bool *starts = NULL;
  mpq_t e, q;
  mpq_inits(e, q, NULL);
  while (changed && ch->n >= 4 && !N->failed && may_repeat(ch)) {
    changed = false;
    out.n = 0;
    expr **f = ch->v;
    size_t n = ch->n;
    starts = xreallocarray(starts, n, sizeof *starts);
    bool some = repeat_starts(f, n, starts);
    for (size_t i = 0; !some && i < n; i++)
      some = folds_inside(f[i]);
    if (!some)
      break; /* the pass would fold nothing */
    for (size_t i = 0; i < n;) {
      /* of the repeats that start here, the one that covers most, on a
       * tie the shortest: ((A B)^2 C)^3, not (A B)^2 (C (A B)^2)^2 C */
      seq s = {f[i], f + i, n - i};
      size_t p = 0, k = 0;
      if (starts[i])
        best_repeat(N, &s, &p, &k);
      /* ... or inside a power, at its last factor: B^2 A B A B A is
       * B (B A)^3 (decompose sees no other power, and finds 1 or -1) */
      expr *b = NULL, *rest = NULL;
      if (folds_inside(f[i])) {
        /* (as decompose: the base, and the exponent's sign) */
        int sign = mpq_sgn(f[i]->kid[1]->u.num);
        b = f[i]->kid[0];
        if (b->op == E_INV) {
          b = b->kid[0];
          sign = -sign;
        }
        if (!base_recurs(f, i, n, b, sign))
          b = NULL;
      }
      expr *h = NULL;
      if (b && (b = decompose(f[i], e)) && !is_scalar(N, f[i])) {
        mpq_set_si(q, mpq_sgn(e), 1);
        if (!(h = mkpow(N, b, q, false)))
          N->failed = true; /* past the size limit: the result is none */
      }
      if (h) {
        seq v = {h, f + i, n - i};
        size_t pv, kv;
        best_repeat(N, &v, &pv, &kv);
        if (kv >= 2 && kv * pv > k * p) {
          s = v;
          p = pv;
          k = kv;
          mpq_sub(q, e, q);
          if (!(rest = mkpow(N, b, q, false)) && mpq_sgn(q) != 0)
            N->failed = true;
        }
      }
      if (k < 2) {
        md_nodes_push(&out, f[i++]);
        continue;
      }
      if (rest)
        md_nodes_push(&out, rest);
      /* the repeated factors folded in turn: (X (M N)^2)^2 */
      md_nodes u = {0};
      for (size_t j = 0; j < p; j++)
        md_nodes_push(&u, seq_at(&s, j));
      fold_chain(N, &u);
      mpq_set_ui(q, k, 1);
      expr *w = u.n == 1 ? decompose(u.v[0], e) /* (can't be) */
                         : built(N, expr_make(N->ctx, E_MUL, u.v, u.n));
      if (u.n == 1)
        md_q_mul_in(q, e);
      md_nodes_clear(&u);
      md_nodes_push(&out, w ? mkpow(N, w, q, false) : NULL);
      if (!w)
        N->failed = true;
      i += k * p;
      changed = any = true;
    }
    md_nodes t = *ch; /* the pass's result is the chain */
    *ch = out;
    out = t;
  }
  mpq_clears(e, q, NULL);
  md_nodes_clear(&out);
  free(starts);
  return any;
}

/* The factors of a matrix chain combined: reduce_chain and fold_chain,
 * until neither changes it (a fold may meet a power of its product:
 * A B A B (A B)^100 = (A B)^102). */
static void merge_chain(md_nf *N, md_nodes *ch) {
  reduce_chain(N, ch);
  for (int round = 0; round < 4 && !N->failed && fold_chain(N, ch); round++)
    reduce_chain(N, ch);
}

/* x^k of a number, exactly, when the result is small enough; else NULL. */
static expr *fold_pow(md_nf *N, const expr *base, const mpq_t k) {
  if (base->op != E_NUM || !q_is_int(k) || !mpz_fits_slong_p(mpq_numref(k)))
    return NULL;
  long n = mpz_get_si(mpq_numref(k));
  bool neg = n < 0;
  if (neg) {
    if (mpq_sgn(base->u.num) == 0)
      return NULL;
    n = -n;
  }
  if (n > MAX_FOLD_EXP ||
      mpz_sizeinbase(mpq_numref(base->u.num), 2) * (size_t)n > 65536 ||
      mpz_sizeinbase(mpq_denref(base->u.num), 2) * (size_t)n > 65536)
    return NULL;
  mpq_t q;
  mpq_init(q);
  mpz_pow_ui(mpq_numref(q), mpq_numref(base->u.num), (unsigned long)n);
  mpz_pow_ui(mpq_denref(q), mpq_denref(base->u.num), (unsigned long)n);
  mpq_canonicalize(q);
  if (neg)
    mpq_inv(q, q);
  expr *r = num(N, q);
  mpq_clear(q);
  return r;
}

/* ---- products ---- */

/* A product taken apart: c * items * chain.
 *
 * Products are flat, so a 1×1 run can only stand where the chain around
 * it stays well-shaped: x^T y A is fine, A x^T y is not (A (x^T y) has
 * no node of its own).  So each product is taken apart on its own, its
 * runs put with the scalars, and only the chains are joined. */
typedef struct prod {
  mpq_t c;
  md_nodes item;  /* scalar factors, and 1×1 runs as MUL nodes */
  md_nodes chain; /* the other factors, in order (I included until
                prod_segment has seen where it stands) */
  bool unfold;    /* powers of products go in factor by factor, */
  long budget;    /* ... that many factors at most */
} prod;

static void prod_segment(md_nf *N, prod *P, bool orient);

static void prod_init(prod *P) {
  mpq_init(P->c);
  mpq_set_ui(P->c, 1, 1);
  P->item = P->chain = (md_nodes){0};
  P->unfold = false;
  P->budget = 0;
}

static void prod_clear(prod *P) {
  mpq_clear(P->c);
  md_nodes_clear(&P->item);
  md_nodes_clear(&P->chain);
}

static bool unfold(md_nf *N, prod *P, expr *k);
static bool all_square(md_nf *N, expr *const *v, size_t n);

/* Whether the coefficient C is within MD_MAX_NUM_DIGITS; past it the form
 * fails, as a number node would (t_k = 4 t_(k-1) t_(k-1) doubles its
 * coefficient's digits at each level: 33 levels made 2^33 bits). */
static bool coef_ok(md_nf *N, const mpq_t c) {
  if (md_num_fits(c))
    return true;
  md_ctx_limit_number(N->ctx);
  N->failed = true;
  return false;
}

static void prod_add(md_nf *N, prod *P, expr *k);

/* The factors of the product K into P: a well-shaped chain of its own,
 * whose runs are found in it alone. */
static void prod_add_product(md_nf *N, prod *P, expr *k) {
  prod sub;
  prod_init(&sub);
  sub.unfold = P->unfold;
  sub.budget = P->budget;
  for (size_t i = 0; i < k->nkids; i++)
    prod_add(N, &sub, k->kid[i]);
  P->budget = sub.budget;
  prod_segment(N, &sub, P->unfold); /* unfolded: merged anew */
  md_q_mul_in(P->c, sub.c);
  if (!coef_ok(N, P->c)) {
    prod_clear(&sub);
    return;
  }
  for (size_t i = 0; i < sub.item.n; i++)
    md_nodes_push(&P->item, sub.item.v[i]);
  for (size_t i = 0; i < sub.chain.n; i++)
    md_nodes_push(&P->chain, sub.chain.v[i]);
  prod_clear(&sub);
}

/* A long product K (MD_WHOLE_MUL) into P as one factor: the product of
 * it and more is not made flat (but for the expanding form, whose work
 * has a budget of its own, and whose readers look for a factor inside:
 * the Jacobian's G in tr(P (P p G^T P))).  Its leading number and scalars
 * (alpha A1 ... A20: a normal product puts them first) are taken out, so that
 * 2 (alpha W) and W alpha meet; its chain stays one factor when it is
 * still long (memoised: a where chain has each long product as a factor
 * of the next). */
static void prod_add_whole(md_nf *N, prod *P, expr *k) {
  /* its number, then its scalars and 1×1 runs (u^T A v), which the
   * normal form puts first: i is where its chain starts */
  size_t first = k->kid[0]->op == E_NUM, i = first, n = k->nkids, items = 0;
  if (first)
    prod_add(N, P, k->kid[0]);
  while (i < n) {
    if (is_scalar(N, k->kid[i])) {
      i++, items++;
      continue;
    }
    size_t j = i + 1;
    if (rows_one(N, k->kid[i]))
      while (j < n && !cols_one(N, k->kid[j]))
        j++;
    if (j >= n || !rows_one(N, k->kid[i]))
      break;
    i = j + 1, items++;
  }
  /* a few come out (2 alpha (A1 ... A20) and alpha 2 (A1 ... A20) meet);
   * more stay inside: a where chain t_k = (x^T t x) A t has k of them,
   * and taken out at each level they were k^2.  Counted as items, a
   * 1×1 run one however long: counted by factors, a run of 17 kept
   * the scalars before it inside, and two groupings of one product
   * that simplify prints and reads back stayed apart (simplify was not
   * idempotent on a fuzz finding) */
  if (items > MAX_PEEL || i == n)
    i = first; /* (a scalar product of runs alone stays one item: it is
                * shared whole, as T1 in a gradient's terms) */
  if (i == first + 1) {
    prod_add(N, P, k->kid[first]);
  } else if (i > first + 1) {
    expr *lead = built(N, expr_make(N->ctx, E_MUL, k->kid + first, i - first));
    if (!lead) {
      N->failed = true;
      return;
    }
    prod_add_product(N, P, lead);
  }
  expr *rest = get(&N->chain, k);
  if (!rest) {
    rest = i == 0 ? k : built(N, expr_mul_n(N->ctx, k->kid + i, n - i));
    if (!rest) {
      N->failed = true;
      return;
    }
    md_idmap_put(&N->chain, k, (uintptr_t)rest);
  }
  if (!expr_whole(rest))
    prod_add(N, P, rest); /* short again: its factors */
  else if (is_scalar(N, rest))
    md_nodes_push(&P->item, rest); /* u^T A1 ... A20 v */
  else
    md_nodes_push(&P->chain, rest);
}

static void prod_add(md_nf *N, prod *P, expr *k) {
  if (!k) {
    N->failed = true;
    return;
  }
  while (k->op == E_NEG) {
    mpq_neg(P->c, P->c);
    k = k->kid[0];
  }
  switch ((expr_op)k->op) {
  case E_NUM:
    md_q_mul_in(P->c, k->u.num);
    coef_ok(N, P->c);
    return;
  case E_MUL: {
    if (expr_whole(k) && !N->expand) {
      prod_add_whole(N, P, k);
      return;
    }
    prod_add_product(N, P, k);
    return;
  }
  case E_ADD: {
    mpq_t q;
    mpq_init(q);
    k = content(N, k, q);
    md_q_mul_in(P->c, q);
    mpq_clear(q);
    if (!k || !coef_ok(N, P->c)) {
      N->failed = true;
      return;
    }
    break;
  }
  case E_POW:
  case E_INV:
    if (P->unfold && unfold(N, P, k))
      return;
    break;
  default:
    break;
  }
  if (is_scalar(N, k)) {
    md_nodes_push(&P->item, k);
    return;
  }
  md_nodes_push(&P->chain, k);
}

/* With P->unfold, a power of a product goes into P as its factors, that
 * many times over: (A B)^2 as A B A B, (M N)^-2 as (M N)^-1 (M N)^-1
 * (for square factors the inverses are at the leaves already), so that
 * merge_chain sees every factor.  False when K is none (or too long). */
static bool unfold(md_nf *N, prod *P, expr *k) {
  if (is_scalar(N, k))
    return false;
  mpq_t e;
  mpq_init(e);
  expr *b = decompose(k, e);
  long n = 0;
  if (b->op == E_MUL && q_is_int(e) && mpz_fits_slong_p(mpq_numref(e)))
    n = mpz_get_si(mpq_numref(e));
  mpq_clear(e);
  bool power = n > 0 && unfoldable(N, b->kid, b->nkids, n);
  /* (M N)^-k: k times the inverse, which is a factor of its own */
  bool letters = n < -1 && !all_square(N, b->kid, b->nkids);
  /* nested powers unfold within one budget: ((A B)^2 C)^2 ... would
   * make 2^depth factors */
  long cost = power ? n * (long)b->nkids : -n;
  if ((!power && !letters) || cost > P->budget)
    return false;
  P->budget -= cost;
  if (power) {
    for (long i = 0; i < n; i++)
      for (size_t j = 0; j < b->nkids; j++)
        prod_add(N, P, b->kid[j]);
    return true;
  }
  expr *v = built(N, expr_inv(N->ctx, b));
  for (long i = 0; i < -n && v; i++)
    md_nodes_push(&P->chain, v);
  return v != NULL;
}

/* Removes I from a list of factors (A I = A). */
static void drop_idents(md_nodes *v) {
  size_t m = 0;
  for (size_t i = 0; i < v->n; i++)
    if (v->v[i]->op != E_IDENT)
      v->v[m++] = v->v[i];
  v->n = m;
}

/* A 1×1 run f[0] ... f[n-1] (u^T ... v) in its canonical orientation:
 * it equals its transpose; keep the one with fewer transposed factors,
 * then the first in the canonical order. */
static expr *nlinear(md_nf *N, uint32_t fn, expr *a);

static expr *segment(md_nf *N, expr *const *f, size_t n) {
  md_nodes F = {0}, G = {0};
  for (size_t i = 0; i < n; i++)
    md_nodes_push(&F, f[i]);
  drop_idents(&F);
  for (size_t i = F.n; i-- > 0 && !N->failed;) {
    expr *t = ntrans(N, F.v[i]);
    if (!t) {
      N->failed = true; /* G would lack a factor */
      break;
    }
    if (t->op == E_MUL && !expr_whole(t))
      for (size_t j = 0; j < t->nkids; j++)
        md_nodes_push(&G, t->kid[j]);
    else
      md_nodes_push(&G, t);
  }
  expr *r = NULL;
  if (!N->failed) {
    merge_chain(N, &F);
    merge_chain(N, &G);
  }
  if (!N->failed) {
    size_t tf = count_trans(F.v, F.n), tg = count_trans(G.v, G.n);
    md_nodes *best = &F;
    if (tg < tf || (tg == tf && cmp_seq(N->ctx, G.v, G.n, F.v, F.n) < 0))
      best = &G;
    expr **v = best->v;
    size_t m = best->n;
    if (m >= 2 && v[0]->op == E_TRANS && v[0]->kid[0]->op == E_ONES &&
        !(m == 2 && v[1]->op == E_ONES)) {
      /* ones^T v is sum(v), and ones^T A ones sum(A) */
      if (m >= 3 && v[m - 1]->op == E_ONES)
        m--;
      expr *s =
          m == 2 ? v[1] : built(N, expr_make(N->ctx, E_MUL, v + 1, m - 1));
      r = s ? nlinear(N, FN_SUM, s) : NULL;
    } else {
      r = m == 1 ? v[0] : built(N, expr_make(N->ctx, E_MUL, v, m));
    }
  }
  md_nodes_clear(&F);
  md_nodes_clear(&G);
  return r;
}

/* Whether A B is a product that fits, as far as a run is concerned.
 * Closed factors (I, ones ones^T) are compared too: their recorded
 * sizes are only their most general ones, but such a size is never 1,
 * so a 1 that meets one is a break all the same.  (They were passed
 * over, and u^T I (y^T x) was read as one run, u^T I y^T x, 1×1: its
 * canonical orientation printed x^T y u, a column, for a row.) */
static bool fits(md_nf *N, expr *a, expr *b) {
  md_shape sa, sb;
  if (!shape(N, a, &sa) || !shape(N, b, &sb))
    return true;
  /* the factors of a product that shape inference accepted fit, except
   * where a 1×1 run stands in the chain: there a 1 meets a size that is
   * not 1 (A c^T); sizes that are products (kron, vec) are not compared */
  return md_dim_is_one(N->shapes, sa.c) == md_dim_is_one(N->shapes, sb.r);
}

static bool prod_segment_pass(md_nf *N, prod *P, bool orient);

/* Takes every minimal 1×1 run u^T ... v out of the chain and into the
 * scalar items; ORIENT puts each run into its canonical orientation.  A
 * run must be a product that fits: in c^T A (c^T y) A w the run is
 * c^T y, not c^T A c^T y; and once it is out, c^T A A w is one too, so
 * the passes go on until none finds a run. */
static void prod_segment(md_nf *N, prod *P, bool orient) {
  while (prod_segment_pass(N, P, orient) && P->chain.n > 0 && !N->failed)
    ;
}

static bool prod_segment_pass(md_nf *N, prod *P, bool orient) {
  md_nodes rest = {0};
  expr **c = P->chain.v;
  size_t n = P->chain.n;
  bool found = false;
  for (size_t i = 0; i < n && !N->failed;) {
    if (rows_one(N, c[i])) {
      size_t j = i + 1;
      while (j < n && !cols_one(N, c[j]) && fits(N, c[j - 1], c[j]))
        j++;
      if (j < n && !fits(N, c[j - 1], c[j])) {
        md_nodes_push(&rest, c[i++]); /* no run starts here */
        continue;
      }
      if (j < n) {
        found = true;
        size_t len = j - i + 1;
        if (orient) {
          md_nodes_push(&P->item, segment(N, c + i, len));
        } else {
          md_nodes run = {0};
          for (size_t k = i; k <= j; k++)
            if (c[k]->op != E_IDENT)
              md_nodes_push(&run, c[k]);
          md_nodes_push(&P->item,
                        built(N, expr_make(N->ctx, E_MUL, run.v, run.n)));
          md_nodes_clear(&run);
        }
        i = j + 1;
        continue;
      }
      for (; i < n; i++)
        md_nodes_push(&rest, c[i]);
      break;
    }
    md_nodes_push(&rest, c[i++]);
  }
  md_nodes_clear(&P->chain);
  P->chain = rest;
  return found;
}

typedef struct pw {
  expr *b;
  mpq_t e;
} pw;

static int pw_order(const void *x, const void *y, void *ctx) {
  const pw *a = x, *b = y;
  return cmp_stream(ctx, a->b, b->b);
}

/* Scalar items sorted, and powers of one base combined. */
static void prod_items(md_nf *N, prod *P) {
  size_t n = P->item.n;
  if (n == 0 || N->failed)
    return;
  pw *w = xreallocarray(NULL, n, sizeof *w);
  for (size_t i = 0; i < n; i++) {
    mpq_init(w[i].e);
    w[i].b = decompose(P->item.v[i], w[i].e);
  }
  msort(w, n, sizeof *w, pw_order, N->ctx);
  P->item.n = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    for (; j < n && w[j].b == w[i].b; j++)
      mpq_add(w[i].e, w[i].e, w[j].e);
    if (mpq_sgn(w[i].e))
      md_nodes_push(&P->item, mkpow(N, w[i].b, w[i].e, true));
    i = j;
  }
  for (size_t i = 0; i < n; i++)
    mpq_clear(w[i].e);
  free(w);
}

/* The factors of P in order: the items (1×1 runs spliced in, factor by
 * factor), then the chain; still a well-shaped flat product. */
static void prod_factors(const prod *P, md_nodes *out) {
  for (size_t i = 0; i < P->item.n; i++) {
    expr *t = P->item.v[i];
    if (t->op == E_MUL && !expr_whole(t))
      for (size_t j = 0; j < t->nkids; j++)
        md_nodes_push(out, t->kid[j]);
    else
      md_nodes_push(out, t);
  }
  for (size_t i = 0; i < P->chain.n; i++)
    md_nodes_push(out, P->chain.v[i]);
}

static expr *prod_build(md_nf *N, prod *P, bool matrix) {
  if (N->failed)
    return NULL;
  if (mpq_sgn(P->c) == 0)
    return expr_int(N->ctx, 0);
  md_nodes out = {0};
  prod_factors(P, &out);
  if (P->chain.n == 0 && matrix)
    md_nodes_push(&out, expr_ident(N->ctx)); /* s I, and A A^-1 = I */
  expr *r;
  if (out.n == 0) {
    r = num(N, P->c);
  } else if (out.n == 1 && out.v[0]->op == E_ADD && !q_is(P->c, 1) &&
             !expr_whole(out.v[0])) {
    /* c (A + B) alone is c A + c B; when nsum built A + B, its terms
     * scaled stay in order and distinct (the order is the bases'), so
     * they are not sorted again: the presentations scale long sums
     * thousands of times */
    expr *s = out.v[0];
    bool sorted = md_idmap_get(&N->sums, s) != 0;
    expr **v = xreallocarray(NULL, s->nkids, sizeof *v);
    mpq_t q;
    mpq_init(q);
    for (size_t i = 0; i < s->nkids; i++) {
      expr *b;
      md_nf_coef(N, s->kid[i], q, &b);
      md_q_mul_in(q, P->c);
      v[i] = term_of(N, q, b);
    }
    if (!sorted) {
      r = nsum(N, v, s->nkids);
    } else {
      r = built(N, expr_add_n(N->ctx, v, s->nkids));
      if (r)
        md_idmap_put(&N->sums, r, 1);
    }
    mpq_clear(q);
    free(v);
  } else {
    expr *m = out.n == 1 ? out.v[0]
                         : built(N, expr_make(N->ctx, E_MUL, out.v, out.n));
    r = m ? term_of(N, P->c, m) : NULL;
  }
  md_nodes_clear(&out);
  return r;
}

/* With expand: the product distributed over its first sum factor. */
static expr *distribute(md_nf *N, prod *P, bool matrix) {
  md_nodes L = {0};
  prod_factors(P, &L);
  size_t p = 0;
  while (p < L.n && L.v[p]->op != E_ADD)
    p++;
  if (p == L.n) {
    md_nodes_clear(&L);
    return NULL;
  }
  expr *s = L.v[p];
  expr *c = num(N, P->c);
  md_nodes f = {0}, terms = {0};
  for (size_t i = 0; i < s->nkids && !N->failed; i++) {
    if (--N->budget < 0) {
      N->failed = true;
      break;
    }
    L.v[p] = s->kid[i];
    f.n = 0;
    md_nodes_push(&f, c);
    for (size_t j = 0; j < L.n; j++)
      md_nodes_push(&f, L.v[j]);
    if (matrix)
      md_nodes_push(&f, expr_ident(N->ctx));
    md_nodes_push(&terms, nmul(N, f.v, f.n));
  }
  expr *r = N->failed ? NULL : nsum(N, terms.v, terms.n);
  md_nodes_clear(&L);
  md_nodes_clear(&f);
  md_nodes_clear(&terms);
  return r;
}

/* Fails the form when a product has more than MAX factors. */
static void too_many(md_nf *N, size_t n, size_t max) {
  if (n > max && !N->failed) {
    md_ctx_limit_factors(N->ctx, N->max_chain);
    N->failed = true;
  }
}

/* product -> c items chain (see normal.h). */
static expr *nmul(md_nf *N, expr *const *f, size_t n) {
  prod P;
  prod_init(&P);
  P.unfold = true;
  P.budget = MAX_UNFOLD_ALL;
  for (size_t i = 0; i < n && !N->failed; i++)
    prod_add(N, &P, f[i]);
  /* before they are merged (A A^T A ...) or sorted, 4 times the factors
   * the merged product may have: sorting 50 000 1x1 runs, each compared
   * deep, took seconds for each step of --steps */
  too_many(N, P.item.n + P.chain.n, 4 * N->max_chain);
  expr *r = NULL;
  if (!N->failed)
    prod_segment(N, &P, true);
  /* (a segment past a limit leaves NULL among the factors: N->failed) */
  if (!N->failed) {
    bool matrix = P.chain.n > 0; /* else 1×1 */
    drop_idents(&P.chain);
    if (mpq_sgn(P.c) == 0) {
      r = expr_int(N->ctx, 0);
    } else if (!N->expand || !(r = distribute(N, &P, matrix))) {
      merge_chain(N, &P.chain);
      prod_items(N, &P);
      too_many(N, P.item.n + P.chain.n, N->max_chain);
      r = prod_build(N, &P, matrix);
    }
  }
  prod_clear(&P);
  return N->failed ? NULL : r;
}

static expr *nscale(md_nf *N, const mpq_t c, expr *a) {
  expr *f[2] = {num(N, c), a};
  return nmul(N, f, 2);
}

static void parts_of_entry(const split_entry *s, mpq_t c, md_nf_parts *p) {
  mpq_set(c, s->c);
  *p = (md_nf_parts){s->item, s->chain, s->nitem, s->nchain};
}

void md_nf_split(md_nf *N, expr *t, mpq_t c, md_nf_parts *p) {
  uintptr_t at = md_idmap_get(&N->split, t);
  if (at) {
    parts_of_entry(&N->splits[at - 1], c, p);
    return;
  }
  expr *t0 = t;
  bool failed = N->failed;
  prod P;
  prod_init(&P);
  /* T's own factors, though T is a long product (one factor of others) */
  while (t->op == E_NEG) {
    mpq_neg(P.c, P.c);
    t = t->kid[0];
  }
  if (t->op == E_MUL)
    prod_add_product(N, &P, t);
  else
    prod_add(N, &P, t);
  prod_segment(N, &P, false);
  bool matrix = P.chain.n > 0;
  drop_idents(&P.chain);
  if (P.chain.n == 0 && matrix)
    md_nodes_push(&P.chain, expr_ident(N->ctx));
  if (N->nsplits == N->capsplits) {
    N->capsplits = N->capsplits ? 2 * N->capsplits : 16;
    N->splits = xreallocarray(N->splits, N->capsplits, sizeof *N->splits);
  }
  split_entry *s = &N->splits[N->nsplits++];
  mpq_init(s->c);
  mpq_set(s->c, P.c);
  s->item = P.item.v;
  s->nitem = P.item.n;
  s->chain = P.chain.v;
  s->nchain = P.chain.n;
  mpq_clear(P.c);
  /* (kept, but not found again, when it failed: it may lack a factor) */
  if (N->failed == failed)
    md_idmap_put(&N->split, t0, N->nsplits);
  parts_of_entry(s, c, p);
}

void md_nf_parts_clear(md_nf_parts *p) {
  *p = (md_nf_parts){0};
}

/* ---- transposes, inverses, powers ---- */

static expr *nhad(md_nf *N, expr *const *k, size_t n);
static expr *nkron(md_nf *N, expr *const *k, size_t n);
static expr *nhdiv(md_nf *N, expr *a, expr *b);
static expr *nepow(md_nf *N, expr *a, expr *p);
static expr *ncall(md_nf *N, uint32_t fn, expr *const *args, size_t n);

static bool sym_kind(md_kind k) {
  return k == K_SYMMETRIC || k == K_SPD || k == K_DIAGONAL;
}

/* a^T of a normal A, pushed to the leaves. */
static expr *ntrans(md_nf *N, expr *a) {
  /* past a limit nothing is memoised, and a DAG walked again below each
   * of its parents is exponential (t + sin(t) chains: 77 s at k = 30) */
  if (!a || N->failed)
    return NULL;
  expr *r = get(&N->tmemo, a);
  if (r)
    return r;
  if (is_scalar(N, a))
    return a;
  size_t n = a->nkids;
  expr *small[4];
  expr **v = scratch_array(small, 4, n, sizeof *v);
  switch ((expr_op)a->op) {
  case E_IDENT:
    r = a;
    break;
  case E_SYM:
    r = sym_kind(md_shape_sym_kind(N->shapes, a))
            ? a
            : built(N, expr_trans(N->ctx, a));
    break;
  case E_TRANS:
    r = a->kid[0];
    break;
  case E_NEG:
    r = nscale_si(N, -1, ntrans(N, a->kid[0]));
    break;
  case E_ADD:
  case E_HAD:
  case E_KRON:
    for (size_t i = 0; i < n; i++)
      v[i] = ntrans(N, a->kid[i]);
    r = a->op == E_ADD   ? nsum(N, v, n)
        : a->op == E_HAD ? nhad(N, v, n)
                         : nkron(N, v, n);
    break;
  case E_MUL: {
    /* scalars and 1×1 runs are their own transposes; the chain turns */
    mpq_t c;
    mpq_init(c);
    md_nf_parts p;
    md_nf_split(N, a, c, &p);
    md_nodes f = {0};
    md_nodes_push(&f, num(N, c));
    for (size_t i = 0; i < p.nitem; i++)
      md_nodes_push(&f, p.item[i]);
    for (size_t i = p.nchain; i-- > 0;)
      md_nodes_push(&f, ntrans(N, p.chain[i]));
    r = nmul(N, f.v, f.n);
    md_nodes_clear(&f);
    md_nf_parts_clear(&p);
    mpq_clear(c);
    break;
  }
  case E_INV:
    r = ninv(N, ntrans(N, a->kid[0]));
    break;
  case E_POW:
    r = a->kid[1]->op == E_NUM ? npow(N, ntrans(N, a->kid[0]), a->kid[1]->u.num)
                               : built(N, expr_trans(N->ctx, a));
    break;
  case E_EPOW:
    r = nepow(N, ntrans(N, a->kid[0]), a->kid[1]);
    break;
  case E_HDIV:
    r = nhdiv(N, ntrans(N, a->kid[0]), ntrans(N, a->kid[1]));
    break;
  case E_CALL: {
    const fn_info *f = md_fn_get(N->ctx, a->u.fn);
    if (f->cls == FC_ELEMWISE && n == 1) {
      v[0] = ntrans(N, a->kid[0]);
      r = ncall(N, a->u.fn, v, 1);
    } else if (a->u.fn == FN_DIAG && cols_one(N, a->kid[0])) {
      r = a; /* diag(x) is diagonal */
    } else {
      r = built(N, expr_trans(N->ctx, a));
    }
    break;
  }
  case E_HESS:
    r = a;
    break;
  default:
    r = built(N, expr_trans(N->ctx, a));
    break;
  }
  scratch_free(v, small);
  if (r)
    md_idmap_put(&N->tmemo, a, (uintptr_t)r);
  else
    N->failed = true;
  return r;
}

static bool all_square(md_nf *N, expr *const *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_square(N, v[i]))
      return false;
  return true;
}

/* a^-1 of a normal A. */
static expr *ninv(md_nf *N, expr *a) {
  if (!a)
    return NULL;
  switch ((expr_op)a->op) {
  case E_NUM:
    if (mpq_sgn(a->u.num)) {
      mpq_t q;
      mpq_init(q);
      mpq_inv(q, a->u.num);
      expr *r = num(N, q);
      mpq_clear(q);
      return r;
    }
    break;
  case E_IDENT:
    return a;
  case E_INV:
    return a->kid[0];
  case E_POW: {
    mpq_t e;
    mpq_init(e);
    expr *b = decompose(a, e);
    expr *r;
    if (b->op == E_MUL && mpq_sgn(e) > 0 && !is_scalar(N, a) &&
        all_square(N, b->kid, b->nkids)) {
      r = npow(N, ninv(N, b), e); /* ((A B)^2)^-1 = (B^-1 A^-1)^2 */
    } else {
      mpq_neg(e, e);
      r = mkpow(N, b, e, is_scalar(N, a));
    }
    mpq_clear(e);
    return r;
  }
  case E_NEG:
    return nscale_si(N, -1, ninv(N, a->kid[0]));
  case E_MUL: {
    mpq_t c;
    mpq_init(c);
    md_nf_parts p;
    md_nf_split(N, a, c, &p);
    mpq_inv(c, c);
    md_nodes f = {0};
    md_nodes_push(&f, num(N, c));
    for (size_t i = 0; i < p.nitem; i++)
      md_nodes_push(&f,
                    p.item[i]->op == E_MUL
                        ? built(N, expr_inv(N->ctx, p.item[i])) /* (x^T y)^-1 */
                        : ninv(N, p.item[i]));
    if (p.nchain == 1 || all_square(N, p.chain, p.nchain)) {
      for (size_t i = p.nchain; i-- > 0;)
        md_nodes_push(&f, ninv(N, p.chain[i]));
    } else {
      expr *m = built(N, expr_mul_n(N->ctx, p.chain, p.nchain));
      md_nodes_push(&f, m ? built(N, expr_inv(N->ctx, m)) : NULL);
    }
    expr *r = nmul(N, f.v, f.n);
    md_nodes_clear(&f);
    md_nf_parts_clear(&p);
    mpq_clear(c);
    return r;
  }
  case E_KRON:
    if (all_square(N, a->kid, a->nkids)) {
      expr **v = xreallocarray(NULL, a->nkids, sizeof *v);
      for (size_t i = 0; i < a->nkids; i++)
        v[i] = ninv(N, a->kid[i]);
      expr *r = nkron(N, v, a->nkids);
      free(v);
      return r;
    }
    break;
  case E_ADD: {
    mpq_t c;
    mpq_init(c);
    expr *p = content(N, a, c);
    expr *r = NULL;
    if (p && p != a) {
      mpq_inv(c, c);
      r = nscale(N, c, built(N, expr_inv(N->ctx, p)));
    }
    mpq_clear(c);
    if (r || !p)
      return r;
    break;
  }
  default:
    break;
  }
  return built(N, expr_inv(N->ctx, a));
}

/* a^k of a normal A (k an integer unless A is a scalar). */
static expr *npow(md_nf *N, expr *a, const mpq_t k) {
  if (!a)
    return NULL;
  bool sc = is_scalar(N, a), kint = q_is_int(k);
  if (q_is(k, 1))
    return a;
  if (mpq_sgn(k) == 0)
    return sc ? expr_int(N->ctx, 1) : expr_ident(N->ctx);
  if (a->op == E_NUM) {
    expr *f = fold_pow(N, a, k);
    return f ? f : built(N, expr_pow(N->ctx, a, num(N, k)));
  }
  if (a->op == E_IDENT)
    return a;
  expr *r = NULL;
  mpq_t m;
  mpq_init(m);
  if (kint && mpq_sgn(k) < 0) {
    mpq_neg(m, k);
    r = npow(N, ninv(N, a), m);
  } else if (a->op == E_NEG && kint) {
    r = npow(N, a->kid[0], k);
    if (mpz_odd_p(mpq_numref(k)))
      r = nscale_si(N, -1, r);
  } else if (a->op == E_INV || (a->op == E_POW && kint)) {
    /* (A^2)^3 = A^6, (s^-1)^(1/2) = s^(-1/2) */
    expr *b = decompose(a, m);
    md_q_mul_in(m, k);
    r = mkpow(N, b, m, sc);
  } else if (a->op == E_MUL && kint) {
    /* (c s M)^k = c^k s^k M^k */
    mpq_t c;
    mpq_init(c);
    md_nf_parts p;
    md_nf_split(N, a, c, &p);
    expr *ck = fold_pow(N, num(N, c), k);
    if (ck) {
      md_nodes f = {0};
      md_nodes_push(&f, ck);
      for (size_t i = 0; i < p.nitem; i++)
        md_nodes_push(&f, p.item[i]->op == E_MUL ? mkpow(N, p.item[i], k, true)
                                                 : npow(N, p.item[i], k));
      if (p.nchain == 1) {
        md_nodes_push(&f, npow(N, p.chain[0], k));
      } else if (p.nchain > 1) {
        expr *ch = built(N, expr_mul_n(N->ctx, p.chain, p.nchain));
        md_nodes_push(&f, ch ? mkpow(N, ch, k, false) : NULL);
      }
      r = nmul(N, f.v, f.n);
      md_nodes_clear(&f);
    } else {
      r = mkpow(N, a, k, sc);
    }
    md_nf_parts_clear(&p);
    mpq_clear(c);
  } else if (a->op == E_ADD && kint) {
    mpq_t c;
    mpq_init(c);
    expr *p = content(N, a, c);
    expr *ck = p ? fold_pow(N, num(N, c), k) : NULL;
    if (ck)
      r = nscale(N, ck->u.num, mkpow(N, p, k, sc));
    else if (p)
      r = mkpow(N, a, k, sc);
    mpq_clear(c);
  } else {
    r = mkpow(N, a, k, sc);
  }
  mpq_clear(m);
  return r;
}

/* ---- traces ---- */

static int cmp_rot(const md_ctx *ctx, expr *const *x, size_t sx, expr *const *y,
                   size_t sy, size_t m) {
  for (size_t i = 0; i < m; i++) {
    int c = cmp_stream(ctx, x[(sx + i) % m], y[(sy + i) % m]);
    if (c)
      return c;
  }
  return 0;
}

/* tr(I) of the trace being taken: its size when that is an integer (the
 * sizes of closed terms are not kept, so 3 is written, not tr(I)). */
static expr *trace_ident(md_nf *N) {
  if (N->tr_size > 0)
    return expr_int(N->ctx, N->tr_size);
  return call1(N, FN_TR, expr_ident(N->ctx));
}

/* The trace of a reduced chain F[0..N) (trace_chain): cyclic powers
 * combined, then the canonical rotation of the chain or of its
 * transpose, with its repeats folded. */
static expr *trace_rotated(md_nf *N, expr **f, size_t n) {
  size_t lo = 0, hi = n;
  mpq_t e1, e2;
  mpq_init(e1);
  mpq_init(e2);
  while (hi - lo >= 2) {
    expr *b1 = decompose(f[lo], e1), *b2 = decompose(f[hi - 1], e2);
    if (b1 != b2)
      break;
    mpq_add(e1, e1, e2);
    hi--;
    if (mpq_sgn(e1) == 0)
      lo++;
    else if (!(f[lo] = mkpow(N, b1, e1, false)))
      break; /* past the size limit (a fuzz finding: read as a factor) */
  }
  mpq_clear(e1);
  mpq_clear(e2);
  if (hi > lo && !f[lo]) {
    N->failed = true;
    return NULL;
  }
  size_t m = hi - lo;
  if (m == 0) /* (F may be NULL: no offset taken from it) */
    return trace_ident(N);
  f += lo;
  md_nodes rot = {0};
  expr *r = NULL;
  for (size_t i = 0; i < m; i++) {
    if (!f[i] || !rows_one(N, f[i]))
      continue;
    /* tr(a b^T) = b^T a: the rotation that starts with a row is 1×1 */
    for (size_t j = 0; j < m; j++)
      md_nodes_push(&rot, f[(i + j) % m]);
    r = nmul(N, rot.v, rot.n);
    md_nodes_clear(&rot);
    return r;
  }
  md_nodes G = {0};
  for (size_t i = m; i-- > 0;) {
    expr *t = ntrans(N, f[i]);
    if (!t)
      break;
    md_nodes_push(&G, t);
  }
  if (N->failed) {
    md_nodes_clear(&G);
    return NULL;
  }
  expr *const *cand[2] = {f, G.v};
  size_t tc[2] = {count_trans(f, m), count_trans(G.v, G.n)};
  size_t bo = tc[1] < tc[0] ? 1 : 0, bs = 0;
  size_t nrot = m <= MAX_ROTATE ? m : 1;
  for (size_t o = 0; o < 2; o++) {
    if (tc[o] != tc[bo] || G.n != m)
      continue;
    for (size_t s = 0; s < nrot; s++)
      if (cmp_rot(N->ctx, cand[o], s, cand[bo], bs, m) < 0) {
        bo = o;
        bs = s;
      }
  }
  for (size_t i = 0; i < m; i++)
    md_nodes_push(&rot, cand[bo][(bs + i) % m]);
  fold_chain(N, &rot);
  expr *ch =
      rot.n == 1 ? rot.v[0] : built(N, expr_make(N->ctx, E_MUL, rot.v, rot.n));
  r = ch ? call1(N, FN_TR, ch) : NULL;
  md_nodes_clear(&rot);
  md_nodes_clear(&G);
  return r;
}

/* Whether F is a power of the inverse of a product of factors that are
 * not all square ((M N)^-1). */
static bool is_letter(md_nf *N, expr *f) {
  mpq_t e;
  mpq_init(e);
  expr *b = decompose(f, e);
  bool r = b->op == E_MUL && mpq_sgn(e) < 0 && !is_scalar(N, b);
  mpq_clear(e);
  return r;
}

/* Turns the chain C to start with its factor K. */
static void rotate(md_nodes *c, size_t k) {
  size_t n = c->n;
  if (n == 0 || (k %= n) == 0)
    return;
  expr **v = xreallocarray(NULL, n, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = c->v[(k + i) % n];
  memcpy(c->v, v, n * sizeof *v);
  free(v);
}

/* tr(f[0] ... f[n-1]) of a normal chain, its powers of products
 * unfolded (trace_rotated). */
static expr *trace_chain(md_nf *N, expr *const *f0, size_t n0) {
  /* every factor, so that tr((A B)^2) and tr(B A B A) rotate alike */
  prod P;
  prod_init(&P);
  P.unfold = true;
  P.budget = MAX_UNFOLD_ALL;
  for (size_t i = 0; i < n0; i++)
    prod_add(N, &P, f0[i]);
  drop_idents(&P.chain);
  reduce_chain(N, &P.chain);
  bool whole = !N->failed && P.item.n == 0 && q_is(P.c, 1);
  /* the inverse of a product may meet the product across the ends of
   * the chain (tr(N (M N)^-1 M) = tr(I)): the chain turned to start, or
   * end, with each such inverse is reduced again */
  for (size_t pass = 0; whole && pass < 2 * MAX_PERIOD; pass++) {
    size_t nl = 0, at = 0;
    for (size_t i = 0; i < P.chain.n; i++)
      if (is_letter(N, P.chain.v[i]) && nl++ == pass / 2)
        at = i;
    if (nl <= pass / 2)
      break;
    rotate(&P.chain, pass % 2 ? at + 1 : at);
    /* if nothing is left, the I is the size of the inverse, which is
     * not that of the trace's matrix: tr(N (M N)^-1 M) = 2 for a 2×2
     * M N */
    long size = int_size(N, P.chain.v[0], false);
    reduce_chain(N, &P.chain);
    if (P.chain.n > 0)
      continue;
    prod_clear(&P);
    if (size > 0)
      return expr_int(N->ctx, size);
    /* tr(I) can't say which I: the trace stays as it came, unrotated
     * (rotated, the inverse would meet the product again) */
    expr *ch = n0 == 1 ? f0[0] : built(N, expr_make(N->ctx, E_MUL, f0, n0));
    return ch ? call1(N, FN_TR, ch) : NULL;
  }
  if (!whole) { /* F0 as it came (trace_rotated writes in its chain) */
    P.chain.n = 0;
    for (size_t i = 0; i < n0; i++)
      md_nodes_push(&P.chain, f0[i]);
  }
  expr *r = trace_rotated(N, P.chain.v, P.chain.n);
  prod_clear(&P);
  return r;
}

/* Of a sum S and its transpose, the first in the canonical order
 * (tr(A^T + B^T) = tr(A + B)). */
static expr *either_orientation(md_nf *N, expr *s) {
  expr *t = ntrans(N, s);
  return t && cmp_stream(N->ctx, t, s) < 0 ? t : s;
}

static expr *ntrace(md_nf *N, expr *a) {
  if (!a)
    return NULL;
  if (is_scalar(N, a))
    return a; /* tr(s) = s */
  switch ((expr_op)a->op) {
  case E_TRANS:
    return ntrace(N, a->kid[0]);
  case E_NEG:
    return nscale_si(N, -1, ntrace(N, a->kid[0]));
  case E_ADD: {
    if (N->expand) {
      expr **v = xreallocarray(NULL, a->nkids, sizeof *v);
      for (size_t i = 0; i < a->nkids; i++)
        v[i] = ntrace(N, a->kid[i]);
      expr *r = nsum(N, v, a->nkids);
      free(v);
      return r;
    }
    mpq_t c;
    mpq_init(c);
    expr *p = content(N, a, c);
    expr *r =
        p ? nscale(N, c, call1(N, FN_TR, either_orientation(N, p))) : NULL;
    mpq_clear(c);
    return r;
  }
  case E_IDENT:
    return trace_ident(N);
  case E_KRON:
    if (all_square(N, a->kid, a->nkids)) {
      /* tr(A ⊗ B) = tr(A) tr(B), traces of other sizes */
      long size = N->tr_size;
      N->tr_size = 0;
      expr **v = xreallocarray(NULL, a->nkids, sizeof *v);
      for (size_t i = 0; i < a->nkids; i++)
        v[i] = ntrace(N, a->kid[i]);
      expr *r = nmul(N, v, a->nkids);
      free(v);
      N->tr_size = size;
      return r;
    }
    return call1(N, FN_TR, a);
  case E_MUL: {
    mpq_t c;
    mpq_init(c);
    md_nf_parts p;
    md_nf_split(N, a, c, &p);
    md_nodes f = {0};
    md_nodes_push(&f, num(N, c));
    for (size_t i = 0; i < p.nitem; i++)
      md_nodes_push(&f, p.item[i]);
    if (p.nchain == 1 && p.chain[0]->op == E_IDENT)
      md_nodes_push(&f, trace_ident(N));
    else
      md_nodes_push(&f, trace_chain(N, p.chain, p.nchain));
    expr *r = nmul(N, f.v, f.n);
    md_nodes_clear(&f);
    md_nf_parts_clear(&p);
    mpq_clear(c);
    return r;
  }
  default: {
    expr *f[1] = {a};
    return trace_chain(N, f, 1);
  }
  }
}

/* ---- functions ---- */

static expr *ndet(md_nf *N, expr *a) {
  if (!a) {
    N->failed = true;
    return NULL;
  }
  if (is_scalar(N, a))
    return a;
  mpq_t e;
  mpq_init(e);
  expr *r;
  switch ((expr_op)a->op) {
  case E_IDENT:
    r = expr_int(N->ctx, 1);
    break;
  case E_TRANS:
    r = ndet(N, a->kid[0]); /* det(A^T) = det(A) */
    break;
  case E_INV:
  case E_POW: {
    expr *b = decompose(a, e);
    r = npow(N, ndet(N, b), e);
    break;
  }
  default:
    r = call1(N, FN_DET, a);
  }
  mpq_clear(e);
  return r;
}

static expr *nlogdet(md_nf *N, expr *a) {
  if (!a) {
    N->failed = true;
    return NULL;
  }
  mpq_t e;
  mpq_init(e);
  expr *r;
  switch ((expr_op)a->op) {
  case E_IDENT:
    r = expr_int(N->ctx, 0);
    break;
  case E_TRANS:
    r = nlogdet(N, a->kid[0]);
    break;
  case E_INV:
  case E_POW: {
    expr *b = decompose(a, e);
    r = nscale(N, e, nlogdet(N, b)); /* logdet(A^k) = k logdet(A) */
    break;
  }
  default:
    r = call1(N, FN_LOGDET, a);
  }
  mpq_clear(e);
  return r;
}

/* vec, sum and diag are linear: coefficients and scalars come out. */
static expr *nlinear(md_nf *N, uint32_t fn, expr *a) {
  if (!a) { /* a part past a limit */
    N->failed = true;
    return NULL;
  }
  if (is_scalar(N, a))
    return a;
  switch ((expr_op)a->op) {
  case E_NEG:
    return nscale_si(N, -1, nlinear(N, fn, a->kid[0]));
  case E_TRANS:
    if (fn == FN_SUM || fn == FN_DIAG)
      return nlinear(N, fn, a->kid[0]);
    if (cols_one(N, a->kid[0]))
      return a->kid[0]; /* vec(x^T) = x */
    break;
  case E_ADD: {
    if (N->expand) {
      expr **v = xreallocarray(NULL, a->nkids, sizeof *v);
      for (size_t i = 0; i < a->nkids; i++)
        v[i] = nlinear(N, fn, a->kid[i]);
      expr *r = nsum(N, v, a->nkids);
      free(v);
      return r;
    }
    mpq_t c;
    mpq_init(c);
    expr *p = content(N, a, c);
    expr *r = p ? nscale(N, c, call1(N, fn, p)) : NULL;
    mpq_clear(c);
    return r;
  }
  case E_MUL: {
    mpq_t c;
    mpq_init(c);
    md_nf_parts p;
    md_nf_split(N, a, c, &p);
    expr *r;
    if (q_is(c, 1) && p.nitem == 0) {
      r = NULL;
    } else {
      md_nodes f = {0};
      md_nodes_push(&f, num(N, c));
      for (size_t i = 0; i < p.nitem; i++)
        md_nodes_push(&f, p.item[i]);
      md_nodes_push(&f, nlinear(N, fn, nmul(N, p.chain, p.nchain)));
      r = nmul(N, f.v, f.n);
      md_nodes_clear(&f);
    }
    md_nf_parts_clear(&p);
    mpq_clear(c);
    if (r)
      return r;
    break;
  }
  default:
    if (fn == FN_VEC && cols_one(N, a))
      return a; /* vec(x) = x */
    break;
  }
  return call1(N, fn, a);
}

static expr *nnorm(md_nf *N, uint32_t fn, expr *a) {
  if (!a) {
    N->failed = true;
    return NULL;
  }
  switch ((expr_op)a->op) {
  case E_NUM: {
    mpq_t q;
    mpq_init(q);
    mpq_abs(q, a->u.num);
    expr *r = num(N, q);
    mpq_clear(q);
    return r;
  }
  case E_TRANS:
  case E_NEG:
    return nnorm(N, fn, a->kid[0]);
  case E_MUL:
    if (a->kid[0]->op == E_NUM) {
      mpq_t q;
      mpq_init(q);
      expr *b;
      md_nf_coef(N, a, q, &b);
      mpq_abs(q, q);
      expr *r = nscale(N, q, nnorm(N, fn, b));
      mpq_clear(q);
      return r;
    }
    break;
  default:
    break;
  }
  return call1(N, fn, a);
}

static expr *ncall(md_nf *N, uint32_t fn, expr *const *args, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!args[i])
      return NULL;
  if (n != 1)
    return built(N, expr_call(N->ctx, fn, args, n));
  expr *a = args[0];
  switch (fn) {
  case FN_TR:
    return ntrace(N, a);
  case FN_DET:
    return ndet(N, a);
  case FN_LOGDET:
    return nlogdet(N, a);
  case FN_VEC:
  case FN_SUM:
  case FN_DIAG:
    return nlinear(N, fn, a);
  case FN_NORM2:
  case FN_NORM1:
    return nnorm(N, fn, a);
  case FN_LOGSUMEXP:
    if (a->op == E_TRANS)
      return call1(N, fn, a->kid[0]);
    break;
  case FN_ABS:
    if (a->op == E_NUM)
      return nnorm(N, fn, a);
    break;
  case FN_SIGN:
    if (a->op == E_NUM)
      return expr_int(N->ctx, mpq_sgn(a->u.num));
    break;
  case FN_RELU:
    if (a->op == E_NUM)
      return mpq_sgn(a->u.num) > 0 ? a : expr_int(N->ctx, 0);
    break;
  case FN_EXP:
    if (expr_is_zero(a))
      return expr_int(N->ctx, 1);
    break;
  case FN_LOG:
    if (expr_is_one(a))
      return expr_int(N->ctx, 0);
    break;
  case FN_SQRT:
    if (expr_is_zero(a) || expr_is_one(a))
      return a;
    break;
  default:
    break;
  }
  return call1(N, fn, a);
}

static int node_order(const void *x, const void *y, void *ctx) {
  return cmp_stream(ctx, *(expr *const *)x, *(expr *const *)y);
}

/* Whether an element-wise function's value is a factor of F, looking
 * through the operations of the element-wise algebra (not into a
 * function's argument or a matrix product): exp(-z) and 1 - sigmoid(z)
 * are, 1 - z and W^T r are not. */
/* ... at most *BUDGET nodes looked at (sums of 64 terms four levels
 * deep are 64^4 of them: the comparisons of a sort asked this of both
 * operands each time, 170 000 instructions a comparison, 0.9 s for
 * t_k = c .* t_(k-1) .* t_(k-1) at k = 39; a fuzz finding). */
static bool fn_value_in(const md_ctx *ctx, const expr *f, int depth,
                        long *budget) {
  if (f->op == E_CALL)
    return md_fn_get(ctx, f->u.fn)->cls == FC_ELEMWISE;
  if (depth == 0 || !(f->op == E_ADD || f->op == E_NEG || f->op == E_HAD ||
                      f->op == E_HDIV || f->op == E_EPOW))
    return false;
  for (size_t i = 0; i < f->nkids && --*budget > 0; i++)
    if (fn_value_in(ctx, f->kid[i], depth - 1, budget))
      return true;
  return false;
}

static bool has_fn_value(const md_ctx *ctx, const expr *f) {
  long budget = 256;
  return fn_value_in(ctx, f, 4, &budget);
}

/* A factor of a .* and whether it has a function's value, found once
 * before the sort. */
typedef struct had_key {
  expr *e;
  int fn;
} had_key;

/* The order of the factors of a .*: factors without a function's value
 * first, as authors write them ((1 - z) .* exp(-z), c .* step(M v)),
 * then the canonical order (sigmoid(z) .* (1 - sigmoid(z))). */
static int had_order(const void *x, const void *y, void *ctx) {
  const had_key *a = x, *b = y;
  if (a->fn != b->fn)
    return a->fn - b->fn;
  return cmp_stream(ctx, a->e, b->e);
}

static void had_sort(md_nf *N, expr **v, size_t n) {
  had_key *k = xreallocarray(NULL, n, sizeof *k);
  for (size_t i = 0; i < n; i++)
    k[i] = (had_key){v[i], has_fn_value(N->ctx, v[i])};
  msort(k, n, sizeof *k, had_order, N->ctx);
  for (size_t i = 0; i < n; i++)
    v[i] = k[i].e;
  free(k);
}

/* Element-wise and Kronecker products: numbers and scalars come out
 * (s .* A = s A, kron(s, A) = s A); Hadamard factors are sorted. */
/* Whether one of V[0..N) is diagonal: I, a diagonal symbol, diag(x). */
static bool any_diagonal(md_nf *N, expr *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    expr *x = v[i];
    if (x->op == E_IDENT ||
        (x->op == E_SYM && md_shape_sym_kind(N->shapes, x) == K_DIAGONAL) ||
        (x->op == E_CALL && x->u.fn == FN_DIAG && x->nkids == 1 &&
         cols_one(N, x->kid[0])))
      return true;
  }
  return false;
}

/* The transposes in E, looked for DEPTH levels down and at *BUDGET
 * nodes at most (N^T M^T has two, sign(I - A^T) one). */
static size_t trans_in(const expr *e, int depth, long *budget) {
  size_t k = e->op == E_TRANS;
  if (depth > 0)
    for (size_t i = 0; i < e->nkids && --*budget > 0; i++)
      k += trans_in(e->kid[i], depth - 1, budget);
  return k;
}

/* A Hadamard product with a diagonal operand is diagonal, so it equals
 * its transpose: of the sorted operands M and their transposes, those
 * with fewer transposes, on a tie the first in the canonical order
 * (A^T .* I = A .* I). */
static void had_oriented(md_nf *N, md_nodes *m) {
  md_nodes t = {0};
  for (size_t i = 0; i < m->n && !N->failed; i++) {
    expr *x = ntrans(N, m->v[i]);
    if (!x)
      N->failed = true;
    md_nodes_push(&t, x);
  }
  if (!N->failed) {
    msort(t.v, t.n, sizeof *t.v, node_order, N->ctx);
    size_t tm = 0, tt = 0;
    long bm = MAX_TRANS_SEEN, bt = MAX_TRANS_SEEN;
    for (size_t i = 0; i < m->n; i++) {
      tm += trans_in(m->v[i], MAX_TRANS_DEPTH, &bm);
      tt += trans_in(t.v[i], MAX_TRANS_DEPTH, &bt);
    }
    if (tt < tm || (tt == tm && cmp_seq(N->ctx, t.v, t.n, m->v, m->n) < 0))
      memcpy(m->v, t.v, m->n * sizeof *m->v);
  }
  md_nodes_clear(&t);
}

/* The factors of a .* with one base combined into one power: x .* x is
 * x .^ 2, x .^ 2 .* x .^ -1 is x (integer exponents).  So a .* of a .*
 * with itself, again and again, stays one power, not a list of 2^k
 * factors. */
static void had_powers(md_nf *N, md_nodes *m) {
  if (m->n < 2)
    return;
  md_idmap at; /* base -> index + 1 into the lists below */
  md_idmap_init(&at);
  expr **base = xreallocarray(NULL, m->n, sizeof *base);
  mpz_t *k = xreallocarray(NULL, m->n, sizeof *k);
  size_t nb = 0;
  bool merged = false;
  for (size_t i = 0; i < m->n; i++) {
    expr *f = m->v[i], *b = f;
    mpz_t e;
    mpz_init_set_ui(e, 1);
    if (f->op == E_EPOW && f->kid[1]->op == E_NUM &&
        mpz_cmp_ui(mpq_denref(f->kid[1]->u.num), 1) == 0) {
      b = f->kid[0];
      mpz_set(e, mpq_numref(f->kid[1]->u.num));
    }
    size_t j = (size_t)md_idmap_get(&at, b);
    if (j) {
      mpz_add(k[j - 1], k[j - 1], e);
      merged = true;
    } else {
      base[nb] = b;
      mpz_init_set(k[nb], e);
      md_idmap_put(&at, b, ++nb);
    }
    mpz_clear(e);
  }
  bool all_cancel = merged;
  for (size_t i = 0; i < nb && all_cancel; i++)
    all_cancel = mpz_sgn(k[i]) == 0;
  if (merged && !all_cancel) { /* (all cancel: ones of which shape?) */
    m->n = 0;
    for (size_t i = 0; i < nb && !N->failed; i++) {
      if (mpz_sgn(k[i]) == 0)
        continue; /* x .^ 0 is ones */
      if (mpz_cmp_ui(k[i], 1) == 0 ||
          (base[i]->op == E_IDENT && mpz_sgn(k[i]) > 0)) {
        md_nodes_push(m, base[i]); /* I .* I is I */
        continue;
      }
      mpq_t q;
      mpq_init(q);
      mpz_set(mpq_numref(q), k[i]);
      expr *p = nepow(N, base[i], num(N, q));
      mpq_clear(q);
      if (!p)
        N->failed = true;
      md_nodes_push(m, p);
    }
  }
  for (size_t i = 0; i < nb; i++)
    mpz_clear(k[i]);
  free(k);
  free(base);
  md_idmap_clear(&at);
}

static expr *nelem(md_nf *N, expr_op op, expr *const *k, size_t n) {
  mpq_t c, q;
  mpq_init(c);
  mpq_init(q);
  mpq_set_ui(c, 1, 1);
  md_nodes sc = {0}, m = {0}, todo = {0};
  for (size_t i = n; i-- > 0;)
    md_nodes_push(&todo, k[i]);
  while (todo.n && !N->failed) {
    expr *x = todo.v[--todo.n];
    if (!x) {
      N->failed = true;
      break;
    }
    while (x->op == E_NEG) {
      mpq_neg(c, c);
      x = x->kid[0];
    }
    if (x->op == E_NUM) {
      md_q_mul_in(c, x->u.num);
    } else if (x->op == (uint8_t)op &&
               m.n + sc.n + todo.n + x->nkids <= MD_MAX_FLAT &&
               !expr_whole(x)) {
      /* taken apart as the constructors splice (expr.c make_fn): past
       * MD_MAX_FLAT operands a tower kron(t, t) stays nested, or each
       * level would double the operands of the one below */
      for (size_t i = x->nkids; i-- > 0;)
        md_nodes_push(&todo, x->kid[i]);
    } else if (is_scalar(N, x)) {
      md_nodes_push(&sc, x);
    } else if (x->op == E_MUL) {
      md_nf_parts p;
      md_nf_split(N, x, q, &p);
      md_q_mul_in(c, q);
      for (size_t i = 0; i < p.nitem; i++)
        md_nodes_push(&sc, p.item[i]);
      expr *h = p.nchain == 1 ? p.chain[0] : nmul(N, p.chain, p.nchain);
      md_nf_parts_clear(&p);
      if (!h) /* past a limit */
        N->failed = true;
      else
        md_nodes_push(&m, h);
    } else if (x->op == E_ADD) {
      expr *p = content(N, x, q);
      md_q_mul_in(c, q);
      if (!p)
        N->failed = true;
      else
        md_nodes_push(&m, p);
    } else {
      md_nodes_push(&m, x);
    }
  }
  if (op == E_HAD && !N->failed) { /* ones .* v = v */
    size_t kept = 0;
    for (size_t i = 0; i < m.n; i++)
      if (m.v[i]->op != E_ONES)
        m.v[kept++] = m.v[i];
    if (kept == 0 && m.n)
      kept = 1; /* ones .* ones */
    m.n = kept;
    had_powers(N, &m);
  }
  expr *r = NULL;
  if (N->failed) {
    r = NULL;
  } else if (mpq_sgn(c) == 0) {
    r = expr_int(N->ctx, 0);
  } else {
    expr *h = NULL;
    size_t p = 0;
    if (N->expand)
      while (p < m.n && m.v[p]->op != E_ADD)
        p++;
    if (m.n == 0) {
      h = NULL;
    } else if (N->expand && p < m.n) {
      expr *s = m.v[p];
      md_nodes terms = {0};
      for (size_t i = 0; i < s->nkids && !N->failed; i++) {
        if (--N->budget < 0) {
          N->failed = true;
          break;
        }
        m.v[p] = s->kid[i];
        md_nodes_push(&terms, nelem(N, op, m.v, m.n));
      }
      h = N->failed ? NULL : nsum(N, terms.v, terms.n);
      md_nodes_clear(&terms);
    } else if (m.n == 1) {
      h = m.v[0];
    } else {
      if (op == E_HAD)
        had_sort(N, m.v, m.n);
      if (op == E_HAD && any_diagonal(N, m.v, m.n))
        had_oriented(N, &m);
      h = built(N, expr_make(N->ctx, op, m.v, m.n));
    }
    md_nodes f = {0};
    md_nodes_push(&f, num(N, c));
    for (size_t i = 0; i < sc.n; i++)
      md_nodes_push(&f, sc.v[i]);
    if (h)
      md_nodes_push(&f, h);
    r = N->failed ? NULL : built(N, nmul(N, f.v, f.n));
    md_nodes_clear(&f);
  }
  md_nodes_clear(&sc);
  md_nodes_clear(&m);
  md_nodes_clear(&todo);
  mpq_clear(c);
  mpq_clear(q);
  return r;
}

static expr *nhad(md_nf *N, expr *const *k, size_t n) {
  return nelem(N, E_HAD, k, n);
}

static expr *nkron(md_nf *N, expr *const *k, size_t n) {
  return nelem(N, E_KRON, k, n);
}

static expr *nhdiv(md_nf *N, expr *a, expr *b) {
  if (!a || !b)
    return NULL;
  if (b->op == E_NUM && mpq_sgn(b->u.num)) {
    mpq_t q;
    mpq_init(q);
    mpq_inv(q, b->u.num);
    expr *r = nscale(N, q, a);
    mpq_clear(q);
    return r;
  }
  if (expr_is_zero(a))
    return a;
  if (is_scalar(N, b)) {
    /* A ./ s = s^-1 A */
    expr *f[2] = {a, ninv(N, b)};
    return nmul(N, f, 2);
  }
  expr *k[2] = {a, b};
  return built(N, expr_make(N->ctx, E_HDIV, k, 2));
}

static expr *nepow(md_nf *N, expr *a, expr *p) {
  if (!a || !p)
    return NULL;
  if (expr_is_one(p))
    return a;
  if (p->op != E_NUM) {
    if (is_scalar(N, a)) /* s .^ p = s^p */
      return built(N, expr_pow(N->ctx, a, p));
  } else if (a->op == E_NUM) {
    expr *f = fold_pow(N, a, p->u.num);
    if (f)
      return f;
  } else if (is_scalar(N, a)) {
    return npow(N, a, p->u.num);
  } else if (a->op == E_EPOW && a->kid[1]->op == E_NUM &&
             q_is_int(a->kid[1]->u.num) && q_is_int(p->u.num)) {
    /* (x .^ j) .^ k = x .^ (j k) for integers */
    mpq_t q;
    mpq_init(q);
    mpq_mul(q, a->kid[1]->u.num, p->u.num);
    expr *r = nepow(N, a->kid[0], num(N, q));
    mpq_clear(q);
    return r;
  }
  return built(N, expr_epow(N->ctx, a, p));
}

/* ---- the normal form, bottom up ---- */

static expr *normal_node(md_nf *N, expr *e, expr **k) {
  expr *r;
  switch ((expr_op)e->op) {
  case E_NUM:
  case E_SYM:
  case E_IDENT:
  case E_ONES:
    return e;
  case E_ADD:
    return nsum(N, k, e->nkids);
  case E_NEG:
    return nscale_si(N, -1, k[0]);
  case E_MUL:
    return nmul(N, k, e->nkids);
  case E_DIV: {
    if (k[1]->op == E_NUM && mpq_sgn(k[1]->u.num)) {
      mpq_t q;
      mpq_init(q);
      mpq_inv(q, k[1]->u.num);
      r = nscale(N, q, k[0]);
      mpq_clear(q);
      return r;
    }
    expr *f[2] = {k[0], ninv(N, k[1])}; /* A / s = s^-1 A */
    return nmul(N, f, 2);
  }
  case E_HAD:
    return nhad(N, k, e->nkids);
  case E_HDIV:
    return nhdiv(N, k[0], k[1]);
  case E_KRON:
    return nkron(N, k, e->nkids);
  case E_TRANS:
    return ntrans(N, k[0]);
  case E_INV:
    return ninv(N, k[0]);
  case E_POW:
    if (k[1]->op == E_NUM)
      return npow(N, k[0], k[1]->u.num);
    return built(N, expr_pow(N->ctx, k[0], k[1]));
  case E_EPOW:
    return nepow(N, k[0], k[1]);
  case E_CALL: {
    if (e->u.fn != FN_TR || e->nkids != 1)
      return ncall(N, e->u.fn, k, e->nkids);
    long size = N->tr_size;
    N->tr_size = int_size(N, e->kid[0], false);
    expr *t = ncall(N, e->u.fn, k, e->nkids);
    N->tr_size = size;
    return t;
  }
  case E_INNER: {
    /* <A, B> = tr(A^T B) */
    expr *f[2] = {ntrans(N, k[0]), k[1]};
    long size = N->tr_size;
    N->tr_size = int_size(N, e->kid[0], true);
    expr *t = ntrace(N, nmul(N, f, 2));
    N->tr_size = size;
    return t;
  }
  case E_DIFF:
  case E_HESS: {
    /* the variable stays as it is written */
    expr *v[2] = {k[0], e->kid[1]};
    return built(N, expr_make(N->ctx, (expr_op)e->op, v, 2));
  }
  default:
    return built(N, expr_rebuild(N->ctx, e, k));
  }
}

/* R, the normal form of E, when it is a scalar constant other than 0 (a
 * number, sigmoid(0)) and E is a vector or a matrix, times ones of E's
 * shape: 3 + z - z is 3 ones, exp(x - x) is ones, not the number 1
 * (which tr, sum or a product would read as a scalar: exp(x - x)^T y is
 * sum(y), not y).  0 stays 0, the zero of any shape. */
expr *md_nf_shaped(md_nf *N, expr *e, expr *r) {
  md_shape sh;
  if (!(r->flags & EF_CLOSED) || r->op == E_IDENT || r->op == E_ONES ||
      expr_is_zero(r) || !is_scalar(N, r) || !shape(N, e, &sh) ||
      md_shape_is_scalar(N->shapes, sh))
    return r;
  md_ctx *ctx = N->ctx;
  expr *ones = expr_ones(ctx), *c;
  if (md_dim_is_one(N->shapes, sh.c))
    c = ones;
  else if (md_dim_is_one(N->shapes, sh.r))
    c = expr_trans(ctx, ones);
  else
    c = expr_mul(ctx, ones, expr_trans(ctx, ones));
  expr *f[2] = {r, c};
  expr *m = c ? expr_mul_n(ctx, f, 2) : NULL;
  return m && md_shape_derive(N->shapes, m) ? m : r;
}

static expr *normal_rec(md_nf *N, expr *e);

/* Counts, in N->uses, the parents of each node under E not normalised
 * yet (E itself counts one): without recursion, each node's kids once. */
static void count_uses(md_nf *N, expr *e) {
  md_nodes todo = {0};
  md_nodes_push(&todo, e);
  while (todo.n) {
    expr *x = todo.v[--todo.n];
    if (get(&N->memo, x))
      continue;
    uintptr_t u = md_idmap_get(&N->uses, x);
    md_idmap_put(&N->uses, x, u + 1);
    for (size_t i = 0; !u && i < x->nkids; i++)
      md_nodes_push(&todo, x->kid[i]);
  }
  md_nodes_clear(&todo);
}

/* Whether the product F (or -F) goes into the product that uses it
 * factor by factor, without a normal form of its own: it is used there
 * only.  A chain of them is then one product: the adjoint of k nested
 * inverses, -inv(S)^T G inv(S)^T at each level, was k products of 2, 4,
 * ... 2k factors, Θ(k^2), each normalised (46 s at k = 10 000). */
static bool used_once(md_nf *N, const expr *f) {
  return md_idmap_get(&N->uses, f) == 1 && !get(&N->memo, f);
}

static bool fused(md_nf *N, const expr *f) {
  if (f->op == E_NEG) {
    if (!used_once(N, f))
      return false;
    f = f->kid[0];
  }
  /* (a long product stays whole, used once or not: MD_WHOLE_MUL) */
  return f->op == E_MUL && !(f->flags & EF_CLOSED) &&
         (!expr_whole(f) || N->expand) && used_once(N, f);
}

/* The normal forms of the factors of the product E, the products it alone
 * uses taken apart (fused), in order; their signs as a factor -1. */
static void fused_factors(md_nf *N, expr *e, md_nodes *out) {
  md_nodes todo = {0};
  for (size_t i = e->nkids; i-- > 0;)
    md_nodes_push(&todo, e->kid[i]);
  while (todo.n && !N->failed) {
    expr *f = todo.v[--todo.n];
    if (!fused(N, f)) {
      md_nodes_push(out, normal_rec(N, f));
      continue;
    }
    if (f->op == E_NEG) {
      md_nodes_push(out, expr_int(N->ctx, -1));
      f = f->kid[0];
    }
    for (size_t i = f->nkids; i-- > 0;)
      md_nodes_push(&todo, f->kid[i]);
  }
  md_nodes_clear(&todo);
}

static expr *normal_rec(md_nf *N, expr *e) {
  if (!e || N->failed)
    return NULL;
  expr *r = get(&N->memo, e);
  if (r)
    return r;
  if (e->op == E_MUL) {
    md_nodes f = {0};
    fused_factors(N, e, &f);
    r = N->failed ? NULL : built(N, nmul(N, f.v, f.n));
    md_nodes_clear(&f);
  } else {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    for (size_t i = 0; i < e->nkids && !N->failed; i++)
      k[i] = normal_rec(N, e->kid[i]);
    r = N->failed ? NULL : built(N, normal_node(N, e, k));
    if (k != small)
      free(k);
  }
  if (r)
    r = md_nf_shaped(N, e, r);
  if (!r) {
    N->failed = true;
    return NULL;
  }
  md_idmap_put(&N->memo, e, (uintptr_t)r);
  N->max_chain += CHAIN_PER_NODE;
  return r;
}

/* ---- the interface ---- */

md_nf *md_nf_new(md_ctx *ctx, md_shapes *shapes, bool expand) {
  md_nf *N = xcalloc(1, sizeof *N);
  N->ctx = ctx;
  N->shapes = shapes;
  N->expand = expand;
  N->budget = md_work_budget(EXPAND_BUDGET); /* (MATDIFF_SIMPLIFY_WORK) */
  N->max_chain = md_work_budget(CHAIN_FLOOR);
  return N;
}

void md_nf_free(md_nf *N) {
  if (!N)
    return;
  stack_clear(&N->stack);
  md_idmap_clear(&N->memo);
  md_idmap_clear(&N->tmemo);
  md_idmap_clear(&N->prim);
  md_idmap_clear(&N->cont);
  md_idmap_clear(&N->uses);
  md_idmap_clear(&N->sums);
  md_idmap_clear(&N->rest);
  md_idmap_clear(&N->chain);
  md_idmap_clear(&N->split);
  for (size_t i = 0; i < N->nsplits; i++) {
    mpq_clear(N->splits[i].c);
    free(N->splits[i].item);
    free(N->splits[i].chain);
  }
  free(N->splits);
  free(N);
}

expr *md_nf_of(md_nf *N, expr *e) {
  if (e && !N->failed)
    count_uses(N, e);
  expr *r = normal_rec(N, e);
  return N->failed ? NULL : r;
}

expr *md_nf_sum(md_nf *N, expr *const *terms, size_t n) {
  expr *r = nsum(N, terms, n);
  return N->failed ? NULL : r;
}

expr *md_nf_mul(md_nf *N, expr *const *factors, size_t n) {
  expr *r = nmul(N, factors, n);
  return N->failed ? NULL : r;
}

expr *md_nf_trans(md_nf *N, expr *a) {
  expr *r = ntrans(N, a);
  return N->failed ? NULL : r;
}

expr *md_nf_pow(md_nf *N, expr *a, long k) {
  mpq_t q;
  mpq_init(q);
  mpq_set_si(q, k, 1);
  expr *r = npow(N, a, q);
  mpq_clear(q);
  return N->failed ? NULL : r;
}

expr *md_nf_scale(md_nf *N, const mpq_t c, expr *a) {
  expr *r = nscale(N, c, a);
  return N->failed ? NULL : r;
}
