/*
 * test_lexer.c - the tokens of SPEC 2, seen through md_parse: exact
 * numbers, Greek names, Unicode operators, d/dX, comments, and every
 * lexical error with its message and column.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static expr *sym(const char *name) {
  return expr_sym(tu_ctx, name);
}

/* TEXT parses to the node WANT (pointer equality: the DAG is interned). */
static void check_parses_to(const char *text, expr *want) {
  expr *got = tu_parse(text);
  ck_assert_msg(got == want, "'%s' parsed as %s, expected %s", text,
                tu_print(got), tu_print(want));
}

/* ---- numbers ---- */

START_TEST(integers) {
  check_parses_to("2", tu_rat(2, 1));
  check_parses_to("0", tu_rat(0, 1));
  check_parses_to("007", tu_rat(7, 1));
  check_parses_to("  42  ", tu_rat(42, 1));
}
END_TEST

START_TEST(decimals_are_exact) {
  check_parses_to("0.5", tu_rat(1, 2));
  check_parses_to(".5", tu_rat(1, 2));
  check_parses_to("0.25", tu_rat(1, 4));
  check_parses_to("1.50", tu_rat(3, 2));
  check_parses_to("0.1", tu_rat(1, 10));
  check_parses_to("3.000", tu_rat(3, 1));
  /* not the double nearest 0.1 */
  ck_assert_ptr_ne(tu_parse("0.1"), tu_parse("0.1000000000000000055511"));
}
END_TEST

START_TEST(exponents_are_exact) {
  check_parses_to("1e-3", tu_rat(1, 1000));
  check_parses_to("2.5e1", tu_rat(25, 1));
  check_parses_to("1e3", tu_rat(1000, 1));
  check_parses_to("1E+3", tu_rat(1000, 1));
  check_parses_to("2E3", tu_rat(2000, 1));
  check_parses_to("1.5e+2", tu_rat(150, 1));
  check_parses_to("25e-2", tu_rat(1, 4));
  check_parses_to("0.000e5", tu_rat(0, 1));
}
END_TEST

START_TEST(big_numbers_are_exact) {
  /* 1e1000 is allowed (the limit) and is exactly 10^1000 */
  expr *e = tu_parse("1e1000");
  ck_assert_int_eq(e->op, E_NUM);
  mpz_t p;
  mpz_init(p);
  mpz_ui_pow_ui(p, 10, 1000);
  ck_assert(mpz_cmp(mpq_numref(e->u.num), p) == 0);
  ck_assert(mpz_cmp_ui(mpq_denref(e->u.num), 1) == 0);
  e = tu_parse("1e-1000");
  ck_assert(mpz_cmp_ui(mpq_numref(e->u.num), 1) == 0);
  ck_assert(mpz_cmp(mpq_denref(e->u.num), p) == 0);
  /* 20000 digits is the most a number may have: 99...9 is 10^20000 - 1 */
  static char digits[20001];
  memset(digits, '9', 20000);
  digits[20000] = '\0';
  e = tu_parse(digits);
  ck_assert_int_eq(e->op, E_NUM);
  mpz_ui_pow_ui(p, 10, 20000);
  mpz_sub_ui(p, p, 1);
  ck_assert(mpz_cmp(mpq_numref(e->u.num), p) == 0);
  mpz_clear(p);
}
END_TEST

START_TEST(minus_is_not_part_of_a_number) {
  /* -2 is negation of 2, folded to the number -2 by the constructors */
  check_parses_to("-2", tu_rat(-2, 1));
  check_parses_to("-0.5", tu_rat(-1, 2));
  /* 2-1 is a sum, not the number 1 */
  expr *e = tu_parse("2-1");
  ck_assert_int_eq(e->op, E_ADD);
  ck_assert_ptr_eq(e->kid[0], tu_rat(2, 1));
  ck_assert_ptr_eq(e->kid[1], tu_rat(-1, 1));
}
END_TEST

/* ---- names ---- */

START_TEST(identifiers) {
  check_parses_to("x", sym("x"));
  check_parses_to("W1", sym("W1"));
  check_parses_to("x_1", sym("x_1"));
  check_parses_to("sigma_2", sym("sigma_2"));
  check_parses_to("I", expr_ident(tu_ctx));
  check_parses_to("ones", expr_ones(tu_ctx));
  /* J is not built in */
  check_parses_to("J", sym("J"));
  /* 100 characters is the longest identifier */
  char name[101];
  memset(name, 'a', 100);
  name[100] = '\0';
  check_parses_to(name, sym(name));
}
END_TEST

