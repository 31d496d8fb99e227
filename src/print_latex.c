/*
 * print_latex.c - expressions as LaTeX math (SPEC 6); see print_latex.h.
 *
 * The output is for people: it need not parse back, but it must compile
 * with plain pdflatex + amsmath and render in MathJax 3 (tests/latex/
 * checks both), and it must not read differently from the expression.
 *
 * Symbols.  A name is a base, then an optional subscript made of the
 * base's trailing digits and of the parts after each '_', joined by
 * commas: W1 -> W_{1}, sigma_2 -> sigma_{2}, x_init -> x_{init},
 * W1_a_b -> W_{1,a,b} (empty parts, as in x__a, are dropped).  The base
 * is set by the symbol's kind (its declaration, else its name: SPEC 2):
 *                    one letter     Greek name           longer name
 *   scalar           s              \lambda, \Sigma      \mathit{rate}
 *   vector, matrix   \mathbf{A}     \boldsymbol{\Sigma}  \mathbf{rate}
 * A Greek name is one that LaTeX has a macro for: every lower-case one
 * but omicron, and the capitals Gamma, Delta, Theta, Lambda, Xi, Pi,
 * Sigma, Upsilon, Phi, Psi, Omega.  The other capitals (Alpha, Beta, ...)
 * look like Latin letters, so they are written as words (\mathbf{Beta})
 * and cannot be confused with B.  In a subscript, a number stays as it
 * is, a Greek name is its letter, one letter is italic and a longer part
 * is upright (\mathrm{init}).
 *
 * Operators.  I is \mathbf{I}, ones is \mathbf{1}; ^\top, ^{-1},
 * ^{-\top}, ^{k}, ^{-k} (for (X^-1)^k), ^{\circ p} (element-wise power);
 * \odot, \oslash (./), \otimes; a / s is \frac{a}{s}, a rational is
 * \frac{p}{q} (but p/q in an exponent); norms \lVert x \rVert and
 * \lVert x \rVert_{1}; \langle a, b \rangle; \operatorname{tr}, \det,
 * \log\det, \exp, \log, \sin, \cos, \tan, \tanh, \sqrt{x}, and
 * \operatorname{name} for every other function, user functions included.
 * d/dX f is \frac{\partial f}{\partial \mathbf{X}}, or
 * \frac{\partial}{\partial \mathbf{X}} \left( f \right) when f is a sum,
 * a negation, starts with a number or holds a fraction; hess(f, x) is
 * \frac{\partial^2 f}{\partial \mathbf{x} \, \partial \mathbf{x}^\top}
 * (\partial s^{2} below the line for a scalar s).
 *
 * Parentheses.  The levels of print_text.c, with three changes made for
 * a human reader, who knows no MATLAB precedence:
 *   - juxtaposition, \odot, \oslash and \otimes are one level, but an
 *     operand that is a product of another kind is always bracketed:
 *     \left( \mathbf{a} \odot \mathbf{b} \right) \mathbf{c},
 *     \mathbf{A} \left( \mathbf{B} \otimes \mathbf{C} \right) \mathbf{D};
 *   - the operand of ^\top, ^{-1}, ^{k} is an atom (a symbol, a call, a
 *     norm...), else bracketed: \left( \mathbf{A}^{-1} \right)^\top, as
 *     TeX forbids a double superscript;
 *   - fractions are atoms in products but bracketed under a superscript.
 * Grouping brackets are \left( \right); the brackets of a function's
 * argument are plain ( ) unless the argument holds a fraction.
 *
 * Products are juxtaposed, with \, beside a longer name (so that
 * \mathit{ab} \, \mathit{cd} is not read as one word) and \cdot before a
 * number (\mathbf{A} \cdot 2).
 *
 * Limit: TeX allows 255 nested groups, so an expression nested deeper
 * than about 80 levels compiles in MathJax but not in pdflatex.
 */
#include "print_latex.h"

#include <stdlib.h>
#include <string.h>

/* Precedence levels, loosest first. */
enum {
  L_DIFF, /* \frac{\partial}{\partial x} \left( f \right) */
  L_SUM,
  L_NEG,
  L_PROD, /* juxtaposition, \odot, \oslash, \otimes */
  L_FRAC, /* \frac{a}{b}, \frac{\partial f}{\partial x} */
  L_POST, /* ^\top ^{-1} ^{k} ^{\circ p} */
  L_ATOM,
};

typedef struct lprinter {
  const md_ctx *ctx;
  md_shapes *shapes; /* may be NULL: default kinds */
  strbuf *out;
  uint8_t *tall; /* by node id: 0 unknown, 1 no fraction inside, 2 one */
} lprinter;

