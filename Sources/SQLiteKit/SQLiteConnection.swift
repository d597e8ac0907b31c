import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// One SQLite connection: owns the `sqlite3*` handle, closes it in `deinit`.
///
/// Not thread-safe: use it from one thread or actor at a time (the store is an actor).
public final class SQLiteConnection {
    let handle: OpaquePointer
    public let path: String
    private var statementCache: [String: SQLiteStatement] = [:]

    /// How long a connection that finds the database locked sleeps before it tries again (ms).
    public static let busyPollMilliseconds: Int32 = 5

    /// Checkpoint every ~16 MB of WAL instead of 4 MB: large batches rewrite fewer pages.
    public static let autoCheckpointPages = 4000

    /// Opens (creating if needed) the database at `path` with WAL, a busy timeout and foreign keys on.
    /// - Parameters:
    ///   - followSymlinks: false (the default) refuses a symlink anywhere in `path`
    ///     (`SQLITE_OPEN_NOFOLLOW`): the worker's database is never opened through one.
    ///   - incrementalVacuumWhenNew: a database without tables yet is put in incremental
    ///     auto-vacuum mode first (possible only before the first table and before WAL; SQLite
    ///     docs, "PRAGMA auto_vacuum").
    ///   - quickCheck: runs `PRAGMA quick_check` before returning (it reads every page: 2.6 s
    ///     for a 636 MB database on the build machine). Off only for maintenance that reads
    ///     and writes through SQLite's own checks anyway (`prune`).
    public init(path: String, busyTimeoutMilliseconds: Int32 = 5000, followSymlinks: Bool = false, incrementalVacuumWhenNew: Bool = false,
                quickCheck: Bool = true) throws {
        var db: OpaquePointer?
        // NOFOLLOW: a symlink planted at the database's name is refused, not followed.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | (followSymlinks ? 0 : SQLITE_OPEN_NOFOLLOW)
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: "cannot open database \(path): \(message)", sql: nil)
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        // A busy handler that tries again every `busyPollMilliseconds` until the timeout, instead
        // of sqlite3_busy_timeout's (which sleeps up to 100 ms between tries): a writer waiting
        // behind a short transaction (a prune's chunk in another process) gets the lock within
        // a few milliseconds of its commit, so that side can let others in with a short pause.
        sqlite3_busy_handler(db, sqliteBusyPoll, UnsafeMutableRawPointer(bitPattern: Int(max(0, busyTimeoutMilliseconds))))
        do {
            if incrementalVacuumWhenNew, try queryOne("SELECT COUNT(*) AS n FROM sqlite_master")?.int("n") == 0 {
                try execute("PRAGMA auto_vacuum = INCREMENTAL")
            }
            try execute("PRAGMA journal_mode = WAL")
            try execute("PRAGMA synchronous = NORMAL")
            try execute("PRAGMA wal_autocheckpoint = \(Self.autoCheckpointPages)")
            try execute("PRAGMA foreign_keys = ON")
            // A corrupt or truncated file often opens fine and fails on first real use.
            if quickCheck, let check = try queryOne("PRAGMA quick_check").flatMap({ $0.values.first }), check != .text("ok") {
                throw SQLiteError(code: SQLITE_CORRUPT, message: "integrity check failed: \(check)", sql: nil)
            }
        } catch let error as SQLiteError {
            // Fully initialised by now: deinit closes the handle.
            throw SQLiteError(code: error.code, message: "cannot use database \(path): \(error.message)", sql: nil)
        }
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    /// A prepared statement, cached by its SQL text and reset for reuse.
    public func prepare(_ sql: String) throws -> SQLiteStatement {
        if let cached = statementCache[sql] {
            cached.reset()
            return cached
        }
        let statement = try SQLiteStatement(connection: self, sql: sql)
        statementCache[sql] = statement
        return statement
    }

    /// Runs a statement with parameters; returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Int {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        while try statement.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// All rows of a query.
    public func query(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> [SQLiteRow] {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        let names = statement.columnNames()
        var rows: [SQLiteRow] = []
        while try statement.step() { rows.append(statement.row(names: names)) }
        return rows
    }

    /// Visits the rows of a query without materialising them (large result sets): read the
    /// columns by index from the statement handed to `body`.
    public func forEachRow(_ sql: String, _ arguments: [any SQLiteBindable] = [], _ body: (SQLiteStatement) throws -> Void) throws {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        while try statement.step() { try body(statement) }
    }

    /// The first row of a query, if any.
    public func queryOne(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> SQLiteRow? {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        let row = try statement.step() ? statement.row(names: statement.columnNames()) : nil
        statement.reset()
        return row
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in one IMMEDIATE transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func lastError(sql: String?) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

/// SQLite's busy handler for every connection: `context` carries the timeout in milliseconds;
/// `count` is how many times it was called for this lock. Sleeps
/// `SQLiteConnection.busyPollMilliseconds` and tries again until the timeout has passed.
private func sqliteBusyPoll(_ context: UnsafeMutableRawPointer?, _ count: Int32) -> Int32 {
    let timeout = Int(bitPattern: context)
    let poll = Int(SQLiteConnection.busyPollMilliseconds)
    guard Int(count) * poll < timeout else { return 0 }
    usleep(useconds_t(poll * 1000))
    return 1
}
