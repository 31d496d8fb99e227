/*
 * test_input.c - md_lines and md_read_file: lines as they come, the limit
 * applied while reading (never more than MD_MAX_INPUT bytes held), NUL
 * bytes cut where they are, and reads that fail.
 */
#include "testutil.h"

#include "input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static md_errors err;

static void setup(void) {
  md_errors_init(&err);
}

static void teardown(void) {
  md_errors_clear(&err);
}

/* A stream holding the LEN bytes of TEXT, then N bytes C, then TAIL. */
static FILE *stream(const char *text, size_t len, size_t n, char c,
                    const char *tail) {
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  for (size_t i = 0; i < n; i++)
    putc(c, f);
  fputs(tail, f);
  rewind(f);
  return f;
}

/* The next line must be the LEN bytes of WANT, numbered LINE. */
static void next_is(md_lines *r, const char *want, size_t len, unsigned line) {
  const md_source *s = md_lines_next(r, &err);
  ck_assert_msg(s != NULL, "no line %u: %s", line,
                err.n ? err.v[0].msg : "the input ended");
  ck_assert_uint_eq(s->len, len);
  ck_assert_mem_eq(s->text, want, len);
  ck_assert_uint_eq(s->line0, line);
  ck_assert_uint_eq(err.n, 0);
}

static void at_end(md_lines *r) {
  ck_assert_ptr_null(md_lines_next(r, &err));
  ck_assert_uint_eq(err.n, 0);
  ck_assert_ptr_null(md_lines_next(r, &err));
}

/* The next call must fail with the one message MSG. */
static void fails(md_lines *r, const char *msg) {
  ck_assert_ptr_null(md_lines_next(r, &err));
  ck_assert_uint_eq(err.n, 1);
  ck_assert_str_eq(err.v[0].msg, msg);
  /* nothing is read after an error */
  ck_assert_ptr_null(md_lines_next(r, &err));
  ck_assert_uint_eq(err.n, 1);
}

static const char too_long[] = "line too long (more than 16777216 bytes); "
                               "the rest of the input is not read";

START_TEST(lines) {
  FILE *f = stream("a\nbc\r\n\nlast", 11, 0, 0, "");
  md_lines r;
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, "a", 1, 1);
  next_is(&r, "bc\r", 3, 2);
  next_is(&r, "", 0, 3);
  next_is(&r, "last", 4, 4);
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);

  f = stream("", 0, 0, 0, "");
  md_lines_init(&r, f, "<t>", "t");
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);

  f = stream("\n", 1, 0, 0, "");
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, "", 0, 1);
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);
}
END_TEST

START_TEST(lines_in_memory) {
  md_lines r;
  md_lines_init_mem(&r, "a = a\nb = b", 11, "--verify");
  next_is(&r, "a = a", 5, 1);
  next_is(&r, "b = b", 5, 2);
  at_end(&r);
  md_lines_clear(&r);
}
END_TEST

START_TEST(nul_bytes) {
  /* a short line is kept whole, NUL included */
  FILE *f = stream("x\0y\nz\n", 6, 0, 0, "");
  md_lines r;
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, "x\0y", 3, 1);
  next_is(&r, "z", 1, 2);
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);

  /* a long one is cut 80 bytes after its NUL, and the rest dropped */
  char want[83] = "a";
  memset(want + 2, 'b', 80);
  f = stream("a\0", 2, 1000, 'b', "\nc\n");
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, want, 82, 1);
  next_is(&r, "c", 1, 2);
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);

  /* /dev/zero: the NUL line comes at once; dropping the rest of it stops
   * at the limit */
  f = fopen("/dev/zero", "rb");
  ck_assert_ptr_nonnull(f);
  char zeros[81] = {0};
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, zeros, 81, 1);
  fails(&r, too_long);
  ck_assert_uint_eq(err.v[0].src->line0, 1);
  md_lines_clear(&r);
  fclose(f);
}
END_TEST

