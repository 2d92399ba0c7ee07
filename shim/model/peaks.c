/* Exact peaks as budgets (peaks.h): the rare cases. Blocks are static (no
 * heap: a take can be on any path), claimed by a thread on its first take
 * or give and released when it ends; a released block keeps its slack (a
 * sweep still sees it) and the next thread to claim it inherits it. */
#include "peaks.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

enum { BLOCKS = 256, CELLS = VG_PEAKS_CELLS, SLOTS = VG_MAX_DEVICES + 1 };

struct vg_peaks_block vg_peaks_none = {.lock = 1};
uint8_t vg_peaks_device_slot[CELLS];

static struct vg_peaks_block blocks[BLOCKS];
static int blocks_used; /* blocks ever claimed: a sweep looks at these */

/* Under the global lock. */
static atomic_int global_lock;
static uint64_t pool_cell[CELLS], pool_device[SLOTS];
static _Atomic uint64_t peak_cell[CELLS], peak_device[VG_MAX_DEVICES];

static pthread_key_t block_key;
static pthread_once_t block_key_once = PTHREAD_ONCE_INIT;
static bool block_key_made;

/* The slot map, before the first allocation can be recorded. */
__attribute__((constructor)) static void map_slots(void)
{
    for (uint32_t c = 0; c < CELLS; c++)
        vg_peaks_device_slot[c] = (uint8_t)(vg_kind_is_vram((int)(c >> 2 & 7)) ? c >> 5 : VG_PEAKS_NO_DEVICE);
}

/* A thread ends: its block is free for the next thread, slack and all. */
static void block_gone(void *arg)
{
    struct vg_peaks_block *b = arg;
    vg_spin_wait(&global_lock);
    b->in_use = 0;
    vg_spin_unlock(&global_lock);
    if (vg_tls_call.peaks == b)
        vg_tls_call.peaks = &vg_peaks_none;
}

static void make_block_key(void)
{
    block_key_made = pthread_key_create(&block_key, block_gone) == 0;
}

/* This thread's block, claimed now (global lock held): NULL when every
 * block belongs to a live thread, or no thread end could be seen. */
static struct vg_peaks_block *claim(void)
{
    if (!block_key_made)
        return NULL;
    struct vg_peaks_block *b = NULL;
    for (int i = 0; i < blocks_used && !b; i++)
        if (!blocks[i].in_use)
            b = &blocks[i];
    if (!b && blocks_used < BLOCKS)
        b = &blocks[blocks_used++];
    if (!b || pthread_setspecific(block_key, b) != 0)
        return NULL;
    b->in_use = 1;
    vg_tls_call.peaks = b;
    return b;
}

/* The start of both slow paths: the global lock taken, and this thread's
 * block (claimed now if it had none; NULL when none is free). */
static struct vg_peaks_block *lock_global_and_mine(void)
{
    if (vg_tls_call.peaks == &vg_peaks_none)
        pthread_once(&block_key_once, make_block_key); /* not under the spin lock */
    vg_spin_wait(&global_lock);
    return vg_tls_call.peaks != &vg_peaks_none ? vg_tls_call.peaks : claim();
}

/* Moves one block's slack of one cell or device slot (`offset` in the
 * block) into the pool, until the pool holds `want`: on pass 0 only what
 * the block holds beyond the size its owner last allocated through this
 * slow path (an owner that frees and allocates the same size in turn wants
 * it back: taking it would only send the owner here in its turn), on
 * pass 1 all. */
static void move_slack(struct vg_peaks_block *o, size_t offset, uint64_t *pool, uint64_t want, int pass)
{
    if (*pool >= want)
        return;
    uint64_t *slack = (uint64_t *)((char *)o + offset);
    uint64_t keep = pass == 0 && o->in_use ? o->keep : 0;
    uint64_t move = *slack > keep ? *slack - keep : 0;
    if (move > want - *pool)
        move = want - *pool;
    *pool += move;
    *slack -= move;
}

static bool enough(uint32_t cell, uint32_t slot, uint64_t size)
{
    return pool_cell[cell] >= size && (slot == VG_PEAKS_NO_DEVICE || pool_device[slot] >= size);
}

/* Gathers `size` of the cell's and the slot's slack into the pool from
 * the blocks (all of them locked by the caller, or each locked in turn:
 * `lock_each`). */
static void gather(uint32_t cell, uint32_t slot, uint64_t size, const struct vg_peaks_block *me, bool lock_each)
{
    size_t cell_at = offsetof(struct vg_peaks_block, cell) + cell * sizeof(uint64_t);
    size_t slot_at = offsetof(struct vg_peaks_block, device) + slot * sizeof(uint64_t);
    for (int pass = 0; pass < 2 && !enough(cell, slot, size); pass++)
        for (int i = 0; i < blocks_used && !enough(cell, slot, size); i++) {
            struct vg_peaks_block *o = &blocks[i];
            if (o == me)
                continue; /* its slack is in the pool already */
            if (lock_each)
                vg_spin_wait(&o->lock);
            move_slack(o, cell_at, &pool_cell[cell], size, pass);
            if (slot != VG_PEAKS_NO_DEVICE)
                move_slack(o, slot_at, &pool_device[slot], size, pass);
            if (lock_each)
                vg_spin_unlock(&o->lock);
        }
}

