/* The exported dlsym. See dlsym_hook.c: route, then tail-jump with the
 * caller's return address untouched (and passed as a third argument, for
 * the shim's own routes). */
#if defined(__x86_64__)
#include <cet.h> /* with -fcf-protection: endbr64 and the IBT/SHSTK property note */
    .text
    .globl dlsym
    .type dlsym, @function
dlsym:
    .cfi_startproc
    _CET_ENDBR
    push %rdi
    .cfi_adjust_cfa_offset 8
    push %rsi
    .cfi_adjust_cfa_offset 8
    sub $8, %rsp                /* keep the stack 16-byte aligned for the call */
    .cfi_adjust_cfa_offset 8
    mov 24(%rsp), %rdx          /* vg_dlsym_route(name, handle, caller) */
    mov %rdi, %rax
    mov %rsi, %rdi
    mov %rax, %rsi
    call vg_dlsym_route
    add $8, %rsp
    .cfi_adjust_cfa_offset -8
    pop %rsi
    .cfi_adjust_cfa_offset -8
    pop %rdi
    .cfi_adjust_cfa_offset -8
    mov (%rsp), %rdx            /* the caller, a third argument glibc's dlsym ignores */
    jmp *%rax                   /* (handle, name) still in rdi, rsi */
    .cfi_endproc
    .size dlsym, .-dlsym
#elif defined(__aarch64__)
    .text
    .globl dlsym
    .type dlsym, %function
dlsym:
    .cfi_startproc
    stp x29, x30, [sp, -32]!
    .cfi_def_cfa_offset 32
    .cfi_offset 29, -32
    .cfi_offset 30, -24
    mov x29, sp
    stp x0, x1, [sp, 16]
    mov x2, x30                 /* vg_dlsym_route(name, handle, caller) */
    mov x3, x0
    mov x0, x1
    mov x1, x3
    bl vg_dlsym_route
    mov x16, x0
    ldp x0, x1, [sp, 16]
    ldp x29, x30, [sp], 32
    .cfi_def_cfa_offset 0
    mov x2, x30                 /* the caller, a third argument glibc's dlsym ignores */
    br x16
    .cfi_endproc
    .size dlsym, .-dlsym
#else
#error "vramguard's dlsym trampoline supports x86_64 and aarch64"
#endif
    .section .note.GNU-stack,"",%progbits
