import Foundation
import Logging
import NIOConcurrencyHelpers
@testable import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

/// Retention on real SQLite files: what goes, what stays, the `results` view consistent, and
/// a concurrent writer never kept waiting for a second.
@Suite(.timeLimit(.minutes(3)))
struct RetentionTests {
    static let day = 86_400.0

    /// A database with `old` files disposed 100 days ago (3 events each, their own sample),
    /// and a few that must stay. Returns the ids of the files that must stay.
    static func fill(_ path: String, old: Int) throws -> (keep: Set<Int64>, cachedSample: String) {
        _ = try WorkerStore(path: path)
        let db = try SQLiteConnection(path: path)
        let now = Date().timeIntervalSince1970
        let long = now - 100 * day
        func sha(_ i: Int) -> String { String(repeating: "0", count: 64 - String(i, radix: 16).count) + String(i, radix: 16) }
        let base = Int64(old + 1)
        try db.transaction {
            try db.run("INSERT INTO volumes (id, state, scan_id, intent_at, submitted_at, finished_at) VALUES (1, 'done', 'scan-old', ?, ?, ?)", [long, long, long])
            for i in 0..<old {
                try db.run("INSERT INTO samples (sha256, size, verdict, scanned_at, scan_id) VALUES (?, 10, 'no specific threat', ?, 'scan-old')", [sha(i), long])
                if i < 50 { try db.run("INSERT INTO volume_members (volume_id, sha256) VALUES (1, ?)", [sha(i)]) }
                try db.run("""
                    INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, outcome, verdict, disposed_to, discovered_at, updated_at)
                    VALUES (?, ?, '/in', ?, 10, 0, 0, 'disposed', ?, 'clean', 'no specific threat', ?, ?, ?)
                    """, [Int64(i + 1), "/in/old \(i)", Int64(i), sha(i), "/clean/old \(i)", long, long])
                for state in ["hashed", "uploaded", "decided"] {
                    try db.run("INSERT INTO events (at, entity, entity_id, to_state) VALUES (?, 'file', ?, ?)", [long, String(i + 1), state])
                }
            }
            // Stay: disposed yesterday; pending; old with an undelivered notification.
            try db.run("INSERT INTO samples (sha256, size, verdict, scanned_at) VALUES (?, 10, 'malware', ?)", [sha(old + 1), now - 3600])
            try db.run("""
                INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, outcome, verdict, disposed_to, discovered_at, updated_at)
                VALUES (?, '/in/recent', '/in', 1, 10, 0, 0, 'disposed', ?, 'threat', 'malware', '/q/recent', ?, ?)
                """, [base, sha(old + 1), now - day, now - day])
            try db.run("""
                INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, discovered_at, updated_at)
                VALUES (?, '/in/pending', '/in', 2, 10, 0, 0, 'hashed', ?, ?, ?)
                """, [base + 1, sha(old + 1), long, long])
            try db.run("""
                INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, outcome, verdict, disposed_to, discovered_at, updated_at)
                VALUES (?, '/in/unnotified', '/in', 3, 10, 0, 0, 'disposed', ?, 'threat', 'malware', '/q/x', ?, ?)
                """, [base + 2, sha(old + 1), long, long])
            try db.run("""
                INSERT INTO outbox (notification_id, channel, file_id, path, outcome, decided_at, next_attempt_at)
                VALUES ('n-1', 'webhook', ?, '/in/unnotified', 'threat', ?, ?)
                """, [base + 2, long, now])
            // A sample no file uses any more, scanned an hour ago: the verdict cache keeps it.
            try db.run("INSERT INTO samples (sha256, size, verdict, scanned_at) VALUES (?, 10, 'no specific threat', ?)", [sha(old + 2), now - 3600])
        }
        return ([base, base + 1, base + 2], sha(old + 2))
    }

    @Test func pruneRemovesOldRowsKeepsTheRestAndNeverHoldsTheLockForASecond() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/db.sqlite"
        let (keep, cached) = try Self.fill(path, old: 20_000)
        let store = try WorkerStore(path: path)
        var logger = Logger(label: "prune-test")
        logger.logLevel = .warning
        var config = WorkerConfiguration()
        config.database = path

