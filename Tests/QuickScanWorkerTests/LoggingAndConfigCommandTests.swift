import Foundation
import Logging
import NIOConcurrencyHelpers
import QuickScanWorker
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2)))
struct LoggingAndConfigCommandTests {
    @Test func jsonLogLinesHaveStableKeys() throws {
        let lines = NIOLockedValueBox<[String]>([])
        var handler = JSONLogHandler(label: "quickscan") { line in lines.withLockedValue { $0.append(line) } }
        handler.logLevel = .info
        handler[metadataKey: "run.id"] = "7"
        handler.log(level: .warning, message: "upload failed", metadata: ["file.path": "/in/a \"b\".txt"], source: "t", file: #file, function: #function, line: #line)
        handler.log(level: .debug, message: "dropped", metadata: nil, source: "t", file: #file, function: #function, line: #line)
        // The level filter is swift-log's job (Logger checks logLevel); the handler writes what it is given.
        let first = try #require(lines.withLockedValue { $0 }.first)
        #expect(first.hasSuffix("\n") && !first.dropLast().contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["ts", "level", "logger", "message", "metadata"])
        #expect(object["level"] as? String == "warning")
        #expect((object["metadata"] as? [String: String]) == ["run.id": "7", "file.path": "/in/a \"b\".txt"])
    }

    @Test func runLogsJSONLinesWhenAsked() async throws {
        let ws = try Workspace()
        try ws.put("a.py", Array("a".utf8))  // an accepted type: `run --emulator` answers unknown for plain text
        let result = try await runProcess(quickscanExecutable(), [
            "run", "--once", "--emulator", "--inbox", ws.inbox, "--database", ws.database, "--settle-seconds", "0", "--log-format", "json", "--log-level", "info",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let jsonLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(!jsonLines.isEmpty)
        for line in jsonLines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] != nil && object?["ts"] != nil, "\(line)")
        }
    }

    @Test func progressLineOnATerminal() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let ws = try Workspace()
        for i in 0..<3 { try ws.put("f\(i).py", Array("\(i)".utf8)) }
        let command = "\(quickscanExecutable()) run --once --emulator --inbox '\(ws.inbox)' --database '\(ws.database)' --settle-seconds 0 --log-level error"
        let result = try await runProcess("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("seen 3"), "\(result.stdout)")
    }

    @Test func configCheckPrintsTheEffectiveConfigWithTheSecretMasked() async throws {
        let ws = try Workspace()
        let path = try ws.dir.write("quickscan.json", #"{"falcon":{"client_id":"id","client_secret":"do-not-print-me"},"inboxes":[{"path":"in"}]}"#)
        chmod(path, 0o600)
        let ok = try await runProcess(quickscanExecutable(), ["config", "check", "--config", path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(!ok.stdout.contains("do-not-print-me") && !ok.stderr.contains("do-not-print-me"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])
        #expect((object["falcon"] as? [String: Any])?["client_secret"] as? String == "****")
        #expect((object["inboxes"] as? [[String: Any]])?.first?["path"] as? String == ws.dir.path + "/in")
        #expect((object["volume"] as? [String: Any])?["max_samples"] as? Int == 1000)

        chmod(path, 0o644)
        let readable = try await runProcess(quickscanExecutable(), ["config", "check", "--config", path])
        #expect(readable.status == 3)
        #expect(readable.stderr.contains("chmod 600"))
        #expect(!readable.stderr.contains("do-not-print-me"))

        let bad = try ws.dir.write("bad.json", #"{"scan":{"timeout_seconds":"soon"}}"#)
        let invalid = try await runProcess(quickscanExecutable(), ["config", "check", "--config", bad])
        #expect(invalid.status == 3)
        #expect(invalid.stderr.contains("scan.timeout_seconds must be a number"))
    }

    @Test func sampleConfigChecksClean() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let result = try await runProcess(quickscanExecutable(), ["config", "check", "--config", root.appendingPathComponent("sample-config.json").path])
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test(arguments: [["quota"], ["upload"], ["scan-samples"], ["scans"], ["submissions"], ["aggregates"], ["hash"], ["emulator"],
                      ["config", "check"], ["status"], ["results"], ["history"], ["run"]])
    func everyHelpListsItsExitCodes(command: [String]) async throws {
        let help = try await runProcess(quickscanExecutable(), command + ["--help"])
        #expect(help.stdout.lowercased().contains("exit codes"), "\(command)")
    }

    @Test func runHelpListsTheExitCodes() async throws {
        let help = try await runProcess(quickscanExecutable(), ["run", "--help"])
        for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 "] { #expect(help.stdout.contains("  \(code) "), "exit code \(code)") }
    }
}
