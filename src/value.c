/* value.c - exact/double numbers, jets and matrices; see value.h. */
#include "value.h"

#include "arena.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GCC 12 takes an fmpq_t argument read after fmpq_numref or fmpq_denref
 * of the same number for a read of 16 bytes from the 8 of one of its
 * halves (-Wstringop-overread, a false positive: the argument is the
 * whole fmpq). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif

/* ---- numbers ---- */

void md_num_init(md_num *x) {
  x->exact = true;
  x->d = 0;
  fmpq_init(x->q);
}

void md_num_clear(md_num *x) {
  fmpq_clear(x->q);
}

/* R = A; the words copied when both are small (fmpq_set is two calls). */
static void q_set(fmpq_t r, const fmpq_t a) {
  fmpz *rn = fmpq_numref(r), *rd = fmpq_denref(r);
  const fmpz *an = fmpq_numref(a), *ad = fmpq_denref(a);
  if (!COEFF_IS_MPZ(*rn) && !COEFF_IS_MPZ(*rd) && !COEFF_IS_MPZ(*an) &&
      !COEFF_IS_MPZ(*ad)) {
    *rn = *an;
    *rd = *ad;
  } else {
    fmpq_set(r, a);
  }
}

/* The bits of Z (0 for 0); fmpz_bits is a call. */
static flint_bitcnt_t z_bits(const fmpz *z) {
  if (COEFF_IS_MPZ(*z))
    return fmpz_bits(z);
  ulong u = *z < 0 ? -(ulong)*z : (ulong)*z;
  return u ? FLINT_BIT_COUNT(u) : 0;
}

void md_num_set(md_num *x, const md_num *y) {
  if (x == y)
    return;
  x->exact = y->exact;
  x->d = y->d;
  if (y->exact)
    q_set(x->q, y->q);
}

void md_num_set_q(md_num *x, const mpq_t q) {
  x->exact = true;
  fmpq_set_mpq(x->q, q);
}

void md_num_get_q(mpq_t q, const md_num *x) {
  fmpq_get_mpq(q, x->q);
}

void md_num_set_si(md_num *x, long num, unsigned long den) {
  x->exact = true;
  if (!den)
    den = 1;
  if (num == LONG_MIN) { /* whose negation FLINT's gcd would take */
    fmpz_set_si(fmpq_numref(x->q), num);
    fmpz_set_ui(fmpq_denref(x->q), den);
    fmpq_canonicalise(x->q);
    return;
  }
  fmpq_set_si(x->q, num, den); /* in lowest terms */
}

void md_num_set_d(md_num *x, double d) {
  x->exact = false;
  x->d = d;
}

/* Q as a double, rounded toward zero as GMP's mpq_get_d rounds (the
 * values, and so the outputs, of every earlier version).  FLINT's
 * fmpq_get_d makes two mpz_t of the words to call it: a numerator and a
 * denominator below 2^53 are divided in doubles instead, and a quotient
 * rounded away from zero (the sign of the exact remainder fma gives)
 * taken one step back. */
static double q_get_d(const fmpq_t q) {
  const fmpz n = *fmpq_numref(q), d = *fmpq_denref(q);
  const slong lim = (slong)1 << 53;
  if (COEFF_IS_MPZ(n) || COEFF_IS_MPZ(d) || n >= lim || n <= -lim || d >= lim)
    return fmpq_get_d(q);
  double dn = (double)n, dd = (double)d, r = dn / dd;
  double rem = fma(r, dd, -dn); /* r d - n, its sign exact */
  if (n > 0 && rem > 0)
    r = nextafter(r, 0);
  else if (n < 0 && rem < 0)
    r = nextafter(r, 0);
  return r;
}

double md_num_get_d(const md_num *x) {
  return x->exact ? q_get_d(x->q) : x->d;
}

int md_num_sgn(const md_num *x) {
  if (x->exact)
    return fmpq_sgn(x->q);
  return (x->d > 0) - (x->d < 0);
}

static bool num_is_zero(const md_num *x) {
  return md_num_sgn(x) == 0;
}

void md_num_format(const md_num *x, char *buf, size_t size) {
  if (!size)
    return;
  if (!x->exact) {
    snprintf(buf, size, "%.10g", x->d);
    return;
  }
  size_t need = fmpz_sizeinbase(fmpq_numref(x->q), 10) +
                fmpz_sizeinbase(fmpq_denref(x->q), 10) + 3;
  if (need <= size) {
    fmpq_get_str(buf, 10, x->q);
    return;
  }
  /* Too long to show: its approximate value, marked as such (in a
   * GMP float, whose exponent range a double lacks). */
  mpq_t q;
  mpq_init(q);
  fmpq_get_mpq(q, x->q);
  mpf_t f;
  mpf_init2(f, 64);
  mpf_set_q(f, q);
  gmp_snprintf(buf, size, "~%.10Fe", f);
  mpf_clear(f);
  mpq_clear(q);
}

/* r = a + b, r = a - b, r = a b, r = -a, r = a / b (b != 0).  R may be A
 * or B: the double branch reads both before it writes. */
static void num_add(md_num *r, const md_num *a, const md_num *b) {
  if (a->exact && b->exact) {
    fmpq_add(r->q, a->q, b->q);
    r->exact = true;
  } else {
    double d = md_num_get_d(a) + md_num_get_d(b);
    r->d = d;
    r->exact = false;
  }
}

static void num_sub(md_num *r, const md_num *a, const md_num *b) {
  if (a->exact && b->exact) {
    fmpq_sub(r->q, a->q, b->q);
    r->exact = true;
  } else {
    double d = md_num_get_d(a) - md_num_get_d(b);
    r->d = d;
    r->exact = false;
  }
}

static void num_mul(md_num *r, const md_num *a, const md_num *b) {
  if (a->exact && b->exact) {
    fmpq_mul(r->q, a->q, b->q);
    r->exact = true;
  } else {
    double d = md_num_get_d(a) * md_num_get_d(b);
    r->d = d;
    r->exact = false;
  }
}

