/* expr.c - hash-consed expression nodes; see expr.h for the invariants. */
#include "expr.h"

#include "blocks.h"

#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const fn_info builtin_fns[FN_NBUILTIN] = {
    [FN_TR] = {"tr", 1, FC_SQUARE_TO_SC},
    [FN_DET] = {"det", 1, FC_SQUARE_TO_SC},
    [FN_LOGDET] = {"logdet", 1, FC_SQUARE_TO_SC},
    [FN_DIAG] = {"diag", 1, FC_DIAG},
    [FN_VEC] = {"vec", 1, FC_VEC},
    [FN_SUM] = {"sum", 1, FC_ANY_TO_SC},
    [FN_NORM2] = {"norm2", 1, FC_ANY_TO_SC},
    [FN_NORM1] = {"norm1", 1, FC_ANY_TO_SC},
    [FN_SOFTMAX] = {"softmax", 1, FC_VEC_TO_VEC},
    [FN_LOGSUMEXP] = {"logsumexp", 1, FC_ANY_TO_SC},
    [FN_EXP] = {"exp", 1, FC_ELEMWISE},
    [FN_LOG] = {"log", 1, FC_ELEMWISE},
    [FN_SQRT] = {"sqrt", 1, FC_ELEMWISE},
    [FN_SIN] = {"sin", 1, FC_ELEMWISE},
    [FN_COS] = {"cos", 1, FC_ELEMWISE},
    [FN_TAN] = {"tan", 1, FC_ELEMWISE},
    [FN_TANH] = {"tanh", 1, FC_ELEMWISE},
    [FN_ABS] = {"abs", 1, FC_ELEMWISE},
    [FN_SIGN] = {"sign", 1, FC_ELEMWISE},
    [FN_STEP] = {"step", 1, FC_ELEMWISE},
    [FN_RELU] = {"relu", 1, FC_ELEMWISE},
    [FN_SIGMOID] = {"sigmoid", 1, FC_ELEMWISE},
    [FN_SOFTPLUS] = {"softplus", 1, FC_ELEMWISE},
};

struct md_ctx {
  arena mem;   /* names, and what modules keep with the context */
  arena nodes; /* the nodes: rolled back by md_ctx_restore */
  /* node interning table: open addressing (linear probing), power-of-two
   * size, filled in id order, so that removing the newest nodes first
   * leaves it as it was before they were made; a slot holds the node's
   * hash, so that a probe reads the node only when the hashes agree (a
   * probe that read every node it passed was half of all the time of
   * normal forms of many sums: one cache miss each) */
  struct node_slot {
    expr *e;
    uint32_t hash;
  } * slots;
  size_t nslots, nnodes;
  expr **byid; /* by id: the node */
  size_t capids;
  size_t pins;      /* md_ctx_pin calls */
  uint32_t cmp_gen; /* md_ctx_cmp_get: entries of this generation hold */
  expr **nums;      /* E_NUM nodes, whose mpq_t must be cleared */
  size_t nnums, capnums;
  /* string interning table */
  const char **names;
  size_t nnames_slots, nnames;
  /* functions, and their index by name: open addressing, a slot holds
   * the function's number + 1 (0: empty), at most half full */
  fn_info *fns;
  size_t nfns, capfns;
  uint32_t *fnslots;
  size_t nfnslots;
  expr *ident, *ones;
  unsigned max_depth;   /* md_ctx_max_depth */
  struct cmp_slot *cmp; /* md_ctx_cmp_get: ncmp slots, made on first use */
  size_t ncmp;          /* a power of two, CMP_SLOTS to CMP_MAX_SLOTS */
  size_t cmp_evicted;   /* live entries overwritten since it last grew */
  /* the size budget: nodes and operands made since md_ctx_mark */
  size_t size, mark, max_size;
  size_t budget; /* this piece of work's (md_ctx_scale), <= max_size */
  size_t asked;  /* nodes asked for: md_ctx_asked */
  enum {
    LIMIT_DEPTH,
    LIMIT_SIZE,
    LIMIT_RULE,
    LIMIT_NUMBER,
    LIMIT_FACTORS
  } limit;                /* the last NULL's */
  size_t nlimits;         /* NULLs for a limit so far (md_ctx_limits) */
  const char *limit_file; /* LIMIT_RULE: the rule's place */
  size_t limit_factors;   /* LIMIT_FACTORS: how many */
  unsigned limit_line;
  /* a module's data, freed with the context (md_ctx_set_slot) */
  void *slot;
  void (*release)(void *);
};

/* FNV-1a over bytes, then mixed in 32-bit steps. */
static uint32_t fnv(uint32_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 16777619u;
  }
  return h;
}

/* A limb at a time (FNV a byte at a time was 4% of the instructions of a
 * 1 000-level chain whose coefficients are 1/10^k: tests/fuzz/sweep.py
 * 7c). */
static uint32_t hash_mpz(uint32_t h, const mpz_t z) {
  size_t n = mpz_size(z);
  const mp_limb_t *l = mpz_limbs_read(z);
  uint64_t x = h ^ ((uint64_t)(mpz_sgn(z) + 1) << 32);
  for (size_t i = 0; i < n; i++) {
    x = (x ^ (uint64_t)l[i]) * 0xff51afd7ed558ccdull;
    x ^= x >> 32;
  }
  return (uint32_t)x;
}

size_t md_knob(const char *name, size_t lo, size_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  return !*end && n >= lo && n < dflt ? n : dflt;
}

