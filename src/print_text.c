/*
 * print_text.c - expressions back to the language; see print_text.h.
 *
 * The --unicode mode (SPEC 2, Unicode) changes only how some tokens are
 * spelled; the structure, and so the parentheses, stay those of the plain
 * text, except that Kronecker products become the infix A ⊗ B, one level
 * tighter than products (SPEC 2, fine point 2).  Every symbol it writes
 * re-parses to the same node, so the Unicode text is still the language:
 *   Aᵀ      transpose              X⁻¹     inverse
 *   A ⊙ B   Hadamard product       A ⊗ B   Kronecker product
 *   λ, Σ    Greek names (lambda, Sigma, lambda1 as λ1, sigma_2 as σ_2)
 *   X⁻ᵀ     inverse transpose      ‖x‖, ‖x‖₁  norms
 * Everything else is spelled as in the plain text: ./, .^, ^k, ^-k, <a, b>.
 */
#include "print_text.h"

#include <stdlib.h>
#include <string.h>

/* Precedence levels, loosest first (SPEC 2, operator table). */
enum {
  P_DIFF, /* d/dX f takes everything to its right */
  P_SUM,
  P_NEG,
  P_PROD, /* * / .* ./ juxtaposition */
  P_KRON, /* A ⊗ B, Unicode only: the plain text writes kron(A, B) */
  P_POST, /* ^T ^-1 ^k .^ */
  P_ATOM,
};

typedef struct printer {
  const md_ctx *ctx;
  strbuf *out;
  int in_norm; /* inside ||...||, where a juxtaposed || would close it */
  bool unicode;
  size_t limit; /* stop writing past this many bytes (0: no limit) */
} printer;

/* Whether P has written past its limit: then each loop over operands
 * stops too, so that a message's text costs its limit, not the size of a
 * node of 4 096 operands, once for every message (3 556 messages of a
 * Kronecker tower took 6 G instructions). */
static bool full(const printer *p) {
  return p->limit && p->out->len > p->limit;
}

static int prec(const printer *p, const expr *e) {
  switch ((expr_op)e->op) {
  case E_NUM:
    if (mpq_sgn(e->u.num) < 0)
      return P_NEG;
    return mpz_cmp_ui(mpq_denref(e->u.num), 1) == 0 ? P_ATOM : P_PROD;
  case E_ADD:
    return P_SUM;
  case E_NEG:
    return P_NEG;
  case E_MUL:
  case E_DIV:
  case E_HAD:
  case E_HDIV:
    return P_PROD;
  case E_KRON:
    return p->unicode ? P_KRON : P_ATOM;
  case E_TRANS:
  case E_INV:
  case E_POW:
  case E_EPOW:
    return P_POST;
  case E_DIFF:
    return P_DIFF;
  default:
    return P_ATOM;
  }
}

static void print(printer *p, const expr *e);
static void bracketed(printer *p, const expr *e);

/* The Greek names the lexer reads as letters (grammar/lexer.l), in the
 * order of their code points: U+03B1 alpha .. U+03C9 omega, U+0391 Alpha
 * .. U+03A9 Omega, less the final sigma and its unassigned capital. */
static const char *const greek[] = {
    "alpha", "beta",    "gamma",   "delta", "epsilon", "zeta",
    "eta",   "theta",   "iota",    "kappa", "lambda",  "mu",
    "nu",    "xi",      "omicron", "pi",    "rho",     "sigma",
    "tau",   "upsilon", "phi",     "chi",   "psi",     "omega"};

/* Writes NAME, in Unicode mode with a Greek name as its letter: lambda1
 * as λ1, Sigma as Σ, sigma_2 as σ_2.  The Greek name must be followed by
 * nothing, a digit or '_' (as for the default kinds, shape.c), so that
 * alphabet stays alphabet: the lexer would read αbet back as alphabet,
 * but no reader would. */
