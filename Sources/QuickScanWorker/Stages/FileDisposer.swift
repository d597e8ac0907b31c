import Foundation
import Hashing
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The disposer: files each decided file by its outcome (move, delete or leave), through the
/// `FileSystem` so that every call's result is checked. Each destination is recorded durably
/// before the file is touched; a step that fails is undone, the file stays `decided` with the
/// reason and is retried later, and the rest go on. A disposal a crash interrupted is
/// finished from what is on disk, after the file's identity is checked again.
struct FileDisposer: Sendable {
    let context: StageContext
    let watcher: DirectoryWatcher
    let mover: FileMover

    init(context: StageContext, watcher: DirectoryWatcher) {
        self.context = context
        self.watcher = watcher
        self.mover = FileMover(fs: context.fs)
    }

    /// Files disposed of per durable intent transaction.
    static let batchSize = 500

    /// One pass: interrupted disposals first, then every decided file that may be tried now,
    /// read a batch at a time (a burst of 10,000 decided files read at once was the largest
    /// block of a watcher's peak memory, found with heaptrack in the soak).
    func run() async throws {
        try await resumeInterrupted()
        let policy = context.policy
        var after: Int64 = 0
        while true {
            let page = try await context.store.files(in: [.decided], after: after, limit: Self.batchSize)
            guard let last = page.last else { return }
            after = last.id
            var files: [FileRecord] = []
            for file in page where await policy.mayTry(file.id) { files.append(file) }
            if !files.isEmpty { try await dispose(files) }
        }
    }

    private struct Intent {
        var file: FileRecord
        var plan: Decisions.DisposalPlan
        var destination: String?
    }

    private func dispose(_ files: [FileRecord]) async throws {
        let store = context.store
        // 1. Plan each file and make its folders; what cannot be planned waits with its reason.
        var intents: [Intent] = []
        for file in files {
            guard let outcome = file.outcome else { continue }
            context.hooks.beforeDisposal?(file.path)
            let rule = context.config.disposition[outcome] ?? DispositionRule(action: .leave)
            let plan = Decisions.disposal(rule: rule, outcome: outcome, path: file.path, inbox: file.inbox,
                                          fileMode: context.config.fileMode(outcome, custody: file.spoolPath != nil))
            switch checkIdentity(file) {
            case .gone:
                // Nothing to file: recorded as not filed anywhere.
                try await store.beginDisposal(file.id, destination: nil)
                try await store.finishDisposal(file.id, destination: nil)
                await watcher.release(file.path)
                continue
            case .changed:
                // Never file a changed file under the old verdict: its new version is rescanned.
                try await store.supersede(file.id, detail: "changed before disposal")
                await watcher.forgetVersion(file.path)
                continue
            case .failed(let error):
                try await context.policy.fileFailed(file.id, path: file.path, reason: "\(error)")
                continue
            case .unchanged:
                break
            }
            switch plan {
            case .leave: intents.append(Intent(file: file, plan: plan, destination: nil))
            case .delete: intents.append(Intent(file: file, plan: plan, destination: Decisions.deletedMarker))
            case .move(let folder, let relative, _, let folderMode):
                do {
                    try mover.makeFolders(folder, mode: folderMode)
                    // An existing quarantine is made private again (it may predate us).
                    if folderMode == 0o700 { try context.fs.chmod(folder, folderMode) }
                    let destination = mover.uniqueDestination(folder: folder, relative: relative)
                    try mover.makeFolders((destination as NSString).deletingLastPathComponent, mode: folderMode)
                    intents.append(Intent(file: file, plan: plan, destination: destination))
                } catch {
                    try await context.policy.fileFailed(file.id, path: file.path, reason: "\(error)")
                }
            }
        }
        guard !intents.isEmpty else { return }
        // 2. The destinations, durably, before any file is touched.
        try await store.beginDisposals(intents.map { ($0.file.id, $0.destination) })
        CrashPoint.reach("disposal-begun")
        // 3. Each file: deleted, or placed at its destination. The destination folders are
        //    fsynced once for the batch before any source is removed (a power cut never loses
        //    both names), the source folders once at the end: one folder fsync per file made
        //    filing disk-bound.
        var done: [Intent] = []
        var placed: [Intent] = []
        var sourceFolders: Set<String> = []
        for intent in intents {
            let file = intent.file
            // Checked again right before the move: the file may have changed since step 1.
            guard case .unchanged = checkIdentity(file) else {
                try await store.abandonDisposal(file.id, detail: "changed just before it was filed")
                await watcher.forgetVersion(file.path)
                continue
            }
            do {
                switch intent.plan {
                case .leave:
                    done.append(intent)
                case .delete:
                    try context.fs.unlink(Self.source(file))
                    sourceFolders.insert((Self.source(file) as NSString).deletingLastPathComponent)
                    done.append(intent)
                case .move(_, _, let fileMode, _):
                    try mover.place(Self.source(file), at: intent.destination!, fileMode: fileMode, syncFolder: false)
                    placed.append(intent)
                }
            } catch {
                try await failed(file, error)
            }
        }
        var unsynced: [String: FileSystemError] = [:]
        for folder in Set(placed.map { ($0.destination! as NSString).deletingLastPathComponent }) {
            do { try context.fs.fsyncDirectory(folder) } catch { unsynced[folder] = error }
        }
        for intent in placed {
            let (file, destination) = (intent.file, intent.destination!)
            if let error = unsynced[(destination as NSString).deletingLastPathComponent] {
                // Whether the undo worked is the information kept (rolledBack).
                let removed = (try? context.fs.unlink(destination)) != nil
                try await failed(file, FileMover.Failure(cause: error, rolledBack: removed))
                continue
            }
            do {
                try context.fs.unlink(Self.source(file))
            } catch {
                // The source stays (a sticky inbox refuses to let us remove another user's
                // file): the copy goes, so nothing claims the file was filed.
                // Whether the undo worked is the information kept (rolledBack).
                let removed = (try? context.fs.unlink(destination)) != nil
                try await failed(file, FileMover.Failure(cause: error, rolledBack: removed))
                continue
            }
            CrashPoint.reach("source-removed")
            sourceFolders.insert((Self.source(file) as NSString).deletingLastPathComponent)
            done.append(intent)
        }
        for intent in done {
            await context.policy.fileRecovered(intent.file.id)
            if intent.plan != .leave { await watcher.release(intent.file.path) }
            context.logger.info("file disposed", metadata: ["file.path": "\(intent.file.path)", "file.destination": "\(intent.destination ?? "left in place")"])
        }
        for folder in sourceFolders {
            // The files are at their destinations (those folders were flushed first); a source
            // folder that cannot be flushed may show the file again after a power cut, which
            // the resume handles. Logged, not fatal.
            do { try context.fs.fsyncDirectory(folder) } catch {
                context.logger.warning("cannot flush an inbox folder after filing", metadata: ["error": "\(error)"])
            }
        }
        try await store.finishDisposals(done.map { ($0.file.id, $0.destination) })
    }

