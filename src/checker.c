/* checker.c - identity files and their verdicts; see checker.h. */
#include "checker.h"

#include "deep.h"
#include "eval.h"
#include "input.h"
#include "parse.h"
#include "rules.h"
#include "shape.h"
#include "simplify.h"
#include "strbuf.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum verdict_kind {
  V_PROVED,
  V_EXACT,
  V_NUMERIC,
  V_FALSE,
  V_ERROR,
} verdict_kind;

typedef struct verdict {
  verdict_kind kind;
  double err;    /* V_NUMERIC: the largest relative error seen */
  bool ne;       /* a != line */
  strbuf detail; /* lines shown under the verdict */
  char *located; /* an error with file:line:col and a caret */
  md_error at;   /* that error, its message owned (for md_check_each) */
} verdict;

/* Identities longer than this are cut in verdict lines. */
enum { SHOW_MAX = 160 };

typedef struct checker {
  bool tap;
  uint64_t seed;  /* --seed: mixed into each identity's own seed */
  bool show_seed; /* a counterexample names it (not in --verify) */
  FILE *out;
  size_t n, passed, failed;
  uint64_t spent;  /* operations on entries of the evaluations so far */
  md_check_fn *fn; /* md_check_each: each verdict, as well */
  void *arg;
} checker;

/* ---- comparing two values ---- */

typedef struct comparison {
  bool equal, exact;
  double err;           /* the largest relative difference */
  uint32_t i, j;        /* the first entry that differs */
  md_num *left, *right; /* its two values (in the values compared) */
} comparison;

/* Compares A and B entry by entry (a 1×1 side broadcasts: it is a
 * number standing for a constant matrix). */
static void compare(const md_val *a, const md_val *b, comparison *cmp) {
  bool sa = a->r == 1 && a->c == 1, sb = b->r == 1 && b->c == 1;
  const md_val *sh = sa ? b : a;
  *cmp = (comparison){.equal = true, .exact = true};
  if (!sa && !sb && (a->r != b->r || a->c != b->c)) {
    cmp->equal = false;
    return;
  }
  double m = 0;
  for (uint32_t i = 0; i < sh->r; i++)
    for (uint32_t j = 0; j < sh->c; j++) {
      m = fmax(m, fabs(md_num_get_d(md_val_at(a, sa ? 0 : i, sa ? 0 : j, 0))));
      m = fmax(m, fabs(md_num_get_d(md_val_at(b, sb ? 0 : i, sb ? 0 : j, 0))));
    }
  for (uint32_t i = 0; i < sh->r; i++)
    for (uint32_t j = 0; j < sh->c; j++) {
      md_num *x = md_val_at(a, sa ? 0 : i, sa ? 0 : j, 0);
      md_num *y = md_val_at(b, sb ? 0 : i, sb ? 0 : j, 0);
      bool same;
      if (x->exact && y->exact) {
        same = fmpq_equal(x->q, y->q);
      } else {
        cmp->exact = false;
        double d = fabs(md_num_get_d(x) - md_num_get_d(y));
        /* relative to the largest entry, but never finer than 1e-9 in
         * absolute terms: a derivative that should be 0 comes out of
         * cancelling doubles as 1e-16, not 0 */
        d = d / fmax(m, 1.0);
        if (isnan(d))
          d = INFINITY;
        cmp->err = fmax(cmp->err, d);
        same = d <= MD_CHECK_TOL;
      }
      if (!same && cmp->equal) {
        cmp->equal = false;
        cmp->i = i;
        cmp->j = j;
        cmp->left = x;
        cmp->right = y;
      }
    }
}

/* How far the values VAL of SIDES at the point move when it moves by
 * MD_CHECK_PERTURB, relative to their largest entry (as compare weighs a
 * difference), the larger of the two sides'; -1 when they cannot be
 * computed there (a domain edge: no estimate). */
static double sensitivity(md_eval *ev, double rel, expr *const *sides,
                          const md_shape *s, const md_val *val) {
  md_val moved[2];
  if (md_eval_perturbed(ev, rel, sides, s, 2, moved) != MD_OK)
    return -1;
  double m = 0, c = 0;
  for (int k = 0; k < 2; k++) {
    for (uint32_t i = 0; i < val[k].r; i++)
      for (uint32_t j = 0; j < val[k].c; j++) {
        double x = md_num_get_d(md_val_at(&val[k], i, j, 0));
        m = fmax(m, fabs(x));
        c = fmax(c, fabs(md_num_get_d(md_val_at(&moved[k], i, j, 0)) - x));
      }
    md_val_clear(&moved[k]);
  }
  c /= fmax(m, 1.0);
  return isnan(c) ? INFINITY : c;
}

