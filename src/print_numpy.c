/* print_numpy.c - results as Python functions over NumPy; see print_numpy.h.
 *
 * The printer walks the DAG once.  Every node becomes a fragment of Python
 * (its text and how tightly it binds); a node that several parents use
 * becomes a local t1 = ... written once, before its first use, so the code
 * stays linear in the size of the DAG.
 *
 * Sizes.  A node with a symbol inside has the shape shape.c recorded for
 * it.  A closed term (I, ones, 2 I, ones ones^T) has no fixed shape: each
 * occurrence takes its sizes from where it stands.  For such occurrences
 * the printer runs shape.c's rules again on a scratch unifier of its own
 * ("local" sizes, below), seeded with the shapes of the neighbours, and
 * reads np.eye(k) and np.ones((k, 1)) from the result.  Sizes become
 * Python through the parameters (X.shape[0]); a size that no parameter
 * fixes is an error.
 *
 * Values inside the function: scalars are Python or NumPy numbers (a
 * product that multiplies to 1×1 is taken out with .item()), vectors are
 * n×1 columns, matrices 2-D arrays.  Only the return statement converts to
 * the documented conventions (float, 1-D vector).
 *
 * Scaled exponentials.  exp(u) overflows once an entry of u passes 709,
 * and the gradient of logsumexp, exp(u) / sum(exp(u)), is then inf / inf.
 * Whatever form the simplifier gave such a quotient (A^T exp(u) / sum(
 * exp(u)), diag(exp(u)) (I / sum(exp(u)) - ones exp(u^T) / sum(exp(u))^2),
 * exp(u) ./ (2 sum(exp(u))), ...), its value does not change when exp(u)
 * is multiplied by any c > 0: it is homogeneous of degree 0 in exp(u).
 * So the printer computes each such node, a "root", with exp(u - max(u))
 * in place of exp(u) (c = exp(-max(u))): entries in (0, 1], and their sum
 * at least 1.  A pass before printing gives every node its degree in the
 * exp(u) below it: 1 for exp(u) and exp(u^T) (u a vector or matrix), the
 * sum of the degrees for products, their difference for quotients, and so
 * on for what is positively homogeneous (sums of terms of one degree,
 * tr, sum, diag, vec, norms, abs, relu, integer powers); anything else,
 * or two different u, has none.  Below a root, the nodes of non-zero
 * degree are written scaled (a second memo: the same node may be needed
 * both ways), the others as they are.  softmax(u) is written with the same
 * local exp(u - max(u)), and log(sum(exp(u))) as logsumexp(u).
 */
#include "print_numpy.h"

#include "print_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python precedence, loosest first: a + b, a * b (also @ /), -a, a ** b,
 * and atoms (names, calls, attributes, anything in brackets). */
enum { PY_SUM, PY_PROD, PY_UNARY, PY_POW, PY_ATOM };

/* Longer chains and deeper nests are split into locals: CPython refuses
 * more than 200 nested brackets, and its compiler recurses over long
 * operator chains. */
#define MAX_CHAIN 50
#define MAX_NEST  20
/* Closed terms are expanded per occurrence; this bounds the work. */
#define MAX_CLOSED_WORK 200000

/* A fragment of Python.  S is owned by whoever holds the fragment. */
typedef struct py {
  char *s;
  int prec;
  int depth; /* nesting, to know when to split */
  bool neg;  /* "-" then a product or tighter: a + (-b) can be a - b */
} py;

/* ---- local sizes: a scratch unifier for closed terms ----
 *
 * A local size is free (a closed term's unknown), an integer, a rigid
 * dimension of SHAPES (a declared name), a flexible one (an unknown of
 * SHAPES: it may still be bound here, as the result's expected shape binds
 * the I of kron(I, A) in a derivative), or a product.  The same dimension
 * of SHAPES is always the same local while it is alive (the cache). */

typedef enum { L_FREE, L_INT, L_DIM, L_MUL } lkind;

typedef struct lvar {
  uint32_t parent; /* union-find; self when a root */
  uint8_t kind;
  bool flexible; /* L_DIM of an unknown of SHAPES */
  long value;    /* L_INT */
  md_dim dim;    /* L_DIM, and the origin of a cached local */
  bool cached;   /* made by lbind for DIM */
  uint32_t a, b; /* L_MUL */
  uint32_t seen; /* loccurs: the generation of the walk that reached it */
} lvar;

typedef struct lshape {
  uint32_t r, c;
} lshape;

typedef struct ltrail {
  uint32_t x, parent;
} ltrail;

/* One occurrence of a closed node, with its local shape.  Its kids'
 * occurrences are okid[kids .. kids + nkids - 1]. */
typedef struct occ {
  const expr *e;
  lshape sh;
  size_t kids;
} occ;

#define NO_OCC ((size_t)-1)

/* A kid as the emitter sees it: a node with a fixed shape (occ NO_OCC) or
 * an occurrence of a closed one. */
typedef struct item {
  const expr *e;
  lshape sh;
  size_t occ;
} item;

typedef struct printer {
  md_code_lang lang;
  md_ctx *ctx;
  md_shapes *sh;
  md_errors *err;
  bool failed;
  const expr *const *params;
  size_t nparams;
  char **pname; /* Python names of the parameters */
  bool *pused;  /* the parameter appears in the body */
  strbuf body;  /* the statements before return, indented */
  unsigned ntemp;
  /* by node id, for nodes with a symbol inside */
  size_t nnodes;
  uint32_t *refs; /* parents that use the node (with multiplicity) */
  uint8_t *seen;  /* SEEN_COUNTED, SEEN_SCANNED */
  py *memo;       /* the fragment of a shared node: its local's name */
  /* exponentials scaled by their maximum (see "Scaled exponentials") */
  const expr **sbase; /* the base u of a node of degree sdeg != 0 */
  int *sdeg;
  const expr **sroot;  /* a node of degree 0 in exp(u) whose kids are not */
  const expr *scale;   /* the base being scaled, or NULL */
  py *memo_sc;         /* a shared node's fragment, scaled */
  py *sexp;            /* by base u: the local exp(u - max(u)) */
  py *smax;            /* by base u: the local max(u), if logsumexp made it */
  const expr **salias; /* a base that stands for this one, its transpose */
  uint8_t *sparity;    /* 1: the base is the transpose of its alias */
  size_t cmpwork;      /* steps of is_transpose so far */
  /* scratch, used as stacks: a node's entries are popped after it */
  lvar *lv;
  size_t nlv, caplv;
  uint32_t lgen;    /* loccurs's walks */
  uint32_t *lcache; /* by dimension of SHAPES: its local, if alive */
  size_t nlcache;
  ltrail *trail; /* links to undo */
  size_t ntrail, captrail;
  occ *oc;
  size_t noc, capoc;
  size_t *okid;
  size_t nokid, capokid;
  size_t work;
  /* sub-chains (one function of several results): the products of the
   * roots' DAG by their operands, so that a chain A x x^T whose A x is a
   * node of its own is written (A x) x^T with A x computed once */
  const expr **mtab;
  size_t mcap;
  /* by id: the node whose transpose this one is, written as its .T (see
   * "Transposes"), or NULL */
  const expr **tsub;
  /* by id: a product written as another with the same value (a
   * transposed product among its operands expanded), or NULL */
  const expr **esub;
  int expand;      /* find esub: 0 not, 1 but for prefixes, 2 all */
  size_t products; /* matrix products written (chains, powers) */
} printer;

/* The node written in E's place (tsub's transpose or esub's expanded
 * product), or NULL: E is written as it is. */
static const expr *written_as(const printer *p, const expr *e) {
  return p->tsub[e->id] ? p->tsub[e->id] : p->esub[e->id];
}

/* The spelling of an operation in the language being written. */
static const char *L(const printer *p, const char *numpy, const char *torch,
                     const char *octave) {
  return p->lang == MD_CODE_TORCH    ? torch
         : p->lang == MD_CODE_OCTAVE ? octave
                                     : numpy;
}

static void fail(printer *p, const char *fmt, const char *what) {
  if (!p->failed) {
    /* "--format numpy: ..." names the format asked for */
    static const char pre[] = "--format numpy";
    strbuf f;
    sb_init(&f);
    if (strncmp(fmt, pre, sizeof pre - 1) == 0) {
      sb_printf(&f, "--format %s", L(p, "numpy", "torch", "octave"));
      fmt += sizeof pre - 1;
    }
    sb_puts(&f, fmt);
    md_error_at(p->err, NULL, MD_NOLOC, f.s, what);
    sb_clear(&f);
  }
  p->failed = true;
}

/* Fails with the text of E (shortened) in the message. */
static void fail_at(printer *p, const char *fmt, const expr *e) {
  if (p->failed)
    return;
  char *t = md_print_text_brief(p->ctx, e, 60);
  fail(p, fmt, t);
  free(t);
}

static uint32_t lnew(printer *p, lvar v) {
  if (p->nlv == p->caplv) {
    p->caplv = p->caplv ? 2 * p->caplv : 64;
    p->lv = xreallocarray(p->lv, p->caplv, sizeof *p->lv);
  }
  v.parent = (uint32_t)p->nlv;
  p->lv[p->nlv] = v;
  return (uint32_t)p->nlv++;
}

/* No path compression: classes are small, and every link is undone
 * (lpop) when the node that made it is written. */
static uint32_t lfind(printer *p, uint32_t x) {
  while (p->lv[x].parent != x)
    x = p->lv[x].parent;
  return x;
}

/* Links X under PARENT, remembering the old link on the trail. */
static void llink(printer *p, uint32_t x, uint32_t parent) {
  if (p->ntrail == p->captrail) {
    p->captrail = p->captrail ? 2 * p->captrail : 64;
    p->trail = xreallocarray(p->trail, p->captrail, sizeof *p->trail);
  }
  p->trail[p->ntrail++] = (ltrail){x, p->lv[x].parent};
  p->lv[x].parent = parent;
}

/* Forgets the locals made and the links set since the marks: a node's
 * scratch sizes may have been linked to those of its ancestors, which
 * outlive it. */
static void lpop(printer *p, size_t mark_lv, size_t mark_trail) {
  while (p->ntrail > mark_trail) {
    ltrail t = p->trail[--p->ntrail];
    if (t.x < mark_lv)
      p->lv[t.x].parent = t.parent;
  }
  p->nlv = mark_lv;
}

static uint32_t lfree(printer *p) {
  return lnew(p, (lvar){.kind = L_FREE});
}

static uint32_t lint(printer *p, long v) {
  return lnew(p, (lvar){.kind = L_INT, .value = v});
}

static bool lis_one(printer *p, uint32_t x);
static uint32_t lmul(printer *p, uint32_t a, uint32_t b);

/* The local of dimension D of SHAPES. */
static uint32_t lbind(printer *p, md_dim d) {
  md_dim_info info = md_dim_get(p->sh, d);
  md_dim root = info.root;
  if (root >= p->nlcache) {
    size_t n = md_shapes_ndims(p->sh) + 16;
    p->lcache = xreallocarray(p->lcache, n, sizeof *p->lcache);
    for (size_t i = p->nlcache; i < n; i++)
      p->lcache[i] = UINT32_MAX;
    p->nlcache = n;
  }
  uint32_t c = p->lcache[root];
  if (c < p->nlv && p->lv[c].cached && p->lv[c].dim == root)
    return c;
  uint32_t x;
  switch (info.kind) {
  case MD_DIM_INT:
    x = lnew(p, (lvar){.kind = L_INT, .value = info.value});
    break;
  case MD_DIM_PRODUCT: {
    uint32_t fa = lbind(p, info.a), fb = lbind(p, info.b);
    x = lnew(p, (lvar){.kind = L_MUL, .a = fa, .b = fb});
    break;
  }
  default:
    x = lnew(p, (lvar){.kind = L_DIM,
                       .flexible = info.kind == MD_DIM_FREE,
                       .dim = root});
    break;
  }
  p->lv[x].cached = true;
  p->lv[x].dim = root;
  p->lcache[root] = x;
  return x;
}

static lshape lbind_shape(printer *p, md_shape s) {
  return (lshape){lbind(p, s.r), lbind(p, s.c)};
}

/* Factors of a product of sizes looked at to find its integer: past
 * them it is not known as one (a Kronecker product of 2^16 operands has
 * a size of 2^16 factors, looked at for each operand: 10 s under the
 * sanitizers), and is written symbolically. */
enum { LINT_WORK = 64 };

static bool lint_rec(printer *p, uint32_t x, long *v, unsigned *work) {
  x = lfind(p, x);
  if (p->lv[x].kind == L_INT) {
    *v = p->lv[x].value;
    return true;
  }
  long a, b;
  if (p->lv[x].kind == L_MUL && ++*work <= LINT_WORK &&
      lint_rec(p, p->lv[x].a, &a, work) && lint_rec(p, p->lv[x].b, &b, work) &&
      a > 0 && b <= 1000000000L / a) {
    *v = a * b;
    return true;
  }
  return false;
}

/* The integer X stands for, if it is one (at most 10^9, as in shape.c). */
static bool lint_value(printer *p, uint32_t x, long *v) {
  unsigned work = 0;
  return lint_rec(p, x, v, &work);
}

static bool lis_one(printer *p, uint32_t x) {
  long v;
  return lint_value(p, x, &v) && v == 1;
}

static bool lscalar(printer *p, lshape s) {
  return lis_one(p, s.r) && lis_one(p, s.c);
}

/* a·b, with 1 folded away as shape.c's dim_mul does */
static uint32_t lmul(printer *p, uint32_t a, uint32_t b) {
  if (lis_one(p, a))
    return b;
  if (lis_one(p, b))
    return a;
  return lnew(p, (lvar){.kind = L_MUL, .a = a, .b = b});
}

/* Whether V is in T: each local of T's DAG looked at once (a tower of
 * Kronecker squares is 2^k paths deep in k locals), marked with the
 * walk's generation. */
static bool loccurs_rec(printer *p, uint32_t v, uint32_t t) {
  t = lfind(p, t);
  if (t == v)
    return true;
  if (p->lv[t].kind != L_MUL || p->lv[t].seen == p->lgen)
    return false;
  p->lv[t].seen = p->lgen;
  return loccurs_rec(p, v, p->lv[t].a) || loccurs_rec(p, v, p->lv[t].b);
}

static bool loccurs(printer *p, uint32_t v, uint32_t t) {
  if (++p->lgen == 0) { /* wrapped: no mark may look current */
    for (size_t i = 0; i < p->nlv; i++)
      p->lv[i].seen = 0;
    p->lgen = 1;
  }
  return loccurs_rec(p, v, t);
}

static bool flexible(const lvar *v) {
  return v->kind == L_FREE || (v->kind == L_DIM && v->flexible);
}

static bool lunify(printer *p, uint32_t a, uint32_t b);

enum { MAX_FACTORS = 16 };

/* The factors of X into V: roots that are not products.  False if there
 * are more than MAX_FACTORS. */
static bool lfactors(printer *p, uint32_t x, uint32_t *v, size_t *n) {
  x = lfind(p, x);
  if (p->lv[x].kind != L_MUL) {
    if (*n == MAX_FACTORS)
      return false;
    v[(*n)++] = x;
    return true;
  }
  return lfactors(p, p->lv[x].a, v, n) && lfactors(p, p->lv[x].b, v, n);
}

