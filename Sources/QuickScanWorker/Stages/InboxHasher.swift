import Foundation
import Hashing
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Hashing: reads batches of files on `hash_threads` threads, off Swift's cooperative pool,
/// and says what each result means for the file version that was read.
struct InboxHasher: Sendable {
    /// One thread that hosts each batch (`ParallelHasher` on `hash_threads` threads), so
    /// blocking reads never occupy the cooperative pool.
    let pool: NIOThreadPool
    let threads: Int
    let hooks: PipelineHooks

    /// One file read: its digest and its `lstat` taken right after.
    typealias Result = (digest: Swift.Result<FileDigest, FileHashError>, after: FileStat?)

    init(threads: Int, hooks: PipelineHooks) {
        self.pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        self.threads = max(1, threads)
        self.hooks = hooks
    }

    func shutdown() { try? pool.syncShutdownGracefully() }

    /// Hashes `paths` on the hashing threads (one hop for the whole batch: per-file hops cost
    /// more than hashing a small file), then stats each file again there.
    func start(_ paths: [String]) -> Task<[Result], any Error> {
        let (threads, hooks, pool) = (threads, hooks, pool)
        return Task {
            try await pool.runIfActive {
                let digests = ParallelHasher.hash(paths: paths, threads: threads, followSymlinks: false,
                                                  before: hooks.beforeHash, after: hooks.afterHash)
                return zip(paths, digests).map { path, digest in
                    if case .success = digest { return (digest, FileStat.of(path)) }
                    return (digest, nil)
                }
            }
        }
    }

    enum Outcome {
        case hashed(sha256: String)
        /// The file changed while it was read: the watcher takes its new version.
        case changed
        case notScanned(NotScannedReason, String)
    }

    /// What one hashing result means for the file version that was read.
    static func classify(identity: FileIdentity, _ result: Result) -> Outcome {
        switch result.digest {
        case .success(let digest):
            // The stat after hashing: a file that changed while hashed goes back to discovery.
            guard let now = result.after else { return .notScanned(.vanished, "vanished while being hashed") }
            if now.identity != identity || digest.size != identity.size { return .changed }
            return .hashed(sha256: digest.sha256)
        case .failure(let error):
            if error.errno == ENOENT { return .notScanned(.vanished, "vanished before it was hashed") }
            if error.errno == ELOOP { return .notScanned(.unreadable, "symbolic link: not followed") }
            return .notScanned(.unreadable, error.description)
        }
    }
}
