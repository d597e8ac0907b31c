import FalconAPI
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The watcher and its index: polls the inboxes, keeps the files that are not stable yet in
/// memory, and hands stable files to the hasher. An idle poll (nothing changed) costs a stat
/// and a dictionary lookup per file, no database access.
public actor DirectoryWatcher {
    let context: StageContext
    let hasher: InboxHasher
    let walker: DirectoryWalker
    let custodian: SpoolCustodian?

    /// The last version recorded per path (loaded from the store).
    private var known: [String: FileIdentity] = [:]
    /// Files seen but not yet stable: identity, since when unchanged, when first seen.
    private var settling: [String: (identity: FileIdentity, since: Double, firstSeen: Double)] = [:]
    /// Paths whose recorded version changed since the last poll (see `forgetVersion`).
    private var changed: Set<String> = []
    /// In `--once` mode: only paths present at the first poll are taken.
    private var onlyPaths: Set<String>?
    /// In `--once` mode: files still changing after `max_settle_seconds`, no longer waited for.
    public private(set) var stillChanging: Set<String> = []
    private var lastPrune = 0.0

    /// Files hashed per batch; one batch is hashed while the one before it is recorded.
    public static let ingestBatch = 10_000
    /// Watch mode: how often the index drops paths that are gone.
    static let pruneInterval = 60.0

    init(context: StageContext, hasher: InboxHasher, custodian: SpoolCustodian?) {
        self.context = context
        self.hasher = hasher
        self.custodian = custodian
        self.walker = DirectoryWalker(threads: context.config.hashThreads)
    }

    /// Loads the index from the store.
    func load() async throws {
        known = try await context.store.knownFiles()
    }

    /// Files present but not taken yet (settling, or changed since recorded), counting only a
    /// `--once` run's own files.
    var unsettledCount: Int {
        settling.keys.filter { onlyPaths?.contains($0) ?? true }.count + changed.count
    }

    var isSettling: Bool { !settling.isEmpty }

    /// Files that become stable within `grace` seconds (a burst still being copied in) or
    /// changed since recorded: the open volume lingers for them.
    func arriving(within grace: Double) -> Int {
        let due = context.now() + grace - context.config.settleSeconds
        return settling.filter { ($0.value.since <= due) && (onlyPaths?.contains($0.key) ?? true) }.count + changed.count
    }

    /// When the next settling file becomes stable (nil: none settling).
    var nextSettleDue: Double? {
        settling.values.map(\.since).min().map { $0 + context.config.settleSeconds }
    }

    /// The recorded version of `path` is gone (changed while read, changed before disposal):
    /// the watcher looks again, and a `--once` run does not end before it has.
    func forgetVersion(_ path: String) {
        known[path] = nil
        changed.insert(path)
    }

    /// The recorded version of `path` now has `identity` (its ctime changed by our own
    /// rolled-back link, its bytes checked).
    func noteRecorded(_ path: String, _ identity: FileIdentity) {
        known[path] = identity
    }

    /// The file left `path` (moved or deleted): the path is free for a new file.
    func release(_ path: String) {
        known[path] = nil
    }

    /// The folders files are filed into, by device and inode, so an inbox walk never enters
    /// them whatever path names them (looked up each poll: they are created on first use).
    private func destinationNodes() -> Set<FileNode> {
        var nodes: Set<FileNode> = []
        for rule in context.config.disposition.values {
            // A destination not created yet has nothing to skip.
            guard let folder = rule.to, let st = try? context.fs.lstat(folder), st.kind == .directory else { continue }
            nodes.insert(st.node)
        }
        return nodes
    }

    /// One poll: stats every entry, takes the stable ones. Returns the number of entries seen.
    @discardableResult
    func poll(firstPoll: Bool, once: Bool) async throws -> Int {
        let config = context.config
        let now = context.now()
        // The set of paths seen is needed to forget settling files that vanished, to fix a
        // --once run's file list and, now and then, to prune the index; an idle poll skips it.
        let prune = !once && now - lastPrune >= Self.pruneInterval
        let needSeen = !settling.isEmpty || (firstPoll && once) || prune
        var seen: Set<String> = []
        var entriesSeen = 0
        var stable: [InboxEntry] = []
        var completeWalk = true
        let skip = destinationNodes()
        for inbox in config.inboxes {
            var st = stat()
            let found = stat(inbox.path, &st) == 0
            if !found || (st.st_mode & S_IFMT) != S_IFDIR {
                let problem = found || errno != ENOENT ? "is not a folder" : "does not exist"
                completeWalk = false
                // A cron run with a wrong inbox is a configuration error; a watcher waits for
                // it (a share may come back).
                if once && firstPoll { throw ConfigurationError("inbox \(inbox.path) \(problem)") }
                context.logger.error("inbox \(problem)", metadata: ["inbox.path": "\(inbox.path)"])
                continue
            }
            let errors = walker.walk(inbox, excludingDirectories: skip) { entries, remaining in
                entriesSeen += entries.count
                if needSeen && seen.count == seen.capacity { seen.reserveCapacity(seen.count + remaining) }
                for (index, entry) in entries.enumerated() {
                    if needSeen { seen.insert(entry.path) }
                    if let onlyPaths, !onlyPaths.contains(entry.path) { continue }
                    if known[entry.path] == entry.stat.identity { continue }  // idle poll: a stat, nothing else
                    if stillChanging.contains(entry.path) { continue }
                    if config.settleSeconds == 0 {
                        // Room for the rest at once: growing by doubling held two copies of a
                        // 100,000-file list at the peak.
                        if stable.count == stable.capacity { stable.reserveCapacity(stable.count + remaining - index) }
                        stable.append(entry)
                    } else if let s = settling[entry.path], s.identity == entry.stat.identity {
                        if now - s.since >= config.settleSeconds { stable.append(entry) }
                    } else if let s = settling[entry.path], once, now - s.firstSeen >= config.maxSettleSeconds {
                        // Still changing after the bound: a --once run stops waiting for it
                        // and ends deferred with the file pending.
                        settling[entry.path] = nil
                        stillChanging.insert(entry.path)
                        context.logger.warning("file still changing; left for the next run", metadata: [
                            "file.path": "\(entry.path)", "max_settle_seconds": "\(config.maxSettleSeconds)"])
                    } else {
                        settling[entry.path] = (entry.stat.identity, now, settling[entry.path]?.firstSeen ?? now)
                    }
                }
            }
            if once && firstPoll, let rootError = errors.first(where: { $0.hasPrefix("cannot read folder \(inbox.path):") }) {
                throw ConfigurationError("inbox \(rootError.dropFirst("cannot read folder ".count))")
            }
            if !errors.isEmpty { completeWalk = false }
            for e in errors { context.logger.warning("\(e)") }
        }
        if needSeen && !settling.isEmpty {
            // Forget files that vanished while settling.
            for path in settling.keys where !seen.contains(path) && settling[path]?.since != now { settling[path] = nil }
        }
        if prune {
            lastPrune = now
            // Paths that vanished leave the index, so watch mode's memory stays flat; only
            // after a walk that read every folder (an unreadable folder is not a vanished one).
            if completeWalk { known = known.filter { seen.contains($0.key) } }
        }
        changed.removeAll()
        if firstPoll && once { onlyPaths = seen }
        try await take(&stable)
        return entriesSeen
    }

    /// Takes stable files. Those that cannot be scanned are recorded decided at once; the rest
    /// are hashed in batches and recorded already `hashed`, each batch hashed while the one
    /// before it is written (hashing has no persisted in-progress state: after a crash the
    /// file is simply found and hashed again). `entries` is left holding the files hashed.
    private func take(_ entries: inout [InboxEntry]) async throws {
        var unscannable: [UnscannableFile] = []
        known.reserveCapacity(known.count + entries.count)
        for entry in entries {
            settling[entry.path] = nil
            known[entry.path] = entry.stat.identity
            if let (reason, error) = unscannableReason(entry) {
                unscannable.append((entry.path, entry.inbox, entry.stat.identity, reason, error))
            }
        }
        if !unscannable.isEmpty {
            // In place: a 100,000-file inbox is not copied.
            let recorded = Set(unscannable.map(\.path))
            entries.removeAll { recorded.contains($0.path) }
            try await context.store.recordNotScanned(unscannable)
        }
        let batches = stride(from: 0, to: entries.count, by: Self.ingestBatch).map { $0..<min($0 + Self.ingestBatch, entries.count) }
        guard let first = batches.first else { return }
        func items(_ batch: Range<Int>) -> [InboxHasher.Item] {
            entries[batch].map { InboxHasher.Item(path: $0.path, inbox: $0.inbox, stat: $0.stat) }
        }
        var hashing = hasher.start(items(first))
        for (index, batch) in batches.enumerated() {
            let hashed = try await hashing.value
            // A shutdown between batches keeps what is recorded; the rest is found next run.
            // The batch already read is recorded first: its files may have left the inbox.
            if index > 0 && Task.isCancelled {
                try await record(entries[batch], hashed)
                for entry in entries[batch.upperBound...] { forgetVersion(entry.path) }
                throw CancellationError()
            }
            if index + 1 < batches.count { hashing = hasher.start(items(batches[index + 1])) }
            try await record(entries[batch], hashed)
        }
    }

    /// Why a stable entry cannot be scanned, before reading it (nil: hash it).
    private func unscannableReason(_ entry: InboxEntry) -> (NotScannedReason, String)? {
        if !entry.hasValidName {
            context.logger.warning("file name is not valid UTF-8; left in place", metadata: ["file.path": "\(entry.path)"])
            return (.unreadable, "file name is not valid UTF-8: rename the file to have it scanned")
        }
        switch entry.stat.kind {
        case .symlink:
            return (.unreadable, "symbolic link: not followed")
        case .other:
            return (.unreadable, "not a regular file")
        default:
            let limit = context.config.fileSizeLimit
            if entry.stat.identity.size > limit.bytes {
                return (.tooLarge, "\(entry.stat.identity.size) bytes, over \(limit.key) \(limit.bytes)")
            }
            return nil
        }
    }

    /// Records one hashed batch of newly taken files.
    private func record(_ batch: ArraySlice<InboxEntry>, _ read: InboxHasher.Batch) async throws {
        var hashed: [HashedFile] = []
        hashed.reserveCapacity(batch.count)
        var unscannable: [UnscannableFile] = []
        for (entry, result) in zip(batch, read.results) {
            switch InboxHasher.classify(identity: entry.stat.identity, result) {
            case .hashed(let sha256):
                hashed.append((entry.path, entry.inbox, entry.stat.identity, sha256, result.spool, result.taken))
            case .changed:
                if let spool = result.spool { unlink(spool) }  // a copy of a version nobody will file
                forgetVersion(entry.path)
            case .notScanned(let reason, let error):
                if let spool = result.spool { unlink(spool) }
                unscannable.append((entry.path, entry.inbox, entry.stat.identity, reason, error))
            }
        }
        let skipped = try await context.store.recordHashed(hashed)
        context.metrics.hashed(bytes: hashed.reduce(0) { $0 + $1.identity.size })
        try await context.store.recordNotScanned(unscannable)
        CrashPoint.reach("hashed")
        guard let custodian else { return }
        // Custody by link: the files are recorded (durably) and their inbox names are gone
        // already, so their paths are free. A version the store already knew (not expected) is
        // not recorded again: its file goes back to the inbox. Then the journal goes.
        var stranded = read.keepJournal
        for file in hashed where file.taken {
            known[file.path] = nil
            guard skipped.contains(file.path), let spool = file.spool,
                  let entry = batch.first(where: { $0.path == file.path }) else { continue }
            if !custodian.giveBack(spool: spool, entry) { stranded = true }
        }
        if let journal = read.journal { custodian.removeJournal(journal, keep: stranded) }
        // Custody by copy: the copies are recorded (durably): the originals leave the inbox.
        if hashed.contains(where: { $0.spool != nil && !$0.taken }) {
            for path in try await custodian.removeOriginals() { known[path] = nil }
        }
    }

    /// Files recorded `discovered` and not hashed (a database written by an earlier version):
    /// hashed and moved on.
    func hashDiscovered() async throws {
        let store = context.store
        let files = try await store.files(in: [.discovered], limit: 5000)
        guard !files.isEmpty else { return }
        let digests = try await hasher.start(files.map { InboxHasher.Item(path: $0.path, inbox: $0.inbox) }, custody: false).value.results
        var hashed: [(id: Int64, sha256: String, size: Int64)] = []
        for (file, result) in zip(files, digests) {
            switch InboxHasher.classify(identity: file.identity, result) {
            case .hashed(let sha256):
                hashed.append((file.id, sha256, file.identity.size))
            case .changed:
                try await store.supersede(file.id, detail: "changed while being hashed")
                forgetVersion(file.path)
            case .notScanned(let reason, let error):
                try await store.decide(file.id, outcome: .notScanned, reason: reason, error: error)
            }
        }
        try await store.markHashed(hashed)
        context.metrics.hashed(bytes: hashed.reduce(0) { $0 + $1.size })
        CrashPoint.reach("hashed")
    }
}
