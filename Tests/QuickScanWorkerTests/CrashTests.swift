import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Kills a real `quickscan run --once` with SIGKILL at many points, restarts it, and proves that
/// every file ends with exactly one outcome, in the right folder, intact, and that no sha256 was
/// submitted in two volumes.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct CrashTests {
    static let seed = UInt64(ProcessInfo.processInfo.environment["QUICKSCAN_CRASH_SEED"] ?? "") ?? 20261127

    /// A mixed inbox: expected folder per relative path.
    static func makeInbox(_ ws: Workspace) throws -> [String: (folder: String, bytes: [UInt8])] {
        var expected: [String: (String, [UInt8])] = [:]
        func add(_ path: String, _ bytes: [UInt8], _ folder: String) throws {
            try ws.put(path, bytes)
            expected[path] = (folder, bytes)
        }
        for i in 0..<24 { try add("clean/file \(i).txt", Array("clean content \(i)".utf8), "clean") }
        for i in 0..<5 { try add("dups/copy \(i).txt", Array("duplicated content".utf8), "clean") }
        for i in 0..<3 { try add("bad/eicar \(i).com", Array(SampleContent.eicar.utf8), "quarantine") }
        for i in 0..<2 { try add("img/p\(i).png", SampleContent.png + [UInt8(i)], "failed") }
        for i in 0..<2 { try add("sus \(i).bin", Array((SampleContent.suspicious + "\(i)").utf8), "quarantine") }
        try add("odd/na\"me ü\tx.txt", Array("odd".utf8), "clean")
        return expected.mapValues { (folder: $0.0, bytes: $0.1) }
    }

    func writeConfig(_ ws: Workspace, api: String = "quickscan") throws -> String {
        let config = """
            {"falcon":{"api":"\(api)"},"inboxes":[{"path":"inbox"}],"settle_seconds":0,"database":"db.sqlite",
             "volume":{"max_samples":4,"max_wait_seconds":0},"scan":{"poll_interval_seconds":0.05,"timeout_seconds":120,"max_attempts":3},
             "disposition":{"clean":{"action":"move","to":"clean"},"threat":{"action":"move","to":"quarantine"},"not_scanned":{"action":"move","to":"failed"}},
             "log":{"level":"error"}}
            """
        return try ws.dir.write("config.json", config)
    }

    /// Runs the worker; with `killAfter` (ms) sends SIGKILL then if it is still running.
    /// Returns nil when killed, else the exit status. Blocking: no Process crosses an await.
    static func runWorker(config: String, baseURL: String, killAfter: Int?, crashAt: String? = nil) throws -> Int32? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: quickscanExecutable())
        process.arguments = ["run", "--once", "--config", config, "--base-url", baseURL]
        var environment = ["FALCON_CLIENT_ID": "crash-test", "FALCON_CLIENT_SECRET": "crash-test-secret", "PATH": "/usr/bin:/bin"]
        if let crashAt { environment["QUICKSCAN_CRASH_AT"] = crashAt }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        if let killAfter {
            usleep(UInt32(killAfter) * 1000)
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                return nil
            }
        }
        process.waitUntilExit()
        if process.terminationReason == .uncaughtSignal { return nil }
        return process.terminationStatus
    }

    /// Each named point of the pipeline, crashed at deterministically (the 1st, 3rd and 7th time
    /// it is reached), then a clean run: the same invariants hold.
    @Test(arguments: ["taken", "hashed", "uploaded", "volume-intent", "volume-sent", "disposal-begun", "linked", "placed", "source-removed"])
    func crashAtANamedPoint(point: String) async throws {
        try await crashAt(point, api: "quickscan") { emulator, ws in
            #expect(emulator.stats.scanSamplesCalls == emulator.stats.scansCreated)
        }
    }

    /// The QuickScan Pro backend at the points where it differs (upload, LaunchScan intent,
    /// LaunchScan sent): nothing lost, and no content scanned twice.
    @Test(arguments: ["uploaded", "volume-intent", "volume-sent"])
    func crashAtANamedPointOnQuickScanPro(point: String) async throws {
        try await crashAt(point, api: "quickscanpro") { emulator, ws in
            #expect(emulator.stats.scanSamplesCalls == 0)
            let scans = try await ProPipelineTests.scansPerSHA(emulator)
            #expect(scans.values.allSatisfy { $0 == 1 }, "one scan per content (\(point)): \(scans)")
        }
    }

    /// Crashes at `point` the 1st, 3rd and 7th time it is reached, then runs to the end; the
    /// invariants hold, every scan the API created was adopted, and `check` adds the backend's own.
    func crashAt(_ point: String, api: String, check: (FalconEmulator, Workspace) async throws -> Void) async throws {
        let ws = try Workspace()
        let expected = try Self.makeInbox(ws)
        let config = try writeConfig(ws, api: api)
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            let baseURL = emulator.baseURL
            var crashes = 0
            for n in [1, 3, 7] {
                let status = try await onDedicatedThread { try Self.runWorker(config: config, baseURL: baseURL, killAfter: nil, crashAt: "\(point):\(n)") }
                if status == nil { crashes += 1 }
            }
            #expect(crashes >= 1, "the point \(point) was reached")
            let final = try await onDedicatedThread { try Self.runWorker(config: config, baseURL: baseURL, killAfter: nil) }
            // Runs that were not killed (the point was reached fewer than N times) report what
            // they decided themselves, so the last run may report 0, 1 (threats) or 2 (images).
            #expect(final.map { [0, 1, 2].contains($0) } == true, "\(point): exit \(final.map(String.init) ?? "killed")")
            try verifyInvariants(ws, expected: expected)
            let volumes = try SQLiteConnection(path: ws.database).query("SELECT COUNT(*) AS n FROM volumes WHERE state = 'done'").first?.int("n") ?? 0
            #expect(Int(volumes) == emulator.stats.scansCreated, "every scan the API created was adopted, none started twice (\(point), \(api))")
            try await check(emulator, ws)
        }
    }

    @Test func killedAtRandomMomentsNothingIsLostOrFiledTwice() async throws {
        let ws = try Workspace()
        let expected = try Self.makeInbox(ws)
        let config = try writeConfig(ws)
        var random = SplitMix64(seed: Self.seed)
        let delays = (0..<30).map { _ in Int(UInt64.random(in: 20...250, using: &random)) }
        try await withEmulator({
            $0.scanPollsUntilDone = 2
            $0.faults = [try! FaultRule.parse("latency:ms=15"), try! FaultRule.parse("lost-response:op=ScanSamples,count=2,every=2")]
        }) { emulator in
            var kills = 0
            var finalStatus: Int32?
            let baseURL = emulator.baseURL
            for delay in delays {
                if let status = try await onDedicatedThread({ try Self.runWorker(config: config, baseURL: baseURL, killAfter: delay) }) {
                    finalStatus = status
                    break
                }
                kills += 1
            }
            if finalStatus == nil {
                finalStatus = try await onDedicatedThread { try Self.runWorker(config: config, baseURL: baseURL, killAfter: nil) }
            }
            print("crash test: \(kills) kills, final exit \(finalStatus.map(String.init) ?? "-"), seed \(Self.seed)")
            #expect(kills >= 3, "the schedule should interrupt several runs (seed \(Self.seed))")
            #expect(finalStatus == 1, "threats were found (seed \(Self.seed))")
            try verifyInvariants(ws, expected: expected)

            // No sha256 in two volumes: read back every scan the emulator holds.
            let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
                credentials: FalconCredentials(clientID: "c", clientSecret: "s"), baseURL: emulator.baseURL))
            emulator.setFaults([])
            let ids = try await client.querySubmissions(limit: 5000).resources
            var seen: [String: Int] = [:]
            for id in ids {
                for sample in try await client.getScans(ids: [id]).resources.first?.samples ?? [] { seen[sample.sha256, default: 0] += 1 }
            }
            await client.shutdown()
            let twice = seen.filter { $0.value > 1 }
            #expect(twice.isEmpty, "submitted twice: \(twice) (seed \(Self.seed), \(kills) kills)")
            let db = try SQLiteConnection(path: ws.database)
            let recorded = try db.query("SELECT scan_id FROM volumes WHERE scan_id IS NOT NULL").compactMap { $0.string("scan_id") }
            #expect(Set(recorded).isSubset(of: Set(ids)))
        }
    }

    func verifyInvariants(_ ws: Workspace, expected: [String: (folder: String, bytes: [UInt8])]) throws {
        let db = try SQLiteConnection(path: ws.database)
        // Every file version reached a final state; one disposed row per original file.
        let open = try db.query("SELECT path, state FROM files WHERE state NOT IN ('disposed','superseded')")
        #expect(open.isEmpty, "not final: \(open.map { $0.string("path")! })")
        let rows = try db.query("SELECT path, disposed_to, outcome FROM results")
        var byPath: [String: [SQLiteRow]] = [:]
        for row in rows { byPath[String(row.string("path")!.dropFirst(ws.inbox.count + 1)), default: []].append(row) }
        for (path, (folder, bytes)) in expected {
            #expect(byPath[path]?.count == 1, "\(path): \(byPath[path]?.count ?? 0) outcomes")
            let destination = ws.dir.path + "/\(folder)/\(path)"
            #expect(byPath[path]?.first?.string("disposed_to") == destination, "\(path)")
            #expect(ws.contents(destination) == bytes, "\(path) intact in \(folder)")
            for other in ["clean", "quarantine", "failed"] where other != folder {
                #expect(!FileManager.default.fileExists(atPath: ws.dir.path + "/\(other)/\(path)"), "\(path) also in \(other)")
            }
        }
        #expect(byPath.count == expected.count)
        // Nothing left behind in the inbox, no stray copies anywhere.
        let left = FileManager.default.enumerator(atPath: ws.inbox)?.compactMap { $0 as? String }.filter {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: ws.inbox + "/" + $0, isDirectory: &isDir)
            return !isDir.boolValue
        } ?? []
        #expect(left.isEmpty, "left in the inbox: \(left)")
        var filed = 0
        for folder in ["clean", "quarantine", "failed"] {
            filed += (FileManager.default.enumerator(atPath: ws.dir.path + "/" + folder)?.compactMap { $0 as? String } ?? []).filter {
                var isDir: ObjCBool = false
                FileManager.default.fileExists(atPath: ws.dir.path + "/\(folder)/" + $0, isDirectory: &isDir)
                return !isDir.boolValue
            }.count
        }
        #expect(filed == expected.count, "files in the destination folders")
        // The event log agrees with the final states: each file's last event is its state.
        let mismatched = try db.query("""
            SELECT f.id FROM files f WHERE f.state != (SELECT e.to_state FROM events e WHERE e.entity = 'file' AND e.entity_id = CAST(f.id AS TEXT) ORDER BY e.id DESC LIMIT 1)
            """)
        #expect(mismatched.isEmpty, "event log disagrees for \(mismatched.count) files")
    }
}
