import FalconAPI
import FalconEmulator
import Foundation
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The real binary, killed with SIGKILL at a named point and restarted: interrupted
/// disposals resume without a second copy, with the identity checked and the mode applied;
/// a threat is reported by exactly one run; internal errors have their own exit code.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct RecoveryProcessTests {
    func writeConfig(_ ws: Workspace, threat: String, extra: String = "") throws -> String {
        try ws.dir.write("config.json", """
            {"inboxes":[{"path":"inbox"}],"settle_seconds":0,"database":"db.sqlite",
             "volume":{"max_samples":10,"max_wait_seconds":0},"scan":{"poll_interval_seconds":0.05},
             "disposition":{"clean":{"action":"leave"},"threat":\(threat),"not_scanned":{"action":"leave"}},
             \(extra)"log":{"level":"error"}}
            """)
    }

    func run(_ config: String, _ emulator: FalconEmulator, crashAt: String? = nil) async throws -> Int32? {
        let baseURL = emulator.baseURL
        return try await onDedicatedThread { try CrashTests.runWorker(config: config, baseURL: baseURL, killAfter: nil, crashAt: crashAt) }
    }

    /// Killed at the unlink of `doc.txt` v1 (a threat, action delete); the user saves v2; the
    /// restart must not delete v2 unscanned.
    @Test func resumingADeleteChecksTheIdentityFirst() async throws {
        let ws = try Workspace()
        let path = try ws.put("doc.txt", Array(SampleContent.eicar.utf8))
        let config = try writeConfig(ws, threat: #"{"action":"delete"}"#)
        try await withEmulator { emulator in
            #expect(try await run(config, emulator, crashAt: "disposal-begun") == nil, "killed")
            #expect(FileManager.default.fileExists(atPath: path))
            try FileManager.default.removeItem(atPath: path)
            try Data("version 2, harmless".utf8).write(to: URL(fileURLWithPath: path))
            let status = try await run(config, emulator)
            #expect(status == 1, "the threat v1 was reported by this run")
            #expect(ws.contents(path) == Array("version 2, harmless".utf8), "v2 was scanned and kept, not deleted")
            let rows = try ws.results()
            #expect(rows["doc.txt"]?.string("outcome") == "clean")
            #expect(emulator.stats.uploads == 2)
        }
    }

    /// A run killed after deciding a threat: the next run reports it (exit 1), the ones after
    /// with new benign files do not.
    @Test func aThreatIsReportedByExactlyOneRun() async throws {
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        let config = try writeConfig(ws, threat: #"{"action":"move","to":"quarantine"}"#)
        try await withEmulator { emulator in
            #expect(try await run(config, emulator, crashAt: "disposal-begun") == nil)
            try ws.put("new 1.txt", Array("one".utf8))
            #expect(try await run(config, emulator) == 1)
            try ws.put("new 2.txt", Array("two".utf8))
            #expect(try await run(config, emulator) == 0)
            try ws.put("new 3.txt", Array("three".utf8))
            #expect(try await run(config, emulator) == 0)
        }
    }

    /// A quarantine on another file system (tmpfs): killed at every step of the copy, the
    /// restart finishes with exactly one copy, mode 0600, nothing left in the inbox.
    @Test(arguments: ["disposal-begun", "copied", "placed", "source-removed"])
    func aCrossDeviceMoveKilledAtEveryStepEndsWithOneCopy(point: String) async throws {
        guard FileManager.default.fileExists(atPath: "/dev/shm") else { return }
        let other = "/dev/shm/quickscan-recovery-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: other) }
        let ws = try Workspace()
        let bytes = Array(SampleContent.eicar.utf8)
        try ws.put("eicar.com", bytes)
        let config = try writeConfig(ws, threat: #"{"action":"move","to":"\#(other)/quarantine"}"#)
        try await withEmulator { emulator in
            #expect(try await run(config, emulator, crashAt: point) == nil, "killed at \(point)")
            let status = try await run(config, emulator)
            #expect(status == 1)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: other + "/quarantine")
        #expect(files == ["eicar.com"], "\(point): \(files)")
        #expect(FileManager.default.contents(atPath: other + "/quarantine/eicar.com").map(Array.init) == bytes)
        var st = stat()
        #expect(stat(other + "/quarantine/eicar.com", &st) == 0 && st.st_mode & 0o777 == 0o600, "\(point): mode applied")
        #expect(!FileManager.default.fileExists(atPath: ws.inbox + "/eicar.com"))
        #expect(try ws.results()["eicar.com"]?.string("disposed_to") == other + "/quarantine/eicar.com")
    }

    /// Another writer holds the database: an internal error, exit 6 (not 1, "threat found"),
    /// naming the database.
    @Test func aLockedDatabaseIsAnInternalError() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        let config = try writeConfig(ws, threat: #"{"action":"leave"}"#)
        _ = try WorkerStore(path: ws.database)
        let holder = try SQLiteConnection(path: ws.database)
        try holder.execute("BEGIN EXCLUSIVE")
        defer { try? holder.execute("ROLLBACK") }
        try await withEmulator { emulator in
            let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--config", config, "--base-url", emulator.baseURL],
                                              environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b"])
            #expect(result.status == 6, "\(result.stderr)")
            #expect(result.stderr.contains("database is locked"))
        }
    }

    /// Watch mode ends 0 only when asked to (SIGTERM); refused credentials end it with 3, so a
    /// supervisor restarts it.
    @Test func watchModeStopsOnSignalAndFailsLoudly() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        let config = try writeConfig(ws, threat: #"{"action":"leave"}"#, extra: #""poll_interval_seconds":0.1,"#)
        try await withEmulator({ $0.credentials = ["good": "secret"] }) { emulator in
            let baseURL = emulator.baseURL
            let refused = try await runProcess(quickscanExecutable(), ["run", "--config", config, "--base-url", baseURL],
                                               environment: ["FALCON_CLIENT_ID": "bad", "FALCON_CLIENT_SECRET": "wrong"])
            #expect(refused.status == 3, "\(refused.stderr)")
            let stopped: Int32 = try await onDedicatedThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: quickscanExecutable())
                process.arguments = ["run", "--config", config, "--base-url", baseURL]
                process.environment = ["FALCON_CLIENT_ID": "good", "FALCON_CLIENT_SECRET": "secret", "PATH": "/usr/bin:/bin"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                usleep(1_500_000)
                kill(process.processIdentifier, SIGTERM)
                process.waitUntilExit()
                return process.terminationStatus
            }
            #expect(stopped == 0)
            #expect(try ws.results()["a.txt"]?.string("outcome") == "clean")
        }
    }
}
