import FalconEmulator
import Foundation
import Hashing
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A results database built by the real pipeline against the emulator in two runs, from an inbox
/// with awkward names, then given a pending file, a volume in flight, a cached quota and a
/// cooldown. Built once per suite (``OperatorFixtureScope``) and only read by the tests.
struct OperatorFixture: Sendable {
    let ws: Workspace
    var database: String { ws.database }
    var inbox: String { ws.inbox }

    /// Files of the first run, by name relative to the inbox.
    static let firstRun: [String: [UInt8]] = [
        "report.txt": Array("quarterly".utf8),
        "nested/deeper/copy of report.txt": Array("quarterly".utf8),
        "eicar.com": Array(SampleContent.eicar.utf8),
        "photo.png": SampleContent.png,
        "comma, in name.txt": Array("comma".utf8),
        "say \"hi\".txt": Array("quote".utf8),
        "with spaces.md": Array("spaces".utf8),
        "line\nbreak.txt": Array("newline".utf8),
        "all, \"three\"\r\nat once.txt": Array("everything".utf8),
    ]
    /// Names whose CSV fields need quoting.
    static let oddNames = ["comma, in name.txt", "say \"hi\".txt", "with spaces.md", "line\nbreak.txt", "all, \"three\"\r\nat once.txt"]
    /// The second run: a new version of report.txt, and known content reused from the cache.
    static let secondRun: [String: [UInt8]] = [
        "report.txt": Array("quarterly, revised".utf8),
        "again/cached copy.txt": Array("quarterly".utf8),
    ]
    /// Every results row by name, in file id order: report.txt appears twice (two versions).
    static var allNames: [String] { (Array(firstRun.keys) + Array(secondRun.keys)) }
    static let quarterlySHA256: String = {
        let hasher = SHA256Hasher()
        hasher.update(Array("quarterly".utf8))
        return hasher.finalize()
    }()
    /// The eicar file's `updated_at`, moved back in time so the time filters split the rows.
    static let oldUpdate = "2020-01-01T00:00:00Z"
    static let pendingSHA256 = String(repeating: "ab", count: 32)
    static let inFlightScanID = "scan-in-flight"

    @TaskLocal static var current: OperatorFixture?

    /// The fixture of the running suite.
    static func shared() throws -> OperatorFixture {
        try #require(current, "the suite needs the .operatorFixture trait")
    }

    static func build() async throws -> OperatorFixture {
        let ws = try Workspace()
        for (name, bytes) in firstRun { try ws.put(name, bytes) }
        try await withEmulator { emulator in
            let first = try await ws.runOnce(emulator)
            #expect(first.exitCode == 1)
            for (name, bytes) in secondRun { try ws.put(name, bytes) }
            let second = try await ws.runOnce(emulator)
            #expect(second.exitCode == 0)
        }
        let database = ws.database
        let eicar = ws.inbox + "/eicar.com"
        let pending = ws.inbox + "/pending.txt"
        let inbox = ws.inbox
        try await onDedicatedThread {
            let db = try SQLiteConnection(path: database)
            let now = Date().timeIntervalSince1970
            let old = try #require(TimeExpression.dateTime(oldUpdate)).timeIntervalSince1970
            try db.run("UPDATE files SET updated_at = ? WHERE path = ?", [old, eicar])
            try db.run("INSERT INTO samples (sha256, size, uploaded_at) VALUES (?, 1, ?)", [pendingSHA256, now - 100])
            try db.run("""
                INSERT INTO files (path, inbox, inode, size, mtime_ns, ctime_ns, state, sha256, discovered_at, updated_at)
                VALUES (?, ?, 1, 1, 0, 0, 'uploaded', ?, ?, ?)
                """, [pending, inbox, pendingSHA256, now - 120, now - 100])
            try db.run("INSERT INTO volumes (state, scan_id, intent_at, submitted_at) VALUES ('submitted', ?, ?, ?)",
                       [inFlightScanID, now - 60, now - 59])
            let volume = db.lastInsertRowID
            try db.run("INSERT INTO volume_members (volume_id, sha256) VALUES (?, ?)", [volume, pendingSHA256])
            try db.run("UPDATE samples SET volume_id = ? WHERE sha256 = ?", [volume, pendingSHA256])
            try db.run("INSERT OR REPLACE INTO kv (key, value) VALUES ('quota', ?)", ["100 7 2 \(now - 30)"])
            try db.run("INSERT OR REPLACE INTO kv (key, value) VALUES ('rate_limit_cooldown_until', ?)", [String(now + 3600)])
        }
        return OperatorFixture(ws: ws)
    }