/* Whether rounding may explain the difference CMP between the values VAL
 * (MD_CHECK_PERTURB); *MOVED: how far they moved. */
static bool within_rounding(md_eval *ev, expr *const *sides, const md_shape *s,
                            const md_val *val, const comparison *cmp,
                            double *moved) {
  double c = sensitivity(ev, MD_CHECK_PERTURB, sides, s, val);
  *moved = c;
  if (c < 0)
    return false;
  if (c > 0x1p-10 || c * 0x1p-17 >= cmp->err)
    return true;
  /* ... or the formula's own rounding: moved by MD_CHECK_NOISE, a stable
   * formula moves by that times its condition, an unstable one (terms of
   * 2^27 that cancel) by its rounding, whatever the move */
  double n = sensitivity(ev, MD_CHECK_NOISE, sides, s, val);
  return n >= 0 && 16 * n >= cmp->err;
}

/* "n = 3; entry (2, 1): left 7/2, right -3", then the value of every
 * symbol at the point, which the seed draws again. */
static void counterexample(const checker *C, md_eval *ev, const md_val *shape,
                           const comparison *cmp, strbuf *out) {
  char l[96], r[96];
  strbuf sizes;
  sb_init(&sizes);
  md_eval_format_sizes(ev, &sizes);
  sb_printf(out, "counterexample: %s%s", sizes.len ? sizes.s : "",
            sizes.len ? "; " : "");
  sb_clear(&sizes);
  if (!cmp->left) {
    sb_puts(out, "the sides have different sizes");
  } else {
    md_num_format(cmp->left, l, sizeof l);
    md_num_format(cmp->right, r, sizeof r);
    if (shape->r == 1 && shape->c == 1)
      sb_printf(out, "left %s, right %s", l, r);
    else
      sb_printf(out, "entry (%u, %u): left %s, right %s", cmp->i + 1,
                cmp->j + 1, l, r);
  }
  strbuf vals;
  sb_init(&vals);
  md_eval_format_values(ev, "  ", &vals);
  if (vals.len && C->show_seed)
    sb_printf(out, "\nvalues (drawn with --seed %llu):\n%s",
              (unsigned long long)C->seed, vals.s);
  else if (vals.len)
    sb_printf(out, "\nvalues:\n%s", vals.s);
  if (out->len && out->s[out->len - 1] == '\n')
    out->s[--out->len] = '\0';
  sb_clear(&vals);
}

/* ---- one identity ---- */

static bool is_number(md_shapes *sh, const expr *e, md_shape s) {
  return (e->flags & EF_CONST) && md_shape_is_scalar(sh, s);
}

/* Infers both sides in SH and makes their shapes one; false (and *SAME
 * false) when they cannot be, or after an error in ERR (*SAME true). */
static bool infer_sides(md_shapes *sh, const md_stmt *st, const md_parsed *p,
                        const md_source *src, md_errors *err, md_shape *s,
                        bool *same, char *diff, size_t size) {
  *same = true;
  if (!md_shape_infer(sh, st->lhs, p, src, err, &s[0]) ||
      !md_shape_infer(sh, st->rhs, p, src, err, &s[1]))
    return false;
  /* a number on one side stands for a constant matrix (SPEC 2, 4) */
  if (is_number(sh, st->lhs, s[0]) || is_number(sh, st->rhs, s[1]))
    return true;
  char a[128], b[128];
  md_shape_format(sh, s[0], a, sizeof a);
  md_shape_format(sh, s[1], b, sizeof b);
  if (md_shape_unify(sh, s[0], s[1]))
    return true;
  snprintf(diff, size, "the sides have different shapes: %s and %s", a, b);
  *same = false;
  return false;
}

/* Both sides simplify to the same node, with the simplification rules of
 * RULES (never with derivatives: those are for the numbers to judge; nor
 * when the identity is itself one of the rules, which would prove
 * itself). */
