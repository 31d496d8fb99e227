/*
 * test_expr.c - the context's per-line scratch (expr.h: md_ctx_save,
 * md_ctx_restore): nodes made after a mark are removed, interning goes on
 * as if they had never been made, and nothing kept beyond the line is
 * removed.
 */
#include "testutil.h"

#include "blocks.h"
#include "normal.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* md_ctx_scale: a short line may make MD_SIZE_FLOOR nodes and operands,
 * a line of n bytes 4 n^2, at most MD_MAX_SIZE; the message says which. */
START_TEST(budget_by_the_line) {
  size_t n = MD_SIZE_FLOOR;
  expr *x = expr_sym(tu_ctx, "x");
  expr **v = xreallocarray(NULL, n, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = x;
  char why[128];
  md_ctx_mark(tu_ctx);
  md_ctx_scale(tu_ctx, 10);
  ck_assert_ptr_null(expr_make(tu_ctx, E_MUL, v, n));
  md_ctx_limit_text(tu_ctx, why, sizeof why);
  ck_assert_str_eq(why, "too large (more than 4194304 nodes and operands)");
  /* 1100 bytes: 4840000 */
  md_ctx_mark(tu_ctx);
  md_ctx_scale(tu_ctx, 1100);
  ck_assert_ptr_nonnull(expr_make(tu_ctx, E_MUL, v, n / 2));
  ck_assert_ptr_nonnull(expr_make(tu_ctx, E_KRON, v, n / 2));
  ck_assert_ptr_null(expr_make(tu_ctx, E_HAD, v, n / 4));
  md_ctx_limit_text(tu_ctx, why, sizeof why);
  ck_assert_str_eq(why, "too large (more than 4840000 nodes and operands)");
  /* a line of a megabyte: the maximum, without overflow */
  md_ctx_scale(tu_ctx, (size_t)1 << 20);
  md_ctx_limit_text(tu_ctx, why, sizeof why);
  ck_assert_str_eq(why, "too large (more than 16777216 nodes and operands)");
  md_ctx_scale(tu_ctx, SIZE_MAX);
  md_ctx_limit_text(tu_ctx, why, sizeof why);
  ck_assert_str_eq(why, "too large (more than 16777216 nodes and operands)");
  free(v);
}
END_TEST

/* A chain of N new nodes: sin(sin(... NAME ...)). */
static expr *chain(const char *name, size_t n) {
  expr *e = expr_sym(tu_ctx, name);
  for (size_t i = 0; i < n; i++)
    e = expr_call1(tu_ctx, FN_SIN, e);
  return e;
}

START_TEST(restore_removes_the_line) {
  expr *kept = tu_parse("x^T A x + 3/4");
  size_t n0 = md_ctx_nnodes(tu_ctx);
  md_ctx_point p = md_ctx_save(tu_ctx);
  expr *line = tu_parse("tr(B X^T C) + 1/3");
  ck_assert_uint_gt(md_ctx_nnodes(tu_ctx), n0);
  ck_assert(md_ctx_restore(tu_ctx, &p));
  ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n0);
  /* what was kept is found again, not made twice */
  ck_assert_ptr_eq(tu_parse("x^T A x + 3/4"), kept);
  ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n0);
  /* the line's text makes new nodes with the ids given out again */
  expr *again = tu_parse("tr(B X^T C) + 1/3");
  ck_assert_uint_eq(again->id, line->id);
  ck_assert_str_eq(tu_print(again), "tr(B X^T C) + 1/3");
}
END_TEST

/* A line that grows the interning table (rehashed in id order) and is
 * then removed leaves a table in which every kept node is found. */
START_TEST(restore_after_the_table_grew) {
  expr *kept[64];
  char name[16];
  for (int i = 0; i < 64; i++) {
    snprintf(name, sizeof name, "k%d", i);
    kept[i] = chain(name, 3);
  }
  size_t n0 = md_ctx_nnodes(tu_ctx);
  for (int round = 0; round < 3; round++) {
    md_ctx_point p = md_ctx_save(tu_ctx);
    for (int i = 0; i < 100; i++) { /* past several doublings of the table */
      snprintf(name, sizeof name, "line%d", i);
      ck_assert_ptr_nonnull(chain(name, 500));
    }
    ck_assert_uint_ge(md_ctx_nnodes(tu_ctx), n0 + 50000);
    ck_assert(md_ctx_restore(tu_ctx, &p));
    ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n0);
    for (int i = 0; i < 64; i++) {
      snprintf(name, sizeof name, "k%d", i);
      ck_assert_ptr_eq(chain(name, 3), kept[i]);
    }
    ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n0);
  }
}
END_TEST

