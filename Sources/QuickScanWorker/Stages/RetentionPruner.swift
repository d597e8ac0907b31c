import FalconAPI
import SQLiteKit
import Foundation
import Logging

/// What one prune removed and how long its longest transaction held the write lock.
public struct PruneReport: Sendable, Equatable, CustomStringConvertible {
    public var files = 0, events = 0, volumes = 0, samples = 0, quarantineDeleted = 0, cloudDeleted = 0
    public var pagesReclaimed = 0
    public var transactions = 0
    public var longestTransactionSeconds = 0.0
    public var seconds = 0.0
    /// Where the time went: each phase (files, volumes, samples, space) with its time in
    /// transactions and its number of transactions, and the pauses between them (WAL
    /// checkpoints included).
    public var phases: [Phase] = []
    public var pausedSeconds = 0.0

    public init() {}

    public struct Phase: Sendable, Equatable {
        public var name: String
        public var seconds = 0.0
        public var transactions = 0
    }

    /// One line: each phase's time and transactions, and the pauses.
    public var timings: String {
        (phases.map { "\($0.name) \(String(format: "%.2f", $0.seconds)) s/\($0.transactions)" } + ["paused \(String(format: "%.2f", pausedSeconds)) s"])
            .joined(separator: ", ")
    }

    public var description: String {
        "removed \(files) files, \(events) events, \(volumes) volumes, \(samples) samples; " +
            "deleted \(quarantineDeleted) quarantined files, \(cloudDeleted) cloud samples; reclaimed \(pagesReclaimed) pages; " +
            "\(transactions) transactions, longest \(String(format: "%.3f", longestTransactionSeconds)) s, total \(String(format: "%.2f", seconds)) s"
    }
}

/// Retention: prunes rows of files disposed long ago (and their events, old volumes and
/// samples past the verdict cache), reclaims the space, and — only when
/// `retention.quarantine_days` says so — deletes old quarantined files. Works in chunks sized
/// so that each transaction stays well under `maxLockSeconds`.
public struct RetentionPruner: Sendable {
    let store: WorkerStore
    let config: WorkerConfiguration
    let logger: Logger
    /// The most a transaction may hold the write lock. Chunks are sized from the last
    /// transaction's time to take `transactionShare` of it (0.3 s), which leaves room for a
    /// transaction that runs slower than the one before it.
    public var maxLockSeconds = 1.0
    public var transactionShare = 0.3
    /// A VACUUM instead of incremental_vacuum steps when at most this many pages (16 MB) are
    /// still in use: it rewrites only those (measured on the 2-core build machine: 1,751 pages
    /// in 0.05 s, 15,515 in 0.83 s), while incremental_vacuum takes time for every free page,
    /// more the longer the free list (151,082 free pages: 69 s in 303 steps).
    public var vacuumLivePagesAtMost = 4000
    /// Free time for other writers after each transaction (the WAL checkpoint runs in it):
    /// four times as long as quickscan's busy handler sleeps between two tries
    /// (`SQLiteConnection.busyPollMilliseconds`), so a watcher that waits, in this process or
    /// another, is sure to find the lock free once. (A writer with SQLite's stock busy
    /// timeout sleeps up to 100 ms between tries and may miss it; the lock is not fair.)
    public var pauseBetweenTransactions: Duration = .milliseconds(Int64(4 * SQLiteConnection.busyPollMilliseconds))

    public init(store: WorkerStore, config: WorkerConfiguration, logger: Logger) {
        self.store = store
        self.config = config.normalized()
        self.logger = logger
    }

    /// The page cache a prune uses while it runs (KiB; the store's own is set back after).
    public var pageCacheKiB = 65536

    /// Prunes what finished more than `olderThan` seconds ago.
    public func prune(olderThan: Double, now: Double = Date().timeIntervalSince1970) async throws -> PruneReport {
        try await store.setPageCache(kibibytes: pageCacheKiB)
        do {
            let report = try await pruneWithCache(olderThan: olderThan, now: now)
            try await store.setPageCache(kibibytes: nil)
            return report
        } catch {
            // The prune's error is the one to report; a failure to set the cache back is logged.
            do { try await store.setPageCache(kibibytes: nil) } catch let reset {
                logger.warning("cannot set the page cache back after a failed prune", metadata: ["error": "\(reset)"])
            }
            throw error
        }
    }