    /// `path` relative to the inbox (the fixture's names).
    func name(_ path: String) -> String {
        path.hasPrefix(inbox + "/") ? String(path.dropFirst(inbox.count + 1)) : path
    }

    /// Runs `body` with a fresh reader on a thread of its own (SQLite blocks).
    func read<T: Sendable>(_ body: @escaping @Sendable (ResultsReader) throws -> T) async throws -> T {
        let database = database
        return try await onDedicatedThread { try body(ResultsReader(path: database)) }
    }

    /// Runs a query on the database directly (the expectations' source of truth).
    func sql(_ query: String, _ arguments: [String] = []) async throws -> [SQLiteRow] {
        let database = database
        return try await onDedicatedThread { try SQLiteConnection(path: database).query(query, arguments) }
    }
}

/// Builds one ``OperatorFixture`` for a whole suite; its folder goes when the suite ends.
struct OperatorFixtureScope: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let fixture = try await OperatorFixture.build()
        try await OperatorFixture.$current.withValue(fixture) { try await function() }
    }
}

extension Trait where Self == OperatorFixtureScope {
    static var operatorFixture: Self { Self() }
}

/// One filter of the results view and the names it must return.
struct FilterCase: Sendable, CustomTestStringConvertible {
    let label: String
    let filter: @Sendable (Date) -> ResultsFilter
    let expected: [String]
    var testDescription: String { label }

    static let all: [FilterCase] = {
        let everything = OperatorFixture.allNames
        let old = TimeExpression.dateTime("2020-01-02T00:00:00Z")!
        return [
            FilterCase(label: "no filter", filter: { _ in ResultsFilter() }, expected: everything),
            FilterCase(label: "outcome threat", filter: { _ in ResultsFilter(outcome: "threat") }, expected: ["eicar.com"]),
            FilterCase(label: "outcome not_scanned", filter: { _ in ResultsFilter(outcome: "not_scanned") }, expected: ["photo.png"]),
            FilterCase(label: "outcome clean", filter: { _ in ResultsFilter(outcome: "clean") },
                       expected: everything.filter { $0 != "eicar.com" && $0 != "photo.png" }),
            FilterCase(label: "verdict, any case", filter: { _ in ResultsFilter(verdict: "MALWARE") }, expected: ["eicar.com"]),
            FilterCase(label: "verdict unknown", filter: { _ in ResultsFilter(verdict: "unknown") }, expected: ["photo.png"]),
            FilterCase(label: "glob on a folder", filter: { _ in ResultsFilter(pathGlob: "*/nested/*") }, expected: ["nested/deeper/copy of report.txt"]),
            FilterCase(label: "glob with a comma", filter: { _ in ResultsFilter(pathGlob: "*, *") },
                       expected: ["comma, in name.txt", "all, \"three\"\r\nat once.txt"]),
            FilterCase(label: "glob, two versions", filter: { _ in ResultsFilter(pathGlob: "*report.txt") },
                       expected: ["report.txt", "report.txt", "nested/deeper/copy of report.txt"]),
            FilterCase(label: "sha256, upper case", filter: { _ in ResultsFilter(sha256: OperatorFixture.quarterlySHA256.uppercased()) },
                       expected: ["report.txt", "nested/deeper/copy of report.txt", "again/cached copy.txt"]),
            FilterCase(label: "until a date", filter: { _ in ResultsFilter(until: old) }, expected: ["eicar.com"]),
            FilterCase(label: "since a date", filter: { _ in ResultsFilter(since: old) }, expected: everything.filter { $0 != "eicar.com" }),
            FilterCase(label: "since 1h ago", filter: { now in ResultsFilter(since: now.addingTimeInterval(-3600)) },
                       expected: everything.filter { $0 != "eicar.com" }),
            FilterCase(label: "until 1h ago", filter: { now in ResultsFilter(until: now.addingTimeInterval(-3600)) }, expected: ["eicar.com"]),
            FilterCase(label: "since in the future", filter: { now in ResultsFilter(since: now.addingTimeInterval(3600)) }, expected: []),
            FilterCase(label: "combined", filter: { now in ResultsFilter(outcome: "clean", since: now.addingTimeInterval(-3600), pathGlob: "*.md") },
                       expected: ["with spaces.md"]),
        ]
    }()
}

