/* asan.h - MD_ASAN is defined when AddressSanitizer is on (GCC's macro or
 * clang's feature test).  The allocators that keep freed blocks for
 * reuse (gmp_pool.c, blocks.c) are off then, so that a use after free
 * stays caught. */
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define MD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MD_ASAN 1
#endif
#endif
