/* FNV-1a 64-bit hashing, the one definition the IR's name tables, the sweep's point keys
 * and the solvers' candidate caches share. Not cryptographic. Header-only. */
#ifndef MS_HASH_H
#define MS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define MS_FNV64_OFFSET 0xcbf29ce484222325ULL
#define MS_FNV64_PRIME 0x100000001b3ULL

/* Continues hash h over n bytes at p. */
static inline uint64_t ms_fnv1a64_add(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * MS_FNV64_PRIME;
    return h;
}

/* FNV-1a 64 of n bytes at p. */
static inline uint64_t ms_fnv1a64(const void *p, size_t n)
{
    return ms_fnv1a64_add(MS_FNV64_OFFSET, p, n);
}

/* One FNV-1a step over a whole 64-bit value (word-wise, for keys made of integers). */
static inline uint64_t ms_fnv1a64_word(uint64_t h, uint64_t v)
{
    return (h ^ v) * MS_FNV64_PRIME;
}

#endif