size_t md_ctx_asked(const md_ctx *ctx) {
  return ctx->asked;
}

size_t md_work_budget(size_t dflt) {
  /* read once: the passes ask at every line, and getenv reads the whole
   * environment (threads that race here store the same value) */
  static _Atomic size_t once;
  size_t k = atomic_load_explicit(&once, memory_order_relaxed);
  if (!k) {
    k = md_knob("MATDIFF_SIMPLIFY_WORK", 64, MD_WORK_SCALE);
    atomic_store_explicit(&once, k, memory_order_relaxed);
  }
  size_t w = dflt * k / MD_WORK_SCALE; /* both at most 20000 */
  return w ? w : 1;
}

/* The slot of the function named NAME[0..LEN), or of the empty slot where
 * it would go. */
static size_t fn_slot(const md_ctx *ctx, const char *name, size_t len) {
  size_t mask = ctx->nfnslots - 1;
  size_t j = fnv(2166136261u, name, len) & mask;
  for (; ctx->fnslots[j]; j = (j + 1) & mask) {
    const char *p = ctx->fns[ctx->fnslots[j] - 1].name;
    if (strncmp(p, name, len) == 0 && p[len] == '\0')
      break;
  }
  return j;
}

/* Indexes the functions not indexed yet (the last one, or all when the
 * table grows); a name given twice keeps its first function. */
static void fn_index(md_ctx *ctx) {
  size_t from = ctx->nfns - 1;
  if (2 * ctx->nfns > ctx->nfnslots) {
    size_t n = ctx->nfnslots ? 2 * ctx->nfnslots : 64;
    while (2 * ctx->nfns > n)
      n *= 2;
    free(ctx->fnslots);
    ctx->fnslots = xcalloc(n, sizeof *ctx->fnslots);
    ctx->nfnslots = n;
    from = 0;
  }
  for (size_t i = from; i < ctx->nfns; i++) {
    const char *name = ctx->fns[i].name;
    size_t j = fn_slot(ctx, name, strlen(name));
    if (!ctx->fnslots[j])
      ctx->fnslots[j] = (uint32_t)i + 1;
  }
}

md_ctx *md_ctx_new(void) {
  md_ctx *ctx = xcalloc(1, sizeof *ctx);
  arena_init(&ctx->mem);
  arena_init(&ctx->nodes);
  ctx->nslots = 1024;
  ctx->slots = xcalloc(ctx->nslots, sizeof *ctx->slots);
  ctx->nnames_slots = 256;
  ctx->names = xcalloc(ctx->nnames_slots, sizeof *ctx->names);
  ctx->max_depth = (unsigned)md_knob("MATDIFF_MAX_DEPTH", 16, MD_MAX_DEPTH);
  ctx->max_size = md_knob("MATDIFF_MAX_SIZE", 1024, MD_MAX_SIZE);
  ctx->budget = ctx->max_size;
  ctx->capfns = FN_NBUILTIN + 16;
  ctx->fns = xreallocarray(NULL, ctx->capfns, sizeof *ctx->fns);
  memcpy(ctx->fns, builtin_fns, sizeof builtin_fns);
  ctx->nfns = FN_NBUILTIN;
  fn_index(ctx);
  ctx->ident = expr_make(ctx, E_IDENT, NULL, 0);
  ctx->ones = expr_make(ctx, E_ONES, NULL, 0);
  return ctx;
}

void md_ctx_free(md_ctx *ctx) {
  if (!ctx)
    return;
  if (ctx->release)
    ctx->release(ctx->slot);
  for (size_t i = 0; i < ctx->nnums; i++)
    mpq_clear(ctx->nums[i]->u.num);
  free(ctx->nums);
  free(ctx->byid);
  free(ctx->cmp);
  free(ctx->slots);
  free(ctx->names);
  free(ctx->fns);
  free(ctx->fnslots);
  arena_clear(&ctx->mem);
  arena_clear(&ctx->nodes);
  free(ctx);
}

void *md_ctx_slot(const md_ctx *ctx) {
  return ctx->slot;
}

void md_ctx_set_slot(md_ctx *ctx, void *p, void (*release)(void *)) {
  md_ctx_pin(ctx);
  if (ctx->release)
    ctx->release(ctx->slot);
  ctx->slot = p;
  ctx->release = release;
}

size_t md_ctx_nnodes(const md_ctx *ctx) {
  return ctx->nnodes;
}
unsigned md_ctx_max_depth(const md_ctx *ctx) {
  return ctx->max_depth;
}

/* The comparison cache starts small and grows fourfold, to 2^22 slots
 * (64 MB), each time more live entries have been overwritten than it has
 * slots: the sums of t_k = t_(k-1) + sin(t_(k-1)) compare k^2 / 2 pairs
 * of sums, and once they did not fit in a fixed 2^16 slots each compare
 * walked its sums again (k = 800: 9.5 s to simplify, 1.5 s now). */
enum { CMP_SLOTS = 1 << 16, CMP_MAX_SLOTS = 1 << 22 };

struct cmp_slot {
  uint32_t a, b; /* ids + 1; 0: empty */
  uint32_t gen;  /* ctx->cmp_gen when it was put (ids are given out again
                  * after md_ctx_restore) */
  int c;
};

static size_t cmp_index(uint32_t a, uint32_t b, size_t n) {
  uint32_t h = (a * 2654435761u) ^ (b * 40503u + 0x9e3779b9u);
  return (h ^ (h >> 16)) & (n - 1);
}