    /// A disposal step failed: rolled back → the file is `decided` again with the reason;
    /// not rolled back (a copy is left at the destination) → it stays `disposing` and the
    /// resume finishes it. Either way it waits before the next try, and the reason shows.
    private func failed(_ file: FileRecord, _ error: any Error) async throws {
        let reason = "\(error)"
        if let failure = error as? FileMover.Failure, !failure.rolledBack {
            try await context.policy.fileFailed(file.id, path: file.path, reason: reason)
        } else {
            try await context.store.rollBackDisposal(file.id, reason: reason)
            try await refreshIdentityAfterRollback(file)
            try await context.policy.fileFailed(file.id, path: file.path, reason: reason)
        }
    }

    /// Linking and unlinking a second name changes the file's ctime: after a rollback the file
    /// would look changed and be scanned (and reported) again. Its new ctime is recorded, but
    /// only when the bytes are still the ones scanned.
    private func refreshIdentityAfterRollback(_ file: FileRecord) async throws {
        // Best effort: when the file cannot be read now, its identity is left as it was and the
        // next attempt decides (a changed file is then rescanned, never misfiled).
        guard file.spoolPath == nil, let now = try? context.fs.lstat(file.path), now.identity != file.identity,
              now.identity.inode == file.identity.inode, now.identity.size == file.identity.size,
              now.identity.mtimeNs == file.identity.mtimeNs else { return }
        if let sha = file.sha256 {
            guard (try? FileHasher().hashFile(atPath: file.path).sha256) == sha else { return }
        }
        try await context.store.refreshIdentity(file.id, to: now.identity)
        await watcher.noteRecorded(file.path, now.identity)
    }

    private enum IdentityCheck {
        case unchanged, changed, gone
        case failed(FileSystemError)
    }

    /// Where the file to dispose of is: the worker's spool copy (custody), else the inbox.
    static func source(_ file: FileRecord) -> String { file.spoolPath ?? file.path }