@Suite(.timeLimit(.minutes(3)), .operatorFixture)
struct ResultsReaderTests {
    @Test(arguments: FilterCase.all)
    func everyFilterSelectsTheRightRows(_ testCase: FilterCase) async throws {
        let fixture = try OperatorFixture.shared()
        let now = Date()
        let rows = try await fixture.read { try $0.results(testCase.filter(now)) }
        #expect(rows.map { fixture.name($0.path) }.sorted() == testCase.expected.sorted())
        #expect(rows.map(\.fileID) == rows.map(\.fileID).sorted(), "ordered by file id")
    }

    @Test func rowsMatchTheViewAndLimitKeepsTheFirst() async throws {
        let fixture = try OperatorFixture.shared()
        let rows = try await fixture.read { try $0.results() }
        let view = try await fixture.sql("SELECT * FROM results ORDER BY file_id")
        #expect(view.first?.names == ResultRow.columns, "the reader knows every column of the view, in order")
        #expect(rows.map(\.values) == view.map(\.values))
        let limited = try await fixture.read { try $0.results(ResultsFilter(limit: 3)) }
        #expect(limited == Array(rows.prefix(3)))
        let cached = rows.filter(\.cached).map { fixture.name($0.path) }
        #expect(cached == ["again/cached copy.txt"])
    }

    @Test func invalidFiltersNameTheValue() async throws {
        let fixture = try OperatorFixture.shared()
        for (filter, text) in [(ResultsFilter(outcome: "dirty"), "dirty"), (ResultsFilter(sha256: "abc"), "abc"), (ResultsFilter(limit: 0), "0")] {
            let error = await #expect(throws: ResultsReaderError.self) { try await fixture.read { try $0.results(filter) } }
            #expect(error?.kind == .invalidValue)
            #expect(error?.description.contains(text) == true, "\(error?.description ?? "")")
        }
    }