static struct cmp_slot *cmp_slot(const expr *a, const expr *b,
                                 const md_ctx *ctx) {
  return &ctx->cmp[cmp_index(a->id, b->id, ctx->ncmp)];
}

static void cmp_grow(md_ctx *ctx) {
  size_t n = ctx->ncmp * 4;
  struct cmp_slot *t = xcalloc(n, sizeof *t);
  for (size_t i = 0; i < ctx->ncmp; i++) {
    struct cmp_slot *s = &ctx->cmp[i];
    if (s->a && s->gen == ctx->cmp_gen)
      t[cmp_index(s->a - 1, s->b - 1, n)] = *s;
  }
  free(ctx->cmp);
  ctx->cmp = t;
  ctx->ncmp = n;
  ctx->cmp_evicted = 0;
}

bool md_ctx_cmp_get(const md_ctx *ctx, const expr *a, const expr *b, int *c) {
  if (!ctx->cmp)
    return false;
  struct cmp_slot *s = cmp_slot(a, b, ctx);
  if (s->a != a->id + 1 || s->b != b->id + 1 || s->gen != ctx->cmp_gen)
    return false;
  *c = s->c;
  return true;
}

void md_ctx_cmp_put(const md_ctx *ctx, const expr *a, const expr *b, int c) {
  /* the table is the context's own: filling it changes no value */
  md_ctx *m = (md_ctx *)ctx;
  if (!m->cmp) {
    m->cmp = xcalloc(CMP_SLOTS, sizeof *m->cmp);
    m->ncmp = CMP_SLOTS;
  }
  struct cmp_slot *s = cmp_slot(a, b, m);
  if (s->a && s->gen == m->cmp_gen && ++m->cmp_evicted > m->ncmp &&
      m->ncmp < CMP_MAX_SLOTS) {
    cmp_grow(m);
    s = cmp_slot(a, b, m);
  }
  *s = (struct cmp_slot){a->id + 1, b->id + 1, m->cmp_gen, c};
}

void md_ctx_pin(md_ctx *ctx) {
  ctx->pins++;
}

md_ctx_point md_ctx_save(const md_ctx *ctx) {
  return (md_ctx_point){ctx->nnodes, ctx->nnums, ctx->pins,
                        arena_get_mark(&ctx->nodes)};
}

/* The slot of E in the interning table. */
static size_t slot_of(const md_ctx *ctx, const expr *e) {
  size_t mask = ctx->nslots - 1, j = e->hash & mask;
  while (ctx->slots[j].e != e)
    j = (j + 1) & mask;
  return j;
}

bool md_ctx_restore(md_ctx *ctx, const md_ctx_point *p) {
  if (ctx->pins != p->pins || p->nnodes > ctx->nnodes)
    return false;
  /* newest first: each removal undoes one insertion (see slots) */
  for (size_t id = ctx->nnodes; id-- > p->nnodes;)
    ctx->slots[slot_of(ctx, ctx->byid[id])] = (struct node_slot){NULL, 0};
  for (size_t i = p->nnums; i < ctx->nnums; i++)
    mpq_clear(ctx->nums[i]->u.num);
  ctx->nnums = p->nnums;
  ctx->nnodes = p->nnodes;
  arena_reset(&ctx->nodes, p->mem);
  ctx->cmp_gen++; /* the ids of removed nodes will name new ones */
  return true;
}

void md_ctx_mark(md_ctx *ctx) {
  ctx->mark = ctx->size;
}
void md_ctx_scale(md_ctx *ctx, size_t n) {
  size_t b = ctx->max_size;
  if (n < b / 4 / (n ? n : 1)) /* 4 n^2 below the maximum */
    b = 4 * n * n > MD_SIZE_FLOOR ? 4 * n * n : MD_SIZE_FLOOR;
  ctx->budget = b < ctx->max_size ? b : ctx->max_size;
}
void md_ctx_limit_rule(md_ctx *ctx, const char *file, unsigned line) {
  ctx->limit = LIMIT_RULE;
  ctx->nlimits++;
  ctx->limit_file = file;
  ctx->limit_line = line;
}
void md_ctx_limit_number(md_ctx *ctx) {
  ctx->limit = LIMIT_NUMBER;
  ctx->nlimits++;
}
void md_ctx_limit_factors(md_ctx *ctx, size_t n) {
  ctx->limit = LIMIT_FACTORS;
  ctx->nlimits++;
  ctx->limit_factors = n;
}
size_t md_ctx_limits(const md_ctx *ctx) {
  return ctx->nlimits;
}
bool md_ctx_limit_is_rule(const md_ctx *ctx) {
  return ctx->limit == LIMIT_RULE;
}
void md_ctx_limit_text(const md_ctx *ctx, char *buf, size_t size) {
  if (ctx->limit == LIMIT_RULE)
    snprintf(buf, size, "rewritten without end by the rule at %s:%u",
             ctx->limit_file, ctx->limit_line);
  else if (ctx->limit == LIMIT_NUMBER)
    snprintf(buf, size,
             "too large (a number of more than %u digits above or below the "
             "fraction bar)",
             (unsigned)MD_MAX_NUM_DIGITS);
  else if (ctx->limit == LIMIT_FACTORS)
    snprintf(buf, size, "too large (a product of more than %zu factors)",
             ctx->limit_factors);
  else if (ctx->limit == LIMIT_SIZE)
    snprintf(buf, size, "too large (more than %zu nodes and operands)",
             ctx->budget);
  else
    snprintf(buf, size, "nested too deeply (more than %u levels)",
             ctx->max_depth);
}
arena *md_ctx_arena(md_ctx *ctx) {
  return &ctx->mem;
}