    private func checkIdentity(_ file: FileRecord) -> IdentityCheck {
        if let spool = file.spoolPath {
            // Our own copy: nobody else can change it; it is there or it is not.
            do {
                let now = try context.fs.lstat(spool)
                return now.kind == .regular && now.identity.size == file.identity.size ? .unchanged : .changed
            } catch {
                return error.errno == ENOENT ? .gone : .failed(error)
            }
        }
        do {
            let now = try context.fs.lstat(file.path)
            return now.identity == file.identity ? .unchanged : .changed
        } catch {
            return error.errno == ENOENT ? .gone : .failed(error)
        }
    }

    private func lstatOrNil(_ path: String) throws(FileSystemError) -> FileStat? {
        do {
            return try context.fs.lstat(path)
        } catch where error.errno == ENOENT {
            return nil
        }
    }

    // MARK: resume

    /// Disposals a crash (or a failed rollback) left `disposing`: each is finished from what
    /// is on disk, its identity checked first. A file that cannot be finished now waits with
    /// its reason; it never stops the others or the start.
    func resumeInterrupted() async throws {
        for file in try await context.store.files(in: [.disposing]) where await context.policy.mayTry(file.id) {
            do {
                try await resume(file)
            } catch let error as FileSystemError {
                try await context.policy.fileFailed(file.id, path: file.path, reason: "\(error)")
            } catch let error as FileMover.Failure {
                try await failed(file, error)
            }
        }
    }

    private func resume(_ file: FileRecord) async throws {
        let store = context.store
        let destination = file.disposedTo
        let custody = file.spoolPath != nil
        let source = try lstatOrNil(Self.source(file))
        // Our spool copy is whatever it is now (only a crash between link and unlink changes
        // its ctime); an inbox file must still be the version scanned.
        let recorded = custody ? (source?.identity ?? file.identity) : file.identity
        let isMove = destination != nil && destination != Decisions.deletedMarker
        let target = isMove ? try lstatOrNil(destination!) : nil
        var holdsScanned = false
        if isMove, let target, source?.node != target.node {
            holdsScanned = targetHoldsScannedBytes(file, target: destination!, source: source)
        }
        // A copy cut short by the crash; usually absent (ENOENT), and a copy starts by removing
        // it again anyway.
        if isMove { try? context.fs.unlink(FileMover.partialPath(for: destination!)) }
        let action = Decisions.resume(destination: destination, recorded: recorded, source: source, target: target,
                                      targetHoldsScannedBytes: holdsScanned)
        let fileMode = context.config.fileMode(file.outcome ?? .threat, custody: custody)
        switch action {
        case .finish(let at):
            if isMove, at != nil, let fileMode { try context.fs.chmod(at!, fileMode) }  // the mode, if the crash came first
            if !custody && source != nil && at != nil { await watcher.forgetVersion(file.path) }  // a new version sits at the path
            try await store.finishDisposal(file.id, destination: at)
        case .removeSourceThenFinish:
            if let fileMode { try context.fs.chmod(destination!, fileMode) }
            try context.fs.fsyncDirectory((destination! as NSString).deletingLastPathComponent)
            try context.fs.unlink(Self.source(file))
            try context.fs.fsyncDirectory((Self.source(file) as NSString).deletingLastPathComponent)
            try await store.finishDisposal(file.id, destination: destination)
            await watcher.release(file.path)
        case .disposeAgain:
            if destination == Decisions.deletedMarker {
                try context.fs.unlink(Self.source(file))
                try context.fs.fsyncDirectory((Self.source(file) as NSString).deletingLastPathComponent)
                try await store.finishDisposal(file.id, destination: destination)
            } else {
                let free = target == nil ? destination! : mover.uniqueDestination(
                    folder: (destination! as NSString).deletingLastPathComponent, relative: (destination! as NSString).lastPathComponent)
                try mover.move(Self.source(file), to: free, fileMode: fileMode)
                try await store.finishDisposal(file.id, destination: free)
            }
            await watcher.release(file.path)
        case .supersede:
            try await store.abandonDisposal(file.id, detail: "changed before its disposal finished")
            if !custody { await watcher.forgetVersion(file.path) }
        }
        await context.policy.fileRecovered(file.id)
    }

    /// Whether the destination (another inode than the source) holds exactly the scanned
    /// bytes: its sha256 equals the recorded one, or, for a file never hashed, its bytes equal
    /// the unchanged source's.
    private func targetHoldsScannedBytes(_ file: FileRecord, target: String, source: FileStat?) -> Bool {
        if let sha = file.sha256 {
            return (try? FileHasher().hashFile(atPath: target).sha256) == sha  // unreadable: not ours, copy again
        }
        guard let source, file.spoolPath != nil || source.identity == file.identity else { return false }
        return mover.sameContent(Self.source(file), target)
    }
}
