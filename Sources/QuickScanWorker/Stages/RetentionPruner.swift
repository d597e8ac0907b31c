import FalconAPI
import Foundation
import Logging

/// What one prune removed and how long its longest transaction held the write lock.
public struct PruneReport: Sendable, Equatable, CustomStringConvertible {
    public var files = 0, events = 0, volumes = 0, samples = 0, quarantineDeleted = 0, cloudDeleted = 0
    public var pagesReclaimed = 0
    public var transactions = 0
    public var longestTransactionSeconds = 0.0
    public var seconds = 0.0
    /// Where the time went: each phase (files, volumes, samples, space, checkpoint) with its
    /// time in transactions and its number of transactions, and the pauses between them.
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
    /// The target for one transaction; chunks shrink when one takes longer than a quarter of it.
    public var maxLockSeconds = 1.0
    /// Free time for other writers after each transaction: as long as SQLite's busy handler
    /// sleeps between two tries at most (100 ms), so a writer in another process that waits
    /// is sure to find the lock free once.
    public var pauseBetweenTransactions: Duration = .milliseconds(110)

    public init(store: WorkerStore, config: WorkerConfiguration, logger: Logger) {
        self.store = store
        self.config = config.normalized()
        self.logger = logger
    }

    /// Prunes what finished more than `olderThan` seconds ago.
    public func prune(olderThan: Double, now: Double = Date().timeIntervalSince1970) async throws -> PruneReport {
        let started = ContinuousClock.now
        var report = PruneReport()
        if let days = config.retention.quarantineDays {
            report.quarantineDeleted = try await deleteQuarantined(olderThanDays: days, now: now)
        }
        let cutoff = now - olderThan
        var chunk = 1000
        var phase = ""
        func timed<T>(_ body: () async throws -> T) async throws -> T {
            let t0 = ContinuousClock.now
            let result = try await body()
            let elapsed = Self.seconds(ContinuousClock.now - t0)
            if report.phases.last?.name != phase { report.phases.append(.init(name: phase)) }
            report.phases[report.phases.count - 1].seconds += elapsed
            report.phases[report.phases.count - 1].transactions += 1
            report.transactions += 1
            report.longestTransactionSeconds = max(report.longestTransactionSeconds, elapsed)
            // Adaptive: about a tenth of the budget per transaction.
            if elapsed > maxLockSeconds * 0.15 { chunk = max(50, chunk / 2) } else if elapsed < maxLockSeconds / 20 { chunk = min(50_000, chunk * 2) }
            // SQLite's lock is not fair: a pause after each transaction lets another writer
            // (a watcher in another process, whose busy handler polls) take its turn.
            let p0 = ContinuousClock.now
            try await Task.sleep(for: pauseBetweenTransactions)
            report.pausedSeconds += Self.seconds(ContinuousClock.now - p0)
            return result
        }
        phase = "files"
        while true {
            try Task.checkCancellation()
            let size = chunk
            let (files, events) = try await timed { try await store.pruneFiles(before: cutoff, limit: size) }
            report.files += files
            report.events += events
            if files < size { break }
            await Task.yield()
        }
        phase = "volumes"
        while true {
            try Task.checkCancellation()
            let size = chunk
            let n = try await timed { try await store.pruneVolumes(before: cutoff, limit: size) }
            report.volumes += n
            if n < size { break }
        }
        // Samples: older than the prune cutoff and than the verdict cache's TTL.
        let sampleCutoff = min(cutoff, now - config.verdictCacheTTLHours * 3600)
        phase = "samples"
        while true {
            try Task.checkCancellation()
            let size = chunk
            let n = try await timed { try await store.pruneSamples(before: sampleCutoff, limit: size) }
            report.samples += n
            if n < size { break }
        }
        // Space: free pages back to the file system, 500 pages (2 MB) at a time.
        phase = "space"
        let before = try await store.spaceInfo()
        if before.autoVacuum == 2 {
            var left = before.freePages
            let pages = 500
            while left > 0 {
                try Task.checkCancellation()
                let step = pages
                let remaining = try await timed { try await store.reclaimSpace(pages: step) }
                report.pagesReclaimed += left - remaining
                if remaining >= left { break }
                left = remaining
            }
        } else if before.freePages > 0 {
            logger.notice("free pages are reused but not returned to the file system: run quickscan prune --vacuum once (locks the database while it runs)",
                          metadata: ["db.free_pages": "\(before.freePages)"])
        }
        phase = "checkpoint"
        try await timed { try await store.checkpoint() }
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

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
