#include "rules.h"
#include "allow.h"
#include "forksafe.h"
#include "model.h"
#include "modules.h"
#include "process.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_MODULE, OP_GE, OP_GT, OP_LE, OP_LT };

struct rule {
    enum op op;
    char glob[128];
    uint64_t bytes;
    int purpose;
};

static struct rule rules[VG_MAX_RULES];
static int n_rules;
atomic_bool vg_rules_on;

/* Size rules as ranges [lo, hi] (a rule that can never match has none). */
struct size_range {
    uint64_t lo, hi;
    bool any;
};
static struct size_range ranges[VG_MAX_RULES];

static void forget_modules(void);

static bool fail(char *err, size_t n, const char *fmt, const char *a, int index)
{
    if (err && n)
        snprintf(err, n, fmt, index, a);
    return false;
}

/* Parse one RULE of length `len` at `s` into `r`. */
static bool parse_rule(const char *s, size_t len, int index, struct rule *r, char *err, size_t n)
{
    char text[256];
    if (len == 0 || len >= sizeof(text))
        return fail(err, n, "rule %d '%s' is empty or too long", "", index);
    memcpy(text, s, len);
    text[len] = '\0';
    char *eq = strrchr(text, '=');
    if (eq == NULL || eq == text)
        return fail(err, n, "rule %d '%s' is not MATCH=PURPOSE", text, index);
    *eq = '\0';
    const char *match = text, *purpose = eq + 1;
    r->purpose = vg_purpose_from_name(purpose);
    if (r->purpose < 0)
        return fail(err, n, "rule %d names an unknown purpose '%s' (weights, kv_cache, intermediate, unknown)",
                    purpose, index);
    if (match[0] == '>' || match[0] == '<') {
        bool eqsign = match[1] == '=';
        r->op = match[0] == '>' ? (eqsign ? OP_GE : OP_GT) : (eqsign ? OP_LE : OP_LT);
        const char *num = match + (eqsign ? 2 : 1);
        if (!isdigit((unsigned char)*num))
            return fail(err, n, "rule %d size '%s' is not a number", match, index);
        if (!vg_parse_size(num, &r->bytes))
            return fail(err, n, "rule %d size '%s' is not NUMBER[K|M|G|T] below 2^64", match, index);
        return true;
    }
    if (strlen(match) >= sizeof(r->glob))
        return fail(err, n, "rule %d module pattern '%s' is too long", match, index);
    if (!vg_glob_valid(match))
        return fail(err, n, "rule %d module pattern '%s' has an unclosed [ or a trailing \\", match, index);
    r->op = OP_MODULE;
    strcpy(r->glob, match);
    return true;
}

static int compile(const char *spec, struct rule *out, char *err, size_t n)
{
    int count = 0;
    const char *p = spec;
    if (spec == NULL || spec[0] == '\0')
        return fail(err, n, "rule %d%s: the rules are empty", "", 0), -1;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (count == VG_MAX_RULES)
            return fail(err, n, "more than %d rules%s", "", VG_MAX_RULES), -1;
        if (!parse_rule(p, len, count + 1, &out[count], err, n))
            return -1;
        count++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    return count;
}

bool vg_rules_valid(const char *spec, char *err, size_t err_size)
{
    struct rule scratch[VG_MAX_RULES];
    return compile(spec, scratch, err, err_size) > 0;
}

void vg_rules_load(const char *spec)
{
    int n = spec && spec[0] ? compile(spec, rules, NULL, 0) : -1;
    n_rules = n > 0 ? n : 0;
    for (int i = 0; i < n_rules; i++) {
        const struct rule *r = &rules[i];
        uint64_t lo = 0, hi = UINT64_MAX;
        bool empty = false; /* > the largest size, < 0: a rule that never matches */
        switch (r->op) {
        case OP_GE: lo = r->bytes; break;
        case OP_GT: empty = r->bytes == UINT64_MAX; lo = r->bytes + 1; break;
        case OP_LE: hi = r->bytes; break;
        case OP_LT: empty = r->bytes == 0; hi = r->bytes - 1; break;
        default: empty = true; break; /* a module rule */
        }
        ranges[i] = (struct size_range){lo, hi, !empty};
    }
    forget_modules(); /* rules are loaded once per process; tests load them again, on one thread */
    atomic_store(&vg_rules_on, n_rules > 0);
    vg_process_slow_set(VG_SLOW_RULES, n_rules > 0);
}

/* ---- module of a caller: its first module rule, per module ------------------- */

/* By the slot in which modules.c caches the module's name: the answer in
 * the low byte (rule index + 1, 0 none), above it the generation it was
 * learned in: the modules unloaded so far (a slot is refilled after an
 * unload) and the rules loaded so far. Written and read lock-free: an
 * answer of another generation is never used. */
static _Atomic uint64_t first_rule_of_slot[VG_MODULE_SLOTS];
static atomic_uint rules_loads;

static inline uint64_t generation(unsigned long long unloads)
{
    return ((uint64_t)unloads << 24 | (atomic_load_explicit(&rules_loads, memory_order_relaxed) & 0xffff)) << 8;
}

