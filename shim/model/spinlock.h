/* The shim's spin locks (the table's shards, the peaks' blocks): held for a
 * few dozen instructions, never across a CUDA call or a log write. A waiter
 * spins a little, then yields: with more threads than cores the holder may
 * be preempted. */
#ifndef VG_SPINLOCK_H
#define VG_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

static inline bool vg_spin_try_lock(atomic_int *lock)
{
    return atomic_exchange_explicit(lock, 1, memory_order_acquire) == 0;
}

static inline void vg_spin_unlock(atomic_int *lock)
{
    atomic_store_explicit(lock, 0, memory_order_release);
}

/* Waits for the lock (after a failed vg_spin_try_lock, or instead of one). */
static inline void vg_spin_wait(atomic_int *lock)
{
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(lock, memory_order_relaxed) == 0 && vg_spin_try_lock(lock))
            return;
        if (spins < 100) {
#if defined(__x86_64__) || defined(__i386__)
            __asm__ volatile("pause");
#elif defined(__aarch64__)
            __asm__ volatile("yield");
#endif
        } else {
            sched_yield();
        }
    }
}

#endif
