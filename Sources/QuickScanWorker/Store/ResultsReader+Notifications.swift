import Foundation

/// The notification outbox, read for `status` and the gauges.
extension ResultsReader {
    /// False on a database no worker of this version has opened yet (no outbox table).
    var hasOutbox: Bool {
        // A database without the outbox (older schema, or unreadable) has no notifications.
        ((try? db.queryOne("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")) ?? nil) != nil
    }

    public func undeliveredNotificationCount() throws -> Int {
        guard hasOutbox else { return 0 }
        return Int(try db.queryOne("SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL")?.int("n") ?? 0)
    }

    /// Undelivered notifications, oldest first.
    public func undeliveredNotifications(limit: Int) throws -> [UndeliveredNotification] {
        guard hasOutbox else { return [] }
        return try db.query("""
            SELECT notification_id, channel, path, outcome, attempts, next_attempt_at, last_error FROM outbox
            WHERE delivered_at IS NULL ORDER BY id LIMIT ?
            """, [limit]).map { row in
            UndeliveredNotification(id: row.string("notification_id") ?? "", channel: row.string("channel") ?? "",
                                    path: row.string("path") ?? "", outcome: row.string("outcome") ?? "",
                                    attempts: Int(row.int("attempts") ?? 0), nextAttemptAt: row.double("next_attempt_at") ?? 0,
                                    lastError: row.string("last_error"))
        }
    }
}