const char *md_intern(md_ctx *ctx, const char *s, size_t len) {
  if (2 * (ctx->nnames + 1) > ctx->nnames_slots) {
    size_t n = 2 * ctx->nnames_slots;
    const char **t = xcalloc(n, sizeof *t);
    for (size_t i = 0; i < ctx->nnames_slots; i++) {
      const char *p = ctx->names[i];
      if (!p)
        continue;
      size_t j = fnv(2166136261u, p, strlen(p)) & (n - 1);
      while (t[j])
        j = (j + 1) & (n - 1);
      t[j] = p;
    }
    free(ctx->names);
    ctx->names = t;
    ctx->nnames_slots = n;
  }
  size_t mask = ctx->nnames_slots - 1;
  size_t j = fnv(2166136261u, s, len) & mask;
  for (; ctx->names[j]; j = (j + 1) & mask) {
    const char *p = ctx->names[j];
    if (strncmp(p, s, len) == 0 && p[len] == '\0')
      return p;
  }
  const char *p = arena_strndup(&ctx->mem, s, len);
  ctx->names[j] = p;
  ctx->nnames++;
  return p;
}

const fn_info *md_fn_get(const md_ctx *ctx, uint32_t fn) {
  return fn < ctx->nfns ? &ctx->fns[fn] : NULL;
}

int md_fn_lookup(const md_ctx *ctx, const char *name, size_t len) {
  /* Every identifier the lexer reads comes here: by a hash of the name,
   * not a walk over the functions (16 000 of them in a rules file made
   * reading it quadratic) */
  if (len == 0)
    return -1;
  uint32_t i = ctx->fnslots[fn_slot(ctx, name, len)];
  return i ? (int)i - 1 : -1;
}

size_t md_fn_count(const md_ctx *ctx) {
  return ctx->nfns;
}

uint32_t md_fn_add(md_ctx *ctx, const char *name, unsigned arity,
                   fn_class cls) {
  md_ctx_pin(ctx);
  if (ctx->nfns == ctx->capfns) {
    ctx->capfns *= 2;
    ctx->fns = xreallocarray(ctx->fns, ctx->capfns, sizeof *ctx->fns);
  }
  ctx->fns[ctx->nfns] =
      (fn_info){md_intern(ctx, name, strlen(name)), arity, cls};
  ctx->nfns++;
  fn_index(ctx);
  return (uint32_t)ctx->nfns - 1;
}

/* ---- numbers ---- */

/* Whether |Z| has at most MD_MAX_NUM_DIGITS decimal digits: with fewer
 * bits than MD_MAX_NUM_BITS it has, with more not; with as many, as
 * 10^MD_MAX_NUM_DIGITS says (mpz_sizeinbase in base 10 may be one too
 * many). */
static bool digits_fit(mpz_srcptr z) {
  if (mpz_size(z) < MD_MAX_NUM_BITS / GMP_NUMB_BITS)
    return true; /* (fewer bits than its limbs hold: nearly every number) */
  size_t bits = mpz_sizeinbase(z, 2);
  if (bits != MD_MAX_NUM_BITS)
    return bits < MD_MAX_NUM_BITS;
  mpz_t p;
  mpz_init(p);
  mpz_ui_pow_ui(p, 10, MD_MAX_NUM_DIGITS);
  bool ok = mpz_cmpabs(z, p) < 0;
  mpz_clear(p);
  return ok;
}

bool md_num_fits(const mpq_t q) {
  return digits_fit(mpq_numref(q)) && digits_fit(mpq_denref(q));
}

/* ---- interning ---- */

static bool is_nary(expr_op op) {
  return op == E_ADD || op == E_MUL || op == E_HAD || op == E_KRON;
}

typedef struct key {
  expr_op op;
  uint32_t fn;
  const char *name;
  const mpq_t *num;
  expr *const *kids;
  size_t n;
} key;

/* One word into the hash: a multiply and a shift (FNV a byte at a time
 * was 2% of a filter run's instructions, four rounds for an id). */
static uint64_t mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0xff51afd7ed558ccdull;
  return h ^ (h >> 32);
}

static uint32_t key_hash(const key *k) {
  uint64_t h = mix(0x9e3779b97f4a7c15ull, (uint64_t)k->op);
  if (k->op == E_NUM) {
    h = hash_mpz((uint32_t)h, mpq_numref(*k->num));
    h = hash_mpz((uint32_t)h, mpq_denref(*k->num));
  } else if (k->op == E_SYM) {
    h = mix(h, (uint64_t)(uintptr_t)k->name);
  } else if (k->op == E_CALL) {
    h = mix(h, k->fn);
  }
  for (size_t i = 0; i < k->n; i++)
    h = mix(h, k->kids[i]->id);
  return (uint32_t)h;
}

static bool key_eq(const key *k, uint32_t h, const expr *e) {
  if (e->hash != h || e->op != k->op || e->nkids != k->n)
    return false;
  if (k->op == E_NUM && !mpq_equal(*k->num, e->u.num))
    return false;
  if (k->op == E_SYM && k->name != e->u.name)
    return false;
  if (k->op == E_CALL && k->fn != e->u.fn)
    return false;
  for (size_t i = 0; i < k->n; i++)
    if (k->kids[i] != e->kid[i])
      return false;
  return true;
}

