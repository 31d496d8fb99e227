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
 * \frac{\partial}{\partial \mathbf{X}} (f) when f is a sum,
 * a negation, starts with a number or holds a fraction; hess(f, x) is
 * \frac{\partial^2 f}{\partial \mathbf{x} \, \partial \mathbf{x}^\top}
 * (\partial s^{2} below the line for a scalar s).
 *
 * Parentheses.  The levels of print_text.c, with three changes made for
 * a human reader, who knows no MATLAB precedence:
 *   - juxtaposition, \odot, \oslash and \otimes are one level, but an
 *     operand that is a product of another kind is always bracketed:
 *     (\mathbf{a} \odot \mathbf{b}) \mathbf{c},
 *     \mathbf{A} (\mathbf{B} \otimes \mathbf{C}) \mathbf{D};
 *   - the operand of ^\top, ^{-1}, ^{k} is an atom (a symbol, a call, a
 *     norm...), else bracketed: (\mathbf{A}^{-1})^\top, as TeX forbids a
 *     double superscript;
 *   - fractions are atoms in products but bracketed under a superscript.
 * The size of each pair of brackets is chosen by what it holds, after
 * printing (section "Brackets" below): plain ( ) around content of normal
 * height, one size up (\bigl( \bigr), \Bigl( \Bigr)...) per level of
 * round brackets inside, \left( \right) only around a fraction.
 *
 * Long results.  md_print_latex_result breaks a result wider than a line
 * (estimated by the width model below) into the lines of an aligned
 * environment: at its where bindings, then at the + and - of the
 * outermost sum, then between the factors of the outermost product, and
 * deeper only when it must (section "line breaking").
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

/* Where the text of a bracket or of a possible line break goes: the
 * printer writes the text between them, and emit() spells the brackets
 * once their sizes are known (section "Brackets" below). */
typedef enum { M_OPEN, M_CLOSE, M_BREAK } mark_type;

typedef enum {
  D_GROUP, /* ( ) of grouping: sized by what they hold */
  D_CALL,  /* ( ) of a call */
  D_NORM,  /* \lVert \rVert */
  D_ANGLE, /* \langle \rangle */
} delim_kind;

typedef enum {
  B_OP,    /* before " + ", " \odot "...: the next line begins {}+ */
  B_JUX,   /* between juxtaposed factors: the next line begins {}\cdot */
  B_WHERE, /* ",\quad\text{where }": the bindings on the next line */
  B_BIND,  /* ",\quad " between two bindings */
} break_kind;

typedef struct mark {
  size_t at; /* offset in the text */
  uint8_t type, kind;
  uint8_t tall; /* M_OPEN: what the brackets hold has a fraction */
  uint8_t prio; /* M_BREAK: 0 best */
  size_t drop;  /* M_BREAK: bytes of text a line break replaces */
} mark;

