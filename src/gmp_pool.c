/* gmp_pool.c - a small-block allocator for GMP; see gmp_pool.h. */
#include "gmp_pool.h"

#include "arena.h"
#include "asan.h"

#include <gmp.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Size classes of GRAIN bytes; blocks carved from slabs of SLAB bytes. */
enum { GRAIN = 16, NCLASS = MD_POOL_MAX / GRAIN, SLAB = 64 * 1024 };

typedef struct block {
  struct block *next;
} block;

static block *free_list[NCLASS];
static char *slab, *slab_end;
/* every slab, from its start: kept reachable (valgrind's leak check
 * counts a slab that only an interior pointer holds as lost) */
typedef struct slab_head {
  struct slab_head *next;
  alignas(max_align_t) char data[];
} slab_head;
static slab_head *slabs;

static size_t class_of(size_t size) {
  return (size + GRAIN - 1) / GRAIN - 1;
}

static void *pool_alloc(size_t size) {
  if (size > MD_POOL_MAX)
    return xmalloc(size);
  size_t k = class_of(size);
  block *b = free_list[k];
  if (b) {
    free_list[k] = b->next;
    return b;
  }
  size_t bytes = (k + 1) * GRAIN;
  if ((size_t)(slab_end - slab) < bytes) {
    /* the rest of the old slab is left (at most MD_POOL_MAX bytes) */
    slab_head *h = xmalloc(sizeof *h + SLAB);
    h->next = slabs;
    slabs = h;
    slab = h->data;
    slab_end = slab + SLAB;
  }
  void *p = slab;
  slab += bytes;
  return p;
}

static void pool_free(void *p, size_t size) {
  if (size > MD_POOL_MAX) {
    free(p);
    return;
  }
  block *b = p;
  size_t k = class_of(size);
  b->next = free_list[k];
  free_list[k] = b;
}

/* Every block of at most MD_POOL_MAX bytes is the pool's, every larger
 * one libc's: a block that crosses the line moves. */
static void *pool_realloc(void *p, size_t old, size_t size) {
  if (old > MD_POOL_MAX && size > MD_POOL_MAX)
    return xrealloc(p, size);
  if (old <= MD_POOL_MAX && size <= MD_POOL_MAX &&
      class_of(old) == class_of(size))
    return p;
  void *q = pool_alloc(size);
  memcpy(q, p, old < size ? old : size);
  pool_free(p, old);
  return q;
}

bool md_gmp_pool_install(void) {
#ifdef MD_ASAN
  (void)pool_realloc; /* compiled all the same, and unused */
  return false;
#else
  mp_set_memory_functions(pool_alloc, pool_realloc, pool_free);
  return true;
#endif
}
