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
        ParallelMap.map(count: paths.count, threads: threads, makeWorker: { FileHasher() }) { hasher, i in
            before?(paths[i])
            let result = Result { () throws(FileHashError) -> FileDigest in
                try hasher.hashFile(atPath: paths[i], followSymlinks: followSymlinks)
            }
            after?(paths[i])
            return result
        }
    }
}

/// Maps `0..<count` on `threads` threads, each with its own worker state; results come back in
/// input order.
public enum ParallelMap {
    public static func map<Worker, Element>(
        count: Int, threads: Int, makeWorker: @Sendable () -> Worker, _ body: @Sendable (Worker, Int) -> Element
    ) -> [Element] {
        guard count > 0 else { return [] }
        let results = UnsafeMutableBufferPointer<Element?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer {
            // Deinitialize before deallocating: without it every result (a digest's hex string)
            // leaked, about 100 bytes per file hashed.
            _ = results.deinitialize()
            results.deallocate()
        }
        let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        next.initialize(to: 0)
        defer { next.deallocate() }
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        defer {
            pthread_mutex_destroy(lock)
            lock.deallocate()
        }
        // Work is handed out in small batches so many small items do not contend on the lock.
        let batch = max(1, min(64, count / (threads * 8)))
        let shared = Shared(results: UnsafeMutableRawPointer(results.baseAddress!), next: next, lock: lock)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in
            let worker = makeWorker()
            let slots = shared.results.assumingMemoryBound(to: Element?.self)
            while true {
                pthread_mutex_lock(shared.lock)
                let start = shared.next.pointee
                shared.next.pointee = start + batch
                pthread_mutex_unlock(shared.lock)
                if start >= count { break }
                for i in start..<min(start + batch, count) {
                    slots[i] = body(worker, i)
                }
            }
        }
        return results.map { $0! }
    }

    /// The state the threads share; each result slot is written by exactly one thread.
    private struct Shared: @unchecked Sendable {
        let results: UnsafeMutableRawPointer
        let next: UnsafeMutablePointer<Int>
        let lock: UnsafeMutablePointer<pthread_mutex_t>
    }
}
