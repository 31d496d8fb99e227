/*
 * test_latex.c - md_print_latex (SPEC 6) and md_print_text_opts' Unicode
 * mode (SPEC 2, Unicode).
 *
 * LaTeX: the exact form of every construct, symbols by kind (declared or
 * by name), minimal \left( \right), and for random expressions a
 * structural check of the output (balanced braces and \left \right, no
 * double superscript, only macros that plain LaTeX + amsmath and MathJax
 * know).  Whether the output really compiles and renders is for
 * tests/latex/check.py, which also runs `test_latex --dump N` to get
 * random formulas.
 *
 * Unicode: the exact spellings, and the round trip: parse(unicode(e)) is
 * the very node e, for fixed cases and random expressions (the lexer
 * reads every Unicode spelling, ⁻ᵀ and ‖x‖₁ included).  The plain text
 * must not change: it is
 * compared with md_print_text on the same random expressions.
 *
 * Another seed: MATDIFF_TEST_SEED=12345 build/tests/test_latex.
 */
#include "testutil.h"

#include "print_latex.h"
#include "print_text.h"
#include "shape.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static expr *sym(const char *name) {
  return expr_sym(tu_ctx, name);
}

/* Results of the printers, alive until the next call but three. */
static char *bufs[4];
static unsigned nbuf;

static const char *keep(char *s) {
  nbuf = (nbuf + 1) % 4;
  free(bufs[nbuf]);
  bufs[nbuf] = s;
  return s;
}

static void setup(void) {
  tu_setup();
}

static void teardown(void) {
  for (unsigned i = 0; i < 4; i++) {
    free(bufs[i]);
    bufs[i] = NULL;
  }
  tu_teardown();
}

/* The LaTeX of the last statement of TEXT ("let ...; let ...; EXPR"),
 * with the kinds the let statements declare. */
static const char *latex(const char *text) {
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err);
  ck_assert_msg(ok, "'%s' does not parse: %s", text, err.n ? err.v[0].msg : "");
  md_errors_clear(&err);
  md_env env;
  md_env_init(&env);
  for (size_t i = 0; i + 1 < p.n; i++)
    for (size_t k = 0; k < p.stmts[i].ndecls; k++)
      md_env_add(&env, &p.stmts[i].decls[k]);
  ck_assert_int_eq(p.stmts[p.n - 1].kind, ST_EXPR);
  expr *e = p.stmts[p.n - 1].lhs;
  md_parsed_clear(&p);
  md_shapes *sh = md_shapes_new(tu_ctx, &env);
  char *s = md_print_latex_alloc(tu_ctx, sh, e);
  md_shapes_free(sh);
  md_env_clear(&env);
  return keep(s);
}

#define check_latex(text, want)                                                \
  do {                                                                         \
    const char *got_ = latex(text);                                            \
    ck_assert_msg(strcmp(got_, want) == 0,                                     \
                  "'%s' in LaTeX:\n  got  %s\n  want %s", text, got_, want);   \
  } while (0)

/* E built by hand, default kinds. */
#define check_latex_e(e, want)                                                 \
  do {                                                                         \
    const char *got_ = keep(md_print_latex_alloc(tu_ctx, NULL, e));            \
    ck_assert_msg(strcmp(got_, want) == 0, "LaTeX:\n  got  %s\n  want %s",     \
                  got_, want);                                                 \
  } while (0)

/* ---- LaTeX: symbols ---- */

START_TEST(latex_symbols_by_kind) {
  check_latex("A", "\\mathbf{A}");
  check_latex("x", "\\mathbf{x}");
  check_latex("alpha", "\\alpha");
  check_latex("lambda", "\\lambda");
  check_latex("Sigma", "\\boldsymbol{\\Sigma}");
  check_latex("let s : scalar; s", "s");
  check_latex("let S : scalar; S", "S");
  check_latex("let A : symmetric(n); A", "\\mathbf{A}");
  check_latex("let D : diagonal; D", "\\mathbf{D}");
  check_latex("let S : spd(n); S", "\\mathbf{S}");
  check_latex("let mu : vector(n); mu", "\\boldsymbol{\\mu}");
  check_latex("let Sigma : scalar; Sigma", "\\Sigma");
  check_latex("let v : matrix; v", "\\mathbf{v}");
  /* omicron and the capitals without a macro are words */
  check_latex("omicron", "\\mathit{omicron}"); /* a scalar by default */
  check_latex("Beta", "\\mathbf{Beta}");
  check_latex("let Alpha : scalar; Alpha", "\\mathit{Alpha}");
  /* a Greek prefix does not make a Greek name */
  check_latex("alphabet", "\\mathbf{alphabet}");
  check_latex("pin", "\\mathbf{pin}");
  check_latex("I", "\\mathbf{I}");
  check_latex("ones", "\\mathbf{1}");
}
END_TEST

START_TEST(latex_subscripts) {
  check_latex("W1", "\\mathbf{W}_{1}");
  check_latex("W12", "\\mathbf{W}_{12}");
  check_latex("b1", "\\mathbf{b}_{1}");
  check_latex("sigma_2", "\\sigma_{2}");
  check_latex("lambda1", "\\lambda_{1}");
  check_latex("Sigma1", "\\boldsymbol{\\Sigma}_{1}");
  check_latex("x_init", "\\mathbf{x}_{\\mathrm{init}}");
  check_latex("x_i", "\\mathbf{x}_{i}");
  check_latex("x_alpha", "\\mathbf{x}_{\\alpha}");
  check_latex("W_1", "\\mathbf{W}_{1}");
  check_latex("W1_a_bc", "\\mathbf{W}_{1,a,\\mathrm{bc}}");
  check_latex("x__a", "\\mathbf{x}_{a}");
  check_latex("x_", "\\mathbf{x}");
  check_latex("let rate : scalar; rate", "\\mathit{rate}");
  check_latex("let rate_0 : scalar; rate_0", "\\mathit{rate}_{0}");
  check_latex("xy", "\\mathbf{xy}");
  check_latex("x2y", "\\mathbf{x2y}");
}
END_TEST

