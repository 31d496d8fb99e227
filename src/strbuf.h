/*
 * strbuf.h - a growable byte string, for printers.
 *
 * The buffer owns its bytes; sb_take() hands them to the caller (free()).
 */
#pragma once

#include <stddef.h>

typedef struct strbuf {
  char *s;
  size_t len, cap;
} strbuf;

void sb_init(strbuf *b);
void sb_clear(strbuf *b);
void sb_putc(strbuf *b, char c);
void sb_puts(strbuf *b, const char *s);
void sb_putn(strbuf *b, const char *s, size_t n);
void sb_printf(strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The NUL-terminated contents, now the caller's; B is left empty. */
char *sb_take(strbuf *b);