static void grow_slots(md_ctx *ctx) {
  size_t n = 2 * ctx->nslots;
  struct node_slot *t = xcalloc(n, sizeof *t);
  for (size_t i = 0; i < ctx->nnodes; i++) { /* in id order (see slots) */
    expr *e = ctx->byid[i];
    size_t j = e->hash & (n - 1);
    while (t[j].e)
      j = (j + 1) & (n - 1);
    t[j] = (struct node_slot){e, e->hash};
  }
  free(ctx->slots);
  ctx->slots = t;
  ctx->nslots = n;
}

/* Whether a new node of N operands goes past the size budget. */
static bool too_large(md_ctx *ctx, size_t n) {
  if (n < ctx->budget && ctx->size - ctx->mark < ctx->budget - n)
    return false;
  ctx->limit = LIMIT_SIZE;
  ctx->nlimits++;
  return true;
}

/* Whether K keeps EF_UNIFORM when its operands have it (see expr.h): an
 * element-wise operation. A matrix product does not (ones^T ones is the
 * size), nor inv (inv(ones - 2 I) is singular at size 2 only), only a
 * product that scales one operand by numbers. */
static bool uniform_op(const key *k, size_t unconst) {
  switch (k->op) {
  case E_NUM:
  case E_IDENT:
  case E_ONES:
  case E_ADD:
  case E_NEG:
  case E_DIV:
  case E_HAD:
  case E_HDIV:
  case E_TRANS:
  case E_EPOW:
    return true;
  case E_MUL:
    return unconst <= 1;
  case E_CALL:
    return k->fn >= FN_EXP && k->fn <= FN_SOFTPLUS;
  default:
    return false;
  }
}

static expr *intern(md_ctx *ctx, const key *k) {
  ctx->asked++;
  unsigned depth = 0;
  uint8_t flags = EF_CLOSED | EF_CONST | EF_UNIFORM | EF_NO_TRANS;
  size_t unconst = 0; /* operands not numbers only */
  for (size_t i = 0; i < k->n; i++) {
    const expr *c = k->kids[i];
    if (!c)
      return NULL;
    if (c->depth > depth)
      depth = c->depth;
    flags &= c->flags;
    unconst += !(c->flags & EF_CONST);
  }
  if (++depth > ctx->max_depth) {
    ctx->limit = LIMIT_DEPTH;
    ctx->nlimits++;
    return NULL;
  }
  switch (k->op) {
  case E_NUM:
    /* a number of more than MD_MAX_NUM_DIGITS is past the budget too: the
     * coefficient of t_k = 4 t_(k-1) t_(k-1) doubles its digits at each
     * level, and 33 levels made a number of 2^33 bits */
    if (!md_num_fits(*k->num)) {
      ctx->limit = LIMIT_NUMBER;
      ctx->nlimits++;
      return NULL;
    }
    break;
  case E_SYM:
    flags = EF_NO_TRANS;
    break;
  case E_ADD:
  case E_NEG:
  case E_MUL:
  case E_DIV:
  case E_POW:
  case E_TRANS: /* 2^T is the number 2 */
    break;
  default:
    flags &= (uint8_t)~EF_CONST;
  }
  if (k->op == E_TRANS || k->op == E_INNER)
    flags &= (uint8_t)~EF_NO_TRANS;
  if (!(flags & EF_CONST) && !uniform_op(k, unconst))
    flags &= (uint8_t)~EF_UNIFORM;
  if (2 * (ctx->nnodes + 1) > ctx->nslots)
    grow_slots(ctx);
  uint32_t h = key_hash(k);
  size_t mask = ctx->nslots - 1, j = h & mask;
  for (; ctx->slots[j].e; j = (j + 1) & mask)
    if (ctx->slots[j].hash == h && key_eq(k, h, ctx->slots[j].e))
      return ctx->slots[j].e;
  /* a symbol is past no budget: one node, and the passes that make fresh
   * names (adjoints, shared subexpressions, steps) need not check them */
  if ((k->op != E_SYM && too_large(ctx, k->n)) || ctx->nnodes >= UINT32_MAX)
    return NULL;
  ctx->size += 1 + k->n;
  expr *e = arena_alloc(&ctx->nodes, sizeof *e + k->n * sizeof e->kid[0]);
  if (ctx->nnodes == ctx->capids) {
    ctx->capids = ctx->capids ? 2 * ctx->capids : 1024;
    ctx->byid = xreallocarray(ctx->byid, ctx->capids, sizeof *ctx->byid);
  }
  ctx->byid[ctx->nnodes] = e;
  e->id = (uint32_t)ctx->nnodes++;
  e->op = (uint8_t)k->op;
  e->flags = flags;
  e->depth = (uint32_t)depth;
  e->nkids = (uint32_t)k->n;
  e->hash = h;
  if (k->op == E_NUM) {
    mpq_init(e->u.num);
    mpq_set(e->u.num, *k->num);
    if (ctx->nnums == ctx->capnums) {
      ctx->capnums = ctx->capnums ? 2 * ctx->capnums : 64;
      ctx->nums = xreallocarray(ctx->nums, ctx->capnums, sizeof *ctx->nums);
    }
    ctx->nums[ctx->nnums++] = e;
  } else if (k->op == E_SYM) {
    e->u.name = k->name;
  } else {
    e->u.fn = k->fn;
  }
  if (k->n)
    memcpy(e->kid, k->kids, k->n * sizeof e->kid[0]);
  ctx->slots[j] = (struct node_slot){e, h};
  return e;
}

