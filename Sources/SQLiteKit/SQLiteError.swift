import CSQLite

/// A SQLite failure: result code, SQLite's message, and the SQL that failed.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let sql: String?

    public var description: String {
        var text = "SQLite error \(code): \(message)"
        if let sql { text += " (in: \(sql.prefix(200)))" }
        return text
    }

    /// SQLITE_BUSY or SQLITE_LOCKED: another connection holds the database.
    public var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
    /// A constraint (UNIQUE, CHECK, FOREIGN KEY, NOT NULL) refused the change.
    public var isConstraint: Bool { code & 0xff == SQLITE_CONSTRAINT }
}