static bool lsame(printer *p, uint32_t x, uint32_t y) {
  const lvar *a = &p->lv[x], *b = &p->lv[y];
  if (x == y)
    return true;
  if (a->kind == L_INT && b->kind == L_INT)
    return a->value == b->value;
  return a->kind == L_DIM && b->kind == L_DIM && !a->flexible && !b->flexible &&
         md_dim_equal(p->sh, a->dim, b->dim);
}

/* Products of more than MAX_FACTORS factors, as shape.c's md_dim_counts:
 * distinct factors in lsame's sense, keyed as an integer by its value
 * (tag 0), a size of SHAPES by its root (1), else the local (2), the tag
 * in the key's top bits. */
static uint64_t lcount_key(unsigned tag, uint64_t v) {
  return (uint64_t)tag << 62 | v;
}

/* The factors of X counted into *OUT (each local once, after its
 * factors). */
static bool lcount_of(printer *p, uint32_t x, md_counts *out) {
  uint32_t *at = xcalloc(p->nlv, sizeof *at); /* 1 + index in done */
  uint8_t *entered = xcalloc(p->nlv, 1);
  uint32_t *stack = xreallocarray(NULL, 2 * p->nlv + 1, sizeof *stack);
  md_counts *done = xreallocarray(NULL, p->nlv, sizeof *done);
  size_t n = 0, ndone = 0;
  bool ok = true;
  stack[n++] = lfind(p, x);
  while (ok && n) {
    uint32_t y = stack[n - 1];
    const lvar *v = &p->lv[y];
    if (at[y]) {
      n--;
      continue;
    }
    if (v->kind == L_MUL && !entered[y]) {
      entered[y] = 1;
      stack[n++] = lfind(p, v->b);
      stack[n++] = lfind(p, v->a);
      continue;
    }
    md_counts *c = &done[ndone];
    long iv;
    if (v->kind == L_MUL) {
      ok = md_counts_add(&done[at[lfind(p, v->a)] - 1],
                         &done[at[lfind(p, v->b)] - 1], c);
    } else {
      md_count f = {lcount_key(2, y), 1, y};
      if (lint_value(p, y, &iv))
        f.key = lcount_key(0, (uint64_t)iv);
      else if (v->kind == L_DIM && !v->flexible)
        f.key = lcount_key(1, md_dim_get(p->sh, v->dim).root);
      c->n = 1;
      c->f[0] = f;
    }
    at[y] = (uint32_t)++ndone;
    n--;
  }
  if (ok)
    *out = done[at[lfind(p, x)] - 1];
  free(at);
  free(entered);
  free(stack);
  free(done);
  return ok;
}

/* X^K as a product of locals (by squares). */
static uint32_t lpow(printer *p, uint32_t x, uint64_t k) {
  uint32_t r = lint(p, 1);
  for (uint32_t q = x; k; k >>= 1) {
    if (k & 1)
      r = lmul(p, r, q);
    if (k > 1)
      q = lmul(p, q, q);
  }
  return r;
}

/* lunify_products on counted factors (shape.c's unify_counts). */
static bool lunify_counts(printer *p, md_counts *ca, md_counts *cb, lvar A,
                          lvar B) {
  md_counts_cancel(ca, cb);
  size_t na = ca->n, nb = cb->n;
  if (na == 0 || nb == 0)
    return na == nb;
  if (na == 1 && nb == 1 && ca->f[0].n == 1 && cb->f[0].n == 1)
    return lunify(p, ca->f[0].x, cb->f[0].x);
  md_counts *lone = na == 1 && ca->f[0].n == 1   ? ca
                    : nb == 1 && cb->f[0].n == 1 ? cb
                                                 : NULL;
  if (lone && flexible(&p->lv[lone->f[0].x])) {
    md_counts *other = lone == ca ? cb : ca;
    uint32_t prod = lint(p, 1);
    for (size_t i = 0; i < other->n; i++)
      prod = lmul(p, prod, lpow(p, other->f[i].x, other->f[i].n));
    return lunify(p, lone->f[0].x, prod);
  }
  return lunify(p, A.a, B.a) && lunify(p, A.b, B.b);
}

/* The factors of A·B counted. */
static bool lcount_pair(printer *p, lvar P, md_counts *out) {
  md_counts a, b;
  return lcount_of(p, P.a, &a) && lcount_of(p, P.b, &b) &&
         md_counts_add(&a, &b, out);
}

/* shape.c's unify_products: products are equal as multisets of factors;
 * common factors cancel, a lone unknown is the product of the other
 * side, and what stays ambiguous is unified factor by factor. */
static bool lunify_products(printer *p, lvar A, lvar B) {
  uint32_t fa[MAX_FACTORS], fb[MAX_FACTORS];
  size_t na = 0, nb = 0;
  if (!lfactors(p, A.a, fa, &na) || !lfactors(p, A.b, fa, &na) ||
      !lfactors(p, B.a, fb, &nb) || !lfactors(p, B.b, fb, &nb)) {
    md_counts ca, cb;
    if (lcount_pair(p, A, &ca) && lcount_pair(p, B, &cb))
      return lunify_counts(p, &ca, &cb, A, B);
    return lunify(p, A.a, B.a) && lunify(p, A.b, B.b);
  }
  for (size_t i = 0; i < na; i++)
    for (size_t j = 0; j < nb; j++)
      if (lsame(p, fa[i], fb[j])) {
        fa[i--] = fa[--na];
        fb[j] = fb[--nb];
        break;
      }
  if (na == 0 || nb == 0)
    return na == nb; /* a size left over would have to be 1 */
  if (na == 1 && nb == 1)
    return lunify(p, fa[0], fb[0]);
  uint32_t *lone = na == 1 ? fa : nb == 1 ? fb : NULL;
  if (lone && flexible(&p->lv[lone[0]])) {
    uint32_t *other = lone == fa ? fb : fa;
    size_t no = lone == fa ? nb : na;
    uint32_t prod = other[0];
    for (size_t i = 1; i < no; i++)
      prod = lmul(p, prod, other[i]);
    return lunify(p, lone[0], prod);
  }
  return lunify(p, A.a, B.a) && lunify(p, A.b, B.b);
}

/* Makes A and B one size, as shape.c's unify (unknowns are never 1). */
static bool lunify(printer *p, uint32_t a, uint32_t b) {
  a = lfind(p, a);
  b = lfind(p, b);
  if (a == b)
    return true;
  /* a flexible size goes under the other; a pure local under one that
   * knows its dimension of SHAPES */
  if (flexible(&p->lv[b]) &&
      (!flexible(&p->lv[a]) || p->lv[b].kind == L_FREE)) {
    uint32_t t = a;
    a = b;
    b = t;
  }
  if (flexible(&p->lv[a])) {
    if (lis_one(p, b) || loccurs(p, a, b))
      return false;
    llink(p, a, b);
    return true;
  }
  long va, vb;
  if (lint_value(p, a, &va) && lint_value(p, b, &vb))
    return va == vb;
  lvar A = p->lv[a], B = p->lv[b];
  if (A.kind == L_DIM && B.kind == L_DIM)
    return md_dim_equal(p->sh, A.dim, B.dim);
  if (A.kind == L_MUL && B.kind == L_MUL)
    return lunify_products(p, A, B);
  return false;
}

static bool lunify_shape(printer *p, lshape a, lshape b) {
  return lunify(p, a.r, b.r) && lunify(p, a.c, b.c);
}

/* The node rules of shape.c (infer_node), on local sizes.  K holds the
 * kids' shapes.  False when they do not fit. */
static bool lnode(printer *p, const expr *e, const lshape *k, lshape *out) {
  uint32_t one = lint(p, 1);
  lshape sc = {one, one};
  switch ((expr_op)e->op) {
  case E_NUM:
    *out = sc;
    return true;
  case E_SYM:
    *out = lbind_shape(p, md_shape_of(p->sh, e));
    return true;
  case E_IDENT: {
    uint32_t v = lfree(p);
    *out = (lshape){v, v};
    return true;
  }
  case E_ONES:
    *out = (lshape){lfree(p), one};
    return true;
  case E_ADD: {
    /* numeric constants broadcast; the other terms share one shape */
    bool any = false;
    for (size_t i = 0; i < e->nkids; i++) {
      if ((e->kid[i]->flags & EF_CONST) && lscalar(p, k[i]))
        continue;
      if (!any)
        *out = k[i];
      else if (!lunify_shape(p, *out, k[i]))
        return false;
      any = true;
    }
    if (!any)
      *out = sc;
    return true;
  }
  case E_NEG:
  case E_EPOW:
  case E_DIV:
    *out = k[0];
    return true;
  case E_TRANS:
    *out = (lshape){k[0].c, k[0].r};
    return true;
  case E_MUL: {
    /* shape.c's chain: scalars scale, and so does a run of factors that
     * multiplies to 1×1 where the chain breaks */
    lshape acc = k[0];
    for (size_t i = 1; i < e->nkids; i++) {
      if (lscalar(p, acc)) {
        acc = k[i];
        continue;
      }
      if (lscalar(p, k[i]))
        continue;
      if (lunify(p, acc.c, k[i].r)) {
        acc.c = k[i].c;
        continue;
      }
      lshape run = k[i];
      size_t j = i + 1;
      while (j < e->nkids && !lscalar(p, run) &&
             (lscalar(p, k[j]) || lunify(p, run.c, k[j].r))) {
        if (!lscalar(p, k[j]))
          run.c = k[j].c;
        j++;
      }
      if (!lscalar(p, run))
        return false;
      i = j - 1;
    }
    *out = acc;
    return true;
  }
  case E_HAD:
  case E_HDIV: {
    lshape acc = k[0];
    for (size_t i = 1; i < e->nkids; i++) {
      if (lscalar(p, acc))
        acc = k[i];
      else if (!lscalar(p, k[i]) && !lunify_shape(p, acc, k[i]))
        return false;
    }
    *out = acc;
    return true;
  }
  case E_KRON: {
    lshape acc = k[0];
    for (size_t i = 1; i < e->nkids; i++)
      acc = (lshape){lmul(p, acc.r, k[i].r), lmul(p, acc.c, k[i].c)};
    *out = acc;
    return true;
  }
  case E_INV:
    *out = k[0];
    return lunify(p, k[0].r, k[0].c);
  case E_POW:
    *out = k[0];
    return lscalar(p, k[0]) || lunify(p, k[0].r, k[0].c);
  case E_CALL:
    switch (md_fn_get(p->ctx, e->u.fn)->cls) {
    case FC_ELEMWISE:
      *out = k[0];
      return true;
    case FC_SQUARE_TO_SC:
      *out = sc;
      return lunify(p, k[0].r, k[0].c);
    case FC_ANY_TO_SC:
      *out = sc;
      return true;
    case FC_VEC_TO_VEC:
      *out = k[0];
      return !lscalar(p, k[0]) && lunify(p, k[0].c, one);
    case FC_DIAG:
      if (lscalar(p, k[0]))
        *out = sc;
      else if (lis_one(p, k[0].c))
        *out = (lshape){k[0].r, k[0].r};
      else if (lunify(p, k[0].r, k[0].c))
        *out = (lshape){k[0].r, one};
      else
        return false;
      return true;
    case FC_VEC:
      *out = (lshape){lmul(p, k[0].c, k[0].r), one};
      return true;
    }
    return false;
  case E_INNER:
    *out = sc;
    return lunify_shape(p, k[0], k[1]);
  default:
    return false;
  }
}

/* The occurrences of closed E and everything below it, bottom-up, with
 * fresh local sizes.  Returns the index of E's occurrence. */
static size_t linfer(printer *p, const expr *e) {
  if (p->noc == p->capoc) {
    p->capoc = p->capoc ? 2 * p->capoc : 64;
    p->oc = xreallocarray(p->oc, p->capoc, sizeof *p->oc);
  }
  size_t idx = p->noc++;
  p->oc[idx] = (occ){e, {0, 0}, p->nokid};
  if (p->nokid + e->nkids > p->capokid) {
    p->capokid = 2 * (p->nokid + e->nkids) + 64;
    p->okid = xreallocarray(p->okid, p->capokid, sizeof *p->okid);
  }
  size_t kids = p->nokid;
  p->nokid += e->nkids;
  lshape small[4];
  lshape *k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
  if (++p->work > MAX_CLOSED_WORK)
    fail_at(p, "--format numpy: the constant term %s is too large to write", e);
  for (size_t i = 0; i < e->nkids && !p->failed; i++) {
    size_t ki = linfer(p, e->kid[i]);
    p->okid[kids + i] = ki;
    k[i] = p->oc[ki].sh;
  }
  lshape out = {0, 0};
  if (!p->failed && !lnode(p, e, k, &out))
    fail_at(p, "--format numpy: internal error: no sizes fit %s", e);
  if (p->failed)
    out = (lshape){lint(p, 1), lint(p, 1)};
  p->oc[idx].sh = out;
  if (k != small)
    free(k);
  return idx;
}

/* ---- sizes as Python ---- */

static bool dim_size_into(printer *p, md_dim d, strbuf *b);
static bool dim_powers(printer *p, md_dim d, strbuf *b);

/* The parameter whose shape has D: "X.shape[0]".  Appends nothing when it
 * fails. */
static bool dim_size(printer *p, md_dim d, strbuf *b) {
  strbuf t;
  sb_init(&t);
  bool ok = dim_size_into(p, d, &t);
  if (ok && t.len)
    sb_putn(b, t.s, t.len);
  sb_clear(&t);
  return ok;
}

static bool dim_size_into(printer *p, md_dim d, strbuf *b) {
  md_dim_info info = md_dim_get(p->sh, d);
  if (info.kind == MD_DIM_INT) {
    sb_printf(b, "%ld", info.value);
    return true;
  }
  for (size_t i = 0; i < p->nparams; i++) {
    if (!md_shape_known(p->sh, p->params[i]))
      continue;
    md_shape s = md_shape_of(p->sh, p->params[i]);
    for (int j = 0; j < 2; j++)
      if (md_dim_equal(p->sh, j ? s.c : s.r, d)) {
        if (p->lang == MD_CODE_OCTAVE)
          sb_printf(b, "size(%s, %d)", p->pname[i], j + 1);
        else
          sb_printf(b, "%s.shape[%d]", p->pname[i], j);
        return true;
      }
  }
  if (info.kind != MD_DIM_PRODUCT)
    return false;
  md_dim f[16];
  size_t nf = 0;
  if (!md_dim_factors(p->sh, d, f, &nf, 16))
    return dim_powers(p, d, b);
  if (!dim_size_into(p, info.a, b))
    return false;
  sb_puts(b, " * ");
  return dim_size_into(p, info.b, b);
}

/* " ** N" after a factor of a size written as powers (N > 1). */
static void put_exponent(const printer *p, strbuf *b, uint64_t n) {
  if (n > 1)
    sb_printf(b, p->lang == MD_CODE_OCTAVE ? " ^ %llu" : " ** %llu",
              (unsigned long long)n);
}

