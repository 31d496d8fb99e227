/*
 * diag.h - sources, locations and error messages.
 *
 * A location is a pair of byte offsets into one source text; line and
 * column are computed only when a message is printed, as a compiler does:
 *
 *   matdiff: <expr>:1:9: error: cannot multiply A (m×n) by x (p×1) ...
 *   A x + y
 *           ^
 *
 * An md_errors collects messages; it owns their text.  Sources are owned
 * by whoever created them and must outlive the messages that point at them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct md_source {
  const char *name; /* "<expr>", "<stdin>", a file name */
  const char *text; /* not necessarily NUL-terminated */
  size_t len;
  unsigned line0; /* line number of the text's first line, usually 1 */
} md_source;

typedef struct md_loc {
  uint32_t begin,
      end; /* byte offsets, end exclusive; begin == end is a point */
} md_loc;

#define MD_NOLOC ((md_loc){UINT32_MAX, UINT32_MAX})
static inline bool md_loc_valid(md_loc l) {
  return l.begin != UINT32_MAX;
}
static inline md_loc md_loc_span(md_loc a, md_loc b) {
  return (md_loc){a.begin, b.end};
}

typedef struct md_error {
  const md_source *src; /* may be NULL: a message without a place */
  md_loc loc;
  char *msg;
} md_error;

typedef struct md_errors {
  md_error *v;
  size_t n, cap;
} md_errors;

void md_errors_init(md_errors *e);
void md_errors_clear(md_errors *e);
/* Drops the messages after the first N. */
void md_errors_truncate(md_errors *e, size_t n);
/* Records an error; SRC may be NULL and LOC invalid. printf-style. */
void md_error_at(md_errors *e, const md_source *src, md_loc loc,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Prints every message as "matdiff: NAME:LINE:COL: error: MSG", the line
 * and a caret. */
void md_errors_print(FILE *out, const md_errors *e);
void md_error_print(FILE *out, const md_error *err);

/* Writes the N bytes at S as messages show text: tabs and valid UTF-8
 * as they are, control characters and invalid bytes as '?'. */
void md_put_printable(FILE *out, const char *s, size_t n);

/* 1-based line and column (in characters) of byte offset OFF. */
void md_source_linecol(const md_source *src, uint32_t off, unsigned *line,
                       unsigned *col);
