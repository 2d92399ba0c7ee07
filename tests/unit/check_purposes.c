/* Unit tests for shim/model/purposes.c (thread-local purpose stack, label pool)
 * and for the public header purpose_tags/vramguard.h without the shim. */
#include "purposes.h"
#include "model.h"
#include "vramguard.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static uint8_t cur_purpose(void)
{
    uint8_t p = 0xff;
    uint16_t l = 0xffff;
    vg_purpose_current(&p, &l);
    return p;
}

static uint16_t cur_label(void)
{
    uint8_t p = 0xff;
    uint16_t l = 0xffff;
    vg_purpose_current(&p, &l);
    return l;
}

START_TEST(test_default_unknown)
{
    ck_assert_int_eq(vg_purpose_depth(), 0);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(cur_label(), 0);
}
END_TEST

START_TEST(test_push_pop_nesting)
{
    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_WEIGHTS, "layer.0"), 1);
    uint16_t l0 = cur_label();
    ck_assert_int_ne(l0, 0);
    ck_assert_str_eq(vg_label_text(l0), "layer.0");
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_WEIGHTS);

    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_KV_CACHE, NULL), 2);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(cur_label(), 0);

    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_INTERMEDIATE, ""), 3);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(cur_label(), 0); /* "" means no label */
    ck_assert_int_eq(vg_purpose_depth(), 3);

    ck_assert_int_eq(vg_purpose_pop(), 2);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_purpose_pop(), 1);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(cur_label(), l0);
    ck_assert_int_eq(vg_purpose_pop(), 0);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(cur_label(), 0);
}
END_TEST

START_TEST(test_labels_interned)
{
    uint16_t a = vg_label_intern("attn.qkv");
    uint16_t b = vg_label_intern("mlp.up");
    char copy[] = "attn.qkv"; /* a different pointer, same text */
    uint16_t c = vg_label_intern(copy);
    ck_assert_int_ne(a, 0);
    ck_assert_int_ne(b, 0);
    ck_assert_int_ne(a, b);
    ck_assert_int_eq(a, c);
    ck_assert_str_eq(vg_label_text(a), "attn.qkv");
    ck_assert_str_eq(vg_label_text(b), "mlp.up");
    /* the pool holds a copy: changing the caller's buffer changes nothing */
    copy[0] = 'X';
    ck_assert_str_eq(vg_label_text(a), "attn.qkv");
    ck_assert_int_eq(vg_label_intern(NULL), 0);
    ck_assert_int_eq(vg_label_intern(""), 0);
    ck_assert_ptr_null(vg_label_text(0));
    ck_assert_ptr_null(vg_label_text(VG_LABEL_POOL)); /* out of range */

    /* push with the same label text gives the same index */
    vg_purpose_push(VG_PURPOSE_WEIGHTS, "mlp.up");
    ck_assert_int_eq(cur_label(), b);
    vg_purpose_pop();
}
END_TEST

START_TEST(test_invalid_purpose_pairs)
{
    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_WEIGHTS, NULL), 1);
    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_COUNT, "bad"), -1);
    ck_assert_int_eq(vg_purpose_depth(), 2);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(vg_purpose_push(-5, NULL), -1);
    ck_assert_int_eq(vg_purpose_push(255, NULL), -1);
    ck_assert_int_eq(vg_purpose_depth(), 4);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(vg_purpose_pop(), 3);
    ck_assert_int_eq(vg_purpose_pop(), 2);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
    /* the pop pairs with the invalid push: the weights frame is back */
    ck_assert_int_eq(vg_purpose_pop(), 1);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(vg_purpose_pop(), 0);
}
END_TEST

START_TEST(test_depth_beyond_stack)
{
    const int extra = 10;
    const int total = VG_PURPOSE_STACK_DEPTH + extra;
    for (int i = 0; i < total; i++) {
        int purpose = 1 + i % 3; /* weights, kv_cache, intermediate, ... */
        ck_assert_int_eq(vg_purpose_push(purpose, NULL), i + 1);
    }
    ck_assert_int_eq(vg_purpose_depth(), total);
    /* beyond the stack the purpose is still a pushed one, never garbage */
    uint8_t p = cur_purpose();
    ck_assert(p >= 1 && p <= 3);
    for (int i = total - 1; i >= 0; i--) {
        ck_assert_int_eq(vg_purpose_pop(), i);
        /* once back within the stack, every frame is exactly what was pushed */
        if (i > 0 && i <= VG_PURPOSE_STACK_DEPTH)
            ck_assert_int_eq(cur_purpose(), 1 + (i - 1) % 3);
    }
    ck_assert_int_eq(vg_purpose_depth(), 0);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_UNKNOWN);
}
END_TEST

START_TEST(test_pop_on_empty)
{
    ck_assert_int_eq(vg_purpose_pop(), 0);
    ck_assert_int_eq(vg_purpose_pop(), 0);
    ck_assert_int_eq(vg_purpose_depth(), 0);
    /* an extra pop must not make the next push land at a negative depth */
    ck_assert_int_eq(vg_purpose_push(VG_PURPOSE_KV_CACHE, NULL), 1);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_KV_CACHE);
}
END_TEST

