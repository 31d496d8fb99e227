/* input.c - lines and files read within MD_MAX_INPUT; see input.h. */
#include "input.h"

#include "arena.h"
#include "parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bytes kept after a NUL, to show the line around it in the error. */
enum { NUL_CONTEXT = 80 };

void md_lines_init(md_lines *r, FILE *f, const char *name, const char *what) {
  *r = (md_lines){.f = f, .what = what};
  r->src = (md_source){.name = name, .text = "", .line0 = 0};
}

void md_lines_init_mem(md_lines *r, const char *text, size_t len,
                       const char *name) {
  *r = (md_lines){.mem = text, .memlen = len, .what = name};
  r->src = (md_source){.name = name, .text = "", .line0 = 0};
}

void md_lines_clear(md_lines *r) {
  free(r->buf);
  *r = (md_lines){0};
}

/* Room for one more byte in the line buffer (never more than the limit
 * plus one: the caller stops there). */
static void reserve(md_lines *r, size_t n) {
  if (n < r->cap)
    return;
  size_t cap = r->cap ? 2 * r->cap : 256;
  if (cap > (size_t)MD_MAX_INPUT + 1)
    cap = (size_t)MD_MAX_INPUT + 1;
  r->buf = xrealloc(r->buf, cap);
  r->cap = cap;
}

static const md_source *too_long(md_lines *r, md_errors *err) {
  r->done = true;
  md_error_at(err, &r->src, (md_loc){0, 0},
              "line too long (more than %u bytes); the rest of the input "
              "is not read",
              MD_MAX_INPUT);
  return NULL;
}

static const md_source *read_failed(md_lines *r, int e, md_errors *err) {
  r->done = true;
  md_error_at(err, NULL, MD_NOLOC, "cannot read %s: %s", r->what,
              strerror(e ? e : EIO));
  return NULL;
}

/* The next line of r->mem, which is all there already: nothing to cut. */
static const md_source *next_mem(md_lines *r, md_errors *err) {
  if (r->at >= r->memlen) {
    r->done = true;
    return NULL;
  }
  const char *b = r->mem + r->at;
  size_t left = r->memlen - r->at;
  const char *nl = memchr(b, '\n', left);
  size_t n = nl ? (size_t)(nl - b) : left;
  r->at += n + (nl != NULL);
  r->src.line0++;
  r->src.text = b;
  r->src.len = n < MD_MAX_INPUT ? n : MD_MAX_INPUT;
  return n > MD_MAX_INPUT ? too_long(r, err) : &r->src;
}

/* Reads and drops the rest of the current line, after its NUL: TOTAL
 * bytes of it are read. */
static bool skip_line(md_lines *r, size_t total, md_errors *err) {
  int c;
  while ((c = getc(r->f)) != EOF && c != '\n')
    if (total++ == MD_MAX_INPUT) {
      too_long(r, err);
      return false;
    }
  if (c == EOF && ferror(r->f)) {
    read_failed(r, errno, err);
    return false;
  }
  r->done = c == EOF;
  return true;
}

const md_source *md_lines_next(md_lines *r, md_errors *err) {
  if (!r->done && r->skip && !skip_line(r, r->src.len, err))
    return NULL;
  r->skip = false;
  if (r->done)
    return NULL;
  if (!r->f)
    return next_mem(r, err);
  /* Byte by byte through stdio: a filter gets each line as soon as it
   * arrives, which reading in blocks would not give. */
  size_t n = 0, stop = MD_MAX_INPUT;
  int c;
  r->src.line0++;
  r->src.text = r->buf ? r->buf : "";
  r->src.len = 0;
  while ((c = getc(r->f)) != EOF && c != '\n') {
    if (n == stop) {
      if (stop == MD_MAX_INPUT)
        return too_long(r, err);
      /* the parser reports the NUL; the rest of the line is dropped
       * before the next line is read */
      r->skip = true;
      return &r->src;
    }
    reserve(r, n);
    r->buf[n++] = (char)c;
    r->src.text = r->buf;
    r->src.len = n;
    if (c == '\0' && stop == MD_MAX_INPUT && n + NUL_CONTEXT < stop)
      stop = n + NUL_CONTEXT;
  }
  if (c == EOF) {
    if (ferror(r->f))
      return read_failed(r, errno, err);
    r->done = true;
    if (n == 0)
      return NULL; /* no last line without a '\n' */
  }
  return &r->src;
}

char *md_read_file(const char *path, const char *what, size_t *len,
                   md_errors *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    md_error_at(err, NULL, MD_NOLOC, "cannot read %s: %s", what,
                strerror(errno));
    return NULL;
  }
  /* the limit plus one byte, to see that the file goes past it */
  size_t cap = 4096, n = 0;
  char *buf = xmalloc(cap);
  bool nul = false;
  while (!nul && n <= MD_MAX_INPUT) {
    if (n == cap) {
      cap = 2 * cap < (size_t)MD_MAX_INPUT + 1 ? 2 * cap : MD_MAX_INPUT + 1;
      buf = xrealloc(buf, cap);
    }
    size_t k = fread(buf + n, 1, cap - n, f);
    if (k == 0)
      break;
    const char *z = memchr(buf + n, '\0', k);
    if (z) {
      nul = true;
      k = (size_t)(z - (buf + n)) + 1;
    }
    n += k;
  }
  int e = errno;
  bool bad = !nul && ferror(f);
  fclose(f);
  if (bad || n > MD_MAX_INPUT) {
    if (bad)
      md_error_at(err, NULL, MD_NOLOC, "cannot read %s: %s", what,
                  strerror(e ? e : EIO));
    else
      md_error_at(err, NULL, MD_NOLOC, "cannot read %s: longer than %u bytes",
                  what, MD_MAX_INPUT);
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}
