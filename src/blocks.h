/* blocks.h - a per-thread cache of the small blocks that every pass makes
 * and drops.
 *
 * A growable list of nodes (md_nodes) starts with room for 8 and a map
 * by node id (md_idmap) with 32 slots; the passes over one line make and
 * clear some 250 of them, and libc's malloc and free of these blocks
 * were 8% of a filter run's instructions (tests/bench, issue 17): its
 * per-size cache holds 7 blocks, and the bursts here are longer.
 *
 * md_block_get returns a block of the class's size, which the caller
 * owns as if from malloc: it may grow it with realloc or release it with
 * free.  md_block_put gives one back for reuse (a block of at least that
 * size from malloc).  Each thread keeps at most MD_BLOCK_KEEP blocks a
 * class, freed when it exits.  Under AddressSanitizer blocks go straight
 * to malloc and free, so that a use after free stays caught. */
#ifndef MD_BLOCKS_H
#define MD_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum md_block_class {
  MD_BLOCK_NODES, /* 8 pointers: md_nodes' first array */
  MD_BLOCK_IDMAP, /* 32 keys and values: md_idmap's first table */
  MD_NBLOCK
} md_block_class;

enum { MD_BLOCK_KEEP = 256 };
/* The first capacity of an md_nodes (nodes) and of an md_idmap (slots). */
enum { MD_NODES_FIRST = 8, MD_IDMAP_FIRST = 32 };

size_t md_block_size(md_block_class c);
/* Whether blocks are kept at all (not under AddressSanitizer). */
bool md_block_cache_on(void);
void *md_block_get(md_block_class c);
void md_block_put(md_block_class c, void *p);

#endif