        // A concurrent writer on its own connection: each write's wait for the lock is timed.
        let stop = NIOLockedValueBox(false)
        let writer = Task.detached { () throws -> (writes: Int, longest: Double) in
            let db = try SQLiteConnection(path: path)
            var writes = 0
            var longest = 0.0
            while !stop.withLockedValue({ $0 }) {
                let t0 = Date()
                try db.transaction {
                    try db.run("INSERT INTO kv (key, value) VALUES ('writer', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [String(writes)])
                }
                longest = max(longest, Date().timeIntervalSince(t0))
                writes += 1
                usleep(2000)
            }
            return (writes, longest)
        }
        let report = try await RetentionPruner(store: store, config: config, logger: logger).prune(olderThan: 30 * Self.day)
        stop.withLockedValue { $0 = true }
        let (writes, longest) = try await writer.value

        #expect(report.files == 20_000)
        #expect(report.events == 60_000)
        #expect(report.volumes == 1)
        #expect(report.samples == 20_000)
        #expect(report.longestTransactionSeconds < 1)
        #expect(writes > 10)
        #expect(longest < 1.0, "a concurrent writer waited \(longest) s")
        #expect(report.pagesReclaimed > 0)  // a new database reclaims space incrementally

        let db = try SQLiteConnection(path: path)
        let left = Set(try db.query("SELECT id FROM files").compactMap { $0.int("id") })
        #expect(left == keep)
        #expect(try db.query("SELECT 1 FROM events WHERE entity = 'file' AND CAST(entity_id AS INTEGER) NOT IN (SELECT id FROM files)").isEmpty)
        #expect(try db.query("PRAGMA foreign_key_check").isEmpty)
        #expect(try db.queryOne("PRAGMA integrity_check")?.string("integrity_check") == "ok")
        // The results view: exactly the decided files left, each with its sample.
        let results = try db.query("SELECT file_id, sha256 FROM results ORDER BY file_id")
        #expect(results.compactMap { $0.int("file_id") } == keep.sorted().filter { $0 != keep.sorted()[1] })
        #expect(try db.query("SELECT 1 FROM results r WHERE r.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM samples s WHERE s.sha256 = r.sha256)").isEmpty)
        #expect(try db.queryOne("SELECT 1 AS found FROM samples WHERE sha256 = ?", [cached]) != nil)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM outbox")?.int("n") == 1)
        // Running it again finds nothing.
        let again = try await RetentionPruner(store: store, config: config, logger: logger).prune(olderThan: 30 * Self.day)
        #expect(again.files == 0 && again.samples == 0)
    }

    @Test func quarantineIsKeptUnlessQuarantineDaysSaysOtherwise() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/db.sqlite"
        let quarantine = dir.path + "/quarantine"
        try FileManager.default.createDirectory(atPath: quarantine, withIntermediateDirectories: true)
        let copy = try dir.write("quarantine/bad.com", "bad")
        let store = try WorkerStore(path: path)
        let db = try SQLiteConnection(path: path)
        let long = Date().timeIntervalSince1970 - 100 * Self.day
        try db.run("""
            INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, outcome, verdict, disposed_to, discovered_at, updated_at)
            VALUES (1, '/in/bad.com', '/in', 1, 3, 0, 0, 'disposed', 'threat', 'malware', ?, ?, ?)
            """, [copy, long, long])
        var config = WorkerConfiguration()
        config.database = path
        config.disposition[.threat] = .init(action: .move, to: quarantine)
        var logger = Logger(label: "prune-test")
        logger.logLevel = .critical
        // Default: never deleted (and the row is younger than the prune cutoff).
        _ = try await RetentionPruner(store: store, config: config, logger: logger).prune(olderThan: 365 * Self.day)
        #expect(FileManager.default.fileExists(atPath: copy))
        config.retention.quarantineDays = 90
        let report = try await RetentionPruner(store: store, config: config, logger: logger).prune(olderThan: 365 * Self.day)
        #expect(report.quarantineDeleted == 1)
        #expect(!FileManager.default.fileExists(atPath: copy))
        #expect(try db.queryOne("SELECT detail FROM events WHERE entity = 'file' AND entity_id = '1' ORDER BY id DESC LIMIT 1")?.string("detail")?.contains("deleted by retention") == true)
    }
}

/// What a prune must leave of the samples its files used, and the shared connection as it was.
@Suite(.timeLimit(.minutes(3)))
struct RetentionSampleTests {
    static let day = 86_400.0

    static func sha(_ c: Character) -> String { String(repeating: c, count: 64) }