/* A size of more than 16 factors (a tower of Kronecker squares has 2^k)
 * as powers of its distinct ones: x.shape[0] ** 32; false when it has
 * more than MD_MAX_COUNTS of those. */
static bool dim_powers(printer *p, md_dim d, strbuf *b) {
  md_counts c;
  if (!md_dim_counts(p->sh, d, &c))
    return false;
  for (size_t i = 0; i < c.n; i++) {
    if (i)
      sb_puts(b, " * ");
    if (!dim_size_into(p, c.f[i].x, b))
      return false;
    put_exponent(p, b, c.f[i].n);
  }
  return true;
}

static bool lsize(printer *p, uint32_t x, strbuf *b) {
  x = lfind(p, x);
  lvar v = p->lv[x];
  switch ((lkind)v.kind) {
  case L_INT:
    sb_printf(b, "%ld", v.value);
    return true;
  case L_DIM:
    if (dim_size(p, v.dim, b))
      return true;
    /* an unknown of SHAPES that no parameter has: perhaps another
     * unknown of its class does */
    for (size_t i = 0; i < p->nlv; i++)
      if (p->lv[i].kind == L_DIM && i != x && lfind(p, (uint32_t)i) == x &&
          dim_size(p, p->lv[i].dim, b))
        return true;
    return false;
  case L_MUL: {
    uint32_t f[MAX_FACTORS];
    size_t nf = 0;
    md_counts c;
    if (!lfactors(p, x, f, &nf)) {
      /* past MAX_FACTORS, as powers (dim_powers) */
      if (!lcount_of(p, x, &c))
        return false;
      for (size_t i = 0; i < c.n; i++) {
        if (i)
          sb_puts(b, " * ");
        if (!lsize(p, c.f[i].x, b))
          return false;
        put_exponent(p, b, c.f[i].n);
      }
      return true;
    }
    if (!lsize(p, v.a, b))
      return false;
    sb_puts(b, " * ");
    return lsize(p, v.b, b);
  }
  case L_FREE:
    break;
  }
  return false;
}

/* Appends the size of X, or fails naming WHAT, the term that needs it. */
static void put_size(printer *p, uint32_t x, strbuf *b, const expr *what) {
  strbuf t;
  sb_init(&t);
  bool ok = lsize(p, x, &t);
  if (ok && t.len)
    sb_putn(b, t.s, t.len);
  sb_clear(&t);
  if (!ok)
    fail_at(p,
            "--format numpy: the size of %s is not fixed by any parameter "
            "of the function",
            what);
}

/* ---- fragments ---- */

static py py_take(strbuf *b, int prec, int depth) {
  return (py){sb_take(b), prec, depth, false};
}

static py py_str(const char *s) {
  strbuf b;
  sb_init(&b);
  sb_puts(&b, s);
  return py_take(&b, PY_ATOM, 0);
}

static py py_copy(py x) {
  py r = x;
  size_t n = strlen(x.s) + 1;
  r.s = memcpy(xmalloc(n), x.s, n);
  return r;
}

/* Appends X (consumed) where the grammar wants LEVEL; tracks the depth. */
static void put(strbuf *b, py x, int level, int *depth) {
  bool paren = x.prec < level;
  if (paren)
    sb_putc(b, '(');
  sb_puts(b, x.s);
  if (paren)
    sb_putc(b, ')');
  if (x.depth > *depth)
    *depth = x.depth;
  free(x.s);
}

/* "F(X)" */
static py call1(const char *f, py x) {
  strbuf b;
  sb_init(&b);
  int d = 0;
  sb_puts(&b, f);
  sb_putc(&b, '(');
  put(&b, x, PY_SUM, &d);
  sb_putc(&b, ')');
  return py_take(&b, PY_ATOM, d + 1);
}

/* "PRE X POST" with X at LEVEL, the whole at PREC */
static py wrap(const char *pre, py x, int level, const char *post, int prec) {
  strbuf b;
  sb_init(&b);
  int d = 0;
  sb_puts(&b, pre);
  put(&b, x, level, &d);
  sb_puts(&b, post);
  return py_take(&b, prec, d + 1);
}

static bool is_name(const py *x) {
  return x->prec == PY_ATOM && x->depth == 0;
}

/* A new local: t1, t2, ... that no parameter is called. */
static char *temp_name(printer *p) {
  char buf[32];
  for (;;) {
    snprintf(buf, sizeof buf, "t%u", ++p->ntemp);
    size_t i = 0;
    while (i < p->nparams && strcmp(p->pname[i], buf) != 0)
      i++;
    if (i == p->nparams)
      break;
  }
  size_t n = strlen(buf) + 1;
  return memcpy(xmalloc(n), buf, n);
}

/* Assigns X (consumed) to a new local and returns its name. */
static py to_temp(printer *p, py x) {
  char *name = temp_name(p);
  if (p->lang == MD_CODE_OCTAVE)
    sb_printf(&p->body, "  %s = %s;\n", name, x.s);
  else
    sb_printf(&p->body, "    %s = %s\n", name, x.s);
  free(x.s);
  return (py){name, PY_ATOM, 0, false};
}

/* A name, as is, or else a local holding X: for operands used twice. */
static py named(printer *p, py x) {
  return is_name(&x) ? x : to_temp(p, x);
}

/* A left-associative chain a OP b OP c ..., split into locals every
 * MAX_CHAIN operands.  The first operand waits in FIRST until a second
 * one shows whether it needs brackets. */
typedef struct chain {
  strbuf b;
  size_t n;
  int prec, depth;
  py first;
} chain;

static void chain_init(chain *c, int prec) {
  sb_init(&c->b);
  c->n = 0;
  c->prec = prec;
  c->depth = 0;
}

/* The chain's fragment (consumed); one operand is itself. */
static py chain_end(chain *c) {
  if (c->n == 1)
    return c->first;
  return py_take(&c->b, c->prec, c->depth + 1);
}

/* Appends X (consumed) after OP (ignored for the first operand). */
static void chain_add(printer *p, chain *c, const char *op, py x) {
  if (c->n == 0) {
    c->first = x;
    c->n = 1;
    return;
  }
  if (c->n == MAX_CHAIN) {
    py t = to_temp(p, chain_end(c));
    chain_init(c, c->prec);
    c->first = t;
    c->n = 1;
  }
  if (c->n == 1)
    put(&c->b, c->first, c->prec, &c->depth);
  sb_puts(&c->b, op);
  put(&c->b, x, c->prec + 1, &c->depth);
  c->n++;
}

/* ---- numbers and names ---- */

static const char *const keywords[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break",
    "class", "continue", "def", "del", "elif", "else", "except", "finally",
    "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    /* names the generated code itself uses */
    "np", "float", "torch"};

/* Octave's (and MATLAB's) keywords, and the names of the functions the
 * generated code calls: a parameter may not hide them. */
static const char *const octave_words[] = {
    "break", "case", "catch", "classdef", "continue", "do", "else", "elseif",
    "end", "end_try_catch", "end_unwind_protect", "endfor", "endfunction",
    "endif", "endparfor", "endswitch", "endwhile", "enumeration", "events",
    "for", "function", "global", "if", "methods", "otherwise", "parfor",
    "persistent", "properties", "return", "spmd", "switch", "try",
    "unwind_protect", "unwind_protect_cleanup", "until", "while",
    /* functions called */
    "abs", "cos", "det", "diag", "double", "exp", "eye", "inv", "kron", "log",
    "log1p", "max", "norm", "ones", "reshape", "sign", "sin", "size", "sqrt",
    "sum", "tan", "tanh", "trace", "zeros"};

static bool reserved(const printer *p, const char *s) {
  if (p->lang == MD_CODE_OCTAVE) {
    for (size_t i = 0; i < sizeof octave_words / sizeof octave_words[0]; i++)
      if (strcmp(octave_words[i], s) == 0)
        return true;
    return false;
  }
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (strcmp(keywords[i], s) == 0)
      return true;
  return false;
}

/* Integers of up to this many digits are written exactly; longer ones
 * (and fractions with such parts) as the nearest double: CPython refuses
 * literals of more than 4300 digits, and NumPy computes in doubles. */
#define MAX_EXACT_DIGITS 30

static py py_num(const printer *p, const mpq_t q) {
  strbuf b;
  sb_init(&b);
  bool neg = mpq_sgn(q) < 0;
  bool frac = mpz_cmp_ui(mpq_denref(q), 1) != 0;
  if (mpz_sizeinbase(mpq_numref(q), 10) <= MAX_EXACT_DIGITS &&
      mpz_sizeinbase(mpq_denref(q), 10) <= MAX_EXACT_DIGITS) {
    char *s = mpq_get_str(NULL, 10, q);
    sb_puts(&b, s);
    void (*freefn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefn);
    freefn(s, strlen(s) + 1);
  } else {
    double d = mpq_get_d(q);
    frac = false;
    if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308)
      sb_puts(&b, d < 0 ? L(p, "-np.inf", "-float('inf')", "-Inf")
                        : L(p, "np.inf", "float('inf')", "Inf"));
    else
      sb_printf(&b, "%.17g", d);
  }
  py r = py_take(&b, frac ? PY_PROD : neg ? PY_UNARY : PY_ATOM, 0);
  r.neg = neg;
  return r;
}

/* ---- the emitter ---- */

static py emit(printer *p, const expr *e);
static py emit_node(printer *p, const expr *e);
static py emit_occ(printer *p, size_t idx);

static py emit_item(printer *p, const item *k) {
  return k->occ == NO_OCC ? emit(p, k->e) : emit_occ(p, k->occ);
}

/* np.eye(k), np.ones((k, 1)) */
static py sized(printer *p, const char *pre, uint32_t size, const char *post,
                const expr *what) {
  strbuf b;
  sb_init(&b);
  sb_puts(&b, pre);
  put_size(p, size, &b, what);
  sb_puts(&b, post);
  return py_take(&b, PY_ATOM, 1);
}

static py emit_sym(printer *p, const expr *e) {
  for (size_t i = 0; i < p->nparams; i++)
    if (p->params[i] == e) {
      p->pused[i] = true;
      return py_str(p->pname[i]);
    }
  /* the caller's list is short: code that would fail with a NameError
   * is no answer */
  fail_at(p, "--format numpy: %s is not a parameter of the function", e);
  return py_str(e->u.name);
}

static md_shape fixed_shape(printer *p, const expr *e);
static py emit(printer *p, const expr *e);

/* ---- sub-chains ----
 *
 * Products are flat: A x x^T is one node of three operands, and the
 * gradient by A of ||A x||^2 (2 A x x^T) would compute A x again although
 * the value has it.  In a function of several results every product node
 * of the DAG is indexed by its operands; a chain is then written with its
 * longest sub-chains that are nodes (A x) as those nodes, shared. */

/* Sub-chains are looked up up to this length, and only in the products
 * of a result of at most MAX_CHAIN_OPERANDS operands in all: a lookup
 * costs its length, and a chain of k factors has k^2 sub-chains. */
#define MAX_SUBCHAIN       32
#define MAX_CHAIN_OPERANDS (1u << 16)

static size_t mhash(expr *const *k, size_t n) {
  size_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ k[i]->id) * 1099511628211u;
  return h;
}

static const expr **mslot(printer *p, expr *const *k, size_t n) {
  size_t i = mhash(k, n) & (p->mcap - 1);
  for (;; i = (i + 1) & (p->mcap - 1)) {
    const expr *m = p->mtab[i];
    if (!m || (m->nkids == n && memcmp(m->kid, k, n * sizeof *k) == 0))
      return &p->mtab[i];
  }
}

/* Indexes the products below E (SEEN: SEEN_INDEXED). */
static void mindex(printer *p, const expr *e, uint8_t *seen) {
  if (seen[e->id] || (e->flags & EF_CLOSED))
    return;
  seen[e->id] = 1;
  if (written_as(p, e)) {
    mindex(p, written_as(p, e), seen);
    return;
  }
  if (e->op == E_MUL)
    *mslot(p, e->kid, e->nkids) = e;
  for (size_t i = 0; i < e->nkids; i++)
    mindex(p, e->kid[i], seen);
}

static const expr *base_of(const printer *p, const expr *k);

/* The longest product node of operands E->kid[I..*J), 2 <= *J - I < E's
 * operands, all of them matrices or vectors with a symbol inside; NULL
 * when none is.  The node is not 1×1. */
static const expr *chain_match(printer *p, const expr *e, size_t i, size_t *j) {
  if (!p->mcap)
    return NULL;
  /* below a scaled exponential (see the top of the file), only factors
   * of degree 0: a sub-chain of them is written as it is, as they are */
  size_t n = e->nkids, end = i;
  while (end < n && !(e->kid[end]->flags & EF_CLOSED) &&
         !md_shape_is_scalar(p->sh, fixed_shape(p, e->kid[end])) &&
         !(p->scale && base_of(p, e->kid[end])))
    end++;
  if (end > i + MAX_SUBCHAIN)
    end = i + MAX_SUBCHAIN;
  for (size_t m = end; m >= i + 2; m--) {
    if (m - i >= n)
      continue;
    const expr *r = *mslot(p, e->kid + i, m - i);
    /* (a 1×1 sub-chain is a number where it is written: not one link of
     * a chain) */
    if (r && !md_shape_is_scalar(p->sh, fixed_shape(p, r))) {
      *j = m;
      return r;
    }
  }
  return NULL;
}

/* Runs that multiply to 1×1.  The gradients of (a^T A c) (b^T X d)
 * hold the numbers a^T A c and b^T X d in each of their terms, as runs of
 * operands of flat products: not nodes, so each use would compute its
 * number again.  Before printing, each such run becomes a product node of
 * its own (made here, indexed with the sub-chains), written where the run
 * stands: one local when used twice. */

static bool shape_if_known(printer *p, const expr *e, md_shape *s) {
  if (!md_shape_known(p->sh, e) && !md_shape_derive(p->sh, (expr *)e))
    return false;
  *s = md_shape_of(p->sh, e);
  return true;
}

/* RUN[i] = j where operands i .. j - 1 of the product E (2 <= j - i < n,
 * none closed or 1×1) multiply to 1×1 and emit_mul groups them so: left to
 * right, a group ends where it reaches 1×1 and another starts where the
 * chain breaks; else 0.  A closed operand (its sizes are local) ends a
 * group here; emit_mul checks that its groups agree before it uses a run.
 * RUN has E's n entries.  False when there is none. */
static bool scalar_runs(printer *p, const expr *e, size_t *run) {
  size_t n = e->nkids;
  memset(run, 0, n * sizeof *run);
  if (e->op != E_MUL || (e->flags & EF_CLOSED) || n < 3)
    return false;
  md_shape *s = xreallocarray(NULL, n, sizeof *s);
  bool *closed = xreallocarray(NULL, n, sizeof *closed);
  bool ok = true, any = false;
  for (size_t i = 0; i < n && ok; i++) {
    closed[i] = e->kid[i]->flags & EF_CLOSED;
    ok = closed[i] || shape_if_known(p, e->kid[i], &s[i]);
  }
  for (size_t i = 0; ok && i < n;) {
    if (closed[i] || md_shape_is_scalar(p->sh, s[i])) {
      i++;
      continue;
    }
    md_dim r = s[i].r, c = s[i].c;
    size_t j = i + 1;
    bool one = false;
    while (j < n &&
           !(one = md_dim_is_one(p->sh, r) && md_dim_is_one(p->sh, c)) &&
           !closed[j] && !md_shape_is_scalar(p->sh, s[j]) &&
           md_dim_equal(p->sh, c, s[j].r))
      c = s[j++].c;
    one = md_dim_is_one(p->sh, r) && md_dim_is_one(p->sh, c);
    if (one && j - i >= 2 && j - i < n) {
      run[i] = j;
      any = true;
    }
    i = j;
  }
  free(s);
  free(closed);
  return any;
}

