/*
 * expr.h - the expression DAG: hash-consed nodes in an arena.
 *
 * Every node is interned in its context: structurally equal expressions
 * are the same node, so equality is pointer equality and a subexpression
 * that occurs many times is stored (and later visited) once.  Nodes are
 * immutable and owned by the context; they live until md_ctx_free().
 *
 * The constructors keep a few invariants that make the printed text
 * re-parse to the very same node:
 *   - sums, products, Hadamard and Kronecker products are flat (n-ary,
 *     associative: (A B) C and A (B C) are one node), up to MD_MAX_FLAT
 *     operands; order is kept;
 *   - a - b is the sum a + (-b); -c of a number c is the number -c;
 *   - p / q of two numbers is the rational p/q (division by 0 stays);
 *   - a product never starts with a negative number: (-2) A is -(2 A);
 *   - x^k with a negative integer k is (x^-1)^-k, and x^-1 is inv(x).
 * Nothing else is simplified here; that is simplify.c's work.
 *
 * Constructors return NULL only when the result would be deeper than
 * MD_MAX_DEPTH, a number of more than MD_MAX_NUM_DIGITS, or past the size
 * budget (MD_MAX_SIZE nodes and operands made since md_ctx_mark: flat nodes
 * unfold a DAG, kron(t, t) being twice as wide as t, and a derivative of n
 * factors of x has n terms of n factors); callers turn that into an error
 * (md_ctx_limit_text).  expr_sym never returns NULL: a symbol is one
 * node, made past the size budget too (ids run out only at 2^32 nodes).
 */
#pragma once

#include "arena.h"

#include <gmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No node is deeper than this, so every recursive walk is bounded. */
#define MD_MAX_DEPTH 100000
/* Nodes and operands (kids) one piece of work may make: 16 Mi, some
 * 200 MB, twice what the benchmark's largest chain takes to simplify
 * (tr((A1 + X) ... (A1499 + X)) by X: 9 Mi). */
#define MD_MAX_SIZE ((size_t)1 << 24)
/* ... and at most 4 n^2 of them for an input of n bytes, but never fewer
 * than this: the families we know make less than n^2 (the most, chains:
 * tr((A1 + X) ... (Ak + X)) by X makes 0.035 n^2), more only where sharing
 * (where, or a function used twice) makes the result exponential in the
 * input, and then the limit comes in seconds, not in minutes
 * (t_k = A t_(k-1) B t_(k-1) by X made 9.7 Mi in 7.6 s at k = 20). */
#define MD_SIZE_FLOOR ((size_t)1 << 22)

/* No number node has a numerator or a denominator of more decimal digits
 * than this, the most a literal may have (MD_MAX_DIGITS, parse.h), so
 * that every constant matdiff prints parses back (a bound of 2^22 bits
 * made 34665 digits that did not); far past any constant a result needs,
 * and far below what doubling coefficients reach (t_k = 4 t_(k-1)
 * t_(k-1)).  md_num_fits() tells. */
#define MD_MAX_NUM_DIGITS 20000u
/* The bits of 10^MD_MAX_NUM_DIGITS: a number of fewer has at most that
 * many digits, one of more has more. */
#define MD_MAX_NUM_BITS 66439u
/* Whether Q's numerator and denominator have at most MD_MAX_NUM_DIGITS
 * digits each. */
bool md_num_fits(const mpq_t q);

/* An n-ary node is flattened only up to this many operands: a sum of a
 * sum with itself, again and again, is a DAG whose flat form would have
 * exponentially many (such a node keeps a kid of its own kind). */
#define MD_MAX_FLAT (1u << 12)
/* ... and a sum of more than this many terms stays whole as a term of
 * another sum (here and in the normal form, which neither splices nor
 * scales it term by term): t_i = t_(i-1) + sin(t_(i-1)) is a DAG of k
 * sums of at most this many terms, not k sums of up to k terms (k^2/2
 * nodes, and as much text printed).  No textbook result comes near it. */
