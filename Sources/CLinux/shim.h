#ifndef QUICKSCAN_CSYSTEM_SHIM_H
#define QUICKSCAN_CSYSTEM_SHIM_H
// Linux calls Swift cannot make directly (variadic syscall(2) and fcntl(2), constants glibc
// declares only with _GNU_SOURCE, which the system modules are built without).
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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
/// one call makes a whole batch of spool files durable.
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

// fcntl(2) lease commands and types (F_SETLEASE and F_GETLEASE are _GNU_SOURCE only).
#define QUICKSCAN_F_SETLEASE 1024
#define QUICKSCAN_F_GETLEASE 1025
#define QUICKSCAN_LEASE_READ 0   /* F_RDLCK */
#define QUICKSCAN_LEASE_NONE 2   /* F_UNLCK */

/// Takes a read lease on `fd` (opened read-only): succeeds only while nobody has the file open
/// for writing (a writable shared mapping counts); a later open for writing, or a truncate,
/// breaks it. Needs the file's owner or CAP_LEASE. 0, or -1 with errno (EAGAIN: a writer;
/// EACCES: not ours; EINVAL: the file system has no leases).
static inline int quickscan_read_lease(int fd) {
    return fcntl(fd, QUICKSCAN_F_SETLEASE, QUICKSCAN_LEASE_READ);
}

/// The lease held on `fd` now: QUICKSCAN_LEASE_READ while ours is intact; QUICKSCAN_LEASE_NONE
/// once someone began opening the file for writing (a break pending) or it was taken away.
static inline int quickscan_lease(int fd) {
    return fcntl(fd, QUICKSCAN_F_GETLEASE);
}

/// Gives up the lease on `fd` (closing it does too).
static inline int quickscan_release_lease(int fd) {
    return fcntl(fd, QUICKSCAN_F_SETLEASE, QUICKSCAN_LEASE_NONE);
}

/// Links the very file open on `fd` under `name` in the folder `dirfd` (never another file that
/// a racing rename put under some path): `linkat(fd, "", AT_EMPTY_PATH)`, which needs
/// CAP_DAC_READ_SEARCH, else through `/proc/self/fd` (subject to protected_hardlinks).
/// 0, or -1 with errno.
static inline int quickscan_link_open_file(int fd, int dirfd, const char *name) {
    if (linkat(fd, "", dirfd, name, 0x1000 /* AT_EMPTY_PATH */) == 0) return 0;
    int first = errno;
    if (first != EPERM && first != ENOENT && first != EINVAL) return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno == ENOENT) errno = first;  /* no /proc: the first refusal is the one to report */
    return -1;
}

static void quickscan_sigio_handler(int signal) { (void)signal; }

/// A lease break signals its holder with SIGIO, whose default action ends the process. The
/// worker checks its leases itself (`quickscan_lease`), so the signal is caught and dropped;
/// a handler (not SIG_IGN) so that child processes do not inherit an ignored SIGIO.
/// Installed once, only when SIGIO still has its default action.
static inline void quickscan_catch_sigio(void) {
    struct sigaction current;
    if (sigaction(SIGIO, NULL, &current) != 0 || current.sa_handler != SIG_DFL) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = quickscan_sigio_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGIO, &action, NULL);
}

#endif