/* A function (or a rule, or a module's slot) made during the line pins
 * it: its nodes stay. */
START_TEST(pinned_lines_stay) {
  md_ctx_point p = md_ctx_save(tu_ctx);
  expr *e = chain("x", 5);
  size_t n = md_ctx_nnodes(tu_ctx);
  md_fn_add(tu_ctx, "myfn", 1, FC_ELEMWISE);
  ck_assert(!md_ctx_restore(tu_ctx, &p));
  ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n);
  ck_assert_ptr_eq(chain("x", 5), e);
  /* a mark taken after the pin may be restored */
  p = md_ctx_save(tu_ctx);
  chain("y", 5);
  ck_assert(md_ctx_restore(tu_ctx, &p));
  ck_assert_uint_eq(md_ctx_nnodes(tu_ctx), n);
}
END_TEST

/* Functions are found by name through a hash table that grows: the
 * built-ins, thousands of added ones, a name read from a longer text
 * (its length counts: f1 is not f10), a name not there. */
START_TEST(functions_by_name) {
  md_ctx *ctx = md_ctx_new();
  ck_assert_int_eq(md_fn_lookup(ctx, "tanh", 4), FN_TANH);
  ck_assert_int_eq(md_fn_lookup(ctx, "tanhx", 4), FN_TANH);
  ck_assert_int_eq(md_fn_lookup(ctx, "tan", 3), FN_TAN);
  ck_assert_int_eq(md_fn_lookup(ctx, "ta", 2), -1);
  ck_assert_int_eq(md_fn_lookup(ctx, "", 0), -1);
  char name[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "f%d", i);
    ck_assert_uint_eq(md_fn_add(ctx, name, 1, FC_ELEMWISE),
                      (unsigned)FN_NBUILTIN + (unsigned)i);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "f%d", i);
    ck_assert_int_eq(md_fn_lookup(ctx, name, strlen(name)), FN_NBUILTIN + i);
  }
  ck_assert_int_eq(md_fn_lookup(ctx, "f10", 2), FN_NBUILTIN + 1);
  ck_assert_int_eq(md_fn_lookup(ctx, "f5000", 5), -1);
  ck_assert_int_eq(md_fn_lookup(ctx, "sigmoid", 7), FN_SIGMOID);
  md_ctx_free(ctx);
}
END_TEST

/* The comparison cache names nodes by id: after a restore the ids name
 * other nodes, and what was put before is not found. */
START_TEST(comparisons_forgotten) {
  md_ctx_point p = md_ctx_save(tu_ctx);
  expr *a = expr_sym(tu_ctx, "a"), *b = expr_sym(tu_ctx, "b");
  md_ctx_cmp_put(tu_ctx, a, b, -1);
  int c = 0;
  ck_assert(md_ctx_cmp_get(tu_ctx, a, b, &c));
  ck_assert_int_eq(c, -1);
  ck_assert(md_ctx_restore(tu_ctx, &p));
  expr *u = expr_sym(tu_ctx, "u"), *v = expr_sym(tu_ctx, "v");
  ck_assert_uint_eq(u->id, a->id);
  ck_assert_uint_eq(v->id, b->id);
  ck_assert(!md_ctx_cmp_get(tu_ctx, u, v, &c));
}
END_TEST

/* Numbers made during the line are released (valgrind and ASan see a
 * leak otherwise) and made again afterwards. */
START_TEST(numbers_released) {
  md_ctx_point p = md_ctx_save(tu_ctx);
  tu_parse("123456789012345678901234567890 x + 1/7");
  ck_assert(md_ctx_restore(tu_ctx, &p));
  ck_assert_str_eq(tu_print(tu_parse("123456789012345678901234567890 x + 1/7")),
                   "123456789012345678901234567890 x + 1/7");
}
END_TEST

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sum of more than MD_WHOLE_SUM terms is an operand of its own in a
 * sum (expr.h); a shorter one is spliced in.  Both print and read back as
 * the same node, and the normal form keeps the long one whole too. */
