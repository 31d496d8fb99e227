/* testutil.c - helpers shared by the Check suites; see testutil.h. */
#include "testutil.h"

#include "print_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

md_ctx *tu_ctx;
static char *print_bufs[2]; /* tu_print's results */
static int print_next;

void tu_setup(void) {
  tu_ctx = md_ctx_new();
}

void tu_teardown(void) {
  md_ctx_free(tu_ctx);
  tu_ctx = NULL;
  for (int i = 0; i < 2; i++) {
    free(print_bufs[i]);
    print_bufs[i] = NULL;
  }
}

TCase *tu_tcase(Suite *s, const char *name) {
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, tu_setup, tu_teardown);
  tcase_set_timeout(tc, TU_TIMEOUT);
  suite_add_tcase(s, tc);
  return tc;
}

int tu_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

expr *tu_parse(const char *text) {
  md_source src = {"<test>", text, strlen(text), 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  if (!md_parse(tu_ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
    char msg[1024];
    unsigned line, col;
    md_source_linecol(&src, err.v[0].loc.begin, &line, &col);
    snprintf(msg, sizeof msg, "%s", err.v[0].msg);
    md_errors_clear(&err);
    ck_abort_msg("'%s' does not parse: %u:%u: %s", text, line, col, msg);
  }
  md_errors_clear(&err);
  size_t n = p.n;
  md_stmt_kind kind = n ? p.stmts[0].kind : ST_EMPTY;
  expr *e = n ? p.stmts[0].lhs : NULL;
  md_parsed_clear(&p);
  ck_assert_msg(n == 1 && kind == ST_EXPR,
                "'%s' is not one expression (%zu statements, first kind %d)",
                text, n, (int)kind);
  ck_assert_ptr_nonnull(e);
  return e;
}

tu_error tu_parse_fail(const char *text, size_t len, md_parse_mode mode) {
  md_source src = {"<test>", text, len, 1};
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  tu_error r = {0};
  r.parsed = md_parse(tu_ctx, &src, mode, &p, &err);
  r.nerr = err.n;
  if (r.parsed) {
    md_parsed_clear(&p);
  } else {
    /* On failure the result must be empty: nothing to free, nothing
     * half-built. */
    ck_assert_ptr_null(p.stmts);
    ck_assert_ptr_null(p.locs);
    ck_assert_uint_eq(p.n, 0);
  }
  if (err.n > 0) {
    snprintf(r.msg, sizeof r.msg, "%s", err.v[0].msg);
    ck_assert_msg(err.v[0].src == &src, "error without its source");
    r.begin = err.v[0].loc.begin;
    r.end = err.v[0].loc.end;
    if (md_loc_valid(err.v[0].loc))
      md_source_linecol(&src, r.begin, &r.line, &r.col);
  }
  md_errors_clear(&err);
  return r;
}

void tu_check_parse_error(const char *text, size_t len, const char *msg,
                          unsigned col) {
  tu_error r = tu_parse_fail(text, len, MD_PARSE_PROGRAM);
  ck_assert_msg(!r.parsed, "'%.*s' parsed, expected \"%s\"", (int)len, text,
                msg);
  ck_assert_msg(r.nerr == 1, "'%.*s': %zu errors, the first \"%s\"", (int)len,
                text, r.nerr, r.msg);
  ck_assert_msg(strcmp(r.msg, msg) == 0,
                "'%.*s': message\n  \"%s\"\nexpected\n  \"%s\"", (int)len, text,
                r.msg, msg);
  ck_assert_msg(r.line == 1 && r.col == col,
                "'%.*s': error at %u:%u, expected 1:%u (\"%s\")", (int)len,
                text, r.line, r.col, col, msg);
}

const char *tu_print(const expr *e) {
  free(print_bufs[print_next]);
  print_bufs[print_next] = md_print_text_alloc(tu_ctx, e);
  const char *s = print_bufs[print_next];
  print_next ^= 1;
  return s;
}
