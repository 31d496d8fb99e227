/* shape.c - shape inference with symbolic dimensions; see shape.h. */
#include "shape.h"

#include "print_text.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- environment ---- */

void md_env_init(md_env *env) {
  *env = (md_env){0};
}
void md_env_clear(md_env *env) {
  free(env->v);
  md_env_init(env);
}

void md_env_add(md_env *env, const md_decl *d) {
  if (env->n == env->cap) {
    env->cap = env->cap ? 2 * env->cap : 8;
    env->v = xreallocarray(env->v, env->cap, sizeof *env->v);
  }
  env->v[env->n++] = *d;
}

const md_decl *md_env_find(const md_env *env, const char *name) {
  for (size_t i = env->n; i-- > 0;)
    if (env->v[i].name == name)
      return &env->v[i];
  return NULL;
}

/* ---- dimensions ---- */

typedef enum { D_INT, D_VAR, D_NAME, D_MUL } dim_kind;

typedef struct dim_rec {
  dim_kind kind;
  md_dim parent;    /* union-find; self when a root */
  long value;       /* D_INT */
  const char *name; /* D_NAME; for D_VAR a display name given lazily */
  md_dim a, b;      /* D_MUL */
  bool generic;     /* D_VAR: a copy of a closed term's size (I, ones) */
} dim_rec;

struct md_shapes {
  md_ctx *ctx;
  const md_env *env;
  dim_rec *d;
  size_t nd, capd;
  md_dim one;
  md_dim *consts; /* the integer and named sizes, each made once */
  size_t nconsts, capconsts;
  /* products by their factors (the roots they had when it was made):
   * open addressing, 0 an empty slot (dimension 0 is 1, no product) */
  md_dim *prods;
  size_t nprods, capprods;
  md_shape *node; /* by node id */
  uint8_t *known; /* by node id */
  size_t nnode;
  /* md_shapes_new_sparse: NODE holds the shapes in the order inferred,
   * AT maps a node to its index + 1 (KNOWN unused) */
  bool sparse;
  md_idmap at;
  unsigned nextname;
  /* the size names in use (declared, or given to unknowns), interned: an
   * open-addressing set of pointers, so that naming a size is O(1) */
  const char **names;
  size_t nnames, capnames;
  bool env_named; /* the names of the declarations are in the set */
  bool full;      /* past MD_MAX_DIMS: md_shapes_full */
  /* Walks over the DAG of dimensions (kron(t, t) makes t's size twice,
   * a tower of them 2^k times): a mark per dimension, MARK[d] == GEN when
   * D was reached in the current walk, with a result in MEMO[d]; a stack
   * of dimensions still to visit; pairs still to unify. */
  uint32_t *mark;
  md_dim *memo;
  size_t nmark;
  uint32_t gen;
  md_dim *stack;
  size_t nstack, capstack;
  struct dim_pair *pairs;
  size_t npairs, cappairs;
  /* the inference in progress */
  const md_parsed *locs;
  const md_source *src;
  md_errors *err;
};

static md_dim dim_new(md_shapes *s, dim_rec r) {
  if (s->nd >= MD_MAX_DIMS)
    s->full = true; /* this node is finished, no other is inferred */
  if (s->nd == s->capd) {
    s->capd = s->capd ? 2 * s->capd : 64;
    s->d = xreallocarray(s->d, s->capd, sizeof *s->d);
  }
  r.parent = (md_dim)s->nd;
  s->d[s->nd] = r;
  return (md_dim)s->nd++;
}

static md_dim find(md_shapes *s, md_dim x) {
  while (s->d[x].parent != x) {
    s->d[x].parent = s->d[s->d[x].parent].parent;
    x = s->d[x].parent;
  }
  return x;
}

/* Integer and named sizes are made once each: equal ones are one dim.
 * Only these are searched, not every unknown. */
static md_dim dim_const(md_shapes *s, dim_rec r) {
  for (size_t i = 0; i < s->nconsts; i++) {
    const dim_rec *c = &s->d[s->consts[i]];
    if (c->kind == r.kind &&
        (r.kind == D_INT ? c->value == r.value : c->name == r.name))
      return find(s, s->consts[i]);
  }
  if (s->nconsts == s->capconsts) {
    s->capconsts = s->capconsts ? 2 * s->capconsts : 16;
    s->consts = xreallocarray(s->consts, s->capconsts, sizeof *s->consts);
  }
  md_dim d = dim_new(s, r);
  s->consts[s->nconsts++] = d;
  return d;
}

static md_dim dim_int(md_shapes *s, long v) {
  return dim_const(s, (dim_rec){.kind = D_INT, .value = v});
}

static md_dim dim_var(md_shapes *s) {
  return dim_new(s, (dim_rec){.kind = D_VAR});
}

static void name_add(md_shapes *s, const char *nm);

static md_dim dim_name(md_shapes *s, const char *name) {
  name_add(s, name);
  return dim_const(s, (dim_rec){.kind = D_NAME, .name = name});
}

/* The slot of the product A·B in s->prods: its own, or the empty one
 * where it goes. */
static size_t prod_slot(const md_shapes *s, md_dim a, md_dim b) {
  size_t mask = s->capprods - 1;
  uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15u;
  size_t i = (size_t)(h ^ h >> 29) & mask;
  while (s->prods[i] && (s->d[s->prods[i]].a != a || s->d[s->prods[i]].b != b))
    i = (i + 1) & mask;
  return i;
}

static md_dim dim_mul(md_shapes *s, md_dim a, md_dim b) {
  a = find(s, a);
  b = find(s, b);
  if (a == s->one)
    return b;
  if (b == s->one)
    return a;
  if (s->d[a].kind == D_INT && s->d[b].kind == D_INT &&
      s->d[a].value <= 1000000000L / s->d[b].value)
    return dim_int(s, s->d[a].value * s->d[b].value);
  /* a product of the same two sizes is made once: kron of n equal
   * factors makes log n sizes, not n */
  if (2 * (s->nprods + 1) > s->capprods) {
    md_dim *old = s->prods;
    size_t oldcap = s->capprods;
    s->capprods = oldcap ? 2 * oldcap : 64;
    s->prods = xcalloc(s->capprods, sizeof *s->prods);
    for (size_t i = 0; i < oldcap; i++)
      if (old[i])
        s->prods[prod_slot(s, s->d[old[i]].a, s->d[old[i]].b)] = old[i];
    free(old);
  }
  size_t i = prod_slot(s, a, b);
  if (s->prods[i])
    return find(s, s->prods[i]);
  md_dim p = dim_new(s, (dim_rec){.kind = D_MUL, .a = a, .b = b});
  s->prods[i] = p;
  s->nprods++;
  return p;
}

