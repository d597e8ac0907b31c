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

    @Test func openingAnUnwritablePathNamesIt() {
        #expect {
            _ = try SQLiteConnection(path: "/nonexistent-dir/x.sqlite")
        } throws: { error in
            "\(error)".contains("/nonexistent-dir/x.sqlite")
        }
    }
}
