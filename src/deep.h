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

/* FN(ARG) on a thread with an MD_DEEP_STACK stack, or on the caller's
 * when no such thread can be made; FN's result. */
int md_deep(int (*fn)(void *arg), void *arg);
