import CLinux
import ServiceLifecycle

/// Keeps a long-lived watcher's resident memory flat. Measured with `scripts/soak` (200,000
/// files in 20 batches): the live heap stayed near 20 MB while glibc kept up to 43 MB of freed
/// memory resident across its per-thread arenas, and each batch's peak could land where less
/// of it was reusable. Two arenas, a fixed mmap threshold and a trim every second
/// (`HeapTrimService`, in watch mode) fix that.
public enum HeapMemory {
    /// At most two malloc arenas (the NIO, hashing and concurrency threads share them), and
    /// blocks of 256 KiB or more mapped on their own (the batch lists, request bodies), so
    /// they go back to the kernel when freed. Called once, early.
    public static func tune() {
        _ = quickscan_malloc_tune(2, 256 * 1024)
    }

    /// Returns free heap memory to the kernel (a few milliseconds for tens of megabytes).
    public static func trim() {
        _ = quickscan_malloc_trim()
    }
}

/// Watch mode: `HeapMemory.trim()` every second, as a service of the `ServiceGroup`, so freed
/// memory goes back to the kernel during a long pass too (a burst of 10,000 files is one pass of
/// many seconds), not only between passes. Measured with `scripts/soak --metrics`: see README.
public struct HeapTrimService: Service {
    let interval: Duration

    public init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
            HeapMemory.trim()
        }
    }
}