typedef struct lprinter {
  const md_ctx *ctx;
  md_shapes *shapes; /* may be NULL: default kinds */
  strbuf *out;
  uint8_t *tall; /* by node id: 0 unknown, 1 no fraction inside, 2 one */
  const md_latex_style *style; /* may be NULL */
  mark *m;
  size_t nm, capm;
  unsigned depth;   /* brackets open */
  unsigned nobreak; /* inside a \frac, a script, a \sqrt: no line breaks */
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

static void print_base(lprinter *p, const char *s, size_t n, bool bold,
                       bool placeholder) {
  strbuf *o = p->out;
  if (placeholder && !is_greek(s, n)) {
    sb_puts(o, bold ? "\\boldsymbol{\\mathsf{" : "\\mathsf{");
    sb_putn(o, s, n);
    sb_puts(o, bold ? "}}" : "}");
  } else if (is_greek(s, n)) {
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

static bool is_placeholder(lprinter *p, const expr *sym) {
  if (!p->style)
    return false;
  for (size_t i = 0; i < p->style->nplaceholders; i++)
    if (p->style->placeholders[i] == sym)
      return true;
  return false;
}

static void print_sym(lprinter *p, const expr *sym) {
  const char *name = sym->u.name;
  size_t k = base_len(name);
  size_t u = strcspn(name, "_");
  print_base(p, name, k, is_bold(p, sym), is_placeholder(p, sym));
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

static mark *add_mark(lprinter *p, mark_type type, unsigned kind) {
  if (p->nm == p->capm) {
    p->capm = p->capm ? 2 * p->capm : 32;
    p->m = xreallocarray(p->m, p->capm, sizeof *p->m);
  }
  mark *m = &p->m[p->nm++];
  *m = (mark){.at = p->out->len, .type = type, .kind = kind};
  return m;
}

static void open_delim(lprinter *p, delim_kind kind, bool tall_) {
  add_mark(p, M_OPEN, kind)->tall = tall_;
  p->depth++;
}

static void close_delim(lprinter *p, delim_kind kind) {
  add_mark(p, M_CLOSE, kind);
  p->depth--;
}

/* A place where a long formula may go on to a new line: the text of
 * DROP bytes that follows is then left out.  The shallower the place,
 * the better (0 is best); a sum is broken before a product. */
static void may_break(lprinter *p, break_kind kind, size_t drop) {
  if (p->nobreak)
    return;
  unsigned prio = kind == B_WHERE || kind == B_BIND
                      ? 0
                      : 1 + 2 * p->depth + (kind == B_JUX ? 1 : 0);
  mark *m = add_mark(p, M_BREAK, kind);
  m->prio = prio > 255 ? 255 : (uint8_t)prio;
  m->drop = drop;
}

/* Prints E in brackets of grouping. */
static void group(lprinter *p, const expr *e) {
  open_delim(p, D_GROUP, tall(p, e));
  print(p, e);
  close_delim(p, D_GROUP);
}

/* Prints E where the context wants level LEVEL or tighter. */
static void sub(lprinter *p, const expr *e, int level) {
  if (prec(p, e) < level)
    group(p, e);
  else
    print(p, e);
}

/* The brackets of a call, a norm or an inner product, around the N
 * operands V separated by commas. */
static void delimited(lprinter *p, delim_kind kind, const expr *const *v,
                      size_t n) {
  bool big = false;
  for (size_t i = 0; i < n && !big; i++)
    big = tall(p, v[i]);
  open_delim(p, kind, big);
  for (size_t i = 0; i < n; i++) {
    if (i)
      sb_puts(p->out, ", ");
    print(p, v[i]);
  }
  close_delim(p, kind);
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
      if (op) {
        may_break(p, B_OP, 1);
        sb_puts(p->out, op);
      } else if (k->op == E_NUM || starts_with_number(k, false)) {
        may_break(p, B_OP, 1);
        sb_puts(p->out, " \\cdot ");
      } else if (edge_is_word(prev, true) || edge_is_word(k, false)) {
        may_break(p, B_JUX, 4);
        sb_puts(p->out, " \\, ");
      } else {
        may_break(p, B_JUX, 1);
        sb_putc(p->out, ' ');
      }
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
  p->nobreak++;
  if (k->op == E_NUM)
    print_num(p, k->u.num, true);
  else
    print(p, k);
  p->nobreak--;
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
    delimited(p, D_NORM, (const expr *const *)e->kid, 1);
    if (e->u.fn == FN_NORM1)
      sb_puts(o, "_{1}");
    return;
  case FN_SQRT:
    sb_puts(o, "\\sqrt{");
    p->nobreak++;
    print(p, e->kid[0]);
    p->nobreak--;
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
  delimited(p, D_CALL, (const expr *const *)e->kid, e->nkids);
}

/* \frac{\partial f}{\partial x} or \frac{\partial}{\partial x} (f);
 * ORDER is "" or "^2" (a Hessian), whose denominator is
 * \partial x \, \partial x^\top, or \partial s^{2} for a scalar s. */
static void print_diff(lprinter *p, const expr *e, const char *order) {
  strbuf *o = p->out;
  const expr *f = e->kid[0], *x = e->kid[1];
  bool loose = diff_is_loose(p, f);
  p->nobreak++;
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
  p->nobreak--;
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
      may_break(p, B_OP, 1);
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
    p->nobreak++;
    sb_puts(o, "\\frac{");
    print(p, e->kid[0]);
    sb_puts(o, "}{");
    print(p, e->kid[1]);
    sb_putc(o, '}');
    p->nobreak--;
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
    delimited(p, D_ANGLE, (const expr *const *)e->kid, 2);
    return;
  case E_DIFF:
    print_diff(p, e, "");
    return;
  case E_HESS:
    print_diff(p, e, "^2");
    return;
  case E_TUPLE:
    open_delim(p, D_GROUP, tall(p, e));
    for (size_t i = 0; i < e->nkids; i++) {
      if (i)
        sb_puts(o, ", ");
      print(p, e->kid[i]);
    }
    close_delim(p, D_GROUP);
    return;
  case E_NOPS:
    break;
  }
  sb_puts(o, "?");
}

/* ---- brackets ----
 *
 * A pair of brackets is sized once the whole formula is printed, by what
 * it holds:
 *   - \left \right when it holds a fraction (tall content);
 *   - round brackets one size up for each level of grouping brackets
 *     inside them: ( ) around none, \bigl( \bigr) around plain ones,
 *     \Bigl( \Bigr) around those, \biggl( \biggr) from three levels on;
 *     the brackets of a call count as a level only when they are sized
 *     themselves: (1 - \tanh(x)) and \exp(\log(x)) stay plain, but
 *     \exp\bigl((a + b) x\bigr);
 *   - the bars of a norm and the angles of an inner product are plain;
 *   - a pair that a line break falls inside cannot be \left \right (TeX
 *     and MathJax want both in one line) nor plain: it is \bigl \bigr at
 *     least, and \biggl \biggr if tall. */
enum { S_PLAIN, S_BIG, S_BIG2, S_BIG3, S_LEFT };

typedef struct open_pair {
  size_t mark;
  unsigned inner; /* levels of grouping brackets inside */
  bool broken;
} open_pair;

/* SIZE[i] for each bracket mark i, with line breaks at the marks CUT
 * holds (NULL: none). */
static void bracket_sizes(const lprinter *p, const uint8_t *cut,
                          uint8_t *size) {
  open_pair *st = xcalloc(p->nm + 1, sizeof *st);
  size_t n = 0;
  for (size_t i = 0; i < p->nm; i++) {
    const mark *m = &p->m[i];
    if (m->type == M_OPEN) {
      st[n++] = (open_pair){i, 0, false};
    } else if (m->type == M_BREAK) {
      if (cut && cut[i])
        for (size_t k = 0; k < n; k++)
          st[k].broken = true;
    } else if (n > 0) {
      open_pair t = st[--n];
      const mark *o = &p->m[t.mark];
      unsigned s;
      if (o->tall)
        s = t.broken ? S_BIG3 : S_LEFT;
      else if (o->kind == D_GROUP || o->kind == D_CALL)
        s = t.inner > S_BIG3 ? S_BIG3 : t.inner;
      else
        s = S_PLAIN;
      if (t.broken && s == S_PLAIN)
        s = S_BIG;
      size[t.mark] = size[i] = (uint8_t)s;
      if (n > 0) {
        /* a call's brackets count when they are sized (f\bigl((a)\bigr)) */
        unsigned up = o->kind != D_GROUP && o->kind != D_CALL ? t.inner
                      : o->kind == D_CALL && s == S_PLAIN     ? 0
                      : s == S_LEFT                           ? S_BIG3 + 1
                                                              : s + 1;
        if (up > st[n - 1].inner)
          st[n - 1].inner = up;
      }
    }
  }
  free(st);
}

static void put_delim(strbuf *o, const mark *m, unsigned size) {
  static const char *const pre[2][5] = {
      {"", "\\bigl", "\\Bigl", "\\biggl", "\\left"},
      {"", "\\bigr", "\\Bigr", "\\biggr", "\\right"}};
  static const char *const d[2][4] = {{"(", "(", "\\lVert", "\\langle"},
                                      {")", ")", "\\rVert", "\\rangle"}};
  bool close = m->type == M_CLOSE;
  const char *delim = d[close][m->kind];
  bool space = size != S_PLAIN || delim[0] == '\\';
  if (close && space)
    sb_putc(o, ' ');
  sb_puts(o, pre[close][size]);
  sb_puts(o, delim);
  if (!close && space)
    sb_putc(o, ' ');
}

/* The text of P with its brackets spelled.  A break mark i with CUT[i]
 * set becomes ROW[i] (" \\ &..."), in place of the DROP bytes after it;
 * AT[i], when AT is given, is where mark i fell in OUT. */
static void emit(const lprinter *p, const uint8_t *cut, const char *const *row,
                 strbuf *out, size_t *at) {
  uint8_t *size = xcalloc(p->nm + 1, 1);
  bracket_sizes(p, cut, size);
  const strbuf *t = p->out;
  size_t pos = 0;
  for (size_t i = 0; i < p->nm; i++) {
    const mark *m = &p->m[i];
    if (m->at > pos) {
      sb_putn(out, t->s + pos, m->at - pos);
      pos = m->at;
    }
    if (at)
      at[i] = out->len;
    if (m->type != M_BREAK) {
      put_delim(out, m, size[i]);
    } else if (cut && cut[i]) {
      sb_puts(out, row[i]);
      pos += m->drop;
    }
  }
  if (t->len > pos)
    sb_putn(out, t->s + pos, t->len - pos);
  free(size);
}

static void printer_init(lprinter *p, const md_ctx *ctx, md_shapes *shapes,
                         const md_latex_style *style, strbuf *text) {
  sb_init(text);
  *p = (lprinter){.ctx = ctx,
                  .shapes = shapes,
                  .out = text,
                  .tall = xcalloc(md_ctx_nnodes(ctx) + 1, 1),
                  .style = style};
}

static void printer_clear(lprinter *p) {
  free(p->tall);
  free(p->m);
  sb_clear(p->out);
}

/* ---- the width model ----
 *
 * How wide the LaTeX that this file writes will be, in em of a 10 pt
 * Computer Modern font (1 em = 10 pt), without typesetting it: glyph
 * widths by font, averaged over the alphabet (measured with pdflatex),
 * TeX's spaces around binary operators (+, \odot: 2/9 em each side),
 * relations (=: 5/18 em) and operator names (\log, \operatorname: 1/6
 * em), scripts at 70 % (50 % in a script's script), a sub- and a
 * superscript stacked (the wider counts), a fraction as wide as the
 * wider of its numerator and denominator, \sqrt{x} as x and its sign.
 * It is an estimate, within a few per cent for matdiff's own output,
 * and it errs on the wide side. */

enum { C_NONE, C_ORD, C_OP, C_BIN, C_REL, C_OPEN, C_CLOSE, C_PUNCT };
enum { F_MATH, F_BOLD, F_ROMAN, F_ITALIC, F_SANS, F_TEXT, F_CAL };
enum {
  G_PLAIN,  /* { } */
  G_FONT,   /* \mathbf{...}: an ordinary atom */
  G_OPNAME, /* \operatorname{...}: an operator */
  G_NUM,    /* the numerator of a \frac */
  G_DEN,
  G_SUP, /* ^{...} */
  G_SUB,
  G_SQRT,
  G_SKIP, /* \begin{...}, \end{...} */
};

typedef struct wframe {
  double w;
  double num;       /* G_DEN: the numerator's width */
  double script;    /* the width of the last script, 0 if none */
  uint8_t kind;     /* G_... */
  uint8_t font;     /* F_... */
  uint8_t style;    /* 0 display, 1 text, 2 script, 3 scriptscript */
  uint8_t cls;      /* class of the last atom, C_... */
  uint8_t last_sup; /* the last script was a superscript */
} wframe;

static const double scale_of[4] = {1, 1, 0.7, 0.5};

/* The widths of A..Z, a..z in hundredths of an em: math italic, bold,
 * roman (also \text and \operatorname), \mathit and sans serif. */
static const uint8_t letters[5][52] = {
    {75, 81, 79, 86, 80,  78, 79, 91, 52, 65, 92, 68, 108, 91, 79, 78, 79, 77,
     67, 72, 79, 81, 108, 91, 80, 75, 53, 43, 43, 52, 47,  60, 51, 58, 34, 47,
     55, 32, 88, 60, 48,  50, 48, 48, 47, 36, 57, 52, 74,  57, 53, 51},
    {87, 82, 83, 88, 76,  72, 90, 90, 44, 59, 90, 69, 109, 90, 86, 79, 86, 86,
     64, 80, 88, 89, 120, 87, 90, 70, 56, 64, 51, 64, 53,  46, 59, 64, 32, 35,
     61, 32, 96, 64, 57,  64, 61, 47, 45, 45, 64, 62, 85,  61, 62, 51},
    {75, 71, 72, 76, 68,  65, 78, 75, 36, 51, 78, 63, 92, 75, 78, 68, 78, 74,
     56, 72, 75, 76, 104, 75, 78, 61, 50, 56, 44, 56, 44, 38, 51, 56, 28, 31,
     53, 28, 83, 56, 50,  56, 53, 39, 39, 39, 56, 54, 74, 53, 54, 44},
    {74, 81, 86, 85, 80,  79, 86, 91, 54, 67, 91, 63, 106, 91, 86, 78, 86, 77,
     68, 85, 91, 93, 118, 90, 94, 76, 59, 52, 52, 61, 54,  52, 55, 59, 41, 45,
     57, 36, 89, 64, 57,  57, 55, 53, 49, 43, 61, 57, 77,  58, 57, 53},
    {67, 67, 64, 72, 60, 57, 67, 71, 28, 47, 69, 54, 88, 71, 74, 64, 74, 65,
     56, 68, 69, 68, 96, 67, 69, 61, 48, 52, 44, 52, 44, 38, 51, 52, 24, 27,
     49, 24, 79, 52, 50, 52, 52, 36, 38, 36, 52, 48, 70, 46, 48, 43},
};

/* The width of letter or digit C in FONT, in em. */
static double glyph(unsigned font, char c) {
  if (c >= '0' && c <= '9')
    return font == F_BOLD ? 0.575 : 0.5;
  size_t k = c >= 'a' ? 26 + (size_t)(c - 'a') : (size_t)(c - 'A');
  unsigned t = font == F_BOLD                      ? 1
               : font == F_ROMAN || font == F_TEXT ? 2
               : font == F_ITALIC                  ? 3
               : font == F_SANS                    ? 4
                                                   : 0;
  if (font == F_CAL)
    return 0.8;
  return letters[t][k] / 100.0;
}

/* Adds an atom of class CLS and width W (at the frame's size) to F. */
static void add_atom(wframe *f, unsigned cls, double w) {
  bool small = f->style >= 2;
  unsigned q = f->cls;
  if (cls == C_BIN && !(q == C_ORD || q == C_CLOSE))
    cls = C_ORD; /* a unary minus */
  double sp = 0;
  if (!small && cls == C_BIN)
    sp = 4.0 / 9;
  else if (!small && cls == C_REL && q != C_NONE)
    sp = 5.0 / 9;
  else if ((q == C_OP && cls == C_ORD) ||
           (cls == C_OP && (q == C_ORD || q == C_CLOSE)))
    sp = 1.0 / 6;
  else if (!small && q == C_PUNCT)
    sp = 1.0 / 6;
  f->w += sp + w * scale_of[f->style];
  f->cls = (uint8_t)cls;
  f->script = 0;
}

/* Adds a script of width W (already scaled) to F: stacked with a script
 * of the other kind just before it.  TeX adds \scriptspace and a kern. */
static void add_script(wframe *f, double w, bool sup) {
  w += 0.12;
  if (f->script > 0 && f->last_sup != sup) {
    if (w > f->script)
      f->w += w - f->script;
    f->script = 0;
    return;
  }
  f->w += w;
  f->script = w;
  f->last_sup = sup;
}

typedef struct wmacro {
  const char *name;
  double w;
  uint8_t cls;
} wmacro;

static const wmacro wmacros[] = {
    {"top", 0.78, C_ORD},     {"partial", 0.57, C_ORD},
    {"circ", 0.5, C_BIN},     {"cdot", 0.28, C_BIN},
    {"odot", 0.78, C_BIN},    {"oslash", 0.78, C_BIN},
    {"otimes", 0.78, C_BIN},  {"times", 0.78, C_BIN},
    {"lVert", 0.5, C_OPEN},   {"rVert", 0.5, C_CLOSE},
    {"langle", 0.39, C_OPEN}, {"rangle", 0.39, C_CLOSE},
    {"quad", 1, C_NONE},      {"qquad", 2, C_NONE},
    {",", 1.0 / 6, C_NONE},   {":", 2.0 / 9, C_NONE},
    {";", 5.0 / 18, C_NONE},  {" ", 1.0 / 3, C_NONE},
    {"!", -1.0 / 6, C_NONE},  {"\\", 0, C_NONE},
    {"det", 1.39, C_OP},      {"log", 1.28, C_OP},
    {"exp", 1.45, C_OP},      {"sin", 1.17, C_OP},
    {"cos", 1.34, C_OP},      {"tan", 1.45, C_OP},
    {"tanh", 2.0, C_OP},      {"dots", 1.17, C_ORD},
    {"ldots", 1.17, C_ORD},   {"cdots", 1.17, C_ORD},
    {"_", 0.5, C_ORD},
};

/* Sizes of delimiters after \bigl...: how much wider than plain. */
static const struct {
  const char *name;
  double extra;
} wsizes[] = {{"left", 0.25},  {"right", 0.25}, {"bigl", 0.07},
              {"bigr", 0.07},  {"Bigl", 0.21},  {"Bigr", 0.21},
              {"biggl", 0.35}, {"biggr", 0.35}};

/* (the first letters first: a result's macros are looked up here some 45
 * names each, and strlen on each made width_of a fifth of the fuzz
 * harness's time on a 0.5 MB result) */
static bool name_is(const char *s, size_t n, const char *t) {
  return n && s[0] == t[0] && strlen(t) == n && memcmp(s, t, n) == 0;
}

/* The width of the N bytes of LaTeX at S, in em; AFTER_ATOM when what
 * comes before them ends in an ordinary atom (so that a leading + is a
 * binary operator). */
static double width_of(const char *s, size_t n, bool after_atom) {
  size_t cap = 16, d = 0;
  wframe *st = xcalloc(cap, sizeof *st);
  st[0] = (wframe){
      .kind = G_PLAIN, .font = F_MATH, .cls = after_atom ? C_ORD : C_NONE};
  unsigned pending = G_PLAIN, pending_font = F_MATH; /* what { opens */
  double extra = 0; /* the next delimiter is sized */
  double num = 0;   /* the numerator just closed */
  int script = 0;   /* '^' or '_' before a one-token script */
  const char *end = s + n;
  while (s < end) {
    wframe *f = &st[d];
    char c = *s;
    double w = 0;
    unsigned cls = C_ORD;
    if (c == '{') {
      if (d + 1 == cap) {
        cap *= 2;
        st = xreallocarray(st, cap, sizeof *st);
        f = &st[d];
      }
      unsigned kind = script ? (script == '^' ? G_SUP : G_SUB) : pending;
      unsigned style = f->style;
      if (kind == G_SUP || kind == G_SUB)
        style = style < 2 ? 2 : 3;
      else if (kind == G_NUM || kind == G_DEN)
        style = style == 0 ? 1 : style < 2 ? 2 : 3;
      unsigned font =
          kind == G_FONT || kind == G_OPNAME ? pending_font : f->font;
      st[++d] = (wframe){.kind = (uint8_t)kind,
                         .font = (uint8_t)font,
                         .style = (uint8_t)style,
                         .num = num};
      pending = G_PLAIN, pending_font = F_MATH, script = 0;
      s++;
      continue;
    }
    if (c == '}') {
      if (d == 0) {
        s++;
        continue;
      }
      wframe g = st[d--];
      f = &st[d];
      s++;
      switch (g.kind) {
      case G_SUP:
      case G_SUB:
        add_script(f, g.w, g.kind == G_SUP);
        break;
      case G_NUM:
        num = g.w;
        pending = G_DEN;
        break;
      case G_DEN:
        add_atom(f, C_ORD, 0);
        f->w += (g.w > g.num ? g.w : g.num) + 0.24;
        break;
      case G_SQRT:
        add_atom(f, C_ORD, 0);
        f->w += g.w + 0.83 * scale_of[f->style];
        break;
      case G_OPNAME:
        add_atom(f, C_OP, 0);
        f->w += g.w;
        break;
      case G_SKIP:
        break;
      default:
        add_atom(f, C_ORD, 0);
        f->w += g.w;
      }
      continue;
    }
    if (c == '^' || c == '_') {
      script = c;
      s++;
      continue;
    }
    if (c == ' ' || c == '&' || c == '\n') {
      if (c == ' ' && f->font == F_TEXT)
        f->w += 1.0 / 3;
      s++;
      continue;
    }
    if (c == '\\') {
      const char *nm = ++s;
      if (s < end && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        while (s < end &&
               ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
          s++;
      else if (s < end)
        s++;
      size_t k = (size_t)(s - nm);
      bool done = true;
      if (name_is(nm, k, "mathbf") || name_is(nm, k, "boldsymbol"))
        pending = G_FONT, pending_font = F_BOLD;
      else if (name_is(nm, k, "mathrm") || name_is(nm, k, "text"))
        pending = G_FONT,
        pending_font = name_is(nm, k, "text") ? F_TEXT : F_ROMAN;
      else if (name_is(nm, k, "mathit"))
        pending = G_FONT, pending_font = F_ITALIC;
      else if (name_is(nm, k, "mathsf"))
        pending = G_FONT, pending_font = f->font == F_BOLD ? F_BOLD : F_SANS;
      else if (name_is(nm, k, "mathcal"))
        pending = G_FONT, pending_font = F_CAL;
      else if (name_is(nm, k, "phantom"))
        pending = G_FONT, pending_font = f->font;
      else if (name_is(nm, k, "operatorname"))
        pending = G_OPNAME, pending_font = F_ROMAN;
      else if (name_is(nm, k, "frac"))
        pending = G_NUM;
      else if (name_is(nm, k, "sqrt"))
        pending = G_SQRT;
      else if (name_is(nm, k, "begin") || name_is(nm, k, "end"))
        pending = G_SKIP;
      else
        done = false;
      if (done)
        continue;
      for (size_t i = 0; i < sizeof wsizes / sizeof *wsizes; i++)
        if (name_is(nm, k, wsizes[i].name)) {
          extra = wsizes[i].extra;
          done = true;
        }
      if (done)
        continue;
      w = 0.8; /* an unknown macro; a Greek letter */
      if (k > 1 && nm[0] >= 'A' && nm[0] <= 'Z')
        w = 0.75;
      else if (k > 1)
        w = 0.62;
      if (f->font == F_BOLD)
        w *= 1.1;
      for (size_t i = 0; i < sizeof wmacros / sizeof *wmacros; i++)
        if (name_is(nm, k, wmacros[i].name)) {
          w = wmacros[i].w;
          cls = wmacros[i].cls;
        }
      if (cls == C_NONE) { /* a space */
        if (!script)
          f->w += w;
        continue;
      }
    } else {
      s++;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')) {
        w = glyph(f->font, c);
      } else if (c == '+' || c == '-' || c == '*') {
        w = 0.78, cls = C_BIN;
      } else if (c == '=' || c == '<' || c == '>') {
        w = 0.78, cls = C_REL;
      } else if (c == '(' || c == '[') {
        w = 0.39, cls = C_OPEN;
      } else if (c == ')' || c == ']') {
        w = 0.39, cls = C_CLOSE;
      } else if (c == ',' || c == ';') {
        w = 0.28, cls = f->font == F_TEXT ? C_ORD : C_PUNCT;
      } else if (c == '.' || c == '|' || c == '\'') {
        w = 0.28;
      } else {
        w = 0.5;
      }
    }
    if (cls == C_OPEN || cls == C_CLOSE) {
      w += extra;
      extra = 0;
    }
    if (script) {
      /* a one-token script */
      add_script(f, w * scale_of[f->style < 2 ? 2 : 3], script == '^');
      script = 0;
      continue;
    }
    add_atom(f, cls, w);
  }
  double w = 0;
  for (size_t i = 0; i <= d; i++)
    w += st[i].w;
  free(st);
  return w;
}

double md_latex_width(const char *tex, size_t n) {
  return width_of(tex, n, false);
}

/* ---- line breaking ----
 *
 * A result wider than the line (MD_LATEX_WIDTH em, an article's \textwidth
 * at 10 pt) is set in an aligned environment, its lines filled one after
 * the other.  A line ends at a break mark that fits; among those that
 * leave the line at least a quarter full, the best one (shallowest, a
 * sum before a product, a where binding before anything) wins, the
 * latest of them on a tie.  When no mark fits, the first one after the
 * line's end is taken: a term too wide by itself stays wide.  The
 * where bindings of a result so broken begin a line of their own.
 *
 * With a left side (--equation): LHS &= ..., the lines after the first
 * beginning under the =; a left side wider than a third of the line has
 * lines of its own instead, broken as the rest if need be, and the
 * right side begins on a line of its own, \quad {}= ... */

typedef struct layout {
  const lprinter *p;
  const char *text; /* the formula on one line */
  size_t len;
  const size_t *at; /* where each mark fell in TEXT */
  double width;     /* of a line */
  double first;     /* what the first line holds before the formula */
  size_t eq;        /* the mark before " = " (always broken), or -1 */
} layout;

/* The text that begins a line at break mark I (after "&"). */
static char *row_text(const layout *L, size_t i) {
  const mark *m = &L->p->m[i];
  const char *t = "";
  switch ((break_kind)m->kind) {
  case B_OP:
    t = "\\quad {}";
    break;
  case B_JUX:
    t = "\\quad {}\\cdot ";
    break;
  case B_WHERE:
    break;
  case B_BIND:
    t = "\\phantom{\\text{where }}";
    break;
  }
  strbuf b;
  sb_init(&b);
  /* the right side of an equation whose left side has lines of its own */
  sb_printf(&b, "%s%s", L->eq != (size_t)-1 && i > L->eq ? "\\quad " : "", t);
  return sb_take(&b);
}

/* Chooses the line breaks: CUT[i] for each break mark i. */
static void choose_breaks(const layout *L, uint8_t *cut) {
  const lprinter *p = L->p;
  size_t nb = 0;
  for (size_t i = 0; i < p->nm; i++)
    nb += p->m[i].type == M_BREAK;
  size_t *idx = xcalloc(nb + 1, sizeof *idx);
  double *a = xcalloc(nb + 1, sizeof *a); /* the width up to the mark */
  double *b = xcalloc(nb + 1, sizeof *b); /* ... and past what it drops */
  double *rw = xcalloc(nb + 1, sizeof *rw);
  bool *forced = xcalloc(nb + 1, sizeof *forced);
  size_t pos = 0, k = 0;
  double w = 0;
  for (size_t i = 0; i < p->nm; i++) {
    const mark *m = &p->m[i];
    if (m->type != M_BREAK)
      continue;
    size_t at = L->at[i];
    w += width_of(L->text + pos, at - pos, pos > 0);
    a[k] = w;
    w += width_of(L->text + at, m->drop, true);
    b[k] = w;
    char *t = row_text(L, i);
    rw[k] = md_latex_width(t, strlen(t));
    free(t);
    forced[k] = i == L->eq || m->kind == B_WHERE;
    idx[k++] = i;
    pos = at + m->drop;
  }
  double total = w + width_of(L->text + pos, L->len - pos, pos > 0);
  double start = 0, room = L->width - L->first;
  size_t end = 0; /* the next forced break at or after j, or nb: it only
                   * moves on, so finding it is linear in all (a search
                   * from j each line was quadratic: 29 s under the
                   * sanitizers for a 10-level Kronecker tower's
                   * derivative) */
  for (size_t j = 0; j <= nb;) {
    if (end < j)
      end = j;
    while (end < nb && !forced[end])
      end++;
    if ((end < nb ? a[end] : total) - start <= room) {
      if (end == nb)
        break;
      cut[idx[end]] = 1;
      start = b[end];
      room = L->width - rw[end];
      j = end + 1;
      continue;
    }
    size_t best = nb, any = nb;
    for (size_t i = j; i < end && a[i] - start <= room; i++) {
      const mark *m = &p->m[idx[i]];
      if (any == nb || m->prio <= p->m[idx[any]].prio)
        any = i;
      if (a[i] - start >= room / 4 &&
          (best == nb || m->prio <= p->m[idx[best]].prio))
        best = i;
    }
    if (best == nb)
      best = any != nb ? any : j;
    if (best == nb)
      break;
    cut[idx[best]] = 1;
    start = b[best];
    room = L->width - rw[best];
    j = best + 1;
  }
  free(forced);
  free(idx);
  free(a);
  free(b);
  free(rw);
}

/* P's formula as the lines of an aligned environment, after LHS &= when
 * LHS is given (EQ is then -1). */
static void print_lines(strbuf *out, const lprinter *p, const char *lhs,
                        double wl, size_t eq, double width) {
  strbuf one;
  sb_init(&one);
  size_t *at = xcalloc(p->nm + 1, sizeof *at);
  emit(p, NULL, NULL, &one, at);
  layout L = {p,  one.s, one.len,
              at, width, lhs ? wl + md_latex_width("{}={}", 5) : 0,
              eq};
  uint8_t *cut = xcalloc(p->nm + 1, 1);
  choose_breaks(&L, cut);
  char **row = xcalloc(p->nm + 1, sizeof *row);
  for (size_t i = 0; i < p->nm; i++)
    if (cut[i]) {
      char *t = row_text(&L, i);
      strbuf r;
      sb_init(&r);
      sb_printf(&r, " \\\\ &%s", t);
      free(t);
      row[i] = sb_take(&r);
    }
  sb_puts(out, "\\begin{aligned} ");
  if (lhs)
    sb_printf(out, "%s &= ", lhs);
  else
    sb_putc(out, '&');
  emit(p, cut, (const char *const *)row, out, NULL);
  sb_puts(out, " \\end{aligned}");
  for (size_t i = 0; i < p->nm; i++)
    free(row[i]);
  free(row);
  free(cut);
  free(at);
  sb_clear(&one);
}

/* ---- entry points ---- */

void md_print_latex_opts(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                         const expr *e, const md_latex_style *style) {
  strbuf text;
  lprinter p;
  printer_init(&p, ctx, shapes, style, &text);
  print(&p, e);
  emit(&p, NULL, NULL, out, NULL);
  printer_clear(&p);
}

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e) {
  md_print_latex_opts(out, ctx, shapes, e, NULL);
}

char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes,
                           const expr *e) {
  strbuf b;
  sb_init(&b);
  md_print_latex(&b, ctx, shapes, e);
  return sb_take(&b);
}

bool md_latex_tall(const md_ctx *ctx, md_shapes *shapes, const expr *e) {
  strbuf text;
  lprinter p;
  printer_init(&p, ctx, shapes, NULL, &text);
  bool t = tall(&p, e);
  printer_clear(&p);
  return t;
}

void md_print_latex_call(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                         const char *name, const expr *e) {
  strbuf text;
  lprinter p;
  printer_init(&p, ctx, shapes, NULL, &text);
  sb_puts(&text, name);
  delimited(&p, D_CALL, &e, 1);
  emit(&p, NULL, NULL, out, NULL);
  printer_clear(&p);
}

void md_print_latex_result(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                           const expr *lhs, const expr *body,
                           expr *const *names, expr *const *values, size_t n,
                           double width) {
  if (width <= 0)
    width = MD_LATEX_WIDTH;
  char *l = lhs ? md_print_latex_alloc(ctx, shapes, lhs) : NULL;
  double wl = l ? md_latex_width(l, strlen(l)) : 0;
  /* a left side wider than a third of the line goes in the formula */
  bool own = l && wl > width / 3;
  strbuf text;
  lprinter p;
  printer_init(&p, ctx, shapes, NULL, &text);
  size_t eq = (size_t)-1;
  if (own) {
    print(&p, lhs);
    eq = p.nm;
    may_break(&p, B_OP, 1);
    sb_puts(&text, " = ");
  }
  print(&p, body);
  for (size_t i = 0; i < n; i++) {
    sb_putc(&text, ',');
    may_break(&p, i ? B_BIND : B_WHERE, strlen(i ? "\\quad " : "\\quad"));
    sb_puts(&text, i ? "\\quad " : "\\quad\\text{where }");
    print(&p, names[i]);
    sb_puts(&text, " = ");
    print(&p, values[i]);
  }
  strbuf one;
  sb_init(&one);
  emit(&p, NULL, NULL, &one, NULL);
  double w = md_latex_width(one.s, one.len);
  if (l && !own)
    w += wl + md_latex_width("{}={}", 5);
  if (w <= width) {
    if (l && !own)
      sb_printf(out, "%s = ", l);
    sb_puts(out, one.s);
  } else {
    print_lines(out, &p, own ? NULL : l, wl, eq, width);
  }
  sb_clear(&one);
  free(l);
  printer_clear(&p);
}
