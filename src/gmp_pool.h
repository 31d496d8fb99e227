/* gmp_pool.h - a small-block allocator for GMP's numbers.
 *
 * Exact coefficients are mostly a limb or two, and the normal form and
 * the simplifier make and clear hundreds of mpq_t temporaries per
 * expression: with libc's malloc, allocating and freeing them was a
 * fifth of a filter run's instructions (issue 17).  md_gmp_pool_install
 * gives GMP free lists by size class for blocks up to MD_POOL_MAX bytes
 * (GMP passes the size of a block it frees or grows); larger ones go to
 * libc.  Blocks are kept for reuse, never returned: the pool holds at
 * most what was live at once.
 *
 * Process-wide and not thread-safe: the command line installs it first
 * thing in main, before GMP allocates anything, and its work runs on one
 * thread at a time (deep.h).  The library (api.h) leaves GMP's allocator
 * alone: its host process may use GMP too.  Under AddressSanitizer it is
 * not installed, so that GMP's blocks stay checked. */
#ifndef MD_GMP_POOL_H
#define MD_GMP_POOL_H

#include <stdbool.h>

enum { MD_POOL_MAX = 256 };

/* Installs the pool; false when it is off (AddressSanitizer). */
bool md_gmp_pool_install(void);

#endif
