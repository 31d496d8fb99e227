/*
 * print_numpy.h - the array-code printers: NumPy (SPEC 6, --format numpy)
 * and its two siblings, PyTorch (--format torch) and Octave/MATLAB
 * (--format octave), which differ from it only in spelling.
 *
 * Writes a self-contained Python function
 *
 *   import numpy as np
 *
 *   def NAME(P1, P2, ...):
 *       x = np.reshape(x, (-1, 1))      (each vector parameter it uses)
 *       t1 = ...                        (each shared subexpression, once)
 *       return <E>
 *
 * whose parameters are PARAMS (symbols, in the order given) and whose
 * result is the value of E, of shape SHAPE (the shape the caller expects
 * of E; it sizes closed results such as 2 I, 0 or ones ones^T).
 * SHAPES must hold the shapes of E's nodes (md_shape_infer / md_simplify);
 * the printer may record the shape of a node it lacks (md_shape_derive),
 * and never changes the DAG.  Output is appended to OUT only on success.
 * Returns false, after adding one error to ERR, when E cannot be written.
 *
 * Conventions (for matdiff(1)):
 *   - scalars are Python numbers; a scalar result is a float;
 *   - vectors are accepted as 1-D or n×1 arrays; a vector (k×1) result is
 *     1-D; a row (1×k, e.g. a gradient in numerator layout) and a matrix
 *     are 2-D;
 *   - a parameter that is a Python keyword or a name the code uses (np,
 *     float) gets a trailing _ (lambda_); locals t1, t2, ... skip the
 *     parameters' names;
 *   - sizes come from the parameters (X.shape[0]); a size that none of
 *     them fixes (tr(I), sum(ones), the 0 gradient by a variable absent
 *     from the expression) is an error: "the size of I is not fixed by
 *     any parameter of the function";
 *   - a function defined with --rules is an error naming it ("no NumPy
 *     form for nsq"): only built-ins are translated;
 *   - products follow shape.c's reading of a flat product: @ between
 *     matrices, * for scalars, and a run that multiplies to 1×1 (x^T A x)
 *     is taken out as a number with (...).item();
 *   - logdet is np.linalg.slogdet(X)[1] (log |det X|), norm2 the
 *     Frobenius norm, norm1 entry-wise, vec column-major (order='F'),
 *     diag of a matrix a column; softplus is np.logaddexp(0, x), relu
 *     np.maximum(x, 0), step np.heaviside(x, 0.0) (0 at 0), a scalar to
 *     a fractional or symbolic power np.power (nan, not complex, for a
 *     negative base);
 *   - nothing overflows for want of subtracting a maximum: softmax(u)
 *     is e / sum(e) with e = exp(u - max(u)), logsumexp(u) (and
 *     log(sum(exp(u)))) m + log(sum(exp(u - m))) with m = max(u), and
 *     a node whose value does not change when exp(u) is scaled (degree
 *     0 in it: exp(u) / sum(exp(u)), A^T exp(u) / (2 sum(exp(u))), the
 *     Hessian of logsumexp...) is computed with exp(u - max(u)) in place
 *     of exp(u), u a vector or matrix (exp(u^T) is its transpose);
 *   - integers of more than 30 digits, and fractions with such parts, are
 *     written as the nearest double (NumPy computes in doubles; CPython
 *     rejects literals of more than 4300 digits);
 *   - a node used more than once (not a symbol or a number) is computed
 *     once into a local; nests deeper than 20 and chains longer than 50
 *     operands are split into locals too, so that CPython compiles any
 *     result (it refuses 200 nested brackets).  Closed terms (I, ones,
 *     2 I) are written where they occur.
 */
#pragma once

#include "diag.h"
#include "expr.h"
#include "shape.h"
#include "strbuf.h"

typedef enum md_code_lang {
  MD_CODE_NUMPY,
  MD_CODE_TORCH,  /* the same function over torch tensors */
  MD_CODE_OCTAVE, /* a function file for Octave and MATLAB */
} md_code_lang;

/* One function computing several results at once (a value and its
 * gradients: backpropagation as code).  Every node the results share is
 * computed once, into a local, so the forward pass that the value needs
 * is the one the gradients reuse.
 *
 * Python (NumPy, PyTorch) returns RESULTS[0] alone when there is one and
 * no VALUE, else the tuple (RESULTS[0], ..., RESULTS[n-1]); with VALUE,
 * the pair (VALUE, that).  Octave writes
 *   function [f, OUTS[0], ..., OUTS[n-1]] = NAME(P1, ...)
 * (f only with VALUE; OUTS NULL: y).
 *
 * PyTorch: every parameter used goes through torch.as_tensor (NumPy arrays
 * and numbers are welcome), a scalar result is a 0-d tensor, nothing leaves
 * the autograd graph (a 1×1 product is .squeeze()d, not .item()ed), so
 * autograd can check the function.  Constants (torch.eye, torch.ones)
 * take torch's default dtype.
 *
 * Octave: products of matrices are *, every scalar product .*, transposes
 * .', vectors columns (parameters x(:) first), scalar results numbers;
 * log |det X| is log(abs(det(X))). */
typedef struct md_code_fn {
  md_code_lang lang;
  const char *name;
  const expr *const *params;
  size_t nparams;
  const expr *value; /* NULL, or the value to return first */
  md_shape value_shape;
  const expr *const *results;
  const md_shape *shapes;  /* the expected shape of each result */
  const char *const *outs; /* Octave's output names; NULL: y */
  size_t nresults;
} md_code_fn;

bool md_print_code(strbuf *out, md_ctx *ctx, md_shapes *shapes,
                   const md_code_fn *fn, md_errors *err);

/* A function of PARAMS that returns E: md_print_code for one result. */
bool md_print_numpy(strbuf *out, md_ctx *ctx, md_shapes *shapes, const expr *e,
                    md_shape shape, const expr *const *params, size_t nparams,
                    const char *name, md_errors *err);