/* ---- walks over the DAG of dimensions ----
 *
 * A size is shared by every product built from it, so the dimensions form
 * a DAG whose tree can be exponential (a tower of kron(t, t)); every walk
 * is a loop with a mark per dimension, never a recursion over the tree. */

/* Starts a walk: no dimension is marked. */
static void walk_begin(md_shapes *s) {
  if (++s->gen == 0) {
    memset(s->mark, 0, s->nmark * sizeof *s->mark);
    s->gen = 1;
  }
  s->nstack = 0;
}

/* Marks D (which may be newer than the walk); false if it was marked. */
static bool walk_mark(md_shapes *s, md_dim d) {
  if (d >= s->nmark) {
    size_t n = s->capd > d ? s->capd : (size_t)d + 1;
    s->mark = xreallocarray(s->mark, n, sizeof *s->mark);
    s->memo = xreallocarray(s->memo, n, sizeof *s->memo);
    memset(s->mark + s->nmark, 0, (n - s->nmark) * sizeof *s->mark);
    s->nmark = n;
  }
  if (s->mark[d] == s->gen)
    return false;
  s->mark[d] = s->gen;
  return true;
}

static bool walk_marked(const md_shapes *s, md_dim d) {
  return d < s->nmark && s->mark[d] == s->gen;
}

static void push(md_shapes *s, md_dim d) {
  if (s->nstack == s->capstack) {
    s->capstack = s->capstack ? 2 * s->capstack : 64;
    s->stack = xreallocarray(s->stack, s->capstack, sizeof *s->stack);
  }
  s->stack[s->nstack++] = d;
}

/* Whether the unknown V occurs in T. */
static bool occurs(md_shapes *s, md_dim v, md_dim t) {
  walk_begin(s);
  push(s, t);
  while (s->nstack) {
    md_dim d = find(s, s->stack[--s->nstack]);
    if (d == v)
      return true;
    if (walk_mark(s, d) && s->d[d].kind == D_MUL) {
      push(s, s->d[d].a);
      push(s, s->d[d].b);
    }
  }
  return false;
}

enum { MAX_FACTORS = 16 };

bool md_dim_factors(md_shapes *s, md_dim d, md_dim *v, size_t *n, size_t cap) {
  /* a tree of CAP leaves has 2 CAP - 1 nodes: a walk that visits more
   * has more leaves, however deep the first one is */
  md_dim st[4 * MAX_FACTORS];
  size_t ns = 0, visits = 0;
  if (cap > MAX_FACTORS)
    cap = MAX_FACTORS;
  st[ns++] = d;
  while (ns) {
    md_dim x = find(s, st[--ns]);
    if (++visits >= 2 * cap)
      return false;
    if (s->d[x].kind == D_MUL) {
      st[ns++] = s->d[x].b; /* then a, so that factors come in order */
      st[ns++] = s->d[x].a;
    } else if (*n == cap) {
      return false;
    } else {
      v[(*n)++] = x;
    }
  }
  return true;
}

/* A product's factors as distinct leaves and how often each occurs: a
 * tower of k Kronecker squares of t has 2^k factors n but one entry (n,
 * 2^k), found in time linear in its DAG.  For products of more than
 * MAX_FACTORS leaves, which md_dim_factors does not list (unify_products):
 * a tower of 6 levels, 32 factors, and the same size grouped otherwise,
 * did not unify, and its NumPy code failed ("cannot multiply ... when
 * m·n·n·... ≠ n·n·..."). */
bool md_counts_add(const md_counts *a, const md_counts *b, md_counts *out) {
  size_t i = 0, j = 0;
  out->n = 0;
  while (i < a->n || j < b->n) {
    int c = i == a->n ? 1
            : j == b->n
                ? -1
                : (a->f[i].key > b->f[j].key) - (a->f[i].key < b->f[j].key);
    md_count f = c <= 0 ? a->f[i] : b->f[j];
    if (c == 0) {
      if (b->f[j].n > (UINT64_C(1) << 62) - f.n)
        return false;
      f.n += b->f[j].n;
    }
    i += c <= 0, j += c >= 0;
    if (out->n == MD_MAX_COUNTS)
      return false;
    out->f[out->n++] = f;
  }
  return true;
}

static void drop_zeros(md_counts *a) {
  size_t m = 0;
  for (size_t i = 0; i < a->n; i++)
    if (a->f[i].n)
      a->f[m++] = a->f[i];
  a->n = m;
}

void md_counts_cancel(md_counts *a, md_counts *b) {
  for (size_t i = 0, j = 0; i < a->n && j < b->n;) {
    if (a->f[i].key < b->f[j].key) {
      i++;
    } else if (b->f[j].key < a->f[i].key) {
      j++;
    } else {
      uint64_t m = a->f[i].n < b->f[j].n ? a->f[i].n : b->f[j].n;
      a->f[i++].n -= m;
      b->f[j++].n -= m;
    }
  }
  drop_zeros(a);
  drop_zeros(b);
}

/* The leaves of D counted into *OUT (a walk: each product once, after
 * its factors; MEMO[x] is 1 + its entry in a local array once done). */
bool md_dim_counts(md_shapes *s, md_dim d, md_counts *out) {
  md_counts *done = NULL;
  size_t ndone = 0, capdone = 0;
  bool ok = true;
  walk_begin(s);
  push(s, find(s, d));
  while (ok && s->nstack) {
    md_dim x = s->stack[s->nstack - 1];
    const dim_rec *r = &s->d[x];
    if (walk_mark(s, x)) {
      s->memo[x] = 0;
      if (r->kind == D_MUL) { /* its factors first; it stays */
        push(s, find(s, r->b));
        push(s, find(s, r->a));
        continue;
      }
    } else if (s->memo[x]) {
      s->nstack--; /* reached before, done */
      continue;
    }
    if (ndone == capdone) {
      capdone = capdone ? 2 * capdone : 16;
      done = xreallocarray(done, capdone, sizeof *done);
    }
    md_counts *c = &done[ndone];
    if (r->kind == D_MUL) {
      ok = md_counts_add(&done[s->memo[find(s, r->a)] - 1],
                         &done[s->memo[find(s, r->b)] - 1], c);
    } else {
      c->n = 1;
      c->f[0] = (md_count){x, 1, x};
    }
    s->memo[x] = (md_dim)++ndone;
    s->nstack--;
  }
  if (ok)
    *out = done[s->memo[find(s, d)] - 1];
  s->nstack = 0;
  free(done);
  return ok;
}

