/* Function names for code addresses, read from each module's own file at
 * output time: its ELF symbol table (.symtab, or .dynsym when that was
 * stripped), mapped read-only for the length of one output and unmapped by
 * vg_symbols_done. No heap and no loader lock (dl_iterate_phdr finds the
 * module, open and mmap read it), so the OOM breakdown uses it too; never
 * the allocation path.
 *
 * It also tells the CUDA runtime's code from the program's: all of a
 * libcudart.so*, and cudart linked into a module (nvcc's default static
 * cudart) by its functions' names (cudaMalloc..., libcudart_static_<hash>
 * in CUDA 13, __cudart123 and cudart::... before)
 * and, for its internal functions with other names, by their object file:
 * the code of an object that defines one of cudart's functions is cudart's
 * (.symtab names each object with an STT_FILE symbol before its locals).
 * A module without any symbol table ("no symbols") cannot be told apart:
 * its frames count as the program's. */
#ifndef VG_SYMBOLS_H
#define VG_SYMBOLS_H

#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { VG_SYMBOL_FILES = 32, VG_SYMBOL_PATH = 512, VG_SYMBOL_CACHE = 256 };

struct vg_symbol_file {
    uintptr_t lo, hi;             /* its loaded range; hi == 0: a free slot */
    uintptr_t bias;               /* the load bias: an address in the file is address - bias */
    char name[VG_SYMBOL_PATH];    /* as the outputs name it: argv[0] for the program, else the loader's name */
    char path[VG_SYMBOL_PATH];    /* its absolute path ("" when not known): for addr2line */
    const unsigned char *map;     /* the file, mapped read-only (NULL: not readable) */
    size_t map_size;
    const ElfW(Sym) *syms;
    size_t n_syms, n_local;       /* the first n_local are local, in groups headed by STT_FILE */
    const char *strs;
    size_t strs_size;
    bool is_main;                 /* the program */
    bool has_symbols;             /* a symbol table with at least one function */
    bool is_self;                 /* the shim itself */
    bool runtime_module;          /* libcudart.so*: all of it is the CUDA runtime */
};

/* One code address, named. */
struct vg_frame {
    const struct vg_symbol_file *module; /* NULL: in no module (JIT code, a bad address) */
    uintptr_t address;                   /* in the module's file */
    const char *function;                /* NULL when no symbol covers it; valid until vg_symbols_done */
    uintptr_t offset;                    /* from the function's start */
    bool runtime;                        /* the CUDA runtime's code */
};

/* Large (about 50 KiB): static under a lock, or malloc'd. */
struct vg_symbols {
    int next; /* the slot taken next */
    struct vg_symbol_file file[VG_SYMBOL_FILES];
    struct {
        const void *pc; /* NULL: empty */
        struct vg_frame frame;
    } cache[VG_SYMBOL_CACHE]; /* addresses named already: a report names the same few sites over and over */
};

void vg_symbols_init(struct vg_symbols *s);
/* Unmap every file: the names handed out are gone. */
void vg_symbols_done(struct vg_symbols *s);
/* Before the frames of one stack: room for all of its modules. The names
 * handed out before may be gone from here on (files are unmapped when the
 * slots run short); those handed out after stay until the next call. */
void vg_symbols_begin(struct vg_symbols *s);
/* Name `pc`. False when it lies in no loaded module (or no slot is left:
 * see vg_symbols_begin). */
bool vg_symbols_frame(struct vg_symbols *s, const void *pc, struct vg_frame *out);
/* "module+0xADDR (function+0xOFF)", "module+0xADDR" or a raw address: a
 * stack's frame, module by base name. */
void vg_symbols_frame_text(struct vg_symbols *s, const void *pc, char *out, size_t size);
/* Is `name` one of the CUDA runtime's functions (cudaMalloc, __cudart123,
 * cudart::...)? */
bool vg_symbols_runtime_name(const char *name);

#endif