static void print_name(printer *p, const char *name) {
  if (p->unicode) {
    for (unsigned i = 0; i < sizeof greek / sizeof greek[0]; i++) {
      size_t n = strlen(greek[i]);
      bool upper = name[0] == greek[i][0] - 'a' + 'A';
      if (!upper && name[0] != greek[i][0])
        continue;
      if (strncmp(name + 1, greek[i] + 1, n - 1) != 0)
        continue;
      const char *rest = name + n;
      if (*rest != '\0' && *rest != '_' && !(*rest >= '0' && *rest <= '9'))
        continue;
      /* skip U+03C2 (final sigma) and U+03A2 (unassigned) */
      unsigned cp = (upper ? 0x391u : 0x3B1u) + i + (i >= 17);
      sb_putc(p->out, (char)(0xC0 | (cp >> 6)));
      sb_putc(p->out, (char)(0x80 | (cp & 0x3F)));
      sb_puts(p->out, rest);
      return;
    }
  }
  sb_puts(p->out, name);
}

/* Prints E where the grammar wants level LEVEL; LEFT is the first operand
 * of a product-level chain, which may itself be one (a / s b). */
static void sub(printer *p, const expr *e, int level, bool left) {
  int q = prec(p, e);
  bool paren = q < level && !(left && level == P_PROD && q == P_PROD);
  if (e->op == E_DIFF && level > P_DIFF)
    paren = true;
  int saved = p->in_norm;
  if (paren) {
    sb_putc(p->out, '(');
    p->in_norm = 0; /* inside brackets a norm may open again */
  }
  print(p, e);
  if (paren)
    sb_putc(p->out, ')');
  p->in_norm = saved;
}

/* Prints E inside brackets the caller writes, where || opens again. */
static void bracketed(printer *p, const expr *e) {
  int saved = p->in_norm;
  p->in_norm = 0;
  print(p, e);
  p->in_norm = saved;
}

static void print_num(printer *p, const mpq_t q) {
  char *s = mpq_get_str(NULL, 10, q);
  sb_puts(p->out, s);
  void (*freefn)(void *, size_t);
  mp_get_memory_functions(NULL, NULL, &freefn);
  freefn(s, strlen(s) + 1);
}

/* The exponent of ^ or .^: a bare non-negative integer, else in parens. */
static void print_exponent(printer *p, const expr *k) {
  /* x^T is a transpose, and so is the start of x^Tau: such names go in
   * parentheses, x^(T) */
  if ((k->op == E_SYM && k->u.name[0] != 'T') ||
      (k->op == E_NUM && prec(p, k) == P_ATOM)) {
    print(p, k);
  } else {
    sb_putc(p->out, '(');
    bracketed(p, k);
    sb_putc(p->out, ')');
  }
}

static void print_chain(printer *p, const expr *e, const char *op) {
  /* a first operand of the same n-ary kind is bracketed: the node kept it
   * whole (MD_MAX_FLAT), and so does the parser, given the brackets */
  bool same = e->kid[0]->op == e->op && (e->op == E_MUL || e->op == E_HAD);
  sub(p, e->kid[0], same ? P_KRON : P_PROD, !same);
  for (size_t i = 1; i < e->nkids && !full(p); i++) {
    sb_puts(p->out, op);
    /* A B ⊗ C is A (B ⊗ C): in Unicode mode a Kronecker product needs
     * no parentheses here; in the plain text nothing is at that level */
    sub(p, e->kid[i], P_KRON, false);
  }
}

/* E's operands as an argument list: "(a, b, ...)". */
static void print_list(printer *p, const expr *e) {
  sb_putc(p->out, '(');
  for (size_t i = 0; i < e->nkids && !full(p); i++) {
    if (i)
      sb_puts(p->out, ", ");
    bracketed(p, e->kid[i]);
  }
  sb_putc(p->out, ')');
}

/* Whether nested binary kron calls would not parse back to E. */
static bool kron_nested(const expr *e) {
  if (e->nkids > MD_MAX_FLAT)
    return true;
  for (size_t i = 0; i < e->nkids; i++)
    if (e->kid[i]->op == E_KRON)
      return true;
  return false;
}