/* A growable array of nodes. */
typedef struct nodes {
  expr **v;
  size_t n, cap;
} nodes;

static void nodes_push(nodes *a, expr *e) {
  if (a->n == a->cap) {
    a->cap = a->cap ? 2 * a->cap : 16;
    a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
  }
  a->v[a->n++] = e;
}

/* Transposes.  The normal form writes transposes at the leaves: the
 * gradient of ||X - U V^T||^2 by V is 2 (V U^T - X^T) U, while the one by
 * U holds U V^T - X.  Each is the other's transpose, but they are two
 * nodes, and V U^T would be computed again.  Before printing, the
 * transpose of each matrix node is built as the normal form writes it
 * (transposes to the leaves; a product's operands reversed, its 1×1
 * factors kept first; a sum's terms in their order); where that is also a
 * node of the result, with a smaller id, the node is written as that
 * node's .T. */

#define TRANSPOSE_WORK_PER_NODE 4

typedef struct tpass {
  printer *p;
  md_idmap memo;
  size_t work, budget;
} tpass;

/* Whether E is a number or 1×1 (its transpose is itself). */
static bool one_by_one(printer *p, const expr *e) {
  md_shape sh;
  return e->op == E_NUM ||
         (!(e->flags & EF_CLOSED) && shape_if_known(p, e, &sh) &&
          md_shape_is_scalar(p->sh, sh));
}

/* E^T with the transposes at the leaves, or NULL past the work budget.
 * It builds what is_transpose (below) recognises: E is symmetric when it
 * is I, 1×1, or a symbol of a symmetric kind. */
static expr *transposed(tpass *t, expr *e) {
  printer *p = t->p;
  if (e->op == E_IDENT || one_by_one(p, e))
    return e; /* (not memoised: cheap) */
  if (e->op == E_SYM) {
    md_kind kind = md_shape_sym_kind(p->sh, e);
    if (kind == K_SYMMETRIC || kind == K_SPD || kind == K_DIAGONAL)
      return e;
  }
  uintptr_t got = md_idmap_get(&t->memo, e);
  if (got)
    return (expr *)got;
  if (++t->work > t->budget)
    return NULL;
  expr *r = NULL;
  size_t n = e->nkids;
  expr *small[4];
  expr **k = n <= 4 ? small : xreallocarray(NULL, n, sizeof *k);
  bool ok = true;
  switch ((expr_op)e->op) {
  case E_TRANS:
    r = e->kid[0];
    break;
  case E_NEG:
  case E_ADD:
  case E_HAD:
  case E_HDIV:
  case E_KRON:
    for (size_t i = 0; i < n && ok; i++)
      ok = (k[i] = transposed(t, e->kid[i])) != NULL;
    if (ok)
      r = e->op == E_ADD ? expr_add_n(p->ctx, k, n)
                         : expr_make(p->ctx, (expr_op)e->op, k, n);
    break;
  case E_MUL: {
    /* the 1×1 factors first, in their order; then the others reversed */
    size_t m = 0;
    bool *sc = xreallocarray(NULL, n, sizeof *sc);
    for (size_t i = 0; i < n; i++)
      if ((sc[i] = one_by_one(p, e->kid[i])))
        k[m++] = e->kid[i];
    for (size_t i = n; i-- > 0 && ok;)
      if (!sc[i])
        ok = (k[m++] = transposed(t, e->kid[i])) != NULL;
    free(sc);
    if (ok && m == n)
      r = expr_mul_n(p->ctx, k, n);
    break;
  }
  case E_DIV:  /* (A / s)^T = A^T / s */
  case E_EPOW: /* (A .^ k)^T = A^T .^ k */
    if ((k[0] = transposed(t, e->kid[0]))) {
      k[1] = e->kid[1];
      r = expr_make(p->ctx, (expr_op)e->op, k, 2);
    }
    break;
  case E_INV: /* inv(A)^T = inv(A^T), as the normal form writes it */
    if ((k[0] = transposed(t, e->kid[0])))
      r = expr_inv(p->ctx, k[0]);
    break;
  case E_CALL:
    if (n == 1 && md_fn_get(p->ctx, e->u.fn)->cls == FC_ELEMWISE) {
      if ((k[0] = transposed(t, e->kid[0])))
        r = expr_call1(p->ctx, e->u.fn, k[0]);
      break;
    }
    r = expr_trans(p->ctx, e);
    break;
  default:
    r = expr_trans(p->ctx, e);
    break;
  }
  if (k != small)
    free(k);
  if (r)
    md_idmap_put(&t->memo, e, (uintptr_t)r);
  return r;
}

/* Marks in LIVE the nodes below E with a symbol inside. */
static void mark_live(const expr *e, uint8_t *live, nodes *order) {
  if (live[e->id] || (e->flags & EF_CLOSED))
    return;
  live[e->id] = 1;
  for (size_t i = 0; i < e->nkids; i++)
    mark_live(e->kid[i], live, order);
  nodes_push(order, (expr *)e);
}

/* Whether K is the transpose of a product that nothing else uses (PARENTS
 * by id; PREFIX, if not NULL: the product starts another, which computes
 * it first, left to right): a product that holds K can hold that
 * product's operands, transposed and reversed, instead. */
static bool expandable(const expr *k, const uint32_t *parents,
                       const uint8_t *prefix) {
  if (k->op != E_TRANS || k->kid[0]->op != E_MUL ||
      parents[k->kid[0]->id] != 1 || (prefix && prefix[k->kid[0]->id]))
    return false;
  /* (C ones)^T stays: ones^T C^T would take its size from nowhere */
  for (size_t i = 0; i < k->kid[0]->nkids; i++)
    if (k->kid[0]->kid[i]->flags & EF_CLOSED)
      return false;
  return true;
}

/* Marks in PREFIX the products of ORDER whose operands start another's. */
static void mark_prefixes(const nodes *order, uint8_t *prefix) {
  /* the products by their first operand */
  md_idmap first;
  md_idmap_init(&first);
  size_t *next = xcalloc(order->n + 1, sizeof *next); /* 1-based chains */
  for (size_t i = 0; i < order->n; i++) {
    const expr *q = order->v[i];
    if (q->op != E_MUL)
      continue;
    next[i + 1] = md_idmap_get(&first, q->kid[0]);
    md_idmap_put(&first, q->kid[0], i + 1);
  }
  for (size_t i = 0; i < order->n; i++) {
    const expr *pr = order->v[i];
    if (pr->op != E_MUL)
      continue;
    for (size_t j = md_idmap_get(&first, pr->kid[0]); j; j = next[j]) {
      const expr *q = order->v[j - 1];
      if (q != pr && q->nkids > pr->nkids &&
          memcmp(q->kid, pr->kid, pr->nkids * sizeof *q->kid) == 0) {
        prefix[pr->id] = 1;
        break;
      }
    }
  }
  free(next);
  md_idmap_clear(&first);
}

/* Finds the nodes of the roots to write as another's transpose (pairs
 * (node, the other) in TOUT), and the products to write with a transposed
 * product among their operands expanded, (X B)^T as B^T X^T (pairs
 * (node, the product written instead) in EOUT): then Re-Pair sees the
 * pair R B^T in R (X B)^T and in A^T R B^T (the gradients of
 * ||A X B - C||^2 by A and by X). */
static void find_transposes(printer *p, const expr *const *roots, size_t nroots,
                            nodes *tout, nodes *eout) {
  size_t nold = md_ctx_nnodes(p->ctx);
  uint8_t *live = xcalloc(nold ? nold : 1, 1);
  nodes order = {0};
  for (size_t i = 0; i < nroots; i++)
    mark_live(roots[i], live, &order);
  tpass t = {.p = p, .budget = TRANSPOSE_WORK_PER_NODE * order.n + 64};
  md_idmap_init(&t.memo);
  uint8_t *sub = xcalloc(nold ? nold : 1, 1);
  for (size_t i = 0; i < order.n; i++) {
    expr *e = order.v[i];
    md_shape sh;
    if (e->op == E_SYM || e->op == E_TRANS || !shape_if_known(p, e, &sh) ||
        md_shape_is_scalar(p->sh, sh))
      continue;
    expr *r = transposed(&t, e);
    if (r && r != e && r->id < e->id && live[r->id]) {
      nodes_push(tout, e);
      nodes_push(tout, r);
      sub[e->id] = 1;
    }
  }
  uint8_t *prefix = NULL;
  if (p->expand == 1) {
    prefix = xcalloc(nold ? nold : 1, 1);
    mark_prefixes(&order, prefix);
  }
  /* the parents of each node, among the nodes written as they are */
  uint32_t *parents = xcalloc(nold ? nold : 1, sizeof *parents);
  for (size_t i = 0; i < order.n; i++) {
    const expr *e = order.v[i];
    if (sub[e->id])
      continue;
    for (size_t j = 0; j < e->nkids; j++)
      parents[e->kid[j]->id]++;
  }
  for (size_t i = 0; p->expand && i < order.n; i++) {
    expr *e = order.v[i];
    if (e->op != E_MUL || sub[e->id])
      continue;
    size_t n = e->nkids, m = 0;
    bool any = false;
    for (size_t j = 0; j < n; j++) {
      bool x = expandable(e->kid[j], parents, prefix);
      any |= x;
      m += x ? e->kid[j]->kid[0]->nkids : 1;
    }
    if (!any)
      continue;
    expr **k = xreallocarray(NULL, m, sizeof *k);
    size_t w = 0;
    bool ok = true;
    for (size_t j = 0; j < n && ok; j++) {
      const expr *c = e->kid[j];
      if (!expandable(c, parents, prefix)) {
        /* (an operand expanded before may have had more factors than
         * counted: a long product kept whole in one and not the other) */
        ok = w < m;
        if (ok)
          k[w++] = (expr *)c;
        continue;
      }
      expr *tp = transposed(&t, c->kid[0]);
      ok = tp && tp->op == E_MUL && w + tp->nkids <= m;
      for (size_t q = 0; ok && q < tp->nkids; q++)
        k[w++] = tp->kid[q];
    }
    expr *r = ok && w == m ? expr_mul_n(p->ctx, k, m) : NULL;
    free(k);
    md_shape sr, se;
    if (r && r != e && r->op == E_MUL && shape_if_known(p, r, &sr) &&
        shape_if_known(p, e, &se) && md_dim_equal(p->sh, sr.r, se.r) &&
        md_dim_equal(p->sh, sr.c, se.c)) {
      nodes_push(eout, e);
      nodes_push(eout, r);
    }
  }
  free(parents);
  free(prefix);
  free(sub);
  md_idmap_clear(&t.memo);
  free(order.v);
  free(live);
}

/* Lists the products below E in PRODS and their operands in SEQ, each
 * product's after a NULL (SEEN, by id: the nodes there were before). */
static void collect_products(printer *p, const expr *e, uint8_t *seen,
                             nodes *prods, nodes *seq) {
  if (seen[e->id] || (e->flags & EF_CLOSED))
    return;
  seen[e->id] = 1;
  if (written_as(p, e)) {
    collect_products(p, written_as(p, e), seen, prods, seq);
    return;
  }
  if (e->op == E_MUL) {
    nodes_push(prods, (expr *)e);
    nodes_push(seq, NULL);
    for (size_t i = 0; i < e->nkids; i++)
      nodes_push(seq, e->kid[i]);
  }
  for (size_t i = 0; i < e->nkids; i++)
    collect_products(p, e->kid[i], seen, prods, seq);
}

/* Makes the run nodes of the product E (into MADE). */
static void make_runs(printer *p, const expr *e, nodes *made) {
  if (e->nkids < 3)
    return;
  size_t *run = xreallocarray(NULL, e->nkids, sizeof *run);
  if (scalar_runs(p, e, run))
    for (size_t i = 0; i < e->nkids; i++) {
      if (!run[i])
        continue;
      expr *r = expr_make(p->ctx, E_MUL, e->kid + i, run[i] - i);
      if (!r || r->op != E_MUL || r->nkids != run[i] - i)
        continue; /* past a budget, or merged: written as it stands */
      nodes_push(made, r);
    }
  free(run);
}

/* Shared sub-chains.  The chains of several results often share a pair
 * of neighbours that no node holds: X c in A X c, X c and A^2 X c.  As
 * Re-Pair compresses a text, the pair of operands found most often in the
 * products (at least twice) becomes a product node of its own, which
 * takes its place in them, and again while REPAIR_WORK lasts (a round
 * looks at every operand): a pair may hold a pair made before (A (X c)).
 * emit_mul then writes each chain with its longest sub-chains that are nodes
 * (chain_match), each computed once.  Only a pair of a matrix or vector with a
 * matrix or vector that multiply (not to 1×1: runs are made above) is counted.
 */
#define REPAIR_WORK (1u << 23) /* operands looked at, over all rounds, as
                                * md_work_budget scales it (expr.h) */

static bool pairable(printer *p, const expr *a, const expr *b) {
  md_shape sa, sb;
  if (!a || !b || (a->flags & EF_CLOSED) || (b->flags & EF_CLOSED) ||
      !shape_if_known(p, a, &sa) || !shape_if_known(p, b, &sb) ||
      md_shape_is_scalar(p->sh, sa) || md_shape_is_scalar(p->sh, sb))
    return false;
  return md_dim_equal(p->sh, sa.c, sb.r) &&
         !(md_dim_is_one(p->sh, sa.r) && md_dim_is_one(p->sh, sb.c));
}

typedef struct pair_count {
  const expr *a, *b;
  size_t n;
} pair_count;