/* X^K as a product (by squares: log K sizes). */
static md_dim dim_pow(md_shapes *s, md_dim x, uint64_t k) {
  md_dim r = s->one;
  for (md_dim p = x; k; k >>= 1) {
    if (k & 1)
      r = dim_mul(s, r, p);
    if (k > 1)
      p = dim_mul(s, p, p);
  }
  return r;
}

/* Pairs of sizes to make the same; MERGE: the two products whose factors
 * the pairs above it unified, made one (so that meeting them again costs
 * nothing: two towers of products are unified in time linear in their
 * DAGs, not their trees). */
typedef struct dim_pair {
  md_dim a, b;
  bool merge;
} dim_pair;

static void push_pair(md_shapes *s, md_dim a, md_dim b, bool merge) {
  if (s->npairs == s->cappairs) {
    s->cappairs = s->cappairs ? 2 * s->cappairs : 32;
    s->pairs = xreallocarray(s->pairs, s->cappairs, sizeof *s->pairs);
  }
  s->pairs[s->npairs++] = (dim_pair){a, b, merge};
}

/* unify_products for products of many factors, counted (md_dim_counts):
 * the common ones cancel; a lone unknown left on one side is the
 * product of the other side; two leaves left, one each, are unified; what
 * stays ambiguous is unified as the products were built (A1·A2 with
 * B1·B2). */
static bool unify_counts(md_shapes *s, md_counts *ca, md_counts *cb, md_dim a1,
                         md_dim a2, md_dim b1, md_dim b2) {
  md_counts_cancel(ca, cb);
  size_t na = ca->n, nb = cb->n;
  if (na == 0 || nb == 0)
    return na == nb; /* a size left over would have to be 1 */
  if (na == 1 && nb == 1 && ca->f[0].n == 1 && cb->f[0].n == 1) {
    push_pair(s, ca->f[0].x, cb->f[0].x, false);
    return true;
  }
  md_counts *lone = na == 1 && ca->f[0].n == 1   ? ca
                    : nb == 1 && cb->f[0].n == 1 ? cb
                                                 : NULL;
  if (lone && s->d[lone->f[0].x].kind == D_VAR) {
    md_counts *other = lone == ca ? cb : ca;
    md_dim p = s->one;
    for (size_t i = 0; i < other->n; i++)
      p = dim_mul(s, p, dim_pow(s, other->f[i].x, other->f[i].n));
    push_pair(s, lone->f[0].x, p, false);
    return true;
  }
  push_pair(s, a2, b2, false);
  push_pair(s, a1, b1, false);
  return true;
}

/* Products are equal as multisets of factors, in any order or grouping
 * (kron and vec build m·p·n and (m·n)·p for one size): common factors
 * cancel, and a lone unknown left on one side is the product of the
 * other side.  What stays ambiguous (two unknowns against two) is
 * unified factor by factor, as the products were built.  Pushes what
 * remains to unify; false if A and B cannot be the same. */
static bool unify_products(md_shapes *s, md_dim a, md_dim b) {
  md_dim fa[MAX_FACTORS], fb[MAX_FACTORS];
  size_t na = 0, nb = 0;
  md_dim a1 = s->d[a].a, a2 = s->d[a].b, b1 = s->d[b].a, b2 = s->d[b].b;
  push_pair(s, a, b, true);
  if (!md_dim_factors(s, a, fa, &na, MAX_FACTORS) ||
      !md_dim_factors(s, b, fb, &nb, MAX_FACTORS)) {
    md_counts ca, cb;
    if (md_dim_counts(s, a, &ca) && md_dim_counts(s, b, &cb))
      return unify_counts(s, &ca, &cb, a1, a2, b1, b2);
    push_pair(s, a2, b2, false);
    push_pair(s, a1, b1, false);
    return true;
  }
  for (size_t i = 0; i < na; i++)
    for (size_t j = 0; j < nb; j++)
      if (fa[i] == fb[j]) {
        fa[i--] = fa[--na];
        fb[j] = fb[--nb];
        break;
      }
  if (na == 0 || nb == 0)
    return na == nb; /* a size left over would have to be 1 */
  if (na == 1 && nb == 1) {
    push_pair(s, fa[0], fb[0], false);
    return true;
  }
  md_dim *lone = na == 1 ? fa : nb == 1 ? fb : NULL;
  if (lone && s->d[lone[0]].kind == D_VAR) {
    md_dim *other = lone == fa ? fb : fa;
    size_t no = lone == fa ? nb : na;
    md_dim p = other[0];
    for (size_t i = 1; i < no; i++)
      p = dim_mul(s, p, other[i]);
    push_pair(s, lone[0], p, false);
    return true;
  }
  push_pair(s, a2, b2, false);
  push_pair(s, a1, b1, false);
  return true;
}

/* Makes A and B the same size, or says they cannot be. */
static bool unify(md_shapes *s, md_dim a0, md_dim b0) {
  size_t base = s->npairs;
  push_pair(s, a0, b0, false);
  while (s->npairs > base) {
    dim_pair p = s->pairs[--s->npairs];
    md_dim a = find(s, p.a), b = find(s, p.b);
    if (a == b)
      continue;
    if (p.merge) {
      /* both products, their factors unified: one size */
      s->d[a > b ? a : b].parent = a > b ? b : a;
      continue;
    }
    /* A is an unknown if either is; of two, a generic one (a closed
     * term's) points to the other, which keeps a symbol's size a root. */
    if (s->d[b].kind == D_VAR &&
        !(s->d[a].kind == D_VAR && s->d[a].generic && !s->d[b].generic)) {
      md_dim t = a;
      a = b;
      b = t;
    }
    dim_rec *ra = &s->d[a], *rb = &s->d[b];
    if (ra->kind == D_VAR) {
      /* Unknown sizes are never 1 (a matrix stays a matrix). */
      if (b == s->one || occurs(s, a, b))
        goto fail;
      s->d[a].parent = b;
    } else if (ra->kind == D_MUL && rb->kind == D_MUL) {
      if (!unify_products(s, a, b))
        goto fail;
    } else if (!(ra->kind == D_INT && rb->kind == D_INT &&
                 ra->value == rb->value)) {
      goto fail;
    }
  }
  return true;
fail:
  s->npairs = base;
  return false;
}