/* ---- LaTeX: operators ---- */

START_TEST(latex_numbers) {
  check_latex("2", "2");
  check_latex("0.5", "\\frac{1}{2}");
  check_latex("-3/4", "-\\frac{3}{4}");
  check_latex("1/2 A", "\\frac{1}{2} \\mathbf{A}");
  check_latex("-1/2 A", "-\\frac{1}{2} \\mathbf{A}");
  check_latex("A - 1/2 B", "\\mathbf{A} - \\frac{1}{2} \\mathbf{B}");
  check_latex("a - 1/2", "\\mathbf{a} - \\frac{1}{2}");
  check_latex_e(expr_mul(tu_ctx, sym("A"), tu_rat(2, 1)),
                "\\mathbf{A} \\cdot 2");
  check_latex_e(expr_mul(tu_ctx, tu_rat(2, 1), tu_rat(3, 1)), "2 \\cdot 3");
  check_latex_e(expr_mul(tu_ctx, sym("A"), tu_rat(1, 2)),
                "\\mathbf{A} \\cdot \\frac{1}{2}");
}
END_TEST

START_TEST(latex_postfix) {
  check_latex("A^T", "\\mathbf{A}^\\top");
  check_latex("A^-1", "\\mathbf{A}^{-1}");
  check_latex("A^-T", "\\mathbf{A}^{-\\top}");
  check_latex("inv(A^T)", "\\mathbf{A}^{-\\top}");
  check_latex("A^3", "\\mathbf{A}^{3}");
  check_latex("A^-2", "\\mathbf{A}^{-2}");
  check_latex("A .^ 2", "\\mathbf{A}^{\\circ 2}");
  check_latex("A .^ (1/2)", "\\mathbf{A}^{\\circ 1/2}");
  check_latex("A .^ -1", "\\mathbf{A}^{\\circ -1}");
  check_latex("alpha^(1/2)", "\\alpha^{1/2}");
  check_latex("alpha^-0.5", "\\alpha^{-1/2}");
  check_latex("W1^T", "\\mathbf{W}_{1}^\\top");
  /* TeX forbids a double superscript: the operand is bracketed */
  check_latex("(A^-1)^T", "(\\mathbf{A}^{-1})^\\top");
  check_latex("(A^T)^T", "(\\mathbf{A}^\\top)^\\top");
  check_latex("(A B)^T", "(\\mathbf{A} \\mathbf{B})^\\top");
  check_latex("(A + B)^-1", "(\\mathbf{A} + \\mathbf{B})^{-1}");
  check_latex("(-x)^T", "(-\\mathbf{x})^\\top");
  check_latex("(x / alpha)^T",
              "\\left( \\frac{\\mathbf{x}}{\\alpha} \\right)^\\top");
  check_latex("(1/2)^2", "\\left( \\frac{1}{2} \\right)^{2}");
  check_latex("(-2)^2", "(-2)^{2}");
  check_latex("tr(A)^2", "\\operatorname{tr}(\\mathbf{A})^{2}");
  check_latex("ones^T x", "\\mathbf{1}^\\top \\mathbf{x}");
}
END_TEST

START_TEST(latex_products) {
  check_latex("x^T A x", "\\mathbf{x}^\\top \\mathbf{A} \\mathbf{x}");
  check_latex("A (B + C)", "\\mathbf{A} (\\mathbf{B} + \\mathbf{C})");
  check_latex("(A + B) C", "(\\mathbf{A} + \\mathbf{B}) \\mathbf{C}");
  check_latex("A .* B", "\\mathbf{A} \\odot \\mathbf{B}");
  check_latex("A ⊙ B ⊙ C", "\\mathbf{A} \\odot \\mathbf{B} \\odot \\mathbf{C}");
  check_latex("A ./ B", "\\mathbf{A} \\oslash \\mathbf{B}");
  check_latex("A ./ B ./ C", "\\mathbf{A} \\oslash \\mathbf{B} \\oslash "
                             "\\mathbf{C}");
  check_latex("A ./ (B ./ C)",
              "\\mathbf{A} \\oslash (\\mathbf{B} \\oslash \\mathbf{C})");
  check_latex("kron(A, B)", "\\mathbf{A} \\otimes \\mathbf{B}");
  check_latex("A ⊗ B ⊗ C", "\\mathbf{A} \\otimes \\mathbf{B} \\otimes "
                           "\\mathbf{C}");
  /* products of different kinds are bracketed for the reader */
  check_latex("A B ⊗ C D",
              "\\mathbf{A} (\\mathbf{B} \\otimes \\mathbf{C}) \\mathbf{D}");
  check_latex("kron(A B, C)", "(\\mathbf{A} \\mathbf{B}) \\otimes \\mathbf{C}");
  check_latex("(P x) .* (Q x)",
              "(\\mathbf{P} \\mathbf{x}) \\odot (\\mathbf{Q} \\mathbf{x})");
  check_latex("P x .* Q x", "\\bigl( (\\mathbf{P} \\mathbf{x}) \\odot "
                            "\\mathbf{Q} \\bigr) \\mathbf{x}");
  check_latex("x .* (A x)", "\\mathbf{x} \\odot (\\mathbf{A} \\mathbf{x})");
  check_latex("1 ./ (1 + exp(-x))", "1 \\oslash (1 + \\exp(-\\mathbf{x}))");
  check_latex("A / alpha", "\\frac{\\mathbf{A}}{\\alpha}");
  check_latex("(A + B) / 2 C", "\\frac{\\mathbf{A} + \\mathbf{B}}{2} "
                               "\\mathbf{C}");
  check_latex("A / (alpha beta)", "\\frac{\\mathbf{A}}{\\alpha \\beta}");
  check_latex("(-x) y^T", "(-\\mathbf{x}) \\mathbf{y}^\\top");
  /* a thin space beside a name written as a word */
  check_latex("let rate : scalar; let gain : scalar; rate gain x",
              "\\mathit{rate} \\, \\mathit{gain} \\, \\mathbf{x}");
  check_latex("let rate : scalar; alpha rate^2 x^T",
              "\\alpha \\, \\mathit{rate}^{2} \\mathbf{x}^\\top");
  check_latex("alpha beta", "\\alpha \\beta");
}
END_TEST

