/* blocks.c - a per-thread cache of small blocks; see blocks.h. */
#include "blocks.h"

#include "arena.h"
#include "asan.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const size_t block_size[MD_NBLOCK] = {
    [MD_BLOCK_NODES] = MD_NODES_FIRST * sizeof(void *),
    [MD_BLOCK_IDMAP] = MD_IDMAP_FIRST * (sizeof(uint32_t) + sizeof(uintptr_t)),
};

size_t md_block_size(md_block_class c) {
  return block_size[c];
}

#ifdef MD_ASAN

bool md_block_cache_on(void) {
  return false;
}

void *md_block_get(md_block_class c) {
  return xmalloc(block_size[c]);
}

void md_block_put(md_block_class c, void *p) {
  (void)c;
  free(p);
}

#else

bool md_block_cache_on(void) {
  return true;
}

typedef struct block {
  struct block *next;
} block;

typedef struct cache {
  block *head[MD_NBLOCK];
  unsigned n[MD_NBLOCK];
  bool armed; /* the thread's exit will drain it */
} cache;

static _Thread_local cache C;
static pthread_key_t drain_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_made;

/* At a thread's exit (the key's destructor): its blocks go back to libc. */
static void drain(void *p) {
  cache *c = p;
  for (int k = 0; k < MD_NBLOCK; k++) {
    while (c->head[k]) {
      block *b = c->head[k];
      c->head[k] = b->next;
      free(b);
    }
    c->n[k] = 0;
  }
  c->armed = false;
}

static void make_key(void) {
  key_made = pthread_key_create(&drain_key, drain) == 0;
}

void *md_block_get(md_block_class c) {
  block *b = C.head[c];
  if (!b)
    return xmalloc(block_size[c]);
  C.head[c] = b->next;
  C.n[c]--;
  return b;
}

void md_block_put(md_block_class c, void *p) {
  if (!p)
    return;
  if (!C.armed) {
    /* a thread whose blocks no exit would drain keeps none: they would
     * leak */
    pthread_once(&key_once, make_key);
    C.armed = key_made && pthread_setspecific(drain_key, &C) == 0;
  }
  if (!C.armed || C.n[c] >= MD_BLOCK_KEEP) {
    free(p);
    return;
  }
  block *b = p;
  b->next = C.head[c];
  C.head[c] = b;
  C.n[c]++;
}

#endif