static bool proved(md_ctx *ctx, const md_env *env, const md_rules *rules,
                   const md_stmt *st) {
  if (md_rules_find_rewrite(rules, st->lhs, st->rhs))
    return false;
  if (st->lhs == st->rhs && st->kind == ST_EQ)
    return true; /* one node: equal however large (no simplifying needed) */
  md_idmap seen;
  md_idmap_init(&seen);
  bool deriv = expr_has_derivative(st->lhs, &seen) ||
               expr_has_derivative(st->rhs, &seen);
  md_idmap_clear(&seen);
  if (deriv)
    return false;
  md_shapes *sh = md_shapes_new(ctx, env);
  md_errors err;
  md_errors_init(&err);
  md_shape s[2];
  bool same, ok = infer_sides(sh, st, NULL, NULL, &err, s, &same, NULL, 0);
  bool eq = false;
  if (ok) {
    expr *l = md_simplify_with(ctx, sh, rules, st->lhs);
    expr *r = md_simplify_with(ctx, sh, rules, st->rhs);
    eq = l && l == r && !md_shapes_full(sh);
  }
  md_errors_clear(&err);
  md_shapes_free(sh);
  return eq;
}

static uint64_t text_hash(const char *s, size_t n) {
  uint64_t h = 14695981039346656037u;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211u;
  }
  return h;
}

/* An error with its place in the source, as the compiler-style text of
 * md_error_print without the "matdiff: " prefix. */
static char *located(const md_error *e) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  md_error_print(f, e);
  fclose(f);
  const char *pfx = "matdiff: ";
  if (strncmp(buf, pfx, strlen(pfx)) == 0)
    memmove(buf, buf + strlen(pfx), strlen(buf) - strlen(pfx) + 1);
  return buf;
}

/* V fails with the error E: its text for the report, and a copy for
 * md_check_each. */
static void set_located(verdict *v, const md_error *e) {
  v->located = located(e);
  size_t n = strlen(e->msg);
  v->at = *e;
  v->at.msg = memcpy(xmalloc(n + 1), e->msg, n + 1);
}

