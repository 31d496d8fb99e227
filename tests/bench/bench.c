/*
 * bench.c - how the pipeline scales: families of expressions of growing
 * size, each stage timed per input node (SPEC 8).
 *
 *   bench [--max-nodes N] [--budget SEC] [--min-time SEC]
 *         [--mem-limit MIB] [--family NAME] [--out FILE]
 *       runs every family at about 100, 300, 1000, ... N DAG nodes and
 *       writes a Markdown table to stdout (and to FILE);
 *   bench --exprs FILE [--min-time SEC]
 *       times the whole in-process pipeline on each line of FILE,
 *       "WRT <TAB> DECLS <TAB> EXPR", and writes one line per expression:
 *       "ok <TAB> median_s <TAB> min_s <TAB> reps <TAB> nodes <TAB> result"
 *       (for the SymPy comparison in run.py);
 *   bench --gen FAMILY --max-nodes N
 *       writes the line of --exprs for FAMILY at about N nodes (run.py
 *       counts its instructions under valgrind).
 *
 * Each (family, size) runs in a forked child, so that its peak memory is
 * its own (wait4's ru_maxrss) and a run that exceeds the time budget can
 * be killed without losing the others.  Every repetition uses a fresh
 * context: nothing is interned or memoised from the one before.
 */
/* wait4() is BSD, not POSIX; mallopt() is glibc's */
#define _DEFAULT_SOURCE

#include "arena.h"
#include "deep.h"
#include "diag.h"
#include "diff.h"
#include "expr.h"
#include "parse.h"
#include "print_text.h"
#include "rules.h"
#include "share.h"
#include "shape.h"
#include "simplify.h"
#include "strbuf.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Wall time: CLOCK_MONOTONIC is read in the vDSO (25 ns here), while
 * CLOCK_PROCESS_CPUTIME_ID is a system call (2.5 us here), which would
 * show up in the time of small expressions. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the families ---- */

typedef struct family {
  const char *name;
  const char *what; /* for the table's legend */
  const char *wrt;
  const char *decls; /* for -D, or NULL */
  void (*gen)(strbuf *b, size_t k);
} family;

/* tr(A1 A2 ... Ak X) */
static void gen_product(strbuf *b, size_t k) {
  sb_puts(b, "tr(");
  for (size_t i = 1; i <= k; i++)
    sb_printf(b, "A%zu ", i);
  sb_puts(b, "X)");
}

/* tr((A1 + X) (A2 + X) ... (Ak + X)): every factor depends on X */
static void gen_chain(strbuf *b, size_t k) {
  sb_puts(b, "tr(");
  for (size_t i = 1; i <= k; i++)
    sb_printf(b, "%s(A%zu + X)", i > 1 ? " " : "", i);
  sb_putc(b, ')');
}

/* ||W_L relu(... relu(W_1 x)) - y||^2 */
static void gen_network(strbuf *b, size_t k) {
  sb_puts(b, "||");
  for (size_t i = k; i >= 2; i--)
    sb_printf(b, "W%zu relu(", i);
  sb_puts(b, "W1 x");
  for (size_t i = k; i >= 2; i--)
    sb_putc(b, ')');
  sb_puts(b, " - y||^2");
}

/* A batch of K samples through one 3-layer network:
 * sum_j ||W3 relu(W2 relu(W1 x_j)) - y_j||^2 */
static void gen_batch(strbuf *b, size_t k) {
  for (size_t j = 1; j <= k; j++)
    sb_printf(b, "%s||W3 relu(W2 relu(W1 x%zu)) - y%zu||^2", j > 1 ? " + " : "",
              j, j);
}

/* tr(A1 X) + tr(A2 X^T B2 X) + tr(A3 X) + ... */
static void gen_traces(strbuf *b, size_t k) {
  for (size_t i = 1; i <= k; i++) {
    if (i > 1)
      sb_puts(b, " + ");
    if (i % 2)
      sb_printf(b, "tr(A%zu X)", i);
    else
      sb_printf(b, "tr(A%zu X^T B%zu X)", i, i);
  }
}

/* tr(inv(A1 + inv(A2 + ... inv(Ak + X)))) */
static void gen_inverse(strbuf *b, size_t k) {
  sb_puts(b, "tr(");
  for (size_t i = 1; i <= k; i++)
    sb_printf(b, "inv(A%zu + ", i);
  sb_putc(b, 'X');
  for (size_t i = 1; i <= k; i++)
    sb_putc(b, ')');
  sb_putc(b, ')');
}