static void repair(printer *p, nodes *seq, nodes *made) {
  size_t cap = 16;
  while (cap < 2 * seq->n)
    cap *= 2;
  pair_count *tab = xcalloc(cap, sizeof *tab);
  /* PAIRABLE[t]: seq[t], seq[t + 1] is a pair to count */
  bool *ok = xcalloc(seq->n ? seq->n : 1, sizeof *ok);
  size_t *from = xcalloc(seq->n ? seq->n : 1, sizeof *from);
  /* the slots of TAB a round filled, cleared after it: the table keeps
   * its first size while the sequence shrinks, and clearing it whole
   * made each round cost that size, not the round's operands (a where
   * chain's NumPy code: 1 766 rounds of 3 MB, 1.4 G instructions) */
  size_t *used = xcalloc(seq->n ? seq->n : 1, sizeof *used), nused = 0;
  for (size_t t = 0; t + 1 < seq->n; t++)
    ok[t] = pairable(p, seq->v[t], seq->v[t + 1]);
  size_t budget = md_work_budget(REPAIR_WORK);
  for (size_t work = 0; work + seq->n <= budget; work += seq->n) {
    for (size_t i = 0; i < nused; i++)
      tab[used[i]] = (pair_count){0};
    nused = 0;
    pair_count *best = NULL;
    for (size_t t = 0; t + 1 < seq->n; t++) {
      if (!ok[t])
        continue;
      const expr *a = seq->v[t], *b = seq->v[t + 1];
      size_t h = ((size_t)a->id * 2654435761u ^ b->id) & (cap - 1);
      while (tab[h].a && (tab[h].a != a || tab[h].b != b))
        h = (h + 1) & (cap - 1);
      if (!tab[h].a)
        used[nused++] = h;
      tab[h].a = a, tab[h].b = b, tab[h].n++;
      /* a a a is one pair a a, not two */
      if (t + 2 < seq->n && ok[t + 1] && seq->v[t + 2] == b && a == b)
        t++;
      if (!best || tab[h].n > best->n)
        best = &tab[h];
    }
    if (!best || best->n < 2)
      break;
    expr *k[2] = {(expr *)best->a, (expr *)best->b};
    expr *r = expr_make(p->ctx, E_MUL, k, 2);
    if (!r || r->op != E_MUL)
      break;
    nodes_push(made, r);
    /* the pair's places take R; R pairs with its new neighbours */
    const expr *a = best->a, *b = best->b;
    size_t w = 0;
    for (size_t t = 0; t < seq->n; t++) {
      from[w] = t;
      if (t + 1 < seq->n && ok[t] && seq->v[t] == a && seq->v[t + 1] == b) {
        seq->v[w++] = r;
        t++;
      } else {
        seq->v[w++] = seq->v[t];
      }
    }
    seq->n = w;
    /* a pair with R in it is new; the others were counted before */
    for (size_t t = 0; t + 1 < seq->n; t++)
      ok[t] = seq->v[t] == r || seq->v[t + 1] == r
                  ? pairable(p, seq->v[t], seq->v[t + 1])
                  : ok[from[t]];
  }
  free(used);
  free(from);
  free(ok);
  free(tab);
}

/* a * b * ... or a @ b @ ...: scalars first, then the matrix chain.  The
 * grouping is shape.c's: a kid of shape 1×1 scales; so does a run of
 * factors that multiplies to 1×1, written (a @ b).item(). */
static py emit_mul(printer *p, const expr *e, const item *k) {
  size_t n = e->nkids;
  /* grp[i]: the chain kid i belongs to, or -1 for a scalar kid */
  long *grp = xreallocarray(NULL, n, sizeof *grp);
  bool *gscalar = xcalloc(n, sizeof *gscalar);
  long ng = 0, cur = -1;
  lshape acc = k[0].sh;
  if (lscalar(p, acc))
    grp[0] = -1;
  else
    grp[0] = cur = ng++;
  for (size_t i = 1; i < n; i++) {
    if (lscalar(p, acc)) {
      if (cur >= 0)
        gscalar[cur] = true;
      acc = k[i].sh;
      if (lscalar(p, acc)) {
        grp[i] = -1, cur = -1;
      } else {
        grp[i] = cur = ng++;
      }
      continue;
    }
    if (lscalar(p, k[i].sh)) {
      grp[i] = -1;
      continue;
    }
    if (lunify(p, acc.c, k[i].sh.r)) {
      acc.c = k[i].sh.c;
      grp[i] = cur;
      continue;
    }
    long run = ng++;
    gscalar[run] = true;
    lshape rs = k[i].sh;
    grp[i] = run;
    size_t j = i + 1;
    while (j < n && !lscalar(p, rs) &&
           (lscalar(p, k[j].sh) || lunify(p, rs.c, k[j].sh.r))) {
      if (lscalar(p, k[j].sh)) {
        grp[j] = -1;
      } else {
        rs.c = k[j].sh.c;
        grp[j] = run;
      }
      j++;
    }
    if (!lscalar(p, rs))
      fail_at(p, "--format numpy: internal error: no reading of %s", e);
    i = j - 1;
  }
  if (cur >= 0 && lscalar(p, acc))
    gscalar[cur] = true;

  /* A chain that ends in ones sums its rows, one that starts with ones^T
   * its columns: np.sum(M, axis=1, keepdims=True) for M @ ones, one
   * matrix product less (the cheap-gradient count, issue 19) and fewer
   * operations.  SUMS[g]: bit 1 rows, bit 2 columns; SKIP the kids so
   * written. */
  unsigned char *sums = xcalloc(ng ? (size_t)ng : 1, 1);
  bool *skip = xcalloc(n, sizeof *skip);
  for (long g = 0; g < ng; g++) {
    size_t first = n, last = n, count = 0;
    for (size_t i = 0; i < n; i++)
      if (grp[i] == g) {
        if (first == n)
          first = i;
        last = i;
        count++;
      }
    const expr *fe = k[first].e, *le = k[last].e;
    bool tail = count >= 2 && le->op == E_ONES;
    bool head = count >= 2 + (size_t)tail && fe->op == E_TRANS &&
                fe->kid[0]->op == E_ONES;
    if (tail)
      sums[g] |= 1, skip[last] = true;
    if (head)
      sums[g] |= 2, skip[first] = true;
  }

  /* a group that is a run with a node of its own (scalar_runs): that
   * node, a number, written once (DONE[g]) */
  size_t *run = NULL, *gcount = NULL;
  bool *done = xcalloc(ng ? (size_t)ng : 1, sizeof *done);
  bool unscaled = true; /* no factor of a degree in a scaled exp(u) */
  for (size_t i = 0; p->scale && i < n; i++)
    unscaled = unscaled && !base_of(p, e->kid[i]);
  if (p->mcap && unscaled && n >= 3) {
    run = xreallocarray(NULL, n, sizeof *run);
    if (!scalar_runs(p, e, run)) {
      free(run);
      run = NULL;
    }
    gcount = xcalloc(ng ? (size_t)ng : 1, sizeof *gcount);
    for (size_t i = 0; i < n; i++)
      if (grp[i] >= 0)
        gcount[grp[i]]++;
  }

  /* emit every kid once, in order, into its group's chain */
  chain *gc = xreallocarray(NULL, ng ? (size_t)ng : 1, sizeof *gc);
  for (long g = 0; g < ng; g++)
    chain_init(&gc[g], PY_PROD);
  chain all;
  chain_init(&all, PY_PROD);
  long matrix = -1;
  /* Octave: * is the matrix product, .* scales (so * counts products) */
  const char *times = L(p, " * ", " * ", " .* ");
  const char *matmul = L(p, " @ ", " @ ", " * ");
  /* a 1x1 matrix as a number: Octave's is one already */
  const char *as_num = L(p, ".item()", ".squeeze()", "");
  for (size_t i = 0; i < n; i++) {
    if (skip[i])
      continue;
    size_t j;
    if (run && run[i] && grp[i] >= 0 && gscalar[grp[i]] &&
        gcount[grp[i]] == run[i] - i && !sums[grp[i]]) {
      long g = grp[i];
      bool whole = true;
      for (size_t m = i; m < run[i]; m++)
        whole = whole && grp[m] == g && k[m].occ == NO_OCC;
      const expr *r = whole ? *mslot(p, e->kid + i, run[i] - i) : NULL;
      if (r) {
        chain_add(p, &all, times, emit(p, r));
        done[g] = true;
        i = run[i] - 1;
        continue;
      }
    }
    const expr *sub = grp[i] >= 0 ? chain_match(p, e, i, &j) : NULL;
    for (size_t m = i; sub && m < j; m++)
      if (grp[m] != grp[i] || k[m].occ != NO_OCC || skip[m])
        sub = NULL;
    py x;
    size_t first = i; /* X's rows are those of its first operand */
    if (sub) {
      x = emit(p, sub); /* the sub-chain that is a node, computed once */
      i = j - 1;
    } else {
      x = emit_item(p, &k[i]);
    }
    if (grp[i] < 0) {
      chain_add(p, &all, times, x);
      continue;
    }
    /* a column times a row is their outer product, which broadcasting
     * writes with *: no matrix product (u v^T, ones (C ones)^T) */
    bool outer = gc[grp[i]].n > 0 && lis_one(p, k[first].sh.r);
    if (gc[grp[i]].n > 0 && !outer)
      p->products++;
    chain_add(p, &gc[grp[i]], outer ? times : matmul, x);
    if (!gscalar[grp[i]])
      matrix = grp[i];
  }
  py *gx = xreallocarray(NULL, ng ? (size_t)ng : 1, sizeof *gx);
  for (long g = 0; g < ng; g++) {
    if (done[g]) {
      sb_clear(&gc[g].b);
      continue;
    }
    gx[g] = chain_end(&gc[g]);
    if (sums[g] & 2) /* ones^T @ M: the sums of M's columns */
      gx[g] = wrap(
          L(p, "np.sum(", "torch.sum(", "sum("), gx[g], PY_SUM,
          L(p, ", axis=0, keepdims=True)", ", dim=0, keepdim=True)", ", 1)"),
          PY_ATOM);
    if (sums[g] & 1) /* M @ ones: the sums of M's rows */
      gx[g] = wrap(
          L(p, "np.sum(", "torch.sum(", "sum("), gx[g], PY_SUM,
          L(p, ", axis=1, keepdims=True)", ", dim=1, keepdim=True)", ", 2)"),
          PY_ATOM);
  }
  for (long g = 0; g < ng; g++)
    if (g != matrix && !done[g])
      chain_add(p, &all, times, wrap("", gx[g], PY_ATOM, as_num, PY_ATOM));
  /* s * (A @ B): the bracket says which product is which */
  if (matrix >= 0)
    chain_add(p, &all, times, gx[matrix]);
  free(gx);
  free(gc);
  free(grp);
  free(gscalar);
  free(sums);
  free(skip);
  free(run);
  free(gcount);
  free(done);
  return chain_end(&all);
}

/* kron(a, b, ...): scalar kids scale, matrices nest np.kron. */
static py emit_kron(printer *p, const expr *e, const item *k) {
  chain all;
  chain_init(&all, PY_PROD);
  py m = {NULL, PY_ATOM, 0, false};
  for (size_t i = 0; i < e->nkids; i++) {
    py x = emit_item(p, &k[i]);
    if (lscalar(p, k[i].sh)) {
      chain_add(p, &all, L(p, " * ", " * ", " .* "), x);
    } else if (!m.s) {
      m = x;
    } else {
      strbuf b;
      sb_init(&b);
      int d = 0;
      /* torch.kron (1.13) views its operands: a transpose would fail */
      bool torch = p->lang == MD_CODE_TORCH;
      const char *c = torch ? ".contiguous()" : "";
      sb_puts(&b, L(p, "np.kron(", "torch.kron(", "kron("));
      put(&b, m, torch ? PY_ATOM : PY_SUM, &d);
      sb_printf(&b, "%s, ", c);
      put(&b, x, torch ? PY_ATOM : PY_SUM, &d);
      sb_printf(&b, "%s)", c);
      m = py_take(&b, PY_ATOM, d + 1);
      if (m.depth > MAX_NEST)
        m = to_temp(p, m);
    }
  }
  if (m.s)
    chain_add(p, &all, L(p, " * ", " * ", " .* "), m);
  return chain_end(&all);
}

static md_shape fixed_shape(printer *p, const expr *e);
static py scaled_exp(printer *p, const expr *u, const py *x);
static const expr *canon(const printer *p, const expr *b, bool *t);

/* softmax(x) = u / sum(u) with u = exp(x - max x) (the local that a
 * scaled exp(x) uses too, when X has a symbol inside); logsumexp(x) =
 * m + log(sum(exp(x - m))) with m = max x: no overflow for large x. */
static py emit_softmax(printer *p, const item *x) {
  py u;
  if (x->occ == NO_OCC) {
    u = scaled_exp(p, x->e, NULL);
  } else {
    py v = named(p, emit_item(p, x));
    strbuf b;
    sb_init(&b);
    sb_printf(&b,
              L(p, "np.exp(%s - np.max(%s))", "torch.exp(%s - torch.max(%s))",
                "exp(%s - max(max(%s)))"),
              v.s, v.s);
    free(v.s);
    u = to_temp(p, py_take(&b, PY_ATOM, 2));
  }
  strbuf b;
  sb_init(&b);
  sb_printf(&b, L(p, "%s / np.sum(%s)", "%s / torch.sum(%s)", "%s ./ sum(%s)"),
            u.s, u.s);
  free(u.s);
  return py_take(&b, PY_PROD, 2);
}

/* U: the node of X when it has a symbol inside; then the locals max(x)
 * and exp(x - max(x)) are those of the scaled exponentials of x. */
static py emit_logsumexp(printer *p, const expr *u, py x) {
  x = named(p, x);
  strbuf b;
  sb_init(&b);
  bool transposed;
  const expr *c = u ? canon(p, u, &transposed) : NULL; /* max(u^T) = max(u) */
  py m;
  if (c && p->smax[c->id].s) {
    m = py_copy(p->smax[c->id]);
  } else {
    sb_printf(&b, L(p, "np.max(%s)", "torch.max(%s)", "max(max(%s))"), x.s);
    m = to_temp(p, py_take(&b, PY_ATOM, 1));
    if (c)
      p->smax[c->id] = py_copy(m);
  }
  if (u && !md_shape_is_scalar(p->sh, fixed_shape(p, u))) {
    py t = scaled_exp(p, u, &x);
    sb_printf(&b,
              L(p, "%s + np.log(np.sum(%s))", "%s + torch.log(torch.sum(%s))",
                "%s + log(sum(sum(%s)))"),
              m.s, t.s);
    free(t.s);
  } else {
    sb_printf(&b,
              L(p, "%s + np.log(np.sum(np.exp(%s - %s)))",
                "%s + torch.log(torch.sum(torch.exp(%s - %s)))",
                "%s + log(sum(sum(exp(%s - %s))))"),
              m.s, x.s, m.s);
  }
  free(x.s);
  free(m.s);
  return py_take(&b, PY_SUM, 4);
}