static void check_identity(checker *C, md_ctx *ctx, const md_env *env,
                           const md_rules *defs, const md_source *src,
                           const md_parsed *p, const md_stmt *given,
                           verdict *v) {
  v->ne = given->kind == ST_NE;
  md_errors err;
  md_errors_init(&err);
  /* functions defined in the language are evaluated by their bodies */
  md_stmt inlined = *given;
  const md_stmt *st = &inlined;
  inlined.lhs = md_rules_inline(defs, ctx, given->lhs);
  inlined.rhs = inlined.lhs ? md_rules_inline(defs, ctx, given->rhs) : NULL;
  if (!inlined.rhs) {
    v->kind = V_ERROR;
    char why[320];
    md_ctx_limit_text(ctx, why, sizeof why);
    sb_printf(&v->detail,
              "cannot evaluate: with the functions' bodies it is "
              "%s",
              why);
    return;
  }
  md_shapes *sh = md_shapes_new(ctx, env);
  md_shape s[2];
  bool same;
  char diff[300];
  if (!infer_sides(sh, st, p, src, &err, s, &same, diff, sizeof diff)) {
    if (same) {
      v->kind = V_ERROR;
      if (err.n)
        set_located(v, &err.v[0]);
    } else {
      v->kind = v->ne ? V_PROVED : V_FALSE;
      sb_puts(&v->detail, diff);
    }
    md_errors_clear(&err);
    md_shapes_free(sh);
    return;
  }
  md_errors_clear(&err);

  bool symbolic = proved(ctx, env, defs, st);
  expr *sides[2] = {st->lhs, st->rhs};
  md_eval *ev = md_eval_new(ctx, sh, sides, 2);
  /* MATDIFF_CHECK_WORK bounds the evaluations of the whole run, beside
   * each identity's budget (MD_EVAL_WORK): a fuzzer's 4 KB file of
   * identities that each spend their budget took seconds.  Unset, a file
   * of any length is checked to its end. */
  uint64_t total = md_knob("MATDIFF_CHECK_WORK", 1024, SIZE_MAX);
  if (total != SIZE_MAX)
    md_eval_cap(ev, total > C->spent ? total - C->spent : 0, total);
  md_rng rng;
  /* the identity's text makes the seed: the same line draws the same
   * points in any file, at any place; --seed N gives others (0: as
   * ever) */
  md_rng_seed(
      &rng, text_hash(src->text + st->loc.begin, st->loc.end - st->loc.begin) ^
                C->seed * 0x9E3779B97F4A7C15u);
  bool exact = true, differ = false;
  double maxerr = 0;
  md_status st_num = MD_OK;
  /* A difference in floating point may be rounding: a value that should
   * be 0, computed from terms of 1e16 (exp of a large entry), cancels to
   * 1e-8, not 0.  So a numeric difference counts only when it shows at
   * MD_CHECK_CONFIRM points in a row (the counterexample is the first of
   * them); an exact one counts at once. */
  int streak = 0, undecided = 0;
  double undecided_err = 0, undecided_moved = 0;
  for (int pt = 0; pt < MD_CHECK_POINTS + streak + undecided && !differ &&
                   undecided < MD_CHECK_UNDECIDED;
       pt++) {
    md_val val[2];
    st_num = md_eval_sample(ev, &rng, sides, s, 2, val);
    if (st_num != MD_OK)
      break;
    comparison cmp;
    compare(&val[0], &val[1], &cmp);
    double moved;
    if (!cmp.equal && !cmp.exact &&
        within_rounding(ev, sides, s, val, &cmp, &moved)) {
      /* (the streak goes on: the points around it decide) */
      undecided++;
      undecided_err = fmax(undecided_err, cmp.err);
      undecided_moved = fmax(undecided_moved, moved);
      md_val_clear(&val[0]);
      md_val_clear(&val[1]);
      continue;
    }
    exact &= cmp.exact;
    if (cmp.err > maxerr)
      maxerr = cmp.err;
    if (cmp.equal) {
      streak = 0; /* it was rounding: forget the difference */
      sb_clear(&v->detail);
      sb_init(&v->detail);
    } else {
      if (!v->ne && streak == 0)
        counterexample(C, ev,
                       val[0].r == 1 && val[0].c == 1 ? &val[1] : &val[0], &cmp,
                       &v->detail);
      differ = cmp.exact || ++streak >= MD_CHECK_CONFIRM;
    }
    md_val_clear(&val[0]);
    md_val_clear(&val[1]);
  }
  /* MD_CHECK_UNDECIDED points undecided, and no proof: = and != alike
   * unshown (the sizes past their limit still say so, below) */
  bool unsettled = !differ && undecided >= MD_CHECK_UNDECIDED &&
                   st_num == MD_OK && !symbolic;

  /* a difference made by a size nothing fixes, drawn for each side on
   * its own, says nothing about the identity (sum(tanh(sin((ones
   * ones^T)^T x))) = sum(tanh(sin(sum(x) ones))) differed at the first
   * ones' sizes 5 and 2, and was called FALSE): when the sides agree at
   * the same point with those sizes made equal, that is the error (I =
   * 490 differs at every size, and stays FALSE) */
  char unfixed[320]; /* as md_eval_why */
  unfixed[0] = '\0';
  const char *why = differ ? md_eval_free_size(ev) : NULL;
  if (why) { /* (kept: the evaluations below write md_eval_why) */
    snprintf(unfixed, sizeof unfixed, "%s", why);
    bool agree = false;
    for (uint32_t size = 2; size <= 5 && !agree; size++) {
      md_val val[2];
      if (md_eval_free_sized(ev, size, sides, s, 2, val) != MD_OK)
        break;
      comparison cmp;
      compare(&val[0], &val[1], &cmp);
      agree = cmp.equal;
      md_val_clear(&val[0]);
      md_val_clear(&val[1]);
    }
    if (!agree)
      unfixed[0] = '\0';
  }
  if (unfixed[0]) {
    v->kind = V_ERROR;
    sb_clear(&v->detail);
    sb_init(&v->detail);
    sb_printf(&v->detail, "cannot evaluate: %s", unfixed);
  } else if (unsettled) {
    v->kind = V_ERROR;
    sb_clear(&v->detail);
    sb_init(&v->detail);
    sb_printf(&v->detail,
              "cannot check in double precision: at %d points the sides "
              "differ by up to %.2g (relative), as rounding can make them "
              "differ there (moving the point by %.1e moves them by up to "
              "%.2g)",
              undecided, undecided_err, MD_CHECK_PERTURB, undecided_moved);
  } else if (v->ne) {
    if (differ) {
      v->kind = exact ? V_EXACT : V_NUMERIC;
      v->err = maxerr;
    } else if (symbolic) {
      v->kind = V_FALSE;
      sb_puts(&v->detail, "both sides simplify to the same form");
    } else if (st_num != MD_OK) {
      v->kind = V_ERROR;
      sb_printf(&v->detail, "cannot evaluate: %s", md_eval_why(ev));
    } else {
      v->kind = V_FALSE;
      sb_printf(&v->detail, "the sides agree at %d random points%s",
                MD_CHECK_POINTS, exact ? ", exactly" : "");
    }
  } else if (differ) {
    v->kind = V_FALSE;
    if (symbolic)
      sb_puts(&v->detail, "\nthe simplifier wrongly reduces both sides to "
                          "the same form: please report this bug");
  } else if (symbolic) {
    v->kind = V_PROVED;
  } else if (st_num != MD_OK) {
    v->kind = V_ERROR;
    if (st_num == MD_DOMAIN && md_eval_tries(ev) < MD_EVAL_TRIES)
      sb_printf(&v->detail, "undefined at every point: %s", md_eval_why(ev));
    else if (st_num == MD_DOMAIN)
      sb_printf(&v->detail,
                "no point found where both sides are defined (%d tried): "
                "%s",
                MD_EVAL_TRIES, md_eval_why(ev));
    else
      sb_printf(&v->detail, "cannot evaluate: %s", md_eval_why(ev));
  } else {
    v->kind = exact ? V_EXACT : V_NUMERIC;
    v->err = maxerr;
  }
  if (md_shapes_full(sh)) {
    /* nothing decided with sizes past their limit is sure */
    v->kind = V_ERROR;
    sb_clear(&v->detail);
    sb_init(&v->detail);
    sb_printf(&v->detail, "cannot evaluate: too large (more than %zu sizes)",
              (size_t)MD_MAX_DIMS);
  }
  C->spent += md_eval_work(ev);
  md_eval_free(ev);
  md_shapes_free(sh);
}