/* The operands LO .. HI - 1 of the Kronecker product E, as kron calls. */
static void print_kron(printer *p, const expr *e, size_t lo, size_t hi) {
  if (full(p))
    return;
  if (hi - lo == 1) {
    bracketed(p, e->kid[lo]);
    return;
  }
  size_t mid = lo + (hi - lo + 1) / 2;
  sb_puts(p->out, "kron(");
  print_kron(p, e, lo, mid);
  sb_puts(p->out, ", ");
  print_kron(p, e, mid, hi);
  sb_putc(p->out, ')');
}

static void print(printer *p, const expr *e) {
  strbuf *o = p->out;
  if (full(p))
    return; /* a message has enough: stop, whatever the size of E */
  switch ((expr_op)e->op) {
  case E_NUM:
    print_num(p, e->u.num);
    return;
  case E_SYM:
    print_name(p, e->u.name);
    return;
  case E_IDENT:
    sb_putc(o, 'I');
    return;
  case E_ONES:
    sb_puts(o, "ones");
    return;
  case E_ADD:
    /* (a + b) + c: a sum kept whole (MD_MAX_FLAT), see print_chain */
    sub(p, e->kid[0], e->kid[0]->op == E_ADD ? P_NEG : P_SUM, false);
    for (size_t i = 1; i < e->nkids && !full(p); i++) {
      const expr *t = e->kid[i];
      if (t->op == E_NEG) {
        sb_puts(o, " - ");
        /* a - (-b) rather than a - -b */
        sub(p, t->kid[0], t->kid[0]->op == E_NEG ? P_PROD : P_NEG, false);
      } else if (expr_num_sgn(t) < 0) {
        /* a - 1/2 is a + (-1/2): the quotient binds tighter than the
         * minus, so it needs no parentheses */
        mpq_t q;
        mpq_init(q);
        mpq_neg(q, t->u.num);
        sb_puts(o, " - ");
        print_num(p, q);
        mpq_clear(q);
      } else {
        sb_puts(o, " + ");
        sub(p, t, P_NEG, false);
      }
    }
    return;
  case E_NEG:
    sb_putc(o, '-');
    /* -(-x) rather than --x, which reads like a typo */
    sub(p, e->kid[0], e->kid[0]->op == E_NEG ? P_PROD : P_NEG, false);
    return;
  case E_MUL:
    print_chain(p, e, " ");
    return;
  case E_DIV:
    print_chain(p, e, " / ");
    return;
  case E_HAD:
    print_chain(p, e, p->unicode ? " ⊙ " : " .* ");
    return;
  case E_HDIV:
    print_chain(p, e, " ./ ");
    return;
  case E_KRON:
    if (p->unicode) {
      /* a ⊗ b ⊗ c: its operands are postfix expressions */
      for (size_t i = 0; i < e->nkids && !full(p); i++) {
        if (i)
          sb_puts(o, " ⊗ ");
        sub(p, e->kid[i], P_POST, false);
      }
      return;
    }
    /* kron(kron(a, b), c) re-parses to the flat a ⊗ b ⊗ c; the calls
     * nest as a balanced tree, log n deep (n nested calls would pass the
     * parser's limit past 2000 operands).  An operand that is itself a
     * Kronecker product (kept whole past MD_MAX_FLAT), or more operands
     * than one node gathers from nested calls, take the one call
     * kron(a, b, c, ...): nested calls would flatten it otherwise. */
    if (kron_nested(e)) {
      sb_puts(o, "kron");
      print_list(p, e);
      return;
    }
    print_kron(p, e, 0, e->nkids);
    return;
  case E_TRANS:
    /* a transposed power is (X^2)^T, never X^2^T */
    sub(p, e->kid[0],
        e->kid[0]->op == E_POW || e->kid[0]->op == E_EPOW ? P_ATOM + 1 : P_POST,
        false);
    sb_puts(o, p->unicode ? "ᵀ" : "^T");
    return;
  case E_INV:
    if (e->kid[0]->op == E_TRANS) {
      sub(p, e->kid[0]->kid[0], P_POST, false);
      sb_puts(o, p->unicode ? "⁻ᵀ" : "^-T");
    } else {
      sub(p, e->kid[0], P_POST, false);
      sb_puts(o, p->unicode ? "⁻¹" : "^-1");
    }
    return;
  case E_POW:
    /* (x^-1)^k prints as x^-k, which parses back to it only for k >= 2 */
    if (e->kid[0]->op == E_INV && e->kid[1]->op == E_NUM &&
        prec(p, e->kid[1]) == P_ATOM &&
        mpz_cmp_ui(mpq_numref(e->kid[1]->u.num), 2) >= 0) {
      sub(p, e->kid[0]->kid[0], P_POST, false);
      sb_puts(o, "^-");
      print_num(p, e->kid[1]->u.num);
      return;
    }
    sub(p, e->kid[0], P_POST, false);
    sb_putc(o, '^');
    print_exponent(p, e->kid[1]);
    return;
  case E_EPOW:
    sub(p, e->kid[0], P_POST, false);
    sb_puts(o, " .^ ");
    print_exponent(p, e->kid[1]);
    return;
  case E_CALL: {
    const fn_info *f = md_fn_get(p->ctx, e->u.fn);
    if ((e->u.fn == FN_NORM2 || e->u.fn == FN_NORM1) && !p->in_norm) {
      const char *bars = p->unicode ? "‖" : "||";
      p->in_norm++;
      sb_puts(o, bars);
      print(p, e->kid[0]);
      sb_puts(o, bars);
      if (e->u.fn == FN_NORM1)
        sb_puts(o, p->unicode ? "₁" : "_1");
      p->in_norm--;
      return;
    }
    int saved = p->in_norm;
    p->in_norm = 0; /* inside parentheses a norm may open again */
    sb_puts(o, f->name);
    sb_putc(o, '(');
    for (size_t i = 0; i < e->nkids && !full(p); i++) {
      if (i)
        sb_puts(o, ", ");
      print(p, e->kid[i]);
    }
    sb_putc(o, ')');
    p->in_norm = saved;
    return;
  }
  case E_INNER:
    sb_putc(o, '<');
    bracketed(p, e->kid[0]);
    sb_puts(o, ", ");
    bracketed(p, e->kid[1]);
    sb_putc(o, '>');
    return;
  case E_DIFF: {
    const expr *x = e->kid[1];
    if (x->op == E_SYM && strcmp(x->u.name, "elta") != 0) {
      sb_puts(o, "d/d");
      print_name(p, x->u.name);
      sb_putc(o, ' ');
      print(p, e->kid[0]);
    } else if (x->op == E_CALL && x->kid[0]->op == E_SYM) {
      sb_puts(o, "d/dvec(");
      print_name(p, x->kid[0]->u.name);
      sb_puts(o, ") ");
      print(p, e->kid[0]);
    } else {
      sb_puts(o, "diff(");
      bracketed(p, e->kid[0]);
      sb_puts(o, ", ");
      print(p, x);
      sb_putc(o, ')');
    }
    return;
  }
  case E_HESS:
    sb_puts(o, "hess(");
    bracketed(p, e->kid[0]);
    sb_puts(o, ", ");
    bracketed(p, e->kid[1]);
    sb_putc(o, ')');
    return;
  case E_TUPLE:
    print_list(p, e);
    return;
  case E_NOPS:
    break;
  }
  sb_puts(o, "?");
}