START_TEST(latex_sums_and_signs) {
  check_latex("a - b", "\\mathbf{a} - \\mathbf{b}");
  check_latex("-x^T A x", "-\\mathbf{x}^\\top \\mathbf{A} \\mathbf{x}");
  check_latex("-(A + B)", "-(\\mathbf{A} + \\mathbf{B})");
  check_latex("a - (b - c)", "\\mathbf{a} - (\\mathbf{b} - \\mathbf{c})");
  check_latex("--x", "-(-\\mathbf{x})");
  check_latex("a - -b", "\\mathbf{a} - (-\\mathbf{b})");
  check_latex("-2 A", "-2 \\mathbf{A}");
}
END_TEST

START_TEST(latex_functions) {
  check_latex("tr(A X^T B)", "\\operatorname{tr}(\\mathbf{A} "
                             "\\mathbf{X}^\\top \\mathbf{B})");
  check_latex("det(X)", "\\det(\\mathbf{X})");
  check_latex("logdet(X)", "\\log\\det(\\mathbf{X})");
  check_latex("diag(x)", "\\operatorname{diag}(\\mathbf{x})");
  check_latex("vec(X)", "\\operatorname{vec}(\\mathbf{X})");
  check_latex("sum(X)", "\\operatorname{sum}(\\mathbf{X})");
  check_latex("softmax(x)", "\\operatorname{softmax}(\\mathbf{x})");
  check_latex("logsumexp(x)", "\\operatorname{logsumexp}(\\mathbf{x})");
  check_latex("exp(x) + log(x)", "\\exp(\\mathbf{x}) + \\log(\\mathbf{x})");
  check_latex("sin(x) + cos(x) + tan(x) + tanh(x)",
              "\\sin(\\mathbf{x}) + \\cos(\\mathbf{x}) + \\tan(\\mathbf{x}) + "
              "\\tanh(\\mathbf{x})");
  check_latex("sqrt(alpha)", "\\sqrt{\\alpha}");
  check_latex("abs(x) + sign(x)", "\\operatorname{abs}(\\mathbf{x}) + "
                                  "\\operatorname{sign}(\\mathbf{x})");
  check_latex("relu(x) + sigmoid(x) + softplus(x)",
              "\\operatorname{relu}(\\mathbf{x}) + "
              "\\operatorname{sigmoid}(\\mathbf{x}) + "
              "\\operatorname{softplus}(\\mathbf{x})");
  check_latex("||x||", "\\lVert \\mathbf{x} \\rVert");
  check_latex("||X||_F", "\\lVert \\mathbf{X} \\rVert");
  check_latex("||x||_1", "\\lVert \\mathbf{x} \\rVert_{1}");
  check_latex("||A x - y||^2", "\\lVert \\mathbf{A} \\mathbf{x} - "
                               "\\mathbf{y} \\rVert^{2}");
  check_latex("||x||_1^2", "\\lVert \\mathbf{x} \\rVert_{1}^{2}");
  check_latex("||norm2(x) y||", "\\lVert \\lVert \\mathbf{x} \\rVert "
                                "\\mathbf{y} \\rVert");
  check_latex("<a, b>", "\\langle \\mathbf{a}, \\mathbf{b} \\rangle");
  check_latex("<A + B, C D>", "\\langle \\mathbf{A} + \\mathbf{B}, "
                              "\\mathbf{C} \\mathbf{D} \\rangle");
  /* a fraction inside: brackets that grow */
  check_latex("tr(1/2 A)", "\\operatorname{tr}\\left( \\frac{1}{2} "
                           "\\mathbf{A} \\right)");
  check_latex("||x / alpha||", "\\left\\lVert \\frac{\\mathbf{x}}{\\alpha} "
                               "\\right\\rVert");
  check_latex("<1/2 a, b>", "\\left\\langle \\frac{1}{2} \\mathbf{a}, "
                            "\\mathbf{b} \\right\\rangle");
}
END_TEST

START_TEST(latex_user_functions) {
  uint32_t f = md_fn_add(tu_ctx, "my_fn", 1, FC_ELEMWISE);
  uint32_t g = md_fn_add(tu_ctx, "gelu", 2, FC_ELEMWISE);
  ck_assert_uint_ge(f, FN_NBUILTIN);
  check_latex_e(expr_call1(tu_ctx, f, sym("x")),
                "\\operatorname{my\\_fn}(\\mathbf{x})");
  expr *args[2] = {sym("x"), sym("alpha")};
  check_latex_e(expr_call(tu_ctx, g, args, 2),
                "\\operatorname{gelu}(\\mathbf{x}, \\alpha)");
}
END_TEST