#define MD_WHOLE_SUM 64u
/* ... and so does a Hadamard product of more than this many factors in
 * one that contains it: the derivative of a product of n factors has n
 * terms of n - 1 factors each, so t_i = p ./ t_(i-1) .* t_(i-1), flat,
 * had a derivative of k^3 operands (216 s at k = 200). */
#define MD_WHOLE_HAD 16u
/* ... and a matrix product of more than this many factors: the
 * derivative of t_i = exp(t_(i-1))^T O t_(i-1), flat, had k^3 factors
 * (a flat product of 2k factors at each level). */
#define MD_WHOLE_MUL 16u

typedef enum expr_op {
  E_NUM,   /* exact rational constant (value in num) */
  E_SYM,   /* symbol (name) */
  E_IDENT, /* I: identity matrix of inferred size */
  E_ONES,  /* ones: all-ones vector of inferred size */
  E_ADD,   /* a + b + ...    (n >= 2) */
  E_NEG,   /* -a */
  E_MUL,   /* a b ...: matrix product or scaling (n >= 2) */
  E_DIV,   /* a / s */
  E_HAD,   /* a .* b .* ...  (n >= 2) */
  E_HDIV,  /* a ./ b */
  E_KRON,  /* a ⊗ b ⊗ ...    (n >= 2) */
  E_TRANS, /* a^T */
  E_INV,   /* a^-1 */
  E_POW,   /* a^k: kid[1] is an E_NUM exponent */
  E_EPOW,  /* a .^ p: kid[1] is an E_NUM exponent */
  E_CALL,  /* fn(args): function id in fn */
  E_INNER, /* <a, b> */
  E_DIFF,  /* d/dX f: kid[0] = f, kid[1] = X or vec(X) */
  E_HESS,  /* hess(f, x) */
  E_TUPLE, /* (a, b, ...): only as a parse-time intermediate */
  E_NOPS
} expr_op;

/* Built-in functions.  User functions (from rules) get ids >= FN_NBUILTIN. */
typedef enum md_fn {
  FN_TR,
  FN_DET,
  FN_LOGDET,
  FN_DIAG,
  FN_VEC,
  FN_SUM,
  FN_NORM2,
  FN_NORM1,
  FN_SOFTMAX,
  FN_LOGSUMEXP,
  /* element-wise */
  FN_EXP,
  FN_LOG,
  FN_SQRT,
  FN_SIN,
  FN_COS,
  FN_TAN,
  FN_TANH,
  FN_ABS,
  FN_SIGN,
  FN_STEP, /* Heaviside: 1 where positive, else 0 */
  FN_RELU,
  FN_SIGMOID,
  FN_SOFTPLUS,
  FN_NBUILTIN
} md_fn;

/* How a function's result shape follows from its argument's. */
typedef enum fn_class {
  FC_ELEMWISE,     /* same shape */
  FC_SQUARE_TO_SC, /* square matrix -> scalar (tr, det, logdet) */
  FC_ANY_TO_SC,    /* anything -> scalar (sum, norms, logsumexp) */
  FC_VEC_TO_VEC,   /* vector -> vector (softmax) */
  FC_DIAG,         /* vector -> diagonal matrix, square -> vector */
  FC_VEC,          /* m×n -> mn×1 */
} fn_class;

typedef struct fn_info {
  const char *name;
  unsigned arity;
  fn_class cls;
} fn_info;

/* Node flags. */
enum {
  EF_CLOSED = 1u << 0, /* no symbol inside (I, ones, numbers...) */
  EF_CONST = 1u << 1,  /* numbers and arithmetic on them only */
  /* closed, and built from numbers, I and ones by element-wise operations
   * (+ - .* ./ .^, transposes, scaling by numbers, exp and the other
   * element-wise functions): each entry depends only on whether its row
   * and column are equal, by the same value at every size */
  EF_UNIFORM = 1u << 2,
  /* no transpose inside (E_TRANS, or <A, B>, which is tr(A^T B)): its
   * transpose is never written shorter (simplify.c's presentation does not
   * try it) */
  EF_NO_TRANS = 1u << 3,
};

