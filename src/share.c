/* share.c - where bindings for repeated parts of a result; see share.h. */
#include "share.h"

#include "print_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sharer {
  md_ctx *ctx;
  md_shapes *shapes;
  expr *const *roots; /* never named themselves */
  size_t nroots;
  uint32_t *refs;    /* by id: uses of the node from distinct parent slots */
  uint32_t *size;    /* by id: nodes of its tree, capped at the threshold */
  uint8_t *seen;     /* by id */
  expr **image;      /* by id: the node with named parts in place */
  uint8_t *named;    /* by id: 1 when the node gets a name */
  uint8_t *used;     /* by id of symbols: names the expression has */
  uint8_t *root;     /* by id: one of the roots */
  size_t n;          /* size of the tables */
  unsigned count[3]; /* names given so far: scalars, vectors, matrices */
  md_sharing *out;
  size_t cap;
} sharer;

/* Counts uses and tree sizes, each node once. */
static void count(sharer *s, const expr *e) {
  if (s->seen[e->id])
    return;
  s->seen[e->id] = 1;
  uint32_t size = 1;
  for (size_t i = 0; i < e->nkids; i++) {
    count(s, e->kid[i]);
    s->refs[e->kid[i]->id]++;
    size += s->size[e->kid[i]->id];
    if (size > MD_SHARE_MIN_SIZE)
      size = MD_SHARE_MIN_SIZE; /* only "big enough" matters */
  }
  s->size[e->id] = size;
  if (e->op == E_SYM)
    s->used[e->id] = 1;
}

/* 0 scalar, 1 vector, 2 matrix (or unknown). */
static int kind_of(sharer *s, const expr *e) {
  if (!s->shapes || !md_shape_known(s->shapes, e))
    return 2;
  md_shape sh = md_shape_of(s->shapes, e);
  if (md_shape_is_scalar(s->shapes, sh))
    return 0;
  return md_shape_is_vector(s->shapes, sh) ? 1 : 2;
}

/* A fresh name of kind K that the expression does not use. */
static expr *fresh(sharer *s, int k) {
  static const char *const prefix[3] = {"tau", "t", "T"};
  for (;;) {
    char name[32];
    snprintf(name, sizeof name, "%s%u", prefix[k], ++s->count[k]);
    expr *sym = expr_sym(s->ctx, name);
    if (!sym || sym->id >= s->n || !s->used[sym->id])
      return sym;
  }
}

static void bind(sharer *s, expr *name, expr *value) {
  md_sharing *o = s->out;
  if (o->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 8;
    o->names = xreallocarray(o->names, s->cap, sizeof *o->names);
    o->values = xreallocarray(o->values, s->cap, sizeof *o->values);
  }
  o->names[o->n] = name;
  o->values[o->n++] = value;
}

/* E with its named parts replaced; binds E itself when it is one.  Kids
 * come first, so each binding uses only the ones before it. */
/* A part used twice and large, or used three times and not tiny
 * (share.h). */
static bool worth_naming(const sharer *s, const expr *e) {
  uint32_t r = s->refs[e->id], n = s->size[e->id];
  return (r >= 2 && n >= MD_SHARE_MIN_SIZE) ||
         (r >= 3 && n >= MD_SHARE_MIN_USED && e->op != E_SYM);
}

static bool is_root(const sharer *s, const expr *e) {
  return e->id < s->n && s->root[e->id];
}

static expr *rewrite(sharer *s, expr *e) {
  if (e->id < s->n && s->image[e->id])
    return s->image[e->id];
  expr *r = e;
  if (e->nkids) {
    expr *small[4];
    expr **k = e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *k);
    bool changed = false;
    for (size_t i = 0; i < e->nkids; i++) {
      k[i] = rewrite(s, e->kid[i]);
      changed |= k[i] != e->kid[i];
    }
    if (changed) {
      r = expr_rebuild(s->ctx, e, k);
      if (!r)
        r = e; /* too deep to rebuild: leave it whole */
    }
    if (k != small)
      free(k);
  }
  expr *name;
  if (worth_naming(s, e) && !is_root(s, e) &&
      (name = fresh(s, kind_of(s, e)))) {
    bind(s, name, r);
    r = name;
  }
  s->image[e->id] = r;
  return r;
}