START_TEST(latex_derivatives) {
  check_latex("d/dX tr(X)", "\\frac{\\partial \\operatorname{tr}(\\mathbf{X})}"
                            "{\\partial \\mathbf{X}}");
  check_latex("d/dx a^T x", "\\frac{\\partial \\mathbf{a}^\\top \\mathbf{x}}"
                            "{\\partial \\mathbf{x}}");
  check_latex("d/dx a^T x + b^T x",
              "\\frac{\\partial}{\\partial \\mathbf{x}} (\\mathbf{a}^\\top "
              "\\mathbf{x} + \\mathbf{b}^\\top \\mathbf{x})");
  check_latex("d/dx -(a^T x)", "\\frac{\\partial}{\\partial \\mathbf{x}} "
                               "(-\\mathbf{a}^\\top \\mathbf{x})");
  check_latex("d/dx 2 a^T x", "\\frac{\\partial}{\\partial \\mathbf{x}} (2 "
                              "\\mathbf{a}^\\top \\mathbf{x})");
  check_latex("d/dx 1/2 x^T x", "\\frac{\\partial}{\\partial \\mathbf{x}} "
                                "\\left( \\frac{1}{2} \\mathbf{x}^\\top "
                                "\\mathbf{x} \\right)");
  check_latex("d/dvec(X) vec(A X B)",
              "\\frac{\\partial \\operatorname{vec}(\\mathbf{A} \\mathbf{X} "
              "\\mathbf{B})}{\\partial \\operatorname{vec}(\\mathbf{X})}");
  check_latex("d/dalpha alpha^2", "\\frac{\\partial \\alpha^{2}}"
                                  "{\\partial \\alpha}");
  check_latex("d/dW1 ||W1 x||^2", "\\frac{\\partial \\lVert \\mathbf{W}_{1} "
                                  "\\mathbf{x} \\rVert^{2}}{\\partial "
                                  "\\mathbf{W}_{1}}");
  check_latex("hess(x^T A x, x)",
              "\\frac{\\partial^2 \\mathbf{x}^\\top \\mathbf{A} \\mathbf{x}}"
              "{\\partial \\mathbf{x} \\, \\partial \\mathbf{x}^\\top}");
  check_latex("hess(a^T x + x^T x, x)",
              "\\frac{\\partial^2}{\\partial \\mathbf{x} \\, \\partial "
              "\\mathbf{x}^\\top} (\\mathbf{a}^\\top \\mathbf{x} + "
              "\\mathbf{x}^\\top \\mathbf{x})");
  check_latex("hess(exp(alpha), alpha)",
              "\\frac{\\partial^2 \\exp(\\alpha)}{\\partial \\alpha^{2}}");
  check_latex("hess(tr(X^T X), vec(X))",
              "\\frac{\\partial^2 \\operatorname{tr}(\\mathbf{X}^\\top "
              "\\mathbf{X})}{\\partial \\operatorname{vec}(\\mathbf{X}) \\, "
              "\\partial \\operatorname{vec}(\\mathbf{X})^\\top}");
  /* numerator layout: --equation's left side is (d/dX f)^T */
  check_latex("(d/dx a^T x)^T",
              "\\left( \\frac{\\partial \\mathbf{a}^\\top \\mathbf{x}}"
              "{\\partial \\mathbf{x}} \\right)^\\top");
  check_latex("A (d/dx a^T x)", "\\mathbf{A} \\frac{\\partial "
                                "\\mathbf{a}^\\top \\mathbf{x}}{\\partial "
                                "\\mathbf{x}}");
  check_latex("A (d/dx a + x)",
              "\\mathbf{A} \\left( \\frac{\\partial}{\\partial \\mathbf{x}} "
              "(\\mathbf{a} + \\mathbf{x}) \\right)");
  check_latex("g + d/dX f", "\\mathbf{g} + \\frac{\\partial \\mathbf{f}}"
                            "{\\partial \\mathbf{X}}");
}
END_TEST

START_TEST(latex_tuple) {
  expr *v[3] = {sym("a"), sym("alpha"), tu_rat(1, 2)};
  check_latex_e(expr_tuple(tu_ctx, v, 3),
                "\\left( \\mathbf{a}, \\alpha, \\frac{1}{2} \\right)");
}
END_TEST

/* ---- LaTeX: bracket sizes, placeholders, width, long results ---- */

START_TEST(latex_bracket_sizes) {
  /* plain around content of normal height, superscripts included */
  check_latex("(A^T + B) x", "(\\mathbf{A}^\\top + \\mathbf{B}) \\mathbf{x}");
  /* one size up per level of round brackets inside */
  check_latex("y .* ((A + B) x)",
              "\\mathbf{y} \\odot \\bigl( (\\mathbf{A} + \\mathbf{B}) "
              "\\mathbf{x} \\bigr)");
  check_latex("C (y .* ((A + B) x) - z)",
              "\\mathbf{C} \\Bigl( \\mathbf{y} \\odot \\bigl( (\\mathbf{A} + "
              "\\mathbf{B}) \\mathbf{x} \\bigr) - \\mathbf{z} \\Bigr)");
  /* from three levels on, \\biggl( */
  check_latex(
      "(D (C (y .* ((A + B) x) - z) + w)) .* v",
      "\\biggl( \\mathbf{D} \\biggl( \\mathbf{C} \\Bigl( \\mathbf{y} "
      "\\odot \\bigl( (\\mathbf{A} + \\mathbf{B}) \\mathbf{x} \\bigr) - "
      "\\mathbf{z} \\Bigr) + \\mathbf{w} \\biggr) \\biggr) \\odot "
      "\\mathbf{v}");
  /* a call's brackets: plain around calls, sized around brackets */
  check_latex("exp(log(x))", "\\exp(\\log(\\mathbf{x}))");
  check_latex("exp((A + B) x)", "\\exp\\bigl( (\\mathbf{A} + \\mathbf{B}) "
                                "\\mathbf{x} \\bigr)");
  check_latex("z .* (exp((A + B) x) - y)",
              "\\mathbf{z} \\odot \\Bigl( \\exp\\bigl( (\\mathbf{A} + "
              "\\mathbf{B}) \\mathbf{x} \\bigr) - \\mathbf{y} \\Bigr)");
  check_latex("y .* (1 - tanh(x))",
              "\\mathbf{y} \\odot (1 - \\tanh(\\mathbf{x}))");
  /* bars and angles stay plain */
  check_latex("||(A + B) x||", "\\lVert (\\mathbf{A} + \\mathbf{B}) "
                               "\\mathbf{x} \\rVert");
  /* \left \right around a fraction only */
  check_latex("(A / alpha + B) x", "\\left( \\frac{\\mathbf{A}}{\\alpha} + "
                                   "\\mathbf{B} \\right) \\mathbf{x}");
  check_latex("y .* ((A / alpha + B) x)",
              "\\mathbf{y} \\odot \\left( \\left( "
              "\\frac{\\mathbf{A}}{\\alpha} + \\mathbf{B} \\right) "
              "\\mathbf{x} \\right)");
}
END_TEST

