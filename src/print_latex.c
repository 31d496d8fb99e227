/* print_latex.c - placeholder until the LaTeX printer lands. */
#include "print_latex.h"

#include "print_text.h"

void md_print_latex(strbuf *out, const md_ctx *ctx, md_shapes *shapes,
                    const expr *e) {
  (void)shapes;
  md_print_text(out, ctx, e);
}

char *md_print_latex_alloc(const md_ctx *ctx, md_shapes *shapes,
                           const expr *e) {
  strbuf b;
  sb_init(&b);
  md_print_latex(&b, ctx, shapes, e);
  return sb_take(&b);
}