START_TEST(greek_letters) {
  check_parses_to("λ", sym("lambda"));
  check_parses_to("λ1", sym("lambda1"));
  check_parses_to("λ_max", sym("lambda_max"));
  check_parses_to("Σ", sym("Sigma"));
  check_parses_to("α", sym("alpha"));
  check_parses_to("ω", sym("omega"));
  check_parses_to("Ω", sym("Omega"));
  check_parses_to("Λ", sym("Lambda"));
  check_parses_to("σ", sym("sigma"));
  check_parses_to("ς", sym("sigma")); /* final sigma */
  check_parses_to("η", sym("eta"));
  /* the same symbol spelled both ways */
  ck_assert_ptr_eq(tu_parse("λ + Σ"), tu_parse("lambda + Sigma"));
  /* two letters are two symbols: λλ is lambda lambda */
  ck_assert_ptr_eq(tu_parse("λλ"), tu_parse("lambda lambda"));
}
END_TEST

START_TEST(keywords_and_functions) {
  expr *e = tu_parse("tr(A)");
  ck_assert_int_eq(e->op, E_CALL);
  ck_assert_uint_eq(e->u.fn, FN_TR);
  e = tu_parse("softplus(x)");
  ck_assert_int_eq(e->op, E_CALL);
  ck_assert_uint_eq(e->u.fn, FN_SOFTPLUS);
  /* a name that starts like a function is an identifier */
  check_parses_to("trace", sym("trace"));
  check_parses_to("expo", sym("expo"));
  check_parses_to("letter", sym("letter"));
  check_parses_to("wherever", sym("wherever"));
}
END_TEST

/* ---- operators ---- */

START_TEST(transpose_spellings) {
  expr *at = expr_trans(tu_ctx, sym("A"));
  check_parses_to("A^T", at);
  check_parses_to("A'", at);
  check_parses_to("Aᵀ", at);
  check_parses_to("A^{T}", at);
  check_parses_to("A^{\\top}", at);
  check_parses_to("A''", expr_trans(tu_ctx, at));
  /* NumPy's .T (SPEC 4), which leaves .* ./ .^ and decimals alone */
  check_parses_to("A.T", at);
  check_parses_to("A.T.T", expr_trans(tu_ctx, at));
  check_parses_to("(A B).T",
                  expr_trans(tu_ctx, expr_mul(tu_ctx, sym("A"), sym("B"))));
  check_parses_to("A.T B", expr_mul(tu_ctx, at, sym("B")));
  check_parses_to("A.T.*B", expr_had(tu_ctx, at, sym("B")));
  check_parses_to("2.5", tu_rat(5, 2));
}
END_TEST

START_TEST(inverse_spellings) {
  expr *ai = expr_inv(tu_ctx, sym("A"));
  check_parses_to("A^-1", ai);
  check_parses_to("A^{-1}", ai);
  check_parses_to("A⁻¹", ai);
  check_parses_to("inv(A)", ai);
  expr *ait = expr_inv(tu_ctx, expr_trans(tu_ctx, sym("A")));
  check_parses_to("A^-T", ait);
  check_parses_to("A^{-T}", ait);
  check_parses_to("A^{-\\top}", ait);
  check_parses_to("Aᵀ⁻¹", ait);
  /* ^-10 is one token, not ^-1 then 0 */
  check_parses_to("A^-10", expr_pow(tu_ctx, ai, tu_rat(10, 1)));
  /* NumPy's ** is ^ */
  check_parses_to("A**-1", ai);
  check_parses_to("A.T**-1", ait);
  check_parses_to("A**-10", expr_pow(tu_ctx, ai, tu_rat(10, 1)));
  check_parses_to("A**2", expr_pow(tu_ctx, sym("A"), tu_rat(2, 1)));
  check_parses_to("A ** 2", expr_pow(tu_ctx, sym("A"), tu_rat(2, 1)));
  check_parses_to("s**(1/2)", expr_pow(tu_ctx, sym("s"), tu_rat(1, 2)));
  /* binding tightest, as ^: -A**2 is -(A^2), 2 A**2 is 2 (A^2) */
  check_parses_to("-A**2", tu_parse("-(A^2)"));
  check_parses_to("2 A**2 B", tu_parse("2 (A^2) B"));
}
END_TEST