typedef struct expr expr;
struct expr {
  uint32_t id; /* dense 0..n-1 in creation order: index of side tables */
  uint8_t op;  /* expr_op */
  uint8_t flags;
  uint32_t depth;
  uint32_t nkids;
  uint32_t hash;
  union {
    mpq_t num;        /* E_NUM */
    const char *name; /* E_SYM: interned, so compare pointers */
    uint32_t fn;      /* E_CALL */
  } u;
  expr *kid[];
};

/* Whether E, a sum, a .* or a product, stays whole as an operand of a
 * node of its own kind (past MD_WHOLE_SUM, MD_WHOLE_HAD or MD_WHOLE_MUL):
 * the one rule the constructors, the normal form and the presentation
 * all follow. */
static inline bool expr_whole(const expr *e) {
  return (e->op == E_ADD && e->nkids > MD_WHOLE_SUM) ||
         (e->op == E_HAD && e->nkids > MD_WHOLE_HAD) ||
         (e->op == E_MUL && e->nkids > MD_WHOLE_MUL);
}

typedef struct md_ctx md_ctx;

/* The environment variable NAME as a limit from LO to below DFLT, or
 * DFLT: the tests and the fuzzers lower limits to reach them with small
 * inputs (MATDIFF_MAX_DEPTH, MATDIFF_MAX_SIZE, MATDIFF_EVAL_WORK,
 * MATDIFF_CHECK_WORK, MATDIFF_SIMPLIFY_WORK). */
size_t md_knob(const char *name, size_t lo, size_t dflt);
/* A work budget of the simplifier's passes (simplify.c, normal.c,
 * ewise.c): DFLT, or as much less, in proportion, as
 * MATDIFF_SIMPLIFY_WORK asks of MD_WORK_SCALE; at least 1.  Read once per
 * pass object, not per call. */
#define MD_WORK_SCALE 20000u
size_t md_work_budget(size_t dflt);

md_ctx *md_ctx_new(void);
void md_ctx_free(md_ctx *ctx);
size_t md_ctx_nnodes(const md_ctx *ctx);
/* How many nodes were asked for so far, made or found: a measure of
 * work (each is a look-up in the node table, a cache miss when the
 * table is large). */
size_t md_ctx_asked(const md_ctx *ctx);
/* The depth past which constructors return NULL: MD_MAX_DEPTH, or less
 * when the environment variable MATDIFF_MAX_DEPTH (read once, by
 * md_ctx_new) asks for less.  The tests lower it to force every caller's
 * too-deep path with small inputs. */
unsigned md_ctx_max_depth(const md_ctx *ctx);
/* Starts the size budget of a new piece of work: MD_MAX_SIZE, or less
 * when MATDIFF_MAX_SIZE asks for less (read by md_ctx_new, as
 * MATDIFF_MAX_DEPTH is).  md_parse does, for each source: the work for a
 * line does not depend on the lines before it. */
void md_ctx_mark(md_ctx *ctx);
/* Sets the size budget of the work on an input of N bytes (a line): 4 N^2
 * nodes and operands, at least MD_SIZE_FLOOR, at most the maximum above.
 * The driver and check do, for each line they read. */
void md_ctx_scale(md_ctx *ctx, size_t n);
/* The limit the last NULL from a constructor ran into, as messages say
 * it: "nested too deeply (more than 2000 levels)" or "too large (more
 * than 16777216 nodes and operands)". */
void md_ctx_limit_text(const md_ctx *ctx, char *buf, size_t size);
/* A user's rewrite rule that went on rewriting past the rewriter's
 * budget (rewrite.h): the next md_ctx_limit_text names it. */
void md_ctx_limit_rule(md_ctx *ctx, const char *file, unsigned line);
/* A number past MD_MAX_NUM_DIGITS was refused (normal.c's coefficients say
 * so too): the next md_ctx_limit_text says which limit. */
