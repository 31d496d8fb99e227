/* diag.c - error messages with file:line:col and a caret; see diag.h. */
#include "diag.h"

#include "arena.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void md_errors_init(md_errors *e) {
  e->v = NULL;
  e->n = e->cap = 0;
}

void md_errors_clear(md_errors *e) {
  for (size_t i = 0; i < e->n; i++)
    free(e->v[i].msg);
  free(e->v);
  md_errors_init(e);
}

void md_errors_truncate(md_errors *e, size_t n) {
  while (e->n > n)
    free(e->v[--e->n].msg);
}

void md_error_at(md_errors *e, const md_source *src, md_loc loc,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *msg = xmalloc(n > 0 ? (size_t)n + 1 : 1);
  va_start(ap, fmt);
  vsnprintf(msg, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
  va_end(ap);
  if (e->n == e->cap) {
    e->cap = e->cap ? 2 * e->cap : 4;
    e->v = xreallocarray(e->v, e->cap, sizeof *e->v);
  }
  if (src && md_loc_valid(loc) && loc.begin > src->len)
    loc.begin = loc.end = (uint32_t)src->len;
  e->v[e->n++] = (md_error){src, loc, msg};
}

/* A UTF-8 continuation byte does not start a character. */
static bool is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

void md_source_linecol(const md_source *src, uint32_t off, unsigned *line,
                       unsigned *col) {
  unsigned l = src->line0, c = 1;
  for (size_t i = 0; i < off && i < src->len; i++) {
    unsigned char ch = (unsigned char)src->text[i];
    if (ch == '\n') {
      l++;
      c = 1;
    } else if (!is_cont(ch)) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

/* The length of the character at S (N bytes left) when it is printable
 * as it is: a tab, printable ASCII, or valid multi-byte UTF-8; else 0
 * (anything a terminal would act on, a stray byte). */
static size_t printable_len(const char *s, size_t n) {
  unsigned char ch = (unsigned char)s[0];
  if (ch == '\t' || (ch >= 0x20 && ch < 0x7F))
    return 1;
  if (ch < 0xC2 || ch > 0xF4)
    return 0;
  size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
  size_t k = 1;
  while (k < len && k < n && is_cont((unsigned char)s[k]))
    k++;
  /* overlong forms, surrogates and code points past U+10FFFF are
   * invalid too */
  unsigned char c1 = k > 1 ? (unsigned char)s[1] : 0;
  if (k < len || (ch == 0xE0 && c1 < 0xA0) || (ch == 0xED && c1 >= 0xA0) ||
      (ch == 0xF0 && c1 < 0x90) || (ch == 0xF4 && c1 >= 0x90))
    return 0;
  return len;
}

void md_put_printable(FILE *out, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t len = printable_len(s + i, n - i);
    if (len)
      fwrite(s + i, 1, len, out);
    else
      fputc('?', out);
    i += len ? len : 1;
  }
}

/* Longest line shown around a caret; longer lines are cut around it. */
enum { SHOW_MAX = 160 };

/* Prints the line holding OFF, made printable, and a caret under OFF. */
static void print_caret(FILE *out, const md_source *src, uint32_t off) {
  size_t b = off, e = off;
  while (b > 0 && src->text[b - 1] != '\n')
    b--;
  while (e < src->len && src->text[e] != '\n')
    e++;
  /* Cut very long lines to a window around the caret. */
  size_t from = b, to = e;
  if (off - b > SHOW_MAX / 2)
    from = off - SHOW_MAX / 2;
  if (to - from > SHOW_MAX)
    to = from + SHOW_MAX;
  while (from > b && from < src->len && is_cont((unsigned char)src->text[from]))
    from--;
  char *caret = xmalloc(to - from + 2);
  size_t nc = 0;
  if (from > b)
    fputs("...", out);
  for (size_t i = from; i < to;) {
    unsigned char ch = (unsigned char)src->text[i];
    size_t len = printable_len(src->text + i, to - i);
    md_put_printable(out, src->text + i, len ? len : 1);
    if (i < off)
      caret[nc++] = ch == '\t' ? '\t' : ' ';
    i += len ? len : 1;
  }
  if (to < e)
    fputs("...", out);
  fputc('\n', out);
  if (from > b)
    fputs("   ", out);
  fwrite(caret, 1, nc, out);
  fputs("^\n", out);
  free(caret);
}

void md_error_print(FILE *out, const md_error *err) {
  if (!err->src || !md_loc_valid(err->loc)) {
    fprintf(out, "matdiff: %s%serror: %s\n", err->src ? err->src->name : "",
            err->src ? ": " : "", err->msg);
    return;
  }
  unsigned line, col;
  md_source_linecol(err->src, err->loc.begin, &line, &col);
  fprintf(out, "matdiff: %s:%u:%u: error: %s\n", err->src->name, line, col,
          err->msg);
  print_caret(out, err->src, err->loc.begin);
}

void md_errors_print(FILE *out, const md_errors *e) {
  for (size_t i = 0; i < e->n; i++)
    md_error_print(out, &e->v[i]);
}