/* Whether KID, an operand of an OP node, is spliced into it. */
static bool spliced(expr_op op, const expr *kid) {
  return kid->op == op && !expr_whole(kid);
}

/* Interns an op node; n-ary ops are flattened (kids of the same op are
 * spliced in). */
static expr *make_fn(md_ctx *ctx, expr_op op, uint32_t fn, expr *const *kids,
                     size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!kids[i])
      return NULL;
  key k = {.op = op, .fn = fn, .kids = kids, .n = n};
  if (!is_nary(op))
    return intern(ctx, &k);
  size_t total = 0;
  bool flat = true;
  for (size_t i = 0; i < n; i++) {
    if (spliced(op, kids[i])) {
      total += kids[i]->nkids;
      flat = false;
    } else {
      total++;
    }
  }
  /* a DAG of sums of sums (t2 = t1 + t1, t3 = t2 + t2, ...) would flatten
   * into a tree of 2^k operands: past MD_MAX_FLAT the kids stay whole */
  if (flat || total > MD_MAX_FLAT)
    return intern(ctx, &k);
  /* splicing shared kids unfolds the DAG (kron(t, t) twice as wide as
   * t): past the budget before anything is copied */
  if (too_large(ctx, total))
    return NULL;
  expr **v = xreallocarray(NULL, total, sizeof *v);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (spliced(op, kids[i])) {
      memcpy(v + m, kids[i]->kid, kids[i]->nkids * sizeof *v);
      m += kids[i]->nkids;
    } else {
      v[m++] = kids[i];
    }
  }
  k.kids = v;
  k.n = m;
  expr *e = intern(ctx, &k);
  free(v);
  return e;
}

expr *expr_make(md_ctx *ctx, expr_op op, expr *const *kids, size_t n) {
  return make_fn(ctx, op, 0, kids, n);
}

/* ---- constructors ---- */

expr *expr_num(md_ctx *ctx, const mpq_t v) {
  key k = {.op = E_NUM, .num = (const mpq_t *)v};
  return intern(ctx, &k);
}

expr *expr_int(md_ctx *ctx, long v) {
  mpq_t q;
  mpq_init(q);
  mpq_set_si(q, v, 1);
  expr *e = expr_num(ctx, q);
  mpq_clear(q);
  return e;
}

expr *expr_sym(md_ctx *ctx, const char *name) {
  key k = {.op = E_SYM, .name = md_intern(ctx, name, strlen(name))};
  return intern(ctx, &k);
}

expr *expr_ident(md_ctx *ctx) {
  return ctx->ident;
}
expr *expr_ones(md_ctx *ctx) {
  return ctx->ones;
}

expr *expr_add(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return expr_make(ctx, E_ADD, k, 2);
}

expr *expr_sub(md_ctx *ctx, expr *a, expr *b) {
  return expr_add(ctx, a, expr_neg(ctx, b));
}

expr *expr_neg(md_ctx *ctx, expr *a) {
  if (!a)
    return NULL;
  if (a->op == E_NUM) {
    mpq_t q;
    mpq_init(q);
    mpq_neg(q, a->u.num);
    expr *e = expr_num(ctx, q);
    mpq_clear(q);
    return e;
  }
  return expr_make(ctx, E_NEG, &a, 1);
}

/* A product never starts with a negative number: the sign moves out, so
 * that "-2 A" (which parses as -(2 A)) prints and re-parses as itself. */
static expr *mul_signed(md_ctx *ctx, expr *e) {
  if (!e || e->op != E_MUL || expr_num_sgn(e->kid[0]) >= 0)
    return e;
  expr **v = xreallocarray(NULL, e->nkids, sizeof *v);
  memcpy(v, e->kid, e->nkids * sizeof *v);
  v[0] = expr_neg(ctx, v[0]);
  expr *r = expr_neg(ctx, expr_make(ctx, E_MUL, v, e->nkids));
  free(v);
  return r;
}

expr *expr_mul(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return mul_signed(ctx, expr_make(ctx, E_MUL, k, 2));
}

expr *expr_mul_n(md_ctx *ctx, expr *const *v, size_t n) {
  return n == 1 ? v[0] : mul_signed(ctx, expr_make(ctx, E_MUL, v, n));
}

expr *expr_add_n(md_ctx *ctx, expr *const *v, size_t n) {
  return n == 1 ? v[0] : expr_make(ctx, E_ADD, v, n);
}

expr *expr_div(md_ctx *ctx, expr *a, expr *b) {
  if (a && b && a->op == E_NUM && b->op == E_NUM && mpq_sgn(b->u.num)) {
    mpq_t q;
    mpq_init(q);
    mpq_div(q, a->u.num, b->u.num);
    expr *e = expr_num(ctx, q);
    mpq_clear(q);
    return e;
  }
  expr *k[2] = {a, b};
  return expr_make(ctx, E_DIV, k, 2);
}

expr *expr_had(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return expr_make(ctx, E_HAD, k, 2);
}

expr *expr_hdiv(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return expr_make(ctx, E_HDIV, k, 2);
}

