/*
 * fuzz_dag.c - libFuzzer harness: DAG-shaped inputs (issue 15).  The
 * first byte gives a depth k (2 to 41), the rest a template in which P
 * stands for the binding before; the input is
 *
 *   sum(tk) where t1 = x, t2 = TEMPLATE(P = t1), ..., tk = TEMPLATE(P = tk-1)
 *
 * (t2 = t1 + t1, t2 = kron(t1, t1), t2 = exp(t1) .* t1 ...), whose tree
 * is exponential in k while its DAG is linear: every pass must treat it as
 * a DAG, or fail with an error within the time and memory the run allows.
 * It then goes through the whole pipeline of fuzz_pipeline.c.  Build and
 * run with tests/fuzz/run.sh.
 *
 * The first byte divided by 40 picks the size budget (MATDIFF_MAX_SIZE,
 * read by md_ctx_new) from 1024 up, or leaves run.sh's: a budget met at
 * one level of the DAG and not another is where a NULL was read (a sweep
 * of MATDIFF_MAX_SIZE over the where chains found three such, session
 * 12, that run.sh's one budget never met).
 */
#define FUZZ_DAG
#define LLVMFuzzerTestOneInput pipeline_one_input
#include "fuzz_pipeline.c"
#undef LLVMFuzzerTestOneInput

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 2 || size > 120)
    return 0;
  unsigned k = 2 + data[0] % 40;
  fuzz_budget(data[0] / 40);
  const char *tmpl = (const char *)data + 1;
  size_t nt = size - 1;
  if (memchr(tmpl, '\0', nt) || memchr(tmpl, '\n', nt))
    return 0;
  strbuf b;
  sb_init(&b);
  sb_printf(&b, "sum(t%u) where t1 = x", k);
  for (unsigned i = 2; i <= k; i++) {
    sb_printf(&b, ", t%u = ", i);
    for (size_t j = 0; j < nt; j++) {
      if (tmpl[j] == 'P')
        sb_printf(&b, "t%u", i - 1);
      else
        sb_putc(&b, tmpl[j]);
    }
  }
  int r =
      b.len <= 4096 ? pipeline_one_input((const unsigned char *)b.s, b.len) : 0;
  sb_clear(&b);
  return r;
}