/* Takes `size` from the pool, first raising the peak by what the pool
 * lacks (called with every block locked and their slack gathered: the
 * peak minus the pool is then exactly the live bytes). */
static void take_from_pool(uint64_t *pool, _Atomic uint64_t *peak, uint64_t size)
{
    if (*pool < size) {
        atomic_store_explicit(peak, atomic_load_explicit(peak, memory_order_relaxed) + (size - *pool),
                              memory_order_relaxed);
        *pool = size;
    }
    *pool -= size;
}

/* This thread's slack is short. Its block stays locked throughout (only a
 * sweep, under the global lock, locks another thread's block: a thread
 * holds its own and waits for no other). Its slack goes to the pool, then
 * other blocks' one by one (moving slack changes no peak, so no two need
 * be locked together); only when all of theirs is not enough does a new
 * peak need an exact cut: every block locked at once. What is left in the
 * pool goes to this thread's block. */
void vg_peaks_take_slow(uint32_t cell, uint32_t slot, uint64_t size)
{
    struct vg_peaks_block *b = lock_global_and_mine();
    bool vram = slot != VG_PEAKS_NO_DEVICE;
    size_t cell_at = offsetof(struct vg_peaks_block, cell) + cell * sizeof(uint64_t);
    size_t slot_at = offsetof(struct vg_peaks_block, device) + slot * sizeof(uint64_t);
    if (b) {
        vg_spin_wait(&b->lock);
        move_slack(b, cell_at, &pool_cell[cell], UINT64_MAX, 1);
        if (vram)
            move_slack(b, slot_at, &pool_device[slot], UINT64_MAX, 1);
        b->keep = size;
    }
    gather(cell, slot, size, b, true);
    if (enough(cell, slot, size)) {
        pool_cell[cell] -= size;
        if (vram)
            pool_device[slot] -= size;
    } else { /* a new peak, or slack that moved meanwhile: the exact cut */
        for (int i = 0; i < blocks_used; i++)
            if (&blocks[i] != b)
                vg_spin_wait(&blocks[i].lock);
        gather(cell, slot, size, b, false);
        take_from_pool(&pool_cell[cell], &peak_cell[cell], size);
        if (vram)
            take_from_pool(&pool_device[slot], &peak_device[slot], size);
        for (int i = blocks_used - 1; i >= 0; i--)
            if (&blocks[i] != b)
                vg_spin_unlock(&blocks[i].lock);
    }
    if (b) { /* the rest to this thread: its next allocations need no sweep */
        b->cell[cell] += pool_cell[cell];
        pool_cell[cell] = 0;
        if (vram) {
            b->device[slot] += pool_device[slot];
            pool_device[slot] = 0;
        }
        vg_spin_unlock(&b->lock);
    }
    vg_spin_unlock(&global_lock);
}

void vg_peaks_give_slow(uint32_t cell, uint32_t slot, uint64_t size)
{
    struct vg_peaks_block *b = lock_global_and_mine();
    if (b) {
        vg_spin_wait(&b->lock);
        b->cell[cell] += size;
        b->device[slot] += size;
        vg_spin_unlock(&b->lock);
    } else {
        pool_cell[cell] += size;
        pool_device[slot] += size; /* slot VG_PEAKS_NO_DEVICE: never read */
    }
    vg_spin_unlock(&global_lock);
}

uint64_t vg_peaks_cell(uint32_t cell)
{
    return cell < CELLS ? atomic_load_explicit(&peak_cell[cell], memory_order_relaxed) : 0;
}

uint64_t vg_peaks_device(int device)
{
    return (unsigned)device < VG_MAX_DEVICES ? atomic_load_explicit(&peak_device[device], memory_order_relaxed) : 0;
}

void vg_peaks_fork_prepare(void)
{
    vg_spin_wait(&global_lock);
    for (int i = 0; i < blocks_used; i++)
        vg_spin_wait(&blocks[i].lock);
}

void vg_peaks_fork_parent(void)
{
    for (int i = blocks_used - 1; i >= 0; i--)
        vg_spin_unlock(&blocks[i].lock);
    vg_spin_unlock(&global_lock);
}

/* After fork, in the child (one thread): forget everything, unlock. */
void vg_peaks_reset(void)
{
    memset(blocks, 0, sizeof(blocks[0]) * (size_t)blocks_used);
    blocks_used = 0;
    memset(pool_cell, 0, sizeof(pool_cell));
    memset(pool_device, 0, sizeof(pool_device));
    for (int c = 0; c < CELLS; c++)
        atomic_store_explicit(&peak_cell[c], 0, memory_order_relaxed);
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        atomic_store_explicit(&peak_device[d], 0, memory_order_relaxed);
    vg_tls_call.peaks = &vg_peaks_none;
    if (block_key_made)
        pthread_setspecific(block_key, NULL);
    atomic_store_explicit(&global_lock, 0, memory_order_release);
}