bool md_dim_is_one(md_shapes *s, md_dim d) {
  return find(s, d) == s->one;
}
bool md_dim_is_generic(md_shapes *s, md_dim d) {
  const dim_rec *x = &s->d[find(s, d)];
  return x->kind == D_VAR && x->generic;
}
bool md_dim_equal(md_shapes *s, md_dim a, md_dim b) {
  return find(s, a) == find(s, b);
}
bool md_shape_is_scalar(md_shapes *s, md_shape sh) {
  return md_dim_is_one(s, sh.r) && md_dim_is_one(s, sh.c);
}
bool md_shape_is_vector(md_shapes *s, md_shape sh) {
  return !md_dim_is_one(s, sh.r) && md_dim_is_one(s, sh.c);
}

/* Names for unknown sizes in messages: the first free of these. */
static const char *const pool[] = {"m", "n", "p", "q", "r", "s",
                                   "k", "l", "t", "u", "v", "w"};

static size_t name_slot(const md_shapes *s, const char *nm) {
  size_t h = ((uintptr_t)nm >> 4) * 0x9E3779B97F4A7C15u;
  size_t i = h & (s->capnames - 1);
  while (s->names[i] && s->names[i] != nm)
    i = (i + 1) & (s->capnames - 1);
  return i;
}

static void name_add(md_shapes *s, const char *nm) {
  nm = md_intern(s->ctx, nm, strlen(nm));
  if (2 * (s->nnames + 1) > s->capnames) {
    const char **old = s->names;
    size_t oldcap = s->capnames;
    s->capnames = oldcap ? 2 * oldcap : 32;
    s->names = xcalloc(s->capnames, sizeof *s->names);
    for (size_t i = 0; i < oldcap; i++)
      if (old[i])
        s->names[name_slot(s, old[i])] = old[i];
    free(old);
  }
  size_t i = name_slot(s, nm);
  if (!s->names[i]) {
    s->names[i] = nm;
    s->nnames++;
  }
}

static bool name_taken(md_shapes *s, const char *nm) {
  if (!s->env_named) {
    s->env_named = true;
    for (size_t i = 0; s->env && i < s->env->n; i++)
      for (int j = 0; j < 2; j++)
        if (s->env->v[i].dim[j].name)
          name_add(s, s->env->v[i].dim[j].name);
  }
  if (!s->capnames)
    return false;
  nm = md_intern(s->ctx, nm, strlen(nm));
  return s->names[name_slot(s, nm)] != NULL;
}

/* The name of D, not a product, into BUF (32 bytes). */
static void leaf_name(md_shapes *s, md_dim d, char *buf) {
  dim_rec *r = &s->d[d];
  if (r->kind == D_INT) {
    snprintf(buf, 32, "%ld", r->value);
    return;
  }
  if (r->kind == D_VAR && !r->name) {
    char tmp[32];
    for (;;) {
      unsigned i = s->nextname++;
      if (i < sizeof pool / sizeof pool[0])
        snprintf(tmp, sizeof tmp, "%s", pool[i]);
      else
        snprintf(tmp, sizeof tmp, "d%u",
                 i - (unsigned)(sizeof pool / sizeof pool[0]) + 1);
      if (!name_taken(s, tmp))
        break;
    }
    r = &s->d[d];
    r->name = md_intern(s->ctx, tmp, strlen(tmp));
    name_add(s, r->name);
  }
  snprintf(buf, 32, "%.31s", r->name);
}

/* "m·n·p" into BUF, its factors left to right.  A product can have more
 * factors than its DAG has nodes (a tower of kron(t, t) has 2^k): the
 * text stops where BUF is full, with "…", after work proportional to
 * SIZE and the depth of D, never to its factors. */
static void dim_format(md_shapes *s, md_dim d, char *buf, size_t size) {
  static const char dot[] = "·", more[] = "…";
  if (size == 0)
    return;
  size_t len = 0;
  bool cut = false;
  buf[0] = '\0';
  walk_begin(s);
  push(s, d);
  while (s->nstack && !cut) {
    md_dim x = find(s, s->stack[--s->nstack]);
    if (s->d[x].kind == D_MUL) {
      push(s, s->d[x].b);
      push(s, s->d[x].a);
      continue;
    }
    char name[32];
    leaf_name(s, x, name);
    size_t n = strlen(name), sep = len ? sizeof dot - 1 : 0;
    /* room for the name, and for "…" after it unless it is the last */
    size_t room = s->nstack ? sizeof more - 1 : 0;
    if (len + sep + n + room + 1 > size) {
      cut = true;
      break;
    }
    memcpy(buf + len, dot, sep);
    memcpy(buf + len + sep, name, n + 1);
    len += sep + n;
  }
  if (cut && len + sizeof more <= size)
    memcpy(buf + len, more, sizeof more);
}

void md_shape_format(md_shapes *s, md_shape sh, char *buf, size_t size) {
  char r[64], c[64];
  dim_format(s, sh.r, r, sizeof r);
  dim_format(s, sh.c, c, sizeof c);
  snprintf(buf, size, "%s×%s", r, c);
}

/* ---- symbols ---- */

static const char *const greek[] = {
    "alpha", "beta",    "gamma",   "delta", "epsilon", "zeta",
    "eta",   "theta",   "iota",    "kappa", "lambda",  "mu",
    "nu",    "xi",      "omicron", "pi",    "rho",     "sigma",
    "tau",   "upsilon", "phi",     "chi",   "psi",     "omega"};

md_kind md_default_kind(const char *name) {
  if (name[0] >= 'A' && name[0] <= 'Z')
    return K_MATRIX;
  for (size_t i = 0; i < sizeof greek / sizeof greek[0]; i++) {
    size_t n = strlen(greek[i]);
    if (strncmp(name, greek[i], n) != 0)
      continue;
    /* lambda, lambda1, lambda_max: all scalars */
    const char *p = name + n;
    if (*p == '_' || *p == '\0')
      return K_SCALAR;
    while (*p >= '0' && *p <= '9')
      p++;
    if (*p == '\0')
      return K_SCALAR;
  }
  return K_VECTOR;
}

