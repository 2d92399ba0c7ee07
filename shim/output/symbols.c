#include "symbols.h"
#include "modules.h"
#include "stacks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if UINTPTR_MAX > 0xffffffffu
#define OUR_CLASS ELFCLASS64
#else
#define OUR_CLASS ELFCLASS32
#endif

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool vg_symbols_runtime_name(const char *n)
{
    if (strncmp(n, "cuda", 4) == 0 && n[4] >= 'A' && n[4] <= 'Z')
        return true; /* the API: cudaMalloc, cudaMallocAsync... */
    if (strncmp(n, "libcudart_static_", 17) == 0)
        return true; /* CUDA 13's libcudart_static.a names every internal function so (a hash) */
    if (strncmp(n, "__cuda", 6) == 0 || strncmp(n, "cudart", 6) == 0)
        return true; /* __cudart123 (earlier releases' internal functions), __cudaRegisterFatBinary */
    return strncmp(n, "_Z", 2) == 0 && strstr(n, "cudart") != NULL; /* C++: cudart::... */
}

void vg_symbols_init(struct vg_symbols *s)
{
    s->next = 0;
    for (int i = 0; i < VG_SYMBOL_FILES; i++) {
        s->file[i].hi = 0;
        s->file[i].map = NULL;
    }
    for (int i = 0; i < VG_SYMBOL_CACHE; i++)
        s->cache[i].pc = NULL;
}

void vg_symbols_done(struct vg_symbols *s)
{
    for (int i = 0; i < VG_SYMBOL_FILES; i++)
        if (s->file[i].map != NULL)
            munmap((void *)s->file[i].map, s->file[i].map_size);
    vg_symbols_init(s);
}

void vg_symbols_begin(struct vg_symbols *s)
{
    if (s->next > VG_SYMBOL_FILES - (VG_STACK_FRAMES + 1))
        vg_symbols_done(s);
}

/* ---- finding the module ----------------------------------------------------- */

struct find {
    uintptr_t pc;
    struct vg_symbol_file *f;
    bool first;
};

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find *q = arg;
    bool first = q->first;
    q->first = false;
    uintptr_t lo, hi;
    vg_module_range(info, &lo, &hi);
    if (q->pc < lo || q->pc >= hi)
        return 0;
    struct vg_symbol_file *f = q->f;
    f->lo = lo;
    f->hi = hi;
    f->bias = info->dlpi_addr;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    f->path[0] = '\0';
    f->is_main = first && name[0] == '\0';
    if (f->is_main) { /* the program: named as dladdr names it, read through /proc */
        snprintf(f->name, sizeof(f->name), "%s", program_invocation_name ? program_invocation_name : "(main)");
        ssize_t n = readlink("/proc/self/exe", f->path, sizeof(f->path) - 1);
        f->path[n > 0 ? n : 0] = '\0';
    } else {
        snprintf(f->name, sizeof(f->name), "%s", name[0] ? name : "(unnamed)");
        char cwd[VG_SYMBOL_PATH];
        if (name[0] == '/')
            snprintf(f->path, sizeof(f->path), "%s", name);
        else if (strchr(name, '/') && getcwd(cwd, sizeof(cwd))) { /* dlopen'ed by a relative path */
            size_t a = strlen(cwd), b = strlen(name);
            if (a + 1 + b < sizeof(f->path)) {
                memcpy(f->path, cwd, a);
                f->path[a] = '/';
                memcpy(f->path + a + 1, name, b + 1);
            }
        }
    }
    return 1;
}

/* ---- reading its symbol table ---------------------------------------------- */

static bool section_in(const ElfW(Shdr) *sh, size_t size)
{
    return sh->sh_type != SHT_NOBITS && sh->sh_offset <= size && sh->sh_size <= size - sh->sh_offset;
}