/* K nested inverses of depth 4, summed:
 * tr(inv(A1_1 + inv(A1_2 + inv(A1_3 + inv(A1_4 + X))))) + ... */
static void gen_inverse_sum(strbuf *b, size_t k) {
  for (size_t j = 1; j <= k; j++) {
    sb_puts(b, j > 1 ? " + tr(" : "tr(");
    for (size_t i = 1; i <= 4; i++)
      sb_printf(b, "inv(A%zu_%zu + ", j, i);
    sb_puts(b, "X))))");
    sb_putc(b, ')');
  }
}

/* sum(tk) where t1 = x, t2 = t1 + sin(t1), ...: each sum is the one
 * before and a term more, k^2 / 2 operands once the sums are flat */
static void gen_sin_chain(strbuf *b, size_t k) {
  sb_printf(b, "sum(t%zu) where t1 = x", k);
  for (size_t i = 2; i <= k; i++)
    sb_printf(b, ", t%zu = t%zu + sin(t%zu)", i, i - 1, i - 1);
}

static const family families[] = {
    {"product", "tr(A1 A2 ... Ak X), d/dX", "X", NULL, gen_product},
    {"chain", "tr((A1 + X) (A2 + X) ... (Ak + X)), d/dX", "X", NULL, gen_chain},
    {"network", "\\|\\|W_k relu(... relu(W_1 x)) - y\\|\\|^2, d/dW1", "W1",
     NULL, gen_network},
    {"batch", "k samples through a 3-layer relu network, d/dW1", "W1", NULL,
     gen_batch},
    {"traces", "tr(A1 X) + tr(A2 X^T B2 X) + ... (k terms), d/dX", "X", NULL,
     gen_traces},
    {"inverse", "tr(inv(A1 + inv(A2 + ... inv(Ak + X)))), d/dX", "X", NULL,
     gen_inverse},
    {"inverse-sum", "k nested inverses of depth 4 summed, d/dX", "X", NULL,
     gen_inverse_sum},
    {"sin-chain", "sum(t_k) where t_i = t_(i-1) + sin(t_(i-1)), d/dx", "x",
     NULL, gen_sin_chain},
};
#define NFAMILIES (sizeof families / sizeof families[0])

/* ---- one run of the pipeline ---- */

enum { ST_SETUP, ST_PARSE, ST_SHAPES, ST_DIFF, ST_SIMPLIFY, ST_PRINT, NST };
static const char *const stage_names[NST] = {"setup", "parse",    "shapes",
                                             "diff",  "simplify", "print"};

typedef struct run {
  double t[NST];
  size_t in_nodes, raw_nodes, out_nodes, out_chars;
  size_t arena_bytes; /* used by this expression, rules excluded */
  long faults;        /* minor page faults from parse to print */
  char *text;         /* the result, when asked for */
  char error[512];
} run;

/* Distinct nodes reachable from E. */
static size_t dag_size(md_ctx *ctx, const expr *e) {
  size_t n = md_ctx_nnodes(ctx), count = 0, top = 0, cap = 64;
  uint8_t *seen = xcalloc(n, 1);
  const expr **stack = xmalloc(cap * sizeof *stack);
  stack[top++] = e;
  seen[e->id] = 1;
  while (top) {
    const expr *x = stack[--top];
    count++;
    for (size_t i = 0; i < x->nkids; i++) {
      const expr *c = x->kid[i];
      if (seen[c->id])
        continue;
      seen[c->id] = 1;
      if (top == cap)
        stack = xreallocarray(stack, cap *= 2, sizeof *stack);
      stack[top++] = c;
    }
  }
  free(stack);
  free(seen);
  return count;
}

static void run_error(run *r, md_errors *err, const char *what) {
  if (err->n)
    snprintf(r->error, sizeof r->error, "%s: %s", what, err->v[0].msg);
  else
    snprintf(r->error, sizeof r->error, "%s failed", what);
  for (char *p = r->error; *p; p++)
    if (*p == '\n' || *p == '\t' || *p == '|')
      *p = ' ';
}

