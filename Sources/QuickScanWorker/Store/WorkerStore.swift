import Foundation
import SQLiteKit

/// The SQLite store: the queue and the record. Every transition is a compare-and-set plus its
/// event row, in one transaction. One writer: this actor.
public actor WorkerStore {
    let db: SQLiteConnection
    public let path: String
    private var runID: Int64?
    /// Counts dispositions when set (`useMetrics`).
    var metrics: WorkerMetrics?
    /// Which outcomes get a notification, on which channels (`notify`); none by default.
    var notification: (outcomes: Set<Outcome>, channels: [String]) = ([], [])

    public static let migrations = Migrator([
        .init("001-initial", """
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, mode TEXT NOT NULL,
                pid INTEGER, host TEXT, exit_code INTEGER);
            CREATE TABLE volumes (
                id INTEGER PRIMARY KEY,
                state TEXT NOT NULL CHECK (state IN ('submitting','submitted','done','failed')),
                scan_id TEXT UNIQUE, intent_at REAL NOT NULL, submitted_at REAL, finished_at REAL,
                attempt INTEGER NOT NULL DEFAULT 1, detail TEXT);
            CREATE TABLE samples (
                sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
                size INTEGER NOT NULL,
                uploaded_at REAL, deleted_at REAL, delete_pending INTEGER NOT NULL DEFAULT 0,
                verdict TEXT, error TEXT, scanned_at REAL, scan_id TEXT,
                volume_id INTEGER REFERENCES volumes(id),
                attempts INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE volume_members (
                volume_id INTEGER NOT NULL REFERENCES volumes(id),
                sha256 TEXT NOT NULL REFERENCES samples(sha256),
                PRIMARY KEY (volume_id, sha256));
            CREATE TABLE files (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL, inbox TEXT NOT NULL,
                inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('discovered','hashed','uploaded','decided','disposing','disposed','superseded')),
                sha256 TEXT REFERENCES samples(sha256),
                outcome TEXT CHECK (outcome IN ('clean','threat','not_scanned')),
                reason TEXT, verdict TEXT, error TEXT, cached INTEGER NOT NULL DEFAULT 0,
                scan_id TEXT, scanned_at REAL, disposed_to TEXT,
                discovered_run INTEGER REFERENCES runs(id), decided_run INTEGER REFERENCES runs(id),
                discovered_at REAL NOT NULL, updated_at REAL NOT NULL,
                CHECK (state NOT IN ('decided','disposing','disposed') OR outcome IS NOT NULL),
                CHECK (outcome IS NOT 'not_scanned' OR reason IS NOT NULL));
            CREATE UNIQUE INDEX files_identity ON files (path, inode, size, mtime_ns, ctime_ns);
            CREATE INDEX files_state ON files (state);
            CREATE INDEX files_sha256 ON files (sha256);
            CREATE TABLE events (
                id INTEGER PRIMARY KEY, at REAL NOT NULL, run_id INTEGER,
                entity TEXT NOT NULL, entity_id TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, detail TEXT);
            CREATE INDEX events_entity ON events (entity, entity_id);
            CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE VIEW results AS
                SELECT f.id AS file_id, f.path, f.sha256, f.size, f.outcome, f.verdict,
                       CASE WHEN f.outcome = 'not_scanned' THEN f.reason || COALESCE(': ' || f.error, '') ELSE f.error END AS error,
                       f.scan_id,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.scanned_at, 'unixepoch') AS scanned_at,
                       f.disposed_to, f.cached,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.discovered_at, 'unixepoch') AS discovered_at,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.updated_at, 'unixepoch') AS updated_at
                FROM files f WHERE f.state IN ('decided','disposing','disposed');
            """),
        // pending_reason: why a decided file is not filed yet (a move that failed and is
        // retried); reported_in: the run that reported a run's outcomes (each threat is
        // reported by exactly one run, also after a kill). The view shows a destination only
        // once the file is there.
        .init("002-pending-reason", """
            ALTER TABLE files ADD COLUMN pending_reason TEXT;
            ALTER TABLE runs ADD COLUMN reported_in INTEGER;
            UPDATE runs SET reported_in = id WHERE finished_at IS NOT NULL;
            DROP VIEW results;
            CREATE VIEW results AS
                SELECT f.id AS file_id, f.path, f.sha256, f.size, f.outcome, f.verdict,
                       CASE WHEN f.outcome = 'not_scanned' THEN f.reason || COALESCE(': ' || f.error, '') ELSE f.error END AS error,
                       f.scan_id,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.scanned_at, 'unixepoch') AS scanned_at,
                       CASE WHEN f.state = 'disposed' THEN f.disposed_to END AS disposed_to, f.cached,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.discovered_at, 'unixepoch') AS discovered_at,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.updated_at, 'unixepoch') AS updated_at,
                       f.state, f.pending_reason
                FROM files f WHERE f.state IN ('decided','disposing','disposed');
            """),
        // Custody: the worker's own copy of a dropped file (spool_path), whether the original
        // was removed from the inbox (original_removed: 0 not yet, 1 removed, -1 kept, with
        // original_note saying why), and the results view shows a kept original.
        .init("003-custody", """
            ALTER TABLE files ADD COLUMN spool_path TEXT;
            ALTER TABLE files ADD COLUMN original_removed INTEGER NOT NULL DEFAULT 1;
            ALTER TABLE files ADD COLUMN original_note TEXT;
            DROP VIEW results;
            CREATE VIEW results AS
                SELECT f.id AS file_id, f.path, f.sha256, f.size, f.outcome, f.verdict,
                       CASE WHEN f.outcome = 'not_scanned' THEN f.reason || COALESCE(': ' || f.error, '') ELSE f.error END AS error,
                       f.scan_id,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.scanned_at, 'unixepoch') AS scanned_at,
                       CASE WHEN f.state = 'disposed' THEN f.disposed_to END AS disposed_to, f.cached,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.discovered_at, 'unixepoch') AS discovered_at,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.updated_at, 'unixepoch') AS updated_at,
                       f.state, f.pending_reason, f.original_note
                FROM files f WHERE f.state IN ('decided','disposing','disposed');
            """),
        // outbox: one row per notification and channel, written in the transaction that
        // decides the file, delivered at least once by the Notifier (notification_id is the
        // same on every attempt). file_id has no foreign key: a delivered row may outlive its
        // pruned file; an undelivered one keeps its file from being pruned. The indexes make
        // pruning by age cheap.
        .init("004-outbox-and-retention", """
            CREATE TABLE outbox (
                id INTEGER PRIMARY KEY,
                notification_id TEXT NOT NULL,
                channel TEXT NOT NULL CHECK (channel IN ('command','webhook')),
                file_id INTEGER NOT NULL,
                path TEXT NOT NULL, sha256 TEXT,
                outcome TEXT NOT NULL CHECK (outcome IN ('clean','threat','not_scanned')),
                verdict TEXT, reason TEXT, error TEXT, scan_id TEXT,
                decided_at REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                last_error TEXT,
                delivered_at REAL,
                UNIQUE (notification_id, channel));
            CREATE INDEX outbox_undelivered ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
            CREATE INDEX outbox_file ON outbox (file_id);
            CREATE INDEX files_final_age ON files (updated_at) WHERE state IN ('disposed','superseded');
            CREATE INDEX volumes_finished ON volumes (finished_at) WHERE state IN ('done','failed');
            CREATE INDEX volume_members_sha256 ON volume_members (sha256);
            """),
        // QuickScan Pro: which API holds a sample's upload and gave its verdict (NULL: legacy
        // Quick Scan), which API a volume (a Pro scan is a volume of one sample) went to, a
        // scan result still to delete (DeleteScanResult), and what an analyst needs of a Pro
        // verdict on the sample and on each file it decided (NULL for legacy verdicts).
        .init("005-quickscan-pro", """
            ALTER TABLE samples ADD COLUMN upload_api TEXT;
            ALTER TABLE samples ADD COLUMN verdict_api TEXT;
            ALTER TABLE samples ADD COLUMN verdict_reason TEXT;
            ALTER TABLE samples ADD COLUMN malicious_confidence INTEGER;
            ALTER TABLE samples ADD COLUMN file_type TEXT;
            ALTER TABLE samples ADD COLUMN details TEXT;
            ALTER TABLE volumes ADD COLUMN api TEXT;
            ALTER TABLE volumes ADD COLUMN result_delete_pending INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE files ADD COLUMN verdict_reason TEXT;
            ALTER TABLE files ADD COLUMN malicious_confidence INTEGER;
            ALTER TABLE files ADD COLUMN file_type TEXT;
            ALTER TABLE files ADD COLUMN details TEXT;
            DROP VIEW results;
            CREATE VIEW results AS
                SELECT f.id AS file_id, f.path, f.sha256, f.size, f.outcome, f.verdict,
                       CASE WHEN f.outcome = 'not_scanned' THEN f.reason || COALESCE(': ' || f.error, '') ELSE f.error END AS error,
                       f.scan_id,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.scanned_at, 'unixepoch') AS scanned_at,
                       CASE WHEN f.state = 'disposed' THEN f.disposed_to END AS disposed_to, f.cached,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.discovered_at, 'unixepoch') AS discovered_at,
                       strftime('%Y-%m-%dT%H:%M:%SZ', f.updated_at, 'unixepoch') AS updated_at,
                       f.state, f.pending_reason, f.original_note,
                       f.verdict_reason, f.malicious_confidence, f.file_type
                FROM files f WHERE f.state IN ('decided','disposing','disposed');
            CREATE INDEX volumes_result_delete ON volumes (id) WHERE result_delete_pending = 1;
            """),
        // The samples in a volume in flight (volume_id is cleared when the volume is done): the
        // volumes' prune and createVolumeIntent looked them up by scanning every sample.
        .init("006-samples-in-volume", """
            CREATE INDEX samples_volume ON samples (volume_id) WHERE volume_id IS NOT NULL;
            """),
    ])

    /// Opens (creating and migrating if needed) the database at `path`. `quickCheck: false`
    /// skips the start's integrity check (`quickscan prune`: on a large database the check
    /// takes longer than the prune, and a corrupt page still fails the statement that reads it).
    public init(path: String, quickCheck: Bool = true) throws {
        // A new database reclaims the space of pruned rows in chunks (PRAGMA
        // incremental_vacuum). Older databases: `quickscan prune --vacuum`.
        let db = try SQLiteConnection(path: path, incrementalVacuumWhenNew: true, quickCheck: quickCheck)
        try Self.migrations.migrate(db)
        // 8 MB of page cache instead of SQLite's 2 MB: recording a batch of 10,000 new files
        // updates random-key indexes (paths, sha256s), and with 2 MB pages were spilled and
        // re-read within each transaction (about +8 % files/s and +5 MB peak RSS measured with
        // scripts/bench/run --only ingest).
        try db.execute("PRAGMA cache_size = -\(Self.pageCacheKiB)")
        self.db = db
        self.path = path
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// The page cache the store keeps (KiB).
    static let pageCacheKiB = 8000

    /// Sets this connection's page cache (KiB), or back to the store's own with nil. A prune
    /// deletes from seven indexes in key orders unlike each other, and with 8 MB it re-read
    /// evicted pages within every transaction.
    public func setPageCache(kibibytes: Int?) throws {
        try db.execute("PRAGMA cache_size = -\(kibibytes ?? Self.pageCacheKiB)")
    }

    // MARK: runs and key-value

    public func beginRun(mode: String) throws -> Int64 {
        try db.run("INSERT INTO runs (started_at, mode, pid, host) VALUES (?, ?, ?, ?)",
                   [Self.now(), mode, Int(getpid()), ProcessInfo.processInfo.hostName])
        runID = db.lastInsertRowID
        return db.lastInsertRowID
    }

    /// Ends this run; its outcomes, and those of earlier runs that were killed before they
    /// could report, count as reported by it (a threat is reported by exactly one run).
    public func finishRun(exitCode: Int32) throws {
        guard let runID else { return }
        try db.transaction {
            try db.run("UPDATE runs SET finished_at = ?, exit_code = ? WHERE id = ?", [Self.now(), Int(exitCode), runID])
            try db.run("UPDATE runs SET reported_in = ? WHERE reported_in IS NULL AND id <= ?", [runID, runID])
        }
    }

    /// A transaction that is on disk when it returns, also after a power cut (WAL with
    /// `synchronous = FULL` syncs the log at commit; the default NORMAL may lose the last
    /// commits, never consistency). Used for the intents recorded before an action outside
    /// the database: a disposal's destination before the file is touched, a volume before
    /// ScanSamples (SQLite docs, "PRAGMA synchronous").
    private func durableTransaction<T>(_ body: () throws -> T) throws -> T {
        try db.execute("PRAGMA synchronous = FULL")
        // If this fails the connection stays at FULL: slower, never less safe.
        defer { try? db.execute("PRAGMA synchronous = NORMAL") }
        return try db.transaction(body)
    }

    public func value(_ key: String) throws -> String? {
        try db.queryOne("SELECT value FROM kv WHERE key = ?", [key])?.string("value")
    }

    public func setValue(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])
    }

    func event(_ entity: String, _ id: String, from: String?, to: String, detail: String? = nil) throws {
        try db.run("INSERT INTO events (at, run_id, entity, entity_id, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [Self.now(), runID, entity, id, from, to, detail])
    }

    // MARK: files

    /// Identities of every file version not superseded, keyed by path (the watcher's index).
    public func knownFiles() throws -> [String: FileIdentity] {
        var index: [String: FileIdentity] = [:]
        // Sized first: growing by doubling held two tables at the peak.
        index.reserveCapacity(Int(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE state != 'superseded'")?.int("n") ?? 0))
        // Row by row: a 100,000-file inbox must not be materialised as row objects.
        try db.forEachRow("SELECT path, inode, size, mtime_ns, ctime_ns FROM files WHERE state != 'superseded' ORDER BY id") { s in
            guard let path = s.text(at: 0) else { return }
            index[path] = FileIdentity(inode: UInt64(bitPattern: s.int64(at: 1)), size: s.int64(at: 2), mtimeNs: s.int64(at: 3), ctimeNs: s.int64(at: 4))
        }
        return index
    }

    static func identity(_ row: SQLiteRow) -> FileIdentity {
        FileIdentity(inode: UInt64(bitPattern: row.int("inode") ?? 0), size: row.int("size") ?? 0,
                     mtimeNs: row.int("mtime_ns") ?? 0, ctimeNs: row.int("ctime_ns") ?? 0)
    }

    /// Records many stable file versions in one transaction; returns the new ids by input
    /// index (versions already known are skipped).
    public func insertDiscovered(_ entries: [(path: String, inbox: String, identity: FileIdentity)]) throws -> [Int: Int64] {
        guard !entries.isEmpty else { return [:] }
        return try db.transaction {
            let now = Self.now()
            var ids: [Int: Int64] = [:]
            for (index, entry) in entries.enumerated() {
                ids[index] = try insertFile(entry.path, inbox: entry.inbox, identity: entry.identity, state: .discovered, sha256: nil, now: now)
            }
            return ids
        }
    }

    /// Records many file versions hashed before their first record (the watcher's path: local
    /// work has no persisted in-progress state, so a crash before this commit means hashing
    /// again). One transaction: each sample row (one per sha256) if new, the file row already
    /// `hashed`, and its event. Versions already known are skipped: returns their paths.
    /// With custody the row names its spool file and whether the original is still to be
    /// removed from the inbox (`original_removed` 0) or is gone already (taken by link: 1).
    @discardableResult
    public func recordHashed(_ entries: [HashedFile]) throws -> Set<String> {
        guard !entries.isEmpty else { return [] }
        // With custody the originals are removed next (or are gone already): the record must
        // be on disk first.
        let custody = entries.contains { $0.spool != nil }
        func body() throws -> Set<String> {
            let now = Self.now()
            var skipped: Set<String> = []
            // In key order: the sample and path indexes are random-keyed, and sorted inserts
            // touch each index page once per batch instead of at random.
            for entry in entries.sorted(by: { $0.sha256 < $1.sha256 }) {
                try db.run("INSERT OR IGNORE INTO samples (sha256, size) VALUES (?, ?)", [entry.sha256, entry.identity.size])
            }
            for entry in entries.sorted(by: { $0.path < $1.path }) {
                let id = try insertFile(entry.path, inbox: entry.inbox, identity: entry.identity, state: .hashed, sha256: entry.sha256, now: now,
                                        spool: entry.spool, originalRemoved: entry.spool == nil || entry.taken)
                if id == nil { skipped.insert(entry.path) }
            }
            return skipped
        }
        return custody ? try durableTransaction(body) : try db.transaction(body)
    }

    /// Custody: originals whose removal from the inbox is not recorded yet (a crash between
    /// the record and the removal), with their identity.
    public func originalsToRemove() throws -> [FileRecord] {
        try db.query("SELECT * FROM files WHERE original_removed = 0 AND spool_path IS NOT NULL ORDER BY id").map(Self.file)
    }

    /// Custody: the originals were removed from the inbox (or kept, with why).
    public func noteOriginals(removed: [Int64], kept: [(id: Int64, note: String)]) throws {
        guard !removed.isEmpty || !kept.isEmpty else { return }
        try db.transaction {
            for id in removed { try db.run("UPDATE files SET original_removed = 1 WHERE id = ?", [id]) }
            for item in kept {
                try db.run("UPDATE files SET original_removed = -1, original_note = ? WHERE id = ?", [item.note, item.id])
                try event("file", String(item.id), from: nil, to: "original_kept", detail: item.note)
            }
        }
    }

    /// Custody: every spool copy a file not yet final still needs.
    public func spoolPathsInUse() throws -> Set<String> {
        Set(try db.query("SELECT spool_path FROM files WHERE spool_path IS NOT NULL AND state NOT IN ('disposed','superseded')")
            .compactMap { $0.string("spool_path") })
    }

    /// Records file versions that cannot be scanned (a symbolic link, an unreadable or vanished
    /// file, one too large) and decides them, in one transaction: no crash leaves such a file
    /// `discovered` for the hasher. Versions already known are skipped.
    public func recordNotScanned(_ entries: [UnscannableFile]) throws {
        guard !entries.isEmpty else { return }
        try db.transaction {
            let now = Self.now()
            for entry in entries {
                guard let id = try insertFile(entry.path, inbox: entry.inbox, identity: entry.identity, state: .discovered, sha256: nil, now: now) else { continue }
                try decideInTransaction(id, from: [.discovered], outcome: .notScanned, reason: entry.reason, verdict: nil,
                                        error: entry.error, scanID: nil, scannedAt: nil, cached: false)
            }
        }
    }

    /// Inserts one file version in its first state, with its event; nil when the version is
    /// already recorded.
    @discardableResult
    private func insertFile(_ path: String, inbox: String, identity: FileIdentity, state: FileState, sha256: String?, now: Double,
                            spool: String? = nil, originalRemoved: Bool = true) throws -> Int64? {
        let changed = try db.run("""
            INSERT OR IGNORE INTO files (path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, discovered_run, discovered_at, updated_at,
                                         spool_path, original_removed)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [path, inbox, identity.inode, identity.size, identity.mtimeNs, identity.ctimeNs, state.rawValue, sha256, runID, now, now,
                  spool, originalRemoved ? 1 : 0])
        guard changed == 1 else { return nil }
        let id = db.lastInsertRowID
        try event("file", String(id), from: nil, to: state.rawValue, detail: sha256 ?? path)
        return id
    }

    /// discovered → hashed for many files in one transaction; creates each sample row (one per
    /// sha256) if new.
    public func markHashed(_ batch: [(id: Int64, sha256: String, size: Int64)]) throws {
        guard !batch.isEmpty else { return }
        try db.transaction {
            for item in batch {
                try db.run("INSERT OR IGNORE INTO samples (sha256, size) VALUES (?, ?)", [item.sha256, item.size])
                try moveFile(item.id, from: [.discovered], to: .hashed, set: [("sha256", item.sha256)], detail: item.sha256)
            }
        }
    }

    /// SQLite's count of rows changed by this connection since it opened (benchmarks: an idle
    /// poll must write nothing).
    public func totalChanges() -> Int {
        Int((try? db.queryOne("SELECT total_changes() AS n")?.int("n")) ?? 0)
    }

    /// Compare-and-set of a file's state with extra columns, plus its event row.
    private func moveFile(_ id: Int64, from: [FileState], to: FileState, set columns: [(String, any SQLiteBindable)] = [], detail: String? = nil) throws {
        precondition(from.allSatisfy { $0.canTransition(to: to) }, "illegal transition to \(to)")
        // With one possible source state the UPDATE's compare-and-set is the whole check.
        let current: String
        if from.count == 1 {
            current = from[0].rawValue
        } else {
            let found = try db.queryOne("SELECT state FROM files WHERE id = ?", [id])?.string("state")
            guard let found, let state = FileState(rawValue: found), from.contains(state) else {
                throw StaleTransition(entity: "file", id: String(id), expected: from.map(\.rawValue).joined(separator: "|"))
            }
            current = found
        }
        var sql = "UPDATE files SET state = ?, updated_at = ?"
        var args: [any SQLiteBindable] = [to.rawValue, Self.now()]
        for (column, value) in columns {
            sql += ", \(column) = ?"
            args.append(value)
        }
        sql += " WHERE id = ? AND state = ?"
        args += [id, current]
        guard try db.run(sql, args) == 1 else {
            throw StaleTransition(entity: "file", id: String(id), expected: current)
        }
        try event("file", String(id), from: current, to: to.rawValue, detail: detail)
    }

    /// Files in `states`, in id order, from the first id above `after` (pages: pass the last
    /// id of the page before).
    public func files(in states: [FileState], after: Int64 = 0, limit: Int = 10_000) throws -> [FileRecord] {
        let marks = states.map { _ in "?" }.joined(separator: ",")
        return try db.query("SELECT * FROM files WHERE state IN (\(marks)) AND id > ? ORDER BY id LIMIT \(limit)",
                            states.map(\.rawValue) + [after]).map(Self.file)
    }

    public func file(id: Int64) throws -> FileRecord? {
        try db.queryOne("SELECT * FROM files WHERE id = ?", [id]).map(Self.file)
    }

    static func file(_ row: SQLiteRow) -> FileRecord {
        FileRecord(
            id: row.int("id")!, path: row.string("path")!, inbox: row.string("inbox")!, identity: identity(row),
            state: FileState(rawValue: row.string("state")!)!, sha256: row.string("sha256"),
            outcome: row.string("outcome").flatMap(Outcome.init), reason: row.string("reason"),
            verdict: row.string("verdict"), error: row.string("error"), disposedTo: row.string("disposed_to"),
            pendingReason: row.string("pending_reason"), spoolPath: row.string("spool_path"))
    }

    /// The file changed under us: this version is superseded, the watcher records the new one.
    public func supersede(_ id: Int64, detail: String) throws {
        try db.transaction {
            try moveFile(id, from: [.discovered, .hashed, .uploaded, .decided], to: .superseded, detail: detail)
        }
    }

    /// Gives a file its final outcome (verdict, not scanned, or a cached verdict).
    public func decide(_ id: Int64, outcome: Outcome, reason: NotScannedReason? = nil, verdict: String? = nil,
                       error: String? = nil, scanID: String? = nil, scannedAt: Double? = nil, cached: Bool = false,
                       details: ScanDetails? = nil) throws {
        try db.transaction {
            try decideInTransaction(id, from: [.discovered, .hashed, .uploaded], outcome: outcome, reason: reason, verdict: verdict,
                                    error: error, scanID: scanID, scannedAt: scannedAt, cached: cached, details: details)
        }
    }

    private func decideInTransaction(_ id: Int64, from: [FileState], outcome: Outcome, reason: NotScannedReason?, verdict: String?,
                                     error: String?, scanID: String?, scannedAt: Double?, cached: Bool, details: ScanDetails? = nil) throws {
        let detail = [outcome.rawValue, reason?.rawValue, verdict, cached ? "cached" : nil].compactMap { $0 }.joined(separator: " ")
        try moveFile(id, from: from, to: .decided, set: [
            ("outcome", outcome.rawValue), ("reason", reason?.rawValue), ("verdict", verdict), ("error", error),
            ("scan_id", scanID), ("scanned_at", scannedAt), ("cached", cached), ("decided_run", runID),
            ("verdict_reason", details?.verdictReason), ("malicious_confidence", details?.maliciousConfidence.map(Int64.init)),
            ("file_type", details?.fileType), ("details", details?.json),
        ], detail: detail)
        // Same transaction as the verdict: a crash cannot keep the verdict and lose its notice.
        try enqueueNotification(fileID: id, outcome: outcome, reason: reason, verdict: verdict, error: error, scanID: scanID)
    }

    /// decided → disposing for many files: each destination is recorded, durably, before any
    /// file is touched (a power cut after the move must not lose where the file went).
    public func beginDisposals(_ intents: [(id: Int64, destination: String?)]) throws {
        guard !intents.isEmpty else { return }
        try durableTransaction {
            for intent in intents {
                try moveFile(intent.id, from: [.decided], to: .disposing, set: [("disposed_to", intent.destination)],
                             detail: intent.destination ?? "leave")
            }
        }
    }

    /// decided → disposing for one file (see `beginDisposals`).
    public func beginDisposal(_ id: Int64, destination: String?) throws {
        try beginDisposals([(id, destination)])
    }

    /// disposing → disposed for many files (the destination may differ from the intent: a
    /// suffix). Not durable on purpose: a lost commit is finished again by the resume, which
    /// finds the file at its destination.
    public func finishDisposals(_ done: [(id: Int64, destination: String?)]) throws {
        guard !done.isEmpty else { return }
        let now = Self.now()
        var disposed: [(Outcome, Double)] = []
        try db.transaction {
            for item in done {
                try moveFile(item.id, from: [.disposing], to: .disposed, set: [("disposed_to", item.destination), ("pending_reason", nil as String?)],
                             detail: item.destination ?? "left in place")
                if let row = try db.queryOne("SELECT outcome, discovered_at FROM files WHERE id = ?", [item.id]),
                   let outcome = row.string("outcome").flatMap(Outcome.init) {
                    disposed.append((outcome, now - (row.double("discovered_at") ?? now)))
                }
            }
        }
        for (outcome, seconds) in disposed { metrics?.fileDisposed(outcome: outcome, seconds: seconds) }
    }

    /// disposing → disposed for one file.
    public func finishDisposal(_ id: Int64, destination: String?) throws {
        try finishDisposals([(id, destination)])
    }

    /// disposing → decided: the disposal failed and was rolled back (nothing placed, the file
    /// where it was); it is retried, and `reason` shows in status, results and history.
    public func rollBackDisposal(_ id: Int64, reason: String) throws {
        try db.transaction {
            try moveFile(id, from: [.disposing], to: .decided, set: [("disposed_to", nil as String?), ("pending_reason", reason)],
                         detail: "not filed: \(reason)")
        }
    }

    /// A decided or disposing file could not be filed this time: the reason is recorded (and
    /// an event), the state stays.
    public func notePending(_ id: Int64, reason: String) throws {
        try db.transaction {
            guard let state = try db.queryOne("SELECT state FROM files WHERE id = ?", [id])?.string("state") else { return }
            try db.run("UPDATE files SET pending_reason = ?, updated_at = ? WHERE id = ?", [reason, Self.now(), id])
            try event("file", String(id), from: state, to: state, detail: "not filed: \(reason)")
        }
    }

    /// The file's recorded identity after our own rolled-back link changed its ctime (the
    /// caller checked that its bytes are the ones scanned).
    public func refreshIdentity(_ id: Int64, to identity: FileIdentity) throws {
        try db.transaction {
            guard let state = try db.queryOne("SELECT state FROM files WHERE id = ?", [id])?.string("state") else { return }
            try db.run("UPDATE files SET inode = ?, size = ?, mtime_ns = ?, ctime_ns = ?, updated_at = ? WHERE id = ?",
                       [identity.inode, identity.size, identity.mtimeNs, identity.ctimeNs, Self.now(), id])
            try event("file", String(id), from: state, to: state, detail: "ctime changed by a rolled-back link; content checked")
        }
    }

    /// disposing → superseded: the file changed before it was filed and nothing was placed for
    /// it; its new version is rescanned.
    public func abandonDisposal(_ id: Int64, detail: String) throws {
        try db.transaction {
            try moveFile(id, from: [.disposing], to: .superseded, detail: detail)
        }
    }

    // MARK: samples

    public func sample(_ sha256: String) throws -> SampleRecord? {
        try db.queryOne("SELECT * FROM samples WHERE sha256 = ?", [sha256]).map(Self.sample)
    }

    static func sample(_ row: SQLiteRow) -> SampleRecord {
        SampleRecord(sha256: row.string("sha256")!, uploadedAt: row.double("uploaded_at"), deletedAt: row.double("deleted_at"),
                     verdict: row.string("verdict"), error: row.string("error"), scannedAt: row.double("scanned_at"),
                     scanID: row.string("scan_id"), volumeID: row.int("volume_id"), attempts: Int(row.int("attempts") ?? 0),
                     uploadAPI: row.string("upload_api").flatMap(ScanAPI.init) ?? .quickscan,
                     verdictAPI: row.string("verdict_api").flatMap(ScanAPI.init) ?? .quickscan,
                     details: ScanDetails(verdictReason: row.string("verdict_reason"), maliciousConfidence: row.int("malicious_confidence").map(Int.init),
                                          fileType: row.string("file_type"), json: row.string("details")).nonEmpty)
    }

    /// The API holds the sample: hashed files with this content move to uploaded.
    public func markUploaded(_ sha256: String, api: ScanAPI = .quickscan) throws {
        try db.transaction {
            try db.run("UPDATE samples SET uploaded_at = ?, deleted_at = NULL, upload_api = ? WHERE sha256 = ?",
                       [Self.now(), api == .quickscan ? nil : api.rawValue, sha256])
            try event("sample", sha256, from: nil, to: "uploaded")
            for row in try db.query("SELECT id FROM files WHERE sha256 = ? AND state = 'hashed'", [sha256]) {
                try moveFile(row.int("id")!, from: [.hashed], to: .uploaded)
            }
        }
    }

    /// The API does not hold these samples after all: files waiting on them go back to `hashed`
    /// and are uploaded again.
    public func forgetUploads(_ sha256s: [String]) throws {
        try db.transaction {
            for sha in sha256s {
                try db.run("UPDATE samples SET uploaded_at = NULL WHERE sha256 = ?", [sha])
                try event("sample", sha, from: "uploaded", to: "not_uploaded", detail: "the API refused to scan it")
                for row in try db.query("SELECT id FROM files WHERE sha256 = ? AND state = 'uploaded'", [sha]) {
                    try moveFile(row.int("id")!, from: [.uploaded], to: .hashed, detail: "upload again")
                }
            }
        }
    }

    /// Uploaded samples waiting for a volume: no verdict yet, in no active volume, wanted by a file.
    public func samplesAwaitingVolume(limit: Int) throws -> [String] {
        try db.query("""
            SELECT s.sha256 FROM samples s
            WHERE s.uploaded_at IS NOT NULL AND s.deleted_at IS NULL AND s.volume_id IS NULL
              AND EXISTS (SELECT 1 FROM files f WHERE f.sha256 = s.sha256 AND f.state = 'uploaded')
            ORDER BY s.uploaded_at LIMIT ?
            """, [limit]).compactMap { $0.string("sha256") }
    }

    /// `falcon.api` is `api` from now on. Work in flight on the other API cannot move over (its
    /// scans live there): refused, naming the key. Files waiting for a scan of content uploaded
    /// to the other API only go back to `hashed`, to be uploaded to this one.
    public func useAPI(_ api: ScanAPI) throws {
        let other = api == .quickscan ? "COALESCE(api, 'quickscan') != 'quickscan'" : "COALESCE(api, 'quickscan') != '\(api.rawValue)'"
        let inFlight = Int(try db.queryOne("SELECT COUNT(*) AS n FROM volumes WHERE state IN ('submitting','submitted') AND \(other)")?.int("n") ?? 0)
        if inFlight > 0 {
            throw WorkerFailure(.configuration, """
                falcon.api is \(api.rawValue), but \(inFlight) scan(s) started on the other API are still in flight: \
                finish them with the old falcon.api (run --once) before switching
                """)
        }
        let uploadedElsewhere = api == .quickscan ? "s.upload_api IS NOT NULL AND s.upload_api != 'quickscan'"
                                                  : "COALESCE(s.upload_api, 'quickscan') != '\(api.rawValue)'"
        try db.transaction {
            for row in try db.query("""
                SELECT f.id FROM files f JOIN samples s ON s.sha256 = f.sha256
                WHERE f.state = 'uploaded' AND s.volume_id IS NULL AND \(uploadedElsewhere)
                """) {
                try moveFile(row.int("id")!, from: [.uploaded], to: .hashed, detail: "falcon.api is now \(api.rawValue): upload there")
            }
        }
    }

    /// Age in seconds of the oldest sample waiting for a volume.
    public func oldestAwaitingSince() throws -> Double? {
        try db.queryOne("""
            SELECT MIN(s.uploaded_at) AS t FROM samples s
            WHERE s.uploaded_at IS NOT NULL AND s.deleted_at IS NULL AND s.volume_id IS NULL
              AND EXISTS (SELECT 1 FROM files f WHERE f.sha256 = s.sha256 AND f.state = 'uploaded')
            """)?.double("t")
    }

    // MARK: volumes

    /// Records the intent to submit exactly `samples` (before ScanSamples is called).
    public func createVolumeIntent(samples: [String], api: ScanAPI = .quickscan) throws -> Int64 {
        try durableTransaction { try volumeIntentInTransaction(samples: samples, api: api) }
    }

    /// Records many intents in one durable transaction (QuickScan Pro: one scan per sample).
    public func createVolumeIntents(_ groups: [[String]], api: ScanAPI) throws -> [Int64] {
        guard !groups.isEmpty else { return [] }
        return try durableTransaction { try groups.map { try volumeIntentInTransaction(samples: $0, api: api) } }
    }

    private func volumeIntentInTransaction(samples: [String], api: ScanAPI) throws -> Int64 {
        try db.run("INSERT INTO volumes (state, intent_at, api) VALUES ('submitting', ?, ?)", [Self.now(), api == .quickscan ? nil : api.rawValue])
        let id = db.lastInsertRowID
        for sha in samples {
            try db.run("INSERT INTO volume_members (volume_id, sha256) VALUES (?, ?)", [id, sha])
            guard try db.run("UPDATE samples SET volume_id = ?, attempts = attempts + 1 WHERE sha256 = ? AND volume_id IS NULL", [id, sha]) == 1 else {
                throw StaleTransition(entity: "sample", id: sha, expected: "no active volume")
            }
        }
        // The volume's attempt: the highest submission count among its samples.
        try db.run("UPDATE volumes SET attempt = (SELECT MAX(attempts) FROM samples WHERE volume_id = ?) WHERE id = ?", [id, id])
        try event("volume", String(id), from: nil, to: VolumeState.submitting.rawValue, detail: "\(samples.count) samples")
        return id
    }

    private func moveVolume(_ id: Int64, from: VolumeState, to: VolumeState, set columns: [(String, any SQLiteBindable)] = [], detail: String? = nil) throws {
        precondition(from.canTransition(to: to))
        var sql = "UPDATE volumes SET state = ?"
        var args: [any SQLiteBindable] = [to.rawValue]
        for (c, v) in columns {
            sql += ", \(c) = ?"
            args.append(v)
        }
        sql += " WHERE id = ? AND state = ?"
        args += [id, from.rawValue]
        guard try db.run(sql, args) == 1 else { throw StaleTransition(entity: "volume", id: String(id), expected: from.rawValue) }
        try event("volume", String(id), from: from.rawValue, to: to.rawValue, detail: detail)
    }

    /// submitting → submitted with the scan id ScanSamples returned (or reconciliation found).
    public func markVolumeSubmitted(_ id: Int64, scanID: String, detail: String? = nil) throws {
        try db.transaction {
            try moveVolume(id, from: .submitting, to: .submitted, set: [("scan_id", scanID), ("submitted_at", Self.now())], detail: detail ?? scanID)
        }
    }

    public func volumes(in state: VolumeState) throws -> [VolumeRecord] {
        try db.query("SELECT * FROM volumes WHERE state = ? ORDER BY id", [state.rawValue]).map {
            VolumeRecord(id: $0.int("id")!, state: VolumeState(rawValue: $0.string("state")!)!, scanID: $0.string("scan_id"),
                         intentAt: $0.double("intent_at")!, submittedAt: $0.double("submitted_at"), attempt: Int($0.int("attempt") ?? 1))
        }
    }

    public func members(ofVolume id: Int64) throws -> [String] {
        try db.query("SELECT sha256 FROM volume_members WHERE volume_id = ? ORDER BY sha256", [id]).compactMap { $0.string("sha256") }
    }

    /// Scan ids already recorded for some volume (never adopted twice).
    public func knownScanIDs() throws -> Set<String> {
        Set(try db.query("SELECT scan_id FROM volumes WHERE scan_id IS NOT NULL").compactMap { $0.string("scan_id") })
    }

    /// A finished volume: verdicts go to samples, files waiting on them are decided.
    /// Samples the scan did not report go back to the queue, or fail after `maxAttempts`.
    /// A volume's scan is done: each member gets its verdict (and, from QuickScan Pro, its
    /// details), and the files waiting on it are decided, in one transaction. A member without
    /// a verdict is queued again (or fails after `maxAttempts`). With `deleteResult` the scan's
    /// stored result is marked for DeleteScanResult.
    public func completeVolume(_ id: Int64, scanID: String, results: [String: (verdict: String?, error: String?)],
                               maxAttempts: Int, deleteSamples: Bool, api: ScanAPI = .quickscan, likelyBenign: Outcome = .clean,
                               details: [String: ScanDetails] = [:], deleteResult: Bool = false) throws {
        try db.transaction {
            try moveVolume(id, from: .submitted, to: .done, set: [("finished_at", Self.now()), ("result_delete_pending", deleteResult)])
            let scannedAt = Self.now()
            for sha in try members(ofVolume: id) {
                guard let result = results[sha], let verdict = result.verdict, !verdict.isEmpty else {
                    try releaseSample(sha, volume: id, maxAttempts: maxAttempts, why: "the scan \(scanID) returned no verdict for it")
                    continue
                }
                let more = details[sha]
                try db.run("""
                    UPDATE samples SET verdict = ?, error = ?, scanned_at = ?, scan_id = ?, volume_id = NULL, delete_pending = ?,
                        verdict_api = ?, verdict_reason = ?, malicious_confidence = ?, file_type = ?, details = ?
                    WHERE sha256 = ?
                    """,
                    [verdict, result.error, scannedAt, scanID, deleteSamples, api == .quickscan ? nil : api.rawValue,
                     more?.verdictReason, more?.maliciousConfidence.map(Int64.init), more?.fileType, more?.json, sha])
                try event("sample", sha, from: "queued", to: "scanned", detail: verdict)
                let (outcome, reason) = VerdictMapping.outcome(verdict: verdict, error: result.error, api: api, likelyBenign: likelyBenign)
                for row in try db.query("SELECT id FROM files WHERE sha256 = ? AND state = 'uploaded'", [sha]) {
                    try decideInTransaction(row.int("id")!, from: [.uploaded], outcome: outcome, reason: reason, verdict: verdict,
                                            error: result.error, scanID: scanID, scannedAt: scannedAt, cached: false, details: more)
                }
            }
        }
    }

    /// Scan ids whose stored results wait for DeleteScanResult.
    public func scanResultsPendingDeletion(limit: Int = 1000) throws -> [(volume: Int64, scanID: String)] {
        try db.query("SELECT id, scan_id FROM volumes WHERE result_delete_pending = 1 AND scan_id IS NOT NULL ORDER BY id LIMIT ?", [limit])
            .compactMap { row in row.string("scan_id").map { (row.int("id")!, $0) } }
    }

    /// The API confirmed DeleteScanResult for these volumes' scans.
    public func markScanResultsDeleted(_ volumes: [Int64]) throws {
        guard !volumes.isEmpty else { return }
        try db.transaction {
            for id in volumes {
                try db.run("UPDATE volumes SET result_delete_pending = 0 WHERE id = ?", [id])
                try event("volume", String(id), from: "done", to: "done", detail: "scan result deleted")
            }
        }
    }

    /// A volume that timed out or was refused: its samples are queued again or fail.
    public func failVolume(_ id: Int64, from: VolumeState, reason: String, maxAttempts: Int) throws {
        try db.transaction {
            try moveVolume(id, from: from, to: .failed, set: [("finished_at", Self.now()), ("detail", reason)], detail: reason)
            for sha in try members(ofVolume: id) {
                try releaseSample(sha, volume: id, maxAttempts: maxAttempts, why: reason)
            }
        }
    }

    /// submitting → failed for a volume ScanSamples refused (a 400: no scan was created), and
    /// two new volume intents, `submitting`, for its halves, in one durable transaction (the
    /// halves are intents like any other: a crash before their ScanSamples answers is
    /// reconciled). Splitting is not a new attempt for the samples. Returns the halves.
    public func splitVolume(_ id: Int64, reason: String) throws -> [(id: Int64, samples: [String])] {
        try durableTransaction {
            let members = try members(ofVolume: id)
            precondition(members.count > 1, "a volume of one sample cannot be split")
            let attempt = Int(try db.queryOne("SELECT attempt FROM volumes WHERE id = ?", [id])?.int("attempt") ?? 1)
            let halves = [Array(members[..<(members.count / 2)]), Array(members[(members.count / 2)...])]
            var created: [(id: Int64, samples: [String])] = []
            for half in halves {
                try db.run("INSERT INTO volumes (state, intent_at, attempt) VALUES ('submitting', ?, ?)", [Self.now(), attempt])
                let newID = db.lastInsertRowID
                for sha in half {
                    try db.run("INSERT INTO volume_members (volume_id, sha256) VALUES (?, ?)", [newID, sha])
                    guard try db.run("UPDATE samples SET volume_id = ? WHERE sha256 = ? AND volume_id = ?", [newID, sha, id]) == 1 else {
                        throw StaleTransition(entity: "sample", id: sha, expected: "in volume \(id)")
                    }
                }
                try event("volume", String(newID), from: nil, to: VolumeState.submitting.rawValue, detail: "\(half.count) samples, half of volume \(id)")
                created.append((newID, half))
            }
            try moveVolume(id, from: .submitting, to: .failed, set: [("finished_at", Self.now()), ("detail", reason)],
                           detail: "\(reason); split into volumes \(created[0].id) and \(created[1].id)")
            return created
        }
    }

    private func releaseSample(_ sha: String, volume: Int64, maxAttempts: Int, why: String) throws {
        try db.run("UPDATE samples SET volume_id = NULL WHERE sha256 = ? AND volume_id = ?", [sha, volume])
        let attempts = Int(try db.queryOne("SELECT attempts FROM samples WHERE sha256 = ?", [sha])?.int("attempts") ?? 0)
        guard attempts >= maxAttempts else {
            try event("sample", sha, from: "queued", to: "requeued", detail: why)
            return
        }
        try event("sample", sha, from: "queued", to: "scan_failed", detail: why)
        for row in try db.query("SELECT id FROM files WHERE sha256 = ? AND state = 'uploaded'", [sha]) {
            try decideInTransaction(row.int("id")!, from: [.uploaded], outcome: .notScanned, reason: .scanFailed, verdict: nil,
                                    error: "no verdict after \(attempts) attempts: \(why)", scanID: nil, scannedAt: nil, cached: false)
        }
    }

    // MARK: cloud cleanup ledger

    public func samplesPendingDeletion() throws -> [String] {
        try db.query("SELECT sha256 FROM samples WHERE delete_pending = 1 AND volume_id IS NULL").compactMap { $0.string("sha256") }
    }

    public func markSampleDeleted(_ sha256: String) throws {
        try markSamplesDeleted([sha256])
    }

    /// The same for the samples of one confirmed call (DeleteFile takes up to 100), in one transaction.
    public func markSamplesDeleted(_ sha256s: [String]) throws {
        guard !sha256s.isEmpty else { return }
        try db.transaction {
            for sha256 in sha256s {
                try db.run("UPDATE samples SET delete_pending = 0, deleted_at = ?, uploaded_at = NULL WHERE sha256 = ?", [Self.now(), sha256])
                try event("sample", sha256, from: "uploaded", to: "deleted")
            }
        }
    }

    // MARK: run summary

    /// Outcomes decided in this run and in earlier runs that ended without reporting (killed):
    /// a threat found by a run that died is reported by the next one, and by no other.
    /// A threat whose file changed before it was filed still counts: it was seen.
    public func outcomesThisRun() throws -> [Outcome: Int] {
        guard runID != nil else { return [:] }
        var counts: [Outcome: Int] = [:]
        for row in try db.query("""
            SELECT outcome, COUNT(*) AS n FROM files
            WHERE decided_run IN (SELECT id FROM runs WHERE reported_in IS NULL)
              AND (state != 'superseded' OR outcome = 'threat')  -- a threat seen is reported, even if it changed before it was filed
            GROUP BY outcome
            """) {
            if let o = row.string("outcome").flatMap(Outcome.init) { counts[o] = Int(row.int("n") ?? 0) }
        }
        return counts
    }

    /// Ids of the files not yet at a final state.
    public func pendingIDs() throws -> [Int64] {
        try db.query("SELECT id FROM files WHERE state NOT IN ('disposed','superseded')").compactMap { $0.int("id") }
    }

    /// Files not yet at a final state.
    public func pendingCount() throws -> Int {
        Int(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE state NOT IN ('disposed','superseded')")?.int("n") ?? 0)
    }

    /// Progress of the current run: files it took or finished, by how far they got.
    public func progress() throws -> RunProgress {
        guard let runID else { return RunProgress() }
        let row = try db.queryOne("""
            SELECT COUNT(*) AS seen,
                   SUM(f.sha256 IS NOT NULL) AS hashed,
                   SUM(f.state IN ('uploaded','decided','disposing','disposed') AND f.sha256 IS NOT NULL AND f.cached = 0 AND f.reason IS NULL) AS uploaded,
                   SUM(s.volume_id IS NOT NULL AND f.state = 'uploaded') AS in_volumes,
                   SUM(f.verdict IS NOT NULL) AS scanned,
                   SUM(f.state = 'disposed') AS disposed,
                   SUM(f.outcome = 'not_scanned') AS not_scanned
            FROM files f LEFT JOIN samples s ON s.sha256 = f.sha256
            WHERE f.state != 'superseded' AND (f.discovered_run = ? OR f.decided_run = ?)
            """, [runID, runID])
        func n(_ key: String) -> Int { Int(row?.int(key) ?? 0) }
        return RunProgress(seen: n("seen"), hashed: n("hashed"), uploaded: n("uploaded"), inVolumes: n("in_volumes"),
                           scanned: n("scanned"), disposed: n("disposed"), notScanned: n("not_scanned"))
    }

    /// Counts per state (status, progress).
    public func stateCounts() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try db.query("SELECT state, COUNT(*) AS n FROM files GROUP BY state") {
            counts[row.string("state")!] = Int(row.int("n") ?? 0)
        }
        return counts
    }
}