    private func pruneWithCache(olderThan: Double, now: Double) async throws -> PruneReport {
        let started = ContinuousClock.now
        var report = PruneReport()
        if let days = config.retention.quarantineDays {
            report.quarantineDeleted = try await deleteQuarantined(olderThanDays: days, now: now)
        }
        let cutoff = now - olderThan
        let target = maxLockSeconds * transactionShare
        var phase = ""
        /// Runs one transaction and returns its result and how long it took, then leaves the
        /// lock to others for `pauseBetweenTransactions`: checkpointing the WAL first (other
        /// writers may write meanwhile), then sleeping the rest.
        func timed<T>(_ body: () async throws -> T) async throws -> (T, Double) {
            let t0 = ContinuousClock.now
            let result = try await body()
            let elapsed = Self.seconds(ContinuousClock.now - t0)
            if report.phases.last?.name != phase { report.phases.append(.init(name: phase)) }
            report.phases[report.phases.count - 1].seconds += elapsed
            report.phases[report.phases.count - 1].transactions += 1
            report.transactions += 1
            report.longestTransactionSeconds = max(report.longestTransactionSeconds, elapsed)
            logger.debug("prune transaction", metadata: ["prune.phase": "\(phase)", "prune.seconds": "\(elapsed)"])
            // SQLite's lock is not fair: a pause after each transaction lets another writer
            // (a watcher in another process, whose busy handler polls) take its turn.
            let p0 = ContinuousClock.now
            try await store.checkpoint()
            let rest = pauseBetweenTransactions - (ContinuousClock.now - p0)
            if rest > .zero { try await Task.sleep(for: rest) }
            report.pausedSeconds += Self.seconds(ContinuousClock.now - p0)
            return (result, elapsed)
        }
        // Samples: older than the prune cutoff and than the verdict cache's TTL; their own pass
        // after the files and volumes, in rowid order. (Taking each file's sample along in the
        // files' transactions probed the samples in sha256 order, which is random: 333,333
        // files with their samples took 10.7 s that way, 5.9 s with this pass.)
        let sampleCutoff = min(cutoff, now - config.verdictCacheTTLHours * 3600)
        phase = "files"
        var chunk = ChunkSize(1000)
        while true {
            try Task.checkCancellation()
            let size = chunk.size
            let ((files, events), elapsed) = try await timed { try await store.pruneFiles(before: cutoff, limit: size) }
            report.files += files
            report.events += events
            if files < size { break }
            chunk.adapt(elapsed: elapsed, target: target)
        }
        // A volume holds up to 500 members: chunks start small and grow from there.
        phase = "volumes"
        chunk = ChunkSize(5, min: 1)
        while true {
            try Task.checkCancellation()
            let size = chunk.size
            let (n, elapsed) = try await timed { try await store.pruneVolumes(before: cutoff, limit: size) }
            report.volumes += n
            if n < size { break }
            chunk.adapt(elapsed: elapsed, target: target)
        }
        // The scan goes on from where the last chunk stopped (samples kept are not read again).
        phase = "samples"
        chunk = ChunkSize(1000)
        var after: Int64 = 0
        while true {
            try Task.checkCancellation()
            let size = chunk.size
            let from = after
            let (step, elapsed) = try await timed { try await store.pruneSamples(before: sampleCutoff, limit: size, after: from) }
            report.samples += step.removed
            guard let last = step.last else { break }
            after = last
            chunk.adapt(elapsed: elapsed, target: target)
        }
        // Space: free pages back to the file system. When little is left (the pages still in
        // use fit in `vacuumLivePagesAtMost`), one VACUUM rewrites it in a short transaction;
        // otherwise incremental_vacuum in steps sized like the chunks above.
        phase = "space"
        let before = try await store.spaceInfo()
        if before.autoVacuum == 2, before.freePages > 0 {
            let live = before.pageCount - before.freePages
            if live <= vacuumLivePagesAtMost, before.freePages >= live {
                let (pages, _) = try await timed { try await store.vacuum() }
                report.pagesReclaimed = max(0, before.pageCount - pages)
            } else {
                var left = before.freePages
                var pages = ChunkSize(500, max: 1_000_000)
                while left > 0 {
                    try Task.checkCancellation()
                    let step = pages.size
                    let (remaining, elapsed) = try await timed { try await store.reclaimSpace(pages: step) }
                    report.pagesReclaimed += left - remaining
                    if remaining >= left { break }
                    left = remaining
                    pages.adapt(elapsed: elapsed, target: target)
                }
            }
        } else if before.freePages > 0 {
            logger.notice("free pages are reused but not returned to the file system: run quickscan prune --vacuum once (locks the database while it runs)",
                          metadata: ["db.free_pages": "\(before.freePages)"])
        }
        report.seconds = Self.seconds(ContinuousClock.now - started)
        logger.info("pruned", metadata: [
            "prune.files": "\(report.files)", "prune.events": "\(report.events)", "prune.volumes": "\(report.volumes)",
            "prune.samples": "\(report.samples)", "prune.pages_reclaimed": "\(report.pagesReclaimed)",
            "prune.longest_transaction_seconds": "\(report.longestTransactionSeconds)", "prune.timings": "\(report.timings)",
        ])
        return report
    }

