/* arena.c - bump allocator; see arena.h. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
  arena_chunk *next;
  size_t size, used;
  alignas(max_align_t) unsigned char data[];
};

enum { CHUNK_MIN = 64 * 1024 };

static void out_of_memory(void) {
  fputs("matdiff: out of memory\n", stderr);
  abort();
}

void *xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p)
    out_of_memory();
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    out_of_memory();
  return p;
}

void *xrealloc(void *p, size_t size) {
  p = realloc(p, size ? size : 1);
  if (!p)
    out_of_memory();
  return p;
}

void *xreallocarray(void *p, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    out_of_memory();
  return xrealloc(p, n * size);
}

void arena_init(arena *a) {
  a->head = NULL;
  a->used = 0;
}

void arena_clear(arena *a) {
  arena_chunk *c = a->head;
  while (c) {
    arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  arena_init(a);
}

arena_mark arena_get_mark(const arena *a) {
  return (arena_mark){a->head, a->head ? a->head->used : 0, a->used};
}

void arena_reset(arena *a, arena_mark m) {
  while (a->head != m.head) {
    arena_chunk *next = a->head->next;
    free(a->head);
    a->head = next;
  }
  if (a->head)
    a->head->used = m.head_used;
  a->used = m.used;
}

void *arena_alloc(arena *a, size_t size) {
  const size_t align = alignof(max_align_t);
  if (size > SIZE_MAX - align)
    out_of_memory();
  size = (size + align - 1) & ~(align - 1);
  arena_chunk *c = a->head;
  if (!c || c->size - c->used < size) {
    size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
    c = xmalloc(sizeof *c + cap);
    c->size = cap;
    c->used = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += size;
  a->used += size;
  return p;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void *scratch_array(void *small, size_t cap, size_t n, size_t size) {
  return n <= cap ? small : xreallocarray(NULL, n, size);
}

void scratch_grow(void **p, void *small, size_t *cap, size_t size) {
  if (*cap > SIZE_MAX / 2)
    out_of_memory();
  size_t n = 2 * *cap;
  if (*p == small) {
    void *q = xreallocarray(NULL, n, size);
    memcpy(q, small, *cap * size);
    *p = q;
  } else {
    *p = xreallocarray(*p, n, size);
  }
  *cap = n;
}

void scratch_free(void *p, void *small) {
  if (p != small)
    free(p);
}
