/* Counts heap allocations in the whole process (preloaded after the shim),
 * so a test can prove that a code path makes none; and fails the next N
 * malloc or realloc calls on request, so a test can run the shim out of
 * memory at one chosen step. */
#include <stdatomic.h>
#include <stddef.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);

static atomic_long count;
static atomic_int fail_malloc, fail_realloc;

/* True (and one failure used up) while failures are asked for. */
static int failing(atomic_int *left)
{
    int n = atomic_load(left);
    while (n > 0 && !atomic_compare_exchange_weak(left, &n, n - 1))
        ;
    return n > 0;
}

#define EXPORT __attribute__((visibility("default")))
EXPORT long spy_malloc_count(void);
EXPORT void spy_fail_mallocs(int n);
EXPORT void spy_fail_reallocs(int n);
EXPORT void *malloc(size_t size);
EXPORT void *calloc(size_t n, size_t size);
EXPORT void *realloc(void *p, size_t size);
EXPORT void *memalign(size_t align, size_t size);
EXPORT int posix_memalign(void **out, size_t align, size_t size);
EXPORT void *aligned_alloc(size_t align, size_t size);

long spy_malloc_count(void) { return atomic_load(&count); }
void spy_fail_mallocs(int n) { atomic_store(&fail_malloc, n); }
void spy_fail_reallocs(int n) { atomic_store(&fail_realloc, n); }
void *malloc(size_t size)
{
    atomic_fetch_add(&count, 1);
    return failing(&fail_malloc) ? NULL : __libc_malloc(size);
}
void *calloc(size_t n, size_t size) { atomic_fetch_add(&count, 1); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size)
{
    atomic_fetch_add(&count, 1);
    return failing(&fail_realloc) ? NULL : __libc_realloc(p, size);
}
void *memalign(size_t align, size_t size) { atomic_fetch_add(&count, 1); return __libc_memalign(align, size); }
void *aligned_alloc(size_t align, size_t size) { atomic_fetch_add(&count, 1); return __libc_memalign(align, size); }
int posix_memalign(void **out, size_t align, size_t size)
{
    atomic_fetch_add(&count, 1);
    void *p = __libc_memalign(align, size);
    if (p == NULL)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}