    @Test func statusCountsStatesOutcomesVolumesAndRuns() async throws {
        let fixture = try OperatorFixture.shared()
        let now = Date()
        let report = try await fixture.read { try $0.status(now: now) }
        let states = Dictionary(uniqueKeysWithValues: report.fileStates.map { ($0.name, $0.count) })
        #expect(report.fileStates.map(\.name) == FileState.allCases.map(\.rawValue))
        #expect(states["disposed"] == 11)
        #expect(states["uploaded"] == 1)
        #expect(states["superseded"] == 0)
        #expect(report.pendingFiles == 1)
        #expect(report.outcomes == [.init(name: "clean", count: 9), .init(name: "threat", count: 1), .init(name: "not_scanned", count: 1)])
        let volumes = Dictionary(uniqueKeysWithValues: report.volumeStates.map { ($0.name, $0.count) })
        let done = try await fixture.sql("SELECT COUNT(*) AS n FROM volumes WHERE state = 'done'").first?.int("n")
        #expect(volumes["done"].map(Int64.init) == done)
        #expect(volumes["submitted"] == 1)
        #expect(report.volumesInFlight.count == 1)
        let inFlight = try #require(report.volumesInFlight.first)
        #expect(inFlight.scanID == OperatorFixture.inFlightScanID)
        #expect(inFlight.samples == 1)
        #expect((59...300).contains(now.timeIntervalSince(inFlight.createdAt)))  // set 60 s back when the shared fixture was built
        let oldest = try #require(report.oldestPending)
        #expect(fixture.name(oldest.path) == "pending.txt")
        #expect(oldest.state == "uploaded")
        #expect((119...360).contains(now.timeIntervalSince(oldest.discoveredAt)))
        // Newest first: the second run found no threat, the first found EICAR.
        #expect(report.recentRuns.map(\.exitCode) == [0, 1])
        #expect(report.recentRuns.map(\.mode) == ["once", "once"])
        #expect(report.recentRuns.allSatisfy { $0.pid == Int(getpid()) && $0.host != nil && $0.finishedAt != nil })
        #expect(report.recentRuns[0].id > report.recentRuns[1].id)
        let quota = try #require(report.quota)
        #expect((quota.total, quota.used, quota.inProgress, quota.remaining) == (100, 7, 2, 91))
        let cooldown = try #require(report.rateLimitCooldownUntil)
        #expect((3300...3601).contains(cooldown.timeIntervalSince(now)))
        // Once the cooldown has passed it is not shown.
        let later = try await fixture.read { try $0.status(now: now.addingTimeInterval(7200)) }
        #expect(later.rateLimitCooldownUntil == nil)
    }

    @Test func statusJSONCarriesEverySection() async throws {
        let fixture = try OperatorFixture.shared()
        let report = try await fixture.read { try $0.status() }
        let text = report.json.serialized(pretty: true)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect((object["files"] as? [String: Int])?["disposed"] == 11)
        #expect((object["outcomes"] as? [String: Int])?["threat"] == 1)
        #expect((object["recent_runs"] as? [[String: Any]])?.count == 2)
        #expect((object["quota"] as? [String: Any])?["remaining"] as? Int == 91)
        #expect(object["rate_limit_cooldown_until"] is String)
        #expect(((object["volumes_in_flight"] as? [[String: Any]])?.first?["scan_id"] as? String) == OperatorFixture.inFlightScanID)
    }

    @Test func historyOfAPathCoversEveryVersionOldestFirst() async throws {
        let fixture = try OperatorFixture.shared()
        let path = fixture.inbox + "/report.txt"
        let events = try await fixture.read { try $0.history(pathOrSHA256: path) }
        #expect(events.map(\.id) == events.map(\.id).sorted())
        #expect(events.allSatisfy { $0.entity == "file" && $0.path == path })
        let versions = Set(events.map(\.entityID))
        #expect(versions.count == 2, "two versions were found at that path")
        // A version's first record is `hashed`: discovery and hashing are not persisted.
        #expect(events.first?.from == nil && events.first?.to == "hashed")
        #expect(events.filter { $0.from == nil }.count == 2)
        #expect(events.filter { $0.to == "disposed" }.count == 2)
        #expect(events.last?.to == "disposed")
        for version in versions {
            let steps = events.filter { $0.entityID == version }.map(\.to)
            #expect(steps.first == "hashed")
            #expect(steps.last == "disposed")
        }
        // Where the first version was filed to finds it as well.
        let filedTo = try #require(try await fixture.read { try $0.results(ResultsFilter(pathGlob: path)) }.first?.disposedTo)
        let filed = try await fixture.read { try $0.history(pathOrSHA256: filedTo) }
        #expect(Set(filed.map(\.entityID)).count == 1)
        #expect(filed.first?.to == "hashed")
        #expect(try await fixture.read { try $0.history(pathOrSHA256: fixture.inbox + "/nothing.txt") }.isEmpty)
    }

