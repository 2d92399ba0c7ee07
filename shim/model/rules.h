/* VRAMGUARD_PURPOSE_RULES: purposes for binaries that cannot be changed.
 *
 *   RULES := RULE ("," RULE)*        first matching rule wins
 *   RULE  := MATCH "=" PURPOSE
 *   MATCH := a glob on the calling module's file name (libcublas*, *nccl*)
 *          | SIZE: (">=" | ">" | "<=" | "<") NUMBER [K|M|G|T] (powers of 1024)
 *   PURPOSE := weights | kv_cache | intermediate | unknown
 *
 * Rules apply only to allocations made with no purpose pushed on the thread.
 * Example: libcublas*=intermediate,>=256M=weights */
#ifndef VG_RULES_H
#define VG_RULES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { VG_MAX_RULES = 16 };

/* Check `spec`; on error, a clear reason in `err` (may be NULL). */
bool vg_rules_valid(const char *spec, char *err, size_t err_size);
/* Compile the process's rules (called once by the configuration). */
void vg_rules_load(const char *spec);
extern atomic_bool vg_rules_on;
static inline bool vg_rules_active(void)
{
    return atomic_load_explicit(&vg_rules_on, memory_order_relaxed);
}
/* The purpose the rules give an allocation of `size` bytes called from
 * `caller`, or -1 when none matches. Module names are cached per module. */
int vg_rules_purpose(void *caller, uint64_t size);
/* The same for the hot path: `meta` (an entry as table.h packs it, whose low
 * two bits are the purpose) with the purpose replaced when a rule matches. */
uint32_t vg_rules_meta(uint32_t meta, void *caller, uint64_t size);

#endif