START_TEST(product_spellings) {
  expr *ab = expr_mul(tu_ctx, sym("A"), sym("B"));
  check_parses_to("A B", ab);
  check_parses_to("A*B", ab);
  check_parses_to("A · B", ab);
  check_parses_to("A·B", ab);
  expr *had = expr_had(tu_ctx, sym("A"), sym("B"));
  check_parses_to("A .* B", had);
  check_parses_to("A ⊙ B", had);
  check_parses_to("A⊙B", had);
  check_parses_to("A ./ B", expr_hdiv(tu_ctx, sym("A"), sym("B")));
  expr *kr = expr_kron(tu_ctx, sym("A"), sym("B"));
  check_parses_to("A ⊗ B", kr);
  check_parses_to("A⊗B", kr);
  check_parses_to("kron(A, B)", kr);
  check_parses_to("A .^ 2", expr_epow(tu_ctx, sym("A"), tu_rat(2, 1)));
  check_parses_to("A .^ -1", expr_epow(tu_ctx, sym("A"), tu_rat(-1, 1)));
  /* NumPy's @ is the product, at the product level */
  check_parses_to("A @ B", ab);
  check_parses_to("A@B", ab);
  check_parses_to("x.T @ A @ x", tu_parse("x^T A x"));
  check_parses_to("x.T@A@x", tu_parse("x^T A x"));
  check_parses_to("A @ B + C", tu_parse("A B + C"));
  check_parses_to("A @ B .* C", tu_parse("(A B) .* C"));
  check_parses_to("A.T@B.T", tu_parse("A^T B^T"));
}
END_TEST

START_TEST(derivative_tokens) {
  expr *f = sym("f");
  check_parses_to("d/dX f", expr_diff(tu_ctx, f, sym("X")));
  check_parses_to("d/dalpha f", expr_diff(tu_ctx, f, sym("alpha")));
  check_parses_to("d/dλ f", expr_diff(tu_ctx, f, sym("lambda")));
  check_parses_to("d/dx1 f", expr_diff(tu_ctx, f, sym("x1")));
  expr *vx = expr_call1(tu_ctx, FN_VEC, sym("X"));
  check_parses_to("d/dvec(X) f", expr_diff(tu_ctx, f, vx));
  check_parses_to("d/dX (f)", expr_diff(tu_ctx, f, sym("X")));
  /* d/d is recognised only when the name follows at once */
  check_parses_to("d / dX f",
                  expr_mul(tu_ctx, expr_div(tu_ctx, sym("d"), sym("dX")), f));
  /* d/delta is d over delta (SPEC 2, fine point 1) */
  check_parses_to("d/delta", expr_div(tu_ctx, sym("d"), sym("delta")));
  check_parses_to(
      "d/delta x",
      expr_mul(tu_ctx, expr_div(tu_ctx, sym("d"), sym("delta")), sym("x")));
  /* ... and diff(f, delta) differentiates by delta */
  check_parses_to("diff(f, delta)", expr_diff(tu_ctx, f, sym("delta")));
}
END_TEST

START_TEST(norm_tokens) {
  expr *n2 = expr_call1(tu_ctx, FN_NORM2, sym("x"));
  check_parses_to("||x||", n2);
  check_parses_to("||x||_2", n2);
  check_parses_to("||X||_F", expr_call1(tu_ctx, FN_NORM2, sym("X")));
  check_parses_to("||x||_1", expr_call1(tu_ctx, FN_NORM1, sym("x")));
  /* a "||" after an operand closes the open norm; otherwise it opens */
  check_parses_to("||x|| ||y||",
                  expr_mul(tu_ctx, n2, expr_call1(tu_ctx, FN_NORM2, sym("y"))));
  check_parses_to("||(||x||)||", expr_call1(tu_ctx, FN_NORM2, n2));
  /* inside brackets within a norm, "||" opens a new one */
  check_parses_to("||a (||x||)||",
                  expr_call1(tu_ctx, FN_NORM2, expr_mul(tu_ctx, sym("a"), n2)));
  check_parses_to(
      "||tr(||x|| I)||_1",
      expr_call1(
          tu_ctx, FN_NORM1,
          expr_call1(tu_ctx, FN_TR, expr_mul(tu_ctx, n2, expr_ident(tu_ctx)))));
}
END_TEST