expr *expr_kron(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return expr_make(ctx, E_KRON, k, 2);
}

expr *expr_trans(md_ctx *ctx, expr *a) {
  return expr_make(ctx, E_TRANS, &a, 1);
}

expr *expr_inv(md_ctx *ctx, expr *a) {
  return expr_make(ctx, E_INV, &a, 1);
}

expr *expr_pow(md_ctx *ctx, expr *a, expr *k) {
  if (!a || !k)
    return NULL;
  if (k->op == E_NUM && mpq_sgn(k->u.num) < 0 &&
      mpz_cmp_ui(mpq_denref(k->u.num), 1) == 0) {
    a = expr_inv(ctx, a);
    k = expr_neg(ctx, k);
    if (expr_is_one(k))
      return a;
  }
  expr *v[2] = {a, k};
  return expr_make(ctx, E_POW, v, 2);
}

expr *expr_epow(md_ctx *ctx, expr *a, expr *p) {
  expr *v[2] = {a, p};
  return expr_make(ctx, E_EPOW, v, 2);
}

expr *expr_call(md_ctx *ctx, uint32_t fn, expr *const *args, size_t n) {
  return make_fn(ctx, E_CALL, fn, args, n);
}

expr *expr_call1(md_ctx *ctx, uint32_t fn, expr *a) {
  return expr_call(ctx, fn, &a, 1);
}

expr *expr_inner(md_ctx *ctx, expr *a, expr *b) {
  expr *k[2] = {a, b};
  return expr_make(ctx, E_INNER, k, 2);
}

expr *expr_diff(md_ctx *ctx, expr *f, expr *wrt) {
  expr *k[2] = {f, wrt};
  return expr_make(ctx, E_DIFF, k, 2);
}

expr *expr_hess(md_ctx *ctx, expr *f, expr *wrt) {
  expr *k[2] = {f, wrt};
  return expr_make(ctx, E_HESS, k, 2);
}

expr *expr_tuple(md_ctx *ctx, expr *const *v, size_t n) {
  return expr_make(ctx, E_TUPLE, v, n);
}

/* ---- helpers ---- */

bool expr_is_num(const expr *e) {
  return e && e->op == E_NUM;
}

bool expr_is_int(const expr *e, long *out) {
  if (!expr_is_num(e) || mpz_cmp_ui(mpq_denref(e->u.num), 1) != 0 ||
      !mpz_fits_slong_p(mpq_numref(e->u.num)))
    return false;
  if (out)
    *out = mpz_get_si(mpq_numref(e->u.num));
  return true;
}

bool expr_is_zero(const expr *e) {
  return expr_is_num(e) && mpq_sgn(e->u.num) == 0;
}

bool expr_is_one(const expr *e) {
  return expr_is_num(e) && mpq_cmp_si(e->u.num, 1, 1) == 0;
}

int expr_num_sgn(const expr *e) {
  return expr_is_num(e) ? mpq_sgn(e->u.num) : 0;
}

/* ---- substitution ---- */

void expr_subst_init(expr_subst *s, md_ctx *ctx) {
  s->ctx = ctx;
  md_idmap_init(&s->memo);
}

void expr_subst_clear(expr_subst *s) {
  md_idmap_clear(&s->memo);
}

void expr_subst_bind(expr_subst *s, const expr *sym, expr *value) {
  md_idmap_put(&s->memo, sym, (uintptr_t)value);
}

expr *expr_subst_get(const expr_subst *s, const expr *e) {
  return (expr *)md_idmap_get(&s->memo, e);
}

static expr *subst_rec(expr_subst *s, expr *e) {
  expr *done = expr_subst_get(s, e);
  if (done)
    return done;
  expr *r = e;
  if (e->nkids) {
    expr *small[4];
    expr **kids =
        e->nkids <= 4 ? small : xreallocarray(NULL, e->nkids, sizeof *kids);
    bool changed = false;
    for (size_t i = 0; i < e->nkids; i++) {
      kids[i] = subst_rec(s, e->kid[i]);
      if (!kids[i]) {
        if (kids != small)
          free(kids);
        return NULL;
      }
      changed |= kids[i] != e->kid[i];
    }
    if (changed)
      r = expr_rebuild(s->ctx, e, kids);
    if (kids != small)
      free(kids);
    if (!r)
      return NULL;
  }
  expr_subst_bind(s, e, r);
  return r;
}

expr *expr_subst_apply(expr_subst *s, expr *e) {
  return e ? subst_rec(s, e) : NULL;
}

/* Rebuilds a node of E's kind from new kids, through the constructors so
 * that the invariants hold (a substituted sum is flattened, and so on). */
expr *expr_rebuild(md_ctx *ctx, const expr *e, expr *const *k) {
  switch ((expr_op)e->op) {
  case E_NEG:
    return expr_neg(ctx, k[0]);
  case E_MUL:
    return mul_signed(ctx, expr_make(ctx, E_MUL, k, e->nkids));
  case E_DIV:
    return expr_div(ctx, k[0], k[1]);
  case E_POW:
    return expr_pow(ctx, k[0], k[1]);
  case E_CALL:
    return expr_call(ctx, e->u.fn, k, e->nkids);
  default:
    return expr_make(ctx, (expr_op)e->op, k, e->nkids);
  }
}

