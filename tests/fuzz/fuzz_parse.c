/*
 * fuzz_parse.c - libFuzzer harness for the grammar alone: arbitrary bytes
 * in both parse modes (statements and -D declarations).  Any input must
 * give statements or messages, never a crash, a leak or a hang.
 */
#include "parse.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  md_ctx *ctx = md_ctx_new();
  md_errors err;
  md_errors_init(&err);
  md_source src = {"<fuzz>", (const char *)data, size, 1};
  for (int mode = 0; mode < 2; mode++) {
    md_parsed p;
    if (md_parse(ctx, &src, mode ? MD_PARSE_DECL : MD_PARSE_PROGRAM, &p,
                 &err))
      md_parsed_clear(&p);
  }
  FILE *null = fopen("/dev/null", "w");
  if (null) {
    md_errors_print(null, &err);
    fclose(null);
  }
  md_errors_clear(&err);
  md_ctx_free(ctx);
  return 0;
}
