/* deep.c - calls on a deep stack; see deep.h. */
#include "deep.h"

#include <flint/flint.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct job {
  int (*fn)(void *);
  void *arg;
  int rc;
} job;

static void *run(void *p) {
  job *j = p;
  j->rc = j->fn(j->arg);
  /* FLINT keeps caches per thread (ewise.c's polynomials fill them):
   * freed here, as the thread ends, or they leak */
  flint_cleanup();
  return NULL;
}

int md_deep(int (*fn)(void *arg), void *arg, size_t input) {
  job j = {fn, arg, 0};
  size_t stack = MD_DEEP_STACK;
  const size_t base = (size_t)16 << 20, per_byte = (size_t)8 << 10;
  if (input && input < (MD_DEEP_STACK - base) / per_byte)
    stack = base + input * per_byte;
  pthread_attr_t a;
  if (pthread_attr_init(&a) != 0)
    return fn(arg);
  pthread_t t;
  bool made = pthread_attr_setstacksize(&a, stack) == 0 &&
              pthread_create(&t, &a, run, &j) == 0;
  pthread_attr_destroy(&a);
  if (!made)
    return fn(arg); /* the caller's stack: deep inputs may fail sooner */
  pthread_join(t, NULL);
  return j.rc;
}