START_TEST(limit) {
  /* exactly the limit is a line */
  FILE *f = stream("", 0, MD_MAX_INPUT, 'x', "\ny\n");
  md_lines r;
  md_lines_init(&r, f, "<t>", "t");
  const md_source *s = md_lines_next(&r, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(s->len, MD_MAX_INPUT);
  ck_assert_uint_le(r.cap, (size_t)MD_MAX_INPUT + 1);
  next_is(&r, "y", 1, 2);
  at_end(&r);
  md_lines_clear(&r);
  fclose(f);

  /* one byte more is an error at the start of the line, and the rest of
   * the input is not read */
  f = stream("a\n", 2, (size_t)MD_MAX_INPUT + 1, 'x', "\ny\n");
  md_lines_init(&r, f, "<t>", "t");
  next_is(&r, "a", 1, 1);
  fails(&r, too_long);
  ck_assert_uint_eq(err.v[0].src->line0, 2);
  ck_assert_uint_eq(err.v[0].loc.begin, 0);
  ck_assert_uint_le(r.cap, (size_t)MD_MAX_INPUT + 1);
  md_lines_clear(&r);
  fclose(f);
}
END_TEST

START_TEST(read_errors) {
  FILE *f = fopen(".", "rb");
  ck_assert_ptr_nonnull(f);
  md_lines r;
  md_lines_init(&r, f, ".", "'.'");
  fails(&r, "cannot read '.': Is a directory");
  ck_assert_ptr_null(err.v[0].src);
  md_lines_clear(&r);
  fclose(f);
}
END_TEST

/* A temporary file holding N bytes C after TEXT; its name in PATH. */
static void temp_file(char *path, const char *text, size_t len, size_t n,
                      char c) {
  strcpy(path, "/tmp/matdiff-test-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  for (size_t i = 0; i < n; i++)
    putc(c, f);
  fclose(f);
}

START_TEST(whole_files) {
  char path[64];
  size_t len;
  temp_file(path, "a\nb", 3, 0, 0);
  char *t = md_read_file(path, "rules 'x'", &len, &err);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(len, 3);
  ck_assert_mem_eq(t, "a\nb", 3);
  free(t);
  unlink(path);

  /* a file ends at its first NUL, which the parser then reports */
  temp_file(path, "a\nb\0c\nd", 8, 0, 0);
  t = md_read_file(path, "rules 'x'", &len, &err);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(len, 4);
  ck_assert_mem_eq(t, "a\nb\0", 4);
  free(t);
  unlink(path);

  /* the limit, and one byte past it */
  temp_file(path, "", 0, MD_MAX_INPUT, '\n');
  t = md_read_file(path, "rules 'x'", &len, &err);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(len, MD_MAX_INPUT);
  free(t);
  unlink(path);
  temp_file(path, "", 0, (size_t)MD_MAX_INPUT + 1, '\n');
  ck_assert_ptr_null(md_read_file(path, "rules 'x'", &len, &err));
  ck_assert_uint_eq(err.n, 1);
  ck_assert_str_eq(err.v[0].msg, "cannot read rules 'x': longer than "
                                 "16777216 bytes");
  unlink(path);

  ck_assert_ptr_null(md_read_file(".", "rules '.'", &len, &err));
  ck_assert_str_eq(err.v[1].msg, "cannot read rules '.': Is a directory");
  ck_assert_ptr_null(md_read_file("/nonexistent/x", "rules 'y'", &len, &err));
  ck_assert_str_eq(err.v[2].msg,
                   "cannot read rules 'y': No such file or directory");
  ck_assert_uint_eq(err.n, 3);
}
END_TEST

static Suite *input_suite(void) {
  Suite *s = suite_create("input");
  TCase *tc = tu_tcase(s, "lines");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, lines);
  tcase_add_test(tc, lines_in_memory);
  tcase_add_test(tc, nul_bytes);
  tcase_add_test(tc, limit);
  tcase_add_test(tc, read_errors);
  tc = tu_tcase(s, "files");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, whole_files);
  return s;
}

int main(void) {
  return tu_run(input_suite());
}