static py emit_call(printer *p, const expr *e, const item *k) {
  bool scalar = lscalar(p, k[0].sh);
  if (e->u.fn >= FN_NBUILTIN) {
    fail(p,
         p->lang == MD_CODE_TORCH
             ? "--format torch: no PyTorch form for %s, a function defined "
               "with --rules"
         : p->lang == MD_CODE_OCTAVE
             ? "--format octave: no Octave form for %s, a function defined "
               "with --rules"
             : "--format numpy: no NumPy form for %s, a function defined "
               "with --rules",
         md_fn_get(p->ctx, e->u.fn)->name);
    return py_str("None");
  }
  if (e->u.fn == FN_SOFTMAX)
    return emit_softmax(p, &k[0]);
  /* log(sum(exp(v))) is logsumexp(v), and overflows as little */
  const expr *s = k[0].e;
  if (e->u.fn == FN_LOG && k[0].occ == NO_OCC && s->op == E_CALL &&
      s->u.fn == FN_SUM && s->kid[0]->op == E_CALL &&
      s->kid[0]->u.fn == FN_EXP && !(s->kid[0]->kid[0]->flags & EF_CLOSED))
    return emit_logsumexp(p, s->kid[0]->kid[0], emit(p, s->kid[0]->kid[0]));
  py x = emit_item(p, &k[0]);
  bool oct = p->lang == MD_CODE_OCTAVE;
  switch ((md_fn)e->u.fn) {
  case FN_TR:
    return scalar ? x : call1(L(p, "np.trace", "torch.trace", "trace"), x);
  case FN_DET:
    return scalar ? x
                  : call1(L(p, "np.linalg.det", "torch.linalg.det", "det"), x);
  case FN_LOGDET:
    /* log |det X|, SPEC 2 fine point 6 */
    if (scalar || oct)
      return call1(L(p, "np.log", "torch.log", "log"),
                   call1(L(p, "np.abs", "torch.abs", "abs"),
                         scalar ? x : call1("det", x)));
    return wrap(L(p, "np.linalg.slogdet(", "torch.linalg.slogdet(", ""), x,
                PY_SUM, ")[1]", PY_ATOM);
  case FN_DIAG:
    if (scalar)
      return x;
    if (lis_one(p, k[0].sh.c)) /* a vector: the diagonal matrix */
      return oct ? call1("diag", x)
                 : call1(L(p, "np.diag", "torch.diag", ""),
                         call1(L(p, "np.ravel", "torch.ravel", ""), x));
    if (oct)
      return call1("diag", x); /* a column */
    return wrap(L(p, "np.reshape(np.diag(", "torch.reshape(torch.diag(", ""), x,
                PY_SUM, "), (-1, 1))", PY_ATOM);
  case FN_VEC:
    if (scalar || lis_one(p, k[0].sh.c))
      return x;                   /* already a column */
    if (p->lang == MD_CODE_TORCH) /* column-major: the rows of X^T */
      return wrap("torch.reshape(", x, PY_ATOM, ".T, (-1, 1))", PY_ATOM);
    return wrap(L(p, "np.reshape(", "", "reshape("), x, PY_SUM,
                L(p, ", (-1, 1), order='F')", "", ", [], 1)"), PY_ATOM);
  case FN_SUM:
    return oct ? call1("sum", call1("sum", x))
               : call1(L(p, "np.sum", "torch.sum", ""), x);
  case FN_NORM2:
    /* the Frobenius norm for matrices, as np.linalg.norm's default */
    return oct ? wrap("norm(", x, PY_SUM, ", 'fro')", PY_ATOM)
               : call1(L(p, "np.linalg.norm", "torch.linalg.norm", ""), x);
  case FN_NORM1:
    return oct ? call1("sum", call1("sum", call1("abs", x)))
               : call1(L(p, "np.sum", "torch.sum", ""),
                       call1(L(p, "np.abs", "torch.abs", ""), x));
  case FN_SOFTMAX: /* above */
    break;
  case FN_LOGSUMEXP:
    return scalar ? x
                  : emit_logsumexp(p, k[0].occ == NO_OCC ? k[0].e : NULL, x);
  case FN_EXP:
    return call1(L(p, "np.exp", "torch.exp", "exp"), x);
  case FN_LOG:
    return call1(L(p, "np.log", "torch.log", "log"), x);
  case FN_SQRT:
    return call1(L(p, "np.sqrt", "torch.sqrt", "sqrt"), x);
  case FN_SIN:
    return call1(L(p, "np.sin", "torch.sin", "sin"), x);
  case FN_COS:
    return call1(L(p, "np.cos", "torch.cos", "cos"), x);
  case FN_TAN:
    return call1(L(p, "np.tan", "torch.tan", "tan"), x);
  case FN_TANH:
    return call1(L(p, "np.tanh", "torch.tanh", "tanh"), x);
  case FN_ABS:
    return call1(L(p, "np.abs", "torch.abs", "abs"), x);
  case FN_SIGN:
    return call1(L(p, "np.sign", "torch.sign", "sign"), x);
  case FN_STEP:
    /* 0 at 0, as SPEC 2 defines it */
    if (p->lang == MD_CODE_TORCH)
      return call1("torch.sign", call1("torch.relu", x));
    if (oct)
      return wrap("double(", x, PY_PROD, " > 0)", PY_ATOM);
    return wrap("np.heaviside(", x, PY_SUM, ", 0.0)", PY_ATOM);
  case FN_RELU:
    if (p->lang == MD_CODE_TORCH)
      return call1("torch.relu", x);
    return wrap(L(p, "np.maximum(", "", "max("), x, PY_SUM, ", 0)", PY_ATOM);
  case FN_SIGMOID:
    if (p->lang == MD_CODE_TORCH)
      return call1("torch.sigmoid", x);
    return wrap(L(p, "1 / (1 + np.exp(-", "", "1 ./ (1 + exp(-"), x, PY_POW,
                "))", PY_PROD);
  case FN_SOFTPLUS:
    if (p->lang == MD_CODE_TORCH)
      return call1("torch.nn.functional.softplus", x);
    if (oct) {
      /* log(1 + exp(x)) without overflow, as np.logaddexp(0, x) */
      x = named(p, x);
      strbuf b;
      sb_init(&b);
      sb_printf(&b, "max(%s, 0) + log1p(exp(-abs(%s)))", x.s, x.s);
      free(x.s);
      return py_take(&b, PY_SUM, 3);
    }
    return wrap("np.logaddexp(0, ", x, PY_SUM, ")", PY_ATOM);
  case FN_NBUILTIN:
    break;
  }
  free(x.s);
  fail_at(p, "--format numpy: cannot write %s", e);
  return py_str("None");
}

/* BASE ** EXP.  A Python float to a fractional power is complex when
 * the float is negative; np.power keeps it real (nan), as arrays are. */
static py power(printer *p, const item *base, const item *ex) {
  long n;
  if (p->lang != MD_CODE_OCTAVE && lscalar(p, base->sh) &&
      !expr_is_int(ex->e, &n)) {
    strbuf b;
    sb_init(&b);
    int d = 0;
    sb_puts(&b, L(p, "np.power(", "torch.pow(torch.as_tensor(", ""));
    if (p->lang == MD_CODE_TORCH) {
      put(&b, emit_item(p, base), PY_SUM, &d);
      sb_puts(&b, "), ");
      put(&b, emit_item(p, ex), PY_SUM, &d);
      sb_putc(&b, ')');
      return py_take(&b, PY_ATOM, d + 2);
    }
    put(&b, emit_item(p, base), PY_SUM, &d);
    sb_puts(&b, ", ");
    put(&b, emit_item(p, ex), PY_SUM, &d);
    sb_putc(&b, ')');
    return py_take(&b, PY_ATOM, d + 1);
  }
  strbuf b;
  sb_init(&b);
  int d = 0;
  put(&b, emit_item(p, base), PY_ATOM, &d);
  /* Octave's .^ associates to the left: a bracket for any exponent but
   * an atom */
  sb_puts(&b, L(p, " ** ", " ** ", " .^ "));
  put(&b, emit_item(p, ex), p->lang == MD_CODE_OCTAVE ? PY_ATOM : PY_UNARY, &d);
  return py_take(&b, PY_POW, d + 1);
}

/* E of shape S, its kids K: one operation. */
static py emit_op(printer *p, const expr *e, lshape s, const item *k) {
  switch ((expr_op)e->op) {
  case E_NUM:
    return py_num(p, e->u.num);
  case E_SYM:
    return emit_sym(p, e);
  case E_IDENT:
    return sized(p, L(p, "np.eye(", "torch.eye(", "eye("), s.r, ")", e);
  case E_ONES:
    return sized(p, L(p, "np.ones((", "torch.ones((", "ones("), s.r,
                 L(p, ", 1))", ", 1))", ", 1)"), e);
  case E_ADD: {
    chain c;
    chain_init(&c, PY_SUM);
    for (size_t i = 0; i < e->nkids; i++) {
      py x = emit_item(p, &k[i]);
      if (i > 0 && x.neg) {
        /* a + (-b) is a - b; what follows the sign binds tighter than
         * a product (see py.neg) */
        py y = py_copy(x);
        memmove(y.s, y.s + 1, strlen(y.s));
        y.prec = PY_PROD;
        y.neg = false;
        free(x.s);
        chain_add(p, &c, " - ", y);
      } else {
        chain_add(p, &c, " + ", x);
      }
    }
    return chain_end(&c);
  }
  case E_NEG: {
    /* -a * b is (-a) * b, the same value: the operand needs brackets
     * only when it is looser than a product, or negative itself */
    py x = emit_item(p, &k[0]);
    int prec = x.prec == PY_PROD ? PY_PROD : PY_UNARY;
    int level = x.neg || x.prec == PY_UNARY ? PY_ATOM : PY_PROD;
    py r = wrap("-", x, level, "", prec);
    r.neg = true;
    return r;
  }
  case E_MUL:
    return emit_mul(p, e, k);
  case E_DIV:
  case E_HAD:
  case E_HDIV: {
    chain c;
    chain_init(&c, PY_PROD);
    const char *op = e->op == E_HAD ? L(p, " * ", " * ", " .* ")
                                    : L(p, " / ", " / ", " ./ ");
    for (size_t i = 0; i < e->nkids; i++)
      chain_add(p, &c, op, emit_item(p, &k[i]));
    return chain_end(&c);
  }
  case E_KRON:
    return emit_kron(p, e, k);
  case E_TRANS:
    if (lscalar(p, s))
      return emit_item(p, &k[0]);
    return wrap("", emit_item(p, &k[0]), PY_ATOM, L(p, ".T", ".T", ".'"),
                PY_ATOM);
  case E_INV:
    if (lscalar(p, s))
      return wrap(L(p, "1 / ", "1 / ", "1 ./ "), emit_item(p, &k[0]), PY_UNARY,
                  "", PY_PROD);
    return call1(L(p, "np.linalg.inv", "torch.linalg.inv", "inv"),
                 emit_item(p, &k[0]));
  case E_POW: {
    if (lscalar(p, s))
      return power(p, &k[0], &k[1]);
    long n;
    if (!expr_is_int(e->kid[1], &n)) {
      fail_at(p, "--format numpy: cannot write the matrix power %s", e);
      return py_str("None");
    }
    /* by squaring: a product per bit and per set bit but one */
    for (unsigned long m = n < 0 ? -(unsigned long)n : (unsigned long)n; m > 1;
         m >>= 1)
      p->products += 1 + (m & 1);
    strbuf b;
    sb_init(&b);
    int d = 0;
    if (p->lang == MD_CODE_OCTAVE) {
      put(&b, emit_item(p, &k[0]), PY_ATOM, &d);
      sb_printf(&b, " ^ %s%ld%s", n < 0 ? "(" : "", n, n < 0 ? ")" : "");
      return py_take(&b, PY_POW, d + 1);
    }
    sb_puts(&b,
            L(p, "np.linalg.matrix_power(", "torch.linalg.matrix_power(", ""));
    put(&b, emit_item(p, &k[0]), PY_SUM, &d);
    sb_printf(&b, ", %ld)", n);
    return py_take(&b, PY_ATOM, d + 1);
  }
  case E_EPOW:
    return power(p, &k[0], &k[1]);
  case E_CALL:
    return emit_call(p, e, k);
  case E_INNER: {
    /* <a, b> = tr(a^T b), the sum of the element-wise product */
    chain c;
    chain_init(&c, PY_PROD);
    chain_add(p, &c, "", emit_item(p, &k[0]));
    chain_add(p, &c, L(p, " * ", " * ", " .* "), emit_item(p, &k[1]));
    py r = chain_end(&c);
    if (lscalar(p, k[0].sh))
      return r;
    return p->lang == MD_CODE_OCTAVE
               ? call1("sum", call1("sum", r))
               : call1(L(p, "np.sum", "torch.sum", ""), r);
  }
  default:
    break;
  }
  fail_at(p, "--format numpy: cannot write %s", e);
  return py_str("None");
}

/* An occurrence of a closed node: written in place, every time. */
static py emit_occ(printer *p, size_t idx) {
  occ o = p->oc[idx];
  const expr *e = o.e;
  item small[4] = {{0}};
  item *k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
  for (size_t i = 0; i < e->nkids; i++) {
    size_t ki = p->okid[o.kids + i];
    k[i] = (item){e->kid[i], p->oc[ki].sh, ki};
  }
  py r = emit_op(p, e, o.sh, k);
  if (k != small)
    free(k);
  if (r.depth > MAX_NEST)
    r = to_temp(p, r);
  return r;
}

/* Nodes cheap enough to write again wherever they are used. */
static bool trivial(const expr *e) {
  while (e->op == E_TRANS)
    e = e->kid[0];
  return e->op == E_SYM || e->op == E_NUM;
}

static md_shape fixed_shape(printer *p, const expr *e) {
  if (!md_shape_known(p->sh, e) && !md_shape_derive(p->sh, (expr *)e))
    fail_at(p, "--format numpy: internal error: no shape for %s", e);
  return md_shape_of(p->sh, e);
}

/* ---- scaled exponentials (see the top of the file) ---- */

enum { SEEN_COUNTED = 1, SEEN_SCANNED = 2 };

/* No degree beyond this: exp(u)^2000 is no formula anyone writes. */
#define MAX_DEGREE 1000
/* Steps of all the comparisons of bases (is_transpose) in one printing:
 * past it, bases that differ stay apart (the code is then unscaled, not
 * wrong). */
#define MAX_COMPARE_WORK 100000

static bool is_scalar_node(printer *p, const expr *e) {
  if (e->op == E_NUM)
    return true;
  return !(e->flags & EF_CLOSED) &&
         md_shape_is_scalar(p->sh, fixed_shape(p, e));
}

/* The u of exp(u) or exp(u^T), u a vector or a matrix with a symbol
 * inside; else NULL. */
static const expr *exp_base(printer *p, const expr *e) {
  if (e->op != E_CALL || e->u.fn != FN_EXP || e->nkids != 1 ||
      (e->flags & EF_CLOSED))
    return NULL;
  const expr *u = e->kid[0];
  if (u->op == E_TRANS)
    u = u->kid[0];
  if ((u->flags & EF_CLOSED) || is_scalar_node(p, u))
    return NULL;
  return u;
}

/* Whether A is B^T as written, up to the order of scalar factors
 * (alpha x^T and alpha x; x^T W^T and W x): then max(A) = max(B), and
 * exp(A) and exp(B) scale together. */
