import CLinux
import Foundation
import Hashing
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Hashing: reads batches of files on `hash_threads` threads, off Swift's cooperative pool,
/// and says what each result means for the file version that was read. Every file is opened
/// below its inbox's descriptor without following a symlink (`Beneath`), non-blocking (a FIFO
/// swapped in never hangs us), and must be a regular file. With custody, the bytes are copied
/// into the worker's spool while they are hashed: the copy holds exactly the bytes hashed.
struct InboxHasher: Sendable {
    /// One thread that hosts each batch (`ParallelHasher` on `hash_threads` threads), so
    /// blocking reads never occupy the cooperative pool.
    let pool: NIOThreadPool
    let threads: Int
    let hooks: PipelineHooks
    /// The spool folder when files are taken into custody.
    let spool: String?

    /// A file to read: its path, its inbox and the identity it was taken with.
    struct Item: Sendable {
        var path: String
        var inbox: String
    }

    /// One file read: its digest, its `lstat` taken right after, and its spool copy.
    typealias Result = (digest: Swift.Result<FileDigest, FileHashError>, after: FileStat?, spool: String?)

    init(threads: Int, hooks: PipelineHooks, spool: String?) {
        self.pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        self.threads = max(1, threads)
        self.hooks = hooks
        self.spool = spool
    }

    func shutdown() { try? pool.syncShutdownGracefully() }  // at teardown: nothing left to report to

    /// Hashes `items` on the hashing threads (one hop for the whole batch: per-file hops cost
    /// more than hashing a small file), then stats each file again there. With custody the
    /// spool's file system is synced once for the batch before the results are returned.
    func start(_ items: [Item], custody: Bool = true) -> Task<[Result], any Error> {
        let (threads, hooks, pool, spool) = (threads, hooks, pool, custody ? spool : nil)
        return Task {
            try await pool.runIfActive {
                var opened: [String: Int32] = [:]
                // An inbox that cannot be opened fails each of its files with its own error below.
                for inbox in Set(items.map(\.inbox)) { opened[inbox] = try? Beneath.openRoot(inbox) }
                let roots = opened
                defer { for fd in roots.values { close(fd) } }
                var spoolFD: Int32 = -1
                if let spool {
                    spoolFD = open(spool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                defer { if spoolFD >= 0 { close(spoolFD) } }
                let spoolAt = spoolFD
                var results = ParallelMap.map(count: items.count, threads: threads, makeWorker: { FileHasher() }) { hasher, i -> Result in
                    let item = items[i]
                    hooks.beforeHash?(item.path)
                    let read = Self.read(item, root: roots[item.inbox], hasher: hasher, spool: spool, spoolFD: spoolAt)
                    hooks.afterHash?(item.path)
                    if case .success = read.digest { return (read.digest, FileStat.of(item.path), read.spool) }
                    return (read.digest, nil, nil)
                }
                // The copies are on disk before they are recorded (and the originals removed).
                if spool != nil, results.contains(where: { $0.spool != nil }), quickscan_syncfs(spoolAt) != 0 {
                    let error = FileHashError(path: spool ?? "", operation: "sync", errno: errno)
                    for i in results.indices where results[i].spool != nil {
                        unlink(results[i].spool!)
                        results[i] = (.failure(error), nil, nil)
                    }
                }
                return results
            }
        }
    }

    /// Opens one file safely and hashes it (copying it into the spool with custody).
    private static func read(_ item: Item, root: Int32?, hasher: FileHasher, spool: String?, spoolFD: Int32)
        -> (digest: Swift.Result<FileDigest, FileHashError>, spool: String?) {
        guard let root else { return (.failure(FileHashError(path: item.path, operation: "open", errno: EACCES)), nil) }
        let relative = String(item.path.dropFirst(item.inbox.count + 1))
        let fd: Int32
        do {
            fd = try Beneath.open(root, relative, flags: O_RDONLY | O_NONBLOCK, display: item.path)
        } catch {
            return (.failure(FileHashError(path: item.path, operation: "open", errno: error.errno)), nil)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return (.failure(FileHashError(path: item.path, operation: "stat", errno: errno)), nil) }
        guard st.st_mode & S_IFMT == S_IFREG else { return (.failure(FileHashError(path: item.path, operation: "type", errno: EINVAL)), nil) }
        guard let spool, spoolFD >= 0 else {
            return (Swift.Result { () throws(FileHashError) -> FileDigest in try hasher.hash(fd: fd, path: item.path) }, nil)
        }
        let name = UUID().uuidString.lowercased() + ".spool"
        let copyPath = spool + "/" + name
        let out = openat(spoolFD, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { return (.failure(FileHashError(path: copyPath, operation: "create", errno: errno)), nil) }
        let digest = Swift.Result { () throws(FileHashError) -> FileDigest in try hasher.hash(fd: fd, path: item.path, copyTo: out, copyPath: copyPath) }
        if close(out) != 0, case .success = digest {
            let e = errno
            unlinkat(spoolFD, name, 0)
            return (.failure(FileHashError(path: copyPath, operation: "close", errno: e)), nil)
        }
        if case .failure = digest { unlinkat(spoolFD, name, 0); return (digest, nil) }
        return (digest, copyPath)
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
            if error.operation == "type" { return .notScanned(.unreadable, "not a regular file") }
            if error.errno == ENOENT { return .notScanned(.vanished, "vanished before it was hashed") }
            if error.errno == ELOOP || error.errno == ENOTDIR { return .notScanned(.unreadable, "symbolic link: not followed") }
            return .notScanned(.unreadable, error.description)
        }
    }
}