    @Test func samplesGoWithTheirFilesOnlyWhenNothingElseHoldsThem() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/db.sqlite"
        let store = try WorkerStore(path: path)
        let db = try SQLiteConnection(path: path)
        let now = Date().timeIntervalSince1970
        let long = now - 100 * Self.day
        try db.transaction {
            try db.run("INSERT INTO volumes (id, state, scan_id, intent_at, submitted_at) VALUES (7, 'submitted', 'scan-in-flight', ?, ?)", [long, long])
            // Done long ago, but its QuickScan Pro scan result is still to delete: it stays.
            try db.run("""
                INSERT INTO volumes (id, state, scan_id, intent_at, submitted_at, finished_at, api, result_delete_pending)
                VALUES (8, 'done', 'pro-scan', ?, ?, ?, 'quickscanpro', 1)
                """, [long, long, long])
            // a: also used by a file disposed yesterday; b: only by an old file (goes);
            // c: left in the cloud (waits for prune --cloud); d: in a volume in flight.
            for (c, uploaded, volume) in [("a", nil, nil), ("b", nil, nil), ("c", long, nil), ("d", nil, 7)] as [(Character, Double?, Int64?)] {
                try db.run("INSERT INTO samples (sha256, size, verdict, scanned_at, uploaded_at, volume_id) VALUES (?, 10, 'no specific threat', ?, ?, ?)",
                           [Self.sha(c), long, uploaded, volume])
            }
            for (id, c, at) in [(1, "a", long), (2, "a", now - Self.day), (3, "b", long), (4, "c", long), (5, "d", long)] as [(Int64, Character, Double)] {
                try db.run("""
                    INSERT INTO files (id, path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, outcome, verdict, disposed_to, discovered_at, updated_at)
                    VALUES (?, ?, '/in', ?, 10, 0, 0, 'disposed', ?, 'clean', 'no specific threat', ?, ?, ?)
                    """, [id, "/in/\(id)", id, Self.sha(c), "/clean/\(id)", at, at])
                try db.run("INSERT INTO events (at, entity, entity_id, to_state) VALUES (?, 'file', ?, 'disposed')", [at, String(id)])
            }
            try db.run("INSERT INTO events (at, entity, entity_id, to_state) VALUES (?, 'sample', ?, 'scanned')", [long, Self.sha("b")])
        }
        var logger = Logger(label: "prune-test")
        logger.logLevel = .warning
        var config = WorkerConfiguration()
        config.database = path
        let report = try await RetentionPruner(store: store, config: config, logger: logger).prune(olderThan: 30 * Self.day)

        #expect(report.files == 4 && report.samples == 1 && report.volumes == 0)
        #expect(try db.query("SELECT id FROM volumes ORDER BY id").compactMap { $0.int("id") } == [7, 8])
        #expect(try db.query("SELECT id FROM files").compactMap { $0.int("id") } == [2])
        #expect(Set(try db.query("SELECT sha256 FROM samples").compactMap { $0.string("sha256") }) == [Self.sha("a"), Self.sha("c"), Self.sha("d")])
        #expect(try db.query("SELECT 1 FROM events WHERE entity = 'sample'").isEmpty)
        #expect(try db.query("SELECT file_id FROM results").compactMap { $0.int("file_id") } == [2])
        #expect(try db.query("PRAGMA foreign_key_check").isEmpty)
        // The store's connection (shared with the watcher) enforces foreign keys and
        // checkpoints by itself again.
        #expect(try await store.pragma("foreign_keys") == 1)
        #expect(try await store.pragma("wal_autocheckpoint") == Int64(SQLiteConnection.autoCheckpointPages))
    }

    /// With many pages still in use the free pages go back in incremental_vacuum steps.
    @Test func spaceGoesBackInStepsWhenMuchIsLeft() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/db.sqlite"
        let (keep, _) = try RetentionTests.fill(path, old: 5000)
        let store = try WorkerStore(path: path)
        var logger = Logger(label: "prune-test")
        logger.logLevel = .warning
        var config = WorkerConfiguration()
        config.database = path
        var pruner = RetentionPruner(store: store, config: config, logger: logger)
        pruner.vacuumLivePagesAtMost = 0
        let report = try await pruner.prune(olderThan: 30 * Self.day)
        #expect(report.files == 5000 && report.samples == 5000)
        #expect(report.pagesReclaimed > 0)
        #expect(report.phases.first { $0.name == "space" }.map { $0.transactions >= 1 } == true)
        let db = try SQLiteConnection(path: path)
        #expect(Set(try db.query("SELECT id FROM files").compactMap { $0.int("id") }) == keep)
        #expect(try db.queryOne("PRAGMA freelist_count")?.int("freelist_count") == 0)
        #expect(try db.queryOne("PRAGMA integrity_check")?.string("integrity_check") == "ok")
    }
}

extension WorkerStore {
    /// A pragma's value on the store's own connection.
    func pragma(_ name: String) throws -> Int64? {
        try db.queryOne("PRAGMA \(name)")?.int(name)
    }
}
