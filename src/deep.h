/*
 * deep.h - running the engine on a stack as deep as its expressions.
 *
 * Every pass recurses over the DAG, one frame or a few per level, and an
 * expression may be MD_MAX_DEPTH (10^5) levels deep: a 30 000-layer
 * network.  The 8 MB a process's main thread gets holds some 5 000
 * levels.  md_deep runs a call on a thread of its own whose stack
 * (MD_DEEP_STACK of address space, touched only as far as it is used)
 * holds them all; the commands of driver.h and checker.h go through it,
 * so the CLI and the library both do.
 */
#pragma once

#include <stddef.h>

/* 1 GiB: a level takes 1 to 2 KB of stack (3 to 6 under ASan). */
#define MD_DEEP_STACK ((size_t)1 << 30)

/* FN(ARG) on a thread of its own, or on the caller's stack when no thread
 * can be made; FN's result.  INPUT is the size of the text FN reads, in
 * bytes, or 0 when it is not known (a stream, a file): every level of an
 * expression takes a byte of input at least, so the stack is 16 MiB plus
 * 8 KiB a byte, up to MD_DEEP_STACK (a known small input gets a small
 * stack: under valgrind, a thread with a stack of 1 GiB took 3.6 s to
 * start). */
int md_deep(int (*fn)(void *arg), void *arg, size_t input);