static void print(lprinter *p, const expr *e);

/* ---- symbols ---- */

static const char *const greek_lower[] = {
    "alpha", "beta",  "gamma",   "delta", "epsilon", "zeta", "eta",  "theta",
    "iota",  "kappa", "lambda",  "mu",    "nu",      "xi",   "pi",   "rho",
    "sigma", "tau",   "upsilon", "phi",   "chi",     "psi",  "omega"};
static const char *const greek_upper[] = {"Gamma", "Delta", "Theta", "Lambda",
                                          "Xi",    "Pi",    "Sigma", "Upsilon",
                                          "Phi",   "Psi",   "Omega"};

/* Whether the N bytes at S are a Greek name LaTeX has a macro for (the
 * macro is the name after a backslash). */
static bool is_greek(const char *s, size_t n) {
  const char *const *t = s[0] >= 'a' ? greek_lower : greek_upper;
  size_t nt = s[0] >= 'a' ? sizeof greek_lower / sizeof *greek_lower
                          : sizeof greek_upper / sizeof *greek_upper;
  for (size_t i = 0; i < nt; i++)
    if (strlen(t[i]) == n && memcmp(t[i], s, n) == 0)
      return true;
  return false;
}

static bool all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* The length of NAME's base: what comes before its first '_' and its
 * trailing digits (W12_a -> W), never empty. */
static size_t base_len(const char *name) {
  size_t u = strcspn(name, "_");
  size_t k = u;
  while (k > 1 && name[k - 1] >= '0' && name[k - 1] <= '9')
    k--;
  return k;
}

/* Whether NAME's base is written as a word (\mathit{rate}). */
static bool is_word(const char *name) {
  size_t k = base_len(name);
  return k > 1 && !is_greek(name, k);
}

static void print_base(lprinter *p, const char *s, size_t n, bool bold) {
  strbuf *o = p->out;
  if (is_greek(s, n)) {
    sb_puts(o, bold ? "\\boldsymbol{\\" : "\\");
    sb_putn(o, s, n);
    if (bold)
      sb_putc(o, '}');
  } else if (n == 1 && !bold) {
    sb_putc(o, s[0]);
  } else {
    sb_puts(o, bold ? "\\mathbf{" : "\\mathit{");
    sb_putn(o, s, n);
    sb_putc(o, '}');
  }
}

/* One part of a subscript: 2, \alpha, i or \mathrm{init}. */
static void print_subpart(lprinter *p, const char *s, size_t n) {
  if (all_digits(s, n) || n == 1) {
    sb_putn(p->out, s, n);
  } else if (is_greek(s, n)) {
    sb_putc(p->out, '\\');
    sb_putn(p->out, s, n);
  } else {
    sb_puts(p->out, "\\mathrm{");
    sb_putn(p->out, s, n);
    sb_putc(p->out, '}');
  }
}

static bool is_bold(lprinter *p, const expr *sym) {
  md_kind k = p->shapes ? md_shape_sym_kind(p->shapes, sym)
                        : md_default_kind(sym->u.name);
  return k != K_SCALAR;
}

static void print_sym(lprinter *p, const expr *sym) {
  const char *name = sym->u.name;
  size_t k = base_len(name);
  size_t u = strcspn(name, "_");
  print_base(p, name, k, is_bold(p, sym));
  bool open = false;
  if (k < u) {
    sb_puts(p->out, "_{");
    sb_putn(p->out, name + k, u - k);
    open = true;
  }
  for (const char *s = name + u; *s == '_';) {
    s++;
    size_t n = strcspn(s, "_");
    if (n) {
      sb_puts(p->out, open ? "," : "_{");
      print_subpart(p, s, n);
      open = true;
    }
    s += n;
  }
  if (open)
    sb_putc(p->out, '}');
}

/* ---- layout ---- */

/* Whether E holds a fraction, which makes plain brackets look too small
 * and a \frac{\partial f}{...} nest fractions (memoised: the DAG may
 * share subexpressions many times). */
static bool tall(lprinter *p, const expr *e) {
  if (p->tall[e->id])
    return p->tall[e->id] == 2;
  bool t = false;
  switch ((expr_op)e->op) {
  case E_NUM:
    t = mpz_cmp_ui(mpq_denref(e->u.num), 1) != 0;
    break;
  case E_DIV:
  case E_DIFF:
  case E_HESS:
    t = true;
    break;
  case E_POW:
  case E_EPOW:
    t = tall(p, e->kid[0]); /* the exponent is a number: p/q */
    break;
  default:
    for (size_t i = 0; i < e->nkids && !t; i++)
      t = tall(p, e->kid[i]);
  }
  p->tall[e->id] = t ? 2 : 1;
  return t;
}

