import Foundation
import QuickScanWorker
import Testing
import TestSupport

/// `quickscan results`, `status` and `history` run as the built binary on a real database.
@Suite(.timeLimit(.minutes(3)), .operatorFixture)
struct OperatorCommandTests {
    let bin = quickscanExecutable()

    /// Runs the binary in `directory` (the tests' `runProcess` has no working directory of its own).
    func run(in directory: String, _ arguments: [String]) async throws -> ProcessResult {
        try await runProcess("/bin/sh", ["-c", "cd \"$1\" && shift && exec \"$@\"", "sh", directory, bin] + arguments)
    }

    func objects(_ text: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "\(text)")
    }

    @Test func resultsFormatsRoundTripWithTheOddNamesIntact() async throws {
        let fixture = try OperatorFixture.shared()
        let expected = try await fixture.read { try $0.results() }.map(\.path)
        #expect(expected.count == OperatorFixture.allNames.count)

        let json = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let array = try objects(json.stdout)
        #expect(array.map { $0["path"] as? String } == expected)
        #expect(array.allSatisfy { Set($0.keys) == Set(ResultRow.columns) })
        #expect(array.first { ($0["outcome"] as? String) == "clean" }?["error"] is NSNull, "NULL is null")

        let ndjson = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "ndjson"])
        #expect(ndjson.status == 0, "\(ndjson.stderr)")
        let lines = ndjson.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == expected.count, "one object per line: newlines in names are escaped")
        let parsed = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(parsed.map { $0["path"] as? String } == expected)

        let csv = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "csv"])
        #expect(csv.status == 0, "\(csv.stderr)")
        let records = try CSVParser.parse(csv.stdout)
        #expect(records.first == ResultRow.columns)
        #expect(records.dropFirst().map { $0[1] } == expected)
        let odd = OperatorFixture.oddNames.map { fixture.inbox + "/" + $0 }
        #expect(Set(records.dropFirst().map { $0[1] }).isSuperset(of: odd))
        #expect(records.dropFirst().allSatisfy { $0.count == ResultRow.columns.count })

        // Not a terminal: ndjson by default.
        let plain = try await runProcess(bin, ["results", "--database", fixture.database])
        #expect(plain.stdout == ndjson.stdout)
    }

    @Test func resultsTableKeepsOneLinePerRow() async throws {
        let fixture = try OperatorFixture.shared()
        let table = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "table"])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == OperatorFixture.allNames.count + 1, "a header and one line per row")
        #expect(lines.first?.hasPrefix("FILE_ID") == true)
        #expect(table.stdout.contains("line\\u{a}break.txt"))
        #expect(table.stdout.contains("all, \"three\"\\u{d}\\u{a}at once.txt"))
        let none = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "table", "--outcome", "threat", "--since", "1h"])
        #expect(none.status == 0)
        #expect(none.stdout == "no results\n")
    }

    @Test(arguments: [
        (["--outcome", "threat"], ["eicar.com"]),
        (["--verdict", "unknown"], ["photo.png"]),
        (["--path", "*/nested/*"], ["nested/deeper/copy of report.txt"]),
        (["--sha256", OperatorFixture.quarterlySHA256], ["report.txt", "nested/deeper/copy of report.txt", "again/cached copy.txt"]),
        (["--until", "2020-01-02"], ["eicar.com"]),
        (["--since", "2020-01-01T00:00:01Z", "--path", "*.md"], ["with spaces.md"]),
        (["--since", "24h", "--outcome", "threat"], []),
    ])
    func resultsFiltersFromTheCommandLine(_ flags: [String], _ names: [String]) async throws {
        let fixture = try OperatorFixture.shared()
        let result = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "json"] + flags)
        #expect(result.status == 0, "\(result.stderr)")
        let paths = try objects(result.stdout).compactMap { $0["path"] as? String }
        #expect(paths.map(fixture.name).sorted() == names.sorted())
    }

    @Test func resultsLimitKeepsTheLowestFileIDs() async throws {
        let fixture = try OperatorFixture.shared()
        let result = try await runProcess(bin, ["results", "--database", fixture.database, "--format", "ndjson", "--limit", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let ids = try result.stdout.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["file_id"] as? Int }
        let first = try await fixture.read { try $0.results() }.prefix(2).map { Int($0.fileID) }
        #expect(ids == first)
    }

    @Test(arguments: [
        (["--since", "yesterday"], ["--since", "'yesterday'", "24h"]),
        (["--until", "2026-02-30"], ["--until", "'2026-02-30'"]),
        (["--outcome", "dirty"], ["--outcome dirty", "clean, threat, not_scanned"]),
        (["--sha256", "abc"], ["--sha256 abc"]),
        (["--limit", "0"], ["--limit 0"]),
        (["--format", "xml"], ["xml"]),
    ])
    func badFlagValuesAreNamedAsUsageErrors(_ flags: [String], _ mentions: [String]) async throws {
        let fixture = try OperatorFixture.shared()
        let result = try await runProcess(bin, ["results", "--database", fixture.database] + flags)
        #expect(result.status == 64, "a usage error, as for every command: \(result.stderr)")
        #expect(result.stdout.isEmpty)
        for mention in mentions { #expect(result.stderr.contains(mention), "\(result.stderr)") }
    }

    @Test func statusReportsCountsRunsQuotaAndCooldown() async throws {
        let fixture = try OperatorFixture.shared()
        let json = try await runProcess(bin, ["status", "--json", "--database", fixture.database])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["files"] as? [String: Int])?["disposed"] == 11)
        #expect(object["pending_files"] as? Int == 1)
        #expect(object["outcomes"] as? [String: Int] == ["clean": 9, "threat": 1, "not_scanned": 1])
        let runs = try #require(object["recent_runs"] as? [[String: Any]])
        #expect(runs.map { $0["exit_code"] as? Int } == [0, 1])
        let inFlight = try #require(object["volumes_in_flight"] as? [[String: Any]])
        #expect(inFlight.map { $0["scan_id"] as? String } == [OperatorFixture.inFlightScanID])
        #expect((object["oldest_pending"] as? [String: Any])?["path"] as? String == fixture.inbox + "/pending.txt")
        #expect((object["quota"] as? [String: Any])?["used"] as? Int == 7)
        #expect(object["rate_limit_cooldown_until"] is String)

        let text = try await runProcess(bin, ["status", "--database", fixture.database])
        #expect(text.status == 0, "\(text.stderr)")
        for part in ["disposed 11", "clean 9, threat 1, not_scanned 1", OperatorFixture.inFlightScanID, "pending.txt",
                     "used 7 of 100", "cooling down until", "last runs:"] {
            #expect(text.stdout.contains(part), "\(part) in:\n\(text.stdout)")
        }
    }

    @Test func historyTakesARelativePathOrASHA256() async throws {
        let fixture = try OperatorFixture.shared()
        // Relative to the current directory, as an operator types it.
        let byPath = try await run(in: fixture.inbox, ["history", "report.txt", "--json", "--database", fixture.database])
        #expect(byPath.status == 0, "\(byPath.stderr)")
        let events = try objects(byPath.stdout)
        #expect(events.map { $0["event_id"] as? Int } == events.map { $0["event_id"] as? Int }.sorted { ($0 ?? 0) < ($1 ?? 0) })
        #expect(Set(events.compactMap { $0["id"] as? String }).count == 2)
        #expect(events.first?["to"] as? String == "hashed")
        #expect(events.first?["from"] is NSNull)
        #expect(events.allSatisfy { ($0["time"] as? String)?.hasSuffix("Z") == true })

        let dotted = try await run(in: fixture.inbox + "/nested", ["history", "../report.txt", "--json", "--database", fixture.database])
        #expect(dotted.status == 0, "\(dotted.stderr)")
        #expect(try objects(dotted.stdout).count == events.count)

        let bySHA = try await runProcess(bin, ["history", OperatorFixture.quarterlySHA256, "--database", fixture.database])
        #expect(bySHA.status == 0, "\(bySHA.stderr)")
        let lines = bySHA.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("TIME") == true)
        for entity in ["file", "sample", "volume"] {
            #expect(lines.dropFirst().contains { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == Substring(entity) })
        }
    }

    @Test func historyOfNothingFailsWithAMessage() async throws {
        let fixture = try OperatorFixture.shared()
        for target in ["/no/such/file.txt", String(repeating: "0", count: 64)] {
            let result = try await runProcess(bin, ["history", target, "--database", fixture.database])
            #expect(result.status == 1)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.contains("no recorded history for \(target)"), "\(result.stderr)")
        }
    }

    @Test func theDatabaseComesFromTheFlagTheConfigOrTheCurrentDirectory() async throws {
        let fixture = try OperatorFixture.shared()
        let dir = try TemporaryDirectory()
        // --config: its `database`, relative to the config file's folder.
        try FileManager.default.createDirectory(atPath: dir.path + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/etc/linked.sqlite", withDestinationPath: fixture.database)
        let config = try dir.write("etc/quickscan-config.json", #"{"database": "linked.sqlite"}"#)
        let viaConfig = try await runProcess(bin, ["status", "--json", "--config", config])
        #expect(viaConfig.status == 0, "\(viaConfig.stderr)")
        // ./quickscan.json in the current directory.
        try dir.write("quickscan.json", #"{"database": "etc/linked.sqlite"}"#)
        let viaDefault = try await run(in: dir.path, ["results", "--format", "ndjson"])
        #expect(viaDefault.status == 0, "\(viaDefault.stderr)")
        #expect(viaDefault.stdout.split(separator: "\n").count == OperatorFixture.allNames.count)
        // --database wins over both.
        let missing = dir.path + "/elsewhere.sqlite"
        let viaFlag = try await run(in: dir.path, ["status", "--config", config, "--database", missing])
        #expect(viaFlag.status == 1)
        #expect(viaFlag.stderr.contains(missing), "\(viaFlag.stderr)")
    }

    @Test func aMissingDatabaseIsOneLineNamingItAndExit1() async throws {
        let dir = try TemporaryDirectory()
        let missing = dir.path + "/absent.sqlite"
        for command in [["status"], ["results"], ["history", "x.txt"]] {
            let result = try await runProcess(bin, command + ["--database", missing])
            #expect(result.status == 1, "\(command)")
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains(missing), "\(result.stderr)")
        }
        // No flag and no ./quickscan.json: ./quickscan.sqlite, named, and not created.
        let bare = try await run(in: dir.path, ["status"])
        #expect(bare.status == 1)
        #expect(bare.stderr.contains("quickscan.sqlite"), "\(bare.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/quickscan.sqlite"))
    }

    @Test func aConfigErrorIsOneLineAndExit3() async throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("bad.json", #"{"databse": "x.sqlite"}"#)
        for command in [["status"], ["results"], ["history", "x.txt"]] {
            let result = try await runProcess(bin, command + ["--config", config])
            #expect(result.status == 3, "\(command): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains("databse"), "\(result.stderr)")
        }
    }
}