/* The symbol table of `type` and its strings, checked to lie in the file. */
static bool pick_table(struct vg_symbol_file *f, const ElfW(Shdr) *sh, size_t shnum, unsigned type)
{
    for (size_t i = 0; i < shnum; i++) {
        if (sh[i].sh_type != type || sh[i].sh_entsize != sizeof(ElfW(Sym)) || !section_in(&sh[i], f->map_size) ||
            sh[i].sh_link >= shnum)
            continue;
        const ElfW(Shdr) *str = &sh[sh[i].sh_link];
        if (str->sh_type != SHT_STRTAB || !section_in(str, f->map_size) || str->sh_size == 0)
            continue;
        f->syms = (const ElfW(Sym) *)(f->map + sh[i].sh_offset);
        f->n_syms = sh[i].sh_size / sizeof(ElfW(Sym));
        f->n_local = sh[i].sh_info < f->n_syms ? sh[i].sh_info : f->n_syms; /* ELF: the first non-local */
        f->strs = (const char *)(f->map + str->sh_offset);
        f->strs_size = str->sh_size;
        return true;
    }
    return false;
}

static const char *sym_name(const struct vg_symbol_file *f, const ElfW(Sym) *sym)
{
    if (sym->st_name >= f->strs_size || memchr(f->strs + sym->st_name, '\0', f->strs_size - sym->st_name) == NULL)
        return NULL;
    return f->strs + sym->st_name;
}

static bool is_function(const ElfW(Sym) *sym)
{
    int type = ELF64_ST_TYPE(sym->st_info);
    return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF;
}

/* One pass at mapping time: does it have functions at all? */
static void survey(struct vg_symbol_file *f)
{
    for (size_t i = 0; i < f->n_syms && !f->has_symbols; i++)
        f->has_symbols = is_function(&f->syms[i]);
}

/* Is file address `a` cudart's code by its object file? Each object's local
 * symbols follow its STT_FILE symbol (the linker's own, nameless, heads no
 * object); its code runs from its lowest function to the next object's
 * (its global functions lie in between, wherever .symtab lists them). The
 * object is cudart's when a function of cudart's name lies there. Two
 * passes, no memory: the outputs ask for a few frames per stack. */
static bool in_runtime_object(const struct vg_symbol_file *f, uintptr_t a)
{
    uintptr_t start = 0, next = UINTPTR_MAX, low = UINTPTR_MAX;
    bool found = false, object = false;
    for (size_t i = 0; i <= f->n_local; i++) {
        const ElfW(Sym) *sym = i < f->n_local ? &f->syms[i] : NULL;
        if (sym != NULL && ELF64_ST_TYPE(sym->st_info) != STT_FILE) {
            if (object && is_function(sym) && sym->st_value < low)
                low = sym->st_value;
            continue;
        }
        if (object && low != UINTPTR_MAX) { /* an object ends: where does its code start? */
            if (low <= a && (!found || low > start)) {
                start = low;
                found = true;
            } else if (low > a && low < next) {
                next = low;
            }
        }
        if (sym == NULL)
            break;
        const char *name = sym_name(f, sym);
        object = name != NULL && name[0] != '\0';
        low = UINTPTR_MAX;
    }
    if (!found)
        return false;
    for (size_t i = 0; i < f->n_syms; i++) {
        const ElfW(Sym) *sym = &f->syms[i];
        if (!is_function(sym) || sym->st_value < start || sym->st_value >= next)
            continue;
        const char *name = sym_name(f, sym);
        if (name != NULL && vg_symbols_runtime_name(name))
            return true;
    }
    return false;
}

static void map_file(struct vg_symbol_file *f)
{
    f->map = NULL;
    f->syms = NULL;
    f->n_syms = f->n_local = 0;
    f->has_symbols = false;
    const char *open_path = f->is_main ? "/proc/self/exe" : f->path; /* the program's file, even renamed */
    if (open_path[0] == '\0')
        return;
    int fd = open(open_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
        close(fd);
        return;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return;
    f->map = map;
    f->map_size = (size_t)st.st_size;
    const ElfW(Ehdr) *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != OUR_CLASS ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff == 0 || eh->e_shoff > f->map_size ||
        eh->e_shnum > (f->map_size - eh->e_shoff) / sizeof(ElfW(Shdr)))
        return;
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(f->map + eh->e_shoff);
    if (pick_table(f, sh, eh->e_shnum, SHT_SYMTAB) || pick_table(f, sh, eh->e_shnum, SHT_DYNSYM))
        survey(f);
}