START_TEST(latex_placeholders) {
  expr *G = sym("G"), *A = sym("A"), *X = sym("X"), *g = sym("g");
  expr *lhs =
      expr_diff(tu_ctx, expr_inner(tu_ctx, G, expr_mul(tu_ctx, A, X)), X);
  const expr *ph[] = {G, A, X, g};
  md_latex_style style = {ph, 4};
  strbuf b;
  sb_init(&b);
  md_print_latex_opts(&b, tu_ctx, NULL, lhs, &style);
  const char *got = keep(sb_take(&b));
  ck_assert_str_eq(got, "\\frac{\\partial \\langle \\boldsymbol{\\mathsf{G}}, "
                        "\\boldsymbol{\\mathsf{A}} \\boldsymbol{\\mathsf{X}} "
                        "\\rangle}{\\partial \\boldsymbol{\\mathsf{X}}}");
  /* other symbols keep their style */
  sb_init(&b);
  md_print_latex_opts(
      &b, tu_ctx, NULL,
      expr_mul(tu_ctx, expr_mul(tu_ctx, sym("alpha"), A), sym("B")), &style);
  got = keep(sb_take(&b));
  ck_assert_str_eq(got, "\\alpha \\boldsymbol{\\mathsf{A}} \\mathbf{B}");
}
END_TEST

static double width(const char *tex) {
  return md_latex_width(tex, strlen(tex));
}

START_TEST(latex_width_model) {
  /* widths of Computer Modern at 10 pt, in em, as pdflatex sets them */
  ck_assert_double_eq_tol(width("\\mathbf{a} + \\mathbf{b}"), 2.42, 0.05);
  ck_assert_double_eq_tol(width("\\mathbf{A} \\odot \\mathbf{B}"), 2.91, 0.05);
  ck_assert_double_eq_tol(width("\\mathbf{W}_{2}^\\top"), 1.88, 0.05);
  ck_assert_double_eq_tol(width("\\operatorname{sigmoid}(\\mathbf{x})"), 4.72,
                          0.05);
  ck_assert_double_eq_tol(width("\\lVert \\mathbf{x} \\rVert"), 1.61, 0.05);
  /* a fraction is as wide as the wider of its parts */
  ck_assert_double_eq_tol(width("\\frac{\\mathbf{a} + \\mathbf{b}}{2}"),
                          width("\\mathbf{a} + \\mathbf{b}") + 0.24, 0.01);
  /* a unary minus has no spaces */
  ck_assert(width("-\\mathbf{a}") <
            width("\\mathbf{b} - \\mathbf{a}") - width("\\mathbf{b}") - 0.3);
  /* a sub- and a superscript are stacked */
  ck_assert_double_eq_tol(width("\\mathbf{W}_{1}^{2}"),
                          width("\\mathbf{W}^{2}"), 0.01);
  ck_assert_double_eq_tol(width(""), 0, 1e-9);
}
END_TEST

/* The LaTeX of E as a result (md_print_latex_result), lines WIDTH em. */
static const char *result(const expr *lhs, const expr *e, double width) {
  strbuf b;
  sb_init(&b);
  md_print_latex_result(&b, tu_ctx, NULL, lhs, e, NULL, NULL, 0, width);
  return keep(sb_take(&b));
}

/* Checks that every line of the aligned environment T is at most WIDTH
 * em wide by the model, past its indent. */
static void check_lines(const char *t, double width) {
  const char *p = strstr(t, "\\begin{aligned} ");
  ck_assert_msg(p == t, "not broken: %s", t);
  p += strlen("\\begin{aligned} ");
  const char *end = strstr(p, " \\end{aligned}");
  ck_assert_ptr_nonnull(end);
  for (unsigned k = 0;; k++) {
    const char *q = strstr(p, " \\\\ ");
    if (!q || q > end)
      q = end;
    double w = md_latex_width(p, (size_t)(q - p));
    ck_assert_msg(w <= width + 1e-9, "line %u is %.2f em: %.*s", k, w,
                  (int)(q - p), p);
    if (q == end)
      break;
    p = q + 4;
  }
}