    @Test func historyOfASHA256CoversSampleFilesAndVolumes() async throws {
        let fixture = try OperatorFixture.shared()
        let sha = OperatorFixture.quarterlySHA256
        let events = try await fixture.read { try $0.history(pathOrSHA256: sha.uppercased()) }
        #expect(events.map(\.id) == events.map(\.id).sorted())
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.time <= $1.time })
        #expect(Set(events.map(\.entity)) == ["file", "sample", "volume"])
        #expect(events.filter { $0.entity == "sample" }.allSatisfy { $0.entityID == sha })
        let files = try await fixture.sql("SELECT id FROM files WHERE sha256 = ? ORDER BY id", [sha]).compactMap { $0.string("id") }
        #expect(files.count == 3)
        #expect(Set(events.filter { $0.entity == "file" }.map(\.entityID)) == Set(files))
        #expect(events.filter { $0.entity == "sample" }.map(\.to).contains("scanned"))
        #expect(events.filter { $0.entity == "volume" }.map(\.to).suffix(3) == ["submitting", "submitted", "done"])
        let names = Set(events.compactMap(\.path).map(fixture.name))
        #expect(names == ["report.txt", "nested/deeper/copy of report.txt", "again/cached copy.txt"])
    }

    @Test func outputsRoundTripThroughRealParsers() async throws {
        let fixture = try OperatorFixture.shared()
        let rows = try await fixture.read { try $0.results() }
        // JSON (JSONSerialization): every column, null for NULL.
        let array = OrderedJSON.array(rows.map(\.json)).serialized()
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(array.utf8)) as? [[String: Any]])
        #expect(objects.count == rows.count)
        #expect(objects.map { $0["path"] as? String } == rows.map(\.path))
        #expect(objects.allSatisfy { Set($0.keys) == Set(ResultRow.columns) })
        #expect(objects.first { ($0["outcome"] as? String) == "clean" }?["error"] is NSNull)
        // CSV (RFC 4180).
        let csv = CSVRecord.line(ResultRow.columns) + rows.map { CSVRecord.line($0.csvFields) }.joined()
        let records = try CSVParser.parse(csv)
        #expect(records.first == ResultRow.columns)
        #expect(records.dropFirst().map { $0[1] } == rows.map(\.path))
        let names = Set(records.dropFirst().map { fixture.name($0[1]) })
        #expect(names.isSuperset(of: OperatorFixture.oddNames))
    }
}

extension ResultsReaderTests {
    /// The `--since`/`--until` grammar.
    @Suite struct TimeExpressions {
        static let now = Date(timeIntervalSince1970: 1_800_000_000)

        @Test(arguments: [
            ("90s", 90.0), ("30m", 1800), ("24h", 86_400), ("7d", 604_800), ("2w", 1_209_600), ("1h30m", 5400), ("0s", 0), (" 5m ", 300),
        ])
        func durationsCountBackFromNow(_ text: String, _ seconds: Double) throws {
            #expect(try TimeExpression.parse(text, now: Self.now) == Self.now.addingTimeInterval(-seconds))
        }

        @Test(arguments: [
            ("2026-11-01", "2026-11-01T00:00:00Z"),
            ("2026-11-01T12:00:00Z", "2026-11-01T12:00:00Z"),
            ("2026-11-01T12:00Z", "2026-11-01T12:00:00Z"),
            ("2026-11-01T12:00:00", "2026-11-01T12:00:00Z"),
            ("2026-11-01 12:00:00", "2026-11-01T12:00:00Z"),
            ("2026-11-01T14:00:00+02:00", "2026-11-01T12:00:00Z"),
            ("2026-11-01T07:30:00-0430", "2026-11-01T12:00:00Z"),
            ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        ])
        func datesAndDatetimesAreUTC(_ text: String, _ expected: String) throws {
            #expect(ISOTime.string(try TimeExpression.parse(text, now: Self.now)) == expected)
        }

