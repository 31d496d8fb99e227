/*
 * input.h - reading sources from files and streams, within MD_MAX_INPUT.
 *
 * Filter mode and identity files are read a line at a time, --rules files
 * whole.  The limit is applied while reading: whatever the input (a
 * 200 MB line, /dev/zero), no more than MD_MAX_INPUT bytes of it are held
 * at once, plus a buffer, and reading stops where the limit is crossed:
 *
 *   matdiff: <stdin>:3:1: error: line too long (more than 16777216
 *   bytes); the rest of the input is not read
 *
 * A NUL byte cannot be part of any statement, and the parser reports
 * it where it is; a line is cut a little after its first NUL (enough to
 * show it in the error), so that the error comes as soon as the NUL is
 * read (/dev/zero is one endless line), and the rest of that line is
 * read and dropped before the next one (counted against the limit).  A
 * whole file ends at its first NUL.
 *
 * A read that fails (a directory, EIO) is an error without a place:
 *
 *   matdiff: error: cannot read 'x.mdi': Is a directory
 *
 * Ownership: an md_lines owns its buffer; the source it returns points
 * into it and lasts until the next call (or md_lines_clear), so errors
 * about a line are printed before the next one is read.  The FILE stays
 * the caller's.
 */
#pragma once

#include "diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct md_lines {
  FILE *f;           /* or NULL: the lines of mem */
  const char *mem;   /* not NUL-terminated */
  size_t memlen, at; /* bytes of mem, and where the next line starts */
  const char *what;  /* the input in read errors: "'x.mdi'" */
  char *buf;         /* the current line */
  size_t cap;
  md_source src; /* the current line: named as given, numbered from 1 */
  bool skip;     /* the rest of the current line is to be dropped */
  bool done;     /* at the end, or stopped by an error */
} md_lines;

/* The lines of F; NAME places messages about a line ("<stdin>", a path),
 * WHAT names the input in read errors ("standard input", "'x.mdi'").
 * Both are kept, not copied. */
void md_lines_init(md_lines *r, FILE *f, const char *name, const char *what);
/* The lines of the LEN bytes at TEXT (kept, not copied). */
void md_lines_init_mem(md_lines *r, const char *text, size_t len,
                       const char *name);
void md_lines_clear(md_lines *r);

/* The next line, without its '\n' (a '\r' before it stays); NULL at the
 * end of the input, or after an error added to ERR (a read that failed, a
 * line past the limit): nothing more is read then. */
const md_source *md_lines_next(md_lines *r, md_errors *err);

/* The whole of the file PATH, up to its first NUL byte (included), in a
 * buffer the caller frees; NULL after an error added to ERR.  WHAT names
 * the file in messages ("rules 'my.rules'"). */
char *md_read_file(const char *path, const char *what, size_t *len,
                   md_errors *err);