START_TEST(latex_long_results) {
  /* a sum of twelve terms a_i^T x b_i: broken at its + only */
  expr *t[12];
  char name[8];
  for (int i = 0; i < 12; i++) {
    snprintf(name, sizeof name, "a%d", i + 1);
    expr *a = sym(name);
    snprintf(name, sizeof name, "b%d", i + 1);
    t[i] = expr_mul(tu_ctx, expr_mul(tu_ctx, expr_trans(tu_ctx, a), sym("x")),
                    sym(name));
  }
  expr *sum = expr_add_n(tu_ctx, t, 12);
  const char *one = keep(md_print_latex_alloc(tu_ctx, NULL, sum));
  /* short enough: as md_print_latex writes it */
  ck_assert_str_eq(result(NULL, sum, 1000), one);
  const char *r = result(NULL, sum, 0);
  check_lines(r, MD_LATEX_WIDTH);
  ck_assert_ptr_nonnull(strstr(r, " \\\\ &\\quad {}+ "));
  ck_assert_ptr_null(strstr(r, "\\cdot"));
  /* narrower lines, more of them */
  const char *n = result(NULL, sum, 15);
  check_lines(n, 15);
  /* inside brackets when it must: the bracket is then \bigl( \bigr) */
  expr *p = expr_mul(tu_ctx, sym("C"), sum);
  const char *q = result(NULL, p, 0);
  check_lines(q, MD_LATEX_WIDTH);
  ck_assert_ptr_nonnull(strstr(q, "\\mathbf{C} \\bigl( "));
  ck_assert_ptr_nonnull(strstr(q, " \\bigr)"));
  ck_assert_ptr_null(strstr(q, "\\left("));
  /* with a short left side: LHS &= ... */
  const char *e = result(sym("y"), sum, 0);
  ck_assert_ptr_nonnull(strstr(e, "\\begin{aligned} \\mathbf{y} &= "));
}
END_TEST

/* ---- Unicode text ---- */

static const char *unicode(const expr *e) {
  strbuf b;
  sb_init(&b);
  md_print_text_opts(&b, tu_ctx, e, true);
  return keep(sb_take(&b));
}

/* TEXT's expression prints in Unicode as WANT, and WANT parses back to
 * that very node. */
static void check_unicode(const char *text, const char *want) {
  expr *e = tu_parse(text);
  const char *got = unicode(e);
  ck_assert_msg(strcmp(got, want) == 0,
                "'%s' in Unicode: \"%s\", expected \"%s\"", text, got, want);
  char *in = strdup(got);
  expr *back = tu_parse(in);
  ck_assert_msg(back == e, "'%s' printed as \"%s\", which parses to \"%s\"",
                text, got, tu_print(back));
  free(in);
}

START_TEST(unicode_forms) {
  check_unicode("A^T", "Aᵀ");
  check_unicode("A^-1", "A⁻¹");
  check_unicode("A^-T", "A⁻ᵀ");
  check_unicode("(A^-1)^T", "A⁻¹ᵀ");
  check_unicode("(A^T)^-1^T", "A⁻ᵀᵀ");
  check_unicode("A^-2 + A^2", "A^-2 + A^2");
  check_unicode("x^T A x", "xᵀ A x");
  check_unicode("x .* y", "x ⊙ y");
  check_unicode("A ./ B .^ 2", "A ./ B .^ 2");
  check_unicode("lambda x", "λ x");
  check_unicode("Sigma^-1", "Σ⁻¹");
  check_unicode("lambda1 + sigma_2 + omega_max", "λ1 + σ_2 + ω_max");
  check_unicode("Omega + Alpha + Upsilon", "Ω + Α + Υ");
  check_unicode("alphabet + pin + elta", "alphabet + pin + elta");
  check_unicode("s^alpha", "s^α");
  check_unicode("||x|| + ||X||_F", "‖x‖ + ‖X‖");
  check_unicode("||x||_1^2", "‖x‖₁^2");
  check_unicode("||A x - y||^2", "‖A x - y‖^2");
  check_unicode("||norm2(x) y||", "‖norm2(x) y‖");
  check_unicode("d/dlambda lambda x", "d/dλ λ x");
  check_unicode("d/dvec(Sigma) vec(Sigma)", "d/dvec(Σ) vec(Σ)");
  check_unicode("diff(f, delta)", "d/dδ f");
  check_unicode("diff(f, elta)", "diff(f, elta)");
  check_unicode("<a, b>", "<a, b>");
  check_unicode("tr(A X^T B)", "tr(A Xᵀ B)");
}
END_TEST

/* ⊗ binds tighter than products and looser than postfix operators
 * (SPEC 2, fine point 2). */
START_TEST(unicode_kron) {
  check_unicode("kron(A, B)", "A ⊗ B");
  check_unicode("kron(kron(A, B), C)", "A ⊗ B ⊗ C");
  check_unicode("kron(A, kron(B, C))", "A ⊗ B ⊗ C");
  check_unicode("A kron(B, C) D", "A B ⊗ C D");
  check_unicode("kron(A B, C D)", "(A B) ⊗ (C D)");
  check_unicode("kron(A^T, B^-1)", "Aᵀ ⊗ B⁻¹");
  check_unicode("kron(A, B)^T", "(A ⊗ B)ᵀ");
  check_unicode("kron(A + B, -C)", "(A + B) ⊗ (-C)");
  check_unicode("kron(1/2 A, B)", "(1/2 A) ⊗ B");
  check_unicode("kron(2, B)", "2 ⊗ B");
  check_unicode("kron(A, B) .* C", "A ⊗ B ⊙ C");
  check_unicode("kron(A .* B, C)", "(A ⊙ B) ⊗ C");
  check_unicode("C .* kron(A, B)", "C ⊙ A ⊗ B");
  check_unicode("vec(A X B) - kron(B^T, A) vec(X)",
                "vec(A X B) - Bᵀ ⊗ A vec(X)");
}
END_TEST

/* ---- random expressions (the generator of test_print.c) ---- */

/* Every default kind, Greek names of both cases and the lexer's corners
 * (d/delta, ^T, 1e3), and names that become subscripts or words. */
static const char *const names[] = {
    "A",     "B",    "X",      "W_1",   "Sigma",   "Omega",   "x",
    "y",     "a",    "b1",     "alpha", "lambda1", "sigma_2", "d",
    "delta", "elta", "dX",     "T",     "Tau",     "e",       "e1",
    "F",     "vec1", "x_init", "rate",  "Alpha",   "W1_a_b",  "omicron"};