static void num_neg(md_num *r, const md_num *a) {
  if (a->exact) {
    fmpq_neg(r->q, a->q);
    r->exact = true;
  } else {
    r->d = -a->d;
    r->exact = false;
  }
}

void md_num_add(md_num *r, const md_num *a, const md_num *b) {
  num_add(r, a, b);
}

void md_num_mul(md_num *r, const md_num *a, const md_num *b) {
  num_mul(r, a, b);
}

/* r += a b; R may not be A or B. */
static void num_addmul(md_num *r, const md_num *a, const md_num *b) {
  if (r->exact && a->exact && b->exact) {
    fmpq_addmul(r->q, a->q, b->q);
  } else {
    double d = md_num_get_d(r) + md_num_get_d(a) * md_num_get_d(b);
    r->d = d;
    r->exact = false;
  }
}

static void num_zero(md_num *r) {
  r->exact = true;
  fmpq_zero(r->q);
}

static size_t num_bits(const md_num *x) {
  if (!x->exact)
    return 0;
  /* as mpz_sizeinbase counts: 0 has 1 bit */
  flint_bitcnt_t n = z_bits(fmpq_numref(x->q));
  return (n ? n : 1) + z_bits(fmpq_denref(x->q));
}

/* ---- jets: 2^k numbers, part S the coefficient of prod_{i in S} eps_i ---- */

static unsigned umax(unsigned a, unsigned b) {
  return a > b ? a : b;
}

static md_num *jet_new(unsigned k) {
  size_t n = (size_t)1 << k;
  md_num *j = xreallocarray(NULL, n, sizeof *j);
  for (size_t i = 0; i < n; i++)
    md_num_init(&j[i]);
  return j;
}

static void jet_free(md_num *j, unsigned k) {
  size_t n = (size_t)1 << k;
  for (size_t i = 0; i < n; i++)
    md_num_clear(&j[i]);
  free(j);
}

/* R (order kr) = A (order ka <= kr): missing parts zero. */
static void jet_set(md_num *r, unsigned kr, const md_num *a, unsigned ka) {
  unsigned n = 1u << kr, na = 1u << ka;
  for (unsigned s = 0; s < n; s++) {
    if (s < na)
      md_num_set(&r[s], &a[s]);
    else
      num_zero(&r[s]);
  }
}

/* R (order max(ka, kb)) = A B.  R must not alias A or B. */
static void jet_mul(md_num *r, const md_num *a, unsigned ka, const md_num *b,
                    unsigned kb) {
  if (ka == 0 && kb == 0) {
    num_mul(r, a, b);
    return;
  }
  unsigned k = umax(ka, kb), n = 1u << k;
  unsigned ma = (1u << ka) - 1, mb = (1u << kb) - 1;
  for (unsigned s = 0; s < n; s++) {
    num_zero(&r[s]);
    for (unsigned T = s & ma;; T = (T - 1) & s & ma) {
      unsigned u = s ^ T;
      if ((u & ~mb) == 0)
        num_addmul(&r[s], &a[T], &b[u]);
      if (T == 0)
        break;
    }
  }
}

/* R (order max) = A + B or A - B; R may alias A when ka >= kb. */
static void jet_addsub(md_num *r, const md_num *a, unsigned ka, const md_num *b,
                       unsigned kb, bool sub) {
  unsigned k = umax(ka, kb), n = 1u << k;
  unsigned na = 1u << ka, nb = 1u << kb;
  for (unsigned s = n; s-- > 0;) {
    if (s < na && s < nb) {
      if (sub)
        num_sub(&r[s], &a[s], &b[s]);
      else
        num_add(&r[s], &a[s], &b[s]);
    } else if (s < na) {
      md_num_set(&r[s], &a[s]);
    } else if (sub) {
      num_neg(&r[s], &b[s]);
    } else {
      md_num_set(&r[s], &b[s]);
    }
  }
}

static bool jet_has_eps(const md_num *a, unsigned k) {
  for (unsigned s = 1; s < (1u << k); s++)
    if (!num_is_zero(&a[s]))
      return true;
  return false;
}

/* R = sum_j C[j] (A - a_0)^j, j = 0..k: f(A) from the Taylor
 * coefficients C[j] = f^(j)(a_0) / j! (the parts of A - a_0 are
 * nilpotent, so the series stops at the order).  R may not alias A. */
static void jet_series(md_num *r, const md_num *a, unsigned k,
                       const md_num *c) {
  unsigned n = 1u << k;
  if (k == 0) {
    md_num_set(&r[0], &c[0]);
    return;
  }
  md_num *d = jet_new(k), *t = jet_new(k);
  for (unsigned s = 1; s < n; s++)
    md_num_set(&d[s], &a[s]);
  for (unsigned s = 0; s < n; s++)
    num_zero(&r[s]);
  md_num_set(&r[0], &c[k]);
  for (unsigned j = k; j-- > 0;) {
    jet_mul(t, r, k, d, k);
    jet_set(r, k, t, k);
    num_add(&r[0], &r[0], &c[j]);
  }
  jet_free(d, k);
  jet_free(t, k);
}

/* ---- Taylor coefficients of the element-wise functions ---- */

static const double fact[] = {1, 1, 2, 6, 24, 120};

/* The binomial coefficient C(p, j) = p (p-1) ... (p-j+1) / j!. */
static void binom_q(mpq_t out, const mpq_t p, unsigned j) {
  mpq_t t, one;
  mpq_init(t);
  mpq_init(one);
  mpq_set_ui(out, 1, 1);
  mpq_set_ui(one, 1, 1);
  mpq_set(t, p);
  for (unsigned i = 0; i < j; i++) {
    mpq_mul(out, out, t);
    mpq_sub(t, t, one);
  }
  mpq_set_ui(t, (unsigned long)fact[j], 1);
  mpq_div(out, out, t);
  mpq_clear(t);
  mpq_clear(one);
}