struct thread_result {
    int depth_at_start;
    uint8_t purpose_at_start;
    int pushed_depth;
    uint8_t purpose_after_push;
};

static void *other_thread(void *arg)
{
    struct thread_result *r = arg;
    r->depth_at_start = vg_purpose_depth();
    r->purpose_at_start = cur_purpose();
    r->pushed_depth = vg_purpose_push(VG_PURPOSE_INTERMEDIATE, "thread");
    r->purpose_after_push = cur_purpose();
    /* deliberately leave it pushed: it must not leak into the main thread */
    return NULL;
}

START_TEST(test_per_thread_isolation)
{
    vg_purpose_push(VG_PURPOSE_WEIGHTS, "main");
    vg_purpose_push(VG_PURPOSE_KV_CACHE, NULL);
    struct thread_result r;
    memset(&r, 0xaa, sizeof(r));
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &r), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(r.depth_at_start, 0);
    ck_assert_int_eq(r.purpose_at_start, VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(r.pushed_depth, 1);
    ck_assert_int_eq(r.purpose_after_push, VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(vg_purpose_depth(), 2);
    ck_assert_int_eq(cur_purpose(), VG_PURPOSE_KV_CACHE);
    /* labels are process-wide though */
    ck_assert_int_ne(vg_label_intern("thread"), 0);
    ck_assert_str_eq(vg_label_text(vg_label_intern("thread")), "thread");
}
END_TEST

START_TEST(test_label_truncation)
{
    char longl[200];
    memset(longl, 'x', sizeof(longl) - 1);
    longl[sizeof(longl) - 1] = '\0';
    longl[0] = 'A';
    uint16_t i = vg_label_intern(longl);
    ck_assert_int_ne(i, 0);
    const char *t = vg_label_text(i);
    ck_assert_uint_eq(strlen(t), VG_LABEL_MAX - 1);
    ck_assert(strncmp(t, longl, VG_LABEL_MAX - 1) == 0);
    /* a label with the same first VG_LABEL_MAX-1 bytes is the same label */
    longl[150] = 'y';
    ck_assert_int_eq(vg_label_intern(longl), i);
    /* exactly VG_LABEL_MAX-1 bytes is kept whole and is that same label */
    longl[VG_LABEL_MAX - 1] = '\0';
    ck_assert_int_eq(vg_label_intern(longl), i);
    /* one byte shorter is different */
    longl[VG_LABEL_MAX - 2] = '\0';
    uint16_t j = vg_label_intern(longl);
    ck_assert_int_ne(j, i);
    ck_assert_uint_eq(strlen(vg_label_text(j)), VG_LABEL_MAX - 2);
}
END_TEST

/* true if s is well-formed UTF-8 (no truncated sequence at the end) */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0)
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

START_TEST(test_label_truncation_utf8_boundary)
{
    /* a 2-byte and a 3-byte character straddling the VG_LABEL_MAX-1 cut */
    static const char *const tails[] = {"\xc3\xa9\xc3\xa9", "\xe2\x82\xac\xe2\x82\xac"};
    for (int t = 0; t < 2; t++)
        for (int lead = VG_LABEL_MAX - 4; lead <= VG_LABEL_MAX - 1; lead++) {
            char label[VG_LABEL_MAX + 16];
            memset(label, 'a', (size_t)lead);
            strcpy(label + lead, tails[t]);
            const char *text = vg_label_text(vg_label_intern(label));
            ck_assert_ptr_nonnull(text);
            ck_assert_uint_le(strlen(text), VG_LABEL_MAX - 1);
            ck_assert_msg(valid_utf8(text), "label cut inside a character (tail %d, %d leading bytes)", t, lead);
            /* a prefix of the original, losing less than one character */
            ck_assert(strncmp(text, label, strlen(text)) == 0);
            ck_assert_uint_ge(strlen(text), VG_LABEL_MAX - 1 - 3);
        }
}
END_TEST

START_TEST(test_label_pool_overflow)
{
    char buf[32];
    uint16_t first = vg_label_intern("label-0");
    uint16_t last_distinct = 0;
    int distinct = 0;
    for (int n = 0; n < VG_LABEL_POOL + 50; n++) {
        snprintf(buf, sizeof(buf), "label-%d", n);
        uint16_t i = vg_label_intern(buf);
        ck_assert_int_ne(i, 0);
        ck_assert_int_lt(i, VG_LABEL_POOL);
        if (strcmp(vg_label_text(i), buf) == 0) {
            distinct++;
            last_distinct = i;
        } else {
            ck_assert_int_eq(i, VG_LABEL_POOL - 1);
            ck_assert_str_eq(vg_label_text(i), "(other labels)");
        }
    }
    /* slots 1..VG_LABEL_POOL-2 hold real labels; the last is the catch-all */
    ck_assert_int_eq(distinct, VG_LABEL_POOL - 2);
    ck_assert_int_eq(last_distinct, VG_LABEL_POOL - 2);
    /* labels interned before the pool filled keep their index and text */
    ck_assert_int_eq(vg_label_intern("label-0"), first);
    ck_assert_str_eq(vg_label_text(first), "label-0");
    ck_assert_int_eq(vg_label_intern("a brand new one"), VG_LABEL_POOL - 1);
    /* pushing a label that does not fit still tags with the catch-all */
    vg_purpose_push(VG_PURPOSE_WEIGHTS, "yet another");
    ck_assert_int_eq(cur_label(), VG_LABEL_POOL - 1);
    vg_purpose_pop();
}
END_TEST