static bool is_transpose(printer *p, const expr *a, const expr *b) {
  if (++p->cmpwork > MAX_COMPARE_WORK)
    return false;
  if ((a->op == E_TRANS && a->kid[0] == b) ||
      (b->op == E_TRANS && b->kid[0] == a))
    return true;
  if (a == b) {
    md_kind k = a->op == E_SYM ? md_shape_sym_kind(p->sh, a) : K_MATRIX;
    return a->op == E_IDENT || is_scalar_node(p, a) || k == K_SYMMETRIC ||
           k == K_SPD || k == K_DIAGONAL;
  }
  if (a->op != b->op || a->nkids != b->nkids)
    return false;
  switch ((expr_op)a->op) {
  case E_CALL:
    if (a->u.fn != b->u.fn || md_fn_get(p->ctx, a->u.fn)->cls != FC_ELEMWISE)
      return false;
    /* fall through */
  case E_NEG:
  case E_TRANS:
  case E_INV:
  case E_ADD:
  case E_HAD:
  case E_HDIV:
    for (size_t i = 0; i < a->nkids; i++)
      if (!is_transpose(p, a->kid[i], b->kid[i]))
        return false;
    return true;
  case E_DIV:
  case E_POW:
  case E_EPOW:
    return a->kid[1] == b->kid[1] && is_transpose(p, a->kid[0], b->kid[0]);
  case E_MUL: {
    /* scalars in the same order, the other factors reversed */
    size_t i = 0, j = b->nkids;
    for (;;) {
      while (i < a->nkids && is_scalar_node(p, a->kid[i]))
        i++;
      while (j > 0 && is_scalar_node(p, b->kid[j - 1]))
        j--;
      if (i == a->nkids || j == 0)
        break;
      if (!is_transpose(p, a->kid[i], b->kid[j - 1]))
        return false;
      i++, j--;
    }
    if (i != a->nkids || j != 0)
      return false;
    for (i = 0, j = 0; i < a->nkids; i++) {
      if (!is_scalar_node(p, a->kid[i]))
        continue;
      while (j < b->nkids && !is_scalar_node(p, b->kid[j]))
        j++;
      if (j == b->nkids || a->kid[i] != b->kid[j++])
        return false;
    }
    while (j < b->nkids && !is_scalar_node(p, b->kid[j]))
      j++;
    return j == b->nkids;
  }
  default:
    return false;
  }
}

/* The base that stands for base B (bases found to be transposes of one
 * another are one); *T: B is its transpose. */
static const expr *canon(const printer *p, const expr *b, bool *t) {
  *t = false;
  while (p->salias[b->id]) {
    *t ^= p->sparity[b->id];
    b = p->salias[b->id];
  }
  return b;
}

/* The base of K (canonical), or NULL. */
static const expr *base_of(const printer *p, const expr *k) {
  bool t;
  if ((k->flags & EF_CLOSED) || !p->sbase[k->id])
    return NULL;
  return canon(p, p->sbase[k->id], &t);
}

/* K's degree in exp(BASE): 0 when it has none. */
static long kid_degree(const printer *p, const expr *k, const expr *base) {
  return base_of(p, k) == base ? p->sdeg[k->id] : 0;
}

/* *D times the number X, when X is one and the product an integer. */
static bool times_number(const expr *x, long *d) {
  if (x->op != E_NUM)
    return false;
  mpq_t t;
  mpq_init(t);
  mpq_set_si(t, *d, 1);
  mpq_mul(t, t, x->u.num);
  bool ok = mpz_cmp_ui(mpq_denref(t), 1) == 0 &&
            mpz_cmpabs_ui(mpq_numref(t), MAX_DEGREE) <= 0;
  if (ok)
    *d = mpz_get_si(mpq_numref(t));
  mpq_clear(t);
  return ok;
}

/* E's degree in exp(BASE) from its kids': false when E is not
 * homogeneous in it (exp(u) + 1, log(exp(u)), det(exp(U))). */
static bool degree(const printer *p, const expr *e, const expr *base,
                   long *out) {
  long d = kid_degree(p, e->kid[0], base);
  switch ((expr_op)e->op) {
  case E_ADD:
    for (size_t i = 1; i < e->nkids; i++)
      if (kid_degree(p, e->kid[i], base) != d)
        return false;
    break;
  case E_NEG:
  case E_TRANS:
    break;
  case E_MUL:
  case E_HAD:
  case E_KRON:
  case E_INNER:
    for (size_t i = 1; i < e->nkids && labs(d) <= MAX_DEGREE; i++)
      d += kid_degree(p, e->kid[i], base);
    break;
  case E_DIV:
  case E_HDIV:
    d -= kid_degree(p, e->kid[1], base);
    break;
  case E_INV:
    d = -d;
    break;
  case E_POW:
  case E_EPOW:
    if (!times_number(e->kid[1], &d))
      return false;
    break;
  case E_CALL:
    switch (e->u.fn) {
    case FN_TR:
    case FN_SUM:
    case FN_VEC:
    case FN_DIAG:
    case FN_NORM1:
    case FN_NORM2:
    case FN_ABS:
    case FN_RELU:
      /* linear, or positively homogeneous: c > 0 */
      break;
    case FN_SQRT:
      if (d % 2)
        return false;
      d /= 2;
      break;
    default:
      return false;
    }
    break;
  default:
    return false;
  }
  *out = d;
  return labs(d) <= MAX_DEGREE;
}

/* Makes base B stand for base A, its transpose (a column rather than a
 * row stands for both). */
static void alias(printer *p, const expr *a, const expr *b) {
  /* A and B are canonical (base_of): linked, no chain of aliases comes
   * back to its start (an alias made from a base gone stale linked two
   * bases both ways: an endless canon, a fuzzer's input) */
  if (a == b || p->salias[a->id] || p->salias[b->id])
    return;
  md_shape sa = fixed_shape(p, a);
  if (md_dim_is_one(p->sh, sa.r)) {
    const expr *t = a;
    a = b;
    b = t;
  }
  p->salias[b->id] = a;
  p->sparity[b->id] = 1;
}

/* Gives E and the nodes below it their degree (sbase, sdeg) or marks
 * them roots (sroot). */
static void scan(printer *p, const expr *e) {
  if (p->seen[e->id] & SEEN_SCANNED)
    return;
  p->seen[e->id] |= SEEN_SCANNED;
  const expr *base = NULL;
  bool mixed = false;
  for (size_t i = 0; i < e->nkids; i++) {
    const expr *k = e->kid[i];
    if (k->flags & EF_CLOSED)
      continue;
    scan(p, k);
    const expr *c = base_of(p, k);
    bool t;
    if (base) /* an alias since may have made it a transpose of another */
      base = canon(p, base, &t);
    if (c && base && c != base) {
      if (is_transpose(p, c, base))
        alias(p, base, c);
      else
        mixed = true;
    }
    if (c)
      base = base_of(p, k);
  }
  const expr *u = exp_base(p, e);
  long d;
  if (u) {
    p->sbase[e->id] = u;
    p->sdeg[e->id] = 1;
  } else if (base && !mixed && degree(p, e, base, &d)) {
    if (d == 0) {
      p->sroot[e->id] = base;
    } else {
      p->sbase[e->id] = base;
      p->sdeg[e->id] = (int)d;
    }
  }
}

/* exp(u - max(u)) for base U, written as a local at its first use (for
 * the base that stands for U, transposed if U is its transpose).  X, if
 * not NULL, is U already written as a name. */
static py scaled_exp(printer *p, const expr *u, const py *x) {
  bool t;
  const expr *c = canon(p, u, &t);
  if (!p->sexp[c->id].s) {
    const expr *scale = p->scale;
    p->scale = NULL;
    py v = x && c == u ? py_copy(*x) : named(p, emit(p, c));
    p->scale = scale;
    strbuf b;
    sb_init(&b);
    if (p->smax[c->id].s)
      sb_printf(&b,
                L(p, "np.exp(%s - %s)", "torch.exp(%s - %s)", "exp(%s - %s)"),
                v.s, p->smax[c->id].s);
    else
      sb_printf(&b,
                L(p, "np.exp(%s - np.max(%s))", "torch.exp(%s - torch.max(%s))",
                  "exp(%s - max(max(%s)))"),
                v.s, v.s);
    free(v.s);
    p->sexp[c->id] = to_temp(p, py_take(&b, PY_ATOM, 2));
  }
  py r = py_copy(p->sexp[c->id]);
  return t ? wrap("", r, PY_ATOM, L(p, ".T", ".T", ".'"), PY_ATOM) : r;
}

/* A node with a symbol inside: its shape is fixed, so it is written once;
 * a shared one goes into a local.  While a root is written (p->scale is
 * its base), the nodes of non-zero degree in it are written scaled. */
static py emit(printer *p, const expr *e) {
  const expr *scale = p->scale;
  if (scale && base_of(p, e) != scale) {
    p->scale = NULL;
    py r = emit(p, e);
    p->scale = scale;
    return r;
  }
  py *memo = scale ? p->memo_sc : p->memo;
  if (memo[e->id].s)
    return py_copy(memo[e->id]);
  if (!scale && p->esub[e->id]) {
    /* the same product, a transposed product in it expanded */
    py r = emit(p, p->esub[e->id]);
    if (p->refs[e->id] >= 2 && !is_name(&r)) {
      r = to_temp(p, r);
      memo[e->id] = py_copy(r);
    }
    return r;
  }
  if (!scale && p->tsub[e->id]) {
    /* the transpose of a node of the result (see "Transposes") */
    py r = wrap("", emit(p, p->tsub[e->id]), PY_ATOM, L(p, ".T", ".T", ".'"),
                PY_ATOM);
    if (p->refs[e->id] >= 2) {
      r = to_temp(p, r);
      memo[e->id] = py_copy(r);
    }
    return r;
  }
  const expr *u = scale ? exp_base(p, e) : NULL;
  if (u) {
    /* exp(u) or exp(u^T), u the base or its transpose */
    bool t;
    canon(p, u, &t);
    py r = scaled_exp(p, scale, NULL);
    if (t != (e->kid[0]->op == E_TRANS))
      r = wrap("", r, PY_ATOM, L(p, ".T", ".T", ".'"), PY_ATOM);
    if (p->refs[e->id] >= 2 && !is_name(&r)) {
      r = to_temp(p, r);
      memo[e->id] = py_copy(r);
    }
    return r;
  }
  if (!scale && p->sroot[e->id]) {
    bool t;
    p->scale = canon(p, p->sroot[e->id], &t);
  }
  py r = emit_node(p, e);
  p->scale = scale;
  bool shared = p->refs[e->id] >= 2 && !trivial(e);
  if (shared || r.depth > MAX_NEST)
    r = to_temp(p, r);
  if (shared)
    memo[e->id] = py_copy(r);
  return r;
}

/* E written with its kids (see emit). */
static py emit_node(printer *p, const expr *e) {
  size_t mark_lv = p->nlv, mark_trail = p->ntrail;
  size_t mark_oc = p->noc, mark_okid = p->nokid;
  item small[4] = {{0}};
  item *k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
  lshape *ks = xreallocarray(NULL, e->nkids ? e->nkids : 1, sizeof *ks);
  bool closed_kid = false;
  for (size_t i = 0; i < e->nkids; i++) {
    const expr *kid = e->kid[i];
    if (kid->flags & EF_CLOSED) {
      p->work = 0;
      size_t ki = linfer(p, kid);
      k[i] = (item){kid, p->oc[ki].sh, ki};
      closed_kid = true;
    } else {
      k[i] = (item){kid, lbind_shape(p, fixed_shape(p, kid)), NO_OCC};
    }
    ks[i] = k[i].sh;
  }
  lshape s = lbind_shape(p, fixed_shape(p, e));
  if (closed_kid && !p->failed) {
    /* the node's rule, then its known shape, size the closed kids */
    lshape out;
    if (!lnode(p, e, ks, &out) || !lunify_shape(p, out, s))
      fail_at(p, "--format numpy: internal error: no sizes fit %s", e);
  }
  free(ks);
  py r = p->failed ? py_str("None") : emit_op(p, e, s, k);
  if (k != small)
    free(k);
  lpop(p, mark_lv, mark_trail);
  p->noc = mark_oc, p->nokid = mark_okid;
  return r;
}

/* How many parents use each node with a symbol inside. */
static void count_refs(printer *p, const expr *e) {
  if (p->seen[e->id] & SEEN_COUNTED)
    return;
  p->seen[e->id] |= SEEN_COUNTED;
  const expr *t = written_as(p, e);
  if (t) { /* written as T.T, or as T */
    p->refs[t->id]++;
    count_refs(p, t);
    return;
  }
  for (size_t i = 0; i < e->nkids; i++)
    if (!(e->kid[i]->flags & EF_CLOSED)) {
      p->refs[e->kid[i]->id]++;
      count_refs(p, e->kid[i]);
    }
}

/* The return value: float for a scalar, 1-D for a vector; a scalar
 * where SHAPE is not one (0 for a gradient) fills an array. */
static py result(printer *p, py r, lshape es, const expr *e, md_shape shape) {
  lshape want = lbind_shape(p, shape);
  bool vector = !lis_one(p, want.r) && lis_one(p, want.c);
  bool oct = p->lang == MD_CODE_OCTAVE;
  if (lscalar(p, want))
    return oct ? r : call1(L(p, "float", "torch.as_tensor", ""), r);
  if (lscalar(p, es)) {
    strbuf b;
    sb_init(&b);
    int d = 0;
    bool zero = expr_is_zero(e);
    if (p->lang == MD_CODE_NUMPY) {
      sb_puts(&b, zero ? "np.zeros(" : "np.full(");
    } else {
      /* V times ones: torch.full wants a number, not a tensor */
      if (!zero) {
        put(&b, r, PY_PROD, &d);
        sb_puts(&b, oct ? " .* " : " * ");
      }
      sb_puts(&b, zero ? L(p, "", "torch.zeros(", "zeros(")
                       : L(p, "", "torch.ones(", "ones("));
    }
    if (!vector && !oct)
      sb_putc(&b, '(');
    put_size(p, want.r, &b, e);
    if (!vector || oct) {
      sb_puts(&b, ", ");
      if (vector)
        sb_putc(&b, '1');
      else
        put_size(p, want.c, &b, e);
      if (!oct)
        sb_putc(&b, ')');
    }
    if (p->lang == MD_CODE_NUMPY) {
      if (zero) {
        free(r.s);
      } else {
        sb_puts(&b, ", ");
        put(&b, r, PY_SUM, &d);
      }
    } else if (zero) {
      free(r.s);
    }
    sb_putc(&b, ')');
    return py_take(&b, p->lang == MD_CODE_NUMPY || zero ? PY_ATOM : PY_PROD,
                   d + 1);
  }
  if (!vector || oct)
    return r;
  return call1(L(p, "np.ravel", "torch.ravel", ""), r);
}

/* Python names for the parameters: a keyword or a name the code uses
 * (np, float) gets a trailing _, as PEP 8 suggests, until it is unique. */
static void name_params(printer *p) {
  for (size_t i = 0; i < p->nparams; i++) {
    strbuf b;
    sb_init(&b);
    sb_puts(&b, p->params[i]->u.name);
    for (;;) {
      bool clash = reserved(p, b.s);
      for (size_t j = 0; j < i && !clash; j++)
        clash = strcmp(p->pname[j], b.s) == 0;
      for (size_t j = 0; j < p->nparams && !clash; j++)
        clash = j != i && strcmp(p->params[j]->u.name, b.s) == 0;
      if (!clash)
        break;
      sb_putc(&b, '_');
    }
    p->pname[i] = sb_take(&b);
  }
}

/* One returned value: E of the expected SHAPE, as the function returns
 * it (see result()). */
