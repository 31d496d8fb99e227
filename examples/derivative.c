/*
 * derivative.c - the derivative of an expression, with libmatdiff.
 *
 *   cc derivative.c $(pkg-config --cflags --libs matdiff) -o derivative
 *   ./derivative 'tr(A X^T B)' X          prints  B A
 *
 * An error is printed as the matdiff command prints it, with the line
 * and a caret under the column; the exit status is then 2.
 */
#include <matdiff/matdiff.h>

#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s EXPR VAR\n", argv[0]);
    return 2;
  }
  matdiff_ctx *ctx = matdiff_ctx_new();
  matdiff_result *r = matdiff_diff(ctx, argv[1], argv[2], MATDIFF_FORMAT_TEXT);
  int status = matdiff_result_status(r);
  if (status == MATDIFF_OK) {
    puts(matdiff_result_output(r));
  } else {
    for (size_t i = 0; i < matdiff_result_nerrors(r); i++)
      fprintf(stderr, "%s: %s", argv[0],
              matdiff_error_text(matdiff_result_error(r, i)));
  }
  fputs(matdiff_result_warnings(r), stderr);
  matdiff_result_free(r);
  matdiff_ctx_free(ctx);
  return status;
}
