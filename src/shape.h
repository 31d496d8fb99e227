/*
 * shape.h - kinds, symbolic dimensions and their unification.
 *
 * Every expression has a shape rows×cols whose sizes are dimensions:
 * integers, names declared with let (rigid: m and n are different sizes),
 * unknowns (unified as the expression demands) and products of these
 * (kron, vec).  A 1×1 shape is a scalar, k×1 a vector, anything else a
 * matrix.  Unknown sizes are never 1: a matrix symbol stays a matrix.
 *
 * An md_shapes holds one inference: the dimensions, the shape of each
 * symbol (from an md_env of declarations, or from its name) and of each
 * node inferred so far.  Use one per expression, or one per identity
 * (both sides share their sizes).  Closed terms (no symbol: I, ones,
 * 2 I) are polymorphic: each occurrence gets sizes of its own, so the
 * shape recorded for such a node is only its most general form.
 *
 * Ownership: an md_env owns its declaration array (names are interned in
 * the context); an md_shapes owns its tables, not the nodes.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "parse.h"

typedef uint32_t md_dim;

typedef struct md_shape {
  md_dim r, c;
} md_shape;

/* Declarations in scope: a later one of the same name wins. */
typedef struct md_env {
  md_decl *v;
  size_t n, cap;
} md_env;

void md_env_init(md_env *env);
void md_env_clear(md_env *env);
void md_env_add(md_env *env, const md_decl *d);
/* The declaration of NAME (interned), or NULL. */
const md_decl *md_env_find(const md_env *env, const char *name);

typedef struct md_shapes md_shapes;

/* Sizes one md_shapes may make.  Every use of a closed term copies its
 * sizes (a Kronecker product of n copies of ones has n of them), so a
 * simplifier that builds many nodes over a wide closed one makes n sizes
 * for each: past this many, no node is inferred any more (an error), and
 * md_shapes_full says that whatever was decided with these shapes since
 * cannot be trusted. */
#define MD_MAX_DIMS ((size_t)1 << 22)

md_shapes *md_shapes_new(md_ctx *ctx, const md_env *env);
/* The same for inferring a few nodes of a large context (the rules of a
 * file, a line at a time): its table of shapes is sparse, by node, where
 * md_shapes_new's is dense, by id (each new one as large as the context:
 * reading 16 000 definitions was quadratic). */
md_shapes *md_shapes_new_sparse(md_ctx *ctx, const md_env *env);
void md_shapes_free(md_shapes *s);
bool md_shapes_full(const md_shapes *s);

/* Infers the shape of E and everything below it.  LOCS (may be NULL)
 * places errors in SRC.  Returns false after adding one error to ERR. */
bool md_shape_infer(md_shapes *s, expr *e, const md_parsed *locs,
                    const md_source *src, md_errors *err, md_shape *out);
/* The shape of a node already inferred (or created from inferred kids by
 * md_shape_derive). */
md_shape md_shape_of(md_shapes *s, const expr *e);
bool md_shape_known(const md_shapes *s, const expr *e);
/* Infers a node built after inference from kids whose shapes are known;
 * false if the kids do not fit. */
bool md_shape_derive(md_shapes *s, expr *e);

/* How a flat product groups, as inference reads it: left to right, a
 * scalar scales, and where the chain breaks a run of factors that
 * multiplies to 1×1 scales too, with runs of its own inside (M u^T u N is
 * M (u^T u) N; c^T A c^T x y in a longer product is c^T A (c^T x) y).
 * K[0..n) are the shapes of an inferred product's factors (md_shape_of).
 * Sets RUN[i] to the index after the run that starts at factor i, or to
 * 0 where none starts: factors i .. RUN[i] - 1 multiply to 1×1, and a
 * RUN[j] set for i < j < RUN[i] is a run inside that one.  Only compares
 * sizes, never unifies them, so the recorded (most general) shapes of
 * closed factors may be given.  False if the factors do not multiply
 * (not an inferred product). */
