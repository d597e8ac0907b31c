import CSQLite

/// A prepared statement owned by one connection; finalized in `deinit`.
public final class SQLiteStatement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection
    public let sql: String

    init(connection: SQLiteConnection, sql: String) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.lastError(sql: sql) }
        self.handle = stmt
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Binds positional parameters (`?`), 1-based in SQLite, 0-based here.
    public func bind(_ arguments: [any SQLiteBindable]) throws {
        for (i, argument) in arguments.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch argument.sqliteValue {
            case .null: rc = sqlite3_bind_null(handle, index)
            case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
            case .real(let v): rc = sqlite3_bind_double(handle, index, v)
            case .text(let v): rc = sqlite3_bind_text(handle, index, v, -1, quickscan_sqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), quickscan_sqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw connection.lastError(sql: sql) }
        }
    }

    /// Advances; true when a row is available.
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.lastError(sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Column `index` of the current row as an integer (0 for NULL).
    public func int64(at index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    /// Column `index` of the current row as text (nil for NULL).
    public func text(at index: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, index) else { return nil }
        return String(cString: p)
    }

    /// The names of the result columns: read once per query and shared by all of its rows
    /// (a copy per row was a third of a large result's memory).
    func columnNames() -> [String] {
        (0..<sqlite3_column_count(handle)).map { String(cString: sqlite3_column_name(handle, $0)) }
    }

    /// The current row's values, named by `names` (`columnNames()`).
    func row(names: [String]) -> SQLiteRow {
        let count = sqlite3_column_count(handle)
        var values: [SQLiteValue] = []
        values.reserveCapacity(Int(count))
        for i in 0..<count {
            switch sqlite3_column_type(handle, i) {
            case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(handle, i)))
            case SQLITE_FLOAT: values.append(.real(sqlite3_column_double(handle, i)))
            case SQLITE_TEXT: values.append(.text(String(cString: sqlite3_column_text(handle, i))))
            case SQLITE_BLOB:
                let n = Int(sqlite3_column_bytes(handle, i))
                let p = sqlite3_column_blob(handle, i)
                values.append(.blob(p.map { Array(UnsafeRawBufferPointer(start: $0, count: n)) } ?? []))
            default: values.append(.null)
            }
        }
        return SQLiteRow(names: names, values: values)
    }
}

/// One result row; read columns by name or index.
public struct SQLiteRow: Sendable {
    public let names: [String]
    public let values: [SQLiteValue]

    public subscript(_ name: String) -> SQLiteValue {
        guard let i = names.firstIndex(of: name) else { return .null }
        return values[i]
    }

    public func int(_ name: String) -> Int64? {
        switch self[name] {
        case .integer(let v): v
        case .real(let v): Int64(v)
        case .text(let s): Int64(s)
        default: nil
        }
    }

    public func double(_ name: String) -> Double? {
        switch self[name] {
        case .integer(let v): Double(v)
        case .real(let v): v
        case .text(let s): Double(s)
        default: nil
        }
    }

    public func string(_ name: String) -> String? {
        switch self[name] {
        case .text(let s): s
        case .integer(let v): String(v)
        case .real(let v): String(v)
        case .blob(let b): String(decoding: b, as: UTF8.self)
        case .null: nil
        }
    }

    public func blob(_ name: String) -> [UInt8]? {
        if case .blob(let b) = self[name] { return b }
        if case .text(let s) = self[name] { return Array(s.utf8) }
        return nil
    }
}
