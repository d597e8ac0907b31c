import Foundation
import SQLiteKit

/// The notification outbox: rows written with the verdict, delivered at least once.
extension WorkerStore {
    /// Which outcomes are notified, on which channels (`command`, `webhook`). Decisions made
    /// after this call enqueue their notifications in the deciding transaction.
    public func configureNotifications(outcomes: Set<Outcome>, channels: [String]) {
        notification = channels.isEmpty ? ([], []) : (outcomes, channels)
    }

    /// Counts dispositions (and their drop-to-disposition time) in `metrics`.
    public func useMetrics(_ metrics: WorkerMetrics) {
        self.metrics = metrics
    }

    /// Inside the deciding transaction: one row per channel, one id for all of them.
    func enqueueNotification(fileID: Int64, outcome: Outcome, reason: NotScannedReason?, verdict: String?, error: String?, scanID: String?) throws {
        guard notification.outcomes.contains(outcome) else { return }
        guard let file = try db.queryOne("SELECT path, sha256 FROM files WHERE id = ?", [fileID]) else { return }
        let id = UUID().uuidString.lowercased()
        let now = Self.now()
        for channel in notification.channels {
            try db.run("""
                INSERT INTO outbox (notification_id, channel, file_id, path, sha256, outcome, verdict, reason, error, scan_id, decided_at, next_attempt_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [id, channel, fileID, file.string("path"), file.string("sha256"), outcome.rawValue, verdict, reason?.rawValue, error, scanID, now, now])
        }
        try event("file", String(fileID), from: FileState.decided.rawValue, to: FileState.decided.rawValue,
                  detail: "notification \(id) queued (\(notification.channels.joined(separator: ", ")))")
    }

    /// Notifications due now: not delivered, past their backoff, and whose file is filed (or
    /// superseded, or not filed after a failure, or waiting longer than `holdSeconds`), so
    /// the notice can say where the file went.
    public func dueNotifications(now: Double, holdSeconds: Double, limit: Int = 100) throws -> [PendingNotification] {
        try db.query("""
            SELECT o.*, f.state AS file_state, f.disposed_to AS file_disposed_to FROM outbox o
            LEFT JOIN files f ON f.id = o.file_id
            WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?
              AND (f.id IS NULL OR f.state IN ('disposed','superseded') OR f.pending_reason IS NOT NULL OR o.decided_at <= ?)
            ORDER BY o.next_attempt_at, o.id LIMIT ?
            """, [now, now - holdSeconds, limit]).map { row in
            let disposed = row.string("file_state") == "disposed"
            return PendingNotification(
                row: row.int("id")!, id: row.string("notification_id")!, channel: row.string("channel")!,
                fileID: row.int("file_id")!, path: row.string("path")!, sha256: row.string("sha256"),
                outcome: row.string("outcome").flatMap(Outcome.init) ?? .threat, verdict: row.string("verdict"),
                reason: row.string("reason"), error: row.string("error"), scanID: row.string("scan_id"),
                decidedAt: row.double("decided_at") ?? 0,
                destination: disposed ? row.string("file_disposed_to").flatMap { $0 == Decisions.deletedMarker ? "deleted" : $0 } : nil,
                attempts: Int(row.int("attempts") ?? 0))
        }
    }

    /// Seconds until the next undelivered notification is due (nil: none waits).
    public func nextNotificationDue(now: Double) throws -> Double? {
        try db.queryOne("SELECT MIN(next_attempt_at) AS t FROM outbox WHERE delivered_at IS NULL")?.double("t").map { max(0, $0 - now) }
    }

    public func markNotificationDelivered(_ row: Int64) throws {
        try db.run("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ? AND delivered_at IS NULL",
                   [Self.now(), row])
    }

    /// A failed attempt: tried again at `retryAt`; `error` never holds a secret (the caller
    /// names the receiver by scheme and host only).
    public func markNotificationFailed(_ row: Int64, error: String, retryAt: Double) throws {
        try db.run("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ? AND delivered_at IS NULL",
                   [String(error.prefix(500)), retryAt, row])
    }

    public func undeliveredNotificationCount() throws -> Int {
        Int(try db.queryOne("SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL")?.int("n") ?? 0)
    }
}