/* ---- the size of the text ----
 *
 * Follows print() case by case, counting instead of writing: each name,
 * number (1/2 too: one coefficient) and operator that the text shows is
 * one; a function or kron counts once for its name, <a, b> and ||x||
 * once for the brackets, ^2 is one operator as ^T is; parentheses,
 * commas and juxtaposition count nothing.  So x + x is larger than 2 x, 2 A + 2
 * B than 2 (A + B), and C^T B^T A^T than (A B C)^T. */

static size_t text_size(md_idmap *memo, const expr *e);

static size_t add_sat(size_t a, size_t b) {
  return a > SIZE_MAX / 4 - b ? SIZE_MAX / 4 : a + b;
}

static size_t text_size_node(md_idmap *memo, const expr *e) {
  size_t n = 0;
  switch ((expr_op)e->op) {
  case E_NUM:
    return mpq_sgn(e->u.num) < 0 ? 2 : 1;
  case E_ADD:
    n = text_size(memo, e->kid[0]);
    for (size_t i = 1; i < e->nkids; i++) {
      const expr *t = e->kid[i];
      if (t->op == E_NEG) /* a - b */
        n = add_sat(n, 1 + text_size(memo, t->kid[0]));
      else if (expr_num_sgn(t) < 0) /* a - 1/2 */
        n = add_sat(n, 2);
      else
        n = add_sat(n, 1 + text_size(memo, t));
    }
    return n;
  case E_MUL: /* juxtaposition */
    for (size_t i = 0; i < e->nkids; i++)
      n = add_sat(n, text_size(memo, e->kid[i]));
    return n;
  case E_DIV:
  case E_HAD:
  case E_HDIV:
  case E_KRON:
    n = e->op == E_KRON;
    for (size_t i = 0; i < e->nkids; i++)
      n = add_sat(n, (i > 0 && e->op != E_KRON) + text_size(memo, e->kid[i]));
    return n;
  case E_INV: /* X^-T is one operator */
    if (e->kid[0]->op == E_TRANS)
      return add_sat(1, text_size(memo, e->kid[0]->kid[0]));
    return add_sat(1, text_size(memo, e->kid[0]));
  case E_POW: /* X^-2 is X^-1 to the 2, but shows one operator */
    if (e->kid[0]->op == E_INV && e->kid[1]->op == E_NUM &&
        mpz_cmp_ui(mpq_denref(e->kid[1]->u.num), 1) == 0 &&
        mpz_cmp_ui(mpq_numref(e->kid[1]->u.num), 2) >= 0)
      return add_sat(1, text_size(memo, e->kid[0]->kid[0]));
    /* A^2 is one operator on A, as A^T and A^-1 are */
    if (e->kid[1]->op == E_NUM && mpq_sgn(e->kid[1]->u.num) > 0 &&
        mpz_cmp_ui(mpq_denref(e->kid[1]->u.num), 1) == 0)
      return add_sat(1, text_size(memo, e->kid[0]));
    break;
  case E_CALL:
  case E_INNER:
  case E_DIFF:
  case E_HESS:
  case E_TRANS:
  case E_NEG:
  case E_EPOW:
    break;
  case E_TUPLE:
    n = 0;
    for (size_t i = 0; i < e->nkids; i++)
      n = add_sat(n, text_size(memo, e->kid[i]));
    return n;
  case E_SYM:
  case E_IDENT:
  case E_ONES:
  case E_NOPS:
    return 1;
  }
  /* the operator, then the operands */
  n = 1;
  for (size_t i = 0; i < e->nkids; i++)
    n = add_sat(n, text_size(memo, e->kid[i]));
  return n;
}

