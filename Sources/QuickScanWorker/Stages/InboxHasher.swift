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
/// swapped in never hangs us), and must be a regular file.
///
/// With custody each file is taken into the worker's spool in the same pass, one of two ways:
/// - **by link, under a read lease** (`custody: auto`), for a regular file with one link on the
///   spool's file system: the lease (`F_SETLEASE F_RDLCK`) is granted only while nobody has the
///   file open for writing (a writable shared mapping included) and is broken by any later open
///   for writing or truncate. Under it the file is hashed, linked into the spool, its inbox
///   name removed (if it still names this file), made ours (`fchown`, `fchmod 0600`); then the
///   lease must still be intact and the file must have no other link. No byte is copied.
/// - **by copy** otherwise (a writer, a second link, another file system, a file system
///   without leases, a lease refused): the bytes are copied into a new spool file while they
///   are hashed, so the copy holds exactly the bytes hashed (Postfix's pickup model); the
///   original leaves the inbox once the copy is recorded.
/// The batch's spool files are synced once (`syncfs`) before the batch is recorded.
struct InboxHasher: Sendable {
    /// One thread that hosts each batch (`ParallelMap` on `hash_threads` threads), so
    /// blocking reads never occupy the cooperative pool.
    let pool: NIOThreadPool
    let threads: Int
    let hooks: PipelineHooks
    /// The spool folder when files are taken into custody.
    let spool: String?
    /// Whether custody may take files by link (else it always copies).
    let byLink: Bool

    /// A file to read: its path, its inbox and, from the walk, what it was when found (a file
    /// is linked into custody only if it still is exactly that version).
    struct Item: Sendable {
        var path: String
        var inbox: String
        var stat: FileStat? = nil
    }

    /// One file read.
    struct Result: Sendable {
        var digest: Swift.Result<FileDigest, FileHashError>
        /// The file's stat taken right after it was read (in place, or copied).
        var after: FileStat?
        /// The worker's spool file holding the bytes hashed.
        var spool: String?
        /// The file was taken into the spool and its inbox name is gone already (linked under a
        /// lease, or copied after such a take was disturbed): nothing is left to remove.
        var taken = false
        /// A take by link was undone (someone opened the file for writing or linked it while it
        /// was taken, or renamed it): the file is where it was, as it was, but its ctime changed.
        var disturbed = false
        /// A take that could not be undone: the file waits in the spool under its journaled name
        /// and is given back at the next start (the batch's journal is kept).
        var stranded = false
        /// A file taken by link: its identity once ours (checked again before it is recorded).
        var sealed: FileIdentity?

        static func failed(_ error: FileHashError) -> Result { Result(digest: .failure(error)) }
    }

    /// A batch read: one result per item, and the journal of its takes by link.
    struct Batch: Sendable {
        var results: [Result]
        /// The spool journal naming this batch's takes by link; removed once they are recorded.
        var journal: SpoolJournal?
        /// Whether a take could not be undone and the journal must stay for the next start.
        var keepJournal: Bool { results.contains { $0.stranded } }
    }

    init(threads: Int, hooks: PipelineHooks, spool: String?, byLink: Bool = true) {
        self.pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        self.threads = max(1, threads)
        self.hooks = hooks
        self.spool = spool
        self.byLink = byLink
        // A broken lease signals SIGIO, whose default action would end the worker.
        if spool != nil && byLink { quickscan_catch_sigio() }
    }

    func shutdown() { try? pool.syncShutdownGracefully() }  // at teardown: nothing left to report to

    /// Where takes go: the open spool folder, its device and the worker's user.
    struct Spool: Sendable {
        var path: String
        var fd: Int32
        /// Why `fd` is -1 (the spool could not be opened).
        var openErrno: Int32 = 0
        var device: UInt64
        var owner: uid_t
        var group: gid_t
        /// The journal of this batch's takes by link (nil: every file is copied).
        var journal: SpoolJournal?
    }