md_kind md_shape_sym_kind(md_shapes *s, const expr *sym) {
  const md_decl *d = s->env ? md_env_find(s->env, sym->u.name) : NULL;
  return d ? d->kind : md_default_kind(sym->u.name);
}

static md_dim dim_from_spec(md_shapes *s, md_dimspec sp) {
  if (sp.name)
    return dim_name(s, sp.name);
  if (sp.value > 0)
    return dim_int(s, sp.value);
  return dim_var(s);
}

/* A symbol is one node per name, and infer() records a node's shape, so
 * this runs once per symbol and needs no table of its own. */
static md_shape sym_shape_of(md_shapes *s, const expr *sym) {
  const md_decl *d = s->env ? md_env_find(s->env, sym->u.name) : NULL;
  md_kind k = d ? d->kind : md_default_kind(sym->u.name);
  md_shape sh;
  switch (k) {
  case K_SCALAR:
    sh = (md_shape){s->one, s->one};
    break;
  case K_VECTOR:
    sh = (md_shape){d ? dim_from_spec(s, d->dim[0]) : dim_var(s), s->one};
    break;
  case K_MATRIX:
    sh.r = d ? dim_from_spec(s, d->dim[0]) : dim_var(s);
    sh.c = d ? dim_from_spec(s, d->dim[1]) : dim_var(s);
    break;
  default: /* square kinds */
    sh.r = sh.c = d ? dim_from_spec(s, d->dim[0]) : dim_var(s);
    break;
  }
  return sh;
}

/* ---- inference ---- */

md_shapes *md_shapes_new(md_ctx *ctx, const md_env *env) {
  md_shapes *s = xcalloc(1, sizeof *s);
  s->ctx = ctx;
  s->env = env;
  s->one = dim_int(s, 1);
  return s;
}

md_shapes *md_shapes_new_sparse(md_ctx *ctx, const md_env *env) {
  md_shapes *s = md_shapes_new(ctx, env);
  s->sparse = true;
  md_idmap_init(&s->at);
  return s;
}

void md_shapes_free(md_shapes *s) {
  if (!s)
    return;
  free(s->d);
  free(s->consts);
  free(s->prods);
  free(s->node);
  free(s->known);
  md_idmap_clear(&s->at);
  free(s->names);
  free(s->mark);
  free(s->memo);
  free(s->stack);
  free(s->pairs);
  free(s);
}

/* The recorded shape of E, or NULL. */
static md_shape *recorded(const md_shapes *s, const expr *e) {
  if (s->sparse) {
    uintptr_t i = md_idmap_get(&s->at, e);
    return i ? &s->node[i - 1] : NULL;
  }
  return e->id < s->nnode && s->known[e->id] ? &s->node[e->id] : NULL;
}

static void ensure_nodes(md_shapes *s) {
  size_t n = md_ctx_nnodes(s->ctx);
  if (n <= s->nnode)
    return;
  if (n < 2 * s->nnode)
    n = 2 * s->nnode;
  s->node = xreallocarray(s->node, n, sizeof *s->node);
  s->known = xrealloc(s->known, n);
  memset(s->known + s->nnode, 0, n - s->nnode);
  s->nnode = n;
}

static void record(md_shapes *s, const expr *e, md_shape sh) {
  if (s->sparse) {
    if (s->nnode == 0 || (s->nnode >= 8 && (s->nnode & (s->nnode - 1)) == 0))
      s->node =
          xreallocarray(s->node, s->nnode ? 2 * s->nnode : 8, sizeof *s->node);
    s->node[s->nnode++] = sh;
    md_idmap_put(&s->at, e, s->nnode);
    return;
  }
  ensure_nodes(s);
  s->node[e->id] = sh;
  s->known[e->id] = 1;
}

bool md_shapes_full(const md_shapes *s) {
  return s->full;
}

bool md_shape_known(const md_shapes *s, const expr *e) {
  return recorded(s, e) != NULL;
}

md_shape md_shape_of(md_shapes *s, const expr *e) {
  const md_shape *r = recorded(s, e);
  if (r)
    return *r;
  return (md_shape){s->one, s->one};
}

/* A fresh copy of a closed term's shape: its unknowns renamed, each to
 * one new unknown, products rebuilt over them.  A walk in post-order over
 * the DAG of its sizes (MEMO[d]: the copy of D), not over their tree. */
static md_shape instantiate(md_shapes *s, md_shape sh) {
  walk_begin(s);
  push(s, sh.c);
  push(s, sh.r);
  while (s->nstack) {
    md_dim d = find(s, s->stack[s->nstack - 1]);
    if (walk_marked(s, d)) {
      s->nstack--;
      continue;
    }
    md_dim copy = d;
    if (s->d[d].kind == D_MUL) {
      md_dim a = find(s, s->d[d].a), b = find(s, s->d[d].b);
      if (!walk_marked(s, a) || !walk_marked(s, b)) {
        if (!walk_marked(s, b))
          push(s, b);
        if (!walk_marked(s, a))
          push(s, a);
        continue;
      }
      copy = dim_mul(s, s->memo[a], s->memo[b]);
    } else if (s->d[d].kind == D_VAR) {
      copy = dim_var(s);
      s->d[copy].generic = true;
    }
    s->nstack--;
    walk_mark(s, d);
    s->memo[d] = copy;
  }
  return (md_shape){s->memo[find(s, sh.r)], s->memo[find(s, sh.c)]};
}

/* Text of E for a message: its source if we have it, else printed. */
static void describe(md_shapes *s, const expr *e, md_loc loc, char *buf,
                     size_t size) {
  if (s->src && md_loc_valid(loc) && loc.end > loc.begin &&
      loc.end <= s->src->len && loc.end - loc.begin < 48) {
    snprintf(buf, size, "%.*s", (int)(loc.end - loc.begin),
             s->src->text + loc.begin);
    return;
  }
  if (!e) { /* a product past the size budget, made for the message */
    snprintf(buf, size, "(a product too large to show)");
    return;
  }
  char *t = md_print_text_brief(s->ctx, e, 48);
  if (strlen(t) > 47)
    snprintf(buf, size, "%.44s...", t);
  else
    snprintf(buf, size, "%s", t);
  free(t);
}

