#ifndef QUICKSCAN_CSYSTEM_SHIM_H
#define QUICKSCAN_CSYSTEM_SHIM_H
// Linux calls Swift cannot make directly (variadic syscall(2), renameat2 constants).
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/// openat2(2) with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: `path` is
/// resolved below `dirfd` without following any symlink; -1 with errno ENOSYS on kernels
/// before 5.6.
static inline int quickscan_openat2_beneath(int dirfd, const char *path, uint64_t flags) {
    struct {
        uint64_t flags;
        uint64_t mode;
        uint64_t resolve;
    } how = { flags, 0, 0x08 /* BENEATH */ | 0x04 /* NO_SYMLINKS */ | 0x02 /* NO_MAGICLINKS */ };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/// syncfs(2) (glibc declares it only with _GNU_SOURCE): flushes the file system holding `fd`;
/// one call makes a whole batch of spool copies durable.
static inline int quickscan_syncfs(int fd) {
    return (int)syscall(SYS_syncfs, fd);
}

/// glibc's allocator: at most `arenas` arenas (each thread that contends would otherwise get
/// its own, and memory freed in one is not reused by another), and a fixed mmap threshold:
/// blocks of at least `mmap_bytes` are mapped and unmapped on their own (glibc otherwise raises
/// the threshold after each such free, and large short-lived buffers then fragment the heap).
static inline int quickscan_malloc_tune(int arenas, int mmap_bytes) {
    return mallopt(M_ARENA_MAX, arenas) && mallopt(M_MMAP_THRESHOLD, mmap_bytes);
}

/// glibc's allocator: gives free memory back to the kernel, from every arena.
static inline int quickscan_malloc_trim(void) {
    return malloc_trim(0);
}

#endif