/* Whether E, printed, begins with a number (2^{k}, or 2 \mathbf{A} when
 * PRODUCTS: a product's first operand is never bracketed if a number). */
static bool starts_with_number(const expr *e, bool products) {
  for (;;) {
    switch ((expr_op)e->op) {
    case E_TRANS:
    case E_INV:
    case E_POW:
    case E_EPOW:
      e = e->kid[0];
      continue;
    case E_MUL:
    case E_HAD:
    case E_HDIV:
    case E_KRON:
      if (!products)
        return false;
      e = e->kid[0];
      continue;
    case E_NUM:
      return mpq_sgn(e->u.num) >= 0;
    default:
      return false;
    }
  }
}

/* d/dX f keeps f in the numerator only when it reads as one term. */
static bool diff_is_loose(lprinter *p, const expr *f);

static int prec(lprinter *p, const expr *e) {
  switch ((expr_op)e->op) {
  case E_NUM:
    if (mpq_sgn(e->u.num) < 0)
      return L_NEG;
    return mpz_cmp_ui(mpq_denref(e->u.num), 1) == 0 ? L_ATOM : L_FRAC;
  case E_ADD:
    return L_SUM;
  case E_NEG:
    return L_NEG;
  case E_MUL:
  case E_HAD:
  case E_HDIV:
  case E_KRON:
    return L_PROD;
  case E_DIV:
    return L_FRAC;
  case E_TRANS:
  case E_INV:
  case E_POW:
  case E_EPOW:
    return L_POST;
  case E_DIFF:
  case E_HESS:
    return diff_is_loose(p, e->kid[0]) ? L_DIFF : L_FRAC;
  default:
    return L_ATOM;
  }
}

static bool diff_is_loose(lprinter *p, const expr *f) {
  return prec(p, f) < L_PROD || tall(p, f) || starts_with_number(f, true);
}

/* Prints E in \left( \right). */
static void group(lprinter *p, const expr *e) {
  sb_puts(p->out, "\\left( ");
  print(p, e);
  sb_puts(p->out, " \\right)");
}

/* Prints E where the context wants level LEVEL or tighter. */
static void sub(lprinter *p, const expr *e, int level) {
  if (prec(p, e) < level)
    group(p, e);
  else
    print(p, e);
}

/* The brackets of a call, a norm or an inner product: plain unless what
 * they hold is tall.  OPEN and CLOSE are the plain delimiters. */
static void delimited(lprinter *p, const char *open, const char *close,
                      const expr *const *v, size_t n) {
  bool big = false;
  for (size_t i = 0; i < n && !big; i++)
    big = tall(p, v[i]);
  if (big)
    sb_puts(p->out, "\\left");
  sb_puts(p->out, open);
  if (big || open[0] == '\\')
    sb_putc(p->out, ' ');
  for (size_t i = 0; i < n; i++) {
    if (i)
      sb_puts(p->out, ", ");
    print(p, v[i]);
  }
  if (big || close[0] == '\\')
    sb_putc(p->out, ' ');
  if (big)
    sb_puts(p->out, "\\right");
  sb_puts(p->out, close);
}

/* Whether E, printed, ends (or begins) with a name set as a word. */
static bool edge_is_word(const expr *e, bool end) {
  if (e->op == E_SYM)
    return is_word(e->u.name);
  if (!end &&
      (e->op == E_TRANS || e->op == E_INV || e->op == E_POW || e->op == E_EPOW))
    return e->kid[0]->op == E_SYM && is_word(e->kid[0]->u.name);
  return false;
}

/* a b c, a \odot b, a \oslash b, a \otimes b: an operand that is a
 * product of another kind (or a looser expression) is bracketed, and so
 * is a later operand of the same kind, a \oslash (b \oslash c). */
static void print_chain(lprinter *p, const expr *e, const char *op) {
  for (size_t i = 0; i < e->nkids; i++) {
    const expr *k = e->kid[i];
    if (i) {
      const expr *prev = e->kid[i - 1];
      if (op)
        sb_puts(p->out, op);
      else if (k->op == E_NUM || starts_with_number(k, false))
        sb_puts(p->out, " \\cdot ");
      else if (edge_is_word(prev, true) || edge_is_word(k, false))
        sb_puts(p->out, " \\, ");
      else
        sb_putc(p->out, ' ');
    }
    int q = prec(p, k);
    if (q < L_PROD || (q == L_PROD && (i > 0 || k->op != e->op)))
      group(p, k);
    else
      print(p, k);
  }
}