#define NNAMES (sizeof names / sizeof names[0])

/* The generator of testutil.h over these names. */
static tu_gen G = {
    .names = names, .nnames = NNAMES, .big_numbers = false, .kron_twice = true};

enum { ROUNDS = 3000, MAX_DEPTH = 6 };

static uint64_t seed_from_env(void) {
  const char *env = getenv("MATDIFF_TEST_SEED");
  if (env && *env)
    return strtoull(env, NULL, 0);
  return 0x6C61746578212121u; /* "latex!!!" */
}

START_TEST(unicode_round_trip) {
  uint64_t seed = seed_from_env();
  G.rng = seed;
  for (unsigned i = 0; i < ROUNDS; i++) {
    expr *e = tu_gen_expr(&G, 1 + (int)(i % MAX_DEPTH));
    ck_assert_ptr_nonnull(e);
    const char *u = unicode(e);
    /* no ASCII spelling where a Unicode one exists */
    ck_assert_msg(
        !strstr(u, "^T") && !strstr(u, ".*") && !strstr(u, "kron(") &&
            !strstr(u, "lambda") && !strstr(u, "Sigma") && !strstr(u, "||"),
        "seed %#" PRIx64 ", round %u: ASCII spelling in '%s'", seed, i, u);
    char *in = strdup(u);
    md_source src = {"<round-trip>", in, strlen(in), 1};
    md_parsed p;
    md_errors err;
    md_errors_init(&err);
    bool ok = md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err);
    if (!ok) {
      fprintf(stderr, "seed %#" PRIx64 ", round %u: '%s' does not parse: %s\n",
              seed, i, u, err.v[0].msg);
      md_errors_clear(&err);
      free(in);
      ck_abort_msg("Unicode text does not parse (seed %#" PRIx64 ", round %u)",
                   seed, i);
    }
    md_errors_clear(&err);
    expr *back = p.n == 1 ? p.stmts[0].lhs : NULL;
    md_parsed_clear(&p);
    if (back != e)
      fprintf(stderr, "seed %#" PRIx64 ", round %u: '%s' parses to '%s'\n",
              seed, i, u, back ? tu_print(back) : "(nothing)");
    free(in);
    ck_assert_msg(back == e,
                  "parse(unicode(e)) is not e (seed %#" PRIx64 ", round %u)",
                  seed, i);
    /* and the plain text is md_print_text's, byte for byte */
    strbuf b;
    sb_init(&b);
    md_print_text_opts(&b, tu_ctx, e, false);
    char *plain = sb_take(&b);
    char *ref = md_print_text_alloc(tu_ctx, e);
    bool same = strcmp(plain, ref) == 0;
    free(plain);
    free(ref);
    ck_assert_msg(same, "plain text differs (seed %#" PRIx64 ", round %u)",
                  seed, i);
  }
}
END_TEST

/* ---- a structural check of LaTeX ---- */

/* The macros the printer may write: LaTeX + amsmath and MathJax (base,
 * ams, boldsymbol) know them all. */
static const char *const macros[] = {
    "mathbf", "mathit",  "mathrm", "boldsymbol",   "frac",   "partial", "left",
    "right",  "top",     "circ",   "odot",         "oslash", "otimes",  "lVert",
    "rVert",  "langle",  "rangle", "operatorname", "det",    "log",     "exp",
    "sin",    "cos",     "tan",    "tanh",         "sqrt",   "cdot",    "alpha",
    "beta",   "gamma",   "delta",  "epsilon",      "zeta",   "eta",     "theta",
    "iota",   "kappa",   "lambda", "mu",           "nu",     "xi",      "pi",
    "rho",    "sigma",   "tau",    "upsilon",      "phi",    "chi",     "psi",
    "omega",  "Gamma",   "Delta",  "Theta",        "Lambda", "Xi",      "Pi",
    "Sigma",  "Upsilon", "Phi",    "Psi",          "Omega",  "bigl",    "bigr",
    "Bigl",   "Bigr",    "biggl",  "biggr",        "mathsf"};

/* Whether the N bytes at W name \bigl, \bigr, \Bigl ... \biggr. */
static bool is_big(const char *w, size_t n) {
  return (n == 4 || n == 5) && (w[0] == 'b' || w[0] == 'B') &&
         memcmp(w + 1, "ig", 2) == 0 && (n == 4 || w[3] == 'g') &&
         (w[n - 1] == 'l' || w[n - 1] == 'r');
}

/* Reads the delimiter after \left or \right: "(" or "\lVert". */
static const char *skip_delimiter(const char *s) {
  if (*s != '\\')
    return *s ? s + 1 : s;
  s++;
  while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
    s++;
  return s;
}

/* NULL if S is well formed, else what is wrong: braces and \left \right
 * balanced and nested, no atom with two superscripts or two subscripts,
 * only known macros. */