static md_loc loc_of(md_shapes *s, const expr *e, md_loc dflt) {
  md_loc l = s->locs ? md_parsed_loc(s->locs, e) : MD_NOLOC;
  return md_loc_valid(l) ? l : dflt;
}

/* "x (n×1)", "s (scalar)" */
static void operand(md_shapes *s, const expr *e, md_loc loc, md_shape sh,
                    char *buf, size_t size) {
  char text[64], shp[160];
  describe(s, e, loc, text, sizeof text);
  if (md_shape_is_scalar(s, sh))
    snprintf(shp, sizeof shp, "scalar");
  else
    md_shape_format(s, sh, shp, sizeof shp);
  snprintf(buf, size, "%s (%s)", text, shp);
}

#define FAIL(loc, ...)                                                         \
  do {                                                                         \
    md_error_at(s->err, s->src, (loc), __VA_ARGS__);                           \
    return false;                                                              \
  } while (0)

static bool infer(md_shapes *s, expr *e, md_loc ploc, md_shape *out);

/* E without the transposes and negations around it: (-0^T)^-1 is 1/0 */
static const expr *strip_signs(const expr *e) {
  while (e->op == E_TRANS || e->op == E_NEG)
    e = e->kid[0];
  return e;
}

static bool is_const_scalar(md_shapes *s, const expr *e, md_shape sh) {
  return (e->flags & EF_CONST) && md_shape_is_scalar(s, sh);
}

/* ---- reading a product ----
 *
 * Left to right; a scalar scales.  A product is flat, so M (u^T u) N
 * arrives as M u^T u N: where the chain breaks, a run of factors that
 * multiplies to 1×1 scales too, and runs nest (c^T A (c^T x) y arrives as
 * c^T A c^T x y).  This is the one reader of that structure: inference
 * reads a product with it, unifying sizes as factors join, and
 * md_shape_runs reads an inferred product again, only comparing sizes,
 * for the evaluator and the differentiator. */

/* Runs of 1×1 inside runs are read this deep. */
enum { MAX_RUN_DEPTH = 32 };

typedef struct reader {
  md_shapes *s;
  const md_shape *k; /* the factors' shapes */
  size_t n;
  bool infer;  /* unify sizes (inference), or only compare them */
  size_t *run; /* NULL, or where each run ends (md_shape_runs) */
} reader;

/* Whether a factor of R rows continues a chain of C columns. */
static bool joins(reader *R, md_dim c, md_dim r) {
  if (R->infer)
    return unify(R->s, c, r);
  /* Inference has unified what joins, and a chain it read breaks only
   * before a factor with one row (where a 1×1 run starts).  A size not
   * known equal may be that of a closed factor (kron(I, b^T) G), whose
   * recorded shape is only its most general one. */
  return md_dim_equal(R->s, c, r) || !md_dim_is_one(R->s, r);
}

/* The factors K[i..n) from K[i]: whether a run of them multiplies to 1×1,
 * and the index after it in *END.  Where the run's chain breaks, a run of
 * its own that is 1×1 may start: it scales, and the outer run goes on
 * after it. */
static bool scalar_run(reader *R, size_t i, size_t *end, int depth) {
  md_shapes *s = R->s;
  const md_shape *k = R->k;
  md_shape run = k[i];
  size_t j = i + 1;
  while (j < R->n && !md_shape_is_scalar(s, run)) {
    size_t inner;
    if (md_shape_is_scalar(s, k[j])) {
      j++;
    } else if (joins(R, run.c, k[j].r)) {
      run.c = k[j].c;
      j++;
    } else if (depth < MAX_RUN_DEPTH && scalar_run(R, j, &inner, depth + 1)) {
      j = inner;
    } else {
      break;
    }
  }
  *end = j;
  if (!md_shape_is_scalar(s, run))
    return false;
  if (R->run)
    R->run[i] = j;
  return true;
}

/* Reads the product of R's factors into *ACC; the index of the factor at
 * which its chain breaks with no 1×1 run there, or n when none does (*ACC
 * is then what the factors before that one multiply to). */
static size_t read_product(reader *R, md_shape *acc) {
  md_shapes *s = R->s;
  const md_shape *k = R->k;
  *acc = k[0];
  for (size_t i = 1; i < R->n; i++) {
    if (md_shape_is_scalar(s, *acc)) {
      *acc = k[i];
      continue;
    }
    if (md_shape_is_scalar(s, k[i]))
      continue;
    if (joins(R, acc->c, k[i].r)) {
      acc->c = k[i].c;
      continue;
    }
    size_t j;
    if (!scalar_run(R, i, &j, 0))
      return i;
    i = j - 1;
  }
  return R->n;
}

bool md_shape_runs(md_shapes *s, const md_shape *k, size_t n, size_t *run) {
  for (size_t i = 0; i < n; i++)
    run[i] = 0;
  reader R = {s, k, n, false, run};
  md_shape acc;
  return n == 0 || read_product(&R, &acc) == n;
}

/* The rows (COLS: columns) of a Kronecker product of the factors of
 * shapes K[i..j): their product, as a balanced tree, so that a product
 * of n factors (a tower of kron(t, t) flattened) is log n deep, not n. */
static md_dim kron_dim(md_shapes *s, const md_shape *k, size_t i, size_t j,
                       bool cols) {
  if (j - i == 1)
    return cols ? k[i].c : k[i].r;
  size_t mid = i + (j - i) / 2;
  return dim_mul(s, kron_dim(s, k, i, mid, cols), kron_dim(s, k, mid, j, cols));
}

