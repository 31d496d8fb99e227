/*
 * arena.h - bump allocation for values that live as long as one context.
 *
 * An arena owns every block it hands out; nothing is freed one by one.
 * arena_clear() releases all of them at once.  Allocation failure aborts
 * the process with a message (matdiff has no sensible way to go on).
 */
#pragma once

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
  arena_chunk *head;
  size_t used; /* bytes handed out, for statistics and benchmarks */
} arena;

void arena_init(arena *a);
void arena_clear(arena *a);

/* A point in an arena's life: arena_reset() frees every block handed out
 * after it (a context rolls back a line's nodes so). */
typedef struct arena_mark {
  arena_chunk *head;
  size_t head_used, used;
} arena_mark;

arena_mark arena_get_mark(const arena *a);
void arena_reset(arena *a, arena_mark m);

/* Returns SIZE bytes aligned for any object, uninitialised. */
void *arena_alloc(arena *a, size_t size);
/* Copies the N bytes at S into the arena and adds a terminating NUL. */
char *arena_strndup(arena *a, const char *s, size_t n);

/* malloc/realloc that abort on failure; for growable side tables. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* realloc to N elements of SIZE bytes, checking the product for overflow. */
void *xreallocarray(void *p, size_t n, size_t size);

/* Scratch arrays that most often fit a caller's buffer on the stack:
 * SMALL, of CAP elements of SIZE bytes; larger ones come from malloc.
 * The passes make a few such arrays at every node (the terms of a sum,
 * the kids of a node rebuilt), and malloc and free for them were 4% of a
 * filter run's instructions. */
void *scratch_array(void *small, size_t cap, size_t n, size_t size);
/* Doubles *CAP, moving *P out of SMALL when it is there. */
void scratch_grow(void **p, void *small, size_t *cap, size_t size);
/* Frees P unless it is SMALL. */
void scratch_free(void *p, void *small);
