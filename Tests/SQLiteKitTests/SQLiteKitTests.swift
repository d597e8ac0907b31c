import Foundation
import SQLiteKit
import Testing
import TestSupport

@Suite struct SQLiteKitTests {
    @Test func roundTripsValuesAndRollsBack() throws {
        let dir = try TemporaryDirectory()
        let db = try SQLiteConnection(path: dir.path + "/t.sqlite")
        try db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER, ratio REAL, data BLOB)")
        try db.run("INSERT INTO t (name, size, ratio, data) VALUES (?, ?, ?, ?)", ["naïve \n name", 42, 0.5, SQLiteValue.blob([0, 255])])
        let row = try #require(try db.queryOne("SELECT * FROM t"))
        #expect(row.string("name") == "naïve \n name")
        #expect(row.int("size") == 42)
        #expect(row.double("ratio") == 0.5)
        #expect(row.blob("data") == [0, 255])

        #expect(throws: SQLiteError.self) {
            try db.transaction {
                try db.run("INSERT INTO t (name) VALUES (?)", ["second"])
                try db.run("INSERT INTO t (name) VALUES (?)", ["naïve \n name"])  // UNIQUE violation
            }
        }
        #expect(try db.query("SELECT name FROM t").count == 1, "the whole transaction rolled back")
    }

    @Test func constraintErrorsNameTheSQL() throws {
        let dir = try TemporaryDirectory()
        let db = try SQLiteConnection(path: dir.path + "/t.sqlite")
        try db.execute("CREATE TABLE t (x INTEGER NOT NULL)")
        do {
            try db.run("INSERT INTO t (x) VALUES (?)", [Int?.none])
            Issue.record("expected a constraint error")
        } catch let error as SQLiteError {
            #expect(error.isConstraint)
            #expect("\(error)".contains("INSERT INTO t"))
        }
    }

    @Test func migrationsApplyOnceAndInOrder() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/m.sqlite"
        let migrator = Migrator([
            .init("001-create", "CREATE TABLE a (x INTEGER)"),
            .init("002-add", "ALTER TABLE a ADD COLUMN y TEXT"),
        ])
        #expect(try migrator.migrate(SQLiteConnection(path: path)) == ["001-create", "002-add"])
        #expect(try migrator.migrate(SQLiteConnection(path: path)) == [])
        let mode = try SQLiteConnection(path: path).queryOne("PRAGMA journal_mode")?.string("journal_mode")
        #expect(mode == "wal")
    }

    /// A writer that finds the database locked tries again every few milliseconds (not up to
    /// 100 ms apart, as with sqlite3_busy_timeout), and still gives up after its timeout.
    @Test func aWaitingWriterGetsTheLockSoonAfterTheCommitAndGivesUpAfterItsTimeout() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.sqlite"
        let holder = try SQLiteConnection(path: path)
        try holder.execute("CREATE TABLE t (x INTEGER)")
        let waiter = try SQLiteConnection(path: path, busyTimeoutMilliseconds: 5000)
        let impatient = try SQLiteConnection(path: path, busyTimeoutMilliseconds: 100)

        try holder.execute("BEGIN IMMEDIATE")
        let t0 = Date()
        #expect(throws: SQLiteError.self) { try impatient.execute("BEGIN IMMEDIATE") }
        let gaveUp = Date().timeIntervalSince(t0)
        #expect(gaveUp >= 0.1 && gaveUp < 2, "gave up after \(gaveUp) s with a 100 ms timeout")

        // The holder commits after 345 ms: SQLite's stock handler tries at 328 ms and next at
        // 428 ms. The waiter must be in within a few polls of the commit.
        let committed = LockedBox<Date?>(nil)
        // Used by that thread alone until the commit; this thread waits meanwhile.
        nonisolated(unsafe) let committer = holder
        let thread = Thread {
            Thread.sleep(forTimeInterval: 0.345)
            try? committer.execute("COMMIT")
            committed.value = Date()
        }
        thread.start()
        try waiter.execute("BEGIN IMMEDIATE")
        let entered = Date()
        try waiter.execute("COMMIT")
        let commitAt = try #require(committed.value ?? { Thread.sleep(forTimeInterval: 0.05); return committed.value }())
        let lag = entered.timeIntervalSince(commitAt)
        #expect(lag < 0.04, "the waiter got the lock \(lag) s after the commit")
    }

    @Test func openingAnUnwritablePathNamesIt() {
        #expect {
            _ = try SQLiteConnection(path: "/nonexistent-dir/x.sqlite")
        } throws: { error in
            "\(error)".contains("/nonexistent-dir/x.sqlite")
        }
    }
}

/// A value shared with another thread, behind a lock.
private final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