/* ---- purpose_tags/vramguard.h without the shim -------------------------- */

START_TEST(test_public_header_noop_without_shim)
{
    /* The shim's objects are linked in statically but vramguard_shim_* are
     * not exported, so dlsym(RTLD_DEFAULT, ...) finds nothing. */
    ck_assert_int_eq(vramguard_loaded(), 0);
    ck_assert_int_eq(vramguard_purpose_push(VRAMGUARD_WEIGHTS, "x"), 0);
    ck_assert_int_eq(vramguard_purpose_push(42, NULL), 0); /* even invalid ones */
    ck_assert_int_eq(vramguard_purpose_pop(), 0);
    ck_assert_int_eq(vramguard_purpose_pop(), 0);
    /* it never reaches the internal stack either */
    ck_assert_int_eq(vg_purpose_depth(), 0);

    char buf[16];
    memset(buf, 'z', sizeof(buf));
    ck_assert_uint_eq(vramguard_report(buf, sizeof(buf)), 0);
    ck_assert_int_eq(buf[0], '\0');
    ck_assert_int_eq(buf[1], 'z'); /* nothing else written */
    ck_assert_uint_eq(vramguard_report(NULL, 0), 0);
    char one = 'q';
    ck_assert_uint_eq(vramguard_report(&one, 0), 0);
    ck_assert_int_eq(one, 'q'); /* size 0: untouched */

    struct vramguard_usage u;
    memset(&u, 0x5a, sizeof(u));
    u.size = sizeof(u);
    ck_assert_int_eq(vramguard_usage(&u), -1);
    ck_assert_uint_eq(u.size, sizeof(u));
    ck_assert_int_eq(vramguard_verify_residency(), 0);
    /* a second round uses the cached "not found" result and stays a no-op */
    ck_assert_int_eq(vramguard_loaded(), 0);
    ck_assert_int_eq(vramguard_usage(&u), -1);
}
END_TEST

START_TEST(test_public_header_scope_macro_without_shim)
{
    int ran = 0;
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE) {
        ran++;
        ck_assert_int_eq(vg_purpose_depth(), 0);
    }
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "layer.1") {
        ran++;
        break; /* leaving the scope early is fine */
    }
    ck_assert_int_eq(ran, 2); /* each body runs exactly once */
    ck_assert_int_eq(vg_purpose_depth(), 0);
}
END_TEST

START_TEST(test_public_constants_match_model)
{
    ck_assert_int_eq(VRAMGUARD_UNKNOWN, VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(VRAMGUARD_WEIGHTS, VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(VRAMGUARD_KV_CACHE, VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(VRAMGUARD_INTERMEDIATE, VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(VRAMGUARD_KIND_DEVICE, VG_KIND_DEVICE);
    ck_assert_int_eq(VRAMGUARD_KIND_HOST_PINNED, VG_KIND_HOST_PINNED);
    ck_assert_int_eq(VRAMGUARD_KIND_MANAGED, VG_KIND_MANAGED);
    ck_assert_int_eq(VRAMGUARD_MAX_DEVICES, VG_MAX_DEVICES);
    ck_assert_int_eq(VRAMGUARD_KIND_SLOTS, VG_KIND_SLOTS);
    ck_assert_int_eq(VRAMGUARD_PURPOSE_SLOTS, VG_PURPOSE_SLOTS);
}
END_TEST

Suite *make_purposes_suite(void)
{
    Suite *s = suite_create("purposes");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_default_unknown);
    tcase_add_test(tc, test_push_pop_nesting);
    tcase_add_test(tc, test_labels_interned);
    tcase_add_test(tc, test_invalid_purpose_pairs);
    tcase_add_test(tc, test_depth_beyond_stack);
    tcase_add_test(tc, test_pop_on_empty);
    tcase_add_test(tc, test_per_thread_isolation);
    tcase_add_test(tc, test_label_truncation);
    tcase_add_test(tc, test_label_truncation_utf8_boundary);
    tcase_add_test(tc, test_label_pool_overflow);
    suite_add_tcase(s, tc);
    TCase *pub = tcase_create("public_header");
    tcase_add_test(pub, test_public_header_noop_without_shim);
    tcase_add_test(pub, test_public_header_scope_macro_without_shim);
    tcase_add_test(pub, test_public_constants_match_model);
    suite_add_tcase(s, pub);
    return s;
}