/* X^P exactly, if it is rational: X > 0 or P an integer (X != 0 when
 * P < 0).  False when it is not rational. */
static bool pow_exact(mpq_t out, const mpq_t x, const mpq_t p) {
  const mpz_srcptr a = mpq_numref(p), b = mpq_denref(p);
  if (!mpz_fits_ulong_p(b) || !mpz_fits_slong_p(a))
    return false;
  unsigned long den = mpz_get_ui(b);
  long num = mpz_get_si(a);
  mpz_t n, d;
  mpz_init(n);
  mpz_init(d);
  bool ok = true;
  if (den > 1) {
    if (mpq_sgn(x) < 0 || !mpz_root(n, mpq_numref(x), den) ||
        !mpz_root(d, mpq_denref(x), den))
      ok = false;
  } else {
    mpz_set(n, mpq_numref(x));
    mpz_set(d, mpq_denref(x));
  }
  if (ok) {
    unsigned long e = num < 0 ? -(unsigned long)num : (unsigned long)num;
    mpz_pow_ui(n, n, e);
    mpz_pow_ui(d, d, e);
    if (num < 0)
      mpz_swap(n, d);
    mpz_set(mpq_numref(out), n);
    mpz_set(mpq_denref(out), d);
    mpq_canonicalize(out);
  }
  mpz_clear(n);
  mpz_clear(d);
  return ok;
}

/* The Taylor coefficients of x^P at X0, up to order K. */
static md_status pow_coefs(md_num *c, const md_num *x0, const mpq_t p,
                           unsigned k, bool eps) {
  bool integer = mpz_cmp_ui(mpq_denref(p), 1) == 0;
  int sp = mpq_sgn(p), sx = md_num_sgn(x0);
  if (sx < 0 && !integer)
    return MD_DOMAIN;
  if (sx == 0) {
    /* 0^p: only where nothing is divided by zero */
    if (sp < 0 || (eps && !integer))
      return MD_DOMAIN;
    mpq_t b;
    mpq_init(b);
    /* the j-th coefficient is C(p, j) 0^(p-j): nonzero only at j = p;
     * without infinitesimal parts only the 0th counts */
    for (unsigned j = 0; j <= (eps ? k : 0); j++) {
      binom_q(b, p, j);
      bool at = integer && mpz_cmp_ui(mpq_numref(p), j) == 0;
      if (mpq_sgn(b) != 0 && !at && mpq_cmp_ui(p, j, 1) < 0) {
        mpq_clear(b);
        return MD_DOMAIN;
      }
      if (at)
        md_num_set_q(&c[j], b);
      else
        num_zero(&c[j]);
    }
    for (unsigned j = eps ? k + 1 : 1; j <= k; j++)
      num_zero(&c[j]);
    mpq_clear(b);
    return MD_OK;
  }
  mpq_t xq, xp, b, xj;
  mpq_init(xq);
  mpq_init(xp);
  mpq_init(b);
  mpq_init(xj);
  md_status st = MD_OK;
  bool exact = false;
  if (x0->exact) {
    /* x^(a/b) has about |a| / b times the bits of x */
    double bits = (double)num_bits(x0);
    if (mpz_sizeinbase(mpq_numref(p), 2) > 32 ||
        fabs(mpz_get_d(mpq_numref(p))) * bits >
            MD_EXACT_BITS * mpz_get_d(mpq_denref(p)))
      st = MD_HUGE;
    else {
      md_num_get_q(xq, x0);
      exact = pow_exact(xp, xq, p);
    }
  }
  double dx = md_num_get_d(x0), dp = mpq_get_d(p), dxp = pow(dx, dp);
  /* C(p, j) and x^j, each made from the last */
  mpq_t t;
  mpq_init(t);
  mpq_set_ui(b, 1, 1);
  mpq_set_ui(xj, 1, 1);
  for (unsigned j = 0; st == MD_OK && j <= k; j++) {
    if (j > 0) {
      mpq_set_ui(t, j - 1, 1);
      mpq_sub(t, p, t);
      mpq_mul(b, b, t);
      mpq_set_ui(t, j, 1);
      mpq_div(b, b, t);
      if (exact)
        mpq_mul(xj, xj, xq);
    }
    if (mpq_sgn(b) == 0) {
      num_zero(&c[j]);
    } else if (exact) {
      /* C(p, j) x^p / x^j */
      mpq_mul(t, b, xp);
      mpq_div(t, t, xj);
      md_num_set_q(&c[j], t);
    } else {
      md_num_set_d(&c[j], mpq_get_d(b) * dxp / pow(dx, (double)j));
    }
  }
  mpq_clear(t);
  mpq_clear(xq);
  mpq_clear(xp);
  mpq_clear(b);
  mpq_clear(xj);
  return st;
}

/* The Taylor coefficients C[0..K] of element-wise FN at X0.  EPS: the
 * argument has infinitesimal parts (so a kink at X0 matters). */
