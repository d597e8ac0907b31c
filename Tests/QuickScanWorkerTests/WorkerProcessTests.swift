import FalconAPI
import FalconEmulator
import Foundation
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `quickscan run` as a process: watch mode and signals, the lock, configuration errors.
@Suite(.timeLimit(.minutes(3)))
struct WorkerProcessTests {
    @Test func watchModeFilesNewFilesAndStopsOnSIGTERM() async throws {
        let ws = try Workspace()
        let bin = quickscanExecutable()
        let db = ws.database
        let inbox = ws.inbox
        let box = WorkerBox()
        let config = try ws.dir.write("watch.json", """
            {"poll_interval_seconds":0.2,"settle_seconds":0.2,"volume":{"max_wait_seconds":0},"scan":{"poll_interval_seconds":0.1},"log":{"level":"error"}}
            """)
        try await onDedicatedThread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["run", "--emulator", "--config", config, "--inbox", inbox, "--database", db]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            box.process = p
        }
        try ws.put("late arrival.py", Array("hello".utf8))
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        // Wait for both files to be recorded as disposed (left in place: no disposition config).
        var done = false
        for _ in 0..<200 where !done {
            try await Task.sleep(for: .milliseconds(100))
            if let count = try? SQLiteConnection(path: db).queryOne("SELECT COUNT(*) AS n FROM files WHERE state = 'disposed'")?.int("n") {
                done = count == 2
            }
        }
        #expect(done)
        // A second run on the same database exits 5 at once and names the holder.
        let second = try await runProcess(bin, ["run", "--once", "--emulator", "--inbox", inbox, "--database", db])
        #expect(second.status == 5)
        #expect(second.stderr.contains("pid \(box.process?.processIdentifier ?? 0)"), "\(second.stderr)")
        let status = try await onDedicatedThread { () -> Int32 in
            box.process?.terminate()
            box.process?.waitUntilExit()
            return box.process?.terminationStatus ?? -1
        }
        #expect(status == 0)
        let results = try SQLiteConnection(path: db).query("SELECT outcome FROM results ORDER BY outcome").compactMap { $0.string("outcome") }
        #expect(results == ["clean", "threat"])
        let runs = try SQLiteConnection(path: db).query("SELECT mode, exit_code FROM runs ORDER BY id")
        #expect(runs.first?.string("mode") == "watch")
        #expect(runs.first?.int("exit_code") == 0)
    }

    @Test func aKilledRunsLockIsTakenOver() async throws {
        let ws = try Workspace()
        try ws.put("a.py", Array("a".utf8))
        let bin = quickscanExecutable()
        let (db, inbox) = (ws.database, ws.inbox)
        // A watcher killed with SIGKILL leaves its lock file behind, but not the lock.
        try await onDedicatedThread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["run", "--emulator", "--inbox", inbox, "--database", db, "--settle-seconds", "0"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Killed once it holds the lock and has recorded its run (startup time varies under load).
            for _ in 0..<200 {
                if let n = try? SQLiteConnection(path: db).queryOne("SELECT COUNT(*) AS n FROM runs")?.int("n"), n > 0 { break }
                usleep(50_000)
            }
            usleep(300_000)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        #expect(FileManager.default.fileExists(atPath: db + ".lock"))
        try ws.put("b.py", Array("b".utf8))
        let next = try await runProcess(bin, ["run", "--once", "--emulator", "--inbox", inbox, "--database", db, "--settle-seconds", "0"])
        #expect(next.status == 0, "\(next.stderr)")
        let count = try SQLiteConnection(path: db).queryOne("SELECT COUNT(*) AS n FROM results")?.int("n")
        #expect(count == 2)
    }

    @Test(arguments: [
        (#"{"inboxes":[{"path":"in"}],"volume":{"max_samples":0}}"#, "volume.max_samples must be at least 1"),
        (#"{"inboxes":[{"path":"in"}],"colour":"blue"}"#, "unknown config key colour"),
    ])
    func badConfigExits3NamingTheKey(json: String, message: String) async throws {
        let ws = try Workspace()
        let path = try ws.dir.write("bad.json", json)
        let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--emulator", "--config", path])
        #expect(result.status == 3)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func missingCredentialsExit3BeforeAnythingIsDone() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--inbox", ws.inbox, "--database", ws.database])
        #expect(result.status == 3)
        #expect(result.stderr.contains("FALCON_CLIENT_ID"))
        #expect(FileManager.default.fileExists(atPath: ws.inbox + "/a.txt"))
    }
}

final class WorkerBox: @unchecked Sendable {
    var process: Process?
}