/* ---- reporting ---- */

static bool passes(const verdict *v) {
  return v->kind != V_FALSE && v->kind != V_ERROR;
}

static void verdict_text(const verdict *v, char *buf, size_t size) {
  switch (v->kind) {
  case V_PROVED:
    snprintf(buf, size, "proved");
    break;
  case V_EXACT:
    snprintf(buf, size, "verified exactly");
    break;
  case V_NUMERIC:
    if (v->ne)
      snprintf(buf, size, "verified numerically");
    else
      snprintf(buf, size, "verified numerically (max rel. error %.1e)", v->err);
    break;
  case V_FALSE:
    snprintf(buf, size, "FALSE");
    break;
  case V_ERROR:
    snprintf(buf, size, "error");
    break;
  }
}

/* Writes TEXT's lines, each after PREFIX. */
static void put_lines(FILE *out, const char *prefix, const char *text) {
  while (*text) {
    const char *nl = strchr(text, '\n');
    size_t n = nl ? (size_t)(nl - text) : strlen(text);
    fprintf(out, "%s%.*s\n", prefix, (int)n, text);
    text += n + (nl != NULL);
  }
}

/* The N bytes at S as messages show text (md_put_printable: a control
 * byte of the file would act on the terminal, or end a TAP line); in TAP,
 * '#' as "\\#", since it starts a directive ("# SKIP" would hide a
 * failure). */
static void put_text(FILE *out, const char *s, size_t n, bool tap) {
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && !(tap && s[j] == '#'))
      j++;
    md_put_printable(out, s + i, j - i);
    if (j < n)
      fputs("\\#", out);
    i = j + 1;
  }
}