static void print_int(lprinter *p, const mpz_t z) {
  char *s = mpz_get_str(NULL, 10, z);
  sb_puts(p->out, s);
  void (*freefn)(void *, size_t);
  mp_get_memory_functions(NULL, NULL, &freefn);
  freefn(s, strlen(s) + 1);
}

/* A rational as \frac{p}{q}, or as p/q when INLINE (in an exponent). */
static void print_num(lprinter *p, const mpq_t q, bool inline_) {
  if (mpq_sgn(q) < 0)
    sb_putc(p->out, '-');
  mpz_t a;
  mpz_init(a);
  mpz_abs(a, mpq_numref(q));
  if (mpz_cmp_ui(mpq_denref(q), 1) == 0) {
    print_int(p, a);
  } else if (inline_) {
    print_int(p, a);
    sb_putc(p->out, '/');
    print_int(p, mpq_denref(q));
  } else {
    sb_puts(p->out, "\\frac{");
    print_int(p, a);
    sb_puts(p->out, "}{");
    print_int(p, mpq_denref(q));
    sb_putc(p->out, '}');
  }
  mpz_clear(a);
}

/* The braces of an exponent: a number as p/q, anything else as itself. */
static void print_exponent(lprinter *p, const expr *k) {
  if (k->op == E_NUM)
    print_num(p, k->u.num, true);
  else
    print(p, k);
}

static const char *const fn_tex[FN_NBUILTIN] = {
    [FN_TR] = "\\operatorname{tr}",
    [FN_DET] = "\\det",
    [FN_LOGDET] = "\\log\\det",
    [FN_DIAG] = "\\operatorname{diag}",
    [FN_VEC] = "\\operatorname{vec}",
    [FN_SUM] = "\\operatorname{sum}",
    [FN_SOFTMAX] = "\\operatorname{softmax}",
    [FN_LOGSUMEXP] = "\\operatorname{logsumexp}",
    [FN_EXP] = "\\exp",
    [FN_LOG] = "\\log",
    [FN_SIN] = "\\sin",
    [FN_COS] = "\\cos",
    [FN_TAN] = "\\tan",
    [FN_TANH] = "\\tanh",
    /* |A| would read as a determinant */
    [FN_ABS] = "\\operatorname{abs}",
    [FN_SIGN] = "\\operatorname{sign}",
    [FN_STEP] = "\\operatorname{step}",
    [FN_RELU] = "\\operatorname{relu}",
    [FN_SIGMOID] = "\\operatorname{sigmoid}",
    [FN_SOFTPLUS] = "\\operatorname{softplus}",
};

static void print_call(lprinter *p, const expr *e) {
  strbuf *o = p->out;
  switch (e->u.fn) {
  case FN_NORM2:
  case FN_NORM1:
    delimited(p, "\\lVert", "\\rVert", (const expr *const *)e->kid, 1);
    if (e->u.fn == FN_NORM1)
      sb_puts(o, "_{1}");
    return;
  case FN_SQRT:
    sb_puts(o, "\\sqrt{");
    print(p, e->kid[0]);
    sb_putc(o, '}');
    return;
  default:
    break;
  }
  if (e->u.fn < FN_NBUILTIN && fn_tex[e->u.fn]) {
    sb_puts(o, fn_tex[e->u.fn]);
  } else {
    /* a user function: its name may hold '_', a subscript in math mode */
    sb_puts(o, "\\operatorname{");
    for (const char *s = md_fn_get(p->ctx, e->u.fn)->name; *s; s++) {
      if (*s == '_')
        sb_putc(o, '\\');
      sb_putc(o, *s);
    }
    sb_putc(o, '}');
  }
  delimited(p, "(", ")", (const expr *const *)e->kid, e->nkids);
}

/* \frac{\partial f}{\partial x} or \frac{\partial}{\partial x} (f);
 * ORDER is "" or "^2" (a Hessian), whose denominator is
 * \partial x \, \partial x^\top, or \partial s^{2} for a scalar s. */
static void print_diff(lprinter *p, const expr *e, const char *order) {
  strbuf *o = p->out;
  const expr *f = e->kid[0], *x = e->kid[1];
  bool loose = diff_is_loose(p, f);
  sb_printf(o, "\\frac{\\partial%s", order);
  if (!loose) {
    sb_putc(o, ' ');
    print(p, f);
  }
  sb_puts(o, "}{\\partial ");
  /* x is a symbol or vec(X) (parse.y, make_wrt); anything else is
   * bracketed rather than read as \partial of its first term */
  if (!*order) {
    sub(p, x, L_POST);
  } else if (x->op == E_SYM && !is_bold(p, x)) {
    print(p, x);
    sb_puts(o, "^{2}");
  } else {
    sub(p, x, L_POST);
    sb_puts(o, " \\, \\partial ");
    sub(p, x, L_ATOM);
    sb_puts(o, "^\\top");
  }
  sb_putc(o, '}');
  if (loose) {
    sb_putc(o, ' ');
    group(p, f);
  }
}

