#include "allow.h"
#include "model.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[VG_AK_COUNT] = {"pinned", "registered", "managed"};

const char *vg_allow_kind_name(int allow_kind)
{
    return allow_kind >= 0 && allow_kind < VG_AK_COUNT ? kind_names[allow_kind] : "none";
}

int vg_allow_kind_of(int kind)
{
    switch (kind) {
    case VG_KIND_HOST_PINNED: return VG_AK_PINNED;
    case VG_KIND_HOST_REGISTERED: return VG_AK_REGISTERED;
    case VG_KIND_MANAGED: return VG_AK_MANAGED;
    default: return -1;
    }
}

/* Does a rule of `rule_kind` cover memory of allowance kind `ak`? pinned
 * covers registrations too (VRAMGUARD_ALLOW=pinned always meant both). */
static bool covers(int rule_kind, int ak)
{
    return rule_kind == ak || (rule_kind == VG_AK_PINNED && ak == VG_AK_REGISTERED);
}

/* ---- the grammar ------------------------------------------------------------- */

bool vg_parse_size(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return false;
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool vg_glob_valid(const char *glob)
{
    for (const char *p = glob; *p; p++) {
        if (*p == '\\') {
            if (*++p == '\0')
                return false;
        } else if (*p == '[') {
            const char *q = p + 1;
            if (*q == '!' || *q == '^')
                q++;
            if (*q == ']')
                q++; /* a ']' first is a member */
            while (*q && *q != ']')
                q++;
            if (*q == '\0')
                return false;
            p = q;
        }
    }
    return true;
}

/* One condition into `r` (or the cap). False with `why` when malformed. */
static bool parse_cond(char *c, struct vg_allow_rule *r, uint64_t *cap, const char **why)
{
    if (strncmp(c, "total<=", 7) == 0) {
        if (!vg_parse_size(c + 7, cap)) {
            *why = "the cap is not total<=NUMBER[K|M|G|T]";
            return false;
        }
        return true;
    }
    if (c[0] == '<' || c[0] == '>') {
        bool eq = c[1] == '=';
        uint64_t v;
        if (!vg_parse_size(c + (eq ? 2 : 1), &v)) {
            *why = "a size bound is not (<=|<|>=|>)NUMBER[K|M|G|T]";
            return false;
        }
        uint64_t lo = 0, hi = UINT64_MAX;
        if (c[0] == '<') {
            if (!eq && v == 0) {
                *why = "<0 lets nothing through";
                return false;
            }
            hi = eq ? v : v - 1;
        } else {
            if (!eq && v == UINT64_MAX) {
                *why = "a bound past the largest size lets nothing through";
                return false;
            }
            lo = eq ? v : v + 1;
        }
        /* Several bounds narrow each other. */
        if (lo > r->lo)
            r->lo = lo;
        if (hi < r->hi)
            r->hi = hi;
        if (r->lo > r->hi) {
            *why = "its size bounds leave no size";
            return false;
        }
        r->sized = true;
        return true;
    }
    if (c[0] == '\0') {
        *why = "an empty condition";
        return false;
    }
    if (r->glob[0]) {
        *why = "more than one module glob";
        return false;
    }
    if (strlen(c) >= sizeof(r->glob)) {
        *why = "the module glob is too long";
        return false;
    }
    if (!vg_glob_valid(c)) {
        *why = "the module glob has an unclosed [ or a trailing \\";
        return false;
    }
    strcpy(r->glob, c);
    return true;
}

/* One RULE of `len` bytes at `s`. */
static bool parse_rule(const char *s, size_t len, struct vg_allow_rule *r, uint64_t *cap, const char **why)
{
    char text[VG_ALLOW_TEXT];
    if (len == 0) {
        *why = "an empty rule";
        return false;
    }
    if (len >= sizeof(text)) {
        *why = "the rule is too long";
        return false;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    memset(r, 0, sizeof(*r));
    r->hi = UINT64_MAX;
    strcpy(r->text, text);
    char *cond = strchr(text, ':');
    if (cond)
        *cond++ = '\0';
    int kind = -1;
    for (int k = 0; k < VG_AK_COUNT; k++)
        if (strcmp(text, kind_names[k]) == 0)
            kind = k;
    if (kind < 0) {
        *why = "unknown kind; accepted: pinned, registered, managed, each with :MODULE-GLOB, :<=SIZE, "
               ":total<=SIZE conditions; or none alone";
        return false;
    }
    r->kind = (uint8_t)kind;
    *cap = UINT64_MAX;
    while (cond) {
        char *next = strchr(cond, ':');
        if (next)
            *next++ = '\0';
        if (!parse_cond(cond, r, cap, why))
            return false;
        cond = next;
    }
    return true;
}

int vg_allow_compile(const char *spec, struct vg_allowances *out, vg_allow_bad_fn bad, void *ctx)
{
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < VG_AK_COUNT; k++)
        out->cap[k] = UINT64_MAX;
    if (spec == NULL || spec[0] == '\0' || strcmp(spec, "none") == 0)
        return 0;
    const char *p = spec;
    for (;;) {
        size_t len = strcspn(p, ",");
        struct vg_allow_rule r;
        uint64_t cap;
        const char *why = NULL;
        char shown[VG_ALLOW_TEXT];
        snprintf(shown, sizeof(shown), "%.*s", (int)(len < sizeof(shown) - 1 ? len : sizeof(shown) - 1), p);
        if (out->n == VG_ALLOW_RULES_MAX) {
            if (bad)
                bad(shown, "more than 16 rules", ctx);
        } else if (!parse_rule(p, len, &r, &cap, &why)) {
            if (bad)
                bad(shown, why, ctx);
        } else {
            if (cap != UINT64_MAX && cap < out->cap[r.kind])
                out->cap[r.kind] = cap;
            out->rule[out->n++] = r;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    for (int i = 0; i < out->n; i++) {
        const struct vg_allow_rule *r = &out->rule[i];
        if (!r->sized && !r->glob[0])
            out->bare |= 1u << r->kind;
    }
    for (int k = 0; k < VG_AK_COUNT; k++)
        if (out->cap[k] != UINT64_MAX)
            out->bare &= ~(1u << k);
    return out->n;
}

/* ---- matching ------------------------------------------------------------------ */

int vg_allow_match(const struct vg_allowances *a, int kind, uint64_t size, const char *module)
{
    int ak = vg_allow_kind_of(kind);
    if (ak < 0)
        return -1;
    for (int i = 0; i < a->n; i++) {
        const struct vg_allow_rule *r = &a->rule[i];
        if (!covers(r->kind, ak) || size < r->lo || size > r->hi)
            continue;
        if (r->sized && size == 0) /* an unknown size (an import before it is mapped) meets no bound */
            continue;
        if (r->glob[0] && (module == NULL || fnmatch(r->glob, module, 0) != 0))
            continue;
        return i;
    }
    return -1;
}

bool vg_allow_needs_module(const struct vg_allowances *a, int kind)
{
    int ak = vg_allow_kind_of(kind);
    for (int i = 0; ak >= 0 && i < a->n; i++)
        if (covers(a->rule[i].kind, ak) && a->rule[i].glob[0])
            return true;
    return false;
}

/* ---- caps and counts ------------------------------------------------------------- */

static _Atomic uint64_t live[VG_AK_COUNT];
static _Atomic uint64_t rule_allocations[VG_ALLOW_RULES_MAX], rule_bytes[VG_ALLOW_RULES_MAX];

/* The caps covering memory of allowance kind `ak`: its own and pinned's. */
static int covering(int ak, int out[2])
{
    int n = 0;
    out[n++] = ak;
    if (ak == VG_AK_REGISTERED)
        out[n++] = VG_AK_PINNED;
    return n;
}

bool vg_allow_take(const struct vg_allowances *a, int kind, uint64_t size)
{
    int ak = vg_allow_kind_of(kind), ks[2];
    if (ak < 0)
        return false;
    int n = covering(ak, ks);
    for (int i = 0; i < n; i++) {
        uint64_t was = atomic_fetch_add(&live[ks[i]], size);
        if (a && a->cap[ks[i]] != UINT64_MAX && (was + size > a->cap[ks[i]] || was + size < was)) {
            for (int j = 0; j <= i; j++)
                atomic_fetch_sub(&live[ks[j]], size);
            return false;
        }
    }
    return true;
}

void vg_allow_give_back(int kind, uint64_t size)
{
    int ak = vg_allow_kind_of(kind), ks[2];
    if (ak < 0)
        return;
    int n = covering(ak, ks);
    for (int i = 0; i < n; i++)
        atomic_fetch_sub(&live[ks[i]], size);
}

void vg_allow_count(int rule, uint64_t size)
{
    if (rule < 0 || rule >= VG_ALLOW_RULES_MAX)
        return;
    atomic_fetch_add_explicit(&rule_allocations[rule], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rule_bytes[rule], size, memory_order_relaxed);
}

void vg_allow_stats(struct vg_allow_stats *out)
{
    for (int i = 0; i < VG_ALLOW_RULES_MAX; i++) {
        out->allocations[i] = atomic_load_explicit(&rule_allocations[i], memory_order_relaxed);
        out->bytes[i] = atomic_load_explicit(&rule_bytes[i], memory_order_relaxed);
    }
    for (int k = 0; k < VG_AK_COUNT; k++)
        out->live[k] = atomic_load_explicit(&live[k], memory_order_relaxed);
}

void vg_allow_reset_after_fork(void)
{
    for (int k = 0; k < VG_AK_COUNT; k++)
        atomic_store(&live[k], 0);
    for (int i = 0; i < VG_ALLOW_RULES_MAX; i++) {
        atomic_store(&rule_allocations[i], 0);
        atomic_store(&rule_bytes[i], 0);
    }
}

/* ---- the narrowest rule ------------------------------------------------------------ */

void vg_allow_narrowest(int kind, uint64_t size, const char *module, char *out, size_t out_size)
{
    int ak = vg_allow_kind_of(kind);
    if (size == 0) { /* unknown: no bound */
        snprintf(out, out_size, "%s%s%s", vg_allow_kind_name(ak < 0 ? VG_AK_PINNED : ak), module ? ":" : "",
                 module ? module : "");
        return;
    }
    uint64_t bound = 1;
    while (bound < size && bound < (UINT64_C(1) << 62))
        bound <<= 1;
    static const char *const suffix[] = {"", "K", "M", "G", "T"};
    int s = 0;
    while (s < 4 && bound >= 1024 && bound % 1024 == 0) {
        bound /= 1024;
        s++;
    }
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu%s", (unsigned long long)bound, suffix[s]);
    snprintf(out, out_size, "%s%s%s:<=%s", vg_allow_kind_name(ak < 0 ? VG_AK_PINNED : ak), module ? ":" : "",
             module ? module : "", sz);
}