/* Tells the parent (PROGRESS >= 0) which stage starts, so that a child
 * killed by the budget says where it was. */
static void progress(int fd, int stage) {
  if (fd < 0)
    return;
  char line[64];
  int n = snprintf(line, sizeof line, "stage %s\n", stage_names[stage]);
  if (write(fd, line, (size_t)n) < 0)
    _exit(3);
}

/* Parses, infers, differentiates by WRT, simplifies and prints TEXT in a
 * fresh context.  False with R->error set on an error. */
static bool pipeline(const char *wrt, const char *decls, const char *text,
                     bool keep_text, bool count, int fd, run *r) {
  *r = (run){0};
  md_errors err;
  md_errors_init(&err);
  md_env env;
  md_env_init(&env);
  md_rules rules;
  md_rules_init(&rules);
  md_shapes *sh = NULL;
  bool ok = false;

  double t0 = now();
  progress(fd, ST_SETUP);
  md_ctx *ctx = md_ctx_new();
  if (!md_rules_load_builtin(&rules, ctx, &err)) {
    run_error(r, &err, "rules");
    goto out;
  }
  if (decls && *decls) {
    md_source dsrc = {"<-D>", decls, strlen(decls), 1};
    md_parsed dp;
    if (!md_parse(ctx, &dsrc, MD_PARSE_DECL, &dp, &err)) {
      run_error(r, &err, "declarations");
      goto out;
    }
    for (size_t j = 0; j < dp.n; j++)
      for (size_t k = 0; k < dp.stmts[j].ndecls; k++)
        md_env_add(&env, &dp.stmts[j].decls[k]);
    md_parsed_clear(&dp);
  }
  size_t arena0 = md_ctx_arena(ctx)->used;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t1 = now();
  r->t[ST_SETUP] = t1 - t0;

  progress(fd, ST_PARSE);
  md_source src = {"<bench>", text, strlen(text), 1};
  md_parsed p;
  if (!md_parse(ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
    run_error(r, &err, "parse");
    goto out;
  }
  expr *e = p.n == 1 && p.stmts[0].kind == ST_EXPR ? p.stmts[0].lhs : NULL;
  md_source wsrc = {"<--wrt>", wrt, strlen(wrt), 1};
  md_parsed wp;
  expr *x = NULL;
  if (e && md_parse(ctx, &wsrc, MD_PARSE_PROGRAM, &wp, &err)) {
    x = wp.n == 1 ? wp.stmts[0].lhs : NULL;
    md_parsed_clear(&wp);
  }
  double t2 = now();
  r->t[ST_PARSE] = t2 - t1;
  if (!e || !x) {
    md_parsed_clear(&p);
    run_error(r, &err, "parse");
    goto out;
  }

  progress(fd, ST_SHAPES);
  sh = md_shapes_new(ctx, &env);
  bool shaped = md_shape_infer(sh, e, &p, &src, &err, NULL) &&
                md_shape_infer(sh, x, NULL, NULL, &err, NULL);
  md_parsed_clear(&p);
  double t3 = now();
  r->t[ST_SHAPES] = t3 - t2;
  if (!shaped) {
    run_error(r, &err, "shapes");
    goto out;
  }

  progress(fd, ST_DIFF);
  md_diff D = {.ctx = ctx,
               .rules = &rules,
               .shapes = sh,
               .env = &env,
               .symmetric = MD_SYM_FROBENIUS,
               .src = &src,
               .locs = NULL,
               .err = &err};
  expr *d = md_derivative(&D, e, x);
  md_diff_clear(&D);
  if (d)
    md_shape_derive(sh, d);
  double t4 = now();
  r->t[ST_DIFF] = t4 - t3;
  if (!d) {
    run_error(r, &err, "diff");
    goto out;
  }

  progress(fd, ST_SIMPLIFY);
  expr *s = md_simplify_with(ctx, sh, &rules, d); /* as matdiff does */
  double t5 = now();
  r->t[ST_SIMPLIFY] = t5 - t4;
  if (!s) {
    char why[96];
    md_ctx_limit_text(ctx, why, sizeof why);
    snprintf(r->error, sizeof r->error, "simplify: the result is %s", why);
    goto out;
  }

  progress(fd, ST_PRINT);
  strbuf b;
  sb_init(&b);
  md_print_text_shared(&b, ctx, sh, s); /* as matdiff prints it */
  double t6 = now();
  r->t[ST_PRINT] = t6 - t5;
  getrusage(RUSAGE_SELF, &ru1);
  r->faults = ru1.ru_minflt - ru0.ru_minflt;
  r->out_chars = b.len;
  if (keep_text)
    r->text = sb_take(&b);
  sb_clear(&b);

  r->arena_bytes = md_ctx_arena(ctx)->used - arena0;
  if (count) {
    r->in_nodes = dag_size(ctx, e);
    r->raw_nodes = dag_size(ctx, d);
    r->out_nodes = dag_size(ctx, s);
  }
  ok = true;
out:
  md_shapes_free(sh);
  md_rules_clear(&rules);
  md_env_clear(&env);
  md_errors_clear(&err);
  md_ctx_free(ctx);
  return ok;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_REPS 1001

/* Runs the pipeline at least 3 times (once if one run takes longer than
 * MIN_TIME) and until MIN_TIME has passed; OUT gets the first run's
 * counts and the median time of each stage. */
static bool timed(const char *wrt, const char *decls, const char *text,
                  double min_time, bool keep_text, int fd, run *out,
                  double *total_min, size_t *nreps) {
  static double times[NST][MAX_REPS], totals[MAX_REPS];
  size_t n = 0;
  double start = now();
  while (n < MAX_REPS) {
    run r;
    if (!pipeline(wrt, decls, text, keep_text && n == 0, n == 0, fd, &r)) {
      *out = r;
      return false;
    }
    fd = -1; /* stages reported once */
    if (n == 0)
      *out = r;
    totals[n] = 0;
    for (int s = 0; s < NST; s++) {
      times[s][n] = r.t[s];
      if (s != ST_SETUP)
        totals[n] += r.t[s];
    }
    n++;
    double spent = now() - start;
    if (spent >= min_time && (n >= 3 || spent >= 3 * min_time))
      break;
  }
  for (int s = 0; s < NST; s++)
    out->t[s] = median(times[s], n);
  double m = totals[0];
  for (size_t i = 1; i < n; i++)
    m = totals[i] < m ? totals[i] : m;
  *total_min = m;
  *nreps = n;
  return true;
}

/* Keeps freed memory in the process, as a long-running caller's heap
 * would: glibc otherwise gives it back after each repetition, and the next
 * one pays the page faults again (70 us for tr(B X) here, against 4 us of
 * work).  Not in the parent of the scaling runs, whose resident pages
 * every child would count. */
static void keep_heap(void) {
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 32 << 20); /* the largest glibc takes */
}

/* ---- the scaling table ---- */

typedef struct result {
  const family *f;
  size_t k, in_nodes, raw_nodes, out_nodes, out_chars, arena_bytes;
  long faults; /* in the first run, the one that touches fresh memory */
  double t[NST];
  long rss_kib; /* peak RSS of the child, less that of an idle child */
  size_t reps;
  char status[600]; /* "" when it ran */
} result;

/* Nodes of family F at K, counted in the parent (parse only). */
static size_t family_nodes(const family *f, size_t k) {
  strbuf b;
  sb_init(&b);
  f->gen(&b, k);
  md_ctx *ctx = md_ctx_new();
  md_errors err;
  md_errors_init(&err);
  md_source src = {"<bench>", b.s, b.len, 1};
  md_parsed p;
  size_t n = 0;
  if (md_parse(ctx, &src, MD_PARSE_PROGRAM, &p, &err)) {
    if (p.n == 1 && p.stmts[0].lhs)
      n = dag_size(ctx, p.stmts[0].lhs);
    md_parsed_clear(&p);
  }
  md_errors_clear(&err);
  md_ctx_free(ctx);
  sb_clear(&b);
  return n;
}

/* K so that family F has about TARGET nodes (nodes are affine in K). */
static size_t family_k(const family *f, size_t target) {
  double n4 = (double)family_nodes(f, 4), n8 = (double)family_nodes(f, 8);
  double per = (n8 - n4) / 4, base = n4 - 4 * per;
  double k = ((double)target - base) / per;
  return k < 1 ? 1 : (size_t)(k + 0.5);
}

/* timed() for measure()'s child, on a stack as deep as the expression
 * (deep.h), as the CLI runs: on the process's own 8 MB, a network of
 * 3 331 layers crashed in simplify and 9 999 nested inverses in diff. */
typedef struct child_job {
  const family *f;
  const strbuf *text;
  double min_time;
  int fd;
  run *r;
  double *tmin;
  size_t *reps;
} child_job;

static int child_timed(void *arg) {
  child_job *j = arg;
  return timed(j->f->wrt, j->f->decls, j->text->s, j->min_time, false, j->fd,
               j->r, j->tmin, j->reps);
}

static long idle_rss;
static rlim_t mem_limit_mib = 4096; /* address space of one child */

/* Runs family F at K in a child with BUDGET seconds. */
static void measure(const family *f, size_t k, double budget, double min_time,
                    result *res) {
  *res = (result){.f = f, .k = k};
  int fds[2];
  if (pipe(fds) != 0) {
    perror("bench: pipe");
    exit(2);
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench: fork");
    exit(2);
  }
  if (pid == 0) {
    close(fds[0]);
    keep_heap();
    strbuf b;
    sb_init(&b);
    f->gen(&b, k); /* here, so that the parent stays small */
    alarm((unsigned)ceil(budget));
    if (mem_limit_mib) {
      struct rlimit rl = {mem_limit_mib << 20, mem_limit_mib << 20};
      setrlimit(RLIMIT_AS, &rl);
    }
    run r;
    double tmin;
    size_t reps;
    FILE *o = fdopen(fds[1], "w");
    child_job j = {f, &b, min_time, fds[1], &r, &tmin, &reps};
    if (md_deep(child_timed, &j, b.len)) {
      fprintf(o, "ok %zu %zu %zu %zu %zu %zu %ld", r.in_nodes, r.raw_nodes,
              r.out_nodes, r.out_chars, r.arena_bytes, reps, r.faults);
      for (int s = 0; s < NST; s++)
        fprintf(o, " %.9g", r.t[s]);
      fputc('\n', o);
    } else {
      fprintf(o, "error %s\n", r.error);
    }
    fclose(o);
    _exit(0);
  }
  close(fds[1]);
  FILE *in = fdopen(fds[0], "r");
  char line[1024], last_stage[32] = "start";
  bool done = false;
  while (fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = '\0';
    if (sscanf(line, "stage %31s", last_stage) == 1)
      continue;
    if (strncmp(line, "ok ", 3) == 0) {
      result *q = res;
      int n = sscanf(line + 3,
                     "%zu %zu %zu %zu %zu %zu %ld %lf %lf %lf %lf %lf %lf",
                     &q->in_nodes, &q->raw_nodes, &q->out_nodes, &q->out_chars,
                     &q->arena_bytes, &q->reps, &q->faults, &q->t[0], &q->t[1],
                     &q->t[2], &q->t[3], &q->t[4], &q->t[5]);
      done = n == 13;
    } else if (strncmp(line, "error ", 6) == 0) {
      snprintf(res->status, sizeof res->status, "%.500s", line + 6);
      done = true;
    }
  }
  fclose(in);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
    ;
  res->rss_kib = ru.ru_maxrss - idle_rss;
  if (!done) {
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
      snprintf(res->status, sizeof res->status, "over the %.0f s budget in %s",
               budget, last_stage);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
      snprintf(res->status, sizeof res->status,
               "out of memory (over %zu MiB) in %s", (size_t)mem_limit_mib,
               last_stage);
    else
      snprintf(res->status, sizeof res->status, "crashed in %s (status %d)",
               last_stage, status);
  }
}

static void measure_idle(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  int status;
  struct rusage ru;
  if (pid > 0 && wait4(pid, &status, 0, &ru) == pid)
    idle_rss = ru.ru_maxrss;
}

static double ns_per_node(const result *r, int s) {
  return 1e9 * r->t[s] / (double)r->in_nodes;
}

static double total(const result *r) {
  double t = 0;
  for (int s = ST_PARSE; s < NST; s++)
    t += r->t[s];
  return t;
}

static void table(FILE *o, const result *v, size_t n) {
  fprintf(o, "| family | k | nodes in | parse | shapes | diff | simplify "
             "| print | total ns/node | total ms | result nodes | result "
             "chars | arena B/node | peak RSS KiB | page faults/node |\n");
  fprintf(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
             "\n");
  for (size_t i = 0; i < n; i++) {
    const result *r = &v[i];
    if (r->status[0]) {
      fprintf(o, "| %s | %zu | %s | %s ||||||||||||\n", r->f->name, r->k, "",
              r->status);
      continue;
    }
    fprintf(o, "| %s | %zu | %zu |", r->f->name, r->k, r->in_nodes);
    for (int s = ST_PARSE; s < NST; s++)
      fprintf(o, " %.0f |", ns_per_node(r, s));
    fprintf(o, " %.0f | %.3f | %zu | %zu | %.0f | %ld | %.2f |\n",
            1e9 * total(r) / (double)r->in_nodes, 1e3 * total(r), r->out_nodes,
            r->out_chars, (double)r->arena_bytes / (double)r->in_nodes,
            r->rss_kib, (double)r->faults / (double)r->in_nodes);
  }
}

/* Per family: how far the per-node figures move over the sizes run. */
static void summary(FILE *o, const result *v, size_t n) {
  fprintf(o, "\n| family | nodes | ns/node (min-max) | spread | result nodes "
             "/ input node | result chars / input node | arena B / node | "
             "peak RSS KiB |\n");
  fprintf(o, "|---|---|---|--:|---|---|---|---|\n");
  for (size_t i = 0; i < n;) {
    size_t j = i;
    double tmin = INFINITY, tmax = 0, rmin = INFINITY, rmax = 0;
    double cmin = INFINITY, cmax = 0, amin = INFINITY, amax = 0;
    size_t nmin = SIZE_MAX, nmax = 0;
    long rss_lo = 0, rss_hi = 0;
    bool any = false;
    for (; j < n && v[j].f == v[i].f; j++) {
      const result *r = &v[j];
      if (r->status[0])
        continue;
      double in = (double)r->in_nodes, t = total(r) / in * 1e9;
      tmin = fmin(tmin, t), tmax = fmax(tmax, t);
      rmin = fmin(rmin, (double)r->out_nodes / in);
      rmax = fmax(rmax, (double)r->out_nodes / in);
      cmin = fmin(cmin, (double)r->out_chars / in);
      cmax = fmax(cmax, (double)r->out_chars / in);
      amin = fmin(amin, (double)r->arena_bytes / in);
      amax = fmax(amax, (double)r->arena_bytes / in);
      if (!any)
        rss_lo = r->rss_kib;
      rss_hi = r->rss_kib;
      nmin = r->in_nodes < nmin ? r->in_nodes : nmin;
      nmax = r->in_nodes > nmax ? r->in_nodes : nmax;
      any = true;
    }
    if (any)
      fprintf(o,
              "| %s | %zu-%zu | %.0f-%.0f | %.2fx | %.2f-%.2f | %.1f-%.1f "
              "| %.0f-%.0f | %ld-%ld |\n",
              v[i].f->name, nmin, nmax, tmin, tmax, tmax / tmin, rmin, rmax,
              cmin, cmax, amin, amax, rss_lo, rss_hi);
    i = j;
  }
}

static int scaling(size_t max_nodes, double budget, double min_time,
                   const char *only, const char *out_path) {
  static const size_t targets[] = {100,   300,   1000,   3000,
                                   10000, 30000, 100000, 300000};
  result *v = xcalloc(NFAMILIES * 8, sizeof *v);
  size_t n = 0;
  measure_idle();
  for (size_t fi = 0; fi < NFAMILIES; fi++) {
    const family *f = &families[fi];
    if (only && strcmp(only, f->name) != 0)
      continue;
    for (size_t ti = 0; ti < 8 && targets[ti] <= max_nodes; ti++) {
      size_t k = family_k(f, targets[ti]);
      measure(f, k, budget, min_time, &v[n]);
      fprintf(stderr, "bench: %s k=%zu nodes=%zu: %s%.3f s\n", f->name, k,
              v[n].in_nodes, v[n].status, total(&v[n]));
      if (v[n++].status[0])
        break; /* larger sizes would fail too */
    }
  }
  FILE *outs[2] = {stdout, out_path ? fopen(out_path, "w") : NULL};
  if (out_path && !outs[1]) {
    fprintf(stderr, "bench: cannot write %s: %s\n", out_path, strerror(errno));
    return 2;
  }
  for (int i = 0; i < 2; i++) {
    FILE *o = outs[i];
    if (!o)
      continue;
    fprintf(o,
            "Stage columns: median ns per input DAG node (wall time); 'total' "
            "is parse + shapes + diff + simplify + print (rule loading "
            "excluded); 'result' is the simplified derivative, as DAG "
            "nodes and as printed text; 'arena' the bytes of nodes made "
            "per input node; 'peak RSS' the child's maximum resident "
            "set less that of an idle child; 'page faults' those of the "
            "first run, which touches fresh memory.\n\n");
    for (size_t fi = 0; fi < NFAMILIES; fi++)
      fprintf(o, "%s- `%s`: %s\n", fi ? "" : "Families:\n", families[fi].name,
              families[fi].what);
    fputc('\n', o);
    table(o, v, n);
    summary(o, v, n);
    if (o != stdout)
      fclose(o);
  }
  free(v);
  return 0;
}

/* ---- in-process timing of given expressions ---- */

static int exprs(const char *path, double min_time) {
  keep_heap();
  FILE *in = fopen(path, "r");
  if (!in) {
    fprintf(stderr, "bench: cannot read %s: %s\n", path, strerror(errno));
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, in)) >= 0) {
    line[strcspn(line, "\n")] = '\0';
    char *wrt = line, *decls = strchr(wrt, '\t'), *text;
    if (!decls || !(text = strchr(decls + 1, '\t'))) {
      printf("error\tmalformed line\n");
      continue;
    }
    *decls++ = '\0';
    *text++ = '\0';
    run r;
    double tmin;
    size_t reps;
    if (timed(wrt, decls, text, min_time, true, -1, &r, &tmin, &reps)) {
      double t = 0;
      for (int s = ST_PARSE; s < NST; s++)
        t += r.t[s];
      printf("ok\t%.9g\t%.9g\t%zu\t%zu\t%s\n", t, tmin, reps, r.in_nodes,
             r.text);
      free(r.text);
    } else {
      printf("error\t%s\n", r.error);
    }
    fflush(stdout);
  }
  free(line);
  fclose(in);
  return 0;
}