/* The rules of SPEC 2 for one node, given its kids' shapes. */
static bool infer_node(md_shapes *s, expr *e, md_loc loc, md_shape *k,
                       md_shape *out) {
  char a[256], b[256], da[64], db[64];
  md_shape one = {s->one, s->one};
  switch ((expr_op)e->op) {
  case E_NUM:
    *out = one;
    return true;
  case E_SYM:
    *out = sym_shape_of(s, e);
    return true;
  case E_IDENT: {
    md_dim v = dim_var(s);
    *out = (md_shape){v, v};
    return true;
  }
  case E_ONES:
    *out = (md_shape){dim_var(s), s->one};
    return true;
  case E_ADD: {
    /* A numeric constant broadcasts; a scalar symbol does not. */
    size_t first = e->nkids;
    for (size_t i = 0; i < e->nkids; i++)
      if (!is_const_scalar(s, e->kid[i], k[i])) {
        first = i;
        break;
      }
    if (first == e->nkids) {
      *out = one;
      return true;
    }
    md_shape acc = k[first];
    for (size_t i = first + 1; i < e->nkids; i++) {
      if (is_const_scalar(s, e->kid[i], k[i]))
        continue;
      if (unify(s, acc.r, k[i].r) && unify(s, acc.c, k[i].c))
        continue;
      md_loc li = loc_of(s, e->kid[i], loc), l0 = loc_of(s, e->kid[first], loc);
      operand(s, e->kid[first], l0, acc, a, sizeof a);
      operand(s, e->kid[i], li, k[i], b, sizeof b);
      if (md_shape_is_scalar(s, k[i]) || md_shape_is_scalar(s, acc))
        FAIL(li,
             "cannot add %s and %s: only a number broadcasts; write s I "
             "or s ones for a scalar s",
             a, b);
      FAIL(li, "cannot add %s and %s", a, b);
    }
    *out = acc;
    return true;
  }
  case E_EPOW:
    if (!md_shape_is_scalar(s, k[1])) {
      operand(s, e->kid[1], loc_of(s, e->kid[1], loc), k[1], b, sizeof b);
      FAIL(loc_of(s, e->kid[1], loc), "an exponent must be a scalar, not %s",
           b);
    }
    *out = k[0];
    return true;
  case E_NEG:
  case E_TRANS:
    *out = e->op == E_TRANS ? (md_shape){k[0].c, k[0].r} : k[0];
    return true;
  case E_MUL: {
    /* left to right, with 1×1 runs inside: see read_product */
    reader R = {s, k, e->nkids, true, NULL};
    md_shape acc;
    size_t i = read_product(&R, &acc);
    if (i < e->nkids) {
      md_loc l0 = loc_of(s, e->kid[0], loc);
      md_loc li = loc_of(s, e->kid[i - 1], loc);
      md_loc lk = loc_of(s, e->kid[i], loc);
      expr *left = expr_mul_n(s->ctx, e->kid, i);
      operand(s, left, md_loc_span(l0, li), acc, a, sizeof a);
      operand(s, e->kid[i], lk, k[i], b, sizeof b);
      dim_format(s, acc.c, da, sizeof da);
      dim_format(s, k[i].r, db, sizeof db);
      FAIL(lk, "cannot multiply %s by %s when %s ≠ %s", a, b, da, db);
    }
    *out = acc;
    return true;
  }
  case E_DIV:
    if (expr_is_zero(e->kid[1]))
      FAIL(loc_of(s, e->kid[1], loc), "division by zero");
    if (!md_shape_is_scalar(s, k[1])) {
      operand(s, e->kid[1], loc_of(s, e->kid[1], loc), k[1], b, sizeof b);
      FAIL(loc_of(s, e->kid[1], loc),
           "can only divide by a scalar, not by %s; use ./ to divide "
           "element-wise",
           b);
    }
    *out = k[0];
    return true;
  case E_HAD:
  case E_HDIV: {
    md_shape acc = k[0];
    for (size_t i = 1; i < e->nkids; i++) {
      if (md_shape_is_scalar(s, acc)) {
        acc = k[i];
        continue;
      }
      if (md_shape_is_scalar(s, k[i]))
        continue;
      if (unify(s, acc.r, k[i].r) && unify(s, acc.c, k[i].c))
        continue;
      md_loc li = loc_of(s, e->kid[i], loc);
      operand(s, e->kid[i - 1], loc_of(s, e->kid[i - 1], loc), acc, a,
              sizeof a);
      operand(s, e->kid[i], li, k[i], b, sizeof b);
      FAIL(li, "cannot %s element-wise %s and %s",
           e->op == E_HAD ? "multiply" : "divide", a, b);
    }
    if (e->op == E_HDIV && expr_is_zero(e->kid[1]))
      FAIL(loc_of(s, e->kid[1], loc), "division by zero");
    *out = acc;
    return true;
  }
  case E_KRON:
    *out = (md_shape){kron_dim(s, k, 0, e->nkids, false),
                      kron_dim(s, k, 0, e->nkids, true)};
    return true;
  case E_INV:
    if (expr_is_zero(strip_signs(e->kid[0])))
      FAIL(loc, "division by zero: 0 has no inverse");
    if (!unify(s, k[0].r, k[0].c)) {
      operand(s, e->kid[0], loc_of(s, e->kid[0], loc), k[0], a, sizeof a);
      FAIL(loc, "cannot invert %s: it is not square", a);
    }
    *out = k[0];
    return true;
  case E_POW: {
    if (!md_shape_is_scalar(s, k[1])) {
      operand(s, e->kid[1], loc_of(s, e->kid[1], loc), k[1], b, sizeof b);
      FAIL(loc_of(s, e->kid[1], loc), "an exponent must be a scalar, not %s",
           b);
    }
    if (md_shape_is_scalar(s, k[0])) {
      *out = k[0];
      return true;
    }
    long n;
    operand(s, e->kid[0], loc_of(s, e->kid[0], loc), k[0], a, sizeof a);
    if (!expr_is_int(e->kid[1], &n) && expr_is_num(e->kid[1]) &&
        mpz_cmp_ui(mpq_denref(e->kid[1]->u.num), 1) == 0)
      FAIL(loc_of(s, e->kid[1], loc),
           "the exponent of a matrix power is too large (at most %ld in "
           "magnitude)",
           LONG_MAX);
    if (!expr_is_int(e->kid[1], &n))
      FAIL(loc,
           "the power of a matrix needs an integer exponent; %s is not a "
           "scalar (for element-wise powers use .^)",
           a);
    if (!unify(s, k[0].r, k[0].c))
      FAIL(loc,
           "cannot raise %s to a power: it is not square (for an "
           "element-wise power use .^)",
           a);
    *out = k[0];
    return true;
  }
  case E_CALL: {
    const fn_info *f = md_fn_get(s->ctx, e->u.fn);
    md_loc l0 = loc_of(s, e->kid[0], loc);
    /* the argument as messages show it, made only for one */
#define ARG operand(s, e->kid[0], l0, k[0], a, sizeof a)
    switch (f->cls) {
    case FC_ELEMWISE:
      *out = k[0];
      return true;
    case FC_SQUARE_TO_SC:
      if (!unify(s, k[0].r, k[0].c)) {
        ARG;
        FAIL(l0, "%s needs a square matrix, not %s", f->name, a);
      }
      *out = one;
      return true;
    case FC_ANY_TO_SC:
      *out = one;
      return true;
    case FC_VEC_TO_VEC:
      if (md_shape_is_scalar(s, k[0]) || !unify(s, k[0].c, s->one)) {
        ARG;
        FAIL(l0, "%s needs a vector, not %s", f->name, a);
      }
      *out = k[0];
      return true;
    case FC_DIAG:
      if (md_shape_is_scalar(s, k[0])) {
        *out = one;
        return true;
      }
      if (md_dim_is_one(s, k[0].c)) {
        *out = (md_shape){k[0].r, k[0].r};
        return true;
      }
      if (!unify(s, k[0].r, k[0].c)) {
        ARG;
        FAIL(l0, "diag needs a vector or a square matrix, not %s", a);
      }
      *out = (md_shape){k[0].r, s->one};
      return true;
    case FC_VEC:
      /* vec stacks the columns: the column index is the outer one, as
       * the left factor's is in a Kronecker product, so that
       * kron(B^T, A) vec(X) and vec(A X B) have the same sizes. */
      *out = (md_shape){dim_mul(s, k[0].c, k[0].r), s->one};
      return true;
    }
#undef ARG
    return false;
  }
  case E_INNER:
    if (!unify(s, k[0].r, k[1].r) || !unify(s, k[0].c, k[1].c)) {
      md_loc l1 = loc_of(s, e->kid[1], loc);
      operand(s, e->kid[0], loc_of(s, e->kid[0], loc), k[0], a, sizeof a);
      operand(s, e->kid[1], l1, k[1], b, sizeof b);
      FAIL(l1, "cannot take the inner product of %s and %s", a, b);
    }
    *out = one;
    return true;
  case E_DIFF:
  case E_HESS: {
    md_shape f = k[0], x = k[1];
    md_loc lf = loc_of(s, e->kid[0], loc);
    operand(s, e->kid[0], lf, f, a, sizeof a);
    operand(s, e->kid[1], loc_of(s, e->kid[1], loc), x, b, sizeof b);
    bool fs = md_shape_is_scalar(s, f), xs = md_shape_is_scalar(s, x);
    bool fv = md_shape_is_vector(s, f), xv = md_shape_is_vector(s, x);
    if (e->op == E_HESS) {
      if (!fs)
        FAIL(lf, "hess needs a scalar function, not %s", a);
      if (!xs && !xv)
        FAIL(loc,
             "hess needs a scalar or vector variable, not %s; use "
             "hess(f, vec(X))",
             b);
      *out = (md_shape){x.r, x.r};
      return true;
    }
    if (fs) {
      *out = x;
      return true;
    }
    if (xs) {
      /* d/ds of a vector is a row (denominator layout), of a matrix the
       * element-wise derivative. */
      *out = fv ? (md_shape){s->one, f.r} : f;
      return true;
    }
    if (fv && xv) {
      *out = (md_shape){x.r, f.r};
      return true;
    }
    FAIL(loc,
         "the derivative of %s with respect to %s is a tensor; "
         "differentiate vec(...) with respect to vec(...) instead",
         a, b);
  }
  case E_TUPLE:
    FAIL(loc, "a list in parentheses is only allowed as the arguments of "
              "a function");
  case E_NOPS:
    break;
  }
  FAIL(loc, "internal error: unknown node");
}