static void report(checker *C, const char *file, unsigned line,
                   const char *ident, size_t len, bool cut, verdict *v) {
  bool ok = passes(v);
  C->n++;
  if (ok)
    C->passed++;
  else
    C->failed++;
  char vt[96];
  verdict_text(v, vt, sizeof vt);
  const char *detail = v->detail.len ? v->detail.s : "";
  if (C->fn) {
    md_check_verdict cv = {file, line,   ident,
                           len,  cut,    ok,
                           vt,   detail, v->located ? &v->at : NULL};
    C->fn(C->arg, &cv);
  }
  if (C->tap) {
    if (C->n == 1)
      fprintf(C->out, "TAP version 13\n");
    fprintf(C->out, "%s %zu - ", ok ? "ok" : "not ok", C->n);
    put_text(C->out, file, strlen(file), true);
    fprintf(C->out, ":%u: ", line);
    put_text(C->out, ident, len, true);
    fprintf(C->out, "%s: %s\n", cut ? "..." : "", vt);
    put_lines(C->out, "# ", v->located ? v->located : detail);
    return;
  }
  if (v->located) {
    /* compiler style: the message, then the line and a caret */
    const char *nl = strchr(v->located, '\n');
    size_t n = nl ? (size_t)(nl - v->located) : strlen(v->located);
    fprintf(C->out, "%.*s\n", (int)n, v->located);
    if (nl)
      put_lines(C->out, "  ", nl + 1);
    return;
  }
  put_text(C->out, file, strlen(file), false);
  fprintf(C->out, ":%u: %s: ", line, vt);
  put_text(C->out, ident, len, false);
  fprintf(C->out, "%s\n", cut ? "..." : "");
  put_lines(C->out, "  ", detail);
}

static void verdict_clear(verdict *v) {
  sb_clear(&v->detail);
  free(v->located);
  free(v->at.msg);
}

/* The text of a statement, without surrounding blanks, cut to SHOW_MAX
 * bytes at a character boundary. */
static void stmt_text(const md_source *src, md_loc loc, const char **s,
                      size_t *n, bool *cut) {
  size_t b = md_loc_valid(loc) ? loc.begin : 0;
  size_t e = md_loc_valid(loc) ? loc.end : src->len;
  if (e > src->len)
    e = src->len;
  while (b < e && (src->text[b] == ' ' || src->text[b] == '\t'))
    b++;
  while (e > b && (src->text[e - 1] == ' ' || src->text[e - 1] == '\t'))
    e--;
  *cut = e - b > SHOW_MAX;
  if (*cut) {
    e = b + SHOW_MAX;
    while (e > b && (src->text[e] & 0xC0) == 0x80)
      e--;
  }
  *s = src->text + b;
  *n = e - b;
}

/* One line of an identity file. */
static void check_line(checker *C, md_ctx *ctx, md_env *env, md_rules *defs,
                       const md_source *src) {
  md_parsed p;
  md_errors err;
  md_errors_init(&err);
  const char *text;
  size_t len;
  bool cut;
  if (!md_parse(ctx, src, MD_PARSE_PROGRAM, &p, &err)) {
    verdict v = {.kind = V_ERROR};
    sb_init(&v.detail);
    if (err.n)
      set_located(&v, &err.v[0]);
    stmt_text(src, MD_NOLOC, &text, &len, &cut);
    report(C, src->name, src->line0, text, len, cut, &v);
    verdict_clear(&v);
    md_errors_clear(&err);
    return;
  }
  md_ctx_scale(ctx, src->len); /* the line's budget, by its size */
  for (size_t i = 0; i < p.n; i++) {
    const md_stmt *st = &p.stmts[i];
    verdict v = {.kind = V_ERROR};
    sb_init(&v.detail);
    stmt_text(src, st->loc, &text, &len, &cut);
    switch (st->kind) {
    case ST_EMPTY:
      continue;
    case ST_LET:
      for (size_t k = 0; k < st->ndecls; k++)
        md_env_add(env, &st->decls[k]);
      continue;
    case ST_EQ:
    case ST_NE:
      check_identity(C, ctx, env, defs, src, &p, st, &v);
      break;
    case ST_EXPR:
      md_error_at(&err, src, st->loc,
                  "not an identity: write LHS = RHS, or LHS != RHS");
      set_located(&v, &err.v[err.n - 1]);
      break;
    case ST_DEF: {
      /* a new function holds from here on, as a let does; a definition
       * of a built-in is the identity f(x) = body */
      bool identity;
      if (!md_rules_define(defs, ctx, st, src, &err, true, &identity)) {
        set_located(&v, &err.v[err.n - 1]);
        break;
      }
      if (!identity)
        continue;
      md_stmt eq = *st;
      eq.kind = ST_EQ;
      check_identity(C, ctx, env, defs, src, &p, &eq, &v);
      break;
    }
    }
    report(C, src->name, src->line0, text, len, cut, &v);
    verdict_clear(&v);
  }
  md_errors_clear(&err);
  md_parsed_clear(&p);
}

/* ---- files ---- */