static py emit_root(printer *p, const expr *e, md_shape shape) {
  lshape es;
  py r;
  if (e->flags & EF_CLOSED) {
    /* a closed result (I, 0, ones ones^T) takes the expected shape */
    size_t idx = linfer(p, e);
    es = p->oc[idx].sh;
    if (!p->failed)
      (void)lunify_shape(p, es, lbind_shape(p, shape));
    r = p->failed ? py_str("None") : emit_occ(p, idx);
  } else {
    /* a derivative's nodes were never unified with anything, so the
     * expected shape may be the only thing that sizes an I inside */
    es = lbind_shape(p, fixed_shape(p, e));
    (void)lunify_shape(p, es, lbind_shape(p, shape));
    r = emit(p, e);
  }
  return result(p, r, es, e, shape);
}

/* A name for an output of an Octave function: BASE, or BASE_ ... when a
 * parameter or an earlier output is called so. */
static char *out_name(printer *p, const char *base, char **outs, size_t n) {
  strbuf b;
  sb_init(&b);
  sb_puts(&b, base);
  for (;;) {
    bool clash = reserved(p, b.s);
    for (size_t i = 0; i < p->nparams && !clash; i++)
      clash = strcmp(p->pname[i], b.s) == 0;
    for (size_t i = 0; i < n && !clash; i++)
      clash = strcmp(outs[i], b.s) == 0;
    if (!clash)
      break;
    sb_putc(&b, '_');
  }
  return sb_take(&b);
}

/* Counts the uses of the sub-chains and run nodes that emit_mul will
 * write in E: one more each, their operands one less.  A node made here
 * (make_runs, repair) not yet counted is counted (its operands) and
 * queued on TODO. */
static void link_subchains(printer *p, const expr *e, const expr **todo,
                           size_t *ntodo) {
  size_t *run = xreallocarray(NULL, e->nkids, sizeof *run);
  bool any = scalar_runs(p, e, run);
  for (size_t i = 0; i < e->nkids; i++) {
    size_t j = 0;
    const expr *sub = NULL;
    if (any && run[i]) {
      sub = *mslot(p, e->kid + i, run[i] - i);
      j = run[i];
    }
    if (!sub)
      sub = chain_match(p, e, i, &j);
    if (!sub)
      continue;
    if (!(p->seen[sub->id] & SEEN_COUNTED)) {
      count_refs(p, sub); /* a node made here: its operands */
      todo[(*ntodo)++] = sub;
    }
    p->refs[sub->id]++;
    for (size_t m = i; m < j; m++)
      if (!(e->kid[m]->flags & EF_CLOSED))
        p->refs[e->kid[m]->id]--;
    i = j - 1;
  }
  free(run);
}

/* FN into OUT, with products expanded (esub) when EXPAND; the matrix
 * products written in *PRODUCTS, and whether any product was expanded in
 * *EXPANDED. */
static bool print_code(strbuf *out, md_ctx *ctx, md_shapes *shapes,
                       const md_code_fn *fn, md_errors *err, int expand,
                       size_t *products, bool *expanded) {
  const expr *const *params = fn->params;
  size_t nparams = fn->nparams;
  printer p = {
      .lang = fn->lang, .ctx = ctx, .sh = shapes, .err = err, .expand = expand};
  p.params = params;
  p.nparams = nparams;
  p.pname = xcalloc(nparams ? nparams : 1, sizeof *p.pname);
  p.pused = xcalloc(nparams ? nparams : 1, sizeof *p.pused);
  name_params(&p);
  sb_init(&p.body);

  /* the roots: the value first, then the results; a node the roots share
   * (the forward pass in the value and in the gradients, an adjoint in
   * two gradients) is one local, computed once */
  size_t nroots = fn->nresults + (fn->value != NULL);
  const expr **roots = xcalloc(nroots, sizeof *roots);
  md_shape *rshape = xcalloc(nroots, sizeof *rshape);
  size_t k = 0;
  if (fn->value) {
    roots[k] = fn->value;
    rshape[k++] = fn->value_shape;
  }
  for (size_t i = 0; i < fn->nresults; i++) {
    roots[k] = fn->results[i];
    rshape[k++] = fn->shapes[i];
  }
  /* the nodes written as another's transpose, then those of the runs
   * that multiply to 1×1 and of shared sub-chains, before the tables by
   * id are sized */
  {
    nodes tp = {0}, ep = {0};
    find_transposes(&p, roots, nroots, &tp, &ep);
    p.tsub = xcalloc(md_ctx_nnodes(ctx), sizeof *p.tsub);
    p.esub = xcalloc(md_ctx_nnodes(ctx), sizeof *p.esub);
    for (size_t i = 0; i < tp.n; i += 2)
      p.tsub[tp.v[i]->id] = tp.v[i + 1];
    for (size_t i = 0; i < ep.n; i += 2)
      p.esub[ep.v[i]->id] = ep.v[i + 1];
    *expanded = ep.n > 0;
    free(tp.v);
    free(ep.v);
  }
  size_t ntsub = md_ctx_nnodes(ctx);
  nodes made = {0};
  bool chains;
  {
    nodes prods = {0}, seq = {0};
    uint8_t *seen = xcalloc(md_ctx_nnodes(ctx), 1);
    for (size_t i = 0; i < nroots; i++)
      collect_products(&p, roots[i], seen, &prods, &seq);
    free(seen);
    /* past this, chains are written as they stand (each lookup of a
     * sub-chain costs its length) */
    chains = seq.n <= MAX_CHAIN_OPERANDS;
    if (chains) {
      for (size_t i = 0; i < prods.n; i++)
        make_runs(&p, prods.v[i], &made);
      repair(&p, &seq, &made);
    }
    free(prods.v);
    free(seq.v);
  }
  p.nnodes = md_ctx_nnodes(ctx);
  p.tsub = xreallocarray(p.tsub, p.nnodes, sizeof *p.tsub);
  memset(p.tsub + ntsub, 0, (p.nnodes - ntsub) * sizeof *p.tsub);
  p.esub = xreallocarray(p.esub, p.nnodes, sizeof *p.esub);
  memset(p.esub + ntsub, 0, (p.nnodes - ntsub) * sizeof *p.esub);
  p.refs = xcalloc(p.nnodes, sizeof *p.refs);
  p.seen = xcalloc(p.nnodes, sizeof *p.seen);
  p.memo = xcalloc(p.nnodes, sizeof *p.memo);
  p.sbase = xcalloc(p.nnodes, sizeof *p.sbase);
  p.sdeg = xcalloc(p.nnodes, sizeof *p.sdeg);
  p.sroot = xcalloc(p.nnodes, sizeof *p.sroot);
  p.memo_sc = xcalloc(p.nnodes, sizeof *p.memo_sc);
  p.sexp = xcalloc(p.nnodes, sizeof *p.sexp);
  p.smax = xcalloc(p.nnodes, sizeof *p.smax);
  p.salias = xcalloc(p.nnodes, sizeof *p.salias);
  p.sparity = xcalloc(p.nnodes, sizeof *p.sparity);

  for (size_t i = 0; i < nroots; i++) {
    if (roots[i]->flags & EF_CLOSED)
      continue;
    p.refs[roots[i]->id]++;
    count_refs(&p, roots[i]);
    scan(&p, roots[i]);
  }
  if (chains && (nroots > 1 || made.n)) {
    /* sub-chains that are nodes (see chain_match) and runs that are made
     * ones: used once more each, their operands once less */
    p.mcap = 16;
    while (p.mcap < 2 * p.nnodes)
      p.mcap *= 2;
    p.mtab = xcalloc(p.mcap, sizeof *p.mtab);
    uint8_t *seen = xcalloc(p.nnodes, 1);
    for (size_t i = 0; i < nroots; i++)
      mindex(&p, roots[i], seen);
    for (size_t i = 0; i < made.n; i++)
      *mslot(&p, made.v[i]->kid, made.v[i]->nkids) = made.v[i];
    free(seen);
    /* the products of the roots' DAG, then the run nodes they use */
    const expr **todo = xreallocarray(NULL, p.mcap, sizeof *todo);
    size_t ntodo = 0;
    for (size_t t = 0; t < p.mcap; t++)
      if (p.mtab[t] && (p.seen[p.mtab[t]->id] & SEEN_COUNTED))
        todo[ntodo++] = p.mtab[t];
    for (size_t t = 0; t < ntodo; t++)
      link_subchains(&p, todo[t], todo, &ntodo);
    free(todo);
  }
  py *r = xcalloc(nroots, sizeof *r);
  for (size_t i = 0; i < nroots; i++)
    r[i] = emit_root(&p, roots[i], rshape[i]);

  bool ok = !p.failed;
  bool oct = fn->lang == MD_CODE_OCTAVE;
  if (ok && oct) {
    char **outs = xcalloc(nroots, sizeof *outs);
    for (size_t i = 0; i < nroots; i++)
      outs[i] = out_name(&p,
                         fn->value && i == 0 ? "f"
                         : fn->outs          ? fn->outs[i - (fn->value != NULL)]
                                             : "y",
                         outs, i);
    sb_puts(out, "function ");
    if (nroots > 1)
      sb_putc(out, '[');
    for (size_t i = 0; i < nroots; i++)
      sb_printf(out, "%s%s", i ? ", " : "", outs[i]);
    sb_printf(out, "%s = %s(", nroots > 1 ? "]" : "", fn->name);
    for (size_t i = 0; i < nparams; i++)
      sb_printf(out, "%s%s", i ? ", " : "", p.pname[i]);
    sb_puts(out, ")\n");
    /* vectors may come as rows: inside, every vector is a column (all of
     * them: size(x, 1) of a row would be 1) */
    for (size_t i = 0; i < nparams; i++)
      if (md_shape_is_vector(shapes, md_shape_of(shapes, params[i])))
        sb_printf(out, "  %s = %s(:);\n", p.pname[i], p.pname[i]);
    if (p.body.len)
      sb_puts(out, p.body.s);
    for (size_t i = 0; i < nroots; i++)
      sb_printf(out, "  %s = %s;\n", outs[i], r[i].s);
    sb_puts(out, "end\n");
    for (size_t i = 0; i < nroots; i++)
      free(outs[i]);
    free(outs);
  } else if (ok) {
    bool torch = fn->lang == MD_CODE_TORCH;
    sb_puts(out, torch ? "import torch\n\n" : "import numpy as np\n\n");
    sb_printf(out, "def %s(", fn->name);
    for (size_t i = 0; i < nparams; i++)
      sb_printf(out, "%s%s", i ? ", " : "", p.pname[i]);
    sb_puts(out, "):\n");
    /* vectors may come 1-D; inside, every vector is a column (and in
     * PyTorch every parameter a tensor, which NumPy arrays become) */
    for (size_t i = 0; i < nparams; i++) {
      if (!p.pused[i])
        continue;
      bool vec = md_shape_is_vector(shapes, md_shape_of(shapes, params[i]));
      const char *n = p.pname[i];
      if (torch && vec)
        sb_printf(out, "    %s = torch.reshape(torch.as_tensor(%s), (-1, 1))\n",
                  n, n);
      else if (torch)
        sb_printf(out, "    %s = torch.as_tensor(%s)\n", n, n);
      else if (vec)
        sb_printf(out, "    %s = np.reshape(%s, (-1, 1))\n", n, n);
    }
    if (p.body.len)
      sb_puts(out, p.body.s);
    /* g; (g1, ..., gk); f, g; f, (g1, ..., gk) */
    sb_puts(out, "    return ");
    if (fn->value)
      sb_printf(out, "%s, ", r[0].s);
    size_t first = fn->value != NULL;
    if (fn->nresults > 1)
      sb_putc(out, '(');
    for (size_t i = first; i < nroots; i++)
      sb_printf(out, "%s%s", i > first ? ", " : "", r[i].s);
    if (fn->nresults > 1)
      sb_putc(out, ')');
    sb_putc(out, '\n');
  }
  for (size_t i = 0; i < nroots; i++)
    free(r[i].s);
  free(r);
  free(roots);
  free(rshape);
  for (size_t i = 0; i < p.nnodes; i++) {
    free(p.memo[i].s);
    free(p.memo_sc[i].s);
    free(p.sexp[i].s);
    free(p.smax[i].s);
  }
  for (size_t i = 0; i < nparams; i++)
    free(p.pname[i]);
  free(p.pname);
  free(p.pused);
  free(p.refs);
  free(p.seen);
  free(p.memo);
  free(p.sbase);
  free(p.sdeg);
  free(p.sroot);
  free(p.memo_sc);
  free(p.sexp);
  free(p.smax);
  free(p.salias);
  free(p.sparity);
  free(p.lv);
  free(p.lcache);
  free(p.trail);
  free(p.oc);
  free(p.okid);
  free(p.mtab);
  free(made.v);
  free(p.tsub);
  free(p.esub);
  sb_clear(&p.body);
  *products = p.products;
  return ok;
}

/* Appends the messages of FROM to TO. */
static void copy_errors(md_errors *to, const md_errors *from) {
  for (size_t i = 0; i < from->n; i++)
    md_error_at(to, from->v[i].src, from->v[i].loc, "%s", from->v[i].msg);
}

/* Expanding a transposed product, (X B)^T as B^T X^T, shares its pairs
 * with other chains (R B^T in R (X B)^T and A^T R B^T), or loses the
 * product itself, shared elsewhere (A^2 X c in (A^2 X c)^T, A X at the
 * start of A X B): whether it pays is known once written.  So a function
 * that has such products is written three ways (every one expanded, all
 * but those that start another product, none), and the one with the
 * fewest matrix products is kept, the first of equals. */
bool md_print_code(strbuf *out, md_ctx *ctx, md_shapes *shapes,
                   const md_code_fn *fn, md_errors *err) {
  strbuf b[3];
  md_errors e[3];
  size_t n[3] = {0, 0, 0};
  bool ok[3] = {false, false, false}, expanded = false, unused;
  int best = 0;
  for (int i = 0; i < 3; i++) {
    sb_init(&b[i]);
    md_errors_init(&e[i]);
  }
  ok[0] = print_code(&b[0], ctx, shapes, fn, &e[0], 2, &n[0], &expanded);
  if (expanded) {
    ok[1] = print_code(&b[1], ctx, shapes, fn, &e[1], 1, &n[1], &unused);
    ok[2] = print_code(&b[2], ctx, shapes, fn, &e[2], 0, &n[2], &unused);
    for (int i = 1; i < 3; i++)
      if (ok[i] && (!ok[best] || n[i] < n[best]))
        best = i;
  }
  if (b[best].len)
    sb_putn(out, b[best].s, b[best].len);
  copy_errors(err, &e[best]);
  for (int i = 0; i < 3; i++) {
    sb_clear(&b[i]);
    md_errors_clear(&e[i]);
  }
  return ok[best];
}

bool md_print_numpy(strbuf *out, md_ctx *ctx, md_shapes *shapes, const expr *e,
                    md_shape shape, const expr *const *params, size_t nparams,
                    const char *name, md_errors *err) {
  md_code_fn fn = {.lang = MD_CODE_NUMPY,
                   .name = name,
                   .params = params,
                   .nparams = nparams,
                   .results = &e,
                   .shapes = &shape,
                   .nresults = 1};
  return md_print_code(out, ctx, shapes, &fn, err);
}