static bool infer(md_shapes *s, expr *e, md_loc ploc, md_shape *out) {
  md_loc loc = loc_of(s, e, ploc);
  if (s->full)
    FAIL(loc, "too many sizes to infer (more than %zu)", (size_t)MD_MAX_DIMS);
  const md_shape *r = recorded(s, e);
  if (r) {
    *out = (e->flags & EF_CLOSED) ? instantiate(s, *r) : *r;
    return true;
  }
  md_shape small[4];
  md_shape *k =
      e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
  bool ok = true;
  for (size_t i = 0; ok && i < e->nkids; i++)
    ok = infer(s, e->kid[i], loc, &k[i]);
  if (ok)
    ok = infer_node(s, e, loc, k, out);
  if (k != small)
    free(k);
  if (!ok)
    return false;
  record(s, e, *out);
  /* A closed term's recorded shape is its scheme: never unified itself. */
  if (e->flags & EF_CLOSED)
    *out = instantiate(s, *out);
  return true;
}

bool md_shape_infer(md_shapes *s, expr *e, const md_parsed *locs,
                    const md_source *src, md_errors *err, md_shape *out) {
  s->locs = locs;
  s->src = src;
  s->err = err;
  md_shape sh;
  bool ok = infer(s, e, MD_NOLOC, &sh);
  if (ok && out)
    *out = sh;
  s->locs = NULL;
  s->src = NULL;
  s->err = NULL;
  return ok;
}

bool md_shape_derive(md_shapes *s, expr *e) {
  if (!e)
    return false; /* a node past a limit has no shape (the callers that
                   * can meet one report the limit) */
  if (recorded(s, e))
    return true;
  md_errors err;
  md_errors_init(&err);
  s->err = &err;
  md_shape sh;
  bool ok = infer(s, e, MD_NOLOC, &sh);
  s->err = NULL;
  md_errors_clear(&err);
  return ok;
}

/* ---- concrete sizes ---- */

bool md_shape_unify(md_shapes *s, md_shape a, md_shape b) {
  return unify(s, a.r, b.r) && unify(s, a.c, b.c);
}

size_t md_shapes_ndims(const md_shapes *s) {
  return s->nd;
}

md_dim_info md_dim_get(md_shapes *s, md_dim d) {
  md_dim r = find(s, d);
  const dim_rec *x = &s->d[r];
  md_dim_info info = {.root = r};
  switch (x->kind) {
  case D_INT:
    info.kind = MD_DIM_INT;
    info.value = x->value;
    break;
  case D_NAME:
    info.kind = MD_DIM_NAME;
    break;
  case D_VAR:
    info.kind = MD_DIM_FREE;
    break;
  case D_MUL:
    info.kind = MD_DIM_PRODUCT;
    info.a = x->a;
    info.b = x->b;
    break;
  }
  return info;
}

void md_dim_format(md_shapes *s, md_dim d, char *buf, size_t size) {
  dim_format(s, d, buf, size);
}