/* The line of --exprs for family NAME at about NODES nodes. */
static int gen(const char *name, size_t nodes) {
  for (size_t fi = 0; fi < NFAMILIES; fi++) {
    const family *f = &families[fi];
    if (strcmp(f->name, name) != 0)
      continue;
    strbuf b;
    sb_init(&b);
    f->gen(&b, family_k(f, nodes));
    printf("%s\t%s\t%s\n", f->wrt, f->decls ? f->decls : "", b.s);
    sb_clear(&b);
    return 0;
  }
  fprintf(stderr, "bench: no family %s\n", name);
  return 2;
}

static void usage(FILE *o) {
  fputs("usage: bench [--max-nodes N] [--budget SEC] [--min-time SEC]\n"
        "             [--mem-limit MIB] [--family NAME] [--out FILE]\n"
        "       bench --exprs FILE [--min-time SEC]\n"
        "       bench --gen FAMILY --max-nodes N\n",
        o);
}

int main(int argc, char **argv) {
  size_t max_nodes = 100000;
  double budget = 30, min_time = 0.2;
  const char *only = NULL, *out = NULL, *exprs_path = NULL;
  const char *gen_family = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (!val) {
      usage(stderr);
      return 2;
    }
    i++;
    if (strcmp(a, "--max-nodes") == 0)
      max_nodes = strtoul(val, NULL, 10);
    else if (strcmp(a, "--budget") == 0)
      budget = strtod(val, NULL);
    else if (strcmp(a, "--min-time") == 0)
      min_time = strtod(val, NULL);
    else if (strcmp(a, "--mem-limit") == 0)
      mem_limit_mib = strtoul(val, NULL, 10);
    else if (strcmp(a, "--family") == 0)
      only = val;
    else if (strcmp(a, "--out") == 0)
      out = val;
    else if (strcmp(a, "--exprs") == 0)
      exprs_path = val;
    else if (strcmp(a, "--gen") == 0)
      gen_family = val;
    else {
      usage(stderr);
      return 2;
    }
  }
  if (gen_family)
    return gen(gen_family, max_nodes);
  if (exprs_path)
    return exprs(exprs_path, min_time);
  return scaling(max_nodes, budget, min_time, only, out);
}