    /// Hashes `items` on the hashing threads (one hop for the whole batch: per-file hops cost
    /// more than hashing a small file). With custody the spool's file system is synced once for
    /// the batch before the results are returned.
    func start(_ items: [Item], custody: Bool = true) -> Task<Batch, any Error> {
        let (threads, hooks, pool, spool, byLink) = (threads, hooks, pool, custody ? spool : nil, byLink)
        return Task {
            try await pool.runIfActive {
                var opened: [String: Int32] = [:]
                // An inbox that cannot be opened fails each of its files with its own error below.
                for inbox in Set(items.map(\.inbox)) { opened[inbox] = try? Beneath.openRoot(inbox) }
                let roots = opened
                defer { for fd in roots.values { close(fd) } }
                guard let spool else {
                    let results = ParallelMap.map(count: items.count, threads: threads, makeWorker: { FileHasher() }) { hasher, i -> Result in
                        let item = items[i]
                        hooks.beforeHash?(item.path)
                        let read = Self.readInPlace(item, root: roots[item.inbox], hasher: hasher)
                        hooks.afterHash?(item.path)
                        if case .success = read { return Result(digest: read, after: FileStat.of(item.path)) }
                        return Result(digest: read)
                    }
                    return Batch(results: results, journal: nil)
                }
                // The worker's own 0700 folder (checked at start), opened without following a
                // symlink; everything below it is an *at() call on this descriptor. If it cannot
                // be opened, every file of the batch fails with its error (`Spool.openErrno`).
                var spoolFD: Int32 = -1
                var openErrno: Int32 = 0
                do throws(FileSystemError) { spoolFD = try Beneath.openOwnFolder(spool) } catch { openErrno = error.errno }
                defer { if spoolFD >= 0 { close(spoolFD) } }
                var spoolStat = stat()
                if spoolFD >= 0 { fstat(spoolFD, &spoolStat) }
                var target = Spool(path: spool, fd: spoolFD, openErrno: openErrno, device: UInt64(spoolStat.st_dev), owner: geteuid(), group: getegid())
                if byLink && spoolFD >= 0 {
                    target.journal = Self.journal(items, device: target.device, spool: target)
                }
                let place = target
                var results = ParallelMap.map(count: items.count, threads: threads, makeWorker: { Taker() }) { taker, i -> Result in
                    let item = items[i]
                    hooks.beforeHash?(item.path)
                    return Self.take(item, index: i, root: roots[item.inbox], taker: taker, spool: place, hooks: hooks)
                }
                // The copies and the takes are on disk before they are recorded (and the
                // originals of the copies removed).
                if results.contains(where: { $0.spool != nil }) {
                    Self.sync(&results, items: items, spool: place)
                    Self.checkSealed(&results, items: items, spool: place, threads: threads)
                }
                return Batch(results: results, journal: place.journal)
            }
        }
    }

    /// Writes the journal of the batch's possible takes by link (files on the spool's file
    /// system); nil when there are none or it cannot be written (every file is then copied).
    private static func journal(_ items: [Item], device: UInt64, spool: Spool) -> SpoolJournal? {
        var entries: [SpoolJournal.Entry] = []
        for (i, item) in items.enumerated() {
            guard let st = item.stat, st.kind == .regular, st.device == device else { continue }
            entries.append(SpoolJournal.Entry(index: i, inbox: item.inbox, path: item.path, owner: st.owner, group: st.group, mode: st.mode))
        }
        guard !entries.isEmpty else { return nil }
        let journal = SpoolJournal(batch: UUID().uuidString.lowercased(), entries: entries)
        // Without a durable journal no file may leave the inbox before it is recorded: copies.
        do { try journal.write(spool: spool.fd, spoolPath: spool.path) } catch { return nil }
        return journal
    }

    /// One hashing thread's state: its hasher and the inbox folder it has open.
    final class Taker {
        let hasher = FileHasher()
        private var folderKey = ""
        private var folderFD: Int32 = -1

        deinit { if folderFD >= 0 { close(folderFD) } }

        /// The folder `parent` of `inbox`, opened below its root without following symlinks;
        /// kept open for the next file (a batch comes folder by folder).
        func folder(root: Int32, inbox: String, parent: String, display: String) throws(FileSystemError) -> Int32 {
            let key = inbox + "\u{0}" + parent
            if key == folderKey && folderFD >= 0 { return folderFD }
            if folderFD >= 0 { close(folderFD); folderFD = -1 }
            folderFD = try Beneath.openFolder(root, parent, display: display)
            folderKey = key
            return folderFD
        }
    }

