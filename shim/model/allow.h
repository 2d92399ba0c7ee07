/* VRAMGUARD_ALLOW: what host and managed memory the policy lets through, as
 * precisely as the user wants. Plain data: compiled once from the
 * configuration, read by the policy (policy.c), shown by the outputs.
 *
 *   VRAMGUARD_ALLOW := "none" | RULE ("," RULE)*
 *   RULE  := KIND (":" COND)*
 *   KIND  := pinned        host-pinned allocations and host registrations
 *          | registered    host registrations (cuMemHostRegister) only
 *          | managed       managed (unified) allocations
 *   COND  := GLOB          a glob on the calling module's base file name
 *          | OP SIZE       a bound per allocation, OP <= < >= >
 *          | total<=SIZE   a cap per KIND: the live bytes its rules let through
 *   SIZE  := NUMBER [K|M|G|T] [i] [B]      (powers of 1024)
 *
 * An allocation is let through when a rule of a kind that covers it matches
 * all of that rule's conditions and no cap that covers it would be passed.
 * A malformed rule is dropped with one warning: it never loosens the policy.
 * Examples: pinned ; pinned:libcudnn* ; pinned:<=64K ;
 * pinned:libcudnn_graph.so.9:<=4 ; pinned:total<=256M */
#ifndef VG_ALLOW_H
#define VG_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { VG_ALLOW_RULES_MAX = 16, VG_ALLOW_TEXT = 160 };

enum vg_allow_kind { VG_AK_PINNED, VG_AK_REGISTERED, VG_AK_MANAGED, VG_AK_COUNT };

struct vg_allow_rule {
    uint8_t kind;             /* enum vg_allow_kind */
    bool sized;               /* has a size bound */
    uint64_t lo, hi;          /* sizes it lets through, lo..hi */
    char glob[96];            /* "" = any module */
    char text[VG_ALLOW_TEXT]; /* as written, for outputs */
};

struct vg_allowances {
    int n;
    struct vg_allow_rule rule[VG_ALLOW_RULES_MAX];
    uint64_t cap[VG_AK_COUNT]; /* UINT64_MAX: none */
    unsigned bare;             /* 1 << kind: a rule with no condition and no cap (the fast path) */
};

/* SIZE at `s` (the whole string): NUMBER [K|M|G|T] [i] [B], powers of 1024;
 * false when malformed or too large (past 2^64 - 1). Shared with
 * VRAMGUARD_LIMIT (budget.h) and VRAMGUARD_PURPOSE_RULES (rules.c). */
bool vg_parse_size(const char *s, uint64_t *out);
/* A module glob fnmatch can take as written: every '[' closed, no trailing
 * '\\' (fnmatch would match those literally, never what was meant). */
bool vg_glob_valid(const char *glob);

/* Compile `spec` into `out`. Each malformed rule is reported through `bad`
 * (the rule's text and why) and dropped. Returns the number of rules kept. */

typedef void (*vg_allow_bad_fn)(const char *rule, const char *why, void *ctx);
int vg_allow_compile(const char *spec, struct vg_allowances *out, vg_allow_bad_fn bad, void *ctx);

/* The allowance kind of memory of shim kind `kind` (model.h), -1 when none
 * covers it (VRAM kinds, imported). */
int vg_allow_kind_of(int kind);
const char *vg_allow_kind_name(int allow_kind);

/* The first rule that lets through an allocation of shim kind `kind` of
 * `size` bytes from module `module` (NULL: unknown, matched only by rules
 * without a glob), or -1. Caps are not looked at. */
int vg_allow_match(const struct vg_allowances *a, int kind, uint64_t size, const char *module);
/* Does any rule covering `kind` name a module? (Only then is the caller's
 * module looked up.) */
bool vg_allow_needs_module(const struct vg_allowances *a, int kind);

/* Caps: take `size` bytes of every cap covering `kind`; false (nothing
 * taken) when one would be passed. Give them back when the memory is freed
 * or the driver refused it. Live bytes let through by rules, per kind. */
bool vg_allow_take(const struct vg_allowances *a, int kind, uint64_t size);
void vg_allow_give_back(int kind, uint64_t size);

/* Per rule: allocations let through and their bytes (cumulative). */
void vg_allow_count(int rule, uint64_t size);
struct vg_allow_stats {
    uint64_t allocations[VG_ALLOW_RULES_MAX];
    uint64_t bytes[VG_ALLOW_RULES_MAX];
    uint64_t live[VG_AK_COUNT]; /* live bytes let through by rules, per kind */
};
void vg_allow_stats(struct vg_allow_stats *out);

/* The narrowest rule that would let this allocation through:
 * KIND[:MODULE]:<=SIZE, SIZE rounded up to a power of two; no bound when
 * the size is unknown (0: an import before it is mapped), which no sized
 * rule matches. */
void vg_allow_narrowest(int kind, uint64_t size, const char *module, char *out, size_t out_size);

void vg_allow_reset_after_fork(void);

#endif