static void print(lprinter *p, const expr *e) {
  strbuf *o = p->out;
  switch ((expr_op)e->op) {
  case E_NUM:
    print_num(p, e->u.num, false);
    return;
  case E_SYM:
    print_sym(p, e);
    return;
  case E_IDENT:
    sb_puts(o, "\\mathbf{I}");
    return;
  case E_ONES:
    sb_puts(o, "\\mathbf{1}");
    return;
  case E_ADD:
    sub(p, e->kid[0], L_SUM);
    for (size_t i = 1; i < e->nkids; i++) {
      const expr *t = e->kid[i];
      if (t->op == E_NEG) {
        sb_puts(o, " - ");
        sub(p, t->kid[0], t->kid[0]->op == E_NEG ? L_PROD : L_NEG);
      } else if (expr_num_sgn(t) < 0) {
        mpq_t q;
        mpq_init(q);
        mpq_neg(q, t->u.num);
        sb_puts(o, " - ");
        print_num(p, q, false);
        mpq_clear(q);
      } else {
        sb_puts(o, " + ");
        sub(p, t, L_NEG);
      }
    }
    return;
  case E_NEG:
    sb_putc(o, '-');
    /* -(-x) rather than --x */
    sub(p, e->kid[0], e->kid[0]->op == E_NEG ? L_PROD : L_NEG);
    return;
  case E_MUL:
    print_chain(p, e, NULL);
    return;
  case E_HAD:
    print_chain(p, e, " \\odot ");
    return;
  case E_HDIV:
    print_chain(p, e, " \\oslash ");
    return;
  case E_KRON:
    print_chain(p, e, " \\otimes ");
    return;
  case E_DIV:
    sb_puts(o, "\\frac{");
    print(p, e->kid[0]);
    sb_puts(o, "}{");
    print(p, e->kid[1]);
    sb_putc(o, '}');
    return;
  case E_TRANS:
    sub(p, e->kid[0], L_ATOM);
    sb_puts(o, "^\\top");
    return;
  case E_INV:
    if (e->kid[0]->op == E_TRANS) {
      sub(p, e->kid[0]->kid[0], L_ATOM);
      sb_puts(o, "^{-\\top}");
    } else {
      sub(p, e->kid[0], L_ATOM);
      sb_puts(o, "^{-1}");
    }
    return;
  case E_POW:
    /* (X^-1)^k is X^{-k} */
    if (e->kid[0]->op == E_INV && e->kid[1]->op == E_NUM &&
        mpz_cmp_ui(mpq_denref(e->kid[1]->u.num), 1) == 0 &&
        mpq_sgn(e->kid[1]->u.num) > 0) {
      sub(p, e->kid[0]->kid[0], L_ATOM);
      sb_puts(o, "^{-");
      print_exponent(p, e->kid[1]);
      sb_putc(o, '}');
      return;
    }
    sub(p, e->kid[0], L_ATOM);
    sb_puts(o, "^{");
    print_exponent(p, e->kid[1]);
    sb_putc(o, '}');
    return;
  case E_EPOW:
    sub(p, e->kid[0], L_ATOM);
    sb_puts(o, "^{\\circ ");
    print_exponent(p, e->kid[1]);
    sb_putc(o, '}');
    return;
  case E_CALL:
    print_call(p, e);
    return;
  case E_INNER:
    delimited(p, "\\langle", "\\rangle", (const expr *const *)e->kid, 2);
    return;
  case E_DIFF:
    print_diff(p, e, "");
    return;
  case E_HESS:
    print_diff(p, e, "^2");
    return;
  case E_TUPLE:
    sb_puts(o, "\\left( ");
    for (size_t i = 0; i < e->nkids; i++) {
      if (i)
        sb_puts(o, ", ");
      print(p, e->kid[i]);
    }
    sb_puts(o, " \\right)");
    return;
  case E_NOPS:
    break;
  }
  sb_puts(o, "?");
}

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e) {
  lprinter p = {ctx, shapes, out, xcalloc(md_ctx_nnodes(ctx) + 1, 1)};
  print(&p, e);
  free(p.tall);
}

char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes,
                           const expr *e) {
  strbuf b;
  sb_init(&b);
  md_print_latex(&b, ctx, shapes, e);
  return sb_take(&b);
}
