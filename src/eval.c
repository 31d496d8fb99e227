/* eval.c - evaluation of the DAG at concrete points; see eval.h. */
#include "eval.h"

#include "print_text.h"

#include <fenv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ---- */

void md_rng_seed(md_rng *r, uint64_t seed) {
  r->s = seed;
}

uint64_t md_rng_next(md_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

unsigned md_rng_below(md_rng *r, unsigned n) {
  return (unsigned)(md_rng_next(r) % n);
}

/* ---- the evaluator ---- */

/* Values computed under one set of perturbations.  The root frame has
 * none; a derivative's frame perturbs VAR with infinitesimal number
 * ORDER - 1, and nodes that do not depend on VAR are taken from UP. */
typedef struct frame frame;
struct frame {
  frame *up;
  unsigned order;
  const expr *var;
  md_val var_val;
  const uint8_t *dep; /* by local index: depends on var */
  md_val **memo;      /* by local index */
  uint32_t *set;      /* local indices with a memo */
  size_t nset;
};

/* A closed term at one size. */
typedef struct closed_val closed_val;
struct closed_val {
  uint64_t r, c;
  md_val v;
  closed_val *next;
};

typedef struct dep_table {
  const expr *var;
  uint8_t *dep;
} dep_table;

struct md_eval {
  md_ctx *ctx;
  md_shapes *sh;
  unsigned shrink; /* entries are drawn divided by 2^shrink (md_eval_sample) */
  /* the nodes under the roots, kids before parents */
  uint32_t *local; /* by node id: local index + 1, 0 if not ours */
  size_t nids;
  const expr **node;
  size_t n;
  /* the symbols, in order of first appearance */
  uint32_t *symidx; /* by local index: symbol index, or UINT32_MAX */
  const expr **sym;
  md_val *symval;
  bool *bound;
  md_val *drawn; /* the exact values, kept when symval is in doubles */
  bool *has_drawn;
  size_t nsym;
  /* sizes by dimension (roots only); 0: none yet; a product's too large
   * to evaluate: UINT32_MAX */
  uint32_t *size;
  size_t nsize;
  md_dim *symdims; /* free and named dimensions of the symbols */
  size_t nsymdims;
  md_rng lazy;         /* sizes of other dimensions, given when first needed */
  unsigned nlazy;      /* sizes so given at this point */
  const expr *free_of; /* the first node whose size took one */
  md_dim *lazied;      /* their dimensions (roots) */
  size_t nlazied, caplazied;
  uint32_t lazy_fixed; /* when not 0, the size each is given */
  frame root;
  closed_val **closed; /* by local index */
  dep_table *deps;
  size_t ndeps;
  bool doubles;
  /* the last domain failure holds at every point: it is at a node whose
   * operands are numbers only, evaluated exactly (undefined) */
  bool everywhere;
  unsigned tries; /* points drawn by the last md_eval_sample */
  /* arithmetic done since md_eval_new, in entry operations (jet parts
   * times the work per entry), against BUDGET (MD_EVAL_WORK) and CAP
   * (what is left of a whole run's, md_eval_cap) */
  uint64_t work, budget, cap, cap_total;
  /* the words of exact numbers at this point (charge_mul, charge_cube):
   * past a quarter of the budget, the point goes on in doubles */
  uint64_t exact_work;
  char why[320];
};

static void frame_init(md_eval *ev, frame *f, frame *up, const expr *var,
                       const uint8_t *dep) {
  memset(f, 0, sizeof *f);
  f->up = up;
  f->order = up ? up->order + 1 : 0;
  f->var = var;
  f->dep = dep;
  f->memo = xcalloc(ev->n ? ev->n : 1, sizeof *f->memo);
  f->set = xcalloc(ev->n ? ev->n : 1, sizeof *f->set);
}

static void frame_forget(frame *f) {
  for (size_t i = 0; i < f->nset; i++) {
    md_val *v = f->memo[f->set[i]];
    md_val_clear(v);
    free(v);
    f->memo[f->set[i]] = NULL;
  }
  f->nset = 0;
}

static void frame_clear(frame *f) {
  frame_forget(f);
  md_val_clear(&f->var_val);
  free(f->memo);
  free(f->set);
}

static void forget_all(md_eval *ev) {
  frame_forget(&ev->root);
  for (size_t i = 0; i < ev->n; i++) {
    for (closed_val *c = ev->closed[i], *next; c; c = next) {
      next = c->next;
      md_val_clear(&c->v);
      free(c);
    }
    ev->closed[i] = NULL;
  }
}

/* Numbers the nodes under ROOTS in post-order (kids first), without
 * recursion. */
static void collect(md_eval *ev, expr *const *roots, size_t nroots) {
  ev->nids = md_ctx_nnodes(ev->ctx);
  ev->local = xcalloc(ev->nids, sizeof *ev->local);
  size_t cap = 64, capsym = 8;
  ev->node = xreallocarray(NULL, cap, sizeof *ev->node);
  ev->sym = xreallocarray(NULL, capsym, sizeof *ev->sym);
  struct item {
    const expr *e;
    uint32_t next;
  } *stack = xreallocarray(NULL, MD_MAX_DEPTH + 2, sizeof *stack);
  for (size_t r = 0; r < nroots; r++) {
    if (ev->local[roots[r]->id])
      continue;
    size_t sp = 0;
    stack[sp++] = (struct item){roots[r], 0};
    ev->local[roots[r]->id] = UINT32_MAX; /* on the stack */
    while (sp) {
      struct item *it = &stack[sp - 1];
      if (it->next < it->e->nkids) {
        const expr *k = it->e->kid[it->next++];
        if (!ev->local[k->id]) {
          ev->local[k->id] = UINT32_MAX;
          stack[sp++] = (struct item){k, 0};
        }
        continue;
      }
      const expr *e = it->e;
      sp--;
      if (ev->n == cap) {
        cap *= 2;
        ev->node = xreallocarray(ev->node, cap, sizeof *ev->node);
      }
      ev->node[ev->n] = e;
      ev->local[e->id] = (uint32_t)++ev->n;
      if (e->op == E_SYM) {
        if (ev->nsym == capsym) {
          capsym *= 2;
          ev->sym = xreallocarray(ev->sym, capsym, sizeof *ev->sym);
        }
        ev->sym[ev->nsym++] = e;
      }
    }
  }
  free(stack);
  ev->symidx = xreallocarray(NULL, ev->n ? ev->n : 1, sizeof *ev->symidx);
  for (size_t i = 0; i < ev->n; i++)
    ev->symidx[i] = UINT32_MAX;
  for (size_t s = 0; s < ev->nsym; s++)
    ev->symidx[ev->local[ev->sym[s]->id] - 1] = (uint32_t)s;
}

md_eval *md_eval_new(md_ctx *ctx, md_shapes *sh, expr *const *roots,
                     size_t nroots) {
  md_eval *ev = xcalloc(1, sizeof *ev);
  ev->ctx = ctx;
  ev->sh = sh;
  collect(ev, roots, nroots);
  ev->symval = xcalloc(ev->nsym ? ev->nsym : 1, sizeof *ev->symval);
  ev->bound = xcalloc(ev->nsym ? ev->nsym : 1, sizeof *ev->bound);
  ev->drawn = xcalloc(ev->nsym ? ev->nsym : 1, sizeof *ev->drawn);
  ev->has_drawn = xcalloc(ev->nsym ? ev->nsym : 1, sizeof *ev->has_drawn);
  ev->closed = xcalloc(ev->n ? ev->n : 1, sizeof *ev->closed);
  frame_init(ev, &ev->root, NULL, NULL, NULL);
  ev->budget = md_knob("MATDIFF_EVAL_WORK", 1024, MD_EVAL_WORK);
  ev->cap = UINT64_MAX;
  return ev;
}

static void unbind_all(md_eval *ev) {
  for (size_t s = 0; s < ev->nsym; s++) {
    if (ev->bound[s]) {
      md_val_clear(&ev->symval[s]);
      ev->bound[s] = false;
    }
    if (ev->has_drawn[s]) {
      md_val_clear(&ev->drawn[s]);
      ev->has_drawn[s] = false;
    }
  }
}

void md_eval_free(md_eval *ev) {
  if (!ev)
    return;
  forget_all(ev);
  frame_clear(&ev->root);
  unbind_all(ev);
  for (size_t i = 0; i < ev->ndeps; i++)
    free(ev->deps[i].dep);
  free(ev->deps);
  free(ev->closed);
  free(ev->symval);
  free(ev->bound);
  free(ev->drawn);
  free(ev->has_drawn);
  free(ev->sym);
  free(ev->symidx);
  free(ev->node);
  free(ev->local);
  free(ev->size);
  free(ev->symdims);
  free(ev->lazied);
  free(ev);
}

void md_eval_cap(md_eval *ev, uint64_t left, uint64_t total) {
  ev->cap = left;
  ev->cap_total = total;
}

uint64_t md_eval_work(const md_eval *ev) {
  return ev->work;
}

unsigned md_eval_tries(const md_eval *ev) {
  return ev->tries;
}

const char *md_eval_why(const md_eval *ev) {
  return ev->why;
}

/* ---- sizes ---- */

static void grow_sizes(md_eval *ev) {
  size_t nd = md_shapes_ndims(ev->sh);
  if (nd <= ev->nsize)
    return;
  ev->size = xreallocarray(ev->size, nd, sizeof *ev->size);
  memset(ev->size + ev->nsize, 0, (nd - ev->nsize) * sizeof *ev->size);
  ev->nsize = nd;
}

/* Sizes beyond this are "too large" (0). */
#define SIZE_CAP ((uint64_t)1 << 32)

uint64_t md_eval_size(md_eval *ev, md_dim d) {
  md_dim_info in = md_dim_get(ev->sh, d);
  switch (in.kind) {
  case MD_DIM_INT:
    return in.value > 0 && (uint64_t)in.value < SIZE_CAP ? (uint64_t)in.value
                                                         : 0;
  case MD_DIM_PRODUCT: {
    /* kept: a product's factors are shared (a tower of kron(t, t) has
     * 2^k of them), so each is computed once */
    grow_sizes(ev);
    if (ev->size[in.root])
      return ev->size[in.root] == UINT32_MAX ? 0 : ev->size[in.root];
    uint64_t a = md_eval_size(ev, in.a), b = md_eval_size(ev, in.b);
    uint64_t v = a && b && a < (SIZE_CAP - 1) / b ? a * b : 0;
    ev->size[in.root] = v ? (uint32_t)v : UINT32_MAX;
    return v;
  }
  case MD_DIM_NAME:
  case MD_DIM_FREE:
    break;
  }
  grow_sizes(ev);
  if (!ev->size[in.root]) {
    ev->size[in.root] =
        ev->lazy_fixed ? ev->lazy_fixed : 2 + md_rng_below(&ev->lazy, 4);
    ev->nlazy++;
    if (ev->nlazied == ev->caplazied) {
      ev->caplazied = ev->caplazied ? 2 * ev->caplazied : 8;
      ev->lazied = xreallocarray(ev->lazied, ev->caplazied, sizeof *ev->lazied);
    }
    ev->lazied[ev->nlazied++] = in.root;
  }
  return ev->size[in.root];
}

void md_eval_set_size(md_eval *ev, md_dim d, uint32_t size) {
  grow_sizes(ev);
  /* the products kept may have D as a factor */
  for (size_t i = 0; i < ev->nsize; i++)
    if (md_dim_get(ev->sh, (md_dim)i).kind == MD_DIM_PRODUCT)
      ev->size[i] = 0;
  ev->size[md_dim_get(ev->sh, d).root] = size;
  forget_all(ev);
}

/* Adds the named and free roots under D to ev->symdims, the integers to
 * INTS: a walk over the DAG of D's factors, each product once (SEEN, by
 * dimension; a tower of kron(t, t) has 2^k factors). */
static void note_dims(md_eval *ev, md_dim d, long *ints, size_t *nints,
                      uint8_t *seen) {
  md_dim small[64], *stack = small;
  size_t n = 0, cap = 64;
  stack[n++] = d;
  while (n) {
    md_dim_info in = md_dim_get(ev->sh, stack[--n]);
    switch (in.kind) {
    case MD_DIM_INT:
      for (size_t i = 0; i < *nints; i++)
        if (ints[i] == in.value)
          goto next;
      if (*nints < 16)
        ints[(*nints)++] = in.value;
      break;
    case MD_DIM_PRODUCT:
      if (seen[in.root])
        break;
      seen[in.root] = 1;
      if (n + 2 > cap) {
        cap *= 2;
        stack = stack == small
                    ? memcpy(xmalloc(cap * sizeof *stack), small, sizeof small)
                    : xreallocarray(stack, cap, sizeof *stack);
      }
      stack[n++] = in.b;
      stack[n++] = in.a;
      break;
    case MD_DIM_NAME:
    case MD_DIM_FREE:
      for (size_t i = 0; i < ev->nsymdims; i++)
        if (ev->symdims[i] == in.root)
          goto next;
      ev->symdims =
          xreallocarray(ev->symdims, ev->nsymdims + 1, sizeof *ev->symdims);
      ev->symdims[ev->nsymdims++] = in.root;
      break;
    }
  next:;
  }
  if (stack != small)
    free(stack);
}

void md_eval_draw_sizes(md_eval *ev, md_rng *rng) {
  forget_all(ev);
  grow_sizes(ev);
  memset(ev->size, 0, ev->nsize * sizeof *ev->size);
  md_rng_seed(&ev->lazy, md_rng_next(rng));
  ev->nlazy = 0;
  ev->nlazied = 0;
  ev->free_of = NULL;
  ev->nsymdims = 0;
  long ints[16];
  size_t nints = 0;
  uint8_t *seen = xcalloc(ev->nsize ? ev->nsize : 1, 1);
  for (size_t s = 0; s < ev->nsym; s++) {
    md_shape sh = md_shape_of(ev->sh, ev->sym[s]);
    note_dims(ev, sh.r, ints, &nints, seen);
    note_dims(ev, sh.c, ints, &nints, seen);
  }
  free(seen);
  /* The pool: 2..5, or up to 9 for many dimensions, without the
   * integer sizes in use as long as enough remain. */
  size_t taken = 0;
  for (size_t i = 0; i < nints; i++)
    taken += ints[i] >= 2 && ints[i] <= 9;
  unsigned top = 5;
  while (top < 9 && top - 1 < ev->nsymdims + taken)
    top++;
  /* ... but 2..3 or 2..4 for a large DAG: a point costs about its nodes
   * times n^3 (a product), n^5 with a derivative (by an n×n matrix: n^2
   * directions), times 16 (jets, the points, the budget's other uses):
   * at 2..5, 300 nested inverses or a product of 200 factors used the
   * budget up (an error) where at 2..3 they take a fraction of it (a
   * product of 300 factors has 301 dimensions: distinct they cannot be
   * anyway).  Not 2 alone: some identities hold at 2×2 only (A^2 - tr(A) A +
   * det(A) I = 0). */
  bool diff = false;
  for (size_t i = 0; i < ev->n; i++)
    diff |= ev->node[i]->op == E_DIFF || ev->node[i]->op == E_HESS;
  for (;;) {
    uint64_t t3 = (uint64_t)top * top * top, cost = ev->n * t3 * 16;
    if (top <= 3 || (diff ? cost * top * top : cost) <= ev->budget)
      break;
    top--;
  }
  unsigned pool[16], np = 0;
  for (unsigned v = 2; v <= top; v++) {
    bool used = false;
    for (size_t i = 0; i < nints; i++)
      used |= ints[i] == (long)v;
    if (!used)
      pool[np++] = v;
  }
  if (np < ev->nsymdims || np == 0) {
    np = 0;
    for (unsigned v = 2; v <= top; v++)
      pool[np++] = v;
  }
  for (unsigned i = np; i-- > 1;) {
    unsigned j = md_rng_below(rng, i + 1), t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  for (size_t i = 0; i < ev->nsymdims; i++)
    ev->size[ev->symdims[i]] = i < np ? pool[i] : pool[md_rng_below(rng, np)];
}

void md_eval_format_sizes(md_eval *ev, strbuf *out) {
  const char *sep = "";
  char buf[128];
  for (size_t i = 0; i < ev->nsymdims; i++) {
    if (md_dim_get(ev->sh, ev->symdims[i]).kind != MD_DIM_NAME)
      continue;
    md_dim_format(ev->sh, ev->symdims[i], buf, sizeof buf);
    sb_printf(out, "%s%s = %llu", sep, buf,
              (unsigned long long)md_eval_size(ev, ev->symdims[i]));
    sep = ", ";
  }
  for (size_t s = 0; s < ev->nsym; s++) {
    md_shape sh = md_shape_of(ev->sh, ev->sym[s]);
    md_dim_info r = md_dim_get(ev->sh, sh.r), c = md_dim_get(ev->sh, sh.c);
    bool named = (r.kind == MD_DIM_INT || r.kind == MD_DIM_NAME) &&
                 (c.kind == MD_DIM_INT || c.kind == MD_DIM_NAME);
    if (named)
      continue;
    sb_printf(out, "%s%s is %llu×%llu", sep, ev->sym[s]->u.name,
              (unsigned long long)md_eval_size(ev, sh.r),
              (unsigned long long)md_eval_size(ev, sh.c));
    sep = ", ";
  }
}

/* ---- symbol values ---- */

static void draw_num(md_rng *rng, md_num *x, bool positive, unsigned shrink) {
  long p = 1 + (long)md_rng_below(rng, 5);
  if (!positive && md_rng_below(rng, 2))
    p = -p;
  md_num_set_si(x, p, (1 + md_rng_below(rng, 3)) << shrink);
}

static bool charge(md_eval *ev, uint64_t units);
static md_status over_budget(md_eval *ev, const expr *e);

static md_status draw_sym(md_eval *ev, size_t s, md_rng *rng, bool positive) {
  const expr *sym = ev->sym[s];
  md_shape sh = md_shape_of(ev->sh, sym);
  uint64_t r = md_eval_size(ev, sh.r), c = md_eval_size(ev, sh.c);
  if (!r || !c || !md_val_fits(r, c, 0)) {
    snprintf(ev->why, sizeof ev->why, "%s is too large to evaluate",
             sym->u.name);
    return MD_FAIL;
  }
  /* each entry drawn counts as an operation: a symbol of a million
   * entries drawn at each of 24 points took seconds before any of the
   * arithmetic was charged */
  if (!charge(ev, r * c))
    return over_budget(ev, sym);
  md_val *v = &ev->symval[s];
  md_val_init(v, (uint32_t)r, (uint32_t)c, 0);
  switch (md_shape_sym_kind(ev->sh, sym)) {
  case K_SYMMETRIC:
    for (uint32_t i = 0; i < r; i++)
      for (uint32_t j = i; j < c; j++) {
        draw_num(rng, md_val_at(v, i, j, 0), positive, ev->shrink);
        md_num_set(md_val_at(v, j, i, 0), md_val_at(v, i, j, 0));
      }
    break;
  case K_DIAGONAL:
    for (uint32_t i = 0; i < r; i++)
      draw_num(rng, md_val_at(v, i, i, 0), positive, ev->shrink);
    break;
  case K_SPD: {
    /* B B^T + n I: positive definite, and exact */
    md_val b, bt, bbt, id;
    md_val_init(&b, (uint32_t)r, (uint32_t)c, 0);
    for (size_t i = 0; i < r * c; i++)
      draw_num(rng, &b.x[i], positive, ev->shrink);
    md_val_trans(&bt, &b);
    md_val_mul(&bbt, &b, &bt);
    md_val_identity(&id, (uint32_t)r);
    for (uint32_t i = 0; i < r; i++)
      md_num_set_si(md_val_at(&id, i, i, 0), (long)r, 1);
    md_val_clear(v);
    md_val_add(v, &bbt, &id);
    md_val_clear(&b);
    md_val_clear(&bt);
    md_val_clear(&bbt);
    md_val_clear(&id);
    break;
  }
  default:
    for (size_t i = 0; i < r * c; i++)
      draw_num(rng, &v->x[i], positive, ev->shrink);
    break;
  }
  ev->bound[s] = true;
  return MD_OK;
}

md_status md_eval_draw(md_eval *ev, md_rng *rng, bool positive) {
  forget_all(ev);
  unbind_all(ev);
  ev->doubles = false;
  ev->exact_work = 0;
  for (size_t s = 0; s < ev->nsym; s++) {
    md_status st = draw_sym(ev, s, rng, positive);
    if (st != MD_OK)
      return st;
  }
  return MD_OK;
}

bool md_eval_bind(md_eval *ev, const char *name, const md_val *v) {
  for (size_t s = 0; s < ev->nsym; s++) {
    if (strcmp(ev->sym[s]->u.name, name) != 0)
      continue;
    forget_all(ev);
    if (ev->bound[s])
      md_val_clear(&ev->symval[s]);
    if (ev->has_drawn[s])
      md_val_clear(&ev->drawn[s]);
    ev->has_drawn[s] = false;
    md_val_init_copy(&ev->symval[s], v);
    if (ev->doubles) {
      md_val_init_copy(&ev->drawn[s], v);
      ev->has_drawn[s] = true;
      md_val_to_double(&ev->symval[s]);
    }
    ev->bound[s] = true;
    return true;
  }
  return false;
}

void md_eval_use_doubles(md_eval *ev) {
  forget_all(ev);
  ev->doubles = true;
  for (size_t s = 0; s < ev->nsym; s++)
    if (ev->bound[s]) {
      /* the copy and the conversion count as the drawing does (past the
       * budget, the next operation says so): symbols of a million
       * entries, drawn and then copied at each point, took as long
       * again as the drawing that was charged (a fuzz finding,
       * regress/check-symbols-copied-uncharged: 5.7 s in the CLI) */
      charge(ev, (uint64_t)ev->symval[s].r * ev->symval[s].c);
      if (!ev->has_drawn[s]) {
        md_val_init_copy(&ev->drawn[s], &ev->symval[s]);
        ev->has_drawn[s] = true;
      }
      md_val_to_double(&ev->symval[s]);
    }
}

/* V in rows, [1, -2/3; 5, 1/2], [1; 2] for a vector, the number alone
 * for 1×1; past MAX_SHOWN rows or columns, the first CUT_SHOWN of them,
 * then "...".  When one line would pass 78 columns, a row a line, its
 * columns aligned, the lines after the first indented by PAD (the
 * report indents them all by 2 more). */
static void format_value(const md_val *v, size_t pad, strbuf *out) {
  enum { MAX_SHOWN = 8, CUT_SHOWN = 4, WIDTH = 78, ENTRY = 96 };
  if (v->r == 1 && v->c == 1) {
    char buf[ENTRY];
    md_num_format(&v->x[0], buf, sizeof buf);
    sb_puts(out, buf);
    return;
  }
  uint32_t r = v->r <= MAX_SHOWN ? v->r : CUT_SHOWN;
  uint32_t c = v->c <= MAX_SHOWN ? v->c : CUT_SHOWN;
  char(*text)[ENTRY] = xcalloc((size_t)r * c, sizeof *text);
  size_t width[MAX_SHOWN] = {0}, line = pad + 2;
  for (uint32_t i = 0; i < r; i++)
    for (uint32_t j = 0; j < c; j++) {
      char *t = text[(size_t)i * c + j];
      md_num_format(md_val_at(v, i, j, 0), t, ENTRY);
      size_t n = strlen(t);
      width[j] = n > width[j] ? n : width[j];
      line += n + 2;
    }
  bool rows = line + (r < v->r ? 5 : 0) + (c < v->c ? 5 * r : 0) > WIDTH;
  sb_putc(out, '[');
  for (uint32_t i = 0; i < r; i++) {
    if (i)
      sb_printf(out, rows ? ";\n%*s" : "; ", rows ? (int)pad + 1 : 0, "");
    for (uint32_t j = 0; j < c; j++)
      sb_printf(out, "%s%*s", j ? ", " : "", rows ? (int)width[j] : 0,
                text[(size_t)i * c + j]);
    if (c < v->c)
      sb_puts(out, ", ...");
  }
  if (r < v->r)
    sb_printf(out, rows ? ";\n%*s..." : "; ...", rows ? (int)pad + 1 : 0, "");
  sb_putc(out, ']');
  if (r < v->r || c < v->c)
    sb_printf(out, "  # %u×%u, cut to %u×%u", v->r, v->c, r, c);
  free(text);
}

void md_eval_format_values(md_eval *ev, const char *indent, strbuf *out) {
  enum { MAX_SYMBOLS = 16 };
  size_t shown = 0, left = 0;
  for (size_t s = 0; s < ev->nsym; s++) {
    if (!ev->bound[s])
      continue;
    if (shown == MAX_SYMBOLS) {
      left++;
      continue;
    }
    size_t len = out->len;
    sb_printf(out, "%s%s = ", indent, ev->sym[s]->u.name);
    format_value(ev->has_drawn[s] ? &ev->drawn[s] : &ev->symval[s],
                 out->len - len, out);
    sb_putc(out, '\n');
    shown++;
  }
  if (left)
    sb_printf(out, "%s... and %zu more\n", indent, left);
}

/* ---- evaluation ---- */

static uint32_t lidx(md_eval *ev, const expr *e) {
  return e->id < ev->nids ? ev->local[e->id] - 1 : UINT32_MAX;
}

static bool is_closed(const expr *e) {
  return e->flags & EF_CLOSED;
}

/* The text of E for a message, cut to fit. */
static void describe(md_eval *ev, const expr *e, char *buf, size_t size) {
  char *t = md_print_text_brief(ev->ctx, e, MD_BRIEF_MAX);
  if (strlen(t) > 60)
    snprintf(buf, size, "%.57s...", t);
  else
    snprintf(buf, size, "%s", t);
  free(t);
}

const char *md_eval_free_size(md_eval *ev) {
  if (!ev->nlazy)
    return NULL;
  if (!ev->free_of) { /* (a size drawn, no node's: none to name) */
    snprintf(ev->why, sizeof ev->why,
             "nothing in the identity determines a size it depends on");
    return ev->why;
  }
  char t[80];
  describe(ev, ev->free_of, t, sizeof t);
  snprintf(ev->why, sizeof ev->why,
           "nothing in the identity determines the size of %s", t);
  return ev->why;
}

static md_status fail(md_eval *ev, md_status st, const expr *e,
                      const char *what) {
  char t[80];
  describe(ev, e, t, sizeof t);
  snprintf(ev->why, sizeof ev->why, "%s in %s", what, t);
  return st;
}

/* Counts UNITS entry operations against the budget; false past it (the
 * caller fails: an identity whose evaluation would take minutes is an
 * error, not a wait). */
static bool charge(md_eval *ev, uint64_t units) {
  ev->work += units;
  return ev->work <= ev->budget && ev->work <= ev->cap;
}

static md_status over_budget(md_eval *ev, const expr *e) {
  if (ev->cap < ev->budget) { /* the lower limit was passed */
    char what[128];
    snprintf(what, sizeof what,
             "too much arithmetic (MATDIFF_CHECK_WORK: the run's %llu "
             "operations on entries are spent)",
             (unsigned long long)ev->cap_total);
    return fail(ev, MD_FAIL, e, what);
  }
  if (ev->budget == MD_EVAL_WORK)
    return fail(ev, MD_FAIL, e,
                "too much arithmetic (over 2^22 operations on entries)");
  char what[96];
  snprintf(what, sizeof what,
           "too much arithmetic (over %llu operations on entries)",
           (unsigned long long)ev->budget);
  return fail(ev, MD_FAIL, e, what);
}

/* A closed term whose size nothing in the identity determines, as in
 * tr(I) = 3. */
static md_status unsized(md_eval *ev, const expr *e) {
  char t[80];
  describe(ev, e, t, sizeof t);
  snprintf(ev->why, sizeof ev->why,
           "nothing in the identity determines the size of %s", t);
  return MD_FAIL;
}

/* Why E is undefined at this point. */
static md_status undefined(md_eval *ev, const expr *e) {
  const char *what = "undefined";
  switch ((expr_op)e->op) {
  case E_INV:
    what = "a singular matrix";
    break;
  case E_POW:
    what = "a singular matrix, or a power of 0 or of a negative number";
    break;
  case E_DIV:
  case E_HDIV:
    what = "a division by zero";
    break;
  case E_EPOW:
    what = "a power of zero or of a negative number";
    break;
  case E_CALL:
    switch (e->u.fn) {
    case FN_LOG:
      what = "log of a number <= 0";
      break;
    case FN_SQRT:
      what = "sqrt of a negative number (or its derivative at 0)";
      break;
    case FN_LOGDET:
      what = "logdet of a singular matrix";
      break;
    case FN_ABS:
    case FN_SIGN:
    case FN_RELU:
    case FN_NORM1:
    case FN_NORM2:
      what = "a derivative at a kink (0)";
      break;
    case FN_STEP:
      what = "a derivative at the jump of step (0)";
      break;
    case FN_DET:
      what = "the derivative of det at a singular matrix";
      break;
    default:
      break;
    }
    break;
  default:
    break;
  }
  /* log(-2), X ./ 0: the operands that decide are numbers only (of a
   * division, the divisor), the same at every point (in exact arithmetic:
   * in doubles, 1 / 1e-400 fails where exact numbers would not), so
   * drawing again cannot help.  Of an element-wise operation, operands
   * built from I, ones and numbers element-wise (EF_UNIFORM) will do:
   * X ./ (I ./ I) divides by 0/0 off the diagonal, and a size check
   * draws (2 or more, or a fixed integer) has one wherever it had one
   * here.  Not of inv, det or a matrix power: inv(ones - 2 I) is
   * singular at size 2 only. */
  uint32_t first = e->op == E_DIV || e->op == E_HDIV ? 1 : 0;
  bool elementwise =
      e->op == E_DIV || e->op == E_HDIV || e->op == E_EPOW ||
      (e->op == E_CALL && e->u.fn >= FN_EXP && e->u.fn <= FN_SOFTPLUS);
  unsigned decides = elementwise ? EF_CONST | EF_UNIFORM : EF_CONST;
  ev->everywhere = !ev->doubles && e->nkids > first;
  for (uint32_t i = first; i < e->nkids && ev->everywhere; i++)
    ev->everywhere = (e->kid[i]->flags & decides) != 0;
  return fail(ev, MD_DOMAIN, e, what);
}

/* The sizes of E's inferred shape; 0 where too large. */
static void node_size(md_eval *ev, const expr *e, uint64_t *r, uint64_t *c) {
  md_shape s = md_shape_of(ev->sh, e);
  unsigned n = ev->nlazy;
  *r = md_eval_size(ev, s.r);
  *c = md_eval_size(ev, s.c);
  if (ev->nlazy != n && !ev->free_of)
    ev->free_of = e;
}

/* What the scheme of closed E fixes about its size: integers (1 for a
 * scalar) and squareness. */
static void refine(md_eval *ev, const expr *e, uint64_t *r, uint64_t *c) {
  if (!md_shape_known(ev->sh, e))
    return;
  md_shape s = md_shape_of(ev->sh, e);
  md_dim_info a = md_dim_get(ev->sh, s.r), b = md_dim_get(ev->sh, s.c);
  if (a.kind == MD_DIM_INT)
    *r = (uint64_t)a.value;
  if (b.kind == MD_DIM_INT)
    *c = (uint64_t)b.value;
  if (a.root == b.root) {
    if (!*r)
      *r = *c;
    if (!*c)
      *c = *r;
  }
}

static bool scheme_scalar(md_eval *ev, const expr *e) {
  uint64_t r = 0, c = 0;
  refine(ev, e, &r, &c);
  return r == 1 && c == 1;
}

static md_status eval(md_eval *ev, frame *F, const expr *e, uint64_t hr,
                      uint64_t hc, const md_val **out);
static md_status compute(md_eval *ev, frame *F, const expr *e, uint64_t pr,
                         uint64_t pc, md_val *out);

/* A closed term at the size its place gives it, computed once per size
 * in the root frame. */
static md_status eval_closed(md_eval *ev, const expr *e, uint64_t r, uint64_t c,
                             const md_val **out) {
  uint32_t li = lidx(ev, e);
  refine(ev, e, &r, &c);
  for (closed_val *v = ev->closed[li]; r && c && v; v = v->next)
    if (v->r == r && v->c == c) {
      *out = &v->v;
      return MD_OK;
    }
  closed_val *cv = xcalloc(1, sizeof *cv);
  md_status st = compute(ev, &ev->root, e, r, c, &cv->v);
  if (st != MD_OK) {
    free(cv);
    return st;
  }
  cv->r = cv->v.r;
  cv->c = cv->v.c;
  cv->next = ev->closed[li];
  ev->closed[li] = cv;
  *out = &cv->v;
  return MD_OK;
}

/* The entry operations that computed V, the value of E at jet ORDER:
 * one per entry and operand (products charge theirs in mul_factors; an
 * inverse, det, logdet and a matrix power theirs in charge_cube, before
 * they start). */
static uint64_t node_work(const expr *e, const md_val *v, unsigned order) {
  return (((uint64_t)v->r * v->c) << order) * (e->nkids + 1);
}

static uint64_t bit_length(uint64_t n) {
  uint64_t b = 0;
  for (; n; n >>= 1)
    b++;
  return b;
}

/* Charges MULT eliminations or products of the square matrix A (of E)
 * before they are done: n^3 entry operations each, and in exact numbers
 * that times the words of the numbers they make.  An entry of an
 * elimination grows to the bits of a minor, about n (b + log2 n) for
 * entries of b bits, and of the power A^k to about k b: a 168×168
 * inverse of small integers passed the budget only once done, after
 * 20 s of GMP's gcds (a fuzzer's finding).  GROWTH is that factor, n
 * or k.  The words go to the point's exact_work, the plain operations to
 * the budget: past a quarter of the budget in words, the point is redone
 * in doubles (MD_HUGE); past the budget in operations, an error.  (The
 * words were charged to the budget itself: 30 nested inverses, whose
 * entries grow by a factor at each level, used it up in exact numbers
 * and could not be verified at all.) */
static md_status charge_cube(md_eval *ev, const expr *e, const md_val *a,
                             uint64_t mult, uint64_t growth);

/* A^K by squaring: two products per bit of |K|, and an inverse first
 * when K < 0. */
static md_status power_charge(md_eval *ev, const expr *e, const md_val *a,
                              mpq_srcptr k) {
  size_t bits = mpz_sizeinbase(mpq_numref(k), 2);
  uint64_t growth = UINT32_MAX;
  if (mpz_cmpabs_ui(mpq_numref(k), UINT32_MAX) < 0)
    growth = mpz_get_ui(mpq_numref(k)); /* |k| */
  md_status st = MD_OK;
  if (mpq_sgn(k) < 0)
    st = charge_cube(ev, e, a, 1, a->r);
  if (st == MD_OK)
    st = charge_cube(ev, e, a, 2 * bits, growth);
  return st;
}

static md_status charge_cube(md_eval *ev, const expr *e, const md_val *a,
                             uint64_t mult, uint64_t growth) {
  uint64_t n = a->r, ops = (n * n * n << a->order) * mult;
  if (ev->work + ops > ev->budget || ev->work + ops > ev->cap)
    return over_budget(ev, e); /* in doubles too */
  if (!ev->doubles) {
    uint64_t bits = (md_val_max_bits(a) + bit_length(n)) * growth;
    if (bits > MD_EXACT_BITS)
      bits = MD_EXACT_BITS; /* the numbers stop there (MD_HUGE) */
    uint64_t words = 1 + bits / 64;
    ev->exact_work += ops * words;
    if (ev->exact_work > ev->budget / 4)
      return MD_HUGE;
  }
  ev->work += ops; /* within the budget: tested above */
  return MD_OK;
}

static md_status eval(md_eval *ev, frame *F, const expr *e, uint64_t hr,
                      uint64_t hc, const md_val **out) {
  uint32_t li = lidx(ev, e);
  if (li == UINT32_MAX)
    return fail(ev, MD_FAIL, e, "internal error: a node not under the roots");
  if (is_closed(e))
    return eval_closed(ev, e, hr, hc, out);
  while (F->var && !F->dep[li])
    F = F->up;
  if (F->var && e == F->var) {
    *out = &F->var_val;
    return MD_OK;
  }
  if (F->memo[li]) {
    *out = F->memo[li];
    return MD_OK;
  }
  if (e->op == E_SYM) {
    uint32_t s = ev->symidx[li];
    if (!ev->bound[s])
      return fail(ev, MD_FAIL, e, "no value for the symbol");
    *out = &ev->symval[s];
    return MD_OK;
  }
  uint64_t r, c;
  node_size(ev, e, &r, &c);
  if (!r || !c || !md_val_fits(r, c, F->order))
    return fail(ev, MD_FAIL, e, "too large to evaluate");
  md_val *v = xmalloc(sizeof *v);
  md_status st = compute(ev, F, e, r, c, v);
  if (st == MD_OK && !charge(ev, node_work(e, v, F->order))) {
    md_val_clear(v);
    st = over_budget(ev, e);
  }
  if (st == MD_OK && (v->r != r || v->c != c)) {
    md_val_clear(v);
    st = fail(ev, MD_FAIL, e, "internal error: a value of the wrong size");
  }
  if (st == MD_OK && !ev->doubles && md_val_too_big(v)) {
    md_val_clear(v);
    st = fail(ev, MD_HUGE, e, "exact numbers too large");
  }
  if (st == MD_OK && md_val_not_finite(v)) {
    md_val_clear(v);
    st = fail(ev, MD_DOMAIN, e, "a value beyond double precision");
  }
  if (st != MD_OK) {
    free(v);
    return st;
  }
  F->memo[li] = v;
  F->set[F->nset++] = li;
  *out = v;
  return MD_OK;
}

/* The dependency table of VAR: which nodes depend on it. */
static const uint8_t *deps_of(md_eval *ev, const expr *var) {
  for (size_t i = 0; i < ev->ndeps; i++)
    if (ev->deps[i].var == var)
      return ev->deps[i].dep;
  uint8_t *dep = xcalloc(ev->n ? ev->n : 1, 1);
  /* kids come before parents */
  for (size_t i = 0; i < ev->n; i++) {
    const expr *e = ev->node[i];
    dep[i] = e == var;
    for (size_t k = 0; !dep[i] && k < e->nkids; k++)
      dep[i] = dep[lidx(ev, e->kid[k])];
  }
  ev->deps = xreallocarray(ev->deps, ev->ndeps + 1, sizeof *ev->deps);
  ev->deps[ev->ndeps++] = (dep_table){var, dep};
  return dep;
}

/* The value of X in F, raised by one order, plus eps_{order} at entry
 * T of vec(X) (column-major). */
static void perturb(frame *G, const md_val *x, size_t t) {
  md_val_init_order(&G->var_val, x, G->order);
  uint32_t i = (uint32_t)(t % x->r), j = (uint32_t)(t / x->r);
  md_num_set_si(md_val_at(&G->var_val, i, j, 1u << (G->order - 1)), 1, 1);
}

/* Projects column COL of OUT, read as vec of an R×R gradient G, onto the
 * structure of KIND (SPEC 3 and fine point 11): (G + G^T)/2 for a
 * symmetric variable, G .* I for a diagonal one, so that <grad, dS> is
 * the derivative along every dS of that structure. */
static void project(md_val *out, uint32_t col, uint32_t r, md_kind kind,
                    bool isvec) {
  if (kind != K_SYMMETRIC && kind != K_SPD && kind != K_DIAGONAL)
    return;
  md_num h;
  md_num_init(&h);
  md_num_set_si(&h, 1, 2);
  for (uint32_t i = 0; i < r; i++)
    for (uint32_t j = i + 1; j < r; j++)
      for (unsigned s = 0; s < (1u << out->order); s++) {
        md_num *a =
            isvec ? md_val_at(out, i + j * r, col, s) : md_val_at(out, i, j, s);
        md_num *b =
            isvec ? md_val_at(out, j + i * r, col, s) : md_val_at(out, j, i, s);
        if (kind == K_DIAGONAL) {
          md_num_set_si(a, 0, 1);
          md_num_set_si(b, 0, 1);
        } else {
          md_num_add(a, a, b);
          md_num_mul(a, a, &h);
          md_num_set(b, a);
        }
      }
  md_num_clear(&h);
}

/* d/dX f, d/dvec(X) f: one evaluation of f per entry of X. */
static md_status eval_diff(md_eval *ev, frame *F, const expr *e, uint64_t pr,
                           uint64_t pc, md_val *out) {
  const expr *f = e->kid[0], *w = e->kid[1];
  const expr *x = w->op == E_SYM ? w : w->kid[0];
  bool isvec = w != x;
  unsigned k = F->order;
  if (is_closed(f)) {
    md_val_init(out, (uint32_t)pr, (uint32_t)pc, k);
    return MD_OK;
  }
  if (k + 1 > MD_MAX_ORDER)
    return fail(ev, MD_FAIL, e, "derivatives nested too deeply to evaluate");
  const md_val *xv;
  md_status st = eval(ev, F, x, 0, 0, &xv);
  if (st != MD_OK)
    return st;
  uint64_t fr, fc;
  node_size(ev, f, &fr, &fc);
  size_t nx = (size_t)xv->r * xv->c;
  bool fs = fr == 1 && fc == 1;
  /* SPEC 3, denominator layout */
  uint64_t wr, wc;
  if (fs)
    wr = isvec ? nx : xv->r, wc = isvec ? 1 : xv->c;
  else if (nx == 1)
    wr = fc == 1 ? 1 : fr, wc = fc == 1 ? fr : fc;
  else if (fc == 1 && (xv->c == 1 || isvec))
    wr = nx, wc = fr;
  else
    return fail(ev, MD_FAIL, e, "a derivative that is a tensor");
  if (wr != pr || wc != pc)
    return fail(ev, MD_FAIL, e, "internal error: derivative of the wrong size");
  md_val_init(out, (uint32_t)pr, (uint32_t)pc, k);
  frame G;
  frame_init(ev, &G, F, x, deps_of(ev, x));
  unsigned eps = 1u << k;
  for (size_t t = 0; st == MD_OK && t < nx; t++) {
    perturb(&G, xv, t);
    const md_val *fv;
    st = eval(ev, &G, f, fr, fc, &fv);
    if (st == MD_OK && fv->order > k) {
      for (size_t u = 0; u < (size_t)fr * fc; u++) {
        uint32_t fi = (uint32_t)(u / fc), fj = (uint32_t)(u % fc);
        uint32_t di, dj;
        if (fs)
          di = isvec ? (uint32_t)t : (uint32_t)(t % xv->r),
          dj = isvec ? 0 : (uint32_t)(t / xv->r);
        else if (nx == 1)
          di = fc == 1 ? 0 : fi, dj = fc == 1 ? fi : fj;
        else
          di = (uint32_t)t, dj = fi;
        for (unsigned s = 0; s < eps; s++)
          md_num_set(md_val_at(out, di, dj, s), md_val_at(fv, fi, fj, s | eps));
      }
    }
    frame_forget(&G);
    md_val_clear(&G.var_val);
  }
  frame_clear(&G);
  if (st == MD_OK && nx > 1 && xv->r == xv->c && (fs || isvec)) {
    md_kind kind = md_shape_sym_kind(ev->sh, x);
    for (uint32_t col = 0; col < out->c && (isvec || col == 0); col++)
      project(out, col, xv->r, kind, isvec);
  }
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

/* hess(f, x): the eps_k eps_{k+1} part of f(x + eps_k e_i + eps_{k+1} e_j),
 * for j >= i (the Hessian is symmetric). */
static md_status eval_hess(md_eval *ev, frame *F, const expr *e, uint64_t pr,
                           uint64_t pc, md_val *out) {
  const expr *f = e->kid[0], *w = e->kid[1];
  const expr *x = w->op == E_SYM ? w : w->kid[0];
  unsigned k = F->order;
  if (is_closed(f)) {
    md_val_init(out, (uint32_t)pr, (uint32_t)pc, k);
    return MD_OK;
  }
  if (k + 2 > MD_MAX_ORDER)
    return fail(ev, MD_FAIL, e, "derivatives nested too deeply to evaluate");
  const md_val *xv;
  md_status st = eval(ev, F, x, 0, 0, &xv);
  if (st != MD_OK)
    return st;
  size_t nx = (size_t)xv->r * xv->c;
  if (nx != pr || nx != pc)
    return fail(ev, MD_FAIL, e, "internal error: Hessian of the wrong size");
  md_val_init(out, (uint32_t)pr, (uint32_t)pc, k);
  const uint8_t *dep = deps_of(ev, x);
  frame G1, G2;
  frame_init(ev, &G1, F, x, dep);
  frame_init(ev, &G2, &G1, x, dep);
  unsigned both = (1u << k) | (1u << (k + 1));
  for (size_t i = 0; st == MD_OK && i < nx; i++) {
    perturb(&G1, xv, i);
    for (size_t j = i; st == MD_OK && j < nx; j++) {
      perturb(&G2, &G1.var_val, j);
      const md_val *fv;
      st = eval(ev, &G2, f, 1, 1, &fv);
      if (st == MD_OK && fv->order == k + 2)
        for (unsigned s = 0; s < (1u << k); s++) {
          md_num_set(md_val_at(out, (uint32_t)i, (uint32_t)j, s),
                     md_val_at(fv, 0, 0, s | both));
          md_num_set(md_val_at(out, (uint32_t)j, (uint32_t)i, s),
                     md_val_at(fv, 0, 0, s | both));
        }
      frame_forget(&G2);
      md_val_clear(&G2.var_val);
    }
    frame_forget(&G1);
    md_val_clear(&G1.var_val);
  }
  frame_clear(&G2);
  frame_clear(&G1);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

/* A product's factors: those with their own size first, then closed ones
 * sized by their neighbours in their 1×1 run (RUN, product_runs). */
static md_status eval_product_kids(md_eval *ev, frame *F, const expr *e,
                                   const size_t *run, uint64_t pr, uint64_t pc,
                                   const md_val **v) {
  size_t n = e->nkids;
  md_status st = MD_OK;
  for (size_t i = 0; st == MD_OK && i < n; i++) {
    v[i] = NULL;
    if (!is_closed(e->kid[i]))
      st = eval(ev, F, e->kid[i], 0, 0, &v[i]);
    else if (scheme_scalar(ev, e->kid[i]))
      st = eval(ev, F, e->kid[i], 1, 1, &v[i]);
  }
  if (st != MD_OK)
    return st;
  size_t *chain = xreallocarray(NULL, n, sizeof *chain), m = 0;
  bool unsized_kid = false;
  for (size_t i = 0; i < n; i++)
    if (!v[i] || v[i]->r != 1 || v[i]->c != 1) {
      chain[m++] = i;
      unsized_kid |= !v[i];
    }
  if (!unsized_kid) {
    free(chain);
    return MD_OK;
  }
  /* A closed factor is sized by its neighbours in its own 1×1 run (RUN,
   * as shape inference reads the product), or at the top, a run inside
   * scaling.  In 2 I y^T I x (I + ones ones^T) the last factor follows
   * I, not x: sized by x, it was 1×1, and check called a true identity
   * FALSE.  LEVEL[i]: the start of the innermost run that holds factor
   * i, or n at the top, where the product's own size bounds the chain
   * (in a run, 1). */
  size_t *level = xreallocarray(NULL, n, sizeof *level);
  size_t *open = xreallocarray(NULL, n, sizeof *open), nopen = 0;
  for (size_t i = 0; i < n; i++) {
    while (nopen && run[open[nopen - 1]] <= i)
      nopen--;
    if (run[i])
      open[nopen++] = i;
    level[i] = nopen ? open[nopen - 1] : n;
  }
  free(open);
  /* A factor is sized once everything on both sides of it is known; only
   * when none is, by the one next to it (in ones^T I y ones the last ones
   * follows a 1×1 product, not y: sized by y's columns before ones^T was
   * known, it was 1×1) */
  for (bool progress = true, guess = false; st == MD_OK;) {
    if (!progress) {
      if (guess)
        break;
      guess = true; /* a round of guesses */
    } else {
      guess = false;
    }
    progress = false;
    for (size_t q = 0; st == MD_OK && q < m; q++) {
      size_t i = chain[q], lv = level[i];
      if (v[i])
        continue;
      /* as shape inference reads a product: what the factors on each
       * side multiply to, a scalar scaling rather than multiplying (in
       * s x^T y ones, ones takes the product's own size) */
      uint64_t r = lv == n ? pr : 1, c = lv == n ? pc : 1;
      bool known = true, all = true;
      uint64_t ar = 1, ac = 1;
      const md_val *prev = NULL, *next = NULL;
      for (size_t t = 0; t < q; t++) {
        if (level[chain[t]] != lv)
          continue;
        const md_val *w = v[chain[t]];
        prev = w;
        if (!w)
          known = false;
        else if (ar == 1 && ac == 1)
          ar = w->r, ac = w->c;
        else if (!(w->r == 1 && w->c == 1))
          ac = w->c;
      }
      if (!known) /* the next factor alone, when it is known */
        r = prev ? prev->c : 0;
      else if (!(ar == 1 && ac == 1))
        r = ac;
      all = known;
      known = true;
      ar = ac = 1;
      for (size_t t = m; t-- > q + 1;) {
        if (level[chain[t]] != lv)
          continue;
        const md_val *w = v[chain[t]];
        next = w;
        if (!w)
          known = false;
        else if (ar == 1 && ac == 1)
          ar = w->r, ac = w->c;
        else if (!(w->r == 1 && w->c == 1))
          ar = w->r;
      }
      if (!known)
        c = next ? next->r : 0;
      else if (!(ar == 1 && ac == 1))
        c = ar;
      all = all && known;
      refine(ev, e->kid[i], &r, &c);
      if (r && c && (all || guess)) {
        st = eval(ev, F, e->kid[i], r, c, &v[i]);
        progress = true;
        if (!all)
          break; /* one guess, then what it makes known */
      }
    }
  }
  for (size_t q = 0; st == MD_OK && q < m; q++)
    if (!v[chain[q]])
      st = unsized(ev, e->kid[chain[q]]);
  free(level);
  free(chain);
  return st;
}

/* Kronecker factors: a closed one sized by what the others leave. */
static md_status eval_kron_kids(md_eval *ev, frame *F, const expr *e,
                                uint64_t pr, uint64_t pc, const md_val **v) {
  size_t n = e->nkids;
  md_status st = MD_OK;
  uint64_t *kr = xcalloc(n, sizeof *kr), *kc = xcalloc(n, sizeof *kc);
  for (size_t i = 0; st == MD_OK && i < n; i++) {
    v[i] = NULL;
    kr[i] = kc[i] = 0;
    if (!is_closed(e->kid[i])) {
      st = eval(ev, F, e->kid[i], 0, 0, &v[i]);
      if (st == MD_OK)
        kr[i] = v[i]->r, kc[i] = v[i]->c;
    } else {
      refine(ev, e->kid[i], &kr[i], &kc[i]);
    }
  }
  /* one unknown per direction: the quotient */
  for (int dir = 0; st == MD_OK && dir < 2; dir++) {
    uint64_t *d = dir ? kc : kr, total = dir ? pc : pr, known = 1;
    size_t unknown = n, nunk = 0;
    for (size_t i = 0; i < n; i++) {
      if (d[i])
        known *= d[i];
      else
        unknown = i, nunk++;
    }
    if (nunk == 1 && total && total % known == 0)
      d[unknown] = total / known;
  }
  for (size_t i = 0; st == MD_OK && i < n; i++) {
    if (v[i])
      continue;
    if (!kr[i] || !kc[i])
      st = unsized(ev, e->kid[i]);
    else
      st = eval(ev, F, e->kid[i], kr[i], kc[i], &v[i]);
  }
  free(kr);
  free(kc);
  return st;
}

/* Folds the values V[0..n-1] with OP, left to right. */
static md_status fold(md_val *out, const md_val *const *v, size_t n,
                      md_status (*op)(md_val *, const md_val *,
                                      const md_val *)) {
  md_val acc;
  md_val_init_copy(&acc, v[0]);
  for (size_t i = 1; i < n; i++) {
    md_val t;
    md_status st = op(&t, &acc, v[i]);
    md_val_clear(&acc);
    if (st != MD_OK)
      return st;
    acc = t;
    /* exact numbers past their bound within one node (a .* of 4096
     * factors): stop here, not after the last factor (eval's check) */
    if (md_val_too_big(&acc)) {
      md_val_clear(&acc);
      return MD_HUGE;
    }
  }
  *out = acc;
  return MD_OK;
}

/* Charges the product of A and B (of E) before it is done: a b c entry
 * operations to the budget, past it an error; in exact numbers also
 * those times the square of their numbers' 64-bit words (GMP's gcds) to
 * the point's exact_work, past a quarter of the budget MD_HUGE: the
 * point is redone in doubles, as for eliminations (charge_cube).  A
 * product of 400 matrices grew its entries to thousands of bits and
 * took 3.4 s of gcds before the budget in plain operations stopped it. */
static md_status charge_mul(md_eval *ev, const expr *e, const md_val *a,
                            const md_val *b) {
  uint64_t ops = ((uint64_t)a->r * a->c * b->c)
                 << (a->order > b->order ? a->order : b->order);
  if (!charge(ev, ops))
    return over_budget(ev, e); /* in doubles too */
  if (ev->doubles)
    return MD_OK;
  size_t ba = md_val_max_bits(a), bb = md_val_max_bits(b);
  uint64_t words = 1 + (ba > bb ? ba : bb) / 64;
  ev->exact_work += ops * words * words;
  return ev->exact_work > ev->budget / 4 ? MD_HUGE : MD_OK;
}

/* The product of the factors V[i..end) of a flat product, left to right,
 * where a run that multiplies to 1×1 (RUN, from md_shape_runs) is
 * multiplied out first and scales. */
static md_status mul_factors(md_eval *ev, const expr *e, md_val *out,
                             const md_val *const *v, const size_t *run,
                             size_t i, size_t end) {
  md_val acc;
  md_val_init_copy(&acc, v[i]);
  for (size_t j = i + 1; j < end;) {
    const md_val *f = v[j];
    size_t next = j + 1;
    md_val inner, t;
    md_status st = MD_OK;
    if (run[j]) {
      st = mul_factors(ev, e, &inner, v, run, j, run[j]);
      f = &inner;
      next = run[j];
    }
    if (st == MD_OK) {
      st = charge_mul(ev, e, &acc, f);
      if (st != MD_OK && f == &inner)
        md_val_clear(&inner); /* (acc is cleared below) */
    }
    if (st == MD_OK) {
      st = md_val_mul(&t, &acc, f);
      if (f == &inner)
        md_val_clear(&inner);
    }
    md_val_clear(&acc);
    if (st != MD_OK)
      return st;
    acc = t;
    j = next;
    /* exact numbers past their bound within one product (a flat product
     * of 4096 factors, each a large number): stop here, as fold does */
    if (md_val_too_big(&acc)) {
      md_val_clear(&acc);
      return MD_HUGE;
    }
  }
  *out = acc;
  return MD_OK;
}

/* Where each 1×1 run of the flat product E ends (md_shape_runs; 0 where
 * none starts), as shape inference reads it: M u^T u N is M (u^T u) N.
 * The caller frees it. */
static size_t *product_runs(md_eval *ev, const expr *e) {
  size_t n = e->nkids;
  md_shape *k = xreallocarray(NULL, n, sizeof *k);
  size_t *run = xreallocarray(NULL, n, sizeof *run);
  for (size_t i = 0; i < n; i++)
    k[i] = md_shape_of(ev->sh, e->kid[i]);
  if (!md_shape_runs(ev->sh, k, n, run)) /* (not reached: E was inferred) */
    memset(run, 0, n * sizeof *run);     /* the product's own error */
  free(k);
  return run;
}

/* The kids of an element-wise node (sum, Hadamard): those with a size of
 * their own first, then closed ones at the node's size (a scalar closed
 * term broadcasts). */
static md_status eval_elementwise_kids(md_eval *ev, frame *F, const expr *e,
                                       uint64_t pr, uint64_t pc,
                                       const md_val **v) {
  md_status st = MD_OK;
  for (size_t i = 0; st == MD_OK && i < e->nkids; i++) {
    v[i] = NULL;
    if (!is_closed(e->kid[i]))
      st = eval(ev, F, e->kid[i], 0, 0, &v[i]);
  }
  for (size_t i = 0; st == MD_OK && i < e->nkids; i++) {
    if (!pr || !pc)
      for (size_t j = 0; j < e->nkids; j++)
        if (v[j] && (v[j]->r != 1 || v[j]->c != 1))
          pr = v[j]->r, pc = v[j]->c;
    if (v[i])
      continue;
    const expr *k = e->kid[i];
    bool sc = (k->flags & EF_CONST) || scheme_scalar(ev, k);
    st = eval(ev, F, k, sc ? 1 : pr, sc ? 1 : pc, &v[i]);
  }
  return st;
}

static md_status eval_call(md_eval *ev, frame *F, const expr *e, uint64_t pr,
                           uint64_t pc, md_val *out) {
  const expr *a = e->kid[0];
  const md_val *v;
  md_status st;
  uint64_t hr = 0, hc = 0;
  if (e->u.fn >= FN_NBUILTIN || e->nkids != 1) {
    const fn_info *fi = md_fn_get(ev->ctx, e->u.fn);
    char what[128];
    snprintf(what, sizeof what, "cannot evaluate the function %s",
             fi ? fi->name : "?");
    return fail(ev, MD_FAIL, e, what);
  }
  switch ((md_fn)e->u.fn) {
  case FN_DIAG:
    if (pr == 1 && pc == 1)
      hr = hc = 1;
    else if (pc == 1)
      hr = hc = pr; /* the diagonal of a square matrix */
    else if (pr)
      hr = pr, hc = 1; /* a vector made diagonal */
    break;
  case FN_VEC:
    if (is_closed(a)) {
      uint64_t r = 0, c = 0;
      refine(ev, a, &r, &c);
      if (c == 1)
        hr = pr, hc = 1;
      else if (r == 0 && c == 0)
        for (uint64_t s = 2; s * s <= pr; s++)
          if (s * s == pr) /* square: the only consistent size */
            hr = hc = s;
    }
    break;
  case FN_TR:
  case FN_DET:
  case FN_LOGDET:
  case FN_SUM:
  case FN_NORM1:
  case FN_NORM2:
  case FN_LOGSUMEXP:
    break; /* nothing tells the size of a closed argument */
  default:
    hr = pr, hc = pc; /* element-wise, softmax */
    break;
  }
  st = eval(ev, F, a, hr, hc, &v);
  if (st != MD_OK)
    return st;
  if ((e->u.fn == FN_DET || e->u.fn == FN_LOGDET) &&
      (st = charge_cube(ev, e, v, 1, v->r)) != MD_OK)
    return st;
  switch ((md_fn)e->u.fn) {
  case FN_TR:
    st = md_val_tr(out, v);
    break;
  case FN_DET:
    st = md_val_det(out, v);
    break;
  case FN_LOGDET:
    st = md_val_logdet(out, v);
    break;
  case FN_DIAG:
    st = md_val_diag(out, v);
    break;
  case FN_VEC:
    st = md_val_vec(out, v);
    break;
  case FN_SUM:
    st = md_val_sum(out, v);
    break;
  case FN_NORM2:
    st = md_val_norm2(out, v);
    break;
  case FN_NORM1:
    st = md_val_norm1(out, v);
    break;
  case FN_SOFTMAX:
    st = md_val_softmax(out, v);
    break;
  case FN_LOGSUMEXP:
    st = md_val_logsumexp(out, v);
    break;
  default:
    st = md_val_apply(out, v, (md_fn)e->u.fn);
    break;
  }
  return st;
}

/* A .^ P for a 1×1 P that is not a number of the expression: exactly
 * when P is an exact constant at this point, else exp(P log A), which
 * also differentiates with respect to P. */
static md_status power(md_val *out, const md_val *a, const md_val *p) {
  bool constant = true;
  for (unsigned s = 0; s < (1u << p->order); s++) {
    md_num *x = md_val_at(p, 0, 0, s);
    constant &= s == 0 ? x->exact : md_num_sgn(x) == 0;
  }
  if (constant) {
    mpq_t k;
    mpq_init(k);
    md_num_get_q(k, md_val_at(p, 0, 0, 0));
    md_status st = md_val_epow(out, a, k);
    mpq_clear(k);
    return st;
  }
  md_val l, pl;
  md_status st = md_val_apply(&l, a, FN_LOG);
  if (st != MD_OK)
    return st;
  st = md_val_had(&pl, &l, p);
  md_val_clear(&l);
  if (st != MD_OK)
    return st;
  st = md_val_apply(out, &pl, FN_EXP);
  md_val_clear(&pl);
  return st;
}

/* The value of E (size PR×PC, 0 where unknown for a closed E) into OUT,
 * initialised exactly when MD_OK. */
static md_status compute(md_eval *ev, frame *F, const expr *e, uint64_t pr,
                         uint64_t pc, md_val *out) {
  size_t n = e->nkids;
  const md_val *small[4];
  const md_val **v = n <= 4 ? small : xreallocarray(NULL, n ? n : 1, sizeof *v);
  md_status st = MD_OK;
  switch ((expr_op)e->op) {
  case E_NUM:
    md_val_init(out, 1, 1, 0);
    md_num_set_q(out->x, e->u.num);
    if (ev->doubles)
      md_val_to_double(out);
    break;
  case E_IDENT:
  case E_ONES: {
    uint64_t r = pr ? pr : e->op == E_IDENT ? pc : 0;
    if (!r) {
      st = unsized(ev, e);
      break;
    }
    if (!md_val_fits(r, r, 0)) {
      st = fail(ev, MD_FAIL, e, "too large to evaluate");
      break;
    }
    if (e->op == E_IDENT)
      md_val_identity(out, (uint32_t)r);
    else
      md_val_fill(out, (uint32_t)r, 1, 1);
    break;
  }
  case E_SYM:
    st = fail(ev, MD_FAIL, e, "internal error: a symbol computed");
    break;
  case E_ADD:
    st = eval_elementwise_kids(ev, F, e, pr, pc, v);
    if (st == MD_OK)
      st = fold(out, v, n, md_val_add);
    break;
  case E_HAD:
  case E_HDIV:
    st = eval_elementwise_kids(ev, F, e, pr, pc, v);
    if (st == MD_OK)
      st = fold(out, v, n, e->op == E_HAD ? md_val_had : md_val_hdiv);
    break;
  case E_NEG:
    st = eval(ev, F, e->kid[0], pr, pc, &v[0]);
    if (st == MD_OK)
      st = md_val_neg(out, v[0]);
    break;
  case E_TRANS:
    st = eval(ev, F, e->kid[0], pc, pr, &v[0]);
    if (st == MD_OK)
      st = md_val_trans(out, v[0]);
    break;
  case E_INV:
    st = eval(ev, F, e->kid[0], pr, pc, &v[0]);
    if (st == MD_OK)
      st = charge_cube(ev, e, v[0], 1, v[0]->r);
    if (st == MD_OK)
      st = md_val_inv(out, v[0]);
    break;
  case E_MUL: {
    /* the runs, read once: they size the closed factors and group the
     * product */
    size_t *run = product_runs(ev, e);
    st = eval_product_kids(ev, F, e, run, pr, pc, v);
    if (st == MD_OK)
      st = mul_factors(ev, e, out, v, run, 0, n);
    free(run);
    break;
  }
  case E_DIV:
    st = eval(ev, F, e->kid[0], pr, pc, &v[0]);
    if (st == MD_OK)
      st = eval(ev, F, e->kid[1], 1, 1, &v[1]);
    if (st == MD_OK)
      st = md_val_div(out, v[0], v[1]);
    break;
  case E_KRON:
    st = eval_kron_kids(ev, F, e, pr, pc, v);
    if (st == MD_OK)
      st = fold(out, v, n, md_val_kron);
    break;
  case E_POW:
  case E_EPOW: {
    const expr *base = e->kid[0], *k = e->kid[1];
    long ki;
    if (k->op != E_NUM) {
      /* a scalar expression: s^p, x .^ alpha */
      st = eval(ev, F, k, 1, 1, &v[1]);
      if (st == MD_OK)
        st = eval(ev, F, base, pr, pc, &v[0]);
      if (st == MD_OK)
        st = power(out, v[0], v[1]);
      break;
    }
    if (e->op == E_POW && base->op == E_CALL && base->u.fn == FN_NORM2 &&
        expr_is_int(k, &ki) && ki > 0 && ki % 2 == 0) {
      /* ||x||^2k is (sum of squares)^k: exact */
      st = eval(ev, F, base->kid[0], 0, 0, &v[0]);
      md_val s;
      if (st == MD_OK)
        st = md_val_sumsq(&s, v[0]);
      if (st == MD_OK) {
        mpq_t h;
        mpq_init(h);
        mpq_set_si(h, ki / 2, 1);
        st = md_val_pow(out, &s, h);
        mpq_clear(h);
        md_val_clear(&s);
      }
      break;
    }
    st = eval(ev, F, base, pr, pc, &v[0]);
    mpq_srcptr kq = k->u.num;
    if (st == MD_OK && e->op == E_POW && v[0]->r > 1)
      st = power_charge(ev, e, v[0], kq);
    if (st == MD_OK)
      st = e->op == E_POW ? md_val_pow(out, v[0], kq)
                          : md_val_epow(out, v[0], kq);
    break;
  }
  case E_CALL:
    st = eval_call(ev, F, e, pr, pc, out);
    break;
  case E_INNER: {
    /* a closed side takes the size of the other */
    size_t first = is_closed(e->kid[0]) ? 1 : 0, second = 1 - first;
    st = eval(ev, F, e->kid[first], 0, 0, &v[first]);
    if (st == MD_OK)
      st = eval(ev, F, e->kid[second], v[first]->r, v[first]->c, &v[second]);
    if (st == MD_OK)
      st = md_val_inner(out, v[0], v[1]);
    break;
  }
  case E_DIFF:
    st = eval_diff(ev, F, e, pr, pc, out);
    break;
  case E_HESS:
    st = eval_hess(ev, F, e, pr, pc, out);
    break;
  case E_TUPLE:
  case E_NOPS:
    st = fail(ev, MD_FAIL, e, "cannot evaluate a list");
    break;
  }
  if (v != small)
    free(v);
  if (st == MD_DOMAIN && !ev->why[0])
    st = undefined(ev, e);
  else if (st == MD_FAIL && !ev->why[0] && e->op == E_MUL)
    /* shapes agree by inference, so a product fails for its size */
    st = fail(ev, MD_FAIL, e, "a product too large to evaluate");
  else if (st == MD_FAIL && !ev->why[0])
    st = fail(ev, MD_FAIL, e, "internal error: cannot evaluate");
  return st;
}

md_status md_eval_run(md_eval *ev, const expr *e, const md_shape *where,
                      md_val *out) {
  ev->why[0] = '\0';
  uint64_t r = 0, c = 0;
  if (where) {
    unsigned n = ev->nlazy;
    r = md_eval_size(ev, where->r);
    c = md_eval_size(ev, where->c);
    if (ev->nlazy != n && !ev->free_of)
      ev->free_of = e;
  }
  const md_val *v;
  md_status st = eval(ev, &ev->root, e, r, c, &v);
  if (st == MD_OK)
    md_val_init_copy(out, v);
  return st;
}

/* Evaluates E[0..N-1] into OUT at the current point; on failure OUT
 * holds nothing. */
static md_status run_all(md_eval *ev, expr *const *e, const md_shape *where,
                         size_t n, md_val *out) {
  /* A double that underflows is a nonzero value made 0 or denormal:
   * x .^ 1048576 and 2 x .^ 1048576 are both 0 at every entry below 1,
   * and a point where they agree only by underflow proves nothing.  Such
   * a point is beyond double precision, as one that overflows is. */
  feclearexcept(FE_UNDERFLOW);
  for (size_t i = 0; i < n; i++) {
    md_status st = md_eval_run(ev, e[i], where ? &where[i] : NULL, &out[i]);
    if (st == MD_OK && fetestexcept(FE_UNDERFLOW)) {
      md_val_clear(&out[i]);
      st = fail(ev, MD_DOMAIN, e[i], "a value below double precision");
    }
    if (st != MD_OK) {
      while (i > 0)
        md_val_clear(&out[--i]);
      return st;
    }
  }
  return MD_OK;
}

md_status md_eval_free_sized(md_eval *ev, uint32_t size, expr *const *e,
                             const md_shape *where, size_t n, md_val *out) {
  for (size_t i = 0; i < ev->nlazied; i++)
    ev->size[ev->lazied[i]] = 0;
  for (size_t i = 0; i < ev->nsize; i++) /* products of them */
    if (md_dim_get(ev->sh, (md_dim)i).kind == MD_DIM_PRODUCT)
      ev->size[i] = 0;
  ev->nlazied = 0;
  forget_all(ev);
  ev->lazy_fixed = size;
  md_status st = run_all(ev, e, where, n, out);
  if (st == MD_HUGE) {
    md_eval_use_doubles(ev);
    st = run_all(ev, e, where, n, out);
  }
  ev->lazy_fixed = 0;
  return st;
}

/* Whether entry (i, j) of symbol S goes up (md_eval_perturbed): a mix of
 * the three, symmetric in i and j. */
static bool perturb_up(size_t s, uint32_t i, uint32_t j) {
  uint64_t lo = i < j ? i : j, hi = i < j ? j : i;
  uint64_t h = (s + 1) * 0x9E3779B97F4A7C15u ^ (lo << 32 | hi);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9u;
  h ^= h >> 29;
  return h & 1;
}

md_status md_eval_perturbed(md_eval *ev, double rel, expr *const *e,
                            const md_shape *where, size_t n, md_val *out) {
  size_t ns = ev->nsym ? ev->nsym : 1;
  md_val *saved = xcalloc(ns, sizeof *saved);
  bool *had = xcalloc(ns, sizeof *had), doubles = ev->doubles;
  for (size_t s = 0; s < ev->nsym; s++) {
    had[s] = ev->has_drawn[s];
    if (ev->bound[s])
      md_val_init_copy(&saved[s], &ev->symval[s]);
  }
  md_eval_use_doubles(ev);
  for (size_t s = 0; s < ev->nsym; s++) {
    md_val *v = &ev->symval[s];
    for (uint32_t i = 0; ev->bound[s] && i < v->r; i++)
      for (uint32_t j = 0; j < v->c; j++) {
        md_num *x = md_val_at(v, i, j, 0);
        x->d *= perturb_up(s, i, j) ? 1 + rel : 1 - rel;
      }
  }
  md_status st = run_all(ev, e, where, n, out);
  forget_all(ev);
  for (size_t s = 0; s < ev->nsym; s++) {
    if (ev->bound[s]) {
      md_val_clear(&ev->symval[s]);
      ev->symval[s] = saved[s]; /* (its numbers now the symbol's) */
    }
    if (!had[s] && ev->has_drawn[s]) {
      md_val_clear(&ev->drawn[s]);
      ev->has_drawn[s] = false;
    }
  }
  ev->doubles = doubles;
  free(saved);
  free(had);
  return st;
}

md_status md_eval_sample(md_eval *ev, md_rng *rng, expr *const *e,
                         const md_shape *where, size_t n, md_val *out) {
  char why[sizeof ev->why] = "";
  for (unsigned try = 0; try < MD_EVAL_TRIES; try++) {
    ev->tries = try + 1;
    ev->everywhere = false;
    /* after a third of the tries, smaller entries: exp(exp(x)) at an
     * entry of 5 is beyond double precision, at 5/12 it is not */
    ev->shrink =
        try < MD_EVAL_TRIES / 3 ? 0 : 2 * (1 + (try - MD_EVAL_TRIES / 3) / 4);
    md_eval_draw_sizes(ev, rng);
    md_status st = md_eval_draw(ev, rng, try % 2 == 1);
    uint64_t work0 = ev->work;
    if (st == MD_OK)
      st = run_all(ev, e, where, n, out);
    if (st == MD_HUGE) {
      /* the same point, in doubles; the operations of the exact attempt
       * are not charged twice (its numbers' words are bounded on their
       * own: charge_mul, charge_cube) */
      ev->work = work0;
      md_eval_use_doubles(ev);
      st = run_all(ev, e, where, n, out);
    }
    if (st != MD_DOMAIN) {
      ev->shrink = 0;
      return st;
    }
    if (!why[0])
      snprintf(why, sizeof why, "%s", ev->why);
    if (ev->everywhere)
      break;
  }
  ev->shrink = 0;
  snprintf(ev->why, sizeof ev->why, "%s", why);
  return MD_DOMAIN;
}