void md_ctx_limit_number(md_ctx *ctx);
/* ... or that a product would have more than N factors (normal.c) */
void md_ctx_limit_factors(md_ctx *ctx, size_t n);
bool md_ctx_limit_is_rule(const md_ctx *ctx);
/* How many times a constructor has returned NULL for a limit: a pass
 * that fails may compare it with the count before it to tell a limit
 * from a form it cannot take. */
size_t md_ctx_limits(const md_ctx *ctx);
arena *md_ctx_arena(md_ctx *ctx);

/* Per-line scratch.  md_ctx_save() marks the nodes made so far;
 * md_ctx_restore() then removes every node made after the mark (their
 * memory is returned, their ids are given out again), so that the tables
 * of the next line, sized by md_ctx_nnodes(), do not grow with the lines
 * before it.  It does nothing, and returns false, when something made
 * since the mark may be kept beyond it: a function, a rule, a module's
 * slot (each calls md_ctx_pin).  Names (md_intern) are never removed.
 * The caller must hold no node made after the mark. */
typedef struct md_ctx_point {
  size_t nnodes, nnums, pins;
  arena_mark mem;
} md_ctx_point;

md_ctx_point md_ctx_save(const md_ctx *ctx);
bool md_ctx_restore(md_ctx *ctx, const md_ctx_point *p);
/* Says that nodes made so far are kept by something that outlives the
 * current line (see md_ctx_restore). */
void md_ctx_pin(md_ctx *ctx);
/* A cache of comparisons of two nodes by the canonical order (normal.c),
 * which depends only on their structure: a result holds for the life of
 * the context.  Direct-mapped: a lookup may miss what was put. */
bool md_ctx_cmp_get(const md_ctx *ctx, const expr *a, const expr *b, int *c);
void md_ctx_cmp_put(const md_ctx *ctx, const expr *a, const expr *b, int c);
/* One slot of data a module keeps with the context (simplify.c keeps the
 * built-in rewrite rules there, loaded once): RELEASE frees it when the
 * context is freed or the slot is set again. */
void *md_ctx_slot(const md_ctx *ctx);
void md_ctx_set_slot(md_ctx *ctx, void *p, void (*release)(void *));

/* Interned names: equal strings give the same pointer. */
const char *md_intern(md_ctx *ctx, const char *s, size_t len);

/* Functions: built-ins, then any added by md_fn_add(). */
const fn_info *md_fn_get(const md_ctx *ctx, uint32_t fn);
/* The number of functions: ids run from 0 to md_fn_count() - 1. */
size_t md_fn_count(const md_ctx *ctx);
/* Returns the id of function NAME, or -1. */
int md_fn_lookup(const md_ctx *ctx, const char *name, size_t len);
uint32_t md_fn_add(md_ctx *ctx, const char *name, unsigned arity, fn_class cls);

/* Constructors (see the invariants above).  Kids arrays are copied. */
expr *expr_num(md_ctx *ctx, const mpq_t v);
expr *expr_int(md_ctx *ctx, long v);
expr *expr_sym(md_ctx *ctx, const char *name); /* NAME need not be interned */
expr *expr_ident(md_ctx *ctx);
expr *expr_ones(md_ctx *ctx);
expr *expr_add(md_ctx *ctx, expr *a, expr *b);
expr *expr_sub(md_ctx *ctx, expr *a, expr *b);
expr *expr_neg(md_ctx *ctx, expr *a);
expr *expr_mul(md_ctx *ctx, expr *a, expr *b);
expr *expr_mul_n(md_ctx *ctx, expr *const *v, size_t n); /* n >= 1 */
expr *expr_add_n(md_ctx *ctx, expr *const *v, size_t n); /* n >= 1 */
expr *expr_div(md_ctx *ctx, expr *a, expr *b);
expr *expr_had(md_ctx *ctx, expr *a, expr *b);
expr *expr_hdiv(md_ctx *ctx, expr *a, expr *b);
expr *expr_kron(md_ctx *ctx, expr *a, expr *b);
expr *expr_trans(md_ctx *ctx, expr *a);
expr *expr_inv(md_ctx *ctx, expr *a);
expr *expr_pow(md_ctx *ctx, expr *a, expr *k);  /* K must be E_NUM */
expr *expr_epow(md_ctx *ctx, expr *a, expr *p); /* P must be E_NUM */
expr *expr_call(md_ctx *ctx, uint32_t fn, expr *const *args, size_t n);
expr *expr_call1(md_ctx *ctx, uint32_t fn, expr *a);
expr *expr_inner(md_ctx *ctx, expr *a, expr *b);
expr *expr_diff(md_ctx *ctx, expr *f, expr *wrt);
expr *expr_hess(md_ctx *ctx, expr *f, expr *wrt);
expr *expr_tuple(md_ctx *ctx, expr *const *v, size_t n);