START_TEST(comments_and_space) {
  check_parses_to("x # a comment", sym("x"));
  check_parses_to("x#comment", sym("x"));
  check_parses_to("\tx\r\n", sym("x"));
  /* a comment ends at the newline */
  check_parses_to("a # comment\n+ b", expr_add(tu_ctx, sym("a"), sym("b")));
  /* a source of only a comment is one empty statement */
  tu_error r = tu_parse_fail("# nothing", 9, MD_PARSE_PROGRAM);
  ck_assert(r.parsed);
  ck_assert_uint_eq(r.nerr, 0);
}
END_TEST

/* ---- lexical errors ---- */

START_TEST(nul_byte) {
  tu_check_parse_error("a\0b", 3, "NUL byte in input", 2);
  tu_check_parse_error("\0", 1, "NUL byte in input", 1);
  tu_check_parse_error("x + y\0", 6, "NUL byte in input", 6);
}
END_TEST

START_TEST(control_characters) {
  tu_check_parse_error("a \x01 b", 5, "control character 0x01 in input", 3);
  tu_check_parse_error("a\x1b[31m", 6, "control character 0x1B in input", 2);
  tu_check_parse_error("x \x7f", 3, "control character 0x7F in input", 3);
  tu_check_parse_error("\x0b", 1, "control character 0x0B in input", 1);
  tu_check_parse_error("\f", 1, "control character 0x0C in input", 1);
}
END_TEST

START_TEST(invalid_utf8) {
  tu_check_parse_error("a \xff b", 5, "invalid UTF-8 byte 0xFF in input", 3);
  /* a sequence cut short, at the end or by an ASCII byte */
  tu_check_parse_error("ab\xce", 3, "invalid UTF-8 byte 0xCE in input", 3);
  tu_check_parse_error("a\xc3(", 3, "invalid UTF-8 byte 0xC3 in input", 2);
  tu_check_parse_error("\xe2\x8a", 2, "invalid UTF-8 byte 0xE2 in input", 1);
  /* a lone continuation byte */
  tu_check_parse_error("x \x80", 3, "invalid UTF-8 byte 0x80 in input", 3);
  /* overlong forms and UTF-16 surrogates are not UTF-8 */
  tu_check_parse_error("\xc0\xaf", 2, "invalid UTF-8 byte 0xC0 in input", 1);
  tu_check_parse_error("\xe0\x80\xaf", 3, "invalid UTF-8 byte 0xE0 in input",
                       1);
  tu_check_parse_error("\xed\xa0\x80", 3, "invalid UTF-8 byte 0xED in input",
                       1);
  tu_check_parse_error("\xf4\x90\x80\x80", 4,
                       "invalid UTF-8 byte 0xF4 in input", 1);
  /* columns count characters: λ is one */
  tu_check_parse_error("λ + \xfe", 6, "invalid UTF-8 byte 0xFE in input", 5);
}
END_TEST

START_TEST(unexpected_characters) {
  tu_check_parse_error("a $ b", 5, "unexpected character '$'", 3);
  tu_check_parse_error("x^T?", 4, "unexpected character '?'", 4);
  tu_check_parse_error("A.Tx", 4,
                       "unexpected '.Tx'; the transpose .T is followed by a "
                       "space or an operator (x.T y)",
                       2);
  tu_check_parse_error("a ~ b", 5, "unexpected character '~'", 3);
  tu_check_parse_error("a\\b", 3, "unexpected character '\\'", 2);
  tu_check_parse_error("5.", 2, "unexpected character '.'", 2);
  tu_check_parse_error("a € b", strlen("a € b"),
                       "unexpected character '€' (U+20AC)", 3);
  /* the column is in characters, after two 2-byte letters */
  tu_check_parse_error("λλ €", strlen("λλ €"),
                       "unexpected character '€' (U+20AC)", 4);
  tu_check_parse_error("x ≤ y", strlen("x ≤ y"),
                       "unexpected character '≤' (U+2264)", 3);
  tu_check_parse_error("µ", strlen("µ"), "unexpected character 'µ' (U+00B5)",
                       1);
  tu_check_parse_error("x 😀", strlen("x 😀"),
                       "unexpected character '😀' (U+1F600)", 3);
}
END_TEST