        @Test func fractionsAndMillisecondsSurvive() throws {
            let date = try TimeExpression.parse("2026-11-01T12:00:00.250Z", now: Self.now)
            #expect(ISOTime.string(date, milliseconds: true) == "2026-11-01T12:00:00.250Z")
        }

        @Test(arguments: ["yesterday", "", "24", "h", "5y", "-5m", "1.5h", "2026-13-01", "2026-02-30", "2025-02-29", "2026-11-01T25:00:00Z",
                          "2026-11-01T12:00:00Q", "2026-11-1", "12:00"])
        func badValuesAreRefusedByName(_ text: String) {
            let error = #expect(throws: ResultsReaderError.self) { try TimeExpression.parse(text, now: Self.now) }
            #expect(error?.kind == .invalidValue)
            #expect(error?.description.contains("'\(text)'") == true)
            #expect(error?.description.contains("24h") == true, "the message shows the forms that work")
        }
    }

    /// Opening databases that are not there or not ours.
    @Suite struct Opening {
        @Test func aMissingDatabaseIsNamedAndNotCreated() async throws {
            let dir = try TemporaryDirectory()
            let path = dir.path + "/absent.sqlite"
            let error = await #expect(throws: ResultsReaderError.self) { try await onDedicatedThread { _ = try ResultsReader(path: path) } }
            #expect(error?.kind == .databaseMissing)
            #expect(error?.description.contains(path) == true)
            #expect(!FileManager.default.fileExists(atPath: path))
        }

        @Test func aFileThatIsNotOursIsRefusedByName() async throws {
            let dir = try TemporaryDirectory()
            let text = try dir.write("notes.txt", "not a database at all, just some text that is long enough to fill a header")
            let empty = try dir.write("empty.sqlite", [])
            let other = dir.path + "/other.sqlite"
            try await onDedicatedThread { try SQLiteConnection(path: other).execute("CREATE TABLE t (x)") }
            for path in [text, empty, other, dir.path] {
                let error = await #expect(throws: ResultsReaderError.self) { try await onDedicatedThread { _ = try ResultsReader(path: path) } }
                #expect(error?.kind == .notAResultsDatabase, "\(path)")
                #expect(error?.description.contains(path) == true, "\(error?.description ?? "")")
            }
        }
    }

}

/// A strict RFC 4180 parser for the round-trip tests: CRLF between records, quoted fields with
/// doubled quotes, and nothing else (a bare LF or a stray quote is an error).
enum CSVParser {
    struct Malformed: Error, CustomStringConvertible {
        let offset: Int
        var description: String { "malformed CSV at scalar \(offset)" }
    }

    static func parse(_ text: String) throws -> [[String]] {
        let s = Array(text.unicodeScalars)
        var records: [[String]] = []
        var record: [String] = []
        var i = 0
        while i < s.count {
            var field = String.UnicodeScalarView()
            if s[i] == "\"" {
                i += 1
                while true {
                    guard i < s.count else { throw Malformed(offset: i) }
                    if s[i] == "\"" {
                        if i + 1 < s.count, s[i + 1] == "\"" {
                            field.append("\"")
                            i += 2
                        } else {
                            i += 1
                            break
                        }
                    } else {
                        field.append(s[i])
                        i += 1
                    }
                }
            } else {
                while i < s.count, s[i] != ",", s[i] != "\r" {
                    guard s[i] != "\"", s[i] != "\n" else { throw Malformed(offset: i) }
                    field.append(s[i])
                    i += 1
                }
            }
            record.append(String(field))
            if i == s.count {
                records.append(record)
                break
            }
            if s[i] == "," {
                i += 1
                continue
            }
            guard s[i] == "\r", i + 1 < s.count, s[i + 1] == "\n" else { throw Malformed(offset: i) }
            records.append(record)
            record = []
            i += 2
        }
        return records
    }
}