/* Declarations given with -D, for every file. */
static bool add_cli_decls(const md_options *o, md_ctx *ctx, md_env *env,
                          FILE *err) {
  for (size_t i = 0; i < o->ndecls; i++) {
    md_source src = {o->decl_source ? o->decl_source : "<-D>", o->decls[i],
                     strlen(o->decls[i]), 1};
    md_parsed p;
    md_errors e;
    md_errors_init(&e);
    if (!md_parse(ctx, &src, MD_PARSE_DECL, &p, &e)) {
      md_report_errors(o, err, &e);
      md_errors_clear(&e);
      return false;
    }
    for (size_t j = 0; j < p.n; j++)
      for (size_t k = 0; k < p.stmts[j].ndecls; k++)
        md_env_add(env, &p.stmts[j].decls[k]);
    md_parsed_clear(&p);
    md_errors_clear(&e);
  }
  return true;
}

/* The functions of rules/ and of --rules files, defined in CTX: the
 * rules themselves are not needed (nothing here differentiates), but
 * they are read, so a bad rules file is reported.  TEXTS keeps the files
 * read, alive as long as the context. */
static bool load_defs(const md_options *o, md_ctx *ctx, md_rules *defs,
                      char **texts, FILE *err) {
  md_errors e;
  md_errors_init(&e);
  bool ok = true;
  for (size_t i = 0; ok && i < o->nrules; i++) {
    size_t len;
    strbuf what;
    sb_init(&what);
    sb_printf(&what, "rules '%s'", o->rules[i]);
    texts[i] = md_read_file(o->rules[i], what.s, &len, &e);
    sb_clear(&what);
    if (!texts[i]) {
      ok = false;
      break;
    }
    md_source *src = arena_alloc(md_ctx_arena(ctx), sizeof *src);
    *src = (md_source){o->rules[i], texts[i], len, 1};
    ok = md_rules_load(defs, ctx, src, &e);
  }
  ok = ok && md_rules_load_builtin(defs, ctx, &e);
  md_report_errors(o, err, &e);
  md_errors_clear(&e);
  return ok;
}

/* Checks the lines of IN; 2 when the rules or declarations are bad or
 * IN cannot be read to its end, else 0. */
static int check_lines_here(checker *C, const md_options *o, md_lines *in,
                            FILE *err) {
  md_ctx *ctx = md_ctx_new();
  md_env env;
  md_env_init(&env);
  md_rules defs;
  md_rules_init(&defs);
  char **texts = xcalloc(o->nrules + 1, sizeof *texts);
  int rc = 0;
  if (!add_cli_decls(o, ctx, &env, err) ||
      !load_defs(o, ctx, &defs, texts, err)) {
    rc = 2;
  } else {
    md_errors e;
    md_errors_init(&e);
    const md_source *line;
    while ((line = md_lines_next(in, &e))) {
      md_source src = *line;
      if (src.len > 0 && src.text[src.len - 1] == '\r')
        src.len--;
      /* a line's nodes go with it, unless it defines a function */
      md_ctx_point before = md_ctx_save(ctx);
      check_line(C, ctx, &env, &defs, &src);
      fflush(C->out);
      md_ctx_restore(ctx, &before);
    }
    if (e.n) {
      md_report_errors(o, err, &e);
      rc = 2;
    }
    md_errors_clear(&e);
  }
  md_rules_clear(&defs);
  md_env_clear(&env);
  md_ctx_free(ctx);
  for (size_t i = 0; i < o->nrules; i++)
    free(texts[i]);
  free(texts);
  return rc;
}

typedef struct lines_job {
  checker *C;
  const md_options *o;
  md_lines *in;
  FILE *err;
} lines_job;

static int run_lines_job(void *arg) {
  lines_job *j = arg;
  return check_lines_here(j->C, j->o, j->in, j->err);
}

/* check_lines_here on a stack as deep as the identities (deep.h): LEN
 * bytes of text, 0 when not known. */
static int check_lines_sized(checker *C, const md_options *o, md_lines *in,
                             FILE *err, size_t len) {
  lines_job j = {C, o, in, err};
  return md_deep(run_lines_job, &j, len);
}