START_TEST(single_bar) {
  tu_check_parse_error("a | b", 5,
                       "unexpected '|'; a norm is written ||x|| (two bars)", 3);
  tu_check_parse_error("|x|", 3,
                       "unexpected '|'; a norm is written ||x|| (two bars)", 1);
}
END_TEST

START_TEST(misplaced_subscripts) {
  tu_check_parse_error("a _1", 4,
                       "unexpected '_1'; a norm subscript follows a closing "
                       "|| (||x||_1)",
                       3);
  tu_check_parse_error("||x||_3", 7,
                       "unknown norm subscript '_3'; use _1, _2 or _F", 6);
  tu_check_parse_error("1.2.3", 5, "malformed number '1.2.3'", 1);
}
END_TEST

START_TEST(number_too_long) {
  static char text[20100];
  memset(text, '1', 20001);
  strcpy(text + 20001, " + x");
  tu_check_parse_error(text, strlen(text),
                       "number too long (more than 20000 digits)", 1);
  /* digits after the point count too */
  text[0] = 'x';
  text[1] = ' ';
  text[2] = '0';
  text[3] = '.';
  memset(text + 4, '5', 20000);
  text[20004] = '\0';
  tu_check_parse_error(text, strlen(text),
                       "number too long (more than 20000 digits)", 3);
}
END_TEST

START_TEST(exponent_out_of_range) {
  tu_check_parse_error("1e5000", 6,
                       "number out of range (exponent beyond 1000)", 1);
  tu_check_parse_error("x + 1e-1001", 11,
                       "number out of range (exponent beyond 1000)", 5);
  tu_check_parse_error("2 1e99999999999999999999999", 27,
                       "number out of range (exponent beyond 1000)", 3);
}
END_TEST

START_TEST(identifier_too_long) {
  char text[300];
  strcpy(text, "x + ");
  memset(text + 4, 'a', 101);
  text[105] = '\0';
  tu_check_parse_error(text, strlen(text),
                       "identifier too long (more than 100 characters)", 5);
  /* a Greek name counts as spelled out: λ and 95 letters is 101 */
  strcpy(text, "λ");
  memset(text + 2, 'b', 95);
  text[97] = '\0';
  tu_check_parse_error(text, strlen(text),
                       "identifier too long (more than 100 characters)", 1);
  /* the variable of d/dX is an identifier like any other */
  strcpy(text, "d/dλ");
  memset(text + 5, 'b', 95);
  strcpy(text + 100, " f");
  tu_check_parse_error(text, strlen(text),
                       "identifier too long (more than 100 characters)", 1);
  strcpy(text, "d/d");
  memset(text + 3, 'X', 101);
  strcpy(text + 104, " f");
  tu_check_parse_error(text, strlen(text),
                       "identifier too long (more than 100 characters)", 1);
}
END_TEST

static Suite *lexer_suite(void) {
  Suite *s = suite_create("lexer");
  TCase *tc = tu_tcase(s, "numbers");
  tcase_add_test(tc, integers);
  tcase_add_test(tc, decimals_are_exact);
  tcase_add_test(tc, exponents_are_exact);
  tcase_add_test(tc, big_numbers_are_exact);
  tcase_add_test(tc, minus_is_not_part_of_a_number);
  tc = tu_tcase(s, "names");
  tcase_add_test(tc, identifiers);
  tcase_add_test(tc, greek_letters);
  tcase_add_test(tc, keywords_and_functions);
  tc = tu_tcase(s, "operators");
  tcase_add_test(tc, transpose_spellings);
  tcase_add_test(tc, inverse_spellings);
  tcase_add_test(tc, product_spellings);
  tcase_add_test(tc, derivative_tokens);
  tcase_add_test(tc, norm_tokens);
  tcase_add_test(tc, comments_and_space);
  tc = tu_tcase(s, "errors");
  tcase_add_test(tc, nul_byte);
  tcase_add_test(tc, control_characters);
  tcase_add_test(tc, invalid_utf8);
  tcase_add_test(tc, unexpected_characters);
  tcase_add_test(tc, single_bar);
  tcase_add_test(tc, misplaced_subscripts);
  tcase_add_test(tc, number_too_long);
  tcase_add_test(tc, exponent_out_of_range);
  tcase_add_test(tc, identifier_too_long);
  return s;
}

int main(void) {
  return tu_run(lexer_suite());
}
