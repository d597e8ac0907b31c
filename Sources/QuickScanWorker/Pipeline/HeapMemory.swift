import CLinux

/// Keeps a long-lived watcher's resident memory flat. Measured with `scripts/soak` (200,000
/// files in 20 batches): the live heap stayed near 20 MB while glibc kept up to 43 MB of freed
/// memory resident across its per-thread arenas, and each batch's peak could land in an arena
/// with less free memory than the last. Two arenas and a trim after busy passes fix that.
public enum HeapMemory {
    /// At most two malloc arenas (the NIO, hashing and concurrency threads share them). Called
    /// once, early.
    public static func limitArenas() {
        _ = quickscan_malloc_arena_max(2)
    }

    /// Returns free heap memory to the kernel (a few milliseconds for tens of megabytes).
    public static func trim() {
        _ = quickscan_malloc_trim()
    }
}