    /// Deletes quarantined files older than `days` (each one logged and recorded as an event).
    private func deleteQuarantined(olderThanDays days: Double, now: Double) async throws -> Int {
        guard let rule = config.disposition[.threat], rule.action == .move, let folder = rule.to else { return 0 }
        var deleted = 0
        for file in try await store.quarantined(under: folder, before: now - days * 86400, limit: 100_000) {
            var st = stat()
            guard lstat(file.disposedTo, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            guard unlink(file.disposedTo) == 0 else {
                logger.error("cannot delete a quarantined file", metadata: ["file.path": "\(file.disposedTo)", "error": "\(String(cString: strerror(errno)))"])
                continue
            }
            logger.notice("quarantined file deleted by retention", metadata: [
                "file.path": "\(file.disposedTo)", "file.original_path": "\(file.path)", "retention.quarantine_days": "\(days.clean)",
            ])
            try await store.noteQuarantineDeleted(file.id, path: file.disposedTo, days: days)
            deleted += 1
        }
        return deleted
    }

    /// Deletes from the cloud the samples earlier runs uploaded and never deleted.
    public func pruneCloud(client: any FalconClient) async throws -> Int {
        var deleted = 0
        var failures = 0
        while true {
            let batch = try await store.samplesLeftInCloud(limit: 500)
            guard !batch.isEmpty else { break }
            var progress = false
            for sha in batch {
                do {
                    try await client.deleteSample(sha256: sha)
                } catch where error.status == 404 {
                    // Already gone (expired or deleted elsewhere): the ledger catches up.
                } catch {
                    failures += 1
                    logger.warning("cannot delete a sample from the cloud", metadata: ["sample.sha256": "\(sha)", "error": "\(error)"])
                    if failures >= 5 { throw error }
                    continue
                }
                try await store.markSampleDeleted(sha)
                deleted += 1
                progress = true
            }
            if !progress { break }
        }
        return deleted
    }

    /// How many rows (or pages) the next transaction takes on: scaled by how far the last
    /// one's time was from the target, at most twice as many or a quarter as many at once.
    struct ChunkSize {
        var size: Int
        let min: Int, max: Int

        init(_ size: Int, min: Int = 50, max: Int = 200_000) {
            self.size = size
            self.min = min
            self.max = max
        }

        mutating func adapt(elapsed: Double, target: Double) {
            let factor = elapsed > 0 ? Swift.min(2, Swift.max(0.25, target / elapsed)) : 2
            size = Swift.min(max, Swift.max(min, Int(Double(size) * factor)))
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