    /// Opens one file safely and hashes it in place (no custody).
    private static func readInPlace(_ item: Item, root: Int32?, hasher: FileHasher) -> Swift.Result<FileDigest, FileHashError> {
        guard let root else { return .failure(FileHashError(path: item.path, operation: "open", errno: EACCES)) }
        let relative = String(item.path.dropFirst(item.inbox.count + 1))
        let fd: Int32
        do {
            fd = try Beneath.open(root, relative, flags: O_RDONLY | O_NONBLOCK, display: item.path)
        } catch {
            return .failure(FileHashError(path: item.path, operation: "open", errno: error.errno))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(FileHashError(path: item.path, operation: "stat", errno: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .failure(FileHashError(path: item.path, operation: "type", errno: EINVAL)) }
        return Swift.Result { () throws(FileHashError) -> FileDigest in try hasher.hash(fd: fd, path: item.path, size: Int64(st.st_size)) }
    }

    /// Opens one file safely (its folder below the inbox's root, then the file in it, neither
    /// through a symlink) and takes it into the spool: by link where it may, else by copy.
    private static func take(_ item: Item, index: Int, root: Int32?, taker: Taker, spool: Spool, hooks: PipelineHooks) -> Result {
        guard let root else { return .failed(FileHashError(path: item.path, operation: "open", errno: EACCES)) }
        let relative = item.path.dropFirst(item.inbox.count + 1)
        let slash = relative.lastIndex(of: "/")
        let parent = slash.map { String(relative[..<$0]) } ?? ""
        let base = slash.map { String(relative[relative.index(after: $0)...]) } ?? String(relative)
        let dir: Int32
        do {
            dir = try taker.folder(root: root, inbox: item.inbox, parent: parent, display: item.path)
        } catch {
            return .failed(FileHashError(path: item.path, operation: "open", errno: error.errno))
        }
        let fd = openat(dir, base, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return .failed(FileHashError(path: item.path, operation: "open", errno: errno)) }
        defer { close(fd) }  // gives up a lease too
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failed(FileHashError(path: item.path, operation: "stat", errno: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .failed(FileHashError(path: item.path, operation: "type", errno: EINVAL)) }
        var hooked = false
        if let journal = spool.journal, let found = item.stat, st.st_nlink == 1, UInt64(st.st_dev) == spool.device,
           FileStat(st).identity == found.identity {
            let entry = SpoolJournal.Entry(index: index, inbox: item.inbox, path: item.path, owner: found.owner, group: found.group, mode: found.mode)
            switch link(fd: fd, st, dir: dir, base: base, name: journal.spoolName(index), entry: entry, taker: taker, spool: spool, hooks: hooks) {
            case .taken(let digest, let sealed):
                return Result(digest: .success(digest), spool: spool.path + "/" + journal.spoolName(index), taken: true, sealed: sealed)
            case .failed(let error):
                return .failed(error)
            case .undone(let stranded):
                return Result(digest: .failure(FileHashError(path: item.path, operation: "take", errno: EAGAIN)), disturbed: true, stranded: stranded)
            case .untouched(let read):
                hooked = read
                guard lseek(fd, 0, SEEK_SET) == 0 else { return .failed(FileHashError(path: item.path, operation: "read", errno: errno)) }
            }
        }
        var result = copy(fd: fd, item: item, taker: taker, spool: spool)
        if !hooked { hooks.afterHash?(item.path) }
        if case .success = result.digest {
            var now = stat()
            result.after = fstatat(dir, base, &now, AT_SYMLINK_NOFOLLOW) == 0 ? FileStat(now) : nil
        }
        return result
    }

    /// Copies the open file into a new spool file while hashing it (the copy holds exactly the
    /// bytes hashed).
    private static func copy(fd: Int32, item: Item, taker: Taker, spool: Spool) -> Result {
        guard spool.fd >= 0 else { return .failed(FileHashError(path: spool.path, operation: "open", errno: spool.openErrno)) }
        let name = UUID().uuidString.lowercased() + ".spool"
        let copyPath = spool.path + "/" + name
        let out = openat(spool.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { return .failed(FileHashError(path: copyPath, operation: "create", errno: errno)) }
        let digest = Swift.Result { () throws(FileHashError) -> FileDigest in try taker.hasher.hash(fd: fd, path: item.path, copyTo: out, copyPath: copyPath) }
        if close(out) != 0, case .success = digest {
            let e = errno
            unlinkat(spool.fd, name, 0)
            return .failed(FileHashError(path: copyPath, operation: "close", errno: e))
        }
        if case .failure = digest { unlinkat(spool.fd, name, 0); return Result(digest: digest) }
        return Result(digest: digest, spool: copyPath)
    }

    enum Take {
        /// Linked into the spool, inbox name removed, ours, nobody could write it meanwhile.
        case taken(FileDigest, sealed: FileIdentity)
        /// Reading failed; nothing was changed.
        case failed(FileHashError)
        /// Nothing was changed (no lease, no link): copy instead. `read`: the file was hashed
        /// (and `afterHash` called) already.
        case untouched(read: Bool)
        /// A take undone; `stranded` when the file could not be given back (see `Result`).
        case undone(stranded: Bool)
    }

    /// A take by link, under a read lease (see the type's comment). The lease is given up by
    /// the caller's `close`.
    private static func link(fd: Int32, _ st: stat, dir: Int32, base: String, name: String, entry: SpoolJournal.Entry,
                             taker: Taker, spool: Spool, hooks: PipelineHooks) -> Take {
        // EAGAIN: open for writing (or mapped writable); EACCES/EPERM: not ours and no CAP_LEASE;
        // EINVAL: no leases on this file system.
        guard quickscan_read_lease(fd) == 0 else { return .untouched(read: false) }
        let digest: FileDigest
        do {
            digest = try taker.hasher.hash(fd: fd, path: entry.path, size: Int64(st.st_size))
        } catch {
            _ = quickscan_release_lease(fd)
            return .failed(error)
        }
        hooks.afterHash?(entry.path)
        // Under the lease nobody could have written it; a size that differs means something we
        // do not understand: copy.
        guard digest.size == Int64(st.st_size),
              quickscan_link_open_file(fd, spool.fd, name) == 0 else {  // EPERM (protected_hardlinks), EXDEV, EMLINK…
            _ = quickscan_release_lease(fd)
            return .untouched(read: true)
        }
        // The inbox name goes only if it still names this file (a rename meanwhile: ours goes).
        var now = stat()
        guard fstatat(dir, base, &now, AT_SYMLINK_NOFOLLOW) == 0, now.st_dev == st.st_dev, now.st_ino == st.st_ino,
              unlinkat(dir, base, 0) == 0 else {
            unlinkat(spool.fd, name, 0)
            _ = quickscan_release_lease(fd)
            return .undone(stranded: false)
        }
        CrashPoint.reach("taken")
        // Ours: the owner, then a mode nobody else can write by (a chown clears set-id bits).
        var ok = (st.st_uid == spool.owner && st.st_gid == spool.group) || fchown(fd, spool.owner, spool.group) == 0
        ok = ok && ((st.st_mode & 0o7777) == 0o600 || fchmod(fd, 0o600) == 0)
        // The lease still intact proves that nobody opened it for writing since it was taken
        // (such an open breaks it, and waits for us); one link proves nobody kept a name for it.
        var sealed = stat()
        ok = ok && fstat(fd, &sealed) == 0 && sealed.st_nlink == 1 && quickscan_lease(fd) == QUICKSCAN_LEASE_READ
        if ok { return .taken(digest, sealed: FileStat(sealed).identity) }
        // Disturbed: the file goes back where it was, as it was (its new version is taken later).
        _ = quickscan_release_lease(fd)
        do {
            try SpoolJournal.giveBack(spool: spool.fd, spoolPath: spool.path, name: name, to: entry)
            return .undone(stranded: false)
        } catch {
            return .undone(stranded: true)
        }
    }

    /// Syncs the spool's file system once for the batch. If that fails, no file of the batch
    /// is recorded as in custody: copies are removed, takes given back, and each file fails
    /// with the error.
    private static func sync(_ results: inout [Result], items: [Item], spool: Spool) {
        guard quickscan_syncfs(spool.fd) != 0 else { return }
        let error = FileHashError(path: spool.path, operation: "sync", errno: errno)
        for i in results.indices where results[i].spool != nil {
            let name = (results[i].spool! as NSString).lastPathComponent
            var stranded = false
            if results[i].sealed != nil, let found = items[i].stat {
                let entry = SpoolJournal.Entry(index: i, inbox: items[i].inbox, path: items[i].path, owner: found.owner, group: found.group, mode: found.mode)
                // A failure is not lost: `stranded` keeps the journal, and the next start gives
                // the file back (SpoolCustodian.settleJournals), logging why it could not.
                stranded = (try? SpoolJournal.giveBack(spool: spool.fd, spoolPath: spool.path, name: name, to: entry)) == nil
            } else {
                unlinkat(spool.fd, name, 0)
            }
            results[i] = .failed(error)
            results[i].stranded = stranded
        }
    }

    /// Checks every file taken by link again, a while after it was taken (the batch and its
    /// sync in between): still one link, still its identity once ours (a write since would
    /// have changed its ctime), and nobody has it open for writing now (a read lease is granted
    /// again). This covers an open for writing that passed its permission check before the
    /// file became ours and completed after the lease was checked. A file that fails is copied
    /// now (the copy holds exactly the bytes hashed from it, and is what custody keeps; its
    /// inbox name is gone already), and the linked file leaves the spool with its owner and
    /// mode given back: whoever still holds it holds their own file, never one we file. If the
    /// copy fails, the linked file is given back to the inbox instead.
    private static func checkSealed(_ results: inout [Result], items: [Item], spool: Spool, threads: Int) {
        let taken = results.indices.filter { results[$0].sealed != nil }
        guard !taken.isEmpty else { return }
        let snapshot = results
        let fixed = ParallelMap.map(count: taken.count, threads: threads, makeWorker: { Taker() }) { taker, k -> Result? in
            let i = taken[k]
            let result = snapshot[i]
            let name = (result.spool! as NSString).lastPathComponent
            let fd = openat(spool.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { return .failed(FileHashError(path: result.spool!, operation: "open", errno: errno)) }
            defer { close(fd) }
            var now = stat()
            if quickscan_read_lease(fd) == 0, fstat(fd, &now) == 0, now.st_nlink == 1, FileStat(now).identity == result.sealed {
                return nil
            }
            _ = quickscan_release_lease(fd)
            guard lseek(fd, 0, SEEK_SET) == 0, let found = items[i].stat else { return .failed(FileHashError(path: result.spool!, operation: "read", errno: errno)) }
            let entry = SpoolJournal.Entry(index: i, inbox: items[i].inbox, path: items[i].path, owner: found.owner, group: found.group, mode: found.mode)
            var copy = Self.copy(fd: fd, item: items[i], taker: taker, spool: spool)
            if case .success = copy.digest {
                copy.taken = true
                _ = fchown(fd, entry.owner, entry.group)
                _ = fchmod(fd, mode_t(entry.mode & 0o7777))
                // Not ours any more; a name left by a failure here is an orphan, removed at start.
                unlinkat(spool.fd, name, 0)
                return copy
            }
            var back = Result(digest: copy.digest, disturbed: true)
            // As above: a failure keeps the journal, and the next start gives the file back.
            back.stranded = (try? SpoolJournal.giveBack(spool: spool.fd, spoolPath: spool.path, name: name, to: entry)) == nil
            return back
        }
        var recopied = false
        for (k, fix) in fixed.enumerated() {
            guard let fix else { continue }
            results[taken[k]] = fix
            recopied = true
        }
        if recopied && quickscan_syncfs(spool.fd) != 0 {
            let error = FileHashError(path: spool.path, operation: "sync", errno: errno)
            for k in taken.indices where fixed[k] != nil {
                if let copyPath = results[taken[k]].spool { unlinkat(spool.fd, (copyPath as NSString).lastPathComponent, 0) }
                let stranded = results[taken[k]].stranded
                results[taken[k]] = .failed(error)
                results[taken[k]].stranded = stranded
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
        if result.disturbed { return .changed }
        switch result.digest {
        case .success(let digest):
            // Taken into custody: checked under the lease (or copied after), the inbox name gone.
            if result.taken { return .hashed(sha256: digest.sha256) }
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