int md_check_text(const char *name, const char *text, size_t len, FILE *err) {
  char *report = NULL;
  size_t rlen = 0;
  FILE *out = open_memstream(&report, &rlen);
  if (!out)
    return 2;
  checker C = {.tap = false, .out = out};
  md_options o = {0};
  md_lines in;
  md_lines_init_mem(&in, text, len, name);
  int rc = check_lines_sized(&C, &o, &in, err, len);
  md_lines_clear(&in);
  fclose(out);
  if (rc == 0 && C.failed) {
    rc = 1;
    fputs(report, err);
  }
  free(report);
  return rc;
}

/* Checks one file; 2 when it cannot be read (to its end), else 0. */
static int check_file(checker *C, const md_options *o, const char *path,
                      FILE *err) {
  bool is_stdin = strcmp(path, "-") == 0;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    md_errors e;
    md_errors_init(&e);
    md_error_at(&e, NULL, MD_NOLOC, "cannot open '%s': %s", path,
                strerror(errno));
    md_report_errors(o, err, &e);
    md_errors_clear(&e);
    return 2;
  }
  strbuf what;
  sb_init(&what);
  if (is_stdin)
    sb_puts(&what, "standard input");
  else
    sb_printf(&what, "'%s'", path);
  md_lines in;
  md_lines_init(&in, f, is_stdin ? "<stdin>" : path, what.s);
  /* a regular file's size bounds its depth (deep.h); a pipe's is not known */
  struct stat sb;
  size_t len =
      fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0
          ? (size_t)sb.st_size
          : 0;
  int rc = check_lines_sized(C, o, &in, err, len);
  md_lines_clear(&in);
  sb_clear(&what);
  if (!is_stdin)
    fclose(f);
  return rc;
}

int md_cmd_check(const md_options *o, const char *const *files, size_t nfiles,
                 bool tap, FILE *out, FILE *err) {
  /* An identity file says everything itself: derivatives are in the
   * identities, in denominator layout (SPEC 3). */
  const char *bad = o->nwrt                              ? "--wrt"
                    : o->hessian                         ? "--hessian"
                    : o->layout != MD_LAYOUT_DENOMINATOR ? "--layout"
                    : o->cookbook                        ? "--symmetric"
                                                         : NULL;
  if (bad) {
    fprintf(err,
            "matdiff: error: %s does not apply to 'matdiff check'\n"
            "Try 'matdiff --help'.\n",
            bad);
    return 2;
  }
  if (nfiles == 0) {
    fprintf(err, "matdiff: error: no identity file given ('-' reads "
                 "stdin)\nTry 'matdiff --help'.\n");
    return 2;
  }
  /* bad declarations stop everything, before any file is read */
  md_ctx *ctx = md_ctx_new();
  md_env env;
  md_env_init(&env);
  bool decls_ok = add_cli_decls(o, ctx, &env, err);
  md_env_clear(&env);
  md_ctx_free(ctx);
  if (!decls_ok)
    return 2;
  checker C = {.tap = tap, .seed = o->seed, .show_seed = true, .out = out};
  int rc = 0;
  size_t nread = 0;
  for (size_t i = 0; i < nfiles; i++) {
    if (check_file(&C, o, files[i], err) == 2)
      rc = 2;
    else
      nread++;
  }
  if (nread == 0 && C.n == 0)
    return rc; /* nothing was checked: no summary */
  if (tap)
    fprintf(out, "%s1..%zu\n", C.n ? "" : "TAP version 13\n", C.n);
  else
    fprintf(out, "%zu identit%s: %zu passed, %zu failed\n", C.n,
            C.n == 1 ? "y" : "ies", C.passed, C.failed);
  if (rc == 0 && C.failed)
    rc = 1;
  return rc;
}

int md_check_each(const md_options *o, const char *path, const char *text,
                  size_t len, md_check_fn *fn, void *arg, FILE *out,
                  FILE *err) {
  checker C = {.out = out, .fn = fn, .arg = arg};
  int rc;
  if (text) {
    md_lines in;
    md_lines_init_mem(&in, text, len, path);
    rc = check_lines_sized(&C, o, &in, err, len);
    md_lines_clear(&in);
  } else {
    rc = check_file(&C, o, path, err);
  }
  if (rc != 2 || C.n)
    fprintf(out, "%zu identit%s: %zu passed, %zu failed\n", C.n,
            C.n == 1 ? "y" : "ies", C.passed, C.failed);
  if (rc == 0 && C.failed)
    rc = 1;
  return rc;
}
