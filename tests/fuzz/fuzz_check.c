/*
 * fuzz_check.c - libFuzzer harness for `matdiff check`: arbitrary bytes as
 * an identity file.  Every line gets a verdict or an error; nothing may
 * crash, leak or hang (singular draws, domains, huge numbers included).
 */
#include "checker.h"

#include <flint/flint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 4096)
    return 0;
  static char path[64];
  if (!path[0])
    snprintf(path, sizeof path, "/tmp/matdiff-fuzz-%ld.mdi", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (!f)
    return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  FILE *null = fopen("/dev/null", "w");
  md_options o = {0};
  const char *files[1] = {path};
  md_cmd_check(&o, files, 1, size % 2, null, null);
  fclose(null);
  /* FLINT's caches (exact numbers are fmpq, value.h) freed with the
   * rest, as fuzz_pipeline does: an input that leaves more allocated
   * than it found is run again by libFuzzer, to look for a leak */
  flint_cleanup();
  return 0;
}