static struct vg_symbol_file *file_of(struct vg_symbols *s, uintptr_t pc)
{
    for (int i = 0; i < s->next; i++)
        if (pc >= s->file[i].lo && pc < s->file[i].hi)
            return &s->file[i];
    if (s->next == VG_SYMBOL_FILES)
        return NULL;
    struct vg_symbol_file *f = &s->file[s->next];
    struct find q = {pc, f, true};
    if (dl_iterate_phdr(find_module, &q) == 0)
        return NULL;
    s->next++;
    const char *base = base_name(f->name);
    f->runtime_module = strncmp(base, "libcudart.", 10) == 0 || strncmp(base, "libcudart-", 10) == 0;
    /* The shim as a library of its own (linked into a program, as the unit
     * tests link it, it is that program's code). */
    f->is_self = !f->is_main && (uintptr_t)&vg_symbols_init >= f->lo && (uintptr_t)&vg_symbols_init < f->hi;
    map_file(f);
    return f;
}

static bool name_frame(struct vg_symbols *s, const void *pc, struct vg_frame *out);

bool vg_symbols_frame(struct vg_symbols *s, const void *pc, struct vg_frame *out)
{
    unsigned slot = (unsigned)(((uintptr_t)pc >> 2) * 2654435761u) % VG_SYMBOL_CACHE;
    if (pc != NULL && s->cache[slot].pc == pc) {
        *out = s->cache[slot].frame;
        return true;
    }
    if (!name_frame(s, pc, out))
        return false;
    s->cache[slot].pc = pc;
    s->cache[slot].frame = *out;
    return true;
}

/* Named in the module's file: the function whose symbol covers `pc`. */
static bool name_frame(struct vg_symbols *s, const void *pc, struct vg_frame *out)
{
    int saved = errno;
    struct vg_symbol_file *f = pc ? file_of(s, (uintptr_t)pc) : NULL;
    errno = saved;
    *out = (struct vg_frame){.module = f};
    if (f == NULL)
        return false;
    uintptr_t a = (uintptr_t)pc - f->bias;
    out->address = a;
    for (size_t i = 0; i < f->n_syms; i++) {
        const ElfW(Sym) *sym = &f->syms[i];
        if (!is_function(sym) || a < sym->st_value || a - sym->st_value >= sym->st_size)
            continue;
        const char *name = sym_name(f, sym);
        if (name == NULL || name[0] == '\0')
            continue;
        out->function = name;
        out->offset = a - sym->st_value;
        break;
    }
    /* A named function is judged by its name: the program's objects hold
     * local __cuda* helpers of nvcc's (link.stub, host_runtime.h), and
     * cudart's objects have code on both sides of main (.text.unlikely,
     * .text.startup), so an object's range would swallow main. */
    out->runtime = f->runtime_module ||
                   (out->function ? vg_symbols_runtime_name(out->function) : in_runtime_object(f, a));
    return true;
}

void vg_symbols_frame_text(struct vg_symbols *s, const void *pc, char *out, size_t size)
{
    struct vg_frame fr;
    if (!vg_symbols_frame(s, pc, &fr))
        snprintf(out, size, "%p", pc);
    else if (fr.function)
        snprintf(out, size, "%s+0x%lx (%s+0x%lx)", base_name(fr.module->name), (unsigned long)fr.address,
                 fr.function, (unsigned long)fr.offset);
    else
        snprintf(out, size, "%s+0x%lx", base_name(fr.module->name), (unsigned long)fr.address);
}
