import Foundation
import SQLiteKit

/// A failure of the operator queries (`results`, `status`, `history`), naming the database or
/// the value at fault.
public struct ResultsReaderError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, so the CLI can pick its exit code.
    public enum Kind: Sendable, Equatable {
        /// No file at the database path (the reader never creates one).
        case databaseMissing
        /// A file that is not a quickscan results database, or that SQLite cannot open.
        case notAResultsDatabase
        /// A filter or time value the reader cannot use.
        case invalidValue
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Which rows of the `results` view to return; a nil field does not constrain.
public struct ResultsFilter: Sendable, Equatable {
    /// The API's verdict string, compared case-insensitively (`malware`, `no specific threat`).
    public var verdict: String?
    /// `clean`, `threat` or `not_scanned`.
    public var outcome: String?
    /// Rows whose `updated_at` is at or after this time.
    public var since: Date?
    /// Rows whose `updated_at` is before this time.
    public var until: Date?
    /// A SQLite GLOB on the absolute path (`*` also matches `/`; case-sensitive).
    public var pathGlob: String?
    /// The content's SHA-256 (64 hex characters, any case).
    public var sha256: String?
    /// At most this many rows (the lowest file ids first).
    public var limit: Int?
    /// Also read QuickScan Pro's details (MITRE ATT&CK, YARA, artifacts: the scan's `result` as JSON).
    public var details = false

    public init(verdict: String? = nil, outcome: String? = nil, since: Date? = nil, until: Date? = nil,
                pathGlob: String? = nil, sha256: String? = nil, limit: Int? = nil, details: Bool = false) {
        self.details = details
        self.verdict = verdict
        self.outcome = outcome
        self.since = since
        self.until = until
        self.pathGlob = pathGlob
        self.sha256 = sha256
        self.limit = limit
    }

    /// Refuses values that could only match nothing by mistake, naming the flag's value.
    public func validate() throws {
        if let outcome, Outcome(rawValue: outcome) == nil {
            throw ResultsReaderError(.invalidValue, "outcome \(outcome) is not one of clean, threat, not_scanned")
        }
        if let sha256, !ResultsReader.isSHA256(sha256) {
            throw ResultsReaderError(.invalidValue, "sha256 \(sha256) is not a SHA-256 (64 hex characters)")
        }
        if let limit, limit < 1 {
            throw ResultsReaderError(.invalidValue, "limit \(limit) must be at least 1")
        }
    }
}

/// One row of the stable `results` view (README, "Results database").
public struct ResultRow: Sendable, Equatable {
    /// The view's columns, in its order: the keys of the JSON output and the CSV header.
    public static let columns = [
        "file_id", "path", "sha256", "size", "outcome", "verdict", "error", "scan_id", "scanned_at",
        "disposed_to", "cached", "discovered_at", "updated_at", "state", "pending_reason", "original_note",
        "verdict_reason", "malicious_confidence", "file_type",
    ]

    public var fileID: Int64
    public var path: String
    public var sha256: String?
    public var size: Int64
    public var outcome: String
    public var verdict: String?
    public var error: String?
    public var scanID: String?
    public var scannedAt: String?
    public var disposedTo: String?
    public var cached: Bool
    public var discoveredAt: String
    public var updatedAt: String
    /// `decided` (not filed yet), `disposing` (being filed) or `disposed`.
    public var state: String
    /// Why a decided file is not filed yet (a move that failed and is retried).
    public var pendingReason: String?
    /// With custody: why the dropped original could not be removed from the inbox.
    public var originalNote: String?
    /// QuickScan Pro: why the scanner gave its verdict (NULL for legacy verdicts).
    public var verdictReason: String?
    /// QuickScan Pro: the scanner's confidence that the file is malicious, 0–100.
    public var maliciousConfidence: Int64?
    /// QuickScan Pro: the file type the scanner found.
    public var fileType: String?
    /// QuickScan Pro's whole result as JSON text, when asked for (`results --details`).
    public var details: String?

    init(_ row: SQLiteRow) {
        fileID = row.int("file_id") ?? 0
        path = row.string("path") ?? ""
        sha256 = row.string("sha256")
        size = row.int("size") ?? 0
        outcome = row.string("outcome") ?? ""
        verdict = row.string("verdict")
        error = row.string("error")
        scanID = row.string("scan_id")
        scannedAt = row.string("scanned_at")
        disposedTo = row.string("disposed_to")
        cached = (row.int("cached") ?? 0) != 0
        discoveredAt = row.string("discovered_at") ?? ""
        updatedAt = row.string("updated_at") ?? ""
        state = row.string("state") ?? ""
        pendingReason = row.string("pending_reason")
        originalNote = row.string("original_note")
        verdictReason = row.string("verdict_reason")
        maliciousConfidence = row.int("malicious_confidence")
        fileType = row.string("file_type")
        details = row.string("details")
    }

    /// The values in ``columns`` order; NULL stays `.null`.
    public var values: [SQLiteValue] {
        func text(_ s: String?) -> SQLiteValue { s.map(SQLiteValue.text) ?? .null }
        return [
            .integer(fileID), .text(path), text(sha256), .integer(size), .text(outcome), text(verdict), text(error),
            text(scanID), text(scannedAt), text(disposedTo), .integer(cached ? 1 : 0), .text(discoveredAt), .text(updatedAt),
            .text(state), text(pendingReason), text(originalNote),
            text(verdictReason), maliciousConfidence.map(SQLiteValue.integer) ?? .null, text(fileType),
        ]
    }
}

/// What `quickscan status` shows: a consistent snapshot of the queue, the volumes, the runs and
/// the cached API state.
public struct StatusReport: Sendable, Equatable {
    /// A named count (a state or an outcome).
    public struct Count: Sendable, Equatable {
        public var name: String
        public var count: Int
        public init(name: String, count: Int) {
            self.name = name
            self.count = count
        }
    }

    /// A Quick Scan volume not finished yet (`submitting` or `submitted`).
    public struct VolumeInFlight: Sendable, Equatable {
        public var id: Int64
        public var state: String
        /// Nil while ScanSamples has not answered (state `submitting`).
        public var scanID: String?
        /// When the volume's intent was recorded.
        public var createdAt: Date
        public var attempt: Int
        public var samples: Int
    }

    /// The file that has waited longest for a final state.
    public struct PendingFile: Sendable, Equatable {
        public var id: Int64
        public var path: String
        public var state: String
        public var discoveredAt: Date
    }

    /// A file whose disposal failed and is retried, with why.
    public struct NotFiled: Sendable, Equatable {
        public var id: Int64
        public var path: String
        public var state: String
        public var reason: String
    }

    /// One row of `runs`.
    public struct Run: Sendable, Equatable {
        public var id: Int64
        public var mode: String
        public var startedAt: Date
        /// Nil while the run goes on, or when it was killed.
        public var finishedAt: Date?
        public var exitCode: Int?
        public var pid: Int?
        public var host: String?
    }

    /// The last quota the worker read from the API (kv `quota`).
    public struct Quota: Sendable, Equatable {
        public var total: Int
        public var used: Int
        public var inProgress: Int
        public var fetchedAt: Date
        public var remaining: Int { max(0, total - used - inProgress) }
    }

    /// The time the snapshot was taken (ages are measured from it).
    public var generatedAt: Date
    /// Files per state, every state of the schema in lifecycle order (zeros included).
    public var fileStates: [Count]
    /// Files not yet disposed or superseded.
    public var pendingFiles: Int
    /// Rows of the `results` view per outcome (zeros included).
    public var outcomes: [Count]
    /// Volumes per state (zeros included).
    public var volumeStates: [Count]
    public var volumesInFlight: [VolumeInFlight]
    public var oldestPending: PendingFile?
    /// Files that could not be filed (up to 20, oldest first) and how many there are.
    public var notFiled: [NotFiled] = []
    public var notFiledCount = 0
    /// Notifications not delivered yet (up to 20, oldest first) and how many there are.
    public var undelivered: [UndeliveredNotification] = []
    public var undeliveredCount = 0
    /// The last five runs, newest first.
    public var recentRuns: [Run]
    public var quota: Quota?
    /// Set only while the cooldown after a 429 lies in the future.
    public var rateLimitCooldownUntil: Date?
}

/// One recorded transition (a row of `events`).
public struct HistoryEvent: Sendable, Equatable {
    /// The event's row id: the order in which transitions were recorded.
    public var id: Int64
    public var time: Date
    public var runID: Int64?
    /// `file`, `sample` or `volume`.
    public var entity: String
    /// The file id, the sha256 or the volume id.
    public var entityID: String
    public var from: String?
    public var to: String
    public var detail: String?
    /// For a file event: the path of that file version.
    public var path: String?
}

/// Read-only queries on a results database, for the operator commands.
///
/// Opens its own connection and never creates the file; reads through the stable `results` view
/// for results and the tables for status and history. Not thread-safe, like the connection.
public final class ResultsReader {
    public let path: String
    let db: SQLiteConnection

    /// Opens the database at `path`; throws ``ResultsReaderError`` naming the path when there is
    /// no file, or the file is not a quickscan results database.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ResultsReaderError(.databaseMissing, "no results database at \(path) (run quickscan run first, or give --database or --config)")
        }
        // Unreadable attributes count as empty: the open below then names the real problem.
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard !isDirectory.boolValue, size > 0 else {
            throw ResultsReaderError(.notAResultsDatabase, "\(path) is not a quickscan results database")
        }
        do {
            // Reading only: an operator's symlink to the database is followed.
            db = try SQLiteConnection(path: path, followSymlinks: true)
            // Belt and braces: this connection must never write (SQLite docs, PRAGMA query_only).
            try db.execute("PRAGMA query_only = ON")
            let view = try db.queryOne("SELECT 1 AS found FROM sqlite_master WHERE type = 'view' AND name = 'results'")
            guard view != nil else {
                throw ResultsReaderError(.notAResultsDatabase, "\(path) is not a quickscan results database (it has no results view)")
            }
        } catch let error as ResultsReaderError {
            throw error
        } catch let error as SQLiteError {
            throw ResultsReaderError(.notAResultsDatabase, "cannot read \(path) as a quickscan results database: \(error.message)")
        }
        self.path = path
    }

    /// True for 64 hexadecimal characters (either case).
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }

    /// Runs `body` in one read transaction, so every query sees the same snapshot while a worker
    /// writes (WAL readers never block the writer).
    func snapshot<T>(_ body: () throws -> T) throws -> T {
        try db.execute("BEGIN DEFERRED")
        defer { try? db.execute("COMMIT") }  // ends a read-only snapshot: nothing to lose
        return try body()
    }

    // MARK: results

    /// Rows of the `results` view that pass `filter`, by file id.
    public func results(_ filter: ResultsFilter = ResultsFilter()) throws -> [ResultRow] {
        try filter.validate()
        var conditions: [String] = []
        var arguments: [any SQLiteBindable] = []
        if let verdict = filter.verdict {
            conditions.append("verdict = ? COLLATE NOCASE")
            arguments.append(verdict)
        }
        if let outcome = filter.outcome {
            conditions.append("outcome = ?")
            arguments.append(outcome)
        }
        // The view writes ISO 8601 UTC strings to the second, which compare lexically; the bounds
        // are widened to whole seconds so a row shown at a bound's second is never lost.
        if let since = filter.since {
            conditions.append("updated_at >= ?")
            arguments.append(ISOTime.string(Date(timeIntervalSince1970: since.timeIntervalSince1970.rounded(.down))))
        }
        if let until = filter.until {
            conditions.append("updated_at < ?")
            arguments.append(ISOTime.string(Date(timeIntervalSince1970: until.timeIntervalSince1970.rounded(.up))))
        }
        if let glob = filter.pathGlob {
            conditions.append("path GLOB ?")
            arguments.append(glob)
        }
        if let sha = filter.sha256 {
            conditions.append("sha256 = ?")
            arguments.append(sha.lowercased())
        }
        // A database the worker has not opened since an upgrade lacks the newest columns: NULL.
        let present = Set(try db.query("PRAGMA table_info(results)").compactMap { $0.string("name") })
        var selected = ResultRow.columns.map { present.contains($0) ? $0 : "NULL AS \($0)" }
        if filter.details {
            let hasDetails = try db.query("PRAGMA table_info(files)").contains { $0.string("name") == "details" }
            selected.append(hasDetails ? "(SELECT f.details FROM files f WHERE f.id = results.file_id) AS details" : "NULL AS details")
        }
        var sql = "SELECT \(selected.joined(separator: ", ")) FROM results"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY file_id"
        if let limit = filter.limit {
            sql += " LIMIT ?"
            arguments.append(limit)
        }
        return try db.query(sql, arguments).map(ResultRow.init)
    }

    // MARK: status

    /// Counts, volumes in flight, the oldest pending file, the last runs and the cached API state.
    /// `outcomes: false` leaves the outcome counts out (the gauges do not show them): counting
    /// them reads and sorts every file row, which in watch mode, every 15 s and at every scrape,
    /// cost a transient peak of memory growing with the database.
    public func status(now: Date = Date(), outcomes withOutcomes: Bool = true) throws -> StatusReport {
        try snapshot {
            let files = try counts("SELECT state AS name, COUNT(*) AS n FROM files GROUP BY state", known: FileState.allCases.map(\.rawValue))
            let outcomes = withOutcomes
                ? try counts("SELECT outcome AS name, COUNT(*) AS n FROM results GROUP BY outcome", known: Outcome.allCases.map(\.rawValue))
                : []
            let volumes = try counts("SELECT state AS name, COUNT(*) AS n FROM volumes GROUP BY state", known: VolumeState.allCases.map(\.rawValue))
            let inFlight = try db.query("""
                SELECT v.id, v.state, v.scan_id, v.intent_at, v.attempt,
                       (SELECT COUNT(*) FROM volume_members m WHERE m.volume_id = v.id) AS samples
                FROM volumes v WHERE v.state IN ('submitting', 'submitted') ORDER BY v.id
                """).map { row in
                StatusReport.VolumeInFlight(id: row.int("id") ?? 0, state: row.string("state") ?? "", scanID: row.string("scan_id"),
                                            createdAt: Date(timeIntervalSince1970: row.double("intent_at") ?? 0),
                                            attempt: Int(row.int("attempt") ?? 1), samples: Int(row.int("samples") ?? 0))
            }
            let pendingWhere = "state NOT IN ('disposed', 'superseded')"
            let pending = Int(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE \(pendingWhere)")?.int("n") ?? 0)
            let oldest = try db.queryOne("SELECT id, path, state, discovered_at FROM files WHERE \(pendingWhere) ORDER BY discovered_at, id LIMIT 1").map { row in
                StatusReport.PendingFile(id: row.int("id") ?? 0, path: row.string("path") ?? "", state: row.string("state") ?? "",
                                         discoveredAt: Date(timeIntervalSince1970: row.double("discovered_at") ?? 0))
            }
            let runs = try db.query("SELECT id, mode, started_at, finished_at, exit_code, pid, host FROM runs ORDER BY id DESC LIMIT 5").map { row in
                StatusReport.Run(id: row.int("id") ?? 0, mode: row.string("mode") ?? "",
                                 startedAt: Date(timeIntervalSince1970: row.double("started_at") ?? 0),
                                 finishedAt: row.double("finished_at").map(Date.init(timeIntervalSince1970:)),
                                 exitCode: row.int("exit_code").map(Int.init), pid: row.int("pid").map(Int.init), host: row.string("host"))
            }
            let quota = try value("quota").flatMap(Self.parseQuota)
            let cooldown = try value("rate_limit_cooldown_until").flatMap(Double.init).flatMap { until in
                until > now.timeIntervalSince1970 ? Date(timeIntervalSince1970: until) : nil
            }
            var report = StatusReport(generatedAt: now, fileStates: files, pendingFiles: pending, outcomes: outcomes, volumeStates: volumes,
                                      volumesInFlight: inFlight, oldestPending: oldest, recentRuns: runs, quota: quota,
                                      rateLimitCooldownUntil: cooldown)
            let notFiledWhere = "pending_reason IS NOT NULL AND state IN ('decided', 'disposing')"
            report.notFiledCount = Int(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE \(notFiledWhere)")?.int("n") ?? 0)
            report.notFiled = try db.query("SELECT id, path, state, pending_reason FROM files WHERE \(notFiledWhere) ORDER BY id LIMIT 20").map { row in
                StatusReport.NotFiled(id: row.int("id") ?? 0, path: row.string("path") ?? "", state: row.string("state") ?? "",
                                      reason: row.string("pending_reason") ?? "")
            }
            report.undeliveredCount = try undeliveredNotificationCount()
            report.undelivered = try undeliveredNotifications(limit: 20)
            return report
        }
    }

    /// Counts of a `name, n` query: every known name in order (zeros included), then any other
    /// name the database holds.
    private func counts(_ sql: String, known: [String]) throws -> [StatusReport.Count] {
        var found: [String: Int] = [:]
        for row in try db.query(sql) {
            found[row.string("name") ?? "NULL", default: 0] += Int(row.int("n") ?? 0)
        }
        let extra = found.keys.filter { !known.contains($0) }.sorted()
        return (known + extra).map { StatusReport.Count(name: $0, count: found[$0] ?? 0) }
    }

    private func value(_ key: String) throws -> String? {
        try db.queryOne("SELECT value FROM kv WHERE key = ?", [key])?.string("value")
    }

    /// kv `quota` holds "total used in_progress epochSeconds" (ScanPipeline writes it).
    static func parseQuota(_ text: String) -> StatusReport.Quota? {
        let parts = text.split(separator: " ")
        guard parts.count == 4, let total = Int(parts[0]), let used = Int(parts[1]), let inProgress = Int(parts[2]),
              let at = Double(parts[3]) else { return nil }
        return StatusReport.Quota(total: total, used: used, inProgress: inProgress, fetchedAt: Date(timeIntervalSince1970: at))
    }

    // MARK: history

    /// Every recorded transition, oldest first: for a SHA-256, those of the sample, of every file
    /// with that content and of every volume that held it; otherwise those of every file version
    /// found at, or filed to, that path.
    public func history(pathOrSHA256 key: String) throws -> [HistoryEvent] {
        let columns = "e.id, e.at, e.run_id, e.entity, e.entity_id, e.from_state, e.to_state, e.detail, f.path AS file_path"
        let join = "LEFT JOIN files f ON e.entity = 'file' AND f.id = CAST(e.entity_id AS INTEGER)"
        let rows: [SQLiteRow]
        if Self.isSHA256(key) {
            rows = try db.query("""
                SELECT \(columns) FROM events e \(join)
                WHERE (e.entity = 'sample' AND e.entity_id = ?1)
                   OR (e.entity = 'file' AND e.entity_id IN (SELECT CAST(id AS TEXT) FROM files WHERE sha256 = ?1))
                   OR (e.entity = 'volume' AND e.entity_id IN (SELECT CAST(volume_id AS TEXT) FROM volume_members WHERE sha256 = ?1))
                ORDER BY e.id
                """, [key.lowercased()])
        } else {
            rows = try db.query("""
                SELECT \(columns) FROM events e \(join)
                WHERE e.entity = 'file' AND e.entity_id IN (SELECT CAST(id AS TEXT) FROM files WHERE path = ?1 OR disposed_to = ?1)
                ORDER BY e.id
                """, [key])
        }
        return rows.map { row in
            HistoryEvent(id: row.int("id") ?? 0, time: Date(timeIntervalSince1970: row.double("at") ?? 0), runID: row.int("run_id"),
                         entity: row.string("entity") ?? "", entityID: row.string("entity_id") ?? "", from: row.string("from_state"),
                         to: row.string("to_state") ?? "", detail: row.string("detail"), path: row.string("file_path"))
        }
    }
}
