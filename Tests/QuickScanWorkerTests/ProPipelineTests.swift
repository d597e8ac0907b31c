import FalconAPI
import FalconEmulator
import Foundation
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

/// The pipeline on the QuickScan Pro backend (`falcon.api: quickscanpro`), end to end over
/// real HTTP against the emulator: one scan per file, the same store, dedup, cache, quota,
/// dispositions and exit codes as the legacy backend.
@Suite(.timeLimit(.minutes(3)))
struct ProPipelineTests {
    static func pro(_ c: inout WorkerConfiguration) {
        c.api = .quickscanpro
    }

    /// Scans the emulator started, per sha256, as the API lists them (QueryScanResults +
    /// GetScanResult).
    static func scansPerSHA(_ emulator: FalconEmulator) async throws -> [String: Int] {
        let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
            credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL))
        defer { Task { await client.shutdown() } }
        let ids = try await client.queryQuickScanProResults(filter: "", offset: nil, limit: 5000, sort: nil).resources
        guard !ids.isEmpty else { return [:] }
        var counts: [String: Int] = [:]
        for scan in try await client.getQuickScanProResults(ids: ids).resources { counts[scan.scan.sha256, default: 0] += 1 }
        return counts
    }

    @Test func mixedInboxReachesTheRightOutcomesWithOneScanPerContent() async throws {
        let ws = try Workspace()
        let inputs: [String: [UInt8]] = [
            "eicar.com": Array(SampleContent.eicar.utf8),
            "photo.png": SampleContent.png,
            "report.txt": Array("quarterly".utf8),
            "nested/copy of report.txt": Array("quarterly".utf8),
            "suspicious.bin": Array(SampleContent.suspicious.utf8),
            "benign.txt": Array("QUICKSCAN-EMULATOR-LIKELY-BENIGN maybe".utf8),
        ]
        for (name, bytes) in inputs { try ws.put(name, bytes) }
        // The emulator's default: images are unknown with an error, as the real scanner says.
        try await TestSupport.withEmulator { emulator in
            let summary = try await ws.runOnce(emulator, Self.pro)
            #expect(summary.exitCode == 1)
            #expect(summary.pending == 0)
            let scans = try await Self.scansPerSHA(emulator)
            #expect(scans.count == 5, "one scan per distinct content: \(scans)")
            #expect(scans.values.allSatisfy { $0 == 1 })
            #expect(emulator.stats.scanSamplesCalls == 0, "no legacy call")
        }
        let results = try ws.results()
        #expect(results["eicar.com"]?.string("outcome") == "threat")
        #expect(results["eicar.com"]?.string("verdict") == "malicious")
        #expect(results["eicar.com"]?.int("malicious_confidence") == 100)
        #expect(results["eicar.com"]?.string("verdict_reason")?.contains("EICAR") == true)
        #expect(results["eicar.com"]?.string("file_type") != nil)
        #expect(results["suspicious.bin"]?.string("outcome") == "threat")
        #expect(results["suspicious.bin"]?.string("verdict") == "suspicious")
        #expect(results["photo.png"]?.string("outcome") == "not_scanned")
        #expect(results["photo.png"]?.string("error")?.hasPrefix("unscannable: unsupported_file_type: unsupported file type") == true,
                "\(results["photo.png"]?.string("error") ?? "")")
        #expect(results["report.txt"]?.string("outcome") == "clean")
        #expect(results["nested/copy of report.txt"]?.string("outcome") == "clean")
        #expect(results["benign.txt"]?.string("outcome") == "clean", "likely_benign is clean by default")
        #expect(FileManager.default.fileExists(atPath: ws.dir.path + "/quarantine/eicar.com"))
        #expect(FileManager.default.fileExists(atPath: ws.dir.path + "/clean/nested/copy of report.txt"))
        // The details (MITRE, YARA, artifacts) are kept as JSON for `results --details`.
        let db = try SQLiteConnection(path: ws.database)
        let details = try #require(try db.queryOne("SELECT details FROM files WHERE path LIKE '%eicar.com'")?.string("details"))
        #expect(details.contains("mitre_attacks") && details.contains("T1204"))
    }

    @Test func likelyBenignCanBeFiledAsAThreat() async throws {
        let ws = try Workspace()
        try ws.put("benign.txt", Array("QUICKSCAN-EMULATOR-LIKELY-BENIGN maybe".utf8))
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) { Self.pro(&$0); $0.likelyBenign = .threat }
            #expect(summary.exitCode == 1)
        }
        #expect(try ws.results()["benign.txt"]?.string("outcome") == "threat")
    }

    @Test func aCachedVerdictStartsNoSecondScan() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("same bytes".utf8))
        try await withEmulator { emulator in
            #expect(try await ws.runOnce(emulator, Self.pro).exitCode == 0)
            try ws.put("later/b.txt", Array("same bytes".utf8))
            #expect(try await ws.runOnce(emulator, Self.pro).exitCode == 0)
            #expect(emulator.stats.scansCreated == 1)
            #expect(emulator.stats.uploads == 1)
        }
        let results = try ws.results()
        #expect(results["later/b.txt"]?.string("outcome") == "clean")
        #expect(results["later/b.txt"]?.int("cached") == 1)
    }

    /// LaunchScan answers lost on the way back: the scan exists; the worker finds it by sha256
    /// and adopts it instead of starting a second one.
    @Test func lostLaunchAnswersAreAdoptedNotRelaunched() async throws {
        let ws = try Workspace()
        for i in 0..<12 { try ws.put("f\(i).txt", Array("content \(i)".utf8)) }
        let lost = try FaultRule.parse("lost-response:op=LaunchScan,every=3")
        try await withEmulator({ $0.faults = [lost] }) { emulator in
            let summary = try await ws.runOnce(emulator, Self.pro)
            #expect(summary.exitCode == 0)
            #expect(summary.pending == 0)
            let scans = try await Self.scansPerSHA(emulator)
            #expect(scans.count == 12)
            #expect(scans.values.allSatisfy { $0 == 1 }, "\(scans)")
            #expect((emulator.stats.faultsInjected["lost-response"] ?? 0) >= 3)
        }
        let db = try SQLiteConnection(path: ws.database)
        let adopted = try db.queryOne("SELECT COUNT(*) AS n FROM events WHERE entity = 'volume' AND detail LIKE 'adopted%'")?.int("n") ?? 0
        #expect(adopted >= 3)
    }

    /// The quota: `total − used − in_progress`; what does not fit waits (exit 4), nothing lost.
    @Test func theQuotaDefersWhatDoesNotFit() async throws {
        let ws = try Workspace()
        for i in 0..<5 { try ws.put("f\(i).txt", Array("quota \(i)".utf8)) }
        try await withEmulator({ $0.quotaTotal = 3 }) { emulator in
            let summary = try await ws.runOnce(emulator, Self.pro)
            #expect(summary.exitCode == 4)
            #expect(summary.pending == 2)
            #expect(summary.deferredReason?.contains("quota used up") == true, "\(summary.deferredReason ?? "")")
            #expect(emulator.stats.scansCreated == 3)
        }
        #expect(try ws.results().values.filter { $0.string("outcome") == "clean" }.count == 3)
    }

    @Test func filesAndResultsAreDeletedFromTheCloudWhenConfigured() async throws {
        let ws = try Workspace()
        for i in 0..<4 { try ws.put("f\(i).txt", Array("delete me \(i)".utf8)) }
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) {
                Self.pro(&$0)
                $0.deleteSamplesAfterScan = true
                $0.deleteScanResultsAfterScan = true
            }
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.samplesDeleted == 4)
            #expect(try await Self.scansPerSHA(emulator).isEmpty, "the stored results are deleted")
        }
        let db = try SQLiteConnection(path: ws.database)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM samples WHERE deleted_at IS NOT NULL")?.int("n") == 4)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM volumes WHERE result_delete_pending = 1")?.int("n") == 0)
    }

    /// Switching `falcon.api` while scans are in flight on the other API is refused (exit 3,
    /// naming the key); with none in flight the switch is allowed.
    @Test func switchingTheAPIWithScansInFlightIsRefused() async throws {
        let ws = try Workspace()
        let store = try WorkerStore(path: ws.database)
        try await store.useAPI(.quickscanpro)
        let sha = String(repeating: "ab", count: 32)
        try SQLiteConnection(path: ws.database).run("INSERT INTO samples (sha256, size, uploaded_at) VALUES (?, 1, 1)", [sha])
        let volume = try await store.createVolumeIntent(samples: [sha], api: .quickscan)
        let failure = await #expect(throws: WorkerFailure.self) { try await store.useAPI(.quickscanpro) }
        #expect(failure?.kind == .configuration)
        #expect(failure?.message.contains("falcon.api") == true)
        try await store.useAPI(.quickscan)
        try await store.failVolume(volume, from: .submitting, reason: "test", maxAttempts: 1)
        try await store.useAPI(.quickscanpro)
    }
}