static const char *latex_problem(const char *s) {
  enum { MAXD = 4096 };
  static char stack[MAXD];  /* '{' or 'l' (\left) */
  static uint8_t scr[MAXD]; /* scripts of the last atom at each depth */
  size_t d = 0;
  bool arg = false; /* the next token is the argument of ^ or _ */
  scr[0] = 0;
  while (*s) {
    char c = *s++;
    if (c == ' ')
      continue;
    if (c == '^' || c == '_') {
      uint8_t bit = c == '^' ? 1 : 2;
      if (arg)
        return "script without an argument";
      if (scr[d] & bit)
        return c == '^' ? "double superscript" : "double subscript";
      scr[d] |= bit;
      arg = true;
      continue;
    }
    if (c == '{') {
      if (d + 1 >= MAXD)
        return "too deep";
      stack[++d] = '{';
      scr[d] = 0;
      arg = false; /* the group is the argument, the atom keeps its scripts */
      continue;
    }
    if (c == '}') {
      if (d == 0 || stack[d] != '{')
        return "unbalanced }";
      d--;
      continue;
    }
    if (c != '\\') {
      if (!arg)
        scr[d] = 0; /* a new atom */
      arg = false;
      continue;
    }
    const char *w = s;
    while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
      s++;
    size_t n = (size_t)(s - w);
    if (n == 0) {
      if (*s != ',' && *s != '_')
        return "unknown control symbol";
      s++;
      scr[d] = 0;
      arg = false;
      continue;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof macros / sizeof *macros && !known; i++)
      known = strlen(macros[i]) == n && memcmp(macros[i], w, n) == 0;
    if (!known)
      return "unknown macro";
    if (n == 4 && memcmp(w, "left", 4) == 0) {
      if (arg)
        return "\\left as a script";
      if (d + 1 >= MAXD)
        return "too deep";
      s = skip_delimiter(s);
      stack[++d] = 'l';
      scr[d] = 0;
    } else if (is_big(w, n)) {
      /* a delimiter of a fixed size: need not pair, in one line or not */
      if (arg)
        return "\\bigl as a script";
      s = skip_delimiter(s);
      scr[d] = 0;
    } else if (n == 5 && memcmp(w, "right", 5) == 0) {
      if (d == 0 || stack[d] != 'l')
        return "\\right without \\left";
      s = skip_delimiter(s);
      d--;
      scr[d] = 0; /* \left ... \right is the new atom */
    } else {
      if (!arg)
        scr[d] = 0;
      arg = false;
    }
  }
  if (arg)
    return "script without an argument";
  return d == 0 ? NULL : "unclosed group";
}

START_TEST(latex_structure_checker_finds_faults) {
  /* the checker must be able to fail */
  ck_assert_ptr_null(latex_problem("\\mathbf{A}^\\top \\mathbf{x}"));
  ck_assert_ptr_null(latex_problem("\\mathbf{W}_{1}^{2}"));
  ck_assert_ptr_null(latex_problem("(\\mathbf{A}^{-1})^\\top"));
  ck_assert_ptr_nonnull(latex_problem("\\mathbf{A}^{-1}^\\top"));
  ck_assert_ptr_nonnull(latex_problem("\\mathbf{A}^\\top^\\top"));
  ck_assert_ptr_nonnull(latex_problem("x_{1}_{2}"));
  ck_assert_ptr_nonnull(latex_problem("\\left( x"));
  ck_assert_ptr_nonnull(latex_problem("{x"));
  ck_assert_ptr_nonnull(latex_problem("x}"));
  ck_assert_ptr_nonnull(latex_problem("\\transpose x"));
}
END_TEST

START_TEST(latex_random_well_formed) {
  uint64_t seed = seed_from_env();
  G.rng = seed ^ 0x5555;
  for (unsigned i = 0; i < ROUNDS; i++) {
    expr *e = tu_gen_expr(&G, 1 + (int)(i % MAX_DEPTH));
    size_t nodes = md_ctx_nnodes(tu_ctx);
    const char *t = keep(md_print_latex_alloc(tu_ctx, NULL, e));
    ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), nodes); /* DAG unchanged */
    const char *why = latex_problem(t);
    ck_assert_msg(!why, "seed %#" PRIx64 ", round %u: %s in %s", seed, i, why,
                  t);
    ck_assert_msg(!strstr(t, "--") && !strstr(t, "+ -"),
                  "seed %#" PRIx64 ", round %u: two signs in %s", seed, i, t);
  }
}
END_TEST

static Suite *latex_suite(void) {
  Suite *s = suite_create("latex");
  TCase *tc = tcase_create("latex");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, TU_TIMEOUT);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, latex_symbols_by_kind);
  tcase_add_test(tc, latex_subscripts);
  tcase_add_test(tc, latex_numbers);
  tcase_add_test(tc, latex_postfix);
  tcase_add_test(tc, latex_products);
  tcase_add_test(tc, latex_sums_and_signs);
  tcase_add_test(tc, latex_functions);
  tcase_add_test(tc, latex_user_functions);
  tcase_add_test(tc, latex_derivatives);
  tcase_add_test(tc, latex_tuple);
  tcase_add_test(tc, latex_bracket_sizes);
  tcase_add_test(tc, latex_placeholders);
  tcase_add_test(tc, latex_width_model);
  tcase_add_test(tc, latex_long_results);
  tcase_add_test(tc, latex_structure_checker_finds_faults);
  tcase_add_test(tc, latex_random_well_formed);
  tc = tcase_create("unicode");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, TU_TIMEOUT);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, unicode_forms);
  tcase_add_test(tc, unicode_kron);
  tcase_add_test(tc, unicode_round_trip);
  return s;
}

/* test_latex --dump N: N random formulas, one a line, for
 * tests/latex/check.py to compile and render. */
static int dump(unsigned n) {
  tu_setup();
  G.rng = seed_from_env() ^ 0xAAAA;
  for (unsigned i = 0; i < n; i++) {
    expr *e = tu_gen_expr(&G, 1 + (int)(i % MAX_DEPTH));
    char *t = md_print_latex_alloc(tu_ctx, NULL, e);
    puts(t);
    free(t);
  }
  tu_teardown();
  return 0;
}

/* test_latex --width: the width model's estimate, in pt at 10 pt, of
 * each line of stdin, one a line, for tests/latex/check.py to compare
 * with what pdflatex sets. */
static int widths(void) {
  char line[65536];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strcspn(line, "\n");
    printf("%.2f\n", 10 * md_latex_width(line, n));
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--width") == 0)
    return widths();
  if (argc == 3 && strcmp(argv[1], "--dump") == 0)
    return dump((unsigned)strtoul(argv[2], NULL, 10));
  return tu_run(latex_suite());
}