START_TEST(long_sums_stay_whole) {
  strbuf b;
  sb_init(&b);
  for (unsigned i = 0; i < MD_WHOLE_SUM; i++)
    sb_printf(&b, "%sa%u", i ? " + " : "", i);
  expr *s64 = tu_parse(b.s);
  sb_puts(&b, " + a64");
  expr *s65 = tu_parse(b.s);
  sb_clear(&b);
  ck_assert_uint_eq(s64->nkids, MD_WHOLE_SUM);
  ck_assert_uint_eq(s65->nkids, MD_WHOLE_SUM + 1);
  expr *k[2] = {s64, tu_parse("y")};
  ck_assert_uint_eq(expr_make(tu_ctx, E_ADD, k, 2)->nkids, MD_WHOLE_SUM + 1);
  k[0] = s65;
  expr *e = expr_make(tu_ctx, E_ADD, k, 2);
  ck_assert_uint_eq(e->nkids, 2);
  ck_assert_ptr_eq(e->kid[0], s65);
  char *t = strdup(tu_print(e));
  ck_assert(t[0] == '(');
  ck_assert_ptr_eq(tu_parse(t), e);
  /* the normal form: the long sum a term of its own, scaled whole (its
   * terms in their order, which is strcmp's for these names) */
  char *t65 = strdup(tu_print(s65));
  char *names[MD_WHOLE_SUM + 1];
  for (unsigned i = 0; i <= MD_WHOLE_SUM; i++) {
    names[i] = malloc(8);
    snprintf(names[i], 8, "a%u", i);
  }
  qsort(names, MD_WHOLE_SUM + 1, sizeof *names, by_name);
  sb_init(&b);
  sb_putc(&b, '(');
  for (unsigned i = 0; i <= MD_WHOLE_SUM; i++) {
    sb_printf(&b, "%s%s", i ? " + " : "", names[i]);
    free(names[i]);
  }
  sb_puts(&b, ") + y");
  char *want = sb_take(&b);
  sb_init(&b);
  sb_printf(&b, "y + 2 (%s) - (%s)", t65, t65);
  tu_check_simplify(b.s, want);
  sb_clear(&b);
  free(want);
  free(t65);
  free(t);
}
END_TEST

/* A node OP of N + 1 leaves (names STEM0, STEM1, ...) stays whole in an
 * OP that holds it beside OUTER; one of N leaves is spliced in.  Printed,
 * it starts with WANT and reads back as the same node. */
static void check_whole(expr_op op, unsigned n, const char *stem,
                        const char *outer, const char *want) {
  expr *v[32];
  ck_assert_uint_lt(n, 32);
  for (unsigned i = 0; i <= n; i++) {
    char name[8];
    snprintf(name, sizeof name, "%s%u", stem, i);
    v[i] = tu_parse(name);
  }
  expr *short_ = expr_make(tu_ctx, op, v, n);
  expr *long_ = expr_make(tu_ctx, op, v, n + 1);
  expr *k[2] = {tu_parse(outer), short_};
  ck_assert_uint_eq(expr_make(tu_ctx, op, k, 2)->nkids, n + 1);
  k[1] = long_;
  expr *e = expr_make(tu_ctx, op, k, 2);
  ck_assert_uint_eq(e->nkids, 2);
  ck_assert_ptr_eq(e->kid[1], long_);
  const char *t = tu_print(e);
  ck_assert_ptr_nonnull(strstr(t, want));
  ck_assert_ptr_eq(tu_parse(t), e);
}

/* A Hadamard product of more than MD_WHOLE_HAD factors stays whole in
 * one that contains it; a shorter one is spliced in. */
START_TEST(long_hadamard_products_stay_whole) {
  check_whole(E_HAD, MD_WHOLE_HAD, "b", "y", "y .* (b0 .* b1");
}
END_TEST

/* A matrix product of more than MD_WHOLE_MUL factors likewise. */
START_TEST(long_products_stay_whole) {
  check_whole(E_MUL, MD_WHOLE_MUL, "B", "Y", "Y (B0 B1");
}
END_TEST

/* EF_NO_TRANS: set on a node with no transpose anywhere in it (symbols,
 * numbers, I, functions and the operations on them), cleared by a
 * transpose or an inner product <A, B> (tr(A^T B)) at any depth. */
START_TEST(no_transpose_flag) {
  static const char *none[] = {
      "x",       "3",     "A B + C", "tanh(A x) .* y", "inv(A + I) B",
      "tr(A B)", "sum(x)"};
  static const char *some[] = {"x^T",           "A B^T + C", "tanh(A^T x) .* y",
                               "inv(A' + I) B", "<A, B>",    "sum(x + y^T)",
                               "tr(X^-T A)"};
  for (size_t i = 0; i < sizeof none / sizeof *none; i++)
    ck_assert_msg(tu_parse(none[i])->flags & EF_NO_TRANS, "%s", none[i]);
  for (size_t i = 0; i < sizeof some / sizeof *some; i++)
    ck_assert_msg(!(tu_parse(some[i])->flags & EF_NO_TRANS), "%s", some[i]);
}
END_TEST