static md_status fn_coefs(md_num *c, md_fn fn, const md_num *x0, unsigned k,
                          bool eps) {
  double x = md_num_get_d(x0), v[MD_MAX_ORDER + 1] = {0};
  int sx = md_num_sgn(x0);
  switch (fn) {
  case FN_ABS:
  case FN_SIGN:
  case FN_STEP:
  case FN_RELU: {
    /* exact: piecewise linear (sign and step constant), not
     * differentiable at 0 */
    if (sx == 0 && eps)
      return MD_DOMAIN;
    for (unsigned j = 0; j <= k; j++)
      num_zero(&c[j]);
    if (fn == FN_SIGN) {
      md_num_set_si(&c[0], sx, 1);
    } else if (fn == FN_STEP) {
      md_num_set_si(&c[0], sx > 0, 1);
    } else if (fn == FN_ABS || sx > 0) {
      if (sx < 0)
        num_neg(&c[0], x0);
      else
        md_num_set(&c[0], x0);
      if (k >= 1)
        md_num_set_si(&c[1], sx, 1);
    }
    return MD_OK;
  }
  case FN_SQRT: {
    mpq_t half;
    mpq_init(half);
    mpq_set_ui(half, 1, 2);
    md_status st = pow_coefs(c, x0, half, k, eps);
    mpq_clear(half);
    return st;
  }
  case FN_LOG:
    if (sx <= 0)
      return MD_DOMAIN;
    md_num_set_d(&c[0], log(x));
    /* the derivatives (-1)^(j+1) / (j x^j) are rational */
    for (unsigned j = 1; j <= k; j++) {
      if (!x0->exact) {
        md_num_set_d(&c[j], ((j & 1) ? 1 : -1) / (j * pow(x, (double)j)));
        continue;
      }
      fmpq_t jj;
      fmpq_init(jj);
      fmpq_set_si(jj, (j & 1) ? 1 : -1, j);
      c[j].exact = true;
      fmpq_pow_si(c[j].q, x0->q, -(slong)j); /* x > 0 */
      fmpq_mul(c[j].q, c[j].q, jj);
      fmpq_clear(jj);
    }
    return MD_OK;
  case FN_EXP:
    for (unsigned j = 0; j <= k; j++)
      v[j] = exp(x);
    break;
  case FN_SIN:
  case FN_COS: {
    double s = sin(x), co = cos(x);
    double cyc[4] = {s, co, -s, -co};
    unsigned off = fn == FN_SIN ? 0 : 1;
    for (unsigned j = 0; j <= k; j++)
      v[j] = cyc[(j + off) % 4];
    break;
  }
  case FN_TAN: {
    if (cos(x) == 0)
      return MD_DOMAIN;
    double t = tan(x), u = 1 + t * t;
    double d[5] = {t, u, 2 * t * u, 2 * u * (1 + 3 * t * t),
                   8 * t * u * (2 + 3 * t * t)};
    memcpy(v, d, sizeof v);
    break;
  }
  case FN_TANH: {
    /* 1 - tanh^2 as 1 / cosh^2: no cancellation for large |x| */
    double t = tanh(x), ch = cosh(x), u = 1 / (ch * ch);
    double d[5] = {t, u, -2 * t * u, -2 * u * (1 - 3 * t * t),
                   8 * t * u * (2 - 3 * t * t)};
    memcpy(v, d, sizeof v);
    break;
  }
  case FN_SIGMOID:
  case FN_SOFTPLUS: {
    /* s and 1 - s each computed without cancellation; u = s (1 - s) */
    double e = exp(-fabs(x)), big = 1 / (1 + e), small = e / (1 + e);
    double s = x >= 0 ? big : small, sm = x >= 0 ? small : big;
    double u = s * sm;
    double d[5] = {s, u, u * (sm - s), u * (1 - 6 * u),
                   u * (sm - s) * (1 - 12 * u)};
    if (fn == FN_SIGMOID) {
      memcpy(v, d, sizeof v);
    } else {
      v[0] = fmax(x, 0) + log1p(e);
      memcpy(v + 1, d, MD_MAX_ORDER * sizeof v[0]);
    }
    break;
  }
  default:
    return MD_FAIL;
  }
  for (unsigned j = 0; j <= k; j++)
    md_num_set_d(&c[j], v[j] / fact[j]);
  return MD_OK;
}

/* R = FN(A) for one jet of order K; R may not alias A. */
static md_status jet_fn(md_num *r, const md_num *a, unsigned k, md_fn fn) {
  md_num c[MD_MAX_ORDER + 1];
  for (unsigned j = 0; j <= k; j++)
    md_num_init(&c[j]);
  md_status st = fn_coefs(c, fn, &a[0], k, jet_has_eps(a, k));
  if (st == MD_OK)
    jet_series(r, a, k, c);
  for (unsigned j = 0; j <= k; j++)
    md_num_clear(&c[j]);
  return st;
}

static md_status jet_pow(md_num *r, const md_num *a, unsigned k,
                         const mpq_t p) {
  md_num c[MD_MAX_ORDER + 1];
  for (unsigned j = 0; j <= k; j++)
    md_num_init(&c[j]);
  md_status st = pow_coefs(c, &a[0], p, k, jet_has_eps(a, k));
  if (st == MD_OK)
    jet_series(r, a, k, c);
  for (unsigned j = 0; j <= k; j++)
    md_num_clear(&c[j]);
  return st;
}

/* R = 1 / A; MD_DOMAIN when the real part is 0, MD_HUGE past
 * MD_EXACT_BITS.  The coefficients are those pow_coefs gives for x^-1,
 * C(-1, j) x^-1 / x^j = (-1)^j / x^(j+1), but made one from the last
 * (exactly the same numbers, doubles too): every entry of an
 * element-wise division comes here, and the general power's binomials
 * and roots made it a dozen times the cost of the product it feeds. */
static md_status jet_recip(md_num *r, const md_num *a, unsigned k) {
  const md_num *x = &a[0];
  if (num_is_zero(x))
    return MD_DOMAIN;
  if (x->exact && num_bits(x) > MD_EXACT_BITS)
    return MD_HUGE;
  md_num c[MD_MAX_ORDER + 1];
  for (unsigned j = 0; j <= k; j++)
    md_num_init(&c[j]);
  if (x->exact) {
    fmpq_inv(c[0].q, x->q);
    for (unsigned j = 1; j <= k; j++) {
      fmpq_mul(c[j].q, c[j - 1].q, c[0].q);
      fmpq_neg(c[j].q, c[j].q);
    }
  } else {
    double dx = x->d, dxp = pow(dx, -1.0);
    for (unsigned j = 0; j <= k; j++)
      md_num_set_d(&c[j], (j % 2 ? -1.0 : 1.0) * dxp / pow(dx, (double)j));
  }
  jet_series(r, a, k, c);
  for (unsigned j = 0; j <= k; j++)
    md_num_clear(&c[j]);
  return MD_OK;
}