static size_t text_size(md_idmap *memo, const expr *e) {
  size_t n = memo ? md_idmap_get(memo, e) : 0;
  if (n)
    return n;
  n = text_size_node(memo, e);
  if (memo)
    md_idmap_put(memo, e, n);
  return n;
}

size_t md_text_size(md_idmap *memo, const expr *e) {
  return text_size(memo, e);
}

void md_print_text(strbuf *out, const md_ctx *ctx, const expr *e) {
  md_print_text_opts(out, ctx, e, false);
}

void md_print_text_opts(strbuf *out, const md_ctx *ctx, const expr *e,
                        bool unicode) {
  printer p = {ctx, out, 0, unicode, 0};
  print(&p, e);
}

char *md_print_text_brief(const md_ctx *ctx, const expr *e, size_t max) {
  strbuf b;
  sb_init(&b);
  printer p = {ctx, &b, 0, false, max};
  print(&p, e);
  if (b.len > max) {
    b.len = max;
    /* not in the middle of a UTF-8 character */
    while (b.len > 0 && ((unsigned char)b.s[b.len] & 0xC0) == 0x80)
      b.len--;
    b.s[b.len] = '\0';
    sb_puts(&b, "...");
  }
  return sb_take(&b);
}

char *md_print_text_alloc(const md_ctx *ctx, const expr *e) {
  strbuf b;
  sb_init(&b);
  md_print_text(&b, ctx, e);
  return sb_take(&b);
}