/* blocks.h: a block given back is handed out again (but under
 * AddressSanitizer, which must see every free), whole: all its bytes
 * writable. */
START_TEST(blocks_reused) {
  for (int c = 0; c < MD_NBLOCK; c++) {
    unsigned char *a = md_block_get(c);
    memset(a, 0xa5, md_block_size(c));
    md_block_put(c, a);
    unsigned char *b = md_block_get(c);
    memset(b, 0x5a, md_block_size(c));
    if (md_block_cache_on())
      ck_assert_ptr_eq(a, b);
    /* more than a thread keeps: the rest go to free */
    void *v[MD_BLOCK_KEEP + 8];
    for (size_t i = 0; i < MD_BLOCK_KEEP + 8; i++)
      v[i] = md_block_get(c);
    for (size_t i = 0; i < MD_BLOCK_KEEP + 8; i++)
      md_block_put(c, v[i]);
    md_block_put(c, b);
    md_block_put(c, NULL);
  }
}
END_TEST

/* Lists and maps that start in a block and grow past it keep what they
 * hold; a block a thread keeps is freed at its exit (a leak under
 * valgrind or LeakSanitizer otherwise). */
static void *fill(void *arg) {
  expr **x = arg;
  md_nodes a = {0};
  md_idmap m;
  md_idmap_init(&m);
  for (uintptr_t i = 0; i < 100; i++) {
    md_nodes_push(&a, x[i]);
    md_idmap_put(&m, x[i], i + 1);
    if (i == 5) { /* one of each given back while small */
      md_nodes b = {0};
      md_nodes_push(&b, x[0]);
      md_nodes_clear(&b);
      md_idmap n;
      md_idmap_init(&n);
      md_idmap_put(&n, x[0], 1);
      md_idmap_clear(&n);
    }
  }
  bool ok = a.n == 100;
  for (uintptr_t i = 0; i < 100; i++)
    ok = ok && a.v[i] == x[i] && md_idmap_get(&m, x[i]) == i + 1;
  md_nodes_clear(&a);
  md_idmap_clear(&m);
  ok = ok && a.n == 0 && a.v == NULL;
  return ok ? arg : NULL;
}

START_TEST(blocks_by_thread) {
  expr *x[100];
  for (int i = 0; i < 100; i++) {
    char name[16];
    snprintf(name, sizeof name, "x%d", i);
    x[i] = expr_sym(tu_ctx, name);
  }
  ck_assert_ptr_eq(fill(x), x);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, fill, x), 0);
  void *r;
  ck_assert_int_eq(pthread_join(t, &r), 0);
  ck_assert_ptr_eq(r, x);
}
END_TEST

/* arena.h's scratch arrays: in the caller's buffer while they fit, on
 * the heap past it, their contents kept as they grow out of it. */
START_TEST(scratch_arrays) {
  int small[4];
  ck_assert_ptr_eq(scratch_array(small, 4, 0, sizeof(int)), small);
  ck_assert_ptr_eq(scratch_array(small, 4, 4, sizeof(int)), small);
  int *big = scratch_array(small, 4, 5, sizeof(int));
  ck_assert_ptr_ne(big, small);
  big[4] = 1;
  scratch_free(big, small);
  int *v = small;
  size_t cap = 4;
  for (int i = 0; i < 100; i++) {
    if ((size_t)i == cap)
      scratch_grow((void **)&v, small, &cap, sizeof *v);
    v[i] = i * i;
  }
  ck_assert_uint_eq(cap, 128);
  ck_assert_ptr_ne(v, small);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(v[i], i * i);
  scratch_free(v, small);
  scratch_free(small, small); /* (nothing to free) */
}
END_TEST

static Suite *expr_suite(void) {
  Suite *s = suite_create("expr");
  TCase *tc = tu_tcase(s, "scratch");
  tcase_add_test(tc, restore_removes_the_line);
  tcase_add_test(tc, restore_after_the_table_grew);
  tcase_add_test(tc, pinned_lines_stay);
  tcase_add_test(tc, comparisons_forgotten);
  tcase_add_test(tc, numbers_released);
  tcase_add_test(tc, budget_by_the_line);
  tcase_add_test(tc, long_sums_stay_whole);
  tcase_add_test(tc, long_hadamard_products_stay_whole);
  tcase_add_test(tc, long_products_stay_whole);
  tcase_add_test(tc, functions_by_name);
  tcase_add_test(tc, no_transpose_flag);
  tcase_add_test(tc, blocks_reused);
  tcase_add_test(tc, blocks_by_thread);
  tcase_add_test(tc, scratch_arrays);
  return s;
}

int main(void) {
  return tu_run(expr_suite());
}