bool md_shape_runs(md_shapes *s, const md_shape *k, size_t n, size_t *run);

bool md_shape_is_scalar(md_shapes *s, md_shape sh);
bool md_shape_is_vector(md_shapes *s, md_shape sh); /* k×1, k not 1 */
bool md_dim_is_one(md_shapes *s, md_dim d);
bool md_dim_equal(md_shapes *s, md_dim a, md_dim b);
/* D is still an unknown that only closed terms have: a size of I or ones
 * (or of a term built on them) that no symbol's size has been unified
 * with.  Such a term takes whatever size its place demands. */
bool md_dim_is_generic(md_shapes *s, md_dim d);

/* The declared or default kind of a symbol. */
md_kind md_shape_sym_kind(md_shapes *s, const expr *sym);
/* Default kind by name: A is a matrix, alpha a scalar, x a vector. */
md_kind md_default_kind(const char *name);

/* Writes "m×n" (or "m·n×1", "3×3") into BUF. */
void md_shape_format(md_shapes *s, md_shape sh, char *buf, size_t size);

/* ---- concrete sizes, for the numeric evaluator (eval.c) ----
 *
 * The evaluator gives every free or named size a number; these calls let
 * it see what a dimension has become after unification.  Dimensions are
 * the values 0 .. md_shapes_ndims() - 1. */

/* Makes shapes A and B the same, as the two sides of an identity must be.
 * False if they cannot be; some of their sizes may be unified by then. */
bool md_shape_unify(md_shapes *s, md_shape a, md_shape b);

size_t md_shapes_ndims(const md_shapes *s);

typedef enum md_dim_kind {
  MD_DIM_INT,     /* a given integer size (1 for scalars) */
  MD_DIM_NAME,    /* a declared name: n in let x : vector(n) */
  MD_DIM_FREE,    /* an unknown nothing has fixed */
  MD_DIM_PRODUCT, /* a · b (kron, vec) */
} md_dim_kind;

typedef struct md_dim_info {
  md_dim root; /* the representative: equal dimensions have one root */
  md_dim_kind kind;
  long value;  /* MD_DIM_INT */
  md_dim a, b; /* MD_DIM_PRODUCT: the factors */
} md_dim_info;

/* The factors of D, roots that are not products, appended to V[*N..)
 * left to right; false when there are more than CAP (at most 16) of them,
 * found without walking further (a product can have 2^k factors). */
bool md_dim_factors(md_shapes *s, md_dim d, md_dim *v, size_t *n, size_t cap);
/* A product's factors counted: distinct factors, by KEY (ascending), each
 * N times; X says which (a dimension, or a local of the NumPy printer).
 * A tower of k Kronecker squares of t has 2^k factors n and one count.
 * MD_MAX_COUNTS distinct factors at most. */
enum { MD_MAX_COUNTS = 16 };
typedef struct md_count {
  uint64_t key, n;
  uint32_t x;
} md_count;
typedef struct md_counts {
  size_t n;
  md_count f[MD_MAX_COUNTS];
} md_counts;

/* A + B into OUT; false past MD_MAX_COUNTS factors or 2^62 of one. */
bool md_counts_add(const md_counts *a, const md_counts *b, md_counts *out);
/* Takes out of A and B the factors they share, as often as both have
 * them (products equal as multisets cancel to nothing). */
void md_counts_cancel(md_counts *a, md_counts *b);

/* The factors of D counted into *OUT (X: the leaf dimension), in time
 * linear in D's DAG (a tower of Kronecker squares has 2^k factors, one
 * leaf); false past MD_MAX_COUNTS leaves or a count past 2^62. */
bool md_dim_counts(md_shapes *s, md_dim d, md_counts *out);

/* What D stands for now (the information of its root). */
md_dim_info md_dim_get(md_shapes *s, md_dim d);
/* Writes the name of D as messages show it ("n", "3", "m·n"). */
void md_dim_format(md_shapes *s, md_dim d, char *buf, size_t size);