/* ---- values ---- */

bool md_val_fits(uint64_t r, uint64_t c, unsigned order) {
  return order <= MD_MAX_ORDER && r <= MD_MAX_NUMS && c <= MD_MAX_NUMS &&
         (r * c) << order <= MD_MAX_NUMS;
}

static size_t val_len(const md_val *v) {
  return ((size_t)v->r * v->c) << v->order;
}

void md_val_init(md_val *v, uint32_t r, uint32_t c, unsigned order) {
  if (!md_val_fits(r, c, order)) {
    fprintf(stderr, "matdiff: internal error: value too large\n");
    abort();
  }
  v->r = r;
  v->c = c;
  v->order = order;
  size_t n = val_len(v);
  v->x = xreallocarray(NULL, n ? n : 1, sizeof *v->x);
  for (size_t i = 0; i < n; i++)
    md_num_init(&v->x[i]);
}

void md_val_clear(md_val *v) {
  if (!v->x)
    return;
  size_t n = val_len(v);
  for (size_t i = 0; i < n; i++)
    md_num_clear(&v->x[i]);
  free(v->x);
  v->x = NULL;
}

void md_val_init_copy(md_val *v, const md_val *a) {
  md_val_init(v, a->r, a->c, a->order);
  size_t n = val_len(a);
  for (size_t i = 0; i < n; i++)
    md_num_set(&v->x[i], &a->x[i]);
}

void md_val_init_order(md_val *v, const md_val *a, unsigned k) {
  md_val_init(v, a->r, a->c, k);
  size_t ne = (size_t)a->r * a->c;
  for (size_t e = 0; e < ne; e++)
    jet_set(&v->x[e << k], k, &a->x[e << a->order], a->order);
}

md_num *md_val_at(const md_val *v, uint32_t i, uint32_t j, unsigned part) {
  if (i >= v->r || j >= v->c || part >= (1u << v->order))
    return NULL;
  return &v->x[(((size_t)i * v->c + j) << v->order) | part];
}

/* The jet of entry (i, j). */
static md_num *ent(const md_val *v, size_t i, size_t j) {
  return &v->x[(i * v->c + j) << v->order];
}

bool md_val_is_exact(const md_val *v) {
  size_t n = val_len(v);
  for (size_t i = 0; i < n; i++)
    if (!v->x[i].exact)
      return false;
  return true;
}

void md_val_to_double(md_val *v) {
  size_t n = val_len(v);
  for (size_t i = 0; i < n; i++)
    if (v->x[i].exact)
      md_num_set_d(&v->x[i], q_get_d(v->x[i].q));
}

size_t md_val_max_bits(const md_val *v) {
  size_t n = val_len(v), m = 0;
  for (size_t i = 0; i < n; i++) {
    size_t b = num_bits(&v->x[i]);
    if (b > m)
      m = b;
  }
  return m;
}

bool md_val_too_big(const md_val *v) {
  size_t n = val_len(v);
  for (size_t i = 0; i < n; i++)
    if (num_bits(&v->x[i]) > MD_EXACT_BITS)
      return true;
  return false;
}

bool md_val_not_finite(const md_val *v) {
  size_t n = val_len(v);
  for (size_t i = 0; i < n; i++)
    if (!v->x[i].exact && !isfinite(v->x[i].d))
      return true;
  return false;
}

void md_val_identity(md_val *out, uint32_t n) {
  md_val_init(out, n, n, 0);
  for (uint32_t i = 0; i < n; i++)
    md_num_set_si(ent(out, i, i), 1, 1);
}

void md_val_fill(md_val *out, uint32_t r, uint32_t c, long v) {
  md_val_init(out, r, c, 0);
  for (size_t i = 0; i < (size_t)r * c; i++)
    md_num_set_si(&out->x[i], v, 1);
}

static bool is_scalar(const md_val *a) {
  return a->r == 1 && a->c == 1;
}

/* Entry-wise A op B, a 1×1 operand broadcast. */
typedef enum { EW_ADD, EW_SUB, EW_MUL, EW_DIV } ew_op;