/* The last call site this thread asked about and the answer for it: a
 * worker allocates from a handful of call sites, mostly sizes that the same
 * rules decide, so this saves the module lookup and the rules on most calls.
 * The answer (`purpose`, -1 none) holds for sizes in [lo, lo + span] (no size
 * rule starts or ends inside), while no module was unloaded. */
static __thread struct {
    void *caller;
    unsigned long long unloads; /* ~0: nothing cached */
    uint64_t lo, span;
    int first_rule; /* the caller's module's first matching module rule, -1 none, -2 not looked up */
    int purpose;
} last_site __attribute__((tls_model("initial-exec"))) = {.unloads = ~0ull};

/* What was learned under other rules: this thread's answer and each module's first rule. */
static void forget_modules(void)
{
    last_site.unloads = ~0ull;
    atomic_fetch_add_explicit(&rules_loads, 1, memory_order_relaxed);
}

__attribute__((noinline)) static int first_module_rule_uncached(void *caller, unsigned long long unloads);

static int first_module_rule(void *caller, unsigned long long unloads)
{
    if (last_site.caller == caller && last_site.unloads == unloads && last_site.first_rule != -2)
        return last_site.first_rule;
    return first_module_rule_uncached(caller, unloads);
}

__attribute__((noinline)) static int first_module_rule_uncached(void *caller, unsigned long long unloads)
{
    /* `unloads` was read before the slot and is checked again after it (it
     * only grows): equal, and the slot and its answer are of one generation. */
    uint64_t gen = generation(unloads);
    int slot = vg_module_slot(caller);
    if (slot >= 0) {
        uint64_t known = atomic_load_explicit(&first_rule_of_slot[slot], memory_order_acquire);
        if ((known & ~UINT64_C(0xff)) == gen && vg_modules_unloads() == unloads)
            return (int)(known & 0xff) - 1;
    }
    char base[128];
    if (!vg_module_name(caller, base, sizeof(base))) /* caches the module when it can */
        return -1;
    int first = -1;
    for (int i = 0; i < n_rules && first < 0; i++)
        if (rules[i].op == OP_MODULE && fnmatch(rules[i].glob, base, 0) == 0)
            first = i;
    if (slot < 0)
        slot = vg_module_slot(caller);
    if (slot >= 0 && vg_modules_unloads() == unloads) /* else a module went meanwhile: not kept */
        atomic_store_explicit(&first_rule_of_slot[slot], gen | (uint64_t)(first + 1), memory_order_release);
    return first;
}

/* `meta` (table.h's packing: the purpose is its low two bits) with the
 * purpose `purpose`, unchanged for -1. */
static inline uint32_t with_purpose(uint32_t meta, int purpose)
{
    return purpose < 0 ? meta : (meta & ~UINT32_C(3)) | (uint32_t)purpose;
}

/* The first rule that matches `size` from `caller`, and the sizes around
 * `size` for which that holds (no size rule starts or ends inside). */
__attribute__((noinline)) static int decide(void *caller, uint64_t size)
{
    unsigned long long unloads = vg_modules_unloads();
    int first_rule = -2; /* not looked up */
    int purpose = -1;
    uint64_t lo = 0, hi = UINT64_MAX;
    for (int i = 0; i < n_rules; i++) {
        const struct size_range *r = &ranges[i];
        if (rules[i].op == OP_MODULE) {
            if (purpose >= 0)
                continue;
            if (first_rule == -2)
                first_rule = first_module_rule(caller, unloads);
            if (first_rule == i)
                purpose = rules[i].purpose;
            continue;
        }
        if (!r->any)
            continue;
        bool in = size >= r->lo && size <= r->hi;
        if (in && purpose < 0)
            purpose = rules[i].purpose;
        /* Narrow [lo, hi] to the side of this rule's bounds that holds size. */
        if (in) {
            lo = r->lo > lo ? r->lo : lo;
            hi = r->hi < hi ? r->hi : hi;
        } else if (size < r->lo) {
            hi = r->lo - 1 < hi ? r->lo - 1 : hi;
        } else {
            lo = r->hi + 1 > lo ? r->hi + 1 : lo;
        }
    }
    if (first_rule == -2 && last_site.caller == caller && last_site.unloads == unloads)
        first_rule = last_site.first_rule; /* not needed for this size: keep what was known */
    last_site.caller = caller;
    last_site.unloads = unloads;
    last_site.lo = lo;
    last_site.span = hi - lo;
    last_site.first_rule = first_rule;
    last_site.purpose = purpose;
    return purpose;
}

__attribute__((noinline)) static uint32_t decide_meta(uint32_t meta, void *caller, uint64_t size)
{
    return with_purpose(meta, decide(caller, size));
}

/* This thread's last answer holds for `caller` and `size`. */
static inline bool remembered(void *caller, uint64_t size)
{
    return last_site.caller == caller && last_site.unloads == vg_modules_unloads() &&
           size - last_site.lo <= last_site.span;
}

/* The first matching rule wins: a leaf when the call site and the size's
 * range are this thread's last. */
uint32_t vg_rules_meta(uint32_t meta, void *caller, uint64_t size)
{
    if (remembered(caller, size))
        return with_purpose(meta, last_site.purpose);
    return decide_meta(meta, caller, size);
}

int vg_rules_purpose(void *caller, uint64_t size)
{
    return remembered(caller, size) ? last_site.purpose : decide(caller, size);
}