const char *expr_op_name(expr_op op) {
  static const char *const names[E_NOPS] = {
      [E_NUM] = "number",
      [E_SYM] = "symbol",
      [E_IDENT] = "I",
      [E_ONES] = "ones",
      [E_ADD] = "sum",
      [E_NEG] = "negation",
      [E_MUL] = "product",
      [E_DIV] = "division",
      [E_HAD] = "Hadamard product",
      [E_HDIV] = "Hadamard quotient",
      [E_KRON] = "Kronecker product",
      [E_TRANS] = "transpose",
      [E_INV] = "inverse",
      [E_POW] = "power",
      [E_EPOW] = "element-wise power",
      [E_CALL] = "call",
      [E_INNER] = "inner product",
      [E_DIFF] = "derivative",
      [E_HESS] = "Hessian",
      [E_TUPLE] = "list",
  };
  return op < E_NOPS ? names[op] : "?";
}

bool expr_has_derivative(const expr *e, md_idmap *seen) {
  if (md_idmap_get(seen, e))
    return false;
  md_idmap_put(seen, e, 1);
  if (e->op == E_DIFF || e->op == E_HESS)
    return true;
  for (size_t i = 0; i < e->nkids; i++)
    if (expr_has_derivative(e->kid[i], seen))
      return true;
  return false;
}

bool expr_contains(const expr *e, const expr *x, uint8_t *seen) {
  if (e == x)
    return true;
  if (seen) {
    if (seen[e->id])
      return false;
    seen[e->id] = 1;
  }
  for (size_t i = 0; i < e->nkids; i++)
    if (expr_contains(e->kid[i], x, seen))
      return true;
  return false;
}

/* ---- md_idmap ---- */

void md_idmap_init(md_idmap *m) {
  *m = (md_idmap){0};
}

/* The first table (MD_IDMAP_FIRST slots) comes from the thread's cache
 * of small blocks, a larger one from malloc (blocks.h). */

static void table_free(uint32_t *keys, size_t cap) {
  if (cap == MD_IDMAP_FIRST)
    md_block_put(MD_BLOCK_IDMAP, keys);
  else
    free(keys);
}

void md_idmap_clear(md_idmap *m) {
  table_free(m->key, m->cap);
  md_idmap_init(m);
}

static size_t id_slot(uint32_t id, size_t cap) {
  return (size_t)((id * 2654435761u) ^ (id >> 16)) & (cap - 1);
}

uintptr_t md_idmap_get(const md_idmap *m, const expr *e) {
  if (!m->cap)
    return 0;
  for (size_t j = id_slot(e->id, m->cap);; j = (j + 1) & (m->cap - 1)) {
    if (m->key[j] == e->id + 1)
      return m->val[j];
    if (!m->key[j])
      return 0;
  }
}

/* The keys and the values are one block, the keys first (CAP is a power
 * of two of at least 32, so the values are aligned): maps are made and
 * dropped by every pass over every line, dozens a line, and one
 * allocation a table instead of two took 5% off the instructions of a
 * filter run (tests/bench, the four templates by X). */
void md_idmap_put(md_idmap *m, const expr *e, uintptr_t v) {
  if (2 * (m->n + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : MD_IDMAP_FIRST;
    uint32_t *keys = cap == MD_IDMAP_FIRST
                         ? md_block_get(MD_BLOCK_IDMAP)
                         : xreallocarray(NULL, cap, sizeof *keys + sizeof v);
    uintptr_t *vals = (uintptr_t *)(keys + cap);
    memset(keys, 0, cap * sizeof *keys);
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->key[i])
        continue;
      size_t j = id_slot(m->key[i] - 1, cap);
      while (keys[j])
        j = (j + 1) & (cap - 1);
      keys[j] = m->key[i];
      vals[j] = m->val[i];
    }
    table_free(m->key, m->cap);
    m->key = keys;
    m->val = vals;
    m->cap = cap;
  }
  size_t j = id_slot(e->id, m->cap);
  while (m->key[j] && m->key[j] != e->id + 1)
    j = (j + 1) & (m->cap - 1);
  if (!m->key[j]) {
    m->key[j] = e->id + 1;
    m->n++;
  }
  m->val[j] = v;
}

/* The nodes of V[0..NV) together, but for those in DONE (may be NULL)
 * and below them. */
static size_t dag_size(const expr *const *v, size_t nv, const md_idmap *done) {
  md_idmap seen;
  md_idmap_init(&seen);
  const expr *small[64];
  size_t n = 0, ntodo = 0, cap = 64;
  const expr **todo = small;
  for (size_t r = 0; r < nv; r++) {
    if (!v[r])
      continue;
    todo[ntodo++] = v[r];
    while (ntodo) {
      const expr *x = todo[--ntodo];
      if (md_idmap_get(&seen, x) || (done && md_idmap_get(done, x)))
        continue;
      md_idmap_put(&seen, x, 1);
      n++;
      for (size_t i = 0; i < x->nkids; i++) {
        if (ntodo == cap)
          scratch_grow((void **)&todo, small, &cap, sizeof *todo);
        todo[ntodo++] = x->kid[i];
      }
    }
  }
  scratch_free(todo, small);
  md_idmap_clear(&seen);
  return n;
}

size_t expr_dag_size(const expr *e) {
  return e ? dag_size(&e, 1, NULL) : 0;
}

size_t expr_dag_size_n(const expr *const *v, size_t n) {
  return dag_size(v, n, NULL);
}

size_t expr_dag_size_new(const expr *e, const md_idmap *done) {
  return e ? dag_size(&e, 1, done) : 0;
}
