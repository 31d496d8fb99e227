/*
 * test_checker.c - matdiff check as a library call (md_cmd_check): the
 * verdict lines show the identity as messages show text, whatever bytes
 * the file holds, and TAP escapes what would start a directive.
 */
#include "testutil.h"

#include "checker.h"
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* md_put_printable of the LEN bytes at S. */
static char *printable(const char *s, size_t len) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  ck_assert_ptr_nonnull(f);
  md_put_printable(f, s, len);
  fclose(f);
  return buf;
}

START_TEST(printable_text) {
  static const struct {
    const char *in;
    size_t len;
    const char *out;
  } cases[] = {
      {"x = y", 5, "x = y"},
      {"a\tb", 3, "a\tb"},
      {"\x01\x1b[2J\x7f", 6, "??[2J?"},
      {"a\0b", 3, "a?b"},
      {"λ ⊗ ᵀ", 10, "λ ⊗ ᵀ"},
      {"\xff\xc0\x80", 3, "???"},
      {"\xed\xa0\x80", 3, "???"}, /* a surrogate */
      {"\xe2\x8a", 2, "??"},      /* cut short */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = printable(cases[i].in, cases[i].len);
    ck_assert_str_eq(got, cases[i].out);
    free(got);
  }
}
END_TEST

/* The output of matdiff check (--tap with TAP) on a file holding TEXT. */
static char *check_file(const char *text, bool tap) {
  char path[] = "/tmp/matdiff-check-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char *out = NULL, *msgs = NULL;
  size_t nout = 0, nmsgs = 0;
  FILE *o = open_memstream(&out, &nout), *e = open_memstream(&msgs, &nmsgs);
  md_options opts = {0};
  const char *files[] = {path};
  md_cmd_check(&opts, files, 1, tap, o, e);
  fclose(o);
  fclose(e);
  free(msgs);
  unlink(path);
  /* the file's name varies: keep what follows it */
  char *p;
  while ((p = strstr(out, path)))
    memmove(p, p + strlen(path), strlen(p + strlen(path)) + 1);
  return out;
}

/* Control bytes were copied into the verdict lines as they were, and
 * '#' began a TAP directive: "not ok 2 - ...: x = # SKIP" was a skip. */
START_TEST(verdict_lines_are_printable) {
  const char *file = "x = \001y\033[2J\nx = # SKIP\nx = x\n";
  char *tap = check_file(file, true);
  ck_assert_str_eq(tap, "TAP version 13\n"
                        "not ok 1 - :1: x = ?y?[2J: error\n"
                        "# :1:5: error: control character 0x01 in input\n"
                        "# x = ?y?[2J\n"
                        "#     ^\n"
                        "not ok 2 - :2: x = \\# SKIP: error\n"
                        "# :2:4: error: syntax error, unexpected end of "
                        "input\n"
                        "# x = # SKIP\n"
                        "#    ^\n"
                        "ok 3 - :3: x = x: proved\n"
                        "1..3\n");
  free(tap);
  char *text = check_file("x = x\001\n", false);
  ck_assert_str_eq(text, ":1:6: error: control character 0x01 in input\n"
                         "  x = x?\n"
                         "       ^\n"
                         "1 identity: 0 passed, 1 failed\n");
  free(text);
}
END_TEST

static Suite *check_suite(void) {
  Suite *s = suite_create("checker");
  TCase *tc = tu_tcase(s, "output");
  tcase_add_test(tc, printable_text);
  tcase_add_test(tc, verdict_lines_are_printable);
  return s;
}

int main(void) {
  return tu_run(check_suite());
}
