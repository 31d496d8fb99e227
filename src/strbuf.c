/* strbuf.c - growable strings; see strbuf.h. */
#include "strbuf.h"

#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(strbuf *b) {
  *b = (strbuf){0};
}

void sb_clear(strbuf *b) {
  free(b->s);
  sb_init(b);
}

static void reserve(strbuf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->s = xrealloc(b->s, cap);
  b->cap = cap;
}

void sb_putn(strbuf *b, const char *s, size_t n) {
  reserve(b, n);
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void sb_putc(strbuf *b, char c) {
  sb_putn(b, &c, 1);
}
void sb_puts(strbuf *b, const char *s) {
  sb_putn(b, s, strlen(s));
}

void sb_printf(strbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n <= 0)
    return;
  reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

char *sb_take(strbuf *b) {
  char *s = b->s;
  if (!s) {
    s = xmalloc(1);
    s[0] = '\0';
  }
  sb_init(b);
  return s;
}