static md_status elementwise(md_val *out, const md_val *a, const md_val *b,
                             ew_op op) {
  bool sa = is_scalar(a) && !is_scalar(b), sb = is_scalar(b) && !is_scalar(a);
  if (!sa && !sb && (a->r != b->r || a->c != b->c))
    return MD_FAIL;
  const md_val *shape = sa ? b : a;
  unsigned k = umax(a->order, b->order);
  md_val_init(out, shape->r, shape->c, k);
  md_num *inv = NULL;
  md_status st = MD_OK;
  size_t ne = (size_t)shape->r * shape->c;
  if (op == EW_DIV && sb) {
    inv = jet_new(b->order);
    st = jet_recip(inv, b->x, b->order);
  }
  md_num *tmp = op == EW_DIV && !sb ? jet_new(b->order) : NULL;
  for (size_t e = 0; st == MD_OK && e < ne; e++) {
    const md_num *x = sa ? a->x : &a->x[e << a->order];
    const md_num *y = sb ? b->x : &b->x[e << b->order];
    md_num *r = &out->x[e << k];
    switch (op) {
    case EW_ADD:
    case EW_SUB:
      jet_addsub(r, x, a->order, y, b->order, op == EW_SUB);
      break;
    case EW_MUL:
      jet_mul(r, x, a->order, y, b->order);
      break;
    case EW_DIV:
      if (sb) {
        jet_mul(r, x, a->order, inv, b->order);
      } else {
        st = jet_recip(tmp, y, b->order);
        if (st == MD_OK)
          jet_mul(r, x, a->order, tmp, b->order);
      }
      break;
    }
  }
  if (inv)
    jet_free(inv, b->order);
  if (tmp)
    jet_free(tmp, b->order);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

md_status md_val_add(md_val *out, const md_val *a, const md_val *b) {
  return elementwise(out, a, b, EW_ADD);
}

md_status md_val_sub(md_val *out, const md_val *a, const md_val *b) {
  return elementwise(out, a, b, EW_SUB);
}

md_status md_val_neg(md_val *out, const md_val *a) {
  md_val_init(out, a->r, a->c, a->order);
  size_t n = val_len(a);
  for (size_t i = 0; i < n; i++)
    num_neg(&out->x[i], &a->x[i]);
  return MD_OK;
}

md_status md_val_mul(md_val *out, const md_val *a, const md_val *b) {
  if (is_scalar(a) || is_scalar(b))
    return elementwise(out, a, b, EW_MUL);
  if (a->c != b->r)
    return MD_FAIL;
  unsigned k = umax(a->order, b->order);
  if (!md_val_fits(a->r, b->c, k) ||
      ((uint64_t)a->r * b->c * a->c << k) > MD_MAX_WORK)
    return MD_FAIL;
  md_val_init(out, a->r, b->c, k);
  md_num *t = jet_new(k);
  for (size_t i = 0; i < a->r; i++)
    for (size_t j = 0; j < b->c; j++) {
      md_num *r = ent(out, i, j);
      for (size_t l = 0; l < a->c; l++) {
        jet_mul(t, ent(a, i, l), a->order, ent(b, l, j), b->order);
        jet_addsub(r, r, k, t, k, false);
      }
    }
  jet_free(t, k);
  return MD_OK;
}

md_status md_val_div(md_val *out, const md_val *a, const md_val *s) {
  if (!is_scalar(s))
    return MD_FAIL;
  return elementwise(out, a, s, EW_DIV);
}

md_status md_val_had(md_val *out, const md_val *a, const md_val *b) {
  return elementwise(out, a, b, EW_MUL);
}

md_status md_val_hdiv(md_val *out, const md_val *a, const md_val *b) {
  return elementwise(out, a, b, EW_DIV);
}

md_status md_val_kron(md_val *out, const md_val *a, const md_val *b) {
  unsigned k = umax(a->order, b->order);
  uint64_t r = (uint64_t)a->r * b->r, c = (uint64_t)a->c * b->c;
  if (!md_val_fits(r, c, k))
    return MD_FAIL;
  md_val_init(out, (uint32_t)r, (uint32_t)c, k);
  for (size_t i = 0; i < a->r; i++)
    for (size_t j = 0; j < a->c; j++)
      for (size_t p = 0; p < b->r; p++)
        for (size_t l = 0; l < b->c; l++)
          jet_mul(ent(out, i * b->r + p, j * b->c + l), ent(a, i, j), a->order,
                  ent(b, p, l), b->order);
  return MD_OK;
}

md_status md_val_trans(md_val *out, const md_val *a) {
  md_val_init(out, a->c, a->r, a->order);
  for (size_t i = 0; i < a->r; i++)
    for (size_t j = 0; j < a->c; j++)
      jet_set(ent(out, j, i), a->order, ent(a, i, j), a->order);
  return MD_OK;
}

/* The row of column COL, at or below FROM, to pivot on: a nonzero real
 * part (the largest in doubles, and larger than TINY); -1 if there is
 * none. */
static long pivot_row(const md_val *m, size_t col, size_t from, double tiny) {
  long best = -1;
  double bestabs = 0;
  for (size_t i = from; i < m->r; i++) {
    const md_num *x = ent(m, i, col);
    if (num_is_zero(x) || (!x->exact && fabs(x->d) <= tiny))
      continue;
    if (x->exact)
      return (long)i;
    if (best < 0 || fabs(x->d) > bestabs) {
      best = (long)i;
      bestabs = fabs(x->d);
    }
  }
  return best;
}

static void swap_rows(md_val *m, size_t i, size_t j) {
  size_t w = (size_t)m->c << m->order;
  for (size_t l = 0; l < w; l++) {
    md_num t = m->x[i * w + l];
    m->x[i * w + l] = m->x[j * w + l];
    m->x[j * w + l] = t;
  }
}

/* Row I of M -= F * row K of M, over the columns from FROM on. */
static void row_axpy(md_val *m, size_t i, size_t kk, const md_num *f,
                     size_t from, md_num *t) {
  unsigned o = m->order;
  for (size_t j = from; j < m->c; j++) {
    jet_mul(t, f, o, ent(m, kk, j), o);
    jet_addsub(ent(m, i, j), ent(m, i, j), o, t, o, true);
  }
}

/* Adds SIGN * prod_r A(r, perm[r]) to OUT. */
static void leibniz_term(md_val *out, const md_val *a, const size_t *perm,
                         int sign, md_num *p, md_num *t) {
  unsigned k = a->order;
  jet_set(p, k, ent(a, 0, perm[0]), k);
  for (size_t r = 1; r < a->r; r++) {
    jet_mul(t, p, k, ent(a, r, perm[r]), k);
    jet_set(p, k, t, k);
  }
  jet_addsub(out->x, out->x, k, p, k, sign < 0);
}

/* det by expansion over permutations, for a singular real part: there
 * elimination finds no pivot, but the infinitesimal parts still count. */
static md_status det_leibniz(md_val *out, const md_val *a) {
  size_t n = a->r;
  if (n > 6)
    return MD_DOMAIN;
  unsigned k = a->order;
  md_val_init(out, 1, 1, k);
  size_t perm[6], c[6] = {0};
  for (size_t i = 0; i < n; i++)
    perm[i] = i;
  int sign = 1;
  md_num *p = jet_new(k), *t = jet_new(k);
  /* Heap's algorithm: each permutation one transposition from the last */
  leibniz_term(out, a, perm, sign, p, t);
  for (size_t i = 1; i < n;) {
    if (c[i] < i) {
      size_t j = i % 2 ? c[i] : 0, tmp = perm[j];
      perm[j] = perm[i];
      perm[i] = tmp;
      sign = -sign;
      leibniz_term(out, a, perm, sign, p, t);
      c[i]++;
      i = 1;
    } else {
      c[i++] = 0;
    }
  }
  jet_free(p, k);
  jet_free(t, k);
  return MD_OK;
}

md_status md_val_det(md_val *out, const md_val *a) {
  if (a->r != a->c)
    return MD_FAIL;
  size_t n = a->r;
  unsigned k = a->order;
  md_val m;
  md_val_init_copy(&m, a);
  md_val_init(out, 1, 1, k);
  md_num_set_si(out->x, 1, 1);
  md_num *inv = jet_new(k), *f = jet_new(k), *t = jet_new(k);
  md_status st = MD_OK;
  for (size_t col = 0; col < n; col++) {
    long p = pivot_row(&m, col, col, 0);
    if (p < 0) {
      /* A singular real part: the determinant is 0, but its
       * infinitesimal parts need not be. */
      md_val_clear(out);
      if (k == 0)
        md_val_init(out, 1, 1, 0);
      else
        st = det_leibniz(out, a);
      goto done;
    }
    if ((size_t)p != col) {
      swap_rows(&m, (size_t)p, col);
      for (unsigned s = 0; s < (1u << k); s++)
        num_neg(&out->x[s], &out->x[s]);
    }
    jet_mul(t, out->x, k, ent(&m, col, col), k);
    jet_set(out->x, k, t, k);
    st = jet_recip(inv, ent(&m, col, col), k);
    if (st != MD_OK) {
      md_val_clear(out);
      goto done;
    }
    for (size_t i = col + 1; i < n; i++) {
      jet_mul(f, ent(&m, i, col), k, inv, k);
      row_axpy(&m, i, col, f, col, t);
    }
  }
done:
  jet_free(inv, k);
  jet_free(f, k);
  jet_free(t, k);
  md_val_clear(&m);
  return st;
}

md_status md_val_inv(md_val *out, const md_val *a) {
  if (a->r != a->c)
    return MD_FAIL;
  size_t n = a->r;
  unsigned k = a->order;
  md_val m;
  md_val_init_copy(&m, a);
  md_val_identity(out, (uint32_t)n);
  if (k) {
    md_val o;
    md_val_init_order(&o, out, k);
    md_val_clear(out);
    *out = o;
  }
  /* In doubles, a pivot within rounding of zero (relative to the largest
   * entry) is zero: the elimination of a singular matrix leaves residues
   * of about 2^-52 of its entries, and their inverse was a value of 1e126
   * that --verify called FALSE (inv(M x y^T N), rank one, at a point in
   * doubles).  Exact arithmetic needs no such bound. */
  double big = 0;
  for (size_t i = 0; i < n * n; i++) {
    const md_num *x = &m.x[i << k];
    if (!x->exact && fabs(x->d) > big)
      big = fabs(x->d);
  }
  double tiny = big * (double)n * 0x1p-46;
  md_num *inv = jet_new(k), *f = jet_new(k), *t = jet_new(k);
  md_status st = MD_OK;
  for (size_t col = 0; col < n && st == MD_OK; col++) {
    long p = pivot_row(&m, col, col, tiny);
    if (p < 0) {
      st = MD_DOMAIN;
      break;
    }
    swap_rows(&m, (size_t)p, col);
    swap_rows(out, (size_t)p, col);
    st = jet_recip(inv, ent(&m, col, col), k);
    if (st != MD_OK)
      break;
    /* scale the pivot row to 1, then clear the column elsewhere */
    for (size_t j = 0; j < n; j++) {
      jet_mul(t, ent(&m, col, j), k, inv, k);
      jet_set(ent(&m, col, j), k, t, k);
      jet_mul(t, ent(out, col, j), k, inv, k);
      jet_set(ent(out, col, j), k, t, k);
    }
    for (size_t i = 0; i < n; i++) {
      if (i == col)
        continue;
      jet_set(f, k, ent(&m, i, col), k);
      row_axpy(&m, i, col, f, 0, t);
      row_axpy(out, i, col, f, 0, t);
    }
  }
  jet_free(inv, k);
  jet_free(f, k);
  jet_free(t, k);
  md_val_clear(&m);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

/* OUT = FN(A) entry by entry. */
static md_status map_jets(md_val *out, const md_val *a, md_fn fn,
                          const mpq_t p) {
  md_val_init(out, a->r, a->c, a->order);
  size_t ne = (size_t)a->r * a->c;
  unsigned k = a->order;
  md_status st = MD_OK;
  for (size_t e = 0; st == MD_OK && e < ne; e++)
    st = p ? jet_pow(&out->x[e << k], &a->x[e << k], k, p)
           : jet_fn(&out->x[e << k], &a->x[e << k], k, fn);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

md_status md_val_apply(md_val *out, const md_val *a, md_fn fn) {
  if (fn < FN_EXP || fn > FN_SOFTPLUS)
    return MD_FAIL;
  return map_jets(out, a, fn, NULL);
}

md_status md_val_epow(md_val *out, const md_val *a, const mpq_t p) {
  return map_jets(out, a, FN_EXP, p);
}

md_status md_val_pow(md_val *out, const md_val *a, const mpq_t k) {
  if (is_scalar(a))
    return md_val_epow(out, a, k);
  if (a->r != a->c || mpz_cmp_ui(mpq_denref(k), 1) != 0)
    return MD_FAIL;
  md_val base;
  md_status st = MD_OK;
  if (mpq_sgn(k) < 0) {
    st = md_val_inv(&base, a);
    if (st != MD_OK)
      return st;
  } else {
    md_val_init_copy(&base, a);
  }
  mpz_t e;
  mpz_init(e);
  mpz_abs(e, mpq_numref(k));
  md_val_identity(out, a->r);
  /* left to right over the bits of the exponent */
  for (size_t bit = mpz_sizeinbase(e, 2); st == MD_OK && bit-- > 0;) {
    md_val t;
    st = md_val_mul(&t, out, out);
    if (st != MD_OK)
      break;
    md_val_clear(out);
    *out = t;
    if (mpz_tstbit(e, bit)) {
      st = md_val_mul(&t, out, &base);
      if (st != MD_OK)
        break;
      md_val_clear(out);
      *out = t;
    }
    if (md_val_too_big(out))
      st = MD_HUGE;
    else if (md_val_not_finite(out))
      break; /* doubles: it will not come back */
  }
  mpz_clear(e);
  md_val_clear(&base);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

/* OUT (1×1) = the sum over the entries of F(entry); F NULL: the entry. */
static md_status sum_of(md_val *out, const md_val *a, md_fn fn, bool square) {
  unsigned k = a->order;
  md_val_init(out, 1, 1, k);
  md_num *t = jet_new(k);
  md_status st = MD_OK;
  size_t ne = (size_t)a->r * a->c;
  for (size_t e = 0; st == MD_OK && e < ne; e++) {
    const md_num *x = &a->x[e << k];
    if (square)
      jet_mul(t, x, k, x, k);
    else if (fn != FN_NBUILTIN)
      st = jet_fn(t, x, k, fn);
    else
      jet_set(t, k, x, k);
    if (st == MD_OK)
      jet_addsub(out->x, out->x, k, t, k, false);
  }
  jet_free(t, k);
  if (st != MD_OK)
    md_val_clear(out);
  return st;
}

md_status md_val_sum(md_val *out, const md_val *a) {
  return sum_of(out, a, FN_NBUILTIN, false);
}

md_status md_val_sumsq(md_val *out, const md_val *a) {
  return sum_of(out, a, FN_NBUILTIN, true);
}

md_status md_val_norm1(md_val *out, const md_val *a) {
  return sum_of(out, a, FN_ABS, false);
}

md_status md_val_norm2(md_val *out, const md_val *a) {
  md_val s;
  md_status st = md_val_sumsq(&s, a);
  if (st != MD_OK)
    return st;
  st = md_val_apply(out, &s, FN_SQRT);
  md_val_clear(&s);
  return st;
}

md_status md_val_tr(md_val *out, const md_val *a) {
  if (a->r != a->c)
    return MD_FAIL;
  unsigned k = a->order;
  md_val_init(out, 1, 1, k);
  for (size_t i = 0; i < a->r; i++)
    jet_addsub(out->x, out->x, k, ent(a, i, i), k, false);
  return MD_OK;
}

md_status md_val_diag(md_val *out, const md_val *a) {
  unsigned k = a->order;
  if (is_scalar(a)) {
    md_val_init_copy(out, a);
  } else if (a->c == 1) {
    md_val_init(out, a->r, a->r, k);
    for (size_t i = 0; i < a->r; i++)
      jet_set(ent(out, i, i), k, ent(a, i, 0), k);
  } else if (a->r == a->c) {
    md_val_init(out, a->r, 1, k);
    for (size_t i = 0; i < a->r; i++)
      jet_set(ent(out, i, 0), k, ent(a, i, i), k);
  } else {
    return MD_FAIL;
  }
  return MD_OK;
}

md_status md_val_vec(md_val *out, const md_val *a) {
  unsigned k = a->order;
  md_val_init(out, a->r * a->c, 1, k);
  for (size_t j = 0; j < a->c; j++)
    for (size_t i = 0; i < a->r; i++)
      jet_set(ent(out, j * a->r + i, 0), k, ent(a, i, j), k);
  return MD_OK;
}

md_status md_val_inner(md_val *out, const md_val *a, const md_val *b) {
  if (a->r != b->r || a->c != b->c)
    return MD_FAIL;
  md_val h;
  md_status st = md_val_had(&h, a, b);
  if (st != MD_OK)
    return st;
  st = md_val_sum(out, &h);
  md_val_clear(&h);
  return st;
}

md_status md_val_logdet(md_val *out, const md_val *a) {
  md_val d;
  md_status st = md_val_det(&d, a);
  if (st != MD_OK)
    return st;
  if (md_num_sgn(d.x) < 0) {
    md_val n;
    md_val_neg(&n, &d);
    md_val_clear(&d);
    d = n;
  }
  st = md_val_apply(out, &d, FN_LOG);
  md_val_clear(&d);
  return st;
}

/* E = exp(A - m) entry by entry, m the largest real part (for range). */
static md_status shifted_exp(md_val *e, const md_val *a, double *m) {
  size_t ne = (size_t)a->r * a->c;
  unsigned k = a->order;
  *m = -INFINITY;
  for (size_t i = 0; i < ne; i++) {
    double x = md_num_get_d(&a->x[i << k]);
    if (x > *m)
      *m = x;
  }
  md_val s;
  md_val_init_copy(&s, a);
  for (size_t i = 0; i < ne; i++)
    md_num_set_d(&s.x[i << k], md_num_get_d(&s.x[i << k]) - *m);
  md_status st = md_val_apply(e, &s, FN_EXP);
  md_val_clear(&s);
  return st;
}

md_status md_val_softmax(md_val *out, const md_val *a) {
  double m;
  md_val e, s;
  md_status st = shifted_exp(&e, a, &m);
  if (st != MD_OK)
    return st;
  st = md_val_sum(&s, &e);
  if (st == MD_OK) {
    st = md_val_div(out, &e, &s);
    md_val_clear(&s);
  }
  md_val_clear(&e);
  return st;
}

md_status md_val_logsumexp(md_val *out, const md_val *a) {
  double m;
  md_val e, s, l;
  md_status st = shifted_exp(&e, a, &m);
  if (st != MD_OK)
    return st;
  st = md_val_sum(&s, &e);
  md_val_clear(&e);
  if (st != MD_OK)
    return st;
  st = md_val_apply(&l, &s, FN_LOG);
  md_val_clear(&s);
  if (st != MD_OK)
    return st;
  md_num_set_d(l.x, md_num_get_d(l.x) + m);
  *out = l;
  return MD_OK;
}