/* The raw interner: a node with exactly these fields, no normalisation
 * beyond flattening.  For n-ary ops N must be >= 2. */
expr *expr_make(md_ctx *ctx, expr_op op, expr *const *kids, size_t n);

/* Helpers. */
bool expr_is_num(const expr *e);
bool expr_is_int(const expr *e, long *out); /* integer fitting in a long */
bool expr_is_zero(const expr *e);
bool expr_is_one(const expr *e);
int expr_num_sgn(const expr *e);
/* Whether X occurs in E.  SEEN as above; NULL walks E as a tree, which
 * is right only for small trees such as the patterns of rules. */
bool expr_contains(const expr *e, const expr *x, uint8_t *seen);
/* A map from node ids to values (0 = absent): side tables whose size
 * follows the work done, not the number of nodes in the context. */
typedef struct md_idmap {
  uint32_t *key;  /* id + 1; 0 is an empty slot */
  uintptr_t *val; /* in KEY's block */
  size_t cap, n;
} md_idmap;

void md_idmap_init(md_idmap *m);
void md_idmap_clear(md_idmap *m);
uintptr_t md_idmap_get(const md_idmap *m, const expr *e);
void md_idmap_put(md_idmap *m, const expr *e, uintptr_t v);
/* Whether a d/dX or hess node occurs in E; SEEN (empty at first) marks
 * the nodes visited, each once, and may be shared by several calls. */
bool expr_has_derivative(const expr *e, md_idmap *seen);

/* The number of distinct nodes under E (0 for NULL), walked as the DAG it
 * is, without recursion. */
size_t expr_dag_size(const expr *e);
/* The nodes of the N expressions V together (NULLs skipped). */
size_t expr_dag_size_n(const expr *const *v, size_t n);
/* The nodes under E but for those in DONE, and below them: what a pass
 * memoised in DONE has left to do (its work budget, counted in time
 * linear in that). */
size_t expr_dag_size_new(const expr *e, const md_idmap *done);

/* Replaces symbols by expressions, memoised over the whole DAG so that
 * the work is linear in its size, however many symbols are bound.  A
 * binding made after some nodes were visited does not reach into them
 * (bind first, then apply).  apply returns NULL if a result is too deep. */
typedef struct expr_subst {
  md_ctx *ctx;
  md_idmap memo; /* the node's image (sparse: a substitution in a few
                  * nodes of a large context costs what it touches) */
} expr_subst;

void expr_subst_init(expr_subst *s, md_ctx *ctx);
void expr_subst_clear(expr_subst *s);
void expr_subst_bind(expr_subst *s, const expr *sym, expr *value);
/* The image recorded for E, or NULL. */
expr *expr_subst_get(const expr_subst *s, const expr *e);
expr *expr_subst_apply(expr_subst *s, expr *e);

/* A node of the same kind as E with new kids, through the constructors. */
expr *expr_rebuild(md_ctx *ctx, const expr *e, expr *const *kids);

const char *expr_op_name(expr_op op);
