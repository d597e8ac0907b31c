/// Append-only named migrations, each applied once in its own transaction (GRDB's rule: never
/// edit a shipped migration; add a new one).
public struct Migrator: Sendable {
    public struct Migration: Sendable {
        public let name: String
        public let sql: String
        public init(_ name: String, _ sql: String) {
            self.name = name
            self.sql = sql
        }
    }

    public var migrations: [Migration] = []

    public init(_ migrations: [Migration] = []) {
        self.migrations = migrations
    }

    /// Applies the migrations not yet recorded in `schema_migrations`; returns their names.
    @discardableResult
    public func migrate(_ db: SQLiteConnection) throws -> [String] {
        try db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        let done = Set(try db.query("SELECT name FROM schema_migrations").compactMap { $0.string("name") })
        let unknown = done.subtracting(migrations.map(\.name))
        guard unknown.isEmpty else {
            throw SQLiteError(code: 1, message: "database \(db.path) was written by a newer version (unknown migrations: \(unknown.sorted().joined(separator: ", "))); upgrade quickscan", sql: nil)
        }
        var applied: [String] = []
        for migration in migrations where !done.contains(migration.name) {
            try db.transaction {
                try db.execute(migration.sql)
                try db.run("INSERT INTO schema_migrations (name, applied_at) VALUES (?, julianday('now'))", [migration.name])
            }
            applied.append(migration.name)
        }
        return applied
    }
}
