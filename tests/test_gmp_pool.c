/*
 * test_gmp_pool.c - the command line's allocator for GMP (gmp_pool.h):
 * numbers that grow and shrink across MD_POOL_MAX keep their value, many
 * alive at once do not overlap, and a freed block is used again.
 */
#include "testutil.h"

#include "gmp_pool.h"

#include <gmp.h>
#include <stdint.h>
#include <stdlib.h>

static bool installed;

static void setup(void) {
  installed = md_gmp_pool_install();
}

/* n! grown a factor at a time from one limb to about 120, then divided
 * back: every size class and the line between pool and libc, both ways;
 * each step checked against the product of the factors left. */
START_TEST(grow_and_shrink) {
  mpz_t f, g;
  mpz_init_set_ui(f, 1);
  mpz_init(g);
  for (unsigned long k = 2; k <= 1000; k++)
    mpz_mul_ui(f, f, k);
  ck_assert_uint_gt(mpz_size(f), MD_POOL_MAX / sizeof(mp_limb_t));
  for (unsigned long k = 1000; k >= 2; k--) {
    mpz_divexact_ui(f, f, k);
    if (k % 97 == 0) { /* f is (k-1)! */
      mpz_fac_ui(g, k - 1);
      ck_assert_int_eq(mpz_cmp(f, g), 0);
      mpz_realloc2(f, 64 * (mpz_size(f) + 1)); /* shrink the block */
      ck_assert_int_eq(mpz_cmp(f, g), 0);
    }
  }
  ck_assert_int_eq(mpz_cmp_ui(f, 1), 0);
  mpz_clears(f, g, NULL);
}
END_TEST

/* Numbers of many sizes alive at once, freed in another order than made:
 * each keeps its value (3^i), so no two share a block. */
START_TEST(many_alive) {
  enum { N = 300 };
  mpz_t *x = malloc(N * sizeof *x), want;
  mpz_init(want);
  for (unsigned long i = 0; i < N; i++) {
    mpz_init(x[i]);
    mpz_ui_pow_ui(x[i], 3, i * 7 % 600);
  }
  for (unsigned long i = 0; i < N; i += 2)
    mpz_clear(x[i]);
  for (unsigned long i = 0; i < N; i += 2) { /* the freed blocks again */
    mpz_init(x[i]);
    mpz_ui_pow_ui(x[i], 3, i * 7 % 600);
  }
  for (unsigned long i = 0; i < N; i++) {
    mpz_ui_pow_ui(want, 3, i * 7 % 600);
    ck_assert_int_eq(mpz_cmp(x[i], want), 0);
  }
  for (unsigned long i = N; i-- > 0;)
    mpz_clear(x[i]);
  mpz_clear(want);
  free(x);
}
END_TEST

/* A block freed is the next one given of its size class; a larger one
 * is not. */
START_TEST(reuse) {
  if (!installed)
    return; /* (AddressSanitizer: GMP's own allocator) */
  void *(*alloc)(size_t);
  void *(*grow)(void *, size_t, size_t);
  void (*release)(void *, size_t);
  mp_get_memory_functions(&alloc, &grow, &release);
  void *a = alloc(24);
  release(a, 24);
  void *b = alloc(32); /* the same class of 16-byte steps */
  ck_assert_ptr_eq(a, b);
  void *c = alloc(48);
  ck_assert_ptr_ne(b, c);
  void *d = grow(c, 48, 40); /* same class: stays */
  ck_assert_ptr_eq(c, d);
  void *e = grow(d, 40, 4 * MD_POOL_MAX); /* to libc, content kept */
  ((unsigned char *)e)[4 * MD_POOL_MAX - 1] = 7;
  void *f = grow(e, 4 * MD_POOL_MAX, 8); /* back to the pool */
  ck_assert_uint_eq(((uintptr_t)f) % 8, 0);
  release(f, 8);
  release(b, 32);
}
END_TEST

static Suite *pool_suite(void) {
  Suite *s = suite_create("gmp_pool");
  TCase *tc = tu_tcase(s, "pool");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, grow_and_shrink);
  tcase_add_test(tc, many_alive);
  tcase_add_test(tc, reuse);
  return s;
}

int main(void) {
  return tu_run(pool_suite());
}
