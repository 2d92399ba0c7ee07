/* Unit tests for shim/model/policy.c: every policy x kind x allow combination. */
#include "policy.h"
#include "model.h"

#include <check.h>
#include <string.h>

static struct vg_config cfg_of(enum vg_policy_mode policy, unsigned allow)
{
    struct vg_config c;
    memset(&c, 0, sizeof(c));
    c.policy = policy;
    c.allow = allow;
    c.fail_on = VG_FAIL_ON_VIOLATION;
    return c;
}

struct expectation {
    enum vg_policy_mode policy;
    unsigned allow;
    int kind;
    enum vg_action action;
    CUresult refusal;
};

/* The whole table, written out from policy.h's contract. */
static const struct expectation table[] = {
    /* device memory: always allowed */
    {VG_POLICY_REJECT, 0, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_REJECT, VG_ALLOW_PINNED, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_WARN, 0, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_WARN, VG_ALLOW_PINNED, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, 0, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, VG_ALLOW_PINNED, VG_KIND_DEVICE, VG_ACTION_ALLOW, CUDA_SUCCESS},
    /* host-pinned: refused NOT_PERMITTED under reject unless allowed */
    {VG_POLICY_REJECT, 0, VG_KIND_HOST_PINNED, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_REJECT, VG_ALLOW_PINNED, VG_KIND_HOST_PINNED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_WARN, 0, VG_KIND_HOST_PINNED, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_WARN, VG_ALLOW_PINNED, VG_KIND_HOST_PINNED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, 0, VG_KIND_HOST_PINNED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, VG_ALLOW_PINNED, VG_KIND_HOST_PINNED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    /* managed: refused NOT_SUPPORTED under reject; ALLOW=pinned does not help */
    {VG_POLICY_REJECT, 0, VG_KIND_MANAGED, VG_ACTION_REJECT, CUDA_ERROR_NOT_SUPPORTED},
    {VG_POLICY_REJECT, VG_ALLOW_PINNED, VG_KIND_MANAGED, VG_ACTION_REJECT, CUDA_ERROR_NOT_SUPPORTED},
    {VG_POLICY_WARN, 0, VG_KIND_MANAGED, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_WARN, VG_ALLOW_PINNED, VG_KIND_MANAGED, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_OFF, 0, VG_KIND_MANAGED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, VG_ALLOW_PINNED, VG_KIND_MANAGED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    /* the other VRAM kinds and imported memory: always allowed */
    {VG_POLICY_REJECT, 0, VG_KIND_POOL, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_REJECT, 0, VG_KIND_VMM, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_REJECT, 0, VG_KIND_ARRAY, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_REJECT, 0, VG_KIND_IMPORTED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_WARN, 0, VG_KIND_POOL, VG_ACTION_ALLOW, CUDA_SUCCESS},
    /* registered host memory: as pinned */
    {VG_POLICY_REJECT, 0, VG_KIND_HOST_REGISTERED, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_REJECT, VG_ALLOW_PINNED, VG_KIND_HOST_REGISTERED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_WARN, 0, VG_KIND_HOST_REGISTERED, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_OFF, 0, VG_KIND_HOST_REGISTERED, VG_ACTION_ALLOW, CUDA_SUCCESS},
    /* an unknown kind is never VRAM: refused NOT_PERMITTED under reject */
    {VG_POLICY_REJECT, 0, VG_KIND_COUNT, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_REJECT, VG_ALLOW_PINNED, VG_KIND_COUNT, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_REJECT, 0, 9, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_REJECT, 0, -1, VG_ACTION_REJECT, CUDA_ERROR_NOT_PERMITTED},
    {VG_POLICY_WARN, 0, VG_KIND_COUNT, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_WARN, VG_ALLOW_PINNED, 200, VG_ACTION_WARN, CUDA_SUCCESS},
    {VG_POLICY_OFF, 0, VG_KIND_COUNT, VG_ACTION_ALLOW, CUDA_SUCCESS},
    {VG_POLICY_OFF, VG_ALLOW_PINNED, -3, VG_ACTION_ALLOW, CUDA_SUCCESS},
};

START_TEST(test_policy_table)
{
    const struct expectation *e = &table[_i];
    struct vg_config c = cfg_of(e->policy, e->allow);
    struct vg_decision d = vg_policy_decide(&c, e->kind);
    ck_assert_msg(d.action == e->action, "policy %d allow %u kind %d: action %d, expected %d", e->policy,
                  e->allow, e->kind, d.action, e->action);
    ck_assert_msg(d.refusal == e->refusal, "policy %d allow %u kind %d: refusal %d, expected %d", e->policy,
                  e->allow, e->kind, (int)d.refusal, (int)e->refusal);
}
END_TEST

START_TEST(test_refusal_only_with_reject)
{
    /* Invariant over a wide range of kinds: refusal is CUDA_SUCCESS unless
     * the action is reject, and reject always carries an error. */
    for (int pol = VG_POLICY_REJECT; pol <= VG_POLICY_OFF; pol++)
        for (unsigned allow = 0; allow <= VG_ALLOW_PINNED; allow++)
            for (int kind = -2; kind < 20; kind++) {
                struct vg_config c = cfg_of((enum vg_policy_mode)pol, allow);
                struct vg_decision d = vg_policy_decide(&c, kind);
                if (d.action == VG_ACTION_REJECT)
                    ck_assert_int_ne(d.refusal, CUDA_SUCCESS);
                else
                    ck_assert_int_eq(d.refusal, CUDA_SUCCESS);
                if (kind == VG_KIND_DEVICE)
                    ck_assert_int_eq(d.action, VG_ACTION_ALLOW);
                if (pol == VG_POLICY_OFF)
                    ck_assert_int_eq(d.action, VG_ACTION_ALLOW);
                if (pol == VG_POLICY_WARN)
                    ck_assert_int_ne(d.action, VG_ACTION_REJECT);
            }
}
END_TEST

START_TEST(test_unknown_allow_bits_ignored)
{
    /* bits past the three allowance kinds allow nothing */
    struct vg_config c = cfg_of(VG_POLICY_REJECT, ~0u << VG_AK_COUNT);
    struct vg_decision d = vg_policy_decide(&c, VG_KIND_MANAGED);
    ck_assert_int_eq(d.action, VG_ACTION_REJECT);
    ck_assert_int_eq(d.refusal, CUDA_ERROR_NOT_SUPPORTED);
    d = vg_policy_decide(&c, VG_KIND_HOST_PINNED);
    ck_assert_int_eq(d.action, VG_ACTION_REJECT);
    ck_assert_int_eq(d.refusal, CUDA_ERROR_NOT_PERMITTED);
    /* each kind's bit allows that kind; pinned's also registrations */
    c = cfg_of(VG_POLICY_REJECT, 1u << VG_AK_REGISTERED);
    ck_assert_int_eq(vg_policy_decide(&c, VG_KIND_HOST_REGISTERED).action, VG_ACTION_ALLOW);
    ck_assert_int_eq(vg_policy_decide(&c, VG_KIND_HOST_PINNED).action, VG_ACTION_REJECT);
    c = cfg_of(VG_POLICY_REJECT, 1u << VG_AK_MANAGED);
    ck_assert_int_eq(vg_policy_decide(&c, VG_KIND_MANAGED).action, VG_ACTION_ALLOW);
    ck_assert_int_eq(vg_policy_decide(&c, VG_KIND_HOST_PINNED).action, VG_ACTION_REJECT);
}
END_TEST

START_TEST(test_fast_path_agrees)
{
    /* The hot path skips vg_policy_decide for the kinds
     * vg_policy_always_allows names: that must be exactly the kinds every
     * configuration allows. */
    for (int kind = -2; kind < 20; kind++) {
        bool allowed_everywhere = true;
        for (int pol = VG_POLICY_REJECT; pol <= VG_POLICY_OFF; pol++)
            for (unsigned allow = 0; allow <= VG_ALLOW_PINNED; allow++) {
                struct vg_config c = cfg_of((enum vg_policy_mode)pol, allow);
                if (vg_policy_decide(&c, kind).action != VG_ACTION_ALLOW)
                    allowed_everywhere = false;
            }
        if (kind >= 0 && kind < VG_KIND_COUNT)
            ck_assert_msg(vg_policy_always_allows(kind) == allowed_everywhere, "kind %d", kind);
        else
            ck_assert_msg(!vg_policy_always_allows(kind), "kind %d", kind);
    }
}
END_TEST

Suite *make_policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_policy_table, 0, (int)(sizeof(table) / sizeof(table[0])));
    tcase_add_test(tc, test_refusal_only_with_reject);
    tcase_add_test(tc, test_unknown_allow_bits_ignored);
    tcase_add_test(tc, test_fast_path_agrees);
    suite_add_tcase(s, tc);
    return s;
}