void md_share(md_ctx *ctx, md_shapes *shapes, expr *e, md_sharing *out) {
  expr *body;
  md_share_n(ctx, shapes, &e, 1, &body, out);
  out->body = body;
}

void md_share_n(md_ctx *ctx, md_shapes *shapes, expr *const *roots,
                size_t nroots, expr **bodies, md_sharing *out) {
  *out = (md_sharing){.body = NULL};
  /* a budget of its own: the work before may have used all of its own,
   * and sharing makes at most a name and a node for each node it has
   * (a constructor's NULL here crashed the printers) */
  md_ctx_mark(ctx);
  size_t n = md_ctx_nnodes(ctx);
  sharer s = {.ctx = ctx,
              .shapes = shapes,
              .roots = roots,
              .nroots = nroots,
              .n = n,
              .out = out};
  s.refs = xcalloc(n, sizeof *s.refs);
  s.size = xcalloc(n, sizeof *s.size);
  s.seen = xcalloc(n, 1);
  s.used = xcalloc(n, 1);
  s.root = xcalloc(n, 1);
  for (size_t i = 0; i < nroots; i++) {
    count(&s, roots[i]);
    bodies[i] = roots[i];
    s.root[roots[i]->id] = 1;
  }
  if (nroots > 1) /* each root is used once more, by the tuple they form */
    for (size_t i = 0; i < nroots; i++)
      s.refs[roots[i]->id]++;
  bool any = false;
  for (size_t i = 0; i < n && !any; i++)
    any = s.refs[i] >= 2 && s.size[i] >= MD_SHARE_MIN_USED;
  if (any) {
    s.image = xcalloc(n, sizeof *s.image);
    for (size_t i = 0; i < nroots; i++)
      bodies[i] = rewrite(&s, roots[i]);
    free(s.image);
  }
  free(s.refs);
  free(s.size);
  free(s.seen);
  free(s.used);
  free(s.root);
}

void md_sharing_clear(md_sharing *s) {
  free(s->names);
  free(s->values);
  *s = (md_sharing){NULL};
}

void md_print_text_shared(strbuf *out, md_ctx *ctx, md_shapes *shapes,
                          expr *e) {
  md_sharing w;
  md_share(ctx, shapes, e, &w);
  md_print_text(out, ctx, w.body);
  for (size_t i = 0; i < w.n; i++) {
    sb_puts(out, i ? ", " : " where ");
    md_print_text(out, ctx, w.names[i]);
    sb_puts(out, " = ");
    md_print_text(out, ctx, w.values[i]);
  }
  md_sharing_clear(&w);
}

/* The number of nodes of E printed as a tree, up to CAP (memo by id). */
static size_t tree_size(const expr *e, size_t cap, md_idmap *memo) {
  uintptr_t m = md_idmap_get(memo, e);
  if (m)
    return m - 1;
  size_t n = 1;
  for (size_t i = 0; i < e->nkids && n < cap; i++)
    n += tree_size(e->kid[i], cap, memo);
  if (n > cap)
    n = cap;
  md_idmap_put(memo, e, n + 1);
  return n;
}

size_t md_tree_size(const expr *e, size_t cap) {
  md_idmap memo;
  md_idmap_init(&memo);
  size_t n = tree_size(e, cap, &memo);
  md_idmap_clear(&memo);
  return n;
}

bool md_unfolds_n(expr *const *v, size_t n, size_t floor) {
  size_t cap = 4 * expr_dag_size_n((const expr *const *)v, n) + floor, tree = 0;
  md_idmap memo;
  md_idmap_init(&memo);
  for (size_t i = 0; i < n && tree < cap; i++)
    if (v[i]) /* (a part past a limit: --steps prints it as ...) */
      tree += tree_size(v[i], cap - tree, &memo);
  md_idmap_clear(&memo);
  return tree >= cap;
}

bool md_unfolds(const expr *e) {
  size_t dag = expr_dag_size(e), cap = 4 * dag + 64;
  md_idmap memo;
  md_idmap_init(&memo);
  size_t tree = tree_size(e, cap, &memo);
  md_idmap_clear(&memo);
  return tree >= cap;
}
