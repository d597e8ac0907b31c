import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Hashes many files on `threads` threads (each with its own hasher and buffer); results come
/// back in input order. The `quickscan hash` engine.
public enum ParallelHasher {
    /// - Parameters:
    ///   - before, after: called on the hashing thread around each file (tests change files there).
    public static func hash(
        paths: [String], threads: Int, followSymlinks: Bool = true,
        before: (@Sendable (String) -> Void)? = nil, after: (@Sendable (String) -> Void)? = nil
    ) -> [Result<FileDigest, FileHashError>] {
        let count = paths.count
        guard count > 0 else { return [] }
        let results = UnsafeMutableBufferPointer<Result<FileDigest, FileHashError>?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        next.initialize(to: 0)
        defer { next.deallocate() }
        var lock = pthread_mutex_t()
        pthread_mutex_init(&lock, nil)
        defer { pthread_mutex_destroy(&lock) }
        // Work is handed out in small batches so many small files do not contend on the lock.
        let batch = max(1, min(64, count / (threads * 8)))
        let box = Box(results: results, next: next, lock: &lock)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in
            let hasher = FileHasher()
            while true {
                pthread_mutex_lock(box.lock)
                let start = box.next.pointee
                box.next.pointee = start + batch
                pthread_mutex_unlock(box.lock)
                if start >= count { break }
                for i in start..<min(start + batch, count) {
                    before?(paths[i])
                    box.results[i] = Result { () throws(FileHashError) -> FileDigest in
                        try hasher.hashFile(atPath: paths[i], followSymlinks: followSymlinks)
                    }
                    after?(paths[i])
                }
            }
        }
        return results.map { $0! }
    }

    /// Shared state of one run; each slot of `results` is written by exactly one thread.
    private struct Box: @unchecked Sendable {
        let results: UnsafeMutableBufferPointer<Result<FileDigest, FileHashError>?>
        let next: UnsafeMutablePointer<Int>
        let lock: UnsafeMutablePointer<pthread_mutex_t>
    }
}
