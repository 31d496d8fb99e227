/* print_numpy.c - placeholder until the NumPy printer lands. */
#include "print_numpy.h"

bool md_print_numpy(strbuf *out, md_ctx *ctx, md_shapes *shapes, const expr *e,
                    md_shape shape, const expr *const *params, size_t nparams,
                    const char *name, md_errors *err) {
  (void)out, (void)ctx, (void)shapes, (void)e, (void)shape, (void)params;
  (void)nparams, (void)name;
  md_error_at(err, NULL, MD_NOLOC, "--format numpy: not yet");
  return false;
}
